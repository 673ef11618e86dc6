"""Open every page of the built HTML book in headless Chromium and check that it renders, offline.

Used by ``tests/test_browser.py`` (on a ``tiny`` build) and by ``python -m compendium.book build`` (on the
book it has just built). Debian's Chromium (``/usr/bin/chromium``) is driven by Playwright's Python
package with ``executable_path``; Playwright never downloads a browser. The book is served by a local
``http.server`` thread on 127.0.0.1, and every request to any other host is recorded and aborted, so
nothing leaves the machine while the pages load.

Per page it checks:

- no error output: no notebook error / traceback / stderr output areas, no Sphinx ``system-message``
  or ``problematic`` nodes, no "Traceback (most recent call last)" in the text, no JavaScript error;
- every ``<img>`` loaded (``naturalWidth > 0``) and no local request failed or answered >= 400;
- maths typeset: every ``.math`` element holds a MathJax ``mjx-container`` and none an ``mjx-merror``;
- every internal link resolves: its file exists and its ``#anchor``, if any, is an ``id`` in that file;
- no request to a host other than 127.0.0.1 / localhost (a CDN, a font service, ...);
- what a reader sees: the page does not scroll sideways at 1280 px and nothing in the article sticks out
  of its column unless inside a box that scrolls (a code block, a wide table's or equation's own box);
  no ``NBVAL_CHECK_OUTPUT`` marker anywhere in the rendered cells (folded code included); every
  ``<figure>`` with an image has a non-empty caption; every raster image has content
  (:func:`image_content_problem`: not blank, not a single colour). Images in cell outputs outside a
  ``<figure>`` are counted as uncaptioned (``PageReport.uncaptioned``), not failed;

and saves a full-page screenshot (1280 px wide) of every page under ``book/``.

On every chapter page (``book/chapters/``) it also checks the exercises (sphinx-exercise): the page has at
least one exercise block, every solution sits behind a toggle (sphinx-togglebutton's dropdown), and each
solution's content is hidden until its toggle is clicked and shown after; a screenshot of the first
exercise with its opened solution is saved as ``exercise_<chapter>.png`` beside the others.

The book build calls :func:`check_book` with ``reuse=True``: a page that the last check found without
problem is not opened again while its HTML, its images, the assets pages request, the anchors it links to,
this module and the browser are unchanged (``<screenshots>/browser-check.json``), so a rebuild with
nothing changed opens no browser. The tests always check every page.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import html.parser
import http.server
import io
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

__all__ = [
    "CHROMIUM_ARGS",
    "PageReport",
    "BookReport",
    "find_chromium",
    "chromium_executable",
    "offline_browser",
    "book_pages",
    "check_book",
    "image_content_problem",
]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
_VIEWPORT = {"width": 1280, "height": 900}

# evaluated in each page once it has loaded: waits for MathJax and for every image, then reports
_INSPECT = """
async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const count = s => document.querySelectorAll(s).length;
  const maths = Array.from(document.querySelectorAll('.math'));
  const main = document.querySelector('main') || document.body;
  return {
    errors: {
      'notebook error / traceback output': count('.output.traceback, .output.error, .cell_output .traceback'),
      'stderr output': count('.output.stderr'),
      'Sphinx system message': count('.system-message'),
      'unresolved reference (problematic)': count('.problematic'),
      'text "Traceback (most recent call last)"':
        (document.body.innerText.match(/Traceback \\(most recent call last\\)/g) || []).length,
    },
    images: imgs.length,
    brokenImages: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    maths: maths.length,
    untypeset: maths.filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 80)),
    texErrors: Array.from(document.querySelectorAll('mjx-merror')).map(e => e.textContent.slice(0, 80)),
    mjx: count('mjx-container'),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    textLength: main.innerText.trim().length,
    ...readerView(main),
  };
}
"""

# what a reader sees: sideways scrolling, content sticking out of its column, nbval markers, captions
_READER_VIEW = """
function readerView(main) {
  const doc = document.documentElement;
  const article = document.querySelector('article') || main;
  const edge = article.getBoundingClientRect().right + 2;
  const scrolls = e => {
    for (let a = e.parentElement; a && a !== article.parentElement; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === 'auto' || o === 'scroll') return true;
    }
    return false;
  };
  const sticksOut = e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.right > edge && !e.closest('pre, .highlight') && !scrolls(e);
  };
  const name = e => e.tagName.toLowerCase() + (e.classList.length ? '.' + Array.from(e.classList).join('.') : '') +
    ' ' + JSON.stringify((e.textContent || e.getAttribute('src') || '').trim().slice(0, 60));
  const out = Array.from(article.querySelectorAll('*')).filter(sticksOut);
  const outermost = out.filter(e => !out.includes(e.parentElement));
  const figures = Array.from(main.querySelectorAll('figure')).filter(f => f.querySelector('img'));
  const captionless = figures.filter(f => {
    const c = f.querySelector('figcaption');
    return !c || c.textContent.trim().length === 0;
  });
  const outputImgs = Array.from(main.querySelectorAll('.cell_output img, .output img'));
  const marked = Array.from(main.querySelectorAll('.cell, .cell_input, .cell_output, pre'))
    .filter(e => e.textContent.includes('NBVAL_CHECK_OUTPUT'));
  return {
    sideways: doc.scrollWidth - doc.clientWidth,
    sticksOut: outermost.map(name),
    nbvalMarkers: marked.filter(e => !marked.some(o => o !== e && o.contains(e))).length,
    figures: figures.length,
    captionless: captionless.map(f => (f.querySelector('img').getAttribute('src') || '').slice(0, 80)),
    uncaptioned: outputImgs.filter(i => !i.closest('figure')).length,
    imageSources: Array.from(document.images).filter(i => i.naturalWidth > 0).map(i => i.currentSrc || i.src),
  };
}
"""


# the exercise blocks of a page and whether each solution is a toggled dropdown
_EXERCISES = """
() => {
  const main = document.querySelector('main') || document.body;
  const solutions = Array.from(main.querySelectorAll('.solution.admonition'));
  return {
    exercises: main.querySelectorAll('.exercise.admonition').length,
    solutions: solutions.length,
    untoggled: solutions.filter(s => !(s.classList.contains('dropdown') && s.querySelector('button.toggle-button')))
                        .map(s => s.id),
  };
}
"""


def find_chromium() -> str | None:
    """Path of the Chromium to drive: ``UALIB_CHROMIUM``, else ``/usr/bin/chromium``, else ``chromium``
    on the PATH; ``None`` when there is none."""
    for candidate in (os.environ.get("UALIB_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def book_pages(html_dir: str | os.PathLike) -> list[str]:
    """Every HTML page of a build, as paths relative to ``html_dir`` (POSIX), leaving out Sphinx's
    asset folders (``_static``, ``_sources``, ``_images``, ...)."""
    root = Path(html_dir)
    pages = [p.relative_to(root).as_posix() for p in root.rglob("*.html")]
    return sorted(p for p in pages if not p.split("/")[0].startswith("_"))


@dataclass
class PageReport:
    """What one page showed: ``problems`` is empty when it rendered correctly."""

    page: str
    problems: list[str] = field(default_factory=list)
    images: int = 0
    maths: int = 0
    links: int = 0
    figures: int = 0
    uncaptioned: int = 0
    screenshot: Path | None = None
    exercises: int = 0
    exercise_screenshot: Path | None = None


@dataclass
class BookReport:
    """All pages of a build; ``external_requests`` lists every URL a page tried to load from another
    host (all were aborted)."""

    html_dir: Path
    pages: list[PageReport]
    external_requests: list[str]
    screenshot_dir: Path | None
    seconds: float
    reused: int = 0

    @property
    def problems(self) -> list[str]:
        out = [f"{p.page}: {msg}" for p in self.pages for msg in p.problems]
        out += [f"request to another host (aborted): {url}" for url in self.external_requests]
        return out

    def summary(self) -> str:
        shots = sum(p.screenshot is not None for p in self.pages)
        opened = f"{len(self.pages)} pages checked in headless Chromium in {self.seconds:.0f} s"
        if self.reused:
            opened = (
                f"{len(self.pages)} pages checked: {len(self.pages) - self.reused} opened in headless Chromium in "
                f"{self.seconds:.0f} s, {self.reused} unchanged since their last clean check (not reopened, their "
                f"record reused)"
            )
        text = (
            f"{opened}: "
            f"{sum(p.images for p in self.pages)} images, {sum(p.maths for p in self.pages)} maths elements, "
            f"{sum(p.links for p in self.pages)} internal links, {len(self.external_requests)} requests "
            f"to other hosts, {sum(p.figures for p in self.pages)} captioned figure boxes checked, "
            f"{len(self.problems)} problems"
        )
        uncaptioned = {p.page: p.uncaptioned for p in self.pages if p.uncaptioned}
        if uncaptioned:
            text += "; images in cell outputs without a figure caption: " + ", ".join(
                f"{page} {n}" for page, n in uncaptioned.items()
            )
        if self.screenshot_dir is not None:
            text += f"; {shots} screenshots in {self.screenshot_dir}"
        return text


class _Ids(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.refresh: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            m = re.search(r"url=(.+)$", a.get("content") or "", re.I)
            self.refresh = m.group(1).strip("'\" ") if m else None


@functools.lru_cache(maxsize=4096)
def _image_problem(data: bytes) -> str | None:
    return image_content_problem(data)


@functools.cache
def _parse(path: Path) -> _Ids:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def _resolve(html_dir: Path, url: str, base: str) -> tuple[Path | None, str]:
    """File and fragment an internal URL points to (``None`` for an external or non-file URL)."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or u.hostname not in _LOCAL_HOSTS or not url.startswith(base):
        return None, ""
    target = html_dir / unquote(u.path).lstrip("/")
    if u.path.endswith("/") or target.is_dir():
        target = target / "index.html"
    return target, unquote(u.fragment)


