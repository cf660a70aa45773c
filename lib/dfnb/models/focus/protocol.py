"""FoCus's evaluation protocol as functions: map sources over a split, one evaluator per map source,
FoCus variants for the ablations (Tables I-III, V, VI, Fig. 10-11) and the fused features (t-SNE).

- ``WithMap(dataset, maps)``: a split whose items carry the map under study under ``map`` (what the
  evaluators of ``dfnb.models.evaluator`` read).
- ``RGBBranch(focus)``: FoCus's RGB branch as a classifier, images (B, 3, H, W) -> its CARP logits (B, 2)
  (the Grad-CAM / Score-CAM map sources explain it).
- ``source_maps(source, ds, model)``: (N, 1, H, W) float16 maps of one source for every item of a split
  (``gt`` = the data set's masks, ``none`` = zeros, else ``maps.compute_maps``; comparison-based sources
  need a ``return_source=True`` split).  Real faces are zeroed (the protocol; labels are known).
- ``evaluate_map_source(...)``: train one evaluator (``evaluator_effnet`` or ``evaluator_pcl``) on a split
  with a source's maps as the auxiliary target, select on val, evaluate every test set (frame ACC / AUC).
- ``train_focus(...)``: seed, ``create_model("focus", ...)``, ``engine.fit``: one variant.
- ``fused_features(model, ds)``: the CL head's pooled fused tokens (B, D), the features its linear layer sees.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from . import maps as fmaps

COMPARISON = ("ssim", "diff", "diff@0.1")
CAMS = ("gradcam", "scorecam")


class WithMap(Dataset):
    """A split with the map of a source under ``map`` (N maps (1, H, W) for N items; real faces already zero)."""

    def __init__(self, dataset, maps):
        if len(dataset) != len(maps):
            raise ValueError(f"{len(maps)} maps for {len(dataset)} faces")
        self.dataset, self.maps = dataset, maps

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return {**self.dataset[i], "map": self.maps[i].float()}


class RGBBranch(nn.Module):
    """FoCus's RGB branch as a classifier: images (B, 3, H, W) -> CARP logits (B, 2) (for Grad-/Score-CAM).

    Equals ``model(x)["logits_rgb"]`` but runs the RGB branch alone (Score-CAM makes one forward pass per
    channel, so skipping the auxiliary branch and the CL block matters).
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        s = self.model.img_size
        if tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        return self.model.rgb(x)["logits"]


def source_maps(source: str, ds, model=None, batch_size: int = 16, device: str = "cpu",
                cam_batch_size: int = 64) -> torch.Tensor:
    """(N, 1, H, W) float16 maps in [0, 1] of ``source`` for every item of ``ds``, real faces zeroed.

    ``source``: ``gt`` (the items' ``mask``), ``none`` (zeros) or a name in ``maps.SOURCES``; the
    comparison-based ones read the pristine face from the items' ``source`` key (a ``return_source=True``
    split).  ``model``: a trained FoCus (``focus``/``focus_fake``; for ``gradcam``/``scorecam`` the CAM
    explains its RGB branch, last block's tokens).
    """
    if source == "gt":
        return torch.stack([ds[i]["mask"] for i in range(len(ds))]).half()
    if source == "none":
        h, w = ds[0]["image"].shape[-2:]
        return torch.zeros(len(ds), 1, h, w, dtype=torch.float16)
    if source not in fmaps.SOURCES:
        raise ValueError(f"unknown map source {source!r}; choose from gt, none, {', '.join(fmaps.SOURCES)}")
    if source not in COMPARISON and model is None:
        raise ValueError(f"map source {source!r} needs a trained FoCus model")
    kw, net = {}, model
    if source in CAMS:
        net = RGBBranch(model).eval()
        kw = dict(target_layer=model.rgb.vit.blocks[-1], num_prefix_tokens=model.rgb.n_prefix)
        if source == "scorecam":
            kw["batch_size"] = cam_batch_size
    if net is not None:
        net.to(device)
    out = []
    for b in DataLoader(ds, batch_size=batch_size, shuffle=False):
        if source in COMPARISON:
            if "source" not in b:
                raise KeyError(f"map source {source!r} needs the pristine faces: load the split with return_source=True")
            b["pristine"] = b.pop("source")
        if source in CAMS:  # real faces get zero maps anyway: explain the fakes only (Score-CAM: C passes per face)
            m = torch.zeros(b["image"].shape[0], 1, *b["image"].shape[-2:])
            fake = b["label"] != 0
            if fake.any():
                m[fake] = fmaps.compute_maps(source, {"image": b["image"][fake], "label": b["label"][fake]},
                                             model=net, **kw).cpu()
            out.append(m.half())
            continue
        out.append(fmaps.compute_maps(source, b, model=None if source in COMPARISON else net, **kw).cpu().half())
    return torch.cat(out)


