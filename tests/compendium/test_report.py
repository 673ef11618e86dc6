"""The generated book pages: reproduction report and figure index."""

from __future__ import annotations

import json

import nbformat
import pytest

from compendium import report
from compendium.results import check_claim, write_results


def _write(tmp_path, chapter, profile, claims):
    return write_results(chapter, profile, {"x": 1.0}, claims, device="cpu", wall_time_s=12.5, root=tmp_path)


def test_report_lists_every_claim_with_each_profiles_measurement(tmp_path):
    paper = "Wang, Joshi, Wang & Ji, CVPR 2023"
    _write(
        tmp_path,
        "02_ua_backprop",
        "tiny",
        [
            check_claim("completeness", "sums to U", 3e-7, "<", 1e-5, paper=paper, reconstruction=True),
            check_claim("faster", "faster than IG", 0.5, ">", 1.0, paper=paper),
        ],
    )
    _write(
        tmp_path,
        "02_ua_backprop",
        "cpu",
        [
            check_claim("completeness", "sums to U", 0.0, "<", 1e-5, paper=paper, reconstruction=True),
        ],
    )
    _write(tmp_path, "01_uncertainty_basics", "cpu", [check_claim("acc", "accuracy high", 0.99, ">", 0.9, paper="x")])
    results = report.load_all_results(tmp_path)
    assert set(results) == {"02_ua_backprop", "01_uncertainty_basics"}
    assert set(results["02_ua_backprop"]) == {"tiny", "cpu"}

    text = report.reproduction_report(results)
    rows = [line for line in text.splitlines() if line.startswith("| sums to U")]
    assert len(rows) == 1
    # tiny, cpu, then "–" where gpu has no run... but gpu has no results at all, so only two columns
    assert "3.00e-07 pass" in rows[0] and "| 0 pass" in rows[0] and rows[0].endswith("| yes |")
    faster = next(line for line in text.splitlines() if line.startswith("| faster than IG"))
    assert "0.5 FAIL" in faster and "| – |" in faster  # measured in tiny only
    # the summary counts passes per profile, and says where a chapter was not run
    summary = next(line for line in text.splitlines() if line.startswith("| {doc}`../chapters/02_ua_backprop`"))
    assert "1/2 pass" in summary and "1/1 pass" in summary and "not run" in summary
    # chapters with no results are named, not dropped; chapters of no paper get their own section
    assert "### {doc}`../chapters/04_uam`" in text
    assert "No results yet" in text
    assert "## Chapters of the compendium itself" in text and "accuracy high" in text
    # the paper's verified words are quoted with their source tags
    assert "[READ]" in text and "{cite}`wang2023gradient`" in text


def test_report_rejects_files_that_are_not_results(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "junk.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="junk.json is not a results document"):
        report.load_all_results(tmp_path)


def test_every_paper_quotes_tagged_statements_and_known_chapters():
    from compendium.book import chapters

    for paper in report.PAPERS:
        assert paper.states and all(s.startswith(("[READ]", "[SEC]")) for s in paper.states)
        for chapter in paper.chapters:
            assert chapter[:2].isdigit()
    keys = open("book/references.bib").read()
    assert all(f"{{{p.key}," in keys for p in report.PAPERS)
    assert set(chapters()) >= {"01_uncertainty_basics", "02_ua_backprop", "03_uncertainty_mitigation"}


def test_figure_index_counts_image_outputs_per_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["ualib"] = {"profile": "cpu"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A chapter\n\n## Maps"),
        nbformat.v4.new_code_cell("plot()"),
        nbformat.v4.new_code_cell("print(1)"),
        nbformat.v4.new_markdown_cell("## Curves"),
        nbformat.v4.new_code_cell("plot(); plot()"),
    ]
    png = {
        "output_type": "display_data",
        "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
        "metadata": {},
    }
    nb.cells[1].outputs = [nbformat.from_dict(png)]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells[4].outputs = [nbformat.from_dict(png), nbformat.from_dict(png)]
    nbformat.write(nb, str(tmp_path / "05_demo.ipynb"))
    text = report.figure_index(tmp_path)
    assert "## A chapter" in text
    assert "make chapter NB=05_demo PROFILE=cpu" in text
    assert "| 2 | Maps | 1 |" in text and "| 5 | Curves | 2 |" in text
    assert "| 3 |" not in text  # a cell without images is not a figure
    assert "No executed chapters" in report.figure_index(tmp_path / "empty")


def test_write_pages_writes_both_pages(tmp_path, monkeypatch):
    monkeypatch.setenv("UALIB_RESULTS", str(tmp_path / "results"))
    _write(tmp_path / "results", "02_ua_backprop", "cpu", [check_claim("c", "s", 1.0, ">", 0.0, paper="p")])
    paths = report.write_pages(tmp_path)
    assert [p.name for p in paths] == ["reproduction.md", "figures.md"]
    assert "| s | > 0 | 1 pass | no |" in paths[0].read_text()


def test_report_shows_the_evidence_of_engine_claims():
    """A claim judged by the claims engine shows its verdict, estimate, interval, n and seeds; the
    summary counts the three verdicts (no emoji: they render as empty boxes without an emoji font)."""
    from compendium.report import _cell, _tally

    c = {
        "id": "x.a",
        "statement": "a",
        "estimate": 0.7,
        "ci": [0.6, 0.8],
        "n": 120,
        "seeds": [0, 1, 2],
        "threshold": 0.5,
        "direction": ">",
        "verdict": "supported",
    }
    assert _cell(c) == "**supported**: 0.7 [0.6, 0.8], n = 120, 3 seeds"
    assert _tally([c, dict(c, verdict="inconclusive")]) == "1 supported · 0 refuted · 1 inconclusive"
