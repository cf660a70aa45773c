"""The DADF chapter's experiment protocol: which SAM, the paper's tables, the figures, the sentences.

Every model is trained by :func:`dfnb.experiments.train_seeded` (seeded, cached, AdamW + cosine decay,
best validation epoch restored); this module only scores and shows them.

- :func:`sam_kwargs`          the model arguments naming the SAM (micro-SAM of chapter 30, or Meta's)
- :func:`acc_by_method`       Table 2's ACC: real test faces + one manipulation at a time, and their mean
- :func:`scores`              one row of Tables 1/4/5/6: PBCA, IINC (per image, all faces), ACC (mean of
  :func:`acc_by_method`), AUC, EER, in percent
- :func:`localization_table`, :func:`mask_area_table`, :func:`acc_table`, :func:`cross_table`,
  :func:`cost_table`  Tables 1, 2, 3 and the cost table beside the paper's numbers, each with the
  metric records the chapter stores (``run.metric(**record)``)
- :data:`ABLATIONS`, :func:`ablation_plan`, :func:`ablation_scores`, :func:`ablation_table`,
  :func:`ablation_figure`  the ablation Tables 4, 5, 6
- figures: :func:`adapter_rf_figure`, :func:`masks_figure`, :func:`attention_figure`
- sentences: :func:`findings` and :func:`more_findings`, made of small templates (:func:`headline`,
  :func:`mask_area_sentence`, :func:`chance_sentence`,
  :func:`fmld_paragraph`, :func:`cross_paragraph`, :func:`table4_paragraph`, :func:`table5_paragraph`,
  :func:`table6_paragraph`, :func:`ablation_caveat`)

Ablations (Section 4.5).  Table 4 starts from "Baseline (SAM)" (``sam_full_ft``: SAM fine-tuned end
to end) and adds the Multiscale Adapter (frozen encoder + adapters, no RGA) or RGA.  The paper's
"SAM + RGA" row adds RGA to its SAM baseline, so here it is the fully fine-tuned SAM with RGA and ``L_rec``
(``adapter=None, freeze_encoder=False``); with adapters the encoder is frozen, as in DADF.  Table 5
swaps the adapter for variants B / C / D (adapter.py), Table 6 computes ``L_rec`` on fake or on all
faces instead of real ones (rga.py).  Every table's reference row is DADF itself (key ``"dadf"``).

ACC per manipulation follows the paper's Table 2 (FF++ subsets DF, F2F, FS, NT): the real faces of the
test split together with the fakes of one manipulation, at threshold 0.5; "Average" is the plain mean
over the manipulations (the paper's "Average" column).  Tables 4 and 5 print one "ACC" per model; we
read it as that average (Table 4's SAM and DADF ACC equal Table 2's averages).
"""
from __future__ import annotations

import os
import time
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["ABLATIONS", "FFPP_FAMILIES", "FMLD_FAMILIES", "LABELS",
           "ablation_caveat", "ablation_experiments", "ablation_figure",
           "ablation_plan", "ablation_records", "ablation_scores", "ablation_table", "acc_by_method", "acc_table",
           "adapter_rf_figure", "attention_figure", "attention_pixel_auc", "check_model_names", "cost_table",
           "cross_paragraph", "cross_table", "empty_mask_pbca", "findings", "fmld_paragraph", "headline",
           "leaders", "localization_table", "mask_area_sentence", "mask_area_table",
           "masks_figure", "more_findings", "chance_sentence", "plural", "rga_diagnostics", "sam_kwargs", "scores", "training_memory",
           "standing",
           "table4_paragraph", "table5_paragraph", "table6_paragraph", "true_masks",
           "viewer_indices"]

#: registry name -> the paper's method name
LABELS: dict[str, str] = {"dadf": "DADF", "sam_full_ft": "SAM", "sam_lora": "SAM+LoRA", "sam_prompt": "SAM+Prompt"}
_FONT = 9

#: ffpp-syn manipulation -> the paper's Table 2 column.
FFPP_FAMILIES: dict[str, str] = {"deepfakes": "DF", "face2face": "F2F", "faceswap": "FS", "neuraltextures": "NT"}
#: fmld-syn manipulation -> short name (FMLD: hair / glasses attribute edits, entire synthesis).
FMLD_FAMILIES: dict[str, str] = {"attribute_hair": "Hair", "attribute_glasses": "Glasses", "synthesis": "Synthesis"}


#: ``{table: {key: (row label, registry name, model kwargs)}}``; labels of Tables 4 and 5 are the
#: paper's method names in ``dfnb.papers`` (Table 6 was not transcribed).
ABLATIONS: dict[str, dict[str, tuple[str, str, dict[str, Any]]]] = {
    "4": {"sam": ("SAM", "sam_full_ft", {}),
          "adapter_only": ("SAM + Multiscale Adapter", "dadf", {"rga": False}),
          "rga_only": ("SAM + RGA", "dadf", {"adapter": None, "freeze_encoder": False}),
          "dadf": ("SAM + Multiscale Adapter + RGA", "dadf", {})},
    "5": {"B": ("Multiscale Adapter-B", "dadf", {"adapter": "B"}),
          "C": ("Multiscale Adapter-C", "dadf", {"adapter": "C"}),
          "D": ("Multiscale Adapter-D", "dadf", {"adapter": "D"}),
          "dadf": ("Multiscale Adapter", "dadf", {})},
    "6": {"dadf": ("L_rec on real faces", "dadf", {}),
          "rec_fake": ("L_rec on fake faces", "dadf", {"rec_on": "fake"}),
          "rec_all": ("L_rec on all faces", "dadf", {"rec_on": "all"})},
}
_REFERENCES = {"4": ("sam", "dadf"), "5": ("dadf",), "6": ("dadf",)}
#: every ablation variant (the keys of :data:`ABLATIONS` other than each table's references), in order
VARIANTS = tuple(k for t in ABLATIONS for k in ABLATIONS[t] if k not in _REFERENCES[t])


def ablation_plan(variants: Sequence[str]) -> dict[str, list[str]]:
    """``{table: [keys]}``: each table that one of ``variants`` belongs to, with its reference rows.

    ``variants``: keys of :data:`ABLATIONS` other than the references (``"adapter_only"``,
    ``"rga_only"``, ``"B"``, ``"C"``, ``"D"``, ``"rec_fake"``, ``"rec_all"``).  Table 4 always gets
    ``"sam"`` and ``"dadf"``, Tables 5 and 6 ``"dadf"``; rows keep the order of :data:`ABLATIONS`.
    Tables without a requested variant are left out.
    """
    if isinstance(variants, str):
        raise TypeError(f"variants must be a list of names, got the string {variants!r}")
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"unknown ablation variants {bad}; choose from {list(VARIANTS)}")
    plan = {}
    for t, rows in ABLATIONS.items():
        if any(v in rows for v in variants):
            plan[t] = [k for k in rows if k in variants or k in _REFERENCES[t]]
    return plan


