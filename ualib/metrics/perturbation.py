"""Perturbation curves for evaluating attributions: deletion, insertion and the blurring test.

An attribution map claims that some pixels matter more than others for a scalar target (a class
probability, an uncertainty). A perturbation curve tests the claim: rank the pixels by their
attribution, perturb the top-ranked fraction ``r`` of them for a grid of fractions, and record the
target after each perturbation. One generic routine, :func:`perturbation_curve`, serves

* **deletion** and **insertion** (Petsiuk et al. 2018, RISE; book: chapter 5, "Explanation uncertainty", section "Modified insertion and deletion" — notebooks/05_explanation_uncertainty.ipynb), also with an uncertainty
  as the score (the "uncertainty counterparts" of papers 2 and 3);
* the **blurring test** of UA-Backprop (Wang et al. 2023; book: chapter 2, "UA-Backprop", section "The blurring test" — notebooks/02_ua_backprop.ipynb), :func:`blurring_test`, and
  its sanity check :func:`accuracy_after_blurring`.

Conventions shared by every function here
-----------------------------------------
* Inputs ``x`` are images ``[B, C, H, W]``; an attribution is ``[B, C', H, W]`` with ``C'`` in
  ``{1, C}``, or ``[B, H, W]``. Pixels are ranked per input by the attribution **summed over
  channels**, in descending order; ties are broken by the flat pixel index ``h * W + w``, lower index
  first, so the ranking is deterministic (:func:`pixel_order`). A pixel is perturbed as a whole: all
  of its channels together.
* At fraction ``r`` the top ``k(r) = round(r * H * W)`` pixels are perturbed, where ``round`` is
  ``torch.round`` on ``r * H * W`` computed in float64 (round half to even, like Python's ``round``).
* A score function is any ``x [n, C, H, W] -> [n]`` (a :data:`ualib.targets.Target`). It is called
  under ``torch.no_grad()`` on micro-batches of at most ``batch_size`` perturbed inputs, and must treat
  the inputs of a batch independently (a model in eval mode), so the results do not depend on
  ``batch_size``.

References
----------
.. [1] V. Petsiuk, A. Das, K. Saenko. "RISE: Randomized Input Sampling for Explanation of Black-box
   Models." BMVC 2018. (Deletion and insertion metrics.)
.. [2] H. Wang, D. Joshi, S. Wang, Q. Ji. "Gradient-based Uncertainty Attribution for Explainable
   Bayesian Deep Learning." CVPR 2023. (Blurring test, URR / MURR / AUC-URR: the metric names are as
   recalled for this paper; their definitions here are a reconstruction [INF]; book: chapter 2, "UA-Backprop", section "The blurring test" — notebooks/02_ua_backprop.ipynb.)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch

from ualib._checks import check_choice, check_positive_int, check_tensor
from ualib.attribution.blur import gaussian_blur

__all__ = [
    "MODES",
    "BASELINES",
    "gaussian_blur",
    "pixel_order",
    "perturbation_curve",
    "blurring_test",
    "accuracy_after_blurring",
]

#: the perturbation modes of :func:`perturbation_curve`
MODES = ("delete", "insert", "blur")
#: the named baselines of :func:`perturbation_curve` (besides a number or a tensor)
BASELINES = ("blur", "mean")

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------------------
# validation and ranking helpers
# --------------------------------------------------------------------------------------------------


def _channel_sum(attribution: object, name: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Channel-summed attribution ``[B, H, W]`` from ``[B, H, W]`` or ``[B, C', H, W]``.

    ``shape`` is the ``[B, C, H, W]`` of the matching input, if any: then ``C'`` must be 1 or ``C``.
    """
    a = check_tensor(attribution, name, ndim=(3, 4))
    if shape is not None:
        b, c, h, w = shape
        if a.shape[0] != b or a.shape[-2:] != (h, w):
            raise ValueError(
                f"{name} must have shape [B, H, W] or [B, C, H, W] matching x of shape {list(shape)} "
                f"(B={b}, H={h}, W={w}), got {tuple(a.shape)}"
            )
        if a.ndim == 4 and a.shape[1] not in (1, c):
            raise ValueError(f"{name} must have 1 or {c} channels like x, got {a.shape[1]} (shape {tuple(a.shape)})")
    return a.sum(1) if a.ndim == 4 else a


