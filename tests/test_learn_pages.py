"""Every Learn page runs in AppTest, shows its key elements, and survives an interaction.

Key elements: the title (the first docstring line, which the app uses as the page name), at
least one formula (st.latex), one plotly figure, one st.metric, and the takeaway box. The
interaction changes the page's main control, which retrains its toy live.
"""
import ast
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "pages").glob("learn_*.py"))
TIMEOUT = 60

#: page stem -> (widget kind, key, new value) for one interaction that retrains something.
INTERACTIONS = {
    "learn_1_beyond_binary": ("slider", "l1_threshold", 20),
    "learn_2_contrastive_vs_triplet": ("slider", "l2_margin", 0.5),
    "learn_3_mining": ("select_slider", "l3_step", 100),
    "learn_4_mahalanobis": ("slider", "l4_stretch", 2.0),
    "learn_5_siamese": ("slider", "l5_pair", 250),
    "learn_6_verification": ("selectbox", "l6_new_0", 75),
    "learn_7_cross_modal": ("multiselect", "l7_held_out", ["zebra", "bus"]),
    "learn_8_beyond_triplets": ("select_slider", "l8_per_class", 4),
}


def test_there_are_eight_learn_pages_with_interactions():
    assert [p.stem for p in PAGES] == sorted(INTERACTIONS)


def elements(at: AppTest, kind: str) -> list:
    return list(at.get(kind))


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.stem)
def test_learn_page_shows_formula_plot_metric_and_takeaway(path):
    title = ast.get_docstring(ast.parse(path.read_text())).splitlines()[0]
    at = AppTest.from_file(str(path), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [title]
    assert at.latex, "no formula"
    assert elements(at, "plotly_chart"), "no plot"
    assert at.metric, "no metric"
    assert any(m.value.startswith("**Takeaway**") for m in at.markdown), "no takeaway"
    assert all(m.value not in ("nan", "") for m in at.metric)

    kind, key, value = INTERACTIONS[path.stem]
    before = [(m.label, m.value) for m in at.metric]
    getattr(at, kind)(key=key).set_value(value).run()
    assert not at.exception, [e.value for e in at.exception]
    assert elements(at, "plotly_chart")
    if path.stem not in ("learn_3_mining", "learn_5_siamese"):  # those two change the view, not a number
        assert [(m.label, m.value) for m in at.metric] != before


def test_siamese_threshold_changes_the_verdict():
    at = AppTest.from_file(str(ROOT / "pages" / "learn_5_siamese.py"), default_timeout=TIMEOUT).run()
    slider = next(s for s in at.slider if s.key.startswith("l5_threshold"))
    slider.set_value(0.0).run()
    assert any("network says **different**" in m.value for m in at.markdown)
    slider.set_value(slider.max).run()
    assert any("network says **same**" in m.value for m in at.markdown)


def test_cross_modal_free_text_query_reports_unknown_words():
    at = AppTest.from_file(str(ROOT / "pages" / "learn_7_cross_modal.py"), default_timeout=TIMEOUT).run()
    at.text_input[0].set_value("a purple zebra").run()
    assert not at.exception
    assert any("purple" in c.value for c in at.caption)
    at.text_input[0].set_value("xyzzy").run()
    assert any("vocabulary" in w.value for w in at.warning)
