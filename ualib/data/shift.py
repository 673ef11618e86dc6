"""Distribution shift and out-of-distribution inputs built from real images.

Each function is deterministic (noise comes from a generator seeded with the given seed) and keeps
the MNIST convention: images ``[N, 1, H, W]`` in ``[0, 1]``, bright strokes on a dark background.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from ualib._checks import check_tensor
from ualib.seeding import generator

__all__ = ["rotate", "gaussian_noise", "uniform_noise", "to_mnist_style", "take"]


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate images ``[N, C, H, W]`` counter-clockwise by ``degrees`` (bilinear, zero fill)."""
    check_tensor(x, "x", ndim=4)
    return TF.rotate(x, float(degrees), interpolation=TF.InterpolationMode.BILINEAR)


def gaussian_noise(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """Add N(0, std^2) pixel noise and clip to ``[0, 1]``."""
    check_tensor(x, "x", ndim=4)
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    noise = torch.randn(x.shape, generator=generator(seed, "gaussian_noise"), dtype=x.dtype)
    return (x + std * noise.to(x.device)).clamp(0, 1)


def uniform_noise(n: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """``n`` images of i.i.d. U(0, 1) pixels, shape ``[n, *shape]``."""
    return torch.rand((n, *shape), generator=generator(seed, "uniform_noise"))


def to_mnist_style(x: torch.Tensor, size: int, *, invert: bool = False) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` to ``size x size`` grayscale (antialiased), optionally inverting it.

    Omniglot stores dark strokes on white: ``invert=True`` turns them into MNIST's bright strokes.
    """
    check_tensor(x, "x", ndim=4)
    if x.shape[1] == 3:
        x = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    if invert:
        x = 1.0 - x
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1)


def take(x: torch.Tensor, n: int | None, seed: int = 0) -> torch.Tensor:
    """``n`` rows of ``x`` drawn without replacement by a generator seeded with ``seed`` (all if ``n`` is None)."""
    if n is None or n >= len(x):
        return x
    idx = torch.randperm(len(x), generator=generator(seed, "take"))[:n]
    return x[idx.sort().values]
