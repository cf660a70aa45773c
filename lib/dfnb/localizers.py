"""Every localizer of the three papers as maps on one set of test faces (chapter 40, issue #17).

Each paper's models come from its own chapter's experiments: this module re-issues *that chapter's* library
calls with *that chapter's* parameters for the profile (read from its notebook and ``profiles.yml``,
:func:`chapter_params`), so with a warm experiment cache nothing is retrained.  The faces are chapter 31's
``ffpp-syn`` HQ validation and test faces (:func:`common_faces`), rendered at each model's own input size
(the same faces: one data seed, one identity list) and every map resized to one scoring size.

- :func:`dadf_experiments`  DADF and the SAM baselines (pixel labels), every training seed; their maps by
  :func:`mask_maps`
- :func:`focus_localizers`  FoCus's fused CAR map and a plain ViT's Grad-CAM (image labels), every seed;
  SSIM and pixel difference against the pristine frame (oracles)
- :func:`prle_localizers`   each zoo detector's Grad-CAM and PRLE's average and neighbouring fusion (image
  labels; one zoo, trained from the chapter's seed)
- :func:`prior_localizers`  the face hull and the all-zero mask (nothing)
- :func:`score`             the long per-seed table for :func:`dfnb.leaderboard.leaderboard`; its rows
  into a run's metrics by :func:`record_scores`
- :func:`weak_targets`      FoCus's and PRLE's fused maps and the face hull on DADF's training faces (no pixel
  labels)
- :func:`weak_dadf_experiments`  DADF trained on those maps instead of the exact masks, every seed
- :func:`prle_dadf_experiments`  DADF trained with PRLE's masking as augmentation, every seed
- :func:`detection`         frame AUC of DADF-like experiments in-domain and on :func:`detection_sets`; its
  rows into a run's metrics by :func:`record_detection`
- :func:`hypotheses`        the chapter's own questions as claims-table rows, paired over seeds
- :func:`supervision`       what each localizer needs, for the leaderboard's column
- :func:`figure`            one metric of every localizer as bars with intervals, coloured by supervision
- :func:`viewer_inputs`     the same faces under a few localizers, for :func:`dfnb.viz.mask_viewer`
- :func:`deviations`        how this chapter's protocol departs from the three papers', with the reasons

A localizer's maps: ``{(name, seed): {"val": (N, H, W), "test": (N, H, W)}}`` float32 in [0, 1].
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["CROSS_HYPOTHESES", "CROSS_LEADERBOARD", "CROSS_SETS", "DETECTION_METRICS", "HYPOTHESES", "SUPERVISION", "WEAK_TARGETS", "chapter_params",
           "common_faces", "dadf_experiments", "detection", "detection_sets", "deviations", "figure",
           "focus_localizers", "hypotheses", "mask_maps", "prior_localizers", "prle_dadf_experiments",
           "prle_localizers", "record_detection", "record_scores", "resize", "score", "supervision", "training_table", "viewer_inputs",
           "weak_dadf_experiments", "weak_targets"]

#: the supervision each localizer needs (keys of :data:`dfnb.leaderboard.SUPERVISION`)
SUPERVISION = {"DADF": "pixel", "DADF + PRLE masking": "pixel", "DADF on FoCus (fused CAR map)": "image",
               "DADF on PRLE fused: neighbouring": "image", "DADF on face hull": "image",
               "SAM (fine-tuned)": "pixel", "SAM+LoRA": "pixel", "SAM+Prompt": "pixel",
               "FoCus (fused CAR map)": "image", "Grad-CAM, plain ViT": "image",
               "PRLE fused: neighbouring": "image", "PRLE fused: average": "image",
               "SSIM (pristine frame)": "pair", "pixel difference (pristine frame)": "pair",
               "face hull": "none", "all-zero mask": "none"}
_DADF_NAMES = {"dadf": "DADF", "sam_full_ft": "SAM (fine-tuned)", "sam_lora": "SAM+LoRA", "sam_prompt": "SAM+Prompt"}


def chapter_params(chapter: str, profile: str) -> dict[str, Any]:
    """A chapter's parameters for ``profile``: its notebook's defaults, then ``profiles.yml``."""
    from dfnb import runner

    return runner.resolve_params(runner.find_chapter(chapter), profile)


#: the cross-domain set of the second leaderboard (chapter 10's Celeb-DF stand-in; it has exact masks)
CROSS_LEADERBOARD = "celebdf-syn"


def common_faces(p31: Mapping[str, Any], size: int, *, return_source: bool = False,
                 p10: Mapping[str, Any] | None = None) -> dict:
    """``{"val", "test"}``: chapter 31's ``ffpp-syn`` HQ validation and test faces (its ``n_eval_videos``
    identities, 2 frames each, its data seed) rendered at ``size`` px; with ``return_source`` each fake
    also carries its pristine face (for SSIM / pixel difference).

    p10: chapter 10's parameters: also the split :data:`CROSS_LEADERBOARD`, the test faces of chapter 10's
    Celeb-DF stand-in (its ``n_eval_videos`` identities, 2 frames each, its data seed).  Real Celeb-DF
    (``celebdf_root`` set) has no forgery masks: the split is then left out with a warning naming why."""
    import warnings

    from dfnb.data import load_split

    kw = dict(real="ffpp", root=p31["ffpp_root"], n_videos=p31["n_eval_videos"], frames_per_video=2,
              size=size, seed=p31["seed"], progress=False, quality="hq")
    if return_source:
        kw["return_source"] = True
    out = {s: load_split("ffpp-syn", s, **kw)[1] for s in ("val", "test")}
    if p10 is not None and p10.get("celebdf_root"):
        warnings.warn(f"real Celeb-DF ({p10['celebdf_root']}) has no forgery masks: the cross-domain "
                      "leaderboard is left out", stacklevel=2)
    elif p10 is not None:
        out[CROSS_LEADERBOARD] = load_split(CROSS_LEADERBOARD, "test", size=size, n_videos=p10["n_eval_videos"],
                                            frames_per_video=2, seed=p10["seed"], progress=False,
                                            return_source=return_source)[1]
    return out


def resize(maps, size: int) -> np.ndarray:
    """(N, H, W) or (N, 1, H, W) maps -> (N, size, size) float32 in [0, 1]: area averaging when shrinking,
    bilinear when growing."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"maps must be (N, H, W) or (N, 1, H, W), got {tuple(t.shape)}")
    if t.shape[-1] != size or t.shape[-2] != size:
        t = (F.interpolate(t, size=(size, size), mode="area") if t.shape[-1] >= size else
             F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False))
    return t[:, 0].clamp(0, 1).numpy()


