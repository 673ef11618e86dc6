"""Attribution methods against independent computations: Captum, hand-derived formulas, SciPy.

Every test runs in float64 on tiny random CNNs (8 x 8 inputs), with two kinds of target: a class logit
of a plain model and the epistemic uncertainty of an MC-dropout posterior.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop, InputXGradient, IntegratedGradients, Saliency
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ualib.attribution import (
    METHODS,
    gaussian_blur,
    grad_cam,
    gradient,
    guided_backprop,
    input_x_gradient,
    integrated_gradients,
    random_attribution,
    smoothgrad,
)
from ualib.posteriors import DeepEnsemble, MCDropout
from ualib.seeding import generator
from ualib.targets import uncertainty_target

# Captum warns that it sets requires_grad on our inputs and that it hooks ReLUs: expected here
pytestmark = [
    pytest.mark.filterwarnings("ignore:Input Tensor:UserWarning"),
    pytest.mark.filterwarnings("ignore:Setting backward hooks:UserWarning"),
]


@pytest.fixture(autouse=True)
def _float64(float64):
    """Every test here runs in float64 (see conftest.py)."""


def cnn(seed: int = 0) -> nn.Module:
    """conv-ReLU-maxpool-conv-ReLU-flatten-linear, [B, 2, 8, 8] -> [B, 3]."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(80, 3),
    )  # fmt: skip


def mc_cnn(seed: int = 1) -> nn.Module:
    """The same trunk with channel dropout between the convolutions and dropout before the head:
    layer 0 runs before the first dropout (on [B, ...]), layer 4 after it (on [S*B, ...])."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout2d(0.25),
        nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Dropout(0.3), nn.Linear(80, 3),
    )  # fmt: skip


def data(b: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 2, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


S = 4  # posterior samples


def setup(kind: str):
    """(target, model, x) for a plain class logit or an MC-dropout epistemic-uncertainty target."""
    if kind == "plain":
        model = cnn()
        return (lambda x: model(x)[:, 1]), model, data()
    post = MCDropout(mc_cnn(), num_samples=S, seed=3)
    return uncertainty_target(post, "epistemic"), post.module, data()


class AsModule(nn.Module):
    """A target as an nn.Module (Captum's GuidedBackprop wants a module); ``model`` is a submodule."""

    def __init__(self, target, model: nn.Module) -> None:
        super().__init__()
        self.model, self.target = model, target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.target(x)


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-10) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


KINDS = ["plain", "posterior"]


# -- against Captum ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_gradient_and_input_x_gradient_match_captum(kind):
    target, _, x = setup(kind)
    g = gradient(target, x)
    assert g.abs().sum() > 0
    close(g, Saliency(target).attribute(x, target=None, abs=False))
    close(input_x_gradient(target, x), InputXGradient(target).attribute(x, target=None))


@pytest.mark.parametrize("kind", KINDS)
def test_integrated_gradients_match_captum(kind):
    target, _, x = setup(kind)
    ours = integrated_gradients(target, x, baseline="black", steps=8)
    ref = IntegratedGradients(target).attribute(x, baselines=0.0, target=None, n_steps=8, method="riemann_right")
    close(ours, ref)
    blurred = gaussian_blur(x, 1.5)
    ours = integrated_gradients(target, x, baseline="blur", blur_sigma=1.5, steps=8)
    ref = IntegratedGradients(target).attribute(x, baselines=blurred, target=None, n_steps=8, method="riemann_right")
    close(ours, ref)


@pytest.mark.parametrize("kind", KINDS)
def test_guided_backprop_matches_captum(kind):
    target, model, x = setup(kind)
    ours = guided_backprop(target, x, model=model)
    ref = GuidedBackprop(AsModule(target, model)).attribute(x, target=None)
    close(ours, ref)
    assert (ours - gradient(target, x)).abs().max() > 1e-6  # it is not the plain gradient


def test_guided_backprop_on_an_ensemble_template_matches_captum_on_members():
    """For a DeepEnsemble, hooking the meta-device template guides every member."""

    def member():
        return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(48, 3))

    ens = DeepEnsemble(member, num_members=3, seed=2)
    x = data(3)
    ours = guided_backprop(uncertainty_target(ens, "epistemic"), x, model=ens.module)
    members = nn.ModuleList(ens.members())

    def naive(x):  # the same epistemic uncertainty from ordinary per-member modules
        p = torch.stack([m(x) for m in members]).softmax(-1)
        pbar = p.mean(0)
        return (p * (p.log() - pbar.log())).sum(-1).mean(0)

    ref = GuidedBackprop(AsModule(naive, members)).attribute(x, target=None)
    close(ours, ref)


