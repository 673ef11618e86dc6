"""Speed of per-sample gradient metrics: ``method="vmap"`` and ``method="hooks"`` vs a one-sample-at-a-time loop.

    .venv/bin/python benchmarks/bench_gradient_metrics.py [--batch 256] [--threads N] [--device cpu|cuda]

For the MNIST CNN (:class:`ualib.models.LeNet`, 28x28, ~215k weights) and B = 256 inputs (the first
MNIST test images when the dataset can be loaded, else uniform noise: the cost does not depend on
the pixel values), it times :func:`ualib.meta.gradient_metrics.gradient_metrics` with ``method="vmap"``
(``torch.func`` per-sample gradients) and ``method="hooks"`` (one batched forward and backward,
per-sample gradients from the captured layer inputs and output gradients), both with the automatic
chunk size, against ``method="loop"``, one ``torch.autograd.grad`` call per input, and checks that
all give the same numbers within float32 tolerance (TF32 is switched off on CUDA, so all run in true
float32). Target (issue #6): the vectorised version is at least 10x faster than the loop. Timings
are the best of ``--repeats`` runs (the machine may be shared; run it a few times). The script exits
with status 1 when the values disagree, and prints whether the speed target was met.
"""

from __future__ import annotations

import argparse
import time

import torch

from ualib.meta.gradient_metrics import GRADIENT_STATISTICS, NETWORK, gradient_groups, gradient_metrics
from ualib.models import LeNet


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times)


def inputs(batch: int) -> tuple[torch.Tensor, str]:
    try:
        from ualib import data

        return data.load("mnist", "test", n=batch, download=False).x, "MNIST test images"
    except Exception as exc:  # no data root / mirror here: the timing does not depend on pixel values
        return torch.rand(
            batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)
        ), f"uniform noise ({type(exc).__name__})"


def max_mismatch(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], groups: list[str], model: torch.nn.Module
) -> float:
    """Largest ``|a - b| / tol`` over all columns (<= 1 means equal within float32 tolerance).

    ``tol = 1e-4 |b| + 1e-5 * scale``, where ``scale`` is the column's typical size: the group's
    mean absolute gradient entry ``l1 / n`` for ``mean`` (a mean of signed entries that nearly cancel,
    e.g. exactly 0 in exact arithmetic for the last layer), and ``max |b|`` otherwise.
    """
    sizes = dict((n, p.numel()) for n, p in model.named_parameters())
    sizes[NETWORK] = sum(sizes[g] for g in groups)
    worst = 0.0
    for col, ref in b.items():
        group, stat = col.rsplit("/", 1)
        scale = (b[f"{group}/l1"] / sizes[group]) if stat == "mean" else ref.abs().max()
        tol = 1e-4 * ref.abs() + 1e-5 * scale
        worst = max(worst, float(((a[col] - ref).abs() / tol).max()))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # compare in true float32: TF32 convolutions / matmuls (on by default for cuDNN) round to 10 bits
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    model = LeNet(1, 28, 10).eval().to(args.device)
    x, source = inputs(args.batch)
    x = x.to(args.device)
    groups = gradient_groups(model)
    print(
        f"LeNet 28x28, {sum(p.numel() for p in model.parameters())} parameters, B={args.batch} ({source}), "
        f"device {args.device}, {torch.get_num_threads()} threads, groups {groups}"
    )

    runs = {
        "vmap": lambda: gradient_metrics(model, x, method="vmap"),
        "hooks": lambda: gradient_metrics(model, x, method="hooks"),
        "loop": lambda: gradient_metrics(model, x, method="loop"),
    }
    labels = {"vmap": "vmap (torch.func, auto chunk)", "hooks": "hooks (batched fwd/bwd, auto chunk)",
              "loop": "loop (autograd.grad per sample)"}  # fmt: skip
    times = {name: best_of(fn, args.repeats) for name, fn in runs.items()}
    for name, t in times.items():
        print(f"  {labels[name]:36s} {t * 1e3:9.1f} ms  ({t / args.batch * 1e3:.2f} ms per input)")
    for name in ("vmap", "hooks"):
        ratio = times["loop"] / times[name]
        print(f"ratio loop / {name}: {ratio:.1f}x  (target >= 10x: {'met' if ratio >= 10 else 'NOT met'})")

    b = gradient_metrics(model, x, method="loop")
    worst_all = 0.0
    for name in ("vmap", "hooks"):
        a = gradient_metrics(model, x, method=name)
        worst = max_mismatch(a, b, groups, model)
        worst_all = max(worst_all, worst)
        print(f"values {name}: {len(a)} columns x {args.batch} inputs, statistics {list(GRADIENT_STATISTICS)}; "
              f"largest |{name} - loop| / tolerance = {worst:.3f} "
              f"({'identical within float32 tolerance' if worst <= 1 else 'MISMATCH'})")  # fmt: skip
    return 0 if worst_all <= 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
