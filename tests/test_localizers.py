"""Chapter 40's localizers: resizing, scoring with a validation threshold, hypotheses paired over seeds."""
import numpy as np
import pandas as pd
import pytest
import torch

from dfnb import localizers as L
from dfnb.leaderboard import SCORE_COLUMNS


def test_resize_averages_down_and_interpolates_up():
    m = np.zeros((1, 1, 4, 4), np.float32)
    m[0, 0, :2, :2] = 1.0
    assert np.allclose(L.resize(m, 2)[0], [[1.0, 0.0], [0.0, 0.0]])  # area: each 2x2 block's mean
    up = L.resize(m[:, 0], 8)
    assert up.shape == (1, 8, 8) and up[0, 0, 0] == pytest.approx(1.0) and up[0, -1, -1] == pytest.approx(0.0)
    assert L.resize(m, 4).shape == (1, 4, 4)
    with pytest.raises(ValueError, match=r"maps must be \(N, H, W\)"):
        L.resize(np.zeros((2, 3, 4, 4)), 2)


def _faces(n=4, size=8):
    items = []
    for i in range(n):
        mask = torch.zeros(1, size, size)
        if i % 2:
            mask[:, :4, :4] = 1
        items.append({"mask": mask, "label": torch.tensor(i % 2)})
    return items


def test_score_picks_the_threshold_on_val_and_scores_test():
    faces = {"val": _faces(), "test": _faces()}
    gt = np.stack([f["mask"][0].numpy() for f in faces["val"]])
    val = gt * 0.6 + 0.2  # fakes' blocks at 0.8, everything else at 0.2: any threshold in (0.2, 0.8] is exact
    test = gt * 0.3 + 0.4  # a test map on another scale: its best threshold would differ
    per = L.score({("m", 0): {"val": val, "test": test}}, faces)
    r = per.iloc[0]
    assert r.threshold == pytest.approx(0.25)  # the smallest exact one on validation
    assert r.IoU == pytest.approx(100 * 16 / 64)  # at 0.25 the whole test face is marked: 16 of 64 pixels right
    assert r["marked real"] == pytest.approx(100.0) and r["pixel AUC"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match=r"m \(seed 0\): val maps \(4, 4, 4\) against masks \(4, 8, 8\)"):
        L.score({("m", 0): {"val": val[:, :4, :4], "test": test}}, faces)
    # another test split keeps the validation threshold: at 0.25 the cross maps (exact blocks at 0.3 on 0.1)
    # are exact, though a threshold fitted to them could be anything in (0.1, 0.3]
    cross = L.score({("m", 0): {"val": val, "test": test, "x": gt * 0.2 + 0.1}}, {**faces, "x": _faces()},
                    test="x").iloc[0]
    assert cross.threshold == pytest.approx(0.25) and cross.IoU == pytest.approx(100.0)
    with pytest.raises(ValueError, match=r"test split 'val' must be one of \['test'\]"):
        L.score({("m", 0): {"val": val, "test": test}}, faces, test="val")


def test_common_faces_add_the_cross_domain_split_only_where_it_has_masks():
    p31 = {"ffpp_root": None, "n_eval_videos": 1, "seed": 0}
    p10 = {"n_eval_videos": 1, "seed": 0, "celebdf_root": None}
    f = L.common_faces(p31, 32, p10=p10)
    assert list(f) == ["val", "test", L.CROSS_LEADERBOARD]
    x = f[L.CROSS_LEADERBOARD]
    items = [x[i] for i in range(len(x))]  # one identity: a real video and two fakes, 2 frames each
    assert [int(it["label"]) for it in items] == [0, 0, 1, 1, 1, 1]
    assert all(float(it["mask"].sum()) > 0 for it in items[2:])  # the fakes carry their exact masks
    with pytest.warns(UserWarning, match="real Celeb-DF .* has no forgery masks"):
        assert list(L.common_faces(p31, 32, p10={**p10, "celebdf_root": "/data/celebdf"})) == ["val", "test"]


