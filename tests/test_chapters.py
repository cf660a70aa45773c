"""The chapters read like lectures: short code cells, no progress-bar gaps, every computed table shown.

Source rules (``chapters/*.ipynb``): every code cell <= 15 lines (the tagged ``parameters`` cell is the
chapter's interface and may be longer) and every line <= 100 characters.  Executed rules (the recorded
``results/default/<chapter>/<chapter>.ipynb``): no tqdm output, and every ``tables/*.csv`` of the run is
displayed (``Run.table`` shows each under a caption naming its file).
"""
import json
import re
from pathlib import Path

import pytest

from dfnb import runner

MAX_LINES, MAX_WIDTH = 15, 100
CHAPTERS = runner.list_chapters()
_TQDM = re.compile(r"\d+%\|.*\|\s*\d+/\d+")


def _cells(path: Path):
    return json.loads(path.read_text())["cells"]


def _text(out) -> str:
    if "text" in out:
        return "".join(out["text"])
    return "".join("".join(v) if isinstance(v, list) else str(v) for v in out.get("data", {}).values())


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_code_cells_are_short_and_narrow(chapter):
    bad = []
    for i, c in enumerate(_cells(runner.find_chapter(chapter))):
        if c["cell_type"] != "code":
            continue
        lines = "".join(c["source"]).splitlines()
        if len(lines) > MAX_LINES and "parameters" not in c.get("metadata", {}).get("tags", []):
            bad.append(f"cell {i}: {len(lines)} lines")
        bad += [f"cell {i}: a line of {len(l)} characters" for l in lines if len(l) > MAX_WIDTH]
    assert not bad, f"{chapter}: " + "; ".join(bad)


def _recorded(chapter):
    nb = runner.repo_root() / "results" / "default" / chapter / f"{chapter}.ipynb"
    if not nb.exists():
        pytest.skip(f"{chapter} has no recorded default run")
    return nb


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_recorded_run_has_no_progress_bars(chapter):
    nb = _recorded(chapter)
    bars = [i for i, c in enumerate(_cells(nb)) for o in c.get("outputs", []) if _TQDM.search(_text(o))]
    assert not bars, f"{chapter}: tqdm output in cells {sorted(set(bars))}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_recorded_run_displays_every_table_it_writes(chapter):
    nb = _recorded(chapter)
    shown = "\n".join(_text(o) for c in _cells(nb) for o in c.get("outputs", []))
    tables = sorted((nb.parent / "tables").glob("*.csv"))
    missing = [t.name for t in tables if f"tables/{t.name}" not in shown]
    assert not missing, f"{chapter} writes but never shows {missing}"
