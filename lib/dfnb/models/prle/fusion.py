"""Static fusion of a detector zoo's attention maps into one primary-region map (PRLE, Sec. III-B).

Input everywhere: ``maps`` of shape (D, H, W) or (B, D, H, W), one normalised Grad-CAM map per
zoo member (D = zoo size T in the paper), values in [0, 1].  Output: (H, W) or (B, H, W).
NumPy in gives NumPy out; torch in gives torch out.

Our reading of the equations
----------------------------
Eq. 6 (average fusion).  ``s(x) = mean_j A_j(x)`` over the D maps at the same pixel;
``A^(x) = s(x) if s(x) > tau1 else 0``.  Strict ``>``.  Paper: tau1 = 0.3.

Eq. 7 (neighbouring indicator).  With N(x) the neighbours of x (here the (2r+1)^2 - 1 pixels of a
square window around x, the centre itself excluded, pixels outside the image left out of both the
sum and |N|)::

    g(x) = 1  if there exist maps j, k (j = k allowed) with
              (1/|N|) * sum_{a in N(x)} |A_j(a) - A_k(x)|  >  lambda
           0  otherwise

i.e. the mean absolute gap between the neighbourhood in one map and the centre in another map.
The prose says "if a neighbour receives *more* attention, x is of interest too", which suggests a
one-sided difference, but the printed formula has an absolute value; we follow the formula.
Paper: lambda = 0.15.

Eq. 8 (neighbouring value).  ``A^(x) = max_{j, n in N(x)} A_j(n)`` where g(x) = 1, else 0:
the largest attention any zoo member gives to any neighbour.

How Eq. 6 and Eq. 7-8 combine is not spelled out.  The text says the neighbouring method
"expands the regions based on the average fused maps with a higher tau1", so by default
(``base="average"``) we take the pixel-wise maximum of the Eq. 6 map (with ``tau1``) and the
Eq. 8 map: every pixel kept by the average stays, pixels flagged by Eq. 7 are added (or raised) to
their neighbourhood maximum.  ``base=None`` gives Eq. 7-8 alone, literally (then a pixel where
all maps agree to within lambda is zeroed even when its attention is high).

The binary primary-region mask is Eq. 4 applied to the fused map: ``M_b = A^ > 0``
(:func:`dfnb.cam.primary_region_mask`).

What the authors' released code does differently (see ../shared/papers/NOTES.md): it uses only
the average fusion (zero below 0.3) and switches the neighbouring fusion off.  That variant is
``FUSIONS["released_code"]``; the paper's is ``FUSIONS["paper"]``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["average_fusion", "neighbouring_fusion", "fuse", "FUSIONS"]

#: Named fusion settings: (function name, keyword arguments).
FUSIONS = {
    "paper": ("neighbouring", {"lam": 0.15, "tau1": 0.3}),
    "released_code": ("average", {"tau1": 0.3}),
}


def _as_bdhw(maps) -> tuple[torch.Tensor, bool, bool]:
    """(D,H,W) or (B,D,H,W) array/tensor -> float32 (B,D,H,W) tensor, was_numpy, was_unbatched."""
    was_numpy = isinstance(maps, np.ndarray)
    t = torch.as_tensor(maps)
    if t.ndim not in (3, 4):
        raise ValueError(f"maps must have shape (D, H, W) or (B, D, H, W), got {tuple(t.shape)}")
    unbatched = t.ndim == 3
    if unbatched:
        t = t.unsqueeze(0)
    if t.shape[1] < 1:
        raise ValueError("maps holds no detector map (D = 0)")
    t = t.float()
    if torch.isnan(t).any():
        raise ValueError("maps contain NaN")
    if t.numel() and (t.min() < 0 or t.max() > 1):
        raise ValueError(f"attention maps must lie in [0, 1], got range [{t.min():.3g}, {t.max():.3g}]")
    return t, was_numpy, unbatched


def _out(t: torch.Tensor, was_numpy: bool, unbatched: bool):
    if unbatched:
        t = t[0]
    return t.numpy() if was_numpy else t


def average_fusion(maps, tau1: float = 0.3):
    """Eq. 6: mean over the zoo, zeroed where the mean is not above ``tau1``.

    maps: (D,H,W) or (B,D,H,W) in [0,1] -> (H,W) or (B,H,W).
    """
    t, was_numpy, unbatched = _as_bdhw(maps)
    s = t.mean(dim=1)
    return _out(torch.where(s > tau1, s, torch.zeros_like(s)), was_numpy, unbatched)


def _offsets(radius: int) -> list[tuple[int, int]]:
    k = 2 * radius + 1
    return [(dy, dx) for dy in range(k) for dx in range(k) if (dy, dx) != (radius, radius)]


def neighbouring_fusion(maps, lam: float = 0.15, tau1: float = 0.3, radius: int = 1, base: str | None = "average",
                        grid: int | None = None):
    """Eq. 7-8 neighbouring fusion, by default on top of the Eq. 6 average map.

    maps: (D,H,W) or (B,D,H,W) in [0,1] -> (H,W) or (B,H,W).
    lam: lambda of Eq. 7.  tau1: threshold of the Eq. 6 base map (unused when ``base=None``).
    radius: neighbourhood half-width (1 -> the 8-neighbourhood).
    base: "average" -> max(Eq. 6 map, Eq. 8 map); None -> Eq. 8 map alone.
    grid: None -> Eq. 7-8 between pixels of the given maps.  An integer g -> between the cells of
        the CAM's native g x g grid (the maps area-averaged to g x g, e.g. g = image side / stride of
        the Grad-CAM layer), the Eq. 8 map then repeated back to (H, W) (nearest: each cell's value
        fills its pixels); the Eq. 6 base stays at full resolution.  On bilinearly upsampled CAMs a
        pixel never differs from its neighbours by lambda, so only the native grid compares
        neighbours as the paper intends.  H and W must be multiples of g.
    """
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    if base not in ("average", None):
        raise ValueError(f"base must be 'average' or None, got {base!r}")
    t, was_numpy, unbatched = _as_bdhw(maps)
    if grid is not None:
        H, W = t.shape[-2:]
        if not isinstance(grid, int) or grid < 1 or H % grid or W % grid:
            raise ValueError(f"grid must be a positive integer dividing the maps' size {H}x{W}, got {grid!r}")
        coarse = neighbouring_fusion(F.adaptive_avg_pool2d(t, grid), lam=lam, tau1=tau1, radius=radius, base=None)
        out = F.interpolate(coarse[:, None], size=(H, W), mode="nearest")[:, 0]
        if base == "average":
            s = t.mean(dim=1)
            out = torch.maximum(out, torch.where(s > tau1, s, torch.zeros_like(s)))
        return _out(out, was_numpy, unbatched)
    B, D, H, W = t.shape
    r = radius
    offs = _offsets(r)
    padded = F.pad(t, (r, r, r, r))  # zeros outside the image
    count = F.conv2d(F.pad(torch.ones(1, 1, H, W), (r, r, r, r)), torch.ones(1, 1, 2 * r + 1, 2 * r + 1))[0, 0] - 1  # |N(x)|
    missing = len(offs) - count  # out-of-image neighbours
    g = torch.zeros(B, H, W, dtype=torch.bool)
    acc, tmp = torch.empty_like(t), torch.empty_like(t)
    # For a fixed map j, c -> mean_a |A_j(a) - c| is convex in c, so its maximum over the centre
    # values c = A_k(x), k = 1..D, is reached at min_k A_k(x) or max_k A_k(x): two centres suffice.
    centres = (t.amin(dim=1, keepdim=True), t.amax(dim=1, keepdim=True)) if D > 2 else tuple(t.split(1, dim=1))
    for c in centres:
        acc.zero_()
        for dy, dx in offs:  # sum over the neighbours of |A_j(a) - c|, every j at once
            torch.sub(padded[:, :, dy : dy + H, dx : dx + W], c, out=tmp)
            acc.add_(tmp.abs_())
        acc.sub_(c * missing)  # each zero-padded neighbour added |0 - c| = c: take it out again
        g |= (acc > lam * count).any(dim=1)  # mean gap > lambda
    top = padded.amax(dim=1)  # (B, H+2r, W+2r); padding zeros are harmless as maps are >= 0
    neigh_max = torch.zeros(B, H, W)
    for dy, dx in offs:
        torch.maximum(neigh_max, top[:, dy : dy + H, dx : dx + W], out=neigh_max)
    out = torch.where(g, neigh_max, torch.zeros_like(neigh_max))
    if base == "average":
        s = t.mean(dim=1)
        out = torch.maximum(out, torch.where(s > tau1, s, torch.zeros_like(s)))
    return _out(out, was_numpy, unbatched)


def fuse(maps, method: str = "paper", **kwargs):
    """Fuse with a named setting ("paper", "released_code") or a function name ("average",
    "neighbouring"); ``kwargs`` override that setting's parameters."""
    if method in FUSIONS:
        method, params = FUSIONS[method]
        kwargs = {**params, **kwargs}
    if method == "average":
        return average_fusion(maps, **kwargs)
    if method == "neighbouring":
        return neighbouring_fusion(maps, **kwargs)
    raise ValueError(f"unknown fusion {method!r}; use one of {sorted(FUSIONS) + ['average', 'neighbouring']}")
