"""Chapters that judge their claims over several training seeds run the other seeds' code path (issue #13).

The ``tiny`` profile trains one seed, so the book's tiny build never executes what a chapter does for its
second seed; the ``cpu`` and ``gpu`` profiles train 3 and 5. Here a chapter runs in ``tiny`` with
``seeds=[0, 1]``: it must finish, and every claim must be judged over both seeds by the hierarchical
bootstrap, with an estimate that is not seed 0's alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compendium import claims as C
from compendium.book import run_chapter

ROOT = Path(__file__).resolve().parents[2]
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
    monkeypatch.setenv("UALIB_RESULTS", str(tmp_path / "results"))  # the kernel inherits it
    run_chapter(chapter, "tiny", output_dir=tmp_path / "nb", overrides={"seeds": [0, 1]}, progress=False)
    doc = json.loads((tmp_path / "results" / "tiny" / f"{chapter}.json").read_text())
    assert doc["metadata"]["seeds"] == [0, 1]
    reg = C.registry()
    seeded = [c for c in doc["claims"] if reg[c["id"]].interval in ("seeds", "seeds+bootstrap")]
    assert seeded, f"{chapter}: no claim is registered over training seeds"
    for c in seeded:
        assert c["seeds"] == [0, 1], c["id"]
        assert c["method"].startswith("hierarchical") and "2 seed(s)" in c["method"], (c["id"], c["method"])
    one_seed = json.loads((ROOT / "tests" / "reference" / "tiny" / f"{chapter}.json").read_text())
    alone = {c["id"]: c["estimate"] for c in one_seed["claims"]}
    moved = [
        c["id"]
        for c in seeded
        if c["estimate"] is not None and alone.get(c["id"]) is not None and abs(c["estimate"] - alone[c["id"]]) > 1e-9
    ]
    assert moved, f"{chapter}: every two-seed estimate equals the one-seed reference; seed 1 was not used"
