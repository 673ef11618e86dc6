"""Sanity checks for (uncertainty) attribution maps: does the map depend on the network at all?

Adebayo et al. (2018) randomize a trained network's weights layer by layer, from the output layer down
(*cascading model-parameter randomization*), and measure how similar each method's map stays to the
map of the trained network. A map that barely changes although the network has been destroyed
explains the input (an edge detector), not the model. Valdenegro-Toro & Mulye (2024) apply the same
idea to *explanation uncertainty* and add a *data randomization* test (a network trained on shuffled
labels); here both are applied to maps of an uncertainty target.

Similarity is measured between normalised magnitude maps ``|A|`` (channel-summed, divided by the
map's maximum), by the Spearman rank correlation of their pixels and by SSIM (Wang et al. 2004, with
scikit-image's defaults: a 7 x 7 uniform window, ``K1 = 0.01``, ``K2 = 0.03``, sample covariances,
data range 1).

Randomization always works on a deep copy of the posterior: the original is never modified.

References
----------
.. [1] J. Adebayo, J. Gilmer, M. Muelly, I. Goodfellow, M. Hardt, B. Kim. "Sanity Checks for Saliency
   Maps." NeurIPS 2018.
.. [2] M. Valdenegro-Toro, M. S. Mulye. "Sanity Checks for Explanation Uncertainty." arXiv 2403.17212, 2024.
.. [3] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli. "Image Quality Assessment: From Error
   Visibility to Structural Similarity." IEEE TIP 13(4), 2004.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ualib._checks import check_positive_int, check_tensor

__all__ = [
    "normalised_magnitude",
    "rankdata",
    "spearman",
    "ssim",
    "map_similarity",
    "parametrized_layers",
    "cascading_randomization",
    "data_randomization",
]


def normalised_magnitude(a: torch.Tensor) -> torch.Tensor:
    """``|A|`` summed over channels and divided by each map's maximum: ``[B, H, W]`` in ``[0, 1]`` (float64).

    ``a`` is ``[B, C, H, W]`` or ``[B, H, W]``; an all-zero map stays zero.
    """
    a = check_tensor(a, "a", ndim=(3, 4)).detach().to(torch.float64)
    m = a.abs().sum(1) if a.ndim == 4 else a.abs()
    peak = m.flatten(1).amax(1).view(-1, 1, 1)
    return torch.where(peak > 0, m / peak.clamp_min(torch.finfo(torch.float64).tiny), m)


def rankdata(v: torch.Tensor) -> torch.Tensor:
    """Ranks ``1..n`` along the last axis, ties given their average rank (like ``scipy.stats.rankdata``)."""
    v = check_tensor(v, "v")
    n = v.shape[-1]
    order = torch.sort(v, dim=-1, stable=True)
    sv = order.values
    ordinal = torch.arange(1, n + 1, dtype=torch.float64, device=v.device).expand_as(sv)
    # average the ordinal ranks over runs of equal values
    new = torch.ones_like(sv, dtype=torch.bool)
    new[..., 1:] = sv[..., 1:] != sv[..., :-1]
    group = new.cumsum(-1) - 1  # run index per sorted position
    sums = torch.zeros_like(ordinal).scatter_add_(-1, group, ordinal)
    counts = torch.zeros_like(ordinal).scatter_add_(-1, group, torch.ones_like(ordinal))
    avg = (sums / counts.clamp_min(1)).gather(-1, group)
    return torch.empty_like(avg).scatter_(-1, order.indices, avg)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of the pixels of each pair of maps: ``[B]`` (NaN for a constant map).

    ``a`` and ``b`` are ``[B, ...]`` of the same shape; flattened per input, ranked with average ties,
    then Pearson-correlated (float64).
    """
    a, b = check_tensor(a, "a"), check_tensor(b, "b")
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"a and b must be [B, ...] of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    ra, rb = rankdata(a.flatten(1).to(torch.float64)), rankdata(b.flatten(1).to(torch.float64))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    return torch.where(den > 0, (ra * rb).sum(1) / den.clamp_min(1e-300), torch.nan)


def ssim(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0, win_size: int = 7) -> torch.Tensor:
    """Mean structural similarity of each pair of single-channel images ``[B, H, W]``: ``[B]`` (float64).

    Matches ``skimage.metrics.structural_similarity(a, b, data_range=data_range, win_size=win_size)``
    (uniform window, sample covariances ``N / (N - 1)``, ``K1 = 0.01``, ``K2 = 0.03``, mean over the
    positions whose window lies inside the image).
    """
    a, b = check_tensor(a, "a", ndim=3), check_tensor(b, "b", ndim=3)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    win_size = check_positive_int(win_size, "win_size")
    if win_size % 2 == 0 or win_size > min(a.shape[-2:]):
        raise ValueError(f"win_size must be odd and at most the image side {min(a.shape[-2:])}, got {win_size}")
    x, y = a.to(torch.float64)[:, None], b.to(torch.float64)[:, None]

    def mean(z):
        return F.avg_pool2d(z, win_size, stride=1)

    n = win_size**2
    cov_norm = n / (n - 1)
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def _window(shape: tuple[int, ...]) -> int:
    """The SSIM window: 7, or the largest odd number that fits the image."""
    return min(7, *[s if s % 2 else s - 1 for s in shape[-2:]])


