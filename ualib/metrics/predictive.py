"""Evaluation metrics: accuracy, NLL, calibration, OOD detection and selective prediction.

Every function accepts torch tensors (any device; detached) or numpy arrays (lists work too) and
returns Python floats, numpy arrays or dicts of them. Computation is in float64 numpy. These are
evaluation metrics, not training losses: nothing here is differentiable.

Conventions
-----------
* ``probs`` is the predictive distribution ``[B, K]`` (for a posterior, the mean over the sample
  axis of ``[S, B, K]`` probabilities), ``y`` the integer labels ``[B]``.
* OOD scores: **higher = more likely out-of-distribution** (entropy, mutual information, vacuity,
  ``-max prob``...). ``score_in`` are the scores of in-distribution inputs, ``score_out`` those of
  OOD inputs. Only the order of the scores matters; ``±inf`` is allowed, NaN is rejected.
* Confidence (risk-coverage): **higher = more likely correct**.

References
----------
.. [Guo2017] C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger. On calibration of modern neural networks.
   ICML 2017.
.. [Naeini2015] M. P. Naeini, G. Cooper, M. Hauskrecht. Obtaining well calibrated probabilities
   using Bayesian binning. AAAI 2015.
.. [Hendrycks2017] D. Hendrycks, K. Gimpel. A baseline for detecting misclassified and
   out-of-distribution examples in neural networks. ICLR 2017.
.. [Geifman2017] Y. Geifman, R. El-Yaniv. Selective classification for deep neural networks.
   NeurIPS 2017.
.. [Geifman2019] Y. Geifman, G. Uziel, R. El-Yaniv. Bias-reduced uncertainty estimation for deep
   neural classifiers. ICLR 2019 (AURC).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ualib._checks import check_positive_int, check_probs

__all__ = [
    "accuracy",
    "nll",
    "ece",
    "reliability_diagram",
    "auroc",
    "aupr_in",
    "aupr_out",
    "fpr_at_tpr",
    "ood_metrics",
    "risk_coverage_curve",
    "aurc",
]

ArrayLike = torch.Tensor | np.ndarray | list | tuple

#: Tolerance on row sums of ``probs`` (metrics only need argmax / p_y, so float32 softmax outputs
#: cast to float64 must pass; logits are still caught).
_PROB_ATOL = 1e-4


# ----------------------------------------------------------------------------------------------
# input conversion
# ----------------------------------------------------------------------------------------------


def _as_torch(x: object, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, (np.ndarray, np.generic, list, tuple)):
        arr = np.asarray(x)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold numbers, got a numpy array of dtype {arr.dtype}")
        return torch.from_numpy(np.ascontiguousarray(arr))
    raise TypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(x).__name__}")


def _checked_probs(probs: object) -> torch.Tensor:
    p = _as_torch(probs, "probs")
    if p.ndim == 3:
        raise ValueError(
            f"probs must be the predictive distribution [B, K], got shape {tuple(p.shape)}; for "
            "[S, B, K] posterior samples pass probs.mean(0)"
        )
    return check_probs(p, "probs", ndim=2, atol=_PROB_ATOL)


def _probs(probs: object) -> np.ndarray:
    return _checked_probs(probs).cpu().double().numpy()


def _labels(y: object, n: int, k: int) -> np.ndarray:
    t = _as_torch(y, "y")
    if t.ndim != 1:
        raise ValueError(f"y must have 1 dimension [B], got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"y must hold integer class labels, got dtype {t.dtype}; cast it to int64")
    if t.shape[0] != n:
        raise ValueError(f"probs and y must have the same length, got {n} and {t.shape[0]}")
    arr = t.cpu().numpy().astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= k):
        raise ValueError(f"y must lie in [0, {k - 1}] (K = {k} classes), got values in [{arr.min()}, {arr.max()}]")
    return arr


def _vector(x: object, name: str, *, allow_inf: bool = True, min_len: int = 1) -> np.ndarray:
    t = _as_torch(x, name)
    if t.ndim != 1:
        raise ValueError(f"{name} must have 1 dimension, got shape {tuple(t.shape)}")
    if t.is_complex():
        raise TypeError(f"{name} must be real, got dtype {t.dtype}")
    arr = t.cpu().numpy().astype(np.float64)
    if arr.shape[0] < min_len:
        raise ValueError(f"{name} must have at least {min_len} element(s), got {arr.shape[0]}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN values")
    if not allow_inf and np.isinf(arr).any():
        raise ValueError(f"{name} contains infinite values")
    return arr


def _binary(x: object, name: str) -> np.ndarray:
    arr = _vector(x, name, allow_inf=False)
    if not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError(f"{name} must be boolean or hold only 0 and 1")
    return arr


# ----------------------------------------------------------------------------------------------
# accuracy, NLL, calibration
# ----------------------------------------------------------------------------------------------


def accuracy(probs: ArrayLike, y: ArrayLike) -> float:
    """Top-1 accuracy: the fraction of inputs whose arg-max class equals the label.

    Parameters
    ----------
    probs : array, shape ``[B, K]``
        Predictive probabilities (rows sum to 1). Ties in the arg-max go to the lowest class index.
    y : integer array, shape ``[B]``
        True labels in ``[0, K)``.

    Returns
    -------
    float
    """
    p = _probs(probs)
    t = _labels(y, p.shape[0], p.shape[1])
    if p.shape[0] == 0:
        raise ValueError("probs must hold at least one input, got B = 0")
    return float(np.mean(p.argmax(axis=1) == t))


def nll(probs: ArrayLike, y: ArrayLike, eps: float = 1e-12) -> float:
    r"""Mean negative log-likelihood of the true class: :math:`-\frac1B\sum_b \log\max(p_{b,y_b}, \epsilon)`.

    Parameters
    ----------
    probs : array, shape ``[B, K]``
        Predictive probabilities.
    y : integer array, shape ``[B]``
        True labels.
    eps : float, default ``1e-12``
        Floor on the true-class probability, so that a zero probability gives ``-log eps`` rather
        than infinity.

    Returns
    -------
    float
        In nats.
    """
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a positive float, got {eps!r}")
    p = _probs(probs)
    t = _labels(y, p.shape[0], p.shape[1])
    if p.shape[0] == 0:
        raise ValueError("probs must hold at least one input, got B = 0")
    py = p[np.arange(p.shape[0]), t]
    return float(-np.mean(np.log(np.maximum(py, eps))))


def _bin_index(conf: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin ``m`` of each confidence, ``edges[m] < conf <= edges[m + 1]`` (0 goes to bin 0), for the
    equal-width ``edges`` of ``np.linspace(0, 1, M + 1)``: ``ceil(conf * M)`` counts the edges below
    ``conf`` up to one rounding step, which one comparison on each side corrects. The same bins as
    ``np.searchsorted(edges, conf) - 1``, at half its cost (tested against it, edges included)."""
    m = len(edges) - 1
    k = np.clip(np.ceil(conf * m).astype(np.int64), 0, m)
    k -= (k > 0) & (edges[np.maximum(k - 1, 0)] >= conf)
    k += edges[np.minimum(k, m)] < conf
    return np.clip(k - 1, 0, m - 1)


