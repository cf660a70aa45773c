"""FoCus's evaluation protocol as functions: map sources over a split, one evaluator per map source,
FoCus variants for the ablations (Tables V-VI, Fig. 10-11), the direct scores against exact masks and
the fused features (t-SNE).  Chapter 20 calls these through ``study`` (seeds, tables, claims);
its figures are in ``summary``.  Nothing here is imported by the FoCus model itself (its experiment key does not hash it).

- ``WithMap(dataset, maps)``: a split whose items carry the map under study under ``map`` (what the
  evaluators of ``dfnb.models.evaluator`` read), with a ``fingerprint`` for the experiment cache.
- ``RGBBranch(focus)``: FoCus's RGB branch as a classifier, images (B, 3, H, W) -> its CARP logits (B, 2)
  (the Grad-CAM / Score-CAM map sources explain it).
- ``source_maps(source, ds, model)``: (N, 1, H, W) float16 maps of one source for every item of a split
  (``gt`` = the data set's masks, ``none`` = zeros, else ``maps.compute_maps``; comparison-based sources
  need a ``return_source=True`` split).  Real faces are zeroed (the protocol; labels are known).
- ``evaluate_map_source(...)``: train one evaluator (``evaluator_effnet`` or ``evaluator_pcl``) through
  ``dfnb.experiments.train_seeded`` with a source's maps as the auxiliary target, test it on every set.
- ``AblationStudy``: FoCus variants (``train_seeded("focus", ...)``), their maps, their evaluators and
  rows of Tables V-VI and of the K / lambda sweeps.
- ``direct_scores``, ``face_hull_maps``: maps against the exact masks.
- ``sobel_token_fraction``, ``corruption_auc``, ``kendall_agreement``,
  ``fused_features``, ``loo_1nn_accuracy``, ``feature_separability``: the chapter's other measurements.
"""
from __future__ import annotations

import hashlib
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from . import maps as fmaps
from .maps import WithMap  # noqa: F401  (lives beside the maps: a small module for the cache key)

COMPARISON = ("ssim", "diff", "diff@0.1")
CAMS = ("gradcam", "scorecam")
#: Table V's second-branch modalities (None: RGB only) and Table VI's modules / CAM sources, by the paper's names
MODALITY_NAMES = {None: "RGB", "sobel": "RGB + Sobel (FoCus)", "rgb": "RGB + RGB", "dct": "RGB + DCT",
                  "srm": "RGB + SRM"}
MODULES = {"-CARP": dict(carp=False), "-CL": dict(cl=False)}
CAM_NAMES = {"gradcam": "GradCAM", "scorecam": "ScoreCAM"}
#: the paper's FoCus: Sobel second branch, K = 32 maps per class, lambda = 0.1, CARP and CL on
REFERENCE = dict(modality="sobel", K=32, lambda_cls=0.1, carp=True, cl=True)
PIXEL_AUC = "direct pixel AUC (fakes)"
HEAD_AUC = "FoCus-head AUC"


def check_patch_grid(size: int, patch_size: int) -> None:
    """ValueError when the face side is not a multiple of the ViT's patch: its patch embedding (a
    stride-``patch_size`` convolution) would silently drop the last ``size % patch_size`` pixels of
    every row and column."""
    if patch_size < 1 or size % patch_size:
        raise ValueError(f"size {size} is not a multiple of patch_size {patch_size}: the ViT would drop the "
                         f"last {size % patch_size if patch_size > 0 else size} px of every row and column; "
                         "choose sizes with size % patch_size == 0")


def check_ablation_entries(modalities=(), modules=(), cams=()) -> None:
    """ValueError naming every unknown Table V modality, Table VI module or CAM source."""
    bad = ([m for m in modalities if m not in MODALITY_NAMES] + [m for m in modules if m not in MODULES]
           + [c for c in cams if c not in CAM_NAMES])
    if bad:
        raise ValueError(f"unknown ablation entries {bad}: modalities {list(MODALITY_NAMES)}, modules "
                         f"{list(MODULES)}, cams {list(CAM_NAMES)}")


