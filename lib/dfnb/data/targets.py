"""Training targets other than the exact masks: a split whose ``mask`` is replaced by another map.

Chapter 40 trains DADF's decoder on weak labels (FoCus's or PRLE's fused maps, made from image labels only)
instead of the exact masks: :class:`WithMaskTarget` wraps a split and hands out those maps as ``mask``.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["WithMaskTarget"]


class WithMaskTarget(Dataset):
    """``dataset`` with each item's ``mask`` replaced by ``maps[i]`` (the exact mask kept as ``true_mask``).

    maps: (N, H, W) or (N, 1, H, W) in [0, 1], one per item, at the items' image size (resize first).
    ``name`` says what the maps are (it is part of the ``fingerprint``, with a SHA-256 of the maps, so the
    experiment cache tells one target from another).
    """

    def __init__(self, dataset, maps, name: str):
        m = torch.as_tensor(np.asarray(maps, dtype=np.float32))
        if m.ndim == 3:
            m = m[:, None]
        if m.ndim != 4 or m.shape[1] != 1:
            raise ValueError(f"maps must be (N, H, W) or (N, 1, H, W), got {tuple(m.shape)}")
        if len(dataset) != m.shape[0]:
            raise ValueError(f"{m.shape[0]} maps for {len(dataset)} items")
        if not torch.isfinite(m).all() or m.min() < 0 or m.max() > 1:
            raise ValueError("maps must be finite and in [0, 1]")
        size = tuple(dataset[0]["image"].shape[-2:])
        if tuple(m.shape[-2:]) != size:
            raise ValueError(f"maps are {tuple(m.shape[-2:])} px, the images {size}: resize the maps first")
        self.dataset, self.maps, self.name = dataset, m, str(name)
        self._fp = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        item = self.dataset[i]
        return {**item, "mask": self.maps[i], "true_mask": item["mask"]}

    def __getattr__(self, name):  # methods, labels, ... of the inner split
        if name in ("dataset", "maps", "name", "_fp"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    @property
    def fingerprint(self) -> str:
        if self._fp is None:
            from dfnb.experiments import fingerprint

            digest = hashlib.sha256(self.maps.numpy().tobytes()).hexdigest()[:20]
            self._fp = f"masktarget:{self.name}:{fingerprint(self.dataset)}:{tuple(self.maps.shape)}:{digest}"
        return self._fp
