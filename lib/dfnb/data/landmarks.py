"""68-point facial landmarks in dlib / iBUG-300W order, and landmarks for real photos.

Index groups (0-based, dlib order, "right" = the subject's right = image left)::

    jaw 0-16 | right brow 17-21 | left brow 22-26 | nose bridge 27-30 | nostrils 31-35
    right eye 36-41 | left eye 42-47 | outer lips 48-59 | inner lips 60-67

Landmarks are float32 arrays of shape (68, 2) holding (x, y) pixel coordinates.

Real photos: when the optional ``mediapipe`` extra is installed its face detector
is used; otherwise the LBP frontal-face cascade that ships inside scikit-image
(``skimage/data/lbpcascade_frontalface_opencv.xml``; OpenCV 5 wheels no longer
ship Haar cascades) finds the face box, and a template of the 68 points (the
renderer's mean face) is fitted to that box.  Template landmarks are coarse
(a few pixels off on a 256 px face) but good enough for hull masks, which is
all self-blending needs.
"""
from __future__ import annotations

import functools
import os
from typing import Callable

import cv2
import numpy as np

JAW = tuple(range(0, 17))
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
NOSE_BRIDGE = tuple(range(27, 31))
NOSTRILS = tuple(range(31, 36))
NOSE = NOSE_BRIDGE + NOSTRILS
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))
MOUTH = OUTER_LIPS + INNER_LIPS
GROUPS = {
    "jaw": JAW, "right_brow": RIGHT_BROW, "left_brow": LEFT_BROW, "nose": NOSE,
    "right_eye": RIGHT_EYE, "left_eye": LEFT_EYE, "mouth": MOUTH,
}
# Horizontal mirror permutation (dlib order), used by flips.
FLIP_PERM = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
)


def flip_landmarks(lm: np.ndarray, width: int) -> np.ndarray:
    """Mirror (68, 2) landmarks of an image of ``width`` pixels, keeping dlib order."""
    out = lm[FLIP_PERM].copy()
    out[:, 0] = width - 1 - out[:, 0]
    return out


def hull_mask(landmarks: np.ndarray, shape: tuple[int, int], idx=None, dilate: float = 0.0) -> np.ndarray:
    """Filled convex hull of ``landmarks[idx]`` as a float32 (H, W) mask in {0, 1}.

    ``dilate`` grows (>0) or shrinks (<0) the hull about its centroid by that fraction.
    Non-finite landmarks (NaN: "no face landmarks", e.g. whole-image synthesis) give an all-zero mask.
    """
    pts = np.asarray(landmarks, np.float32)
    if idx is not None:
        pts = pts[list(idx)]
    if not np.isfinite(pts).all():
        return np.zeros(shape[:2], np.float32)
    if dilate:
        c = pts.mean(0, keepdims=True)
        pts = c + (pts - c) * (1.0 + dilate)
    hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))
    m = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(m, hull, 255, lineType=cv2.LINE_AA, shift=4)
    return (m > 127).astype(np.float32)


