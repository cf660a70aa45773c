"""PRLE's static stage: Grad-CAM maps of a detector zoo over a data set, computed once and cached.

    store = zoo_maps({"xception": m1, "efficientnet_b4": m2, "vgg16": m3}, train_set,
                     cache_dir=".dfnb_cache/prle")            # (N, D, H, W) maps on disk
    fused = store.fuse("paper")                                # Eq. 6-8 -> FusedMaps (N, H, W)
    aug = PRLEAugment(fused, p=0.5)                            # Algorithm 1, the engine's train_transform
    store.select(["vgg16"]).fuse("paper")                      # Table VI: one detector's masks

Per detector and image, Eq. 3 (Grad-CAM of the fake score, :class:`dfnb.cam.GradCAM`) at the
detector's ``cam_layer`` (or :func:`dfnb.cam.default_target_layer`), resized to the image and
divided by its maximum.  Real and fake images alike are explained by the *fake* score, as Eq. 3
differentiates the detector's output y^ whatever the label.

Samples are identified by a string key: ``sample["key"]`` when the data set provides one, else
``"dataset|method|video_id|frame"`` (the fields every ``dfnb.data`` sample carries).  The same
rule finds a batch's maps during training (:func:`batch_keys`); a key that is missing from a
store is a ``KeyError``.

Caching.  The maps are written under ``cache_dir/zoo-<hash>/`` where the hash covers: the data
(``dataset.fingerprint`` if the data set has one, else a SHA-256 of every sample's key and image
bytes, or the ``data_id`` you pass), every detector's name, class, target layer and state_dict
(SHA-256 of all tensors), and the CAM settings.  Same inputs -> the cached maps are loaded
(memory-mapped) and no detector runs; any change -> a new entry (old ones are never overwritten).
Fused maps are cached beside them, keyed by the fusion's parameters.  Maps are stored as uint8,
rounded *up* (``ceil(255 a)``), so a positive attention never becomes 0 and Eq. 4's support is
exactly preserved; values are within 1/255 of the float maps.

The static stage assumes fixed images (the paper runs it once, offline); data made afresh every
epoch (``SelfBlended``) has no precomputed maps.

Speed (measured 2026-11-22 on this project's shared 2-core AMD EPYC CPU, AVX2, no GPU, at the
book's default 128 px; 48-64 random images, batch 16-32, weights frozen while explaining).  Wall
time swung with the other jobs on the machine (load average 4-6 on 2 cores), so the process's CPU
time, converted to two free cores (an upper bound: it assumes both cores fully used), is given too:

=====================================================  =====================  ======================
zoo                                                    fused maps/s (wall)    fused maps/s (2 free
                                                                              cores, from CPU time)
=====================================================  =====================  ======================
efficientnet_lite0 + resnet50 + toy_cnn                2.1 - 7.3              9.8 - 14.7
xception + efficientnet_b4 + vgg16 (the paper's)       1.05                   2.9
=====================================================  =====================  ======================

One fused map needs one Grad-CAM map per detector, so detector maps/s are three times these.
The neighbouring fusion itself runs at 135-360 images/s at 128 px, so the detectors' forward
passes are the whole cost; ``store.meta`` records each run's speed per detector.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["zoo_maps", "MapStore", "FusedMaps", "batch_keys", "sample_key", "state_dict_hash", "dataset_hash", "default_cache_dir"]

_VERSION = 1
_KEY_FIELDS = ("dataset", "method", "video_id", "frame")


def default_cache_dir() -> Path:
    """``prle/`` inside the experiment cache (``$DFNB_CACHE``, else ``<repo>/results/_cache/experiments``,
    git-ignored): maps computed in a recording's worktree are found again from the checkout."""
    from dfnb.experiments import _cache_root

    return _cache_root(True) / "prle"


# ----------------------------------------------------------------------------- keys and hashes
def _item(v, i: int):
    x = v[i]
    if isinstance(x, torch.Tensor):
        x = x.item()
    return x


