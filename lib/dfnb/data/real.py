"""Real data sets in the layouts their owners publish: listing, frame sampling, face crops, a cache.

``load_real(name, root, split=..., frames_per_video=8, size=256)`` lists the videos of a data set,
samples ``frames_per_video`` evenly spaced frames per video, detects the largest face (mediapipe's legacy
face detector if installed, else scikit-image's LBP cascade), crops a square of ``margin`` (1.3) times the face box,
resizes it to ``size`` and warps the mask frame (FF++/DFD mask videos, FMLD mask images) the same
way.  Results go to a cache in the synthetic benchmarks' format (images/, masks/, index.csv,
landmarks.npy, meta.json) and come back as a :class:`~dfnb.data.benchmark.FaceForgeryDataset`.

Nothing is dropped silently: an unreadable video, a frame without a face or a video without any
face is *skipped and counted* in ``ds.skipped`` / ``meta.json`` (and logged as a warning); a kept face
whose box is doubtful (a low detector score, several candidate boxes, a box off the video's face:
:mod:`dfnb.data.facebox`) is counted in ``ds.meta["doubtful"]`` and the same warning, which names the
detector that ran (also in ``meta.json`` and, through :func:`loaded`, a chapter run's manifest); a missing
or malformed root raises ``FileNotFoundError`` naming the expected layout; if every video is skipped
it is a ``RuntimeError``.

Expected layouts (``root`` is the folder you downloaded):

- ``ffpp``  FaceForensics++: ``original_sequences/youtube/{c23,c40,raw}/videos/*.mp4``,
  ``manipulated_sequences/{Deepfakes,Face2Face,FaceSwap,NeuralTextures,FaceShifter}/{c23,c40,raw}/videos/XXX_YYY.mp4``,
  masks ``manipulated_sequences/<Method>/masks/videos/XXX_YYY.mp4``; splits ``splits/{train,val,test}.json``
  (the official pair lists from the FaceForensics repository's ``dataset/splits/``; also found at
  ``root/<split>.json`` or in ``splits_dir=``; ``split="all"`` needs none).
- ``dfd``   DeepFakeDetection (FF++ layout): ``original_sequences/actors/<q>/videos``,
  ``manipulated_sequences/DeepFakeDetection/<q>/videos`` (+ ``masks/videos``); its fakes are method
  ``dfd`` (not FF++'s ``deepfakes``).  No official split: ``split`` is ``test`` or ``all``.
- ``celebdf`` Celeb-DF v2: ``Celeb-real/``, ``YouTube-real/``, ``Celeb-synthesis/``,
  ``List_of_testing_videos.txt`` ("1 YouTube-real/00170.mp4", 1 = real).  test = the list, train = the rest.
- ``dfdc``  DFDC: training parts ``*/metadata.json`` beside their mp4s (``{"x.mp4": {"label": "FAKE"}}``);
  test ``test/videos/*.mp4`` + ``test/labels.csv`` (``filename,label`` with 1 = fake).
- ``dfdcp`` DFDC preview: ``dataset.json`` (``{"method_A/.../x.mp4": {"label": "fake", "set": "test"}}``).
- ``dftimit`` DeepfakeTIMIT: ``higher_quality/<subject>/*.avi``, ``lower_quality/<subject>/*.avi``;
  real videos (optional) ``real/<subject>/*.avi`` or VidTIMIT frame folders ``real/<subject>/video/<clip>/``
  (the ``head*`` rotation clips are not counted).  No official split: ``split`` is ``test`` or ``all``.
- ``dfo``   DeeperForensics-1.0: ``manipulated_videos/<variant>/*.mp4`` (``methods`` picks variants,
  default ``end_to_end``), splits ``lists/splits/{train,val,test}.txt``; real videos (its targets are
  FF++ originals) from ``original_sequences/youtube/<q>/videos`` or ``real/`` under ``root``.
- ``wdf``   WildDeepfake: ``{real,fake}_{train,test}/<video>/.../*.png`` (each leaf folder of frames = a video).
- ``fmld``  FMLD (layout as the book expects it): ``<split>/{real,fake}/*.png|jpg`` and masks
  ``<split>/mask/<same name>.png``; images are already aligned faces, so ``detector="none"`` is the default.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dfnb.data import facebox
from dfnb.data import landmarks as L
from dfnb.data.benchmark import FaceForgeryDataset

log = logging.getLogger(__name__)
VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp")
FFPP_METHODS = {"deepfakes": "Deepfakes", "face2face": "Face2Face", "faceswap": "FaceSwap",
                "neuraltextures": "NeuralTextures", "faceshifter": "FaceShifter"}
NAMES = ("ffpp", "dfd", "celebdf", "dfdc", "dfdcp", "dftimit", "dfo", "wdf", "fmld")


class VideoError(RuntimeError):
    """A video (or frame folder / image) that cannot be read."""


@dataclass
class Item:
    """One video (or frame folder, or image) of a data set."""

    path: str
    label: int
    method: str
    video_id: str
    mask: str | None = None
    pristine: str | None = None  # FF++ fakes: the original video they were made from (frame-aligned)


def _file_stamps(items, pristine: bool = False) -> str:
    """SHA-256 over every item's video (or frame folder) and mask (and, with ``pristine``, its original
    video): path, size and modification time (ns), so that changed videos under the same root give a new
    cache entry, never the old crops."""
    h = hashlib.sha256()
    for it in items:
        for f in (it.path, it.mask) + ((it.pristine,) if pristine else ()):
            if f is None:
                continue
            p = Path(f)
            files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
            for q in files:
                st = q.stat()
                h.update(f"{q}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def _layout_error(name: str, root: Path, what: str) -> FileNotFoundError:
    doc = __doc__.split("Expected layouts")[1]
    block = [ln for ln in doc.splitlines() if ln.strip().startswith(f"- ``{name}``")]
    lines = doc.splitlines()
    i = lines.index(block[0]) if block else 0
    desc = " ".join(s.strip() for s in lines[i:i + 4] if s.strip())
    return FileNotFoundError(f"load_real({name!r}, root={str(root)!r}): {what}.  Expected layout: {desc}")


def _videos(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.suffix.lower() in VIDEO_EXT) if d.is_dir() else []


def _split_file(root: Path, split: str, splits_dir) -> Path:
    """FF++'s ``<split>.json``: in ``splits_dir`` if given, else ``root/splits/``, else ``root/``."""
    cands = [Path(splits_dir) / f"{split}.json"] if splits_dir is not None else [
        root / "splits" / f"{split}.json", root / f"{split}.json"]
    for c in cands:
        if c.is_file():
            return c
    raise _layout_error("ffpp", root, f"split file {' or '.join(map(str, cands))} is missing (the official FF++ "
                        "pair lists are dataset/splits/{train,val,test}.json of the FaceForensics repository; "
                        "pass splits_dir=, or split='all')")


