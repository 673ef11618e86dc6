"""A PDF of the built HTML book, printed by headless Chromium: ``make pdf`` (``python -m compendium.pdf``).

Jupyter Book's own ``pdfhtml`` route drives pyppeteer, which downloads its own Chromium; this module
prints the HTML that ``make book`` built with the Chromium already installed (Debian's
``/usr/bin/chromium``, driven by Playwright with ``executable_path``, as :mod:`compendium.browser` does),
offline: the build is served by a local ``http.server`` thread and every request to another host is
aborted. Each page of the table of contents (``_toc.yml``, in its order) is opened, MathJax is awaited
(every ``.math`` element must hold a typeset ``mjx-container``, else :class:`RuntimeError`) and every
image decoded, the page is printed to A4 with the theme's print style sheet, and the pages are joined
with ``pypdf`` into one file with one bookmark per page.

Usage::

    python -m compendium.pdf [--html _build/html] [--out _build/pdf/book.pdf]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from compendium.browser import chromium_executable, offline_browser

__all__ = ["PdfReport", "toc_pages", "build_pdf", "main"]


# run in each page before printing: eager images, MathJax finished, then what was typeset
_READY = """
async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const maths = Array.from(document.querySelectorAll('.math'));
  return {
    title: (document.querySelector('main h1') || {}).textContent || document.title,
    images: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    brokenImages: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    maths: maths.length,
    untypeset: maths.filter(e => !e.querySelector('mjx-container')).length,
  };
}
"""


# run in each page laid out for paper (print media, the A4 text width): what is wider than its box there is cut
# off on paper, since a printed page cannot scroll
_CUT = """
() => Array.from(document.querySelectorAll('.ualib-table, .cell_output .output.text_html, mjx-container[display="true"]'))
  .filter(e => e.scrollWidth > e.clientWidth + 2)
  .filter(e => e.classList.contains('ualib-table') || !e.querySelector('.ualib-table'))  // a table once, not its output too
  .map(e => {
    const kind = e.classList.contains('ualib-table') ? 'table' : e.tagName.toLowerCase() === 'mjx-container' ? 'equation' : 'output';
    const text = ((e.querySelector('caption') || e).innerText || '').replace(/\\s+/g, ' ').trim();
    const label = Array.from(text).slice(0, 50).join('');  // whole characters: maths letters are surrogate pairs
    return `${kind} ${e.scrollWidth - e.clientWidth} px too wide: ${label}`;
  })
"""

#: the CSS width of an A4 page's text column between :func:`build_pdf`'s 12 mm margins (186 mm at 96 px per inch)
_PAPER_WIDTH_PX = round(186 / 25.4 * 96)


@dataclass
class PdfReport:
    """What was printed: the PDF, and per printed page of the book its title, first PDF page (0-based),
    number of PDF pages, images and maths elements, and ``cut``: what is wider than the paper's text column
    there (a table, an equation or another output, with how many pixels it loses), since paper cannot scroll."""

    path: Path
    pages: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def page_count(self) -> int:
        return sum(p["pdf_pages"] for p in self.pages)

    def summary(self) -> str:
        cut = [f"{p['page']}: {c}" for p in self.pages for c in p.get("cut", [])]
        return (
            f"{self.path}: {self.page_count} PDF pages from {len(self.pages)} book pages "
            f"({sum(p['images'] for p in self.pages)} images, {sum(p['maths'] for p in self.pages)} maths elements) "
            f"in {self.seconds:.0f} s; "
            + (f"{len(cut)} boxes wider than the paper, cut off:\n  " + "\n  ".join(cut) if cut else "nothing cut off")
        )


def toc_pages(root: str | os.PathLike) -> list[str]:
    """The HTML pages of the book in reading order: ``_toc.yml``'s root, then every ``file`` entry of its
    parts, chapters and sections, depth first, as paths relative to the HTML folder (``book/intro.html``)."""
    import yaml

    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    if not isinstance(toc, dict) or "root" not in toc:
        raise ValueError(f"{Path(root) / '_toc.yml'} has no 'root' entry")
    out = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                out.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return [f"{Path(f).with_suffix('').as_posix()}.html" for f in out]


def build_pdf(
    html_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    chromium: str | None = None,
    timeout_s: float = 120.0,
    progress: bool = False,
) -> PdfReport:
    """Print every page of an HTML build to one PDF.

    Parameters
    ----------
    html_dir
        The build's HTML folder (``_build/html``).
    out
        The PDF to write (its folder is created).
    root
        The folder with ``_toc.yml`` (the page order); default: the checkout.
    chromium
        The browser executable; default :func:`compendium.browser.find_chromium`.
    timeout_s
        Limit for loading one page, MathJax and its images included.
    progress
        Print one line per page.

    Returns
    -------
    PdfReport

    Raises
    ------
    FileNotFoundError
        When a page of the table of contents is missing from the build, or there is no Chromium.
    RuntimeError
        When an image of a page did not load or MathJax left maths untypeset.
    """
    from pypdf import PdfReader, PdfWriter

    from ualib._paths import repo_root

    html = Path(html_dir).resolve()
    r = Path(root) if root is not None else repo_root()
    names = toc_pages(r)
    missing = [n for n in names if not (html / n).is_file()]
    if missing:
        raise FileNotFoundError(f"pages of _toc.yml missing from {html} (build the HTML first): {missing}")
    exe = chromium_executable(chromium)
    dst = Path(out)
    dst.parent.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    writer = PdfWriter()
    report = PdfReport(dst)
    with offline_browser(html, exe) as (context, base):
        page = context.new_page()
        # laid out as on paper while it is measured (page.pdf lays out for the paper size itself)
        page.set_viewport_size({"width": _PAPER_WIDTH_PX, "height": 1000})
        page.emulate_media(media="print")
        for name in names:
            page.goto(base + name, wait_until="load", timeout=timeout_s * 1000)
            info = page.evaluate(_READY)
            if info["brokenImages"]:
                raise RuntimeError(f"{name}: images did not load: {info['brokenImages']}")
            if info["untypeset"]:
                raise RuntimeError(f"{name}: MathJax left {info['untypeset']} maths elements untypeset")
            cut = page.evaluate(_CUT)
            data = page.pdf(
                format="A4",
                print_background=True,
                margin={"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"},
            )
            reader = PdfReader(io.BytesIO(data))
            first = len(writer.pages)
            for p in reader.pages:
                writer.add_page(p)
            title = " ".join(info["title"].replace("#", "").split())
            writer.add_outline_item(title or name, first)
            report.pages.append(
                {
                    "page": name,
                    "title": title,
                    "first_pdf_page": first,
                    "pdf_pages": len(reader.pages),
                    "images": info["images"],
                    "maths": info["maths"],
                    "cut": cut,
                }
            )
            if progress:
                print(f"  {name}: {len(reader.pages)} PDF pages", flush=True)
    writer.add_metadata({"/Title": "Explainable Uncertainty"})
    with dst.open("wb") as f:
        writer.write(f)
    report.seconds = time.perf_counter() - t0
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compendium.pdf", description=__doc__.splitlines()[0])
    parser.add_argument("--html", default="_build/html", help="the HTML build to print (make book builds it)")
    parser.add_argument("--out", default="_build/pdf/book.pdf")
    args = parser.parse_args(argv)
    report = build_pdf(args.html, args.out, progress=True)
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
