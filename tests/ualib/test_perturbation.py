"""Tests for ualib.metrics.perturbation against naive per-fraction loops, scipy and closed forms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from ualib.metrics.perturbation import (
    accuracy_after_blurring,
    blurring_test,
    perturbation_curve,
    pixel_order,
)

DT = torch.float64


# ----------------------------------------------------------------------------------------------
# naive references
# ----------------------------------------------------------------------------------------------


def scipy_blur(x: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """scipy's Gaussian filter over the two spatial axes; mode='mirror' is PyTorch's 'reflect'."""
    out = gaussian_filter(x.double().numpy(), sigma=(0, 0, sigma, sigma), mode="mirror", truncate=truncate)
    return torch.from_numpy(out).to(x.dtype)


def naive_order(a: np.ndarray) -> list[int]:
    """Pixel indices sorted by descending channel-summed attribution, ties by lower flat index."""
    flat = a.reshape(-1).tolist()
    return sorted(range(len(flat)), key=lambda p: (-flat[p], p))


def naive_curve(score_fn, x, attribution, mode, fractions, base):
    """Build each perturbed image by hand, one pixel at a time, and score it alone."""
    b, c, h, w = x.shape
    a = attribution.sum(1) if attribution.ndim == 4 else attribution
    scores = np.zeros((b, len(fractions)))
    for i in range(b):
        order = naive_order(a[i].numpy())
        for j, r in enumerate(fractions):
            k = round(float(r) * h * w)
            img = (base[i] if mode == "insert" else x[i]).clone()
            for p in order[:k]:
                row, col = divmod(p, w)
                for ch in range(c):
                    img[ch, row, col] = x[i, ch, row, col] if mode == "insert" else base[i, ch, row, col]
            scores[i, j] = float(score_fn(img[None])[0])
    return scores


def make_score_fn(c: int, h: int, w: int, seed: int = 0):
    """A fixed non-linear per-sample score, so that which pixels change matters."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(c, h, w, generator=g, dtype=DT)
    w2 = torch.randn(c, h, w, generator=g, dtype=DT)
    return lambda z: torch.tanh((z * w1).sum((1, 2, 3))) + ((z**2) * w2).sum((1, 2, 3))


def tied_attribution(b: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Small integer attributions: many ties, so tie-breaking is exercised."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-2, 3, (b, c, h, w), generator=g).to(DT)


# ----------------------------------------------------------------------------------------------
# perturbation curves (the blur itself is tested in test_attribution.py)
# ----------------------------------------------------------------------------------------------

CASES = [
    ("delete", None),
    ("delete", 0.0),
    ("delete", 0.5),
    ("delete", "mean"),
    ("delete", "blur"),
    ("delete", "tensor"),
    ("insert", None),
    ("insert", 0.0),
    ("insert", "mean"),
    ("insert", "tensor"),
    ("blur", None),
]


@pytest.mark.parametrize(("mode", "baseline"), CASES)
def test_curve_matches_naive_loop(mode: str, baseline) -> None:
    b, c, h, w = 3, 2, 5, 6
    g = torch.Generator().manual_seed(3)
    x = torch.rand(b, c, h, w, generator=g, dtype=DT)
    attr = tied_attribution(b, c, h, w, seed=4)
    fractions = torch.tensor([0.0, 0.1, 0.25, 0.5, 0.77, 1.0], dtype=DT)
    sigma = 1.3
    if baseline is None:
        base = torch.zeros_like(x) if mode == "delete" else scipy_blur(x, sigma)
        arg = None
    elif baseline == "blur":
        base, arg = scipy_blur(x, sigma), "blur"
    elif baseline == "mean":
        base, arg = x.mean((2, 3), keepdim=True).expand_as(x).clone(), "mean"
    elif baseline == "tensor":
        arg = torch.tensor([0.1, 0.9], dtype=DT)[:, None, None]  # [C, 1, 1], broadcast
        base = arg.expand_as(x).clone()
    else:
        base, arg = torch.full_like(x, baseline), baseline
    score = make_score_fn(c, h, w)
    out = perturbation_curve(score, x, attr, mode=mode, fractions=fractions, baseline=arg, blur_sigma=sigma)
    ref = naive_curve(score, x, attr, mode, fractions.tolist(), base)
    np.testing.assert_allclose(out["scores"].numpy(), ref, rtol=0, atol=1e-10)
    assert out["scores"].shape == (b, len(fractions))
    assert out["n_pixels"].tolist() == [round(r * h * w) for r in fractions.tolist()]
    # AUC: trapezoid over the fractions divided by their range
    np.testing.assert_allclose(out["auc"].numpy(), np.trapezoid(ref, fractions.numpy(), axis=1) / 1.0, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    mode=st.sampled_from(["delete", "insert"]),
    c=st.integers(1, 3),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    fr=st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=5, unique=True),
    single_channel_attr=st.booleans(),
)
def test_curve_matches_naive_property(seed, mode, c, h, w, fr, single_channel_attr) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, c, h, w, generator=g, dtype=DT)
    attr = tied_attribution(2, 1 if single_channel_attr else c, h, w, seed)
    fractions = sorted(fr)
    score = make_score_fn(c, h, w, seed)
    out = perturbation_curve(score, x, attr, mode=mode, fractions=fractions, baseline=0.5)
    ref = naive_curve(score, x, attr, mode, fractions, torch.full_like(x, 0.5))
    np.testing.assert_allclose(out["scores"].numpy(), ref, rtol=0, atol=1e-10)