def pixel_order(attribution: torch.Tensor) -> torch.Tensor:
    """Pixels ranked by attribution: the flat pixel indices in descending order of importance.

    Parameters
    ----------
    attribution
        ``[B, H, W]`` or ``[B, C, H, W]`` (summed over channels first).

    Returns
    -------
    torch.Tensor
        ``int64`` ``[B, H * W]``: entry ``[b, j]`` is the flat index ``h * W + w`` of the pixel of rank
        ``j`` (rank 0 = largest channel-summed attribution). Ties are broken by the flat index, lower
        first (a stable sort), so equal attributions give the reading order.
    """
    a = _channel_sum(attribution, "attribution")
    return torch.sort(-a.flatten(1), dim=1, stable=True).indices


def _check_fractions(fractions: object) -> torch.Tensor:
    if not isinstance(fractions, torch.Tensor):
        try:
            fractions = torch.as_tensor(fractions, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"fractions must be a 1-D tensor or sequence of numbers, got {type(fractions).__name__}"
            ) from err
    f = fractions.detach().to("cpu", torch.float64)
    if f.ndim != 1 or f.numel() == 0:
        raise ValueError(f"fractions must be a non-empty 1-D sequence, got shape {tuple(f.shape)}")
    if not torch.isfinite(f).all():
        raise ValueError("fractions contains NaN or infinite values")
    if (f < 0).any() or (f > 1).any():
        raise ValueError(f"fractions must lie in [0, 1], got min {f.min().item():.6g}, max {f.max().item():.6g}")
    if f.numel() > 1 and not (f[1:] > f[:-1]).all():
        raise ValueError("fractions must be strictly increasing")
    return f


def _check_sigma(blur_sigma: object) -> float:
    number = isinstance(blur_sigma, (int, float)) and not isinstance(blur_sigma, bool)
    if not number or not math.isfinite(blur_sigma) or blur_sigma < 0:
        raise ValueError(f"blur_sigma must be a finite number >= 0, got {blur_sigma!r}")
    return float(blur_sigma)


def _check_batch_size(batch_size: object) -> int | None:
    if batch_size is None:
        return None
    return check_positive_int(batch_size, "batch_size")


