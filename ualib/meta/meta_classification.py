r"""Meta classification: predict from uncertainty metrics whether a prediction is correct.

A *meta classifier* sees, for each input, a vector of uncertainty metrics (softmax entropy, gradient
metrics, ...; :mod:`ualib.meta.gradient_metrics`) and predicts the binary target :math:`t(x)=1` if the
network's prediction is correct and 0 otherwise; out-of-distribution (OOD) inputs always have
:math:`t=0`. It is judged by its *meta classification accuracy* (threshold 0.5) and its AUROC on a
held-out meta-test split (book: chapter 6, "Gradient meta classification", section "Meta classification" — notebooks/06_gradient_meta_classification.ipynb).

Meta classifiers (scikit-learn):

* ``"logistic"``: logistic regression on standardised features (``StandardScaler`` then
  ``LogisticRegression(max_iter=1000)``) [RECALL, moderate confidence, for the paper]; by default
  the features are first compressed with :class:`SignedLog` (``asinh``), because gradient norms
  span orders of magnitude [INF];
* ``"mlp"``: a small fully connected network on standardised features (two hidden layers of 32
  ReLU units, L2 penalty 1e-3, Adam, at most 300 epochs, stopping when the training loss stalls)
  [RECALL, low confidence; the size is a spec choice, INF]. No early stopping on a validation
  split: its criterion is accuracy, which with ~1 % wrong predictions is flat from the first epoch,
  so it keeps an almost untrained network (AUROC far below 0.5 was seen);
* ``"threshold"``: a single metric thresholded (:class:`ThresholdClassifier`): the direction and the
  accuracy-maximising threshold are chosen on the meta-training split, the AUROC is that of the
  raw metric. This is the "entropy thresholding" baseline of the paper.

Evaluation protocol [INF where the book marks it so; book: chapter 6, "Gradient meta classification", section "Meta classification" — notebooks/06_gradient_meta_classification.ipynb]: ``n_splits`` random stratified
meta-train / meta-test splits (``test_size`` of the inputs in meta-test), reporting the mean and the
standard deviation over the splits. For OOD inputs, two regimes:

* **unknown unknowns**: the meta classifier is trained on in-distribution metrics only (correct vs
  wrong) and scored on the in-distribution meta-test inputs together with one OOD set;
* **known unknowns**: meta training also contains OOD inputs (target 0). ``"known"`` trains on a
  part of every OOD set and tests on the rest of each; ``"leave_one_out"`` trains on parts of all
  OOD sets but one and tests on the held-out set, which it never saw.

Each OOD set is split into meta-train / meta-test parts with the same seed in every regime, so all
regimes are scored on identical test inputs.

References
----------
.. [Oberdiek2018] P. Oberdiek, M. Rottmann, H. Gottschalk. Classification uncertainty of deep
   neural networks based on gradient information. ANNPR 2018. arXiv:1805.08440.
.. [Hendrycks2017] D. Hendrycks, K. Gimpel. A baseline for detecting misclassified and
   out-of-distribution examples in neural networks. ICLR 2017.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ualib._checks import check_choice, check_positive_int
from ualib.seeding import derive_seed

__all__ = [
    "META_MODELS",
    "OOD_REGIMES",
    "ThresholdClassifier",
    "SignedLog",
    "FEATURE_TRANSFORMS",
    "feature_matrix",
    "make_meta_classifier",
    "meta_splits",
    "MetaResult",
    "meta_classify",
    "single_metric_table",
    "ood_splits",
    "OODResult",
    "ood_meta_classify",
]

#: Options of ``model``.
META_MODELS: tuple[str, ...] = ("logistic", "mlp", "threshold")
#: Options of ``transform``: the feature transform applied before standardisation.
FEATURE_TRANSFORMS: tuple[str, ...] = ("asinh", "none")
#: Options of ``regime`` in :func:`ood_meta_classify`.
OOD_REGIMES: tuple[str, ...] = ("unknown", "known", "leave_one_out")

Features = pd.DataFrame | Mapping[str, "torch.Tensor | np.ndarray | Sequence[float]"]


# ----------------------------------------------------------------------------------------------
# features and estimators
# ----------------------------------------------------------------------------------------------


def feature_matrix(features: Features, columns: Sequence[str] | None = None) -> np.ndarray:
    """A float64 matrix ``[N, F]`` from a DataFrame or a mapping of named ``[N]`` columns.

    Parameters
    ----------
    features
        A ``pandas.DataFrame`` (rows = inputs) or a dict of equally long 1-D tensors / arrays, such
        as the output of :func:`ualib.meta.gradient_metrics.gradient_metrics`.
    columns
        Which columns, in this order (default: all, in their order).

    Raises
    ------
    ValueError
        Unknown column, unequal lengths, a non-1-D column, or NaN / infinite values.
    """
    names = list(features.columns if isinstance(features, pd.DataFrame) else features.keys())
    cols = names if columns is None else list(columns)
    if not cols:
        raise ValueError("columns must name at least one feature")
    missing = [c for c in cols if c not in names]
    if missing:
        raise ValueError(f"unknown feature columns {missing}; available: {names}")
    arrays = []
    for c in cols:
        v = features[c]
        v = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        if v.ndim != 1:
            raise ValueError(f"feature {c!r} must be 1-D [N], got shape {v.shape}")
        arrays.append(v.astype(np.float64))
    if len({len(a) for a in arrays}) != 1:
        raise ValueError(f"feature columns have different lengths: { {c: len(a) for c, a in zip(cols, arrays)} }")
    x = np.stack(arrays, 1)
    if not np.isfinite(x).all():
        bad = [c for c, a in zip(cols, arrays) if not np.isfinite(a).all()]
        raise ValueError(f"features {bad} contain NaN or infinite values")
    return x


def _target(target: object, n: int | None = None) -> np.ndarray:
    t = target.detach().cpu().numpy() if isinstance(target, torch.Tensor) else np.asarray(target)
    if t.ndim != 1:
        raise ValueError(f"target must be 1-D [N], got shape {t.shape}")
    if n is not None and len(t) != n:
        raise ValueError(f"target has {len(t)} entries but the features have {n} rows")
    if not np.isin(t, (0, 1)).all():
        raise ValueError("target must be binary (1 = prediction correct, 0 = wrong or OOD)")
    return t.astype(np.int64)


class ThresholdClassifier(ClassifierMixin, BaseEstimator):
    """Threshold one metric: the "entropy thresholding" baseline of meta classification.

    ``fit`` chooses the direction (``+1`` if larger values mean "correct", by the training AUROC) and
    the threshold that maximises training accuracy; ``decision_function`` is the oriented metric,
    ``predict`` compares it with the threshold.
    """

    def fit(self, X: np.ndarray, y: np.ndarray) -> ThresholdClassifier:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != 1:
            raise ValueError(f"ThresholdClassifier takes exactly one feature, got X of shape {X.shape}")
        y = np.asarray(y)
        self.classes_ = np.array([0, 1])
        s = X[:, 0]
        self.sign_ = 1.0 if roc_auc_score(y, s) >= 0.5 else -1.0
        s = self.sign_ * s
        order = np.argsort(s, kind="stable")
        s_sorted, y_sorted = s[order], y[order]
        # predicting 1 for s > s_sorted[i]: correct = (#zeros at or below i) + (#ones above i)
        zeros_below = np.cumsum(y_sorted == 0)
        ones_above = (y_sorted == 1).sum() - np.cumsum(y_sorted == 1)
        acc = zeros_below + ones_above
        # cut only between distinct values; also allow "everything is 1"
        valid = np.r_[s_sorted[1:] > s_sorted[:-1], True]
        acc = np.where(valid, acc, -1)
        i = int(np.argmax(acc))
        all_one = int((y == 1).sum())
        if all_one >= acc[i]:
            self.threshold_ = -np.inf
        else:
            self.threshold_ = float(s_sorted[i])
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.sign_ * np.asarray(X, dtype=np.float64)[:, 0]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.decision_function(X) > self.threshold_).astype(np.int64)


class SignedLog(TransformerMixin, BaseEstimator):
    r"""Compress heavy-tailed features: :math:`v \mapsto \operatorname{asinh}(v / s_j)`.

    ``s_j`` is the median absolute value of feature ``j`` on the training data (1 where that is 0).
    The map is odd, monotone, linear for :math:`|v|\ll s_j` and logarithmic for :math:`|v|\gg s_j`,
    so signed metrics (max, min, mean of a gradient) keep their sign, and norms that span orders of
    magnitude between confident and unsure inputs (a gradient norm of 0.01 against 10) no longer
    leave a linear model with a handful of extreme rows. A spec choice [INF]: what the paper did to
    its features is not known.
    """

    def fit(self, X: np.ndarray, y: object = None) -> SignedLog:
        scale = np.median(np.abs(np.asarray(X, dtype=np.float64)), axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.arcsinh(np.asarray(X, dtype=np.float64) / self.scale_)


def make_meta_classifier(model: str = "logistic", *, transform: str = "asinh", seed: int = 0):
    """An unfitted scikit-learn meta classifier (see the module docstring for each ``model``).

    ``transform="asinh"`` puts :class:`SignedLog` before the standardisation of ``"logistic"`` and
    ``"mlp"``; ``"none"`` standardises the raw features. ``"threshold"`` ignores it (a monotone
    transform does not change a threshold classifier).
    """
    check_choice(model, "model", META_MODELS)
    check_choice(transform, "transform", FEATURE_TRANSFORMS)
    if model == "threshold":
        return ThresholdClassifier()
    pre = [SignedLog()] if transform == "asinh" else []
    if model == "logistic":
        return make_pipeline(*pre, StandardScaler(), LogisticRegression(max_iter=1000))
    return make_pipeline(
        *pre,
        StandardScaler(),
        MLPClassifier(
            hidden_layer_sizes=(32, 32), alpha=1e-3, max_iter=300, random_state=derive_seed(seed, "mlp") % 2**32
        ),
    )


def _fit(est, X: np.ndarray, y: np.ndarray):
    """Fit ``est``; the MLP's epoch cap (300) is a deliberate budget, so its ConvergenceWarning is
    not shown (the fit still returns the network after 300 epochs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def _score(est, X: np.ndarray) -> np.ndarray:
    """Score of the class "correct" (higher = more likely correct)."""
    if hasattr(est, "predict_proba") and not isinstance(est, ThresholdClassifier):
        return est.predict_proba(X)[:, 1]
    return est.decision_function(X)


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")


# ----------------------------------------------------------------------------------------------
# in-distribution meta classification
# ----------------------------------------------------------------------------------------------


def meta_splits(
    target: object, *, n_splits: int = 10, test_size: float = 0.5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Repeated stratified meta-train / meta-test splits: ``n_splits`` pairs of index arrays.

    Both parts keep the fraction of correct predictions of ``target [N]`` (scikit-learn's
    ``StratifiedShuffleSplit`` with ``random_state`` derived from ``seed``).
    """
    t = _target(target)
    check_positive_int(n_splits, "n_splits")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    counts = np.bincount(t, minlength=2)
    if counts.min() < 2:
        raise ValueError(
            f"meta classification needs at least 2 correct and 2 wrong predictions, got {counts[1]} and {counts[0]}"
        )
    sss = StratifiedShuffleSplit(
        n_splits=n_splits, test_size=test_size, random_state=derive_seed(seed, "meta_splits") % 2**32
    )
    return [(tr, te) for tr, te in sss.split(np.zeros(len(t)), t)]


@dataclass
class MetaResult:
    """Per-split results of :func:`meta_classify`.

    Attributes
    ----------
    columns, model
        The features used and the meta classifier's name.
    accuracy, auroc
        ``[n_splits]`` meta-test accuracy (threshold 0.5, or the fitted threshold) and AUROC.
    naive_accuracy
        ``[n_splits]`` accuracy of always answering "correct" on the meta-test split.
    roc
        ``(target, score)`` of the first split's meta-test inputs (for ROC curves).
    """

    columns: list[str]
    model: str
    accuracy: np.ndarray
    auroc: np.ndarray
    naive_accuracy: np.ndarray
    roc: tuple[np.ndarray, np.ndarray] = field(repr=False)

    def summary(self) -> dict[str, float]:
        """Means and standard deviations over the splits."""
        return {
            "accuracy": float(self.accuracy.mean()),
            "accuracy_std": float(self.accuracy.std()),
            "auroc": float(self.auroc.mean()),
            "auroc_std": float(self.auroc.std()),
            "naive_accuracy": float(self.naive_accuracy.mean()),
        }


def meta_classify(
    features: Features,
    target: object,
    *,
    columns: Sequence[str] | None = None,
    model: str = "logistic",
    transform: str = "asinh",
    n_splits: int = 10,
    test_size: float = 0.5,
    seed: int = 0,
) -> MetaResult:
    """Fit and evaluate a meta classifier on repeated stratified meta-train / meta-test splits.

    Parameters
    ----------
    features
        Metrics of ``N`` inputs (DataFrame or dict of ``[N]`` columns).
    target
        ``[N]`` binary: 1 if the network's prediction is correct.
    columns
        Which features (default all). ``model="threshold"`` needs exactly one.
    model
        One of :data:`META_MODELS`.
    transform
        ``"asinh"`` (default; :class:`SignedLog`) or ``"none"``: the feature transform before
        standardisation (:func:`make_meta_classifier`).
    n_splits, test_size, seed
        The splits (:func:`meta_splits`).

    Returns
    -------
    MetaResult
    """
    check_choice(model, "model", META_MODELS)
    check_choice(transform, "transform", FEATURE_TRANSFORMS)
    x = feature_matrix(features, columns)
    t = _target(target, len(x))
    cols = (
        list(columns)
        if columns is not None
        else list(features.columns if isinstance(features, pd.DataFrame) else features.keys())
    )
    acc, auc, naive = [], [], []
    roc = (np.empty(0), np.empty(0))
    for i, (tr, te) in enumerate(meta_splits(t, n_splits=n_splits, test_size=test_size, seed=seed)):
        est = _fit(make_meta_classifier(model, transform=transform, seed=derive_seed(seed, i)), x[tr], t[tr])
        score = _score(est, x[te])
        acc.append(float((est.predict(x[te]) == t[te]).mean()))
        auc.append(_auroc(t[te], score))
        naive.append(float(t[te].mean()))
        if i == 0:
            roc = (t[te], score)
    return MetaResult(cols, model, np.array(acc), np.array(auc), np.array(naive), roc)


def single_metric_table(
    features: Features,
    target: object,
    columns: Sequence[str],
    *,
    model: str = "threshold",
    n_splits: int = 10,
    test_size: float = 0.5,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per metric: meta classification with that metric alone (mean and std over splits).

    Returns a DataFrame indexed by metric with columns ``accuracy``, ``accuracy_std``, ``auroc``,
    ``auroc_std``, ``naive_accuracy``. Every metric uses the same splits.
    """
    rows = {
        c: meta_classify(
            features, target, columns=[c], model=model, n_splits=n_splits, test_size=test_size, seed=seed
        ).summary()
        for c in columns
    }
    return pd.DataFrame.from_dict(rows, orient="index")


# ----------------------------------------------------------------------------------------------
# out-of-distribution regimes
# ----------------------------------------------------------------------------------------------


def ood_splits(
    id_target: object,
    ood_sizes: Mapping[str, int],
    *,
    regime: str,
    n_splits: int = 10,
    test_size: float = 0.5,
    seed: int = 0,
) -> list[dict]:
    """The meta-train / meta-test indices of every fit of :func:`ood_meta_classify`.

    Parameters
    ----------
    id_target
        ``[N_id]`` binary correctness of the in-distribution predictions.
    ood_sizes
        Number of inputs of each OOD set.
    regime
        ``"unknown"``, ``"known"`` or ``"leave_one_out"`` (module docstring).
    n_splits, test_size, seed
        Split ``i`` splits the ID inputs stratified (:func:`meta_splits`) and each OOD set at
        random, both with ``test_size`` in meta-test; the same in every regime.

    Returns
    -------
    list of dict
        One entry per fit: ``split`` (int), ``train_id`` / ``test_id`` (index arrays into the ID
        inputs), ``train_ood`` (``{set: indices}`` used for meta training; empty for
        ``"unknown"``; never containing the held-out set for ``"leave_one_out"``) and
        ``test_ood`` (``{set: indices}`` the fit is scored on).
    """
    check_choice(regime, "regime", OOD_REGIMES)
    if not ood_sizes:
        raise ValueError("ood_sizes must name at least one OOD set")
    if regime == "leave_one_out" and len(ood_sizes) < 2:
        raise ValueError("leave_one_out needs at least two OOD sets (one to train on, one held out)")
    fits = []
    for i, (tr, te) in enumerate(meta_splits(id_target, n_splits=n_splits, test_size=test_size, seed=seed)):
        parts = {}
        for name, n in ood_sizes.items():
            check_positive_int(int(n), f"size of OOD set {name!r}")
            perm = np.random.default_rng(derive_seed(seed, "ood_split", name, i) % 2**63).permutation(int(n))
            n_test = max(1, int(round(test_size * n)))
            parts[name] = (np.sort(perm[n_test:]), np.sort(perm[:n_test]))
        if regime == "unknown":
            fits.append(
                {
                    "split": i,
                    "train_id": tr,
                    "test_id": te,
                    "train_ood": {},
                    "test_ood": {k: p[1] for k, p in parts.items()},
                }
            )
        elif regime == "known":
            fits.append({"split": i, "train_id": tr, "test_id": te, "train_ood": {k: p[0] for k, p in parts.items()},
                         "test_ood": {k: p[1] for k, p in parts.items()}})  # fmt: skip
        else:
            for held in parts:
                fits.append({"split": i, "train_id": tr, "test_id": te,
                             "train_ood": {k: p[0] for k, p in parts.items() if k != held},
                             "test_ood": {held: parts[held][1]}})  # fmt: skip
    return fits


@dataclass
class OODResult:
    """Results of :func:`ood_meta_classify`.

    Attributes
    ----------
    table
        One row per OOD set: ``auroc`` / ``auroc_std``, the AUROC of the meta classifier's
        "correct" score for in-distribution meta-test inputs (positive) against that OOD set's
        meta-test inputs, and ``auroc_meta`` / ``auroc_meta_std``, the AUROC of correct predictions
        against wrong ones together with the OOD inputs (mean and std over splits).
    roc
        ``{set: (is_in_distribution, score)}`` of the first split (for ROC curves).
    """

    regime: str
    columns: list[str]
    model: str
    table: pd.DataFrame
    roc: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)


def ood_meta_classify(
    id_features: Features,
    id_target: object,
    ood_features: Mapping[str, Features],
    *,
    regime: str = "unknown",
    columns: Sequence[str] | None = None,
    model: str = "logistic",
    transform: str = "asinh",
    n_splits: int = 10,
    test_size: float = 0.5,
    seed: int = 0,
) -> OODResult:
    """Meta classification with out-of-distribution inputs, per OOD set, in one regime.

    Parameters
    ----------
    id_features, id_target
        In-distribution metrics ``[N_id]`` and correctness ``[N_id]``.
    ood_features
        ``{set name: metrics}`` of each OOD set (same columns); their target is 0.
    regime
        ``"unknown"`` (train on ID only), ``"known"`` (train also on a part of every OOD set) or
        ``"leave_one_out"`` (train on parts of all OOD sets except the one tested).
    columns, model, transform, n_splits, test_size, seed
        As in :func:`meta_classify`; the splits are :func:`ood_splits`.

    Returns
    -------
    OODResult
    """
    check_choice(model, "model", META_MODELS)
    check_choice(transform, "transform", FEATURE_TRANSFORMS)
    x_id = feature_matrix(id_features, columns)
    t_id = _target(id_target, len(x_id))
    x_ood = {k: feature_matrix(v, columns) for k, v in ood_features.items()}
    cols = (
        list(columns)
        if columns is not None
        else list(id_features.columns if isinstance(id_features, pd.DataFrame) else id_features.keys())
    )
    rows: dict[str, dict[str, list[float]]] = {k: {"auroc": [], "auroc_meta": []} for k in x_ood}
    roc: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    fitted: dict[tuple, object] = {}
    for fit in ood_splits(
        t_id, {k: len(v) for k, v in x_ood.items()}, regime=regime, n_splits=n_splits, test_size=test_size, seed=seed
    ):
        key = (fit["split"], tuple(sorted(fit["train_ood"])))
        if key not in fitted:
            xs = [x_id[fit["train_id"]]] + [x_ood[k][idx] for k, idx in fit["train_ood"].items()]
            ts = [t_id[fit["train_id"]]] + [np.zeros(len(idx), np.int64) for idx in fit["train_ood"].values()]
            est = make_meta_classifier(model, transform=transform, seed=derive_seed(seed, *key))
            fitted[key] = _fit(est, np.concatenate(xs), np.concatenate(ts))
        est = fitted[key]
        s_id = _score(est, x_id[fit["test_id"]])
        t_te = t_id[fit["test_id"]]
        for name, idx in fit["test_ood"].items():
            s_ood = _score(est, x_ood[name][idx])
            is_id = np.r_[np.ones(len(s_id), np.int64), np.zeros(len(s_ood), np.int64)]
            score = np.r_[s_id, s_ood]
            rows[name]["auroc"].append(_auroc(is_id, score))
            rows[name]["auroc_meta"].append(_auroc(np.r_[t_te, np.zeros(len(s_ood), np.int64)], score))
            if fit["split"] == 0:
                roc[name] = (is_id, score)
    table = pd.DataFrame.from_dict(
        {k: {"auroc": np.mean(v["auroc"]), "auroc_std": np.std(v["auroc"]),
             "auroc_meta": np.mean(v["auroc_meta"]), "auroc_meta_std": np.std(v["auroc_meta"])}
         for k, v in rows.items()},
        orient="index",
    )  # fmt: skip
    return OODResult(regime, cols, model, table, roc)
