"""Compare uncertainty attribution methods on the same model, inputs and metrics.

Every method attributes the *same* scalar target (an uncertainty of a posterior) and is scored by the
same metrics: the blurring test (:func:`ualib.metrics.perturbation.blurring_test`), localization of a planted
cause (:mod:`ualib.metrics.localization`), completeness and runtime. Pixels are ranked by attribution
*magnitude* (the channel-summed absolute value) for every method, so signed and unsigned maps are
treated alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from ualib import uncertainty as U
from ualib.attribution.registry import uncertainty_attributor
from ualib.attribution.ua_backprop import ua_backprop
from ualib.metrics.localization import mass_in_mask, pointing_game, relevance_rank_accuracy
from ualib.metrics.perturbation import blurring_test
from ualib.posteriors import DeepEnsemble, Posterior

__all__ = [
    "Method",
    "uncertainty_attributors",
    "compute_maps",
    "blurring_table",
    "localization_table",
    "completeness_table",
    "completeness_errors",
    "stability_table",
    "uncertainty_of",
]

#: an attribution method: ``x [B, ...] -> A`` shaped like ``x`` (or ``[B, 1, H, W]`` for Grad-CAM)
Method = Callable[[torch.Tensor], torch.Tensor]


def uncertainty_attributors(
    posterior: Posterior,
    kind: str = "epistemic",
    *,
    ig_steps: int = 32,
    smoothgrad_samples: int = 16,
    smoothgrad_sigma: float = 0.15,
    gradcam_layer: nn.Module | None = None,
    batch_size: int | None = None,
    seed: int = 0,
) -> dict[str, Method]:
    """UA-Backprop and the gradient-based baselines of chapter 2 (``02_ua_backprop``), all explaining
    ``kind`` uncertainty; each entry is :func:`ualib.attribution.registry.uncertainty_attributor`.

    Grad-CAM is included when ``gradcam_layer`` is given and the posterior is not a
    :class:`~ualib.posteriors.DeepEnsemble` (its activations live inside ``vmap``).
    """

    def bind(method: str, **options: object) -> Method:
        return uncertainty_attributor(method, posterior, kind, **options)

    methods: dict[str, Method] = {
        "UA-Backprop": bind("ua_backprop"),
        "gradient": bind("gradient", batch_size=batch_size),
        "input x gradient": bind("input_x_gradient", batch_size=batch_size),
        "SmoothGrad": bind(
            "smoothgrad", n_samples=smoothgrad_samples, sigma=smoothgrad_sigma, seed=seed, batch_size=batch_size
        ),
        f"IG-{ig_steps} black": bind("integrated_gradients", baseline="black", steps=ig_steps, batch_size=batch_size),
        f"IG-{ig_steps} blur": bind("integrated_gradients", baseline="blur", steps=ig_steps, batch_size=batch_size),
    }
    if gradcam_layer is not None and not isinstance(posterior, DeepEnsemble):
        methods["Grad-CAM"] = bind("grad_cam", layer=gradcam_layer, batch_size=batch_size)
    methods["random"] = bind("random", seed=seed)
    return methods


def compute_maps(
    methods: Mapping[str, Method], x: torch.Tensor, *, batch_size: int | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Run every method on ``x``; return the maps and the wall-clock seconds per input of each.

    ``batch_size`` splits ``x`` into micro-batches (each method sees the same micro-batches).
    """
    step = batch_size or len(x)
    maps, seconds = {}, {}
    for name, fn in methods.items():
        t0 = time.perf_counter()
        maps[name] = torch.cat([fn(x[i : i + step]).detach() for i in range(0, len(x), step)])
        seconds[name] = (time.perf_counter() - t0) / len(x)
    return maps, seconds


