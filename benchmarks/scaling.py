"""Scaling of the three headline methods (time and peak memory) and the bounded-memory check.

Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the peak resident set size of the
process (``VmHWM`` of ``/proc/self/status``, reset through ``/proc/self/clear_refs`` before each run) minus
the resident size before it: torch's CPU allocator bypasses ``tracemalloc``, and large tensors are
``mmap``-ed and returned to the system when freed (smaller ones after ``malloc_trim``), so the RSS peak
tracks the tensors alive at once.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from benchmarks.suite import _device, _images, _lenet, resnet18, setup_fullgrad

__all__ = ["peak_mib", "scaling", "memory_check", "memory_check_fresh"]


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _fixed_mmap_threshold() -> None:
    """Make glibc serve every block over 256 KiB by mmap, and unmap it on free (``M_MMAP_THRESHOLD``).

    By default glibc raises that threshold each time a large block is freed, so later tensors of the same
    size land in the heap and stay resident after they are freed: the peak RSS of a call then depends on
    what earlier calls left behind (measured: IG at B = 64, 128, 256, 512 gave 121, 215, 215, 152 MiB).
    With a fixed threshold the same calls give 99, 100, 101, 104 MiB, so RSS tracks the live tensors.
    Called by :func:`memory_check` only, after the timings (mmap per block is slower).
    """
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD = -3
    except (OSError, AttributeError):  # not glibc
        pass


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def peak_mib(fn: Callable) -> float:
    """Extra peak memory of one call of ``fn`` in MiB (CUDA allocator peak, or CPU peak RSS)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    _malloc_trim()  # hand freed heap pages back, or a run reusing them would look free
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current RSS
    base = _rss_kib("VmRSS:")
    fn()
    return (_rss_kib("VmHWM:") - base) / 1024


