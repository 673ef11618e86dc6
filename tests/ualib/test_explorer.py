"""The explorer: compute_view against independent computations, the widget callback, the cache, errors."""

from __future__ import annotations

import base64

import matplotlib.pyplot as plt
import pytest
import torch

from compendium import zoo
from ualib import uncertainty as U
from ualib.attribution import gradient, input_x_gradient, integrated_gradients, random_attribution, smoothgrad
from ualib.attribution.ua_backprop import ua_backprop
from ualib.models import LeNet
from ualib.posteriors import DeepEnsemble, Evidential, MCDropout
from ualib.targets import evidential_target, uncertainty_target
from ualib.viz import explorer as E

SIZE = 8


def _lenet(seed: int, dropout: float = 0.3) -> LeNet:
    torch.manual_seed(seed)
    return LeNet(1, SIZE, 10, dropout=dropout, widths=(4, 6, 16)).eval()


@pytest.fixture
def world(float64):
    """Untrained float64 posteriors (MC dropout, ensemble, EDL) and two image sources."""
    posteriors = {
        "MC dropout": MCDropout(_lenet(0).double(), num_samples=5, seed=1),
        "deep ensemble": DeepEnsemble([_lenet(10 + m, dropout=0.0).double() for m in range(3)]),
        "EDL": Evidential(_lenet(3, dropout=0.0).double(), evidence="softplus"),
    }
    g = torch.Generator().manual_seed(0)
    images = {
        "digits": torch.rand(4, 1, SIZE, SIZE, generator=g, dtype=torch.float64),
        "noise": torch.rand(3, 1, SIZE, SIZE, generator=g, dtype=torch.float64),
    }
    labels = {"digits": torch.tensor([3, 1, 4, 1]), "noise": None}
    return posteriors, images, labels


def _view(world, **kw):
    posteriors, images, labels = world
    state = E.ExplorerState(
        **{
            "source": "digits",
            "index": 1,
            "posterior": "MC dropout",
            "kind": "epistemic",
            "method": "UA-Backprop",
            **kw,
        }
    )
    return E.compute_view(state, posteriors=posteriors, images=images, labels=labels)


@pytest.mark.parametrize("posterior", ["MC dropout", "deep ensemble", "EDL"])
def test_numbers_equal_ualib_uncertainty_of_the_posterior_probs(world, posterior):
    posteriors, images, _ = world
    view = _view(world, posterior=posterior, method="gradient", kind="total")
    x = images["digits"][1:2]
    p = posteriors[posterior].probs(x).detach()
    mean = p.mean(0)[0]
    assert view.prediction == int(mean.argmax()) and view.probability == pytest.approx(float(mean.max()), abs=1e-12)
    assert view.label == 1
    assert view.uncertainty["total"] == pytest.approx(float(U.total_entropy(p)[0]), abs=1e-12)
    assert view.uncertainty["aleatoric"] == pytest.approx(float(U.expected_entropy(p)[0]), abs=1e-12)
    assert view.uncertainty["epistemic"] == pytest.approx(float(U.mutual_information(p)[0]), abs=1e-12)
    if posterior == "EDL":
        alpha = posteriors["EDL"].alpha(x).detach()
        assert view.uncertainty["vacuity"] == pytest.approx(10 / float(alpha.sum()), abs=1e-12)  # K / S, closed form
        assert view.uncertainty["dissonance"] == pytest.approx(float(U.dissonance(alpha)[0]), abs=1e-12)
    else:
        assert set(view.uncertainty) == {"total", "aleatoric", "epistemic"}
    assert view.explained == view.uncertainty["total"]


