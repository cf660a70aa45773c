"""The equation -> function -> test rows of chapter ``dadf`` (see :mod:`dfnb.papers.equations`).

DADF's Eqs. 1-8 (Lai, Luo, Yu, CCBR 2023, Section 3), then what the paper describes in words only
(the classification head, the segmentation loss, Table 2's per-manipulation ACC), reconstructed and
said so in the note.  PBCA and IINC are the metrics table's (chapter 00).
"""
from dfnb.papers.equations import Equation

_T = "tests/test_dadf.py::"
_M = "dfnb.models.dadf."

ROWS: tuple[Equation, ...] = (
    Equation("1", r"Z_{\text{tran}} = L_n(\dots L_2(R(L_1(R(x_p))))),\quad F = T(Z_{\text{tran}})",
             _M + "adapter.AdaptedEncoder.forward_tokens", _T + "test_adapted_encoder_composes_eq1",
             "frozen ViT blocks L_i with a Multiscale Adapter R; adapter after each block by default "
             "(the text), Eq. 1's order with position='before'; T (identity-initialised 1x1 conv) "
             "follows SAM's neck in DADF.encode"),
    Equation("2", r"S_{\text{out}}' = \mathrm{Concat}(f(u), g(u), h(u)),\ u = \mathrm{Conv}_{1\times1}(x'),"
             r"\quad S_{\text{out},1} = \mathrm{Conv}_{1\times1}'(S_{\text{out}}')",
             _M + "adapter.MultiscaleAdapter.forward", _T + "test_variant_branch_layout",
             "f: 1x1 then 3x3 (dilation 1), g: 3x3 then 3x3 (dilation 3), h: 5x5 then 3x3 (dilation 5); "
             "receptive fields 3, 9, 15 tokens"),
    Equation("3", r"S_{\text{out}} = S_{\text{out},1} + \mathrm{Conv}_{1\times1}'''(x')",
             _M + "adapter.MultiscaleAdapter.forward", _T + "test_adapter_output_is_branches_plus_skip_eq3",
             "a learnable 1x1 skip; identity at initialisation and the output conv at zero (our choice), "
             "so the adapted encoder starts as SAM"),
    Equation("4", r"x^{\text{Gau}} = G(x) = x + \varepsilon,\ \varepsilon \sim \mathcal{N}(0, 10^{-6}),"
             r"\quad F^{\text{Gau}} = \Phi(x^{\text{Gau}})",
             _M + "dadf.DADF.forward", _T + "test_noisy_features_are_eq4",
             "white noise on images in [0, 1]; in training a random half of the faces, at evaluation "
             "one fixed noise image for every face"),
    Equation("5", r"S = \left\vert F^{\text{Gau}} - F \right\vert",
             _M + "rga.ReconstructionGuidedAttention.forward", _T + "test_rga_equals_eq6_by_hand"),
    Equation("6", r"F_{\text{final}} = [\alpha(\varphi(S)) \otimes \varphi(F)] + F",
             _M + "rga.ReconstructionGuidedAttention.forward", _T + "test_rga_equals_eq6_by_hand",
             "phi: one shared 1x1 conv; alpha: softmax over the positions of each channel "
             "(ReconstructionGuidedAttention.attention; the paper names no axis)"),
    Equation("7", r"\mathcal{L}_{\text{rec}} = \frac{1}{M}\sum_{i \in M} \left\Vert F_i^{\text{Gau}} - F_i "
             r"\right\Vert_1", _M + "rga.reconstruction_loss", _T + "test_reconstruction_loss_hand_case",
             "over the noised real faces of the batch (Table 6: fake or all); the L1 norm is a mean over "
             "the C h w elements, so the weight 0.1 does not depend on the feature size"),
    Equation("8", r"\mathcal{L}_{\text{overall}} = \mathcal{L}_{\text{seg}} + \lambda_1 \mathcal{L}_{\text{rec}}"
             r" + \lambda_2 \mathcal{L}_{\text{cls}},\ \lambda_1 = \lambda_2 = 0.1",
             _M + "dadf.DADF.losses", _T + "test_forward_contract_and_frozen_encoder_gets_no_grad"),
    Equation("seg, cls", r"\mathcal{L}_{\text{seg}} = \tfrac{1}{HW}\sum_{yx}\mathrm{BCE}(z_{yx}, m_{yx}),"
             r"\quad \mathcal{L}_{\text{cls}} = \mathrm{BCE}(\ell, y)",
             _M + "dadf.DADF.losses", _T + "test_seg_and_cls_losses_by_hand",
             "reconstructed: the paper names L_cls binary cross-entropy and gives no formula for "
             "L_seg; pixel BCE of the mask logits z against the true mask m"),
    Equation("head", r"\ell = \mathrm{FC}_2(\mathrm{ReLU}(\mathrm{FC}_1(\mathrm{GAP}(z))))",
             _M + "heads.MaskClassificationHead.forward", _T + "test_heads_by_hand",
             "reconstructed from the prose (global average pooling and fully connected layers on the "
             "predicted mask); we pool the mask logits z"),
    Equation("ACC_m", r"\mathrm{ACC}_m = \mathrm{ACC}(\text{real} \cup \text{fakes of } m),\quad "
             r"\mathrm{Average} = \tfrac{1}{4}\sum_m \mathrm{ACC}_m",
             _M + "study.acc_by_method", _T + "test_acc_by_method_hand_case",
             "reconstructed: Table 2's columns DF, F2F, FS, NT, each with the real test faces, "
             "threshold 0.5"),
)