def _dadf_setup(p31: Mapping[str, Any], device: str):
    """Chapter 31's training split, model and fit keyword arguments and training seeds, as chapter 31 makes
    them."""
    from dfnb.models.dadf import study

    sam_kw, _, _ = study.sam_kwargs(sam_checkpoint=p31["sam_checkpoint"], sam_type=p31["sam_type"],
                                    micro_sam_path=p31["micro_sam_path"], profile=p31["profile"],
                                    sam_img_size=p31["sam_img_size"])
    train = _dadf_train(p31, p31["size"])
    model_kw = dict(sam_kw, noise_std=p31["noise_std"], noise_p=p31["noise_p"])
    fit_kw = dict(epochs=p31["epochs"], batch_size=p31["batch_size"], lr=p31["lr"], device=device,
                  restore_best=False)
    return train, model_kw, fit_kw, range(p31["seed"], p31["seed"] + p31["n_seeds"])


def _mask_maps(e, faces: Mapping[str, Any], size: int, device: str) -> dict:
    """``{split: (N, size, size)}``: an experiment's predicted masks on each split of ``faces``."""
    return {k: resize(e.evaluate(d, batch_size=32, device=device, return_masks=True)["pred_masks"], size)
            for k, d in faces.items()}


def mask_maps(exps: Mapping[tuple[str, int], Any], faces: Mapping[str, Any], size: int, *,
              device: str = "cpu") -> dict:
    """Maps (module docstring) of mask-predicting experiments ``{(name, seed): Experiment}``: their
    predicted masks on each split of ``faces`` (at the models' size), resized to ``size``."""
    return {k: _mask_maps(e, faces, size, device) for k, e in exps.items()}


def dadf_experiments(p31: Mapping[str, Any], val, *, device: str = "cpu") -> dict:
    """``{(name, seed): Experiment}``: DADF and chapter 31's SAM baselines, every training seed, trained (or
    loaded) exactly as chapter 31 trains them (``val``: the validation faces at chapter 31's size)."""
    from dfnb.experiments import train_seeded

    train, model_kw, fit_kw, seeds = _dadf_setup(p31, device)
    names = ["dadf"] + [b for b in p31["baselines"] if b != "dadf"]
    return {(_DADF_NAMES[n], s): train_seeded(n, train, val, seed=s, model_kwargs=model_kw, **fit_kw)
            for n in names for s in seeds}


def focus_localizers(p20: Mapping[str, Any], faces_src: Mapping[str, Any], size: int, *,
                     device: str = "cpu") -> dict:
    """FoCus's fused CAR map and the plain ViT's Grad-CAM (every training seed of chapter 20, trained or
    loaded as chapter 20 trains them), SSIM and pixel difference against the pristine frame (one "seed":
    they learn nothing), on ``faces_src`` (faces with their pristine frames, at chapter 20's size), resized
    to ``size``."""
    from dfnb.models.focus import study as fs

    models, seeds = _focus_models(p20, device)
    names = {"focus": "FoCus (fused CAR map)", "gradcam": "Grad-CAM, plain ViT", "ssim": "SSIM (pristine frame)",
             "diff": "pixel difference (pristine frame)"}
    out = {}
    for src, name in names.items():
        for s in (seeds if src in fs.SOURCE_KIND else seeds[:1]):
            m = fs.maps_of(src, dict(faces_src), models, s, batch_size=p20["batch_size"], device=device,
                           label_free=True)  # a real face's map is the localizer's, not zeroed
            out[name, s] = {k: resize(v, size) for k, v in m.items()}
    return out


