"""The localization leaderboard: threshold chosen on validation, scores per localizer, ranked means over seeds."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sst

from dfnb import leaderboard as L
from dfnb import metrics


def _case():
    gt = np.zeros((2, 4, 4), np.float32)
    gt[0, :2, :2] = 1  # a fake with a 2x2 forged block; face 1 is real
    pred = np.zeros_like(gt)
    pred[0, :2, :2] = 0.7
    pred[0, 2, :2] = 0.4  # two pixels outside the block at 0.4
    pred[1, 0, :3] = 0.5  # three marked pixels on the real face
    return pred, gt, np.array([1, 0])


def test_best_threshold_by_hand_on_the_fakes_only():
    pred, gt, y = _case()
    # t <= 0.4: IoU 4/6; 0.4 < t <= 0.7: IoU 1; t > 0.7: nothing predicted, IoU 0 -> the smallest of the best
    assert L.best_threshold(pred, gt, y) == pytest.approx(0.45)
    assert L.best_threshold(pred, gt, y, "f1") == pytest.approx(0.45)
    pred[1] = 0.9  # the real face does not move it
    assert L.best_threshold(pred, gt, y) == pytest.approx(0.45)
    with pytest.raises(ValueError, match="'iou' or 'f1'"):
        L.best_threshold(pred, gt, y, "auc")
    with pytest.raises(ValueError, match="no fake face"):
        L.best_threshold(pred, gt, np.array([0, 0]))


def test_localizer_scores_by_hand_and_against_the_metrics():
    pred, gt, y = _case()
    s = L.localizer_scores(pred, gt, y, 0.45)
    assert s["IoU"] == pytest.approx(100.0) and s["F1"] == pytest.approx(100.0)
    assert s["PBCA real"] == pytest.approx(100 * 13 / 16) and s["marked real"] == pytest.approx(100 * 3 / 16)
    assert s["IINC real"] == pytest.approx(100 / (3 - 3 / 16))  # DFFD: one of P, G empty
    s = L.localizer_scores(pred, gt, y, 0.35)
    assert s["IoU"] == pytest.approx(100 * 4 / 6) and s["PBCA fake"] == pytest.approx(100 * 14 / 16)
    rng = np.random.default_rng(0)
    p, g = rng.random((6, 8, 8)), (rng.random((6, 8, 8)) > 0.7).astype(np.float32)
    lab = np.array([1, 1, 1, 1, 0, 0])
    g[4:] = 0
    s = L.localizer_scores(p, g, lab, 0.6)
    assert s["pixel AUC"] == pytest.approx(100 * metrics.pixel_auc(p[:4], g[:4]))
    assert s["IINC fake"] == pytest.approx(100 * metrics.iinc(p[:4], g[:4], 0.6))
    only_fakes = L.localizer_scores(p[:4], g[:4], lab[:4], 0.6)
    assert np.isnan(only_fakes["PBCA real"]) and np.isnan(only_fakes["marked real"])
    with pytest.raises(ValueError, match="labels: 5 for 6 maps"):
        L.localizer_scores(p, g, lab[:5], 0.5)


def test_leaderboard_ranks_means_with_t_intervals_and_names_the_supervision():
    rows = [{"localizer": "cam", "seed": s, **dict.fromkeys(L.SCORE_COLUMNS, v)} for s, v in enumerate([60.0, 62.0, 64.0])]
    rows += [{"localizer": "dadf", "seed": s, **dict.fromkeys(L.SCORE_COLUMNS, v)} for s, v in enumerate([90.0, 91.0, 95.0])]
    rows += [{"localizer": "hull", "seed": 0, **dict.fromkeys(L.SCORE_COLUMNS, 70.0)}]
    per = pd.DataFrame(rows)
    t = L.leaderboard(per, {"cam": "image", "dadf": "pixel", "hull": "none"})
    assert list(t.index) == ["dadf", "hull", "cam"] and list(t["rank"]) == [1, 2, 3]
    half = sst.t.ppf(0.975, 2) * np.std([90.0, 91.0, 95.0], ddof=1) / np.sqrt(3)
    assert t.loc["dadf", "IoU"] == f"{92.0:.2f} [{92 - half:.2f}, {92 + half:.2f}]"
    assert t.loc["hull", "IoU"] == "70.00" and t.loc["hull", "seeds"] == 1
    assert t.loc["cam", "needs"] == "image labels only"
    by_marked = L.leaderboard(per, {"cam": "image", "dadf": "pixel", "hull": "none"}, rank_by="marked real")
    assert list(by_marked.index) == ["cam", "hull", "dadf"]  # lower is better
    with pytest.raises(ValueError, match=r"no supervision given for \['hull'\]"):
        L.leaderboard(per, {"cam": "image", "dadf": "pixel"})
    with pytest.raises(ValueError, match="supervision must be one of"):
        L.leaderboard(per, {"cam": "weak", "dadf": "pixel", "hull": "none"})


def test_summary_names_each_kinds_best_and_counts_what_the_prior_beats():
    import pandas as pd

    rows = [("D", 0, 99.0, 70.0), ("D", 1, 97.0, 74.0), ("F", 0, 80.0, 40.0), ("F", 1, 90.0, 50.0),
            ("G", 0, 95.0, 10.0), ("hull", 0, 92.0, 60.0)]
    per = pd.DataFrame(rows, columns=["localizer", "seed", "pixel AUC", "IoU"])
    sup = {"D": "pixel", "F": "image", "G": "image", "hull": "none"}
    text = L.summary(per, sup, "toy-syn")
    assert text.startswith("On toy-syn, the best localizer by pixel AUC that needs pixel labels (exact masks): "
                           "**D** (98.00 pixel AUC, 72.00 IoU); image labels only: **G** (95.00")
    assert "nothing: **hull** (92.00 pixel AUC, 60.00 IoU)." in text
    # F (85) is below the hull's 92, G (95) above; by IoU both (45, 10) are below 60
    assert text.endswith("beats 1 of the 2 localizers trained on image labels by pixel AUC and 2 by IoU.")
    lower = L.summary(per.rename(columns={"IoU": "IINC fake"}), sup, "toy-syn", also="IINC fake")
    assert "beats 1 of the 2 localizers trained on image labels by pixel AUC and 0 by IINC fake." in lower
    with pytest.raises(ValueError, match="'AP' is not one of"):
        L.summary(per, sup, "toy-syn", also="AP")
