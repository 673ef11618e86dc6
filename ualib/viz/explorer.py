"""An interactive explorer of uncertainty attributions: pick an image, a posterior, an uncertainty and a method.

Three layers, kept apart so that each can be tested on its own:

:func:`compute_view`
    the pure computation: an :class:`ExplorerState` (image source and index, posterior, uncertainty
    kind, attribution method) -> an :class:`ExplorerView` with the input, the raw attribution map and
    the numbers (prediction, probability, total / aleatoric / epistemic uncertainty, vacuity and
    dissonance for an evidential model, the map's sum and its completeness error where the method
    promises completeness, the runtime).
:func:`render` and :func:`gallery`
    a matplotlib figure of one view (input, map with a labelled colorbar, numbers as text) or of a
    few views, one per row, in the book's style (:mod:`ualib.viz.plotting`).
:class:`Explorer`
    a thin ipywidgets layer: dropdowns and a slider whose callback calls :func:`compute_view` (through
    a cache keyed by the state) and :func:`render` into an ``Output``. Displayed, it offers both the
    live widget and a PNG of the current view (``_repr_mimebundle_``), so a static HTML page shows the
    rendered default view instead of a dead widget.

The attribution methods live in a registry, name -> :class:`ExplorerMethod` (see
:func:`default_methods`); adding a method, e.g. an evidential model's vacuity / dissonance activation
maps, is one entry::

    methods = default_methods()
    methods["UAM"] = ExplorerMethod(lambda posterior, kind, x: my_uam(posterior, x, kind=kind),
                                    kinds=("vacuity", "dissonance"))
    Explorer(posteriors, images, methods=methods)

UA-Backprop (:mod:`ualib.attribution.ua_backprop`) is this compendium's reconstruction of Wang et al. (2023)
[INF]; the explorer only displays it.

References
----------
H. Wang, D. Joshi, S. Wang, Q. Ji. Gradient-based uncertainty attribution for explainable Bayesian
deep learning. CVPR 2023.
S. Depeweg, J. M. Hernandez-Lobato, F. Doshi-Velez, S. Udluft. Decomposition of uncertainty in
Bayesian deep learning for efficient and risk-sensitive learning. ICML 2018.
M. Sensoy, L. Kaplan, M. Kandemir. Evidential deep learning to quantify classification uncertainty.
NeurIPS 2018.
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch

from ualib import uncertainty as U
from ualib._checks import check_choice, check_positive_int, check_tensor
from ualib.attribution.registry import REGISTRY, uncertainty_attributor
from ualib.posteriors import Evidential, Posterior
from ualib.targets import Target, kind_target
from ualib.viz import plotting

__all__ = [
    "KINDS",
    "EVIDENTIAL_KINDS",
    "ExplorerState",
    "ExplorerView",
    "ExplorerMethod",
    "explained_target",
    "default_methods",
    "compute_view",
    "render",
    "gallery",
    "Explorer",
]

#: uncertainty kinds every posterior offers (Depeweg et al. 2018 decomposition, nats)
KINDS = U.ENTROPIC_KINDS
#: extra kinds of an evidential (Dirichlet) model (Subjective Logic, in [0, 1])
EVIDENTIAL_KINDS = U.EVIDENTIAL_KINDS


def _kinds_of(posterior: Posterior) -> tuple[str, ...]:
    return KINDS + EVIDENTIAL_KINDS if isinstance(posterior, Evidential) else KINDS


def explained_target(posterior: Posterior, kind: str) -> Target:
    """The uncertainty ``kind`` of ``posterior`` as a differentiable target ``x [B, ...] -> [B]``.

    ``"total"``, ``"aleatoric"``, ``"epistemic"`` for any posterior
    (:func:`ualib.targets.uncertainty_target`); ``"vacuity"``, ``"dissonance"`` for an
    :class:`~ualib.posteriors.Evidential` model (:func:`ualib.targets.evidential_target`).
    """
    if not isinstance(posterior, Posterior):
        raise TypeError(f"posterior must be a ualib Posterior, got {type(posterior).__name__}")
    check_choice(kind, "kind", _kinds_of(posterior))
    return kind_target(posterior, kind)


# -- the method registry ------------------------------------------------------------------------


@dataclass(frozen=True)
class ExplorerMethod:
    """One entry of the explorer's registry of attribution methods.

    Parameters
    ----------
    fn
        ``(posterior, kind, x [1, C, H, W]) -> A``: the raw attribution of uncertainty ``kind`` at
        ``x``, shaped like ``x`` (or ``[1, 1, h, w]`` on a coarser grid, e.g. a CAM).
    promise
        ``(target, x) -> [1]``: the value that the map's sum promises to equal (completeness), e.g.
        ``U(x)`` for UA-Backprop, ``U(x) - U(baseline)`` for integrated gradients; ``None`` if the
        method promises nothing.
    kinds
        The uncertainty kinds the method can explain (``None``: every kind of the posterior).
    """

    fn: Callable[[Posterior, str, torch.Tensor], torch.Tensor]
    promise: Callable[[Target, torch.Tensor], torch.Tensor] | None = None
    kinds: tuple[str, ...] | None = None


def _value_at(target: Target, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return target(x)


def default_methods(
    *, ig_steps: int = 32, smoothgrad_samples: int = 16, smoothgrad_sigma: float = 0.15, seed: int = 0
) -> dict[str, ExplorerMethod]:
    """The standard registry: UA-Backprop, gradient, input x gradient, SmoothGrad, integrated
    gradients (black baseline) of the explained uncertainty, and a random map as a sanity baseline.

    The names are those of chapter 2 (so :data:`ualib.viz.plotting.METHOD_COLORS` colours them alike).
    UA-Backprop promises ``sum A = U(x)``; integrated gradients ``sum A = U(x) - U(0)`` (up to its
    Riemann-sum error, which the explorer then shows).
    """
    check_positive_int(ig_steps, "ig_steps")
    check_positive_int(smoothgrad_samples, "smoothgrad_samples")

    def ig_promise(target: Target, x: torch.Tensor) -> torch.Tensor:
        return _value_at(target, x) - _value_at(target, torch.zeros_like(x))

    promises = {"value": _value_at, "difference": ig_promise, None: None}

    def entry(method: str, **options: object) -> ExplorerMethod:
        spec = REGISTRY[method]
        kinds = None if spec.kinds == tuple(k.value for k in U.UncertaintyKind) else spec.kinds
        return ExplorerMethod(
            lambda P, kind, x: uncertainty_attributor(method, P, kind, **options)(x),
            promise=promises[spec.complete],
            kinds=kinds,
        )

    return {
        "UA-Backprop": entry("ua_backprop"),
        "gradient": entry("gradient"),
        "input x gradient": entry("input_x_gradient"),
        "SmoothGrad": entry("smoothgrad", n_samples=smoothgrad_samples, sigma=smoothgrad_sigma, seed=seed),
        f"IG-{ig_steps} black": entry("integrated_gradients", baseline="black", steps=ig_steps),
        "random": entry("random", seed=seed),
    }


# -- the pure computation -------------------------------------------------------------------------


@dataclass(frozen=True)
class ExplorerState:
    """One choice of the explorer (hashable: the cache key).

    ``source`` names an image set, ``index`` an image of it, ``posterior`` a posterior, ``kind`` the
    explained uncertainty (:data:`KINDS`, or :data:`EVIDENTIAL_KINDS` for an evidential model) and
    ``method`` an entry of the method registry.
    """

    source: str
    index: int
    posterior: str
    kind: str
    method: str


@dataclass
class ExplorerView:
    """What the explorer shows for one :class:`ExplorerState`.

    Attributes
    ----------
    image
        The input ``[C, H, W]``.
    attribution
        The raw, signed map ``[C, H, W]`` (or ``[1, h, w]``) of the method; sum over its entries is
        ``attribution_sum``.
    prediction, probability, label
        Arg-max class of the predictive (sample-mean) probabilities, its probability, and the true
        label where the source has one (else ``None``).
    uncertainty
        ``total``, ``aleatoric``, ``epistemic`` (nats), plus ``vacuity`` and ``dissonance`` for an
        evidential model.
    explained
        The explained uncertainty, ``uncertainty[state.kind]``.
    attribution_sum, promised, completeness_error
        ``sum A``; the value the method promises it equals (``None`` if no promise) and
        ``|sum A - promised|``.
    seconds
        Wall-clock time of the attribution call.
    """

    state: ExplorerState
    image: torch.Tensor
    attribution: torch.Tensor
    prediction: int
    probability: float
    label: int | None
    uncertainty: dict[str, float]
    explained: float
    attribution_sum: float
    promised: float | None
    completeness_error: float | None
    seconds: float
    numbers: dict[str, float | int | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.numbers = {
            "prediction": self.prediction,
            "probability": self.probability,
            "label": self.label,
            **self.uncertainty,
            "attribution sum": self.attribution_sum,
            "completeness error": self.completeness_error,
        }

    def summary(self, digits: int = 3) -> str:
        """The numbers as one line per quantity, rounded to ``digits`` decimals (no runtime)."""
        s = self.state
        lines = [f"{s.source} #{s.index} | {s.posterior} | {s.kind} | {s.method}"]
        lab = "" if self.label is None else f" (label {self.label})"
        lines.append(f"prediction {self.prediction}{lab}, probability {self.probability:.{digits}f}")
        lines.append(", ".join(f"{k} {v:.{digits}f}" for k, v in self.uncertainty.items()))
        line = f"attribution sum {self.attribution_sum:.{digits}f}"
        if self.completeness_error is not None:
            line += f", promised {self.promised:.{digits}f}, complete to 1e-5: {self.completeness_error < 1e-5}"
        lines.append(line)
        return "\n".join(lines)


def _check_state(
    state: object,
    posteriors: Mapping[str, Posterior],
    images: Mapping[str, torch.Tensor],
    methods: Mapping[str, ExplorerMethod],
) -> ExplorerState:
    if not isinstance(state, ExplorerState):
        raise TypeError(f"state must be an ExplorerState, got {type(state).__name__}")
    check_choice(state.source, "source", list(images))
    n = len(images[state.source])
    if isinstance(state.index, bool) or not isinstance(state.index, int) or not 0 <= state.index < n:
        raise ValueError(f"index must be an int in [0, {n - 1}] for source {state.source!r}, got {state.index!r}")
    check_choice(state.posterior, "posterior", list(posteriors))
    check_choice(state.kind, f"kind (for posterior {state.posterior!r})", _kinds_of(posteriors[state.posterior]))
    check_choice(state.method, "method", list(methods))
    allowed = methods[state.method].kinds
    if allowed is not None and state.kind not in allowed:
        raise ValueError(f"method {state.method!r} explains only {list(allowed)} uncertainty, not {state.kind!r}")
    return state


def compute_view(
    state: ExplorerState,
    *,
    posteriors: Mapping[str, Posterior],
    images: Mapping[str, torch.Tensor],
    labels: Mapping[str, torch.Tensor | None] | None = None,
    methods: Mapping[str, ExplorerMethod] | None = None,
) -> ExplorerView:
    """Compute the view of ``state``: input, raw attribution map and numbers. No side effects.

    Parameters
    ----------
    state
        The choice to compute.
    posteriors
        Name -> :class:`~ualib.posteriors.Posterior`.
    images
        Source name -> images ``[N, C, H, W]`` (on any device; moved to the posterior's).
    labels
        Source name -> labels ``[N]`` or ``None``.
    methods
        Name -> :class:`ExplorerMethod` (default :func:`default_methods`).

    Returns
    -------
    ExplorerView
        Tensors on the CPU; numbers as Python floats.

    Raises
    ------
    ValueError
        If a choice is unknown (a source, posterior, method), the index is out of range, the kind is
        not available for the posterior (vacuity of a non-evidential model), or the method cannot
        explain the kind (UA-Backprop of vacuity).
    """
    methods = default_methods() if methods is None else methods
    _check_state(state, posteriors, images, methods)
    post = posteriors[state.posterior]
    x = check_tensor(images[state.source], f"images[{state.source!r}]", ndim=4)[state.index : state.index + 1]
    x = x.to(post.device)
    method = methods[state.method]

    with torch.no_grad():
        p = post.probs(x)  # [S, 1, K]
        mean = p.mean(0)[0]
        unc = {k: float(U.uncertainty(p, k)[0]) for k in KINDS}
        if isinstance(post, Evidential):
            alpha = post.alpha(x)
            unc["vacuity"] = float(U.vacuity(alpha)[0])
            unc["dissonance"] = float(U.dissonance(alpha)[0])

    t0 = time.perf_counter()
    a = method.fn(post, state.kind, x).detach()
    seconds = time.perf_counter() - t0
    if a.ndim != 4 or a.shape[0] != 1:
        raise ValueError(f"method {state.method!r} must return a map [1, C, H, W], got shape {tuple(a.shape)}")
    total = float(a.sum())
    promised = err = None
    if method.promise is not None:
        promised = float(method.promise(explained_target(post, state.kind), x)[0])
        err = abs(total - promised)
    lab = None
    if labels is not None and labels.get(state.source) is not None:
        lab = int(labels[state.source][state.index])
    return ExplorerView(
        state=state,
        image=x[0].detach().cpu(),
        attribution=a[0].cpu(),
        prediction=int(mean.argmax()),
        probability=float(mean.max()),
        label=lab,
        uncertainty=unc,
        explained=unc[state.kind],
        attribution_sum=total,
        promised=promised,
        completeness_error=err,
        seconds=seconds,
    )


# -- rendering ------------------------------------------------------------------------------------

_UNITS = {"total": "nats per pixel", "aleatoric": "nats per pixel", "epistemic": "nats per pixel"}


def _numbers_text(view: ExplorerView) -> str:
    s = view.state
    lab = "" if view.label is None else f"   (label {view.label})"
    lines = [f"prediction {view.prediction}{lab}", f"probability {view.probability:.3f}", ""]
    for k, v in view.uncertainty.items():
        mark = "  <- explained" if k == s.kind else ""
        lines.append(f"{k:<11s}{v:8.4f}{mark}")
    lines += ["", f"sum of map {view.attribution_sum:.4f}"]
    if view.completeness_error is not None:
        lines.append(f"|sum - promised| {view.completeness_error:.1e}")
    else:
        lines.append("(no completeness promise)")
    lines.append(f"runtime {view.seconds * 1e3:.1f} ms")
    return "\n".join(lines)


def _draw(view: ExplorerView, axes, fig: plt.Figure) -> None:
    s = view.state
    ax_in, ax_map, ax_txt = axes
    img = view.image.numpy().transpose(1, 2, 0)
    ax_in.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
    ax_in.set_title(f"{s.source} #{s.index}", fontsize=8)
    ax_in.set_xticks([])
    ax_in.set_yticks([])
    ax_in.grid(False)
    m = view.attribution.numpy().sum(0)
    lim = float(np.abs(m).max()) or 1.0
    h, w = img.shape[:2]
    im = ax_map.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    color = plotting.METHOD_COLORS.get(s.method, "black")
    ax_map.set_title(f"{s.method}: {s.kind} ({s.posterior})", fontsize=8, color=color)
    ax_map.axis("off")
    cb = fig.colorbar(im, ax=ax_map, fraction=0.046, pad=0.04)
    cb.set_label(f"attribution to {s.kind} ({_UNITS.get(s.kind, 'per pixel')})", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    cb.ax.yaxis.get_offset_text().set_fontsize(6)
    ax_txt.axis("off")
    ax_txt.text(
        0.0, 1.0, _numbers_text(view), va="top", ha="left", family="monospace", fontsize=7.5, transform=ax_txt.transAxes
    )


def gallery(views: list[ExplorerView], *, size: float = 2.3) -> plt.Figure:
    """One row per view (input, map with its colorbar, numbers) in the book's style.

    Each map uses a diverging colormap centred at zero and scaled to its own largest magnitude; the
    colorbar shows the raw attribution values (red adds to the explained uncertainty, blue reduces
    it). The global matplotlib settings are left as they were.
    """
    if not views:
        raise ValueError("gallery needs at least one view")
    with plt.rc_context():
        plotting.use_style()
        fig, axes = plt.subplots(
            len(views),
            3,
            figsize=(size * 3.4, size * len(views)),
            squeeze=False,
            gridspec_kw={"width_ratios": [1, 1.25, 1.3]},
        )
        for view, row in zip(views, axes):
            _draw(view, row, fig)
        fig.tight_layout()
    return fig


def render(view: ExplorerView) -> plt.Figure:
    """The figure of one view: the input, the map with a labelled colorbar, and the numbers."""
    return gallery([view])


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# -- the widget layer -----------------------------------------------------------------------------


def _caption(view: ExplorerView) -> str:
    """The caption of a view's picture on a page without a kernel: what it shows, and that it is static."""
    st = view.state
    return (f"{st.method} map of the {st.kind} uncertainty of {st.posterior} on {st.source} #{st.index}. "
            "A picture of the explorer's current view: the controls answer only in a running notebook.")  # fmt: skip


class Explorer:
    """The interactive explorer: ipywidgets controls -> :func:`compute_view` (cached) -> :func:`render`.

    Parameters
    ----------
    posteriors, images, labels, methods
        As in :func:`compute_view`.
    state
        The initial choice (default: the first source, image 0, the first posterior, epistemic
        uncertainty, the first method). Validated at once.

    Attributes
    ----------
    controls
        ``{"source", "index", "posterior", "kind", "method"}`` -> the widget of that choice.
    output
        The ``ipywidgets.Output`` holding the current view's PNG (or an error message).
    widget
        The whole ``VBox`` (controls and output).
    view, figure
        The current :class:`ExplorerView` and its figure (closed, kept for display).
    cache
        ``ExplorerState -> ExplorerView``: each state is computed (and rendered) once.

    Displaying an ``Explorer`` gives a bundle with the widget view, a ``image/png`` of the current
    view, the same picture as a captioned ``<figure>`` in ``text/html``, and ``text/plain``: a live
    kernel shows the widget, a static page (or any front end that drops the widget mimetype) the
    captioned picture.
    """

    def __init__(
        self,
        posteriors: Mapping[str, Posterior],
        images: Mapping[str, torch.Tensor],
        *,
        labels: Mapping[str, torch.Tensor | None] | None = None,
        methods: Mapping[str, ExplorerMethod] | None = None,
        state: ExplorerState | None = None,
    ) -> None:
        import ipywidgets as W

        if not posteriors or not images:
            raise ValueError("Explorer needs at least one posterior and one image source")
        self.posteriors = dict(posteriors)
        self.images = dict(images)
        self.labels = dict(labels) if labels is not None else {}
        self.methods = dict(default_methods() if methods is None else methods)
        if state is None:
            first = next(iter(self.posteriors))
            state = ExplorerState(next(iter(self.images)), 0, first, "epistemic", next(iter(self.methods)))
        _check_state(state, self.posteriors, self.images, self.methods)
        self.cache: dict[ExplorerState, ExplorerView] = {}
        self._figures: dict[ExplorerState, tuple[plt.Figure, bytes]] = {}
        self.view: ExplorerView | None = None
        self.figure: plt.Figure | None = None
        self.error: str | None = None
        self.controls = {
            "source": W.Dropdown(options=list(self.images), value=state.source, description="image"),
            "index": W.IntSlider(
                value=state.index,
                min=0,
                max=len(self.images[state.source]) - 1,
                description="index",
                continuous_update=False,
            ),
            "posterior": W.Dropdown(options=list(self.posteriors), value=state.posterior, description="posterior"),
            "kind": W.Dropdown(
                options=list(_kinds_of(self.posteriors[state.posterior])), value=state.kind, description="uncertainty"
            ),
            "method": W.Dropdown(options=list(self.methods), value=state.method, description="method"),
        }
        self.output = W.Output()
        self.widget = W.VBox(
            [
                W.HBox([self.controls["source"], self.controls["index"]]),
                W.HBox([self.controls["posterior"], self.controls["kind"], self.controls["method"]]),
                self.output,
            ]
        )
        self._syncing = False
        for c in self.controls.values():
            c.observe(self._on_change, names="value")
        self.update()

    @property
    def state(self) -> ExplorerState:
        """The choice the controls show now."""
        c = self.controls
        return ExplorerState(
            c["source"].value, int(c["index"].value), c["posterior"].value, c["kind"].value, c["method"].value
        )

    def view_for(self, state: ExplorerState) -> ExplorerView:
        """The view of ``state``, from the cache or computed (and cached)."""
        if state not in self.cache:
            self.cache[state] = compute_view(
                state, posteriors=self.posteriors, images=self.images, labels=self.labels, methods=self.methods
            )
        return self.cache[state]

    def set(self, **choices) -> None:
        """Set several controls at once (``source=``, ``index=``, ``posterior=``, ``kind=``, ``method=``)
        and redraw once."""
        unknown = set(choices) - set(self.controls)
        if unknown:
            raise ValueError(f"unknown choices {sorted(unknown)}; expected some of {list(self.controls)}")
        self._syncing = True
        try:
            for name in ("source", "posterior", "index", "kind", "method"):
                if name in choices:
                    self.controls[name].value = choices[name]
                    self._sync_options()
        finally:
            self._syncing = False
        self.update()

    def _sync_options(self) -> None:
        """Keep the slider's range and the kinds offered consistent with the source and posterior."""
        c = self.controls
        c["index"].max = len(self.images[c["source"].value]) - 1
        kinds = list(_kinds_of(self.posteriors[c["posterior"].value]))
        if list(c["kind"].options) != kinds:
            keep = c["kind"].value if c["kind"].value in kinds else "epistemic"
            c["kind"].options = kinds
            c["kind"].value = keep

    def _on_change(self, change) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self._sync_options()
        finally:
            self._syncing = False
        self.update()

    def update(self) -> None:
        """Compute (or fetch) the current state's view and draw it into :attr:`output`."""
        from IPython.display import Image

        self.output.outputs = ()
        try:
            view = self.view_for(self.state)
        except ValueError as exc:  # e.g. UA-Backprop of vacuity: say so instead of raising in a callback
            self.error = str(exc)
            self.output.append_stdout(f"This combination cannot be shown: {exc}\n")
            return
        self.error = None
        if view.state not in self._figures:
            fig = render(view)
            plt.close(fig)
            self._figures[view.state] = (fig, _png(fig))
        self.view = view
        self.figure, png = self._figures[view.state]
        self.output.append_display_data(Image(data=png, format="png"))

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        if self.view is not None:
            png = base64.b64encode(self._figures[self.view.state][1]).decode("ascii")
            bundle["image/png"] = png
            # a static page shows this instead of the widget: the picture with a caption saying what it is
            bundle["text/html"] = (
                f'<figure class="explorer-fallback"><img src="data:image/png;base64,{png}" alt="explorer view">'
                f"<figcaption>{html.escape(_caption(self.view))}</figcaption></figure>"
            )
        text = self.view.summary() if self.view is not None else "Explorer (no view)"
        bundle["text/plain"] = (
            text if self.error is None else f"{text}\n(cannot show the chosen combination: {self.error})"
        )
        return bundle
