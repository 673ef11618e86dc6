"""The chapters' tiny results agree with the committed reference on this machine's own settings.

`make test` runs nbval on every notebook first (pyproject's testpaths put notebooks/ before tests/):
each tiny chapter executes under the ambient CPU settings and writes results/tiny/<chapter>.json. Here
those files are compared with tests/reference/tiny/ within compendium/tolerances.yml. The browser test
executes the same chapters once more under a foreign CPU configuration and compares them with the same
reference (test_browser.py::test_foreign_build_agrees_with_the_reference).
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import prerequisite_missing

from compendium.book import chapters
from compendium.reproduce import REFERENCE_ROOT, compare_trees

ROOT = Path(__file__).resolve().parents[2]


def test_reference_covers_every_chapter():
    """The committed reference (`make reference` regenerates it) has one results file per chapter."""
    names = {p.stem for p in (REFERENCE_ROOT / "tiny").glob("*.json")}
    assert names == set(chapters(ROOT))
    for name in names:
        doc = json.loads((REFERENCE_ROOT / "tiny" / f"{name}.json").read_text())
        assert doc["profile"] == "tiny" and doc["chapter"] == name and doc["claims"]


def test_nbval_run_agrees_with_the_reference(session_start):
    """The results the nbval run of this session wrote agree with the reference within tolerance."""
    results = ROOT / "results"
    fresh = [
        n
        for n in chapters(ROOT)
        if (results / "tiny" / f"{n}.json").is_file()
        and (results / "tiny" / f"{n}.json").stat().st_mtime >= session_start
    ]
    if len(fresh) < len(chapters(ROOT)):
        msg = (
            "the notebooks were not executed in this test session (run `make test`, or pytest with "
            f"notebooks/ before tests/); fresh results only for {fresh}"
        )
        prerequisite_missing(msg)
    report = compare_trees(REFERENCE_ROOT, results, "tiny")
    bad = {name: [str(d) for d in diffs] for name, diffs in report.items() if diffs}
    assert not bad, json.dumps(bad, indent=1)
