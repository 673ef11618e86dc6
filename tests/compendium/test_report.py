"""The generated book pages: reproduction report and figure index."""

from __future__ import annotations

import json
import re

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


def test_write_pages_rewrites_only_what_changed(tmp_path, monkeypatch):
    """A second build with the same results leaves every generated file untouched (Sphinx re-reads a page
    whose file or image is newer), a changed result rewrites the page, and a plot whose source went is removed
    while files the report does not own stay."""
    import os

    from compendium.claims import judge_interval

    monkeypatch.setenv("UALIB_RESULTS", str(tmp_path / "results"))
    engine = [judge_interval("04_uam.vacuity_auroc_notMNIST", 0.9, (0.85, 0.95), n=100)]
    write_results("04_uam", "cpu", {"x": 1.0}, engine, device="cpu", wall_time_s=1.0, root=tmp_path / "results")
    _write(tmp_path / "results", "02_ua_backprop", "cpu", [check_claim("c", "s", 1.0, ">", 0.0, paper="p")])
    out = tmp_path / "book" / "generated"
    report.write_pages(tmp_path)
    plot = out / "report_forest_04_uam.png"
    assert plot.is_file()
    stale, foreign = out / "report_forest_99_gone.png", out / "benchmarks.md"
    stale.write_bytes(b"old"), foreign.write_text("another writer's page")
    old = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    for p in out.iterdir():  # an old time stamp: a rewrite would be seen even on a coarse clock
        os.utime(p, ns=(10**18, 10**18))
    report.write_pages(tmp_path)
    assert not stale.exists() and foreign.read_text() == "another writer's page"
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()} == {
        name: (10**18, data) for name, (_, data) in old.items() if name != stale.name
    }
    _write(tmp_path / "results", "02_ua_backprop", "cpu", [check_claim("c", "s", 2.0, ">", 0.0, paper="p")])
    report.write_pages(tmp_path)
    assert (out / "reproduction.md").stat().st_mtime_ns != 10**18
    assert (out / "figures.md").stat().st_mtime_ns == 10**18  # no chapter changed: the figure index stays


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


def _engine(cid, estimate, ci, direction, threshold, verdict, paper="jeong2026visualizing"):
    return {
        "id": cid,
        "paper": paper,
        "statement": cid,
        "estimate": estimate,
        "ci": list(ci),
        "n": 50,
        "seeds": [0],
        "threshold": threshold,
        "direction": direction,
        "verdict": verdict,
    }


def test_forest_rows_put_the_claimed_side_to_the_right():
    runs = {
        "cpu": {
            "claims": [
                _engine("04_uam.up", 0.9, (0.85, 0.95), ">", 0.8, "supported"),
                _engine("04_uam.down", -0.05, (-0.07, -0.02), "<", 0.0, "supported"),
                _engine("04_uam.down_refuted", 0.3, (0.2, 0.4), "<", 0.1, "refuted"),
                _engine("04_uam.undefined", None, (None, None), ">", 0.5, "inconclusive"),
                {"id": "old", "statement": "s", "measured": 1.0, "threshold": 0.0, "op": ">", "passed": True},
            ]
        },
        "tiny": {"claims": [_engine("04_uam.up", 0.7, (0.6, 0.85), ">", 0.8, "inconclusive")]},
    }
    rows = report.forest_rows(runs)
    # claims in order of first appearance, each claim's profiles in PROFILE_NAMES order; old shape left out
    assert [(r.name, r.profile) for r in rows] == [
        ("up", "tiny"),
        ("up", "cpu"),
        ("down", "cpu"),
        ("down_refuted", "cpu"),
        ("undefined", "cpu"),
    ]
    tiny_up, up, down, refuted, undefined = rows
    assert up.distance == pytest.approx(0.1) and (up.lo, up.hi) == pytest.approx((0.05, 0.15))  # ">": x - t
    assert down.distance == pytest.approx(0.05) and (down.lo, down.hi) == pytest.approx((0.02, 0.07))  # "<": t - x
    assert refuted.distance == pytest.approx(-0.2) and (refuted.lo, refuted.hi) == pytest.approx((-0.3, -0.1))
    assert tiny_up.lo < 0 < tiny_up.hi and tiny_up.verdict == "inconclusive"
    assert undefined.distance is None and undefined.lo is None and undefined.hi is None
    # supported is exactly "the whole interval right of 0", refuted "left of 0"
    for r in (up, down):
        assert r.verdict == "supported" and r.lo > 0
    assert refuted.hi < 0


