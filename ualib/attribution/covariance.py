"""CovGI and CovIG: second-order explanations of a sampling posterior's predictive variance.

Bley et al. (2024) explain the variance of a model's output under a distribution over networks by the
*covariance* of per-network explanations. Let ``R_s [K, *x.shape]`` be a complete explanation of
posterior sample ``s``'s outputs ``f_s [K]`` (class probabilities here), i.e.
``sum_i R_{s,k,i} = T_{s,k}`` with ``T_{s,k} = f_{s,k}(x)`` for gradient x input of a piecewise-linear,
bias-free network and ``T_{s,k} = f_{s,k}(x) - f_{s,k}(x')`` for integrated gradients. Then

.. math:: \\sum_k \\mathrm{Var}_s(T_{s,k}) = \\sum_k \\sum_{i,j} \\mathrm{Cov}_s(R_{s,k,i}, R_{s,k,j})
          = \\sum_i \\underbrace{\\sum_k \\mathrm{Cov}_s(R_{s,k,i}, T_{s,k})}_{A_i},

an exact decomposition: the full matrix ``Cov(R_i, R_j)`` (pixel interactions) sums to the variance,
its diagonal ``Var(R_i)`` is the "first-order" part, and its row sums ``A_i`` are the attribution
returned here (each pixel's share, interactions split evenly between the two pixels). Covariances use
``1/S`` (population), matching :func:`ualib.uncertainty.predictive_variance`, so for a complete
explanation ``sum_i A_i`` equals the ``"variance"`` uncertainty exactly; for a softmax network
gradient x input is not complete and the returned ``explained`` variance ``sum_k Var_s(T_{s,k})`` is
reported next to the target's.

``CovGI`` uses gradient x input per sample, ``CovIG`` integrated gradients per sample (same posterior
samples at every integration step). [INF] Bley et al. build their second-order explanations mainly on
LRP (CovLRP) and give CovGI as the gradient x input variant; CovIG is our integrated-gradients analogue,
and the row-sum marginalisation is our reading of their first-order summary: a reconstruction.

Cost: the row sums need no ``[S, K, pixels]`` tensor. With ``c_{s,k} = T_{s,k} - mean_s T_{s,k}``,
``A = (x - x') * (1/S) sum_s grad_x sum_k c_{s,k} f_{s,k}``, one vector-Jacobian product per sample
once ``T`` is known; ``T`` itself is a directional derivative (``sum_i (x-x')_i d f / d x_i``), computed
by the double-backward trick. So CovGI costs about four backward passes of the ``S x B`` inputs, CovIG
that per integration step.

References
----------
.. [1] F. Bley, S. Lapuschkin, W. Samek, G. Montavon. "Explaining Predictive Uncertainty by Exposing
   Second-Order Effects." arXiv 2401.17441, 2024.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ualib._checks import check_choice, check_positive_int, check_tensor, model_input_errors
from ualib.posteriors import Posterior

__all__ = ["COV_EXPLANATIONS", "covariance_attribution", "cov_gi", "cov_ig", "covariance_from_explanations"]

#: per-sample explanations :func:`covariance_attribution` can build on
COV_EXPLANATIONS = ("gradient_x_input", "integrated_gradients")


def covariance_from_explanations(r: torch.Tensor) -> dict[str, torch.Tensor]:
    """The covariance decomposition from explicit per-sample explanations.

    Parameters
    ----------
    r
        ``[S, B, K, ...]``: explanation of output ``k`` of posterior sample ``s`` for input ``b``
        (``...`` = the input's shape).

    Returns
    -------
    dict
        * ``"attribution"`` ``[B, ...]``: ``A_i = sum_k Cov_s(R_{k,i}, sum_j R_{k,j})``;
        * ``"diagonal"`` ``[B, ...]``: ``sum_k Var_s(R_{k,i})`` (the first-order part);
        * ``"explained"`` ``[B]``: ``sum_k Var_s(sum_i R_{k,i})`` (``= sum_i A_i``).
        Covariances with ``1/S``.
    """
    r = check_tensor(r, "r")
    if r.ndim < 4:
        raise ValueError(f"r must be [S, B, K, ...] with at least one input axis, got shape {tuple(r.shape)}")
    s = r.shape[0]
    rc = r - r.mean(0, keepdim=True)
    t = rc.flatten(3).sum(-1)  # [S, B, K] centred sums
    shape = (*t.shape, *([1] * (r.ndim - 3)))
    attribution = (rc * t.view(shape)).sum((0, 2)) / s
    diagonal = (rc**2).sum((0, 2)) / s
    explained = (t**2).sum((0, 2)) / s
    return {"attribution": attribution, "diagonal": diagonal, "explained": explained}


def _outputs(posterior: Posterior, xs: torch.Tensor, idx: list[int], output: str) -> torch.Tensor:
    z = posterior.logits(xs, indices=idx, per_sample_inputs=True)
    return z.softmax(-1) if output == "probs" else z


def covariance_attribution(
    posterior: Posterior,
    x: torch.Tensor,
    *,
    explanation: str = "gradient_x_input",
    output: str = "probs",
    baseline: float | torch.Tensor = 0.0,
    steps: int = 16,
    indices: Sequence[int] | None = None,
    batch_size: int | None = None,
    return_details: bool = False,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """CovGI / CovIG attribution of the summed predictive variance of ``posterior`` at ``x``.

    Parameters
    ----------
    posterior
        A sampling :class:`~ualib.posteriors.Posterior` (MC dropout, ensemble, ...): ``S`` networks.
    x
        Inputs ``[B, ...]``.
    explanation
        ``"gradient_x_input"`` (CovGI) or ``"integrated_gradients"`` (CovIG, from ``baseline``).
    output
        ``"probs"`` (the variance target of :mod:`ualib.targets`) or ``"logits"``.
    baseline
        IG baseline ``x'`` (a number or a tensor broadcastable to ``x``); gradient x input uses ``0``.
    steps
        IG's midpoint Riemann steps.
    indices
        Posterior samples (default all ``S``).
    batch_size
        Micro-batch over inputs.
    return_details
        Return a dict with ``"attribution"``, ``"explained"`` (``sum_k Var_s T_{s,k}``, equal to the
        attribution's sum) and ``"variance"`` (the target, ``sum_k Var_s f_{s,k}(x)``), all per input.

    Returns
    -------
    torch.Tensor or dict
        ``[B, ...]`` attributions shaped like ``x`` (or the dict).

    Examples
    --------
    >>> import torch, ualib
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))
    >>> posterior = ualib.MCDropout(net.double(), num_samples=8, seed=0)
    >>> a = ualib.covariance_attribution(posterior, torch.rand(2, 4, dtype=torch.float64), explanation="gradient_x_input")
    >>> tuple(a.shape)
    (2, 4)
    """
    if not isinstance(posterior, Posterior):
        raise TypeError(f"posterior must be a ualib Posterior, got {type(posterior).__name__}")
    x = check_tensor(x, "x", ndim=(2, 3, 4), nonempty=True)
    check_choice(explanation, "explanation", COV_EXPLANATIONS)
    check_choice(output, "output", ("probs", "logits"))
    steps = check_positive_int(steps, "steps")
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    idx = list(range(posterior.num_samples)) if indices is None else [int(i) for i in indices]
    if not idx or min(idx) < 0 or max(idx) >= posterior.num_samples:
        raise ValueError(
            f"indices must be a non-empty list of posterior samples in [0, {posterior.num_samples - 1}], got {idx}"
        )
    if isinstance(baseline, torch.Tensor):
        base_full = torch.broadcast_to(baseline.to(x.device, x.dtype), x.shape)
    elif isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        base_full = torch.full_like(x, float(baseline))
    else:
        raise TypeError(f"baseline must be a number or a tensor, got {type(baseline).__name__}")
    if explanation == "gradient_x_input":
        base_full = torch.zeros_like(x)
    step = batch_size or len(x)
    with model_input_errors("x", x, "the posterior's network"):
        parts = [
            _cov_batch(posterior, x[i : i + step], base_full[i : i + step], explanation, output, steps, idx)
            for i in range(0, len(x), step)
        ]
    out = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return out if return_details else out["attribution"]


def _cov_batch(posterior, x, base, explanation, output, steps, idx):
    s = len(idx)
    x = x.detach()
    delta = x - base
    alphas = [1.0] if explanation == "gradient_x_input" else [(t + 0.5) / steps for t in range(steps)]
    with torch.no_grad():
        f = _outputs(posterior, x.unsqueeze(0).expand(s, *x.shape), idx, output)  # [S, B, K]
        variance = ((f - f.mean(0)) ** 2).sum((0, 2)) / s
    # pass 1: T_{s,k} = mean_t sum_i delta_i d f_{s,k}(x_t) / d x_i  (directional derivatives)
    t_sum = torch.zeros_like(f)
    for a in alphas:
        xs = (base + a * delta).unsqueeze(0).expand(s, *x.shape).clone().requires_grad_(True)
        with torch.enable_grad():
            z = _outputs(posterior, xs, idx, output)
            u = torch.zeros_like(z, requires_grad=True)
            (g,) = torch.autograd.grad((z * u).sum(), xs, create_graph=True)
            (jvp,) = torch.autograd.grad((g * delta.unsqueeze(0)).sum(), u)
        t_sum += jvp.detach()
    t = t_sum / len(alphas)
    c = t - t.mean(0, keepdim=True)
    # pass 2: A = delta * (1/S) sum_s grad sum_k c_{s,k} f_{s,k}, averaged over the path
    grad = torch.zeros_like(x)
    for a in alphas:
        xs = (base + a * delta).unsqueeze(0).expand(s, *x.shape).clone().requires_grad_(True)
        with torch.enable_grad():
            z = _outputs(posterior, xs, idx, output)
            (g,) = torch.autograd.grad((z * c).sum(), xs)
        grad += g.sum(0).detach()
    attribution = delta * grad / (s * len(alphas))
    explained = (c**2).sum((0, 2)) / s
    return {"attribution": attribution, "explained": explained, "variance": variance}


def cov_gi(posterior: Posterior, x: torch.Tensor, *, kind: str = "variance", **kwargs) -> torch.Tensor:
    """CovGI (Bley et al. 2024): :func:`covariance_attribution` with per-sample gradient x input.

    ``kind`` is the explained uncertainty, only ``"variance"`` (the registry's call passes it);
    ``kwargs`` go to :func:`covariance_attribution`.

    Examples
    --------
    >>> import torch, ualib
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))
    >>> posterior = ualib.MCDropout(net.double(), num_samples=8, seed=0)
    >>> x = torch.rand(2, 4, dtype=torch.float64)
    >>> d = ualib.cov_gi(posterior, x, return_details=True)
    >>> tuple(d["attribution"].shape), torch.allclose(d["attribution"].sum(1), d["explained"])
    ((2, 4), True)
    """
    check_choice(kind, "kind", ("variance",))
    return covariance_attribution(posterior, x, explanation="gradient_x_input", **kwargs)


def cov_ig(posterior: Posterior, x: torch.Tensor, *, kind: str = "variance", **kwargs) -> torch.Tensor:
    """CovIG: :func:`covariance_attribution` with per-sample integrated gradients [INF] (our
    integrated-gradients analogue of Bley et al.'s CovGI).

    ``kind`` is the explained uncertainty, only ``"variance"``; ``kwargs`` go to
    :func:`covariance_attribution` (``baseline``, ``steps``, ...).

    Examples
    --------
    >>> import torch, ualib
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))
    >>> posterior = ualib.MCDropout(net.double(), num_samples=8, seed=0)
    >>> tuple(ualib.cov_ig(posterior, torch.rand(2, 4, dtype=torch.float64), steps=8).shape)
    (2, 4)
    """
    check_choice(kind, "kind", ("variance",))
    return covariance_attribution(posterior, x, explanation="integrated_gradients", **kwargs)
