"""Per-sample gradient metrics against a float64 loop of ``torch.autograd.grad`` with NumPy statistics.

The reference computes, for one input at a time, the cross-entropy at the predicted label, its
gradient with respect to the model's own parameters (``torch.autograd.grad``), and the six
statistics with NumPy on the flattened gradient of each layer and of all selected layers
concatenated. Nothing of ``ualib.meta.gradient_metrics`` is used by the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ualib.meta.gradient_metrics import (
    GRADIENT_STATISTICS,
    NETWORK,
    auto_chunk_size,
    gradient_groups,
    gradient_metrics,
    metrics_frame,
    softmax_metrics,
)


def cnn(seed: int = 0, batchnorm: bool = False, dropout: float = 0.0) -> nn.Module:
    """conv-[BN]-ReLU-maxpool-conv-ReLU-flatten-[dropout]-linear-ReLU-linear, [B, 1, 8, 8] -> [B, 4]."""
    torch.manual_seed(seed)
    layers = [nn.Conv2d(1, 3, 3, padding=1)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(3))
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(64, 6), nn.ReLU(), nn.Linear(6, 4)]
    model = nn.Sequential(*layers)
    if batchnorm:  # non-trivial running statistics, so eval mode matters
        with torch.no_grad():
            model[1].running_mean.uniform_(-0.5, 0.5)
            model[1].running_var.uniform_(0.5, 2.0)
            model[1].weight.uniform_(0.5, 1.5)
            model[1].bias.uniform_(-0.2, 0.2)
    return model


def inputs(b: int = 7, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, 1, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.get_default_dtype())


def reference(
    model: nn.Module, x: torch.Tensor, names: list[str], labels: torch.Tensor | None = None
) -> dict[str, np.ndarray]:
    """Float64 loop: one ``torch.autograd.grad`` per input, statistics in NumPy."""
    params = dict(model.named_parameters())
    model.eval()
    rows: dict[str, list[float]] = {}
    for i in range(len(x)):
        logits = model(x[i : i + 1])
        y = logits.argmax(-1) if labels is None else labels[i : i + 1]
        loss = F.cross_entropy(logits, y)
        grads = torch.autograd.grad(loss, [params[n] for n in names])
        flat = {n: g.detach().numpy().ravel() for n, g in zip(names, grads)}
        flat[NETWORK] = np.concatenate([flat[n] for n in names])
        for group, g in flat.items():
            stats = {"l1": np.abs(g).sum(), "l2": np.sqrt((g**2).sum()), "max": g.max(), "min": g.min(),
                     "mean": g.mean(), "std": g.std(ddof=1)}  # fmt: skip
            for s, v in stats.items():
                rows.setdefault(f"{group}/{s}", []).append(float(v))
    return {k: np.array(v) for k, v in rows.items()}


@pytest.mark.parametrize("method", ["vmap", "loop", "hooks"])
@pytest.mark.parametrize("include_bias", [False, True])
@pytest.mark.parametrize("batchnorm", [False, True])  # eval-mode BatchNorm, its weight (and bias) a group too
def test_matches_float64_autograd_loop(float64, method, include_bias, batchnorm):
    model = cnn(batchnorm=batchnorm)
    x = inputs()
    got = gradient_metrics(model, x, include_bias=include_bias, method=method, chunk_size=3)
    names = [n for n, _ in model.named_parameters() if include_bias or not n.endswith("bias")]
    ref = reference(model, x, names)
    expected_columns = [f"{n}/{s}" for n in names for s in GRADIENT_STATISTICS] + [
        f"{NETWORK}/{s}" for s in GRADIENT_STATISTICS
    ]
    assert list(got) == expected_columns  # every metric, every layer, bias groups too, in a stable order
    for col, value in ref.items():
        assert got[col].dtype == torch.float64 and got[col].shape == (len(x),)
        np.testing.assert_allclose(got[col].numpy(), value, rtol=1e-9, atol=1e-13, err_msg=col)
    # the loss really depends on the input: the metrics are not constant
    assert np.ptp(ref[f"{NETWORK}/l2"]) > 0


@pytest.mark.parametrize("method", ["vmap", "hooks"])
def test_given_labels_replace_the_pseudo_labels(float64, method):
    model = cnn()
    x = inputs()
    labels = torch.arange(len(x)) % 4
    got = gradient_metrics(model, x, labels=labels, method=method)
    names = gradient_groups(model)
    ref = reference(model, x, names, labels=labels)
    for col, value in ref.items():
        np.testing.assert_allclose(got[col].numpy(), value, rtol=1e-9, atol=1e-13, err_msg=col)
    pseudo = gradient_metrics(model, x, method=method)
    assert not torch.allclose(pseudo[f"{NETWORK}/l2"], got[f"{NETWORK}/l2"])


def test_parameters_and_aggregation_options(float64):
    model = cnn()
    x = inputs(5)
    only = ["0.weight", "6.weight"]
    got = gradient_metrics(model, x, parameters=only, statistics=("l2", "std"), whole_network=True)
    assert list(got) == ["0.weight/l2", "0.weight/std", "6.weight/l2", "6.weight/std", "network/l2", "network/std"]
    ref = reference(model, x, only)
    for col in got:
        np.testing.assert_allclose(got[col].numpy(), ref[col], rtol=1e-9, atol=1e-13)
    net_only = gradient_metrics(model, x, per_layer=False)
    assert list(net_only) == [f"{NETWORK}/{s}" for s in GRADIENT_STATISTICS]


@pytest.mark.parametrize("method", ["vmap", "hooks"])
@pytest.mark.parametrize("chunk_size", [1, 2, 4, None])
def test_chunked_equals_unchunked(chunk_size, method):
    model = cnn(batchnorm=True)
    x = inputs(9)
    whole = gradient_metrics(model, x, chunk_size=9, include_bias=True, method=method)
    parts = gradient_metrics(model, x, chunk_size=chunk_size, include_bias=True, method=method)
    for col in whole:  # atol: the last layer's mean gradient is 0 up to float32 rounding (~1e-9)
        torch.testing.assert_close(parts[col], whole[col], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", ["vmap", "hooks"])
def test_chunked_equals_unchunked_float64(float64, method):
    model = cnn()
    x = inputs(9)
    whole = gradient_metrics(model, x, chunk_size=9, method=method)
    for c in (1, 4):
        parts = gradient_metrics(model, x, chunk_size=c, method=method)
        for col in whole:
            torch.testing.assert_close(parts[col], whole[col], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("method", ["vmap", "hooks"])
@pytest.mark.parametrize("frozen", [("0.weight",), ("0.weight", "0.bias")])
def test_model_left_unchanged_and_no_grads(method, frozen):
    model = cnn(batchnorm=True, dropout=0.5)
    model.train()
    for name in frozen:  # a frozen parameter still gets its metrics (also a first layer that is all frozen)
        model.get_parameter(name).requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = [m.training for m in model.modules()]
    x = inputs(6)
    x_before = x.clone()
    with torch.no_grad():  # a caller's no_grad does not stop the gradients
        a = gradient_metrics(model, x, include_bias=True, method=method)
    b = gradient_metrics(model, x, include_bias=True, method="loop")
    for col in a:
        torch.testing.assert_close(a[col], b[col], rtol=1e-4, atol=1e-7)
    assert "0.weight/l2" in a and (a["0.weight/l2"] > 0).all()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics too
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert [m.training for m in model.modules()] == modes
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert torch.equal(x, x_before)
    # eval mode was used: dropout off, so two calls agree exactly
    again = gradient_metrics(model, x, include_bias=True, method=method)
    assert all(torch.equal(a[c], again[c]) for c in a)


class _TwoInputsLinear(nn.Module):
    """Linear layers on a sequence ``[B, T, F]`` (per-sample gradient = a sum over positions)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(8, 5)
        self.out = nn.Linear(5, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.inner(x[:, 0]))).mean(1)


