"""FullGrad: the full-gradient decomposition of a ReLU network's output into input and bias terms.

For a network built from linear maps with biases (``Conv``, ``Linear``, ``BatchNorm`` in eval mode)
and piecewise-linear, positively homogeneous non-linearities (ReLU, leaky ReLU, max / average
pooling), every output is *locally linear in the input and in all the biases together*. Euler's
identity then gives the exact decomposition (completeness, Srinivas & Fleuret 2019)

.. math::

    f(x) = \\nabla_x f(x)^\\top x + \\sum_{l} \\sum_{c \\in l} \\big(\\nabla_{b_l} f(x) \\odot b_l\\big)_c ,

where the second sum runs over every layer with a bias. Two things are built on it:

* :meth:`FullGrad.signed_map`: a **raw, signed, per-pixel** map ``[B, 1, H, W]`` whose sum is exactly
  the explained output (book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb). The input term is summed over channels; each convolutional
  bias term is summed over channels and spread to the pixels by a *mass-preserving* bilinear
  operator; the bias terms without a spatial layout (fully connected and ``BatchNorm1d`` layers) are
  spread evenly over all pixels. This mapping of bias terms to pixels is our reconstruction [INF]:
  the original paper aggregates only the display saliency below.
* :meth:`FullGrad.saliency`: the **display saliency** of the official implementation
  (idiap/fullgrad-saliency [CODE]): ``|.|``, per-sample min-max rescale over ``C x h x w``, bilinear
  upsampling (``align_corners=True``) and a channel sum, for the input term and every 4-D
  (convolutional) bias term, added up. Non-negative, not normalised to ``[0, 1]``.

FullGrad explains a **linear function of the model's outputs** (a class logit, or a weighted sum of
logits), because completeness holds only for those; unlike the other methods of
:mod:`ualib.attribution` it therefore takes the model and a class index or a weight vector, not an
arbitrary scalar target. Models it cannot decompose exactly are rejected with a ``ValueError``
(``strict=False`` opts out, with a warning whenever completeness then fails).

References
----------
.. [1] S. Srinivas, F. Fleuret. "Full-Gradient Representation for Neural Network Visualization."
   NeurIPS 2019. Official code: https://github.com/idiap/fullgrad-saliency
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ualib._checks import check_model_dtype, check_positive_int, model_input_errors
from ualib.attribution._common import check_batch_size, check_input, chunks, forward_hooks
from ualib.posteriors._base import preserve_mode

__all__ = [
    "FullGrad",
    "FullGradDecomposition",
    "fullgrad",
    "fullgrad_saliency",
    "BIASED_LAYERS",
    "PIECEWISE_LINEAR_LAYERS",
]

#: layers whose (effective) bias enters the decomposition
BIASED_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
)
#: parameter-free layers that keep a network piecewise linear and positively homogeneous
PIECEWISE_LINEAR_LAYERS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.ZeroPad2d,
)
_CONTAINERS: tuple[type[nn.Module], ...] = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)

#: completeness tolerance of the official implementation (``math.isclose(..., rel_tol=1e-4)``)
REL_TOL = 1e-4


# --------------------------------------------------------------------------------------------------
# model validation
# --------------------------------------------------------------------------------------------------


@contextmanager
def _full_precision(enabled: bool) -> Iterator[None]:
    """Switch off TF32 in CUDA matmuls and convolutions inside the block (restored on exit).

    TF32 rounds to about 1e-3 relative precision, which would break completeness on Ampere / Hopper GPUs.
    """
    if not enabled:
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _unsupported(model: nn.Module) -> list[str]:
    """Names and types of the modules that break the decomposition, each with the reason."""
    problems = []
    for name, m in model.named_modules():
        label = f"{name or '<model>'} ({type(m).__name__})"
        if isinstance(m, BIASED_LAYERS):
            if isinstance(m, _BATCHNORMS) and (m.running_mean is None or m.running_var is None):
                problems.append(f"{label}: BatchNorm without running statistics normalises with batch statistics")
            elif isinstance(m, _CONVS) and getattr(m, "padding_mode", "zeros") != "zeros":
                problems.append(f"{label}: padding_mode={m.padding_mode!r} is not linear in the bias")
            continue
        if isinstance(m, PIECEWISE_LINEAR_LAYERS) or isinstance(m, _CONTAINERS):
            continue
        own = [p for p, _ in m.named_parameters(recurse=False)] + [b for b, _ in m.named_buffers(recurse=False)]
        children = list(m.children())
        if not children:
            problems.append(f"{label}: not a piecewise-linear layer FullGrad can decompose")
        elif own:
            problems.append(f"{label}: holds its own parameters/buffers {own} that FullGrad does not know how to use")
    return problems


def _effective_bias(m: nn.Module) -> torch.Tensor | None:
    """The bias a layer adds to its output, detached: ``beta - mu gamma / sqrt(var + eps)`` for BN."""
    if isinstance(m, _BATCHNORMS):
        scale = torch.rsqrt(m.running_var + m.eps)
        gamma = m.weight if m.weight is not None else torch.ones_like(m.running_mean)
        beta = m.bias if m.bias is not None else torch.zeros_like(m.running_mean)
        return (beta - m.running_mean * gamma * scale).detach()
    return None if m.bias is None else m.bias.detach()


def _bias_view(m: nn.Module, bias: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``bias`` reshaped to broadcast against the layer output ``out``."""
    if isinstance(m, nn.Linear):
        return bias.view(*([1] * (out.ndim - 1)), -1)
    shape = [1] * out.ndim
    shape[1] = -1
    return bias.view(shape)


