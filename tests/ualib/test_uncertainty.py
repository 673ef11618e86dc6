"""Tests for ualib.uncertainty against float64 naive loops, closed forms and autograd checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ualib import uncertainty as U

SETTINGS = settings(max_examples=50, deadline=None)
MODES = ("smooth", "peaked", "zeros", "shared_zeros", "onehot", "identical")


# ----------------------------------------------------------------------------------------------
# generators and naive references
# ----------------------------------------------------------------------------------------------


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def make_probs(seed: int, s: int, b: int, k: int, mode: str) -> np.ndarray:
    """Random ``[S, B, K]`` float64 probabilities; some modes contain exact zeros."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(s, b, k))
    if mode == "peaked":  # near one-hot, no exact zeros in float64
        z = 25.0 * z
    elif mode in ("zeros", "shared_zeros"):
        shape = (1, b, k) if mode == "shared_zeros" else (s, b, k)
        mask = rng.random(shape) < 0.5
        keep = rng.integers(0, k, size=shape[:-1])  # one unmasked class per row
        np.put_along_axis(mask, keep[..., None], False, axis=-1)
        z = np.where(np.broadcast_to(mask, (s, b, k)), -np.inf, z)  # softmax -> exact zeros
    elif mode == "onehot":
        p = np.zeros((s, b, k))
        idx = rng.integers(0, k, size=(s, b))
        np.put_along_axis(p, idx[..., None], 1.0, axis=-1)
        return p
    elif mode == "identical":
        z = np.broadcast_to(z[:1], (s, b, k)).copy()
    return _softmax(z)


def xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0.0 else x * math.log(y)


def naive_measures(p: np.ndarray) -> dict[str, np.ndarray]:
    """Plain Python loops over (s, b, k), with 0 log 0 = 0."""
    s_, b_, k_ = p.shape
    out = {name: np.zeros(b_) for name in ("total", "aleatoric", "epistemic", "variance")}
    terms = {name: np.zeros(p.shape) for name in ("total", "aleatoric", "epistemic", "variance")}
    for b in range(b_):
        pbar = [sum(p[s, b, k] for s in range(s_)) / s_ for k in range(k_)]
        out["total"][b] = -sum(xlogy(pbar[k], pbar[k]) for k in range(k_))
        for s in range(s_):
            for k in range(k_):
                x = p[s, b, k]
                terms["total"][s, b, k] = -xlogy(x, pbar[k]) / s_
                terms["aleatoric"][s, b, k] = -xlogy(x, x) / s_
                terms["epistemic"][s, b, k] = (0.0 if x == 0 else x * math.log(x / pbar[k])) / s_
                terms["variance"][s, b, k] = (x - pbar[k]) ** 2 / s_
        out["aleatoric"][b] = sum(-sum(xlogy(p[s, b, k], p[s, b, k]) for k in range(k_)) for s in range(s_)) / s_
        out["epistemic"][b] = terms["epistemic"][:, b, :].sum()
        out["variance"][b] = sum(sum((p[s, b, k] - pbar[k]) ** 2 for s in range(s_)) / s_ for k in range(k_))
    return {"measures": out, "terms": terms}


@st.composite
def prob_tensors(draw, modes=MODES):
    s = draw(st.integers(1, 5))
    b = draw(st.integers(1, 4))
    k = draw(st.integers(2, 6))
    mode = draw(st.sampled_from(modes))
    seed = draw(st.integers(0, 2**32 - 1))
    return torch.from_numpy(make_probs(seed, s, b, k, mode))


# ----------------------------------------------------------------------------------------------
# sample-based measures
# ----------------------------------------------------------------------------------------------

