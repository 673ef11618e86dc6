"""Where the project keeps data, cached models and results."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["repo_root", "cache_dir", "results_dir"]


def repo_root() -> Path | None:
    """The compendium's checkout (parent of the ``ualib`` package) when ``ualib`` runs from one."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").is_file() else None


def _default(sub: str) -> Path:
    root = repo_root()
    return (root / sub) if root is not None else Path.home() / ".ualib" / sub.lstrip(".")


def cache_dir() -> Path:
    """Model cache: ``UALIB_CACHE``, else ``<repo>/.cache/models``, else ``~/.ualib/cache/models``."""
    env = os.environ.get("UALIB_CACHE")
    return Path(env) if env else _default(".cache/models")


def results_dir() -> Path:
    """Results root: ``UALIB_RESULTS``, else ``<repo>/results``."""
    env = os.environ.get("UALIB_RESULTS")
    return Path(env) if env else _default("results")