# --------------------------------------------------------------------------------------------------
# the decomposition
# --------------------------------------------------------------------------------------------------


@dataclass
class FullGradDecomposition:
    """The full-gradient decomposition of one explained output per input.

    Attributes
    ----------
    output
        ``[B]``: the explained output ``f(x)`` (a class logit or a weighted sum of logits).
    input_term
        ``[B, C, H, W]`` (shaped like ``x``): ``grad_x f * x``.
    bias_terms
        One tensor per call of a biased layer, shaped like that layer's output (``[B, C_l, h, w]``
        for convolutions / ``BatchNorm2d``, ``[B, F_l]`` for fully connected layers):
        ``grad_{out_l} f * b_l``, with ``b_l`` the effective bias.
    layer_names
        The qualified module name of each bias term.
    """

    output: torch.Tensor
    input_term: torch.Tensor
    bias_terms: list[torch.Tensor]
    layer_names: list[str]

    def total(self) -> torch.Tensor:
        """``[B]``: the sum of all terms (equals :attr:`output` up to rounding)."""
        tot = self.input_term.flatten(1).sum(1)
        for t in self.bias_terms:
            tot = tot + t.flatten(1).sum(1)
        return tot

    def scale(self) -> torch.Tensor:
        """``[B]``: the total magnitude of the terms, ``sum |term|`` (the scale of rounding errors)."""
        s = self.input_term.abs().flatten(1).sum(1)
        for t in self.bias_terms:
            s = s + t.abs().flatten(1).sum(1)
        return s

    def completeness_error(self) -> torch.Tensor:
        """``[B]``: ``|f(x) - sum of terms| / max(|f(x)|, sum |term|)`` (0 when everything is 0)."""
        den = torch.maximum(self.output.abs(), self.scale())
        err = (self.output - self.total()).abs()
        return torch.where(den > 0, err / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(err))


