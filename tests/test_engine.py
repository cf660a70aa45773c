"""dfnb.engine: config validation, determinism, resume, checkpoints, selection, torchrun."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dfnb
from dfnb.engine import (TrainConfig, evaluate, fit, load_checkpoint, load_model, read_checkpoint, save_checkpoint,
                         seed_everything)
from dfnb.engine.seed import get_rng_state, set_rng_state

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import ToyFaces, one_thread  # noqa: E402,F401  (one_thread: autouse fixture)

ROOT = Path(__file__).resolve().parents[1]


def _model(seed=0, **kw):
    seed_everything(seed)
    return dfnb.create_model("toy_cnn", width=4, **kw)


def _fit(model, out_dir=None, epochs=2, **kw):
    args = dict(epochs=epochs, batch_size=8, lr=1e-2, seed=7, schedule="cosine", out_dir=out_dir, progress=False)
    args.update(kw)
    return fit(model, ToyFaces(24, seed=1), ToyFaces(16, seed=2, split="val"), **args)


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("bad, msg", [
    (dict(epochs=0), "epochs"), (dict(optimizer="adam"), "unknown optimizer 'adam'"),
    (dict(schedule="linear"), "unknown schedule"), (dict(lr=0.0), "lr"), (dict(batch_size=0), "batch_size"),
    (dict(select_metric="test_auc"), "unknown select_metric"), (dict(device="tpu"), "device"),
    (dict(max_steps_per_epoch=0), "max_steps_per_epoch"), (dict(seed=-1), "seed"),
])
def test_config_rejects_bad_parameters(bad, msg):
    args = dict(epochs=1, batch_size=4, lr=1e-3, seed=0)
    args.update(bad)
    with pytest.raises(ValueError, match=msg):
        TrainConfig(**args)
    with pytest.raises(ValueError, match=msg):  # fit validates before touching anything
        fit(_model(), ToyFaces(8), ToyFaces(8, split="val"), progress=False, **args)


def test_config_identity_ignores_epochs_and_device():
    a = TrainConfig(epochs=1, batch_size=4, lr=1e-3, seed=0)
    b = TrainConfig(epochs=5, batch_size=4, lr=1e-3, seed=0, progress=False, num_workers=1)
    assert a.identity() == b.identity()
    assert a.identity() != TrainConfig(epochs=1, batch_size=4, lr=2e-3, seed=0).identity()
    assert a.metric_key == "frame_auc" and a.higher_is_better
    assert not TrainConfig(epochs=1, batch_size=4, lr=1e-3, seed=0, select_metric="loss").higher_is_better


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        _fit(_model(), epochs=1, device="cuda")


# ----------------------------------------------------------------------------- determinism
def test_same_seed_twice_gives_identical_metrics_and_weights():
    m1, m2 = _model(), _model()
    h1, h2 = _fit(m1), _fit(m2)
    assert [e["train"] for e in h1.epochs] == [e["train"] for e in h2.epochs]
    assert [e["val"] for e in h1.epochs] == [e["val"] for e in h2.epochs]
    assert torch.equal(_params(m1), _params(m2))
    # a different seed changes the data order, hence the result
    h3 = _fit(_model(), seed=8)
    assert [e["train"] for e in h3.epochs] != [e["train"] for e in h1.epochs]


def test_history_records_losses_metrics_and_schedule():
    h = _fit(_model(), epochs=2)
    assert [e["epoch"] for e in h.epochs] == [1, 2]
    e = h.epochs[0]
    assert set(e["train"]) == {"loss", "bce"} and np.isfinite(e["train"]["loss"])
    assert {"frame_auc", "video_auc", "loss"} <= set(e["val"])
    assert h.epochs[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine ends at zero
    assert h.best_epoch in (1, 2) and h.wall_time_s > 0
    df = h.to_frame()
    assert list(df["epoch"]) == [1, 2] and "val_frame_auc" in df and "train_loss" in df


# ----------------------------------------------------------------------------- checkpoints and resume
def test_checkpoints_written_each_epoch_and_load_weights_only(tmp_path):
    m = _model()
    h = _fit(m, tmp_path, epochs=2)
    ck = tmp_path / "ckpt"
    assert sorted(p.name for p in ck.glob("*.pt")) == ["best.pt", "epoch_001.pt", "epoch_002.pt", "last.pt"]
    assert json.loads((tmp_path / "history.json").read_text())["best_epoch"] == h.best_epoch
    raw = torch.load(ck / "last.pt", map_location="cpu", weights_only=True)  # plain torch, weights_only
    assert raw["epoch"] == 2 and raw["arch"] == {"name": "toy_cnn", "kwargs": {"width": 4, "with_mask": False, "img_size": 32}}
    assert {"model", "optimizer", "scheduler", "rng", "config", "dfnb_version"} <= set(raw)
    best = torch.load(ck / "best.pt", map_location="cpu", weights_only=True)
    assert best["epoch"] == h.best_epoch
    # the best epoch is the one with the highest validation AUC (ties: the earlier one)
    aucs = [e["val"]["frame_auc"] for e in h.epochs]
    assert h.best_epoch == 1 + int(np.argmax(aucs))
    # with restore_best, the model ends with the best epoch's weights
    assert torch.equal(_params(m), torch.cat([v.flatten() for k, v in best["model"].items()]))


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    # (a) stop after epoch 1 by epochs=1, then epochs=2 with resume (a schedule not tied to the length)
    full = _model()
    h_full = _fit(full, tmp_path / "full", epochs=2, schedule="step", restore_best=False)
    part = _model()
    _fit(part, tmp_path / "part", epochs=1, schedule="step", restore_best=False)
    part = _model(seed=123)  # a fresh process would rebuild the model: different init, overwritten by resume
    h_res = _fit(part, tmp_path / "part", epochs=2, schedule="step", restore_best=False)
    assert h_res.resumed_from == 1
    assert h_res.epochs[1]["train"] == h_full.epochs[1]["train"]
    assert [e["val"] for e in h_res.epochs] == [e["val"] for e in h_full.epochs]
    assert torch.equal(_params(part), _params(full))

    # (b) a crash during epoch 2 of a cosine run, then the same call again
    calls = {"n": 0}

    def crash_in_epoch_2(batch, gen):
        calls["n"] += 1
        if calls["n"] > 3:  # 3 steps per epoch
            raise KeyboardInterrupt
        return batch

    cos_full = _model()
    h_cos = _fit(cos_full, tmp_path / "cos_full", epochs=2, restore_best=False, train_transform=lambda b, g: b)
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), tmp_path / "cos", epochs=2, restore_best=False, train_transform=crash_in_epoch_2)
    cos = _model()
    h_cos_res = _fit(cos, tmp_path / "cos", epochs=2, restore_best=False, train_transform=lambda b, g: b)
    assert h_cos_res.resumed_from == 1
    assert [e["train"] for e in h_cos_res.epochs] == [e["train"] for e in h_cos.epochs]
    assert torch.equal(_params(cos), _params(cos_full))


def test_no_silent_overwrite_of_another_run(tmp_path):
    _fit(_model(), tmp_path, epochs=1)
    with pytest.raises(ValueError, match=r"different run.*lr: checkpoint 0.01, this run 0.02"):
        _fit(_model(), tmp_path, epochs=1, lr=2e-2)
    with pytest.raises(ValueError, match=r"different run.*arch"):
        _fit(dfnb.create_model("toy_cnn", width=5), tmp_path, epochs=1)
    with pytest.raises(ValueError, match="resume=True"):
        _fit(_model(), tmp_path, epochs=1, resume=False)
    h = _fit(_model(), tmp_path, epochs=1)  # same run, already finished: nothing to train
    assert h.resumed_from == 1 and len(h.epochs) == 1


def test_wrong_architecture_checkpoint_is_a_clear_error(tmp_path):
    m = _model()
    path = save_checkpoint(tmp_path / "a.pt", m, epoch=1)
    with pytest.raises(ValueError, match=r"checkpoint arch toy_cnn\(width=4.*model arch toy_cnn\(width=8.*shape"):
        load_checkpoint(path, dfnb.create_model("toy_cnn", width=8))
    with pytest.raises(ValueError, match=r"with_mask=True.*missing key 'mask_head.weight'"):
        load_checkpoint(path, dfnb.create_model("toy_cnn", width=4, with_mask=True))
    other = dfnb.engine.checkpoint.unwrap(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"torch.nn.modules.linear.Linear"):
        load_checkpoint(path, other)
    m2 = dfnb.create_model("toy_cnn", width=4)
    ck = load_checkpoint(path, m2)
    assert ck["epoch"] == 1 and torch.equal(_params(m2), _params(m))


def test_load_model_rebuilds_from_arch_and_checks_method(tmp_path):
    m = _model(with_mask=True)
    path = save_checkpoint(tmp_path / "a.pt", m, epoch=3)
    rebuilt = load_model(path)
    assert not rebuilt.training and torch.equal(_params(rebuilt), _params(m))
    with pytest.raises(ValueError, match=r"--method 'xception' does not match .*toy_cnn"):
        load_model(path, method="xception")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt cannot be loaded with weights_only=True"):
        read_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        read_checkpoint(tmp_path / "nope.pt")


def test_rng_state_roundtrip_through_weights_only(tmp_path):
    seed_everything(5)
    state = get_rng_state()
    torch.save(state, tmp_path / "rng.pt")
    a = (torch.rand(3), np.random.rand(3), __import__("random").random())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    b = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


# ----------------------------------------------------------------------------- selection on validation only
def test_test_split_cannot_be_used_for_selection():
    with pytest.raises(ValueError, match="validation split only"):
        fit(_model(), ToyFaces(8), ToyFaces(8, split="test"), epochs=1, batch_size=4, lr=1e-3, seed=0, progress=False)
    sub = torch.utils.data.Subset(ToyFaces(8, split="test"), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="validation split only"):
        fit(_model(), ToyFaces(8), sub, epochs=1, batch_size=4, lr=1e-3, seed=0, progress=False)
    import inspect

    assert not any("test" in p for p in inspect.signature(fit).parameters)


def test_select_metric_loss_picks_lowest_val_loss():
    h = _fit(_model(), epochs=3, select_metric="loss", lr=5e-2)
    losses = [e["val"]["loss"] for e in h.epochs]
    assert h.best_epoch == 1 + int(np.argmin(losses)) and h.best_metric == min(losses)


def test_fit_on_the_synthetic_benchmark_refuses_its_test_split(tmp_path):
    data = pytest.importorskip("dfnb.data")
    kw = dict(size=32, n_videos=2, frames_per_video=2, root=tmp_path / "data", progress=False)
    train, val, test = (data.load_benchmark("ffpp-syn", s, **kw) for s in ("train", "val", "test"))
    with pytest.raises(ValueError, match="validation split only"):
        fit(_model(), train, test, epochs=1, batch_size=8, lr=1e-2, seed=0, progress=False)
    h = fit(_model(with_mask=True), train, val, epochs=1, batch_size=8, lr=1e-2, seed=0, progress=False)
    assert {"bce", "mask_bce", "loss"} == set(h.epochs[0]["train"]) and "loc_iinc_all" in h.epochs[0]["val"]


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_reports_detection_and_localization():
    m = _model(with_mask=True).eval()
    ds = ToyFaces(12, seed=4, split="val")
    res = evaluate(m, ds, batch_size=5, device="cpu", progress=False)
    with torch.no_grad():
        imgs = torch.stack([ds[i]["image"] for i in range(len(ds))])
        out = m(imgs)
    np.testing.assert_allclose(res["probs"], torch.sigmoid(out["logit"]).double().numpy(), rtol=1e-6)
    np.testing.assert_array_equal(res["labels"], ds.labels.numpy())
    assert res["keys"][0] == ("toy", "real", "v0") and len(res["keys"]) == 12
    assert res["pred_masks"].shape == (12, 1, 16, 16)
    from sklearn.metrics import roc_auc_score

    assert res["detection"]["frame_auc"] == pytest.approx(roc_auc_score(res["labels"], res["probs"]))
    assert res["detection"]["video_n"] == 6  # (dataset, method, video_id): 3 ids x {real, square}
    assert {"iinc_all", "pbca_all"} <= set(res["localization"])
    assert res["loss"] == pytest.approx(float(m.losses(out, {"label": ds.labels, "mask": ds.masks})["loss"]), rel=1e-5)


def test_evaluate_one_class_is_a_clear_error():
    ds = torch.utils.data.Subset(ToyFaces(8), [0, 2, 4])  # real faces only
    with pytest.raises(ValueError, match=r"0 fake, 3 real"):
        evaluate(_model(), ds, batch_size=4, progress=False)


def test_train_transform_gets_a_seeded_generator():
    seen = []

    def t(batch, gen):
        assert isinstance(gen, torch.Generator)
        seen.append(torch.rand(1, generator=gen).item())
        return batch

    _fit(_model(), epochs=1, train_transform=t)
    first = list(seen)
    seen.clear()
    _fit(_model(), epochs=1, train_transform=t)
    assert seen == first and len(set(first)) == len(first)


# ----------------------------------------------------------------------------- torchrun
def test_torchrun_two_processes_match_single_process(tmp_path):
    """2 CPU processes (gloo), global batch 8 = 2 x 4, one epoch: same loss and weights as 1 process."""
    from _ddp_worker import train_one_epoch

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "lib"))
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    out = tmp_path / "ddp.json"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(ROOT / "tests" / "_ddp_worker.py"), str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads(out.read_text())
    assert ddp["world_size"] == 2
    single, h = train_one_epoch()
    assert ddp["history"][0]["train"]["loss"] == pytest.approx(h.epochs[0]["train"]["loss"], rel=1e-5)
    np.testing.assert_allclose(np.array(ddp["params"]), _params(single).numpy(), rtol=1e-4, atol=1e-6)
    assert ddp["history"][0]["val"]["frame_auc"] == pytest.approx(h.epochs[0]["val"]["frame_auc"], abs=1e-6)


def test_evaluate_leaves_fakes_without_a_true_mask_out_of_localization():
    from dfnb import metrics

    class Unknown(ToyFaces):  # the first fake has no mask video: its mask is an all-zero stand-in
        def __getitem__(self, i):
            it = super().__getitem__(i)
            return {**it, "mask": it["mask"] * (i != 1), "has_mask": torch.tensor(i != 1)}

    m = _model(with_mask=True).eval()
    ds = Unknown(12, seed=4, split="val")
    res = evaluate(m, ds, batch_size=5, device="cpu", progress=False)
    keep = np.arange(12) != 1
    want = metrics.localization_report(res["pred_masks"][keep], ds.masks.numpy()[keep], ds.labels.numpy()[keep])
    assert res["localization"] == {**want, "n_no_mask": 1} and res["detection"]["frame_n"] == 12

    class NoMasks(ToyFaces):  # Celeb-DF: no fake has a true mask; detection only
        def __getitem__(self, i):
            it = super().__getitem__(i)
            return {**it, "mask": it["mask"] * 0, "has_mask": it["label"] == 0}

    res = evaluate(m, NoMasks(8, seed=1, split="val"), batch_size=4, device="cpu", progress=False)
    assert res["localization"] is None and res["detection"]["frame_auc"] >= 0