def image_content_problem(data: bytes, *, min_share: float = 1e-3) -> str | None:
    """Why a raster image shows nothing to a reader, or ``None`` when it has content.

    The image is decoded (PIL) to RGBA; it is *blank* when every pixel has one colour, *nearly blank*
    when fewer than ``min_share`` of its pixels (at least one) differ from its most common colour (a
    plot with axes and one line is far above 0.1 %). Images PIL cannot decode (SVG) return ``None``.
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            px = np.asarray(im.convert("RGBA")).reshape(-1, 4)
    except (UnidentifiedImageError, OSError):
        return None
    colours, counts = np.unique(px, axis=0, return_counts=True)
    if len(colours) == 1:
        return f"blank image: a single colour {tuple(int(c) for c in colours[0])} ({im.width} x {im.height})"
    other = px.shape[0] - counts.max()
    if other < max(1.0, min_share * px.shape[0]):
        return f"nearly blank image: {other} of {px.shape[0]} pixels differ from its background"
    return None


def _image_bytes(html: Path, base: str, src: str) -> bytes | None:
    """The bytes of an image the page showed: a ``data:`` URI or a file of the served folder."""
    if src.startswith("data:"):
        header, _, payload = src.partition(",")
        return base64.b64decode(payload) if header.endswith(";base64") else unquote(payload).encode()
    target, _ = _resolve(html, src, base)
    return target.read_bytes() if target is not None and target.is_file() else None


def chromium_executable(chromium: str | None = None) -> str:
    """``chromium``, or :func:`find_chromium`'s; a ``FileNotFoundError`` that says how to install it otherwise."""
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium: install Debian's (apt-get install -y chromium) or set UALIB_CHROMIUM")
    return exe


