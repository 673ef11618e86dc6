"""The one interface every posterior shares: ``logits(x) -> [S, B, K]``.

A posterior sample is a concrete network :math:`\\theta_m`, a deterministic function of
``(sample index m, seed)``. Every input of a batch is pushed through the *same* :math:`\\theta_m`, so

* batched results equal per-sample results (no mask depends on the batch size or position), and
* a path or noise method (integrated gradients, SmoothGrad, LIME) that calls ``logits`` again with
  other inputs sees exactly the same S networks at every step.

This is the Bayesian reading of MC dropout (Gal & Ghahramani 2016: one dropout mask = one weight
sample), made explicit.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ualib._checks import check_choice, check_model_dtype, check_positive_int, check_tensor, model_input_errors
from ualib._progress import progress_bar

__all__ = ["Posterior", "SubstitutedPosterior", "preserve_mode", "TASKS"]

#: what a posterior's network predicts: class logits ``[.., K]`` or a real value ``[.., 1]``
TASKS = ("classification", "regression")


@contextmanager
def preserve_mode(model: nn.Module, training: bool | None = None) -> Iterator[nn.Module]:
    """Set ``model`` to train (``True``) / eval (``False``) mode inside the block; restore every
    submodule's own flag on exit, also when an exception is raised."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        if training is not None:
            model.train(training)
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


