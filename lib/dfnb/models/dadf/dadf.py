"""DADF, "Detect Any Deepfakes" (Lai, Luo, Yu): the full model, registered as ``dadf``.

Pipeline (Fig. 2; all SAM parts from ``segment-anything``)::

    images (B,3,H,W) in [0,1] --resize to S, SAM-normalise-->
    frozen SAM ViT blocks, a Multiscale Adapter after each  (adapter.py)   Z_tran (B,g,g,D)
    frozen SAM neck -> linear Task Head T                   (heads.py)     F      (B,C,g,g)
    RGA: second pass on noisy images, S=|F_gau-F|, Eq. 6    (rga.py)       F_fin  (B,C,g,g)
    prompt-free SAM mask decoder (no points/boxes/mask)                    M      (B,1,4g,4g)
    GAP(M) + FC layers (M in logits)                        (heads.py)     logit  (B,)

The forward pass never sees labels: it computes the noisy features for every noised sample
(a random ``noise_p`` share in training, all at evaluation) and returns them; ``losses`` picks
the real (or fake, or all) ones for ``L_rec`` from ``batch["label"]`` (rga.py explains why).

``L = L_seg + lambda_rec * L_rec + lambda_cls * L_cls`` (Eq. 8, both lambdas 0.1).
``L_seg`` is pixel BCE against ``batch["mask"]`` (the paper names no segmentation loss;
``seg_loss="bce+dice"`` adds a soft Dice term per image), averaged over the faces whose mask is
known (a fake without a mask video, ``batch["has_mask"]`` False, has no ``L_seg``; :func:`dfnb.registry.known_masks`),
``L_cls`` BCE on ``batch["label"]``,
``L_rec`` Eq. 7 on the noised samples that ``rec_on`` selects (rga.py).

Class balance (``balance=True``, default; the paper says nothing).  FF++ and ``ffpp-syn`` hold
four fakes per real face.  Unweighted, a real face's all-zero target mask counts a fifth as
much as the fakes' region masks: the decoder learns "where a forgery of this face would be"
and marks it on real faces too, and GAP of that mask cannot separate the classes.
:func:`class_weights` weighs each face of a batch so that the real and the fake faces carry
half of ``L_seg`` and of ``L_cls`` each.

Trainable: adapters, task head, RGA enhancer, mask decoder, classification head (Fig. 2).
Frozen: SAM's image encoder (patch embedding, blocks, neck) and prompt encoder, and the parts
of the decoder that prompt-free single-mask decoding never uses (IoU head, the hypernetwork
MLPs of the three multimask outputs).  The baselines (baselines.py) reuse this class with
other switches.

Trainable share (``trainable_parameter_share``; trainable / all parameters of the model).
The paper reports 18.64% for DADF on SAM ViT-H.  With our reading (adapter after each of the 32
blocks, branch width 256 from Fig. 3, learnable 1280x1280 skip of Eq. 3) it is 26.4% on ViT-H
(228.2M of 865.8M); a branch width of 176 would give 18.7%, so the paper's adapters are
probably narrower or lighter than Fig. 3 suggests.  micro-SAM DADF: 1.28M of 3.47M (36.8%),
because the decoder is large relative to a 4-block encoder.  :meth:`DADF.parameter_counts`
gives the split per part.

Prompt-free decoding: the decoder gets no sparse prompt tokens (or ``prompt_tokens``
learnable ones, for the ``sam_prompt`` baseline) and the "no mask" dense embedding; its
single-mask output token (SAM's token 0) is the forgery mask.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dfnb.models.dadf.adapter import AdaptedEncoder, build_adapters
from dfnb.models.dadf.heads import MaskClassificationHead, TaskHead
from dfnb.models.dadf.rga import NOISE_STD, REC_ON, ReconstructionGuidedAttention, noise_mask, reconstruction_loss
from dfnb.models.dadf.sam import (OFFICIAL_TYPES, SAM_CONFIGS, build_sam, count_parameters, decode_masks, load_sam,
                                  trainable_parameter_share)
from dfnb.registry import known_masks, register_model

__all__ = ["DADF", "class_weights", "dadf", "make_sam", "trainable_parameter_share", "count_parameters"]


class DADF(nn.Module):
    """SAM + Multiscale Adapters + RGA + prompt-free decoder + mask classification head.

    Args:
        sam: a ``segment_anything.modeling.Sam`` (see :func:`make_sam`).
        adapter: ``"multiscale"``, ``"B"``, ``"C"``, ``"D"`` or ``None`` (no adapters).
        adapter_dim: branch width (default: encoder width / 5, Fig. 3).
        adapter_position: ``"after"`` each block (text) or ``"before"`` (Eq. 1).
        rga: use Reconstruction Guided Attention and ``L_rec``.
        rec_on: ``"real"`` | ``"fake"`` | ``"all"``: the samples ``L_rec`` is computed on (Table 6).
        lambda_rec, lambda_cls: loss weights (Eq. 8).
        noise_std, noise_p: RGA white noise (std 1e-3 = variance 1e-6) and the share of training
            samples that get it.  eval_noise_seed: seed of the one noise image used at evaluation.
        softmax_over: RGA softmax axis, ``"spatial"`` or ``"channel"`` (rga.py).
        freeze_encoder: freeze SAM's image encoder (False = full fine-tuning baseline).
        prompt_tokens: number of learnable sparse prompt tokens fed to the decoder (0 = none).
        seg_loss: ``"bce"`` or ``"bce+dice"``.
        cls_hidden: hidden width of the classification head.
        balance: weigh real and fake faces equally in ``L_seg`` and ``L_cls`` (:func:`class_weights`).
    """

    def __init__(self, sam: nn.Module, adapter: str | None = "multiscale", adapter_dim: int | None = None,
                 adapter_position: str = "after", rga: bool = True, rec_on: str = "real",
                 lambda_rec: float = 0.1, lambda_cls: float = 0.1, noise_std: float = NOISE_STD,
                 noise_p: float = 0.5, eval_noise_seed: int = 0, softmax_over: str = "spatial",
                 freeze_encoder: bool = True, prompt_tokens: int = 0, seg_loss: str = "bce",
                 cls_hidden: int = 16, balance: bool = True) -> None:
        super().__init__()
        if rec_on not in REC_ON:
            raise ValueError(f"rec_on must be one of {REC_ON}, got {rec_on!r}")
        if seg_loss not in ("bce", "bce+dice"):
            raise ValueError(f"seg_loss must be 'bce' or 'bce+dice', got {seg_loss!r}")
        enc = sam.image_encoder
        dim, out = enc.patch_embed.proj.out_channels, sam.mask_decoder.transformer_dim
        self.config: dict[str, Any] = dict(getattr(sam, "config", {}))
        self.encoder = AdaptedEncoder(enc, build_adapters(dim, len(enc.blocks), adapter, adapter_dim),
                                      adapter_position)
        self.prompt_encoder = sam.prompt_encoder
        self.mask_decoder = sam.mask_decoder
        self.register_buffer("pixel_mean", sam.pixel_mean.clone(), persistent=False)
        self.register_buffer("pixel_std", sam.pixel_std.clone(), persistent=False)
        self.task_head = TaskHead(out)
        self.rga = ReconstructionGuidedAttention(out, softmax_over) if rga else None
        self.cls_head = MaskClassificationHead(cls_hidden)
        self.prompt = nn.Parameter(torch.randn(1, prompt_tokens, out) * 0.02) if prompt_tokens > 0 else None
        self.adapter, self.rec_on, self.seg_loss, self.balance = adapter, rec_on, seg_loss, bool(balance)
        self.lambda_rec, self.lambda_cls = float(lambda_rec), float(lambda_cls)
        self.noise_std, self.noise_p, self.eval_noise_seed = float(noise_std), float(noise_p), int(eval_noise_seed)
        for p in enc.parameters():
            p.requires_grad_(not freeze_encoder)
        for p in self.prompt_encoder.parameters():
            p.requires_grad_(False)
        # Prompt-free decoding reads SAM's single-mask output only: the IoU head and the three
        # multimask hypernetwork MLPs cannot change it, so they are frozen (not counted as trainable).
        unused = [self.mask_decoder.iou_prediction_head, *self.mask_decoder.output_hypernetworks_mlps[1:]]
        for p in (q for mod in unused for q in mod.parameters()):
            p.requires_grad_(False)

    @property
    def img_size(self) -> int:
        return self.encoder.encoder.img_size

    def parameter_counts(self) -> dict[str, tuple[int, int]]:
        """``{part: (parameters, trainable parameters)}`` for the encoder, adapters, heads, decoder."""
        parts = {"sam_encoder": self.encoder.encoder, "adapters": self.encoder.adapters,
                 "task_head": self.task_head, "rga": self.rga, "prompt_encoder": self.prompt_encoder,
                 "mask_decoder": self.mask_decoder, "cls_head": self.cls_head}
        out = {k: (count_parameters(m), count_parameters(m, True)) for k, m in parts.items() if m is not None}
        if self.prompt is not None:
            out["prompt"] = (self.prompt.numel(), self.prompt.numel() * self.prompt.requires_grad)
        out["total"] = (count_parameters(self), count_parameters(self, True))
        return out

    # ------------------------------------------------------------------ forward
    def _noise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(noised (B,) bool, noise for the noised samples (n, 3, S, S))."""
        b = x.shape[0]
        if self.training:
            noised = noise_mask(b, self.noise_p, x.device)
            return noised, torch.randn_like(x[noised]) * self.noise_std
        g = torch.Generator().manual_seed(self.eval_noise_seed)
        one = torch.randn((1, *x.shape[1:]), generator=g).to(x.device, x.dtype) * self.noise_std
        return torch.ones(b, dtype=torch.bool, device=x.device), one.expand(b, -1, -1, -1)

    def encode(self, x01: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] at the encoder size ``(B, 3, S, S)`` -> ``F = T(Phi(x))`` ``(B, C, g, g)``."""
        return self.task_head(self.encoder((x01 - self.pixel_mean) / self.pixel_std))

    def decode(self, feats: torch.Tensor) -> torch.Tensor:
        """Prompt-free SAM decoding: ``(B, C, g, g)`` -> mask logits ``(B, 1, 4g, 4g)``."""
        b, c = feats.shape[:2]
        sparse = self.prompt.expand(b, -1, -1) if self.prompt is not None else feats.new_zeros(b, 0, c)
        dense = self.prompt_encoder.no_mask_embed.weight.view(1, c, 1, 1).expand(b, c, *feats.shape[-2:])
        pe = self.prompt_encoder.pe_layer(feats.shape[-2:]).unsqueeze(0)
        masks, _ = decode_masks(self.mask_decoder, feats, pe, sparse, dense)
        return masks[:, :1]

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images ``(B, 3, H, W)`` float in [0, 1] -> dict:

        ``logit (B,)``, ``mask_logit (B, 1, H, W)``, ``features (B, C, g, g)`` (``F_final``),
        ``attention (B, 1, g, g)`` (RGA attention averaged over channels; absent without RGA),
        and for the losses ``feat_clean``/``feat_noisy (B, C, g, g)`` and ``noised (B,)``.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        s = self.img_size
        x = images if (h, w) == (s, s) else F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False)
        b = x.shape[0]
        out: dict[str, torch.Tensor] = {}
        if self.rga is not None:
            _warn_if_bf16(x.device.type)
            noised, noise = self._noise(x)
            both = self.encode(torch.cat([x, x[noised] + noise]))  # one batch: B clean + n noisy
            f = both[:b]
            idx = torch.arange(b, device=x.device)
            idx[noised] = b + torch.arange(int(noised.sum()), device=x.device)
            f_gau = both[idx]  # = f for samples without noise
            feats, attn = self.rga(f, f_gau)
            out.update(feat_clean=f, feat_noisy=f_gau, noised=noised, attention=attn.mean(1, keepdim=True))
        else:
            feats = self.encode(x)
        low = self.decode(feats)
        out["logit"] = self.cls_head(low)
        out["mask_logit"] = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
        out["features"] = feats
        return out

    # ------------------------------------------------------------------ losses
    def losses(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``{"loss", "seg", "rec", "cls"}``: Eq. 8 (``loss`` differentiable, parts detached)."""
        for k in ("mask", "label"):
            if k not in batch:
                raise KeyError(f"DADF.losses needs batch[{k!r}]")
        logits = out["mask_logit"]
        mask = batch["mask"].to(logits.device, logits.dtype)
        if mask.shape != logits.shape:
            raise ValueError(f"batch['mask'] is {tuple(mask.shape)} but the predicted mask is {tuple(logits.shape)}")
        label = batch["label"].to(logits.device).view(-1)
        w = class_weights(label) if self.balance else torch.ones_like(label, dtype=logits.dtype)
        seg_i = F.binary_cross_entropy_with_logits(logits, mask, reduction="none").flatten(1).mean(1)
        if self.seg_loss == "bce+dice":
            p = logits.sigmoid().flatten(1)
            t = mask.flatten(1)
            seg_i = seg_i + 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
        known = known_masks(batch, label.numel()).to(label.device)
        w_seg = class_weights(label[known]) if self.balance else torch.ones_like(seg_i[known])
        seg = (w_seg * seg_i[known]).mean() if known.any() else logits.new_zeros(())
        cls = (w * F.binary_cross_entropy_with_logits(out["logit"], label.float(), reduction="none")).mean()
        if self.rga is not None:
            rec = reconstruction_loss(out["feat_clean"], out["feat_noisy"], label, out["noised"], self.rec_on)
        else:
            rec = logits.new_zeros(())
        loss = seg + self.lambda_rec * rec + self.lambda_cls * cls
        return {"loss": loss, "seg": seg.detach(), "rec": rec.detach(), "cls": cls.detach()}


