"""Checkpoints: save with the architecture that made them, load with ``weights_only=True``.

A checkpoint is a dict of tensors and plain Python types::

    {"model": state_dict, "arch": {"name": str, "kwargs": dict}, "epoch": int,
     "optimizer": state_dict | None, "scheduler": state_dict | None,
     "rng": {...} (dfnb.engine.seed.get_rng_state), "config": dict | None,
     "history": list[dict] | None, "best": dict | None, "extra": dict | None,
     "dfnb_version": str}

``arch`` is ``model.dfnb_arch`` (set by the ``dfnb.models`` factories), so that
:func:`load_model` can rebuild the model with ``dfnb.create_model`` and
``dfnb predict --method`` can be checked against it.  Loading into a model of a
different architecture raises a ``ValueError`` naming both and the first
mismatching keys / shapes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

# kwargs that change how weights are initialised, not the architecture
_INIT_ONLY_KWARGS = ("pretrained",)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper (or ``model``)."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


def arch_of(model: nn.Module) -> dict[str, Any]:
    """``{"name", "kwargs"}`` of ``model``: its ``dfnb_arch`` or, failing that, its class path."""
    m = unwrap(model)
    arch = getattr(m, "dfnb_arch", None)
    if arch is None:
        return {"name": f"{type(m).__module__}.{type(m).__qualname__}", "kwargs": {}}
    return {"name": str(arch["name"]), "kwargs": _plain(dict(arch.get("kwargs", {})), "arch kwargs")}


def _plain(obj: Any, what: str) -> Any:
    """Check ``obj`` is made of plain types (so ``weights_only=True`` can load it); tuples become lists."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [_plain(v, what) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _plain(v, what) for k, v in obj.items()}
    raise TypeError(f"{what}: value {obj!r} of type {type(obj).__name__} is not a plain type (bool/int/float/str/list/dict)")


def _same_arch(a: dict, b: dict) -> bool:
    def core(x: dict) -> tuple:
        kw = {k: v for k, v in x.get("kwargs", {}).items() if k not in _INIT_ONLY_KWARGS}
        return x["name"], _plain(kw, "arch kwargs")

    return core(a) == core(b)


def _fmt_arch(a: dict) -> str:
    kw = ", ".join(f"{k}={v!r}" for k, v in a.get("kwargs", {}).items())
    return f"{a['name']}({kw})"


def state_dict_mismatches(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], limit: int = 5) -> list[str]:
    """Human-readable differences between two state dicts (missing / unexpected keys, shapes)."""
    out = []
    for k in expected:
        if k not in found:
            out.append(f"missing key {k!r} (expected shape {tuple(expected[k].shape)})")
        elif tuple(found[k].shape) != tuple(expected[k].shape):
            out.append(f"{k!r}: checkpoint shape {tuple(found[k].shape)}, model shape {tuple(expected[k].shape)}")
        if len(out) >= limit:
            return out
    for k in found:
        if k not in expected:
            out.append(f"unexpected key {k!r} (shape {tuple(found[k].shape)})")
            if len(out) >= limit:
                break
    return out


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, epoch: int, optimizer=None, scheduler=None,
                    config: dict | None = None, history: list | None = None, best: dict | None = None,
                    extra: dict | None = None, rng: dict | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename) and return its path.

    ``model`` may be DDP-wrapped.  ``rng`` defaults to the current RNG states.
    """
    from dfnb import __version__
    from dfnb.engine.seed import get_rng_state

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    m = unwrap(model)
    ckpt = {
        "model": {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()},  # not channels_last
        "arch": _plain(arch_of(m), "arch"),
        "epoch": int(epoch),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng if rng is not None else get_rng_state(),
        "config": _plain(config, "config"),
        "history": _plain(history, "history"),
        "best": _plain(best, "best"),
        "extra": extra,
        "dfnb_version": __version__,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with clear errors for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle errors of all kinds
        raise ValueError(f"checkpoint {path} cannot be loaded with weights_only=True "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "arch" not in ckpt:
        raise ValueError(f"{path} is not a dfnb checkpoint (expected a dict with 'model' and 'arch')")
    return ckpt


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, optimizer=None, scheduler=None, *,
                    map_location: str | torch.device = "cpu", restore_rng: bool = False) -> dict[str, Any]:
    """Load a checkpoint (``weights_only=True``) into ``model`` / ``optimizer`` / ``scheduler``.

    Returns the checkpoint dict.  Raises ``ValueError`` if ``model``'s architecture
    (``arch_of(model)``, ignoring ``pretrained``) differs from the checkpoint's, naming
    expected vs found and the first mismatching keys / shapes; also if the state dicts
    differ although the names agree.
    """
    ckpt = read_checkpoint(path, map_location)
    if model is not None:
        m = unwrap(model)
        want = arch_of(m)
        found = ckpt["arch"]
        own = m.state_dict()
        diffs = state_dict_mismatches(own, ckpt["model"])
        if not _same_arch(want, found) or diffs:
            raise ValueError(
                f"checkpoint {path} does not fit the model: checkpoint arch {_fmt_arch(found)}, "
                f"model arch {_fmt_arch(want)}"
                + (f"; first mismatches: {'; '.join(diffs)}" if diffs else "")
            )
        m.load_state_dict(ckpt["model"], strict=True)
    if optimizer is not None:
        if ckpt.get("optimizer") is None:
            raise ValueError(f"checkpoint {path} holds no optimizer state")
        optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        if ckpt.get("scheduler") is None:
            raise ValueError(f"checkpoint {path} holds no scheduler state")
        scheduler.load_state_dict(ckpt["scheduler"])
    if restore_rng and ckpt.get("rng") is not None:
        from dfnb.engine.seed import set_rng_state

        set_rng_state(ckpt["rng"])
    return ckpt


def load_model(path: str | os.PathLike, method: str | None = None, device: str = "cpu") -> nn.Module:
    """Rebuild the model a checkpoint was saved from (``dfnb.create_model``) and load its weights.

    ``method``: if given, must equal the checkpoint's architecture name (else ``ValueError``).
    ``pretrained`` is forced to False when rebuilding (the weights come from the checkpoint).
    Returns the model in eval mode on ``device``.
    """
    from dfnb.registry import create_model, list_models

    ckpt = read_checkpoint(path)
    arch = ckpt["arch"]
    if method is not None and method != arch["name"]:
        raise ValueError(f"--method {method!r} does not match checkpoint {path}, which was saved from "
                         f"{_fmt_arch(arch)}")
    if arch["name"] not in list_models():
        raise ValueError(f"checkpoint {path} was saved from {_fmt_arch(arch)}, which is not a registered dfnb model "
                         "(give the model a dfnb_arch via a registered factory to make it rebuildable)")
    kwargs = dict(arch.get("kwargs", {}))
    if "pretrained" in kwargs:
        kwargs["pretrained"] = False
    model = create_model(arch["name"], **kwargs)
    load_checkpoint(path, model)
    return model.to(device).eval()
