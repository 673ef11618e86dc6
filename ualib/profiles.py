"""The one place that defines the compendium's run profiles.

``tiny``
    scikit-learn's bundled digits; seconds per notebook. These are the notebooks' own defaults
    (their ``parameters`` cell) and what ``make test`` runs through nbval.
``cpu``
    real datasets (MNIST, notMNIST, Omniglot, ...) at laptop scale; the default of ``make book``.
``gpu``
    paper scale, ``device="cuda"``.

``make book PROFILE=...`` hands ``PROFILES[profile][chapter]`` to papermill, which injects it after
the notebook's ``parameters`` cell.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROFILES", "PROFILE_NAMES", "chapter_parameters"]

PROFILE_NAMES = ("tiny", "cpu", "gpu")

_BASICS_TINY: dict[str, Any] = {
    "profile": "tiny",
    "dataset": "digits",
    "in_size": 8,
    "n_train": None,
    "n_test": None,
    "n_ood": 400,
    "epochs": {"mc_dropout": 40, "ensemble": 40, "edl": 60},
    "batch_size": 64,
    "num_samples": 20,
    "num_members": 5,
    "dropout": 0.3,
    "device": "cpu",
    "seed": 0,
}

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {"01_uncertainty_basics": _BASICS_TINY},
    "cpu": {
        "01_uncertainty_basics": {
            **_BASICS_TINY,
            "profile": "cpu",
            "dataset": "mnist",
            "in_size": 28,
            "n_ood": 2000,
            "epochs": {"mc_dropout": 3, "ensemble": 3, "edl": 5},
            "batch_size": 128,
        }
    },
    "gpu": {
        "01_uncertainty_basics": {
            **_BASICS_TINY,
            "profile": "gpu",
            "dataset": "mnist",
            "in_size": 28,
            "n_ood": 10000,
            "epochs": {"mc_dropout": 20, "ensemble": 20, "edl": 30},
            "batch_size": 128,
            "num_samples": 50,
            "device": "cuda",
        }
    },
}


def chapter_parameters(profile: str, chapter: str) -> dict[str, Any]:
    """The papermill parameters of ``chapter`` in ``profile`` (a copy)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    if chapter not in PROFILES[profile]:
        raise ValueError(f"chapter {chapter!r} has no parameters in profile {profile!r}; known: {list(PROFILES[profile])}")
    return dict(PROFILES[profile][chapter])
