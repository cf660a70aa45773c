"""Static HTML viewers that work in the built book with no kernel and no widget library.

Each frame's image (JPEG), true mask and predicted probability maps (8-bit grey PNG) are embedded
once, base64, in a JSON block; ``viewer_html.js`` (inlined) decodes them into canvases and
composites in the browser: frame slider with an "i / n" counter and the frame's caption, opacity,
threshold on the *probability* map with the IoU against the true mask updating live, and a toggle
between overlay and side by side.

The browser uses the same conventions as :mod:`dfnb.metrics`: a pixel is predicted when
``q / 255 >= threshold`` for its 8-bit level ``q = round(255 p)``, true when its mask is >= 0.5,
and IoU is 1 when both are empty (so the printed IoU is ``metrics.iou(q / 255, mask, t)``).

Colours (Okabe-Ito, colour-blind safe): true mask blue ``TRUTH_COLOR``, prediction orange
``PRED_COLOR``; their names are printed in the legend.
"""
from __future__ import annotations

import base64
import html
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

TRUTH_COLOR = (0, 114, 178)   # Okabe-Ito "blue"
PRED_COLOR = (230, 159, 0)    # Okabe-Ito "orange"
LEGEND = ("true mask: blue, prediction at or above the threshold: orange "
          "(Okabe-Ito colours, distinguishable with colour-blindness)")
_JS = Path(__file__).with_name("viewer_html.js")

_CSS = """<style>
.dfnb-mask-viewer, .dfnb-frame-viewer {font: 16px/1.4 system-ui, sans-serif; max-width: 100%; margin: .5em 0}
.dfnb-mask-viewer .dfnb-mv-controls, .dfnb-frame-viewer .dfnb-mv-controls
  {display: flex; flex-wrap: wrap; gap: .4em 1.2em; align-items: center; font-size: 15px}
.dfnb-mv-controls input[type=range] {width: 12em; vertical-align: middle}
.dfnb-mv-counter, .dfnb-mv-controls output {font-variant-numeric: tabular-nums; min-width: 3em; display: inline-block}
.dfnb-mv-caption {font-size: 16px; margin: .3em 0; min-height: 1.4em}
.dfnb-mv-panels {display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-end}
.dfnb-mv-panel {max-width: 100%}
.dfnb-mv-label {font-size: 15px; font-weight: 600; margin-bottom: 2px}
.dfnb-mv-panel canvas, .dfnb-frame-viewer img {width: 100%; image-rendering: pixelated; display: block}
.dfnb-mv-iou {font-size: 15px; margin-top: .3em; font-variant-numeric: tabular-nums}
.dfnb-mv-legend {font-size: 14px; color: #444; margin-top: .2em}
</style>"""


@dataclass(frozen=True)
class StaticViewer:
    """An HTML viewer; Jupyter and the book display it through ``_repr_html_``.

    ``nbytes`` is what it adds to an executed notebook (and to the page).
    """

    html: str
    kind: str

    def _repr_html_(self) -> str:
        return self.html

    @property
    def nbytes(self) -> int:
        return len(self.html.encode())

    def page(self, title: str = "dfnb viewer") -> str:
        """A standalone HTML page holding the viewer (for tests and for sharing a lecture slide)."""
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'><title>{html.escape(title)}</title></head>"
                f"<body>{self.html}</body></html>")