def _ffpp_like(root: Path, name: str, split: str, quality: str, methods, real_sub: str, default_methods,
               splits_dir=None):
    q = {"hq": "c23", "lq": "c40", "c0": "raw"}.get(quality, quality)
    real_dir = root / "original_sequences" / real_sub / q / "videos"
    if not (root / "original_sequences").is_dir() and not (root / "manipulated_sequences").is_dir():
        raise _layout_error(name, root, "neither original_sequences/ nor manipulated_sequences/ exists")
    methods = list(default_methods if methods is None else methods)
    keep = None
    if name == "ffpp" and split != "all":
        sp = _split_file(root, split, splits_dir)
        try:
            pairs = json.loads(sp.read_text())
            keep = {str(a) for pr in pairs for a in pr} | {f"{a}_{b}" for a, b in pairs} | {f"{b}_{a}" for a, b in pairs}
        except (ValueError, TypeError) as e:
            raise ValueError(f"{sp} is malformed (expected a JSON list of [id, id] pairs): {e}") from e
    items = []
    if "real" in methods:
        if not real_dir.is_dir():
            raise _layout_error(name, root, f"{real_dir} is missing")
        items += [Item(str(p), 0, "real", p.stem) for p in _videos(real_dir) if keep is None or p.stem in keep]
    for m in methods:
        if m == "real":
            continue
        if name == "dfd" and m != "dfd":
            raise ValueError(f"DeepFakeDetection has the methods 'real' and 'dfd', got {m!r}")
        folder = FFPP_METHODS.get(m, m) if name == "ffpp" else "DeepFakeDetection"
        vd = root / "manipulated_sequences" / folder / q / "videos"
        if not vd.is_dir():
            raise _layout_error(name, root, f"{vd} is missing (method {m!r}, quality {q!r})")
        md = root / "manipulated_sequences" / folder / "masks" / "videos"
        for p in _videos(vd):
            if keep is not None and p.stem not in keep:
                continue
            mp = md / p.name
            src = None
            if name == "ffpp":  # XXX_YYY.mp4 is made from (and frame-aligned with) the original XXX.mp4
                tgt = p.stem.split("_")[0]
                src = next((c for c in (real_dir / f"{tgt}{e}" for e in (p.suffix,) + VIDEO_EXT) if c.is_file()), None)
            items.append(Item(str(p), 1, m, p.stem, str(mp) if mp.exists() else None,
                              None if src is None else str(src)))
    return items