def prle_localizers(p10: Mapping[str, Any], faces: Mapping[str, Any], size: int, *, device: str = "cpu") -> dict:
    """Each zoo detector's Grad-CAM and PRLE's neighbouring and average fusion, from chapter 10's zoo (one
    zoo, trained or loaded from the chapter's seed as chapter 10 trains it), on ``faces`` (at chapter 10's
    size), resized to ``size``."""
    from dfnb.models import prle
    from dfnb.models.prle import study as ps

    zoo, layers = _prle_zoo(p10, device)
    grid = p10["size"] // p10["cam_stride"]
    out = {}
    for split, ds in faces.items():
        store = prle.zoo_maps(zoo, ds, batch_size=32, device=device, progress=False, target_layers=layers)
        fused = {"neighbouring": store.fuse("neighbouring", lam=p10["lam"], tau1=p10["tau1"], grid=grid,
                                            progress=False),
                 "average": store.fuse("average", tau1=p10["tau1"], progress=False)}
        for name, maps in ps.map_arrays(store, fused).items():
            label = f"PRLE {name}" if name.startswith("fused") else f"Grad-CAM, {name} (PRLE zoo)"
            out.setdefault((label, p10["seed"]), {})[split] = resize(maps, size)
    return out


def _focus_models(p20: Mapping[str, Any], device: str):
    """Chapter 20's FoCus and plain-ViT experiments ``{kind: {seed: Experiment}}`` and its training seeds, as
    chapter 20 makes them."""
    from dfnb.data import load_split
    from dfnb.models.focus import study as fs

    kw = dict(real="ffpp", root=p20["ffpp_root"], size=p20["size"], frames_per_video=p20["frames_per_video"],
              seed=p20["seed"])
    train, val = (load_split("ffpp-syn", s, n_videos=k, **kw)[1]
                  for s, k in (("train", p20["n_videos"]), ("val", p20["n_eval_videos"])))
    focus_kw = fs.focus_kwargs(p20["size"], backbone=p20["backbone"], stage=p20["stage"], depth=p20["vit_depth"],
                               embed_dim=p20["embed_dim"], patch_size=p20["patch_size"])
    seeds = [p20["seed"] + i for i in range(p20["n_seeds"])]
    fit = dict(epochs=p20["epochs"], batch_size=p20["batch_size"], lr=p20["lr"], device=device, progress=False)
    return {k: fs.train_kind(k, train, val, seeds, focus_kw=focus_kw, **fit) for k in ("focus", "plain")}, seeds


def _prle_zoo(p10: Mapping[str, Any], device: str):
    """Chapter 10's zoo ``({name: model}, {name: CAM layer})``, as chapter 10 makes it."""
    from dfnb import data, experiments
    from dfnb.models.prle import study as ps

    kw = dict(real="ffpp", root=p10["ffpp_root"], size=p10["size"], seed=p10["seed"],
              frames_per_video=p10["frames_per_video"], progress=False)
    train = data.load_split("ffpp-syn", "train", n_videos=p10["n_videos"], **kw)[1]
    val = data.load_split("ffpp-syn", "val", n_videos=p10["n_eval_videos"], **kw)[1]
    fit = dict(batch_size=p10["batch_size"], lr=p10["lr"], device=device, progress=False)
    zoo = {n: experiments.train_seeded(n, train, val, seed=p10["seed"], epochs=p10["zoo_epochs"],
                                       model_kwargs=ps.model_kwargs(n, p10["size"]), **fit).model
           for n in p10["zoo"]}
    return zoo, {n: ps.cam_layer(n, m, p10["cam_stride"]) for n, m in zoo.items()}


def _prle_fused(P: Mapping[str, Mapping[str, Any]], device: str):
    """PRLE's neighbouring fusion of chapter 10's zoo on DADF's training faces (chapter 31's training split,
    rendered at chapter 10's size): a :class:`~dfnb.models.prle.static.FusedMaps` looked up by sample key
    (the same faces at any size), and the split it was computed on."""
    from dfnb.models import prle

    p31, p10 = P["31_dadf"], P["10_prle"]
    tr10 = _dadf_train(p31, p10["size"])
    zoo, layers = _prle_zoo(p10, device)
    store = prle.zoo_maps(zoo, tr10, batch_size=32, device=device, progress=False, target_layers=layers)
    return store.fuse("neighbouring", lam=p10["lam"], tau1=p10["tau1"], grid=p10["size"] // p10["cam_stride"],
                      progress=False), tr10


