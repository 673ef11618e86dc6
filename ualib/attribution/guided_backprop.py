"""Guided backpropagation: the input gradient with negative gradients stopped at every ReLU."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ualib.attribution._common import (
    Target,
    accumulate_gradients,
    check_batch_size,
    check_input,
    check_target,
    forward_hooks,
)

__all__ = ["guided_backprop", "guided_relu"]


def _clamp_positive(grad: torch.Tensor) -> torch.Tensor:
    return grad.clamp(min=0)


class _GuidedReLUGrad(torch.autograd.Function):
    """Identity on a ReLU's output ``f >= 0`` whose backward is ``1[f > 0] * max(g, 0)``; for vmap'ed calls.

    Tensor gradient hooks do not reach through ``torch.func.vmap`` (a target that vectorises its networks
    that way), a custom Function with a generated vmap rule does, at the cost of a copy.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(out: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return out.clone()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[override]
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (out,) = ctx.saved_tensors
        return grad.clamp(min=0) * (out > 0).to(grad.dtype)


def _batched(t: torch.Tensor) -> bool:
    """Whether ``t`` is a functorch batched tensor (we are inside ``vmap``)."""
    is_batched = getattr(getattr(torch._C, "_functorch", None), "is_batchedtensor", None)
    return True if is_batched is None else bool(is_batched(t))


@contextmanager
def guided_relu(model: nn.Module) -> Iterator[list[int]]:
    """Inside the block, every ``nn.ReLU`` of ``model`` back-propagates only positive gradients.

    A forward hook registers a gradient hook on each ReLU's output that keeps ``max(g, 0)``; the ReLU's
    own backward then multiplies by ``1[f > 0]`` (forward values are unchanged, nothing is copied; this
    is what makes it as fast as Captum's module hooks). Inside ``vmap`` (a target that vmaps its networks) the output
    passes through an identity Function with that backward instead. The hooks are removed on exit, also when
    an exception is raised. Yields a one-element list counting how many ReLU calls were guided.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Module``.
    ValueError
        If ``model`` contains no ``nn.ReLU`` module.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be the nn.Module the target runs through, got {type(model).__name__}")
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError(
            "guided backprop needs nn.ReLU modules to hook, and this model has none (a functional "
            "F.relu / torch.relu cannot be hooked); replace it by an nn.ReLU module"
        )
    calls = [0]

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        calls[0] += 1
        if _batched(output):
            return _GuidedReLUGrad.apply(output)
        if output.requires_grad:
            output.register_hook(_clamp_positive)
        return None

    with forward_hooks(relus, hook):
        yield calls


def guided_backprop(
    target: Target, x: torch.Tensor, *, model: nn.Module, batch_size: int | None = None
) -> torch.Tensor:
    r"""Raw guided-backpropagation attribution (book: chapter 5, "Explanation uncertainty", section "Explanation distributions" — notebooks/05_explanation_uncertainty.ipynb).

    The gradient :math:`\partial F / \partial x` computed with a modified backward pass through
    every ``nn.ReLU`` module of ``model``: with :math:`f^{(l)}` the ReLU's forward input and
    :math:`R^{(l+1)}` the gradient arriving at its output,

    .. math:: R^{(l)} = \mathbb 1[f^{(l)} > 0]\;\mathbb 1[R^{(l+1)} > 0]\;R^{(l+1)}.

    Only ``nn.ReLU`` modules are modified; a functional ``F.relu`` keeps its ordinary gradient.

    Parameters
    ----------
    target
        The explained scalar :math:`F`: a differentiable function ``x [B, ...] -> [B]``
        (see :mod:`ualib.targets`) that runs through ``model``.
    x
        Inputs ``[B, C, H, W]`` or ``[B, F]``, floating point. Not modified.
    model
        The ``nn.Module`` the target evaluates: a plain classifier, or ``posterior.module`` for a
        ualib posterior (for a :class:`~ualib.posteriors.DeepEnsemble` that is the stateless template
        that ``functional_call`` runs, whose ReLU modules are the ones every member passes through).
    batch_size
        Evaluate the target on at most this many inputs at a time (``None``: all at once).

    Returns
    -------
    torch.Tensor
        The guided gradient, shaped like ``x``, detached.

    Raises
    ------
    TypeError
        If ``target`` is not callable, ``model`` is not an ``nn.Module`` or ``x`` is not floating.
    ValueError
        If ``model`` has no ``nn.ReLU`` module, the target never ran through one of them, ``x`` has
        the wrong rank, or the target does not return a differentiable ``[B]`` tensor.

    References
    ----------
    J. T. Springenberg, A. Dosovitskiy, T. Brox, M. Riedmiller. Striving for simplicity: the all
    convolutional net. ICLR Workshop 2015.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    >>> x = torch.rand(2, 1, 8, 8)
    >>> maps = ualib.guided_backprop(ualib.class_logit(net, 0), x, model=net)
    >>> tuple(maps.shape)
    (2, 1, 8, 8)
    """
    check_target(target)
    x = check_input(x).detach()
    batch_size = check_batch_size(batch_size)
    with guided_relu(model) as calls:
        attr = accumulate_gradients(target, x, lambda rep, b: x[b], 1, batch_size)
    if calls[0] == 0:
        raise ValueError(
            "the target never ran through an nn.ReLU of `model`: pass the module the target evaluates "
            "(for a ualib posterior, model=posterior.module)"
        )
    return attr
