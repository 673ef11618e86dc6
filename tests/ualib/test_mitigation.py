"""Tests for ualib.mitigation: attention maps and blur against hand computations and SciPy, selection
against numpy, the protocol on a synthetic task with a planted nuisance region, and the report
against direct metric calls."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import gaussian_filter

from ualib import metrics
from ualib import mitigation as M
from ualib import uncertainty as U
from ualib.models import LeNet
from ualib.posteriors import DeepEnsemble, MCDropout
from ualib.seeding import generator
from ualib.targets import uncertainty_target
from ualib.training import fit

# ----------------------------------------------------------------------------------------------
# attention_from_attribution
# ----------------------------------------------------------------------------------------------

# channel 0 = arange(16) - 5, channel 1 = 1: channel sum arange(16) - 4, positive part 0..11
_A0 = torch.stack([torch.arange(16.0).reshape(4, 4) - 5, torch.ones(4, 4)]).double()
_AHAT0 = torch.tensor([[0, 0, 0, 0], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]], dtype=torch.float64) / 11


def test_attention_hand_computed():
    constant = torch.full((2, 4, 4), 3.0, dtype=torch.float64)
    negative = -1.0 - torch.rand(2, 4, 4, dtype=torch.float64)
    A = torch.stack([_A0, constant, negative])
    a = M.attention_from_attribution(A)
    assert a.shape == (3, 1, 4, 4) and a.dtype == torch.float64
    torch.testing.assert_close(a[0, 0], 1 - _AHAT0, rtol=0, atol=1e-15)
    # constant map (after the channel sum) and an all-negative map: no range -> A_hat = 0 -> a = 1
    assert torch.equal(a[1:], torch.ones(2, 1, 4, 4, dtype=torch.float64))
    # lam scales A_hat
    a_half = M.attention_from_attribution(A, lam=0.5)
    torch.testing.assert_close(a_half[0, 0], 1 - 0.5 * _AHAT0, rtol=0, atol=1e-15)
    assert torch.equal(M.attention_from_attribution(A, lam=0.0), torch.ones(3, 1, 4, 4, dtype=torch.float64))


def test_attention_is_per_image_and_scale_invariant():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(5, 3, 6, 6, generator=g, dtype=torch.float64)
    batched = M.attention_from_attribution(A)
    single = torch.cat([M.attention_from_attribution(A[i : i + 1]) for i in range(5)])
    assert torch.equal(batched, single)
    # min-max scaling removes a positive per-image factor
    scale = torch.tensor([1.0, 2.0, 10.0, 0.5, 3.0], dtype=torch.float64).view(5, 1, 1, 1)
    torch.testing.assert_close(M.attention_from_attribution(A * scale), batched)
    assert batched.min() >= 0 and batched.max() <= 1
    # every image with a positive pixel has its most uncertain pixel at attention 0
    assert torch.equal(batched.amin(dim=(1, 2, 3)), torch.zeros(5, dtype=torch.float64))


def test_attention_rejects_bad_input():
    with pytest.raises(ValueError, match="dimensions"):
        M.attention_from_attribution(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="lam"):
        M.attention_from_attribution(torch.zeros(1, 1, 4, 4), lam=1.5)
    with pytest.raises(ValueError, match="NaN"):
        M.attention_from_attribution(torch.full((1, 1, 4, 4), float("nan")))


# ----------------------------------------------------------------------------------------------
# apply_attention and the blur
# ----------------------------------------------------------------------------------------------


def test_mask_hand_computed():
    x = torch.full((1, 1, 4, 4), 2.0, dtype=torch.float64)
    a = (1 - _AHAT0).view(1, 1, 4, 4)
    torch.testing.assert_close(M.apply_attention(x, a, mode="mask")[0, 0], 2 * (1 - _AHAT0), rtol=0, atol=1e-15)
    # a single-channel attention broadcasts over colour channels
    x3 = torch.arange(48.0, dtype=torch.float64).view(1, 3, 4, 4)
    out = M.apply_attention(x3, a, mode="mask")
    for c in range(3):
        torch.testing.assert_close(out[0, c], x3[0, c] * (1 - _AHAT0), rtol=0, atol=1e-12)


def test_blend_hand_computed():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 1, 4, 4, generator=g, dtype=torch.float64)
    a = (1 - _AHAT0).view(1, 1, 4, 4)
    blurred = torch.from_numpy(gaussian_filter(x[0, 0].numpy(), 0.5, mode="mirror", truncate=4.0))
    expected = (1 - _AHAT0) * x[0, 0] + _AHAT0 * blurred
    out = M.apply_attention(x, a, mode="blend", blur_sigma=0.5)
    torch.testing.assert_close(out[0, 0], expected, rtol=0, atol=1e-12)
    # a = 0 everywhere -> the blurred image; no blur -> x
    torch.testing.assert_close(M.apply_attention(x, torch.zeros_like(x), mode="blend", blur_sigma=0.5)[0, 0], blurred)
    assert torch.equal(M.apply_attention(x, torch.zeros_like(x), mode="blend", blur_sigma=0.0), x)


@pytest.mark.parametrize("mode", M.ATTENTION_MODES)
def test_lam_zero_leaves_input_unchanged(mode):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 3, 4, 4, generator=g)
    A = torch.randn(4, 3, 4, 4, generator=g)
    out = M.apply_attention(x, M.attention_from_attribution(A, lam=0.0), mode=mode)
    assert torch.equal(out, x)


def test_apply_attention_rejects_bad_input():
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="shape"):
        M.apply_attention(x, torch.ones(2, 1, 4, 5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.apply_attention(x, torch.full((2, 1, 4, 4), 1.5))
    with pytest.raises(ValueError, match="mode"):
        M.apply_attention(x, torch.ones(2, 1, 4, 4), mode="crop")
    with pytest.raises(ValueError, match="blur_sigma"):
        M.apply_attention(x, torch.ones(2, 1, 4, 4), mode="blend", blur_sigma=-1.0)


# ----------------------------------------------------------------------------------------------
# uncertain_subset and attend
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0.0, 0.2, 0.5, 0.8, 0.95, 1.0])
def test_uncertain_subset_matches_numpy_quantile(q):
    rng = np.random.default_rng(4)
    u = rng.gamma(2.0, size=101)
    ref = rng.gamma(2.0, size=37)
    mask = M.uncertain_subset(torch.from_numpy(u).float(), q)
    assert mask.dtype == torch.bool and mask.shape == (101,)
    u32 = torch.from_numpy(u).float().double().numpy()  # the values as the float32 tensor holds them
    np.testing.assert_array_equal(mask.numpy(), u32 > np.quantile(u32, q))
    np.testing.assert_array_equal(M.uncertain_subset(u, q, reference=ref).numpy(), u > np.quantile(ref, q))


def test_uncertain_subset_top_fifth():
    u = np.arange(100.0)
    assert int(M.uncertain_subset(u, 0.8).sum()) == 20  # threshold 79.2 -> 80..99
    with pytest.raises(ValueError, match="quantile"):
        M.uncertain_subset(u, 80)
    with pytest.raises(ValueError, match="NaN"):
        M.uncertain_subset(np.array([1.0, np.nan]))


def _naive_mask_attention(x: np.ndarray) -> np.ndarray:
    """x_tilde = x * (1 - minmax(max(0, sum_c x))) for an attribution equal to the input."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        s = np.maximum(x[i].sum(0), 0)
        lo, hi = s.min(), s.max()
        a_hat = (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)
        out[i] = x[i] * (1 - a_hat)[None]
    return out


