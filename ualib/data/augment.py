"""Training-time data augmentation: random crops with zero padding and horizontal flips.

The standard CIFAR-10 augmentation of residual networks (He et al. 2016, "Deep Residual Learning for
Image Recognition", §4.2: "4 pixels are padded on each side, and a 32x32 crop is randomly sampled from
the padded image or its horizontal flip"). It runs on whole batches with an explicit generator, so
that a training run is reproducible from its seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ualib._checks import check_positive_int, check_tensor

__all__ = ["AUGMENTATIONS", "crop_flip", "augment"]

#: the augmentations :func:`augment` (and ``TrainConfig.augment``) accepts
AUGMENTATIONS = ("crop_flip",)


def crop_flip(x: torch.Tensor, generator: torch.Generator, *, padding: int = 4) -> torch.Tensor:
    """Each image of ``x [B, C, H, W]`` shifted by a random crop of its ``padding``-zero-padded copy, then
    flipped left-right with probability 1/2; returns a new tensor of the same shape.

    Offsets are drawn uniformly from ``0 .. 2 * padding`` in both directions (``padding`` gives the
    original position), the flips from a fair coin, all from ``generator`` (on the CPU).

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(16.0).view(1, 1, 4, 4)
    >>> out = crop_flip(x, torch.Generator().manual_seed(0), padding=1)
    >>> out.shape, bool(set(out.unique().tolist()) <= set(range(16)))
    (torch.Size([1, 1, 4, 4]), True)
    """
    check_tensor(x, "x", ndim=4, floating=True)
    check_positive_int(padding, "padding")
    b, _, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5
    padded = F.pad(x, (padding, padding, padding, padding))
    out = torch.empty_like(x)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        out[i] = padded[i, :, dy : dy + h, dx : dx + w]
    flips = flips.to(x.device)
    return torch.where(flips[:, None, None, None], out.flip(-1), out)


def augment(name: str, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply the augmentation called ``name`` (one of :data:`AUGMENTATIONS`) to the batch ``x``."""
    if name == "crop_flip":
        return crop_flip(x, generator)
    raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {name!r}")
