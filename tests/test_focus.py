"""FoCus: CARP pooling and CAR maps, hard Gumbel substitution, Sobel input, map sources (issue 7)."""
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import dfnb
from dfnb.models.focus import maps as fmaps
from dfnb.models.focus.carp import car_map, carp_logits, normalize_map
from dfnb.models.focus.cl import ComplementaryLearning, hard_gumbel_select
from dfnb.models.focus.focus import FoCus
from dfnb.models.focus.modalities import block_dct, sobel_magnitude, srm_image

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import one_thread  # noqa: E402,F401  (autouse fixture: tiny models run faster on one thread)

TINY = dict(img_size=32, depth=1, embed_dim=32, num_heads=2, K=4)  # 2x2 token grid


def tiny_focus(**kw):
    torch.manual_seed(0)
    return FoCus(**{**TINY, **kw})


def test_carp_logits_are_spatial_max_then_channel_mean():
    # B=1, C=2 classes, K=2 maps per class, 2x2 grid
    m = torch.tensor([[[[[1., 5.], [2., 0.]], [[-3., -1.], [-2., -4.]]],
                       [[[0., 0.], [7., 1.]], [[2., 9.], [3., 3.]]]]])
    # class 0: maxima 5 and -1 -> mean 2;  class 1: maxima 7 and 9 -> mean 8
    assert torch.equal(carp_logits(m), torch.tensor([[2., 8.]]))


def test_car_map_weights_each_map_by_its_spatial_mean():
    m = torch.tensor([[[[[1., 3.], [0., 0.]], [[2., 2.], [2., 2.]]],
                       [[[4., 0.], [0., 0.]], [[0., 0.], [0., -8.]]]]])
    # class 0: means 1 and 2 -> 1*F0 + 2*F1 ; class 1: means 1 and -2 -> F0 - 2*F1
    assert torch.equal(car_map(m, 0), torch.tensor([[[[5., 7.], [4., 4.]]]]))
    assert torch.equal(car_map(m, 1), torch.tensor([[[[4., 0.], [0., 16.]]]]))
    assert torch.equal(car_map(m, torch.tensor([1])), car_map(m, 1))
    n = normalize_map(torch.tensor([[[[-1., 2.], [4., 0.]]]]))
    assert torch.equal(n, torch.tensor([[[[0., .5], [1., 0.]]]]))
    assert torch.equal(normalize_map(torch.zeros(1, 1, 2, 2)), torch.zeros(1, 1, 2, 2))


def test_hard_gumbel_is_one_hot_forward_and_straight_through_backward():
    torch.manual_seed(0)
    s = torch.randn(4, 10, 2, requires_grad=True)
    g = hard_gumbel_select(s, tau=0.5)
    assert set(g.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(g.detach().sum(-1), torch.ones(4, 10))
    assert 0 < g.detach()[..., 1].sum() < 40  # both modalities get picked somewhere
    (g[..., 1] * torch.randn(4, 10)).sum().backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    # without noise the choice is the argmax of the scores
    assert torch.equal(hard_gumbel_select(s, noise=False).argmax(-1), s.argmax(-1))


@pytest.mark.parametrize("training", [True, False])
def test_cl_substitution_is_hard_and_trains_both_score_mlps(training):
    torch.manual_seed(1)
    cl = ComplementaryLearning(dim=16, num_heads=2, tau=1.0).train(training)
    t_rgb, t_aux = torch.randn(3, 9, 16), torch.randn(3, 9, 16)
    out = cl(t_rgb, t_aux)
    s = out["sub_mask"].detach()
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    expect = torch.where(s.bool().unsqueeze(-1), t_aux, t_rgb)  # each token is exactly one of the two
    assert torch.equal(out["fused"].detach(), expect)
    assert torch.equal(out["select"].detach().sum(-1), torch.ones(3, 9))
    if not training:  # no noise: the pair's larger softmax score wins
        assert torch.equal(s, out["probs"].argmax(-1).float())
    out["logits"].pow(2).sum().backward()
    for mlp in (cl.score_rgb, cl.score_aux):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mlp.parameters())


def test_cl_noise_only_in_training():
    torch.manual_seed(2)
    cl = ComplementaryLearning(dim=16, num_heads=2).eval()
    t = torch.randn(2, 50, 16), torch.randn(2, 50, 16)
    assert torch.equal(cl(*t)["sub_mask"], cl(*t)["sub_mask"])
    cl.train()
    assert not torch.equal(cl(*t)["sub_mask"], cl(*t)["sub_mask"])  # 100 Gumbel draws differ somewhere


