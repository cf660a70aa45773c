"""Example arrays for the book's figures (chapter 00): every family on one face, every benchmark,
SBI on the public-domain photos.  Pure arrays; plotting lives in the chapters / ``dfnb.viz``."""
from __future__ import annotations

import numpy as np

from dfnb.data.manipulations import manipulate
from dfnb.data.render import STYLES, Identity, render_face, sample_frame

FAMILY_ORDER = ("faceswap", "deepfakes", "face2face", "neuraltextures", "attribute_hair", "attribute_glasses",
                "synthesis", "celebdf", "dfvae", "gan_lq")


def family_gallery(size: int = 128, seed: int = 0, families=FAMILY_ORDER, style: str = "studio") -> dict:
    """{"pristine": (H, W, 3) uint8, family: {"fake": (H, W, 3) uint8, "mask": (H, W) float32}} on one face."""
    rng = np.random.default_rng(seed)
    st = STYLES[style]
    ident = Identity.sample(rng, st)
    ident = Identity(**{**ident.__dict__, "glasses": 1})
    face = render_face(ident, sample_frame(rng, st), size, st)
    src = Identity.sample(rng, st)
    out = {"pristine": face.image, "landmarks": face.landmarks}
    for f in families:
        fake, mask = manipulate(f, face, np.random.default_rng([seed, len(f)]), style=st, source_identity=src)
        out[f] = {"fake": (fake * 255 + 0.5).astype(np.uint8), "mask": mask}
    return out


def benchmark_gallery(names=None, n: int = 4, size: int = 128, seed: int = 0) -> dict:
    """{benchmark: [(image (H, W, 3) uint8, mask (H, W) uint8 or None, method), ...]} -- the first
    video of ``n`` identities per set, the real frame then its first fake (no disk cache)."""
    from dfnb.data.benchmark import BENCHMARKS, iter_split

    out = {}
    for name in names or BENCHMARKS:
        spec = BENCHMARKS[name]
        items = []
        for s in iter_split(name, "test", size=size, n_videos=n, frames_per_video=1, seed=seed,
                            methods=("real", spec.methods[0])):
            items.append((s["image"], s["mask"], s["method"]))
        out[name] = items
    return out


def photo_sbi(seed: int = 0, detector="auto") -> dict:
    """Self-blended images of skimage's ``astronaut`` and matplotlib's ``grace_hopper.jpg`` (both public
    domain, read from the installed packages): {name: {"image", "fake", "mask", "landmarks"}}."""
    import matplotlib.cbook as cbook
    import skimage.data
    from matplotlib.image import imread

    from dfnb.data.sbi import self_blend_photo

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        gh = np.asarray(imread(f, format="jpg"))[..., :3].astype(np.uint8)
    out = {}
    for name, img in (("astronaut", skimage.data.astronaut()), ("grace_hopper", gh)):
        fake, mask, lm = self_blend_photo(img, np.random.default_rng(seed), detector=detector)
        out[name] = {"image": img, "fake": (fake * 255 + 0.5).astype(np.uint8), "mask": mask, "landmarks": lm}
    return out