def _dadf_train(p31: Mapping[str, Any], size: int, **kw):
    """Chapter 31's training split rendered at ``size`` (``kw``: e.g. ``return_source``)."""
    from dfnb.data import load_split

    return load_split("ffpp-syn", "train", real="ffpp", root=p31["ffpp_root"], n_videos=p31["n_videos"],
                      frames_per_video=p31["frames_per_video"], quality="hq", size=size, seed=p31["seed"],
                      progress=False, **kw)[1]


#: the weak targets :func:`weak_targets` can make
WEAK_TARGETS = ("FoCus (fused CAR map)", "PRLE fused: neighbouring", "face hull")


def weak_targets(P: Mapping[str, Mapping[str, Any]], names=WEAK_TARGETS, *, device: str = "cpu") -> dict:
    """Weak training targets for DADF, made without pixel labels, on DADF's training faces (chapter 31's
    training split, item for item, rendered at each model's size): ``{name: {seed: (N, S, S) maps}}`` at
    chapter 31's size ``S``, for each of ``names`` (:data:`WEAK_TARGETS`).  Real faces' targets are zero
    (their image label says so).

    - ``"FoCus (fused CAR map)"``: each of chapter 20's FoCus training seeds' fused CAR maps, as chapter 20
      feeds its evaluator;
    - ``"PRLE fused: neighbouring"``: PRLE's neighbouring fusion of chapter 10's zoo (one zoo: the same maps
      for every DADF seed);
    - ``"face hull"``: the landmarks' convex hull of each fake ("the forgery is the face": the image label
      and a landmark detector).

    With the default profiles the FoCus and PRLE maps are the very maps chapters 20 and 10 compute on their
    own training split (the same faces), so they load from the cache."""
    from dfnb.baselines import floor_baselines
    from dfnb.models.focus import study as fs

    unknown = [n for n in names if n not in WEAK_TARGETS]
    if unknown:
        raise ValueError(f"unknown weak targets {unknown}; choose from {list(WEAK_TARGETS)}")
    p31, p20, p10 = P["31_dadf"], P["20_focus"], P["10_prle"]
    out = {}
    if "FoCus (fused CAR map)" in names:
        models, seeds = _focus_models(p20, device)
        tr20 = _dadf_train(p31, p20["size"], return_source=True)  # chapter 20's map cache is keyed on this split
        out["FoCus (fused CAR map)"] = {
            s: resize(fs.maps_of("focus", {"train": tr20}, models, s, batch_size=p20["batch_size"],
                                 device=device)["train"], p31["size"]) for s in seeds}
    if "PRLE fused: neighbouring" in names:
        fused, tr10 = _prle_fused(P, device)
        real = np.array([int(tr10[i]["label"]) == 0 for i in range(len(tr10))])
        out["PRLE fused: neighbouring"] = {
            p31["seed"]: resize(np.where(real[:, None, None], 0.0, fused.all()), p31["size"])}
    if "face hull" in names:
        fb = floor_baselines(_dadf_train(p31, p31["size"]))
        out["face hull"] = {p31["seed"]: np.where(np.asarray(fb.labels)[:, None, None] == 1, fb.hulls, 0.0)
                            .astype(np.float32)}
    return out


def weak_dadf_experiments(p31: Mapping[str, Any], targets: Mapping[str, Mapping[int, np.ndarray]], val, *,
                          device: str = "cpu") -> dict:
    """``{("DADF on <target>", seed): Experiment}``: DADF trained like chapter 31's DADF (every training seed)
    but on each weak target of :func:`weak_targets` instead of the exact masks (seed ``s`` uses that seed's
    maps, or the only ones)."""
    from dfnb.data.targets import WithMaskTarget
    from dfnb.experiments import train_seeded

    train, model_kw, fit_kw, seeds = _dadf_setup(p31, device)
    out = {}
    for name, by_seed in targets.items():
        for s in seeds:
            maps = by_seed[s] if s in by_seed else next(iter(by_seed.values()))
            out[f"DADF on {name}", s] = train_seeded("dadf", WithMaskTarget(train, maps, name), val, seed=s,
                                                     model_kwargs=model_kw, **fit_kw)
    return out


