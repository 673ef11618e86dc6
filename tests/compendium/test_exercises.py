"""Every chapter teaches: learning objectives and its running time after the title, and 3-5 exercises with
hidden solutions at the end (sphinx-exercise directives), the code solutions checked by an assert; and the
running time is read from the committed results' metadata, never typed by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from compendium.results import format_duration, running_time_line, running_times, training_times

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# a directive's opening fence: ```{name} argument
DIRECTIVE = re.compile(r"^```\{(exercise|solution|solution-start|solution-end)\}[ \t]*(\S*)[^\n]*$", re.M)


def _cells(path: Path) -> list[dict]:
    """The notebook's cells after its install cell (the hidden first cell of compendium.book.install_cell_source)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    if cells and "remove-cell" in cells[0]["metadata"].get("tags", []) and "import ualib" in _text(cells[0]):
        cells = cells[1:]
    return cells


def _text(cell: dict) -> str:
    return "".join(cell["source"])


def _options(text: str, start: int) -> dict[str, str]:
    """The ``:key: value`` lines right after the directive line that starts at ``start``."""
    out = {}
    for line in text[start:].splitlines()[1:]:
        m = re.match(r"^:(\w[\w-]*):\s*(.*)$", line)
        if not m:
            break
        out[m.group(1)] = m.group(2).strip()
    return out


def _directives(cells: list[dict]) -> list[tuple[int, str, str, dict]]:
    """``(cell index, directive, argument, options)`` of every sphinx-exercise directive, in order."""
    found = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        text = _text(cell)
        for m in DIRECTIVE.finditer(text):
            found.append((i, m.group(1), m.group(2), _options(text, m.start())))
    return found


def test_there_are_nine_chapters():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 10)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_opens_with_objectives_and_running_time(path):
    cells = _cells(path)
    assert cells[0]["cell_type"] == "markdown" and _text(cells[0]).startswith("# ")
    objectives = _text(cells[1])
    assert cells[1]["cell_type"] == "markdown" and objectives.startswith("## Learning objectives")
    bullets = re.findall(r"^\* \S", objectives, re.M)
    assert 2 <= len(bullets) <= 4, bullets
    timing = cells[2]
    assert timing["cell_type"] == "code" and "remove-input" in timing["metadata"].get("tags", [])
    assert f'show_running_time("{path.stem}")' in _text(timing)
    assert not re.search(r"\d+\s*(s|min)\b", _text(timing))  # computed, not typed in


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_ends_with_exercises_and_hidden_solutions(path):
    cells = _cells(path)
    found = _directives(cells)
    exercises = [(i, arg, opts) for i, name, arg, opts in found if name == "exercise"]
    assert 3 <= len(exercises) <= 5, [e[2].get("label") for e in exercises]
    headings = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and _text(c).startswith("## Exercises")]
    assert len(headings) == 1 and all(i > headings[0] for i, _, _ in exercises)
    # the exercises close the chapter: every code cell after the heading belongs to a gated solution
    gated = set()
    starts = [i for i, name, _, _ in found if name == "solution-start"]
    ends = [i for i, name, _, _ in found if name == "solution-end"]
    assert len(starts) == len(ends)
    for a, b in zip(starts, ends):
        assert a < b
        gated |= set(range(a + 1, b))
    after = [i for i, c in enumerate(cells) if i > headings[0] and c["cell_type"] == "code"]
    assert set(after) <= gated, [i for i in after if i not in gated]
    labels = [opts.get("label") for _, _, opts in exercises]
    assert all(labels) and len(set(labels)) == len(labels), labels
    assert all(label.startswith(f"ex-{path.name[:2]}-") for label in labels)  # unique across the book
    kinds = {"code": 0, "text": 0}
    names = found
    for k, (_, name, _arg, opts) in enumerate(names):
        if name != "exercise":
            continue
        # the next directive is this exercise's solution, hidden behind a toggle
        j, sol, target, sol_opts = names[k + 1]
        assert sol in ("solution", "solution-start") and target == opts["label"], (opts["label"], sol, target)
        assert "dropdown" in sol_opts.get("class", "").split(), f"{target}: solution not behind a toggle"
        if sol == "solution-start":
            end, close, _, _ = names[k + 2]
            assert close == "solution-end", target
            code = [c for c in cells[j + 1 : end] if c["cell_type"] == "code"]
            assert code and any(re.search(r"^\s*assert\b", _text(c), re.M) for c in code), target
            assert all(not c.get("outputs") and "remove-cell" not in c["metadata"].get("tags", []) for c in code)
            kinds["code"] += 1
        else:
            kinds["text"] += 1
    assert kinds["code"] >= 1 and kinds["text"] >= 1, kinds  # mixed kinds


def test_every_cited_key_is_in_the_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"^@\w+\{([^,]+),", bib, re.M))
    for path in NOTEBOOKS:
        for cell in _cells(path):
            if cell["cell_type"] == "markdown" and DIRECTIVE.search(_text(cell)):
                for group in re.findall(r"\{cite\}`([^`]+)`", _text(cell)):
                    assert set(group.split(",")) <= keys, (path.name, group)


def _write(root: Path, parts: tuple[str, ...], chapter: str, wall, training: dict | None = None) -> None:
    folder = root.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"commit": "abc", "device": "cpu"}
    if wall is not None:
        meta["wall_time_s"] = wall
    if training is not None:
        meta["training"] = training
    (folder / f"{chapter}.json").write_text(json.dumps({"chapter": chapter, "metadata": meta}))


def test_running_times_read_the_committed_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("UALIB_RESULTS", str(tmp_path / "elsewhere"))  # a scratch results root is not read
    _write(tmp_path, ("tests", "reference", "tiny"), "99_x", 21.7)
    _write(tmp_path, ("results", "cpu"), "99_x", 4321.0)
    _write(tmp_path, ("results", "gpu"), "98_y", 10.0)  # another chapter's
    assert running_times("99_x", tmp_path) == {"tiny": 21.7, "cpu": 4321.0, "gpu": None}
    line = running_time_line("99_x", tmp_path)
    assert "`tiny` 22 s" in line and "`cpu` 1 h 12 min" in line and "`gpu` not yet run" in line
    _write(tmp_path, ("results", "gpu"), "99_x", None)  # a file without a recorded time
    assert running_times("99_x", tmp_path)["gpu"] is None
    assert training_times("99_x", tmp_path) == {"tiny": None, "cpu": None, "gpu": None}  # predates the record
    _write(tmp_path, ("results", "cpu"), "99_x", 4321.0, training={"train_s": 1500.0, "trained": 9})
    assert training_times("99_x", tmp_path)["cpu"] == 1500.0
    assert "`cpu` 1 h 12 min (training 25 min 00 s)" in running_time_line("99_x", tmp_path)


def test_running_times_of_the_book_match_its_results_files():
    for path in NOTEBOOKS:
        times = running_times(path.stem)
        cpu = ROOT / "results" / "cpu" / f"{path.stem}.json"
        if cpu.is_file():
            assert times["cpu"] == json.loads(cpu.read_text())["metadata"]["wall_time_s"]
        else:
            assert times["cpu"] is None
        assert (times["gpu"] is None) == (not (ROOT / "results" / "gpu" / f"{path.stem}.json").is_file())


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0.4, "0 s"),
        (42.2, "42 s"),
        (59.6, "1 min 00 s"),
        (73.1, "1 min 13 s"),
        (3599, "59 min 59 s"),
        (3725, "1 h 02 min"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
