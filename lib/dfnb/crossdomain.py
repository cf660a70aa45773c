"""How far the cross-domain benchmarks lie from the training domain: the calibration of chapter 00.

A competent baseline (``efficientnet_lite0``, ImageNet-initialised) is trained on ``ffpp-syn`` from several
seeds and tested on the in-domain test split and on each cross-domain test split.  The papers' detectors
lose 15-35 AUC points from FF++ to Celeb-DF or DFDC; a synthetic cross-domain set on which a baseline
loses almost nothing could not show a generalisation method's gain, so each set must cost the baseline at
least ``MIN_DROP`` points.

- :data:`CROSS_DOMAIN`       the cross-domain sets a detector trained on ``ffpp-syn`` is tested on
- :func:`n_videos_for`       identities a split needs for at least ``min_faces`` faces
- :func:`calibrate`          train the baseline from each seed (through the experiment cache), test everywhere
- :func:`drop_table`         per set: mean AUC with its 95 % t-interval over seeds, the paired drop from
                             in-domain with its interval, and whether the drop reaches ``MIN_DROP``
"""
from __future__ import annotations

import math
from typing import Sequence

__all__ = ["IN_DOMAIN", "CROSS_DOMAIN", "MIN_DROP", "PAPER_COLUMN", "n_videos_for", "calibrate", "drop_table",
           "paper_drops", "claims", "metric_records"]

IN_DOMAIN = "ffpp-syn"
CROSS_DOMAIN = ("celebdf-syn", "dfdc-syn", "dfdcp-syn", "dfo-syn", "dfd-syn", "dftimit-syn", "wdf-syn")
MIN_DROP = 10.0  # AUC points the baseline must lose on every cross-domain set


def n_videos_for(name: str, split: str = "test", min_faces: int = 1000, frames_per_video: int | None = None) -> int:
    """The fewest identities (real videos) for which split ``split`` of benchmark ``name`` holds at least
    ``min_faces`` faces (every identity brings its real video and the set's fakes of it)."""
    from dfnb.data.benchmark import count_faces

    if min_faces < 1:
        raise ValueError(f"min_faces must be >= 1, got {min_faces}")
    per = count_faces(name, split, n_videos=1, frames_per_video=frames_per_video)
    return math.ceil(min_faces / per)


def calibrate(seeds: Sequence[int], *, size: int = 96, n_videos: int = 200, n_val_videos: int = 40,
              frames_per_video: int = 4, min_test_faces: int = 1000, epochs: int = 5, batch_size: int = 32,
              lr: float = 1e-3, model: str = "efficientnet_lite0", sets: Sequence[str] = CROSS_DOMAIN,
              device: str = "cpu", data_seed: int = 0, progress: bool = False):
    """Train ``model`` on ``ffpp-syn`` (HQ) from each seed in ``seeds`` and test it in- and cross-domain.

    Data: ``n_videos`` training identities x ``frames_per_video`` frames (real + 4 families), the validation
    split (``n_val_videos``) picks the epoch; every test split holds >= ``min_test_faces`` faces.
    Returns a long DataFrame: one row per (seed, test set) with ``frame_auc`` and ``video_auc`` (fractions),
    ``n_faces`` and the experiment ``key``; ``.attrs["experiments"]`` maps each seed to its
    :class:`dfnb.experiments.Experiment`.
    """
    import pandas as pd

    from dfnb import data, experiments

    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds")
    unknown = [s for s in sets if s not in data.list_benchmarks()]
    if unknown:
        raise ValueError(f"unknown benchmarks {unknown}")
    load = dict(size=size, frames_per_video=frames_per_video, seed=data_seed, progress=progress)
    train = data.load_benchmark(IN_DOMAIN, "train", n_videos=n_videos, **load)
    val = data.load_benchmark(IN_DOMAIN, "val", n_videos=n_val_videos, **load)
    tests = {}
    for name in (IN_DOMAIN, *sets):  # cross-domain sets keep their own frames per video (None: the spec's)
        fpv = frames_per_video if name == IN_DOMAIN else None
        tests[name] = data.load_benchmark(name, "test", size=size, seed=data_seed, progress=progress,
                                          frames_per_video=fpv, n_videos=n_videos_for(name, "test", min_test_faces, fpv))
    rows, exps = [], {}
    for s in seeds:
        exp = exps[s] = experiments.train_seeded(model, train, val, seed=s, epochs=epochs, batch_size=batch_size, lr=lr,
                                       device=device, progress=progress)
        for name, ds in tests.items():
            det = exp.evaluate(ds, device=device)["detection"]
            rows.append({"seed": s, "test set": name, "frame_auc": det["frame_auc"],
                         "video_auc": det.get("video_auc", float("nan")), "n_faces": len(ds), "key": exp.key,
                         "val_auc": exp.history.best_metric, "best_epoch": exp.history.best_epoch})
    out = pd.DataFrame(rows)
    out.attrs["experiments"] = exps  # {seed: dfnb.experiments.Experiment}, e.g. to export one model
    return out


