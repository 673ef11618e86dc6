"""compendium.reproduce: results compared with a reference within written-down tolerances."""

from __future__ import annotations

import copy
import json

import pytest

from compendium import reproduce
from compendium.reproduce import Rule, compare_docs, compare_trees, load_tolerances

RULES = [
    Rule("*seconds*", skip=True, why="timing"),
    Rule("*accuracy*", abs=0.03, why="binomial SE"),
    Rule("*:claims/*", abs=0.02, why="claim noise"),
]


def _doc(**over):
    doc = {
        "chapter": "01_x",
        "profile": "tiny",
        "metadata": {"date": "today"},
        "metrics": {"calibration": {"MC dropout": {"accuracy": 0.97}}, "train_seconds": 3.0, "name": "digits"},
        "claims": [
            {"id": "old", "measured": 0.95, "op": ">", "threshold": 0.9, "passed": True},
            {"id": "near", "measured": 0.905, "op": ">", "threshold": 0.9, "passed": True},
            {
                "id": "new",
                "estimate": 0.5,
                "ci": [0.45, 0.55],
                "n": 10,
                "seeds": [0],
                "method": "bootstrap",
                "threshold": 0.0,
                "direction": ">",
                "verdict": "supported",
            },
        ],
        "checks": [{"id": "exact", "statement": "sum", "value": 1e-7, "op": "<", "bound": 1e-5, "holds": True}],
    }
    doc.update(over)
    return doc


def _paths(diffs):
    return sorted(d.path for d in diffs)


def test_identical_and_within_tolerance_pass():
    ref = _doc()
    assert compare_docs(ref, copy.deepcopy(ref), RULES) == []
    res = copy.deepcopy(ref)
    res["metrics"]["calibration"]["MC dropout"]["accuracy"] = 0.97 + 0.029
    res["metrics"]["train_seconds"] = 999.0  # skipped
    res["metadata"]["date"] = "tomorrow"  # metadata is not compared
    res["claims"][0]["measured"] = 0.96
    assert compare_docs(ref, res, RULES) == []


def test_beyond_tolerance_fails():
    ref = _doc()
    res = copy.deepcopy(ref)
    res["metrics"]["calibration"]["MC dropout"]["accuracy"] = 0.97 - 0.031
    assert _paths(compare_docs(ref, res, RULES)) == ["metrics/calibration/MC dropout/accuracy"]


def test_number_without_rule_and_strings_and_structure():
    ref = _doc()
    res = copy.deepcopy(ref)
    res["metrics"]["name"] = "mnist"
    res["metrics"]["extra"] = 1
    del res["metrics"]["calibration"]["MC dropout"]
    assert _paths(compare_docs(ref, res, RULES)) == [
        "metrics/calibration/MC dropout", "metrics/extra", "metrics/name"
    ]  # fmt: skip
    ref2, res2 = _doc(metrics={"ratio": 1.0}), _doc(metrics={"ratio": 1.0})
    (d,) = compare_docs(ref2, res2, RULES)  # a number no rule covers is reported even when equal
    assert "no tolerance rule" in d.why


def test_verdict_flip_near_threshold_is_tolerated_far_is_flagged():
    ref = _doc()
    res = copy.deepcopy(ref)
    # "near": 0.905 is 0.005 from its threshold, inside the tolerance 0.02: a flip is noise
    res["claims"][1].update(measured=0.895, passed=False)
    assert compare_docs(ref, res, RULES) == []
    # "old": 0.95 is 0.05 from its threshold: a flip means something changed (and the estimate moved too far)
    res["claims"][0].update(measured=0.89, passed=False)
    assert _paths(compare_docs(ref, res, RULES)) == ["claims/old/estimate", "claims/old/verdict"]
    # a flagged flip even when the estimate stays within tolerance (wide tolerance, verdict field changed)
    wide = [Rule("*:claims/*", abs=0.04, why="w")] + RULES
    res = copy.deepcopy(ref)
    res["claims"][2]["verdict"] = "inconclusive"
    assert _paths(compare_docs(ref, res, wide)) == ["claims/new/verdict"]


