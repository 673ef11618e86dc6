"""Posteriors: shapes, reproducibility from (index, seed), batch invariance, no side effects, and
agreement with naive float64 forwards that apply the masks / weights explicitly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ualib.models import LeNet
from ualib.posteriors import BayesByBackprop, DeepEnsemble, DropConnect, Evidential, MCDropout
from ualib.seeding import generator


@pytest.fixture(autouse=True)
def _float64(float64):
    """Every test here runs in float64 (see conftest.py)."""


def mlp(seed: int = 0, dropout: float = 0.5) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(dropout), nn.Linear(8, 3))


def cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return LeNet(1, 8, 3, dropout=0.3, batchnorm=True, widths=(4, 6, 10))


X4 = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
X8 = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


def all_posteriors():
    return {
        "mc_dropout": (MCDropout(cnn(), num_samples=4, seed=3), X8),
        "dropconnect": (DropConnect(cnn(), p=0.3, num_samples=4, seed=3), X8),
        "ensemble": (
            DeepEnsemble(lambda: LeNet(1, 8, 3, dropout=0.3, batchnorm=True, widths=(4, 6, 10)), num_members=4, seed=3),
            X8,
        ),
        "flipout": (
            BayesByBackprop(LeNet(1, 8, 3, dropout=0.0, flipout=True, widths=(4, 6, 10)), num_samples=4, seed=3),
            X8,
        ),
    }


@pytest.mark.parametrize("name", ["mc_dropout", "dropconnect", "ensemble", "flipout"])
def test_shape_reproducibility_and_batch_invariance(name):
    post, x = all_posteriors()[name]
    out = post.logits(x)
    assert out.shape == (4, len(x), 3)
    # same (index, seed) -> identical; different indices differ
    assert torch.equal(out, post.logits(x))
    # the same two networks; on some CPU kernels (SSE4, one thread) a different number of samples per batch
    # rounds the float32 matmuls differently, so equal up to float32 rounding, not bit for bit
    torch.testing.assert_close(post.logits(x, indices=[2, 0]), out[[2, 0]], rtol=1e-6, atol=1e-6)
    assert (out[0] - out[1]).abs().max() > 1e-6
    # batched == one input at a time
    single = torch.cat([post.logits(x[i : i + 1]) for i in range(len(x))], 1)
    torch.testing.assert_close(single, out, rtol=1e-10, atol=1e-10)
    # chunking over samples changes nothing
    torch.testing.assert_close(post.logits(x, chunk_size=3), out, rtol=1e-10, atol=1e-10)
    # gradients reach the input
    xg = x.clone().requires_grad_(True)
    post.logits(xg).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["mc_dropout", "dropconnect", "flipout"])
def test_seed_changes_samples(name):
    post, x = all_posteriors()[name]
    other = type(post).__new__(type(post))
    other.__dict__.update(post.__dict__)
    other.seed = post.seed + 1
    assert (other.logits(x) - post.logits(x)).abs().max() > 1e-6


@pytest.mark.parametrize("name", ["mc_dropout", "dropconnect", "flipout"])
def test_no_side_effects(name):
    post, x = all_posteriors()[name]
    model = post.module
    model.train()
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    flags = {n: m.training for n, m in model.named_modules()}
    req = {n: p.requires_grad for n, p in model.named_parameters()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    hooks_before = sum(len(m._forward_hooks) for m in model.modules())
    rng = torch.get_rng_state()
    post.logits(x)
    assert {n: m.training for n, m in model.named_modules()} == flags
    assert {n: p.requires_grad for n, p in model.named_parameters()} == req
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks_before
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in model.state_dict().items():  # BatchNorm statistics untouched by inference
        assert torch.equal(v, state[k]), k


def test_hooks_removed_on_exception():
    post = MCDropout(mlp(), num_samples=3)
    with pytest.raises(ValueError, match=r"x: the model cannot take an input of shape \(2, 1, 5, 5\)"):
        post.logits(torch.rand(2, 1, 5, 5))  # wrong input size: Linear fails
    assert all(len(m._forward_hooks) == 0 for m in post.module.modules())


def test_mc_dropout_matches_explicit_masks():
    """Sample m = the network with mask m applied by hand, in float64."""
    model = mlp()
    post = MCDropout(model, num_samples=3, seed=7)
    lin1, lin2 = model[1], model[4]
    out = post.logits(X4)
    for m in range(3):
        g = generator(7, "mc_dropout", m, 0)
        keep = (torch.rand(8, generator=g, dtype=torch.float64) >= 0.5).double() / 0.5
        h = torch.relu(X4.flatten(1) @ lin1.weight.T + lin1.bias) * keep
        torch.testing.assert_close(out[m], h @ lin2.weight.T + lin2.bias)


def test_mc_dropout_lazy_equals_full_replication():
    post = MCDropout(cnn(), num_samples=5, seed=1)
    with torch.no_grad():
        lazy = post._run(X8, list(range(5)), lazy=True)
        full = post._run(X8, list(range(5)), lazy=False)
    torch.testing.assert_close(lazy, full)


def test_mc_dropout_needs_dropout():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with pytest.raises(ValueError, match="at least one dropout layer"):
        MCDropout(model)
    with pytest.raises(ValueError, match="at least one dropout layer"):
        MCDropout(mlp(dropout=0.0))


def test_dropconnect_matches_explicit_masks():
    model = mlp(dropout=0.0)
    post = DropConnect(model, p=0.4, num_samples=2, seed=5)
    lin1, lin2 = model[1], model[4]
    out = post.logits(X4)
    for m in range(2):
        w1 = (
            lin1.weight
            * (
                torch.rand(lin1.weight.shape, generator=generator(5, "dropconnect", m, "1.weight"), dtype=torch.float64)
                >= 0.4
            )
            / 0.6
        )
        w2 = (
            lin2.weight
            * (
                torch.rand(lin2.weight.shape, generator=generator(5, "dropconnect", m, "4.weight"), dtype=torch.float64)
                >= 0.4
            )
            / 0.6
        )
        ref = torch.relu(X4.flatten(1) @ w1.T + lin1.bias) @ w2.T + lin2.bias
        torch.testing.assert_close(out[m], ref)


def test_dropconnect_bad_args():
    with pytest.raises(ValueError, match="p must be in"):
        DropConnect(mlp(), p=1.0)
    with pytest.raises(ValueError, match="not modules with a weight"):
        DropConnect(mlp(), layers=["nope"])


def test_ensemble_members_match_direct_forward_and_gradients():
    members = [cnn(seed=s).eval() for s in range(3)]
    post = DeepEnsemble(members)
    out = post.logits(X8)
    for m, mod in enumerate(members):
        torch.testing.assert_close(out[m], mod(X8))
    for m, mod in enumerate(post.members()):
        torch.testing.assert_close(mod.eval()(X8), out[m])
    # the vectorised training loss gives each member exactly its own gradient (dropout off for comparison)
    members = [mlp(seed=s, dropout=0.0) for s in range(3)]
    post = DeepEnsemble(members)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    post.module.train()
    post.training_loss(X4, y, epoch=0, num_train=6).backward()
    for m, mod in enumerate(members):
        mod.zero_grad()
        F.cross_entropy(mod(X4), y).backward()
        torch.testing.assert_close(post._params["1.weight"].grad[m], mod[1].weight.grad)


def test_ensemble_training_step_is_each_members_own_step_batchnorm_included():
    """The training loss runs every member on its own slice of the stacked tensors: with dropout off, each
    member's loss, gradients and BatchNorm running statistics are those of the member trained alone."""
    members = [LeNet(1, 8, 3, dropout=0.0, batchnorm=True, widths=(4, 6, 10)) for _ in range(3)]
    for s, mod in enumerate(members):
        torch.manual_seed(s)
        for prm in mod.parameters():
            nn.init.normal_(prm, std=0.3)
    post = DeepEnsemble(members)
    y = torch.tensor([0, 1, 2, 0, 1])
    post.module.train()
    loss = post.training_loss(X8, y, epoch=0, num_train=5)
    loss.backward()
    alone = []
    for mod in members:
        mod.train().zero_grad()
        alone.append(F.cross_entropy(mod(X8), y))
        alone[-1].backward()
    torch.testing.assert_close(loss, torch.stack(alone).sum())
    names = dict(members[0].named_parameters())
    buffers = {k for k, _ in members[0].named_buffers() if "running" in k}
    assert buffers, "the test network has BatchNorm running statistics"
    for m, mod in enumerate(members):
        own = dict(mod.named_parameters())
        for k in names:
            torch.testing.assert_close(post._params[k].grad[m], own[k].grad)
        for k, v in mod.named_buffers():
            torch.testing.assert_close(post._buffers[k][m], v)


