"""A localization leaderboard: many localizers, one test set, exact masks (issue #17).

The three papers locate forgeries in incompatible ways (a mask decoder, fused Grad-CAMs, CAR maps); here every
localizer is a function from faces to maps in [0, 1] and is scored the same way:

- :func:`best_threshold`   the binarisation threshold, chosen on the **validation** faces only
- :func:`localizer_scores` pixel AUC, F1 and IoU of the fakes at that threshold; PBCA and IINC of fakes and
  of reals separately; the share of a real face's pixels marked
- :func:`leaderboard`      mean and 95 % t-interval over seeds per localizer, ranked, beside the supervision
  each localizer needs (:data:`SUPERVISION`)
- :func:`summary`          the leaderboard in words: the best localizer of each supervision, and how many
  learnt localizers the best prior (nothing learnt) beats

Maps are (N, H, W) or (N, 1, H, W) in [0, 1]; masks the same; ``labels`` (N,) with 1 = fake.  A real face's true
mask is empty, so its pixel AUC, F1 and IoU are undefined or trivial: those columns are over fakes only.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from dfnb import metrics

__all__ = ["SCORE_COLUMNS", "SUPERVISION", "best_threshold", "leaderboard", "localizer_scores", "summary"]

#: what each kind of localizer needs to be trained or computed
SUPERVISION = {"pixel": "pixel labels (exact masks)", "image": "image labels only",
               "pair": "the pristine frame (an oracle at test time)", "none": "nothing"}
#: :func:`localizer_scores` columns, in %; the bool says whether higher is better
SCORE_COLUMNS = {"pixel AUC": True, "F1": True, "IoU": True, "PBCA fake": True, "PBCA real": True,
                 "IINC fake": False, "IINC real": False, "marked real": False}
THRESHOLDS = tuple(np.round(np.arange(0.05, 1.0, 0.05), 2))


def _fakes(pred, gt, labels):
    p, g = metrics._mask_pair(pred, gt)
    y = np.asarray(labels).astype(int).ravel()
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"labels: {y.shape[0]} for {p.shape[0]} maps")
    return p, g, y


def best_threshold(val_pred, val_gt, val_labels, metric: str = "iou",
                   thresholds: Sequence[float] = THRESHOLDS) -> float:
    """The threshold in ``thresholds`` with the best mean per-image ``metric`` (``"iou"`` or ``"f1"``) on the
    fake faces of the **validation** split; ties go to the smaller threshold.  Pass validation maps only:
    choosing it on the test faces would score the test with a threshold fitted to them."""
    fn = {"iou": metrics.iou, "f1": metrics.pixel_f1}.get(metric)
    if fn is None:
        raise ValueError(f"metric must be 'iou' or 'f1', got {metric!r}")
    p, g, y = _fakes(val_pred, val_gt, val_labels)
    if not (y == 1).any():
        raise ValueError("best_threshold: no fake face in the validation maps")
    values = [fn(p[y == 1], g[y == 1], threshold=float(t)) for t in thresholds]
    return float(thresholds[int(np.argmax(values))])


def localizer_scores(pred, gt, labels, threshold: float) -> dict[str, float]:
    """Scores of one localizer on one test set, in %: ``pixel AUC``, ``F1``, ``IoU`` (fakes, per image, then
    mean), ``PBCA fake`` / ``PBCA real``, ``IINC fake`` / ``IINC real`` (per image, then mean over fakes /
    reals), ``marked real`` (mean share of a real face's pixels at or above ``threshold``).  A set without
    reals (or fakes) gives NaN for their columns."""
    p, g, y = _fakes(pred, gt, labels)
    out = dict.fromkeys(SCORE_COLUMNS, float("nan"))
    f, r = y == 1, y == 0
    if f.any():
        has_both = (g[f] >= 0.5).any(axis=(1, 2)) & (g[f] < 0.5).any(axis=(1, 2))
        if has_both.any():
            out["pixel AUC"] = 100 * float(np.nanmean(metrics.pixel_auc(p[f], g[f], reduction="none")))
        out["F1"] = 100 * metrics.pixel_f1(p[f], g[f], threshold)
        out["IoU"] = 100 * metrics.iou(p[f], g[f], threshold)
        out["PBCA fake"] = 100 * metrics.pbca(p[f], g[f], threshold)
        out["IINC fake"] = 100 * metrics.iinc(p[f], g[f], threshold)
    if r.any():
        out["PBCA real"] = 100 * metrics.pbca(p[r], g[r], threshold)
        out["IINC real"] = 100 * metrics.iinc(p[r], g[r], threshold)
        out["marked real"] = 100 * float((p[r] >= threshold).mean())
    return out


def leaderboard(per_seed, supervision: Mapping[str, str], rank_by: str = "pixel AUC", level: float = 0.95):
    """One row per localizer: ``mean [low, high]`` over its seeds of every :data:`SCORE_COLUMNS` column
    (a single-seed localizer, e.g. a fixed prior, shows its value alone), the number of seeds, and the
    supervision it needs; sorted by the mean of ``rank_by`` (best first, NaN last).

    per_seed: long DataFrame ``localizer, seed`` + score columns (e.g. rows of :func:`localizer_scores`);
    supervision: ``{localizer: a SUPERVISION key}`` for every localizer in it.
    """
    import pandas as pd

    from dfnb.report import mean_ci_table

    if rank_by not in SCORE_COLUMNS:
        raise ValueError(f"rank_by must be one of {list(SCORE_COLUMNS)}, got {rank_by!r}")
    missing = sorted(set(per_seed["localizer"]) - set(supervision))
    if missing:
        raise ValueError(f"leaderboard: no supervision given for {missing}")
    bad = {k: v for k, v in supervision.items() if v not in SUPERVISION}
    if bad:
        raise ValueError(f"leaderboard: supervision must be one of {list(SUPERVISION)}, got {bad}")
    groups = per_seed.groupby("localizer", sort=False)
    out = pd.DataFrame(index=pd.Index(list(dict.fromkeys(per_seed["localizer"])), name="localizer"))
    for col in SCORE_COLUMNS:  # each column over the seeds where it is defined ("-": none)
        kept = per_seed[np.isfinite(per_seed[col].to_numpy(float))]
        out[col] = mean_ci_table(kept, "localizer", [col], level)[col] if len(kept) else "-"
    out = out.fillna("-")
    out["seeds"] = groups["seed"].nunique().astype(int)
    out["needs"] = [SUPERVISION[supervision[n]] for n in out.index]
    rank = groups[rank_by].mean()  # NaN-skipping; a localizer with none ranks last
    out = out.loc[(-rank if SCORE_COLUMNS[rank_by] else rank).sort_values(na_position="last", kind="stable").index]
    out.insert(0, "rank", range(1, len(out) + 1))
    return out


def summary(per_seed, supervision: Mapping[str, str], dataset: str, rank_by: str = "pixel AUC",
            also: str = "IoU") -> str:
    """The leaderboard in two or three sentences: for each kind of supervision (pixel labels, image labels,
    the pristine frame, nothing) its best localizer by the seed-mean of ``rank_by``, with that mean and the
    mean of ``also``; then how many of the localizers trained on image labels fall below the best one that
    needs nothing, on each of the two metrics.  Means over seeds (the intervals are in the table)."""
    for col in (rank_by, also):
        if col not in SCORE_COLUMNS:
            raise ValueError(f"summary: {col!r} is not one of {list(SCORE_COLUMNS)}")
    mean = per_seed.groupby("localizer")[[rank_by, also]].mean()
    sign = {c: 1.0 if SCORE_COLUMNS[c] else -1.0 for c in (rank_by, also)}
    kinds = {k: [n for n in mean.index if supervision[n] == k] for k in SUPERVISION}
    best = {k: max(ns, key=lambda n: sign[rank_by] * mean.loc[n, rank_by]) for k, ns in kinds.items() if ns}
    parts = [f"{SUPERVISION[k]}: **{n}** ({mean.loc[n, rank_by]:.2f} {rank_by}, {mean.loc[n, also]:.2f} {also})"
             for k, n in best.items()]
    out = f"On {dataset}, the best localizer by {rank_by} that needs " + "; ".join(parts) + "."
    if "none" in best and kinds["image"]:
        prior = best["none"]
        below = {c: sum(sign[c] * mean.loc[n, c] < sign[c] * mean.loc[prior, c] for n in kinds["image"])
                 for c in (rank_by, also)}
        out += (f" The {prior}, which learns nothing, beats {below[rank_by]} of the {len(kinds['image'])} "
                f"localizers trained on image labels by {rank_by} and {below[also]} by {also}.")
    return out