def _warn_if_bf16(device_type: str) -> None:
    """RGA under bf16 autocast: the features' rounding (8 significant bits) exceeds the change RGA's noise makes."""
    if torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.bfloat16:
        warnings.warn("DADF runs under bf16 autocast, which rounds the encoder's features more coarsely than RGA's "
                      "noise changes them: S = |F_gau - F| is then mostly rounding. Use precision fp16 or fp32 "
                      "(dfnb run --precision fp16)", stacklevel=3)


def class_weights(labels: torch.Tensor) -> torch.Tensor:
    """``(B,)`` weights, mean 1, under which the real (0) and the fake (1) faces of a batch weigh half each.

    A face of a class with ``n_c`` members among ``B`` gets ``B / (2 n_c)``; a batch of one class only
    gets weight 1 everywhere (nothing to balance).  E.g. labels ``[0, 1, 1, 1]`` -> ``[2, 2/3, 2/3, 2/3]``.
    """
    y = labels.view(-1).float()
    b, n_fake = y.numel(), float(y.sum())
    if n_fake in (0.0, float(b)):
        return torch.ones_like(y)
    return torch.where(y > 0.5, b / (2 * n_fake), b / (2 * (b - n_fake)))


# ---------------------------------------------------------------------- factories

def make_sam(model_type: str | None = None, sam_checkpoint: str | None = None, micro_sam_path: str | None = None,
             img_size: int | None = None, pretrained: bool = True) -> nn.Module:
    """The SAM a factory starts from.

    - ``pretrained=False``: a randomly initialised SAM of ``model_type`` (default micro) at
      ``img_size``, silently; this is how ``dfnb.engine.load_model`` rebuilds a trained DADF
      whose weights then come from its own checkpoint (paths are not allowed with it).

    - ``sam_checkpoint`` given: Meta's checkpoint; ``model_type`` (``vit_b``/``vit_l``/``vit_h``)
      is checked against it, or inferred from it when ``None`` (a dfnb micro-SAM file is
      recognised too).  Default ``img_size`` 1024.
    - otherwise micro-SAM (``model_type`` ``None`` or ``"micro"``): from ``micro_sam_path`` when
      given, else randomly initialised with a warning.  Default ``img_size`` 128.
    - an official ``model_type`` without a checkpoint: random weights, with a warning.
    """
    if not pretrained:
        if sam_checkpoint is not None or micro_sam_path is not None:
            raise ValueError("pretrained=False builds a randomly initialised SAM; do not pass a checkpoint path")
        return build_sam(model_type or "micro", img_size)
    if sam_checkpoint is not None:
        if model_type == "micro":
            raise ValueError("sam_checkpoint is for Meta's vit_b/vit_l/vit_h checkpoints; "
                             "pass a micro-SAM file as micro_sam_path")
        if micro_sam_path is not None:
            raise ValueError("give sam_checkpoint or micro_sam_path, not both")
        return load_sam(model_type, sam_checkpoint, img_size)
    model_type = model_type or "micro"
    if model_type == "micro":
        if micro_sam_path is not None:
            return load_sam("micro", micro_sam_path, img_size)
        warnings.warn("micro-SAM is randomly initialised (micro_sam_path=None): run the micro-SAM "
                      "pretraining chapter and pass its checkpoint as micro_sam_path", stacklevel=3)
        return load_sam("micro", None, img_size)
    if model_type in OFFICIAL_TYPES:
        if micro_sam_path is not None:
            raise ValueError(f"micro_sam_path is for model_type='micro', not {model_type!r}")
        warnings.warn(f"SAM {model_type} is randomly initialised: pass sam_checkpoint=PATH to Meta's "
                      "checkpoint", stacklevel=3)
    return load_sam(model_type, None, img_size)


