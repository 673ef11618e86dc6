"""Tests for ualib.justification.sparse_gp: SGPR predictions and bound against dense float64 numpy computations of
the same Titsias equations, against an exact GP when every training point is an inducing point, the
exact decomposition of the predictive mean into per-example weights, real inducing examples, and the
SVGP option against GPyTorch's own predictive distribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ualib.justification.sparse_gp import SparseGP, rbf_kernel, select_inducing, titsias_bound

# small float64 linear algebra is much slower with two threads on a busy 2-core machine
pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n=40, d=3, k=3, seed=0, sep=2.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)
    centres = rng.normal(size=(k, d)) * sep
    x = centres[y] + rng.normal(size=(n, d))
    return torch.tensor(x), torch.tensor(y)


def _k_np(a, b, ls, s2):
    a, b = a / ls, b / ls
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)  # naive, independent of rbf_kernel's expansion
    return s2 * np.exp(-0.5 * d2)


LS = np.array([0.9, 1.7, 1.2])
S2, NOISE = 0.8, 0.05


def _fixed_gp(x, y, idx, jitter):
    return SparseGP(len(idx), iterations=0, jitter=jitter).fit(
        x, y, inducing_index=idx, lengthscale=torch.tensor(LS), outputscale=S2, noise=NOISE
    )


def test_sgpr_matches_dense_titsias_equations():
    x, y = _data()
    xs, _ = _data(n=15, seed=1)
    idx = torch.tensor([0, 1, 2, 5, 8, 13, 21, 34])
    jitter = 1e-8
    gp = _fixed_gp(x, y, idx, jitter)
    pred = gp.predict(xs)
    X, Xs, Y = x.numpy(), xs.numpy(), np.eye(3)[y.numpy()]
    Z = X[idx.numpy()]
    noise = NOISE + 1e-6  # the noise floor SparseGP adds to every noise value
    Kzz = _k_np(Z, Z, LS, S2) + jitter * S2 * np.eye(len(Z))
    Kzx, Ksz = _k_np(Z, X, LS, S2), _k_np(Xs, Z, LS, S2)
    Sigma = np.linalg.inv(Kzz + Kzx @ Kzx.T / noise)
    mean = Ksz @ Sigma @ Kzx @ Y / noise
    var = S2 - np.einsum("bp,pq,bq->b", Ksz, np.linalg.inv(Kzz) - Sigma, Ksz)
    np.testing.assert_allclose(pred.mean.numpy(), mean, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(pred.variance.numpy(), var, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gp.predict(xs, include_noise=True).variance.numpy(), var + noise, rtol=1e-6, atol=1e-9)
    # chunked queries give the same numbers
    gp.batch_size = 4
    torch.testing.assert_close(gp.predict(xs).mean, pred.mean)


def test_sgpr_with_all_points_is_the_exact_gp():
    x, y = _data(n=30)
    xs, _ = _data(n=10, seed=2)
    gp = _fixed_gp(x, y, torch.arange(30), jitter=0.0)
    X, Xs, Y = x.numpy(), xs.numpy(), np.eye(3)[y.numpy()]
    noise = NOISE + 1e-6
    C = _k_np(X, X, LS, S2) + noise * np.eye(30)
    Ks = _k_np(Xs, X, LS, S2)
    mean = Ks @ np.linalg.solve(C, Y)
    var = S2 - np.einsum("bn,bn->b", Ks, np.linalg.solve(C, Ks.T).T)
    pred = gp.predict(xs)
    np.testing.assert_allclose(pred.mean.numpy(), mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(pred.variance.numpy(), var, rtol=1e-5, atol=1e-8)
    # with Z = X the collapsed bound equals the exact log marginal likelihood
    sign, logdet = np.linalg.slogdet(C)
    lml = sum(-0.5 * Y[:, k] @ np.linalg.solve(C, Y[:, k]) - 0.5 * logdet - 15 * np.log(2 * np.pi) for k in range(3))
    b = titsias_bound(
        x,
        torch.tensor(Y),
        x,
        torch.tensor(LS),
        torch.tensor(S2, dtype=torch.float64),
        torch.tensor(noise, dtype=torch.float64),
        jitter=0.0,
    )
    assert float(b) == pytest.approx(lml, rel=1e-8)


def test_bound_matches_numpy():
    x, y = _data(n=25)
    Y = np.eye(3)[y.numpy()]
    X = x.numpy()
    Z = X[[0, 3, 7, 11, 19]]
    noise = 0.3
    Kzz = _k_np(Z, Z, LS, S2)
    Kzx = _k_np(Z, X, LS, S2)
    Q = Kzx.T @ np.linalg.solve(Kzz, Kzx)
    C = Q + noise * np.eye(25)
    _, logdet = np.linalg.slogdet(C)
    ref = sum(-0.5 * Y[:, k] @ np.linalg.solve(C, Y[:, k]) - 0.5 * logdet - 12.5 * np.log(2 * np.pi) for k in range(3))
    ref -= 3 * np.trace(_k_np(X, X, LS, S2) - Q) / (2 * noise)
    b = titsias_bound(
        x,
        torch.tensor(Y),
        torch.tensor(Z),
        torch.tensor(LS),
        torch.tensor(S2, dtype=torch.float64),
        torch.tensor(noise, dtype=torch.float64),
        jitter=0.0,
    )
    assert float(b) == pytest.approx(ref, rel=1e-9)


def test_isotropic_kernel_matches_dense_equations():
    x, y = _data()
    xs, _ = _data(n=6, seed=1)
    idx = torch.tensor([0, 1, 2, 7, 9])
    gp = SparseGP(5, ard=False, iterations=0, jitter=0.0).fit(
        x, y, inducing_index=idx, lengthscale=1.3, outputscale=S2, noise=NOISE
    )
    assert gp.lengthscale_.shape == (1,)
    X, Y, Z, noise = x.numpy(), np.eye(3)[y.numpy()], x.numpy()[idx.numpy()], NOISE + 1e-6
    Kzx, Ksz = _k_np(Z, X, 1.3, S2), _k_np(xs.numpy(), Z, 1.3, S2)
    Sigma = np.linalg.inv(_k_np(Z, Z, 1.3, S2) + Kzx @ Kzx.T / noise)
    np.testing.assert_allclose(gp.predict(xs).mean.numpy(), Ksz @ Sigma @ Kzx @ Y / noise, rtol=1e-7, atol=1e-9)
    # a fitted isotropic GP keeps one lengthscale
    assert SparseGP(5, ard=False, iterations=3).fit(x, y).lengthscale_.shape == (1,)
    with pytest.raises(ValueError, match="lengthscale"):
        SparseGP(5, ard=False, iterations=0).fit(x, y, lengthscale=torch.ones(3))


def test_rbf_kernel_against_naive():
    a, b = torch.randn(5, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    ref = _k_np(a.numpy(), b.numpy(), LS, S2)
    np.testing.assert_allclose(
        rbf_kernel(a, b, torch.tensor(LS), torch.tensor(S2, dtype=torch.float64)).numpy(), ref, rtol=1e-12
    )


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    x, y = _data(n=300, d=4, k=4, seed=3)
    gp = SparseGP(24, iterations=15, seed=0).fit(x.float(), y)
    return gp, x, y


def test_weights_sum_to_predictive_mean(fitted):
    gp, x, _ = fitted
    xs, _ = _data(n=20, d=4, k=4, seed=4)
    pred = gp.predict(xs)
    w = gp.contributions(xs)
    assert w.shape == (20, 24, 4)
    torch.testing.assert_close(w.sum(1), pred.mean, rtol=1e-10, atol=1e-10)
    j = gp.justify(xs, n=3)
    assert torch.equal(j.classes, pred.predicted)
    torch.testing.assert_close(j.total, pred.mean.gather(1, j.classes[:, None]).squeeze(1), rtol=1e-10, atol=1e-10)
    # the reported weights are the largest / smallest entries of w for the class, by training index
    for b in range(20):
        wb = w[b, :, j.classes[b]].numpy()
        order = np.argsort(-wb)
        np.testing.assert_allclose(j.support_weight[b].numpy(), wb[order[:3]])
        np.testing.assert_allclose(j.oppose_weight[b].numpy(), wb[order[::-1][:3]])
        assert torch.equal(j.support_index[b], gp.inducing_index_[torch.tensor(order[:3].copy())])
    # explaining another class: same identity
    other = (j.classes + 1) % 4
    j2 = gp.justify(xs, n=2, classes=other)
    torch.testing.assert_close(j2.total, pred.mean.gather(1, other[:, None]).squeeze(1), rtol=1e-10, atol=1e-10)


def test_inducing_points_are_real_training_examples(fitted):
    gp, x, y = fitted
    idx = gp.inducing_index_
    assert len(torch.unique(idx)) == 24
    assert torch.equal(gp.z_, x.float().double()[idx])  # fixed during fitting: bitwise the examples
    assert torch.equal(gp.inducing_y_, y[idx])
    counts = torch.bincount(y, minlength=4).double()
    got = torch.bincount(y[idx], minlength=4).double()
    assert (got - counts / counts.sum() * 24).abs().max() < 1.0 + 1e-9  # class-stratified


def test_select_inducing_snaps_to_nearest_member():
    x, y = _data(n=200, d=2, k=2, seed=5)
    idx = select_inducing(x, y, 6, seed=1)
    assert len(idx) == len(torch.unique(idx)) == 6
    # with as many centres as members the whole class is chosen
    idx_all = select_inducing(x[:10], torch.zeros(10, dtype=torch.long), 10)
    assert sorted(idx_all.tolist()) == list(range(10))
    # deterministic in the seed
    assert torch.equal(idx, select_inducing(x, y, 6, seed=1))
    with pytest.raises(ValueError, match="num_inducing"):
        select_inducing(x, y, 201)


def test_fitting_increases_the_bound_and_uncertainty_grows_off_data():
    x, y = _data(n=200, d=3, k=3, seed=6, sep=6.0)
    gp0 = SparseGP(16, iterations=0).fit(x, y)
    gp = SparseGP(16, iterations=20).fit(x, y, inducing_index=gp0.inducing_index_)
    init = titsias_bound(
        x, torch.nn.functional.one_hot(y).double(), gp0.z_, gp0.lengthscale_, gp0.outputscale_, gp0.noise_
    )
    assert gp.bound_ > float(init)
    far = x[:10] + 100.0
    pf, pn = gp.predict(far), gp.predict(x[:10])
    torch.testing.assert_close(pf.variance, gp.outputscale_.expand(10), rtol=1e-6, atol=1e-12)
    assert (pf.mean.abs() < 1e-8).all()
    assert pn.variance.max() < 0.5 * float(gp.outputscale_)
    # accuracy on training data is high for separated clusters
    assert (gp.predict(x).predicted == y).float().mean() >= 0.95


def test_svgp_option_matches_gpytorch_predictive():
    import gpytorch

    x, y = _data(n=120, d=3, k=3, seed=7)
    gp = SparseGP(12, likelihood="softmax", svgp_epochs=3, svgp_batch_size=64, seed=0).fit(x, y)
    xs, _ = _data(n=9, d=3, k=3, seed=8)
    pred = gp.predict(xs)
    with torch.no_grad(), gpytorch.settings.variational_cholesky_jitter(gp.jitter):
        ref = gp._svgp_model(xs.double())
    torch.testing.assert_close(pred.mean, ref.mean, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(pred.variance, ref.variance.mean(-1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gp.contributions(xs).sum(1), pred.mean, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(pred.probs.sum(1), torch.ones(9, dtype=torch.float64))
    assert torch.equal(gp.z_, x[gp.inducing_index_])


def test_determinism_and_memory():
    x, y = _data(n=150, d=3, k=3, seed=9)
    a = SparseGP(10, iterations=5, seed=3).fit(x, y)
    b = SparseGP(10, iterations=5, seed=3).fit(x, y)
    assert torch.equal(a.predict(x[:5]).mean, b.predict(x[:5]).mean)
    P, d, K = 10, 3, 3
    assert a.memory_bytes() == 8 * (P * d + P * K + 2 * P * P + d + 2) + 8 * 2 * P


def test_errors():
    x, y = _data(n=30)
    with pytest.raises(ValueError, match="likelihood"):
        SparseGP(likelihood="probit")
    with pytest.raises(RuntimeError, match="fit"):
        SparseGP().predict(x)
    gp = SparseGP(5, iterations=0).fit(x, y)
    with pytest.raises(ValueError, match="3 features"):
        gp.predict(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same length"):
        SparseGP(5).fit(x, y[:-1])
    with pytest.raises(ValueError, match="distinct"):
        SparseGP(5).fit(x, y, inducing_index=torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        gp.predict(torch.full((2, 3), float("nan")))
