"""``fit`` and ``evaluate``: the one training / evaluation harness every chapter uses.

``fit`` trains any model that follows the method contract of :mod:`dfnb.registry`
(``model(images)["logit"]``, ``model.losses(out, batch)["loss"]``), evaluates it on
the **validation** split after every epoch and keeps the best epoch by a
validation metric.  There is deliberately no parameter for a test split: test data
never takes part in checkpoint selection (a data set whose ``split`` is "test" is
refused as ``val_set``).  Evaluate on test yourself, once, after ``fit``.

Checkpoints (``out_dir/ckpt/epoch_XXX.pt``, ``last.pt``, ``best.pt``) are written
after every epoch; a run into an ``out_dir`` that holds checkpoints resumes from
``last.pt`` if its configuration is the same, and raises otherwise (nothing is
silently overwritten).  Every epoch re-seeds from ``(seed, epoch)``, so an
interrupted and resumed run equals an uninterrupted one exactly on CPU.

GPU defaults (:mod:`dfnb.engine.precision`, :mod:`dfnb.engine.loader`): ``precision=None`` and
``num_workers=None`` read ``$DFNB_PRECISION`` / ``$DFNB_NUM_WORKERS`` (``dfnb run --precision
--workers`` set them) and otherwise mean fp32 and 0 workers on CPU, bf16 (where supported) and
``min(8, cores)`` workers on CUDA; an explicit argument wins.  ``report_cost`` prints the expected
memory and time per epoch, measured on the first batch (:func:`dfnb.engine.cost.cost_probe`).
"""
from __future__ import annotations

import copy
import math
import os
import random
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, DistributedSampler, default_collate

from dfnb.engine import distributed as D
from dfnb.engine import loader as L
from dfnb.engine import precision as P
from dfnb.engine.checkpoint import arch_of, load_checkpoint, read_checkpoint, save_checkpoint, unwrap
from dfnb.engine.config import TrainConfig
from dfnb.engine.seed import derive_seed, seed_everything

__all__ = ["History", "fit", "evaluate", "build_optimizer", "build_scheduler"]


@dataclass
class History:
    """What ``fit`` did.

    Attributes:
        epochs: one dict per epoch: ``epoch`` (1-based), ``lr`` (at the epoch's end),
            ``train`` (mean of each ``model.losses`` part over the epoch's samples),
            ``val`` (flat validation metrics: ``frame_auc``, ..., ``loss``, localization
            entries prefixed ``loc_``), ``time_s``.
        best_epoch, best_metric: the epoch kept as ``best.pt`` and its ``select_metric``.
        select_metric: the validation metric used for selection.
        wall_time_s: wall time of this call (not of earlier, resumed-from calls).
        out_dir: where checkpoints went (None: kept in memory only).
        resumed_from: the epoch of the checkpoint this call resumed from (0: fresh run).
    """

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_metric: float | None = None
    select_metric: str = "auc"
    wall_time_s: float = 0.0
    out_dir: str | None = None
    resumed_from: int = 0

    def to_frame(self):
        """A pandas DataFrame, one row per epoch, columns ``train_*`` / ``val_*``."""
        import pandas as pd

        rows = []
        for e in self.epochs:
            row = {"epoch": e["epoch"], "lr": e["lr"], "time_s": e["time_s"]}
            row.update({f"train_{k}": v for k, v in e["train"].items()})
            row.update({f"val_{k}": v for k, v in (e.get("val") or {}).items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def as_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- building blocks
def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD over the parameters that require grad."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no parameters that require grad; nothing to train")
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def lr_factor(step: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    """Multiplier of ``cfg.lr`` at optimizer step ``step`` (0-based)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "none":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** (step // (cfg.step_epochs * steps_per_epoch))
    total = max(1, cfg.epochs * steps_per_epoch - cfg.warmup_steps)  # cosine
    t = min(1.0, (step - cfg.warmup_steps) / total)
    return 0.5 * (1.0 + math.cos(math.pi * t))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """A per-step ``LambdaLR`` following :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg, steps_per_epoch))


