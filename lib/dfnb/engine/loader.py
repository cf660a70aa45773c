"""DataLoaders of :func:`dfnb.engine.fit` / :func:`dfnb.engine.evaluate`: workers, pinning, seeding.

``num_workers=None`` (the default) means ``$DFNB_NUM_WORKERS`` when set (``dfnb run --workers``),
else 0 on CPU (the chapters' recorded runs decode in the main process) and ``min(8, cores)`` on
CUDA, ``cores`` being the CPUs this process may use divided among the torchrun processes of the
machine (``LOCAL_WORLD_SIZE``).  An explicit argument always wins over the environment.

On CUDA the training loader pins memory and keeps its workers alive across epochs
(``persistent_workers``).  Workers are seeded: the loader's ``generator`` draws their base seed and
:func:`dfnb.engine.seed.worker_init_fn` seeds each worker's ``random`` / NumPy from it, so the same
seed gives the same batches with any number of workers.  ``fit`` reseeds the generator every epoch
from ``(seed, epoch, rank)``: without persistent workers each epoch's workers start afresh from it
(an interrupted and resumed run repeats the uninterrupted one); persistent workers are seeded once,
when the first epoch of a ``fit`` call starts them (dfnb's data sets draw no randomness in
``__getitem__``, so their batches do not depend on it).
"""
from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from dfnb.engine.seed import worker_init_fn

ENV = "DFNB_NUM_WORKERS"
MAX_DEFAULT_WORKERS = 8


def usable_cores() -> int:
    """CPUs this process may run on, shared among the torchrun processes of this machine."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def resolve_num_workers(num_workers: int | None, device: str = "cpu") -> int:
    """DataLoader workers: ``num_workers``, else ``$DFNB_NUM_WORKERS``, else 0 on CPU / ``min(8, cores)`` on CUDA.

    Raises ``ValueError`` (one line, naming where the value came from) unless it is an integer >= 0.
    """
    source = "num_workers"
    if num_workers is None and os.environ.get(ENV, "").strip():
        raw, source = os.environ[ENV].strip(), f"${ENV}"
        try:
            num_workers = int(raw)
        except ValueError:
            raise ValueError(f"{source}={raw!r} is not a number of DataLoader workers (an integer >= 0)") from None
    if num_workers is None:
        return min(MAX_DEFAULT_WORKERS, usable_cores()) if str(device).startswith("cuda") else 0
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"{source} must be an integer >= 0, got {num_workers!r}")
    return num_workers


def train_loader(dataset: Dataset, *, batch_size: int, sampler: Sampler, num_workers: int, device: str,
                 generator: torch.Generator, persistent: bool | None = None) -> DataLoader:
    """The training DataLoader: ``sampler`` order, seeded workers (``generator``), pinned memory on CUDA.

    ``persistent``: keep the workers across epochs (default: on CUDA when there are workers).
    Reseed ``generator`` before each epoch's ``iter(loader)``.
    """
    cuda = str(device).startswith("cuda")
    if persistent is None:
        persistent = cuda
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      worker_init_fn=worker_init_fn, generator=generator, pin_memory=cuda,
                      persistent_workers=bool(persistent and num_workers > 0))


def eval_loader(dataset: Dataset, *, batch_size: int, num_workers: int, device: str) -> DataLoader:
    """The evaluation DataLoader: the data set in order, pinned memory on CUDA."""
    from torch.utils.data import SequentialSampler

    return DataLoader(dataset, batch_size=batch_size, sampler=SequentialSampler(dataset), num_workers=num_workers,
                      worker_init_fn=worker_init_fn, pin_memory=str(device).startswith("cuda"))
