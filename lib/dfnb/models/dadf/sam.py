"""Segment Anything (SAM) built from Meta's ``segment-anything`` package: official or micro.

Three kinds of SAM, one architecture (``ImageEncoderViT`` + ``PromptEncoder`` +
``MaskDecoder`` with a ``TwoWayTransformer``):

- the official ``vit_b`` / ``vit_l`` / ``vit_h`` models, loaded from Meta's checkpoints
  (``load_sam("vit_h", "sam_vit_h_4b8939.pth")``).  Their native input is 1024 px; another
  ``img_size`` (a multiple of 16) interpolates the absolute position embedding (bicubic) and
  the relative position tables of the global-attention blocks (linear) of the checkpoint;
- **micro-SAM**, the same architecture at 128 px (patch 8 -> a 16x16 token grid, 4 blocks of
  width 192, 3 heads, window 8, global attention in blocks 1 and 3, 128-channel neck and
  decoder) that the book pretrains itself on promptable segmentation of its synthetic faces
  (``dfnb.models.dadf.pretrain``), because no SAM checkpoint may be fetched by default;
- **hybrid micro-SAM** (config ``"hybrid": "lite0", "hybrid_stage": 2``): micro-SAM whose patch
  embedding is ImageNet EfficientNet-lite0's stem up to stride 8 (:mod:`dfnb.models.dadf.hybrid`).
  The config is saved with the checkpoint, so :func:`load_sam` rebuilds it.

Every checkpoint is read with ``torch.load(..., weights_only=True)`` and checked against the
model it is loaded into: a missing / unexpected key or a shape mismatch is a ``ValueError``
that says which SAM the checkpoint looks like (from its patch-embedding width, patch size and
block count).

Shapes: images ``(B, 3, S, S)`` normalised with :func:`normalize`; encoder output
``(B, C_out, S/p, S/p)``; decoder masks ``(B, 1, 4*S/p, 4*S/p)``.
"""
from __future__ import annotations

import math
import os
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from torch import nn

#: SAM's pixel statistics (0-255 scale in segment-anything), rescaled to images in [0, 1].
PIXEL_MEAN = (123.675 / 255, 116.28 / 255, 103.53 / 255)
PIXEL_STD = (58.395 / 255, 57.12 / 255, 57.375 / 255)

#: Architecture of each SAM.  ``img_size`` is the native (pretraining) input size.
SAM_CONFIGS: dict[str, dict[str, Any]] = {
    "vit_b": dict(img_size=1024, patch_size=16, embed_dim=768, depth=12, num_heads=12,
                  global_attn_indexes=(2, 5, 8, 11), window_size=14, out_chans=256,
                  decoder_mlp_dim=2048, decoder_heads=8, iou_hidden=256, mask_in_chans=16),
    "vit_l": dict(img_size=1024, patch_size=16, embed_dim=1024, depth=24, num_heads=16,
                  global_attn_indexes=(5, 11, 17, 23), window_size=14, out_chans=256,
                  decoder_mlp_dim=2048, decoder_heads=8, iou_hidden=256, mask_in_chans=16),
    "vit_h": dict(img_size=1024, patch_size=16, embed_dim=1280, depth=32, num_heads=16,
                  global_attn_indexes=(7, 15, 23, 31), window_size=14, out_chans=256,
                  decoder_mlp_dim=2048, decoder_heads=8, iou_hidden=256, mask_in_chans=16),
    "micro": dict(img_size=128, patch_size=8, embed_dim=192, depth=4, num_heads=3,
                  global_attn_indexes=(1, 3), window_size=8, out_chans=128,
                  decoder_mlp_dim=512, decoder_heads=4, iou_hidden=128, mask_in_chans=16),
}
OFFICIAL_TYPES = ("vit_b", "vit_l", "vit_h")
MICRO_FORMAT = "dfnb-micro-sam-v1"


