"""A procedural face renderer: identities, poses, expressions, lighting, cameras.

No face data set or generator weights can be had offline, so the book renders its own
faces.  A face is a 2.5-D head model: 68 canonical 3-D landmarks (dlib order, see
``dfnb.data.landmarks``) plus contours for forehead, hair, ears, neck and shoulders,
rotated by yaw/pitch/roll, projected orthographically and painted with OpenCV
anti-aliased polygons in painter's order.  Skin and hair textures live in the face's
own coordinates (they move with the head across the frames of a "video").

    face = render_face(identity, frame, size=128, style=STYLES["studio"])
    face.image      # (H, W, 3) uint8 RGB
    face.landmarks  # (68, 2) float32 pixel (x, y), dlib order
    face.parts      # {"skin","face","hair","eyes","brows","nose","mouth","ears","beard","glasses","fg"}
                    #  -> (H, W) float32 soft masks in [0, 1] of the *visible* part

Everything is a pure function of ``(Identity, Frame, size, Style)``: rendering twice
gives byte-identical pixels, and re-rendering with one attribute changed changes only
the pixels that attribute touches (this is how exact manipulation masks are made).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

cv2.setNumThreads(1)

_SKIN = np.array([(0.98, 0.85, 0.76), (0.95, 0.77, 0.64), (0.87, 0.65, 0.51), (0.76, 0.54, 0.40),
                  (0.60, 0.42, 0.29), (0.44, 0.30, 0.21), (0.30, 0.20, 0.14)], np.float32)
_HAIR = np.array([(0.07, 0.06, 0.05), (0.20, 0.13, 0.08), (0.38, 0.25, 0.15), (0.78, 0.64, 0.40),
                  (0.58, 0.24, 0.11), (0.62, 0.61, 0.59), (0.88, 0.86, 0.82)], np.float32)
_HAIR_P = np.array([0.30, 0.25, 0.17, 0.11, 0.06, 0.07, 0.04])
_IRIS = np.array([(0.30, 0.18, 0.09), (0.16, 0.10, 0.06), (0.25, 0.42, 0.62), (0.30, 0.45, 0.28),
                  (0.45, 0.35, 0.18)], np.float32)
_IRIS_P = np.array([0.35, 0.3, 0.15, 0.1, 0.1])
HAIR_STYLES = ("crop", "short", "medium", "long", "fringe")


@dataclass(frozen=True)
class Style:
    """Domain of a renderer: what differs between the book's synthetic "data sets".

    Ranges are ``(low, high)`` for uniform draws.  Angles in degrees.
    """

    name: str = "studio"
    bg_kinds: tuple = ("gradient", "studio", "room")
    ambient: tuple = (0.62, 0.78)
    light_strength: tuple = (0.10, 0.28)
    light_temp: tuple = (-0.03, 0.03)       # >0 warm (more red, less blue)
    yaw: float = 18.0
    pitch: float = 8.0
    roll: float = 7.0
    face_scale: tuple = (0.30, 0.34)        # face half-width / image size
    center_jitter: float = 0.03
    noise: tuple = (0.004, 0.012)           # camera noise sigma (of [0, 1])
    blur: tuple = (0.0, 0.5)                # Gaussian sigma in pixels at 128 px
    texture: tuple = (0.7, 1.2)             # skin texture amplitude multiplier
    skin_range: tuple = (0.0, 1.0)          # position along the skin-tone palette
    saturation: float = 1.0
    glasses_p: float = 0.25
    beard_p: float = 0.2
    makeup: float = 0.0                     # lip saturation boost
    res_factor: float = 1.0                 # render at size*res_factor, then resize to size
    motion: float = 1.0                     # amplitude of head motion across video frames


STYLES: dict[str, Style] = {
    # FF++-like: news / vlog footage, fairly frontal, soft studio lights, plain backgrounds.
    "studio": Style(),
    # Celeb-DF-like: interviews of celebrities, warmer light, more makeup, busier backgrounds, HD.
    "celeb": Style(name="celeb", bg_kinds=("room", "bokeh", "gradient"), ambient=(0.66, 0.82),
                   light_strength=(0.15, 0.32), light_temp=(0.02, 0.08), yaw=24, pitch=10, roll=9,
                   face_scale=(0.29, 0.33), noise=(0.002, 0.006), blur=(0.0, 0.3), texture=(0.5, 0.9),
                   skin_range=(0.0, 0.8), saturation=1.12, glasses_p=0.12, beard_p=0.15, makeup=0.35),
    # DFDC-like: paid actors filmed on phones, indoor/outdoor, strong and coloured light, noisy.
    "amateur": Style(name="amateur", bg_kinds=("room", "outdoor", "bokeh"), ambient=(0.40, 0.70),
                     light_strength=(0.20, 0.45), light_temp=(-0.10, 0.10), yaw=28, pitch=12, roll=12,
                     face_scale=(0.27, 0.33), center_jitter=0.05, noise=(0.012, 0.03), blur=(0.3, 1.0),
                     texture=(0.8, 1.4), skin_range=(0.0, 1.0), saturation=0.92, glasses_p=0.3, beard_p=0.3,
                     res_factor=0.75, motion=1.5),
    # DeeperForensics-like source: actors in a controlled studio, very frontal, even light.
    "lab": Style(name="lab", bg_kinds=("studio",), ambient=(0.72, 0.84), light_strength=(0.05, 0.15),
                 light_temp=(-0.01, 0.01), yaw=10, pitch=5, roll=4, face_scale=(0.31, 0.34),
                 noise=(0.002, 0.005), blur=(0.0, 0.2), texture=(0.7, 1.0), glasses_p=0.1, beard_p=0.15),
    # DF-TIMIT-like: low-resolution grey-background head-and-shoulders recordings.
    "timit": Style(name="timit", bg_kinds=("studio",), ambient=(0.55, 0.7), light_strength=(0.1, 0.2),
                   yaw=8, pitch=5, roll=4, face_scale=(0.26, 0.30), noise=(0.01, 0.02), blur=(0.5, 1.0),
                   texture=(0.6, 1.0), skin_range=(0.0, 0.6), saturation=0.8, glasses_p=0.1,
                   res_factor=0.5, motion=0.6),
    # WildDeepfake-like: internet clips, anything goes.
    "wild": Style(name="wild", bg_kinds=("room", "outdoor", "bokeh", "gradient"), ambient=(0.35, 0.8),
                  light_strength=(0.1, 0.5), light_temp=(-0.12, 0.12), yaw=32, pitch=14, roll=14,
                  face_scale=(0.26, 0.36), center_jitter=0.06, noise=(0.005, 0.03), blur=(0.2, 1.4),
                  texture=(0.4, 1.4), saturation=1.0, glasses_p=0.25, beard_p=0.3, res_factor=0.6, motion=1.8),
}


def _u(rng, lo_hi):
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


@dataclass(frozen=True)
class Identity:
    """Everything about a person that stays fixed across the frames of a video.

    Geometry in face units (face half-width ~ 1, y down, origin between the eyes and nose).
    """

    fw: float = 1.0
    chin: float = 1.35
    jaw_n: float = 2.4
    taper: float = 0.06
    top: float = -1.25
    eye_y: float = -0.24
    eye_dx: float = 0.40
    eye_w: float = 0.17
    eye_h: float = 0.065
    eye_tilt: float = 0.01
    brow_gap: float = 0.18
    brow_arch: float = 0.04
    brow_len: float = 0.30
    brow_thick: float = 0.05
    nose_y: float = 0.26
    nose_w: float = 0.17
    nose_proj: float = 0.42
    mouth_y: float = 0.62
    mouth_w: float = 0.31
    lip_up: float = 0.045
    lip_lo: float = 0.06
    ear_w: float = 0.11
    ear_h: float = 0.22
    skin: tuple = (0.87, 0.65, 0.51)
    lip: tuple = (0.78, 0.45, 0.42)
    iris: tuple = (0.30, 0.18, 0.09)
    hair: tuple = (0.20, 0.13, 0.08)
    brow: tuple = (0.16, 0.10, 0.07)
    hair_style: str = "short"
    hair_volume: float = 0.12
    hairline: float = 0.35
    beard: float = 0.0
    glasses: int = 0                      # 0 none, 1 round, 2 rectangular
    glasses_color: tuple = (0.1, 0.1, 0.1)
    glasses_tint: float = 0.1
    shirt: tuple = (0.3, 0.35, 0.5)
    tex_amp: float = 1.0
    tex_seed: int = 0

    @staticmethod
    def neutral() -> "Identity":
        return Identity()

    @staticmethod
    def sample(rng: np.random.Generator, style: Style = STYLES["studio"]) -> "Identity":
        """Draw a random identity (all fields) from ``rng``."""
        t = _u(rng, style.skin_range) * (len(_SKIN) - 1)
        i = min(int(t), len(_SKIN) - 2)
        skin = _SKIN[i] * (1 - (t - i)) + _SKIN[i + 1] * (t - i)
        skin = np.clip(skin * (1 + rng.normal(0, 0.03, 3)), 0, 1)
        hair = _HAIR[rng.choice(len(_HAIR), p=_HAIR_P)] * (1 + rng.normal(0, 0.08, 3))
        hair = np.clip(hair, 0.02, 0.95)
        lip_mix = float(rng.uniform(0.25, 0.5)) + style.makeup * float(rng.uniform(0, 1))
        lip = np.clip(skin * (1 - lip_mix) + np.array([0.72, 0.22, 0.25]) * lip_mix, 0, 1) * 0.92
        brow = np.clip(hair * 0.75 if hair.mean() < 0.5 else hair * 0.6, 0, 1)
        glasses = 0
        if rng.random() < style.glasses_p:
            glasses = int(rng.integers(1, 3))
        hue = rng.uniform(0, 180)
        shirt = cv2.cvtColor(np.uint8([[[hue, rng.uniform(30, 200), rng.uniform(40, 220)]]]), cv2.COLOR_HSV2RGB)[0, 0] / 255.0
        eye_h = _u(rng, (0.055, 0.075))
        return Identity(
            fw=_u(rng, (0.92, 1.08)), chin=_u(rng, (1.25, 1.45)), jaw_n=_u(rng, (2.0, 3.2)),
            taper=_u(rng, (0.0, 0.14)), top=_u(rng, (-1.32, -1.15)), eye_y=_u(rng, (-0.28, -0.2)),
            eye_dx=_u(rng, (0.36, 0.44)), eye_w=_u(rng, (0.15, 0.19)), eye_h=eye_h,
            eye_tilt=_u(rng, (-0.03, 0.05)), brow_gap=_u(rng, (0.15, 0.22)), brow_arch=_u(rng, (0.02, 0.07)),
            brow_len=_u(rng, (0.26, 0.34)), brow_thick=_u(rng, (0.035, 0.075)), nose_y=_u(rng, (0.2, 0.32)),
            nose_w=_u(rng, (0.14, 0.22)), nose_proj=_u(rng, (0.35, 0.5)), mouth_y=_u(rng, (0.56, 0.68)),
            mouth_w=_u(rng, (0.27, 0.36)), lip_up=_u(rng, (0.035, 0.06)), lip_lo=_u(rng, (0.045, 0.075)),
            ear_w=_u(rng, (0.09, 0.13)), ear_h=_u(rng, (0.18, 0.26)),
            skin=tuple(map(float, skin)), lip=tuple(map(float, lip)),
            iris=tuple(map(float, _IRIS[rng.choice(len(_IRIS), p=_IRIS_P)])),
            hair=tuple(map(float, hair)), brow=tuple(map(float, brow)),
            hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))], hair_volume=_u(rng, (0.04, 0.2)),
            hairline=_u(rng, (0.22, 0.5)), beard=float(rng.uniform(0.3, 0.8)) if rng.random() < style.beard_p else 0.0,
            glasses=glasses, glasses_color=tuple(map(float, rng.uniform(0.02, 0.5, 3))),
            glasses_tint=_u(rng, (0.03, 0.3)), shirt=tuple(map(float, shirt)),
            tex_amp=_u(rng, style.texture), tex_seed=int(rng.integers(2**31)),
        )


@dataclass(frozen=True)
class Frame:
    """Everything that changes per frame (pose, expression) or per video (light, background, camera).

    Angles in radians; ``cx, cy, scale`` as fractions of the image size.
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    scale: float = 0.32
    cx: float = 0.5
    cy: float = 0.46
    mouth_open: float = 0.0
    smile: float = 0.0
    blink: float = 0.0
    gaze: tuple = (0.0, 0.0)
    brow_raise: float = 0.0
    light_angle: float = 0.0
    light_strength: float = 0.2
    ambient: float = 0.7
    light_temp: float = 0.0
    bg_kind: str = "studio"
    bg_colors: tuple = ((0.5, 0.5, 0.55), (0.3, 0.3, 0.35))
    bg_seed: int = 0
    noise: float = 0.0
    blur: float = 0.0
    seed: int = 0

    @staticmethod
    def neutral() -> "Frame":
        return Frame()


