"""The Multiscale Adapter of DADF (Section 3.1, Fig. 3, Eq. 1-3) and its variants B/C/D.

For the output ``x'`` of a frozen transformer layer (tokens ``(B, H, W, C)`` in SAM's ViT,
turned into ``(B, C, H, W)`` here and back)::

    u      = Conv1x1(x')                                   (C -> c)
    f(u)   = Conv3x3,d1(Conv1x1(u))                        short range,   RF 3
    g(u)   = Conv3x3,d3(Conv3x3(u))                        middle range,  RF 9
    h(u)   = Conv3x3,d5(Conv5x5(u))                        long range,    RF 15
    Sout1  = Conv1x1'(concat(f(u), g(u), h(u)))            (3c -> C)       Eq. 2
    Sout   = Sout1 + Conv1x1'''(x')                        (C -> C)        Eq. 3

Fig. 3: "a batch normalization layer and a ReLU layer are cascaded after every convolution".
We read "every convolution" as every convolution *inside* the multi-scale path (the input
1x1 and the two convolutions of each branch); the output 1x1 and the skip 1x1 stay linear,
because a ReLU there would make the adapted tokens non-negative, which a ViT's residual
stream is not.  Receptive field (RF) above is per adapter, in tokens.

Initialisation (our choice; the paper does not say): the skip ``Conv1x1'''`` starts as the
identity and the output ``Conv1x1'`` at zero, so an adapted frozen encoder computes exactly
the pretrained SAM features at step 0 (the usual zero-init of adapters / LoRA).  Eq. 3's
learnable skip keeps its full 1x1 freedom afterwards.  Because of the zero output conv the
branch weights get a zero gradient on the very first backward pass and non-zero ones after
the first update.

Variants (Fig. 3, Table 5):

- ``"multiscale"`` (a): the three branches above;
- ``"B"`` without dilated convolutions: the same branches with dilation 1 (RF 3, 5, 7);
- ``"C"`` without the 3x3 branch: ``f`` and ``h`` only;
- ``"D"`` without the 1x1 branch: ``g`` and ``h`` only.

Width ``c`` of the branches: Fig. 3 labels the first 1x1 convolution "Conv1x1, 256" for
SAM ViT-H (width 1280), i.e. ``c = C/5``; :func:`default_adapter_dim` applies that ratio to
every SAM (256 for ViT-H, 154 for ViT-B, 38 for micro-SAM).

Placement: the text puts an adapter on the output of each transformer layer; Eq. 1 writes
``L_n(...L_2(R(L_1(R(x_p)))))``, i.e. one before each layer (the patch embedding gets one,
the last layer's output none).  :class:`AdaptedEncoder` does ``"after"`` (text, Fig. 2, the
default) or ``"before"`` (Eq. 1).
"""
from __future__ import annotations

import torch
from segment_anything.modeling import ImageEncoderViT
from torch import nn

#: (kernel of the first conv, dilation of the 3x3 conv) of each branch, per variant.
VARIANTS: dict[str, tuple[tuple[int, int], ...]] = {
    "multiscale": ((1, 1), (3, 3), (5, 5)),
    "B": ((1, 1), (3, 1), (5, 1)),
    "C": ((1, 1), (5, 5)),
    "D": ((3, 3), (5, 5)),
}


def default_adapter_dim(dim: int) -> int:
    """Branch width ``c = dim / 5`` (Fig. 3: 256 channels for ViT-H's 1280), at least 16."""
    return max(16, round(dim / 5))


def receptive_field(variant: str) -> int:
    """Side, in tokens, of one adapter's receptive field: ``max_b (k_b + 2 d_b)``."""
    return max(k + 2 * d for k, d in VARIANTS[_check_variant(variant)])


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown adapter variant {variant!r}; choose one of {sorted(VARIANTS)}")
    return variant


