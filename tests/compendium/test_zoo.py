"""The shared model descriptions: chapters that mean the same model get the same cache key."""

from __future__ import annotations

import torch

from compendium import zoo
from compendium.profiles import chapter_parameters
from ualib.training import cache_key


def _key(cfg):
    x, y = torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long)
    return cache_key(cfg, x, y)


def test_every_cifar_model_uses_the_recipe_at_32x32():
    configs = zoo.cifar_configs(
        epochs={"mc_dropout": 2, "dropconnect": 2, "ensemble": 2, "flipout": 2, "edl": 2}, batch_size=8, seed=0
    )
    assert set(configs) == {"MC dropout", "MC DropConnect", "deep ensemble", "Flipout", "EDL"}
    for name, cfg in configs.items():
        assert cfg.model == zoo.CIFAR_RECIPE["model"], name
        assert (cfg.augment, cfg.schedule, cfg.lr) == (
            zoo.CIFAR_RECIPE["augment"],
            zoo.CIFAR_RECIPE["schedule"],
            zoo.CIFAR_RECIPE["lr"],
        ), name
        assert cfg.model_kwargs["in_size"] == 32 and cfg.model_kwargs["in_channels"] == 3, name
    assert configs["EDL"].posterior_kwargs["evidence"] == "softplus"


def test_chapters_2_and_7_share_their_cifar_network():
    """Chapter 7 explains the CIFAR-10 network chapter 2 trains: same configuration in the cpu and gpu profiles."""
    for profile in ("cpu", "gpu"):
        keys = []
        for chapter in ("02_ua_backprop", "07_justification"):
            p = chapter_parameters(profile, chapter)
            assert p["cifar"], (profile, chapter)
            cfg = zoo.cifar_classifiers(
                epochs=p["cifar_epochs"],
                batch_size=p["batch_size"],
                num_samples=p["num_samples"],
                dropout=p["dropout"],
                seed=p["seed"],
                width=p["cifar_width"],
            )["MC dropout"]
            keys.append(_key(cfg))
        assert keys[0] == keys[1], profile


def test_chapter_5_loads_chapter_2s_cifar_mc_dropout_network():
    """Chapter 5 draws 10 MC-dropout samples and chapter 2 draws 20 from the same trained CIFAR-10 network in
    the cpu profile: the sample count is not part of the cache key, so the network is trained once per seed."""
    p2, p5 = chapter_parameters("cpu", "02_ua_backprop"), chapter_parameters("cpu", "05_explanation_uncertainty")
    assert p2["num_samples"] != p5["num_samples"]
    ch2 = zoo.cifar_classifiers(
        epochs=p2["cifar_epochs"], batch_size=p2["batch_size"], num_samples=p2["num_samples"],
        dropout=p2["dropout"], seed=0, width=p2["cifar_width"],
    )["MC dropout"]  # fmt: skip
    ch5 = zoo.cifar_configs(
        epochs=p5["epochs"], batch_size=p5["batch_size"], num_samples=p5["num_samples"],
        num_members=p5["num_members"], dropout=p5["dropout"], dropconnect_p=p5["dropconnect_p"],
        flipout_kl_weight=p5["flipout_kl_weight"], seed=0, width=p5["width"],
    )["MC dropout"]  # fmt: skip
    assert ch2 != ch5 and _key(ch2) == _key(ch5)


def test_cifar_classifiers_is_the_mc_dropout_of_cifar_configs():
    a = zoo.cifar_classifiers(epochs=3, batch_size=16, num_samples=5, dropout=0.2, seed=1, width=8)["MC dropout"]
    b = zoo.cifar_configs(epochs={"mc_dropout": 3}, batch_size=16, num_samples=5, dropout=0.2, seed=1, width=8)
    assert a == b["MC dropout"] and list(b) == ["MC dropout"]


def test_digit_models_keep_the_plain_recipe():
    """The MNIST models are trained without augmentation at a constant rate (their cache keys predate both)."""
    cfgs = zoo.digit_classifiers(
        dataset="mnist",
        in_size=28,
        epochs={"mc_dropout": 3, "ensemble": 3, "edl": 5},
        batch_size=128,
        num_samples=20,
        dropout=0.3,
        seed=0,
    )
    assert all(c.augment is None and c.schedule == "constant" for c in cfgs.values())
