"""The SAM baselines of DADF's Tables 1-4, in DADF's harness (same decoder, heads and losses).

- ``sam_full_ft``: SAM fully fine-tuned (Table 4's "Baseline (SAM)": no adapters, no RGA,
  every encoder weight trainable).
- ``sam_lora``: LoRA (rank ``r``, scale ``alpha / r``) on the ``qkv`` projection of every
  encoder block; the pretrained ``qkv`` is frozen, ``B`` starts at zero (the model starts as
  SAM).  The paper's reference [37] for LoRA; we adapt q, k and v together.
- ``sam_prompt``: SAM with a learnable prompt: ``prompt_tokens`` learnable sparse prompt
  embeddings in place of SAM's point/box tokens, frozen encoder.  The paper cites [30]
  (Learnable Ophthalmology SAM), which instead inserts a learnable prompt layer between
  encoder blocks; ours is the plain "learnable prompt tokens" reading, stated as such.

All three: mask decoder and classification head trainable, ``L = L_seg + 0.1 L_cls``
(``L_rec = 0``: no RGA).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from dfnb.models.dadf.dadf import DADF, build_on_sam
from dfnb.registry import register_model


class LoRALinear(nn.Module):
    """``y = W x + b + (alpha / r) * B A x`` around a frozen ``nn.Linear`` (``A (r, in)``, ``B (out, r)``)."""

    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float | None = None) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scale = (alpha if alpha is not None else rank) / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale


def add_lora(encoder: nn.Module, rank: int = 4, alpha: float | None = None) -> None:
    """Wrap ``blk.attn.qkv`` of every block of a SAM image encoder in :class:`LoRALinear` (in place)."""
    for blk in encoder.blocks:
        blk.attn.qkv = LoRALinear(blk.attn.qkv, rank, alpha)


@register_model("sam_full_ft")
def sam_full_ft(**kwargs: Any) -> DADF:
    """SAM fully fine-tuned (SAM arguments and ``device`` as ``dadf``)."""
    return build_on_sam("sam_full_ft", kwargs, lambda sam, **kw: DADF(sam, adapter=None, rga=False,
                                                                       freeze_encoder=False, **kw))


def _lora_model(sam: nn.Module, rank: int = 4, alpha: float | None = None, **kw: Any) -> DADF:
    model = DADF(sam, adapter=None, rga=False, freeze_encoder=True, **kw)
    add_lora(model.encoder.encoder, rank, alpha)  # after freezing: the LoRA factors stay trainable
    return model


@register_model("sam_lora")
def sam_lora(**kwargs: Any) -> DADF:
    """SAM + LoRA (``rank`` 4, ``alpha`` = rank) on every block's qkv projection; the rest of the encoder frozen."""
    return build_on_sam("sam_lora", kwargs, _lora_model)


@register_model("sam_prompt")
def sam_prompt(**kwargs: Any) -> DADF:
    """SAM + ``prompt_tokens`` (8) learnable prompt embeddings for the decoder; encoder frozen."""
    kwargs.setdefault("prompt_tokens", 8)
    return build_on_sam("sam_prompt", kwargs, lambda sam, **kw: DADF(sam, adapter=None, rga=False,
                                                                      freeze_encoder=True, **kw))
