"""Linear probes of frozen encoders on ffpp-syn (issue #13's diagnostic): which layers separate real from fake?

    .venv/bin/python scripts/probe_encoders.py [--micro-sam A.pt [B.pt ...]] [--no-controls] [--out F.csv]

Encoders: each micro-SAM checkpoint given (default: chapter 30's; e.g. also a distilled one from
``micro_sam_study.pretrained(..., teacher="efficientnet_lite0")``) and, unless ``--no-controls``, the same
architecture randomly initialised and EfficientNet-lite0 with its ImageNet weights (frozen; fine-tuned, it
reaches 0.96 test AUC on this benchmark).  Every layer's map is pooled (per-channel mean and std) and probed by
a class-balanced logistic regression (``dfnb.probe.probe_encoders``); the numbers are test frame AUCs on
``ffpp-syn`` HQ, never FF++ numbers.
"""
import argparse

import torch

from dfnb import data, probe
from dfnb.models.backbones import efficientnet_lite_imagenet
from dfnb.models.dadf.sam import build_sam, load_sam

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--micro-sam", nargs="+", default=["results/default/30_micro_sam/micro_sam.pt"])
ap.add_argument("--no-controls", action="store_true", help="probe only the --micro-sam checkpoints")
ap.add_argument("--size", type=int, default=128)
ap.add_argument("--n-videos", type=int, default=100)
ap.add_argument("--n-eval-videos", type=int, default=50)
ap.add_argument("--frames", type=int, default=4)
ap.add_argument("--out", default=None)
a = ap.parse_args()
if len(set(a.micro_sam)) < len(a.micro_sam):
    ap.error(f"--micro-sam names a file twice: {a.micro_sam}")
encoders = {f"micro-SAM ({path})": load_sam("micro", path) for path in a.micro_sam}  # a bad file fails first
torch.manual_seed(0)
if not a.no_controls:
    encoders.update({"micro-SAM (random init)": build_sam("micro"),
                     "EfficientNet-lite0 (ImageNet)": efficientnet_lite_imagenet(0, num_classes=0)})
split = {s: data.load_split("ffpp-syn", s, size=a.size, seed=0, frames_per_video=a.frames, progress=False,
                            n_videos=a.n_videos if s == "train" else a.n_eval_videos)[1] for s in ("train", "test")}
table = probe.probe_encoders(encoders, split["train"], split["test"])
print(f"ffpp-syn HQ, {len(split['train'])} training / {len(split['test'])} test faces at {a.size} px")
print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
if a.out:
    table.to_csv(a.out, index=False)
