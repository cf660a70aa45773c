"""Expected GPU memory of a DADF training step at the paper's scale, counted without the memory or a GPU.

The paper trains DADF on SAM ViT-H at 1024 px with batch size 4.  :func:`step_memory` builds that
DADF on PyTorch's meta device and runs one training step's forward pass and losses on fake CUDA
tensors (:func:`dfnb.engine.cost.shapes_only`: shapes and dtypes, no data), counting

- the parameters (weights, all fp32) and the trainable ones (their fp32 gradients, AdamW's two
  moments, and with several processes DDP's gradient buckets), and
- the activations: every tensor autograd keeps for the backward pass, each storage once, under
  CUDA's own autocast rules for bf16 (matmul inputs kept as bf16 copies, softmax and LayerNorm in
  fp32, a bf16 copy of each frozen weight the backward needs).

The step is :meth:`DADF.forward` without its sample selection, which needs values: the first
``noised`` faces of the batch get RGA's noise (default: every face, the most memory a step can
take; at ``noise_p=0.5`` a batch of 4 draws it in one step of 16) and go through the encoder a
second time in the same batch; the losses are L_seg, L_cls and L_rec in fp32, as
:func:`dfnb.engine.fit` computes them (without the class weights: a few numbers per face).

An estimate: the backward pass holds temporaries on top (the gradient of an operation's output
while it computes its input's: at least two tensors of the size of the largest kept one,
``largest_mib``), and the CUDA context, cuBLAS workspaces and allocator fragmentation add more.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from dfnb.engine.cost import autocast_rules, fake_module, memory_parts, saved_bytes, shapes_only

#: the paper's training setting (Section 4.1): SAM ViT-H, 1024 px, batch size 4
PAPER = {"sam_type": "vit_h", "img_size": 1024, "batch_size": 4}


def step_loss(model, batch_size: int, noised: int, device: str = "cuda") -> torch.Tensor:
    """One training step's forward pass and fp32 losses of ``model`` (a DADF) on ``batch_size`` faces at
    its ``img_size``, the first ``noised`` of them noised; returns the loss (0-d).  Tensors are created
    on ``device``: call it inside :func:`dfnb.engine.cost.shapes_only` to count at any size."""
    if not 0 <= noised <= batch_size:
        raise ValueError(f"noised must lie in [0, batch_size={batch_size}], got {noised}")
    s, b, n = model.img_size, batch_size, noised
    x = torch.rand(b + (n if model.rga is not None else 0), 3, s, s, device=device)  # clean faces, noisy copies
    both = model.encode(x)
    f = feats = both[:b]
    rec = f.new_zeros(())
    if model.rga is not None:
        f_gau = torch.cat([both[b:], f[n:]])  # a face without noise has F_gau = F
        feats, _ = model.rga(f, f_gau)
        if n:
            rec = (f_gau[:n].float() - f[:n].float()).abs().mean()
    low = model.decode(feats)
    logit, mask_logit = model.cls_head(low), F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)
    seg = F.binary_cross_entropy_with_logits(mask_logit.float(), torch.zeros(b, 1, s, s, device=device))
    cls = F.binary_cross_entropy_with_logits(logit.float(), torch.zeros(b, device=device))
    return seg + model.lambda_rec * rec + model.lambda_cls * cls


def step_memory(sam_type: str = "vit_h", img_size: int = 1024, batch_size: int = 4, nproc: int = 1,
                precision: str = "bf16", noised: int | None = None, **dadf_kwargs: Any) -> dict[str, Any]:
    """Expected memory (MiB) per GPU of one DADF training step, counted on shapes alone.

    Args:
        sam_type: "micro" | "vit_b" | "vit_l" | "vit_h"; img_size: the encoder's input side.
        batch_size: the global batch, split over ``nproc`` processes (one GPU each).
        precision: "fp32" | "bf16" | "fp16" (autocast of the forward pass, as in ``fit``).
        noised: faces per process that get RGA's noise (default: all of them, the largest step).
        dadf_kwargs: :class:`DADF` arguments (``adapter``, ``rga``, ...).

    Returns:
        :func:`dfnb.engine.cost.memory_parts` (weights, gradients, optimizer, ddp_buckets,
        activations, total; MiB) plus ``parameters`` / ``trainable`` (counts), ``largest_mib`` (the
        largest tensor kept for the backward pass), ``batch_per_gpu``, ``noised``, ``precision``.
    """
    return _step_memories(sam_type, img_size, [(batch_size, nproc, precision, noised)], dadf_kwargs)[0]


def _step_memories(sam_type: str, img_size: int, settings, dadf_kwargs: dict) -> list[dict[str, Any]]:
    """:func:`step_memory` for each ``(batch_size, nproc, precision, noised)`` of ``settings``, one model built."""
    from dfnb.models.dadf.dadf import DADF
    from dfnb.models.dadf.sam import build_sam, count_parameters

    out = []
    with shapes_only("cuda"):
        model = fake_module(lambda: DADF(build_sam(sam_type, img_size), **dadf_kwargs).train(), "cuda")
        for batch_size, nproc, precision, noised in settings:
            if batch_size % nproc:
                raise ValueError(f"batch_size {batch_size} is not divisible by nproc {nproc}")
            per_gpu = batch_size // nproc
            noised = per_gpu if noised is None else noised
            sizes: list[int] = []
            with autocast_rules("cuda", precision):
                _, act = saved_bytes(lambda: step_loss(model, per_gpu, noised), exclude=model.parameters(), sizes=sizes)
            out.append({**memory_parts(model, act, "adamw", world_size=nproc), "parameters": count_parameters(model),
                        "trainable": count_parameters(model, True), "largest_mib": max(sizes) / 2 ** 20,
                        "batch_per_gpu": per_gpu, "noised": noised, "precision": precision})
    return out


def gpu_table(sam_types=("vit_b", "vit_h"), nprocs=(1, 2, 4), precisions=("fp32", "bf16"),
              img_size: int = PAPER["img_size"], batch_size: int = PAPER["batch_size"]):
    """:func:`step_memory` per SAM, number of GPUs and precision at the paper's batch and size, in GiB.

    A pandas DataFrame, one row per setting: ``SAM``, ``GPUs``, ``faces per GPU``, ``precision``,
    ``weights``, ``gradients + AdamW`` (with DDP's buckets on several GPUs), ``activations``,
    ``counted`` (their sum), ``with backward temporaries`` (counted + 2 x the largest kept tensor).
    """
    import pandas as pd

    rows = []
    for sam_type in sam_types:
        settings = [(batch_size, nproc, precision, None) for nproc in nprocs for precision in precisions]
        for (_, nproc, precision, _), m in zip(settings, _step_memories(sam_type, img_size, settings, {})):
            gib = {k: m[k] / 1024 for k in ("weights", "gradients", "optimizer", "ddp_buckets", "activations", "total",
                                            "largest_mib")}
            rows.append({"SAM": "ViT-" + sam_type.split("_")[-1].upper(), "GPUs": nproc,
                         "faces per GPU": m["batch_per_gpu"], "precision": precision, "weights": gib["weights"],
                         "gradients + AdamW": gib["gradients"] + gib["optimizer"] + gib["ddp_buckets"],
                         "activations": gib["activations"], "counted": gib["total"],
                         "with backward temporaries": gib["total"] + 2 * gib["largest_mib"]})
    return pd.DataFrame(rows)


def gpu_table_markdown(df=None, **kwargs) -> str:
    """:func:`gpu_table` (``df``, or computed with ``kwargs``) as the Markdown table of ``book/rerun.md``
    (GiB, one decimal)."""
    df = gpu_table(**kwargs) if df is None else df
    cols = list(df.columns)
    head = "| " + " | ".join(cols) + " |\n|" + "|".join("---:" if df[c].dtype.kind in "if" else "---" for c in cols) + "|"
    fmt = {c: (lambda v: f"{v:.1f}") if df[c].dtype.kind == "f" else str for c in cols}
    body = ["| " + " | ".join(fmt[c](r[c]) for c in cols) + " |" for _, r in df.iterrows()]
    return "\n".join([head, *body])


if __name__ == "__main__":  # python -m dfnb.models.dadf.memory: the table for book/rerun.md
    print(gpu_table_markdown())
