"""The Complementary Learning (CL) block of FoCus (Sec. III-C, Fig. 3).

Our reading of the prose (the equations are missing from the text copy):

Scores.  Two MLPs, one per modality, give every token a scalar importance: s^rgb_i = MLP_rgb(t^rgb_i),
s^aux_i = MLP_aux(t^aux_i), i = 1..N (image tokens only, same spatial position i in both branches).

Competition.  The two scores of a position are concatenated and soft-maxed over the pair,
pi_i = softmax([s^rgb_i, s^aux_i]).

Hard selection with gradients.  g_i = one_hot(argmax_j (log pi_ij + G_ij)), G ~ Gumbel(0, 1), with the
straight-through estimator: forward uses g_i (exactly 0/1), backward uses the gradient of the relaxed
softmax((log pi_i + G_i) / tau) (``torch.nn.functional.gumbel_softmax(hard=True)`` up to float rounding).  S_i = g_i[aux] is
the binary substitution mask: 1 means the RGB token at i is replaced by the auxiliary (Sobel) token.
In ``eval()`` the noise is dropped (deterministic argmax of pi, still straight-through) so that maps are
reproducible; ``gumbel_at_eval=True`` keeps the noise.

Substitution.  t^fuse_i = g_i[rgb] * t^rgb_i + g_i[aux] * t^aux_i (= (1 - S_i) t^rgb_i + S_i t^aux_i).
Because g carries the relaxed gradient, both score MLPs receive gradients through pi.

Head.  t^fuse -> one transformer block -> LayerNorm -> mean over tokens -> linear -> z^fuse (B, 2).
Eq. 7:  L_cls = -sum_c 1[y = c] log softmax(z^fuse)_c.

Eq. 5 (fusion CAR map) lives in ``focus.py``: M^fuse = (1 - S) (.) M^rgb + S (.) M^aux, (.) = Hadamard.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp
from timm.models.vision_transformer import Block


def hard_gumbel_select(scores: torch.Tensor, tau: float = 1.0, noise: bool = True) -> torch.Tensor:
    """scores (..., 2) unnormalised -> one-hot selection (..., 2), hard forward, straight-through backward.

    The scores are soft-maxed over the last axis first (the paper's competition), then a hard Gumbel-softmax
    sample is drawn from that categorical distribution (``noise=False``: plain argmax, still straight-through).
    The result is ``hard + (soft - soft.detach())``: its forward value is exactly 0 or 1 (x - x == 0 in
    floating point, unlike ``hard - soft.detach() + soft``) and its gradient is that of the relaxed sample.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0; got {tau}")
    logits = F.log_softmax(scores, dim=-1)
    if noise:  # Gumbel(0, 1) = -log(Exp(1))
        logits = logits - torch.empty_like(logits).exponential_().log()
    soft = F.softmax(logits / tau, dim=-1)
    hard = F.one_hot(soft.argmax(dim=-1), scores.shape[-1]).to(soft.dtype)
    return hard + (soft - soft.detach())


class ComplementaryLearning(nn.Module):
    """(t_rgb, t_aux) each (B, N, D) -> {"logits" (B, 2), "sub_mask" (B, N), "select" (B, N, 2),
    "probs" (B, N, 2), "fused" (B, N, D), "feature" (B, D)}.  ``feature``: the pooled tokens the head sees.  ``sub_mask`` = 1 where the auxiliary token was taken."""

    def __init__(self, dim: int, num_heads: int = 6, mlp_ratio: float = 4.0, score_hidden: int | None = None,
                 tau: float = 1.0, num_classes: int = 2, gumbel_at_eval: bool = False):
        super().__init__()
        hidden = score_hidden or max(dim // 4, 8)
        self.score_rgb = Mlp(dim, hidden, out_features=1, act_layer=nn.GELU)
        self.score_aux = Mlp(dim, hidden, out_features=1, act_layer=nn.GELU)
        self.block = Block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.tau, self.gumbel_at_eval = tau, gumbel_at_eval

    def forward(self, t_rgb: torch.Tensor, t_aux: torch.Tensor) -> dict[str, torch.Tensor]:
        if t_rgb.shape != t_aux.shape:
            raise ValueError(f"RGB and auxiliary tokens differ in shape: {tuple(t_rgb.shape)} vs {tuple(t_aux.shape)}")
        scores = torch.cat([self.score_rgb(t_rgb), self.score_aux(t_aux)], dim=-1)  # (B, N, 2)
        sel = hard_gumbel_select(scores, self.tau, noise=self.training or self.gumbel_at_eval)
        fused = sel[..., :1] * t_rgb + sel[..., 1:] * t_aux
        feature = self.norm(self.block(fused)).mean(dim=1)
        return {"logits": self.head(feature), "sub_mask": sel[..., 1], "select": sel,
                "probs": scores.softmax(dim=-1), "fused": fused, "feature": feature}
