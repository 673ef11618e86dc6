"""Random crop with zero padding and horizontal flip, against a naive float64 search over all shifts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ualib.data.augment import augment, crop_flip


def _candidates(img: np.ndarray, padding: int) -> list[np.ndarray]:
    """Every crop of the zero-padded image and its mirror image, built pixel by pixel."""
    c, h, w = img.shape
    padded = np.zeros((c, h + 2 * padding, w + 2 * padding))
    for ch in range(c):
        for i in range(h):
            for j in range(w):
                padded[ch, i + padding, j + padding] = img[ch, i, j]
    out = []
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            out += [crop, crop[:, :, ::-1]]
    return out


def test_every_output_is_a_padded_crop_or_its_mirror():
    x = torch.rand(24, 3, 6, 6)
    out = crop_flip(x, torch.Generator().manual_seed(3), padding=2)
    assert out.shape == x.shape and out.dtype == x.dtype
    for img, o in zip(x.double().numpy(), out.double().numpy()):
        assert any(np.array_equal(o, c) for c in _candidates(img, 2))


def test_offsets_and_flips_cover_their_range():
    """Over many images, all 25 offsets and both orientations occur (a fixed crop would fail)."""
    x = torch.rand(400, 1, 5, 5) + 1.0  # no zeros inside, so the offset is read off the zero border
    out = crop_flip(x, torch.Generator().manual_seed(0), padding=2)
    unflipped = 0
    offsets = set()
    for img, o in zip(x.numpy(), out.numpy()):
        for k, c in enumerate(_candidates(img, 2)):
            if np.array_equal(o, c):
                offsets.add(k // 2)
                unflipped += k % 2 == 0
                break
    assert offsets == set(range(25))
    assert 150 < unflipped < 250  # fair coin: 200 +- 5 SD


def test_seeded_and_validated():
    x = torch.rand(8, 3, 8, 8)
    a = crop_flip(x, torch.Generator().manual_seed(1))
    b = crop_flip(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert torch.equal(augment("crop_flip", x, torch.Generator().manual_seed(1)), a)
    with pytest.raises(ValueError, match="augment must be one of"):
        augment("cutout", x, torch.Generator())
    with pytest.raises(ValueError):
        crop_flip(x[0], torch.Generator())
    with pytest.raises(ValueError):
        crop_flip(x, torch.Generator(), padding=0)