def reliability_diagram(probs: ArrayLike, y: ArrayLike, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per-bin confidence and accuracy of the top-1 prediction (equal-width confidence bins).

    The confidence of an input is its largest class probability. Bin ``m`` (``m = 1..n_bins``) holds
    the confidences in ``((m-1)/n_bins, m/n_bins]`` (right-closed, as in Guo et al. 2017; a
    confidence of exactly 0 goes to the first bin).

    Parameters
    ----------
    probs : array, shape ``[B, K]``
    y : integer array, shape ``[B]``
    n_bins : int, default 15

    Returns
    -------
    dict
        ``bin_edges`` ``[n_bins + 1]`` (float), ``bin_confidence`` ``[n_bins]`` (mean confidence
        in the bin), ``bin_accuracy`` ``[n_bins]`` (fraction correct in the bin), ``bin_count``
        ``[n_bins]`` (int). Confidence and accuracy are NaN for empty bins. The ECE is
        ``sum(bin_count / bin_count.sum() * |bin_accuracy - bin_confidence|)`` over non-empty bins.

    References
    ----------
    Guo et al. (2017), §2; Naeini et al. (2015).
    """
    check_positive_int(n_bins, "n_bins")
    p = _checked_probs(probs)
    t = _labels(y, p.shape[0], p.shape[1])
    # the largest probability and its class in the input's own dtype (one pass, no float64 copy of
    # [B, K]): the maximum of float32 numbers is exactly representable, so the float64 confidences and
    # the first-maximum arg-max are those of a float64 computation
    top, pred = p.max(dim=1)
    conf = top.cpu().double().numpy()
    correct = (pred.cpu().numpy() == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = _bin_index(conf, edges)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        bin_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        bin_acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    bin_conf[count == 0] = np.nan
    bin_acc[count == 0] = np.nan
    return {
        "bin_edges": edges,
        "bin_confidence": bin_conf,
        "bin_accuracy": bin_acc,
        "bin_count": count.astype(np.int64),
    }


def ece(probs: ArrayLike, y: ArrayLike, n_bins: int = 15) -> float:
    r"""Expected calibration error with equal-width confidence bins.

    .. math:: \mathrm{ECE} = \sum_{m=1}^{M} \frac{|B_m|}{n}\,\bigl|\mathrm{acc}(B_m) - \mathrm{conf}(B_m)\bigr|

    with the bins of :func:`reliability_diagram`.

    Parameters
    ----------
    probs : array, shape ``[B, K]``
    y : integer array, shape ``[B]``
    n_bins : int, default 15

    Returns
    -------
    float
        In ``[0, 1]``.

    References
    ----------
    Guo et al. (2017), Eq. 3; Naeini et al. (2015).
    """
    d = reliability_diagram(probs, y, n_bins)
    count = d["bin_count"]
    full = count > 0
    gap = np.abs(d["bin_accuracy"][full] - d["bin_confidence"][full])
    return float(np.sum(count[full] / count.sum() * gap))


# ----------------------------------------------------------------------------------------------
# OOD detection
# ----------------------------------------------------------------------------------------------


def _scores(score_in: object, score_out: object) -> tuple[np.ndarray, np.ndarray]:
    return _vector(score_in, "score_in"), _vector(score_out, "score_out")


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, tied values sharing the mean of their ranks."""
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts).astype(np.float64)
    avg = ends - (counts - 1) / 2.0  # mean of ranks (ends - counts + 1) .. ends
    return avg[inv.reshape(-1)]