def test_attend_only_selected_inputs():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(10, 3, 4, 4, generator=g, dtype=torch.float64)
    x_before = x.clone()
    u = torch.tensor([0.5, 9.0, 0.1, 8.0, 0.2, 7.0, 0.3, 0.4, 6.0, 5.0])
    seen = []

    def attribute(xb):  # the map equals the input; it also tries to corrupt its argument
        seen.append(xb.shape[0])
        out = xb.clone()
        xb.mul_(0)
        return out

    xt, applied = M.attend(x, attribute, uncertainty=u, quantile=0.5, batch_size=2)
    sel = u > np.quantile(u.numpy(), 0.5)
    assert torch.equal(applied, sel) and int(sel.sum()) == 5
    assert seen == [2, 2, 1]  # called on the selected inputs only, in micro-batches
    assert torch.equal(x, x_before)  # the input tensor is not modified
    assert torch.equal(xt[~sel], x[~sel])  # bit-identical
    np.testing.assert_allclose(xt[sel].numpy(), _naive_mask_attention(x[sel].numpy()), rtol=0, atol=1e-12)
    # the micro-batch size does not change the result
    xt_big, _ = M.attend(x, lambda xb: xb, uncertainty=u, quantile=0.5, batch_size=64)
    assert torch.equal(xt_big, xt)


