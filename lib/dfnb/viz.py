"""Figures and mask viewers.

One call, two kinds of viewer: ``mask_viewer(images, masks, probs=..., live=False|True)``.

* **static** (``live=False``, the default): :mod:`dfnb.viewer_html` embeds each frame's image,
  true mask and probability maps once and composites them in the browser (frame, opacity and
  threshold sliders, live IoU, overlay / side-by-side toggle); works in the built HTML book with
  no kernel and no widget JavaScript.
* **live** (``live=True``): ipywidgets sliders call back into Python and re-render; for lectures
  with a running kernel.

Images may be (N, H, W, 3) or (N, 3, H, W), float in [0, 1] or uint8, NumPy or torch; masks and
probability maps (N, H, W) or (N, 1, H, W) in [0, 1].  Colours are Okabe-Ito (colour-blind safe):
true mask blue, prediction orange.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from dfnb.viewer_html import PRED_COLOR, TRUTH_COLOR  # Okabe-Ito orange, blue

GT_COLOR = TRUTH_COLOR  # older name


# ------------------------------------------------------------------ array helpers
def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def to_uint8_images(images) -> np.ndarray:
    """(N, H, W, 3) uint8 from (N,H,W,3)/(N,3,H,W)/(H,W,3), float [0,1] or uint8."""
    a = _np(images)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"images must have 3 or 4 dimensions, got shape {a.shape}")
    if a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(0, 2, 3, 1)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    if a.dtype != np.uint8:
        if a.size and (np.nanmin(a) < -1e-3 or np.nanmax(a) > 1 + 1e-3):
            raise ValueError(f"float images must lie in [0, 1], got range [{a.min():.3g}, {a.max():.3g}]")
        a = np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def to_masks(masks, n: int, hw: tuple[int, int], name: str = "masks") -> np.ndarray:
    """(N, H, W) float32 in [0, 1], resized to ``hw`` if needed."""
    import cv2

    m = _np(masks).astype(np.float32)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[0] != n:
        raise ValueError(f"{name} must be (N, H, W) or (N, 1, H, W) with N={n}, got shape {_np(masks).shape}")
    if m.size and (m.min() < -1e-3 or m.max() > 1 + 1e-3):
        raise ValueError(f"{name} must lie in [0, 1], got range [{m.min():.3g}, {m.max():.3g}]")
    if m.shape[1:] != hw:
        m = np.stack([cv2.resize(x, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR) for x in m])
    return np.clip(m, 0, 1)


def overlay(image: np.ndarray, mask: np.ndarray, color=PRED_COLOR, opacity: float = 0.5,
            threshold: float | None = None) -> np.ndarray:
    """Blend ``color`` into ``image`` (H,W,3 uint8) where ``mask`` (H,W in [0,1]) is high.

    With ``threshold`` the mask is binarised first and its outline drawn.
    """
    import cv2

    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    m = mask.astype(np.float32)
    if threshold is not None:
        m = (m >= threshold).astype(np.float32)
    alpha = (opacity * m)[..., None]
    out = image.astype(np.float32) * (1 - alpha) + np.asarray(color, np.float32) * alpha
    out = np.clip(out, 0, 255).astype(np.uint8)
    if threshold is not None and opacity > 0 and m.any():
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), 1)
    return out


def encode_image(image: np.ndarray, fmt: str = "png", quality: int = 90) -> bytes:
    """PNG or JPEG encoding of an (H, W, 3) RGB uint8 image."""
    import cv2

    if fmt not in ("png", "jpeg"):
        raise ValueError(f"fmt must be 'png' or 'jpeg', got {fmt!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, buf = cv2.imencode("." + ("jpg" if fmt == "jpeg" else "png"), np.ascontiguousarray(image[..., ::-1]), params)
    if not ok:
        raise RuntimeError(f"{fmt} encoding failed")
    return buf.tobytes()


def outline(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of the boolean ``mask`` with a 4-neighbour outside it or on the border."""
    m = np.asarray(mask, bool)
    p = np.pad(m, 1, constant_values=False)
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~inner


