"""ROAD: removal by noisy linear imputation, in most- and least-relevant-first order.

Replacing pixels by a constant or a blurred copy creates images the network never saw, so a
perturbation curve partly measures the network's reaction to the artefact (for an uncertainty target:
the removal itself *adds* uncertainty, and even a random ranking looks like an uncertainty reducer or
increaser). ROAD (Rong et al. 2022) instead imputes every removed pixel from its neighbours: the
imputed value is the weighted average of its 8 neighbours (weight 1/6 for the 4 direct, 1/12 for the
4 diagonal neighbours), where neighbours that are themselves removed are unknowns of the same linear
system, so a removed region is filled by the discrete harmonic interpolation of its boundary, plus a
little Gaussian noise (std ``noise``) so that the imputed values carry no information in their exact
value. The removal order is either most relevant first (MoRF) or least relevant first (LeRF).

Conventions as in :mod:`ualib.metrics.perturbation`: pixels are ranked by the channel-summed
attribution; ties by flat index, lower first (MoRF descending, LeRF ascending); ``k(r) = round(r H W)``;
all channels of a pixel are removed together and every channel is imputed by the same system.

A connected region (8-connectivity) of removed pixels with no known neighbour at all (e.g. when every
pixel is removed) has no boundary to interpolate: its pixels take the mean of the known pixels of
that image and channel (of the whole image when none is known), plus noise. This case is outside ROAD's
definition (its removals stop at 90 %); it is documented so a full curve is defined.

References
----------
.. [1] Y. Rong, T. Leemann, V. Borisov, G. Kasneci, E. Kasneci. "A Consistent and Efficient Evaluation
   Strategy for Attribution Methods." ICML 2022. (ROAD, the NoisyLinearImputer and its weights.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.ndimage
import scipy.sparse
import scipy.sparse.linalg
import torch

from ualib._checks import check_choice, check_tensor
from ualib.metrics.perturbation import _channel_sum, _check_batch_size, _check_fractions, _normalised_auc

__all__ = ["NEIGHBOUR_WEIGHTS", "ORDERS", "noisy_linear_impute", "road_curve", "road_test"]

#: ROAD's neighbour offsets ``(dy, dx)`` and weights: 1/6 for direct, 1/12 for diagonal neighbours
NEIGHBOUR_WEIGHTS: tuple[tuple[tuple[int, int], float], ...] = (
    ((1, 1), 1 / 12),
    ((0, 1), 1 / 6),
    ((-1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((0, -1), 1 / 6),
    ((-1, -1), 1 / 12),
    ((1, 0), 1 / 6),
    ((-1, 0), 1 / 6),
)
#: removal orders: most relevant first, least relevant first
ORDERS = ("morf", "lerf")


def _impute_one(img: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Linear imputation (no noise) of one image ``img [C, H, W]`` (float64) at ``removed [H, W]`` (bool)."""
    c, h, w = img.shape
    out = img.copy()
    if not removed.any():
        return out
    flat = img.reshape(c, -1)
    rem = removed.reshape(-1)
    unknown = np.flatnonzero(rem)
    n = len(unknown)
    var = np.full(h * w, -1, dtype=np.int64)
    var[unknown] = np.arange(n)
    yy, xx = np.divmod(unknown, w)
    diag = np.zeros(n)
    rhs = np.zeros((n, c))
    has_known = np.zeros(n, dtype=bool)
    rows, cols, vals = [], [], []
    for (dy, dx), wt in NEIGHBOUR_WEIGHTS:
        ny, nx = yy + dy, xx + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        eq = np.flatnonzero(ok)
        nb = ny[ok] * w + nx[ok]
        diag[eq] += wt
        known = ~rem[nb]
        rhs[eq[known]] += wt * flat[:, nb[known]].T
        has_known[eq[known]] = True
        rows.append(eq[~known])
        cols.append(var[nb[~known]])
        vals.append(np.full(int((~known).sum()), -wt))
    # regions without any known neighbour: fill with the mean of the known pixels
    labels, _ = scipy.ndimage.label(removed, structure=np.ones((3, 3), dtype=bool))
    lab = labels.reshape(-1)[unknown]
    anchored = np.bincount(lab, weights=has_known.astype(float)) > 0
    free = ~anchored[lab]
    if free.any():
        fill = flat[:, ~rem].mean(1) if (~rem).any() else flat.mean(1)
        out.reshape(c, -1)[:, unknown[free]] = fill[:, None]
    solve = np.flatnonzero(~free)
    if len(solve):
        a = scipy.sparse.coo_matrix(
            (
                np.concatenate([diag, *vals]),
                (np.concatenate([np.arange(n), *rows]), np.concatenate([np.arange(n), *cols])),
            ),
            shape=(n, n),
        ).tocsc()
        # free and anchored regions are never adjacent (they would be one region), so the sub-system is closed
        sub = a[solve][:, solve]
        sol = scipy.sparse.linalg.spsolve(sub, rhs[solve])
        out.reshape(c, -1)[:, unknown[solve]] = np.asarray(sol).reshape(len(solve), c).T
    return out