def _whole_set_only(name: str, split: str) -> None:
    """Sets with no official split are one test set: ``split`` must say ``test`` or ``all``."""
    if split not in ("test", "all"):
        raise ValueError(f"{name} has no official {split!r} split (the whole set is a test set); "
                         "use split='test' or 'all'")


def list_items(name: str, root, split: str = "test", quality: str = "c23", methods=None,
               splits_dir=None) -> list[Item]:
    """The videos/images of data set ``name`` under ``root`` for ``split``; raises on a bad layout.
    ``splits_dir``: FF++ only, the folder of ``{train,val,test}.json`` if they are not under ``root``."""
    if name not in NAMES:
        raise KeyError(f"unknown real data set {name!r}; known: {NAMES}")
    if root is None:
        raise FileNotFoundError(f"load_real({name!r}): the parameter root is None; pass the data set's folder")
    root = Path(root)
    if not root.is_dir():
        raise _layout_error(name, root, "the parameter root does not name an existing folder")
    if name == "ffpp":
        return _ffpp_like(root, name, split, quality, methods, "youtube", ["real"] + list(FFPP_METHODS)[:4],
                          splits_dir)
    if splits_dir is not None:
        raise ValueError(f"splits_dir is for ffpp only, not {name!r}")
    if name == "dfd":
        _whole_set_only(name, split)
        return _ffpp_like(root, name, "all", quality, methods, "actors", ["real", "dfd"])
    if name == "celebdf":
        if split not in ("train", "test", "all"):
            raise ValueError(f"Celeb-DF v2 has the splits 'test' (List_of_testing_videos.txt), 'train' (the other "
                             f"videos) and 'all', not {split!r}")
        lst = root / "List_of_testing_videos.txt"
        dirs = [root / d for d in ("Celeb-real", "YouTube-real", "Celeb-synthesis")]
        if not any(d.is_dir() for d in dirs):
            raise _layout_error(name, root, "none of Celeb-real/, YouTube-real/, Celeb-synthesis/ exists")
        test = {}
        if split in ("test", "train"):
            if not lst.exists():
                raise _layout_error(name, root, f"{lst} is missing")
            for ln in lst.read_text().splitlines():
                if ln.strip():
                    parts = ln.split()
                    if len(parts) != 2:
                        raise ValueError(f"{lst}: malformed line {ln!r} (expected '<1|0> <folder>/<file>.mp4')")
                    test[parts[1]] = 1 - int(parts[0])  # the list uses 1 = real
        items = []
        for d in dirs:
            for p in _videos(d):
                rel = f"{d.name}/{p.name}"
                if split == "test" and rel not in test:
                    continue
                if split == "train" and rel in test:
                    continue
                fake = d.name == "Celeb-synthesis"
                items.append(Item(str(p), int(fake), "celebdf" if fake else "real", f"{d.name}/{p.stem}"))
        return items
    if name == "dfdc":
        if split not in ("train", "test"):
            raise ValueError(f"DFDC has the splits 'train' (its training parts) and 'test', not {split!r}")
        items = []
        if split == "test":
            lab = root / "test" / "labels.csv"
            vd = root / "test" / "videos"
            if not lab.exists() or not vd.is_dir():
                raise _layout_error(name, root, f"{lab} or {vd} is missing")
            with open(lab, newline="") as f:
                for r in csv.DictReader(f):
                    p = vd / r["filename"]
                    y = int(float(r["label"]))
                    items.append(Item(str(p), y, "dfdc" if y else "real", p.stem))
            return items
        metas = sorted(root.glob("*/metadata.json")) + sorted(root.glob("metadata.json"))
        if not metas:
            raise _layout_error(name, root, "no */metadata.json found")
        for mp in metas:
            try:
                meta = json.loads(mp.read_text())
            except ValueError as e:
                raise ValueError(f"{mp} is not valid JSON: {e}") from e
            for fn, info in sorted(meta.items()):
                y = int(str(info.get("label", "")).upper() == "FAKE")
                items.append(Item(str(mp.parent / fn), y, "dfdc" if y else "real", Path(fn).stem))
        return items
    if name == "dfdcp":
        dj = root / "dataset.json"
        if not dj.exists():
            raise _layout_error(name, root, f"{dj} is missing")
        meta = json.loads(dj.read_text())
        items = []
        for rel, info in sorted(meta.items()):
            if split != "all" and info.get("set") != split:
                continue
            y = int(str(info.get("label")).lower() == "fake")
            m = ("dfdcp_" + rel.split("/")[0].lower()) if y else "real"
            items.append(Item(str(root / rel), y, m, rel.rsplit(".", 1)[0]))
        return items
    if name == "dftimit":
        _whole_set_only(name, split)
        items = []
        for sub, m in (("higher_quality", "dftimit_hq"), ("lower_quality", "dftimit_lq")):
            if (methods is not None and m not in methods) or not (root / sub).is_dir():
                continue
            for subj in sorted(p for p in (root / sub).iterdir() if p.is_dir()):
                items += [Item(str(p), 1, m, f"{sub}/{subj.name}/{p.stem}") for p in _videos(subj)]
        if not items:
            raise _layout_error(name, root, "no videos under higher_quality/ or lower_quality/")
        real = root / "real"
        if real.is_dir() and (methods is None or "real" in methods):
            for subj in sorted(p for p in real.iterdir() if p.is_dir()):
                items += [Item(str(p), 0, "real", f"real/{subj.name}/{p.stem}") for p in _videos(subj)]
                vt = subj / "video"
                if vt.is_dir():
                    # VidTIMIT's head, head2, head3 are head-rotation clips, not spoken sentences: no real video
                    items += [Item(str(c), 0, "real", f"real/{subj.name}/{c.name}") for c in sorted(vt.iterdir())
                              if c.is_dir() and not c.name.startswith("head")]
        return items
    if name == "dfo":
        mv = root / "manipulated_videos"
        if not mv.is_dir():
            raise _layout_error(name, root, f"{mv} is missing")
        variants = [m for m in (methods or ["end_to_end"]) if m != "real"]
        keep = None
        if split != "all":
            sp = root / "lists" / "splits" / f"{split}.txt"
            if not sp.exists():
                raise _layout_error(name, root, f"split list {sp} is missing (or pass split='all')")
            keep = {Path(s.strip()).stem for s in sp.read_text().splitlines() if s.strip()}
        items = []
        for v in variants:
            if not (mv / v).is_dir():
                raise _layout_error(name, root, f"variant folder {mv / v} is missing")
            items += [Item(str(p), 1, f"dfo_{v}", f"{v}/{p.stem}") for p in _videos(mv / v) if keep is None or p.stem in keep]
        if methods is None or "real" in methods:
            q = {"hq": "c23", "lq": "c40"}.get(quality, quality)
            for rd in (root / "original_sequences" / "youtube" / q / "videos", root / "real"):
                if rd.is_dir():
                    items += [Item(str(p), 0, "real", f"real/{p.stem}") for p in _videos(rd)]
                    break
            else:
                log.warning("dfo: no real videos under %s (original_sequences/youtube/%s/videos or real/): fakes only", root, q)
        return items
    if name == "wdf":
        if split not in ("train", "test"):
            raise ValueError("WildDeepfake has splits 'train' and 'test' only")
        items = []
        for lab in ("real", "fake"):
            d = root / f"{lab}_{split}"
            if not d.is_dir():
                raise _layout_error(name, root, f"{d} is missing")
            leaves = sorted({p.parent for p in d.rglob("*") if p.suffix.lower() in IMAGE_EXT})
            items += [Item(str(p), int(lab == "fake"), "wdf" if lab == "fake" else "real",
                           f"{lab}/{p.relative_to(d).as_posix()}") for p in leaves]
        return items
    if name == "fmld":
        d = root / split
        if not d.is_dir():
            raise _layout_error(name, root, f"{d} is missing")
        items = []
        for lab in ("real", "fake"):
            sd = d / lab
            if not sd.is_dir():
                raise _layout_error(name, root, f"{sd} is missing")
            for p in sorted(q for q in sd.iterdir() if q.suffix.lower() in IMAGE_EXT):
                mask = None
                if lab == "fake":
                    cands = [d / "mask" / (p.stem + e) for e in (".png", ".jpg")]
                    mask = next((str(c) for c in cands if c.exists()), None)
                items.append(Item(str(p), int(lab == "fake"), "fmld" if lab == "fake" else "real", p.stem, mask))
        return items
    raise AssertionError(name)