def _cbr(cin: int, cout: int, k: int, d: int = 1) -> nn.Sequential:
    """conv k x k (dilation d, 'same' padding) + BN + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=d * (k - 1) // 2, dilation=d, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class MultiscaleAdapter(nn.Module):
    """One Multiscale Adapter: ``(B, C, H, W) -> (B, C, H, W)`` (Eq. 2-3).

    Args:
        dim: channels ``C`` of the tokens.
        adapter_dim: branch width ``c`` (default :func:`default_adapter_dim`).
        variant: ``"multiscale"``, ``"B"``, ``"C"`` or ``"D"`` (see the module docstring).
        zero_init: identity skip + zero output conv, so the adapter starts as the identity.
    """

    def __init__(self, dim: int, adapter_dim: int | None = None, variant: str = "multiscale",
                 zero_init: bool = True) -> None:
        super().__init__()
        self.variant = _check_variant(variant)
        c = adapter_dim or default_adapter_dim(dim)
        self.proj_in = _cbr(dim, c, 1)
        self.branches = nn.ModuleList(nn.Sequential(_cbr(c, c, k), _cbr(c, c, 3, d)) for k, d in VARIANTS[variant])
        self.proj_out = nn.Conv2d(c * len(self.branches), dim, 1)
        self.skip = nn.Conv2d(dim, dim, 1)
        if zero_init:
            nn.init.zeros_(self.proj_out.weight)
            nn.init.zeros_(self.proj_out.bias)
            with torch.no_grad():
                self.skip.weight.copy_(torch.eye(dim).view(dim, dim, 1, 1))
                self.skip.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        u = self.proj_in(x)
        return self.proj_out(torch.cat([b(u) for b in self.branches], dim=1)) + self.skip(x)


class AdaptedEncoder(nn.Module):
    """SAM's ``ImageEncoderViT`` run with one adapter per transformer block.

    The encoder's own modules are used unchanged (its state-dict keys stay SAM's); the
    adapters live beside it.  ``adapters=None`` runs the plain encoder.

    Args:
        encoder: SAM image encoder (frozen or not: that is decided by the caller).
        adapters: ``nn.ModuleList`` of ``len(encoder.blocks)`` modules mapping ``(B, C, h, w)``
            to itself, or ``None``.
        position: ``"after"`` each block (text) or ``"before"`` it (Eq. 1).
    Shapes: ``(B, 3, S, S)`` normalised images -> ``(B, C_out, S/p, S/p)`` (after SAM's neck).
    """

    def __init__(self, encoder: ImageEncoderViT, adapters: nn.ModuleList | None = None,
                 position: str = "after") -> None:
        super().__init__()
        if position not in ("after", "before"):
            raise ValueError(f"adapter position must be 'after' or 'before', got {position!r}")
        if adapters is not None and len(adapters) != len(encoder.blocks):
            raise ValueError(f"{len(adapters)} adapters for {len(encoder.blocks)} blocks")
        self.encoder, self.adapters, self.position = encoder, adapters, position

    @staticmethod
    def _adapt(adapter: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
        # (B, H, W, C) tokens -> (B, C, H, W) for the convolutions -> back.
        return adapter(tokens.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images ``(B, 3, S, S)`` -> tokens ``Z_tran`` ``(B, S/p, S/p, C)`` (Eq. 1)."""
        enc = self.encoder
        x = enc.patch_embed(x)
        if enc.pos_embed is not None:
            x = x + enc.pos_embed
        for i, blk in enumerate(enc.blocks):
            if self.adapters is not None and self.position == "before":
                x = self._adapt(self.adapters[i], x)
            x = blk(x)
            if self.adapters is not None and self.position == "after":
                x = self._adapt(self.adapters[i], x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images ``(B, 3, S, S)`` -> neck features ``(B, C_out, S/p, S/p)``."""
        return self.encoder.neck(self.forward_tokens(x).permute(0, 3, 1, 2))


def build_adapters(dim: int, depth: int, variant: str | None, adapter_dim: int | None = None) -> nn.ModuleList | None:
    """``depth`` adapters of ``variant`` (``None`` -> no adapters)."""
    if variant is None:
        return None
    return nn.ModuleList(MultiscaleAdapter(dim, adapter_dim, variant) for _ in range(depth))
