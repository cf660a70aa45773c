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
    res = predict([images / "a.png"], model, size=32, out_dir=tmp_path / "out")
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
    code = main(["predict", str(images), "--method", "toy_cnn", "--checkpoint", str(ck), "--out", str(out), "--size", "32"])
    cap = capsys.readouterr()
    assert code == 1  # something was skipped
    lines = cap.out.strip().splitlines()
    assert len(lines) == 2 and all("P(fake)=0." in ln for ln in lines)
    assert lines[0].startswith(str(images / "a.png"))
    assert "skipped 1 of 3" in cap.err and "broken.png" in cap.err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a_cam.png", "sub/b_cam.png"]
    # no silent overwrite on a second run
    code = main(["predict", str(images / "a.png"), "--checkpoint", str(ck), "--out", str(out)])
    assert code == 2 and "already exist" in capsys.readouterr().err
    assert main(["predict", str(images / "a.png"), "--checkpoint", str(ck), "--out", str(out), "--overwrite"]) == 0


def test_cli_single_corrupt_image_is_an_error_naming_it(tmp_path, images, capsys):
    _, ck = _ckpt(tmp_path)
    code = main(["predict", str(images / "broken.png"), "--checkpoint", str(ck), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot read image" in err and "broken.png" in err


def test_cli_checks_method_and_checkpoint(tmp_path, images, capsys):
    _, ck = _ckpt(tmp_path)
    code = main(["predict", str(images / "a.png"), "--method", "xception", "--checkpoint", str(ck)])
    assert code == 2 and "--method 'xception' does not match" in capsys.readouterr().err
    code = main(["predict", str(images / "a.png"), "--checkpoint", str(tmp_path / "missing.pt")])
    assert code == 2 and "missing.pt does not exist" in capsys.readouterr().err


def test_cli_mask_model_writes_mask_overlay(tmp_path, images, capsys):
    _, ck = _ckpt(tmp_path, with_mask=True)
    out = tmp_path / "out"
    assert main(["predict", str(images / "sub" / "b.jpg"), "--checkpoint", str(ck), "--out", str(out)]) == 0
    assert "P(fake)=" in capsys.readouterr().out
    assert [p.name for p in out.iterdir()] == ["b_mask.png"]


def test_heat_overlay_blends():
    rgb = np.zeros((4, 6, 3), np.uint8)
    ov = heat_overlay(rgb, np.ones((2, 3)), opacity=1.0)
    assert ov.shape == (4, 6, 3) and (ov[..., 0] > 100).all()  # JET(1) is red
    assert (heat_overlay(rgb, np.zeros((4, 6)), opacity=0.0) == 0).all()


def test_dfnb_console_command(tmp_path, images):
    _, ck = _ckpt(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "dfnb.cli", "predict", str(images / "a.png"), "--checkpoint", str(ck),
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
