"""Monte-Carlo dropout (Gal & Ghahramani, 2016)."""

from __future__ import annotations

import torch
from torch import nn

from ualib.posteriors._base import Posterior
from ualib.seeding import generator

__all__ = ["MCDropout", "dropout_modules"]

_DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


class _NotRowwise(Exception):
    """The model mixes replicated and un-replicated activations: replicate the input instead."""


def dropout_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs of every dropout layer with ``p > 0``, in registration order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _DROPOUT_TYPES) and m.p > 0]


class MCDropout(Posterior):
    """MC dropout: posterior sample ``m`` is the network with dropout mask ``m`` switched on.

    Training is ordinary dropout training with cross-entropy. At inference the model is put in eval
    mode (BatchNorm uses its running statistics) and every dropout layer multiplies its input by a
    fixed Bernoulli mask scaled by ``1/(1-p)``: the mask of sample ``m`` is drawn from a generator
    seeded with ``(seed, m, layer)`` and is shared by every input of the batch, so sample ``m`` is
    one concrete network :math:`\\theta_m`. ``nn.Dropout`` drops single activations,
    ``nn.Dropout2d`` whole channels, as in training. All S samples run in one forward pass: the layers
    before the first dropout layer run once on ``[B, ...]``, the rest on ``[S*B, ...]``.

    Parameters
    ----------
    model
        A classifier ``[B, ...] -> [B, K]`` containing at least one dropout layer with ``p > 0``.
    num_samples
        S, the number of dropout masks (default 20).
    seed
        Seed of the masks.
    task
        ``"classification"`` (default) or ``"regression"`` (see :class:`~ualib.posteriors.Posterior`).

    Raises
    ------
    ValueError
        If the model has no dropout layer with ``p > 0``.

    References
    ----------
    Y. Gal and Z. Ghahramani. Dropout as a Bayesian approximation: representing model uncertainty in
    deep learning. ICML 2016.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    >>> post = ualib.MCDropout(net, num_samples=10, seed=0)
    >>> x = torch.rand(2, 4)
    >>> probs = post.probs(x)  # one fixed dropout mask per sample
    >>> tuple(probs.shape), torch.equal(probs, post.probs(x))
    ((10, 2, 3), True)
    """

    name = "mc_dropout"

    def __init__(self, model: nn.Module, num_samples: int = 20, seed: int = 0, *, task: str = "classification") -> None:
        super().__init__(num_samples, seed, task=task)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self._layers = dropout_modules(model)
        if not self._layers:
            raise ValueError(
                "MC dropout needs a model with at least one dropout layer (nn.Dropout, nn.Dropout2d, ...) "
                "with p > 0; this model has none. Add dropout before the classifier, or use another "
                "posterior (DeepEnsemble, DropConnect, BayesByBackprop)."
            )
        self._model = model

    @property
    def module(self) -> nn.Module:
        return self._model

    def _mask(self, index: int, layer: int, module: nn.Module, feat_shape: torch.Size, device, dtype) -> torch.Tensor:
        if isinstance(module, nn.Dropout):
            shape = feat_shape  # element-wise
        else:  # DropoutNd: one value per channel
            shape = torch.Size([feat_shape[0]] + [1] * (len(feat_shape) - 1))
        g = generator(self.seed, "mc_dropout", index, layer)
        keep = torch.rand(shape, generator=g, dtype=torch.float64) >= module.p
        return keep.to(device=device, dtype=dtype) / (1.0 - module.p)

    def _logits(self, x: torch.Tensor, indices: list[int]) -> torch.Tensor:
        try:
            return self._run(x, indices, lazy=True)
        except (RuntimeError, _NotRowwise):
            return self._run(x, indices, lazy=False)

    def _logits_per_sample(self, xs: torch.Tensor, indices: list[int]) -> torch.Tensor:
        return self._run(xs, indices, lazy=False, expanded=True)

    def _run(self, x: torch.Tensor, indices: list[int], *, lazy: bool, expanded: bool = False) -> torch.Tensor:
        """One forward pass for all samples.

        ``lazy=True`` runs the deterministic layers before the first dropout layer once, on ``[B, ...]``,
        and replicates the batch to ``[S*B, ...]`` only there (the usual case: dropout in the head, so
        the convolutional trunk is not recomputed S times). This is exact whenever the layers after
        the first dropout act row-wise; if a model mixes un-replicated and replicated activations the
        shapes disagree and we fall back to replicating the input (``lazy=False``). ``expanded=True``
        means ``x`` is already ``[S, B, ...]``, one input batch per sample.
        """
        s = len(indices)
        b = x.shape[1] if expanded else x.shape[0]
        handles = []

        def make_hook(layer: int):
            def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
                inp = inputs[0]
                if lazy and inp.shape[0] == b and s > 1:
                    inp = inp.unsqueeze(0).expand(s, *inp.shape).reshape(s * b, *inp.shape[1:])
                elif inp.shape[0] != s * b:
                    raise _NotRowwise
                feat = inp.shape[1:]
                masks = torch.stack([self._mask(i, layer, module, feat, inp.device, inp.dtype) for i in indices])
                return (inp.reshape(s, b, *feat) * masks.unsqueeze(1)).reshape(inp.shape)

            return hook

        try:
            for layer, (_, module) in enumerate(self._layers):
                handles.append(module.register_forward_hook(make_hook(layer)))
            if expanded:
                xs = x.reshape(s * b, *x.shape[2:])
            else:
                xs = x if lazy else x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])
            out = self._model(xs)
        finally:
            for h in handles:
                h.remove()
        if out.shape[0] != s * b:
            raise _NotRowwise
        return out.reshape(s, b, -1)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, *, epoch: int, num_train: int) -> torch.Tensor:
        return self.data_loss(self._model(x), y)
