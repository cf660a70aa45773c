"""micro-SAM feature distillation (dfnb.models.dadf.distill): the loss by hand, its options, a tiny distilled
pretraining that lowers it, a checkpoint without the projection, and teacher=None unchanged."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dfnb.models.dadf import distill
from dfnb.models.dadf.pretrain import pretrain_micro_sam
from dfnb.models.dadf.sam import build_sam, load_sam

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import one_thread  # noqa: E402,F401  (autouse fixture)
from test_dadf import _parts as _faces  # noqa: E402  (noisy images with one bright square part and an empty mask)


def test_bad_teacher_stage_or_weight_is_one_value_error():
    for kw, msg in [(dict(teacher="resnet50"), "unknown teacher 'resnet50'"),
                    (dict(teacher="efficientnet_lite0", distill_weight=-0.1), "distill_weight must be"),
                    (dict(teacher="efficientnet_lite0", distill_weight=float("nan")), "distill_weight must be"),
                    (dict(teacher="efficientnet_lite0", teacher_stage="blocks.9"), "unknown teacher_stage")]:
        with pytest.raises(ValueError, match=msg):
            pretrain_micro_sam(_faces(1), steps=1, img_size=64, progress=False, **kw)
    distill.check_distill(None, 0.0, "blocks.3")  # valid


def test_running_channel_stats_by_hand():
    s = distill.RunningChannelStats(2)
    s.update(torch.tensor([[[[1.0, 3.0]], [[0.0, 0.0]]]]))  # (1, 2, 1, 2)
    s.update(torch.tensor([[[[5.0, 7.0]], [[2.0, 2.0]]]]))
    # channel 0 saw 1, 3, 5, 7: mean 4, population std sqrt(5); channel 1 saw 0, 0, 2, 2: mean 1, std 1
    out = s(torch.tensor([[[[4.0 + 5 ** 0.5]], [[3.0]]]]))
    assert torch.allclose(out, torch.tensor([[[[1.0]], [[2.0]]]]))


class _Stub(nn.Module):
    """A teacher whose features are the image's first channel max-pooled 2x2 (C_t = 1)."""
    channels = 1

    def forward(self, x):
        return nn.functional.max_pool2d(x[:, :1], 2)


def test_distillation_loss_by_hand():
    d = distill.Distiller(_Stub(), student_channels=2)
    with torch.no_grad():
        d.proj.weight.copy_(torch.tensor([[[[1.0]], [[-1.0]]]]))
        d.proj.bias.fill_(0.5)
    images = torch.zeros(1, 3, 4, 4)
    images[0, 0, :2, :2] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # teacher map [[1, 0], [0, 0]]
    student = torch.zeros(1, 2, 4, 4)
    student[0, 0, :2, :2] = 4.0  # pooled to 2x2: channel 0 [[4, 0], [0, 0]], channel 1 zeros
    # target: (t - 0.25) / sqrt(3/16) = [[sqrt(3), -1/sqrt(3)] ...]; prediction 4 + 0.5 and 0.5 elsewhere
    target = (torch.tensor([1.0, 0, 0, 0]) - 0.25) / (3 / 16) ** 0.5
    expected = ((torch.tensor([4.5, 0.5, 0.5, 0.5]) - target) ** 2).mean()
    assert torch.allclose(d(student, images), expected)
    assert [n for n, p in d.named_parameters() if p.requires_grad] == ["proj.weight", "proj.bias"]


def test_distilled_pretraining_lowers_the_loss_and_saves_no_projection(tmp_path):
    from dfnb import create_model

    path = tmp_path / "micro_sam.pt"
    sam, hist = pretrain_micro_sam(_faces(2, size=32), steps=15, batch_size=2, masks_per_image=1, lr=1e-3,
                                   img_size=32, teacher="efficientnet_lite0", distill_weight=2.0, save_path=path,
                                   progress=False)
    d = hist["distill"]  # the same two faces every step: a fixed target
    assert len(d) == 15 and np.isfinite(d).all() and np.mean(d[-3:]) < 0.6 * d[0]
    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert set(saved["state_dict"]) == set(build_sam("micro", 32).state_dict())  # no projection
    assert saved["meta"]["teacher"] == "efficientnet_lite0" and saved["meta"]["distill_weight"] == 2.0
    loaded = load_sam("micro", path)
    assert torch.equal(loaded.image_encoder.pos_embed, sam.image_encoder.pos_embed)
    m = create_model("dadf", micro_sam_path=str(path))
    assert torch.equal(m.encoder.encoder.patch_embed.proj.weight, sam.image_encoder.patch_embed.proj.weight)


def test_teacher_none_is_unchanged_and_a_zero_weight_leaves_the_sam_alone(tmp_path):
    kw = dict(steps=3, batch_size=2, img_size=64, seed=3, progress=False)
    runs = []
    for i, extra in enumerate([{}, dict(distill_weight=5.0, teacher_stage="blocks.3")]):
        (tmp_path / str(i)).mkdir()
        runs.append(pretrain_micro_sam(_faces(4), save_path=tmp_path / str(i) / "m.pt", **kw, **extra))
    assert (tmp_path / "0" / "m.pt").read_bytes() == (tmp_path / "1" / "m.pt").read_bytes()
    assert runs[0][1] == runs[1][1] and "distill" not in runs[0][1]
    # the distillation path draws nothing from the prompt stream: weight 0 trains the very same SAM
    sam, hist = pretrain_micro_sam(_faces(4), teacher="efficientnet_lite0", distill_weight=0.0, **kw)
    assert hist["loss"] == runs[0][1]["loss"] and hist["iou"] == runs[0][1]["iou"]
    assert all(torch.equal(a, b) for a, b in zip(sam.state_dict().values(), runs[0][0].state_dict().values()))


def test_pretrained_keys_its_cache_on_the_teacher(tmp_path):
    from dfnb.models.dadf import micro_sam_study as study

    kw = dict(steps=2, batch_size=2, masks_per_image=1, cache=tmp_path)
    plain = study.pretrained(2, 0, 64, **kw)
    dist = study.pretrained(2, 0, 64, teacher="efficientnet_lite0", **kw)
    assert not dist[4] and dist[3] != plain[3] and len(dist[1]["distill"]) == 2  # not the plain entry
    again = study.pretrained(2, 0, 64, teacher="efficientnet_lite0", **kw)
    assert again[4] and again[3] == dist[3] and again[1] == dist[1]
    assert not study.pretrained(2, 0, 64, teacher="efficientnet_lite0", distill_weight=0.5, **kw)[4]
    key = json.loads((dist[3].parent / "key.json").read_text())
    assert key["pretrain"]["teacher"] == "efficientnet_lite0" and key["pretrain"]["teacher_stage"] == "blocks.4"
    assert "dfnb.models.dadf.distill" in key["code_modules"]


def test_pretraining_curves_show_the_distillation_loss():
    import matplotlib.pyplot as plt

    from dfnb.models.dadf import micro_sam_study as study

    fig = study.pretraining_curves({"loss": [1.0, 0.5], "iou": [0.1, 0.2], "distill": [2.0, 1.0]})
    assert len(fig.axes) == 3 and fig.axes[2].get_title().startswith("distillation loss")
    plt.close(fig)