def test_pixel_order_ties_by_index() -> None:
    a = torch.tensor([[[1.0, 3.0], [1.0, 3.0]]])  # flat [1, 3, 1, 3]
    assert pixel_order(a).tolist() == [[1, 3, 0, 2]]
    a3 = torch.tensor([[[[0.0, 1.0]], [[2.0, 1.0]]]])  # [1, 2, 1, 2]: channel sums equal (2, 2)
    assert pixel_order(a3).tolist() == [[0, 1]]


def test_linear_score_closed_form() -> None:
    # pixel order = reading order (attribution -index); x = 1 everywhere: sum of pixels is C * (HW - k)
    b, c, h, w = 2, 3, 4, 5
    x = torch.ones(b, c, h, w, dtype=DT)
    attr = -torch.arange(h * w, dtype=DT).view(1, h, w).expand(b, h, w)
    fractions = torch.linspace(0, 1, 11, dtype=DT)
    k = torch.round(fractions * h * w)
    s = lambda z: z.sum((1, 2, 3))
    dele = perturbation_curve(s, x, attr, mode="delete", fractions=fractions, baseline=0.0)
    ins = perturbation_curve(s, x, attr, mode="insert", fractions=fractions, baseline=0.0)
    torch.testing.assert_close(dele["scores"], (c * (h * w - k)).expand(b, -1))
    torch.testing.assert_close(ins["scores"], (c * k).expand(b, -1))
    # which pixels: a score reading only pixel (0, 0) (rank 0) drops at the first deleted pixel
    first = lambda z: z[:, 0, 0, 0]
    r = perturbation_curve(first, x, attr, fractions=[0.0, 1 / (h * w), 0.5], baseline=0.0)
    assert r["scores"][0].tolist() == [1.0, 0.0, 0.0]
    # sum of pixels with attribution = the pixel values: deletion removes the k largest values
    g = torch.Generator().manual_seed(5)
    x1 = torch.rand(4, 1, 6, 6, generator=g, dtype=DT)
    r = perturbation_curve(s, x1, x1, fractions=fractions, baseline=0.0)
    for i in range(4):
        v = np.sort(x1[i].numpy().ravel())[::-1]
        want = [v.sum() - v[: round(r * 36)].sum() for r in fractions.tolist()]
        np.testing.assert_allclose(r["scores"][i].numpy(), want, atol=1e-12)


