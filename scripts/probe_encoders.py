"""Linear probes of frozen encoders on ffpp-syn (issue #13's diagnostic): which layers separate real from fake?

    .venv/bin/python scripts/probe_encoders.py [--micro-sam results/default/30_micro_sam/micro_sam.pt] [--out F.csv]

Encoders: the book's micro-SAM (pretrained, chapter 30), the same architecture randomly initialised (control),
and EfficientNet-lite0 with its ImageNet weights (frozen; fine-tuned, it reaches 0.96 test AUC on this benchmark).
Every layer's map is pooled (per-channel mean and std) and probed by a class-balanced logistic regression
(``dfnb.probe``); the numbers are test frame AUCs on ``ffpp-syn`` HQ, never FF++ numbers.
"""
import argparse

import torch

from dfnb import data, probe
from dfnb.models.backbones import efficientnet_lite_imagenet
from dfnb.models.dadf.sam import build_sam, load_sam, normalize

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--micro-sam", default="results/default/30_micro_sam/micro_sam.pt")
ap.add_argument("--size", type=int, default=128)
ap.add_argument("--n-videos", type=int, default=100)
ap.add_argument("--n-eval-videos", type=int, default=50)
ap.add_argument("--frames", type=int, default=4)
ap.add_argument("--out", default=None)
a = ap.parse_args()
torch.manual_seed(0)
split = {s: data.load_split("ffpp-syn", s, size=a.size, seed=0, frames_per_video=a.frames, progress=False,
                            n_videos=a.n_videos if s == "train" else a.n_eval_videos)[1] for s in ("train", "test")}
sam_layers = {"patch embedding": "patch_embed", **{f"block {i + 1}": f"blocks.{i}" for i in range(4)}, "neck": "neck"}
lite = efficientnet_lite_imagenet(0, num_classes=0)
encoders = {
    "micro-SAM (pretrained, chapter 30)": (load_sam("micro", a.micro_sam), sam_layers),
    "micro-SAM (random init)": (build_sam("micro"), sam_layers),
    "EfficientNet-lite0 (ImageNet)": (lite, {"stem": "bn1", **{f"stage {i}": f"blocks.{i}" for i in (1, 3, 5)},
                                             "head": "bn2"}),
}
feats = {}
for name, (model, layers) in encoders.items():
    if hasattr(model, "image_encoder"):
        enc = model.image_encoder
        fwd = lambda x, m=model: m.image_encoder(normalize(m, x))  # noqa: E731
        last = [k for k in layers if k != "neck"]
    else:
        enc, fwd, last = model, (lambda x, m=model: m.forward_features((x - 0.5) / 0.5)), []
    out = [probe.layer_features(enc, layers, split[s], forward=fwd, channels_last=last) for s in ("train", "test")]
    feats[name] = (out[0][0], out[0][1], out[1][0], out[1][1])
    print(name, "done", flush=True)
table = probe.probe_table(feats)
print(f"ffpp-syn HQ, {len(split['train'])} training / {len(split['test'])} test faces at {a.size} px")
print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
if a.out:
    table.to_csv(a.out, index=False)