def sample_frame(rng: np.random.Generator, style: Style = STYLES["studio"]) -> Frame:
    """Draw pose, expression, light, background and camera for one (first) frame."""
    d = np.pi / 180
    bg_kind = style.bg_kinds[int(rng.integers(len(style.bg_kinds)))]
    c1 = rng.uniform(0.1, 0.9, 3)
    c2 = np.clip(c1 * rng.uniform(0.4, 1.2) + rng.normal(0, 0.1, 3), 0, 1)
    return Frame(
        yaw=float(rng.uniform(-style.yaw, style.yaw) * d), pitch=float(rng.uniform(-style.pitch, style.pitch) * d),
        roll=float(rng.uniform(-style.roll, style.roll) * d), scale=_u(rng, style.face_scale),
        cx=0.5 + float(rng.uniform(-1, 1) * style.center_jitter), cy=0.46 + float(rng.uniform(-1, 1) * style.center_jitter),
        mouth_open=float(rng.uniform(0, 0.6) if rng.random() < 0.5 else 0.0), smile=float(rng.uniform(-0.3, 1.0)),
        blink=float(1.0 if rng.random() < 0.06 else rng.uniform(0, 0.3)),
        gaze=(float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.2, 0.2))), brow_raise=float(rng.uniform(-0.02, 0.04)),
        light_angle=float(rng.uniform(0, 2 * np.pi)), light_strength=_u(rng, style.light_strength),
        ambient=_u(rng, style.ambient), light_temp=_u(rng, style.light_temp), bg_kind=bg_kind,
        bg_colors=(tuple(map(float, c1)), tuple(map(float, c2))), bg_seed=int(rng.integers(2**31)),
        noise=_u(rng, style.noise), blur=_u(rng, style.blur), seed=int(rng.integers(2**31)),
    )