# ----------------------------------------------------------------------------- reading
def sample_indices(n_total: int, n: int) -> np.ndarray:
    """``n`` evenly spaced frame indices in ``[0, n_total)`` (all of them if ``n >= n_total``)."""
    if n_total <= 0:
        return np.zeros(0, np.int64)
    if n >= n_total:
        return np.arange(n_total)
    return np.unique(np.round(np.linspace(0, n_total - 1, n)).astype(np.int64))


def truncated(path) -> str | None:
    """Why the JPEG or PNG file at ``path`` is cut short ("no end-of-image marker", "no IEND chunk"),
    or None.  OpenCV decodes such files without an error (libjpeg only warns), grey below the cut."""
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 1024))
        tail = f.read()
    if head[:2] == b"\xff\xd8" and b"\xff\xd9" not in tail:
        return "the JPEG is truncated (no end-of-image marker)"
    if head == b"\x89PNG\r\n\x1a\n" and b"IEND" not in tail[-64:]:
        return "the PNG is truncated (no IEND chunk)"
    return None


def _imread(path) -> np.ndarray:
    """RGB uint8 of an image file; :class:`VideoError` when unreadable or truncated."""
    why = truncated(path)
    if why:
        raise VideoError(f"unreadable image {path}: {why}")
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if im is None:
        raise VideoError(f"unreadable image {path}")
    return cv2.cvtColor(im, cv2.COLOR_BGR2RGB)


