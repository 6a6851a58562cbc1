"""Beyond Binary: the Streamlit entry point. Navigation and sidebar only; pages live in pages/."""
import ast
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).parent

st.set_page_config(page_title="Beyond Binary", page_icon="🎯", layout="wide")
css = ROOT / "assets" / "style.css"
if css.is_file():
    st.markdown(f"<style>{css.read_text()}</style>", unsafe_allow_html=True)


def _page(path: str, title: str, icon: str, default: bool = False):
    return st.Page(str(ROOT / "pages" / path), title=title, icon=icon, default=default)


def _learn_pages():
    """Every pages/learn_*.py, titled by the first line of its docstring."""
    pages = []
    for path in sorted((ROOT / "pages").glob("learn_*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or path.stem
        pages.append(st.Page(str(path), title=doc.splitlines()[0].rstrip("."), icon="📘"))
    return pages


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
st.navigation(sections).run()