def sample_video(rng: np.random.Generator, n_frames: int, style: Style = STYLES["studio"]) -> list[Frame]:
    """``n_frames`` frames of one talking head: smooth small head motion, mouth motion, blinks.

    Light, background and camera are the video's; noise seeds differ per frame.
    """
    f0 = sample_frame(rng, style)
    m = style.motion
    ph = rng.uniform(0, 2 * np.pi, 6)
    frames = []
    for t in range(n_frames):
        s = t / max(1, n_frames)
        frames.append(dataclasses.replace(
            f0,
            yaw=f0.yaw + m * 0.08 * np.sin(2 * np.pi * s + ph[0]),
            pitch=f0.pitch + m * 0.04 * np.sin(2 * np.pi * 1.3 * s + ph[1]),
            roll=f0.roll + m * 0.03 * np.sin(2 * np.pi * 0.7 * s + ph[2]),
            cx=f0.cx + m * 0.012 * np.sin(2 * np.pi * s + ph[3]),
            cy=f0.cy + m * 0.008 * np.sin(2 * np.pi * s + ph[4]),
            mouth_open=float(np.clip(0.5 * abs(np.sin(np.pi * 2.7 * s + ph[5])) * rng.uniform(0.3, 1.2), 0, 0.7)),
            smile=float(np.clip(f0.smile + rng.normal(0, 0.1), -0.3, 1.0)),
            blink=float(1.0 if rng.random() < 0.08 else rng.uniform(0, 0.25)),
            seed=int(rng.integers(2**31)),
        ))
    return frames