def test_maps_equal_direct_calls_of_the_attribution_functions(world):
    posteriors, images, _ = world
    P, x = posteriors["MC dropout"], images["digits"][1:2]
    t = uncertainty_target(P, "aleatoric")
    direct = {
        "UA-Backprop": ua_backprop(P, x, kind="aleatoric"),
        "gradient": gradient(t, x),
        "input x gradient": input_x_gradient(t, x),
        "SmoothGrad": smoothgrad(t, x, n_samples=16, sigma=0.15, seed=0),
        "IG-32 black": integrated_gradients(t, x, baseline="black", steps=32),
        "random": random_attribution(x, seed=0),
    }
    assert set(direct) == set(E.default_methods())
    for method, a in direct.items():
        view = _view(world, method=method, kind="aleatoric")
        torch.testing.assert_close(view.attribution, a[0], rtol=0, atol=1e-12, msg=method)
        assert view.attribution_sum == pytest.approx(float(a.sum()), abs=1e-12)
    # an evidential target goes through the same registry
    Q = posteriors["EDL"]
    view = _view(world, posterior="EDL", kind="vacuity", method="input x gradient")
    torch.testing.assert_close(
        view.attribution, input_x_gradient(evidential_target(Q, "vacuity"), x)[0], rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("kind", ["total", "aleatoric", "epistemic"])
def test_completeness_error_is_the_gap_to_the_promised_value(world, kind):
    view = _view(world, kind=kind, method="UA-Backprop")
    assert view.promised == pytest.approx(view.explained, abs=1e-12)  # UA-Backprop promises U(x)
    assert view.completeness_error == pytest.approx(abs(view.attribution_sum - view.explained), abs=1e-15)
    assert view.completeness_error < 1e-10  # float64: UA-Backprop is complete
    # integrated gradients promise U(x) - U(black), computed here independently
    posteriors, images, _ = world
    t = uncertainty_target(posteriors["MC dropout"], kind)
    x = images["digits"][1:2]
    ig = _view(world, kind=kind, method="IG-32 black")
    with torch.no_grad():
        promised = float(t(x)[0] - t(torch.zeros_like(x))[0])
    assert ig.promised == pytest.approx(promised, abs=1e-12)
    assert ig.completeness_error == pytest.approx(abs(ig.attribution_sum - promised), abs=1e-15)
    assert _view(world, kind=kind, method="gradient").completeness_error is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": "cifar"}, "source must be one of"),
        ({"index": 4}, r"index must be an int in \[0, 3\]"),
        ({"index": -1}, "index must be"),
        ({"posterior": "laplace"}, "posterior must be one of"),
        ({"kind": "vacuity"}, "kind .*'MC dropout'.* must be one of"),
        ({"kind": "variance"}, "kind .* must be one of"),
        ({"method": "LIME"}, "method must be one of"),
        ({"posterior": "EDL", "kind": "dissonance", "method": "UA-Backprop"}, "explains only"),
    ],
)
def test_bad_choices_raise_a_clear_value_error(world, change, message):
    with pytest.raises(ValueError, match=message):
        _view(world, **change)


def test_compute_view_leaves_the_model_as_it_found_it(world):
    posteriors, images, _ = world
    P = posteriors["MC dropout"]
    before = [(m.training, [p.requires_grad for p in m.parameters(recurse=False)]) for m in P.module.modules()]
    x0 = images["digits"].clone()
    rng = torch.get_rng_state()
    for method in E.default_methods():
        _view(world, method=method)
    assert before == [(m.training, [p.requires_grad for p in m.parameters(recurse=False)]) for m in P.module.modules()]
    assert all(p.grad is None for p in P.module.parameters())
    torch.testing.assert_close(images["digits"], x0, rtol=0, atol=0)
    assert torch.equal(torch.get_rng_state(), rng)


def _counting(methods, counter):
    def wrap(name, m):
        def fn(P, kind, x):
            counter[name] = counter.get(name, 0) + 1
            return m.fn(P, kind, x)

        return E.ExplorerMethod(fn, promise=m.promise, kinds=m.kinds)

    return {name: wrap(name, m) for name, m in methods.items()}


def _png_of(explorer) -> bytes:
    (out,) = explorer.output.outputs
    return base64.b64decode(out["data"]["image/png"])


def test_widget_callback_updates_the_output_and_the_cache_avoids_recomputing(world):
    posteriors, images, labels = world
    calls: dict[str, int] = {}
    ex = E.Explorer(posteriors, images, labels=labels, methods=_counting(E.default_methods(), calls))
    first = ex.view
    assert ex.state == E.ExplorerState("digits", 0, "MC dropout", "epistemic", "UA-Backprop")
    assert first.state == ex.state and calls == {"UA-Backprop": 1}
    png0 = _png_of(ex)
    assert png0.startswith(b"\x89PNG")
    assert isinstance(ex.figure, plt.Figure)

    ex.controls["kind"].value = "aleatoric"  # as a user would: the observer fires the callback
    assert ex.view.state.kind == "aleatoric" and calls == {"UA-Backprop": 2}
    assert _png_of(ex) != png0
    ex.controls["method"].value = "gradient"
    assert ex.view.state.method == "gradient" and calls["gradient"] == 1

    ex.controls["method"].value = "UA-Backprop"
    ex.controls["kind"].value = "epistemic"  # back to the default: served from the cache
    assert calls == {"UA-Backprop": 2, "gradient": 1}
    assert ex.view is first and len(ex.cache) == 3
    assert _png_of(ex) == png0

    # the slider follows the source's size; EDL offers its extra kinds
    ex.controls["source"].value = "noise"
    assert ex.controls["index"].max == 2
    ex.set(posterior="EDL", kind="vacuity", method="SmoothGrad")
    assert ex.view.state == E.ExplorerState("noise", 0, "EDL", "vacuity", "SmoothGrad") and ex.view.label is None
    assert "vacuity" in ex.controls["kind"].options
    ex.set(posterior="MC dropout")
    assert ex.state.kind == "epistemic" and "vacuity" not in ex.controls["kind"].options