def _normalised_auc(values: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Trapezoid integral of ``values [B, T, ...]`` over ``fractions [T]`` divided by the fraction range.

    The mean value of the piecewise-linear curve on ``[r_1, r_T]``; a single fraction gives its value.
    """
    if fractions.numel() == 1:
        return values[:, 0].clone()
    f = fractions.to(values.device, values.dtype)
    return torch.trapezoid(values, f, dim=1) / (f[-1] - f[0])


def _evaluate(
    fn: ScoreFn,
    x: torch.Tensor,
    replacement: torch.Tensor,
    order: torch.Tensor,
    counts: torch.Tensor,
    invert: bool,
    batch_size: int | None,
    name: str,
    scalar: bool,
) -> torch.Tensor:
    """``fn`` on every perturbed input, stacked to ``[B, T, ...]``.

    Perturbed input ``(b, t)`` takes ``replacement[b]`` on the top ``counts[t]`` pixels of
    ``order[b]`` and ``x[b]`` elsewhere (``invert=False``), or the reverse (``invert=True``). The
    ``B * T`` inputs are built chunk by chunk, at most ``batch_size`` at a time, in the order
    ``b``-major.
    """
    b, c, h, w = x.shape
    t = counts.numel()
    # rank[b, p]: the rank of pixel p in input b's ordering
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=order.device).expand(b, -1))
    total = b * t
    step = total if batch_size is None else batch_size
    outs: list[torch.Tensor] = []
    with torch.no_grad():
        for start in range(0, total, step):
            idx = torch.arange(start, min(start + step, total), device=x.device)
            bi, ti = idx // t, idx % t
            sel = rank[bi] < counts[ti, None]  # [n, H*W]: pixels perturbed in this input
            if invert:
                sel = ~sel
            sel = sel.view(-1, 1, h, w)
            xp = torch.where(sel, replacement[bi], x[bi])
            out = fn(xp)
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"{name} must return a torch.Tensor, got {type(out).__name__}")
            if out.ndim < 1 or out.shape[0] != idx.numel() or (scalar and out.ndim != 1):
                want = f"[{idx.numel()}]" if scalar else f"[{idx.numel()}, ...]"
                raise ValueError(f"{name} must map {idx.numel()} inputs to shape {want}, got {tuple(out.shape)}")
            outs.append(out.detach())
    out = torch.cat(outs, 0)
    return out.reshape(b, t, *out.shape[1:])


def _prepare(
    x: object,
    attribution: object,
    mode: str,
    fractions: object,
    baseline: object,
    blur_sigma: object,
    batch_size: object,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, bool, int | None]:
    """Validate the common arguments; return x, replacement, order, fractions, counts, invert, batch size."""
    check_choice(mode, "mode", MODES)
    x = check_tensor(x, "x", ndim=4)
    a = _channel_sum(attribution, "attribution", tuple(x.shape)).to(x.device)
    f = _check_fractions(fractions)
    sigma = _check_sigma(blur_sigma)
    bs = _check_batch_size(batch_size)

    if baseline is None:
        baseline = 0.0 if mode == "delete" else "blur"
    if mode == "blur" and not (isinstance(baseline, str) and baseline == "blur"):
        raise ValueError(
            f"mode='blur' always replaces pixels by the blurred image; got baseline={baseline!r}. "
            "Leave baseline unset, or use mode='delete' with another baseline"
        )
    if isinstance(baseline, str):
        check_choice(baseline, "baseline", BASELINES)
        if baseline == "blur":
            base = gaussian_blur(x, sigma)
        else:  # per-image, per-channel mean
            base = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    elif isinstance(baseline, bool):
        raise TypeError("baseline must be a number, 'blur', 'mean' or a tensor, got a bool")
    elif isinstance(baseline, (int, float)):
        if not math.isfinite(baseline):
            raise ValueError(f"baseline must be finite, got {baseline!r}")
        base = torch.full_like(x, float(baseline))
    elif isinstance(baseline, torch.Tensor):
        check_tensor(baseline, "baseline")
        try:
            base = torch.broadcast_to(baseline.to(x.device, x.dtype), x.shape)
        except RuntimeError as err:
            raise ValueError(
                f"a baseline tensor must broadcast to x's shape {list(x.shape)}, got {tuple(baseline.shape)}"
            ) from err
    else:
        raise TypeError(f"baseline must be a number, 'blur', 'mean' or a tensor, got {type(baseline).__name__}")

    h, w = x.shape[-2:]
    order = torch.sort(-a.flatten(1), dim=1, stable=True).indices
    counts = torch.round(f * (h * w)).to(torch.long)
    return x, base, order, f, counts.to(x.device), mode == "insert", bs


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------


def perturbation_curve(
    score_fn: ScoreFn,
    x: torch.Tensor,
    attribution: torch.Tensor,
    *,
    mode: str = "delete",
    fractions: torch.Tensor | None = None,
    baseline: float | str | torch.Tensor | None = None,
    blur_sigma: float = 2.0,
    batch_size: int | None = None,
    multi_output: bool = False,
) -> dict[str, torch.Tensor]:
    """Score after perturbing the most-attributed pixels, for a grid of fractions (deletion / insertion).

    For each input and each fraction ``r`` in ``fractions``, the top ``k(r) = round(r * H * W)``
    pixels of the attribution ranking (channel-summed, descending, ties by flat pixel index: see
    :func:`pixel_order`) are perturbed, all channels of a pixel together:

    * ``"delete"``: they are set to the baseline; ``r = 0`` is ``x``, ``r = 1`` is the baseline image.
      Lower AUC is better for a class probability (Petsiuk et al. 2018).
    * ``"insert"``: the input starts as the baseline image and these pixels are restored from ``x``;
      ``r = 0`` is the baseline image, ``r = 1`` is ``x``. Higher AUC is better for a class
      probability.
    * ``"blur"``: they are replaced by a Gaussian-blurred copy of ``x`` (``sigma = blur_sigma``); the
      perturbation of the blurring test (book: chapter 2, "UA-Backprop", section "The blurring test" — notebooks/02_ua_backprop.ipynb). Equivalent to ``"delete"`` with
      ``baseline="blur"``.

    All ``B * T`` perturbed inputs are built and scored in micro-batches of at most ``batch_size``
    (default: all at once). The results do not depend on ``batch_size`` when ``score_fn`` treats the
    inputs of a batch independently.

    Parameters
    ----------
    score_fn
        ``x [n, C, H, W] -> [n]``: a class probability, an uncertainty, any scalar target. Called under
        ``torch.no_grad()``.
    x
        Inputs ``[B, C, H, W]``.
    attribution
        ``[B, C', H, W]`` (``C'`` = 1 or ``C``) or ``[B, H, W]``; higher = more important.
    mode
        ``"delete"``, ``"insert"`` or ``"blur"``.
    fractions
        Strictly increasing fractions of pixels in ``[0, 1]``, ``[T]``. Default
        ``torch.linspace(0, 1, 21)`` (5 % steps).
    baseline
        The values perturbed pixels take (``"delete"``) or the image insertion starts from
        (``"insert"``): a number, ``"blur"`` (``gaussian_blur(x, blur_sigma)``), ``"mean"`` (each
        image's per-channel mean), or a tensor broadcastable to ``[B, C, H, W]``. Default ``None``:
        ``0.0`` for ``"delete"`` and ``"blur"`` for ``"insert"`` (RISE's choices); ``"blur"`` mode
        accepts only ``None`` or ``"blur"``.
    blur_sigma
        Standard deviation in pixels of the Gaussian blur, where one is used.
    batch_size
        Largest number of perturbed inputs passed to ``score_fn`` at once (``None``: all ``B * T``).
    multi_output
        Allow ``score_fn`` to return several scores per input, ``[n, ...]`` (e.g. ``[n, S, K]``: the
        class probabilities under S posterior samples); every score gets its own curve and AUC.

    Returns
    -------
    dict
        * ``"fractions"``: float64 ``[T]``, the fractions used.
        * ``"n_pixels"``: int64 ``[T]``, ``k(r)``, the number of pixels perturbed at each fraction.
        * ``"scores"``: ``[B, T]``, ``score_fn`` on the perturbed inputs (``[B, T, ...]`` with
          ``multi_output``).
        * ``"auc"``: ``[B]``, the trapezoid integral of the scores over the fractions divided by the
          fraction range ``r_T - r_1``: the curve's mean value, so a constant score ``c`` gives ``c``
          (with a single fraction: that fraction's score); ``[B, ...]`` with ``multi_output``.

    Raises
    ------
    ValueError
        For shapes that do not match, fractions outside ``[0, 1]`` or not strictly increasing, an
        unknown ``mode`` / ``baseline``, or a ``score_fn`` output that is not ``[n]``.

    References
    ----------
    .. [1] V. Petsiuk, A. Das, K. Saenko. "RISE: Randomized Input Sampling for Explanation of
       Black-box Models." BMVC 2018.
    """
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable (x [n, C, H, W] -> [n]), got {type(score_fn).__name__}")
    if fractions is None:
        fractions = torch.linspace(0, 1, 21, dtype=torch.float64)
    if not isinstance(multi_output, bool):
        raise TypeError(f"multi_output must be a bool, got {type(multi_output).__name__}")
    x, base, order, f, counts, invert, bs = _prepare(x, attribution, mode, fractions, baseline, blur_sigma, batch_size)
    scores = _evaluate(score_fn, x, base, order, counts, invert, bs, "score_fn", scalar=not multi_output)
    return {"fractions": f, "n_pixels": counts.cpu(), "scores": scores, "auc": _normalised_auc(scores, f)}


def _score_inputs(fn: ScoreFn, x: torch.Tensor, batch_size: int | None, name: str) -> torch.Tensor:
    """``fn`` on the unperturbed inputs ``x``, in micro-batches, under ``no_grad``: ``[B]``."""
    step = x.shape[0] if batch_size is None else batch_size
    outs = []
    with torch.no_grad():
        for start in range(0, x.shape[0], max(step, 1)):
            xb = x[start : start + step]
            out = fn(xb)
            if not isinstance(out, torch.Tensor) or out.shape != (xb.shape[0],):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"{name} must map {xb.shape[0]} inputs to shape [{xb.shape[0]}], got {got}")
            outs.append(out.detach())
    return torch.cat(outs)


def blurring_test(
    uncertainty_fn: ScoreFn,
    x: torch.Tensor,
    attribution: torch.Tensor,
    *,
    fractions: torch.Tensor | None = None,
    blur_sigma: float = 2.0,
    batch_size: int | None = None,
    eps: float = 1e-12,
) -> dict[str, torch.Tensor]:
    """The blurring test of an uncertainty attribution: URR, MURR and AUC-URR [INF reconstruction].

    **Reconstruction.** The metric names (URR, MURR, AUC-URR) are as recalled for Wang et al. (CVPR
    2023); the paper's definitions could not be read, so the definitions below are a reconstruction
    [INF] (book: chapter 2, "UA-Backprop", section "The blurring test" — notebooks/02_ua_backprop.ipynb), not the paper's verified protocol. Do not compare the numbers with the
    paper's table.

    The top-``r`` pixels of the attribution ranking are replaced by a Gaussian-blurred copy of the
    image (:func:`perturbation_curve` with ``mode="blur"``) and the uncertainty is recomputed:

    * ``URR(r) = (U(x) - U(x_r)) / U(x)``, the uncertainty reduction rate; inputs with
      ``U(x) < eps`` get ``NaN`` (their rate is undefined), are flagged in ``"undefined"`` and
      reported with a ``RuntimeWarning``;
    * ``MURR = max_r URR(r)``, the maximum reduction rate (``>= 0`` when ``0`` is a fraction);
    * ``AUC-URR (raw) = integral of URR(r) dr`` over ``[r_1, r_T]`` by the trapezoid rule
      (``= integral_0^{r_T}`` with the default grid starting at 0);
    * ``AUC-URR = AUC-URR (raw) / (r_T - r_1)``, the mean URR over the fraction range (returned as
      ``"auc_urr"``); this makes grids of different extent comparable.

    Higher is better: an attribution that points at the sources of the uncertainty removes more of it
    when those pixels are blurred. Evaluate on inputs with a non-trivial ``U`` (e.g. the most uncertain
    ones, misclassified or out-of-distribution inputs), and check :func:`accuracy_after_blurring`.

    Parameters
    ----------
    uncertainty_fn
        ``x [n, C, H, W] -> [n]``, e.g. :func:`ualib.targets.uncertainty_target`.
    x
        Inputs ``[B, C, H, W]``.
    attribution
        ``[B, C', H, W]`` (``C'`` = 1 or ``C``) or ``[B, H, W]``.
    fractions
        Strictly increasing fractions in ``[0, 1]``, ``[T]``; default ``torch.linspace(0, 0.2, 21)``
        (0-20 % in 1 % steps).
    blur_sigma
        Standard deviation of the blur in pixels (METHODS suggests about 2 for 28x28 and 32x32, 1 for
        16x16 images).
    batch_size
        Largest number of inputs passed to ``uncertainty_fn`` at once (``None``: all).
    eps
        Inputs with ``U(x) < eps`` have an undefined URR.

    Returns
    -------
    dict
        * ``"fractions"``: float64 ``[T]``; ``"n_pixels"``: int64 ``[T]``, pixels blurred per fraction.
        * ``"uncertainty"``: ``[B]``, ``U(x)``.
        * ``"uncertainty_blurred"``: ``[B, T]``, ``U(x_r)``.
        * ``"urr"``: ``[B, T]``; ``"murr"``, ``"auc_urr"``, ``"auc_urr_raw"``: ``[B]`` (``NaN`` for
          undefined inputs).
        * ``"undefined"``: bool ``[B]``, ``U(x) < eps``.
        * ``"mean_murr"``, ``"mean_auc_urr"``: 0-d, the averages over the defined inputs (``NaN`` if
          none).

    References
    ----------
    .. [1] H. Wang, D. Joshi, S. Wang, Q. Ji. "Gradient-based Uncertainty Attribution for Explainable
       Bayesian Deep Learning." CVPR 2023. (Metric names as recalled; definitions [INF].)
    """
    if not callable(uncertainty_fn):
        raise TypeError(f"uncertainty_fn must be callable (x [n, C, H, W] -> [n]), got {type(uncertainty_fn).__name__}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"eps must be a number >= 0, got {eps!r}")
    if fractions is None:
        fractions = torch.linspace(0, 0.2, 21, dtype=torch.float64)
    curve = perturbation_curve(
        uncertainty_fn, x, attribution, mode="blur", fractions=fractions, blur_sigma=blur_sigma, batch_size=batch_size
    )
    f, ub = curve["fractions"], curve["scores"]
    u0 = _score_inputs(uncertainty_fn, x, _check_batch_size(batch_size), "uncertainty_fn").to(ub.dtype)
    undefined = ~(u0 >= eps)
    if undefined.any():
        idx = undefined.nonzero().flatten().tolist()
        shown = ", ".join(map(str, idx[:10])) + (", ..." if len(idx) > 10 else "")
        warnings.warn(
            f"blurring_test: {len(idx)} of {len(u0)} inputs have U(x) < eps={eps:g} (indices {shown}); "
            "their URR, MURR and AUC-URR are NaN",
            RuntimeWarning,
            stacklevel=2,
        )
    denom = torch.where(undefined, torch.full_like(u0, float("nan")), u0)
    urr = (u0[:, None] - ub) / denom[:, None]
    murr = urr.max(dim=1).values
    auc = _normalised_auc(urr, f)
    if f.numel() == 1:
        raw = torch.where(undefined, torch.full_like(u0, float("nan")), torch.zeros_like(u0))
    else:
        raw = torch.trapezoid(urr, f.to(urr.device, urr.dtype), dim=1)
    return {
        "fractions": f,
        "n_pixels": curve["n_pixels"],
        "uncertainty": u0,
        "uncertainty_blurred": ub,
        "urr": urr,
        "murr": murr,
        "auc_urr": auc,
        "auc_urr_raw": raw,
        "undefined": undefined,
        "mean_murr": murr.nanmean(),
        "mean_auc_urr": auc.nanmean(),
    }


def accuracy_after_blurring(
    class_fn: ScoreFn,
    x: torch.Tensor,
    y: torch.Tensor,
    attribution: torch.Tensor,
    *,
    fractions: torch.Tensor | None = None,
    blur_sigma: float = 2.0,
    batch_size: int | None = None,
) -> dict[str, torch.Tensor]:
    """Accuracy on the blurred inputs of the blurring test: its sanity check [INF] (book: chapter 2, "UA-Backprop", section "The blurring test" — notebooks/02_ua_backprop.ipynb).

    An attribution could "reduce uncertainty" only by destroying the image; the accuracy after
    blurring the same top-``r`` pixels (as in :func:`blurring_test`) shows whether the prediction
    survives. Part of the reconstructed blurring-test protocol of Wang et al. (CVPR 2023) [INF].

    Parameters
    ----------
    class_fn
        ``x [n, C, H, W] -> [n, K]`` class scores (logits or probabilities; the arg-max is the
        prediction, ties to the lowest class) or ``-> [n]`` integer predicted labels. Called under
        ``torch.no_grad()``.
    x
        Inputs ``[B, C, H, W]``.
    y
        True labels, integer ``[B]``.
    attribution
        ``[B, C', H, W]`` (``C'`` = 1 or ``C``) or ``[B, H, W]``.
    fractions
        As in :func:`blurring_test` (default ``torch.linspace(0, 0.2, 21)``).
    blur_sigma, batch_size
        As in :func:`blurring_test`.

    Returns
    -------
    dict
        * ``"fractions"``: float64 ``[T]``; ``"n_pixels"``: int64 ``[T]``.
        * ``"correct"``: bool ``[B, T]``, whether the prediction on ``x_r`` equals ``y``.
        * ``"accuracy"``: float ``[T]``, the mean of ``"correct"`` over inputs.
    """
    if not callable(class_fn):
        raise TypeError(f"class_fn must be callable (x [n, C, H, W] -> [n, K] or [n]), got {type(class_fn).__name__}")
    if fractions is None:
        fractions = torch.linspace(0, 0.2, 21, dtype=torch.float64)
    x, base, order, f, counts, invert, bs = _prepare(x, attribution, "blur", fractions, None, blur_sigma, batch_size)
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
        got = y.dtype if isinstance(y, torch.Tensor) else type(y).__name__
        raise TypeError(f"y must be an integer tensor [B], got {got}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape [{x.shape[0]}] like x's batch, got {tuple(y.shape)}")
    out = _evaluate(class_fn, x, base, order, counts, invert, bs, "class_fn", scalar=False)
    if out.ndim == 3:
        pred = out.argmax(-1)
    elif out.ndim == 2 and not out.is_floating_point():
        pred = out
    else:
        raise ValueError(
            "class_fn must return class scores [n, K] or integer labels [n], got "
            f"{'floating-point [n]' if out.ndim == 2 else f'{out.ndim - 1}-D per-input outputs'}"
        )
    correct = pred == y.to(pred.device)[:, None]
    return {"fractions": f, "n_pixels": counts.cpu(), "correct": correct, "accuracy": correct.double().mean(0)}