def test_write_pages_draws_a_forest_plot_for_a_chapter_with_engine_claims(tmp_path, monkeypatch):
    from compendium.claims import judge_interval

    monkeypatch.setenv("UALIB_RESULTS", str(tmp_path / "results"))
    claims = [
        judge_interval("04_uam.vacuity_auroc_notMNIST", 0.9, (0.85, 0.95), n=100),  # > 0.8: supported
        judge_interval("04_uam.deletion_vam_a_changes_vacuity_less_than_random", 0.01, (0.005, 0.02), n=100),
        judge_interval("04_uam.dam_mass_on_strokes", 1.0, (0.9, 1.1), n=100),  # > 1: inconclusive
    ]
    write_results("04_uam", "cpu", {"x": 1.0}, claims, device="cpu", wall_time_s=1.0, root=tmp_path / "results")
    _write(tmp_path / "results", "02_ua_backprop", "cpu", [check_claim("c", "s", 1.0, ">", 0.0, paper="p")])
    out = tmp_path / "book" / "generated"
    out.mkdir(parents=True)
    (out / "report_forest_99_gone.png").write_bytes(b"stale")
    page = report.write_pages(tmp_path)[0]
    png = out / "report_forest_04_uam.png"
    assert png.exists() and png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
    assert not (out / "report_forest_99_gone.png").exists()  # a plot of a chapter without results goes
    assert not (out / "report_forest_02_ua_backprop.png").exists()  # no interval: nothing to plot
    text = page.read_text()
    assert "```{figure} report_forest_04_uam.png" in text  # relative to the page: Sphinx copies it
    alt = next(line for line in text.splitlines() if line.startswith(":alt: ") and "04_uam" in line)
    assert "1 supported, 1 refuted, 1 inconclusive" in alt
    assert "signed distance from its threshold" in text
    assert "No claim of this chapter has an interval yet: 1 claim result (`cpu`: 1)" in text
    # every image the page names exists next to it
    for name in re.findall(r"```\{figure\} (\S+)", text):
        assert (out / name).exists()
    # headings never skip a level
    levels = [len(line) - len(line.lstrip("#")) for line in text.splitlines() if re.match(r"#+ ", line)]
    assert levels[0] == 1 and all(b <= a + 1 for a, b in zip(levels, levels[1:]))


def test_report_without_a_figures_folder_references_no_image():
    runs = {"cpu": {"claims": [_engine("04_uam.up", 0.9, (0.85, 0.95), ">", 0.8, "supported")], "metadata": {}}}
    text = report.reproduction_report({"04_uam": runs}, unchecked_claims=[], paper_refs={})
    assert "{figure}" not in text and ".png" not in text


