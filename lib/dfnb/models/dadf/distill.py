"""Feature distillation for micro-SAM pretraining from a frozen ImageNet teacher (after MobileSAM).

Why: a linear probe of micro-SAM pretrained on part segmentation alone separates real from fake
``ffpp-syn`` faces no better than its random initialisation (test AUC 0.63-0.67 against 0.56-0.70),
while a frozen ImageNet EfficientNet-lite0 reaches 0.875 (``scripts/probe_encoders.py``, issue #13).
MobileSAM ("decoupled distillation") trains its small image encoder to reproduce SAM ViT-H's image
embedding; here the only ImageNet weights offline are EfficientNet-lite0/1/2
(:func:`dfnb.models.backbones.efficientnet_lite_imagenet`), so one of them is the frozen teacher and
its features are an extra target beside the promptable-segmentation loss, not a replacement for it.

Per step, for the step's images ``x`` (B, 3, S, S) in [0, 1]::

    t  = stage_k(EfficientNet-lite((x - 0.5) / 0.5))       (B, C_t, h, w), frozen, no gradient
    t^ = (t - mu) / sigma                                  per channel; mu, sigma over every teacher map so far
    e  = micro-SAM image encoder output (after the neck)   (B, C_s, g, g)
    e^ = W pool_{g -> h}(e) + b                            (B, C_t, h, w), learned 1x1 projection
    L_distill = mean over B, C_t, h, w of (e^ - t^)^2      added to the loss as distill_weight * L_distill

- **Student features after the neck** (micro-SAM: (B, 128, S/8, S/8)): that is the image embedding
  MobileSAM distils, and it is the only encoder output DADF uses: DADF keeps the neck frozen and its
  task head, RGA and decoder read the neck's output (its adapters change the tokens before the neck,
  so what the neck passes on is what must carry the teacher's information).
- **Grid**: the student map is average-pooled to the teacher's grid (``adaptive_avg_pool2d``; bilinear
  upsampling if the teacher's grid is the finer one).  Pooling and the 1x1 projection are both linear,
  so their order does not matter; pooling first is cheaper.
- **Standardised per channel with running statistics** (pooled over every image and position the
  teacher has seen so far, this batch included): the target's scale is then the same for every
  channel, and an image's channel means, which carry the probe's real/fake signal, are kept (a
  per-image standardisation would remove exactly them).  For a fixed batch the target is fixed.
- **The projection** ``W, b`` is trained with the student and discarded: it is not part of the SAM,
  so :func:`~dfnb.models.dadf.sam.save_micro_sam` never writes it and DADF loads the checkpoint as any
  other micro-SAM.

Teacher stage.  Linear probes of EfficientNet-lite0's stages on ``ffpp-syn`` HQ (2,000 training / 1,000
test faces at 128 px, ``scripts/probe_encoders.py``), test AUC: ``blocks.2`` (stride 8, 40 ch) 0.819,
``blocks.3`` (16, 80 ch) 0.803, ``blocks.4`` (16, 112 ch) 0.867, ``blocks.5`` (32, 192 ch) 0.875,
``blocks.6`` (32, 320 ch) 0.863.  The default is ``blocks.4``, the last stride-16 stage: within 0.01 of the
best stage and an 8x8 target at 128 px (64 positions per face, each the average of 2x2 micro-SAM
tokens) instead of ``blocks.5``'s 4x4.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TEACHERS", "TEACHER_STAGES", "DEFAULT_STAGE", "check_distill", "FeatureTeacher", "RunningChannelStats",
           "Distiller"]

#: teacher name -> EfficientNet-lite variant with offline ImageNet weights
TEACHERS = {"efficientnet_lite0": 0, "efficientnet_lite1": 1, "efficientnet_lite2": 2}
#: the stages a teacher can be cut after (every EfficientNet-lite has 7)
TEACHER_STAGES = tuple(f"blocks.{i}" for i in range(7))
DEFAULT_STAGE = "blocks.4"


def check_distill(teacher: str | None, distill_weight: float, teacher_stage: str) -> None:
    """``ValueError`` naming the problem for an unknown teacher or stage, or a negative / non-finite weight."""
    if teacher is not None and teacher not in TEACHERS:
        raise ValueError(f"unknown teacher {teacher!r}; choose None or one of {sorted(TEACHERS)}")
    if not isinstance(distill_weight, (int, float)) or not math.isfinite(distill_weight) or distill_weight < 0:
        raise ValueError(f"distill_weight must be a finite number >= 0, got {distill_weight!r}")
    if teacher_stage not in TEACHER_STAGES:
        raise ValueError(f"unknown teacher_stage {teacher_stage!r}; choose one of {list(TEACHER_STAGES)}")


class FeatureTeacher(nn.Module):
    """A frozen ImageNet EfficientNet-lite cut after one stage, always in eval mode (ImageNet BN statistics).

    Shapes: images (B, 3, H, W) in [0, 1] -> features (B, C_t, H/s, W/s); ``channels`` = C_t.
    """

    def __init__(self, name: str, stage: str = DEFAULT_STAGE):
        super().__init__()
        if name is None:
            raise ValueError("FeatureTeacher needs a teacher name")
        check_distill(name, 0.0, stage)
        from dfnb.models.backbones import efficientnet_lite_imagenet

        net = efficientnet_lite_imagenet(TEACHERS[name], num_classes=0)
        self.body = nn.Sequential(net.conv_stem, net.bn1, *net.blocks[: int(stage.split(".")[1]) + 1])
        self.requires_grad_(False)
        self.eval()
        with torch.no_grad():
            self.channels = int(self(torch.zeros(1, 3, 32, 32)).shape[1])

    def train(self, mode: bool = True) -> "FeatureTeacher":
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body((images - 0.5) / 0.5)


class RunningChannelStats(nn.Module):
    """Per-channel mean and (population) std of every value seen so far.

    ``update(t)`` adds a (B, C, h, w) map's values; ``forward(t)`` returns ``(t - mean) / std``
    (std clamped at ``eps``).  Sums are kept in float64 buffers.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("sum", torch.zeros(channels, dtype=torch.float64))
        self.register_buffer("sum_sq", torch.zeros(channels, dtype=torch.float64))

    def update(self, t: torch.Tensor) -> None:
        v = t.detach().transpose(0, 1).flatten(1).double()  # (C, B*h*w)
        self.count += v.shape[1]
        self.sum += v.sum(1)
        self.sum_sq += (v * v).sum(1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if self.count == 0:
            raise RuntimeError("RunningChannelStats: update() before standardising")
        mean = self.sum / self.count
        std = (self.sum_sq / self.count - mean * mean).clamp(min=0).sqrt().clamp(min=self.eps)
        return (t - mean.to(t.dtype).view(1, -1, 1, 1)) / std.to(t.dtype).view(1, -1, 1, 1)


class Distiller(nn.Module):
    """``L_distill`` of a student feature map against a :class:`FeatureTeacher` (the module docstring).

    Args:
        teacher: the frozen teacher.  student_channels: C_s of the student map.
    ``forward(student (B, C_s, g, g), images (B, 3, S, S) in [0, 1]) -> scalar loss``; only
    :attr:`proj` (a 1x1 convolution C_s -> C_t) is trainable.
    """

    def __init__(self, teacher: FeatureTeacher, student_channels: int):
        super().__init__()
        self.teacher = teacher
        self.proj = nn.Conv2d(student_channels, teacher.channels, 1)
        self.stats = RunningChannelStats(teacher.channels)

    def target(self, images: torch.Tensor) -> torch.Tensor:
        """The standardised teacher map (B, C_t, h, w); updates the running statistics first."""
        with torch.no_grad():
            t = self.teacher(images)
            self.stats.update(t)
            return self.stats(t)

    def forward(self, student: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        target = self.target(images)
        grid = target.shape[-2:]
        if grid[0] <= student.shape[-2] and grid[1] <= student.shape[-1]:
            student = F.adaptive_avg_pool2d(student, grid)
        else:
            student = F.interpolate(student, size=grid, mode="bilinear", align_corners=False)
        return F.mse_loss(self.proj(student), target)
