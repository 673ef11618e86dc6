"""Tests for ualib.data.planted (planted-cause test sets) and ualib.metrics.localization (metrics against a mask)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ualib.data.planted import PlantedSet, plant_patches, planted_cause_set
from ualib.data.shift import to_mnist_style
from ualib.metrics.localization import mass_in_mask, pointing_game, relevance_rank_accuracy

REPO = Path(__file__).resolve().parents[2]


def digits_like(n: int, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    """MNIST-style images: a bright blob in the middle, black elsewhere."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, h, w)
    x[:, :, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = torch.rand(n, 1, h // 2, w // 2, generator=g)
    return x


def strokes(m: int, s: int, seed: int = 1) -> torch.Tensor:
    """Foreign patches: random strokes with values in {0} U [0.05, 1] (some faint pixels below 0.1)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(m, 1, s, s, generator=g)
    p[p < 0.5] = 0.0
    p[:, :, 0, 0] = 0.07  # faint ink: pasted, but below the mask threshold
    p[:, :, s // 2, s // 2] = 1.0  # every patch has ink
    return p


def expected_mask_and_image(x, patches, pidx, pos, s, alpha, thr):
    """Place each patch by hand, pixel by pixel."""
    n, c, h, w = x.shape
    img = x.clone()
    mask = torch.zeros(n, 1, h, w, dtype=torch.bool)
    for i in range(n):
        r0, c0 = pos[i].tolist()
        p = patches[pidx[i]]
        for u in range(s):
            for v in range(s):
                val = float(p[:, u, v].max())
                mask[i, 0, r0 + u, c0 + v] = val > thr
                for ch in range(c):
                    old = float(x[i, ch, r0 + u, c0 + v])
                    pv = float(p[ch if p.shape[0] > 1 else 0, u, v])
                    img[i, ch, r0 + u, c0 + v] = (1 - alpha) * old + alpha * max(old, pv)
    return img, mask


# ----------------------------------------------------------------------------------------------
# plant_patches
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("positions", ["random", "corners"])
@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_plant_patches_against_hand_placement(positions: str, alpha: float) -> None:
    x = digits_like(20)
    patches = strokes(7, 5)
    y = torch.arange(20) % 10
    ps = plant_patches(x, patches, patch_size=5, seed=3, positions=positions, alpha=alpha, y=y)
    assert isinstance(ps, PlantedSet) and len(ps) == 20
    assert ps.mask.dtype == torch.bool and ps.mask.shape == (20, 1, 16, 16)
    assert torch.equal(ps.y, y) and torch.equal(ps.x_clean, x) and torch.equal(ps.source_index, torch.arange(20))
    # patches fully inside the image
    assert ((ps.position >= 0) & (ps.position <= 16 - 5)).all()
    if positions == "corners":
        assert {tuple(p) for p in ps.position.tolist()} <= {(0, 0), (0, 11), (11, 0), (11, 11)}
    assert 0 <= ps.patch_index.min() and ps.patch_index.max() < 7
    img, mask = expected_mask_and_image(x, patches, ps.patch_index, ps.position, 5, alpha, 0.1)
    assert torch.equal(ps.mask, mask)  # exactly the pasted ink above the threshold
    torch.testing.assert_close(ps.x, img, rtol=0, atol=1e-7)
    # unchanged outside the patch box; the mask lies inside the box
    box = ps.box()
    assert box.flatten(1).sum(1).tolist() == [25] * 20
    assert torch.equal(ps.x[~box], x[~box])
    assert not (ps.mask & ~box).any()
    # faint ink (0.07 at the patch's corner) was pasted but is not in the mask
    for i in range(20):
        r0, c0 = ps.position[i].tolist()
        assert not ps.mask[i, 0, r0, c0]


def test_plant_patches_deterministic_and_seeded() -> None:
    x, patches = digits_like(30), strokes(9, 4)
    a = plant_patches(x, patches, patch_size=4, seed=5)
    b = plant_patches(x, patches, patch_size=4, seed=5)
    c = plant_patches(x, patches, patch_size=4, seed=6)
    for f in ("x", "mask", "patch_index", "position"):
        assert torch.equal(getattr(a, f), getattr(b, f))
    assert not torch.equal(a.position, c.position)
    # the global RNG is neither used nor advanced
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    plant_patches(x, patches, patch_size=4, seed=5)
    assert torch.equal(torch.rand(1), before)
    # positions cover the whole allowed range, uniformly enough
    many = plant_patches(digits_like(2000), patches, patch_size=4, seed=1)
    assert many.position.min() == 0 and many.position.max() == 12
    assert set(many.patch_index.tolist()) == set(range(9))


def test_plant_patches_pairing_positions_resize_and_errors() -> None:
    x = digits_like(4)
    patches = strokes(4, 5)
    pos = torch.tensor([[0, 0], [11, 11], [3, 7], [11, 0]])
    ps = plant_patches(x, patches, patch_size=5, positions=pos)
    assert torch.equal(ps.patch_index, torch.arange(4)) and torch.equal(ps.position, pos)  # M == N: patch i -> image i
    # resizing: a 10x10 patch is resized to 5x5 with to_mnist_style
    big = strokes(4, 10)
    pr = plant_patches(x, big, patch_size=5, positions=pos)
    _, mask = expected_mask_and_image(x, to_mnist_style(big, 5), pr.patch_index, pos, 5, 1.0, 0.1)
    assert torch.equal(pr.mask, mask)
    with pytest.raises(ValueError, match="does not fit"):
        plant_patches(x, patches, patch_size=17)
    with pytest.raises(ValueError, match="outside the image"):
        plant_patches(x, patches, patch_size=5, positions=torch.tensor([[0, 0], [12, 0], [0, 0], [0, 0]]))
    with pytest.raises(ValueError, match="positions must be one of"):
        plant_patches(x, patches, patch_size=5, positions="center")
    with pytest.raises(ValueError, match="no pixel above threshold"):
        plant_patches(x, torch.zeros(4, 1, 5, 5), patch_size=5)
    with pytest.raises(ValueError, match="alpha"):
        plant_patches(x, patches, patch_size=5, alpha=0.0)
    with pytest.raises(ValueError, match="channels"):
        plant_patches(x, torch.rand(4, 2, 5, 5), patch_size=5)
    with pytest.raises(ValueError, match=r"patch_index must lie in \[0, 3\]"):
        plant_patches(x, patches, patch_size=5, patch_index=torch.tensor([0, 1, 2, 4]))


def test_planted_cause_set_selection_and_inversion() -> None:
    digits = SimpleNamespace(x=digits_like(50, 12, 12), y=torch.arange(50) % 10)
    light = 1.0 - strokes(40, 8)  # dark strokes on white, like Omniglot
    ps = planted_cause_set(digits, light, n=25, patch_size=4, seed=2)
    again = planted_cause_set(digits, light, n=25, patch_size=4, seed=2)
    assert torch.equal(ps.x, again.x) and torch.equal(ps.mask, again.mask)
    assert ps.source_index.unique().numel() == 25 and torch.equal(ps.source_index, ps.source_index.sort().values)
    assert ps.patch_index.unique().numel() == 25 and ps.patch_index.max() < 40
    assert torch.equal(ps.x_clean, digits.x[ps.source_index]) and torch.equal(ps.y, digits.y[ps.source_index])
    # "auto" inverted the light images: the same as passing the inverted patches by hand
    want = to_mnist_style(light[ps.patch_index], 4, invert=True)
    manual = plant_patches(digits.x[ps.source_index], want, patch_size=4, seed=2)
    assert torch.equal(manual.x, ps.x) and torch.equal(manual.mask, ps.mask)
    # bright-on-black foreign images are not inverted
    dark = strokes(40, 8)
    pd = planted_cause_set(digits, SimpleNamespace(x=dark), n=25, patch_size=4, seed=2)
    manual = plant_patches(digits.x[pd.source_index], to_mnist_style(dark[pd.patch_index], 4), patch_size=4, seed=2)
    assert torch.equal(manual.x, pd.x)
    with pytest.raises(ValueError, match="exceeds the number of foreign images"):
        planted_cause_set(digits, dark[:10], n=25, patch_size=4)
    with pytest.raises(TypeError, match="digits must have"):
        planted_cause_set(digits.x, dark, n=5, patch_size=4)


@pytest.mark.data
def test_planted_cause_set_on_real_data(mirror: Path, tmp_path: Path) -> None:
    from ualib.data import load

    mnist = load("mnist", "test", n=60, root=tmp_path, mirror=mirror, download=False)
    for name, split in (("notmnist", "test"), ("omniglot", "evaluation")):
        foreign = load(name, split, n=60, root=tmp_path, mirror=mirror, download=False)
        ps = planted_cause_set(mnist, foreign, n=40, patch_size=10, seed=0)
        assert ps.x.shape == (40, 1, 28, 28) and 0 <= ps.x.min() and ps.x.max() <= 1
        ink = ps.mask.flatten(1).sum(1)
        assert (ink > 5).all() and (ink < 100).all()  # strokes, not a filled 10x10 box (Omniglot inverted)
        box = ps.box()
        assert torch.equal(ps.x[~box], ps.x_clean[~box])
        assert (ps.x[ps.mask] >= ps.x_clean[ps.mask]).all()


# ----------------------------------------------------------------------------------------------
# localization metrics on hand-computed 4x4 examples
# ----------------------------------------------------------------------------------------------

A = torch.tensor(
    [
        [0.0, 1.0, -4.0, 0.0],
        [2.0, 3.0, 0.0, 0.0],
        [0.0, 0.0, 5.0, 0.0],
        [0.0, -1.0, 0.0, 1.0],
    ]
)
M = torch.zeros(4, 4, dtype=torch.bool)
M[0:2, 0:2] = True  # the top-left 2x2 block


def test_mass_in_mask_by_hand() -> None:
    a, m = A[None], M[None]
    # |a|: total 1+4+2+3+5+1+1 = 17, inside 1+2+3 = 6
    torch.testing.assert_close(mass_in_mask(a, m), torch.tensor([6 / 17]))
    # positive part: total 1+2+3+5+1 = 12, inside 6
    torch.testing.assert_close(mass_in_mask(a, m, positive_only=True), torch.tensor([6 / 12]))
    # channels are summed (signed) first: channels 1 and -1 cancel at (0, 0)
    a2 = torch.zeros(1, 2, 4, 4)
    a2[0, 0, 0, 0], a2[0, 1, 0, 0], a2[0, 0, 3, 3] = 1.0, -1.0, 2.0
    torch.testing.assert_close(mass_in_mask(a2, M[None, None]), torch.tensor([0.0]))
    # uniform map: chance level |mask| / HW; an all-zero map: NaN
    torch.testing.assert_close(mass_in_mask(torch.ones(1, 4, 4), m), torch.tensor([4 / 16]))
    assert torch.isnan(mass_in_mask(torch.zeros(1, 4, 4), m)).all()
    assert torch.isnan(mass_in_mask(-torch.ones(1, 4, 4), m, positive_only=True)).all()


def test_pointing_game_by_hand_and_tolerance() -> None:
    a, m = A[None], M[None]
    # the maximum 5 is at (2, 2): outside the 2x2 block; distance to (1, 1) is sqrt(2)
    assert pointing_game(a, m).tolist() == [False]
    assert pointing_game(a, m, tolerance=1).tolist() == [False]  # the disk of radius 1 does not reach diagonals
    assert pointing_game(a, m, tolerance=2).tolist() == [True]
    a2 = A.clone()
    a2[2, 2] = 0.0  # now the maximum is 3 at (1, 1): inside
    assert pointing_game(a2[None], m).tolist() == [True]
    # ties go to the lowest flat index: an all-equal map points at (0, 0)
    assert pointing_game(torch.zeros(1, 4, 4), m).tolist() == [True]
    m2 = torch.zeros(1, 4, 4, dtype=torch.bool)
    m2[0, 2, 0] = True  # (2, 0): distance 1 from (2, 1), 2 from (2, 2)
    b = torch.zeros(1, 4, 4)
    b[0, 2, 2] = 1.0
    assert [pointing_game(b, m2, tolerance=t).item() for t in (0, 1, 2)] == [False, False, True]
    with pytest.raises(ValueError, match="non-empty mask"):
        pointing_game(a, torch.zeros(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(a, m, tolerance=-1)
    with pytest.raises(TypeError, match="torch.bool"):
        pointing_game(a, m.float())


def test_pointing_game_tolerance_matches_distance() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(50, 1, 9, 9, generator=g)
    m = torch.rand(50, 1, 9, 9, generator=g) > 0.93
    m[:, 0, 4, 4] = True
    for tol in (0, 1, 2, 3):
        got = pointing_game(a, m, tolerance=tol)
        for i in range(50):
            r, c = divmod(int(a[i, 0].flatten().argmax()), 9)
            pts = m[i, 0].nonzero().float()
            d = ((pts - torch.tensor([r, c]).float()) ** 2).sum(1).sqrt().min()
            assert bool(got[i]) == bool(d <= tol)


def test_relevance_rank_accuracy_by_hand() -> None:
    a, m = A[None], M[None]
    # K = 4; the top-4 values are 5 (2,2), 3 (1,1), 2 (1,0), 1 (0,1) [tie with (3,3); (0,1) has the lower index]
    torch.testing.assert_close(relevance_rank_accuracy(a, m), torch.tensor([3 / 4]))
    # the tie broken the other way would still give 3/4; a map exactly on the mask gives 1
    torch.testing.assert_close(relevance_rank_accuracy(M[None].float(), m), torch.tensor([1.0]))
    # ties decide: a constant map ranks in reading order, whose first 4 pixels are row 0: 2 of them in the mask
    torch.testing.assert_close(relevance_rank_accuracy(torch.zeros(1, 4, 4), m), torch.tensor([0.5]))
    # batch of two with masks of different sizes and a [B, 1, H, W] mask
    m2 = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    m2[0, 0, 2, 2] = True
    m2[1, 0, 3, :] = True  # K = 4: bottom row; top-4 of A are (2,2),(1,1),(1,0),(0,1) -> none in row 3
    torch.testing.assert_close(relevance_rank_accuracy(A.expand(2, 1, 4, 4), m2), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="non-empty mask"):
        relevance_rank_accuracy(a, torch.zeros(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="same batch and spatial size"):
        relevance_rank_accuracy(a, torch.ones(1, 4, 5, dtype=torch.bool))


def test_metrics_on_a_planted_set() -> None:
    """An oracle map (the mask itself) scores 1 on every metric; its complement scores 0."""
    ps = plant_patches(digits_like(10), strokes(10, 5), patch_size=5, seed=4)
    oracle = ps.mask.float() * (1 + torch.rand(10, 1, 16, 16, generator=torch.Generator().manual_seed(0)))
    anti = (~ps.mask).float()
    assert torch.equal(mass_in_mask(oracle, ps.mask), torch.ones(10))
    assert pointing_game(oracle, ps.mask).all() and not pointing_game(anti, ps.mask).any()
    assert torch.equal(relevance_rank_accuracy(oracle, ps.mask), torch.ones(10))
    assert torch.equal(relevance_rank_accuracy(anti, ps.mask), torch.zeros(10))
    assert torch.equal(mass_in_mask(anti, ps.mask), torch.zeros(10))
    # a numpy reference for the rank accuracy of random maps
    r = torch.randn(10, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    got = relevance_rank_accuracy(r, ps.mask)
    for i in range(10):
        flat, mk = r[i, 0].numpy().ravel(), ps.mask[i, 0].numpy().ravel()
        order = sorted(range(flat.size), key=lambda p: (-flat[p], p))
        k = int(mk.sum())
        assert got[i].item() == pytest.approx(np.mean(mk[order[:k]]))
