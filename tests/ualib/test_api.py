"""The curated top level: every exported name resolves, ``import ualib`` stays light, and no module
of the library imports the compendium."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ualib

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("matplotlib", "gpytorch", "lime", "ipywidgets", "compendium")


@pytest.mark.parametrize("name", ualib.__all__)
def test_every_exported_name_resolves(name):
    value = getattr(ualib, name)
    assert value is not None
    if name != "__version__":
        assert name in dir(ualib)
        # the name is the object its defining module exports, not a copy
        module = importlib.import_module(ualib._EXPORTS[name])
        assert getattr(module, name) is value


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'ua_backprob'"):
        ualib.ua_backprob  # noqa: B018


def test_import_is_light():
    code = (
        "import sys, json, ualib; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if any(k == m or k.startswith(m + '.') for k in sys.modules)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=_env()
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_headline_methods_do_not_load_plotting_or_the_compendium():
    code = (
        "import sys, json, ualib; ualib.MCDropout; ualib.ua_backprop; ualib.uam; ualib.FullGrad; "
        "ualib.uncertainty_target; ualib.gradient_metrics; "
        "print(json.dumps([m for m in ('matplotlib', 'ipywidgets', 'compendium') if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=_env()
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def _env():
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif (  # importlib.import_module("compendium...")
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


LIBRARY_FILES = sorted((ROOT / "ualib").rglob("*.py"))


def test_the_ast_scan_sees_imports():
    # the scanner is not vacuous: it finds the imports of a module we know
    assert "torch" in _imported_modules(ROOT / "ualib" / "attribution" / "gradient.py")
    assert len(LIBRARY_FILES) > 30


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_never_imports_the_compendium(path):
    bad = sorted(m for m in _imported_modules(path) if m == "compendium" or m.startswith("compendium."))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_a_headline_call_loads_no_optional_dependency():
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


#: import name -> distribution, for the library's core dependencies ([project] dependencies)
_IMPORT_NAMES = {"sklearn": "scikit-learn", "PIL": "pillow"}
#: optional packages the library imports only inside the functions that need them (the book extra)
_LAZY_OPTIONAL = {"ipywidgets", "IPython"}


def test_pip_install_without_extras_covers_every_library_import():
    """``pip install .`` (no extra) gives every third-party package any ``ualib`` module imports; the
    book's packages (ipywidgets, IPython) are imported only inside the functions that use them."""
    import re
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    core = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower() for d in deps}
    missing, eager = set(), set()
    for path in LIBRARY_FILES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {
            (alias.name if isinstance(node, ast.Import) else node.module).split(".")[0]
            for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "level", 0) == 0
            for alias in (node.names if isinstance(node, ast.Import) else [node])
        }
        for name in {m.split(".")[0] for m in _imported_modules(path)}:
            if name in sys.stdlib_module_names or name in ("ualib", "__future__"):
                continue
            if name in _LAZY_OPTIONAL:
                if name in top_level:
                    eager.add(f"{path.relative_to(ROOT)}: {name}")
            elif _IMPORT_NAMES.get(name, name).lower() not in core:
                missing.add(f"{path.relative_to(ROOT)}: {name}")
    assert not missing, f"imported by the library but not a [project] dependency: {sorted(missing)}"
    assert not eager, f"book-extra packages imported at module level: {sorted(eager)}"