def _average_precision(pos: np.ndarray, neg: np.ndarray) -> float:
    """Average precision, positives ranked by descending score, tied scores entering together."""
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    order = np.argsort(-scores, kind="mergesort")
    s, lab = scores[order], labels[order]
    tps = np.cumsum(lab)
    fps = np.cumsum(1.0 - lab)
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # last index of each tie group
    tp, fp = tps[last], fps[last]
    precision = tp / (tp + fp)
    recall = tp / pos.size
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def auroc(score_in: ArrayLike, score_out: ArrayLike) -> float:
    r"""Area under the ROC curve for detecting OOD inputs (OOD = positive, higher score = OOD).

    Computed as the Mann-Whitney statistic, the probability that a random OOD input scores above a
    random in-distribution input, ties counting 1/2:

    .. math:: \mathrm{AUROC} = \frac{1}{n_\mathrm{in} n_\mathrm{out}} \sum_{i,o}
              \bigl(\mathbb 1[s_o > s_i] + \tfrac12 \mathbb 1[s_o = s_i]\bigr),

    evaluated in ``O(n log n)`` from average ranks. Equals ``sklearn.metrics.roc_auc_score`` with
    OOD labelled 1. Symmetric in the choice of positive class (swapping roles and negating scores).

    Parameters
    ----------
    score_in : array, shape ``[N_in]``
    score_out : array, shape ``[N_out]``

    Returns
    -------
    float
        In ``[0, 1]``; 0.5 for an uninformative score.

    References
    ----------
    Hendrycks & Gimpel (2017); Mann & Whitney (1947). [STD]; book: chapter 1, "Uncertainty basics", section "Out-of-distribution detection" — notebooks/01_uncertainty_basics.ipynb.
    """
    s_in, s_out = _scores(score_in, score_out)
    ranks = _average_ranks(np.concatenate([s_in, s_out]))
    n_in, n_out = s_in.size, s_out.size
    u = ranks[n_in:].sum() - n_out * (n_out + 1) / 2.0
    return float(u / (n_in * n_out))


