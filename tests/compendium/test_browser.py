"""The built book, opened in a browser: every chapter executed in the tiny profile, the HTML built with
warnings as errors, and every page opened in headless Chromium with no network (compendium.browser).

Chromium is Debian's (/usr/bin/chromium), driven by Playwright's Python package. Locally a missing
browser skips the browser tests; in CI (CI=true) it fails them. Full-page screenshots of every page
are written to _build/screenshots/tiny/.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import unicodedata
from pathlib import Path

import pytest
from conftest import in_ci, prerequisite_missing

from compendium.book import build_html, chapters, run_chapter, vendor_assets
from compendium.browser import book_pages, check_book, find_chromium
from compendium.pdf import build_pdf, toc_pages
from compendium.reproduce import REFERENCE_ROOT, compare_trees, foreign_numerics

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "_build" / "screenshots" / "tiny"
# 1 x 1 PNG
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)


def _browser() -> str:
    """Chromium's path; skips (locally) or fails (CI) when Chromium or Playwright is missing."""
    missing = []
    exe = find_chromium()
    if exe is None:
        missing.append("no Chromium at /usr/bin/chromium (apt-get install -y --no-install-recommends chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright's Python package is not installed (pip install -e '.[test]')")
    if missing:
        prerequisite_missing("the browser test needs: " + "; ".join(missing))
    return exe


def _mathjax(root: Path) -> Path:
    """MathJax from book/node_modules (npm ci of the committed lock); in CI a failure, locally a skip
    when npm cannot install it."""
    try:
        return vendor_assets(root)[0]
    except RuntimeError as err:
        if in_ci():
            raise
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory):
    """Every chapter executed in the tiny profile into a scratch copy of the book, and its HTML."""
    es5 = _mathjax(ROOT)
    scratch = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, scratch / name)
    shutil.copytree(ROOT / "book", scratch / "book", ignore=shutil.ignore_patterns("chapters", "node_modules"))
    (scratch / "book" / "node_modules").symlink_to(es5.parents[1], target_is_directory=True)
    out = scratch / "book" / "chapters"
    foreign = foreign_numerics()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UALIB_RESULTS", str(scratch / "results"))
        # the chapters run as on another machine (other CPU kernels, other thread count); their results
        # are compared with the tiny reference by test_foreign_build_agrees_with_the_reference
        for var, value in foreign.items():
            mp.setenv(var, value)
        for name in chapters(ROOT):
            _, hit = run_chapter(name, "tiny", root=ROOT, output_dir=out, progress=False)
            assert not hit
        html = build_html(scratch, builddir=scratch)
        yield {"root": scratch, "html": html, "chapters": out, "results": scratch / "results", "numerics": foreign}


@pytest.mark.slow
def test_book_builds_without_warnings(tiny_book, monkeypatch):
    """`jupyter-book build -W` succeeded (the fixture); every chapter wrote its results, its page has
    figures and no error output, and the execution cache is used when nothing changed."""
    html, results = tiny_book["html"], tiny_book["results"]
    assert (html / "index.html").is_file()
    for name in chapters(ROOT):
        doc = json.loads((results / "tiny" / f"{name}.json").read_text())
        assert doc["chapter"] == name and doc["profile"] == "tiny" and doc["claims"]
        page = (html / "book" / "chapters" / f"{name}.html").read_text()
        assert "Traceback (most recent call last)" not in page
        assert 'class="output traceback"' not in page and 'class="output stderr"' not in page
        assert "<img" in page  # figures made it into the page
        # launch buttons open the committed source notebook, which exists; the download is local
        for url in re.findall(r'href="(https://mybinder\.org/[^"]+|https://colab\.research\.google\.com/[^"]+)"', page):
            assert url.endswith(f"notebooks/{name}.ipynb"), url
            assert (ROOT / "notebooks" / f"{name}.ipynb").is_file()
        assert f'href="../../_sources/book/chapters/{name}.ipynb"' in page
    # nothing changed: the execution cache is used; a missing results file forces a re-run
    monkeypatch.setenv("UALIB_RESULTS", str(results))
    name, out = chapters(ROOT)[0], tiny_book["chapters"]
    assert run_chapter(name, "tiny", root=ROOT, output_dir=out, progress=False, force=False)[1]
    (results / "tiny" / f"{name}.json").unlink()
    assert not run_chapter(name, "tiny", root=ROOT, output_dir=out, progress=False, force=False)[1]


