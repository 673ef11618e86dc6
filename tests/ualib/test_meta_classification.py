"""The meta-classification pipeline on synthetic data whose answer is known, and its split logic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ualib.meta.meta_classification import (
    SignedLog,
    ThresholdClassifier,
    feature_matrix,
    meta_classify,
    meta_splits,
    ood_meta_classify,
    ood_splits,
    single_metric_table,
)


def separable(n: int = 600, seed: int = 0, error_rate: float = 0.2) -> tuple[pd.DataFrame, np.ndarray]:
    """Wrong predictions have a large 'entropy' and gradient norm; one column is pure noise."""
    rng = np.random.default_rng(seed)
    t = (rng.random(n) > error_rate).astype(int)
    entropy = np.where(t == 1, rng.uniform(0.0, 0.4, n), rng.uniform(0.6, 1.0, n))
    grad = np.exp(3 * entropy + 0.05 * rng.standard_normal(n))  # heavy tailed, monotone in entropy
    return pd.DataFrame({"entropy": entropy, "net/l2": grad, "noise": rng.standard_normal(n)}), t


@pytest.mark.parametrize("model", ["logistic", "mlp"])
def test_separable_data_gives_auroc_near_one(model):
    feats, t = separable()
    res = meta_classify(feats, t, model=model, n_splits=3, seed=0)
    assert res.auroc.shape == (3,) and res.accuracy.shape == (3,)
    assert res.auroc.min() > 0.99
    assert res.accuracy.mean() > 0.95 > res.naive_accuracy.mean()


def test_mlp_with_rare_errors_is_as_good_as_logistic_regression():
    """1 % wrong predictions, informative but noisy features: the MLP must not be left untrained
    (with early stopping on validation accuracy, which is flat here, its AUROC fell to 0.13-0.87)."""
    rng = np.random.default_rng(0)
    n = 6000
    t = (rng.random(n) > 0.01).astype(int)
    feats = {"a": -2.0 * (1 - t) + rng.standard_normal(n), "b": np.exp(2 * (1 - t) + rng.standard_normal(n))}
    lr = meta_classify(feats, t, model="logistic", n_splits=3, seed=0)
    mlp = meta_classify(feats, t, model="mlp", n_splits=3, seed=0)
    assert lr.auroc.mean() > 0.95
    assert mlp.auroc.min() > lr.auroc.mean() - 0.05


def test_threshold_finds_the_separating_cut():
    feats, t = separable()
    table = single_metric_table(feats, t, ["entropy", "net/l2", "noise"], n_splits=4, seed=1)
    assert table.loc["entropy", "auroc"] == 1.0 and table.loc["entropy", "accuracy"] > 0.99
    assert table.loc["net/l2", "auroc"] > 0.99
    assert abs(table.loc["noise", "auroc"] - 0.5) < 0.1


@pytest.mark.parametrize("model", ["logistic", "threshold"])
def test_pure_noise_gives_auroc_near_half(model):
    rng = np.random.default_rng(5)
    n = 4000
    t = np.r_[np.ones(n // 2, int), np.zeros(n // 2, int)]
    feats = {f"f{i}": rng.standard_normal(n) for i in range(1 if model == "threshold" else 5)}
    res = meta_classify(feats, t, model=model, n_splits=5, seed=0)
    # 2000 test inputs per split: the AUROC of an uninformative score has std ~ 0.013
    assert abs(res.auroc.mean() - 0.5) < 0.03
    assert abs(res.accuracy.mean() - 0.5) < 0.04


def test_threshold_classifier_matches_brute_force():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 12, 200).astype(float)  # many ties
    y = (x + rng.normal(0, 3, 200) > 6).astype(int)
    clf = ThresholdClassifier().fit(x[:, None], y)
    train_acc = (clf.predict(x[:, None]) == y).mean()
    s = clf.sign_ * x
    cuts = np.r_[-np.inf, np.unique(s)]
    best = max(((s > c).astype(int) == y).mean() for c in cuts)
    assert train_acc == pytest.approx(best)
    assert clf.sign_ == 1.0
    flipped = ThresholdClassifier().fit(-x[:, None], y)
    assert flipped.sign_ == -1.0 and (flipped.predict(-x[:, None]) == clf.predict(x[:, None])).all()


def test_signed_log_is_asinh_of_median_scaled_values():
    x = np.array([[-4.0, 0.0], [1.0, 0.0], [2.0, 0.0], [100.0, 0.0]])
    tr = SignedLog().fit(x)
    np.testing.assert_allclose(tr.scale_, [3.0, 1.0])  # median of |-4|, 1, 2, 100; a zero median -> 1
    np.testing.assert_allclose(tr.transform(x)[:, 0], np.arcsinh(x[:, 0] / 3.0))
    assert (tr.transform(-x) == -tr.transform(x)).all()


def test_meta_splits_are_stratified_and_disjoint():
    t = np.r_[np.ones(97, int), np.zeros(23, int)]
    splits = meta_splits(t, n_splits=6, test_size=0.5, seed=3)
    assert len(splits) == 6
    for tr, te in splits:
        assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(t)
        assert abs(t[te].sum() - t.sum() / 2) <= 1  # each half keeps the share of correct predictions
    assert not np.array_equal(splits[0][1], splits[1][1])
    again = meta_splits(t, n_splits=6, test_size=0.5, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again))
    with pytest.raises(ValueError, match="at least 2 correct and 2 wrong"):
        meta_splits(np.r_[np.ones(10, int), 0], n_splits=2)


def test_ood_splits_regimes():
    t = np.r_[np.ones(40, int), np.zeros(10, int)]
    sizes = {"a": 30, "b": 20, "c": 11}
    fits = {r: ood_splits(t, sizes, regime=r, n_splits=3, seed=0) for r in ("unknown", "known", "leave_one_out")}
    assert len(fits["unknown"]) == len(fits["known"]) == 3 and len(fits["leave_one_out"]) == 9
    for f in fits["unknown"]:
        assert f["train_ood"] == {} and set(f["test_ood"]) == set(sizes)
    for f in fits["known"]:
        for name, n in sizes.items():
            tr, te = f["train_ood"][name], f["test_ood"][name]
            assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == n
    held = [list(f["test_ood"])[0] for f in fits["leave_one_out"]]
    assert sorted(held) == sorted(list(sizes) * 3)  # each set held out once per split
    for f in fits["leave_one_out"]:
        (h,) = f["test_ood"]
        assert h not in f["train_ood"]  # never trains on the held-out set
        assert set(f["train_ood"]) == set(sizes) - {h}
    # identical ID splits and OOD test halves in every regime
    for i in range(3):
        u, k = fits["unknown"][i], fits["known"][i]
        assert np.array_equal(u["test_id"], k["test_id"]) and np.array_equal(u["train_id"], k["train_id"])
        for name in sizes:
            assert np.array_equal(u["test_ood"][name], k["test_ood"][name])
            loo = next(f for f in fits["leave_one_out"] if f["split"] == i and name in f["test_ood"])
            assert np.array_equal(loo["test_ood"][name], u["test_ood"][name])
    with pytest.raises(ValueError, match="regime"):
        ood_splits(t, sizes, regime="semi")
    with pytest.raises(ValueError, match="at least two OOD sets"):
        ood_splits(t, {"a": 5}, regime="leave_one_out")


def test_ood_regimes_on_synthetic_data():
    """OOD inputs look confident (low entropy) but have huge gradient norms.

    Trained on ID only, the meta classifier has never seen "low entropy, huge gradient": it scores
    them by entropy and misses them. With known unknowns it learns to use the gradient norm.
    """
    rng = np.random.default_rng(0)
    feats, t = separable(800, seed=1, error_rate=0.1)
    n = 300
    ood = {
        "far": pd.DataFrame(
            {"entropy": rng.uniform(0.0, 0.4, n), "net/l2": rng.uniform(1e3, 1e4, n), "noise": rng.standard_normal(n)}
        ),
        "near": pd.DataFrame(
            {"entropy": rng.uniform(0.0, 0.4, n), "net/l2": rng.uniform(1e3, 1e4, n), "noise": rng.standard_normal(n)}
        ),
    }
    kw = dict(columns=["entropy", "net/l2"], n_splits=3, seed=0)
    entropy_only = ood_meta_classify(feats, t, ood, regime="unknown", **{**kw, "columns": ["entropy"]})
    known = ood_meta_classify(feats, t, ood, regime="known", **kw)
    loo = ood_meta_classify(feats, t, ood, regime="leave_one_out", **kw)
    assert (entropy_only.table["auroc"] < 0.75).all()  # entropy alone cannot see these OOD inputs
    assert (known.table["auroc"] > 0.99).all()
    assert (loo.table["auroc"] > 0.99).all()  # the other set teaches the same pattern
    assert set(known.roc) == {"far", "near"} and known.roc["far"][0].sum() == 400
    assert list(known.table.columns) == ["auroc", "auroc_std", "auroc_meta", "auroc_meta_std"]


def test_feature_matrix_checks():
    cols = {"a": torch.arange(3.0), "b": np.array([1.0, 2.0, 3.0])}
    np.testing.assert_array_equal(feature_matrix(cols, ["b", "a"]), [[1, 0], [2, 1], [3, 2]])
    with pytest.raises(ValueError, match="unknown feature"):
        feature_matrix(cols, ["c"])
    with pytest.raises(ValueError, match="different lengths"):
        feature_matrix({"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="NaN"):
        feature_matrix({"a": np.array([1.0, np.nan])})
    with pytest.raises(ValueError, match="binary"):
        meta_classify(cols, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="model"):
        meta_classify(cols, np.array([0, 1, 1]), model="forest")
