"""How much of a primary-region map lies inside the true manipulated region.

PRLE cannot measure this on FF++ (it has no exact masks for most methods); the synthetic
benchmark has exact ones, so we report, per fake image, with ``A`` the (fused) attention map,
``M = A > 0`` its primary region (Eq. 4) and ``G = gt >= 0.5`` the true region::

    mass_inside = sum(A * G) / sum(A)        share of the attention mass inside G
    precision   = |M & G| / |M|              share of primary-region pixels that are manipulated
    recall      = |M & G| / |G|              share of the manipulated region that is covered
    iou         = |M & G| / |M | G|          (dfnb.metrics.iou)
    map_share   = |M| / (H W)                how large the primary region is (PRLE Table I)
    gt_share    = |G| / (H W)                chance level of precision and mass_inside: a map
                                             that ignores the image puts this share inside G
                                             on average

Real images (empty ``G``) have no manipulated region: their scores are NaN and summaries count
them separately; an all-zero map gives NaN mass_inside/precision (nothing to place) and is counted
too.  Nothing is dropped silently.
"""
from __future__ import annotations

import numpy as np

__all__ = ["overlap_scores", "overlap_summary"]


def overlap_scores(maps, gt) -> dict[str, np.ndarray]:
    """Per-image scores (N,) for maps (N,H,W)/(N,1,H,W) in [0,1] against gt of the same shape."""
    from dfnb.metrics import _masks, iou  # lazily: dfnb.metrics pulls in scipy

    a = _masks(maps, "maps").astype(np.float64)
    g = _masks(gt, "gt")
    if a.shape != g.shape:
        raise ValueError(f"maps and gt shapes differ: {a.shape} vs {g.shape}")
    gb = g >= 0.5
    m = a > 0
    hw = a.shape[1] * a.shape[2]
    fake = gb.any(axis=(1, 2))
    inter = (m & gb).sum(axis=(1, 2))
    n_m, n_g = m.sum(axis=(1, 2)), gb.sum(axis=(1, 2))
    mass = a.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "mass_inside": (a * gb).sum(axis=(1, 2)) / mass,
            "precision": inter / n_m,
            "recall": inter / n_g,
            "iou": iou(m.astype(np.float32), gb.astype(np.float32), reduction="none").astype(np.float64),
            "map_share": n_m / hw,
            "gt_share": n_g / hw,
        }
    for k in ("mass_inside", "precision", "recall", "iou"):
        out[k] = np.where(fake, out[k], np.nan)
    out["mass_inside"] = np.where(mass > 0, out["mass_inside"], np.nan)
    out["precision"] = np.where(n_m > 0, out["precision"], np.nan)
    return out


def overlap_summary(maps, gt) -> dict[str, float]:
    """Means of :func:`overlap_scores` over the fake images, plus counts ``n_fake``, ``n_real``
    (not scored) and ``n_empty_map`` (fake images whose map is all zero: they count as 0 in recall
    and iou, and are left out of mass_inside and precision, which are undefined for them)."""
    s = overlap_scores(maps, gt)
    fake = s["gt_share"] > 0
    empty = fake & (s["map_share"] == 0)
    out = {"n_fake": int(fake.sum()), "n_real": int((~fake).sum()), "n_empty_map": int(empty.sum())}
    for k in ("mass_inside", "precision", "recall", "iou", "map_share", "gt_share"):
        v = s[k][fake & ~np.isnan(s[k])]
        out[k] = float(v.mean()) if v.size else float("nan")
    out["precision_lift"] = out["precision"] / out["gt_share"] if out["n_fake"] else float("nan")
    return out
