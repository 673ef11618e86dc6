"""Compare a rerun's results with a reference: numbers within written-down tolerances, verdicts where they mean it.

Training is bit-identical only on the same machine with the same settings (CPU instruction set, thread
count, library versions): oneDNN/MKL pick kernels by ISA and reductions depend on the thread count, so a
rerun elsewhere trains slightly different models. This module says whether a results tree
(``results/<profile>/<chapter>.json``, see :mod:`compendium.results`) agrees with a reference tree:

* every number in ``metrics`` and every claim estimate is compared with the tolerance of the first rule
  in ``compendium/tolerances.yml`` whose pattern matches ``<chapter>:<path>`` (``fnmatch``; the path is
  ``metrics/<key>/<key>/...`` or ``claims/<id>``); each rule carries its justification;
* strings, booleans and the structure (which keys exist) are compared exactly, unless a rule skips them;
* a claim's verdict (``passed`` in the old shape, ``verdict`` in the shape of ``CLAIMS_SPEC``) is compared
  only when the reference estimate is farther from the threshold than the tolerance: a claim measured
  within noise of its threshold may legitimately flip;
* ``checks`` (implementation properties: identities, completeness) must agree exactly on ``holds``.

Command line::

    python -m compendium.reproduce --profile cpu [--reference DIR] [--results DIR] [--tolerances FILE]

compares ``<results>/<profile>`` (default: ``$UALIB_RESULTS`` or ``results/``) with ``<reference>/<profile>``
(default: the committed ``results/``; for ``tiny``, ``tests/reference``), prints per chapter what differs
beyond tolerance and exits 1 if anything does.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Rule",
    "Difference",
    "load_tolerances",
    "compare_docs",
    "compare_trees",
    "TOLERANCES_PATH",
    "REFERENCE_ROOT",
    "foreign_numerics",
    "seed_spread",
    "write_spread",
    "load_spread",
    "spread_path",
    "SPREAD_FACTOR",
    "FOREIGN_SSE",
    "FOREIGN_AVX2",
    "main",
]

_HERE = Path(__file__).resolve().parent
TOLERANCES_PATH = _HERE / "tolerances.yml"
REFERENCE_ROOT = _HERE.parent / "tests" / "reference"


@dataclass(frozen=True)
class Rule:
    """One tolerance rule: ``|a - b| <= abs + rel * |reference|`` for paths matching ``pattern``."""

    pattern: str
    abs: float = 0.0
    rel: float = 0.0
    skip: bool = False
    why: str = ""

    def tolerance(self, reference: float) -> float:
        return self.abs + self.rel * abs(reference)


@dataclass(frozen=True)
class Difference:
    """One disagreement between a result and its reference."""

    chapter: str
    path: str
    reference: Any
    value: Any
    tolerance: float | None
    why: str

    def __str__(self) -> str:
        tol = "" if self.tolerance is None else f" (tolerance {self.tolerance:.3g})"
        return f"{self.path}: reference {self.reference!r}, here {self.value!r}{tol} - {self.why}"


@dataclass
class _Context:
    chapter: str
    rules: list[Rule]
    spread: dict[str, float] = field(default_factory=dict)
    diffs: list[Difference] = field(default_factory=list)

    def tolerance(self, path: str, rule: Rule | None, reference: float) -> tuple[float | None, str]:
        """The tolerance of one number and its justification: the rule's, widened to
        :data:`SPREAD_FACTOR` times the number's measured seed spread where that is larger."""
        tol, why = (None, "") if rule is None else (rule.tolerance(reference), rule.why.splitlines()[0])
        dev = self.spread.get(path)
        if dev is not None and (tol is None or SPREAD_FACTOR * dev > tol):
            tol, why = (
                SPREAD_FACTOR * dev,
                f"{SPREAD_FACTOR:g} x its largest deviation across the seed reruns of the reference",
            )
        return tol, why

    def rule(self, path: str) -> Rule | None:
        key = f"{self.chapter}:{path}"
        return next((r for r in self.rules if fnmatch.fnmatchcase(key, r.pattern)), None)

    def add(self, path, ref, val, tol, why):
        self.diffs.append(Difference(self.chapter, path, ref, val, tol, why))


