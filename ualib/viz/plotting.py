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
    ax: plt.Axes, diagram: Mapping[str, np.ndarray], *, title: str = "", ece: float | None = None
) -> plt.Axes:
    """Draw a reliability diagram from :func:`ualib.metrics.reliability_diagram`'s dictionary."""
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
    ax.legend(loc="upper left")
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
    ax.legend()
    return ax


def risk_coverage(ax: plt.Axes, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str = "") -> plt.Axes:
    """Risk (error rate of the accepted inputs) against coverage, one line per estimator."""
    for i, (name, (cov, risk)) in enumerate(curves.items()):
        ax.plot(_np(cov), _np(risk), label=name, color=PALETTE[i % len(PALETTE)])
    ax.set(xlabel="coverage (fraction of inputs accepted)", ylabel="risk (error rate)", xlim=(0, 1), title=title)
    ax.set_ylim(bottom=0)
    ax.legend()
    return ax


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
    labelled colorbar.
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
    ax.legend(fontsize=7)
    return ax
