"""Evidential deep learning (EDL): Dirichlet outputs and their losses (Sensoy et al., 2018).

A classifier's logits ``z`` (shape ``[B, K]``) are mapped to non-negative evidence ``e = g(z)`` and to
the concentrations ``alpha = e + 1`` of a Dirichlet distribution over the class probabilities. With
``S = sum_k alpha_k`` the expected probability is ``p_hat = alpha / S`` and the vacuity is ``K / S``.
The training loss is a data-fit term (``"mse"``, ``"log"`` or ``"digamma"``) plus an annealed KL
regulariser that shrinks the *misleading* evidence (for the wrong classes) towards the uniform
Dirichlet. Formulas: book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb.

References
----------
.. [1] M. Sensoy, L. Kaplan, M. Kandemir. "Evidential Deep Learning to Quantify Classification
   Uncertainty." NeurIPS 2018.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from ualib._checks import check_alpha, check_choice, check_positive_int, check_tensor

__all__ = [
    "EVIDENCE_KINDS",
    "LOSS_KINDS",
    "evidence",
    "dirichlet_from_logits",
    "kl_dirichlet_uniform",
    "edl_mse_loss",
    "edl_log_loss",
    "edl_digamma_loss",
    "edl_loss",
]

EVIDENCE_KINDS = ("relu", "softplus", "exp")
LOSS_KINDS = ("mse", "log", "digamma")
_REDUCTIONS = ("mean", "sum", "none")


def evidence(logits: torch.Tensor, kind: str = "relu") -> torch.Tensor:
    """Non-negative evidence ``e = g(logits)``.

    Parameters
    ----------
    logits
        ``[B, K]`` (any number of leading axes is accepted: ``[..., K]``), floating point, finite.
    kind
        ``"relu"`` (``max(z, 0)``), ``"softplus"`` (``log(1 + e^z)``) or ``"exp"``
        (``exp(clamp(z, -10, 10))``; the clamp keeps the evidence finite and makes its gradient zero
        outside ``[-10, 10]``).

    Returns
    -------
    torch.Tensor
        Same shape as ``logits``, entries ``>= 0``.

    References
    ----------
    .. [1] M. Sensoy et al. "Evidential Deep Learning to Quantify Classification Uncertainty."
       NeurIPS 2018.
    """
    z = check_tensor(logits, "logits")
    if z.ndim < 1 or z.shape[-1] < 2:
        raise ValueError(f"logits must have shape [B, K] with K >= 2 classes, got {tuple(z.shape)}")
    check_choice(kind, "kind", EVIDENCE_KINDS)
    if kind == "relu":
        return F.relu(z)
    if kind == "softplus":
        return F.softplus(z)
    return torch.exp(torch.clamp(z, -10.0, 10.0))


def dirichlet_from_logits(logits: torch.Tensor, kind: str = "relu") -> torch.Tensor:
    """Dirichlet concentrations ``alpha = evidence(logits, kind) + 1``.

    Parameters
    ----------
    logits
        ``[B, K]`` (or ``[..., K]``).
    kind
        Evidence function, see :func:`evidence`.

    Returns
    -------
    torch.Tensor
        ``alpha``, same shape as ``logits``, entries ``>= 1``.

    References
    ----------
    .. [1] M. Sensoy et al. "Evidential Deep Learning to Quantify Classification Uncertainty."
       NeurIPS 2018.
    """
    return evidence(logits, kind) + 1.0


def kl_dirichlet_uniform(alpha: torch.Tensor) -> torch.Tensor:
    """``KL[Dir(alpha) || Dir(1, ..., 1)]`` per sample.

    ``KL = log Gamma(S) - log Gamma(K) - sum_k log Gamma(alpha_k)
    + sum_k (alpha_k - 1) [psi(alpha_k) - psi(S)]`` with ``S = sum_k alpha_k``.

    Parameters
    ----------
    alpha
        ``[B, K]``, strictly positive.

    Returns
    -------
    torch.Tensor
        ``[B]``, ``>= 0`` (zero iff ``alpha`` is all ones).

    References
    ----------
    .. [1] M. Sensoy et al. "Evidential Deep Learning to Quantify Classification Uncertainty."
       NeurIPS 2018, eq. (5) ff.
    """
    a = check_alpha(alpha)
    return _kl_uniform(a)


def _kl_uniform(a: torch.Tensor) -> torch.Tensor:
    k = a.shape[-1]
    s = a.sum(-1)
    return (
        torch.lgamma(s)
        - math.lgamma(k)
        - torch.lgamma(a).sum(-1)
        + ((a - 1.0) * (torch.digamma(a) - torch.digamma(s).unsqueeze(-1))).sum(-1)
    )


def _one_hot(y: object, alpha: torch.Tensor) -> torch.Tensor:
    """Validate labels ``[B]`` (integer) or one-hot ``[B, K]`` and return one-hot in alpha's dtype."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    b, k = alpha.shape
    if y.ndim == 1:
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise TypeError(f"class labels y of shape [B] must have an integer dtype (int64), got {y.dtype}")
        if y.shape[0] != b:
            raise ValueError(f"y must have shape [{b}] (one label per row of alpha), got {tuple(y.shape)}")
        if y.numel() and (y.min() < 0 or y.max() >= k):
            raise ValueError(
                f"labels y must lie in [0, {k - 1}] for K={k} classes, got min {int(y.min())}, max {int(y.max())}"
            )
        return F.one_hot(y.long(), k).to(dtype=alpha.dtype, device=alpha.device)
    if y.ndim == 2:
        if tuple(y.shape) != (b, k):
            raise ValueError(f"one-hot y must have the shape of alpha {(b, k)}, got {tuple(y.shape)}")
        yf = y.to(dtype=alpha.dtype, device=alpha.device)
        if not ((yf == 0) | (yf == 1)).all() or not (yf.sum(-1) == 1).all():
            raise ValueError("one-hot y must have entries in {0, 1} and exactly one 1 per row")
        return yf
    raise ValueError(f"y must be labels [B] or one-hot [B, K], got shape {tuple(y.shape)}")


