#!/usr/bin/env python
"""Benchmark the synthetic data layer: faces/s at 128 px on one core, and bytes on disk per 1000 faces.

    python scripts/bench_data.py [--size 128] [--videos 24] [--frames 4] [--out DIR] [--gallery PNG] [--learn]

Pins OpenCV to one thread and reports both wall-clock and process-CPU rates (on a shared machine the
CPU rate is the fairer "one core" number).  ``--learn`` adds a learnability check: a small BatchNorm
CNN trained from scratch for a few CPU-minutes on ffpp-syn (64 px, hq), tested in-dataset per family
and cross-dataset (should be clearly above 0.5 in-dataset, lower across domains).  Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

from dfnb.data.benchmark import BENCHMARKS, iter_split, write_split  # noqa: E402
from dfnb.data.manipulations import manipulate  # noqa: E402
from dfnb.data.render import STYLES, Identity, render_face, sample_video  # noqa: E402


def _rate(fn, n):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return n / (time.perf_counter() - w), n / max(1e-9, time.process_time() - c)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--out", default=None, help="where to write the disk-size run (default: a temp folder)")
    ap.add_argument("--gallery", default=None, help="also save a PNG of every family and benchmark here")
    ap.add_argument("--learn", action="store_true", help="also run the learnability check (~2 CPU-minutes)")
    a = ap.parse_args(argv)
    res = {"size": a.size, "cpu_count": os.cpu_count(), "load_avg": os.getloadavg()}

    # 1. renderer alone (videos: identity textures and backgrounds shared across frames)
    st = STYLES["studio"]
    rng = np.random.default_rng(0)
    jobs = []
    for _ in range(a.videos):
        ident = Identity.sample(rng, st)
        jobs += [(ident, f) for f in sample_video(rng, a.frames, st)]
    render_face(*jobs[0], a.size, st)
    wall, cpu = _rate(lambda: [render_face(i, f, a.size, st) for i, f in jobs], len(jobs))
    res["render_faces_per_s"] = {"wall": round(wall, 1), "cpu": round(cpu, 1)}

    # 2. each family on pre-rendered targets
    targets = [render_face(i, f, a.size, st) for i, f in jobs[: 4 * a.frames]]
    src = Identity.sample(rng, st)
    fam = {}
    for m in ("faceswap", "deepfakes", "face2face", "neuraltextures", "attribute_hair", "attribute_glasses", "synthesis"):
        wall, cpu = _rate(lambda m=m: [manipulate(m, t, np.random.default_rng(k), source_identity=src)
                                       for k, t in enumerate(targets)], len(targets))
        fam[m] = {"wall": round(wall, 1), "cpu": round(cpu, 1)}
    res["family_fakes_per_s"] = fam

    # 3. whole benchmarks in memory (render + manipulate + compress), and on disk
    per = {}
    for name in ("ffpp-syn", "fmld-syn", "celebdf-syn", "dfdc-syn"):
        kw = dict(size=a.size, n_videos=max(2, a.videos // 4), frames_per_video=a.frames)
        n = sum(1 for _ in iter_split(name, "val", **kw))
        wall, cpu = _rate(lambda name=name, kw=kw: list(iter_split(name, "val", **kw)), n)
        per[name] = {"faces": n, "wall": round(wall, 1), "cpu": round(cpu, 1)}
    res["benchmark_faces_per_s"] = per
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="dfnb_bench_"))
    disk = {}
    for q in ("raw", "hq", "lq"):
        d = out / f"ffpp-syn-{q}"
        meta = write_split(d, "ffpp-syn", "train", size=a.size, n_videos=a.videos, frames_per_video=a.frames,
                           quality=q, progress=False, overwrite=True)
        disk[q] = {"faces": meta["n_faces"], "MB_per_1000_faces": round(meta["bytes"] / meta["n_faces"] * 1000 / 2**20, 2),
                   "faces_per_s_with_png": meta["faces_per_s"]}
    res["ffpp_syn_on_disk"] = disk
    res["out"] = str(out)
    if a.gallery:
        _gallery(a.gallery, a.size)
        res["gallery"] = a.gallery
    if a.learn:
        res["learnability"] = learnability(out / "learn")
    print(json.dumps(res, indent=1))
    return 0


def _auc(s, y):
    from scipy.stats import rankdata

    r = rankdata(s)
    p = int(y.sum())
    n = len(y) - p
    return float((r[y == 1].sum() - p * (p + 1) / 2) / (p * n))


def learnability(root: Path, epochs: int = 8, seed: int = 0) -> dict:
    """Train a small CNN on ffpp-syn train (60 videos x 2 frames, 64 px, hq) and report test AUCs."""
    import torch
    import torch.nn as nn

    from dfnb.data import load_benchmark

    torch.set_num_threads(1)
    torch.manual_seed(seed)

    def get(name, split, n):
        ds = load_benchmark(name, split, size=64, n_videos=n, frames_per_video=2, root=root, progress=False)
        return torch.stack([ds[i]["image"] for i in range(len(ds))]), ds.labels, np.array(ds.methods)

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                             nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

    f = nn.Sequential(block(3, 24), block(24, 48), block(48, 64), block(64, 96), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(96, 1))
    X, y, _ = get("ffpp-syn", "train", 60)
    yt = torch.from_numpy(y)
    w = torch.where(yt == 1, 1.0, float((y == 1).sum() / (y == 0).sum()))
    opt = torch.optim.Adam(f.parameters(), 1e-3)
    for _ in range(epochs):
        f.train()
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 32):
            b = perm[i:i + 32]
            xb = X[b].flip(3) if torch.rand(1) < 0.5 else X[b]
            loss = (nn.functional.binary_cross_entropy_with_logits(f(xb)[:, 0], yt[b].float(), reduction="none") * w[b]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    f.eval()
    out = {}
    for name in ("ffpp-syn", "celebdf-syn", "dfdc-syn", "dfo-syn", "dftimit-syn", "wdf-syn"):
        Xt, y, m = get(name, "test", 12)
        with torch.no_grad():
            s = f(Xt)[:, 0].numpy()
        out[name] = {"auc": round(_auc(s, y), 3)}
        out[name].update({mm: round(_auc(s[(m == mm) | (m == "real")], y[(m == mm) | (m == "real")]), 3)
                          for mm in sorted(set(m) - {"real"})} if name == "ffpp-syn" else {})
    return out


def _gallery(path: str, size: int) -> None:
    from dfnb.data.gallery import benchmark_gallery, family_gallery

    g = family_gallery(size)
    fams = [k for k in g if k not in ("pristine", "landmarks")]
    top = np.concatenate([g["pristine"]] + [g[f]["fake"] for f in fams], 1)
    bot = np.concatenate([np.zeros_like(g["pristine"])] + [np.repeat((g[f]["mask"][..., None] * 255).astype(np.uint8), 3, 2)
                                                           for f in fams], 1)
    rows = [top, bot]
    bg = benchmark_gallery(n=3, size=size)
    for name in BENCHMARKS:
        imgs = [im for im, _, _ in bg[name]]
        row = np.concatenate(imgs + [np.zeros_like(imgs[0])] * (len(fams) + 1 - len(imgs)), 1)
        rows.append(row[:, : top.shape[1]])
    cv2.imwrite(path, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    sys.exit(main())