def load_tolerances(path: str | Path | None = None) -> list[Rule]:
    """Read the rules of a tolerance file (``rules:`` list of ``{pattern, abs, rel, skip, why}``).

    Raises
    ------
    ValueError
        When a rule has no pattern, no justification (``why``), negative tolerances, or unknown keys.
    """
    import yaml

    doc = yaml.safe_load(Path(path or TOLERANCES_PATH).read_text())
    rules = []
    for i, raw in enumerate(doc.get("rules") or []):
        unknown = set(raw) - {"pattern", "abs", "rel", "skip", "why"}
        if unknown:
            raise ValueError(f"tolerance rule {i}: unknown keys {sorted(unknown)}")
        if not raw.get("pattern") or not str(raw.get("why", "")).strip():
            raise ValueError(f"tolerance rule {i}: needs a pattern and a justification ('why')")
        rule = Rule(str(raw["pattern"]), float(raw.get("abs", 0)), float(raw.get("rel", 0)), bool(raw.get("skip", False)),
                    str(raw["why"]).strip())  # fmt: skip
        if rule.abs < 0 or rule.rel < 0:
            raise ValueError(f"tolerance rule {i}: negative tolerance")
        rules.append(rule)
    return rules


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _compare_value(ctx: _Context, path: str, ref: Any, val: Any) -> None:
    rule = ctx.rule(path)
    if rule is not None and rule.skip:
        return
    if isinstance(ref, dict) and isinstance(val, dict):
        for k in sorted(set(ref) | set(val)):
            sub = f"{path}/{k}"
            if k not in val:
                ctx.add(sub, ref[k], None, None, "missing here")
            elif k not in ref:
                ctx.add(sub, None, val[k], None, "not in the reference")
            else:
                _compare_value(ctx, sub, ref[k], val[k])
        return
    if isinstance(ref, list) and isinstance(val, list):
        if len(ref) != len(val):
            ctx.add(path, f"{len(ref)} entries", f"{len(val)} entries", None, "different length")
            return
        for i, (a, b) in enumerate(zip(ref, val, strict=True)):
            _compare_value(ctx, f"{path}/{i}", a, b)
        return
    # JSON null stands for NaN (compendium.results writes NaN as null): two nulls agree
    ref_num = _is_number(ref) or ref is None
    val_num = _is_number(val) or val is None
    if ref_num and val_num and (_is_number(ref) or _is_number(val)):
        if ref is None or val is None:
            ctx.add(path, ref, val, None, "NaN (null) on one side only")
            return
        tol, why = ctx.tolerance(path, rule, float(ref))
        if tol is None:
            ctx.add(path, ref, val, None, "no tolerance rule matches this number (add one to tolerances.yml)")
            return
        if not abs(float(val) - float(ref)) <= tol:
            ctx.add(path, ref, val, tol, f"beyond tolerance ({why})")
        return
    pair_ref, pair_val = _pm(ref), _pm(val)
    if pair_ref is not None and pair_val is not None:  # a formatted "mean ± sem" table entry
        for part, a, b in zip(("mean", "sem"), pair_ref, pair_val, strict=True):
            _compare_value(ctx, f"{path}/{part}", a, b)
        return
    if ref != val:
        ctx.add(path, ref, val, None, "differs (compared exactly)")


_PM = re.compile(r"^\s*(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*±\s*(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*$")


def _pm(v: Any) -> tuple[float, float] | None:
    """``(mean, sem)`` of a string formatted as ``"0.310 ± 0.025"``, else ``None``."""
    m = _PM.match(v) if isinstance(v, str) else None
    return (float(m.group(1)), float(m.group(2))) if m else None


def _claim_estimate(c: dict) -> float | None:
    v = c.get("estimate", c.get("measured"))
    return None if v is None else float(v)


def _claim_verdict(c: dict) -> str:
    if "verdict" in c:
        return str(c["verdict"])
    return "pass" if c.get("passed") else "fail"


