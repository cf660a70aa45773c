"""Two baselines that learn nothing: the floor every detector and localizer of the book must beat.

- :func:`sharpness_score`  P(fake) from the blur of the central face region (no training)
- :func:`floor_baselines`  the sharpness detector and the whole-face (landmark hull) localizer over a data set
- :func:`per_family_auc`   frame AUC of a detector, real faces against each manipulation family
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["sharpness_score", "FloorBaselines", "floor_baselines", "per_family_auc"]

SHARP_REF = 50.0  # Laplacian variance that maps to P(fake) = 0.5 (set by hand, never fitted)
SHARP_SLOPE = 2.0  # steepness of the logistic in log-variance


def sharpness_score(image: np.ndarray) -> float:
    """P(fake) = sigmoid(-SLOPE (log(v + 1e-6) - log REF)), v = variance of the Laplacian of the grey
    image's central half (rows and columns ``H/4 .. 3H/4``): blurrier -> more likely fake.

    image: (H, W, 3) uint8 RGB.
    """
    import cv2

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"sharpness_score expects an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    v = cv2.Laplacian(gray[h // 4: 3 * h // 4, w // 4: 3 * w // 4], cv2.CV_64F).var()
    return float(1.0 / (1.0 + np.exp((np.log(v + 1e-6) - np.log(SHARP_REF)) * SHARP_SLOPE)))


@dataclass
class FloorBaselines:
    """What :func:`floor_baselines` measured: per face ``probs`` (sharpness P(fake)), ``labels``,
    ``keys`` (data set, method, video id), ``methods``; per face (N, H, W) ``hulls`` (the whole-face
    prediction, float32) and ``gts`` (true masks); the reports ``detection`` and ``localization``."""

    probs: np.ndarray
    labels: np.ndarray
    keys: list
    methods: np.ndarray
    hulls: np.ndarray
    gts: np.ndarray
    detection: dict
    localization: dict

    LOCALIZATION_KEYS = ("pbca_all", "iinc_all", "pixel_auc_fake", "iou_fake")

    def summary(self):
        """One-column DataFrame: every detection entry and the main localization entries."""
        import pandas as pd

        rows = {f"detection · {k}": v for k, v in self.detection.items()}
        rows.update({f"localization · {k}": self.localization[k] for k in self.LOCALIZATION_KEYS})
        return pd.DataFrame({"value": rows})


def floor_baselines(dataset) -> FloorBaselines:
    """Run both baselines over every face of ``dataset`` (items with ``image`` (3, H, W) in [0, 1],
    ``label``, ``mask``, ``landmarks``, ``dataset``, ``method``, ``video_id``)."""
    from dfnb import metrics
    from dfnb.data.landmarks import hull_mask

    probs, labels, keys, hulls, gts, known = [], [], [], [], [], []
    for i in range(len(dataset)):
        s = dataset[i]
        img = (s["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        probs.append(sharpness_score(img))
        labels.append(int(s["label"]))
        keys.append((s["dataset"], s["method"], s["video_id"]))
        hulls.append(hull_mask(np.asarray(s["landmarks"]), img.shape[:2]))
        gts.append(s["mask"][0].numpy())
        known.append(bool(s.get("has_mask", True)))  # a fake without a true mask is left out of localization
    probs, labels = np.array(probs), np.array(labels)
    hulls, gts = np.stack(hulls).astype(np.float32), np.stack(gts)
    return FloorBaselines(probs, labels, keys, np.array([k[1] for k in keys]), hulls, gts,
                          metrics.detection_report(labels, probs, video_keys=keys),
                          metrics.localization_report(hulls, gts, labels, has_mask=None if all(known) else known))


def per_family_auc(labels, probs, methods) -> dict[str, float]:
    """``{family: frame AUC of real faces against that family's fakes}``, families sorted by name."""
    from dfnb import metrics

    labels, probs, methods = np.asarray(labels), np.asarray(probs), np.asarray(methods)
    out = {}
    for m in sorted(set(methods[labels == 1])):
        sel = (methods == m) | (labels == 0)
        out[m] = metrics.auc(labels[sel], probs[sel])
    return out