def test_attend_all_and_blend():
    g = torch.Generator().manual_seed(6)
    x = torch.rand(6, 1, 8, 8, generator=g, dtype=torch.float64)
    xt, applied = M.attend(x, lambda xb: xb, mode="blend", blur_sigma=1.0, lam=0.5, batch_size=4)
    assert applied.all()
    a = M.attention_from_attribution(x, lam=0.5)
    torch.testing.assert_close(xt, M.apply_attention(x, a, mode="blend", blur_sigma=1.0), rtol=0, atol=0)


def test_attend_rejects_bad_input():
    x = torch.rand(4, 1, 4, 4)
    with pytest.raises(ValueError, match="quantile needs"):
        M.attend(x, lambda xb: xb, quantile=0.5)
    with pytest.raises(ValueError, match="together with quantile"):
        M.attend(x, lambda xb: xb, uncertainty=torch.rand(4))
    with pytest.raises(ValueError, match="one value per input"):
        M.attend(x, lambda xb: xb, uncertainty=torch.rand(3), quantile=0.5)
    with pytest.raises(ValueError, match="attribute returned shape"):
        M.attend(x, lambda xb: xb[:, :, :2])
    with pytest.raises(TypeError, match="callable"):
        M.attend(x, "ua_backprop")


# ----------------------------------------------------------------------------------------------
# mitigate on a synthetic task with a planted nuisance region
# ----------------------------------------------------------------------------------------------

#: the nuisance region: rows 1-6 of the three rightmost columns
NUISANCE = torch.zeros(8, 8, dtype=torch.bool)
NUISANCE[1:7, 5:8] = True
FIT = dict(epochs=4, lr=3e-3, batch_size=32)


def make_task(n: int, seed: int, planted: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """8x8 images, 4 classes. The label is a bar in row ``2y`` of the left half. Half the images
    carry strong label-independent noise in :data:`NUISANCE` (``planted`` marks them)."""
    g = generator(seed, "mitigation-task")
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.3 * torch.rand(n, 1, 8, 8, generator=g)
    for k in range(4):
        x[y == k, 0, 2 * k, 0:4] += 0.7
    has = torch.rand(n, generator=g) < planted
    noise = torch.rand(n, 1, 8, 8, generator=g)
    x = torch.where(has[:, None, None, None] & NUISANCE, x + 2.0 * noise, x)
    return x, y, has


def oracle(x: torch.Tensor) -> torch.Tensor:
    """An attribution that knows the answer: the nuisance region causes the uncertainty (1 there, 0
    elsewhere, for every image), so with ``lam=1`` the mask zeroes exactly that region."""
    return NUISANCE.to(x.dtype).expand(x.shape[0], 1, 8, 8).clone()


def snapshot(posterior) -> dict[str, torch.Tensor]:
    """Weights (and, under ``grad:``, the ``.grad`` fields) of a posterior, flattened and cloned."""

    def flat(d: dict, prefix: str = "") -> dict[str, torch.Tensor]:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v.detach().clone()})
        return out

    grads = {f"grad:{i}": p.grad.clone() for i, p in enumerate(posterior.parameters()) if p.grad is not None}
    return {**flat(posterior.state_dict()), **grads}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def task():
    xtr, ytr, htr = make_task(300, 0)
    xte, yte, hte = make_task(400, 1)
    torch.manual_seed(0)
    post = MCDropout(LeNet(1, 8, 4, dropout=0.3, widths=(4, 8, 16)), num_samples=8, seed=0)
    fit(post, xtr, ytr, seed=0, progress=False, **FIT)
    return post, (xtr, ytr, htr), (xte, yte, hte)


