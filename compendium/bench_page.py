"""The benchmark appendix page, generated at book-build time from ``benchmarks/results/*.json``.

``python -m benchmarks`` writes one JSON per machine (cases, scaling sweeps, memory check); this module
turns every such file into ``book/generated/benchmarks.md``: the table of ratios and, per machine, log-log
plots of time and peak memory against batch size, posterior samples and image size, one line per method,
the peer dashed. Nothing is typed by hand: every number on the page comes from the JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["load_results", "benchmark_page", "write_benchmark_page"]

AXES = {"batch": "batch size", "samples": "posterior samples S", "image": "image side (pixels)"}


def load_results(root: str | os.PathLike) -> list[dict[str, Any]]:
    """Every ``benchmarks/results/*.json`` under ``root``, sorted by file name."""
    folder = Path(root) / "benchmarks" / "results"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|")


def _plots(doc: dict[str, Any], out: Path, stem: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = doc.get("scaling", [])
    families = list(dict.fromkeys(r["family"] for r in rows))
    names = []
    for family in families:
        fam = [r for r in rows if r["family"] == family]
        axes = list(dict.fromkeys(r["axis"] for r in fam))
        fig, grid = plt.subplots(2, len(axes), figsize=(4 * len(axes), 6), squeeze=False)
        for j, axis in enumerate(axes):
            for i, (key, label) in enumerate((("time_s", "time (s)"), ("peak_mib", "peak memory (MiB)"))):
                ax = grid[i][j]
                for method in dict.fromkeys(r["method"] for r in fam):
                    pts = sorted((r["value"], r[key]) for r in fam if r["axis"] == axis and r["method"] == method)
                    pts = [(v, max(y, 1e-3)) for v, y in pts]
                    peer = any(r["peer"] for r in fam if r["method"] == method)
                    ax.plot(*zip(*pts), "--" if peer else "-", marker="o", label=method)
                ax.set_xscale("log")
                ax.set_yscale("log")
                xs = sorted({r["value"] for r in fam if r["axis"] == axis})
                ax.set_xticks(xs, [str(v) for v in xs])  # the measured points, no minor-tick clutter
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                ax.set_xlabel(AXES.get(axis, axis))
                ax.set_ylabel(label)
                ax.grid(True, which="both", alpha=0.3)
        grid[0][0].legend(fontsize=8)
        fig.suptitle(f"{family} on {doc['machine']['name']}")
        fig.tight_layout()
        name = f"{stem}-{family.replace(' ', '_')}.png"
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        names.append((family, name))
    return names


def benchmark_page(docs: list[dict[str, Any]], out: Path) -> str:
    """The Markdown of the appendix page; figures are written to ``out``."""
    lines = ["# Appendix: ualib against its peers", "",
             "Generated at build time from `benchmarks/results/*.json`, written by `python -m benchmarks` "
             "(`make bench`). Ratio = peer time / ualib time (> 1: ualib faster), the best of several "
             "interleaved runs after a warm-up, in one process. The machine is shared: read the ratios, not "
             "the absolute times, and compare the 1- and 2-thread rows to judge the noise.", ""]  # fmt: skip
    if not docs:
        return "\n".join(lines + ["No benchmark results are committed yet.", ""])
    for k, doc in enumerate(docs):
        m = doc["machine"]
        lines += [f"## {m['name']}", "", f"{m['cpu']}, {m['cpu_count']} CPUs, GPU {m['gpu']}, torch {m['torch']}; "
                  f"suite wall time {doc['wall_s']:.0f} s.", "",
                  "| case | peer | threads | ualib (ms) | peer (ms) | ratio | target | agreement | note |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for c in doc["cases"]:
            a = c["agreement"]
            agree = (
                f"{_esc(a['measure'])} = {a['value']:.1e} (tol {a['tol']:.0e}) {'ok' if c['agrees'] else 'MISMATCH'}"
            )
            lines.append(
                f"| {_esc(c['case'])} | {_esc(c['peer'])} | {c['threads']} | {c['t_ualib_s'] * 1e3:.1f} | "
                f"{c['t_peer_s'] * 1e3:.1f} | {c['ratio']:.2f} | {'≥' if c['met'] else 'below'} {c['target']:.1f} | "
                f"{agree} | {_esc(c['note'])} |"
            )
        lines += ["", "### Memory stays bounded", "", "| method | batches | peak (MiB) | allowed at the largest | ok |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for r in doc.get("memory", []):
            peaks = ", ".join(f"{p:.0f}" for p in r["peak_mib"])
            lines.append(f"| {_esc(r['method'])} | {r['batches']} | {peaks} | {r['allowed_mib']:.0f} | {r['ok']} |")
        lines.append("")
        for family, name in _plots(doc, out, f"bench{k}"):
            lines += [f"### Scaling: {family}", "", f"![{family}: time and peak memory, log-log]({name})", ""]
    return "\n".join(lines)


def write_benchmark_page(root: str | os.PathLike) -> Path:
    """Write ``book/generated/benchmarks.md`` (and its figures ``bench<k>-<family>.png``) under ``root``;
    return its path. Unchanged files are not rewritten (:func:`compendium.report.staged_folder`)."""
    from compendium.report import staged_folder

    base = Path(root)
    out = base / "book" / "generated"
    with staged_folder(out, ("benchmarks.md", "bench*-*.png")) as stage:
        (stage / "benchmarks.md").write_text(benchmark_page(load_results(base), stage))
    return out / "benchmarks.md"


if __name__ == "__main__":  # pragma: no cover - thin CLI
    from compendium.report import repo_root

    print(f"wrote {write_benchmark_page(repo_root())}")
