"""Evidential deep learning as a posterior with one sample (Sensoy, Kaplan & Kandemir, 2018)."""

from __future__ import annotations

import torch
from torch import nn

from ualib._checks import check_choice, check_positive_int, model_input_errors
from ualib.evidential import dirichlet_from_logits, edl_loss
from ualib.posteriors._base import Posterior, preserve_mode

__all__ = ["Evidential"]


class Evidential(Posterior):
    """A deterministic network whose outputs are Dirichlet parameters ``alpha = evidence(z) + 1``.

    To share the posterior interface, :meth:`logits` returns ``log(alpha)`` with one sample,
    ``[1, B, K]``: its softmax is the Dirichlet's expected probability ``alpha / sum(alpha)``. Use
    :meth:`alpha` for vacuity, dissonance and the other Subjective-Logic quantities in
    :mod:`ualib.uncertainty`.

    Parameters
    ----------
    model
        A network ``[B, ...] -> [B, K]`` (its outputs are read as evidence logits).
    evidence
        ``"relu"``, ``"softplus"`` or ``"exp"``.
    loss
        EDL data term: ``"mse"``, ``"log"`` or ``"digamma"``; the KL regulariser is annealed over
        ``anneal_epochs`` epochs.

    References
    ----------
    M. Sensoy, L. Kaplan, M. Kandemir. Evidential deep learning to quantify classification
    uncertainty. NeurIPS 2018.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> post = ualib.Evidential(net, evidence="relu")
    >>> alpha = post.alpha(torch.rand(2, 4))  # Dirichlet parameters, evidence + 1
    >>> tuple(alpha.shape), bool((alpha >= 1).all())
    ((2, 3), True)
    >>> tuple(ualib.vacuity(alpha).shape)
    (2,)
    """

    name = "edl"

    def __init__(self, model: nn.Module, evidence: str = "relu", loss: str = "mse", anneal_epochs: int = 10) -> None:
        super().__init__(1, 0)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self._model = model
        self.evidence = check_choice(evidence, "evidence", ("relu", "softplus", "exp"))
        self.loss = check_choice(loss, "loss", ("mse", "log", "digamma"))
        self.anneal_epochs = check_positive_int(anneal_epochs, "anneal_epochs")

    @property
    def module(self) -> nn.Module:
        return self._model

    def alpha(self, x: torch.Tensor) -> torch.Tensor:
        """Dirichlet parameters ``[B, K]`` (model in eval mode, restored afterwards)."""
        x = self._check_input(x, ndim=(2, 3, 4, 5))
        with preserve_mode(self._model, False), model_input_errors("x", x):
            return dirichlet_from_logits(self._model(x), self.evidence)

    @torch.no_grad()
    def predict_alpha(self, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
        """Dirichlet parameters ``[N, K]`` for a whole dataset ``x [N, ...]`` in batches, on the CPU."""
        x = self._check_input(x, ndim=(2, 3, 4, 5))
        check_positive_int(batch_size, "batch_size")
        dev = self.device
        return torch.cat([self.alpha(x[i : i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)])

    def _logits(self, x: torch.Tensor, indices: list[int]) -> torch.Tensor:
        if any(i != 0 for i in indices):
            raise ValueError(f"an evidential model is deterministic and has one sample (index 0); got {indices}")
        alpha = dirichlet_from_logits(self._model(x), self.evidence)
        return alpha.log().unsqueeze(0).expand(len(indices), *alpha.shape)

    def _logits_per_sample(self, xs: torch.Tensor, indices: list[int]) -> torch.Tensor:
        return self._logits(xs[0], indices)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, *, epoch: int, num_train: int) -> torch.Tensor:
        alpha = dirichlet_from_logits(self._model(x), self.evidence)
        return edl_loss(alpha, y, kind=self.loss, epoch=epoch, anneal_epochs=self.anneal_epochs)
