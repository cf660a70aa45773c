"""Class activation maps (Grad-CAM, Score-CAM) for timm CNNs and ViTs, and PRLE's primary-region mask.

Both CAMs are callables::

    cam = GradCAM(model, "layer4")              # or a module, or None for default_target_layer(model)
    maps = cam(images, target=None)             # images (B, C, H, W) -> maps (B, H, W) float32 in [0, 1]
    masks = primary_region_mask(maps)           # PRLE Eq. 4: 1 where the map is > 0

``model(images)`` may return class logits (B, C), one fake logit (B,) / (B, 1),
or a dict whose ``"logit"`` is the (B,) fake logit (the dfnb method contract).
``target`` picks the explained class: None = fake for a single logit, the
predicted class for (B, C) logits; an int, or one int per image.  For a single
logit, target 0 (real) explains the logit of real, -z.

The target layer's output may be a CNN feature map (B, K, h, w) or ViT tokens
(B, N, K); tokens lose their prefix (class / register / distillation) tokens,
``num_prefix_tokens`` of the timm model that owns the layer, and are laid out on
the patch grid (h, w).  Other layouts (e.g. channels-last Swin stages) take a
``reshape`` callable returning (B, K, h, w).

A call sets every module to eval mode and restores each module's own mode
afterwards, registers one forward hook on the target layer and removes it,
never touches parameters' ``.grad`` (gradients come from ``torch.autograd.grad``)
and keeps no activation.  If the layer's output is modified in place by the
next module (a BatchNorm followed by ``ReLU(inplace=True)``), the map is that of
the modified tensor; pick the activation module instead.
"""
from __future__ import annotations

import contextlib
import difflib
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GradCAM", "ScoreCAM", "default_target_layer", "primary_region_mask"]


# ----------------------------------------------------------------------------- target layer
def _family_layer(m: nn.Module) -> str | None:
    """Default layer (a name relative to ``m``) if ``m`` is a known timm / torchvision family."""
    cls = type(m).__name__
    blocks = getattr(m, "blocks", None)
    if hasattr(m, "patch_embed") and isinstance(blocks, nn.Sequential) and len(blocks) and hasattr(blocks[-1], "norm1"):
        # ViT: the last block's output feeds only the class token to the head, so its patch
        # tokens get no gradient; the input norm of the last block still does.
        return f"blocks.{len(blocks) - 1}.norm1"
    if cls == "Xception" and hasattr(m, "act4"):  # timm legacy_xception (the FF++ Xception)
        return "act4"
    if cls == "XceptionAligned":
        return "blocks"  # followed by an identity activation in timm's xception41/65/71
    if hasattr(m, "layer4"):  # ResNet, ResNeXt, SE-ResNet, Res2Net (timm and torchvision)
        return "layer4"
    if cls == "EfficientNet" and hasattr(m, "conv_head"):
        return "bn2" if hasattr(m, "bn2") else "conv_head"  # timm's bn2 includes the activation
    if cls == "VGG" and isinstance(getattr(m, "features", None), nn.Sequential):
        relus = [i for i, layer in enumerate(m.features) if isinstance(layer, nn.ReLU)]
        if relus:
            return f"features.{relus[-1]}"  # the last activation before the final max-pool
    return None


def default_target_layer(model: nn.Module) -> str:
    """Dotted name of a conventional CAM layer for common timm families.

    ============  ==========================  =========================================
    family        layer                       output
    ============  ==========================  =========================================
    ResNet        ``layer4``                  (B, K, H/32, W/32)
    EfficientNet  ``bn2`` (BN + activation)   (B, 1280, H/32, W/32) for b0
    Xception      ``act4`` (legacy_xception)  (B, 2048, h, w); ``blocks`` for xception41/65/71
    VGG           last ReLU of ``features``   before the final max-pool
    ViT           ``blocks.{-1}.norm1``        tokens (B, N, K)
    ============  ==========================  =========================================

    If ``model`` itself is not recognised, its submodules are searched (a dfnb
    method wrapping a timm backbone gets e.g. ``"backbone.layer4"``).
    Raises ValueError if nothing is recognised.
    """
    for name, m in model.named_modules():
        rel = _family_layer(m)
        if rel is not None:
            return f"{name}.{rel}" if name else rel
    raise ValueError(
        f"default_target_layer: no known family (resnet, efficientnet, xception, vgg, vit) in {type(model).__name__}; "
        "pass target_layer as a module or a dotted name"
    )


