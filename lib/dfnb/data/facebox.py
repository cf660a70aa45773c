"""Which face boxes of a video's sampled frames are doubtful.

A detector gives each frame a list of candidate boxes ``(x, y, w, h, score)``, largest first, and the
real-data loader crops the first.  That choice is *doubtful* (kept, counted and reported, never silent)
when

- the detector's score is below ``min_score`` (mediapipe and callables give scores; the LBP cascade
  gives none, 1.0),
- the frame has several candidate boxes (the cascade's false positives are extra boxes on textures), or
- the box is not where the video's face is: its centre is more than ``max_shift`` box sides from the
  median centre of the video's first boxes, or its side is off their median side by more than a factor
  ``max_scale``.  A video's frames show one person; with one sampled frame this test cannot flag.

A frame with no box has no face: the loader skips and counts it (reason None here).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def doubtful(frames: Sequence[Sequence[Sequence[float]]], min_score: float = 0.5, max_shift: float = 1.0,
             max_scale: float = 1.5) -> list[str | None]:
    """Per frame, why its first box is doubtful, or None (a sure box, or no box at all).

    ``frames``: one list of ``(x, y, w, h, score)`` per sampled frame of one video, largest first.
    E.g. first boxes ``(0, 0, 10, 10)``, ``(2, 0, 10, 10)``, ``(40, 40, 4, 4)`` -> ``[None, None,
    "box off the video's face ..."]``.
    """
    first = np.array([f[0][:5] for f in frames if len(f)], np.float64).reshape(-1, 5)
    side = np.maximum(first[:, 2], first[:, 3])
    centre = first[:, :2] + first[:, 2:4] / 2
    ref_side = float(np.median(side)) if len(first) else 0.0
    ref_centre = np.median(centre, axis=0) if len(first) else None
    out: list[str | None] = []
    for f in frames:
        if not len(f):
            out.append(None)
            continue
        x, y, w, h, score = (float(v) for v in f[0][:5])
        why = []
        if score < min_score:
            why.append(f"detector score {score:.2f} < {min_score}")
        if len(f) > 1:
            why.append(f"{len(f)} candidate boxes, took the largest")
        shift = float(np.hypot(x + w / 2 - ref_centre[0], y + h / 2 - ref_centre[1])) / max(ref_side, 1e-9)
        scale = max(w, h) / max(ref_side, 1e-9)
        if shift > max_shift or not 1 / max_scale <= scale <= max_scale:
            why.append(f"box off the video's face (centre {shift:.1f} sides from the median, side x{scale:.2f})")
        out.append("; ".join(why) or None)
    return out