def test_new_shape_without_rule_uses_its_interval():
    ref = _doc()
    rules = [r for r in RULES if "claims" not in r.pattern] + [Rule("*:claims/old", abs=0.02, why="x"),
                                                               Rule("*:claims/near", abs=0.02, why="x")]  # fmt: skip
    res = copy.deepcopy(ref)
    res["claims"][2]["estimate"] = 0.54  # inside the reference's 95 % CI half-width 0.05
    assert compare_docs(ref, res, rules) == []
    res["claims"][2]["estimate"] = 0.56
    assert _paths(compare_docs(ref, res, rules)) == ["claims/new/estimate"]


def test_checks_compared_exactly_and_definitions():
    ref = _doc()
    res = copy.deepcopy(ref)
    res["checks"][0]["value"] = 3e-6  # the value may move, the outcome may not
    assert compare_docs(ref, res, RULES) == []
    res["checks"][0]["holds"] = False
    assert _paths(compare_docs(ref, res, RULES)) == ["checks/exact/holds"]
    res = copy.deepcopy(ref)
    res["claims"][0]["threshold"] = 0.8
    assert "claims/old/threshold" in _paths(compare_docs(ref, res, RULES))
    res = copy.deepcopy(ref)
    res["checks"] = []
    assert _paths(compare_docs(ref, res, RULES)) == ["checks/exact"]


def test_trees_and_cli(tmp_path, capsys):
    for side, acc in (("ref", 0.97), ("ok", 0.98), ("bad", 0.90)):
        (tmp_path / side / "tiny").mkdir(parents=True)
        doc = _doc()
        doc["metrics"]["calibration"]["MC dropout"]["accuracy"] = acc
        (tmp_path / side / "tiny" / "01_x.json").write_text(json.dumps(doc))
    report = compare_trees(tmp_path / "ref", tmp_path / "ok", "tiny", RULES)
    assert report == {"01_x": []}
    tol = tmp_path / "tol.yml"
    tol.write_text(
        "rules:\n"
        "  - {pattern: '*seconds*', skip: true, why: timing}\n"
        "  - {pattern: '*accuracy*', abs: 0.03, why: binomial SE}\n"
        "  - {pattern: '*:claims/*', abs: 0.02, why: claim noise}\n"
    )
    args = ["--profile", "tiny", "--reference", str(tmp_path / "ref"), "--tolerances", str(tol)]
    assert reproduce.main([*args, "--results", str(tmp_path / "ok")]) == 0
    assert reproduce.main([*args, "--results", str(tmp_path / "bad")]) == 1
    out = capsys.readouterr().out
    assert "01_x: 1 difference(s)" in out and "metrics/calibration/MC dropout/accuracy" in out
    (tmp_path / "ok" / "tiny" / "01_x.json").unlink()
    assert "no results file" in compare_trees(tmp_path / "ref", tmp_path / "ok", "tiny", RULES)["01_x"][0].why


def test_committed_tolerances_are_justified():
    rules = load_tolerances()
    assert rules and all(r.why for r in rules)
    assert any(r.skip and "seconds" in r.pattern for r in rules)


def test_tolerance_file_errors(tmp_path):
    bad = tmp_path / "t.yml"
    bad.write_text("rules:\n  - {pattern: '*', abs: 1}\n")
    with pytest.raises(ValueError, match="justification"):
        load_tolerances(bad)
    bad.write_text("rules:\n  - {pattern: '*', abs: -1, why: x}\n")
    with pytest.raises(ValueError, match="negative"):
        load_tolerances(bad)
    bad.write_text("rules:\n  - {pattern: '*', tol: 1, why: x}\n")
    with pytest.raises(ValueError, match="unknown"):
        load_tolerances(bad)


def _tree(root, doc):
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / "01_x.json").write_text(json.dumps(doc))