def sam_config(model_type: str, img_size: int | None = None) -> dict[str, Any]:
    """The architecture dict of ``model_type`` (``micro``/``vit_b``/``vit_l``/``vit_h``) at ``img_size``."""
    if model_type not in SAM_CONFIGS:
        raise ValueError(f"unknown SAM model_type {model_type!r}; choose one of {sorted(SAM_CONFIGS)}")
    cfg = dict(SAM_CONFIGS[model_type])
    if img_size is not None:
        if img_size % cfg["patch_size"]:
            raise ValueError(f"img_size {img_size} is not a multiple of {model_type}'s patch size {cfg['patch_size']}")
        cfg["img_size"] = int(img_size)
    cfg["global_attn_indexes"] = tuple(cfg["global_attn_indexes"])
    return cfg


def build_sam(model_type: str = "micro", img_size: int | None = None, config: dict | None = None,
              pretrained_stem: bool = True) -> Sam:
    """A randomly initialised SAM of ``model_type`` (or of an explicit ``config``) in eval mode.

    Pixel mean/std are SAM's, scaled to images in [0, 1].  A ``config`` with ``"hybrid": "lite0"``
    and ``"hybrid_stage"`` (a lite0 stage whose stride is ``patch_size``: stage 2 for micro-SAM) gets a
    :class:`~dfnb.models.dadf.hybrid.HybridPatchEmbed` instead of ``PatchEmbed``, with ImageNet
    weights unless ``pretrained_stem=False`` (``load_sam``: the checkpoint brings them).
    """
    cfg = dict(config) if config is not None else sam_config(model_type, img_size)
    grid = cfg["img_size"] // cfg["patch_size"]
    d = cfg["out_chans"]
    encoder = ImageEncoderViT(
        img_size=cfg["img_size"], patch_size=cfg["patch_size"], embed_dim=cfg["embed_dim"],
        depth=cfg["depth"], num_heads=cfg["num_heads"], mlp_ratio=4,
        norm_layer=partial(nn.LayerNorm, eps=1e-6), qkv_bias=True, use_rel_pos=True,
        global_attn_indexes=tuple(cfg["global_attn_indexes"]), window_size=cfg["window_size"],
        out_chans=d,
    )
    if cfg.get("hybrid") is not None:
        from dfnb.models.dadf.hybrid import HybridPatchEmbed, check_hybrid

        check_hybrid(cfg)
        encoder.patch_embed = HybridPatchEmbed(cfg["hybrid_stage"], cfg["embed_dim"], pretrained_stem)
    sam = Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=d, image_embedding_size=(grid, grid),
            input_image_size=(cfg["img_size"], cfg["img_size"]), mask_in_chans=cfg["mask_in_chans"],
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=d, mlp_dim=cfg["decoder_mlp_dim"],
                                          num_heads=cfg["decoder_heads"]),
            transformer_dim=d, iou_head_depth=3, iou_head_hidden_dim=cfg["iou_hidden"],
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )
    sam.config = cfg  # type: ignore[attr-defined]  (kept for saving / checking)
    return sam.eval()


def normalize(sam: Sam, images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1] -> SAM-normalised ``(B, 3, S, S)`` at the encoder's size ``S``."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    s = sam.image_encoder.img_size
    if images.shape[-2:] != (s, s):
        images = F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False)
    return (images - sam.pixel_mean) / sam.pixel_std