def test_batch_size_independence_and_no_grad() -> None:
    torch.manual_seed(0)
    net = (
        torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 36, 1)
        )
        .double()
        .eval()
    )
    x = torch.rand(5, 1, 6, 6, dtype=DT)
    attr = torch.rand(5, 1, 6, 6, dtype=DT)

    def score(z):
        assert not torch.is_grad_enabled()
        return net(z)[:, 0]

    calls = []
    counted = lambda z: calls.append(z.shape[0]) or score(z)
    for mode in ("delete", "insert", "blur"):
        full = perturbation_curve(score, x, attr, mode=mode, blur_sigma=1.0)
        for bs in (1, 4, 7, 1000):
            calls.clear()
            part = perturbation_curve(counted, x, attr, mode=mode, blur_sigma=1.0, batch_size=bs)
            torch.testing.assert_close(part["scores"], full["scores"], rtol=0, atol=1e-12)
            assert max(calls) <= bs and sum(calls) == 5 * 21


def test_fraction_edge_cases_and_auc() -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.rand(3, 2, 4, 4, generator=g, dtype=DT)
    attr = torch.randn(3, 4, 4, generator=g, dtype=DT)
    s = make_score_fn(2, 4, 4)
    blurred = scipy_blur(x, 2.0)
    d = perturbation_curve(s, x, attr, mode="delete", fractions=[0.0, 1.0], baseline=0.3)
    torch.testing.assert_close(d["scores"][:, 0], s(x))
    torch.testing.assert_close(d["scores"][:, 1], s(torch.full_like(x, 0.3)))
    i = perturbation_curve(s, x, attr, mode="insert", fractions=[0.0, 1.0])
    torch.testing.assert_close(i["scores"][:, 0], s(blurred))
    torch.testing.assert_close(i["scores"][:, 1], s(x))
    bl = perturbation_curve(s, x, attr, mode="blur", fractions=[1.0])
    torch.testing.assert_close(bl["scores"][:, 0], s(blurred))
    torch.testing.assert_close(bl["auc"], bl["scores"][:, 0])  # a single fraction: its score
    # AUC of a constant curve is the constant, also on an uneven grid not starting at 0
    c42 = lambda z: torch.full((z.shape[0],), 0.42, dtype=DT)
    const = perturbation_curve(c42, x, attr, fractions=[0.1, 0.15, 0.6, 0.7])
    torch.testing.assert_close(const["auc"], torch.full((3,), 0.42, dtype=DT))
    # a linear curve: sum of pixels of a 1-pixel-per-step deletion on a constant image
    ones, flat_attr = torch.ones(1, 1, 4, 4, dtype=DT), torch.zeros(1, 4, 4, dtype=DT)
    lin = perturbation_curve(lambda z: z.sum((1, 2, 3)), ones, flat_attr, fractions=torch.linspace(0, 1, 17, dtype=DT))
    torch.testing.assert_close(lin["auc"], torch.tensor([8.0], dtype=DT))  # mean of 16 ... 0


