"""The compendium's standard trained models, described once so chapters share cached weights.

Chapters that train "the MC dropout / ensemble / EDL digit classifiers" call
:func:`digit_classifiers` with their profile's parameters; identical configurations have identical
cache keys (:mod:`ualib.training`), so a model trained by one chapter is loaded by the next.
"""

from __future__ import annotations

from collections.abc import Mapping

from .training import TrainConfig

__all__ = ["digit_classifiers", "evidential_classifier", "cifar_classifiers"]


def digit_classifiers(
    *,
    dataset: str,
    in_size: int,
    epochs: Mapping[str, int],
    batch_size: int,
    num_samples: int,
    dropout: float,
    seed: int,
    num_members: int = 5,
) -> dict[str, TrainConfig]:
    """LeNet-style MC dropout, deep ensemble and EDL (softplus evidence, log loss) for 1-channel digits.

    ``epochs`` maps ``"mc_dropout"``, ``"ensemble"`` and ``"edl"`` to their epoch counts; a posterior
    missing from it is left out.
    """
    common = dict(dataset=f"{dataset}/train", model="lenet", batch_size=batch_size, seed=seed)
    arch = dict(in_channels=1, in_size=in_size, num_classes=10, dropout=dropout)
    specs = {
        "MC dropout": ("mc_dropout", arch, {"num_samples": num_samples}),
        "deep ensemble": ("ensemble", arch, {"num_members": num_members}),
        "EDL": ("edl", {**arch, "dropout": 0.0}, {"evidence": "softplus", "loss": "log"}),
    }
    return {
        name: TrainConfig(**common, model_kwargs=mk, posterior=post, posterior_kwargs=pk, epochs=epochs[post])
        for name, (post, mk, pk) in specs.items()
        if post in epochs
    }


def evidential_classifier(
    *,
    dataset: str,
    in_size: int,
    epochs: int,
    batch_size: int,
    lr: float,
    anneal_epochs: int,
    seed: int,
    in_channels: int = 1,
    model: str = "lenet",
    width: int | None = None,
) -> TrainConfig:
    """The evidential CNN of the UAM chapter: BatchNorm, no dropout, ReLU evidence, MSE loss with KL annealing.

    ReLU evidence keeps the evidence piecewise linear, so FullGrad decomposes it exactly (METHODS §5.2).
    """
    arch = dict(in_channels=in_channels, in_size=in_size, num_classes=10, dropout=0.0, batchnorm=True)
    if width is not None:
        arch["width"] = width
    return TrainConfig(dataset=f"{dataset}/train", model=model, model_kwargs=arch, posterior="edl",
                       posterior_kwargs={"evidence": "relu", "loss": "mse", "anneal_epochs": anneal_epochs},
                       epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)


def cifar_classifiers(
    *, epochs: int, batch_size: int, num_samples: int, dropout: float, seed: int, width: int = 32
) -> dict[str, TrainConfig]:
    """A small VGG-style CNN with BatchNorm and MC dropout for 32x32 colour images (CIFAR-10)."""
    return {
        "MC dropout": TrainConfig(
            dataset="cifar10/train",
            model="small_cnn",
            model_kwargs=dict(in_channels=3, in_size=32, num_classes=10, width=width, dropout=dropout, batchnorm=True),
            posterior="mc_dropout",
            posterior_kwargs={"num_samples": num_samples},
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
        )
    }
