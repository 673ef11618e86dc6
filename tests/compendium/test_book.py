"""The book: committed notebooks keep only nbval-checked text; the HTML's configuration loads nothing
from a CDN; MathJax comes from the npm lock, installed once. (The tiny build of the whole book and its
browser check are in test_browser.py.)"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from compendium.book import _launch_source_notebooks, chapter_key, chapters, strip_outputs, vendor_assets

ROOT = Path(__file__).resolve().parents[2]


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


def test_chapter_key_tracks_its_inputs():
    name = chapters(ROOT)[0]
    assert chapter_key(name, "tiny", ROOT) == chapter_key(name, "tiny", ROOT)
    assert chapter_key(name, "tiny", ROOT) != chapter_key(name, "cpu", ROOT)


BUILD_ONLY = ("bench_page.py", "book.py", "browser.py", "pdf.py", "report.py")


def test_chapter_key_covers_ualib_and_compendium_except_build_tooling():
    """The key is the SHA-256 of the notebook, its parameters, torch's version, every ualib source and
    every compendium source but the build tooling (book.py, browser.py, report.py), whose edits cannot
    change what a chapter computes."""
    import torch

    from compendium.profiles import chapter_parameters

    name = chapters(ROOT)[0]
    h = hashlib.sha256()
    h.update((ROOT / "notebooks" / f"{name}.ipynb").read_bytes())
    h.update(json.dumps(chapter_parameters("tiny", name), sort_keys=True).encode())
    h.update(torch.__version__.encode())
    for pkg in (ROOT / "ualib", ROOT / "compendium"):
        for path in sorted(pkg.rglob("*.py")):
            rel = path.relative_to(pkg).as_posix()
            if pkg.name == "compendium" and rel in BUILD_ONLY:
                continue
            h.update(f"{pkg.name}/{rel}".encode() + path.read_bytes())
    assert chapter_key(name, "tiny", ROOT) == h.hexdigest()


def test_config_loads_nothing_from_a_cdn():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = cfg["sphinx"]["config"]
    assert "sphinx_thebe" not in sphinx["extensions"] and "compendium.book" in sphinx["extensions"]
    assert sphinx["mathjax_path"] == "mathjax/tex-mml-chtml.js"  # relative: served from _static/
    assert sphinx["nb_ipywidgets_js"] == {}  # no require.js / widget manager from CDNs
    # ... so a widget output shows its static fallback (PNG / text) instead of an empty widget view
    assert ["html", "application/vnd.jupyter.widget-view+json", None] in sphinx["nb_mime_priority_overrides"]
    assert cfg["launch_buttons"]["thebe"] is False
    assert cfg["launch_buttons"]["binderhub_url"] and cfg["launch_buttons"]["colab_url"]
    assert cfg["html"]["use_download_button"] is True
    assert "**/node_modules" in cfg["exclude_patterns"]


def test_launch_buttons_open_the_source_notebook():
    url = "https://mybinder.org/v2/gh/o/r/main?urlpath=tree/book/chapters/02_x.ipynb"
    colab = "https://colab.research.google.com/github/o/r/blob/main/"
    context = {
        "header_buttons": [
            {"type": "group", "buttons": [{"url": url}, {"url": colab + "book/chapters/02_x.ipynb"}]},
            {"type": "group", "buttons": [{"url": "../../_sources/book/chapters/02_x.ipynb"}]},
        ]
    }
    _launch_source_notebooks(None, "book/chapters/02_x", "page.html", context, None)
    launch, download = context["header_buttons"]
    assert [b["url"] for b in launch["buttons"]] == [
        "https://mybinder.org/v2/gh/o/r/main?urlpath=tree/notebooks/02_x.ipynb",
        colab + "notebooks/02_x.ipynb",
    ]
    assert download["buttons"][0]["url"] == "../../_sources/book/chapters/02_x.ipynb"  # local file: kept
    other = {"header_buttons": [{"url": url}]}
    _launch_source_notebooks(None, "book/intro", "page.html", other, None)
    assert other["header_buttons"][0]["url"] == url  # only executed chapters are rewritten


def test_mathjax_installs_from_the_lock_once(tmp_path):
    """npm ci runs when node_modules is missing or came from another lock, and not otherwise."""
    if shutil.which("npm") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("npm is needed to build the book (it installs MathJax from book/package-lock.json)")
        pytest.skip("npm is not installed")
    book = tmp_path / "book"
    book.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(ROOT / "book" / name, book / name)
    es5, installed = vendor_assets(tmp_path)
    assert installed and (es5 / "tex-mml-chtml.js").is_file()
    lock = json.loads((book / "package-lock.json").read_text())
    installed_version = json.loads((es5.parent / "package.json").read_text())["version"]
    assert installed_version == lock["packages"]["node_modules/mathjax"]["version"]
    digest = hashlib.sha256((book / "package.json").read_bytes() + (book / "package-lock.json").read_bytes())
    assert (book / "node_modules" / ".ualib-lock.sha256").read_text().strip() == digest.hexdigest()
    assert vendor_assets(tmp_path) == (es5, False)  # same lock: reused
    (book / "node_modules" / ".ualib-lock.sha256").write_text("another lock\n")
    assert vendor_assets(tmp_path) == (es5, True)  # lock changed: installed again


def test_run_refuses_overrides_that_are_not_parameters(tmp_path):
    from compendium.book import run_chapter

    with pytest.raises(ValueError, match=r"overrides \['sede'\] are not parameters of 01_uncertainty_basics"):
        run_chapter("01_uncertainty_basics", "tiny", output_dir=tmp_path, overrides={"sede": 1})
    assert not list(tmp_path.iterdir())  # refused before anything was executed
