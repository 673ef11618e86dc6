"""Sanity-check similarity measures against scipy / scikit-image, and cascading randomization's behaviour."""

import numpy as np
import pytest
import scipy.stats
import skimage.metrics
import torch
from torch import nn

from ualib.attribution import gradient, random_attribution
from ualib.metrics.sanity import (
    cascading_randomization,
    data_randomization,
    normalised_magnitude,
    parametrized_layers,
    rankdata,
    spearman,
    ssim,
)
from ualib.posteriors import MCDropout
from ualib.targets import uncertainty_target


def test_rankdata_and_spearman_match_scipy():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (4, 30), generator=g).to(torch.float64)  # many ties
    b = torch.rand(4, 30, generator=g, dtype=torch.float64)
    for i in range(4):
        np.testing.assert_allclose(rankdata(a)[i].numpy(), scipy.stats.rankdata(a[i].numpy()))
        np.testing.assert_allclose(
            float(spearman(a, b)[i]), scipy.stats.spearmanr(a[i].numpy(), b[i].numpy()).statistic, rtol=1e-12
        )
    assert torch.isnan(spearman(torch.ones(1, 5), b[:1, :5])).all()


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 12, 17)])
def test_ssim_matches_skimage(shape):
    g = torch.Generator().manual_seed(1)
    a = torch.rand(shape, generator=g, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    got = ssim(a, b)
    for i in range(shape[0]):
        want = skimage.metrics.structural_similarity(a[i].numpy(), b[i].numpy(), data_range=1.0)
        assert float(got[i]) == pytest.approx(want, rel=1e-10, abs=1e-12)
    torch.testing.assert_close(ssim(a, a), torch.ones(shape[0], dtype=torch.float64))
    with pytest.raises(ValueError, match="win_size"):
        ssim(a, b, win_size=4)


def test_normalised_magnitude():
    a = torch.tensor([[[[-2.0, 1.0]], [[0.0, 1.0]]]])  # [1, 2, 1, 2]
    torch.testing.assert_close(normalised_magnitude(a), torch.tensor([[[1.0, 1.0]]], dtype=torch.float64))
    assert (normalised_magnitude(torch.zeros(1, 2, 2)) == 0).all()


def _lenet():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )


def test_cascading_randomization_changes_gradients_not_random_maps_and_leaves_original_alone():
    post = MCDropout(_lenet(), num_samples=6, seed=0)
    before = {k: v.clone() for k, v in post.module.state_dict().items()}
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(2))

    def make(p):
        target = uncertainty_target(p, "total")
        return {"gradient": lambda z: gradient(target, z), "random": lambda z: random_attribution(z, seed=0)}

    res = cascading_randomization(post, make, x, seed=0)
    assert res["layers"] == ["4", "0"] == parametrized_layers(post.module)[::-1]
    assert res["spearman"]["gradient"].shape == (2, 5)
    # the random map ignores the network: it survives every step exactly
    torch.testing.assert_close(res["spearman"]["random"], torch.ones(2, 5, dtype=torch.float64))
    torch.testing.assert_close(res["ssim"]["random"], torch.ones(2, 5, dtype=torch.float64))
    # the gradient does not survive a fully randomized network
    assert float(res["spearman"]["gradient"][-1].mean()) < 0.9
    for k, v in post.module.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_map_similarity_and_data_randomization_match_scipy_and_skimage():
    g = torch.Generator().manual_seed(3)
    ref = torch.randn(3, 2, 9, 11, generator=g, dtype=torch.float64)
    other = ref + 0.7 * torch.randn(3, 2, 9, 11, generator=g, dtype=torch.float64)
    res = data_randomization({"m": ref, "same": ref}, {"m": other, "same": ref.clone(), "extra": other})
    assert set(res["spearman"]) == {"m", "same"}
    for i in range(3):
        # independent computation: channel-summed |A| scaled by its maximum, then scipy / scikit-image (7 x 7 window)
        a = np.abs(ref[i].numpy()).sum(0)
        b = np.abs(other[i].numpy()).sum(0)
        a, b = a / a.max(), b / b.max()
        want_rho = scipy.stats.spearmanr(a.ravel(), b.ravel()).statistic
        want_ssim = skimage.metrics.structural_similarity(a, b, data_range=1.0, win_size=7)
        assert float(res["spearman"]["m"][i]) == pytest.approx(want_rho, rel=1e-12)
        assert float(res["ssim"]["m"][i]) == pytest.approx(want_ssim, rel=1e-10)
    torch.testing.assert_close(res["spearman"]["same"], torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(res["ssim"]["same"], torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="lacks maps"):
        data_randomization({"m": ref}, {"other": ref})


def test_map_similarity_window_fits_small_images():
    from ualib.metrics.sanity import map_similarity

    g = torch.Generator().manual_seed(4)
    a = torch.rand(2, 1, 6, 6, generator=g, dtype=torch.float64)
    b = torch.rand(2, 1, 6, 6, generator=g, dtype=torch.float64)
    got = map_similarity(a, b)["ssim"]
    for i in range(2):
        x, y = a[i, 0].numpy() / a[i, 0].numpy().max(), b[i, 0].numpy() / b[i, 0].numpy().max()
        assert float(got[i]) == pytest.approx(skimage.metrics.structural_similarity(x, y, data_range=1.0, win_size=5))