def _split_names(ds: Any, depth: int = 0) -> list[str]:
    """``split`` labels found on a data set and on what it wraps (Subset, ConcatDataset)."""
    if ds is None or depth > 5:
        return []
    found = []
    s = getattr(ds, "split", None)
    if isinstance(s, str):
        found.append(s)
    meta = getattr(ds, "meta", None)  # dfnb.data.FaceForgeryDataset: meta.json, split under "params"
    if isinstance(meta, dict):
        for d in (meta, meta.get("params")):
            if isinstance(d, dict) and isinstance(d.get("split"), str):
                found.append(d["split"])
    found += _split_names(getattr(ds, "dataset", None), depth + 1)
    for sub in getattr(ds, "datasets", None) or []:
        found += _split_names(sub, depth + 1)
    return found


def _to_device(batch: dict, device: str, channels_last: bool = False) -> dict:
    out = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
    if channels_last and out["image"].dim() == 4:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out


def _check_batch(batch: Any) -> None:
    if not isinstance(batch, dict) or "image" not in batch or "label" not in batch:
        got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"data set items must be dicts with at least 'image' and 'label' (dfnb.data format); got {got}")


def _reseed(seed: int, *tags: Any) -> None:
    s = derive_seed(seed, *tags)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def report_cost_default(report_cost: bool | None, device: str) -> bool:
    """``report_cost``, else ``$DFNB_REPORT_COST`` ("1" / "0"), else on CUDA only."""
    if report_cost is not None:
        return bool(report_cost)
    env = os.environ.get("DFNB_REPORT_COST", "").strip()
    if env:
        if env not in ("0", "1"):
            raise ValueError(f"$DFNB_REPORT_COST={env!r} must be 0 or 1")
        return env == "1"
    return str(device).startswith("cuda")


def _probe_batch(train_set, per_rank_bs: int, device: str, channels_last: bool, transform) -> dict:
    """The first ``per_rank_bs`` training items, collated, on ``device`` (and transformed), as a step sees them."""
    batch = _to_device(default_collate([train_set[i] for i in range(min(per_rank_bs, len(train_set)))]),
                       device, channels_last)
    if transform is not None:
        batch = transform(batch, torch.Generator().manual_seed(0))
    return batch


def _identity(cfg: TrainConfig, model: nn.Module, train_set, val_set) -> dict:
    return {"config": cfg.identity(), "arch": arch_of(model), "train_size": len(train_set),
            "val_size": None if val_set is None else len(val_set)}


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: checkpoint {va!r}, this run {vb!r}")
    return out


def _write_json(path: Path, obj: Any) -> None:
    import json

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


