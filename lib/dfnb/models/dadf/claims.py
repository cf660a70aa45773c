"""DADF's claims, judged over training seeds: per-seed scores, the claims table, the deviations table,
the RGA noise-scale sweep.

- :func:`seed_scores`   one row per (model, seed): PBCA, IINC, ACC, AUC, EER (Tables 1, 2, 4, 5) and IoU of
  the fakes and the marked area on real and fake faces, all in percent
- :data:`CLAIMS`, :func:`claims`   every comparison the paper's Tables 1-6 make, as a paired effect over
  seeds beside the paper's effect (:func:`dfnb.stats.claim_row`)
- :func:`noise_sweep_table`, :func:`choose_noise`   the RGA noise scale chosen on the validation split
- :func:`deviations`   every protocol difference from the paper, with its reason

Names: registry names (``"dadf"``, ``"sam_full_ft"``, ``"sam_lora"``, ``"sam_prompt"``) for the main models,
:data:`dfnb.models.dadf.study.ABLATIONS` keys (``"adapter_only"``, ``"rga_only"``, ``"B"``, ...) for the
ablation models; ``"sam"`` is SAM fine-tuned, the same model as ``"sam_full_ft"``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from dfnb.models.dadf.study import VARIANTS  # every ablation variant, in order (re-exported)

__all__ = ["BARS", "CLAIMS", "VARIANTS", "ablation_per_seed", "choose_noise", "claims", "competence", "competence_sentence", "cross_per_seed", "deviations", "left_out", "noise_sweep", "noise_sweep_table",
           "seed_scores", "skipped", "summary_table", "val_thresholds"]

SCORE_COLUMNS = ("PBCA", "IINC", "ACC", "ACC@val", "AUC", "EER", "IoU", "marked real", "marked fake")


def seed_scores(reports: Mapping[tuple[str, int], Mapping[str, Any]], methods: Sequence[str],
                families: Mapping[str, str], thresholds: Mapping[tuple[str, int], float] | None = None):
    """Long DataFrame ``model, seed`` + :data:`SCORE_COLUMNS` (%), one row per ``(model, seed)`` report.

    reports: ``{(name, seed): dfnb.engine.evaluate report}`` with ``pred_masks`` for the IoU and marked
    areas (NaN without); methods, families: as for :func:`dfnb.models.dadf.study.acc_by_method`.
    "ACC" thresholds P(fake) at 0.5; "ACC@val" at the model's own validation threshold
    ``thresholds[(name, seed)]`` (:func:`val_thresholds`; NaN where none is given).
    "marked real/fake": mean share of pixels with probability > 0.5 on real / fake faces.
    """
    import pandas as pd

    from dfnb.models.dadf.study import acc_by_method, scores

    rows = []
    for (name, seed), r in reports.items():
        row = {"model": name, "seed": int(seed), **scores(r, methods, families)}
        t = (thresholds or {}).get((name, seed))
        row["ACC@val"] = math.nan if t is None else acc_by_method(methods, r["probs"], r["labels"], families,
                                                                   threshold=t)["Average"]
        row["IoU"] = 100.0 * float(r["localization"]["iou_fake"])
        if r.get("pred_masks") is not None:
            area = (np.asarray(r["pred_masks"]) > 0.5).reshape(r["n"], -1).mean(1)
            y = np.asarray(r["labels"])
            row["marked real"], row["marked fake"] = 100 * area[y == 0].mean(), 100 * area[y == 1].mean()
        else:
            row["marked real"] = row["marked fake"] = math.nan
        rows.append(row)
    if not rows:
        raise ValueError("seed_scores: no reports")
    return pd.DataFrame(rows, columns=["model", "seed", *SCORE_COLUMNS])


def summary_table(per_seed, metrics: Sequence[str] = ("PBCA", "IINC", "ACC", "ACC@val", "AUC", "IoU", "marked real",
                                                       "marked fake"), labels: Mapping[str, str] | None = None):
    """``mean [low, high]`` (95 % t-interval over seeds, :func:`dfnb.report.seed_summary`) of each metric per
    model of a :func:`seed_scores` table, and the number of seeds; rows in the table's order, named by
    ``labels`` (default: the model keys)."""
    from dfnb.report import mean_ci_table, seed_summary

    out = mean_ci_table(per_seed, "model", metrics)
    out["seeds"] = seed_summary(per_seed, "model", metrics[0])["n_seeds"].astype(int)
    out.index = [(labels or {}).get(k, k) for k in out.index]
    out.index.name = "model"
    return out


def cross_per_seed(exps: Mapping[tuple[str, int], Any], test_sets: Mapping[str, Any], device: str = "cpu"):
    """``model, seed, AUC, EER`` (%): frame AUC and EER averaged over the cross-dataset ``test_sets``
    (Table 3's "Average" column), per ``(name, seed)`` experiment."""
    import pandas as pd

    rows = []
    for (name, seed), e in exps.items():
        dets = [e.evaluate(d, batch_size=32, device=device)["detection"] for d in test_sets.values()]
        rows.append({"model": name, "seed": int(seed), "AUC": 100 * float(np.mean([d["frame_auc"] for d in dets])),
                     "EER": 100 * float(np.mean([d["frame_eer"] for d in dets]))})
    return pd.DataFrame(rows)


def val_thresholds(exps: Mapping[tuple[str, int], Any], val_set, device: str = "cpu") -> dict[tuple[str, int], float]:
    """``{(name, seed): threshold}``: each experiment's equal-error-rate threshold on the validation split
    (:func:`dfnb.metrics.eer_threshold` of its P(fake) there), the operating point of "ACC@val" in
    :func:`seed_scores`.  Chosen on validation only; the test faces never set it."""
    from dfnb.metrics import eer_threshold

    out = {}
    for k, e in exps.items():
        r = e.evaluate(val_set, batch_size=32, device=device)
        out[k] = eer_threshold(r["labels"], r["probs"])
    return out


def ablation_per_seed(plan: Mapping[str, Sequence[str]], train_set, val_set, test_set, *, seeds: Sequence[int],
                      model_kwargs: Mapping[str, Any], families: Mapping[str, str], **fit_kw: Any):
    """:func:`seed_scores` of every model of ``plan`` (:func:`dfnb.models.dadf.study.ablation_plan`) at every
    seed, trained through the experiment cache as :func:`~dfnb.models.dadf.study.ablation_scores` does, with
    "ACC@val" at each model's validation threshold (:func:`val_thresholds`); ``model`` holds the ablation key."""
    from dfnb.models.dadf.study import ablation_experiments

    exps = {(key, s): e for key, s, e in ablation_experiments(plan, train_set, val_set, seeds=seeds,
                                                               model_kwargs=model_kwargs, **fit_kw)}
    device = fit_kw.get("device", "cpu")
    reports = {k: e.evaluate(test_set, batch_size=32, device=device) for k, e in exps.items()}
    return seed_scores(reports, test_set.methods, families, val_thresholds(exps, val_set, device))


def noise_sweep(stds: Sequence[float], train_set, val_set, *, seed: int, model_kwargs: Mapping[str, Any],
                families: Mapping[str, str], **fit_kw: Any) -> dict[float, dict[str, float]]:
    """DADF trained (through the experiment cache) at each RGA noise std, scored on the **validation**
    split: ``{std: {"s_over_f", "entropy", "PBCA", "IINC", "AUC", ...}}`` for :func:`noise_sweep_table`."""
    from dfnb.experiments import train_seeded
    from dfnb.models.dadf.study import rga_diagnostics, scores

    out = {}
    for std in stds:
        e = train_seeded("dadf", train_set, val_set, seed=seed, model_kwargs={**model_kwargs, "noise_std": float(std)},
                         **fit_kw)
        rep = e.evaluate(val_set, batch_size=32, device=fit_kw.get("device", "cpu"))
        out[float(std)] = {**scores(rep, val_set.methods, families),
                           **rga_diagnostics(e.model, val_set, fit_kw.get("device", "cpu"))}
    return out


#: ``(claim, paper table, reference, variant, metric, frame)``: the claim holds when ``variant - reference``
#: (paired by seed) is positive (negative for IINC and EER, where lower is better: the effect is then
#: reference - variant).  ``frame`` names which per-seed table holds the models: ``"main"`` (Tables 1-3),
#: ``"fmld"`` (Table 1's FMLD columns), ``"lq"`` (Table 2), ``"cross"`` (Table 3), ``"ablation"`` (Tables 4-6).
CLAIMS: list[tuple[str, str, str, str, str, str]] = [
    ("DADF localizes better than SAM (PBCA)", "1", "sam_full_ft", "dadf", "PBCA", "main"),
    ("DADF localizes better than SAM+LoRA (PBCA)", "1", "sam_lora", "dadf", "PBCA", "main"),
    ("DADF localizes better than SAM+Prompt (PBCA)", "1", "sam_prompt", "dadf", "PBCA", "main"),
    ("DADF localizes better than SAM (IINC, lower is better)", "1", "sam_full_ft", "dadf", "IINC", "main"),
    ("DADF localizes better than SAM on FMLD (PBCA)", "1", "sam_full_ft", "dadf", "PBCA", "fmld"),
    ("DADF detects better than SAM (average ACC, LQ)", "2", "sam_full_ft", "dadf", "ACC@val", "lq"),
    ("DADF detects better than SAM+Prompt (average ACC, LQ)", "2", "sam_prompt", "dadf", "ACC@val", "lq"),
    ("DADF generalizes better than SAM (cross-dataset mean AUC)", "3", "sam_full_ft", "dadf", "AUC", "cross"),
    ("the Multiscale Adapter improves SAM (PBCA)", "4", "sam", "adapter_only", "PBCA", "ablation"),
    ("RGA improves SAM (PBCA)", "4", "sam", "rga_only", "PBCA", "ablation"),
    ("RGA improves SAM + Multiscale Adapter (PBCA)", "4", "adapter_only", "dadf", "PBCA", "ablation"),
    ("RGA improves SAM + Multiscale Adapter (ACC)", "4", "adapter_only", "dadf", "ACC@val", "ablation"),
    ("the Multiscale Adapter beats variant B (PBCA)", "5", "B", "dadf", "PBCA", "ablation"),
    ("the Multiscale Adapter beats variant C (PBCA)", "5", "C", "dadf", "PBCA", "ablation"),
    ("the Multiscale Adapter beats variant D (PBCA)", "5", "D", "dadf", "PBCA", "ablation"),
    ("removing dilation (B) costs more ACC than removing the 3x3 branch (C)", "5", "B", "C", "ACC@val", "ablation"),
    ("removing dilation (B) costs more ACC than removing the 1x1 branch (D)", "5", "B", "D", "ACC@val", "ablation"),
    ("L_rec on real faces beats L_rec on fake faces (PBCA)", "6", "rec_fake", "dadf", "PBCA", "ablation"),
    ("L_rec on real faces beats L_rec on all faces (PBCA)", "6", "rec_all", "dadf", "PBCA", "ablation"),
]
_LOWER_IS_BETTER = ("IINC", "EER")
#: ACC claims are judged at each model's validation threshold ("ACC@val", a deviation): the paper's column is ACC
_PAPER_METRIC = {"ACC@val": "ACC"}
#: paper method names of the registry / ablation keys, per paper table
_PAPER_NAMES = {"1": {"sam_full_ft": "SAM", "sam_lora": "SAM+LoRA", "sam_prompt": "SAM+Prompt", "dadf": "DADF"},
                "4": {"sam": "SAM", "adapter_only": "SAM + Multiscale Adapter", "rga_only": "SAM + RGA",
                      "dadf": "SAM + Multiscale Adapter + RGA"},
                "5": {"B": "Multiscale Adapter-B", "C": "Multiscale Adapter-C", "D": "Multiscale Adapter-D",
                      "dadf": "Multiscale Adapter"}}
_PAPER_NAMES["2"] = _PAPER_NAMES["3"] = _PAPER_NAMES["1"]
_PAPER_COLUMN = {("1", "main"): "FF++ (HQ)", ("1", "fmld"): "FMLD", ("2", "lq"): "Average", ("3", "cross"): "Average",
                 ("4", "ablation"): "FF++ (HQ)", ("5", "ablation"): "FF++ (HQ)"}


def paper_effect(table: str, reference: str, variant: str, metric: str, frame: str) -> float:
    """The paper's ``variant - reference`` (reference - variant for IINC / EER) in its Table ``table``.

    Table 6 gives no numbers in the text we have, only that "the performance drops sharply" when
    ``L_rec`` is computed on fake or on all faces: NaN (the claim's direction is still known, +).
    """
    from dfnb import papers

    if table == "6":
        return math.nan
    p = papers.pivot("dadf", table)
    col = _PAPER_COLUMN[table, frame]
    names = _PAPER_NAMES[table]
    metric = _PAPER_METRIC.get(metric, metric)
    ref, var = (float(p.loc[names[k], (col, metric)]) for k in (reference, variant))
    return ref - var if metric in _LOWER_IS_BETTER else var - ref


def claims(frames: Mapping[str, Any], datasets: Mapping[str, str], skipped: Mapping[str, str] | None = None
           ) -> list[dict]:
    """Claims-table rows (:func:`dfnb.stats.claim_row`), one for every :data:`CLAIMS` entry: judged where
    both of its models are in ``frames[frame]`` (a :func:`seed_scores` table; ``"cross"``: one with an
    ``AUC`` column averaged over the cross-dataset test sets), else a *not run* row
    (:func:`dfnb.stats.not_run_row`) saying why: ``skipped[frame]`` when the run switched that part off,
    else which model it did not train.  Seeds are paired: only seeds both models have count.

    datasets: ``{frame: name of the test data}`` for the rows' ``dataset`` column.  Table 6 rows carry
    ``paper_effect`` NaN (:func:`paper_effect`) and are judged on the sign the paper's text gives.
    """
    from dfnb.stats import claim_row, not_run_row

    rows = []
    for claim, table, ref, var, metric, frame in CLAIMS:
        df = frames.get(frame)
        if df is None:
            rows.append(not_run_row(claim, table, (skipped or {}).get(frame, f"no {frame!r} models in this run")))
            continue
        absent = [m for m in (ref, var) if m not in set(df["model"])]
        a = df[df.model == ref].set_index("seed")[metric]
        b = df[df.model == var].set_index("seed")[metric]
        seeds = sorted(set(a.index) & set(b.index))
        if absent or not seeds:
            why = next((skipped[f"{frame}:{m}"] for m in absent if f"{frame}:{m}" in (skipped or {})),
                       f"{', '.join(absent)} not trained in this run" if absent else "no seed trained both models")
            rows.append(not_run_row(claim, table, why))
            continue
        ra, rb = a.loc[seeds].to_numpy(float), b.loc[seeds].to_numpy(float)
        if metric in _LOWER_IS_BETTER:  # the effect is an improvement: positive = variant better
            ra, rb = -ra, -rb
        effect = paper_effect(table, ref, var, metric, frame)
        row = claim_row(claim, table, 1.0 if math.isnan(effect) else effect, ra, rb,
                        dataset=datasets.get(frame, frame), metric=f"{metric} (points, variant better > 0)")
        row["paper_effect"] = effect
        rows.append(row)
    return rows


#: issue #13's bars for DADF (means over seeds, points): ``(column, comparison, bar, what it says)``
BARS = (("AUC", ">=", 90.0, "frame AUC"), ("IoU", ">=", 60.0, "IoU of the fake faces' masks"),
        ("marked real", "<=", 5.0, "share of a real face's pixels marked"),
        ("PBCA over all-zero", ">=", 5.0, "PBCA above the all-zero mask's"))


def competence(per_seed, pbca_empty: float, model: str = "dadf"):
    """Does ``model`` reach the bars (:data:`BARS`)?  A DataFrame ``mean, bar, reached`` indexed by what each
    bar measures, from a :func:`seed_scores` table (means over its seeds) and the all-zero mask's PBCA."""
    import pandas as pd

    df = per_seed[per_seed["model"] == model]
    if df.empty:
        raise ValueError(f"competence: no {model!r} rows in the per-seed table")
    means = {c: float(df[c].mean()) for c in ("AUC", "IoU", "marked real")}
    means["PBCA over all-zero"] = float(df["PBCA"].mean()) - float(pbca_empty)
    rows = [{"bar": f"{what} {op} {bar:g}", "mean over seeds": means[col], "seeds": len(df),
             "reached": bool(means[col] >= bar if op == ">=" else means[col] <= bar)}
            for col, op, bar, what in BARS]
    return pd.DataFrame(rows).set_index("bar")


def competence_sentence(comp, dataset: str) -> str:
    """One sentence on whether DADF reached the bars of :func:`competence` on ``dataset``."""
    parts = [f"{bar}: {r['mean over seeds']:.2f} ({'reached' if r['reached'] else 'NOT reached'})"
             for bar, r in comp.iterrows()]
    n = int(comp["seeds"].iloc[0])
    tail = ("so the comparisons below are between models that learnt the task" if comp["reached"].all() else
            "so a verdict resting on a bar that was not reached is not evidence about the paper")
    return f"DADF on {dataset}, mean over {n} training seed{'s' * (n != 1)}: " + "; ".join(parts) + f"; {tail}."


#: what Tables 4-6 cost together (measured at stops 25-26: 1 torch thread a process, 2 processes on 2 cores)
_ABLATION_COST = "21 more trainings, about 8 CPU-hours at the default size on a 2-core CPU"


def left_out(ablation_variants: Sequence[str]) -> list[str]:
    """The :data:`VARIANTS` not in ``ablation_variants``, in order."""
    return [k for k in VARIANTS if k not in ablation_variants]


def skipped(*, ablations: bool, fmld: bool, cross: bool, lq: bool, no_lq: str | None = None,
            ablation_variants: Sequence[str] = VARIANTS, lq_models: Sequence[str] = ()) -> dict[str, str]:
    """``{frame: why}`` for the parts of the chapter this run's parameters switched off,
    ``{"ablation:<variant>": why}`` for each ablation variant left out of ``ablation_variants`` and, when
    some models were trained on LQ (``lq_models``), ``{"lq:<model>": why}`` for each Table 2 model that was
    not (the claims they would have judged get *not run* rows in :func:`claims`)."""
    off = "off in this run (CPU time); switch it on with -p {}=True"
    out = {}
    if not ablations:
        out["ablation"] = f"off in this run: {_ABLATION_COST}; switch them on with -p ablations=True"
    else:
        for v in left_out(ablation_variants):
            out[f"ablation:{v}"] = (f"variant {v} left out of ablation_variants in this run (3 more trainings, "
                                    f"0.5-2 CPU-hours at the default size); add it with -p ablation_variants=[...]")
    if not fmld:
        out["fmld"] = off.format("fmld")
    if not cross:
        out["cross"] = off.format("cross")
    if not lq:
        out["lq"] = f"no LQ test set ({no_lq})" if no_lq else off.format("lq")
    elif lq_models:
        for m in dict.fromkeys(x for c in CLAIMS if c[5] == "lq" for x in c[2:4]):
            if m not in lq_models:
                out[f"lq:{m}"] = f"{m} not in lq_models: not trained on LQ in this run"
    return out


def noise_sweep_table(results: Mapping[float, Mapping[str, float]]):
    """One row per RGA noise std (sorted): ``|S|/|F|`` and the attention's entropy relative to uniform
    (:func:`dfnb.models.dadf.study.rga_diagnostics`) and the validation PBCA / IINC / AUC (%).

    results: ``{noise std: {"s_over_f", "entropy", "PBCA", "IINC", "AUC"}}``.
    """
    import pandas as pd

    cols = ["s_over_f", "entropy", "PBCA", "IINC", "AUC"]
    missing = {s: [c for c in cols if c not in r] for s, r in results.items()}
    missing = {s: m for s, m in missing.items() if m}
    if missing:
        raise ValueError(f"noise_sweep_table: results lack {missing}")
    df = pd.DataFrame({float(s): {c: float(r[c]) for c in cols} for s, r in results.items()}).T.sort_index()
    df.index.name = "noise std"
    return df.rename(columns={"s_over_f": "|S| / |F|", "entropy": "attention entropy / uniform"})


def choose_noise(table, metric: str = "PBCA") -> float:
    """The noise std with the best validation ``metric`` (highest; lowest for IINC / EER) in a
    :func:`noise_sweep_table`; ties go to the smaller noise."""
    col = table[metric]
    best = col.min() if metric in _LOWER_IS_BETTER else col.max()
    return float(col.index[col == best].min())


def deviations(*, lr: float, batch_size: int, epochs: int, noise_std: float, noise_p: float, n_train: int,
               sam: str, trainable_share: float, balance: bool = True, selection: str = "last epoch (fixed budget)",
               ablations: bool = True, ablation_variants: Sequence[str] = VARIANTS, lq_models: Sequence[str] = ()):
    """The deviations table: ``aspect, paper, this run, reason`` for every protocol difference.

    trainable_share: this run's DADF's trainable parameters in % of all of them; lq_models: the models also
    trained on LQ for Table 2 (none: Table 2 is judged on the HQ-trained models)."""
    import pandas as pd

    from dfnb.models.dadf.rga import NOISE_STD

    rows = [
        ("SAM", "Meta's ViT-H, pretrained on SA-1B", sam,
         "no SAM checkpoint can be downloaded here, and ViT-H at 1024 px does not train on a 2-core CPU"),
        ("training data", "FF++ (c23) frames; FMLD", f"{n_train} ffpp-syn HQ faces; fmld-syn",
         "no real face data set is available here"),
        ("optimiser, learning rate", "0.05 (optimiser not named)", f"AdamW, {lr:g}",
         "0.05 is a rate for SGD; AdamW's steps are normalised, its usual rates are 1e-4 to 1e-3"),
        ("batch size", "4", str(batch_size), "CPU throughput; larger batches give steadier class balance"),
        ("epochs", "30 (FF++), 50 (FMLD)", f"{epochs}, FMLD as FF++", "CPU budget (the training curves show where it stands)"),
        ("scheduler", "cosine and a step scheduler", "cosine to 0", "the paper does not say how the two combine"),
        ("checkpoint", "not stated", selection,
         "validation detection AUC picked near-random epochs when it sat at chance; the last epoch of a "
         "cosine schedule is the converged one"),
        ("class balance", "not stated", "real and fake weigh half each in L_seg and L_cls" if balance else "none",
         "4 fakes per real: unweighted, the masks mark forgeries on real faces too and the head cannot separate"),
        ("RGA noise", f"white noise of variance 1e-6 (std {NOISE_STD:g}) on real faces",
         f"std {noise_std:g} on {'every' if noise_p >= 1 else f'{noise_p:.0%} of the'} training faces and on "
         "every test face (one fixed noise image)",
         "at std 1e-3 |S| is ~0.3 % of |F| and the attention is uniform; the std was chosen on the "
         "validation split (noise sweep); L_rec still counts real faces only"),
        ("patch size", "16 (ViT-H)", "8 (micro-SAM) or 16 (Meta's SAM)", "micro-SAM's 128 px input needs a 16x16 grid"),
        ("trainable share", "18.64 % (ViT-H)",
         f"{trainable_share:.1f} % here; 26.4 % on ViT-H by our reading of Fig. 3",
         "branch width 256 and the 1280x1280 skip of Eq. 3 as drawn (a width of 176 would give 18.7 %); "
         "micro-SAM's decoder is large beside its 4-block encoder"),
        ("seeds", "one run (not stated)", "3 training seeds per model, mean and 95 % t-interval",
         "a difference between two models counts only when it exceeds the spread over seeds"),
        ("ACC threshold", "not stated (0.5, presumably)",
         "tables: ACC at 0.5 and ACC@val; ACC claims judged on ACC@val, each model's equal-error threshold "
         "on its own validation faces (HQ ones for the HQ-trained models tested on LQ)",
         "after a short training the scores are not calibrated: a model with a high AUC can put every test "
         "face on one side of 0.5 (ACC 50 %), so ACC at 0.5 measures where the scores sit, not how well they "
         "separate real from fake"),
    ]
    if not lq_models:
        rows.append(("Table 2 training data", "FF++ LQ (c40)", "ffpp-syn HQ, tested on ffpp-syn LQ",
                     "one training per model and seed serves Tables 1-3; -p lq_models=[...] trains on LQ too "
                     "(DADF: about 1 CPU-hour for 3 seeds)"))
    if not ablations:
        rows.append(("ablations (Tables 4-6)", "trained", "not trained in this run",
                     f"{_ABLATION_COST}; -p ablations=True runs them"))
    elif left_out(ablation_variants):
        out = left_out(ablation_variants)
        rows.append(("ablation variants", "all of Tables 4-6", f"{', '.join(out)} not trained in this run",
                     f"{3 * len(out)} more trainings, {len(out)}-{2 * len(out)} CPU-hours at the default size; "
                     "-p ablation_variants=[...] adds them"))
    return pd.DataFrame(rows, columns=["aspect", "paper", "this run", "reason"]).set_index("aspect")
