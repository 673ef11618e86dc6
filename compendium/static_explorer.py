"""The explorer of chapter 9 in a static page: precomputed views and a small dependency-free script.

A static HTML page has no kernel behind it, so the live ipywidgets explorer (:class:`ualib.viz.explorer.
Explorer`) cannot answer a click there. :func:`precompute` computes a grid of views (images x
posteriors x uncertainty kinds x methods) with the chapter's explorer and :func:`export_html` writes
them into one self-contained HTML fragment: four ``<select>`` controls, the PNG of the chosen view
(:func:`ualib.viz.explorer.render`) and its numbers (prediction, probability, the uncertainty split,
the sum of the map) in a table beside it, switched by an inline script of a few lines that loads
nothing. The notebook displays the fragment below its live widget; the built book shows it as is.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
from collections.abc import Iterable, Sequence

__all__ = ["precompute", "export_html", "MAX_BYTES"]

#: the page's payload limit (issue #17): the fragment must stay under 10 MB
MAX_BYTES = 10_000_000


def precompute(
    app,
    images: Iterable[tuple[str, int]],
    posteriors: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    *,
    dpi: int = 60,
) -> list[dict]:
    """Compute and render every combination of the given images, posteriors, kinds and methods.

    Parameters
    ----------
    app
        The chapter's :class:`ualib.viz.explorer.Explorer` (its cache is reused and filled).
    images
        ``(source, index)`` pairs.
    posteriors, kinds, methods
        Names to combine; default: all the explorer has (kinds: every kind any posterior offers).
        A combination the explorer refuses (``ValueError``, e.g. UA-Backprop of vacuity) is left out.
    dpi
        Resolution of the PNGs.

    Returns
    -------
    list of dict
        One per view: ``key`` (``"source|index|posterior|kind|method"``), ``png`` (base64) and
        ``numbers`` (prediction, probability, label, each uncertainty, attribution sum, completeness error).
    """
    import matplotlib.pyplot as plt

    from ualib.viz.explorer import EVIDENTIAL_KINDS, KINDS, ExplorerState, render

    posteriors = list(posteriors or app.posteriors)
    kinds = list(kinds or (*KINDS, *EVIDENTIAL_KINDS))
    methods = list(methods or app.methods)
    images = list(images)
    if not images:
        raise ValueError("precompute needs at least one (source, index) image")
    out = []
    for (source, index), post, kind, method in itertools.product(images, posteriors, kinds, methods):
        state = ExplorerState(source, int(index), post, kind, method)
        try:
            view = app.view_for(state)
        except ValueError:
            continue
        fig = render(view)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        plt.close(fig)
        out.append(
            {
                "key": "|".join(map(str, (source, int(index), post, kind, method))),
                "png": base64.b64encode(buf.getvalue()).decode("ascii"),
                "numbers": {k: (None if v is None else float(v)) for k, v in view.numbers.items()},
            }
        )
    return out


_SCRIPT = """
(function () {
  var root = document.getElementById(%(id)s);
  var views = JSON.parse(root.querySelector('script[type="application/json"]').textContent);
  var sel = Array.prototype.slice.call(root.querySelectorAll('select'));
  var img = root.querySelector('img'), table = root.querySelector('tbody'), msg = root.querySelector('.ue-msg');
  function fmt(v) { return v === null ? '-' : (Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(2)); }
  function show() {
    var key = sel.map(function (s) { return s.value; }).join('|');
    var v = views[key];
    root.setAttribute('data-key', key);
    if (!v) { img.style.visibility = 'hidden'; img.removeAttribute('src'); table.innerHTML = '';
      msg.textContent = 'This combination does not exist (e.g. UA-Backprop explains no vacuity).'; return; }
    msg.textContent = ''; img.style.visibility = 'visible'; img.src = 'data:image/png;base64,' + v.png;
    img.alt = key.split('|').join(', ');
    table.innerHTML = Object.keys(v.numbers).map(function (k) {
      return '<tr><th>' + k + '</th><td>' + fmt(v.numbers[k]) + '</td></tr>'; }).join('');
  }
  sel.forEach(function (s) { s.addEventListener('change', show); });
  show();
})();
"""


def export_html(
    views: list[dict], *, element_id: str = "static-explorer", default: str | None = None, caption: str | None = None
) -> str:
    """A self-contained HTML fragment that switches between precomputed views (:func:`precompute`).

    Parameters
    ----------
    views
        The views; their keys ``source|index|posterior|kind|method`` give the options of the selects.
    element_id
        The ``id`` of the fragment's root ``<div>``.
    default
        Key of the view shown first; default: the first view.
    caption
        When given, the image and its numbers are a ``<figure>`` with this ``<figcaption>`` (plain text).

    Returns
    -------
    str
        The fragment: controls, image, numbers table, the views as JSON and the inline script.

    Raises
    ------
    ValueError
        When ``views`` is empty, a key is malformed, ``default`` is not a key, or the fragment would
        exceed :data:`MAX_BYTES`.
    """
    if not views:
        raise ValueError("export_html needs at least one view")
    parts = [v["key"].split("|") for v in views]
    if any(len(p) != 5 for p in parts):
        raise ValueError("every view key must be 'source|index|posterior|kind|method'")
    keys = [v["key"] for v in views]
    default = default or keys[0]
    if default not in keys:
        raise ValueError(f"default {default!r} is not one of the views' keys")
    first = default.split("|")
    labels = ("image", "posterior", "uncertainty", "method")
    # the image control joins source and index: options "source|index"
    columns = [["|".join(p[:2]) for p in parts], [p[2] for p in parts], [p[3] for p in parts], [p[4] for p in parts]]
    chosen = ["|".join(first[:2]), *first[2:]]
    selects = []
    for label, col, value in zip(labels, columns, chosen):
        opts = "".join(
            f'<option value="{html.escape(o)}"{" selected" if o == value else ""}>{html.escape(o.replace("|", " #"))}</option>'
            for o in dict.fromkeys(col)
        )
        selects.append(f'<label>{label} <select name="{label}">{opts}</select></label>')
    payload = json.dumps({v["key"]: {"png": v["png"], "numbers": v["numbers"]} for v in views}, separators=(",", ":"))
    payload = payload.replace("</", "<\\/")
    doc = (
        f'<div id="{html.escape(element_id)}" class="static-explorer">'
        f'<div class="ue-controls" style="display:flex;flex-wrap:wrap;gap:0.8em">{"".join(selects)}</div>'
        + ('<figure style="margin:0">' if caption else "")
        + '<div style="display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start">'
        '<img style="max-width:640px;width:100%" alt="">'
        '<table class="ue-numbers"><tbody></tbody></table></div>'
        + (f"<figcaption>{html.escape(caption)}</figcaption></figure>" if caption else "")
        + '<p class="ue-msg"></p>'
        f'<script type="application/json">{payload}</script>'
        f"<script>{_SCRIPT % {'id': json.dumps(element_id)}}</script></div>"
    )
    if len(doc.encode()) > MAX_BYTES:
        raise ValueError(f"the static explorer is {len(doc.encode()) / 1e6:.1f} MB, over {MAX_BYTES / 1e6:.0f} MB")
    return doc
