"""The claims engine: every verdict carries its own uncertainty.

A *claim* tests something a paper states (or a labelled extension). It is defined once, before any
run, in the registry ``compendium/claims.yml`` (paper, the paper's wording with its source tag, the
statistic, the claimed direction, the threshold and where that number comes from, the interval
method). A notebook computes per-input arrays; :func:`judge` estimates the statistic on the full data,
puts a seeded 95 % percentile-bootstrap interval around it and returns one of three verdicts:

``supported``
    the whole interval lies on the claimed side of the threshold;
``refuted``
    the whole interval lies on the other side;
``inconclusive``
    otherwise (the interval contains the threshold, or the estimate is undefined).

Thresholds and directions are taken from the registry only, never from the notebook.

Three resampling schemes:

* **paired** (``judge(id, stat, a, b)``): the arrays share their first (input) axis and are resampled
  jointly, so per-input correlation between ``a`` and ``b`` is kept (a difference of two methods'
  scores on the same inputs);
* **strata** (``strata=[(id_scores,), (ood_scores,)]``): each tuple is resampled independently, for
  two-sample statistics such as an AUROC between two test sets;
* **per_seed** (``per_seed=[(a0, b0), (a1, b1), ...]``): a hierarchical bootstrap over independently
  trained models — resample the seeds with replacement, then the inputs within each drawn seed; the
  estimate is the mean over seeds of the statistic of each seed (Davison & Hinkley 1997, §3.8;
  Field & Welsh 2007). An entry may itself be a list of tuples (strata within that seed).

An *implementation check* (an identity, completeness, memory independent of N) is built by
:func:`check`; it is recorded apart and never counts as reproducing a paper.

References
----------
Efron, B. & Tibshirani, R. (1993). *An Introduction to the Bootstrap*, ch. 13 (percentile interval).
Davison, A. C. & Hinkley, D. V. (1997). *Bootstrap Methods and their Application*, §3.8 (hierarchical data).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "REGISTRY_PATH",
    "VERDICTS",
    "INTERVALS",
    "ClaimSpec",
    "ClaimResult",
    "Check",
    "registry",
    "load_registry",
    "unchecked",
    "papers",
    "judge",
    "judge_interval",
    "bootstrap",
    "check",
    "verdict",
    "glue_texts",
    "glue",
]

REGISTRY_PATH = Path(__file__).with_name("claims.yml")

VERDICTS = ("supported", "refuted", "inconclusive")
INTERVALS = ("bootstrap", "seeds", "seeds+bootstrap", "repeats")
_DIRECTIONS = (">", "<")
_REQUIRED = ("paper", "wording", "source", "statistic", "direction", "threshold", "threshold_source", "interval")


@dataclass(frozen=True)
class ClaimSpec:
    """One pre-registered claim of the registry.

    Attributes
    ----------
    id : str
        ``"<chapter>.<name>"``.
    chapter : str
        The chapter (notebook stem) that judges it.
    paper : str
        Key in the registry's ``papers`` (or ``"background"`` / ``"extension"``).
    wording : str
        The paper's words the claim tests, or ``"extension: ..."``.
    source : str
        Source tag, e.g. ``"[READ] Wang et al. 2023 §4.2"`` or ``"[INF] ..."``.
    statistic : str
        What is estimated, in words.
    direction : {">", "<"}
        The claimed side of the threshold.
    threshold : float
        The threshold or margin.
    threshold_source : str
        Where the threshold comes from.
    interval : {"bootstrap", "seeds", "seeds+bootstrap", "repeats"}
        How the interval is obtained.
    reconstruction : bool
        True when the method tested is a reconstruction ([INF] in METHODS.md).
    """

    id: str
    chapter: str
    paper: str
    wording: str
    source: str
    statistic: str
    direction: str
    threshold: float
    threshold_source: str
    interval: str
    reconstruction: bool = False


@dataclass(frozen=True)
class ClaimResult:
    """A judged claim; see :func:`judge`. ``to_dict()`` is what a results file stores."""

    spec: ClaimSpec
    estimate: float
    ci: tuple[float, float]
    n: int
    seeds: tuple[int, ...]
    method: str
    verdict: str
    #: the statistic on each training seed's data alone (hierarchical judgements only), in the order of ``seeds``
    per_seed: tuple[float, ...] = ()

    @property
    def id(self) -> str:
        return self.spec.id

    def to_dict(self) -> dict[str, Any]:
        s = self.spec
        return {
            "id": s.id,
            "chapter": s.chapter,
            "paper": s.paper,
            "statement": s.wording,
            "statistic": s.statistic,
            "estimate": _num(self.estimate),
            "ci": [_num(self.ci[0]), _num(self.ci[1])],
            "n": int(self.n),
            "seeds": [int(x) for x in self.seeds],
            "method": self.method,
            "threshold": float(s.threshold),
            "direction": s.direction,
            "verdict": self.verdict,
            "reconstruction": bool(s.reconstruction),
            **({"per_seed_estimates": [_num(x) for x in self.per_seed]} if self.per_seed else {}),
        }


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Check:
    """An implementation property (identity, completeness, ...): ``holds = value <op> bound``."""

    id: str
    statement: str
    value: float
    op: str
    bound: float
    holds: bool = field(default=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "statement": self.statement,
            "value": _num(self.value),
            "op": self.op,
            "bound": float(self.bound),
            "holds": bool(self.holds),
        }


def _num(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


# --------------------------------------------------------------------------------------------- registry


def load_registry(path: str | Path | None = None) -> dict[str, Any]:
    """Parse and validate a registry file; returns ``{"papers", "claims": {id: ClaimSpec}, "unchecked"}``.

    Raises
    ------
    ValueError
        On a missing field, an unknown paper, a direction other than ``>``/``<``, a non-numeric threshold,
        an unknown interval method or an id not of the form ``<chapter>.<name>``.
    """
    import yaml

    p = Path(path) if path is not None else REGISTRY_PATH
    doc = yaml.safe_load(p.read_text()) or {}
    paper_keys = dict(doc.get("papers") or {})
    known_papers = set(paper_keys) | {"background", "extension"}
    specs: dict[str, ClaimSpec] = {}
    for cid, entry in (doc.get("claims") or {}).items():
        if not isinstance(entry, dict):
            raise ValueError(f"{p.name}: claim {cid!r} must be a mapping")
        chapter, dot, name = str(cid).partition(".")
        if not dot or not name or not chapter[:2].isdigit():
            raise ValueError(f"{p.name}: claim id {cid!r} must be '<chapter>.<name>' (e.g. '02_ua_backprop.x')")
        missing = [k for k in _REQUIRED if k not in entry]
        if missing:
            raise ValueError(f"{p.name}: claim {cid!r} lacks {missing}")
        if entry["paper"] not in known_papers:
            raise ValueError(
                f"{p.name}: claim {cid!r} names unknown paper {entry['paper']!r}; known: {sorted(known_papers)}"
            )
        if entry["direction"] not in _DIRECTIONS:
            raise ValueError(f"{p.name}: claim {cid!r}: direction must be '>' or '<', got {entry['direction']!r}")
        if entry["interval"] not in INTERVALS:
            raise ValueError(f"{p.name}: claim {cid!r}: interval must be one of {INTERVALS}, got {entry['interval']!r}")
        try:
            thr = float(entry["threshold"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{p.name}: claim {cid!r}: threshold must be a number, got {entry['threshold']!r}"
            ) from None
        if math.isnan(thr):
            raise ValueError(f"{p.name}: claim {cid!r}: threshold is NaN")
        specs[cid] = ClaimSpec(
            id=cid,
            chapter=chapter,
            paper=str(entry["paper"]),
            wording=str(entry["wording"]).strip(),
            source=str(entry["source"]).strip(),
            statistic=str(entry["statistic"]).strip(),
            direction=entry["direction"],
            threshold=thr,
            threshold_source=str(entry["threshold_source"]).strip(),
            interval=entry["interval"],
            reconstruction=bool(entry.get("reconstruction", False)),
        )
    unchecked_list = list(doc.get("unchecked") or [])
    for item in unchecked_list:
        if not isinstance(item, dict) or not {"paper", "claim", "reason"} <= set(item):
            raise ValueError(f"{p.name}: every 'unchecked' entry needs paper, claim and reason; got {item!r}")
        if item["paper"] not in known_papers:
            raise ValueError(f"{p.name}: unchecked entry names unknown paper {item['paper']!r}")
    return {"papers": paper_keys, "claims": specs, "unchecked": unchecked_list}


@functools.lru_cache(maxsize=4)
def _cached(path: str) -> dict[str, Any]:
    return load_registry(path)


def registry(path: str | Path | None = None) -> dict[str, ClaimSpec]:
    """All pre-registered claims, ``id -> ClaimSpec``, from ``compendium/claims.yml`` (cached)."""
    return _cached(str(Path(path) if path is not None else REGISTRY_PATH))["claims"]


def papers(path: str | Path | None = None) -> dict[str, str]:
    """The registry's papers, ``key -> full reference``."""
    return _cached(str(Path(path) if path is not None else REGISTRY_PATH))["papers"]


def unchecked(path: str | Path | None = None) -> list[dict[str, str]]:
    """The papers' claims no chapter checks, each ``{"paper", "claim", "reason"}``."""
    return _cached(str(Path(path) if path is not None else REGISTRY_PATH))["unchecked"]


def _spec(id: str, spec: ClaimSpec | None) -> ClaimSpec:
    if spec is not None:
        if spec.id != id:
            raise ValueError(f"spec.id {spec.id!r} differs from id {id!r}")
        return spec
    reg = registry()
    if id not in reg:
        raise KeyError(f"claim {id!r} is not in the registry {REGISTRY_PATH.name}; register it there first")
    return reg[id]


# --------------------------------------------------------------------------------------------- verdicts


def verdict(ci: tuple[float, float], direction: str, threshold: float) -> str:
    """``supported`` / ``refuted`` / ``inconclusive`` from an interval and the claimed side of a threshold.

    A NaN bound, or an interval touching the threshold, is ``inconclusive``.
    """
    lo, hi = float(ci[0]), float(ci[1])
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be '>' or '<', got {direction!r}")
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if lo > hi:
        raise ValueError(f"interval ({lo}, {hi}) has lo > hi")
    if direction == ">":
        return "supported" if lo > threshold else "refuted" if hi < threshold else "inconclusive"
    return "supported" if hi < threshold else "refuted" if lo > threshold else "inconclusive"


def _as_array(a: Any, what: str) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.ndim == 0:
        raise ValueError(f"{what} must have an input axis first; got a scalar")
    if arr.dtype == object:
        raise TypeError(f"{what} must be a numeric array, got dtype object")
    return arr


def _group(arrays: Sequence[Any], what: str) -> tuple[np.ndarray, ...]:
    if not isinstance(arrays, (tuple, list)) or len(arrays) == 0:
        raise TypeError(f"{what} must be a non-empty tuple of per-input arrays")
    out = tuple(_as_array(a, what) for a in arrays)
    n = {len(a) for a in out}
    if len(n) != 1:
        raise ValueError(f"{what}: arrays resampled jointly must share their first axis, got lengths {sorted(n)}")
    if out[0].shape[0] < 2:
        raise ValueError(f"{what}: need at least 2 inputs to bootstrap, got {out[0].shape[0]}")
    return out


def _strata(entry: Any, what: str) -> list[tuple[np.ndarray, ...]]:
    """A seed's data: one tuple (paired) or a list of tuples (strata)."""
    if isinstance(entry, list) and entry and all(isinstance(t, tuple) for t in entry):
        return [_group(t, f"{what}[{i}]") for i, t in enumerate(entry)]
    return [_group(entry, what)]


def _apply(statistic: Callable[..., float], strata: list[tuple[np.ndarray, ...]], idx=None) -> float:
    args: list[np.ndarray] = []
    for k, group in enumerate(strata):
        if idx is None:
            args.extend(group)
        else:
            args.extend(a[idx[k]] for a in group)
    return float(statistic(*args))


