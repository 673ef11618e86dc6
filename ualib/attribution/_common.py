"""Shared machinery of the attribution methods: validation, chunked input gradients, hook scopes.

Every method in :mod:`ualib.attribution` explains a *target*: a differentiable function
``x [B, ...] -> [B]`` (see :mod:`ualib.targets`). The helpers here

* validate the target, the input and the common options with precise ``ValueError`` /
  ``TypeError`` messages,
* evaluate the target at ``R x B`` points (R repetitions: integration steps, noise samples, ...)
  in micro-batches of ``batch_size`` rows and accumulate the input gradients per input, so memory
  is bounded by ``batch_size`` points however large R is,
* register module hooks inside a context manager that removes them on exit, also when an exception
  is raised (the Zennit pattern).

Gradients are always taken with ``torch.autograd.grad`` with respect to a detached copy of the
points, so the caller's ``x`` gets no gradient and nothing accumulates in the ``.grad`` of the
model's parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ualib._checks import check_nonnegative_float, check_positive_int, check_tensor, model_input_errors
from ualib.targets import Target

__all__ = [
    "Target",
    "check_target",
    "check_input",
    "check_batch_size",
    "check_nonnegative_float",
    "call_target",
    "input_gradient",
    "accumulate_gradients",
    "evaluate",
    "chunks",
    "forward_hooks",
]


#: point builder: ``(repetition index [n], input index [n]) -> points [n, ...]``
PointFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# -- validation -----------------------------------------------------------------------------------
def check_target(target: object) -> Target:
    """Raise a ``TypeError`` unless ``target`` is callable."""
    if not callable(target):
        raise TypeError(
            "target must be a callable x [B, ...] -> [B] (for example ualib.targets.class_logit(model, c) "
            f"or lambda x: model(x)[:, c]), got {type(target).__name__}"
        )
    return target  # type: ignore[return-value]


def check_input(x: object, name: str = "x", *, ndim: tuple[int, ...] = (2, 4)) -> torch.Tensor:
    """Check an input batch: a finite floating tensor ``[B, C, H, W]`` (images) or ``[B, F]`` (tables).

    ``ndim`` narrows the allowed ranks (``(4,)`` for methods that need images).
    """
    if isinstance(x, torch.Tensor) and x.ndim not in ndim:
        want = " or ".join({2: "[B, F]", 4: "[B, C, H, W]"}.get(d, f"{d}-d") for d in ndim)
        raise ValueError(f"{name} must be a batch shaped {want}, got shape {tuple(x.shape)}")
    x = check_tensor(x, name, ndim=ndim)
    if x.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one input, got shape {tuple(x.shape)}")
    return x


def check_batch_size(batch_size: object) -> int | None:
    """``None`` (everything at once) or a positive int."""
    if batch_size is None:
        return None
    return check_positive_int(batch_size, "batch_size")


def call_target(target: Target, xs: torch.Tensor, *, need_grad: bool = True) -> torch.Tensor:
    """Evaluate ``target(xs)`` and check that it returned one differentiable scalar per row, ``[n]``."""
    with model_input_errors("x", xs, "the target"):
        out = target(xs)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"target must return a torch.Tensor of shape [B], got {type(out).__name__}")
    if out.shape != (xs.shape[0],):
        hint = ""
        if out.ndim == 2 and out.shape[0] == xs.shape[0]:
            hint = (
                " It looks like a [B, K] output (logits of a classifier): select one scalar per input, "
                "e.g. ualib.targets.class_logit(model, c) or lambda x: model(x)[:, c]."
            )
        raise ValueError(
            f"target must return one scalar per input (shape [n] for a batch of n inputs); called on "
            f"{xs.shape[0]} inputs it returned shape {tuple(out.shape)}.{hint}"
        )
    if not out.is_floating_point():
        raise TypeError(f"target must return a floating-point tensor, got {out.dtype}")
    if need_grad and not out.requires_grad:
        raise ValueError(
            "target's output does not depend differentiably on x (it has no gradient graph); "
            "was it computed under torch.no_grad(), detached, or converted to NumPy?"
        )
    return out


# -- gradients ------------------------------------------------------------------------------------
def input_gradient(target: Target, points: torch.Tensor) -> torch.Tensor:
    """``d target(points).sum() / d points``: the gradient of every row's target at that row, ``[n, ...]``.

    The points are detached first, so neither they nor the caller's tensors get a ``.grad`` and the
    model's parameter gradients are not touched.
    """
    xs = points.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = call_target(target, xs)
        (grad,) = torch.autograd.grad(out.sum(), xs, allow_unused=True)
    if grad is None:
        raise ValueError("target's output does not depend on x: there is no gradient to attribute")
    return grad.detach()


def chunks(n: int, batch_size: int | None) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` ranges covering ``range(n)`` in pieces of at most ``batch_size``."""
    step = n if batch_size is None else batch_size
    for start in range(0, n, step):
        yield start, min(start + step, n)


def accumulate_gradients(
    target: Target,
    x: torch.Tensor,
    point_fn: PointFn,
    repetitions: int,
    batch_size: int | None,
    *,
    gradient_fn: Callable[[Target, torch.Tensor], torch.Tensor] = input_gradient,
) -> torch.Tensor:
    """Sum over ``r`` of the input gradient of ``target`` at ``point_fn(r, b)``, for every input ``b``.

    The ``R x B`` points are enumerated repetition-major (flat index ``r * B + b``) and evaluated
    ``batch_size`` at a time (all at once for ``None``); each chunk's points are built on demand, so
    at most ``batch_size`` points are held in memory. Returns ``[B, ...]`` shaped like ``x``.
    """
    b_total = x.shape[0]
    n = repetitions * b_total
    total = torch.zeros_like(x)
    for start, stop in chunks(n, batch_size):
        flat = torch.arange(start, stop, device=x.device)
        rep, b = flat // b_total, flat % b_total
        total.index_add_(0, b, gradient_fn(target, point_fn(rep, b)))
    return total


def evaluate(target: Target, xs: torch.Tensor, batch_size: int | None) -> torch.Tensor:
    """``target(xs)`` without gradients, in chunks of ``batch_size`` rows: ``[n]``."""
    with torch.no_grad():
        return torch.cat([call_target(target, xs[a:b], need_grad=False) for a, b in chunks(xs.shape[0], batch_size)])


# -- hooks ----------------------------------------------------------------------------------------
@contextmanager
def forward_hooks(modules: Iterable[nn.Module], hook: Callable) -> Iterator[list[RemovableHandle]]:
    """Register ``hook`` as a forward hook on every module; remove them all on exit, also on error."""
    handles: list[RemovableHandle] = []
    try:
        for module in modules:
            handles.append(module.register_forward_hook(hook))
        yield handles
    finally:
        for h in handles:
            h.remove()
