"""Manipulation-map sources compared in FoCus's evaluation protocol (Sec. IV-A, Tables I, II, VI).

Every source returns float32 maps (B, 1, H, W) in [0, 1].  When ``label`` (B,) is given, **real faces
(label 0) get all-zero maps** (the protocol: class labels are known when training the evaluator, so whatever
a source marks on a real face is dropped).  Without ``label`` nothing is zeroed (the unpaired, unlabelled use).

Comparison-based sources (need the pristine face the forgery was made from, pixel-aligned):

- ``ssim_map``:  clip(1 - SSIM(fake, pristine), 0, 1), the local SSIM map of Wang et al. 2004 with an 11x11
  Gaussian window (sigma 1.5), C1 = (0.01)^2, C2 = (0.03)^2 for data range 1, population (co)variances
  and symmetric border padding (= ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=1, full=True)``), averaged over R, G, B.
- ``diff_map``:  mean over R, G, B of |fake - pristine|, divided by its per-image maximum (``normalize``;
  the paper does not say how it scales the difference; ``normalize=False`` keeps raw values in [0, 1]).
- ``diff_map_thresholded``:  1[mean_c |fake - pristine| > 0.1] (the "Pixel-wise difference @ 0.1" of the
  paper, threshold on the raw difference of [0, 1] intensities, i.e. 25.5 grey levels).

Model-based sources (no pristine face needed):

- ``cam_maps``:  Grad-CAM / Score-CAM of a trained ViT-S detector for the fake class, via ``dfnb.cam``.
- ``focus_maps``:  FoCus's fusion CAR map (Eq. 5, ``variant="pred"``) or its fake-class version (Eq. 9,
  ``variant="fake"``), resized bilinearly to the requested size and re-normalised per image to peak at 1.

``compute_maps(source, batch, ...)`` dispatches on the names in ``SOURCES``; ``iter_maps`` runs it over a loader.
"""
from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

from torch.utils.data import Dataset

from .carp import normalize_map

SOURCES = ("ssim", "diff", "diff@0.1", "gradcam", "scorecam", "focus", "focus_fake")


def _check_pair(fake: torch.Tensor, pristine: torch.Tensor) -> None:
    for name, t in (("fake", fake), ("pristine", pristine)):
        if not torch.is_tensor(t) or t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"{name} must be (B, 3, H, W) RGB in [0, 1]; got {getattr(t, 'shape', type(t))}")
    if fake.shape != pristine.shape:
        raise ValueError(f"fake {tuple(fake.shape)} and pristine {tuple(pristine.shape)} images differ in shape; "
                         "comparison-based maps need pixel-aligned pairs")