def decode_masks(
    decoder: MaskDecoder,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's ``MaskDecoder.predict_masks`` with one prompt set per image (batched).

    The package's decoder repeats each image embedding once per prompt set, which is right
    for one image with many prompts but gives ``B*B`` masks for ``B`` images with one prompt
    set each; this helper runs the same modules image-by-prompt-set.

    Args:
        image_embeddings: ``(B, C, h, w)``.  image_pe: ``(1, C, h, w)``.
        sparse: ``(B, N, C)`` prompt tokens (``N`` may be 0).  dense: ``(B, C, h, w)``.
    Returns:
        masks ``(B, K, 4h, 4w)`` logits for SAM's ``K = 4`` mask tokens (token 0 = the
        single-mask output), iou ``(B, K)``.
    """
    b, c, h, w = image_embeddings.shape
    out_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
    src = image_embeddings + dense
    pos = image_pe.expand(b, -1, -1, -1)
    hs, src = decoder.transformer(src, pos, tokens)
    iou_out, mask_out = hs[:, 0], hs[:, 1: 1 + decoder.num_mask_tokens]
    up = decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper = torch.stack([mlp(mask_out[:, i]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1)
    bu, cu, hu, wu = up.shape
    masks = (hyper @ up.view(bu, cu, hu * wu)).view(bu, -1, hu, wu)
    return masks, decoder.iou_prediction_head(iou_out)


# --------------------------------------------------------------------------- checkpoints

def describe_state_dict(sd: dict[str, torch.Tensor]) -> str:
    """A one-line guess of which SAM a state dict belongs to (for error messages)."""
    w = sd.get("image_encoder.patch_embed.proj.weight")
    if w is None:
        some = ", ".join(list(sd)[:3])
        return f"no 'image_encoder.patch_embed.proj.weight' key (first keys: {some}); not a SAM state dict?"
    depth = len({k.split(".")[2] for k in sd if k.startswith("image_encoder.blocks.")})
    pos = sd.get("image_encoder.pos_embed")
    grid = tuple(pos.shape[1:3]) if pos is not None else None
    if any(k.startswith("image_encoder.patch_embed.stem.") for k in sd):
        return (f"embed_dim={w.shape[0]}, a CNN-stem (hybrid) patch embedding with {w.shape[1]} channels, "
                f"depth={depth}, token grid={grid} -> looks like a hybrid micro-SAM")
    desc = f"embed_dim={w.shape[0]}, patch_size={w.shape[-1]}, depth={depth}, token grid={grid}"
    for name, cfg in SAM_CONFIGS.items():
        if (cfg["embed_dim"], cfg["patch_size"], cfg["depth"]) == (w.shape[0], w.shape[-1], depth):
            return desc + f" -> looks like model_type={name!r}"
    return desc + " -> matches none of " + str(sorted(SAM_CONFIGS))


def infer_model_type(sd: dict[str, torch.Tensor]) -> str:
    """The ``model_type`` whose architecture matches a SAM state dict; ``ValueError`` if none."""
    desc = describe_state_dict(sd)
    if "looks like model_type=" not in desc:
        raise ValueError(f"cannot tell which SAM this checkpoint is: {desc}")
    return desc.split("model_type=")[1].strip("'")


def _read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """(state dict, saved micro-SAM config or None) from an official or a dfnb checkpoint."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SAM checkpoint not found: {path}")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and obj.get("format") == MICRO_FORMAT:
        return obj["state_dict"], dict(obj["config"])
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a SAM state dict (a dict of tensors)")
    return obj, None


