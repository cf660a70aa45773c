"""SBI / Face X-ray blending with exact masks: the ideas of Self-Blended Images (SBI, CVPR 2022) and Face X-ray (CVPR 2020).

Re-implemented from the papers' descriptions (the SBI code's licence forbids reuse):

- a mask from a landmark convex hull (whole face, or parts), elastically deformed, blurred,
  eroded/dilated and scaled by a blend ratio;
- ``fake = m * source + (1 - m) * target``, so ``m`` is the exact ground truth;
- SBI: source = the same face after colour / brightness shifts, down-up scaling or sharpening and
  a small affine jitter;  Face X-ray: source = another face with near landmarks, colour transferred.

Works on any face with 68 landmarks: rendered faces, or real photos with template landmarks from
``dfnb.data.landmarks.photo_landmarks`` (see :func:`self_blend_photo`).

Images: (H, W, 3) uint8 or float32 in [0, 1]; outputs are float32 (H, W, 3) and masks float32 (H, W).
Masks are quantised to multiples of 1/255 *before* blending, so storing them as 8-bit PNG keeps them exact.
"""
from __future__ import annotations

import cv2
import numpy as np

from dfnb.data import landmarks as L


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 in [0, 1]; float input is returned as float32."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) * np.float32(1 / 255)
    return image.astype(np.float32, copy=False)


def quantize_mask(m: np.ndarray) -> np.ndarray:
    """Round a mask to multiples of 1/255 (exactly what an 8-bit PNG can hold); float32 (H, W)."""
    return (np.round(np.clip(m, 0, 1) * 255).astype(np.float32) / np.float32(255)).astype(np.float32)


