"""Everything is a scalar target: a differentiable function ``x [B, ...] -> [B]``.

Class logit, class probability, total / aleatoric / epistemic uncertainty, predictive variance,
vacuity and dissonance are all built here, so every attribution method explains any of them with one
call, and the same functions can be handed to Captum as ``forward_func``.

A target built from a posterior always uses the same posterior samples (``indices``, default all S):
sample ``m`` is one fixed network (see :mod:`ualib.posteriors`), so a path or noise method that calls
the target at many points sees the same S networks at every step.

Examples
--------
A :data:`Target` is any such function; every attribution method takes one:

>>> import torch, ualib
>>> from torch import nn
>>> _ = torch.manual_seed(0)
>>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
>>> target = ualib.uncertainty_target(ualib.MCDropout(net, num_samples=8), "total")
>>> tuple(target(torch.rand(2, 4)).shape)
(2,)
>>> tuple(ualib.gradient(target, torch.rand(2, 4)).shape)
(2, 4)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ualib import uncertainty as U
from ualib._checks import check_choice, check_class_index, check_model_dtype, model_input_errors
from ualib.posteriors import Evidential, Posterior

__all__ = [
    "Target",
    "class_logit",
    "class_probability",
    "uncertainty_target",
    "evidential_target",
    "kind_target",
    "TARGET_KINDS",
]

#: a differentiable scalar function of a batch: ``x [B, ...] -> [B]``
Target = Callable[[torch.Tensor], torch.Tensor]

#: options of :func:`uncertainty_target` (the values of :meth:`ualib.UncertaintyKind.sampled`)
TARGET_KINDS = U.UNCERTAINTY_KINDS


def _largest_class(cls: object) -> int:
    """Check ``cls`` (an int >= 0 or an integer tensor [B] of them) once; return its largest class."""
    check_class_index(cls, "cls")
    return int(cls.max()) if isinstance(cls, torch.Tensor) and cls.numel() else int(cls) if isinstance(cls, int) else 0


def _class_index(cls: int | torch.Tensor, b: int, device: torch.device, hi: int, k: int) -> torch.Tensor:
    check_class_index(hi, "cls", k)
    if isinstance(cls, int):
        return torch.full((b,), cls, dtype=torch.long, device=device)
    if not isinstance(cls, torch.Tensor) or cls.dtype not in (torch.int32, torch.int64):
        raise TypeError("cls must be an int or an integer tensor [B]")
    if cls.shape != (b,):
        raise ValueError(f"cls must have shape [{b}], got {tuple(cls.shape)}")
    return cls.to(device=device, dtype=torch.long)


def class_logit(model: nn.Module | Posterior, cls: int | torch.Tensor, *, sample: int | None = None) -> Target:
    """The logit of class ``cls`` (an int or a per-input tensor ``[B]``).

    For a posterior, the logit of posterior sample ``sample`` (default: the mean logit over all samples).

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> x = torch.rand(3, 4)
    >>> target = ualib.class_logit(net, 2)
    >>> torch.equal(target(x), net(x)[:, 2])
    True
    """
    if not isinstance(model, (nn.Module, Posterior)):
        raise TypeError(f"model must be an nn.Module or a ualib Posterior, got {type(model).__name__}")
    hi = _largest_class(cls)

    def target(x: torch.Tensor) -> torch.Tensor:
        if isinstance(model, Posterior):
            logits = model.logits(x, indices=None if sample is None else [sample]).mean(0)
        else:
            check_model_dtype(x, "x", model)
            with model_input_errors("x", x):
                logits = model(x)
        return logits.gather(1, _class_index(cls, x.shape[0], x.device, hi, logits.shape[1])[:, None])[:, 0]

    return target


def class_probability(posterior: Posterior, cls: int | torch.Tensor, *, indices: Sequence[int] | None = None) -> Target:
    """The predictive (sample-mean) probability of class ``cls``.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    >>> post = ualib.MCDropout(net, num_samples=8)
    >>> x = torch.rand(3, 4)
    >>> p1 = ualib.class_probability(post, 1)(x)  # sample-mean probability of class 1
    >>> torch.allclose(p1, post.probs(x).mean(0)[:, 1])
    True
    """
    if not isinstance(posterior, Posterior):
        raise TypeError(f"posterior must be a ualib Posterior, got {type(posterior).__name__}")
    hi = _largest_class(cls)

    def target(x: torch.Tensor) -> torch.Tensor:
        p = posterior.probs(x, indices=indices).mean(0)
        return p.gather(1, _class_index(cls, x.shape[0], x.device, hi, p.shape[1])[:, None])[:, 0]

    return target


def uncertainty_target(
    posterior: Posterior, kind: str = "epistemic", *, indices: Sequence[int] | None = None
) -> Target:
    """Total, aleatoric or epistemic uncertainty, or the summed predictive variance, as ``x -> [B]``.

    See :func:`ualib.uncertainty.uncertainty` for the definitions (Depeweg et al. 2018).

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    >>> post = ualib.MCDropout(net, num_samples=8)
    >>> x = torch.rand(3, 4)
    >>> u = ualib.uncertainty_target(post, "epistemic")(x)  # x -> [B], differentiable
    >>> tuple(u.shape), torch.allclose(u, ualib.mutual_information(post.probs(x)))
    ((3,), True)
    """
    check_choice(kind, "kind", TARGET_KINDS)
    if not isinstance(posterior, Posterior):
        raise TypeError(f"posterior must be a ualib Posterior, got {type(posterior).__name__}")

    def target(x: torch.Tensor) -> torch.Tensor:
        return U.uncertainty(posterior.probs(x, indices=indices), kind)

    return target


def evidential_target(posterior: Evidential, kind: str = "vacuity") -> Target:
    """Vacuity or dissonance of an evidential model as ``x -> [B]`` (Josang 2016; Zhao et al. 2020).

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> post = ualib.Evidential(net)
    >>> x = torch.rand(3, 4)
    >>> u = ualib.evidential_target(post, "vacuity")(x)
    >>> tuple(u.shape), torch.allclose(u, ualib.vacuity(post.alpha(x)))
    ((3,), True)
    """
    check_choice(kind, "kind", U.EVIDENTIAL_KINDS)
    if not isinstance(posterior, Evidential):
        raise TypeError(f"posterior must be ualib.posteriors.Evidential, got {type(posterior).__name__}")
    fn = U.vacuity if kind == "vacuity" else U.dissonance

    def target(x: torch.Tensor) -> torch.Tensor:
        return fn(posterior.alpha(x))

    return target


def kind_target(posterior: Posterior, kind: str) -> Target:
    """The uncertainty ``kind`` of ``posterior`` as a differentiable target ``x [B, ...] -> [B]``.

    :func:`uncertainty_target` for a kind of :meth:`ualib.UncertaintyKind.sampled` (any posterior),
    :func:`evidential_target` for ``"vacuity"`` / ``"dissonance"`` (an
    :class:`~ualib.posteriors.Evidential` model only).
    """
    if not isinstance(posterior, Posterior):
        raise TypeError(f"posterior must be a ualib Posterior, got {type(posterior).__name__}")
    kinds = U.UNCERTAINTY_KINDS + (U.EVIDENTIAL_KINDS if isinstance(posterior, Evidential) else ())
    check_choice(kind, "kind", kinds)
    if kind in U.EVIDENTIAL_KINDS:
        return evidential_target(posterior, kind)  # type: ignore[arg-type]
    return uncertainty_target(posterior, kind)
