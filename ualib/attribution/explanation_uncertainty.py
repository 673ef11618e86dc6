"""Explanation uncertainty: how much an explanation changes across posterior samples.

Mulye & Valdenegro-Toro (2024) combine an uncertainty-estimation method (MC dropout, MC DropConnect,
deep ensembles, Flipout) with an explanation method (guided backpropagation, integrated gradients,
LIME): every posterior sample :math:`\\theta_m` gives its own explanation :math:`E^{(m)}(x)`, and the
spread of this *explanation distribution* measures how confident we can be in the explanation (the
*why*), as distinct from the prediction (the *what*). The book states the pipeline (book: chapter 5, "Explanation uncertainty", section "The pipeline" — notebooks/05_explanation_uncertainty.ipynb);
this module implements it:

1. **Target** (:func:`target_classes`): one class per input, the arg-max of the mean prediction
   :math:`\\bar p(x)`, explained in every sample [INF: the paper's choice was not available; a fixed
   target keeps the samples comparable]. For a regressor, the scalar output.
2. **Explanation distribution** (:func:`explanation_distribution`): ``[S, B, ...]``, map ``m`` computed
   on posterior sample ``m`` alone, the *same* sample for the forward and the backward pass, and for
   every perturbation query of LIME. Gradient methods run all S samples in one vectorised pass
   (``Posterior.logits(..., per_sample_inputs=True)``); LIME evaluates all S samples on its perturbed
   images in one forward pass and fits one ridge regression per sample.
3. **Statistics** (:func:`explanation_statistics`): per pixel or feature, on the non-negative maps
   :math:`|E|` (channel-summed for images) [INF], the mean :math:`E_\\mu`, the standard deviation
   :math:`E_\\sigma` and the coefficient of variation :math:`\\mathrm{CV}=E_\\sigma/(E_\\mu+\\varepsilon)`.
4. **Aggregates** (:func:`cv_aggregates`): per image, the mean and median CV over pixels, optionally over
   the top-q fraction of pixels of :math:`E_\\mu` [INF].
5. **Modified insertion / deletion** (:func:`stochastic_perturbation_curves`) [INF]: pixels ranked by
   :math:`E_\\mu` (or by CV), the stochastic model evaluated S times per step; the mean and spread of
   the curve and of its AUC. For tables, deleted features take the training mean.

What the explainers explain [INF]: the class *probability* of sample ``m`` (the softmax output that a
Keras classifier, as in the paper's toolkit, returns), ``output="logit"`` for the logit; for a regressor
the output itself. Plain gradients are offered as an extra, **not in the paper**
(:data:`IN_PAPER`).

References
----------
M. Mulye, M. Valdenegro-Toro. Uncertainty quantification for gradient-based explanations in neural
networks. arXiv:2403.17224, 2024.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ualib._checks import check_choice, check_class_index, check_model_dtype, check_positive_int, check_tensor
from ualib.attribution import gradient, guided_backprop, integrated_gradients
from ualib.attribution.lime import lime
from ualib.attribution.registry import names
from ualib.metrics.perturbation import _normalised_auc, perturbation_curve
from ualib.posteriors import Posterior

__all__ = [
    "EXPLAINERS",
    "IN_PAPER",
    "OUTPUTS",
    "target_classes",
    "explanation_distribution",
    "explanation_statistics",
    "cv_aggregates",
    "stochastic_perturbation_curves",
]

#: the explanation methods of :func:`explanation_distribution`: the registry entries marked ``distribution``
EXPLAINERS = names(distribution=True)
#: whether Mulye & Valdenegro-Toro (2024) used the method (plain gradients are an extra)
IN_PAPER = {"guided_backprop": True, "integrated_gradients": True, "lime": True, "gradient": False}
#: what is explained: a class probability, a class logit, or a regressor's output
OUTPUTS = ("probability", "logit", "value")


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _check_posterior(posterior: object) -> Posterior:
    if not isinstance(posterior, Posterior):
        raise TypeError(f"posterior must be a ualib Posterior, got {type(posterior).__name__}")
    return posterior


def _output(posterior: Posterior, output: str | None) -> str:
    if output is None:
        return "value" if posterior.task == "regression" else "probability"
    return check_choice(output, "output", OUTPUTS)


def _select(out: torch.Tensor, classes: torch.Tensor | None, output: str) -> torch.Tensor:
    """``[S, N, K]`` network outputs -> the explained scalar ``[S, N]``."""
    if output == "value":
        if out.shape[-1] != 1:
            raise ValueError(f"output='value' needs a one-output regressor, got {out.shape[-1]} outputs")
        return out[..., 0]
    if classes is None:
        raise ValueError(f"output={output!r} needs target classes")
    if classes.numel():
        check_class_index(int(classes.max()), "classes", out.shape[-1])
    vals = out.softmax(-1) if output == "probability" else out
    idx = classes.to(out.device)[None, :, None].expand(out.shape[0], -1, 1)
    return vals.gather(2, idx)[..., 0]


@torch.no_grad()
def target_classes(posterior: Posterior, x: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """The explained class of each input: the arg-max of the mean predicted probability.

    Parameters
    ----------
    posterior
        A classifier posterior (``logits -> [S, B, K]``).
    x
        Inputs ``[B, ...]``.

    Returns
    -------
    torch.Tensor
        ``int64 [B]``: :math:`\\arg\\max_k \\frac1S\\sum_m p_{mk}(x)` (ties to the lowest class).
    """
    _check_posterior(posterior)
    return posterior.predict(x, batch_size=batch_size).mean(0).argmax(-1)


def _check_classes(classes: object, b: int) -> torch.Tensor:
    if not isinstance(classes, torch.Tensor) or classes.dtype not in (torch.int32, torch.int64):
        raise TypeError("classes must be an integer tensor [B]")
    if classes.shape != (b,):
        raise ValueError(f"classes must have shape [{b}] like x's batch, got {tuple(classes.shape)}")
    return check_class_index(classes, "classes").long()


def _stacked_target(posterior: Posterior, classes: torch.Tensor | None, output: str, nb: int) -> Callable:
    """A target over the S x nb stacked inputs (row ``s * nb + b`` is image ``b`` for sample ``s``).

    The attribution methods call it on whole blocks of ``S * nb`` rows (their ``batch_size`` is a
    multiple of the block: :func:`explanation_distribution` sees to it), e.g. integration steps
    ``r * S * nb + s * nb + b``; each block is pushed through the S samples with
    ``per_sample_inputs=True``, so row ``s * nb + b`` is evaluated by sample ``s`` only.
    """
    s_total = posterior.num_samples
    block = s_total * nb

    def target(points: torch.Tensor) -> torch.Tensor:
        n = points.shape[0]
        if n % block:
            raise RuntimeError(f"internal error: {n} points are not whole blocks of {block}")
        reps = n // block
        z = points.reshape(reps, s_total, nb, *points.shape[1:]).transpose(0, 1)
        out = posterior.logits(z.reshape(s_total, reps * nb, *points.shape[1:]), per_sample_inputs=True)
        cls = None if classes is None else classes.repeat(reps)
        val = _select(out, cls, output)  # [S, reps * nb]
        return val.reshape(s_total, reps, nb).transpose(0, 1).reshape(n)

    return target


# --------------------------------------------------------------------------------------------------
# 1-2: the explanation distribution
# --------------------------------------------------------------------------------------------------


def explanation_distribution(
    posterior: Posterior,
    x: torch.Tensor,
    method: str,
    *,
    classes: torch.Tensor | None = None,
    output: str | None = None,
    ig_steps: int = 32,
    ig_baseline: str | torch.Tensor = "black",
    lime_samples: int = 1000,
    lime_cell_size: int | None = None,
    lime_batch_size: int = 100,
    feature_baseline: torch.Tensor | None = None,
    images_per_chunk: int = 8,
    max_points: int = 4096,
    seed: int = 0,
) -> torch.Tensor:
    r"""Explanations of every posterior sample: the explanation distribution ``[S, B, ...]``.

    Map ``[m, b]`` explains the scalar :math:`F_m(x_b)` (the probability, or logit, of class
    ``classes[b]`` under posterior sample ``m`` alone; a regressor's output under sample ``m``) with
    ``method``, computed with sample ``m`` in the forward and the backward pass (step 2 of the pipeline; book: chapter 5, "Explanation uncertainty", section "The pipeline" — notebooks/05_explanation_uncertainty.ipynb).

    Parameters
    ----------
    posterior
        Any posterior with S samples (MC dropout, DropConnect, deep ensemble, Flipout). A
        ``task="regression"`` posterior is explained through its one output.
    x
        Images ``[B, C, H, W]`` or table rows ``[B, F]``.
    method
        One of :data:`EXPLAINERS`: ``"guided_backprop"`` (Springenberg et al. 2015),
        ``"integrated_gradients"`` (Sundararajan et al. 2017; ``ig_steps`` right Riemann steps from
        ``ig_baseline``), ``"lime"`` (Ribeiro et al. 2016, :func:`ualib.attribution.lime.lime`) or
        ``"gradient"`` (not in the paper).
    classes
        The explained class per input, ``int64 [B]``; default :func:`target_classes` (arg-max of the
        mean prediction). Ignored for a regressor.
    output
        ``"probability"`` (default for classifiers), ``"logit"`` or ``"value"`` (default for
        regressors).
    ig_steps, ig_baseline
        Integrated gradients' steps and baseline (``"black"``, ``"blur"`` or a tensor broadcastable
        to one input, e.g. the training mean of a table's features).
    lime_samples, lime_cell_size, lime_batch_size
        LIME's perturbed images per input, the grid cell (``None``: LIME module's default) and the
        perturbed images per forward pass (each pass runs all S samples on them).
    feature_baseline
        Tables only: the value of a switched-off feature in LIME, ``[F]`` (default zeros; pass the
        training mean: mean imputation). LIME on a table treats each feature as one superpixel of a
        ``1 x F`` image [INF: not ``lime``'s ``LimeTabularExplainer``, which samples from the training
        distribution].
    images_per_chunk
        Gradient methods: inputs explained together (all S samples of each).
    max_points
        Gradient methods: at most about this many network evaluations at once (memory bound).
    seed
        LIME's seed.

    Returns
    -------
    torch.Tensor
        ``[S, B, *x.shape[1:]]``, raw signed explanations, detached.

    Raises
    ------
    TypeError, ValueError
        For a non-posterior, an unknown method or output, or wrongly shaped ``x`` / ``classes``.

    References
    ----------
    M. Mulye, M. Valdenegro-Toro. Uncertainty quantification for gradient-based explanations in
    neural networks. arXiv:2403.17224, 2024.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    >>> post = ualib.MCDropout(net, num_samples=6)
    >>> maps = ualib.explanation_distribution(post, torch.rand(2, 4), "gradient")
    >>> tuple(maps.shape)  # [S, B, ...]: one explanation per posterior sample
    (6, 2, 4)
    >>> tuple(maps.std(0).shape)  # the spread of the explanation over the posterior
    (2, 4)
    """
    _check_posterior(posterior)
    check_choice(method, "method", EXPLAINERS)
    x = check_model_dtype(check_tensor(x, "x", ndim=(2, 4), nonempty=True), "x", posterior.parameters()).detach()
    check_positive_int(ig_steps, "ig_steps")
    out_kind = _output(posterior, output)
    b = x.shape[0]
    if out_kind == "value":
        cls = None
    else:
        cls = target_classes(posterior, x).to(x.device) if classes is None else _check_classes(classes, b).to(x.device)
    images_per_chunk = check_positive_int(images_per_chunk, "images_per_chunk")
    max_points = check_positive_int(max_points, "max_points")
    s_total = posterior.num_samples

    if method == "lime":
        return _lime_distribution(
            posterior, x, cls, out_kind, lime_samples, lime_cell_size, lime_batch_size, feature_baseline, seed
        )

    parts = []
    for start in range(0, b, images_per_chunk):
        xb = x[start : start + images_per_chunk]
        nb = xb.shape[0]
        block = s_total * nb
        target = _stacked_target(posterior, None if cls is None else cls[start : start + nb], out_kind, nb)
        stacked = xb.unsqueeze(0).expand(s_total, *xb.shape).reshape(block, *xb.shape[1:])
        bs = block * max(1, max_points // block)
        if method == "gradient":
            maps = gradient(target, stacked, batch_size=bs)
        elif method == "guided_backprop":
            maps = guided_backprop(target, stacked, model=posterior.module, batch_size=bs)
        else:
            base = ig_baseline
            if isinstance(base, torch.Tensor):
                base = base.to(x.device, x.dtype).expand_as(xb[:1]).expand(block, *xb.shape[1:])
            maps = integrated_gradients(target, stacked, baseline=base, steps=ig_steps, batch_size=bs)
        parts.append(maps.reshape(s_total, nb, *xb.shape[1:]))
    return torch.cat(parts, 1)


def _lime_distribution(
    posterior: Posterior,
    x: torch.Tensor,
    cls: torch.Tensor | None,
    out_kind: str,
    num_samples: int,
    cell_size: int | None,
    batch_size: int,
    feature_baseline: torch.Tensor | None,
    seed: int,
) -> torch.Tensor:
    table = x.ndim == 2
    if table:
        f = x.shape[1]
        base = torch.zeros(f, dtype=x.dtype, device=x.device) if feature_baseline is None else feature_baseline
        base = check_tensor(base, "feature_baseline", ndim=1).to(x.device, x.dtype)
        if base.shape != (f,):
            raise ValueError(f"feature_baseline must have shape [{f}], got {tuple(base.shape)}")
        # LIME sees x - baseline with hide colour 0; the target adds the baseline back: mean imputation
        images = (x - base).reshape(x.shape[0], 1, 1, f)
        hide, cell = 0.0, 1
    else:
        if feature_baseline is not None:
            raise ValueError("feature_baseline is for tables [B, F]; images use LIME's superpixel mean colour")
        images, hide, cell = x, None, cell_size
    maps = []
    for i in range(x.shape[0]):
        c_i = None if cls is None else cls[i : i + 1]

        def target(z: torch.Tensor, c_i: torch.Tensor | None = c_i) -> torch.Tensor:
            inp = z.reshape(z.shape[0], -1) + base if table else z
            out = posterior.logits(inp)  # [S, n, K]: every sample on the same perturbed inputs
            return _select(out, None if c_i is None else c_i.expand(z.shape[0]), out_kind).T  # [n, S]

        m = lime(
            target,
            images[i : i + 1],
            num_samples=num_samples,
            cell_size=cell,
            hide_color=hide,
            seed=seed,
            batch_size=batch_size,
        )  # [S, 1, C, H, W]
        maps.append(m.reshape(m.shape[0], 1, *x.shape[1:]) if table else m)
    return torch.cat(maps, 1)


# --------------------------------------------------------------------------------------------------
# 3-4: statistics and aggregates
# --------------------------------------------------------------------------------------------------


def explanation_statistics(maps: torch.Tensor, *, eps: float = 1e-8) -> dict[str, torch.Tensor]:
    r"""Per-pixel (per-feature) mean, standard deviation and coefficient of variation over samples.

    With :math:`A^{(m)}_i = \sum_c |E^{(m)}_{c,i}|` (images: absolute value summed over channels;
    tables: absolute value) [INF: step 4 of the pipeline, book: chapter 5, "Explanation uncertainty", section "The pipeline" — notebooks/05_explanation_uncertainty.ipynb; a signed mean near 0 would make the CV explode],

    .. math::

        \mu_i = \frac1S\sum_m A^{(m)}_i,\qquad
        \sigma_i = \sqrt{\frac1S\sum_m \bigl(A^{(m)}_i-\mu_i\bigr)^2},\qquad
        \mathrm{CV}_i = \frac{\sigma_i}{\mu_i+\varepsilon}.

    The standard deviation is the population one (divisor S, ``numpy.std``'s default). Because
    :math:`A\ge 0`, :math:`0\le\mathrm{CV}_i\le\sqrt{S-1}`: the upper bound is reached when one sample
    alone gives the pixel any weight; a pixel that every sample gives exactly zero has CV 0.

    Parameters
    ----------
    maps
        The explanation distribution ``[S, B, C, H, W]`` or ``[S, B, F]``.
    eps
        :math:`\varepsilon > 0`, added to the mean in the denominator (default ``1e-8``).

    Returns
    -------
    dict
        ``"abs"`` (:math:`A`, ``[S, B, H, W]`` or ``[S, B, F]``), ``"mean"``, ``"std"``, ``"cv"``
        (each ``[B, H, W]`` or ``[B, F]``).
    """
    maps = check_tensor(maps, "maps", ndim=(3, 5))
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    a = maps.abs().sum(2) if maps.ndim == 5 else maps.abs()
    mean = a.mean(0)
    std = a.std(0, correction=0)
    return {"abs": a, "mean": mean, "std": std, "cv": std / (mean + eps)}


def cv_aggregates(
    cv: torch.Tensor, mean: torch.Tensor | None = None, *, top_q: float | None = None
) -> dict[str, torch.Tensor]:
    """Per-image mean and median CV, over all pixels or over the top-``q`` fraction of the mean map.

    Parameters
    ----------
    cv
        CV maps ``[B, ...]`` (:func:`explanation_statistics`).
    mean
        The mean maps ``[B, ...]``, needed with ``top_q``.
    top_q
        ``None`` (all pixels) or a fraction in ``(0, 1]``: only the ``ceil(q * P)`` pixels with the
        largest mean explanation count (ties by the lower flat index) [INF].

    Returns
    -------
    dict
        ``"mean"`` and ``"median"``, each ``[B]``. The median of an even count is the average of the
        two middle values (``numpy.median``).
    """
    cv = check_tensor(cv, "cv", ndim=(2, 3))
    flat = cv.flatten(1)
    if top_q is not None:
        if isinstance(top_q, bool) or not isinstance(top_q, (int, float)) or not 0 < top_q <= 1:
            raise ValueError(f"top_q must be None or a fraction in (0, 1], got {top_q!r}")
        if mean is None:
            raise ValueError("top_q needs the mean maps (mean=...)")
        mean = check_tensor(mean, "mean", ndim=cv.ndim)
        if mean.shape != cv.shape:
            raise ValueError(f"mean must have the shape of cv {tuple(cv.shape)}, got {tuple(mean.shape)}")
        k = math.ceil(top_q * flat.shape[1])
        order = torch.sort(-mean.flatten(1), dim=1, stable=True).indices[:, :k]
        flat = flat.gather(1, order)
    return {"mean": flat.mean(1), "median": flat.quantile(0.5, dim=1)}


# --------------------------------------------------------------------------------------------------
# 5: modified insertion / deletion
# --------------------------------------------------------------------------------------------------


def stochastic_perturbation_curves(
    posterior: Posterior,
    x: torch.Tensor,
    ranking: torch.Tensor,
    *,
    mode: str = "delete",
    classes: torch.Tensor | None = None,
    output: str | None = None,
    fractions: torch.Tensor | None = None,
    baseline: float | str | torch.Tensor | None = None,
    blur_sigma: float = 2.0,
    batch_size: int | None = 256,
) -> dict[str, torch.Tensor]:
    r"""Modified deletion / insertion: the stochastic model evaluated S times per step [INF].

    Pixels (features) are ranked by ``ranking`` (the mean explanation :math:`E_\mu`, or the CV map
    for the CV-ranked variant), then removed (``"delete"``) or restored (``"insert"``) by
    :func:`ualib.metrics.perturbation.perturbation_curve`, whose conventions apply (descending rank, ties by
    flat index, ``k(r) = round(r P)``). At every step each posterior sample ``m`` scores the perturbed
    input: the probability of the explained class (fixed before perturbing), or a regressor's output.
    Step 5 of the pipeline (book: chapter 5, "Explanation uncertainty", section "Modified insertion and deletion" — notebooks/05_explanation_uncertainty.ipynb) is a reconstruction: the paper's "modification" could not be read.

    Parameters
    ----------
    posterior
        The stochastic model.
    x
        Images ``[B, C, H, W]`` or table rows ``[B, F]``.
    ranking
        ``[B, H, W]`` / ``[B, C', H, W]`` for images, ``[B, F]`` for tables; higher = removed first.
    mode
        ``"delete"`` or ``"insert"``.
    classes, output
        As in :func:`explanation_distribution` (default: the arg-max of the mean prediction, its
        probability; a regressor's value).
    fractions
        Fractions of pixels ``[T]`` (default ``linspace(0, 1, 21)``).
    baseline
        What removed pixels become / insertion starts from (see ``perturbation_curve``; default 0 for
        deletion, a blurred image for insertion). Tables: a tensor ``[F]``, the training mean (mean
        imputation), required.
    blur_sigma, batch_size
        As in ``perturbation_curve`` (``batch_size`` perturbed inputs per forward pass of all S
        samples).

    Returns
    -------
    dict
        * ``"fractions"`` ``[T]``;
        * ``"curves"`` ``[B, T, S]``: the score of every sample at every step;
        * ``"mean"``, ``"std"`` ``[B, T]``: mean and (population) standard deviation over samples;
        * ``"auc"`` ``[B, S]``: each sample's normalised AUC (the curve's mean value);
        * ``"auc_mean"`` ``[B]`` (= the AUC of the mean curve) and ``"auc_std"`` ``[B]`` (spread of
          the per-sample AUCs);
        * for ``output="value"`` also ``"abs_change"`` ``[B, T, S]``, :math:`|F_m(x_r)-F_m(x)|`, and
          its ``"abs_change_auc"`` ``[B, S]``.
    """
    _check_posterior(posterior)
    check_choice(mode, "mode", ("delete", "insert"))
    x = check_tensor(x, "x", ndim=(2, 4)).detach()
    out_kind = _output(posterior, output)
    b = x.shape[0]
    cls = None
    if out_kind != "value":
        cls = target_classes(posterior, x).to(x.device) if classes is None else _check_classes(classes, b).to(x.device)
    table = x.ndim == 2
    if table:
        f = x.shape[1]
        ranking = check_tensor(ranking, "ranking", ndim=2)
        if ranking.shape != x.shape:
            raise ValueError(f"ranking must have x's shape {tuple(x.shape)}, got {tuple(ranking.shape)}")
        if not isinstance(baseline, torch.Tensor) or baseline.shape != (f,):
            raise ValueError(f"tables need baseline=<training mean> as a tensor [{f}] (mean imputation)")
        xi, rank, base = x.reshape(b, 1, 1, f), ranking.reshape(b, 1, f), baseline.reshape(1, 1, 1, f)
    else:
        xi, rank, base = x, ranking, baseline

    def score(z: torch.Tensor) -> torch.Tensor:
        inp = z.reshape(z.shape[0], -1) if table else z
        return posterior.logits(inp).transpose(0, 1)  # [n, S, K]

    res = perturbation_curve(
        score,
        xi,
        rank,
        mode=mode,
        fractions=fractions,
        baseline=base,
        blur_sigma=blur_sigma,
        batch_size=batch_size,
        multi_output=True,
    )
    raw = res["scores"]  # [B, T, S, K]
    if out_kind == "value":
        curves = raw[..., 0]
    else:
        vals = raw.softmax(-1) if out_kind == "probability" else raw
        curves = vals.gather(3, cls[:, None, None, None].expand(-1, raw.shape[1], raw.shape[2], 1))[..., 0]
    f_used = res["fractions"]
    auc = _normalised_auc(curves, f_used)  # [B, S]
    out = {
        "fractions": f_used,
        "curves": curves,
        "mean": curves.mean(2),
        "std": curves.std(2, correction=0),
        "auc": auc,
        "auc_mean": auc.mean(1),
        "auc_std": auc.std(1, correction=0),
    }
    if out_kind == "value":
        with torch.no_grad():
            ref = posterior.logits(x)[..., 0].T  # [B, S]
        change = (curves - ref[:, None, :]).abs()
        out["abs_change"] = change
        out["abs_change_auc"] = _normalised_auc(change, f_used)
    return out
