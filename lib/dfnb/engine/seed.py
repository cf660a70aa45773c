"""Seeding and random-number-generator state, for runs that repeat exactly on CPU.

``seed_everything(seed)`` seeds Python, NumPy and torch (CPU and CUDA) and turns
on ``torch.use_deterministic_algorithms(True, warn_only=True)``.  The trainer
re-seeds at the start of every epoch from ``derive_seed(seed, epoch)``, so an
epoch's data order, augmentation and dropout do not depend on what ran before it
(which is what makes an interrupted-and-resumed run equal an uninterrupted one).

RNG states are converted to tensors / plain Python types so that checkpoints holding
them load with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import numpy as np
import torch


def derive_seed(seed: int, *tags: Any) -> int:
    """A 31-bit seed determined by ``seed`` and ``tags`` (e.g. an epoch and a rank); stable across runs."""
    h = hashlib.sha256(repr((int(seed),) + tuple(tags)).encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed ``random``, NumPy and torch; with ``deterministic``, ask torch for deterministic kernels.

    ``torch.use_deterministic_algorithms(True, warn_only=True)`` warns (rather than
    fails) on an op without a deterministic implementation; on CUDA also set
    ``CUBLAS_WORKSPACE_CONFIG`` (if unset) and cuDNN's deterministic mode.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def worker_init_fn(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed a worker's ``random`` and NumPy from its torch seed.

    torch gives each worker ``base_seed + worker_id`` where ``base_seed`` is drawn from the
    DataLoader's (seeded) ``generator``, so the workers' streams are reproducible.
    """
    s = torch.initial_seed() % 2**32
    random.seed(s)
    np.random.seed(s)


def get_rng_state() -> dict[str, Any]:
    """RNG states of Python, NumPy and torch as tensors and plain types (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