def resize_position_tables(sd: dict[str, torch.Tensor], cfg: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Interpolate a SAM state dict's position tables to ``cfg['img_size']``.

    The absolute ``pos_embed (1, g, g, C)`` is resized bicubically; the relative tables
    ``rel_pos_h/w (2g-1, C/heads)`` of the global-attention blocks linearly (windowed blocks
    keep theirs: the window does not change).  Other keys are returned unchanged.
    """
    g = cfg["img_size"] // cfg["patch_size"]
    out = dict(sd)
    pos = out.get("image_encoder.pos_embed")
    if pos is not None and pos.shape[1] != g:
        out["image_encoder.pos_embed"] = F.interpolate(
            pos.permute(0, 3, 1, 2).float(), size=(g, g), mode="bicubic", align_corners=False
        ).permute(0, 2, 3, 1).to(pos.dtype)
    for i in cfg["global_attn_indexes"]:
        for ax in ("h", "w"):
            k = f"image_encoder.blocks.{i}.attn.rel_pos_{ax}"
            if k in out and out[k].shape[0] != 2 * g - 1:
                t = out[k]
                out[k] = F.interpolate(t.T[None].float(), size=2 * g - 1, mode="linear",
                                       align_corners=False)[0].T.to(t.dtype)
    return out


def check_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """``ValueError`` listing missing / unexpected keys and shape mismatches of ``sd`` against ``model``."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        lines = [f"{what} does not match the model."]
        if missing:
            lines.append(f"  {len(missing)} missing keys, e.g. {missing[:3]}")
        if unexpected:
            lines.append(f"  {len(unexpected)} unexpected keys, e.g. {unexpected[:3]}")
        if shapes:
            lines.append(f"  {len(shapes)} shape mismatches, e.g. {shapes[:3]}")
        lines.append(f"  The checkpoint: {describe_state_dict(sd)}.")
        raise ValueError("\n".join(lines))


def load_sam(model_type: str | None, checkpoint: str | os.PathLike | None = None,
             img_size: int | None = None) -> Sam:
    """Build SAM of ``model_type`` and load ``checkpoint`` into it (validated).

    Args:
        model_type: ``"micro"``, ``"vit_b"``, ``"vit_l"``, ``"vit_h"``, or ``None`` to infer it
            from the checkpoint.
        checkpoint: Meta's ``.pth`` (a raw state dict) or a micro-SAM file written by
            :func:`save_micro_sam`; ``None`` -> random initialisation.
        img_size: encoder input size; default: the checkpoint's (micro) or 1024 (official).
            An official checkpoint at another size gets its position tables interpolated.
    Raises:
        ValueError: the checkpoint is another SAM than ``model_type`` (the message names the
            one it looks like), or keys / shapes do not match.
    """
    if checkpoint is None:
        if model_type is None:
            raise ValueError("give model_type or a checkpoint to infer it from")
        return build_sam(model_type, img_size)
    sd, saved_cfg = _read_checkpoint(checkpoint)
    if saved_cfg is not None:  # a dfnb micro-SAM file: its own config is the truth
        if model_type not in (None, "micro"):
            raise ValueError(f"{checkpoint} is a dfnb micro-SAM checkpoint but model_type={model_type!r} "
                             "(use model_type='micro' / micro_sam_path for it)")
        if img_size is not None and img_size != saved_cfg["img_size"]:
            raise ValueError(f"{checkpoint} is a micro-SAM pretrained at {saved_cfg['img_size']} px; "
                             f"img_size={img_size} does not match (images are resized inside the model)")
        sam = build_sam(config=saved_cfg, pretrained_stem=False)  # a hybrid stem's weights are in sd
        check_state_dict(sam, sd, f"micro-SAM checkpoint {checkpoint}")
    else:
        if model_type is None:
            model_type = infer_model_type(sd)
        if model_type == "micro":
            raise ValueError(f"{checkpoint} is not a dfnb micro-SAM file ({describe_state_dict(sd)}); "
                             "pass it as sam_checkpoint with its official model_type")
        cfg = sam_config(model_type, img_size)
        w = sd.get("image_encoder.patch_embed.proj.weight")
        if w is None or (w.shape[0], w.shape[-1]) != (cfg["embed_dim"], cfg["patch_size"]):
            raise ValueError(f"checkpoint {checkpoint} does not fit model_type={model_type!r} "
                             f"(embed_dim={cfg['embed_dim']}, patch_size={cfg['patch_size']}): "
                             f"{describe_state_dict(sd)}")
        sam = build_sam(config=cfg)
        sd = resize_position_tables(sd, cfg)
        check_state_dict(sam, sd, f"checkpoint {checkpoint} for model_type={model_type!r}")
    sam.load_state_dict(sd)
    return sam.eval()


def save_micro_sam(sam: Sam, path: str | os.PathLike, meta: dict | None = None) -> None:
    """Write a micro-SAM (its config, state dict and ``meta`` of plain values) to ``path``.

    An existing file is an error: results are never silently overwritten.
    """
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; remove it or choose another path")
    cfg = dict(sam.config)  # type: ignore[attr-defined]
    cfg["global_attn_indexes"] = list(cfg["global_attn_indexes"])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({"format": MICRO_FORMAT, "config": cfg, "meta": dict(meta or {}),
                "state_dict": {k: v.detach().cpu() for k, v in sam.state_dict().items()}}, path)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each shared tensor once)."""
    seen, n = set(), 0
    for p in module.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        n += p.numel()
    return n


def trainable_parameter_share(model: nn.Module) -> float:
    """Trainable parameters / all parameters of ``model`` (the paper reports 18.64% for DADF on SAM)."""
    total = count_parameters(model)
    return count_parameters(model, trainable_only=True) / total if total else math.nan
