"""The comparison layer reproduces direct calls of the metrics it aggregates."""

from __future__ import annotations

import math

import pytest
import torch

from compendium import compare
from ualib.attribution import gradient
from ualib.metrics.localization import mass_in_mask, pointing_game
from ualib.metrics.perturbation import blurring_test
from ualib.models import LeNet
from ualib.posteriors import DeepEnsemble, MCDropout
from ualib.targets import uncertainty_target


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    post = MCDropout(LeNet(1, 8, 4, widths=(3, 4, 8), dropout=0.3), num_samples=4, seed=0)
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    return post, x


def test_attributors_and_maps(setup):
    post, x = setup
    methods = compare.uncertainty_attributors(
        post, "epistemic", ig_steps=4, smoothgrad_samples=3, gradcam_layer=post.module.features[4]
    )
    assert list(methods) == [
        "UA-Backprop",
        "gradient",
        "input x gradient",
        "SmoothGrad",
        "IG-4 black",
        "IG-4 blur",
        "Grad-CAM",
        "random",
    ]
    maps, seconds = compare.compute_maps(methods, x, batch_size=2)
    torch.testing.assert_close(maps["gradient"], gradient(uncertainty_target(post, "epistemic"), x))
    assert maps["Grad-CAM"].shape == (5, 1, 8, 8) and all(s >= 0 for s in seconds.values())
    ens = DeepEnsemble(lambda: LeNet(1, 8, 4, widths=(3, 4, 8)), num_members=2)
    assert "Grad-CAM" not in compare.uncertainty_attributors(ens, gradcam_layer=ens.module.features[4])


def test_blurring_table_matches_direct_call(setup):
    post, x = setup
    a = torch.randn_like(x)
    fr = torch.linspace(0, 0.2, 5)
    u_fn = compare.uncertainty_of(post, "epistemic")
    table, curves = compare.blurring_table({"m": a}, u_fn, x, fractions=fr, blur_sigma=1.0)
    res = blurring_test(u_fn, x, a.abs(), fractions=fr, blur_sigma=1.0)
    assert math.isclose(table.loc["m", "AUC-URR"], float(res["auc_urr"].mean()), rel_tol=1e-6)
    assert math.isclose(table.loc["m", "MURR"], float(res["murr"].mean()), rel_tol=1e-6)
    assert math.isclose(table.loc["m", "MURR sem"], float(res["murr"].std() / math.sqrt(5)), rel_tol=1e-6)
    torch.testing.assert_close(curves["m"], res["urr"].mean(0))


