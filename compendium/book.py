"""Build the book: run every chapter notebook with papermill in a profile, then build the HTML.

Usage (the Makefile calls these)::

    python -m compendium.book run   --profile cpu [--chapter 01_uncertainty_basics]
    python -m compendium.book run   --smoke --chapter 06_gradient_meta_classification  # gpu parameters, CPU-sized
    python -m compendium.book build --profile cpu      # run every chapter, then jupyter-book build
    python -m compendium.book strip notebooks/*.ipynb  # keep only the nbval-checked outputs, for git
    python -m compendium.book refresh notebooks/NN_name.ipynb  # run with its tiny defaults, then strip
    python -m compendium.book assets                 # install the book's browser assets (MathJax) from npm
    python -m compendium.book launch                 # write the repository URL into every notebook's install cell

Executed chapters go to ``book/chapters/<name>.ipynb`` (git-ignored); ``_toc.yml`` lists them.

The HTML works offline. Its browser assets (MathJax 3) come from the npm registry through the committed
``book/package.json`` and ``book/package-lock.json``: :func:`vendor_assets` runs ``npm ci`` into the
git-ignored ``book/node_modules`` when that folder is missing or was installed from another lock file.
This module is also the Sphinx extension that ``_config.yml`` lists (:func:`setup`): it copies MathJax
into the build's ``_static/mathjax`` and points the Binder / Colab buttons of executed chapters at their
source notebooks in ``notebooks/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from compendium.profiles import PROFILE_NAMES, chapter_parameters
from ualib._paths import repo_root, results_dir

__all__ = [
    "chapters",
    "run_chapter",
    "chapter_key",
    "prepare_page",
    "prepare_pages",
    "build_html",
    "vendor_assets",
    "strip_outputs",
    "refresh",
    "main",
    "setup",
    "repository_url",
    "repository_branch",
    "install_cell_source",
    "write_install_cells",
    "merge_preface",
]

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
HTML_TABLES_ENV = "UALIB_HTML_TABLES"  # compendium.tables.HTML_ENV (not imported: it would load pandas)
#: a code cell longer than this many lines is folded behind a toggle on the page (hide-input)
FOLD_LINES = 25
# what marks bookkeeping cells in the chapter notebooks (recognized here, so chapter edits need no tags)
_RESULTS_WRITER = "write_results("
INSTALL_MARK = "# ualib install cell"
_PREFACE_KEY = "preface"  # cell metadata["ualib"] key of the preface merged into an executed chapter
_PREFACE_HEADING = "## Preface"
_RESULTS_NOTE = "results written to "
# build tooling that cannot change what a chapter computes: editing it keeps the execution cache valid
_BUILD_ONLY = {"bench_page.py", "book.py", "browser.py", "pdf.py", "report.py"}
_LOCK_STAMP = ".ualib-lock.sha256"
MATHJAX_DIR = "mathjax"  # under the build's _static/; _config.yml's mathjax_path points into it
REPOSITORY_ENV = "UALIB_REPOSITORY_URL"  # set by the publish workflow from the hosting service's variables


def _root(root: str | os.PathLike | None) -> Path:
    r = Path(root) if root is not None else repo_root()
    if r is None:
        raise RuntimeError("cannot find the compendium's checkout; pass root=")
    return r


def chapters(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the chapter notebooks in ``notebooks/``, in order."""
    return sorted(p.stem for p in (_root(root) / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def chapter_key(name: str, profile: str, root: str | os.PathLike | None = None) -> str:
    """SHA-256 of everything an executed chapter depends on that can change in a checkout: the
    notebook, its parameters, every source file of ``ualib`` and of the compendium except its build
    tooling (``book.py``, ``browser.py``, ``pdf.py``, ``report.py``), and the torch version."""
    import torch

    import ualib

    r = _root(root)
    h = hashlib.sha256()
    h.update((r / "notebooks" / f"{name}.ipynb").read_bytes())
    h.update(json.dumps(chapter_parameters(profile, name), sort_keys=True).encode())
    h.update(torch.__version__.encode())
    for pkg in (Path(ualib.__file__).parent, Path(__file__).parent):
        for path in sorted(pkg.rglob("*.py")):
            if pkg == Path(__file__).parent and path.parent == pkg and path.name in _BUILD_ONLY:
                continue
            h.update(f"{pkg.name}/{path.relative_to(pkg).as_posix()}".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _cached(dst: Path, key: str, results: Path) -> bool:
    if not (dst.is_file() and results.is_file()):
        return False
    try:
        return json.loads(dst.read_text())["metadata"].get("ualib", {}).get("key") == key
    except (ValueError, KeyError):
        return False


def run_chapter(
    name: str,
    profile: str,
    *,
    root: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    progress: bool = True,
    force: bool = True,
    overrides: dict | None = None,
) -> tuple[Path, bool]:
    """Execute ``notebooks/<name>.ipynb`` with the profile's parameters.

    With ``force=False`` the run is skipped when the executed copy was made from the same notebook,
    parameters and ``ualib`` sources (:func:`chapter_key`) and its results file exists. ``overrides``
    replace profile parameters (e.g. ``{"seed": 1}`` for the seed-spread runs of ``make reference``; a
    ``seed`` override shifts the training ``seeds`` with it);
    such a run is never taken from the cache. Returns the executed copy's path and whether it came
    from that cache.
    """
    import nbformat
    import papermill as pm

    r = _root(root)
    src = r / "notebooks" / f"{name}.ipynb"
    if not src.is_file():
        raise FileNotFoundError(f"no chapter notebook {src}; chapters: {chapters(r)}")
    out = Path(output_dir) if output_dir is not None else r / "book" / "chapters"
    out.mkdir(parents=True, exist_ok=True)
    dst = out / f"{name}.ipynb"
    key = chapter_key(name, profile, r)
    parameters = chapter_parameters(profile, name)
    unknown = sorted(set(overrides or {}) - set(parameters))
    if unknown:
        raise ValueError(f"overrides {unknown} are not parameters of {name} in profile {profile}: {sorted(parameters)}")
    if overrides:
        if "seed" in overrides and "seeds" in parameters and "seeds" not in overrides:
            # the training seeds move with the seed: a seed-spread run with seed 1 trains [1] where the profile
            # trains [0], not the profile's seed-0 models under another name
            shift = int(overrides["seed"]) - int(parameters["seed"])
            overrides = {**overrides, "seeds": [int(x) + shift for x in parameters["seeds"]]}
        parameters.update(overrides)
        key += "+" + json.dumps(overrides, sort_keys=True)
        force = True
    if not force and _cached(dst, key, results_dir() / profile / f"{name}.json"):
        return dst, True
    # the book's kernels render results tables as styled HTML (compendium.tables.show); nbval's stay text
    os.environ[HTML_TABLES_ENV] = "1"
    pm.execute_notebook(
        str(src),
        str(dst),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(src.parent),
        progress_bar=progress,
        request_save_on_cell_execute=False,
    )
    nb = nbformat.read(str(dst), as_version=4)
    nb.metadata["ualib"] = {"key": key, "profile": profile}
    nbformat.write(nb, str(dst))
    return dst, False


def _lock_digest(book: Path) -> str:
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        h.update((book / name).read_bytes())
    return h.hexdigest()


def vendor_assets(root: str | os.PathLike | None = None, *, quiet: bool = True) -> tuple[Path, bool]:
    """Install the book's browser assets from the npm registry, unless already installed from this lock.

    Runs ``npm ci --prefix book`` (the committed ``book/package.json`` and ``book/package-lock.json``)
    when ``book/node_modules`` is missing or was installed from a different lock file; a stamp file in
    ``node_modules`` records the lock's SHA-256. Returns MathJax's ``es5`` folder (what the HTML
    serves as ``_static/mathjax``) and whether ``npm ci`` ran.

    Raises
    ------
    RuntimeError
        When ``npm`` is not installed or ``npm ci`` fails (its output is in the message).
    """
    book = _root(root) / "book"
    modules = book / "node_modules"
    es5 = modules / "mathjax" / "es5"
    stamp = modules / _LOCK_STAMP
    digest = _lock_digest(book)
    if (es5 / "tex-mml-chtml.js").is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return es5, False
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "the HTML book serves MathJax itself and installs it with npm from book/package-lock.json, "
            "but npm is not installed (Debian: apt-get install -y --no-install-recommends npm)"
        )
    cmd = [npm, "ci", "--prefix", str(book), "--ignore-scripts", "--no-audit", "--no-fund"]
    if quiet:
        cmd.append("--silent")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not (es5 / "tex-mml-chtml.js").is_file():
        output = proc.stdout[-5000:] + proc.stderr[-5000:]
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{output}")
    stamp.write_text(digest + "\n")
    return es5, True


def _add_tags(cell, *tags: str) -> None:
    have = cell.setdefault("metadata", {}).setdefault("tags", [])
    have.extend(t for t in tags if t not in have)


def _strip_check_mark(source: str) -> str:
    lines = source.split("\n")
    kept = [line for line in lines if line.strip() != CHECK_MARK]
    return "\n".join(kept)


def _drop_results_note(cell) -> None:
    """Remove the "results written to ..." lines from a cell's stdout (and outputs left empty)."""
    kept = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            text = out["text"] if isinstance(out["text"], str) else "".join(out["text"])
            text = "".join(line for line in text.splitlines(keepends=True) if not line.startswith(_RESULTS_NOTE))
            if not text:
                continue
            out["text"] = text
        kept.append(out)
    cell["outputs"] = kept


def prepare_page(nb: dict) -> dict:
    """Turn an executed chapter (notebook JSON) into what its page shows: the science, not the machinery.

    In place, and idempotent:

    - ``# NBVAL_CHECK_OUTPUT`` lines are removed from every code cell (the source notebook keeps them);
    - the "results written to ..." line is dropped from the output of the cell that writes ``results/``
      (it calls ``write_results(``); the cell is removed (``remove-cell``) when nothing else is left in
      its output, else its code is folded (``hide-input``); the install cell (first line
      ``# ualib install cell``) is removed;
    - when papermill injected parameters, the notebook's default parameters cell is removed and the
      injected one (the values this run used) is folded behind a toggle (``hide-input``);
    - code cells longer than :data:`FOLD_LINES` lines are folded (``hide-input``).

    Cells that already carry ``remove-*`` / ``hide-*`` tags keep them. The preface is merged separately
    (:func:`merge_preface`, called by :func:`prepare_pages`).
    """
    cells = nb.get("cells", [])
    injected = any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in cells)
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        src = _strip_check_mark(src)
        cell["source"] = src
        tags = cell.get("metadata", {}).get("tags", [])
        if _RESULTS_WRITER in src:
            _drop_results_note(cell)
            if not cell.get("outputs"):
                _add_tags(cell, "remove-cell")
            else:  # the cell shows something else too (a table): keep that, hide the bookkeeping code
                _add_tags(cell, "hide-input")
        elif src.lstrip().startswith(INSTALL_MARK):
            _add_tags(cell, "remove-cell")
        elif "parameters" in tags and injected:
            _add_tags(cell, "remove-cell")
        elif "injected-parameters" in tags:
            _add_tags(cell, "hide-input")
        elif src.count("\n") + 1 > FOLD_LINES:
            _add_tags(cell, "hide-input")
    return nb


def merge_preface(nb: dict, preface: str) -> dict:
    """Make a chapter's preface (``book/prefaces/<name>.md``) the opening section of its executed page.

    The preface's own title (``# Preface: ...``) becomes the section heading ``## Preface`` and its
    closing "Read the chapter: ..." line (a link to this very page) is dropped; the section is one
    markdown cell placed after the chapter's title cell (the first markdown cell with a ``# `` heading).
    In place and idempotent: a preface merged before (marked in the cell's ``metadata["ualib"]``) is
    replaced, so an edited preface shows on the next build. The preface files stay the one source of
    their text; the table of contents lists only the chapter.
    """
    lines = preface.strip("\n").split("\n")
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    while lines and (not lines[-1].strip() or lines[-1].startswith("Read the chapter:")):
        lines.pop()
    source = _PREFACE_HEADING + "\n" + "\n".join(lines).rstrip() + "\n"
    cell = {"cell_type": "markdown", "metadata": {"ualib": {_PREFACE_KEY: True}}, "source": source}
    cells = nb.setdefault("cells", [])
    cells[:] = [c for c in cells if not c.get("metadata", {}).get("ualib", {}).get(_PREFACE_KEY)]
    at = 0
    for i, c in enumerate(cells):
        src = c["source"] if isinstance(c["source"], str) else "".join(c["source"])
        if c.get("cell_type") == "markdown" and src.lstrip().startswith("# "):
            at = i + 1
            break
    cells.insert(at, cell)
    return nb


def prepare_pages(folder: str | os.PathLike, prefaces: str | os.PathLike | None = None) -> list[Path]:
    """Apply :func:`prepare_page` to every executed chapter ``<folder>/*.ipynb``, and :func:`merge_preface`
    where ``<prefaces>/<name>.md`` exists (default: the ``prefaces`` folder next to ``folder``); return
    the files changed."""
    changed = []
    prefaces = Path(prefaces) if prefaces is not None else Path(folder).parent / "prefaces"
    for path in sorted(Path(folder).glob("*.ipynb")):
        text = path.read_text()
        nb = prepare_page(json.loads(text))
        preface = prefaces / f"{path.stem}.md"
        if preface.is_file():
            merge_preface(nb, preface.read_text())
        new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def build_html(root: str | os.PathLike | None = None, *, builddir: str | os.PathLike | None = None) -> Path:
    """``jupyter-book build`` with warnings as errors; return the folder of the HTML.

    ``root`` holds ``_config.yml``, ``_toc.yml`` and ``book/`` (with the executed chapters in
    ``book/chapters/``); the HTML goes to ``<builddir or root>/_build/html``. MathJax is installed first
    when needed (:func:`vendor_assets`); the Sphinx extension in this module copies it into the HTML.
    """
    r = _root(root)
    vendor_assets(r)

    # what each chapter page shows: no nbval markers, no results-writing or duplicate parameters cells,
    # and its preface. First, because the figure index counts the cells of these prepared pages: built
    # the other way round, the index of a fresh build numbered the cells without the preface and the next
    # build numbered them with it, and so changed (and made every page be checked again).
    prepare_pages(r / "book" / "chapters")
    # generated pages: the reproduction report and the figure index, from results/ and book/chapters/
    from compendium.report import write_pages

    write_pages(r)
    from compendium.bench_page import write_benchmark_page

    write_benchmark_page(r)  # the benchmark appendix, from benchmarks/results/*.json

    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe if exe.exists() else "jupyter-book"), "build", str(r), "-W", "-n", "--keep-going"]
    if builddir is not None:
        cmd += ["--path-output", str(builddir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-20000:] + proc.stderr[-20000:])
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}); its output is above")
    return (Path(builddir) if builddir is not None else r) / "_build" / "html"


