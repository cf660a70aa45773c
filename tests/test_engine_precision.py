"""dfnb.engine on a GPU, tested on CPU: precision (autocast, GradScaler), DataLoader workers and seeding,
the environment switch, channels_last, and the cost of a step (counted, probed, and on shapes alone)."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import dfnb
from dfnb.engine import cost as C
from dfnb.engine import evaluate, fit, loader as L, precision as P, read_checkpoint, seed_everything

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import ToyFaces, one_thread  # noqa: E402,F401  (one_thread: autouse fixture)


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    for k in (P.ENV, L.ENV, "DFNB_REPORT_COST", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)


def _model(seed=0, **kw):
    seed_everything(seed)
    return dfnb.create_model("toy_cnn", width=4, **kw)


def _fit(model, epochs=2, **kw):
    args = dict(epochs=epochs, batch_size=8, lr=1e-2, seed=7, schedule="cosine", progress=False)
    args.update(kw)
    return fit(model, ToyFaces(24, seed=1), ToyFaces(16, seed=2, split="val"), **args)


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# ----------------------------------------------------------------------------- resolving the defaults
def test_precision_default_environment_and_explicit_argument(monkeypatch):
    assert P.resolve_precision(None, "cpu") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Old GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert P.resolve_precision(None, "cuda") == "bf16" and P.resolve_precision(None, "cuda:1") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert P.resolve_precision(None, "cuda") == "fp32"  # no bf16 on this GPU: fp32 unless asked for fp16
    with pytest.raises(ValueError, match=r"precision=bf16 but this GPU \(Old GPU\) has no bf16 support"):
        P.resolve_precision("bf16", "cuda")
    monkeypatch.setenv(P.ENV, "fp16")
    assert P.resolve_precision(None, "cpu") == "fp16" and P.resolve_precision("fp32", "cpu") == "fp32"
    monkeypatch.setenv(P.ENV, "bf17")
    with pytest.raises(ValueError, match=r"\$DFNB_PRECISION='bf17' is not a precision; choose one of fp32, bf16, fp16"):
        P.resolve_precision(None, "cpu")
    with pytest.raises(ValueError, match=r"^precision='half' is not a precision"):
        P.resolve_precision("half", "cpu")


def test_num_workers_default_environment_and_explicit_argument(monkeypatch):
    monkeypatch.setattr(L.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert L.resolve_num_workers(None, "cpu") == 0 and L.resolve_num_workers(None, "cuda") == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # 4 torchrun processes share the 16 cores
    assert L.resolve_num_workers(None, "cuda") == 4
    monkeypatch.setenv(L.ENV, "3")
    assert L.resolve_num_workers(None, "cpu") == 3 and L.resolve_num_workers(0, "cuda") == 0
    monkeypatch.setenv(L.ENV, "two")
    with pytest.raises(ValueError, match=r"\$DFNB_NUM_WORKERS='two' is not a number of DataLoader workers"):
        L.resolve_num_workers(None, "cpu")
    with pytest.raises(ValueError, match="num_workers must be an integer >= 0, got -1"):
        L.resolve_num_workers(-1, "cpu")


# ----------------------------------------------------------------------------- precision
def test_bf16_autocast_gives_the_fp32_loss_within_tolerance_and_trains(tmp_path):
    m = _model(with_mask=True)
    ds = ToyFaces(8, seed=3)
    batch = {k: torch.stack([ds[i][k] for i in range(8)]) for k in ("image", "mask", "label")}
    ref = m.losses(m(batch["image"]), batch)["loss"].item()
    with P.autocast("cpu", "bf16"):
        out = m(batch["image"])
    assert out["logit"].dtype == torch.bfloat16  # the forward pass ran in bf16 ...
    loss = P.losses_fp32(m, out, batch, "cpu")["loss"]
    assert loss.dtype == torch.float32  # ... the loss is fp32
    assert loss.item() == pytest.approx(ref, rel=2e-2) and loss.item() != ref

    h = _fit(_model(), epochs=6, precision="bf16", lr=3e-2, out_dir=tmp_path)
    losses = [e["train"]["loss"] for e in h.epochs]
    assert losses[-1] < 0.9 * losses[0], losses
    ck = read_checkpoint(tmp_path / "ckpt" / "last.pt")
    assert ck["config"]["precision"] == "bf16"
    assert all(v.dtype == torch.float32 for v in ck["model"].values())  # checkpoints stay fp32


def test_fp16_runs_through_a_disabled_grad_scaler_on_cpu(monkeypatch):
    built = []
    real = P.grad_scaler

    def spy(device, precision):
        built.append(real(device, precision))
        return built[-1]

    monkeypatch.setattr(P, "grad_scaler", spy)
    m16, m32 = _model(), _model()
    h16 = _fit(m16, precision="fp16")
    h32 = _fit(m32, precision="fp32")
    assert [s.is_enabled() for s in built] == [False, False]  # GradScaler(enabled=False): scale/step/update pass through
    assert torch.amp.GradScaler("cuda", enabled=False).is_enabled() is False
    assert not torch.equal(_params(m16), _params(m32))  # fp16 autocast changed the arithmetic ...
    for a, b in zip(h16.epochs, h32.epochs):  # ... but not the result, beyond rounding
        assert a["train"]["loss"] == pytest.approx(b["train"]["loss"], rel=2e-2)
    assert all(p.dtype == torch.float32 for p in m16.parameters())


def test_precision_is_part_of_a_runs_identity(tmp_path):
    _fit(_model(), epochs=1, out_dir=tmp_path, schedule="step")
    with pytest.raises(ValueError, match=r"different run.*precision: checkpoint 'fp32', this run 'bf16'"):
        _fit(_model(), epochs=2, out_dir=tmp_path, precision="bf16", schedule="step")
    # a checkpoint written before precision existed is an fp32 run, and resumes as one
    last = tmp_path / "ckpt" / "last.pt"
    ck = torch.load(last, weights_only=True)
    del ck["extra"]["identity"]["config"]["precision"]
    torch.save(ck, last)
    assert _fit(_model(), epochs=2, out_dir=tmp_path, schedule="step").resumed_from == 1


def test_environment_switch_reaches_fit_and_evaluate_and_the_argument_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(P.ENV, "bf16")
    monkeypatch.setenv(L.ENV, "2")
    _fit(_model(), epochs=1, out_dir=tmp_path / "env")
    cfg = read_checkpoint(tmp_path / "env" / "ckpt" / "last.pt")["config"]
    assert (cfg["precision"], cfg["num_workers"]) == ("bf16", 2)
    _fit(_model(), epochs=1, out_dir=tmp_path / "arg", precision="fp32", num_workers=0)
    cfg = read_checkpoint(tmp_path / "arg" / "ckpt" / "last.pt")["config"]
    assert (cfg["precision"], cfg["num_workers"]) == ("fp32", 0)

    m, ds = _model(with_mask=True), ToyFaces(12, seed=4, split="val")
    bf16 = evaluate(m, ds, batch_size=6, progress=False)
    fp32 = evaluate(m, ds, batch_size=6, progress=False, precision="fp32", num_workers=0)
    assert bf16["probs"].dtype == np.float64 and bf16["pred_masks"].dtype == np.float32
    assert not np.array_equal(bf16["probs"], fp32["probs"])
    np.testing.assert_allclose(bf16["probs"], fp32["probs"], atol=2e-2)
    assert bf16["loss"] == pytest.approx(fp32["loss"], rel=2e-2)


def test_channels_last_for_cnns_on_cuda_only_and_checkpoints_stay_contiguous(tmp_path):
    m = _model(with_mask=True)
    assert not P.use_channels_last(m, "cpu") and not P.use_channels_last(nn.Linear(3, 2), "cuda")
    assert P.use_channels_last(m, "cuda")  # only the memory format: the tensors stay where they are
    w = m.features[0].weight
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    assert P.channels_last_active(m) and not P.use_channels_last(m, "cuda")  # evaluate inside fit: already done
    path = dfnb.engine.save_checkpoint(tmp_path / "a.pt", m, epoch=1)
    assert all(v.is_contiguous() for v in torch.load(path, weights_only=True)["model"].values())
    P.contiguous(m)
    assert m.features[0].weight.is_contiguous() and not P.channels_last_active(m)


def test_fit_in_channels_last_trains_the_same_and_gives_the_model_back_contiguous(monkeypatch):
    """The CUDA path of fit, on CPU: channels_last forced on (it changes the memory layout, not the maths)."""
    plain = _model(with_mask=True)
    h_plain = _fit(plain, schedule="step")
    layouts = []

    def keep(batch, gen):
        layouts.append(batch["image"].is_contiguous(memory_format=torch.channels_last))
        return batch

    monkeypatch.setattr(P, "use_channels_last", lambda m, d, f=P.use_channels_last: f(m, "cuda"))
    cl = _model(with_mask=True)
    h_cl = _fit(cl, schedule="step", train_transform=keep)
    assert layouts and all(layouts)  # the batches followed the model's layout
    assert all(p.is_contiguous() for p in cl.parameters()) and not P.channels_last_active(cl)
    for a, b in zip(h_plain.epochs, h_cl.epochs):
        assert a["train"]["loss"] == pytest.approx(b["train"]["loss"], rel=1e-5)
        assert a["val"]["frame_auc"] == pytest.approx(b["val"]["frame_auc"], abs=1e-6)
    torch.testing.assert_close(_params(cl), _params(plain), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- workers
class NoisyFaces(ToyFaces):
    """ToyFaces whose items add noise drawn from torch, NumPy and random: batches depend on worker seeding."""

    def __getitem__(self, i):
        it = super().__getitem__(i)
        noise = torch.rand(()) + float(np.random.rand()) + random.random()
        return {**it, "image": it["image"] + noise}


def test_seeded_workers_give_identical_batches_across_runs():
    def batches(seed, num_workers=2):
        seen = []

        def keep(batch, gen):
            seen.append(batch["image"].clone())
            return batch

        fit(_model(), NoisyFaces(16, seed=1), None, epochs=2, batch_size=8, lr=1e-2, seed=seed, progress=False,
            num_workers=num_workers, train_transform=keep)
        return seen

    with pytest.warns(UserWarning, match="val_set is None"):
        a, b, c = batches(3), batches(3), batches(4)
    assert len(a) == 4 and all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[0], a[2])  # another seed, another epoch: other noise


def test_persistent_seeded_workers_repeat_with_the_same_seed():
    """The CUDA loader (persistent workers), built on CPU: the same seed gives the same batches."""
    def epochs(seed):
        gen = torch.Generator()
        sampler = torch.utils.data.SequentialSampler(range(12))
        dl = L.train_loader(NoisyFaces(12, seed=1), batch_size=4, sampler=sampler, num_workers=2, device="cpu",
                            generator=gen.manual_seed(seed), persistent=True)
        assert dl.persistent_workers and not dl.pin_memory
        return [b["image"].clone() for _ in range(2) for b in dl]

    a, b = epochs(5), epochs(5)
    assert len(a) == 6 and all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], epochs(6)[0])


# ----------------------------------------------------------------------------- cost of a step
def test_saved_bytes_counts_each_storage_once_and_leaves_out_parameters():
    x = torch.rand(5, 3, requires_grad=True)
    lin = nn.Linear(3, 4)

    def f():
        y = x.exp()  # saves its result y (5x3)
        z = y * y  # saves y twice: the same storage
        return lin(z).relu()  # saves z (5x3), the weight (a parameter) and the ReLU output (5x4)

    out, n = C.saved_bytes(f, exclude=lin.parameters())
    assert out.shape == (5, 4) and n == (15 + 15 + 20) * 4


def test_memory_parts_from_parameter_counts():
    m = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 2))
    m[0].requires_grad_(False)
    mem = C.memory_parts(m, activation_bytes=2 * C.MIB, optimizer="adamw", world_size=2)
    w, t = (110 + 22) * 4 / C.MIB, 22 * 4 / C.MIB
    assert mem == pytest.approx({"weights": w, "gradients": t, "optimizer": 2 * t, "ddp_buckets": t,
                                 "activations": 2.0, "total": w + 4 * t + 2.0})
    assert C.memory_parts(m, 0, optimizer="sgd")["optimizer"] == pytest.approx(t)
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        C.memory_parts(m, 0, optimizer="adam")


class BNNet(nn.Module):
    """A conv, BatchNorm and dropout: a training step changes buffers and draws random numbers."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        return {"logit": self.head(self.body(x).mean((2, 3))).squeeze(1)}

    def losses(self, out, batch):
        loss = nn.functional.binary_cross_entropy_with_logits(out["logit"], batch["label"].float())
        return {"loss": loss}


