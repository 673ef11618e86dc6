"""Does an attribution map point at a known cause? Localization metrics against a ground-truth mask.

With a planted cause (:mod:`ualib.data.planted`) the pixels responsible for a change in the prediction or
its uncertainty are known. Three standard scores compare an attribution map with such a mask:

* :func:`mass_in_mask`: the share of the attribution mass that falls inside the mask;
* :func:`pointing_game`: whether the single most-attributed pixel hits the mask (Zhang et al. 2018);
* :func:`relevance_rank_accuracy`: the share of the ``|mask|`` top-ranked pixels inside the mask
  (Arras et al. 2022).

Conventions: an attribution is ``[B, C, H, W]`` or ``[B, H, W]`` and is **summed over channels**
first (signed), as for the perturbation metrics (:mod:`ualib.metrics.perturbation`); a mask is boolean
``[B, 1, H, W]``, ``[B, C, H, W]`` (a pixel is in the mask if any channel is) or ``[B, H, W]``.
Ranking ties are broken by the flat pixel index ``h * W + w``, lower first
(:func:`ualib.metrics.perturbation.pixel_order`).

References
----------
.. [1] J. Zhang, S. A. Bargal, Z. Lin, J. Brandt, X. Shen, S. Sclaroff. "Top-down Neural Attention by
   Excitation Backprop." IJCV 126, 2018 (ECCV 2016).
.. [2] L. Arras, A. Osman, W. Samek. "CLEVR-XAI: A benchmark dataset for the ground truth evaluation
   of neural network explanations." Information Fusion 81, 2022.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ualib.metrics.perturbation import _channel_sum, pixel_order

__all__ = ["mass_in_mask", "pointing_game", "relevance_rank_accuracy"]


def _prepare(attribution: object, mask: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-summed attribution ``[B, H, W]`` and boolean pixel mask ``[B, H, W]``."""
    a = _channel_sum(attribution, "attribution")
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must have dtype torch.bool, got {mask.dtype}")
    if mask.ndim not in (3, 4):
        raise ValueError(f"mask must have shape [B, H, W] or [B, C, H, W], got {tuple(mask.shape)}")
    m = mask.any(1) if mask.ndim == 4 else mask
    if m.shape != a.shape:
        raise ValueError(
            f"mask and attribution must have the same batch and spatial size [B, H, W]: mask gives "
            f"{tuple(m.shape)}, attribution {tuple(a.shape)}"
        )
    return a, m.to(a.device)


def _require_nonempty(m: torch.Tensor, fn: str) -> None:
    empty = ~m.flatten(1).any(1)
    if empty.any():
        idx = empty.nonzero().flatten().tolist()
        raise ValueError(f"{fn} needs a non-empty mask for every input; the masks of inputs {idx[:10]} are empty")


def mass_in_mask(attribution: torch.Tensor, mask: torch.Tensor, *, positive_only: bool = False) -> torch.Tensor:
    """Fraction of the attribution mass inside the mask.

    The attribution is summed over channels (signed) to a pixel map ``a``; its mass is ``|a|``
    (default) or, with ``positive_only=True``, the positive part ``max(a, 0)``. The score is
    ``sum_{p in mask} mass_p / sum_p mass_p``, in ``[0, 1]``. The absolute value is the default because
    attribution methods differ in sign conventions (Grad is signed, UA-Backprop is non-negative) and a
    large negative value still marks a pixel as relevant; ``positive_only`` counts only evidence *for*
    the target. Uniform attribution scores ``|mask| / (H W)`` (the chance level).

    Parameters
    ----------
    attribution
        ``[B, C, H, W]`` or ``[B, H, W]``.
    mask
        Boolean ``[B, 1, H, W]``, ``[B, C, H, W]`` or ``[B, H, W]``.
    positive_only
        Use the positive part instead of the absolute value.

    Returns
    -------
    torch.Tensor
        ``[B]``, ``NaN`` where the map has no mass (all zero, or no positive entry with
        ``positive_only``).
    """
    a, m = _prepare(attribution, mask)
    w = a.clamp(min=0) if positive_only else a.abs()
    total = w.flatten(1).sum(1)
    inside = (w * m).flatten(1).sum(1)
    safe = total.where(total > 0, torch.ones_like(total))
    return torch.where(total > 0, inside / safe, torch.full_like(total, float("nan")))


