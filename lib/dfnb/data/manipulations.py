"""Forgery families with exact soft masks, modelled on FF++, FMLD and the cross-domain sets.

Every family is a function ``fn(target, rng, *, style, source_identity=None, **overrides)``
taking the pristine rendered :class:`~dfnb.data.render.Face` ``target`` and returning
``(fake (H, W, 3) float32 in [0, 1], mask (H, W) float32 in [0, 1])`` with

    fake == target.image / 255   wherever mask == 0   (bit for bit before compression)

because every fake is ``m * source + (1 - m) * target`` with ``m`` the stored mask (8-bit exact).
``source`` is made by the family (another identity, a re-rendered expression, an edited
attribute) and carries the family's own traces:

============== ======================================================= ===========================================
family         what it imitates                                        visible traces (what a detector can learn)
============== ======================================================= ===========================================
faceswap       FF++ FaceSwap: graphics swap on the landmark hull       sharp hull boundary, imperfect colour match,
                                                                       foreign skin texture, small misalignment
deepfakes      FF++ Deepfakes: autoencoder swap                        low-res blurry face, checkerboard from
                                                                       transposed-conv upsampling, soft wide mask
face2face      FF++ Face2Face: expression re-enactment (same person)   re-rendered (smoothed, relit) inner face,
                                                                       mouth/chin geometry change
neuraltextures FF++ NeuralTextures: mouth re-rendering                 mouth region only, high-frequency
                                                                       texture patterns from the neural texture
attribute_hair FMLD attribute edit (StarGAN/STGAN hair colour)         hair recoloured, GAN smoothing + grid
attribute_glasses FMLD attribute edit (add / remove eyeglasses)        glasses region, GAN smoothing + grid
synthesis      FMLD/DFFD entire-face synthesis (StyleGAN/PGGAN)        whole image (mask = 1), spectral peaks
                                                                       from 2x upsampling, over-smooth texture
celebdf        Celeb-DF v2 improved DeepFake synthesis                 high-res, well colour-matched, wide soft mask
dfdc           DFDC mixture of swap methods                            random mix of the above, heavier post-proc.
dfvae          DeeperForensics-1.0 DF-VAE                              high-res, colour-matched, few traces
gan_lq/gan_hq  DF-TIMIT faceswap-GAN at 64 / 128 px                    strong / mild autoencoder blur
============== ======================================================= ===========================================

Strengths are drawn per sample from ranges so that families are learnable but not trivial.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import cv2
import numpy as np

from dfnb.data.render import STYLES, Face, Identity, Style, render_face
from dfnb.data.sbi import align, blend, color_transfer, face_hull, soften

FAMILIES: dict[str, Callable] = {}


def register(name: str):
    def deco(fn):
        FAMILIES[name] = fn
        return fn

    return deco


def _f32(face: Face) -> np.ndarray:
    return face.image.astype(np.float32) * np.float32(1 / 255)


@functools.lru_cache(maxsize=16)
def _render_cached(ident: Identity, frame, size: int, style: Style) -> Face:
    """A source face shared by the swap families of one frame (treat as read-only)."""
    return render_face(ident, frame, size, style)


def _rerender(target: Face, style: Style, ident: Identity | None = None, **frame_changes) -> Face:
    size = target.image.shape[0]
    fr = dataclasses.replace(target.frame, **frame_changes) if frame_changes else target.frame
    face = render_face(ident or target.identity, fr, size, style)
    return face


def checkerboard(shape, amplitude: float, phase: int = 0) -> np.ndarray:
    """The period-2 pattern a stride-2 transposed convolution leaves: (H, W) float32 in {-a, +a}/2-ish."""
    H, W = shape[:2]
    yy, xx = np.mgrid[0:H, 0:W]
    p = ((xx + phase) % 2) * 2 - 1 + 0.5 * (((yy + phase // 2) % 2) * 2 - 1)
    return (amplitude * p / 1.5).astype(np.float32)


def gan_traces(img: np.ndarray, rng: np.random.Generator, *, smooth=(0.6, 1.2), grid=(0.012, 0.03)) -> np.ndarray:
    """Generator fingerprint: slight over-smoothing (sigma in px at 128 px) plus a multiplicative
    upsampling grid. (H, W, 3)."""
    out = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(*smooth)) * img.shape[1] / 128) if smooth[1] > 0 else img
    g = checkerboard(img.shape, float(rng.uniform(*grid)), int(rng.integers(4)))
    return np.clip(out * (1 + g[..., None]), 0, 1)


def autoencoder(face: np.ndarray, lm: np.ndarray, rng: np.random.Generator, *, factor=(2.0, 3.0),
                smooth=(0.4, 0.8), grid=(0.01, 0.03)) -> np.ndarray:
    """An autoencoder's decoding of the face box: downscale by ``factor``, smooth, nearest 2x upsampling
    steps (blocky), then the checkerboard.  ``factor`` is relative to a 128-px image (an autoencoder has
    a fixed resolution, so a smaller crop is downscaled less).  Returns (H, W, 3) float32; only the
    face box is changed."""
    H, W = face.shape[:2]
    x0, y0 = np.floor(lm.min(0)).astype(int) - 4
    x1, y1 = np.ceil(lm.max(0)).astype(int) + 4
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    crop = face[y0:y1, x0:x1]
    h, w = crop.shape[:2]
    f = max(1.0, float(rng.uniform(*factor)) * W / 128)
    out = crop
    if f > 1.05:
        small = cv2.resize(crop, (max(4, int(w / f)), max(4, int(h / f))), interpolation=cv2.INTER_AREA)
        s = float(rng.uniform(*smooth))
        if s > 0.05:
            small = cv2.GaussianBlur(small, (0, 0), s)
        mid = cv2.resize(small, (small.shape[1] * 2, small.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
        mid = cv2.blur(mid, (2, 2))
        out = cv2.resize(mid, (w, h), interpolation=cv2.INTER_LINEAR)
    out = out * (1 + checkerboard(out.shape, float(rng.uniform(*grid)), int(rng.integers(4)))[..., None])
    res = face.copy()
    res[y0:y1, x0:x1] = np.clip(out, 0, 1)
    return res


# ----------------------------------------------------------------------------- identity swaps
@dataclasses.dataclass(frozen=True)
class SwapParams:
    """Ranges ``(lo, hi)`` for one swap family (fractions of a 128-px image where spatial)."""

    pose_jitter: tuple = (0.0, 0.06)        # misalignment: radians of rotation, scale and shift (x H/4)
    ae_factor: tuple = (1.0, 1.0)           # autoencoder down-scaling (1 = none)
    ae_smooth: tuple = (0.4, 0.8)
    ae_grid: tuple = (0.0, 0.0)
    color_strength: tuple = (0.4, 0.9)      # colour transfer (1 = perfect mean/std match)
    region: str = "face"
    mask_blur: tuple = (0.5, 1.2)           # sigma, px at 128
    mask_erode: tuple = (0.0, 0.02)         # fraction of side (negative dilates)
    elastic: float = 0.0
    src_blur: tuple = (0.0, 0.0)            # re-projection blur of the source texture (sigma, px at 128)
    renoise: tuple = (0.0, 0.0)             # camera noise re-added after warping, x the target's noise sigma
    sharpen: tuple = (0.0, 0.0)             # unsharp-mask amount undoing the warp's interpolation blur


SWAPS = {
    "faceswap": SwapParams(pose_jitter=(0.0, 0.08), color_strength=(0.2, 0.7), mask_blur=(0.3, 1.0),
                           mask_erode=(0.02, 0.045), src_blur=(0.0, 0.5)),
    "deepfakes": SwapParams(ae_factor=(2.0, 3.0), ae_grid=(0.02, 0.05), color_strength=(0.8, 1.0), region="inner",
                            mask_blur=(2.0, 4.0), mask_erode=(0.01, 0.04), elastic=0.02),
    "celebdf": SwapParams(pose_jitter=(0.0, 0.03), ae_factor=(1.0, 1.25), ae_smooth=(0.0, 0.3), ae_grid=(0.004, 0.01),
                          renoise=(0.7, 1.0), sharpen=(0.9, 1.4),
                          color_strength=(0.9, 1.0), region="inner", mask_blur=(3.0, 5.0), mask_erode=(0.0, 0.03),
                          elastic=0.03),
    "dfvae": SwapParams(pose_jitter=(0.0, 0.02), ae_factor=(1.0, 1.3), ae_smooth=(0.0, 0.3), ae_grid=(0.003, 0.008),
                        renoise=(0.6, 1.0), sharpen=(0.8, 1.2),
                        color_strength=(0.95, 1.0), region="inner", mask_blur=(2.5, 4.5), mask_erode=(0.0, 0.02)),
    # DFD (Google/Jigsaw): its own deepfake pipeline, not FF++'s DeepFakes: a milder autoencoder, re-noised
    # and sharpened, with a soft inner-face mask
    "dfd": SwapParams(pose_jitter=(0.0, 0.03), ae_factor=(1.2, 1.6), ae_smooth=(0.0, 0.3), ae_grid=(0.004, 0.012),
                      renoise=(0.7, 1.0), sharpen=(0.8, 1.2), color_strength=(0.9, 1.0), region="inner",
                      mask_blur=(2.0, 4.0), mask_erode=(0.0, 0.03), elastic=0.03),
    "gan_hq": SwapParams(ae_factor=(1.4, 1.8), ae_grid=(0.005, 0.015), color_strength=(0.7, 1.0), region="inner",
                         mask_blur=(1.5, 3.0)),
    "gan_lq": SwapParams(ae_factor=(3.0, 4.0), ae_smooth=(0.5, 1.0), ae_grid=(0.01, 0.02), color_strength=(0.6, 1.0),
                         region="inner", mask_blur=(1.5, 3.0)),
}


def swap(target: Face, rng: np.random.Generator, *, style: Style, source_identity: Identity,
         params: SwapParams = SwapParams()) -> tuple[np.ndarray, np.ndarray]:
    """Identity swap: render ``source_identity`` in (nearly) the target's pose and expression, align it
    on the landmarks, optionally pass it through an autoencoder, colour-transfer, blend on a hull mask."""
    if source_identity is None:
        raise ValueError("an identity swap needs source_identity")
    p = params
    u = lambda r: float(rng.uniform(*r))  # noqa: E731
    H = target.image.shape[0]
    src = _render_cached(source_identity, target.frame, H, style)
    tgt = _f32(target)
    # misalignment of the swap: a small rotation / scale / shift about the face centre
    j = u(p.pose_jitter) * rng.choice([-1, 1])
    c = target.landmarks.mean(0)
    sc = 1 + 0.5 * u(p.pose_jitter) * rng.choice([-1, 1])
    J = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), float(np.degrees(j)), float(sc))
    J[:, 2] += rng.uniform(-1, 1, 2) * u(p.pose_jitter) * H * 0.25
    warped, wlm = align(_f32(src), src.landmarks, target.landmarks, tgt.shape, jitter=J)
    if p.src_blur[1] > 0:
        warped = cv2.GaussianBlur(warped, (0, 0), u(p.src_blur) * tgt.shape[1] / 128)
    if p.ae_factor[1] > 1.0:
        warped = autoencoder(warped, target.landmarks, rng, factor=p.ae_factor, smooth=p.ae_smooth, grid=p.ae_grid)
    if p.sharpen[1] > 0:
        k = np.float32(u(p.sharpen))
        warped = np.clip(warped + k * (warped - cv2.GaussianBlur(warped, (0, 0), 0.8)), 0, 1)
    hard = face_hull(target.landmarks, tgt.shape, p.region)
    warped = color_transfer(warped, tgt, hard, u(p.color_strength))
    if p.renoise[1] > 0 and target.frame.noise > 0:  # "improved" pipelines match the camera noise
        sigma = np.float32(u(p.renoise) * target.frame.noise)
        warped = np.clip(warped + rng.standard_normal(warped.shape, dtype=np.float32) * sigma, 0, 1)
    m = soften(hard, rng, blur=p.mask_blur, erode=p.mask_erode, elastic_amount=p.elastic)
    return blend(warped, tgt, m)


def _swap_family(name):
    def fn(target, rng, *, style=STYLES["studio"], source_identity=None, **kw):
        return swap(target, rng, style=style, source_identity=source_identity,
                    params=dataclasses.replace(SWAPS[name], **kw))

    fn.__name__ = name
    fn.__doc__ = f"Identity swap with the {name!r} parameters ``SWAPS[{name!r}]``: returns (fake, mask)."
    return register(name)(fn)


for _n in SWAPS:
    _swap_family(_n)


@register("dfdc")
def dfdc(target, rng, *, style=STYLES["amateur"], source_identity=None):
    """DFDC-like: one of several swap methods, with randomised settings (returns fake, mask)."""
    name = ["faceswap", "deepfakes", "celebdf", "gan_hq"][int(rng.integers(4))]
    return FAMILIES[name](target, rng, style=style, source_identity=source_identity)


# ----------------------------------------------------------------------------- same-identity re-rendering
@register("face2face")
def face2face(target: Face, rng: np.random.Generator, *, style=STYLES["studio"], source_identity=None,
              smooth=(0.3, 0.7), relight=(0.02, 0.05)) -> tuple[np.ndarray, np.ndarray]:
    """Expression re-enactment of the same identity: the inner face is re-rendered with another
    expression (mouth, smile, brows, gaze) and the renderer's smoothing/relighting; mask = hull of
    old and new landmarks."""
    fr = target.frame
    new_open = float(np.clip(fr.mouth_open + rng.choice([-1, 1]) * rng.uniform(0.2, 0.5), 0, 0.7))
    src = _rerender(target, style, mouth_open=new_open, smile=float(np.clip(fr.smile + rng.normal(0, 0.4), -0.3, 1)),
                    brow_raise=float(rng.uniform(-0.02, 0.05)), gaze=tuple(map(float, rng.uniform(-0.4, 0.4, 2))))
    s = _f32(src)
    s = cv2.GaussianBlur(s, (0, 0), float(rng.uniform(*smooth)) * s.shape[1] / 128)
    s = np.clip(s * (1 + rng.choice([-1, 1]) * rng.uniform(*relight)), 0, 1)
    tgt = _f32(target)
    hard = np.maximum(face_hull(target.landmarks, tgt.shape, "inner"), face_hull(src.landmarks, tgt.shape, "inner"))
    m = soften(hard, rng, blur=(1.5, 3.0), erode=(0.0, 0.02))
    return blend(s, tgt, m)


def neural_texture_pattern(shape, rng: np.random.Generator, amplitude=(0.025, 0.06)) -> np.ndarray:
    """High-frequency structured pattern of a learned neural texture sampled through UVs: a sum of
    2-3 oblique sinusoids with periods 2.5-4 px. (H, W) float32."""
    H, W = shape[:2]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    p = np.zeros((H, W), np.float32)
    for _ in range(int(rng.integers(2, 4))):
        th = rng.uniform(0, np.pi)
        per = rng.uniform(2.5, 4.0)
        p += np.sin(2 * np.pi * (np.cos(th) * xx + np.sin(th) * yy) / per + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    return p * np.float32(rng.uniform(*amplitude) / 2)


@register("neuraltextures")
def neuraltextures(target: Face, rng: np.random.Generator, *, style=STYLES["studio"], source_identity=None,
                   amplitude=(0.04, 0.09)) -> tuple[np.ndarray, np.ndarray]:
    """Mouth re-rendering through a "neural texture": new mouth shape, smoothed, with high-frequency
    texture patterns; mask = dilated mouth hull (old and new) down to the chin."""
    fr = target.frame
    new_open = float(np.clip(fr.mouth_open + rng.choice([-1, 1]) * rng.uniform(0.15, 0.45), 0, 0.7))
    src = _rerender(target, style, mouth_open=new_open)
    s = cv2.GaussianBlur(_f32(src), (0, 0), float(rng.uniform(0.3, 0.6)) * src.image.shape[1] / 128)
    s = np.clip(s * (1 + neural_texture_pattern(s.shape, rng, amplitude)[..., None]), 0, 1)
    tgt = _f32(target)
    hard = np.maximum(face_hull(target.landmarks, tgt.shape, "mouth"), face_hull(src.landmarks, tgt.shape, "mouth"))
    m = soften(hard, rng, blur=(1.5, 3.0), erode=(-0.05, -0.02))
    return blend(s, tgt, m)


# ----------------------------------------------------------------------------- attribute edits (FMLD)
def _part_mask(a: np.ndarray, b: np.ndarray, rng, dilate=(0.01, 0.025), blur=(1.0, 2.0)) -> np.ndarray:
    m = (np.maximum(a, b) > 0.1).astype(np.float32)
    return soften(m, rng, blur=blur, erode=(-dilate[1], -dilate[0]))


_NEW_HAIR = np.array([(0.07, 0.06, 0.05), (0.82, 0.68, 0.42), (0.40, 0.26, 0.15), (0.62, 0.61, 0.59),
                      (0.60, 0.22, 0.10)], np.float32)


@register("attribute_hair")
def attribute_hair(target: Face, rng: np.random.Generator, *, style=STYLES["studio"], source_identity=None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Hair-colour edit (StarGAN/STGAN-like): hair re-rendered in a clearly different colour, with GAN
    smoothing and grid inside; mask = old and new hair (and brows), dilated and blurred."""
    old = np.array(target.identity.hair, np.float32)
    d = np.abs(_NEW_HAIR - old).sum(1)
    choices = np.nonzero(d > 0.35)[0]
    new = _NEW_HAIR[rng.choice(choices)] * (1 + rng.normal(0, 0.05, 3))
    ident = dataclasses.replace(target.identity, hair=tuple(map(float, np.clip(new, 0.02, 0.95))),
                                brow=tuple(map(float, np.clip(new * 0.75, 0, 1))))
    src = _rerender(target, style, ident)
    s = gan_traces(_f32(src), rng)
    hard_a = np.maximum(target.parts["hair"], target.parts["brows"] + target.parts["beard"])
    hard_b = np.maximum(src.parts["hair"], src.parts["brows"] + src.parts["beard"])
    m = _part_mask(hard_a, hard_b, rng)
    return blend(s, _f32(target), m)