# ----------------------------------------------------------------------------- geometry
def _head_z(x, y, fw):
    return 0.75 * np.sqrt(np.clip(1 - (x / (1.08 * fw)) ** 2 - ((y + 0.1) / 1.7) ** 2, 0, 1))


def canonical_landmarks(ident: Identity, frame: Frame) -> np.ndarray:
    """The 68 landmarks in face units, expression applied, before pose: (68, 3) (x, y, z)."""
    I = ident
    o = 1.0 - frame.blink
    pts = np.zeros((68, 3), np.float64)
    gap = 0.2 * frame.mouth_open
    # jaw (the chin drops when the mouth opens)
    phi = np.linspace(0, np.pi, 17)
    c, s = np.cos(phi), np.sin(phi)
    e = 2.0 / I.jaw_n
    jaw_top = I.eye_y + 0.12
    pts[:17, 0] = -I.fw * np.sign(c) * np.abs(c) ** e * (1 - I.taper * s**2)
    pts[:17, 1] = jaw_top + (I.chin + 0.7 * gap - jaw_top) * np.abs(s) ** e
    # brows
    t = np.linspace(0, 1, 5)
    by = I.eye_y - I.brow_gap - frame.brow_raise - I.brow_arch * np.sin(np.pi * (0.9 * t + 0.05))
    pts[17:22, 0] = -I.eye_dx - 0.6 * I.brow_len + t * 1.05 * I.brow_len
    pts[17:22, 1] = by
    pts[22:27, 0] = -pts[17:22, 0][::-1]
    pts[22:27, 1] = by[::-1]
    # nose
    k = np.arange(4) / 3
    pts[27:31, 1] = I.eye_y + (I.nose_y - I.eye_y) * k
    pts[31:36, 0] = np.array([-1, -0.5, 0, 0.5, 1]) * I.nose_w
    pts[31:36, 1] = I.nose_y + np.array([0.05, 0.075, 0.085, 0.075, 0.05])
    # eyes
    for base, sgn in ((36, -1), (42, 1)):
        cx = sgn * I.eye_dx
        up, lo = I.eye_h * 1.1 * o, I.eye_h * 0.8 * o + 0.004
        if sgn < 0:  # right eye: outer corner 36 ... inner 39
            xs = [cx - I.eye_w, cx - I.eye_w / 3, cx + I.eye_w / 3, cx + I.eye_w, cx + I.eye_w / 3, cx - I.eye_w / 3]
            ys = [-I.eye_tilt, -up, -up, 0, lo, lo]
        else:  # left eye: inner corner 42 ... outer 45
            xs = [cx - I.eye_w, cx - I.eye_w / 3, cx + I.eye_w / 3, cx + I.eye_w, cx + I.eye_w / 3, cx - I.eye_w / 3]
            ys = [0, -up, -up, -I.eye_tilt, lo, lo]
        pts[base:base + 6, 0] = xs
        pts[base:base + 6, 1] = np.array(ys) + I.eye_y
    # mouth
    mw = I.mouth_w * (1 + 0.12 * frame.smile)
    sm = 0.045 * frame.smile
    my = I.mouth_y
    ux = np.array([-1, -0.6, -0.25, 0, 0.25, 0.6, 1])
    pts[48:55, 0] = ux * mw
    pts[48:55, 1] = my - np.array([sm, I.lip_up * 0.9, I.lip_up * 1.3, I.lip_up * 1.1, I.lip_up * 1.3, I.lip_up * 0.9, sm])
    pts[55:60, 0] = np.array([0.6, 0.25, 0, -0.25, -0.6]) * mw
    pts[55:60, 1] = my + gap + I.lip_lo * np.array([0.85, 1.15, 1.2, 1.15, 0.85]) - 0.3 * sm
    pts[60:65, 0] = np.array([-0.85, -0.35, 0, 0.35, 0.85]) * mw
    pts[60:65, 1] = my - np.array([0.8 * sm, 0.004, 0.0, 0.004, 0.8 * sm])
    pts[65:68, 0] = np.array([0.35, 0, -0.35]) * mw
    pts[65:68, 1] = my + gap + np.array([0.004, 0.006, 0.004])
    # depth
    pts[:, 2] = _head_z(pts[:, 0], pts[:, 1], I.fw)
    pts[:17, 2] *= 0.5
    pts[27:31, 2] += I.nose_proj * (0.25 + 0.75 * k)
    pts[31:36, 2] += I.nose_proj * np.array([0.2, 0.3, 0.45, 0.3, 0.2])
    pts[48:68, 2] += 0.05
    pts[36:48, 2] -= 0.03
    return pts


def _rotation(frame: Frame) -> np.ndarray:
    a, b, r = frame.yaw, frame.pitch, frame.roll
    Ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    Rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    Rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return Rz @ Rx @ Ry


class _Camera:
    """Projects face-unit 3-D points to pixels (orthographic, head pivots behind the face)."""

    def __init__(self, frame: Frame, size: int):
        self.R = _rotation(frame)
        self.S = frame.scale * size
        self.c = np.array([frame.cx * size, frame.cy * size])

    def __call__(self, p3: np.ndarray) -> np.ndarray:
        p = np.asarray(p3, np.float64).copy()
        p[:, 2] += 0.4
        q = p @ self.R.T
        return (q[:, :2] * self.S + self.c).astype(np.float32)

    def affine(self) -> np.ndarray:
        """2x3 affine from face units (x, y at z = 0.5) to pixels, for textures."""
        src = np.array([[0, 0, 0.5], [1, 0, 0.5], [0, 1, 0.5]])
        dst = self(src)
        return cv2.getAffineTransform(src[:, :2].astype(np.float32), dst)