# ----------------------------------------------------------------------------- fit
def fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset | None,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    weight_decay: float = 1e-4,
    optimizer: str = "adamw",
    schedule: str = "cosine",
    device: str = "cpu",
    out_dir: str | os.PathLike | None = None,
    resume: bool = True,
    select_metric: str = "auc",
    num_workers: int | None = None,
    precision: str | None = None,
    max_steps_per_epoch: int | None = None,
    train_transform: Callable[[dict, torch.Generator], dict] | None = None,
    progress: bool = True,
    momentum: float = 0.9,
    warmup_steps: int = 0,
    step_epochs: int = 1,
    gamma: float = 0.1,
    grad_clip: float | None = None,
    restore_best: bool = True,
    find_unused_parameters: bool = False,
    report_cost: bool | None = None,
) -> History:
    """Train ``model`` on ``train_set``, select the best epoch on ``val_set``.

    Args:
        model: follows the method contract (``model(images)["logit"]`` (B,),
            ``model.losses(out, batch)["loss"]``).  Its initial weights are the caller's:
            call :func:`dfnb.engine.seed_everything` before creating it for a repeatable init.
        train_set, val_set: data sets of ``dfnb.data`` dicts (``image`` (3, H, W) in [0, 1],
            ``mask`` (1, H, W), ``label``, ``video_id``, ``method``, ``dataset``).
            ``val_set`` is the **validation** split: it alone picks ``best.pt``; a test split
            is refused (there is no way to select on test).  ``None``: no validation, the
            last epoch counts as best (with a warning).
        epochs, batch_size (global, split over torchrun processes), lr, weight_decay,
        optimizer ("adamw" | "sgd"), schedule ("cosine" | "step" | "none"), momentum,
        warmup_steps, step_epochs, gamma, grad_clip, seed, select_metric,
        max_steps_per_epoch: see :class:`dfnb.engine.TrainConfig`.
        device: "cpu" | "cuda" | "cuda:N" (under torchrun: each process's ``cuda:LOCAL_RANK``).
        num_workers: DataLoader workers; None: ``$DFNB_NUM_WORKERS``, else 0 on CPU and
            ``min(8, cores)`` on CUDA (:func:`dfnb.engine.loader.resolve_num_workers`).
        precision: "fp32" | "bf16" | "fp16": autocast around the forward pass, losses in fp32,
            loss scaling for fp16 on CUDA; weights and checkpoints stay fp32.  None:
            ``$DFNB_PRECISION``, else fp32 on CPU and bf16 on CUDA where supported
            (:func:`dfnb.engine.precision.resolve_precision`).  Part of the run's identity.
        out_dir: checkpoints go to ``out_dir/ckpt/{epoch_XXX,last,best}.pt``; None keeps
            nothing on disk (and cannot resume).
        resume: continue from ``out_dir/ckpt/last.pt`` when it holds the same run
            (same config but for ``epochs``/``device``/``num_workers``/``progress``, same
            architecture and data-set sizes).  A different run there always raises;
            ``resume=False`` with existing checkpoints raises too.
        train_transform: ``f(batch, generator) -> batch`` applied to each collated training
            batch (on ``device``) before the forward pass, e.g. PRLE's masking; draw all its
            randomness from ``generator`` (a CPU ``torch.Generator`` seeded per epoch).
        progress: tqdm progress bars (rank 0 only).
        restore_best: leave the best epoch's weights in ``model`` at the end (else the last).
        find_unused_parameters: passed to ``DistributedDataParallel`` (needed under torchrun
            when some trainable parameters get no gradient in a step).
        report_cost: before the first epoch, print the expected memory and time per epoch measured
            on the first batch (:func:`dfnb.engine.cost.cost_probe`; rank 0).  None:
            ``$DFNB_REPORT_COST`` (1 / 0), else on CUDA only.

    On CUDA, models with 2-D convolutions train in ``channels_last`` memory format (put back to
    contiguous at the end) and the training DataLoader pins memory and keeps its workers.

    With ``out_dir``, rank 0 also writes ``out_dir/history.json`` (``History.as_dict()``)
    after every epoch.

    Returns:
        :class:`History`.  Under torchrun every process returns the same history; only
        rank 0 writes checkpoints.

    Extending a finished run (``epochs`` larger than before, same ``out_dir``) continues
    from ``last.pt``; with ``schedule="cosine"`` the learning rate then follows the new,
    longer cosine (a warning says so), which an uninterrupted run of the new length would
    have followed from the start.
    """
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, weight_decay=weight_decay,
                      optimizer=optimizer, momentum=momentum, schedule=schedule, warmup_steps=warmup_steps,
                      step_epochs=step_epochs, gamma=gamma, device=device, select_metric=select_metric,
                      num_workers=L.resolve_num_workers(num_workers, device),
                      precision=P.resolve_precision(precision, device),
                      max_steps_per_epoch=max_steps_per_epoch, grad_clip=grad_clip, progress=progress)
    if "test" in _split_names(val_set):
        raise ValueError("val_set is a test split: fit selects checkpoints on the validation split only. "
                         "Pass the validation split and evaluate on test once, after fit.")
    if "test" in _split_names(train_set):
        raise ValueError("train_set is a test split; train on the training split")
    if len(train_set) == 0:
        raise ValueError("train_set is empty")
    if val_set is not None and len(val_set) == 0:
        raise ValueError("val_set is empty")
    if train_transform is not None and not callable(train_transform):
        raise TypeError(f"train_transform must be callable f(batch, generator), got {type(train_transform).__name__}")
    if not hasattr(unwrap(model), "losses"):
        raise TypeError(f"{type(unwrap(model)).__name__} has no losses(out, batch) method (see dfnb.registry)")

    t_start = time.perf_counter()
    info = D.setup(cfg.device)
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} (global) is not divisible by the {info.world_size} processes")
    per_rank_bs = cfg.batch_size // info.world_size
    seed_everything(cfg.seed)

    raw = unwrap(model).to(info.device)
    converted = P.use_channels_last(raw, info.device)
    channels_last = P.channels_last_active(raw)
    opt = build_optimizer(raw, cfg)
    n_per_rank = math.ceil(len(train_set) / info.world_size)
    steps_per_epoch = math.ceil(n_per_rank / per_rank_bs)
    if cfg.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    scaler = P.grad_scaler(info.device, cfg.precision)

    identity = _identity(cfg, raw, train_set, val_set)
    history = History(select_metric=cfg.select_metric, out_dir=None if out_dir is None else str(out_dir))
    best_state: dict | None = None
    start_epoch = 1
    ckpt_dir = None if out_dir is None else Path(out_dir) / "ckpt"
    if ckpt_dir is not None and ckpt_dir.is_dir() and any(ckpt_dir.glob("*.pt")):
        last = ckpt_dir / "last.pt"
        if not last.is_file():
            raise ValueError(f"{ckpt_dir} holds checkpoints but no last.pt; move them away or choose another out_dir")
        prev = read_checkpoint(last)
        prev_id = (prev.get("extra") or {}).get("identity")
        if prev_id and "precision" not in prev_id.get("config", {}):  # written before precision existed: fp32
            prev_id["config"]["precision"] = "fp32"
        diffs = _diff(prev_id or {}, identity) if prev_id else ["(no run identity stored)"]
        if diffs:
            raise ValueError(f"{ckpt_dir} holds checkpoints of a different run; refusing to overwrite them. "
                             f"Differences: {'; '.join(diffs)}. Choose another out_dir or delete that folder.")
        if not resume:
            raise ValueError(f"{ckpt_dir} already holds checkpoints of this run (epoch {prev['epoch']}); "
                             "pass resume=True to continue it, or choose another out_dir")
        load_checkpoint(last, raw, opt, sched, map_location=info.device, restore_rng=True)
        if scaler.is_enabled() and (prev.get("extra") or {}).get("grad_scaler"):
            scaler.load_state_dict(prev["extra"]["grad_scaler"])
        prev_cfg = prev.get("config") or {}
        if cfg.schedule == "cosine" and prev_cfg.get("epochs") not in (None, cfg.epochs):
            warnings.warn(f"resuming a cosine schedule planned for {prev_cfg['epochs']} epochs with epochs={cfg.epochs}: "
                          "the learning rate now follows the longer cosine from its current step", stacklevel=2)
        history.epochs = list(prev.get("history") or [])
        best = prev.get("best") or {}
        history.best_epoch, history.best_metric = best.get("epoch"), best.get("metric")
        history.resumed_from = int(prev["epoch"])
        start_epoch = history.resumed_from + 1

    tqdm = _tqdm(cfg.progress and info.is_main)
    if start_epoch <= cfg.epochs and info.is_main and report_cost_default(report_cost, info.device):
        from dfnb.engine.cost import cost_line, cost_probe

        probe = _probe_batch(train_set, per_rank_bs, info.device, channels_last, train_transform)
        print("fit: " + cost_line(cost_probe(raw, probe, device=info.device, precision=cfg.precision, optimizer=opt,
                                             steps_per_epoch=steps_per_epoch, world_size=info.world_size)), flush=True)
        del probe
    net: nn.Module = raw  # wrapped after the probe, whose backward must not reach DDP's gradient hooks
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(raw, device_ids=[info.local_rank] if info.device.startswith("cuda") else None,
                                                  find_unused_parameters=find_unused_parameters)
    sampler = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=derive_seed(cfg.seed, "order"), drop_last=False)
    loader_gen = torch.Generator()
    loader = L.train_loader(train_set, batch_size=per_rank_bs, sampler=sampler, num_workers=cfg.num_workers,
                            device=info.device, generator=loader_gen)
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        _reseed(cfg.seed, "epoch", epoch, info.rank)
        sampler.set_epoch(epoch)
        loader_gen.manual_seed(derive_seed(cfg.seed, "loader", epoch, info.rank))
        aug_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "transform", epoch, info.rank))
        net.train()
        sums: dict[str, float] = {}
        seen = 0
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}", leave=False)
        for step, batch in enumerate(loader):
            if step >= steps_per_epoch:
                break
            _check_batch(batch)
            batch = _to_device(batch, info.device, channels_last)
            if train_transform is not None:
                batch = train_transform(batch, aug_gen)
            with P.autocast(info.device, cfg.precision):
                out = net(batch["image"])
            parts = P.losses_fp32(raw, out, batch, info.device)
            loss = parts["loss"]
            if not torch.isfinite(loss):
                hint = f" (precision {cfg.precision}: try fp32)" if cfg.precision != "fp32" else ""
                raise FloatingPointError(f"non-finite loss {loss.item()} at epoch {epoch}, step {step}{hint}; "
                                         f"parts: { {k: float(v) for k, v in parts.items()} }")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip is not None:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            b = int(batch["image"].shape[0])
            seen += b
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * b
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        bar.close()
        keys = sorted(sums)
        tot = torch.tensor([sums[k] for k in keys] + [seen], dtype=torch.float64)
        if info.enabled:
            tot = D.all_reduce_mean(tot.to(info.device if info.device.startswith("cuda") else "cpu"), info).cpu()
        train_parts = {k: float(tot[i] / tot[-1]) for i, k in enumerate(keys)}

        val: dict[str, float] | None = None
        if val_set is not None:
            res = evaluate(raw, val_set, batch_size=per_rank_bs, device=info.device, num_workers=cfg.num_workers,
                           precision=cfg.precision, progress=cfg.progress and info.is_main, return_masks=False)
            val = _flatten_metrics(res)
            if cfg.metric_key not in val:
                raise ValueError(f"select_metric {cfg.select_metric!r} ({cfg.metric_key}) is not among the validation "
                                 f"metrics {sorted(val)}")
            value = float(val[cfg.metric_key])
        else:
            value = float(epoch)
            if epoch == start_epoch:
                warnings.warn("val_set is None: no checkpoint selection, best.pt is the last epoch", stacklevel=2)
        better = (history.best_metric is None or val_set is None
                  or (value > history.best_metric if cfg.higher_is_better else value < history.best_metric))
        if better and not math.isnan(value):
            history.best_epoch, history.best_metric = epoch, value
        history.epochs.append({"epoch": epoch, "lr": float(opt.param_groups[0]["lr"]), "train": train_parts,
                               "val": val, "time_s": time.perf_counter() - t0})
        is_best = history.best_epoch == epoch
        if is_best and ckpt_dir is None and restore_best:
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in raw.state_dict().items()})
        if ckpt_dir is not None and info.is_main:
            path = save_checkpoint(
                ckpt_dir / f"epoch_{epoch:03d}.pt", raw, epoch=epoch, optimizer=opt, scheduler=sched,
                config=cfg.to_dict(), history=history.epochs,
                best={"epoch": history.best_epoch, "metric": history.best_metric, "select_metric": cfg.select_metric},
                extra={"identity": identity, "world_size": info.world_size,
                       **({"grad_scaler": scaler.state_dict()} if scaler.is_enabled() else {})})
            if is_best:
                _copy_atomic(path, ckpt_dir / "best.pt")
            _copy_atomic(path, ckpt_dir / "last.pt")
            history.wall_time_s = time.perf_counter() - t_start
            _write_json(Path(out_dir) / "history.json", history.as_dict())
        D.barrier(info)
        if info.is_main and cfg.progress:
            msg = " ".join(f"{k}={v:.4f}" for k, v in train_parts.items())
            if val is not None:
                msg += f" | val {cfg.metric_key}={value:.4f}"
            tqdm.write(f"epoch {epoch}/{cfg.epochs}: {msg}" + (" (best)" if is_best else ""))

    del loader  # persistent workers end here
    if converted:
        P.contiguous(raw)
    last_epoch = history.epochs[-1]["epoch"] if history.epochs else 0
    if restore_best and history.best_epoch is not None and history.best_epoch != last_epoch:
        if best_state is not None:
            raw.load_state_dict(best_state)
        elif ckpt_dir is not None:
            load_checkpoint(ckpt_dir / "best.pt", raw, map_location=info.device)
    history.wall_time_s = time.perf_counter() - t_start
    return history


