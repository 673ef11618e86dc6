"""Speed ratios of the posteriors' vectorisation choices (run on demand, never a timed test).

    .venv/bin/python benchmarks/bench_posteriors.py

Prints, for LeNet on 28x28 inputs:
* MC dropout, S=20: replicating the batch at the first dropout layer vs replicating the input;
* deep ensemble, M=5: one ``torch.func.vmap`` forward vs a Python loop over member modules.
"""

from __future__ import annotations

import time

import torch

from ualib.models import LeNet
from ualib.posteriors import DeepEnsemble, MCDropout


def best_of(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


@torch.no_grad()
def main() -> None:
    torch.manual_seed(0)
    x = torch.rand(256, 1, 28, 28)
    mc = MCDropout(LeNet(), num_samples=20)
    idx = list(range(20))
    t_lazy = best_of(lambda: mc._run(x, idx, lazy=True))
    t_full = best_of(lambda: mc._run(x, idx, lazy=False))
    print(
        f"MC dropout S=20 B=256: lazy {t_lazy * 1e3:.1f} ms, replicated input {t_full * 1e3:.1f} ms, "
        f"speed-up {t_full / t_lazy:.1f}x"
    )

    ens = DeepEnsemble(lambda: LeNet(), num_members=5)
    members = [m.eval() for m in ens.members()]
    t_vmap = best_of(lambda: ens.logits(x))
    t_loop = best_of(lambda: torch.stack([m(x) for m in members]))
    print(
        f"ensemble M=5 B=256: vmap {t_vmap * 1e3:.1f} ms, loop {t_loop * 1e3:.1f} ms, "
        f"ratio loop/vmap {t_loop / t_vmap:.2f}x"
    )


if __name__ == "__main__":
    main()
