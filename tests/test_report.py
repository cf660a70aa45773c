"""dfnb.report: summaries over seeds, side-by-side with the paper, figures."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dfnb import report
from dfnb.engine import History


def _per_seed():
    return pd.DataFrame({"model": ["a", "a", "a", "b"], "seed": [0, 1, 2, 0], "auc": [90.0, 92.0, 94.0, 80.0]})


def test_seed_summary_is_the_t_interval_per_group():
    s = report.seed_summary(_per_seed(), "model", "auc")
    lo, hi = stats.t.interval(0.95, 2, loc=92.0, scale=stats.sem([90.0, 92.0, 94.0]))
    assert s.loc["a", "mean"] == 92.0 and np.isclose(s.loc["a", "low"], lo) and np.isclose(s.loc["a", "high"], hi)
    assert s.loc["b", "n_seeds"] == 1 and np.isnan(s.loc["b", "low"]) and list(s.index) == ["a", "b"]


def test_beside_paper_names_both_data_sets_and_marks_one_seed():
    s = report.seed_summary(_per_seed(), "model", "auc")
    t = report.beside_paper(s, pd.Series({"a": 97.5}), dataset="ffpp-syn test", paper_dataset="FF++ (HQ)")
    assert list(t.columns) == ["this run, ffpp-syn test", "seeds", "paper, FF++ (HQ)"]
    assert t.loc["a", "this run, ffpp-syn test"] == f"92.00 [{s.loc['a', 'low']:.2f}, {s.loc['a', 'high']:.2f}]"
    assert t.loc["b", "this run, ffpp-syn test"] == "80.00 (1 seed)"
    assert t.loc["a", "paper, FF++ (HQ)"] == "97.50" and t.loc["b", "paper, FF++ (HQ)"] == "-"


def test_roc_figure_legend_carries_each_auc():
    y = np.array([0, 0, 1, 1])
    fig = report.roc_figure({"perfect": (y, [0.1, 0.2, 0.8, 0.9]), "inverted": (y, [0.9, 0.8, 0.2, 0.1])})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["perfect (AUC 1.000)", "inverted (AUC 0.000)"]


def test_training_curves_plots_each_history_and_circles_the_kept_epoch():
    h = History(epochs=[{"epoch": e, "lr": 0.1, "time_s": 1.0, "train": {"loss": 1.0 / e},
                         "val": {"frame_auc": a}} for e, a in [(1, 0.6), (2, 0.8), (3, 0.7)]], best_epoch=2)
    fig = report.training_curves({"m": h})
    loss_line, = fig.axes[0].get_lines()
    auc_line, best = fig.axes[1].get_lines()
    assert list(loss_line.get_ydata()) == [1.0, 0.5, pytest.approx(1 / 3)]
    assert list(auc_line.get_ydata()) == [0.6, 0.8, 0.7] and list(best.get_xdata()) == [2]
    with pytest.raises(KeyError, match="no column 'val_iou'"):
        report.training_curves({"m": h}, metric="val_iou")


def test_equation_table_refuses_a_pipe_in_a_note(monkeypatch):
    from dfnb.papers import equations as E

    monkeypatch.setitem(E.EQUATIONS, "x", (E.Equation("1", "|a|", "dfnb.metrics.auc", "t", "a | b"),))
    with pytest.raises(ValueError, match="may not contain"):
        report.equation_table("x")
    monkeypatch.setitem(E.EQUATIONS, "x", (E.Equation("1", "|a|", "dfnb.metrics.auc", "t"),))
    assert r"$\vert a\vert $" in report.equation_table("x")


def test_slug_names_a_data_set_in_a_file_name():
    assert report.slug("ffpp-syn") == "ffpp_syn" and report.slug("ffpp (real)") == "ffpp_real"
    assert report.slug("Celeb-DF v2") == "celeb_df_v2"
    with pytest.raises(ValueError, match="no letter or digit"):
        report.slug(" - ")


def test_verdict_sentences_group_the_claims_and_quote_effects():
    from dfnb.stats import claim_row, claims_table, not_run_row

    rows = [claim_row("A beats B", "1", 2.0, [1.0, 1.0, 1.0], [2.0, 2.5, 3.0], dataset="d", metric="m"),
            claim_row("C beats D", "2", 1.0, [2.0, 2.0, 2.0], [1.0, 1.2, 0.9], dataset="d", metric="m"),
            claim_row("E beats F", "3", 1.0, [1.0, 2.0, 3.0], [2.0, 1.0, 3.0], dataset="d", metric="m"),
            not_run_row("G beats H", "4", "ablations off")]
    text = report.verdict_sentences(claims_table(rows))
    half = stats.t.ppf(0.975, 2) * stats.sem([1.0, 1.5, 2.0])
    assert text.startswith(f"Reproduced (1): A beats B (ours +1.50 [{1.5 - half:+.2f}, {1.5 + half:+.2f}], "
                           "paper +2.00).")
    assert "Not reproduced (1): C beats D (ours -0.97" in text
    assert "Inconclusive (1: the interval over seeds contains 0, or fewer than 3 seeds): E beats F." in text
    assert text.endswith("Not run in this profile (1): G beats H.")
    head = report.claims_markdown(claims_table(rows))
    assert head.startswith("**Claims: 1 reproduced, 1 not reproduced, 1 inconclusive, 1 not run** (of 4;")
    assert report.claims_markdown(claims_table(rows[:1])).startswith("**Claims: 1 reproduced** (of 1;")
    assert "excludes 0 on the paper's side" in head
    assert "excludes 0 on the hypothesis's side" in report.claims_markdown(claims_table(rows), "the hypothesis's")
    only = report.verdict_sentences(claims_table(rows[2:3]))
    assert only == "Inconclusive (1: the interval over seeds contains 0, or fewer than 3 seeds): E beats F."
