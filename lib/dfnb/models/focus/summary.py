"""What chapter 20 shows of its data and maps: split sizes and figures (fonts >= 9 pt).

:func:`split_sizes` (faces and fakes per split), :func:`map_grid` (faces and maps in a grid),
:func:`tsne_figure` (a 2-D embedding by family).  The tables, claims and deviations are in ``study``;
no training here.
"""
from __future__ import annotations

import numpy as np

FS = 9  # the smallest font of a figure


def split_sizes(sets: dict):
    """``{name: split}`` -> DataFrame with the number of faces and of fakes of each split."""
    import pandas as pd

    return pd.DataFrame({name: {"faces": len(ds), "fake": int(sum(int(ds[i]["label"]) for i in range(len(ds))))}
                         for name, ds in sets.items()}).T


def _as_rows(x) -> np.ndarray:
    """A tensor / array of N images -> (N, H, W, 3) RGB or (N, H, W) map, float, on the CPU."""
    a = x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)
    if a.ndim == 4 and a.shape[1] == 3:
        return a.transpose(0, 2, 3, 1).clip(0, 1)
    if a.ndim == 4 and a.shape[1] == 1:
        return a[:, 0]
    if a.ndim == 3 or (a.ndim == 4 and a.shape[-1] == 3):
        return a
    raise ValueError(f"expected N images (N, 3, H, W), (N, 1, H, W), (N, H, W) or (N, H, W, 3); got {a.shape}")


def map_grid(rows: dict, titles, cell: float = 1.6, cmap: str = "magma"):
    """A grid of faces: one row per entry of ``rows`` (``{name: N images or maps}``), one column per face
    (``titles``, N strings).  RGB rows are drawn as they are, maps with ``cmap`` on [0, 1]."""
    import matplotlib.pyplot as plt

    arrs = {k: _as_rows(v) for k, v in rows.items()}
    n = len(titles)
    if any(len(a) != n for a in arrs.values()):
        raise ValueError(f"every row needs {n} images: {[len(a) for a in arrs.values()]}")
    fig, axes = plt.subplots(len(arrs), n, figsize=(cell * n + 1.2, cell * len(arrs)), squeeze=False)
    for r, (name, a) in enumerate(arrs.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(a[c], cmap=None if a.ndim == 4 else cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=FS, rotation=0, ha="right", va="center")
    for c, t in enumerate(titles):
        axes[0, c].set_title(t, fontsize=FS)
    fig.tight_layout()
    return fig


def tsne_figure(emb, families, order, title: str):
    """2-D embedding ``emb`` (N, 2), one colour per family of ``order`` present (real: circles, fakes:
    triangles), legend and title at >= 9 pt."""
    import matplotlib.pyplot as plt

    families = np.asarray(families)
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for m in order:
        sel = families == m
        if sel.any():
            ax.scatter(emb[sel, 0], emb[sel, 1], s=14, label=m, marker="o" if m == "real" else "^", alpha=0.8)
    ax.legend(fontsize=FS)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=FS + 1)
    fig.tight_layout()
    return fig