def _compare_claims(ctx: _Context, ref: list[dict], val: list[dict]) -> None:
    ref_by, val_by = {c["id"]: c for c in ref}, {c["id"]: c for c in val}
    for cid in sorted(set(ref_by) | set(val_by)):
        path = f"claims/{cid}"
        if cid not in val_by:
            ctx.add(path, "present", None, None, "claim missing here")
            continue
        if cid not in ref_by:
            ctx.add(path, None, "present", None, "claim not in the reference")
            continue
        a, b = ref_by[cid], val_by[cid]
        for key in ("threshold", "op", "direction"):
            if a.get(key) != b.get(key):
                ctx.add(f"{path}/{key}", a.get(key), b.get(key), None, "the claim's definition differs")
        rule = ctx.rule(path)
        if rule is not None and rule.skip:
            continue
        ea, eb = _claim_estimate(a), _claim_estimate(b)
        if ea is None or eb is None:
            if (ea is None) != (eb is None):
                ctx.add(f"{path}/estimate", ea, eb, None, "NaN (null) on one side only")
            elif _claim_verdict(a) != _claim_verdict(b):
                ctx.add(f"{path}/verdict", _claim_verdict(a), _claim_verdict(b), None, "verdict flipped")
            continue
        if rule is not None or path in ctx.spread:
            tol, _ = ctx.tolerance(path, rule, ea)
        elif "ci" in a and a["ci"] is not None and None not in a["ci"]:
            # new shape without a rule: the claim's own 95 % interval is its noise
            tol = max(ea - float(a["ci"][0]), float(a["ci"][1]) - ea)
        else:
            ctx.add(path, ea, eb, None, "no tolerance rule matches this claim (add one to tolerances.yml)")
            continue
        if not abs(eb - ea) <= tol:
            ctx.add(f"{path}/estimate", ea, eb, tol, "estimate beyond tolerance")
        # a verdict is only meaningful where the reference is clear of the threshold by more than the noise
        threshold = a.get("threshold")
        clear = threshold is not None and abs(ea - float(threshold)) > tol
        if clear and _claim_verdict(a) != _claim_verdict(b):
            ctx.add(
                f"{path}/verdict",
                _claim_verdict(a),
                _claim_verdict(b),
                tol,
                f"verdict flipped although the reference estimate is {abs(ea - float(threshold)):.3g} from "
                f"its threshold, more than the tolerance",
            )


def _compare_checks(ctx: _Context, ref: list[dict], val: list[dict]) -> None:
    ref_by, val_by = {c["id"]: c for c in ref}, {c["id"]: c for c in val}
    for cid in sorted(set(ref_by) | set(val_by)):
        path = f"checks/{cid}"
        if cid not in val_by or cid not in ref_by:
            ctx.add(path, cid in ref_by, cid in val_by, None, "check present on one side only")
        elif bool(ref_by[cid].get("holds")) != bool(val_by[cid].get("holds")):
            ctx.add(f"{path}/holds", ref_by[cid].get("holds"), val_by[cid].get("holds"), None, "check outcome differs")


def compare_docs(
    reference: dict, result: dict, rules: list[Rule] | None = None, spread: dict[str, float] | None = None
) -> list[Difference]:
    """Differences beyond tolerance between two results documents of one chapter (empty list: they agree).

    ``spread`` maps a number's path to its measured seed spread (:func:`seed_spread`), which widens
    that number's tolerance to :data:`SPREAD_FACTOR` times the spread where the rule is narrower.
    """
    rules = load_tolerances() if rules is None else rules
    ctx = _Context(str(reference.get("chapter", "?")), rules, dict(spread or {}))
    for key in ("chapter", "profile"):
        if reference.get(key) != result.get(key):
            ctx.add(key, reference.get(key), result.get(key), None, "differs")
    _compare_value(ctx, "metrics", reference.get("metrics", {}), result.get("metrics", {}))
    _compare_claims(ctx, reference.get("claims", []), result.get("claims", []))
    _compare_checks(ctx, reference.get("checks", []), result.get("checks", []))
    return ctx.diffs


