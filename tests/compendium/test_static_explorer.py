"""compendium.static_explorer.export_html: the fragment holds exactly the views it was given, offers each
coordinate's values once in its select, starts on the default, refuses malformed input and payloads
over the limit (the browser test clicks through it in the built chapter)."""

from __future__ import annotations

import base64
import html.parser
import json

import pytest

from compendium import static_explorer
from compendium.static_explorer import export_html


def _views(n_methods=2):
    out = []
    for image in ("digits|3", "notMNIST|7"):
        for post in ("MC dropout", "EDL"):
            for m in range(n_methods):
                key = f"{image}|{post}|epistemic|method{m}"
                png = base64.b64encode(key.encode()).decode()
                out.append({"key": key, "png": png, "numbers": {"prediction": 1.0, "attribution sum": m / 10}})
    return out


class _Parse(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.selects, self.current, self.selected, self.json, self._in_json = {}, None, {}, "", False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "select":
            self.current = a["name"]
            self.selects[self.current] = []
        elif tag == "option":
            self.selects[self.current].append(a["value"])
            if "selected" in a:
                self.selected[self.current] = a["value"]
        elif tag == "script" and a.get("type") == "application/json":
            self._in_json = True

    def handle_endtag(self, tag):
        self._in_json = False if tag == "script" else self._in_json

    def handle_data(self, data):
        if self._in_json:
            self.json += data


def test_fragment_holds_the_views_and_their_options():
    views = _views()
    default = views[5]["key"]
    parser = _Parse()
    parser.feed(export_html(views, default=default))
    assert parser.selects == {
        "image": ["digits|3", "notMNIST|7"],
        "posterior": ["MC dropout", "EDL"],
        "uncertainty": ["epistemic"],
        "method": ["method0", "method1"],
    }
    parts = default.split("|")
    assert parser.selected == {
        "image": "|".join(parts[:2]),
        "posterior": parts[2],
        "uncertainty": parts[3],
        "method": parts[4],
    }
    payload = json.loads(parser.json.replace("<\\/", "</"))
    assert payload == {v["key"]: {"png": v["png"], "numbers": v["numbers"]} for v in views}


def test_caption_makes_the_view_a_figure():
    views = _views()
    plain = export_html(views)
    assert "<figure" not in plain and "<figcaption" not in plain
    doc = export_html(views, caption="Views <precomputed> & switched")
    fig = doc[doc.index("<figure") : doc.index("</figure>")]
    assert "<img" in fig and "ue-numbers" in fig  # the image and its numbers are inside the figure
    assert "<figcaption>Views &lt;precomputed&gt; &amp; switched</figcaption>" in fig


def test_bad_input_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="at least one"):
        export_html([])
    with pytest.raises(ValueError, match="source\\|index"):
        export_html([{"key": "a|b", "png": "", "numbers": {}}])
    with pytest.raises(ValueError, match="default"):
        export_html(_views(), default="nope|0|a|b|c")
    monkeypatch.setattr(static_explorer, "MAX_BYTES", 1000)
    with pytest.raises(ValueError, match="over"):
        export_html(_views(5))
