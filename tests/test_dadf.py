"""DADF: SAM loading, Multiscale Adapter, RGA, losses, baselines, micro-SAM pretraining."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dfnb import create_model, list_models
from dfnb.models.dadf import (SAM_CONFIGS, VARIANTS, AdaptedEncoder, MaskClassificationHead,
                              MultiscaleAdapter, ReconstructionGuidedAttention, TaskHead, build_sam,
                              count_parameters, load_sam, receptive_field, reconstruction_loss,
                              save_micro_sam, trainable_parameter_share)
from dfnb.models.dadf.pretrain import box_prompt, point_prompt, pretrain_micro_sam, promptable_miou, segment_parts
from dfnb.models.dadf.sam import resize_position_tables



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # small convolutions on a shared 2-core machine: one thread avoids OpenMP waits
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _dadf(name="dadf", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        return create_model(name, **kw)


def _batch(labels, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    lab = torch.tensor(labels)
    mask = torch.zeros(len(labels), 1, size, size)
    mask[lab == 1, :, 20:40, 15:45] = 1.0
    return {"image": torch.rand(len(labels), 3, size, size, generator=g), "mask": mask, "label": lab}


# ----------------------------------------------------------------------------- adapter

@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_adapter_shapes_and_receptive_field(variant):
    torch.manual_seed(0)
    ad = MultiscaleAdapter(8, adapter_dim=4, variant=variant, zero_init=False).eval()
    # positive weights and inputs: every ReLU passes, so the gradient support is the exact RF
    with torch.no_grad():
        for m in ad.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.abs_()
    x = torch.rand(2, 8, 31, 31, requires_grad=True)
    y = ad(x)
    assert y.shape == x.shape
    y[0, :, 15, 15].sum().backward()
    support = x.grad[0].abs().sum(0) > 0
    rows, cols = torch.nonzero(support, as_tuple=True)
    side = {"multiscale": 15, "B": 7, "C": 15, "D": 15}[variant]
    assert receptive_field(variant) == side
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (side, side)
    assert x.grad[1].abs().sum() == 0  # no mixing across the batch in eval mode
    n_branches = {"multiscale": 3, "B": 3, "C": 2, "D": 2}[variant]
    assert len(ad.branches) == n_branches and ad.proj_out.in_channels == 4 * n_branches


def test_variant_branch_layout():
    # (first kernel, dilation of the 3x3): B has no dilation, C drops the 3x3 branch, D the 1x1 one
    get = lambda v: [(b[0][0].kernel_size[0], b[1][0].dilation[0]) for b in MultiscaleAdapter(8, 4, v).branches]
    assert get("multiscale") == [(1, 1), (3, 3), (5, 5)]
    assert get("B") == [(1, 1), (3, 1), (5, 1)]
    assert get("C") == [(1, 1), (5, 5)]
    assert get("D") == [(3, 3), (5, 5)]
    with pytest.raises(ValueError, match="unknown adapter variant"):
        MultiscaleAdapter(8, 4, "E")


def test_zero_init_adapters_leave_sam_features_unchanged():
    torch.manual_seed(0)
    sam = build_sam("micro", img_size=64)
    x = torch.randn(2, 3, 64, 64)
    adapters = nn.ModuleList(MultiscaleAdapter(192) for _ in range(4))
    with torch.no_grad():
        ref = sam.image_encoder(x)
        for position in ("after", "before"):
            y = AdaptedEncoder(sam.image_encoder, adapters, position).eval()(x)
            assert y.shape == (2, 128, 8, 8)
            assert torch.allclose(y, ref, atol=1e-5)
    with pytest.raises(ValueError, match="3 adapters for 4 blocks"):
        AdaptedEncoder(sam.image_encoder, adapters[:3])


# ----------------------------------------------------------------------------- model

@pytest.fixture(scope="module")
def model():
    return _dadf("dadf", img_size=64, noise_p=1.0)  # micro-SAM at 64 px: an 8x8 token grid


def test_forward_contract_and_frozen_encoder_gets_no_grad(model):
    model.train()
    model.zero_grad(set_to_none=True)
    batch = _batch([0, 1, 0])
    out = model(batch["image"])
    assert out["logit"].shape == (3,)
    assert out["mask_logit"].shape == (3, 1, 64, 64)
    assert out["features"].shape == (3, 128, 8, 8) and out["attention"].shape == (3, 1, 8, 8)
    losses = model.losses(out, batch)
    assert set(losses) == {"loss", "seg", "rec", "cls"}
    expected = losses["seg"] + 0.1 * losses["rec"] + 0.1 * losses["cls"]
    assert torch.isclose(losses["loss"], expected)
    losses["loss"].backward()
    enc = model.encoder.encoder
    assert all(not p.requires_grad and p.grad is None for p in enc.parameters())
    assert all(p.grad is None for p in model.prompt_encoder.parameters())
    for part in (model.encoder.adapters, model.task_head, model.rga, model.cls_head):
        assert all(p.requires_grad for p in part.parameters())
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"encoder", "task_head", "rga", "mask_decoder", "cls_head"}
    assert all(".adapters." in n for n, p in model.encoder.named_parameters(prefix="encoder") if p.requires_grad)
    # zero-initialised output convs: their gradient is non-zero from the first step
    assert all(a.proj_out.weight.grad.abs().sum() > 0 for a in model.encoder.adapters)
    assert 0 < trainable_parameter_share(model) < 1
    counts = model.parameter_counts()
    assert sum(v[0] for k, v in counts.items() if k != "total") == counts["total"][0]
    assert counts["sam_encoder"][1] == 0 and counts["adapters"][0] == counts["adapters"][1] > 0
    assert count_parameters(model, True) == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_input_size_and_eval_determinism(model):
    model.eval()
    x = torch.rand(3, 3, 96, 112)
    with torch.no_grad():
        a, b = model(x), model(x[:1])
    assert a["mask_logit"].shape == (3, 1, 96, 112)
    assert torch.allclose(a["logit"][:1], b["logit"], atol=1e-5)  # same noise image for every sample
    assert bool(a["noised"].all())
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(2, 1, 64, 64))
    with pytest.raises(ValueError, match="batch\\['mask'\\]"):
        model.losses(a, {"mask": torch.zeros(3, 1, 64, 64), "label": torch.zeros(3)})


def test_rec_switch(model):
    model.train()
    fake_only = _batch([1, 1])
    out = model(fake_only["image"])
    assert model.losses(out, fake_only)["rec"] == 0  # rec_on="real", no real face
    real = reconstruction_loss(out["feat_clean"], out["feat_noisy"], fake_only["label"], out["noised"], "real")
    assert real.item() == 0
    assert reconstruction_loss(out["feat_clean"], out["feat_noisy"], fake_only["label"], out["noised"], "fake") > 0
    assert reconstruction_loss(out["feat_clean"], out["feat_noisy"], fake_only["label"], out["noised"], "all") > 0


def test_reconstruction_loss_hand_case():
    f = torch.zeros(3, 1, 1, 2)
    fg = torch.tensor([[[[1.0, 3.0]]], [[[2.0, 2.0]]], [[[5.0, 5.0]]]])
    labels = torch.tensor([0, 1, 0])
    noised = torch.tensor([True, True, False])
    assert reconstruction_loss(f, fg, labels, noised, "real").item() == pytest.approx(2.0)  # sample 0 only
    assert reconstruction_loss(f, fg, labels, noised, "fake").item() == pytest.approx(2.0)  # sample 1
    assert reconstruction_loss(f, fg, labels, noised, "all").item() == pytest.approx(2.0)
    assert reconstruction_loss(f, fg, labels, torch.ones(3, dtype=torch.bool), "real").item() == pytest.approx(3.5)
    with pytest.raises(ValueError, match="rec_on"):
        reconstruction_loss(f, fg, labels, noised, "both")


@pytest.mark.parametrize("axis", ["spatial", "channel"])
def test_rga_equals_eq6_by_hand(axis):
    rga = ReconstructionGuidedAttention(2, softmax_over=axis)
    W = np.array([[1.0, 2.0], [0.0, -1.0]])
    bias = np.array([0.5, -0.5])
    with torch.no_grad():
        rga.enhancer.weight.copy_(torch.tensor(W).view(2, 2, 1, 1))
        rga.enhancer.bias.copy_(torch.tensor(bias))
    Fm = np.array([[[0.1, -0.2], [0.3, 0.0]], [[1.0, 0.5], [-0.5, 0.2]]])  # (C=2, 2, 2)
    Fg = np.array([[[0.4, -0.2], [0.0, 0.1]], [[1.0, 0.9], [-0.4, 0.2]]])
    S = np.abs(Fg - Fm)
    phi = lambda X: np.einsum("cd,dhw->chw", W, X) + bias[:, None, None]
    z = phi(S)
    if axis == "spatial":
        a = np.exp(z) / np.exp(z).sum(axis=(1, 2), keepdims=True)
    else:
        a = np.exp(z) / np.exp(z).sum(axis=0, keepdims=True)
    expected = a * phi(Fm) + Fm
    out, att = rga(torch.tensor(Fm, dtype=torch.float32)[None], torch.tensor(Fg, dtype=torch.float32)[None])
    np.testing.assert_allclose(out[0].detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(att[0].detach().numpy(), a, rtol=1e-5, atol=1e-6)


def test_heads_by_hand():
    x = torch.randn(2, 4, 3, 3)
    assert torch.allclose(TaskHead(4)(x), x)  # identity at initialisation
    head = MaskClassificationHead(hidden=2)
    with torch.no_grad():
        head.fc[0].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        head.fc[0].bias.copy_(torch.tensor([0.0, 1.0]))
        head.fc[2].weight.copy_(torch.tensor([[2.0, 3.0]]))
        head.fc[2].bias.fill_(-1.0)
    masks = torch.tensor([[[[1.0, 3.0], [-2.0, 2.0]]], [[[-4.0, -4.0], [-4.0, -4.0]]]])  # GAP: 1.0, -4.0
    # v = 1: relu(1), relu(0) -> 2*1 + 0 - 1 = 1;  v = -4: relu(-4), relu(5) -> 0 + 15 - 1 = 14
    assert head(masks).tolist() == [1.0, 14.0]


# ----------------------------------------------------------------------------- baselines

def test_baselines_train_what_they_should():
    assert {"dadf", "sam_full_ft", "sam_lora", "sam_prompt"} <= set(list_models())
    batch = _batch([0, 1], size=64)
    for name, kw in [("sam_full_ft", {}), ("sam_lora", {"rank": 2}), ("sam_prompt", {"prompt_tokens": 3})]:
        m = _dadf(name, img_size=64, **kw).train()
        losses = m.losses(m(batch["image"]), batch)
        assert losses["rec"] == 0
        losses["loss"].backward()
        enc = dict(m.encoder.encoder.named_parameters())
        trained = {k for k, p in enc.items() if p.requires_grad}
        if name == "sam_full_ft":
            assert trained == set(enc) and all(p.grad is not None for p in enc.values())
        elif name == "sam_lora":
            assert trained and all(k.endswith(("lora_a", "lora_b")) for k in trained)
            assert all(enc[k].grad is not None for k in trained)
        else:
            assert not trained and m.prompt.grad is not None and m.prompt.shape == (1, 3, 128)


def test_lora_starts_as_the_frozen_model():
    torch.manual_seed(0)
    plain = _dadf("dadf", img_size=64, adapter=None, rga=False).eval()
    lora = _dadf("sam_lora", img_size=64).eval()
    # same seed -> same SAM weights; LoRA's B starts at zero
    qkv_plain, qkv_lora = plain.encoder.encoder.blocks[0].attn.qkv, lora.encoder.encoder.blocks[0].attn.qkv
    assert torch.equal(qkv_plain.weight, qkv_lora.base.weight)
    assert qkv_lora.lora_a.abs().sum() > 0 and qkv_lora.lora_b.abs().sum() == 0
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(plain(x)["mask_logit"], lora(x)["mask_logit"], atol=1e-5)


# ----------------------------------------------------------------------------- checkpoints

def test_checkpoint_mismatch_is_a_clear_error(tmp_path):
    torch.manual_seed(0)
    # a raw (official-format) state dict of a micro-sized SAM, passed as vit_b
    raw = tmp_path / "micro_raw.pth"
    torch.save(build_sam("micro").state_dict(), raw)
    with pytest.raises(ValueError, match=r"model_type='vit_b'.*looks like model_type='micro'"):
        load_sam("vit_b", raw)
    with pytest.raises(ValueError, match="not a dfnb micro-SAM file"):
        load_sam("micro", raw)
    # a different (non-standard) config: shape mismatches are listed, no type matches
    other = dict(SAM_CONFIGS["micro"], depth=3, global_attn_indexes=(2,))
    odd = tmp_path / "odd.pth"
    torch.save(build_sam(config=other).state_dict(), odd)
    with pytest.raises(ValueError, match="cannot tell which SAM"):
        load_sam(None, odd)
    # a dfnb micro-SAM file: round trip, type checks, no overwrite
    sam = build_sam("micro")
    path = tmp_path / "micro.pt"
    save_micro_sam(sam, path, {"note": "test"})
    with pytest.raises(FileExistsError):
        save_micro_sam(sam, path)
    back = load_sam("micro", path)
    assert all(torch.equal(a, b) for a, b in zip(sam.state_dict().values(), back.state_dict().values()))
    with pytest.raises(ValueError, match="dfnb micro-SAM checkpoint but model_type='vit_h'"):
        load_sam("vit_h", path)
    with pytest.raises(ValueError, match="pretrained at 128 px"):
        load_sam("micro", path, img_size=256)
    # a micro file whose tensors do not match its own config
    bad = tmp_path / "bad.pt"
    obj = torch.load(path, weights_only=True)
    obj["state_dict"]["image_encoder.pos_embed"] = torch.zeros(1, 8, 8, 192)
    torch.save(obj, bad)
    with pytest.raises(ValueError, match="shape mismatches.*pos_embed"):
        load_sam("micro", bad)


def test_position_tables_resize_to_new_size():
    cfg128 = dict(SAM_CONFIGS["micro"])
    sd = build_sam(config=cfg128).state_dict()
    cfg256 = dict(cfg128, img_size=256)
    out = resize_position_tables(sd, cfg256)
    assert out["image_encoder.pos_embed"].shape == (1, 32, 32, 192)
    assert out["image_encoder.blocks.1.attn.rel_pos_h"].shape == (63, 64)  # global block
    assert out["image_encoder.blocks.0.attn.rel_pos_h"].shape == sd["image_encoder.blocks.0.attn.rel_pos_h"].shape
    build_sam(config=cfg256).load_state_dict(out)  # fits


# ----------------------------------------------------------------------------- pretraining

def _parts(n, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        img = torch.rand(3, size, size, generator=g) * 0.3
        m = torch.zeros(size, size)
        y, x = torch.randint(0, size // 2, (2,), generator=g).tolist()
        m[y:y + 20, x:x + 20] = 1
        img[0][m > 0] += 0.6
        items.append((img, [m, torch.zeros(size, size)]))
    return items


def test_prompts_lie_in_their_masks():
    m = torch.zeros(20, 30, dtype=torch.bool)
    m[5:9, 10:17] = True
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        x, y = point_prompt(m, g).long().tolist()
        assert m[y, x]
    assert box_prompt(m, 0.0).tolist() == [10, 5, 16, 8]


def test_pretrain_micro_sam_runs_saves_and_loads(tmp_path):
    path = tmp_path / "micro_sam.pt"
    sam, hist = pretrain_micro_sam(_parts(4), steps=2, batch_size=2, img_size=64, save_path=path, progress=False)
    assert hist["steps"] == 2 and len(hist["loss"]) == 2 and np.isfinite(hist["loss"]).all()
    assert hist["empty_masks_skipped"] == 4 and hist["images_seen"] == 4
    m = create_model("dadf", micro_sam_path=str(path))
    assert torch.equal(m.encoder.encoder.pos_embed, sam.image_encoder.pos_embed)
    with pytest.raises(ValueError, match="no non-empty part mask"):
        pretrain_micro_sam([(torch.rand(3, 32, 32), [torch.zeros(32, 32)])], steps=1, progress=False)


def test_official_checkpoint_path_loads_and_resizes(tmp_path, monkeypatch):
    # stand a tiny architecture in for vit_b so that Meta's raw-state-dict path runs fast
    tiny = dict(SAM_CONFIGS["micro"], patch_size=16, img_size=128)
    monkeypatch.setitem(SAM_CONFIGS, "vit_b", tiny)
    torch.manual_seed(0)
    src = build_sam("vit_b")
    path = tmp_path / "sam_vit_b.pth"
    torch.save(src.state_dict(), path)
    same = load_sam(None, path)  # type inferred from the shapes
    assert torch.equal(same.image_encoder.pos_embed, src.image_encoder.pos_embed)
    small = load_sam("vit_b", path, img_size=64)  # position tables interpolated 8x8 -> 4x4
    assert small.image_encoder.pos_embed.shape == (1, 4, 4, 192)
    m = create_model("dadf", sam_checkpoint=str(path), img_size=64)
    assert m(torch.rand(1, 3, 64, 64))["mask_logit"].shape == (1, 1, 64, 64)
    with pytest.raises(ValueError, match="sam_checkpoint is for Meta"):
        create_model("dadf", sam_checkpoint=str(path), model_type="micro")


def test_engine_checkpoint_rebuilds_without_the_sam_file(tmp_path):
    from dfnb.engine.checkpoint import load_model, save_checkpoint

    sam_file = tmp_path / "micro.pt"
    save_micro_sam(build_sam("micro", img_size=64), sam_file)
    model = create_model("dadf", micro_sam_path=str(sam_file), adapter="C", rec_on="all").eval()
    assert model.dfnb_arch == {"name": "dadf", "kwargs": {"adapter": "C", "rec_on": "all", "model_type": "micro",
                                                          "img_size": 64, "pretrained": True}}
    ckpt = tmp_path / "dadf.pt"
    save_checkpoint(ckpt, model, epoch=1)
    sam_file.unlink()  # the trained weights alone must be enough
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "randomly initialised" warning on a rebuild
        back = load_model(ckpt)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(back(x)["mask_logit"], model(x)["mask_logit"], atol=1e-6)
    with pytest.raises(ValueError, match="pretrained=False"):
        create_model("dadf", micro_sam_path=str(ckpt), pretrained=False)


def test_segment_parts_hand_checked_iou_and_matches_promptable_miou():
    torch.manual_seed(0)
    sam = build_sam("micro", 64)
    items = _parts(3)
    out = segment_parts(sam, *items[0], kind="box")
    assert out["keep"].tolist() == [True, False]  # the empty mask is skipped, and said so
    assert out["prompts"].shape == (1, 4) and out["pred"].shape == out["masks"].shape == (1, 64, 64)
    p, m = out["pred"][0], out["masks"][0]
    assert out["iou"][0] == pytest.approx(float((p & m).sum() / max(1, int((p | m).sum()))))
    ious = [segment_parts(sam, im, ms, "box")["iou"].item() for im, ms in items]
    assert promptable_miou(sam, items, "box") == pytest.approx(np.mean(ious))
    pts = segment_parts(sam, *items[0], kind="point", generator=torch.Generator().manual_seed(0))["prompts"]
    x, y = pts[0].round().long().tolist()
    assert pts.shape == (1, 2) and m[y, x]  # the point lies inside its part
    with pytest.raises(ValueError, match="no non-empty"):
        segment_parts(sam, torch.rand(3, 64, 64), [torch.zeros(64, 64)])


# ----------------------------------------------------------------------------- study (chapter protocol)

def test_acc_by_method_hand_case():
    from dfnb.models.dadf.study import acc_by_method

    methods = ["real", "real", "a", "a", "b", "b"]
    labels = [0, 0, 1, 1, 1, 1]
    probs = [0.1, 0.7, 0.9, 0.2, 0.6, 0.5]  # reals: 1 of 2 right; a: 1 of 2; b: 2 of 2 (0.5 counts as fake)
    out = acc_by_method(methods, probs, labels, {"a": "A", "b": "B"})
    assert out == {"A": 50.0, "B": 75.0, "Average": 62.5}
    assert list(out) == ["A", "B", "Average"]
    with pytest.raises(ValueError, match="no faces of manipulation 'c'"):
        acc_by_method(methods, probs, labels, {"c": "C"})
    with pytest.raises(ValueError, match="no real faces"):
        acc_by_method(methods[2:], probs[2:], labels[2:], {"a": "A"})
    with pytest.raises(ValueError, match="same length"):
        acc_by_method(methods, probs[:3], labels, {"a": "A"})


def test_scores_reads_the_report_in_percent():
    from dfnb.models.dadf.study import scores

    rep = {"localization": {"pbca_all": 0.9, "iinc_all": 0.05}, "detection": {"frame_auc": 0.75, "frame_eer": 0.25},
           "probs": np.array([0.2, 0.8]), "labels": np.array([0, 1])}
    assert scores(rep, ["real", "a"], {"a": "A"}) == pytest.approx(
        {"PBCA": 90.0, "IINC": 5.0, "ACC": 100.0, "AUC": 75.0, "EER": 25.0})
    with pytest.raises(ValueError, match="no localization"):
        scores(dict(rep, localization=None), ["real", "a"], {"a": "A"})


def test_ablation_plan_adds_references_and_builds_what_it_says():
    from dfnb.models.dadf.study import ABLATIONS, ablation_plan

    assert ablation_plan(["B", "adapter_only"]) == {"4": ["sam", "adapter_only", "dadf"], "5": ["B", "dadf"]}
    full = ablation_plan(["adapter_only", "rga_only", "B", "C", "D", "rec_fake", "rec_all"])
    assert full == {"4": ["sam", "adapter_only", "rga_only", "dadf"], "5": ["B", "C", "D", "dadf"],
                    "6": ["dadf", "rec_fake", "rec_all"]}
    assert ablation_plan([]) == {}
    with pytest.raises(ValueError, match="unknown ablation variants \\['E'\\]"):
        ablation_plan(["E"])
    with pytest.raises(ValueError, match="unknown ablation variants \\['dadf'\\]"):
        ablation_plan(["dadf"])  # a reference, always there
    with pytest.raises(TypeError, match="list of names"):
        ablation_plan("B")
    # each variant differs from DADF in exactly the switch it names
    built = {k: _dadf(name, img_size=64, **kw) for t in ("4", "5") for k, (_, name, kw) in ABLATIONS[t].items()}
    assert built["adapter_only"].rga is None and built["adapter_only"].adapter == "multiscale"
    rga_only = built["rga_only"]
    assert rga_only.rga is not None and rga_only.adapter is None and rga_only.encoder.adapters is None
    assert all(p.requires_grad for p in rga_only.encoder.encoder.parameters())  # on the fine-tuned SAM baseline
    assert not any(p.requires_grad for p in built["dadf"].encoder.encoder.parameters())
    assert [built[v].adapter for v in "BCD"] == ["B", "C", "D"]
    assert {ABLATIONS["6"][k][2].get("rec_on", "real") for k in ABLATIONS["6"]} == {"real", "fake", "all"}


# ----------------------------------------------------------------------------- equations, by hand

def test_adapted_encoder_composes_eq1():
    # Eq. 1: Z_tran = L_n(... R(L_1(R(x_p)))) ("before") and the text's adapter after each block ("after")
    torch.manual_seed(0)
    enc = build_sam("micro", img_size=64).image_encoder.eval()
    ads = nn.ModuleList(MultiscaleAdapter(192, zero_init=False) for _ in enc.blocks).eval()
    x = torch.randn(2, 3, 64, 64)
    R = lambda a, t: a(t.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # noqa: E731
    with torch.no_grad():
        after = before = enc.patch_embed(x) + enc.pos_embed
        for blk, a in zip(enc.blocks, ads):
            after, before = R(a, blk(after)), blk(R(a, before))
        assert torch.allclose(AdaptedEncoder(enc, ads, "after").forward_tokens(x), after, atol=1e-5)
        assert torch.allclose(AdaptedEncoder(enc, ads, "before").forward_tokens(x), before, atol=1e-5)
        assert not torch.allclose(after, before, atol=1e-3)
        assert AdaptedEncoder(enc, ads).forward_tokens(x).shape == (2, 8, 8, 192)


def test_adapter_output_is_branches_plus_skip_eq3():
    torch.manual_seed(0)
    ad = MultiscaleAdapter(6, 4, zero_init=False).eval()
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        skip = torch.einsum("oc,bchw->bohw", ad.skip.weight[:, :, 0, 0], x) + ad.skip.bias[None, :, None, None]
        u = ad.proj_in(x)
        s1 = ad.proj_out(torch.cat([br(u) for br in ad.branches], dim=1))  # Eq. 2
        assert torch.allclose(ad(x), s1 + skip, atol=1e-5)  # Eq. 3
        nn.init.zeros_(ad.proj_out.weight)
        nn.init.zeros_(ad.proj_out.bias)
        assert torch.allclose(ad(x), skip, atol=1e-5)  # Sout_1 = 0: only the learnable 1x1 skip is left
        assert torch.allclose(MultiscaleAdapter(6, 4).eval()(x), x, atol=1e-6)  # zero-init: the identity


def test_noisy_features_are_eq4():
    m = _dadf("dadf", img_size=64).eval()
    assert m.noise_std == pytest.approx(1e-3)  # variance 1e-6
    x = torch.rand(2, 3, 64, 64)
    eps = torch.randn((1, 3, 64, 64), generator=torch.Generator().manual_seed(m.eval_noise_seed)) * 1e-3
    with torch.no_grad():
        out = m(x)
        assert torch.allclose(out["feat_noisy"], m.encode(x + eps), atol=1e-5)  # F_gau = Phi(x + eps)
        assert torch.allclose(out["feat_clean"], m.encode(x), atol=1e-5)
    quiet = _dadf("dadf", img_size=64, noise_p=0.0).train()
    out = quiet(x)
    assert not out["noised"].any() and torch.equal(out["feat_noisy"], out["feat_clean"])  # S = 0


def test_seg_and_cls_losses_by_hand():
    m = _dadf("dadf", img_size=64, rga=False)
    z = torch.tensor([[[[2.0, -1.0], [0.0, 3.0]]], [[[-2.0, 1.0], [0.5, -0.5]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]], [[[0.0, 0.0], [1.0, 0.0]]]])
    logit = torch.tensor([0.3, -1.2])
    losses = m.losses({"mask_logit": z, "logit": logit}, {"mask": mask, "label": torch.tensor([1, 0])})
    bce = lambda z, t: np.mean(np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0) - z * t)  # noqa: E731
    assert losses["seg"].item() == pytest.approx(bce(z.numpy(), mask.numpy()), rel=1e-6)
    assert losses["cls"].item() == pytest.approx(bce(logit.numpy(), np.array([1.0, 0.0])), rel=1e-6)
    assert losses["rec"] == 0
    assert losses["loss"].item() == pytest.approx((losses["seg"] + 0.1 * losses["cls"]).item(), rel=1e-6)


def test_box_prompt_jitter_stays_within_its_bound():
    m = torch.zeros(40, 50, dtype=torch.bool)
    m[10:20, 5:25] = True  # box (5, 10, 24, 19): sides 20 (x) and 10 (y)
    exact = torch.tensor([5.0, 10.0, 24.0, 19.0])
    g = torch.Generator().manual_seed(0)
    boxes = torch.stack([box_prompt(m, 0.1, g) for _ in range(200)])
    moved = (boxes - exact).abs()
    assert (moved[:, [0, 2]] <= 0.1 * 20 + 1e-5).all() and (moved[:, [1, 3]] <= 0.1 * 10 + 1e-5).all()
    assert moved[:, 0].max() > 1.0  # it does move
    edge = torch.zeros(40, 50, dtype=torch.bool)
    edge[0:5, 45:50] = True
    clipped = torch.stack([box_prompt(edge, 0.5, g) for _ in range(50)])
    assert (clipped >= 0).all() and (clipped[:, [0, 2]] <= 49).all() and (clipped[:, [1, 3]] <= 39).all()


def test_prompt_losses_by_hand(monkeypatch):
    from dfnb.models.dadf import pretrain

    sam = build_sam("micro", 64)
    # decoder outputs for 2 prompts: output 0 (single mask) and outputs 1..3 (multimask), 2x2 logits
    logits = torch.tensor([[[[3., -3.], [-3., -3.]], [[-1., 1.], [1., -1.]], [[2., -2.], [-2., -2.]],
                            [[1., 1.], [1., 1.]]],
                           [[[1., 1.], [-1., -1.]], [[-2., -2.], [2., 2.]], [[0.5, 0.5], [-1., 2.]],
                            [[2., 2.], [-2., -2.]]]])
    iou_pred = torch.tensor([[0.9, 0.1, 0.5, 0.2], [0.3, 0.0, 0.6, 0.8]])
    monkeypatch.setattr(pretrain, "decode_masks", lambda *a, **k: (logits, iou_pred))
    masks = torch.tensor([[[True, False], [False, False]], [[True, True], [False, False]]])
    emb = torch.zeros(2, 128, 8, 8)

    def by_hand(z, t, s):
        z, t = z.numpy().astype(np.float64), t.numpy().astype(np.float64)
        bce = np.mean(np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0) - z * t)
        p = 1 / (1 + np.exp(-z))
        loss = bce + 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
        pred = z > 0
        iou = (pred & (t > 0)).sum() / max(1, (pred | (t > 0)).sum())
        return loss, iou, loss + (s - iou) ** 2

    loss, iou = pretrain._prompt_losses(sam, emb, masks, torch.tensor([[0.0, 0.0], [1.0, 0.0]]), None)
    for i in range(2):  # point: the best (lowest mask loss) of outputs 1..3 is trained
        cands = [by_hand(logits[i, k], masks[i], float(iou_pred[i, k])) for k in (1, 2, 3)]
        best = int(np.argmin([c[0] for c in cands]))
        assert loss[i].item() == pytest.approx(cands[best][2], rel=1e-5)
        assert iou[i].item() == pytest.approx(cands[best][1])
    assert [int(np.argmin([by_hand(logits[i, k], masks[i], 0)[0] for k in (1, 2, 3)])) for i in range(2)] == [1, 2]
    loss, iou = pretrain._prompt_losses(sam, emb, masks, None, torch.tensor([[0., 0., 0., 0.], [0., 0., 1., 0.]]))
    for i in range(2):  # box: the single-mask output 0
        want = by_hand(logits[i, 0], masks[i], float(iou_pred[i, 0]))
        assert loss[i].item() == pytest.approx(want[2], rel=1e-5) and iou[i].item() == pytest.approx(want[1])


# ----------------------------------------------------------------------------- micro-SAM study (chapter 30)

def test_render_faces_streams_and_part_names():
    from dfnb.models.dadf.micro_sam_study import render_faces

    a, names = render_faces(2, 0, 0, 64)
    b, _ = render_faces(2, 0, 0, 64)
    c, _ = render_faces(1, 1, 0, 64)
    assert len(a) == 2 and names[0] == "skin" and "fg" in names and len(a[0][1]) == len(names)
    img, parts = a[0]
    assert img.shape == (64, 64, 3) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
    assert parts[0].shape == (64, 64)
    assert np.array_equal(a[1][0], b[1][0])  # the same stream renders the same faces
    assert not np.array_equal(a[0][0], c[0][0])  # another stream, other identities
    assert render_faces(0, 0, 0, 64) == ([], [])
    with pytest.raises(ValueError, match="n must be >= 0"):
        render_faces(-1, 0, 0, 64)


def _results():
    # two faces, parts (a, b, c): face 0 prompts a and c, face 1 only b
    m = torch.zeros(2, 4, 4, dtype=torch.bool)
    m[0, :2, :2] = True   # a 2x2 part, box (0, 0, 1, 1)
    m[1, 1:3, 1:4] = True  # a 2x3 part, box (1, 1, 3, 2)
    box = [{"keep": torch.tensor([True, False, True]), "iou": torch.tensor([0.5, 0.25]), "masks": m,
            "prompts": torch.tensor([[0., 0., 1., 1.], [1., 1., 2., 2.]])},
           {"keep": torch.tensor([False, True, False]), "iou": torch.tensor([1.0]), "masks": m[1:],
            "prompts": torch.tensor([[1., 1., 3., 2.]])}]
    point = [dict(r, iou=r["iou"] / 2) for r in box]
    return {"box": box, "point": point}


def test_box_as_mask_iou_hand_case():
    from dfnb.models.dadf.micro_sam_study import box_as_mask_iou

    # face 0: exact box of part a (IoU 1); box (1, 1, 2, 2), 4 pixels, inside the 6-pixel part: 4 / 6;
    # face 1: exact box of its part (IoU 1)
    assert box_as_mask_iou(_results()["box"]) == pytest.approx((1 + 4 / 6 + 1) / 3)
    with pytest.raises(ValueError, match="no box prompt"):
        box_as_mask_iou([])


def test_per_prompt_iou_tables_and_conclusion():
    from dfnb.models.dadf import micro_sam_study as ms

    per = ms.per_prompt_iou(_results(), ["a", "b", "c"])
    assert per.to_dict("list") == {"prompt": ["box"] * 3 + ["point"] * 3, "part": ["a", "c", "b"] * 2,
                                   "iou": [0.5, 0.25, 1.0, 0.25, 0.125, 0.5]}
    by = ms.iou_by_part(per, ["c", "b", "a", "never"])
    assert list(by.index) == ["c", "b", "a"] and list(by.columns) == ["box", "point", "n"]
    assert by.loc["b", "point"] == 0.5 and by["n"].tolist() == [1, 1, 1]
    t = ms.miou_table(per, 0.4, (0.1, 0.05))
    assert t.loc["micro-SAM (pretrained)", "box mIoU"] == pytest.approx(1.75 / 3)
    assert t.loc["box as mask", "box mIoU"] == 0.4 and np.isnan(t.loc["box as mask", "point mIoU"])
    row = ms.pretraining_table({"steps": 4}, 2.0, 3_000_000, 2**20).iloc[0]
    assert (row["seconds per step"], row["parameters (M)"], row["checkpoint (MB)"]) == (0.5, 3.0, 1.0)
    assert ms.pretraining_table(None, 1.0, 10, None).index[0] == "SAM (loaded)"
    with pytest.raises(ValueError, match="kept parts"):
        ms.per_prompt_iou(_results(), ["a", "b"])
    import pandas as pd

    parts = pd.DataFrame({"box": [0.8, 0.7, 0.05, 0.1]}, index=["skin", "fg", "eyes", "mouth"])
    text = ms.conclusion(0.6, 0.3, 0.5, 0.1, parts, 300)
    assert text.startswith("micro-SAM's box mIoU on held-out faces is **0.600** (point 0.300), above the "
                           "box-as-mask answer (0.500) and above the untrained model (0.100).")
    assert "large parts (fg 0.70, skin 0.80) against small ones (eyes 0.05, mouth 0.10)" in text
    assert "After 300 steps it has learned the large parts far better" in text
    short = ms.conclusion(0.2, 0.3, 0.5, 0.3, parts.assign(box=0.5), 1)
    assert "below the box-as-mask answer" in short and "below the untrained" in short and "After" not in short
    assert "Per part" not in ms.conclusion(0.2, 0.3, 0.5, 0.3, parts.loc[["skin"]], 1)


def test_micro_sam_figures_draw():
    import matplotlib.pyplot as plt

    from dfnb.models.dadf import micro_sam_study as ms

    res = _results()
    for r in res["box"] + res["point"]:
        r["pred"] = r["masks"].clone()
    faces = [(np.zeros((4, 4, 3), np.float32), None)] * 2
    figs = [ms.prompts_figure(faces, res, ["eyes", "b", "c"], seed=0, n_faces=2),
            ms.pretraining_curves({"loss": [1.0, 0.5, 0.4], "iou": [0.1, 0.2, 0.3]}),
            ms.parts_figure(np.zeros((4, 4, 3)), [np.ones((4, 4))], ["skin"])]
    assert [len(f.axes) for f in figs] == [8, 2, 2]
    assert figs[0].axes[0].get_title().startswith("box: eyes")  # the eyes, where prompted
    for f in figs:
        plt.close(f)


# ----------------------------------------------------------------------------- DADF study (chapter 31)

_FAM = ["deepfakes", "face2face", "faceswap", "neuraltextures"]


def _report(pbca=0.9, iinc=0.1, iou=0.3, auc=0.75, eer=0.25, probs=(0.2, 0.8, 0.8, 0.8, 0.8),
            masks=None):
    labels = np.array([0, 1, 1, 1, 1])
    rep = {"localization": {"pbca_all": pbca, "iinc_all": iinc, "iou_fake": iou},
           "detection": {"frame_auc": auc, "frame_eer": eer}, "probs": np.array(probs), "labels": labels,
           "n": 5}
    if masks is not None:
        rep["pred_masks"] = masks
    return rep


def test_sam_kwargs_names_the_sam_and_refuses_a_missing_file(tmp_path):
    from dfnb.models.dadf.study import sam_kwargs

    path = tmp_path / "micro.pt"
    save_micro_sam(build_sam("micro", 64), path, {"steps": 7})
    kw, desc, steps = sam_kwargs(sam_checkpoint=None, sam_type=None, micro_sam_path=str(path), profile="smoke")
    assert kw == {"micro_sam_path": os.path.relpath(path)} and steps == 7 and desc.endswith("(7 pretraining steps)")
    assert os.path.samefile(kw["micro_sam_path"], path)  # relative to where the kernel runs
    kw, desc, steps = sam_kwargs(sam_checkpoint="sam.pth", sam_type="vit_b", micro_sam_path=None, profile="x")
    assert kw == {"sam_checkpoint": "sam.pth", "model_type": "vit_b"} and steps is None and "Meta" in desc
    with pytest.raises(FileNotFoundError, match="run chapter 30 first"):
        sam_kwargs(sam_checkpoint=None, sam_type=None, micro_sam_path=str(tmp_path / "no.pt"), profile="smoke")


def test_small_study_helpers():
    from dfnb.models.dadf import study

    study.check_model_names(["dadf"], ["sam_lora"])
    with pytest.raises(ValueError, match=r"unknown model names \['vit'\]"):
        study.check_model_names(["dadf"], ["vit"])
    assert study.plural(1, "epoch") == "1 epoch" and study.plural(3, "epoch") == "3 epochs"
    meth = ["real", "a", "a", "real", "a", "a", "a"]
    assert study.viewer_indices(meth, n_fake=2, n_real=1) == [1, 4, 0]
    gt = torch.zeros(2, 1, 2, 2)
    gt[0, 0, 0, 0] = 1.0
    assert study.empty_mask_pbca(gt) == pytest.approx(87.5)
    sc = {"x": {"PBCA": 90.001, "IINC": 5.0}, "y": {"PBCA": 90.0, "IINC": 4.0}, "z": {"PBCA": 80.0, "IINC": 9.0}}
    assert study.leaders(sc, "PBCA") == ["x", "y"] and study.leaders(sc, "IINC") == ["y"]
    names = {"x": "X", "y": "Y", "z": "Z"}
    assert study.standing(sc, "IINC", "y", names) == "best on IINC"
    assert study.standing(sc, "PBCA", "x", names) == "tied for best on PBCA with Y"
    assert study.standing(sc, "IINC", "z", names) == "not best on IINC, where Y leads (4.00 %)"


def test_localization_mask_area_and_acc_tables():
    from dfnb.models.dadf import study

    masks = np.zeros((5, 1, 2, 2), np.float32)
    masks[0, 0, 0, 0] = masks[1:, 0, :, :1] = 0.9  # a real face: 1 of 4 pixels; each fake: 2 of 4
    reports = {"dadf": _report(masks=masks), "sam_full_ft": _report(pbca=0.8, iinc=0.2)}
    t1, recs = study.localization_table(reports, {"dadf": _report(pbca=0.7)}, "ff", "fm", with_fmld=True)
    assert list(t1.index) == ["DADF", "SAM"]
    assert t1.loc["DADF", "PBCA ff HQ (%)"] == pytest.approx(90.0) and t1.loc["SAM", "IINC ff HQ (%)"] == 20.0
    assert t1.loc["DADF", "PBCA fm (%)"] == pytest.approx(70.0) and np.isnan(t1.loc["SAM", "PBCA fm (%)"])
    assert (t1.loc["DADF", "PBCA paper FF++ HQ"], t1.loc["SAM", "IINC paper FMLD"]) == (96.64, 3.40)
    assert len(recs) == 9 and recs[0] == {"name": "pbca", "value": pytest.approx(90.0), "model": "dadf",
                                          "data": "ff hq test", "dataset": "ff", "split": "test"}
    area, recs = study.mask_area_table({"dadf": reports["dadf"]}, "ff")
    assert area.loc["DADF"].tolist() == pytest.approx([25.0, 50.0, 100.0])
    assert recs == [{"name": "mask_area_auc", "value": pytest.approx(100.0), "model": "dadf", "data": "ff hq test", "dataset": "ff", "split": "test"}]
    methods = ["real", *_FAM]
    probs = (0.2, 0.8, 0.3, 0.8, 0.8)  # face2face missed: its subset 50 %, the others 100 %
    q = {"HQ": {"dadf": _report(probs=probs)}, "LQ": {"dadf": _report()}}
    t2, recs = study.acc_table(q, {"HQ": methods, "LQ": methods}, "ff")
    assert list(t2.index) == [("DADF", "ff HQ (ours)"), ("DADF", "ff LQ (ours)"), ("DADF", "paper FF++ (LQ)")]
    assert t2.loc[("DADF", "ff HQ (ours)")][["DF", "F2F", "Average", "AUC"]].tolist() == [100, 50, 87.5, 75]
    assert t2.loc[("DADF", "paper FF++ (LQ)"), "Average"] == 95.94
    assert len(recs) == 12 and recs[1]["manipulation"] == "F2F" and recs[5] == {
        "name": "auc", "value": 75.0, "model": "dadf", "data": "ff hq test", "dataset": "ff", "split": "test"}


def test_cross_table_evaluates_each_set_and_averages():
    from dfnb.models.dadf.study import cross_table

    class Fake:
        def __init__(self, aucs):
            self.aucs = aucs

        def evaluate(self, ds, batch_size, device):
            return {"detection": {"frame_auc": self.aucs[ds], "frame_eer": 1 - self.aucs[ds]}}

    sets = {"d LQ": "d", "t HQ": "th", "t LQ": "tl"}
    paper = {"d LQ": "DFD (LQ)", "t HQ": "DF-TIMIT (HQ)", "t LQ": "DF-TIMIT (LQ)"}
    t3, recs = cross_table({"dadf": Fake({"d": 0.6, "th": 0.5, "tl": 0.7})}, sets, paper, "ff")
    ours = t3.loc[("DADF", "ours: trained ff HQ")]
    assert ours["d LQ | DFD (LQ) AUC"] == pytest.approx(60.0) and ours["Average AUC"] == pytest.approx(60.0)
    assert ours["Average EER"] == pytest.approx(40.0)
    assert t3.loc[("DADF", "paper: trained FF++ (LQ)"), "Average AUC"] == 53.40
    assert len(recs) == 8 and recs[-1]["data"] == "cross-dataset average"


@pytest.mark.filterwarnings("ignore:micro-SAM is randomly initialised")
def test_ablation_scores_train_through_the_cache_and_tables(tmp_path):
    from _ddp_worker import toy_splits
    from dfnb.models.dadf import study

    train, val, test = toy_splits()
    plan = {"5": ["C", "dadf"]}
    kw = dict(seed=3, model_kwargs={"img_size": 64}, families={"square": "SQ"}, cache=tmp_path, epochs=1,
              batch_size=4, lr=1e-3)
    sc, secs = study.ablation_scores(plan, train, val, test, **kw)
    assert list(sc) == ["C", "dadf"] and set(sc["C"]) == {"PBCA", "IINC", "ACC", "AUC", "EER"}
    assert all(s > 0 for s in secs.values())
    assert {p.name for p in (tmp_path / "dadf").iterdir()} and len(list((tmp_path / "dadf").iterdir())) == 2
    again, secs2 = study.ablation_scores(plan, train, val, test, **kw)  # loaded, not retrained
    assert again == sc and secs2 == secs
    recs = study.ablation_records(sc, secs, 1, "ff")
    assert [r["name"] for r in recs[:4]] == ["ablation_pbca", "ablation_iinc", "ablation_acc",
                                             "ablation_train_seconds"]
    t5 = study.ablation_table(plan, "5", sc, "ff", 1)
    assert list(t5.index.get_level_values("data")) == ["ff HQ (ours)", "FF++ HQ (paper)"] * 2
    from dfnb import papers

    paper_c = papers.pivot("dadf", "5").loc["Multiscale Adapter-C", ("FF++ (HQ)", "PBCA")]
    assert t5.loc[("Multiscale Adapter-C", "FF++ HQ (paper)"), "PBCA"] == paper_c
    assert t5.loc[("Multiscale Adapter", "ff HQ (ours)"), "PBCA"] == pytest.approx(sc["dadf"]["PBCA"])
    fig = study.ablation_figure(t5, "5", "ff", ref=50.0, ref_label="all-zero mask")
    assert fig.axes[0].get_legend() is not None and "(first seed)" in fig.axes[0].get_title()
    per = pd.DataFrame({"model": ["dadf", "dadf", "C", "C", "C"], "seed": [0, 1, 0, 1, 2],
                        "PBCA": [80.0, 82.0, 70.0, 71.0, 75.0]})
    ax = study.ablation_figure(t5, "5", "ff", per_seed=per).axes[0]
    assert sorted(p.get_width() for p in ax.patches) == pytest.approx([72.0, 81.0])  # means over seeds
    assert "mean of 2-3 seeds, 95 % interval" in ax.get_title()
    with pytest.raises(ValueError, match="lacks"):
        study.ablation_figure(t5, "5", "ff", per_seed=per[per.model == "C"])
    t6 = study.ablation_table({"6": ["dadf"]}, "6", sc, "ff", 1, with_paper=False)
    assert len(t6) == 1 and study.ablation_figure(t6, "6", "ff").axes[0].get_legend() is None


def test_dadf_figures_draw():
    import matplotlib.pyplot as plt

    from dfnb.models.dadf import study

    class Set:
        methods = ["real", "a"]

        def __getitem__(self, i):
            return {"image": torch.rand(3, 64, 64), "method": self.methods[i], "mask": torch.zeros(1, 64, 64)}

        def __len__(self):
            return 2

    gt = torch.zeros(2, 1, 64, 64)
    gt[1, 0, 10:30, 10:30] = 1
    m = _dadf("dadf", img_size=64).eval()
    auc, n = study.attention_pixel_auc(m, Set(), gt)
    assert n == 1 and 0 <= auc <= 1
    rep = {"dadf": {"pred_masks": np.zeros((2, 1, 64, 64), np.float32)}}
    figs = [study.adapter_rf_figure(0), study.masks_figure(Set(), gt, rep, [0, 1]),
            study.attention_figure(m, torch.rand(2, 3, 64, 64), gt, ["real", "a"])]
    assert [len(f.axes) for f in figs] == [6, 4, 4]
    assert figs[0].axes[2].get_title() == "dilated branch 3: 15x15"
    for f in figs:
        plt.close(f)
    with pytest.raises(ValueError, match="no fake test face"):
        study.attention_pixel_auc(m, Set(), torch.zeros(2, 1, 64, 64))


def test_sentence_templates():
    from dfnb.models.dadf import study

    d, s = {"PBCA": 90.0, "IINC": 5.0, "ACC": 60.0}, {"PBCA": 91.0, "IINC": 6.0, "ACC": 55.0}
    paper = {"DADF": {"PBCA": 96.64, "IINC": 3.21, "ACC": 95.94}, "SAM": {"PBCA": 92.97, "IINC": 4.25, "ACC": 86.27}}
    h = study.headline("ff", d, s, 85.0, paper)
    assert h.startswith("On `ff` HQ test, DADF reaches PBCA 90.00 % / IINC 5.00 % and average ACC 60.00 %; the "
                        "fully fine-tuned SAM baseline")
    assert h.endswith("SAM 92.97 / 4.25 and 86.27 % on FF++.")
    assert "SAM" not in study.headline("ff", d, None, 85.0, {"DADF": paper["DADF"]})
    area = {"marked pixels, real faces (%)": 1.0, "marked pixels, fake faces (%)": 2.0,
            "AUC of the marked area as a fake score (%)": 50.0}
    assert "marks almost nothing" in study.mask_area_sentence(area)
    assert "separate real from fake" in study.mask_area_sentence(
        {**area, "AUC of the marked area as a fake score (%)": 70})
    assert "whether or not it is forged" in study.mask_area_sentence({**area, "marked pixels, fake faces (%)": 30})
    ch = study.chance_sentence({"DADF": 51.0, "SAM": 48.0}, True, 1, 10)
    assert "(test AUC DADF 51.0 %, SAM 48.0 %)" in ch and "in 1 epoch over 10 training faces" in ch
    assert "settles on one class" in ch and "settles" not in study.chance_sentence({"DADF": 51.0}, False, 3, 1)
    assert study.chance_sentence({"DADF": 70.0}, True, 1, 10) == ""
    for text in (h, ch):
        assert "(s)" not in text and "nan" not in text.lower()


def _tables():
    import pandas as pd

    from dfnb import papers

    p1 = papers.pivot("dadf", "1")
    t1 = pd.DataFrame({"PBCA ff HQ (%)": [84.0, 84.3], "IINC ff HQ (%)": [46.2, 46.1],
                       "PBCA paper FF++ HQ": [96.64, 92.97], "IINC paper FF++ HQ": [3.21, 4.25],
                       "PBCA fm (%)": [68.55, 64.16], "IINC fm (%)": [44.71, 47.26],
                       "PBCA paper FMLD": p1.loc[["DADF", "SAM"], ("FMLD", "PBCA")].to_numpy(),
                       "IINC paper FMLD": p1.loc[["DADF", "SAM"], ("FMLD", "IINC")].to_numpy()},
                      index=pd.Index(["DADF", "SAM"], name="method"))
    fams = {c: [50.0] * 2 for c in ("DF", "F2F", "FS", "NT")}
    t2 = pd.DataFrame({**fams, "Average": [50.0, 50.0]},
                      index=pd.MultiIndex.from_tuples([("DADF", "ff HQ (ours)"), ("SAM", "ff HQ (ours)")],
                                                      names=["method", "data"]))
    t3 = pd.DataFrame({"Average AUC": [52.0, 53.4, 49.0, 46.5], "Average EER": [48.0, 47.48, 50.0, 53.82]},
                      index=pd.MultiIndex.from_product([["DADF", "SAM"], ["ours: trained ff HQ",
                                                                          "paper: trained FF++ (LQ)"]],
                                                       names=["method", "data"]))
    area = pd.DataFrame({"marked pixels, real faces (%)": [1.0], "marked pixels, fake faces (%)": [1.2],
                         "AUC of the marked area as a fake score (%)": [48.0]}, index=["DADF"])
    return t1, t2, t3, area


def test_findings_and_more_findings_read_the_tables():
    from dfnb.models.dadf import study

    t1, t2, t3, area = _tables()
    text = study.findings("ff", t1, t2, area, {"DADF": 51.0, "SAM": 50.0}, 85.0, epochs=1, n_train=10)
    assert text.startswith("First training seed: On `ff` HQ test, DADF reaches PBCA 84.00 %")
    assert "settles on one class" in text and "beat" not in text  # who is ahead: the claims table, over seeds
    row = lambda pbca, iinc: {"PBCA": pbca, "IINC": iinc, "ACC": 50.0}  # noqa: E731
    sc = {"sam": row(84.33, 46.09), "adapter_only": row(84.03, 46.16), "dadf": row(84.02, 46.16),
          "B": row(84.03, 46.16), "rec_fake": row(84.03, 46.16)}
    plan = {"4": ["sam", "adapter_only", "dadf"], "5": ["B", "dadf"], "6": ["dadf", "rec_fake"]}
    more = study.more_findings(ff="ff", fm="fm", n_train_fm=8, table1=t1, pbca_empty_fmld=68.56, dfd="d", tim="t",
                               table3=t3, plan=plan, abl_scores=sc, epochs=1, seed=0, pbca_empty=84.5)
    paras = more.split("\n\n")
    assert [p[:12] for p in paras] == ["**FMLD colum", "**Cross-data", "**Ablations ", "**Table 5.**",
                                       "**Table 6.**", "All ablation"]
    assert "DADF is ahead of SAM on PBCA and ahead on IINC" in paras[0] and "below the all-zero mask" in paras[0]
    assert "is 52.0 % (EER 48.0 %) against SAM's 49.0 %; the best average AUC here is DADF's" in paras[1]
    assert "Every model's average is within 5 points of chance" in paras[1]
    assert "(Table 4, 1 epoch per model)" in paras[2] and "not best on PBCA, where SAM leads (84.33 %)" in paras[2]
    assert "changes PBCA by -0.30 and ACC by +0.00 points (paper: +3.34, +8.21)" in paras[2]
    assert "on PBCA it does not beat Multiscale Adapter-B" in paras[3] and "not the best adapter" in paras[3]
    assert "on PBCA it is -0.01 points over `L_rec` on fake faces." in paras[4] and "drop sharply" in paras[4]
    assert "within 0.48 points of the all-zero mask's (84.50 %)" in paras[5] and "ACC exactly 50 %" in paras[5]
    assert "(s)" not in text + more and "nan" not in (text + more).lower()
    per = pd.DataFrame([{"model": k, "seed": i, **{m: v[m] + d for m in v}} for k, v in sc.items()
                        for i, d in enumerate((-1.0, 0.0, 1.0))])  # seeds around the same means
    three = study.more_findings(ff="ff", fm=None, n_train_fm=0, table1=t1, pbca_empty_fmld=None, dfd=None, tim=None,
                                table3=None, plan=plan, abl_scores={}, epochs=1, seed=0, pbca_empty=84.5,
                                abl_seeds=per).split("\n\n")
    assert three[0] == paras[2] and three[-1].startswith("The ablation rows above are means over 3 training seeds")
    assert study.more_findings(ff="ff", fm=None, n_train_fm=0, table1=t1, pbca_empty_fmld=None, dfd=None, tim=None,
                               table3=None, plan={}, abl_scores={}, epochs=1, seed=0, pbca_empty=84.5) == ""
    five = study.table5_paragraph({"B": {"PBCA": 1, "ACC": 1, "IINC": 9}, "C": {"PBCA": 3, "ACC": 1, "IINC": 9},
                                   "dadf": {"PBCA": 2, "ACC": 2, "IINC": 1}})
    assert ("on PBCA it beats Multiscale Adapter-B but not Multiscale Adapter-C; on ACC it beats all of "
            "Multiscale Adapter-B, Multiscale Adapter-C") in five


def test_micro_sam_pretraining_is_cached(tmp_path):
    from dfnb.models.dadf import micro_sam_study as study

    kw = dict(steps=2, batch_size=2, masks_per_image=1, cache=tmp_path)
    sam, hist, secs, path, cached = study.pretrained(2, 0, 64, **kw)
    assert not cached and path.is_file() and path.parent.parent == tmp_path / "micro_sam" and hist["steps"] == 2
    sam2, hist2, secs2, path2, cached2 = study.pretrained(2, 0, 64, **kw)
    assert cached2 and path2 == path and hist2 == hist and secs2 == pytest.approx(secs)
    assert all(torch.equal(a, b) for a, b in zip(sam.state_dict().values(), sam2.state_dict().values()))
    assert not study.pretrained(2, 0, 64, **{**kw, "steps": 3})[4]  # another setting: trained afresh
    assert not list(tmp_path.glob(".micro_sam.tmp-*"))
    with pytest.raises(TypeError, match="unknown pretraining arguments"):
        study.pretrained(2, 0, 64, stpes=2, cache=tmp_path)


def test_sam_img_size_builds_vit_b_at_128_px_without_a_download(tmp_path, monkeypatch):
    import warnings

    from dfnb import create_model
    from dfnb.models.dadf import study

    with pytest.raises(ValueError, match="multiple of SAM's patch size 16"):
        study.sam_kwargs(sam_checkpoint="x.pth", sam_type="vit_b", micro_sam_path=None, profile="smoke",
                         sam_img_size=100)
    with pytest.raises(ValueError, match="is for Meta's SAM"):
        study.sam_kwargs(sam_checkpoint=None, sam_type=None, micro_sam_path=None, profile="smoke",
                         sam_img_size=128)
    kw, desc, steps = study.sam_kwargs(sam_checkpoint="sam_vit_b.pth", sam_type="vit_b", micro_sam_path=None,
                                       profile="smoke", sam_img_size=128)
    assert kw == {"sam_checkpoint": "sam_vit_b.pth", "model_type": "vit_b", "img_size": 128}
    assert "at 128 px" in desc and steps is None
    sam = tmp_path / "sub" / "micro_sam.pt"
    sam.parent.mkdir()
    torch.save({"meta": {"steps": 7}}, sam)
    monkeypatch.chdir(tmp_path)  # where the kernel runs: an exported DADF records this path, relative
    kw, desc, steps = study.sam_kwargs(sam_checkpoint=None, sam_type=None, micro_sam_path=str(sam), profile="smoke")
    assert kw == {"micro_sam_path": "sub/micro_sam.pt"} and steps == 7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "randomly initialised": no checkpoint here, by design
        m = create_model("dadf", model_type="vit_b", img_size=128)
    assert m.config["img_size"] == 128 and m.config["embed_dim"] == 768  # ViT-B at 128 px
    with torch.no_grad():
        out = m(torch.rand(1, 3, 128, 128))
    assert out["mask_logit"].shape[-2:] == (128, 128) and out["logit"].shape[0] == 1


def test_class_weights_balance_real_and_fake_by_hand():
    from dfnb.models.dadf.dadf import class_weights

    w = class_weights(torch.tensor([0, 1, 1, 1]))
    assert torch.allclose(w, torch.tensor([2.0, 2 / 3, 2 / 3, 2 / 3]))
    assert w[:1].sum() == pytest.approx(w[1:].sum())  # each class carries half
    assert torch.equal(class_weights(torch.tensor([1, 1])), torch.ones(2))  # one class: nothing to balance


@pytest.mark.parametrize("balance", [True, False])
def test_balanced_seg_and_cls_losses_by_hand(balance):
    m = _dadf("dadf", img_size=64, rga=False, balance=balance)
    z = torch.tensor([[[[2.0, -1.0]]], [[[-2.0, 1.0]]], [[[0.5, 0.5]]], [[[1.0, -3.0]]]])
    mask = torch.tensor([[[[0.0, 0.0]]], [[[1.0, 0.0]]], [[[1.0, 1.0]]], [[[0.0, 1.0]]]])
    logit = torch.tensor([0.3, -1.2, 2.0, 0.1])
    label = torch.tensor([0, 1, 1, 1])
    losses = m.losses({"mask_logit": z, "logit": logit}, {"mask": mask, "label": label})
    bce = lambda z, t: np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0) - z * t  # noqa: E731
    w = np.array([2, 2 / 3, 2 / 3, 2 / 3]) if balance else np.ones(4)
    seg_i = bce(z.numpy(), mask.numpy()).reshape(4, -1).mean(1)
    assert losses["seg"].item() == pytest.approx(np.mean(w * seg_i), rel=1e-6)
    assert losses["cls"].item() == pytest.approx(np.mean(w * bce(logit.numpy(), label.numpy())), rel=1e-6)


def test_rga_diagnostic_measures_by_hand():
    from dfnb.models.dadf.rga import attention_entropy, relative_change

    f = torch.tensor([[[[1.0, -2.0]]]])
    assert relative_change(f, f + torch.tensor([[[[0.3, 0.0]]]])).item() == pytest.approx(0.3 / 3)
    uniform = torch.full((2, 3, 2, 2), 0.25)
    assert torch.allclose(attention_entropy(uniform), torch.ones(2))
    onehot = torch.zeros(1, 1, 2, 2)
    onehot[0, 0, 1, 0] = 1.0
    assert attention_entropy(onehot).item() == pytest.approx(0.0, abs=1e-6)
    half = torch.tensor([[[[0.5, 0.5], [0.0, 0.0]]]])  # two of four positions: log 2 / log 4
    assert attention_entropy(half).item() == pytest.approx(0.5, rel=1e-6)
    by_channel = torch.full((1, 4, 1, 1), 0.25)  # softmax over 4 channels at one position
    assert attention_entropy(by_channel, "channel").item() == pytest.approx(1.0)


def test_noise_scale_reaches_the_forward_pass_and_the_diagnostics():
    from dfnb.models.dadf import study

    x = torch.rand(2, 3, 64, 64)
    eps = torch.randn((1, 3, 64, 64), generator=torch.Generator().manual_seed(0))
    ratios = []
    for std in (1e-3, 5e-2):
        m = _dadf("dadf", img_size=64, noise_std=std).eval()
        with torch.no_grad():
            assert torch.allclose(m(x)["feat_noisy"], m.encode(x + eps * std), atol=1e-5)
        data = [{"image": img} for img in x]
        ratios.append(study.rga_diagnostics(m, data)["s_over_f"])
    assert ratios[1] > 10 * ratios[0]  # |S| grows with the noise


def test_noise_on_every_training_face():
    m = _dadf("dadf", img_size=64, noise_p=1.0).train()
    out = m(torch.rand(3, 3, 64, 64))
    assert out["noised"].all() and not torch.equal(out["feat_noisy"], out["feat_clean"])


def test_training_memory_counts_saved_activations_by_hand():
    from dfnb.models.dadf import study

    class Toy(nn.Module):
        img_size = 2

        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(12, 5)
            self.frozen = nn.Parameter(torch.ones(1), requires_grad=False)

        def forward(self, x):
            return {"logit": torch.relu(self.lin(x.flatten(1))).sum(1)}

        def losses(self, out, batch):
            return {"loss": out["logit"].sum()}

    m = Toy()
    mem = study.training_memory(m, batch_size=4)
    mib = 2.0 ** 20
    assert mem["weights"] == pytest.approx((12 * 5 + 5 + 1) * 4 / mib)
    assert mem["gradients_and_optimizer"] == pytest.approx(3 * (12 * 5 + 5) * 4 / mib)
    # per face, autograd keeps the linear layer's input (12 floats) and the ReLU's output (5 floats)
    assert mem["activations"] == pytest.approx(4 * (12 + 5) * 4 / mib)
    assert mem["total"] == pytest.approx(mem["weights"] + mem["gradients_and_optimizer"] + mem["activations"])


def test_seg_loss_leaves_out_fakes_without_a_true_mask():
    """A fake with no mask video (has_mask False) carries an all-zero stand-in mask: no L_seg from it."""
    m = _dadf("dadf", img_size=64, rga=False, balance=True)
    z = torch.tensor([[[[2.0, -1.0]]], [[[-2.0, 1.0]]], [[[0.5, 0.5]]], [[[1.0, -3.0]]]])
    mask = torch.tensor([[[[0.0, 0.0]]], [[[1.0, 0.0]]], [[[0.0, 0.0]]], [[[0.0, 1.0]]]])
    logit = torch.tensor([0.3, -1.2, 2.0, 0.1])
    label = torch.tensor([0, 1, 1, 1])
    known = torch.tensor([True, True, False, True])
    out = m.losses({"mask_logit": z, "logit": logit}, {"mask": mask, "label": label, "has_mask": known})
    without = m.losses({"mask_logit": z[known], "logit": logit[known]}, {"mask": mask[known], "label": label[known]})
    assert out["seg"].item() == pytest.approx(without["seg"].item(), rel=1e-6)  # as if the face were not there
    bce = lambda z, t: np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0) - z * t  # noqa: E731
    seg_i = bce(z.numpy(), mask.numpy()).reshape(4, -1).mean(1)
    assert out["seg"].item() == pytest.approx(np.mean(np.array([1.5, 0.75, 0.75]) * seg_i[[0, 1, 3]]), rel=1e-6)
    every = m.losses({"mask_logit": z, "logit": logit}, {"mask": mask, "label": label, "has_mask": torch.ones(4, dtype=torch.bool)})
    assert every["seg"].item() != pytest.approx(out["seg"].item())  # (the stand-in would have counted)
    none = m.losses({"mask_logit": z[2:3], "logit": logit[2:3]},
                    {"mask": mask[2:3], "label": label[2:3], "has_mask": known[2:3]})
    assert none["seg"].item() == 0.0 and torch.isfinite(none["loss"])


def test_bf16_rounding_drowns_rgas_noise_signal_and_dadf_warns():
    """book/rerun.md: under bf16 S = |F_gau - F| is mostly rounding, under fp16 it is kept; DADF warns under bf16."""
    m = _dadf("dadf").eval()
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) * 1e-3  # RGA's noise (std 1e-3)

    def s_map(dtype=None):
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return (m.encode(x + noise).float() - m.encode(x).float()).abs().flatten()

    ref = s_map()
    corr = {d: float(torch.corrcoef(torch.stack([ref, s_map(d)]))[0, 1]) for d in (torch.bfloat16, torch.float16)}
    assert corr[torch.bfloat16] < 0.5 < 0.7 < corr[torch.float16], corr
    assert float(s_map(torch.bfloat16).mean()) > 1.5 * float(ref.mean())  # rounding inflates S
    with pytest.warns(UserWarning, match="bf16 autocast.*S = \\|F_gau - F\\| is then mostly rounding"):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            m(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.autocast("cpu", dtype=torch.float16):
            m(x)