FUNCS = {
    "total": U.total_entropy,
    "aleatoric": U.expected_entropy,
    "epistemic": U.mutual_information,
    "variance": lambda p: U.predictive_variance(p, "sum"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", U.UNCERTAINTY_KINDS)
def test_measures_match_naive_loop(mode, kind):
    p = make_probs(7, 4, 3, 5, mode)
    ref = naive_measures(p)
    t = torch.from_numpy(p)
    np.testing.assert_allclose(FUNCS[kind](t).numpy(), ref["measures"][kind], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(U.uncertainty(t, kind).numpy(), ref["measures"][kind], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(U.decompose(t, kind).numpy(), ref["terms"][kind], rtol=1e-12, atol=1e-14)


def test_known_values():
    # two confident members that disagree: total = log 2, aleatoric = 0, epistemic = log 2
    p = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]], dtype=torch.float64)
    assert U.total_entropy(p).item() == pytest.approx(math.log(2), abs=1e-15)
    assert U.expected_entropy(p).item() == 0.0
    assert U.mutual_information(p).item() == pytest.approx(math.log(2), abs=1e-15)
    assert U.predictive_variance(p, "none").numpy() == pytest.approx(np.array([[0.25, 0.25]]))
    # identical uniform members: total = aleatoric = log K, epistemic = 0
    q = torch.full((3, 1, 4), 0.25, dtype=torch.float64)
    assert U.total_entropy(q).item() == pytest.approx(math.log(4), abs=1e-15)
    assert U.expected_entropy(q).item() == pytest.approx(math.log(4), abs=1e-15)
    assert U.mutual_information(q).item() == 0.0


@SETTINGS
@given(prob_tensors())
def test_decomposition_identities(p):
    tot, ale, epi = U.total_entropy(p), U.expected_entropy(p), U.mutual_information(p)
    torch.testing.assert_close(tot, ale + epi, rtol=0, atol=1e-12)
    assert (epi >= -1e-12).all()
    assert (tot <= math.log(p.shape[-1]) + 1e-12).all() and (ale >= 0).all()
    for kind in U.DECOMPOSITION_KINDS:
        r = U.decompose(p, kind)
        assert r.shape == p.shape
        torch.testing.assert_close(r.sum(dim=(0, 2)), U.uncertainty(p, kind), rtol=0, atol=1e-12)
    # term by term: R^tot = R^ale + R^epi, and per-member rows of R^epi are KL >= 0
    torch.testing.assert_close(
        U.decompose(p, "total"), U.decompose(p, "aleatoric") + U.decompose(p, "epistemic"), rtol=0, atol=1e-12
    )
    assert (U.decompose(p, "epistemic").sum(-1) >= -1e-12).all()


@SETTINGS
@given(prob_tensors())
def test_gradients_finite_with_zeros(p):
    p = p.clone().requires_grad_(True)
    w = torch.linspace(0.5, 1.5, p.shape[1], dtype=p.dtype)
    outs = [U.uncertainty(p, kind) for kind in U.UNCERTAINTY_KINDS]
    outs += [U.decompose(p, kind).sum(dim=(0, 2)) for kind in U.DECOMPOSITION_KINDS]
    outs += [U.predictive_variance(p, "max"), U.predictive_variance(p, "none").sum(-1)]
    for out in outs:
        assert torch.isfinite(out).all()
        (g,) = torch.autograd.grad((out * w).sum(), p)
        assert torch.isfinite(g).all()


def test_gradcheck_through_softmax():
    torch.manual_seed(0)
    z = torch.randn(3, 2, 3, dtype=torch.float64, requires_grad=True)
    for kind in U.UNCERTAINTY_KINDS:
        assert torch.autograd.gradcheck(lambda z, kind=kind: U.uncertainty(torch.softmax(z, -1), kind), (z,))
        assert torch.autograd.gradcheck(
            lambda z, kind=kind: U.decompose(torch.softmax(z, -1), kind), (z,), fast_mode=True
        )
    alpha = (torch.rand(2, 4, dtype=torch.float64) * 5 + 1).requires_grad_(True)
    for f in (U.vacuity, U.dissonance, U.belief, U.expected_probability):
        assert torch.autograd.gradcheck(f, (alpha,))


@pytest.mark.parametrize("kind", U.UNCERTAINTY_KINDS)
def test_zero_probability_gradient_is_the_limit(kind):
    """An exact zero (logit -inf) gives the limit of the gradient at tiny probabilities."""
    z = torch.tensor([[[2.0, 0.5, -1.0, 0.0]], [[0.3, 1.0, 0.2, 0.0]]], dtype=torch.float64)
    grads = []
    for last in (-math.inf, -80.0):
        zz = z.clone()
        zz[0, 0, 3] = last
        zz[1, 0, 3] = last
        zz.requires_grad_(True)
        (g,) = torch.autograd.grad(U.uncertainty(torch.softmax(zz, -1), kind).sum(), zz)
        grads.append(g[..., :3])  # d/dz at the -inf logit is 0 vs ~1e-33; compare the finite ones
        assert torch.isfinite(g).all()
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-12)