def aupr_in(score_in: ArrayLike, score_out: ArrayLike) -> float:
    """Area under the precision-recall curve with the **in-distribution** inputs as positives.

    Average precision (no interpolation; the definition of ``sklearn.metrics.average_precision_score``)
    of the ranking by ``-score``: :math:`\\mathrm{AP} = \\sum_n (R_n - R_{n-1}) P_n` over the distinct
    thresholds; tied scores enter the ranking together.

    Parameters
    ----------
    score_in : array, shape ``[N_in]``
    score_out : array, shape ``[N_out]``

    Returns
    -------
    float
        In ``(0, 1]``; about ``N_in / (N_in + N_out)`` for an uninformative score.

    References
    ----------
    Hendrycks & Gimpel (2017). [STD]; book: chapter 1, "Uncertainty basics", section "Out-of-distribution detection" — notebooks/01_uncertainty_basics.ipynb.
    """
    s_in, s_out = _scores(score_in, score_out)
    return _average_precision(-s_in, -s_out)


def aupr_out(score_in: ArrayLike, score_out: ArrayLike) -> float:
    """Area under the precision-recall curve with the **OOD** inputs as positives (ranking by score).

    Average precision as in :func:`aupr_in`.

    Parameters
    ----------
    score_in : array, shape ``[N_in]``
    score_out : array, shape ``[N_out]``

    Returns
    -------
    float
        In ``(0, 1]``; about ``N_out / (N_in + N_out)`` for an uninformative score.

    References
    ----------
    Hendrycks & Gimpel (2017). [STD]; book: chapter 1, "Uncertainty basics", section "Out-of-distribution detection" — notebooks/01_uncertainty_basics.ipynb.
    """
    s_in, s_out = _scores(score_in, score_out)
    return _average_precision(s_out, s_in)


def fpr_at_tpr(score_in: ArrayLike, score_out: ArrayLike, tpr: float = 0.95) -> float:
    r"""False-positive rate on in-distribution inputs when a fraction ``tpr`` of OOD inputs is detected.

    The detector flags an input as OOD when its score is ``>= t``. With
    :math:`\mathrm{TPR}(t) = \#\{o: s_o \ge t\}/N_\mathrm{out}` and
    :math:`\mathrm{FPR}(t) = \#\{i: s_i \ge t\}/N_\mathrm{in}`, this returns

    .. math:: \min_t\ \{\mathrm{FPR}(t) : \mathrm{TPR}(t) \ge \mathrm{tpr}\},

    attained at ``t*`` = the ``k``-th largest OOD score, ``k`` the smallest integer with
    ``k / N_out >= tpr``. Ties are handled conservatively: an in-distribution input whose score
    equals ``t*`` is counted as a false positive (no threshold separates it from the OOD input it
    ties with), and no interpolation between ROC points is done.

    Parameters
    ----------
    score_in : array, shape ``[N_in]``
    score_out : array, shape ``[N_out]``
    tpr : float in ``(0, 1]``, default 0.95

    Returns
    -------
    float
        In ``[0, 1]``; lower is better.

    References
    ----------
    Hendrycks & Gimpel (2017) ("FPR at 95 % TPR"). [STD]; book: chapter 1, "Uncertainty basics", section "Out-of-distribution detection" — notebooks/01_uncertainty_basics.ipynb.
    """
    if isinstance(tpr, bool) or not isinstance(tpr, (int, float)) or not (0 < tpr <= 1):
        raise ValueError(f"tpr must be a float in (0, 1], got {tpr!r}")
    s_in, s_out = _scores(score_in, score_out)
    n_out = s_out.size
    k = int(np.argmax(np.arange(1, n_out + 1) / n_out >= tpr)) + 1
    threshold = np.sort(s_out)[::-1][k - 1]
    return float(np.mean(s_in >= threshold))


