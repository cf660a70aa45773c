"""Optional ``torch.distributed`` data parallelism (launch with ``torchrun``).

When the environment says ``WORLD_SIZE > 1`` (as ``torchrun --nproc_per_node=N``
sets it), :func:`setup` initialises the process group: ``gloo`` on CPU, ``nccl``
on CUDA (each process on ``cuda:LOCAL_RANK``).  The trainer then shards every
epoch with a ``DistributedSampler``, wraps the model in
``DistributedDataParallel`` and lets only rank 0 write checkpoints and show
progress.  Without torchrun everything here is a no-op (world size 1).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, and its torch ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_device(device: str) -> str:
    """Check ``device`` ("cpu", "cuda", "cuda:N") is usable; raise a clear error otherwise."""
    if device == "cpu":
        return device
    if device.split(":")[0] != "cuda":
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was requested but CUDA is not available here; use device='cpu'")
    return device


def setup(device: str = "cpu", timeout_s: float = 600.0) -> DistInfo:
    """Initialise the process group if launched by torchrun with ``WORLD_SIZE > 1``.

    Returns a :class:`DistInfo`; with world size 1 returns ``DistInfo(device=device)``.
    Idempotent: a process group already initialised (by this or by the caller) is reused.
    """
    device = resolve_device(device)
    world = env_world_size()
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistInfo(device=device)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=device)


def cleanup() -> None:
    """Destroy the process group (call once at the end of a torchrun script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``t`` over processes (``t`` itself with one process)."""
    if not info.enabled:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / info.world_size


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every process."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
