"""Beyond Binary: the Streamlit entry point. Navigation and sidebar only; pages live in pages/."""
import re
from pathlib import Path

import streamlit as st

from pages import _common as ui

ROOT = Path(__file__).parent

st.set_page_config(page_title="Beyond Binary", page_icon="🎯", layout="wide")
css = ROOT / "assets" / "style.css"
if css.is_file():
    st.markdown(f"<style>{css.read_text()}</style>", unsafe_allow_html=True)


def _page(path: str, title: str, icon: str, default: bool = False):
    return st.Page(str(ROOT / "pages" / path), title=title, icon=icon, default=default)


def _docstring_title(path: Path) -> str:
    # A regex, not ast.parse: CPython 3.11's AST constructor is not thread-safe, and every
    # session runs this script concurrently ("AST constructor recursion depth mismatch").
    match = re.match(r'\s*[rRuU]?("""|\'\'\')\s*([^\n]+)', path.read_text())
    return match.group(2).strip().removesuffix(match.group(1)).strip().rstrip(".") if match else path.stem


def _learn_pages():
    """Every pages/learn_*.py, titled by the first line of its docstring."""
    return [st.Page(str(path), title=_docstring_title(path), icon="📘") for path in sorted((ROOT / "pages").glob("learn_*.py"))]


explore = [_page("home.py", "Home", "🏠", default=True)]
explore += [
    _page(name, title, icon)
    for name, title, icon in [
        ("compare.py", "Compare", "🔍"),
        ("upload.py", "Upload", "📤"),
        ("embedding_space.py", "Embedding space", "🗺️"),
        ("benchmarks.py", "Benchmarks", "📊"),
        ("training_lab.py", "Training lab", "🧪"),
    ]
    if (ROOT / "pages" / name).is_file()
]
sections = {"Explore": explore}
if learn := _learn_pages():
    sections["Learn"] = learn
page = st.navigation(sections)
ui.build_indicator()
page.run()
