"""The public surface of ualib: a curated, lazy top level, and no dependency on the book machinery."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ualib

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ualib.__all__)
def test_every_public_name_resolves(name):
    assert getattr(ualib, name) is not None


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ualib.nope  # noqa: B018


def test_no_module_of_ualib_imports_the_compendium():
    """ualib is what a researcher installs; the book machinery (compendium) imports ualib, never the reverse."""
    offenders = []
    for path in sorted((ROOT / "ualib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "compendium"]
    assert not offenders, offenders


def test_import_is_light():
    """`import ualib` and a headline call load neither the compendium nor the book's or optional
    dependencies (Jupyter Book, papermill, matplotlib, GPyTorch, LIME, ipywidgets)."""
    code = (
        "import sys, torch, ualib\n"
        "from torch import nn\n"
        "m = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))\n"
        "p = ualib.MCDropout(m, num_samples=4, seed=0)\n"
        "x = torch.rand(2, 1, 4, 4)\n"
        "a = ualib.ua_backprop(p, x, kind='epistemic')\n"
        "assert a.shape == x.shape\n"
        "heavy = [m for m in ('compendium', 'papermill', 'jupyter_book', 'matplotlib', 'gpytorch', 'lime', 'ipywidgets')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
