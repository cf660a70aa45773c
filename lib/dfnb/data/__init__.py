"""Data: the synthetic face-forgery benchmarks, corruptions, SBI blending and real data-set loaders.

No real face data set or face-generator weights can be had offline, so the book's default data is
rendered deterministically from a seed (``dfnb.data.render``), manipulated by families modelled on
FF++ and FMLD (``dfnb.data.manipulations``), compressed like FF++ (``dfnb.data.quality``) and cached
on disk (``dfnb.data.benchmark``).  Real data sets in their published layouts load through
``load_real`` (``dfnb.data.real``).

    ds = load_benchmark("ffpp-syn", "train", quality="hq")   # torch Dataset of dicts
    ds[0]["image"].shape, ds[0]["mask"].shape                  # (3, 128, 128), (1, 128, 128)
"""
from dfnb.data import corruptions, quality, sbi  # noqa: F401
from dfnb.data.benchmark import (BENCHMARKS, SPLITS, FaceForgeryDataset, SelfBlended, default_cache,  # noqa: F401
                                 get_spec, iter_split, list_benchmarks, load_benchmark, write_split)
from dfnb.data.manipulations import FAMILIES, manipulate  # noqa: F401
from dfnb.data.render import STYLES, Face, Frame, Identity, Style, render_face, sample_frame, sample_video  # noqa: F401


def load_real(name: str, root, **kw):
    """A real data set in its published layout as a :class:`FaceForgeryDataset`; see ``dfnb.data.real``."""
    from dfnb.data.real import load_real as _lr

    return _lr(name, root, **kw)


#: synthetic quality name -> the real data sets' compression folder (FF++ and DFD: c23 = HQ, c40 = LQ)
REAL_QUALITY = {"raw": "raw", "hq": "c23", "lq": "c40"}


def load_split(synthetic: str, split: str, *, real: str | None = None, root=None, size: int = 128,
               n_videos: int | None = None, frames_per_video: int | None = None, quality: str = "hq",
               methods=None, real_methods=None, seed: int = 0, progress: bool = False,
               return_source: bool = False):
    """One split of a chapter's data set: the synthetic benchmark ``synthetic``, or, when a reviewer
    passes ``root``, the real data set ``real`` (a ``dfnb.data.real.NAMES`` entry) read from it.

    Returns ``(name, dataset)``: ``name`` is the synthetic set's name, or ``"<real> (real)"``, so that
    every table names the data it was measured on.  For real data, ``quality`` maps through
    ``REAL_QUALITY`` (hq -> c23, lq -> c40), ``real_methods`` picks methods in the real set's own naming
    (``methods`` is for the synthetic one) and ``n_videos`` is not used (the real set's split is
    taken whole); ``frames_per_video`` frames are sampled evenly per video (default 8).
    ``return_source``: items also carry the pristine face each fake was made from under ``source`` (a
    real face: its image); of the real sets only FF++ has one (the original video's frame at the fake's
    index, cropped with the fake's box: ``dfnb.data.real.PairedFaces``), any other is a ``ValueError``.
    """
    if root is None:
        return synthetic, load_benchmark(synthetic, split, size=size, n_videos=n_videos,
                                         frames_per_video=frames_per_video, quality=quality, seed=seed,
                                         methods=methods, progress=progress, return_source=return_source)
    if real is None:
        raise ValueError(f"load_split({synthetic!r}): a root was given but no real data-set name")
    if return_source and real != "ffpp":
        raise ValueError(f"load_split({synthetic!r}, real={real!r}): return_source=True, but {real} has no "
                         "frame-aligned pristine video per fake (only ffpp has)")
    if quality not in REAL_QUALITY:
        raise ValueError(f"quality must be one of {sorted(REAL_QUALITY)}, got {quality!r}")
    ds = load_real(real, root, split=split, size=size, frames_per_video=frames_per_video or 8,
                   quality=REAL_QUALITY[quality], methods=real_methods, progress=progress,
                   return_source=return_source)
    return f"{real} (real)", ds


def missing_quality(real: str, root, quality: str) -> str | None:
    """Why the real set ``real`` under ``root`` has no ``quality`` (hq/lq) videos, e.g. a c23-only FF++
    download without c40 folders: a chapter then skips that column and prints this note.  None when they
    are there, or when ``root`` is None (the synthetic set has every quality)."""
    if root is None:
        return None
    if quality not in REAL_QUALITY:
        raise ValueError(f"quality must be one of {sorted(REAL_QUALITY)}, got {quality!r}")
    from dfnb.data.real import list_items

    try:
        list_items(real, root, "all", quality=REAL_QUALITY[quality])
    except FileNotFoundError:
        return f"{real} under {root} has no {quality.upper()} ({REAL_QUALITY[quality]}) videos"
    return None
