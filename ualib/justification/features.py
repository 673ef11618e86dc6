"""Latent features of a frozen, pretrained network, read from chosen layers with forward hooks.

The justification chapter (Ardis & Flenner 2024, after Virani et al. 2020) never retrains the
network: it only *reads* the activations :math:`\\phi_l(x)` of some layers ``l``. This module does
that, and nothing else:

* :func:`layer_features` runs the network in eval mode without gradients, in batches, and returns
  the output of each requested module, flattened (or globally average-pooled) to ``[N, D_l]``. The
  hooks are registered inside a context manager and removed on exit, also when an exception is
  raised; the modules' train/eval flags are restored; ``requires_grad`` and the weights are never
  touched.
* :class:`FeatureTransform` optionally centres, projects on the leading principal components and
  standardises features, *fitted on the training features only* (book: chapter 7, "Justification", section "The frozen network and its features" — notebooks/07_justification.ipynb).
* :class:`FrozenFeatures` bundles both for several layers.

References
----------
N. Virani, N. Iyer, Z. Yang. Justification-based reliability in machine learning. AAAI 2020
(``virani2020justification``). M. Ardis, A. Flenner. Extracting explanations, justification, and
uncertainty from black-box deep neural networks. arXiv 2403.08652, 2024 (``ardis2024extracting``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

from ualib._checks import check_choice, check_positive_int, check_tensor
from ualib._progress import progress_bar

__all__ = ["OUTPUT", "layer_features", "capture", "FeatureTransform", "FrozenFeatures"]

#: the name that selects the network's own output (e.g. its logits) in :func:`layer_features`
OUTPUT = "output"

_POOLS = ("flatten", "avg")


def _resolve(model: nn.Module, layers: Sequence[str]) -> dict[str, nn.Module | None]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(layers, str) or not isinstance(layers, Sequence) or len(layers) == 0:
        raise ValueError(f"layers must be a non-empty sequence of module names, got {layers!r}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers must not repeat a name, got {list(layers)}")
    named = dict(model.named_modules())
    out: dict[str, nn.Module | None] = {}
    for name in layers:
        if name == OUTPUT and OUTPUT not in named:
            out[name] = None
        elif name in named and name != "":
            out[name] = named[name]
        else:
            known = [n for n in named if n]
            raise ValueError(f"unknown layer {name!r}; use {OUTPUT!r} for the model's output or one of {known}")
    return out


@contextmanager
def capture(model: nn.Module, layers: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` (module names of ``model``) during forward passes.

    A context manager: inside it, every forward pass stores the detached output of each named
    module in the yielded dictionary (overwriting the previous pass). The hooks are removed on exit,
    also when the body raises. :data:`OUTPUT` is not handled here (it is the forward's return value).
    """
    modules = {n: m for n, m in _resolve(model, layers).items() if m is not None} if len(layers) else {}
    store: dict[str, torch.Tensor] = {}
    handles = []

    def make(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"layer {name!r} returned {type(output).__name__}, expected a tensor")
            store[name] = output.detach()

        return hook

    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(make(name)))
        yield store
    finally:
        for h in handles:
            h.remove()


def _reduce(t: torch.Tensor, pool: str) -> torch.Tensor:
    if t.ndim <= 2:
        return t.reshape(len(t), -1)
    if pool == "avg":
        return t.flatten(2).mean(-1)
    return t.flatten(1)


