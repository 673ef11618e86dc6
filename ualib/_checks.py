"""Precise input validation shared by every public function.

Each helper raises a ``ValueError`` or ``TypeError`` whose message names the argument, what was
expected and what was received, so that a user sees at once what to change.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

__all__ = [
    "check_tensor",
    "check_probs",
    "check_alpha",
    "check_choice",
    "check_positive_int",
    "check_nonnegative_float",
    "check_class_index",
    "model_dtype",
    "check_model_dtype",
    "model_input_errors",
]


def check_tensor(
    x: object,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    floating: bool = True,
    integer: bool = False,
    finite: bool = True,
    nonempty: bool = False,
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
    integer, nonempty: require an integer dtype (labels, indices); reject a zero-length axis (an empty batch).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(x.shape)}")
    if integer:
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"{name} must have an integer dtype (labels / indices), got {x.dtype}")
    elif floating and not x.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {x.dtype}")
    if nonempty and x.numel() == 0:
        raise ValueError(f"{name} must hold at least one entry on every axis, got shape {tuple(x.shape)}")
    if finite and x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_probs(
    probs: object, name: str = "probs", *, ndim: int | Sequence[int] = 3, atol: float | None = None
) -> torch.Tensor:
    """Check a tensor of categorical probabilities (last axis sums to one, entries in [0, 1])."""
    p = check_tensor(probs, name, ndim=ndim, nonempty=True, finite=False)
    if p.shape[-1] < 2:
        raise ValueError(f"{name} must have at least 2 classes on its last axis, got shape {tuple(p.shape)}")
    lo, hi = (float(v) for v in torch.aminmax(p.detach()))  # one pass; NaN propagates into both
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if lo < 0 or hi > 1:
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
    a = check_tensor(alpha, name, ndim=2, nonempty=True)
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


def check_nonnegative_float(value: object, name: str, *, positive: bool = False) -> float:
    """A finite real number >= 0 (> 0 with ``positive=True``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a finite number {'>' if positive else '>='} 0, got {value!r}")
    return value


def check_class_index(value: object, name: str, num_classes: int | None = None) -> int | torch.Tensor:
    """A class index: an int or a 1-d integer tensor, each in ``[0, num_classes - 1]`` (``>= 0`` when
    ``num_classes`` is not known yet)."""
    if isinstance(value, bool) or not isinstance(value, (int, torch.Tensor)):
        raise TypeError(f"{name} must be an int or an integer tensor [B], got {type(value).__name__}")
    if isinstance(value, torch.Tensor):
        check_tensor(value, name, ndim=1, integer=True)
        lo, hi = (int(value.min()), int(value.max())) if value.numel() else (0, 0)
    else:
        lo = hi = value
    if num_classes is None:
        if lo < 0:
            raise ValueError(f"{name} must be a class index >= 0, got {lo}")
    elif lo < 0 or hi >= num_classes:
        got = hi if hi >= num_classes else lo
        raise ValueError(f"{name} must lie in [0, {num_classes - 1}] for the model's {num_classes} outputs, got {got}")
    return value


def model_dtype(model: nn.Module | Iterable[torch.Tensor]) -> torch.dtype | None:
    """The dtype of the first floating-point parameter of ``model`` (a module or tensors), or ``None``."""
    tensors = model.parameters() if isinstance(model, nn.Module) else model
    for t in tensors:
        if t.is_floating_point():
            return t.dtype
    return None


def check_model_dtype(x: torch.Tensor, name: str, model: nn.Module | Iterable[torch.Tensor]) -> torch.Tensor:
    """Raise a ``TypeError`` unless the floating tensor ``x`` has the dtype of ``model``'s parameters."""
    want = model_dtype(model)
    if want is not None and x.dtype != want:
        raise TypeError(
            f"{name}: expected a float tensor matching the model's dtype {want}, got {x.dtype} of shape "
            f"{tuple(x.shape)}; cast it with {name}.to({want})"
        )
    return x


#: torch's messages for an input the model cannot take (wrong size, channels, rank, dtype or device)
_INPUT_ERRORS = re.compile(
    "|".join(
        (
            r"mat1 and mat2",
            r"shapes cannot be multiplied",
            r"must have the same dtype",
            r"expected scalar type",
            r"Input type .* should be the same",
            r"Expected size for first two dimensions",
            r"expected input\[.*\] to have \d+ channels",
            r"Expected \d+D .*input",
            r"Expected .*-dimensional input",
            r"is invalid for input of size",
            r"size of tensor a .* must match the size of tensor b",
            r"Calculated padded input size",
            r"Expected all tensors to be on the same device",
            r"Expected input batch_size",
            r"in_features on the last axis",  # ualib.layers.FlipoutLinear
        )
    )
)


class ModelInputError(ValueError):
    """A translated input error (not translated again by an enclosing :func:`model_input_errors`)."""


@contextmanager
def model_input_errors(name: str, x: torch.Tensor, what: str = "the model") -> Iterator[None]:
    """Turn torch's error for an input the model cannot take into a ``ValueError`` naming ``name``.

    Only errors whose message says so (a shape, channel, dtype or device mismatch) are translated;
    anything else propagates unchanged. Costs nothing when no error is raised.
    """
    try:
        yield
    except (RuntimeError, ValueError) as err:
        if isinstance(err, (torch.OutOfMemoryError, ModelInputError)) or not _INPUT_ERRORS.search(str(err)):
            raise
        raise ModelInputError(
            f"{name}: {what} cannot take an input of shape {tuple(x.shape)} and dtype {x.dtype} "
            f"(expected the model's input shape, dtype and device): {err}"
        ) from err