def evaluate_map_source(train_set, val_set, maps_train, maps_val, test_sets: dict, *, epochs: int, batch_size: int,
                        lr: float, seed: int, model: str = "evaluator_effnet", model_kwargs: dict | None = None,
                        device: str = "cpu", progress: bool = True, eval_batch_size: int = 64,
                        loc_set: str | None = None) -> dict:
    """Train one evaluator with a map source as its auxiliary target and test it on every set.

    The evaluator (``dfnb.create_model(model, **model_kwargs)``, created right after
    ``engine.seed_everything(seed)`` so every source starts from the same weights) is fitted on
    ``WithMap(train_set, maps_train)``, selected on ``WithMap(val_set, maps_val)``, then evaluated on each
    ``test_sets[name]`` (test splits carry no map of the source: the loss reported there is taken against
    the items' true ``mask``).  Returns ``{"auc": {name: frame AUC}, "acc": {name: frame ACC},
    "probs": {name: (labels, probs)}, "localization": the evaluator's map head against the true masks on
    ``loc_set`` (None: the first test set; None for a model without a map head), "seconds": training time,
    "history": the engine's History}``.
    """
    import dfnb
    from dfnb import engine

    if not test_sets:
        raise ValueError("test_sets is empty: name at least one test split")
    loc_set = next(iter(test_sets)) if loc_set is None else loc_set
    if loc_set not in test_sets:
        raise KeyError(f"loc_set {loc_set!r} is not one of the test sets {sorted(test_sets)}")
    engine.seed_everything(seed)
    ev = dfnb.create_model(model, **(model_kwargs or {}))
    t0 = time.perf_counter()
    hist = engine.fit(ev, WithMap(train_set, maps_train), WithMap(val_set, maps_val), epochs=epochs,
                      batch_size=batch_size, lr=lr, seed=seed, device=device, out_dir=None, progress=progress)
    res = {"auc": {}, "acc": {}, "probs": {}, "localization": None, "seconds": time.perf_counter() - t0,
           "history": hist}
    ev.map_key = "mask"
    for name, ds in test_sets.items():
        r = engine.evaluate(ev, ds, batch_size=eval_batch_size, device=device, return_masks=False, progress=False)
        res["auc"][name] = r["detection"]["frame_auc"]
        res["acc"][name] = r["detection"]["frame_acc"]
        res["probs"][name] = (r["labels"], r["probs"])
        if name == loc_set and r["localization"] is not None:
            res["localization"] = r["localization"]
    return res


def train_focus(train_set, val_set, *, epochs: int, batch_size: int, lr: float, seed: int, device: str = "cpu",
                progress: bool = True, **model_kwargs):
    """Seed, build ``create_model("focus", **model_kwargs)`` and fit it: returns (model, History, seconds)."""
    import dfnb
    from dfnb import engine

    engine.seed_everything(seed)
    model = dfnb.create_model("focus", **model_kwargs)
    t0 = time.perf_counter()
    hist = engine.fit(model, train_set, val_set, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                      device=device, out_dir=None, progress=progress)
    return model, hist, time.perf_counter() - t0


@torch.no_grad()
def fused_features(model, ds, batch_size: int = 64, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, list]:
    """FoCus's CL-head features of every item of ``ds``: (N, D) float32, labels (N,), methods (N strings).

    The features are ``out["feature"]``: the fused tokens after the CL block's transformer block and
    LayerNorm, mean-pooled (what the linear classifier sees).  Needs a model with the CL block.
    """
    if getattr(model, "cl", None) is None:
        raise ValueError("fused_features needs a FoCus with the CL block (modality set and cl=True)")
    was = model.training
    model.eval().to(device)
    feats, labels, methods = [], [], []
    try:
        for b in DataLoader(ds, batch_size=batch_size, shuffle=False):
            feats.append(model(b["image"].to(device))["feature"].float().cpu())
            labels.append(b["label"])
            methods += list(b["method"])
    finally:
        model.train(was)
    return torch.cat(feats).numpy(), torch.cat(labels).long().numpy(), methods


def beside_paper(ours, paper: dict, columns: dict, ours_label: str):
    """This run's rows beside the paper's, one table (values in %, as the paper prints them).

    ``ours``: DataFrame, index = method (the paper's names where it has the row), columns = this run's
    measures as fractions in [0, 1].  ``paper``: {label: the paper's DataFrame, index = method, columns =
    (test_set, metric) as ``dfnb.papers.pivot`` gives them}.  ``columns``: {our column: (paper test_set,
    metric)}, the pairing of the two (a role, not an equivalence: name the data sets in the labels).
    Returns a DataFrame indexed by (method, source) with source = ``ours_label`` or a paper label, columns
    ``"<our column> | <paper test_set> <metric>"``; a paper row is given only for the methods in ``ours``
    and a cell the paper lacks is NaN.
    """
    import pandas as pd

    missing = [c for c in columns if c not in ours.columns]
    if missing:
        raise KeyError(f"columns {missing} are not in this run's table (it has {list(ours.columns)})")
    names = {c: f"{c} | {t} {m}" for c, (t, m) in columns.items()}
    rows = {}
    for method in ours.index:
        rows[(method, ours_label)] = {names[c]: 100 * float(ours.loc[method, c]) for c in columns}
        for label, df in paper.items():
            if method in df.index:
                rows[(method, label)] = {names[c]: (float(df.loc[method, key]) if key in df.columns else float("nan"))
                                         for c, key in columns.items()}
    out = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(names.values()))
    out.index = pd.MultiIndex.from_tuples(out.index, names=["method", "source"])
    return out.round(2)


def loo_1nn_accuracy(features, labels) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy (Euclidean) of ``labels`` (N,) from ``features`` (N, D).

    Each item is given the label of its nearest *other* item (ties: the lowest index).  A number for how
    well the feature space separates the classes, independent of any 2-D embedding drawn from it.
    """
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if f.ndim != 2 or len(f) != len(y) or len(f) < 2:
        raise ValueError(f"need features (N, D) and labels (N,) with N >= 2; got {f.shape} and {y.shape}")
    sq = (f * f).sum(1)
    d = sq[:, None] + sq[None, :] - 2 * f @ f.T
    np.fill_diagonal(d, np.inf)
    return float((y[d.argmin(axis=1)] == y).mean())
