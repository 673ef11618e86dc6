"""Training and the model cache: determinism, cache hits, corrupt entries retrained, keys."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from sklearn.datasets import load_digits

from ualib.training import (
    TrainConfig,
    build_posterior,
    cache_key,
    fit,
    numerics,
    reset_training_ledger,
    train,
    training_ledger,
)


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = torch.tensor(d.images[:400] / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target[:400], dtype=torch.long)
    return x, y


def config(**kw) -> TrainConfig:
    base = dict(
        dataset="digits/test-slice",
        model="lenet",
        model_kwargs=dict(in_channels=1, in_size=8, num_classes=10, dropout=0.2, widths=(8, 8, 32)),
        posterior="mc_dropout",
        posterior_kwargs={"num_samples": 4},
        epochs=2,
        batch_size=64,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_training_is_deterministic_and_cached(digits, tmp_path):
    x, y = digits
    p1, info1 = train(config(), x, y, cache=tmp_path, progress=False)
    assert not info1["cache_hit"] and len(info1["history"]["loss"]) == 2
    p2, info2 = train(config(), x, y, cache=tmp_path, progress=False)
    assert info2["cache_hit"] and info2["key"] == info1["key"]
    assert torch.equal(p1.logits(x[:16]), p2.logits(x[:16]))
    # without the cache, the same configuration trains to the same weights (CPU determinism)
    p3, info3 = train(config(), x, y, cache=False, progress=False)
    assert not info3["cache_hit"]
    assert torch.equal(p1.logits(x[:16]), p3.logits(x[:16]))


def test_corrupt_cache_entry_is_retrained(digits, tmp_path):
    x, y = digits
    p1, _ = train(config(), x, y, cache=tmp_path, progress=False)
    (entry,) = list(tmp_path.glob("*.pt"))
    entry.write_bytes(entry.read_bytes()[:-100])  # truncated
    with pytest.warns(RuntimeWarning, match="unreadable"):
        p2, info = train(config(), x, y, cache=tmp_path, progress=False)
    assert not info["cache_hit"]
    assert torch.equal(p1.logits(x[:8]), p2.logits(x[:8]))
    # the rewritten entry is valid again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, info = train(config(), x, y, cache=tmp_path, progress=False)
    assert info["cache_hit"]


def test_cache_key_depends_on_everything(digits):
    x, y = digits
    k = cache_key(config(), x, y)
    assert cache_key(config(), x, y) == k
    assert cache_key(config(epochs=3), x, y) != k
    assert cache_key(config(seed=1), x, y) != k
    assert cache_key(config(), x[:-1], y[:-1]) != k
    y2 = y.clone()
    y2[0] = (y2[0] + 1) % 10
    assert cache_key(config(), x, y2) != k
    assert cache_key(config(), x, y, device="cuda") != k


def test_cache_key_depends_on_the_numerics(digits, monkeypatch):
    """Thread count, CPU capability and the kernel-selecting variables change trained weights, so
    they change the key: models trained under other numerics are never loaded, nor overwritten."""
    x, y = digits
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        k1 = cache_key(config(), x, y)
        torch.set_num_threads(2)
        k2 = cache_key(config(), x, y)
    finally:
        torch.set_num_threads(old)
    assert k1 != k2
    base = cache_key(config(), x, y)
    for var, value in (
        ("ONEDNN_MAX_CPU_ISA", "SSE41"),
        ("MKL_ENABLE_INSTRUCTIONS", "SSE4_2"),
        ("ATEN_CPU_CAPABILITY", "default"),
    ):
        if os.environ.get(var) == value:  # the ambient settings are already these: pick another value
            value = f"{value}-other"
        with monkeypatch.context() as m:
            m.setenv(var, value)
            assert cache_key(config(), x, y) != base
    assert set(numerics()) >= {"threads", "cpu_capability", "kernel_env", "versions"}
    assert numerics()["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_two_thread_counts_keep_two_cache_entries(digits, tmp_path):
    x, y = digits
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            _, info = train(config(epochs=1), x[:256], y[:256], cache=tmp_path, progress=False)
            assert not info["cache_hit"]
    finally:
        torch.set_num_threads(old)
    assert len(list(tmp_path.glob("*.pt"))) == 2


@pytest.mark.parametrize(
    "posterior,kwargs",
    [
        ("mc_dropout", {"num_samples": 3}),
        ("dropconnect", {"p": 0.2, "num_samples": 3}),
        ("ensemble", {"num_members": 3}),
        ("flipout", {"num_samples": 3, "kl_weight": 1e-4}),
        ("edl", {"evidence": "softplus", "loss": "log"}),
    ],
)
def test_every_posterior_learns(digits, posterior, kwargs):
    """Each posterior's training lowers its loss and beats chance clearly on the training data."""
    x, y = digits
    cfg = config(posterior=posterior, posterior_kwargs=kwargs, epochs=15, batch_size=32, lr=3e-3)
    post = build_posterior(cfg)
    hist = fit(post, x, y, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, progress=False)
    assert hist["loss"][-1] < hist["loss"][0]
    acc = (post.probs(x).mean(0).argmax(-1) == y).float().mean().item()
    assert acc > 0.5, acc
    assert not post.module.training


