"""Gaussian blur of images, the "blurred" baseline of integrated gradients and of perturbation curves."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ualib._checks import check_tensor
from ualib.attribution._common import check_nonnegative_float

__all__ = ["gaussian_blur", "gaussian_kernel1d"]


def gaussian_kernel1d(sigma: float, *, truncate: float = 4.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The normalised 1-d Gaussian kernel ``[2r + 1]`` with radius ``r = int(truncate * sigma + 0.5)``.

    The same kernel as ``scipy.ndimage.gaussian_filter`` (``exp(-i^2 / (2 sigma^2))`` for
    ``i = -r..r``, divided by its sum).
    """
    sigma = check_nonnegative_float(sigma, "sigma", positive=True)
    truncate = check_nonnegative_float(truncate, "truncate")
    radius = int(truncate * sigma + 0.5)
    i = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (i / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def _reflect_index(n: int, radius: int, device: torch.device) -> torch.Tensor:
    """Source indices of ``range(-radius, n + radius)`` under reflection about the edge samples
    (``d c b | a b c d | c b a``), repeated as often as needed when ``radius >= n``."""
    i = torch.arange(-radius, n + radius, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def gaussian_blur(x: torch.Tensor, sigma: float, *, truncate: float = 4.0) -> torch.Tensor:
    """Blur the last two (spatial) axes of ``x`` with an isotropic Gaussian of standard deviation ``sigma``.

    The kernel is separable and applied as two ``conv2d`` passes (rows, then columns) over every
    channel independently; the borders are padded by *reflection about the edge sample*
    (``d c b | a b c d | c b a``, PyTorch's ``"reflect"`` padding), repeated when the kernel radius
    exceeds the image size (so 8 x 8 digits can be blurred with a wide kernel). This equals
    ``scipy.ndimage.gaussian_filter(x, sigma=(0, ..., 0, sigma, sigma), mode="mirror",
    truncate=truncate)``; note that SciPy's own ``mode="reflect"`` repeats the edge sample
    (``d c b a | a b c d``) and differs at the borders.

    Parameters
    ----------
    x
        Images ``[..., H, W]``, typically ``[B, C, H, W]``; floating point.
    sigma
        Standard deviation in pixels, >= 0; ``0`` returns a copy of ``x``.
    truncate
        Kernel radius in standard deviations (SciPy's default 4.0).

    Returns
    -------
    torch.Tensor
        The blurred images, same shape, dtype and device as ``x``; differentiable with respect to ``x``.

    Raises
    ------
    ValueError
        If ``x`` has fewer than 2 dimensions, contains NaN/inf, or ``sigma`` is negative.
    TypeError
        If ``x`` is not a floating tensor.
    """
    check_tensor(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 (spatial) dimensions [..., H, W], got shape {tuple(x.shape)}")
    if check_nonnegative_float(sigma, "sigma") == 0 or int(truncate * sigma + 0.5) == 0:
        return x.clone()
    kernel = gaussian_kernel1d(sigma, truncate=truncate, dtype=x.dtype).to(x.device)
    radius = (kernel.numel() - 1) // 2
    h, w = x.shape[-2:]
    if x.numel() == 0:
        return x.clone()
    y = x.reshape(-1, 1, h, w)
    y = F.conv2d(y.index_select(2, _reflect_index(h, radius, x.device)), kernel.view(1, 1, -1, 1))
    y = F.conv2d(y.index_select(3, _reflect_index(w, radius, x.device)), kernel.view(1, 1, 1, -1))
    return y.reshape(x.shape)
