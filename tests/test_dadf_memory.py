"""dfnb.models.dadf.memory: a DADF training step's memory counted on shapes alone, and the table of book/rerun.md."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from dfnb.engine.cost import fake_module, saved_bytes, shapes_only
from dfnb.models.dadf import memory
from dfnb.models.dadf.dadf import DADF
from dfnb.models.dadf.sam import build_sam, count_parameters

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import one_thread  # noqa: E402,F401  (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]


def _micro(**kw):
    torch.manual_seed(0)
    return DADF(build_sam("micro"), noise_p=1.0, **kw).train()


def test_the_counted_step_is_a_real_dadf_step_on_micro_sam():
    real = _micro()
    x = torch.rand(2, 3, 128, 128)
    batch = {"image": x, "mask": torch.zeros(2, 1, 128, 128), "label": torch.tensor([0, 1])}
    _, want = saved_bytes(lambda: real.losses(real(x), batch)["loss"], exclude=real.parameters())
    _, real_step = saved_bytes(lambda: memory.step_loss(real, 2, 2, "cpu"), exclude=real.parameters())
    with shapes_only("cpu"):
        fake = fake_module(_micro, "cpu")
        _, fake_step = saved_bytes(lambda: memory.step_loss(fake, 2, 2, "cpu"), exclude=fake.parameters())
    assert fake_step == real_step  # shapes alone count what real tensors keep, byte for byte
    assert fake_step == pytest.approx(want, rel=0.01)  # and step_loss keeps what DADF.forward + losses keep
    assert count_parameters(fake) == count_parameters(real) and count_parameters(fake, True) == count_parameters(real, True)


def test_step_memory_parts_and_noise():
    full = memory.step_memory("micro", 128, batch_size=4, precision="fp32")
    none = memory.step_memory("micro", 128, batch_size=4, precision="fp32", noised=0)
    assert full["noised"] == 4 and none["activations"] < full["activations"]  # the noisy pass costs memory
    t = full["trainable"] * 4 / 2 ** 20
    assert full["gradients"] == pytest.approx(t) and full["optimizer"] == pytest.approx(2 * t)
    assert full["ddp_buckets"] == 0 and memory.step_memory("micro", 128, 4, nproc=2, precision="fp32")["ddp_buckets"] > 0
    half = {p: memory.step_memory("micro", 128, 4, precision=p)["activations"] for p in ("bf16", "fp16")}
    assert half["bf16"] == half["fp16"] != full["activations"]  # rerun.md: "fp16 counts as bf16"
    with pytest.raises(ValueError, match="noised must lie in"):
        memory.step_memory("micro", 128, batch_size=2, noised=3)
    with pytest.raises(ValueError, match="batch_size 4 is not divisible by nproc 3"):
        memory.step_memory("micro", 128, batch_size=4, nproc=3)


def test_paper_scale_vit_h_parameter_counts_without_the_memory():
    m = memory.step_memory(**memory.PAPER, precision="bf16")
    assert m["parameters"] == pytest.approx(865.8e6, abs=0.05e6)  # dadf.py: 228.2M of 865.8M on ViT-H
    assert m["trainable"] == pytest.approx(228.2e6, abs=0.05e6)
    assert m["weights"] == pytest.approx(m["parameters"] * 4 / 2 ** 20)
    # the largest kept tensor: a global block's softmax output for the 8 encoder images (4 faces, 4 noisy
    # copies), 16 heads, 64 x 64 = 4096 tokens attending to 4096, in fp32 (CUDA's autocast runs softmax in fp32)
    assert m["largest_mib"] == pytest.approx(8 * 16 * 4096 ** 2 * 4 / 2 ** 20)


def test_rerun_md_shows_the_computed_table_and_its_claims_hold():
    page = (ROOT / "book" / "rerun.md").read_text()
    found = re.search(r"<!-- dfnb\.models\.dadf\.memory\.gpu_table_markdown\(\) -->\n(.*?)\n<!-- end -->", page, re.S)
    assert found, "book/rerun.md has no table between the gpu_table_markdown() markers"
    table = memory.gpu_table()
    assert found.group(1).strip() == memory.gpu_table_markdown(table)
    row = {(r["SAM"], r["GPUs"], r["precision"]): r for _, r in table.iterrows()}
    for p in ("fp32", "bf16"):  # the page's sentences
        assert row["ViT-H", 1, p]["counted"] > 80  # ViT-H at batch 4 does not fit one 80 GB GPU
        assert row["ViT-H", 4, p]["with backward temporaries"] < 80  # one face per GPU on 4 GPUs does
        assert row["ViT-B", 1, p]["with backward temporaries"] < 80  # ViT-B at batch 4 fits one
    assert row["ViT-B", 1, "bf16"]["activations"] > row["ViT-B", 1, "fp32"]["activations"]  # bf16 keeps more
