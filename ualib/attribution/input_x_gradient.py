"""Input x gradient: the elementwise product of the input with the target's gradient."""

from __future__ import annotations

import torch

from ualib.attribution._common import Target
from ualib.attribution.gradient import gradient

__all__ = ["input_x_gradient"]


def input_x_gradient(target: Target, x: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
    r"""Raw input x gradient attribution :math:`x \odot \nabla_x F(x)` (book: chapter 8, "Which map should I trust?", section "Every method, every map" — notebooks/08_method_comparison.ipynb).

    Complete (:math:`\sum_i x_i\,\partial_i F(x) = F(x)`) only for positively homogeneous
    (bias-free ReLU) targets; in general it is the first-order Taylor term around the zero input.

    Parameters
    ----------
    target
        The explained scalar :math:`F`: a differentiable function ``x [B, ...] -> [B]``
        (see :mod:`ualib.targets`), row-wise in the batch.
    x
        Inputs ``[B, C, H, W]`` or ``[B, F]``, floating point. Not modified.
    batch_size
        Evaluate the target on at most this many inputs at a time (``None``: all at once).

    Returns
    -------
    torch.Tensor
        :math:`x_b \odot \partial F(x_b)/\partial x_b`, shaped like ``x``, signed, detached.

    Raises
    ------
    TypeError, ValueError
        As :func:`ualib.attribution.gradient`.

    References
    ----------
    A. Shrikumar, P. Greenside, A. Shcherbina, A. Kundaje. Not just a black box: learning important
    features through propagating activation differences. arXiv:1605.01713, 2016.

    M. Ancona, E. Ceolini, C. Öztireli, M. Gross. Towards better understanding of gradient-based
    attribution methods for deep neural networks. ICLR 2018.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    >>> post = ualib.MCDropout(net, num_samples=8)
    >>> target, x = ualib.uncertainty_target(post, "epistemic"), torch.rand(2, 4)
    >>> maps = ualib.input_x_gradient(target, x)
    >>> tuple(maps.shape), torch.allclose(maps, x * ualib.gradient(target, x))
    ((2, 4), True)
    """
    grad = gradient(target, x, batch_size=batch_size)  # validates target, x and batch_size
    return x.detach() * grad