def _cv2_sobel_magnitude(img: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx ** 2 + gy ** 2)


def test_sobel_magnitude_equals_opencv():
    rng = np.random.default_rng(0)
    img = rng.random((23, 31, 3), dtype=np.float32)
    ref = _cv2_sobel_magnitude(img)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    raw = sobel_magnitude(x, clip=False)
    assert raw.shape == (1, 3, 23, 31)
    np.testing.assert_allclose(raw[0, 0].numpy(), ref, atol=1e-5)
    np.testing.assert_allclose(sobel_magnitude(x)[0, 2].numpy(), np.clip(ref, 0, 1), atol=1e-5)


def test_sobel_branch_input_is_opencv_sobel_magnitude():
    model = tiny_focus().eval()
    seen = {}
    model.aux.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0]))
    img = np.random.default_rng(1).random((32, 32, 3), dtype=np.float32)  # already img_size: no resize
    model(torch.from_numpy(img).permute(2, 0, 1)[None])
    ref = np.clip(_cv2_sobel_magnitude(img), 0, 1)
    for c in range(3):
        np.testing.assert_allclose(seen["x"][0, c].numpy(), ref, atol=1e-5)


def test_dct_and_srm_modalities():
    x = torch.rand(2, 3, 16, 24)
    c = block_dct(x)
    from scipy.fft import dctn
    ref = dctn(x[1, 2, 8:16, 16:24].double().numpy(), norm="ortho")
    np.testing.assert_allclose(c[1, 2, 8:16, 16:24].numpy(), ref, atol=1e-5)
    with pytest.raises(ValueError, match="divisible by 8"):
        block_dct(torch.rand(1, 3, 12, 16))
    s = srm_image(torch.full((1, 3, 12, 12), 0.3))  # flat image: zero residual -> 0.5
    assert torch.allclose(s, torch.full_like(s, 0.5), atol=1e-5)


def test_fixed_position_encoding_is_not_trained():
    model = tiny_focus()
    for br in (model.rgb, model.aux):
        assert "vit.pos_embed" not in dict(br.named_parameters())
        assert "vit.pos_embed" in dict(br.named_buffers())
    assert torch.equal(model.rgb.vit.pos_embed, model.aux.vit.pos_embed)


def test_focus_outputs_eq5_fusion_and_loss():
    model = tiny_focus().eval()
    out = model(torch.rand(3, 3, 2, 2))  # maps come back at 2x2 = the token grid, so Eq. 5 is exact
    S = out["sub_mask"]
    assert set(S.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(out["car_map"], (1 - S) * out["car_rgb"] + S * out["car_aux"])
    assert torch.equal(out["logit"], out["logits_cls"][:, 1] - out["logits_cls"][:, 0])
    model.train()
    out = model(torch.rand(2, 3, 40, 40))
    assert out["car_map"].shape == out["car_map_fake"].shape == (2, 1, 40, 40)
    assert 0 <= out["car_map"].min() and out["car_map"].max() <= 1
    losses = model.losses(out, {"label": torch.tensor([0, 1])})
    expect = losses["loss_loc_rgb"] + losses["loss_loc_aux"] + 0.1 * losses["loss_cls"]
    assert torch.allclose(losses["loss"].detach(), expect)
    losses["loss"].backward()
    assert model.rgb.carp.conv.weight.grad.abs().sum() > 0 and model.cl.head.weight.grad.abs().sum() > 0


def test_ablations_run_and_minus_cl_fuses_by_max():
    x = torch.rand(2, 3, 2, 2)
    out = tiny_focus(cl=False).eval()(x)
    assert "sub_mask" not in out
    assert torch.equal(out["car_map"], torch.maximum(out["car_rgb"], out["car_aux"]))
    for kw in (dict(modality=None), dict(carp=False), dict(modality="dct"), dict(modality="srm"), dict(modality="rgb")):
        model = tiny_focus(**kw)
        o = model(torch.rand(2, 3, 32, 32))
        model.losses(o, {"label": torch.tensor([1, 0])})["loss"].backward()
        assert o["car_map"].shape == (2, 1, 32, 32), kw
    with pytest.raises(ValueError, match="unknown modality"):
        tiny_focus(modality="hsv")


def test_focus_maps_zero_real_faces_when_used_as_supervision():
    model = tiny_focus()
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])
    for variant in ("pred", "fake"):
        m = fmaps.focus_maps(model, x, y, variant=variant, size=(48, 48))
        assert m.shape == (4, 1, 48, 48)
        assert torch.all(m[y == 0] == 0)
        assert torch.allclose(m[y == 1].amax(dim=(1, 2, 3)), torch.ones(2))
    assert model.training  # mode restored
    m = fmaps.compute_maps("focus", {"image": x, "label": y}, model=model)
    assert torch.all(m[y == 0] == 0) and m[y == 1].max() > 0


