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


def test_vit_encoder_layer_is_pre_norm_residual():
    # Eq. 3 as the branches compute it: z' = MHSA(LN(z)) + z, z_out = MLP(LN(z')) + z'
    blk = tiny_focus().rgb.vit.blocks[0].eval()
    z = torch.randn(2, 5, 32)
    z1 = blk.attn(blk.norm1(z)) + z
    assert torch.allclose(blk(z), blk.mlp(blk.norm2(z1)) + z1, atol=1e-6)


def test_losses_are_cross_entropies_eq6_eq7():
    from dfnb.models.focus.carp import localization_loss

    logits, y = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    by_hand = -(torch.log(torch.tensor(1 / (1 + np.exp(-2.0)))) + torch.log(torch.tensor(1 / (1 + np.exp(-1.0))))) / 2
    assert torch.allclose(localization_loss(logits, y), by_hand.float(), atol=1e-6)
    model = tiny_focus().train()
    out = model(torch.rand(2, 3, 32, 32))
    parts = model.losses(out, {"label": y})
    ce = lambda z: -torch.log_softmax(z, dim=1)[torch.arange(2), y].mean()  # noqa: E731
    assert torch.allclose(parts["loss_loc_rgb"], ce(out["logits_rgb"]), atol=1e-6)
    assert torch.allclose(parts["loss_loc_aux"], ce(out["logits_aux"]), atol=1e-6)
    assert torch.allclose(parts["loss_cls"], ce(out["logits_cls"]), atol=1e-6)


# --------------------------------------------------------------------------- protocol (chapter 20's helpers)
import pandas as pd  # noqa: E402

from dfnb.models.focus import protocol, summary  # noqa: E402