def _resolve_layer(model: nn.Module, target_layer) -> tuple[str, nn.Module]:
    if target_layer is None:
        target_layer = default_target_layer(model)
    names = dict(model.named_modules())
    if isinstance(target_layer, str):
        if target_layer not in names:
            close = difflib.get_close_matches(target_layer, list(names), n=5)
            raise ValueError(f"target_layer {target_layer!r} is not a submodule of {type(model).__name__}" + (f"; close: {close}" if close else ""))
        return target_layer, names[target_layer]
    if isinstance(target_layer, nn.Module):
        for name, m in names.items():
            if m is target_layer:
                return name, m
        raise ValueError(f"target_layer ({type(target_layer).__name__}) is not a submodule of the model")
    raise TypeError(f"target_layer: expected a module, a dotted name or None, got {type(target_layer).__name__}")


# ----------------------------------------------------------------------------- model plumbing
@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def _capture(layer: nn.Module, make_leaf: bool):
    """Record the layer's output(s) while active; with ``make_leaf``, an output that does not
    require grad (frozen weights) is replaced by a leaf that does, so gradients reach it."""
    outs: list[torch.Tensor] = []

    def hook(module, inputs, output):
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"target layer {type(module).__name__} returns {type(output).__name__}, not a tensor; pick a layer with a tensor output")
        if make_leaf and torch.is_grad_enabled() and not output.requires_grad:
            output = output.detach().requires_grad_(True)
            outs.append(output)
            return output
        outs.append(output)
        return None

    handle = layer.register_forward_hook(hook)
    try:
        yield outs
    finally:
        handle.remove()


def _logits(out) -> torch.Tensor:
    if isinstance(out, dict):
        if "logit" not in out:
            raise KeyError(f"model returned a dict without 'logit' (keys: {sorted(out)})")
        out = out["logit"]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"model returned {type(out).__name__}; expected logits (B,), (B, C) or a dict with 'logit'")
    if out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.dim() not in (1, 2):
        raise ValueError(f"model logits have shape {tuple(out.shape)}; expected (B,) or (B, C)")
    return out.float()


def _targets(logits: torch.Tensor, target) -> torch.Tensor:
    """Per-image class index (B,) long."""
    b = logits.shape[0]
    n_cls = 2 if logits.dim() == 1 else logits.shape[1]
    if target is None:
        t = torch.ones(b, dtype=torch.long, device=logits.device) if logits.dim() == 1 else logits.argmax(1)
    else:
        t = torch.as_tensor(target, dtype=torch.long, device=logits.device)
        if t.dim() == 0:
            t = t.expand(b)
        if t.shape != (b,):
            raise ValueError(f"target: expected None, an int or {b} ints, got shape {tuple(t.shape)}")
    if (t < 0).any() or (t >= n_cls).any():
        raise ValueError(f"target: class indices must lie in [0, {n_cls}); got {t.tolist()}")
    return t