def test_supervision_of_every_localizer_and_an_unknown_one():
    s = L.supervision(["DADF", "face hull", "Grad-CAM, efficientnet_lite1 (PRLE zoo)", "SSIM (pristine frame)"])
    assert s == {"DADF": "pixel", "face hull": "none", "Grad-CAM, efficientnet_lite1 (PRLE zoo)": "image",
                 "SSIM (pristine frame)": "pair"}
    with pytest.raises(KeyError, match="no supervision known for localizer 'magic'"):
        L.supervision(["magic"])


def _per(values):
    return pd.DataFrame([{"localizer": n, "seed": s, **dict.fromkeys(SCORE_COLUMNS, v)}
                         for n, vs in values.items() for s, v in enumerate(vs)])


def test_hypotheses_pair_seeds_repeat_fixed_localizers_and_say_what_did_not_run():
    per = _per({"DADF": [70.0, 72.0, 74.0], "FoCus (fused CAR map)": [40.0, 41.0, 45.0], "face hull": [60.0],
                "PRLE fused: average": [50.0], "PRLE fused: neighbouring": [55.0]})
    rows = {r["claim"].split(" (not run")[0]: r for r in L.hypotheses(per, "ffpp-syn HQ test")}
    pix = rows["pixel labels beat image labels: DADF over FoCus (IoU)"]
    assert pix["our_effect"] == pytest.approx(30.0) and pix["n_seeds"] == 3 and pix["verdict"] == "reproduced"
    hull = rows["DADF beats the face-hull prior (IoU)"]  # the hull's one value against each DADF seed
    assert hull["our_effect"] == pytest.approx(12.0) and hull["n_seeds"] == 3
    clean = rows["DADF keeps real faces clean: fewer marked pixels than the face hull"]
    assert clean["our_effect"] == pytest.approx(-12.0) and clean["verdict"] == "not reproduced"  # lower is better
    fus = rows["PRLE's neighbouring fusion beats its average fusion (pixel AUC)"]
    assert fus["n_seeds"] == 1 and fus["verdict"] == "inconclusive"  # one zoo
    sam = next(r for r in L.hypotheses(per, "d") if r["claim"].startswith("DADF beats the fine-tuned SAM"))
    assert sam["claim"].endswith("(not run: SAM (fine-tuned) not in this run)") and sam["n_seeds"] == 0
    assert all(np.isnan(r["paper_effect"]) for r in rows.values())
    cross = L.hypotheses(per, "celebdf-syn test", table=L.CROSS_HYPOTHESES)
    assert [r["claim"].split(" (not run")[0] for r in cross] == [h[0] for h in L.CROSS_HYPOTHESES]
    assert cross[0]["our_effect"] == pytest.approx(30.0) and cross[0]["dataset"] == "celebdf-syn test"
    assert cross[2]["n_seeds"] == 0  # no DADF on FoCus's maps in this table
    assert all(r["n_seeds"] == 0 for r in L.hypotheses(None, "d", table=L.CROSS_HYPOTHESES))  # skipped: not run


class _Exp:
    def __init__(self, aucs):
        self.aucs, self.calls = aucs, []

    def evaluate(self, ds, *, batch_size, device):
        self.calls.append(ds)
        return {"detection": {"frame_auc": self.aucs[ds]}}


def test_detection_reads_every_set_and_averages_the_cross_domain_ones():
    sets = {"ffpp-syn HQ": "in", "celebdf-syn": "a", "dfdc-syn": "b"}
    exps = {("DADF", 0): _Exp({"in": 0.9, "a": 0.6, "b": 0.7}), ("DADF", 1): _Exp({"in": 0.8, "a": 0.5, "b": 0.9})}
    det = L.detection(exps, sets)
    assert list(det.columns) == ["localizer", "seed", *sets, "in-domain AUC", "cross-domain AUC"]
    assert det["in-domain AUC"].tolist() == pytest.approx([90.0, 80.0])
    assert det["cross-domain AUC"].tolist() == pytest.approx([65.0, 70.0])
    assert exps["DADF", 0].calls == ["in", "a", "b"]