def test_predictive_variance_vs_numpy():
    p = make_probs(3, 6, 5, 4, "smooth")
    t = torch.from_numpy(p)
    v = np.var(p, axis=0)
    np.testing.assert_allclose(U.predictive_variance(t, "none").numpy(), v, rtol=1e-12)
    np.testing.assert_allclose(U.predictive_variance(t, "sum").numpy(), v.sum(-1), rtol=1e-12)
    np.testing.assert_allclose(U.predictive_variance(t, "max").numpy(), v.max(-1), rtol=1e-12)
    np.testing.assert_allclose(U.predictive_variance(t).numpy(), v.sum(-1), rtol=1e-12)


def test_float32_agrees_with_float64():
    p64 = torch.from_numpy(make_probs(11, 5, 4, 6, "smooth"))
    p32 = p64.float()
    for kind in U.UNCERTAINTY_KINDS:
        out = U.uncertainty(p32, kind)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double(), U.uncertainty(p64, kind), rtol=0, atol=2e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    p = torch.from_numpy(make_probs(5, 4, 3, 5, "zeros"))
    alpha = torch.tensor([[1.0, 3.0, 2.0], [1.0, 1.0, 9.0]], dtype=torch.float64)
    for kind in U.UNCERTAINTY_KINDS:
        got = U.uncertainty(p.cuda(), kind)
        assert got.device.type == "cuda"
        torch.testing.assert_close(got.cpu(), U.uncertainty(p, kind))
        torch.testing.assert_close(U.decompose(p.cuda(), kind).cpu(), U.decompose(p, kind))
    torch.testing.assert_close(U.dissonance(alpha.cuda()).cpu(), U.dissonance(alpha))
    torch.testing.assert_close(U.vacuity(alpha.cuda()).cpu(), U.vacuity(alpha))


# ----------------------------------------------------------------------------------------------
# Dirichlet / Subjective Logic
# ----------------------------------------------------------------------------------------------


def naive_dissonance(alpha: np.ndarray, eps: float) -> np.ndarray:
    """Double loop over the Bal formula of METHODS §2.5 (eps in both denominators, as the group's code)."""
    out = np.zeros(alpha.shape[0])
    for r, a in enumerate(alpha):
        s = float(sum(a))
        bel = [(x - 1.0) / s for x in a]
        diss = 0.0
        for k in range(len(bel)):
            num, den = 0.0, 0.0
            for j in range(len(bel)):
                if j == k:
                    continue
                tot = bel[j] + bel[k] + eps
                bal = 1.0 - abs(bel[j] - bel[k]) / tot if tot > 0 else 0.0
                num += bel[j] * bal
                den += bel[j]
            den += eps
            diss += bel[k] * (num / den if den > 0 else 0.0)
        out[r] = diss
    return out


@st.composite
def alphas(draw):
    b = draw(st.integers(1, 4))
    k = draw(st.integers(2, 7))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(("dense", "sparse", "ties", "huge")))
    rng = np.random.default_rng(seed)
    ev = rng.exponential(3.0, size=(b, k))
    if kind == "sparse":
        ev[rng.random((b, k)) < 0.6] = 0.0
    elif kind == "ties":
        ev = rng.integers(0, 3, size=(b, k)).astype(np.float64)
    elif kind == "huge":
        ev = ev * 1e6
    return torch.from_numpy(ev + 1.0)


@SETTINGS
@given(alphas())
def test_subjective_logic_identities(alpha):
    vac, bel = U.vacuity(alpha), U.belief(alpha)
    torch.testing.assert_close(vac + bel.sum(-1), torch.ones_like(vac), rtol=0, atol=1e-12)
    assert (bel >= 0).all() and (vac > 0).all() and (vac <= 1).all()
    torch.testing.assert_close(U.expected_probability(alpha), alpha / alpha.sum(-1, keepdim=True), rtol=0, atol=0)
    for eps in (1e-7, 0.0):
        d = U.dissonance(alpha, eps=eps)
        assert (d >= 0).all() and (d <= 1).all()
        assert (d <= 1 - vac + 1e-12).all()
        np.testing.assert_allclose(d.numpy(), naive_dissonance(alpha.numpy(), eps), rtol=1e-12, atol=1e-15)