def _with_z(xy: np.ndarray, fw: float, dz: float = 0.0) -> np.ndarray:
    xy = np.asarray(xy, np.float64)
    return np.concatenate([xy, (_head_z(xy[:, 0], xy[:, 1], fw) + dz)[:, None]], 1)


# ----------------------------------------------------------------------------- painting
class _Canvas:
    """Foreground colour (H, W, 3) and coverage (H, W); alphas are uint8 (H, W) arrays."""

    def __init__(self, H: int, W: int):
        self.H, self.W = H, W
        self.fg = np.zeros((H, W, 3), np.float32)
        self.A = np.zeros((H, W), np.float32)

    def alpha(self, polys, closed=True, thickness=0) -> np.ndarray:
        m = np.zeros((self.H, self.W), np.uint8)
        ps = [np.round(np.asarray(p, np.float64) * 16).astype(np.int32) for p in polys]
        if thickness > 0:
            cv2.polylines(m, ps, closed, 255, max(1, int(round(thickness))), cv2.LINE_AA, 4)
        else:
            cv2.fillPoly(m, ps, 255, cv2.LINE_AA, 4)
        return m

    def paint(self, m: np.ndarray, color, mult: float = 1.0) -> np.ndarray:
        """Composite ``color`` -- (3,), or ``(image (H, W, 3), factor)`` -- with uint8 alpha ``m``."""
        x, y, w, h = cv2.boundingRect(m)
        if w == 0:
            return m
        sl = (slice(y, y + h), slice(x, x + w))
        aa = m[sl].astype(np.float32) * np.float32(mult / 255.0)
        if isinstance(color, tuple):  # (base colour (3,), texture (H, W), factor): base * (1 + tex) * factor
            col = (color[0] * np.float32(color[2])) * (1 + color[1][sl][..., None])
        else:
            col = np.asarray(color, np.float32)
        f = self.fg[sl]
        f += (col - f) * aa[..., None]
        self.A[sl] += aa * (1 - self.A[sl])
        return m


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.multiply(a, b, scale=1 / 255.0)


def _noise_field(rng, shape_small, size_hw, interp=cv2.INTER_CUBIC):
    small = rng.standard_normal(shape_small).astype(np.float32)
    return cv2.resize(small, (size_hw[1], size_hw[0]), interpolation=interp)


@functools.lru_cache(maxsize=8)
def _grid(H: int, W: int):
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    return yy, xx


def _background(frame: Frame, H: int, W: int) -> np.ndarray:
    """Background (H, W, 3) float32 of a video (cached: frames of a video share it). Read-only."""
    return _background_cached(frame.bg_kind, frame.bg_colors, frame.bg_seed, H, W)


@functools.lru_cache(maxsize=64)
def _background_cached(kind, colors, seed, H, W) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c1, c2 = np.array(colors[0], np.float32), np.array(colors[1], np.float32)
    L = 48  # busy backgrounds are drawn small, blurred, then upsampled
    if kind == "studio":
        yy, xx = _grid(H, W)
        r2 = (xx / W - 0.5) ** 2 + (yy / H - 0.45) ** 2
        bg = c1[None, None] * (1.0 - 0.8 * r2[..., None])
    elif kind == "gradient":
        yy, xx = _grid(H, W)
        a = rng.uniform(0, 2 * np.pi)
        t = np.clip(0.5 + (xx / W - 0.5) * np.cos(a) + (yy / H - 0.5) * np.sin(a), 0, 1)[..., None]
        bg = c1 * (1 - t) + c2 * t
    else:
        if kind == "outdoor":
            sky = np.array([0.55, 0.7, 0.9], np.float32) * rng.uniform(0.7, 1.1)
            horizon = rng.uniform(0.45, 0.75)
            t = (np.arange(L, dtype=np.float32) / L)[:, None, None]
            bg = np.where(t < horizon, sky * (1 - 0.3 * t), c2 * 0.8) * np.ones((1, L, 1), np.float32)
            bg = np.ascontiguousarray(bg, np.float32)
            for _ in range(int(rng.integers(3, 8))):
                col = np.array([0.2, 0.45, 0.2]) * rng.uniform(0.5, 1.3) + rng.normal(0, 0.05, 3)
                cv2.circle(bg, (int(rng.uniform(0, L)), int(horizon * L + rng.uniform(-0.2, 0.1) * L)),
                           int(rng.uniform(0.08, 0.25) * L), tuple(map(float, col)), -1, cv2.LINE_AA)
        elif kind == "bokeh":
            bg = np.broadcast_to(c2 * 0.7, (L, L, 3)).copy()
            for _ in range(int(rng.integers(6, 16))):
                cv2.circle(bg, (int(rng.uniform(0, L)), int(rng.uniform(0, L))), int(rng.uniform(0.03, 0.12) * L) + 1,
                           tuple(map(float, rng.uniform(0.2, 1.0, 3))), -1, cv2.LINE_AA)
        else:  # room
            bg = np.broadcast_to(c1, (L, L, 3)).copy()
            for _ in range(int(rng.integers(2, 6))):
                x0, y0 = rng.uniform(-0.1, 0.9, 2)
                w, h = rng.uniform(0.1, 0.5, 2)
                col = np.clip(c2 + rng.normal(0, 0.15, 3), 0, 1)
                cv2.rectangle(bg, (int(x0 * L), int(y0 * L)), (int((x0 + w) * L), int((y0 + h) * L)),
                              tuple(map(float, col)), -1)
        bg = cv2.GaussianBlur(bg, (0, 0), L / rng.uniform(30, 70))
        bg = cv2.resize(bg, (W, H), interpolation=cv2.INTER_LINEAR)
    bg = np.ascontiguousarray(bg, np.float32)
    bg += 0.04 * _noise_field(rng, (5, 5), (H, W))[..., None]
    bg.setflags(write=False)
    return bg


