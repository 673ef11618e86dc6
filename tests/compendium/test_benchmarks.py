"""The benchmark suite's agreement checks run (tiny inputs, never timed) and the appendix page renders."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest
import torch
from conftest import in_ci

from benchmarks.suite import CASES, Agreement, interleaved_best, pearson_min, run_case
from compendium.bench_page import benchmark_page, write_benchmark_page

PEERS = ["captum", "pytorch_grad_cam", "opacus", "torchmetrics", "lime", "sklearn"]
MISSING = [p for p in PEERS if importlib.util.find_spec(p) is None]


def test_bench_extra_is_installed_in_ci():
    """`make env` installs the bench extra; in CI a missing peer is a failure, not a skip."""
    if in_ci():
        assert not MISSING, f"the bench extra is not installed: {MISSING}"


@pytest.mark.skipif(bool(MISSING), reason=f"the optional bench extra is not installed: {MISSING}")
@pytest.mark.parametrize("case", CASES, ids=[f"{c.name} vs {c.peer}" for c in CASES])
def test_case_agrees_on_a_tiny_input(case):
    threads = torch.get_num_threads()
    try:
        result = run_case(case, tiny=True)
    finally:
        torch.set_num_threads(threads)
    assert result.agreement.ok, result.agreement.text()


def test_agreement_and_helpers_can_fail():
    assert not Agreement("x", 2.0, 1.0).ok and Agreement("x", 1.0, 1.0).ok
    a = torch.arange(8.0).view(2, 4)
    assert pearson_min(a, a) == pytest.approx(1.0)
    assert pearson_min(a, -a) == pytest.approx(-1.0)
    calls = []
    ta, tb = interleaved_best(lambda: calls.append("a"), lambda: calls.append("b"), 3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"] and ta >= 0 and tb >= 0


def _doc():
    rows = [
        {"family": "FullGrad", "method": m, "axis": "batch", "value": v, "time_s": 0.01 * v, "peak_mib": 3.0 * v,
         "peer": m.endswith("(peer)")}
        for m in ("FullGrad saliency", "grad-cam (peer)") for v in (2, 4, 8, 16)
    ]  # fmt: skip
    case = {"case": "c|1", "peer": "p", "threads": 1, "t_ualib_s": 0.1, "t_peer_s": 0.2, "ratio": 2.0, "target": 1.2,
            "met": True, "agreement": {"measure": "m", "value": 0.0, "tol": 1e-4}, "agrees": True, "note": ""}  # fmt: skip
    mem = {"method": "m", "batches": [1, 2], "peak_mib": [1.0, 1.5], "allowed_mib": 20.0, "ok": True}
    machine = {"name": "test-machine", "cpu": "cpu", "cpu_count": 2, "gpu": None, "torch": torch.__version__}
    return {"machine": machine, "cases": [case], "scaling": rows, "memory": [mem], "wall_s": 1.0}


def test_benchmark_page_from_json(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "test-machine.json").write_text(json.dumps(_doc()))
    page = write_benchmark_page(tmp_path).read_text()
    assert "## test-machine" in page and "| c\\|1 | p | 1 | 100.0 | 200.0 | 2.00 |" in page
    assert (tmp_path / "book" / "generated" / "bench0-FullGrad.png").stat().st_size > 1000
    assert "No benchmark results" in benchmark_page([], tmp_path)


@pytest.mark.skipif(torch.cuda.is_available() or not os.path.exists("/proc/self/clear_refs"), reason="CPU RSS only")
def test_peak_mib_measures_a_known_allocation_every_time():
    """Peak RSS of a call that holds a 64 MiB tensor reads 64 MiB, also on repeats: after memory_check fixes
    glibc's mmap threshold, freed blocks go back to the system instead of hiding the next call's peak."""
    from benchmarks.scaling import _fixed_mmap_threshold, peak_mib

    _fixed_mmap_threshold()

    def hold():
        t = torch.ones(64 * 2**20 // 4)  # 64 MiB of float32, written so that every page is resident
        return float(t[::4096].sum())

    peaks = [peak_mib(hold) for _ in range(3)]
    assert all(60 <= p <= 72 for p in peaks), peaks
    assert peak_mib(lambda: None) < 4