def blend(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``m * source + (1 - m) * target`` with ``m`` quantised; returns (fake (H, W, 3), m (H, W)).

    Where ``m == 0`` the fake equals ``target`` bit for bit.
    """
    m = quantize_mask(mask)
    s, t = to_float(source), to_float(target)
    fake = t + (s - t) * m[..., None]
    return np.clip(fake, 0, 1).astype(np.float32), m


def boundary(mask: np.ndarray) -> np.ndarray:
    """Face X-ray boundary map ``4 m (1 - m)``, (H, W) float32."""
    m = np.asarray(mask, np.float32)
    return 4 * m * (1 - m)


def color_transfer(source: np.ndarray, target: np.ndarray, mask: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Match the per-channel mean/std of ``source`` to ``target`` inside ``mask`` (Reinhard-style,
    in YCrCb).  All (H, W, 3) float32 in [0, 1]; ``strength`` in [0, 1] goes from none to full.
    Only the mask's bounding box is changed (outside it the source is returned as is)."""
    sel = mask > 0.5
    if sel.sum() < 16 or strength <= 0:
        return source
    x, y, w, h = cv2.boundingRect(sel.astype(np.uint8))
    sl = (slice(y, y + h), slice(x, x + w))
    s_y = cv2.cvtColor(np.ascontiguousarray(source[sl], np.float32), cv2.COLOR_RGB2YCrCb)
    t_y = cv2.cvtColor(np.ascontiguousarray(target[sl], np.float32), cv2.COLOR_RGB2YCrCb)
    m = sel[sl]
    sm, ss = s_y[m].mean(0), s_y[m].std(0) + 1e-3
    tm, ts = t_y[m].mean(0), t_y[m].std(0) + 1e-3
    gain = 1 + (ts / ss - 1) * strength
    out_y = (s_y - sm) * gain + sm + (tm - sm) * strength
    out = source.copy()
    out[sl] = np.clip(cv2.cvtColor(out_y.astype(np.float32), cv2.COLOR_YCrCb2RGB), 0, 1)
    return out


def elastic(mask: np.ndarray, rng: np.random.Generator, amount: float = 0.03, grid: int = 4) -> np.ndarray:
    """Smooth random deformation of a (H, W) mask; ``amount`` = max displacement / side."""
    H, W = mask.shape
    dx = cv2.resize(rng.uniform(-1, 1, (grid, grid)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(rng.uniform(-1, 1, (grid, grid)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    return cv2.remap(mask.astype(np.float32), xx + dx * amount * W, yy + dy * amount * H, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def soften(mask: np.ndarray, rng: np.random.Generator, *, blur=(1.0, 3.0), erode=(-0.02, 0.02),
           ratio=(1.0, 1.0), elastic_amount: float = 0.0) -> np.ndarray:
    """Turn a hard (H, W) mask into a blending mask: elastic, erode/dilate, Gaussian blur, blend ratio.

    ``blur`` sigma and ``erode`` radius are fractions-of-128 px ranges (scaled with the image);
    negative erode dilates.  Returns float32 (H, W) in [0, 1].
    """
    H, W = mask.shape
    sc = W / 128
    m = mask.astype(np.float32)
    if elastic_amount > 0:
        m = (elastic(m, rng, elastic_amount) > 0.5).astype(np.float32)
    e = float(rng.uniform(*erode)) * W
    if abs(e) >= 0.5:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(abs(e)) + 1,) * 2)
        m = cv2.erode(m, k) if e > 0 else cv2.dilate(m, k)
    s = float(rng.uniform(*blur)) * sc
    if s > 0.05:
        m = cv2.GaussianBlur(m, (0, 0), s)
        # re-normalise so the core stays 1 after blurring
        mx = m.max()
        if mx > 0:
            m = np.clip(m / max(mx, 1e-6), 0, 1)
    return m * float(rng.uniform(*ratio))


def align(source: np.ndarray, src_lm: np.ndarray, dst_lm: np.ndarray, shape, idx=None,
          jitter: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``source`` so its landmarks land on ``dst_lm`` (least-squares similarity), then by the
    optional 2x3 ``jitter`` (a deliberate misalignment).

    Returns (warped image (H, W, 3) float32, warped landmarks (68, 2)).
    """
    idx = list(range(17, 68)) if idx is None else list(idx)
    M, _ = cv2.estimateAffinePartial2D(src_lm[idx].astype(np.float32), dst_lm[idx].astype(np.float32), method=cv2.LMEDS)
    if M is None:
        M = np.float32([[1, 0, 0], [0, 1, 0]])
    if jitter is not None:
        M = (np.vstack([jitter, [0, 0, 1]]) @ np.vstack([M, [0, 0, 1]]))[:2].astype(np.float32)
    H, W = shape[:2]
    out = cv2.warpAffine(to_float(source), M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lm = src_lm @ M[:, :2].T + M[:, 2]
    return out, lm.astype(np.float32)


def face_hull(landmarks: np.ndarray, shape, region: str = "face", rng: np.random.Generator | None = None) -> np.ndarray:
    """Hard (H, W) mask of a landmark region.

    region: "face" (all 68 points), "inner" (brows, eyes, nose, mouth and lower jaw), "lower" (nose and
    below), "mouth", "eyes", "nose", or "random" (one of the SBI-style choices, drawn from ``rng``).
    """
    if region == "random":
        region = ["face", "face", "inner", "lower", "mouth_nose"][int(rng.integers(5))]
    if region == "face":
        return L.hull_mask(landmarks, shape)
    if region == "inner":
        return L.hull_mask(landmarks, shape, list(range(3, 14)) + list(range(17, 68)))
    if region == "lower":
        return L.hull_mask(landmarks, shape, list(range(2, 15)) + list(range(29, 36)) + list(L.MOUTH))
    if region == "mouth":
        return L.hull_mask(landmarks, shape, L.MOUTH, dilate=0.35)
    if region == "mouth_nose":
        return L.hull_mask(landmarks, shape, list(L.NOSE) + list(L.MOUTH), dilate=0.15)
    if region == "eyes":
        return np.maximum(L.hull_mask(landmarks, shape, L.RIGHT_EYE + L.RIGHT_BROW, dilate=0.2),
                          L.hull_mask(landmarks, shape, L.LEFT_EYE + L.LEFT_BROW, dilate=0.2))
    if region == "nose":
        return L.hull_mask(landmarks, shape, L.NOSE, dilate=0.3)
    raise ValueError(f"unknown region {region!r}")


# ----------------------------------------------------------------------------- source transforms
def _color_jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = img * rng.uniform(0.9, 1.1, 3).astype(np.float32) + rng.uniform(-0.06, 0.06, 3).astype(np.float32)
    hsv = cv2.cvtColor(np.clip(out, 0, 1), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 360
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.85, 1.15), 0, 1)
    c = rng.uniform(0.9, 1.1)
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip((out - 0.5) * c + 0.5 + rng.uniform(-0.04, 0.04), 0, 1).astype(np.float32)


def _frequency_jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    H, W = img.shape[:2]
    if rng.random() < 0.5:
        f = rng.uniform(0.35, 0.8)
        small = cv2.resize(img, (max(4, int(W * f)), max(4, int(H * f))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    k = rng.uniform(0.3, 1.0)
    blur = cv2.GaussianBlur(img, (0, 0), 1.0)
    return np.clip(img + k * (img - blur), 0, 1)


def _affine_jitter(img: np.ndarray, rng: np.random.Generator, amount: float = 0.03) -> np.ndarray:
    H, W = img.shape[:2]
    s = rng.uniform(1 - amount, 1 + amount)
    tx, ty = rng.uniform(-amount, amount, 2) * np.array([W, H])
    M = np.float32([[s, 0, (1 - s) * W / 2 + tx], [0, s, (1 - s) * H / 2 + ty]])
    return cv2.warpAffine(img, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def self_blend(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, *,
               region: str = "random", blur=(1.5, 5.0), ratio=(0.5, 1.0), elastic_amount: float = 0.03
               ) -> tuple[np.ndarray, np.ndarray]:
    """Self-blended image: the face blended with a jittered copy of itself.

    image (H, W, 3) uint8 or float in [0, 1]; landmarks (68, 2).  Returns (fake (H, W, 3) float32,
    mask (H, W) float32); ``fake == image`` wherever ``mask == 0``.
    """
    img = to_float(image)
    src = _color_jitter(img, rng) if rng.random() < 0.8 else img.copy()
    src = _frequency_jitter(src, rng)
    src = _affine_jitter(src, rng)
    hard = face_hull(landmarks, img.shape, region, rng)
    m = soften(hard, rng, blur=blur, erode=(-0.02, 0.03), ratio=(1.0, 1.0), elastic_amount=elastic_amount)
    r = float(rng.uniform(*ratio))
    if rng.random() < 0.25:  # a few masks have a hard, unblurred core of ratio 1
        r = 1.0
    return blend(src, img, m * r)


def xray_blend(target: np.ndarray, target_lm: np.ndarray, source: np.ndarray, source_lm: np.ndarray,
               rng: np.random.Generator, *, region: str = "random", blur=(1.5, 5.0)) -> tuple[np.ndarray, np.ndarray]:
    """Face X-ray-style blend: ``source`` (another face) aligned onto ``target`` and colour-matched.

    Returns (fake (H, W, 3) float32, mask (H, W) float32); the boundary map is :func:`boundary` (mask).
    """
    tgt = to_float(target)
    warped, _ = align(source, np.asarray(source_lm, np.float32), np.asarray(target_lm, np.float32), tgt.shape)
    hard = face_hull(target_lm, tgt.shape, region, rng)
    warped = color_transfer(warped, tgt, hard)
    m = soften(hard, rng, blur=blur, erode=(-0.01, 0.03), elastic_amount=0.03)
    return blend(warped, tgt, m)


def nearest_landmarks(query: np.ndarray, bank: np.ndarray, k: int = 1) -> np.ndarray:
    """Indices (k,) of the ``bank`` (N, 68, 2) landmark sets closest to ``query`` (68, 2) after
    removing translation and scale (Face X-ray picks sources this way)."""
    def norm(x):
        x = np.asarray(x, np.float32)
        x = x - x.mean(-2, keepdims=True)
        return x / (np.sqrt((x ** 2).sum((-1, -2), keepdims=True)) + 1e-6)

    d = ((norm(bank) - norm(query)[None]) ** 2).sum((-1, -2))
    return np.argsort(d)[:k]


def self_blend_photo(image: np.ndarray, rng: np.random.Generator, detector="auto", **kw):
    """Self-blend a real photo (H, W, 3) uint8 RGB: template landmarks from a face detector, then
    :func:`self_blend`.  Returns (fake, mask, landmarks (68, 2)).  Raises ``ValueError`` if no face."""
    lm = L.photo_landmarks(image, detector)
    fake, mask = self_blend(image, lm, rng, **kw)
    return fake, mask, lm
