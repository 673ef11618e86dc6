"""Chapters that judge their claims over several training seeds run the other seeds' code path (issue #13).

The ``tiny`` profile trains one seed, so the book's tiny build never executes what a chapter does for its
second seed; the ``cpu`` and ``gpu`` profiles train 3 and 5. Here a chapter runs with ``seeds=[0, 1]`` on its
``tiny`` parameters shrunk to a smoke run (:func:`compendium.profiles.smoke_parameters`: one epoch, capped
sample counts and data loads; the code path is the tiny one, the numbers are not): it must finish, and every
claim must be judged over both seeds by the hierarchical bootstrap, with per-seed estimates that are not all
equal (seed 1's models were used, not seed 0's twice); results keep 6 significant digits.
"""

from __future__ import annotations

import json
import math

import pytest

from compendium import claims as C
from compendium.book import run_chapter
from compendium.profiles import SMOKE_MAX_N, smoke_parameters

CHAPTERS = [
    "02_ua_backprop",
    "03_uncertainty_mitigation",
    "04_uam",
    "05_explanation_uncertainty",
    "06_gradient_meta_classification",
    "08_method_comparison",
]


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_chapter_judges_its_claims_over_two_seeds(tmp_path, monkeypatch, chapter):
    monkeypatch.setenv("UALIB_RESULTS", str(tmp_path / "results"))  # the kernel inherits them
    monkeypatch.setenv("UALIB_CACHE", str(tmp_path / "models"))
    monkeypatch.setenv("UALIB_MAX_N", str(SMOKE_MAX_N))
    params = {**smoke_parameters(chapter, base="tiny"), "seeds": [0, 1]}
    run_chapter(chapter, "tiny", output_dir=tmp_path / "nb", overrides=params, progress=False)
    doc = json.loads((tmp_path / "results" / "smoke" / f"{chapter}.json").read_text())
    assert doc["metadata"]["seeds"] == [0, 1]
    reg = C.registry()
    seeded = [c for c in doc["claims"] if reg[c["id"]].interval in ("seeds", "seeds+bootstrap")]
    assert seeded, f"{chapter}: no claim is registered over training seeds"
    for c in seeded:
        assert c["seeds"] == [0, 1], c["id"]
        assert c["method"].startswith("hierarchical") and "2 seed(s)" in c["method"], (c["id"], c["method"])
        per = c["per_seed_estimates"]
        assert len(per) == 2, c["id"]
        if c["estimate"] is not None and None not in per:
            assert math.isclose(c["estimate"], sum(per) / 2, rel_tol=1e-5, abs_tol=1e-6), c["id"]
    moved = [
        c["id"]
        for c in seeded
        if None not in c["per_seed_estimates"] and abs(c["per_seed_estimates"][0] - c["per_seed_estimates"][1]) > 1e-9
    ]
    assert moved, f"{chapter}: every claim has the same estimate on both seeds; seed 1 was not used"
