"""ROAD noisy linear imputation and the MoRF / LeRF curves, against a dense float64 solve and hand-checked cases."""

import numpy as np
import pytest
import torch

from ualib.metrics.road import NEIGHBOUR_WEIGHTS, noisy_linear_impute, road_curve, road_test


def dense_imputation(img: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Independent reference: a pixel-by-pixel loop builds the dense system and numpy solves it."""
    c, h, w = img.shape
    unknown = [(i, j) for i in range(h) for j in range(w) if removed[i, j]]
    index = {p: n for n, p in enumerate(unknown)}
    a = np.zeros((len(unknown), len(unknown)))
    b = np.zeros((len(unknown), c))
    for n, (i, j) in enumerate(unknown):
        for (dy, dx), wt in NEIGHBOUR_WEIGHTS:
            y, z = i + dy, j + dx
            if 0 <= y < h and 0 <= z < w:
                a[n, n] += wt
                if removed[y, z]:
                    a[n, index[(y, z)]] -= wt
                else:
                    b[n] += wt * img[:, y, z]
    sol = np.linalg.solve(a, b)
    out = img.copy()
    for n, (i, j) in enumerate(unknown):
        out[:, i, j] = sol[n]
    return out


def test_weights_are_roads():
    assert sum(w for _, w in NEIGHBOUR_WEIGHTS) == pytest.approx(1.0)
    assert sorted({w for _, w in NEIGHBOUR_WEIGHTS}) == [1 / 12, 1 / 6]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_dense_solve(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 6, 7, generator=g, dtype=torch.float64)
    removed = torch.rand(2, 6, 7, generator=g) < 0.4
    removed[:, 0, 0] = False  # at least one known pixel per image
    got = noisy_linear_impute(x, removed, noise=0.0)
    for b in range(2):
        want = dense_imputation(x[b].numpy(), removed[b].numpy())
        np.testing.assert_allclose(got[b].numpy(), want, rtol=1e-12, atol=1e-12)


def test_single_pixel_by_hand():
    x = torch.arange(25, dtype=torch.float64).view(1, 1, 5, 5) ** 2 / 10
    removed = torch.zeros(1, 5, 5, dtype=torch.bool)
    removed[0, 2, 2] = True
    removed[0, 0, 4] = True  # a corner: neighbours left (1/6), below (1/6), diagonal (1/12)
    got = noisy_linear_impute(x, removed, noise=0.0)[0, 0]
    v = x[0, 0]
    centre = (v[1, 2] + v[3, 2] + v[2, 1] + v[2, 3]) / 6 + (v[1, 1] + v[1, 3] + v[3, 1] + v[3, 3]) / 12
    corner = (v[0, 3] / 6 + v[1, 4] / 6 + v[1, 3] / 12) / (5 / 12)
    assert float(got[2, 2]) == pytest.approx(float(centre), rel=1e-14)
    assert float(got[0, 4]) == pytest.approx(float(corner), rel=1e-14)
    keep = ~removed[0]
    assert torch.equal(got[keep], v[keep])


def test_linear_ramp_is_reproduced_inside():
    # a harmonic interpolation with symmetric weights reproduces an affine image exactly in the interior
    yy, xx = torch.meshgrid(
        torch.arange(8.0, dtype=torch.float64), torch.arange(9.0, dtype=torch.float64), indexing="ij"
    )
    x = (0.3 * yy - 0.7 * xx + 2)[None, None]
    removed = torch.zeros(1, 8, 9, dtype=torch.bool)
    removed[0, 2:6, 3:7] = True
    got = noisy_linear_impute(x, removed, noise=0.0)
    torch.testing.assert_close(got, x, rtol=0, atol=1e-12)


def test_everything_removed_takes_the_mean_and_noise_only_on_removed():
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    got = noisy_linear_impute(x, torch.ones(1, 5, 5, dtype=torch.bool), noise=0.0)
    torch.testing.assert_close(got, x.mean((2, 3), keepdim=True).expand_as(x))
    removed = torch.zeros(1, 40, 40, dtype=torch.bool)
    removed[0, ::2, ::2] = True
    z = torch.zeros(1, 1, 40, 40, dtype=torch.float64)
    noisy = noisy_linear_impute(z, removed, noise=0.05, generator=torch.Generator().manual_seed(0))
    assert torch.equal(noisy[0, 0][~removed[0]], z[0, 0][~removed[0]])
    assert float(noisy[0, 0][removed[0]].std()) == pytest.approx(0.05, rel=0.1)


def test_bad_arguments():
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(TypeError, match="boolean"):
        noisy_linear_impute(x, torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="shape"):
        noisy_linear_impute(x, torch.zeros(1, 3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="noise"):
        noisy_linear_impute(x, torch.zeros(1, 4, 4, dtype=torch.bool), noise=-1.0)
    with pytest.raises(ValueError, match="order"):
        road_curve(lambda z: z.sum((1, 2, 3)), x, x, order="up")


def test_curve_orders_and_counts():
    # score = number of imputed pixels inside the top-left quadrant, read off a marker image
    x = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    attribution = torch.zeros(1, 6, 6)
    attribution[0, :3, :3] = 1.0  # the quadrant is most relevant

    def score(z):  # imputation of a zero image is zero: mark removed pixels via NaN-free trick
        return z.new_zeros(len(z))

    res = road_curve(score, x, attribution, order="morf", fractions=[0.0, 0.25, 0.5], noise=0.0)
    assert res["n_pixels"].tolist() == [0, 9, 18]
    assert res["scores"].shape == (1, 3)

    # with a checkerboard, MoRF removes the quadrant first: its pixels change, the rest stay
    x = (torch.arange(36).view(1, 1, 6, 6) % 2).to(torch.float64)
    seen = {}

    def grab(z):
        seen[len(seen)] = z.clone()
        return z.sum((1, 2, 3))

    road_curve(grab, x, attribution, order="morf", fractions=[0.25], noise=0.0)
    road_curve(grab, x, attribution, order="lerf", fractions=[0.25], noise=0.0)
    changed_morf = (seen[0] != x)[0, 0]
    changed_lerf = (seen[1] != x)[0, 0]
    assert changed_morf[3:, :].sum() == 0 and changed_morf[:, 3:].sum() == 0
    assert changed_lerf[:3, :3].sum() == 0


def test_road_test_gap_sign_on_a_planted_cause():
    # the "uncertainty" is the mean of a bright patch; imputing it from its dark surroundings removes it
    x = torch.zeros(4, 1, 8, 8, dtype=torch.float64)
    x[:, :, 2:5, 2:5] = 1.0
    x = x + 0.01 * torch.rand(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def u(z):
        return z[:, 0, 2:5, 2:5].mean((1, 2))

    good = torch.zeros(4, 8, 8)
    good[:, 2:5, 2:5] = 1.0
    res = road_test(u, x, good, fractions=torch.linspace(0, 0.3, 7))
    assert (res["gap"] > 0.3).all()
    assert (res["auc_morf"] > res["auc_lerf"]).all()
    flipped = road_test(u, x, -good, fractions=torch.linspace(0, 0.3, 7))
    assert (flipped["gap"] < 0).all()