def acc_by_method(methods: Sequence[str], probs, labels, families: Mapping[str, str],
                  threshold: float = 0.5) -> dict[str, float]:
    """ACC (%) on the real faces plus one manipulation at a time, and ``"Average"`` over the manipulations.

    Args:
        methods: (N,) method name of each face (``"real"`` for real faces).
        probs: (N,) P(fake); labels: (N,) 1 = fake.
        families: ``{method: column name}`` of the manipulations to report, in order.
    Returns ``{column: ACC}`` for each family, then ``"Average"``.
    """
    meth = np.asarray(methods, dtype=object)
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if not (len(meth) == len(p) == len(y)):
        raise ValueError(f"methods, probs and labels must have the same length, got {len(meth)}, {len(p)}, {len(y)}")
    if not families:
        raise ValueError("families must name at least one manipulation")
    if not (meth == "real").any():
        raise ValueError("acc_by_method: no real faces (method 'real') in the data")
    pred = p >= threshold
    out: dict[str, float] = {}
    for m, col in families.items():
        if not (meth == m).any():
            raise ValueError(f"acc_by_method: no faces of manipulation {m!r}; present: {sorted(set(meth))}")
        sel = (meth == "real") | (meth == m)
        out[col] = 100.0 * float((pred[sel] == (y[sel] == 1)).mean())
    out["Average"] = float(np.mean([out[c] for c in families.values()]))
    return out


def scores(report: Mapping[str, Any], methods: Sequence[str], families: Mapping[str, str]) -> dict[str, float]:
    """``{"PBCA", "IINC", "ACC", "AUC", "EER"}`` in percent from an :func:`dfnb.engine.evaluate` report.

    PBCA / IINC: per image over all test faces (``localization["pbca_all"]``, ``["iinc_all"]``); ACC: the
    ``"Average"`` of :func:`acc_by_method`; AUC / EER: frame level.  ``methods`` as in :func:`acc_by_method`.
    """
    loc, det = report.get("localization"), report["detection"]
    if loc is None:
        raise ValueError("scores: the report has no localization (the model predicts no masks, or no fake of "
                         "the data set has a true mask)")
    acc = acc_by_method(methods, report["probs"], report["labels"], families)
    return {"PBCA": 100.0 * float(loc["pbca_all"]), "IINC": 100.0 * float(loc["iinc_all"]), "ACC": acc["Average"],
            "AUC": 100.0 * float(det["frame_auc"]), "EER": 100.0 * float(det["frame_eer"])}