_SAM_KWARGS = ("model_type", "sam_checkpoint", "micro_sam_path", "img_size", "pretrained")


def build_on_sam(name: str, kwargs: dict[str, Any], make: Any) -> nn.Module:
    """Shared factory body: SAM from ``kwargs``' SAM arguments, ``make(sam, **rest)``, ``dfnb_arch``.

    ``dfnb_arch`` (what engine checkpoints record) names the resolved ``model_type`` and
    ``img_size`` instead of checkpoint paths, plus ``pretrained=True``: ``load_model`` rebuilds
    the architecture with ``pretrained=False`` (no SAM file needed) and loads the trained weights.
    """
    kw = dict(kwargs)
    device = kw.pop("device", "cpu")
    sam = make_sam(*(kw.pop(k, None) for k in _SAM_KWARGS[:4]), pretrained=kw.pop("pretrained", True))
    model = make(sam, **kw).to(device)
    cfg = getattr(sam, "config", {})
    for t, ref in SAM_CONFIGS.items():  # a SAM built from a standard architecture: rebuildable by its type
        if set(cfg) <= set(ref) and all(  # (a hybrid micro-SAM's extra keys: not rebuildable from its type)
                list(cfg.get(k, ())) == list(v) if isinstance(v, tuple) else cfg.get(k) == v
                for k, v in ref.items() if k != "img_size"):
            model.dfnb_arch = {"name": name, "kwargs": dict(kw, model_type=t, img_size=cfg["img_size"], pretrained=True)}
    return model


@register_model("dadf")
def dadf(**kwargs: Any) -> DADF:
    """DADF on micro-SAM (default, 128 px) or on an official SAM (``sam_checkpoint=PATH``).

    SAM arguments (see :func:`make_sam`): ``model_type``, ``sam_checkpoint``, ``micro_sam_path``,
    ``img_size``, ``pretrained``; ``device``; the rest go to :class:`DADF` (``adapter``, ``rga``,
    ``rec_on``, ``lambda_rec``, ``lambda_cls``, ``adapter_dim``, ``adapter_position``, ``noise_p``,
    ``softmax_over``, ``seg_loss`` ...).
    """
    return build_on_sam("dadf", kwargs, DADF)
