"""The book's generated pages: the reproduction report and the figure index.

Both are written from data, never by hand:

* :func:`reproduction_report` reads every ``results/<profile>/<chapter>.json`` that exists (``tiny``,
  ``cpu``, ``gpu``) and lays out, paper by paper, what the paper states (the sentences of the paper that
  ``METHODS.md`` could verify, with its source tags), every claim check the chapters ran, and what each
  profile measured, with pass / fail and whether the method is a reconstruction.
  Per chapter it draws a forest plot of the claims judged by the claims engine (:func:`forest_plot`):
  each claim's signed distance from its threshold with its 95 % interval, colored by verdict. It counts
  the verdicts per chapter and per paper and lists the papers' claims no chapter checks (the registry's
  ``unchecked``).
* :func:`figure_index` reads the executed chapters (``book/chapters/*.ipynb``) and lists every figure
  with a thumbnail linked to it, its number and caption, its notebook cell and the command that
  regenerates it (thumbnails ``thumb_<figure name>.png`` next to the page).

:func:`write_pages` writes both as MyST markdown into ``book/generated/`` (git-ignored); the HTML build
calls it before Sphinx runs; the forest plots are PNGs next to the page (``report_forest_<chapter>.png``). ``python -m compendium.report`` does the same by hand.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compendium.claims import VERDICTS
from compendium.profiles import PROFILE_NAMES
from ualib._paths import repo_root, results_dir

__all__ = [
    "Paper",
    "PAPERS",
    "ForestRow",
    "load_all_results",
    "forest_rows",
    "forest_plot",
    "verdict_counts",
    "reproduction_report",
    "figure_index",
    "staged_folder",
    "write_pages",
]


@dataclass(frozen=True)
class Paper:
    """A seed paper: how to cite it, what it states (verified sentences) and the chapters that test it."""

    key: str
    title: str
    chapters: tuple[str, ...]
    states: tuple[str, ...]
    reconstruction: str
    extra_chapters: tuple[str, ...] = field(default_factory=tuple)


# What each paper states, as far as METHODS.md could verify it. Tags: [READ] the paper's own words,
# [SEC] a secondary summary of the paper. The report quotes these, and nothing else, as "the paper".
PAPERS: tuple[Paper, ...] = (
    Paper(
        key="wang2023gradient",
        title="Gradient-based Uncertainty Attribution for Explainable Bayesian Deep Learning (CVPR 2023)",
        chapters=("02_ua_backprop", "03_uncertainty_mitigation"),
        states=(
            '[READ] A "gradient-based uncertainty attribution method to identify the most problematic regions '
            "of the input that contribute to the prediction uncertainty. Compared to existing methods, the "
            'proposed UA-Backprop has competitive accuracy, relaxed assumptions, and high efficiency."',
            '[SEC] "The uncertainty is fully explained to satisfy the completeness property such that the '
            'uncertainty can be decomposed into the sum of individual pixel attributions"; it "can efficiently '
            'attribute the uncertainty within a single backward pass".',
            '[READ] An "uncertainty mitigation strategy that leverages the attribution results as attention to '
            'further improve the model performance".',
        ),
        reconstruction="UA-Backprop's per-stage rules ("
        'book: chapter 2, "UA-Backprop", section "The method in three stages" — notebooks/02_ua_backprop.ipynb) and the mitigation strategy ('
        'book: chapter 3, "Uncertainty mitigation", section "Fine-tuning with and without attention" — notebooks/03_uncertainty_mitigation.ipynb) '
        "are reconstructions from the paper's public description; its tables were not available.",
    ),
    Paper(
        key="mulye2024uncertainty",
        title="Uncertainty Quantification for Gradient-based Explanations in Neural Networks (arXiv 2024)",
        chapters=("05_explanation_uncertainty",),
        states=(
            '[READ] "we propose a pipeline to ascertain the explanation uncertainty of neural networks by '
            'combining uncertainty estimation methods and explanation methods."',
            '[READ] "By computing the coefficient of variation of these distributions, we evaluate the confidence '
            "in the explanation and determine that the explanations generated using Guided Backpropagation have "
            'low uncertainty associated with them."',
            '[READ] "we compute modified pixel insertion/deletion metrics to evaluate the quality of the generated '
            'explanations."',
        ),
        reconstruction="The pipeline follows the paper's verified components; the exact insertion / deletion "
        "variant and the aggregation of CV over pixels are specification choices ("
        'book: chapter 5, "Explanation uncertainty", section "The pipeline" — notebooks/05_explanation_uncertainty.ipynb).',
    ),
    Paper(
        key="jeong2026visualizing",
        title="Visualizing Uncertainty: Spatial Maps of Missing and Conflicting Evidence in Deep Learning (arXiv 2026)",
        chapters=("04_uam",),
        states=(
            '[READ] UAM "combines Evidential Deep Learning (EDL) with Full-Gradient Class Activation Mapping '
            '(FullGrad)" and "distinguishes between… vacuity, representing lack of evidence, and dissonance, '
            'capturing conflicting evidence between competing hypotheses".',
            '[READ] "vacuity and dissonance activation maps are generated by computing belief-weighted attributions".',
            '[SEC] "UAM produces spatial maps that distinctly localize vacuity… and dissonance"; '
            '"FullGrad-based decomposition ensures attribution completeness".',
        ),
        reconstruction="FullGrad is standard (Srinivas & Fleuret 2019); the belief weighting of the vacuity and "
        "dissonance maps is a reconstruction ("
        'book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb).',
    ),
    Paper(
        key="ardis2024extracting",
        title="Extracting Explanations, Justification, and Uncertainty from Black-Box Deep Neural Networks (arXiv 2024)",
        chapters=("07_justification",),
        states=(
            "[READ] Virani et al.'s justification's \"memory and computational footprint prevents the approach "
            'from being effective for very large data sets and on edge devices."',
            '[READ] "We exploit the concept of Sparse Gaussian processes to overcome these two computational '
            "challenges while maintaining the[ir] method's accuracy and explainability.\"",
            '[READ] The method "extracts example-based justifications and uncertainty estimates that can be '
            'applied to any pre-trained DNN", "without any retraining", with "applications to anomaly '
            'detection and out-of-distribution detection tasks".',
        ),
        reconstruction="The sparse-GP construction (inducing points snapped to training examples, the "
        "justification weights) is a reconstruction from these sentences ("
        'book: chapter 7, "Justification" — notebooks/07_justification.ipynb).',
    ),
    Paper(
        key="oberdiek2018classification",
        title="Classification Uncertainty of Deep Neural Networks Based on Gradient Information (ANNPR 2018)",
        chapters=("06_gradient_meta_classification",),
        states=(
            '[READ] "for several such metrics we achieve the same meta classification accuracy … as for '
            'entropy thresholding."',
            '[READ] "meta classification rates for unknown concepts can be increased when using entropy together '
            'with several gradient based metrics as input quantities for a meta classifier."',
            '[READ] "Meta classifiers only trained on the uncertainty metrics of known concepts … usually do not '
            "perform equally well for all unknown concepts. If we however allow the meta classifier to be trained "
            "on uncertainty metrics for some out-of-distribution samples, meta classification for concepts remote "
            'from EMNIST digits … can be improved considerably."',
        ),
        reconstruction="The metrics follow the first author's public implementation; the network, the data "
        "(MNIST instead of EMNIST offline) and the meta classifiers are this compendium's choices ("
        'book: chapter 6, "Gradient meta classification", section "Meta classification" — notebooks/06_gradient_meta_classification.ipynb).',
    ),
)

_OP_TEXT = {">": ">", ">=": "≥", "<": "<", "<=": "≤"}


def load_all_results(root: str | os.PathLike | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{chapter: {profile: results document}}`` for every results file under ``root``.

    ``root`` defaults to :func:`ualib._paths.results_dir`. A file that is not a results document (no
    ``claims``) raises ``ValueError`` naming it.
    """
    folder = Path(root) if root is not None else results_dir()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for profile in PROFILE_NAMES:
        for path in sorted((folder / profile).glob("*.json")):
            doc = json.loads(path.read_text())
            if not isinstance(doc, dict) or "claims" not in doc or "chapter" not in doc:
                raise ValueError(f"{path} is not a results document (needs 'chapter' and 'claims')")
            out.setdefault(doc["chapter"], {})[profile] = doc
    return out


