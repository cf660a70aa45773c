"""DADF's claims over seeds: per-seed scores, paired claims against the paper, noise choice, deviations."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dfnb.models.dadf import claims as C
from dfnb.models.dadf import study


def _report(probs, labels, masks_pred, masks_true):
    from dfnb import metrics

    return {"probs": np.asarray(probs), "labels": np.asarray(labels), "n": len(labels),
            "pred_masks": np.asarray(masks_pred),
            "detection": metrics.detection_report(np.asarray(labels), np.asarray(probs)),
            "localization": metrics.localization_report(np.asarray(masks_pred), np.asarray(masks_true),
                                                        np.asarray(labels))}


def test_seed_scores_marked_area_and_iou_by_hand():
    true = np.zeros((3, 1, 2, 2))
    true[1:, 0, 0, :] = 1  # fakes: top row forged
    pred = np.zeros((3, 1, 2, 2))
    pred[0, 0, 1, 1] = 0.9  # the real face: one pixel of four marked
    pred[1, 0, 0, :] = 0.8  # exact
    pred[2, 0, 0, 0] = 0.7  # half of the region
    r = _report([0.2, 0.9, 0.6], [0, 1, 1], pred, true)
    df = C.seed_scores({("dadf", 0): r}, ["real", "deepfakes", "deepfakes"], {"deepfakes": "DF"})
    row = df.iloc[0]
    assert row["marked real"] == pytest.approx(25.0)
    assert row["marked fake"] == pytest.approx(100 * (2 / 4 + 1 / 4) / 2)
    assert row["IoU"] == pytest.approx(100 * (1.0 + 0.5) / 2)
    assert row["AUC"] == pytest.approx(100.0) and row["ACC"] == pytest.approx(100.0)
    assert list(df.columns[:2]) == ["model", "seed"]


def test_acc_at_the_validation_threshold_by_hand():
    r = _report([0.6, 0.7, 0.8], [0, 1, 1], np.zeros((3, 1, 2, 2)), np.zeros((3, 1, 2, 2)))
    meth, fam = ["real", "deepfakes", "deepfakes"], {"deepfakes": "DF"}
    row = C.seed_scores({("dadf", 0): r}, meth, fam, {("dadf", 0): 0.65}).iloc[0]
    assert row["ACC"] == pytest.approx(200 / 3)  # at 0.5 the real face is called fake too
    assert row["ACC@val"] == pytest.approx(100.0)
    assert math.isnan(C.seed_scores({("dadf", 0): r}, meth, fam).iloc[0]["ACC@val"])


def test_val_thresholds_are_each_models_eer_point_on_validation_only():
    from dfnb.metrics import eer_threshold

    y, p = np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.55, 0.5, 0.8, 0.9])

    class Exp:
        def __init__(self):
            self.seen = []

        def evaluate(self, ds, **kw):
            self.seen.append(ds)
            return {"labels": y, "probs": p}

    e = Exp()
    thr = C.val_thresholds({("dadf", 0): e}, "VAL")
    assert thr == {("dadf", 0): pytest.approx(eer_threshold(y, p))} and e.seen == ["VAL"]
    assert C.paper_effect("5", "B", "C", "ACC@val", "ablation") == C.paper_effect("5", "B", "C", "ACC", "ablation")


def _frame(values):
    return pd.DataFrame([{"model": m, "seed": s, "PBCA": v, "IINC": 10 - v / 10, "ACC": 50.0, "ACC@val": v,
                          "AUC": v} for m, vs in values.items() for s, v in enumerate(vs)])


def test_claims_pair_seeds_and_compare_with_the_paper():
    main = _frame({"dadf": [90.0, 91.0, 92.0], "sam_full_ft": [85.0, 85.5, 86.0]})
    rows = C.claims({"main": main}, {"main": "ffpp-syn HQ test"})
    pbca = next(r for r in rows if r["claim"] == "DADF localizes better than SAM (PBCA)")
    assert pbca["our_effect"] == pytest.approx(np.mean([5.0, 5.5, 6.0]))
    assert pbca["paper_effect"] == pytest.approx(96.64 - 92.97)  # Table 1, FF++ (HQ)
    assert pbca["verdict"] == "reproduced" and pbca["n_seeds"] == 3
    iinc = next(r for r in rows if "IINC" in r["claim"])
    assert iinc["our_effect"] == pytest.approx(0.55)  # lower IINC is the improvement
    assert iinc["paper_effect"] == pytest.approx(4.25 - 3.21)
    lora = next(r for r in rows if r["claim"].startswith("DADF localizes better than SAM+LoRA"))
    assert lora["claim"].endswith("(not run: sam_lora not trained in this run)") and lora["n_seeds"] == 0
    fmld = next(r for r in rows if "on FMLD" in r["claim"])
    assert "no 'fmld' models in this run" in fmld["claim"] and fmld["verdict"] == "inconclusive"
    assert len(rows) == len(C.CLAIMS)  # every claim has a row
    off = C.claims({"main": main}, {}, skipped={"ablation": "ablations off"})
    assert sum("(not run: ablations off)" in r["claim"] for r in off) == 11  # Tables 4-6


def test_table5_dilation_claims_pair_variants_with_the_papers_acc():
    abl = _frame({"B": [90.0, 91.0, 92.0], "C": [91.0, 93.0, 92.5], "D": [89.0, 90.0, 92.0]})
    rows = {r["claim"]: r for r in C.claims({"ablation": abl}, {})}
    c = rows["removing dilation (B) costs more ACC than removing the 3x3 branch (C)"]
    assert c["our_effect"] == pytest.approx(np.mean([1.0, 2.0, 0.5]))
    assert c["paper_effect"] == pytest.approx(95.87 - 95.79)  # Table 5, ACC of C minus B
    d = rows["removing dilation (B) costs more ACC than removing the 1x1 branch (D)"]
    assert d["our_effect"] == pytest.approx(-2 / 3) and d["paper_effect"] == pytest.approx(95.91 - 95.79)


def test_claims_not_reproduced_inconclusive_and_table6_sign_only():
    abl = _frame({"dadf": [80.0, 81.0, 82.0], "adapter_only": [85.0, 86.0, 87.5],
                  "rec_fake": [80.5, 80.0, 82.5], "sam": [70.0, 71.0]})
    rows = {r["claim"]: r for r in C.claims({"ablation": abl}, {})}
    assert rows["RGA improves SAM + Multiscale Adapter (PBCA)"]["verdict"] == "not reproduced"
    t6 = rows["L_rec on real faces beats L_rec on fake faces (PBCA)"]
    assert math.isnan(t6["paper_effect"]) and t6["verdict"] == "inconclusive"
    adapter = rows["the Multiscale Adapter improves SAM (PBCA)"]
    assert adapter["n_seeds"] == 2 and adapter["verdict"] == "inconclusive"  # only seeds 0, 1 are paired


def test_competence_bars_by_hand():
    df = pd.DataFrame({"model": ["dadf"] * 3 + ["sam_lora"], "seed": [0, 1, 2, 0], "AUC": [91.0, 89.0, 92.0, 50.0],
                       "IoU": [70.0, 50.0, 55.0, 0.0], "marked real": [1.0, 2.0, 3.0, 0.0],
                       "PBCA": [90.0, 91.0, 89.5, 84.0]})
    c = C.competence(df, pbca_empty=86.0)
    assert c["mean over seeds"].tolist() == pytest.approx([272 / 3, 175 / 3, 2.0, 270.5 / 3 - 86])
    assert c["reached"].tolist() == [True, False, True, False]  # AUC 90.67, IoU 58.3, real 2 %, PBCA +4.17
    sentence = C.competence_sentence(c, "ffpp-syn HQ test")
    assert sentence.startswith("DADF on ffpp-syn HQ test, mean over 3 training seeds: frame AUC >= 90: 90.67 (reached)")
    assert "IoU of the fake faces' masks >= 60: 58.33 (NOT reached)" in sentence and "not evidence" in sentence
    with pytest.raises(ValueError, match="no 'focus' rows"):
        C.competence(df, 86.0, model="focus")


def test_skipped_parts_name_their_switch():
    assert C.skipped(ablations=True, fmld=True, cross=True, lq=True) == {}
    off = C.skipped(ablations=False, fmld=False, cross=True, lq=False, no_lq="no c40 folder")
    assert set(off) == {"ablation", "fmld", "lq"}
    assert "-p ablations=True" in off["ablation"] and "-p fmld=True" in off["fmld"]
    assert off["lq"] == "no LQ test set (no c40 folder)"
    lq = C.skipped(ablations=True, fmld=True, cross=True, lq=True, lq_models=["dadf"])
    assert lq == {"lq:sam_full_ft": "sam_full_ft not in lq_models: not trained on LQ in this run",
                  "lq:sam_prompt": "sam_prompt not in lq_models: not trained on LQ in this run"}
    assert C.VARIANTS == tuple(k for t, rows in study.ABLATIONS.items() for k in rows if k not in ("sam", "dadf"))
    part = C.skipped(ablations=True, fmld=True, cross=True, lq=True, ablation_variants=["adapter_only", "rec_all"])
    assert set(part) == {"ablation:rga_only", "ablation:B", "ablation:C", "ablation:D", "ablation:rec_fake"}
    abl = _frame({"dadf": [80.0, 81.0], "sam": [70.0, 71.0], "adapter_only": [75.0, 76.0], "rec_all": [79.0, 80.0]})
    rows = {r["claim"]: r for r in C.claims({"ablation": abl}, {}, skipped=part)}
    b = next(r for c, r in rows.items() if c.startswith("the Multiscale Adapter beats variant B"))
    assert "variant B left out of ablation_variants" in b["claim"] and b["n_seeds"] == 0
    assert rows["L_rec on real faces beats L_rec on all faces (PBCA)"]["n_seeds"] == 2  # judged


def test_noise_sweep_table_and_choice():
    res = {0.03: dict(s_over_f=0.1, entropy=0.9, PBCA=90.0, IINC=5.0, AUC=95.0),
           0.001: dict(s_over_f=0.003, entropy=0.999, PBCA=88.0, IINC=6.0, AUC=93.0),
           0.1: dict(s_over_f=0.3, entropy=0.8, PBCA=90.0, IINC=4.0, AUC=94.0)}
    t = C.noise_sweep_table(res)
    assert list(t.index) == [0.001, 0.03, 0.1]
    assert C.choose_noise(t) == 0.03  # tie at PBCA 90: the smaller noise
    assert C.choose_noise(t, "IINC") == 0.1
    with pytest.raises(ValueError, match="lack"):
        C.noise_sweep_table({0.01: {"PBCA": 1.0}})


def test_deviations_state_this_runs_settings():
    d = C.deviations(lr=5e-4, batch_size=16, epochs=6, noise_std=0.03, noise_p=1.0, n_train=2000,
                     sam="micro-SAM", trainable_share=41.25, ablations=False)
    assert d.loc["trainable share", "this run"].startswith("41.2 % here")
    assert "-p ablations=True" in d.loc["ablations (Tables 4-6)", "reason"]
    assert "ablations (Tables 4-6)" not in C.deviations(lr=5e-4, batch_size=16, epochs=6, noise_std=0.03, noise_p=1.0,
                                                        n_train=2000, sam="m", trainable_share=1.0).index
    some = C.deviations(lr=5e-4, batch_size=16, epochs=6, noise_std=0.03, noise_p=1.0, n_train=2000, sam="m",
                        trainable_share=1.0, ablation_variants=["adapter_only", "rga_only", "rec_fake", "rec_all"])
    assert some.loc["ablation variants", "this run"] == "B, C, D not trained in this run"
    assert some.loc["Table 2 training data", "this run"] == "ffpp-syn HQ, tested on ffpp-syn LQ"
    assert "Table 2 training data" not in C.deviations(lr=5e-4, batch_size=16, epochs=6, noise_std=0.03, noise_p=1.0,
                                                       n_train=2000, sam="m", trainable_share=1.0,
                                                       lq_models=["dadf"]).index
    assert some.loc["ablation variants", "reason"].startswith("9 more trainings, 3-6 CPU-hours")
    assert d.loc["optimiser, learning rate", "this run"] == "AdamW, 0.0005"
    assert "std 0.03 on every" in d.loc["RGA noise", "this run"]
    assert "1e-06" in d.loc["RGA noise", "paper"] or "1e-6" in d.loc["RGA noise", "paper"]
    assert d["reason"].str.len().min() > 10


def test_summary_table_means_and_intervals():
    per = pd.DataFrame({"model": ["a"] * 3 + ["b"], "seed": [0, 1, 2, 0], "PBCA": [1.0, 2.0, 3.0, 5.0]})
    t = C.summary_table(per, ["PBCA"], labels={"a": "A"})
    from scipy import stats as st

    half = st.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert t.loc["A", "PBCA"] == f"2.00 [{2 - half:.2f}, {2 + half:.2f}]"
    assert t.loc["b", "PBCA"] == "5.00" and list(t["seeds"]) == [3, 1]


def test_ablation_per_seed_and_noise_sweep_train_through_the_cache(tmp_path):
    from _ddp_worker import toy_splits

    train, val, test = toy_splits()
    kw = dict(model_kwargs={"img_size": 32, "noise_std": 1e-3}, families={"square": "SQ"}, cache=tmp_path,
              epochs=1, batch_size=4, lr=1e-3)
    per = C.ablation_per_seed({"6": ["dadf"]}, train, val, test, seeds=[0, 1], **kw)
    assert list(zip(per.model, per.seed)) == [("dadf", 0), ("dadf", 1)]
    assert len(list((tmp_path / "dadf").iterdir())) == 2
    sweep = C.noise_sweep([1e-3, 1e-1], train, val, seed=0, **kw)
    assert len(list((tmp_path / "dadf").iterdir())) == 3  # noise 1e-3: the seed-0 model above, reused
    assert sweep[0.1]["s_over_f"] > sweep[0.001]["s_over_f"]
    assert 0 < sweep[0.001]["entropy"] <= 1 + 1e-6
