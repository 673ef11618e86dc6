"""Every public entry point refuses its typical mistakes (issue #14, item 7).

One table: ``(id, a call that makes the mistake, the exception type, a regex the message must
match)``. The regex names the argument and what was expected, so a user reads what to change; a
bare error from deep inside torch or a silent result fails the test. The ids read
``<entry point>-<argument>-<mistake>``.
"""

from __future__ import annotations

import collections
import functools
import re
from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch
from torch import nn

import ualib
from ualib.models import LeNet

# -- small models and inputs (built once, on first use) -------------------------------------------
F_IN, K = 6, 3


@functools.cache
def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(F_IN, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, K)).eval()


@functools.cache
def cnn() -> nn.Module:
    torch.manual_seed(0)
    return LeNet(1, 8, K, widths=(2, 4, 8)).eval()


@functools.cache
def mcd() -> ualib.MCDropout:
    return ualib.MCDropout(mlp(), num_samples=3)


@functools.cache
def mcd_cnn() -> ualib.MCDropout:
    return ualib.MCDropout(cnn(), num_samples=3)


@functools.cache
def ensemble() -> ualib.DeepEnsemble:
    return ualib.DeepEnsemble(lambda: nn.Sequential(nn.Linear(F_IN, 8), nn.ReLU(), nn.Linear(8, K)), num_members=2)


@functools.cache
def edl() -> ualib.Evidential:
    return ualib.Evidential(cnn())


def xt(b: int = 2, f: int = F_IN) -> torch.Tensor:
    """A table batch ``[B, F]``."""
    return torch.randn(b, f, generator=torch.Generator().manual_seed(1))


def xi(b: int = 2, c: int = 1, s: int = 8) -> torch.Tensor:
    """An image batch ``[B, C, H, W]``."""
    return torch.rand(b, c, s, s, generator=torch.Generator().manual_seed(1))


