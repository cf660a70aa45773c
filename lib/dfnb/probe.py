"""Linear probes of frozen features: how much real/fake information each layer of an encoder carries.

A frozen encoder is only as good a forgery detector as what its features already separate.  A linear
probe answers that without training the encoder: pool each layer's feature map over space, fit a
class-balanced logistic regression on the training faces, and score the test faces by AUC.

- :func:`layer_features`  pooled features of named sub-modules (forward hooks), one array per layer
- :func:`pool`            a feature map -> per-channel mean and standard deviation over space
- :func:`probe_auc`       standardise, fit on train, AUC on test (scikit-learn)
- :func:`probe_table`     every encoder and layer: test AUC of its probe
- :func:`encoder_layers`  the layers probed in a SAM (patch embedding, blocks, neck) or an EfficientNet
- :func:`probe_encoders`  :func:`probe_table` of whole encoders, every layer of :func:`encoder_layers`

Definitions.  For a feature map ``h`` of shape (C, h, w) (channels-last (h, w, C) maps, as SAM's ViT
blocks give, are transposed first), ``pool(h) = [mean_{u,v} h_c, std_{u,v} h_c]_{c=1..C}``, a vector of
2C numbers.  The probe is ``sklearn.linear_model.LogisticRegression(class_weight="balanced")`` on
standardised features (training mean and std); its score is the test frame AUC (``dfnb.metrics.auc``).
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch

__all__ = ["pool", "layer_features", "probe_auc", "probe_table", "encoder_layers", "probe_encoders"]


def pool(h: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """(B, C, h, w) (or (B, h, w, C) with ``channels_last``) -> (B, 2C): per-channel mean and std over space.
    A (B, C) input (already pooled) is returned as it is."""
    if h.ndim == 2:
        return h
    if h.ndim != 4:
        raise ValueError(f"pool needs (B, C, h, w) feature maps, got shape {tuple(h.shape)}")
    if channels_last:
        h = h.permute(0, 3, 1, 2)
    flat = h.flatten(2).float()
    return torch.cat([flat.mean(-1), flat.std(-1, unbiased=False)], dim=1)


@torch.no_grad()
def layer_features(model: torch.nn.Module, layers: Mapping[str, str], dataset, *,
                   forward: Callable[[torch.Tensor], object] | None = None, channels_last: Sequence[str] = (),
                   batch_size: int = 64) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Pooled outputs of ``model``'s sub-modules over ``dataset``.

    layers: ``{label: dotted sub-module name}`` (``model.get_submodule``); each output is pooled by
        :func:`pool` (``channels_last`` names the labels whose maps are (B, h, w, C)).
    forward: what to call on a batch of images (B, 3, H, W) in [0, 1] (default ``model``), e.g. the
        encoder with its own normalisation.
    Returns ``({label: (N, 2C) float32}, labels (N,) int64)``.
    """
    missing = [n for n in layers.values() if n not in dict(model.named_modules())]
    if missing:
        raise KeyError(f"no sub-module {missing} in {type(model).__name__}")
    store: dict[str, list] = {k: [] for k in layers}
    current: dict[str, torch.Tensor] = {}
    hooks = [model.get_submodule(name).register_forward_hook(
        lambda m, i, o, k=k: current.__setitem__(k, o[0] if isinstance(o, tuple) else o))
        for k, name in layers.items()]
    labels = []
    try:
        model.eval()
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
        for batch in loader:
            current.clear()
            (forward or model)(batch["image"])
            for k in layers:
                store[k].append(pool(current[k], k in channels_last).numpy().astype(np.float32))
            labels.append(np.asarray(batch["label"]).reshape(-1))
    finally:
        for h in hooks:
            h.remove()
    return {k: np.concatenate(v) for k, v in store.items()}, np.concatenate(labels).astype(np.int64)