def test_comparison_map_sources():
    from skimage.metrics import structural_similarity
    rng = np.random.default_rng(3)
    a = rng.random((20, 22), dtype=np.float32)
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape).astype(np.float32), 0, 1)
    _, s_ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=1.0, full=True)
    fa, fb = (torch.from_numpy(v).expand(3, -1, -1)[None] for v in (a, b))
    np.testing.assert_allclose(fmaps.ssim_map(fa, fb)[0, 0].numpy(), np.clip(1 - s_ref, 0, 1), atol=1e-5)
    fake = torch.zeros(2, 3, 2, 2)
    fake[:, :, 0, 0] = 0.3
    fake[:, :, 1, 1] = 0.05
    pristine = torch.zeros_like(fake)
    y = torch.tensor([1, 0])
    t = fmaps.diff_map_thresholded(fake, pristine, y)
    assert torch.equal(t[0, 0], torch.tensor([[1., 0.], [0., 0.]])) and t[1].sum() == 0
    d = fmaps.diff_map(fake, pristine, y)
    assert torch.allclose(d[0, 0], torch.tensor([[1., 0.], [0., 1 / 6]])) and d[1].sum() == 0
    with pytest.raises(KeyError, match="pristine"):
        fmaps.compute_maps("ssim", {"image": fake, "label": y})


def test_focus_is_registered():
    assert "focus" in dfnb.list_models("focus*")


def test_iter_maps_over_a_loader():
    x = torch.rand(4, 3, 8, 8)
    loader = [{"image": x[:2], "pristine": x[:2] * 0.5, "label": torch.tensor([1, 0])},
              {"image": x[2:], "pristine": x[2:], "label": torch.tensor([1, 1])}]
    got = [m for _, m in fmaps.iter_maps("diff@0.1", loader)]
    assert [m.shape for m in got] == [(2, 1, 8, 8)] * 2
    assert got[0][1].sum() == 0 and got[1].sum() == 0  # a real face; identical pairs


@pytest.mark.parametrize("source", ["gradcam", "scorecam"])
def test_cam_map_sources_zero_real_faces(source):
    import timm
    torch.manual_seed(0)
    vit = timm.create_model("vit_small_patch16_224", pretrained=False, img_size=32, depth=1, embed_dim=32,
                            num_heads=2, num_classes=2)
    x, y = torch.rand(3, 3, 32, 32), torch.tensor([1, 0, 1])
    m = fmaps.compute_maps(source, {"image": x, "label": y}, model=vit, size=(16, 16))
    assert m.shape == (3, 1, 16, 16) and torch.all(m[1] == 0)
    assert 0 <= m.min() and m.max() <= 1


def test_minus_carp_maps_are_class_token_attention():
    model = tiny_focus(carp=False, modality=None).eval()
    x = torch.rand(2, 3, 2, 2)
    out = model(x)
    vit = model.rgb.vit
    vit.blocks[-1].attn.fused_attn = False  # timm's explicit path keeps the softmax weights
    seen = {}
    vit.blocks[-1].attn.attn_drop.register_forward_hook(lambda m, a, o: seen.setdefault("a", o))
    model(x)
    att = seen["a"].mean(1)[:, 0, 1:].reshape(2, 1, 2, 2)  # class-token row, image tokens, mean of heads
    assert torch.allclose(out["car_rgb"], att / att.amax(dim=(2, 3), keepdim=True), atol=1e-6)


def test_gradcam_of_the_focus_rgb_branch_is_nonzero_on_fakes_only():
    # chapter 20's Grad-CAM source: the fake logit of FoCus's RGB-branch CARP head, last block's tokens
    class RGBBranch(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x)["logits_rgb"]

    net = RGBBranch(tiny_focus(img_size=32, patch_size=8))  # 4x4 token grid
    x, y = torch.rand(3, 3, 32, 32), torch.tensor([1, 0, 1])
    m = fmaps.compute_maps("gradcam", {"image": x, "label": y}, model=net,
                           target_layer=net.model.rgb.vit.blocks[-1], num_prefix_tokens=1)
    assert m.shape == (3, 1, 32, 32) and torch.all(m[1] == 0)
    assert 0 <= m.min() and m.max() <= 1
    assert m[0].max() > 0 or m[2].max() > 0  # the CARP head gives the patch tokens a gradient
