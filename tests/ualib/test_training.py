"""Training and the model cache: determinism, cache hits, corrupt entries retrained, keys."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from sklearn.datasets import load_digits

from ualib.training import TrainConfig, build_posterior, cache_key, fit, numerics, train


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