def test_guided_backprop_guides_a_target_that_vmaps_its_networks():
    """ReLUs run under torch.func.vmap (where tensor hooks do not reach) are guided too: same as Captum's loop."""

    def member():
        return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(48, 3))

    members = nn.ModuleList(DeepEnsemble(member, num_members=3, seed=2).members())
    params, buffers = torch.func.stack_module_state(list(members))
    template = members[0]

    def vmapped(x):  # the mean class-0 logit over members, the members vectorised with vmap
        one = lambda p, b: torch.func.functional_call(template, (p, b), (x,))  # noqa: E731
        return torch.func.vmap(one)(params, buffers)[..., 0].mean(0)

    def looped(x):
        return torch.stack([m(x)[:, 0] for m in members]).mean(0)

    x = data(3)
    close(
        guided_backprop(vmapped, x, model=template), GuidedBackprop(AsModule(looped, members)).attribute(x, target=None)
    )


def test_smoothgrad_with_fixed_noise_is_mean_of_captum_saliency():
    for kind in KINDS:
        target, _, x = setup(kind)
        noise = 0.2 * torch.randn(5, *x.shape, generator=torch.Generator().manual_seed(9))
        ours = smoothgrad(target, x, noise=noise)
        sal = Saliency(target)
        ref = torch.stack([sal.attribute(x + noise[j], target=None, abs=False) for j in range(5)]).mean(0)
        close(ours, ref)


def test_smoothgrad_seeded_noise_definition():
    """Default noise: z_j from generator(seed, "smoothgrad"), shared by the batch, scaled by
    sigma * (max - min) of each input."""
    target, _, x = setup("plain")
    x = x * torch.tensor([1.0, 2.0, 0.5, 3.0]).view(-1, 1, 1, 1)  # different ranges per input
    z = torch.randn(6, *x.shape[1:], generator=generator(4, "smoothgrad"), dtype=torch.float64)
    span = x.flatten(1).max(1).values - x.flatten(1).min(1).values
    noise = 0.1 * span.view(1, -1, 1, 1, 1) * z[:, None]
    ours = smoothgrad(target, x, n_samples=6, sigma=0.1, seed=4)
    close(ours, smoothgrad(target, x, noise=noise))
    assert torch.equal(ours, smoothgrad(target, x, n_samples=6, sigma=0.1, seed=4))
    assert (ours - smoothgrad(target, x, n_samples=6, sigma=0.1, seed=5)).abs().max() > 1e-8
    close(smoothgrad(target, x, n_samples=3, sigma=0.0), gradient(target, x))