class RGBBranch(nn.Module):
    """FoCus's RGB branch as a classifier: images (B, 3, H, W) -> logits (B, 2) (for Grad-/Score-CAM): CARP's,
    or the class-token head's for a plain ViT (``carp=False``).

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
        rgb = self.model.rgb
        if rgb.carp is not None:
            return rgb(x)["logits"]
        # a plain ViT: its class-token head alone (rgb(x) would also run the last block's norm1 a second
        # time for its attention map, and a CAM needs its target layer to run once)
        return rgb.head(rgb.vit.forward_features((x - rgb.mean) / rgb.std)[:, 0])


def cam_layer(model) -> nn.Module:
    """The layer Grad-CAM / Score-CAM explain in ``model``'s RGB branch (a FoCus or a plain ViT detector).

    With CARP the logits read every image token after the last block, so its output tokens are the target.
    A plain ViT (``carp=False``) classifies from the class token alone: the last block's *output* image
    tokens never reach the logit (zero gradient), so the target is that block's ``norm1``, the tokens its
    attention mixes into the class token (the usual choice for ViT Grad-CAM)."""
    last = model.rgb.vit.blocks[-1]
    return last if model.rgb.carp is not None else last.norm1


def batch_of(ds, idx) -> dict:
    """Items ``idx`` of ``ds`` stacked: ``image``, ``mask``, ``label`` tensors, ``method`` list and, for a
    ``return_source`` split, the pristine faces under ``pristine`` (what the map functions read)."""
    items = [ds[int(i)] for i in idx]
    out = {k: torch.stack([it[k] for it in items]) for k in ("image", "mask", "label")}
    out["method"] = [it["method"] for it in items]
    if "source" in items[0]:
        out["pristine"] = torch.stack([it["source"] for it in items])
    return out


def first_of_each(methods, order) -> list[int]:
    """The index of the first item of each method in ``order`` that occurs in ``methods`` (N strings)."""
    methods = np.asarray(methods)
    return [int(np.flatnonzero(methods == m)[0]) for m in order if (methods == m).any()]


def source_maps(source: str, ds, model=None, batch_size: int = 16, device: str = "cpu",
                cam_batch_size: int = 64, label_free: bool = False) -> torch.Tensor:
    """(N, 1, H, W) float16 maps in [0, 1] of ``source`` for every item of ``ds``, real faces zeroed (the
    evaluator's targets; ``label_free=True``: every face explained and nothing zeroed, as a localizer that
    does not know the label must be scored).

    ``source``: ``gt`` (the items' ``mask``), ``none`` (zeros) or a name in ``maps.SOURCES``; the
    comparison-based ones read the pristine face from the items' ``source`` key (a ``return_source=True``
    split).  ``model``: a trained FoCus (``focus``/``focus_fake``); for ``gradcam``/``scorecam`` the trained
    detector whose RGB branch the CAM explains (the paper: a separately trained plain ViT,
    ``create_model("focus", modality=None, carp=False)``; :func:`cam_layer` picks the layer).
    """
    if source == "gt":
        unknown = int((~np.asarray(getattr(ds, "has_mask", [True]))).sum())
        if unknown:
            raise ValueError(f"source 'gt': {unknown} fakes of this data set have no true mask (no mask video); "
                             "their all-zero stand-ins would supervise as ground truth")
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
        kw = dict(target_layer=cam_layer(model), num_prefix_tokens=model.rgb.n_prefix)
        if source == "scorecam":
            kw["batch_size"] = cam_batch_size
    if net is not None:
        net.to(device)
    out = []
    for b in DataLoader(ds, batch_size=batch_size, shuffle=False):
        if source in COMPARISON:
            if "source" not in b:
                raise KeyError(f"map source {source!r} needs the pristine faces: load the split with "
                               "return_source=True")
            b["pristine"] = b.pop("source")
        if label_free:
            b["label"] = None  # no map is zeroed for its label
            out.append(fmaps.compute_maps(source, b, model=None if source in COMPARISON else net, **kw).cpu().half())
            continue
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


def split_maps(source: str, splits: dict, model=None, *, key: str | None = None, **kw) -> dict:
    """``{split name: source_maps(source, ds, model, **kw)}`` for every split of ``splits``.

    ``key``: the experiment key of ``model`` (``Experiment.key``): the maps of each split are then
    computed once and cached (``dfnb.experiments.cached_arrays``, keyed by source, model key, the
    split's fingerprint and ``kw``), so re-executing a chapter does not recompute CAMs."""
    from dfnb import experiments

    if key is None:
        return {name: source_maps(source, ds, model, **kw) for name, ds in splits.items()}
    out = {}
    for name, ds in splits.items():
        material = {"source": source, "model": key, "data": experiments.fingerprint(ds),
                    "kw": {k: v for k, v in kw.items() if k != "device"}}
        arr = experiments.cached_arrays("focus_maps", material,
                                        lambda ds=ds: {"maps": source_maps(source, ds, model, **kw)})["maps"]
        out[name] = torch.from_numpy(arr)
    return out


def test_evaluator(model, test_sets: dict, *, device: str = "cpu", batch_size: int = 64,
                   loc_set: str | None = None) -> dict:
    """Frame ACC / AUC of a trained evaluator on every ``test_sets[name]`` (the loss there is taken
    against the items' true ``mask``: test splits carry no map of the source).  ``model``: the evaluator,
    or its :class:`dfnb.experiments.Experiment` (then each evaluation is stored in, and read from, the
    experiment's cache entry).

    Returns ``{"auc": {name: AUC}, "acc": {name: ACC}, "probs": {name: (labels, probs)}, "localization":
    its map head against the true masks on ``loc_set`` (None: the first set; None without a map head)}``.
    """
    from dfnb import engine

    if not test_sets:
        raise ValueError("test_sets is empty: name at least one test split")
    loc_set = next(iter(test_sets)) if loc_set is None else loc_set
    if loc_set not in test_sets:
        raise KeyError(f"loc_set {loc_set!r} is not one of the test sets {sorted(test_sets)}")
    res = {"auc": {}, "acc": {}, "probs": {}, "localization": None}
    exp = model if hasattr(model, "evaluate") and hasattr(model, "model") else None
    if exp is not None:
        model = exp.model
    model.map_key = "mask"
    for name, ds in test_sets.items():
        r = (exp.evaluate(ds, batch_size=batch_size, device=device) if exp is not None else
             engine.evaluate(model, ds, batch_size=batch_size, device=device, return_masks=False, progress=False))
        res["auc"][name] = r["detection"]["frame_auc"]
        res["acc"][name] = r["detection"]["frame_acc"]
        res["probs"][name] = (r["labels"], r["probs"])
        if name == loc_set and r["localization"] is not None:
            res["localization"] = r["localization"]
    return res


def evaluate_map_source(train_set, val_set, maps_train, maps_val, test_sets: dict, *, epochs: int, batch_size: int,
                        lr: float, seed: int, model: str = "evaluator_effnet", model_kwargs: dict | None = None,
                        device: str = "cpu", progress: bool = False, eval_batch_size: int = 64,
                        loc_set: str | None = None, cache=True) -> dict:
    """Train one evaluator with a map source as its auxiliary target and test it on every set.

    The evaluator is ``dfnb.experiments.train_seeded(model, WithMap(train_set, maps_train),
    WithMap(val_set, maps_val), seed=seed, model_kwargs=model_kwargs, ...)``: created right after
    ``seed_everything(seed)`` so every source starts from the same weights, selected on val, cached
    (``cache``) by the maps' content.  Returns :func:`test_evaluator`'s dict plus ``"seconds"`` (training
    time, as recorded when it ran), ``"cached"`` and ``"history"`` (the engine's History).
    """
    from dfnb.experiments import train_seeded

    if not test_sets:
        raise ValueError("test_sets is empty: name at least one test split")
    if loc_set is not None and loc_set not in test_sets:
        raise KeyError(f"loc_set {loc_set!r} is not one of the test sets {sorted(test_sets)}")
    exp = train_seeded(model, WithMap(train_set, maps_train), WithMap(val_set, maps_val), seed=seed,
                       model_kwargs=model_kwargs, epochs=epochs, batch_size=batch_size, lr=lr, device=device,
                       progress=progress, cache=cache)
    res = test_evaluator(exp, test_sets, device=device, batch_size=eval_batch_size, loc_set=loc_set)
    return {**res, "seconds": exp.train_seconds, "cached": exp.cached, "history": exp.history, "key": exp.key}


def evaluator_row(r: dict, dataset: str, cross) -> dict:
    """An evaluator result -> this run's columns (fractions): ``<dataset> ACC``, ``<dataset> AUC``, one
    AUC per cross-domain set and ``cross-domain mean`` (NaN without cross-domain sets)."""
    row = {f"{dataset} ACC": r["acc"][dataset], f"{dataset} AUC": r["auc"][dataset],
           **{n: r["auc"][n] for n in cross}}
    row["cross-domain mean"] = float(np.mean([r["auc"][n] for n in cross])) if len(cross) else float("nan")
    return row


# ----------------------------------------------------------------------------- maps against the exact masks
def face_hull_maps(ds) -> np.ndarray:
    """(N, 1, H, W) float32: the convex hull of each fake's landmarks (the whole image where they are NaN),
    zero for real faces.  The floor of the direct scores: it knows where the face is, nothing more."""
    from dfnb.data.landmarks import hull_mask

    out = []
    for i in range(len(ds)):
        it = ds[i]
        h, w = it["image"].shape[-2:]
        lm = it["landmarks"].numpy()
        hull = np.ones((h, w), np.float32) if np.isnan(lm).any() else hull_mask(lm, (h, w)).astype(np.float32)
        out.append(hull * (int(it["label"]) == 1))
    return np.stack(out)[:, None]


DIRECT_KEYS = ("pixel_auc_fake", "pbca_fake", "iinc_fake", "iou_fake", "pbca_all", "iinc_all")


def direct_scores(maps: dict, gt, labels):
    """``{source: (N, 1, H, W) maps}`` scored against the exact masks ``gt`` (``metrics.localization_report``):
    DataFrame, rows = sources sorted by pixel AUC on the fakes (best first), columns ``DIRECT_KEYS``."""
    import pandas as pd

    from dfnb import metrics

    rows = {}
    for s, m in maps.items():
        rep = metrics.localization_report(m, gt, labels)
        rows[s] = {k: rep[k] for k in DIRECT_KEYS}
    return pd.DataFrame(rows).T.sort_values("pixel_auc_fake", ascending=False)


def kendall_agreement(rank):
    """Kendall's tau (and p) of the first column of ``rank`` against each other column; NaN with fewer
    than 3 rows.  DataFrame indexed by the other columns' names, columns ``kendall_tau, p_value``."""
    import pandas as pd
    from scipy.stats import kendalltau

    taus = {}
    for col in rank.columns[1:]:
        tau, p = kendalltau(rank.iloc[:, 0], rank[col]) if len(rank) > 2 else (np.nan, np.nan)
        taus[col] = {"kendall_tau": float(tau), "p_value": float(p)}
    return pd.DataFrame(taus).T


# ----------------------------------------------------------------------------- FoCus itself
@torch.no_grad()
def sobel_token_fraction(model, ds, batch_size: int = 16, device: str = "cpu"):
    """Share of token positions whose Sobel token the CL block keeps (S = 1), over all faces of ``ds``,
    real ones, fake ones, and on the fakes inside / outside the true mask (mask pooled to the token
    grid, inside = >= 0.5).  A Series named ``fraction of Sobel tokens`` (NaN where a group is empty)."""
    import pandas as pd

    was = model.training
    model.eval().to(device)
    S, lab, M = [], [], []
    try:
        for b in DataLoader(ds, batch_size=batch_size, shuffle=False):
            o = model(b["image"].to(device))
            S.append(o["sub_mask"].cpu())
            lab.append(b["label"])
            M.append(F.adaptive_avg_pool2d(b["mask"], o["sub_mask"].shape[-2:]))
    finally:
        model.train(was)
    S, y, M = torch.cat(S), torch.cat(lab), torch.cat(M)
    inside = M >= 0.5
    fake = (y == 1).view(-1, 1, 1, 1).expand_as(S)
    out = {"all test faces": S.mean(), "real faces": S[y == 0].mean(), "fake faces": S[y == 1].mean(),
           "fakes, inside the true mask": S[fake & inside].mean(),
           "fakes, outside the true mask": S[fake & ~inside].mean()}
    return pd.Series({k: float(v) for k, v in out.items()}, name="fraction of Sobel tokens")


class Corrupted(Dataset):
    """``dataset`` with every image corrupted by ``dfnb.data.corruptions.apply(kind, level)``, seeded per
    item (``default_rng([seed, i, kind index, level])``: the same corruption on every run)."""

    def __init__(self, dataset, kind: str, level: int, seed: int):
        from dfnb.data import corruptions

        if kind not in corruptions.KINDS:
            raise ValueError(f"unknown corruption {kind!r}; choose from {corruptions.KINDS}")
        self.dataset, self.kind, self.level, self.seed = dataset, kind, level, seed

    def __len__(self):
        return len(self.dataset)

    @property
    def fingerprint(self) -> str:
        """The clean split's fingerprint with the corruption: cached evaluations per kind and level."""
        from dfnb.experiments import fingerprint

        return f"corrupted:{fingerprint(self.dataset)}:{self.kind}:{self.level}:{self.seed}"

    def __getitem__(self, i):
        from dfnb.data import corruptions

        it = dict(self.dataset[i])
        rng = np.random.default_rng([self.seed, i, corruptions.KINDS.index(self.kind), self.level])
        it["image"] = torch.as_tensor(corruptions.apply(it["image"], self.kind, self.level, rng)).float()
        return it


def corruption_auc(model, ds, seed: int, device: str = "cpu", kinds=None, levels=None, batch_size: int = 64):
    """Frame AUC of ``model`` (a model, or an Experiment: then cached) on ``ds`` under each corruption
    kind and level (Table IV's protocol):
    DataFrame, rows = kinds then ``clean``, columns = levels and ``mean`` (over levels; ``clean`` fills
    its row with the clean AUC)."""
    import pandas as pd

    from dfnb import engine
    from dfnb.data import corruptions

    kinds = corruptions.KINDS if kinds is None else kinds
    levels = corruptions.LEVELS if levels is None else levels
    def ev(d):  # an Experiment evaluates through its cache
        if hasattr(model, "evaluate"):
            return model.evaluate(d, batch_size=batch_size, device=device)["detection"]["frame_auc"]
        return engine.evaluate(model, d, batch_size=batch_size, device=device, progress=False)["detection"]["frame_auc"]
    clean = ev(ds)
    rob = pd.DataFrame({k: {lv: ev(Corrupted(ds, k, lv, seed)) for lv in levels} for k in kinds}).T
    rob["mean"] = rob.mean(axis=1)
    rob.loc["clean"] = clean
    return rob


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


def feature_separability(features, families, labels, identities=None):
    """Leave-one-out 1-NN accuracy of the family label, of real vs fake and (only when every identity is
    known, i.e. >= 0; real data sets mark unknown ones -1) of the identity, beside the share of the most
    frequent label (what a constant guess gets).  DataFrame, columns ``1-NN accuracy, majority share``."""
    import pandas as pd

    share = lambda a: float(pd.Series(np.asarray(a)).value_counts(normalize=True).iloc[0])  # noqa: E731
    groups = {"family (real + 4)": families, "real vs fake": labels}
    if identities is not None and len(identities) and (np.asarray(identities) >= 0).all():
        groups["identity"] = identities
    return pd.DataFrame({k: {"1-NN accuracy": loo_1nn_accuracy(features, np.asarray(v)),
                             "majority share": share(v)} for k, v in groups.items()}).T


def tsne_2d(features, seed: int) -> np.ndarray:
    """(N, 2) t-SNE embedding (PCA init, perplexity min(30, (N - 1) / 3), ``random_state=seed``)."""
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (len(features) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


# ----------------------------------------------------------------------------- ablations and sweeps
def _no_metric(*args, **kwargs):
    return None


class AblationStudy:
    """FoCus variants (``REFERENCE`` with changes), each trained once through
    ``train_seeded("focus", ...)`` for ``epochs``, with its maps on every split, its own head's frame AUC
    and its fused map's pixel AUC against the exact masks; and map sources judged by an evaluator trained
    for ``eval_epochs`` (once per name).  ``metric``: a ``Run.metric``-like callable recording every number.

    splits: ``{"train", "val", "test"}`` -> the ``return_source`` splits the maps are computed on;
    test_sets: ``{name: split}`` for the evaluator (the in-domain one named ``dataset``); gt, labels: the
    exact masks (N, 1, H, W) and labels (N,) of ``splits["test"]``.
    """

    def __init__(self, train_set, val_set, splits: dict, test_sets: dict, gt, labels, *, dataset: str,
                 focus_kwargs: dict, evaluator_kwargs: dict, epochs: int, eval_epochs: int, batch_size: int,
                 lr: float, eval_lr: float, seed: int, device: str = "cpu", metric=None, cache=True):
        if dataset not in test_sets:
            raise KeyError(f"dataset {dataset!r} is not one of the test sets {sorted(test_sets)}")
        self.train_set, self.val_set, self.splits, self.test_sets = train_set, val_set, splits, test_sets
        self.gt, self.labels, self.dataset = gt, labels, dataset
        self.cross = [n for n in test_sets if n != dataset]
        self.focus_kwargs, self.evaluator_kwargs = dict(focus_kwargs), dict(evaluator_kwargs)
        self.epochs, self.eval_epochs, self.batch_size = epochs, eval_epochs, batch_size
        self.lr, self.eval_lr = lr, eval_lr
        self.seed, self.device, self.cache = seed, device, cache
        self.metric = metric or _no_metric
        self.variants, self.judged = {}, {}

    def pixel_auc(self, test_maps) -> float:
        """Pixel AUC on the fakes of the test split of maps (N, 1, H, W) against the exact masks."""
        from dfnb import metrics

        return metrics.localization_report(torch.as_tensor(test_maps).float().numpy(), self.gt,
                                           self.labels)["pixel_auc_fake"]

    def variant(self, **changes) -> dict:
        """The variant ``REFERENCE | changes``: ``{model, history (DataFrame), cfg, tag, maps, head_auc,
        pixel_auc}`` (trained or loaded once per configuration)."""
        from dfnb.experiments import train_seeded

        cfg = {**REFERENCE, **changes}
        key = repr(sorted(cfg.items()))
        if key in self.variants:
            return self.variants[key]
        exp = train_seeded("focus", self.train_set, self.val_set, seed=self.seed,
                           model_kwargs={**self.focus_kwargs, **cfg}, epochs=self.epochs,
                           batch_size=self.batch_size, lr=self.lr, device=self.device, cache=self.cache)
        tag = ", ".join(f"{k}={v}" for k, v in cfg.items())
        ff = self.dataset
        self.metric("train_seconds", round(exp.train_seconds, 1), model="focus", variant=tag, dataset=ff)
        maps = split_maps("focus", self.splits, exp.model, key=exp.key, batch_size=self.batch_size,
                          device=self.device)
        head = exp.evaluate(self.test_sets[ff], batch_size=64, device=self.device)["detection"]["frame_auc"]
        v = dict(model=exp.model, key=exp.key, history=exp.history.to_frame(), cfg=cfg, tag=tag, maps=maps,
                 head_auc=head,
                 pixel_auc=self.pixel_auc(maps["test"]))
        self.metric("frame_auc", head, dataset=ff, split="test", model="focus", variant=tag, train_set=ff)
        self.metric("pixel_auc_fake", v["pixel_auc"], dataset=ff, split="test", map_source="focus", variant=tag)
        self.variants[key] = v
        return v

    def judge(self, name: str, maps: dict) -> dict:
        """The evaluator protocol for map source ``name`` (its ``maps`` per split): ``evaluator_row``."""
        if name in self.judged:
            return self.judged[name]
        ff = self.dataset
        r = evaluate_map_source(self.train_set, self.val_set, maps["train"], maps["val"], self.test_sets,
                                epochs=self.eval_epochs, batch_size=self.batch_size, lr=self.eval_lr, seed=self.seed,
                                model="evaluator_effnet", model_kwargs=self.evaluator_kwargs, device=self.device,
                                cache=self.cache)
        lab = dict(model="evaluator_effnet", map_source=name, block="ablation")
        self.metric("train_seconds", round(r["seconds"], 1), **lab)
        self.metric("frame_acc", r["acc"][ff], dataset=ff, split="test", train_set=ff, **lab)
        for n, auc in r["auc"].items():
            self.metric("frame_auc", auc, dataset=n, split="test", train_set=ff, **lab)
        self.judged[name] = evaluator_row(r, ff, self.cross)
        return self.judged[name]

    def row(self, name: str, v: dict, maps: dict | None = None) -> dict:
        """Evaluator columns + the direct pixel AUC + the variant's own head AUC (NaN for ``maps`` other
        than the variant's: a CAM of its RGB branch is not its head) of one map source."""
        own = maps is None
        maps = v["maps"] if own else maps
        row = dict(self.judge(name, maps))
        row[PIXEL_AUC] = v["pixel_auc"] if own else self.pixel_auc(maps["test"])
        row[HEAD_AUC] = v["head_auc"] if own else float("nan")
        return row

    def table5(self, modalities):
        """Table V: one row per second-branch modality (``MODALITY_NAMES``)."""
        import pandas as pd

        check_ablation_entries(modalities=modalities)
        return pd.DataFrame({MODALITY_NAMES[m]: self.row(MODALITY_NAMES[m], self.variant(modality=m))
                             for m in modalities}).T

    def table6(self, modules, cams):
        """Table VI: the reference FoCus, each module ablation (``MODULES``) and each CAM of the reference's
        RGB branch (``CAM_NAMES``) in place of its CAR maps."""
        import pandas as pd

        check_ablation_entries(modules=modules, cams=cams)
        ref = self.variant()
        rows = {"FoCus": self.row(MODALITY_NAMES["sobel"], ref)}
        for mod in modules:
            rows[mod] = self.row(mod, self.variant(**MODULES[mod]))
        for cam in cams:
            t0 = time.perf_counter()
            maps = split_maps(cam, self.splits, ref["model"], key=ref["key"], batch_size=self.batch_size,
                              device=self.device)
            self.metric("map_seconds", round(time.perf_counter() - t0, 1), dataset=self.dataset, map_source=cam,
                        note="ablation FoCus, all splits")
            rows[CAM_NAMES[cam]] = self.row(CAM_NAMES[cam], ref, maps)
            self.metric("pixel_auc_fake", rows[CAM_NAMES[cam]][PIXEL_AUC], dataset=self.dataset, split="test",
                        map_source=cam, variant=ref["tag"])
        return pd.DataFrame(rows).T

    def k_sweep(self, k_values):
        """Fig. 10 analogue: head AUC and fused-map pixel AUC of the reference with K maps per class."""
        import pandas as pd

        t = pd.DataFrame({int(K): {HEAD_AUC: (v := self.variant(K=int(K)))["head_auc"],
                                   "fused-map pixel AUC (fakes)": v["pixel_auc"]} for K in k_values}).T
        t.index.name = "K"
        return t.sort_index()

    def lambda_sweep(self, lambda_values):
        """Fig. 11 analogue: ``(table, {lambda: history DataFrame})``, the table with the head AUC, the
        fused-map pixel AUC and the last epoch's training losses per lambda."""
        import pandas as pd

        hist = {float(lam): self.variant(lambda_cls=float(lam)) for lam in lambda_values}
        t = pd.DataFrame({lam: {HEAD_AUC: v["head_auc"], "fused-map pixel AUC (fakes)": v["pixel_auc"],
                                "final train loss": v["history"]["train_loss"].iloc[-1],
                                "final train L_cls": v["history"]["train_loss_cls"].iloc[-1],
                                "final train L_loc": v["history"]["train_loss_loc"].iloc[-1]}
                          for lam, v in hist.items()}).T.sort_index()
        t.index.name = "lambda_cls"
        return t, {lam: v["history"] for lam, v in hist.items()}
