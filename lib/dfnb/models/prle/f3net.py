"""F3-Net (Qian et al., "Thinking in Frequency", ECCV 2020), one of PRLE's backbones; registered as ``f3net``.

Written from the F3-Net paper's description, not from its code.  Two frequency-aware input
streams, each feeding its own Xception trunk (timm ``legacy_xception``, ``pretrained=False``,
first convolution widened to the stream's channel count):

FAD (frequency-aware decomposition).  Per colour channel, the orthonormal 2-D DCT ``X = D x D^T``
of the whole (N x N) face is multiplied by four filters and transformed back,
``y_i = D^T (X * f_i) D``, giving 4 x 3 = 12 channels.  Each filter is a fixed binary band
plus a learnable part squashed to (-1, 1): ``f_i = b_i + (2 sigmoid(xi_i) - 1)``.  The bands are
cut along the anti-diagonal frequency index ``u + v`` so that, as in the paper, the low band
holds the first 1/16 of the spectrum's area (``u + v < N / sqrt(8)``), the middle band the next
1/16 (up to ``u + v < N / 2``, area 1/8) and the high band the remaining 7/8; the fourth band is
the whole spectrum.

LFS (local frequency statistics).  The grey-level face is cut into 10 x 10 windows with stride 2
(padding 4, so an N x N face gives N/2 x N/2 windows); each window's DCT ``P`` gives M = 6
statistics ``q_m = log10(|| P * (h_m + 2 sigmoid(w_m) - 1) ||_1 + 1e-6)``, where the binary
``h_m`` split the window's ``u + v`` range into M equal intervals.  Output: M channels at half
resolution.

Simplifications (documented, not hidden): no MixBlock cross-attention between the streams; the
two trunks' pooled features are concatenated and classified by one linear layer (the paper's
late-fusion variant).  No ImageNet initialisation (offline); inputs are scaled to [-1, 1].  The
input size is fixed at construction (the FAD filters are N x N).

Method contract: ``model(images)`` -> ``{"logit": (B,), "features": (B, 4096)}``; ``model.losses(out, batch)`` is the
binary cross-entropy, weighted per sample by ``batch["sample_weight"]`` when present (PRLE
Eq. 13).  ``model.cam_layer`` names the FAD trunk's last activation for Grad-CAM.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dfnb.registry import register_model

__all__ = ["F3Net", "FAD", "LFS", "dct_matrix"]


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix (n, n): ``X = D x`` transforms, ``x = D^T X`` inverts."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None]
    d = math.sqrt(2.0 / n) * torch.cos(math.pi * (2 * i + 1) * k / (2 * n))
    d[0] /= math.sqrt(2.0)
    return d.float()


def _diag_index(n: int) -> torch.Tensor:
    r = torch.arange(n)
    return (r[:, None] + r[None]).float()  # u + v


class FAD(nn.Module):
    """Frequency-aware decomposition: (B, 3, N, N) -> (B, 12, N, N) (low, mid, high, all per channel)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        idx = _diag_index(size)
        t_low, t_mid = size / math.sqrt(8.0), size / 2.0
        bases = torch.stack([idx < t_low, (idx >= t_low) & (idx < t_mid), idx >= t_mid, torch.ones_like(idx, dtype=torch.bool)]).float()
        self.register_buffer("dct", dct_matrix(size), persistent=False)
        self.register_buffer("bases", bases, persistent=False)  # (4, N, N)
        self.learnable = nn.Parameter(0.1 * torch.randn(4, size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dct
        spec = d @ x @ d.T  # (B,3,N,N)
        filters = self.bases + 2 * torch.sigmoid(self.learnable) - 1  # (4,N,N)
        bands = d.T @ (spec[:, None] * filters[None, :, None]) @ d  # (B,4,3,N,N)
        return bands.flatten(1, 2)


class LFS(nn.Module):
    """Local frequency statistics: (B, 3, N, N) -> (B, M, N/2, N/2)."""

    def __init__(self, window: int = 10, stride: int = 2, bands: int = 6):
        super().__init__()
        self.window, self.stride, self.bands = window, stride, bands
        idx = _diag_index(window)
        edges = torch.linspace(0, 2 * window - 1, bands + 1)
        h = torch.stack([(idx >= edges[m]) & (idx < edges[m + 1]) for m in range(bands)]).float()
        self.register_buffer("dct", dct_matrix(window), persistent=False)
        self.register_buffer("bases", h, persistent=False)  # (M, w, w)
        self.learnable = nn.Parameter(0.1 * torch.randn(bands, window, window))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
        pad = (self.window - self.stride) // 2
        patches = F.unfold(grey, self.window, padding=pad, stride=self.stride)  # (B, w*w, L)
        L = patches.shape[-1]
        oh = (H + 2 * pad - self.window) // self.stride + 1
        ow = (W + 2 * pad - self.window) // self.stride + 1
        p = patches.transpose(1, 2).reshape(B, L, self.window, self.window)
        spec = self.dct @ p @ self.dct.T  # (B, L, w, w)
        filters = self.bases + 2 * torch.sigmoid(self.learnable) - 1  # (M, w, w)
        stats = torch.einsum("blij,mij->blm", spec.abs(), filters.abs())  # L1 norm of the filtered spectrum
        q = torch.log10(stats + 1e-6)
        return q.transpose(1, 2).reshape(B, self.bands, oh, ow)


class F3Net(nn.Module):
    """F3-Net without MixBlock: FAD and LFS streams on two Xception trunks, late fusion.

    images (B, 3, img_size, img_size) in [0, 1] -> {"logit": (B,), "features": (B, C_fad + C_lfs)}.
    """

    def __init__(self, img_size: int = 256, trunk: str = "legacy_xception", drop_rate: float = 0.2, pretrained: bool = False):
        super().__init__()
        import timm

        if img_size % 2:
            raise ValueError(f"img_size must be even, got {img_size}")
        self.img_size = img_size
        self.fad = FAD(img_size)
        self.lfs = LFS()
        self.fad_trunk = timm.create_model(trunk, pretrained=pretrained, in_chans=12, num_classes=0)
        self.lfs_trunk = timm.create_model(trunk, pretrained=pretrained, in_chans=self.lfs.bands, num_classes=0)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.fad_trunk.num_features + self.lfs_trunk.num_features, 1)
        from dfnb.cam import default_target_layer

        self.cam_layer = "fad_trunk." + default_target_layer(self.fad_trunk)

    def forward(self, images: torch.Tensor) -> dict:
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(f"F3Net built for (B, 3, {self.img_size}, {self.img_size}) images, got {tuple(images.shape)}")
        x = images * 2.0 - 1.0
        feats = torch.cat([self.fad_trunk(self.fad(x)), self.lfs_trunk(self.lfs(x))], dim=1)
        return {"logit": self.head(self.drop(feats))[:, 0], "features": feats}

    def losses(self, out: dict, batch: dict) -> dict:
        from dfnb.models.prle.exploit import weighted_bce

        loss = weighted_bce(out["logit"], batch["label"], batch)
        return {"loss": loss, "bce": loss.detach()}


@register_model("f3net")
def f3net(img_size: int = 256, trunk: str = "legacy_xception", drop_rate: float = 0.2, pretrained: bool = False, **kwargs) -> F3Net:
    """F3-Net (FAD + LFS, no MixBlock) on timm Xception trunks; see :mod:`dfnb.models.prle.f3net`."""
    if kwargs:
        raise TypeError(f"f3net: unexpected arguments {sorted(kwargs)}")
    model = F3Net(img_size=img_size, trunk=trunk, drop_rate=drop_rate, pretrained=pretrained)
    model.dfnb_arch = {"name": "f3net", "kwargs": {"img_size": img_size, "trunk": trunk, "drop_rate": drop_rate}}
    return model