def ood_metrics(score_in: ArrayLike, score_out: ArrayLike, tpr: float = 0.95) -> dict[str, float]:
    """All OOD-detection metrics at once (higher score = more likely OOD).

    Parameters
    ----------
    score_in : array, shape ``[N_in]``
    score_out : array, shape ``[N_out]``
    tpr : float, default 0.95
        The true-positive rate of :func:`fpr_at_tpr`.

    Returns
    -------
    dict
        ``{"auroc", "aupr_in", "aupr_out", "fpr_at_tpr"}``, each a float.

    References
    ----------
    Hendrycks & Gimpel (2017). [STD]; book: chapter 1, "Uncertainty basics", section "Out-of-distribution detection" — notebooks/01_uncertainty_basics.ipynb.
    """
    s_in, s_out = _scores(score_in, score_out)
    return {
        "auroc": auroc(s_in, s_out),
        "aupr_in": aupr_in(s_in, s_out),
        "aupr_out": aupr_out(s_in, s_out),
        "fpr_at_tpr": fpr_at_tpr(s_in, s_out, tpr),
    }


# ----------------------------------------------------------------------------------------------
# selective prediction
# ----------------------------------------------------------------------------------------------


def risk_coverage_curve(confidence: ArrayLike, correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Risk-coverage curve of selective prediction: abstain on the least confident inputs first.

    Inputs are sorted by confidence, descending. At coverage ``c_i = i/n`` (the ``i`` most confident
    inputs accepted, ``i = 1..n``) the risk is the error rate among the accepted inputs. Within a
    group of tied confidences, which of them is accepted first is not determined by the confidence;
    the curve then uses the expected number of errors under a uniformly random order of the tied
    inputs (linear interpolation of the cumulative errors across the group). Without ties this is the
    usual curve; with ties the result does not depend on the input order, and at the end of each
    tie group it is exact.

    Parameters
    ----------
    confidence : array, shape ``[n]``
        Higher = more likely correct (e.g. max probability, ``-entropy``). ``±inf`` allowed.
    correct : bool or 0/1 array, shape ``[n]``
        Whether each prediction is correct.

    Returns
    -------
    coverage : numpy.ndarray, shape ``[n]``
        ``(1, 2, ..., n) / n``.
    risk : numpy.ndarray, shape ``[n]``
        Error rate among the covered inputs; ``risk[-1]`` is the overall error rate.

    References
    ----------
    Geifman & El-Yaniv (2017), §2; Geifman et al. (2019).
    """
    conf = _vector(confidence, "confidence")
    err = 1.0 - _binary(correct, "correct")
    if conf.size != err.size:
        raise ValueError(f"confidence and correct must have the same length, got {conf.size} and {err.size}")
    n = conf.size
    order = np.argsort(-conf, kind="mergesort")
    c, e = conf[order], err[order]
    group = np.r_[0, np.cumsum(c[1:] != c[:-1])]  # tie-group id of each sorted position
    size = np.bincount(group).astype(np.float64)
    g_err = np.bincount(group, weights=e)
    start = np.cumsum(size) - size
    before = np.cumsum(g_err) - g_err
    pos = np.arange(n) - start[group] + 1.0  # 1-based position within the tie group
    cum_err = before[group] + pos * g_err[group] / size[group]
    i = np.arange(1, n + 1, dtype=np.float64)
    return i / n, cum_err / i


def aurc(confidence: ArrayLike, correct: ArrayLike) -> float:
    r"""Area under the risk-coverage curve: :math:`\frac1n \sum_{i=1}^n \mathrm{risk}(i/n)`.

    The mean of the ``risk`` returned by :func:`risk_coverage_curve` (a right Riemann sum over the
    coverages ``1/n, ..., 1``), so ties are handled as there (expected value over random orders of
    tied confidences). Lower is better; a perfect ranking gives
    ``r + (1 - r) log(1 - r)`` asymptotically for error rate ``r``.

    Parameters
    ----------
    confidence : array, shape ``[n]``
    correct : bool or 0/1 array, shape ``[n]``

    Returns
    -------
    float
        In ``[0, 1]``.

    References
    ----------
    Geifman & El-Yaniv (2017); Geifman et al. (2019), §2 (AURC).
    """
    _, risk = risk_coverage_curve(confidence, correct)
    return float(risk.mean())
