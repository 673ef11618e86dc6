"""Results are data: every chapter writes ``results/<profile>/<chapter>.json`` in one shape.

.. code-block:: text

    {"chapter": ..., "profile": ...,
     "metadata": {"commit", "date", "device", "versions", "wall_time_s"},
     "metrics": {...},
     "claims": [{"id", "paper", "statement", "measured", "threshold", "passed", "reconstruction"}]}

A claim is judged on one measured number against a threshold; ``passed`` is a boolean computed
here, never typed in by hand, so a claim that fails on a run is reported as failing.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ualib._paths import repo_root, results_dir

__all__ = ["Claim", "check_claim", "write_results", "read_results", "claims_table", "environment_metadata"]

_OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


@dataclass(frozen=True)
class Claim:
    """One checked claim: ``passed = measured <op> threshold``."""

    id: str
    paper: str
    statement: str
    measured: float
    threshold: float
    op: str
    passed: bool
    reconstruction: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_claim(
    id: str,
    statement: str,
    measured: float,
    op: Literal[">", ">=", "<", "<="],
    threshold: float,
    *,
    paper: str,
    reconstruction: bool = False,
) -> Claim:
    """Judge ``measured <op> threshold`` and return the :class:`Claim` (a NaN measurement fails)."""
    if op not in _OPS:
        raise ValueError(f"op must be one of {list(_OPS)}, got {op!r}")
    m = float(measured)
    passed = (not math.isnan(m)) and bool(_OPS[op](m, float(threshold)))
    return Claim(id, paper, statement, m, float(threshold), op, passed, reconstruction)


def _git_commit() -> str:
    root = repo_root()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root or ".", capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def environment_metadata(device: str, wall_time_s: float) -> dict[str, Any]:
    """Commit, UTC date, device description, library versions and wall time of a run."""
    import numpy
    import sklearn
    import torch
    import torchvision

    from ualib import __version__

    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = f"cuda ({torch.cuda.get_device_name(0)})"
    else:
        dev = f"cpu ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    return {
        "commit": _git_commit(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "device": dev,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__,
            "ualib": __version__,
        },
        "wall_time_s": round(float(wall_time_s), 1),
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return _jsonable(obj.tolist())
    if isinstance(obj, float):
        # six significant digits: a completeness error of 3e-7 must not be stored as 0
        return None if math.isnan(obj) else float(f"{obj:.6g}")
    return obj


def write_results(
    chapter: str,
    profile: str,
    metrics: dict[str, Any],
    claims: list[Claim],
    *,
    device: str,
    wall_time_s: float,
    root: str | os.PathLike | None = None,
) -> Path:
    """Write ``<root>/<profile>/<chapter>.json`` atomically and return its path."""
    if not claims:
        raise ValueError("a results file needs at least one claim")
    doc = {
        "chapter": chapter,
        "profile": profile,
        "metadata": environment_metadata(device, wall_time_s),
        "metrics": _jsonable(metrics),
        "claims": [_jsonable(c.to_dict()) for c in claims],
    }
    folder = Path(root) if root is not None else results_dir()
    path = folder / profile / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_results(chapter: str, profile: str, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Load a results file written by :func:`write_results`."""
    folder = Path(root) if root is not None else results_dir()
    return json.loads((folder / profile / f"{chapter}.json").read_text())


def claims_table(claims: list[Claim]):
    """A ``pandas.DataFrame`` of claims for display (rounded numbers, pass / FAIL)."""
    import pandas as pd

    rows = [
        {
            "claim": c.statement,
            "measured": f"{c.measured:.4g}",
            "criterion": f"{c.op} {c.threshold:g}",
            "result": "pass" if c.passed else "FAIL",
            "reconstruction": "yes" if c.reconstruction else "no",
        }
        for c in claims
    ]
    return pd.DataFrame(rows)
