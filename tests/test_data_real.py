"""Real data-set loaders on small fixture trees (tiny videos written with OpenCV)."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from dfnb.data import load_real
from dfnb.data.real import crop_face, list_items, read_frames, sample_indices

W = 160


def _face_frames(n=5, shift=3):
    face = cv2.resize(skimage.data.astronaut()[10:250, 110:330], (104, 114))
    out = []
    for t in range(n):
        fr = np.full((W, W, 3), 70, np.uint8)
        y, x = 18 + t % 2, 26 + shift * t
        fr[y:y + 114, x:x + 104] = face
        out.append(fr)
    return out


def _write_video(path: Path, frames):
    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, W))
    assert w.isOpened()
    for f in frames:
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()


def _no_face(n=4):
    g = np.linspace(0, 255, W, dtype=np.uint8)
    return [np.stack([np.tile(g, (W, 1))] * 3, -1) for _ in range(n)]


@pytest.fixture(scope="module")
def ffpp(tmp_path_factory):
    root = tmp_path_factory.mktemp("ffpp")
    orig = root / "original_sequences/youtube/c23/videos"
    _write_video(orig / "000.avi", _face_frames())
    _write_video(orig / "001.avi", _no_face())  # a video with no face
    orig.joinpath("002.avi").write_bytes(b"\x00garbage" * 50)  # a corrupt video
    _write_video(orig / "003.avi", _face_frames(6))
    man = root / "manipulated_sequences/Deepfakes/c23/videos"
    _write_video(man / "000_003.avi", _face_frames())
    _write_video(man / "003_000.avi", _face_frames(6))
    mask = [np.zeros((W, W, 3), np.uint8) for _ in range(5)]
    for m in mask:
        m[60:110, 50:110] = 255
    _write_video(root / "manipulated_sequences/Deepfakes/masks/videos/000_003.avi", mask)
    for m in ("Face2Face", "FaceSwap", "NeuralTextures"):
        (root / "manipulated_sequences" / m / "c23/videos").mkdir(parents=True)
    (root / "splits").mkdir()
    (root / "splits/test.json").write_text(json.dumps([["000", "003"], ["001", "002"]]))
    (root / "splits/train.json").write_text(json.dumps([["900", "901"]]))
    return root


def test_sample_indices():
    assert sample_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert sample_indices(3, 8).tolist() == [0, 1, 2]
    assert sample_indices(0, 4).tolist() == []


def test_read_frames_and_crop(ffpp):
    idx, frames = read_frames(str(ffpp / "original_sequences/youtube/c23/videos/000.avi"), 3)
    assert idx == [0, 2, 4] and frames[0].shape == (W, W, 3) and frames[0].dtype == np.uint8
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 90:110] = 255
    mask = np.zeros((50, 100), np.uint8)  # half-resolution mask frame, warped the same way
    mask[20:30, 45:55] = 255
    crop, mc, M = crop_face(img, (90, 40, 20, 20), size=26, margin=1.3, mask=mask)
    assert crop.shape == (26, 26, 3) and mc.shape == (26, 26)
    assert crop[13, 13].min() == 255 and crop[0, 0].max() == 0  # face box centred, margin 1.3 shows border
    assert mc[13, 13] == 255 and mc[0, 0] == 0
    assert np.allclose(M @ [100, 50, 1], [13, 13])


def test_ffpp_layout_with_skips_counted(ffpp, tmp_path):
    with pytest.warns(UserWarning, match="skipped 2 videos"):
        ds = load_real("ffpp", ffpp, split="test", frames_per_video=3, size=64, methods=["real", "deepfakes"],
                       cache=tmp_path, progress=False)
    s = ds.summary()
    assert s["real"] == 6 and s["deepfakes"] == 6  # 000 and 003 (3 frames each); 000_003 and 003_000
    reasons = {Path(x["path"]).name: x["reason"] for x in ds.skipped if "frame" not in x}
    assert "unreadable" in reasons["002.avi"] and "no face" in reasons["001.avi"]
    x = ds[0]
    assert x["image"].shape == (3, 64, 64) and x["mask"].max() == 0 and x["dataset"] == "ffpp"
    fakes = [i for i, r in enumerate(ds.rows) if r["video_id"] == "000_003"]
    m = ds[fakes[0]]["mask"][0]
    assert m.max() > 0.9 and m[0, 0] == 0  # the mask video frame, warped like the face
    nomask = [i for i, r in enumerate(ds.rows) if r["video_id"] == "003_000"]
    assert ds.rows[nomask[0]]["post"] == "no-mask"
    # cached: the second call does not re-read the videos
    again = load_real("ffpp", ffpp, split="test", frames_per_video=3, size=64, methods=["real", "deepfakes"],
                      cache=tmp_path, progress=False)
    assert again.root == ds.root and len(again.skipped) == len(ds.skipped)


def test_missing_or_malformed_roots(ffpp, tmp_path):
    with pytest.raises(FileNotFoundError, match="root.*Expected layout.*original_sequences"):
        load_real("ffpp", tmp_path / "nope", cache=tmp_path)
    with pytest.raises(FileNotFoundError, match="parameter root is None"):
        load_real("celebdf", None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="Celeb-real"):
        load_real("celebdf", tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="split file"):
        list_items("ffpp", ffpp, split="val")
    with pytest.raises(FileNotFoundError, match="FaceShifter"):
        list_items("ffpp", ffpp, split="test", methods=["faceshifter"])
    with pytest.raises(KeyError, match="unknown real data set"):
        list_items("ff", ffpp)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "dataset.json").write_text("{not json")
    with pytest.raises(ValueError):
        list_items("dfdcp", tmp_path / "bad")


def test_all_videos_without_faces_is_an_error(tmp_path):
    root = tmp_path / "cdf"
    _write_video(root / "Celeb-real/id0_0000.avi", _no_face())
    (root / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0000.avi\n")
    with pytest.raises(RuntimeError, match="every one of 1 videos was skipped"):
        load_real("celebdf", root, cache=tmp_path / "c", progress=False, size=32, frames_per_video=2)
    from dfnb.cli import main

    assert main(["data", "real", "--name", "celebdf", "--root", str(root), "--out", str(tmp_path / "c2"),
                 "--size", "32", "--frames", "2"]) == 2  # one line on the command line, no traceback


def test_celebdf_list_convention_and_splits(tmp_path):
    root = tmp_path / "cdf"
    _write_video(root / "Celeb-real/id0_0000.avi", _face_frames(3))
    _write_video(root / "YouTube-real/00001.avi", _face_frames(3))
    _write_video(root / "Celeb-synthesis/id0_id1_0000.avi", _face_frames(3))
    (root / "List_of_testing_videos.txt").write_text("1 YouTube-real/00001.avi\n0 Celeb-synthesis/id0_id1_0000.avi\n")
    test = list_items("celebdf", root, "test")
    assert sorted((Path(i.path).name, i.label, i.method) for i in test) == [
        ("00001.avi", 0, "real"), ("id0_id1_0000.avi", 1, "celebdf")]
    assert [Path(i.path).name for i in list_items("celebdf", root, "train")] == ["id0_0000.avi"]
    ds = load_real("celebdf", root, frames_per_video=2, size=48, cache=tmp_path / "c", progress=False)
    assert ds.summary() == {"real": 2, "celebdf": 2, "skipped": 0}


def test_other_layouts(tmp_path):
    # DFDC training part + test labels
    r = tmp_path / "dfdc"
    _write_video(r / "dfdc_train_part_0/a.avi", _face_frames(2))
    _write_video(r / "dfdc_train_part_0/b.avi", _face_frames(2))
    (r / "dfdc_train_part_0/metadata.json").write_text(json.dumps({"a.avi": {"label": "FAKE"}, "b.avi": {"label": "REAL"}}))
    _write_video(r / "test/videos/c.avi", _face_frames(2))
    (r / "test/labels.csv").write_text("filename,label\nc.avi,1\n")
    assert [(i.label, i.method) for i in list_items("dfdc", r, "train")] == [(1, "dfdc"), (0, "real")]
    assert [(i.label, i.method) for i in list_items("dfdc", r, "test")] == [(1, "dfdc")]
    # DFDC preview
    r = tmp_path / "dfdcp"
    (r).mkdir()
    (r / "dataset.json").write_text(json.dumps({"method_A/1/x.mp4": {"label": "fake", "set": "test"},
                                                "original_videos/1/y.mp4": {"label": "real", "set": "train"}}))
    assert [(i.method, i.label) for i in list_items("dfdcp", r, "test")] == [("dfdcp_method_a", 1)]
    # WildDeepfake: leaf folders of png frames are videos
    r = tmp_path / "wdf"
    for lab in ("real", "fake"):
        d = r / f"{lab}_test/v1/s1"
        d.mkdir(parents=True)
        for t, f in enumerate(_face_frames(3)):
            cv2.imwrite(str(d / f"{t}.png"), f)
    ds = load_real("wdf", r, split="test", frames_per_video=2, size=48, cache=tmp_path / "c", progress=False)
    assert ds.summary() == {"real": 2, "wdf": 2, "skipped": 0}
    # FMLD: pre-aligned images with masks, no detection
    r = tmp_path / "fmld"
    for sub in ("real", "fake", "mask"):
        (r / "test" / sub).mkdir(parents=True)
    cv2.imwrite(str(r / "test/real/a.png"), _no_face(1)[0])
    cv2.imwrite(str(r / "test/fake/b.png"), _no_face(1)[0])
    m = np.zeros((W, W), np.uint8)
    m[:, : W // 2] = 255
    cv2.imwrite(str(r / "test/mask/b.png"), m)
    ds = load_real("fmld", r, split="test", size=32, cache=tmp_path / "c", progress=False)
    fk = [i for i in range(len(ds)) if ds.rows[i]["label"] == 1][0]
    assert ds[fk]["mask"][0, :, :14].min() > 0.9 and ds[fk]["mask"][0, :, 18:].max() < 0.1
    # DF-TIMIT and DeeperForensics and DFD listings
    r = tmp_path / "timit"
    _write_video(r / "higher_quality/fadg0/sa1.avi", _face_frames(2))
    _write_video(r / "lower_quality/fadg0/sa1.avi", _face_frames(2))
    assert sorted(i.method for i in list_items("dftimit", r)) == ["dftimit_hq", "dftimit_lq"]
    r = tmp_path / "dfo"
    _write_video(r / "manipulated_videos/end_to_end/000_M101.avi", _face_frames(2))
    (r / "lists/splits").mkdir(parents=True)
    (r / "lists/splits/test.txt").write_text("000_M101.mp4\n")
    _write_video(r / "real/000.avi", _face_frames(2))
    assert sorted(i.method for i in list_items("dfo", r, "test")) == ["dfo_end_to_end", "real"]
    r = tmp_path / "dfd"
    _write_video(r / "original_sequences/actors/c23/videos/01__walk.avi", _face_frames(2))
    _write_video(r / "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walk.avi", _face_frames(2))
    assert sorted(i.method for i in list_items("dfd", r)) == ["dfd", "real"]  # not FF++'s Deepfakes
    from dfnb.data import missing_quality  # a c23-only DFD: chapter 31 tests it at HQ and says so

    assert missing_quality("dfd", r, "lq") == f"dfd under {r} has no LQ (c40) videos"
    with pytest.raises(ValueError, match="no official 'train' split"):
        list_items("dfd", r, "train")


def test_ffpp_split_files_by_path_or_at_the_root(ffpp, tmp_path):
    import shutil

    root = tmp_path / "ff"
    shutil.copytree(ffpp, root)
    shutil.move(str(root / "splits"), str(tmp_path / "my_splits"))
    with pytest.raises(FileNotFoundError, match="FaceForensics repository"):
        list_items("ffpp", root, "test")
    by_path = list_items("ffpp", root, "test", splits_dir=tmp_path / "my_splits")
    assert [i.video_id for i in by_path] == [i.video_id for i in list_items("ffpp", ffpp, "test")]
    shutil.copy(tmp_path / "my_splits" / "test.json", root / "test.json")
    assert list_items("ffpp", root, "test") == by_path


def test_dftimit_counts_no_head_rotation_clip_and_has_no_train_split(tmp_path):
    r = tmp_path / "timit"
    _write_video(r / "higher_quality/fadg0/sa1.avi", _face_frames(2))
    for clip in ("sa1", "head", "head2"):
        d = r / "real/fadg0/video" / clip
        d.mkdir(parents=True)
        cv2.imwrite(str(d / "001.png"), _face_frames(1)[0])
    reals = [i.video_id for i in list_items("dftimit", r) if i.label == 0]
    assert reals == ["real/fadg0/sa1"]
    with pytest.raises(ValueError, match="no official 'train' split"):
        list_items("dftimit", r, "train")


def test_cli_real_and_self_blend_on_real_crops(ffpp, tmp_path, capsys):
    from dfnb.cli import main
    from dfnb.data import FaceForgeryDataset, SelfBlended

    with pytest.warns(UserWarning):
        rc = main(["data", "real", "--name", "ffpp", "--root", str(ffpp), "--out", str(tmp_path), "--frames", "2",
                   "--size", "64"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["real"] == 4 and out["summary"]["skipped"] >= 2
    ds = FaceForgeryDataset(out["root"])
    sb = SelfBlended(ds)  # template landmarks stored with real crops make SBI work on real data
    x = sb[0]
    assert x["mask"].max() > 0 and (x["image"] - x["source"]).abs().amax(0)[x["mask"][0] == 0].max() == 0


def test_load_split_synthetic_by_default_real_when_a_root_is_given(ffpp, tmp_path, monkeypatch):
    from dfnb.data import load_benchmark, load_split

    monkeypatch.setenv("DFNB_DATA_CACHE", str(tmp_path / "syn"))
    monkeypatch.setenv("DFNB_REAL_CACHE", str(tmp_path / "real"))
    kw = dict(size=32, n_videos=2, frames_per_video=1)
    name, ds = load_split("ffpp-syn", "val", **kw)
    assert name == "ffpp-syn" and ds.root == load_benchmark("ffpp-syn", "val", progress=False, **kw).root
    with pytest.warns(UserWarning, match="skipped"):
        name, ds = load_split("ffpp-syn", "test", real="ffpp", root=ffpp, size=32, frames_per_video=2,
                              real_methods=["real", "deepfakes"])
    assert name == "ffpp (real)" and ds.summary()["deepfakes"] == 4 and ds[0]["dataset"] == "ffpp"
    with pytest.raises(FileNotFoundError, match="root"):  # c40 folder absent: the layout error names the root
        load_split("ffpp-syn", "test", real="ffpp", root=ffpp, quality="lq", size=32)
    with pytest.raises(ValueError, match="no real data-set name"):
        load_split("ffpp-syn", "test", root=ffpp)
    with pytest.raises(ValueError, match="quality"):
        load_split("ffpp-syn", "test", real="ffpp", root=ffpp, quality="c23")


def test_changed_videos_under_the_same_root_are_read_again(tmp_path):
    root = tmp_path / "ffpp"
    orig = root / "original_sequences/youtube/c23/videos"
    _write_video(orig / "000.avi", _face_frames())
    (root / "manipulated_sequences/Deepfakes/c23/videos").mkdir(parents=True)
    (root / "splits").mkdir()
    (root / "splits/test.json").write_text(json.dumps([["000", "001"]]))
    kw = dict(split="test", frames_per_video=2, size=48, methods=["real"], cache=tmp_path / "c", progress=False)
    a = load_real("ffpp", root, **kw)
    assert load_real("ffpp", root, **kw).root == a.root  # unchanged: the cached crops
    _write_video(orig / "000.avi", [(f * 0.6).astype(np.uint8) for f in _face_frames()])  # same name, darker
    b = load_real("ffpp", root, **kw)
    assert b.root != a.root
    assert np.abs(b[0]["image"].numpy() - a[0]["image"].numpy()).mean() > 0.05


def test_truncated_frames_are_skipped_and_counted_not_read(tmp_path):
    from dfnb.data.real import VideoError, read_frames

    ok = cv2.imencode(".jpg", _face_frames(1)[0])[1].tobytes()
    d = tmp_path / "v"
    d.mkdir()
    (d / "0.jpg").write_bytes(ok)
    (d / "1.jpg").write_bytes(ok[: len(ok) // 2])
    assert len(read_frames(str(d / "0.jpg"), 1)[1]) == 1
    with pytest.raises(VideoError, match="JPEG is truncated"):
        read_frames(str(d / "1.jpg"), 1)
    with pytest.raises(VideoError, match="1.jpg: the JPEG is truncated"):
        read_frames(str(d), 2)


def test_doubtful_boxes_by_hand():
    from dfnb.data.facebox import doubtful

    face = (0, 0, 10, 10, 1.0)
    frames = [[face], [(2, 0, 10, 10, 1.0)], [(40, 40, 4, 4, 1.0)], [], [face, (50, 50, 5, 5, 1.0)],
              [(0, 0, 10, 10, 0.3)], [(0, 0, 16, 16, 1.0)]]
    why = doubtful(frames)
    assert why[:2] == [None, None] and why[3] is None  # sure boxes; a frame with no box is the loader's skip
    assert why[2].startswith("box off the video's face") and "2 candidate boxes" in why[4]
    assert why[5] == "detector score 0.30 < 0.5" and "side x1.60" in why[6]
    assert doubtful([[(40, 40, 4, 4, 1.0)]]) == [None]  # one frame: nothing to compare with


def test_doubtful_and_faceless_frames_are_counted_and_the_detector_named(tmp_path):
    """A frame with no face is skipped and counted; a kept face with a doubtful box is counted; the record
    (meta.json, the warning, the CLI, a run's manifest) names the detector that ran."""
    from dfnb import runner
    from dfnb.data.real import loaded, reset_loaded

    root = tmp_path / "cdf"
    _write_video(root / "Celeb-real/id0_0000.avi", _face_frames(4) + _no_face(2))
    (root / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0000.avi\n")
    reset_loaded()
    with pytest.warns(UserWarning, match=r"with the cascade detector, 0 of them doubtful; skipped 0 videos and 2 frames"):
        ds = load_real("celebdf", root, frames_per_video=6, size=32, cache=tmp_path / "c", progress=False)
    assert len(ds) == 4 and [s["frame"] for s in ds.skipped] == [4, 5]
    assert all(s["reason"] == "no face in frame" for s in ds.skipped)
    assert ds.meta["params"]["detector"] == "cascade" and ds.meta["doubtful"] == []

    def shaky(image):  # the face, plus a far box on the last frame
        box = [(26.0, 18.0, 104.0, 114.0, 0.9)]
        return box + [(0.0, 0.0, 20.0, 20.0, 0.9)] if image[150, 150].mean() > 150 else box

    frames = _face_frames(3)
    frames[2][140:, 140:] = 200
    _write_video(root / "Celeb-real/id0_0001.avi", frames)
    (root / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0001.avi\n")
    with pytest.warns(UserWarning, match="with the shaky detector, 1 of them doubtful"):
        ds = load_real("celebdf", root, frames_per_video=3, size=32, detector=shaky, cache=tmp_path / "c",
                       progress=False)
    (d,) = ds.meta["doubtful"]
    assert d["frame"] == 2 and d["row"] == 2 and d["reason"] == "2 candidate boxes, took the largest"
    assert [r["detector"] for r in loaded()] == ["cascade", "shaky"] and loaded()[1]["doubtful"] == 1
    (tmp_path / "run").mkdir()
    runner.Run("t", {"profile": "smoke"}, tmp_path / "run", glue=False).finish()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert [(r["name"], r["detector"], r["faces"], r["skipped_frames"]) for r in manifest["real_data"]] == [
        ("celebdf", "cascade", 4, 2), ("celebdf", "shaky", 3, 0)]


def test_fakes_without_a_mask_video_are_marked(ffpp, tmp_path):
    """003_000 has no mask video: its all-zero mask is a stand-in, has_mask False (000_003 and reals True)."""
    with pytest.warns(UserWarning):
        ds = load_real("ffpp", ffpp, split="test", frames_per_video=2, size=32, methods=["real", "deepfakes"],
                       cache=tmp_path, progress=False)
    want = {("real", "000"): True, ("real", "003"): True, ("deepfakes", "000_003"): True,
            ("deepfakes", "003_000"): False}
    assert {(r["method"], r["video_id"]): bool(k) for r, k in zip(ds.rows, ds.has_mask)} == want
    assert [bool(ds[i]["has_mask"]) for i in range(len(ds))] == ds.has_mask.tolist()


def test_an_interrupted_load_leaves_no_temporary_folder(ffpp, tmp_path):
    def ctrl_c(image):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load_real("ffpp", ffpp, split="test", frames_per_video=2, size=32, detector=ctrl_c, cache=tmp_path,
                  progress=False)
    assert [p.name for p in (tmp_path / "ffpp").iterdir()] == []


def test_lq_of_a_c23_only_tree_is_a_note_not_a_requirement(ffpp):
    """The ffpp fixture is a c23-only download: a chapter asks missing_quality before its LQ column."""
    from dfnb.data import missing_quality

    assert missing_quality("ffpp", ffpp, "lq") == f"ffpp under {ffpp} has no LQ (c40) videos"
    assert missing_quality("ffpp", ffpp, "hq") is None and missing_quality("ffpp", None, "lq") is None
    with pytest.raises(ValueError, match="quality must be one of"):
        missing_quality("ffpp", ffpp, "c40")


def test_sizes_and_splits_a_set_does_not_have_are_errors(tmp_path):
    """size=0 wrote empty crops, frames_per_video=0 read as 'unreadable', Celeb-DF split='val' and DFDC
    split='val' quietly gave the whole set (Celeb-DF) or its training parts (DFDC)."""
    root = tmp_path / "cdf"
    _write_video(root / "Celeb-real/id0_0000.avi", _face_frames(2))
    (root / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0000.avi\n")
    for kw, msg in (({"size": 0}, "size must be an integer >= 8, got 0"),
                    ({"frames_per_video": 0}, "frames_per_video must be an integer >= 1, got 0"),
                    ({"margin": 0.0}, "margin must be > 0")):
        with pytest.raises(ValueError, match=msg):
            load_real("celebdf", root, cache=tmp_path / "c", progress=False, **kw)
    with pytest.raises(ValueError, match="Celeb-DF v2 has the splits 'test'.*not 'val'"):
        list_items("celebdf", root, "val")
    (tmp_path / "dfdc/test").mkdir(parents=True)
    with pytest.raises(ValueError, match="DFDC has the splits 'train' .* and 'test', not 'val'"):
        list_items("dfdc", tmp_path / "dfdc", "val")
    assert not (tmp_path / "c").exists()


def _magenta(image) -> bool:
    return int(((image[..., 0] > 180) & (image[..., 1] < 90) & (image[..., 2] > 180)).sum()) > 200


def paired_boxes(image):
    """The face's bounding box; 8 px further right on a frame with the fake's magenta patch, so that the
    fake's box differs from the original's and a source cut with the wrong box shows."""
    ys, xs = np.nonzero((np.abs(image.astype(int) - 70) > 20).any(2))
    x0, y0 = float(xs.min()), float(ys.min())
    return [(x0 + (8.0 if _magenta(image) else 0.0), y0, float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1), 1.0)]


def _patched(frames):
    """The frames with a magenta patch on the face (it moves with the face: 3 px right per frame)."""
    out = []
    for t, f in enumerate(frames):
        f = f.copy()
        y, x = 18 + t % 2, 26 + 3 * t
        f[y + 40:y + 75, x + 30:x + 75] = (255, 0, 255)
        out.append(f)
    return out


def test_ffpp_fakes_carry_the_pristine_frame_cut_with_their_own_box(tmp_path, monkeypatch):
    """return_source on real FF++: a fake's source is original XXX's frame at the same index, cropped with the
    fake's face box; a real face's source is its image; a fake without (that frame of) its original is skipped
    and counted; other sets refuse; the crops without sources are a separate cache entry."""
    import torch

    from dfnb.data import FaceForgeryDataset, load_split
    from dfnb.data.real import PairedFaces

    root = tmp_path / "ff"
    orig = root / "original_sequences/youtube/c23/videos"
    _write_video(orig / "000.avi", _face_frames(5))
    _write_video(orig / "001.avi", _face_frames(3))  # shorter than its fake: frame 4 has no pristine
    man = root / "manipulated_sequences/Deepfakes/c23/videos"
    _write_video(man / "000_001.avi", _patched(_face_frames(5)))
    _write_video(man / "001_000.avi", _patched(_face_frames(5)))
    _write_video(man / "005_000.avi", _patched(_face_frames(5)))  # no original 005
    kw = dict(split="all", frames_per_video=3, size=64, methods=["real", "deepfakes"], detector=paired_boxes,
              cache=tmp_path / "c", progress=False)
    with pytest.warns(UserWarning, match="skipped 1 videos and 1 frames"):
        ds = load_real("ffpp", root, return_source=True, **kw)
    assert type(ds) is PairedFaces and ds.return_source
    why = {(Path(s["path"]).name, s.get("frame")): s["reason"] for s in ds.skipped}
    assert why == {("005_000.avi", None): "no pristine video 005 (return_source); video skipped",
                   ("001_000.avi", 4): "pristine video shorter than the fake (return_source); frame skipped"}
    assert ds.summary() == {"real": 6, "deepfakes": 5, "skipped": 2}
    n_checked = 0
    for i, r in enumerate(ds.rows):
        x = ds[i]
        assert x["source"].shape == x["image"].shape == (3, 64, 64) and x["source"].dtype == torch.float32
        if r["label"] == 0:
            assert torch.equal(x["source"], x["image"])
            continue
        fi = r["frame"]
        fake = read_frames(str(man / f"{r['video_id']}.avi"), 0, indices=[fi])[1][0]
        pristine = read_frames(str(orig / f"{r['video_id'][:3]}.avi"), 0, indices=[fi])[1][0]
        box, own = paired_boxes(fake)[0][:4], paired_boxes(pristine)[0][:4]
        assert box[0] == own[0] + 8  # the fake's box is not the original's
        want = crop_face(pristine, box, 64, 1.3)[0]
        got = (x["source"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert np.array_equal(got, want)
        assert not np.array_equal(got, crop_face(pristine, own, 64, 1.3)[0])
        pm = np.zeros(fake.shape[:2], np.uint8)
        pm[_patched([np.full_like(fake, 70)] * (fi + 1))[fi][..., 1] == 0] = 255  # the patch of frame fi
        inside = crop_face(fake, box, 64, 1.3, mask=pm)[1] > 128
        diff = (x["image"] - x["source"]).abs().amax(0).numpy()
        assert inside.sum() > 100 and diff[inside].mean() > 0.4 and diff[~inside].mean() < 0.05
        n_checked += 1
    assert n_checked == 5
    pre = PairedFaces(ds.root).preload()
    assert all(torch.equal(pre[i]["source"], ds[i]["source"]) for i in range(len(ds)))
    # without return_source: the plain crops, another cache entry, no source key
    plain = load_real("ffpp", root, **kw)  # every video kept: nothing to warn about
    assert type(plain) is FaceForgeryDataset and plain.root != ds.root and "source" not in plain[0]
    assert load_real("ffpp", root, return_source=True, **kw).root == ds.root  # cached
    monkeypatch.setenv("DFNB_REAL_CACHE", str(tmp_path / "c"))
    from dfnb.data import landmarks

    monkeypatch.setattr(landmarks, "get_detector", lambda name: paired_boxes)  # load_split's "auto" detector
    monkeypatch.setattr(landmarks, "detector_name", lambda name: "paired_boxes")
    with pytest.warns(UserWarning, match="skipped 1 videos"):
        name, sp = load_split("ffpp-syn", "all", real="ffpp", root=root, size=32, frames_per_video=2,
                              real_methods=["deepfakes"], return_source=True)
    assert name == "ffpp (real)" and type(sp) is PairedFaces and "source" in sp[0]
    with pytest.raises(ValueError, match="celebdf has no frame-aligned pristine video"):
        load_real("celebdf", root, return_source=True, cache=tmp_path / "c")