def edl_mse_loss(alpha: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """EDL sum-of-squares loss ``E_{p ~ Dir(alpha)} ||y - p||^2`` per sample.

    ``sum_k (y_k - p_hat_k)^2 + p_hat_k (1 - p_hat_k) / (S + 1)`` with ``p_hat = alpha / S``: the squared
    error of the mean plus the Dirichlet variance.

    Parameters
    ----------
    alpha
        ``[B, K]`` Dirichlet concentrations, ``> 0``.
    y
        ``[B]`` integer labels in ``[0, K)`` or ``[B, K]`` one-hot.

    Returns
    -------
    torch.Tensor
        ``[B]``.

    References
    ----------
    .. [1] M. Sensoy et al. "Evidential Deep Learning to Quantify Classification Uncertainty."
       NeurIPS 2018, eq. (5).
    """
    a = check_alpha(alpha)
    return _mse(a, _one_hot(y, a))


def _mse(a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = a.sum(-1, keepdim=True)
    p = a / s
    return ((y - p) ** 2 + p * (1.0 - p) / (s + 1.0)).sum(-1)


def edl_log_loss(alpha: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """EDL type-II maximum-likelihood loss ``-log E_{p ~ Dir(alpha)}[p_y] = log S - log alpha_y``.

    Parameters
    ----------
    alpha
        ``[B, K]``, ``> 0``.
    y
        ``[B]`` integer labels or ``[B, K]`` one-hot.

    Returns
    -------
    torch.Tensor
        ``[B]``.

    References
    ----------
    .. [1] M. Sensoy et al. "Evidential Deep Learning to Quantify Classification Uncertainty."
       NeurIPS 2018, eq. (3).
    """
    a = check_alpha(alpha)
    return _log(a, _one_hot(y, a))


def _log(a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (y * (torch.log(a.sum(-1, keepdim=True)) - torch.log(a))).sum(-1)


def edl_digamma_loss(alpha: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """EDL Bayes-risk cross-entropy ``E_{p ~ Dir(alpha)}[-log p_y] = psi(S) - psi(alpha_y)``.

    Parameters
    ----------
    alpha
        ``[B, K]``, ``> 0``.
    y
        ``[B]`` integer labels or ``[B, K]`` one-hot.

    Returns
    -------
    torch.Tensor
        ``[B]``.

    References
    ----------
    .. [1] M. Sensoy et al. "Evidential Deep Learning to Quantify Classification Uncertainty."
       NeurIPS 2018, eq. (4).
    """
    a = check_alpha(alpha)
    return _digamma(a, _one_hot(y, a))


def _digamma(a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (y * (torch.digamma(a.sum(-1, keepdim=True)) - torch.digamma(a))).sum(-1)


_DATA_TERMS = {"mse": _mse, "log": _log, "digamma": _digamma}


def edl_loss(
    alpha: torch.Tensor,
    y: torch.Tensor,
    *,
    kind: str = "mse",
    epoch: int | float,
    anneal_epochs: int = 10,
    reduction: str = "mean",
) -> torch.Tensor:
    """The full EDL loss: data term + ``lambda_t KL[Dir(alpha_tilde) || Dir(1)]``.

    ``alpha_tilde = y + (1 - y) * alpha`` removes the evidence of the true class, so the regulariser
    only penalises *misleading* evidence; ``lambda_t = min(1, epoch / anneal_epochs)``.

    Parameters
    ----------
    alpha
        ``[B, K]`` Dirichlet concentrations, ``> 0`` (``>= 1`` when produced by
        :func:`dirichlet_from_logits`).
    y
        ``[B]`` integer labels or ``[B, K]`` one-hot.
    kind
        Data term: ``"mse"`` (:func:`edl_mse_loss`), ``"log"`` (:func:`edl_log_loss`) or ``"digamma"``
        (:func:`edl_digamma_loss`).
    epoch
        Current epoch **counted from 0** (a float allows fractional epochs), ``>= 0``: the KL weight is
        ``0`` during the first epoch and reaches ``1`` at ``epoch == anneal_epochs``.
    anneal_epochs
        Length of the linear annealing, a positive integer (10 in Sensoy et al.).
    reduction
        ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.

    Returns
    -------
    torch.Tensor
        A scalar, or ``[B]`` with ``reduction="none"``.

    References
    ----------
    .. [1] M. Sensoy et al. "Evidential Deep Learning to Quantify Classification Uncertainty."
       NeurIPS 2018, §3 (eq. (5) and the annealed KL term).
    """
    a = check_alpha(alpha)
    check_choice(kind, "kind", LOSS_KINDS)
    check_choice(reduction, "reduction", _REDUCTIONS)
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real) or not math.isfinite(epoch) or epoch < 0:
        raise ValueError(f"epoch must be a finite number >= 0 (counted from 0), got {epoch!r}")
    check_positive_int(anneal_epochs, "anneal_epochs")
    y1 = _one_hot(y, a)
    data = _DATA_TERMS[kind](a, y1)
    lam = min(1.0, float(epoch) / anneal_epochs)
    if lam > 0.0:
        alpha_tilde = y1 + (1.0 - y1) * a
        per_sample = data + lam * _kl_uniform(alpha_tilde)
    else:
        per_sample = data
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample
