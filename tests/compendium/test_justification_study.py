"""Tests for compendium.justification_study: AUROC table against scikit-learn, OOD scores against direct
formulas, the cost sweep's memory against the closed-form sizes, the justification panel layout, and
the network fingerprint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from compendium import justification_study as J
from ualib.justification.sparse_gp import SparseGP

# small float64 linear algebra is much slower with two threads on a busy 2-core machine
pytestmark = pytest.mark.usefixtures("one_thread")


def _blobs(n, seed=0, d=4, k=3):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    return torch.randn(k, d, generator=torch.Generator().manual_seed(99))[y] * 4 + torch.randn(n, d, generator=g), y


def test_scores_and_auroc_table():
    h, y = _blobs(120)
    models = J.fit_layers({"a": h}, y, num_inducing=9, k=5, iterations=3)
    gp, knn = models["a"]
    hin, hout = _blobs(30, seed=1)[0], torch.randn(25, 4) * 10
    logits_in, logits_out = torch.randn(30, 3), torch.randn(25, 3)
    s_in = J.ood_scores(logits_in, {"a": gp.predict(hin)}, {"a": knn.query(hin)})
    s_out = J.ood_scores(logits_out, {"a": gp.predict(hout)}, {"a": knn.query(hout)})
    p = logits_in.double().softmax(-1)
    torch.testing.assert_close(s_in["1 - max softmax"], 1 - p.max(-1).values)
    torch.testing.assert_close(s_in["softmax entropy"], -(p * p.log()).sum(-1))
    torch.testing.assert_close(s_in["GP variance (a)"], gp.predict(hin).variance)
    r = knn.query(hin)
    torch.testing.assert_close(s_in["kNN 1 - support (a)"], 1 - r.support[torch.arange(30), p.argmax(-1)])
    table = J.ood_auroc_table(s_in, {"far": s_out})
    for name in s_in:
        ref = roc_auc_score(np.r_[np.zeros(30), np.ones(25)], np.r_[s_in[name].numpy(), s_out[name].numpy()])
        assert table.loc[name, "far"] == pytest.approx(ref, abs=1e-12)


def test_cost_scaling_memory_matches_closed_form():
    h, y = _blobs(200, d=5)
    ref = SparseGP(6, iterations=0).fit(h, y)
    df = J.cost_scaling(
        h,
        y,
        ref,
        h[:10],
        inducing_grid=[3, 6, 12],
        train_grid=[50, 200],
        num_inducing=6,
        n_fit_inducing_sweep=100,
        k=4,
        repeats=1,
    )
    d, K = 5, 3
    gp_mem = lambda P: 8 * (P * d + P * K + 2 * P * P + d + 2) + 8 * 2 * P
    knn_mem = lambda N: 4 * (N * d + N) + 8 * N
    for _, row in df.iterrows():
        want = gp_mem(row.P) if row.method == "sparse GP" else knn_mem(row.N)
        assert row.memory_bytes == want
        assert row.query_ms > 0
    assert set(df[df.sweep == "P"].P.dropna()) == {3, 6, 12}
    assert df[(df.sweep == "P") & (df.method == "sparse GP")].N.unique().tolist() == [100]


def test_justification_panel_layout():
    h, y = _blobs(60)
    gp = SparseGP(6, iterations=0).fit(h, y)
    x_train = torch.rand(60, 1, 2, 2)
    j = gp.justify(h[:2], n=2)
    images, titles = J.justification_panel(x_train[:2], x_train, y, j, class_names=["a", "b", "c"])
    assert images.shape == (2 * 5, 1, 2, 2) and len(titles) == 10
    assert torch.equal(images[1], x_train[j.support_index[0, 0]])
    assert torch.equal(images[8], x_train[j.oppose_index[1, 0]])
    assert titles[1] == f"{float(j.support_weight[0, 0]):+.2f}\n{'abc'[int(y[j.support_index[0, 0]])]}"


def test_state_fingerprint_sees_any_change():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    before = J.state_fingerprint(net)
    assert J.state_fingerprint(net) == before
    with torch.no_grad():
        net[0].weight[0, 0] = torch.nextafter(net[0].weight[0, 0], torch.tensor(2.0))
    assert J.state_fingerprint(net) != before
    after = J.state_fingerprint(net)
    net[1].running_mean += 1
    assert J.state_fingerprint(net) != after


def test_thread_count_switches_and_restores():
    before = torch.get_num_threads()
    with J.thread_count(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="inside"):
        with J.thread_count(1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with J.thread_count(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="positive int"):
        with J.thread_count(0):
            pass


def test_chapter_7_trains_its_networks_with_the_processs_thread_count():
    """The thread count is part of the model cache key: chapter 7 runs its GP work on one thread but must look up
    its networks with the count the other chapters trained them with, or it trains look-alikes of its own."""
    from ualib.training import numerics

    with J.thread_count(1):
        one = numerics()["threads"]
    assert one == 1 and numerics()["threads"] == torch.get_num_threads()
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).parents[2] / "notebooks" / "07_justification.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    calls = [line for line in code.splitlines() if "= train(" in line]
    assert len(calls) == 2 and code.count("with js.thread_count(train_threads):") == 2, calls
