"""Differentiable uncertainty measures for classification.

Two families live here:

* **Sample-based measures** of a stochastic predictive distribution (MC dropout, DropConnect, deep
  ensembles, Flipout/BBB; book: chapter 1, "Uncertainty basics", section "Predictive distributions from posterior samples" — notebooks/01_uncertainty_basics.ipynb). ``probs`` is always ``[S, B, K]``: ``S`` posterior
  samples, ``B`` inputs, ``K`` classes, each ``probs[s, b]`` a categorical distribution. Every measure
  returns ``[B]`` and is differentiable, so it can be the scalar target of any attribution method.
  :func:`decompose` returns the exact per-(sample, class) terms that sum to a measure (the terms
  UA-Backprop back-propagates; book: chapter 2, "UA-Backprop", section "The method in three stages" — notebooks/02_ua_backprop.ipynb).
* **Subjective-Logic measures** of a Dirichlet (evidential deep learning; book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb). ``alpha`` is
  ``[B, K]``.

Zero probabilities
------------------
Probabilities that are exactly zero (an underflowed softmax, a one-hot member) are handled with the
convention ``0 log 0 = 0`` for values *and* derivatives: a term ``p log q`` whose ``q`` is zero (which
implies ``p = 0``) contributes 0 and passes a zero gradient. The derivative of ``p log p`` is
unbounded as ``p -> 0``; the convention returns a finite value that gives the exact limit once the
gradient is chained through a softmax (``dp_k/dz`` carries a factor ``p_k``), so gradients with
respect to logits are the limits of those at tiny but non-zero probabilities.

References
----------
.. [Gal2016] Y. Gal. *Uncertainty in Deep Learning*. PhD thesis, University of Cambridge, 2016.
.. [Depeweg2018] S. Depeweg, J. M. Hernandez-Lobato, F. Doshi-Velez, S. Udluft. Decomposition of
   uncertainty in Bayesian deep learning for efficient and risk-sensitive learning. ICML 2018.
.. [Sensoy2018] M. Sensoy, L. Kaplan, M. Kandemir. Evidential deep learning to quantify
   classification uncertainty. NeurIPS 2018.
.. [Josang2016] A. Josang. *Subjective Logic: A Formalism for Reasoning Under Uncertainty*.
   Springer, 2016.
.. [Zhao2020] X. Zhao, F. Chen, S. Hu, J.-H. Cho. Uncertainty aware semi-supervised learning on graph
   data. NeurIPS 2020.
"""

from __future__ import annotations

import math
from enum import StrEnum

import torch

from ualib._checks import check_alpha, check_choice, check_probs

__all__ = [
    "UncertaintyKind",
    "UNCERTAINTY_KINDS",
    "DECOMPOSITION_KINDS",
    "ENTROPIC_KINDS",
    "EVIDENTIAL_KINDS",
    "VARIANCE_REDUCTIONS",
    "total_entropy",
    "expected_entropy",
    "mutual_information",
    "predictive_variance",
    "uncertainty",
    "decompose",
    "expected_probability",
    "belief",
    "vacuity",
    "dissonance_weights",
    "dissonance",
]


class UncertaintyKind(StrEnum):
    """The uncertainty measures an attribution method can explain; a ``str`` enum, so
    ``UncertaintyKind.EPISTEMIC == "epistemic"`` and every function that takes ``kind="epistemic"``
    also takes the member.

    Examples
    --------
    >>> from ualib import UncertaintyKind
    >>> UncertaintyKind("epistemic") is UncertaintyKind.EPISTEMIC
    True
    >>> [k.value for k in UncertaintyKind.sampled()]
    ['total', 'aleatoric', 'epistemic', 'variance']
    """

    #: entropy of the mean prediction, :func:`total_entropy` (nats)
    TOTAL = "total"
    #: expected entropy of the samples, :func:`expected_entropy`: the aleatoric part (nats)
    ALEATORIC = "aleatoric"
    #: mutual information between prediction and weights, :func:`mutual_information`: the epistemic part (nats)
    EPISTEMIC = "epistemic"
    #: predictive variance summed over classes, :func:`predictive_variance` with ``reduce="sum"``
    VARIANCE = "variance"
    #: missing evidence ``K / sum(alpha)`` of a Dirichlet output, :func:`vacuity` (in [0, 1])
    VACUITY = "vacuity"
    #: conflicting evidence of a Dirichlet output, :func:`dissonance` (in [0, 1])
    DISSONANCE = "dissonance"

    @classmethod
    def sampled(cls) -> tuple[UncertaintyKind, ...]:
        """Measures of sampled probabilities ``[S, B, K]`` (any posterior)."""
        return (cls.TOTAL, cls.ALEATORIC, cls.EPISTEMIC, cls.VARIANCE)

    @classmethod
    def entropic(cls) -> tuple[UncertaintyKind, ...]:
        """The entropy decomposition total = aleatoric + epistemic (Depeweg et al. 2018)."""
        return (cls.TOTAL, cls.ALEATORIC, cls.EPISTEMIC)

    @classmethod
    def evidential(cls) -> tuple[UncertaintyKind, ...]:
        """Measures of Dirichlet parameters ``[B, K]`` (an evidential posterior)."""
        return (cls.VACUITY, cls.DISSONANCE)