def _num(x: Any) -> str:
    if x is None:
        return "n/a"
    x = float(x)
    if x == 0:
        return "0"
    if abs(x) >= 1000 or abs(x) < 1e-3:
        return f"{x:.2e}"
    return f"{x:.4g}"


def _verdict(claim: dict[str, Any]) -> str:
    """``supported`` / ``refuted`` / ``inconclusive`` (claims standard), or ``pass`` / ``FAIL`` for a
    results file written before the claims engine (one number against a threshold, no interval)."""
    if "verdict" in claim:
        return str(claim["verdict"])
    return "pass" if claim.get("passed") else "FAIL"


def _tally(claims: list[dict[str, Any]]) -> str:
    verdicts = [_verdict(c) for c in claims]
    old = [v for v in verdicts if v in ("pass", "FAIL")]
    if len(old) == len(verdicts):
        return f"{old.count('pass')}/{len(old)} pass"
    text = " · ".join(f"{verdicts.count(v)} {v}" for v in VERDICTS)
    if old:  # a chapter half converted to the claims engine: its older checks are counted apart
        text += f"; without interval {old.count('pass')}/{len(old)} pass"
    return text


def verdict_counts(claims: list[dict[str, Any]]) -> dict[str, int]:
    """``{"supported": k, "refuted": k, "inconclusive": k, "no interval": k}`` over ``claims``; a claim
    written before the claims engine (no ``verdict``) counts as ``"no interval"``."""
    out = dict.fromkeys((*VERDICTS, "no interval"), 0)
    for c in claims:
        out[str(c["verdict"]) if "verdict" in c else "no interval"] += 1
    return out


