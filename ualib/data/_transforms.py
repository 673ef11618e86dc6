"""Post-processing shared by the image loaders: first-``n`` selection, scaling, grayscale, resizing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["take", "to_unit_float", "to_grayscale", "resize", "LUMA_601"]

#: ITU-R BT.601 luma weights for (R, G, B)
LUMA_601 = (0.299, 0.587, 0.114)


def take(n: int | None, total: int, what: str) -> int:
    """How many examples to return: ``total`` if ``n`` is ``None``, else ``n``.

    Raises
    ------
    ValueError
        If ``n`` exceeds ``total``.
    """
    if n is None:
        return total
    if n > total:
        raise ValueError(f"n={n} exceeds the {total} examples of {what}")
    return n


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """``uint8`` images ``[N, C, H, W]`` -> ``float32`` in ``[0, 1]`` (x / 255); float input is cast."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x.to(torch.float32)


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """RGB ``[N, 3, H, W]`` -> luminance ``[N, 1, H, W]`` with ITU-R 601 weights; 1-channel input is returned."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"grayscale=True needs 1 or 3 channels, got shape {tuple(x.shape)}")
    w = torch.tensor(LUMA_601, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def resize(x: torch.Tensor, size: int, *, chunk: int = 4096) -> torch.Tensor:
    """Resize ``float`` images ``[N, C, H, W]`` to ``[N, C, size, size]``.

    Bilinear with ``antialias=True`` and ``align_corners=False`` (``torch.nn.functional.interpolate``),
    in chunks of ``chunk`` images, clamped to ``[0, 1]`` against rounding.
    """
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return x
    out = torch.empty((n, c, size, size), dtype=x.dtype, device=x.device)
    for start in range(0, n, chunk):
        block = x[start : start + chunk]
        out[start : start + chunk] = F.interpolate(
            block, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return out.clamp_(0.0, 1.0)
