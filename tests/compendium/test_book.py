"""The book: committed notebooks keep only nbval-checked text; the HTML's configuration loads nothing
from a CDN; MathJax comes from the npm lock, installed once. (The tiny build of the whole book and its
browser check are in test_browser.py.)"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import prerequisite_missing

from compendium.book import (
    INSTALL_MARK,
    _launch_source_notebooks,
    chapter_key,
    chapters,
    install_cell_source,
    merge_preface,
    prepare_page,
    prepare_pages,
    repository_branch,
    repository_url,
    strip_outputs,
    vendor_assets,
)

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
        prerequisite_missing("npm is needed to build the book (it installs MathJax from book/package-lock.json)")
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


@pytest.mark.parametrize("chapter", ["01_uncertainty_basics", "02_ua_backprop", "07_justification"])
def test_a_seed_override_moves_the_training_seeds_with_it(tmp_path, monkeypatch, chapter):
    """A seed-spread run (``--seed 1``) of a chapter with ``seeds`` must train seed 1's models, not the
    profile's seed-0 models judged under another name."""
    import papermill

    from compendium.book import run_chapter
    from compendium.profiles import chapter_parameters

    seen = {}

    def fake_execute(src, dst, *, parameters, **kwargs):
        seen.update(parameters)
        shutil.copyfile(src, dst)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    profile = chapter_parameters("cpu", chapter)
    run_chapter(chapter, "cpu", output_dir=tmp_path, overrides={"seed": 5})
    assert seen["seed"] == 5
    assert seen["seeds"] == [x + 5 - profile["seed"] for x in profile["seeds"]]
    assert len(seen["seeds"]) == len(profile["seeds"]) >= 3
    run_chapter(chapter, "cpu", output_dir=tmp_path, overrides={"seed": 5, "seeds": [7]})
    assert seen["seeds"] == [7]  # an explicit seeds override wins


def _code(source, tags=(), outputs=()):
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source, "outputs": list(outputs),
            "execution_count": 1}  # fmt: skip


def _stream(text):
    return {"output_type": "stream", "name": "stdout", "text": text}


def test_prepare_page_hides_the_machinery():
    """On the page: no nbval marker, no install cell, no results-writing note, one parameters cell (the
    injected one, folded), long code folded; the table of a results cell stays; idempotent."""
    table = {"output_type": "display_data", "data": {"text/html": "<table></table>", "text/plain": "t"}}
    nb = {
        "cells": [
            _code(install_cell_source("https://example.org/r")),
            {"cell_type": "markdown", "metadata": {}, "source": "# Title"},
            _code('profile = "tiny"', tags=["parameters"]),
            _code('profile = "cpu"', tags=["injected-parameters"]),
            _code("# NBVAL_CHECK_OUTPUT\nprint(1)", outputs=[_stream("1\n")]),
            _code("path = write_results(x)\nprint(...)", outputs=[_stream("results written to results/x.json\n")]),
            _code("show_table(t)\npath = write_results(x)", outputs=[table, _stream("results written to r\n")]),
            _code("\n".join(f"a{i} = {i}" for i in range(40))),
            _code("plot()", tags=["hide-output"]),
        ]
    }
    prepare_page(nb)
    c = nb["cells"]
    tags = [cell.get("metadata", {}).get("tags", []) for cell in c]
    assert "remove-cell" in tags[0]  # install cell
    assert "remove-cell" in tags[2] and "hide-input" in tags[3]  # defaults gone, injected values folded
    assert c[4]["source"] == "print(1)" and not any(t.startswith(("remove", "hide")) for t in tags[4])
    assert "remove-cell" in tags[5]  # results writing, nothing else to show
    assert "hide-input" in tags[6] and c[6]["outputs"] == [table]  # the table stays, the note goes
    assert "hide-input" in tags[7]  # 40 lines of code
    assert tags[8] == ["hide-output"]
    before = [dict(cell) for cell in c]
    prepare_page(nb)
    assert [dict(cell) for cell in nb["cells"]] == before
    # without injected parameters (a notebook run with its own defaults) the parameters cell stays
    alone = {"cells": [_code('profile = "tiny"', tags=["parameters"])]}
    assert prepare_page(alone)["cells"][0]["metadata"]["tags"] == ["parameters"]


PREFACE = "# Preface: X\n\n**The question.** Why?\n\n```bash\nmake chapter NB=x\n```\n\nRead the chapter: {doc}`x`.\n"