def _cell(claim: dict[str, Any] | None) -> str:
    if claim is None:
        return "–"
    if "verdict" in claim:
        lo, hi = claim.get("ci", [None, None])
        seeds = claim.get("seeds") or []
        return (
            f"**{claim['verdict']}**: {_num(claim['estimate'])} [{_num(lo)}, {_num(hi)}], "
            f"n = {claim.get('n', '?')}, {len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
        )
    return f"{_num(claim['measured'])} {_verdict(claim)}"


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _chapter_table(runs: dict[str, dict[str, Any]]) -> list[str]:
    profiles = [p for p in PROFILE_NAMES if p in runs]
    ids: list[str] = []
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for p in profiles:
        for c in runs[p]["claims"]:
            if c["id"] not in by:
                ids.append(c["id"])
                by[c["id"]] = {}
            by[c["id"]][p] = c
    lines = [
        "| claim checked here | criterion | " + " | ".join(f"`{p}`" for p in profiles) + " | reconstruction |",
        "|---|---|" + "---|" * len(profiles) + "---|",
    ]
    for cid in ids:
        ref = next(iter(by[cid].values()))
        op = ref.get("op", ref.get("direction", ""))
        crit = f"{_OP_TEXT.get(op, op)} {_num(ref['threshold'])}"
        cells = " | ".join(_cell(by[cid].get(p)) for p in profiles)
        rec = "yes" if ref.get("reconstruction") else "no"
        lines.append(f"| {_escape(ref['statement'])} | {crit} | {cells} | {rec} |")
    return lines


def _run_line(profile: str, doc: dict[str, Any]) -> str:
    meta = doc.get("metadata", {})
    wall = meta.get("wall_time_s")
    when = str(meta.get("date", "?"))[:10]
    checks = doc.get("checks") or []
    held = sum(bool(c.get("holds")) for c in checks)
    return (
        f"`{profile}`: claims {_tally(doc['claims'])}"
        + (f"; implementation checks {held}/{len(checks)} hold" if checks else "")
        + f"; run on {meta.get('device', '?')}, {when}, "
        f"commit `{meta.get('commit', '?')}`" + (f", {_num(wall)} s" if wall is not None else "")
    )


# --------------------------------------------------------------------------------------------- evidence

# Okabe & Ito's colorblind-safe palette; the marker shape repeats the verdict for grey-scale prints.
_VERDICT_STYLE = {
    "supported": ("#0072B2", "o"),
    "refuted": ("#D55E00", "X"),
    "inconclusive": ("#7F7F7F", "D"),
}
_DISTANCE_LABEL = (
    "signed distance from the threshold, claimed side to the right\n"
    "(estimate − threshold for '>' claims, threshold − estimate for '<' claims)"
)


