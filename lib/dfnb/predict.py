"""``dfnb predict``: fake probability and a localization overlay for single images.

Command line::

    dfnb predict IMAGE_OR_DIR --checkpoint ckpt/best.pt [--method NAME] [--out DIR]
                 [--device cpu|cuda] [--size N] [--whole-image] [--no-overlay] [--overwrite]

detects the face and crops it as the training faces were cropped (1.3 x the face box, at the
checkpoint's training size), prints one line per image,
``PATH  P(fake)=0.8731  face=x,y,w,h (detector)  overlay=OUT/...png``, and
writes a PNG overlay: the predicted manipulation mask (``sigmoid(mask_logit)``)
when the model has a mask head, else a Grad-CAM of the fake logit
(``dfnb.cam.GradCAM`` at ``model.cam_layer``), colour-mapped over the image.

The checkpoint carries its architecture (``dfnb.engine.load_model`` rebuilds it);
``--method``, if given, must name that architecture.  An unreadable image is an
error naming the file; in a directory, unreadable files are skipped, counted and
listed at the end (exit status 1).  Existing overlays are not overwritten without
``--overwrite``.

Python: :func:`predict` (the CLI wraps it), :func:`read_image`, :func:`list_images`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

__all__ = ["predict", "read_image", "list_images", "heat_overlay", "add_parser", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MIN_SIDE = 16  # px: anything smaller holds no face to score
MARGIN = 1.3  # crop side / face box side, as the real-data loader crops training faces


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image with OpenCV as (H, W, 3) uint8 RGB; ``ValueError`` naming the file if unreadable."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    from dfnb.data.real import truncated

    why = truncated(path)
    if why:
        raise ValueError(f"cannot read image {path}: {why}")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise ValueError(f"cannot read image {path}: OpenCV could not decode it (corrupt or not an image)")
    if min(img.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image {path} is {img.shape[1]}x{img.shape[0]} px, below {MIN_SIDE} px a side")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def list_images(path: str | os.PathLike) -> list[Path]:
    """``[path]`` for a file; for a directory, its image files (by extension, recursively, sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {path}")
        return files
    raise FileNotFoundError(f"{path} is neither an image file nor a directory")


def heat_overlay(rgb: np.ndarray, heat: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """Blend a JET colour map of ``heat`` (h, w) in [0, 1] over ``rgb`` (H, W, 3) uint8 -> (H, W, 3) uint8.

    ``heat`` is resized bilinearly to (H, W).
    """
    import cv2

    h, w = rgb.shape[:2]
    heat = np.clip(np.asarray(heat, dtype=np.float32), 0, 1)
    if heat.shape != (h, w):
        heat = cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.cvtColor(cv2.applyColorMap(np.uint8(np.round(heat * 255)), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return np.uint8(np.round((1 - opacity) * rgb.astype(np.float32) + opacity * colour.astype(np.float32)))


def _overlay_names(paths: list[Path], root: Path | None) -> dict[Path, Path]:
    """Each image's overlay stem, relative to ``--out``: the image's own path below ``root`` (folders
    kept, so ``sub/x.png`` and ``sub__x.png`` cannot meet) without its extension; the extension is kept
    only where two images would otherwise share a stem (``x.png``, ``x.jpg``).  Distinct paths always
    get distinct names."""
    rel = {p: p.relative_to(root) if root is not None else Path(p.name) for p in paths}
    stems: dict[Path, list[Path]] = {}
    for p, r in rel.items():
        stems.setdefault(r.with_suffix(""), []).append(p)
    names = {}
    for stem, ps in stems.items():
        for p in ps:
            names[p] = stem if len(ps) == 1 else rel[p].with_name(rel[p].name.replace(".", "_"))
    if len(set(names.values())) != len(names):  # e.g. x.png beside a file literally named x_png
        names = {p: r.with_name(r.name + f"-{i}") for i, (p, r) in enumerate(rel.items())}
    return names


def _overlay_path(out: Path, stem: Path, kind: str) -> Path:
    return out / stem.with_name(f"{stem.name}_{kind}.png")


def predict(paths: Iterable[str | os.PathLike], model: nn.Module, *, device: str = "cpu", size: int | None = None,
            out_dir: str | os.PathLike | None = None, overwrite: bool = False, skip_unreadable: bool = False,
            root: str | os.PathLike | None = None, face: str = "auto") -> list[dict]:
    """P(fake) and (optionally) an overlay PNG for each image file.

    Args:
        paths: image files (read with OpenCV).
        model: a dfnb model (method contract); put in eval mode.
        size: side of the model's input (default ``model.input_size`` or 224; the CLI takes the
            checkpoint's training size where it records one).
        face: ``"auto"``: detect the face (``dfnb.data.landmarks.get_detector("auto")``, the detector
            the real-data loader uses), keep the highest-scoring box and crop a square of
            :data:`MARGIN` x the box, as training faces are cropped; an image with no face is
            recorded (``error``), not scored.  ``"none"``: the whole image, squashed to ``size``.
        out_dir: where overlays go (``<stem>_mask.png`` from ``mask_logit`` if the model has a
            mask head, else ``<stem>_cam.png`` from Grad-CAM; ``x.png`` -> ``x_mask.png``); None writes none.
        overwrite: allow replacing existing overlay files (else ``FileExistsError`` before any work).
        skip_unreadable: record unreadable files (``p_fake`` None, ``error`` set) instead of raising.
        root: directory the overlay names are made relative to (its subfolders are kept below ``out_dir``).

    Returns:
        one dict per path: ``path``, ``p_fake`` (float or None), ``overlay`` (str or None),
        ``kind`` ("mask" | "cam" | None), ``face_box`` ((x, y, w, h) in the image, or None for
        ``face="none"``), ``detector``, ``error`` (str or None).
    """
    from dfnb.engine.distributed import resolve_device

    device = resolve_device(device)
    paths = [Path(p) for p in paths]
    root = Path(root) if root is not None else None
    if size is not None and int(size) < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    size = int(size or getattr(model, "input_size", None) or 224)
    if face not in ("auto", "none"):
        raise ValueError(f"face must be 'auto' or 'none', got {face!r}")
    detect = None
    if face == "auto":
        from dfnb.data.landmarks import get_detector

        detect = get_detector("auto")
    model = model.to(device).eval()
    out = Path(out_dir) if out_dir is not None else None
    has_mask = None
    cam = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        names = _overlay_names(paths, root)
        if not overwrite:
            clash = [_overlay_path(out, names[p], k) for p in paths for k in ("mask", "cam")
                     if _overlay_path(out, names[p], k).exists()]
            if clash:
                raise FileExistsError(f"{len(clash)} overlay(s) already exist, e.g. {clash[0]}; pass --overwrite "
                                      "(overwrite=True) or choose another --out")
    import cv2

    results = []
    for path in paths:
        try:
            rgb = read_image(path)
        except (ValueError, FileNotFoundError) as e:
            if not skip_unreadable:
                raise
            results.append({"path": str(path), "p_fake": None, "overlay": None, "kind": None, "face_box": None,
                            "detector": None, "error": str(e)})
            continue
        box, M = None, None
        if detect is not None:
            from dfnb.data.real import crop_matrix

            boxes = detect(rgb)
            if not boxes:
                results.append({"path": str(path), "p_fake": None, "overlay": None, "kind": None,
                                "face_box": None, "detector": detect.__name__,
                                "error": f"no face found in {path} ({detect.__name__}); pass face='none' "
                                         "(--whole-image) to score the whole image"})
                continue
            box = tuple(float(v) for v in max(boxes, key=lambda b: b[4])[:4])
            M = crop_matrix(box, size, MARGIN)
            x = cv2.warpAffine(rgb, M, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
        else:
            x = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).float().div_(255)[None].to(device)
        with torch.no_grad():
            o = model(x)
        p_fake = float(torch.sigmoid(o["logit"].float()).reshape(-1)[0])
        has_mask = "mask_logit" in o
        overlay_path, kind = None, None
        if out is not None:
            if has_mask:
                kind, heat = "mask", torch.sigmoid(o["mask_logit"].float())[0, 0].cpu().numpy()
            else:
                if cam is None:
                    from dfnb.cam import GradCAM

                    cam = GradCAM(model, getattr(model, "cam_layer", None))
                kind, heat = "cam", cam(x)[0].detach().cpu().numpy()
            if M is not None:  # the crop's map back onto the whole image (zero outside the crop)
                heat = cv2.warpAffine(np.float32(heat), cv2.invertAffineTransform(M), rgb.shape[1::-1],
                                      flags=cv2.INTER_LINEAR, borderValue=0)
            overlay_path = _overlay_path(out, names[path], kind)
            overlay_path.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(overlay_path), cv2.cvtColor(heat_overlay(rgb, heat), cv2.COLOR_RGB2BGR)):
                raise OSError(f"could not write {overlay_path}")
        results.append({"path": str(path), "p_fake": p_fake, "overlay": None if overlay_path is None else str(overlay_path),
                        "kind": kind, "face_box": box, "detector": None if detect is None else detect.__name__,
                        "error": None})
    return results


def _main(args: argparse.Namespace) -> int:
    from dfnb.engine.checkpoint import load_model

    try:
        files = list_images(args.input)
        try:
            model = load_model(args.checkpoint, method=args.method, device=args.device)
        except TypeError as e:  # the stored architecture kwargs do not fit the registered model
            raise ValueError(f"checkpoint {args.checkpoint} cannot be rebuilt: {e}") from None
        size = args.size if args.size is not None else checkpoint_input_size(args.checkpoint)
        is_dir = Path(args.input).is_dir()
        res = predict(files, model, device=args.device, size=size,
                      out_dir=None if args.no_overlay else args.out, overwrite=args.overwrite,
                      skip_unreadable=is_dir, root=args.input if is_dir else None,
                      face="none" if args.whole_image else "auto")
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError, KeyError) as e:
        print(f"dfnb predict: error: {e}", file=sys.stderr)
        return 2
    skipped = [r for r in res if r["error"]]
    for r in res:
        if r["error"] is None:
            line = f"{r['path']}  P(fake)={r['p_fake']:.4f}"
            if r["face_box"] is not None:
                line += "  face=" + ",".join(f"{v:.0f}" for v in r["face_box"]) + f" ({r['detector']})"
            print(line + (f"  overlay={r['overlay']}" if r["overlay"] else ""))
    if skipped:
        print(f"dfnb predict: skipped {len(skipped)} of {len(res)} file(s) that could not be read or hold no face:",
              file=sys.stderr)
        for r in skipped:
            print(f"  {r['error']}", file=sys.stderr)
        return 1
    return 0


def checkpoint_input_size(path) -> int | None:
    """The face size a checkpoint was trained at, where its exporter recorded it (``extra.input_size``)."""
    from dfnb.engine.checkpoint import read_checkpoint

    return (read_checkpoint(path).get("extra") or {}).get("input_size")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dfnb predict``."""
    p = subparsers.add_parser(
        "predict", help="fake probability and mask / Grad-CAM overlay for an image or a folder of images",
        description=__doc__.split("\n\n")[0])
    p.add_argument("input", metavar="IMAGE_OR_DIR", help="an image file or a directory of images (searched recursively)")
    p.add_argument("--checkpoint", required=True, help="a dfnb checkpoint (e.g. OUT/ckpt/best.pt)")
    p.add_argument("--method", default=None, help="model name; checked against the checkpoint's architecture")
    p.add_argument("--out", default="predictions", help="folder for the overlay PNGs (default: ./predictions)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--size", type=int, default=None,
                   help="input side for the model (default: the checkpoint's training size, else the model's)")
    p.add_argument("--whole-image", action="store_true",
                   help="score the whole image, squashed to --size, instead of the detected face crop")
    p.add_argument("--no-overlay", action="store_true", help="only print probabilities")
    p.add_argument("--overwrite", action="store_true", help="replace existing overlay PNGs")
    p.set_defaults(func=_main)
    return p
