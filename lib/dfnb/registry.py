"""A registry of backbones and methods, in the manner of timm's ``create_model``.

A module registers a factory with ``@register_model("name")``; users call
``create_model("name", **kwargs)``.  Factories live in ``dfnb.models.*``; those
modules are imported lazily the first time the registry is queried, so that
``import dfnb`` stays cheap.

The method contract (what the engine, ``dfnb predict`` and the chapters rely on)::

    out = model(images)            # images: (B, 3, H, W) float32 in [0, 1], RGB
    out["logit"]                   # (B,)  fake logit (sigmoid -> P(fake))
    out["mask_logit"]              # (B, 1, H, W) optional, manipulated-pixel logits
    losses = model.losses(out, batch)
    losses["loss"]                 # scalar, the total that is back-propagated;
                                   # other entries are logged parts (detached or not)

``batch`` is the dict a ``dfnb.data`` data set yields, collated: ``image``
(B,3,H,W in [0,1]), ``mask`` (B,1,H,W in [0,1], all zero for real faces),
``label`` (B,) long with 1 = fake, and string lists ``video_id``, ``method``,
``dataset``; ``has_mask`` (B,) bool is False for a fake whose true mask is unknown
(FaceShifter, Celeb-DF, DF-TIMIT: no mask video), whose ``mask`` is then an all-zero
stand-in that mask losses and localization metrics leave out (:func:`known_masks`).
Normalisation to a backbone's mean/std happens inside the model.
"""
from __future__ import annotations

import fnmatch
import importlib
from typing import Callable

_REGISTRY: dict[str, Callable] = {}
_MODEL_MODULES = (
    "dfnb.models.backbones",
    "dfnb.models.dadf",
    "dfnb.models.prle",
    "dfnb.models.focus",
    "dfnb.models.evaluator",
)
_loaded = False


def known_masks(batch: dict, n: int):
    """``(n,)`` bool tensor: which items' ``mask`` is their true mask (``batch["has_mask"]``; all of them
    when the batch has no such key).  A mask loss averages over these items only."""
    import torch

    if "has_mask" not in batch:
        return torch.ones(n, dtype=torch.bool)
    known = torch.as_tensor(batch["has_mask"]).view(-1).bool()
    if known.numel() != n:
        raise ValueError(f"batch['has_mask'] has {known.numel()} entries for {n} items")
    return known


def register_model(name: str):
    """Decorator: register ``fn`` under ``name``; a second registration of a name is an error."""

    def deco(fn: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"model name {name!r} is already registered by {_REGISTRY[name].__module__}")
        _REGISTRY[name] = fn
        return fn

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for mod in _MODEL_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a method package not written yet
            if e.name != mod and not mod.startswith(str(e.name)):
                raise
    _loaded = True


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern``, sorted."""
    _load_all()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def create_model(name: str, **kwargs):
    """Build the model registered as ``name`` with keyword arguments ``kwargs``.

    An unknown name is a ``KeyError`` that lists the close names.  The model gets a
    ``dfnb_arch = {"name", "kwargs"}`` attribute (unless its factory set one), which
    checkpoints store.
    """
    _load_all()
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.4)
        raise KeyError(f"unknown model {name!r}; registered: {sorted(_REGISTRY)}" + (f" (did you mean {close}?)" if close else ""))
    model = _REGISTRY[name](**kwargs)
    if getattr(model, "dfnb_arch", None) is None:
        # what a checkpoint records so that ``dfnb.engine.load_model`` / ``dfnb predict`` can rebuild it
        model.dfnb_arch = {"name": name, "kwargs": dict(kwargs)}
    return model