@dataclass(frozen=True)
class ForestRow:
    """One row of a chapter's forest plot: a claim judged in one profile, in threshold-distance units.

    ``distance``, ``lo`` and ``hi`` are the estimate and its 95 % interval as signed distances from the
    threshold, oriented so that positive is the claimed side: ``x - threshold`` for a ``">"`` claim,
    ``threshold - x`` for a ``"<"`` claim (the interval's bounds swap). ``None`` where the estimate or the
    interval is undefined. ``lo > 0`` is exactly ``supported``, ``hi < 0`` exactly ``refuted``.
    """

    id: str
    name: str
    profile: str
    distance: float | None
    lo: float | None
    hi: float | None
    verdict: str


def _signed(x: Any, direction: str, threshold: float) -> float | None:
    if x is None:
        return None
    x = float(x)
    if x != x:  # NaN
        return None
    return x - threshold if direction == ">" else threshold - x


def forest_rows(runs: dict[str, dict[str, Any]]) -> list[ForestRow]:
    """The forest-plot rows of one chapter, ``runs = {profile: results document}``.

    Only claims judged by the claims engine (with a ``verdict`` and an interval) give a row; rows are in
    the order the claims first appear, each claim's profiles in :data:`PROFILE_NAMES` order.
    """
    by: dict[str, list[ForestRow]] = {}
    for profile in (p for p in PROFILE_NAMES if p in runs):
        for c in runs[profile]["claims"]:
            if "verdict" not in c:
                continue
            d, thr = c["direction"], float(c["threshold"])
            lo, hi = (c.get("ci") or [None, None])[:2]
            a, b = _signed(lo, d, thr), _signed(hi, d, thr)
            if a is not None and b is not None and a > b:
                a, b = b, a
            row = ForestRow(
                id=c["id"],
                name=c["id"].partition(".")[2] or c["id"],
                profile=profile,
                distance=_signed(c.get("estimate"), d, thr),
                lo=a,
                hi=b,
                verdict=str(c["verdict"]),
            )
            by.setdefault(c["id"], []).append(row)
    return [r for rows in by.values() for r in rows]


