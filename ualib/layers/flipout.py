"""Mean-field Gaussian (Bayes-by-backprop) layers trained with the Flipout estimator.

Each weight entry has an independent Gaussian variational posterior
``q(w) = N(mu, sigma^2)`` with ``sigma = softplus(rho)`` (Blundell et al., 2015). During training the
layer samples one ``eps ~ N(0, I)`` per forward pass, shared by the whole minibatch, and decorrelates
the examples with random sign flips (Flipout, Wen et al., 2018)::

    out_n = F(x_n, mu) + r_n * F(x_n * s_n, sigma * eps)

where ``s_n`` (one sign per input feature / channel) and ``r_n`` (one sign per output feature / channel)
are independent Rademacher vectors drawn per example. Each example then sees the weight
``mu + (sigma * eps) * (r_n s_n^T)``, a valid sample of ``q`` whose perturbation is (pairwise)
uncorrelated with those of the other examples.

Defaults follow ``keras-uncertainty``'s ``FlipoutDense`` (book: chapter 5, "Explanation uncertainty", section "Four Bayesian classifiers" — notebooks/05_explanation_uncertainty.ipynb): a scale-mixture prior
``p(w) = pi N(0, sigma1^2) + (1 - pi) N(0, sigma2^2)`` with ``sigma1 = 1.5``, ``sigma2 = 0.1``,
``pi = 0.5``; ``rho`` initialised from ``N(-3, 0.1)``; a deterministic bias.

Evaluation-mode contract
------------------------
In evaluation mode (``module.training is False``) the forward pass is *exactly* the ordinary linear /
convolution with weight ``weight_mu + softplus(weight_rho) * weight_eps``, where ``weight_eps`` is a
non-persistent buffer of zeros. With the default buffer the layer therefore uses its mean weights, and a
caller draws posterior sample ``m`` by overriding the buffer, e.g.::

    torch.func.functional_call(model, {"0.weight_eps": eps_m, "2.weight_eps": eps2_m}, (x,))

which also works under ``torch.func.vmap`` over stacked noise tensors ``eps`` of shape
``[S, *weight_shape]``. :func:`weight_eps_shapes` lists the keys and shapes to use. In evaluation
mode no random number is drawn and ``last_kl`` is left untouched. (Do not ``vmap`` a training-mode
forward: it draws from the global RNG and stores ``last_kl`` on the module.)

References
----------
.. [1] C. Blundell, J. Cornebise, K. Kavukcuoglu, D. Wierstra. "Weight Uncertainty in Neural
   Networks." ICML 2015.
.. [2] Y. Wen, P. Vicol, J. Ba, D. Tran, R. Grosse. "Flipout: Efficient Pseudo-Independent Weight
   Perturbations on Mini-Batches." ICLR 2018.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from ualib._checks import check_positive_int

__all__ = [
    "FlipoutLayer",
    "FlipoutLinear",
    "FlipoutConv2d",
    "scale_mixture_log_prob",
    "kl_divergence",
    "flipout_modules",
    "weight_eps_shapes",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------------
def _check_real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return v


def _check_prior(sigma1: object, sigma2: object, pi: object) -> tuple[float, float, float]:
    s1 = _check_real(sigma1, "prior_sigma1")
    s2 = _check_real(sigma2, "prior_sigma2")
    p = _check_real(pi, "prior_pi")
    if s1 <= 0:
        raise ValueError(f"prior_sigma1 must be a positive standard deviation, got {s1!r}")
    if s2 <= 0:
        raise ValueError(f"prior_sigma2 must be a positive standard deviation, got {s2!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"prior_pi must be a mixture weight in [0, 1], got {p!r}")
    return s1, s2, p


def _check_rho_init(rho_init: object) -> tuple[float, float]:
    if isinstance(rho_init, (str, bytes)) or not isinstance(rho_init, Sequence) or len(rho_init) != 2:
        raise TypeError(f"rho_init must be a pair (mean, std) of real numbers, got {rho_init!r}")
    mean = _check_real(rho_init[0], "rho_init[0] (mean)")
    std = _check_real(rho_init[1], "rho_init[1] (std)")
    if std < 0:
        raise ValueError(f"rho_init[1] (std) must be >= 0, got {std!r}")
    return mean, std


def _rademacher(shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """Independent +-1 signs with probability 1/2 each, from the global torch RNG."""
    return torch.empty(tuple(shape), dtype=like.dtype, device=like.device).bernoulli_(0.5).mul_(2).sub_(1)


# ---------------------------------------------------------------------------------------------------
# prior
# ---------------------------------------------------------------------------------------------------
def scale_mixture_log_prob(w: torch.Tensor, sigma1: float, sigma2: float, pi: float) -> torch.Tensor:
    """Elementwise log-density of the scale-mixture prior of Blundell et al. (2015).

    ``log p(w) = log( pi N(w; 0, sigma1^2) + (1 - pi) N(w; 0, sigma2^2) )``, computed stably as a
    two-term log-sum-exp (``torch.logaddexp``) of the log-weighted component log-densities, so it stays
    finite where both densities underflow. ``pi = 1`` (or ``0``) gives a single Gaussian prior.

    Parameters
    ----------
    w
        Weights, any shape, floating point.
    sigma1, sigma2
        Standard deviations of the two zero-mean components, ``> 0``.
    pi
        Weight of the first component, in ``[0, 1]``.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``w``; differentiable in ``w``.

    References
    ----------
    .. [1] C. Blundell et al. "Weight Uncertainty in Neural Networks." ICML 2015, eq. (7).
    """
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise TypeError(f"w must be a floating-point torch.Tensor, got {getattr(w, 'dtype', type(w).__name__)}")
    s1, s2, p = _check_prior(sigma1, sigma2, pi)
    lp1 = -_LOG_SQRT_2PI - math.log(s1) - 0.5 * (w / s1) ** 2
    if p == 1.0:
        return lp1
    lp2 = -_LOG_SQRT_2PI - math.log(s2) - 0.5 * (w / s2) ** 2
    if p == 0.0:
        return lp2
    return torch.logaddexp(lp1 + math.log(p), lp2 + math.log1p(-p))


# ---------------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------------
class FlipoutLayer(nn.Module):
    """Base class of the Flipout layers: parameters, prior, sampling and the KL estimate.

    Subclasses define ``_op(x, weight, bias)`` (the deterministic operation), ``_check_input`` and
    the shapes of the sign vectors. Use ``isinstance(m, FlipoutLayer)`` to find Flipout layers.

    Attributes
    ----------
    weight_mu : nn.Parameter
        Posterior means, shape ``weight_shape``.
    weight_rho : nn.Parameter
        Posterior scale parameters, ``sigma = softplus(weight_rho)``, shape ``weight_shape``.
    bias : nn.Parameter or None
        Deterministic bias, shape ``[out]``.
    weight_eps : torch.Tensor
        Non-persistent buffer of zeros, shape ``weight_shape``; used in evaluation mode only (see the
        module docstring).
    last_kl : torch.Tensor or None
        Scalar single-sample estimate of ``KL[q(W) || p(W)]`` from the last training-mode forward,
        ``None`` before the first one.
    """

    weight_mu: nn.Parameter
    weight_rho: nn.Parameter
    bias: nn.Parameter | None
    weight_eps: torch.Tensor
    last_kl: torch.Tensor | None

    def _init_bayes(
        self,
        weight_shape: tuple[int, ...],
        bias: bool,
        prior_sigma1: float,
        prior_sigma2: float,
        prior_pi: float,
        rho_init: tuple[float, float],
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        self.prior_sigma1, self.prior_sigma2, self.prior_pi = _check_prior(prior_sigma1, prior_sigma2, prior_pi)
        self.rho_init = _check_rho_init(rho_init)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {type(bias).__name__}")
        fk = {"device": device, "dtype": dtype}
        self.weight_mu = nn.Parameter(torch.empty(weight_shape, **fk))
        self.weight_rho = nn.Parameter(torch.empty(weight_shape, **fk))
        if bias:
            self.bias = nn.Parameter(torch.empty(weight_shape[0], **fk))
        else:
            self.register_parameter("bias", None)
        self.register_buffer("weight_eps", torch.zeros(weight_shape, **fk), persistent=False)
        self.last_kl = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise: ``weight_mu`` and ``bias`` as PyTorch's default for the deterministic layer
        (Kaiming-uniform with ``a = sqrt(5)``, bias ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``),
        ``weight_rho ~ N(rho_init[0], rho_init[1]^2)``; forget ``last_kl``."""
        nn.init.kaiming_uniform_(self.weight_mu, a=math.sqrt(5))
        with torch.no_grad():
            self.weight_rho.normal_(self.rho_init[0], self.rho_init[1])
        if self.bias is not None:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(self.weight_mu)
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(self.bias, -bound, bound)
        self.last_kl = None

    @property
    def weight_sigma(self) -> torch.Tensor:
        """Posterior standard deviations ``softplus(weight_rho)``, shape ``weight_shape``."""
        return F.softplus(self.weight_rho)

    def log_prior(self, w: torch.Tensor) -> torch.Tensor:
        """Elementwise scale-mixture log-prior of this layer, see :func:`scale_mixture_log_prob`."""
        return scale_mixture_log_prob(w, self.prior_sigma1, self.prior_sigma2, self.prior_pi)

    # -- subclass hooks ----------------------------------------------------------------------------
    def _op(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def _check_input(self, x: object) -> torch.Tensor:
        raise NotImplementedError

    def _input_sign_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        raise NotImplementedError

    def _output_sign_shape(self, out: torch.Tensor) -> tuple[int, ...]:
        raise NotImplementedError

    # -- forward -----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check_input(x)
        sigma = F.softplus(self.weight_rho)
        if not self.training:
            # The contract: exactly the deterministic op with mu + sigma * eps (eps = 0 by default).
            return self._op(x, self.weight_mu + sigma * self.weight_eps, self.bias)
        eps = torch.randn_like(self.weight_mu)
        delta = sigma * eps
        mean_out = self._op(x, self.weight_mu, self.bias)
        s = _rademacher(self._input_sign_shape(x), like=x)
        r = _rademacher(self._output_sign_shape(mean_out), like=mean_out)
        out = mean_out + self._op(x * s, delta, None) * r
        # Single-sample MC estimate of KL[q || p] at W = mu + sigma * eps. log q(W) is written with eps
        # directly ((W - mu) / sigma == eps): same value and same total derivative.
        w = self.weight_mu + delta
        log_q = -_LOG_SQRT_2PI - torch.log(sigma) - 0.5 * eps**2
        self.last_kl = (log_q - self.log_prior(w)).sum()
        return out

    def _prior_repr(self) -> str:
        return (
            f"prior_sigma1={self.prior_sigma1}, prior_sigma2={self.prior_sigma2}, "
            f"prior_pi={self.prior_pi}, rho_init={self.rho_init}"
        )


class FlipoutLinear(FlipoutLayer):
    """Fully connected layer with a mean-field Gaussian weight posterior, trained with Flipout.

    Parameters
    ----------
    in_features, out_features
        Sizes of the input and output features.
    bias
        Add a deterministic (non-Bayesian) learnable bias, as ``keras-uncertainty`` does by default.
    prior_sigma1, prior_sigma2, prior_pi
        Scale-mixture prior ``pi N(0, sigma1^2) + (1 - pi) N(0, sigma2^2)``; ``sigma1, sigma2 > 0``,
        ``pi`` in ``[0, 1]`` (``pi = 1``: single Gaussian ``N(0, sigma1^2)``).
    rho_init
        ``(mean, std)`` of the normal initialisation of ``weight_rho`` (``sigma = softplus(rho)``).
    device, dtype
        Factory arguments of the parameters, as for ``nn.Linear``.

    Shapes
    ------
    input ``[*, in_features]``; output ``[*, out_features]``; ``weight_mu``, ``weight_rho``,
    ``weight_eps``: ``[out_features, in_features]``. In training mode each row of the input (each
    ``[*]`` index) gets its own sign vectors.

    Notes
    -----
    Training mode: fresh noise from the global torch RNG each call, ``last_kl`` set to the single-sample
    estimate ``sum_ij log q(W_ij) - log p(W_ij)``; add ``kl_weight * kl_divergence(model)`` (typically
    ``kl_weight = 1 / N_train``) to the summed NLL of a minibatch to get the negative ELBO.
    Evaluation mode: see the module docstring (the ``weight_eps`` contract).

    References
    ----------
    .. [1] C. Blundell et al. "Weight Uncertainty in Neural Networks." ICML 2015.
    .. [2] Y. Wen et al. "Flipout: Efficient Pseudo-Independent Weight Perturbations on
       Mini-Batches." ICLR 2018.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        prior_sigma1: float = 1.5,
        prior_sigma2: float = 0.1,
        prior_pi: float = 0.5,
        rho_init: tuple[float, float] = (-3.0, 0.1),
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self._init_bayes(
            (self.out_features, self.in_features), bias, prior_sigma1, prior_sigma2, prior_pi, rho_init, device, dtype
        )

    def _op(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x, weight, bias)

    def _check_input(self, x: object) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"input must have shape [*, {self.in_features}] (in_features on the last axis), got {tuple(x.shape)}"
            )
        return x

    def _input_sign_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return tuple(x.shape)

    def _output_sign_shape(self, out: torch.Tensor) -> tuple[int, ...]:
        return tuple(out.shape)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, {self._prior_repr()}"
        )


class FlipoutConv2d(FlipoutLayer):
    """2-D convolution with a mean-field Gaussian kernel posterior, trained with Flipout.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and the output.
    kernel_size
        ``int`` or ``(kh, kw)``.
    stride
        ``int`` or ``(sh, sw)``.
    padding
        ``int``, ``(ph, pw)``, ``"valid"`` or ``"same"`` (the latter only with stride 1), as
        ``F.conv2d``.
    bias
        Add a deterministic learnable bias.
    prior_sigma1, prior_sigma2, prior_pi, rho_init, device, dtype
        As for :class:`FlipoutLinear`.

    Shapes
    ------
    input ``[B, in_channels, H, W]`` (or unbatched ``[in_channels, H, W]``); output
    ``[B, out_channels, H', W']``; ``weight_mu``, ``weight_rho``, ``weight_eps``:
    ``[out_channels, in_channels, kh, kw]``. In training mode the signs are drawn per example and per
    channel and shared over spatial positions (Wen et al., 2018, §3.2).

    Notes
    -----
    See :class:`FlipoutLinear` and the module docstring for the training / evaluation semantics.

    References
    ----------
    .. [1] C. Blundell et al. "Weight Uncertainty in Neural Networks." ICML 2015.
    .. [2] Y. Wen et al. "Flipout: Efficient Pseudo-Independent Weight Perturbations on
       Mini-Batches." ICLR 2018.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        bias: bool = True,
        *,
        prior_sigma1: float = 1.5,
        prior_sigma2: float = 0.1,
        prior_pi: float = 0.5,
        rho_init: tuple[float, float] = (-3.0, 0.1),
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.kernel_size = self._pair_of(kernel_size, "kernel_size", minimum=1)
        self.stride = self._pair_of(stride, "stride", minimum=1)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"padding='same' requires stride 1, got stride={self.stride}")
            self.padding: tuple[int, int] | str = padding
        else:
            self.padding = self._pair_of(padding, "padding", minimum=0)
        self._init_bayes(
            (self.out_channels, self.in_channels, *self.kernel_size),
            bias,
            prior_sigma1,
            prior_sigma2,
            prior_pi,
            rho_init,
            device,
            dtype,
        )

    @staticmethod
    def _pair_of(value: object, name: str, *, minimum: int) -> tuple[int, int]:
        pair = _pair(value)
        if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in pair):
            raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
        return (pair[0], pair[1])

    def _op(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.conv2d(x, weight, bias, self.stride, self.padding)

    def _check_input(self, x: object) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(
                f"input must have shape [B, {self.in_channels}, H, W] or [{self.in_channels}, H, W], "
                f"got {tuple(x.shape)}"
            )
        return x

    def _input_sign_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (*x.shape[:-2], 1, 1)

    def _output_sign_shape(self, out: torch.Tensor) -> tuple[int, ...]:
        return (*out.shape[:-2], 1, 1)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={self.bias is not None}, {self._prior_repr()}"
        )


