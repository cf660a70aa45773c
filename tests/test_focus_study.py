"""dfnb.models.focus.study: the paper's effects, the claims over seeds, the tables (hand-made inputs)."""
import numpy as np
import pandas as pd
import pytest

from dfnb.models.focus import protocol, study

IN, CROSS = "ffpp-syn", ["celebdf-syn", "dfdc-syn"]


def test_paper_mean_by_hand():
    # Table II, FF++ (HQ): FoCus 76.13, 73.31, 68.42, 76.62 on CDF, WDF, DFDC, DFDCp; SSIM 72.12, 72.38, 65.35, 72.92
    assert study.paper_mean("II", "FoCus", train_set="FF++ (HQ)") == pytest.approx((76.13 + 73.31 + 68.42 + 76.62) / 4)
    assert study.paper_mean("II", "SSIM", train_set="FF++ (HQ)") == pytest.approx((72.12 + 72.38 + 65.35 + 72.92) / 4)
    # Table VI in-domain AUC: FoCus 91.01, GradCAM 81.35
    assert study.paper_mean("VI", "GradCAM", test_sets=("FF++ (LQ)",)) == pytest.approx(81.35)
    assert np.isnan(study.paper_mean("II", "no such method"))


def _ev(values):
    """evaluator_per_seed-like rows from {source: [(in-domain, cross mean) per seed]}."""
    return pd.DataFrame([{"source": s, "train seed": i, IN: v[0], "cross-domain mean": v[1]}
                         for s, vals in values.items() for i, v in enumerate(vals)])


def test_claims_pair_by_seed_and_take_the_papers_sign():
    ev = _ev({"FoCus": [(90, 70), (91, 71), (92, 72)], "SSIM": [(80, 60), (80, 61), (80, 62)],
              "GradCAM": [(95, 80), (96, 81), (97, 82)]})
    det = pd.DataFrame([{"model": m, "train seed": i, IN: a + i, "cross-domain mean": a - 20 + i}
                        for m, a in (("FoCus (RGB + Sobel)", 95), ("plain ViT", 94.5)) for i in range(3)])
    rows = {r["claim"]: r for r in study.claims(ev, det, pd.DataFrame(), in_domain=IN, cross=CROSS)}
    ssim = next(r for c, r in rows.items() if "SSIM" in c)
    assert ssim["our_effect"] == pytest.approx(10.0) and ssim["n_seeds"] == 3  # 70-60, 71-61, 72-62
    assert ssim["paper_effect"] == pytest.approx(73.62 - 70.6925) and ssim["verdict"] == "reproduced"
    assert ssim["ci_low"] == pytest.approx(10.0) and ssim["ci_high"] == pytest.approx(10.0)
    gc = [r for c, r in rows.items() if "Grad-CAM" in c]
    assert len(gc) == 2  # Table VI: cross-domain and in-domain
    assert all(r["verdict"] == "not reproduced" for r in gc)  # Grad-CAM is better here, the paper says worse
    assert sorted(r["our_effect"] for r in gc) == pytest.approx([-10.0, -5.0])
    vii = [r for c, r in rows.items() if r["paper_table"] == "VII"]
    assert len(vii) == 2 and all(r["our_effect"] == pytest.approx(0.5) for r in vii)
    assert all(r["verdict"] == "reproduced" for r in vii)  # a constant +0.5: a zero-width interval above 0
    assert not any("pixel differences" in c for c in rows)  # no diff source: no claim


def test_direct_claim_and_not_run_rows():
    direct = pd.DataFrame([{"source": s, "train seed": i, "pixel_auc_fake": v + 0.01 * i}
                           for s, v in (("FoCus", 0.9), ("GradCAM", 0.7)) for i in range(3)])
    (row,) = study.claims(pd.DataFrame(), pd.DataFrame(), direct, in_domain=IN, cross=CROSS)
    assert row["our_effect"] == pytest.approx(20.0) and row["verdict"] == "reproduced" and np.isnan(row["paper_effect"])
    (nr,) = study.not_run_claims({"Table IV: FoCus is robust": "off in the default profile"})
    assert nr["verdict"] == "inconclusive" and nr["n_seeds"] == 0 and nr["paper_table"] == "IV"
    from dfnb import stats
    assert list(stats.claims_table([row, nr]).columns) == list(stats.CLAIM_COLUMNS)


def test_mean_ci_table_and_competence():
    per = pd.DataFrame({"source": ["a"] * 3 + ["b"], "x": [1.0, 2.0, 3.0, 5.0]})
    t = study.mean_ci_table(per, "source", ["x"])
    # mean 2, s = 1, t_{0.975,2} = 4.303: 2 -/+ 4.303 / sqrt(3) = [-0.48, 4.48]
    assert t.loc["a", "x"] == "2.00 [-0.48, 4.48]" and t.loc["b", "x"] == "5.00"
    det = pd.DataFrame({"model": ["FoCus (RGB + Sobel)"] * 2, IN: [89.0, 93.0]})
    ev = pd.DataFrame({"source": ["exact masks"] * 2, IN: [96.0, 95.0]})
    c = study.competence(det, ev, IN)
    assert c.loc["FoCus (RGB + Sobel)", "reached"] and c.loc["evaluator, exact masks", "reached"]
    assert not study.competence(det, ev, IN, head_bar=92.0).loc["FoCus (RGB + Sobel)", "reached"]
    said = study.competence_sentence(c, 2)
    assert "91.00 against a bar of 90 (reached)" in said and "learnt the task" in said and "nan" not in said
    assert "NOT reached" in study.competence_sentence(study.competence(det, ev, IN, head_bar=92.0), 2)