def _class_logit(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    if logits.dim() == 1:
        return torch.where(t == 1, logits, -logits)
    return logits.gather(1, t[:, None])[:, 0]


def _class_prob(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    if logits.dim() == 1:
        return torch.sigmoid(_class_logit(logits, t))
    return logits.softmax(1).gather(1, t[:, None])[:, 0]


def _check_images(images) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images: expected a (B, C, H, W) tensor, got {getattr(images, 'shape', type(images).__name__)}")
    return images


def _resize_normalise(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) non-negative -> (B, H, W) bilinear, divided by each map's maximum (all-zero stays zero)."""
    cam = F.interpolate(cam[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0].clamp_min(0)
    peak = cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(torch.finfo(cam.dtype).tiny), torch.zeros_like(cam))


class _CAM:
    def __init__(self, model: nn.Module, target_layer=None, reshape: Callable | None = None, num_prefix_tokens: int | None = None):
        self.model = model
        self.layer_name, self.layer = _resolve_layer(model, target_layer)
        self.reshape = reshape
        self.num_prefix_tokens = num_prefix_tokens

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, target_layer={self.layer_name!r})"

    def _owner(self, attr: str):
        """The outermost module that has ``attr`` and contains the target layer."""
        for m in self.model.modules():
            if hasattr(m, attr) and any(sub is self.layer for sub in m.modules()):
                return m
        return None

    def _grid(self, act: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Layer output -> (B, K, h, w)."""
        if self.reshape is not None:
            act = self.reshape(act)
            if act.dim() != 4:
                raise ValueError(f"reshape must return (B, K, h, w), returned shape {tuple(act.shape)}")
            return act
        if act.dim() == 4:
            return act
        if act.dim() != 3:
            raise ValueError(f"target layer output has shape {tuple(act.shape)}; expected (B, K, h, w) or tokens (B, N, K); pass reshape=")
        b, n, k = act.shape
        prefix = self.num_prefix_tokens
        if prefix is None:
            owner = self._owner("num_prefix_tokens")
            prefix = int(owner.num_prefix_tokens) if owner is not None else None
        grid = None
        pe = getattr(self._owner("patch_embed"), "patch_embed", None)
        if pe is not None and prefix is not None and hasattr(pe, "patch_size"):
            ph, pw = (pe.patch_size, pe.patch_size) if isinstance(pe.patch_size, int) else pe.patch_size
            gh, gw = image_size[0] // ph, image_size[1] // pw
            if gh * gw == n - prefix:
                grid = (gh, gw)
        if grid is None:  # square grid, prefix known or 0 / 1
            for p in [prefix] if prefix is not None else [0, 1]:
                s = int(round((n - p) ** 0.5))
                if s * s == n - p:
                    prefix, grid = p, (s, s)
                    break
        if grid is None:
            raise ValueError(f"cannot lay {n} tokens on a patch grid (prefix tokens: {prefix}); pass num_prefix_tokens= or reshape=")
        return act[:, prefix:].reshape(b, grid[0], grid[1], k).permute(0, 3, 1, 2)


class GradCAM(_CAM):
    """Grad-CAM (Selvaraju et al., ICCV 2017), as PRLE's Eq. 3 writes it.

    For image i, target-layer maps H^k (k = 1..K, h x w = U x V) and the score y_i
    of the target class:

        w_k = (1 / UV) sum_{u,v} d y_i / d H^k_{u,v}
        A_i = ReLU( sum_k w_k H^k )                      (h, w)

    then A_i is resized bilinearly to the input (H, W) and divided by its maximum
    (A_i >= 0 after the ReLU, so zeros stay zeros and primary_region_mask's
    "A > 0" is unchanged by the normalisation; an all-zero map stays all zero).

    Score y_i: PRLE differentiates the sigmoid output y_hat = sigma(z); we
    differentiate the logit z (for a single logit, -z for target real).  Since
    d sigma(z) / dH = sigma'(z) dz / dH with one positive factor per image, the
    normalised map is the same, and it does not vanish when sigma saturates.  For
    (B, C) logits this is the original Grad-CAM's pre-softmax class score.

    Args:
        model: any ``nn.Module``; see the module docstring for its outputs.
        target_layer: module, dotted name, or None for :func:`default_target_layer`.
        reshape: optional callable, layer output -> (B, K, h, w).
        num_prefix_tokens: override for ViT outputs (default: the owning timm model's).

    Call: ``cam(images, target=None) -> (B, H, W)`` float32 in [0, 1] on the images' device.
    The batch is explained in one forward/backward pass (in eval mode, so images do
    not interact).
    """

    def __call__(self, images: torch.Tensor, target=None) -> torch.Tensor:
        images = _check_images(images)
        with _eval_mode(self.model), torch.enable_grad(), _capture(self.layer, make_leaf=True) as outs:
            logits = _logits(self.model(images))
            if len(outs) != 1:
                raise RuntimeError(f"target layer {self.layer_name!r} ran {len(outs)} times in one forward pass; pick a layer that runs once")
            t = _targets(logits, target)
            score = _class_logit(logits, t)
            if not score.requires_grad:
                raise RuntimeError("the model output does not depend on anything that requires grad (is the forward wrapped in torch.no_grad?)")
            (grad,) = torch.autograd.grad(score.sum(), outs[0], allow_unused=True)
            if grad is None:
                raise RuntimeError(f"the score does not depend on target layer {self.layer_name!r}")
        size = images.shape[-2:]
        act = self._grid(outs[0].detach().float(), size)
        grad = self._grid(grad.float(), size)
        weights = grad.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
        cam = F.relu((weights * act).sum(1))  # (B, h, w)
        return _resize_normalise(cam, size)


class ScoreCAM(_CAM):
    """Score-CAM (Wang et al., CVPR-W 2020): gradient-free, one forward pass per channel.

    For image X, target-layer maps H^k (k = 1..K) and target class c:

        M_k = norm( up(H^k) )              bilinear resize to (H, W), min-max scaled to [0, 1]
        w_k = P_c( X * M_k )               the model's probability of class c on the masked image
                                           (sigmoid of the class logit, or softmax for (B, C));
                                           w_k = 0 when H^k is constant (its mask is undefined)
        A   = ReLU( sum_k w_k H^k )        resized to (H, W), divided by its maximum

    The weights are the class probabilities themselves (no baseline is subtracted
    and no softmax is taken across channels).  The weighted sum is formed at the
    layer's resolution and then resized; resizing is linear, so this differs from
    summing resized maps only through where the ReLU sits.

    Costs B x K forward passes, run in chunks of ``batch_size`` masked images under
    ``torch.no_grad``; ``progress=True`` shows a tqdm bar.

    Args: as :class:`GradCAM`, plus ``batch_size`` and ``progress``.
    """

    def __init__(self, model: nn.Module, target_layer=None, batch_size: int = 64, reshape: Callable | None = None,
                 num_prefix_tokens: int | None = None, progress: bool = False):
        super().__init__(model, target_layer, reshape, num_prefix_tokens)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.progress = progress

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, target=None) -> torch.Tensor:
        from tqdm.auto import tqdm

        images = _check_images(images)
        size = images.shape[-2:]
        with _eval_mode(self.model):
            with _capture(self.layer, make_leaf=False) as outs:
                logits = _logits(self.model(images))
            if len(outs) != 1:
                raise RuntimeError(f"target layer {self.layer_name!r} ran {len(outs)} times in one forward pass; pick a layer that runs once")
            t = _targets(logits, target)
            act = self._grid(outs[0].float(), size)  # (B, K, h, w)
            b, k = act.shape[:2]
            flat = act.flatten(2)
            varies = (flat.amax(2) > flat.amin(2)).flatten()  # (B*K,)
            pairs = torch.nonzero(varies).flatten()
            weights = torch.zeros(b * k, device=act.device)
            chunks = range(0, pairs.numel(), self.batch_size)
            for s in tqdm(chunks, desc="Score-CAM", disable=not self.progress or len(chunks) < 2):
                idx = pairs[s : s + self.batch_size]
                bi, ki = idx // k, idx % k
                m = F.interpolate(act[bi, ki][:, None], size=size, mode="bilinear", align_corners=False)
                lo = m.amin(dim=(2, 3), keepdim=True)
                hi = m.amax(dim=(2, 3), keepdim=True)
                m = (m - lo) / (hi - lo).clamp_min(1e-12)
                out = _logits(self.model(images[bi] * m.to(images.dtype)))
                weights[idx] = _class_prob(out, t[bi])
        cam = F.relu((weights.view(b, k, 1, 1) * act).sum(1))
        return _resize_normalise(cam, size)


# ----------------------------------------------------------------------------- PRLE Eq. 4
def primary_region_mask(cam, tau: float = 0.0):
    """Binary primary-region mask of PRLE (Eq. 4): M = 1 where A > tau, else 0.

    The paper thresholds the Grad-CAM map A (Eq. 3, already passed through a
    ReLU) at zero: every pixel with positive attention is primary, tau = 0 with a
    strict inequality.  Eq. 4 is applied again in PRLE's dynamic stage to the fused
    map, whose small values were already zeroed by the fusion threshold tau_1 = 0.3
    (Eq. 6); pass ``tau`` to threshold directly instead.  Maps from
    :class:`GradCAM` / :class:`ScoreCAM` are divided by their maximum only, so
    "A > 0" is the same before and after normalisation.

    Args:
        cam: array or tensor of any shape, e.g. (B, H, W).
        tau: threshold (strict).
    Returns:
        float mask of the same shape and kind (tensor in, tensor out; numpy in, numpy out).
    """
    if isinstance(cam, torch.Tensor):
        if not torch.isfinite(cam).all():
            raise ValueError("cam: contains NaN or inf")
        return (cam > tau).to(cam.dtype if cam.is_floating_point() else torch.float32)
    import numpy as np

    a = np.asarray(cam)
    if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
        raise ValueError("cam: expected finite numbers")
    return (a > tau).astype(a.dtype if np.issubdtype(a.dtype, np.floating) else np.float32)