def test_localization_table_matches_direct_call():
    a = torch.randn(3, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(3, 1, 6, 6, dtype=torch.bool)
    mask[:, :, :2, :2] = True
    t = compare.localization_table({"m": a}, mask)
    assert math.isclose(t.loc["m", "mass in patch"], float(mass_in_mask(a.abs(), mask).mean()), rel_tol=1e-6)
    assert math.isclose(t.loc["m", "pointing game"], float(pointing_game(a.abs(), mask).float().mean()))
    assert math.isclose(t.attrs["chance"], 4 / 36, rel_tol=1e-6)


def test_completeness_table(setup):
    post, x = setup
    t = compare.completeness_table({"mc": post}, x)
    assert (t["max abs error"] < 1e-5).all() and len(t) == 3


def test_completeness_errors_relative_to_the_uncertainty():
    import numpy as np

    from compendium.compare import completeness_errors

    x = torch.rand(4, 1, 3, 3, dtype=torch.float64)
    u = torch.tensor([1.0, 2.0, 0.5, 0.0], dtype=torch.float64)
    exact = u.view(-1, 1, 1, 1).expand(4, 1, 3, 3) / 9  # sums to U exactly
    half = exact / 2
    table = completeness_errors({"exact": exact, "half": half}, lambda _: u, x)
    assert table.loc["exact", "completeness error (max)"] < 1e-12
    # the input with U = 0 is skipped; the others are off by half of U: relative error 0.5
    np.testing.assert_allclose(table.loc["half"].to_numpy(), [0.5, 0.5])


def test_stability_table_is_the_cv_of_the_maps_across_seeds():
    import numpy as np

    from compendium.compare import stability_table

    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    base = torch.rand(3, 1, 4, 4, dtype=torch.float64) + 0.1
    scale = {0: 1.0, 1: 2.0, 2: 3.0}
    make = lambda seed: {"fixed": lambda x: base, "scaled": lambda x, s=seed: -scale[s] * base}
    table = stability_table(make, x, seeds=[0, 1, 2])
    assert table.loc["fixed", "CV across posterior draws"] == 0
    a = np.stack([scale[s] * base.numpy() for s in range(3)])[:, :, 0]  # |A| per seed, [R, B, H, W]
    cv = a.std(0) / (a.mean(0) + 1e-8)
    np.testing.assert_allclose(
        table.loc["scaled", "CV across posterior draws"], cv.reshape(3, -1).mean(1).mean(), rtol=1e-10
    )
    with pytest.raises(ValueError, match="at least two seeds"):
        stability_table(make, x, seeds=[0])


def test_metric_agreement_matches_scipy_and_orientation():
    import numpy as np
    import pandas as pd
    import scipy.stats

    rng = np.random.default_rng(0)
    methods = ["a", "b", "c", "d", "e"]
    m1 = pd.DataFrame(rng.random((30, 5)) + np.arange(5), columns=methods)
    m2 = pd.DataFrame(rng.random((20, 5)) * 3, columns=methods)
    ranks, rho, interval = compare.metric_agreement(
        {"m1": m1, "m1 lower": -m1, "m2": m2},
        {"m1": True, "m1 lower": False, "m2": True, "time": False},
        constant={"time": {k: float(i) for i, k in enumerate(methods)}},
        n_boot=50,
    )
    assert ranks.loc["e", "m1"] == 1 and ranks.loc["a", "time"] == 1
    assert rho.loc["m1", "m1 lower"] == pytest.approx(1.0)
    assert rho.loc["m1", "time"] == pytest.approx(-1.0)
    want = scipy.stats.spearmanr(m1.mean(0), m2.mean(0)).statistic
    assert rho.loc["m1", "m2"] == pytest.approx(want)
    assert interval.shape == (4, 4)


def test_randomization_table_flags_the_random_map():
    from torch import nn

    from ualib.attribution import gradient, random_attribution
    from ualib.posteriors import MCDropout
    from ualib.targets import uncertainty_target

    torch.manual_seed(0)
    post = MCDropout(nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 4)), 5)

    def make(p):
        t = uncertainty_target(p, "total")
        return {"gradient": lambda z: gradient(t, z), "random": lambda z: random_attribution(z, seed=0)}

    frame, per, _ = compare.randomization_table(post, make, torch.rand(4, 1, 8, 8))
    assert frame.loc["random", "survives"] and not frame.loc["gradient", "survives"]
    assert per.shape == (4, 2)


def test_permuted_labels_keep_the_counts_and_are_seeded():
    y = torch.arange(10).repeat(7)
    p = compare.permuted_labels(y, seed=3)
    assert torch.equal(torch.bincount(p), torch.bincount(y)) and not torch.equal(p, y)
    assert torch.equal(p, compare.permuted_labels(y, seed=3)) and not torch.equal(p, compare.permuted_labels(y, seed=4))


def test_data_randomization_table_flags_identical_maps_and_matches_scipy():
    import numpy as np
    import scipy.stats

    g = torch.Generator().manual_seed(5)
    ref = {"kept": torch.rand(4, 1, 8, 8, generator=g), "changed": torch.rand(4, 1, 8, 8, generator=g)}
    rand = {"kept": 3 * ref["kept"], "changed": torch.rand(4, 1, 8, 8, generator=g)}  # a rescaled map ranks alike
    frame, per = compare.data_randomization_table(ref, rand)
    assert list(per.columns) == ["kept", "changed"] and per.shape == (4, 2)
    assert frame.loc["kept", "survives"] and not frame.loc["changed", "survives"]
    want = [scipy.stats.spearmanr(ref["changed"][i].ravel(), rand["changed"][i].ravel()).statistic for i in range(4)]
    np.testing.assert_allclose(per["changed"].to_numpy(), want, rtol=1e-6)
    assert frame.loc["changed", "Spearman (permuted labels)"] == pytest.approx(np.mean(want), rel=1e-6)


def test_sanity_claims_use_the_survival_threshold():
    from compendium import claims as C

    specs = [s for k, s in C.registry().items() if "randomization_" in k and k.startswith("08_method_comparison.")]
    assert len(specs) >= 2 * 11
    assert all(s.threshold == compare.SURVIVES_RANDOMIZATION and s.direction == "<" for s in specs)
