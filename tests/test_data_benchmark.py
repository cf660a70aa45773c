"""Synthetic benchmarks: identity-disjoint splits, byte-identical regeneration, cache, Dataset, CLI."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dfnb.data import BENCHMARKS, FaceForgeryDataset, SelfBlended, load_benchmark
from dfnb.data.benchmark import count_faces, identity_ids, write_split

KW = dict(size=64, n_videos=2, frames_per_video=2)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def ffpp_raw(cache):
    return load_benchmark("ffpp-syn", "test", quality="raw", root=cache, progress=False, **KW)


def test_sample_contract(ffpp_raw):
    ds = ffpp_raw
    assert len(ds) == count_faces("ffpp-syn", "test", 2, 2) == 2 * 2 * 5
    assert ds.summary() == {"real": 4, "faceswap": 4, "deepfakes": 4, "face2face": 4, "neuraltextures": 4, "skipped": 0}
    for i in range(len(ds)):
        x = ds[i]
        assert x["image"].shape == (3, 64, 64) and x["image"].dtype == torch.float32
        assert x["mask"].shape == (1, 64, 64) and x["mask"].dtype == torch.float32
        assert 0 <= x["image"].min() and x["image"].max() <= 1 and 0 <= x["mask"].min() and x["mask"].max() <= 1
        assert x["label"].dtype == torch.long and int(x["label"]) == int(x["method"] != "real")
        assert isinstance(x["video_id"], str) and x["dataset"] == "ffpp-syn"
        assert isinstance(x["identity"], int) and isinstance(x["frame"], int)
        if x["method"] == "real":
            assert x["mask"].max() == 0
        else:
            assert x["mask"].max() > 0.9
    batch = torch.utils.data.default_collate([ds[0], ds[5]])
    assert batch["image"].shape == (2, 3, 64, 64) and isinstance(batch["method"], list)


def test_fake_equals_its_pristine_source_where_mask_is_zero(ffpp_raw):
    ds = FaceForgeryDataset(ffpp_raw.root, return_source=True)
    n = 0
    for i in range(len(ds)):
        x = ds[i]
        if x["method"] == "real":
            continue
        m = x["mask"][0]
        diff = (x["image"] - x["source"]).abs().amax(0)
        assert diff[m == 0].max() == 0
        assert diff[m == 1].mean() > 0.01
        n += 1
    assert n == 16


def test_load_split_hands_out_pristine_sources_for_synthetic_sets_and_ffpp_only(ffpp_raw, cache, monkeypatch, tmp_path):
    from dfnb.data import load_split

    monkeypatch.setenv("DFNB_DATA_CACHE", str(cache))  # the module's cache: ffpp_raw is reused, not rendered
    name, ds = load_split("ffpp-syn", "test", quality="raw", return_source=True, **KW)
    assert name == "ffpp-syn" and ds.root == ffpp_raw.root and ds.return_source
    fake = next(i for i in range(len(ds)) if ds[i]["method"] != "real")
    x = ds[fake]
    assert (x["image"] - x["source"]).abs().amax(0)[x["mask"][0] == 1].mean() > 0.01
    assert "source" not in load_split("ffpp-syn", "test", quality="raw", **KW)[1][fake]
    for real in ("celebdf", "dfdc", "dfo"):  # no frame-aligned pristine video: refused before any file is read
        with pytest.raises(ValueError, match=f"return_source=True, but {real} has no frame-aligned pristine"):
            load_split("celebdf-syn", "test", real=real, root=tmp_path, return_source=True)


def test_same_seed_gives_byte_identical_data(tmp_path):
    def digest(d):
        h = hashlib.sha256()
        for p in sorted(Path(d).rglob("*")):
            if p.is_file() and p.name != "meta.json":
                h.update(p.name.encode() + p.read_bytes())
        return h.hexdigest()

    a = write_split(tmp_path / "a", "fmld-syn", "val", seed=3, progress=False, **KW)
    b = write_split(tmp_path / "b", "fmld-syn", "val", seed=3, progress=False, workers=2, **KW)  # parallel: same bytes
    write_split(tmp_path / "c", "fmld-syn", "val", seed=4, progress=False, **KW)
    assert a["n_faces"] == b["n_faces"] == 16
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
    with pytest.raises(FileExistsError):
        write_split(tmp_path / "a", "fmld-syn", "val", seed=3, progress=False, **KW)


def test_splits_share_no_identity(cache):
    for name in BENCHMARKS:
        ids = {s: set(identity_ids(name, s, 500)) for s in ("train", "val", "test")}
        assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    sets = {}
    for split in ("train", "val", "test"):
        ds = load_benchmark("dftimit-syn", split, root=cache, progress=False, **KW)
        rows = ds.rows
        sets[split] = {r["identity"] for r in rows} | {int(r["source_identity"]) for r in rows if int(r["source_identity"]) >= 0}
        # swap sources come from the same split and are never the target itself
        assert all(int(r["source_identity"]) != r["identity"] for r in rows if r["method"].startswith("gan"))
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"] and not sets["val"] & sets["test"]


def test_cache_is_reused_and_keyed_by_params(cache, monkeypatch):
    a = load_benchmark("dfd-syn", "test", root=cache, progress=False, **KW)
    stamp = (a.root / "meta.json").stat().st_mtime_ns
    b = load_benchmark("dfd-syn", "test", root=cache, progress=False, **KW)
    assert b.root == a.root and (b.root / "meta.json").stat().st_mtime_ns == stamp
    c = load_benchmark("dfd-syn", "test", root=cache, progress=False, seed=1, **KW)
    assert c.root != a.root
    monkeypatch.setenv("DFNB_DATA_CACHE", str(cache / "env"))
    d = load_benchmark("dfd-syn", "test", progress=False, methods=["real"], **KW)
    assert str(d.root).startswith(str(cache / "env")) and d.summary() == {"real": 4, "skipped": 0}


def test_cross_domain_sets_differ_from_ffpp(cache):
    means = {}
    for name in ("ffpp-syn", "celebdf-syn", "dfdc-syn", "dfo-syn", "wdf-syn"):
        ds = load_benchmark(name, "test", root=cache, progress=False, methods=["real"], size=64, n_videos=6,
                            frames_per_video=1)
        imgs = np.stack([ds.load_rgb(i) for i in range(len(ds))]).astype(float)
        # high-frequency energy: a crude fingerprint of renderer style and post-processing
        hf = np.abs(np.diff(imgs, axis=2)).mean()
        means[name] = (imgs.mean(), hf)
    assert len({round(v[1], 1) for v in means.values()}) >= 4, means
    dfo = load_benchmark("dfo-syn", "test", root=cache, progress=False, **KW)
    assert any(r["post"] for r in dfo.rows)  # DF-1.0 analogue carries perturbations


def test_self_blended_wrapper(ffpp_raw):
    sb = SelfBlended(ffpp_raw, seed=0)
    assert len(sb) == 4
    x = sb[0]
    assert x["method"] == "sbi" and int(x["label"]) == 1 and x["mask"].max() > 0
    m = x["mask"][0]
    assert (x["image"] - x["source"]).abs().amax(0)[m == 0].max() == 0
    assert torch.equal(sb[0]["image"], x["image"])


def test_clear_errors(cache, tmp_path):
    with pytest.raises(KeyError, match="unknown benchmark"):
        load_benchmark("ffpp", "test", root=cache)
    with pytest.raises(ValueError, match="split"):
        load_benchmark("ffpp-syn", "dev", root=cache)
    with pytest.raises(ValueError, match="quality"):
        load_benchmark("ffpp-syn", "test", quality="c99", root=cache)
    with pytest.raises(ValueError, match="unknown methods"):
        load_benchmark("ffpp-syn", "test", methods=["real", "bogus"], root=cache)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FaceForgeryDataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="index.csv"):
        FaceForgeryDataset(tmp_path / "empty")


def test_corrupt_cached_image_is_a_clear_error(tmp_path):
    write_split(tmp_path / "s", "ffpp-syn", "val", progress=False, methods=["real"], size=64, n_videos=1,
                frames_per_video=1)
    ds = FaceForgeryDataset(tmp_path / "s")
    (tmp_path / "s" / ds.rows[0]["image"]).write_bytes(b"not a png")
    with pytest.raises(ValueError, match="corrupt"):
        ds[0]


def test_cli_synth(tmp_path, capsys):
    from dfnb.cli import main

    rc = main(["data", "synth", "--out", str(tmp_path / "o"), "--name", "fmld-syn", "--n", "3", "--seed", "1",
               "--size", "48", "--frames", "1"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["splits"]) == {"train", "val", "test"}
    for s in ("train", "val", "test"):
        ds = FaceForgeryDataset(tmp_path / "o" / s)
        assert len(ds) >= 4 and ds[0]["image"].shape == (3, 48, 48)
    assert main(["data", "list"]) == 0


def test_cli_synth_never_replaces_what_it_did_not_write(tmp_path, capsys):
    from dfnb.cli import main

    args = ["data", "synth", "--out", str(tmp_path / "U"), "--name", "ffpp-syn", "--n", "3", "--size", "32",
            "--frames", "1", "--methods", "real"]
    (tmp_path / "U" / "test").mkdir(parents=True)
    (tmp_path / "U" / "test" / "labels.csv").write_text("the user's own file")
    for extra in ([], ["--overwrite"]):  # checked before any split is written, with or without --overwrite
        assert main(args + extra) == 2
        assert "not written by dfnb" in capsys.readouterr().err
        assert sorted(p.name for p in (tmp_path / "U").iterdir()) == ["test"]
    assert (tmp_path / "U" / "test" / "labels.csv").read_text() == "the user's own file"
    (tmp_path / "U" / "test" / "labels.csv").unlink()
    (tmp_path / "U" / "test").rmdir()
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2 and "pass --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    (tmp_path / "f").write_text("x")
    assert main(args[:3] + [str(tmp_path / "f")] + args[4:]) == 2 and "is a file" in capsys.readouterr().err


def test_overwrite_replaces_and_stale_partial_cache_is_regenerated(tmp_path):
    d = tmp_path / "s"
    kw = dict(progress=False, methods=["real"], size=48, n_videos=1, frames_per_video=1)
    write_split(d, "ffpp-syn", "val", **kw)
    write_split(d, "ffpp-syn", "val", overwrite=True, seed=5, **kw)
    assert json.loads((d / "meta.json").read_text())["params"]["seed"] == 5
    assert not list(tmp_path.glob(".s.*"))  # no temporary or trash folders left behind
    ds = load_benchmark("ffpp-syn", "val", root=tmp_path / "c", **kw)
    (ds.root / "meta.json").unlink()  # a half-written cache (e.g. copied without its meta)
    again = load_benchmark("ffpp-syn", "val", root=tmp_path / "c", **kw)
    assert again.root == ds.root and (again.root / "meta.json").exists()


@pytest.mark.parametrize("bad, message", [
    (["--name", "nope"], "--name: unknown benchmark 'nope'"),
    (["--quality", "xx"], "--quality 'xx'"),
    (["--methods", "real,bogus"], "--methods: unknown ['bogus']"),
    (["--size", "0"], "--size must be >= 8, got 0"),
    (["--frames", "0"], "--frames must be >= 1, got 0"),
    (["--n", "0"], "--n must be >= 1, got 0"),
    (["--n", "10000000"], "pass --yes to go on"),
])
def test_cli_synth_bad_input_is_one_line_before_any_work(tmp_path, capsys, bad, message):
    from dfnb.cli import main

    assert main(["data", "synth", "--out", str(tmp_path / "o")] + bad) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
    with pytest.raises((ValueError, KeyError)):  # --debug: the library's own error
        main(["--debug", "data", "synth", "--out", str(tmp_path / "o")] + bad)


def test_an_interrupted_split_leaves_no_temporary_folder(tmp_path, monkeypatch):
    """Ctrl-C in the middle of `dfnb data synth` (or of the real-data loader): nothing half-written stays."""
    from dfnb.data import benchmark

    def one_then_ctrl_c(kw, n, workers):
        yield next(benchmark.iter_split(**kw))
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark, "_samples", one_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        write_split(tmp_path / "s", "ffpp-syn", "val", progress=False, size=48, n_videos=2, frames_per_video=1)
    assert list(tmp_path.iterdir()) == []