def conv_zoo(seed: int = 0) -> nn.Module:
    """Convolutions with stride, padding, dilation, 'same' / reflect padding, rectangular kernels and
    in-place ReLUs (which overwrite a layer's output after the hook saw it), [B, 1, 8, 8] -> [B, 3]."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(3, 4, 4, padding="same", dilation=2, padding_mode="reflect"),
        nn.BatchNorm2d(4).eval(),
        nn.ReLU(inplace=True),
        nn.Conv2d(4, 2, (2, 3), stride=(1, 2), padding=(1, 1)),  # -> [B, 2, 5, 2]
        nn.Conv2d(2, 2, (2, 1), stride=(2, 1), bias=False),  # the last input row is never used
        nn.Flatten(),
        nn.Linear(8, 5),
        nn.ReLU(inplace=True),
        nn.Linear(5, 3),
    )


@pytest.mark.parametrize("make", [conv_zoo, _TwoInputsLinear])
def test_hooks_matches_float64_loop_on_other_layers(float64, make):
    model = make()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = inputs(7)
    got = gradient_metrics(model, x, include_bias=True, method="hooks", chunk_size=4)
    names = gradient_groups(model, include_bias=True)
    ref = reference(model, x, names)
    assert list(got) == list(ref)
    for col, value in ref.items():
        np.testing.assert_allclose(got[col].numpy(), value, rtol=1e-9, atol=1e-13, err_msg=col)
    assert np.ptp(ref[f"{NETWORK}/l2"]) > 0


class _StubbornBatchNorm(nn.BatchNorm2d):
    """A BatchNorm that stays in train mode (normalises with the batch's statistics)."""

    def train(self, mode: bool = True):
        return self


class _Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(self.lin(x.flatten(1)[:, :4]))


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


def test_hooks_rejects_what_it_cannot_do():
    x = inputs(3)
    # batch statistics couple the samples: train-mode BatchNorm, and BatchNorm without running stats
    for bn in (_StubbornBatchNorm(3), nn.BatchNorm2d(3, track_running_stats=False)):
        model = cnn()
        model[1] = nn.Sequential(bn, model[1])
        with pytest.raises(ValueError, match=r"batch statistics.*method='vmap'"):
            gradient_metrics(model, x, method="hooks")
        assert _no_hooks(model)
    # parameters of layers without a per-sample rule
    unsupported = [
        nn.Sequential(nn.Flatten(), nn.LayerNorm(64), nn.Linear(64, 4)),
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3, groups=2), nn.Flatten(), nn.Linear(32, 4)),
        nn.Sequential(nn.Flatten(1, 2), nn.Conv1d(8, 2, 3), nn.Flatten(), nn.Linear(12, 4)),
    ]
    for model in unsupported:
        with pytest.raises(ValueError, match=r"does not support parameter .*method='vmap'"):
            gradient_metrics(model, x, method="hooks")
        assert _no_hooks(model)
    # ... unless their parameters are not asked for
    model = unsupported[0]
    got = gradient_metrics(model, x, method="hooks", parameters=["2.weight"])
    ref = gradient_metrics(model, x, method="loop", parameters=["2.weight"])
    for col in ref:
        torch.testing.assert_close(got[col], ref[col], rtol=1e-4, atol=1e-7)
    # a layer run twice per forward pass; hooks removed also after the exception
    model = _Twice()
    with pytest.raises(ValueError, match=r"more than once.*method='vmap'"):
        gradient_metrics(model, x, method="hooks")
    assert _no_hooks(model)
    model = cnn()
    with pytest.raises(ValueError, match="labels must lie"):
        gradient_metrics(model, x, method="hooks", labels=torch.full((3,), 7))
    assert _no_hooks(model)