# -- independent re-derivations ---------------------------------------------------------------------
def test_guided_backprop_rederived_by_hand_on_an_mlp():
    """R(l) = 1[f > 0] 1[R(l+1) > 0] R(l+1) at each ReLU, written out for a 2-hidden-layer MLP."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 7), nn.ReLU(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 2))
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    l1, l2, l3 = model[0], model[2], model[4]
    f1 = x @ l1.weight.T + l1.bias
    f2 = torch.relu(f1) @ l2.weight.T + l2.bias
    r = l3.weight[0].expand(4, -1)  # d logit_0 / d relu(f2)
    r = (f2 > 0) * (r > 0) * r
    r = r @ l2.weight
    r = (f1 > 0) * (r > 0) * r
    expected = r @ l1.weight
    close(guided_backprop(lambda x: model(x)[:, 0], x, model=model), expected)
    inplace = nn.Sequential(l1, nn.ReLU(inplace=True), l2, nn.ReLU(inplace=True), l3)  # same weights
    close(guided_backprop(lambda x: inplace(x)[:, 0], x, model=inplace), expected)


@pytest.mark.parametrize("baseline", ["black", "blur"])
@pytest.mark.parametrize("kind", KINDS)
def test_integrated_gradients_completeness(kind, baseline):
    """sum IG -> F(x) - F(x') (float64). A right Riemann sum of g(a) = grad F(x' + a (x - x')) . (x - x')
    errs by at most TV(g) / S, TV the total variation of g on [0, 1] (estimated on a 512-point grid)."""
    target, _, x = setup(kind)
    base = torch.zeros_like(x) if baseline == "black" else gaussian_blur(x, 2.0)
    with torch.no_grad():
        diff = target(x) - target(base)
    alphas = torch.linspace(0, 1, 513).view(-1, 1, 1, 1, 1)
    path = (base + alphas * (x - base)).flatten(0, 1)
    g = (gradient(target, path).view(513, *x.shape) * (x - base)).flatten(2).sum(2)  # [513, B]
    tv = (g[1:] - g[:-1]).abs().sum(0)  # [B]
    gaps = []
    for steps in (4, 32, 256):
        attr, gap = integrated_gradients(target, x, baseline=baseline, steps=steps, return_convergence=True)
        close(gap, diff - attr.flatten(1).sum(1), 1e-12)  # the reported gap is what it says
        assert (gap.abs() <= 1.5 * tv / steps + 1e-12).all(), (steps, gap, tv)
        gaps.append(gap.abs().max().item())
    assert gaps[2] < gaps[1] < gaps[0] and gaps[2] < gaps[0] / 8


def test_integrated_gradients_exact_for_a_linear_target():
    w = torch.randn(2, 8, 8, generator=torch.Generator().manual_seed(5))
    target = lambda x: (x * w).flatten(1).sum(1) + 0.3  # noqa: E731
    x = data(3)
    base = torch.rand(1, 2, 8, 8, generator=torch.Generator().manual_seed(6))
    attr, gap = integrated_gradients(target, x, baseline=base, steps=3, return_convergence=True)
    close(attr, (x - base) * w)
    close(gap, torch.zeros(3), 1e-12)


def _hand_cam(acts: torch.Tensor, grads: torch.Tensor, b: int, size) -> torch.Tensor:
    """Grad-CAM with explicit loops: per copy k and input i, alpha_c = mean_ij dF/dA_cij."""
    k = acts.shape[0] // b
    out = torch.zeros(b, *acts.shape[-2:])
    for copy in range(k):
        for i in range(b):
            a, g = acts[copy * b + i], grads[copy * b + i]
            m = torch.zeros(acts.shape[-2:])
            for c in range(a.shape[0]):
                m = m + g[c].sum() / g[c].numel() * a[c]
            out[i] += torch.clamp(m, min=0) / k
    return F.interpolate(out[:, None], size=size, mode="bilinear", align_corners=False)


def test_grad_cam_plain_model_matches_formula():
    model = cnn()
    x = data()
    for split in (1, 4):  # after the first ReLU, after the second ReLU
        acts = model[: split + 1](x).detach().requires_grad_(True)
        (grads,) = torch.autograd.grad(model[split + 1 :](acts)[:, 0].sum(), acts)
        ours = grad_cam(lambda x: model(x)[:, 0], x, layer=model[split])
        assert ours.shape == (4, 1, 8, 8)
        close(ours, _hand_cam(acts.detach(), grads, 4, (8, 8)))
        assert ours.abs().sum() > 0


@pytest.mark.parametrize("index, copies", [(0, 1), (4, S)])
def test_grad_cam_mc_dropout_matches_formula(index, copies):
    """Layer 0 runs before dropout ([B, ...] activations); layer 4 after it ([S*B, ...])."""
    post = MCDropout(mc_cnn(), num_samples=S, seed=3)
    target = uncertainty_target(post, "epistemic")
    x = data()
    layer = post.module[index]
    acts = []
    handle = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    try:
        out = target(x.clone().requires_grad_(True))
    finally:
        handle.remove()
    assert acts[-1].shape[0] == copies * 4
    (grads,) = torch.autograd.grad(out.sum(), acts[-1])
    ours = grad_cam(target, x, layer=layer)
    close(ours, _hand_cam(acts[-1].detach(), grads, 4, (8, 8)))
    assert ours.abs().sum() > 0


def test_grad_cam_rejects_an_ensemble():
    ens = DeepEnsemble(cnn, num_members=2)
    with pytest.raises(ValueError, match="ran 2 times .* once per sample"):
        grad_cam(uncertainty_target(ens), data(2), layer=ens.module[0])
    assert all(not m._forward_hooks for m in ens.module.modules())


def test_grad_cam_rejects_a_vmapped_target():
    net = cnn()

    def vmapped(x):  # the layer runs inside vmap: its activations are not reachable from outside
        return torch.func.vmap(lambda xi: net(xi[None])[0, 0])(x)

    with pytest.raises(ValueError, match="vmap"):
        grad_cam(vmapped, data(2), layer=net[0])


@pytest.mark.parametrize("sigma", [0.6, 1.0, 2.0, 3.5])
def test_gaussian_blur_matches_scipy_mirror(sigma):
    """Our padding reflects about the edge sample (PyTorch "reflect") = SciPy mode="mirror";
    SciPy's mode="reflect" repeats the edge sample and differs. sigma=3.5 has radius 14 > 8."""
    x = torch.rand(2, 3, 8, 7, generator=torch.Generator().manual_seed(0))
    ours = gaussian_blur(x, sigma).numpy()
    np.testing.assert_allclose(
        ours, ndi.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="mirror"), atol=1e-13
    )
    assert np.abs(ours - ndi.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="reflect")).max() > 1e-3


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), sigma=st.floats(0.2, 5.0), truncate=st.floats(1.0, 4.0))
def test_gaussian_blur_property(h, w, sigma, truncate):
    """Any image size (also 1 pixel, and kernels wider than the image), sigma and truncation."""
    x = torch.rand(1, 2, h, w, generator=torch.Generator().manual_seed(h * 10 + w))
    ref = ndi.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="mirror", truncate=truncate)
    np.testing.assert_allclose(gaussian_blur(x, sigma, truncate=truncate).numpy(), ref, atol=1e-12)


