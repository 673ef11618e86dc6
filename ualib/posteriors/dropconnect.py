"""Monte-Carlo DropConnect (Mobiny et al., 2021; DropConnect: Wan et al., 2013)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.func import functional_call

from ualib.posteriors._base import SubstitutedPosterior
from ualib.seeding import generator

__all__ = ["DropConnect"]


class DropConnect(SubstitutedPosterior):
    """MC DropConnect: posterior sample ``m`` drops each weight with probability ``p``.

    :math:`W_m = W \\odot B_m / (1-p)`, :math:`B_m \\sim \\mathrm{Bernoulli}(1-p)`, for the weights
    of every ``nn.Linear`` and ``nn.Conv2d`` layer (or those named in ``layers``); biases are kept,
    as in ``keras-uncertainty`` (``drop_bias=False``). Masks are always sampled: during training one
    fresh mask per minibatch (from the global RNG), at inference mask ``m`` is drawn from a generator
    seeded with ``(seed, m, parameter)``. The ``1/(1-p)`` rescaling keeps the expected weight equal to
    ``W``. The S samples run one after the other, each with its masked weights
    (:class:`~ualib.posteriors._base.SubstitutedPosterior`).

    Parameters
    ----------
    model
        A classifier ``[B, ...] -> [B, K]`` with at least one Linear or Conv2d layer.
    p
        Drop probability in (0, 1).
    num_samples
        S (default 20).
    seed
        Seed of the inference masks.
    layers
        Names of the modules whose weights are dropped (default: every Linear / Conv2d).
    task
        ``"classification"`` (default) or ``"regression"`` (see :class:`~ualib.posteriors.Posterior`).

    References
    ----------
    A. Mobiny, P. Yuan, S. K. Moulik, N. Garg, C. C. Wu, H. Van Nguyen. DropConnect is effective in
    modeling uncertainty of Bayesian deep networks. Scientific Reports 11, 5458 (2021).
    L. Wan, M. Zeiler, S. Zhang, Y. LeCun, R. Fergus. Regularization of neural networks using
    DropConnect. ICML 2013.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> post = ualib.DropConnect(net, p=0.2, num_samples=10)
    >>> tuple(post.probs(torch.rand(2, 4)).shape)
    (10, 2, 3)
    """

    name = "dropconnect"

    def __init__(
        self,
        model: nn.Module,
        p: float = 0.2,
        num_samples: int = 20,
        seed: int = 0,
        layers: Sequence[str] | None = None,
        *,
        task: str = "classification",
    ) -> None:
        super().__init__(num_samples, seed, task=task)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not 0.0 < p < 1.0:
            raise ValueError(f"p must be in (0, 1), got {p}")
        mods = dict(model.named_modules())
        if layers is None:
            layers = [n for n, m in mods.items() if isinstance(m, (nn.Linear, nn.Conv2d))]
        missing = [n for n in layers if n not in mods or not isinstance(getattr(mods[n], "weight", None), torch.Tensor)]
        if missing:
            raise ValueError(f"layers {missing} are not modules with a weight in this model")
        if not layers:
            raise ValueError("DropConnect needs a model with at least one nn.Linear or nn.Conv2d layer")
        self._model = model
        self.p = float(p)
        self.weight_names = [f"{n}.weight" if n else "weight" for n in layers]

    @property
    def module(self) -> nn.Module:
        return self._model

    def _mask(self, index: int, name: str, w: torch.Tensor) -> torch.Tensor:
        g = generator(self.seed, "dropconnect", index, name)
        keep = torch.rand(w.shape, generator=g, dtype=torch.float64) >= self.p
        return keep.to(device=w.device, dtype=w.dtype) / (1.0 - self.p)

    def _sample_states(self, indices: list[int]) -> Iterator[dict[str, torch.Tensor]]:
        params = dict(self._model.named_parameters())
        return ({n: params[n] * self._mask(i, n, params[n]) for n in self.weight_names} for i in indices)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, *, epoch: int, num_train: int) -> torch.Tensor:
        params = dict(self._model.named_parameters())
        masked = {}
        for n in self.weight_names:
            w = params[n]
            masked[n] = w * (torch.rand_like(w) >= self.p).to(w.dtype) / (1.0 - self.p)
        return self.data_loss(functional_call(self._model, masked, (x,), strict=False), y)