def read_frames(path: str, n: int, indices=None) -> tuple[list[int], list[np.ndarray]]:
    """``n`` evenly spaced frames (or the frames at ``indices``) of a video file, a folder of frame
    images, or one image.

    Returns (indices, RGB uint8 (H, W, 3) frames).  Raises :class:`VideoError` when unreadable.
    """
    p = Path(path)
    if not p.exists():
        raise VideoError(f"missing file {p}")
    if p.is_dir():
        files = sorted(q for q in p.iterdir() if q.is_file() and (q.suffix.lower() in IMAGE_EXT or q.suffix == ""))
        idx = sample_indices(len(files), n) if indices is None else [i for i in indices if i < len(files)]
        frames = []
        for i in idx:
            frames.append(_imread(files[i]))
        if not frames:
            raise VideoError(f"no frames in {p}")
        return [int(i) for i in idx], frames
    if p.suffix.lower() in IMAGE_EXT:
        return [0], [_imread(p)]
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise VideoError(f"cannot open video {p}")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if total <= 0 and indices is None:  # count unknown: decode everything once
            frames_all = []
            while True:
                ok, fr = cap.read()
                if not ok:
                    break
                frames_all.append(fr)
            idx = sample_indices(len(frames_all), n)
            frames = [frames_all[i] for i in idx]
        else:
            idx = sample_indices(total, n) if indices is None else np.asarray(sorted(indices), np.int64)
            want, frames, got = set(int(i) for i in idx), [], []
            for i in range(int(idx[-1]) + 1 if len(idx) else 0):
                if not cap.grab():
                    break
                if i in want:
                    ok, fr = cap.retrieve()
                    if ok:
                        frames.append(fr)
                        got.append(i)
            idx = np.array(got, np.int64)
        if not frames:
            raise VideoError(f"no decodable frames in {p}")
        return [int(i) for i in idx], [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]
    finally:
        cap.release()


def crop_matrix(box, size: int, margin: float = 1.3) -> np.ndarray:
    """2x3 affine taking a square of ``margin`` x the face ``box`` (x, y, w, h) to a ``size`` crop."""
    x, y, w, h = (float(v) for v in box[:4])
    side = max(w, h) * margin
    s = size / side
    cx, cy = x + w / 2, y + h / 2
    return np.float32([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]])