def repository_url(root: str | os.PathLike | None = None) -> str:
    """The repository URL of the launch, repository and download buttons.

    It is set in one place, ``repository.url`` in ``_config.yml``; the environment variable
    ``UALIB_REPOSITORY_URL`` overrides it (the publish workflow ``.github/workflows/book.yml`` sets it
    from the hosting service's own variables, so a fork publishes with its own URL).

    Raises
    ------
    ValueError
        When neither gives an ``https://`` URL.
    """
    import yaml

    url = os.environ.get(REPOSITORY_ENV, "").strip()
    if not url:
        config = yaml.safe_load((_root(root) / "_config.yml").read_text()) or {}
        url = str((config.get("repository") or {}).get("url", "")).strip()
    if not url.startswith("https://"):
        raise ValueError(f"the repository URL must start with https:// (from {REPOSITORY_ENV} or _config.yml): {url!r}")
    return url.rstrip("/")


def repository_branch(root: str | os.PathLike | None = None) -> str:
    """The branch the launch buttons and the notebooks' install cell use: ``repository.branch`` in
    ``_config.yml`` (default ``main``)."""
    import yaml

    config = yaml.safe_load((_root(root) / "_config.yml").read_text()) or {}
    return str((config.get("repository") or {}).get("branch") or "main").strip()