def noisy_linear_impute(
    x: torch.Tensor,
    removed: torch.Tensor,
    *,
    noise: float = 0.01,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """ROAD's noisy linear imputation: removed pixels become their neighbours' weighted mean plus noise.

    For every removed pixel ``i`` the imputed value solves ``v_i = sum_j w_j v_j / sum_j w_j`` over its
    in-image 8-neighbours ``j`` (:data:`NEIGHBOUR_WEIGHTS`), where ``v_j = x_j`` for a kept neighbour and
    ``v_j`` is itself unknown for a removed one: one sparse linear system per image, solved exactly
    (``scipy.sparse.linalg.spsolve``, float64) for all channels at once. Then independent
    ``N(0, noise^2)`` noise is added to each imputed value (kept pixels are returned unchanged).

    Parameters
    ----------
    x
        Images ``[B, C, H, W]``.
    removed
        Boolean ``[B, H, W]`` (or ``[B, 1, H, W]``): the pixels to impute.
    noise
        Standard deviation of the added noise (ROAD's default 0.01); 0 gives the plain linear imputation.
    generator
        Source of the noise (default: a fresh generator seeded with 0, so calls are reproducible).

    Returns
    -------
    torch.Tensor
        ``[B, C, H, W]`` in ``x``'s dtype and device.

    Raises
    ------
    ValueError
        If the shapes do not match or ``noise`` is negative or not finite.
    """
    x = check_tensor(x, "x", ndim=4)
    if not isinstance(removed, torch.Tensor):
        raise TypeError(f"removed must be a boolean torch.Tensor, got {type(removed).__name__}")
    if removed.ndim not in (3, 4):
        raise ValueError(f"removed must be [B, H, W] or [B, 1, H, W], got shape {tuple(removed.shape)}")
    if removed.ndim == 4:
        if removed.shape[1] != 1:
            raise ValueError(f"removed must be [B, H, W] or [B, 1, H, W], got {tuple(removed.shape)}")
        removed = removed[:, 0]
    if removed.dtype != torch.bool:
        raise TypeError(f"removed must be a boolean tensor, got {removed.dtype}")
    if removed.shape != (x.shape[0], *x.shape[-2:]):
        raise ValueError(
            f"removed must have shape [B, H, W] = {[x.shape[0], *x.shape[-2:]]}, got {tuple(removed.shape)}"
        )
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    xs = x.detach().to("cpu", torch.float64).numpy()
    ms = removed.detach().cpu().numpy()
    out = np.stack([_impute_one(xs[b], ms[b]) for b in range(len(xs))])
    res = torch.from_numpy(out)
    if noise > 0:
        eps = torch.randn(res.shape, generator=gen, dtype=torch.float64) * noise
        res = torch.where(torch.from_numpy(ms)[:, None], res + eps, res)
    return res.to(x.device, x.dtype)


def road_curve(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    attribution: torch.Tensor,
    *,
    order: str = "morf",
    fractions: torch.Tensor | None = None,
    noise: float = 0.01,
    seed: int = 0,
    batch_size: int | None = None,
    multi_output: bool = False,
) -> dict[str, torch.Tensor]:
    """Score after removing (imputing) the top fraction of pixels in MoRF or LeRF order.

    Parameters
    ----------
    score_fn
        ``x [n, C, H, W] -> [n]`` (or ``[n, ...]`` with ``multi_output``), called under ``torch.no_grad()``.
    x
        Images ``[B, C, H, W]``.
    attribution
        ``[B, C', H, W]`` (``C'`` in ``{1, C}``) or ``[B, H, W]``; higher = more relevant.
    order
        ``"morf"`` (remove the most relevant pixels first) or ``"lerf"`` (least relevant first).
    fractions
        Strictly increasing fractions in ``[0, 1]`` (default ``linspace(0, 0.9, 10)``, ROAD's range).
    noise, seed
        Noise std of :func:`noisy_linear_impute` and the seed of its generator (one generator per call,
        consumed fraction by fraction, so the curve is reproducible).
    batch_size
        Largest number of imputed images scored at once (``None``: all ``B`` of one fraction).
    multi_output
        Allow several scores per input.

    Returns
    -------
    dict
        ``"fractions"`` float64 ``[T]``; ``"n_pixels"`` int64 ``[T]``; ``"scores"`` ``[B, T(, ...)]``;
        ``"auc"`` ``[B(, ...)]`` (trapezoid mean over the fractions, as in
        :func:`ualib.metrics.perturbation.perturbation_curve`).
    """
    check_choice(order, "order", ORDERS)
    x = check_tensor(x, "x", ndim=4)
    a = _channel_sum(attribution, "attribution", tuple(x.shape)).to(x.device)
    f = _check_fractions(torch.linspace(0, 0.9, 10) if fractions is None else fractions)
    bs = _check_batch_size(batch_size)
    b, _, h, w = x.shape
    key = -a.flatten(1) if order == "morf" else a.flatten(1)
    ranking = torch.sort(key, dim=1, stable=True).indices
    rank = torch.empty_like(ranking)
    rank.scatter_(1, ranking, torch.arange(h * w, device=ranking.device).expand(b, -1))
    counts = torch.round(f * (h * w)).to(torch.long)
    gen = torch.Generator().manual_seed(int(seed))
    step = bs or b
    cols = []
    with torch.no_grad():
        for k in counts.tolist():
            removed = (rank < k).view(b, h, w)
            xi = noisy_linear_impute(x, removed, noise=noise, generator=gen)
            outs = []
            for s in range(0, b, step):
                out = score_fn(xi[s : s + step])
                if not isinstance(out, torch.Tensor):
                    raise TypeError(f"score_fn must return a torch.Tensor, got {type(out).__name__}")
                n = len(xi[s : s + step])
                if out.ndim < 1 or out.shape[0] != n or (not multi_output and out.ndim != 1):
                    raise ValueError(f"score_fn must map {n} inputs to shape [{n}], got {tuple(out.shape)}")
                outs.append(out.detach())
            cols.append(torch.cat(outs))
    scores = torch.stack(cols, 1)
    return {"fractions": f, "n_pixels": counts, "scores": scores, "auc": _normalised_auc(scores, f)}


def road_test(
    uncertainty_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    attribution: torch.Tensor,
    *,
    fractions: torch.Tensor | None = None,
    noise: float = 0.01,
    seed: int = 0,
    batch_size: int | None = None,
    multi_output: bool = False,
) -> dict[str, torch.Tensor]:
    """Uncertainty flipping by ROAD imputation in both orders: how fast the uncertainty falls.

    The uncertainty reduction rate at fraction ``r`` is ``URR(r) = (U(x) - U(x_r)) / U(x)`` (as in the
    blurring test, :func:`ualib.metrics.perturbation.blurring_test`), with ``x_r`` the image with the
    ``k(r)`` most (MoRF) or least (LeRF) relevant pixels imputed. A map that ranks the uncertainty's
    causes first reduces it fast under MoRF and slowly under LeRF, so the **gap**
    ``AUC-URR(MoRF) - AUC-URR(LeRF)`` is positive; a ranking unrelated to the uncertainty has gap 0 in
    expectation, whatever the imputation itself does to the uncertainty (it cancels in the difference).
    Both orders use the same noise seed.

    Returns
    -------
    dict
        ``"fractions"``, ``"u0"`` ``[B(, ...)]`` (``U(x)``), ``"urr_morf"``, ``"urr_lerf"`` ``[B, T(, ...)]``,
        ``"auc_morf"``, ``"auc_lerf"``, ``"gap"`` ``[B(, ...)]``. Inputs with ``U(x) = 0`` give NaN.
    """
    out: dict[str, torch.Tensor] = {}
    for order in ORDERS:
        res = road_curve(
            uncertainty_fn,
            x,
            attribution,
            order=order,
            fractions=fractions,
            noise=noise,
            seed=seed,
            batch_size=batch_size,
            multi_output=multi_output,
        )
        with torch.no_grad():
            u0 = uncertainty_fn(x).detach()
        u0e = u0.unsqueeze(1)
        urr = torch.where(u0e > 0, (u0e - res["scores"]) / u0e.clamp_min(torch.finfo(u0.dtype).tiny), torch.nan)
        out["fractions"], out["u0"] = res["fractions"], u0
        out[f"urr_{order}"] = urr
        out[f"auc_{order}"] = _normalised_auc(urr, res["fractions"])
    out["gap"] = out["auc_morf"] - out["auc_lerf"]
    return out
