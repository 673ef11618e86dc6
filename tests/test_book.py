"""The book: committed notebooks keep only nbval-checked text, and the HTML builds from executed
notebooks with warnings as errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from ualib.book import build_html, chapter_key, chapters, run_chapter, strip_outputs

ROOT = Path(__file__).resolve().parents[1]


def test_strip_keeps_only_checked_text(tmp_path):
    nb = nbformat.v4.new_notebook()
    checked = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)")
    checked.execution_count = 2
    checked.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="1\n"),
        nbformat.v4.new_output("stream", name="stderr", text="progress\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "AAAA", "text/plain": "<Figure>"}),
    ]
    other = nbformat.v4.new_code_cell("plot()")
    other.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "AAAA"})]
    other.execution_count = 3
    nb.cells = [checked, other]
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    strip_outputs(path)
    out = nbformat.read(path, as_version=4)
    assert [o.output_type for o in out.cells[0].outputs] == ["stream", "display_data"]
    assert out.cells[0].outputs[0].text == "1\n"
    assert out.cells[0].outputs[1].data == {"text/plain": "<Figure>"}
    assert out.cells[0].execution_count == 2  # nbval needs it on reference cells
    assert out.cells[1].outputs == [] and out.cells[1].execution_count is None
    assert "image/png" not in path.read_text()


@pytest.mark.slow
def test_book_builds_without_warnings(tmp_path, monkeypatch):
    """Execute every chapter in the tiny profile and build the HTML with `-W` in a scratch copy."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "book", tmp_path / "book", ignore=shutil.ignore_patterns("chapters"))
    monkeypatch.setenv("UALIB_RESULTS", str(tmp_path / "results"))
    out = tmp_path / "book" / "chapters"
    for name in chapters(ROOT):
        _, hit = run_chapter(name, "tiny", root=ROOT, output_dir=out, progress=False)
        assert not hit
        doc = json.loads((tmp_path / "results" / "tiny" / f"{name}.json").read_text())
        assert doc["chapter"] == name and doc["profile"] == "tiny" and doc["claims"]
    # nothing changed: the execution cache is used; a missing results file forces a re-run
    name = chapters(ROOT)[0]
    assert run_chapter(name, "tiny", root=ROOT, output_dir=out, progress=False, force=False)[1]
    (tmp_path / "results" / "tiny" / f"{name}.json").unlink()
    assert not run_chapter(name, "tiny", root=ROOT, output_dir=out, progress=False, force=False)[1]
    html = build_html(tmp_path, builddir=tmp_path)
    assert (html / "index.html").is_file()
    for name in chapters(ROOT):
        page = (html / "book" / "chapters" / f"{name}.html").read_text()
        assert "Traceback (most recent call last)" not in page
        assert 'class="output traceback"' not in page and 'class="output stderr"' not in page
        assert "<img" in page  # figures made it into the page


def test_chapter_key_tracks_its_inputs():
    name = chapters(ROOT)[0]
    assert chapter_key(name, "tiny", ROOT) == chapter_key(name, "tiny", ROOT)
    assert chapter_key(name, "tiny", ROOT) != chapter_key(name, "cpu", ROOT)