def test_config_validation():
    with pytest.raises(ValueError, match="posterior must be one of"):
        config(posterior="laplace")
    with pytest.raises(ValueError, match="epochs"):
        config(epochs=0)
    with pytest.raises(TypeError, match="TrainConfig"):
        train({"dataset": "x"}, torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.long))


def test_fit_rejects_mismatched_data(digits):
    x, y = digits
    post = build_posterior(config())
    with pytest.raises(ValueError, match="same length"):
        fit(post, x, y[:-1], epochs=1, progress=False)


def test_new_settings_at_their_defaults_keep_the_old_cache_keys(digits):
    """``augment`` and ``schedule`` came after the cache: at their defaults the key is the old one (the
    configuration without them), so models trained before them are still found; set, they change it."""
    import hashlib
    import json

    from ualib.training import _fingerprint

    x, y = digits
    old = {k: v for k, v in config().to_dict().items() if k not in ("augment", "schedule")}
    old["posterior_kwargs"] = {}  # num_samples only changes inference: not in the key (next test)
    doc = {"config": old, "data": _fingerprint(x, y), "device": "cpu", "numerics": numerics()}
    assert (
        cache_key(config(), x, y) == hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
    )
    assert cache_key(config(augment="crop_flip"), x, y) != cache_key(config(), x, y)
    assert cache_key(config(schedule="onecycle"), x, y) != cache_key(config(), x, y)
    # an ensemble's training changed what it trains (its members run one after the other, with their own dropout
    # masks): its key carries a revision, so a cache made before it is not served as the current code's weights
    ens = config(posterior="ensemble", posterior_kwargs={"num_members": 2})
    before = {**doc, "config": {k: v for k, v in ens.to_dict().items() if k not in ("augment", "schedule")}}
    digest = lambda d: hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()  # noqa: E731
    assert cache_key(ens, x, y) != digest(before)
    assert cache_key(ens, x, y) == digest({**before, "revision": 2})


@pytest.mark.parametrize(
    "posterior,kwargs",
    [("mc_dropout", {}), ("dropconnect", {"p": 0.2}), ("flipout", {"kl_weight": 1e-4})],
)
def test_sample_counts_share_one_trained_network(digits, posterior, kwargs, tmp_path):
    """The number of samples drawn at inference is not part of the cache key, because training never uses
    it: trained with 3 and with 7 samples, the weights agree bit for bit; the second configuration loads the
    first one's entry and still draws its own 7 samples. An ensemble's member count does change the key."""
    x, y = digits
    few = config(posterior=posterior, posterior_kwargs={**kwargs, "num_samples": 3}, epochs=1)
    many = config(posterior=posterior, posterior_kwargs={**kwargs, "num_samples": 7}, epochs=1)
    a, _ = train(few, x, y, cache=False, progress=False)
    b, _ = train(many, x, y, cache=False, progress=False)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert cache_key(few, x, y) == cache_key(many, x, y)
    _, info = train(few, x, y, cache=tmp_path, progress=False)
    loaded, hit = train(many, x, y, cache=tmp_path, progress=False)
    assert not info["cache_hit"] and hit["cache_hit"]
    assert loaded.logits(x[:5]).shape == (7, 5, 10)
    assert torch.equal(loaded.logits(x[:5]), b.logits(x[:5]))
    ens = config(posterior="ensemble", posterior_kwargs={"num_members": 2})
    assert cache_key(ens, x, y) != cache_key(config(posterior="ensemble", posterior_kwargs={"num_members": 3}), x, y)


def test_ensembles_drawn_from_one_pool_share_its_training(digits, tmp_path):
    """An ensemble config naming ``members`` trains (or loads) the pool of ``num_members`` once; each draw is
    the pool's members, in the order named, and the ledger says which were drawn."""
    x, y = digits
    reset_training_ledger()
    draw = lambda members: config(
        posterior="ensemble", posterior_kwargs={"num_members": 4, "members": members}, epochs=1
    )  # noqa: E731
    pool_cfg = config(posterior="ensemble", posterior_kwargs={"num_members": 4}, epochs=1)
    assert cache_key(draw([0, 1]), x, y) == cache_key(draw([3, 2, 1]), x, y) == cache_key(pool_cfg, x, y)
    a, info_a = train(draw([0, 1]), x, y, cache=tmp_path, progress=False)
    b, info_b = train(draw([3, 2, 1]), x, y, cache=tmp_path, progress=False)
    pool, _ = train(pool_cfg, x, y, cache=False, progress=False)
    assert not info_a["cache_hit"] and info_b["cache_hit"]
    assert (a.num_samples, b.num_samples, pool.num_samples) == (2, 3, 4)
    ref = pool.logits(x[:8])
    assert torch.equal(a.logits(x[:8]), ref[[0, 1]]) and torch.equal(b.logits(x[:8]), ref[[3, 2, 1]])
    assert [e.get("members") for e in training_ledger()] == [[0, 1], [3, 2, 1], None]
    reset_training_ledger()
    with pytest.raises(ValueError, match=r"lie in \[0, 3\]"):
        draw([0, 4])
    with pytest.raises(ValueError, match="distinct"):
        draw([1, 1])