@pytest.mark.slow
def test_foreign_build_agrees_with_the_reference(tiny_book):
    """The chapters executed under a foreign CPU configuration (foreign_numerics: another ATen
    capability, oneDNN ISA, MKL instruction set and thread count) agree with the committed tiny
    reference within compendium/tolerances.yml, verdicts included where they are decisive."""
    report = compare_trees(REFERENCE_ROOT, tiny_book["results"], "tiny")
    assert set(report) == set(chapters(ROOT))
    bad = {name: [str(d) for d in diffs] for name, diffs in report.items() if diffs}
    assert not bad, f"under {tiny_book['numerics']}: " + json.dumps(bad, indent=1)


@pytest.mark.slow
def test_built_html_names_no_cdn(tiny_book):
    """No page or stylesheet of the build refers to a script, style, font or image on another host
    (links to papers, Binder and the repository are fine: a reader follows them, the page does not)."""
    html = tiny_book["html"]
    remote = re.compile(
        r"<(?:script|img|iframe|source|embed)\b[^>]*\bsrc=[\"'](?:https?:)?//"
        r"|<link\b[^>]*\bhref=[\"'](?:https?:)?//"
        r"|url\([\"']?(?:https?:)?//"
        r"|unpkg\.com|cdn\.jsdelivr\.net|cdnjs\.cloudflare\.com|fonts\.googleapis\.com",
        re.I,
    )
    offenders = []
    for path in sorted(html.rglob("*")):
        if path.suffix in (".html", ".css") and not path.is_relative_to(html / "_static" / "mathjax"):
            text = path.read_text(errors="replace")
            offenders += [f"{path.relative_to(html)}: {m.group(0)}" for m in remote.finditer(text)]
    assert offenders == []
    assert (html / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    first = (html / "book" / "chapters" / f"{chapters(ROOT)[0]}.html").read_text()
    assert 'src="../../_static/mathjax/tex-mml-chtml.js' in first


@pytest.mark.slow
def test_every_page_renders_offline_in_chromium(tiny_book, capsys):
    """Every page of the build opens in headless Chromium with no request leaving the machine, shows no
    error, loads its images, typesets its maths and has no broken internal link."""
    exe = _browser()
    html = tiny_book["html"]
    shutil.rmtree(SHOTS, ignore_errors=True)
    report = check_book(html, SHOTS, chromium=exe)
    with capsys.disabled():
        print(f"\n[browser] {report.summary()}")
    assert report.problems == []
    pages = {p.page for p in report.pages}
    assert pages == set(book_pages(html))
    for name in chapters(ROOT):
        page = next(p for p in report.pages if p.page == f"book/chapters/{name}.html")
        assert page.images > 0, page  # every chapter shows figures
        assert page.screenshot is not None and page.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # exercises: 3-5 blocks, every solution hidden until its toggle was clicked (else a problem above),
        # and a screenshot of the first exercise with its opened solution
        assert 3 <= page.exercises <= 5, page
        assert page.exercise_screenshot == SHOTS / f"exercise_{name}.png"
        assert page.exercise_screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        from PIL import Image

        with Image.open(page.screenshot) as shot:  # the whole page, not its first screen
            assert shot.width == 1280 and shot.height > 900, (name, shot.size)
    assert sum(p.maths for p in report.pages) > 0  # MathJax had something to typeset
    assert report.external_requests == []


@pytest.mark.slow
def test_static_explorer_switches_views_offline(tiny_book):
    """The explorer chapter's static explorer (compendium.static_explorer) in the built page: three
    changes of its controls each show another picture and other numbers, with no request leaving the
    page; a screenshot after two changes goes with the others."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from compendium.browser import CHROMIUM_ARGS

    exe = _browser()
    page_path = tiny_book["html"] / "book" / "chapters" / "09_explorer.html"
    assert len(page_path.read_bytes()) < 10_000_000
    requests = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=exe, headless=True, args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900}
        )
        try:
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url) if r.url.startswith("http") else None)
            page.goto(page_path.as_uri(), wait_until="load")
            root = page.locator("#static-explorer")
            root.scroll_into_view_if_needed()

            def seen():
                return (
                    root.get_attribute("data-key"),
                    root.locator("img").get_attribute("src"),
                    root.locator("tbody").inner_text(),
                )

            states = [seen()]
            options = {
                name: root.locator(f'select[name="{name}"] option').evaluate_all("os => os.map(o => o.value)")
                for name in ("method", "posterior", "image")
            }
            assert all(len(v) >= 2 for v in options.values()), options
            for i, name in enumerate(("method", "posterior", "image")):
                current = root.locator(f'select[name="{name}"]').input_value()
                root.locator(f'select[name="{name}"]').select_option(next(o for o in options[name] if o != current))
                states.append(seen())
                if i == 1:
                    SHOTS.mkdir(parents=True, exist_ok=True)
                    root.screenshot(path=str(SHOTS / "explorer_after_two_clicks.png"))
            assert errors == []
        finally:
            context.close()
    for before, after in zip(states, states[1:]):
        assert after[0] != before[0]
        if after[1] is not None:  # an existing combination: another picture and other numbers
            assert after[1].startswith("data:image/png;base64,") and after[1] != before[1]
            assert after[2] and after[2] != before[2]
    assert sum(s[1] is not None and s[2] != "" for s in states[1:]) >= 3
    assert requests == []
    assert (SHOTS / "explorer_after_two_clicks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_pdf_of_the_book(tiny_book):
    """`make pdf`'s printer on the tiny build: one PDF with every page of the table of contents in order,
    at least one PDF page per chapter, its figures embedded and its maths typeset before printing, and
    nothing cut off at the paper's edge."""
    from pypdf import PdfReader

    exe = _browser()
    out = ROOT / "_build" / "pdf" / "tiny.pdf"
    report = build_pdf(tiny_book["html"], out, root=tiny_book["root"], chromium=exe)
    reader = PdfReader(out)
    assert len(reader.pages) == report.page_count
    assert [p["page"] for p in report.pages] == toc_pages(tiny_book["root"])
    starts = [p["first_pdf_page"] for p in report.pages]
    assert starts == sorted(starts) and starts[0] == 0
    outline = [(item.title, reader.get_destination_page_number(item)) for item in reader.outline]
    assert outline == [(p["title"] or p["page"], p["first_pdf_page"]) for p in report.pages]
    for name in chapters(ROOT):
        entry = next(p for p in report.pages if p["page"] == f"book/chapters/{name}.html")
        assert entry["pdf_pages"] >= 1 and entry["images"] > 0, entry
        own = reader.pages[entry["first_pdf_page"] : entry["first_pdf_page"] + entry["pdf_pages"]]
        assert any(page.images for page in own), f"{name}: no image in its PDF pages"  # embedded figures
        first = own[0]
        # the title's first words on the chapter's first page (letters only: ligatures, hyphenation)
        title = re.sub(r"\W", "", " ".join(entry["title"].split()[:3]))
        text = re.sub(r"\W", "", unicodedata.normalize("NFKC", first.extract_text()))
        assert title and title in text, (title, text[:300])
    assert sum(p["maths"] for p in report.pages) > 0
    # typeset maths prints as glyphs, never as its TeX source
    assert not any("\\frac" in page.extract_text() for page in reader.pages)
    # paper cannot scroll: no table, equation or output is wider than an A4 page's text column
    assert [c for p in report.pages for c in p["cut"]] == [], report.summary()


@pytest.mark.slow
def test_pdf_reports_what_paper_cuts_off(tmp_path):
    """The printer's own check: a table wider than the paper's text column is reported with how much it
    loses (once, not again as the cell output holding it); one that fits is not."""
    exe = _browser()
    (tmp_path / "_toc.yml").write_text("root: index\n")
    html = tmp_path / "html"
    html.mkdir()
    cell = "<td style='white-space: nowrap'>{}</td>"
    # overflow visible, as the book's print CSS sets it: the cell output holding the table then overflows too
    table = (
        "<div class='ualib-table' style='overflow-x: visible'><table><tr>"
        + cell.format("x" * 400)
        + "</tr></table></div>"
    )
    wide = f"<div class='cell_output'><div class='output text_html' style='overflow-x: auto'>{table}</div></div>"
    narrow = "<div class='ualib-table'><table><tr>" + cell.format("a short row") + "</tr></table></div>"
    (html / "index.html").write_text(f"<html><body><main><h1>Tables</h1>{narrow}{wide}</main></body></html>")
    report = build_pdf(html, tmp_path / "t.pdf", root=tmp_path, chromium=exe)
    (cut,) = report.pages[0]["cut"]
    assert re.fullmatch(r"table \d+ px too wide: x+", cut), cut
    assert "1 boxes wider than the paper, cut off" in report.summary()


def _png(array) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _plot_png() -> bytes:
    """A white 60 x 80 'plot' with a frame and a diagonal line: what a chapter figure looks like."""
    import numpy as np

    a = np.full((60, 80, 3), 255)
    a[[0, -1], :] = a[:, [0, -1]] = 0
    a[np.arange(60), np.arange(60)] = (0, 90, 200)
    return _png(a)


def test_image_content_problem_tells_blank_from_content():
    """Decoded pixels, compared with a direct count: one colour or (almost) only background is reported."""
    import numpy as np

    from compendium.browser import image_content_problem

    assert image_content_problem(_plot_png()) is None
    assert "blank image: a single colour (255, 255, 255, 255)" in image_content_problem(_png(np.full((40, 40, 3), 255)))
    assert "blank image" in image_content_problem(PIXEL)
    speck = np.full((100, 100, 3), 255)
    speck[5, 5] = 0  # 1 of 10 000 pixels: below 0.1 %
    assert image_content_problem(_png(speck)) == "nearly blank image: 1 of 10000 pixels differ from its background"
    speck[5:9, 5:9] = 0  # 16 pixels: 0.16 %
    assert image_content_problem(_png(speck)) is None
    assert image_content_problem(b"<svg xmlns='http://www.w3.org/2000/svg'></svg>") is None  # not raster: not judged


def _site(root: Path, mathjax: Path) -> Path:
    """A two-page site: one page that renders, one with every defect the browser check looks for."""
    html = root / "html"
    (html / "book" / "img").mkdir(parents=True)
    (html / "_static").mkdir()
    (html / "_static" / "mathjax").symlink_to(mathjax, target_is_directory=True)
    (html / "book" / "img" / "pixel.png").write_bytes(PIXEL)
    (html / "book" / "img" / "plot.png").write_bytes(_plot_png())
    wide = "<span>" + "x" * 400 + "</span>"
    (html / "index.html").write_text('<meta http-equiv="refresh" content="0; url=book/good.html" />')
    head = '<script>window.MathJax = {}</script><script defer src="../_static/mathjax/tex-mml-chtml.js"></script>'
    (html / "book" / "good.html").write_text(
        f"<html><head>{head}</head><body><main><h1 id='top'>A page that renders</h1>"
        "<p>Inline maths <span class='math'>\\(x^2 + 1\\)</span> and an image <img src='img/plot.png'>.</p>"
        "<figure><img src='img/plot.png'><figcaption>A plot with a caption.</figcaption></figure>"
        f"<pre style='overflow-x: auto'>{wide}</pre><div style='overflow-x: auto'><div style='width: 3000px'>{wide}</div></div>"
        "<div class='cell'><div class='cell_output'><img src='img/plot.png'></div></div>"
        "<a href='#top'>up</a> <a href='bad.html#section'>the other page</a> "
        "<a href='https://example.invalid/paper'>a paper (not followed)</a></main></body></html>"
    )
    (html / "book" / "bad.html").write_text(
        "<html><head><script src='https://cdn.example.invalid/lib.js'></script></head><body><main>"
        "<h2 id='section'>A page with every defect</h2>"
        "<p>Maths nobody typesets: <span class='math'>\\(y\\)</span>.</p><img src='img/missing.png'>"
        "<a href='good.html#nowhere'>missing anchor</a> <a href='gone.html'>missing page</a>"
        "<div class='output traceback'><pre>Traceback (most recent call last):\nValueError</pre></div>"
        "<div class='system-message'>Unknown directive</div>"
        "<div class='cell'><div class='cell_input'><pre># NBVAL_CHECK_OUTPUT\nprint(1)</pre></div></div>"
        "<figure><img src='img/pixel.png' width='40' height='40'></figure>"
        "<div style='width: 3000px'>a paragraph wider than any screen</div>"
        "<script>notDefinedAnywhere()</script></main></body></html>"
    )
    (html / "book" / "chapters").mkdir()
    (html / "book" / "chapters" / "ex.html").write_text(
        "<html><body><main><h1>A chapter whose solution shows</h1>"
        "<div class='exercise admonition' id='ex-1'><p class='admonition-title'>Exercise 1</p><p>Do it.</p></div>"
        "<div class='solution admonition' id='sol-1'><p class='admonition-title'>Solution</p><p>Done.</p></div>"
        "</main></body></html>"
    )
    (html / "book" / "chapters" / "none.html").write_text(
        "<html><body><main><h1>A chapter without exercises</h1><p>Only prose here.</p></main></body></html>"
    )
    return html


@pytest.mark.slow
def test_browser_check_finds_each_defect(tmp_path):
    """The check itself: a clean page passes, and each planted defect is reported on its page."""
    exe = _browser()
    html = _site(tmp_path, _mathjax(ROOT))
    report = check_book(html, tmp_path / "shots", chromium=exe)
    by_page = {p.page: p for p in report.pages}
    assert sorted(by_page) == [
        "book/bad.html",
        "book/chapters/ex.html",
        "book/chapters/none.html",
        "book/good.html",
        "index.html",
    ]
    good, bad = by_page["book/good.html"], by_page["book/bad.html"]
    assert good.problems == [] and by_page["index.html"].problems == []
    assert (good.images, good.maths, good.links, good.figures, good.uncaptioned) == (3, 1, 2, 1, 1)
    text = "\n".join(bad.problems)
    for expected in (
        "notebook error / traceback output",
        'text "Traceback (most recent call last)"',
        "Sphinx system message",
        "image did not load: img/missing.png",
        "maths not typeset",
        "MathJax typeset nothing",
        "broken link 'book/good.html#nowhere': no anchor #nowhere",
        "broken link 'book/gone.html': no such file",
        "JavaScript error",
        "the page scrolls sideways by",
        'sticks out of the text column (no scrolling box of its own): div "a paragraph wider',
        "1 rendered cells show NBVAL_CHECK_OUTPUT",
        "figure without a caption: img/pixel.png",
        "blank image: a single colour",
    ):
        assert expected in text, (expected, bad.problems)
    assert by_page["book/chapters/ex.html"].problems == ["solution 'sol-1' is not behind a toggle"]
    assert by_page["book/chapters/none.html"].problems == ["no exercise block on a chapter page"]
    assert by_page["book/good.html"].exercises == 0  # not a chapter page: no exercises required
    assert report.external_requests == ["https://cdn.example.invalid/lib.js"]
    assert any("cdn.example.invalid" in p for p in report.problems)
    assert (tmp_path / "shots" / "good.png").is_file() and (tmp_path / "shots" / "bad.png").is_file()
    assert "images in cell outputs without a figure caption: book/good.html 1" in report.summary()


@pytest.mark.slow
def test_browser_check_reopens_only_what_changed(tmp_path):
    """With ``reuse=True`` a second check of an unchanged build opens no page; a changed image reopens the
    page showing it, a lost anchor the page linking to it, a missing screenshot its page; a page with a
    problem is never reused, and a check without ``reuse`` opens everything."""
    exe = _browser()
    html = _site(tmp_path, _mathjax(ROOT))
    for name in ("book/chapters/ex.html", "book/chapters/none.html"):
        (html / name).unlink()
    second = "<html><body><main><h2 id='section'>A second page</h2><p>Prose, nothing else.</p></main></body></html>"
    (html / "book" / "bad.html").write_text(second)  # good.html links to bad.html#section
    shots = tmp_path / "shots"
    first = check_book(html, shots, chromium=exe, reuse=True)
    assert first.problems == [] and first.reused == 0 and (shots / "browser-check.json").is_file()

    again = check_book(html, shots, chromium=exe, reuse=True)
    assert again.reused == 3 and again.problems == []
    assert [(p.page, p.images, p.maths, p.links, p.figures, p.uncaptioned, p.screenshot) for p in again.pages] == [
        (p.page, p.images, p.maths, p.links, p.figures, p.uncaptioned, p.screenshot) for p in first.pages
    ]
    assert "3 unchanged since their last clean check" in again.summary()
    # Sphinx's second build adds ``?v=<checksum>`` to the links of assets copied late in the first: not a change
    good = html / "book" / "good.html"
    good.write_text(good.read_text().replace('tex-mml-chtml.js"', 'tex-mml-chtml.js?v=cadf963e"'))
    assert "?v=cadf963e" in good.read_text()
    assert check_book(html, shots, chromium=exe, reuse=True).reused == 3

    import numpy as np

    other = np.full((60, 80, 3), 255)
    other[10:50, 10:70] = (200, 30, 30)
    (html / "book" / "img" / "plot.png").write_bytes(_png(other))
    assert check_book(html, shots, chromium=exe, reuse=True).reused == 2  # good.html shows the plot

    (html / "book" / "bad.html").write_text(second.replace(" id='section'", ""))
    lost = check_book(html, shots, chromium=exe, reuse=True)
    assert lost.reused == 1  # bad.html changed, good.html links to its anchor; index.html only to good.html
    assert any("no anchor #section" in p for p in lost.problems)
    assert check_book(html, shots, chromium=exe, reuse=True).reused == 2  # good.html has a problem: reopened

    (html / "book" / "bad.html").write_text(second)
    check_book(html, shots, chromium=exe, reuse=True)
    (shots / "good.png").unlink()
    assert check_book(html, shots, chromium=exe, reuse=True).reused == 2 and (shots / "good.png").is_file()
    assert check_book(html, shots, chromium=exe).reused == 0