def _old_shape(runs: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {p: k for p in PROFILE_NAMES if p in runs and (k := sum("verdict" not in c for c in runs[p]["claims"]))}


def forest_plot(chapter: str, rows: list[ForestRow], out: str | os.PathLike) -> Path | None:
    """Draw ``rows`` (from :func:`forest_rows`) into ``out/report_forest_<chapter>.png``; ``None`` if no rows.

    Each row: the 95 % interval as a horizontal bar, the estimate as a point, the threshold as a black
    tick at 0 (the distance of the threshold from itself), colored and shaped by verdict. The x axis is
    symmetric-logarithmic when the distances span more than two orders of magnitude (claims of one
    chapter measure different statistics), linear otherwise.
    """
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.lines import Line2D

    several = len({r.profile for r in rows}) > 1
    fig, ax = plt.subplots(figsize=(8.0, 1.3 + 0.32 * len(rows)))
    ys = list(range(len(rows)))[::-1]
    values = [abs(v) for r in rows for v in (r.distance, r.lo, r.hi) if v]
    for y, r in zip(ys, rows):
        color, marker = _VERDICT_STYLE.get(r.verdict, ("black", "s"))
        if r.lo is not None and r.hi is not None:
            ax.hlines(y, r.lo, r.hi, color=color, linewidth=2.5)
        if r.distance is not None:
            ax.plot(r.distance, y, marker=marker, color=color, markersize=7, linestyle="none")
        else:
            ax.text(0, y, "  estimate undefined", va="center", fontsize=8, color=color)
        ax.plot(0, y, marker="|", color="black", markersize=12, linestyle="none")
    ax.axvline(0, color="black", linewidth=0.8)
    label = _DISTANCE_LABEL
    if values and max(values) / min(values) > 100:
        # linear within one power of ten around 0 (below a quarter of the values), logarithmic beyond;
        # ticks at whole powers of ten only, every other one when there are many (labels must not overlap)
        kmin = math.floor(math.log10(sorted(values)[len(values) // 4]))
        kmax = math.ceil(math.log10(max(values)))
        ks = list(range(kmin, kmax + 1))
        if len(ks) > 3:
            ks = ks[::-2][::-1]
        ax.set_xscale("symlog", linthresh=10.0**kmin, linscale=1.0)
        ticks = [-(10.0**k) for k in reversed(ks)] + [0.0] + [10.0**k for k in ks]
        labels = [f"$-10^{{{k}}}$" for k in reversed(ks)] + ["0"] + [f"$10^{{{k}}}$" for k in ks]
        ax.set_xticks(ticks, labels, fontsize=8)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        label += "\nsymmetric log scale, linear within ±$10^{" + str(kmin) + "}$"
    ax.margins(x=0.06)
    ax.set_yticks(ys, [f"{r.name} · {r.profile}" if several else r.name for r in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(label, fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    handles = [Line2D([], [], color=c, marker=m, linewidth=2.5, label=v) for v, (c, m) in _VERDICT_STYLE.items()] + [
        Line2D([], [], color="black", marker="|", markersize=12, linestyle="none", label="threshold")
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(f"{chapter}: claims with 95 % intervals", fontsize=9)
    fig.tight_layout()
    path = Path(out) / f"report_forest_{chapter}.png"
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return path


def _forest_section(chapter: str, runs: dict[str, dict[str, Any]], figures_dir: Path | None) -> list[str]:
    rows = forest_rows(runs)
    old = _old_shape(runs)
    n_old = sum(old.values())
    old_text = (
        f"{n_old} claim result{'s' if n_old != 1 else ''} ("
        + ", ".join(f"`{p}`: {k}" for p, k in old.items())
        + ") written before the claims engine (one number against a threshold, no interval)."
    )
    lines: list[str] = []
    if rows and figures_dir is not None:
        path = forest_plot(chapter, rows, figures_dir)
        n = verdict_counts([{"verdict": r.verdict} for r in rows])
        alt = (
            f"Forest plot of {len(rows)} claim result{'s' if len(rows) != 1 else ''} of chapter {chapter}: "
            f"{n['supported']} supported, {n['refuted']} refuted, {n['inconclusive']} inconclusive; "
            "each row shows a claim's signed distance from its threshold with its 95 % interval. "
            "The table above gives the same numbers."
        )
        lines += [
            f"```{{figure}} {path.name}",
            f":alt: {alt}",
            "",
            "Each claim's estimate (point) and 95 % interval (bar) as a **signed distance from its threshold**, "
            "oriented so that the claimed side is to the right: estimate − threshold for a claim that a "
            "statistic exceeds its threshold (`>`), threshold − estimate for one that it stays below (`<`). "
            "The vertical line at 0 is the threshold (also ticked on every row). Blue circles: supported (the "
            "whole interval right of 0); orange crosses: refuted (the whole interval left of 0); grey "
            "diamonds: inconclusive. Claims measure different statistics, so only the position relative to 0 "
            "compares across rows.",
            "```",
            "",
        ]
    elif rows:
        lines += ["The forest plot of these claims is drawn when the page is written into the book.", ""]
    if n_old:
        lines += [("Not plotted: " if rows else "No claim of this chapter has an interval yet: ") + old_text, ""]
    return lines


def _paper_label(key: str, refs: dict[str, str]) -> str:
    if key == "background":
        return "background (results the chapters build on)"
    if key == "extension":
        return "extensions of this compendium"
    return _escape(refs.get(key, key))


def _paper_counts(results: dict[str, dict[str, dict[str, Any]]], refs: dict[str, str]) -> list[str]:
    profiles = [p for p in PROFILE_NAMES if any(p in runs for runs in results.values())]
    by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for runs in results.values():
        for p in profiles:
            for c in (runs.get(p) or {}).get("claims", []):
                if "verdict" in c:
                    by.setdefault(str(c.get("paper", "?")), {}).setdefault(p, []).append(c)
    if not by:
        return ["No claim has been judged by the claims engine yet.", ""]
    order = [k for k in refs if k in by] + sorted(k for k in by if k not in refs)
    lines = [
        "| paper | " + " | ".join(f"`{p}`" for p in profiles) + " |",
        "|---|" + "---|" * len(profiles),
    ]
    for key in order:
        cells = []
        for p in profiles:
            n = verdict_counts(by[key].get(p, []))
            cells.append(" · ".join(f"{n[v]} {v}" for v in VERDICTS) if by[key].get(p) else "–")
        lines.append(f"| {_paper_label(key, refs)} | " + " | ".join(cells) + " |")
    return lines + [""]


def _unchecked_section(items: list[dict[str, str]], refs: dict[str, str]) -> list[str]:
    lines = [
        "## What no chapter checks",
        "",
        "Statements of the papers that the registry (`compendium/claims.yml`) records as not tested by any "
        "chapter, with the reason.",
        "",
    ]
    if not items:
        return lines + ["The registry lists none.", ""]
    lines += ["| paper | claim | reason |", "|---|---|---|"]
    for it in items:
        lines.append(f"| {_paper_label(str(it['paper']), refs)} | {_escape(it['claim'])} | {_escape(it['reason'])} |")
    return lines + [""]


def reproduction_report(
    results: dict[str, dict[str, dict[str, Any]]],
    *,
    figures_dir: str | os.PathLike | None = None,
    unchecked_claims: list[dict[str, str]] | None = None,
    paper_refs: dict[str, str] | None = None,
) -> str:
    """The reproduction report as MyST markdown, from :func:`load_all_results`' output.

    ``figures_dir``: where the chapters' forest plots are written (the folder of the page: the page
    refers to them by file name); without it no plot is drawn or referenced. ``unchecked_claims`` and
    ``paper_refs`` default to the registry's :func:`compendium.claims.unchecked` and
    :func:`compendium.claims.papers`.
    """
    from compendium import claims as _claims

    figs = Path(figures_dir) if figures_dir is not None else None
    if figs is not None:
        figs.mkdir(parents=True, exist_ok=True)
    items = _claims.unchecked() if unchecked_claims is None else unchecked_claims
    refs = _claims.papers() if paper_refs is None else paper_refs
    lines = [
        "# Reproduction report",
        "",
        "This page is generated from `results/<profile>/*.json` each time the book is built "
        "(`python -m compendium.report`); nothing in it is typed by hand. For every seed paper it quotes what "
        "the paper states (only sentences our `METHODS.md` could verify: **[READ]** the paper's own "
        "words, **[SEC]** a secondary summary), then every claim check the chapters ran and what each "
        "profile measured. A claim's threshold and direction are fixed before the run, in the registry "
        "`compendium/claims.yml` (older checks: in the chapter); a refuted claim or failing check is "
        "reported as such. Where a chapter's claims carry 95 % intervals, a forest plot shows each claim's "
        "distance from its threshold. The papers' statements no chapter checks are listed at the end. None of the papers' result tables could be read, so **no number here is "
        "compared with a number of a paper**: the checks test the papers' qualitative statements on our "
        "runs.",
        "",
        "Profiles: `tiny` (scikit-learn's 8×8 digits, seconds; regenerated by the tests and not committed), "
        "`cpu` (real data at laptop scale, the committed reference), `gpu` (paper scale, where a GPU run was "
        "committed).",
        "",
        "## Summary",
        "",
        "| chapter | " + " | ".join(f"`{p}`" for p in PROFILE_NAMES) + " |",
        "|---|" + "---|" * len(PROFILE_NAMES),
    ]
    for chapter in sorted(results):
        cells = []
        for p in PROFILE_NAMES:
            doc = results[chapter].get(p)
            if doc is None:
                cells.append("not run")
            else:
                cells.append(_tally(doc["claims"]))
        lines.append(f"| {{doc}}`../chapters/{chapter}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        "A claim judged by the claims engine is **supported** when its whole 95 % interval lies on the "
        "claimed side of its pre-registered threshold (`compendium/claims.yml`), **refuted** when it lies "
        "wholly on the other side, and **inconclusive** otherwise; older results (no interval yet) count "
        "as pass / fail.",
        "",
        "### Verdicts per paper",
        "",
        "Claims judged by the claims engine only (the older pass / fail checks name no registry paper).",
        "",
    ]
    lines += _paper_counts(results, refs)

    covered: set[str] = set()
    for paper in PAPERS:
        lines += [f"## {paper.title}", "", f"{{cite}}`{paper.key}`", "", "**What the paper states**", ""]
        lines += [f"- {s}" for s in paper.states]
        lines += ["", "```{admonition} Reconstruction", ":class: warning", paper.reconstruction, "```", ""]
        for chapter in paper.chapters:
            covered.add(chapter)
            lines += [f"### {{doc}}`../chapters/{chapter}`", ""]
            runs = results.get(chapter)
            if not runs:
                lines += ["No results yet: this chapter has not been run in any profile.", ""]
                continue
            lines += [f"- {_run_line(p, runs[p])}" for p in PROFILE_NAMES if p in runs]
            lines += [""] + _chapter_table(runs) + [""]
            lines += _forest_section(chapter, runs, figs)
    others = sorted(set(results) - covered)
    if others:
        lines += [
            "## Chapters of the compendium itself",
            "",
            "Checks of the building blocks and of cross-paper comparisons, not of one paper.",
            "",
        ]
        for chapter in others:
            runs = results[chapter]
            lines += [f"### {{doc}}`../chapters/{chapter}`", ""]
            lines += [f"- {_run_line(p, runs[p])}" for p in PROFILE_NAMES if p in runs]
            lines += [""] + _chapter_table(runs) + [""]
            lines += _forest_section(chapter, runs, figs)
    lines += _unchecked_section(items, refs)
    return "\n".join(lines).rstrip() + "\n"


def _heading_before(cells: list[dict[str, Any]], index: int) -> str:
    for cell in reversed(cells[:index]):
        if cell.get("cell_type") == "markdown":
            for line in reversed("".join(cell.get("source", "")).splitlines()):
                m = re.match(r"^#{1,4}\s+(.*)", line)
                if m:
                    return m.group(1).strip()
    return ""


def _notebook_title(cells: list[dict[str, Any]], fallback: str) -> str:
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _thumbnail(mime: str, payload: str, out: Path, width: int = 240) -> Path:
    """Write a figure's image (a base64 PNG or SVG text) as a thumbnail at most ``width`` pixels wide."""
    import base64
    import io

    from PIL import Image

    if mime == "image/svg+xml":
        path = out.with_suffix(".svg")
        path.write_text(payload)
        return path
    raw = base64.b64decode(payload)
    path = out.with_suffix(".png")
    with Image.open(io.BytesIO(raw)) as img:
        w, h = img.size
        if w <= width:
            path.write_bytes(raw)
        else:  # Pillow, not matplotlib.image.thumbnail (deprecated in Matplotlib 3.11, removed in 3.13)
            img.resize((width, max(1, round(h * width / w))), Image.Resampling.LANCZOS).save(path, format="PNG")
    return path


def figure_index(
    chapters_dir: str | os.PathLike, profile: str | None = None, thumbs_dir: str | os.PathLike | None = None
) -> str:
    """MyST markdown listing every figure of the executed chapters in ``chapters_dir``.

    A numbered figure is one a chapter glues with :func:`compendium.figures.show` and places with a
    ``{glue:figure}`` directive: its entry shows a thumbnail (written to ``thumbs_dir`` as
    ``thumb_<name>.png``, linked to the figure in its chapter) when ``thumbs_dir`` is given, its number
    (a ``{numref}`` link), its caption, the code cell that draws it (1-based, as Jupyter counts) and the
    command that regenerates it. Any other ``image/png`` / ``image/svg+xml`` output of a code cell is
    listed as an unnumbered figure with its cell and section.
    """
    from compendium.figures import glued_images, placed_figures

    folder = Path(chapters_dir)
    thumbs = Path(thumbs_dir) if thumbs_dir is not None else None
    lines = [
        "# Figure index",
        "",
        "Every figure of the book, where it is made and how to make it again. Cell numbers count the "
        "notebook's cells from 1, as Jupyter shows them; `make chapter NB=<chapter> PROFILE=<profile>` "
        "re-executes a chapter (its models come from the cache in `.cache/models` when they exist). "
        "A thumbnail links to its figure.",
        "",
    ]
    any_fig = False
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        cells = nb.get("cells", [])
        prof = profile or nb.get("metadata", {}).get("ualib", {}).get("profile", "cpu")
        glued = glued_images(nb)
        entries = []
        for fig in placed_figures(nb):
            if fig.key not in glued or not fig.name:
                continue
            cell, mime, payload = glued[fig.key]
            if thumbs is not None:
                thumb = _thumbnail(mime, payload, thumbs / f"thumb_{fig.name}")
                entries += [
                    f"```{{image}} {thumb.name}",
                    f":alt: thumbnail of the figure {fig.name}",
                    ":width: 200px",
                    f":target: ../chapters/{path.stem}.html#{fig.name}",
                    "```",
                    "",
                ]
            entries += [
                f"{{numref}}`{fig.name}`: {fig.caption}",
                f"Drawn in code cell {cell + 1}; regenerate with `make chapter NB={path.stem} PROFILE={prof}`.",
                "",
            ]
        rows = []
        for i, cell in enumerate(cells):
            if cell.get("cell_type") != "code":
                continue
            n = sum(
                1
                for out in cell.get("outputs", [])
                if any(k in out.get("data", {}) for k in ("image/png", "image/svg+xml"))
            )
            if n:
                rows.append(f"| {i + 1} | {_escape(_heading_before(cells, i)) or '–'} | {n} |")
        if not entries and not rows:
            continue
        any_fig = True
        lines += [
            f"## {_escape(_notebook_title(cells, path.stem))}",
            "",
            f"Chapter {{doc}}`../chapters/{path.stem}`, notebook `notebooks/{path.name}`; regenerate with "
            f"`make chapter NB={path.stem} PROFILE={prof}`.",
            "",
            *entries,
        ]
        if rows:
            lines += [
                "Unnumbered figures:",
                "",
                "| cell | section | figures |",
                "|---|---|---|",
                *rows,
                "",
            ]
    if not any_fig:
        lines.append("No executed chapters with figures were found; run `make book` first.")
    return "\n".join(lines).rstrip() + "\n"


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike, owned: tuple[str, ...]):
    """Write generated files into a scratch folder, then publish into ``out`` only what changed.

    Yields the scratch folder. On exit every file in it is moved into ``out`` unless ``out`` already holds
    the same bytes, in which case the old file (and its modification time) stays; files in ``out`` that
    match one of the ``owned`` glob patterns and were not produced this time are removed (a plot goes when
    its source does). Sphinx decides what to re-read by modification time, so a rebuild with nothing
    changed re-reads no generated page.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ualib-generated-") as tmp:  # outside the book: Sphinx never sees it
        stage = Path(tmp)
        yield stage
        produced = {p.name for p in stage.iterdir() if p.is_file()}
        for name in sorted(produced):
            new, old = stage / name, out / name
            if not (old.is_file() and filecmp.cmp(new, old, shallow=False)):
                shutil.move(new, old)
        for pattern in owned:
            for stale in out.glob(pattern):
                if stale.name not in produced:
                    stale.unlink()


def write_pages(root: str | os.PathLike | None = None, *, profile: str | None = None) -> list[Path]:
    """Write ``book/generated/reproduction.md`` (with its forest plots ``report_forest_<chapter>.png``) and
    ``book/generated/figures.md`` (with its thumbnails); return the two pages' paths. A file whose content
    is unchanged is not rewritten (:func:`staged_folder`)."""
    base = Path(root) if root is not None else repo_root()
    if base is None:
        raise ValueError("cannot find the repository root; pass root=")
    out = base / "book" / "generated"
    results_root = results_dir() if root is None else Path(os.environ.get("UALIB_RESULTS", base / "results"))
    owned = ("reproduction.md", "figures.md", "report_forest_*.png", "thumb_*.png", "thumb_*.svg")
    with staged_folder(out, owned) as stage:
        pages = {
            "reproduction.md": reproduction_report(load_all_results(results_root), figures_dir=stage),
            "figures.md": figure_index(base / "book" / "chapters", profile=profile, thumbs_dir=stage),
        }
        for name, text in pages.items():
            (stage / name).write_text(text)
    return [out / name for name in pages]


if __name__ == "__main__":  # pragma: no cover - thin CLI
    for p in write_pages():
        print(f"wrote {p}")
