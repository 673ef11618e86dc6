"""The pre-commit configuration runs the ruff of the environment and the book's own output stripper."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict:
    return yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())


def test_ruff_hooks_pin_the_environments_ruff():
    (ruff,) = [r for r in _config()["repos"] if r["repo"].endswith("ruff-pre-commit")]
    assert {h["id"] for h in ruff["hooks"]} == {"ruff-check", "ruff-format"}
    exe = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
    assert ruff["rev"] == f"v{version}"


def test_strip_hook_leaves_a_committed_notebook_unchanged(tmp_path):
    (local,) = [r for r in _config()["repos"] if r["repo"] == "local"]
    (hook,) = local["hooks"]
    nb = ROOT / "notebooks" / "01_uncertainty_basics.ipynb"
    copy = tmp_path / nb.name
    copy.write_bytes(nb.read_bytes())
    cmd = shlex.split(hook["entry"])
    assert cmd[0] == "python"
    subprocess.run([sys.executable, *cmd[1:], str(copy)], check=True, cwd=ROOT, capture_output=True)
    assert copy.read_bytes() == nb.read_bytes()
