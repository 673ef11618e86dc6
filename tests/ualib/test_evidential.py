"""Tests of the EDL losses against Monte-Carlo expectations and independent formulas (float64).

Monte-Carlo comparisons use a bound of 5 standard errors estimated from the samples themselves.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from torch.distributions import Dirichlet, kl_divergence

from ualib.evidential import (
    dirichlet_from_logits,
    edl_digamma_loss,
    edl_log_loss,
    edl_loss,
    edl_mse_loss,
    evidence,
    kl_dirichlet_uniform,
)

DT = torch.float64


def _alpha(b: int = 4, k: int = 5, seed: int = 0, low: float = 1.0, high: float = 8.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(b, k, generator=g, dtype=DT)


def _mc(alpha: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n Dirichlet samples per row, [n, B, K]."""
    torch.manual_seed(seed)
    return Dirichlet(alpha).sample((n,))


def _assert_mc(samples: torch.Tensor, exact: torch.Tensor, z: float = 5.0) -> None:
    """samples [n, B] of a quantity whose expectation is exact [B]."""
    n = samples.shape[0]
    se = samples.std(0) / math.sqrt(n)
    assert ((samples.mean(0) - exact).abs() <= z * se).all(), (samples.mean(0), exact, se)


# --------------------------------------------------------------------------------------------------
# evidence and alpha
# --------------------------------------------------------------------------------------------------
def test_evidence_kinds() -> None:
    z = torch.tensor([[-20.0, -1.0, 0.0, 0.5, 3.0, 20.0]], dtype=DT)
    torch.testing.assert_close(evidence(z, "relu"), torch.tensor([[0, 0, 0, 0.5, 3.0, 20.0]], dtype=DT))
    torch.testing.assert_close(evidence(z, "softplus"), torch.log1p(torch.exp(z)))
    want_exp = torch.tensor([[math.exp(-10), math.exp(-1), 1.0, math.exp(0.5), math.exp(3), math.exp(10)]], dtype=DT)
    torch.testing.assert_close(evidence(z, "exp"), want_exp)
    assert evidence(z).equal(evidence(z, "relu"))  # default
    for kind in ("relu", "softplus", "exp"):
        a = dirichlet_from_logits(z, kind)
        assert a.shape == z.shape
        torch.testing.assert_close(a, evidence(z, kind) + 1)
        assert (a >= 1).all()
    assert dirichlet_from_logits(torch.zeros(2, 3, 4)).shape == (2, 3, 4)  # leading axes allowed


# --------------------------------------------------------------------------------------------------
# KL to the uniform Dirichlet
# --------------------------------------------------------------------------------------------------
def test_kl_dirichlet_uniform_matches_torch_distributions() -> None:
    alpha = _alpha(b=16, k=6, seed=1, low=0.05, high=30.0)
    ours = kl_dirichlet_uniform(alpha)
    ref = kl_divergence(Dirichlet(alpha), Dirichlet(torch.ones_like(alpha)))
    assert ours.shape == (16,)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    assert kl_dirichlet_uniform(torch.ones(3, 4, dtype=DT)).abs().max() < 1e-12