@SETTINGS
@given(alphas())
def test_dirichlet_gradients_finite(alpha):
    a = alpha.clone().requires_grad_(True)
    for f in (
        U.vacuity,
        U.dissonance,
        lambda x: U.dissonance(x, eps=0.0),
        lambda x: U.belief(x).sum(-1),
        lambda x: U.expected_probability(x)[:, 0],
    ):
        (g,) = torch.autograd.grad(f(a).sum(), a)
        assert torch.isfinite(g).all()


def test_dissonance_closed_forms():
    # uniform alpha = a on K classes: b = (a-1)/(K a), Bal = 1, diss = K b * (K-1) b / ((K-1) b + eps)
    for a, k in ((3.0, 4), (2.0, 2), (11.0, 10)):
        alpha = torch.full((1, k), a, dtype=torch.float64)
        b = (a - 1) / (k * a)
        assert U.dissonance(alpha, eps=0.0).item() == pytest.approx((a - 1) / a, rel=1e-14)  # = 1 - vacuity
        want = k * b * (k - 1) * b / ((k - 1) * b + 1e-7)
        assert U.dissonance(alpha).item() == pytest.approx(want, rel=1e-14)
    # a = 3, K = 4: b = 1/6 each, diss = 2/3 exactly without eps
    assert U.dissonance(torch.full((1, 4), 3.0, dtype=torch.float64), eps=0.0).item() == pytest.approx(2 / 3, rel=1e-15)
    # K = 2: diss = b1 + b2 - |b1 - b2| = 2 min(b1, b2); alpha = (3, 2): b = (0.4, 0.2) -> 0.4
    assert U.dissonance(torch.tensor([[3.0, 2.0]], dtype=torch.float64), eps=0.0).item() == pytest.approx(
        0.4, rel=1e-15
    )
    # all evidence on one class, or no evidence at all: no conflict
    alpha = torch.tensor([[1.0, 50.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    for eps in (0.0, 1e-7):
        assert U.dissonance(alpha, eps=eps).tolist() == [0.0, 0.0]
    assert U.vacuity(alpha).tolist() == pytest.approx([4 / 53, 1.0])


def test_dissonance_float32():
    alpha = torch.tensor([[1.0, 3.0, 2.5, 1.0], [4.0, 4.0, 1.0, 9.0]])
    d = U.dissonance(alpha)
    assert d.dtype == torch.float32
    np.testing.assert_allclose(d.numpy(), naive_dissonance(alpha.double().numpy(), 1e-7), rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------


def test_errors_on_bad_probs():
    good = torch.from_numpy(make_probs(0, 2, 3, 4, "smooth"))
    logits = torch.randn(2, 3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="logits"):
        U.total_entropy(logits)
    with pytest.raises(ValueError, match="logits"):
        U.mutual_information(torch.exp(logits))  # positive but unnormalised
    with pytest.raises(ValueError, match=r"\[S, B, K\].*unsqueeze"):
        U.expected_entropy(good[0])
    with pytest.raises(ValueError, match="3 dimensions"):
        U.decompose(good[None], "total")
    bad = good.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        U.uncertainty(bad, "epistemic")
    with pytest.raises(TypeError, match="floating"):
        U.total_entropy(torch.ones(2, 3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        U.total_entropy(good.numpy())
    with pytest.raises(ValueError, match="at least 2 classes"):
        U.total_entropy(torch.ones(2, 3, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="kind must be one of"):
        U.uncertainty(good, "entropy")
    with pytest.raises(ValueError, match="kind must be one of"):
        U.decompose(good, "mi")
    with pytest.raises(ValueError, match="reduce must be one of"):
        U.predictive_variance(good, "mean")


def test_errors_on_bad_alpha():
    with pytest.raises(ValueError, match="strictly positive"):
        U.vacuity(torch.tensor([[0.0, 2.0]]))
    with pytest.raises(ValueError, match="evidence"):
        U.belief(torch.tensor([[0.5, 2.0]]))
    with pytest.raises(ValueError, match="evidence"):
        U.dissonance(torch.tensor([[0.5, 2.0]]))
    assert U.vacuity(torch.tensor([[0.5, 2.0]])).item() == pytest.approx(0.8)  # alpha > 0 is enough here
    with pytest.raises(ValueError, match="2 dimensions"):
        U.dissonance(torch.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        U.expected_probability(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="eps"):
        U.dissonance(torch.ones(1, 3), eps=-1.0)
