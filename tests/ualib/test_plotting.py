"""The plotting helpers that decide what a figure shows: colour limits, zero maps, legends, dot plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from ualib.viz import plotting


def test_percentile_limit_is_the_percentile_of_the_positive_values():
    a = np.array([[0.0, 0.0, 1.0], [2.0, 3.0, 4.0]])
    b = torch.tensor([0.0, 100.0])
    # positive values 1, 2, 3, 4, 100: numpy's linear-interpolation percentile, computed by hand
    ranked = np.sort([1.0, 2.0, 3.0, 4.0, 100.0])
    pos = 0.5 * (len(ranked) - 1)
    assert plotting.percentile_limit({"a": a, "b": b}, q=50) == pytest.approx(ranked[int(pos)])
    pos = 0.9 * (len(ranked) - 1)
    lo = int(np.floor(pos))
    expected = ranked[lo] + (pos - lo) * (ranked[lo + 1] - ranked[lo])
    assert plotting.percentile_limit({"a": a, "b": b}, q=90) == pytest.approx(expected)
    assert plotting.percentile_limit(a, q=100) == 4.0
    # the zeros of a mostly-zero map do not pull the limit to 0
    sparse = np.zeros(1000)
    sparse[:3] = [0.1, 0.2, 0.3]
    assert plotting.percentile_limit(sparse, q=100) == pytest.approx(0.3)


def test_percentile_limit_of_zero_or_nan_maps_is_one_and_q_is_checked():
    assert plotting.percentile_limit(np.zeros((3, 3))) == 1.0
    assert plotting.percentile_limit(np.full(4, np.nan)) == 1.0
    with pytest.raises(ValueError, match="percentile"):
        plotting.percentile_limit(np.ones(3), q=0)


def test_is_zero_map():
    assert plotting.is_zero_map(np.zeros((2, 2)))
    assert plotting.is_zero_map(torch.zeros(1, 4, 4))
    assert not plotting.is_zero_map(np.array([0.0, 1e-30]))
    assert plotting.is_zero_map(np.array([0.0, 1e-30]), atol=1e-20)
    assert plotting.is_zero_map(np.array([np.nan, 0.0]))
    assert not plotting.is_zero_map(np.full(3, np.nan))


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_overlay_grid_scale_from_zero_labelled_and_zero_tiles_marked():
    rng = np.random.default_rng(0)
    images = {"a": rng.random((3, 1, 5, 5)), "b": rng.random((3, 1, 5, 5))}
    maps = {"a": np.zeros((3, 1, 5, 5)), "b": rng.random((3, 1, 5, 5))}
    maps["b"][1] = 0.0
    fig = plotting.overlay_grid(images, maps, label="dissonance (unitless)", q=95)
    cbar_ax = fig.axes[-1]
    assert cbar_ax.get_ylabel() == "dissonance (unitless)"
    lo, hi = cbar_ax.get_ylim()
    assert lo == 0.0
    assert hi == pytest.approx(np.percentile(maps["b"][maps["b"] > 0], 95))
    # four zero maps (all of row a, one of row b), each says so; the others are overlaid
    assert _texts(fig).count("0 everywhere") == 4
    assert sum(len(ax.images) == 2 for ax in fig.axes[:-1]) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="non-negative"):
        plotting.overlay_grid(images, {"a": -np.ones((3, 5, 5))}, label="x")


def test_attribution_grid_marks_zero_maps():
    x = torch.rand(2, 1, 4, 4)
    m = torch.randn(2, 1, 4, 4)
    m[1] = 0
    fig = plotting.attribution_grid(x, {"m": m})
    assert _texts(fig).count("0 everywhere") == 1
    plt.close(fig)


def test_legends_sit_outside_the_axes():
    fig, ax = plt.subplots()
    plotting.grouped_bars(ax, {"s1": {"g1": 1.0, "g2": 2.0}, "s2": {"g1": 0.5, "g2": 1.5}}, ylabel="y")
    fig.canvas.draw()
    leg = ax.get_legend().get_window_extent()
    assert leg.x0 >= ax.get_window_extent().x1
    plt.close(fig)


def test_dot_intervals_draws_points_and_the_given_intervals():
    fig, ax = plt.subplots()
    est = {"A": {"m1": 0.5, "m2": 0.7, "m3": 0.1}, "B": {"m1": 0.6, "m2": 0.2}}
    ci = {"A": {"m1": (0.4, 0.6), "m2": (0.65, 0.8)}}  # m3 and series B: points only
    plotting.dot_intervals(ax, est, ci, xlabel="AUROC", reference=0.5)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["m1", "m2", "m3"]
    segments = [ln for ln in ax.lines if len(ln.get_xdata()) == 2 and ln.get_linestyle() == "-"]
    assert sorted(tuple(ln.get_xdata()) for ln in segments) == [(0.4, 0.6), (0.65, 0.8)]
    points = sorted(float(ln.get_xdata()[0]) for ln in ax.lines if ln.get_marker() == "o")
    assert points == sorted([0.5, 0.7, 0.1, 0.6, 0.2])
    # rows top to bottom in the first series' order: m1 highest
    y_m1 = [ln.get_ydata()[0] for ln in ax.lines if ln.get_marker() == "o" and ln.get_xdata()[0] == 0.5][0]
    y_m3 = [ln.get_ydata()[0] for ln in ax.lines if ln.get_marker() == "o" and ln.get_xdata()[0] == 0.1][0]
    assert y_m1 > y_m3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A", "B"]
    plt.close(fig)


def test_magnitude_grid_rows_are_methods_scaled_per_image():
    x = torch.rand(3, 1, 4, 4)
    a = torch.randn(3, 2, 4, 4)
    z = torch.zeros(3, 1, 4, 4)
    fig = plotting.magnitude_grid(x, {"a": a, "zero": z}, label="|a| / max")
    axes = fig.axes[:-1]
    assert len(axes) == 3 * 3  # input row + two method rows, three examples
    assert [axes[k].get_ylabel() for k in (0, 3, 6)] == ["input", "a", "zero"]
    shown = axes[3].images[0].get_array()
    expected = a[0].abs().sum(0).numpy()
    np.testing.assert_allclose(shown, expected / expected.max(), rtol=1e-6)
    assert _texts(fig).count("0 everywhere") == 3
    assert fig.axes[-1].get_ylabel() == "|a| / max"
    plt.close(fig)


def test_distinct_examples_skips_copies():
    base = np.eye(4)  # four distinct "images"
    x = np.concatenate([np.repeat(base[:1], 5, 0), base[1:]])  # five copies of the first, then the others
    got = plotting.distinct_examples(x, 4)
    assert got[0] == 0 and sorted(got[1:]) == [5, 6, 7]
    # naive check: no two chosen examples are equal
    assert len({tuple(x[i]) for i in got}) == 4
    assert plotting.distinct_examples(x, 20) == plotting.distinct_examples(x, 8)[:8]
    assert plotting.distinct_examples(x, 0) == []
