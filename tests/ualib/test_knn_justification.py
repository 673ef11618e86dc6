"""Tests for ualib.justification.knn against a brute-force numpy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ualib.justification.knn import KNNJustifier


def _brute(train, labels, query, k, num_classes):
    d = np.sqrt(((query[:, None, :] - train[None, :, :]) ** 2).sum(-1))
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    dist = np.take_along_axis(d, idx, 1)
    support = np.stack([(labels[idx] == c).mean(1) for c in range(num_classes)], 1)
    return idx, dist, support, dist.mean(1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_knn_against_brute_force(dtype):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 5))
    labels = rng.integers(0, 4, 300)
    query = rng.normal(size=(37, 5)) * 1.5
    idx, dist, support, score = _brute(train, labels, query, 7, 5)
    knn = KNNJustifier(7, batch_size=8, dtype=dtype).fit(torch.tensor(train), torch.tensor(labels), num_classes=5)
    r = knn.query(torch.tensor(query))
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    np.testing.assert_array_equal(r.indices.numpy(), idx)
    np.testing.assert_allclose(r.distances.numpy(), dist, rtol=tol, atol=tol)
    np.testing.assert_allclose(r.support.numpy(), support, atol=tol)
    np.testing.assert_allclose(r.score.numpy(), score, rtol=tol)
    np.testing.assert_array_equal(r.labels.numpy(), labels[idx])
    pred = torch.tensor(rng.integers(0, 5, 37))
    np.testing.assert_allclose(r.support_of(pred).numpy(), support[np.arange(37), pred.numpy()], atol=tol)
    # memory: features in the storage dtype, their squared norms, int64 labels
    item = 8 if dtype == torch.float64 else 4
    assert knn.memory_bytes() == 300 * 5 * item + 300 * item + 300 * 8


def test_training_point_is_its_own_nearest_neighbour():
    rng = np.random.default_rng(1)
    train = torch.tensor(rng.normal(size=(50, 3)))
    knn = KNNJustifier(1, dtype=torch.float64).fit(train, torch.zeros(50, dtype=torch.long))
    r = knn.query(train)
    assert torch.equal(r.indices[:, 0], torch.arange(50))
    assert r.distances.max() < 1e-6


def test_errors():
    knn = KNNJustifier(3)
    with pytest.raises(RuntimeError, match="fit"):
        knn.query(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="at least k=3"):
        knn.fit(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    knn.fit(torch.rand(5, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="3 features"):
        knn.query(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="positive integer"):
        KNNJustifier(0)
