"""Results files against the claims registry ``compendium/claims.yml`` (issue #13).

Every claim a results file records as judged by the claims engine (it has a ``verdict``) must be one the
registry defined before the run, with the registry's threshold and direction, an interval that contains
its estimate, its ``n`` and seeds, and the verdict that the interval implies. The registry itself must be
complete, and no implementation check (an identity) may pass as a claim.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from compendium import claims as C

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIRS = (ROOT / "results" / "cpu", ROOT / "tests" / "reference" / "tiny")
RESULTS_FILES = sorted(p for d in RESULTS_DIRS for p in d.glob("*.json"))

#: issue #13: the cpu profile trains every model whose claims depend on training with at least 3 seeds, gpu 5
MIN_SEEDS = {"cpu": 3, "gpu": 5}

REQUIRED = ("paper", "wording", "source", "statistic", "direction", "threshold", "threshold_source", "interval")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _doc(path: Path) -> dict:
    return json.loads(path.read_text())


def _is_engine_claim(claim: dict) -> bool:
    return "verdict" in claim


def _nan(x) -> float:
    return math.nan if x is None else float(x)


@pytest.fixture(scope="module")
def raw_registry() -> dict:
    return yaml.safe_load(C.REGISTRY_PATH.read_text()) or {}


def test_there_are_results_files_to_check():
    assert len(RESULTS_FILES) >= 2 * 9, [_rel(p) for p in RESULTS_FILES]


@pytest.mark.parametrize("path", RESULTS_FILES, ids=_rel)
def test_engine_claims_agree_with_the_registry(path):
    reg = C.registry()
    doc = _doc(path)
    problems = []
    for claim in (c for c in doc["claims"] if _is_engine_claim(c)):
        cid = claim["id"]
        spec = reg.get(cid)
        if spec is None:
            problems.append(f"{cid}: not in the registry")
            continue
        if spec.chapter != doc["chapter"]:
            problems.append(f"{cid}: registered for chapter {spec.chapter}, recorded in {doc['chapter']}")
        if claim.get("paper") != spec.paper:
            problems.append(f"{cid}: paper {claim.get('paper')!r}, registry says {spec.paper!r}")
        if claim.get("direction") != spec.direction:
            problems.append(f"{cid}: direction {claim.get('direction')!r}, registry says {spec.direction!r}")
        if claim.get("threshold") is None or float(claim["threshold"]) != spec.threshold:
            problems.append(f"{cid}: threshold {claim.get('threshold')!r}, registry says {spec.threshold!r}")
        ci = claim.get("ci")
        if not (isinstance(ci, list) and len(ci) == 2):
            problems.append(f"{cid}: ci must be [lo, hi], got {ci!r}")
            continue
        est, lo, hi = _nan(claim.get("estimate")), _nan(ci[0]), _nan(ci[1])
        if not any(math.isnan(v) for v in (est, lo, hi)) and not lo <= est <= hi:
            problems.append(f"{cid}: interval [{lo}, {hi}] does not contain the estimate {est}")
        if not (isinstance(claim.get("n"), int) and claim["n"] >= 1):
            problems.append(f"{cid}: n must be a positive integer, got {claim.get('n')!r}")
        seeds = claim.get("seeds")
        if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)):
            problems.append(f"{cid}: seeds must be a non-empty list of integers, got {seeds!r}")
        if spec.interval in ("seeds", "seeds+bootstrap") and isinstance(seeds, list):
            if not str(claim.get("method", "")).startswith("hierarchical"):
                problems.append(f"{cid}: registered with interval {spec.interval!r}, judged by {claim.get('method')!r}")
            need = MIN_SEEDS.get(doc.get("profile"), 1)
            if len(seeds) < need:
                problems.append(
                    f"{cid}: registered over training seeds, but {len(seeds)} seed(s) in a {doc.get('profile')} run (need {need})"
                )
        expected = C.verdict((lo, hi), spec.direction, spec.threshold)
        if claim["verdict"] != expected:
            problems.append(f"{cid}: verdict {claim['verdict']!r}, but its interval [{lo}, {hi}] gives {expected!r}")
    assert not problems, f"{_rel(path)}:\n" + "\n".join(problems)


def _old_shape_chapters() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in RESULTS_FILES:
        doc = _doc(path)
        if any(not _is_engine_claim(c) for c in doc["claims"]):
            out.setdefault(doc["chapter"], []).append(_rel(path))
    return out


def test_every_results_file_is_on_the_claims_engine():
    """No results file keeps the pass/fail shape written before the claims engine (one number, no interval)."""
    old = _old_shape_chapters()
    assert not old, f"results without intervals: {old}"


def test_registry_entries_are_complete(raw_registry):
    known = set(raw_registry.get("papers") or {}) | {"background", "extension"}
    problems = []
    for cid, entry in (raw_registry.get("claims") or {}).items():
        chapter, dot, name = str(cid).partition(".")
        if not (dot and name and chapter[:2].isdigit()):
            problems.append(f"{cid}: id must be '<chapter>.<name>'")
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            problems.append(f"{cid}: lacks {missing}")
            continue
        if entry["paper"] not in known:
            problems.append(f"{cid}: unknown paper {entry['paper']!r}")
        if entry["direction"] not in (">", "<"):
            problems.append(f"{cid}: direction {entry['direction']!r}")
        thr = entry["threshold"]
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or math.isnan(thr):
            problems.append(f"{cid}: threshold {thr!r} is not a number")
        if not str(entry["threshold_source"] or "").strip():
            problems.append(f"{cid}: empty threshold_source")
        if entry["interval"] not in C.INTERVALS:
            problems.append(f"{cid}: interval {entry['interval']!r}")
    assert not problems, "\n".join(problems)
    # and the engine reads the same registry without complaint
    assert set(C.registry()) == set(raw_registry.get("claims") or {})


def test_unchecked_entries_name_a_paper_and_a_reason(raw_registry):
    known = set(raw_registry.get("papers") or {}) | {"background", "extension"}
    for item in raw_registry.get("unchecked") or []:
        assert isinstance(item, dict), item
        assert item.get("paper") in known, item
        assert str(item.get("claim") or "").strip(), item
        assert str(item.get("reason") or "").strip(), item


def test_every_seed_paper_lists_what_no_chapter_checks(raw_registry):
    # every seed abstract makes statements no chapter can test (datasets not available offline, user studies,
    # identities): the audit listed some for each paper, and the reproduction report prints them
    listed = {item["paper"] for item in raw_registry.get("unchecked") or []}
    missing = set(raw_registry.get("papers") or {}) - listed
    assert not missing, f"papers with no 'unchecked' entry: {sorted(missing)}"


def test_no_implementation_check_is_counted_as_a_claim():
    reg_ids = set(C.registry())
    for path in RESULTS_FILES:
        doc = _doc(path)
        check_ids = {c["id"] for c in doc.get("checks") or []}
        claim_ids = {c["id"] for c in doc["claims"]}
        assert not check_ids & claim_ids, f"{_rel(path)}: both check and claim: {sorted(check_ids & claim_ids)}"
        assert not check_ids & reg_ids, f"{_rel(path)}: checks registered as claims: {sorted(check_ids & reg_ids)}"


@pytest.mark.parametrize("profile", sorted(MIN_SEEDS))
def test_profiles_train_enough_seeds(profile):
    """A chapter that trains several seeds trains at least MIN_SEEDS of them in the cpu and gpu profiles."""
    from compendium.profiles import PROFILES

    few = {
        ch: p["seeds"] for ch, p in PROFILES[profile].items() if "seeds" in p and len(p["seeds"]) < MIN_SEEDS[profile]
    }
    assert not few, f"{profile} profile: chapters with fewer than {MIN_SEEDS[profile]} training seeds: {few}"