def test_cost_probe_measures_without_changing_the_model():
    torch.manual_seed(0)
    m = BNNet().eval()
    batch = {"image": torch.rand(4, 3, 8, 8), "label": torch.tensor([0, 1, 0, 1])}
    before = {k: v.clone() for k, v in m.state_dict().items()}
    rng = torch.get_rng_state()
    cost = C.cost_probe(m, batch, precision="bf16", steps=3, steps_per_epoch=10)
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())  # BatchNorm statistics too
    assert torch.equal(torch.get_rng_state(), rng) and not m.training
    assert all(p.grad is None for p in m.parameters())
    assert cost["epoch_s"] == pytest.approx(10 * cost["s_per_step"]) and cost["s_per_step"] > 0
    assert not cost["measured"] and cost["gpu"] == "none" and cost["device_mib"] is None
    assert cost["memory"]["activations"] > 0 and cost["peak_mib"] == cost["memory"]["total"]
    line = C.cost_line(cost)
    assert "batch 4 per process on CPU (bf16)" in line and "per epoch of 10 steps" in line and "counted" in line
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        C.cost_probe(m, batch, steps=1)


@pytest.fixture()
def pretend_gpu(monkeypatch):
    """torch.cuda's bookkeeping faked on CPU: an 80 GiB "Fake GPU" whose allocator peak is 3 GiB."""
    calls = {"reset": 0}

    class Props:
        total_memory, major = 80 * 2 ** 30, 9

    def reset(index):
        calls["reset"] += 1

    for name, fn in {"is_available": lambda: True, "synchronize": lambda *a: None, "current_device": lambda: 0,
                     "max_memory_allocated": lambda *a: 3 * 2 ** 30, "reset_peak_memory_stats": reset,
                     "get_device_properties": lambda *a: Props(), "get_device_name": lambda *a: "Fake GPU"}.items():
        monkeypatch.setattr(torch.cuda, name, fn)
    monkeypatch.setattr(C, "_PEAKS", {})
    return calls


