"""The compendium's standard trained models, described once so chapters share cached weights.

Chapters that train "the MC dropout / ensemble / EDL digit classifiers" call
:func:`digit_classifiers` with their profile's parameters; identical configurations have identical
cache keys (:mod:`ualib.training`), so a model trained by one chapter is loaded by the next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ualib import data as _data
from ualib._checks import check_positive_int
from ualib.data import shift
from ualib.training import TrainConfig

__all__ = [
    "CIFAR_RECIPE",
    "EnsemblePool",
    "ensemble_pool",
    "digit_classifiers",
    "evidential_classifier",
    "cifar_configs",
    "cifar_classifiers",
    "explorer_classifiers",
    "explorer_images",
    "uq_configs",
]


#: How every CIFAR-10 model of the compendium is trained (issue #15): the small VGG-style CNN of
#: :class:`ualib.models.SmallCNN` with BatchNorm, the standard augmentation (random crops of the 4-pixel
#: zero-padded image and horizontal flips; He et al. 2016, §4.2) and a one-cycle schedule peaking at
#: ``lr`` (Smith & Topin 2019). On the offline subset (4,000 training images, 32x32) width 16 reaches
#: about 0.69 test accuracy after 30 epochs with MC dropout (105 s on two CPU cores); the plain recipe
#: it replaces (no augmentation, constant rate, 15 epochs) stayed near 0.5.
CIFAR_RECIPE: dict = {"model": "small_cnn", "augment": "crop_flip", "schedule": "onecycle", "lr": 3e-3}


@dataclass(frozen=True)
class EnsemblePool:
    """The deep ensembles of several training seeds drawn as member subsets of one larger trained ensemble.

    Lakshminarayanan et al.'s ensembles are independent trainings; a study that repeats one over training
    seeds trains ``M x len(seeds)`` networks. Issue #15 allows drawing the seed replicates from one pool of
    ``size`` members instead: seed ``seeds[r]``'s ensemble is the ``M`` members that start at member
    ``r * (size // len(seeds))``, wrapping around, of the pool trained with seed ``seeds[0]``. With 7 members
    and 3 seeds of 5-member ensembles: members 0-4, 2-6 and 4, 5, 6, 0, 1, so 7 trainings instead of 15, and any
    two replicates share 3 members. The replicates are therefore correlated: an interval over them understates
    the spread that independent ensembles would show, and the chapters that use a pool say so.
    """

    size: int
    seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        check_positive_int(self.size, "size")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct training seeds, at least one, got {list(self.seeds)}")
        if len(self.seeds) > self.size:
            raise ValueError(f"a pool of {self.size} members cannot give {len(self.seeds)} distinct draws")

    def draw(self, seed: int, num_members: int) -> tuple[int, dict]:
        """``(training seed, ensemble options)`` of seed ``seed``'s ``num_members``-member ensemble."""
        if seed not in self.seeds:
            raise ValueError(f"seed {seed} is not one of the pool's seeds {list(self.seeds)}")
        if num_members > self.size:
            raise ValueError(f"num_members ({num_members}) must not exceed the pool's size ({self.size})")
        start = self.seeds.index(seed) * (self.size // len(self.seeds))
        members = [(start + j) % self.size for j in range(num_members)]
        return self.seeds[0], {"num_members": self.size, "members": members}

    def describe(self, num_members: int) -> str:
        """One line for a chapter's output: which members each seed's ensemble uses."""
        draws = "; ".join(f"seed {s}: {self.draw(s, num_members)[1]['members']}" for s in self.seeds)
        return (
            f"deep ensembles drawn from one pool of {self.size} members trained with seed {self.seeds[0]} "
            f"({num_members} members each; {draws})"
        )


def ensemble_pool(size: int | None, seeds: Sequence[int]) -> EnsemblePool | None:
    """The :class:`EnsemblePool` of ``size`` members for ``seeds``, or ``None`` (independent ensembles) when
    ``size`` is ``None``: the chapters' ``ensemble_pool`` parameter."""
    return None if size is None else EnsemblePool(size, tuple(int(s) for s in seeds))


def _ensemble(seed: int, num_members: int, pool: EnsemblePool | None) -> tuple[int, dict]:
    return (seed, {"num_members": num_members}) if pool is None else pool.draw(seed, num_members)


def _configs(specs: Mapping[str, tuple], common: dict, epochs: Mapping[str, int], seed: int, ens_seed: int) -> dict:
    """A :class:`TrainConfig` per ``{name: (posterior, model_kwargs, posterior_kwargs)}`` whose posterior has an
    epoch count; the ensemble trains with ``ens_seed`` (its pool's seed), the others with ``seed``."""
    return {
        name: TrainConfig(
            **common,
            model_kwargs=mk,
            posterior=post,
            posterior_kwargs=pk,
            epochs=epochs[post],
            seed=ens_seed if post == "ensemble" else seed,
        )
        for name, (post, mk, pk) in specs.items()
        if post in epochs
    }


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
    pool: EnsemblePool | None = None,
) -> dict[str, TrainConfig]:
    """LeNet-style MC dropout, deep ensemble and EDL (softplus evidence, log loss) for 1-channel digits.

    ``epochs`` maps ``"mc_dropout"``, ``"ensemble"`` and ``"edl"`` to their epoch counts; a posterior
    missing from it is left out. With a ``pool``, seed ``seed``'s ensemble is drawn from it
    (:class:`EnsemblePool`).
    """
    common = dict(dataset=f"{dataset}/train", model="lenet", batch_size=batch_size)
    arch = dict(in_channels=1, in_size=in_size, num_classes=10, dropout=dropout)
    ens_seed, ens = _ensemble(seed, num_members, pool)
    specs = {
        "MC dropout": ("mc_dropout", arch, {"num_samples": num_samples}),
        "deep ensemble": ("ensemble", arch, ens),
        "EDL": ("edl", {**arch, "dropout": 0.0}, {"evidence": "softplus", "loss": "log"}),
    }
    return _configs(specs, common, epochs, seed, ens_seed)


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
    augment: str | None = None,
    schedule: str = "constant",
    evidence: str = "relu",
    loss: str = "mse",
) -> TrainConfig:
    """The evidential CNN of the UAM chapter: BatchNorm, no dropout, ReLU evidence, MSE loss with KL annealing.

    ReLU evidence keeps the evidence piecewise linear, so FullGrad decomposes it exactly (book: chapter 4, "Uncertainty Activation Maps", section "The method" — notebooks/04_uam.ipynb).
    ``augment`` and ``schedule`` are those of :class:`~ualib.training.TrainConfig` (the CIFAR-10 model
    uses :data:`CIFAR_RECIPE`'s). ``evidence`` is the evidence function (METHODS.md §2.5: ``"relu"``,
    ``"softplus"`` or ``"exp"``) and ``loss`` the EDL data term (§2.5: ``"mse"``, ``"log"``, ``"digamma"``).
    """
    arch = dict(in_channels=in_channels, in_size=in_size, num_classes=10, dropout=0.0, batchnorm=True)
    if width is not None:
        arch["width"] = width
    return TrainConfig(
        augment=augment,
        schedule=schedule,
        dataset=f"{dataset}/train",
        model=model,
        model_kwargs=arch,
        posterior="edl",
        posterior_kwargs={"evidence": evidence, "loss": loss, "anneal_epochs": anneal_epochs},
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
    )


