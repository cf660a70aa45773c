"""The one training / evaluation harness every chapter uses.

- :func:`fit` / :func:`evaluate` / :class:`History`       (``dfnb.engine.trainer``)
- :class:`TrainConfig`                                     (``dfnb.engine.config``)
- :func:`save_checkpoint` / :func:`load_checkpoint` / :func:`load_model`  (``dfnb.engine.checkpoint``)
- :func:`seed_everything`                                  (``dfnb.engine.seed``)
- torchrun data parallelism                                (``dfnb.engine.distributed``)
- mixed precision, DataLoader workers                      (``dfnb.engine.precision``, ``dfnb.engine.loader``)
- :func:`cost_probe` / :func:`cost_line`: a step's memory and time (``dfnb.engine.cost``)
"""
from dfnb.engine.checkpoint import arch_of, load_checkpoint, load_model, read_checkpoint, save_checkpoint
from dfnb.engine.config import TrainConfig
from dfnb.engine.cost import cost_line, cost_probe
from dfnb.engine.loader import resolve_num_workers
from dfnb.engine.precision import PRECISIONS, resolve_precision
from dfnb.engine.seed import derive_seed, seed_everything, worker_init_fn
from dfnb.engine.trainer import History, evaluate, fit

__all__ = ["fit", "evaluate", "History", "TrainConfig", "save_checkpoint", "load_checkpoint", "load_model",
           "read_checkpoint", "arch_of", "seed_everything", "derive_seed", "worker_init_fn", "cost_probe", "cost_line",
           "resolve_precision", "resolve_num_workers", "PRECISIONS"]
