"""Deterministic seeds derived from keys.

A posterior sample, a data split or a noise draw is a pure function of a tuple of keys
(for example ``(seed, "mc_dropout", sample_index, layer_index)``). Keys are hashed with SHA-256, so
the derived seed does not depend on Python's hash randomisation, the process, or the order in which
other random numbers were drawn.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["derive_seed", "generator", "seed_everything", "preserve_rng"]


def derive_seed(*keys: object) -> int:
    """Return a 63-bit integer seed that is a deterministic function of ``keys``.

    Keys are converted with ``repr``; use ints and strings for stable results.
    """
    digest = hashlib.sha256(repr(keys).encode("utf8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(*keys: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``derive_seed(*keys)``."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*keys))
    return g


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextmanager
def preserve_rng() -> Iterator[None]:
    """Restore the global Python, NumPy and torch RNG states on exit (no side effects)."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
