"""Stochastic layers: mean-field Gaussian (Bayes-by-backprop) layers with the Flipout estimator."""

from __future__ import annotations

from ualib.layers.flipout import (
    FlipoutConv2d,
    FlipoutLayer,
    FlipoutLinear,
    flipout_modules,
    kl_divergence,
    scale_mixture_log_prob,
    weight_eps_shapes,
)

__all__ = [
    "FlipoutLayer",
    "FlipoutLinear",
    "FlipoutConv2d",
    "scale_mixture_log_prob",
    "kl_divergence",
    "flipout_modules",
    "weight_eps_shapes",
]