def _values(kinds: tuple[UncertaintyKind, ...]) -> tuple[str, ...]:
    return tuple(k.value for k in kinds)


#: Options of :func:`uncertainty` (values of :meth:`UncertaintyKind.sampled`).
UNCERTAINTY_KINDS: tuple[str, ...] = _values(UncertaintyKind.sampled())
#: Options of :func:`decompose` (the same measures, each with an exact per-(sample, class) split).
DECOMPOSITION_KINDS: tuple[str, ...] = UNCERTAINTY_KINDS
#: The entropy decomposition (values of :meth:`UncertaintyKind.entropic`).
ENTROPIC_KINDS: tuple[str, ...] = _values(UncertaintyKind.entropic())
#: Measures of a Dirichlet output (values of :meth:`UncertaintyKind.evidential`).
EVIDENTIAL_KINDS: tuple[str, ...] = _values(UncertaintyKind.evidential())
#: Options of ``reduce`` in :func:`predictive_variance`.
VARIANCE_REDUCTIONS: tuple[str, ...] = ("sum", "none", "max")


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _check_samples(probs: object) -> torch.Tensor:
    """Validate ``[S, B, K]`` probabilities, with a hint for the common rank mistake."""
    if isinstance(probs, torch.Tensor) and probs.ndim != 3:
        hint = (
            " For a single deterministic prediction [B, K], add a sample axis: probs.unsqueeze(0)."
            if probs.ndim == 2
            else ""
        )
        raise ValueError(
            f"probs must have 3 dimensions [S, B, K] (posterior samples, inputs, classes), "
            f"got shape {tuple(probs.shape)}.{hint}"
        )
    return check_probs(probs, "probs", ndim=3)


def _safe_log(x: torch.Tensor) -> torch.Tensor:
    """``log x`` where ``x > 0`` and 0 elsewhere, with a zero (not NaN) gradient at ``x = 0``."""
    return torch.log(torch.where(x > 0, x, torch.ones_like(x)))


# ----------------------------------------------------------------------------------------------
# sample-based measures  [S, B, K] -> [B]
# ----------------------------------------------------------------------------------------------


def total_entropy(probs: torch.Tensor) -> torch.Tensor:
    r"""Total predictive uncertainty: the entropy of the mean prediction.

    .. math:: H[\bar p] = -\sum_k \bar p_k \log \bar p_k, \qquad \bar p_k = \frac1S \sum_s p_{sk}.

    Parameters
    ----------
    probs : torch.Tensor, shape ``[S, B, K]``
        Class probabilities of ``S`` posterior samples for ``B`` inputs and ``K`` classes.

    Returns
    -------
    torch.Tensor, shape ``[B]``
        Entropy in nats, in ``[0, log K]``. Differentiable; ``0 log 0 = 0`` (module docstring).

    References
    ----------
    Gal (2016), §3.3; Depeweg et al. (2018), Eq. 4. [STD]; book: chapter 1, "Uncertainty basics", section "Total = aleatoric + epistemic" — notebooks/01_uncertainty_basics.ipynb.

    Examples
    --------
    >>> import torch, ualib
    >>> _ = torch.manual_seed(0)
    >>> probs = torch.rand(5, 2, 3).softmax(-1)  # [S, B, K]: 5 samples, 2 inputs, 3 classes
    >>> total = ualib.total_entropy(probs)
    >>> tuple(total.shape), torch.allclose(total, ualib.expected_entropy(probs) + ualib.mutual_information(probs))
    ((2,), True)
    """
    p = _check_samples(probs)
    pbar = p.mean(dim=0)
    return -(pbar * _safe_log(pbar)).sum(dim=-1)


