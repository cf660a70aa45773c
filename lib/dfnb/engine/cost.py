"""What one training step costs: memory (weights, gradients, optimizer state, activations) and time.

- :func:`saved_bytes`: the bytes autograd keeps for the backward pass of a function (each storage
  once, parameters left out), counted through ``torch.autograd.graph.saved_tensors_hooks``.
- :func:`memory_parts`: MiB of a step from the parameter counts and those activations.
- :func:`cost_probe`: forward and backward of a few real steps on one batch, timed (and, on CUDA,
  the allocator's peak measured), leaving the model exactly as it was; :func:`cost_line` says it in
  one line.  ``fit(..., report_cost=True)`` prints that line before training.
- :func:`shapes_only` / :func:`fake_module`: the same count at any size without the memory or a GPU:
  the model is built on the meta device and run on fake tensors that have shapes and dtypes but no
  data (``torch._subclasses.FakeTensorMode``, what ``torch.compile`` traces with); on fake CUDA
  tensors CUDA's own autocast rules apply.

Memory is an estimate: the CUDA caching allocator's fragmentation, cuBLAS / cuDNN workspaces, the
CUDA context and temporaries that live only inside one operation come on top of what is counted.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from dfnb.engine.checkpoint import unwrap
from dfnb.engine.precision import autocast, losses_fp32

MIB = 2.0 ** 20
#: fp32 tensors the optimizer keeps per trainable parameter (AdamW: two moments; SGD: the momentum buffer)
OPTIMIZER_STATES = {"adamw": 2, "sgd": 1}
_PEAKS: dict[int, int] = {}  # CUDA device -> the allocator's peak before a probe reset it


def _storage_id(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def saved_bytes(fn: Callable[[], Any], exclude: Iterable[torch.Tensor] = (),
                sizes: list[int] | None = None) -> tuple[Any, int]:
    """Run ``fn()``; return ``(its result, bytes of the tensors autograd saved for the backward pass)``.

    Each storage counts once (a view saved twice, or a tensor saved by two operations, is one
    allocation); storages of ``exclude`` (pass the model's parameters) are left out.  Under
    autocast the low-precision copies of the weights that autograd keeps are counted (they are
    new allocations).  ``sizes``: a list that receives the bytes of each counted storage.
    """
    skip = {_storage_id(t) for t in exclude}
    seen: dict[int, int] = {}
    alive: list[torch.Tensor] = []  # no storage is freed (and its id reused) while counting

    def pack(t: torch.Tensor) -> torch.Tensor:
        sid = _storage_id(t)
        if sid not in skip and sid not in seen:
            seen[sid] = t.untyped_storage().nbytes()
        alive.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn()
    alive.clear()
    if sizes is not None:
        sizes.extend(seen.values())
    return result, sum(seen.values())


def _nbytes(params: Iterable[torch.Tensor]) -> int:
    return sum(p.numel() * p.element_size() for p in params)


def memory_parts(model: nn.Module, activation_bytes: float, optimizer: str = "adamw",
                 world_size: int = 1) -> dict[str, float]:
    """MiB of a training step of ``model``: ``{"weights", "gradients", "optimizer", "ddp_buckets",
    "activations", "total"}``.

    weights: every parameter; gradients: the trainable ones (fp32, as the weights); optimizer:
    :data:`OPTIMIZER_STATES` fp32 copies of the trainable ones; ddp_buckets: with ``world_size > 1``
    DistributedDataParallel's gradient buckets, one more copy of the trainable gradients;
    activations: ``activation_bytes`` (e.g. from :func:`saved_bytes`).
    """
    if optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(OPTIMIZER_STATES)}")
    params = list(unwrap(model).parameters())
    trainable = _nbytes(p for p in params if p.requires_grad) / MIB
    parts = {"weights": _nbytes(params) / MIB, "gradients": trainable,
             "optimizer": OPTIMIZER_STATES[optimizer] * trainable,
             "ddp_buckets": trainable if world_size > 1 else 0.0, "activations": activation_bytes / MIB}
    parts["total"] = sum(parts.values())
    return parts


def _optimizer_name(optimizer: str | torch.optim.Optimizer) -> str:
    if isinstance(optimizer, str):
        return optimizer
    return "sgd" if isinstance(optimizer, torch.optim.SGD) else "adamw"


def _held_state_mib(optimizer: str | torch.optim.Optimizer) -> float:
    """MiB of optimizer state already allocated (a resumed run's), counted in a measured peak."""
    if isinstance(optimizer, str):
        return 0.0
    return _nbytes(t for st in optimizer.state.values() for t in st.values()
                   if torch.is_tensor(t) and t.dim() > 0) / MIB


def cuda_peak_mib(device: str = "cuda") -> float:
    """The CUDA allocator's peak of this process (MiB), probes included: :func:`cost_probe` resets the
    peak statistics to measure one step and keeps the earlier peak here."""
    index = torch.device(device).index
    index = torch.cuda.current_device() if index is None else index
    return max(torch.cuda.max_memory_allocated(index), _PEAKS.get(index, 0)) / MIB


def gpu_name(device: str) -> str:
    """The GPU's name for a CUDA ``device``, else ``"none"``."""
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return "none"


def cost_probe(model: nn.Module, batch: dict, *, device: str = "cpu", precision: str = "fp32",
               optimizer: str | torch.optim.Optimizer = "adamw", steps: int = 3, steps_per_epoch: int | None = None,
               world_size: int = 1) -> dict[str, Any]:
    """Time and size ``steps`` training steps (forward, fp32 losses, backward; no optimizer step) on ``batch``.

    Args:
        model: follows the method contract, on ``device``.  Left as it was: weights (no step is
            taken), buffers (BatchNorm statistics), gradients, train / eval mode and every RNG.
        batch: one collated ``dfnb.data`` batch on ``device`` (``image`` (B, 3, H, W), ...), as
            the training loop would feed it.
        precision: "fp32" | "bf16" | "fp16" (autocast around the forward pass, as in ``fit``).
        optimizer: its name ("adamw" | "sgd"), or the optimizer (its allocated state is then not
            added twice to a measured peak).
        steps: steps to run (>= 2: the first warms up and is not timed).
        steps_per_epoch: to extrapolate the time of an epoch.
        world_size: processes (adds DDP's gradient buckets to the memory).

    Returns:
        ``batch_size``, ``device``, ``gpu`` (name or "none"), ``precision``, ``memory``
        (:func:`memory_parts`, MiB; activations counted by :func:`saved_bytes`), ``peak_mib`` (CUDA:
        the allocator's measured peak plus the optimizer state a first step adds; CPU: the counted
        total), ``measured`` (whether ``peak_mib`` was measured), ``device_mib`` (the GPU's memory, or
        None), ``s_per_step`` (median of the timed steps), ``steps_per_epoch``, ``epoch_s`` (or None).
    Raises ``RuntimeError`` (one line) when a step does not fit in GPU memory.
    """
    from dfnb.engine.seed import get_rng_state, set_rng_state

    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2 (the first one warms up), got {steps!r}")
    raw = unwrap(model)
    params = list(raw.parameters())
    cuda = str(device).startswith("cuda")
    rng, was_training = get_rng_state(), raw.training
    buffers = {k: v.detach().clone() for k, v in raw.named_buffers()}
    grads = [p.grad for p in params]
    times, act, peak = [], 0, None

    def step() -> torch.Tensor:
        with autocast(device, precision):
            out = raw(batch["image"])
        return losses_fp32(raw, out, batch, device)["loss"]

    try:
        raw.train()
        for p in params:
            p.grad = None
        if cuda:
            torch.cuda.synchronize(device)
            index = torch.device(device).index
            index = torch.cuda.current_device() if index is None else index
            _PEAKS[index] = max(_PEAKS.get(index, 0), torch.cuda.max_memory_allocated(index))
            torch.cuda.reset_peak_memory_stats(index)
        for _ in range(steps):
            t0 = time.perf_counter()
            loss, counted = saved_bytes(step, exclude=params)
            loss.backward()
            del loss
            if cuda:
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
            act = max(act, counted)
            for p in params:
                p.grad = None
        if cuda:
            peak = torch.cuda.max_memory_allocated(index) / MIB
    except torch.cuda.OutOfMemoryError as e:
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory / 2 ** 30
        raise RuntimeError(f"one training step at batch {int(batch['image'].shape[0])} per process ({precision}) does "
                           f"not fit in the {total:.0f} GiB of {gpu_name(device)}: lower batch_size, spread it over "
                           "more GPUs (dfnb run --nproc N) or use bf16") from e
    finally:
        for p, g in zip(params, grads):
            p.grad = g
        with torch.no_grad():
            for k, v in raw.named_buffers():
                v.copy_(buffers[k])
        raw.train(was_training)
        set_rng_state(rng)
    parts = memory_parts(raw, act, _optimizer_name(optimizer), world_size)
    if peak is not None:
        peak += max(0.0, parts["optimizer"] - _held_state_mib(optimizer)) + parts["ddp_buckets"]
    s_step = statistics.median(times[1:])
    return {"batch_size": int(batch["image"].shape[0]), "device": str(device), "gpu": gpu_name(device),
            "precision": precision, "memory": parts, "peak_mib": parts["total"] if peak is None else peak,
            "measured": peak is not None,
            "device_mib": torch.cuda.get_device_properties(torch.device(device)).total_memory / MIB if cuda else None,
            "s_per_step": s_step, "steps_per_epoch": steps_per_epoch,
            "epoch_s": None if steps_per_epoch is None else s_step * steps_per_epoch}


def _size(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB" if mib >= 10 else f"{mib:.2f} MiB"


def _duration(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.2g} s"


def cost_line(cost: dict[str, Any]) -> str:
    """One line from :func:`cost_probe`: expected peak memory (its parts) and time per step and per epoch."""
    m = cost["memory"]
    where = "CPU" if cost["gpu"] == "none" else cost["gpu"]
    parts = (f"weights {_size(m['weights'])}, gradients {_size(m['gradients'])}, optimizer state "
             f"{_size(m['optimizer'])}" + (f", DDP buckets {_size(m['ddp_buckets'])}" if m["ddp_buckets"] else "")
             + f", activations {_size(m['activations'])}")
    if cost["measured"]:
        mem = f"peak {_size(cost['peak_mib'])} of {_size(cost['device_mib'])} measured ({parts})"
    else:
        mem = f"~{_size(cost['peak_mib'])} counted ({parts})"
    time_ = f"{cost['s_per_step']:.3g} s per step"
    if cost["epoch_s"] is not None:
        time_ += f" -> ~{_duration(cost['epoch_s'])} per epoch of {cost['steps_per_epoch']:,} steps"
    return (f"expected cost of a training step at batch {cost['batch_size']} per process on {where} "
            f"({cost['precision']}): {mem}; {time_} (forward and backward only: data loading, the optimizer step "
            "and validation come on top)")


# ----------------------------------------------------------------------------- counting on shapes alone
@contextlib.contextmanager
def autocast_rules(device: str = "cuda", precision: str = "fp32") -> Iterator[None]:
    """Autocast for ``device``'s type with ``precision``'s dtype (off for fp32), set directly:
    ``torch.autocast`` refuses "cuda" on a machine without a GPU, where fake CUDA tensors still follow
    CUDA's autocast rules (e.g. softmax and LayerNorm in fp32, matmuls in bf16)."""
    from dfnb.engine.precision import DTYPES

    kind = str(device).split(":")[0]
    was_on, was_dtype = torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind)
    try:
        torch.set_autocast_enabled(kind, precision != "fp32")
        torch.set_autocast_dtype(kind, DTYPES[precision])
        yield
    finally:
        torch.set_autocast_enabled(kind, was_on)
        torch.set_autocast_dtype(kind, was_dtype)


@contextlib.contextmanager
def shapes_only(device: str = "cuda", precision: str = "fp32") -> Iterator[None]:
    """A context in which tensors have shapes and dtypes but no data: count a model at any size.

    Inside, create tensors on ``device`` ("cuda" works without a GPU) and build models with
    :func:`fake_module`; ``precision`` sets :func:`autocast_rules` (change it inside with another
    ``autocast_rules``).
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True), autocast_rules(device, precision):
        yield


def fake_module(build: Callable[[], nn.Module], device: str = "cuda") -> nn.Module:
    """``build()`` on the meta device (no memory), its parameters and buffers then put on ``device``
    as fake tensors; call inside :func:`shapes_only`.  ``requires_grad`` flags are kept."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    with unset_fake_temporarily(), torch.device("meta"):  # real meta tensors: to_empty can replace them
        module = build()
    return module.to_empty(device=device)