def _check_weights(class_index: object, k: int, b: int, like: torch.Tensor) -> torch.Tensor:
    """Turn a class index / per-input classes / logit weights into weights ``[B, K]``."""
    if isinstance(class_index, bool):
        raise TypeError("class_index must be an int, an integer tensor [B] or float weights [K] / [B, K], got a bool")
    if isinstance(class_index, int):
        if not 0 <= class_index < k:
            raise ValueError(f"class_index must lie in [0, {k - 1}] for K={k} outputs, got {class_index}")
        return F.one_hot(torch.full((b,), class_index, device=like.device), k).to(like.dtype)
    if isinstance(class_index, torch.Tensor):
        t = class_index.to(like.device)
        if not t.is_floating_point():
            if t.shape != (b,):
                raise ValueError(
                    f"an integer class_index must hold one class per input, shape [{b}], got {tuple(t.shape)}"
                )
            if t.numel() and (t.min() < 0 or t.max() >= k):
                raise ValueError(f"class indices must lie in [0, {k - 1}] for K={k} outputs")
            return F.one_hot(t.long(), k).to(like.dtype)
        if t.shape == (k,):
            t = t.expand(b, k)
        if t.shape != (b, k):
            raise ValueError(
                f"float class_index weights must have shape [K]=[{k}] or [B, K]=[{b}, {k}], got {tuple(t.shape)}"
            )
        if not torch.isfinite(t).all():
            raise ValueError("class_index weights contain NaN or infinite values")
        return t.to(like.dtype)
    raise TypeError(
        "FullGrad explains a linear function of the model's outputs: pass a class index (int), classes [B] "
        f"(integer tensor) or logit weights [K] / [B, K] (float tensor), got {type(class_index).__name__}. "
        "Completeness does not hold for a non-linear target such as a probability or an uncertainty."
    )