@settings(max_examples=40, deadline=None, database=None)
@given(st.lists(st.floats(0.01, 200.0), min_size=2, max_size=8))
def test_kl_and_mse_forms_property(vals: list[float]) -> None:
    alpha = torch.tensor([vals], dtype=DT)
    kl = kl_dirichlet_uniform(alpha)
    ref = kl_divergence(Dirichlet(alpha), Dirichlet(torch.ones_like(alpha)))
    torch.testing.assert_close(kl, ref, rtol=1e-8, atol=1e-8)
    assert kl.item() >= -1e-10
    y = torch.tensor([int(np.argmax(vals))])
    a = np.array(vals)
    s = a.sum()
    p = a / s
    onehot = np.eye(len(vals))[y.item()]
    form_b = ((onehot - p) ** 2).sum() + (a * (s - a) / (s**2 * (s + 1))).sum()
    assert edl_mse_loss(alpha, y).item() == pytest.approx(form_b, rel=1e-10, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# data terms
# --------------------------------------------------------------------------------------------------
def test_mse_loss_equals_expected_squared_error_and_both_algebraic_forms() -> None:
    alpha = _alpha(seed=2, low=0.5, high=6.0)
    y = torch.tensor([0, 3, 4, 1])
    onehot = torch.nn.functional.one_hot(y, 5).to(DT)
    loss = edl_mse_loss(alpha, y)
    assert loss.shape == (4,)
    torch.testing.assert_close(edl_mse_loss(alpha, onehot), loss)
    # Monte Carlo: E_{p ~ Dir(alpha)} ||y - p||^2
    p = _mc(alpha, 100_000, seed=3)
    _assert_mc(((onehot - p) ** 2).sum(-1), loss)
    # the two algebraic forms of METHODS §2.5, written out per sample and class
    a = alpha.numpy()
    for b in range(4):
        s = a[b].sum()
        form_a = form_b = 0.0
        for k in range(5):
            ph = a[b, k] / s
            yk = 1.0 if k == y[b] else 0.0
            form_a += (yk - ph) ** 2 + ph * (1 - ph) / (s + 1)
            form_b += (yk - ph) ** 2 + a[b, k] * (s - a[b, k]) / (s**2 * (s + 1))
        assert loss[b].item() == pytest.approx(form_a, rel=1e-12)
        assert loss[b].item() == pytest.approx(form_b, rel=1e-12)


def test_digamma_loss_equals_expected_negative_log_prob() -> None:
    alpha = _alpha(seed=4, low=0.7, high=6.0)
    y = torch.tensor([2, 0, 1, 4])
    loss = edl_digamma_loss(alpha, y)
    p = _mc(alpha, 100_000, seed=5)
    py = p.gather(-1, y.expand(p.shape[0], -1).unsqueeze(-1)).squeeze(-1)
    _assert_mc(-torch.log(py), loss)
    a = alpha.numpy()
    ref = [special.digamma(a[b].sum()) - special.digamma(a[b, y[b]]) for b in range(4)]
    np.testing.assert_allclose(loss.numpy(), ref, rtol=1e-12)


def test_log_loss_equals_negative_log_of_expected_prob() -> None:
    alpha = _alpha(seed=6, low=0.7, high=6.0)
    y = torch.tensor([4, 4, 0, 2])
    loss = edl_log_loss(alpha, y)
    a = alpha.numpy()
    np.testing.assert_allclose(loss.numpy(), [-math.log(a[b, y[b]] / a[b].sum()) for b in range(4)], rtol=1e-12)
    p = _mc(alpha, 100_000, seed=7)
    py = p.gather(-1, y.expand(p.shape[0], -1).unsqueeze(-1)).squeeze(-1)
    mean = py.mean(0)
    se_log = py.std(0) / math.sqrt(p.shape[0]) / mean  # delta method for -log(mean)
    assert ((-torch.log(mean) - loss).abs() <= 5 * se_log).all()
    # Jensen: -log E[p_y] <= E[-log p_y]
    assert (loss <= edl_digamma_loss(alpha, y)).all()


# --------------------------------------------------------------------------------------------------
# the full loss
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mse", "log", "digamma"])
def test_annealing_schedule(kind: str) -> None:
    alpha = _alpha(seed=8)
    y = torch.tensor([1, 0, 3, 2])
    data = {"mse": edl_mse_loss, "log": edl_log_loss, "digamma": edl_digamma_loss}[kind](alpha, y)
    onehot = torch.nn.functional.one_hot(y, 5).to(DT)
    kl = kl_dirichlet_uniform(onehot + (1 - onehot) * alpha)
    assert (kl > 0.1).all()

    def total(epoch: float, **kw) -> torch.Tensor:
        return edl_loss(alpha, y, kind=kind, epoch=epoch, reduction="none", **kw)

    torch.testing.assert_close(total(0), data)  # lambda_0 = 0
    torch.testing.assert_close(total(5), data + 0.5 * kl)  # lambda_5 = 5 / 10
    torch.testing.assert_close(total(10), data + kl)  # lambda = 1 from anneal_epochs on
    torch.testing.assert_close(total(37), data + kl)
    torch.testing.assert_close(total(1, anneal_epochs=4), data + 0.25 * kl)
    torch.testing.assert_close(total(2.5), data + 0.25 * kl)  # fractional epochs
    torch.testing.assert_close(edl_loss(alpha, y, kind=kind, epoch=10), (data + kl).mean())
    torch.testing.assert_close(edl_loss(alpha, y, kind=kind, epoch=10, reduction="sum"), (data + kl).sum())


def test_kl_term_vanishes_without_misleading_evidence() -> None:
    y = torch.tensor([0, 2, 1])
    alpha = torch.ones(3, 4, dtype=DT)
    alpha[torch.arange(3), y] = torch.tensor([5.0, 1.0, 40.0], dtype=DT)  # evidence only for the true class
    for kind, fn in (("mse", edl_mse_loss), ("log", edl_log_loss), ("digamma", edl_digamma_loss)):
        torch.testing.assert_close(edl_loss(alpha, y, kind=kind, epoch=50, reduction="none"), fn(alpha, y))
    # ... and it does not vanish when a wrong class has evidence
    alpha[0, 3] = 2.0
    assert edl_loss(alpha, y, epoch=50, reduction="none")[0] > edl_mse_loss(alpha, y)[0] + 1e-3


@pytest.mark.parametrize("ev", ["relu", "softplus", "exp"])
@pytest.mark.parametrize("kind", ["mse", "log", "digamma"])
def test_gradients_finite_and_correct(ev: str, kind: str) -> None:
    logits = torch.tensor([[-60.0, 0.0, 60.0], [1e-3, -2.0, 15.0], [3.0, 3.0, -0.5]], dtype=DT, requires_grad=True)
    y = torch.tensor([2, 0, 1])
    edl_loss(dirichlet_from_logits(logits, ev), y, kind=kind, epoch=3).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    # the analytic gradient agrees with finite differences (away from the kinks of relu / clamp)
    z = torch.tensor([[0.3, 1.2, 2.0], [0.7, 0.4, 1.5]], dtype=DT, requires_grad=True)
    torch.autograd.gradcheck(
        lambda t: edl_loss(dirichlet_from_logits(t, ev), torch.tensor([1, 2]), kind=kind, epoch=3, reduction="none"),
        (z,),
    )


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------
def test_errors_on_bad_input() -> None:
    alpha = _alpha(b=2, k=3)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        edl_mse_loss(alpha, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        edl_loss(alpha, torch.tensor([-1, 0]), epoch=0)
    with pytest.raises(TypeError, match="integer"):
        edl_log_loss(alpha, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        edl_digamma_loss(alpha, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="one-hot"):
        edl_mse_loss(alpha, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="exactly one 1"):
        edl_mse_loss(alpha, torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="strictly positive"):
        edl_mse_loss(torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="strictly positive"):
        kl_dirichlet_uniform(torch.tensor([[1.0, -0.5]]))
    with pytest.raises(ValueError, match="2 dimensions"):
        kl_dirichlet_uniform(torch.ones(3))
    with pytest.raises(ValueError, match="at least 2 classes"):
        edl_mse_loss(torch.ones(2, 1), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="NaN"):
        edl_mse_loss(torch.tensor([[1.0, float("nan")]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="kind"):
        edl_loss(alpha, torch.tensor([0, 1]), kind="ce", epoch=0)
    with pytest.raises(ValueError, match="reduction"):
        edl_loss(alpha, torch.tensor([0, 1]), epoch=0, reduction="avg")
    with pytest.raises(ValueError, match="epoch"):
        edl_loss(alpha, torch.tensor([0, 1]), epoch=-1)
    with pytest.raises(ValueError, match="anneal_epochs"):
        edl_loss(alpha, torch.tensor([0, 1]), epoch=1, anneal_epochs=0)
    with pytest.raises(TypeError):
        edl_loss(alpha, torch.tensor([0, 1]))  # type: ignore[call-arg]  # epoch is required
    with pytest.raises(ValueError, match="kind"):
        evidence(torch.zeros(2, 3), "sigmoid")
    with pytest.raises(ValueError, match="K >= 2"):
        evidence(torch.zeros(2, 1))
    with pytest.raises(TypeError):
        evidence(np.zeros((2, 3)))  # type: ignore[arg-type]