def test_ensemble_members_draw_their_own_dropout_masks():
    """With dropout on and identical members, the members' training outputs differ: each draws its own masks."""
    post = DeepEnsemble([mlp(seed=0, dropout=0.5) for _ in range(3)])
    post.module.train()
    torch.manual_seed(0)
    out = post._run(X4, [0, 1, 2], per_sample_inputs=False)
    assert not torch.equal(out[0], out[1]) and not torch.equal(out[1], out[2])
    post.module.eval()
    out = post.logits(X4)
    assert torch.equal(out[0], out[1])


def test_ensemble_subset_is_its_members_and_leaves_the_pool_alone():
    pool = DeepEnsemble([cnn(seed=s).eval() for s in range(5)])
    before = pool.logits(X8)
    drawn = pool.subset([4, 1, 2])
    assert drawn.num_samples == 3 and pool.num_samples == 5
    torch.testing.assert_close(drawn.logits(X8), before[[4, 1, 2]])
    torch.testing.assert_close(drawn.predict(X8), torch.softmax(before[[4, 1, 2]], -1))
    with torch.no_grad():
        drawn._params[next(iter(drawn._params))].add_(1.0)  # a copy: the pool is unchanged
    torch.testing.assert_close(pool.logits(X8), before)
    for bad, err, match in [
        ([0], ValueError, "at least 2 members"),
        ([0, 0], ValueError, "distinct"),
        ([0, 5], ValueError, r"lie in \[0, 4\]"),
        ([0, 1.0], TypeError, "integer"),
        ("01", TypeError, "sequence"),
    ]:
        with pytest.raises(err, match=match):
            pool.subset(bad)