def _time(fn: Callable, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def _ua(b: int, s: int, size: int):
    from captum.attr import IntegratedGradients

    from ualib.attribution.ua_backprop import ua_backprop
    from ualib.posteriors import MCDropout
    from ualib.targets import uncertainty_target

    post = MCDropout(_lenet(dropout=0.3, size=size), num_samples=s, seed=0)
    x = _images(b, s=size)
    ig = IntegratedGradients(uncertainty_target(post, "epistemic"))
    return {
        "UA-Backprop": lambda: ua_backprop(post, x, kind="epistemic"),
        "Captum IG-32 (peer)": lambda: ig.attribute(x, baselines=0.0, n_steps=32, method="riemann_right"),
    }


def _fg(b: int, s: int, size: int):
    ua, peer, _ = setup_fullgrad(False, b=b, s=size)
    return {"FullGrad saliency": ua, "pytorch-grad-cam FullGrad (peer)": peer}


def _gm(b: int, s: int, size: int):
    from benchmarks.suite import setup_grad_vmap

    ua, peer, _ = setup_grad_vmap(False, b=b, size=size)
    return {"gradient metrics (hooks)": ua, "torch.func vmap(grad) (peer)": peer}


#: method family -> (builder(batch, samples, image size), defaults, swept axes with their points)
SWEEPS = {
    "UA-Backprop": (_ua, {"batch": 32, "samples": 10, "image": 28},
                    {"batch": [8, 16, 32, 64], "samples": [5, 10, 20, 40], "image": [28, 36, 44, 56]}),
    "FullGrad": (_fg, {"batch": 4, "samples": 1, "image": 32},
                 {"batch": [2, 4, 8, 16], "image": [32, 48, 64, 96]}),
    "gradient metrics": (_gm, {"batch": 64, "samples": 1, "image": 28},
                         {"batch": [32, 64, 128, 256], "image": [28, 36, 44, 56]}),
}  # fmt: skip


def scaling(*, repeats: int = 2, quick: bool = False, log: Callable[[str], None] = print) -> list[dict]:
    """Rows ``{family, method, axis, value, time_s, peak_mib}`` for every sweep point."""
    rows = []
    for family, (build, defaults, axes) in SWEEPS.items():
        for axis, points in axes.items():
            for v in points[:2] if quick else points:
                p = dict(defaults, **{axis: v})
                fns = build(p["batch"], p["samples"], p["image"])
                for method, fn in fns.items():
                    t = _time(fn, repeats)
                    m = peak_mib(fn)
                    rows.append({"family": family, "method": method, "axis": axis, "value": v, "time_s": t,
                                 "peak_mib": m, "peer": method.endswith("(peer)")})  # fmt: skip
                log(f"  scaling {family:17s} {axis:8s}={v:<4d} " + "  ".join(
                    f"{r['method']}: {r['time_s'] * 1e3:8.1f} ms {r['peak_mib']:7.1f} MiB" for r in rows[-len(fns):]))  # fmt: skip
    return rows


def _memory_cases(quick: bool):
    from ualib.attribution import integrated_gradients
    from ualib.attribution.fullgrad import FullGrad
    from ualib.attribution.ua_backprop import ua_backprop
    from ualib.meta.gradient_metrics import gradient_metrics
    from ualib.posteriors import MCDropout
    from ualib.targets import uncertainty_target

    post = MCDropout(_lenet(dropout=0.3), num_samples=20, seed=0)
    lenet = _lenet()
    fg = FullGrad(resnet18())
    xr = torch.randn(128, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(_device())
    x = _images(2048)
    target = uncertainty_target(post, "epistemic")
    return {
        # name: (fn(batch), the inputs' bytes per item that legitimately grow: input + output + concat)
        "UA-Backprop batch_size=32": (lambda b: ua_backprop(post, x[:b], kind="epistemic", batch_size=32), x[0]),
        "IG-32 batch_size=256 on uncertainty": (lambda b: integrated_gradients(target, x[:b], steps=32, batch_size=256), x[0]),
        "gradient metrics chunk_size=64": (lambda b: gradient_metrics(lenet, x[:b], method="hooks", chunk_size=64), x[0]),
        "FullGrad batch_size=8": (lambda b: fg.saliency(xr[: b // 16], 0, batch_size=8), xr[0]),
    }  # fmt: skip


def memory_check(*, quick: bool = False, log: Callable[[str], None] = print) -> list[dict]:
    """Peak memory at growing batches for the chunked methods; ``ok`` False when it grows faster than allowed.

    With a fixed chunk the work in flight is fixed, so the peak may grow only by what scales with the
    batch by necessity: the inputs, the result and the pieces concatenated into it. Allowed growth from
    the smallest to the largest batch: ``4 x (input bytes per item) x (extra items) + 16 MiB`` (the 16
    MiB absorb allocator and page granularity); a method that materialised all samples x steps x batch at
    once would exceed it many times over.
    """
    batches = [256, 512] if quick else [256, 512, 1024, 2048]
    if not torch.cuda.is_available():
        _fixed_mmap_threshold()
    out = []
    for name, (fn, item) in _memory_cases(quick).items():
        fn(batches[0])  # warm-up
        peaks = [peak_mib(lambda b=b, fn=fn: fn(b)) for b in batches]
        scale = (batches[-1] - batches[0]) / (16 if name.startswith("FullGrad") else 1)
        allowed = peaks[0] + 4 * item.numel() * item.element_size() * scale / 2**20 + 16
        ok = peaks[-1] <= allowed
        out.append({"method": name, "batches": batches, "peak_mib": peaks, "allowed_mib": allowed, "ok": ok})
        log(f"  memory  {name:38s} peaks " + ", ".join(f"B={b}: {p:.1f}" for b, p in zip(batches, peaks))
            + f" MiB; allowed at B={batches[-1]}: {allowed:.1f} MiB  {'OK' if ok else 'FAIL: grows faster than the chunk allows'}")  # fmt: skip
    return out


def memory_check_fresh(*, quick: bool = False, threads: int = 1) -> list[dict]:
    """:func:`memory_check` in a new Python process with ``threads`` torch threads; its log goes to stdout.

    The CPU peak is the process's RSS high-water mark, which tracks the live tensors only in a heap that
    earlier work has not fragmented. After the timings and sweeps of ``python -m benchmarks`` (2 threads,
    thousands of allocations) it did not: on an AMD EPYC 2-CPU machine UA-Backprop read 147, 163, 192,
    192 MiB and gradient metrics 41, 40, 59, 81 MiB at B = 256 ... 2048, failing the check, while a fresh
    process read 83, 84, 86, 89 and 21, 21, 21, 21 MiB at 1 or 2 threads.
    """
    cmd = [sys.executable, "-m", "benchmarks.scaling", "--threads", str(threads)] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the memory check's process failed:\n{proc.stderr[-4000:]}")
    lines = proc.stdout.splitlines()
    for line in lines[:-1]:
        print(line, flush=True)
    return json.loads(lines[-1])


if __name__ == "__main__":  # the fresh process of memory_check_fresh: log lines, then the rows as one JSON line
    import argparse

    parser = argparse.ArgumentParser(description="the bounded-memory check alone, in this process")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(memory_check(quick=args.quick)))
