"""Uncertainty Activation Maps (UAM): where an evidential network lacks evidence and where it conflicts.

Jeong et al. (2026) combine evidential deep learning (EDL) with FullGrad: the class evidence of an EDL
network is decomposed over the pixels, and the class maps are weighted by Subjective-Logic beliefs to
give a **vacuity activation map** (VAM, missing evidence) and a **dissonance activation map** (DAM,
conflicting evidence). The paper's exact formulas could not be read; everything here follows the
reconstruction stated in the book **[INF]** (book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb):

* class maps: FullGrad of each logit ``z_k``, signed and complete (``A^s_k``, sums to ``z_k``) and
  as a display map ``Â_k`` in ``[0, 1]`` (the official FullGrad saliency divided by its maximum);
* beliefs ``b_k = e_k / S``, vacuity ``u = K / S``, and the per-class dissonance terms
  ``ω_k = b_k Σ_{j≠k} b_j Bal(b_j, b_k) / Σ_{j≠k} b_j`` (:func:`dissonance_weights`, ``Σ_k ω_k = diss``);
* belief map ``𝓑 = Σ_k b_k Â_k`` and ``DAM = Σ_k ω_k Â_k``;
* VAM, option ``"missing"`` (A, default): ``u (1 - 𝓑 / max 𝓑)``, high where no class finds evidence;
  option ``"gradient"`` (B): the first-order, completeness-consistent signed map
  ``Σ_k (∂u/∂z_k) A^s_k``, with ``∂u/∂z_k = -K g'(z_k) / S²`` (``-K/S² 1[z_k > 0]`` for ReLU
  evidence), whose pixel sum is ``Σ_k (∂u/∂z_k) z_k``.

Baselines ([INF]; book: chapter 4, "Uncertainty Activation Maps", section "Deletion test" — notebooks/04_uam.ipynb) are the input gradients of vacuity and dissonance through the
attribution core (:func:`uncertainty_gradients`), and the deletion test (:func:`deletion_table`) runs
on :func:`ualib.metrics.perturbation.perturbation_curve`.

References
----------
.. [1] D. H. Jeong, F. Chen, J.-H. Cho, et al. "Visualizing Uncertainty: Spatial Maps of Missing and
   Conflicting Evidence in Deep Learning." arXiv 2606.15767, 2026.
.. [2] S. Srinivas, F. Fleuret. "Full-Gradient Representation for Neural Network Visualization."
   NeurIPS 2019.
.. [3] M. Sensoy, L. Kaplan, M. Kandemir. "Evidential Deep Learning to Quantify Classification
   Uncertainty." NeurIPS 2018.
.. [4] A. Jøsang. *Subjective Logic.* Springer, 2016.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd
import torch

from ualib import uncertainty as U
from ualib._checks import check_choice, check_model_dtype, check_positive_int, check_tensor
from ualib.attribution.fullgrad import FullGrad
from ualib.attribution.registry import REGISTRY
from ualib.evidential import dirichlet_from_logits
from ualib.metrics.perturbation import perturbation_curve
from ualib.posteriors import Evidential
from ualib.seeding import generator
from ualib.targets import evidential_target
from ualib.uncertainty import dissonance_weights

__all__ = [
    "VAM_OPTIONS",
    "UAMResult",
    "dissonance_weights",
    "uam",
    "uncertainty_gradients",
    "deletion_table",
    "deletion_reductions",
    "blend_pairs",
    "mass_split",
]

#: the attribution methods of :func:`uncertainty_gradients`: the target methods of the registry that need nothing else
_BASELINE_METHODS = ("gradient", "input_x_gradient", "smoothgrad", "integrated_gradients")

#: the two VAM variants (book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb): (A) missing evidence, (B) first-order gradient
VAM_OPTIONS = ("missing", "gradient")


@dataclass
class UAMResult:
    """Everything :func:`uam` computes for a batch of ``B`` images ``[B, C, H, W]`` and ``K`` classes.

    Attributes
    ----------
    logits, alpha, belief
        ``[B, K]``: the network outputs ``z``, ``alpha = g(z) + 1`` and the beliefs ``b = (alpha-1)/S``.
    vacuity, dissonance
        ``[B]``.
    dissonance_weights
        ``[B, K]``: ``ω_k`` (rows sum to ``dissonance``).
    class_signed
        ``[B, K, H, W]``: signed complete FullGrad maps ``A^s_k`` (``class_signed[:, k].sum((1, 2)) = z_k``).
    class_display
        ``[B, K, H, W]``: display maps ``Â_k`` in ``[0, 1]`` (FullGrad saliency over its per-image maximum).
    belief_map
        ``[B, 1, H, W]``: ``Σ_k b_k Â_k``.
    dam
        ``[B, 1, H, W]``: ``Σ_k ω_k Â_k`` (its pixel maximum is at most ``dissonance``).
    vam_missing
        ``[B, 1, H, W]``: option A, ``u (1 - 𝓑 / max 𝓑)`` (``u`` everywhere where there is no evidence).
    vam_gradient
        ``[B, 1, H, W]``: option B, ``Σ_k (∂u/∂z_k) A^s_k``, signed.
    vam_option
        Which of the two :attr:`vam` returns.
    completeness_error
        Largest ``|Σ_pixels A^s_k - z_k|`` over the batch and the classes (absolute, in the model's
        dtype).
    """

    logits: torch.Tensor
    alpha: torch.Tensor
    belief: torch.Tensor
    vacuity: torch.Tensor
    dissonance: torch.Tensor
    dissonance_weights: torch.Tensor
    class_signed: torch.Tensor
    class_display: torch.Tensor
    belief_map: torch.Tensor
    dam: torch.Tensor
    vam_missing: torch.Tensor
    vam_gradient: torch.Tensor
    vam_option: str
    completeness_error: float

    @property
    def vam(self) -> torch.Tensor:
        """``[B, 1, H, W]``: the VAM of the selected option."""
        return self.vam_missing if self.vam_option == "missing" else self.vam_gradient


def _evidence_slope(z: torch.Tensor, kind: str) -> torch.Tensor:
    """``g'(z)`` of the evidence function (ReLU: ``1[z > 0]``; softplus: sigmoid; exp: ``exp`` inside the clamp)."""
    if kind == "relu":
        return (z > 0).to(z.dtype)
    if kind == "softplus":
        return torch.sigmoid(z)
    return torch.exp(z.clamp(-10, 10)) * ((z > -10) & (z < 10)).to(z.dtype)