# ----------------------------------------------------------------------------- set-up
def plural(n: int, word: str) -> str:
    """``"1 epoch"``, ``"3 epochs"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def check_model_names(*name_lists: Sequence[str]) -> None:
    """A ``ValueError`` naming every name of ``name_lists`` that is not one of :data:`LABELS`."""
    bad = [n for names in name_lists for n in names if n not in LABELS]
    if bad:
        raise ValueError(f"unknown model names {bad} in baselines / fmld_models; choose from {sorted(LABELS)}")


def sam_kwargs(*, sam_checkpoint: str | None, sam_type: str | None, micro_sam_path: str | None,
               profile: str, sam_img_size: int | None = None) -> tuple[dict[str, Any], str, int | None]:
    """The model keyword arguments that name the SAM every model starts from, and what it is.

    Meta's checkpoint when ``sam_checkpoint`` is given (at ``sam_img_size`` px, default 1024: ViT-B at
    128 px and batch 16 is 28 s and 2.7 GB a step on CPU, at 1024 px 323 s and 21.9 GB at batch 2);
    else the micro-SAM file ``micro_sam_path``,
    by default ``results/<profile>/30_micro_sam/micro_sam.pt`` (chapter 30's run).  Returns
    ``(kwargs, description, pretraining steps)`` (steps None for Meta's SAM); a missing micro-SAM
    file is a ``FileNotFoundError`` saying how to make it.
    """
    import torch

    from dfnb.runner import rel_path, repo_root

    if sam_img_size is not None and (not isinstance(sam_img_size, int) or sam_img_size < 16 or sam_img_size % 16):
        raise ValueError(f"sam_img_size must be a multiple of SAM's patch size 16, got {sam_img_size!r}")
    if sam_checkpoint is not None:
        kw = dict(sam_checkpoint=sam_checkpoint, model_type=sam_type)
        if sam_img_size is not None:  # Meta's position tables are interpolated to this size
            kw["img_size"] = sam_img_size
        at = f" at {sam_img_size} px" if sam_img_size else " at 1024 px"
        return kw, f"Meta's checkpoint {sam_checkpoint}{at}", None
    if sam_img_size is not None:
        raise ValueError("sam_img_size is for Meta's SAM (sam_checkpoint=); a micro-SAM runs at the size it was "
                         "pretrained at")
    path = micro_sam_path or repo_root() / "results" / profile / "30_micro_sam" / "micro_sam.pt"
    if not os.path.exists(path):
        raise FileNotFoundError(f"no micro-SAM checkpoint at {path}: run chapter 30 first "
                                f"(`dfnb run 30_micro_sam --profile {profile}`), or pass micro_sam_path= / "
                                "sam_checkpoint=")
    steps = torch.load(path, weights_only=True)["meta"].get("steps")
    # relative to where the kernel runs (the book's root): a checkpoint the chapter exports records this path
    # (a hybrid micro-SAM is rebuilt from its file), so `dfnb predict` finds it in any checkout; the experiment
    # key hashes the file's content, not its path
    return (dict(micro_sam_path=os.path.relpath(path)), f"micro-SAM from {rel_path(path)} ({steps} pretraining steps)",
            steps)


def training_memory(model, batch_size: int, size: int | None = None, device: str = "cpu") -> dict[str, float]:
    """Expected memory (MiB) of one training step at ``batch_size``, measured on one face: the weights,
    AdamW's gradient and two moments of the trainable ones, and the activations autograd keeps for the
    backward pass (every tensor saved by the forward pass and ``model.losses``, each storage once,
    parameters excluded; :func:`dfnb.engine.cost.saved_bytes`), times ``batch_size``.
    ``{"weights", "gradients_and_optimizer", "activations", "total"}``.

    ``size``: the input side (default: the model's ``img_size``).  It is an estimate: the allocator's
    overhead and temporary buffers come on top.  At the paper's scale, without the memory:
    :func:`dfnb.models.dadf.memory.step_memory`.
    """
    import torch

    from dfnb.engine.cost import memory_parts, saved_bytes

    size = size or model.img_size
    was = model.training
    model.train()
    x = torch.rand(1, 3, size, size, device=device)
    batch = {"image": x, "mask": torch.zeros(1, 1, size, size, device=device), "label": torch.zeros(1, dtype=torch.long)}
    try:
        _, saved = saved_bytes(lambda: model.losses(model(x), batch)["loss"], exclude=model.parameters())
    finally:
        model.train(was)
    mem = memory_parts(model, saved * batch_size)
    return {"weights": mem["weights"], "gradients_and_optimizer": mem["gradients"] + mem["optimizer"],
            "activations": mem["activations"], "total": mem["total"]}


def true_masks(dataset):
    """``(N, 1, H, W)`` float tensor: every item's ``mask``, in order."""
    import torch

    return torch.stack([dataset[i]["mask"] for i in range(len(dataset))])


def empty_mask_pbca(masks) -> float:
    """PBCA (%) of predicting "nothing is forged" everywhere: the share of pixels whose true mask is < 0.5."""
    return 100.0 * float((masks < 0.5).float().mean())


def viewer_indices(methods: Sequence[str], n_fake: int = 16, n_real: int = 2) -> list[int]:
    """Up to ``n_fake`` fakes spread evenly over the test split (every k-th), then the first ``n_real`` reals."""
    fakes = [i for i, m in enumerate(methods) if m != "real"]
    reals = [i for i, m in enumerate(methods) if m == "real"]
    return fakes[::max(1, len(fakes) // n_fake)][:n_fake] + reals[:n_real]


# ----------------------------------------------------------------------------- tables
def _rec(name: str, value: float, data: str | None = None, **labels: Any) -> dict[str, Any]:
    """A ``run.metric`` record: ``data`` (e.g. ``"ffpp-syn hq test"``) gives the record contract's
    ``dataset`` (its first word) and ``split`` ("test" where it says so), and stays as a label."""
    words = (data or "").split()
    return {"name": name, "value": value, "dataset": words[0] if words else None,
            "split": "test" if "test" in words else None, **({"data": data} if data else {}), **labels}


def localization_table(reports: Mapping[str, dict], fmld_reports: Mapping[str, dict], ff: str, fm: str,
                       with_fmld: bool):
    """Table 1: PBCA / IINC (%) and IoU of the fakes per model on ``ff`` HQ test and ``fm`` test, beside
    the paper's FF++ (HQ) and (``with_fmld``) FMLD numbers.  Returns ``(table, metric records)``.

    reports, fmld_reports: ``{registry name: dfnb.engine.evaluate report}``; rows in their order.
    """
    import pandas as pd

    from dfnb import papers

    p1 = papers.pivot("dadf", "1")

    def paper(lab, col):
        tag = "FMLD" if col == "FMLD" else "FF++ HQ"
        return {f"PBCA paper {tag}": p1.loc[lab, (col, "PBCA")], f"IINC paper {tag}": p1.loc[lab, (col, "IINC")]}

    rows, recs = [], []
    for name in dict.fromkeys([*reports, *fmld_reports]):
        lab = LABELS[name]
        row: dict[str, Any] = {"method": lab}
        for rr, data, tag, col in ((reports, f"{ff} HQ", f"{ff} hq test", "FF++ (HQ)"),
                                   (fmld_reports, fm, f"{fm} test", "FMLD")):
            if name in rr:
                loc = rr[name]["localization"]
                row.update({f"PBCA {data} (%)": 100 * loc["pbca_all"], f"IINC {data} (%)": 100 * loc["iinc_all"],
                            f"IoU fakes {data}": loc["iou_fake"]})
                recs += [_rec("pbca", 100 * loc["pbca_all"], model=name, data=tag),
                         _rec("iinc", 100 * loc["iinc_all"], model=name, data=tag),
                         _rec("iou_fake", loc["iou_fake"], model=name, data=tag)]
            if col == "FF++ (HQ)" or with_fmld:
                row.update(paper(lab, col))
        rows.append(row)
    return pd.DataFrame(rows).set_index("method"), recs


def mask_area_table(reports: Mapping[str, dict], ff: str):
    """Share (%) of pixels each model marks (probability > 0.5) on real and on fake test faces, and the
    AUC (%) of that area as a fake score.  reports need ``pred_masks``.  Returns ``(table, records)``."""
    import pandas as pd

    from dfnb import metrics

    rows, recs = {}, []
    for name, r in reports.items():
        area = (r["pred_masks"] > 0.5).reshape(r["n"], -1).mean(1)
        y = r["labels"]
        auc = 100 * metrics.auc(y, area)
        rows[LABELS[name]] = {"marked pixels, real faces (%)": 100 * area[y == 0].mean(),
                              "marked pixels, fake faces (%)": 100 * area[y == 1].mean(),
                              "AUC of the marked area as a fake score (%)": auc}
        recs.append(_rec("mask_area_auc", auc, model=name, data=f"{ff} hq test"))
    return pd.DataFrame(rows).T, recs


def acc_table(reports: Mapping[str, Mapping[str, dict]], methods: Mapping[str, Sequence[str]], ff: str):
    """Table 2: ACC (%) per manipulation and its average, and the AUC, per model and test quality, each
    model followed by the paper's FF++ (LQ) row.  Returns ``(table, records)``.

    reports: ``{quality ("HQ", "LQ"): {registry name: report}}``; methods: ``{quality: methods of
    that test set}``.  Models in the order of the first quality's reports.
    """
    import pandas as pd

    from dfnb import papers

    p2 = papers.pivot("dadf", "2")
    rows, recs = [], []
    for name in next(iter(reports.values())):
        lab = LABELS[name]
        for q, rr in reports.items():
            a = acc_by_method(methods[q], rr[name]["probs"], rr[name]["labels"], FFPP_FAMILIES)
            auc = 100 * rr[name]["detection"]["frame_auc"]
            rows.append({"method": lab, "data": f"{ff} {q} (ours)", **a, "AUC": auc})
            recs += [_rec("acc", v, model=name, manipulation=k, data=f"{ff} {q.lower()} test") for k, v in a.items()]
            recs.append(_rec("auc", auc, model=name, data=f"{ff} {q.lower()} test"))
        rows.append({"method": lab, "data": "paper FF++ (LQ)",
                     **{s: p2.loc[lab, (f"FF++ (LQ) {s}", "ACC")] for s in FFPP_FAMILIES.values()},
                     "Average": p2.loc[lab, ("Average", "ACC")]})
    return pd.DataFrame(rows).set_index(["method", "data"]), recs


def cross_sets(*, dfd_root=None, dftimit_root=None, **load_kw: Any):
    """Table 3's test sets: DFD at LQ and DeepfakeTIMIT's HQ and LQ swaps (each with the same real faces),
    synthetic or real (``dfnb.data.load_split``; ``load_kw``: ``n_videos``, ``frames_per_video``, ``size``,
    ``seed``, ``progress``).  A DFD tree without LQ (c40) videos, e.g. a c23-only download, is tested at HQ
    and named so.  Returns ``(sets, paper_names, dfd_name, timit_name, note)``: ``{label: data set}``,
    ``{label: the paper's column}``, the two data-set names, and the DFD note (None when at LQ)."""
    from dfnb.data import load_split, missing_quality

    note = missing_quality("dfd", dfd_root, "lq")
    q = "hq" if note else "lq"
    dfd_name, dfd = load_split("dfd-syn", "test", real="dfd", root=dfd_root, quality=q, **load_kw)
    tim = {t: load_split("dftimit-syn", "test", real="dftimit", root=dftimit_root, methods=["real", f"gan_{t}"],
                         real_methods=["real", f"dftimit_{t}"], **load_kw) for t in ("hq", "lq")}
    timit_name = tim["hq"][0]
    sets = {f"{dfd_name} {q.upper()}": dfd, f"{timit_name} HQ": tim["hq"][1], f"{timit_name} LQ": tim["lq"][1]}
    paper = dict(zip(sets, ["DFD (LQ)", "DF-TIMIT (HQ)", "DF-TIMIT (LQ)"]))
    return sets, paper, dfd_name, timit_name, (f"{note}: DFD is tested at HQ" if note else None)


def cross_table(experiments: Mapping[str, Any], sets: Mapping[str, Any], paper_names: Mapping[str, str],
                ff: str, device: str = "cpu"):
    """Table 3: frame AUC / EER (%) of each model on each cross-dataset test set and their average,
    beside the paper's (trained on FF++ LQ).  Returns ``(table, records)``.

    experiments: ``{registry name: object with .evaluate(ds, batch_size=, device=)}`` (an
    :class:`~dfnb.experiments.Experiment`); sets: ``{our test set name: data set}``; paper_names:
    ``{our test set name: the paper's column}`` (``"DFD (LQ)"``, ...).  Columns ``"<ours> | <paper's>
    AUC"`` / ``EER``, then ``Average AUC`` / ``Average EER``; rows (method, data).
    """
    import pandas as pd

    from dfnb import papers

    p3 = papers.pivot("dadf", "3")
    rows, recs = [], []
    for name, exp in experiments.items():
        lab = LABELS[name]
        ours = {"method": lab, "data": f"ours: trained {ff} HQ"}
        paper = {"method": lab, "data": "paper: trained FF++ (LQ)"}
        for ds_name, ds in sets.items():
            det = exp.evaluate(ds, batch_size=32, device=device)["detection"]
            col = f"{ds_name} | {paper_names[ds_name]}"
            for k in ("AUC", "EER"):
                ours[f"{col} {k}"] = 100 * det[f"frame_{k.lower()}"]
                paper[f"{col} {k}"] = p3.loc[lab, (paper_names[ds_name], k)]
                recs.append(_rec(f"cross_{k.lower()}", ours[f"{col} {k}"], model=name, data=f"{ds_name.lower()} test",
                                 train=f"{ff} hq"))
        for k in ("AUC", "EER"):
            ours[f"Average {k}"] = float(np.mean([ours[f"{c} | {p} {k}"] for c, p in paper_names.items()]))
            paper[f"Average {k}"] = p3.loc[lab, ("Average", k)]
            recs.append(_rec(f"cross_{k.lower()}", ours[f"Average {k}"], model=name, data="cross-dataset average",
                             train=f"{ff} hq"))
        rows += [ours, paper]
    return pd.DataFrame(rows).set_index(["method", "data"]), recs


def cost_table(models: Mapping[str, Any], images, train_seconds: Mapping[str, float], *, device: str = "cpu",
               threads: int | None = None):
    """Trainable share (%), trainable parameters (M), evaluation throughput (images/s, batch 32, after
    one warm-up batch of 4) and train time (s) per model, and the paper's 18.64 % for DADF on ViT-H.
    images: ``(N, 3, H, W)`` on ``device``.  Returns ``(table, records)``."""
    import pandas as pd
    import torch

    from dfnb.models.dadf.sam import trainable_parameter_share

    rows, recs = [], []
    for name, m in models.items():
        m.eval()
        with torch.no_grad():
            m(images[:4])
            t0 = time.perf_counter()
            for k in range(0, len(images), 32):
                m(images[k:k + 32])
            ips = len(images) / (time.perf_counter() - t0)
        share = 100 * trainable_parameter_share(m)
        rows.append({"method": LABELS[name], "trainable share (%)": share,
                     "trainable (M)": sum(p.numel() for p in m.parameters() if p.requires_grad) / 1e6,
                     "images/s (this CPU)": ips, "train time (s)": train_seconds[name]})
        recs += [_rec("trainable_share", share, model=name),
                 _rec("images_per_second", ips, model=name, device=device, threads=threads)]
    rows.append({"method": "DADF (paper, SAM ViT-H)", "trainable share (%)": 18.64})
    return pd.DataFrame(rows).set_index("method"), recs


# ----------------------------------------------------------------------------- ablations
def ablation_scores(plan: Mapping[str, Sequence[str]], train_set, val_set, test_set, *, seed: int,
                    model_kwargs: Mapping[str, Any], families: Mapping[str, str] = FFPP_FAMILIES,
                    cache: bool | str | os.PathLike = True, **fit_kw: Any):
    """Train (or load from the experiment cache) every model of ``plan`` once and score it on ``test_set``.

    Each key of :func:`ablation_plan`'s lists, once, in order: :func:`dfnb.experiments.train_seeded`
    of its registry name with ``model_kwargs`` (the SAM) plus the variant's switches and ``fit_kw``
    (``epochs``, ``batch_size``, ``lr``, ``device``); a model identical to one trained before (DADF
    and SAM of the main tables, at the same epochs) is loaded, not retrained.  Returns ``(scores,
    seconds)``: ``{key: scores(...)}`` and ``{key: train seconds (as recorded when it trained)}``.
    """
    out, seconds = {}, {}
    for key, _, exp in ablation_experiments(plan, train_set, val_set, seeds=[seed], model_kwargs=model_kwargs,
                                            cache=cache, **fit_kw):
        rep = exp.evaluate(test_set, batch_size=32, device=fit_kw.get("device", "cpu"))
        out[key], seconds[key] = scores(rep, test_set.methods, families), exp.train_seconds
    return out, seconds


def ablation_experiments(plan: Mapping[str, Sequence[str]], train_set, val_set, *, seeds: Sequence[int],
                         model_kwargs: Mapping[str, Any], **fit_kw: Any):
    """Yield ``(key, seed, Experiment)`` for every key of ``plan`` (once, in order) and seed:
    :func:`dfnb.experiments.train_seeded` of the key's registry name with ``model_kwargs`` plus its switches."""
    from dfnb.experiments import train_seeded

    for key in dict.fromkeys(k for rows in plan.values() for k in rows):
        _, name, kw = next(ABLATIONS[t][key] for t in plan if key in plan[t])
        for s in seeds:
            yield key, s, train_seeded(name, train_set, val_set, seed=s, model_kwargs={**model_kwargs, **kw}, **fit_kw)


def ablation_records(abl_scores: Mapping[str, Mapping[str, float]], seconds: Mapping[str, float], epochs: int,
                     ff: str) -> list[dict[str, Any]]:
    """The metric records of :func:`ablation_scores`' results: PBCA, IINC, ACC and train seconds per variant."""
    recs = []
    for key, sc in abl_scores.items():
        recs += [_rec(f"ablation_{k.lower()}", sc[k], variant=key, epochs=epochs, data=f"{ff} hq test")
                 for k in ("PBCA", "IINC", "ACC")]
        recs.append(_rec("ablation_train_seconds", seconds[key], variant=key, epochs=epochs))
    return recs


def ablation_table(plan: Mapping[str, Sequence[str]], table: str, abl_scores: Mapping[str, Mapping[str, float]],
                   ff: str, epochs: int, with_paper: bool = True):
    """Table ``table`` (``"4"``, ``"5"``, ``"6"``): PBCA, IINC, ACC and epochs of each of its rows on
    ``ff`` HQ (ours), each followed by the paper's FF++ (HQ) row when ``with_paper``."""
    import pandas as pd

    from dfnb import papers

    p = papers.pivot("dadf", table) if with_paper else None
    rows = []
    for key in plan[table]:
        lab = ABLATIONS[table][key][0]
        rows.append({"method": lab, "data": f"{ff} HQ (ours)",
                     **{k: abl_scores[key][k] for k in ("PBCA", "IINC", "ACC")}, "epochs": epochs})
        if with_paper:
            rows.append({"method": lab, "data": "FF++ HQ (paper)",
                         **{k: p.loc[lab, ("FF++ (HQ)", k)] for k in ("PBCA", "IINC", "ACC")}})
    out = pd.DataFrame(rows).set_index(["method", "data"])
    return out.astype({"epochs": "Int64"})


def ablation_figure(table, key: str, ff: str, metric: str = "PBCA", *, ref: float | None = None,
                    ref_label: str | None = None, per_seed=None):
    """Bars of ``metric`` per row of :func:`ablation_table` ``key`` (this run on ``ff`` HQ), the paper's value
    as a diamond where it has one, ``ref`` as a dashed line.  The bars are the table's (first seed, no
    interval), or with ``per_seed`` (:func:`dfnb.models.dadf.claims.ablation_per_seed`: ``model`` holds
    the ablation key) the mean over its seeds with a 95 % t-interval."""
    from dfnb.report import bar_chart_with_ci, seed_summary

    ours = table.xs(table.index.get_level_values("data")[0], level="data")[metric]
    paper = table[table.index.get_level_values("data") == "FF++ HQ (paper)"][metric].droplevel("data")
    mean, low, high, what = ours.to_numpy(float), [np.nan] * len(ours), [np.nan] * len(ours), "first seed"
    if per_seed is not None:
        keys = {label: k for k, (label, _, _) in ABLATIONS[key].items()}
        sm = seed_summary(per_seed, "model", metric).reindex([keys[lab] for lab in ours.index])
        if sm["mean"].isna().any():
            raise ValueError(f"per_seed lacks {[lab for lab, m in zip(ours.index, sm['mean']) if m != m]}")
        mean, low, high = sm["mean"], sm["low"], sm["high"]
        n = sorted({int(v) for v in sm["n_seeds"]})
        what = f"mean of {'-'.join(map(str, n[::max(1, len(n) - 1)]))} seeds, 95 % interval"
    paper = paper.reindex(ours.index).to_numpy(float)
    fig = bar_chart_with_ci(list(ours.index), mean, low, high, xlabel=f"{metric} (%)",
                            ref=ref, ref_label=ref_label, paper=paper if np.isfinite(paper).any() else None,
                            title=f"Table {key} analogue: {ff} HQ test ({what}), paper FF++ HQ")
    if fig.axes[0].get_legend() is not None:  # beside the bars, not over the longest one
        fig.axes[0].legend(fontsize=_FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.set_size_inches(fig.get_figwidth() + 1.6, fig.get_figheight())
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- figures
def adapter_rf_figure(seed: int, grid: int = 31):
    """The tokens that reach one output token, per branch, for the multiscale adapter and variant B
    (random weights, seeded): the gradient support of the centre output token."""
    import matplotlib.pyplot as plt
    import torch

    from dfnb.models.dadf.adapter import MultiscaleAdapter, receptive_field

    fig, axes = plt.subplots(2, 3, figsize=(7.5, 5))
    for r, variant in enumerate(("multiscale", "B")):
        torch.manual_seed(seed)
        ad = MultiscaleAdapter(16, 8, variant, zero_init=False).eval()
        for c, br in enumerate(ad.branches):
            u = torch.randn(1, 8, grid, grid, requires_grad=True)
            br(u)[0, :, grid // 2, grid // 2].sum().backward()
            m = u.grad.abs().sum(1)[0].numpy() > 0
            name = "dilated" if variant == "multiscale" else "variant B"
            axes[r, c].imshow(m, cmap="magma")
            axes[r, c].set_title(f"{name} branch {c + 1}: {int(m.any(0).sum())}x{int(m.any(0).sum())}", fontsize=_FONT)
            axes[r, c].axis("off")
    fig.suptitle(f"tokens that reach one output token (RF per adapter: multiscale {receptive_field('multiscale')}, "
                 f"B {receptive_field('B')})", fontsize=_FONT)
    fig.tight_layout()
    return fig


def masks_figure(test_set, gt, reports: Mapping[str, dict], idx: Sequence[int]):
    """One row per test face ``idx``: the image with its true mask outlined, then each model's mask."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(idx), 1 + len(reports), figsize=(1.8 * (1 + len(reports)), 1.8 * len(idx)),
                             squeeze=False)
    for row, i in enumerate(idx):
        item = test_set[i]
        axes[row, 0].imshow(item["image"].permute(1, 2, 0).numpy())
        axes[row, 0].contour(gt[i, 0].numpy(), levels=[0.5], colors="lime", linewidths=0.8)
        axes[row, 0].set_title(item["method"], fontsize=_FONT)
        for c, (name, r) in enumerate(reports.items()):
            axes[row, c + 1].imshow(r["pred_masks"][i, 0], cmap="gray", vmin=0, vmax=1)
            axes[row, c + 1].set_title(LABELS[name], fontsize=_FONT)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def attention_figure(model, images, gt, titles: Sequence[str], device: str = "cpu"):
    """Top row the faces (true mask outlined), bottom row the RGA attention (mean over channels)."""
    import matplotlib.pyplot as plt
    import torch

    with torch.no_grad():
        att = model.eval()(images.to(device))["attention"].cpu()
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.75 * n, 3.8), squeeze=False)
    for c in range(n):
        axes[0, c].imshow(images[c].permute(1, 2, 0).numpy())
        axes[0, c].contour(gt[c, 0].numpy(), levels=[0.5], colors="lime", linewidths=0.8)
        axes[0, c].set_title(titles[c], fontsize=_FONT)
        axes[1, c].imshow(att[c, 0].numpy(), cmap="inferno")
        axes[1, c].set_title("RGA attention", fontsize=_FONT)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def attention_pixel_auc(model, test_set, gt, device: str = "cpu") -> tuple[float, int]:
    """Pixel AUC of the (bilinearly upsampled) RGA attention map against the true mask, per fake test
    face whose mask is neither empty nor full, averaged.  Returns ``(mean AUC, number of faces)``."""
    import torch
    from sklearn.metrics import roc_auc_score

    fake_idx = [i for i, m in enumerate(test_set.methods) if m != "real"]
    aucs = []
    model.eval()
    with torch.no_grad():
        for k in range(0, len(fake_idx), 32):
            ii = fake_idx[k:k + 32]
            a = model(torch.stack([test_set[i]["image"] for i in ii]).to(device))["attention"].cpu()
            a = torch.nn.functional.interpolate(a, size=gt.shape[-2:], mode="bilinear", align_corners=False)
            for j, i in enumerate(ii):
                t = (gt[i, 0] >= 0.5).numpy().ravel()
                if 0 < t.sum() < t.size:
                    aucs.append(roc_auc_score(t, a[j, 0].numpy().ravel()))
    if not aucs:
        raise ValueError("attention_pixel_auc: no fake test face with a mask that is neither empty nor full")
    return float(np.mean(aucs)), len(aucs)


def rga_diagnostics(model, dataset, device: str = "cpu", batch_size: int = 32) -> dict[str, float]:
    """Whether RGA can act, measured at evaluation (the model's fixed noise image on every face):
    ``{"s_over_f"}`` mean :func:`~dfnb.models.dadf.rga.relative_change` (|S| / |F|) and ``{"entropy"}``
    mean :func:`~dfnb.models.dadf.rga.attention_entropy` (1 = uniform attention), over ``dataset``."""
    import torch

    from dfnb.models.dadf.rga import attention_entropy, relative_change

    if getattr(model, "rga", None) is None:
        raise ValueError("rga_diagnostics: the model has no RGA")
    model.eval()
    ratio, ent = [], []
    with torch.no_grad():
        for k in range(0, len(dataset), batch_size):
            x = torch.stack([dataset[i]["image"] for i in range(k, min(k + batch_size, len(dataset)))]).to(device)
            s = model.img_size
            if x.shape[-1] != s:
                x = torch.nn.functional.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
            _, noise = model._noise(x)
            f, f_gau = model.encode(x), model.encode(x + noise)
            ratio.append(relative_change(f, f_gau))
            ent.append(attention_entropy(model.rga.attention((f_gau - f).abs()), model.rga.softmax_over))
    return {"s_over_f": float(torch.cat(ratio).mean()), "entropy": float(torch.cat(ent).mean())}


# ----------------------------------------------------------------------------- sentences
def headline(ff: str, dadf: Mapping[str, float], sam: Mapping[str, float] | None, pbca_empty: float,
             paper: Mapping[str, Mapping[str, float]]) -> str:
    """DADF's (and the SAM baseline's) PBCA / IINC / average ACC on ``ff`` HQ beside the paper's.

    dadf, sam: ``{"PBCA", "IINC", "ACC"}`` (%); paper: ``{"DADF": {...}, "SAM": {...}}`` on FF++."""
    ours = f"On `{ff}` HQ test, DADF reaches PBCA {dadf['PBCA']:.2f} % / IINC {dadf['IINC']:.2f} % and average ACC " \
           f"{dadf['ACC']:.2f} %"
    pd_, ps = paper["DADF"], paper.get("SAM")
    if sam is not None:
        ours += (f"; the fully fine-tuned SAM baseline (\"SAM\") PBCA {sam['PBCA']:.2f} % / IINC {sam['IINC']:.2f} % "
                 f"and ACC {sam['ACC']:.2f} %")
    text = ours + f" (an all-zero mask scores PBCA {pbca_empty:.2f} %). The paper: DADF {pd_['PBCA']:.2f} / " \
                  f"{pd_['IINC']:.2f} and {pd_['ACC']:.2f} %"
    if sam is not None and ps is not None:
        text += f", SAM {ps['PBCA']:.2f} / {ps['IINC']:.2f} and {ps['ACC']:.2f} %"
    return text + " on FF++."


def mask_area_sentence(area: Mapping[str, float]) -> str:
    """What DADF's predicted area on real and fake faces says (a :func:`mask_area_table` row)."""
    real, fake = area["marked pixels, real faces (%)"], area["marked pixels, fake faces (%)"]
    auc = area["AUC of the marked area as a fake score (%)"]
    text = (f"DADF marks {real:.1f} % of the pixels of a real test face and {fake:.1f} % of a fake one (AUC of "
            f"that area as a fake score {auc:.1f} %): ")
    if auc > 60:
        return text + ("its masks separate real from fake, so a chance-level label would come from the head, not "
                       "the mask.")
    if fake < 5:
        return text + "it marks almost nothing on any face, so its mask carries no real-or-fake signal."
    return text + ("its masks mark the face whether or not it is forged, so neither the mask nor a head on top of it "
                   "can tell real from fake; what it has learnt is where a face's forgery would be, not whether "
                   "there is one.")


def chance_sentence(aucs: Mapping[str, float], one_class: bool, epochs: int, n_train: int) -> str:
    """When every model's test AUC (%) is within 5 points of 50: why the ACC comparison says nothing;
    ``one_class``: every ACC is exactly 50 % (each head predicts one class).  Else ``""``."""
    if not all(abs(v - 50) < 5 for v in aucs.values()):
        return ""
    text = ("No model detects better than chance in this profile (test AUC "
            + ", ".join(f"{k} {v:.1f} %" for k, v in aucs.items())
            + "), so the ACC comparison says nothing about DADF versus SAM. Our reading: the label comes only from "
            "the predicted mask (global average pooling + two FC layers, Fig. 2) with weight 0.1 in the loss, and "
            f"in {plural(epochs, 'epoch')} over {plural(n_train, 'training face')} the segmentation term is what "
            "every model learns")
    if one_class:
        text += ("; with four fakes per real face the head settles on one class, which scores exactly 50 % on "
                 "each balanced real+manipulation subset")
    return text + ". Longer training (the paper profile) is needed before Table 2 can be compared."


def findings(ff: str, table1, table2, mask_area, aucs: Mapping[str, float], pbca_empty: float, *, epochs: int,
             n_train: int) -> str:
    """The first training seed's paragraph: :func:`headline`, :func:`mask_area_sentence`,
    :func:`chance_sentence`, from the chapter's Tables 1 and 2 (one seed: which model is ahead is left to
    the claims table over seeds).

    aucs: ``{method label: test AUC (%)}`` on ``ff`` HQ."""
    from dfnb import papers

    p2 = papers.pivot("dadf", "2")

    def ours(lab):
        t1 = table1.loc[lab]
        return {"PBCA": t1[f"PBCA {ff} HQ (%)"], "IINC": t1[f"IINC {ff} HQ (%)"],
                "ACC": table2.loc[(lab, f"{ff} HQ (ours)"), "Average"]}

    def paper(lab):
        t1 = table1.loc[lab]
        return {"PBCA": t1["PBCA paper FF++ HQ"], "IINC": t1["IINC paper FF++ HQ"],
                "ACC": p2.loc[lab, ("Average", "ACC")]}

    d = ours("DADF")
    s = ours("SAM") if "SAM" in table1.index and f"PBCA {ff} HQ (%)" in table1 else None
    one_class = bool((table2.xs(f"{ff} HQ (ours)", level="data")[list(FFPP_FAMILIES.values())] == 50.0).all().all())
    lines = ["First training seed:",
             headline(ff, d, s, pbca_empty, {lab: paper(lab) for lab in ("DADF", "SAM") if lab in table1.index}),
             mask_area_sentence(mask_area.loc["DADF"]), chance_sentence(aucs, one_class, epochs, n_train)]
    return " ".join(x for x in lines if x)


def leaders(sc: Mapping[str, Mapping[str, float]], metric: str) -> list[str]:
    """Keys with the best value of ``metric`` (IINC: lowest); equal to the shown 2 decimals counts as a tie."""
    vals = {k: v[metric] for k, v in sc.items()}
    best = min(vals.values()) if metric == "IINC" else max(vals.values())
    return [k for k, v in vals.items() if abs(v - best) < 0.005]


def standing(sc: Mapping[str, Mapping[str, float]], metric: str, key: str, names: Mapping[str, str]) -> str:
    """``"best on PBCA"`` / ``"tied for best on PBCA with X"`` / ``"not best on PBCA, where X leads (v %)"``."""
    top = leaders(sc, metric)
    if top == [key]:
        return f"best on {metric}"
    if key in top:
        return f"tied for best on {metric} with {', '.join(names[k] for k in top if k != key)}"
    return f"not best on {metric}, where {' = '.join(names[k] for k in top)} leads ({sc[top[0]][metric]:.2f} %)"


def fmld_paragraph(fm: str, n_train: int, table1, pbca_empty: float) -> str:
    """Table 1's FMLD column: DADF (and the fine-tuned SAM, when trained there) against the paper's."""
    fd = table1.loc["DADF"]
    pb, ii = f"PBCA {fm} (%)", f"IINC {fm} (%)"
    line = (f"**FMLD column.** Within `{fm}` ({plural(n_train, 'training face')}) DADF reaches PBCA {fd[pb]:.2f} % / "
            f"IINC {fd[ii]:.2f} % (an all-zero mask: PBCA {pbca_empty:.2f} %)")
    if "SAM" in table1.index and np.isfinite(table1.loc["SAM"].get(pb, np.nan)):
        fs = table1.loc["SAM"]
        line += (f", the fine-tuned SAM {fs[pb]:.2f} % / {fs[ii]:.2f} %: DADF is "
                 f"{'ahead of' if fd[pb] > fs[pb] else 'not ahead of'} SAM on PBCA and "
                 f"{'ahead' if fd[ii] < fs[ii] else 'not ahead'} on IINC (paper, FMLD: DADF "
                 f"{fd['PBCA paper FMLD']:.2f} / {fd['IINC paper FMLD']:.2f}, SAM {fs['PBCA paper FMLD']:.2f} / "
                 f"{fs['IINC paper FMLD']:.2f})")
    fm_pbca = table1[pb].dropna()
    if len(fm_pbca) > 2:
        best = ", ".join(fm_pbca[fm_pbca == fm_pbca.max()].index)
        line += f"; the best `{fm}` PBCA of the {len(fm_pbca)} models is {best}'s"
    line += "."
    if fd[pb] < pbca_empty:
        line += " DADF's PBCA is below the all-zero mask's: it marks more pixels wrongly than it finds."
    return line


def cross_paragraph(ff: str, dfd: str, tim: str, table3) -> str:
    """Table 3: DADF's (and SAM's) average cross-dataset AUC against the paper's; whether any model transfers."""
    from dfnb import papers

    ours = table3.xs(f"ours: trained {ff} HQ", level="data")
    paper = table3.xs("paper: trained FF++ (LQ)", level="data")
    avg = ours["Average AUC"]
    line = (f"**Cross-dataset (Table 3).** Trained on `{ff}` HQ (the paper trains on FF++ LQ), DADF's AUC averaged "
            f"over `{dfd}` LQ and `{tim}` HQ / LQ is {avg['DADF']:.1f} % (EER {ours.loc['DADF', 'Average EER']:.1f} %)")
    if "SAM" in avg.index:
        line += f" against SAM's {avg['SAM']:.1f} %"
    line += (f"; the best average AUC here is {', '.join(avg[avg == avg.max()].index)}'s. The paper: DADF "
             f"{paper.loc['DADF', 'Average AUC']:.2f} %"
             + (f", SAM {paper.loc['SAM', 'Average AUC']:.2f} %" if "SAM" in avg.index else "") + ".")
    if all(abs(v - 50) < 5 for v in avg):
        p3 = papers.pivot("dadf", "3")
        below = int((p3[("Average", "AUC")] < 50).sum())
        line += (" Every model's average is within 5 points of chance (50 %), so this run shows no transfer to the "
                 f"unseen sets to rank the models by; in the paper, {below} of its {len(p3)} methods average below "
                 "50 % AUC too.")
    return line


def table4_paragraph(ff: str, t4: Mapping[str, Mapping[str, float]], epochs: int) -> str:
    """Table 4: where the full model stands among its rows, and what each addition changes, beside the paper."""
    from dfnb import papers

    nm = {k: ABLATIONS["4"][k][0] for k in t4}
    p4 = papers.pivot("dadf", "4")
    paper_best = all(p4[("FF++ (HQ)", m)].idxmax() == ABLATIONS["4"]["dadf"][0] for m in ("PBCA", "ACC"))
    line = (f"among its rows, the full model (SAM + Multiscale Adapter + RGA) is {standing(t4, 'PBCA', 'dadf', nm)}, "
            f"{standing(t4, 'ACC', 'dadf', nm)}, and {standing(t4, 'IINC', 'dadf', nm)}; in the paper it is "
            + ("best on both PBCA and ACC." if paper_best else "not best on both PBCA and ACC."))
    parts = []
    for a, b, what in (("adapter_only", "sam", "Adding the Multiscale Adapter to SAM"),
                       ("rga_only", "sam", "Adding RGA to SAM"),
                       ("dadf", "adapter_only", "Adding RGA to SAM + Multiscale Adapter")):
        if a in t4 and b in t4:
            dp, da = t4[a]["PBCA"] - t4[b]["PBCA"], t4[a]["ACC"] - t4[b]["ACC"]
            pp = [p4.loc[nm[a], ("FF++ (HQ)", m)] - p4.loc[nm[b], ("FF++ (HQ)", m)] for m in ("PBCA", "ACC")]
            parts.append(f"{what} changes PBCA by {dp:+.2f} and ACC by {da:+.2f} points (paper: {pp[0]:+.2f}, "
                         f"{pp[1]:+.2f}).")
    return " ".join([f"**Ablations (Table 4, {plural(epochs, 'epoch')} per model).** On `{ff}` HQ, {line}", *parts])


def table5_paragraph(t5: Mapping[str, Mapping[str, float]]) -> str:
    """Table 5: which adapter variants DADF's multiscale adapter beats, per metric, and the paper's finding."""
    from dfnb import papers

    vs = [k for k in t5 if k != "dadf"]
    nm = {k: ABLATIONS["5"][k][0] for k in vs}
    better = {m: [k for k in vs if (t5["dadf"][m] < t5[k][m] if m == "IINC" else t5["dadf"][m] > t5[k][m])]
              for m in ("PBCA", "ACC", "IINC")}

    def on(m):
        w = better[m]
        if len(w) == len(vs):
            return f"on {m} it beats {'all of ' if len(vs) > 1 else ''}{', '.join(nm[k] for k in vs)}"
        if not w:
            return (f"on {m} it beats none of {', '.join(nm[k] for k in vs)}" if len(vs) > 1
                    else f"on {m} it does not beat {nm[vs[0]]}")
        return f"on {m} it beats {', '.join(nm[k] for k in w)} but not {', '.join(nm[k] for k in vs if k not in w)}"

    best = all(len(better[m]) == len(vs) for m in ("PBCA", "ACC"))
    worst = papers.pivot("dadf", "5")[("FF++ (HQ)", "ACC")].idxmin()
    return (f"**Table 5.** The multiscale adapter (DADF's): {'; '.join(on(m) for m in ('PBCA', 'ACC', 'IINC'))}; "
            + ("so it is the best adapter here on PBCA and ACC, as in the paper" if best
               else "so it is not the best adapter on both PBCA and ACC here")
            + f". In the paper it is best on both, and the lowest ACC is {worst}'s.")


def table6_paragraph(t6: Mapping[str, Mapping[str, float]]) -> str:
    """Table 6: whether ``L_rec`` on real faces (DADF) leads, against the paper's claim (no numbers transcribed)."""
    nm = {k: ABLATIONS["6"][k][0].replace("L_rec", "`L_rec`") for k in t6}
    gaps = ", ".join(f"{t6['dadf']['PBCA'] - t6[k]['PBCA']:+.2f} points over {nm[k]}" for k in t6 if k != "dadf")
    return (f"**Table 6.** Among its rows, `L_rec` on real faces (DADF) is {standing(t6, 'PBCA', 'dadf', nm)}, "
            f"{standing(t6, 'ACC', 'dadf', nm)}, and {standing(t6, 'IINC', 'dadf', nm)}; on PBCA it is {gaps}. "
            "The paper says that computing it on fake or on all faces makes performance drop sharply (its "
            "Table 6 numbers are not transcribed).")


def ablation_caveat(abl_scores: Mapping[str, Mapping[str, float]], epochs: int, seed: int, pbca_empty: float,
                    n_seeds: int = 1) -> str:
    """How much the ablation rows can say: one short training each (or means over ``n_seeds``), their PBCA
    spread, near the all-zero mask, ACC all 50 %."""
    pbca = [v["PBCA"] for v in abl_scores.values()]
    iinc = [v["IINC"] for v in abl_scores.values()]
    if n_seeds > 1:
        line = (f"The ablation rows above are means over {n_seeds} training seeds of {epochs}-epoch runs; their "
                f"PBCA spans {max(pbca) - min(pbca):.2f} points. Which differences exceed the spread over seeds "
                "is the claims table's verdict (section 13), not these sentences'.")
    else:
        line = (f"All ablation rows are single {epochs}-epoch runs with seed {seed}; their PBCA spans "
                f"{max(pbca) - min(pbca):.2f} points, and differences of that order between single short runs "
                "can be seed noise, so read the ablation rankings as this run's, not as effects.")
    near = max(abs(v - pbca_empty) for v in pbca)
    if near < 1:
        line += (f" Every ablation model's PBCA is within {near:.2f} points of the all-zero mask's "
                 f"({pbca_empty:.2f} %): after {plural(epochs, 'epoch')} none localizes measurably better than "
                 "predicting no forgery, so PBCA cannot rank the components in this profile (their IINC spans "
                 f"{max(iinc) - min(iinc):.2f} points); a longer `ablation_epochs` is needed for the paper's comparison.")
    if {round(v["ACC"], 6) for v in abl_scores.values()} == {50.0}:
        line += (" Every ablation model has ACC exactly 50 % (its head predicts one class for every face), so ACC "
                 "ranks nothing in Tables 4-6 here.")
    return line


def more_findings(*, ff: str, fm: str | None, n_train_fm: int, table1, pbca_empty_fmld: float | None,
                  dfd: str | None, tim: str | None, table3, plan: Mapping[str, Sequence[str]],
                  abl_scores: Mapping[str, Mapping[str, float]], epochs: int, seed: int, pbca_empty: float,
                  abl_seeds=None) -> str:
    """The paragraphs after :func:`findings`, each only where its part ran: FMLD (``fm`` not None),
    cross-dataset (``table3`` not None), Tables 4, 5, 6 (in ``plan``) and :func:`ablation_caveat`.  The
    ablation paragraphs read ``abl_scores`` (one seed), or with ``abl_seeds``
    (:func:`dfnb.models.dadf.claims.ablation_per_seed`) the means over its seeds."""
    n_seeds = 1
    if abl_seeds is not None and len(abl_seeds):
        means = abl_seeds.groupby("model")[["PBCA", "IINC", "ACC"]].mean()
        abl_scores = {k: means.loc[k].to_dict() for k in means.index}
        n_seeds = int(abl_seeds.groupby("model")["seed"].nunique().min())
    out = []
    if fm is not None:
        out.append(fmld_paragraph(fm, n_train_fm, table1, pbca_empty_fmld))
    if table3 is not None:
        out.append(cross_paragraph(ff, dfd, tim, table3))
    pick = lambda t: {k: abl_scores[k] for k in plan[t]}  # noqa: E731
    if "4" in plan:
        out.append(table4_paragraph(ff, pick("4"), epochs))
    if "5" in plan:
        out.append(table5_paragraph(pick("5")))
    if "6" in plan:
        out.append(table6_paragraph(pick("6")))
    if plan:
        out.append(ablation_caveat(abl_scores, epochs, seed, pbca_empty, n_seeds))
    return "\n\n".join(out)
