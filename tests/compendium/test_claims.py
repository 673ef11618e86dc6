"""The claims engine against known cases: bootstrap intervals, three verdicts, paired vs unpaired, seeds."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pytest
import torch

from compendium import claims as C
from compendium.results import claims_table, training_summary, write_results
from ualib.training import training_ledger


def _spec(interval="bootstrap", direction=">", threshold=0.0, id="99_test.x"):
    return C.ClaimSpec(
        id, "99_test", "background", "x is positive", "[INF]", "mean", direction, threshold, "test", interval
    )


def _mean_diff(a, b):
    return float(np.mean(a - b))


def test_bootstrap_ci_of_a_known_mean_difference_covers_it_at_the_normal_width():
    rng = np.random.default_rng(1)
    n, d, sd = 4000, 0.3, 1.0
    b = rng.normal(size=n)
    a = b + d + rng.normal(scale=sd, size=n)
    r = C.judge("99_test.x", _mean_diff, a, b, spec=_spec(), n_resamples=2000, seed=0)
    lo, hi = r.ci
    assert lo < d < hi
    assert r.estimate == pytest.approx(np.mean(a - b))
    expected_width = 2 * 1.96 * np.std(a - b, ddof=1) / math.sqrt(n)  # normal theory
    assert (hi - lo) == pytest.approx(expected_width, rel=0.12)
    assert r.n == n and r.seeds == (0,) and r.verdict == "supported"
    # seeded: the same call gives the same interval, another seed another one
    assert C.judge("99_test.x", _mean_diff, a, b, spec=_spec(), seed=0).ci == r.ci
    assert C.judge("99_test.x", _mean_diff, a, b, spec=_spec(), seed=1).ci != r.ci


def test_bootstrap_of_one_mean_has_the_normal_width_and_is_seeded():
    rng = np.random.default_rng(3)
    n = 4000
    a = 2.0 + rng.normal(size=n)
    est, (lo, hi) = C.bootstrap(np.mean, a, seed=0)
    assert est == pytest.approx(np.mean(a)) and lo < est < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * np.std(a, ddof=1) / math.sqrt(n), rel=0.12)  # normal theory
    assert C.bootstrap(np.mean, a, seed=0)[1] == (lo, hi) and C.bootstrap(np.mean, a, seed=1)[1] != (lo, hi)
    # a paired statistic of two arrays, and NaN when the statistic is undefined
    est2, _ = C.bootstrap(lambda u, v: float(np.mean(u - v)), a, a - 1.0)
    assert est2 == pytest.approx(1.0)
    assert all(math.isnan(v) for v in C.bootstrap(np.mean, np.full(10, np.nan))[1])
    with pytest.raises(ValueError, match="n_resamples"):
        C.bootstrap(np.mean, a, n_resamples=10)


def test_coverage_of_the_percentile_interval_is_near_95_percent():
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(60):
        x = rng.normal(loc=1.0, size=200)
        r = C.judge(
            "99_test.x", lambda v: float(v.mean()), x, spec=_spec(), n_resamples=1000, seed=int(rng.integers(1e6))
        )
        hits += r.ci[0] < 1.0 < r.ci[1]
    assert 50 <= hits <= 60  # 95 % of 60 = 57; binomial 1st percentile ~ 52


@pytest.mark.parametrize(
    ("loc", "direction", "expected"),
    [
        (0.5, ">", "supported"),
        (-0.5, ">", "refuted"),
        (0.01, ">", "inconclusive"),
        (-0.5, "<", "supported"),
        (0.5, "<", "refuted"),
        (0.01, "<", "inconclusive"),
    ],
)
def test_each_of_the_three_verdicts(loc, direction, expected):
    x = np.random.default_rng(3).normal(loc=loc, scale=1.0, size=200)
    r = C.judge("99_test.x", lambda v: float(v.mean()), x, spec=_spec(direction=direction))
    assert r.verdict == expected
    assert r.ci[0] <= r.estimate <= r.ci[1]


def test_verdict_rule_at_the_boundaries():
    assert C.verdict((0.1, 0.2), ">", 0.0) == "supported"
    assert C.verdict((0.0, 0.2), ">", 0.0) == "inconclusive"  # touching the line is not on the side
    assert C.verdict((-0.2, -0.1), ">", 0.0) == "refuted"
    assert C.verdict((-0.2, -0.1), "<", 0.0) == "supported"
    assert C.verdict((math.nan, 1.0), ">", 0.0) == "inconclusive"
    with pytest.raises(ValueError, match="lo > hi"):
        C.verdict((1.0, 0.0), ">", 0.0)


def test_paired_is_narrower_than_unpaired_on_correlated_data():
    rng = np.random.default_rng(4)
    z = rng.normal(scale=3.0, size=500)  # per-input difficulty shared by both methods
    a = z + 0.2 + rng.normal(scale=0.1, size=500)
    b = z + rng.normal(scale=0.1, size=500)
    paired = C.judge("99_test.x", _mean_diff, a, b, spec=_spec())
    unpaired = C.judge("99_test.x", lambda x, y: float(x.mean() - y.mean()), strata=[(a,), (b,)], spec=_spec())
    wp, wu = np.diff(paired.ci)[0], np.diff(unpaired.ci)[0]
    assert paired.estimate == pytest.approx(unpaired.estimate)
    # unpaired width ~ 2*1.96*sqrt(2)*3/sqrt(500) = 0.74; paired ~ 2*1.96*sqrt(0.02)/sqrt(500) = 0.025
    assert wu > 10 * wp
    assert wu == pytest.approx(2 * 1.96 * math.sqrt(2) * 3 / math.sqrt(500), rel=0.2)
    assert paired.verdict == "supported" and unpaired.verdict == "inconclusive"
    assert unpaired.n == 1000 and "stratified" in unpaired.method and "paired" in paired.method


def test_hierarchical_seeds_carry_the_seed_to_seed_spread():
    rng = np.random.default_rng(5)
    offsets = [0.0, 1.0, 2.0]  # three trainings disagree far more than the inputs' noise
    per_seed = [(off + rng.normal(scale=0.1, size=300),) for off in offsets]
    spec = _spec(interval="seeds+bootstrap", threshold=0.5)
    r = C.judge("99_test.x", lambda v: float(v.mean()), per_seed=per_seed, seeds=[0, 1, 2], spec=spec)
    assert r.estimate == pytest.approx(np.mean([p[0].mean() for p in per_seed]))
    assert r.seeds == (0, 1, 2) and r.n == 300
    # each seed's own statistic is kept (and stored): the seed-to-seed spread behind the interval
    assert r.per_seed == pytest.approx([float(p[0].mean()) for p in per_seed])
    assert r.to_dict()["per_seed_estimates"] == pytest.approx([float(p[0].mean()) for p in per_seed])
    # resampling seeds: bootstrap means of 3 of {0,1,2} range over [0, 2]; the 95 % interval spans most of it
    assert r.ci[0] < 0.5 and r.ci[1] > 1.5
    assert r.verdict == "inconclusive"
    pooled = C.judge(
        "99_test.x", lambda v: float(v.mean()), np.concatenate([p[0] for p in per_seed]), spec=_spec(threshold=0.5)
    )
    assert pooled.verdict == "supported"  # ignoring the seeds would overstate the evidence
    assert pooled.per_seed == () and "per_seed_estimates" not in pooled.to_dict()
    # one seed: the hierarchical bootstrap is the input bootstrap of that seed
    one = C.judge("99_test.x", lambda v: float(v.mean()), per_seed=per_seed[:1], seeds=[0], spec=spec, seed=7)
    plain = C.judge("99_test.x", lambda v: float(v.mean()), per_seed[0][0], spec=_spec(threshold=0.5), seed=7)
    assert one.ci == pytest.approx(plain.ci)
    # strata inside a seed (an AUROC-like two-sample statistic per trained model)
    two = [[(p[0],), (p[0] - 1.0,)] for p in per_seed]
    r2 = C.judge("99_test.x", lambda x, y: float(x.mean() - y.mean()), per_seed=two, seeds=[0, 1, 2], spec=spec)
    assert r2.estimate == pytest.approx(1.0) and r2.n == 600


def test_torch_inputs_and_input_errors():
    a = torch.arange(10.0)
    r = C.judge("99_test.x", lambda v: float(v.mean()), a, spec=_spec())
    assert r.estimate == pytest.approx(4.5)
    with pytest.raises(ValueError, match="share their first axis"):
        C.judge("99_test.x", _mean_diff, np.zeros(5), np.zeros(6), spec=_spec())
    with pytest.raises(ValueError, match="exactly one"):
        C.judge("99_test.x", _mean_diff, spec=_spec())
    with pytest.raises(ValueError, match="at least 1000"):
        C.judge("99_test.x", lambda v: float(v.mean()), a, spec=_spec(), n_resamples=100)
    with pytest.raises(ValueError, match="seeds has 1 entries"):
        C.judge("99_test.x", lambda v: float(v.mean()), per_seed=[(a,), (a,)], spec=_spec(interval="seeds+bootstrap"))
    with pytest.raises(ValueError, match="registered with interval"):
        C.judge("99_test.x", lambda v: float(v.mean()), a, spec=_spec(interval="seeds+bootstrap"))
    with pytest.raises(KeyError, match="not in the registry"):
        C.judge("99_test.no_such_claim", lambda v: float(v.mean()), a)
    nan = C.judge("99_test.x", lambda v: math.nan, a, spec=_spec())
    assert nan.verdict == "inconclusive" and nan.to_dict()["estimate"] is None


def test_judge_interval_and_check():
    r = C.judge_interval("99_test.x", 2.0, (1.5, 2.5), n=5, method="repeats", spec=_spec(threshold=1.0))
    assert r.verdict == "supported" and r.to_dict()["ci"] == [1.5, 2.5]
    with pytest.raises(ValueError, match="does not contain"):
        C.judge_interval("99_test.x", 3.0, (1.5, 2.5), n=5, spec=_spec())
    c = C.check("99_test.identity", "total = aleatoric + epistemic", value=3e-7, op="<", bound=1e-5)
    assert c.holds and c.to_dict() == {
        "id": "99_test.identity",
        "statement": "total = aleatoric + epistemic",
        "value": 3e-7,
        "op": "<",
        "bound": 1e-5,
        "holds": True,
    }
    assert not C.check("i", "s", value=math.nan, op="<", bound=1.0).holds
    with pytest.raises(ValueError, match="op must be"):
        C.check("i", "s", value=1.0, op="==", bound=1.0)


REG = textwrap.dedent(
    """
    papers:
      p1: "Someone, A paper, 2020"
    claims:
      99_test.x:
        paper: p1
        wording: "x is positive"
        source: "[READ] p1 §1"
        statistic: "mean of x"
        direction: ">"
        threshold: 0.0
        threshold_source: "the sign"
        interval: bootstrap
    unchecked:
      - paper: p1
        claim: "y is large"
        reason: "no data"
    """
)


def test_registry_parses_and_write_results_refuses_what_differs(tmp_path, monkeypatch):
    path = tmp_path / "claims.yml"
    path.write_text(REG)
    monkeypatch.setattr(C, "REGISTRY_PATH", path)
    reg = C.registry()
    assert set(reg) == {"99_test.x"} and reg["99_test.x"].threshold == 0.0 and C.unchecked()[0]["reason"] == "no data"
    r = C.judge("99_test.x", lambda v: float(v.mean()), np.ones(10) + np.arange(10) * 0.01)
    chk = C.check("99_test.ident", "an identity", value=0.0, op="<", bound=1e-6)
    out = write_results(
        "99_test", "tiny", {"m": 1}, [r], checks=[chk], device="cpu", wall_time_s=1, seeds=[0], root=tmp_path
    )
    doc = json.loads(out.read_text())
    assert set(doc) == {"chapter", "profile", "metadata", "metrics", "checks", "claims"}
    assert doc["metadata"]["seeds"] == [0] and doc["checks"][0]["holds"] is True
    assert doc["metadata"]["training"]["models"] == training_ledger()  # what this process trained or loaded
    assert doc["claims"][0]["verdict"] == "supported" and doc["claims"][0]["threshold"] == 0.0
    # a claim judged against another threshold than the registry's is refused
    other = C.judge("99_test.x", lambda v: float(v.mean()), np.ones(10), spec=_spec(threshold=0.5))
    with pytest.raises(ValueError, match="threshold 0.5 differs"):
        write_results("99_test", "tiny", {}, [other], device="cpu", wall_time_s=1, root=tmp_path)
    flipped = C.judge("99_test.x", lambda v: float(v.mean()), np.ones(10), spec=_spec(direction="<"))
    with pytest.raises(ValueError, match="direction"):
        write_results("99_test", "tiny", {}, [flipped], device="cpu", wall_time_s=1, root=tmp_path)
    stranger = C.judge("99_test.y", lambda v: float(v.mean()), np.ones(10), spec=_spec(id="99_test.y"))
    with pytest.raises(ValueError, match="not in the registry"):
        write_results("99_test", "tiny", {}, [stranger], device="cpu", wall_time_s=1, root=tmp_path)
    with pytest.raises(ValueError, match="belongs to chapter"):
        write_results("98_other", "tiny", {}, [r], device="cpu", wall_time_s=1, root=tmp_path)
    table = claims_table([r])
    assert list(table.columns)[0] == "verdict" and table.iloc[0]["verdict"] == "supported"
    assert table.iloc[0]["threshold"] == "> 0" and table.iloc[0]["n"] == 10


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("direction", '">="', "direction must be"),
        ("interval", "magic", "interval must be"),
        ("paper", "nobody", "unknown paper"),
        ("threshold", "high", "must be a number"),
    ],
)
def test_registry_rejects_malformed_entries(tmp_path, field, value, match):
    bad = "\n".join(
        f"    {field}: {value}" if line.strip().startswith(f"{field}:") and line.startswith("    ") else line
        for line in REG.splitlines()
    )
    path = tmp_path / "bad.yml"
    path.write_text(bad)
    with pytest.raises(ValueError, match=match):
        C.load_registry(path)


def test_glue_texts_quote_estimate_interval_verdict_and_check_values():
    spec = _spec(id="99_test.gap")
    res = C.judge_interval("99_test.gap", 0.123456, (0.1, 0.2), n=10, spec=spec)
    chk = C.check("99_test.exact", "identity", value=3.2e-7, op="<", bound=1e-5)
    texts = C.glue_texts([res], [chk])
    assert texts == {
        "99_test.gap": "0.123 (95 % CI 0.1 to 0.2)",
        "99_test.gap.verdict": "supported",
        "99_test.gap.n": "10",
        "99_test.exact": "3.2e-07",
    }
    # NaN intervals (an undefined statistic) are quoted as such, not as a number
    nan = C.judge_interval("99_test.gap", float("nan"), (float("nan"), float("nan")), n=10, spec=spec)
    assert C.glue_texts([nan])["99_test.gap"] == "nan (95 % CI nan to nan)"


def test_glue_texts_fill_the_claims_a_profile_did_not_judge():
    reg = C.registry()
    chapter = "04_uam"
    ids = [cid for cid, s in reg.items() if s.chapter == chapter]
    judged = C.judge_interval(ids[0], 0.9, (0.85, 0.95), n=40)
    texts = C.glue_texts([judged], chapter=chapter)
    assert texts[ids[0] + ".verdict"] == judged.verdict and texts[ids[0] + ".n"] == "40"
    for cid in ids[1:]:  # registered for the chapter but not judged in this run
        assert texts[cid] == "not run in this profile" and texts[cid + ".verdict"] == "not judged"
    assert not any(k.startswith("05_") for k in texts)


def test_training_summary_counts_what_was_trained_and_loaded():
    ledger = [
        {"cache_hit": False, "train_seconds": 30.0},
        {"cache_hit": True, "train_seconds": 0.0},
        {"cache_hit": False, "train_seconds": 12.04},
    ]
    out = training_summary(ledger, wall_time_s=100.0)
    assert (out["trained"], out["loaded"], out["train_s"], out["share"]) == (2, 1, 42.0, 0.42)
    assert out["models"] == ledger and out["models"][0] is not ledger[0]
    assert training_summary([], 0.0) == {"trained": 0, "loaded": 0, "train_s": 0.0, "share": None, "models": []}
