#!/usr/bin/env python
"""Training throughput: ``dfnb.engine.fit`` against a bare PyTorch loop, and 2 threads against 1.

    python scripts/bench_train.py [--model efficientnet_lite0] [--size 96] [--videos 40] [--steps 20] [--bs 32]

Same model (same init), same data (``ffpp-syn`` train, HQ, decoded once into memory), same AdamW steps.
The bare loop is what ``fit`` does minus its bookkeeping (seeding, schedule, loss parts, history), so
their ratio is the harness's overhead.  Each configuration is timed after one warm-up step.  Prints a
table and one JSON line.  Plan a chapter's budget from the images/s it prints.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

import torch  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402


def bare_loop(model, ds, steps: int, bs: int, lr: float) -> float:
    """images/s of a plain shuffle -> forward -> loss -> backward -> AdamW loop."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    loader = DataLoader(ds, batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(0))
    model.train()
    it, seen, t0 = iter(loader), 0, None
    for step in range(steps + 1):
        batch = next(it)
        out = model(batch["image"])
        loss = model.losses(out, batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step == 0:
            t0 = time.perf_counter()  # warm-up step excluded
        else:
            seen += batch["image"].shape[0]
    return seen / (time.perf_counter() - t0)


def engine_fit(model, ds, steps: int, bs: int, lr: float) -> float:
    """images/s of ``dfnb.engine.fit`` over ``steps`` steps (one warm-up step run before, untimed)."""
    from dfnb import engine

    warm = Subset(ds, list(range(bs)))
    engine.fit(model, warm, None, epochs=1, batch_size=bs, lr=lr, seed=0, progress=False)
    t0 = time.perf_counter()
    engine.fit(model, ds, None, epochs=1, batch_size=bs, lr=lr, seed=0, progress=False, max_steps_per_epoch=steps)
    return steps * bs / (time.perf_counter() - t0)


def main(argv=None) -> int:
    import warnings

    from dfnb import create_model, data, engine

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message="val_set is None")
    ds = data.load_benchmark("ffpp-syn", "train", size=a.size, n_videos=a.videos, frames_per_video=4,
                             progress=False, in_memory=True)
    if len(ds) < (a.steps + 1) * a.bs:
        raise SystemExit(f"{len(ds)} faces are too few for {a.steps + 1} steps of {a.bs}; raise --videos")
    rows = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for kind, fn in (("bare loop", bare_loop), ("engine.fit", engine_fit)):
            engine.seed_everything(0)
            model = create_model(a.model)
            rows[kind, threads] = fn(model, ds, a.steps, a.bs, a.lr)
    print(f"{a.model} at {a.size} px, batch {a.bs}, {a.steps} timed steps, ffpp-syn train in memory "
          f"({len(ds)} faces), {os.cpu_count()} cores")
    print(f"{'':12s} {'1 thread':>10s} {'2 threads':>10s}   images/s")
    for kind in ("bare loop", "engine.fit"):
        print(f"{kind:12s} {rows[kind, 1]:10.1f} {rows[kind, 2]:10.1f}")
    res = {"model": a.model, "size": a.size, "batch_size": a.bs, "steps": a.steps,
           "images_per_s": {f"{k} x{t}": round(v, 1) for (k, t), v in rows.items()},
           "fit_over_bare_1thread": round(rows["engine.fit", 1] / rows["bare loop", 1], 3),
           "fit_over_bare_2threads": round(rows["engine.fit", 2] / rows["bare loop", 2], 3),
           "two_over_one_thread_fit": round(rows["engine.fit", 2] / rows["engine.fit", 1], 3)}
    print(f"engine.fit / bare loop: {res['fit_over_bare_1thread']:.3f} (1 thread), "
          f"{res['fit_over_bare_2threads']:.3f} (2 threads); 2 threads / 1 thread (fit): "
          f"{res['two_over_one_thread_fit']:.3f}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