def nan(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[0] = float("nan")
    return x


def probs(s: int = 3, b: int = 2, k: int = K) -> torch.Tensor:
    return torch.rand(s, b, k, generator=torch.Generator().manual_seed(2)).softmax(-1)


def alpha(b: int = 2, k: int = K) -> torch.Tensor:
    return 1 + torch.rand(b, k, generator=torch.Generator().manual_seed(3))


def target() -> Callable[[torch.Tensor], torch.Tensor]:
    return ualib.class_logit(mlp(), 0)


def target_cnn() -> Callable[[torch.Tensor], torch.Tensor]:
    return ualib.class_logit(cnn(), 0)


def labels(n: int, k: int = K) -> torch.Tensor:
    return torch.arange(n) % k


# -- the table ------------------------------------------------------------------------------------
class Case(NamedTuple):
    id: str
    call: Callable[[], object]
    exc: type[Exception] | tuple[type[Exception], ...]
    match: str
    marks: tuple = ()


V, T = ValueError, TypeError
DTYPE = r"x.*float32.*float64"  # a float64 input to a float32 model: names both dtypes
NAN = r"x.*NaN"
EMPTY = r"x.*at least one"


def _posterior_cases() -> list[Case]:
    cases = [
        # constructors
        Case(
            "MCDropout-num_samples-zero",
            lambda: ualib.MCDropout(mlp(), num_samples=0),
            V,
            r"num_samples.*positive integer.*0",
        ),
        Case("MCDropout-model-without-dropout", lambda: ualib.MCDropout(nn.Linear(F_IN, K)), V, r"model.*dropout"),
        Case("MCDropout-model-not-a-module", lambda: ualib.MCDropout("lenet"), T, r"model must be an nn.Module.*str"),
        Case("MCDropout-task-unknown", lambda: ualib.MCDropout(mlp(), task="regresion"), V, r"task must be one of"),
        Case("MCDropout-seed-float", lambda: ualib.MCDropout(mlp(), seed=0.5), T, r"seed must be an int"),
        Case(
            "DropConnect-p-out-of-range", lambda: ualib.DropConnect(mlp(), p=1.5), V, r"p must be in \(0, 1\), got 1.5"
        ),
        Case(
            "DropConnect-layers-unknown",
            lambda: ualib.DropConnect(mlp(), layers=["fc9"]),
            V,
            r"layers \['fc9'\].*weight",
        ),
        Case(
            "DropConnect-model-without-layers",
            lambda: ualib.DropConnect(nn.ReLU()),
            V,
            r"model.*nn.Linear or nn.Conv2d",
        ),
        Case("DeepEnsemble-members-one", lambda: ualib.DeepEnsemble([mlp()]), V, r"members.*at least 2.*got 1"),
        Case(
            "DeepEnsemble-num_members-zero",
            lambda: ualib.DeepEnsemble(mlp, num_members=0),
            V,
            r"num_members.*at least 2.*got 0",
        ),
        Case(
            "DeepEnsemble-members-incompatible",
            lambda: ualib.DeepEnsemble([nn.Linear(F_IN, K), nn.Linear(F_IN + 1, K)]),
            V,
            r"members.*same architecture.*weight",
        ),
        Case("DeepEnsemble-members-not-modules", lambda: ualib.DeepEnsemble([mlp(), "mlp"]), T, r"member.*nn.Module"),
        Case("BayesByBackprop-model-without-flipout", lambda: ualib.BayesByBackprop(mlp()), V, r"model.*Flipout"),
        Case(
            "BayesByBackprop-kl_weight-negative",
            lambda: ualib.BayesByBackprop(LeNet(1, 8, K, flipout=True), kl_weight=-1.0),
            V,
            r"kl_weight must be >= 0",
        ),
        Case(
            "Evidential-evidence-unknown",
            lambda: ualib.Evidential(cnn(), evidence="softmax"),
            V,
            r"evidence must be one of",
        ),
        Case("Evidential-loss-unknown", lambda: ualib.Evidential(cnn(), loss="ce"), V, r"loss must be one of"),
        Case(
            "Evidential-anneal_epochs-negative",
            lambda: ualib.Evidential(cnn(), anneal_epochs=-1),
            V,
            r"anneal_epochs must be a positive integer, got -1",
        ),
        Case("Evidential-model-not-a-module", lambda: ualib.Evidential(mcd()), T, r"model must be an nn.Module"),
        # logits / probs / alpha / predict with a wrong input
        Case("MCDropout.logits-x-float64", lambda: mcd().logits(xt().double()), (V, T), DTYPE),
        Case(
            "MCDropout.logits-x-int",
            lambda: mcd().logits(torch.ones(2, F_IN, dtype=torch.long)),
            T,
            r"x.*floating-point.*int64",
        ),
        Case("MCDropout.logits-x-wrong-features", lambda: mcd().logits(xt(f=F_IN + 1)), V, r"x.*shape \(2, 7\)"),
        Case(
            "MCDropout.logits-x-wrong-ndim",
            lambda: mcd().logits(torch.randn(F_IN)),
            V,
            r"x must have .* dimensions, got shape \(6,\)",
        ),
        Case("MCDropout.logits-x-empty", lambda: mcd().logits(xt(b=0)), V, EMPTY),
        Case("MCDropout.logits-x-nan", lambda: mcd().logits(nan(xt())), V, NAN),
        Case("MCDropout.logits-indices-negative", lambda: mcd().logits(xt(), indices=[-1]), V, r"indices.*>= 0"),
        Case(
            "MCDropout.logits-chunk_size-zero",
            lambda: mcd().logits(xt(), chunk_size=0),
            V,
            r"chunk_size must be a positive integer",
        ),
        Case("MCDropout.probs-x-list", lambda: mcd().probs([[0.0] * F_IN]), T, r"x must be a torch.Tensor, got list"),
        Case("MCDropout.predict-x-float64", lambda: mcd().predict(xt().double()), (V, T), DTYPE),
        Case(
            "DeepEnsemble.logits-indices-out-of-range",
            lambda: ensemble().logits(xt(), indices=[2]),
            V,
            r"indices.*\[0, 1\].*2",
        ),
        Case("DeepEnsemble.logits-x-float64", lambda: ensemble().logits(xt().double()), (V, T), DTYPE),
        Case(
            "DeepEnsemble.logits-x-wrong-features", lambda: ensemble().logits(xt(f=F_IN + 1)), V, r"x.*shape \(2, 7\)"
        ),
        Case("Evidential.alpha-x-float64", lambda: edl().alpha(xi().double()), (V, T), DTYPE),
        Case("Evidential.alpha-x-nan", lambda: edl().alpha(nan(xi())), V, NAN),
        Case("Evidential.alpha-x-wrong-size", lambda: edl().alpha(xi(s=12)), V, r"x.*shape \(2, 1, 12, 12\)"),
        Case(
            "Evidential.logits-indices-out-of-range",
            lambda: edl().logits(xi(), indices=[1]),
            V,
            r"indices.*\[0, 0\]|one sample \(index 0\)",
        ),
        Case("Evidential.predict_alpha-x-float64", lambda: edl().predict_alpha(xi().double()), (V, T), DTYPE),
    ]
    return cases


def _more_cases() -> list[Case]:
    bbb = functools.cache(lambda: ualib.BayesByBackprop(LeNet(1, 8, K, widths=(2, 4, 8), flipout=True), num_samples=2))
    return [
        Case(
            "BayesByBackprop-model-not-a-module",
            lambda: ualib.BayesByBackprop(None),
            T,
            r"model must be an nn.Module, got NoneType",
        ),
        Case("BayesByBackprop.logits-x-float64", lambda: bbb().logits(xi().double()), (V, T), DTYPE),
        Case("BayesByBackprop.logits-x-wrong-size", lambda: bbb().logits(xi(s=12)), V, r"x.*shape \(2, 1, 12, 12\)"),
        Case(
            "class_probability-cls-float",
            lambda: ualib.class_probability(mcd(), 0.5),
            T,
            r"cls must be an int or an integer tensor",
        ),
        Case("class_probability-x-float64", lambda: ualib.class_probability(mcd(), 0)(xt().double()), (V, T), DTYPE),
        Case("evidential_target-x-float64", lambda: ualib.evidential_target(edl())(xi().double()), (V, T), DTYPE),
        Case(
            "DropConnect.logits-x-float64",
            lambda: ualib.DropConnect(mlp(), num_samples=2).logits(xt().double()),
            (V, T),
            DTYPE,
        ),
        Case("guided_backprop-x-nan", lambda: ualib.guided_backprop(target(), nan(xt()), model=mlp()), V, NAN),
        Case("decompose-probs-nan", lambda: ualib.decompose(nan(probs()), "epistemic"), V, r"probs contains NaN"),
        Case(
            "MCDropout.predict-batch_size-zero",
            lambda: mcd().predict(xt(), batch_size=0),
            V,
            r"batch_size must be a positive integer",
        ),
        Case(
            "Evidential.predict_alpha-batch_size-zero",
            lambda: edl().predict_alpha(xi(), batch_size=0),
            V,
            r"batch_size must be a positive integer",
        ),
    ]


def _training_cases() -> list[Case]:
    cfg = dict(dataset="toy", model="mlp", model_kwargs={"in_channels": F_IN, "num_classes": K})
    good = lambda **kw: ualib.TrainConfig(**{**cfg, **kw})  # noqa: E731
    train = lambda x, y, **kw: ualib.train(good(epochs=1), x, y, cache=False, progress=False, **kw)  # noqa: E731
    return [
        Case(
            "TrainConfig-posterior-unknown",
            lambda: good(posterior="mc-dropout"),
            V,
            r"posterior must be one of.*'mc-dropout'",
        ),
        Case("TrainConfig-model-unknown", lambda: good(model="lenet5"), V, r"model must be one of.*'lenet5'"),
        Case("TrainConfig-epochs-zero", lambda: good(epochs=0), V, r"epochs must be a positive integer"),
        Case("TrainConfig-batch_size-zero", lambda: good(batch_size=0), V, r"batch_size must be a positive integer"),
        Case("TrainConfig-lr-negative", lambda: good(lr=-1e-3), V, r"lr must be a finite number > 0, got -0.001"),
        Case("TrainConfig-lr-nan", lambda: good(lr=float("nan")), V, r"lr must be .*> 0.*nan"),
        Case("TrainConfig-weight_decay-negative", lambda: good(weight_decay=-0.1), V, r"weight_decay must be .*>= 0"),
        Case("TrainConfig-seed-float", lambda: good(seed=0.5), T, r"seed must be an int"),
        Case(
            "train-config-dict",
            lambda: ualib.train(cfg, xt(), labels(2), cache=False),
            T,
            r"config must be a TrainConfig, got dict",
        ),
        Case(
            "train-y-wrong-length",
            lambda: train(xt(4), labels(3)),
            V,
            r"x and y must have the same length, got 4 and 3",
        ),
        Case(
            "train-y-float", lambda: train(xt(4), labels(4).float()), T, r"y must have .*integer.*float32|y.*floating"
        ),
        Case("train-x-nan", lambda: train(nan(xt(4)), labels(4)), V, NAN),
        Case("train-x-empty", lambda: train(xt(0), labels(0)), V, EMPTY),
        Case("train-x-wrong-features", lambda: train(xt(4, F_IN + 2), labels(4)), V, r"x.*shape \(4, 8\)"),
        Case("train-y-out-of-range", lambda: train(xt(4), torch.tensor([0, 1, 2, 3])), V, r"y.*\[0, 2\].*3"),
        Case("train-x-float64", lambda: train(xt(4).double(), labels(4)), (V, T), DTYPE),
    ]


def _target_cases() -> list[Case]:
    return [
        Case(
            "uncertainty_target-kind-unknown",
            lambda: ualib.uncertainty_target(mcd(), "entropy"),
            V,
            r"kind must be one of.*'entropy'",
        ),
        Case(
            "uncertainty_target-posterior-module",
            lambda: ualib.uncertainty_target(mlp()),
            T,
            r"posterior must be a ualib Posterior, got Sequential",
        ),
        Case("uncertainty_target-x-float64", lambda: ualib.uncertainty_target(mcd())(xt().double()), (V, T), DTYPE),
        Case(
            "evidential_target-posterior-mc-dropout",
            lambda: ualib.evidential_target(mcd()),
            T,
            r"posterior must be .*Evidential",
        ),
        Case(
            "evidential_target-kind-unknown",
            lambda: ualib.evidential_target(edl(), "epistemic"),
            V,
            r"kind must be one of",
        ),
        Case("class_logit-cls-out-of-range", lambda: ualib.class_logit(mlp(), K)(xt()), V, r"cls.*\[0, 2\].*3"),
        Case("class_logit-cls-negative", lambda: ualib.class_logit(mlp(), -1), V, r"cls.*>= 0.*-1"),
        Case(
            "class_logit-cls-float",
            lambda: ualib.class_logit(mlp(), 1.0),
            T,
            r"cls must be an int or an integer tensor",
        ),
        Case(
            "class_logit-cls-wrong-length",
            lambda: ualib.class_logit(mlp(), torch.tensor([0, 1, 2]))(xt()),
            V,
            r"cls must have shape \[2\]",
        ),
        Case("class_logit-x-float64", lambda: ualib.class_logit(mlp(), 0)(xt().double()), (V, T), DTYPE),
        Case(
            "class_logit-x-wrong-features", lambda: ualib.class_logit(mlp(), 0)(xt(f=F_IN + 1)), V, r"x.*shape \(2, 7\)"
        ),
        Case(
            "class_logit-model-not-callable",
            lambda: ualib.class_logit("mlp", 0),
            T,
            r"model must be an nn.Module or a ualib Posterior",
        ),
        Case(
            "class_probability-cls-out-of-range",
            lambda: ualib.class_probability(mcd(), 5)(xt()),
            V,
            r"cls.*\[0, 2\].*5",
        ),
        Case(
            "class_probability-posterior-module",
            lambda: ualib.class_probability(mlp(), 0),
            T,
            r"posterior must be a ualib Posterior",
        ),
    ]


def _uncertainty_cases() -> list[Case]:
    cases = []
    for name in ("total_entropy", "expected_entropy", "mutual_information", "predictive_variance"):
        fn = lambda *a, _n=name, **kw: getattr(ualib, _n)(*a, **kw)  # noqa: E731
        cases += [
            Case(
                f"{name}-probs-wrong-ndim",
                lambda fn=fn: fn(probs()[0]),
                V,
                r"probs must have 3 dimensions.*got shape \(2, 3\)",
            ),
            Case(f"{name}-probs-negative", lambda fn=fn: fn(probs() - 0.5), V, r"probs must lie in \[0, 1\]"),
            Case(f"{name}-probs-logits", lambda fn=fn: fn(probs() * 2), V, r"probs must sum to 1"),
            Case(f"{name}-probs-nan", lambda fn=fn: fn(nan(probs())), V, r"probs contains NaN"),
            Case(f"{name}-probs-empty", lambda fn=fn: fn(probs(b=0)), V, r"probs.*at least one.*\(3, 0, 3\)"),
            Case(
                f"{name}-probs-int",
                lambda fn=fn: fn(torch.ones(2, 2, 2, dtype=torch.long)),
                T,
                r"probs must have a floating-point dtype",
            ),
        ]
    cases += [
        Case(
            "predictive_variance-reduce-unknown",
            lambda: ualib.predictive_variance(probs(), reduce="mean"),
            V,
            r"reduce must be one of",
        ),
        Case(
            "decompose-kind-unknown", lambda: ualib.decompose(probs(), "vacuity"), V, r"kind must be one of.*'vacuity'"
        ),
        Case(
            "decompose-probs-wrong-ndim",
            lambda: ualib.decompose(probs()[0], "total"),
            V,
            r"probs must have 3 dimensions",
        ),
        Case(
            "decompose-probs-one-class",
            lambda: ualib.decompose(torch.ones(3, 2, 1), "total"),
            V,
            r"probs must have at least 2 classes",
        ),
        Case(
            "decompose-probs-list",
            lambda: ualib.decompose([[[0.5, 0.5]]], "total"),
            T,
            r"probs must be a torch.Tensor, got list",
        ),
        Case("UncertaintyKind-value-unknown", lambda: ualib.UncertaintyKind("entropy"), V, r"entropy"),
    ]
    for name in ("vacuity", "dissonance"):
        fn = lambda a, _n=name: getattr(ualib, _n)(a)  # noqa: E731
        cases += [
            Case(
                f"{name}-alpha-wrong-ndim",
                lambda fn=fn: fn(alpha()[None]),
                V,
                r"alpha must have 2 dimensions, got shape \(1, 2, 3\)",
            ),
            Case(f"{name}-alpha-nonpositive", lambda fn=fn: fn(alpha() - 5), V, r"alpha must be strictly positive"),
            Case(f"{name}-alpha-nan", lambda fn=fn: fn(nan(alpha())), V, r"alpha contains NaN"),
            Case(f"{name}-alpha-empty", lambda fn=fn: fn(alpha(b=0)), V, r"alpha.*at least one.*\(0, 3\)"),
            Case(
                f"{name}-alpha-one-class", lambda fn=fn: fn(torch.ones(2, 1)), V, r"alpha must have at least 2 classes"
            ),
        ]
    return cases


def _attribution_cases() -> list[Case]:
    cases = [
        # ua_backprop
        Case(
            "ua_backprop-posterior-module",
            lambda: ualib.ua_backprop(mlp(), xt()),
            T,
            r"posterior must be a ualib Posterior",
        ),
        Case(
            "ua_backprop-x-wrong-ndim",
            lambda: ualib.ua_backprop(mcd(), xt()[0]),
            V,
            r"x must have .* dimensions, got shape \(6,\)",
        ),
        Case("ua_backprop-x-float64", lambda: ualib.ua_backprop(mcd(), xt().double()), (V, T), DTYPE),
        Case(
            "ua_backprop-x-int",
            lambda: ualib.ua_backprop(mcd(), torch.ones(2, F_IN, dtype=torch.long)),
            T,
            r"x must have a floating-point dtype",
        ),
        Case("ua_backprop-x-empty", lambda: ualib.ua_backprop(mcd(), xt(0)), V, EMPTY),
        Case("ua_backprop-x-nan", lambda: ualib.ua_backprop(mcd(), nan(xt())), V, NAN),
        Case("ua_backprop-x-wrong-features", lambda: ualib.ua_backprop(mcd(), xt(f=F_IN + 1)), V, r"x.*shape \(2, 7\)"),
        Case(
            "ua_backprop-kind-unknown",
            lambda: ualib.ua_backprop(mcd(), xt(), kind="vacuity"),
            V,
            r"kind must be one of.*'vacuity'",
        ),
        Case(
            "ua_backprop-variant-unknown",
            lambda: ualib.ua_backprop(mcd(), xt(), variant="slow"),
            V,
            r"variant must be one of",
        ),
        Case(
            "ua_backprop-indices-out-of-range",
            lambda: ualib.ua_backprop(ensemble(), xt(), indices=[0, 2]),
            V,
            r"indices.*\[0, 1\].*2",
        ),
        Case(
            "ua_backprop-indices-empty",
            lambda: ualib.ua_backprop(mcd(), xt(), indices=[]),
            V,
            r"indices must name at least one",
        ),
        Case(
            "ua_backprop-batch_size-zero",
            lambda: ualib.ua_backprop(mcd(), xt(), batch_size=0),
            V,
            r"batch_size must be a positive integer",
        ),
        # uam
        Case("uam-posterior-mc-dropout", lambda: ualib.uam(mcd_cnn(), xi()), T, r"posterior must be .*Evidential"),
        Case("uam-x-wrong-ndim", lambda: ualib.uam(edl(), xi()[0]), V, r"x must have 4 dimensions"),
        Case("uam-x-float64", lambda: ualib.uam(edl(), xi().double()), (V, T), DTYPE),
        Case("uam-x-empty", lambda: ualib.uam(edl(), xi(0)), V, EMPTY),
        Case("uam-x-nan", lambda: ualib.uam(edl(), nan(xi())), V, NAN),
        Case("uam-vam-unknown", lambda: ualib.uam(edl(), xi(), vam="both"), V, r"vam must be one of"),
        Case(
            "uam-fullgrad-other-model",
            lambda: ualib.uam(edl(), xi(), fullgrad=ualib.FullGrad(LeNet(1, 8, K))),
            V,
            r"fullgrad must be built on posterior.module",
        ),
        Case(
            "uam-batch_size-zero",
            lambda: ualib.uam(edl(), xi(), batch_size=0),
            V,
            r"batch_size must be a positive integer",
        ),
        # FullGrad / fullgrad
        Case(
            "FullGrad-model-posterior",
            lambda: ualib.FullGrad(mcd()),
            T,
            r"model must be an nn.Module \(for a ualib posterior, pass posterior.module\)",
        ),
        Case(
            "FullGrad-model-unsupported",
            lambda: ualib.FullGrad(nn.Sequential(nn.Linear(F_IN, 4), nn.Tanh(), nn.Linear(4, K))),
            V,
            r"FullGrad cannot decompose this model.*Tanh",
        ),
        Case(
            "FullGrad-rel_tol-zero",
            lambda: ualib.FullGrad(cnn(), rel_tol=0),
            V,
            r"rel_tol must be a number in \(0, 1\)",
        ),
        Case(
            "fullgrad-class_index-out-of-range",
            lambda: ualib.fullgrad(cnn(), xi(), K),
            V,
            r"class_index must lie in \[0, 2\].*got 3",
        ),
        Case(
            "fullgrad-class_index-negative",
            lambda: ualib.fullgrad(cnn(), xi(), -1),
            V,
            r"class_index must lie in \[0, 2\]",
        ),
        Case(
            "fullgrad-class_index-tensor-out-of-range",
            lambda: ualib.fullgrad(cnn(), xi(), torch.tensor([0, 3])),
            V,
            r"class ind.*\[0, 2\]",
        ),
        Case("fullgrad-class_index-str", lambda: ualib.fullgrad(cnn(), xi(), "cat"), T, r"class index \(int\)"),
        Case(
            "fullgrad-x-wrong-ndim",
            lambda: ualib.fullgrad(cnn(), xi()[0], 0),
            V,
            r"x must be a batch shaped \[B, C, H, W\]",
        ),
        Case("fullgrad-x-float64", lambda: ualib.fullgrad(cnn(), xi().double(), 0), (V, T), DTYPE),
        Case("fullgrad-x-empty", lambda: ualib.fullgrad(cnn(), xi(0), 0), V, EMPTY),
        Case("fullgrad-x-nan", lambda: ualib.fullgrad(cnn(), nan(xi()), 0), V, NAN),
        Case("fullgrad-x-wrong-channels", lambda: ualib.fullgrad(cnn(), xi(c=3), 0), V, r"x.*shape \(2, 3, 8, 8\)"),
        Case(
            "FullGrad.saliency-batch_size-zero",
            lambda: ualib.FullGrad(cnn()).saliency(xi(), 0, batch_size=0),
            V,
            r"batch_size must be a positive integer",
        ),
        # integrated_gradients
        Case(
            "integrated_gradients-steps-zero",
            lambda: ualib.integrated_gradients(target(), xt(), steps=0),
            V,
            r"steps must be a positive integer",
        ),
        Case(
            "integrated_gradients-baseline-unknown",
            lambda: ualib.integrated_gradients(target(), xt(), baseline="white"),
            V,
            r"baseline must be one of.*'white'",
        ),
        Case(
            "integrated_gradients-baseline-wrong-shape",
            lambda: ualib.integrated_gradients(target(), xt(), baseline=torch.zeros(F_IN + 1)),
            V,
            r"baseline .*broadcastable to x's shape",
        ),
        Case(
            "integrated_gradients-blur_sigma-negative",
            lambda: ualib.integrated_gradients(target_cnn(), xi(), baseline="blur", blur_sigma=-1.0),
            V,
            r"blur_sigma must be a finite number > 0",
        ),
        Case("integrated_gradients-x-nan", lambda: ualib.integrated_gradients(target(), nan(xt())), V, NAN),
        Case(
            "integrated_gradients-x-float64", lambda: ualib.integrated_gradients(target(), xt().double()), (V, T), DTYPE
        ),
        # smoothgrad
        Case(
            "smoothgrad-sigma-negative",
            lambda: ualib.smoothgrad(target(), xt(), sigma=-0.1),
            V,
            r"sigma must be a finite number >= 0",
        ),
        Case(
            "smoothgrad-n_samples-zero",
            lambda: ualib.smoothgrad(target(), xt(), n_samples=0),
            V,
            r"n_samples must be a positive integer",
        ),
        Case(
            "smoothgrad-noise-wrong-shape",
            lambda: ualib.smoothgrad(target(), xt(), noise=torch.zeros(4, F_IN + 1)),
            V,
            r"noise.*\[n, 6\]|noise.*shape",
        ),
        Case("smoothgrad-x-nan", lambda: ualib.smoothgrad(target(), nan(xt())), V, NAN),
        Case("smoothgrad-x-float64", lambda: ualib.smoothgrad(target(), xt().double(), n_samples=2), (V, T), DTYPE),
        # guided_backprop
        Case(
            "guided_backprop-target-module-output",
            lambda: ualib.guided_backprop(mlp(), xt(), model=mlp()),
            V,
            r"target must return one scalar per input.*shape \(2, 3\)",
        ),
        Case(
            "guided_backprop-target-not-callable",
            lambda: ualib.guided_backprop(0, xt(), model=mlp()),
            T,
            r"target must be a callable",
        ),
        Case("guided_backprop-x-empty", lambda: ualib.guided_backprop(target(), xt(0), model=mlp()), V, EMPTY),
        Case(
            "guided_backprop-x-float64",
            lambda: ualib.guided_backprop(target(), xt().double(), model=mlp()),
            (V, T),
            DTYPE,
        ),
        # grad_cam
        Case(
            "grad_cam-layer-not-in-model",
            lambda: ualib.grad_cam(target_cnn(), xi(), layer=nn.Conv2d(1, 2, 3)),
            V,
            r"never ran through `layer`",
        ),
        Case(
            "grad_cam-layer-name",
            lambda: ualib.grad_cam(target_cnn(), xi(), layer="conv1"),
            T,
            r"layer must be an nn.Module, got str",
        ),
        Case(
            "grad_cam-x-table",
            lambda: ualib.grad_cam(target(), xt(), layer=mlp()[0]),
            V,
            r"x must be a batch shaped \[B, C, H, W\]",
        ),
        Case(
            "grad_cam-x-float64",
            lambda: ualib.grad_cam(target_cnn(), xi().double(), layer=cnn().features[0]),
            (V, T),
            DTYPE,
        ),
        # lime
        Case(
            "lime-num_samples-zero",
            lambda: ualib.lime(target_cnn(), xi(), num_samples=0),
            V,
            r"num_samples must be a positive integer",
        ),
        Case(
            "lime-segmentation-unknown",
            lambda: ualib.lime(target_cnn(), xi(), segmentation="slic2"),
            V,
            r"segmentation must be one of.*'slic2'|segmentation.*slic2",
        ),
        Case(
            "lime-kernel_width-zero",
            lambda: ualib.lime(target_cnn(), xi(), kernel_width=0.0),
            V,
            r"kernel_width must be a finite number > 0",
        ),
        Case("lime-x-channels", lambda: ualib.lime(target_cnn(), xi(c=2)), V, r"x must have 1 or 3 channels, got 2"),
        Case("lime-x-table", lambda: ualib.lime(target(), xt()), V, r"x must be a batch shaped \[B, C, H, W\]"),
        Case("lime-x-nan", lambda: ualib.lime(target_cnn(), nan(xi())), V, NAN),
        Case(
            "lime-cell_size-zero",
            lambda: ualib.lime(target_cnn(), xi(), cell_size=0),
            V,
            r"cell_size must be a positive integer",
        ),
        # explanation_distribution
        Case(
            "explanation_distribution-posterior-module",
            lambda: ualib.explanation_distribution(mlp(), xt(), "gradient"),
            T,
            r"posterior must be a ualib Posterior",
        ),
        Case(
            "explanation_distribution-method-unknown",
            lambda: ualib.explanation_distribution(mcd(), xt(), "shap"),
            V,
            r"method must be one of.*'shap'",
        ),
        Case(
            "explanation_distribution-classes-out-of-range",
            lambda: ualib.explanation_distribution(mcd(), xt(), "gradient", classes=torch.tensor([0, K])),
            V,
            r"classes.*\[0, 2\].*3",
        ),
        Case(
            "explanation_distribution-classes-wrong-length",
            lambda: ualib.explanation_distribution(mcd(), xt(), "gradient", classes=torch.tensor([0])),
            V,
            r"classes must have shape \[2\]",
        ),
        Case(
            "explanation_distribution-x-float64",
            lambda: ualib.explanation_distribution(mcd(), xt().double(), "gradient"),
            (V, T),
            DTYPE,
        ),
        Case(
            "explanation_distribution-x-empty",
            lambda: ualib.explanation_distribution(mcd(), xt(0), "gradient"),
            V,
            EMPTY,
        ),
        Case(
            "explanation_distribution-x-nan",
            lambda: ualib.explanation_distribution(mcd(), nan(xt()), "gradient"),
            V,
            NAN,
        ),
        Case(
            "explanation_distribution-ig_steps-zero",
            lambda: ualib.explanation_distribution(mcd(), xt(), "integrated_gradients", ig_steps=0),
            V,
            r"ig_steps must be a positive integer",
        ),
        Case(
            "explanation_distribution-images_per_chunk-zero",
            lambda: ualib.explanation_distribution(mcd(), xt(), "gradient", images_per_chunk=0),
            V,
            r"images_per_chunk must be a positive integer",
        ),
    ]
    for name in ("gradient", "input_x_gradient"):
        fn = lambda *a, _n=name, **kw: getattr(ualib, _n)(*a, **kw)  # noqa: E731
        cases += [
            Case(f"{name}-target-not-callable", lambda fn=fn: fn(mcd(), xt()), T, r"target must be a callable"),
            Case(
                f"{name}-x-wrong-ndim",
                lambda fn=fn: fn(target(), xt()[None]),
                V,
                r"x must be a batch shaped \[B, F\] or \[B, C, H, W\], got shape \(1, 2, 6\)",
            ),
            Case(f"{name}-x-float64", lambda fn=fn: fn(target(), xt().double()), (V, T), DTYPE),
            Case(
                f"{name}-x-int",
                lambda fn=fn: fn(target(), torch.ones(2, F_IN, dtype=torch.long)),
                T,
                r"x must have a floating-point dtype",
            ),
            Case(f"{name}-x-empty", lambda fn=fn: fn(target(), xt(0)), V, EMPTY),
            Case(f"{name}-x-nan", lambda fn=fn: fn(target(), nan(xt())), V, NAN),
            Case(f"{name}-x-wrong-features", lambda fn=fn: fn(target(), xt(f=F_IN + 1)), V, r"x.*shape \(2, 7\)"),
            Case(
                f"{name}-batch_size-zero",
                lambda fn=fn: fn(target(), xt(), batch_size=0),
                V,
                r"batch_size must be a positive integer",
            ),
        ]
    cases += [
        Case(
            "gradient-target-lambda-x-wrong-features",
            lambda: ualib.gradient(lambda z: mlp()(z)[:, 0], xt(f=F_IN + 1)),
            V,
            r"x: the target cannot take an input of shape \(2, 7\)",
        ),
        Case(
            "grad_cam-target-lambda-x-wrong-channels",
            lambda: ualib.grad_cam(lambda z: cnn()(z)[:, 0], xi(c=3), layer=cnn().features[0]),
            V,
            r"x: the target cannot take an input of shape \(2, 3, 8, 8\)",
        ),
    ]
    return cases


def _gradient_metrics_cases() -> list[Case]:
    gm = lambda *a, **kw: ualib.gradient_metrics(*a, **kw)  # noqa: E731
    return [
        Case("gradient_metrics-model-posterior", lambda: gm(mcd(), xt()), T, r"model must be an nn.Module"),
        Case(
            "gradient_metrics-x-wrong-ndim",
            lambda: gm(mlp(), xt()[0]),
            V,
            r"x must have .* dimensions, got shape \(6,\)",
        ),
        Case("gradient_metrics-x-float64", lambda: gm(mlp(), xt().double()), (V, T), r"x.*float64.*float32"),
        Case("gradient_metrics-x-nan", lambda: gm(mlp(), nan(xt())), V, NAN),
        Case("gradient_metrics-x-empty", lambda: gm(mlp(), xt(0)), V, EMPTY),
        Case("gradient_metrics-x-wrong-features", lambda: gm(mlp(), xt(f=F_IN + 1)), V, r"x.*shape \(2, 7\)"),
        Case(
            "gradient_metrics-labels-float",
            lambda: gm(mlp(), xt(), labels=torch.zeros(2)),
            T,
            r"labels must have an integer dtype.*float32",
        ),
        Case(
            "gradient_metrics-method-unknown", lambda: gm(mlp(), xt(), method="autograd"), V, r"method must be one of"
        ),
        Case(
            "gradient_metrics-statistics-unknown",
            lambda: gm(mlp(), xt(), statistics=["median"]),
            V,
            r"statistic.*one of.*'median'",
        ),
        Case(
            "gradient_metrics-labels-out-of-range",
            lambda: gm(mlp(), xt(), labels=torch.tensor([0, K])),
            V,
            r"labels must lie in \[0, 2\]",
        ),
        Case(
            "gradient_metrics-labels-wrong-length",
            lambda: gm(mlp(), xt(), labels=torch.tensor([0])),
            V,
            r"labels.*\[2\]|labels.*length",
        ),
        Case(
            "gradient_metrics-chunk_size-zero",
            lambda: gm(mlp(), xt(), chunk_size=0),
            V,
            r"chunk_size must be a positive integer",
        ),
    ]


def _justification_cases() -> list[Case]:
    h, y = xt(12, 4), labels(12)
    knn = lambda **kw: ualib.KNNJustifier(k=3, **kw)  # noqa: E731
    gp = lambda **kw: ualib.SparseGP(num_inducing=4, iterations=0, **kw)  # noqa: E731
    return [
        Case("KNNJustifier-k-zero", lambda: ualib.KNNJustifier(k=0), V, r"k must be a positive integer"),
        Case(
            "KNNJustifier-dtype-int",
            lambda: ualib.KNNJustifier(dtype=torch.long),
            T,
            r"dtype must be a floating-point dtype",
        ),
        Case(
            "KNNJustifier.fit-y-wrong-length",
            lambda: knn().fit(h, y[:-1]),
            V,
            r"h and y must have the same length, got 12 and 11",
        ),
        Case(
            "KNNJustifier.fit-k-larger-than-N",
            lambda: ualib.KNNJustifier(k=20).fit(h, y),
            V,
            r"k=20 training examples, got 12",
        ),
        Case("KNNJustifier.fit-h-wrong-ndim", lambda: knn().fit(h[:, 0], y), V, r"h must have 2 dimensions"),
        Case("KNNJustifier.fit-h-nan", lambda: knn().fit(nan(h), y), V, r"h contains NaN"),
        Case("KNNJustifier.fit-y-float", lambda: knn().fit(h, y.float()), T, r"y must .*(integer|int).*float32"),
        Case(
            "KNNJustifier.fit-y-negative",
            lambda: knn().fit(h, y - 1),
            V,
            r"y.*non-negative|labels must be non-negative",
        ),
        Case(
            "KNNJustifier.fit-num_classes-too-small",
            lambda: knn().fit(h, y, num_classes=2),
            V,
            r"num_classes.*>= 3.*2|num_classes.*largest label",
        ),
        Case(
            "KNNJustifier.query-h-wrong-features",
            lambda: knn().fit(h, y).query(xt(2, 5)),
            V,
            r"h must have 4 features, got shape \(2, 5\)",
        ),
        Case("KNNJustifier.query-h-empty", lambda: knn().fit(h, y).query(xt(0, 4)), V, r"h.*at least one"),
        Case("KNNJustifier.query-before-fit", lambda: knn().query(h), (V, RuntimeError), r"fit\(\) before"),
        Case(
            "SparseGP-num_inducing-zero",
            lambda: ualib.SparseGP(num_inducing=0),
            V,
            r"num_inducing must be a positive integer",
        ),
        Case(
            "SparseGP-likelihood-unknown", lambda: ualib.SparseGP(likelihood="poisson"), V, r"likelihood must be one of"
        ),
        Case("SparseGP-jitter-negative", lambda: ualib.SparseGP(jitter=-1.0), V, r"jitter must be >= 0"),
        Case("SparseGP.fit-y-wrong-length", lambda: gp().fit(h, y[:-1]), V, r"h.*y.*same length.*12.*11"),
        Case("SparseGP.fit-h-wrong-ndim", lambda: gp().fit(h[:, 0], y), V, r"h must have 2 dimensions"),
        Case("SparseGP.fit-h-nan", lambda: gp().fit(nan(h), y), V, r"h contains NaN"),
        Case(
            "SparseGP.fit-inducing_index-out-of-range",
            lambda: gp().fit(h, y, inducing_index=torch.tensor([0, 12])),
            V,
            r"inducing_index must hold distinct training indices in \[0, N\)",
        ),
        Case("SparseGP.fit-y-float", lambda: gp().fit(h, y.float()), T, r"y must .*(integer|int).*float32"),
        Case(
            "SparseGP.predict-h-wrong-features",
            lambda: gp().fit(h, y).predict(xt(2, 5)),
            V,
            r"h must have 4 features, got shape \(2, 5\)",
        ),
        Case("SparseGP.predict-h-nan", lambda: gp().fit(h, y).predict(nan(xt(2, 4))), V, r"h contains NaN"),
        Case(
            "SparseGP.justify-n-zero", lambda: gp().fit(h, y).justify(xt(2, 4), n=0), V, r"n must be a positive integer"
        ),
    ]


def _planted_cases() -> list[Case]:
    """plant_patches' mistakes."""
    from ualib.data.planted import plant_patches

    def pp(x=None, patches=None, **kw):
        x = xi(4, s=12) if x is None else x
        return plant_patches(x, torch.ones(2, 1, 4, 4) if patches is None else patches, patch_size=4, **kw)

    return [
        Case("plant_patches-x-wrong-ndim", lambda: pp(xi(4, s=12)[:, 0]), V, r"x must have 4 dimensions"),
        Case("plant_patches-x-nan", lambda: pp(nan(xi(4, s=12))), V, r"x contains NaN"),
        Case("plant_patches-patch_size-too-large", lambda: pp(xi(4, s=3)), V, r"patch_size=4 does not fit"),
        Case("plant_patches-alpha-out-of-range", lambda: pp(alpha=1.5), V, r"alpha.*1.5"),
        Case(
            "plant_patches-patches-channels",
            lambda: pp(patches=torch.ones(2, 2, 4, 4)),
            V,
            r"patches must have 1 or 1 channels|patches.*channels",
        ),
        Case("plant_patches-patches-empty", lambda: pp(patches=torch.ones(0, 1, 4, 4)), V, r"patches is empty"),
        Case("plant_patches-positions-unknown", lambda: pp(positions="center"), V, r"positions.*'center'"),
        Case(
            "plant_patches-patch_index-out-of-range",
            lambda: pp(patch_index=torch.tensor([0, 1, 2, 0])),
            V,
            r"patch_index must lie in \[0, 1\]",
        ),
        Case("plant_patches-y-wrong-length", lambda: pp(y=labels(3)), V, r"y must be a tensor of shape \[4\]"),
    ]


def _covariance_cases() -> list[Case]:
    cases = [
        Case(
            "random_attribution-x-list", lambda: ualib.random_attribution([[0.0, 1.0]]), T, r"x must be a torch.Tensor"
        ),
        Case(
            "random_attribution-x-wrong-ndim", lambda: ualib.random_attribution(xt()[0]), V, r"x must be a batch shaped"
        ),
        Case("random_attribution-x-nan", lambda: ualib.random_attribution(nan(xt())), V, NAN),
        Case(
            "random_attribution-seed-float", lambda: ualib.random_attribution(xt(), seed=0.5), T, r"seed must be an int"
        ),
    ]
    for name in ("covariance_attribution", "cov_gi", "cov_ig"):
        fn = getattr(ualib, name)
        cases += [
            Case(f"{name}-posterior-module", lambda fn=fn: fn(mlp(), xt()), T, r"posterior must be a ualib Posterior"),
            Case(f"{name}-x-wrong-ndim", lambda fn=fn: fn(mcd(), xt()[0]), V, r"x must have .* dimensions"),
            Case(f"{name}-x-nan", lambda fn=fn: fn(mcd(), nan(xt())), V, NAN),
            Case(f"{name}-x-float64", lambda fn=fn: fn(mcd(), xt().double()), (V, T), DTYPE),
            Case(f"{name}-x-empty", lambda fn=fn: fn(mcd(), xt(0)), V, EMPTY),
            # the per-sample inputs [S, B, F] reach the network: the message names x and both shapes
            Case(f"{name}-x-wrong-features", lambda fn=fn: fn(mcd(), xt(f=F_IN + 1)), V, r"x: .*cannot take.*7 and 6"),
            Case(f"{name}-steps-zero", lambda fn=fn: fn(mcd(), xt(), steps=0), V, r"steps must be a positive int"),
        ]
    cases += [
        Case("covariance_attribution-explanation-unknown",
             lambda: ualib.covariance_attribution(mcd(), xt(), explanation="lrp"), V, r"explanation must be one of"),
        Case("covariance_attribution-output-unknown",
             lambda: ualib.covariance_attribution(mcd(), xt(), output="entropy"), V, r"output must be one of"),
        Case("cov_gi-kind-epistemic", lambda: ualib.cov_gi(mcd(), xt(), kind="epistemic"), V, r"kind must be one of"),
        Case("cov_ig-indices-out-of-range", lambda: ualib.cov_ig(mcd(), xt(), indices=[7]), V, r"indices"),
    ]  # fmt: skip
    return cases


CASES = (
    _planted_cases()
    + _posterior_cases()
    + _more_cases()
    + _training_cases()
    + _target_cases()
    + _uncertainty_cases()
    + _attribution_cases()
    + _gradient_metrics_cases()
    + _covariance_cases()
    + _justification_cases()
)
#: entry points of the library checked beyond ualib.__all__
EXTRA_ENTRY_POINTS = ("plant_patches",)


def test_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_every_public_entry_point_has_its_mistakes():
    """Each exported callable of ``ualib.__all__`` is fed at least three mistakes here (an enum, one)."""
    counts = collections.Counter(re.split(r"[.-]", c.id)[0] for c in CASES)
    not_callable = {"__version__", "Posterior", "Target"}
    few = {
        n: counts[n]
        for n in ualib.__all__
        if n not in not_callable and counts[n] < (1 if n == "UncertaintyKind" else 3)
    }
    assert not few, few
    assert set(counts) <= set(ualib.__all__) | set(EXTRA_ENTRY_POINTS), set(counts) - set(ualib.__all__)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_mistake_is_refused(case: Case):
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is asserted below, with the message
        result = case.call()
        pytest.fail(f"silent result: {type(result).__name__}")  # pragma: no cover
    err = info.value
    assert isinstance(err, case.exc), f"expected {case.exc}, got {type(err).__name__}: {err}"
    assert re.search(case.match, str(err), flags=re.S), f"message does not match {case.match!r}: {err}"
