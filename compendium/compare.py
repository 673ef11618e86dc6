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
from ualib.attribution import random_attribution
from ualib.attribution.registry import uncertainty_attributor
from ualib.attribution.ua_backprop import ua_backprop
from ualib.metrics.localization import mass_in_mask, pointing_game, relevance_rank_accuracy
from ualib.metrics.perturbation import blurring_test
from ualib.posteriors import DeepEnsemble, Posterior

__all__ = [
    "Method",
    "uncertainty_attributors",
    "BlurringCache",
    "compute_maps",
    "blurring_table",
    "localization_table",
    "completeness_table",
    "completeness_errors",
    "stability_table",
    "uncertainty_of",
    "same_support_baselines",
    "per_input_localization",
    "road_table",
    "SURVIVES_RANDOMIZATION",
    "randomization_table",
    "permuted_labels",
    "data_randomization_table",
    "metric_agreement",
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

    Returns a frame indexed by method and a dict ``method -> mean URR [T]`` for plotting; the frame's
    ``attrs["per_image"]`` holds ``method -> {"murr": [B], "auc_urr": [B]}`` (NaN where undefined) for
    bootstrapped claims.
    """
    rows, curves, per_image = {}, {}, {}
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
        per_image[name] = {"murr": res["murr"].detach().cpu(), "auc_urr": res["auc_urr"].detach().cpu()}
    frame = pd.DataFrame(rows).T
    frame.attrs["per_image"] = per_image
    return frame, curves


class BlurringCache:
    """:func:`blurring_table` that computes each (family, method) once.

    Chapter 8 asks for the blurring test of the same maps in several places (the comparison table,
    the random baseline, the per-input metric agreement, the claims) while its families gain methods
    along the way; the cache runs :func:`ualib.metrics.perturbation.blurring_test` only for maps it has
    not seen (keyed by family, method name and the map's storage, so a replaced map is recomputed).
    """

    def __init__(self, x: torch.Tensor, *, fractions: torch.Tensor, blur_sigma: float) -> None:
        self.x, self.fractions, self.blur_sigma = x, fractions, blur_sigma
        self._rows: dict[tuple[str, str, int], tuple[dict, torch.Tensor, dict]] = {}

    def table(
        self, family: str, maps: Mapping[str, torch.Tensor], uncertainty_fn: Callable[[torch.Tensor], torch.Tensor]
    ) -> pd.DataFrame:
        """The frame of :func:`blurring_table` for ``maps`` (in their order), ``attrs["per_image"]`` included."""
        keys = {name: (family, name, a.data_ptr()) for name, a in maps.items()}
        todo = {name: maps[name] for name, key in keys.items() if key not in self._rows}
        if todo:
            frame, curves = blurring_table(
                todo, uncertainty_fn, self.x, fractions=self.fractions, blur_sigma=self.blur_sigma
            )
            for name in todo:
                self._rows[keys[name]] = (frame.loc[name].to_dict(), curves[name], frame.attrs["per_image"][name])
        out = pd.DataFrame({name: self._rows[key][0] for name, key in keys.items()}).T
        out.attrs["per_image"] = {name: self._rows[key][2] for name, key in keys.items()}
        out.attrs["curves"] = {name: self._rows[key][1] for name, key in keys.items()}
        return out

    def per_input(
        self, family: str, maps: Mapping[str, torch.Tensor], uncertainty_fn: Callable[[torch.Tensor], torch.Tensor]
    ) -> pd.DataFrame:
        """Per-input AUC-URR of the blurring test, frame [inputs x methods]."""
        per = self.table(family, maps, uncertainty_fn).attrs["per_image"]
        return pd.DataFrame({name: per[name]["auc_urr"].double().numpy() for name in maps})


def localization_table(maps: Mapping[str, torch.Tensor], mask: torch.Tensor) -> pd.DataFrame:
    """Share of attribution mass inside the planted patch, pointing-game hit rate and relevance rank
    accuracy of every map (all on attribution magnitude), with the patch's share of the image as the
    chance level of the first and last. ``attrs["per_image"]`` holds ``method -> mass in patch [B]``
    (NaN for an all-zero map) for bootstrapped claims."""
    rows, per_image = {}, {}
    for name, a in maps.items():
        mag = a.abs().sum(1, keepdim=True)
        per_image[name] = mass_in_mask(mag, mask).detach().cpu()
        rows[name] = {
            "mass in patch": float(per_image[name].nanmean()),
            "pointing game": float(pointing_game(mag, mask).float().mean()),
            "rank accuracy": float(relevance_rank_accuracy(mag, mask).mean()),
        }
    frame = pd.DataFrame(rows).T
    frame.attrs["chance"] = float(mask.float().mean())
    frame.attrs["per_image"] = per_image
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
    A deterministic method (or model) has CV 0. ``attrs["per_image"]`` holds ``method -> CV [B]``.
    """
    from ualib.attribution.explanation_uncertainty import cv_aggregates, explanation_statistics

    if len(seeds) < 2:
        raise ValueError(f"stability needs at least two seeds, got {list(seeds)}")
    per_seed = [make_methods(int(s)) for s in seeds]
    names = list(per_seed[0])
    rows, per_image = {}, {}
    for name in names:
        maps = torch.stack([methods[name](x).detach() for methods in per_seed])  # [R, B, ...]
        stats = explanation_statistics(maps)
        cv = cv_aggregates(stats["cv"], stats["mean"], top_q=top_q)["mean"]
        per_image[name] = cv.detach().cpu()
        rows[name] = {"CV across posterior draws": float(cv.mean()), "CV sem": _sem(cv)}
    frame = pd.DataFrame(rows).T
    frame.attrs["per_image"] = per_image
    return frame


def uncertainty_of(posterior: Posterior, kind: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> U(x) [B]`` without gradients (for the blurring test)."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return U.uncertainty(posterior.probs(x), kind)

    return fn


# --------------------------------------------------------------------------------------------------
# chapter 8 benchmark: same-support baselines, ROAD flipping, randomization sanity, metric agreement
# --------------------------------------------------------------------------------------------------


def same_support_baselines(seed: int = 0, ink_threshold: float = 0.1) -> dict[str, Method]:
    """Maps that know nothing about the network but share the support of input-multiplied maps.

    ``|x|`` (the intensity) and a random map restricted to the ink (uniform noise where the
    channel-mean intensity exceeds ``ink_threshold``, zero elsewhere). A map that multiplies by the
    input (input x gradient, IG-black, UA-Backprop) lives on the ink too, so beating the whole-image
    random map proves less than beating these.
    """

    def intensity(x: torch.Tensor) -> torch.Tensor:
        return x.abs()

    def random_ink(x: torch.Tensor) -> torch.Tensor:
        ink = (x.abs().mean(1, keepdim=True) > ink_threshold).to(x.dtype)
        return random_attribution(x, seed=seed).abs() * ink

    return {"|x| (intensity)": intensity, "random on ink": random_ink}


def per_input_localization(maps: Mapping[str, torch.Tensor], mask: torch.Tensor) -> dict[str, pd.DataFrame]:
    """Per-input mass in patch and pointing game, ``{metric: frame [inputs x methods]}`` (magnitude maps)."""
    mass, point = {}, {}
    for name, a in maps.items():
        mag = a.abs().sum(1, keepdim=True)
        mass[name] = mass_in_mask(mag, mask).double().numpy()
        point[name] = pointing_game(mag, mask).double().numpy()
    return {"mass in patch": pd.DataFrame(mass), "pointing game": pd.DataFrame(point)}


def road_table(
    maps: Mapping[str, torch.Tensor], uncertainty_fn, x: torch.Tensor, *, fractions: torch.Tensor, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, dict[str, torch.Tensor]]]:
    """ROAD uncertainty flipping (noisy linear imputation) of every map in both orders.

    Returns the summary frame (mean and standard error of AUC-URR under MoRF, LeRF and their gap), the
    per-input frames ``{"ROAD MoRF", "ROAD LeRF", "ROAD gap"}`` [inputs x methods], and the mean URR curves
    ``{method: {"morf": [T], "lerf": [T]}}``.
    """
    from ualib.metrics.road import road_test

    rows, per, curves = {}, {"ROAD MoRF": {}, "ROAD LeRF": {}, "ROAD gap": {}}, {}
    for name, a in maps.items():
        res = road_test(uncertainty_fn, x, _magnitude(a, x), fractions=fractions, seed=seed)
        rows[name] = {
            "ROAD AUC-URR MoRF": float(res["auc_morf"].nanmean()),
            "ROAD AUC-URR LeRF": float(res["auc_lerf"].nanmean()),
            "ROAD gap": float(res["gap"].nanmean()),
            "ROAD gap sem": _sem(res["gap"]),
        }
        per["ROAD MoRF"][name] = res["auc_morf"].double().numpy()
        per["ROAD LeRF"][name] = res["auc_lerf"].double().numpy()
        per["ROAD gap"][name] = res["gap"].double().numpy()
        curves[name] = {"morf": res["urr_morf"].nanmean(0), "lerf": res["urr_lerf"].nanmean(0)}
    return pd.DataFrame(rows).T, {k: pd.DataFrame(v) for k, v in per.items()}, curves


#: a map whose rank correlation with the trained network's map stays at or above this after every layer
#: is randomized "survives randomization" (our convention; Adebayo et al. 2018 judge by eye)
SURVIVES_RANDOMIZATION = 0.5


def randomization_table(
    posterior, make_methods, x: torch.Tensor, *, reference: Mapping[str, torch.Tensor] | None = None, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]:
    """Cascading randomization sanity check of every method (on a copy of ``posterior``).

    Returns the summary (Spearman and SSIM to the trained map after the top layer and after all layers,
    and the flag ``survives`` when the all-layers Spearman is >= :data:`SURVIVES_RANDOMIZATION`), the
    per-input all-layers Spearman [inputs x methods], and the raw result of
    :func:`ualib.metrics.sanity.cascading_randomization`.
    """
    from ualib.metrics.sanity import cascading_randomization

    res = cascading_randomization(posterior, make_methods, x, reference=reference, seed=seed)
    rows, per = {}, {}
    for name in res["spearman"]:
        rho, sim = res["spearman"][name], res["ssim"][name]
        rows[name] = {
            "Spearman (top layer)": float(rho[0].nanmean()),
            "Spearman (all layers)": float(rho[-1].nanmean()),
            "SSIM (all layers)": float(sim[-1].nanmean()),
            "survives": bool(float(rho[-1].nanmean()) >= SURVIVES_RANDOMIZATION),
        }
        per[name] = rho[-1].numpy()
    return pd.DataFrame(rows).T, pd.DataFrame(per), res


def permuted_labels(y: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``y`` in a seeded random order: the labels of the data-randomization test (same label counts, no
    relation to the inputs left)."""
    g = torch.Generator().manual_seed(int(seed))
    return y[torch.randperm(len(y), generator=g)]


def data_randomization_table(
    trained: Mapping[str, torch.Tensor], randomized: Mapping[str, torch.Tensor]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Data randomization sanity check of every method: its map of a network trained on permuted labels
    against its map of the trained network, on the same inputs (:func:`ualib.metrics.sanity.data_randomization`).

    Returns the summary (mean Spearman and SSIM, and the flag ``survives`` when the mean Spearman is
    >= :data:`SURVIVES_RANDOMIZATION`) and the per-input Spearman [inputs x methods], in ``trained``'s order.
    """
    from ualib.metrics.sanity import data_randomization

    res = data_randomization(trained, randomized)
    rows = {}
    for name in trained:
        rho, sim = res["spearman"][name], res["ssim"][name]
        rows[name] = {
            "Spearman (permuted labels)": float(rho.nanmean()),
            "SSIM (permuted labels)": float(sim.nanmean()),
            "survives": bool(float(rho.nanmean()) >= SURVIVES_RANDOMIZATION),
        }
    per = pd.DataFrame({name: res["spearman"][name].numpy() for name in trained})
    return pd.DataFrame(rows).T, per


def metric_agreement(
    per_input: Mapping[str, pd.DataFrame],
    higher_is_better: Mapping[str, bool],
    *,
    constant: Mapping[str, Mapping[str, float]] | None = None,
    n_boot: int = 500,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Rank the methods under each metric and correlate the rankings between metrics, with bootstrap intervals.

    Parameters
    ----------
    per_input
        ``{metric: frame [inputs x methods]}``; every frame has the same method columns (frames may have
        different numbers of inputs: each is resampled over its own inputs).
    higher_is_better
        Orientation of every metric (``per_input`` and ``constant``).
    constant
        Metrics without per-input values (runtime): ``{metric: {method: value}}``, not resampled.
    n_boot, seed
        Bootstrap resamples of the inputs and their seed.

    Returns
    -------
    ranks, rho, interval
        ``ranks``: [methods x metrics], 1 = best. ``rho``: [metrics x metrics] Spearman correlation of the
        method rankings; ``interval``: the same frame with ``"lo - hi"`` strings of the 2.5 / 97.5 %
        bootstrap percentiles.
    """
    import numpy as np

    constant = dict(constant or {})
    metrics = list(per_input) + list(constant)
    methods = list(next(iter(per_input.values())).columns)

    def scores(resample: dict[str, np.ndarray] | None) -> pd.DataFrame:
        cols = {}
        for m, frame in per_input.items():
            f = frame[methods] if resample is None else frame[methods].iloc[resample[m]]
            cols[m] = f.mean(0, skipna=True)
        for m, vals in constant.items():
            cols[m] = pd.Series({k: vals[k] for k in methods})
        s = pd.DataFrame(cols)
        return s.mul([1 if higher_is_better[m] else -1 for m in metrics], axis=1)

    base = scores(None)
    ranks = base.rank(ascending=False, method="average")
    rho = base.corr(method="spearman")
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        res = {m: rng.integers(0, len(f), len(f)) for m, f in per_input.items()}
        boots.append(scores(res).corr(method="spearman").to_numpy())
    arr = np.stack(boots)
    lo, hi = np.nanpercentile(arr, 2.5, axis=0), np.nanpercentile(arr, 97.5, axis=0)
    interval = pd.DataFrame(
        [[f"{lo[i, j]:+.2f} – {hi[i, j]:+.2f}" for j in range(len(metrics))] for i in range(len(metrics))],
        index=metrics,
        columns=metrics,
    )
    return ranks, rho, interval
