"""SmoothGrad: the input gradient averaged over Gaussian perturbations of the input."""

from __future__ import annotations

import torch

from ualib._checks import check_positive_int, check_tensor
from ualib.attribution._common import (
    Target,
    accumulate_gradients,
    check_batch_size,
    check_input,
    check_nonnegative_float,
    check_target,
)
from ualib.seeding import generator

__all__ = ["smoothgrad"]


def smoothgrad(
    target: Target,
    x: torch.Tensor,
    *,
    n_samples: int = 50,
    sigma: float = 0.15,
    seed: int = 0,
    noise: torch.Tensor | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    r"""Raw SmoothGrad attribution :math:`\frac1n\sum_{j=1}^n \nabla_x F(x + \epsilon_j)` (book: chapter 8, "Which map should I trust?", section "Every method, every map" — notebooks/08_method_comparison.ipynb).

    The noise is :math:`\epsilon_j = \sigma\,(\max x_b - \min x_b)\, z_j` with
    :math:`z_j \sim \mathcal N(0, I)`, the range taken over each input's own entries. The draws
    :math:`z_1, \dots, z_n` (shape ``x.shape[1:]``) come from the generator
    ``ualib.seeding.generator(seed, "smoothgrad")``, in float64 on the CPU, and are **shared by every
    input of the batch**, as a posterior sample is: each input still sees ``n`` independent
    Gaussian perturbations, and the result for an input does not depend on which other inputs share
    its batch, on ``batch_size`` or on the device. The global RNG is not touched.

    Parameters
    ----------
    target
        The explained scalar :math:`F`: a differentiable function ``x [B, ...] -> [B]``
        (see :mod:`ualib.targets`), row-wise in the batch.
    x
        Inputs ``[B, C, H, W]`` or ``[B, F]``, floating point. Not modified.
    n_samples
        n, the number of noisy copies per input (ignored when ``noise`` is given).
    sigma
        Noise level relative to each input's value range, >= 0 (ignored when ``noise`` is given).
    seed
        Seed of the noise generator (ignored when ``noise`` is given).
    noise
        Explicit perturbations :math:`\epsilon` ``[n, B, ...]`` (absolute, not scaled by ``sigma``);
        ``x[b] + noise[j, b]`` is the j-th noisy copy of input ``b``.
    batch_size
        Evaluate the target on at most this many of the ``n * B`` noisy inputs at a time (``None``:
        all at once). The result does not depend on it.

    Returns
    -------
    torch.Tensor
        The mean gradient, shaped like ``x``, signed, detached.

    Raises
    ------
    TypeError
        If ``target`` is not callable, ``x``/``noise`` are not floating tensors or ``seed`` is not an int.
    ValueError
        On a wrong rank of ``x``, a ``noise`` not shaped ``[n, *x.shape]``, ``n_samples < 1``,
        ``sigma < 0``, or a target that does not return a differentiable ``[B]`` tensor.

    References
    ----------
    D. Smilkov, N. Thorat, B. Kim, F. Viégas, M. Wattenberg. SmoothGrad: removing noise by adding
    noise. ICML Workshop on Visualization for Deep Learning, 2017 (arXiv:1706.03825).

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    >>> x = torch.rand(2, 1, 8, 8)
    >>> maps = ualib.smoothgrad(ualib.class_logit(net, 0), x, n_samples=8, sigma=0.15, seed=0)
    >>> tuple(maps.shape)
    (2, 1, 8, 8)
    """
    check_target(target)
    x = check_input(x).detach()
    batch_size = check_batch_size(batch_size)
    if noise is not None:
        check_tensor(noise, "noise", ndim=x.ndim + 1)
        if noise.shape[1:] != x.shape or noise.shape[0] < 1:
            raise ValueError(
                f"noise must be shaped [n_samples, *x.shape] = [n, {', '.join(map(str, x.shape))}] with n >= 1, "
                f"got {tuple(noise.shape)}"
            )
        eps = noise.detach().to(dtype=x.dtype, device=x.device)
        n = eps.shape[0]

        def point(rep: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return x[b] + eps[rep, b]

    else:
        n = check_positive_int(n_samples, "n_samples")
        sigma = check_nonnegative_float(sigma, "sigma")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        z = torch.randn((n, *x.shape[1:]), generator=generator(seed, "smoothgrad"), dtype=torch.float64)
        z = z.to(dtype=x.dtype, device=x.device)
        dims = tuple(range(1, x.ndim))
        scale = (sigma * (x.detach().amax(dims) - x.detach().amin(dims))).view(-1, *([1] * (x.ndim - 1)))

        def point(rep: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return x[b] + scale[b] * z[rep]

    return accumulate_gradients(target, x, point, n, batch_size) / n
