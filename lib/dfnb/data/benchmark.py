"""The book's synthetic benchmarks: named sets, identity-disjoint splits, an on-disk cache, a Dataset.

``load_benchmark(name, split)`` renders a set on first use into a cache directory (default
``results/_cache/data/`` under the repository, or ``$DFNB_DATA_CACHE``) keyed by a hash of every
generation parameter and the data-library version, and reuses it afterwards.  Each split directory
holds ``images/*.png`` (after compression), ``masks/*.png`` (fakes only), ``landmarks.npy`` (N, 68, 2),
``index.csv`` (one row per face) and ``meta.json`` (parameters, counts, speed).

Every name is an *analogue*: numbers measured on it are numbers on the synthetic set, never on the
real data set it imitates.

================ ======================= ================================================================
name             imitates                how it differs from ``ffpp-syn`` (the training domain)
================ ======================= ================================================================
ffpp-syn         FaceForensics++         studio renderer; real + faceswap, deepfakes, face2face,
                                         neuraltextures (1 real : 4 fake); qualities raw / hq / lq
fmld-syn         FMLD (Kong et al.)      still portraits (1 frame / identity), celeb renderer; real +
                                         attribute_hair, attribute_glasses, synthesis (whole image)
celebdf-syn      Celeb-DF v2             celeb renderer (warm light, makeup, busy backgrounds), softer camera;
                                         one improved swap (mild AE, re-noised and sharpened, full colour
                                         match, wide elastic mask); 2 fakes per real
dfdc-syn         DFDC (full)             amateur renderer (coloured/dim light, outdoor, phone noise and
                                         blur); a mix of four swap methods; 60 % of the videos rescaled +
                                         re-encoded (JPEG)
dfdcp-syn        DFDC preview            amateur renderer; two methods (faceswap, deepfakes); half re-encoded
dfo-syn          DeeperForensics-1.0     lab renderer (frontal, even light, softer lens); DF-VAE-like swap
                                         (sharpened); half the videos (real and fake) carry one of the 7
                                         perturbations x 5 levels
dfd-syn          DFD (Google/Jigsaw)     lab-like actors in rooms/outdoors, softer camera; its own deepfake
                                         pipeline (``dfd``: milder AE, re-noised, sharpened)
dftimit-syn      DeepfakeTIMIT           grey-background low-res (0.5x) heads; faceswap-GAN LQ and HQ
wdf-syn          WildDeepfake            "wild" renderer (any pose/light, soft focus); mixed methods; half
                                         the videos re-compressed (rescale + one or two JPEGs)
================ ======================= ================================================================
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from dfnb.data import corruptions, quality as Q
from dfnb.data.manipulations import FAMILIES, manipulate
from dfnb.data.render import STYLES, Identity, Style, render_face, sample_video

log = logging.getLogger(__name__)
DATA_VERSION = "5"  # bump when generation changes; part of every cache key
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = {"train": 0.72, "val": 0.14, "test": 0.14}


@dataclass(frozen=True)
class BenchmarkSpec:
    """What a named benchmark renders.  ``n_videos`` = real videos (identities) per split."""

    name: str
    imitates: str
    style: Style
    methods: tuple
    domain: int
    n_videos: dict = field(default_factory=lambda: {"train": 60, "val": 12, "test": 12})
    frames_per_video: int = 4
    fakes_per_video: int = 1
    post: str | None = None        # "dfdc" | "wild" | "perturb" | None
    post_p: float = 0.0


def _style(base: str, **kw) -> Style:
    return replace(STYLES[base], **kw)


_CROSS_N = {"train": 24, "val": 8, "test": 24}
# The cross-domain styles are calibrated (chapter 00, ``dfnb.crossdomain``) so that an ImageNet lite0 trained
# on ffpp-syn loses >= 10 AUC points on each set, near the real sets' drops (FF++ -> Celeb-DF / DFDC /
# DF-1.0 / DFD / WDF: 15-40 points in the papers).  Camera blur is the strongest lever: FF++-trained
# detectors read blur as a forgery trace.  Phone footage (DFDC): the amateur renderer at full resolution.
_PHONE = _style("amateur", res_factor=1.0, blur=(0.1, 0.8))
BENCHMARKS: dict[str, BenchmarkSpec] = {s.name: s for s in [
    BenchmarkSpec("ffpp-syn", "FaceForensics++ (Roessler et al., ICCV 2019)", STYLES["studio"],
                  ("faceswap", "deepfakes", "face2face", "neuraltextures"), domain=1),
    BenchmarkSpec("fmld-syn", "FMLD (Kong et al., TIFS 2022: attribute edits + entire synthesis)", STYLES["celeb"],
                  ("attribute_hair", "attribute_glasses", "synthesis"), domain=2,
                  n_videos={"train": 240, "val": 48, "test": 48}, frames_per_video=1),
    BenchmarkSpec("celebdf-syn", "Celeb-DF v2 (Li et al., CVPR 2020)", _style("celeb", blur=(0.15, 0.7)), ("celebdf",),
                  domain=3,
                  n_videos=_CROSS_N, fakes_per_video=2),
    BenchmarkSpec("dfdc-syn", "DFDC (Dolhansky et al., 2020)", _PHONE, ("dfdc",), domain=4,
                  n_videos=_CROSS_N, post="dfdc", post_p=0.6),
    BenchmarkSpec("dfdcp-syn", "DFDC preview (Dolhansky et al., 2019)", _PHONE, ("faceswap", "deepfakes"),
                  domain=5, n_videos=_CROSS_N, post="dfdc", post_p=0.5),
    BenchmarkSpec("dfo-syn", "DeeperForensics-1.0 (Jiang et al., CVPR 2020), perturbed", _style("lab", blur=(0.1, 0.6)),
                  ("dfvae",), domain=6, n_videos=_CROSS_N, post="perturb", post_p=0.5),
    BenchmarkSpec("dfd-syn", "DeepFakeDetection (Google/Jigsaw, 2019)",
                  _style("lab", name="dfd", bg_kinds=("room", "outdoor"), yaw=20, light_strength=(0.1, 0.3),
                         blur=(0.2, 0.8)),
                  ("dfd",), domain=7, n_videos=_CROSS_N),
    BenchmarkSpec("dftimit-syn", "DeepfakeTIMIT (Korshunov & Marcel, 2018)", STYLES["timit"], ("gan_lq", "gan_hq"),
                  domain=8, n_videos=_CROSS_N),
    BenchmarkSpec("wdf-syn", "WildDeepfake (Zi et al., ACM MM 2020)", _style("wild", res_factor=1.0, blur=(0.1, 0.9)),
                  ("dfdc",), domain=9, n_videos=_CROSS_N, post="wild", post_p=0.5),
]}


def list_benchmarks() -> dict[str, str]:
    """{name: what it imitates}."""
    return {k: v.imitates for k, v in BENCHMARKS.items()}


def get_spec(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        import difflib

        close = difflib.get_close_matches(name, list(BENCHMARKS), n=3)
        hint = f" (did you mean {close}?)" if close else ""
        raise KeyError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}{hint}")
    return BENCHMARKS[name]


def identity_ids(name: str, split: str, n_videos: int) -> list[int]:
    """Global identity numbers of a split; splits draw from disjoint ranges, so they never share one."""
    spec = get_spec(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n_videos > 100_000:
        raise ValueError("at most 100000 videos per split")
    return [spec.domain * 1_000_000 + SPLITS.index(split) * 200_000 + i for i in range(n_videos)]


def _source_ids(ids: list[int], k: int, rng: np.random.Generator) -> list[list[int]]:
    """For each target, ``k`` source identities of the same split (never itself)."""
    n = len(ids)
    out = []
    shifts = rng.permutation(np.arange(1, n))[:k] if n > 1 else []
    for i, t in enumerate(ids):
        if n > 1:
            srcs = [ids[(i + int(s)) % n] for s in shifts]
            while len(srcs) < k:
                srcs.append(ids[(i + 1 + len(srcs)) % n])
        else:  # a single-video split borrows reserved source-only identities of the same range
            srcs = [t + 100_000 + j for j in range(k)]
        out.append(srcs)
    return out


# per-video re-encoding of the "dfdc" and "wild" post-processing: rescale by U(scale), JPEG at quality
# U{jpeg}; "wild" may re-compress once more.  Calibrated in chapter 00 (crossdomain.calibrate).
POST_PARAMS = {"dfdc": {"scale": (0.5, 1.0), "jpeg": (40, 95)}, "wild": {"scale": (0.35, 1.0), "jpeg": (25, 95)}}


def _post(img: np.ndarray, kind: str | None, p: float, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Per-video post-processing; returns (image, description)."""
    if kind is None or rng.random() >= p:
        return img, ""
    H, W = img.shape[:2]
    if kind in POST_PARAMS:
        pp = POST_PARAMS[kind]
        s = rng.uniform(*pp["scale"])
        q = int(rng.integers(*pp["jpeg"]))
        small = cv2.resize(img, (max(8, int(W * s)), max(8, int(H * s))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(Q.jpeg(small, q), (W, H), interpolation=cv2.INTER_LINEAR)
        if kind == "wild" and rng.random() < 0.5:
            out = Q.jpeg(out, int(rng.integers(30, 90)))
        return out, f"{kind}:s={s:.2f},q={q}"
    if kind == "perturb":
        k = corruptions.KINDS[int(rng.integers(len(corruptions.KINDS)))]
        lv = int(rng.integers(1, 6))
        return corruptions.apply(img, k, lv, rng), f"{k}:{lv}"
    raise ValueError(f"unknown post-processing {kind!r}")


def _video_params(spec, split_idx, ident_id, seed, n_frames):
    rng = np.random.default_rng([seed, spec.domain, split_idx, ident_id, 0])
    ident = Identity.sample(rng, spec.style)
    frames = sample_video(rng, n_frames, spec.style)
    return ident, frames


SAME_IDENTITY = ("face2face", "neuraltextures", "attribute_hair", "attribute_glasses", "synthesis")


def iter_split(name: str, split: str, *, size: int = 128, n_videos: int | None = None,
               frames_per_video: int | None = None, quality: str = "hq", seed: int = 0,
               methods: tuple | list | None = None, videos=None):
    """Generate a split face by face (no disk); ``videos`` restricts it to those video indices.  Yields dicts with numpy arrays::

        image (H, W, 3) uint8 (compressed), mask (H, W) uint8 or None (real), landmarks (68, 2) float32,
        pristine (H, W, 3) uint8 (the uncompressed real frame the face was made from),
        label, method, video_id, identity, frame, source_identity, post, key, source_key

    Within a video the real frames come first, then each method's fakes of the same frames; a fake
    video's frames share the method's settings (strengths, mask shape), as one run of a tool would.
    Identity swaps get ``fakes_per_video`` fake videos per real one (different sources of the split).
    """
    spec = get_spec(name)
    methods = _methods(spec, methods)
    n = spec.n_videos[split] if n_videos is None else int(n_videos)
    F = spec.frames_per_video if frames_per_video is None else int(frames_per_video)
    if n < 1 or F < 1:
        raise ValueError(f"n_videos and frames_per_video must be >= 1, got {n}, {F}")
    Q.compress(np.zeros((8, 8, 3), np.uint8), quality)  # validates the level early
    si = SPLITS.index(split)
    ids = identity_ids(name, split, n)
    srcs = _source_ids(ids, spec.fakes_per_video, np.random.default_rng([seed, spec.domain, si, 7]))
    fake_methods = [m for m in methods if m != "real"]
    for vi in range(n) if videos is None else videos:
        ident_id = ids[vi]
        ident, frames = _video_params(spec, si, ident_id, seed, F)
        faces = [render_face(ident, fr, size, spec.style) for fr in frames]
        vid = f"{vi:04d}"
        if "real" in methods:
            pr = np.random.default_rng([seed, spec.domain, si, ident_id, 1])
            apply_post, pseed = pr.random() < spec.post_p, int(pr.integers(2**31))
            for t, face in enumerate(faces):
                img, desc = _post(face.image, spec.post, float(apply_post), np.random.default_rng([pseed, t]))
                yield dict(image=Q.compress(img, quality), mask=None, landmarks=face.landmarks, pristine=face.image,
                           label=0, method="real", video_id=vid, identity=ident_id, frame=t, source_identity=-1,
                           post=desc, key=("real", vid, t), source_key=None)
        for m in fake_methods:
            mseed = zlib.crc32(m.encode())  # stable per family name, whatever else is registered
            same = m in SAME_IDENTITY
            for k, src_id in enumerate([ident_id] if same else srcs[vi]):
                src_ident = None if same else _video_params(spec, si, src_id, seed, 1)[0]
                fvid = vid if m in ("attribute_hair", "attribute_glasses", "synthesis") else \
                    f"{vid}_{ids.index(src_id) if src_id in ids else 9999:04d}" if not same else f"{vid}_{vid}"
                pr = np.random.default_rng([seed, spec.domain, si, ident_id, 100 + mseed, k])
                apply_post, pseed = pr.random() < spec.post_p, int(pr.integers(2**31))
                for t, face in enumerate(faces):
                    # one stream per fake video: every frame draws the same method settings (no flicker)
                    rng = np.random.default_rng([seed, spec.domain, si, ident_id, 100 + mseed, k, 0])
                    fake, mask = manipulate(m, face, rng, style=spec.style, source_identity=src_ident)
                    img = (fake * 255 + 0.5).astype(np.uint8)
                    img, desc = _post(img, spec.post, float(apply_post), np.random.default_rng([pseed, t]))
                    yield dict(image=Q.compress(img, quality), mask=(mask * 255 + 0.5).astype(np.uint8),
                               landmarks=face.landmarks if m != "synthesis" else np.full((68, 2), np.nan, np.float32),
                               pristine=face.image, label=1, method=m, video_id=fvid,
                               identity=ident_id, frame=t, source_identity=src_id, post=desc, key=(m, fvid, t),
                               source_key=("real", vid, t) if m != "synthesis" else None)



def _methods(spec: BenchmarkSpec, methods) -> tuple:
    if methods is None:
        return ("real",) + tuple(spec.methods)
    methods = tuple(methods)
    bad = [m for m in methods if m != "real" and m not in FAMILIES]
    if bad:
        raise ValueError(f"unknown methods {bad}; known: ['real'] + {sorted(FAMILIES)}")
    if not methods:
        raise ValueError("methods must not be empty")
    return methods


def count_faces(name, split, n_videos=None, frames_per_video=None, methods=None) -> int:
    spec = get_spec(name)
    ms = _methods(spec, methods)
    n = spec.n_videos[split] if n_videos is None else n_videos
    F = spec.frames_per_video if frames_per_video is None else frames_per_video
    per_video = sum(1 if m == "real" else spec.fakes_per_video for m in ms)
    return n * F * per_video


# ----------------------------------------------------------------------------- cache
def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def default_cache() -> Path:
    env = os.environ.get("DFNB_DATA_CACHE")
    return Path(env) if env else repo_root() / "results" / "_cache" / "data"


def cache_key(params: dict) -> str:
    import dfnb

    blob = json.dumps({**params, "data_version": DATA_VERSION, "dfnb_version": dfnb.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


INDEX_FIELDS = ("image", "mask", "label", "method", "video_id", "dataset", "identity", "frame", "source_row",
                "source_identity", "post")


def _video_job(args) -> list[dict]:
    kw, vi = args
    out = []
    for s in iter_split(**kw, videos=[vi]):
        s["pristine"] = None  # not needed by the writer; spare the pickling
        out.append(s)
    return out


def _samples(kw: dict, n: int, workers: int):
    """iter_split's samples in order, rendered by ``workers`` processes (videos are independent)."""
    if workers <= 1 or n <= 1:
        yield from iter_split(**kw)
        return
    import multiprocessing as mp

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(min(workers, n)) as pool:
        for samples in pool.imap(_video_job, [(kw, vi) for vi in range(n)], chunksize=1):
            yield from samples


def default_workers() -> int:
    """Processes for generation: ``$DFNB_DATA_WORKERS`` or 1."""
    return max(1, int(os.environ.get("DFNB_DATA_WORKERS", "1")))


@contextlib.contextmanager
def scratch(tmp: Path):
    """Make the temporary folder ``tmp`` (a stale one of this process id is replaced) and remove it when
    the block raises, Ctrl-C included; on success :func:`publish` has moved it away."""
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    """Move a finished temporary folder to ``out_dir`` atomically.  An existing ``out_dir`` is replaced
    only if ``overwrite`` (or if it is an unfinished cache without meta.json); a finished cache that
    another process published meanwhile is kept and ``tmp`` is dropped."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, out_dir)  # atomic; fails if out_dir exists and is not empty
    except OSError:
        if overwrite or not (out_dir / "meta.json").exists():
            trash = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            os.replace(out_dir, trash)
            os.replace(tmp, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:  # another process finished the same cache first
            shutil.rmtree(tmp, ignore_errors=True)


def write_split(out_dir: str | Path, name: str, split: str, *, size: int = 128, n_videos: int | None = None,
                frames_per_video: int | None = None, quality: str = "hq", seed: int = 0, methods=None,
                progress: bool = True, overwrite: bool = False, workers: int | None = None) -> dict:
    """Render one split into ``out_dir`` (images/, masks/, landmarks.npy, index.csv, meta.json).

    ``workers`` processes render videos in parallel (default :func:`default_workers`); the output is
    byte-identical whatever the number.

    Writes into a temporary sibling and renames it at the end, so a crash never leaves a half cache.
    Refuses to overwrite an existing ``out_dir`` unless ``overwrite``.  Returns the meta dict.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists; pass overwrite=True (or --overwrite) to replace it")
    spec = get_spec(name)
    params = dict(name=name, split=split, size=int(size), n_videos=n_videos, frames_per_video=frames_per_video,
                  quality=Q.ALIASES.get(quality, quality), seed=int(seed), methods=list(_methods(spec, methods)))
    total = count_faces(name, split, n_videos, frames_per_video, methods)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    with scratch(tmp):  # removed again if anything fails or Ctrl-C stops it
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        rows, lms, key_to_row = [], [], {}
        t0 = time.perf_counter()
        png = [cv2.IMWRITE_PNG_COMPRESSION, 1]
        counts: dict[str, int] = {}
        kw = dict(name=name, split=split, size=size, n_videos=n_videos, frames_per_video=frames_per_video,
                  quality=quality, seed=seed, methods=methods)
        n = spec.n_videos[split] if n_videos is None else int(n_videos)
        jobs = _samples(kw, n, default_workers() if workers is None else int(workers))
        for s in tqdm(jobs, total=total, desc=f"{name}/{split}", disable=not progress, unit="face"):
            i = len(rows)
            img_rel = f"images/{i:06d}.png"
            if not cv2.imwrite(str(tmp / img_rel), cv2.cvtColor(s["image"], cv2.COLOR_RGB2BGR), png):
                raise OSError(f"could not write {tmp / img_rel}")
            mask_rel = ""
            if s["mask"] is not None:
                mask_rel = f"masks/{i:06d}.png"
                cv2.imwrite(str(tmp / mask_rel), s["mask"], png)
            key_to_row[s["key"]] = i
            rows.append(dict(image=img_rel, mask=mask_rel, label=s["label"], method=s["method"], video_id=s["video_id"],
                             dataset=name, identity=s["identity"], frame=s["frame"],
                             source_row=key_to_row.get(s["source_key"], -1) if s["source_key"] else -1,
                             source_identity=s["source_identity"], post=s["post"]))
            lms.append(s["landmarks"])
            counts[s["method"]] = counts.get(s["method"], 0) + 1
        dt = time.perf_counter() - t0
        with open(tmp / "index.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=INDEX_FIELDS)
            w.writeheader()
            w.writerows(rows)
        np.save(tmp / "landmarks.npy", np.stack(lms).astype(np.float32))
        nbytes = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        meta = dict(params=params, imitates=spec.imitates, style=spec.style.name, counts=counts, n_faces=len(rows),
                    seconds=round(dt, 3), faces_per_s=round(len(rows) / max(dt, 1e-9), 1), bytes=nbytes,
                    data_version=DATA_VERSION, skipped=[])
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        publish(tmp, out_dir, overwrite)
    log.info("wrote %d faces of %s/%s to %s in %.1fs", len(rows), name, split, out_dir, dt)
    return meta


def load_benchmark(name: str, split: str, *, size: int = 128, n_videos: int | None = None,
                   frames_per_video: int | None = None, quality: str = "hq", seed: int = 0, root=None,
                   methods=None, progress: bool = True, return_source: bool = False, workers: int | None = None,
                   in_memory: bool | None = None):
    """The synthetic benchmark ``name``'s ``split`` as a :class:`FaceForgeryDataset`.

    Generated on first use into ``root`` (default :func:`default_cache`) under a key that hashes all
    parameters and the library version; reused afterwards.  ``split`` in {"train","val","test"}
    (identity-disjoint); ``quality`` in {"raw","hq","lq"} (or "c0","c23","c40"); ``methods`` picks a
    subset of ``("real",) + spec.methods`` (or any family in ``dfnb.data.manipulations.FAMILIES``);
    ``workers`` processes render a missing cache (default ``$DFNB_DATA_WORKERS`` or 1; same bytes).
    ``in_memory``: decode the split once into memory (:meth:`FaceForgeryDataset.preload`); None (default):
    do so when its decoded size is at most ``$DFNB_MEMORY_MB`` (default 2048) MB.
    """
    spec = get_spec(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    quality = Q.ALIASES.get(quality, quality)
    if quality not in Q.LEVELS:
        raise ValueError(f"unknown quality {quality!r}; use one of {sorted(Q.LEVELS)}")
    params = dict(name=name, split=split, size=int(size), n_videos=n_videos, frames_per_video=frames_per_video,
                  quality=quality, seed=int(seed), methods=list(_methods(spec, methods)))
    base = Path(root) if root is not None else default_cache()
    d = base / name / f"{split}-{cache_key(params)}"
    if not (d / "meta.json").exists():
        write_split(d, name, split, size=size, n_videos=n_videos, frames_per_video=frames_per_video, quality=quality,
                    seed=seed, methods=methods, progress=progress, overwrite=d.exists(), workers=workers)
    ds = FaceForgeryDataset(d, return_source=return_source)
    if in_memory is None:
        in_memory = len(ds) * int(size) ** 2 * 4 <= float(os.environ.get("DFNB_MEMORY_MB", "2048")) * 2**20
    return ds.preload() if in_memory else ds


# ----------------------------------------------------------------------------- Dataset
try:
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover
    _TorchDataset = object


def _read_image(path: Path, flags=cv2.IMREAD_COLOR) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"missing image {path} (the cache is incomplete; delete its folder to regenerate)")
    img = cv2.imread(str(path), flags)
    if img is None:
        raise ValueError(f"corrupt or unreadable image {path} (delete the cache folder to regenerate)")
    return img


def _mask_known(row: dict) -> bool:
    """An index row's mask is its true mask: a real face (nothing forged), or a fake with a mask file that the
    real-data loader did not mark ``post == "no-mask"`` (its all-zero stand-in)."""
    return row["label"] == 0 or (bool(row["mask"]) and row.get("post") != "no-mask")


class FaceForgeryDataset(_TorchDataset):
    """A face-forgery split stored as images + masks + ``index.csv`` (+ ``landmarks.npy``, ``meta.json``).

    ``ds[i]`` is a dict: ``image`` float32 tensor (3, H, W) in [0, 1]; ``mask`` float32 (1, H, W) in
    [0, 1] (zeros for real faces); ``has_mask`` bool tensor, False for a fake with no true mask (a real
    data set without mask videos: its ``mask`` is zeros that mask losses and localization metrics leave
    out); ``label`` long (1 = fake); ``video_id``, ``method``, ``dataset`` str;
    ``identity``, ``frame`` int; ``landmarks`` float32 (68, 2) when present (the pristine target's, so NaN
    for whole-image synthesis; template landmarks for real data sets); ``source`` (3, H, W), the
    pristine frame the fake was made from, when ``return_source`` and one exists (else the image itself).
    ``transform`` (optional) is called on the finished dict and returns a dict.
    """

    def __init__(self, root, return_source: bool = False, transform=None):
        import torch  # noqa: F401

        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder {self.root} does not exist")
        idx = self.root / "index.csv"
        if not idx.exists():
            raise FileNotFoundError(f"{idx} is missing: expected images/, masks/, index.csv, meta.json in {self.root}")
        with open(idx, newline="") as f:
            self.rows = list(csv.DictReader(f))
        need = {"image", "mask", "label", "method", "video_id", "dataset"}
        if self.rows and not need <= set(self.rows[0]):
            raise ValueError(f"{idx} is malformed: needs columns {sorted(need)}, has {sorted(self.rows[0])}")
        for r in self.rows:
            r["label"] = int(r["label"])
            for k in ("identity", "frame", "source_row"):
                r[k] = int(r.get(k) or -1) if k != "frame" else int(r.get(k) or 0)
        lm = self.root / "landmarks.npy"
        self.landmarks = np.load(lm) if lm.exists() else None
        mp = self.root / "meta.json"
        self.meta = json.loads(mp.read_text()) if mp.exists() else {}
        self.skipped = self.meta.get("skipped", [])
        self.return_source = return_source
        self.transform = transform
        self._images: np.ndarray | None = None  # (N, H, W, 3) uint8 once preloaded
        self._masks: np.ndarray | None = None   # (N, H, W) uint8, zeros for real faces

    @property
    def fingerprint(self) -> str:
        """A cheap identity of the split's content: sha256 of ``index.csv`` + the generation parameters."""
        h = hashlib.sha256((self.root / "index.csv").read_bytes())
        h.update(json.dumps([self.meta.get("params"), self.meta.get("data_version")], sort_keys=True).encode())
        return h.hexdigest()[:24]

    @property
    def preloaded(self) -> bool:
        return self._images is not None

    def preload(self) -> "FaceForgeryDataset":
        """Decode every image and mask once into memory (uint8), so that training does not decode a PNG
        per sample and step.  Returns ``self``.  Needs images of one size (a benchmark split has)."""
        if self._images is None and self.rows:
            imgs = [self._decode_rgb(i) for i in range(len(self))]
            shapes = {im.shape for im in imgs}
            if len(shapes) != 1:
                raise ValueError(f"preload: {self.root} holds images of several shapes {sorted(shapes)}")
            H, W = imgs[0].shape[:2]
            masks = np.zeros((len(self), H, W), np.uint8)
            for i, r in enumerate(self.rows):
                if r["mask"]:
                    m = _read_image(self.root / r["mask"], cv2.IMREAD_GRAYSCALE)
                    if m.shape != (H, W):
                        raise ValueError(f"mask {r['mask']} has shape {m.shape}, image {(H, W)}")
                    masks[i] = m
            self._images, self._masks = np.stack(imgs), masks
        return self

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r["label"] for r in self.rows], np.int64)

    @property
    def has_mask(self) -> np.ndarray:
        """(N,) bool: False for the fakes whose true mask is unknown (no mask file, or the real-data
        loader's ``post == "no-mask"``: FaceShifter, Celeb-DF, DF-TIMIT, a missing mask frame)."""
        return np.array([_mask_known(r) for r in self.rows], bool)

    @property
    def methods(self) -> list[str]:
        return [r["method"] for r in self.rows]

    def summary(self) -> dict[str, int]:
        """Faces per method, plus skipped (counted, never silent)."""
        out: dict[str, int] = {}
        for r in self.rows:
            out[r["method"]] = out.get(r["method"], 0) + 1
        out["skipped"] = len(self.skipped)
        return out

    def load_rgb(self, i: int) -> np.ndarray:
        """Image ``i`` as (H, W, 3) uint8 RGB."""
        if self._images is not None:
            return self._images[i]
        return self._decode_rgb(i)

    def _decode_rgb(self, i: int) -> np.ndarray:
        return cv2.cvtColor(_read_image(self.root / self.rows[i]["image"]), cv2.COLOR_BGR2RGB)

    def load_mask(self, i: int) -> np.ndarray:
        """Mask ``i`` as (H, W) float32 in [0, 1] (zeros of the image's size for real faces)."""
        r = self.rows[i]
        if self._masks is not None:
            return self._masks[i].astype(np.float32) / np.float32(255)
        if not r["mask"]:
            return np.zeros(self.load_rgb(i).shape[:2], np.float32)
        return _read_image(self.root / r["mask"], cv2.IMREAD_GRAYSCALE).astype(np.float32) / np.float32(255)

    def __getitem__(self, i: int) -> dict:
        import torch

        if i < 0:
            i += len(self)
        r = self.rows[i]
        img = self.load_rgb(i)
        if self._masks is not None:
            mask = torch.from_numpy(self.load_mask(i))[None]
        elif r["mask"]:
            m = _read_image(self.root / r["mask"], cv2.IMREAD_GRAYSCALE)
            if m.shape != img.shape[:2]:
                raise ValueError(f"mask {r['mask']} has shape {m.shape}, image {img.shape[:2]}")
            mask = torch.from_numpy(m.astype(np.float32) / np.float32(255))[None]
        else:
            mask = torch.zeros((1,) + img.shape[:2], dtype=torch.float32)
        out = {
            "image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255),
            "mask": mask,
            "label": torch.tensor(r["label"], dtype=torch.long),
            "has_mask": torch.tensor(_mask_known(r)),
            "video_id": r["video_id"], "method": r["method"], "dataset": r["dataset"],
            "identity": r["identity"], "frame": r["frame"],
        }
        if self.landmarks is not None:
            out["landmarks"] = torch.from_numpy(self.landmarks[i].copy())
        if self.return_source:
            j = r["source_row"]
            src = self.load_rgb(j) if j >= 0 else img
            out["source"] = torch.from_numpy(np.ascontiguousarray(src.transpose(2, 0, 1))).float().div_(255)
        if self.transform is not None:
            out = self.transform(out)
        return out


class SelfBlended(_TorchDataset):
    """Self-blended fakes made on the fly from the real faces of ``base`` (SBI-style training data).

    ``ds[i]`` is the i-th real face of ``base`` self-blended (method "sbi", label 1, exact mask);
    deterministic for a given ``seed`` and :meth:`set_epoch`.  Use ``ConcatDataset([reals, SelfBlended(reals)])``
    for a balanced set.  ``base`` must provide ``rows``/``landmarks``/``load_rgb`` (a FaceForgeryDataset).
    """

    def __init__(self, base: FaceForgeryDataset, seed: int = 0):
        if base.landmarks is None:
            raise ValueError("SelfBlended needs landmarks (landmarks.npy) in the base dataset")
        self.base = base
        self.real = [i for i, r in enumerate(base.rows) if r["label"] == 0]
        if not self.real:
            raise ValueError(f"{base.root} has no real faces to self-blend")
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.real)

    def __getitem__(self, i: int) -> dict:
        import torch

        from dfnb.data.sbi import self_blend

        j = self.real[i]
        img = self.base.load_rgb(j)
        rng = np.random.default_rng([self.seed, self.epoch, j])
        fake, mask = self_blend(img, self.base.landmarks[j], rng)
        r = self.base.rows[j]
        fake_u8 = (fake * 255 + 0.5).astype(np.uint8)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(fake_u8.transpose(2, 0, 1))).float().div_(255),
            "mask": torch.from_numpy(mask)[None],
            "label": torch.tensor(1, dtype=torch.long),
            "has_mask": torch.tensor(True),
            "video_id": r["video_id"], "method": "sbi", "dataset": r["dataset"],
            "identity": r["identity"], "frame": r["frame"],
            "landmarks": torch.from_numpy(self.base.landmarks[j].copy()),
            "source": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255),
        }


def params_dict(spec: BenchmarkSpec) -> dict:
    d = asdict(spec)
    d["style"] = spec.style.name
    return d
