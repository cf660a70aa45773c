"""``dfnb predict``: end to end on a tiny checkpoint, corrupt images, arch checks, no overwrite."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import dfnb
from dfnb.cli import main
from dfnb.engine import save_checkpoint, seed_everything
from dfnb.predict import heat_overlay, predict, read_image

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import one_thread  # noqa: E402,F401  (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]


def _ckpt(tmp_path, with_mask=False):
    seed_everything(0)
    model = dfnb.create_model("toy_cnn", width=4, with_mask=with_mask)
    return model, save_checkpoint(tmp_path / f"toy_{with_mask}.pt", model, epoch=1)


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, hw in (("a.png", (40, 30)), ("sub/b.jpg", (24, 24))):
        cv2.imwrite(str(d / name), rng.integers(0, 255, hw + (3,), dtype=np.uint8))
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    (d / "notes.txt").write_text("not an image, ignored by extension")
    return d


def test_predict_function_matches_the_model(tmp_path, images):
    model, _ = _ckpt(tmp_path)
    res = predict([images / "a.png"], model, size=32, out_dir=tmp_path / "out", face="none")
    rgb = read_image(images / "a.png")
    x = torch.from_numpy(cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_AREA).transpose(2, 0, 1).copy()).float() / 255
    with torch.no_grad():
        p = torch.sigmoid(model(x[None])["logit"])[0].item()
    assert res[0]["p_fake"] == pytest.approx(p, rel=1e-6) and res[0]["kind"] == "cam"
    ov = cv2.imread(res[0]["overlay"])
    assert ov.shape == (40, 30, 3)  # overlay at the image's own size


def test_cli_directory_end_to_end_with_a_corrupt_file(tmp_path, images, capsys):
    _, ck = _ckpt(tmp_path)
    out = tmp_path / "out"
    code = main(["predict", "--whole-image", str(images), "--method", "toy_cnn", "--checkpoint", str(ck), "--out", str(out), "--size", "32"])
    cap = capsys.readouterr()
    assert code == 1  # something was skipped
    lines = cap.out.strip().splitlines()
    assert len(lines) == 2 and all("P(fake)=0." in ln for ln in lines)
    assert lines[0].startswith(str(images / "a.png"))
    assert "skipped 1 of 3" in cap.err and "broken.png" in cap.err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a_cam.png", "sub/b_cam.png"]
    # no silent overwrite on a second run
    code = main(["predict", "--whole-image", str(images / "a.png"), "--checkpoint", str(ck), "--out", str(out)])
    assert code == 2 and "already exist" in capsys.readouterr().err
    assert main(["predict", "--whole-image", str(images / "a.png"), "--checkpoint", str(ck), "--out", str(out), "--overwrite"]) == 0


def test_cli_single_corrupt_image_is_an_error_naming_it(tmp_path, images, capsys):
    _, ck = _ckpt(tmp_path)
    code = main(["predict", "--whole-image", str(images / "broken.png"), "--checkpoint", str(ck), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot read image" in err and "broken.png" in err


def test_cli_checks_method_and_checkpoint(tmp_path, images, capsys):
    _, ck = _ckpt(tmp_path)
    code = main(["predict", "--whole-image", str(images / "a.png"), "--method", "xception", "--checkpoint", str(ck)])
    assert code == 2 and "--method 'xception' does not match" in capsys.readouterr().err
    code = main(["predict", "--whole-image", str(images / "a.png"), "--checkpoint", str(tmp_path / "missing.pt")])
    assert code == 2 and "missing.pt does not exist" in capsys.readouterr().err


def test_cli_mask_model_writes_mask_overlay(tmp_path, images, capsys):
    _, ck = _ckpt(tmp_path, with_mask=True)
    out = tmp_path / "out"
    assert main(["predict", "--whole-image", str(images / "sub" / "b.jpg"), "--checkpoint", str(ck), "--out", str(out)]) == 0
    assert "P(fake)=" in capsys.readouterr().out
    assert [p.name for p in out.iterdir()] == ["b_mask.png"]


def test_heat_overlay_blends():
    rgb = np.zeros((4, 6, 3), np.uint8)
    ov = heat_overlay(rgb, np.ones((2, 3)), opacity=1.0)
    assert ov.shape == (4, 6, 3) and (ov[..., 0] > 100).all()  # JET(1) is red
    assert (heat_overlay(rgb, np.zeros((4, 6)), opacity=0.0) == 0).all()


def test_dfnb_console_command(tmp_path, images):
    _, ck = _ckpt(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "dfnb.cli", "predict", "--whole-image", str(images / "a.png"), "--checkpoint", str(ck),
                           "--no-overlay"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(str(images / "a.png")) and "P(fake)=0." in proc.stdout


def test_overlay_names_never_collide(tmp_path):
    from dfnb.predict import _overlay_names

    root = tmp_path
    paths = [root / "sub" / "x.png", root / "sub__x.png", root / "y.png", root / "y.jpg", root / "z.jpeg"]
    names = _overlay_names(paths, root)
    assert {p: n.as_posix() for p, n in names.items()} == {
        paths[0]: "sub/x", paths[1]: "sub__x", paths[2]: "y_png", paths[3]: "y_jpg", paths[4]: "z"}
    assert len(set(names.values())) == len(paths)


def test_read_image_refuses_truncated_and_tiny_images(tmp_path):
    ok = cv2.imencode(".jpg", np.full((32, 32, 3), 128, np.uint8))[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(ok[: len(ok) // 2])
    with pytest.raises(ValueError, match="JPEG is truncated"):
        read_image(tmp_path / "cut.jpg")
    png = cv2.imencode(".png", np.full((32, 32, 3), 128, np.uint8))[1].tobytes()
    (tmp_path / "cut.png").write_bytes(png[:-20])
    with pytest.raises(ValueError, match="PNG is truncated"):
        read_image(tmp_path / "cut.png")
    cv2.imwrite(str(tmp_path / "dot.png"), np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ValueError, match="1x1 px"):
        read_image(tmp_path / "dot.png")


def test_size_zero_is_an_error_not_the_default(tmp_path, images):
    model, _ = _ckpt(tmp_path)
    with pytest.raises(ValueError, match="size must be >= 8, got 0"):
        predict([images / "a.png"], model, size=0, face="none")


def test_predict_crops_the_face_of_a_real_photo_at_the_exported_size(tmp_path, capsys):
    """An exported experiment checkpoint on skimage's astronaut: the face box lies on her face (found by
    hand: x 170-260, y 30-140 of the 512 x 512 photo) and the model sees a crop at the training size."""
    from skimage import data as skdata

    from dfnb.experiments import train_seeded

    cv2.imwrite(str(tmp_path / "astronaut.png"), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))

    class Tiny(torch.utils.data.Dataset):
        fingerprint = "tiny-faces-v1"

        def __len__(self):
            return 8

        def __getitem__(self, i):
            return {"image": torch.full((3, 32, 32), i / 8), "label": torch.tensor(float(i % 2))}

    exp = train_seeded("toy_cnn", Tiny(), Tiny(), seed=0, cache=tmp_path / "c", model_kwargs={"width": 4},
                       epochs=1, batch_size=4, lr=1e-3)
    ck = exp.export(tmp_path / "toy.pt", input_size=48)
    seen = []
    model = dfnb.engine.load_model(ck)
    model.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape)))
    assert main(["predict", str(tmp_path / "astronaut.png"), "--checkpoint", str(ck), "--no-overlay"]) == 0
    line = capsys.readouterr().out
    x, y, w, h = (float(v) for v in line.split("face=")[1].split()[0].split(","))
    cx, cy = x + w / 2, y + h / 2
    assert 170 < cx < 260 and 30 < cy < 140 and 40 < w < 200, line
    res = predict([tmp_path / "astronaut.png"], model, size=48)
    assert seen[-1] == (1, 3, 48, 48) and res[0]["face_box"] is not None and res[0]["error"] is None


def test_checkpoint_with_bad_architecture_kwargs_is_one_line(tmp_path, images, capsys):
    from dfnb.engine.checkpoint import read_checkpoint

    _, ck = _ckpt(tmp_path)
    obj = read_checkpoint(ck)
    obj["arch"]["kwargs"]["no_such_kwarg"] = 3
    torch.save(obj, tmp_path / "bad.pt")
    code = main(["predict", "--whole-image", str(images / "a.png"), "--checkpoint", str(tmp_path / "bad.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be rebuilt" in err and "no_such_kwarg" in err and "Traceback" not in err