def install_cell_source(url: str, branch: str = "main") -> str:
    """The first cell of every chapter notebook: installs ``ualib`` (with the compendium and the book's
    extras) from the repository when ``import ualib`` fails, as on Colab or Binder without a checkout.

    Where ``ualib`` is importable (a checkout, the tests, the book build) it runs no installer. The
    book hides the cell (:func:`prepare_page`); ``python -m compendium.book launch`` writes it from
    :func:`repository_url`, so the URL is still set in one place.
    """
    spec = f"ualib[book] @ git+{url}@{branch}"
    return (
        f"{INSTALL_MARK}: on Colab or Binder without a checkout, install ualib from the repository\n"
        "try:\n"
        "    import ualib  # noqa: F401\n"
        "except ImportError:\n"
        "    import importlib\n"
        "    import subprocess\n"
        "    import sys\n"
        "\n"
        f'    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "{spec}"])\n'
        "    importlib.invalidate_caches()"
    )


def write_install_cells(root: str | os.PathLike | None = None) -> list[Path]:
    """Make the first cell of every ``notebooks/NN_*.ipynb`` the install cell (:func:`install_cell_source`
    of :func:`repository_url` and :func:`repository_branch`), tagged ``remove-cell``; an existing install
    cell is replaced, the rest of the notebook is untouched. Returns the notebooks changed."""
    r = _root(root)
    source = install_cell_source(repository_url(r), repository_branch(r))
    changed = []
    for name in chapters(r):
        path = r / "notebooks" / f"{name}.ipynb"
        text = path.read_text()
        nb = json.loads(text)
        cell = {
            "cell_type": "code",
            "execution_count": None,
            "id": "ualib-install",
            "metadata": {"tags": ["remove-cell"]},
            "outputs": [],
            "source": source.splitlines(keepends=True),
        }
        first = nb["cells"][0] if nb["cells"] else None
        if first is not None and "".join(first["source"]).lstrip().startswith(INSTALL_MARK):
            nb["cells"][0] = cell
        else:
            nb["cells"].insert(0, cell)
        new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


