"""Grad-CAM: a layer's activation maps weighted by their spatially averaged gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ualib.attribution._common import (
    Target,
    call_target,
    check_batch_size,
    check_input,
    check_target,
    chunks,
    forward_hooks,
)

__all__ = ["grad_cam"]


def _under_vmap(t: torch.Tensor) -> bool:
    is_wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)
    return bool(is_wrapped(t)) if is_wrapped is not None else False


def _cam(target: Target, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """Grad-CAM maps ``[n, h, w]`` of one chunk ``x [n, C, H, W]`` (before upsampling)."""
    n = x.shape[0]
    xs = x.clone().requires_grad_(True)  # keeps the layer's activations in the graph
    acts: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"grad_cam's layer must output one tensor [B, C, h, w], got {type(output).__name__}")
        acts.append(output)

    with forward_hooks([layer], hook), torch.enable_grad():
        out = call_target(target, xs)
        if not acts:
            raise ValueError("the target never ran through `layer`: pass a module the target evaluates")
        if any(_under_vmap(a) for a in acts):
            raise ValueError(
                "`layer` ran inside torch.func.vmap (as in a DeepEnsemble), where its activations cannot "
                "be differentiated from outside; Grad-CAM of such a target is not supported"
            )
        grads = torch.autograd.grad(out.sum(), acts, allow_unused=True)
    # an activation with no gradient was recorded by a forward pass the target discarded (for
    # example MC dropout's fallback from its lazy expansion)
    used = [(a, g) for a, g in zip(acts, grads) if g is not None]
    if not used:
        raise ValueError("the target's output does not depend on `layer`'s activations")
    if len(used) > 1:
        raise ValueError(
            f"`layer` ran {len(used)} times in one evaluation of the target (a DeepEnsemble, DropConnect or "
            "Flipout posterior runs it once per sample); Grad-CAM needs a layer that runs once per forward pass"
        )
    a, g = used[0]
    if a.ndim != 4 or a.shape[0] % n:
        raise ValueError(
            f"grad_cam's layer must output activations [k*B, C, h, w] with B = {n} inputs in this batch, "
            f"got shape {tuple(a.shape)}"
        )
    k = a.shape[0] // n
    a = a.detach().reshape(k, n, *a.shape[1:])
    g = g.detach().reshape(k, n, *g.shape[1:])
    alpha = g.mean(dim=(-2, -1), keepdim=True)  # [k, n, C, 1, 1]
    return torch.relu((alpha * a).sum(2)).mean(0)  # [n, h, w]


def grad_cam(target: Target, x: torch.Tensor, *, layer: nn.Module, batch_size: int | None = None) -> torch.Tensor:
    r"""Grad-CAM map of a scalar target at a convolutional layer, upsampled to the input size.

    With :math:`A^k` the ``k``-th activation map of ``layer`` (book: chapter 8, "Which map should I trust?", section "Every method, every map" — notebooks/08_method_comparison.ipynb),

    .. math::

        \alpha_k = \frac{1}{hw}\sum_{i,j}\frac{\partial F}{\partial A^k_{ij}}, \qquad
        L = \mathrm{ReLU}\Big(\sum_k \alpha_k A^k\Big) \in \mathbb R^{h\times w},

    then :math:`L` is upsampled bilinearly (``align_corners=False``) to the input's ``H x W``.
    **This is the one method whose output is not per input channel**: it is ``[B, 1, H, W]``.
    Values are raw (not normalised).

    Posterior targets: a posterior that runs its S samples in one pass makes ``layer`` see ``k * B``
    rows, ``k = S`` (for MC dropout, ``k = 1`` for a layer *before* the first dropout layer, where the
    batch is not yet replicated). The activations and their gradients are reshaped to
    ``[k, B, C, h, w]``, one map is computed per copy with its own :math:`\alpha`, and the ``k``
    maps are averaged (before upsampling). A :class:`~ualib.posteriors.DeepEnsemble`,
    :class:`~ualib.posteriors.DropConnect` or :class:`~ualib.posteriors.BayesByBackprop` posterior
    runs ``layer`` once per sample, and a target evaluated under ``torch.func.vmap`` hides its
    activations from autograd outside it; neither is supported.

    Parameters
    ----------
    target
        The explained scalar :math:`F`: a differentiable function ``x [B, ...] -> [B]``
        (see :mod:`ualib.targets`) that runs ``layer`` exactly once per evaluation.
    x
        Images ``[B, C, H, W]``, floating point. Not modified.
    layer
        An ``nn.Module`` evaluated by the target whose output is ``[k*B, C', h, w]``, typically the
        last convolutional layer (or its ReLU).
    batch_size
        Evaluate the target on at most this many inputs at a time (``None``: all at once).

    Returns
    -------
    torch.Tensor
        ``[B, 1, H, W]``, non-negative, detached.

    Raises
    ------
    TypeError
        If ``target`` is not callable, ``layer`` is not an ``nn.Module``, or ``x`` is not floating.
    ValueError
        If ``x`` is not ``[B, C, H, W]``, the target does not return a differentiable ``[B]``
        tensor, never runs ``layer``, runs it more than once, or ``layer``'s output is not
        ``[k*B, C', h, w]``.

    References
    ----------
    R. R. Selvaraju, M. Cogswell, A. Das, R. Vedantam, D. Parikh, D. Batra. Grad-CAM: visual
    explanations from deep networks via gradient-based localization. ICCV 2017.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    >>> x = torch.rand(2, 1, 8, 8)
    >>> maps = ualib.grad_cam(ualib.class_logit(net, 0), x, layer=net[0])  # net[0] is the convolution
    >>> tuple(maps.shape)
    (2, 1, 8, 8)
    """
    check_target(target)
    x = check_input(x, ndim=(4,)).detach()
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be an nn.Module, got {type(layer).__name__}")
    batch_size = check_batch_size(batch_size)
    cam = torch.cat([_cam(target, x[a:b], layer) for a, b in chunks(x.shape[0], batch_size)])
    return F.interpolate(cam.unsqueeze(1), size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