def _tqdm(enabled: bool):
    from tqdm.auto import tqdm

    if enabled:
        return tqdm

    class _Silent:
        def __init__(self, *a, **k):
            pass

        def update(self, *a):
            pass

        def set_postfix(self, *a, **k):
            pass

        def close(self):
            pass

        @staticmethod
        def write(*a, **k):
            pass

        def __iter__(self):
            return iter(())

    return _Silent


def _flatten_metrics(res: dict) -> dict[str, float]:
    flat = {k: float(v) for k, v in res["detection"].items()}
    if res.get("loss") is not None:
        flat["loss"] = float(res["loss"])
    for k, v in (res.get("localization") or {}).items():
        flat[f"loc_{k}"] = float(v)
    return flat


# ----------------------------------------------------------------------------- evaluate
@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, *, batch_size: int, device: str = "cpu", num_workers: int | None = None,
             precision: str | None = None, progress: bool = True, return_masks: bool = True,
             threshold: float = 0.5) -> dict[str, Any]:
    """Run ``model`` over ``dataset`` in order and report detection (and localization) metrics.

    Returns a dict:
        ``detection``: ``dfnb.metrics.detection_report`` (frame-level, and video-level when
        the items carry ``video_id``; a video is the key ``(dataset, method, video_id)``);
        ``localization``: ``dfnb.metrics.localization_report`` when the model outputs
        ``mask_logit`` (predicted masks resized to the ground truth's size), else None; fakes whose
        true mask is unknown (items' ``has_mask`` False) are left out and counted (``n_no_mask``),
        and it is None when no fake has a true mask (Celeb-DF, DF-TIMIT);
        ``loss``: mean ``model.losses(...)["loss"]`` per sample (None without ``losses``);
        ``probs`` (N,) float64 P(fake); ``labels`` (N,) int64; ``keys``: N video keys
        (tuples) or None; ``pred_masks`` (N, 1, H, W) float32 in [0, 1] when the model
        has a mask head and ``return_masks``; ``n``: N.

    ``num_workers`` / ``precision``: as for :func:`fit` (None: the environment, else the device's
    default).  Under bf16 / fp16 the forward pass runs in autocast; probabilities, masks, losses and
    metrics are computed in fp32.

    The model is put in eval mode (and left there).
    """
    from dfnb import metrics

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if len(dataset) == 0:
        raise ValueError("evaluate: the data set is empty")
    device = D.resolve_device(device)
    precision = P.resolve_precision(precision, device)
    raw = unwrap(model).to(device).eval()
    converted = P.use_channels_last(raw, device)
    channels_last = P.channels_last_active(raw)
    loader = L.eval_loader(dataset, batch_size=batch_size, num_workers=L.resolve_num_workers(num_workers, device),
                           device=device)
    probs, labels, keys, preds, gts, known = [], [], [], [], [], []
    loss_sum, n, has_keys, has_losses = 0.0, 0, True, hasattr(raw, "losses")
    from tqdm.auto import tqdm

    for batch in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
        _check_batch(batch)
        batch = _to_device(batch, device, channels_last)
        with P.autocast(device, precision):
            out = raw(batch["image"])
        out = P.fp32(out)
        b = int(batch["image"].shape[0])
        probs.append(torch.sigmoid(out["logit"].float()).cpu())
        labels.append(batch["label"].cpu())
        if all(k in batch for k in ("dataset", "method", "video_id")):
            keys += list(zip(batch["dataset"], batch["method"], batch["video_id"]))
        else:
            has_keys = False
        if has_losses:
            loss_sum += float(P.losses_fp32(raw, out, batch, device)["loss"]) * b
        if "mask_logit" in out:
            if "mask" not in batch:
                raise ValueError("the model predicts masks but the data set items have no 'mask'")
            pm = torch.sigmoid(out["mask_logit"].float())
            gt = batch["mask"].float()
            if pm.shape[-2:] != gt.shape[-2:]:
                pm = torch.nn.functional.interpolate(pm, size=gt.shape[-2:], mode="bilinear", align_corners=False)
            preds.append(pm.cpu())
            gts.append(gt.cpu())
            if "has_mask" in batch:
                known.append(batch["has_mask"].cpu().view(-1).bool())
        n += b
    if converted:
        P.contiguous(raw)
    p = torch.cat(probs).double().numpy()
    y = torch.cat(labels).long().numpy().reshape(-1)
    keys_out = keys if has_keys else None
    try:
        det = metrics.detection_report(y, p, video_keys=keys_out, threshold=threshold)
    except ValueError as e:
        raise ValueError(f"evaluate: detection metrics undefined on this data set of {n} items "
                         f"({int(y.sum())} fake, {int((y == 0).sum())} real): {e}") from e
    res: dict[str, Any] = {"detection": det, "localization": None, "loss": loss_sum / n if has_losses else None,
                           "probs": p, "labels": y, "keys": keys_out, "n": n}
    if preds:
        pm = torch.cat(preds).numpy()
        has_mask = torch.cat(known).numpy() if known and not torch.cat(known).all() else None  # None: all true
        if has_mask is None or (y[has_mask] == 1).any():  # else no fake has a true mask (Celeb-DF, DF-TIMIT)
            res["localization"] = metrics.localization_report(pm, torch.cat(gts).numpy(), y, threshold=threshold,
                                                              has_mask=has_mask)
        if return_masks:
            res["pred_masks"] = pm
    return res