def test_ensemble_rejects_bad_index_and_single_member():
    post = DeepEnsemble(lambda: mlp(), num_members=2)
    with pytest.raises(ValueError, match="2 members"):
        post.logits(X4, indices=[5])
    with pytest.raises(ValueError, match="at least 2 members"):
        DeepEnsemble([mlp()])


def test_flipout_with_tiny_sigma_is_the_mean_network():
    model = LeNet(1, 8, 3, dropout=0.0, flipout=True, widths=(4, 6, 10))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("weight_rho"):
                p.fill_(-40.0)  # softplus(-40) ~ 4e-18
    post = BayesByBackprop(model, num_samples=3)
    out = post.logits(X8)
    torch.testing.assert_close(out, model.eval()(X8).expand(3, -1, -1))


def test_flipout_needs_flipout_layers():
    with pytest.raises(ValueError, match="Flipout layers"):
        BayesByBackprop(mlp())


def test_evidential_logits_give_expected_probability():
    post = Evidential(mlp(dropout=0.0), evidence="softplus")
    alpha = post.alpha(X4)
    assert alpha.shape == (6, 3) and (alpha >= 1).all()
    torch.testing.assert_close(post.probs(X4)[0], alpha / alpha.sum(-1, keepdim=True))
    torch.testing.assert_close(post.predict_alpha(X4, batch_size=4), alpha)
    with pytest.raises(ValueError, match="one sample"):
        post.logits(X4, indices=[1])


def test_predict_batches_equal_one_call():
    post = MCDropout(cnn(), num_samples=3)
    torch.testing.assert_close(post.predict(X8, batch_size=2), post.probs(X8))


def test_bad_inputs_rejected():
    post = MCDropout(mlp(), num_samples=2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        post.logits([[1.0]])
    with pytest.raises(ValueError, match="NaN"):
        post.logits(torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="num_samples"):
        MCDropout(mlp(), num_samples=0)


@pytest.mark.parametrize("name", ["mc_dropout", "dropconnect", "ensemble", "flipout"])
def test_per_sample_inputs(name):
    """Sample s fed x[s] gives the same logits as sample s fed x[s] on its own."""
    post, x = all_posteriors()[name]
    xs = torch.stack([x + 0.1 * s for s in range(4)])
    out = post.logits(xs, per_sample_inputs=True)
    for s in range(4):
        torch.testing.assert_close(out[s], post.logits(xs[s], indices=[s])[0])
    torch.testing.assert_close(post.logits(xs, per_sample_inputs=True, chunk_size=3), out)
    with pytest.raises(ValueError, match="per_sample_inputs"):
        post.logits(xs[:2], per_sample_inputs=True)