class Posterior(abc.ABC):
    """An approximate posterior over networks exposing ``num_samples`` samples.

    Subclasses implement :meth:`_logits` (inference with fixed samples) and :meth:`training_loss`.

    Parameters
    ----------
    num_samples
        S, the number of posterior samples ``logits`` returns by default.
    seed
        Seed of the sample generator: sample ``m`` is a function of ``(m, seed)`` only.
    task
        ``"classification"`` (default: logits ``[S, B, K]``, trained with cross-entropy) or
        ``"regression"`` (one real output, ``[S, B, 1]``, trained with the mean squared error, i.e.
        the negative log-likelihood of a Gaussian with fixed unit variance up to a factor and a
        constant). Only the training loss depends on it.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    >>> post = ualib.MCDropout(net, num_samples=5)  # every posterior shares this interface
    >>> isinstance(post, ualib.Posterior)
    True
    >>> tuple(post.logits(torch.rand(2, 4)).shape)  # [S, B, K]
    (5, 2, 3)
    """

    #: short name used in tables and cache keys
    name: str = "posterior"

    def __init__(self, num_samples: int, seed: int = 0, *, task: str = "classification") -> None:
        self.num_samples = check_positive_int(num_samples, "num_samples")
        if not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        self.task = check_choice(task, "task", TASKS)

    def data_loss(self, output: torch.Tensor, y: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
        """The data term of the training loss for network outputs ``[N, K]`` and targets ``y [N]``.

        Classification: cross-entropy with integer labels. Regression: squared error between
        ``output[:, 0]`` (``K`` must be 1) and the real targets ``y``.
        """
        if self.task == "classification":
            return F.cross_entropy(output, y, reduction=reduction)
        if output.ndim != 2 or output.shape[1] != 1:
            raise ValueError(f"a regression network must output [N, 1], got {tuple(output.shape)}")
        return F.mse_loss(output[:, 0], y.to(output.dtype), reduction=reduction)

    # -- inference ---------------------------------------------------------------------------
    def logits(
        self,
        x: torch.Tensor,
        *,
        indices: Sequence[int] | None = None,
        chunk_size: int | None = None,
        per_sample_inputs: bool = False,
    ) -> torch.Tensor:
        """Logits of every posterior sample.

        Parameters
        ----------
        x
            Inputs ``[B, ...]``; with ``per_sample_inputs=True``, ``[S, B, ...]`` where sample ``s``
            sees ``x[s]`` (so one backward pass gives every per-(sample, input) gradient).
        indices
            Which posterior samples to draw (default ``range(num_samples)``).
        chunk_size
            At most this many samples are pushed through the network at once (memory bound).

        Returns
        -------
        torch.Tensor
            ``[S, B, K]`` with ``S = len(indices)``; differentiable with respect to ``x``.
        """
        self._check_input(x, ndim=(2, 3, 4, 5, 6) if per_sample_inputs else (2, 3, 4, 5))
        idx = list(range(self.num_samples)) if indices is None else [int(i) for i in indices]
        if per_sample_inputs and x.shape[0] != len(idx):
            raise ValueError(f"with per_sample_inputs, x must be [S, B, ...] with S = {len(idx)}, got {tuple(x.shape)}")
        if not idx:
            raise ValueError("indices must name at least one posterior sample")
        if any(i < 0 for i in idx):
            raise ValueError(f"sample indices must be >= 0, got {idx}")
        if chunk_size is not None:
            check_positive_int(chunk_size, "chunk_size")
        step = chunk_size or len(idx)
        with preserve_mode(self.module, False), model_input_errors("x", x):
            if per_sample_inputs:
                parts = [self._logits_per_sample(x[i : i + step], idx[i : i + step]) for i in range(0, len(idx), step)]
            else:
                parts = [self._logits(x, idx[i : i + step]) for i in range(0, len(idx), step)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, 0)

    def probs(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Softmax of :meth:`logits`: ``[S, B, K]``."""
        return self.logits(x, **kwargs).softmax(-1)

    @torch.no_grad()
    def predict(
        self,
        x: torch.Tensor,
        *,
        batch_size: int = 1024,
        chunk_size: int | None = None,
        progress: bool | str = False,
        device: str | torch.device | None = None,
    ) -> torch.Tensor:
        """Probabilities ``[S, N, K]`` for a whole dataset ``x [N, ...]`` in batches, on the CPU.

        ``progress`` shows a plain ``tqdm`` bar (a string becomes its description).
        """
        self._check_input(x, ndim=(2, 3, 4, 5))
        check_positive_int(batch_size, "batch_size")
        dev = torch.device(device) if device is not None else self.device
        out = []
        batches = range(0, len(x), batch_size)
        if progress:
            batches = progress_bar(batches, progress=progress, desc=self.name, leave=False)
        for i in batches:
            out.append(self.probs(x[i : i + batch_size].to(dev), chunk_size=chunk_size).cpu())
        return torch.cat(out, 1)

    def _check_input(self, x: object, *, ndim: tuple[int, ...]) -> torch.Tensor:
        """A finite, non-empty float tensor of the allowed ranks in the dtype of the network."""
        x = check_tensor(x, "x", ndim=ndim, nonempty=True)
        return check_model_dtype(x, "x", self.parameters())

    @abc.abstractmethod
    def _logits(self, x: torch.Tensor, indices: list[int]) -> torch.Tensor:
        """Logits ``[len(indices), B, K]`` with the module already in eval mode."""

    @abc.abstractmethod
    def _logits_per_sample(self, xs: torch.Tensor, indices: list[int]) -> torch.Tensor:
        """Logits ``[len(indices), B, K]`` where sample ``indices[s]`` sees ``xs[s]``."""

    # -- training ----------------------------------------------------------------------------
    @abc.abstractmethod
    def training_loss(self, x: torch.Tensor, y: torch.Tensor, *, epoch: int, num_train: int) -> torch.Tensor:
        """The scalar loss of one minibatch (the module is in train mode)."""

    def parameters(self) -> list[torch.Tensor]:
        """The tensors an optimiser updates."""
        return [p for p in self.module.parameters() if p.requires_grad]

    @property
    @abc.abstractmethod
    def module(self) -> nn.Module:
        """The underlying ``nn.Module`` (for ensembles, the stateless template)."""

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def state_dict(self) -> dict:
        """Everything needed to restore trained weights (see :meth:`load_state_dict`)."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)

    def to(self, device: str | torch.device) -> Posterior:
        self.module.to(device)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_samples={self.num_samples}, seed={self.seed})"


class SubstitutedPosterior(Posterior):
    """A posterior whose sample ``m`` is its network with some tensors replaced (weights, masks, noise).

    Subclasses yield, per sample, the parameters and buffers that sample replaces
    (:meth:`_sample_states`); inference calls the network once per sample with them through
    ``torch.func.functional_call``, one sample after the other. On a 2-core CPU this loop was 1.2 to
    3.2 times faster than one ``torch.func.vmap`` over the stacked samples (which turns every
    convolution into a grouped one) on LeNet at 28x28 and the CIFAR-10 ``small_cnn`` at 32x32, forward
    and backward, and as fast on 8x8 digits and a tabular MLP; ``benchmarks/bench_posteriors.py``
    prints the ratios. It also keeps a layer's module hooks working, so guided backpropagation can
    hook a shared template.
    """

    @abc.abstractmethod
    def _sample_states(self, indices: list[int]) -> Iterator[dict[str, torch.Tensor]]:
        """The tensors that each sample of ``indices`` substitutes, in order."""

    def _run(self, x: torch.Tensor, indices: list[int], per_sample_inputs: bool) -> torch.Tensor:
        outs = [
            functional_call(self.module, state, (x[s] if per_sample_inputs else x,), strict=False)
            for s, state in enumerate(self._sample_states(indices))
        ]
        return torch.stack(outs)

    def _logits(self, x: torch.Tensor, indices: list[int]) -> torch.Tensor:
        return self._run(x, indices, per_sample_inputs=False)

    def _logits_per_sample(self, xs: torch.Tensor, indices: list[int]) -> torch.Tensor:
        return self._run(xs, indices, per_sample_inputs=True)
