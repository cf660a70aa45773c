"""DADF's two small heads: the linear Task Head (Eq. 1) and the classification head (Section 3).

**Task head** ``T``: "a dimension-matched learnable linear Task Head" mapping the encoder's
output to the task features ``F = T(Z_tran)``.  SAM's encoder ends with a neck (1x1 conv,
LayerNorm, 3x3 conv, LayerNorm) that maps the ViT width to the decoder width; we keep the
neck as part of the frozen encoder and put ``T`` after it as a 1x1 convolution (a linear
map per token, ``C_out -> C_out``) initialised to the identity, so the pretrained decoder
sees SAM's features at step 0.  (Replacing the neck by ``T`` is the other reading; it would
start the pretrained decoder from random features.)

**Classification head**: "based on the predicted mask, a classification head consisting of
global average pooling and fully connected layers".  We pool the predicted mask itself, in
logit form: ``v = GAP(mask_logits)``, then ``FC(1 -> hidden) -> ReLU -> FC(hidden -> 1)``.
``L_cls`` therefore also trains the mask.  (Pooling ``sigmoid(mask_logits)``, the predicted
manipulated-area fraction, gives a feature of ~0.01-0.3 whose real/fake gap the FC layers
learn to use only very slowly; the mean logit differs by units between a clean and a
manipulated prediction.)
"""
from __future__ import annotations

import torch
from torch import nn


class TaskHead(nn.Module):
    """Linear 1x1 map ``(B, C, h, w) -> (B, C, h, w)``, identity at initialisation."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size=1)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(dim).view(dim, dim, 1, 1))
            self.proj.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class MaskClassificationHead(nn.Module):
    """GAP of the predicted mask + FC layers: mask logits ``(B, 1, h, w)`` -> fake logit ``(B,)``."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, mask_logits: torch.Tensor) -> torch.Tensor:
        v = mask_logits.mean(dim=(2, 3))  # (B, 1) mean mask logit
        return self.fc(v).squeeze(1)
