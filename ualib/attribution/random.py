"""The random attribution: uniform noise, the baseline every explanation method should beat."""

from __future__ import annotations

import torch

from ualib.attribution._common import check_input
from ualib.seeding import generator

__all__ = ["random_attribution"]


def random_attribution(x: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """Independent :math:`U(0, 1)` values shaped like ``x``: a method-free control for evaluations.

    The values are drawn in float64 on the CPU from ``ualib.seeding.generator(seed, "random")``
    (the global RNG is not touched), then cast to ``x``'s dtype and device, so the same ``seed`` and
    shape give the same tensor on every device. Each input gets its own draw, so (unlike the other
    methods) the map of an input depends on its position in the batch.

    Parameters
    ----------
    x
        Inputs ``[B, C, H, W]`` or ``[B, F]``; only the shape, dtype and device are used.
    seed
        Seed of the generator.

    Returns
    -------
    torch.Tensor
        Uniform noise in ``[0, 1)``, shaped like ``x``.

    Raises
    ------
    TypeError, ValueError
        If ``x`` is not a finite floating tensor of rank 2 or 4, or ``seed`` is not an int.

    References
    ----------
    S. Hooker, D. Erhan, P.-J. Kindermans, B. Kim. A benchmark for interpretability methods in deep
    neural networks. NeurIPS 2019 (random attribution as the control of ROAR).

    Examples
    --------
    >>> import torch, ualib
    >>> x = torch.rand(2, 1, 8, 8)
    >>> a = ualib.random_attribution(x, seed=3)
    >>> tuple(a.shape), torch.equal(a, ualib.random_attribution(x, seed=3)), bool(((a >= 0) & (a < 1)).all())
    ((2, 1, 8, 8), True, True)
    """
    x = check_input(x)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    u = torch.rand(x.shape, generator=generator(seed, "random"), dtype=torch.float64)
    return u.to(dtype=x.dtype, device=x.device)