# ---- the Sphinx extension (listed in _config.yml under sphinx.config.extensions) -------------------


def _set_repository_url(app, config) -> None:
    """``config-inited``: the buttons use :func:`repository_url` (``_config.yml``, or the workflow's
    ``UALIB_REPOSITORY_URL``)."""
    if os.environ.get(REPOSITORY_ENV, "").strip():
        options = dict(config.html_theme_options or {})
        options["repository_url"] = repository_url(app.srcdir)
        config.html_theme_options = options


def _copy_mathjax(app, exception) -> None:
    """``build-finished``: copy MathJax's es5 folder into ``_static/mathjax`` unless it is already there
    from the same lock file."""
    if exception is not None or app.builder.format != "html":
        return
    es5, _ = vendor_assets(app.srcdir)
    dst = Path(app.outdir) / "_static" / MATHJAX_DIR
    stamp = es5.parents[1] / _LOCK_STAMP
    if (dst / _LOCK_STAMP).is_file() and (dst / _LOCK_STAMP).read_text() == stamp.read_text():
        return
    shutil.rmtree(dst, ignore_errors=True)
    # latest.js only exists to load MathJax from a CDN; nothing here uses it
    shutil.copytree(es5, dst, ignore=shutil.ignore_patterns("latest.js"))
    shutil.copy2(es5.parent / "LICENSE", dst / "LICENSE")
    shutil.copy2(stamp, dst / _LOCK_STAMP)


