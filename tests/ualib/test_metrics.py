"""Tests for ualib.metrics against scikit-learn, brute-force scans, naive loops and hand values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from ualib import metrics as M

SETTINGS = settings(max_examples=50, deadline=None)


def random_probs(rng: np.random.Generator, b: int, k: int, temp: float = 1.0) -> np.ndarray:
    z = rng.normal(size=(b, k)) * temp
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# accuracy, NLL
# ----------------------------------------------------------------------------------------------

P4 = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.25, 0.5, 0.25]])
Y4 = np.array([0, 2, 2, 1])


def test_accuracy_nll_hand_values():
    assert M.accuracy(P4, Y4) == 0.75  # predictions 0, 1, 2, 1
    want = -(math.log(0.7) + math.log(0.3) + math.log(0.4) + math.log(0.5)) / 4
    assert M.nll(P4, Y4) == pytest.approx(want, rel=1e-15)
    # a zero true-class probability is floored at eps
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert M.nll(p, np.array([1, 0])) == pytest.approx((-math.log(1e-12) + math.log(2)) / 2, rel=1e-15)
    assert M.nll(p, np.array([1, 0]), eps=1e-3) == pytest.approx((-math.log(1e-3) + math.log(2)) / 2, rel=1e-15)
    # arg-max ties go to the lowest index
    assert M.accuracy(np.array([[0.5, 0.5]]), np.array([0])) == 1.0


# ----------------------------------------------------------------------------------------------
# calibration
# ----------------------------------------------------------------------------------------------


def naive_ece(p: np.ndarray, y: np.ndarray, n_bins: int) -> float:
    n = len(y)
    total = 0.0
    for m in range(n_bins):
        lo, hi = m / n_bins, (m + 1) / n_bins
        members = [i for i in range(n) if (lo < p[i].max() <= hi) or (m == 0 and p[i].max() == 0)]
        if not members:
            continue
        acc = sum(float(np.argmax(p[i]) == y[i]) for i in members) / len(members)
        conf = sum(float(p[i].max()) for i in members) / len(members)
        total += len(members) / n * abs(acc - conf)
    return total


def test_ece_hand_example():
    p = np.array([[0.9, 0.1], [0.25, 0.75], [0.65, 0.35], [0.45, 0.55]])
    y = np.array([0, 0, 0, 0])  # correct, wrong, correct, wrong
    # n_bins = 5: 0.55 -> (0.4, 0.6]; 0.75, 0.65 -> (0.6, 0.8]; 0.9 -> (0.8, 1]
    # ECE = 1/4 |0 - 0.55| + 2/4 |0.5 - 0.7| + 1/4 |1 - 0.9| = 0.1375 + 0.1 + 0.025
    assert M.ece(p, y, n_bins=5) == pytest.approx(0.2625, abs=1e-15)
    d = M.reliability_diagram(p, y, n_bins=5)
    np.testing.assert_array_equal(d["bin_count"], [0, 0, 1, 2, 1])
    np.testing.assert_allclose(d["bin_confidence"], [np.nan, np.nan, 0.55, 0.7, 0.9], rtol=1e-15)
    np.testing.assert_allclose(d["bin_accuracy"], [np.nan, np.nan, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(d["bin_edges"], np.linspace(0, 1, 6))
    # n_bins = 1: |acc - mean conf| = |0.5 - 2.85 / 4|
    assert M.ece(p, y, n_bins=1) == pytest.approx(0.2125, abs=1e-15)


def test_bins_are_right_closed():
    d = M.reliability_diagram(np.array([[0.5, 0.5], [0.0, 1.0]]), np.array([0, 1]), n_bins=2)
    np.testing.assert_array_equal(d["bin_count"], [1, 1])  # 0.5 -> (0, 0.5]; 1.0 -> (0.5, 1]


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(2, 5), st.sampled_from([1, 3, 10, 15]))
def test_ece_vs_naive_loop(seed, b, k, n_bins):
    rng = np.random.default_rng(seed)
    p = random_probs(rng, b, k, temp=rng.choice([0.3, 2.0, 8.0]))
    y = rng.integers(0, k, size=b)
    assert M.ece(p, y, n_bins) == pytest.approx(naive_ece(p, y, n_bins), abs=1e-12)
    d = M.reliability_diagram(p, y, n_bins)
    assert d["bin_count"].sum() == b
    full = d["bin_count"] > 0
    assert np.isnan(d["bin_accuracy"][~full]).all() and np.isnan(d["bin_confidence"][~full]).all()
    from_diagram = np.nansum(d["bin_count"] / b * np.abs(d["bin_accuracy"] - d["bin_confidence"]))
    assert M.ece(p, y, n_bins) == pytest.approx(from_diagram, abs=1e-15)


# ----------------------------------------------------------------------------------------------
# OOD detection
# ----------------------------------------------------------------------------------------------


def brute_fpr_at_tpr(s_in: np.ndarray, s_out: np.ndarray, tpr: float) -> float:
    """Scan every candidate threshold; flag OOD when score >= t; best FPR with TPR >= tpr."""
    best = 1.0
    for t in np.concatenate([s_in, s_out, [np.inf]]):
        tp = np.mean(s_out >= t)
        fp = np.mean(s_in >= t)
        if tp >= tpr:
            best = min(best, fp)
    return best


@st.composite
def score_pairs(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n_in = draw(st.integers(1, 40))
    n_out = draw(st.integers(1, 40))
    ties = draw(st.sampled_from(["none", "some", "heavy"]))
    rng = np.random.default_rng(seed)
    s_in = rng.normal(0.0, 1.0, n_in)
    s_out = rng.normal(draw(st.sampled_from([0.0, 1.0, 3.0])), 1.0, n_out)
    if ties == "some":
        s_in, s_out = np.round(s_in, 1), np.round(s_out, 1)
    elif ties == "heavy":
        s_in, s_out = np.round(s_in), np.round(s_out)
    return s_in, s_out


@SETTINGS
@given(score_pairs())
def test_ood_metrics_vs_sklearn_and_brute_force(pair):
    s_in, s_out = pair
    scores = np.concatenate([s_in, s_out])
    is_out = np.r_[np.zeros(s_in.size), np.ones(s_out.size)]
    assert M.auroc(s_in, s_out) == pytest.approx(roc_auc_score(is_out, scores), abs=1e-12)
    assert M.aupr_out(s_in, s_out) == pytest.approx(average_precision_score(is_out, scores), abs=1e-12)
    assert M.aupr_in(s_in, s_out) == pytest.approx(average_precision_score(1 - is_out, -scores), abs=1e-12)
    for tpr in (0.95, 0.5, 1.0, 0.3):
        assert M.fpr_at_tpr(s_in, s_out, tpr) == brute_fpr_at_tpr(s_in, s_out, tpr)
    d = M.ood_metrics(s_in, s_out)
    assert d == {
        "auroc": M.auroc(s_in, s_out),
        "aupr_in": M.aupr_in(s_in, s_out),
        "aupr_out": M.aupr_out(s_in, s_out),
        "fpr_at_tpr": M.fpr_at_tpr(s_in, s_out, 0.95),
    }


def test_auroc_mann_whitney_pairs_and_infinities():
    s_in = np.array([0.1, 0.4, 0.4, 2.0])
    s_out = np.array([0.4, 1.0, 3.0])
    # pairwise: out 0.4 beats 0.1, ties 0.4 twice (2 x 1/2), loses to 2.0 -> 2; 1.0 -> 3; 3.0 -> 4
    assert M.auroc(s_in, s_out) == pytest.approx(9 / 12, abs=1e-15)
    assert M.auroc(s_out, s_in) == pytest.approx(3 / 12, abs=1e-15)
    # only the order matters, so +-inf behave like very large finite scores
    a = np.array([-np.inf, 0.0, 1.0, np.inf])
    b = np.array([np.inf, 2.0, -np.inf])
    fin = lambda x: np.where(np.isinf(x), np.sign(x) * 1e300, x)  # noqa: E731
    for f in (M.auroc, M.aupr_in, M.aupr_out, M.fpr_at_tpr):
        assert f(a, b) == f(fin(a), fin(b))


def test_fpr_at_tpr_hand_and_conservative_ties():
    s_out = np.arange(1.0, 21.0)  # 20 OOD scores: TPR >= 0.95 needs t <= 2
    s_in = np.array([0.0, 1.0, 2.0, 2.0, 5.0])
    # t* = 2: in-distribution scores >= 2 are 2, 2, 5 (ties at the threshold count as false positives)
    assert M.fpr_at_tpr(s_in, s_out) == pytest.approx(3 / 5)
    assert M.fpr_at_tpr(s_in, s_out, tpr=1.0) == pytest.approx(4 / 5)
    # everything tied: detecting any OOD input flags every in-distribution input
    assert M.fpr_at_tpr(np.zeros(5), np.zeros(3), tpr=0.1) == 1.0
    # perfect separation
    assert M.fpr_at_tpr(np.zeros(5), np.ones(3)) == 0.0
    assert M.auroc(np.zeros(5), np.ones(3)) == 1.0
    assert M.aupr_in(np.zeros(5), np.ones(3)) == 1.0 and M.aupr_out(np.zeros(5), np.ones(3)) == 1.0


# ----------------------------------------------------------------------------------------------
# risk-coverage
# ----------------------------------------------------------------------------------------------


def naive_curve(conf_sorted_order: list[int], correct: np.ndarray) -> np.ndarray:
    risks, errors = [], 0.0
    for i, idx in enumerate(conf_sorted_order, start=1):
        errors += 1.0 - correct[idx]
        risks.append(errors / i)
    return np.array(risks)


def test_risk_coverage_without_ties_vs_naive():
    rng = np.random.default_rng(0)
    conf = rng.random(30)
    correct = rng.random(30) < 0.7
    cov, risk = M.risk_coverage_curve(conf, correct)
    order = sorted(range(30), key=lambda i: -conf[i])
    np.testing.assert_allclose(cov, np.arange(1, 31) / 30)
    np.testing.assert_allclose(risk, naive_curve(order, correct.astype(float)), rtol=1e-14)
    assert M.aurc(conf, correct) == pytest.approx(naive_curve(order, correct.astype(float)).mean(), rel=1e-14)
    assert risk[-1] == pytest.approx(1 - correct.mean())


def test_aurc_hand_values():
    # perfect ranking of 2 correct then 2 wrong: risks 0, 0, 1/3, 1/2
    assert M.aurc([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]) == pytest.approx((0 + 0 + 1 / 3 + 1 / 2) / 4)
    # worst ranking: risks 1, 1, 2/3, 1/2
    assert M.aurc([0.1, 0.3, 0.8, 0.9], [1, 1, 0, 0]) == pytest.approx((1 + 1 + 2 / 3 + 1 / 2) / 4)


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_risk_coverage_ties_are_the_average_over_tie_orders(seed, n):
    """With tied confidences the curve is the mean over all orderings consistent with the sort."""
    rng = np.random.default_rng(seed)
    conf = rng.integers(0, 3, n).astype(float)
    correct = (rng.random(n) < 0.5).astype(float)
    curves = [
        naive_curve(list(perm), correct)
        for perm in itertools.permutations(range(n))
        if all(conf[perm[i]] >= conf[perm[i + 1]] for i in range(n - 1))
    ]
    want = np.mean(curves, axis=0)
    _, risk = M.risk_coverage_curve(conf, correct)
    np.testing.assert_allclose(risk, want, rtol=1e-12, atol=1e-15)
    assert M.aurc(conf, correct) == pytest.approx(want.mean(), abs=1e-14)
    # independent of the input order
    perm = rng.permutation(n)
    np.testing.assert_allclose(M.risk_coverage_curve(conf[perm], correct[perm])[1], risk, rtol=1e-14)


# ----------------------------------------------------------------------------------------------
# numpy and torch inputs agree; errors
# ----------------------------------------------------------------------------------------------


def test_numpy_and_torch_inputs_agree():
    rng = np.random.default_rng(1)
    p = random_probs(rng, 50, 4)
    y = rng.integers(0, 4, 50)
    s_in, s_out = rng.normal(size=30), rng.normal(1, 1, size=20)
    pt = torch.from_numpy(p).requires_grad_(True)
    yt = torch.from_numpy(y)
    for f in (M.accuracy, M.nll, M.ece):
        assert f(p, y) == f(pt, yt)
        assert isinstance(f(pt, yt), float)
    assert f(p, y) == f(list(map(list, p)), list(y))
    d_np, d_t = M.reliability_diagram(p, y), M.reliability_diagram(pt, yt)
    for key in d_np:
        np.testing.assert_array_equal(d_np[key], d_t[key])
    assert M.ood_metrics(s_in, s_out) == M.ood_metrics(torch.from_numpy(s_in), torch.from_numpy(s_out))
    conf, corr = p.max(1), p.argmax(1) == y
    assert M.aurc(conf, corr) == M.aurc(torch.from_numpy(conf), torch.from_numpy(corr))
    # float32 torch tensors (a softmax output) are accepted and agree to float32 precision
    p32 = torch.softmax(torch.from_numpy(rng.normal(size=(50, 4))).float(), -1)
    assert M.nll(p32, yt) == pytest.approx(M.nll(p32.double().numpy(), y), rel=1e-6)


def test_metric_errors():
    with pytest.raises(ValueError, match="logits"):
        M.accuracy(np.array([[2.0, -1.0], [0.3, 0.1]]), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"probs.mean\(0\)"):
        M.nll(np.full((2, 3, 2), 0.5), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="same length"):
        M.ece(P4, Y4[:3])
    with pytest.raises(TypeError, match="integer class labels"):
        M.accuracy(P4, Y4.astype(float))
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        M.accuracy(P4, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="NaN"):
        M.ece(np.array([[np.nan, 0.5]]), np.array([0]))
    with pytest.raises(ValueError, match="n_bins"):
        M.ece(P4, Y4, n_bins=0)
    with pytest.raises(ValueError, match="NaN"):
        M.auroc(np.array([0.0, np.nan]), np.array([1.0]))
    with pytest.raises(ValueError, match="at least 1"):
        M.aupr_in(np.array([]), np.array([1.0]))
    with pytest.raises(ValueError, match="1 dimension"):
        M.aupr_out(np.zeros((2, 2)), np.array([1.0]))
    with pytest.raises(ValueError, match="tpr"):
        M.fpr_at_tpr(np.zeros(3), np.ones(3), tpr=0.0)
    with pytest.raises(ValueError, match="same length"):
        M.aurc(np.zeros(3), np.ones(2))
    with pytest.raises(ValueError, match="0 and 1"):
        M.risk_coverage_curve(np.zeros(2), np.array([0.0, 0.5]))
    with pytest.raises(TypeError, match="torch.Tensor or a numpy array"):
        M.auroc({1: 2}, np.array([1.0]))
    with pytest.raises(ValueError, match="eps"):
        M.nll(P4, Y4, eps=0.0)


@pytest.mark.parametrize("n_bins", [1, 2, 3, 7, 10, 15, 20, 100])
def test_bin_index_equals_searchsorted_also_on_the_edges(n_bins):
    from ualib.metrics.predictive import _bin_index

    edges = np.linspace(0.0, 1.0, n_bins + 1)
    rng = np.random.default_rng(n_bins)
    conf = np.concatenate([rng.random(20_000), edges, np.nextafter(edges, 2.0), np.nextafter(edges, -1.0).clip(0)])
    expected = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    np.testing.assert_array_equal(_bin_index(conf, edges), expected)
