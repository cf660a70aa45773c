"""CARP: Classification Attentive Regions Proposal (FoCus, Sec. III-B).

Our reading of the missing equations (reconstructed from the prose and ``shared/papers/NOTES.md``):

Token grid -> CAM stack.  The N = h*w image tokens T (B, N, D) of a branch (class token dropped) are laid
out as a feature map (B, D, h, w); one convolution maps it to F (B, 2K, h, w), read as F[c, k]: K maps per
class c in {0 = real, 1 = fake}.  (The paper says "a convolutional layer"; the kernel size is not given.
We use 3x3, ``kernel_size`` to change it.)

Class scores.  z_c = (1/K) sum_k max_{i,j} F[c, k, i, j]: spatial max-pool, then channel average-pool
over the class's K maps; p = softmax(z).  With max-pooling only the single strongest location of each map is
rewarded, so K maps per class can lock onto up to K distinct patches ("K = 32 attends to at most 32 patches").

Localization loss (Eq. 6, per modality m):  L_loc^m = -sum_c 1[y = c] log p_c^m,  i.e. cross-entropy on z^m;
the total localization loss sums the RGB and the auxiliary branch.

CAR map (Eq. 4).  For a class c:  M^c = sum_k GAP(F[c, k]) * F[c, k], GAP = spatial mean, "*" = scalar
times map (a CAM whose channel weights are the maps' own spatial means).  Eq. 4 takes c = the predicted class
argmax_c z_c; Eq. 9 fixes c = 1 (fake) to show what pushes any face, real ones included, towards "fake".
Ambiguities: sum vs mean over k (irrelevant after normalisation) and the sign handling; we apply ReLU and
divide by the per-image maximum (``normalize_map``) so a map is in [0, 1] and an all-zero map stays zero.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def carp_logits(maps: torch.Tensor) -> torch.Tensor:
    """Class logits of a CAM stack: maps (B, C, K, h, w) -> (B, C), spatial max then mean over K."""
    if maps.ndim != 5:
        raise ValueError(f"maps must be (B, C, K, h, w); got {tuple(maps.shape)}")
    return maps.amax(dim=(-2, -1)).mean(dim=-1)


def car_map(maps: torch.Tensor, cls: torch.Tensor | int) -> torch.Tensor:
    """Eq. 4 / Eq. 9: the raw CAR map of class ``cls`` (int, or (B,) long per image), (B, 1, h, w).

    M = sum_k mean_{i,j}(F[c, k]) * F[c, k]   with F = maps (B, C, K, h, w).
    """
    b = maps.shape[0]
    if isinstance(cls, int):
        cls = torch.full((b,), cls, dtype=torch.long, device=maps.device)
    sel = maps[torch.arange(b, device=maps.device), cls]  # (B, K, h, w)
    w = sel.mean(dim=(-2, -1), keepdim=True)  # (B, K, 1, 1)
    return (w * sel).sum(dim=1, keepdim=True)


def normalize_map(m: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(B, 1, h, w) -> ReLU then divide by the per-image max, in [0, 1]; all-zero maps stay zero."""
    m = m.clamp_min(0)
    return m / m.amax(dim=(-2, -1), keepdim=True).clamp_min(eps)


class CARP(nn.Module):
    """tokens (B, N, D) on an h x w grid -> {"maps" (B, 2, K, h, w), "logits" (B, 2), "car" (B,1,h,w), "car_fake"}.

    ``car`` is Eq. 4 with the predicted class, ``car_fake`` Eq. 9 (class 1); both raw (not normalised).
    """

    def __init__(self, dim: int, K: int = 32, num_classes: int = 2, kernel_size: int = 3):
        super().__init__()
        if K < 1:
            raise ValueError(f"K must be >= 1; got {K}")
        self.K, self.num_classes = K, num_classes
        self.conv = nn.Conv2d(dim, num_classes * K, kernel_size, padding=kernel_size // 2)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
        b, n, d = tokens.shape
        h, w = grid
        if n != h * w:
            raise ValueError(f"{n} tokens do not fill a {h}x{w} grid")
        feat = tokens.transpose(1, 2).reshape(b, d, h, w)
        maps = self.conv(feat).view(b, self.num_classes, self.K, h, w)
        logits = carp_logits(maps)
        pred = logits.argmax(dim=1)
        return {"maps": maps, "logits": logits, "car": car_map(maps, pred), "car_fake": car_map(maps, 1)}


def localization_loss(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Eq. 6 for one modality: cross-entropy of the CARP logits (B, 2) against labels (B,) (1 = fake)."""
    return F.cross_entropy(logits, label.long())
