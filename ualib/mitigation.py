"""Uncertainty mitigation: use an uncertainty attribution map as input attention (UA-Backprop).

.. warning::
   **Reconstruction, not the paper's method.** About the mitigation, the paper verifiably says only
   that it proposes an "uncertainty mitigation strategy that leverages the attribution results as
   attention to further improve the model performance" (Wang et al., CVPR 2023, abstract).
   Everything else in this module is a specification choice of this compendium (marked [INF];
   book: chapter 3, "Uncertainty mitigation", section "Fine-tuning with and without attention" — notebooks/03_uncertainty_mitigation.ipynb). That covers the attention formula, the place where the attention is applied
   (the input, not a feature map), masking versus blurring, the train-then-fine-tune protocol,
   the selection of uncertain inputs by a quantile, and the evaluation table. None of it has been
   checked against the paper's PDF or supplement, and no official code exists.

The pieces, in the order the protocol uses them:

1. :func:`attention_from_attribution`: a raw, signed attribution map ``A [B, C, H, W]`` of an
   uncertainty (for example UA-Backprop of the epistemic uncertainty) becomes the attention
   :math:`a = 1 - \\lambda \\hat A`, where :math:`\\hat A` is the channel sum of ``A``, clipped to
   its positive part and min-max scaled to ``[0, 1]`` per image. Pixels that cause the most
   uncertainty get the least attention.
2. :func:`apply_attention`: ``"mask"`` computes :math:`\\tilde x = a \\odot x`. ``"blend"`` computes
   :math:`\\tilde x = a \\odot x + (1 - a) \\odot \\mathrm{blur}(x)`, so uncertain regions are
   blurred rather than blacked out.
3. :func:`uncertain_subset` / :func:`attend`: attend to every input, or only to the inputs whose
   uncertainty lies above a quantile (of a validation set when one is given). All other inputs
   are passed on bit for bit.
4. :func:`mitigate`: (i) take a trained posterior, (ii) compute the attention of every training
   image with that posterior held *frozen*, (iii) fine-tune a deep copy on the attended images.
   The caller then (iv) evaluates the copy on attended test images. Use the same ``attribute``,
   ``lam``, ``mode`` and selection, all computed with the frozen original.
5. :func:`mitigation_report` / :func:`compare_reports`: accuracy, NLL, ECE and mean epistemic and
   total uncertainty per named group of test inputs, baseline and mitigated side by side.

An *attribution function* is any callable ``attribute(x [B, C, H, W]) -> A [B, C', H, W]``, where
``C'`` is ``C`` or 1. It returns a raw, signed map and is treated as a black box. It is called in
micro-batches, with gradients enabled, on a copy of the inputs.

References
----------
.. [Wang2023] H. Wang, D. Joshi, S. Wang, Q. Ji. Gradient-based uncertainty attribution for
   explainable Bayesian deep learning. CVPR 2023, pp. 12044-12053 (arXiv 2304.04824). The only
   verified statement used here is the abstract's "uncertainty mitigation strategy that leverages
   the attribution results as attention to further improve the model performance". Everything
   else is a reconstruction ([INF]; book: chapter 3, "Uncertainty mitigation", section "Fine-tuning with and without attention" — notebooks/03_uncertainty_mitigation.ipynb).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch

from ualib import metrics
from ualib import uncertainty as U
from ualib._checks import check_choice, check_positive_int, check_tensor
from ualib._progress import progress_bar
from ualib.attribution.blur import gaussian_blur
from ualib.posteriors import Posterior, preserve_mode
from ualib.seeding import derive_seed, preserve_rng, seed_everything
from ualib.training import fit

__all__ = [
    "ATTENTION_MODES",
    "REPORT_COLUMNS",
    "Attribution",
    "attention_from_attribution",
    "apply_attention",
    "uncertain_subset",
    "attend",
    "mitigate",
    "mitigation_report",
    "compare_reports",
]

#: Options of ``mode`` in :func:`apply_attention`, :func:`attend` and :func:`mitigate`.
ATTENTION_MODES: tuple[str, ...] = ("mask", "blend")
#: Columns of :func:`mitigation_report` (``n`` is the group size).
REPORT_COLUMNS: tuple[str, ...] = ("n", "accuracy", "NLL", "ECE", "epistemic", "total")

#: an attribution function: ``x [B, C, H, W] -> A [B, C' in {1, C}, H, W]`` (raw, signed)
Attribution = Callable[[torch.Tensor], torch.Tensor]

#: Gaussian kernels are cut at ``truncate * sigma`` (the convention of ``scipy.ndimage.gaussian_filter``).


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _check_unit_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 <= float(value) <= 1.0):
        raise ValueError(f"{name} must be a float in [0, 1], got {value!r}")
    return float(value)


def _check_sigma(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"blur_sigma must be a finite float >= 0 (pixels), got {value!r}")
    return float(value)


def _as_vector(u: object, name: str) -> np.ndarray:
    """A finite 1-D float64 numpy copy of a tensor / array / list."""
    if isinstance(u, torch.Tensor):
        arr = u.detach().cpu().double().numpy()
    elif isinstance(u, (np.ndarray, list, tuple)):
        arr = np.asarray(u)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    else:
        raise TypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(u).__name__}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must have 1 dimension [N], got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one value")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _as_mask(m: object, name: str, n: int) -> np.ndarray:
    """A boolean numpy mask ``[n]`` from a bool tensor / array."""
    if isinstance(m, torch.Tensor):
        if m.dtype != torch.bool:
            raise TypeError(f"{name} must be a boolean mask, got dtype {m.dtype}")
        arr = m.detach().cpu().numpy()
    elif isinstance(m, np.ndarray):
        if m.dtype != np.bool_:
            raise TypeError(f"{name} must be a boolean mask, got dtype {m.dtype}")
        arr = m
    else:
        raise TypeError(f"{name} must be a boolean torch.Tensor or numpy array, got {type(m).__name__}")
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape [{n}] (one entry per test input), got {tuple(arr.shape)}")
    return arr


# ----------------------------------------------------------------------------------------------
# attention maps
# ----------------------------------------------------------------------------------------------


def attention_from_attribution(A: torch.Tensor, *, lam: float = 1.0) -> torch.Tensor:
    r"""Attention :math:`a = 1 - \lambda \hat A` from a raw attribution map.

    :math:`\hat A` is the per-image min-max scaling to ``[0, 1]`` of the positive part of the
    channel sum of ``A``:

    .. math::
        s = \max\Bigl(0, \sum_c A_c\Bigr), \qquad
        \hat A = \frac{s - \min_{hw} s}{\max_{hw} s - \min_{hw} s}.

    A map that is constant after the positive part is taken has no range. This covers an all-zero
    or all-negative map and a constant positive map. Such a map gives :math:`\hat A = 0` and
    hence ``a = 1``: no pixel is singled out, so nothing is attenuated.

    Parameters
    ----------
    A : torch.Tensor, shape ``[B, C, H, W]``
        Raw, signed attribution (any number of channels ``C``), e.g. UA-Backprop of the
        epistemic uncertainty. Positive values are taken to *cause* uncertainty.
    lam : float in ``[0, 1]``, keyword-only, default 1
        Attention strength :math:`\lambda`. With 0 the attention is all ones and the input is left
        unchanged. With 1 the most uncertain pixel gets attention 0.

    Returns
    -------
    torch.Tensor, shape ``[B, 1, H, W]``
        Attention in ``[1 - lam, 1]``, with the dtype and device of ``A``. Detached.

    References
    ----------
    Wang et al. (CVPR 2023). Attribution used "as attention" is verified; this formula is a
    reconstruction ([INF]; book: chapter 3, "Uncertainty mitigation", section "Fine-tuning with and without attention" — notebooks/03_uncertainty_mitigation.ipynb).
    """
    check_tensor(A, "A", ndim=4)
    lam = _check_unit_float(lam, "lam")
    s = A.detach().sum(dim=1, keepdim=True).clamp_min(0)  # [B, 1, H, W]
    lo = s.amin(dim=(2, 3), keepdim=True)
    hi = s.amax(dim=(2, 3), keepdim=True)
    rng = hi - lo
    has_range = rng > 0
    a_hat = torch.where(has_range, (s - lo) / torch.where(has_range, rng, torch.ones_like(rng)), torch.zeros_like(s))
    return 1.0 - lam * a_hat


def apply_attention(
    x: torch.Tensor,
    a: torch.Tensor,
    *,
    mode: str = "mask",
    blur_sigma: float = 2.0,
) -> torch.Tensor:
    r"""Apply attention ``a`` to images ``x``.

    * ``"mask"``: :math:`\tilde x = a \odot x`. Pixels with attention 0 become 0, so the
      reference value is black, or the dataset mean when inputs are standardised.
    * ``"blend"``: :math:`\tilde x = a \odot x + (1 - a) \odot \mathrm{blur}_\sigma(x)`. Pixels
      with attention 0 are replaced by a Gaussian-blurred copy of the image. The blur is separable
      and uses reflect padding.

    Parameters
    ----------
    x : torch.Tensor, shape ``[B, C, H, W]``
        Images.
    a : torch.Tensor, shape ``[B, 1, H, W]`` or ``[B, C, H, W]``
        Attention in ``[0, 1]``, e.g. from :func:`attention_from_attribution`. Broadcast over
        channels when it has one.
    mode : {"mask", "blend"}, keyword-only, default ``"mask"``
    blur_sigma : float >= 0, keyword-only, default 2.0
        Standard deviation of the blur in pixels (``"blend"`` only). 0 means no blur, in which
        case ``"blend"`` returns ``x``. The kernel is cut at :math:`4\sigma`, and the border is
        reflected as in ``scipy.ndimage.gaussian_filter(mode="mirror")``, which also works when
        the kernel is longer than the image.

    Returns
    -------
    torch.Tensor, shape ``[B, C, H, W]``
        :math:`\tilde x`, with the dtype and device of ``x``. Where ``a = 1`` it equals ``x``
        exactly.

    References
    ----------
    Wang et al. (CVPR 2023). Input-level masking and blending are reconstructions
    ([INF]; book: chapter 3, "Uncertainty mitigation", section "Fine-tuning with and without attention" — notebooks/03_uncertainty_mitigation.ipynb).
    """
    check_tensor(x, "x", ndim=4)
    check_tensor(a, "a", ndim=4)
    check_choice(mode, "mode", ATTENTION_MODES)
    sigma = _check_sigma(blur_sigma)
    b, c, h, w = x.shape
    if a.shape[0] != b or a.shape[1] not in (1, c) or tuple(a.shape[2:]) != (h, w):
        raise ValueError(
            f"a must have shape [{b}, 1, {h}, {w}] or [{b}, {c}, {h}, {w}] to match x, got {tuple(a.shape)}"
        )
    if (a < 0).any() or (a > 1).any():
        raise ValueError("a must lie in [0, 1] (attention weights)")
    a = a.detach().to(dtype=x.dtype, device=x.device)
    if mode == "mask":
        return x * a
    return a * x + (1 - a) * gaussian_blur(x, sigma)


# ----------------------------------------------------------------------------------------------
# selection and batch application
# ----------------------------------------------------------------------------------------------


def uncertain_subset(
    u: torch.Tensor | np.ndarray,
    quantile: float = 0.8,
    *,
    reference: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    r"""The inputs whose uncertainty lies strictly above a quantile.

    The threshold is ``numpy.quantile(reference, quantile)`` with linear interpolation, computed
    in float64. ``reference`` defaults to ``u`` itself; pass a validation set's uncertainties to
    select test inputs by a threshold fixed in advance (book: chapter 3, "Uncertainty mitigation", section "Fine-tuning with and without attention" — notebooks/03_uncertainty_mitigation.ipynb). With ``quantile=0.8``
    and distinct values, the top 20 % are selected.

    Parameters
    ----------
    u : torch.Tensor or numpy.ndarray, shape ``[N]``
        Per-input uncertainty (higher means more uncertain).
    quantile : float in ``[0, 1]``, default 0.8
    reference : torch.Tensor or numpy.ndarray, shape ``[M]``, keyword-only, optional
        Uncertainties that define the threshold.

    Returns
    -------
    torch.Tensor, shape ``[N]``, dtype ``torch.bool``
        ``u > threshold``, on the CPU. ``quantile=1`` selects nothing from the reference set.
    """
    q = _check_unit_float(quantile, "quantile")
    arr = _as_vector(u, "u")
    ref = arr if reference is None else _as_vector(reference, "reference")
    threshold = np.quantile(ref, q)
    return torch.from_numpy(arr > threshold)


def attend(
    x: torch.Tensor,
    attribute: Attribution,
    *,
    uncertainty: torch.Tensor | np.ndarray | None = None,
    quantile: float | None = None,
    reference: torch.Tensor | np.ndarray | None = None,
    lam: float = 1.0,
    mode: str = "mask",
    blur_sigma: float = 2.0,
    batch_size: int = 128,
    progress: bool | str = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compute and apply the attention of ``attribute`` for a dataset, in micro-batches.

    Without ``quantile``, every input is attended. With ``quantile`` (and ``uncertainty``), only
    the inputs selected by :func:`uncertain_subset` are attended. ``attribute`` is then called on
    those inputs only, since the others would be discarded anyway. The other inputs are copied
    unchanged, bit for bit.

    Parameters
    ----------
    x : torch.Tensor, shape ``[N, C, H, W]``
        Images.
    attribute : callable ``[B, C, H, W] -> [B, C' in {1, C}, H, W]``
        The attribution function (a black box). It is called with gradients enabled on a copy of
        each micro-batch, so it cannot modify ``x``.
    uncertainty : shape ``[N]``, keyword-only, optional
        Per-input uncertainty of the frozen model. Required with ``quantile``.
    quantile : float in ``[0, 1]``, keyword-only, optional
        Attend only to inputs above this quantile (see :func:`uncertain_subset`).
    reference : shape ``[M]``, keyword-only, optional
        Validation uncertainties defining the threshold (default: ``uncertainty``).
    lam, mode, blur_sigma
        See :func:`attention_from_attribution` and :func:`apply_attention`.
    batch_size : int, keyword-only, default 128
        Micro-batch size of the calls to ``attribute``.
    progress : bool or str, keyword-only
        Show a plain ``tqdm`` bar over the micro-batches (a string becomes its description).

    Returns
    -------
    x_tilde : torch.Tensor, shape ``[N, C, H, W]``
        Attended images (dtype and device of ``x``).
    applied : torch.Tensor, shape ``[N]``, dtype ``torch.bool``
        Which inputs were attended (all ``True`` without ``quantile``), on the CPU.

    References
    ----------
    Wang et al. (CVPR 2023). Quantile-based selection is a reconstruction ([INF]; book: chapter 3, "Uncertainty mitigation", section "Fine-tuning with and without attention" — notebooks/03_uncertainty_mitigation.ipynb).
    """
    check_tensor(x, "x", ndim=4)
    if not callable(attribute):
        raise TypeError(
            f"attribute must be a callable x [B, C, H, W] -> A [B, C, H, W], got {type(attribute).__name__}"
        )
    check_positive_int(batch_size, "batch_size")
    check_choice(mode, "mode", ATTENTION_MODES)
    lam = _check_unit_float(lam, "lam")
    _check_sigma(blur_sigma)
    n, c, h, w = x.shape
    if quantile is None:
        if uncertainty is not None or reference is not None:
            raise ValueError("uncertainty / reference only select inputs together with quantile; pass quantile too")
        applied = torch.ones(n, dtype=torch.bool)
    else:
        if uncertainty is None:
            raise ValueError("quantile needs the per-input uncertainty [N] of the frozen model (uncertainty=...)")
        if len(uncertainty) != n:
            raise ValueError(f"uncertainty must have one value per input, {n}, got {len(uncertainty)}")
        applied = uncertain_subset(uncertainty, quantile, reference=reference)

    x_tilde = x.clone()
    idx = torch.nonzero(applied).flatten()
    starts = range(0, len(idx), batch_size)
    bar = progress_bar(starts, progress=progress, desc="attention", leave=False, unit="batch")
    for i in bar:
        j = idx[i : i + batch_size].to(x.device)
        xb = x[j].clone()
        with torch.enable_grad():
            A = attribute(xb.clone())
        if not isinstance(A, torch.Tensor):
            raise TypeError(f"attribute must return a torch.Tensor, got {type(A).__name__}")
        if A.ndim != 4 or A.shape[0] != len(j) or A.shape[1] not in (1, c) or tuple(A.shape[2:]) != (h, w):
            raise ValueError(
                f"attribute returned shape {tuple(A.shape)} for inputs {tuple(xb.shape)}; expected "
                f"[{len(j)}, {c} or 1, {h}, {w}]"
            )
        a = attention_from_attribution(A.detach(), lam=lam)
        x_tilde[j] = apply_attention(xb, a.to(x.device), mode=mode, blur_sigma=blur_sigma)
    return x_tilde, applied