def test_cost_probe_on_a_gpu_measures_the_peak_and_keeps_the_earlier_one(pretend_gpu):
    m = BNNet()
    batch = {"image": torch.rand(2, 3, 8, 8), "label": torch.tensor([0, 1])}
    cost = C.cost_probe(m, batch, device="cuda", precision="fp32", steps=2)
    opt = C.memory_parts(m, 0)["optimizer"]
    assert cost["measured"] and cost["gpu"] == "Fake GPU" and cost["device_mib"] == 80 * 1024
    assert cost["peak_mib"] == pytest.approx(3 * 1024 + opt)  # the allocator's peak + the AdamW state to come
    assert pretend_gpu["reset"] == 1 and C._PEAKS == {0: 3 * 2 ** 30} and C.cuda_peak_mib() == 3 * 1024
    assert "peak 3.0 GiB of 80.0 GiB measured" in C.cost_line(cost) and "on Fake GPU (fp32)" in C.cost_line(cost)

    def oom(x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    m.forward = oom
    with pytest.raises(RuntimeError, match=r"^one training step at batch 2 per process \(bf16\) does not fit in the "
                                           r"80 GiB of Fake GPU: lower batch_size, .*dfnb run --nproc N"):
        C.cost_probe(m, batch, device="cuda", precision="bf16")
    assert all(p.grad is None for p in m.parameters())


def test_fit_reports_the_cost_first_and_trains_as_without_it(capsys, monkeypatch):
    a, b = _model(), _model()
    ha = _fit(a, report_cost=True)
    out = capsys.readouterr().out
    assert out.startswith("fit: expected cost of a training step at batch 8 per process on CPU (fp32)")
    assert "per epoch of 3 steps" in out
    hb = _fit(b)  # on CPU the default is off
    assert capsys.readouterr().out == ""
    assert torch.equal(_params(a), _params(b)) and [e["train"] for e in ha.epochs] == [e["train"] for e in hb.epochs]
    monkeypatch.setenv("DFNB_REPORT_COST", "1")
    _fit(_model(), epochs=1)
    assert capsys.readouterr().out.startswith("fit: expected cost")
    monkeypatch.setenv("DFNB_REPORT_COST", "yes")
    with pytest.raises(ValueError, match=r"\$DFNB_REPORT_COST='yes' must be 0 or 1"):
        _fit(_model(), epochs=1)


def test_counting_on_shapes_alone_equals_counting_on_real_tensors():
    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 8, 3, dilation=2),
                             nn.Flatten(), nn.Linear(8 * 12 * 12, 1))

    real = build()
    _, want = C.saved_bytes(lambda: real(torch.rand(2, 3, 16, 16)).sum(), exclude=real.parameters())
    with C.shapes_only("cpu"):
        fake = C.fake_module(build, "cpu")
        _, got = C.saved_bytes(lambda: fake(torch.rand(2, 3, 16, 16)).sum(), exclude=fake.parameters())
    assert got == want > 0


def test_shapes_only_follows_cuda_autocast_rules_without_a_gpu():
    with C.shapes_only("cuda", "bf16"):
        x = torch.empty(4, 8, device="cuda")
        w = torch.empty(8, 8, device="cuda", requires_grad=True)

        def f():
            return (x @ w).softmax(-1)

        y, n = C.saved_bytes(f, exclude=[w])
        assert y.device.type == "cuda" and y.dtype == torch.float32  # CUDA's softmax autocasts to fp32
    assert n == 4 * 8 * 2 + 4 * 8 * 4  # the bf16 copy of x kept by the matmul, the fp32 softmax output
    assert not torch.is_autocast_enabled("cuda")
