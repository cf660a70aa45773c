"""Chapter 20's experiment loop over training seeds, and the claims it decides (FoCus, IEEE TIFS 2024).

The data are fixed (data seed 0); every trained model is repeated per *training seed* and cached
(:func:`dfnb.experiments.train_seeded`), so a re-executed chapter loads what it trained.

Models, one per (kind, training seed), all on the same backbone (``focus_kwargs``):

============ =================================================================================================
``focus``    FoCus: RGB + Sobel branches, CARP, CL (the paper's model)
``plain``    a plain ViT detector, class-token head, no CARP, no CL: the paper's Grad-CAM / Score-CAM source
``rgb``      FoCus without its Sobel branch (Table V's "RGB" row; Table IV's "w/o Sobel")
============ =================================================================================================

Map sources (``SOURCE_KIND``: which kind's model of the same seed makes them; none for the others):
``gt`` (exact masks), ``none`` (all zero), ``ssim``, ``diff``, ``diff@0.1`` (against the pristine face),
``gradcam`` / ``scorecam`` (of the plain ViT), ``focus`` (FoCus's Eq. 5 map), ``rgb`` (the RGB-only FoCus's
map).  Each source judged by one evaluator (EfficientNet-lite0 + FPN) per training seed.

Claims (:func:`claims`): each a paired difference over training seeds (``dfnb.stats.claim_row``), judged
against the sign of the paper's effect, computed from ``dfnb.papers`` by :func:`paper_mean`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from dfnb.report import mean_ci_table  # noqa: F401  (chapter 20 calls it as fs.mean_ci_table)

from . import protocol

#: each kind's changes to the FoCus configuration
KINDS = {"focus": {}, "plain": {"modality": None, "carp": False}, "rgb": {"modality": None}}
KIND_NAMES = {"focus": "FoCus (RGB + Sobel)", "plain": "plain ViT", "rgb": "FoCus, RGB only"}
#: the model kind whose trained model (of the same seed) makes a map source; other sources need none
SOURCE_KIND = {"focus": "focus", "gradcam": "plain", "scorecam": "plain", "rgb": "rgb"}
#: map sources by the paper's names (Tables II, V, VI)
SOURCE_NAMES = {"gt": "exact masks", "none": "no map", "ssim": "SSIM", "diff": "Pixel-wise",
                "diff@0.1": "Pixel-wise@0.1", "gradcam": "GradCAM", "scorecam": "ScoreCAM", "focus": "FoCus",
                "rgb": "RGB"}
CROSS_PAPER = ("CDF", "WDF", "DFDC", "DFDCp")


def focus_kwargs(size: int, *, backbone: str = "lite0_hybrid", stage: int = 4, depth: int = 2,
                 embed_dim: int = 192, patch_size: int = 16) -> dict:
    """FoCus's model keyword arguments for faces of ``size`` px: the hybrid ViT stand-in (ImageNet lite0 stem
    up to ``stage``, ``depth`` blocks of width ``embed_dim``) or a timm ViT name (``patch_size``)."""
    kw = dict(img_size=size, backbone=backbone, depth=depth, embed_dim=embed_dim,
              num_heads=max(1, embed_dim // 64))
    if backbone == "lite0_hybrid":
        kw.update(pretrained=True, stage=stage)
    else:
        protocol.check_patch_grid(size, patch_size)
        kw["patch_size"] = patch_size
    return kw


def train_kind(kind: str, train_set, val_set, seeds: Sequence[int], *, focus_kw: Mapping, epochs: int,
               batch_size: int, lr: float, device: str = "cpu", progress: bool = False, cache=True) -> dict:
    """``{seed: Experiment}``: the ``kind`` model (``KINDS``) trained from each seed, or loaded."""
    from dfnb.experiments import train_seeded

    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose from {sorted(KINDS)}")
    return {s: train_seeded("focus", train_set, val_set, seed=s, model_kwargs={**focus_kw, **KINDS[kind]},
                            epochs=epochs, batch_size=batch_size, lr=lr, device=device, progress=progress,
                            cache=cache) for s in seeds}


def maps_of(source: str, splits: Mapping, models: Mapping, seed: int, *, batch_size: int,
            device: str = "cpu", label_free: bool = False) -> dict:
    """``{split: (N, 1, H, W) float16 maps}`` of ``source`` on every split, cached (``label_free``: see
    :func:`dfnb.models.focus.protocol.source_maps`).

    ``models``: ``{kind: {seed: Experiment}}``; a model source (``SOURCE_KIND``) uses that kind's model of
    ``seed`` (``rgb`` is the RGB-only FoCus's own fused map); the others need no model (same maps for every
    seed)."""
    kind = SOURCE_KIND.get(source)
    extra = {"label_free": True} if label_free else {}  # (absent when False: the cached maps' keys stay)
    if kind is None:
        return protocol.split_maps(source, splits, key="no model", batch_size=batch_size, device=device, **extra)
    if kind not in models or seed not in models[kind]:
        raise KeyError(f"map source {source!r} needs the {KIND_NAMES[kind]} of training seed {seed}; "
                       f"trained: { {k: sorted(v) for k, v in models.items()} }")
    exp = models[kind][seed]
    return protocol.split_maps("focus" if source == "rgb" else source, splits, exp.model, key=exp.key,
                               batch_size=batch_size, device=device, **extra)


def all_maps(sources: Sequence[str], seeds: Sequence[int], splits: Mapping, models: Mapping, *,
             batch_size: int, device: str = "cpu") -> dict:
    """``{(source, seed): {split: maps}}`` for every source and training seed (:func:`maps_of`); a source
    that needs no model is computed once and shared by all seeds."""
    out, shared = {}, {}
    for seed in seeds:
        for s in sources:
            if s in SOURCE_KIND:
                out[s, seed] = maps_of(s, splits, models, seed, batch_size=batch_size, device=device)
            else:
                if s not in shared:
                    shared[s] = maps_of(s, splits, models, seed, batch_size=batch_size, device=device)
                out[s, seed] = shared[s]
    return out


def evaluate_sources(maps: Mapping, train_set, val_set, test_sets: Mapping, *, epochs: int, batch_size: int,
                     lr: float, evaluator: str = "evaluator_effnet", evaluator_kwargs: Mapping | None = None,
                     device: str = "cpu") -> dict:
    """``{(source, seed): evaluate_map_source result}``: one evaluator per map source and training seed,
    trained from that seed with ``maps[(source, seed)]`` (:func:`all_maps`) as its auxiliary target."""
    return {(s, seed): protocol.evaluate_map_source(
        train_set, val_set, m["train"], m["val"], test_sets, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
        model=evaluator, model_kwargs=dict(evaluator_kwargs or {}), device=device) for (s, seed), m in maps.items()}


def record_evaluators(run, results: Mapping, *, train_set: str, evaluator: str = "evaluator_effnet") -> None:
    """Every evaluator's training time and test ACC / AUC through ``run.metric`` (record contract: the
    evaluator is the ``model``, its training seed the ``seed``, the map source a label)."""
    for (s, seed), r in results.items():
        lab = dict(model=evaluator, seed=seed, map_source=s, train_set=train_set)
        run.metric("train_seconds", round(r["seconds"], 1), cached=r["cached"], **lab)
        for name, auc in r["auc"].items():
            run.metric("frame_auc", auc, dataset=name, split="test", **lab)
            run.metric("frame_acc", r["acc"][name], dataset=name, split="test", **lab)


def kinds_for(sources: Sequence[str], corruption_suite: bool) -> list[str]:
    """The model kinds a run trains: FoCus and the plain ViT always (Table VII, Grad-CAM), the RGB-only FoCus
    when its maps are a source or Table IV compares it."""
    return ["focus", "plain"] + (["rgb"] if "rgb" in sources or corruption_suite else [])


def record_direct(run, direct, *, dataset: str) -> None:
    """Each source's and seed's pixel AUC on the test fakes (:func:`direct_per_seed`) through ``run.metric``."""
    for _, r in direct.iterrows():
        run.metric("pixel_auc_fake", r["pixel_auc_fake"], dataset=dataset, split="test", model=r["source"],
                   seed=r["train seed"])


def record_models(run, models: Mapping, det_per_seed, *, train_set: str) -> None:
    """Each trained model's training time and its own head's test AUC (points in ``det_per_seed``, recorded as
    fractions) through ``run.metric``."""
    for kind, exps in models.items():
        for seed, e in exps.items():
            run.metric("train_seconds", round(e.train_seconds, 1), model=KIND_NAMES[kind], seed=seed,
                       dataset=train_set, cached=e.cached, best_epoch=e.history.best_epoch)
    sets = [c for c in det_per_seed.columns if c not in ("model", "train seed", "in-domain ACC", "cross-domain mean")]
    for _, r in det_per_seed.iterrows():
        for n in sets:
            run.metric("frame_auc", r[n] / 100, dataset=n, split="test", model=r["model"], seed=r["train seed"],
                       train_set=train_set)


# ----------------------------------------------------------------------------- tables
def _cross_mean(aucs: Mapping[str, float], in_domain: str) -> float:
    cross = [v for k, v in aucs.items() if k != in_domain]
    return float(np.mean(cross)) if cross else float("nan")


def evaluator_per_seed(results: Mapping, in_domain: str):
    """Long table, one row per (source, seed): in-domain ACC and AUC, each test set's AUC and the
    cross-domain mean AUC, in points (%)."""
    import pandas as pd

    rows = []
    for (s, seed), r in results.items():
        row = {"source": SOURCE_NAMES.get(s, s), "train seed": seed, "in-domain ACC": 100 * r["acc"][in_domain]}
        row.update({n: 100 * a for n, a in r["auc"].items()})
        row["cross-domain mean"] = 100 * _cross_mean(r["auc"], in_domain)
        rows.append(row)
    return pd.DataFrame(rows)


def detector_per_seed(models: Mapping, test_sets: Mapping, in_domain: str, *, device: str = "cpu"):
    """Long table, one row per (model kind, seed): each model's own head on every test set (frame AUC,
    points; in-domain ACC) and the cross-domain mean.  Evaluations go through the experiment cache."""
    import pandas as pd

    rows = []
    for kind, exps in models.items():
        for seed, e in exps.items():
            det = {n: e.evaluate(ds, batch_size=64, device=device)["detection"] for n, ds in test_sets.items()}
            aucs = {n: d["frame_auc"] for n, d in det.items()}
            row = {"model": KIND_NAMES[kind], "train seed": seed, "in-domain ACC": 100 * det[in_domain]["frame_acc"]}
            row.update({n: 100 * a for n, a in aucs.items()})
            row["cross-domain mean"] = 100 * _cross_mean(aucs, in_domain)
            rows.append(row)
    return pd.DataFrame(rows)


def direct_per_seed(maps_by_seed: Mapping, gt, labels):
    """Long table, one row per (source, seed): the source's test maps against the exact masks
    (``protocol.direct_scores``: pixel AUC on fakes, IoU / F1 at 0.5, ...), for ``maps_by_seed[(source,
    seed)] = (N, 1, H, W) maps``."""
    import pandas as pd

    rows = []
    for (s, seed), m in maps_by_seed.items():
        d = protocol.direct_scores({SOURCE_NAMES.get(s, s): np.asarray(m, dtype=np.float32)}, gt, labels)
        rows.append({"source": SOURCE_NAMES.get(s, s), "train seed": seed, **d.iloc[0].to_dict()})
    return pd.DataFrame(rows)


def ranking(direct, ev_per_seed, in_domain: str):
    """The map sources that have both a direct and an evaluator score (``exact masks`` counts as a perfect
    map, pixel AUC 1; ``no map`` is left out), each score a mean over training seeds: first column the
    direct pixel AUC on the fakes (:func:`direct_per_seed`), then the evaluator's in-domain and cross-domain
    mean AUC (fractions; :func:`evaluator_per_seed`).  ``protocol.kendall_agreement`` compares the first
    column with each other."""
    d = direct.groupby("source", sort=False)["pixel_auc_fake"].mean()
    e = ev_per_seed.groupby("source", sort=False)[[in_domain, "cross-domain mean"]].mean() / 100
    both = [s for s in e.index if s in d.index or s == SOURCE_NAMES["gt"]]
    rank = e.loc[both].rename(columns={in_domain: f"evaluator AUC ({in_domain})",
                                       "cross-domain mean": "evaluator AUC (cross-domain mean)"})
    rank.insert(0, f"direct pixel AUC ({in_domain})", [1.0 if s == SOURCE_NAMES["gt"] else d[s] for s in both])
    return rank


# ----------------------------------------------------------------------------- the paper's effects and claims
def paper_mean(table: str, method: str, *, train_set: str | None = None, test_sets=CROSS_PAPER,
               setting: str | None = None, metric: str = "AUC") -> float:
    """The paper's mean ``metric`` of ``method`` over ``test_sets`` in ``table`` (NaN if any is missing):
    :func:`paper_value` per test set."""
    match = {k: v for k, v in (("train_set", train_set), ("setting", setting)) if v is not None}
    return float(np.mean([paper_value(table, method, metric=metric, test_set=c, **match) for c in test_sets]))


def paper_value(table: str, method: str, *, metric: str = "AUC", **match) -> float:
    """The paper's one value of ``method`` / ``metric`` in ``table`` whose other columns equal ``match``
    (e.g. ``setting="Average"``); NaN unless exactly one row matches."""
    from dfnb import papers

    t = papers.load_table("focus", table)
    t = t[(t["method"] == method) & (t["metric"] == metric)]
    for k, v in match.items():
        t = t[t[k] == v]
    return float(t["value"].iloc[0]) if len(t) == 1 else float("nan")


#: (claim, paper table, our map source, our reference source, paper method, paper reference, paper train set):
#: each judged on the evaluators trained with the two sources
_EVALUATOR_CLAIMS = [
    ("FoCus maps make a better evaluator than SSIM maps", "II", "focus", "ssim", "FoCus", "SSIM", "FF++ (HQ)"),
    ("FoCus maps make a better evaluator than pixel differences", "II", "focus", "diff", "FoCus", "Pixel-wise",
     "FF++ (HQ)"),
    ("FoCus maps make a better evaluator than pixel differences @ 0.1", "II", "focus", "diff@0.1", "FoCus",
     "Pixel-wise@0.1", "FF++ (HQ)"),
    ("FoCus maps make a better evaluator than a plain ViT's Grad-CAM", "VI", "focus", "gradcam", "FoCus",
     "GradCAM", "FF++ (LQ)"),
    ("FoCus maps make a better evaluator than a plain ViT's Score-CAM", "VI", "focus", "scorecam", "FoCus",
     "ScoreCAM", "FF++ (LQ)"),
    ("the Sobel branch makes FoCus's maps better (RGB + Sobel vs RGB only)", "V", "focus", "rgb",
     "RGB + Sobel (FoCus)", "RGB", "FF++ (LQ)"),
]


def _pivot(per_seed, key: str, value: str):
    return per_seed.pivot_table(index="train seed", columns=key, values=value, sort=False)


def claims(ev_per_seed, det_per_seed, direct, *, in_domain: str, cross: Sequence[str]) -> list[dict]:
    """The chapter's claims rows (``dfnb.stats.claim_row``), each a paired difference over training seeds:

    - Tables II and VI (and V's Sobel row): the evaluator trained with FoCus maps against one trained with
      each other source present in ``ev_per_seed`` (:func:`evaluator_per_seed`), on the cross-domain mean
      AUC; and for Table VI also in-domain (the paper prints in-domain AUC there).
    - Table VII: FoCus's own head against the plain ViT's (``det_per_seed``, :func:`detector_per_seed`), in
      domain and cross-domain; the paper's nearest pair is FoCus against UIA-ViT (a ViT detector).
    - What the paper could not measure: FoCus maps against the plain ViT's Grad-CAM on the exact masks
      (``direct``, :func:`direct_per_seed`, pixel AUC on fakes); the paper's effect is its direction only.
    """
    from dfnb import stats

    rows = []
    ds_cross = f"{in_domain} -> " + ", ".join(cross)
    have = set(ev_per_seed["source"]) if len(ev_per_seed) else set()
    for claim, table, ours, ref, p_ours, p_ref, p_train in _EVALUATOR_CLAIMS:
        a, b = SOURCE_NAMES[ours], SOURCE_NAMES[ref]
        if a not in have or b not in have:
            continue
        for col, tests, ds, metric in (
                ("cross-domain mean", CROSS_PAPER, ds_cross, "evaluator's cross-domain mean frame AUC (points)"),
                (in_domain, ("FF++ (LQ)",), f"{in_domain} (test)", "evaluator's in-domain frame AUC (points)")):
            if col == in_domain and table == "II":
                continue  # Table II prints cross-domain AUC only (its Table I is not in the text copy)
            t = _pivot(ev_per_seed, "source", col)[[a, b]].dropna()
            effect = (paper_mean(table, p_ours, train_set=p_train, test_sets=tests)
                      - paper_mean(table, p_ref, train_set=p_train, test_sets=tests))
            where = "in-domain" if col == in_domain else "cross-domain"
            rows.append(stats.claim_row(f"{claim} ({where}; paper: {p_train})", table, effect, t[b], t[a],
                                        dataset=ds, metric=metric))
    if len(det_per_seed) and {KIND_NAMES["focus"], KIND_NAMES["plain"]} <= set(det_per_seed["model"]):
        f, p = KIND_NAMES["focus"], KIND_NAMES["plain"]
        for col, tests, ds, where in ((in_domain, ("FF++ (HQ)",), f"{in_domain} (test)", "in-domain"),
                                      ("cross-domain mean", ("CDF", "WDF", "DFDC", "DFDCp"), ds_cross,
                                       "cross-domain")):
            t = _pivot(det_per_seed, "model", col)[[f, p]].dropna()
            effect = (paper_mean("VII", "FoCus", train_set="FF++ (HQ)", test_sets=tests)
                      - paper_mean("VII", "UIA-ViT", train_set="FF++ (HQ)", test_sets=tests))
            rows.append(stats.claim_row(f"FoCus detects better than a ViT detector ({where}; paper: against "
                                        "UIA-ViT; here: a plain ViT of the same backbone)", "VII", effect, t[p],
                                        t[f], dataset=ds, metric=f"detector's {where} frame AUC (points)"))
    if len(direct) and {"FoCus", "GradCAM"} <= set(direct["source"]):
        t = _pivot(direct, "source", "pixel_auc_fake")[["FoCus", "GradCAM"]].dropna() * 100
        row = stats.claim_row("FoCus maps lie closer to the true manipulated region than Grad-CAM (exact masks; "
                              "the paper shows it only in figures)", "Fig", 1.0, t["GradCAM"], t["FoCus"],
                              dataset=f"{in_domain} (test fakes)", metric="pixel AUC against the exact masks (points)")
        rows.append({**row, "paper_effect": float("nan")})
    return rows


def not_run_claims(reasons: Mapping[str, str]) -> list[dict]:
    """Rows for paper claims this run did not test (``{claim: why}``, the claim starting "Table N:"):
    :func:`dfnb.stats.not_run_row`."""
    from dfnb.stats import not_run_row

    return [not_run_row(claim, claim.split(":")[0].replace("Table ", ""), why) for claim, why in reasons.items()]


def competence(det_per_seed, ev_per_seed, in_domain: str, *, head_bar: float = 90.0, evaluator_bar: float = 95.0):
    """The bars the chapter's main models must reach (issue #14): FoCus's head in-domain AUC >= ``head_bar``
    and the evaluator with the exact masks >= ``evaluator_bar`` (means over seeds, points): a DataFrame
    ``model, mean, bar, reached``."""
    import pandas as pd

    rows = []
    for label, df, key, name, bar in ((KIND_NAMES["focus"], det_per_seed, "model", KIND_NAMES["focus"], head_bar),
                                      (KIND_NAMES["plain"], det_per_seed, "model", KIND_NAMES["plain"], None),
                                      ("evaluator, exact masks", ev_per_seed, "source", "exact masks",
                                       evaluator_bar),
                                      ("evaluator, no map", ev_per_seed, "source", "no map", None)):
        if len(df) and name in set(df[key]):
            m = float(df.loc[df[key] == name, in_domain].mean())
            rows.append({"model": label, "in-domain AUC (mean over seeds)": m, "bar": bar,
                         "reached": None if bar is None else bool(m >= bar)})
    return pd.DataFrame(rows).set_index("model")


def deviations(*, size: int, n_train: int, n_test: int, epochs: int, eval_epochs: int, n_seeds: int,
               focus_kw: Mapping, sources: Sequence[str], cross: Sequence[str], lr: float, eval_lr: float):
    """The deviations table: ``aspect, paper, this run, reason`` for every protocol difference."""
    import pandas as pd

    bb = focus_kw.get("backbone")
    vit = (f"hybrid ViT: ImageNet EfficientNet-lite0 stem up to blocks[{focus_kw.get('stage')}], then "
           f"{focus_kw['depth']} transformer blocks of width {focus_kw['embed_dim']}" if bb == "lite0_hybrid"
           else f"timm {bb}, {focus_kw['depth']} blocks of width {focus_kw['embed_dim']}, random init")
    rows = [
        ("training data", "FF++ (c23 HQ / c40 LQ), all frames of 720 training videos",
         f"{n_train} ffpp-syn HQ faces at {size} px", "no real face data set is available here; 2 CPU cores"),
        ("test sets", "FF++, Celeb-DF, WildDeepfake, DFDC, DFDCp", f"ffpp-syn and {', '.join(cross)} "
         f"({n_test} ffpp-syn test faces)", "synthetic stand-ins with calibrated domain shifts (chapter 00)"),
        ("backbone", "ViT-S/16 with ImageNet weights, in both branches", vit,
         "no ViT ImageNet weights can be had offline; a ViT from scratch on a few thousand faces stays near "
         "chance (the recorded run before this one: head AUC 0.57); the hybrid ViT of Dosovitskiy et al. "
         "(Sec. 3.1) takes its patch embedding from the only offline ImageNet CNN"),
        ("token grid", "14 x 14 at 224 px (presumably)", f"{size // 16} x {size // 16} at {size} px",
         "the lite0 stem's stride 16"),
        ("position encoding", "fixed (the text)", "fixed 2-D sin-cos in both branches", "as the paper"),
        ("training", "not stated in full (GPU)", f"AdamW, cosine; {epochs} epochs at lr {lr:g} (FoCus and plain "
         f"ViT); evaluators {eval_epochs} epochs at lr {eval_lr:g}; checkpoint on validation AUC", "CPU budget"),
        ("evaluator", "EfficientNet-B4 + FPN", "EfficientNet-lite0 (ImageNet) + FPN",
         "the only EfficientNet with offline ImageNet weights"),
        ("Grad-CAM / Score-CAM source", "a plain ViT-S detector", "a plain ViT detector of the same backbone "
         "(class-token head, no CARP, no CL); CAM at its last block's norm1", "as the paper"),
        ("map sources", "SSIM, Pixel-wise, @0.1, GFFD, MaDD, UIA-ViT, Grad-CAM, Score-CAM, FoCus",
         ", ".join(SOURCE_NAMES.get(s, s) for s in sources),
         "GFFD, MaDD and UIA-ViT are other papers' models; Score-CAM needs one forward pass per channel "
         f"({focus_kw['embed_dim']}) per face, hours on a CPU (paper profile)"),
        ("seeds", "one run per row", f"{n_seeds} training seeds for every model and evaluator", "3 seeds decide "
         "a claim"),
    ]
    return pd.DataFrame(rows, columns=["aspect", "paper", "this run", "reason"]).set_index("aspect")


# ----------------------------------------------------------------------------- one-seed extras
def table4_claim(rob: Mapping, dataset: str) -> dict:
    """Table IV's claim from one training seed: the Sobel branch makes FoCus more robust, i.e. a higher AUC
    averaged over the corruption kinds (each already averaged over levels), FoCus against FoCus without its
    Sobel branch.  ``rob``: ``{"focus": corruption table, "rgb": corruption table}`` (``protocol.corruption_auc``)."""
    from dfnb import stats

    mean = {k: 100 * float(t.drop(index="clean")["mean"].mean()) for k, t in rob.items()}
    paper = paper_value("IV", "FoCus", setting="Average") - paper_value("IV", "FoCus (w/o Sobel)", setting="Average")
    return stats.claim_row("the Sobel branch makes FoCus more robust to corruptions (one seed)", "IV", paper,
                           [mean["rgb"]], [mean["focus"]], dataset=f"{dataset} (test, corrupted)",
                           metric="frame AUC averaged over corruptions and levels (points)")


def table3_claims(t3) -> list[dict]:
    """Table III's claim from one training seed: a PCL-style evaluator does better with FoCus maps than with
    its original SSIM maps (cross-domain mean AUC; ``t3``: :func:`evaluator_per_seed` of the PCL runs)."""
    from dfnb import stats

    if not {"FoCus", "SSIM"} <= set(t3["source"]):
        return []
    t = _pivot(t3, "source", "cross-domain mean")[["FoCus", "SSIM"]].dropna()
    effect = (paper_mean("III", "FoCus", train_set="FF++ (HQ)", setting="PCL")
              - paper_mean("III", "SSIM", train_set="FF++ (HQ)", setting="PCL"))
    return [stats.claim_row("FoCus maps help a PCL-style detector more than its SSIM maps (one seed)", "III",
                            effect, t["SSIM"], t["FoCus"], dataset="cross-domain sets",
                            metric="PCL-style detector's cross-domain mean frame AUC (points)")]


def ablation_table(train_set, val_set, splits, test_sets, gt, labels, *, focus_kw: Mapping, seed: int,
                   epochs: int, lr: float, EV: Mapping, modalities=(), modules=(), k_values=(), lambda_values=(),
                   FF: str):
    """Tables V-VI and the K / lambda sweeps from one training seed (``protocol.AblationStudy``): one row per
    FoCus variant (the reference, each second modality, each module ablation, each K and lambda), with the
    evaluator's in-domain and cross-domain mean AUC (points) on the variant's maps, its maps' direct pixel
    AUC and its own head's AUC.  ``lr``: the variants' learning rate (the main models'); ``EV``: the
    evaluators' ``epochs``, ``batch_size``, ``lr``, ``evaluator_kwargs`` and ``device``."""
    import pandas as pd

    protocol.check_ablation_entries(modalities=modalities, modules=modules)
    st = protocol.AblationStudy(train_set, val_set, splits, test_sets, gt, labels, dataset=FF,
                                focus_kwargs=focus_kw, evaluator_kwargs=EV["evaluator_kwargs"], epochs=epochs,
                                eval_epochs=EV["epochs"], batch_size=EV["batch_size"], lr=lr, eval_lr=EV["lr"],
                                seed=seed, device=EV.get("device", "cpu"))
    variants = {"FoCus (reference)": {}, **{protocol.MODALITY_NAMES[m]: {"modality": m} for m in modalities},
                **{m: protocol.MODULES[m] for m in modules}, **{f"K = {k}": {"K": int(k)} for k in k_values},
                **{f"lambda = {lam:g}": {"lambda_cls": float(lam)} for lam in lambda_values}}
    rows = {}
    for name, change in variants.items():
        r = st.row(name, st.variant(**change))
        rows[name] = {"in-domain AUC": 100 * r[f"{FF} AUC"], "cross-domain mean": 100 * r["cross-domain mean"],
                      "direct pixel AUC": 100 * r[protocol.PIXEL_AUC], "own head AUC": 100 * r[protocol.HEAD_AUC]}
    return pd.DataFrame(rows).T


def ablation_claims(abl) -> list[dict]:
    """One-seed claims of Tables V and VI: the reference FoCus against each second modality and each module
    ablation in :func:`ablation_table` (evaluator's cross-domain mean AUC)."""
    from dfnb import stats

    ref = abl.loc["FoCus (reference)", "cross-domain mean"]
    rows = []
    for name in abl.index:
        table = "V" if name in protocol.MODALITY_NAMES.values() else "VI" if name in protocol.MODULES else None
        if table is None:
            continue
        paper_name = "RGB + Sobel (FoCus)" if table == "V" else "FoCus"
        effect = (paper_mean(table, paper_name, train_set="FF++ (LQ)")
                  - paper_mean(table, name, train_set="FF++ (LQ)"))
        rows.append(stats.claim_row(f"FoCus beats its variant '{name}' (one seed)", table, effect,
                                    [abl.loc[name, "cross-domain mean"]], [ref], dataset="cross-domain sets",
                                    metric="evaluator's cross-domain mean frame AUC (points)"))
    return rows


def skipped_claims(*, corruption_suite: bool, pcl_table: bool, ablations: bool, sweeps: bool,
                   sources: Sequence[str]) -> dict:
    """``{claim: why}`` for the paper's claims this run's parameters left untested (rows for
    :func:`not_run_claims`)."""
    off = "off in this profile (CPU time); switch it on with -p {}=True"
    out = {}
    if not corruption_suite:
        out["Table IV: the Sobel branch makes FoCus more robust to corruptions"] = off.format("corruption_suite")
    if not pcl_table:
        out["Table III: FoCus maps help other map-supervised detectors (PCL)"] = off.format("pcl_table")
    if not ablations:
        out["Table V: Sobel is the best second modality (vs RGB, DCT, SRM)"] = off.format("ablations")
        out["Table VI: CARP and CL each help"] = off.format("ablations")
    if not sweeps:
        out["Fig. 10-11: K = 32 and lambda = 0.1 are good choices"] = off.format("sweeps")
    why = {"scorecam": "Score-CAM needs one forward pass per channel per face, hours on a CPU"}
    for claim, table, ours, ref, *_ in _EVALUATOR_CLAIMS:
        missing = [x for x in (ours, ref) if x not in sources]
        if missing:
            out[f"Table {table}: {claim}"] = (f"map source {', '.join(repr(m) for m in missing)} not in map_sources ("
                                              f"{why.get(missing[0], 'CPU time')}); add it with -p map_sources=...")
    return out


def identities(ds) -> np.ndarray:
    """(N,) identity of every item (a fake shares its target's); -1 where the data set does not know it."""
    return np.array([int(ds[i].get("identity", -1)) for i in range(len(ds))])


def power_sentence(ev_per_seed, taus, in_domain: str) -> str:
    """Does the evaluator protocol have power here?  The exact masks minus no map (paired over training
    seeds, in-domain and cross-domain mean AUC, points, :func:`dfnb.stats.paired_effect`) and Kendall's tau
    of ``taus`` (:func:`protocol.kendall_agreement`), in one paragraph; ``""`` without both sources."""
    from dfnb.stats import paired_effect

    if not {"exact masks", "no map"} <= set(ev_per_seed["source"]):
        return ""
    parts, decided = [], []
    for col, where in ((in_domain, "in-domain"), ("cross-domain mean", "cross-domain")):
        t = _pivot(ev_per_seed, "source", col)[["exact masks", "no map"]].dropna()  # seeds both have
        seeds = list(t.index)
        iv = paired_effect(t["no map"].to_numpy(float), t["exact masks"].to_numpy(float))
        parts.append(f"{where} {iv.mean:+.2f}" + (f" [{iv.low:.2f}, {iv.high:.2f}]" if len(seeds) > 1 else ""))
        if iv.low > 0:
            decided.append(where)
    tau = "; ".join(f"{k}: {r['kendall_tau']:.2f} (p {r['p_value']:.2f})" for k, r in taus.iterrows()
                    if np.isfinite(r["kendall_tau"]))
    n = f"{len(seeds)} training seed{'s' * (len(seeds) != 1)}"
    text = f"**Power.** The exact masks minus no map, paired over {n} (AUC points): " + ", ".join(parts) + ". "
    if len(seeds) < 2:
        text += "One training seed gives no interval, so this run cannot say whether the protocol has power."
    else:
        text += ("Even a perfect map does not measurably lift the evaluator (no interval excludes 0), so the "
                 "differences between two real map sources, which should be smaller still, are unlikely to "
                 "show at this number of seeds either."
                 if not decided else f"A perfect map measurably lifts the evaluator {' and '.join(decided)}: "
                 f"there the protocol can tell a good map from none.")
    if tau:
        text += f" Kendall's tau between the evaluator's ranking and the exact-mask ranking: {tau}."
    return text


def competence_sentence(comp, n_seeds: int) -> str:
    """One sentence on whether the bars of :func:`competence` were reached (no verdict means anything
    without them)."""
    bars = comp.dropna(subset=["bar"])
    if not len(bars):
        return "No competence bar applies to this run's models."
    parts = [f"{m}: {r['in-domain AUC (mean over seeds)']:.2f} against a bar of {r['bar']:.0f} "
             f"({'reached' if r['reached'] else 'NOT reached'})" for m, r in bars.iterrows()]
    verdict = ("so the comparisons above are between models that learnt the task" if bars["reached"].all() else
               "so verdicts that depend on the models below their bar are not evidence")
    return f"In-domain AUC (%), mean over {n_seeds} training seeds: " + "; ".join(parts) + f"; {verdict}."
