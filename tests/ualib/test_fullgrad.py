"""FullGrad: completeness in float64, bias terms against finite differences, the signed map's sum, the
display saliency against an independent re-implementation of the official recipe, side effects and
rejected models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ualib.attribution import FullGrad, fullgrad, fullgrad_saliency
from ualib.attribution.fullgrad import _spread_matrix
from ualib.models import LeNet, ResNet18


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so the effective bias matters."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=g) - 0.5)
    return model


def _seq_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, padding=1),
        nn.BatchNorm2d(5),
        nn.LeakyReLU(0.1),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(5 * 2 * 2, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(8, 3),
    )


NETS = {
    "sequential": (_seq_net, (2, 8, 8)),
    "lenet_bn": (lambda: LeNet(1, 8, 10, batchnorm=True, dropout=0.3), (1, 8, 8)),
    "resnet18_bn": (lambda: ResNet18(3, 16, 4, width=4), (3, 16, 16)),
}


def _net(name: str, dtype=torch.float64) -> tuple[nn.Module, torch.Tensor]:
    make, shape = NETS[name]
    torch.manual_seed(0)
    model = _randomise_bn(make()).to(dtype).eval()
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    return model, x


# --------------------------------------------------------------------------------------------------
# completeness
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(NETS))
def test_completeness_float64(name):
    model, x = _net(name)
    fg = FullGrad(model)
    dec = fg.decompose(x, 1)
    with torch.no_grad():
        z = model(x)[:, 1]
    torch.testing.assert_close(dec.output, z, rtol=0, atol=1e-12)
    rel = ((dec.total() - z).abs() / z.abs().clamp(min=1e-3)).max()
    assert rel < 1e-10, rel  # far below the official 1e-4
    assert fg.check_error is not None and fg.check_error < 1e-10
    # every BatchNorm contributes its effective bias
    assert sum("BatchNorm" in type(dict(model.named_modules())[n]).__name__ for n in dec.layer_names) >= 2


@pytest.mark.parametrize("name", list(NETS))
def test_completeness_float32_within_official_tolerance(name):
    model, x = _net(name, torch.float32)
    dec = FullGrad(model).decompose(x, 0)
    assert float(dec.completeness_error().max()) < 1e-4


def test_bias_terms_match_finite_differences(float64):
    """grad_b f * b for one conv bias and one BatchNorm shift, by central differences (f is piecewise linear)."""
    model, x = _net("sequential")
    dec = FullGrad(model).decompose(x[:1], 2)
    terms = dict(zip(dec.layer_names, dec.bias_terms))
    h = 1e-6
    for layer, param in (("0", model[0].bias), ("1", model[1].bias)):
        bn = isinstance(model[int(layer)], nn.BatchNorm2d)
        eff = (
            model[1].bias - model[1].running_mean * model[1].weight / torch.sqrt(model[1].running_var + model[1].eps)
            if bn
            else param
        ).detach()
        for c in range(param.numel()):
            with torch.no_grad():
                param[c] += h
                up = model(x[:1])[0, 2]
                param[c] -= 2 * h
                down = model(x[:1])[0, 2]
                param[c] += h
            fd = (up - down) / (2 * h) * eff[c]
            assert float(terms[layer][0, c].sum()) == pytest.approx(float(fd), abs=1e-7)


def test_signed_map_sums_to_target_and_is_linear_in_the_weights(float64):
    model, x = _net("lenet_bn")
    fg = FullGrad(model)
    with torch.no_grad():
        z = model(x)
    for k in (0, 7):
        m = fg.signed_map(x, k)
        assert m.shape == (3, 1, 8, 8)
        torch.testing.assert_close(m.sum((1, 2, 3)), z[:, k], rtol=0, atol=1e-10)
    w = torch.randn(3, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    combined = fg.signed_map(x, w)
    per_class = torch.stack([fg.signed_map(x, k) for k in range(10)], 1)  # [B, K, 1, H, W]
    torch.testing.assert_close(combined, (w[:, :, None, None, None] * per_class).sum(1), rtol=0, atol=1e-10)
    torch.testing.assert_close(combined.sum((1, 2, 3)), (w * z).sum(1), rtol=0, atol=1e-10)
    # per-input classes and batching
    cls = torch.tensor([3, 1, 4])
    torch.testing.assert_close(
        fg.signed_map(x, cls, batch_size=2).sum((1, 2, 3)), z.gather(1, cls[:, None])[:, 0], rtol=0, atol=1e-10
    )
    signed, display, logits = fg.class_maps(x, batch_size=2)
    torch.testing.assert_close(logits, z, rtol=0, atol=1e-12)
    torch.testing.assert_close(signed.sum((2, 3)), z, rtol=0, atol=1e-10)
    torch.testing.assert_close(display[:, 4:5], fg.saliency(x, 4))


def test_spread_matrix_is_column_normalised_bilinear():
    for n_out, n_in in ((8, 4), (28, 7), (5, 5), (7, 1), (3, 6)):
        w = _spread_matrix(n_out, n_in, dtype=torch.float64, device=torch.device("cpu"))
        torch.testing.assert_close(w.sum(0), torch.ones(n_in, dtype=torch.float64))
        if 1 < n_in <= n_out:
            eye = torch.eye(n_in, dtype=torch.float64).unsqueeze(1)  # n_in impulses [N, 1, L]
            ref = F.interpolate(eye, size=n_out, mode="linear", align_corners=True)[:, 0].T  # [n_out, n_in]
            torch.testing.assert_close(w, ref / ref.sum(0, keepdim=True))


# --------------------------------------------------------------------------------------------------
# the display saliency against the official recipe, re-implemented with plain torch ops
# --------------------------------------------------------------------------------------------------


def _reference_saliency(p: dict[str, torch.Tensor], x: torch.Tensor, cls: int) -> torch.Tensor:
    """FullGrad saliency of conv - BN - ReLU - maxpool - conv - ReLU - flatten - linear, written out."""
    x = x.clone().requires_grad_(True)
    c1 = F.conv2d(x, p["w1"], p["b1"], padding=1)
    scale = p["gamma"] / torch.sqrt(p["var"] + 1e-5)
    bn_bias = p["beta"] - p["mean"] * scale
    n1 = c1 * scale.view(1, -1, 1, 1) + bn_bias.view(1, -1, 1, 1)
    h = F.max_pool2d(torch.relu(n1), 2)
    c2 = F.conv2d(h, p["w2"], p["b2"], padding=1)
    out = F.linear(torch.relu(c2).flatten(1), p["w3"], p["b3"])
    gx, g1, gn, g2 = torch.autograd.grad(out[:, cls].sum(), [x, c1, n1, c2])

    def post(t):  # abs, minus per-sample min, over per-sample max + 1e-6 (over C x h x w)
        t = t.abs()
        flat = t.reshape(t.shape[0], -1)
        t = t - flat.min(1).values.reshape(-1, 1, 1, 1)
        return t / (t.reshape(t.shape[0], -1).max(1).values.reshape(-1, 1, 1, 1) + 1e-6)

    cam = post(gx * x).sum(1, keepdim=True)
    for g, b in ((g1, p["b1"]), (gn, bn_bias), (g2, p["b2"])):
        term = post(g * b.view(1, -1, 1, 1))
        cam = cam + F.interpolate(term, size=x.shape[-2:], mode="bilinear", align_corners=True).sum(1, keepdim=True)
    return cam.detach()


def test_display_saliency_equals_the_official_recipe(float64):
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 5),
    )
    _randomise_bn(model)
    model.eval()
    p = {
        "w1": model[0].weight,
        "b1": model[0].bias,
        "gamma": model[1].weight,
        "beta": model[1].bias,
        "mean": model[1].running_mean,
        "var": model[1].running_var,
        "w2": model[4].weight,
        "b2": model[4].bias,
        "w3": model[7].weight,
        "b3": model[7].bias,
    }
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = fullgrad_saliency(model, x, 2)
    assert ours.shape == (4, 1, 8, 8)
    torch.testing.assert_close(ours, _reference_saliency(p, x, 2), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------------------------------
# no side effects
# --------------------------------------------------------------------------------------------------


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_hooks_mode_and_requires_grad_restored():
    model, x = _net("sequential", torch.float32)
    model.train()
    model[4].eval()  # a mixed-mode model must come back mixed
    model[0].weight.requires_grad_(False)
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    stats = model[1].running_mean.clone()
    x0 = x.clone()
    fg = FullGrad(model)
    fg.signed_map(x, 0)
    fg.saliency(x, 1)
    fg.class_maps(x)
    assert _hook_count(model) == 0
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    torch.testing.assert_close(model[1].running_mean, stats)  # eval mode: no BatchNorm update
    torch.testing.assert_close(x, x0)
    assert not x.requires_grad


def test_hooks_removed_when_an_exception_is_raised():
    model, x = _net("sequential", torch.float32)
    fg = FullGrad(model)
    with pytest.raises(ValueError, match=r"class_index must lie in \[0, 2\]"):
        fg.signed_map(x, 5)  # fails inside the hooked forward pass
    assert _hook_count(model) == 0
    with pytest.raises(TypeError, match="linear function of the model's outputs"):
        fg.signed_map(x, lambda z: z.softmax(-1)[:, 0])
    assert _hook_count(model) == 0


# --------------------------------------------------------------------------------------------------
# rejected models and the opt-out
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("act", [nn.Softplus(), nn.Tanh(), nn.GELU(), nn.Sigmoid(), nn.ReLU6()])
def test_non_piecewise_linear_activations_are_rejected(act):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), act, nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    name = type(act).__name__
    with pytest.raises(ValueError, match=rf"cannot decompose this model exactly.*1 \({name}\).*strict=False"):
        FullGrad(model)


def test_batchnorm_without_running_stats_is_rejected():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False), nn.ReLU())
    with pytest.raises(ValueError, match="BatchNorm without running statistics"):
        FullGrad(model)


def test_not_a_module_is_rejected():
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        FullGrad(lambda x: x)


class _FunctionalTanh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.fc = nn.Linear(3 * 6 * 6, 2)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def test_hidden_nonlinearity_fails_the_completeness_check():
    torch.manual_seed(0)
    model = _FunctionalTanh()
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="completeness failed on the completeness check"):
        FullGrad(model, example_input=x)
    fg = FullGrad(model)  # the check runs lazily, on the first call
    with pytest.raises(ValueError, match="completeness failed"):
        fg.signed_map(x, 0)


def test_strict_false_opts_out_with_a_warning():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Softplus(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    fg = FullGrad(model, strict=False)
    assert any("Softplus" in p for p in fg.unsupported)
    with pytest.warns(RuntimeWarning, match="completeness failed"):
        m = fullgrad(model, torch.rand(2, 1, 8, 8), 0, strict=False)
    assert m.shape == (2, 1, 8, 8)
