"""``python -m benchmarks``: every case of :mod:`benchmarks.suite`, the scaling sweeps and the memory check.

    python -m benchmarks [--threads 1,2] [--repeats 5] [--quick] [--no-scaling] [--out PATH]

One line per case: ualib time, peer time, ratio (peer / ualib, > 1: ualib faster; best of ``--repeats``
interleaved runs after a warm-up), target and agreement. Cheap cases run at every thread count,
the costly ones (FullGrad, LIME, the reference loop) at the first only. The results, with the machine's
description, go to ``benchmarks/results/<machine>.json`` (the book's appendix plots them). Exit status 1
when an agreement check or the memory check fails; a missed speed target is reported with its reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch

from benchmarks.scaling import memory_check_fresh, scaling
from benchmarks.suite import CASES, run_case

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "name": re.sub(r"[^A-Za-z0-9_.-]+", "-", (gpu or cpu or platform.node()).strip())[:60]
        + f"-{os.cpu_count()}cpu",
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (default 1,2)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 points per sweep, 2 batches in the memory check")
    ap.add_argument("--no-scaling", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/<machine>.json)")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    info = machine()
    t0 = time.perf_counter()
    print(f"machine {info['name']}: {info['cpu']}, {info['cpu_count']} CPUs, GPU {info['gpu']}, torch {info['torch']}")
    print("ratio = peer time / ualib time (> 1: ualib faster), best of", args.repeats, "interleaved runs")
    print(f"{'case':44s} {'peer':42s} {'thr':>3s} {'ualib':>9s} {'peer':>9s} {'ratio':>6s}  target  agreement")
    cases, failed = [], False
    for case in CASES:
        for n in threads if case.cheap else threads[:1]:
            r = run_case(case, repeats=args.repeats, threads=n)
            met = r.ratio >= r.target
            failed |= not r.agreement.ok
            print(f"{r.name[:44]:44s} {r.peer[:42]:42s} {n:3d} {r.t_ualib * 1e3:7.1f}ms {r.t_peer * 1e3:7.1f}ms "
                  f"{r.ratio:6.2f}  {'>=' if met else '< '}{r.target:.1f}  {r.agreement.text()}")  # fmt: skip
            if r.note:
                print(f"    note: {r.note}")
            cases.append(r.as_dict())
    torch.set_num_threads(threads[0])
    rows = [] if args.no_scaling else scaling(quick=args.quick)
    memory = memory_check_fresh(quick=args.quick, threads=threads[0])
    failed |= not all(m["ok"] for m in memory)
    out = args.out or RESULTS / f"{info['name']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"machine": info, "threads": threads, "repeats": args.repeats, "cases": cases, "scaling": rows,
           "memory": memory, "wall_s": time.perf_counter() - t0}  # fmt: skip
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out} ({doc['wall_s']:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