# ---------------------------------------------------------------------------------------------------
# model-level helpers
# ---------------------------------------------------------------------------------------------------
def flipout_modules(model: nn.Module) -> dict[str, FlipoutLayer]:
    """All Flipout layers of ``model``, keyed by their qualified name (``""`` for ``model`` itself).

    Parameters
    ----------
    model
        Any ``nn.Module``.

    Returns
    -------
    dict[str, FlipoutLayer]
        In ``model.named_modules()`` order; empty if there is none.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return {name: m for name, m in model.named_modules() if isinstance(m, FlipoutLayer)}


def weight_eps_shapes(model: nn.Module) -> dict[str, torch.Size]:
    """The ``functional_call`` keys of every ``weight_eps`` buffer of ``model`` and their shapes.

    Returns
    -------
    dict[str, torch.Size]
        ``{"<module name>.weight_eps": weight_shape}`` (just ``"weight_eps"`` when ``model`` is itself a
        Flipout layer). Passing ``{key: eps}`` with ``eps`` of that shape to
        ``torch.func.functional_call`` in evaluation mode runs the model with weights
        ``mu + sigma * eps``; stack ``S`` of them along a new first axis and ``vmap`` to draw ``S``
        posterior samples at once.
    """
    return {
        (f"{name}.weight_eps" if name else "weight_eps"): m.weight_eps.shape
        for name, m in flipout_modules(model).items()
    }


def kl_divergence(model: nn.Module) -> torch.Tensor:
    """Sum of ``last_kl`` over all Flipout layers of ``model``: the KL term of the negative ELBO.

    Each layer's ``last_kl`` is the single-sample Monte-Carlo estimate ``log q(W) - log p(W)`` summed
    over its weight entries, for the weights ``W`` sampled in its last training-mode forward. Scale it
    by ``kl_weight`` (typically ``1 / N_train``) before adding it to the summed minibatch NLL.

    Parameters
    ----------
    model
        An ``nn.Module`` containing at least one :class:`FlipoutLayer`.

    Returns
    -------
    torch.Tensor
        Differentiable scalar (0-dim).

    Raises
    ------
    ValueError
        If ``model`` has no Flipout layer.
    RuntimeError
        If a Flipout layer has not run a training-mode forward since construction /
        ``reset_parameters``.

    References
    ----------
    .. [1] C. Blundell et al. "Weight Uncertainty in Neural Networks." ICML 2015, eq. (2).
    """
    layers = flipout_modules(model)
    if not layers:
        raise ValueError(f"model ({type(model).__name__}) contains no Flipout layer, so it has no KL term")
    total: torch.Tensor | None = None
    for name, m in layers.items():
        if m.last_kl is None:
            raise RuntimeError(
                f"Flipout layer {name or '<model>'!r} has not run a training-mode forward yet; "
                "call model.train() and run a forward pass before kl_divergence(model)"
            )
        total = m.last_kl if total is None else total + m.last_kl
    assert total is not None
    return total
