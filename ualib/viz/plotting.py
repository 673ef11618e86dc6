"""Figures: one style for the whole book (colour-blind-safe palette, labelled axes and colorbars).

Plotting is the only layer that rescales, takes absolute values or applies colormaps; algorithms
return raw numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = [
    "PALETTE",
    "use_style",
    "reliability_diagram",
    "image_grid",
    "grouped_bars",
    "risk_coverage",
    "attribution_grid",
    "curves",
    "METHOD_COLORS",
    "legend_outside",
    "percentile_limit",
    "is_zero_map",
    "mark_zero",
    "overlay_grid",
    "dot_intervals",
    "magnitude_grid",
    "distinct_examples",
]

#: Okabe & Ito (2008) colour-blind-safe palette
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def use_style() -> None:
    """Apply the book's matplotlib style (call once per notebook)."""
    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "figure.figsize": (7.0, 3.2),
            "axes.prop_cycle": mpl.cycler(color=PALETTE),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "font.size": 9,
            "axes.titlesize": 10,
            "legend.frameon": False,
            "image.cmap": "viridis",
        }
    )


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def reliability_diagram(
    ax: plt.Axes, diagram: Mapping[str, np.ndarray], *, title: str = "", ece: float | None = None, legend: bool = True
) -> plt.Axes:
    """Draw a reliability diagram from :func:`ualib.metrics.reliability_diagram`'s dictionary.

    The legend goes to the right of the axes (``legend=False``: none, e.g. on all but the last panel)."""
    edges = _np(diagram["bin_edges"])
    acc = _np(diagram["bin_accuracy"])
    centers = 0.5 * (edges[:-1] + edges[1:])
    width = np.diff(edges)
    ok = ~np.isnan(acc)
    ax.bar(centers[ok], acc[ok], width=width[ok], color=PALETTE[0], edgecolor="white", label="accuracy")
    conf = _np(diagram["bin_confidence"])
    lo = np.minimum(acc[ok], conf[ok])
    ax.bar(
        centers[ok],
        np.abs(conf[ok] - acc[ok]),
        bottom=lo,
        width=width[ok],
        facecolor="none",
        edgecolor=PALETTE[3],
        hatch="////",
        linewidth=0.0,
        label="gap |confidence - accuracy|",
    )
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max mean probability)", ylabel="accuracy")
    ax.set_title(title + (f"  (ECE {ece:.3f})" if ece is not None else ""))
    if legend:
        legend_outside(ax)
    return ax


def image_grid(
    images: torch.Tensor | np.ndarray,
    *,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    cmap: str = "gray",
    size: float = 1.1,
    suptitle: str | None = None,
) -> plt.Figure:
    """Show ``[N, C, H, W]`` or ``[N, H, W]`` images in a grid with optional per-image titles."""
    arr = _np(images)
    if arr.ndim == 4:
        arr = arr.transpose(0, 2, 3, 1)
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
    n = len(arr)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(arr[i], cmap=cmap, vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def grouped_bars(
    ax: plt.Axes,
    values: Mapping[str, Mapping[str, float]],
    *,
    ylabel: str,
    title: str = "",
) -> plt.Axes:
    """Bars of ``values[series][group]``: one colour per series, one cluster per group."""
    series = list(values)
    groups = list(next(iter(values.values())))
    width = 0.8 / len(series)
    xs = np.arange(len(groups))
    for i, s in enumerate(series):
        ax.bar(
            xs + (i - (len(series) - 1) / 2) * width,
            [values[s][g] for g in groups],
            width,
            label=s,
            color=PALETTE[i % len(PALETTE)],
        )
    ax.set_xticks(xs, groups)
    ax.set(ylabel=ylabel, title=title)
    legend_outside(ax)
    return ax


def risk_coverage(ax: plt.Axes, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str = "") -> plt.Axes:
    """Risk (error rate of the accepted inputs) against coverage, one line per estimator."""
    for i, (name, (cov, risk)) in enumerate(curves.items()):
        ax.plot(_np(cov), _np(risk), label=name, color=PALETTE[i % len(PALETTE)])
    ax.set(xlabel="coverage (fraction of inputs accepted)", ylabel="risk (error rate)", xlim=(0, 1), title=title)
    ax.set_ylim(bottom=0)
    legend_outside(ax)
    return ax


def distinct_examples(x: torch.Tensor | np.ndarray, k: int) -> list[int]:
    """Indices of ``k`` mutually distinct examples of ``x`` (``[N, ...]``) for an example row.

    Greedy farthest-point selection in pixel space, starting from example 0: each next example is the
    one farthest (Euclidean) from those already chosen, so near-copies (the same Omniglot character
    drawn by another hand) are picked only when nothing else is left. Deterministic.
    """
    a = _np(x).reshape(len(x), -1).astype(np.float64)
    k = min(int(k), len(a))
    if k <= 0:
        return []
    chosen = [0]
    dist = np.linalg.norm(a - a[0], axis=1)
    while len(chosen) < k:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(a - a[nxt], axis=1))
    return chosen