def test_the_ledger_records_every_train_call(digits, tmp_path):
    """training_ledger lists each call with what train() itself returned: trained, then loaded."""
    x, y = digits
    reset_training_ledger()
    _, first = train(config(), x, y, cache=tmp_path, progress=False)
    _, second = train(config(), x[:200], y[:200], cache=False, progress=False)
    _, third = train(config(), x, y, cache=tmp_path, progress=False)
    ledger = training_ledger()
    assert [e["cache_hit"] for e in ledger] == [False, False, True]
    assert [e["n"] for e in ledger] == [400, 200, 400]
    assert [e["key"] for e in ledger] == [i["key"][:16] for i in (first, second, third)]
    for entry, info in zip(ledger, (first, second, third), strict=True):
        assert entry["train_seconds"] == pytest.approx(info["train_seconds"], abs=1e-3)
        assert entry["call_seconds"] >= entry["train_seconds"]
        assert (entry["posterior"], entry["epochs"], entry["dataset"]) == ("mc_dropout", 2, "digits/test-slice")
        assert entry["threads"] == torch.get_num_threads()  # part of the key: a loaded network was trained so too
    ledger[0]["n"] = -1  # a copy: the record itself is not changed
    assert training_ledger()[0]["n"] == 400
    reset_training_ledger()
    assert training_ledger() == []


def test_augmented_onecycle_training_is_deterministic_and_differs_from_plain(digits):
    x, y = digits
    cfg = config(augment="crop_flip", schedule="onecycle", lr=3e-3)
    p1, _ = train(cfg, x, y, cache=False, progress=False)
    p2, _ = train(cfg, x, y, cache=False, progress=False)
    assert torch.equal(p1.logits(x[:16]), p2.logits(x[:16]))
    p3, _ = train(config(lr=3e-3), x, y, cache=False, progress=False)
    assert not torch.equal(p1.logits(x[:16]), p3.logits(x[:16]))


def test_onecycle_follows_smith_and_topins_schedule(digits):
    """The rate starts at lr/25, peaks at lr after 30 % of the steps and ends near lr/2.5e5 (closed form)."""
    import math

    x, y = digits
    post = build_posterior(config())
    seen = []
    orig = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "step", spy)
        fit(post, x, y, epochs=4, batch_size=40, lr=1e-2, schedule="onecycle", progress=False)
    total = 4 * 10
    up = 0.3 * total - 1  # OneCycleLR's warm-up phase ends at step pct_start * total - 1
    for t, lr in enumerate(seen):
        if t <= up:
            want = 1e-2 / 25 + (1e-2 - 1e-2 / 25) * (1 - math.cos(math.pi * t / up)) / 2
        else:
            lo = 1e-2 / 25 / 1e4
            want = lo + (1e-2 - lo) * (1 + math.cos(math.pi * (t - up) / (total - 1 - up))) / 2
        assert lr == pytest.approx(want, rel=1e-6), t
    assert len(seen) == total


def test_training_settings_are_validated(digits):
    x, y = digits
    with pytest.raises(ValueError, match="augment must be one of"):
        config(augment="mixup")
    with pytest.raises(ValueError, match="schedule must be one of"):
        config(schedule="cosine")
    post = build_posterior(config(model="mlp", model_kwargs=dict(in_channels=64, num_classes=10)))
    with pytest.raises(ValueError, match="needs images"):
        fit(post, x.flatten(1), y, epochs=1, augment="crop_flip", progress=False)


def test_flipout_rho_init_reaches_every_flipout_layer():
    from ualib.layers.flipout import FlipoutConv2d, FlipoutLinear

    cfg = config(
        posterior="flipout",
        model_kwargs=dict(in_channels=1, in_size=8, num_classes=10, dropout=0.0, widths=(8, 8, 32)),
        posterior_kwargs={"num_samples": 4, "rho_init": [-6.0, 0.0]},
    )
    layers = [m for m in build_posterior(cfg).module.modules() if isinstance(m, (FlipoutConv2d, FlipoutLinear))]
    assert len(layers) == 4
    for layer in layers:
        assert torch.all(layer.weight_rho == -6.0)
    plain = build_posterior(config(posterior="flipout", posterior_kwargs={"num_samples": 4}))
    rho = torch.cat([m.weight_rho.flatten() for m in plain.module.modules() if isinstance(m, FlipoutLinear)])
    assert abs(float(rho.detach().mean()) + 3.0) < 0.05  # the layers' default N(-3, 0.1)
