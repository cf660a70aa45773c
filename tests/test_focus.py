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


# --------------------------------------------------------------------------- protocol (chapter 20's helpers)
from dfnb.models.focus import protocol  # noqa: E402


def _faces(n=8, size=32, seed=0):
    """A list data set in the dfnb.data format, with the pristine face under 'source' (fakes: a bright square)."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        src = torch.rand(3, size, size, generator=g) * 0.5
        y = i % 2
        mask = torch.zeros(1, size, size)
        if y:
            mask[:, 8:20, 8:20] = 1
        img = src + 0.5 * mask
        items.append({"image": img, "source": src, "mask": mask, "label": torch.tensor(y),
                      "method": "fake" if y else "real"})
    return items


def test_rgb_branch_equals_the_full_models_rgb_logits():
    model = tiny_focus(img_size=32, patch_size=8).eval()
    for size in (32, 48):  # 48: resized to the model's 32 like FoCus.forward does
        x = torch.rand(2, 3, size, size)
        assert torch.allclose(protocol.RGBBranch(model)(x), model(x)["logits_rgb"], atol=1e-6)


def test_source_maps_shapes_zero_real_faces_and_errors():
    ds = _faces(6)
    gt = protocol.source_maps("gt", ds)
    assert gt.shape == (6, 1, 32, 32) and gt.dtype == torch.float16 and torch.equal(gt.float()[1], ds[1]["mask"])
    assert protocol.source_maps("none", ds).abs().sum() == 0
    d = protocol.source_maps("diff@0.1", ds, batch_size=4)  # |fake - pristine| = 0.5 inside the square
    assert torch.equal(d.float(), gt.float())
    model = tiny_focus(img_size=32, patch_size=8)
    for source in ("focus", "gradcam"):
        m = protocol.source_maps(source, ds, model, batch_size=4).float()
        assert m.shape == (6, 1, 32, 32) and torch.all(m[0::2] == 0) and 0 <= m.min() and m.max() <= 1
    with pytest.raises(ValueError, match="unknown map source"):
        protocol.source_maps("magic", ds)
    with pytest.raises(ValueError, match="needs a trained FoCus"):
        protocol.source_maps("focus", ds)
    with pytest.raises(KeyError, match="return_source"):
        protocol.source_maps("ssim", [{k: v for k, v in it.items() if k != "source"} for it in ds])


def test_with_map_checks_lengths():
    ds = _faces(4)
    wm = protocol.WithMap(ds, protocol.source_maps("gt", ds))
    assert wm[1]["map"].dtype == torch.float32 and torch.equal(wm[1]["map"], ds[1]["mask"])
    with pytest.raises(ValueError, match="3 maps for 4 faces"):
        protocol.WithMap(ds, torch.zeros(3, 1, 32, 32))


@pytest.mark.parametrize("model,kw", [("evaluator_effnet", dict(backbone="efficientnet_lite0", fpn_channels=8)),
                                      ("evaluator_pcl", dict(backbone="resnet18", embed_dim=8))])
def test_evaluate_map_source_trains_and_tests_every_set(model, kw):
    tr, va, te = _faces(8, seed=0), _faces(4, seed=1), _faces(4, seed=2)
    maps = protocol.source_maps("gt", tr), protocol.source_maps("gt", va)
    r = protocol.evaluate_map_source(tr, va, *maps, {"a": te, "b": te[:2] + te[3:]}, epochs=1, batch_size=4,
                                     lr=1e-3, seed=0, model=model, model_kwargs=kw, progress=False)
    assert set(r["auc"]) == set(r["acc"]) == {"a", "b"} and all(0 <= v <= 1 for v in r["auc"].values())
    assert len(r["probs"]["b"][0]) == 3 and r["seconds"] > 0 and len(r["history"].epochs) == 1
    assert (r["localization"] is None) == (model == "evaluator_pcl")  # PCL has no map head
    with pytest.raises(KeyError, match="loc_set"):
        protocol.evaluate_map_source(tr, va, *maps, {"a": te}, epochs=1, batch_size=4, lr=1e-3, seed=0,
                                     model=model, model_kwargs=kw, loc_set="zzz")


def test_train_focus_is_seeded_and_fused_features_feed_the_cl_head():
    tr = _faces(4)
    kw = dict(TINY, img_size=32, patch_size=8)
    with pytest.warns(UserWarning, match="val_set is None"):  # no validation split: the last epoch is kept
        m1, h1, _ = protocol.train_focus(tr, None, epochs=1, batch_size=4, lr=1e-3, seed=3, progress=False, **kw)
        m2, _, _ = protocol.train_focus(tr, None, epochs=1, batch_size=4, lr=1e-3, seed=3, progress=False, **kw)
    assert len(h1.epochs) == 1
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    f, y, methods = protocol.fused_features(m1, tr, batch_size=3)
    assert f.shape == (4, 32) and list(y) == [0, 1, 0, 1] and methods == ["real", "fake"] * 2
    x = torch.stack([it["image"] for it in tr])
    with torch.no_grad():
        assert torch.allclose(m1.cl.head(torch.as_tensor(f)), m1.eval()(x)["logits_cls"], atol=1e-5)
    with pytest.raises(ValueError, match="CL block"):
        protocol.fused_features(tiny_focus(cl=False), tr)


def test_beside_paper_pairs_columns_and_converts_to_percent():
    import pandas as pd

    ours = pd.DataFrame({"acc": [0.5, 0.25], "cdf-syn": [0.75, 1.0]}, index=["FoCus", "Ours only"])
    paper = pd.DataFrame({("FF", "ACC"): [90.0], ("CDF", "AUC"): [70.0]}, index=["FoCus"])
    t = protocol.beside_paper(ours, {"paper (FF)": paper}, {"acc": ("FF", "ACC"), "cdf-syn": ("CDF", "AUC")},
                              "this run (syn)")
    assert list(t.columns) == ["acc | FF ACC", "cdf-syn | CDF AUC"]
    assert t.loc[("FoCus", "this run (syn)")].tolist() == [50.0, 75.0]
    assert t.loc[("FoCus", "paper (FF)")].tolist() == [90.0, 70.0]
    assert ("Ours only", "paper (FF)") not in t.index and t.loc[("Ours only", "this run (syn)")].tolist() == [25.0, 100.0]
    with pytest.raises(KeyError, match="not in this run"):
        protocol.beside_paper(ours, {}, {"auc": ("FF", "AUC")}, "x")


def test_loo_1nn_accuracy_by_hand():
    f = np.array([[0.0], [0.1], [1.0], [1.2], [5.0]])
    # neighbours: 0->1, 1->0, 2->3, 3->2, 4->3
    assert protocol.loo_1nn_accuracy(f, ["a", "a", "b", "b", "a"]) == pytest.approx(4 / 5)
    assert protocol.loo_1nn_accuracy(f, [0, 1, 0, 1, 1]) == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="N >= 2"):
        protocol.loo_1nn_accuracy(f[:1], [0])


def test_cam_source_maps_explain_only_the_fakes_and_match_compute_maps():
    ds = _faces(5)
    model = tiny_focus(img_size=32, patch_size=8)
    got = protocol.source_maps("gradcam", ds, model, batch_size=5).float()
    x, y = torch.stack([it["image"] for it in ds]), torch.tensor([int(it["label"]) for it in ds])
    net = protocol.RGBBranch(model).eval()
    ref = fmaps.compute_maps("gradcam", {"image": x, "label": y}, model=net, target_layer=model.rgb.vit.blocks[-1],
                             num_prefix_tokens=1)
    assert torch.allclose(got, ref, atol=1e-3) and torch.all(got[y == 0] == 0)
