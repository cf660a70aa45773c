"""Pretraining micro-SAM on promptable segmentation (point and box prompts).

No SAM checkpoint may be downloaded by default, so the book trains its own small SAM the way
SAM itself was trained, on a much smaller task: given an image and one prompt (a positive
point inside a part, or that part's bounding box) predict the part's mask.  The chapter feeds
it the synthetic faces' part and object masks; this module takes any iterable of
``(image, [mask, mask, ...])``.

Per step, for each image ``masks_per_image`` non-empty part masks are drawn (one encoder pass
serves them all, as in SAM); with probability ``box_prob`` a mask's prompt is its box
(jittered by up to ``box_jitter`` of the box side per edge), otherwise one positive point
drawn uniformly inside it.  As in SAM, a single point is ambiguous, so point
prompts use SAM's three multimask outputs and only the best of them (lowest loss) is
trained; box prompts use the single-mask output.  Loss per prompt: pixel BCE + soft Dice on
the mask (upsampled to the input size) + MSE of the IoU head against the mask's real IoU.
(SAM used focal + Dice at 20:1 and iterative re-prompting; we keep it short.)

Optional feature distillation (``teacher="efficientnet_lite0"``, after MobileSAM): the loss gains
``distill_weight * L_distill``, the encoder's output against a frozen ImageNet teacher's features
of the same images (:mod:`dfnb.models.dadf.distill`; the learned projection is not saved).

Optional hybrid micro-SAM (``hybrid="lite0"``): the patch embedding is ImageNet EfficientNet-lite0's
stem (:mod:`dfnb.models.dadf.hybrid`); with ``freeze_stem`` (default) its weights and BatchNorm
statistics stay ImageNet's while the rest of the SAM trains, so segmentation does not wash them out.

Images: ``(3, H, W)`` tensors or ``(H, W, 3)`` arrays, float in [0, 1] or uint8; masks
``(H, W)``, bool / {0, 1} / float (> 0.5 is inside).  Both are resized to ``img_size``.
Empty masks cannot be prompted: they are skipped and counted in the returned history;
an image without any non-empty mask is an error.
"""
from __future__ import annotations

import math
import os
import warnings
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dfnb.models.dadf.distill import DEFAULT_STAGE, Distiller, FeatureTeacher, check_distill
from dfnb.models.dadf.sam import build_sam, decode_masks, sam_config, save_micro_sam

__all__ = ["pretrain_micro_sam", "promptable_miou", "segment_parts", "point_prompt", "box_prompt"]


def _image(x: Any, size: int) -> torch.Tensor:
    """An image -> ``(3, size, size)`` float32 in [0, 1]."""
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    if t.ndim != 3 or 3 not in (t.shape[0], t.shape[-1]):
        raise ValueError(f"an image must be (3, H, W) or (H, W, 3), got {tuple(t.shape)}")
    if t.shape[0] != 3:
        t = t.permute(2, 0, 1)
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    if t.min() < 0 or t.max() > 1:
        raise ValueError(f"image values must be in [0, 1] (or uint8), got [{float(t.min()):.3g}, {float(t.max()):.3g}]")
    return F.interpolate(t[None], size=(size, size), mode="bilinear", align_corners=False)[0]


