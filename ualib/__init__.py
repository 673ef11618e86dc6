"""ualib: explainable uncertainty for deep networks.

The top level is the manual: ``dir(ualib)`` lists the posteriors, the scalar targets, the
uncertainty measures and the headline methods, one comment per name below. Every name loads lazily
(on first access), so ``import ualib`` is cheap and optional dependencies (GPyTorch, LIME,
matplotlib, ipywidgets) are imported only by the methods that need them.

Subpackages, grouped by concern: :mod:`ualib.posteriors`, :mod:`ualib.layers`, :mod:`ualib.data`
(datasets, distribution shifts, planted-cause sets), :mod:`ualib.attribution` (every attribution
method, UA-Backprop, UAM and explanation distributions), :mod:`ualib.metrics` (predictive metrics,
perturbation and localization evaluation), :mod:`ualib.meta` (gradient metrics and meta classifiers),
:mod:`ualib.justification` (frozen features, sparse GP, kNN) and :mod:`ualib.viz` (plotting, explorer).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # posteriors: logits(x) -> [S, B, K], one sample axis for all of them
    "Posterior": "ualib.posteriors",  # the shared interface
    "MCDropout": "ualib.posteriors",  # MC dropout (Gal & Ghahramani, 2016)
    "DropConnect": "ualib.posteriors",  # MC DropConnect (Mobiny et al., 2021)
    "DeepEnsemble": "ualib.posteriors",  # deep ensembles, vectorised (Lakshminarayanan et al., 2017)
    "BayesByBackprop": "ualib.posteriors",  # mean-field Gaussian weights with Flipout (Blundell 2015; Wen 2018)
    "Evidential": "ualib.posteriors",  # evidential deep learning, a Dirichlet output (Sensoy et al., 2018)
    # training and the model cache
    "TrainConfig": "ualib.training",  # everything that determines a trained posterior
    "train": "ualib.training",  # train (or load from the cache) the posterior of a TrainConfig
    # scalar targets x -> [B]: what an attribution method explains
    "Target": "ualib.targets",  # the type of a target
    "uncertainty_target": "ualib.targets",  # total / aleatoric / epistemic / variance of a posterior
    "evidential_target": "ualib.targets",  # vacuity / dissonance of an evidential posterior
    "class_logit": "ualib.targets",  # one class's logit
    "class_probability": "ualib.targets",  # one class's probability
    "UncertaintyKind": "ualib.uncertainty",  # str enum of the explainable uncertainty measures
    # uncertainty measures of sampled probabilities [S, B, K] or Dirichlet parameters [B, K]
    "decompose": "ualib.uncertainty",  # total = aleatoric + epistemic, exactly
    "total_entropy": "ualib.uncertainty",  # entropy of the mean prediction
    "expected_entropy": "ualib.uncertainty",  # aleatoric part
    "mutual_information": "ualib.uncertainty",  # epistemic part
    "predictive_variance": "ualib.uncertainty",  # variance of the sampled probabilities
    "vacuity": "ualib.uncertainty",  # missing evidence (K / sum alpha)
    "dissonance": "ualib.uncertainty",  # conflicting evidence (Josang et al., 2018)
    # headline methods
    "ua_backprop": "ualib.attribution.ua_backprop",  # uncertainty attribution by back-propagation (Wang et al., 2023) [INF]
    "uam": "ualib.attribution.uam",  # vacuity / dissonance activation maps (Jeong et al., 2026) [INF]
    "FullGrad": "ualib.attribution.fullgrad",  # exact full-gradient decomposition (Srinivas & Fleuret, 2019)
    "fullgrad": "ualib.attribution.fullgrad",  # FullGrad as a function
    "gradient": "ualib.attribution",  # plain input gradient
    "input_x_gradient": "ualib.attribution",  # gradient times input
    "integrated_gradients": "ualib.attribution",  # integrated gradients (Sundararajan et al., 2017)
    "smoothgrad": "ualib.attribution",  # SmoothGrad (Smilkov et al., 2017)
    "guided_backprop": "ualib.attribution",  # guided back-propagation (Springenberg et al., 2015)
    "grad_cam": "ualib.attribution",  # Grad-CAM (Selvaraju et al., 2017)
    "lime": "ualib.attribution",  # batched LIME (Ribeiro et al., 2016)
    "random_attribution": "ualib.attribution",  # the random-map control
    "covariance_attribution": "ualib.attribution.covariance",  # variance by covariance of explanations (Bley et al., 2024)
    "cov_gi": "ualib.attribution.covariance",  # CovGI: covariance of gradient x input
    "cov_ig": "ualib.attribution.covariance",  # CovIG: covariance of integrated gradients [INF]
    "explanation_distribution": "ualib.attribution.explanation_uncertainty",  # maps over posterior samples (Mulye & Valdenegro-Toro, 2024)
    "gradient_metrics": "ualib.meta.gradient_metrics",  # per-sample gradient metrics (Oberdiek et al., 2018)
    "SparseGP": "ualib.justification.sparse_gp",  # sparse GP with real-example inducing points (Ardis & Flenner, 2024)
    "KNNJustifier": "ualib.justification.knn",  # kNN justification baseline
}

_SUBPACKAGES = (
    "attribution",
    "data",
    "justification",
    "layers",
    "meta",
    "metrics",
    "models",
    "posteriors",
    "targets",
    "training",
    "uncertainty",
    "viz",
)

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # cache: later look-ups skip __getattr__
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"ualib.{name}")
    raise AttributeError(f"module 'ualib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_SUBPACKAGES))