def expected_entropy(probs: torch.Tensor) -> torch.Tensor:
    r"""Aleatoric uncertainty: the mean entropy of the individual posterior samples.

    .. math:: \mathbb E_\theta H[p_\theta] \approx -\frac1S \sum_s \sum_k p_{sk} \log p_{sk}.

    Parameters
    ----------
    probs : torch.Tensor, shape ``[S, B, K]``
        Class probabilities of ``S`` posterior samples.

    Returns
    -------
    torch.Tensor, shape ``[B]``
        Expected entropy in nats. Differentiable; ``0 log 0 = 0``.

    References
    ----------
    Depeweg et al. (2018), Eq. 5; Gal (2016). [STD]; book: chapter 1, "Uncertainty basics", section "Total = aleatoric + epistemic" — notebooks/01_uncertainty_basics.ipynb.

    Examples
    --------
    >>> import torch, ualib
    >>> _ = torch.manual_seed(0)
    >>> probs = torch.rand(5, 2, 3).softmax(-1)  # [S, B, K]: 5 samples, 2 inputs, 3 classes
    >>> ale = ualib.expected_entropy(probs)
    >>> tuple(ale.shape), bool((ale <= ualib.total_entropy(probs) + 1e-6).all())
    ((2,), True)
    """
    p = _check_samples(probs)
    return -(p * _safe_log(p)).sum(dim=-1).mean(dim=0)


def mutual_information(probs: torch.Tensor) -> torch.Tensor:
    r"""Epistemic uncertainty: the mutual information between label and parameters.

    Computed as the mean Kullback-Leibler divergence of each sample to the mean (book: chapter 1, "Uncertainty basics", section "Total = aleatoric + epistemic" — notebooks/01_uncertainty_basics.ipynb),

    .. math:: I(y;\theta\mid x) = \frac1S \sum_s \sum_k p_{sk} \log\frac{p_{sk}}{\bar p_k}
              = H[\bar p] - \frac1S\sum_s H[p_s],

    which avoids the cancellation of the difference of entropies: every per-sample term is a KL
    divergence, so the result is ``>= 0`` up to rounding (a few ulp; it is not clamped, so that it
    stays exactly the sum of :func:`decompose` ``(probs, "epistemic")``).

    Parameters
    ----------
    probs : torch.Tensor, shape ``[S, B, K]``
        Class probabilities of ``S`` posterior samples.

    Returns
    -------
    torch.Tensor, shape ``[B]``
        Mutual information in nats, in ``[0, log min(S, K)]``. Differentiable; ``0 log 0 = 0``.

    References
    ----------
    Gal (2016), §3.3 (BALD); Depeweg et al. (2018), Eq. 6. [STD]; book: chapter 1, "Uncertainty basics", section "Total = aleatoric + epistemic" — notebooks/01_uncertainty_basics.ipynb.

    Examples
    --------
    >>> import torch, ualib
    >>> _ = torch.manual_seed(0)
    >>> probs = torch.rand(5, 2, 3).softmax(-1)  # [S, B, K]: 5 samples, 2 inputs, 3 classes
    >>> epi = ualib.mutual_information(probs)
    >>> tuple(epi.shape), bool((epi >= 0).all())
    ((2,), True)
    >>> ualib.mutual_information(probs[:1].expand(5, 2, 3)).abs().max().item() < 1e-6  # identical samples
    True
    """
    p = _check_samples(probs)
    pbar = p.mean(dim=0, keepdim=True)
    return (p * (_safe_log(p) - _safe_log(pbar))).sum(dim=-1).mean(dim=0)


