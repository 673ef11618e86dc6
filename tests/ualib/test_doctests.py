"""The docstring examples are tests: every ``>>>`` line in ``ualib`` runs here (issue #14).

Two checks:

* every module of ``ualib`` (found by walking the package, so a new module is included without
  editing this file) runs its doctests; one test per module, so a failure names the module;
* every public function and class (``ualib.__all__`` and the attribution registry) has an
  ``Examples`` section with at least one ``>>>`` line; a public name added without an example fails.

pytest's ``--doctest-modules`` is not used: the configured test paths include the notebooks.
Nothing is skipped: an example that needs an optional dependency (GPyTorch, LIME, matplotlib) runs
with it, and a module that cannot be imported fails its test.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import io
import pkgutil
import random
import re

import numpy as np
import pytest
import torch

import ualib
from ualib.attribution import registry

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    found = pkgutil.walk_packages(ualib.__path__, prefix="ualib.", onerror=lambda name: None)
    return sorted({"ualib", *(m.name for m in found)})


MODULES = _module_names()


@pytest.mark.parametrize("module_name", MODULES)
def test_module_doctests(module_name: str) -> None:
    module = importlib.import_module(module_name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    py_state, np_state = random.getstate(), np.random.get_state()
    # the examples seed torch's global generator; leave it (and Python's, NumPy's) as it was
    with torch.random.fork_rng(devices=[]):
        for test in sorted(tests, key=lambda t: t.name):
            runner.run(test, out=out.write)
    random.setstate(py_state)
    np.random.set_state(np_state)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed:\n{out.getvalue()}"


def test_walk_finds_the_package() -> None:
    """Guard against an empty parametrization (a broken walk would silently test nothing)."""
    assert {"ualib.uncertainty", "ualib.attribution.registry", "ualib.posteriors.mc_dropout"} <= set(MODULES)


def _public() -> dict[str, object]:
    names = {n: getattr(ualib, n) for n in ualib.__all__ if n != "__version__"}
    for n in registry.__all__:
        obj = getattr(registry, n)
        if inspect.isclass(obj) or inspect.isroutine(obj):
            names.setdefault(f"attribution.registry.{n}", obj)
    return names


PUBLIC = _public()
_EXAMPLES = re.compile(r"^Examples\n-{8,}\n(?:.*\n)*?\s*>>> \S", re.MULTILINE)


def _doc(name: str, obj: object) -> str:
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return inspect.cleandoc(obj.__doc__ or "")  # own docstring only: no inherited one
    # a typing alias (ualib.Target) has no docstring of its own; the module that defines it shows it
    module = importlib.import_module(ualib._EXPORTS[name])
    doc = inspect.cleandoc(module.__doc__ or "")
    assert name in doc, f"{module.__name__}'s docstring should show {name} in its Examples"
    return doc


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_name_has_examples(name: str) -> None:
    doc = _doc(name, PUBLIC[name])
    assert _EXAMPLES.search(doc + "\n"), f"{name}: the docstring needs an 'Examples' section with a '>>>' line"