class _Faces(list):
    """A list data set with a fingerprint (what dfnb.experiments needs to cache what trains on it)."""

    def __init__(self, items, fingerprint):
        super().__init__(items)
        self.fingerprint = fingerprint


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
        lm = torch.full((68, 2), float("nan")) if i % 4 == 1 else torch.tensor(
            [[4.0 + 24 * np.cos(t) / 2 + 12, 4.0 + 24 * np.sin(t) / 2 + 12] for t in np.linspace(0, 6.2, 68)])
        items.append({"image": img, "source": src, "mask": mask, "label": torch.tensor(y),
                      "method": "fake" if y else "real", "landmarks": lm.float(), "identity": i // 2})
    return _Faces(items, f"faces-{n}-{size}-{seed}")


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
        free = protocol.source_maps(source, ds, model, batch_size=4, label_free=True).float()
        assert torch.allclose(free[1::2], m[1::2], atol=2e-3)  # fakes: the same maps (other batches)
        assert free[0::2].sum() > 0 and free.max() <= 1  # reals explained too, not zeroed
    free = protocol.source_maps("diff@0.1", ds, batch_size=4, label_free=True)
    assert torch.equal(free, d)  # a real face's pristine frame is itself: nothing differs, nothing zeroed
    with pytest.raises(ValueError, match="unknown map source"):
        protocol.source_maps("magic", ds)
    with pytest.raises(ValueError, match="needs a trained FoCus"):
        protocol.source_maps("focus", ds)
    with pytest.raises(KeyError, match="return_source"):
        protocol.source_maps("ssim", [{k: v for k, v in it.items() if k != "source"} for it in ds])
    ds.has_mask = np.array([True, False, True, True, True, True])  # a fake without a mask video
    with pytest.raises(ValueError, match="source 'gt': 1 fakes of this data set have no true mask"):
        protocol.source_maps("gt", ds)

def test_with_map_checks_lengths():
    ds = _faces(4)
    wm = protocol.WithMap(ds, protocol.source_maps("gt", ds))
    assert wm[1]["map"].dtype == torch.float32 and torch.equal(wm[1]["map"], ds[1]["mask"])
    with pytest.raises(ValueError, match="3 maps for 4 faces"):
        protocol.WithMap(ds, torch.zeros(3, 1, 32, 32))


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


@pytest.mark.parametrize("model,kw", [("evaluator_effnet", dict(backbone="efficientnet_lite0", fpn_channels=8)),
                                      ("evaluator_pcl", dict(backbone="resnet18", embed_dim=8))])
def test_evaluate_map_source_trains_once_and_tests_every_set(model, kw, tmp_path):
    tr, va, te = _faces(8, seed=0), _faces(4, seed=1), _faces(4, seed=2)
    maps = protocol.source_maps("gt", tr), protocol.source_maps("gt", va)
    args = dict(epochs=1, batch_size=4, lr=1e-3, seed=0, model=model, model_kwargs=kw, cache=tmp_path)
    r = protocol.evaluate_map_source(tr, va, *maps, {"a": te, "b": _Faces(te[:2] + te[3:], "b")}, **args)
    assert set(r["auc"]) == set(r["acc"]) == {"a", "b"} and all(0 <= v <= 1 for v in r["auc"].values())
    assert len(r["probs"]["b"][0]) == 3 and r["seconds"] > 0 and len(r["history"].epochs) == 1
    assert (r["localization"] is None) == (model == "evaluator_pcl")  # PCL has no map head
    again = protocol.evaluate_map_source(tr, va, *maps, {"a": te}, **args)  # same maps: loaded, same numbers
    assert again["cached"] and not r["cached"] and again["auc"]["a"] == r["auc"]["a"]
    other = protocol.evaluate_map_source(tr, va, torch.zeros_like(maps[0]), maps[1], {"a": te}, **args)
    assert not other["cached"]  # other maps: another experiment
    with pytest.raises(KeyError, match="loc_set"):
        protocol.evaluate_map_source(tr, va, *maps, {"a": te}, loc_set="zzz", **args)


def test_with_map_fingerprint_follows_the_maps():
    ds = _faces(4)
    gt = protocol.source_maps("gt", ds)
    a, b = protocol.WithMap(ds, gt), protocol.WithMap(ds, gt.clone())
    assert a.fingerprint == b.fingerprint and a.fingerprint.startswith("withmap:faces-4-32-0:")
    assert protocol.WithMap(ds, torch.zeros_like(gt)).fingerprint != a.fingerprint


def test_focus_through_train_seeded_is_seeded_and_fused_features_feed_the_cl_head(tmp_path):
    from dfnb.experiments import train_seeded

    tr = _faces(4)
    kw = dict(model_kwargs=dict(TINY, img_size=32, patch_size=8), epochs=1, batch_size=4, lr=1e-3, seed=3)
    with pytest.warns(UserWarning, match="val_set is None"):  # no validation split: the last epoch is kept
        e1 = train_seeded("focus", tr, None, cache=False, **kw)
        e2 = train_seeded("focus", tr, None, cache=False, **kw)
    assert len(e1.history.epochs) == 1 and e1.state_dict_sha256() == e2.state_dict_sha256()
    m1 = e1.model
    f, y, methods = protocol.fused_features(m1, tr, batch_size=3)
    assert f.shape == (4, 32) and list(y) == [0, 1, 0, 1] and methods == ["real", "fake"] * 2
    x = torch.stack([it["image"] for it in tr])
    with torch.no_grad():
        assert torch.allclose(m1.cl.head(torch.as_tensor(f)), m1.eval()(x)["logits_cls"], atol=1e-5)
    with pytest.raises(ValueError, match="CL block"):
        protocol.fused_features(tiny_focus(cl=False), tr)


def test_protocol_is_not_part_of_the_focus_experiment_key():
    from dfnb.experiments import _default_code

    code = _default_code("focus", None, ())
    assert "dfnb.models.focus.focus" in code
    assert not any(m.endswith(("protocol", "summary")) for m in code)


def test_refusals_name_the_problem():
    protocol.check_ablation_entries([None, "sobel"], ["-CL"], ["gradcam"])
    with pytest.raises(ValueError, match=r"\['hsv', '-X'\]"):
        protocol.check_ablation_entries(["hsv"], ["-X"], [])


def test_batch_of_and_first_of_each():
    ds = _faces(5)
    b = protocol.batch_of(ds, [1, 3])
    assert b["image"].shape == (2, 3, 32, 32) and b["method"] == ["fake", "fake"]
    assert torch.equal(b["pristine"], torch.stack([ds[1]["source"], ds[3]["source"]]))
    assert "pristine" not in protocol.batch_of([{k: v for k, v in it.items() if k != "source"} for it in ds], [0])
    assert protocol.first_of_each(["b", "a", "b", "c"], ("a", "b", "z", "c")) == [1, 0, 3]


def test_sobel_token_fraction_by_hand():
    model = tiny_focus(img_size=32, patch_size=8).eval()  # 4x4 token grid
    ds = _faces(4)
    got = protocol.sobel_token_fraction(model, ds, batch_size=3)
    x = torch.stack([it["image"] for it in ds])
    with torch.no_grad():
        S = model(x)["sub_mask"]  # (4, 1, 4, 4)
    inside = torch.zeros(4, 4, dtype=torch.bool)
    inside[1, 1] = inside[1, 2] = inside[2, 1] = True  # the square 8:20 covers 1, 1/2, 1/2, 1/4 of these cells
    fakes = S[1::2, 0]
    assert got["all test faces"] == pytest.approx(float(S.mean()))
    assert got["real faces"] == pytest.approx(float(S[0::2].mean()))
    assert got["fakes, inside the true mask"] == pytest.approx(float(fakes[:, inside].mean()))
    assert got["fakes, outside the true mask"] == pytest.approx(float(fakes[:, ~inside].mean()))
    assert model.training is False


def test_direct_scores_and_the_face_hull():
    ds = _faces(8)
    y = np.array([int(it["label"]) for it in ds])
    gt = protocol.source_maps("gt", ds).float().numpy()
    hull = protocol.face_hull_maps(ds)
    assert hull.shape == (8, 1, 32, 32) and hull[0::2].sum() == 0
    assert hull[1].min() == 1  # NaN landmarks: the whole image
    assert 0 < hull[3].mean() < 1  # a hull of the landmark ring
    t = protocol.direct_scores({"perfect": gt, "hull": hull}, gt, y)
    assert list(t.index) == ["perfect", "hull"] and list(t.columns) == list(protocol.DIRECT_KEYS)
    assert t.loc["perfect", "pixel_auc_fake"] == 1 and t.loc["perfect", "iou_fake"] == 1


def test_evaluator_row():
    r = {"acc": {"in": 0.5}, "auc": {"in": 0.6, "x": 0.7, "z": 0.9}}
    assert protocol.evaluator_row(r, "in", ["x", "z"]) == {"in ACC": 0.5, "in AUC": 0.6, "x": 0.7, "z": 0.9,
                                                           "cross-domain mean": pytest.approx(0.8)}
    assert np.isnan(protocol.evaluator_row(r, "in", [])["cross-domain mean"])


def test_corruptions_are_seeded_per_item_and_tabled():
    ds = _faces(4)
    a, b = protocol.Corrupted(ds, "noise", 3, seed=1), protocol.Corrupted(ds, "noise", 3, seed=1)
    assert torch.equal(a[2]["image"], b[2]["image"]) and not torch.equal(a[2]["image"], ds[2]["image"])
    assert not torch.equal(a[2]["image"], protocol.Corrupted(ds, "noise", 3, seed=2)[2]["image"])
    with pytest.raises(ValueError, match="unknown corruption"):
        protocol.Corrupted(ds, "fog", 1, 0)
    t = protocol.corruption_auc(tiny_focus(img_size=32, patch_size=8), ds, 0, kinds=("blur",), levels=(1, 2))
    assert list(t.index) == ["blur", "clean"] and list(t.columns) == [1, 2, "mean"]
    assert t.loc["blur", "mean"] == pytest.approx(t.loc["blur", [1, 2]].mean())


def test_feature_separability_leaves_unknown_identities_out():
    f = np.array([[0.0], [0.1], [1.0], [1.1]])
    fam, y = np.array(["a", "a", "b", "b"]), np.array([0, 0, 1, 1])
    t = protocol.feature_separability(f, fam, y, np.array([7, 7, 8, 8]))
    assert list(t.index) == ["family (real + 4)", "real vs fake", "identity"]
    assert t.loc["identity", "1-NN accuracy"] == 1 and t.loc["real vs fake", "majority share"] == 0.5
    unknown = protocol.feature_separability(f, fam, y, np.array([-1, -1, -1, -1]))
    assert "identity" not in unknown.index
    assert protocol.tsne_2d(np.random.default_rng(0).random((10, 3)), seed=0).shape == (10, 2)


def test_ablation_study_trains_each_variant_once_and_fills_tables_v_vi_and_the_sweeps(tmp_path):
    tr, va, te = _faces(8, seed=0), _faces(4, seed=1), _faces(4, seed=2)
    gt = protocol.source_maps("gt", te).float().numpy()
    y = np.array([int(it["label"]) for it in te])
    seen = []
    study = protocol.AblationStudy(
        tr, va, {"train": tr, "val": va, "test": te}, {"in": te, "x": te}, gt, y, dataset="in",
        focus_kwargs=dict(TINY, img_size=32, patch_size=8),
        evaluator_kwargs=dict(backbone="efficientnet_lite0", fpn_channels=8), epochs=1, eval_epochs=1,
        batch_size=4, lr=1e-3, eval_lr=1e-3, seed=0, metric=lambda name, value, **kw: seen.append(name),
        cache=tmp_path)
    t5 = study.table5(["sobel"])
    assert list(t5.index) == ["RGB + Sobel (FoCus)"] and {"in ACC", "in AUC", "x", "cross-domain mean",
                                                         protocol.PIXEL_AUC, protocol.HEAD_AUC} == set(t5.columns)
    t6 = study.table6(["-CL"], ["gradcam"])
    assert list(t6.index) == ["FoCus", "-CL", "GradCAM"] and np.isnan(t6.loc["GradCAM", protocol.HEAD_AUC])
    assert t6.loc["FoCus"].equals(t5.loc["RGB + Sobel (FoCus)"].rename("FoCus"))  # one variant, judged once
    assert len(study.variants) == 2 and len(study.judged) == 3
    assert study.variant() is study.variant(K=32)  # the reference, trained once
    assert seen.count("train_seconds") == 2 + 3 and "map_seconds" in seen
    k = study.k_sweep([4, 32])
    assert list(k.index) == [4, 32] and k.index.name == "K" and len(study.variants) == 3
    lam, hist = study.lambda_sweep([0.1])
    assert lam.index.name == "lambda_cls" and list(hist) == [0.1] and "train_loss_cls" in hist[0.1]
    with pytest.raises(KeyError, match="not one of the test sets"):
        protocol.AblationStudy(tr, va, {}, {"x": te}, gt, y, dataset="in", focus_kwargs={}, evaluator_kwargs={},
                               epochs=1, eval_epochs=1, batch_size=4, lr=1e-3, eval_lr=1e-3, seed=0)


# --------------------------------------------------------------------------- summary (tables, figures, sentences)
def test_split_sizes():
    sizes = summary.split_sizes({"a": _faces(4), "b": _faces(3)})
    assert sizes.loc["a"].tolist() == [4, 2] and sizes.loc["b"].tolist() == [3, 1]


def _fonts(fig):
    import matplotlib.text

    return [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def test_figures_have_a_panel_per_quantity_and_legible_fonts():
    import matplotlib.pyplot as plt

    x = torch.rand(3, 3, 8, 8)
    g = summary.map_grid({"rgb": x, "map": x[:, :1], "np": x[:, 0].numpy()}, ["a", "b\nc", "d"])
    assert len(g.axes) == 9
    with pytest.raises(ValueError, match="every row needs 3"):
        summary.map_grid({"rgb": x[:2]}, ["a", "b", "c"])
    ts = summary.tsne_figure(np.random.rand(4, 2), ["real", "a", "a", "b"], ("real", "a", "b", "c"), "t-SNE")
    assert len(ts.axes[0].collections) == 3
    for fig in (g, ts):
        assert min(_fonts(fig)) >= 9
        plt.close(fig)


def test_keyed_split_maps_are_computed_once_and_corrupted_sets_fingerprinted(tmp_path, monkeypatch):
    monkeypatch.setenv("DFNB_CACHE", str(tmp_path))
    splits = {"a": _faces(4), "b": _faces(4, seed=1)}
    model = tiny_focus(img_size=32, patch_size=8)
    first = protocol.split_maps("focus", splits, model, key="k1", batch_size=4)
    calls = []
    real = protocol.source_maps
    monkeypatch.setattr(protocol, "source_maps", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    again = protocol.split_maps("focus", splits, model, key="k1", batch_size=4)
    assert not calls and all(torch.equal(first[s], again[s]) for s in splits)
    assert again["a"].dtype == torch.float16 and again["a"].shape == (4, 1, 32, 32)
    protocol.split_maps("focus", splits, model, key="k2", batch_size=4)  # another model: computed
    assert calls == ["focus", "focus"]
    ds = _faces(4)
    fps = {protocol.Corrupted(ds, k, lv, 0).fingerprint for k in ("noise", "blur") for lv in (1, 2)}
    assert len(fps) == 4 and protocol.Corrupted(ds, "noise", 1, 0).fingerprint == protocol.Corrupted(ds, "noise", 1, 0).fingerprint


def test_a_size_off_the_patch_grid_is_refused():
    protocol.check_patch_grid(64, 8)
    with pytest.raises(ValueError, match="size 72 is not a multiple of patch_size 16: .* last 8 px"):
        protocol.check_patch_grid(72, 16)


def test_plain_vit_cam_explains_the_tokens_its_class_token_attends_to():
    # the paper's Grad-CAM baseline: a separately trained plain ViT (no CARP, no CL), class-token head.  Its last
    # block's output image tokens never reach the logit, so Grad-CAM there is all zero; cam_layer picks norm1.
    torch.manual_seed(0)
    plain = tiny_focus(img_size=32, patch_size=8, modality=None, carp=False).eval()
    assert plain.use_cl is False and plain.rgb.head is not None
    assert protocol.cam_layer(plain) is plain.rgb.vit.blocks[-1].norm1
    assert protocol.cam_layer(tiny_focus(img_size=32, patch_size=8)) is not None
    x, y = torch.rand(3, 3, 32, 32), torch.tensor([1, 1, 0])
    net = protocol.RGBBranch(plain).eval()
    at = lambda layer: fmaps.compute_maps("gradcam", {"image": x, "label": y}, model=net,  # noqa: E731
                                          target_layer=layer, num_prefix_tokens=1)
    assert torch.all(at(plain.rgb.vit.blocks[-1]) == 0)  # no gradient reaches the output image tokens
    m = at(protocol.cam_layer(plain))
    assert m[:2].amax() > 0 and torch.all(m[2] == 0)
    ds = _faces(4)
    got = protocol.source_maps("gradcam", ds, plain, batch_size=4).float()
    assert got[1::2].amax() > 0 and torch.all(got[0::2] == 0)  # odd items are the fakes


def test_rgb_branch_of_a_plain_vit_equals_its_class_token_logits():
    plain = tiny_focus(img_size=32, patch_size=8, modality=None, carp=False).eval()
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(protocol.RGBBranch(plain)(x), plain(x)["logits"], atol=1e-6)


def test_a_cached_lite0_evaluator_computes_what_the_trained_one_did(tmp_path):
    # the lite0 evaluator's padding, BN eps and input mean / std depend on `pretrained`: a cache entry must
    # be rebuilt with them (it once was rebuilt with pretrained=False: same weights, another network)
    from dfnb.experiments import train_seeded

    tr, va = _faces(8, seed=0), _faces(4, seed=1)
    maps = protocol.source_maps("gt", tr), protocol.source_maps("gt", va)
    args = dict(seed=0, model_kwargs=dict(backbone="efficientnet_lite0", pretrained=True, fpn_channels=8),
                epochs=1, batch_size=4, lr=1e-3, cache=tmp_path)
    fresh = train_seeded("evaluator_effnet", fmaps.WithMap(tr, maps[0]), fmaps.WithMap(va, maps[1]), **args)
    again = train_seeded("evaluator_effnet", fmaps.WithMap(tr, maps[0]), fmaps.WithMap(va, maps[1]), **args)
    assert again.cached and not fresh.cached
    x = torch.stack([it["image"] for it in va])
    with torch.no_grad():
        a, b = fresh.model.eval()(x), again.model.eval()(x)
    assert torch.allclose(a["logit"], b["logit"], atol=1e-5)
    assert torch.allclose(again.model.mean, torch.full((1, 3, 1, 1), 0.5))