def legend_outside(ax: plt.Axes, **kwargs) -> plt.Legend | None:
    """Put ``ax``'s legend to the right of the axes, where it cannot cover data; ``None`` without labels."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    kwargs.setdefault("fontsize", 8)
    return ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def percentile_limit(maps, q: float = 99.0) -> float:
    """Upper colour limit for non-negative maps: the ``q``-th percentile of their positive finite values.

    A few extreme pixels then saturate instead of darkening every other map. All-zero (or empty) input
    gives 1.0, so that a colour scale ``[0, limit]`` is always valid.
    """
    if not 0 < q <= 100:
        raise ValueError(f"q is a percentile in (0, 100], got {q}")
    arrays = maps.values() if isinstance(maps, Mapping) else [maps]
    vals = np.concatenate([_np(m).astype(np.float64).ravel() for m in arrays]) if arrays else np.zeros(0)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    return float(np.percentile(vals, q)) if vals.size else 1.0


def is_zero_map(m, atol: float = 0.0) -> bool:
    """Whether map ``m`` is numerically zero: every finite value within ``atol`` of 0 (an all-NaN or
    empty map is not)."""
    a = _np(m).astype(np.float64)
    a = a[np.isfinite(a)]
    return bool(a.size) and float(np.max(np.abs(a))) <= atol


def mark_zero(ax: plt.Axes, text: str = "0 everywhere") -> None:
    """Write ``text`` across the middle of an image tile (for a map that is numerically zero)."""
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=7,
        color="black",
        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.85, "linewidth": 0},
    )


def overlay_grid(
    images: Mapping[str, torch.Tensor | np.ndarray],
    maps: Mapping[str, torch.Tensor | np.ndarray],
    *,
    label: str,
    title: str | None = None,
    q: float = 99.0,
    cmap: str = "inferno",
    size: float = 1.25,
    atol: float = 0.0,
) -> plt.Figure:
    """Non-negative maps over their inputs: rows = groups (keys of ``maps``), columns = examples.

    ``images[g]`` is ``[N, C, H, W]`` (shown as its grey mean), ``maps[g]`` is ``[N, 1, H, W]`` or
    ``[N, H, W]``, non-negative. One colour scale for all tiles, from 0 to :func:`percentile_limit`
    (``q``) of all maps (values above saturate, marked on the colorbar), whose colorbar is labelled
    ``label`` (the quantity and its unit). A map that is numerically zero (:func:`is_zero_map`) is
    not overlaid and says "0 everywhere" on its tile.
    """
    rows = list(maps)
    arrs = {g: _np(maps[g]) for g in rows}
    arrs = {g: a[:, 0] if a.ndim == 4 else a for g, a in arrs.items()}
    if any(np.nanmin(a) < 0 for a in arrs.values() if a.size):
        raise ValueError("overlay_grid shows non-negative maps; use attribution_grid for signed ones")
    n = max(len(a) for a in arrs.values())
    vmax = percentile_limit(arrs, q)
    fig, axes = plt.subplots(len(rows), n, figsize=(size * n + 1.4, size * len(rows)), squeeze=False)
    sm = mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(0.0, vmax), cmap=cmap)
    for i, g in enumerate(rows):
        img = _np(images[g])
        for j in range(n):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if j >= len(arrs[g]):
                ax.axis("off")
                continue
            ax.imshow(img[j].mean(0), cmap="gray", vmin=0, vmax=1)
            if is_zero_map(arrs[g][j], atol):
                mark_zero(ax)
            else:
                ax.imshow(arrs[g][j], cmap=cmap, alpha=0.65, vmin=0, vmax=vmax)
        axes[i, 0].set_ylabel(g, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    cbar = fig.colorbar(sm, cax=fig.add_axes((0.88, 0.15, 0.025, 0.7)), extend="max")
    cbar.set_label(label, fontsize=8)
    return fig


def dot_intervals(
    ax: plt.Axes,
    estimates: Mapping[str, Mapping[str, float]],
    intervals: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
    *,
    xlabel: str,
    title: str = "",
    reference: float | None = None,
) -> plt.Axes:
    """Dot plot, one row per method: ``estimates[series][method]`` as a point, with its interval
    ``intervals[series][method] = (lo, hi)`` as a bar where one is given (a point alone otherwise).

    Several series share a row, slightly offset, one colour each (legend outside the axes);
    ``reference`` draws a vertical line (a chance level, a threshold). Rows keep the order of the first
    series' methods, top to bottom.
    """
    series = list(estimates)
    methods: list[str] = []
    for s in series:
        methods += [m for m in estimates[s] if m not in methods]
    n = len(series)
    offsets = (np.arange(n) - (n - 1) / 2) * (0.6 / max(n, 1)) if n > 1 else np.zeros(1)
    ys = np.arange(len(methods))[::-1].astype(float)
    for k, s in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        labelled = False
        for m, y in zip(methods, ys):
            if m not in estimates[s]:
                continue
            v = float(estimates[s][m])
            ci = (intervals or {}).get(s, {}).get(m)
            if ci is not None and np.all(np.isfinite(ci)):
                lo, hi = float(ci[0]), float(ci[1])
                ax.plot([lo, hi], [y + offsets[k]] * 2, color=color, lw=1.6, solid_capstyle="butt")
            ax.plot([v], [y + offsets[k]], "o", color=color, ms=4.5, label=None if labelled else s)
            labelled = True
    if reference is not None:
        ax.axvline(reference, color="black", lw=0.8, ls="--")
    ax.set_yticks(ys, methods)
    ax.set_ylim(-0.6, len(methods) - 0.4)
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    ax.set(xlabel=xlabel, title=title)
    if n > 1:
        legend_outside(ax)
    return ax


def magnitude_grid(
    images: torch.Tensor | np.ndarray,
    maps: Mapping[str, torch.Tensor | np.ndarray],
    *,
    outlines: torch.Tensor | np.ndarray | None = None,
    label: str = "|attribution| / its maximum (per image)",
    size: float = 1.0,
    cmap: str = "magma",
) -> plt.Figure:
    """Rows = the inputs, then one row per method (keys of ``maps``); columns = examples.

    ``images`` is ``[N, C, H, W]``; each ``maps[name]`` is ``[N, C, H, W]``. A tile shows the map's
    channel-summed magnitude divided by its own maximum, on a scale from 0 to 1 with one labelled
    colorbar; a map that is numerically zero says "0 everywhere". ``outlines`` (``[N, 1, H, W]``
    booleans, optional) is drawn as a contour on the inputs (e.g. a planted patch). Tall rather than
    wide, so that a figure with many methods stays legible at the page width.
    """
    x = _np(images)
    names = list(maps)
    n = len(x)
    fig, axes = plt.subplots(1 + len(names), n, figsize=(size * n + 2.4, size * (1 + len(names))), squeeze=False)
    sm = mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(0.0, 1.0), cmap=cmap)
    for j in range(n):
        axes[0, j].imshow(x[j].mean(0), cmap="gray", vmin=0, vmax=1)
        if outlines is not None:
            axes[0, j].contour(_np(outlines)[j, 0].astype(float), levels=[0.5], colors=[PALETTE[3]], linewidths=1)
        for i, name in enumerate(names, start=1):
            mag = np.abs(_np(maps[name])[j]).sum(0)
            if is_zero_map(mag):
                axes[i, j].imshow(np.zeros_like(mag), cmap=cmap, vmin=0, vmax=1)
                mark_zero(axes[i, j])
            else:
                axes[i, j].imshow(mag / mag.max(), cmap=cmap, vmin=0, vmax=1)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    for i, name in enumerate(["input"] + names):
        axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.88, 1), h_pad=0.3, w_pad=0.3)
    cbar = fig.colorbar(sm, cax=fig.add_axes((0.9, 0.2, 0.02, 0.6)))
    cbar.set_label(label, fontsize=8)
    return fig


def _signed_limits(m: np.ndarray) -> float:
    lim = float(np.nanmax(np.abs(m))) if m.size else 1.0
    return lim if lim > 0 else 1.0


def attribution_grid(
    images: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    *,
    titles: Sequence[str] | None = None,
    size: float = 1.3,
    cmap: str = "RdBu_r",
    label: str = "attribution (per image, scaled to its largest magnitude)",
) -> plt.Figure:
    """Rows = inputs, columns = the input and one map per method.

    Maps are channel-summed and shown on a diverging colormap centred at zero, each scaled to its own
    largest magnitude (red: the pixel adds to the explained quantity, blue: it reduces it); one
    labelled colorbar. A map that is numerically zero says "0 everywhere" on its tile.
    """
    x = _np(images)
    n = len(x)
    cols = 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(size * cols + 0.8, size * n), squeeze=False)
    im = None
    for i in range(n):
        ax = axes[i, 0]
        img = x[i].transpose(1, 2, 0)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_ylabel(titles[i], fontsize=7)
        for j, (name, m) in enumerate(maps.items(), start=1):
            a = _np(m[i]).sum(0)
            lim = _signed_limits(a)
            im = axes[i, j].imshow(a / lim, cmap=cmap, vmin=-1, vmax=1)
            axes[i, j].axis("off")
            if is_zero_map(a):
                mark_zero(axes[i, j])
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
    axes[0, 0].set_title("input", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    if im is not None:
        cax = fig.add_axes((0.93, 0.15, 0.015, 0.7))
        fig.colorbar(im, cax=cax).set_label(label, fontsize=7)
    return fig


#: one fixed colour per attribution method, so a method looks the same in every panel and chapter
METHOD_COLORS = {
    "UA-Backprop": PALETTE[0],
    "gradient": PALETTE[1],
    "input x gradient": PALETTE[2],
    "SmoothGrad": PALETTE[3],
    "IG-32 black": PALETTE[4],
    "IG-32 blur": PALETTE[5],
    "Grad-CAM": "#999999",
    "random": PALETTE[7],
}


def curves(
    ax: plt.Axes,
    x: torch.Tensor | np.ndarray,
    ys: Mapping[str, torch.Tensor | np.ndarray],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    highlight: str | None = None,
) -> plt.Axes:
    """One line per entry of ``ys`` against ``x``; ``highlight`` is drawn thicker and on top.

    Known method names get their :data:`METHOD_COLORS` colour; others take the palette in order.
    """
    for i, (name, y) in enumerate(ys.items()):
        lw, z = (2.4, 3) if name == highlight else (1.2, 2)
        style = ":" if name == "random" else "-"
        color = METHOD_COLORS.get(name, PALETTE[i % len(PALETTE)])
        ax.plot(_np(x), _np(y), style, label=name, lw=lw, zorder=z, color=color)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    legend_outside(ax, fontsize=7)
    return ax