def prle_dadf_experiments(P: Mapping[str, Mapping[str, Any]], val, *, device: str = "cpu") -> dict:
    """``{("DADF + PRLE masking", seed): Experiment}``: DADF trained like chapter 31's DADF (every training
    seed, exact masks) with PRLE's dynamic exploitation (Algorithm 1) as its training transform: chapter
    10's fused neighbouring maps of DADF's training faces, its ``prle_p`` and ``gamma``, alpha as the paper.

    Only the image is masked: the mask target stays the exact one (a forged region hidden by the mask is
    still where the forgery is), so the decoder is asked to find the forgery from what is left."""
    from dfnb.experiments import train_seeded
    from dfnb.models.prle import PRLEAugment

    p31, p10 = P["31_dadf"], P["10_prle"]
    fused, _ = _prle_fused(P, device)
    aug = PRLEAugment(fused, p=p10["prle_p"], gamma=p10["gamma"], alpha="paper")
    train, model_kw, fit_kw, seeds = _dadf_setup(p31, device)
    return {("DADF + PRLE masking", s): train_seeded("dadf", train, val, seed=s, model_kwargs=model_kw,
                                                     transform=aug, transform_key=aug.cache_key(), **fit_kw)
            for s in seeds}


#: PRLE's cross-domain test sets (chapter 10: Celeb-DF, DFDC, DeeperForensics stand-ins)
CROSS_SETS = ("celebdf-syn", "dfdc-syn", "dfo-syn")


def detection_sets(P: Mapping[str, Mapping[str, Any]], faces: Mapping[str, Any], size: int) -> dict:
    """``{name: data set}``: the in-domain test faces ``faces["test"]`` (``"ffpp-syn HQ"``) and chapter 10's
    cross-domain test sets (:data:`CROSS_SETS`, its identities, frames, data seed and real-data roots),
    rendered at ``size``."""
    from dfnb.data import load_split

    p10 = P["10_prle"]
    out = {"ffpp-syn HQ": faces["test"]}
    for name in CROSS_SETS:
        real = name.removesuffix("-syn")
        n, ds = load_split(name, "test", real=real, root=p10.get(f"{real}_root"), size=size, seed=p10["seed"],
                           n_videos=p10["n_eval_videos"], frames_per_video=p10["frames_per_video"], progress=False)
        out[n] = ds
    return out


def detection(exps: Mapping[tuple[str, int], Any], sets: Mapping[str, Any], *, device: str = "cpu"):
    """Per-seed frame AUC (%) of each experiment on each of ``sets`` (the first is in-domain): a DataFrame
    ``localizer, seed, <set>..., in-domain AUC, cross-domain AUC`` (the plain mean over the other sets)."""
    import pandas as pd

    names = list(sets)
    rows = []
    for (name, seed), e in exps.items():
        auc = {n: 100 * e.evaluate(ds, batch_size=32, device=device)["detection"]["frame_auc"]
               for n, ds in sets.items()}
        rows.append({"localizer": name, "seed": seed, **auc, "in-domain AUC": auc[names[0]],
                     "cross-domain AUC": float(np.mean([auc[n] for n in names[1:]])) if len(names) > 1 else np.nan})
    return pd.DataFrame(rows)


def training_table(per_seed, detection, names: Sequence[str]):
    """One row per localizer of ``names`` present in ``per_seed`` (:func:`score`), in that order: pixel AUC,
    IoU and PBCA of the test fakes and the share of a real face's pixels marked, and, for a model that also
    detects, its in-domain and cross-domain frame AUC (:func:`detection`; "-" for the others), each
    ``mean [low, high]`` over its seeds (points), and the number of seeds.  Chapter 40's weak-label and
    PRLE-masking tables: DADF's variants beside DADF and beside the maps they were trained on."""
    from dfnb.report import mean_ci_table

    names = [n for n in dict.fromkeys(names) if n in set(per_seed["localizer"])]
    if not names:
        raise ValueError("training_table: none of the named localizers is in this run's scores")
    loc = per_seed[per_seed["localizer"].isin(names)]
    out = mean_ci_table(loc, "localizer", ["pixel AUC", "IoU", "PBCA fake", "marked real"])
    det = detection[detection["localizer"].isin(names)] if detection is not None else detection
    for col in ("in-domain AUC", "cross-domain AUC"):
        out[col] = mean_ci_table(det, "localizer", [col])[col] if det is not None and len(det) else "-"
    out = out.reindex(names).fillna("-")
    out["seeds"] = loc.groupby("localizer")["seed"].nunique().reindex(names).astype(int)
    out.index.name = "localizer"
    return out


def prior_localizers(faces: Mapping[str, Any]) -> dict:
    """The face hull (the landmarks' convex hull: "the forgery is the face") and the all-zero mask."""
    from dfnb.baselines import floor_baselines

    hull = {k: floor_baselines(d).hulls for k, d in faces.items()}
    return {("face hull", 0): hull, ("all-zero mask", 0): {k: np.zeros_like(v) for k, v in hull.items()}}


