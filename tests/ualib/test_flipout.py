"""Tests of the Flipout layers against direct computations (float64, fixed seeds).

Statistical tolerances: every Monte-Carlo comparison uses a bound of a few standard errors computed
from the sample size, stated next to the assertion. Seeds are fixed, so the tests are deterministic;
the bounds say why the chosen seed is not a lucky one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl

from ualib.layers import (
    FlipoutConv2d,
    FlipoutLayer,
    FlipoutLinear,
    flipout_modules,
    kl_divergence,
    scale_mixture_log_prob,
    weight_eps_shapes,
)

DT = torch.float64


def _linear(seed: int = 0, **kw) -> FlipoutLinear:
    torch.manual_seed(seed)
    return FlipoutLinear(4, 3, dtype=DT, **kw)


def _conv(seed: int = 0, **kw) -> FlipoutConv2d:
    torch.manual_seed(seed)
    return FlipoutConv2d(2, 3, 3, stride=1, padding=1, dtype=DT, **kw)


def _widen_sigma(layer: FlipoutLayer, rho: float = 0.0) -> None:
    """Make sigma large (softplus(0) ~ 0.69) and heterogeneous so that variances are easy to see."""
    with torch.no_grad():
        layer.weight_rho.copy_(rho + 0.5 * torch.randn_like(layer.weight_rho))


def _eval_direct(layer: FlipoutLayer, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Outputs for S full weight samples mu + sigma * eps[s] (eps [S, *w]), via functional_call + vmap."""
    layer.eval()
    return torch.func.vmap(lambda e: torch.func.functional_call(layer, {"weight_eps": e}, (x,)))(eps)


# --------------------------------------------------------------------------------------------------
# (1) evaluation-mode contract
# --------------------------------------------------------------------------------------------------
def test_parameters_buffers_and_init() -> None:
    layer = _linear(rho_init=(-3.0, 0.1))
    assert layer.weight_mu.shape == layer.weight_rho.shape == layer.weight_eps.shape == (3, 4)
    assert layer.bias is not None and layer.bias.shape == (3,)
    assert "weight_eps" not in layer.state_dict()  # non-persistent
    assert torch.count_nonzero(layer.weight_eps) == 0
    # kaiming-uniform(a=sqrt(5)) => U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
    assert layer.weight_mu.abs().max() <= 1 / math.sqrt(4)
    assert layer.bias.abs().max() <= 1 / math.sqrt(4)
    torch.manual_seed(1)
    big = FlipoutLinear(100, 100, bias=False, rho_init=(-3.0, 0.1), dtype=DT)
    assert big.bias is None
    # 10^4 draws of N(-3, 0.1^2): mean SE = 1e-3, std SE ~ 7e-4
    assert abs(big.weight_rho.mean().item() + 3.0) < 5e-3
    assert abs(big.weight_rho.std().item() - 0.1) < 5e-3
    conv = _conv()
    assert conv.weight_mu.shape == conv.weight_eps.shape == (3, 2, 3, 3)


@pytest.mark.parametrize("make", [_linear, _conv])
def test_eval_mode_is_deterministic_op_with_mu_plus_sigma_eps(make) -> None:
    layer = make()
    _widen_sigma(layer)
    layer.eval()
    x = torch.randn(5, 4, dtype=DT) if isinstance(layer, FlipoutLinear) else torch.randn(5, 2, 6, 6, dtype=DT)

    def op(w: torch.Tensor) -> torch.Tensor:
        if isinstance(layer, FlipoutLinear):
            return F.linear(x, w, layer.bias)
        return F.conv2d(x, w, layer.bias, stride=1, padding=1)

    state = torch.get_rng_state()
    with torch.no_grad():
        out0 = layer(x)
    assert torch.equal(torch.get_rng_state(), state)  # eval mode draws no random numbers
    assert torch.equal(out0, op(layer.weight_mu.detach()))  # zero buffer: exactly the mean weights
    eps = torch.randn_like(layer.weight_eps)
    sigma = F.softplus(layer.weight_rho.detach())
    layer.weight_eps.copy_(eps)
    with torch.no_grad():
        out1 = layer(x)
    torch.testing.assert_close(out1, op(layer.weight_mu.detach() + sigma * eps), rtol=0, atol=1e-12)
    assert layer.last_kl is None  # eval forwards leave the KL alone