def compare_trees(
    reference: str | Path,
    results: str | Path,
    profile: str,
    rules: list[Rule] | None = None,
    spread: dict[str, dict[str, float]] | None = None,
) -> dict[str, list[Difference]]:
    """Compare ``<results>/<profile>/*.json`` with ``<reference>/<profile>/*.json``, chapter by chapter.

    A chapter present on one side only is reported as one difference. ``spread`` (``{chapter: {path:
    deviation}}``) defaults to the reference's seed-spread file ``<reference>/<profile>.seed-spread.json``
    when it exists (:func:`seed_spread`; ``make reference`` writes it for ``tiny``).
    """
    rules = load_tolerances() if rules is None else rules
    if spread is None:
        spread = load_spread(Path(reference), profile)
    ref_dir, res_dir = Path(reference) / profile, Path(results) / profile
    ref_files = {p.stem: p for p in ref_dir.glob("*.json")}
    res_files = {p.stem: p for p in res_dir.glob("*.json")}
    if not ref_files:
        raise FileNotFoundError(f"no reference results in {ref_dir}")
    out: dict[str, list[Difference]] = {}
    for name in sorted(set(ref_files) | set(res_files)):
        if name not in res_files:
            out[name] = [Difference(name, "", "present", None, None, f"no results file in {res_dir}")]
        elif name not in ref_files:
            out[name] = [Difference(name, "", None, "present", None, f"no reference file in {ref_dir}")]
        else:
            out[name] = compare_docs(
                json.loads(ref_files[name].read_text()),
                json.loads(res_files[name].read_text()),
                rules,
                spread.get(name, {}),
            )
    return out


# --------------------------------------------------------------------------------------------------
# seed spread: how far each number moves when the chapter is re-run with another seed

#: a number's tolerance is at least this many times its largest deviation across the seed reruns
SPREAD_FACTOR = 2.0


def spread_path(reference: str | Path, profile: str) -> Path:
    """Where the seed spread of ``<reference>/<profile>`` is kept."""
    return Path(reference) / f"{profile}.seed-spread.json"


def load_spread(reference: str | Path, profile: str) -> dict[str, dict[str, float]]:
    """The seed spread ``{chapter: {path: deviation}}`` kept beside a reference (empty when there is none)."""
    path = spread_path(reference, profile)
    return json.loads(path.read_text())["chapters"] if path.is_file() else {}


