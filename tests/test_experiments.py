"""The on-disk experiment cache: same key -> the same model loaded, any change -> retrained, entries atomic."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dfnb import data, engine, runner
from dfnb.experiments import CacheError, code_hash, dependencies, fingerprint, reset_used, train_seeded, used

FIT = dict(epochs=1, batch_size=4, lr=1e-2)
TESTS = Path(__file__).resolve().parent


class Tiny(torch.utils.data.Dataset):
    """``n`` 32 px noise images, every other one fake (a bright square, its mask); ``fingerprint`` names
    (n, seed) only, so ``delay`` (seconds of sleep per item) changes speed, not the key."""

    def __init__(self, n: int = 8, seed: int = 0, delay: float = 0.0):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 2
        self.masks = torch.zeros(n, 1, 32, 32)
        self.masks[self.labels == 1, :, 8:24, 8:24] = 1.0
        self.images = (torch.rand(n, 3, 32, 32, generator=g) * 0.6 + 0.4 * self.masks).clamp(0, 1)
        self.delay, self.fingerprint = delay, f"tiny-{n}-{seed}"

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        if self.delay:
            time.sleep(self.delay)
        fake = bool(self.labels[i])
        return {"image": self.images[i], "mask": self.masks[i], "label": self.labels[i], "video_id": f"{i:04d}",
                "method": "square" if fake else "real", "dataset": "tiny"}


class Evil:
    """Not a tensor or plain type: ``torch.load(weights_only=True)`` must refuse to unpickle it."""


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    kw = dict(size=32, n_videos=2, frames_per_video=1, root=root, progress=False)
    return data.load_benchmark("ffpp-syn", "train", **kw), data.load_benchmark("ffpp-syn", "val", **kw)


def _state_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_same_key_loads_the_same_model_history_and_evaluation(bench, tmp_path, monkeypatch):
    tr, va = bench
    kw = dict(seed=0, model_kwargs={"with_mask": True}, cache=tmp_path, epochs=2, batch_size=4, lr=1e-2)
    a = train_seeded("toy_cnn", tr, va, **kw)
    assert not a.cached and re.fullmatch(r"[0-9a-f]{20}", a.key) and a.path == tmp_path / "toy_cnn" / a.key
    assert sorted(p.name for p in a.path.iterdir()) == ["history.json", "key.json", "meta.json", "model.pt"]
    assert json.loads((a.path / "key.json").read_text())["data"] == {"train": fingerprint(tr), "val": fingerprint(va)}
    ra = a.evaluate(va)
    assert sorted((a.path / "eval").iterdir()) == [a.path / "eval" / f"{fingerprint(va)}.{s}" for s in ("json", "npz")]

    b = train_seeded("toy_cnn", tr, va, **kw)
    assert b.cached and b.key == a.key and not b.model.training
    assert _state_equal(a.model, b.model) and a.state_dict_sha256() == b.state_dict_sha256()
    assert b.history.as_dict() == a.history.as_dict() and len(b.history.epochs) == 2
    assert b.train_seconds == pytest.approx(a.train_seconds)

    calls = []
    real_evaluate = engine.evaluate
    monkeypatch.setattr(engine, "evaluate", lambda *x, **k: calls.append(k) or real_evaluate(*x, **k))
    rb = b.evaluate(va, batch_size=3)  # from disk, whatever the batch size
    assert calls == [] and "pred_masks" not in rb
    np.testing.assert_array_equal(rb["probs"], ra["probs"])
    np.testing.assert_array_equal(rb["labels"], ra["labels"])
    assert rb["probs"].dtype == np.float64 and rb["labels"].dtype == np.int64
    assert rb["keys"] == ra["keys"] and isinstance(rb["keys"][0], tuple)
    assert (rb["detection"], rb["localization"], rb["loss"], rb["n"]) == \
        (ra["detection"], ra["localization"], ra["loss"], ra["n"])
    # masks were not stored: asked for, they are computed once (by the loaded model, same probs), then read back
    rm = b.evaluate(va, return_masks=True)
    assert len(calls) == 1 and rm["pred_masks"].shape == (len(va), 1, 32, 32)
    np.testing.assert_array_equal(rm["probs"], ra["probs"])
    rm2 = b.evaluate(va, return_masks=True)
    assert len(calls) == 1
    np.testing.assert_array_equal(rm2["pred_masks"], rm["pred_masks"])


def test_changed_config_retrains_and_runtime_options_do_not(tmp_path):
    tr, va = Tiny(8, 0), Tiny(8, 1)
    base = dict(seed=0, cache=tmp_path, **FIT)
    a = train_seeded("toy_cnn", tr, va, **base)
    keys = {a.key}
    for change in ({"lr": 2e-2}, {"seed": 1}, {"model_kwargs": {"width": 4}}, {"epochs": 2},
                   {"transform": lambda b, g: b, "transform_key": "identity"}):
        e = train_seeded("toy_cnn", tr, va, **{**base, **change})
        assert not e.cached and e.key not in keys, change
        keys.add(e.key)
    e = train_seeded("toy_cnn", Tiny(8, 2), va, **base)  # other training data
    assert not e.cached and e.key not in keys
    keys.add(e.key)
    # not part of the key, or the defaults spelled out: the same entry
    for same in ({"device": "cpu", "num_workers": 0, "progress": False}, {"weight_decay": 1e-4},
                 {"model_kwargs": {"width": 8, "img_size": 32}}):
        e = train_seeded("toy_cnn", tr, va, **{**base, **same})
        assert e.cached and e.key == a.key, same
    assert sorted(p.name for p in (tmp_path / "toy_cnn").iterdir()) == sorted(keys)
    off = train_seeded("toy_cnn", tr, va, **{**base, "cache": False})
    assert off.key == a.key and not off.cached and off.path is None and _state_equal(off.model, a.model)


def test_changed_dependent_code_retrains(tmp_path, monkeypatch):
    src = tmp_path / "src"
    (src / "fakecode_pkg" / "sub").mkdir(parents=True)
    (src / "fakecode_mod.py").write_text("A = 1\n")
    (src / "fakecode_pkg" / "__init__.py").write_text("")
    (src / "fakecode_pkg" / "sub" / "deep.py").write_text("B = 1\n")
    monkeypatch.syspath_prepend(str(src))
    h = code_hash(["fakecode_pkg"])
    (src / "fakecode_pkg" / "sub" / "deep.py").write_text("B = 2\n")  # a package counts all its files
    assert code_hash(["fakecode_pkg"]) != h
    with pytest.raises(ValueError, match="no module named 'no_such_module_xyz'"):
        code_hash(["no_such_module_xyz"])

    kw = dict(seed=0, cache=tmp_path / "c", code=["fakecode_mod"], **FIT)
    a = train_seeded("toy_cnn", Tiny(), Tiny(8, 1), **kw)
    assert train_seeded("toy_cnn", Tiny(), Tiny(8, 1), **kw).cached
    (src / "fakecode_mod.py").write_text("A = 2\n")
    c = train_seeded("toy_cnn", Tiny(), Tiny(8, 1), **kw)
    assert not c.cached and c.key != a.key
    assert json.loads((c.path / "key.json").read_text())["code"] == code_hash(["fakecode_mod"])


def test_dependencies_follow_every_import_statement(tmp_path, monkeypatch):
    src = tmp_path / "src" / "dfnb_fake"
    (src / "models").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    (src / "__init__.py").write_text("")
    (src / "models" / "__init__.py").write_text("")
    (src / "models" / "a.py").write_text("from . import b\n\ndef f():\n    from dfnb_fake.models.c import g\n")
    (src / "models" / "b.py").write_text("X = 1\n")
    (src / "models" / "c.py").write_text("from ..util import h\n\ndef g():\n    pass\n")
    (src / "util.py").write_text("def h():\n    pass\n")
    (src / "models" / "unused.py").write_text("Y = 1\n")
    assert dependencies(["dfnb_fake.models.a"]) == ["dfnb_fake.models.a", "dfnb_fake.models.b",
                                                     "dfnb_fake.models.c", "dfnb_fake.util"]
    (src / "models" / "b.py").write_text("import dfnb_fake.models.unused\n")  # a plain import counts too
    assert "dfnb_fake.models.unused" in dependencies(["dfnb_fake.models.a"])


def test_default_key_covers_the_models_own_code_only(tmp_path):
    deps = dependencies(["dfnb.models.backbones", "dfnb.engine"])
    assert {"dfnb.models.backbones", "dfnb.engine.trainer", "dfnb.engine.checkpoint"} <= set(deps)
    assert not any(d.startswith(("dfnb.models.prle", "dfnb.models.dadf", "dfnb.models.focus")) for d in deps)
    assert "dfnb.data.render" in dependencies(["dfnb.models.prle.exploit"])  # a lazy import in a method
    a = train_seeded("toy_cnn", Tiny(), Tiny(8, 1), seed=0, cache=tmp_path, **FIT)
    mods = json.loads((a.path / "key.json").read_text())["code_modules"]
    assert "dfnb.models.backbones" in mods and "dfnb.models.dadf.rga" not in mods


def test_weight_files_are_keyed_by_content_not_path(tmp_path):
    from dfnb.experiments import _files_by_content

    (tmp_path / "a.pt").write_bytes(b"weights")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.pt").write_bytes(b"weights")
    ka = _files_by_content({"p": str(tmp_path / "a.pt"), "n": 3})
    kb = _files_by_content({"p": tmp_path / "sub" / "b.pt", "n": 3})
    assert ka == kb and ka["n"] == 3 and len(ka["p"]["file_sha256"]) == 64
    (tmp_path / "sub" / "b.pt").write_bytes(b"other weights")
    assert _files_by_content({"p": tmp_path / "sub" / "b.pt"}) != {"p": ka["p"]}
    assert _files_by_content({"p": "not/a/file.pt"}) == {"p": "not/a/file.pt"}


def test_corrupt_foreign_or_incomplete_entry_is_an_error_and_kept(tmp_path):
    args = ("toy_cnn", Tiny(), Tiny(8, 1))
    kw = dict(seed=0, cache=tmp_path, **FIT)
    a = train_seeded(*args, **kw)
    mp, kj = a.path / "model.pt", a.path / "key.json"
    good = mp.read_bytes()
    mp.write_bytes(b"garbage, not a checkpoint")
    with pytest.raises(CacheError, match=rf"corrupt experiment cache entry {re.escape(str(mp))}: .*delete"):
        train_seeded(*args, **kw)
    assert mp.read_bytes() == b"garbage, not a checkpoint"  # never retrained over
    # loaded with weights_only=True: an arbitrary pickled object is refused
    torch.save({"state_dict": a.model.state_dict(), "format": "dfnb-experiment-1", "x": Evil()}, mp)
    with pytest.raises(CacheError, match=re.escape(str(mp))):
        train_seeded(*args, **kw)
    mp.write_bytes(good)

    material = json.loads(kj.read_text())
    kj.write_text(json.dumps({**material, "seed": 5}))
    with pytest.raises(CacheError, match=rf"{re.escape(str(kj))} does not match .*seed"):
        train_seeded(*args, **kw)
    kj.write_text(json.dumps(material))
    assert train_seeded(*args, **kw).cached

    (a.path / "history.json").rename(tmp_path / "history.json")
    with pytest.raises(CacheError, match=rf"missing {re.escape(str(a.path / 'history.json'))}"):
        train_seeded(*args, **kw)
    assert mp.read_bytes() == good and kj.exists()


def test_killed_training_leaves_no_entry_and_the_next_call_completes_it(tmp_path):
    cache = tmp_path / "cache"
    script = (f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
              "from test_experiments import Tiny, FIT\n"
              "from dfnb.experiments import train_seeded\n"
              f"train_seeded('toy_cnn', Tiny(8, 0, delay=0.25), Tiny(8, 1), seed=0, cache={str(cache)!r}, "
              "**{**FIT, 'epochs': 3})\n")
    (cache / "toy_cnn").mkdir(parents=True)
    (cache / "toy_cnn" / "notes.txt").write_text("not the module's")
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not list((cache / "toy_cnn").glob(".*.tmp-*")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "the training subprocess never started"
            time.sleep(0.05)
        time.sleep(0.5)  # inside fit: 8 items x 3 epochs x 0.25 s
        assert proc.poll() is None, "training finished before it could be interrupted"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    names = sorted(p.name for p in (cache / "toy_cnn").iterdir())
    assert names == sorted(["notes.txt", f".{names[0][1:21]}.tmp-{proc.pid}"]), names
    key = names[0][1:21]

    e = train_seeded("toy_cnn", Tiny(8, 0), Tiny(8, 1), seed=0, cache=cache, **{**FIT, "epochs": 3})
    assert e.key == key and not e.cached
    assert sorted(p.name for p in e.path.iterdir()) == ["history.json", "key.json", "meta.json", "model.pt"]
    # the dead process's temporary folder is gone, what the module did not make is kept
    assert sorted(p.name for p in (cache / "toy_cnn").iterdir()) == sorted(["notes.txt", key])
    assert train_seeded("toy_cnn", Tiny(8, 0), Tiny(8, 1), seed=0, cache=cache, **{**FIT, "epochs": 3}).cached


def test_transform_needs_a_key_and_fingerprint_rules(bench, tmp_path):
    tr, va = bench
    with pytest.raises(ValueError, match="the transform must be described"):
        train_seeded("toy_cnn", tr, va, seed=0, cache=tmp_path, transform=lambda b, g: b, **FIT)
    with pytest.raises(ValueError, match="transform_key must be JSON-serialisable"):
        train_seeded("toy_cnn", tr, va, seed=0, cache=tmp_path, transform=lambda b, g: b, transform_key={1, 2}, **FIT)
    with pytest.raises(TypeError, match=r"unknown fit arguments \['epoch'\]"):
        train_seeded("toy_cnn", tr, va, seed=0, cache=tmp_path, epoch=1, batch_size=4, lr=1e-2)
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written

    class Plain(torch.utils.data.Dataset):
        def __len__(self):
            return 1

    for obj, name in ((object(), "builtins.object "), (Plain(), r"test_experiments\..*\.Plain ")):
        with pytest.raises(TypeError, match=rf"cannot fingerprint a {name}.*`fingerprint` attribute"):
            fingerprint(obj)
    assert fingerprint(None) == "none" and fingerprint(Tiny(8, 3)) == "tiny-8-3"
    again = data.FaceForgeryDataset(tr.root)
    assert fingerprint(again) == fingerprint(tr) != fingerprint(va)
    assert fingerprint(data.FaceForgeryDataset(tr.root, return_source=True)) != fingerprint(tr)
    with pytest.raises(TypeError, match="item transform"):
        fingerprint(data.FaceForgeryDataset(tr.root, transform=lambda d: d))
    sub = torch.utils.data.Subset
    assert fingerprint(sub(tr, [0, 1])) == fingerprint(sub(again, [0, 1])) != fingerprint(sub(tr, [0, 2]))
    cat = torch.utils.data.ConcatDataset
    assert fingerprint(cat([tr, va])) != fingerprint(cat([va, tr]))
    with pytest.raises(TypeError, match="Plain"):
        fingerprint(sub(Plain(), [0]))


def test_run_manifest_lists_the_experiments_of_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("DFNB_ROOT", str(tmp_path))
    args, kw = ("toy_cnn", Tiny(), Tiny(8, 1)), dict(cache=tmp_path / "c", **FIT)
    a = train_seeded(*args, seed=0, **kw)  # before the run: not the run's
    run = runner.start("01_toy", results_dir=str(tmp_path / "run"), profile="smoke", seed=0)
    assert used() == []
    assert train_seeded(*args, seed=0, **kw).cached
    train_seeded(*args, seed=0, **kw)  # listed once
    b = train_seeded(*args, seed=1, **{**kw, "cache": False})
    run.finish()
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["experiments"] == [
        {"name": "toy_cnn", "key": a.key, "seed": 0, "cached": True, "path": f"c/toy_cnn/{a.key}"},
        {"name": "toy_cnn", "key": b.key, "seed": 1, "cached": False, "path": None},
    ]
    reset_used()
    assert used() == []


def test_export_writes_a_checkpoint_that_load_model_rebuilds(bench, tmp_path):
    from dfnb.engine import load_model

    tr, va = bench
    exp = train_seeded("toy_cnn", tr, va, seed=0, cache=tmp_path / "c", **FIT)
    path = exp.export(tmp_path / "main.pt")
    assert _state_equal(load_model(path), exp.model)
    with pytest.raises(FileExistsError, match="refuses to overwrite"):
        exp.export(path)


def test_cached_result_computes_once_per_material(tmp_path):
    from dfnb.experiments import cached_result

    calls = []
    f = lambda: calls.append(1) or {"v": 1.5}  # noqa: E731
    assert cached_result("timing", {"a": 1}, f, cache=tmp_path) == {"v": 1.5}
    assert cached_result("timing", {"a": 1}, f, cache=tmp_path) == {"v": 1.5} and len(calls) == 1
    assert cached_result("timing", {"a": 2}, f, cache=tmp_path) == {"v": 1.5} and len(calls) == 2
    assert cached_result("timing", {"a": 1}, f, cache=False) == {"v": 1.5} and len(calls) == 3
    path, = [p for p in (tmp_path / "_results" / "timing").glob("*.json")
             if json.loads(p.read_text())["material"]["material"] == {"a": 1}]
    stored = json.loads(path.read_text())
    stored["material"]["material"] = {"a": 3}
    path.write_text(json.dumps(stored))
    with pytest.raises(CacheError, match="another result's material"):
        cached_result("timing", {"a": 1}, f, cache=tmp_path)
    with pytest.raises(ValueError, match="plain name"):
        cached_result("../x", {}, f, cache=tmp_path)


def test_cached_arrays_round_trip_once_per_material(tmp_path):
    import numpy as np
    import torch

    from dfnb.experiments import cached_arrays

    calls = []

    def f():
        calls.append(1)
        return {"maps": torch.arange(6, dtype=torch.float16).reshape(2, 3), "n": np.array([3])}

    a = cached_arrays("maps", {"m": "k1"}, f, cache=tmp_path)
    b = cached_arrays("maps", {"m": "k1"}, f, cache=tmp_path)
    assert len(calls) == 1 and a["maps"].dtype == np.float16 and np.array_equal(a["maps"], b["maps"])
    cached_arrays("maps", {"m": "k2"}, f, cache=tmp_path)
    assert len(calls) == 2 and not list((tmp_path / "_results" / "maps").glob(".*"))
    npz, = [p for p in (tmp_path / "_results" / "maps").glob("*.npz")][:1]
    npz.write_bytes(b"not an npz")
    with pytest.raises(CacheError, match="corrupt cached arrays"):
        for _ in range(2):
            cached_arrays("maps", {"m": "k1"}, f, cache=tmp_path)
            cached_arrays("maps", {"m": "k2"}, f, cache=tmp_path)