def test_power_sentence_pairs_exact_masks_with_no_map():
    ev = _ev({"exact masks": [(95.0, 73.0), (96.0, 74.0), (97.0, 75.5)],
              "no map": [(95.5, 70.0), (95.5, 71.0), (95.5, 72.0)]})
    taus = pd.DataFrame({"kendall_tau": [0.8, np.nan], "p_value": [0.08, np.nan]}, index=["in", "cross"])
    said = study.power_sentence(ev, taus, IN)
    # in-domain: differences -0.5, 0.5, 1.5 -> mean 0.50, s = 1, t_{0.975,2} = 4.303: [-1.98, 2.98]
    assert "in-domain +0.50 [-1.98, 2.98]" in said
    # cross-domain: 3, 3, 3.5 -> mean 3.17, s = 0.289: half 4.303 * 0.289 / sqrt(3) = 0.72
    assert "cross-domain +3.17 [2.45, 3.88]" in said and "lifts the evaluator cross-domain" in said
    assert "in: 0.80 (p 0.08)" in said and "nan" not in said
    flat = _ev({"exact masks": [(95.0, 70.0), (96.0, 71.0)], "no map": [(95.5, 70.5), (95.5, 70.5)]})
    assert "does not measurably lift" in study.power_sentence(flat, taus, IN)
    assert study.power_sentence(_ev({"FoCus": [(1.0, 2.0)]}), taus, IN) == ""
    one = study.power_sentence(_ev({"exact masks": [(95.0, 70.0)], "no map": [(94.0, 69.0)]}), taus, IN)
    assert "over 1 training seed (AUC" in one and "in-domain +1.00," in one and "no interval" in one
    assert "nan" not in one


def test_kinds_and_sources():
    kw = study.focus_kwargs(96)
    assert kw["backbone"] == "lite0_hybrid" and kw["pretrained"] and kw["num_heads"] == 3
    with pytest.raises(ValueError, match="multiple of patch_size"):
        study.focus_kwargs(100, backbone="deit_small_patch16_224", patch_size=16)
    with pytest.raises(ValueError, match="unknown model kind"):
        study.train_kind("xception", None, None, [0], focus_kw=kw, epochs=1, batch_size=2, lr=1e-3)
    with pytest.raises(KeyError, match="plain ViT of training seed 1"):
        study.maps_of("gradcam", {}, {"plain": {0: None}}, 1, batch_size=4)


def test_ranking_puts_the_direct_score_first_and_counts_exact_masks_as_perfect():
    direct = pd.DataFrame({"source": ["FoCus", "FoCus", "SSIM", "SSIM"], "train seed": [0, 1, 0, 1],
                           "pixel_auc_fake": [0.8, 0.9, 0.6, 0.6]})
    ev = pd.DataFrame({"source": ["exact masks", "no map", "FoCus", "SSIM"], "train seed": 0,
                       IN: [96.0, 90.0, 92.0, 91.0], "cross-domain mean": [70.0, 60.0, 66.0, 64.0]})
    r = study.ranking(direct, ev, IN)
    assert list(r.index) == ["exact masks", "FoCus", "SSIM"]  # no map has no direct score
    assert r.iloc[:, 0].tolist() == pytest.approx([1.0, 0.85, 0.6])
    assert r.iloc[:, 1].tolist() == pytest.approx([0.96, 0.92, 0.91])
    taus = protocol.kendall_agreement(r)
    assert taus["kendall_tau"].tolist() == pytest.approx([1.0, 1.0])  # same order three ways


def test_skipped_claims_name_each_untested_claim_and_why():
    on = dict(corruption_suite=True, pcl_table=True, ablations=True, sweeps=True)
    every = ["gt", "none", "ssim", "diff", "diff@0.1", "gradcam", "scorecam", "focus", "rgb"]
    assert study.skipped_claims(**on, sources=every) == {}
    got = study.skipped_claims(**{**on, "pcl_table": False}, sources=[s for s in every if s not in ("scorecam", "rgb")])
    assert any(k.startswith("Table III") for k in got)
    assert "hours on a CPU" in next(v for k, v in got.items() if "Score-CAM" in k)
    assert "'rgb' not in map_sources" in next(v for k, v in got.items() if k.startswith("Table V:"))
    assert len(got) == 3


def test_paper_value_and_the_kinds_a_run_trains():
    assert study.paper_value("IV", "FoCus (w/o Sobel)", setting="Average") == pytest.approx(84.8)
    assert np.isnan(study.paper_value("IV", "FoCus"))  # nine rows match: no single value
    assert study.kinds_for(["gt", "focus"], False) == ["focus", "plain"]
    assert study.kinds_for(["gt", "rgb"], False) == study.kinds_for([], True) == ["focus", "plain", "rgb"]


def test_deviations_state_this_runs_schedule_and_backbone():
    kw = study.focus_kwargs(96)
    d = study.deviations(size=96, n_train=2000, n_test=1000, epochs=6, eval_epochs=6, n_seeds=3, focus_kw=kw,
                         sources=["gt", "none", "focus"], cross=["celebdf-syn"], lr=3e-4, eval_lr=1e-3)
    d = d.set_index("aspect") if "aspect" in d.columns else d
    row = d.loc["training", "this run"]
    assert "6 epochs at lr 0.0003 (FoCus and plain ViT)" in row and "evaluators 6 epochs at lr 0.001" in row
    assert "2000 ffpp-syn HQ faces at 96 px" == d.loc["training data", "this run"]
    assert "hybrid ViT" in d.loc["backbone", "this run"] and d["reason"].str.len().min() > 5
