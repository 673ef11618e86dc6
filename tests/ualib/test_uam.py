"""UAM: Subjective-Logic properties (hypothesis), dissonance weights against a naive loop, the VAM / DAM
identities against autograd, the deletion table against a hand-made deletion, blends and mass splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ualib import uncertainty as U
from ualib.attribution import FullGrad, random_attribution
from ualib.attribution.uam import (
    blend_pairs,
    deletion_reductions,
    deletion_table,
    dissonance_weights,
    mass_split,
    uam,
    uncertainty_gradients,
)
from ualib.models import LeNet
from ualib.posteriors import Evidential
from ualib.targets import evidential_target

evidence_rows = st.lists(
    st.lists(st.floats(0, 50, allow_nan=False, allow_infinity=False), min_size=2, max_size=8),
    min_size=1,
    max_size=4,
).filter(lambda rows: len({len(r) for r in rows}) == 1)


@settings(max_examples=60, deadline=None)
@given(evidence_rows)
def test_vacuity_plus_belief_is_one_and_dissonance_in_unit_interval(rows):
    alpha = torch.tensor(rows, dtype=torch.float64) + 1
    u, b, d = U.vacuity(alpha), U.belief(alpha), U.dissonance(alpha)
    torch.testing.assert_close(u + b.sum(-1), torch.ones_like(u), rtol=0, atol=1e-12)
    assert ((d >= 0) & (d <= 1)).all()
    w = dissonance_weights(alpha)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), d, rtol=0, atol=1e-12)


def _naive_weights(alpha: np.ndarray, eps: float) -> np.ndarray:
    out = np.zeros_like(alpha)
    for i, a in enumerate(alpha):
        b = (a - 1) / a.sum()
        for k in range(len(b)):
            num = sum(
                b[j] * ((1 - abs(b[j] - b[k]) / (b[j] + b[k] + eps)) if b[j] + b[k] + eps > 0 else 0.0)
                for j in range(len(b))
                if j != k
            )
            rest = sum(b[j] for j in range(len(b)) if j != k) + eps
            out[i, k] = b[k] * (num / rest if rest > 0 else 0.0)
    return out


@pytest.mark.parametrize("eps", [1e-7, 0.0])
def test_dissonance_weights_match_a_naive_loop(eps):
    g = torch.Generator().manual_seed(0)
    alpha = 1 + torch.rand(6, 5, generator=g, dtype=torch.float64) * 10
    alpha[0] = 1.0  # no evidence at all
    alpha[1, 1:] = 1.0  # all evidence on one class
    torch.testing.assert_close(dissonance_weights(alpha, eps=eps), torch.from_numpy(_naive_weights(alpha.numpy(), eps)))


def _edl(dtype=torch.float64) -> Evidential:
    torch.manual_seed(0)
    model = LeNet(1, 8, 10, batchnorm=True, dropout=0.0, widths=(4, 8, 16))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    # a positive shift of the last bias gives several classes evidence
    with torch.no_grad():
        model.classifier[-1].bias.add_(0.3)
    return Evidential(model.to(dtype).eval(), evidence="relu", loss="mse")


def test_uam_identities(float64):
    post = _edl()
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    r = uam(post, x, vam="gradient")
    z = post.module(x).detach()
    torch.testing.assert_close(r.logits, z)
    assert r.completeness_error < 1e-10
    torch.testing.assert_close(r.class_signed.sum((2, 3)), z, rtol=0, atol=1e-10)
    torch.testing.assert_close(r.vacuity, U.vacuity(post.alpha(x)))
    torch.testing.assert_close(r.dissonance_weights.sum(1), r.dissonance)
    assert r.class_display.min() >= 0 and r.class_display.max() <= 1 + 1e-12
    # DAM = sum_k w_k A_k with A_k <= 1, so DAM <= diss; VAM (A) lies in [0, u]
    assert (r.dam.flatten(1).max(1).values <= r.dissonance + 1e-12).all()
    assert (r.vam_missing >= 0).all() and (r.vam_missing.flatten(1).max(1).values <= r.vacuity + 1e-12).all()
    # VAM (B): its pixel sum is the first-order term sum_k (du/dz_k) z_k, with du/dz from autograd
    zz = z.clone().requires_grad_(True)
    (du,) = torch.autograd.grad((10 / (torch.relu(zz) + 1).sum(1)).sum(), zz)  # u = K / S, ReLU evidence
    torch.testing.assert_close(r.vam.sum((1, 2, 3)), (du * z).sum(1), rtol=0, atol=1e-10)
    # ... and it is the signed FullGrad map of the logit combination with weights du/dz
    torch.testing.assert_close(r.vam, FullGrad(post.module).signed_map(x, du), rtol=0, atol=1e-10)
    torch.testing.assert_close(uam(post, x).vam, r.vam_missing)  # option A is the default


def test_uam_rejects_wrong_inputs():
    post = _edl(torch.float32)
    with pytest.raises(TypeError, match="Evidential"):
        uam(post.module, torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="vam must be one of"):
        uam(post, torch.rand(2, 1, 8, 8), vam="both")
    with pytest.raises(ValueError, match="4 dimensions"):
        uam(post, torch.rand(2, 64))


def test_uncertainty_gradients_match_finite_differences(float64):
    post = _edl()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    g = uncertainty_gradients(post, x)
    h = 1e-6
    for kind in ("vacuity", "dissonance"):
        f = evidential_target(post, kind)
        for pix in ((0, 3, 3), (0, 5, 2)):
            xp, xm = x.clone(), x.clone()
            xp[(slice(None), *pix)] += h
            xm[(slice(None), *pix)] -= h
            with torch.no_grad():
                fd = (f(xp) - f(xm)) / (2 * h)
            torch.testing.assert_close(g[kind][(slice(None), *pix)], fd, rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="method must be one of"):
        uncertainty_gradients(post, x, method="random")


def test_deletion_table_matches_a_hand_made_deletion(float64):
    post = _edl()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    f = evidential_target(post, "dissonance")
    a = random_attribution(x, seed=1)
    table = deletion_table(f, x, {"m": a}, fraction=0.25)
    xd = x.clone()
    for i in range(3):
        top = np.argsort(-a[i, 0].flatten().numpy(), kind="stable")[:16]
        flat = xd[i, 0].flatten()
        flat[torch.from_numpy(top)] = 0.0
        xd[i, 0] = flat.view(8, 8)
    with torch.no_grad():
        before, after = f(x), f(xd)
    assert table.loc["m", "before"] == pytest.approx(float(before.mean()))
    assert table.loc["m", "after"] == pytest.approx(float(after.mean()))
    assert table.loc["m", "reduction"] == pytest.approx(float((before - after).mean()))
    b, a_ = deletion_reductions(f, x, {"m": a}, fraction=0.25)["m"]
    torch.testing.assert_close(b, before.double())
    torch.testing.assert_close(a_, after.double())


def test_blend_pairs_and_mass_split():
    x = torch.rand(20, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    y = torch.arange(20) % 3
    blends, xa, xb, ya, yb = blend_pairs(x, y, 15, seed=0)
    assert blends.shape == (15, 1, 6, 6) and (ya != yb).all()
    torch.testing.assert_close(blends, 0.5 * xa + 0.5 * xb)
    torch.testing.assert_close(blend_pairs(x, y, 15, seed=0)[0], blends)  # deterministic
    ma, mb = xa > 0.5, xb > 0.5
    split = mass_split(ma.float(), ma, mb)  # a map that is exactly stroke A
    np.testing.assert_allclose(split["A only"] + split["both"], 1.0, atol=1e-6)
    np.testing.assert_allclose(split["B only"] + split["background"], 0.0, atol=1e-6)
    uniform = mass_split(torch.ones(15, 1, 6, 6), ma, mb)
    for region in ("A only", "B only", "both", "background"):
        np.testing.assert_allclose(uniform[region], uniform[f"area {region}"], atol=1e-6)
    with pytest.raises(ValueError, match="non-negative"):
        mass_split(-torch.ones(15, 1, 6, 6), ma, mb)
    # an all-zero map: its row is NaN everywhere, so mass and area means run over the same images
    half = torch.ones(15, 1, 6, 6)
    half[:5] = 0
    part = mass_split(half, ma, mb)
    assert part.iloc[:5].isna().all().all() and not part.iloc[5:].isna().any().any()
    for region in ("A only", "B only", "both", "background"):
        assert part[region].mean() == pytest.approx(float(part[f"area {region}"].iloc[5:].mean()), abs=1e-6)
    with pytest.raises(ValueError, match="two different labels"):
        blend_pairs(x, torch.zeros(20, dtype=torch.long), 3)
