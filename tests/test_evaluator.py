"""Evaluation models supervised by a manipulation map (FoCus Fig. 4; PCL-style head)."""
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import dfnb
from dfnb.models.evaluator import (EffNetFPNEvaluator, PCLEvaluator, consistency_target, consistency_volume,
                                   map_target)

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import one_thread  # noqa: E402,F401  (autouse fixture: tiny models run faster on one thread)


def _batch(b=2, size=64):
    torch.manual_seed(0)
    return {"image": torch.rand(b, 3, size, size), "label": torch.tensor([0, 1] * (b // 2)),
            "map": torch.rand(b, 1, size // 2, size // 2)}


def test_map_target_resizes_and_zeroes_real_faces():
    batch = _batch()
    t = map_target(batch, "map", (64, 64))
    assert t.shape == (2, 1, 64, 64)
    assert torch.all(t[0] == 0) and t[1].sum() > 0
    assert map_target(batch, "map", (64, 64), zero_real=False)[0].sum() > 0
    with pytest.raises(KeyError, match="map_key='mask'"):
        map_target({"label": batch["label"]}, "map", (64, 64))


def test_effnet_evaluator_outputs_and_loss_is_ce_plus_tenth_bce():
    torch.manual_seed(0)
    model = EffNetFPNEvaluator(backbone="efficientnet_lite0", fpn_channels=16)
    batch = _batch()
    out = model(batch["image"])
    assert out["logit"].shape == (2,) and out["mask_logit"].shape == (2, 1, 64, 64)
    losses = model.losses(out, batch)
    target = F.interpolate(batch["map"], size=(64, 64), mode="bilinear", align_corners=False)
    target[0] = 0
    expect = F.cross_entropy(out["logits"], batch["label"]) + 0.1 * F.binary_cross_entropy_with_logits(
        out["mask_logit"], target)
    assert torch.allclose(losses["loss"], expect)
    losses["loss"].backward()
    assert model.map_head[-1].weight.grad.abs().sum() > 0
    assert model.net.conv_stem.weight.grad.abs().sum() > 0
    with pytest.raises(KeyError):
        model.losses(out, {"label": batch["label"], "mask": batch["map"]})
    m2 = EffNetFPNEvaluator(backbone="efficientnet_lite0", map_key="mask")
    assert torch.isfinite(m2.losses(m2(batch["image"]), {**batch, "mask": batch["map"]})["loss"])
    # a fake without a true mask (has_mask False) adds no map loss: only CE is left
    o2 = m2(batch["image"])
    no_fake = m2.losses(o2, {**batch, "mask": batch["map"], "has_mask": torch.tensor([True, False])})
    only_real = F.binary_cross_entropy_with_logits(o2["mask_logit"][:1], torch.zeros(1, 1, 64, 64))
    assert torch.allclose(no_fake["loss_map"], only_real)


def test_effnet_b4_is_the_default():
    model = EffNetFPNEvaluator()
    assert model.net.default_cfg["architecture"] == "efficientnet_b4"
    with pytest.raises(ValueError, match="EfficientNet"):
        EffNetFPNEvaluator(backbone="resnet18")


def test_lite0_real_weights_when_helper_exists():
    backbones = pytest.importorskip("dfnb.models.backbones")
    if not backbones.lite_weights_available(0):
        pytest.skip("no offline efficientnet_lite0 weights")
    a = EffNetFPNEvaluator(backbone="efficientnet_lite0", pretrained=True)
    ref = backbones.efficientnet_lite_imagenet(0, num_classes=0)
    assert torch.equal(a.net.conv_stem.weight, ref.conv_stem.weight)
    assert torch.equal(a.mean.flatten(), torch.full((3,), 0.5)) and torch.equal(a.std.flatten(), torch.full((3,), 0.5))
    out = a(torch.rand(2, 3, 64, 64))
    assert out["mask_logit"].shape == (2, 1, 64, 64) and torch.isfinite(out["logit"]).all()


def test_pcl_consistency_target_and_loss():
    m = torch.tensor([[[[0., 1.], [0.5, 0.]]]])
    g = consistency_target(m)[0]
    assert torch.equal(g[0], torch.tensor([1., 0., .5, 1.]))
    assert torch.equal(g, g.T)
    v = consistency_volume(torch.randn(2, 8, 3, 3))
    assert v.shape == (2, 9, 9) and torch.allclose(torch.diagonal(v, dim1=1, dim2=2), torch.ones(2, 9))
    torch.manual_seed(0)
    model = PCLEvaluator(backbone="resnet18", embed_dim=16)
    batch = _batch()
    out = model(batch["image"])
    assert out["consistency"].shape == (2, 16, 16) and out["map"].shape == (2, 1, 64, 64)
    losses = model.losses(out, batch)
    losses["loss"].backward()
    assert model.proj.weight.grad.abs().sum() > 0


def test_evaluators_are_registered():
    assert {"evaluator_effnet", "evaluator_pcl"} <= set(dfnb.list_models("evaluator_*"))