def test_detection_hypotheses_are_judged_on_the_detection_table():
    per = _per({"DADF": [70.0, 72.0, 74.0], "DADF + PRLE masking": [69.0, 72.0, 75.0]})
    det = pd.DataFrame({"localizer": ["DADF"] * 3 + ["DADF + PRLE masking"] * 3, "seed": [0, 1, 2] * 2,
                        "in-domain AUC": [95.0, 96.0, 97.0, 95.5, 96.5, 97.5],
                        "cross-domain AUC": [60.0, 62.0, 64.0, 66.0, 67.0, 69.0]})
    rows = {r["claim"].split(" (not run")[0]: r for r in L.hypotheses(per, "ffpp-syn HQ test", det, ["in", "a", "b"])}
    cross = rows["PRLE's masking improves DADF's cross-domain AUC"]
    assert cross["our_effect"] == pytest.approx(16 / 3) and cross["verdict"] == "reproduced"
    assert cross["dataset"] == "a, b"
    ind = rows["PRLE's masking improves DADF's in-domain AUC"]
    assert ind["our_effect"] == pytest.approx(0.5) and ind["n_seeds"] == 3 and ind["dataset"] == "in"
    loc = rows["PRLE's masking improves DADF's localization (IoU)"]
    assert loc["our_effect"] == pytest.approx(0.0) and loc["dataset"] == "ffpp-syn HQ test"
    no_det = {r["claim"] for r in L.hypotheses(per, "d")}
    assert "PRLE's masking improves DADF's cross-domain AUC (not run: DADF, DADF + PRLE masking not in this run)" \
        in no_det


def test_training_table_joins_localization_and_detection_in_the_given_order():
    cols = {c: 0.0 for c in SCORE_COLUMNS}
    per = pd.DataFrame([{**cols, "localizer": n, "seed": s, "IoU": v, "pixel AUC": 90.0 + s}
                        for n, vs in {"DADF": [70.0, 72.0, 74.0], "DADF on face hull": [50.0, 50.0, 53.0],
                                      "face hull": [60.0]}.items() for s, v in enumerate(vs)])
    det = pd.DataFrame({"localizer": ["DADF"] * 3, "seed": [0, 1, 2], "in-domain AUC": [95.0, 96.0, 97.0],
                        "cross-domain AUC": [80.0, 80.0, 80.0]})
    t = L.training_table(per, det, ["face hull", "DADF", "SAM+LoRA", "DADF on face hull"])
    assert list(t.index) == ["face hull", "DADF", "DADF on face hull"]  # absent ones dropped, order kept
    # DADF IoU 72 +/- t_{0.975,2} * 2 / sqrt(3) = 72 +/- 4.97
    assert t.loc["DADF", "IoU"] == "72.00 [67.03, 76.97]" and t.loc["face hull", "IoU"] == "60.00"
    assert t.loc["DADF", "in-domain AUC"] == "96.00 [93.52, 98.48]" and t.loc["face hull", "in-domain AUC"] == "-"
    assert list(t["seeds"]) == [1, 3, 3] and t.loc["DADF on face hull", "cross-domain AUC"] == "-"
    with pytest.raises(ValueError, match="none of the named"):
        L.training_table(per, det, ["SAM+LoRA"])


def test_weak_targets_refuse_an_unknown_name():
    with pytest.raises(ValueError, match="unknown weak targets"):
        L.weak_targets({}, ["edges"])