def _numbers(path: str, value: Any):
    """``(path, number)`` for every number of a results document's value, as :func:`_compare_value`
    names them (``"mean ± sem"`` strings as ``.../mean`` and ``.../sem``)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(f"{path}/{k}", v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(f"{path}/{i}", v)
    elif _is_number(value):
        yield path, float(value)
    elif (pair := _pm(value)) is not None:
        yield f"{path}/mean", pair[0]
        yield f"{path}/sem", pair[1]


def _doc_numbers(doc: dict) -> dict[str, float]:
    out = dict(_numbers("metrics", doc.get("metrics", {})))
    for c in doc.get("claims", []):
        est = _claim_estimate(c)
        if est is not None and math.isfinite(est):
            out[f"claims/{c['id']}"] = est
    return out


def seed_spread(reference: str | Path, reruns: list[str | Path], profile: str) -> dict[str, dict[str, float]]:
    """The largest deviation of each number of ``<reference>/<profile>`` across seed reruns.

    ``reruns`` are results roots of the same chapters run with other seeds (``python -m compendium.book
    run --seed N``). A rerun on another machine trains models that behave like models trained with
    another seed (its floating-point differences grow over the training steps), so this is the
    training-and-sampling noise of every number, measured; numbers absent or NaN in a rerun get none.
    """
    ref_dir = Path(reference) / profile
    out: dict[str, dict[str, float]] = {}
    for ref_file in sorted(ref_dir.glob("*.json")):
        ref = _doc_numbers(json.loads(ref_file.read_text()))
        devs: dict[str, float] = {}
        for root in reruns:
            f = Path(root) / profile / ref_file.name
            if not f.is_file():
                raise FileNotFoundError(f"seed rerun {root} has no {profile}/{ref_file.name}")
            other = _doc_numbers(json.loads(f.read_text()))
            for path, v in ref.items():
                if path in other and math.isfinite(v) and math.isfinite(other[path]):
                    devs[path] = max(devs.get(path, 0.0), abs(other[path] - v))
        out[ref_file.stem] = {p: float(f"{d:.6g}") for p, d in sorted(devs.items()) if d > 0}
    return out


def write_spread(reference: str | Path, reruns: list[str | Path], profile: str, seeds: list[int]) -> Path:
    """Compute :func:`seed_spread` and keep it beside the reference; returns the file written."""
    path = spread_path(reference, profile)
    doc = {
        "about": (
            "largest |rerun - reference| of every number when the chapters are rerun with other seeds; "
            f"compendium.reproduce allows {SPREAD_FACTOR:g} x this where its rule is narrower"
        ),
        "profile": profile,
        "seeds": list(seeds),
        "chapters": seed_spread(reference, reruns, profile),
    }
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


#: a CPU configuration unlike a modern default: no vector units beyond SSE4, one thread
FOREIGN_SSE = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "OMP_NUM_THREADS": "1",
}
#: the configuration used when the ambient one is already the SSE / one-thread one: AVX2, two threads
FOREIGN_AVX2 = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "OMP_NUM_THREADS": "2",
}


def foreign_numerics(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables that make this process's children compute as another machine would.

    Chosen against the ambient environment so that the ATen CPU capability, the oneDNN ISA, the MKL
    instruction set and the thread count all differ from it: the SSE4 / one-thread configuration, or
    AVX2 / two threads when the ambient settings already restrict to SSE or to one thread. The test
    suite executes the tiny chapters once under the ambient settings (nbval) and once under these
    (the browser test's book build) and compares both with the same reference.
    """
    env = dict(os.environ if environ is None else environ)
    sse_like = env.get("ATEN_CPU_CAPABILITY", "").lower() == "default" or env.get("OMP_NUM_THREADS", "") == "1"
    return dict(FOREIGN_AVX2 if sse_like else FOREIGN_SSE)


def main(argv: list[str] | None = None) -> int:
    from ualib._paths import results_dir

    parser = argparse.ArgumentParser(prog="python -m compendium.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--results", help="results root holding <profile>/ (default: $UALIB_RESULTS or results/)")
    parser.add_argument(
        "--reference", help="reference root holding <profile>/ (default: results/; tiny: tests/reference)"
    )
    parser.add_argument("--tolerances", help=f"tolerance rules (default: {TOLERANCES_PATH.name})")
    parser.add_argument(
        "--write-spread",
        nargs="+",
        metavar="SEED=ROOT",
        help="instead of comparing: write the seed spread of the reference from these seed reruns' results roots",
    )
    args = parser.parse_args(argv)
    results = Path(args.results) if args.results else results_dir()
    if args.reference:
        reference = Path(args.reference)
    else:
        reference = REFERENCE_ROOT if args.profile == "tiny" else _HERE.parent / "results"
    if args.write_spread:
        pairs = [item.split("=", 1) for item in args.write_spread]
        if any(len(p) != 2 or not p[0].isdigit() for p in pairs):
            parser.error("--write-spread takes SEED=ROOT items, e.g. 1=/tmp/seed1")
        path = write_spread(reference, [root for _, root in pairs], args.profile, [int(seed) for seed, _ in pairs])
        n = sum(len(v) for v in load_spread(reference, args.profile).values())
        print(f"seed spread of {n} numbers written to {path}")
        return 0
    if reference.resolve() == results.resolve():
        parser.error(f"results and reference are the same folder ({results}); pass --results or --reference")
    rules = load_tolerances(args.tolerances)
    report = compare_trees(reference, results, args.profile, rules)
    bad = 0
    for chapter, diffs in report.items():
        if diffs:
            bad += 1
            print(f"{chapter}: {len(diffs)} difference(s) beyond tolerance")
            for d in diffs:
                print(f"  {d}")
        else:
            print(f"{chapter}: agrees with the reference within tolerance")
    print(
        f"\n{len(report) - bad}/{len(report)} chapters agree ({results / args.profile} vs {reference / args.profile})"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