def _auc_points(per_seed):
    """:func:`calibrate`'s rows as a (seed x test set) table of frame AUC in points."""
    return per_seed.pivot(index="seed", columns="test set", values="frame_auc") * 100


def drop_table(per_seed, min_drop: float = MIN_DROP):
    """Summarise :func:`calibrate`'s rows, one row per test set (AUC in points, i.e. percent).

    Columns: ``AUC`` (mean over seeds), ``AUC 95% low/high`` (t-interval over seeds), ``drop`` (mean of the
    per-seed in-domain AUC minus this set's AUC, paired by seed), ``drop 95% low/high``, ``n_seeds``,
    ``faces``, ``drop >= min_drop`` (the interval's lower end clears it: True; its mean clears it but the
    interval does not: "mean only"; else False).  The in-domain row has drop 0.
    """
    import pandas as pd

    from dfnb import stats

    need = {"seed", "test set", "frame_auc", "n_faces"}
    if not need <= set(per_seed.columns):
        raise ValueError(f"drop_table needs columns {sorted(need)}, has {sorted(per_seed.columns)}")
    auc = _auc_points(per_seed)
    if IN_DOMAIN not in auc:
        raise ValueError(f"drop_table needs the in-domain set {IN_DOMAIN!r}")
    faces = per_seed.groupby("test set")["n_faces"].first()
    rows = []
    for name in [IN_DOMAIN] + [c for c in auc.columns if c != IN_DOMAIN]:
        a = stats.t_interval(auc[name].to_numpy())
        d = stats.paired_effect(auc[name].to_numpy(), auc[IN_DOMAIN].to_numpy())
        ok = (d.low >= min_drop) if d.n >= stats.MIN_SEEDS else False
        clears = True if ok else ("mean only" if d.mean >= min_drop else False)
        rows.append({"test set": name, "AUC": a.mean, "AUC 95% low": a.low, "AUC 95% high": a.high,
                     "drop": d.mean, "drop 95% low": d.low, "drop 95% high": d.high, "n_seeds": a.n,
                     "faces": int(faces[name]), f"drop >= {min_drop:g}": "in-domain" if name == IN_DOMAIN else clears})
    return pd.DataFrame(rows).set_index("test set")


# the FoCus Table VII column (train FF++ (HQ)) that plays each synthetic set's role
PAPER_COLUMN = {"celebdf-syn": "CDF", "dfdc-syn": "DFDC", "wdf-syn": "WDF", "dfdcp-syn": "DFDCp"}


def paper_drops() -> dict[str, tuple[float, int]]:
    """``{synthetic set: (mean AUC drop in points, detectors)}`` from FoCus Table VII (the paper's numbers):
    per detector with both cells, FF++ (HQ) AUC minus the cross-dataset AUC, averaged over detectors."""
    from dfnb import papers

    t = papers.load_table("focus", "VII")
    t = t[t["metric"] == "AUC"]
    ind = t[t["test_set"] == "FF++ (HQ)"].set_index("method")["value"]
    out = {}
    for name, col in PAPER_COLUMN.items():
        cross = t[t["test_set"] == col].set_index("method")["value"]
        both = ind.index.intersection(cross.index)
        out[name] = (float((ind[both] - cross[both]).mean()), int(len(both)))
    return out


def claims(per_seed):
    """The claims table of chapter 00: "an FF++-trained detector loses AUC on <set>" for each set whose
    real counterpart FoCus Table VII reports, our effect = cross-domain minus in-domain AUC (points),
    paired by seed (``dfnb.stats.claim_row``)."""
    from dfnb import stats

    auc = _auc_points(per_seed)
    rows = []
    for name, (drop, k) in paper_drops().items():
        if name in auc:
            rows.append(stats.claim_row(
                f"a detector trained on FF++ loses AUC on {PAPER_COLUMN[name]} (here {name})",
                f"FoCus VII (mean of {k} detectors)", -drop, auc[IN_DOMAIN].to_numpy(), auc[name].to_numpy(),
                dataset=f"{IN_DOMAIN} -> {name}", metric="frame AUC (points), cross minus in-domain"))
    return stats.claims_table(rows)


def metric_records(per_seed, table, model: str = "efficientnet_lite0") -> list[dict]:
    """``run.metric`` keyword dicts (the record contract) for :func:`calibrate`'s rows and :func:`drop_table`."""
    recs = [dict(name="frame_auc", value=float(r["frame_auc"]), dataset=r["test set"], split="test", model=model,
                 seed=int(r["seed"]), train=IN_DOMAIN, table="calibration") for _, r in per_seed.iterrows()]
    for name, r in table.iterrows():
        recs.append(dict(name="frame_auc", value=float(r["AUC"]) / 100, dataset=name, split="test", model=model,
                         seed="mean", seeds=sorted(int(s) for s in per_seed["seed"].unique()), train=IN_DOMAIN,
                         ci_low=float(r["AUC 95% low"]) / 100, ci_high=float(r["AUC 95% high"]) / 100,
                         table="calibration"))
    return recs