def predictive_variance(probs: torch.Tensor, reduce: str = "sum") -> torch.Tensor:
    r"""Variance of the class probabilities over the posterior samples.

    .. math:: \mathrm{Var}_k = \frac1S \sum_s (p_{sk} - \bar p_k)^2 \quad\text{(population variance, 1/S)}.

    Parameters
    ----------
    probs : torch.Tensor, shape ``[S, B, K]``
        Class probabilities of ``S`` posterior samples.
    reduce : {"sum", "none", "max"}
        ``"none"`` returns the per-class variances ``[B, K]``; ``"sum"`` their sum over classes
        (the trace of the predictive covariance) ``[B]``; ``"max"`` the largest per-class variance
        ``[B]``.

    Returns
    -------
    torch.Tensor, shape ``[B, K]`` for ``reduce="none"``, else ``[B]``
        Differentiable.

    References
    ----------
    Gal (2016), §3.3 (variation of the predictive probabilities); Kendall & Gal (2017).

    Examples
    --------
    >>> import torch, ualib
    >>> _ = torch.manual_seed(0)
    >>> probs = torch.rand(5, 2, 3).softmax(-1)  # [S, B, K]: 5 samples, 2 inputs, 3 classes
    >>> tuple(ualib.predictive_variance(probs).shape)  # summed over classes
    (2,)
    >>> tuple(ualib.predictive_variance(probs, reduce="none").shape)
    (2, 3)
    """
    p = _check_samples(probs)
    check_choice(reduce, "reduce", VARIANCE_REDUCTIONS)
    var = p.var(dim=0, correction=0)
    if reduce == "none":
        return var
    if reduce == "sum":
        return var.sum(dim=-1)
    return var.amax(dim=-1)


def uncertainty(probs: torch.Tensor, kind: str) -> torch.Tensor:
    """One uncertainty measure selected by name: a differentiable scalar target ``[B]``.

    Parameters
    ----------
    probs : torch.Tensor, shape ``[S, B, K]``
        Class probabilities of ``S`` posterior samples.
    kind : {"total", "aleatoric", "epistemic", "variance"}
        ``"total"``: :func:`total_entropy`; ``"aleatoric"``: :func:`expected_entropy`;
        ``"epistemic"``: :func:`mutual_information`; ``"variance"``:
        :func:`predictive_variance` with ``reduce="sum"``.

    Returns
    -------
    torch.Tensor, shape ``[B]``

    References
    ----------
    Depeweg et al. (2018); Gal (2016). [STD]; book: chapter 1, "Uncertainty basics", section "Total = aleatoric + epistemic" — notebooks/01_uncertainty_basics.ipynb.
    """
    check_choice(kind, "kind", UNCERTAINTY_KINDS)
    if kind == "total":
        return total_entropy(probs)
    if kind == "aleatoric":
        return expected_entropy(probs)
    if kind == "epistemic":
        return mutual_information(probs)
    return predictive_variance(probs, reduce="sum")


def decompose(probs: torch.Tensor, kind: str) -> torch.Tensor:
    r"""Exact per-(sample, class) decomposition of an uncertainty measure.

    Returns ``R`` with ``R.sum(dim=(0, 2)) == uncertainty(probs, kind)`` up to rounding
    (book: chapter 1, "Uncertainty basics", section "Total = aleatoric + epistemic" — notebooks/01_uncertainty_basics.ipynb):

    * ``"total"``: :math:`R^{\mathrm{tot}}_{sk} = -\tfrac1S\, p_{sk} \log \bar p_k`
    * ``"aleatoric"``: :math:`R^{\mathrm{ale}}_{sk} = -\tfrac1S\, p_{sk} \log p_{sk}`
    * ``"epistemic"``: :math:`R^{\mathrm{epi}}_{sk} = \tfrac1S\, p_{sk} \log (p_{sk}/\bar p_k)`
    * ``"variance"``: :math:`R^{\mathrm{var}}_{sk} = \tfrac1S\, (p_{sk} - \bar p_k)^2`
      (an extension: the per-term split of :func:`predictive_variance` with ``reduce="sum"``).

    Hence ``R^tot = R^ale + R^epi`` term by term. Individual ``R^epi`` terms can be negative; each
    per-sample row sum ``R^epi[s].sum(-1)`` is ``KL(p_s || p̄) / S >= 0``. Terms with a zero
    probability are 0 (``0 log 0 = 0``, module docstring).

    Parameters
    ----------
    probs : torch.Tensor, shape ``[S, B, K]``
        Class probabilities of ``S`` posterior samples.
    kind : {"total", "aleatoric", "epistemic", "variance"}

    Returns
    -------
    torch.Tensor, shape ``[S, B, K]``
        Differentiable.

    References
    ----------
    Depeweg et al. (2018); Gal (2016); Wang et al. (CVPR 2023) use this split to back-propagate
    uncertainty. [STD]; book: chapter 1, "Uncertainty basics", section "Total = aleatoric + epistemic" — notebooks/01_uncertainty_basics.ipynb.

    Examples
    --------
    >>> import torch, ualib
    >>> _ = torch.manual_seed(0)
    >>> probs = torch.rand(5, 2, 3).softmax(-1)  # [S, B, K]: 5 samples, 2 inputs, 3 classes
    >>> r = ualib.decompose(probs, "epistemic")
    >>> tuple(r.shape), torch.allclose(r.sum(dim=(0, 2)), ualib.mutual_information(probs), atol=1e-6)
    ((5, 2, 3), True)
    """
    check_choice(kind, "kind", DECOMPOSITION_KINDS)
    p = _check_samples(probs)
    s = p.shape[0]
    pbar = p.mean(dim=0, keepdim=True)
    if kind == "total":
        return -(p * _safe_log(pbar)) / s
    if kind == "aleatoric":
        return -(p * _safe_log(p)) / s
    if kind == "epistemic":
        return p * (_safe_log(p) - _safe_log(pbar)) / s
    return (p - pbar).square() / s


