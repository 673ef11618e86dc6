"""The explanation-uncertainty pipeline against numpy statistics and naive per-sample loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ualib.attribution import explanation_uncertainty as eu
from ualib.attribution import gradient, guided_backprop, integrated_gradients
from ualib.attribution.lime import lime
from ualib.layers import FlipoutConv2d, FlipoutLinear
from ualib.posteriors import BayesByBackprop, DeepEnsemble, DropConnect, MCDropout
from ualib.training import TrainConfig, build_posterior, fit

# --------------------------------------------------------------------------------------------------
# statistics against numpy
# --------------------------------------------------------------------------------------------------


def test_statistics_match_numpy_on_signed_images() -> None:
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(7, 3, 2, 5, 4))  # [S, B, C, H, W], signed
    st = eu.explanation_statistics(torch.from_numpy(maps))
    a = np.abs(maps).sum(2)
    np.testing.assert_allclose(st["abs"].numpy(), a)
    np.testing.assert_allclose(st["mean"].numpy(), a.mean(0), rtol=1e-12)
    np.testing.assert_allclose(st["std"].numpy(), a.std(0), rtol=1e-12)  # numpy's ddof=0
    np.testing.assert_allclose(st["cv"].numpy(), a.std(0) / (a.mean(0) + 1e-8), rtol=1e-12)


def test_cv_of_known_distributions() -> None:
    """Large samples from known laws: CV -> its closed form."""
    rng = np.random.default_rng(1)
    s = 200_000
    # exponential: CV = 1; gamma(k): CV = 1/sqrt(k); Bernoulli(p) * c: CV = sqrt((1-p)/p)
    cols = [rng.exponential(2.0, s), rng.gamma(4.0, 0.5, s), 3.0 * (rng.random(s) < 0.2)]
    st = eu.explanation_statistics(torch.from_numpy(np.stack(cols, 1)[:, None, :]))  # [S, 1, 3]
    np.testing.assert_allclose(st["cv"][0].numpy(), [1.0, 0.5, 2.0], rtol=0.02)


def test_cv_edge_cases() -> None:
    s = 9
    maps = torch.zeros(s, 1, 3, dtype=torch.float64)
    maps[0, 0, 1] = 5.0  # one sample alone gives feature 1 any weight
    maps[:, 0, 2] = -4.0  # every sample agrees (signed: |E| is used)
    cv = eu.explanation_statistics(maps)["cv"][0]
    assert cv[0] == 0.0  # all zeros: 0 / eps
    torch.testing.assert_close(cv[1], torch.tensor((s - 1) ** 0.5, dtype=torch.float64), rtol=1e-7, atol=0)
    assert cv[2] == 0.0
    with pytest.raises(ValueError, match="eps"):
        eu.explanation_statistics(maps, eps=0.0)
    with pytest.raises(ValueError):
        eu.explanation_statistics(torch.zeros(3, 4))


def test_cv_aggregates_match_numpy() -> None:
    rng = np.random.default_rng(2)
    cv = rng.random((4, 6, 5))
    mean = rng.random((4, 6, 5))
    mean[0, 0, :2] = mean[0, 0, 2]  # ties: the lower flat index wins
    agg = eu.cv_aggregates(torch.from_numpy(cv))
    np.testing.assert_allclose(agg["mean"].numpy(), cv.reshape(4, -1).mean(1))
    np.testing.assert_allclose(agg["median"].numpy(), np.median(cv.reshape(4, -1), 1))  # 30 pixels: even
    q = 0.25
    top = eu.cv_aggregates(torch.from_numpy(cv), torch.from_numpy(mean), top_q=q)
    k = int(np.ceil(q * 30))
    for b in range(4):
        order = sorted(range(30), key=lambda p: (-mean[b].ravel()[p], p))[:k]
        sel = cv[b].ravel()[order]
        assert top["mean"][b].item() == pytest.approx(sel.mean(), rel=1e-12)
        assert top["median"][b].item() == pytest.approx(np.median(sel), rel=1e-12)
    with pytest.raises(ValueError, match="mean"):
        eu.cv_aggregates(torch.from_numpy(cv), top_q=0.5)
    with pytest.raises(ValueError, match="top_q"):
        eu.cv_aggregates(torch.from_numpy(cv), torch.from_numpy(mean), top_q=1.5)


# --------------------------------------------------------------------------------------------------
# tiny posteriors of every kind (float64)
# --------------------------------------------------------------------------------------------------


def _cnn(dropout: float = 0.0, flipout: bool = False) -> nn.Module:
    conv = FlipoutConv2d(1, 3, 3, padding=1) if flipout else nn.Conv2d(1, 3, 3, padding=1)
    lin = FlipoutLinear(3 * 16, 4) if flipout else nn.Linear(3 * 16, 4)
    layers = [conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, lin).double()


def _posteriors() -> dict[str, object]:
    torch.manual_seed(0)
    flip = _cnn(flipout=True)
    with torch.no_grad():
        for m in flip.modules():
            if hasattr(m, "weight_rho"):
                m.weight_rho.fill_(-1.5)  # visible weight noise
    return {
        "mc_dropout": MCDropout(_cnn(0.5), num_samples=3, seed=1),
        "dropconnect": DropConnect(_cnn(), p=0.3, num_samples=3, seed=2),
        "ensemble": DeepEnsemble(lambda: _cnn(), num_members=3, seed=3),
        "flipout": BayesByBackprop(flip, num_samples=3, seed=4),
    }


POSTERIORS = _posteriors()


def _sample_target(post, s: int, c: int):
    return lambda z: post.logits(z, indices=[s])[0].softmax(-1)[:, c]


@pytest.mark.parametrize("kind", list(POSTERIORS))
@pytest.mark.parametrize("method", ["gradient", "guided_backprop", "integrated_gradients", "lime"])
def test_batched_distribution_equals_per_sample_loop(kind: str, method: str) -> None:
    post = POSTERIORS[kind]
    torch.manual_seed(5)
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    classes = eu.target_classes(post, x)
    # several chunks of images and of path points: block bookkeeping is exercised
    got = eu.explanation_distribution(
        post, x, method, images_per_chunk=2, max_points=13, ig_steps=4, lime_samples=40, lime_batch_size=9
    )
    assert got.shape == (3, 3, 1, 8, 8)
    for s in range(3):
        for b in range(3):
            t = _sample_target(post, s, int(classes[b]))
            xb = x[b : b + 1]
            if method == "gradient":
                ref = gradient(t, xb)
            elif method == "guided_backprop":
                ref = guided_backprop(t, xb, model=post.module)
            elif method == "integrated_gradients":
                ref = integrated_gradients(t, xb, steps=4)
            else:
                ref = lime(t, xb, num_samples=40, seed=0)
            torch.testing.assert_close(got[s, b], ref[0], rtol=1e-7, atol=1e-10)


def test_target_classes_is_the_mean_prediction_argmax() -> None:
    post = POSTERIORS["mc_dropout"]
    x = torch.rand(6, 1, 8, 8, dtype=torch.float64)
    p = torch.stack([post.logits(x, indices=[s])[0].softmax(-1) for s in range(3)]).mean(0)
    assert torch.equal(eu.target_classes(post, x), p.argmax(-1))


def test_distribution_validation() -> None:
    post = POSTERIORS["mc_dropout"]
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="method"):
        eu.explanation_distribution(post, x, "smoothgrad")
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        eu.explanation_distribution(post, x, "gradient", classes=torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="Posterior"):
        eu.explanation_distribution(lambda z: z, x, "gradient")
    with pytest.raises(ValueError, match="output"):
        eu.explanation_distribution(post, x, "gradient", output="entropy")


# --------------------------------------------------------------------------------------------------
# modified insertion / deletion against a naive loop
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def _naive_curves(post, x, ranking, classes, mode, fractions, base):
    b, c, h, w = x.shape
    out = np.zeros((b, len(fractions), post.num_samples))
    for i in range(b):
        flat = ranking[i].reshape(-1).tolist()
        order = sorted(range(h * w), key=lambda p: (-flat[p], p))
        for j, r in enumerate(fractions.tolist()):
            k = round(r * h * w)
            img = (base[i] if mode == "insert" else x[i]).clone()
            for p in order[:k]:
                row, col = divmod(p, w)
                img[:, row, col] = x[i, :, row, col] if mode == "insert" else base[i, :, row, col]
            for s in range(post.num_samples):
                out[i, j, s] = float(post.logits(img[None], indices=[s])[0].softmax(-1)[0, classes[i]])
    return out


@pytest.mark.parametrize("mode", ["delete", "insert"])
def test_stochastic_curves_equal_naive_loop(mode: str) -> None:
    torch.manual_seed(6)
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    post4 = DropConnect(
        nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).double(), p=0.3, num_samples=4, seed=7
    )
    ranking = torch.rand(3, 4, 4, dtype=torch.float64)
    fractions = torch.tensor([0.0, 0.25, 0.5, 0.8, 1.0], dtype=torch.float64)
    base = torch.full_like(x, 0.3)
    res = eu.stochastic_perturbation_curves(
        post4, x, ranking, mode=mode, fractions=fractions, baseline=base, batch_size=4
    )
    classes = eu.target_classes(post4, x)
    ref = _naive_curves(post4, x, ranking, classes, mode, fractions, base)
    np.testing.assert_allclose(res["curves"].numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(res["mean"].numpy(), ref.mean(2), rtol=1e-10)
    np.testing.assert_allclose(res["std"].numpy(), ref.std(2), rtol=1e-8, atol=1e-12)
    auc = np.trapezoid(ref, fractions.numpy(), axis=1)  # fractions span [0, 1]
    np.testing.assert_allclose(res["auc"].numpy(), auc, rtol=1e-10)
    np.testing.assert_allclose(res["auc_mean"].numpy(), auc.mean(1), rtol=1e-10)
    np.testing.assert_allclose(res["auc_std"].numpy(), auc.std(1), rtol=1e-8, atol=1e-12)


@torch.no_grad()
def test_tabular_deletion_by_mean_imputation() -> None:
    torch.manual_seed(8)
    net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1)).double()
    post = MCDropout(net, num_samples=4, seed=9, task="regression")
    x = torch.randn(3, 5, dtype=torch.float64)
    mean = torch.randn(5, dtype=torch.float64)
    ranking = torch.rand(3, 5, dtype=torch.float64)
    fractions = torch.linspace(0, 1, 6, dtype=torch.float64)
    res = eu.stochastic_perturbation_curves(post, x, ranking, fractions=fractions, baseline=mean)
    assert res["curves"].shape == (3, 6, 4)
    for i in range(3):
        order = sorted(range(5), key=lambda f: (-float(ranking[i, f]), f))
        for j, r in enumerate(fractions.tolist()):
            z = x[i].clone()
            z[order[: round(r * 5)]] = mean[order[: round(r * 5)]]
            for s in range(4):
                v = float(post.logits(z[None], indices=[s])[0, 0, 0])
                assert res["curves"][i, j, s].item() == pytest.approx(v, rel=1e-10)
                v0 = float(post.logits(x[i : i + 1], indices=[s])[0, 0, 0])
                assert res["abs_change"][i, j, s].item() == pytest.approx(abs(v - v0), rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError, match="mean imputation"):
        eu.stochastic_perturbation_curves(post, x, ranking)


# --------------------------------------------------------------------------------------------------
# regression posteriors and the tabular pipeline
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mc_dropout", "dropconnect", "ensemble", "flipout"])
def test_regression_training_and_tabular_distribution(name: str) -> None:
    torch.manual_seed(10)
    x = torch.randn(256, 4)
    y = x @ torch.tensor([1.5, -2.0, 0.0, 0.5]) + 0.1 * torch.randn(256)
    kw = {"num_members": 2} if name == "ensemble" else {"num_samples": 5}
    cfg = TrainConfig(
        dataset="toy",
        model="mlp",
        model_kwargs=dict(in_channels=4, num_classes=1, hidden=(16,)),
        posterior=name,
        posterior_kwargs={**kw, "task": "regression"},
        epochs=40,
        batch_size=64,
        lr=1e-2,
    )
    post = build_posterior(cfg)
    hist = fit(post, x, y, epochs=40, batch_size=64, lr=1e-2, progress=False)
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]
    pred = post.logits(x)
    assert pred.shape == (post.num_samples, 256, 1)
    # the data term is the mean squared error
    out = torch.randn(7, 1)
    target = torch.randn(7)
    torch.testing.assert_close(post.data_loss(out, target), F.mse_loss(out[:, 0], target))
    # tabular explanations: [S, B, F], value output; LIME with mean imputation
    xs = x[:3]
    for method in eu.EXPLAINERS:
        d = eu.explanation_distribution(
            post, xs, method, ig_steps=4, lime_samples=50, ig_baseline=torch.zeros(4), feature_baseline=torch.zeros(4)
        )
        assert d.shape == (post.num_samples, 3, 4) and torch.isfinite(d).all()
    # the gradient of a sample's output is that sample's own input gradient
    g = eu.explanation_distribution(post, xs, "gradient")
    for s in range(post.num_samples):
        ref = gradient(lambda z, s=s: post.logits(z, indices=[s])[0, :, 0], xs)
        torch.testing.assert_close(g[s], ref)


def test_classification_default_is_unchanged() -> None:
    post = MCDropout(_cnn(0.5), num_samples=2)
    assert post.task == "classification"
    logits = torch.randn(5, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0])
    torch.testing.assert_close(post.data_loss(logits, y), F.cross_entropy(logits, y))
    with pytest.raises(ValueError, match="task"):
        MCDropout(_cnn(0.5), task="ranking")