def score(maps: Mapping[tuple[str, int], Mapping[str, np.ndarray]], faces: Mapping[str, Any],
          metric: str = "iou", test: str = "test"):
    """Long DataFrame ``localizer, seed, threshold`` + :data:`dfnb.leaderboard.SCORE_COLUMNS`: each
    localizer's threshold chosen on ``faces["val"]`` (:func:`dfnb.leaderboard.best_threshold`), then its
    scores on ``faces[test]`` (another split of the maps, e.g. :data:`CROSS_LEADERBOARD`: the threshold
    still comes from the in-domain validation faces, as it would in deployment)."""
    import pandas as pd

    from dfnb import leaderboard

    if test == "val" or test not in faces:
        raise ValueError(f"score: test split {test!r} must be one of {[k for k in faces if k != 'val']}")
    truth = {}
    for k in ("val", test):
        items = [faces[k][i] for i in range(len(faces[k]))]
        truth[k] = (np.stack([it["mask"][0].numpy() for it in items]).astype(np.float32),
                    np.array([int(it["label"]) for it in items]))
    rows = []
    for (name, seed), m in maps.items():
        for k, (gt, _) in truth.items():
            if m[k].shape != gt.shape:
                raise ValueError(f"{name} (seed {seed}): {k} maps {m[k].shape} against masks {gt.shape}")
        t = leaderboard.best_threshold(m["val"], truth["val"][0], truth["val"][1], metric)
        rows.append({"localizer": name, "seed": seed, "threshold": t,
                     **leaderboard.localizer_scores(m[test], *truth[test], t)})
    return pd.DataFrame(rows)


def record_scores(run, per_seed, dataset: str) -> None:
    """Every score of :func:`score`'s table as one metric of ``run`` (:meth:`dfnb.runner.Run.metric`):
    each :data:`dfnb.leaderboard.SCORE_COLUMNS` value with its localizer as ``model``, its training seed,
    ``dataset``, split ``"test"`` and the validation ``threshold`` it was scored at."""
    from dfnb.leaderboard import SCORE_COLUMNS

    for _, r in per_seed.iterrows():
        for m in SCORE_COLUMNS:
            run.metric(m, r[m], model=r.localizer, seed=r.seed, dataset=dataset, split="test",
                       threshold=r.threshold)


def record_detection(run, detection, sets) -> None:
    """Every frame AUC of :func:`detection`'s table as one metric of ``run``: ``frame_auc`` per localizer,
    training seed and test set of ``sets`` (split ``"test"``)."""
    for _, r in detection.iterrows():
        for n in sets:
            run.metric("frame_auc", r[n], model=r.localizer, seed=r.seed, dataset=n, split="test")


def supervision(names) -> dict[str, str]:
    """``{name: SUPERVISION key}`` for every localizer name (a PRLE zoo member's Grad-CAM: image labels)."""
    out = {}
    for n in names:
        if n in SUPERVISION:
            out[n] = SUPERVISION[n]
        elif n.startswith("Grad-CAM, ") and n.endswith("(PRLE zoo)"):
            out[n] = "image"
        else:
            raise KeyError(f"no supervision known for localizer {n!r}")
    return out


#: ``(hypothesis, reference, variant, metric)``: the variant is better (higher; lower for IINC / marked real).
#: A metric of :data:`DETECTION_METRICS` is read from :func:`detection`'s table, any other from :func:`score`'s.
HYPOTHESES = [
    ("pixel labels beat image labels: DADF over FoCus (IoU)", "FoCus (fused CAR map)", "DADF", "IoU"),
    ("FoCus's CAR map beats a plain ViT's Grad-CAM (pixel AUC)", "Grad-CAM, plain ViT", "FoCus (fused CAR map)",
     "pixel AUC"),
    ("FoCus (image labels) beats the face-hull prior (pixel AUC)", "face hull", "FoCus (fused CAR map)", "pixel AUC"),
    ("DADF beats the face-hull prior (IoU)", "face hull", "DADF", "IoU"),
    ("DADF keeps real faces clean: fewer marked pixels than the face hull", "face hull", "DADF", "marked real"),
    ("PRLE's neighbouring fusion beats its average fusion (pixel AUC)", "PRLE fused: average",
     "PRLE fused: neighbouring", "pixel AUC"),
    ("DADF beats the fine-tuned SAM (IoU)", "SAM (fine-tuned)", "DADF", "IoU"),
    ("exact masks beat FoCus's maps as DADF's training target (IoU)", "DADF on FoCus (fused CAR map)", "DADF", "IoU"),
    ("DADF trained on FoCus's maps localizes better than those maps (IoU)", "FoCus (fused CAR map)",
     "DADF on FoCus (fused CAR map)", "IoU"),
    ("exact masks beat PRLE's maps as DADF's training target (IoU)", "DADF on PRLE fused: neighbouring", "DADF",
     "IoU"),
    ("FoCus's maps beat the face hull as DADF's training target (IoU)", "DADF on face hull",
     "DADF on FoCus (fused CAR map)", "IoU"),
    ("PRLE's maps beat the face hull as DADF's training target (IoU)", "DADF on face hull",
     "DADF on PRLE fused: neighbouring", "IoU"),
    ("exact masks beat FoCus's maps as DADF's training target (in-domain AUC)", "DADF on FoCus (fused CAR map)",
     "DADF", "in-domain AUC"),
    ("PRLE's masking improves DADF's cross-domain AUC", "DADF", "DADF + PRLE masking", "cross-domain AUC"),
    ("PRLE's masking improves DADF's in-domain AUC", "DADF", "DADF + PRLE masking", "in-domain AUC"),
    ("PRLE's masking improves DADF's localization (IoU)", "DADF", "DADF + PRLE masking", "IoU"),
]
#: the same kind of questions on :data:`CROSS_LEADERBOARD` (:func:`score` with ``test=CROSS_LEADERBOARD``)
CROSS_HYPOTHESES = [
    ("on an unseen domain, pixel labels still beat image labels: DADF over FoCus (IoU)", "FoCus (fused CAR map)",
     "DADF", "IoU"),
    ("on an unseen domain, DADF still beats the face-hull prior (IoU)", "face hull", "DADF", "IoU"),
    ("on an unseen domain, exact masks still beat FoCus's maps as DADF's training target (IoU)",
     "DADF on FoCus (fused CAR map)", "DADF", "IoU"),
]
#: the metrics of :func:`detection`'s table (higher is better)
DETECTION_METRICS = ("in-domain AUC", "cross-domain AUC")