def _draw(rng: np.random.Generator, strata: list[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
    return [rng.integers(0, len(g[0]), len(g[0])) for g in strata]


def _percentile_ci(stats: np.ndarray, estimate: float) -> tuple[float, float]:
    ok = stats[np.isfinite(stats)]
    if math.isnan(estimate) or ok.size < 0.95 * stats.size:
        return (math.nan, math.nan)
    lo, hi = np.percentile(ok, [2.5, 97.5])
    # the interval is reported around the full-data estimate: widen it to contain it if it does not
    return (float(min(lo, estimate)), float(max(hi, estimate)))


def judge(
    id: str,
    statistic: Callable[..., float],
    *samples: Any,
    strata: Sequence[tuple[Any, ...]] | None = None,
    per_seed: Sequence[Any] | None = None,
    seeds: Sequence[int] = (0,),
    n_resamples: int = 2000,
    seed: int = 0,
    spec: ClaimSpec | None = None,
) -> ClaimResult:
    """Judge the registered claim ``id`` on per-input data with a seeded 95 % percentile bootstrap.

    Parameters
    ----------
    id : str
        Registry id ``"<chapter>.<name>"``; threshold, direction and wording come from the registry.
    statistic : callable
        ``statistic(*arrays) -> float``; receives NumPy arrays (torch tensors are converted) resampled
        along their first axis, in the order given (all strata in order).
    *samples : array_like, each ``[N, ...]``
        Per-input arrays resampled jointly (paired bootstrap).
    strata : list of tuples of arrays, optional
        Instead of ``samples``: groups resampled independently (unpaired / two-sample statistics).
    per_seed : list, optional
        Instead of ``samples``/``strata``: one entry per trained seed, each a tuple of per-input arrays
        (or a list of tuples = strata). Hierarchical bootstrap: seeds with replacement, then inputs.
        The estimate is the mean over seeds of the per-seed statistic.
    seeds : sequence of int
        The training seeds the data come from (recorded; one per ``per_seed`` entry).
    n_resamples : int
        Bootstrap resamples (at least 1000).
    seed : int
        Seed of the resampling generator (the interval is reproducible).
    spec : ClaimSpec, optional
        Judge against this spec instead of the registry's (tests); ``spec.id`` must equal ``id``.

    Returns
    -------
    ClaimResult
        ``estimate`` (statistic on the full data), ``ci`` (contains the estimate), ``n`` (inputs, summed
        over strata; per seed for ``per_seed``), ``seeds``, ``method``, ``verdict``; with ``per_seed``, also
        each seed's own statistic (``per_seed``, stored as ``per_seed_estimates``: the seed-to-seed spread).

    Raises
    ------
    KeyError
        ``id`` is not registered.
    ValueError
        No data or more than one of ``samples``/``strata``/``per_seed``; arrays of a jointly resampled
        group of different lengths; fewer than 1000 resamples; ``seeds`` not matching ``per_seed``; the
        registry's interval method not matching the data given.
    """
    s = _spec(id, spec)
    given = sum(x is not None and (not isinstance(x, tuple) or len(x) > 0) for x in (samples, strata, per_seed))
    if given != 1:
        raise ValueError("give exactly one of: per-input arrays (*samples), strata=, per_seed=")
    if int(n_resamples) < 1000:
        raise ValueError(f"n_resamples must be at least 1000, got {n_resamples}")
    if not callable(statistic):
        raise TypeError("statistic must be callable(*arrays) -> float")
    seeds = tuple(int(x) for x in seeds)
    rng = np.random.default_rng(seed)
    B = int(n_resamples)

    if per_seed is None:
        if s.interval != "bootstrap":
            raise ValueError(
                f"claim {id!r} is registered with interval {s.interval!r}; per-input data gives 'bootstrap'"
            )
        groups = [_group(samples, "samples")] if samples else [_group(t, f"strata[{i}]") for i, t in enumerate(strata)]
        if strata is not None and not all(isinstance(t, tuple) for t in strata):
            raise TypeError("strata must be a list of tuples of arrays")
        est = _apply(statistic, groups)
        stats = np.array([_apply(statistic, groups, _draw(rng, groups)) for _ in range(B)])
        n = sum(len(g[0]) for g in groups)
        method = f"{'paired' if samples else 'stratified'} percentile bootstrap over inputs ({B} resamples)"
    else:
        if s.interval not in ("seeds", "seeds+bootstrap"):
            raise ValueError(f"claim {id!r} is registered with interval {s.interval!r}; per_seed= gives seeds")
        per = [_strata(e, f"per_seed[{i}]") for i, e in enumerate(per_seed)]
        if len(seeds) != len(per):
            raise ValueError(f"seeds has {len(seeds)} entries but per_seed has {len(per)}: pass seeds=[...]")
        per_est = np.array([_apply(statistic, g) for g in per])
        est = float(per_est.mean())
        stats = np.empty(B)
        for b in range(B):
            pick = rng.integers(0, len(per), len(per)) if len(per) > 1 else np.zeros(1, dtype=int)
            if s.interval == "seeds":
                stats[b] = per_est[pick].mean()
            else:
                stats[b] = np.mean([_apply(statistic, per[j], _draw(rng, per[j])) for j in pick])
        n = sum(len(g[0]) for g in per[0])
        how = "seeds" if s.interval == "seeds" else "seeds, then inputs"
        method = f"hierarchical percentile bootstrap ({how}; {len(per)} seed(s), {B} resamples)"
    ci = _percentile_ci(stats, est)
    per_seed_est = () if per_seed is None else tuple(float(x) for x in per_est)
    return ClaimResult(s, est, ci, n, seeds, method, verdict(ci, s.direction, s.threshold), per_seed_est)


def bootstrap(
    statistic: Callable[..., float], *samples: Any, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """A statistic of per-input arrays with its seeded 95 % percentile-bootstrap interval, no verdict.

    The same paired resampling as :func:`judge` (``samples`` share their first axis and are drawn
    jointly), for a number a figure or table shows with its interval but that is not a registered
    claim (each method's own mean AUC-URR, say, where the claims test differences). Returns
    ``(estimate, (lo, hi))``; the interval is NaN when the estimate is, or when more than 5 % of the
    resamples give a non-finite statistic.
    """
    if int(n_resamples) < 1000:
        raise ValueError(f"n_resamples must be at least 1000, got {n_resamples}")
    groups = [_group(samples, "samples")]
    rng = np.random.default_rng(seed)
    est = _apply(statistic, groups)
    stats = np.array([_apply(statistic, groups, _draw(rng, groups)) for _ in range(int(n_resamples))])
    return est, _percentile_ci(stats, est)


def judge_interval(
    id: str,
    estimate: float,
    ci: tuple[float, float],
    *,
    n: int,
    seeds: Sequence[int] = (0,),
    method: str = "repeats",
    spec: ClaimSpec | None = None,
) -> ClaimResult:
    """Judge ``id`` on an interval computed elsewhere (e.g. the spread of repeated timings).

    Raises
    ------
    ValueError
        ``ci`` does not contain ``estimate`` or ``n < 1``.
    """
    s = _spec(id, spec)
    est, lo, hi = float(estimate), float(ci[0]), float(ci[1])
    if not (math.isnan(est) or math.isnan(lo) or math.isnan(hi)) and not lo <= est <= hi:
        raise ValueError(f"interval ({lo}, {hi}) does not contain the estimate {est}")
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    c = (lo, hi) if not math.isnan(est) else (math.nan, math.nan)
    return ClaimResult(
        s, est, c, int(n), tuple(int(x) for x in seeds), str(method), verdict(c, s.direction, s.threshold)
    )


def check(id: str, statement: str, *, value: float, op: str, bound: float) -> Check:
    """An implementation check ``value <op> bound`` (a NaN value does not hold). Never a paper claim."""
    if op not in _OPS:
        raise ValueError(f"op must be one of {list(_OPS)}, got {op!r}")
    v = float(value)
    return Check(str(id), str(statement), v, op, float(bound), (not math.isnan(v)) and bool(_OPS[op](v, float(bound))))


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def glue_texts(
    claims: Sequence[ClaimResult] = (), checks: Sequence[Check] = (), *, chapter: str | None = None
) -> dict[str, str]:
    """The texts a chapter's Discussion quotes, keyed by id: so that a rerun cannot leave old numbers in prose.

    For each claim ``<id>``: ``"estimate (95 % CI lo to hi)"``, ``<id>.verdict`` and ``<id>.n`` (its sample
    size); for each check: its value. Three significant digits, as in the results tables. With ``chapter``,
    every registered claim of that chapter that was not judged in this run (a profile that skips CIFAR-10,
    say) gets ``"not run in this profile"`` and the verdict ``"not judged"``, so the prose still builds.
    """
    out: dict[str, str] = {}
    if chapter is not None:
        for cid, spec in registry().items():
            if spec.chapter == chapter:
                out.update({cid: "not run in this profile", cid + ".verdict": "not judged", cid + ".n": "0"})
    for c in claims:
        d = c.to_dict()
        lo, hi = d["ci"]
        out[d["id"]] = f"{_fmt(d['estimate'])} (95 % CI {_fmt(lo)} to {_fmt(hi)})"
        out[d["id"] + ".verdict"] = str(d["verdict"])
        out[d["id"] + ".n"] = f"{int(d['n']):,}"
    for k in checks:
        out[k.id] = _fmt(k.value)
    return out


def glue(
    claims: Sequence[ClaimResult] = (),
    checks: Sequence[Check] = (),
    values: dict[str, Any] | None = None,
    *,
    chapter: str | None = None,
) -> dict[str, str]:
    """myst-nb ``glue`` every text of :func:`glue_texts` (and each ``values`` entry) without displaying it.

    The Discussion then writes ``{glue:text}`<chapter>.<name>``` and ``...verdict``. Returns the glued texts.
    """
    from myst_nb import glue as _glue

    texts = glue_texts(claims, checks, chapter=chapter)
    texts.update({str(k): str(v) for k, v in (values or {}).items()})
    for key, text in texts.items():
        _glue(key, text, display=False)
    return texts