def _mask(m: Any, size: int) -> torch.Tensor:
    """A mask -> ``(size, size)`` bool."""
    t = torch.as_tensor(np.asarray(m)) if not isinstance(m, torch.Tensor) else m
    if t.ndim != 2:
        raise ValueError(f"a part mask must be (H, W), got {tuple(t.shape)}")
    return F.interpolate(t.float()[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0] > 0.5


def point_prompt(mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One positive point ``(x, y)`` (pixel centres, float) drawn uniformly inside a bool ``(H, W)`` mask."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(ys) == 0:
        raise ValueError("cannot draw a point in an empty mask")
    i = int(torch.randint(len(ys), (1,), generator=generator))
    return torch.tensor([float(xs[i]), float(ys[i])])


def box_prompt(mask: torch.Tensor, jitter: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Box ``(x0, y0, x1, y1)`` of a bool ``(H, W)`` mask: its first and last pixel indices (SAM's
    convention), each edge moved by up to ``jitter`` x the box side (+1) and clipped to the image."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(ys) == 0:
        raise ValueError("cannot draw a box around an empty mask")
    box = torch.tensor([xs.min(), ys.min(), xs.max(), ys.max()], dtype=torch.float32)
    if jitter > 0:
        side = torch.tensor([box[2] - box[0] + 1, box[3] - box[1] + 1] * 2)
        box = box + (torch.rand(4, generator=generator) * 2 - 1) * jitter * side
    h, w = mask.shape
    return box.clamp(min=0).minimum(torch.tensor([w - 1, h - 1, w - 1, h - 1], dtype=torch.float32))


def _samples(samples: Iterable, size: int, k: int, gen: torch.Generator,
             stats: dict) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(image (3,S,S), k non-empty masks (k,S,S), drawn without replacement while there are
    enough) pairs; re-iterates ``samples`` when it can."""
    reiterable = iter(samples) is not samples
    while True:
        n = 0
        for item in samples:
            image, masks = item
            if isinstance(masks, (torch.Tensor, np.ndarray)) and np.ndim(masks) == 2:
                raise ValueError("give a list of part masks per image, not a single mask")
            ms = [_mask(m, size) for m in masks]
            full = [m for m in ms if m.any()]
            stats["empty_masks_skipped"] += len(ms) - len(full)
            if not full:
                raise ValueError(f"image {stats['images_seen']} has no non-empty part mask to prompt")
            stats["images_seen"] += 1
            n += 1
            order = torch.cat([torch.randperm(len(full), generator=gen) for _ in range(-(-k // len(full)))])[:k]
            yield _image(image, size), torch.stack([full[int(i)] for i in order])
        if not reiterable or n == 0:
            return


def _prompt_losses(sam, emb: torch.Tensor, masks: torch.Tensor, points: torch.Tensor | None,
                   boxes: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-prompt loss ``(n,)`` and IoU ``(n,)`` of the trained output, for one prompt kind."""
    pe = sam.prompt_encoder
    if points is not None:
        labels = torch.ones(len(points), 1, device=emb.device)  # all positive
        sparse, dense = pe(points=(points[:, None], labels), boxes=None, masks=None)
    else:
        sparse, dense = pe(points=None, boxes=boxes, masks=None)
    logits, iou_pred = decode_masks(sam.mask_decoder, emb, pe.get_dense_pe(), sparse, dense)
    logits, iou_pred = (logits[:, 1:], iou_pred[:, 1:]) if points is not None else (logits[:, :1], iou_pred[:, :1])
    s = masks.shape[-1]
    up = F.interpolate(logits, size=(s, s), mode="bilinear", align_corners=False)  # (n, K, S, S)
    t = masks[:, None].float().expand_as(up)
    bce = F.binary_cross_entropy_with_logits(up, t, reduction="none").mean(dim=(2, 3))
    p = up.sigmoid()
    dice = 1 - (2 * (p * t).sum((2, 3)) + 1) / (p.sum((2, 3)) + t.sum((2, 3)) + 1)
    loss_k = bce + dice  # (n, K)
    best = loss_k.argmin(dim=1)
    pred = (up > 0).float()
    iou = ((pred * t).sum((2, 3)) / ((pred + t).clamp(max=1).sum((2, 3))).clamp(min=1)).detach()  # (n, K)
    ar = torch.arange(len(best), device=emb.device)
    loss = loss_k[ar, best] + F.mse_loss(iou_pred[ar, best], iou[ar, best], reduction="none")
    return loss, iou[ar, best]


def pretrain_micro_sam(samples: Iterable[tuple[Any, Sequence[Any]]], *, steps: int = 2000, batch_size: int = 8,
                       lr: float = 3e-4, weight_decay: float = 0.01, img_size: int = 128, box_prob: float = 0.5,
                       box_jitter: float = 0.1, masks_per_image: int = 4, sam=None, seed: int = 0,
                       device: str = "cpu",
                       save_path: str | os.PathLike | None = None, meta: dict | None = None,
                       progress: bool = True, teacher: str | None = None, distill_weight: float = 1.0,
                       teacher_stage: str = DEFAULT_STAGE, hybrid: str | None = None, hybrid_stage: int = 2,
                       freeze_stem: bool = True):
    """Train a micro-SAM (all of it, a hybrid's frozen stem aside) on promptable segmentation.

    Args:
        samples: iterable of ``(image, list of part masks)``; a list / data set is cycled
            through until ``steps`` are done, a one-shot iterator ends training early (warned).
        steps: optimiser steps (AdamW, cosine decay to 0).  batch_size: images per step.
        masks_per_image: prompts per image and step (as SAM, several masks share one
            encoder pass; the decoder is cheap).
        sam: a SAM to continue from (default: a new micro-SAM at ``img_size``).
        hybrid, hybrid_stage: the new micro-SAM's patch embedding: ``None`` (SAM's patch convolution) or
            ``"lite0"``, ImageNet EfficientNet-lite0 up to ``hybrid_stage`` (:mod:`dfnb.models.dadf.hybrid`).
        freeze_stem: keep a hybrid stem's ImageNet weights and BatchNorm statistics fixed (the stem runs in
            eval mode, the rest trains); no-op for a SAM without a hybrid stem.  The returned SAM's
            ``requires_grad`` flags are as they were before training.
        save_path: where to write the result with :func:`save_micro_sam` (must not exist).
        meta: extra plain values stored with the checkpoint (e.g. the data set's name).
        teacher: ``None`` (segmentation only) or a frozen ImageNet teacher to distil from
            (``"efficientnet_lite0"``, ``_lite1``, ``_lite2``; :mod:`dfnb.models.dadf.distill`).
        distill_weight: weight of ``L_distill`` in the loss (>= 0).  teacher_stage: the teacher's
            stage whose output is the target (default ``blocks.4``: stride 16, 112 channels in lite0).
    Returns:
        ``(sam, history)``: the SAM in eval mode, and ``history`` with per-step ``loss`` (the
        promptable-segmentation loss) and ``iou`` lists, with a teacher also ``distill`` (unweighted
        ``L_distill`` per step), ``steps``, ``images_seen``, ``empty_masks_skipped`` (counted at every
        visit of an image).
    """
    check_distill(teacher, distill_weight, teacher_stage)
    if sam is not None and hybrid is not None:
        raise ValueError("hybrid builds a new micro-SAM; a given sam keeps its own patch embedding (pass one of them)")
    if save_path is not None and os.path.exists(save_path):
        raise FileExistsError(f"{save_path} exists; remove it or choose another path")
    # built before seeding: its random initialisation is overwritten by the ImageNet weights
    teacher_net = FeatureTeacher(teacher, teacher_stage) if teacher is not None else None
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if sam is None:
        cfg = sam_config("micro", img_size)
        sam = build_sam(config=cfg if hybrid is None else dict(cfg, hybrid=hybrid, hybrid_stage=hybrid_stage))
    stem = getattr(sam.image_encoder.patch_embed, "stem", None) if freeze_stem else None
    stem_flags = [p.requires_grad for p in stem.parameters()] if stem is not None else []
    if stem is not None:
        stem.requires_grad_(False)  # HybridPatchEmbed.train() then keeps it in eval mode
    sam = sam.to(device).train()
    size = sam.image_encoder.img_size
    params = [p for p in sam.parameters() if p.requires_grad]
    distiller = None
    if teacher_net is not None:  # its projection is trained with the SAM but is no part of it
        distiller = Distiller(teacher_net, sam.image_encoder.neck[0].out_channels).to(device)
        params += list(distiller.proj.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    stats = {"images_seen": 0, "empty_masks_skipped": 0}
    hist: dict[str, Any] = {"loss": [], "iou": []} if distiller is None else {"loss": [], "iou": [], "distill": []}
    if masks_per_image < 1:
        raise ValueError(f"masks_per_image must be >= 1, got {masks_per_image}")
    stream = _samples(samples, size, masks_per_image, gen, stats)
    done = 0
    for _ in tqdm(range(steps), desc="micro-SAM pretraining", disable=not progress):
        pairs = [p for _, p in zip(range(batch_size), stream)]
        if not pairs:
            break
        images = torch.stack([p[0] for p in pairs]).to(device)
        masks = torch.cat([p[1] for p in pairs]).to(device)  # (B*k, S, S)
        use_box = torch.rand(len(masks), generator=gen) < box_prob
        feats = sam.image_encoder((images - sam.pixel_mean) / sam.pixel_std)  # (B, C, g, g), after the neck
        emb = feats.repeat_interleave(masks_per_image, dim=0)  # one encoder pass, k prompts per image
        parts = []  # (per-prompt losses, IoUs) for the point group and the box group
        for sel, is_box in ((~use_box, False), (use_box, True)):
            if not sel.any():
                continue
            ms = masks[sel.to(device)]
            if is_box:
                prompt = torch.stack([box_prompt(m, box_jitter, gen) for m in ms.cpu()]).to(device)
                parts.append(_prompt_losses(sam, emb[sel.to(device)], ms, None, prompt))
            else:
                prompt = torch.stack([point_prompt(m, gen) for m in ms.cpu()]).to(device)
                parts.append(_prompt_losses(sam, emb[sel.to(device)], ms, prompt, None))
        losses, ious = zip(*parts)
        loss = torch.cat(losses).mean()
        total = loss
        if distiller is not None:
            distill = distiller(feats, images)
            total = loss + distill_weight * distill
            hist["distill"].append(float(distill.detach()))
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sched.step()
        done += 1
        hist["loss"].append(float(loss.detach()))
        hist["iou"].append(float(torch.cat(ious).mean()))
    if done < steps:
        warnings.warn(f"the samples ran out after {done} of {steps} steps", stacklevel=2)
    hist.update(steps=done, **stats)
    sam.eval()
    for p, flag in zip(stem.parameters() if stem is not None else (), stem_flags):
        p.requires_grad_(flag)
    if save_path is not None:
        extra = {} if distiller is None else dict(teacher=teacher, distill_weight=distill_weight,
                                                  teacher_stage=teacher_stage,
                                                  final_distill=hist["distill"][-1] if done else None)
        if hasattr(sam.image_encoder.patch_embed, "stem"):
            extra["freeze_stem"] = bool(freeze_stem)
        save_micro_sam(sam, save_path, dict(meta or {}, steps=done, lr=lr, batch_size=batch_size, seed=seed,
                                            box_prob=box_prob, masks_per_image=masks_per_image,
                                            final_loss=hist["loss"][-1] if done else None, **extra))
    return sam, hist


@torch.no_grad()
def segment_parts(sam, image: Any, masks: Sequence[Any], kind: str = "box", generator: torch.Generator | None = None,
                  device: str = "cpu") -> dict[str, torch.Tensor]:
    """Prompt ``sam`` once per non-empty mask of one image and return what it did.

    Box prompts are exact (no jitter) and use the single-mask output; a point prompt (one
    positive point drawn inside the mask) uses the multimask output SAM's IoU head ranks first.
    Returns ``{"keep": (K,) bool`` (which input masks were non-empty), ``"prompts": (n, 4)``
    boxes ``x0 y0 x1 y1`` or ``(n, 2)`` points ``x y`` in pixels of the encoder size ``S``,
    ``"masks": (n, S, S)`` bool truth, ``"pred": (n, S, S)`` bool prediction, ``"iou": (n,)}``.
    """
    if kind not in ("box", "point"):
        raise ValueError(f"kind must be 'box' or 'point', got {kind!r}")
    sam = sam.to(device).eval()
    size = sam.image_encoder.img_size
    all_m = [_mask(m, size) for m in masks]
    keep = torch.tensor([bool(m.any()) for m in all_m], dtype=torch.bool)
    full = [m for m in all_m if m.any()]
    if not full:
        raise ValueError("no non-empty part mask to prompt")
    x = _image(image, size)[None].to(device)
    emb = sam.image_encoder((x - sam.pixel_mean) / sam.pixel_std).expand(len(full), -1, -1, -1)
    ms = torch.stack(full).to(device)
    if kind == "box":
        prompts = torch.stack([box_prompt(m, 0.0) for m in full]).to(device)
        sparse, dense = sam.prompt_encoder(points=None, boxes=prompts, masks=None)
    else:
        prompts = torch.stack([point_prompt(m, generator) for m in full]).to(device)
        labels = torch.ones(len(full), 1, device=device)
        sparse, dense = sam.prompt_encoder(points=(prompts[:, None], labels), boxes=None, masks=None)
    logits, iou_pred = decode_masks(sam.mask_decoder, emb, sam.prompt_encoder.get_dense_pe(), sparse, dense)
    if kind == "box":
        logits = logits[:, :1]
    else:
        best = iou_pred[:, 1:].argmax(dim=1)
        logits = logits[:, 1:][torch.arange(len(full)), best][:, None]
    pred = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)[:, 0] > 0
    inter = (pred & ms).sum((1, 2)).float()
    union = (pred | ms).sum((1, 2)).float().clamp(min=1)
    return {"keep": keep, "prompts": prompts.cpu(), "masks": ms.cpu(), "pred": pred.cpu(), "iou": (inter / union).cpu()}


def promptable_miou(sam, samples: Iterable[tuple[Any, Sequence[Any]]], kind: str = "box", seed: int = 0,
                    device: str = "cpu", max_images: int | None = None) -> float:
    """Mean IoU of ``sam`` over one prompt per non-empty part mask (``kind`` = ``"box"`` or ``"point"``).

    Box prompts are exact (no jitter) and use the single-mask output; a point prompt uses the
    multimask output SAM's IoU head ranks first (see :func:`segment_parts`).
    """
    if kind not in ("box", "point"):
        raise ValueError(f"kind must be 'box' or 'point', got {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    size, ious = sam.image_encoder.img_size, []
    for n, (image, masks) in enumerate(samples):
        if max_images is not None and n >= max_images:
            break
        if not any(bool(_mask(m, size).any()) for m in masks):
            continue
        ious.extend(segment_parts(sam, image, masks, kind, gen, device)["iou"].tolist())
    if not ious:
        raise ValueError("no non-empty part mask to evaluate")
    return float(np.mean(ious))