def png_levels(levels: np.ndarray) -> str:
    """``data:`` URI of an (H, W) uint8 grey PNG."""
    import cv2

    if levels.dtype != np.uint8 or levels.ndim != 2:
        raise ValueError(f"png_levels needs an (H, W) uint8 array, got {levels.dtype} {levels.shape}")
    ok, buf = cv2.imencode(".png", levels, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("png encoding failed")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode()


def quantize(p: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] -> 8-bit levels ``round(255 p)`` (what the browser thresholds)."""
    return np.clip(np.rint(np.asarray(p, np.float64) * 255), 0, 255).astype(np.uint8)


def image_uri(image: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> str:
    """``data:`` URI of an (H, W, 3) RGB uint8 image."""
    from dfnb.viz import encode_image

    mime = "jpeg" if fmt == "jpeg" else "png"
    return f"data:image/{mime};base64," + base64.b64encode(encode_image(image, fmt, quality)).decode()


def _script_json(obj) -> str:
    return json.dumps(obj, separators=(",", ":")).replace("</", "<\\/")


def _slider(name: str, label: str, lo, hi, step, value, out: str | None = None) -> str:
    s = (f"<label>{label} <input type='range' class='dfnb-mv-{name}' min='{lo}' max='{hi}' step='{step}' "
         f"value='{value}' aria-label='{label}'></label>")
    return s + (f" <output class='dfnb-mv-{out}'></output>" if out else "")


def _wrap(kind: str, controls: str, body: str, payload: dict) -> StaticViewer:
    uid = f"dfnb-{uuid.uuid4().hex[:12]}"
    init = "maskViewer" if kind == "mask" else "frameViewer"
    return StaticViewer(
        f"<div id='{uid}' class='dfnb-{kind}-viewer tex2jax_ignore mathjax_ignore'>{_CSS}"
        f"<div class='dfnb-mv-controls'>{controls}</div>"
        f"<div class='dfnb-mv-caption'></div>{body}"
        f"<script type='application/json'>{_script_json(payload)}</script>"
        f"<script>{_JS.read_text()}</script>"
        f"<script>window.dfnbViewers.{init}(document.getElementById('{uid}'));</script></div>",
        kind,
    )


def mask_viewer_html(images: np.ndarray, masks: np.ndarray | None, probs: Mapping[str, np.ndarray],
                     captions: Sequence[str] | None = None, *, opacity: float = 0.5,
                     threshold: float = 0.5, mode: str = "side", panel_px: int = 256,
                     fmt: str = "jpeg") -> StaticViewer:
    """The static mask viewer.

    Args:
        images: (N, H, W, 3) uint8 RGB.
        masks: (N, H, W) float in [0, 1] (true masks) or None.
        probs: name -> (N, H, W) float in [0, 1] predicted probability maps (may be empty).
        captions: N strings (data set, family, label, P(fake), ...) or None.
        opacity, threshold: the sliders' start values; ``mode``: "side" or "overlay".
        panel_px: CSS width of each panel (the browser never exceeds the page width).
    """
    if mode not in ("side", "overlay"):
        raise ValueError(f"mode must be 'side' or 'overlay', got {mode!r}")
    for name, v in (("opacity", opacity), ("threshold", threshold)):
        if not 0 <= v <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {v}")
    n, h, w = images.shape[:3]
    payload = {
        "w": int(w), "h": int(h), "panel_px": int(panel_px),
        "images": [image_uri(im, fmt) for im in images],
        "truth": None if masks is None else [png_levels(quantize(m)) for m in masks],
        "probs": [{"name": k, "maps": [png_levels(quantize(p)) for p in v]} for k, v in probs.items()],
        "captions": None if captions is None else [str(c) for c in captions],
    }
    controls = (_slider("frame", "frame", 0, n - 1, 1, 0) + " <span class='dfnb-mv-counter'></span>"
                + _slider("opacity", "opacity", 0, 1, 0.05, opacity, "opacity-value"))
    if probs:
        controls += _slider("threshold", "threshold", 0, 1, 0.01, threshold, "threshold-value")
        controls += (f"<label><input type='checkbox' class='dfnb-mv-side'{' checked' if mode == 'side' else ''}>"
                     " side by side</label>")
    body = "<div class='dfnb-mv-panels'></div>"
    if probs and masks is not None:
        body += "<div class='dfnb-mv-iou'></div>"
    body += f"<div class='dfnb-mv-legend'>{LEGEND if probs else 'true mask: blue (Okabe-Ito)'}</div>"
    return _wrap("mask", controls, body, payload)


def frame_viewer_html(frames: Sequence[np.ndarray], captions: Sequence[str] | None = None, *,
                      description: str = "frame", width_px: int | None = None, zoom: float = 2.0,
                      fmt: str = "jpeg", start: int = 0) -> StaticViewer:
    """A slider over pre-rendered (H, W, 3) uint8 frames, with an "i / n" counter and captions.

    Shown ``width_px`` wide (default ``zoom`` x the frame width), never wider than the page; the
    slider starts at frame ``start``.
    """
    width = int(width_px if width_px is not None else frames[0].shape[1] * zoom)
    payload = {"frames": [image_uri(f, fmt) for f in frames],
               "captions": None if captions is None else [str(c) for c in captions]}
    controls = (_slider("frame", html.escape(description), 0, len(frames) - 1, 1, start)
                + " <span class='dfnb-mv-counter'></span>")
    body = f"<img class='dfnb-mv-frame-image' alt='{html.escape(description)}' style='width:{width}px;max-width:100%'>"
    return _wrap("frame", controls, body, payload)
