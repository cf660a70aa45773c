"""dfnb.metrics: scikit-learn references on random cases, hand-computed examples, input errors."""
import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from dfnb import metrics as M


# ----------------------------------------------------------------------------- detection
def _random_case(seed, ties):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 200))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]  # both classes present
    p = np.clip(rng.normal(0.4 + 0.2 * y, 0.25), 0, 1)
    if ties:
        p = np.round(p, 1)
    return y, p


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_detection_against_sklearn(seed, ties):
    y, p = _random_case(seed, ties)
    assert M.auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert M.average_precision(y, p) == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
    assert M.accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert M.accuracy(y, p, threshold=0.3) == pytest.approx(skm.accuracy_score(y, p >= 0.3))
    # EER: mean of FPR and FNR at the first ROC point minimising |FNR - FPR|, all points kept
    fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=False)
    i = np.argmin(np.abs((1 - tpr) - fpr))
    assert M.eer(y, p) == pytest.approx((fpr[i] + 1 - tpr[i]) / 2, abs=1e-12)
    if i > 0:
        assert M.eer_threshold(y, p) == pytest.approx(thr[i])


def test_detection_worked_example():
    # reals 0.1 0.4 0.6, fakes 0.35 0.8 0.9
    y = [0, 0, 0, 1, 1, 1]
    p = [0.1, 0.4, 0.6, 0.35, 0.8, 0.9]
    # ROC from the top: t=.9 (FPR 0, FNR 2/3), t=.8 (0, 1/3), t=.6 (1/3, 1/3) -> |FNR-FPR| = 0
    assert M.eer(y, p) == pytest.approx(1 / 3)
    assert M.eer_threshold(y, p) == pytest.approx(0.6)
    # 0.35 beats one real, 0.8 and 0.9 beat all three: 7 of 9 pairs
    assert M.auc(y, p) == pytest.approx(7 / 9)
    # precision at each fake when ranked: 1/1, 2/2, 3/5
    assert M.average_precision(y, p) == pytest.approx((1 + 1 + 3 / 5) / 3)
    # 0.6 (real) and 0.35 (fake) are wrong at 0.5
    assert M.accuracy(y, p) == pytest.approx(4 / 6)
    # a perfect ranking
    assert M.eer([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9]) == 0.0
    # a constant scorer: its only ROC points are (FPR 0, FNR 1) and (1, 0), so EER = 0.5
    assert M.eer([0, 1], [0.5, 0.5]) == 0.5
    assert M.eer([0, 0, 1], [0.3, 0.3, 0.3]) == 0.5
    # the threshold is inclusive: p == 0.5 is called fake
    assert M.accuracy([1], [0.5]) == 1.0


def test_detection_accepts_torch():
    y, p = _random_case(7, False)
    assert M.auc(torch.tensor(y), torch.tensor(p, dtype=torch.float32)) == pytest.approx(skm.roc_auc_score(y, p.astype(np.float32)))