# ----------------------------------------------------------------------------------------------
# the mitigation protocol
# ----------------------------------------------------------------------------------------------


@contextmanager
def _untouched(posterior: Posterior) -> Iterator[None]:
    """Restore the train/eval flags, ``requires_grad`` flags and ``.grad`` fields of a posterior.

    A black-box attribution function may call ``.backward()``, which accumulates gradients in the
    parameters, or switch the module's mode. Neither may leak into the caller's posterior.
    """
    params = posterior.parameters()
    # clone: autograd may accumulate into an existing .grad in place
    flags = [(p, p.requires_grad, None if p.grad is None else p.grad.detach().clone()) for p in params]
    try:
        with preserve_mode(posterior.module):
            yield
    finally:
        for p, req, grad in flags:
            p.grad = grad
            if p.is_leaf:
                p.requires_grad_(req)


def mitigate(
    posterior: Posterior,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    attribute: Attribution,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    lam: float = 1.0,
    mode: str = "mask",
    blur_sigma: float = 2.0,
    quantile: float | None = None,
    reference: torch.Tensor | np.ndarray | None = None,
    uncertainty_kind: str = "epistemic",
    attention_batch_size: int | None = None,
    progress: bool = False,
) -> Posterior:
    """Fine-tune a copy of a trained posterior on attention-weighted training images.

    The protocol (a reconstruction [INF]; book: chapter 3, "Uncertainty mitigation", section "Fine-tuning with and without attention" — notebooks/03_uncertainty_mitigation.ipynb):

    (i) ``posterior`` has already been trained normally. It is never modified: its weights,
        train/eval flags, gradients and ``requires_grad`` flags are as before the call.
    (ii) The attention of every training image is computed with ``attribute``. That function
        should explain the *frozen* ``posterior``, e.g. ``lambda x: ua_backprop(posterior, x)``.
        It runs before any fine-tuning and never sees the copy. With ``quantile``, only training
        images whose ``uncertainty_kind`` uncertainty under ``posterior`` lies above the quantile
        are attended (of ``reference`` if given, else of the training set). The rest stay clean.
    (iii) A ``copy.deepcopy`` of ``posterior`` is fine-tuned on the attended images with
        :func:`ualib.training.fit` (Adam, ``epochs``, ``lr``, ``batch_size``, ``seed``). The
        copy is returned.

    Evaluate the copy on test images attended in the same way. Call :func:`attend` with the same
    ``attribute`` (still explaining the frozen original), ``lam``, ``mode`` and selection, then
    compare with :func:`mitigation_report` / :func:`compare_reports`.

    Parameters
    ----------
    posterior : Posterior
        The trained baseline (any :mod:`ualib.posteriors` class; ``DeepEnsemble`` deep-copies too).
    x_train : torch.Tensor, shape ``[N, C, H, W]``
    y_train : torch.Tensor, shape ``[N]``, integer labels
    attribute : callable ``[B, C, H, W] -> [B, C' in {1, C}, H, W]``
        Raw uncertainty attribution of the frozen ``posterior`` (black box).
    epochs, lr, batch_size, seed : keyword-only
        Fine-tuning settings passed to :func:`ualib.training.fit`. ``seed`` also seeds the global
        RNG around the attribution calls, so a stochastic attribution (SmoothGrad noise, say) is
        reproducible. The caller's RNG state is restored afterwards.
    lam, mode, blur_sigma : keyword-only
        See :func:`attention_from_attribution` and :func:`apply_attention`.
    quantile, reference, uncertainty_kind : keyword-only
        Optional selection of the uncertain training images (see :func:`attend`).
        ``uncertainty_kind`` is one of :data:`ualib.uncertainty.UNCERTAINTY_KINDS`.
    attention_batch_size : int, keyword-only, optional
        Micro-batch size of the attribution calls (default ``batch_size``).
    progress : bool, keyword-only
        Plain ``tqdm`` bars for the attention pass and for training.

    Returns
    -------
    Posterior
        The fine-tuned copy, in eval mode.

    References
    ----------
    Wang et al. (CVPR 2023): that attribution results are used "as attention to further improve
    the model performance" is verified (abstract). The protocol above is a reconstruction
    ([INF]; book: chapter 3, "Uncertainty mitigation", section "Fine-tuning with and without attention" — notebooks/03_uncertainty_mitigation.ipynb).
    """
    if not isinstance(posterior, Posterior):
        raise TypeError(f"posterior must be a ualib Posterior, got {type(posterior).__name__}")
    check_tensor(x_train, "x_train", ndim=4)
    check_tensor(y_train, "y_train", ndim=1, floating=False)
    if len(x_train) != len(y_train):
        raise ValueError(f"x_train and y_train must have the same length, got {len(x_train)} and {len(y_train)}")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    check_choice(uncertainty_kind, "uncertainty_kind", U.UNCERTAINTY_KINDS)
    if quantile is None and reference is not None:
        raise ValueError("reference only selects inputs together with quantile; pass quantile too")
    attn_bs = batch_size
    if attention_batch_size is not None:
        attn_bs = check_positive_int(attention_batch_size, "attention_batch_size")

    # (ii) attention from the frozen original; nothing it does may leak into `posterior` or the RNG
    with _untouched(posterior), preserve_rng():
        seed_everything(derive_seed(seed, "mitigation", "attention"))
        u = None
        if quantile is not None:
            u = U.uncertainty(posterior.predict(x_train, batch_size=attn_bs), uncertainty_kind)
        x_att, _ = attend(
            x_train,
            attribute,
            uncertainty=u,
            quantile=quantile,
            reference=reference,
            lam=lam,
            mode=mode,
            blur_sigma=blur_sigma,
            batch_size=attn_bs,
            progress="attention (train)" if progress else False,
        )

    # (iii) fine-tune a copy; the original keeps its weights
    tuned = copy.deepcopy(posterior)
    for p in tuned.parameters():
        p.grad = None
    fit(
        tuned,
        x_att,
        y_train,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        progress=progress,
        desc=f"{posterior.name} + attention",
    )
    return tuned