# --------------------------------------------------------------------------------------------------
# (2) functional_call + vmap
# --------------------------------------------------------------------------------------------------
def test_functional_call_vmap_matches_loop() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        FlipoutConv2d(2, 3, 3, padding=1, dtype=DT),
        nn.ReLU(),
        nn.Flatten(),
        FlipoutLinear(3 * 5 * 5, 4, dtype=DT),
    )
    for m in flipout_modules(model).values():
        _widen_sigma(m, rho=-1.0)
    model.eval()
    shapes = weight_eps_shapes(model)
    assert list(shapes) == ["0.weight_eps", "3.weight_eps"]
    x = torch.randn(7, 2, 5, 5, dtype=DT)
    eps = {k: torch.randn(5, *s, dtype=DT) for k, s in shapes.items()}

    def f(e: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.func.functional_call(model, e, (x,))

    batched = torch.func.vmap(f)(eps)
    assert batched.shape == (5, 7, 4)
    with torch.no_grad():
        for m_idx in range(5):
            # independent reference: set the buffers in place and call the module
            for name, layer in flipout_modules(model).items():
                layer.weight_eps.copy_(eps[f"{name}.weight_eps"][m_idx])
            ref = model(x)
            torch.testing.assert_close(batched[m_idx], ref, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(f({k: v[m_idx] for k, v in eps.items()}), ref, rtol=1e-10, atol=1e-12)
    # functional_call does not leave the override behind
    for layer in flipout_modules(model).values():
        layer.weight_eps.zero_()
    torch.func.vmap(f)(eps)
    assert all(torch.count_nonzero(m.weight_eps) == 0 for m in flipout_modules(model).values())
    # and gradients flow through the vmapped samples to mu and rho
    model.zero_grad()
    torch.func.vmap(f)(eps).pow(2).sum().backward()
    for m in flipout_modules(model).values():
        assert m.weight_mu.grad is not None and m.weight_rho.grad is not None
        assert m.weight_rho.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------------
# (3) per-example mean and variance of the Flipout output
# --------------------------------------------------------------------------------------------------
def _flipout_draws(layer: FlipoutLayer, x: torch.Tensor, n: int) -> torch.Tensor:
    layer.train()
    with torch.no_grad():
        return torch.stack([layer(x) for _ in range(n)])


def _check_mean_var(draws: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, z: float = 5.0) -> None:
    """draws [N, ...]: each output entry is exactly Gaussian (see below), so
    SE(sample mean) = sqrt(var / N) and SE(sample variance) = var * sqrt(2 / (N - 1))."""
    n = draws.shape[0]
    m_hat = draws.mean(0)
    v_hat = draws.var(0)
    assert ((m_hat - mean).abs() <= z * (var / n).sqrt()).all()
    assert ((v_hat - var).abs() <= z * var * math.sqrt(2 / (n - 1))).all()


def test_flipout_linear_per_example_mean_and_variance() -> None:
    layer = _linear(seed=3)
    _widen_sigma(layer)
    torch.manual_seed(4)
    x = torch.randn(3, 4, dtype=DT)
    n = 20000
    with torch.no_grad():
        mean = F.linear(x, layer.weight_mu, layer.bias)
        sigma = F.softplus(layer.weight_rho)
        # Var[out_bj] for W = mu + sigma * eps: sum_i sigma_ji^2 x_bi^2. Given the signs, the Flipout
        # output is Gaussian with this same variance (s^2 = r^2 = 1), so it is exactly Gaussian.
        var = F.linear(x**2, sigma**2)
        flip = _flipout_draws(layer, x, n)
        direct = _eval_direct(layer, x, torch.randn(n, 3, 4, dtype=DT))
    assert flip.shape == direct.shape == (n, 3, 3)
    _check_mean_var(flip, mean, var)
    _check_mean_var(direct, mean, var)
    # The two empirical variances agree: the difference of two independent estimates has SE
    # var * sqrt(4 / (n - 1)).
    assert ((flip.var(0) - direct.var(0)).abs() <= 5 * var * math.sqrt(4 / (n - 1))).all()


def test_flipout_conv_per_example_mean_and_variance() -> None:
    layer = _conv(seed=5)
    _widen_sigma(layer)
    torch.manual_seed(6)
    x = torch.randn(2, 2, 4, 4, dtype=DT)
    n = 6000
    with torch.no_grad():
        mean = F.conv2d(x, layer.weight_mu, layer.bias, padding=1)
        var = F.conv2d(x**2, F.softplus(layer.weight_rho) ** 2, padding=1)
        flip = _flipout_draws(layer, x, n)
        direct = _eval_direct(layer, x, torch.randn(n, 3, 2, 3, 3, dtype=DT))
    # 96 output entries, each tested at 5 SE: family-wise false-alarm probability < 1e-4.
    _check_mean_var(flip, mean, var)
    _check_mean_var(direct, mean, var)


# --------------------------------------------------------------------------------------------------
# (4) decorrelation across the minibatch
# --------------------------------------------------------------------------------------------------
def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / (a.pow(2).sum(0) * b.pow(2).sum(0)).sqrt()


def test_flipout_decorrelates_examples_in_a_batch() -> None:
    layer = _linear(seed=7)
    _widen_sigma(layer)
    torch.manual_seed(8)
    x1 = torch.randn(4, dtype=DT)
    x = torch.stack([x1, x1 + 0.05 * torch.randn(4, dtype=DT)])  # two different, similar examples
    n = 10000
    with torch.no_grad():
        flip = _flipout_draws(layer, x, n)  # [n, 2, 3]
        shared = _eval_direct(layer, x, torch.randn(n, 3, 4, dtype=DT))  # one weight sample per batch
        sigma2 = F.softplus(layer.weight_rho) ** 2
        cov = F.linear(x[0] * x[1], sigma2)
        rho_shared = cov / (F.linear(x[0] ** 2, sigma2) * F.linear(x[1] ** 2, sigma2)).sqrt()
    assert (rho_shared > 0.95).all()
    c_shared = _corr(shared[:, 0], shared[:, 1])
    assert (c_shared > 0.9).all()
    c_flip = _corr(flip[:, 0], flip[:, 1])
    # Flipout: the product of the two perturbations carries the independent sign r_1j r_2j, so its
    # mean is 0 and the sample correlation has SE <= sqrt(3 / n) (E[a^2 b^2] <= 3 Var a Var b for
    # jointly Gaussian a, b). 5 SE = 0.087.
    assert (c_flip.abs() < 5 * math.sqrt(3 / n)).all()


# --------------------------------------------------------------------------------------------------
# (5) gradients
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [_linear, _conv])
def test_gradients_reach_mu_rho_and_bias(make) -> None:
    layer = make()
    layer.train()
    x = torch.randn(5, 4, dtype=DT) if isinstance(layer, FlipoutLinear) else torch.randn(5, 2, 4, 4, dtype=DT)
    out = layer(x)
    (out.pow(2).sum() + kl_divergence(layer)).backward()
    for p in (layer.weight_mu, layer.weight_rho, layer.bias):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    # the KL alone depends on rho (and on mu through W = mu + sigma * eps)
    layer.zero_grad()
    layer(x)
    layer.last_kl.backward()
    assert layer.weight_rho.grad.abs().sum() > 0 and layer.weight_mu.grad.abs().sum() > 0
    # the data term alone reaches rho through the perturbation
    layer.zero_grad()
    layer(x).pow(2).sum().backward()
    assert layer.weight_rho.grad.abs().sum() > 0


def test_training_forward_uses_fresh_noise_and_leaves_buffer() -> None:
    layer = _linear()
    layer.train()
    x = torch.randn(2, 4, dtype=DT)
    torch.manual_seed(0)
    a = layer(x)
    torch.manual_seed(0)
    b = layer(x)
    c = layer(x)
    assert torch.equal(a, b)  # global RNG
    assert not torch.equal(b, c)  # fresh draw each call
    assert torch.count_nonzero(layer.weight_eps) == 0


# --------------------------------------------------------------------------------------------------
# (6) KL estimate vs closed form
# --------------------------------------------------------------------------------------------------
def test_mc_kl_matches_closed_form_for_gaussian_prior() -> None:
    layer = _linear(seed=9, prior_pi=1.0, prior_sigma1=0.7)
    _widen_sigma(layer, rho=-1.0)
    layer.train()
    x = torch.randn(1, 4, dtype=DT)
    n = 10000
    with torch.no_grad():
        kls = []
        for _ in range(n):
            layer(x)
            kls.append(layer.last_kl)
        kls = torch.stack(kls)
        exact = torch_kl(
            Normal(layer.weight_mu, F.softplus(layer.weight_rho)), Normal(torch.zeros_like(layer.weight_mu), 0.7)
        ).sum()
    se = kls.std() / math.sqrt(n)
    assert abs(kls.mean() - exact) < 5 * se
    assert se < 0.05 * exact  # the test has power: 5 SE is well below the KL itself


def test_kl_divergence_sums_layers_and_requires_training_forward() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(FlipoutLinear(4, 5, dtype=DT), nn.Tanh(), FlipoutLinear(5, 2, dtype=DT))
    with pytest.raises(RuntimeError, match="training-mode forward"):
        kl_divergence(model)
    model.eval()
    model(torch.randn(3, 4, dtype=DT))
    with pytest.raises(RuntimeError, match="'0'"):
        kl_divergence(model)
    model.train()
    model(torch.randn(3, 4, dtype=DT))
    total = kl_divergence(model)
    assert total.ndim == 0 and total.requires_grad
    torch.testing.assert_close(total, model[0].last_kl + model[2].last_kl)
    assert list(flipout_modules(model)) == ["0", "2"]
    with pytest.raises(ValueError, match="no Flipout layer"):
        kl_divergence(nn.Linear(2, 2))
    with pytest.raises(TypeError):
        flipout_modules("not a module")  # type: ignore[arg-type]


def test_last_kl_matches_direct_recomputation() -> None:
    """last_kl = sum log N(W; mu, sigma) - log p(W) for the W actually used (recovered from the RNG)."""
    layer = _linear(seed=10)
    layer.train()
    x = torch.randn(2, 4, dtype=DT)
    torch.manual_seed(123)
    layer(x)
    torch.manual_seed(123)
    eps = torch.randn_like(layer.weight_mu)  # the first draw of the forward
    with torch.no_grad():
        mu, sigma = layer.weight_mu, F.softplus(layer.weight_rho)
        w = mu + sigma * eps
        log_q = Normal(mu, sigma).log_prob(w)
        s1, s2, pi = 1.5, 0.1, 0.5
        zero = torch.zeros((), dtype=DT)
        dens1 = Normal(zero, zero + s1).log_prob(w).exp()
        dens2 = Normal(zero, zero + s2).log_prob(w).exp()
        log_p = torch.log(pi * dens1 + (1 - pi) * dens2)
    torch.testing.assert_close(layer.last_kl.detach(), (log_q - log_p).sum(), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------------------------------
# (7) scale-mixture prior
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "s1,s2,pi", [(1.5, 0.1, 0.5), (1.0, 0.01, 0.25), (0.3, 2.0, 0.9), (1.5, 0.1, 1.0), (1.5, 0.1, 0.0)]
)
def test_scale_mixture_log_prior_vs_numpy(s1: float, s2: float, pi: float) -> None:
    w = np.linspace(-3.5, 3.5, 141)  # the naive float64 densities do not underflow on this range

    def npdf(v: np.ndarray, s: float) -> np.ndarray:
        return np.exp(-0.5 * (v / s) ** 2) / (s * np.sqrt(2 * np.pi))

    naive = np.log(pi * npdf(w, s1) + (1 - pi) * npdf(w, s2))
    got = scale_mixture_log_prob(torch.tensor(w), s1, s2, pi).numpy()
    assert np.isfinite(naive).all()
    np.testing.assert_allclose(got, naive, rtol=1e-12, atol=1e-12)


def test_scale_mixture_log_prior_is_stable_in_the_tails() -> None:
    w = torch.tensor([50.0, -200.0, 1e3], dtype=DT)  # both densities underflow in naive float64 arithmetic
    got = scale_mixture_log_prob(w, 1.5, 0.1, 0.5)
    wide = math.log(0.5) - 0.5 * math.log(2 * math.pi) - math.log(1.5) - 0.5 * (w / 1.5) ** 2
    torch.testing.assert_close(got, wide, rtol=1e-12, atol=0)  # the wide component dominates
    g = torch.zeros(3, dtype=DT, requires_grad=True)
    scale_mixture_log_prob(g, 1.5, 0.1, 0.5).sum().backward()
    assert torch.isfinite(g.grad).all()
    layer = _linear()
    torch.testing.assert_close(layer.log_prior(w), got)


# --------------------------------------------------------------------------------------------------
# (8) argument validation
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw,match",
    [
        ({"prior_sigma1": -1.0}, "prior_sigma1"),
        ({"prior_sigma1": 0.0}, "prior_sigma1"),
        ({"prior_sigma2": -0.1}, "prior_sigma2"),
        ({"prior_pi": 1.5}, "prior_pi"),
        ({"prior_pi": -0.1}, "prior_pi"),
        ({"prior_pi": float("nan")}, "prior_pi"),
        ({"rho_init": (-3.0, -0.1)}, "rho_init"),
    ],
)
@pytest.mark.parametrize("cls", ["linear", "conv"])
def test_bad_constructor_args_raise_value_error(kw: dict, match: str, cls: str) -> None:
    with pytest.raises(ValueError, match=match):
        if cls == "linear":
            FlipoutLinear(3, 2, **kw)
        else:
            FlipoutConv2d(3, 2, 3, **kw)


def test_bad_shapes_and_types() -> None:
    with pytest.raises(ValueError, match="in_features"):
        FlipoutLinear(0, 2)
    with pytest.raises(ValueError, match="kernel_size"):
        FlipoutConv2d(1, 2, 0)
    with pytest.raises(ValueError, match="stride 1"):
        FlipoutConv2d(1, 2, 3, stride=2, padding="same")
    with pytest.raises(TypeError, match="rho_init"):
        FlipoutLinear(3, 2, rho_init=-3.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prior_pi"):
        FlipoutLinear(3, 2, prior_pi="half")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[\*, 3\]"):
        FlipoutLinear(3, 2)(torch.randn(4, 5))
    with pytest.raises(ValueError, match="in_channels|\\[B, 3"):
        FlipoutConv2d(3, 2, 3)(torch.randn(4, 2, 8, 8))
    with pytest.raises(ValueError):
        scale_mixture_log_prob(torch.zeros(2), -1.0, 0.1, 0.5)
