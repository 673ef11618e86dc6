"""Tests for ualib.justification.features: activations against direct calls of the sub-networks, batching, pooling,
no side effects on the frozen network (weights bitwise, requires_grad, train/eval flags, hooks, also
after an exception), and the PCA / standardisation against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from torch import nn

from ualib.justification.features import OUTPUT, FeatureTransform, FrozenFeatures, capture, layer_features
from ualib.models import LeNet


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(3 * 16, 5))


def _no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_features_equal_direct_computation_and_batching():
    net = _net()
    x = torch.rand(7, 1, 4, 4)
    feats = layer_features(net, x, ["1", "3", OUTPUT], batch_size=3)
    net.eval()
    with torch.no_grad():
        ref1 = net[:2](x)
        # micro-batches of 3 may round differently from one batch of 7 in the convolution
        torch.testing.assert_close(feats["1"], ref1.flatten(1))
        torch.testing.assert_close(feats["3"], net[:4](x))
        torch.testing.assert_close(feats[OUTPUT], net(x))
    whole = layer_features(net, x, ["1"], batch_size=100)
    torch.testing.assert_close(whole["1"], ref1.flatten(1), rtol=0, atol=0)
    avg = layer_features(net, x, ["1"], pool="avg")["1"]
    torch.testing.assert_close(avg, ref1.mean(dim=(2, 3)))
    assert list(feats) == ["1", "3", OUTPUT]


def test_frozen_network_is_left_exactly_as_found():
    net = LeNet(1, 8, 10, dropout=0.3, batchnorm=True)
    net.train()
    net.classifier[-1].eval()  # a mixed-mode network
    net.features[0].weight.requires_grad_(False)
    state = {k: v.clone() for k, v in net.state_dict().items()}  # includes BatchNorm running stats
    modes = {n: m.training for n, m in net.named_modules()}
    grads = {n: p.requires_grad for n, p in net.named_parameters()}
    ff = FrozenFeatures(net, ["features", "classifier.3"], n_components=4, pool={"features": "avg"})
    x = torch.rand(20, 1, 8, 8)
    ff.fit(x)
    out = ff(x[:5])
    assert out["features"].shape == (5, 4) and out["classifier.3"].shape == (5, 4)
    after = net.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)  # bitwise, BatchNorm statistics too
    assert {n: m.training for n, m in net.named_modules()} == modes
    assert {n: p.requires_grad for n, p in net.named_parameters()} == grads
    assert all(p.grad is None for p in net.parameters())
    assert _no_hooks(net)
    # eval mode was used: dropout off, so two calls agree although the network is in train mode
    torch.testing.assert_close(ff(x[:5])["classifier.3"], out["classifier.3"], rtol=0, atol=0)


class _Boom(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 3)

    def forward(self, x):
        self.b(self.a(x))
        raise RuntimeError("boom")


def test_hooks_removed_and_modes_restored_after_an_exception():
    m = _Boom().train()
    with pytest.raises(RuntimeError, match="boom"):
        layer_features(m, torch.rand(4, 3), ["a", "b"])
    assert _no_hooks(m)
    assert m.training and m.a.training
    with pytest.raises(KeyError):
        with capture(m, ["a"]):
            assert not _no_hooks(m)
            raise KeyError("inside")
    assert _no_hooks(m)


def test_layer_errors():
    net = _net()
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        layer_features(net, torch.rand(2, 1, 4, 4), ["nope"])
    with pytest.raises(ValueError, match="non-empty"):
        layer_features(net, torch.rand(2, 1, 4, 4), [])
    with pytest.raises(ValueError, match="pool"):
        layer_features(net, torch.rand(2, 1, 4, 4), ["1"], pool="max")
    with pytest.raises(TypeError, match="nn.Module"):
        layer_features(lambda t: t, torch.rand(2, 3), ["a"])
    with pytest.raises(RuntimeError, match="fit"):
        FrozenFeatures(net, ["1"])(torch.rand(2, 1, 4, 4))


def test_feature_transform_against_sklearn():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) + 3.0
    test = rng.normal(size=(30, 6))
    t = FeatureTransform(3, standardize=False).fit(torch.tensor(train))
    pca = PCA(3).fit(train)
    got, ref = t.transform(torch.tensor(test)).numpy(), pca.transform(test)
    signs = np.sign((got * ref).sum(0))
    np.testing.assert_allclose(got, ref * signs, rtol=1e-8, atol=1e-8)
    # standardised: unit variance on the training set, and the scale comes from the training set only
    ts = FeatureTransform(3).fit(torch.tensor(train))
    z = ts.transform(torch.tensor(train)).numpy()
    np.testing.assert_allclose(z.std(0, ddof=1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-10)
    train_std = (pca.transform(train) * signs).std(0, ddof=1)
    np.testing.assert_allclose(ts.transform(torch.tensor(test)).numpy(), got / train_std, rtol=1e-8)
    # no PCA: plain z-scores
    zs = FeatureTransform(None).fit_transform(torch.tensor(train)).numpy()
    np.testing.assert_allclose(zs, (train - train.mean(0)) / train.std(0, ddof=1), rtol=1e-10)
    # more components than features: capped; dtype kept
    assert FeatureTransform(10).fit_transform(torch.tensor(train, dtype=torch.float32)).shape == (200, 6)
    assert FeatureTransform(2).fit_transform(torch.tensor(train, dtype=torch.float32)).dtype == torch.float32
    with pytest.raises(ValueError, match="6 features"):
        t.transform(torch.zeros(2, 5, dtype=torch.float64))
