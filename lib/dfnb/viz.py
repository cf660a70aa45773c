"""Figures and mask viewers.

Two kinds of viewer, one look:

* **static** (``live=False``, the default): every frame is rendered to a PNG up
  front and placed in an ``ipywidgets.Stack``; a slider is ``jslink``-ed to the
  stack's ``selected_index``.  The link runs in the browser, so the viewer works
  in the built HTML book with no kernel.
* **live** (``live=True``): slider, opacity and threshold call back into Python
  and re-render; for lectures with a running kernel.

Images may be (N, H, W, 3) or (N, 3, H, W), float in [0, 1] or uint8, NumPy or
torch; masks and predictions (N, H, W) or (N, 1, H, W) in [0, 1].
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

GT_COLOR = (0, 200, 80)      # ground-truth manipulated region: green
PRED_COLOR = (230, 40, 40)   # predicted region / map: red


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


def panel(image: np.ndarray, mask: np.ndarray | None, pred: np.ndarray | None, opacity: float = 0.5,
          threshold: float = 0.5, gap: int = 4) -> np.ndarray:
    """One frame: image | ground truth overlay | prediction overlay, side by side (uint8 RGB)."""
    tiles = [image]
    if mask is not None:
        tiles.append(overlay(image, mask, GT_COLOR, opacity))
    if pred is not None:
        tiles.append(overlay(image, pred, PRED_COLOR, opacity, threshold=threshold))
    h = tiles[0].shape[0]
    sep = np.full((h, gap, 3), 255, np.uint8)
    row = [tiles[0]]
    for t in tiles[1:]:
        row += [sep, t]
    return np.concatenate(row, axis=1)


# ------------------------------------------------------------------ viewers
def frame_viewer(frames: Sequence[np.ndarray], captions: Sequence[str] | None = None,
                 description: str = "frame", start: int = 0, zoom: float = 2.0, fmt: str = "jpeg"):
    """A slider over pre-rendered frames (H,W,3 uint8), linked in the browser (no kernel needed).

    Frames are stored in the notebook as ``fmt`` (JPEG keeps executed notebooks small) and shown
    ``zoom`` times their pixel size, at most the page width.

    Returns an ``ipywidgets.VBox``: the slider, a caption ``Stack`` and an image ``Stack``,
    both ``jslink``-ed to the slider.
    """
    import ipywidgets as w

    if len(frames) == 0:
        raise ValueError("frame_viewer needs at least one frame")
    if captions is not None and len(captions) != len(frames):
        raise ValueError(f"{len(captions)} captions for {len(frames)} frames")
    width = f"{int(frames[0].shape[1] * zoom)}px"
    images = [w.Image(value=encode_image(f, fmt), format=fmt, layout=w.Layout(width=width, max_width="100%"))
              for f in frames]
    stack = w.Stack(images, selected_index=start)
    slider = w.IntSlider(value=start, min=0, max=len(frames) - 1, description=description,
                         continuous_update=True, layout=w.Layout(width="420px"))
    links = [w.jslink((slider, "value"), (stack, "selected_index"))]
    children = [slider]
    if captions is not None:
        cap = w.Stack([w.HTML(f"<code>{c}</code>") for c in captions], selected_index=start)
        links.append(w.jslink((slider, "value"), (cap, "selected_index")))
        children.append(cap)
    children.append(stack)
    box = w.VBox(children)
    box.add_class("dfnb-frame-viewer")
    box.links = links  # the browser-side links, kept for inspection
    return box


def mask_viewer(images, masks=None, preds=None, *, captions: Sequence[str] | None = None,
                live: bool = False, opacity: float = 0.5, threshold: float = 0.5,
                max_frames: int = 24, zoom: float = 2.0):
    """Browse images with their true masks (green) and predicted masks or maps (red).

    ``live=False`` pre-renders at most ``max_frames`` frames at the given opacity and
    threshold (works in the static HTML book); ``live=True`` adds opacity and threshold
    sliders that re-render through Python callbacks (needs a kernel).
    """
    import ipywidgets as w

    imgs = to_uint8_images(images)
    n, hw = len(imgs), imgs.shape[1:3]
    gts = None if masks is None else to_masks(masks, n, hw, "masks")
    prs = None if preds is None else to_masks(preds, n, hw, "preds")
    if captions is not None and len(captions) != n:
        raise ValueError(f"{len(captions)} captions for {n} images")
    header = w.HTML(
        "<small>image"
        + (" | <span style='color:#00c850'>true mask</span>" if gts is not None else "")
        + (" | <span style='color:#e62828'>prediction</span>" if prs is not None else "")
        + "</small>"
    )

    def render(i: int, op: float, th: float) -> np.ndarray:
        return panel(imgs[i], None if gts is None else gts[i], None if prs is None else prs[i], op, th)

    if not live:
        if n > max_frames:
            raise ValueError(f"{n} images exceed max_frames={max_frames} for a static viewer; pass fewer or raise max_frames")
        frames = [render(i, opacity, threshold) for i in range(n)]
        return w.VBox([header, frame_viewer(frames, captions, description="image", zoom=zoom)])

    index = w.IntSlider(value=0, min=0, max=n - 1, description="image")
    op = w.FloatSlider(value=opacity, min=0, max=1, step=0.05, description="opacity")
    th = w.FloatSlider(value=threshold, min=0, max=1, step=0.05, description="threshold")
    width = w.Layout(width=f"{int(render(0, opacity, threshold).shape[1] * zoom)}px", max_width="100%")
    img = w.Image(value=encode_image(render(0, opacity, threshold)), format="png", layout=width)
    cap = w.HTML("" if captions is None else f"<code>{captions[0]}</code>")

    def update(_=None):
        img.value = encode_image(render(index.value, op.value, th.value))
        if captions is not None:
            cap.value = f"<code>{captions[index.value]}</code>"

    for s in (index, op, th):
        s.observe(update, names="value")
    box = w.VBox([header, w.HBox([index, op, th]), cap, img])
    box.update = update  # for tests and notebooks that drive it programmatically
    return box


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
