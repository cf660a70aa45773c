"""``TrainConfig``: every training hyper-parameter of :func:`dfnb.engine.fit`, validated.

The config (plus the model's architecture and the data-set sizes) is stored in
every checkpoint; a run into an ``out_dir`` that already holds checkpoints must
have the same *identity* (all fields but the ones in ``NOT_IDENTITY``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dfnb.engine.precision import PRECISIONS

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step", "none")
# metric name -> True if higher is better.  "loss" is the validation loss; the others are
# keys of dfnb.metrics.detection_report (a bare name like "auc" means "frame_auc").
SELECT_METRICS = {
    "auc": True, "acc": True, "ap": True, "eer": False,
    "frame_auc": True, "frame_acc": True, "frame_ap": True, "frame_eer": False,
    "video_auc": True, "video_acc": True, "video_ap": True, "video_eer": False,
    "loss": False,
}
# Fields that may change between an interrupted run and its resumption.
NOT_IDENTITY = ("epochs", "device", "num_workers", "progress")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run.

    Attributes:
        epochs: number of epochs (>= 1).
        batch_size: *global* batch size (split over data-parallel processes).
        lr: peak learning rate (> 0).
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay (>= 0).
        optimizer: "adamw" or "sgd" (SGD uses ``momentum``, Nesterov off).
        momentum: SGD momentum in [0, 1).
        schedule: per-step learning-rate schedule: "cosine" (to 0 over all steps, after
            ``warmup_steps`` of linear warm-up), "step" (times ``gamma`` every
            ``step_epochs`` epochs) or "none".
        warmup_steps: linear warm-up steps (>= 0).
        step_epochs, gamma: of the "step" schedule.
        seed: seed of everything (model init is the caller's; data order, augmentation,
            dropout are derived per epoch from it).
        device: "cpu", "cuda" or "cuda:N".
        select_metric: validation metric that picks ``best.pt`` (see ``SELECT_METRICS``).
        num_workers: DataLoader workers (``fit`` resolves its ``None`` before building the config).
        precision: "fp32", "bf16" or "fp16" (autocast of the forward pass; part of the identity:
            a resumed run keeps its precision).
        max_steps_per_epoch: cap on optimizer steps per epoch (smoke runs), or None.
        grad_clip: max global gradient norm, or None.
        progress: show tqdm progress bars.
    """

    epochs: int
    batch_size: int
    lr: float
    seed: int
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    momentum: float = 0.9
    schedule: str = "cosine"
    warmup_steps: int = 0
    step_epochs: int = 1
    gamma: float = 0.1
    device: str = "cpu"
    select_metric: str = "auc"
    num_workers: int = 0
    precision: str = "fp32"
    max_steps_per_epoch: int | None = None
    grad_clip: float | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"TrainConfig: {msg}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        need(is_int(self.epochs) and self.epochs >= 1, f"epochs must be an integer >= 1, got {self.epochs!r}")
        need(is_int(self.batch_size) and self.batch_size >= 1, f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        need(isinstance(self.lr, (int, float)) and self.lr > 0, f"lr must be > 0, got {self.lr!r}")
        need(isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0,
             f"weight_decay must be >= 0, got {self.weight_decay!r}")
        need(self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}")
        need(0 <= self.momentum < 1, f"momentum must lie in [0, 1), got {self.momentum!r}")
        need(self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        need(is_int(self.warmup_steps) and self.warmup_steps >= 0, f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        need(is_int(self.step_epochs) and self.step_epochs >= 1, f"step_epochs must be an integer >= 1, got {self.step_epochs!r}")
        need(0 < self.gamma <= 1, f"gamma must lie in (0, 1], got {self.gamma!r}")
        need(is_int(self.seed) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed!r}")
        need(isinstance(self.device, str) and (self.device == "cpu" or self.device.split(":")[0] == "cuda"),
             f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        need(self.select_metric in SELECT_METRICS,
             f"unknown select_metric {self.select_metric!r}; choose one of {sorted(SELECT_METRICS)} (computed on the validation split)")
        need(is_int(self.num_workers) and self.num_workers >= 0, f"num_workers must be an integer >= 0, got {self.num_workers!r}")
        need(self.precision in PRECISIONS, f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")
        need(self.max_steps_per_epoch is None or (is_int(self.max_steps_per_epoch) and self.max_steps_per_epoch >= 1),
             f"max_steps_per_epoch must be None or an integer >= 1, got {self.max_steps_per_epoch!r}")
        need(self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be None or > 0, got {self.grad_clip!r}")

    @property
    def higher_is_better(self) -> bool:
        return SELECT_METRICS[self.select_metric]

    @property
    def metric_key(self) -> str:
        """Key of the flattened validation metrics that ``select_metric`` names."""
        m = self.select_metric
        return f"frame_{m}" if m in ("auc", "acc", "ap", "eer") else m

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields two runs into one ``out_dir`` must share."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_IDENTITY}