def uam(
    posterior: Evidential,
    x: torch.Tensor,
    *,
    vam: str = "missing",
    fullgrad: FullGrad | None = None,
    batch_size: int | None = None,
) -> UAMResult:
    """Vacuity and dissonance activation maps of an evidential network ([INF]; book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb).

    Parameters
    ----------
    posterior
        A trained :class:`~ualib.posteriors.Evidential` model whose network FullGrad can decompose
        (ReLU, pooling, Conv / Linear / BatchNorm); ReLU evidence keeps the evidence of the active
        classes exactly piecewise linear (``e_k = z_k`` where ``z_k > 0``).
    x
        Images ``[B, C, H, W]`` in the model's dtype. Not modified.
    vam
        ``"missing"`` (option A, default) or ``"gradient"`` (option B); both are computed, this picks
        :attr:`UAMResult.vam`.
    fullgrad
        A :class:`~ualib.attribution.FullGrad` of ``posterior.module`` to reuse (its completeness
        check then runs once); built here when ``None``.
    batch_size
        Process at most this many images at a time (``None``: all at once).

    Returns
    -------
    UAMResult
        Scalars, class maps and the VAM / DAM, all detached.

    Raises
    ------
    TypeError
        If ``posterior`` is not an ``Evidential`` posterior.
    ValueError
        For a malformed ``x``, an unknown ``vam``, or a network FullGrad cannot decompose.

    References
    ----------
    Jeong et al. (2026), arXiv 2606.15767 (method description [READ]; formulas [INF]); Srinivas &
    Fleuret (2019); Sensoy et al. (2018).

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    >>> post = ualib.Evidential(net)
    >>> res = ualib.uam(post, torch.rand(2, 1, 8, 8))
    >>> tuple(res.vam.shape), tuple(res.dam.shape)
    ((2, 1, 8, 8), (2, 1, 8, 8))
    >>> tuple(res.vacuity.shape), res.completeness_error < 1e-4
    ((2,), True)
    """
    if not isinstance(posterior, Evidential):
        raise TypeError(f"posterior must be ualib.posteriors.Evidential, got {type(posterior).__name__}")
    check_choice(vam, "vam", VAM_OPTIONS)
    x = check_model_dtype(check_tensor(x, "x", ndim=4, nonempty=True), "x", posterior.module).detach()
    fg = fullgrad if fullgrad is not None else FullGrad(posterior.module)
    if fg.model is not posterior.module:
        raise ValueError("fullgrad must be built on posterior.module")
    signed, display, z = fg.class_maps(x, batch_size=batch_size)
    k = z.shape[1]
    alpha = dirichlet_from_logits(z, posterior.evidence)
    s = alpha.sum(-1)
    b = U.belief(alpha)
    u = U.vacuity(alpha)
    omega = dissonance_weights(alpha)
    peak = display.flatten(2).max(-1).values[..., None, None]
    a_hat = torch.where(
        peak > 0, display / torch.where(peak > 0, peak, torch.ones_like(peak)), torch.zeros_like(display)
    )
    bmap = (b[..., None, None] * a_hat).sum(1, keepdim=True)
    dam = (omega[..., None, None] * a_hat).sum(1, keepdim=True)
    bmax = bmap.flatten(1).max(1).values.view(-1, 1, 1, 1)
    rel = torch.where(bmax > 0, bmap / torch.where(bmax > 0, bmax, torch.ones_like(bmax)), torch.zeros_like(bmap))
    vam_a = u.view(-1, 1, 1, 1) * (1 - rel)
    du_dz = -k * _evidence_slope(z, posterior.evidence) / s[:, None] ** 2  # [B, K]
    vam_b = (du_dz[..., None, None] * signed).sum(1, keepdim=True)
    err = float((signed.flatten(2).sum(-1) - z).abs().max())
    return UAMResult(
        logits=z,
        alpha=alpha,
        belief=b,
        vacuity=u,
        dissonance=U.dissonance(alpha),
        dissonance_weights=omega,
        class_signed=signed,
        class_display=a_hat,
        belief_map=bmap,
        dam=dam,
        vam_missing=vam_a,
        vam_gradient=vam_b,
        vam_option=vam,
        completeness_error=err,
    )