def hypotheses(per_seed, dataset: str, detection=None, detection_sets=(), table=HYPOTHESES) -> list[dict]:
    """Claims-table rows (:func:`dfnb.stats.claim_row`, hypothesised direction +) for ``table``
    (:data:`HYPOTHESES`, or :data:`CROSS_HYPOTHESES` with the cross-domain scores as ``per_seed``),
    the effect paired by seed: on ``per_seed`` (:func:`score`, data set ``dataset``), or for a detection
    metric on ``detection`` (:func:`detection`; ``detection_sets``: its test sets' names, in-domain first).
    A localizer that learns nothing (the face hull, the oracles: one "seed") gives the same maps for every
    seed, so its value is repeated against each seed of the other; a localizer trained from one seed only
    (PRLE's zoo) leaves its rows at one seed, *inconclusive*.  A hypothesis whose localizers are not in its
    table gets a *not run* row."""
    from dfnb.leaderboard import SCORE_COLUMNS
    from dfnb.stats import claim_row, not_run_row

    fixed = {n for n, k in SUPERVISION.items() if k in ("none", "pair")}
    rows = []
    for text, ref, var, metric in table:
        det = metric in DETECTION_METRICS
        df = detection if det else per_seed
        have = set() if df is None else set(df["localizer"])
        if not {ref, var} <= have:
            rows.append(not_run_row(text, "-", f"{', '.join(sorted({ref, var} - have))} not in this run"))
            continue
        a = df[df.localizer == ref].set_index("seed")[metric]
        b = df[df.localizer == var].set_index("seed")[metric]
        if ref in fixed:
            a = b * 0 + float(a.iloc[0])
        if var in fixed:
            b = a * 0 + float(b.iloc[0])
        seeds = sorted(set(a.index) & set(b.index))
        ra, rb = a.loc[seeds].to_numpy(float), b.loc[seeds].to_numpy(float)
        if not det and not SCORE_COLUMNS[metric]:
            ra, rb = -ra, -rb
        on = ({"in-domain AUC": detection_sets[:1]}.get(metric, detection_sets[1:]) if det else [dataset])
        row = claim_row(text, "-", 1.0, ra, rb, dataset=", ".join(on),
                        metric=f"{metric} (points, variant better > 0)")
        row["paper_effect"] = float("nan")  # our question, not a paper's: the direction is the hypothesis
        rows.append(row)
    return rows


#: bar colours by supervision (Okabe-Ito, colour-blind safe)
_COLORS = {"pixel": "#0072B2", "image": "#E69F00", "pair": "#999999", "none": "#009E73"}


def figure(per_seed, metric: str = "pixel AUC", *, title: str | None = None):
    """Every localizer's ``metric`` (mean over seeds, 95 % t-interval where it has >= 2 seeds) as a
    horizontal bar, best on top, coloured by the supervision it needs (blue pixel labels, orange image
    labels, grey the pristine frame, green nothing), with a legend of the colours present."""
    from matplotlib.patches import Patch

    from dfnb.leaderboard import SCORE_COLUMNS
    from dfnb.leaderboard import SUPERVISION as NEEDS
    from dfnb.report import bar_chart_with_ci, seed_summary

    s = seed_summary(per_seed, "localizer", metric)
    s = s.sort_values("mean", ascending=not SCORE_COLUMNS[metric])  # the first label is drawn on top
    sup = supervision(s.index)
    fig = bar_chart_with_ci(list(s.index), s["mean"], s["low"], s["high"], xlabel=f"{metric} (%)", title=title,
                            colors=[_COLORS[sup[n]] for n in s.index])
    kinds = [k for k in _COLORS if k in sup.values()]
    fig.legend(handles=[Patch(color=_COLORS[k], alpha=0.85, label=NEEDS[k]) for k in kinds], title="needs",
               fontsize=8, title_fontsize=8, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.8 / fig.get_figheight(), 1, 1))  # the legend below the axes, off the bars
    return fig


