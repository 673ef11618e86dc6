"""The ``gpu`` profile cannot fail on a typo (issue #15): every chapter's ``gpu`` parameters are names and
types its notebook's parameters cell accepts, and ``python -m compendium.book run --smoke`` runs a chapter
with those parameters shrunk to CPU size (one chapter here, as a slow test: all of them would take CI's
budget)."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import nbformat
import pytest
from conftest import prerequisite_missing

from compendium import book
from compendium.profiles import PROFILES, SMOKE_MAX_N, smoke_parameters
from ualib.data._images import DEBIAN_FASHION_MNIST

ROOT = Path(__file__).resolve().parents[2]
SMOKE_CHAPTER = "06_gradient_meta_classification"


def _notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _parameters(nb_path: Path) -> dict:
    """The notebook's parameters cell, evaluated literally (what papermill's injected values replace)."""
    (cell,) = [c for c in nbformat.read(nb_path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body}


def _plausible(default, value) -> str | None:
    """Why ``value`` cannot stand where the notebook's ``default`` stands, or None."""
    if default is None or value is None:  # "all" / "off": either side may be None
        return None
    if isinstance(default, bool) or isinstance(value, bool):
        return None if isinstance(default, bool) and isinstance(value, bool) else f"{value!r} for a bool"
    if isinstance(default, (int, float)):
        return None if isinstance(value, (int, float)) else f"{value!r} for a number"
    if isinstance(default, dict):
        if not isinstance(value, dict):
            return f"{value!r} for a dict"
        extra = sorted(set(value) - set(default))
        if extra:
            return f"keys {extra} the notebook's default {sorted(default)} does not have"
        return next((why for k, v in value.items() if (why := _plausible(default[k], v))), None)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return f"{value!r} for a list"
        if default and value:
            return next((why for v in value if (why := _plausible(default[0], v))), None)
        return None
    return None if type(value) is type(default) else f"{type(value).__name__} for a {type(default).__name__}"


@pytest.mark.parametrize("nb_path", _notebooks(), ids=lambda p: p.stem)
@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_profile_parameters_fit_the_parameters_cell(nb_path: Path, profile: str) -> None:
    defaults = _parameters(nb_path)
    params = PROFILES[profile][nb_path.stem]
    assert set(params) == set(defaults), sorted(set(params) ^ set(defaults))
    problems = {k: why for k, v in params.items() if (why := _plausible(defaults[k], v))}
    assert not problems, problems


def test_plausibility_rejects_what_a_typo_makes() -> None:
    assert _plausible(3, "3") and _plausible(True, 1) and _plausible({"mc_dropout": 2}, {"mc_droput": 2})
    assert _plausible("cpu", ["cuda"]) and _plausible([0], ["0"])
    assert not _plausible(None, 5) and not _plausible(2, 2.5) and not _plausible({"a": 1}, {"a": None})


@pytest.mark.parametrize("nb_path", _notebooks(), ids=lambda p: p.stem)
def test_smoke_parameters_shrink_the_gpu_ones(nb_path: Path) -> None:
    gpu, smoke = PROFILES["gpu"][nb_path.stem], smoke_parameters(nb_path.stem)
    assert set(smoke) == set(gpu) and smoke["profile"] == "smoke"
    assert smoke.get("device", "cpu") == "cpu"
    for key, value in smoke.items():
        if key in ("profile", "device", "seeds"):
            continue
        if "epoch" in key and isinstance(value, int) and not isinstance(value, bool):
            assert value <= 1, (key, value)
        if isinstance(value, str) or isinstance(value, bool):
            assert value == gpu[key], key  # datasets and switches: the gpu code path
    if "in_size" in gpu:
        assert smoke["in_size"] == gpu["in_size"]


@pytest.mark.slow
@pytest.mark.data
def test_smoke_run_of_one_chapter(mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file():  # chapter 6's Fashion-MNIST task
        prerequisite_missing("Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    monkeypatch.setenv("UALIB_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("UALIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("UALIB_CACHE", str(tmp_path / "models"))
    monkeypatch.setenv("UALIB_DATA", os.environ.get("UALIB_DATA", str(tmp_path / "data")))
    monkeypatch.setenv("UALIB_MAX_N", "1")  # the run sets its own cap; monkeypatch removes it afterwards
    rc = book.main(["run", "--smoke", "--chapter", SMOKE_CHAPTER, "--output-dir", str(tmp_path / "nb")])
    assert rc == 0 and (tmp_path / "nb" / f"{SMOKE_CHAPTER}.ipynb").is_file()
    assert os.environ["UALIB_MAX_N"] == str(SMOKE_MAX_N)
    doc = json.loads((tmp_path / "results" / "smoke" / f"{SMOKE_CHAPTER}.json").read_text())
    assert doc["profile"] == "smoke" and doc["metadata"]["device"].startswith("cpu")
    # the gpu code path: the gpu profile's datasets and image size, at the capped sizes
    assert doc["metrics"]["sizes"]["test"] == SMOKE_MAX_N
    assert doc["metrics"]["fashion_mnist"]["sizes"]["train"] == SMOKE_MAX_N
    assert len(doc["claims"]) == 14
