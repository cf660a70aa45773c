"""Compression levels in the manner of FF++ raw / HQ (c23) / LQ (c40), as JPEG plus rescaling.

FF++ compresses videos with H.264 at constant rate factor 0 (raw), 23 (HQ) and 40 (LQ).
The synthetic benchmark has no video codec, so a level is a JPEG quality and an optional
down-up rescale that removes high frequencies the way strong H.264 does::

    raw: untouched     hq: JPEG 85 (4:2:0)     lq: 0.6x down, JPEG 45, back up

``compress`` is deterministic (no randomness); real and fake frames get the same level.
"""
from __future__ import annotations

import cv2
import numpy as np

LEVELS: dict[str, dict] = {
    "raw": {"jpeg": None, "scale": 1.0},
    "hq": {"jpeg": 85, "scale": 1.0},
    "lq": {"jpeg": 45, "scale": 0.6},
}
ALIASES = {"c0": "raw", "c23": "hq", "c40": "lq"}


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of an (H, W, 3) uint8 RGB image at ``quality`` (1-100)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def compress(image: np.ndarray, level: str = "hq") -> np.ndarray:
    """Apply compression ``level`` ("raw"/"hq"/"lq" or "c0"/"c23"/"c40") to (H, W, 3) uint8 RGB."""
    level = ALIASES.get(level, level)
    if level not in LEVELS:
        raise ValueError(f"unknown quality {level!r}; use one of {sorted(LEVELS)} or {sorted(ALIASES)}")
    p = LEVELS[level]
    out = np.asarray(image)
    if out.dtype != np.uint8:
        raise TypeError(f"compress expects uint8 (H, W, 3), got {out.dtype}")
    H, W = out.shape[:2]
    if p["scale"] != 1.0:
        out = cv2.resize(out, (max(8, round(W * p["scale"])), max(8, round(H * p["scale"]))), interpolation=cv2.INTER_AREA)
    if p["jpeg"] is not None:
        out = jpeg(out, p["jpeg"])
    if out.shape[:2] != (H, W):
        out = cv2.resize(out, (W, H), interpolation=cv2.INTER_LINEAR)
    return out
