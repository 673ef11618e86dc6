"""Deep ensembles (Lakshminarayanan, Pritzel & Blundell, 2017), their members stacked with ``torch.func``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.func import stack_module_state

from ualib.posteriors._base import SubstitutedPosterior
from ualib.seeding import derive_seed, preserve_rng

__all__ = ["DeepEnsemble"]


def _check_same_architecture(mods: Sequence[nn.Module]) -> None:
    """Every member must have the parameters and buffers of the first (names, shapes, dtypes)."""

    def layout(m: nn.Module) -> dict[str, tuple]:
        return {k: (tuple(v.shape), v.dtype) for k, v in [*m.named_parameters(), *m.named_buffers()]}

    ref = layout(mods[0])
    for i, m in enumerate(mods[1:], 1):
        got = layout(m)
        if got != ref:
            diff = sorted(k for k in ref.keys() | got.keys() if ref.get(k) != got.get(k))
            raise ValueError(
                f"members must share the same architecture: member {i} differs from member 0 in {diff[:3]} "
                f"({ref.get(diff[0])} vs {got.get(diff[0])})"
            )


def check_members(members: Sequence[int], num_members: int) -> list[int]:
    """``members`` as a list of at least 2 distinct member indices of an ensemble of ``num_members``."""
    if isinstance(members, (str, bytes)) or not isinstance(members, Sequence):
        raise TypeError(f"members must be a sequence of member indices, got {type(members).__name__}")
    out = []
    for m in members:
        if isinstance(m, bool) or not isinstance(m, int):
            raise TypeError(f"members must hold integer member indices, got {m!r}")
        if not 0 <= m < num_members:
            raise ValueError(f"members must lie in [0, {num_members - 1}] (the ensemble has {num_members}), got {m}")
        out.append(m)
    if len(set(out)) != len(out):
        raise ValueError(f"members must be distinct, got {list(members)}")
    if len(out) < 2:
        raise ValueError(f"members: a deep ensemble needs at least 2 members, got {len(out)}")
    return out


class DeepEnsemble(SubstitutedPosterior):
    """M independently initialised networks, trained together by one optimiser.

    The members' parameters are stacked along a leading axis (``torch.func.stack_module_state``), so
    one optimiser updates them all; posterior sample ``m`` is member ``m``. Training and inference run
    the members one after the other on views of the stacked tensors
    (:class:`~ualib.posteriors._base.SubstitutedPosterior`), which on the CPU is faster than one
    ``torch.func.vmap`` over the stacked axis: 1.1x per training step on LeNet at 28x28 and 1.4x on the
    CIFAR-10 ``small_cnn`` at 32x32 (``benchmarks/bench_posteriors.py``).
    All members see the same minibatches during training: their diversity comes from the random
    initialisation (seeded with ``(seed, m)``) and from dropout, which each member draws for itself.
    Lakshminarayanan et al. also
    shuffle the data independently per member; this implementation does not (documented choice).

    Parameters
    ----------
    members
        Either a factory ``() -> nn.Module`` called ``num_members`` times, or a sequence of
        identically structured modules.
    num_members
        M, used with a factory (ignored for a sequence).
    seed
        Seed of the members' initialisation.
    task
        ``"classification"`` (default) or ``"regression"`` (see :class:`~ualib.posteriors.Posterior`).

    References
    ----------
    B. Lakshminarayanan, A. Pritzel, C. Blundell. Simple and scalable predictive uncertainty
    estimation using deep ensembles. NeurIPS 2017.

    Examples
    --------
    >>> import torch, ualib
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> make = lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> post = ualib.DeepEnsemble(make, num_members=3, seed=0)
    >>> tuple(post.logits(torch.rand(2, 4)).shape)  # one sample per member
    (3, 2, 3)
    """

    name = "ensemble"

    def __init__(
        self,
        members: Callable[[], nn.Module] | Sequence[nn.Module],
        num_members: int = 5,
        seed: int = 0,
        *,
        task: str = "classification",
    ) -> None:
        if callable(members) and not isinstance(members, nn.Module):
            if isinstance(num_members, bool) or not isinstance(num_members, int) or num_members < 2:
                raise ValueError(
                    f"num_members must be an integer >= 2 (a deep ensemble needs at least 2 members), got {num_members!r}"
                )
            mods = []
            for m in range(num_members):
                with preserve_rng():
                    torch.manual_seed(derive_seed(seed, "ensemble", m))
                    mods.append(members())
        else:
            mods = list(members)  # type: ignore[arg-type]
        if len(mods) < 2:
            raise ValueError(f"members: a deep ensemble needs at least 2 members, got {len(mods)}")
        if not all(isinstance(m, nn.Module) for m in mods):
            bad = next(type(m).__name__ for m in mods if not isinstance(m, nn.Module))
            raise TypeError(f"members: every ensemble member must be an nn.Module, got {bad}")
        _check_same_architecture(mods)
        super().__init__(len(mods), seed, task=task)
        params, buffers = stack_module_state(mods)
        self._params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self._buffers = {k: v.detach().clone() for k, v in buffers.items()}
        self._template = copy.deepcopy(mods[0]).to("meta")

    @property
    def module(self) -> nn.Module:
        return self._template

    def parameters(self) -> list[torch.Tensor]:
        return list(self._params.values())

    def _sample_states(self, indices: list[int]) -> Iterator[dict[str, torch.Tensor]]:
        if max(indices) >= self.num_samples:
            raise ValueError(
                f"indices must lie in [0, {self.num_samples - 1}] (this ensemble has {self.num_samples} members), "
                f"got {indices}"
            )
        stacked = {**self._params, **self._buffers}
        return ({k: v[i] for k, v in stacked.items()} for i in indices)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, *, epoch: int, num_train: int) -> torch.Tensor:
        # every member's training-mode output [M, B, K]; each member's BatchNorm statistics update its own
        # slice of the stacked buffers, and its gradients reach its slice of the stacked parameters
        logits = self._run(x, list(range(self.num_samples)), per_sample_inputs=False)
        m, b, k = logits.shape
        # sum over members of each member's mean loss: independent gradients per member
        return self.data_loss(logits.reshape(m * b, k), y.repeat(m), reduction="sum") / b

    def subset(self, members: Sequence[int]) -> DeepEnsemble:
        """The ensemble of the listed ``members`` of this one (a copy; sample ``i`` is member ``members[i]``).

        A larger trained ensemble is a pool from which several smaller ones can be drawn, e.g. the seed
        replicates of a study (their overlap makes them correlated: say so where they are compared).

        Examples
        --------
        >>> import torch, ualib
        >>> from torch import nn
        >>> make = lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> pool = ualib.DeepEnsemble(make, num_members=7, seed=0)
        >>> x = torch.rand(2, 4)
        >>> drawn = pool.subset([0, 2, 4])
        >>> drawn.num_samples, torch.equal(drawn.logits(x)[1], pool.logits(x)[2])
        (3, True)
        """
        members = check_members(members, self.num_samples)
        ens = copy.copy(self)  # shares the (meta-device) template
        ens.num_samples = len(members)
        with torch.no_grad():
            ens._params = {k: v[members].clone().requires_grad_(True) for k, v in self._params.items()}
            ens._buffers = {k: v[members].clone() for k, v in self._buffers.items()}
        return ens

    def members(self) -> list[nn.Module]:
        """Ordinary ``nn.Module`` copies of the members (for inspection or export)."""
        out = []
        for m in range(self.num_samples):
            mod = copy.deepcopy(self._template).to_empty(device=self.device)
            state = {k: v[m].detach() for k, v in {**self._params, **self._buffers}.items()}
            mod.load_state_dict(state)
            out.append(mod)
        return out

    def state_dict(self) -> dict:
        return {"params": {k: v.detach() for k, v in self._params.items()}, "buffers": dict(self._buffers)}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for k, v in state["params"].items():
                self._params[k].copy_(v)
            for k, v in state["buffers"].items():
                self._buffers[k].copy_(v)

    def to(self, device: str | torch.device) -> DeepEnsemble:
        self._params = {k: v.detach().to(device).requires_grad_(True) for k, v in self._params.items()}
        self._buffers = {k: v.to(device) for k, v in self._buffers.items()}
        return self
