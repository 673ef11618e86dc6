"""Numbered, captioned figures: how a chapter shows a matplotlib figure and how the book numbers it.

A chapter never lets a figure fall out of a cell. It hands the figure to :func:`show`, which glues it
(myst-nb ``glue``, not displayed) under a chapter-unique name ``fig-NN-what`` and closes it; the markdown
cell after it places the figure with its name and a caption saying what to see::

    ```{glue:figure} fig-04-dam
    :name: fig-04-dam

    The dissonance maps ...
    ```

and the prose refers to it as ``{numref}`fig-04-dam```. :func:`placed_figures` reads those pairs back
from a notebook (the figure index and the tests use it). The Sphinx hook :func:`number_by_chapter`
numbers the figures of chapter ``NN_name`` as ``Figure NN.1``, ``NN.2``, ... in page order (Sphinx's own
numbering is global when the table of contents is not numbered).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NAME_RE",
    "GLUE_PREFIX",
    "PlacedFigure",
    "show",
    "placeholder",
    "placed_figures",
    "glued_images",
    "number_by_chapter",
]

#: a figure's name: ``fig-<two-digit chapter>-<lower-case words joined by hyphens>``
NAME_RE = re.compile(r"^fig-(\d\d)-[a-z0-9]+(?:-[a-z0-9]+)*$")
#: the mime-type prefix myst-nb gives the outputs it glues without displaying them
GLUE_PREFIX = "application/papermill.record/"

_DIRECTIVE_RE = re.compile(r"^(`{3,}|~{3,})\{(glue:figure|figure)\}\s*(\S+)\s*$")


@dataclass(frozen=True)
class PlacedFigure:
    """A ``{glue:figure}`` directive of a markdown cell: the glue key, the figure's name and caption."""

    key: str
    name: str | None
    caption: str
    cell: int  # 0-based index of the markdown cell that places it


def show(fig: Any, name: str) -> None:
    """Glue the matplotlib figure ``fig`` under ``name`` (``fig-NN-what``) without displaying it; close it.

    The markdown cell after the code places it with ``{glue:figure} name`` (see the module docstring).
    Raises ``ValueError`` for a name that is not ``fig-<two digits>-<words>``.
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"a figure name is 'fig-NN-words' (lower case, hyphens), got {name!r}")
    import matplotlib.pyplot as plt
    from myst_nb import glue

    glue(name, fig, display=False)
    plt.close(fig)


def placeholder(name: str, text: str) -> None:
    """Glue a small figure that only says ``text`` under ``name``: the stand-in for a figure this profile
    does not draw (a section that runs only in the ``cpu`` / ``gpu`` profiles), so that its placement
    and number stay the same in every profile."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 0.7))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, color="0.35", transform=ax.transAxes)
    show(fig, name)


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def placed_figures(nb: dict[str, Any]) -> list[PlacedFigure]:
    """Every ``{glue:figure}`` directive in the markdown cells of notebook JSON ``nb``, in order.

    The caption is the directive's first paragraph after its options.
    """
    found = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "markdown":
            continue
        lines = _source(cell).splitlines()
        j = 0
        while j < len(lines):
            m = _DIRECTIVE_RE.match(lines[j].strip())
            if not m or m.group(2) != "glue:figure":
                j += 1
                continue
            fence, key = m.group(1), m.group(3)
            body = []
            j += 1
            while j < len(lines) and lines[j].strip() != fence:
                body.append(lines[j])
                j += 1
            j += 1
            opts = {}
            k = 0
            while k < len(body) and body[k].strip().startswith(":"):
                om = re.match(r"^:([\w-]+):\s*(.*)$", body[k].strip())
                if om:
                    opts[om.group(1)] = om.group(2)
                k += 1
            paragraph = []
            for line in body[k:]:
                if not line.strip():
                    if paragraph:
                        break
                    continue
                paragraph.append(line.strip())
            found.append(PlacedFigure(key=key, name=opts.get("name"), caption=" ".join(paragraph), cell=i))
    return found


def glued_images(nb: dict[str, Any]) -> dict[str, tuple[int, str, str]]:
    """The glued images of notebook JSON ``nb``: ``{key: (code cell index, mime type, data)}``.

    ``data`` is the output's payload (base64 for PNG, text for SVG); only outputs glued by
    :func:`show` (or myst-nb ``glue``) with an image representation count.
    """
    out: dict[str, tuple[int, str, str]] = {}
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        for o in cell.get("outputs", []):
            key = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if key is None:
                continue
            data = o.get("data", {})
            for mime in ("image/png", "image/svg+xml"):
                for k in (GLUE_PREFIX + mime, mime):
                    if k in data:
                        payload = data[k]
                        out[key] = (i, mime, payload if isinstance(payload, str) else "".join(payload))
                        break
                if key in out:
                    break
    return out


_CHAPTER_DOC_RE = re.compile(r"(?:^|/)(\d\d)_[^/]*$")


def number_by_chapter(app: Any, env: Any) -> list[str]:
    """Sphinx ``env-get-updated`` hook: number the figures (and tables) of page ``.../NN_name`` as
    ``NN.1, NN.2, ...`` in the order Sphinx found them; other pages keep Sphinx's numbers.

    Connected after Sphinx's own numbering (priority 900); returns the pages whose numbers changed so
    that they are written again.
    """
    changed = []
    for docname, by_type in getattr(env, "toc_fignumbers", {}).items():
        m = _CHAPTER_DOC_RE.search(docname)
        if not m:
            continue
        chapter = int(m.group(1))
        renumbered = {
            figtype: {fid: (chapter, k) for k, fid in enumerate(ids, start=1)} for figtype, ids in by_type.items()
        }
        if renumbered != by_type:
            env.toc_fignumbers[docname] = renumbered
            changed.append(docname)
    return changed