def test_widget_reports_an_impossible_combination_instead_of_raising(world):
    posteriors, images, labels = world
    ex = E.Explorer(posteriors, images, labels=labels)
    ex.set(posterior="EDL", kind="vacuity", method="UA-Backprop")
    assert "explains only" in ex.error
    (out,) = ex.output.outputs
    assert out["output_type"] == "stream" and "cannot be shown" in out["text"]
    with pytest.raises(ValueError, match="unknown choices"):
        ex.set(colour="red")


def test_explorer_rejects_a_bad_initial_state(world):
    posteriors, images, labels = world
    with pytest.raises(ValueError, match="posterior must be one of"):
        E.Explorer(posteriors, images, state=E.ExplorerState("digits", 0, "nope", "total", "gradient"))
    with pytest.raises(ValueError, match="at least one"):
        E.Explorer({}, images)


def test_repr_mimebundle_has_png_text_and_widget(world):
    posteriors, images, labels = world
    ex = E.Explorer(posteriors, images, labels=labels)
    bundle = ex._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert "prediction" in bundle["text/plain"] and "epistemic" in bundle["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    # a static page: the same picture inside a captioned <figure>, the caption naming the view shown
    html = bundle["text/html"]
    assert html.startswith("<figure") and html.endswith("</figure>")
    assert f"data:image/png;base64,{bundle['image/png']}" in html
    caption = html.split("<figcaption>")[1].split("</figcaption>")[0]
    st = ex.view.state
    assert all(str(v) in caption for v in (st.method, st.kind, st.posterior, st.index)), caption


def test_render_has_input_map_colorbar_and_numbers(world):
    view = _view(world)
    fig = E.render(view)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert any("attribution to epistemic" in lab for lab in labels)  # the colorbar
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("epistemic" in t and f"{view.uncertainty['epistemic']:8.4f}" in t for t in texts)
    assert len(fig.axes) == 4  # input, map, text, colorbar
    plt.close(fig)
    fig = E.gallery([view, _view(world, source="noise", index=2)])
    assert len(fig.axes) == 8
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one view"):
        E.gallery([])


def test_explorer_classifiers_share_the_zoo_configs_and_add_dropconnect_and_flipout():
    from compendium.zoo import digit_classifiers

    kw = dict(dataset="digits", in_size=8, batch_size=64, num_samples=20, dropout=0.3, seed=0)
    epochs = {"mc_dropout": 40, "ensemble": 40, "edl": 60, "dropconnect": 40, "flipout": 40}
    configs = zoo.explorer_classifiers(epochs=epochs, **kw)
    shared = digit_classifiers(epochs={"mc_dropout": 40, "ensemble": 40}, **kw)
    assert configs["MC dropout"] == shared["MC dropout"] and configs["deep ensemble"] == shared["deep ensemble"]
    assert configs["DropConnect"].posterior == "dropconnect" and configs["DropConnect"].posterior_kwargs["p"] == 0.2
    assert configs["Flipout"].posterior == "flipout" and configs["Flipout"].model_kwargs["dropout"] == 0.0
    assert "kl_weight" not in configs["Flipout"].posterior_kwargs
    tempered = zoo.explorer_classifiers(epochs={"flipout": 2}, flipout_kl_weight=1e-5, **kw)["Flipout"]
    assert tempered.posterior_kwargs["kl_weight"] == 1e-5
    assert set(zoo.explorer_classifiers(epochs={"flipout": 2}, **kw)) == {"Flipout"}


def test_explorer_images_sources(mirror, monkeypatch):
    monkeypatch.setenv("UALIB_DATA_MIRROR", str(mirror))
    images, labels = zoo.explorer_images("digits", 8, 6, seed=0)
    assert list(images) == ["test digits", "notMNIST", "Omniglot", "uniform noise"]
    for name, x in images.items():
        assert x.shape == (6, 1, 8, 8) and 0 <= float(x.min()) and float(x.max()) <= 1, name
    assert labels["test digits"].shape == (6,) and labels["notMNIST"] is None
    # Omniglot is inverted to bright strokes on black, like MNIST: the background (median) is dark
    assert float(images["Omniglot"].median()) < 0.3