def _device_of(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def zero_real(maps: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
    """Set the maps (B, 1, H, W) of real faces (label 0) to zero; ``label=None`` leaves them alone."""
    if label is None:
        return maps
    label = torch.as_tensor(label, device=maps.device)
    if label.shape != (maps.shape[0],):
        raise ValueError(f"label must be (B,) = ({maps.shape[0]},); got {tuple(label.shape)}")
    return maps * (label != 0).to(maps.dtype).view(-1, 1, 1, 1)


def resize_map(m: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """Bilinear resize of (B, 1, h, w) maps to ``size`` (no-op for None or the same size), clipped to [0, 1]."""
    if size is None or tuple(m.shape[-2:]) == tuple(size):
        return m
    return F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False).clamp(0, 1)


def _gaussian_kernel1d(sigma: float, truncate: float = 3.5, dtype=torch.float32, device=None) -> torch.Tensor:
    r = int(truncate * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def _symmetric_pad(x: torch.Tensor, r: int) -> torch.Tensor:
    """Pad the last two axes by r with edge-repeating reflection (scipy.ndimage mode 'reflect')."""
    h, w = x.shape[-2:]
    if r > min(h, w):
        raise ValueError(f"image {h}x{w} is smaller than the SSIM window radius {r}")
    iy = torch.cat([torch.arange(r - 1, -1, -1), torch.arange(h), torch.arange(h - 1, h - 1 - r, -1)]).to(x.device)
    ix = torch.cat([torch.arange(r - 1, -1, -1), torch.arange(w), torch.arange(w - 1, w - 1 - r, -1)]).to(x.device)
    return x[..., iy, :][..., ix]


def _gauss_filter(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    r = k.numel() // 2
    x = _symmetric_pad(x, r)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim_full(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.5, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel, per-channel SSIM (B, C, H, W) of two image batches (Gaussian window, see module docstring)."""
    x, y = x.float(), y.float()
    k = _gaussian_kernel1d(sigma, device=x.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = _gauss_filter(x, k), _gauss_filter(y, k)
    vx = _gauss_filter(x * x, k) - mx * mx
    vy = _gauss_filter(y * y, k) - my * my
    cxy = _gauss_filter(x * y, k) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


@torch.no_grad()
def ssim_map(fake: torch.Tensor, pristine: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 3, H, W) pair -> clip(1 - SSIM, 0, 1) averaged over channels, (B, 1, H, W); real faces zeroed."""
    _check_pair(fake, pristine)
    m = (1 - ssim_full(fake, pristine)).clamp(0, 1).mean(dim=1, keepdim=True)
    return zero_real(m, label)


@torch.no_grad()
def diff_map(fake: torch.Tensor, pristine: torch.Tensor, label: torch.Tensor | None = None,
             normalize: bool = True) -> torch.Tensor:
    """(B, 3, H, W) pair -> mean-over-channels |fake - pristine|, / per-image max if ``normalize``."""
    _check_pair(fake, pristine)
    m = (fake.float() - pristine.float()).abs().mean(dim=1, keepdim=True)
    if normalize:
        m = normalize_map(m)
    return zero_real(m, label)


@torch.no_grad()
def diff_map_thresholded(fake: torch.Tensor, pristine: torch.Tensor, label: torch.Tensor | None = None,
                         threshold: float = 0.1) -> torch.Tensor:
    """Binary map 1[mean_c |fake - pristine| > threshold] (B, 1, H, W); real faces zeroed."""
    _check_pair(fake, pristine)
    m = ((fake.float() - pristine.float()).abs().mean(dim=1, keepdim=True) > threshold).float()
    return zero_real(m, label)


def cam_maps(model, images: torch.Tensor, label: torch.Tensor | None = None, method: str = "gradcam",
             target_layer=None, target_class: int = 1, size: tuple[int, int] | None = None,
             **cam_kwargs) -> torch.Tensor:
    """Grad-CAM / Score-CAM maps of a trained detector for ``target_class`` (1 = fake), (B, 1, H, W) in [0, 1].

    Uses ``dfnb.cam.GradCAM`` / ``dfnb.cam.ScoreCAM`` (``target_layer`` None: its default layer, the last
    block's ``norm1`` tokens for a timm ViT; other keyword arguments such as ``batch_size`` go to the CAM);
    the maps are resized to ``size`` (default: the images') and real faces are zeroed when ``label`` is given.
    """
    from dfnb.cam import GradCAM, ScoreCAM

    cams = {"gradcam": GradCAM, "scorecam": ScoreCAM}
    if method not in cams:
        raise ValueError(f"method must be one of {sorted(cams)}; got {method!r}")
    cam = cams[method](model, target_layer, **cam_kwargs)
    m = cam(images.to(_device_of(model)), target=target_class).float().to(images.device).unsqueeze(1)
    return zero_real(normalize_map(resize_map(m, size or tuple(images.shape[-2:]))), label)


@torch.no_grad()
def focus_maps(model, images: torch.Tensor, label: torch.Tensor | None = None, variant: str = "pred",
               size: tuple[int, int] | None = None) -> torch.Tensor:
    """FoCus manipulation maps (B, 1, H, W) in [0, 1]: Eq. 5 (``variant="pred"``) or Eq. 9 (``"fake"``).

    Runs ``model`` in eval mode (deterministic CL selection), resizes each map bilinearly to ``size``
    (default: the images'), re-normalises it to peak at 1 and zeroes real faces when ``label`` is given.
    """
    keys = {"pred": "car_map", "fake": "car_map_fake"}
    if variant not in keys:
        raise ValueError(f"variant must be 'pred' (Eq. 5) or 'fake' (Eq. 9); got {variant!r}")
    was_training = model.training
    model.eval()
    try:
        m = model(images.to(_device_of(model)))[keys[variant]].float().to(images.device)
    finally:
        model.train(was_training)
    m = normalize_map(resize_map(m, size or tuple(images.shape[-2:])))
    return zero_real(m, label)


def compute_maps(source: str, batch: dict, model=None, size: tuple[int, int] | None = None,
                 **kwargs) -> torch.Tensor:
    """Maps of one ``source`` in ``SOURCES`` for a collated ``batch`` (keys ``image``, ``label`` and, for
    the comparison-based sources, ``pristine``: the aligned pristine face (B, 3, H, W)); real faces zeroed.

    ``model``: the trained ViT-S detector (``gradcam``/``scorecam``) or FoCus (``focus``/``focus_fake``).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown map source {source!r}; choose from {SOURCES}")
    for k in ("image", "label"):
        if k not in batch:
            raise KeyError(f"batch has no {k!r}; needed for map source {source!r}")
    images, label = batch["image"], batch["label"]
    if source in ("ssim", "diff", "diff@0.1"):
        if "pristine" not in batch:
            raise KeyError(f"map source {source!r} compares with the pristine face: batch needs 'pristine'")
        fn = {"ssim": ssim_map, "diff": diff_map, "diff@0.1": diff_map_thresholded}[source]
        return resize_map(fn(images, batch["pristine"], label, **kwargs), size)
    if model is None:
        raise ValueError(f"map source {source!r} needs a trained model")
    if source in ("gradcam", "scorecam"):
        return cam_maps(model, images, label, method=source, size=size, **kwargs)
    return focus_maps(model, images, label, variant="fake" if source == "focus_fake" else "pred", size=size)


def iter_maps(source: str, loader, model=None, size: tuple[int, int] | None = None, device: str = "cpu",
              **kwargs):
    """Yield ``(batch, maps)`` for every batch of ``loader`` (maps on the CPU), with a tqdm progress bar.

    ``model`` is moved to ``device``; the batch's images stay where the loader put them.
    """
    from tqdm.auto import tqdm

    if model is not None:
        model.to(device)
    for batch in tqdm(loader, desc=f"maps: {source}", leave=False):
        yield batch, compute_maps(source, batch, model=model, size=size, **kwargs).cpu()


class WithMap(Dataset):
    """A split with the map of a source under ``map`` (N maps (1, H, W) for N items; real faces already zero).

    ``fingerprint``: the inner split's (``dfnb.experiments.fingerprint``) and a SHA-256 of the maps, so the
    experiment cache tells one map source from another.
    """

    def __init__(self, dataset, maps):
        if len(dataset) != len(maps):
            raise ValueError(f"{len(maps)} maps for {len(dataset)} faces")
        self.dataset, self.maps = dataset, maps
        self._fp = None

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return {**self.dataset[i], "map": self.maps[i].float()}

    @property
    def fingerprint(self) -> str:
        if self._fp is None:
            from dfnb.experiments import fingerprint

            m = torch.as_tensor(self.maps).detach().cpu().contiguous()
            digest = hashlib.sha256(m.numpy().tobytes()).hexdigest()[:20]
            self._fp = f"withmap:{fingerprint(self.dataset)}:{tuple(m.shape)}:{m.dtype}:{digest}"
        return self._fp
