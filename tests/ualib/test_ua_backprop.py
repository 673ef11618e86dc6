"""UA-Backprop (reconstruction of METHODS §3.2): completeness, and agreement of the vectorised
implementation with naive float64 loops over samples, logits and inputs."""

from __future__ import annotations

import itertools

import pytest
import torch

from ualib import uncertainty as U
from ualib.attribution.ua_backprop import logit_shares, ua_backprop
from ualib.models import LeNet
from ualib.posteriors import BayesByBackprop, DeepEnsemble, DropConnect, MCDropout


@pytest.fixture(autouse=True)
def _float64(float64):
    """Every test here runs in float64 (see conftest.py)."""


def small_lenet(**kw):
    return LeNet(1, 8, 4, widths=(3, 4, 8), **kw)


def posteriors():
    torch.manual_seed(0)
    return {
        "mc_dropout": MCDropout(small_lenet(dropout=0.3), num_samples=5, seed=1),
        "dropconnect": DropConnect(small_lenet(dropout=0.0), p=0.3, num_samples=5, seed=1),
        "flipout": BayesByBackprop(small_lenet(dropout=0.0, flipout=True), num_samples=5, seed=1),
        "ensemble": DeepEnsemble(lambda: small_lenet(dropout=0.0), num_members=4, seed=1),
    }


def x_batch(b=3):
    return torch.rand(b, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


@pytest.mark.parametrize(
    "name,kind,variant",
    list(
        itertools.product(
            ["mc_dropout", "dropconnect", "flipout", "ensemble"], ["total", "aleatoric", "epistemic"], ["fast", "exact"]
        )
    ),
)
def test_completeness(name, kind, variant):
    post = posteriors()[name]
    x = x_batch()
    a, u = ua_backprop(post, x, kind=kind, variant=variant, return_uncertainty=True)
    assert a.shape == x.shape
    torch.testing.assert_close(u, U.uncertainty(post.probs(x), kind))
    assert (a.flatten(1).sum(1) - u).abs().max() < 1e-5  # the bound; in float64 it is ~1e-15
    assert (a.flatten(1).sum(1) - u).abs().max() < 1e-12


def test_logit_shares_vs_naive_loop():
    p = torch.softmax(torch.randn(6, 5), -1)
    p[0] = torch.tensor([1.0, 0, 0, 0, 0])  # one-hot row: Jacobian vanishes
    w = logit_shares(p)
    for b in range(6):
        for k in range(5):
            row = [abs(p[b, k] * ((1.0 if k == j else 0.0) - p[b, j])) for j in range(5)]
            total = sum(row)
            for j in range(5):
                if total > 0:
                    want = row[j] / total
                else:
                    want = 0.5 if j == k else 0.5 / 4
                assert abs(w[b, k, j] - want) < 1e-12
    torch.testing.assert_close(w.sum(-1), torch.ones(6, 5))


def _naive_relevance(probs, kind):
    """Stages 1-2 by explicit loops."""
    s_, b_, k_ = probs.shape
    pbar = probs.mean(0)
    rz = torch.zeros_like(probs)
    for s, b, k in itertools.product(range(s_), range(b_), range(k_)):
        p = probs[s, b, k]
        if kind == "total":
            r = -p * torch.log(pbar[b, k]) / s_
        elif kind == "aleatoric":
            r = -p * torch.log(p) / s_ if p > 0 else 0.0
        else:
            r = p * torch.log(p / pbar[b, k]) / s_ if p > 0 else 0.0
        row = torch.stack([abs(p * ((1.0 if k == j else 0.0) - probs[s, b, j])) for j in range(k_)])
        rz[s, b] += r * row / row.sum()
    return rz


@pytest.mark.parametrize("name", ["mc_dropout", "ensemble"])
@pytest.mark.parametrize("kind", ["total", "epistemic"])
def test_exact_variant_vs_naive_per_logit_loop(name, kind):
    """A = sum_{m,j} R^z_mj |x * grad z_mj| / sum|x * grad z_mj|, one input, one sample, one logit at a time."""
    post = posteriors()[name]
    x = x_batch(2)
    probs = post.probs(x).detach()
    rz = _naive_relevance(probs, kind)
    want = torch.zeros_like(x)
    for b in range(2):
        for m in range(post.num_samples):
            for j in range(probs.shape[-1]):
                xb = x[b : b + 1].clone().requires_grad_(True)
                (g,) = torch.autograd.grad(post.logits(xb, indices=[m])[0, 0, j], xb)
                s = (xb.detach() * g).abs()
                want[b] += rz[m, b, j] * (s / s.sum())[0]
    torch.testing.assert_close(ua_backprop(post, x, kind=kind, variant="exact"), want)


@pytest.mark.parametrize("name", ["mc_dropout", "dropconnect", "ensemble"])
def test_fast_variant_vs_naive_per_sample_loop(name):
    """A = sum_m U_m |x * g_m| / sum|x * g_m| with g_m = grad of sum_j R^z_mj z_mj, one sample at a time."""
    post = posteriors()[name]
    x = x_batch(2)
    probs = post.probs(x).detach()
    rz = _naive_relevance(probs, "epistemic")
    want = torch.zeros_like(x)
    for b in range(2):
        for m in range(post.num_samples):
            xb = x[b : b + 1].clone().requires_grad_(True)
            (g,) = torch.autograd.grad((rz[m, b] * post.logits(xb, indices=[m])[0, 0]).sum(), xb)
            s = (xb.detach() * g).abs()
            want[b] += rz[m, b].sum() * (s / s.sum())[0]
    torch.testing.assert_close(ua_backprop(post, x, kind="epistemic"), want)


def test_batched_equals_per_input_and_micro_batches():
    post = posteriors()["mc_dropout"]
    x = x_batch(4)
    a = ua_backprop(post, x)
    torch.testing.assert_close(torch.cat([ua_backprop(post, x[i : i + 1]) for i in range(4)]), a)
    torch.testing.assert_close(ua_backprop(post, x, batch_size=3), a)


def test_zero_input_keeps_completeness():
    post = posteriors()["mc_dropout"]
    x = torch.zeros(1, 1, 8, 8)
    a, u = ua_backprop(post, x, kind="total", return_uncertainty=True)
    torch.testing.assert_close(a.sum(), u[0])
    torch.testing.assert_close(a, torch.full_like(a, float(u[0]) / 64))


def test_no_side_effects_and_errors():
    post = posteriors()["mc_dropout"]
    model = post.module
    model.train()
    x = x_batch()
    ua_backprop(post, x)
    assert model.training and all(m.training for m in model.modules())
    assert x.grad is None and not x.requires_grad
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="kind must be one of"):
        ua_backprop(post, x, kind="variance")
    with pytest.raises(ValueError, match="variant must be one of"):
        ua_backprop(post, x, variant="slow")
    with pytest.raises(TypeError, match="Posterior"):
        ua_backprop(model, x)


@pytest.mark.parametrize("variant", ["fast", "exact"])
def test_sample_chunks_change_nothing(variant):
    post = posteriors()["ensemble"]
    x = x_batch(3)
    a = ua_backprop(post, x, variant=variant, chunk_size=4)
    for c in (1, 3):
        torch.testing.assert_close(ua_backprop(post, x, variant=variant, chunk_size=c), a)