def uncertainty_gradients(
    posterior: Evidential, x: torch.Tensor, *, method: str = "gradient", batch_size: int | None = None, **kwargs: object
) -> dict[str, torch.Tensor]:
    """Baselines: an attribution method (default the plain input gradient) of vacuity and of dissonance.

    Parameters
    ----------
    posterior
        An :class:`~ualib.posteriors.Evidential` posterior.
    x
        Inputs ``[B, C, H, W]``.
    method
        A method of :data:`ualib.attribution.registry.REGISTRY` that needs nothing but ``(target, x)`` (``"gradient"``,
        ``"input_x_gradient"``, ``"smoothgrad"``, ``"integrated_gradients"``); ``kwargs`` go to it.
    batch_size
        Micro-batch size of the attribution method.

    Returns
    -------
    dict
        ``{"vacuity": [B, C, H, W], "dissonance": [B, C, H, W]}``, raw and signed.
    """
    check_choice(method, "method", _BASELINE_METHODS)
    fn = REGISTRY[method].fn
    return {
        kind: fn(evidential_target(posterior, kind), x, batch_size=batch_size, **kwargs) for kind in U.EVIDENTIAL_KINDS
    }


def _sem(v: torch.Tensor) -> float:
    return float(v.std() / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def deletion_reductions(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    *,
    fraction: float = 0.1,
    baseline: float = 0.0,
    batch_size: int | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-image deletion test: the score before and after deleting each map's top-``fraction`` pixels.

    The per-input form of :func:`deletion_table`, for claims whose confidence interval is bootstrapped
    over images. Parameters as in :func:`deletion_table`.

    Returns
    -------
    dict
        Map name -> ``(before [B], after [B])`` float64 tensors; ``before - after`` is the reduction.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    fr = torch.tensor([0.0, float(fraction)], dtype=torch.float64)
    out = {}
    for name, a in maps.items():
        res = perturbation_curve(score_fn, x, a, mode="delete", fractions=fr, baseline=baseline, batch_size=batch_size)
        sc = res["scores"].double()
        out[name] = (sc[:, 0], sc[:, 1])
    return out


def deletion_table(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    *,
    fraction: float = 0.1,
    baseline: float = 0.0,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """Deletion test: how much deleting each map's top-``fraction`` pixels lowers a score.

    For every map, the top ``round(fraction * H * W)`` pixels (ranked by the channel-summed *signed*
    value, descending, see :func:`ualib.metrics.perturbation.pixel_order`) are set to ``baseline`` and the
    score (vacuity, dissonance: any ``x [n, C, H, W] -> [n]``) is recomputed, through
    :func:`ualib.metrics.perturbation.perturbation_curve` with ``mode="delete"``. Include a random map
    (:func:`ualib.attribution.random_attribution`) as the control. :func:`deletion_reductions` returns
    the per-image scores.

    Parameters
    ----------
    score_fn
        ``x [n, C, H, W] -> [n]``, evaluated without gradients.
    x
        Images ``[B, C, H, W]``.
    maps
        Name -> attribution ``[B, C', H, W]`` (``C'`` in ``{1, C}``); higher = delete first.
    fraction
        Fraction of pixels deleted, in ``(0, 1]``.
    baseline
        Value deleted pixels take (0: black, the MNIST background).
    batch_size
        Largest number of images scored at once.

    Returns
    -------
    pandas.DataFrame
        Indexed by map name, with ``before`` (mean score), ``after`` (mean score after deletion),
        ``reduction`` (mean of ``before - after`` per image) and ``reduction sem``.
    """
    per_image = deletion_reductions(score_fn, x, maps, fraction=fraction, baseline=baseline, batch_size=batch_size)
    rows = {}
    for name, (before, after) in per_image.items():
        red = before - after
        rows[name] = {
            "before": float(before.mean()),
            "after": float(after.mean()),
            "reduction": float(red.mean()),
            "reduction sem": _sem(red),
        }
    return pd.DataFrame(rows).T


def blend_pairs(
    x: torch.Tensor, y: torch.Tensor, n: int, *, weight: float = 0.5, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ambiguous inputs: pixel-wise blends ``w x_a + (1 - w) x_b`` of ``n`` pairs with different labels.

    Parameters
    ----------
    x, y
        Images ``[N, C, H, W]`` and integer labels ``[N]``.
    n
        Number of blends.
    weight
        ``w`` in ``(0, 1)``.
    seed
        Seed of the pair selection (a private generator; the global RNG is untouched).

    Returns
    -------
    blends, x_a, x_b, y_a, y_b
        ``[n, C, H, W]`` blends, the two source images of each, and their labels ``[n]`` (always
        ``y_a != y_b``).
    """
    x = check_tensor(x, "x", ndim=4)
    y = check_tensor(y, "y", ndim=1, floating=False)
    check_positive_int(n, "n")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if not 0 < weight < 1:
        raise ValueError(f"weight must lie in (0, 1), got {weight}")
    if len(torch.unique(y)) < 2:
        raise ValueError("blend_pairs needs images of at least two different labels")
    g = generator(seed, "blend_pairs")
    ia, ib = [], []
    while len(ia) < n:
        a = torch.randint(len(x), (2 * n,), generator=g)
        b = torch.randint(len(x), (2 * n,), generator=g)
        keep = y[a] != y[b]
        ia += a[keep].tolist()
        ib += b[keep].tolist()
    ia_t, ib_t = torch.tensor(ia[:n]), torch.tensor(ib[:n])
    xa, xb = x[ia_t], x[ib_t]
    return weight * xa + (1 - weight) * xb, xa, xb, y[ia_t], y[ib_t]


def mass_split(attribution: torch.Tensor, mask_a: torch.Tensor, mask_b: torch.Tensor) -> pd.DataFrame:
    """Where a non-negative map's mass lies on a blend: only on stroke A, only on B, on both, elsewhere.

    Parameters
    ----------
    attribution
        ``[B, C', H, W]``, non-negative (a DAM, a display map); summed over channels.
    mask_a, mask_b
        Boolean stroke masks ``[B, 1, H, W]`` (or ``[B, H, W]``) of the two blended images.

    Returns
    -------
    pandas.DataFrame
        One row per image with the mass fractions ``A only``, ``B only``, ``both`` and ``background``
        (rows sum to 1) and the matching area fractions (``area A only``, ...), the chance level of a
        map spread uniformly. An all-zero map has no mass to split: its row is NaN in *every* column,
        area fractions included, so that column means (``DataFrame.mean`` skips NaN) average mass and
        area over the same images.
    """
    a = check_tensor(attribution, "attribution", ndim=4).sum(1)
    if (a < 0).any():
        raise ValueError("mass_split needs a non-negative map (take .abs() or .clamp(min=0) of a signed one)")
    ma, mb = mask_a.reshape(a.shape).bool(), mask_b.reshape(a.shape).bool()
    regions = {"A only": ma & ~mb, "B only": mb & ~ma, "both": ma & mb, "background": ~ma & ~mb}
    total = a.flatten(1).sum(1)
    out = {}
    for name, r in regions.items():
        out[name] = ((a * r).flatten(1).sum(1) / total).numpy()
    empty = (total == 0).numpy()
    for name, r in regions.items():
        area = r.flatten(1).float().mean(1).numpy()
        area[empty] = float("nan")
        out[f"area {name}"] = area
    return pd.DataFrame(out)