def test_prle_maps_of_a_split_look_up_the_same_faces_at_another_size():
    from dfnb.data import load_split
    from dfnb.models.prle.static import FusedMaps, sample_key

    kw = dict(real="ffpp", root=None, n_videos=2, frames_per_video=1, seed=0, progress=False)
    small, big = (load_split("ffpp-syn", "train", size=n, **kw)[1] for n in (32, 48))
    keys = [sample_key(small[i]) for i in range(len(small))]
    fused = FusedMaps(np.arange(len(keys))[:, None, None] * np.ones((1, 4, 4), np.float32), keys)
    batch = {k: [big[i][k] for i in range(len(big))] for k in ("dataset", "method", "video_id", "frame")}
    assert fused.maps_for(batch)[:, 0, 0].tolist() == list(range(len(big)))  # item i of both: the same face


def test_deviations_state_this_runs_sizes_threshold_and_optional_experiments():
    P = {"31_dadf": {"size": 128, "n_eval_videos": 20}, "20_focus": {"size": 96},
         "10_prle": {"size": 80, "n_eval_videos": 50}}
    d = L.deviations(P, size=64, threshold_metric="f1", weak_labels=False, prle_masking=True).set_index("aspect")
    assert list(d.columns) == ["paper", "this run", "reason"]
    assert "20 identities" in d.loc["test data", "this run"] and "celebdf-syn (50 identities" in d.loc[
        "test data", "this run"]
    assert d.loc["map resolution", "this run"].startswith("DADF 128 px, PRLE 80 px, FoCus 96 px")
    assert "64 px" in d.loc["map resolution", "this run"] and "mean F1" in d.loc["binarisation threshold", "this run"]
    assert "PRLE's masking on DADF" in d.index and "DADF's training target (weak labels)" not in d.index
    both = L.deviations(P, size=64, threshold_metric="iou", weak_labels=True, prle_masking=False)
    assert set(both.aspect) - set(d.index) == {"DADF's training target (weak labels)"}


def test_figure_puts_the_best_on_top_and_names_the_colours():
    import matplotlib.pyplot as plt

    per = _per({"DADF": [70.0, 72.0, 74.0], "face hull": [60.0], "FoCus (fused CAR map)": [40.0, 45.0, 50.0]})
    fig = L.figure(per, "IoU")
    ax = fig.axes[0]
    ticks = sorted(ax.get_yticklabels(), key=lambda t: -t.get_position()[1])  # top first
    assert [t.get_text() for t in ticks] == ["DADF", "face hull", "FoCus (fused CAR map)"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["pixel labels (exact masks)",
                                                                  "image labels only", "nothing"]
    lower = L.figure(per, "marked real")  # lower is better: the smallest on top
    top = max(lower.axes[0].get_yticklabels(), key=lambda t: t.get_position()[1])
    assert top.get_text() == "FoCus (fused CAR map)"
    plt.close("all")


class _Run:
    def __init__(self):
        self.records = []

    def metric(self, name, value, **labels):
        self.records.append({"name": name, "value": value, **labels})


def test_record_scores_and_detection_write_every_value_under_the_record_contract():
    per = _per({"DADF": [70.0, 72.0], "face hull": [60.0]}).assign(threshold=[0.3, 0.35, 0.5])
    run = _Run()
    L.record_scores(run, per, "celebdf-syn")
    assert len(run.records) == 3 * len(SCORE_COLUMNS)
    assert run.records[len(SCORE_COLUMNS)] == {"name": "pixel AUC", "value": 72.0, "model": "DADF", "seed": 1,
                                               "dataset": "celebdf-syn", "split": "test", "threshold": 0.35}
    det = pd.DataFrame({"localizer": ["DADF"], "seed": [2], "in": [90.0], "x": [70.0], "in-domain AUC": [90.0],
                        "cross-domain AUC": [70.0]})
    run = _Run()
    L.record_detection(run, det, ["in", "x"])
    assert run.records == [{"name": "frame_auc", "value": v, "model": "DADF", "seed": 2, "dataset": n, "split": "test"}
                           for n, v in (("in", 90.0), ("x", 70.0))]