def test_detection_errors():
    with pytest.raises(ValueError, match="single class"):
        M.auc([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(ValueError, match="single class"):
        M.eer([0, 0], [0.2, 0.5])
    with pytest.raises(ValueError, match="no fake"):
        M.average_precision([0, 0], [0.2, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.auc([0, 1], [-0.5, 2.0])
    with pytest.raises(ValueError, match="0 \\(real\\) or 1"):
        M.auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="entries"):
        M.auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        M.accuracy([0, 1], [0.1, np.nan])


def test_video_level_two_methods_share_a_video_id():
    keys = [
        ("ffpp", "Deepfakes", "000_003"),
        ("ffpp", "Deepfakes", "000_003"),
        ("ffpp", "FaceSwap", "000_003"),
        ("ffpp", "FaceSwap", "000_003"),
        ("ffpp", "FaceSwap", "000_003"),
        ("ffpp", "real", "000"),
        ("ffpp", "real", "000"),
    ]
    y = [1, 1, 1, 1, 1, 0, 0]
    p = [0.9, 0.7, 0.2, 0.3, 0.4, 0.1, 0.5]
    yv, pv, kv = M.video_level(y, p, keys)
    assert kv == [("ffpp", "Deepfakes", "000_003"), ("ffpp", "FaceSwap", "000_003"), ("ffpp", "real", "000")]
    np.testing.assert_array_equal(yv, [1, 1, 0])
    np.testing.assert_allclose(pv, [0.8, 0.3, 0.3])
    # list rows and a 2-D array of strings are the same keys
    yv2, pv2, kv2 = M.video_level(torch.tensor(y), torch.tensor(p), np.array(keys))
    np.testing.assert_allclose(pv2, pv)
    assert kv2 == kv
    # grouping by the video id alone would merge the two fake videos
    _, p_id, k_id = M.video_level(y, p, [k[2] for k in keys])
    assert k_id == ["000_003", "000"] and p_id[0] == pytest.approx(2.5 / 5)
    # report: video accuracy at 0.5 = [1, 0, 1] right -> 2/3
    rep = M.detection_report(y, p, video_keys=keys)
    assert rep["video_n"] == 3 and rep["frame_n"] == 7
    assert rep["video_acc"] == pytest.approx(2 / 3)
    assert rep["video_auc"] == pytest.approx(skm.roc_auc_score(yv, pv))
    assert rep["frame_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert set(M.detection_report(y, p)) == {"frame_n", "frame_acc", "frame_auc", "frame_eer", "frame_ap"}


def test_video_level_errors():
    with pytest.raises(ValueError, match="both labels"):
        M.video_level([0, 1], [0.1, 0.9], ["000", "000"])
    with pytest.raises(ValueError, match="entries"):
        M.video_level([0, 1], [0.1, 0.9], ["000"])
    with pytest.raises(ValueError, match="single string"):
        M.video_level([0, 1], [0.1, 0.9], "ab")  # would be two videos 'a' and 'b'


# ----------------------------------------------------------------------------- localization
def _m(rows):
    return np.array(rows, dtype=np.float32)[None]


Z3 = _m([[0, 0, 0], [0, 0, 0], [0, 0, 0]])
TOP = _m([[1, 1, 1], [0, 0, 0], [0, 0, 0]])
BOTTOM = _m([[0, 0, 0], [0, 0, 0], [1, 1, 1]])
TL4 = _m([[1, 1, 0], [1, 1, 0], [0, 0, 0]])  # top-left 2x2
TWO = _m([[0, 0, 0], [0, 1, 1], [0, 0, 0]])


@pytest.mark.parametrize(
    "pred, gt, iinc, pbca, f1, iou",
    [
        (Z3, Z3, 0.0, 1.0, 1.0, 1.0),  # both empty
        (Z3, TOP, 1 / (3 - 3 / 9), 6 / 9, 0.0, 0.0),  # prediction empty: U = 3
        (TWO, Z3, 1 / (3 - 2 / 9), 7 / 9, 0.0, 0.0),  # ground truth empty: U = 2
        (TOP, TOP, 0.0, 1.0, 1.0, 1.0),  # identical
        (BOTTOM, TOP, 2 / (3 - 6 / 9), 3 / 9, 0.0, 0.0),  # disjoint: I = 0, U = 6
        # partial: |P| = 4, |G| = 3, I = 2, U = 5 -> (2 - 2/4 - 2/3) / (3 - 5/9) = 15/44
        (TL4, TOP, 15 / 44, 6 / 9, 4 / 7, 2 / 5),
    ],
)
def test_localization_hand_computed_3x3(pred, gt, iinc, pbca, f1, iou):
    assert M.iinc(pred, gt) == pytest.approx(iinc)
    assert M.pbca(pred, gt) == pytest.approx(pbca)
    assert M.pixel_f1(pred, gt) == pytest.approx(f1)
    assert M.iou(pred, gt) == pytest.approx(iou)


def test_localization_hand_computed_4x4_and_thresholds():
    gt = np.zeros((1, 1, 4, 4), np.float32)
    gt[0, 0, :2, :2] = 1.0  # 4 pixels
    pred = np.zeros((1, 1, 4, 4), np.float32)
    pred[0, 0, :2, 1:] = 0.7  # 6 pixels at 0.7; I = 2, U = 8
    assert M.iinc(pred, gt) == pytest.approx((2 - 2 / 6 - 2 / 4) / (3 - 8 / 16)) == pytest.approx(7 / 15)
    assert M.pbca(pred, gt) == pytest.approx(10 / 16)
    # at threshold 0.8 nothing is predicted: one empty, U = 4
    assert M.iinc(pred, gt, threshold=0.8) == pytest.approx(1 / (3 - 4 / 16))
    # ground truth at exactly 0.5 counts as manipulated
    assert M.iinc(gt, gt * 0.5) == 0.0
    assert M.iinc(gt, gt * 0.49) == pytest.approx(1 / (3 - 4 / 16))


def test_per_image_mean_and_pooled_variants():
    pred = np.concatenate([Z3, TL4, TWO])
    gt = np.concatenate([Z3, TOP, Z3])
    per = [0.0, 15 / 44, 1 / (3 - 2 / 9)]
    np.testing.assert_allclose(M.iinc(pred, gt, reduction="none"), per)
    assert M.iinc(pred, gt) == pytest.approx(np.mean(per))
    # pooled over 27 pixels: |P| = 6, |G| = 3, I = 2, U = 7
    assert M.iinc_pooled(pred, gt) == pytest.approx((2 - 2 / 6 - 2 / 3) / (3 - 7 / 27))
    assert M.pbca_pooled(pred, gt) == pytest.approx(M.pbca(pred, gt)) == pytest.approx((9 + 6 + 7) / 27)
    # torch, (N, 1, H, W)
    t = lambda a: torch.from_numpy(a)[:, None]  # noqa: E731
    assert M.iinc(t(pred), t(gt)) == pytest.approx(np.mean(per))


@pytest.mark.parametrize("seed", range(3))
def test_pixel_auc_against_sklearn(seed):
    rng = np.random.default_rng(seed)
    gt = (rng.random((5, 8, 8)) < 0.3).astype(np.float32)
    pred = np.clip(0.3 * gt + rng.random((5, 8, 8)) * 0.7, 0, 1).round(2)  # with ties
    ref = [skm.roc_auc_score(g.ravel(), p.ravel()) for p, g in zip(pred, gt)]
    np.testing.assert_allclose(M.pixel_auc(pred, gt, reduction="none"), ref, atol=1e-12)
    assert M.pixel_auc(pred, gt, chunk=2) == pytest.approx(np.mean(ref))


def test_pixel_auc_single_class_images_left_out_with_warning():
    pred = np.concatenate([TL4, TL4])
    gt = np.concatenate([TOP, Z3])
    ref = skm.roc_auc_score(TOP.ravel(), TL4.ravel())
    with pytest.warns(UserWarning, match="1 of 2"):
        assert M.pixel_auc(pred, gt) == pytest.approx(ref)
    assert np.isnan(M.pixel_auc(pred, gt, reduction="none")[1])
    with pytest.raises(ValueError, match="single class"):
        M.pixel_auc(Z3, Z3)


def test_localization_report():
    # real: empty/empty, real: 2 px predicted, fake: partial, fake: nothing predicted
    pred = np.concatenate([Z3, TWO, TL4, Z3])
    gt = np.concatenate([Z3, Z3, TOP, TOP])
    labels = [0, 0, 1, 1]
    r = M.localization_report(pred, gt, labels)
    iinc_i = [0.0, 1 / (3 - 2 / 9), 15 / 44, 1 / (3 - 3 / 9)]
    assert r["n_images"] == 4 and r["n_fake"] == 2 and r["n_pixel_auc"] == 2
    assert r["iinc_all"] == pytest.approx(np.mean(iinc_i))
    assert r["iinc_fake"] == pytest.approx(np.mean(iinc_i[2:]))
    assert r["iinc_pooled"] == pytest.approx(M.iinc_pooled(pred, gt))
    assert r["pbca_all"] == pytest.approx(np.mean([1, 7 / 9, 6 / 9, 6 / 9]))
    assert r["pbca_fake"] == pytest.approx(6 / 9)
    assert r["pixel_f1_fake"] == pytest.approx((4 / 7 + 0) / 2)
    assert r["iou_fake"] == pytest.approx((2 / 5 + 0) / 2)
    ref_auc = [skm.roc_auc_score(TOP.ravel(), p.ravel()) for p in (TL4, Z3)]
    assert r["pixel_auc_fake"] == pytest.approx(np.mean(ref_auc))
    assert set(M.LOCALIZATION_AVERAGING) <= set(r)
    with pytest.raises(ValueError, match="real images"):
        M.localization_report(pred, gt, [0, 1, 1, 0])
    with pytest.raises(ValueError, match="no fake"):
        M.localization_report(Z3, Z3, [0])


def test_localization_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        M.iinc(Z3, np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="more than one channel"):
        M.pbca(np.zeros((1, 3, 3, 3)), np.zeros((1, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.iou(Z3 + 2, Z3)
    with pytest.raises(ValueError, match="expected \\(N, H, W\\)"):
        M.pixel_f1(np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="reduction"):
        M.pbca(Z3, Z3, reduction="sum")


def test_localization_report_leaves_out_fakes_without_a_true_mask():
    """FaceShifter / Celeb-DF fakes carry an all-zero stand-in mask: scored, it would count a perfect
    prediction of "nothing forged" on a forged face; has_mask=False leaves such a face out of every entry."""
    gt = np.zeros((3, 2, 2), np.float32)
    gt[1, 0] = 1.0
    pred = np.zeros_like(gt)
    pred[1, 0] = 0.9
    pred[2] = 0.9  # the model marks the whole no-mask fake: right, but its stand-in says every pixel is wrong
    labels = np.array([0, 1, 1])
    rep = M.localization_report(pred, gt, labels, has_mask=[True, True, False])
    assert rep["n_images"] == 2 and rep["n_fake"] == 1 and rep["n_no_mask"] == 1
    assert rep["pbca_all"] == 1.0 and rep["iou_fake"] == 1.0
    assert M.localization_report(pred, gt, labels)["iou_fake"] == 0.5  # before: the stand-in counted
    assert "n_no_mask" not in M.localization_report(pred, gt, labels)
    with pytest.raises(ValueError, match="none of the 2 fakes has a known mask"):
        M.localization_report(pred, gt, labels, has_mask=[True, False, False])
    with pytest.raises(ValueError, match="has_mask: has 2 entries but there are 3 masks"):
        M.localization_report(pred, gt, labels, has_mask=[True, False])
