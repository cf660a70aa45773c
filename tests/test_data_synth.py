"""Synthetic data: renderer, forgery families (exact masks), SBI blending, quality, corruptions."""
import dataclasses

import numpy as np
import pytest
import torch

from dfnb.data import corruptions, quality
from dfnb.data import landmarks as L
from dfnb.data.manipulations import FAMILIES, manipulate
from dfnb.data.render import STYLES, Identity, render_face, sample_frame, sample_video
from dfnb.data.sbi import blend, boundary, nearest_landmarks, self_blend, xray_blend

S = 96


def _face(seed=0, style="studio", size=S, **ident_kw):
    rng = np.random.default_rng(seed)
    ident = Identity.sample(rng, STYLES[style])
    if ident_kw:
        ident = dataclasses.replace(ident, **ident_kw)
    return render_face(ident, sample_frame(rng, STYLES[style]), size, STYLES[style])


def test_render_is_deterministic_and_well_formed():
    a, b = _face(3), _face(3)
    assert a.image.dtype == np.uint8 and a.image.shape == (S, S, 3)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.landmarks.shape == (68, 2) and np.isfinite(a.landmarks).all()
    assert (a.landmarks > 0).all() and (a.landmarks < S).all()
    assert _face(4).image.tobytes() != a.image.tobytes()
    # dlib order: jaw runs image-left to image-right, eyes above nose above mouth
    lm = a.landmarks
    assert lm[0, 0] < lm[8, 0] < lm[16, 0]
    assert lm[36:48, 1].mean() < lm[30, 1] < lm[48:68, 1].mean() < lm[8, 1]
    for k in ("skin", "hair", "eyes", "mouth", "glasses", "fg"):
        assert a.parts[k].shape == (S, S) and 0 <= a.parts[k].min() and a.parts[k].max() <= 1


def test_video_frames_share_identity_and_move_a_little():
    rng = np.random.default_rng(1)
    ident = Identity.sample(rng)
    faces = [render_face(ident, f, S) for f in sample_video(rng, 3, STYLES["studio"])]
    d = [np.abs(faces[0].landmarks - f.landmarks).mean() for f in faces[1:]]
    assert all(0 < x < 0.1 * S for x in d)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_style_renders(style):
    f = _face(0, style)
    assert f.image.shape == (S, S, 3) and f.image.std() > 5


FAMS = ["faceswap", "deepfakes", "face2face", "neuraltextures", "attribute_hair", "attribute_glasses", "synthesis",
        "celebdf", "dfvae", "gan_lq", "gan_hq", "dfdc"]