def test_report_counts_verdicts_per_chapter_and_per_paper_and_lists_unchecked_claims():
    a = _engine("04_uam.a", 0.9, (0.85, 0.95), ">", 0.8, "supported")
    b = _engine("04_uam.b", 0.7, (0.6, 0.75), ">", 0.8, "refuted")
    c = _engine("04_uam.c", 0.8, (0.7, 0.9), ">", 0.8, "inconclusive")
    d = _engine("08_method_comparison.d", 0.1, (0.05, 0.2), ">", 0.0, "supported", paper="wang2023gradient")
    old = {"id": "o", "statement": "old one", "measured": 1.0, "threshold": 0.0, "op": ">", "passed": False}
    results = {
        "04_uam": {"cpu": {"claims": [a, b, c]}, "tiny": {"claims": [a, a]}},
        "08_method_comparison": {"cpu": {"claims": [d, old]}},
    }
    refs = {"wang2023gradient": "Wang et al. 2023", "jeong2026visualizing": "Jeong et al. 2026"}
    items = [{"paper": "ardis2024extracting", "claim": "works on edge devices", "reason": "no edge device here"}]
    text = report.reproduction_report(results, unchecked_claims=items, paper_refs=refs)
    lines = text.splitlines()
    uam = next(x for x in lines if x.startswith("| {doc}`../chapters/04_uam`"))
    assert uam == (
        "| {doc}`../chapters/04_uam` | 2 supported · 0 refuted · 0 inconclusive"
        " | 1 supported · 1 refuted · 1 inconclusive | not run |"
    )
    mixed = next(x for x in lines if x.startswith("| {doc}`../chapters/08_method_comparison`"))
    assert "1 supported · 0 refuted · 0 inconclusive; without interval 0/1 pass" in mixed
    jeong = next(x for x in lines if x.startswith("| Jeong et al. 2026"))
    assert (
        jeong
        == "| Jeong et al. 2026 | 2 supported · 0 refuted · 0 inconclusive | 1 supported · 1 refuted · 1 inconclusive |"
    )
    wang = next(x for x in lines if x.startswith("| Wang et al. 2023"))
    assert wang == "| Wang et al. 2023 | – | 1 supported · 0 refuted · 0 inconclusive |"
    assert lines.index(wang) < lines.index(jeong)  # the registry's order of papers
    assert report.verdict_counts([a, b, c, old]) == {"supported": 1, "refuted": 1, "inconclusive": 1, "no interval": 1}
    # the registry's unchecked list is a section of its own
    assert "## What no chapter checks" in text
    assert "| ardis2024extracting | works on edge devices | no edge device here |" in text
    assert "The registry lists none." in report.reproduction_report(results, unchecked_claims=[], paper_refs=refs)


def test_figure_index_shows_numbered_figures_with_thumbnail_link_caption_and_command(tmp_path):
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image
    import matplotlib.pyplot as plt

    from compendium.figures import GLUE_PREFIX

    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)  # 600 px wide: the thumbnail is scaled down
    ax.plot([0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode()
    nb = nbformat.v4.new_notebook()
    nb.metadata["ualib"] = {"profile": "cpu"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A chapter"),
        nbformat.v4.new_code_cell("figures.show(fig, 'fig-05-line')"),
        nbformat.v4.new_markdown_cell(
            "```{glue:figure} fig-05-line\n:name: fig-05-line\n\nA straight line, rising.\n```"
        ),
    ]
    glued = {
        "output_type": "display_data",
        "metadata": {"scrapbook": {"name": "fig-05-line", "mime_prefix": GLUE_PREFIX}},
        "data": {GLUE_PREFIX + "image/png": png, GLUE_PREFIX + "text/plain": "<Figure>"},
    }
    nb.cells[1].outputs = [nbformat.from_dict(glued)]
    nbformat.write(nb, str(tmp_path / "05_demo.ipynb"))
    thumbs = tmp_path / "thumbs"
    thumbs.mkdir()
    text = report.figure_index(tmp_path, thumbs_dir=thumbs)
    assert "```{image} thumb_fig-05-line.png" in text
    assert ":target: ../chapters/05_demo.html#fig-05-line" in text
    assert "{numref}`fig-05-line`: A straight line, rising." in text
    assert "Drawn in code cell 2; regenerate with `make chapter NB=05_demo PROFILE=cpu`." in text
    assert "Unnumbered figures" not in text  # the glued figure is not counted twice
    thumb = matplotlib.image.imread(thumbs / "thumb_fig-05-line.png")
    assert thumb.shape[1] == 240 and thumb.shape[0] == 120
