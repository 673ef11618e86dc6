"""Speed ratios of the posteriors' vectorisation choices (run on demand, never a timed test).

    .venv/bin/python benchmarks/bench_posteriors.py

Prints, in one run on this machine:

* MC dropout, S=20, LeNet 28x28: replicating the batch at the first dropout layer vs replicating the
  input;
* DropConnect (S=10), deep ensemble (M=5) and Flipout (S=10), on LeNet at 28x28 and on the compendium's
  CIFAR-10 network (``small_cnn``, width 16) at 32x32: ualib's inference, which runs the samples one
  after the other (:class:`ualib.posteriors._base.SubstitutedPosterior`), against one
  ``torch.func.vmap`` over the same stacked sample tensors (ualib's implementation before 2026-12-07),
  for a forward pass and for a forward and backward pass with per-sample inputs (what integrated
  gradients and guided backpropagation do). Both give the same outputs (the maximal difference is printed);
* one training step of the deep ensemble (M=5, B=128, forward, loss and backward) on both networks: ualib's
  loop over the members against one ``vmap`` over them with independent dropout per member (ualib's
  training before 2026-12-07). Their losses differ only by the dropout masks drawn.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.func import functional_call, vmap

from ualib.models import LeNet, build_model
from ualib.posteriors import BayesByBackprop, DeepEnsemble, DropConnect, MCDropout


def best_of(fn: Callable[[], object], repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def vmapped(post, x: torch.Tensor, per_sample_inputs: bool) -> torch.Tensor:
    """The peer: every sample's substituted tensors stacked, one vmap over them."""
    idx = list(range(post.num_samples))
    states = list(post._sample_states(idx))
    stacked = {k: torch.stack([s[k] for s in states]) for k in states[0]}

    def one(state: dict, inp: torch.Tensor) -> torch.Tensor:
        return functional_call(post.module, state, (inp,), strict=False)

    post.module.eval()  # the caller sets the grad mode
    return vmap(one, in_dims=(0, 0 if per_sample_inputs else None))(stacked, x)


def compare(label: str, post, x: torch.Tensor) -> None:
    with torch.no_grad():
        ours = post.logits(x)
        diff = float((ours - vmapped(post, x, False)).abs().max())
        t_loop = best_of(lambda: post.logits(x))
        t_vmap = best_of(lambda: vmapped(post, x, False))
    xs = x[None].expand(post.num_samples, *x.shape).clone().requires_grad_(True)

    def grad(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        return lambda: torch.autograd.grad(fn(xs).sum(), xs)

    g_loop = best_of(grad(lambda z: post.logits(z, per_sample_inputs=True)), repeats=3)
    g_vmap = best_of(grad(lambda z: vmapped(post, z, True)), repeats=3)
    print(
        f"{label:44s} forward: loop {t_loop * 1e3:7.1f} ms, vmap {t_vmap * 1e3:7.1f} ms, {t_vmap / t_loop:4.1f}x | "
        f"per-sample forward+backward: loop {g_loop * 1e3:7.1f} ms, vmap {g_vmap * 1e3:7.1f} ms, "
        f"{g_vmap / g_loop:4.1f}x | max |diff| {diff:.1e}",
        flush=True,
    )


def train_step_vmapped(post: DeepEnsemble, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The peer of one ensemble training step: every member's training-mode output in one vmap."""

    def one(p: dict, b: dict, inp: torch.Tensor) -> torch.Tensor:
        return functional_call(post.module, (p, b), (inp,))

    logits = vmap(one, in_dims=(0, 0, None), randomness="different")(post._params, post._buffers, x)
    m, b, k = logits.shape
    return post.data_loss(logits.reshape(m * b, k), y.repeat(m), reduction="sum") / b


def compare_training(label: str, post: DeepEnsemble, x: torch.Tensor) -> None:
    y = torch.randint(0, 10, (len(x),))
    post.module.train()

    def step(loss_fn: Callable[[], torch.Tensor]) -> Callable[[], float]:
        def run() -> float:
            loss = loss_fn()
            loss.backward()
            for p in post.parameters():
                p.grad = None
            return float(loss)

        return run

    loop = step(lambda: post.training_loss(x, y, epoch=0, num_train=len(x)))
    peer = step(lambda: train_step_vmapped(post, x, y))
    t_loop, t_vmap = best_of(loop, repeats=3), best_of(peer, repeats=3)
    post.module.eval()
    print(
        f"{label:44s} training step: loop {t_loop * 1e3:7.1f} ms, vmap {t_vmap * 1e3:7.1f} ms, {t_vmap / t_loop:4.1f}x",
        flush=True,
    )


def main() -> None:
    torch.manual_seed(0)
    x = torch.rand(256, 1, 28, 28)
    mc = MCDropout(LeNet(), num_samples=20)
    idx = list(range(20))
    with torch.no_grad():
        t_lazy = best_of(lambda: mc._run(x, idx, lazy=True))
        t_full = best_of(lambda: mc._run(x, idx, lazy=False))
    print(
        f"MC dropout S=20 B=256: lazy {t_lazy * 1e3:.1f} ms, replicated input {t_full * 1e3:.1f} ms, "
        f"speed-up {t_full / t_lazy:.1f}x"
    )

    print("ratios are vmap time / loop time (above 1: ualib's loop is faster)")
    nets = {
        "LeNet 28x28, B=256": (lambda **kw: build_model("lenet", in_channels=1, in_size=28, **kw), x),
        "small_cnn w16 32x32, B=256": (
            lambda **kw: build_model("small_cnn", in_channels=3, in_size=32, width=16, **kw),
            torch.rand(256, 3, 32, 32),
        ),
    }
    for net, (make, inputs) in nets.items():
        compare(f"DropConnect S=10, {net}", DropConnect(make(), p=0.1, num_samples=10), inputs)
        compare(f"ensemble M=5, {net}", DeepEnsemble(make, num_members=5), inputs)
        compare(f"Flipout S=10, {net}", BayesByBackprop(make(flipout=True), num_samples=10), inputs)
    for net, (make, inputs) in nets.items():
        compare_training(
            f"ensemble M=5, {net[: net.index(', B=')]}, B=128", DeepEnsemble(make, num_members=5), inputs[:128]
        )


if __name__ == "__main__":
    main()