def pointing_game(attribution: torch.Tensor, mask: torch.Tensor, *, tolerance: int = 0) -> torch.Tensor:
    """Whether the most-attributed pixel lies in the mask, up to ``tolerance`` pixels (pointing game).

    The maximum of the channel-summed (signed) attribution is the "pointed" pixel; of several equal
    maxima the one with the lowest flat index ``h * W + w`` is taken (so an all-equal map points at
    pixel ``(0, 0)``). It is a hit if it lies within Euclidean distance ``tolerance`` of a mask pixel,
    i.e. in the mask dilated by a disk of radius ``tolerance`` (Zhang et al. used 15 pixels on
    full-size images; 0 means the pixel itself must be in the mask).

    Parameters
    ----------
    attribution
        ``[B, C, H, W]`` or ``[B, H, W]``.
    mask
        Boolean ``[B, 1, H, W]``, ``[B, C, H, W]`` or ``[B, H, W]``; every mask must be non-empty.
    tolerance
        Dilation radius in pixels, ``>= 0``.

    Returns
    -------
    torch.Tensor
        Boolean ``[B]``; its mean is the pointing-game accuracy.

    References
    ----------
    .. [1] J. Zhang et al. "Top-down Neural Attention by Excitation Backprop." IJCV 2018.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance must be an integer >= 0 (pixels), got {tolerance!r}")
    a, m = _prepare(attribution, mask)
    _require_nonempty(m, "pointing_game")
    if tolerance > 0:
        t = torch.arange(-tolerance, tolerance + 1, device=m.device)
        disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= tolerance**2).to(torch.float32)
        m = F.conv2d(m[:, None].to(torch.float32), disk[None, None], padding=tolerance)[:, 0] > 0.5
    top = pixel_order(a)[:, 0]
    return m.flatten(1).gather(1, top[:, None])[:, 0]


def relevance_rank_accuracy(attribution: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fraction of the ``K = |mask|`` top-ranked pixels that lie inside the mask (relevance rank accuracy).

    Pixels are ranked by the channel-summed (signed) attribution, descending, ties by flat pixel index
    (:func:`ualib.metrics.perturbation.pixel_order`); with ``K`` the number of mask pixels of that input, the
    score is ``|top-K ∩ mask| / K`` (Arras et al. 2022). It is 1 when the mask's pixels are exactly the
    ``K`` most relevant ones, and ``K / (H W)`` in expectation for a random ranking.

    Parameters
    ----------
    attribution
        ``[B, C, H, W]`` or ``[B, H, W]``.
    mask
        Boolean ``[B, 1, H, W]``, ``[B, C, H, W]`` or ``[B, H, W]``; every mask must be non-empty.

    Returns
    -------
    torch.Tensor
        ``[B]`` in ``[0, 1]``, float dtype of the attribution.

    References
    ----------
    .. [1] L. Arras, A. Osman, W. Samek. "CLEVR-XAI: A benchmark dataset for the ground truth evaluation
       of neural network explanations." Information Fusion 81, 2022.
    """
    a, m = _prepare(attribution, mask)
    _require_nonempty(m, "relevance_rank_accuracy")
    mf = m.flatten(1)
    k = mf.sum(1)
    in_mask_by_rank = mf.gather(1, pixel_order(a))  # [B, HW]: is the pixel of rank j in the mask?
    top = torch.arange(mf.shape[1], device=mf.device)[None, :] < k[:, None]
    return (in_mask_by_rank & top).sum(1).to(a.dtype) / k.to(a.dtype)
