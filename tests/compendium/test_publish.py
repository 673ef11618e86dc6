"""The publish workflow (.github/workflows/book.yml) is valid YAML of the shape a CI service runs, uses the
Makefile's own targets, and the repository URL of the buttons comes from one place (_config.yml, or the
workflow's UALIB_REPOSITORY_URL)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from compendium.book import REPOSITORY_ENV, repository_url
from compendium.pdf import toc_pages

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def _workflow() -> dict:
    doc = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.M))


def test_workflow_is_a_valid_pages_workflow():
    doc = _workflow()
    assert doc["name"] and "push" in doc["on"] and "workflow_dispatch" in doc["on"]
    assert doc["permissions"]["pages"] == "write" and doc["permissions"]["id-token"] == "write"
    jobs = doc["jobs"]
    assert set(jobs) == {"build", "deploy"} and jobs["deploy"]["needs"] == "build"
    for job in jobs.values():
        assert isinstance(job["runs-on"], str) and job["steps"]
        for step in job["steps"]:
            assert isinstance(step, dict) and step.get("name"), step
            assert ("uses" in step) != ("run" in step), step  # exactly one of the two
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]
    uses = [s["uses"].split("@")[0] for j in jobs.values() for s in j["steps"] if "uses" in s]
    assert "actions/upload-pages-artifact" in uses and "actions/deploy-pages" in uses
    upload = next(s for s in jobs["build"]["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
    cache = next(s for s in jobs["build"]["steps"] if s.get("uses", "").startswith("actions/cache"))
    assert {"book/chapters", ".cache/models"} <= set(cache["with"]["path"].split())
    assert doc["env"]["PROFILE"] == "cpu"


def test_workflow_builds_with_the_makefile_targets():
    """Every `make X` the workflow runs is a target of the Makefile, and the book and the PDF are built
    through `make book` / `make pdf`, not with commands of their own."""
    runs = "\n".join(s["run"] for j in _workflow()["jobs"].values() for s in j["steps"] if "run" in s)
    called = set(re.findall(r"\bmake\s+([a-z][\w-]*)", runs))
    assert {"env", "book", "pdf"} <= called
    assert called <= _make_targets(), called - _make_targets()
    assert "jupyter-book" not in runs and "compendium.book" not in runs
    # the Makefile's pdf target builds the book first and prints it with compendium.pdf
    mk = (ROOT / "Makefile").read_text()
    assert re.search(r"^pdf:\s*book\b", mk, re.M) and "-m compendium.pdf" in mk


def test_repository_url_is_set_in_one_place(monkeypatch):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    monkeypatch.delenv(REPOSITORY_ENV, raising=False)
    assert repository_url(ROOT) == config["repository"]["url"].rstrip("/")
    monkeypatch.setenv(REPOSITORY_ENV, "https://example.org/someone/fork/")
    assert repository_url(ROOT) == "https://example.org/someone/fork"
    monkeypatch.setenv(REPOSITORY_ENV, "not a url")
    with pytest.raises(ValueError, match="https://"):
        repository_url(ROOT)
    # the workflow sets the override from the hosting service's own variables, typing no URL
    env = _workflow()["env"][REPOSITORY_ENV]
    assert env == "${{ github.server_url }}/${{ github.repository }}"
    # no other file of the book machinery types the URL
    url = config["repository"]["url"]
    for path in [WORKFLOW, ROOT / "Makefile", *sorted((ROOT / "compendium").glob("*.py"))]:
        assert url not in path.read_text(), path


def test_toc_pages_follow_the_toc():
    pages = toc_pages(ROOT)
    assert pages[0] == "book/intro.html" and len(pages) == len(set(pages))
    chapters = [p for p in pages if p.startswith("book/chapters/")]
    names = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [Path(p).stem for p in chapters] == names
