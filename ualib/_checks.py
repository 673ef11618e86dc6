"""Precise input validation shared by every public function.

Each helper raises a ``ValueError`` or ``TypeError`` whose message names the argument, what was
expected and what was received, so that a user sees at once what to change.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "check_tensor",
    "check_probs",
    "check_alpha",
    "check_choice",
    "check_positive_int",
]


def check_tensor(
    x: object,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    floating: bool = True,
    finite: bool = True,
) -> torch.Tensor:
    """Return ``x`` if it is a tensor of the expected rank and dtype, else raise.

    Parameters
    ----------
    x
        The value to check.
    name
        The argument's name, used in the error message.
    ndim
        Allowed number(s) of dimensions, or ``None`` for any.
    floating
        Require a floating-point dtype.
    finite
        Reject NaN and infinite entries.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {x.dtype}")
    if finite and x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_probs(
    probs: object, name: str = "probs", *, ndim: int | Sequence[int] = 3, atol: float | None = None
) -> torch.Tensor:
    """Check a tensor of categorical probabilities (last axis sums to one, entries in [0, 1])."""
    p = check_tensor(probs, name, ndim=ndim)
    if p.shape[-1] < 2:
        raise ValueError(f"{name} must have at least 2 classes on its last axis, got shape {tuple(p.shape)}")
    if (p < 0).any() or (p > 1).any():
        raise ValueError(f"{name} must lie in [0, 1]; did you pass logits instead of probabilities?")
    tol = atol if atol is not None else (1e-4 if p.dtype in (torch.float16, torch.bfloat16, torch.float32) else 1e-8)
    err = (p.sum(-1) - 1).abs().max().item() if p.numel() else 0.0
    if err > tol:
        raise ValueError(
            f"{name} must sum to 1 over its last (class) axis; the largest deviation is {err:.3g}. "
            "Did you pass logits instead of probabilities?"
        )
    return p


def check_alpha(alpha: object, name: str = "alpha") -> torch.Tensor:
    """Check Dirichlet concentration parameters ``[B, K]`` (every entry >= 1 for EDL, > 0 in general)."""
    a = check_tensor(alpha, name, ndim=2)
    if a.shape[-1] < 2:
        raise ValueError(f"{name} must have at least 2 classes on its last axis, got shape {tuple(a.shape)}")
    if (a <= 0).any():
        raise ValueError(f"{name} must be strictly positive (Dirichlet concentrations)")
    return a


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of the allowed string options."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value  # type: ignore[return-value]


def check_positive_int(value: object, name: str) -> int:
    """Check that ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value
