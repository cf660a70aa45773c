"""Chapter 30's protocol: the faces micro-SAM learns from, how its prompts are scored, what it learnt.

- :func:`render_faces`      ``n`` synthetic studio faces with their 11 part masks (one random stream)
- :func:`pretrained`        micro-SAM pretrained on them once, through the experiment cache
- :func:`prompt_results`    :func:`~dfnb.models.dadf.pretrain.segment_parts` of every face, box and point
- :func:`per_prompt_iou`    one row per prompted part: prompt kind, part name, IoU
- :func:`box_as_mask_iou`   the trivial answer "every pixel inside the box", as a mean IoU
- :func:`untrained_miou`    box and point mIoU of a randomly initialised micro-SAM (the floor)
- :func:`miou_table`        the chapter's summary: pretrained, untrained, box as mask
- :func:`iou_by_part`       mean IoU per part and prompt kind, with the number of prompts
- :func:`pretraining_table` steps, seconds, parameters and checkpoint size of one pretraining
- :func:`conclusion`        the chapter's closing paragraph from these numbers (a small template)
- figures: :func:`parts_figure`, :func:`pretraining_curves`, :func:`prompts_figure` (fonts >= 9 pt)

Nothing here changes how a model trains: the maths is in :mod:`dfnb.models.dadf.pretrain`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["SMALL_PARTS", "LARGE_PARTS", "render_faces", "pretrained", "prompt_results", "per_prompt_iou", "box_as_mask_iou",
           "untrained_miou", "miou_table", "iou_by_part", "pretraining_table", "conclusion", "parts_figure",
           "pretraining_curves", "prompts_figure"]

#: parts that are one or two tokens of micro-SAM's 16x16 grid, and parts that cover much of the face
SMALL_PARTS = ("eyes", "brows", "nose", "mouth", "ears")
LARGE_PARTS = ("fg", "skin", "neck", "hair")
_FONT = 9


def render_faces(n: int, stream: int, seed: int, size: int) -> tuple[list, list[str]]:
    """``n`` rendered studio faces from the random stream ``(seed, stream)``.

    Each face is a random identity in a random frame (pose, expression, light, background).
    Returns ``(faces, part_names)``: ``faces`` a list of ``(image (H, W, 3) float32 in [0, 1],
    [part mask (H, W) float32, ...])`` in the order of ``part_names`` (the renderer's ``parts``).
    Different ``stream`` values give different identities (training vs held-out faces); ``n = 0``
    gives ``([], [])``.
    """
    from dfnb.data.render import STYLES, Identity, render_face, sample_frame

    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng([seed, stream])
    style = STYLES["studio"]
    faces, names = [], []
    for _ in range(n):
        f = render_face(Identity.sample(rng, style), sample_frame(rng, style), size, style, float_out=True)
        names = list(f.parts)
        faces.append((f.image.astype(np.float32), [f.parts[k] for k in names]))
    return faces, names


def prompt_results(sam, faces: Sequence, seed: int, device: str = "cpu") -> dict[str, list[dict]]:
    """``{"box": [...], "point": [...]}``: :func:`segment_parts` of every face, in order.

    The point of face ``i`` is drawn with ``torch.Generator().manual_seed(seed + i)``, so the prompts
    do not depend on which other faces are scored."""
    import torch

    from dfnb.models.dadf.pretrain import segment_parts

    return {kind: [segment_parts(sam, im, ms, kind, torch.Generator().manual_seed(seed + i), device)
                   for i, (im, ms) in enumerate(faces)] for kind in ("box", "point")}


def per_prompt_iou(results: Mapping[str, Sequence[dict]], part_names: Sequence[str]):
    """Long DataFrame ``prompt, part, iou``: one row per prompted (non-empty) part of every face.

    results: :func:`prompt_results`' dict (each entry's ``keep`` says which parts were prompted).
    """
    import pandas as pd

    rows = []
    for kind, rr in results.items():
        for r in rr:
            names = [n for n, k in zip(part_names, r["keep"].tolist()) if k]
            if len(names) != len(r["iou"]):
                raise ValueError(f"{kind}: {len(names)} kept parts but {len(r['iou'])} IoUs")
            rows += [{"prompt": kind, "part": n, "iou": v} for n, v in zip(names, r["iou"].numpy())]
    return pd.DataFrame(rows, columns=["prompt", "part", "iou"])


def box_as_mask_iou(box_results: Sequence[dict]) -> float:
    """Mean IoU of the box itself as the mask: every pixel from ``(x0, y0)`` to ``(x1, y1)`` inclusive
    (the prompt's rounded corners), against each prompted part, over all box prompts."""
    import torch

    ious = []
    for r in box_results:
        for b, m in zip(r["prompts"], r["masks"]):
            x0, y0, x1, y1 = b.round().int().tolist()
            p = torch.zeros_like(m)
            p[y0:y1 + 1, x0:x1 + 1] = True
            ious.append(float((p & m).sum() / (p | m).sum().clamp(min=1)))
    if not ious:
        raise ValueError("box_as_mask_iou: no box prompt")
    return float(np.mean(ious))


def untrained_miou(size: int, faces: Sequence, seed: int, device: str = "cpu") -> tuple[float, float]:
    """``(box mIoU, point mIoU)`` of a micro-SAM randomly initialised after ``torch.manual_seed(seed)``."""
    import torch

    from dfnb.models.dadf.pretrain import promptable_miou
    from dfnb.models.dadf.sam import load_sam

    torch.manual_seed(seed)
    untrained = load_sam("micro", None, size)
    return (promptable_miou(untrained, faces, "box", seed=seed, device=device),
            promptable_miou(untrained, faces, "point", seed=seed, device=device))


def miou_table(per, box_as_mask: float, untrained: tuple[float, float], name: str = "micro-SAM (pretrained)"):
    """The summary table: rows ``name``, ``micro-SAM (untrained)``, ``box as mask``; columns
    ``box mIoU``, ``point mIoU`` (the box-as-mask answer has no point score: NaN)."""
    import pandas as pd

    ours = [float(per[per.prompt == k].iou.mean()) for k in ("box", "point")]
    return pd.DataFrame({"box mIoU": [ours[0], untrained[0], box_as_mask],
                         "point mIoU": [ours[1], untrained[1], np.nan]},
                        index=pd.Index([name, "micro-SAM (untrained)", "box as mask"], name="held-out synthetic faces"))


def iou_by_part(per, part_names: Sequence[str]):
    """Mean IoU per part (rows in ``part_names`` order, parts never prompted left out) and prompt kind
    (columns ``box``, ``point``), plus ``n``: the number of box prompts of that part."""
    by = per.pivot_table(index="part", columns="prompt", values="iou", aggfunc="mean")
    by = by.reindex([p for p in part_names if p in set(per.part)])
    by["n"] = per[per.prompt == "box"].groupby("part").size()
    by.columns.name = None
    return by


def pretraining_table(hist: Mapping[str, Any] | None, seconds: float, n_parameters: int,
                      checkpoint_bytes: int | None):
    """One-row table of a pretraining: steps, wall seconds, seconds per step, parameters (M) and
    checkpoint size (MB); ``hist=None`` (Meta's SAM loaded, nothing pretrained): steps 0 and no size."""
    import pandas as pd

    steps = int(hist["steps"]) if hist is not None else 0
    row = {"steps": steps, "seconds": seconds, "seconds per step": seconds / steps if steps else np.nan,
           "parameters (M)": n_parameters / 1e6,
           "checkpoint (MB)": checkpoint_bytes / 2**20 if checkpoint_bytes is not None else np.nan}
    return pd.DataFrame([row], index=pd.Index(["micro-SAM" if hist is not None else "SAM (loaded)"], name="model"))


def _parts_text(by_part, parts: Sequence[str]) -> str:
    return ", ".join(f"{p} {by_part.loc[p, 'box']:.2f}" for p in parts)


def conclusion(box_iou: float, point_iou: float, box_as_mask: float, untrained_box: float, by_part,
               steps: int) -> str:
    """The chapter's closing paragraph (Markdown): the box and point mIoU against the two references,
    the box IoU of large and small parts, and, when the small parts stay below 0.2 while the large
    ones are above, why (tokens per part, the pixel-averaged loss) and what would help."""
    small = [p for p in SMALL_PARTS if p in by_part.index]
    large = [p for p in LARGE_PARTS if p in by_part.index]
    side = lambda a, b: "above" if a > b else "below"  # noqa: E731
    text = (f"micro-SAM's box mIoU on held-out faces is **{box_iou:.3f}** (point {point_iou:.3f}), "
            f"{side(box_iou, box_as_mask)} the box-as-mask answer ({box_as_mask:.3f}) and "
            f"{side(box_iou, untrained_box)} the untrained model ({untrained_box:.3f}).")
    if small and large:
        text += (f" Per part (box IoU): large parts ({_parts_text(by_part, large)}) against small ones "
                 f"({_parts_text(by_part, small)}).")
        if by_part.loc[small, "box"].mean() < 0.2 < by_part.loc[large, "box"].mean():
            text += (f" After {steps} {'step' if steps == 1 else 'steps'} it has learned the large parts far "
                     "better than the small ones: an eye or a brow is one or two tokens of its 16×16 grid, and "
                     "the loss, averaged over pixels, is dominated by large masks early on. Longer pretraining "
                     "(`steps`, `n_train_faces`; see the paper profile) is the remedy we could not afford in "
                     "this profile's time. For chapter 31 this means the frozen encoder carries the coarse "
                     "layout of a face (face, skin, hair, neck), not fine part boundaries.")
    return text


# ----------------------------------------------------------------------------- figures
def parts_figure(image, parts: Sequence, names: Sequence[str]):
    """The face, then each part mask (> 0.5) over it in one row."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names) + 1, figsize=(1.5 * (len(names) + 1), 1.8))
    axes[0].imshow(image)
    axes[0].set_title("face", fontsize=_FONT)
    for ax, name, m in zip(axes[1:], names, parts):
        ax.imshow(image)
        ax.imshow(np.ma.masked_less(m, 0.5), cmap="autumn", alpha=0.6, vmin=0, vmax=1)
        ax.set_title(name, fontsize=_FONT)
    for ax in axes:
        ax.axis("off")
    return fig


def pretraining_curves(hist: Mapping[str, Any]):
    """Loss and training IoU per step (faint) with a running mean over ~1/20 of the steps; a distilled
    pretraining (``hist["distill"]``) gets a third panel, the distillation loss."""
    import matplotlib.pyplot as plt

    k = max(1, len(hist["loss"]) // 20)
    panels = [("loss", "pretraining loss"), ("iou", "training IoU (box + point prompts)")]
    if "distill" in hist:
        panels.append(("distill", "distillation loss (teacher features)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 2.8))
    for ax, (key, title) in zip(axes, panels):
        v = np.asarray(hist[key], dtype=float)
        ax.plot(v, alpha=0.3)
        ax.plot(np.arange(k - 1, len(v)), np.convolve(v, np.ones(k) / k, mode="valid"))
        ax.set_xlabel("step", fontsize=_FONT)
        ax.set_ylabel("IoU" if key == "iou" else "loss", fontsize=_FONT)
        ax.set_title(title, fontsize=_FONT + 1)
        ax.tick_params(labelsize=_FONT)
    axes[1].set_ylim(0, 1)
    fig.tight_layout()
    return fig


def prompts_figure(faces: Sequence, results: Mapping[str, Sequence[dict]], part_names: Sequence[str],
                   seed: int, n_faces: int = 4):
    """For up to ``n_faces`` faces, two prompted parts each (the eyes where prompted, and one drawn
    at random with ``np.random.default_rng(seed)``), box prompts in the top row, points below: the
    prompt (yellow box / cross), the true part (green outline), the predicted mask (yellow)."""
    import matplotlib.pyplot as plt

    n_show = min(n_faces, len(faces))
    fig, axes = plt.subplots(2, 2 * n_show, figsize=(4.0 * n_show, 5.0), squeeze=False)
    rng = np.random.default_rng(seed)
    for c in range(n_show):
        img = faces[c][0]
        for row, kind in enumerate(("box", "point")):
            rr = results[kind][c]
            names = [n for n, k in zip(part_names, rr["keep"].tolist()) if k]
            for j in range(2):
                ax = axes[row, 2 * c + j]
                i = rng.integers(len(names)) if j else names.index("eyes") if "eyes" in names else 0
                _prompt_panel(ax, img, rr, int(i), kind)
                ax.set_title(f"{kind}: {names[i]}\nIoU {float(rr['iou'][i]):.2f}", fontsize=_FONT)
    fig.tight_layout()
    return fig


def _prompt_panel(ax, img, rr: dict, i: int, kind: str) -> None:
    import matplotlib.pyplot as plt

    pred = rr["pred"][i].numpy()
    ax.imshow(img)
    ax.imshow(np.ma.masked_where(~pred, np.ones(pred.shape)), cmap="autumn", alpha=0.55, vmin=0, vmax=1)
    ax.contour(rr["masks"][i].numpy().astype(float), levels=[0.5], colors="lime", linewidths=0.8)
    p = rr["prompts"][i].numpy()
    if kind == "box":
        ax.add_patch(plt.Rectangle((p[0], p[1]), p[2] - p[0], p[3] - p[1], fill=False, ec="yellow", lw=1))
    else:
        ax.plot(p[0], p[1], "x", color="yellow", ms=7, mew=2)
    ax.axis("off")


def pretrained(n_train_faces: int, seed: int, size: int, *, cache=True, meta: Mapping | None = None,
               **pretrain_kw):
    """micro-SAM pretrained on :func:`render_faces` ``(n_train_faces, 0, seed, size)``, trained once:
    ``(sam, history, train_seconds, checkpoint path, cached)``.

    The checkpoint (:func:`~dfnb.models.dadf.sam.save_micro_sam`) and its history live in the
    experiment cache under ``micro_sam/<key>/`` (key: the faces' recipe, ``pretrain_kw`` with the
    defaults of :func:`~dfnb.models.dadf.pretrain.pretrain_micro_sam` filled in, the seed, and the source
    of the code it imports, as for :func:`dfnb.experiments.train_seeded`); an identical call loads it.
    ``train_seconds`` is the pretraining's own time, measured when it ran.  ``cache=False`` trains
    into a temporary folder every time.  A distilled pretraining (``teacher="efficientnet_lite0"``,
    ``distill_weight``, ``teacher_stage``) and a hybrid micro-SAM (``hybrid="lite0"``, ``hybrid_stage``,
    ``freeze_stem``) are keyed on those options like any other argument.
    """
    import inspect
    import json
    import os
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from dfnb import experiments as E
    from dfnb.models.dadf.pretrain import pretrain_micro_sam
    from dfnb.models.dadf.sam import load_sam

    sig = inspect.signature(pretrain_micro_sam)
    bad = sorted(set(pretrain_kw) & {"samples", "seed", "save_path", "meta", "sam", "img_size", "progress"})
    if bad:
        raise TypeError(f"pretrained: {bad} are set by pretrained() itself")
    kw = {p: pretrain_kw.get(p, sig.parameters[p].default) for p in sig.parameters
          if p not in ("samples", "seed", "save_path", "meta", "sam", "img_size", "progress", "device")}
    unknown = sorted(set(pretrain_kw) - set(kw) - {"device"})
    if unknown:
        raise TypeError(f"pretrained: unknown pretraining arguments {unknown}")
    deps = E.dependencies(["dfnb.models.dadf.pretrain", "dfnb.data.render"])
    material = {"format": "dfnb-micro-sam-1", "faces": {"n": n_train_faces, "stream": 0, "seed": seed, "size": size},
                "pretrain": kw, "seed": seed, "code": E.code_hash(deps, whole_packages=False), "code_modules": deps}
    material = json.loads(json.dumps(material, sort_keys=True))
    root = E._cache_root(cache)
    entry = None if root is None else root / "micro_sam" / E._key(material)
    if entry is not None and (entry / "meta.json").is_file():
        stored = json.loads((entry / "key.json").read_text())
        if stored != material:
            raise E.CacheError(f"{entry / 'key.json'} does not match the expected key material; delete {entry}")
        meta_out = json.loads((entry / "meta.json").read_text())
        hist = json.loads((entry / "history.json").read_text())
        return load_sam("micro", entry / "micro_sam.pt"), hist, meta_out["train_seconds"], entry / "micro_sam.pt", True
    work = Path(tempfile.mkdtemp(prefix=".micro_sam.tmp-", dir=None if root is None else root))
    try:
        faces = render_faces(n_train_faces, 0, seed, size)[0]
        t0 = time.perf_counter()
        sam, hist = pretrain_micro_sam(faces, img_size=size, seed=seed, save_path=work / "micro_sam.pt",
                                       meta=dict(meta or {}), progress=False, **pretrain_kw)
        seconds = time.perf_counter() - t0
        (work / "history.json").write_text(json.dumps(hist))
        (work / "key.json").write_text(json.dumps(material, indent=1))
        (work / "meta.json").write_text(json.dumps({"train_seconds": seconds, "created": E._now()}))
        if entry is None:
            return sam, hist, seconds, work / "micro_sam.pt", False
        entry.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work, entry)
        return sam, hist, seconds, entry / "micro_sam.pt", False
    finally:
        if entry is not None and work.exists():
            shutil.rmtree(work)
