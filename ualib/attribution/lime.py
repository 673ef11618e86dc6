"""LIME for images through the ``lime`` package, with batched perturbation queries.

LIME (Ribeiro, Singh & Guestrin 2016) explains a black-box score :math:`F` near an input :math:`x`
by a weighted linear model over interpretable on/off features, here superpixels:

.. math::

    \\xi(x) = \\arg\\min_{g}\\sum_{z}\\pi_x(z)\\,\\bigl(F(z) - g(z')\\bigr)^2 + \\Omega(g),
    \\qquad \\pi_x(z) = \\exp\\bigl(-D(x, z)^2/\\sigma^2\\bigr),

where :math:`z'\\in\\{0,1\\}^P` switches the :math:`P` superpixels on or off, :math:`z` is the image
with the "off" superpixels replaced by a hiding value, :math:`D` is the cosine distance between
:math:`z'` and the all-ones vector, and :math:`g` is a ridge regression (``alpha=1``). The weight of
superpixel :math:`p` is the attribution of every pixel in it.

What this module adds to ``lime.lime_image.LimeImageExplainer``
----------------------------------------------------------------
* **Several targets at once.** The target may return ``[n, T]``: column ``t`` is one scalar
  function (for explanation uncertainty, one *frozen posterior sample*). LIME draws its ``num_samples``
  on/off vectors once, every column is evaluated on the same perturbed images in one call, and one
  ridge regression per column is fitted (``lime`` fits each label column independently), so the
  result for column ``t`` equals a separate LIME run that explains column ``t`` alone with the same
  seed. This is what makes LIME affordable on a posterior: one forward pass over the
  ``S x num_samples`` perturbed images per image instead of ``S`` LIME runs.
* **Vectorised neighbourhood.** ``lime``'s ``data_labels`` builds the perturbed images one by one in
  a Python loop (and shows a ``tqdm.auto`` bar); here they are built in chunks of ``batch_size`` with
  NumPy indexing, from the same random on/off matrix, so the images, the labels and hence the
  explanation are the same as ``lime``'s (a test checks this against ``lime``'s own loop).
* **A segmentation that works for tiny grayscale images.** LIME's default quickshift
  (``kernel_size=4, max_dist=200, ratio=0.2``) expects natural RGB images of a few hundred pixels per
  side; on 8x8 or 28x28 digits in ``[0, 1]`` it returns one or a handful of degenerate segments. The
  default here is a regular grid of square cells (2x2 pixels for images up to 16 pixels per side,
  4x4 above: 16 superpixels on 8x8 digits, 49 on 28x28, 64 on 32x32 CIFAR-10), which is also what
  the book uses for small images (book: chapter 5, "Explanation uncertainty", section "Explanation distributions" — notebooks/05_explanation_uncertainty.ipynb). ``segmentation="quickshift"`` gives LIME's default, and a
  callable gives anything else.

Determinism: the on/off matrix comes from ``numpy.random.RandomState(seed)``, created afresh for every
image, so the same seed gives the same map, and ``lime(t, x)[b]`` equals ``lime(t, x[b:b+1])[0]`` (every
image gets the same on/off design; the images are independent of each other).

References
----------
M. T. Ribeiro, S. Singh, C. Guestrin. "Why should I trust you?": explaining the predictions of any
classifier. KDD 2016.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from ualib._checks import check_positive_int
from ualib.attribution._common import Target, check_batch_size, check_input, check_nonnegative_float, check_target

__all__ = ["lime", "grid_segmentation", "SEGMENTATIONS"]

#: the named segmentations of :func:`lime` (besides a callable)
SEGMENTATIONS = ("grid", "quickshift")

Segmenter = Callable[[np.ndarray], np.ndarray]


def grid_segmentation(height: int, width: int, cell_size: int) -> np.ndarray:
    """Superpixels as a regular grid of ``cell_size x cell_size`` squares (ragged at the right/bottom).

    Returns
    -------
    numpy.ndarray
        ``int64 [height, width]``; label ``(h // cell) * ceil(width / cell) + (w // cell)``, so the
        labels are ``0 .. P-1`` in reading order.
    """
    check_positive_int(height, "height")
    check_positive_int(width, "width")
    check_positive_int(cell_size, "cell_size")
    cols = -(-width // cell_size)
    hh, ww = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return ((hh // cell_size) * cols + ww // cell_size).astype(np.int64)


@functools.cache
def _batched_explainer_class() -> type:
    """``LimeImageExplainer`` whose neighbourhood is built with NumPy in chunks (same draws, same images).

    Built on first use, so that importing :mod:`ualib` does not import the ``lime`` package."""
    from lime.lime_image import LimeImageExplainer

    class _BatchedLimeImageExplainer(LimeImageExplainer):
        def data_labels(self, image, fudged_image, segments, classifier_fn, num_samples, batch_size=10):  # noqa: D401
            n_features = np.unique(segments).shape[0]
            data = self.random_state.randint(0, 2, num_samples * n_features).reshape((num_samples, n_features))
            data[0, :] = 1
            labels = []
            for start in range(0, num_samples, batch_size):
                off = data[start : start + batch_size][:, segments] == 0  # [n, H, W]: superpixel switched off
                imgs = np.where(off[..., None], fudged_image[None], image[None])
                labels.extend(classifier_fn(imgs))
            return data, np.array(labels)

    return _BatchedLimeImageExplainer


def _segmenter(segmentation: str | Segmenter, cell_size: int | None, shape: tuple[int, int], seed: int) -> Segmenter:
    h, w = shape
    if callable(segmentation):
        fn = segmentation
    elif segmentation == "grid":
        cell = cell_size if cell_size is not None else (2 if max(h, w) <= 16 else 4)
        grid = grid_segmentation(h, w, check_positive_int(cell, "cell_size"))
        fn = lambda image: grid  # noqa: E731
    elif segmentation == "quickshift":
        from lime.wrappers.scikit_image import SegmentationAlgorithm

        fn = SegmentationAlgorithm("quickshift", kernel_size=4, max_dist=200, ratio=0.2, random_seed=seed)
    else:
        raise ValueError(f"segmentation must be one of {list(SEGMENTATIONS)} or a callable, got {segmentation!r}")

    def relabelled(image: np.ndarray) -> np.ndarray:
        seg = np.asarray(fn(image))
        if seg.shape != (h, w):
            raise ValueError(f"the segmentation must return labels shaped [H, W] = [{h}, {w}], got {seg.shape}")
        # lime indexes its on/off vector by the segment label: make the labels 0 .. P-1
        return np.unique(seg, return_inverse=True)[1].reshape(h, w)

    return relabelled


def lime(
    target: Target,
    x: torch.Tensor,
    *,
    num_samples: int = 1000,
    segmentation: str | Segmenter = "grid",
    cell_size: int | None = None,
    hide_color: float | None = None,
    kernel_width: float = 0.25,
    seed: int = 0,
    batch_size: int | None = 100,
) -> torch.Tensor:
    r"""Raw LIME superpixel weights, broadcast to a pixel map shaped like the input (book: chapter 5, "Explanation uncertainty", section "Explanation distributions" — notebooks/05_explanation_uncertainty.ipynb).

    Parameters
    ----------
    target
        The explained score: ``z [n, C, H, W] -> [n]`` (one scalar function) or ``-> [n, T]``
        (T scalar functions explained together on the same perturbed images; e.g. the class probability
        under each of T frozen posterior samples). Called under ``torch.no_grad()``; it need not be
        differentiable. Row ``i`` of the output must depend on ``z[i]`` only.
    x
        Images ``[B, C, H, W]`` with ``C`` = 1 (grayscale, handed to ``lime`` as gray RGB) or 3.
        Not modified.
    num_samples
        Perturbed images per input image (``lime``'s ``num_samples``; the first one is the image
        itself).
    segmentation
        ``"grid"`` (default, square cells; see the module docstring), ``"quickshift"`` (``lime``'s
        default segmentation) or a callable ``image [H, W, 3] -> labels [H, W]``.
    cell_size
        The grid's cell side in pixels (default: 2 for images up to 16 pixels per side, else 4).
    hide_color
        The value of switched-off superpixels; ``None`` (``lime``'s default): each superpixel's mean
        colour.
    kernel_width
        :math:`\sigma` of ``lime``'s exponential kernel on the cosine distance (image default 0.25).
    seed
        Seed of the on/off matrix (the same for every image; see the module docstring).
    batch_size
        Perturbed images per call of ``target`` (``None``: all ``num_samples`` at once).

    Returns
    -------
    torch.Tensor
        ``[B, C, H, W]`` for a ``[n]`` target, ``[T, B, C, H, W]`` for a ``[n, T]`` target, in ``x``'s
        dtype: every pixel (and every channel of it) carries the ridge weight of its superpixel, so
        the channel sum is ``C`` times the weight. Signed: positive superpixels raise the score.

    Raises
    ------
    TypeError
        If ``target`` is not callable or ``x`` is not a floating tensor.
    ValueError
        If ``x`` is not ``[B, 1 or 3, H, W]``, an option is out of range, or ``target`` does not return
        ``[n]`` / ``[n, T]`` finite values.

    References
    ----------
    M. T. Ribeiro, S. Singh, C. Guestrin. "Why should I trust you?": explaining the predictions of any
    classifier. KDD 2016.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    >>> x = torch.rand(2, 1, 8, 8)
    >>> maps = ualib.lime(ualib.class_logit(net, 0), x, num_samples=50, cell_size=4, seed=0)
    >>> tuple(maps.shape)  # one weight per 4 x 4 superpixel, broadcast to its pixels
    (2, 1, 8, 8)
    """
    check_target(target)
    x = check_input(x, ndim=(4,)).detach()
    b, c, h, w = x.shape
    if c not in (1, 3):
        raise ValueError(f"lime explains grayscale or RGB images: x must have 1 or 3 channels, got {c}")
    num_samples = check_positive_int(num_samples, "num_samples")
    batch_size = check_batch_size(batch_size) or num_samples
    kernel_width = check_nonnegative_float(kernel_width, "kernel_width", positive=True)
    if hide_color is not None:
        if isinstance(hide_color, bool) or not isinstance(hide_color, (int, float)) or not np.isfinite(hide_color):
            raise ValueError(f"hide_color must be None or a finite number, got {hide_color!r}")
        hide_color = float(hide_color)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    segment = _segmenter(segmentation, cell_size, (h, w), seed)

    def classifier_fn(images: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)[:, :c])).to(x.device, x.dtype)
        with torch.no_grad():
            out = target(z)
        if not isinstance(out, torch.Tensor) or out.ndim not in (1, 2) or out.shape[0] != len(z):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"target must map {len(z)} images to [{len(z)}] or [{len(z)}, T], got {got}")
        out = out.detach().to("cpu", torch.float64).reshape(len(z), -1)
        if not torch.isfinite(out).all():
            raise ValueError("target returned NaN or infinite values on LIME's perturbed images")
        return out.numpy()

    with torch.no_grad():
        probe = target(x[:1])
    matrix = isinstance(probe, torch.Tensor) and probe.ndim == 2
    labels = range(probe.shape[1] if matrix else 1)
    maps = []
    for i in range(b):
        image = x[i].to("cpu", torch.float64).permute(1, 2, 0).numpy()
        if c == 1:
            image = np.repeat(image, 3, axis=2)
        segments = segment(image)
        n_seg = int(segments.max()) + 1
        explainer = _batched_explainer_class()(
            kernel_width=kernel_width, feature_selection="none", random_state=np.random.RandomState(seed)
        )
        exp = explainer.explain_instance(
            image,
            classifier_fn,
            labels=labels,
            hide_color=hide_color,
            top_labels=None,
            num_features=n_seg,
            num_samples=num_samples,
            batch_size=batch_size,
            segmentation_fn=lambda _img, s=segments: s,
            random_seed=seed,
        )
        weights = np.zeros((len(labels), n_seg))
        for t in labels:
            for feature, weight in exp.local_exp[t]:
                weights[t, feature] = weight
        maps.append(torch.from_numpy(weights[:, segments]))  # [T, H, W]
    out = torch.stack(maps, 1).to(x.device, x.dtype)  # [T, B, H, W]
    out = out.unsqueeze(2).expand(-1, -1, c, -1, -1).contiguous()
    return out if matrix else out[0]
