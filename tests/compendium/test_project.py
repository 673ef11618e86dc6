"""The project's own files agree with each other: environment.yml vs pyproject.toml, profiles vs the
notebooks' parameters cells, the table of contents vs the notebooks, and the README's example runs."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from compendium.profiles import PROFILE_NAMES, PROFILES

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    py_names = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        py_names |= {_name(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_names, pip_names = set(), set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_names |= {_name(r) for r in dep["pip"] if not r.startswith("-e")}
        else:
            conda_names.add(_name(dep))
    conda_names -= {"python", "pip"}
    assert conda_names | pip_names == py_names, (
        f"only in pyproject: {sorted(py_names - conda_names - pip_names)}; "
        f"only in environment.yml: {sorted((conda_names | pip_names) - py_names)}"
    )
    # the pinned pair must be pinned identically
    pins = {_name(r): r for r in project["dependencies"] if "==" in r}
    for dep in env["dependencies"][-1]["pip"]:
        if _name(dep) in pins:
            assert dep.replace(" ", "") == pins[_name(dep)].replace(" ", "")


def _notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _parameters(nb_path: Path) -> dict:
    nb = nbformat.read(nb_path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{nb_path.name} needs exactly one cell tagged 'parameters'"
    values = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign), "the parameters cell holds plain assignments only"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


@pytest.mark.parametrize("nb_path", _notebooks(), ids=lambda p: p.stem)
def test_notebook_defaults_are_the_tiny_profile(nb_path):
    assert _parameters(nb_path) == PROFILES["tiny"][nb_path.stem]


@pytest.mark.parametrize("nb_path", _notebooks(), ids=lambda p: p.stem)
def test_every_profile_sets_every_parameter(nb_path):
    names = set(_parameters(nb_path))
    for profile in PROFILE_NAMES:
        params = PROFILES[profile][nb_path.stem]
        assert set(params) == names, f"{profile}: {sorted(set(params) ^ names)}"
        assert params["profile"] == profile


def test_toc_lists_every_chapter():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())

    def files(entries):  # every file of the toc, sections (a chapter under its preface) included
        for entry in entries:
            if "file" in entry:
                yield entry["file"]
            yield from files(entry.get("sections", []))

    listed = set(files(c for part in toc["parts"] for c in part["chapters"]))
    assert {f"book/chapters/{p.stem}" for p in _notebooks()} <= listed
    assert "book/generated/reproduction" in listed and "book/generated/figures" in listed


def test_committed_notebooks_carry_no_images():
    for nb_path in _notebooks():
        nb = nbformat.read(nb_path, as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                assert "image/png" not in out.get("data", {}), f"{nb_path.name} carries an image output"


def test_readme_example_runs(capsys):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README.md has no python example"
    example = blocks[0]
    assert len(example.strip().splitlines()) <= 10  # two lines shorter than before the curated top level
    assert all("from ualib." not in b for b in blocks), "the README's examples use the top level only"
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert out.count("tensor(") == 2
    for block in blocks[1:]:  # later examples continue the first one
        exec(compile(block, "README.md", "exec"), namespace)
    maps, probs = namespace["maps"], namespace["posterior"].probs(namespace["x"])
    from ualib.uncertainty import mutual_information

    assert maps.shape == (4, 1, 28, 28) and namespace["ig"].shape == (4, 1, 28, 28)
    assert (maps.flatten(1).sum(1) - mutual_information(probs)).abs().max() < 1e-5


def test_readme_public_api_table_lists_ualib_all():
    """The README's "Public API" table names every entry of ``ualib.__all__``, and nothing else."""
    import ualib

    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Public API", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| group")]
    listed = set(re.findall(r"`(\w+)`", " ".join(row.split("|")[2] for row in rows)))
    assert listed == set(ualib.__all__) - {"__version__"}


def test_notebooks_import_methods_from_the_top_level():
    """A chapter imports every name of ``ualib.__all__`` and every attribution method of the registry
    from ``ualib`` itself, never from the module that happens to define it."""
    import ualib
    from ualib.attribution.registry import REGISTRY

    public = set(ualib.__all__) | {spec.fn.__name__ for spec in REGISTRY.values()}
    offenders = []
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(nb_path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            for m in re.finditer(r"^from (ualib\.[\w.]+) import ([\w, ]+)$", "".join(cell["source"]), flags=re.M):
                names = {n.strip().split(" as ")[0] for n in m.group(2).split(",")}
                offenders += [f"{nb_path.stem}: {n} from {m.group(1)}" for n in sorted(names & public)]
    assert not offenders, offenders
