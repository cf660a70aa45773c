"""dfnb.stats: intervals against scipy on a worked example, verdicts on hand cases, the claims table."""
import numpy as np
import pytest
from scipy import stats as sps

from dfnb import metrics, stats


def test_t_interval_worked_example_and_scipy():
    x = [0.91, 0.95, 0.93]  # mean 0.93, s = 0.02, sem = 0.02/sqrt(3), t_{0.975,2} = 4.302653
    iv = stats.t_interval(x)
    half = 4.302652729911275 * 0.02 / np.sqrt(3)
    assert iv.mean == pytest.approx(0.93)
    assert (iv.low, iv.high) == pytest.approx((0.93 - half, 0.93 + half), rel=1e-9)
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(x), scale=sps.sem(x))
    assert (iv.low, iv.high) == pytest.approx((lo, hi), rel=1e-12)
    iv90 = stats.t_interval(x, level=0.9)
    assert iv90.high - iv90.low < iv.high - iv.low


def test_one_seed_has_no_interval():
    iv = stats.t_interval([0.7])
    assert iv.n == 1 and np.isnan(iv.low) and np.isnan(iv.high)
    with pytest.raises(ValueError, match="non-finite"):
        stats.t_interval([0.1, float("nan")])
    with pytest.raises(ValueError, match="empty"):
        stats.t_interval([])


def test_paired_effect_cancels_the_seed():
    ref = [0.60, 0.80, 0.70]
    var = [0.62, 0.82, 0.72]  # +0.02 on every seed: zero spread, an interval of width 0 around 0.02
    iv = stats.paired_effect(ref, var)
    assert iv.mean == pytest.approx(0.02) and iv.low == pytest.approx(0.02) and iv.high == pytest.approx(0.02)
    unpaired = stats.t_interval(var)
    assert unpaired.high - unpaired.low > 0.1
    with pytest.raises(ValueError, match="one value per seed"):
        stats.paired_effect([1, 2, 3], [1, 2])


@pytest.mark.parametrize("lo,hi,paper,n,want", [
    (0.01, 0.05, +3.0, 3, "reproduced"),
    (-0.05, -0.01, -1.0, 3, "reproduced"),
    (-0.05, -0.01, +3.0, 3, "not reproduced"),
    (0.01, 0.05, -2.0, 5, "not reproduced"),
    (-0.01, 0.05, +3.0, 3, "inconclusive"),
    (0.01, 0.05, +3.0, 2, "inconclusive"),          # too few seeds
    (float("nan"), float("nan"), 1.0, 3, "inconclusive"),
    (0.01, 0.05, 0.0, 3, "not reproduced"),          # paper: no difference; ours excludes 0
    (-0.01, 0.01, 0.0, 3, "inconclusive"),
])
def test_verdict_hand_cases(lo, hi, paper, n, want):
    assert stats.verdict(lo, hi, paper, n) == want


def test_claims_table_rows_and_columns():
    r = stats.claim_row("PRLE raises AUC", "II", 8.81, [60, 70, 65], [63, 72, 69], dataset="ffpp-syn",
                        metric="AUC (points)")
    assert r["our_effect"] == pytest.approx(3.0) and r["n_seeds"] == 3 and r["verdict"] == "reproduced"
    df = stats.claims_table([r])
    assert tuple(df.columns) == stats.CLAIM_COLUMNS
    with pytest.raises(ValueError, match="lacks"):
        stats.claims_table([{"claim": "x"}])


def test_bootstrap_auc_se_shrinks_with_n():
    rng = np.random.default_rng(0)

    def se(n):
        y = np.r_[np.zeros(n), np.ones(n)]
        p = 1 / (1 + np.exp(-np.r_[rng.normal(0, 1, n), rng.normal(1, 1, n)]))
        return stats.bootstrap_auc_se(y, p, n_boot=200)

    small, big = se(50), se(800)
    assert big < small / 2.5  # SE ~ 1/sqrt(n): 16x the faces -> about a quarter
    y = np.r_[np.zeros(5), np.ones(5)]
    assert stats.bootstrap_auc_se(y, y, n_boot=20) == 0.0  # perfect separation in every resample
    assert metrics.auc(y, y) == 1.0


def test_crossdomain_drop_table_and_claims_on_hand_numbers():
    import pandas as pd

    from dfnb import crossdomain

    rows = []
    for s, (ind, cdf) in enumerate([(0.96, 0.80), (0.97, 0.82), (0.95, 0.78)]):
        rows += [{"seed": s, "test set": "ffpp-syn", "frame_auc": ind, "n_faces": 1000},
                 {"seed": s, "test set": "celebdf-syn", "frame_auc": cdf, "n_faces": 1008}]
    per = pd.DataFrame(rows)
    t = crossdomain.drop_table(per)
    assert t.loc["celebdf-syn", "drop"] == pytest.approx(16.0)  # 15 + 16 + 17 over 3 seeds
    lo, hi = sps.t.interval(0.95, 2, loc=16.0, scale=sps.sem([16.0, 15.0, 17.0]))
    assert (t.loc["celebdf-syn", "drop 95% low"], t.loc["celebdf-syn", "drop 95% high"]) == pytest.approx((lo, hi))
    assert t.loc["celebdf-syn", "drop >= 10"] is True or t.loc["celebdf-syn", "drop >= 10"] == True  # noqa: E712
    c = crossdomain.claims(per)
    assert list(c["verdict"]) == ["reproduced"] and c["our_effect"].iloc[0] == pytest.approx(-16.0)
    assert c["paper_effect"].iloc[0] < 0