# ----------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------


def mitigation_report(
    posterior: Posterior,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    groups: Mapping[str, torch.Tensor | np.ndarray],
    batch_size: int = 1024,
    n_bins: int = 15,
    progress: bool | str = False,
) -> pd.DataFrame:
    """Accuracy, NLL, ECE and mean epistemic and total uncertainty per named group of test inputs.

    The metrics are those of :mod:`ualib.metrics`, applied to the predictive distribution (the
    mean of ``posterior.predict``) restricted to each group. Epistemic means mutual information
    and total means the entropy of the mean (:mod:`ualib.uncertainty`). Pass the inputs the
    posterior should be judged on: clean ``x_test`` for the baseline, and attended ``x_test`` for
    the fine-tuned copy from :func:`mitigate`.

    Parameters
    ----------
    posterior : Posterior
    x_test : torch.Tensor, shape ``[N, ...]``
    y_test : torch.Tensor, shape ``[N]``, integer labels
    groups : mapping from name to boolean mask ``[N]``, keyword-only
        E.g. ``{"all": ..., "most uncertain 20%": ..., "planted cause": ...}``. An empty group gives
        ``n = 0`` and NaN metrics.
    batch_size : int, keyword-only, default 1024
        Prediction batch size.
    n_bins : int, keyword-only, default 15
        ECE bins.
    progress : bool or str, keyword-only
        Plain ``tqdm`` bar for the prediction.

    Returns
    -------
    pandas.DataFrame
        One row per group (in the order of ``groups``), columns :data:`REPORT_COLUMNS`:
        ``n``, ``accuracy``, ``NLL``, ``ECE``, ``epistemic``, ``total``.
    """
    if not isinstance(posterior, Posterior):
        raise TypeError(f"posterior must be a ualib Posterior, got {type(posterior).__name__}")
    check_tensor(x_test, "x_test", ndim=(2, 3, 4))
    check_tensor(y_test, "y_test", ndim=1, floating=False)
    n = len(x_test)
    if len(y_test) != n:
        raise ValueError(f"x_test and y_test must have the same length, got {n} and {len(y_test)}")
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("groups must be a non-empty mapping {name: boolean mask [N]}")
    masks = {str(name): _as_mask(m, f"groups[{name!r}]", n) for name, m in groups.items()}
    probs = posterior.predict(x_test, batch_size=batch_size, progress=progress)  # [S, N, K], CPU
    mean = probs.mean(0)
    epi = U.mutual_information(probs)
    tot = U.total_entropy(probs)
    y = y_test.detach().cpu()
    rows = {}
    for name, m in masks.items():
        sel = torch.from_numpy(np.ascontiguousarray(m))
        k = int(sel.sum())
        if k == 0:
            rows[name] = {"n": 0, **{col: float("nan") for col in REPORT_COLUMNS[1:]}}
            continue
        rows[name] = {
            "n": k,
            "accuracy": metrics.accuracy(mean[sel], y[sel]),
            "NLL": metrics.nll(mean[sel], y[sel]),
            "ECE": metrics.ece(mean[sel], y[sel], n_bins=n_bins),
            "epistemic": float(epi[sel].double().mean()),
            "total": float(tot[sel].double().mean()),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(REPORT_COLUMNS))
    frame["n"] = frame["n"].astype(int)
    frame.index.name = "group"
    return frame