def test_seed_spread_is_the_largest_deviation_of_the_reruns(tmp_path):
    ref = _doc(metrics={"auroc": 0.80, "table": {"a": "0.50 ± 0.10"}, "same": 2.0})
    _tree(tmp_path / "ref", ref)
    for seed, (auroc, cell) in enumerate([(0.70, "0.55 ± 0.10"), (0.85, "0.40 ± 0.12")], 1):
        doc = copy.deepcopy(ref)
        doc["metrics"].update(auroc=auroc, table={"a": cell})
        doc["claims"][2]["estimate"] = 0.5 + 0.1 * seed
        _tree(tmp_path / f"s{seed}", doc)
    spread = reproduce.seed_spread(tmp_path / "ref", [tmp_path / "s1", tmp_path / "s2"], "tiny")["01_x"]
    assert spread["metrics/auroc"] == pytest.approx(0.10)  # |0.70 - 0.80| > |0.85 - 0.80|
    assert spread["metrics/table/a/mean"] == pytest.approx(0.10)
    assert spread["metrics/table/a/sem"] == pytest.approx(0.02)
    assert spread["claims/new"] == pytest.approx(0.2)
    assert "metrics/same" not in spread  # no deviation, no entry: the rule alone decides


def test_seed_spread_widens_a_narrow_rule_and_only_that_number(tmp_path):
    ref = _doc(metrics={"auroc": 0.80, "other_auroc": 0.80})
    rules = [Rule("*auroc*", abs=0.02, why="Hanley-McNeil SE"), *RULES]
    res = copy.deepcopy(ref)
    res["metrics"].update(auroc=0.70, other_auroc=0.70)
    assert _paths(compare_docs(ref, res, rules)) == ["metrics/auroc", "metrics/other_auroc"]
    diffs = compare_docs(ref, res, rules, spread={"metrics/auroc": 0.06})  # 2 x 0.06 = 0.12 > 0.10
    assert _paths(diffs) == ["metrics/other_auroc"]
    assert compare_docs(ref, res, rules, spread={"metrics/auroc": 0.04}) != []  # 0.08 < 0.10: still beyond
    # a spread smaller than the rule never narrows it
    ok = copy.deepcopy(ref)
    ok["metrics"]["auroc"] = 0.815
    assert compare_docs(ref, ok, rules, spread={"metrics/auroc": 0.001}) == []


def test_compare_trees_reads_the_spread_file_and_the_cli_writes_it(tmp_path, capsys):
    ref = _doc(metrics={"auroc": 0.80})
    _tree(tmp_path / "ref", ref)
    rerun = copy.deepcopy(ref)
    rerun["metrics"]["auroc"] = 0.74
    _tree(tmp_path / "s1", rerun)
    args = ["--profile", "tiny", "--reference", str(tmp_path / "ref")]
    assert reproduce.main([*args, "--write-spread", f"1={tmp_path / 's1'}"]) == 0
    written = json.loads(reproduce.spread_path(tmp_path / "ref", "tiny").read_text())
    assert written["seeds"] == [1] and written["chapters"]["01_x"]["metrics/auroc"] == pytest.approx(0.06)
    far = copy.deepcopy(ref)
    far["metrics"]["auroc"] = 0.69  # 0.11 <= 2 x 0.06
    _tree(tmp_path / "res", far)
    assert compare_trees(tmp_path / "ref", tmp_path / "res", "tiny", [Rule("*", abs=0.01, why="x")])["01_x"] == []
    with pytest.raises(SystemExit):
        reproduce.main([*args, "--write-spread", "one=/tmp/x"])


def test_every_claim_rule_matches_a_claim_of_the_committed_results():
    """A tolerance rule written for particular claims still matches one of them: a claim renamed in the
    registry (e.g. "edl_..." -> "01_uncertainty_basics.edl_...") must not leave its rule behind silently."""
    import fnmatch
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    keys = set()
    for path in [*(root / "tests" / "reference" / "tiny").glob("*.json"), *(root / "results" / "cpu").glob("*.json")]:
        doc = json.loads(path.read_text())
        keys |= {f"{path.stem}:claims/{c['id']}" for c in doc.get("claims", [])}
    specific = [r for r in load_tolerances() if "claims/" in r.pattern and not r.pattern.endswith(":claims/*")]
    assert specific
    orphans = [r.pattern for r in specific if not any(fnmatch.fnmatchcase(k, r.pattern) for k in keys)]
    assert not orphans, orphans