def crop_face(image: np.ndarray, box, size: int = 256, margin: float = 1.3, mask: np.ndarray | None = None):
    """Crop/align the face ``box`` of ``image`` (H, W, 3) to (size, size, 3); the ``mask`` (H', W')
    (any resolution, e.g. an FF++ mask video frame) gets the same warp.  Returns (crop, mask_crop or
    None, M (2x3))."""
    M = crop_matrix(box, size, margin)
    crop = cv2.warpAffine(image, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mc = None
    if mask is not None:
        H, W = image.shape[:2]
        m = mask if mask.ndim == 2 else mask.max(2)
        if m.shape[:2] != (H, W):
            m = cv2.resize(m, (W, H), interpolation=cv2.INTER_LINEAR)
        mc = cv2.warpAffine(m, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return crop, mc, M


def _no_detector(image):
    h, w = image.shape[:2]
    return [(0.0, 0.0, float(w), float(h), 1.0)]


class PairedFaces(FaceForgeryDataset):
    """Real FF++ crops whose fakes carry their pristine face: ``ds[i]["source"]`` (3, H, W) in [0, 1] is the
    original video's frame at the fake's frame index, cropped with the fake's face box (pixel-aligned with
    ``image``); a real face's ``source`` is its image.  Written by ``load_real("ffpp", ..., return_source=True)``:
    index.csv's ``source`` column names ``sources/<row>.png``; in memory a fake's ``source_row`` is
    ``len(ds) + k``, the k-th source (what :meth:`load_rgb` reads past the faces)."""

    def __init__(self, root, transform=None):
        super().__init__(root, return_source=True, transform=transform)
        n, self._sources, self._source_images = len(self.rows), [], None
        for r in self.rows:
            if r["label"] == 1:
                if not r.get("source"):
                    raise ValueError(f"{self.root / 'index.csv'}: fake {r['image']} has no pristine source "
                                     "(expected a 'source' column naming sources/<row>.png)")
                r["source_row"] = n + len(self._sources)
                self._sources.append(self.root / r["source"])

    def preload(self) -> "PairedFaces":
        super().preload()
        if self._source_images is None:
            self._source_images = [self._decode_source(k) for k in range(len(self._sources))]
        return self

    def _decode_source(self, k: int) -> np.ndarray:
        return _imread(self._sources[k])

    def load_rgb(self, i: int) -> np.ndarray:
        """Face ``i`` (or, for ``i >= len(self)``, source ``i - len(self)``) as (H, W, 3) uint8 RGB."""
        k = i - len(self.rows)
        if k < 0:
            return super().load_rgb(i)
        return self._source_images[k] if self._source_images is not None else self._decode_source(k)


def load_real(name: str, root, split: str = "test", frames_per_video: int = 8, size: int = 256,
              margin: float = 1.3, detector="auto", quality: str = "c23", methods=None, max_videos: int | None = None,
              cache=None, progress: bool = True, splits_dir=None, return_source: bool = False):
    """Preprocess (once) and load a real data set as a :class:`~dfnb.data.benchmark.FaceForgeryDataset`.

    name: one of ``NAMES``; root: its folder in the published layout (see the module docstring);
    frames_per_video: evenly spaced frames sampled per video; size: crop side; margin: crop side /
    face box side; detector: "auto" | "mediapipe" | "cascade" | "none" (whole frame, margin 1, for
    pre-aligned faces; FMLD's default) | callable ``f(rgb) -> [(x, y, w, h, score), ...]``;
    quality: FF++/DFD compression folder (c23/c40/raw); methods: subset of methods;
    max_videos: keep the first N items (after sorting) for quick looks; cache: output folder
    (default ``results/_cache/real``).  Skips are counted in ``ds.skipped`` and ``meta.json``.
    return_source: FF++ only; a :class:`PairedFaces` whose fakes carry the original video's frame at the
    same index, cropped with the fake's box, under ``source`` (a fake frame without one is skipped and
    counted); any other set has no frame-aligned pristine video: a ``ValueError``.
    """
    from tqdm.auto import tqdm

    from dfnb.data.benchmark import DATA_VERSION, INDEX_FIELDS, publish, repo_root, scratch

    for what, v, low in (("frames_per_video", frames_per_video, 1), ("size", size, 8)):
        if not isinstance(v, int) or v < low:
            raise ValueError(f"load_real: {what} must be an integer >= {low}, got {v!r}")
    if not margin > 0:
        raise ValueError(f"load_real: margin must be > 0, got {margin!r}")
    if return_source and name != "ffpp":
        raise ValueError(f"load_real({name!r}): return_source=True, but {name} has no frame-aligned pristine video "
                         "per fake (only 'ffpp' has: original_sequences/youtube/<q>/videos/XXX for XXX_YYY)")
    items = list_items(name, root, split, quality, methods, splits_dir)
    if max_videos is not None:
        items = items[: int(max_videos)]
    if not items:
        raise FileNotFoundError(f"load_real({name!r}, root={str(root)!r}, split={split!r}): the layout is there "
                                f"but lists no videos for this split/methods")
    if detector == "auto" and name == "fmld":
        detector = "none"
    det_name = "none" if detector == "none" else L.detector_name(detector)  # "auto" keyed as what ran
    det = _no_detector if detector == "none" else L.get_detector(detector)
    if detector == "none":
        margin = 1.0  # pre-aligned faces: the whole frame is the crop
    key = hashlib.sha256(json.dumps(dict(name=name, root=str(Path(root).resolve()), split=split, f=frames_per_video,
                                         size=size, margin=margin, det=det_name, q=quality, m=methods, mv=max_videos,
                                         n=len(items), v=DATA_VERSION, files=_file_stamps(items, return_source),
                                         **({"src": True} if return_source else {})),
                                    sort_keys=True).encode()).hexdigest()[:16]
    default = os.environ.get("DFNB_REAL_CACHE", repo_root() / "results" / "_cache" / "real")
    base = Path(cache) if cache is not None else Path(default)
    out = base / name / f"{split}-{key}"
    Dataset = PairedFaces if return_source else FaceForgeryDataset
    if (out / "meta.json").exists():
        return _loaded(Dataset(out))
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    with scratch(tmp):  # removed again if anything fails or Ctrl-C stops it
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        if return_source:
            (tmp / "sources").mkdir()
        rows, lms, skipped, doubtful = [], [], [], []
        t0 = time.perf_counter()
        for it in tqdm(items, desc=f"{name}/{split}", disable=not progress, unit="video"):
            try:
                idx, frames = read_frames(it.path, frames_per_video)
                masks = None
                if it.mask:
                    try:
                        if Path(it.mask).suffix.lower() in VIDEO_EXT:
                            midx, mframes = read_frames(it.mask, 0, indices=idx)
                            masks = dict(zip(midx, mframes))
                        else:
                            masks = {0: read_frames(it.mask, 1)[1][0]}
                    except VideoError as e:
                        skipped.append({"path": it.mask, "reason": f"mask unreadable ({e}); video kept without mask"})
            except VideoError as e:
                skipped.append({"path": it.path, "reason": f"unreadable: {e}"})
                continue
            pristine = None
            if return_source and it.label == 1:
                if it.pristine is None:
                    skipped.append({"path": it.path, "reason": f"no pristine video {it.video_id.split('_')[0]} "
                                                               "(return_source); video skipped"})
                    continue
                try:
                    pristine = dict(zip(*read_frames(it.pristine, 0, indices=idx)))
                except VideoError as e:
                    skipped.append({"path": it.path, "reason": f"pristine video unreadable ({e}); video skipped"})
                    continue
            kept = 0
            found = [det(frame) for frame in frames]
            for fi, frame, boxes, doubt in zip(idx, frames, found, facebox.doubtful(found)):
                if not boxes:
                    skipped.append({"path": it.path, "frame": fi, "reason": "no face in frame"})
                    continue
                box = boxes[0][:4]
                if pristine is not None:
                    pf = pristine.get(fi)
                    why = ("pristine video shorter than the fake" if pf is None else
                           f"pristine frame {pf.shape[:2]} != fake frame {frame.shape[:2]}"
                           if pf.shape != frame.shape else None)
                    if why:
                        skipped.append({"path": it.path, "frame": fi, "reason": f"{why} (return_source); frame skipped"})
                        continue
                if doubt:
                    doubtful.append({"path": it.path, "frame": fi, "row": len(rows), "reason": doubt})
                m = None
                if masks is not None:
                    mi = fi if Path(it.mask).suffix.lower() in VIDEO_EXT else 0
                    if mi in masks:
                        m = masks[mi]
                    else:
                        skipped.append({"path": it.mask, "frame": fi,
                                        "reason": "mask video shorter than video; mask zero"})
                crop, mcrop, M = crop_face(frame, box, size, margin, m)
                lm = L.fit_template(box) @ M[:, :2].T + M[:, 2]
                i = len(rows)
                cv2.imwrite(str(tmp / "images" / f"{i:06d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
                mask_rel = ""
                if it.label == 1:
                    mask_rel = f"masks/{i:06d}.png"
                    mm = mcrop if mcrop is not None else np.zeros((size, size), np.uint8)
                    cv2.imwrite(str(tmp / mask_rel), mm)
                rows.append(dict(image=f"images/{i:06d}.png", mask=mask_rel, label=it.label, method=it.method,
                                 video_id=it.video_id, dataset=name, identity=-1, frame=fi, source_row=-1,
                                 source_identity=-1, post=("" if it.label == 0 or mcrop is not None else "no-mask")))
                if return_source:  # the original frame through the fake's own crop: pixel-aligned
                    rows[-1]["source"] = f"sources/{i:06d}.png" if pristine is not None else ""
                    if pristine is not None:
                        scrop = crop_face(pristine[fi], box, size, margin)[0]
                        cv2.imwrite(str(tmp / rows[-1]["source"]), cv2.cvtColor(scrop, cv2.COLOR_RGB2BGR))
                lms.append(lm.astype(np.float32))
                kept += 1
            if kept == 0:
                skipped.append({"path": it.path, "reason": "no face in any sampled frame; video skipped"})
        if not rows:  # (scratch removes tmp)
            reasons = {}
            for s in skipped:
                reasons[s["reason"].split(":")[0]] = reasons.get(s["reason"].split(":")[0], 0) + 1
            raise RuntimeError(f"load_real({name!r}): every one of {len(items)} videos was skipped: {reasons}")
        with open(tmp / "index.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=INDEX_FIELDS + (("source",) if return_source else ()))
            w.writeheader()
            w.writerows(rows)
        np.save(tmp / "landmarks.npy", np.stack(lms))
        n_vid_skip = sum(1 for s in skipped
                         if "frame" not in s and ("unreadable" in s["reason"] or "video skipped" in s["reason"]))
        meta = dict(params=dict(name=name, root=str(root), split=split, frames_per_video=frames_per_video, size=size,
                                margin=margin, detector=det_name, quality=quality, methods=methods,
                                max_videos=max_videos, **({"return_source": True} if return_source else {})),
                    n_items=len(items), n_faces=len(rows), skipped=skipped, videos_skipped=n_vid_skip,
                    doubtful=doubtful,
                    seconds=round(time.perf_counter() - t0, 2), data_version=DATA_VERSION)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        publish(tmp, out, overwrite=False)
    if skipped or doubtful:
        msg = (f"load_real({name!r}): kept {len(rows)} faces from {len(items)} items with the {det_name} detector, "
               f"{len(doubtful)} of them doubtful; skipped {n_vid_skip} videos and "
               f"{sum(1 for s in skipped if 'frame' in s)} frames (see ds.skipped, ds.meta['doubtful'] / "
               f"{out / 'meta.json'})")
        log.warning(msg)
        warnings.warn(msg, stacklevel=2)
    return _loaded(Dataset(out))


_LOADED: list[dict] = []  # what load_real returned since reset_loaded(): a chapter run's manifest lists it


def _loaded(ds):
    m, skipped = ds.meta, ds.meta.get("skipped", [])
    _LOADED.append({"name": m["params"]["name"], "split": m["params"]["split"], "root": m["params"]["root"],
                    "detector": m["params"]["detector"], "faces": m.get("n_faces"),
                    "doubtful": None if "doubtful" not in m else len(m["doubtful"]),
                    "skipped_videos": m.get("videos_skipped"),
                    "skipped_frames": sum(1 for s in skipped if "frame" in s), "cache": str(ds.root)})
    return ds


def loaded() -> list[dict]:
    """One record per :func:`load_real` call since :func:`reset_loaded` (``dfnb.runner.start``): data set,
    split, root, the detector that ran, faces kept, doubtful, skipped videos and frames, cache folder."""
    return [dict(r) for r in _LOADED]


def reset_loaded() -> None:
    _LOADED.clear()