def row(tiles: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    """(H, W, 3) uint8 tiles side by side with white gaps."""
    h = tiles[0].shape[0]
    sep = np.full((h, gap, 3), 255, np.uint8)
    out = [tiles[0]]
    for t in tiles[1:]:
        out += [sep, t]
    return np.concatenate(out, axis=1)


def panel(image: np.ndarray, mask: np.ndarray | None, pred: np.ndarray | None, opacity: float = 0.5,
          threshold: float = 0.5, gap: int = 4) -> np.ndarray:
    """One frame: image | true mask overlay | thresholded prediction overlay, side by side (uint8 RGB)."""
    tiles = [image]
    if mask is not None:
        tiles.append(overlay(image, mask, TRUTH_COLOR, opacity))
    if pred is not None:
        tiles.append(overlay(image, pred, PRED_COLOR, opacity, threshold=threshold))
    return row(tiles, gap)


# ------------------------------------------------------------------ viewers
def frame_viewer(frames: Sequence[np.ndarray], captions: Sequence[str] | None = None,
                 description: str = "frame", start: int = 0, zoom: float = 2.0, fmt: str = "jpeg",
                 size: int | None = None):
    """A slider over pre-rendered frames (H,W,3 uint8), with an "i / n" counter and the frame's caption.

    Static HTML (:mod:`dfnb.viewer_html`): works in the built book with no kernel. Frames are stored
    as ``fmt`` (JPEG keeps executed notebooks small) and shown ``size`` px wide (default ``zoom``
    times their pixel width), never wider than the page.
    """
    from dfnb import viewer_html

    if len(frames) == 0:
        raise ValueError("frame_viewer needs at least one frame")
    if captions is not None and len(captions) != len(frames):
        raise ValueError(f"{len(captions)} captions for {len(frames)} frames")
    if not 0 <= start < len(frames):
        raise ValueError(f"start={start} is not a frame index (0 .. {len(frames) - 1})")
    return viewer_html.frame_viewer_html([np.asarray(f, np.uint8) for f in frames], captions,
                                         description=description, width_px=size, zoom=zoom, fmt=fmt,
                                         start=start)


def _prob_maps(probs, preds, n, hw) -> dict[str, np.ndarray]:
    """name -> (N, H, W) maps from ``probs`` (array or mapping) or its older alias ``preds``."""
    if probs is not None and preds is not None:
        raise ValueError("pass probs= or its older name preds=, not both")
    probs = preds if probs is None else probs
    if probs is None:
        return {}
    if not isinstance(probs, Mapping):
        probs = {"prediction": probs}
    return {str(k): to_masks(v, n, hw, f"probs[{k!r}]") for k, v in probs.items()}


def mask_viewer(images, masks=None, probs=None, *, preds=None, captions: Sequence[str] | None = None,
                live: bool = False, opacity: float = 0.5, threshold: float = 0.5, mode: str = "side",
                size: int | None = None, zoom: float = 2.0, max_frames: int = 24):
    """Browse images with their true masks (blue) and predicted probability maps (orange).

    Args:
        images: (N, H, W, 3) or (N, 3, H, W), float in [0, 1] or uint8.
        masks: (N, H, W) or (N, 1, H, W) true masks in [0, 1], or None.
        probs: predicted probability maps, (N, H, W) or (N, 1, H, W) in [0, 1] (resized to the
            image), or a mapping ``{model name: maps}`` to compare models frame by frame.
            ``preds=`` is its older name.
        captions: one string per frame (data set, family, true label, P(fake)).
        live: False: static HTML, composited in the browser (works in the book, no kernel);
            True: ipywidgets whose callbacks re-render in Python (needs a kernel).
        opacity, threshold: start values of the sliders; the threshold applies to ``probs``.
        mode: "side" (image | true mask | each prediction) or "overlay" (prediction over the
            image with the true mask's outline); both modes have a toggle.
        size: CSS width in px of the row of panels in side-by-side mode (e.g. 1024 for a projector);
            default: each panel ``zoom`` times the image width.
        max_frames: a static viewer refuses more frames (each is embedded in the notebook).

    Returns a :class:`dfnb.viewer_html.StaticViewer` (static) or an ``ipywidgets.VBox`` (live).
    """
    imgs = to_uint8_images(images)
    n, hw = len(imgs), imgs.shape[1:3]
    gts = None if masks is None else to_masks(masks, n, hw, "masks")
    prs = _prob_maps(probs, preds, n, hw)
    if captions is not None and len(captions) != n:
        raise ValueError(f"{len(captions)} captions for {n} images")
    if mode not in ("side", "overlay"):
        raise ValueError(f"mode must be 'side' or 'overlay', got {mode!r}")
    panels = 1 + (gts is not None) + len(prs)
    panel_px = int(hw[1] * zoom) if size is None else max(16, (int(size) - 8 * (panels - 1)) // panels)
    if not live:
        from dfnb import viewer_html

        if n > max_frames:
            raise ValueError(f"{n} images exceed max_frames={max_frames} for a static viewer; pass fewer or raise max_frames")
        return viewer_html.mask_viewer_html(imgs, gts, prs, captions, opacity=opacity, threshold=threshold,
                                            mode=mode, panel_px=panel_px)
    return _live_mask_viewer(imgs, gts, prs, captions, opacity, threshold, mode, panel_px)


def _live_mask_viewer(imgs, gts, prs, captions, opacity, threshold, mode, panel_px):
    """ipywidgets viewer re-rendered by Python callbacks (``box.update()`` redraws)."""
    import html as _html

    import ipywidgets as w

    from dfnb import metrics

    n = len(imgs)
    index = w.IntSlider(value=0, min=0, max=n - 1, description="frame")
    op = w.FloatSlider(value=opacity, min=0, max=1, step=0.05, description="opacity")
    th = w.FloatSlider(value=threshold, min=0, max=1, step=0.01, description="threshold")
    view = w.ToggleButtons(options=[("side by side", "side"), ("overlay", "overlay")], value=mode)
    counter, cap, header, ious = w.HTML(), w.HTML(), w.HTML(), w.HTML()
    img = w.Image(format="png")

    def update(_=None):
        i, t = index.value, th.value
        tiles, labels = [], []
        if view.value == "side" or not prs:
            tiles.append(imgs[i]); labels.append("image")
            if gts is not None:
                tiles.append(overlay(imgs[i], gts[i], TRUTH_COLOR, op.value)); labels.append("true mask (blue)")
        for name, p in prs.items():
            if view.value == "side":
                tiles.append(overlay(imgs[i], p[i], PRED_COLOR, op.value, threshold=t))
                labels.append(f"{name} ≥ {t:.2f} (orange)")
            else:
                tile = overlay(imgs[i], p[i], PRED_COLOR, op.value, threshold=t)
                if gts is not None:
                    tile[outline(gts[i] >= 0.5)] = TRUTH_COLOR
                tiles.append(tile)
                labels.append(f"{name} ≥ {t:.2f} (orange), true mask: blue outline")
        img.value = encode_image(row(tiles))
        img.layout = w.Layout(width=f"{len(tiles) * (panel_px + 8) - 8}px", max_width="100%")
        header.value = "<div style='display:flex;gap:8px;font-size:15px;font-weight:600'>" + "".join(
            f"<div style='width:{panel_px}px'>{_html.escape(s)}</div>" for s in labels) + "</div>"
        counter.value = f"<span style='font-size:15px'>{i + 1} / {n}</span>"
        cap.value = "" if captions is None else f"<div style='font-size:16px'>{_html.escape(str(captions[i]))}</div>"
        if gts is not None and prs:
            ious.value = "<div style='font-size:15px'>" + "<br>".join(
                f"IoU({_html.escape(k)} ≥ {t:.2f}, true mask) = {metrics.iou(p[i:i + 1], gts[i:i + 1], t):.3f}"
                f" on this frame; mean over the {n} frames {metrics.iou(p, gts, t):.3f}" for k, p in prs.items()) + "</div>"

    for s in (index, op, th, view):
        s.observe(update, names="value")
    update()
    box = w.VBox([w.HBox([index, counter, op, th, view]), cap, header, img, ious,
                  w.HTML(f"<div style='font-size:14px'>{viewer_legend(bool(prs))}</div>")])
    box.update = update  # for tests and notebooks that drive it programmatically
    return box


def viewer_legend(with_probs: bool = True) -> str:
    """The colour legend printed under every viewer."""
    from dfnb import viewer_html

    return viewer_html.LEGEND if with_probs else "true mask: blue (Okabe-Ito)"


# ------------------------------------------------------------------ static figures
def image_grid(images, titles: Sequence[str] | None = None, ncols: int = 6, size: float = 1.8,
               masks=None, cmap_masks: str = "magma"):
    """A matplotlib grid of images (and, below each, its mask if given). Returns the figure."""
    import matplotlib.pyplot as plt

    imgs = to_uint8_images(images)
    n = len(imgs)
    ms = None if masks is None else to_masks(masks, n, imgs.shape[1:3])
    rows_per = 1 if ms is None else 2
    nrows = int(np.ceil(n / ncols)) * rows_per
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, ncols)
        axes[r * rows_per, c].imshow(imgs[i])
        if titles is not None:
            axes[r * rows_per, c].set_title(titles[i], fontsize=8)
        if ms is not None:
            axes[r * rows_per + 1, c].imshow(ms[i], cmap=cmap_masks, vmin=0, vmax=1)
    fig.tight_layout()
    return fig
