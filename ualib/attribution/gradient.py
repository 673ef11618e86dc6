"""Gradient (saliency): the derivative of a scalar target with respect to the input."""

from __future__ import annotations

import torch

from ualib.attribution._common import Target, accumulate_gradients, check_batch_size, check_input, check_target

__all__ = ["gradient"]


def gradient(target: Target, x: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
    r"""Raw gradient attribution :math:`\nabla_x F(x)` (book: chapter 8, "Which map should I trust?", section "Every method, every map" — notebooks/08_method_comparison.ipynb).

    Signed and per input element: no absolute value, no maximum over channels, no normalisation
    (those belong to the plotting layer).

    Parameters
    ----------
    target
        The explained scalar :math:`F`: a differentiable function ``x [B, ...] -> [B]`` (a class logit,
        a probability, an uncertainty; see :mod:`ualib.targets`). Row ``b`` of the output must depend
        on row ``b`` of the input only.
    x
        Inputs ``[B, C, H, W]`` (images) or ``[B, F]`` (tables), floating point. Not modified.
    batch_size
        Evaluate the target on at most this many inputs at a time (``None``: all ``B`` at once).
        The result does not depend on it.

    Returns
    -------
    torch.Tensor
        :math:`\partial F(x_b) / \partial x_b`, shaped like ``x``, detached.

    Raises
    ------
    TypeError
        If ``target`` is not callable or ``x`` is not a floating tensor.
    ValueError
        If ``x`` has the wrong rank or non-finite entries, or the target does not return a
        differentiable ``[B]`` tensor.

    References
    ----------
    K. Simonyan, A. Vedaldi, A. Zisserman. Deep inside convolutional networks: visualising image
    classification models and saliency maps. ICLR Workshop 2014.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    >>> post = ualib.MCDropout(net, num_samples=8)
    >>> maps = ualib.gradient(ualib.uncertainty_target(post, "epistemic"), torch.rand(2, 4))
    >>> tuple(maps.shape)
    (2, 4)
    """
    check_target(target)
    x = check_input(x).detach()
    batch_size = check_batch_size(batch_size)
    return accumulate_gradients(target, x, lambda rep, b: x[b], 1, batch_size)