def test_mitigate_leaves_original_and_is_deterministic(task):
    post, (xtr, ytr, _), (xte, yte, hte) = task
    before = snapshot(post)
    rng_before = torch.random.get_rng_state()
    post.module.train()  # an unusual mode must survive too
    try:
        ft1 = M.mitigate(post, xtr, ytr, oracle, seed=1, **FIT)
        assert post.module.training and all(m.training for m in post.module.modules())
    finally:
        post.module.eval()
    ft2 = M.mitigate(post, xtr, ytr, oracle, seed=1, **FIT)
    ft3 = M.mitigate(post, xtr, ytr, oracle, seed=2, **FIT)
    assert torch.equal(torch.random.get_rng_state(), rng_before)

    assert same_weights(snapshot(post), before)  # the original is untouched, .grad fields included
    assert not same_weights(snapshot(ft1), before)  # the copy was fine-tuned
    assert all(p1.data_ptr() != p0.data_ptr() for p1, p0 in zip(ft1.parameters(), post.parameters()))
    assert same_weights(snapshot(ft1), snapshot(ft2))  # deterministic from the seed
    assert not same_weights(snapshot(ft1), snapshot(ft3))
    assert not ft1.module.training

    # (iv) evaluate on attended test inputs: the copy's dropout masks still act on the copy
    xa, applied = M.attend(xte, oracle)
    assert applied.all()
    assert torch.equal(xa[:, :, ~NUISANCE], xte[:, :, ~NUISANCE])  # the label region is untouched
    assert not xa[:, :, NUISANCE].any()  # the nuisance region is masked out
    p1 = ft1.predict(xa)
    assert torch.equal(p1, ft2.predict(xa))
    assert p1.std(0).max() > 0  # S different networks, not S copies of one

    # sanity check of the idea on this task (a spec check, not a paper claim): against a control
    # fine-tuned identically on clean images, attending lowers the NLL on the planted inputs
    control = copy.deepcopy(post)
    fit(control, xtr, ytr, seed=1, progress=False, **FIT)
    groups = {"planted cause": hte}
    cmp = M.compare_reports(
        M.mitigation_report(control, xte, yte, groups=groups), M.mitigation_report(ft1, xa, yte, groups=groups)
    )
    assert cmp.loc["planted cause", ("delta", "NLL")] < 0
    assert cmp.loc["planted cause", ("delta", "accuracy")] >= 0


def test_mitigate_contains_attribution_side_effects(task):
    post, (xtr, ytr, _), _ = task
    before = snapshot(post)
    target = uncertainty_target(post, "epistemic")
    calls = []

    def messy(xb):  # accumulates parameter gradients and flips the mode of the frozen posterior
        target(xb).sum().backward()
        post.module.train()
        calls.append(len(xb))
        return oracle(xb)

    ft = M.mitigate(post, xtr, ytr, messy, seed=0, quantile=0.7, attention_batch_size=64, **FIT)
    assert not post.module.training and not any(m.training for m in post.module.modules())
    assert all(p.requires_grad for p in post.parameters())
    assert same_weights(snapshot(post), before)
    assert not same_weights(snapshot(ft), before)
    # with a quantile only the uncertain training images (under the frozen original) are attributed
    u = U.uncertainty(post.predict(xtr), "epistemic")
    assert sum(calls) == int(M.uncertain_subset(u, 0.7).sum()) == 90


def test_mitigate_deep_ensemble_is_copied(task):
    _, (xtr, ytr, _), (xte, _, _) = task
    ens = DeepEnsemble(lambda: LeNet(1, 8, 4, dropout=0.0, widths=(4, 8, 8)), num_members=2, seed=0)
    fit(ens, xtr[:128], ytr[:128], epochs=1, lr=3e-3, batch_size=64, seed=0, progress=False)
    before = snapshot(ens)
    logits_before = ens.logits(xte[:8])
    ft = M.mitigate(ens, xtr[:128], ytr[:128], oracle, epochs=1, lr=3e-3, batch_size=64, seed=0)
    assert isinstance(ft, DeepEnsemble)
    assert same_weights(snapshot(ens), before)
    assert torch.equal(ens.logits(xte[:8]), logits_before)
    assert not same_weights(snapshot(ft), before)
    assert all(p.is_leaf and p.requires_grad for p in ft.parameters())


