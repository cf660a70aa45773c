"""DADF: SAM loading, Multiscale Adapter, RGA, losses, baselines, micro-SAM pretraining."""
from __future__ import annotations

import warnings

import numpy as np
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


def test_train_model_is_seeded_and_timed():
    from _ddp_worker import ToyFaces
    from dfnb.models.dadf.study import train_model

    train, val = ToyFaces(8, size=64, seed=0), ToyFaces(4, size=64, seed=1, split="val")
    kw = dict(epochs=1, batch_size=4, lr=1e-3, seed=3, progress=False, img_size=64, adapter="C")
    m1, h1, s1 = train_model("dadf", train, val, **kw)
    m2, _, _ = train_model("dadf", train, val, **kw)
    assert m1.adapter == "C" and s1 > 0 and len(h1.to_frame()) == 1
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        train_model("dadf", train, val, **dict(kw, epochs=0))