def test_bad_inputs() -> None:
    x = torch.rand(2, 3, 4, 4)
    a = torch.rand(2, 3, 4, 4)
    s = lambda z: z.sum((1, 2, 3))
    with pytest.raises(ValueError, match="matching x"):
        perturbation_curve(s, x, a[:1])
    with pytest.raises(ValueError, match="matching x"):
        perturbation_curve(s, x, torch.rand(2, 3, 4, 5))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        perturbation_curve(s, x, torch.rand(2, 2, 4, 4))
    with pytest.raises(ValueError, match="4 dimensions"):
        perturbation_curve(s, x[0], a[0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        perturbation_curve(s, x, a, fractions=[0.0, 1.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        perturbation_curve(s, x, a, fractions=[-0.1, 0.5])
    with pytest.raises(ValueError, match="strictly increasing"):
        perturbation_curve(s, x, a, fractions=[0.0, 0.5, 0.3])
    with pytest.raises(ValueError, match="strictly increasing"):
        perturbation_curve(s, x, a, fractions=[0.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        perturbation_curve(s, x, a, fractions=[])
    with pytest.raises(ValueError, match="NaN"):
        perturbation_curve(s, x, a, fractions=[0.0, float("nan")])
    with pytest.raises(ValueError, match="mode must be one of"):
        perturbation_curve(s, x, a, mode="remove")
    with pytest.raises(ValueError, match="baseline must be one of"):
        perturbation_curve(s, x, a, baseline="zeros")
    with pytest.raises(ValueError, match="mode='blur'"):
        perturbation_curve(s, x, a, mode="blur", baseline=0.0)
    with pytest.raises(ValueError, match="broadcast"):
        perturbation_curve(s, x, a, baseline=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        perturbation_curve(s, x, torch.full_like(a, float("nan")))
    with pytest.raises(ValueError, match="batch_size"):
        perturbation_curve(s, x, a, batch_size=0)
    with pytest.raises(ValueError, match=r"shape \[42\]"):
        perturbation_curve(lambda z: z.sum((2, 3)), x, a)
    with pytest.raises(TypeError, match="callable"):
        perturbation_curve(None, x, a)


# ----------------------------------------------------------------------------------------------
# blurring test
# ----------------------------------------------------------------------------------------------

H = W = 12
REGION = (slice(3, 7), slice(5, 9))  # a 4x4 region: 16 of 144 pixels


def region_uncertainty(z: torch.Tensor) -> torch.Tensor:
    """Toy U: the summed intensity inside REGION."""
    return z[:, :, REGION[0], REGION[1]].sum((1, 2, 3))


def region_images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.rand(n, 1, H, W, generator=g, dtype=DT)
    x[:, :, REGION[0], REGION[1]] += 0.8 + 0.2 * torch.rand(n, 1, 4, 4, generator=g, dtype=DT)
    return x


def test_blurring_test_oracle_beats_random_and_anti_oracle() -> None:
    x = region_images(6, seed=7)
    oracle = torch.zeros(6, 1, H, W, dtype=DT)
    oracle[:, :, REGION[0], REGION[1]] = 1.0
    rnd = torch.rand(6, 1, H, W, generator=torch.Generator().manual_seed(8), dtype=DT)
    res = {
        name: blurring_test(region_uncertainty, x, a, blur_sigma=1.0)
        for name, a in {"oracle": oracle, "random": rnd, "anti": -oracle}.items()
    }
    assert (res["oracle"]["murr"] > res["random"]["murr"]).all()
    assert (res["oracle"]["auc_urr"] > res["random"]["auc_urr"]).all()
    assert (res["random"]["murr"] >= res["anti"]["murr"]).all()
    # the anti-oracle blurs only pixels outside the region: U is untouched, URR is exactly 0
    torch.testing.assert_close(res["anti"]["urr"], torch.zeros(6, 21, dtype=DT))
    assert res["oracle"]["mean_murr"] > res["random"]["mean_murr"] > res["anti"]["mean_murr"]
    # the oracle blurs the whole region by 16/144 = 11 %: URR is flat from there on
    f = res["oracle"]["fractions"]
    after = round(16 / 144, 2) + 0.01
    u_all = region_uncertainty(scipy_blur(x, 1.0))
    want = (region_uncertainty(x) - u_all) / region_uncertainty(x)
    torch.testing.assert_close(res["oracle"]["urr"][:, f >= after], want[:, None].expand(-1, int((f >= after).sum())))


def test_blurring_test_definitions_by_hand() -> None:
    x = region_images(4, seed=9)
    attr = torch.randn(4, H, W, generator=torch.Generator().manual_seed(10), dtype=DT)
    fractions = [0.0, 0.02, 0.05, 0.1, 0.3]
    out = blurring_test(region_uncertainty, x, attr, fractions=fractions, blur_sigma=1.5, batch_size=3)
    ub = naive_curve(region_uncertainty, x, attr, "delete", fractions, scipy_blur(x, 1.5))
    u0 = region_uncertainty(x).numpy()
    np.testing.assert_allclose(out["uncertainty"].numpy(), u0, atol=1e-12)
    np.testing.assert_allclose(out["uncertainty_blurred"].numpy(), ub, atol=1e-12)
    urr = np.array([[(u0[i] - ub[i, j]) / u0[i] for j in range(len(fractions))] for i in range(4)])
    np.testing.assert_allclose(out["urr"].numpy(), urr, atol=1e-12)
    np.testing.assert_allclose(out["murr"].numpy(), urr.max(1), atol=1e-12)
    raw = np.array(
        [sum((fractions[j + 1] - fractions[j]) * (urr[i, j] + urr[i, j + 1]) / 2 for j in range(4)) for i in range(4)]
    )
    np.testing.assert_allclose(out["auc_urr_raw"].numpy(), raw, atol=1e-12)
    np.testing.assert_allclose(out["auc_urr"].numpy(), raw / 0.3, atol=1e-12)
    assert not out["undefined"].any()
    # a grid not starting at 0: normalised by r_T - r_1
    out2 = blurring_test(region_uncertainty, x, attr, fractions=fractions[1:], blur_sigma=1.5)
    np.testing.assert_allclose(out2["auc_urr"].numpy(), out2["auc_urr_raw"].numpy() / 0.28, atol=1e-12)


def test_blurring_test_zero_uncertainty_is_nan_and_reported() -> None:
    x = region_images(3, seed=11)
    x[1] = 0.0  # U(x) = 0
    attr = torch.rand(3, 1, H, W, dtype=DT)
    with pytest.warns(RuntimeWarning, match=r"1 of 3 inputs have U\(x\) < eps.*indices 1"):
        out = blurring_test(region_uncertainty, x, attr, blur_sigma=1.0)
    assert out["undefined"].tolist() == [False, True, False]
    for key in ("murr", "auc_urr", "auc_urr_raw"):
        assert torch.isnan(out[key][1]) and torch.isfinite(out[key][[0, 2]]).all()
    assert torch.isnan(out["urr"][1]).all()
    torch.testing.assert_close(out["mean_murr"], out["murr"][[0, 2]].mean())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        blurring_test(region_uncertainty, x[[0, 2]], attr[[0, 2]], blur_sigma=1.0)  # no warning


def test_accuracy_after_blurring_matches_naive() -> None:
    x = region_images(6, seed=12)

    # a toy classifier: class 1 if the region is bright (mean > 0.75), else class 0
    def class_fn(z):
        m = z[:, :, REGION[0], REGION[1]].mean((1, 2, 3))
        return torch.stack([0.75 - m, m - 0.75], 1)

    y = torch.tensor([1, 1, 1, 0, 1, 0])
    oracle = torch.zeros(6, 1, H, W, dtype=DT)
    oracle[:, :, REGION[0], REGION[1]] = torch.rand(6, 1, 4, 4, dtype=DT)
    fractions = torch.linspace(0, 0.2, 11, dtype=DT)
    out = accuracy_after_blurring(class_fn, x, y, oracle, fractions=fractions, blur_sigma=2.0, batch_size=5)
    m = naive_curve(
        lambda z: z[:, :, REGION[0], REGION[1]].mean((1, 2, 3)),
        x,
        oracle,
        "delete",
        fractions.tolist(),
        scipy_blur(x, 2.0),
    )
    want = (m > 0.75).astype(int) == y.numpy()[:, None]
    assert out["correct"].numpy().tolist() == want.tolist()
    np.testing.assert_allclose(out["accuracy"].numpy(), want.mean(0))
    assert out["accuracy"][0] == 4 / 6 and out["accuracy"][-1] < out["accuracy"][0]
    # integer label output is accepted too
    labels = accuracy_after_blurring(lambda z: class_fn(z).argmax(1), x, y, oracle, fractions=fractions, blur_sigma=2.0)
    assert torch.equal(labels["correct"], out["correct"])
    with pytest.raises(ValueError, match=r"shape \[6\]"):
        accuracy_after_blurring(class_fn, x, y[:5], oracle)
    with pytest.raises(TypeError, match="integer"):
        accuracy_after_blurring(class_fn, x, y.double(), oracle)