# ----------------------------------------------------------------------------------------------
# Dirichlet / Subjective Logic  alpha [B, K]
# ----------------------------------------------------------------------------------------------


def _check_edl_alpha(alpha: object) -> torch.Tensor:
    """Dirichlet parameters with ``alpha = evidence + 1`` (every entry ``>= 1``)."""
    a = check_alpha(alpha)
    if (a < 1).any():
        raise ValueError(
            "alpha must be >= 1 everywhere for belief masses: they assume alpha = evidence + 1 with "
            f"evidence >= 0 (evidential deep learning); the smallest entry is {a.min().item():.6g}"
        )
    return a


def expected_probability(alpha: torch.Tensor) -> torch.Tensor:
    r"""Mean of the Dirichlet: :math:`\hat p_k = \alpha_k / S`, :math:`S = \sum_k \alpha_k`.

    Parameters
    ----------
    alpha : torch.Tensor, shape ``[B, K]``
        Dirichlet concentrations, all ``> 0``.

    Returns
    -------
    torch.Tensor, shape ``[B, K]``
        Rows sum to 1. Differentiable.

    References
    ----------
    Sensoy et al. (2018), Eq. 2. [STD]; book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb.
    """
    a = check_alpha(alpha)
    return a / a.sum(dim=-1, keepdim=True)


def belief(alpha: torch.Tensor) -> torch.Tensor:
    r"""Subjective-Logic belief masses :math:`b_k = (\alpha_k - 1)/S = e_k / S`.

    Assumes ``alpha = evidence + 1`` (as in evidential deep learning and in the group's public code,
    [CODE]; book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb), so that ``sum_k b_k + vacuity = 1``.

    Parameters
    ----------
    alpha : torch.Tensor, shape ``[B, K]``
        Dirichlet concentrations, all ``>= 1`` (a ``ValueError`` otherwise: the beliefs would be
        negative).

    Returns
    -------
    torch.Tensor, shape ``[B, K]``
        Beliefs in ``[0, 1)``. Differentiable.

    References
    ----------
    Josang (2016), §3.5; Sensoy et al. (2018), Eq. 1. [STD]; book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb.
    """
    a = _check_edl_alpha(alpha)
    return (a - 1) / a.sum(dim=-1, keepdim=True)


def vacuity(alpha: torch.Tensor) -> torch.Tensor:
    r"""Vacuity (uncertainty mass, lack of evidence): :math:`u = K / S`.

    Parameters
    ----------
    alpha : torch.Tensor, shape ``[B, K]``
        Dirichlet concentrations, all ``> 0``. With ``alpha = evidence + 1`` the vacuity is in
        ``(0, 1]`` and equals ``1 - belief(alpha).sum(-1)``.

    Returns
    -------
    torch.Tensor, shape ``[B]``
        Differentiable.

    References
    ----------
    Josang (2016); Sensoy et al. (2018), Eq. 1; Zhao et al. (2020). [STD]; book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb.

    Examples
    --------
    >>> import torch, ualib
    >>> alpha = torch.tensor([[1.0, 1.0, 1.0], [10.0, 1.0, 1.0]])  # no evidence; evidence for class 0
    >>> [round(u, 3) for u in ualib.vacuity(alpha).tolist()]
    [1.0, 0.25]
    """
    a = check_alpha(alpha)
    return a.shape[-1] / a.sum(dim=-1)


