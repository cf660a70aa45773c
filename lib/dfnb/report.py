"""What a chapter shows of its results: figures with intervals and sentences from small templates.

- :func:`bar_chart_with_ci`  horizontal bars of means with 95 % interval whiskers (and a reference line)
- :func:`mean_ci_table`      ``mean [low, high]`` strings per group and metric, over seeds
- :func:`claims_markdown`    a one-line verdict summary of a claims table, e.g. "2 reproduced, 1 inconclusive"
- :func:`verdict_sentences`  the claims table in words, grouped by verdict
- :func:`equation_table`     a chapter's equation -> function -> test table (``dfnb.papers.equations``)
- :func:`seed_summary`       mean and 95 % t-interval over seeds, per group
- :func:`beside_paper`       this run's numbers beside the paper's, both data sets named
- :func:`roc_figure`         ROC curves with AUC in the legend
- :func:`training_curves`    loss and a validation metric per epoch, one figure for several models
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["slug", "bar_chart_with_ci", "claims_markdown", "verdict_sentences", "equation_table", "seed_summary", "mean_ci_table", "beside_paper", "roc_figure",
           "training_curves"]


def slug(name: str) -> str:
    """A data set's name as part of a file name: ``"ffpp-syn"`` -> ``"ffpp_syn"``,
    ``"ffpp (real)"`` -> ``"ffpp_real"`` (lower case, runs of other characters -> one ``_``)."""
    import re

    out = re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")
    if not out:
        raise ValueError(f"slug: {name!r} has no letter or digit")
    return out


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
    if ref_label or paper is not None:  # beside the bars, never over them
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def claims_markdown(claims, side: str = "the paper's") -> str:
    """``"**Claims: 2 reproduced, 1 inconclusive, 1 not run** (of 4; ...)"`` from a claims table
    (``dfnb.stats``): a row with no seed (:func:`dfnb.stats.not_run_row`) counts as *not run*, not by its
    verdict.  ``side``: whose direction a reproduced effect takes (``"the hypothesis's"`` for a chapter's
    own questions)."""
    from dfnb.stats import VERDICTS

    ran = claims["n_seeds"] > 0
    counts = claims.loc[ran, "verdict"].value_counts()
    parts = [f"{int(counts[v])} {v}" for v in VERDICTS if v in counts]
    if (~ran).any():
        parts.append(f"{int((~ran).sum())} not run")
    return (f"**Claims: {', '.join(parts)}** (of {len(claims)}; a claim is *reproduced* when the 95 % interval "
            f"of our paired effect excludes 0 on {side} side, *not reproduced* when it excludes 0 on the "
            "other side, *inconclusive* otherwise or with fewer than 3 seeds, *not run* when this run did not "
            "train what it needs: its row says why).")


def verdict_sentences(claims) -> str:
    """The claims table in words: which claims were reproduced, which not (with our effect and interval
    beside the paper's), which are inconclusive, which were not run; one sentence per group, groups
    that are empty left out."""
    run = claims[claims["n_seeds"] > 0]
    not_run = claims[claims["n_seeds"] == 0]

    def named(df):
        return "; ".join(df["claim"])

    out = []
    for v, head in (("reproduced", "Reproduced"), ("not reproduced", "Not reproduced")):
        df = run[run["verdict"] == v]
        if len(df):
            out.append(f"{head} ({len(df)}): " + "; ".join(
                f"{r.claim} (ours {r.our_effect:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
                + (f", paper {r.paper_effect:+.2f})" if np.isfinite(r.paper_effect) else ")")
                for r in df.itertuples()) + ".")
    df = run[run["verdict"] == "inconclusive"]
    if len(df):
        out.append(f"Inconclusive ({len(df)}: the interval over seeds contains 0, or fewer than 3 seeds): {named(df)}.")
    if len(not_run):
        out.append(f"Not run in this profile ({len(not_run)}): "
                   + "; ".join(c.split(" (not run:")[0] for c in not_run["claim"]) + ".")
    return " ".join(out)


def equation_table(key: str) -> str:
    """Markdown table of :func:`dfnb.papers.equations.equations` ``(key)``: equation (LaTeX), function, test.

    The function and test are named in full (``dfnb.metrics.iinc``, ``tests/test_metrics.py::...``),
    so a reader can open the source; the book does not ship the library's source pages, so they are
    not links.
    """
    from dfnb.papers.equations import equations

    rows = ["| eq. | equation | implemented by | checked by | note |", "|---|---|---|---|---|"]
    for e in equations(key):
        if "|" in e.note:
            raise ValueError(f"equation {key} {e.number}: a note may not contain '|' (it splits the table)")
        rows.append(f"| {e.number} | ${_no_pipes(e.latex)}$ | `{e.function}` | `{e.test}` | {e.note} |")
    return "\n".join(rows)


def _no_pipes(latex: str) -> str:
    r"""``|x|`` as ``\lvert x\rvert``-free ``\vert`` so that a Markdown table cell is not split."""
    return latex.replace("|", r"\vert ")


def seed_summary(per_seed, by: str | Sequence[str], value: str, level: float = 0.95):
    """Mean over seeds with a Student-t interval, per group: a DataFrame indexed by ``by`` with columns
    ``mean, low, high, n_seeds`` (``dfnb.stats.t_interval``; NaN bounds for a single seed).

    per_seed: long DataFrame, one row per (group, seed), with the column ``value``.
    """
    import pandas as pd

    from dfnb.stats import t_interval

    rows = {}
    for key, g in per_seed.groupby(by, sort=False):
        iv = t_interval(g[value].to_numpy(float), level)
        rows[key] = {"mean": iv.mean, "low": iv.low, "high": iv.high, "n_seeds": iv.n}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.names = [by] if isinstance(by, str) else list(by)
    return out


def mean_ci_table(per_seed, by: str, columns: Sequence[str], level: float = 0.95):
    """``mean [low, high]`` strings (points, 2 decimals) per ``by`` group for each of ``columns``: the mean
    over training seeds with its t-interval at ``level`` (:func:`seed_summary`; no interval for one seed)."""
    import pandas as pd

    def cell(r) -> str:
        return f"{r['mean']:.2f}" if r["n_seeds"] < 2 else f"{r['mean']:.2f} [{r['low']:.2f}, {r['high']:.2f}]"

    return pd.DataFrame({c: seed_summary(per_seed, by, c, level).apply(cell, axis=1) for c in columns})


def beside_paper(ours, paper, *, dataset: str, paper_dataset: str, digits: int = 2):
    """This run's numbers beside the paper's, with both data sets named in the column headers.

    ours: :func:`seed_summary` output (``mean, low, high, n_seeds``); paper: a Series of the paper's
    values on the same index (missing entries: "-").  Returns a DataFrame of strings: ``this run,
    <dataset>: mean [low, high]`` ("mean (1 seed)" without an interval), ``seeds``, ``paper,
    <paper_dataset>``.
    """
    import pandas as pd

    def fmt(r):
        if not np.isfinite(r["low"]):
            return f"{r['mean']:.{digits}f} (1 seed)" if r["n_seeds"] == 1 else f"{r['mean']:.{digits}f}"
        return f"{r['mean']:.{digits}f} [{r['low']:.{digits}f}, {r['high']:.{digits}f}]"

    p = pd.Series(paper).reindex(ours.index)
    return pd.DataFrame({
        f"this run, {dataset}": [fmt(r) for _, r in ours.iterrows()],
        "seeds": ours["n_seeds"].astype(int).to_numpy(),
        f"paper, {paper_dataset}": [f"{v:.{digits}f}" if pd.notna(v) else "-" for v in p],
    }, index=ours.index)


def roc_curves(exps: Mapping[str, object], test_sets: Mapping[str, object], in_domain: str, *,
               device: str = "cpu") -> dict:
    """``{label: (labels, probs)}`` for :func:`dfnb.report.roc_figure`: each experiment of
    ``{label: Experiment}`` on the in-domain test set and on the cross-domain sets pooled."""
    out = {}
    for v, exp in exps.items():
        evals = {t: exp.evaluate(ds, device=device) for t, ds in test_sets.items()}
        out[f"{v}, {in_domain}"] = (evals[in_domain]["labels"], evals[in_domain]["probs"])
        cross = [t for t in evals if t != in_domain]
        if cross:
            out[f"{v}, cross-domain pooled"] = (np.concatenate([evals[t]["labels"] for t in cross]),
                                                np.concatenate([evals[t]["probs"] for t in cross]))
    return out


def roc_figure(curves, *, title: str | None = None):
    """ROC curves, one per entry of ``curves`` = ``{label: (y_true, y_prob)}``, AUC in the legend.

    The curve is :func:`sklearn.metrics.roc_curve`'s; the legend AUC is :func:`dfnb.metrics.auc`.
    Returns the Figure (square, fonts >= 9 pt, the chance diagonal dashed).
    """
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from dfnb.metrics import auc

    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for label, (y, p) in curves.items():
        fpr, tpr, _ = roc_curve(np.asarray(y), np.asarray(p))
        ax.plot(fpr, tpr, lw=1.5, label=f"{label} (AUC {auc(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01))
    ax.set_xlabel("false positive rate", fontsize=9)
    ax.set_ylabel("true positive rate", fontsize=9)
    ax.tick_params(labelsize=9)
    ax.legend(fontsize=9, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def training_curves(histories, metric: str = "val_frame_auc", *, title: str | None = None):
    """One figure of training curves instead of per-epoch logs: ``histories = {label: History}``;
    left the training loss per epoch (``train_loss``, else the sum of the ``train_*`` parts), right
    ``metric`` (a :meth:`History.to_frame` column) per epoch, the kept epoch circled."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
    for label, h in histories.items():
        df = h.to_frame()
        parts = [c for c in df.columns if c.startswith("train_")]
        loss = df["train_loss"] if "train_loss" in df else df[parts].sum(axis=1)
        axes[0].plot(df["epoch"], loss, marker=".", label=label)
        if metric not in df:
            raise KeyError(f"training_curves: no column {metric!r} in {label!r}'s history; has {list(df.columns)}")
        line, = axes[1].plot(df["epoch"], df[metric], marker=".", label=label)
        best = df[df["epoch"] == h.best_epoch]
        axes[1].plot(best["epoch"], best[metric], "o", mfc="none", ms=9, color=line.get_color())
    for ax, name in zip(axes, ("training loss", metric.replace("_", " "))):
        ax.set_xlabel("epoch", fontsize=9)
        ax.set_ylabel(name, fontsize=9)
        ax.tick_params(labelsize=9)
    axes[1].legend(fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