def probe_auc(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
              C: float = 1.0) -> float:
    """Test AUC of a class-balanced logistic regression fitted on standardised training features.

    x_*: (N, F) features; y_*: (N,) labels in {0, 1} (1 = fake); ``C``: inverse L2 strength."""
    from sklearn.linear_model import LogisticRegression

    from dfnb import metrics

    x_train, x_test = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"probe_auc needs (N, F) features with one F, got {x_train.shape} and {x_test.shape}")
    mu, sd = x_train.mean(0), x_train.std(0)
    sd[sd == 0] = 1.0
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
    clf.fit((x_train - mu) / sd, y_train)
    return float(metrics.auc(y_test, clf.predict_proba((x_test - mu) / sd)[:, 1]))


def probe_table(features: Mapping[str, tuple], C: float = 1.0):
    """``{encoder: (train_feats, y_train, test_feats, y_test)}`` (``*_feats``: :func:`layer_features`
    dicts with the same layers) -> one row per (encoder, layer): feature size and probe test AUC."""
    import pandas as pd

    rows = []
    for enc, (ftr, ytr, fte, yte) in features.items():
        for layer in ftr:
            rows.append({"encoder": enc, "layer": layer, "features": int(ftr[layer].shape[1]),
                         "probe test AUC": probe_auc(ftr[layer], ytr, fte[layer], yte, C=C)})
    return pd.DataFrame(rows)


def encoder_layers(model: torch.nn.Module) -> tuple[torch.nn.Module, dict[str, str], Callable, tuple[str, ...]]:
    """What :func:`probe_encoders` probes in ``model``: ``(module to hook, {label: sub-module}, forward,
    channels-last labels)``; each label ends with the layer's stride, measured on one blank image.

    - a segment-anything ``Sam`` (micro-SAM or Meta's): its image encoder's patch embedding, every block
      (channels-last (B, g, g, D)) and the neck (B, C, g, g); forward: the encoder on SAM-normalised images;
    - a timm EfficientNet (``conv_stem``, ``blocks``; e.g. ``efficientnet_lite_imagenet(0, num_classes=0)``):
      the stem, every stage and the head; forward: ``forward_features((x - 0.5) / 0.5)``.
    Images are (B, 3, H, W) in [0, 1].
    """
    if hasattr(model, "image_encoder"):
        from dfnb.models.dadf.sam import normalize

        enc, size = model.image_encoder, model.image_encoder.img_size
        layers = {"patch embedding": "patch_embed", **{f"block {i + 1}": f"blocks.{i}" for i in range(len(enc.blocks))},
                  "neck": "neck"}
        forward, last = (lambda x: enc(normalize(model, x))), set(layers) - {"neck"}
    elif hasattr(model, "conv_stem") and hasattr(model, "blocks"):
        enc, size = model, 128
        layers = {"stem": "bn1", **{f"stage {i}": f"blocks.{i}" for i in range(len(model.blocks))}, "head": "bn2"}
        forward, last = (lambda x: model.forward_features((x - 0.5) / 0.5)), set()
    else:
        raise TypeError(f"encoder_layers: a {type(model).__name__} is neither a SAM nor a timm EfficientNet")
    shapes: dict[str, tuple] = {}
    hooks = [enc.get_submodule(name).register_forward_hook(lambda m, i, o, k=k: shapes.__setitem__(k, o.shape))
             for k, name in layers.items()]
    try:
        with torch.no_grad():
            enc.eval()
            forward(torch.zeros(1, 3, size, size))
    finally:
        for h in hooks:
            h.remove()
    label = {k: f"{k} (stride {size // (shapes[k][2] if k in last else shapes[k][-1])})" for k in layers}
    return enc, {label[k]: v for k, v in layers.items()}, forward, tuple(label[k] for k in layers if k in last)


def probe_encoders(encoders: Mapping[str, torch.nn.Module], train, test, C: float = 1.0, batch_size: int = 64):
    """:func:`probe_table` of every ``{name: SAM or EfficientNet}`` over all of its :func:`encoder_layers`.

    train, test: data sets of ``{"image": (3, H, W) in [0, 1], "label": 0 | 1}`` items (1 = fake)."""
    feats = {}
    for name, model in encoders.items():
        enc, layers, forward, last = encoder_layers(model)
        out = [layer_features(enc, layers, ds, forward=forward, channels_last=last, batch_size=batch_size)
               for ds in (train, test)]
        feats[name] = (out[0][0], out[0][1], out[1][0], out[1][1])
    return probe_table(feats, C=C)