def cifar_configs(
    *,
    epochs: Mapping[str, int],
    batch_size: int,
    seed: int,
    num_samples: int = 20,
    dropout: float = 0.3,
    width: int = 16,
    num_members: int = 5,
    dropconnect_p: float = 0.2,
    flipout_kl_weight: float | None = 1e-6,
    flipout_rho_init: tuple[float, float] | None = (-6.0, 0.1),
    anneal_epochs: int | None = None,
    edl_evidence: str = "softplus",
    edl_loss: str = "log",
    pool: EnsemblePool | None = None,
) -> dict[str, TrainConfig]:
    """The compendium's CIFAR-10 posteriors at 32x32, all trained with :data:`CIFAR_RECIPE`.

    ``epochs`` maps ``mc_dropout``, ``dropconnect``, ``ensemble``, ``flipout`` (the four methods of
    :func:`uq_configs`, on the same :class:`~ualib.models.SmallCNN` of width ``width``) and ``edl`` (the
    evidential network of :func:`evidential_classifier`) to epoch counts; a posterior missing from it is
    left out.

    The evidential network's training differs from the digits' (ReLU evidence, MSE loss, KL annealed
    over 10 epochs), which collapses on CIFAR-10: test accuracy 0.103 and a loss of 0.982, its value when
    no class has any evidence (a ReLU that is negative on every input passes no gradient); with softplus
    evidence and the MSE loss, 0.220. Softplus evidence with the Type II maximum-likelihood ("log") loss of
    METHODS.md §2.5 and the KL term annealed over the whole run (``anneal_epochs=None``: the epoch count)
    learns: 0.63-0.67 test accuracy in our runs after 30 epochs at width 16 (ReLU evidence with the same
    loss: 0.520).
    ``edl_evidence``, ``edl_loss`` and ``anneal_epochs`` choose otherwise.

    Flipout starts from narrower weight distributions than the layers' default (``rho ~ N(-6, 0.1)``,
    sigma about 0.0025, instead of ``N(-3, 0.1)``, sigma about 0.05) with a tempered KL weight of 1e-6: from
    the default spread it reached 0.360 (KL weight 1e-5) and 0.347 (1e-7), so the weight noise, not the KL
    term, held it back; with both changes 0.694 (30 epochs) [INF]. The same arguments
    give the same configurations, so the chapters that use one of these models share its cached weights.
    With a ``pool``, the ensemble of seed ``seed`` is drawn from it (:class:`EnsemblePool`).
    """
    configs = uq_configs(
        dataset="cifar10/train",
        model=CIFAR_RECIPE["model"],
        model_kwargs=dict(in_channels=3, in_size=32, num_classes=10, width=width, batchnorm=True),
        epochs={k: v for k, v in epochs.items() if k != "edl"},
        batch_size=batch_size,
        num_samples=num_samples,
        num_members=num_members,
        dropout=dropout,
        dropconnect_p=dropconnect_p,
        flipout_kl_weight=flipout_kl_weight,
        flipout_rho_init=flipout_rho_init,
        lr=CIFAR_RECIPE["lr"],
        augment=CIFAR_RECIPE["augment"],
        schedule=CIFAR_RECIPE["schedule"],
        seed=seed,
        pool=pool,
    )
    if "edl" in epochs:
        configs["EDL"] = evidential_classifier(
            dataset="cifar10",
            in_size=32,
            in_channels=3,
            model=CIFAR_RECIPE["model"],
            width=width,
            epochs=epochs["edl"],
            batch_size=batch_size,
            lr=CIFAR_RECIPE["lr"],
            anneal_epochs=epochs["edl"] if anneal_epochs is None else anneal_epochs,
            augment=CIFAR_RECIPE["augment"],
            schedule=CIFAR_RECIPE["schedule"],
            evidence=edl_evidence,
            loss=edl_loss,
            seed=seed,
        )
    return configs


