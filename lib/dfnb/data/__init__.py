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