def test_mitigate_rejects_bad_input(task):
    post, (xtr, ytr, _), _ = task
    with pytest.raises(TypeError, match="Posterior"):
        M.mitigate(post.module, xtr, ytr, oracle, seed=0, **FIT)
    with pytest.raises(ValueError, match="same length"):
        M.mitigate(post, xtr, ytr[:-1], oracle, seed=0, **FIT)
    with pytest.raises(ValueError, match="uncertainty_kind"):
        M.mitigate(post, xtr, ytr, oracle, seed=0, quantile=0.8, uncertainty_kind="vacuity", **FIT)


# ----------------------------------------------------------------------------------------------
# mitigation_report and compare_reports
# ----------------------------------------------------------------------------------------------


def test_mitigation_report_matches_direct_metrics(task):
    post, _, (xte, yte, hte) = task
    probs = post.predict(xte)
    u_epi = U.mutual_information(probs)
    top = M.uncertain_subset(u_epi, 0.8)
    groups = {
        "all": torch.ones(len(yte), dtype=torch.bool),
        "most uncertain 20%": top,
        "planted cause": hte.numpy(),  # numpy masks work too
        "none": torch.zeros(len(yte), dtype=torch.bool),
    }
    rep = M.mitigation_report(post, xte, yte, groups=groups)
    assert list(rep.index) == list(groups) and list(rep.columns) == list(M.REPORT_COLUMNS)

    p = probs.double().numpy()  # [S, N, K]
    pbar = p.mean(0)
    y = yte.numpy()
    for name in ("all", "most uncertain 20%", "planted cause"):
        m = np.asarray(groups[name])
        row = rep.loc[name]
        assert row["n"] == m.sum()
        assert row["accuracy"] == pytest.approx(np.mean(pbar[m].argmax(1) == y[m]), abs=1e-12)
        assert row["NLL"] == pytest.approx(-np.mean(np.log(pbar[m, y[m]])), rel=1e-6)
        assert row["ECE"] == pytest.approx(metrics.ece(probs.mean(0)[m], yte[m]), abs=1e-12)
        # naive float64 decomposition: total = H[mean], epistemic = H[mean] - mean_s H[p_s]
        h_tot = -(pbar[m] * np.log(pbar[m])).sum(-1)
        h_ale = -(p[:, m] * np.log(p[:, m])).sum(-1).mean(0)
        assert row["total"] == pytest.approx(h_tot.mean(), rel=1e-5)
        assert row["epistemic"] == pytest.approx((h_tot - h_ale).mean(), rel=1e-3, abs=1e-6)
    assert rep.loc["none", "n"] == 0 and rep.loc["none", ["accuracy", "NLL", "ECE"]].isna().all()
    # the most uncertain fifth is more uncertain than the whole set
    assert rep.loc["most uncertain 20%", "epistemic"] > rep.loc["all", "epistemic"]


def test_compare_reports_delta():
    base = pd.DataFrame({"n": [10, 4], "accuracy": [0.5, 0.25], "NLL": [1.0, 2.0]}, index=["all", "top"])
    mit = pd.DataFrame({"n": [10, 4], "accuracy": [0.75, 0.5], "NLL": [0.5, 2.5]}, index=["all", "top"])
    cmp = M.compare_reports(base, mit)
    assert list(cmp.columns.get_level_values(0).unique()) == ["baseline", "mitigated", "delta"]
    assert list(cmp["delta"].columns) == ["accuracy", "NLL"]
    np.testing.assert_allclose(cmp["delta"].to_numpy(), [[0.25, -0.5], [0.25, 0.5]])
    pd.testing.assert_frame_equal(cmp["baseline"], base)
    with pytest.raises(ValueError, match="same groups"):
        M.compare_reports(base, mit.iloc[:1])


def test_mitigation_report_rejects_bad_groups(task):
    post, _, (xte, yte, _) = task
    with pytest.raises(TypeError, match="boolean"):
        M.mitigation_report(post, xte, yte, groups={"all": torch.ones(len(yte))})
    with pytest.raises(ValueError, match="shape"):
        M.mitigation_report(post, xte, yte, groups={"all": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="non-empty"):
        M.mitigation_report(post, xte, yte, groups={})
