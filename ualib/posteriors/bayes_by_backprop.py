"""Bayes-by-backprop with the Flipout estimator (Blundell et al., 2015; Wen et al., 2018)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ualib.layers.flipout import flipout_modules, kl_divergence
from ualib.posteriors._base import SubstitutedPosterior
from ualib.seeding import generator

__all__ = ["BayesByBackprop"]


class BayesByBackprop(SubstitutedPosterior):
    """A mean-field Gaussian weight posterior trained with Flipout; sample ``m`` is one weight draw.

    The model must contain Flipout layers (:class:`ualib.layers.FlipoutLinear`,
    :class:`ualib.layers.FlipoutConv2d`; e.g. ``build_model("lenet", flipout=True)``). Training
    minimises the negative ELBO per example, ``cross-entropy + kl_weight * KL[q(W) || p(W)]`` with
    ``kl_weight = 1 / num_train`` by default, the KL being the single-sample Monte-Carlo estimate of
    the layers (scale-mixture prior, Blundell et al.); with ``task="regression"`` the squared error
    replaces the cross-entropy. Flipout only decorrelates the gradient noise
    of a minibatch during training; at inference sample ``m`` draws every weight once,
    :math:`W_m=\\mu+\\sigma\\odot\\epsilon_m` with :math:`\\epsilon_m` from a generator seeded with
    ``(seed, m, layer)``, and applies the same :math:`W_m` to every input (the Flipout layers'
    ``weight_eps`` buffers are overridden through ``functional_call``, one sample after the other).

    References
    ----------
    C. Blundell, J. Cornebise, K. Kavukcuoglu, D. Wierstra. Weight uncertainty in neural networks.
    ICML 2015.
    Y. Wen, P. Vicol, J. Ba, D. Tran, R. Grosse. Flipout: efficient pseudo-independent weight
    perturbations on mini-batches. ICLR 2018.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> from ualib.layers import FlipoutLinear
    >>> net = nn.Sequential(FlipoutLinear(4, 8), nn.ReLU(), FlipoutLinear(8, 3))
    >>> post = ualib.BayesByBackprop(net, num_samples=10)
    >>> tuple(post.probs(torch.rand(2, 4)).shape)
    (10, 2, 3)
    """

    name = "flipout"

    def __init__(
        self,
        model: nn.Module,
        num_samples: int = 20,
        seed: int = 0,
        kl_weight: float | None = None,
        *,
        task: str = "classification",
    ) -> None:
        super().__init__(num_samples, seed, task=task)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self._layers = list(flipout_modules(model).items())
        if not self._layers:
            raise ValueError(
                "BayesByBackprop needs a model with Flipout layers (ualib.layers.FlipoutLinear / "
                "FlipoutConv2d), e.g. build_model('lenet', flipout=True); this model has none"
            )
        if kl_weight is not None and kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight}")
        self._model = model
        self.kl_weight = kl_weight

    @property
    def module(self) -> nn.Module:
        return self._model

    def _sample_states(self, indices: list[int]) -> Iterator[dict[str, torch.Tensor]]:
        for i in indices:
            yield {
                f"{name}.weight_eps" if name else "weight_eps": torch.randn(
                    mod.weight_eps.shape, generator=generator(self.seed, "flipout", i, name), dtype=torch.float64
                ).to(device=mod.weight_eps.device, dtype=mod.weight_eps.dtype)
                for name, mod in self._layers
            }

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, *, epoch: int, num_train: int) -> torch.Tensor:
        nll = self.data_loss(self._model(x), y)
        w = self.kl_weight if self.kl_weight is not None else 1.0 / num_train
        return nll + w * kl_divergence(self._model)
