"""What a chapter shows of its results: figures with intervals and sentences from small templates.

- :func:`bar_chart_with_ci`  horizontal bars of means with 95 % interval whiskers (and a reference line)
- :func:`claims_markdown`    a one-line verdict summary of a claims table, e.g. "2 reproduced, 1 inconclusive"
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["bar_chart_with_ci", "claims_markdown"]


def bar_chart_with_ci(labels: Sequence[str], mean: Sequence[float], low: Sequence[float], high: Sequence[float], *,
                      xlabel: str, title: str | None = None, ref: float | None = None, ref_label: str | None = None,
                      paper: Sequence[float] | None = None, colors: Sequence[str] | None = None):
    """A horizontal bar per label: ``mean`` with a whisker from ``low`` to ``high`` (NaN: no whisker).

    ref: a vertical reference line (e.g. the in-domain AUC or a threshold), labelled ``ref_label``;
    paper: the paper's value per label (NaN where it has none), drawn as a black diamond.
    Returns the matplotlib Figure (fonts >= 9 pt).
    """
    import matplotlib.pyplot as plt

    labels = list(labels)
    m, lo, hi = (np.asarray(v, dtype=float) for v in (mean, low, high))
    if not (len(labels) == len(m) == len(lo) == len(hi)):
        raise ValueError(f"labels, mean, low, high differ in length: {len(labels)}, {len(m)}, {len(lo)}, {len(hi)}")
    y = np.arange(len(labels))[::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.42 * len(labels) + 1.1))
    ax.barh(y, m, color=list(colors) if colors is not None else "#4477aa", alpha=0.85)
    err = np.vstack([m - lo, hi - m])
    ok = np.isfinite(err).all(0)
    ax.errorbar(m[ok], y[ok], xerr=err[:, ok], fmt="none", ecolor="black", capsize=3, lw=1)
    if paper is not None:
        p = np.asarray(paper, dtype=float)
        sel = np.isfinite(p)
        ax.plot(p[sel], y[sel], "D", color="black", ms=5, label="paper")
    if ref is not None:
        ax.axvline(ref, color="#cc3311", ls="--", lw=1, label=ref_label)
    ax.set_yticks(y, labels, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(axis="x", labelsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    if ref_label or paper is not None:
        ax.legend(fontsize=9, loc="lower right")
    fig.tight_layout()
    return fig


def claims_markdown(claims) -> str:
    """``"**Claims: 2 reproduced, 1 inconclusive** (of 3; ...)"`` from a claims table (``dfnb.stats``)."""
    from dfnb.stats import VERDICTS

    counts = claims["verdict"].value_counts()
    parts = [f"{int(counts[v])} {v}" for v in VERDICTS if v in counts]
    return (f"**Claims: {', '.join(parts)}** (of {len(claims)}; a claim is *reproduced* when the 95 % interval "
            "of our paired effect excludes 0 on the paper's side, *not reproduced* when it excludes 0 on the "
            "other side, *inconclusive* otherwise or with fewer than 3 seeds).")