def dissonance_weights(alpha: torch.Tensor, *, eps: float = 1e-7) -> torch.Tensor:
    r"""Per-class terms of the dissonance, :math:`\omega_k`, with :math:`\sum_k \omega_k = \mathrm{diss}`.

    .. math::
        \omega_k = b_k\,\frac{\sum_{j\ne k} b_j\,\mathrm{Bal}(b_j,b_k)}{\sum_{j\ne k} b_j + \epsilon}

    with the conventions of :func:`dissonance` (which sums these terms). The UAM chapter uses them
    as the weights of its dissonance activation map ([INF]; book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb).

    Parameters
    ----------
    alpha : torch.Tensor, shape ``[B, K]``
        Dirichlet concentrations, all ``>= 1``.
    eps : float, keyword-only, default ``1e-7``
        Stabiliser added to both denominators; ``>= 0``.

    Returns
    -------
    torch.Tensor, shape ``[B, K]``
        Non-negative; rows sum to ``dissonance(alpha)``.
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite non-negative float, got {eps!r}")
    b = belief(alpha)
    k = b.shape[-1]
    bj = b.unsqueeze(-2)  # [B, 1, K]: index j on the last axis
    bk = b.unsqueeze(-1)  # [B, K, 1]: index k on the middle axis
    den = bj + bk + eps
    pos = den > 0
    bal = torch.where(pos, 1 - (bj - bk).abs() / torch.where(pos, den, torch.ones_like(den)), torch.zeros_like(den))
    off_diag = ~torch.eye(k, dtype=torch.bool, device=b.device)
    bal = bal * off_diag  # zero diagonal: j != k
    num = (bj * bal).sum(dim=-1)  # [B, K]: sum_{j != k} b_j Bal(b_j, b_k)
    rest = (bj * off_diag).sum(dim=-1) + eps  # [B, K]: sum_{j != k} b_j + eps
    pos_r = rest > 0
    ratio = torch.where(pos_r, num / torch.where(pos_r, rest, torch.ones_like(rest)), torch.zeros_like(rest))
    return b * ratio


def dissonance(alpha: torch.Tensor, *, eps: float = 1e-7) -> torch.Tensor:
    r"""Dissonance (conflicting evidence) of a Dirichlet opinion.

    .. math::
        \mathrm{diss} = \sum_k b_k \,
            \frac{\sum_{j\ne k} b_j\,\mathrm{Bal}(b_j, b_k)}{\sum_{j\ne k} b_j + \epsilon},
        \qquad
        \mathrm{Bal}(b_j, b_k) = 1 - \frac{|b_j - b_k|}{b_j + b_k + \epsilon},

    with beliefs ``b = belief(alpha) = (alpha - 1)/S``. The ``+eps`` in both denominators follows
    the group's public code ([CODE]; book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb); with ``eps=0`` the textbook definition is used
    exactly, ``Bal = 0`` when ``b_j + b_k = 0`` and a ratio ``0/0`` (no belief outside class ``k``)
    counts as 0. The two differ by ``O(eps / min positive belief)``. Computed with a vectorised
    ``[B, K, K]`` Bal matrix whose diagonal (``j = k``) is zero, so memory is ``O(B K^2)``.

    Parameters
    ----------
    alpha : torch.Tensor, shape ``[B, K]``
        Dirichlet concentrations, all ``>= 1`` (``alpha = evidence + 1``).
    eps : float, keyword-only, default ``1e-7``
        Stabiliser added to both denominators; ``>= 0``.

    Returns
    -------
    torch.Tensor, shape ``[B]``
        Dissonance in ``[0, 1 - vacuity] ⊂ [0, 1]``. It is 0 when all evidence is on a single class
        (or there is none), and ``(1 - vacuity)`` times ``(K-1)b/((K-1)b + eps)`` for equal
        evidence ``b`` on every class. Differentiable (finite gradients everywhere, including ties
        ``b_j = b_k``, where the sub-gradient of ``|.|`` is 0).

    References
    ----------
    Josang (2016), §4 (dissonance of an opinion); Zhao et al. (2020), Eq. 4. [STD, CODE]; book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb.

    Examples
    --------
    >>> import torch, ualib
    >>> alpha = torch.tensor([[21.0, 1.0, 1.0], [11.0, 11.0, 1.0]])  # one class; two classes in conflict
    >>> d = ualib.dissonance(alpha)
    >>> tuple(d.shape), bool(d[1] > d[0])
    ((2,), True)
    """
    return dissonance_weights(alpha, eps=eps).sum(dim=-1)