def _launch_source_notebooks(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context`` (after sphinx-book-theme's buttons): an executed chapter
    ``book/chapters/NN.ipynb`` is git-ignored, so Binder / Colab open its source ``notebooks/NN.ipynb``
    (which runs with the quick ``tiny`` defaults)."""
    if not pagename.startswith("book/chapters/"):
        return

    def fix(buttons):
        for button in buttons:
            url = button.get("url")
            if isinstance(url, str) and url.startswith("https://"):  # not the local download links
                button["url"] = button["url"].replace("book/chapters/", "notebooks/")
            fix(button.get("buttons", []))

    fix(context.get("header_buttons", []))


def setup(app) -> dict:
    """Sphinx entry point: check MathJax is installed (installing it from the lock if not), copy it into
    the HTML after the build, fix the launch buttons of executed chapters and number each chapter's
    figures by chapter (:func:`compendium.figures.number_by_chapter`)."""
    app.connect("config-inited", _set_repository_url)
    app.connect("builder-inited", lambda app: vendor_assets(app.srcdir))
    app.connect("build-finished", _copy_mathjax)
    app.connect("html-page-context", _launch_source_notebooks, priority=900)
    from compendium.figures import number_by_chapter

    app.connect("env-get-updated", number_by_chapter, priority=900)  # Figure NN.k, after Sphinx's numbers
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def strip_outputs(path: str | os.PathLike) -> None:
    """Clear every output except the text outputs of cells marked ``# NBVAL_CHECK_OUTPUT``.

    Committed notebooks keep exactly what nbval compares and no images, so the repository does not
    bloat; papermill metadata and the other cells' execution counts are dropped.
    """
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if cell.source.lstrip().startswith(CHECK_MARK):
            # nbval refuses reference outputs without an execution count, so checked cells keep theirs
            kept = []
            for o in cell.outputs:
                if o.output_type == "stream" and o.name == "stdout":
                    kept.append(o)
                elif o.output_type in ("execute_result", "display_data") and "text/plain" in o.get("data", {}):
                    o.data = {"text/plain": o.data["text/plain"]}
                    kept.append(o)
            cell.outputs = kept
        else:
            cell.execution_count = None
            cell.outputs = []
        if "tags" in cell.metadata and "injected-parameters" in cell.metadata["tags"]:
            raise ValueError(f"{path} is an executed copy with injected parameters; strip the source notebook instead")
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    nbformat.write(nb, str(path))


def refresh(path: str | os.PathLike) -> None:
    """Execute a chapter notebook with its own defaults (the tiny profile) and store, in place, only the
    outputs nbval checks: the reference that ``make test`` compares against."""
    import tempfile

    import papermill as pm

    src = Path(path).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / src.name
        pm.execute_notebook(str(src), str(out), kernel_name="python3", cwd=str(src.parent), progress_bar=False)
        strip_outputs(out)
        src.write_bytes(out.read_bytes())


def _fmt(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _browser_check(html: Path, shots: Path) -> tuple[str, bool]:
    """Open every page of the book just built in headless Chromium (:mod:`compendium.browser`), when Chromium
    and Playwright are installed; return one line for the summary and whether no problem was found."""
    from compendium.browser import check_book, find_chromium

    if find_chromium() is None:
        return "browser check skipped: no Chromium (apt-get install -y chromium)", True
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "browser check skipped: Playwright is not installed (pip install -e '.[test]')", True
    report = check_book(html, shots, reuse=True)  # a page unchanged since its last clean check is not reopened
    for problem in report.problems:
        print(f"  browser: {problem}", flush=True)
    return report.summary(), not report.problems


def _smoke_overrides(name: str) -> dict:
    """The overrides that turn ``name``'s gpu parameters into its smoke run, and the data cap for the kernel."""
    from compendium.profiles import SMOKE_MAX_N, smoke_parameters

    os.environ["UALIB_MAX_N"] = str(SMOKE_MAX_N)  # ualib.data.ENV_MAX_N; the kernel inherits it
    return smoke_parameters(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compendium.book", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in ("run", "build"):
        p = sub.add_parser(cmd)
        p.add_argument("--profile", default="cpu", choices=PROFILE_NAMES)
        p.add_argument("--chapter", action="append", help="run only these chapters (repeatable)")
        p.add_argument("--force", action="store_true", help="re-execute chapters even if nothing changed")
        if cmd == "run":
            p.add_argument("--seed", type=int, help="run with this seed instead of the profile's (never cached)")
            p.add_argument("--output-dir", help="where the executed notebooks go (default: book/chapters)")
            p.add_argument(
                "--smoke",
                action="store_true",
                help="run the gpu parameters shrunk to a CPU-sized smoke test (results/smoke/, _build/smoke/)",
            )
        if cmd == "build":
            p.add_argument(
                "--no-browser-check",
                action="store_true",
                help="skip opening every page in headless Chromium (and its screenshots)",
            )
    for cmd in ("strip", "refresh"):
        sub.add_parser(cmd).add_argument("notebooks", nargs="+")
    sub.add_parser("assets", help="install the book's browser assets (MathJax) from book/package-lock.json")
    sub.add_parser("launch", help="write the repository URL of _config.yml into every notebook's install cell")
    args = parser.parse_args(argv)
    if args.command == "run" and args.smoke:
        if args.seed is not None:
            parser.error("--smoke and --seed cannot be combined")
        args.profile = "gpu"

    if args.command in ("strip", "refresh"):
        for nb in args.notebooks:
            (strip_outputs if args.command == "strip" else refresh)(nb)
            print(f"{args.command}: {nb}")
        return 0
    if args.command == "launch":
        changed = write_install_cells(None)
        print(f"install cells from {repository_url(None)}: {len(changed)} notebooks changed")
        return 0
    if args.command == "assets":
        es5, installed = vendor_assets(None)
        print(f"MathJax {'installed by npm ci' if installed else 'already installed from this lock'}: {es5}")
        return 0

    root = _root(None)
    names = args.chapter or chapters(root)
    unknown = sorted(set(names) - set(chapters(root)))
    if unknown:
        parser.error(f"unknown chapters {unknown}; known: {chapters(root)}")
    t0 = time.perf_counter()
    timings, hits = {}, 0
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} (profile {args.profile}) ...", flush=True)
        t = time.perf_counter()
        extra = {}
        if args.command == "run" and args.smoke:
            extra = {"overrides": _smoke_overrides(name), "output_dir": args.output_dir or root / "_build" / "smoke"}
        elif args.command == "run" and args.seed is not None:
            extra = {"overrides": {"seed": args.seed}, "output_dir": args.output_dir}
        elif args.command == "run" and args.output_dir:
            extra = {"output_dir": args.output_dir}
        _, hit = run_chapter(name, args.profile, root=root, force=args.force, **extra)
        hits += hit
        timings[name + (" (cached)" if hit else "")] = time.perf_counter() - t
        how = "unchanged since its last run: reused" if hit else f"done in {_fmt(timings[name])}"
        print(f"[{i}/{len(names)}] {name} {how}", flush=True)
    if args.command == "build":
        t = time.perf_counter()
        _, installed = vendor_assets(root)
        print(
            f"MathJax for the offline HTML: {'installed by npm ci' if installed else 'reused'} "
            f"(book/node_modules, from book/package-lock.json)",
            flush=True,
        )
        print("building the HTML book (jupyter-book, warnings are errors; unchanged pages are reused) ...", flush=True)
        html = build_html(root)
        timings["HTML build"] = time.perf_counter() - t
        shots = root / "_build" / "screenshots" / args.profile
        check, ok = "browser check skipped (--no-browser-check)", True
        if not args.no_browser_check:
            print("opening every page in headless Chromium (offline; screenshots of each page) ...", flush=True)
            t = time.perf_counter()
            check, ok = _browser_check(html, shots)
            timings["browser check"] = time.perf_counter() - t
    print("\nsummary")
    for name, sec in timings.items():
        print(f"  {name:40s} {_fmt(sec):>10s}")
    print(f"  {'total':40s} {_fmt(time.perf_counter() - t0):>10s}")
    print(f"  chapters reused from the execution cache: {hits}/{len(names)} (models come from .cache/models)")
    shown_profile = "smoke" if args.command == "run" and args.smoke else args.profile
    results = sorted((results_dir() / shown_profile).glob("*.json"))
    for path in results:
        doc = json.loads(path.read_text())
        verdicts = [c.get("verdict", "supported" if c.get("passed") else "refuted") for c in doc["claims"]]
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        tally = ", ".join(f"{verdicts.count(v)} {v}" for v in ("supported", "refuted", "inconclusive"))
        tr = doc.get("metadata", {}).get("training")
        models = "" if not tr else f"; models: {tr['trained']} trained ({_fmt(tr['train_s'])}), {tr['loaded']} loaded"
        print(f"  {shown}: {len(verdicts)} claims: {tally}{models}")
    if args.command == "build":
        print(f"  {check}")
        print(f"\nthe book is at {html / 'index.html'}")
        if shots.is_dir() and any(shots.glob("*.png")):
            print(f"full-page screenshots of every page: {shots}/")
        if not ok:
            print("the browser check found problems (listed above)", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