def test_auto_chunk_size_follows_the_budget():
    model = cnn().eval()
    x = inputs(50)
    groups = gradient_groups(model)
    big = auto_chunk_size(model, x, groups, memory_mb=1024)
    small = auto_chunk_size(model, x, groups, memory_mb=0.01)
    assert big == 50  # everything fits
    assert 1 <= small < big
    n_grad = sum(dict(model.named_parameters())[g].numel() for g in groups)
    assert small <= 0.01 * 2**20 // (3 * n_grad * 4)
    with pytest.raises(ValueError, match="memory_mb"):
        auto_chunk_size(model, x, groups, memory_mb=0)


def test_softmax_metrics_against_numpy(float64):
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(3))
    p = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(1, keepdims=True)
    m = softmax_metrics(logits)
    np.testing.assert_allclose(m["entropy"].numpy(), -(p * np.log(p)).sum(1), rtol=1e-12)
    np.testing.assert_allclose(m["max_prob"].numpy(), p.max(1), rtol=1e-12)
    srt = np.sort(p, 1)
    np.testing.assert_allclose(m["margin"].numpy(), srt[:, -1] - srt[:, -2], rtol=1e-12)
    np.testing.assert_allclose(softmax_metrics(logits, normalize=True)["entropy"].numpy(),
                               -(p * np.log(p)).sum(1) / np.log(5), rtol=1e-12)  # fmt: skip


def test_metrics_frame_holds_softmax_and_gradient_columns():
    model = cnn()
    x = inputs(4)
    frame, pred = metrics_frame(model, x, chunk_size=2)
    assert list(frame.columns[:3]) == ["entropy", "max_prob", "margin"]
    assert len(frame) == 4 and pred.tolist() == model.eval()(x).argmax(-1).tolist()
    g = gradient_metrics(model, x)
    np.testing.assert_allclose(frame["network/l2"].to_numpy(), g["network/l2"].double().numpy(), rtol=1e-6)


def test_errors_are_precise():
    model = cnn()
    x = inputs(3)
    with pytest.raises(ValueError, match="dtype"):
        gradient_metrics(model, x.double())
    with pytest.raises(ValueError, match="nothing to compute"):
        gradient_metrics(model, x, per_layer=False, whole_network=False)
    with pytest.raises(ValueError, match="statistic"):
        gradient_metrics(model, x, statistics=("l3",))
    with pytest.raises(ValueError, match="method"):
        gradient_metrics(model, x, method="jacobian")
    with pytest.raises(ValueError, match="not parameters"):
        gradient_metrics(model, x, parameters=["conv9.weight"])
    with pytest.raises(ValueError, match="labels must have shape"):
        gradient_metrics(model, x, labels=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must lie"):
        gradient_metrics(model, x, labels=torch.full((3,), 7))
    with pytest.raises(ValueError, match="NaN"):
        gradient_metrics(model, torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="chunk_size"):
        gradient_metrics(model, x, chunk_size=0)
    with pytest.raises(TypeError, match="nn.Module"):
        gradient_metrics(lambda t: t, x)
    with pytest.raises(ValueError, match="at least 2 classes"):
        softmax_metrics(torch.zeros(3, 1))
