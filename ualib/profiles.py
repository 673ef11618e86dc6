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

_UA_TINY: dict[str, Any] = {
    "profile": "tiny",
    "dataset": "digits",
    "in_size": 8,
    "epochs": {"mc_dropout": 40, "ensemble": 40},
    "batch_size": 64,
    "num_samples": 20,
    "num_members": 5,
    "dropout": 0.3,
    "n_explain": 40,
    "n_planted": 60,
    "patch_size": 4,
    "ig_steps": 32,
    "smoothgrad_samples": 16,
    "blur_sigma": 1.0,
    "max_fraction": 0.2,
    "cifar": False,
    "cifar_epochs": 0,
    "cifar_width": 16,
    "device": "cpu",
    "seed": 0,
}

_MITIGATION_TINY: dict[str, Any] = {
    "profile": "tiny",
    "dataset": "digits",
    "in_size": 8,
    "epochs": {"mc_dropout": 40},
    "batch_size": 64,
    "num_samples": 20,
    "dropout": 0.3,
    "n_finetune": None,
    "finetune_epochs": 10,
    "finetune_lr": 3e-4,
    "quantile": 0.8,
    "lam": 1.0,
    "mode": "mask",
    "n_planted": 200,
    "patch_size": 4,
    "device": "cpu",
    "seed": 0,
}

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {"01_uncertainty_basics": _BASICS_TINY, "02_ua_backprop": _UA_TINY, "03_uncertainty_mitigation": _MITIGATION_TINY},
    "cpu": {
        "01_uncertainty_basics": {
            **_BASICS_TINY,
            "profile": "cpu",
            "dataset": "mnist",
            "in_size": 28,
            "n_ood": 2000,
            "epochs": {"mc_dropout": 3, "ensemble": 3, "edl": 5},
            "batch_size": 128,
        },
        "02_ua_backprop": {
            **_UA_TINY,
            "profile": "cpu",
            "dataset": "mnist",
            "in_size": 28,
            "epochs": {"mc_dropout": 3, "ensemble": 3},
            "batch_size": 128,
            "n_explain": 100,
            "n_planted": 200,
            "patch_size": 12,
            "blur_sigma": 2.0,
            "cifar": True,
            "cifar_epochs": 15,
        },
        "03_uncertainty_mitigation": {
            **_MITIGATION_TINY,
            "profile": "cpu",
            "dataset": "mnist",
            "in_size": 28,
            "epochs": {"mc_dropout": 3},
            "batch_size": 128,
            "n_finetune": 20000,
            "finetune_epochs": 2,
            "n_planted": 1000,
            "patch_size": 12,
        },
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
        },
        "02_ua_backprop": {
            **_UA_TINY,
            "profile": "gpu",
            "dataset": "mnist",
            "in_size": 28,
            "epochs": {"mc_dropout": 20, "ensemble": 20},
            "batch_size": 128,
            "num_samples": 50,
            "n_explain": 1000,
            "n_planted": 1000,
            "patch_size": 12,
            "blur_sigma": 2.0,
            "cifar": True,
            "cifar_epochs": 60,
            "cifar_width": 32,
            "device": "cuda",
        },
        "03_uncertainty_mitigation": {
            **_MITIGATION_TINY,
            "profile": "gpu",
            "dataset": "mnist",
            "in_size": 28,
            "epochs": {"mc_dropout": 20},
            "batch_size": 128,
            "num_samples": 50,
            "n_finetune": None,
            "finetune_epochs": 5,
            "n_planted": 5000,
            "patch_size": 12,
            "device": "cuda",
        },
    },
}


def chapter_parameters(profile: str, chapter: str) -> dict[str, Any]:
    """The papermill parameters of ``chapter`` in ``profile`` (a copy)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    if chapter not in PROFILES[profile]:
        raise ValueError(f"chapter {chapter!r} has no parameters in profile {profile!r}; known: {list(PROFILES[profile])}")
    return dict(PROFILES[profile][chapter])
