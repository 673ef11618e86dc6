"""From predictions to the tables a chapter shows: calibration, uncertainty per input group, OOD AUROC."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch

from ualib import metrics
from ualib import uncertainty as U
from ualib._checks import check_alpha, check_probs

__all__ = ["uncertainty_scores", "evidential_scores", "calibration_table", "mean_table", "ood_table"]


def uncertainty_scores(probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-input uncertainty scores ``[N]`` from sampled probabilities ``[S, N, K]`` (higher = more uncertain).

    ``total`` (entropy of the mean), ``aleatoric`` (expected entropy), ``epistemic`` (mutual
    information) and ``1 - max prob`` (Hendrycks & Gimpel's baseline on the mean prediction).
    """
    check_probs(probs, ndim=3)
    return {
        "total": U.total_entropy(probs),
        "aleatoric": U.expected_entropy(probs),
        "epistemic": U.mutual_information(probs),
        "1 - max prob": 1 - probs.mean(0).max(-1).values,
    }


def evidential_scores(alpha: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-input scores ``[N]`` from Dirichlet parameters ``[N, K]``: vacuity, dissonance, the entropy of
    the expected probability (``total``) and ``1 - max prob``."""
    check_alpha(alpha)
    p = U.expected_probability(alpha)
    return {
        "vacuity": U.vacuity(alpha),
        "dissonance": U.dissonance(alpha),
        "total": U.total_entropy(p.unsqueeze(0)),
        "1 - max prob": 1 - p.max(-1).values,
    }


def calibration_table(probs: Mapping[str, torch.Tensor], y: torch.Tensor, n_bins: int = 15) -> pd.DataFrame:
    """Accuracy, NLL, ECE and AURC of each estimator's mean prediction (``probs[name]`` is ``[S, N, K]``)."""
    rows = {}
    for name, p in probs.items():
        mean = p.mean(0)
        conf = mean.max(-1).values
        correct = mean.argmax(-1) == y
        rows[name] = {
            "accuracy": metrics.accuracy(mean, y),
            "NLL": metrics.nll(mean, y),
            "ECE": metrics.ece(mean, y, n_bins=n_bins),
            "AURC": metrics.aurc(conf, correct),
        }
    return pd.DataFrame(rows).T


def mean_table(scores: Mapping[str, Mapping[str, Mapping[str, torch.Tensor]]], measure: str) -> pd.DataFrame:
    """Mean of ``scores[estimator][group][measure]``: one row per estimator, one column per input group.

    Estimators without that measure are left out.
    """
    rows = {
        est: {g: float(s[measure].mean()) for g, s in groups.items()}
        for est, groups in scores.items()
        if measure in next(iter(groups.values()))
    }
    return pd.DataFrame(rows).T


def ood_table(
    scores: Mapping[str, Mapping[str, Mapping[str, torch.Tensor]]],
    in_group: str,
    out_groups: list[str],
) -> pd.DataFrame:
    """AUROC of every (estimator, measure) for telling ``in_group`` from each of ``out_groups``.

    ``scores[estimator][group][measure]`` are per-input scores where higher means "more likely OOD".
    Returns a frame indexed by (estimator, measure) with one column per OOD group.
    """
    rows = {}
    for est, groups in scores.items():
        for measure, s_in in groups[in_group].items():
            rows[(est, measure)] = {g: metrics.auroc(s_in, groups[g][measure]) for g in out_groups}
    frame = pd.DataFrame(rows).T
    frame.index.names = ["estimator", "measure"]
    return frame
