"""LIME through the ``lime`` package: re-derived with scikit-learn, compared with lime's own loop,
deterministic, and frozen to one posterior sample per explained column."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics
import torch
from lime.lime_image import LimeImageExplainer
from sklearn.linear_model import Ridge
from torch import nn

import ualib.attribution
from ualib.attribution.lime import _batched_explainer_class, grid_segmentation, lime
from ualib.posteriors import MCDropout


def _linear_targets(weights: torch.Tensor):
    """``z [n, C, H, W] -> [n, T]``: column t is the linear score <w_t, z>."""
    return lambda z: torch.einsum("nchw,tchw->nt", z, weights)


def test_grid_segmentation_matches_a_naive_loop() -> None:
    seg = grid_segmentation(7, 10, 3)
    for h in range(7):
        for w in range(10):
            assert seg[h, w] == (h // 3) * 4 + (w // 3)
    assert sorted(np.unique(seg).tolist()) == list(range(12))


def test_vectorised_neighbourhood_equals_lime_loop() -> None:
    """The chunked data_labels builds the same perturbed images as lime's own Python loop."""
    rng = np.random.default_rng(0)
    image = rng.random((8, 8, 3))
    fudged = rng.random((8, 8, 3))
    segments = grid_segmentation(8, 8, 2)
    seen: dict[str, list[np.ndarray]] = {"ours": [], "lime": []}

    def recorder(key):
        def fn(imgs):
            seen[key].append(np.array(imgs))
            return np.stack([imgs.sum((1, 2, 3)), imgs[..., 0].max((1, 2))], 1)

        return fn

    d1, l1 = _batched_explainer_class()(random_state=np.random.RandomState(3)).data_labels(
        image, fudged, segments, recorder("ours"), 57, batch_size=10
    )
    d2, l2 = LimeImageExplainer(random_state=np.random.RandomState(3)).data_labels(
        image, fudged, segments, recorder("lime"), 57, batch_size=10
    )
    np.testing.assert_array_equal(d1, d2)
    np.testing.assert_array_equal(np.concatenate(seen["ours"]), np.concatenate(seen["lime"]))
    np.testing.assert_allclose(l1, l2, rtol=1e-13)  # the same images; summation order may differ


def test_lime_equals_weighted_ridge_rederived_with_sklearn() -> None:
    """The map is the weighted ridge regression of LIME's paper, recomputed here from its definition."""
    torch.manual_seed(0)
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    w = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    target = lambda z: (torch.tanh(z * w)).flatten(1).sum(1)  # noqa: E731
    n, seed, width = 200, 5, 0.25
    got = lime(target, x, num_samples=n, seed=seed, hide_color=0.0, kernel_width=width)

    seg = grid_segmentation(8, 8, 2)
    p = seg.max() + 1
    data = np.random.RandomState(seed).randint(0, 2, n * p).reshape(n, p)
    data[0] = 1
    imgs = x[0, 0].numpy()[None] * data[:, seg]  # switched-off superpixels are 0
    y = target(torch.from_numpy(imgs)[:, None]).numpy()
    d = sklearn.metrics.pairwise_distances(data, data[:1], metric="cosine").ravel()
    weights = np.sqrt(np.exp(-(d**2) / width**2))
    coef = Ridge(alpha=1.0).fit(data, y, sample_weight=weights).coef_
    np.testing.assert_allclose(got[0, 0].numpy(), coef[seg], rtol=1e-10, atol=1e-12)


def test_lime_is_deterministic_and_seeded() -> None:
    torch.manual_seed(1)
    x = torch.rand(2, 3, 12, 12)
    target = _linear_targets(torch.randn(1, 3, 12, 12))
    a = lime(lambda z: target(z)[:, 0], x, num_samples=80, seed=7)
    b = lime(lambda z: target(z)[:, 0], x, num_samples=80, seed=7, batch_size=13)
    c = lime(lambda z: target(z)[:, 0], x, num_samples=80, seed=8)
    assert a.shape == x.shape
    assert torch.equal(a, lime(lambda z: target(z)[:, 0], x, num_samples=80, seed=7))  # same seed, same map
    torch.testing.assert_close(a, b)  # batch_size changes only float rounding of the forward passes
    assert not torch.equal(a, c)
    assert torch.equal(a[1], lime(lambda z: target(z)[:, 0], x[1:], num_samples=80, seed=7)[0])
    # every channel of a superpixel carries its weight; a superpixel is constant
    assert torch.equal(a[:, 0], a[:, 2]) and torch.equal(
        a[0, 0, :2, :2], a[0, 0, 0, 0].expand(2, 2)
    )  # 2x2 cells up to 16 px


class _TwoHeads(nn.Module):
    """A tiny classifier with dropout, so MC dropout's samples differ."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_frozen_sample_columns_equal_single_sample_runs() -> None:
    """Column s of the batched run equals LIME on sample s alone, across many classifier_fn calls.

    If any perturbation query were answered by another sample (a fresh dropout mask), the ridge fit of
    that column would change.
    """
    torch.manual_seed(2)
    post = MCDropout(_TwoHeads(), num_samples=4, seed=3)
    x = torch.rand(1, 1, 8, 8)
    calls = []

    def all_samples(z):
        calls.append(len(z))
        return post.probs(z)[:, :, 1].T  # [n, S]

    both = lime(all_samples, x, num_samples=120, batch_size=25, seed=0)  # [S, 1, 1, 8, 8]
    assert len(calls) > 3  # LIME really queried in several batches
    singles = torch.stack(
        [lime(lambda z, s=s: post.probs(z, indices=[s])[0, :, 1], x, num_samples=120, seed=0) for s in range(4)]
    )
    torch.testing.assert_close(both, singles, rtol=1e-5, atol=1e-7)
    assert (both[0] - both[1]).abs().max() > 1e-4  # the samples do explain differently


def test_lime_validation() -> None:
    x = torch.rand(2, 2, 8, 8)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        lime(lambda z: z.sum((1, 2, 3)), x)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        lime(lambda z: z.sum(1), torch.rand(2, 5))
    with pytest.raises(ValueError, match="must map"):
        lime(lambda z: z.sum((2, 3))[..., None], torch.rand(1, 3, 8, 8), num_samples=10)
    with pytest.raises(ValueError, match="segmentation"):
        lime(lambda z: z.sum((1, 2, 3)), torch.rand(1, 1, 8, 8), segmentation="slic")
    with pytest.raises(TypeError):
        lime("not callable", torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        lime(lambda z: z.sum((1, 2, 3)) * float("nan"), torch.rand(1, 1, 8, 8), num_samples=10)


def test_lime_is_exported() -> None:
    assert ualib.attribution.lime is lime and "lime" in ualib.attribution.__all__
