"""dfnb.cam: a toy detector whose decisive pixel is known, timm CNN/ViT shapes, no leaked state."""
import numpy as np
import pytest
import timm
import torch
from torch import nn

from dfnb.cam import GradCAM, ScoreCAM, default_target_layer, primary_region_mask


class Toy(nn.Module):
    """Fake logit = k * (mean of image channel 0 - mean of channel 1), through a 1x1 conv + ReLU.

    A bright pixel in channel 0 is evidence of fake, one in channel 1 evidence of real;
    channel 2 is ignored.  With ``pool`` the feature map is half the input size.
    """

    def __init__(self, size=8, pool=False, out="single"):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.ReLU(), nn.AvgPool2d(2) if pool else nn.Identity())
        self.out = out
        k = 4.0 * size * size  # one pixel of value 1 -> logit +-4
        self.head = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.features[0].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])[:, :, None, None])
            self.head.weight.copy_(torch.tensor([[k, -k]]))

    def forward(self, x):
        z = self.head(self.features(x).mean((2, 3)))[:, 0]
        if self.out == "dict":
            return {"logit": z, "mask_logit": None}
        if self.out == "two":
            return torch.stack([-z, z], 1)  # (B, 2): real, fake
        return z


def _toy_images(size=8, fake_px=(2, 5), real_px=(6, 1), noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = noise * torch.rand(2, 3, size, size, generator=g)
    x[:, 0][:, fake_px[0], fake_px[1]] = 1.0  # decisive for fake
    x[:, 1][:, real_px[0], real_px[1]] = 0.5  # decisive for real, weaker: the prediction is fake
    x[1, 2] = torch.rand(size, size, generator=g)  # the ignored channel
    return x


def _argmax2d(m):
    return tuple(np.unravel_index(int(m.argmax()), m.shape))


@pytest.mark.parametrize("out", ["single", "dict", "two"])
def test_gradcam_peaks_at_the_decisive_pixel(out):
    model, x = Toy(out=out), _toy_images()
    cam = GradCAM(model, "features")
    fake = cam(x)  # None: fake (single logit) / predicted class (fake here)
    assert fake.shape == (2, 8, 8) and fake.dtype == torch.float32
    for m in fake:
        assert _argmax2d(m) == (2, 5) and m.max() == 1.0
        assert m[6, 1] == 0.0  # real evidence has a negative weight, removed by the ReLU
    real = cam(x, target=0)
    for m in real:
        assert _argmax2d(m) == (6, 1) and m[2, 5] == 0.0
    # one target per image
    mixed = cam(x, target=[1, 0])
    assert _argmax2d(mixed[0]) == (2, 5) and _argmax2d(mixed[1]) == (6, 1)


def test_gradcam_noise_free_is_exactly_one_hot():
    x = _toy_images(noise=0.0)
    cam = GradCAM(Toy(), "features")(x)
    expected = torch.zeros(8, 8)
    expected[2, 5] = 1.0
    torch.testing.assert_close(cam[0], expected)
    assert primary_region_mask(cam)[0].sum() == 1


def test_gradcam_resizes_feature_maps_to_the_input():
    # 16x16 input, 8x8 features: the decisive pixel (5, 10) lies in feature cell (2, 5) = pixels 4..5 x 10..11
    x = _toy_images(size=16, fake_px=(5, 10), real_px=(12, 2), noise=0.0)
    cam = GradCAM(Toy(size=16, pool=True), "features")(x)
    assert cam.shape == (2, 16, 16)
    assert cam[0, 5, 10] == 1.0
    assert cam[0, 4:6, 10:12].min() == 1.0  # the four pixels of the cell share the peak
    assert cam[0, 12, 2] == 0.0


def test_scorecam_peaks_at_the_decisive_pixel():
    x = _toy_images()
    cam = ScoreCAM(Toy(), "features", batch_size=3)  # chunks that split images
    fake = cam(x)
    assert fake.shape == (2, 8, 8)
    for m in fake:
        assert _argmax2d(m) == (2, 5)
        # real-evidence channel: weight sigmoid(-2) ~ 0.12 times activation 0.5, plus ~0.98 x noise (< 0.05)
        assert m[6, 1] < 0.15
    real = cam(x, target=0)
    # peak 0.88 x 0.5 at (6, 1); at (2, 5) 0.018 x 1 + 0.88 x noise, relative to the peak < 0.2
    assert _argmax2d(real[0]) == (6, 1) and real[0, 2, 5] < 0.2
    torch.testing.assert_close(ScoreCAM(Toy(), "features", batch_size=64)(x), fake)


def test_no_state_leaks_and_modes_restored():
    model = Toy()
    model.train()
    model.head.eval()  # a mixed state must come back exactly
    layer = model.features[1]
    x = _toy_images()
    for cam in (GradCAM(model, layer), ScoreCAM(model, layer)):
        cam(x)
        assert not layer._forward_hooks and not any(m._forward_hooks for m in model.modules())
        assert all(p.grad is None for p in model.parameters())
        assert model.training and model.features.training and not model.head.training
    assert "features.1" in repr(GradCAM(model, layer))


def test_frozen_weights_and_batch_independence():
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=1)
    x = torch.rand(3, 3, 64, 64)
    cam = GradCAM(model)  # default layer4, 2x2 at 64 px
    full = cam(x)
    one_by_one = torch.cat([cam(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(full, one_by_one, atol=1e-5, rtol=1e-4)  # BatchNorm in eval: no coupling
    for p in model.parameters():
        p.requires_grad_(False)
    torch.testing.assert_close(GradCAM(model)(x), full, atol=1e-5, rtol=1e-4)
    assert full.min() >= 0 and full.max() <= 1


def _vit(**kw):
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2, **kw)


@pytest.mark.parametrize(
    "kw, prefix",
    [
        (dict(num_classes=1), 1),  # class token
        (dict(num_classes=2, reg_tokens=2), 3),  # class + 2 register tokens, (B, 2) logits
        (dict(num_classes=1, class_token=False, global_pool="avg"), 0),  # no prefix
    ],
)
def test_vit_shapes_both_cams(kw, prefix):
    model = _vit(**kw)
    assert model.num_prefix_tokens == prefix
    assert default_target_layer(model) == "blocks.1.norm1"
    x = torch.rand(2, 3, 32, 32)
    for cam in (GradCAM(model), ScoreCAM(model, batch_size=128)):
        m = cam(x)
        assert m.shape == (2, 32, 32) and m.dtype == torch.float32
        assert m.min() >= 0 and m.max() <= 1 and torch.isfinite(m).all()
        peak = m.amax((1, 2))
        assert ((peak == 1) | (peak == 0)).all() and (peak == 1).any()  # patch tokens get a signal

    # reference: tokens -> drop the prefix -> 4x4 grid, by hand with .backward()
    store = {}
    h = model.blocks[1].norm1.register_forward_hook(lambda mod, i, o: store.update(t=o) or o.retain_grad())
    logits = model(x)
    h.remove()
    score = logits[:, 1] if logits.shape[1] == 2 else logits[:, 0]  # the fake class
    score.sum().backward()
    tok, grad = store["t"][:, prefix:].detach(), store["t"].grad[:, prefix:]
    ref = torch.relu((grad.mean(1, keepdim=True) * tok).sum(-1)).reshape(2, 1, 4, 4)
    ref = nn.functional.interpolate(ref, size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    ref = ref / ref.amax((1, 2), keepdim=True).clamp_min(1e-30)
    torch.testing.assert_close(GradCAM(model)(x, target=1), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "name, expected, size",
    [
        ("resnet18", "layer4", 64),
        ("efficientnet_b0", "bn2", 64),
        ("legacy_xception", "act4", 64),
    ],
)
def test_default_target_layer_cnn_families(name, expected, size):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=1)
    assert default_target_layer(model) == expected
    m = GradCAM(model)(torch.rand(1, 3, size, size))
    assert m.shape == (1, size, size) and 0 <= m.min() and m.max() <= 1


def test_default_target_layer_vgg_and_wrapper():
    from timm.models.vgg import VGG

    vgg = VGG(cfg=[8, "M", 16, "M"], num_classes=1, mlp_ratio=0.01)  # a tiny VGG: same class, small head
    assert default_target_layer(vgg) == "features.4"
    assert isinstance(vgg.features[4], nn.ReLU)
    assert GradCAM(vgg)(torch.rand(2, 3, 32, 32)).shape == (2, 32, 32)

    class Method(nn.Module):  # a dfnb-style method around a backbone
        def __init__(self):
            super().__init__()
            self.backbone = timm.create_model("resnet18", pretrained=False, num_classes=1)

        def forward(self, x):
            return {"logit": self.backbone(x)[:, 0]}

    assert default_target_layer(Method()) == "backbone.layer4"
    with pytest.raises(ValueError, match="no known family"):
        default_target_layer(nn.Sequential(nn.Conv2d(3, 1, 1)))


def test_errors():
    model = Toy()
    with pytest.raises(ValueError, match="not a submodule"):
        GradCAM(model, "featurez")
    with pytest.raises(ValueError, match="not a submodule"):
        GradCAM(model, nn.ReLU())
    cam = GradCAM(model, "features")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        cam(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="target"):
        cam(_toy_images(), target=2)
    with pytest.raises(ValueError, match="target"):
        cam(_toy_images(), target=[0, 1, 1])


def test_primary_region_mask_eq4():
    a = torch.tensor([[0.0, 0.2], [0.31, 1.0]])
    torch.testing.assert_close(primary_region_mask(a), torch.tensor([[0.0, 1.0], [1.0, 1.0]]))  # A > 0
    torch.testing.assert_close(primary_region_mask(a, tau=0.3), torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    torch.testing.assert_close(primary_region_mask(a, tau=0.2), torch.tensor([[0.0, 0.0], [1.0, 1.0]]))  # strict
    n = primary_region_mask(a.numpy())
    assert isinstance(n, np.ndarray) and n.dtype == np.float32 and n.sum() == 3
    with pytest.raises(ValueError, match="NaN"):
        primary_region_mask(torch.tensor([float("nan")]))