@pytest.mark.parametrize("method", FAMS)
def test_fake_equals_pristine_outside_mask_and_differs_inside(method):
    t = _face(5)
    src = Identity.sample(np.random.default_rng(99))
    fake, mask = manipulate(method, t, np.random.default_rng(0), source_identity=src)
    assert fake.shape == (S, S, 3) and fake.dtype == np.float32 and mask.shape == (S, S)
    f8, m8 = (fake * 255 + 0.5).astype(np.uint8), (mask * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(m8.astype(np.float32) / 255, mask)  # masks are 8-bit exact
    out = m8 == 0
    assert np.array_equal(f8[out], t.image[out])
    core = m8 == 255
    assert core.sum() > 20
    assert np.abs(f8[core].astype(int) - t.image[core]).mean() > 2.0


def _cover(mask, region):
    return (mask[region > 0.5] > 0.5).mean()


def test_masks_cover_the_region_each_family_claims():
    t = _face(7, glasses=1)
    shape = t.image.shape
    src = Identity.sample(np.random.default_rng(1))
    rng = lambda: np.random.default_rng(2)  # noqa: E731
    inner = L.hull_mask(t.landmarks, shape, list(range(17, 68)))
    mouth = L.hull_mask(t.landmarks, shape, L.MOUTH)
    core = L.hull_mask(t.landmarks, shape, list(range(27, 68)))
    hull = L.hull_mask(t.landmarks, shape, dilate=0.05)
    _, m = manipulate("faceswap", t, rng(), source_identity=src)
    assert _cover(m, core) > 0.95 and (m[hull == 0] > 0.5).sum() == 0  # on the landmark hull
    _, m = manipulate("deepfakes", t, rng(), source_identity=src)
    assert _cover(m, L.hull_mask(t.landmarks, shape, list(range(36, 68)))) > 0.95
    _, m = manipulate("face2face", t, rng())
    assert _cover(m, inner) > 0.9
    _, m = manipulate("neuraltextures", t, rng())
    assert _cover(m, mouth) > 0.95
    eyes = L.hull_mask(t.landmarks, shape, L.RIGHT_EYE + L.LEFT_EYE)
    assert _cover(m, eyes) == 0  # the mouth family leaves the eyes alone
    _, m = manipulate("attribute_hair", t, rng())
    assert _cover(m, t.parts["hair"]) > 0.95 and _cover(m, mouth) == 0
    _, m = manipulate("attribute_glasses", t, rng())
    assert _cover(m, t.parts["glasses"]) > 0.95 and _cover(m, mouth) == 0
    _, m = manipulate("synthesis", t, rng())
    assert m.min() == 1.0


def test_families_are_deterministic_and_unknown_is_an_error():
    t = _face(2)
    src = Identity.sample(np.random.default_rng(3))
    a = manipulate("deepfakes", t, np.random.default_rng(5), source_identity=src)
    b = manipulate("deepfakes", t, np.random.default_rng(5), source_identity=src)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    with pytest.raises(KeyError, match="unknown manipulation"):
        manipulate("nope", t, np.random.default_rng(0))
    with pytest.raises(ValueError, match="source_identity"):
        manipulate("faceswap", t, np.random.default_rng(0))
    assert set(FAMS) <= set(FAMILIES)


def test_blend_and_boundary_hand_computed():
    s = np.ones((2, 2, 3), np.float32)
    t = np.zeros((2, 2, 3), np.float32)
    f, m = blend(s, t, np.array([[0, 0.5], [1, 0.25]], np.float32))
    assert np.allclose(f[..., 0], [[0, 128 / 255], [1, 64 / 255]])
    assert np.allclose(boundary(np.array([0, 0.5, 1.0])), [0, 1, 0])
    bank = np.stack([_face(i).landmarks for i in range(3)])
    assert nearest_landmarks(bank[1] * 1.5 + 3, bank)[0] == 1  # scale/translation invariant


@pytest.fixture(scope="module")
def photos():
    import matplotlib.cbook as cbook
    import skimage.data
    from matplotlib.image import imread

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        gh = np.asarray(imread(f, format="jpg"))[..., :3].astype(np.uint8)
    return {"astronaut": skimage.data.astronaut(), "grace_hopper": gh}


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_self_blend_on_public_domain_photos(photos, name):
    img = photos[name]
    lm = L.photo_landmarks(img, detector="cascade")
    box = L.detect_faces_cascade(img)[0]
    x, y, w, h = box[:4]
    # the template lands inside the detected face box
    assert (lm[:, 0] > x - 0.1 * w).all() and (lm[:, 0] < x + 1.1 * w).all() and (lm[:, 1] < y + 1.3 * h).all()
    fake, mask = self_blend(img, lm, np.random.default_rng(0))
    f8 = (fake * 255 + 0.5).astype(np.uint8)
    out = mask == 0
    assert np.array_equal(f8[out], img[out])
    assert mask.max() > 0.4
    ys, xs = np.nonzero(mask > 0.1)
    assert x - 0.2 * w < xs.mean() < x + 1.2 * w and y - 0.2 * h < ys.mean() < y + 1.4 * h
    other = photos["grace_hopper" if name == "astronaut" else "astronaut"]
    olm = L.photo_landmarks(other, detector="cascade")
    fk, mk = xray_blend(img, lm, other, olm, np.random.default_rng(1))
    assert np.array_equal((fk * 255 + 0.5).astype(np.uint8)[mk == 0], img[mk == 0])


def test_no_face_photo_is_a_clear_error():
    with pytest.raises(ValueError, match="no face"):
        L.photo_landmarks(np.full((120, 120, 3), 128, np.uint8), detector="cascade")


def test_flip_landmarks_is_an_involution():
    lm = _face(1).landmarks
    f = L.flip_landmarks(lm, S)
    assert np.allclose(L.flip_landmarks(f, S), lm)
    assert f[0, 0] < f[16, 0]  # still image-left first


def test_quality_levels():
    img = _face(0, size=128).image
    assert np.array_equal(quality.compress(img, "raw"), img)
    d = {q: np.abs(quality.compress(img, q).astype(int) - img).mean() for q in ("hq", "lq")}
    assert 0 < d["hq"] < d["lq"]
    assert np.array_equal(quality.compress(img, "c23"), quality.compress(img, "hq"))
    with pytest.raises(ValueError, match="unknown quality"):
        quality.compress(img, "c99")


def test_corruptions_all_kinds_levels_and_types():
    img = _face(0, size=128).image
    assert len(corruptions.KINDS) == 7
    for k in corruptions.KINDS:
        diffs = []
        for lv in range(1, 6):
            out = corruptions.apply(img, k, lv, np.random.default_rng(0))
            assert out.dtype == np.uint8 and out.shape == img.shape
            diffs.append(np.abs(out.astype(float) - img).mean())
        assert diffs[0] > 0 and diffs[-1] > diffs[0], (k, diffs)
    f = img.astype(np.float32) / 255
    out = corruptions.apply(f, "blur", 3)
    assert out.dtype == np.float32 and out.shape == f.shape
    t = torch.from_numpy(f.transpose(2, 0, 1).copy())
    ot = corruptions.apply(t, "noise", 2, np.random.default_rng(0))
    assert isinstance(ot, torch.Tensor) and ot.shape == t.shape and 0 <= ot.min() and ot.max() <= 1
    same = corruptions.apply(img, "noise", 4, np.random.default_rng(3))
    assert np.array_equal(same, corruptions.apply(img, "noise", 4, np.random.default_rng(3)))
    with pytest.raises(ValueError, match="unknown corruption"):
        corruptions.apply(img, "fog", 1)
    with pytest.raises(ValueError, match="1..5"):
        corruptions.apply(img, "blur", 6)