def cifar_classifiers(
    *, epochs: int, batch_size: int, num_samples: int, dropout: float, seed: int, width: int = 16
) -> dict[str, TrainConfig]:
    """The MC-dropout CIFAR-10 network of :func:`cifar_configs` (``{"MC dropout": config}``), trained
    ``epochs`` epochs: the one chapters 2 and 7 share. Chapter 5's MC dropout draws 10 samples, not 20,
    and loads the same trained network: the sample count is not part of the cache key
    (:func:`ualib.training.cache_key`)."""
    return cifar_configs(
        epochs={"mc_dropout": epochs},
        batch_size=batch_size,
        num_samples=num_samples,
        dropout=dropout,
        seed=seed,
        width=width,
    )


def explorer_classifiers(
    *,
    dataset: str,
    in_size: int,
    epochs: Mapping[str, int],
    batch_size: int,
    num_samples: int,
    dropout: float,
    seed: int,
    num_members: int = 5,
    dropconnect_p: float = 0.2,
    flipout_kl_weight: float | None = None,
    pool: EnsemblePool | None = None,
) -> dict[str, TrainConfig]:
    """Training configurations of the explorer's posteriors.

    MC dropout, the deep ensemble and EDL come from :func:`compendium.zoo.digit_classifiers` (identical
    parameters give identical cache keys, so they load the models of chapters 1 and 2); MC DropConnect
    (drop probability ``dropconnect_p``, no dropout layers) and Bayes-by-backprop with Flipout layers
    (no dropout; KL weight ``flipout_kl_weight``, default ``1 / N``, the per-example ELBO) are added
    for ``epochs["dropconnect"]`` and ``epochs["flipout"]``; with the defaults they equal the
    DropConnect and Flipout configurations of :func:`ualib.attribution.explanation_uncertainty.uq_configs` for
    the same LeNet, so they share its cached weights. A posterior missing from ``epochs`` is left out;
    ``pool`` is :func:`digit_classifiers`'.
    """
    configs = digit_classifiers(
        dataset=dataset,
        in_size=in_size,
        epochs=epochs,
        batch_size=batch_size,
        num_samples=num_samples,
        num_members=num_members,
        dropout=dropout,
        seed=seed,
        pool=pool,
    )
    common = dict(dataset=f"{dataset}/train", model="lenet", batch_size=batch_size, seed=seed)
    arch = dict(in_channels=1, in_size=in_size, num_classes=10, dropout=0.0)
    extra = {
        "DropConnect": ("dropconnect", {"num_samples": num_samples, "p": dropconnect_p}),
        "Flipout": ("flipout", {"num_samples": num_samples}),
    }
    if flipout_kl_weight is not None:  # only when set, so the default keeps the shared cache key
        extra["Flipout"][1]["kl_weight"] = flipout_kl_weight
    for name, (post, pk) in extra.items():
        if post in epochs:
            configs[name] = TrainConfig(
                **common, model_kwargs=arch, posterior=post, posterior_kwargs=pk, epochs=epochs[post]
            )
    return configs