@functools.lru_cache(maxsize=4)
def _noise_bank(H: int, W: int) -> np.ndarray:
    b = np.random.default_rng(12345).standard_normal((2 * H, 2 * W, 3), dtype=np.float32)
    b.setflags(write=False)
    return b


def _noise(seed: int, H: int, W: int) -> np.ndarray:
    """Camera noise (H, W, 3), unit variance: a window of a fixed noise bank chosen by ``seed``
    (generating fresh Gaussian noise per frame costs as much as the rest of the render)."""
    bank = _noise_bank(H, W)
    r = np.random.default_rng(seed)
    y, x = int(r.integers(0, H)), int(r.integers(0, W))
    out = bank[y:y + H, x:x + W]
    return out if r.random() < 0.5 else out[::-1, ::-1]


_G = 96  # texture grid over face units [-2, 2] x [-2, 2]


@functools.lru_cache(maxsize=256)
def _texture_grids(tex_seed: int, tex_amp: float):
    rng = np.random.default_rng(tex_seed)
    G = _G
    lo = _noise_field(rng, (7, 7), (G, G))
    pores = cv2.GaussianBlur(rng.standard_normal((G, G)).astype(np.float32), (0, 0), 0.6)
    skin = tex_amp * (0.035 * lo + 0.03 * pores)
    for _ in range(int(rng.integers(0, 5))):  # moles / freckles
        cv2.circle(skin, (int(rng.uniform(25, 71)), int(rng.uniform(35, 75))), 1, -0.12, -1, cv2.LINE_AA)
    strands = cv2.resize(rng.standard_normal((6, G)).astype(np.float32), (G, G), interpolation=cv2.INTER_LINEAR)
    strands += 0.5 * cv2.resize(rng.standard_normal((24, G)).astype(np.float32), (G, G), interpolation=cv2.INTER_LINEAR)
    return np.stack([skin, 0.12 * strands], -1)