def eye_centers(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right_eye_center, left_eye_center), each (2,) -- image-left eye first."""
    lm = np.asarray(landmarks, np.float32)
    return lm[list(RIGHT_EYE)].mean(0), lm[list(LEFT_EYE)].mean(0)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """The 5 points used for similarity alignment: eye centres, nose tip, mouth corners. (5, 2)."""
    lm = np.asarray(landmarks, np.float32)
    r, l = eye_centers(lm)
    return np.stack([r, l, lm[30], lm[48], lm[54]]).astype(np.float32)


# ----------------------------------------------------------------------------- template
@functools.lru_cache(maxsize=1)
def template() -> np.ndarray:
    """Mean face landmarks (68, 2) in a unit box: the box a frontal face detector returns.

    The box spans x in [0, 1] (cheek to cheek) and y in [0, 1] (brows-ish to chin), as
    the cascade detectors' boxes do.  Derived from the renderer's neutral identity.
    """
    from dfnb.data.render import Frame, Identity, canonical_landmarks

    lm = canonical_landmarks(Identity.neutral(), Frame.neutral())[:, :2]
    x0, x1 = lm[:, 0].min(), lm[:, 0].max()
    y0 = lm[17:27, 1].min() - 0.25 * (lm[:, 1].max() - lm[17:27, 1].min())
    y1 = lm[:, 1].max()
    out = np.empty_like(lm)
    out[:, 0] = (lm[:, 0] - x0) / (x1 - x0)
    out[:, 1] = (lm[:, 1] - y0) / (y1 - y0)
    return out.astype(np.float32)


def fit_template(box) -> np.ndarray:
    """Template landmarks (68, 2) fitted to a face box ``(x, y, w, h)`` in pixels."""
    x, y, w, h = (float(v) for v in box)
    t = template()
    # Cascade boxes are a little wider than the cheek-to-cheek span and start at mid-forehead.
    cx, cw = x + 0.5 * w, 0.86 * w
    top, hh = y + 0.12 * h, 0.98 * h
    return np.stack([cx + (t[:, 0] - 0.5) * cw, top + t[:, 1] * hh], 1).astype(np.float32)


# ----------------------------------------------------------------------------- detectors
def _cascade_path() -> str:
    import skimage.data

    p = os.path.join(os.path.dirname(skimage.data.__file__), "lbpcascade_frontalface_opencv.xml")
    if not os.path.exists(p):
        raise FileNotFoundError(f"the LBP face cascade that ships with scikit-image is missing: {p}")
    return p


@functools.lru_cache(maxsize=1)
def _cascade():
    from skimage.feature import Cascade

    return Cascade(_cascade_path())


def _mediapipe_available() -> bool:
    """Whether mediapipe's legacy face detector (``mp.solutions.face_detection``, model inside the wheel)
    is importable.  mediapipe >= 0.10.30 (the first to accept numpy 2) dropped it and ships no face model:
    its Tasks API downloads one, which this book does not do by default."""
    try:
        from mediapipe.python.solutions import face_detection  # noqa: F401
    except Exception:
        return False
    return True


def detect_faces_cascade(image: np.ndarray, max_side: int = 320) -> list[tuple[float, float, float, float, float]]:
    """Face boxes ``(x, y, w, h, score)`` in pixels of ``image`` (H, W, 3) uint8 RGB, largest first.

    Uses scikit-image's LBP frontal-face cascade on a copy downscaled to ``max_side``.
    Score = number of merged raw detections is not exposed by skimage, so it is 1.0.
    """
    img = np.asarray(image)
    if img.ndim == 3:
        gray = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY)
    else:
        gray = img
    h, w = gray.shape
    s = min(1.0, max_side / max(h, w))
    small = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else gray
    side = min(small.shape)
    min_size = max(24, side // 8)
    if side < min_size:
        return []
    dets = _cascade().detect_multi_scale(img=small, scale_factor=1.15, step_ratio=1,
                                         min_size=(min_size, min_size), max_size=(side, side),
                                         min_neighbor_number=2)
    boxes = [(d["c"] / s, d["r"] / s, d["width"] / s, d["height"] / s, 1.0) for d in dets]
    boxes.sort(key=lambda b: -b[2] * b[3])
    return boxes


def detect_faces_mediapipe(image: np.ndarray) -> list[tuple[float, float, float, float, float]]:
    """Face boxes ``(x, y, w, h, score)`` from mediapipe's short-range detector, largest first."""
    import mediapipe as mp

    h, w = image.shape[:2]
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as fd:
        res = fd.process(np.ascontiguousarray(image[..., :3]))
    boxes = []
    for d in res.detections or []:
        b = d.location_data.relative_bounding_box
        boxes.append((b.xmin * w, b.ymin * h, b.width * w, b.height * h, float(d.score[0])))
    boxes.sort(key=lambda b: -b[2] * b[3])
    return boxes


def detector_name(name: str | Callable = "auto") -> str:
    """The detector ``name`` stands for: ``"auto"`` -> ``"mediapipe"`` when its face detector is installed,
    else ``"cascade"`` (scikit-image's LBP frontal-face cascade); a callable -> its ``__name__``."""
    if callable(name):
        return getattr(name, "__name__", "callable")
    if name == "auto":
        return "mediapipe" if _mediapipe_available() else "cascade"
    return name


def get_detector(name: str | Callable = "auto") -> Callable[[np.ndarray], list]:
    """A face detector ``f(image_uint8_rgb) -> [(x, y, w, h, score), ...]`` largest first.

    ``name``: "auto" (see :func:`detector_name`), "mediapipe", "cascade",
    or a callable with that signature (returned unchanged).
    """
    if callable(name):
        return name
    name = detector_name(name)
    if name == "mediapipe":
        if not _mediapipe_available():
            raise ImportError("detector='mediapipe' needs the optional extra: pip install 'dfnb[mediapipe]'")
        return detect_faces_mediapipe
    if name == "cascade":
        return detect_faces_cascade
    raise ValueError(f"unknown detector {name!r}; use 'auto', 'mediapipe', 'cascade' or a callable")


def photo_landmarks(image: np.ndarray, detector="auto") -> np.ndarray:
    """68 template landmarks (68, 2) for the largest face of an RGB uint8 photo (H, W, 3).

    Raises ``ValueError`` when no face is found.
    """
    boxes = get_detector(detector)(np.asarray(image))
    if not boxes:
        raise ValueError("no face found in the image; pass landmarks explicitly or try another detector")
    return fit_template(boxes[0][:4])
