"""The corruption suite of FoCus's robustness table (after DeeperForensics-1.0's perturbations).

Seven kinds, five levels each (1 = mild ... 5 = severe)::

    saturation  scale Cb/Cr (YCbCr) by          0.4, 0.3, 0.2, 0.1, 0.0
    contrast    scale about the mean by         0.85, 0.725, 0.6, 0.475, 0.35
    block       number of grey 16-px blocks     16, 32, 48, 64, 80    (block side scales with size/256)
    noise       Gaussian noise variance         0.001, 0.002, 0.005, 0.01, 0.05  (on [0, 1])
    blur        Gaussian kernel size            7, 9, 13, 17, 21      (scaled with size/256)
    pixelate    down-up factor                  2, 3, 4, 5, 6         (scaled with size/256, >= 1.5)
    jpeg        JPEG quality                    80, 60, 40, 20, 10    (stand-in for DF-1.0's H.264 CRF 30-40)

The level parameters follow the DeeperForensics-1.0 perturbation table; kernel and block sizes are
given for 256 px faces and scaled to the image size.  ``apply`` accepts (H, W, 3) uint8, (H, W, 3)
float in [0, 1] or a (3, H, W) float tensor/array, and returns the same kind.
"""
from __future__ import annotations

import cv2
import numpy as np

from dfnb.data.quality import jpeg

KINDS = ("saturation", "contrast", "block", "noise", "blur", "pixelate", "jpeg")
LEVELS = (1, 2, 3, 4, 5)
PARAMS = {
    "saturation": (0.4, 0.3, 0.2, 0.1, 0.0),
    "contrast": (0.85, 0.725, 0.6, 0.475, 0.35),
    "block": (16, 32, 48, 64, 80),
    "noise": (0.001, 0.002, 0.005, 0.01, 0.05),
    "blur": (7, 9, 13, 17, 21),
    "pixelate": (2, 3, 4, 5, 6),
    "jpeg": (80, 60, 40, 20, 10),
}


def _hwc_float(image):
    """Return (float32 HWC in [0,1], restore function)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None and isinstance(image, torch.Tensor):
        arr = image.detach().cpu().float().numpy()
        if arr.ndim != 3 or arr.shape[0] != 3:
            raise ValueError(f"tensor images must be (3, H, W), got {tuple(arr.shape)}")
        dev, dt = image.device, image.dtype
        return np.ascontiguousarray(arr.transpose(1, 2, 0)), lambda x: torch.from_numpy(
            np.ascontiguousarray(x.transpose(2, 0, 1))).to(dev, dt)
    arr = np.asarray(image)
    if arr.ndim != 3:
        raise ValueError(f"image must be (H, W, 3) or (3, H, W), got {arr.shape}")
    if arr.dtype == np.uint8:
        if arr.shape[2] != 3:
            raise ValueError(f"uint8 images must be (H, W, 3), got {arr.shape}")
        return arr.astype(np.float32) / 255, lambda x: (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    if arr.shape[0] == 3 and arr.shape[2] != 3:
        return np.ascontiguousarray(arr.transpose(1, 2, 0), np.float32), lambda x: np.ascontiguousarray(
            x.transpose(2, 0, 1)).astype(arr.dtype)
    return arr.astype(np.float32), lambda x: x.astype(arr.dtype)


def apply(image, kind: str, level: int, rng: np.random.Generator | None = None):
    """Corrupt ``image`` with ``kind`` at ``level`` (1-5); ``rng`` drives noise and block positions
    (a fixed default seed when None, so results are reproducible)."""
    if kind not in PARAMS:
        raise ValueError(f"unknown corruption {kind!r}; known: {KINDS}")
    if int(level) not in LEVELS:
        raise ValueError(f"corruption level must be 1..5, got {level!r}")
    rng = np.random.default_rng(0) if rng is None else rng
    x, restore = _hwc_float(image)
    H, W = x.shape[:2]
    p = PARAMS[kind][int(level) - 1]
    sc = min(H, W) / 256
    if kind == "saturation":
        ycc = cv2.cvtColor(x, cv2.COLOR_RGB2YCrCb)
        ycc[..., 1:] = 0.5 + (ycc[..., 1:] - 0.5) * p
        y = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
    elif kind == "contrast":
        y = (x - x.mean()) * p + x.mean()
    elif kind == "block":
        y = x.copy()
        b = max(2, round(16 * sc))
        for _ in range(p):
            r, c = int(rng.integers(0, max(1, H - b))), int(rng.integers(0, max(1, W - b)))
            y[r:r + b, c:c + b] = rng.uniform(0, 1)
    elif kind == "noise":
        y = x + rng.standard_normal(x.shape).astype(np.float32) * np.float32(np.sqrt(p))
    elif kind == "blur":
        k = max(3, int(round(p * sc)) | 1)
        y = cv2.GaussianBlur(x, (k, k), 0)
    elif kind == "pixelate":
        f = max(1.5, p * sc) if sc < 1 else p * sc
        small = cv2.resize(x, (max(1, int(W / f)), max(1, int(H / f))), interpolation=cv2.INTER_AREA)
        y = cv2.resize(small, (W, H), interpolation=cv2.INTER_NEAREST)
    else:  # jpeg
        u8 = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
        y = jpeg(u8, p).astype(np.float32) / 255
    return restore(np.clip(y, 0, 1).astype(np.float32))