def _textures(ident: Identity, H: int, W: int, cam: "_Camera"):
    """Skin and hair texture fields, each (H, W) in image space, fixed to the face."""
    grids = _texture_grids(ident.tex_seed, ident.tex_amp)
    T = np.array([[_G / 4, 0, _G / 2], [0, _G / 4, _G / 2], [0, 0, 1]])
    M = cam.affine() @ np.linalg.inv(T)
    out = cv2.warpAffine(grids, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out[..., 0], out[..., 1]


@dataclass
class Face:
    """One rendered face: ``image`` (H, W, 3) uint8 RGB, ``landmarks`` (68, 2) float32, ``parts``."""

    image: np.ndarray
    landmarks: np.ndarray
    parts: dict = field(default_factory=dict)
    identity: Identity | None = None
    frame: Frame | None = None


_T12 = np.linspace(0, 2 * np.pi, 12, endpoint=False)
_T20 = np.linspace(0, 2 * np.pi, 20, endpoint=False)
_PH13 = np.linspace(0, np.pi, 13)
_PH17 = np.linspace(-0.05, np.pi + 0.05, 17)
_PS15 = np.linspace(np.pi, 0, 15)
_CIRC = {n: np.stack([np.cos(np.linspace(0, 2 * np.pi, n, endpoint=False)),
                      np.sin(np.linspace(0, 2 * np.pi, n, endpoint=False))], 1) for n in (10, 14)}


def _ellipse_pts(c, ax, ay, n=10):
    return np.asarray(c) + _CIRC[n] * np.array([ax, ay])


def render_face(ident: Identity, frame: Frame, size: int = 128, style: Style = STYLES["studio"],
                float_out: bool = False) -> Face:
    """Render one face.  Returns a :class:`Face`: image (H, W, 3) uint8 (float32 in [0, 1] if
    ``float_out``), landmarks (68, 2), parts {name: (H, W) float32}.

    ``size`` is the output side in pixels; ``style.res_factor`` < 1 renders smaller then upsamples.
    """
    R = max(16, int(round(size * style.res_factor)))
    H = W = R
    cam = _Camera(frame, R)
    I = ident
    cv = _Canvas(H, W)
    skin = np.array(I.skin, np.float32)
    hair_c = np.array(I.hair, np.float32)
    tex_skin, tex_hair = _textures(I, H, W, cam)
    hair_tex = tex_hair * (1 + 0.03 / max(0.05, float(hair_c.mean())))
    lm = cam(canonical_landmarks(I, frame))
    jaw_top = I.eye_y + 0.12
    zero = np.zeros((H, W), np.uint8)

    # shoulders + neck
    cv.paint(cv.alpha([cam(np.array([[-3.2, 3.6, -0.6], [-2.6, 2.5, -0.6], [-0.75, 1.95, -0.4], [0.75, 1.95, -0.4],
                                     [2.6, 2.5, -0.6], [3.2, 3.6, -0.6]]))]), np.array(I.shirt, np.float32))
    neck = cam(np.array([[-0.5 * I.fw, I.chin - 0.45, -0.2], [-0.55 * I.fw, 2.15, -0.3], [0.0, 2.45, -0.1],
                         [0.55 * I.fw, 2.15, -0.3], [0.5 * I.fw, I.chin - 0.45, -0.2]]))
    a_neck = cv.paint(cv.alpha([neck]), (skin, tex_skin, 0.85))

    # hair behind the head
    hs, v = I.hair_style, I.hair_volume
    a_back = None
    if hs in ("long", "medium"):
        low = 2.1 if hs == "long" else 0.9
        ph = _PH13[::-1]
        arc = np.stack([(I.fw + v + 0.08) * np.cos(ph), jaw_top - (jaw_top - I.top + v) * np.sin(ph)], 1)
        back = np.concatenate([[[-(I.fw + v + 0.18), low]], arc, [[I.fw + v + 0.18, low]]])
        a_back = cv.paint(cv.alpha([cam(np.concatenate([back, np.full((len(back), 1), -0.5)], 1))]), (hair_c, hair_tex, 0.8))

    # ears
    ey = 0.5 * (I.eye_y + I.nose_y)
    ears = [cam(np.stack([np.full(12, s * I.fw) + s * 0.06 * (1 + np.cos(_T12)), ey + I.ear_h * np.sin(_T12),
                          -0.15 + I.ear_w * np.cos(_T12)], 1)) for s in (-1, 1)]
    a_ears = cv.paint(cv.alpha(ears), (skin, tex_skin, 0.9))

    # head skin: jaw + forehead
    fh = np.stack([I.fw * np.cos(_PH13) * (1 - 0.04 * np.sin(_PH13)), jaw_top - (jaw_top - I.top) * np.sin(_PH13) ** 0.8], 1)
    head = np.concatenate([lm[:17], cam(_with_z(fh, I.fw, 0.0) * np.array([1, 1, 0.6]))])
    a_skin = cv.paint(cv.alpha([head]), (skin, tex_skin, 1.0))
    la = frame.light_angle
    # soft shade beside the nose, away from the light
    s_i = 31 if np.cos(la) > 0 else 35
    nose_sh = np.stack([lm[27], lm[30], lm[s_i], lm[s_i] + 0.5 * (lm[27] - lm[30]) + 0.3 * (lm[s_i] - lm[33])])
    cv.paint(cv.alpha([nose_sh]), (skin, tex_skin, 0.8), mult=min(0.5, 1.5 * frame.light_strength))

    # beard
    a_beard = zero
    if I.beard > 0:
        bpts = np.concatenate([lm[3:14], lm[[54]] + (lm[[35]] - lm[[54]]) * 0.5, lm[[33]] + (lm[[51]] - lm[[33]]) * 0.2,
                               lm[[48]] + (lm[[31]] - lm[[48]]) * 0.5])
        dens = np.clip(I.beard * (0.8 + 2 * tex_hair) * 255, 0, 255).astype(np.uint8)
        a_beard = cv.paint(_mul(cv.alpha([bpts]), dens), (hair_c, hair_tex, 0.9))

    # hair on top
    hl = I.top + (I.eye_y - I.brow_gap - I.top) * I.hairline
    side_y = {"crop": jaw_top - 0.15, "short": jaw_top - 0.05, "medium": jaw_top + 0.25,
              "long": jaw_top + 0.35, "fringe": jaw_top + 0.05}[hs]
    vol = v * (0.3 if hs == "crop" else 1.0)
    outer = np.stack([(I.fw + vol) * np.cos(_PH17), side_y - (side_y - I.top + vol) * np.sin(_PH17)], 1)
    if hs == "fringe":
        fy = I.eye_y - I.brow_gap - 0.07
        inner = np.stack([I.fw * 0.97 * np.cos(_PS15), side_y - (side_y - fy) * np.sin(_PS15) ** 0.3], 1)
        inner[1:-1:2, 1] -= 0.06
    else:
        inner = np.stack([I.fw * 0.97 * np.cos(_PS15), side_y - (side_y - hl) * np.sin(_PS15) ** 0.5], 1)
    a_hair = cv.paint(cv.alpha([cam(_with_z(np.concatenate([outer, inner]), I.fw, 0.02))]), (hair_c, hair_tex, 1.0))
    parts_hair = a_hair if a_back is None else np.maximum(a_hair, cv2.subtract(a_back, a_skin))

    # brows
    brow_c = np.array(I.brow, np.float32)
    th = I.brow_thick * cam.S
    a_brows = cv.paint(cv.alpha([lm[17:22], lm[22:27]], closed=False, thickness=th), brow_c, mult=0.9)

    # eyes
    sclera = np.array([0.93, 0.91, 0.87], np.float32)
    iris_c = np.array(I.iris, np.float32)
    a_eyes = cv.paint(cv.alpha([lm[36:42], lm[42:48]]), sclera)
    r = max(0.8, I.eye_h * 1.05 * cam.S)
    g = np.array(frame.gaze) * I.eye_w * cam.S * np.array([0.6, 0.3])
    ctrs = [lm[36:42].mean(0) + g, lm[42:48].mean(0) + g]
    cv.paint(_mul(cv.alpha([_ellipse_pts(c, r, r, 14) for c in ctrs]), a_eyes), iris_c)
    cv.paint(_mul(cv.alpha([_ellipse_pts(c, 0.45 * r, 0.45 * r) for c in ctrs]), a_eyes), np.float32([0.03, 0.03, 0.03]))
    cv.paint(cv.alpha([lm[36:40], lm[42:46]], closed=False, thickness=max(1.0, 0.012 * cam.S)), brow_c * 0.6, mult=0.85)

    # nose: nostrils + tip highlight
    a_nose = cv.alpha([np.stack([lm[27] + (lm[31] - lm[35]) * 0.15, lm[31], lm[33], lm[35], lm[27] + (lm[35] - lm[31]) * 0.15])])
    rr = max(0.6, 0.028 * cam.S)
    cv.paint(cv.alpha([_ellipse_pts(lm[i] - np.array([0, 0.3 * rr]), 1.4 * rr, rr) for i in (32, 34)]), skin * 0.35, mult=0.7)
    tip = lm[30] + np.array([-np.cos(la), -np.sin(la)]) * 0.03 * cam.S
    cv.paint(cv.alpha([_ellipse_pts(tip, 0.05 * cam.S, 0.035 * cam.S)]), np.minimum(skin * 1.25, 1), mult=0.25)

    # mouth
    lip_c = np.array(I.lip, np.float32)
    a_mouth = cv.paint(cv.alpha([lm[48:60]]), lip_c)
    if frame.mouth_open > 0.03:
        inner = lm[60:68]
        a_in = cv.paint(cv.alpha([inner]), np.float32([0.22, 0.06, 0.07]))
        teeth = np.concatenate([inner[:5], inner[[4]] + (inner[[5]] - inner[[3]]) * 0.35,
                                inner[[0]] + (inner[[7]] - inner[[1]]) * 0.35])
        cv.paint(_mul(cv.alpha([teeth]), a_in), np.float32([0.9, 0.88, 0.82]))
    else:
        cv.paint(cv.alpha([lm[60:65]], closed=False, thickness=1), lip_c * 0.5, mult=0.6)

    # glasses
    a_glasses = zero
    if I.glasses:
        gcol = np.array(I.glasses_color, np.float32)
        if I.glasses == 1:
            x, y = np.cos(_T20), np.sin(_T20)
        else:
            x = np.sign(np.cos(_T20)) * np.abs(np.cos(_T20)) ** 0.3
            y = np.sign(np.sin(_T20)) * np.abs(np.sin(_T20)) ** 0.3
        ax, ay = I.eye_w * 1.55, I.eye_h * 2.6 + 0.02
        rims = [cam(_with_z(np.stack([s * I.eye_dx + ax * x, I.eye_y + 0.01 + ay * y], 1), I.fw, 0.18)) for s in (-1, 1)]
        lens = cv.paint(cv.alpha(rims), gcol * 0.5 + 0.3, mult=I.glasses_tint)
        gt = max(1.0, 0.025 * cam.S)
        bridge = cam(_with_z(np.array([[-I.eye_dx + ax, I.eye_y - 0.02], [0, I.eye_y - 0.06],
                                       [I.eye_dx - ax, I.eye_y - 0.02]]), I.fw, 0.2))
        temples = [cam(np.array([[s * (I.eye_dx + ax), I.eye_y, 0.55], [s * I.fw * 1.02, ey - 0.1, -0.1]])) for s in (-1, 1)]
        frame_a = np.maximum(cv.alpha(rims, closed=True, thickness=gt), cv.alpha([bridge] + temples, closed=False, thickness=gt))
        cv.paint(frame_a, gcol)
        a_glasses = np.maximum(lens, frame_a)

    # lighting (foreground only): ambient + directional + edge falloff
    yy, xx = _grid(H, W)
    X = (xx - np.float32(cam.c[0])) * np.float32(1 / cam.S)
    Y = (yy - np.float32(cam.c[1])) * np.float32(1 / cam.S)
    shade = (frame.ambient + 0.28 + frame.light_strength * (np.cos(la) * X + np.sin(la) * Y) - 0.06 * (X * X + 0.5 * Y * Y))
    A = cv.A[..., None]
    bg = _background(frame, H, W)
    img = bg + (cv.fg * shade[..., None] - bg) * A
    # camera: colour temperature, saturation, blur, noise
    temp = frame.light_temp
    img *= np.array([1 + temp, 1.0, 1 - temp], np.float32)
    if style.saturation != 1.0:
        gr = img.mean(2, keepdims=True)
        img = gr + (img - gr) * np.float32(style.saturation)
    if frame.blur > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), frame.blur * R / 128)
    if frame.noise > 0:
        img += _noise(frame.seed, H, W) * np.float32(frame.noise)

    parts = {"skin": a_skin, "hair": parts_hair, "eyes": a_eyes, "brows": a_brows, "nose": a_nose, "mouth": a_mouth,
             "ears": a_ears, "neck": a_neck, "beard": a_beard, "glasses": a_glasses}
    if R != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
        parts = {k: cv2.resize(p, (size, size), interpolation=cv2.INTER_LINEAR) for k, p in parts.items()}
        lm = (lm + 0.5) * (size / R) - 0.5
        fg = cv2.resize(cv.A, (size, size), interpolation=cv2.INTER_LINEAR)
    else:
        fg = cv.A
    parts = {k: p.astype(np.float32) * np.float32(1 / 255) for k, p in parts.items()}
    parts["fg"] = fg
    np.clip(img, 0, 1, out=img)
    if not float_out:
        img = (img * 255 + 0.5).astype(np.uint8)
    return Face(image=img, landmarks=lm.astype(np.float32), parts=parts, identity=ident, frame=frame)
