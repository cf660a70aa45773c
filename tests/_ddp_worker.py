"""A toy face-forgery data set and a one-thread fixture for engine tests, and the torchrun worker of the DDP test.

Run as ``python -m torch.distributed.run --nproc_per_node=2 tests/_ddp_worker.py OUT.json``:
trains ``toy_cnn`` for one epoch on CPU (gloo) and rank 0 writes the history and a
weight checksum to OUT.json.
"""
from __future__ import annotations

import json
import sys

import pytest
import torch
from torch.utils.data import Dataset


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread is faster and avoids oversubscribing shared CPUs (import it into a test module)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class ToyFaces(Dataset):
    """``n`` items in the ``dfnb.data`` format: real = smooth noise, fake = noise plus a
    bright square whose mask is the ground truth.  Two frames per video."""

    def __init__(self, n: int = 32, size: int = 16, seed: int = 0, split: str = "train"):
        g = torch.Generator().manual_seed(seed)
        self.split = split
        self.images = torch.rand(n, 3, size, size, generator=g) * 0.5
        self.masks = torch.zeros(n, 1, size, size)
        self.labels = torch.arange(n) % 2
        for i in range(n):
            if self.labels[i]:
                y, x = torch.randint(0, size - 6, (2,), generator=g).tolist()
                self.masks[i, :, y:y + 6, x:x + 6] = 1.0
                self.images[i, :, y:y + 6, x:x + 6] += 0.4
        self.images.clamp_(0, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        lab = int(self.labels[i])
        return {"image": self.images[i], "mask": self.masks[i], "label": torch.tensor(lab),
                "video_id": f"v{i // 4}", "method": "square" if lab else "real", "dataset": "toy"}


class ToyMethodFaces(ToyFaces):
    """ToyFaces whose fakes are the manipulation "square" (``methods``, for per-manipulation ACC)."""

    @property
    def methods(self):
        return ["square" if int(v) else "real" for v in self.labels]


def toy_splits(size: int = 64):
    """``(train, val, test)`` ToyMethodFaces of 8, 4 and 4 images, fingerprinted ``toy-0/1/2`` for the cache."""
    sets = tuple(ToyMethodFaces(n, size=size, seed=s) for n, s in ((8, 0), (4, 1), (4, 2)))
    for i, d in enumerate(sets):
        d.fingerprint = f"toy-{i}"
    return sets


def train_one_epoch(out_dir=None, progress=False):
    import dfnb
    from dfnb.engine import fit, seed_everything

    seed_everything(0)
    model = dfnb.create_model("toy_cnn", width=4)
    hist = fit(model, ToyFaces(32, seed=1), ToyFaces(16, seed=2, split="val"), epochs=1, batch_size=8, lr=1e-2,
               seed=3, schedule="cosine", out_dir=out_dir, progress=progress)
    return model, hist


if __name__ == "__main__":
    from dfnb.engine import distributed

    model, hist = train_one_epoch()
    if torch.distributed.get_rank() == 0:
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        with open(sys.argv[1], "w") as f:
            json.dump({"history": hist.epochs, "params": flat.tolist(),
                       "world_size": torch.distributed.get_world_size()}, f)
    distributed.cleanup()