def test_random_attribution():
    x = data(3)
    r = random_attribution(x, seed=2)
    assert r.shape == x.shape and r.dtype == x.dtype
    assert (r >= 0).all() and (r < 1).all()
    assert torch.equal(r, random_attribution(x, seed=2))
    expected = torch.rand(x.shape, generator=generator(2, "random"), dtype=torch.float64)
    assert torch.equal(r, expected)
    assert not torch.equal(r, random_attribution(x, seed=3))
    assert r.float().dtype == random_attribution(x.float(), seed=2).dtype
    close(random_attribution(x.float(), seed=2).double(), r, 1e-7)


# -- batching --------------------------------------------------------------------------------------
CALLS = {
    "gradient": lambda t, x, m, **kw: gradient(t, x, **kw),
    "input_x_gradient": lambda t, x, m, **kw: input_x_gradient(t, x, **kw),
    "smoothgrad": lambda t, x, m, **kw: smoothgrad(t, x, n_samples=3, sigma=0.1, **kw),
    "integrated_gradients": lambda t, x, m, **kw: integrated_gradients(t, x, baseline="blur", steps=5, **kw),
    "guided_backprop": lambda t, x, m, **kw: guided_backprop(t, x, model=m, **kw),
    "grad_cam": lambda t, x, m, **kw: grad_cam(t, x, layer=m[0], **kw),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", sorted(CALLS))
def test_batched_equals_per_sample_and_batch_size_free(method, kind):
    target, model, x = setup(kind)
    call = CALLS[method]
    full = call(target, x, model)
    single = torch.cat([call(target, x[i : i + 1], model) for i in range(len(x))])
    close(single, full)
    for bs in (1, 3, 7):
        close(call(target, x, model, batch_size=bs), full)


def test_integrated_gradients_convergence_independent_of_batch_size():
    target, _, x = setup("posterior")
    a, g = integrated_gradients(target, x, steps=6, return_convergence=True)
    a2, g2 = integrated_gradients(target, x, steps=6, return_convergence=True, batch_size=5)
    close(a, a2)
    close(g, g2)


# -- no side effects -------------------------------------------------------------------------------
def _state(model: nn.Module):
    return (
        {n: m.training for n, m in model.named_modules()},
        {n: p.requires_grad for n, p in model.named_parameters()},
        sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
    )


ALL_CALLS = {**CALLS, "random": lambda t, x, m, **kw: random_attribution(x, **kw)}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", sorted(ALL_CALLS))
def test_no_side_effects(method, kind):
    target, model, x = setup(kind)
    model.train()
    model[2].train(False)
    next(model.parameters()).requires_grad_(False)
    before = _state(model)
    x = x.clone().requires_grad_(True)
    x0 = x.detach().clone()
    rng, np_rng, py_rng = torch.get_rng_state(), np.random.get_state(), random.getstate()
    with torch.no_grad():  # also works when called under no_grad
        out = ALL_CALLS[method](target, x, model)
    assert not out.requires_grad and out.grad_fn is None
    assert _state(model) == before
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(x.detach(), x0) and x.grad is None and x.requires_grad
    assert torch.equal(torch.get_rng_state(), rng)
    assert np.array_equal(np.random.get_state()[1], np_rng[1]) and random.getstate() == py_rng


@pytest.mark.parametrize("method", ["guided_backprop", "grad_cam"])
def test_hooks_removed_when_the_target_raises(method):
    model = cnn()

    def failing(x):
        model(x)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        CALLS[method](failing, data(), model)
    with pytest.raises(ValueError, match="one scalar per input"):
        CALLS[method](model, data(), model)  # [B, K] output, rejected inside the hook scope
    assert _state(model)[2] == 0


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", sorted(CALLS))
def test_bad_input(method):
    target, model, x = setup("plain")
    call = CALLS[method]
    with pytest.raises(ValueError, match="dimensions|shaped"):
        call(target, x[0], model)  # [C, H, W]: no batch axis
    with pytest.raises(TypeError, match="callable"):
        call("logit", x, model)
    with pytest.raises(ValueError, match=r"one scalar per input.*returned shape \(\d+, 3\).*\[B, K\]"):
        call(model, x, model)
    with pytest.raises(ValueError, match=r"returned shape \(\d+, 1\)"):
        call(lambda x: model(x)[:, :1], x, model)
    with pytest.raises(TypeError, match="floating"):
        call(target, (x * 255).long(), model)
    with pytest.raises(ValueError, match="NaN"):
        call(target, x.masked_fill(x > 0.9, float("nan")), model)
    with pytest.raises(ValueError, match="batch_size"):
        call(target, x, model, batch_size=0)
    with pytest.raises(ValueError, match="no gradient graph"):
        call(lambda x: model(x)[:, 0].detach(), x, model)


def test_bad_options():
    target, model, x = setup("plain")
    with pytest.raises(ValueError, match="baseline must be one of"):
        integrated_gradients(target, x, baseline="white")
    with pytest.raises(ValueError, match="broadcastable"):
        integrated_gradients(target, x, baseline=torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(target, x, steps=0)
    with pytest.raises(ValueError, match="blur_sigma"):
        integrated_gradients(target, x, baseline="blur", blur_sigma=0.0)
    flat = x.flatten(1)
    lin = nn.Linear(128, 2)
    with pytest.raises(ValueError, match=r"'blur' baseline needs images"):
        integrated_gradients(lambda z: lin(z)[:, 0], flat, baseline="blur")
    close(integrated_gradients(lambda z: lin(z)[:, 0], flat, steps=2), flat * lin.weight[0])  # tables work
    with pytest.raises(ValueError, match="noise must be shaped"):
        smoothgrad(target, x, noise=torch.zeros(3, 2, 2, 8, 8))
    with pytest.raises(ValueError, match="sigma"):
        smoothgrad(target, x, sigma=-0.1)
    with pytest.raises(ValueError, match="n_samples"):
        smoothgrad(target, x, n_samples=0)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        grad_cam(lambda z: lin(z)[:, 0], flat, layer=lin)
    with pytest.raises(TypeError, match="layer must be an nn.Module"):
        grad_cam(target, x, layer="conv")
    with pytest.raises(ValueError, match="never ran through `layer`"):
        grad_cam(target, x, layer=nn.Conv2d(2, 2, 1))
    with pytest.raises(TypeError, match="seed"):
        random_attribution(x, seed=1.5)


def test_guided_backprop_needs_relu_modules():
    class FunctionalReLU(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(6, 5), nn.Linear(5, 2)

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(x)))

    model = FunctionalReLU()
    with pytest.raises(ValueError, match="needs nn.ReLU modules"):
        guided_backprop(lambda x: model(x)[:, 0], torch.rand(3, 6), model=model)
    with pytest.raises(TypeError, match="nn.Module"):
        guided_backprop(lambda x: model(x)[:, 0], torch.rand(3, 6), model=lambda x: x)
    other = cnn()
    with pytest.raises(ValueError, match="never ran through an nn.ReLU"):
        guided_backprop(lambda x: model(x)[:, 0], torch.rand(3, 6), model=other)
    assert _state(other)[2] == 0


def test_registry():
    assert list(METHODS) == [
        "gradient", "input_x_gradient", "smoothgrad", "integrated_gradients", "guided_backprop", "grad_cam", "random",
    ]  # fmt: skip
    assert METHODS["integrated_gradients"] is integrated_gradients and METHODS["random"] is random_attribution


# hand-computed checks of the shared blur (moved from the mitigation tests)
def test_blur_hand_computed_delta():
    # sigma = 0.25 -> radius int(4 * 0.25 + 0.5) = 1, weights [e^-8, 1, e^-8] / (1 + 2 e^-8)
    e = np.exp(-8.0)
    w0, w1 = 1 / (1 + 2 * e), e / (1 + 2 * e)
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    x[0, 0, 0, 0] = 1.0
    # reflect padding: the left/top neighbour of pixel 0 is pixel 1 (zero here), so 1-D blur of a
    # delta at index 0 is [w0, w1, 0, 0]; the 2-D blur is the outer product
    v = torch.tensor([w0, w1, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur(x, 0.25)[0, 0], torch.outer(v, v), rtol=0, atol=1e-15)


def test_blur_keeps_constants():
    x = torch.full((2, 1, 4, 4), 0.7, dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur(x, 2.0), x, rtol=0, atol=1e-15)
    assert torch.equal(gaussian_blur(x, 0.0), x)
