"""Fixtures shared by several test modules."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NoReturn

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
#: when this test session started: the nbval run of the notebooks (collected first, see pyproject's
#: testpaths) writes results/tiny/*.json after it, and tests/compendium/test_portability.py compares them
SESSION_START = time.time()


def in_ci() -> bool:
    """``CI`` is set (true, 1 or yes): a missing dataset, browser or tool is then a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def prerequisite_missing(msg: str) -> NoReturn:
    """A test's prerequisite (dataset, browser, tool) is missing: skip it on a developer's machine, fail it in
    CI, where everything the project's own files install must be there. Test modules import it from here."""
    if in_ci():
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The offline dataset mirror: ``UALIB_DATA_MIRROR`` or ``../shared/data``.

    Missing, it skips the test on a developer's machine and FAILS it in CI (``CI=true``), where the
    mirror is always beside the clone.
    """
    env = os.environ.get("UALIB_DATA_MIRROR", "").strip()
    path = Path(env) if env else REPO.parent / "shared" / "data"
    if not (path / "SHA256SUMS").is_file():
        prerequisite_missing(f"offline dataset mirror not found at {path} (no SHA256SUMS); set UALIB_DATA_MIRROR to it")
    return path


@pytest.fixture
def float64():
    """Run a test with float64 as the default dtype (naive reference loops compare exactly)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def one_thread():
    """Run the test with one torch thread (restored afterwards)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def session_start() -> float:
    """The time this test session started (before the notebooks ran)."""
    return SESSION_START
