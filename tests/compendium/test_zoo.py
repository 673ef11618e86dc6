"""The shared model descriptions: chapters that mean the same model get the same cache key."""

from __future__ import annotations

import pytest
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


def test_an_ensemble_pool_draws_overlapping_member_windows():
    pool = zoo.ensemble_pool(7, [0, 1, 2])
    draws = [pool.draw(s, 5) for s in (0, 1, 2)]
    assert [d[1]["members"] for d in draws] == [[0, 1, 2, 3, 4], [2, 3, 4, 5, 6], [4, 5, 6, 0, 1]]
    assert {d[0] for d in draws} == {0} and all(d[1]["num_members"] == 7 for d in draws)
    sets = [set(d[1]["members"]) for d in draws]
    assert [len(a & b) for a, b in ((sets[0], sets[1]), (sets[0], sets[2]), (sets[1], sets[2]))] == [3, 3, 3]
    assert "seed 2: [4, 5, 6, 0, 1]" in pool.describe(5)
    assert zoo.ensemble_pool(None, [0, 1, 2]) is None
    for bad, match in [((3, [0, 1, 2, 3]), "cannot give 4"), ((7, [0, 0]), "distinct"), ((7, []), "distinct")]:
        with pytest.raises(ValueError, match=match):
            zoo.ensemble_pool(*bad)
    with pytest.raises(ValueError, match="not one of the pool's seeds"):
        pool.draw(3, 5)
    with pytest.raises(ValueError, match="must not exceed"):
        pool.draw(0, 8)


def _ensemble_configs(profile, chapter, s):
    p = chapter_parameters(profile, chapter)
    pool = zoo.ensemble_pool(p["ensemble_pool"], p["seeds"])
    common = dict(epochs=p["epochs"], batch_size=p["batch_size"], num_samples=p["num_samples"], seed=s, pool=pool)
    if chapter == "05_explanation_uncertainty":
        cfg = zoo.cifar_configs(**common, num_members=p["num_members"], dropout=p["dropout"], width=p["width"])
    else:
        builder = zoo.explorer_classifiers if chapter == "09_explorer" else zoo.digit_classifiers
        cfg = builder(**common, dataset=p["dataset"], in_size=p["in_size"], num_members=p["num_members"],
                      dropout=p["dropout"])  # fmt: skip
    return cfg["deep ensemble"]


def test_the_cpu_chapters_draw_their_seeds_ensembles_from_one_pool():
    """Chapters 1, 2 and 9 (MNIST) draw every seed's ensemble from one trained pool, and share it; chapter 5 draws
    its CIFAR-10 ensembles from another. The other profiles train every seed's ensemble on its own."""
    digits = ("01_uncertainty_basics", "02_ua_backprop", "09_explorer")
    keys = {_key(_ensemble_configs("cpu", ch, s)) for ch in digits for s in (0, 1, 2)}
    assert len(keys) == 1
    members = [_ensemble_configs("cpu", "01_uncertainty_basics", s).posterior_kwargs["members"] for s in (0, 1, 2)]
    assert len({tuple(m) for m in members}) == 3
    cifar = {_key(_ensemble_configs("cpu", "05_explanation_uncertainty", s)) for s in (0, 1, 2)}
    assert len(cifar) == 1 and cifar.isdisjoint(keys)
    for profile in ("tiny", "gpu"):
        seeds = chapter_parameters(profile, "01_uncertainty_basics")["seeds"]
        cfgs = [_ensemble_configs(profile, "01_uncertainty_basics", s) for s in seeds]
        assert all("members" not in c.posterior_kwargs and c.seed == s for c, s in zip(cfgs, seeds, strict=True))
        assert len({_key(c) for c in cfgs}) == len(seeds)


def test_chapters_4_and_8_share_their_evidential_digit_network():
    """Chapter 8 compares the maps of chapter 4's evidential LeNet (ReLU evidence, MSE loss): one training per seed."""
    for profile in ("cpu", "gpu"):
        p4, p8 = chapter_parameters(profile, "04_uam"), chapter_parameters(profile, "08_method_comparison")
        assert p4["seeds"] == p8["seeds"], profile
        ch4 = zoo.evidential_classifier(dataset=p4["dataset"], in_size=p4["in_size"], epochs=p4["epochs"],
                                        batch_size=p4["batch_size"], lr=p4["lr"], anneal_epochs=p4["anneal_epochs"],
                                        seed=0)  # fmt: skip
        ch8 = zoo.evidential_classifier(dataset=p8["dataset"], in_size=p8["in_size"], epochs=p8["edl_epochs"],
                                        batch_size=p8["batch_size"], lr=p8["edl_lr"], anneal_epochs=p8["anneal_epochs"],
                                        seed=0)  # fmt: skip
        assert ch4 == ch8, profile