def layer_features(
    model: nn.Module,
    x: torch.Tensor,
    layers: Sequence[str],
    *,
    batch_size: int = 512,
    pool: Literal["flatten", "avg"] | Mapping[str, Literal["flatten", "avg"]] = "flatten",
    device: str | torch.device | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Activations of ``layers`` of a frozen ``model`` for inputs ``x``.

    Parameters
    ----------
    model
        Any ``nn.Module`` (e.g. ``posterior.module``). It is run in eval mode under
        ``torch.no_grad()``; afterwards every submodule's train/eval flag is what it was, the hooks
        are gone and no parameter has changed (not even ``requires_grad``).
    x
        Inputs ``[N, ...]``.
    layers
        Names from ``model.named_modules()``; :data:`OUTPUT` (``"output"``) selects the model's return
        value (e.g. logits ``[N, K]``).
    batch_size
        Micro-batch size of the forward passes.
    pool
        How a layer output with spatial axes ``[N, C, H, W]`` becomes a vector: ``"flatten"`` to
        ``[N, C*H*W]``, ``"avg"`` (global average pooling) to ``[N, C]``; one value for all layers or
        a mapping per layer name (missing names: ``"flatten"``).
    device
        Where to run (default: the device of the model's first parameter, else the CPU).
    progress
        Show a plain ``tqdm`` bar over batches.

    Returns
    -------
    dict[str, Tensor]
        ``{layer: float [N, D_layer]}`` on the CPU, in the order of ``layers``.
    """
    x = check_tensor(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must have a batch axis and at least one feature axis, got shape {tuple(x.shape)}")
    check_positive_int(batch_size, "batch_size")
    modules = _resolve(model, layers)
    pools = {n: (pool.get(n, "flatten") if isinstance(pool, Mapping) else pool) for n in layers}
    for p in pools.values():
        check_choice(p, "pool", _POOLS)
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    hooked = [n for n, m in modules.items() if m is not None]
    modes = {m: m.training for m in model.modules()}
    chunks: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    try:
        model.eval()
        with torch.no_grad(), capture(model, hooked) as store:
            for i in progress_bar(range(0, len(x), batch_size), progress=progress, desc="features"):
                out = model(x[i : i + batch_size].to(device))
                for n in layers:
                    t = out if modules[n] is None else store[n]
                    if not isinstance(t, torch.Tensor):
                        raise TypeError(f"the model returned {type(t).__name__}, expected a tensor for {OUTPUT!r}")
                    chunks[n].append(_reduce(t, pools[n]).cpu())
    finally:
        for m, mode in modes.items():
            m.training = mode
    return {n: torch.cat(c) for n, c in chunks.items()}


class FeatureTransform:
    """Centre, optionally project on the first principal components, optionally standardise.

    ``fit`` on training features ``[N, D]``; ``transform`` any features ``[B, D] -> [B, d]`` with
    ``d = min(n_components, D)`` (``d = D`` without PCA). PCA is an eigendecomposition of the
    covariance in float64 (components ordered by decreasing variance, each with its largest-magnitude
    loading positive); standardising divides each output coordinate by its training standard
    deviation (coordinates with zero variance are left unscaled).

    Parameters
    ----------
    n_components
        Number of principal components to keep, or ``None`` for no projection.
    standardize
        Divide each (projected) coordinate by its training standard deviation.
    """

    def __init__(self, n_components: int | None = None, *, standardize: bool = True) -> None:
        if n_components is not None:
            check_positive_int(n_components, "n_components")
        self.n_components = n_components
        self.standardize = bool(standardize)
        self.mean_: torch.Tensor | None = None
        self.components_: torch.Tensor | None = None
        self.scale_: torch.Tensor | None = None

    def fit(self, h: torch.Tensor) -> FeatureTransform:
        """Fit on training features ``h [N, D]`` (N >= 2)."""
        h = check_tensor(h, "h", ndim=2)
        if len(h) < 2:
            raise ValueError(f"need at least 2 training rows to fit, got {len(h)}")
        h64 = h.double()
        self.mean_ = h64.mean(0)
        z = h64 - self.mean_
        if self.n_components is not None:
            cov = z.T @ z / (len(z) - 1)
            evals, evecs = torch.linalg.eigh(cov)
            d = min(self.n_components, h.shape[1])
            comps = evecs[:, torch.argsort(evals, descending=True)[:d]].T.contiguous()  # [d, D]
            sign = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
            self.components_ = comps * sign
            z = z @ self.components_.T
        if self.standardize:
            std = z.std(0)
            self.scale_ = torch.where(std > 0, std, torch.ones_like(std))
        return self

    def transform(self, h: torch.Tensor) -> torch.Tensor:
        """``h [B, D] -> [B, d]`` in the dtype of ``h``."""
        if self.mean_ is None:
            raise RuntimeError("call fit() before transform()")
        h = check_tensor(h, "h", ndim=2)
        if h.shape[1] != self.mean_.numel():
            raise ValueError(f"h must have {self.mean_.numel()} features, got shape {tuple(h.shape)}")
        z = h.double() - self.mean_
        if self.components_ is not None:
            z = z @ self.components_.T
        if self.scale_ is not None:
            z = z / self.scale_
        return z.to(h.dtype)

    def fit_transform(self, h: torch.Tensor) -> torch.Tensor:
        """``fit(h)`` then ``transform(h)``."""
        return self.fit(h).transform(h)


class FrozenFeatures:
    """Transformed features of several layers of one frozen network.

    Parameters
    ----------
    model
        The frozen network (never trained here).
    layers
        Module names (see :func:`layer_features`).
    n_components, standardize
        Passed to one :class:`FeatureTransform` per layer.
    pool, batch_size
        Passed to :func:`layer_features`.

    Examples
    --------
    >>> ff = FrozenFeatures(net, ["classifier.3"], n_components=64)  # doctest: +SKIP
    >>> train = ff.fit(x_train)          # {"classifier.3": [N, 64]}   # doctest: +SKIP
    >>> test = ff(x_test)                # same transform, fitted on x_train  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        *,
        n_components: int | None = None,
        standardize: bool = True,
        pool: Literal["flatten", "avg"] | Mapping[str, Literal["flatten", "avg"]] = "flatten",
        batch_size: int = 512,
    ) -> None:
        _resolve(model, layers)
        self.model = model
        self.layers = list(layers)
        self.pool = pool
        self.batch_size = batch_size
        self.transforms = {n: FeatureTransform(n_components, standardize=standardize) for n in self.layers}
        self._fitted = False

    def raw(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Untransformed features ``{layer: [N, D_layer]}``."""
        return layer_features(self.model, x, self.layers, batch_size=self.batch_size, pool=self.pool)

    def fit(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fit the transforms on the training inputs ``x`` and return their transformed features."""
        raw = self.raw(x)
        out = {n: self.transforms[n].fit_transform(h) for n, h in raw.items()}
        self._fitted = True
        return out

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Transformed features ``{layer: [B, d_layer]}`` of new inputs ``x``."""
        if not self._fitted:
            raise RuntimeError("call fit(x_train) first")
        return {n: self.transforms[n].transform(h) for n, h in self.raw(x).items()}
