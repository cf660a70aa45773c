"""Reconstruction Guided Attention (RGA), DADF Section 3.2, Eq. 4-7.

The paper::

    x_gau = G(x)                      white noise N(0, 1e-6)                      (4)
    F_gau = Phi(x_gau),  F = Phi(x)   Phi: the whole (adapted) image encoder      (4)
    S     = |F_gau - F|                                                          (5)
    F_fin = [alpha(phi(S)) (x) phi(F)] + F                                        (6)
    L_rec = 1/M sum_i || F_gau_i - F_i ||_1     over real faces only             (7)

with ``phi`` "an enhancer with 1x1 convolution", ``alpha`` "the Softmax function layer" and
``(x)`` element-wise multiplication.

Our reading, and what the text leaves open:

1. **Softmax axis.**  Eq. 6 does not say.  Default ``softmax_over="spatial"``: per channel,
   over the ``h*w`` positions, so each channel's attention is a distribution over where
   the features of noisy and clean input differ most; ``"channel"`` (per position, over
   the ``C`` channels) is the alternative.  Either way the weights are <= 1 and sum to 1
   (over ``h*w`` or ``C``), so at initialisation the attended term is small against the
   ``+ F`` residual; the 1x1 enhancer can sharpen the softmax by scaling its logits.
2. **One enhancer or two.**  Eq. 6 writes the same ``phi`` on ``S`` and on ``F``; we share
   one 1x1 convolution (``C -> C``, with bias), as written.
3. **Noise.**  Variance 1e-6 -> std 1e-3, added to the images in [0, 1] before SAM's
   normalisation (the paper does not say on which scale).  In training, following RECCE
   (see ``papers/NOTES.md``), a random ~half of the samples (``noise_p=0.5``) get noise,
   fake or real: the forward pass cannot see labels, and Table 6's "fake"/"all" settings
   need noisy features of fakes too.  "Noise on the real faces" is realised by the loss:
   ``L_rec`` counts only the noised samples chosen by ``rec_on`` (``"real"`` by default).
   Samples without noise have ``S = 0`` exactly, hence uniform attention.  At evaluation
   every sample gets the *same* fixed noise image (seeded), so predictions are
   deterministic and do not depend on batch composition; the attention map is then the
   forgery-aware map of Section 3.2 ("pay more attention to unknown forged regions in the
   inference stage").
4. **Norm in Eq. 7.**  We average ``|F_gau - F|`` over the ``C*h*w`` elements of a sample
   (mean absolute error) and then over the selected samples, so ``lambda_rec = 0.1`` does
   not depend on the feature size; Eq. 7's summed L1 norm would be ``C*h*w`` times larger.
5. **Gradient.**  No stop-gradient is mentioned, so ``L_rec`` and the attention path
   back-propagate through *both* encoder passes (into the adapters and the task head; the
   frozen SAM weights get none).  The noisy pass is a second encoder forward for the
   noised samples (about 1.5x the encoder compute in training at ``noise_p=0.5``, 2x at
   evaluation); the clean and noisy images go through the encoder as one batch, so the
   adapters' BatchNorm sees both.
"""
from __future__ import annotations

import torch
from torch import nn

NOISE_STD = 1e-3  # sqrt(1e-6)
REC_ON = ("real", "fake", "all")


class ReconstructionGuidedAttention(nn.Module):
    """Eq. 5-6: ``F_final = softmax(phi(|F_gau - F|)) * phi(F) + F``.

    Args:
        dim: channels ``C`` of the features.
        softmax_over: ``"spatial"`` (per channel over ``h*w``, default) or ``"channel"``.
    Shapes: ``F``, ``F_gau`` ``(B, C, h, w)`` -> ``F_final`` ``(B, C, h, w)``, attention
    ``(B, C, h, w)``.
    """

    def __init__(self, dim: int, softmax_over: str = "spatial") -> None:
        super().__init__()
        if softmax_over not in ("spatial", "channel"):
            raise ValueError(f"softmax_over must be 'spatial' or 'channel', got {softmax_over!r}")
        self.softmax_over = softmax_over
        self.enhancer = nn.Conv2d(dim, dim, kernel_size=1)  # phi

    def attention(self, s: torch.Tensor) -> torch.Tensor:
        """``alpha(phi(S))``: ``(B, C, h, w) -> (B, C, h, w)``, each softmax sums to 1."""
        z = self.enhancer(s)
        if self.softmax_over == "channel":
            return z.softmax(dim=1)
        b, c, h, w = z.shape
        return z.flatten(2).softmax(dim=-1).view(b, c, h, w)

    def forward(self, f: torch.Tensor, f_gau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(F_final, attention)``."""
        a = self.attention((f_gau - f).abs())
        return a * self.enhancer(f) + f, a


def relative_change(f: torch.Tensor, f_gau: torch.Tensor) -> torch.Tensor:
    """``(B,)``: ``mean|F_gau - F| / mean|F|`` per sample, how much the noise moves the features (Eq. 5's S
    relative to F).  Near 0, ``S`` carries no signal beyond numerical noise and RGA cannot act."""
    return (f_gau - f).abs().flatten(1).mean(1) / f.abs().flatten(1).mean(1).clamp_min(1e-12)


def attention_entropy(attn: torch.Tensor, softmax_over: str = "spatial") -> torch.Tensor:
    """``(B,)``: the attention's entropy relative to the uniform distribution's, averaged over the softmaxes.

    ``attn`` ``(B, C, h, w)`` from :meth:`ReconstructionGuidedAttention.attention` (each softmax over
    ``h*w`` positions, or over ``C`` channels).  1 = uniform (RGA only rescales ``phi(F)``), lower =
    concentrated; a one-hot softmax gives 0.
    """
    b, c, h, w = attn.shape
    p = attn.flatten(2) if softmax_over == "spatial" else attn.flatten(2).transpose(1, 2)  # (B, groups, n)
    n = p.shape[-1]
    if n < 2:
        raise ValueError(f"attention over {n} element(s) has no entropy to compare")
    ent = -(p * p.clamp_min(1e-30).log()).sum(-1)
    return ent.mean(1) / torch.log(torch.tensor(float(n)))


def noise_mask(batch_size: int, p: float, device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``(B,)`` bool: which samples get white noise (each with probability ``p``)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"noise probability must be in [0, 1], got {p}")
    return (torch.rand(batch_size, generator=generator) < p).to(device)


def reconstruction_loss(f: torch.Tensor, f_gau: torch.Tensor, labels: torch.Tensor,
                        noised: torch.Tensor, rec_on: str = "real") -> torch.Tensor:
    """Eq. 7 on the noised samples selected by ``rec_on`` (``"real"``, ``"fake"``, ``"all"``).

    Args:
        f, f_gau: ``(B, C, h, w)`` features of the clean and the noisy input.
        labels: ``(B,)`` with 1 = fake.  noised: ``(B,)`` bool.
    Returns:
        scalar: mean over selected samples of the per-sample mean ``|F_gau - F|``; exactly 0
        (still a tensor on the right device) when no sample is selected.
    """
    if rec_on not in REC_ON:
        raise ValueError(f"rec_on must be one of {REC_ON}, got {rec_on!r}")
    labels = labels.to(f.device).view(-1)
    if labels.shape[0] != f.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {f.shape[0]} feature maps")
    sel = noised.to(f.device).view(-1).bool()
    if rec_on == "real":
        sel = sel & (labels == 0)
    elif rec_on == "fake":
        sel = sel & (labels == 1)
    if not bool(sel.any()):
        return f.new_zeros(())
    return (f_gau[sel] - f[sel]).abs().flatten(1).mean(dim=1).mean()