def viewer_inputs(faces: Mapping[str, Any], maps: Mapping[tuple[str, int], Mapping[str, np.ndarray]],
                  names, seed: int, n: int = 8):
    """``(images, masks, probs, captions)`` for :func:`dfnb.viz.mask_viewer`: the first ``n - 1`` fake test
    faces and the first real one, each localizer of ``names`` at ``seed`` (its only seed when it has one)."""
    items = [faces["test"][i] for i in range(len(faces["test"]))]
    labels = [int(it["label"]) for it in items]
    idx = [i for i, y in enumerate(labels) if y == 1][: max(1, n - 1)] + [i for i, y in enumerate(labels) if y == 0][:1]
    images = np.stack([items[i]["image"].permute(1, 2, 0).numpy() for i in idx])
    masks = np.stack([items[i]["mask"][0].numpy() for i in idx])
    probs = {}
    for name in names:
        key = (name, seed) if (name, seed) in maps else next(k for k in maps if k[0] == name)
        probs[name] = maps[key]["test"][idx]
    return images, masks, probs, [str(items[i].get("method", labels[i])) for i in idx]


def deviations(P: Mapping[str, Mapping[str, Any]], *, size: int, threshold_metric: str, weak_labels: bool,
               prle_masking: bool):
    """The deviations table: ``aspect, paper, this run, reason`` for every way chapter 40 departs from the
    three papers (each chapter's own table lists the departures of its models' training)."""
    import pandas as pd

    p31, p20, p10 = P["31_dadf"], P["20_focus"], P["10_prle"]
    rows = [
        ("test data", "FF++ (c23) and the papers' cross-domain sets; no exact masks for FoCus's purpose",
         f"chapter 31's ffpp-syn HQ test faces ({p31['n_eval_videos']} identities, 2 frames each); a second "
         f"leaderboard on {CROSS_LEADERBOARD} ({p10['n_eval_videos']} identities, 2 frames each, thresholds "
         "from ffpp-syn validation); detection also on chapter 10's cross-domain stand-ins",
         "no real face data set is available here; the synthetic benchmark has exact masks, which this "
         "comparison needs"),
        ("FoCus's maps judged by", "an EfficientNet + FPN evaluator trained on them (indirect)",
         "the exact masks, directly (chapter 20 runs the evaluator protocol)",
         "with exact masks the indirect judge is not needed; chapter 20 measures how far it agrees"),
        ("PRLE's maps", "only a masking augmentation, never scored as localization",
         "scored as localizers, beside their use as masks", "the chapter's question: what each map finds"),
        ("binarisation threshold", "0.5 (DADF's PBCA and IINC); none for PRLE and FoCus",
         f"per localizer and seed, the one that maximises mean {threshold_metric.upper()} on the validation "
         "fakes (test never seen)",
         "maps learnt from image labels are not calibrated probabilities: at 0.5 a useful map can mark "
         "nothing, so a fixed threshold would measure calibration, not localization"),
        ("map resolution", "DADF 1024 px (SAM), PRLE 256 px, FoCus 224 px (presumably)",
         f"DADF {p31['size']} px, PRLE {p10['size']} px, FoCus {p20['size']} px; every map resized to "
         f"{size} px and scored there", "CPU budget; one scoring size puts every localizer on one grid"),
        ("seeds", "one run (not stated)",
         "every training seed of each chapter, mean and 95 % t-interval; PRLE's zoo (one) and the "
         "priors and oracles (nothing learnt) give one value",
         "a difference counts only when it exceeds the spread over seeds; chapter 10 trains one zoo"),
    ]
    if weak_labels:
        rows.append(("DADF's training target (weak labels)", "exact masks (no paper trains DADF on weak maps)",
                     "FoCus's fused CAR maps, PRLE's neighbouring fusion or the face hull, soft in [0, 1], "
                     f"resized to {p31['size']} px; real faces' targets empty; DADF's loss and budget unchanged",
                     "the chapter's question: how much of DADF's localization image labels can buy"))
    if prle_masking:
        rows.append(("PRLE's masking on DADF", "masks a detector's training faces (image labels)",
                     "masks DADF's training faces (chapter 10's fused maps, its prle_p and gamma); the exact "
                     "mask stays the target", "a forged region hidden by the mask is still where the forgery is"))
    return pd.DataFrame(rows, columns=["aspect", "paper", "this run", "reason"])