@contextlib.contextmanager
def offline_browser(
    html_dir: Path, executable: str, *, viewport: dict | None = None, refused: list[str] | None = None
) -> Iterator[tuple[Any, str]]:
    """Serve ``html_dir`` on a free local port and open a headless Chromium that reaches nothing else.

    Yields the Playwright browser context and the base URL of the served folder. Every request to
    another host (http, https, ws, wss) is aborted and, when ``refused`` is a list, appended to it; the
    browser profile is a fresh temporary folder and service workers are blocked. The server and the
    browser are closed on exit. The browser check (:func:`check_book`) and the PDF printer
    (:mod:`compendium.pdf`) share it.
    """
    from playwright.sync_api import sync_playwright

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(html_dir))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    options = {} if viewport is None else {"viewport": viewport}
    try:
        with tempfile.TemporaryDirectory(prefix="ualib-chromium-") as profile, sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS, service_workers="block",
                **options,
            )  # fmt: skip
            try:

                def route(r):
                    u = urlsplit(r.request.url)
                    if u.scheme in ("http", "https", "ws", "wss") and u.hostname not in _LOCAL_HOSTS:
                        if refused is not None:
                            refused.append(r.request.url)
                        r.abort()
                    else:
                        r.continue_()

                context.route("**/*", route)
                yield context, base
            finally:
                context.close()
    finally:
        server.shutdown()
        server.server_close()