def map_similarity(reference: torch.Tensor, other: torch.Tensor) -> dict[str, torch.Tensor]:
    """Spearman rank correlation and SSIM between two batches of maps, on :func:`normalised_magnitude`.

    ``reference`` and ``other`` are maps of one shape, ``[B, C, H, W]`` (or ``[B, H, W]``); returns
    ``{"spearman": [B], "ssim": [B]}`` (float64; the SSIM window is 7, or the largest odd size that fits).
    """
    a, b = normalised_magnitude(reference), normalised_magnitude(other)
    if a.shape != b.shape:
        raise ValueError(f"reference and other must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return {"spearman": spearman(a, b), "ssim": ssim(a, b, win_size=_window(a.shape))}


def parametrized_layers(module: nn.Module) -> list[str]:
    """Names of the submodules that own parameters directly, in registration (forward) order."""
    return [name for name, m in module.named_modules() if any(True for _ in m.parameters(recurse=False))]


def _reinit(m: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for p in m.parameters(recurse=False):
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) / fan_in**0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device))
        for name, buf in m.named_buffers(recurse=False):  # BatchNorm statistics
            if name == "running_mean":
                buf.zero_()
            elif name == "running_var":
                buf.fill_(1.0)


def cascading_randomization(
    posterior,
    make_methods: Callable[[object], Mapping[str, Callable[[torch.Tensor], torch.Tensor]]],
    x: torch.Tensor,
    *,
    reference: Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> dict[str, object]:
    """Cascading model-parameter randomization (top layer first) of every method's map.

    Parameters
    ----------
    posterior
        The trained posterior (anything with a ``.module``; a :class:`ualib.posteriors.Posterior`).
        It is deep-copied; the original is left untouched.
    make_methods
        ``posterior -> {name: x -> map}``: builds the methods on a (randomized) copy.
    x
        Inputs ``[B, C, H, W]``.
    reference
        The trained network's maps (default: computed with ``make_methods(posterior)``).
    seed
        Seed of the random weights (``N(0, 1/fan_in)`` for weight tensors, ``N(0, 0.01)`` for vectors).

    Returns
    -------
    dict
        ``"layers"``: the randomized layer names, top first (step ``l`` has layers ``0..l`` randomized,
        the last step all of them); ``"spearman"`` and ``"ssim"``: ``{method: [L, B]}`` similarity of the
        step-``l`` map to the reference, both on :func:`normalised_magnitude`.
    """
    x = check_tensor(x, "x", ndim=4)
    if reference is None:
        reference = {k: fn(x).detach() for k, fn in make_methods(posterior).items()}
    ref = {k: normalised_magnitude(v) for k, v in reference.items()}
    post = copy.deepcopy(posterior)
    layers = parametrized_layers(post.module)[::-1]
    if not layers:
        raise ValueError("the posterior's module has no parameters to randomize")
    modules = dict(post.module.named_modules())
    gen = torch.Generator().manual_seed(int(seed))
    rho = {k: [] for k in ref}
    sim = {k: [] for k in ref}
    win = _window(x.shape)
    for name in layers:
        _reinit(modules[name], gen)
        for k, fn in make_methods(post).items():
            if k not in ref:
                continue
            m = normalised_magnitude(fn(x).detach())
            rho[k].append(spearman(ref[k], m))
            sim[k].append(ssim(ref[k], m, win_size=win))
    return {
        "layers": layers,
        "spearman": {k: torch.stack(v) for k, v in rho.items()},
        "ssim": {k: torch.stack(v) for k, v in sim.items()},
    }


def data_randomization(
    reference: Mapping[str, torch.Tensor], randomized: Mapping[str, torch.Tensor]
) -> dict[str, dict[str, torch.Tensor]]:
    """Data randomization test: each method's map of a network trained on permuted labels against its map
    of the network trained on the true labels (same architecture, same inputs).

    Adebayo et al. (2018) train a copy of the network on randomly permuted labels; a map that stays
    similar although the labels carried no information cannot explain what the network learned from
    them. Valdenegro-Toro & Mulye (2024) apply the test to explanation uncertainty; here it is applied to
    maps of an uncertainty target.

    Parameters
    ----------
    reference
        ``{method: map [B, ...]}`` of the network trained on the true labels.
    randomized
        ``{method: map [B, ...]}`` of the network trained on permuted labels, on the same inputs; methods
        missing from ``reference`` are ignored.

    Returns
    -------
    dict
        ``"spearman"`` and ``"ssim"``: ``{method: [B]}``, :func:`map_similarity` of each pair.
    """
    missing = [k for k in reference if k not in randomized]
    if missing:
        raise ValueError(f"randomized lacks maps of {missing}")
    sims = {k: map_similarity(reference[k].detach(), randomized[k].detach()) for k in reference}
    return {"spearman": {k: v["spearman"] for k, v in sims.items()}, "ssim": {k: v["ssim"] for k, v in sims.items()}}