def _magnitude(a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Channel-summed absolute attribution broadcast to ``like``'s shape (so every method ranks the same way)."""
    m = a.abs().sum(1, keepdim=True)
    return m.expand(like.shape[0], like.shape[1], *m.shape[2:]) / like.shape[1]


def _sem(v: torch.Tensor) -> float:
    v = v[~torch.isnan(v)]
    return float(v.std() / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def blurring_table(
    maps: Mapping[str, torch.Tensor],
    uncertainty_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    fractions: torch.Tensor,
    blur_sigma: float,
    batch_size: int | None = None,
) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """Blurring test of every map: mean and standard error of MURR and AUC-URR, and mean URR curves.

    Returns a frame indexed by method and a dict ``method -> mean URR [T]`` for plotting.
    """
    rows, curves = {}, {}
    for name, a in maps.items():
        res = blurring_test(
            uncertainty_fn, x, _magnitude(a, x), fractions=fractions, blur_sigma=blur_sigma, batch_size=batch_size
        )
        rows[name] = {
            "MURR": float(res["murr"].nanmean()),
            "MURR sem": _sem(res["murr"]),
            "AUC-URR": float(res["auc_urr"].nanmean()),
            "AUC-URR sem": _sem(res["auc_urr"]),
        }
        curves[name] = res["urr"].nanmean(0)
    return pd.DataFrame(rows).T, curves


def localization_table(maps: Mapping[str, torch.Tensor], mask: torch.Tensor) -> pd.DataFrame:
    """Share of attribution mass inside the planted patch, pointing-game hit rate and relevance rank
    accuracy of every map (all on attribution magnitude), with the patch's share of the image as the
    chance level of the first and last."""
    rows = {}
    for name, a in maps.items():
        mag = a.abs().sum(1, keepdim=True)
        rows[name] = {
            "mass in patch": float(mass_in_mask(mag, mask).nanmean()),
            "pointing game": float(pointing_game(mag, mask).float().mean()),
            "rank accuracy": float(relevance_rank_accuracy(mag, mask).mean()),
        }
    frame = pd.DataFrame(rows).T
    frame.attrs["chance"] = float(mask.float().mean())
    return frame


def completeness_table(
    posteriors: Mapping[str, Posterior], x: torch.Tensor, kinds: Sequence[str] = U.ENTROPIC_KINDS
) -> pd.DataFrame:
    """Largest ``|sum_i A_i - U|`` of UA-Backprop over ``x`` per posterior and uncertainty kind, with the
    mean explained uncertainty for scale (in the dtype of the model and ``x``)."""
    rows = {}
    for name, post in posteriors.items():
        for kind in kinds:
            a, u = ua_backprop(post, x, kind=kind, return_uncertainty=True)
            err = (a.flatten(1).sum(1) - u).abs()
            rows[(name, kind)] = {"max abs error": float(err.max()), "mean U": float(u.mean())}
    frame = pd.DataFrame(rows).T
    frame.index.names = ["posterior", "uncertainty"]
    return frame


def completeness_errors(
    maps: Mapping[str, torch.Tensor], uncertainty_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> pd.DataFrame:
    """How much of the explained uncertainty each map accounts for: ``|sum_i A_i - U(x)| / U(x)``.

    Zero for a method that promises completeness with respect to ``U(x)`` itself (UA-Backprop); for
    integrated gradients the sum is ``U(x) - U(x')`` (the baseline's uncertainty is not explained), and
    for methods without a completeness property the number says how far their raw sum is from ``U``.
    Returns the mean and the largest relative error over the inputs (inputs with ``U = 0`` skipped).
    """
    u = uncertainty_fn(x).detach().to(torch.float64)
    keep = u > 0
    rows = {}
    for name, a in maps.items():
        rel = (a.detach().flatten(1).sum(1).to(torch.float64) - u).abs()[keep] / u[keep]
        rows[name] = {
            "completeness error (mean)": float(rel.mean()) if len(rel) else float("nan"),
            "completeness error (max)": float(rel.max()) if len(rel) else float("nan"),
        }
    return pd.DataFrame(rows).T


def stability_table(
    make_methods: Callable[[int], Mapping[str, Method]],
    x: torch.Tensor,
    seeds: Sequence[int],
    *,
    top_q: float | None = None,
) -> pd.DataFrame:
    """Stability of every map when the posterior's Monte-Carlo samples are drawn again.

    ``make_methods(seed)`` returns the methods of a posterior whose S samples are drawn with ``seed``
    (e.g. ``MCDropout(model, num_samples=S, seed=seed)``); each method's map is computed once per seed,
    and the spread across seeds is summarised by the coefficient of variation of the attribution
    magnitude per pixel (:func:`ualib.attribution.explanation_uncertainty.explanation_statistics`), averaged over
    pixels (or the ``top_q`` most attributed ones) and then over images, with its standard error.
    A deterministic method (or model) has CV 0.
    """
    from ualib.attribution.explanation_uncertainty import cv_aggregates, explanation_statistics

    if len(seeds) < 2:
        raise ValueError(f"stability needs at least two seeds, got {list(seeds)}")
    per_seed = [make_methods(int(s)) for s in seeds]
    names = list(per_seed[0])
    rows = {}
    for name in names:
        maps = torch.stack([methods[name](x).detach() for methods in per_seed])  # [R, B, ...]
        stats = explanation_statistics(maps)
        cv = cv_aggregates(stats["cv"], stats["mean"], top_q=top_q)["mean"]
        rows[name] = {"CV across posterior draws": float(cv.mean()), "CV sem": _sem(cv)}
    return pd.DataFrame(rows).T


def uncertainty_of(posterior: Posterior, kind: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> U(x) [B]`` without gradients (for the blurring test)."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return U.uncertainty(posterior.probs(x), kind)

    return fn
