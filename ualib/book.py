"""Build the book: run every chapter notebook with papermill in a profile, then build the HTML.

Usage (the Makefile calls these)::

    python -m ualib.book run   --profile cpu [--chapter 01_uncertainty_basics]
    python -m ualib.book build --profile cpu      # run every chapter, then jupyter-book build
    python -m ualib.book strip notebooks/*.ipynb  # keep only the nbval-checked outputs, for git
    python -m ualib.book refresh notebooks/NN_name.ipynb  # run with its tiny defaults, then strip

Executed chapters go to ``book/chapters/<name>.ipynb`` (git-ignored); ``_toc.yml`` lists them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ._paths import repo_root, results_dir
from .profiles import PROFILE_NAMES, chapter_parameters

__all__ = ["chapters", "run_chapter", "chapter_key", "build_html", "strip_outputs", "refresh", "main"]

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


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
    notebook, its parameters, every ``ualib`` source file, and the torch version."""
    import hashlib

    import torch

    r = _root(root)
    h = hashlib.sha256()
    h.update((r / "notebooks" / f"{name}.ipynb").read_bytes())
    h.update(json.dumps(chapter_parameters(profile, name), sort_keys=True).encode())
    h.update(torch.__version__.encode())
    for path in sorted((Path(__file__).parent).rglob("*.py")):
        h.update(path.relative_to(Path(__file__).parent).as_posix().encode())
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
) -> tuple[Path, bool]:
    """Execute ``notebooks/<name>.ipynb`` with the profile's parameters.

    With ``force=False`` the run is skipped when the executed copy was made from the same notebook,
    parameters and ``ualib`` sources (:func:`chapter_key`) and its results file exists. Returns the
    executed copy's path and whether it came from that cache.
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
    if not force and _cached(dst, key, results_dir() / profile / f"{name}.json"):
        return dst, True
    pm.execute_notebook(
        str(src),
        str(dst),
        parameters=chapter_parameters(profile, name),
        kernel_name="python3",
        cwd=str(src.parent),
        progress_bar=progress,
        request_save_on_cell_execute=False,
    )
    nb = nbformat.read(str(dst), as_version=4)
    nb.metadata["ualib"] = {"key": key, "profile": profile}
    nbformat.write(nb, str(dst))
    return dst, False


def build_html(root: str | os.PathLike | None = None, *, builddir: str | os.PathLike | None = None) -> Path:
    """``jupyter-book build`` with warnings as errors; return the folder of the HTML."""
    r = _root(root)
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe if exe.exists() else "jupyter-book"), "build", str(r), "-W", "-n", "--keep-going"]
    if builddir is not None:
        cmd += ["--path-output", str(builddir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-20000:] + proc.stderr[-20000:])
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}); its output is above")
    return (Path(builddir) if builddir is not None else r) / "_build" / "html"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ualib.book", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in ("run", "build"):
        p = sub.add_parser(cmd)
        p.add_argument("--profile", default="cpu", choices=PROFILE_NAMES)
        p.add_argument("--chapter", action="append", help="run only these chapters (repeatable)")
        p.add_argument("--force", action="store_true", help="re-execute chapters even if nothing changed")
    for cmd in ("strip", "refresh"):
        sub.add_parser(cmd).add_argument("notebooks", nargs="+")
    args = parser.parse_args(argv)

    if args.command in ("strip", "refresh"):
        for nb in args.notebooks:
            (strip_outputs if args.command == "strip" else refresh)(nb)
            print(f"{args.command}: {nb}")
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
        _, hit = run_chapter(name, args.profile, root=root, force=args.force)
        hits += hit
        timings[name + (" (cached)" if hit else "")] = time.perf_counter() - t
        how = "unchanged since its last run: reused" if hit else f"done in {_fmt(timings[name])}"
        print(f"[{i}/{len(names)}] {name} {how}", flush=True)
    if args.command == "build":
        print("building the HTML book (jupyter-book, warnings are errors) ...", flush=True)
        t = time.perf_counter()
        html = build_html(root)
        timings["HTML build"] = time.perf_counter() - t
    print("\nsummary")
    for name, sec in timings.items():
        print(f"  {name:40s} {_fmt(sec):>10s}")
    print(f"  {'total':40s} {_fmt(time.perf_counter() - t0):>10s}")
    print(f"  chapters reused from the execution cache: {hits}/{len(names)} (models come from .cache/models)")
    results = sorted((results_dir() / args.profile).glob("*.json"))
    for path in results:
        doc = json.loads(path.read_text())
        failed = [c["id"] for c in doc["claims"] if not c["passed"]]
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        print(f"  {shown}: {len(doc['claims']) - len(failed)}/{len(doc['claims'])} claims pass"
              + (f" (failing: {', '.join(failed)})" if failed else ""))
    if args.command == "build":
        print(f"\nthe book is at {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
