"""Integrated gradients: the path integral of the gradient from a baseline to the input."""

from __future__ import annotations

import torch

from ualib._checks import check_positive_int, check_tensor
from ualib.attribution._common import (
    Target,
    accumulate_gradients,
    check_batch_size,
    check_input,
    check_nonnegative_float,
    check_target,
    evaluate,
)
from ualib.attribution.blur import gaussian_blur

__all__ = ["integrated_gradients", "BASELINES"]

#: the named baselines of :func:`integrated_gradients`
BASELINES = ("black", "blur")


def _baseline(x: torch.Tensor, baseline: str | torch.Tensor, blur_sigma: float) -> torch.Tensor:
    if isinstance(baseline, str):
        if baseline == "black":
            return torch.zeros_like(x)
        if baseline == "blur":
            if x.ndim != 4:
                raise ValueError(f"the 'blur' baseline needs images [B, C, H, W], got x of shape {tuple(x.shape)}")
            return gaussian_blur(x, check_nonnegative_float(blur_sigma, "blur_sigma", positive=True))
        raise ValueError(f"baseline must be one of {list(BASELINES)} or a tensor, got {baseline!r}")
    if not isinstance(baseline, torch.Tensor):
        raise TypeError(f"baseline must be one of {list(BASELINES)} or a torch.Tensor, got {type(baseline).__name__}")
    check_tensor(baseline, "baseline")
    try:
        shape = torch.broadcast_shapes(baseline.shape, x.shape)
    except RuntimeError:
        shape = None
    if shape != x.shape:
        raise ValueError(
            f"a baseline tensor must be broadcastable to x's shape {tuple(x.shape)}, got {tuple(baseline.shape)}"
        )
    return baseline.detach().to(dtype=x.dtype, device=x.device).expand(x.shape)


def integrated_gradients(
    target: Target,
    x: torch.Tensor,
    *,
    baseline: str | torch.Tensor = "black",
    steps: int = 32,
    blur_sigma: float = 2.0,
    batch_size: int | None = None,
    return_convergence: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Raw integrated gradients with the right Riemann sum (book: chapter 8, "Which map should I trust?", section "Every method, every map" — notebooks/08_method_comparison.ipynb).

    .. math::

        \mathrm{IG}_i(x) = (x_i - x'_i)\,\frac1S\sum_{s=1}^{S}
        \partial_i F\!\left(x' + \tfrac sS\,(x - x')\right),

    which converges to :math:`(x_i - x'_i)\int_0^1 \partial_i F(x' + \alpha(x - x'))\,d\alpha` with
    error :math:`O(1/S)`; the exact integral is *complete*, :math:`\sum_i \mathrm{IG}_i = F(x) - F(x')`.
    Captum's ``IntegratedGradients(method="riemann_right", n_steps=S)`` computes the same sum.

    Parameters
    ----------
    target
        The explained scalar :math:`F`: a differentiable function ``x [B, ...] -> [B]``
        (see :mod:`ualib.targets`), row-wise in the batch. A posterior target uses the same posterior
        samples at every step.
    x
        Inputs ``[B, C, H, W]`` or ``[B, F]``, floating point. Not modified.
    baseline
        :math:`x'`: ``"black"`` (all zeros), ``"blur"`` (:func:`gaussian_blur` of ``x`` with
        ``blur_sigma``; images only), or a tensor broadcastable to ``x.shape``.
    steps
        S, the number of Riemann steps (>= 1).
    blur_sigma
        Standard deviation in pixels of the ``"blur"`` baseline.
    batch_size
        Evaluate the target on at most this many of the ``S * B`` path points at a time (``None``:
        all at once). The result does not depend on it.
    return_convergence
        Also return the completeness gap :math:`F(x) - F(x') - \sum_i \mathrm{IG}_i` per input.

    Returns
    -------
    torch.Tensor or (torch.Tensor, torch.Tensor)
        The attributions, shaped like ``x``, signed, detached; with ``return_convergence``, also the
        gap ``[B]``.

    Raises
    ------
    TypeError
        If ``target`` is not callable, or ``x`` / ``baseline`` is not a floating tensor.
    ValueError
        On a wrong rank of ``x``, an unknown or mis-shaped baseline, ``steps < 1``, a non-positive
        ``blur_sigma``, or a target that does not return a differentiable ``[B]`` tensor.

    References
    ----------
    M. Sundararajan, A. Taly, Q. Yan. Axiomatic attribution for deep networks. ICML 2017.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    >>> x = torch.rand(2, 1, 8, 8)
    >>> maps = ualib.integrated_gradients(ualib.class_logit(net, 0), x, baseline="black", steps=16)
    >>> tuple(maps.shape)
    (2, 1, 8, 8)
    """
    check_target(target)
    x = check_input(x).detach()
    steps = check_positive_int(steps, "steps")
    batch_size = check_batch_size(batch_size)
    if not isinstance(return_convergence, bool):
        raise TypeError(f"return_convergence must be a bool, got {type(return_convergence).__name__}")
    base = _baseline(x, baseline, blur_sigma)
    delta = x - base
    alphas = (torch.arange(1, steps + 1, dtype=torch.float64) / steps).to(dtype=x.dtype, device=x.device)
    view = (-1, *([1] * (x.ndim - 1)))

    def point(rep: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return base[b] + alphas[rep].view(view) * delta[b]

    attr = delta * accumulate_gradients(target, x, point, steps, batch_size) / steps
    if not return_convergence:
        return attr
    gap = evaluate(target, x, batch_size) - evaluate(target, base.contiguous(), batch_size)
    return attr, gap - attr.flatten(1).sum(1)
