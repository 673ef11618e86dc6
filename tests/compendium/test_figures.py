"""Numbered, captioned figures: the glue helper, reading placed figures back, numbering by chapter,
and that every chapter places every figure it glues with a name and a caption."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from compendium import figures
from ualib._paths import repo_root

ROOT = repo_root()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def test_placed_figures_reads_key_name_and_caption():
    nb = {
        "cells": [
            _md("intro"),
            _md(
                "Text.\n\n```{glue:figure} fig-04-dam\n:name: fig-04-dam\n:width: 90%\n\nThe maps *light up*\n"
                "on strokes.\n\nA legend paragraph.\n```\n\nMore text {numref}`fig-04-dam`."
            ),
            _md("````{glue:figure} fig-04-two\n\nOnly a caption.\n````"),
        ]
    }
    got = figures.placed_figures(nb)
    assert got == [
        figures.PlacedFigure("fig-04-dam", "fig-04-dam", "The maps *light up* on strokes.", 1),
        figures.PlacedFigure("fig-04-two", None, "Only a caption.", 2),
    ]


def test_show_rejects_bad_names():
    for bad in ("dam", "fig-4-dam", "fig-04-DAM", "fig-04-dam_2", "fig-04-"):
        with pytest.raises(ValueError, match="fig-NN"):
            figures.show(None, bad)


def test_glued_images_finds_undisplayed_glue_outputs():
    out = {
        "output_type": "display_data",
        "metadata": {"scrapbook": {"name": "fig-01-a", "mime_prefix": figures.GLUE_PREFIX}},
        "data": {figures.GLUE_PREFIX + "image/png": "iVBOR", figures.GLUE_PREFIX + "text/plain": "<Figure>"},
    }
    plain = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "xyz"}}
    nb = {"cells": [_md("x"), {"cell_type": "code", "source": "", "outputs": [plain, out]}]}
    assert figures.glued_images(nb) == {"fig-01-a": (1, "image/png", "iVBOR")}


def test_number_by_chapter_renumbers_chapter_pages_only():
    env = SimpleNamespace(
        toc_fignumbers={
            "book/chapters/04_uam": {"figure": {"fig-04-a": (7,), "fig-04-b": (8,)}, "table": {"t": (3,)}},
            "book/generated/reproduction": {"figure": {"f": (9,)}},
            "book/chapters/08_method_comparison": {"figure": {"fig-08-a": (8, 1)}},
        }
    )
    changed = figures.number_by_chapter(None, env)
    assert env.toc_fignumbers["book/chapters/04_uam"] == {
        "figure": {"fig-04-a": (4, 1), "fig-04-b": (4, 2)},
        "table": {"t": (4, 1)},
    }
    assert env.toc_fignumbers["book/generated/reproduction"] == {"figure": {"f": (9,)}}
    assert changed == ["book/chapters/04_uam"]  # chapter 8 already had its numbers


def _code(cell):
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_glued_figure_is_placed_named_captioned_and_referred_to(path):
    nb = json.loads(path.read_text())
    chapter = path.stem[:2]
    code = "\n".join(_code(c) for c in nb["cells"] if c["cell_type"] == "code")
    prose = "\n".join(_code(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    shown = re.findall(r"""figures\.show\(\s*\w+\s*,\s*(?:f?["'])(fig-[a-z0-9{}_\-]+)["']""", code)
    placed = {p.key: p for p in figures.placed_figures(nb)}
    for key in placed:
        assert key.startswith(f"fig-{chapter}-"), f"{key}: figures of chapter {chapter} are fig-{chapter}-..."
        p = placed[key]
        assert p.name == key, f"{key}: give the figure the name of its glue key"
        words = len(p.caption.split())
        assert 5 <= words <= 90, f"{key}: a caption of one or two sentences ({words} words)"
        assert f"{{numref}}`{key}`" in prose, f"{key}: the prose should refer to it with {{numref}}"
    static = [k for k in shown if "{" not in k]
    missing = sorted(set(static) - set(placed))
    assert not missing, f"glued but never placed: {missing}"
