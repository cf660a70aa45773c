"""Mixed precision for :func:`dfnb.engine.fit` / :func:`dfnb.engine.evaluate`: ``"fp32" | "bf16" | "fp16"``.

- ``torch.autocast`` covers the forward pass; the model's outputs are then cast to fp32
  (:func:`fp32`) and ``model.losses`` runs with autocast off, so losses and metrics are fp32.
- ``"fp16"`` scales the loss with a ``GradScaler``, enabled on CUDA only (on CPU the scaler is
  built with ``enabled=False``: the same code path, no scaling).
- Weights, gradients, optimizer state and checkpoints stay fp32 (autocast casts copies).
- On CUDA, models with 2-D convolutions (4-D conv weights) run in ``channels_last`` memory format
  (:func:`use_channels_last`); :func:`contiguous` puts them back before anything is saved.

Default (argument ``None``): ``$DFNB_PRECISION`` when set (``dfnb run --precision`` sets it), else
``"fp32"`` on CPU and ``"bf16"`` on a GPU that supports it (``"fp32"`` on one that does not).
An explicit argument always wins over the environment.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "fp16")
ENV = "DFNB_PRECISION"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _device_type(device: str) -> str:
    return str(device).split(":")[0]


def bf16_supported(device: str) -> bool:
    """Whether ``device`` runs bf16 autocast: always on CPU, on CUDA when the GPU supports it."""
    if _device_type(device) != "cuda":
        return True
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_precision(precision: str | None, device: str = "cpu") -> str:
    """The precision to train / evaluate in: ``precision``, else ``$DFNB_PRECISION``, else the device's default.

    Raises ``ValueError`` (one line) for an unknown value, naming where it came from, and for bf16
    on a GPU without bf16 support.
    """
    source = "precision"
    if precision is None and os.environ.get(ENV, "").strip():
        precision, source = os.environ[ENV].strip(), f"${ENV}"
    if precision is None:
        return "bf16" if _device_type(device) == "cuda" and bf16_supported(device) else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"{source}={precision!r} is not a precision; choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and not bf16_supported(device):
        raise ValueError(f"{source}=bf16 but this GPU ({torch.cuda.get_device_name(torch.device(device))}) has no "
                         "bf16 support; use fp16 (loss scaling) or fp32")
    return precision


def autocast(device: str, precision: str):
    """``torch.autocast`` for ``precision`` on ``device`` (disabled for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(_device_type(device), dtype=DTYPES[precision])


def grad_scaler(device: str, precision: str) -> torch.amp.GradScaler:
    """A ``GradScaler``, enabled for fp16 on CUDA only (fp16 on CPU, bf16 and fp32: disabled, a pass-through)."""
    on = precision == "fp16" and _device_type(device) == "cuda"
    return torch.amp.GradScaler(_device_type(device), enabled=on)


def fp32(out: Any) -> Any:
    """``out`` (a tensor, or a dict / list / tuple of them) with every floating tensor in fp32."""
    if torch.is_tensor(out):
        return out.float() if out.is_floating_point() and out.dtype != torch.float32 else out
    if isinstance(out, dict):
        return {k: fp32(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return type(out)(fp32(v) for v in out)
    return out


def losses_fp32(model: nn.Module, out: dict, batch: dict, device: str) -> dict:
    """``model.losses`` on the fp32 outputs with autocast off: the losses are computed in fp32."""
    with torch.autocast(_device_type(device), enabled=False):
        return model.losses(fp32(out), batch)


def has_conv2d(model: nn.Module) -> bool:
    """Whether ``model`` has a 2-D convolution (a 4-D weight): a CNN for :func:`use_channels_last`."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def use_channels_last(model: nn.Module, device: str) -> bool:
    """On CUDA, put a model with 2-D convolutions into ``channels_last`` format; return whether it did
    (False: not CUDA, no 2-D convolution, or already done: ``evaluate`` inside ``fit``)."""
    if _device_type(device) != "cuda" or not has_conv2d(model) or channels_last_active(model):
        return False
    model.to(memory_format=torch.channels_last)
    model._dfnb_channels_last = True
    return True


def channels_last_active(model: nn.Module) -> bool:
    """Whether :func:`use_channels_last` put ``model`` into ``channels_last`` (its inputs should follow)."""
    return bool(getattr(model, "_dfnb_channels_last", False))


def contiguous(model: nn.Module) -> None:
    """Undo :func:`use_channels_last` (plain contiguous parameters and buffers)."""
    model.to(memory_format=torch.contiguous_format)
    model._dfnb_channels_last = False
