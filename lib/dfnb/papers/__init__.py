"""The three papers' tables, transcribed once, as tidy data.

Every numeric table of DADF, PRLE and FoCus that is readable in the text copies under
``shared/papers/`` is stored as one long CSV in this folder (one row per printed cell)::

    paper, table, method, train_set, test_set, setting, metric, value, unit, higher_is_better, note

``value`` is the number as printed (never corrected); ``note`` records anything odd about the cell
(garbled extraction, a printed average or difference that does not match the other cells, ...).
``index.csv`` lists every table, including the ones whose numbers are not in the text copies
(``file`` empty, reason in ``notes``).

>>> from dfnb import papers
>>> papers.paper_value("dadf", 1, method="DADF", metric="PBCA", test_set="FF++ (HQ)")
96.64
>>> papers.pivot("prle", "II").attrs["source"]
'PRLE (Cheng et al.), Table II — paper’s numbers'

Table keys are forgiving: ``1``, ``"1"``, ``"I"``, ``"table1"``, ``"Table I"`` and ``"tab. 1"`` all name the
first table of any paper; ``"fig6"`` / ``"Fig. 6"`` a figure whose numbers the text states.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

__all__ = ["PAPERS", "SHORT", "COLUMNS", "TableNotTranscribed", "list_tables", "load_table",
           "paper_value", "pivot"]

_DIR = Path(__file__).resolve().parent

PAPERS = {
    "dadf": ("Y. Lai, Z. Luo, Z. Yu. Detect Any Deepfakes: Segment Anything Meets Face Forgery "
             "Detection and Localization. Chinese Conference on Biometric Recognition (CCBR), 2023."),
    "prle": ("H. Cheng, Y. Guo, T. Wang, L. Nie, M. Kankanhalli. Towards Generalizable Deepfake "
             "Detection by Primary Region Regularization (venue and year not given in the text copy)."),
    "focus": ("Learning to Discover Forgery Cues for Face Forgery Detection. IEEE Transactions on "
              "Information Forensics and Security (TIFS), 2024 (authors not given in the text copy)."),
}
SHORT = {
    "dadf": "DADF (Lai et al., CCBR 2023)",
    "prle": "PRLE (Cheng et al.)",
    "focus": "FoCus (IEEE TIFS 2024)",
}
COLUMNS = ["paper", "table", "method", "train_set", "test_set", "setting", "metric", "value", "unit",
           "higher_is_better", "note"]
_KEYS = ["method", "train_set", "test_set", "setting", "metric"]
_ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]
_ROMAN_STYLE = {"dadf": False, "prle": True, "focus": True}


class TableNotTranscribed(KeyError):
    """The table exists in the paper but its numbers are not readable in the text copy."""


def _paper(paper: str) -> str:
    key = str(paper).strip().lower()
    if key not in PAPERS:
        raise KeyError(f"unknown paper {paper!r}; papers: {sorted(PAPERS)}")
    return key


def _table(paper: str, table) -> str:
    """Canonical table key: '1'..'6' for DADF, 'I'..'VIII' for PRLE/FoCus, 'Fig<n>' for figures."""
    raw = str(table).strip()
    s = raw.lower().replace(" ", "").replace("_", "").replace("-", "")
    m = re.fullmatch(r"(?:fig(?:ure)?\.?)(\d+)", s)
    if m:
        return f"Fig{int(m.group(1))}"
    s = re.sub(r"^(?:table|tab\.?)", "", s)
    if s.isdigit():
        n = int(s)
    elif s.upper() in _ROMAN:
        n = _ROMAN.index(s.upper()) + 1
    else:
        return raw  # not a table number: reported as unknown by the caller
    if n < 1 or n > len(_ROMAN):
        return raw
    return _ROMAN[n - 1] if _ROMAN_STYLE[paper] else str(n)


def list_tables() -> pd.DataFrame:
    """The index: one row per table (or figure) of the three papers.

    Columns: paper, table, file, caption, source_file, section, notes. ``file`` is empty where the
    text copy holds no readable numbers (the reason is in ``notes``).
    """
    return pd.read_csv(_DIR / "index.csv", dtype=str, keep_default_na=False)


def _read(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(df.columns) != COLUMNS:
        raise ValueError(f"{path.name}: columns {list(df.columns)} != {COLUMNS}")
    df["value"] = df["value"].astype(float)
    df["higher_is_better"] = df["higher_is_better"].map(
        {"True": True, "False": False, "": pd.NA}).astype("boolean")
    return df


def load_table(paper: str, table) -> pd.DataFrame:
    """One table as a long DataFrame (one row per printed cell), in the paper's row order.

    ``paper`` in {"dadf", "prle", "focus"} (any case); ``table`` like ``1``, ``"I"``, ``"table1"``,
    ``"Fig. 6"``. Raises ``KeyError`` listing the available tables for an unknown one, and
    ``TableNotTranscribed`` (a ``KeyError``) for a table whose numbers are not in the text copy.
    """
    p = _paper(paper)
    t = _table(p, table)
    idx = list_tables()
    rows = idx[(idx.paper == p) & (idx.table == t)]
    if rows.empty:
        have = idx[idx.paper == p]
        avail = ", ".join(have.table[have.file != ""])
        raise KeyError(f"{SHORT[p]} has no table {table!r}; transcribed tables: {avail}")
    row = rows.iloc[0]
    if not row.file:
        raise TableNotTranscribed(f"{SHORT[p]} {_label(t)}: {row.notes}")
    df = _read(_DIR / row.file)
    df.attrs["source"] = _source(p, t)
    return df


def _label(t: str) -> str:
    return f"Fig. {t[3:]}" if t.startswith("Fig") else f"Table {t}"


def _source(p: str, t: str) -> str:
    extra = " (numbers stated in the text)" if t.startswith("Fig") else ""
    return f"{SHORT[p]}, {_label(t)}{extra} — paper’s numbers"


def paper_value(paper: str, table, *, method: str, metric: str, test_set: str | None = None,
                setting: str | None = None, train_set: str | None = None) -> float:
    """The single printed number selected by the arguments; raises unless exactly one row matches.

    A selection matching nothing raises ``KeyError`` (listing the values that exist); one matching
    several rows raises ``ValueError`` naming the columns that still differ.
    """
    df = load_table(paper, table)
    sel = df
    for col, want in (("method", method), ("metric", metric), ("test_set", test_set),
                      ("setting", setting), ("train_set", train_set)):
        if want is None:
            continue
        nxt = sel[sel[col] == want]
        if nxt.empty:
            raise KeyError(f"{df.attrs['source']}: no row with {col}={want!r} among the selection; "
                           f"{col} values there: {sorted(set(sel[col]))}")
        sel = nxt
    if len(sel) != 1:
        differ = [c for c in _KEYS if sel[c].nunique() > 1]
        raise ValueError(f"{df.attrs['source']}: {len(sel)} rows match; narrow the selection by "
                         f"{differ}")
    return float(sel["value"].iloc[0])


def pivot(paper: str, table, index="method", columns=("test_set", "metric")) -> pd.DataFrame:
    """A wide, display-ready view of one table, rows and columns in the paper's order.

    Where ``index`` + ``columns`` do not single out every cell, the other key columns that vary
    (train_set, setting, ...) are appended to ``index`` as needed, so that no cell is dropped or
    averaged. ``attrs["source"]`` names the
    paper and table, e.g. "DADF (Lai et al., CCBR 2023), Table 1 — paper’s numbers".
    """
    df = load_table(paper, table)
    index = [index] if isinstance(index, str) else list(index)
    columns = [columns] if isinstance(columns, str) else list(columns)
    for c in index + columns:
        if c not in _KEYS:
            raise ValueError(f"pivot: {c!r} is not one of {_KEYS}")
    for c in _KEYS:  # add the fewest key columns needed to make every cell addressable
        if not df.duplicated(index + columns).any():
            break
        if c not in index + columns and df[c].nunique() > 1:
            index.append(c)
    row_order = list(dict.fromkeys(map(tuple, df[index].to_numpy())))
    col_order = list(dict.fromkeys(map(tuple, df[columns].to_numpy())))
    wide = df.set_index(index + columns)["value"].unstack(columns)
    wide = wide.reindex(index=pd.MultiIndex.from_tuples(row_order, names=index) if len(index) > 1
                        else pd.Index([r[0] for r in row_order], name=index[0]),
                        columns=pd.MultiIndex.from_tuples(col_order, names=columns) if len(columns) > 1
                        else pd.Index([c[0] for c in col_order], name=columns[0]))
    wide.attrs["source"] = df.attrs["source"]
    return wide
