"""Seeds, intervals and verdicts: how a chapter turns several training runs into a claim it can judge.

Plain functions over arrays (scikit-learn style):

- :func:`t_interval`        mean of per-seed values with a two-sided Student-t interval
- :func:`bootstrap_auc_se`  the bootstrap standard error of one AUC over test faces (is a test set big enough?)
- :func:`paired_effect`     per-seed differences ``b - a`` (same seed, same data) and their t-interval
- :func:`verdict`           reproduced / not reproduced / inconclusive, from an interval and the paper's sign
- :func:`claim_row`         one row of a chapter's claims table
- :func:`claims_table`      the rows as a DataFrame with the columns of ``CLAIM_COLUMNS``

Definitions.  For per-seed values :math:`x_1..x_n` (one trained model per seed, evaluated on the same
test set), the 95 % interval is :math:`\\bar x \\pm t_{0.975, n-1}\\, s/\\sqrt n` with :math:`s` the sample
standard deviation (ddof = 1).  It is an interval over *training seeds*: test faces are held fixed, so the
test-set sampling error is not in it; :func:`bootstrap_auc_se` measures that part separately.

A claim's effect is *paired*: ``effect_i = metric(variant, seed i) - metric(reference, seed i)``, both
trained from seed ``i`` on the same data, so what the seed changes in both cancels.  The verdict compares
the interval of the mean effect with the sign the paper reports:

============== ===============================================================================
reproduced     the interval excludes 0 on the paper's side (same sign, "significant")
not reproduced the interval excludes 0 on the other side (opposite sign)
inconclusive   the interval contains 0, or fewer than ``MIN_SEEDS`` seeds (no interval)
============== ===============================================================================

A claim of "no difference" (paper sign 0) cannot be *reproduced* by an interval test; it is
``inconclusive`` unless the interval excludes 0 (then ``not reproduced``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["MIN_SEEDS", "CLAIM_COLUMNS", "VERDICTS", "Interval", "t_interval", "bootstrap_auc_se",
           "paired_effect", "verdict", "claim_row", "claims_table"]

MIN_SEEDS = 3
VERDICTS = ("reproduced", "not reproduced", "inconclusive")
CLAIM_COLUMNS = ("claim", "paper_table", "paper_effect", "our_effect", "ci_low", "ci_high", "n_seeds", "verdict",
                 "dataset", "metric")


@dataclass(frozen=True)
class Interval:
    """A mean with a two-sided interval.  ``low``/``high`` are NaN for fewer than two values."""

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        if not np.isfinite(self.low):
            return f"{self.mean:.4g} (n={self.n}, no interval)"
        return f"{self.mean:.4g} [{self.low:.4g}, {self.high:.4g}] (n={self.n})"


def _values(values, name: str = "values") -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} has non-finite entries: {x.tolist()}")
    return x


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of ``values`` (one per seed) with the Student-t interval ``mean ± t_{(1+level)/2, n-1} s / sqrt(n)``.

    values: (n,) finite floats, n >= 1 (n = 1 gives NaN bounds: one seed has no interval).
    Equals ``scipy.stats.t.interval(level, n - 1, loc=mean, scale=scipy.stats.sem(values))``.
    """
    from scipy import stats

    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    x = _values(values)
    m = float(x.mean())
    if x.size < 2:
        return Interval(m, float("nan"), float("nan"), 1, level)
    half = float(stats.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return Interval(m, m - half, m + half, int(x.size), level)


def bootstrap_auc_se(y_true, y_prob, n_boot: int = 200, seed: int = 0) -> float:
    """Standard deviation of the frame AUC over ``n_boot`` bootstrap resamples of the test faces
    (resampled within each class, so every resample has both).  y_true (N,) in {0, 1}; y_prob (N,)."""
    from dfnb import metrics

    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(y_prob, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"y_true {y.shape} and y_prob {p.shape} differ in shape")
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if not len(pos) or not len(neg):
        raise ValueError("bootstrap_auc_se needs both classes")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(int(n_boot)):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        vals.append(metrics.auc(y[idx], p[idx]))
    return float(np.std(vals, ddof=1))


def paired_effect(reference: Sequence[float], variant: Sequence[float], level: float = 0.95) -> Interval:
    """The mean of ``variant[i] - reference[i]`` over seeds ``i`` with its t-interval.

    reference, variant: (n,) one value per seed, the same seeds in the same order.
    """
    a, b = _values(reference, "reference"), _values(variant, "variant")
    if a.shape != b.shape:
        raise ValueError(f"paired_effect needs one value per seed on both sides; got {a.size} and {b.size}")
    return t_interval(b - a, level)


def verdict(ci_low: float, ci_high: float, paper_effect: float, n_seeds: int) -> str:
    """``reproduced`` / ``not reproduced`` / ``inconclusive`` (see the module docstring).

    ci_low, ci_high: our interval of the effect; paper_effect: the paper's effect (only its sign counts);
    n_seeds: seeds behind our interval (< ``MIN_SEEDS`` -> inconclusive, whatever the interval).
    """
    if n_seeds < MIN_SEEDS or not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return "inconclusive"
    if ci_low > ci_high:
        raise ValueError(f"ci_low {ci_low} > ci_high {ci_high}")
    if not np.isfinite(paper_effect):
        raise ValueError(f"paper_effect must be finite, got {paper_effect!r}")
    sign = np.sign(paper_effect)
    if ci_low > 0:
        ours = 1
    elif ci_high < 0:
        ours = -1
    else:
        return "inconclusive"
    return "reproduced" if ours == sign else "not reproduced"


def claim_row(claim: str, paper_table: str, paper_effect: float, reference: Sequence[float],
              variant: Sequence[float], *, dataset: str, metric: str, level: float = 0.95) -> dict:
    """One claims-table row: the paired effect ``variant - reference`` over seeds, judged against the
    paper's effect.  ``dataset`` names the data the effect was measured on; ``metric`` what it is
    (e.g. ``"cross-domain mean AUC (points)"``)."""
    iv = paired_effect(reference, variant, level)
    return {"claim": claim, "paper_table": paper_table, "paper_effect": float(paper_effect),
            "our_effect": iv.mean, "ci_low": iv.low, "ci_high": iv.high, "n_seeds": iv.n,
            "verdict": verdict(iv.low, iv.high, paper_effect, iv.n), "dataset": dataset, "metric": metric}


def not_run_row(claim: str, paper_table: str, why: str) -> dict:
    """A claims-table row for a paper claim this run did not test: verdict *inconclusive*, no effect,
    the reason in the claim's text (``"<claim> (not run: <why>)"``)."""
    nan = float("nan")
    return {"claim": f"{claim} (not run: {why})", "paper_table": paper_table, "paper_effect": nan,
            "our_effect": nan, "ci_low": nan, "ci_high": nan, "n_seeds": 0, "verdict": "inconclusive",
            "dataset": "-", "metric": "-"}


def claims_table(rows: Sequence[dict]):
    """The claims rows as a DataFrame with exactly the columns ``CLAIM_COLUMNS`` (missing ones are an error)."""
    import pandas as pd

    if not rows:
        raise ValueError("no claims")
    for r in rows:
        missing = [c for c in CLAIM_COLUMNS if c not in r]
        if missing:
            raise ValueError(f"claim {r.get('claim', '?')!r} lacks {missing}")
        if r["verdict"] not in VERDICTS:
            raise ValueError(f"claim {r['claim']!r}: unknown verdict {r['verdict']!r}")
    return pd.DataFrame([{c: r[c] for c in CLAIM_COLUMNS} for r in rows])