@register("attribute_glasses")
def attribute_glasses(target: Face, rng: np.random.Generator, *, style=STYLES["studio"], source_identity=None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Eyeglasses edit: glasses removed when present, added otherwise, with GAN traces inside;
    mask = old and new glasses region, dilated and blurred."""
    I = target.identity
    if I.glasses:
        ident = dataclasses.replace(I, glasses=0)
    else:
        ident = dataclasses.replace(I, glasses=int(rng.integers(1, 3)),
                                    glasses_color=tuple(map(float, rng.uniform(0.02, 0.4, 3))),
                                    glasses_tint=float(rng.uniform(0.05, 0.3)))
    src = _rerender(target, style, ident)
    s = gan_traces(_f32(src), rng)
    m = _part_mask(target.parts["glasses"], src.parts["glasses"], rng)
    return blend(s, _f32(target), m)


@register("synthesis")
def synthesis(target: Face, rng: np.random.Generator, *, style=STYLES["studio"], source_identity=None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Entire-face synthesis (PGGAN/StyleGAN-like): a new face generated at half resolution and
    upsampled twice by 2x "transposed convolutions" (periodic spectral peaks), over-smooth skin.
    Mask = all ones (every pixel is synthetic); ``target`` only fixes the size and style."""
    from dfnb.data.render import sample_frame

    H = target.image.shape[0]
    ident = source_identity or Identity.sample(rng, style)
    fr = sample_frame(rng, style)
    fr = dataclasses.replace(fr, noise=fr.noise * 0.3, blur=0.0)
    half = render_face(ident, fr, max(16, H // 2), style, float_out=True).image
    up = cv2.resize(half, (H, H), interpolation=cv2.INTER_NEAREST)
    up = cv2.blur(up, (3, 3))
    up = gan_traces(up, rng, smooth=(0.3, 0.6), grid=(0.01, 0.025))
    return blend(up, _f32(target), np.ones((H, H), np.float32))


def manipulate(method: str, target: Face, rng: np.random.Generator, *, style: Style = STYLES["studio"],
               source_identity: Identity | None = None, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Apply the family ``method`` to ``target``; returns (fake (H, W, 3) float32, mask (H, W) float32)."""
    if method not in FAMILIES:
        raise KeyError(f"unknown manipulation {method!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[method](target, rng, style=style, source_identity=source_identity, **kw)


# mask regions each family claims (used by tests and figures): the landmark region the mask must cover
CLAIMS = {
    "faceswap": "face", "deepfakes": "inner", "celebdf": "inner", "dfvae": "inner", "dfd": "inner", "gan_hq": "inner",
    "gan_lq": "inner", "face2face": "inner", "neuraltextures": "mouth", "attribute_hair": "hair",
    "attribute_glasses": "glasses", "synthesis": "all",
}