def test_merge_preface_opens_the_chapter(tmp_path):
    nb = {"cells": [_code("# ualib install cell"), {"cell_type": "markdown", "metadata": {}, "source": "# X: a title\n"},
                    {"cell_type": "markdown", "metadata": {}, "source": "## Method"}]}  # fmt: skip
    merge_preface(nb, PREFACE)
    cells = nb["cells"]
    assert [c["source"].split("\n")[0] for c in cells] == [
        "# ualib install cell",
        "# X: a title",
        "## Preface",
        "## Method",
    ]
    assert "**The question.** Why?" in cells[2]["source"] and "make chapter NB=x" in cells[2]["source"]
    assert "Read the chapter" not in cells[2]["source"] and "Preface: X" not in cells[2]["source"]
    merge_preface(nb, PREFACE.replace("Why?", "How?"))  # an edited preface replaces the merged one
    assert len(nb["cells"]) == 4 and "How?" in nb["cells"][2]["source"] and "Why?" not in nb["cells"][2]["source"]
    # prepare_pages finds book/prefaces/<name>.md next to book/chapters/
    (tmp_path / "chapters").mkdir()
    (tmp_path / "prefaces").mkdir()
    (tmp_path / "prefaces" / "01_x.md").write_text(PREFACE)
    page = tmp_path / "chapters" / "01_x.ipynb"
    page.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# X"}]}))
    assert prepare_pages(tmp_path / "chapters") == [page]
    assert prepare_pages(tmp_path / "chapters") == []  # idempotent
    assert [c["source"].split("\n")[0] for c in json.loads(page.read_text())["cells"]] == ["# X", "## Preface"]


def test_toc_lists_chapters_first_level_in_the_intros_order():
    """Each chapter is a first-level entry (its preface is merged into the page, not a page of its own),
    and the intro's reading path visits the chapters in the sidebar's order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [c for part in toc["parts"] for c in part["chapters"]]
    assert not any("sections" in c for c in entries)
    files = [c["file"] for c in entries]
    assert not any(f.startswith("book/prefaces/") for f in files)
    for name in chapters(ROOT):
        if (ROOT / "book" / "prefaces" / f"{name}.md").is_file():
            assert f"book/chapters/{name}" in files
    intro = (ROOT / "book" / "intro.md").read_text()
    path = re.findall(r"^\| \d+ \| \{doc\}`[^<]*<([^>]+)>`", intro, flags=re.M)
    assert path, "the intro's reading-path table"
    in_toc = [f.removeprefix("book/") for f in files if f.removeprefix("book/") in path]
    assert path == in_toc
    for md in (ROOT / "book").glob("*.md"):
        assert "prefaces/" not in md.read_text(), f"{md.name} links to a preface page, which is no longer built"


def test_install_cell_is_first_in_every_notebook_and_reads_the_one_url(monkeypatch):
    monkeypatch.delenv("UALIB_REPOSITORY_URL", raising=False)
    expected = install_cell_source(repository_url(ROOT), repository_branch(ROOT))
    assert repository_url(ROOT) in expected
    for name in chapters(ROOT):
        first = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4).cells[0]
        assert first.cell_type == "code" and first.source == expected, f"{name}: run python -m compendium.book launch"
        assert "remove-cell" in first.metadata.get("tags", [])


def test_install_cell_installs_only_when_ualib_is_missing(monkeypatch):
    import subprocess
    import sys

    source = install_cell_source("https://example.org/o/r", "dev")
    assert source.startswith(INSTALL_MARK)
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda cmd: calls.append(cmd))
    exec(compile(source, "install-cell", "exec"), {})
    assert calls == []  # ualib is importable here: no installer runs
    monkeypatch.setitem(sys.modules, "ualib", None)  # import ualib now raises ImportError
    exec(compile(source, "install-cell", "exec"), {})
    assert calls == [
        [sys.executable, "-m", "pip", "install", "--quiet", "ualib[book] @ git+https://example.org/o/r@dev"]
    ]


def test_binder_environment_is_the_conda_environment_less_the_checkout():
    """Binder builds binder/environment.yml before it copies the repository, so `-e .` moves to postBuild."""
    root = yaml.safe_load((ROOT / "environment.yml").read_text())
    binder = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())

    def deps(env):
        out = []
        for d in env["dependencies"]:
            out += [("pip", p) for p in d["pip"]] if isinstance(d, dict) else [("conda", d)]
        return out

    assert ("pip", "-e .") in deps(root)
    assert deps(binder) == [d for d in deps(root) if d != ("pip", "-e .")]
    assert binder["channels"] == root["channels"]
    post = ROOT / "binder" / "postBuild"
    assert os.access(post, os.X_OK) and "pip install --no-deps -e ." in post.read_text()