def explorer_images(
    dataset: str, in_size: int, n: int, *, seed: int = 0
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor | None]]:
    """The explorer's image sources, ``n`` images each, ``[n, 1, in_size, in_size]`` in ``[0, 1]``.

    ``"test digits"`` (the first ``n`` test images of ``dataset``, with their labels), and three
    out-of-distribution sets without labels: ``"notMNIST"`` letters, ``"Omniglot"`` characters
    (inverted to bright strokes on black, as MNIST) and ``"uniform noise"``. Returns ``(images,
    labels)``.
    """
    check_positive_int(n, "n")
    test = _data.load(dataset, "test", size=in_size)
    images = {
        "test digits": test.x[:n],
        "notMNIST": shift.take(_data.load("notmnist", "test", size=in_size).x, n, seed),
        "Omniglot": shift.take(
            shift.to_mnist_style(_data.load("omniglot", "evaluation", n=max(200, 2 * n)).x, in_size, invert=True),
            n,
            seed,
        ),
        "uniform noise": shift.uniform_noise(n, (1, in_size, in_size), seed),
    }
    labels: dict[str, torch.Tensor | None] = {name: None for name in images}
    labels["test digits"] = test.y[:n]
    return images, labels


def uq_configs(
    *,
    dataset: str,
    model: str,
    model_kwargs: dict,
    epochs: dict[str, int],
    batch_size: int,
    num_samples: int,
    num_members: int = 5,
    dropout: float = 0.3,
    dropconnect_p: float = 0.2,
    flipout_kl_weight: float | None = None,
    flipout_rho_init: tuple[float, float] | None = None,
    lr: float = 1e-3,
    seed: int = 0,
    task: str = "classification",
    augment: str | None = None,
    schedule: str = "constant",
    pool: EnsemblePool | None = None,
) -> dict[str, TrainConfig]:
    """The four uncertainty methods of the paper as :class:`~ualib.training.TrainConfig` s.

    ``"MC dropout"`` (dropout ``dropout`` in the network), ``"MC DropConnect"`` (no dropout, weights
    dropped with ``dropconnect_p``), ``"deep ensemble"`` (``num_members`` members with dropout, as in
    :func:`compendium.zoo.digit_classifiers`, whose configurations these equal for the same arguments, so
    they share its cached weights) and ``"Flipout"`` (no dropout, mean-field Gaussian weights).
    ``epochs`` maps the posterior names ``mc_dropout``, ``dropconnect``, ``ensemble``, ``flipout`` to
    epoch counts; ``task="regression"`` builds one-output regressors. ``flipout_kl_weight`` overrides
    the ELBO's KL weight ``1 / N``: with a few thousand training images and tens of thousands of
    weights the full KL outweighs the data term and Flipout's weights collapse to the prior (chance
    accuracy on the digits); a smaller weight is the usual tempered ELBO [INF]. ``augment`` and
    ``schedule`` are those of :class:`~ualib.training.TrainConfig`; ``flipout_rho_init`` sets the
    initial spread of Flipout's weights (mean and std of ``rho``, ``sigma = softplus(rho)``; default
    ``(-3, 0.1)``). With a ``pool``, the ensemble of seed ``seed`` is drawn from it (:class:`EnsemblePool`).
    """
    reg = {"task": task} if task != "classification" else {}
    ens_seed, ens = _ensemble(seed, num_members, pool)
    arch = dict(model_kwargs, dropout=dropout)
    plain = dict(model_kwargs, dropout=0.0)
    specs = {
        "MC dropout": ("mc_dropout", arch, {"num_samples": num_samples, **reg}),
        "MC DropConnect": ("dropconnect", plain, {"num_samples": num_samples, "p": dropconnect_p, **reg}),
        "deep ensemble": ("ensemble", arch, {**ens, **reg}),
        "Flipout": (
            "flipout",
            plain,
            {
                "num_samples": num_samples,
                **reg,
                **({} if flipout_kl_weight is None else {"kl_weight": flipout_kl_weight}),
                **({} if flipout_rho_init is None else {"rho_init": list(flipout_rho_init)}),
            },
        ),
    }
    common = dict(dataset=dataset, model=model, batch_size=batch_size, augment=augment, schedule=schedule)
    if lr != 1e-3:
        common["lr"] = lr
    return _configs(specs, common, epochs, seed, ens_seed)
