"""The one registry of attribution methods: one :class:`MethodSpec` per method.

Every other list of methods in the project (:data:`ualib.attribution.METHODS`, the explorer's
:func:`ualib.viz.explorer.default_methods`, :data:`ualib.attribution.explanation_uncertainty.EXPLAINERS`,
the comparison tables of the compendium and the chapter notebooks) is built from :data:`REGISTRY`.

A method explains one of three things (:attr:`MethodSpec.explains`):

* ``"target"``: a differentiable scalar function ``target: x [B, ...] -> [B]`` (:mod:`ualib.targets`);
  the call is ``fn(target, x, **options)``;
* ``"posterior"``: the uncertainty of a posterior directly (UA-Backprop, UAM); ``fn(posterior, x, ...)``;
* ``"class_index"``: a linear function of a model's logits (FullGrad); ``fn(model, x, class_index)``;
* ``"nothing"``: a control (the random map); ``fn(x, seed=...)``.

:func:`uncertainty_attributor` turns any entry into ``x -> A`` explaining one uncertainty kind of
one posterior, so tables and widgets need no method-specific code.

Examples
--------
>>> from ualib.attribution.registry import REGISTRY, names
>>> REGISTRY["ua_backprop"].complete
'value'
>>> names(explains="target")
('gradient', 'input_x_gradient', 'smoothgrad', 'integrated_gradients', 'guided_backprop', 'grad_cam', 'lime')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ualib import uncertainty as U
from ualib._checks import check_choice
from ualib.attribution.covariance import cov_gi, cov_ig
from ualib.attribution.fullgrad import fullgrad
from ualib.attribution.grad_cam import grad_cam
from ualib.attribution.gradient import gradient
from ualib.attribution.guided_backprop import guided_backprop
from ualib.attribution.input_x_gradient import input_x_gradient
from ualib.attribution.integrated_gradients import integrated_gradients
from ualib.attribution.lime import lime
from ualib.attribution.random import random_attribution
from ualib.attribution.smoothgrad import smoothgrad
from ualib.attribution.ua_backprop import ua_backprop
from ualib.posteriors import Posterior
from ualib.targets import kind_target

__all__ = ["MethodSpec", "REGISTRY", "EXPLAINS", "COMPLETENESS", "names", "get", "uncertainty_attributor"]

#: what a method explains (see the module docstring)
EXPLAINS = ("target", "posterior", "class_index", "nothing")
#: what a complete method's map sums to: the explained value ``F(x)``, or ``F(x) - F(baseline)``
COMPLETENESS = ("value", "difference")

_ALL_KINDS = tuple(k.value for k in U.UncertaintyKind)


@dataclass(frozen=True)
class MethodSpec:
    """One attribution method.

    Parameters
    ----------
    name
        The registry key (the function's name).
    fn
        The function (see the module docstring for its call per :attr:`explains`).
    explains
        One of :data:`EXPLAINS`.
    complete
        ``"value"`` if the map sums to the explained value ``F(x)`` exactly, ``"difference"`` if it
        sums to ``F(x) - F(baseline)`` (up to a Riemann-sum error), ``None`` if it promises nothing.
    kinds
        The uncertainty kinds (:class:`ualib.UncertaintyKind` values) it can explain.
    multiplies_by_inputs
        Whether the map is scaled by the input (Captum's ``multiplies_by_inputs``).
    reference
        The paper.
    needs
        Keyword arguments the call cannot do without (e.g. ``layer`` for Grad-CAM).
    batched
        Whether ``fn`` takes ``batch_size`` (points per pass through the target).
    distribution
        Whether :func:`ualib.attribution.explanation_uncertainty.explanation_distribution` offers it
        per posterior sample.
    label
        Display name of the chapters' tables and figures.

    Examples
    --------
    >>> from ualib.attribution.registry import REGISTRY, MethodSpec
    >>> spec = REGISTRY["gradient"]
    >>> isinstance(spec, MethodSpec), spec.explains, spec.needs
    (True, 'target', ())
    """

    name: str
    fn: Callable[..., Any]
    explains: str
    complete: str | None
    kinds: tuple[str, ...]
    multiplies_by_inputs: bool
    reference: str
    needs: tuple[str, ...] = ()
    batched: bool = True
    distribution: bool = False
    label: str = field(default="")

    def __post_init__(self) -> None:
        check_choice(self.explains, "explains", EXPLAINS)
        if self.complete is not None:
            check_choice(self.complete, "complete", COMPLETENESS)


def _entries() -> dict[str, MethodSpec]:
    entries = [
        MethodSpec("gradient", gradient, "target", None, _ALL_KINDS, False, "Simonyan et al. 2014",
                   distribution=True, label="gradient"),
        MethodSpec("input_x_gradient", input_x_gradient, "target", None, _ALL_KINDS, True, "Shrikumar et al. 2016",
                   label="input x gradient"),
        MethodSpec("smoothgrad", smoothgrad, "target", None, _ALL_KINDS, False, "Smilkov et al. 2017",
                   label="SmoothGrad"),
        MethodSpec("integrated_gradients", integrated_gradients, "target", "difference", _ALL_KINDS, True,
                   "Sundararajan et al. 2017", distribution=True, label="IG"),
        MethodSpec("guided_backprop", guided_backprop, "target", None, _ALL_KINDS, False, "Springenberg et al. 2015",
                   needs=("model",), distribution=True, label="guided backprop"),
        MethodSpec("grad_cam", grad_cam, "target", None, _ALL_KINDS, False, "Selvaraju et al. 2017",
                   needs=("layer",), label="Grad-CAM"),
        MethodSpec("lime", lime, "target", None, _ALL_KINDS, False, "Ribeiro et al. 2016", distribution=True,
                   label="LIME"),
        MethodSpec("ua_backprop", ua_backprop, "posterior", "value", U.ENTROPIC_KINDS, False, "Wang et al. 2023 [INF]",
                   batched=False, label="UA-Backprop"),
        MethodSpec("cov_gi", cov_gi, "posterior", None, (U.UncertaintyKind.VARIANCE.value,), True,
                   "Bley et al. 2024", label="CovGI"),
        MethodSpec("cov_ig", cov_ig, "posterior", None, (U.UncertaintyKind.VARIANCE.value,), True,
                   "Bley et al. 2024 [INF]", label="CovIG"),
        MethodSpec("fullgrad", fullgrad, "class_index", "value", (), True, "Srinivas & Fleuret 2019",
                   label="FullGrad"),
        MethodSpec("random", random_attribution, "nothing", None, _ALL_KINDS, False, "control", batched=False,
                   label="random"),
    ]  # fmt: skip
    return {e.name: e for e in entries}


#: every attribution method by name
REGISTRY: dict[str, MethodSpec] = _entries()


def get(name: str) -> MethodSpec:
    """The entry ``name`` of :data:`REGISTRY` (a ``ValueError`` naming the choices otherwise).

    Examples
    --------
    >>> from ualib.attribution.registry import get
    >>> spec = get("integrated_gradients")
    >>> spec.explains, spec.complete
    ('target', 'difference')
    """
    check_choice(name, "method", tuple(REGISTRY))
    return REGISTRY[name]


def names(*, explains: str | None = None, distribution: bool | None = None, kind: str | None = None) -> tuple[str, ...]:
    """Registry names, in registry order, filtered by what they explain, by per-sample support and by kind.

    Examples
    --------
    >>> from ualib.attribution.registry import names
    >>> names(explains="posterior")
    ('ua_backprop', 'cov_gi', 'cov_ig')
    >>> "gradient" in names(kind="epistemic")
    True
    """
    return tuple(
        n
        for n, s in REGISTRY.items()
        if (explains is None or s.explains == explains)
        and (distribution is None or s.distribution == distribution)
        and (kind is None or kind in s.kinds)
    )


def uncertainty_attributor(
    method: str, posterior: Posterior, kind: str = "epistemic", **options: Any
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> A``: the registry method ``method`` explaining uncertainty ``kind`` of ``posterior``.

    A ``"target"`` method explains :func:`ualib.targets.kind_target` ``(posterior, kind)``;
    UA-Backprop is called with ``kind=kind``; the random control with ``x`` only. ``options`` go to
    the method unchanged (``batch_size`` is dropped for a method that does not take it).

    Examples
    --------
    >>> import torch, ualib
    >>> from ualib.attribution.registry import uncertainty_attributor
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))
    >>> post = ualib.MCDropout(net.double(), num_samples=4)
    >>> explain = uncertainty_attributor("gradient", post, "epistemic")
    >>> explain(torch.rand(2, 4, dtype=torch.float64)).shape
    torch.Size([2, 4])
    """
    spec = get(method)
    if not isinstance(posterior, Posterior):
        raise TypeError(f"posterior must be a ualib Posterior, got {type(posterior).__name__}")
    check_choice(kind, "kind", spec.kinds)
    missing = [n for n in spec.needs if n not in options]
    if missing:
        raise ValueError(f"method {method!r} needs the option(s) {missing}")
    if not spec.batched:
        options.pop("batch_size", None)
    if spec.explains == "target":
        target = kind_target(posterior, kind)
        return lambda x: spec.fn(target, x, **options)
    if spec.explains == "posterior":
        return lambda x: spec.fn(posterior, x, kind=kind, **options)
    if spec.explains == "nothing":
        return lambda x: spec.fn(x, **options)
    raise ValueError(f"method {method!r} explains a class index, not an uncertainty")
