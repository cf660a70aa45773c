"""Input modalities for FoCus's second branch: Sobel magnitude, block DCT, SRM noise.

Every function maps RGB images ``x`` (B, 3, H, W) float in [0, 1] to a 3-channel image (B, 3, H, W) in
[0, 1], so that the auxiliary branch is a ViT identical to the RGB one and a token of either branch covers
the same pixels (the paper's token substitution needs this spatial alignment).  They are fixed,
parameter-free transforms: nothing here is learned.

Sobel (the paper's choice; the paper does not say how it scales the filtered image)
    gray = 0.299 R + 0.587 G + 0.114 B (OpenCV's ``COLOR_RGB2GRAY`` weights);
    gx, gy = 3x3 Sobel derivatives of ``gray`` (exactly ``cv2.Sobel(gray, CV_32F, 1, 0, ksize=3)`` and
    ``(0, 1)``, border ``BORDER_REFLECT_101``);
    magnitude = sqrt(gx^2 + gy^2), then **clipped to [0, 1]** and copied to 3 channels.
    Our normalisation: on [0, 1] intensities the magnitude can reach 4*sqrt(2); clipping at 1 is what one
    gets from the usual uint8 pipeline (Sobel on 0..255 intensities, saturate to 255, divide by 255),
    which keeps weak blending edges visible instead of dividing them by 5.7.  ``clip=False`` returns
    the raw magnitude.

DCT (ablation, Table V)
    Orthonormal 8x8 block DCT-II of each RGB channel (JPEG layout, so a 16-px patch holds 2x2 whole blocks),
    shown as log(1 + |c|) / log(1 + 8): 8 is the largest possible orthonormal coefficient of a block of
    values in [0, 1] (the DC term), so the output lies in [0, 1].  H and W must be multiples of 8.

SRM (ablation, Table V)
    The three classic steganalysis high-pass kernels used by the RGB-N / GFFD line of work (the 5x5
    "KV" kernel / 12, the 3x3 second-order kernel / 4 and the 1x3 first-order-like kernel / 2, both
    zero-padded to 5x5).  Output channel i = kernel i applied to each of R, G, B and summed, on 0..255
    intensities, truncated to [-3, 3] (the steganalysis truncation T = 3) and mapped to [0, 1] by (r + 3) / 6.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.299, 0.587, 0.114)
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def _check_rgb(x: torch.Tensor, name: str = "images") -> None:
    if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name} must be a (B, 3, H, W) tensor of RGB in [0, 1]; got {shape}")


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) luma with OpenCV's RGB2GRAY weights."""
    _check_rgb(x)
    w = x.new_tensor(GRAY_WEIGHTS).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def sobel_gradients(gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, H, W) -> (gx, gy), each (B, 1, H, W): OpenCV ``Sobel`` ksize 3 with BORDER_REFLECT_101."""
    if gray.ndim != 4 or gray.shape[1] != 1:
        raise ValueError(f"gray must be (B, 1, H, W); got {tuple(gray.shape)}")
    if min(gray.shape[-2:]) < 2:
        raise ValueError(f"Sobel needs images of at least 2x2 pixels; got {tuple(gray.shape[-2:])}")
    kx = gray.new_tensor(_SOBEL_X).view(1, 1, 3, 3)
    ky = kx.transpose(-1, -2)
    p = F.pad(gray, (1, 1, 1, 1), mode="reflect")  # torch 'reflect' == OpenCV BORDER_REFLECT_101
    return F.conv2d(p, kx), F.conv2d(p, ky)  # conv2d is a correlation, like cv2.filter2D / cv2.Sobel


def sobel_magnitude(x: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """RGB (B, 3, H, W) in [0, 1] -> Sobel magnitude image (B, 3, H, W), see the module docstring."""
    gx, gy = sobel_gradients(rgb_to_gray(x))
    mag = torch.sqrt(gx * gx + gy * gy)
    if clip:
        mag = mag.clamp(0.0, 1.0)
    return mag.expand(-1, 3, -1, -1).contiguous()


def dct_matrix(n: int = 8, dtype=torch.float32, device=None) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (n, n): coefficients of a vector v are D @ v (scipy ``dct(norm='ortho')``)."""
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, -1)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype=dtype, device=device)


def block_dct(x: torch.Tensor, block: int = 8) -> torch.Tensor:
    """(B, C, H, W) -> raw orthonormal block DCT-II coefficients, same shape (each block in place)."""
    b, c, h, w = x.shape
    if h % block or w % block:
        raise ValueError(f"block DCT needs H and W divisible by {block}; got {h}x{w}")
    d = dct_matrix(block, x.dtype, x.device)
    t = x.reshape(b, c, h // block, block, w // block, block).permute(0, 1, 2, 4, 3, 5)
    t = d @ t @ d.T
    return t.permute(0, 1, 2, 4, 3, 5).reshape(b, c, h, w)


def dct_image(x: torch.Tensor, block: int = 8) -> torch.Tensor:
    """RGB (B, 3, H, W) in [0, 1] -> log-magnitude block DCT image in [0, 1], (B, 3, H, W)."""
    _check_rgb(x)
    return torch.log1p(block_dct(x, block).abs()) / math.log1p(block)


def srm_kernels() -> torch.Tensor:
    """The three SRM kernels, (3, 5, 5), already divided by their usual normalisers (12, 4, 2)."""
    k1 = torch.tensor([[0, 0, 0, 0, 0], [0, -1, 2, -1, 0], [0, 2, -4, 2, 0], [0, -1, 2, -1, 0], [0, 0, 0, 0, 0]],
                      dtype=torch.float32) / 4.0
    k2 = torch.tensor([[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2],
                       [-1, 2, -2, 2, -1]], dtype=torch.float32) / 12.0
    k3 = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, -2, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
                      dtype=torch.float32) / 2.0
    return torch.stack([k1, k2, k3])


def srm_image(x: torch.Tensor, truncation: float = 3.0) -> torch.Tensor:
    """RGB (B, 3, H, W) in [0, 1] -> SRM noise residual image in [0, 1], (B, 3, H, W)."""
    _check_rgb(x)
    w = srm_kernels().to(x).unsqueeze(1).expand(3, 3, 5, 5)  # out i = kernel i on R, G and B, summed
    r = F.conv2d(F.pad(x * 255.0, (2, 2, 2, 2), mode="reflect"), w)
    return (r.clamp(-truncation, truncation) + truncation) / (2 * truncation)


def rgb_identity(x: torch.Tensor) -> torch.Tensor:
    """The '+RGB' ablation: the second branch sees the RGB image itself."""
    _check_rgb(x)
    return x


MODALITIES = {"sobel": sobel_magnitude, "rgb": rgb_identity, "dct": dct_image, "srm": srm_image}


def get_modality(name: str):
    """The transform for ``name`` in {"sobel", "rgb", "dct", "srm"}."""
    if name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}; choose one of {sorted(MODALITIES)} or None (RGB only)")
    return MODALITIES[name]