def check_book(
    html_dir: str | os.PathLike,
    screenshot_dir: str | os.PathLike | None = None,
    *,
    chromium: str | None = None,
    timeout_s: float = 60.0,
    progress: bool = False,
    reuse: bool = False,
) -> BookReport:
    """Open every page of the HTML build ``html_dir`` in headless Chromium and check that it renders.

    Parameters
    ----------
    html_dir
        The build's HTML folder (``_build/html``).
    screenshot_dir
        Where to save ``<folder>_<page>.png`` (``chapters_02_ua_backprop.png``, ``intro.png``), a full-page
        screenshot (1280 px wide) of every page under ``book/``; ``None``: no screenshots. Created if missing.
    chromium
        The browser executable; default :func:`find_chromium`.
    timeout_s
        Limit for loading one page, MathJax and its images included.
    progress
        Print one line per page.
    reuse
        Do not reopen a page that a previous check with the same ``screenshot_dir`` found without problem
        when nothing it depends on changed: its HTML, every image it showed, every file it requested, the
        shared assets any page requested (scripts, styles, fonts; not the search index, which changes with
        every word of the book and which no check reads), the existence (and, for links with an
        ``#anchor``, the ids) of every page it links to, this module, the browser and Playwright. The record is
        ``<screenshot_dir>/browser-check.json``; a page's screenshots must still be there. A rebuild with
        nothing changed then opens no browser at all.

    Returns
    -------
    BookReport
        One :class:`PageReport` per page, the aborted requests to other hosts, and its ``problems``.

    Raises
    ------
    FileNotFoundError
        When ``html_dir`` has no ``index.html`` or no Chromium is found.
    """
    html = Path(html_dir).resolve()
    if not (html / "index.html").is_file():
        raise FileNotFoundError(f"{html} is not an HTML build: it has no index.html")
    exe = chromium_executable(chromium)
    shots = Path(screenshot_dir).resolve() if screenshot_dir is not None else None
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    _parse.cache_clear()

    t0 = time.perf_counter()
    names = book_pages(html)
    record = _Record(html, shots, exe) if reuse and shots is not None else None
    reports: dict[str, PageReport] = {n: rep for n in names if record and (rep := record.reused(n)) is not None}
    external: list[str] = []
    todo = [n for n in names if n not in reports]
    if todo:
        with offline_browser(html, exe, viewport=_VIEWPORT, refused=external) as (context, base):
            page = context.new_page()
            current: list[str] = []
            requested: list[str] = []
            page.on("pageerror", lambda e: current.append(f"JavaScript error: {e}"))
            page.on("console", lambda m: current.append(f"console error: {m.text}") if m.type == "error" else None)
            page.on(
                "requestfailed",
                lambda r: (
                    current.append(f"request failed: {r.url} ({r.failure})")
                    if urlsplit(r.url).hostname in _LOCAL_HOSTS
                    else None
                ),
            )
            page.on("response", lambda r: current.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
            page.on("request", lambda r: requested.append(r.url))
            for name in todo:
                requested.clear()
                deps: dict[str, Any] = {"files": set(), "requested": set(), "links": {}}
                rep = reports[name] = _check_page(page, html, base, name, current, shots, timeout_s, deps)
                if record is not None:
                    for url in requested:
                        target, _ = _resolve(html, url, base)
                        if target is not None and target.is_file() and target.suffix != ".html":
                            deps["requested"].add(target)
                    record.note(name, rep, deps)
                if progress:
                    print(f"  {name}: {'ok' if not rep.problems else f'{len(rep.problems)} problems'}", flush=True)
    ordered = [reports[n] for n in names]
    if record is not None:
        record.save(clean=not external)
    return BookReport(html, ordered, external, shots, time.perf_counter() - t0, len(names) - len(todo))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Sphinx appends ``?v=<checksum>`` to a page's CSS and JavaScript links only when the file is already in the
# output folder as the page is written. Extensions that copy theirs at the end of the build (myst-nb's and
# sphinx-exercise's CSS, and MathJax here) therefore get no query in a fresh build and one in the next, so
# every page's HTML changed once more after a fresh build. The query only repeats the asset's checksum, and
# the record digests the assets themselves, so a page's digest leaves it out.
_CACHE_BUSTER = re.compile(rb'((?:href|src)="[^"?#]*)\?v=[0-9a-f]+(?=")')


class _Record:
    """What the last check of a build found, page by page, with what each page depends on
    (``check_book(reuse=True)``); stored as ``browser-check.json`` next to the screenshots."""

    _NAME = "browser-check.json"

    def __init__(self, html: Path, shots: Path, exe: str) -> None:
        self.html, self.shots, self.path = html, shots, shots / self._NAME
        # a change of this module, of the browser (its file or Playwright) or of the viewport invalidates every record
        from importlib.metadata import version

        binary = Path(exe).resolve().stat()
        browser = f"{exe}|{binary.st_size}|{binary.st_mtime_ns}|playwright {version('playwright')}|{_VIEWPORT}"
        self.version = _sha(Path(__file__).read_bytes() + browser.encode())
        self._digests: dict[str, str | None] = {}
        self.shared: dict[str, str | None] = {}  # assets (not images, not pages) any page requested
        self.pages: dict[str, dict] = {}
        try:
            old = json.loads(self.path.read_text())
        except (OSError, ValueError):
            old = {}
        self.old = old.get("pages", {}) if old.get("version") == self.version else {}
        if self.old and all(self.digest(f) == d for f, d in old.get("shared", {}).items()):
            self.shared = dict(old["shared"])
        else:
            self.old = {}

    def digest(self, rel: str) -> str | None:
        """The file's content hash (``None`` when missing), once per file and check; for a page, with its
        assets' cache-busting queries left out (:data:`_CACHE_BUSTER`)."""
        if rel not in self._digests:
            path = self.html / rel
            data = path.read_bytes() if path.is_file() else None
            if data is not None and rel.endswith(".html"):
                data = _CACHE_BUSTER.sub(rb"\1", data)
            self._digests[rel] = None if data is None else _sha(data)
        return self._digests[rel]

    def link_digest(self, rel: str, anchored: bool) -> str | None:
        path = self.html / rel
        if not path.is_file():
            return None
        return _sha("\n".join(sorted(_parse(path).ids)).encode()) if anchored else "exists"

    def reused(self, name: str) -> PageReport | None:
        entry = self.old.get(name)
        if entry is None:
            return None
        if any(self.digest(f) != d for f, d in entry["files"].items()):
            return None
        if any(self.link_digest(t, d != "exists") != d for t, d in entry["links"].items()):
            return None
        rep = PageReport(name, **{k: v for k, v in entry["report"].items() if not k.endswith("screenshot")})
        for key in ("screenshot", "exercise_screenshot"):
            if entry["report"].get(key):
                shot = self.shots / entry["report"][key]
                if not shot.is_file():
                    return None
                setattr(rep, key, shot)
        self.pages[name] = entry
        return rep

    def note(self, name: str, rep: PageReport, deps: dict[str, Any]) -> None:
        """Record a page just checked (only a page without problems is ever reused)."""
        if rep.problems:
            return

        def rel(paths):
            return {p.relative_to(self.html).as_posix() for p in paths if p.is_relative_to(self.html)}

        own = rel(deps["files"])  # the page and the images it showed
        # the search index changes with every word of the book, and no check reads it (the search box is not used)
        for f in rel(deps["requested"]) - own - {"searchindex.js"}:
            self.shared[f] = self.digest(f)
        report = {k: getattr(rep, k) for k in ("images", "maths", "links", "figures", "uncaptioned", "exercises")}
        for key in ("screenshot", "exercise_screenshot"):
            shot = getattr(rep, key)
            report[key] = None if shot is None else shot.relative_to(self.shots).as_posix()
        links = {}
        for target, anchored in deps["links"].items():
            if target.is_relative_to(self.html):
                t = target.relative_to(self.html).as_posix()
                links[t] = self.link_digest(t, anchored)
        self.pages[name] = {"files": {f: self.digest(f) for f in sorted(own)}, "links": links, "report": report}

    def save(self, *, clean: bool) -> None:
        """Write the record; a check that saw a request to another host keeps none."""
        if not clean:
            self.path.unlink(missing_ok=True)
            return
        doc = {"version": self.version, "shared": dict(sorted(self.shared.items())), "pages": self.pages}
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


def _check_page(
    page,
    html: Path,
    base: str,
    name: str,
    current: list[str],
    shots: Path | None,
    timeout_s: float,
    deps: dict[str, Any] | None = None,
) -> PageReport:
    """Check one page; ``deps`` (``{"files": set(), "requested": set(), "links": {}}``), when given, receives the
    page's file and the images it showed (``files``) and the pages it links to (``True`` when a link names an
    anchor), for :class:`_Record`; ``check_book`` adds the files the page requested (``requested``)."""
    deps = {"files": set(), "requested": set(), "links": {}} if deps is None else deps
    deps["files"].add(html / name)
    rep = PageReport(name)
    redirect = _parse(html / name).refresh
    if redirect is not None:  # index.html: a meta refresh to the first page; check where it points
        target, _ = _resolve(html, urljoin(base + name, redirect), base)
        if target is not None:
            deps["links"][target] = False
        if target is None or not target.is_file():
            rep.problems.append(f"redirects to a missing page {redirect!r}")
        return rep
    current.clear()
    response = page.goto(base + name, wait_until="load", timeout=timeout_s * 1000)
    if response is None or response.status != 200:
        rep.problems.append(f"answered {None if response is None else response.status}")
        return rep
    info = page.evaluate("async () => {\n" + _READER_VIEW + "\nreturn await (" + _INSPECT.strip() + ")();\n}")
    for what, n in info["errors"].items():
        if n:
            rep.problems.append(f"{n} x {what}")
    rep.images = info["images"]
    rep.problems += [f"image did not load: {src}" for src in info["brokenImages"]]
    rep.maths = info["maths"]
    rep.problems += [f"maths not typeset: {text!r}" for text in info["untypeset"]]
    rep.problems += [f"TeX error: {text!r}" for text in info["texErrors"]]
    if info["maths"] and not info["mjx"]:
        rep.problems.append("the page has maths but MathJax typeset nothing")
    if info["textLength"] < 20:
        rep.problems.append("the page shows (almost) no text")
    if info["sideways"] > 1:
        rep.problems.append(f"the page scrolls sideways by {info['sideways']} px at {_VIEWPORT['width']} px")
    rep.problems += [f"sticks out of the text column (no scrolling box of its own): {e}" for e in info["sticksOut"]]
    if info["nbvalMarkers"]:
        rep.problems.append(f"{info['nbvalMarkers']} rendered cells show NBVAL_CHECK_OUTPUT")
    rep.figures, rep.uncaptioned = info["figures"], info["uncaptioned"]
    rep.problems += [f"figure without a caption: {src}" for src in info["captionless"]]
    for src in dict.fromkeys(info["imageSources"]):
        target, _ = _resolve(html, src, base)
        if target is not None:
            deps["files"].add(target)
        data = _image_bytes(html, base, src)
        problem = None if data is None else _image_problem(data)
        if problem:
            rep.problems.append(f"{problem}: {src[len(base) :] if src.startswith(base) else src[:60]}")
    checked = set()
    for url in info["links"]:
        target, fragment = _resolve(html, url, base)
        if target is None or (target, fragment) in checked:
            continue
        checked.add((target, fragment))
        deps["links"][target] = deps["links"].get(target, False) or bool(fragment)
        if not target.is_file():
            rep.problems.append(f"broken link {url[len(base) :]!r}: no such file")
        elif fragment and target.suffix == ".html" and fragment not in _parse(target).ids:
            rep.problems.append(f"broken link {url[len(base) :]!r}: no anchor #{fragment} in {target.name}")
    rep.links = len(checked)
    if shots is not None and name.startswith("book/"):
        # chapters/04_uam and prefaces/04_uam share a stem: name the shot by its folder too
        rep.screenshot = shots / (Path(name).relative_to("book").with_suffix("").as_posix().replace("/", "_") + ".png")
        page.screenshot(path=str(rep.screenshot), full_page=True)
    if name.startswith("book/chapters/"):
        rep.problems += _check_exercises(page, name, rep, shots)
    rep.problems[:0] = current  # JavaScript errors and failed requests logged while the page was open
    return rep


def _check_exercises(page, name: str, rep: PageReport, shots: Path | None) -> list[str]:
    """A chapter page's exercises: present, every solution hidden until its toggle is clicked, then shown."""
    info = page.evaluate(_EXERCISES)
    rep.exercises = info["exercises"]
    problems = []
    if not info["exercises"]:
        problems.append("no exercise block on a chapter page")
    if info["solutions"] < info["exercises"]:
        problems.append(f"{info['exercises']} exercises but only {info['solutions']} solutions")
    problems += [f"solution {sid!r} is not behind a toggle" for sid in info["untoggled"]]
    solutions = page.locator("main .solution.admonition.dropdown")
    for i in range(solutions.count()):
        sol = solutions.nth(i)
        body = sol.locator(":scope > :not(.admonition-title)")
        if body.count() == 0:
            problems.append(f"solution {i + 1} has no content")
            continue
        if any(body.nth(j).is_visible() for j in range(body.count())):
            problems.append(f"solution {i + 1} is shown before its toggle is clicked")
        button = sol.locator(":scope > .admonition-title button.toggle-button")
        if button.count() == 0:
            continue  # reported as not behind a toggle
        button.first.click()
        try:
            body.first.wait_for(state="visible", timeout=5000)
        except Exception:  # playwright's TimeoutError
            problems.append(f"solution {i + 1} stays hidden after its toggle is clicked")
            continue
        if i == 0 and shots is not None:
            first = page.locator("main .exercise.admonition").first
            boxes = [b for b in (first.bounding_box(), sol.bounding_box()) if b is not None]
            if boxes:
                first.scroll_into_view_if_needed()
                boxes = [b for b in (first.bounding_box(), sol.bounding_box()) if b is not None]
                top = min(b["y"] for b in boxes)
                left = min(b["x"] for b in boxes)
                bottom = max(b["y"] + b["height"] for b in boxes)
                right = max(b["x"] + b["width"] for b in boxes)
                scroll = page.evaluate("() => [window.scrollX, window.scrollY]")
                rep.exercise_screenshot = shots / f"exercise_{Path(name).stem}.png"
                page.screenshot(
                    path=str(rep.exercise_screenshot),
                    full_page=True,
                    clip={"x": left + scroll[0], "y": top + scroll[1], "width": right - left, "height": bottom - top},
                )
    return problems
