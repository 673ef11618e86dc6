"""Results are data: every chapter writes ``results/<profile>/<chapter>.json`` in one shape.

.. code-block:: text

    {"chapter": ..., "profile": ...,
     "metadata": {"commit", "date", "device", "versions", "wall_time_s", "seeds"?,
                  "training": {"trained", "loaded", "train_s", "share", "models": [...]}},
     "metrics": {...},
     "checks": [{"id", "statement", "value", "op", "bound", "holds"}],
     "claims": [{"id", "chapter", "paper", "statement", "statistic", "estimate", "ci", "n", "seeds",
                 "method", "threshold", "direction", "verdict", "reconstruction",
                 "per_seed_estimates"?}]}

Claims are judged by :func:`compendium.claims.judge` (an estimate with a 95 % interval and a verdict
among supported / refuted / inconclusive, threshold and direction from the registry); checks are
implementation properties (:func:`compendium.claims.check`) and never count for a paper.
:func:`write_results` refuses a claim the registry does not define, or whose threshold or direction
differ from the registry's.

``Claim`` / ``check_claim`` (one number against a threshold, pass / fail) remain only for chapters not
yet converted; they are deprecated.
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

__all__ = [
    "Claim",
    "check_claim",
    "write_results",
    "training_summary",
    "read_results",
    "claims_table",
    "environment_metadata",
    "validate_claims",
    "running_times",
    "training_times",
    "format_duration",
    "running_time_line",
    "show_running_time",
]

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


def _threads(k: int) -> str:
    return f"{k} thread" + ("" if k == 1 else "s")


def environment_metadata(
    device: str, wall_time_s: float, train_threads: set[int] | frozenset[int] = frozenset()
) -> dict[str, Any]:
    """Commit, UTC date, device description, library versions and wall time of a run.

    On the CPU the description gives the thread count; ``train_threads`` (the thread counts the run's networks
    were trained or loaded with, from :func:`ualib.training.training_ledger`) is named as well when it is not
    the process's count at the end, as in a chapter that runs its small matrix work on fewer threads.
    """
    import numpy
    import sklearn
    import torch
    import torchvision

    from ualib import __version__

    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = f"cuda ({torch.cuda.get_device_name(0)})"
    else:
        now, nets = torch.get_num_threads(), sorted(int(t) for t in train_threads)
        where = (
            _threads(now)
            if nets in ([], [now])
            else f"networks on {' and '.join(map(_threads, nets))}, the rest on {_threads(now)}"
        )
        dev = f"cpu ({platform.machine()}, {os.cpu_count()} cores, {where})"
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


def validate_claims(chapter: str, claims: list[dict[str, Any]]) -> None:
    """Raise ``ValueError`` if a judged claim is not in the registry or differs from it.

    Checked: the id is registered and belongs to ``chapter``; threshold and direction equal the
    registry's; the verdict is one of the three and follows from interval and threshold; the interval
    contains the estimate.
    """
    from compendium.claims import VERDICTS, registry, verdict

    reg = registry()
    for c in claims:
        cid = c.get("id")
        if cid not in reg:
            raise ValueError(f"claim {cid!r} is not in the registry (compendium/claims.yml)")
        spec = reg[cid]
        if spec.chapter != chapter:
            raise ValueError(f"claim {cid!r} belongs to chapter {spec.chapter!r}, not {chapter!r}")
        if c.get("threshold") is None or float(c["threshold"]) != spec.threshold:
            raise ValueError(
                f"claim {cid!r}: threshold {c.get('threshold')!r} differs from the registry's {spec.threshold!r}"
            )
        if c.get("direction") != spec.direction:
            raise ValueError(
                f"claim {cid!r}: direction {c.get('direction')!r} differs from the registry's {spec.direction!r}"
            )
        if c.get("verdict") not in VERDICTS:
            raise ValueError(f"claim {cid!r}: verdict must be one of {VERDICTS}, got {c.get('verdict')!r}")
        lo, hi = (math.nan if v is None else float(v) for v in c["ci"])
        if c["verdict"] != verdict((lo, hi), spec.direction, spec.threshold):
            raise ValueError(f"claim {cid!r}: verdict {c['verdict']!r} does not follow from interval {c['ci']}")
        est = c.get("estimate")
        if est is not None and not (math.isnan(lo) or lo <= float(est) <= hi):
            raise ValueError(f"claim {cid!r}: interval {c['ci']} does not contain the estimate {est}")


def training_summary(ledger: list[dict[str, Any]], wall_time_s: float) -> dict[str, Any]:
    """How much of a run went into training: the models trained and loaded from the cache, the seconds
    spent training (``train_s``), their ``share`` of the wall time, and the ``models`` themselves (the
    entries of :func:`ualib.training.training_ledger`)."""
    train_s = sum(float(e["train_seconds"]) for e in ledger)
    wall = float(wall_time_s)
    return {
        "trained": sum(1 for e in ledger if not e["cache_hit"]),
        "loaded": sum(1 for e in ledger if e["cache_hit"]),
        "train_s": round(train_s, 1),
        "share": round(train_s / wall, 3) if wall > 0 else None,
        "models": [dict(e) for e in ledger],
    }


def write_results(
    chapter: str,
    profile: str,
    metrics: dict[str, Any],
    claims: list[Any],
    checks: list[Any] | None = None,
    *,
    device: str,
    wall_time_s: float,
    seeds: list[int] | None = None,
    root: str | os.PathLike | None = None,
) -> Path:
    """Write ``<root>/<profile>/<chapter>.json`` atomically and return its path.

    Parameters
    ----------
    claims : list of ClaimResult
        Judged claims (:func:`compendium.claims.judge`); validated against the registry. Deprecated
        :class:`Claim` objects are still accepted for chapters not yet converted.
    checks : list of Check, optional
        Implementation checks (:func:`compendium.claims.check`), stored apart from the claims.
    seeds : list of int, optional
        The training seeds of the run, stored in ``metadata["seeds"]``.

    ``metadata["training"]`` records every model this process trained or loaded
    (:func:`training_summary` of :func:`ualib.training.training_ledger`): a chapter runs in one kernel, so
    these are the chapter's models, and ``train_s`` / ``share`` say how much of its time went into training.

    Raises
    ------
    ValueError
        No claims; a claim not in the registry or with another threshold / direction; a check that is
        not a :class:`~compendium.claims.Check`.
    """
    from compendium.claims import Check
    from ualib.training import training_ledger

    if not claims:
        raise ValueError("a results file needs at least one claim")
    claim_dicts = [_jsonable(c.to_dict()) for c in claims]
    judged = [c for c in claim_dicts if "verdict" in c]
    validate_claims(chapter, judged)
    checks = list(checks or [])
    for c in checks:
        if not isinstance(c, Check):
            raise ValueError(f"checks must be compendium.claims.Check objects, got {type(c).__name__}")
    ids = [c["id"] for c in claim_dicts] + [c.id for c in checks]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate claim/check ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    ledger = training_ledger()
    meta = environment_metadata(device, wall_time_s, {e["threads"] for e in ledger if "threads" in e})
    if seeds is not None:
        meta["seeds"] = [int(x) for x in seeds]
    meta["training"] = training_summary(ledger, wall_time_s)
    doc = {
        "chapter": chapter,
        "profile": profile,
        "metadata": meta,
        "metrics": _jsonable(metrics),
        "checks": [_jsonable(c.to_dict()) for c in checks],
        "claims": claim_dicts,
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


def _fmt(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{float(x):.4g}"


def claims_table(claims: list[Any]):
    """A ``pandas.DataFrame`` of judged claims for display, verdict first.

    Columns: verdict, estimate, 95 % CI, threshold (with the claimed direction), n, seeds, claim.
    Accepts :class:`~compendium.claims.ClaimResult` objects or their dicts (deprecated
    :class:`Claim` objects are shown with "pass" / "FAIL").
    """
    import pandas as pd

    rows = []
    for c in claims:
        d = c if isinstance(c, dict) else c.to_dict()
        if "verdict" not in d:  # deprecated one-number claim
            rows.append(
                {
                    "verdict": "pass" if d["passed"] else "FAIL",
                    "estimate": _fmt(d["measured"]),
                    "95 % CI": "–",
                    "threshold": f"{d['op']} {d['threshold']:g}",
                    "n": "–",
                    "seeds": "–",
                    "claim": d["statement"],
                }
            )
            continue
        lo, hi = d["ci"]
        rows.append(
            {
                "verdict": d["verdict"],
                "estimate": _fmt(d["estimate"]),
                "95 % CI": f"[{_fmt(lo)}, {_fmt(hi)}]",
                "threshold": f"{d['direction']} {d['threshold']:g}",
                "n": int(d["n"]),
                "seeds": ", ".join(str(s) for s in d["seeds"]),
                "claim": d["statement"],
            }
        )
    return pd.DataFrame(rows, columns=["verdict", "estimate", "95 % CI", "threshold", "n", "seeds", "claim"])


#: where the committed run of each profile keeps its results (relative to the checkout): the tiny
#: reference the tests compare with, and the reference runs under results/
_COMMITTED = {"tiny": ("tests", "reference", "tiny"), "cpu": ("results", "cpu"), "gpu": ("results", "gpu")}


def _committed_metadata(chapter: str, root: str | os.PathLike | None) -> dict[str, dict[str, Any] | None]:
    """The ``metadata`` of the committed results of ``chapter`` per profile (:data:`_COMMITTED`); ``None``
    where there is no such file."""
    base = Path(root) if root is not None else repo_root()
    out: dict[str, dict[str, Any] | None] = {}
    for profile, parts in _COMMITTED.items():
        path = None if base is None else base.joinpath(*parts, f"{chapter}.json")
        out[profile] = json.loads(path.read_text()).get("metadata", {}) if path is not None and path.is_file() else None
    return out


def running_times(chapter: str, root: str | os.PathLike | None = None) -> dict[str, float | None]:
    """Wall time in seconds of the committed run of ``chapter`` in each profile, read from its results'
    ``metadata.wall_time_s``: ``tiny`` from ``tests/reference/tiny``, ``cpu`` and ``gpu`` from
    ``results/<profile>``; ``None`` for a profile with no committed results file (or no recorded time).

    ``root`` is the checkout (default: the one ``ualib`` runs from). ``UALIB_RESULTS`` is ignored on
    purpose: a chapter states the time of the committed runs, not of a scratch run.
    """
    return {p: _wall(meta) for p, meta in _committed_metadata(chapter, root).items()}


def _wall(meta: dict[str, Any] | None) -> float | None:
    wall = None if meta is None else meta.get("wall_time_s")
    return None if wall is None else float(wall)


def _train_s(meta: dict[str, Any] | None) -> float | None:
    training = None if meta is None else meta.get("training")
    return None if not training else float(training["train_s"])


def format_duration(seconds: float) -> str:
    """``42 s``, ``2 min 03 s``, ``1 h 05 min``: a wall time as a reader says it (rounded to the second)."""
    s = round(float(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def training_times(chapter: str, root: str | os.PathLike | None = None) -> dict[str, float | None]:
    """Seconds of model training in the committed run of ``chapter`` per profile (``metadata.training.train_s``,
    :func:`training_summary`); ``None`` where there is no such file or it predates the record."""
    return {p: _train_s(meta) for p, meta in _committed_metadata(chapter, root).items()}


def running_time_line(chapter: str, root: str | os.PathLike | None = None) -> str:
    """One Markdown line: the chapter's running time per profile (:func:`running_times`), "not yet run"
    where a profile has no committed results, and the time spent training models where the run recorded
    it (:func:`training_times`; 0 s when every model came from the cache)."""
    parts = []
    for profile, meta in _committed_metadata(chapter, root).items():
        t, train_s = _wall(meta), _train_s(meta)
        text = f"`{profile}` {'not yet run' if t is None else format_duration(t)}"
        if t is not None and train_s is not None:
            text += f" (training {format_duration(train_s)})"
        parts.append(text)
    return (
        "**Running time** (wall time of the committed runs, from their results' metadata): " + " · ".join(parts) + "."
    )


def show_running_time(chapter: str, root: str | os.PathLike | None = None) -> None:
    """Display :func:`running_time_line` as Markdown in a notebook (the book renders it as text)."""
    from IPython.display import Markdown, display

    display(Markdown(running_time_line(chapter, root)))