def _spread_matrix(n_out: int, n_in: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[n_out, n_in]`` 1-D linear interpolation weights (``align_corners=True``), columns summing to 1.

    Column ``j`` tells how the mass of source cell ``j`` is shared among the ``n_out`` output pixels,
    in proportion to its linear-interpolation kernel; a column with no weight (only possible when
    ``n_in > n_out``) sends its mass to the nearest output pixel.
    """
    if n_in == 1:
        return torch.full((n_out, 1), 1.0 / n_out, dtype=dtype, device=device)
    if n_out == 1:
        return torch.ones((1, n_in), dtype=dtype, device=device)
    pos = torch.arange(n_out, dtype=torch.float64) * (n_in - 1) / (n_out - 1)  # source coordinate of each output
    w = (1 - (pos[:, None] - torch.arange(n_in, dtype=torch.float64)[None, :]).abs()).clamp(min=0)
    empty = w.sum(0) == 0
    if empty.any():
        nearest = torch.round(torch.arange(n_in, dtype=torch.float64) * (n_out - 1) / (n_in - 1)).long()
        cols = empty.nonzero().flatten()
        w[nearest[cols], cols] = 1.0
    return (w / w.sum(0, keepdim=True)).to(dtype=dtype, device=device)


def _to_pixels(term: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Channel-summed ``[B, C, h, w]`` term spread mass-preservingly to ``[B, 1, H, W]``."""
    m = term.sum(1)  # [B, h, w]
    h, w = m.shape[-2:]
    uh = _spread_matrix(size[0], h, dtype=m.dtype, device=m.device)
    uw = _spread_matrix(size[1], w, dtype=m.dtype, device=m.device)
    return (uh @ m @ uw.T).unsqueeze(1)


def _post_process(t: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The official display normalisation: ``|t|``, minus the per-sample min, over (max + eps)."""
    t = t.abs()
    t = t - t.flatten(1).min(1).values.view(-1, *([1] * (t.ndim - 1)))
    return t / (t.flatten(1).max(1).values.view(-1, *([1] * (t.ndim - 1))) + eps)


class FullGrad:
    """Full-gradient decomposition, signed per-pixel maps and display saliency of a ReLU network.

    Parameters
    ----------
    model
        An ``nn.Module`` ``x [B, C, H, W] -> outputs [B, K]``, evaluated **in eval mode** (BatchNorm
        with its running statistics, dropout off); its mode is restored after every call. Allowed:
        :data:`BIASED_LAYERS` (``Conv*``, ``Linear``, ``BatchNorm*`` with running statistics),
        :data:`PIECEWISE_LINEAR_LAYERS` (ReLU, leaky ReLU, pooling, flatten, dropout, ...), containers,
        and custom modules without own parameters whose children are allowed (residual additions
        are fine: they are linear). A softplus, tanh, GELU, sigmoid, ELU, ``ReLU6`` / ``Hardtanh``
        (which clips, an implicit bias), a Flipout layer or any other leaf module raises a
        ``ValueError`` naming the module.
    strict
        ``True`` (default): reject unsupported layers and raise a ``ValueError`` whenever a
        decomposition is not complete within ``rel_tol``. ``False``: the explicit opt-out for a
        model FullGrad cannot decompose exactly; unsupported layers are accepted and an incomplete
        decomposition only warns (``RuntimeWarning``). The maps are then *not* complete.
    example_input
        Optional input ``[1, C, H, W]`` (or any batch) on which to run the completeness check now; by
        default it runs on the first call, on a random normal input of that call's shape (the
        official check), drawn from a private generator.
    rel_tol
        Completeness tolerance: ``|f - sum of terms| <= rel_tol * max(|f|, sum |term|)`` per input.
        ``1e-4`` as in the official implementation. Measuring the error against the total magnitude
        of the terms keeps logits near zero from failing on float32 rounding.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Module`` (for a ualib posterior, pass ``posterior.module``).
    ValueError
        If ``strict`` and the model contains a layer FullGrad cannot decompose, or fails the
        completeness check.

    Notes
    -----
    The completeness check runs on every call too, at no extra cost (the explained output is computed
    anyway); :meth:`decompose` returns the per-input errors. On a GPU, TF32 arithmetic is switched off
    during each call (and restored afterwards): its ~1e-3 rounding would break completeness.

    References
    ----------
    S. Srinivas, F. Fleuret. Full-gradient representation for neural network visualization.
    NeurIPS 2019. Official code: idiap/fullgrad-saliency.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    >>> x = torch.rand(2, 1, 8, 8)
    >>> maps = ualib.FullGrad(net).signed_map(x, 1)  # explains the logit of class 1
    >>> tuple(maps.shape)
    (2, 1, 8, 8)
    >>> torch.allclose(maps.sum((1, 2, 3)), net(x)[:, 1], atol=1e-5)  # complete
    True
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        strict: bool = True,
        example_input: torch.Tensor | None = None,
        rel_tol: float = REL_TOL,
    ) -> None:
        if not isinstance(model, nn.Module):
            hint = " (for a ualib posterior, pass posterior.module)" if hasattr(model, "module") else ""
            raise TypeError(f"model must be an nn.Module{hint}, got {type(model).__name__}")
        if not isinstance(strict, bool):
            raise TypeError(f"strict must be a bool, got {type(strict).__name__}")
        if isinstance(rel_tol, bool) or not isinstance(rel_tol, (int, float)) or not 0 < rel_tol < 1:
            raise ValueError(f"rel_tol must be a number in (0, 1), got {rel_tol!r}")
        self.model = model
        self.strict = strict
        self.rel_tol = float(rel_tol)
        problems = _unsupported(model)
        if problems and strict:
            raise ValueError(
                "FullGrad cannot decompose this model exactly: completeness needs a piecewise-linear network "
                "(ReLU / leaky ReLU, max or average pooling) whose biases live in Conv, Linear or BatchNorm "
                "layers. Unsupported: " + "; ".join(problems) + ". Pass strict=False to compute the "
                "(incomplete) maps anyway."
            )
        self.unsupported = problems
        self.checked = False
        self.check_error: float | None = None
        # layers without a bias (a Conv2d(bias=False) before its BatchNorm) add no term: not hooked, so
        # their outputs are neither cloned nor differentiated
        self._biased = [
            (n, m) for n, m in model.named_modules() if isinstance(m, BIASED_LAYERS) and _effective_bias(m) is not None
        ]
        if example_input is not None:
            self.check_completeness(example_input)

    # -- completeness -----------------------------------------------------------------------------
    def check_completeness(self, x: torch.Tensor | None = None, *, shape: tuple[int, ...] | None = None) -> float:
        """Run the completeness check of the official code and return the largest relative error.

        The explained output is each input's largest logit. ``x`` defaults to a standard normal input
        ``[2, *shape]`` from a private generator (the global RNG is not touched).

        Raises
        ------
        ValueError
            If ``strict`` and the error exceeds ``rel_tol`` (a ``RuntimeWarning`` otherwise).
        """
        if x is None:
            if shape is None:
                raise ValueError("check_completeness needs an input x or its shape (C, H, W)")
            p = next(self.model.parameters(), None)
            dtype = p.dtype if p is not None else torch.get_default_dtype()
            device = p.device if p is not None else torch.device("cpu")
            g = torch.Generator().manual_seed(0)
            x = torch.randn((2, *shape), generator=g, dtype=dtype).to(device)
        x = self._check_x(x, ndim=(2, 3, 4, 5)).detach()
        with preserve_mode(self.model, False), torch.no_grad(), model_input_errors("x", x):
            cls = self.model(x).argmax(-1)
        dec = self._decompose(x, cls, check=False)
        err = float(dec.completeness_error().max())
        self.checked = True
        self.check_error = err
        self._verdict(err, "on the completeness check")
        return err

    def _verdict(self, err: float, where: str) -> None:
        if err <= self.rel_tol:
            return
        msg = (
            f"FullGrad completeness failed {where}: relative error {err:.3g} > rel_tol {self.rel_tol:g}, so the "
            "input and bias terms do not add up to the explained output. The model probably has a non-linearity "
            "with an implicit bias or a bias FullGrad does not see (a functional op such as torch.tanh or "
            "F.softplus in forward, an nn.Parameter added by hand)."
        )
        if self.strict:
            raise ValueError(msg + " Pass strict=False to accept incomplete maps.")
        warnings.warn(msg, RuntimeWarning, stacklevel=3)

    # -- the decomposition ------------------------------------------------------------------------
    def _decompose(self, x: torch.Tensor, class_index: object, *, check: bool = True) -> FullGradDecomposition:
        records: list[tuple[str, nn.Module, torch.Tensor]] = []
        names = {id(m): n for n, m in self._biased}

        def hook(module: nn.Module, inputs: tuple, output: object) -> torch.Tensor:
            if not isinstance(output, torch.Tensor):
                raise ValueError(f"layer {names[id(module)]!r} returned {type(output).__name__}, expected a tensor")
            records.append((names[id(module)], module, output))
            return output.clone()  # later in-place ops (ReLU(inplace=True)) must not alter the recorded output

        xs = x.detach().clone().requires_grad_(True)
        hooked = forward_hooks([m for _, m in self._biased], hook)
        with _full_precision(x.is_cuda), preserve_mode(self.model, False), hooked, torch.enable_grad():
            with model_input_errors("x", x):
                out = self.model(xs)
            if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"model must map {x.shape[0]} inputs to outputs [B, K] = [{x.shape[0]}, K], got {got}")
            w = _check_weights(class_index, out.shape[1], out.shape[0], out)
            f = (out * w).sum(1)
            grads = torch.autograd.grad(f.sum(), [xs] + [r[2] for r in records], allow_unused=True)
        gx = grads[0] if grads[0] is not None else torch.zeros_like(xs)
        terms, layer_names = [], []
        for (name, module, o), g in zip(records, grads[1:]):
            bias = _effective_bias(module)
            if bias is None:
                continue
            g = torch.zeros_like(o) if g is None else g
            terms.append((g * _bias_view(module, bias, o)).detach())
            layer_names.append(name)
        dec = FullGradDecomposition(f.detach(), (gx * xs).detach(), terms, layer_names)
        if check:
            self._verdict(float(dec.completeness_error().max()), "on this input")
        return dec

    def _check_x(self, x: object, *, ndim: tuple[int, ...] = (2, 4)) -> torch.Tensor:
        """A finite, non-empty input batch in the model's dtype."""
        return check_model_dtype(check_input(x, ndim=ndim), "x", self.model)

    def _ensure_checked(self, x: torch.Tensor) -> None:
        if not self.checked:
            self.check_completeness(shape=tuple(x.shape[1:]))

    def decompose(self, x: torch.Tensor, class_index: int | torch.Tensor) -> FullGradDecomposition:
        """The full-gradient decomposition of ``f(x) = sum_k w_k model(x)_k``.

        Parameters
        ----------
        x
            Inputs ``[B, C, H, W]`` (also ``[B, F]`` for a fully connected model), floating point, in
            the model's dtype. Not modified.
        class_index
            What to explain, a linear function of the outputs: a class index (``int``), one class per
            input (integer tensor ``[B]``), or logit weights (float tensor ``[K]`` or ``[B, K]``).

        Returns
        -------
        FullGradDecomposition
            The output ``[B]``, the input term shaped like ``x``, and one bias term per biased-layer
            call.

        Raises
        ------
        ValueError
            For a malformed input or class_index, or (``strict``) an incomplete decomposition.
        """
        x = self._check_x(x).detach()
        self._ensure_checked(x)
        return self._decompose(x, class_index)

    def _batched_maps(
        self,
        x: torch.Tensor,
        class_index: int | torch.Tensor,
        batch_size: int | None,
        to_map: Callable[[FullGradDecomposition, tuple[int, int]], torch.Tensor],
    ) -> torch.Tensor:
        """``to_map`` of the decomposition of each micro-batch of ``x``, concatenated over the batch."""
        x = self._check_x(x, ndim=(4,)).detach()
        batch_size = check_batch_size(batch_size)
        self._ensure_checked(x)
        size = tuple(x.shape[-2:])
        parts = []
        for a, b in chunks(x.shape[0], batch_size):
            parts.append(to_map(self._decompose(x[a:b], _slice_class_index(class_index, a, b)), size))
        return torch.cat(parts)

    def signed_map(
        self, x: torch.Tensor, class_index: int | torch.Tensor, *, batch_size: int | None = None
    ) -> torch.Tensor:
        """Raw signed per-pixel attribution ``[B, 1, H, W]`` whose sum over pixels is ``f(x)`` (book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb).

        ``input term (channel-summed) + sum over conv / BatchNorm2d bias terms of their
        channel-summed values spread to the pixels by mass-preserving bilinear weights + the other
        (fully connected) bias terms spread evenly over the ``H * W`` pixels``. Every bias term keeps
        its total, so the map is complete [INF: the bias-to-pixel mapping is our reconstruction].

        Parameters
        ----------
        x
            Images ``[B, C, H, W]``.
        class_index
            A class index, classes ``[B]`` or logit weights ``[K]`` / ``[B, K]`` (see :meth:`decompose`).
        batch_size
            Decompose at most this many inputs at a time (``None``: all at once).

        Returns
        -------
        torch.Tensor
            ``[B, 1, H, W]``, signed, detached; ``map.sum((1, 2, 3))`` equals ``f(x)``.
        """
        return self._batched_maps(x, class_index, batch_size, self._signed)

    @staticmethod
    def _signed(dec: FullGradDecomposition, size: tuple[int, int]) -> torch.Tensor:
        out = dec.input_term.sum(1, keepdim=True)
        flat = torch.zeros_like(dec.output)
        for t in dec.bias_terms:
            if t.ndim == 4:
                out = out + _to_pixels(t, size)
            else:
                flat = flat + t.flatten(1).sum(1)
        return out + (flat / (size[0] * size[1])).view(-1, 1, 1, 1)

    def saliency(
        self, x: torch.Tensor, class_index: int | torch.Tensor, *, batch_size: int | None = None
    ) -> torch.Tensor:
        """The display saliency of the official implementation, ``[B, 1, H, W]``.

        ``S = sum_c pp(grad_x f * x)_c + sum over 4-D bias terms of sum_c up(pp(term))_c`` with
        ``pp(t) = (|t| - min|t|) / (max(|t| - min|t|) + 1e-6)`` per input over all of ``C x h x w``
        and ``up`` bilinear upsampling to ``H x W`` with ``align_corners=True``. Fully connected bias
        terms are not shown (as in the official code). This is a *display* map: non-negative, not
        complete, and its scale grows with the number of convolutional layers.

        Parameters
        ----------
        x
            Images ``[B, C, H, W]``.
        class_index
            A class index, classes ``[B]`` or logit weights ``[K]`` / ``[B, K]``.
        batch_size
            Decompose at most this many inputs at a time (``None``: all at once).

        Returns
        -------
        torch.Tensor
            ``[B, 1, H, W]``, ``>= 0``, detached.
        """
        return self._batched_maps(x, class_index, batch_size, self._display)

    @staticmethod
    def _display(dec: FullGradDecomposition, size: tuple[int, int]) -> torch.Tensor:
        cam = _post_process(dec.input_term).sum(1, keepdim=True)
        for t in dec.bias_terms:
            if t.ndim == 4:
                # bilinear upsampling is linear and acts on each channel alike, so summing the channels
                # first gives the same map (up to rounding) with one upsampled plane instead of C_l
                pp = _post_process(t).sum(1, keepdim=True)
                cam = cam + F.interpolate(pp, size=size, mode="bilinear", align_corners=True)
        return cam

    def class_maps(
        self, x: torch.Tensor, *, classes: int | None = None, batch_size: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Signed maps, display saliencies and outputs for every class at once.

        One forward pass and ``K`` backward passes per micro-batch.

        Parameters
        ----------
        x
            Images ``[B, C, H, W]``.
        classes
            Number of outputs ``K`` to explain (default: all outputs of the model).
        batch_size
            Process at most this many inputs at a time (``None``: all at once).

        Returns
        -------
        signed, display, logits
            ``[B, K, H, W]`` signed complete maps (``signed[:, k].sum((1, 2)) == logits[:, k]``),
            ``[B, K, H, W]`` display saliencies, and the outputs ``[B, K]``.
        """
        x = self._check_x(x, ndim=(4,)).detach()
        batch_size = check_batch_size(batch_size)
        self._ensure_checked(x)
        size = tuple(x.shape[-2:])
        signed, display, logits = [], [], []
        for a, b in chunks(x.shape[0], batch_size):
            xb = x[a:b]
            with preserve_mode(self.model, False), torch.no_grad():
                k = self.model(xb).shape[1] if classes is None else check_positive_int(classes, "classes")
            s_k, d_k, z_k = [], [], []
            for c in range(k):
                dec = self._decompose(xb, c)
                s_k.append(self._signed(dec, size))
                d_k.append(self._display(dec, size))
                z_k.append(dec.output)
            signed.append(torch.cat(s_k, 1))
            display.append(torch.cat(d_k, 1))
            logits.append(torch.stack(z_k, 1))
        return torch.cat(signed), torch.cat(display), torch.cat(logits)


def _slice_class_index(class_index: object, a: int, b: int) -> object:
    """The part of a per-input class_index that belongs to the inputs ``a:b``."""
    if (
        isinstance(class_index, torch.Tensor)
        and class_index.ndim >= 1
        and not (class_index.is_floating_point() and class_index.ndim == 1)
    ):
        return class_index[a:b]
    return class_index


def fullgrad(
    model: nn.Module,
    x: torch.Tensor,
    class_index: int | torch.Tensor,
    *,
    strict: bool = True,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Signed complete FullGrad map ``[B, 1, H, W]`` of a class logit (or weighted logits).

    A one-call shortcut for ``FullGrad(model, strict=strict).signed_map(x, class_index)``; see
    :meth:`FullGrad.signed_map`. References: Srinivas & Fleuret, NeurIPS 2019.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    >>> x = torch.rand(2, 1, 8, 8)
    >>> maps = ualib.fullgrad(net, x, 1)
    >>> tuple(maps.shape), torch.allclose(maps.sum((1, 2, 3)), net(x)[:, 1], atol=1e-5)
    ((2, 1, 8, 8), True)
    """
    return FullGrad(model, strict=strict).signed_map(x, class_index, batch_size=batch_size)


def fullgrad_saliency(
    model: nn.Module,
    x: torch.Tensor,
    class_index: int | torch.Tensor,
    *,
    strict: bool = True,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Display FullGrad saliency ``[B, 1, H, W]`` (official recipe); see :meth:`FullGrad.saliency`.

    References: Srinivas & Fleuret, NeurIPS 2019; idiap/fullgrad-saliency.
    """
    return FullGrad(model, strict=strict).saliency(x, class_index, batch_size=batch_size)
