"""compendium.tables: the plain text is exactly what the notebooks printed before; the HTML is styled."""

import re

import numpy as np
import pandas as pd
import pytest

from compendium import tables
from compendium.results import check_claim, claims_table


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(3, 2)) * 1e-3, index=["a", "b", "c"], columns=["x", "y"])


def test_plain_text_is_what_print_to_string_printed(frame, capsys, monkeypatch):
    monkeypatch.delenv(tables.HTML_ENV, raising=False)
    tables.show(frame, digits=3)
    tables.show(frame, fmt=".1e")
    tables.show(frame["x"])
    expected = (
        frame.round(3).to_string() + "\n" + frame.map(lambda v: f"{v:.1e}").to_string() + "\n" + frame["x"].to_string()
    )
    assert capsys.readouterr().out == expected + "\n"


def test_html_mode_displays_a_deterministic_text_plain(frame, monkeypatch):
    monkeypatch.setenv(tables.HTML_ENV, "1")
    from IPython.core.formatters import DisplayFormatter

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    tables.show(frame, digits=2)
    (obj,) = shown
    data, _ = DisplayFormatter().format(obj)
    assert data["text/plain"] == frame.round(2).to_string()
    assert "0x" not in data["text/plain"]  # no memory address, unlike a Styler's repr
    html = data["text/html"]
    assert html.startswith('<div class="ualib-table">') and "<table" in html
    # two decimals in the cells
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", html)
    assert cells and all(re.fullmatch(r"-?\d+\.\d{2}", c) for c in cells), cells


def test_claims_table_verdict_first_coloured_word():
    claims = [
        check_claim("a", "A holds", 0.9, ">", 0.5, paper="p"),
        check_claim("b", "B holds", 0.1, ">", 0.5, paper="p"),
    ]
    df = claims_table(claims)
    html = tables.Table(df)._repr_html_()
    headers = re.findall(r'class="col_heading[^"]*"\s*>([^<]*)</th>', html)
    assert headers[0] == "verdict"  # claims_table puts the verdict first, for old and new claims alike
    assert "pass" in html and "fail" in html
    assert tables.VERDICT_COLORS["pass"][0] in html and tables.VERDICT_COLORS["fail"][0] in html


def test_new_verdict_words():
    df = pd.DataFrame(
        {"claim": ["x", "y", "z"], "estimate": [0.1, 0.2, 0.3], "verdict": ["supported", "refuted", "inconclusive"]}
    )
    st = tables.styled(df)
    assert list(st.data.columns)[0] == "verdict"
    html = st.to_html()
    for word in ("supported", "refuted", "inconclusive"):
        assert tables.VERDICT_COLORS[word][0] in html


def test_checks_holds_column_first_as_a_coloured_word(capsys, monkeypatch):
    """A checks table's boolean holds column: first, the words holds / fails in their colours (in HTML);
    the plain text stays the frame's to_string (True / False), what nbval compares."""
    df = pd.DataFrame({"id": ["a", "b"], "value": [1e-7, 0.3], "op": ["<", "<"], "bound": [1e-5, 1e-5]})
    df["holds"] = df["value"] < df["bound"]  # numpy booleans, as in the chapters
    st = tables.styled(df)
    assert list(st.data.columns) == ["holds", "id", "value", "op", "bound"]
    assert list(st.data["holds"]) == ["holds", "fails"]
    html = st.to_html()
    assert tables.VERDICT_COLORS["holds"][0] in html and tables.VERDICT_COLORS["fails"][0] in html
    monkeypatch.delenv(tables.HTML_ENV, raising=False)
    tables.show(df)
    assert capsys.readouterr().out == df.to_string() + "\n"


def test_rejects_non_frames_and_both_formats(frame):
    with pytest.raises(TypeError, match="DataFrame"):
        tables.styled([1, 2])
    with pytest.raises(ValueError, match="digits or fmt"):
        tables.show(frame, digits=1, fmt=".1e")