def batch_keys(batch: Mapping) -> list[str]:
    """One key string per sample of a collated batch (see the module docstring)."""
    n = len(batch["image"]) if "image" in batch else None
    if "key" in batch:
        keys = [str(_item(batch["key"], i)) for i in range(len(batch["key"]))]
    else:
        missing = [f for f in _KEY_FIELDS if f not in batch]
        if missing:
            raise KeyError(f"cannot identify samples: the batch has neither 'key' nor {missing} (it has {sorted(batch)})")
        cols = [batch[f] for f in _KEY_FIELDS]
        keys = ["|".join(str(_item(c, i)) for c in cols) for i in range(len(cols[0]))]
    if n is not None and len(keys) != n:
        raise ValueError(f"{len(keys)} keys for {n} images")
    return keys


def sample_key(sample: Mapping) -> str:
    """Key of one (uncollated) sample."""
    return batch_keys({k: [v] for k, v in sample.items() if k != "image"})[0]


def state_dict_hash(model: nn.Module) -> str:
    """SHA-256 over the model's class name and every state_dict entry (name, dtype, shape, bytes)."""
    h = hashlib.sha256(type(model).__name__.encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _collate(samples: list[dict]) -> dict:
    out = {}
    for k in samples[0]:
        vals = [s[k] for s in samples]
        out[k] = torch.stack([torch.as_tensor(v) for v in vals]) if isinstance(vals[0], torch.Tensor) else vals
    return out


def _batches(dataset, batch_size: int):
    for s in range(0, len(dataset), batch_size):
        yield _collate([dataset[i] for i in range(s, min(len(dataset), s + batch_size))])


def dataset_hash(dataset, batch_size: int = 64, progress: bool = True) -> str:
    """``dataset.fingerprint`` (attribute or method) if present, else SHA-256 of all keys and images."""
    fp = getattr(dataset, "fingerprint", None)
    if fp is not None:
        return str(fp() if callable(fp) else fp)
    from tqdm.auto import tqdm

    h = hashlib.sha256(f"n={len(dataset)}".encode())
    for batch in tqdm(_batches(dataset, batch_size), total=-(-len(dataset) // batch_size), desc="hash data", disable=not progress):
        for k, img in zip(batch_keys(batch), batch["image"]):
            h.update(k.encode())
            h.update(torch.as_tensor(img, dtype=torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:24]


# ----------------------------------------------------------------------------- stores
class MapStore:
    """Per-detector attention maps of a data set.

    maps: (N, D, H, W) uint8 (value / 255 is the map in [0, 1]); keys: N sample keys;
    detectors: D names; meta: what produced them (hashes, timing).
    """

    def __init__(self, maps: np.ndarray, keys: Sequence[str], detectors: Sequence[str], meta: dict | None = None, path: Path | None = None):
        if maps.ndim != 4 or maps.dtype != np.uint8:
            raise ValueError(f"maps must be a (N, D, H, W) uint8 array, got {maps.dtype} {maps.shape}")
        if maps.shape[0] != len(keys) or maps.shape[1] != len(detectors):
            raise ValueError(f"maps {maps.shape} do not match {len(keys)} keys and {len(detectors)} detectors")
        self.maps, self.keys, self.detectors = maps, list(keys), list(detectors)
        self.meta, self.path = dict(meta or {}), path
        self._index = {k: i for i, k in enumerate(self.keys)}
        if len(self._index) != len(self.keys):
            raise ValueError("duplicate sample keys")

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"MapStore(n={len(self)}, detectors={self.detectors}, size={tuple(self.maps.shape[-2:])}, path={self.path})"

    def indices(self, keys: Sequence[str]) -> np.ndarray:
        missing = [k for k in keys if k not in self._index]
        if missing:
            raise KeyError(f"{len(missing)} sample key(s) not in the map store, e.g. {missing[:3]}; "
                           "were the maps computed on this data set?")
        return np.array([self._index[k] for k in keys], dtype=np.int64)

    def raw(self, keys: Sequence[str]) -> torch.Tensor:
        """(B, D, H, W) float maps in [0, 1] for ``keys``."""
        return torch.from_numpy(np.asarray(self.maps[self.indices(keys)], dtype=np.float32) / 255.0)

    def select(self, detectors: Sequence[str]) -> "MapStore":
        """The store restricted to some detectors (Table VI, Fig. 6)."""
        unknown = [d for d in detectors if d not in self.detectors]
        if unknown or not detectors:
            raise ValueError(f"unknown or no detectors {unknown}; the store has {self.detectors}")
        idx = [self.detectors.index(d) for d in detectors]
        meta = {**self.meta, "selected": list(detectors)}
        return MapStore(self.maps[:, idx], self.keys, list(detectors), meta, self.path)

    def fuse(self, method: str = "paper", batch_size: int = 32, progress: bool = True, **params) -> "FusedMaps":
        """Fuse every sample's maps (:func:`dfnb.models.prle.fusion.fuse`); cached beside the store."""
        from tqdm.auto import tqdm

        from dfnb.models.prle.fusion import FUSIONS, fuse

        name, p = FUSIONS.get(method, (method, {}))
        settings = {"method": name, "params": {**p, **params}, "detectors": self.detectors, "store": self.meta.get("cache_key")}
        cache = None
        if self.path is not None and self.meta.get("cache_key"):
            cache = self.path / f"fused-{_digest(settings)}.npy"
            if cache.exists():
                return FusedMaps(np.load(cache, mmap_mode="r"), self.keys, {**settings, "path": str(cache)})
        N, _, H, W = self.maps.shape
        out = np.zeros((N, H, W), np.float16)
        for s in tqdm(range(0, N, batch_size), desc=f"fuse ({name})", disable=not progress):
            chunk = torch.from_numpy(np.asarray(self.maps[s : s + batch_size], dtype=np.float32) / 255.0)
            out[s : s + batch_size] = fuse(chunk, name, **settings["params"]).numpy()
        if cache is not None:
            _atomic_save(cache, out)
        return FusedMaps(out, self.keys, settings)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        _atomic_save(path / "maps.npy", np.ascontiguousarray(self.maps))
        meta = {**self.meta, "keys": self.keys, "detectors": self.detectors}
        tmp = path / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(path / "meta.json")  # written last: its presence marks a complete entry
        self.path = path

    @classmethod
    def load(cls, path: Path) -> "MapStore":
        path = Path(path)
        meta = json.loads((path / "meta.json").read_text())
        keys, detectors = meta.pop("keys"), meta.pop("detectors")
        return cls(np.load(path / "maps.npy", mmap_mode="r"), keys, detectors, meta, path)


class FusedMaps:
    """One fused primary-region map per sample: maps (N, H, W) float16, looked up by key.

    ``maps_for(batch, generator=None) -> (B, H, W)`` float tensor is the map source of
    :class:`~dfnb.models.prle.exploit.PRLEAugment` (the generator is unused).
    """

    binary = False

    def __init__(self, maps: np.ndarray, keys: Sequence[str], meta: dict | None = None):
        if maps.ndim != 3 or maps.shape[0] != len(keys):
            raise ValueError(f"maps must be (N, H, W) with N = {len(keys)} keys, got {maps.shape}")
        self.maps, self.keys, self.meta = maps, list(keys), dict(meta or {})
        self._index = {k: i for i, k in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"FusedMaps(n={len(self)}, size={tuple(self.maps.shape[-2:])}, method={self.meta.get('method')!r}, params={self.meta.get('params')})"

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.lookup([key])[0]

    def cache_key(self) -> dict:
        """SHA-256 of the maps and their keys: what the experiment cache keys a PRLE training on
        (computed once per object: the maps are not changed after construction)."""
        import hashlib
        import json

        if getattr(self, "_cache_key", None) is None:
            h = hashlib.sha256(np.ascontiguousarray(self.maps).tobytes())
            h.update(json.dumps([str(k) for k in self.keys]).encode())
            self._cache_key = {"kind": "FusedMaps", "sha256": h.hexdigest()}
        return dict(self._cache_key)

    def lookup(self, keys: Sequence[str]) -> torch.Tensor:
        missing = [k for k in keys if k not in self._index]
        if missing:
            raise KeyError(f"{len(missing)} sample key(s) have no fused map, e.g. {missing[:3]}")
        return torch.from_numpy(np.asarray(self.maps[[self._index[k] for k in keys]], dtype=np.float32))

    def maps_for(self, batch: Mapping, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.lookup(batch_keys(batch))

    def all(self) -> np.ndarray:
        """(N, H, W) float32 copy of every map (in key order)."""
        return np.asarray(self.maps, dtype=np.float32)


def _atomic_save(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    tmp.replace(path)


# ----------------------------------------------------------------------------- the static stage
def zoo_maps(zoo: Mapping[str, nn.Module], dataset, *, batch_size: int = 16, device: str = "cpu", cache_dir=None,
             data_id: str | None = None, target_layers: Mapping[str, object] | None = None, progress: bool = True,
             use_cache: bool = True) -> MapStore:
    """Grad-CAM maps (Eq. 3) of every zoo member for every sample of ``dataset``.

    zoo: ordered ``{name: trained detector}``; each detector follows the method contract (or returns
        a fake logit) and is explained at ``target_layers[name]``, else its ``cam_layer``, else
        :func:`dfnb.cam.default_target_layer`.
    dataset: map-style, ``dataset[i]`` a dict with ``image`` (3, H, W) in [0, 1] and key fields.
    cache_dir: where to cache (default :func:`default_cache_dir`); ``use_cache=False`` neither
        reads nor writes it.  data_id: a string naming the data exactly (skips hashing the data).
    Returns a :class:`MapStore` with maps (N, D, H, W); ``store.meta["maps_per_s"]`` records the
    speed of the computation (images x detectors per second) when it ran.
    """
    from tqdm.auto import tqdm

    from dfnb.cam import GradCAM

    if not zoo:
        raise ValueError("the zoo is empty")
    if len(dataset) == 0:
        raise ValueError("the data set is empty")
    target_layers = dict(target_layers or {})
    unknown = set(target_layers) - set(zoo)
    if unknown:
        raise ValueError(f"target_layers names detectors not in the zoo: {sorted(unknown)}")
    cams = {}
    for name, model in zoo.items():
        layer = target_layers.get(name, getattr(model, "cam_layer", None))
        cams[name] = GradCAM(model.to(device), layer)
    settings = {
        "version": _VERSION,
        "data": data_id if data_id is not None else None,
        "detectors": [[n, type(m).__name__, cams[n].layer_name, state_dict_hash(m)] for n, m in zoo.items()],
        "cam": "gradcam-fake-score",
    }
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if use_cache:
        if settings["data"] is None:
            settings["data"] = dataset_hash(dataset, progress=progress)
        key = _digest(settings)
        entry = cache_root / f"zoo-{key}"
        if (entry / "meta.json").exists():
            return MapStore.load(entry)
    keys: list[str] = []
    chunks: list[np.ndarray] = []
    # Freeze the weights while explaining: the forward pass up to the target layer then records no
    # autograd graph (GradCAM re-roots the graph at the layer's output), 1.3-6x faster on CPU.
    flags = [(p, p.requires_grad) for m in zoo.values() for p in m.parameters()]
    spent = {n: 0.0 for n in zoo}
    t0 = time.perf_counter()
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        n_batches = -(-len(dataset) // batch_size)
        for batch in tqdm(_batches(dataset, batch_size), total=n_batches, desc=f"Grad-CAM x{len(zoo)}", disable=not progress):
            images = torch.as_tensor(batch["image"], dtype=torch.float32).to(device)
            keys += batch_keys(batch)
            per = []  # D x (B, H, W)
            for n in zoo:
                t = time.perf_counter()
                per.append(cams[n](images).cpu())
                spent[n] += time.perf_counter() - t
            chunks.append(np.ceil(torch.stack(per, 1).numpy() * 255.0).clip(0, 255).astype(np.uint8))
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    seconds = time.perf_counter() - t0
    meta = {**settings, "seconds": seconds, "images_per_s": len(keys) / seconds, "maps_per_s": len(keys) * len(zoo) / seconds,
            "detector_maps_per_s": {n: len(keys) / max(t, 1e-9) for n, t in spent.items()}}
    store = MapStore(np.concatenate(chunks), keys, list(zoo), meta)
    if use_cache:
        store.meta["cache_key"] = key
        store.save(entry)
        store = MapStore.load(entry)
    return store
