"""The book's generated pages: the verdicts page read from recorded claims tables."""
import json

import nbformat
import pandas as pd

from dfnb import book
from dfnb.stats import CLAIM_COLUMNS


def test_verdicts_page_counts_lists_and_never_drops_a_chapter(tmp_path, monkeypatch):
    monkeypatch.setenv("DFNB_ROOT", str(tmp_path))
    (tmp_path / "chapters").mkdir()
    for stem, title in (("01_toy", "# 01 · Toy | one"), ("02_none", "no heading")):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(title)]
        nbformat.write(nb, tmp_path / "chapters" / f"{stem}.ipynb")
    run = tmp_path / "results" / "default" / "01_toy"
    (run / "tables").mkdir(parents=True)
    nan = float("nan")
    rows = [("A beats B", "T1", 2.0, 1.5, 0.5, 2.5, 3, "reproduced", "ffpp-syn", "AUC"),
            ("C beats D", "T1", 1.0, -1.0, -2.0, -0.1, 3, "not reproduced", "celebdf-syn", "AUC"),
            ("our E beats F", "-", nan, 0.3, nan, nan, 1, "inconclusive", "ffpp-syn", "IoU"),
            ("G beats H (not run: G not trained)", "T2", nan, nan, nan, nan, 0, "inconclusive", "-", "-")]
    pd.DataFrame(rows, columns=CLAIM_COLUMNS).to_csv(run / "tables" / "claims.csv", index=False)
    (run / "manifest.json").write_text(json.dumps({"code": {"sha": "abcdef1234"}}))
    page = book.verdicts_page("default", ["01_toy", "02_none"])
    assert "| 01 · Toy \\| one | 1 | 1 | 1 | 1 | `abcdef1` |" in page  # a pipe in a title is escaped
    assert "| 02_none | - | - | - | - | no claims table |" in page
    assert "| A beats B | +2.00 | +1.50 [+0.50, +2.50] | 3 | reproduced | ffpp-syn |" in page
    assert "| our E beats F | - | +0.30 | 1 | inconclusive | ffpp-syn |" in page  # one seed: no interval
    assert "| G beats H (not run: G not trained) | - | - | 0 | not run | - |" in page
    assert "\n## 01 · Toy | one\n" in page and "## 02_none" not in page