def compare_reports(
    base: pd.DataFrame,
    mitigated: pd.DataFrame,
    *,
    names: tuple[str, str] = ("baseline", "mitigated"),
) -> pd.DataFrame:
    """Baseline and mitigated reports side by side, with a ``delta`` column set (mitigated - baseline).

    Parameters
    ----------
    base, mitigated : pandas.DataFrame
        Two :func:`mitigation_report` frames with the same groups (index) and columns.
    names : (str, str), keyword-only
        Top-level column labels of the two reports.

    Returns
    -------
    pandas.DataFrame
        Columns are a two-level index ``(set, metric)`` with sets ``names[0]``, ``names[1]`` and
        ``"delta"``. ``delta`` covers every metric except the group size ``n``. For accuracy a
        positive delta is an improvement; for NLL, ECE and the uncertainties a negative one is.
    """
    for name, df in (("base", base), ("mitigated", mitigated)):
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"{name} must be a pandas.DataFrame, got {type(df).__name__}")
    if list(base.index) != list(mitigated.index) or list(base.columns) != list(mitigated.columns):
        raise ValueError(
            "base and mitigated must have the same groups and columns, got "
            f"{list(base.index)} x {list(base.columns)} and {list(mitigated.index)} x {list(mitigated.columns)}"
        )
    if len(names) != 2 or names[0] == names[1] or "delta" in names:
        raise ValueError(f"names must be two distinct labels other than 'delta', got {names!r}")
    metric_cols = [c for c in base.columns if c != "n"]
    delta = mitigated[metric_cols] - base[metric_cols]
    return pd.concat({names[0]: base, names[1]: mitigated, "delta": delta}, axis=1)
