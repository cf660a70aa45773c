"""The equation -> function -> test rows of chapter ``micro_sam`` (see :mod:`dfnb.papers.equations`).

micro-SAM is the book's own: no paper of the three defines its pretraining, so every row is
reconstructed from :mod:`dfnb.models.dadf.pretrain` (after SAM's promptable-segmentation recipe,
with BCE instead of SAM's focal loss and no iterative re-prompting), and the notes say so.
"""
from dfnb.papers.equations import Equation

_T = "tests/test_dadf.py::"

ROWS: tuple[Equation, ...] = (
    Equation("point", r"p \sim \mathcal{U}\{(x, y) : m_{yx} = 1\}",
             "dfnb.models.dadf.pretrain.point_prompt", _T + "test_prompts_lie_in_their_masks",
             "one positive point drawn uniformly inside the part mask m; the book's recipe, after SAM"),
    Equation("box", r"b = (x_{\min}, y_{\min}, x_{\max}, y_{\max}) + j\,(w, h, w, h) \odot u,"
             r"\ u \sim \mathcal{U}(-1, 1)^4",
             "dfnb.models.dadf.pretrain.box_prompt", _T + "test_box_prompt_jitter_stays_within_its_bound",
             "the part's box (first and last pixel), each edge moved by up to j = 0.1 of the side "
             "w, h (+1), clipped to the image; exact (j = 0) at evaluation"),
    Equation("L_k", r"\mathcal{L}_k = \tfrac{1}{HW}\sum_{yx} \mathrm{BCE}(z_{k,yx}, m_{yx}) + 1 - "
             r"\frac{2\sum \sigma(z_k)\, m + 1}{\sum \sigma(z_k) + \sum m + 1}",
             "dfnb.models.dadf.pretrain._prompt_losses", _T + "test_prompt_losses_by_hand",
             "mask loss of decoder output k (logits z_k upsampled to the input size): pixel BCE + "
             "soft Dice; reconstructed from the module (SAM used focal + Dice at 20:1)"),
    Equation("k*", r"k^* = \arg\min_{k \in \{1, 2, 3\}} \mathcal{L}_k \ \text{(point)},\quad "
             r"k^* = 0 \ \text{(box)}",
             "dfnb.models.dadf.pretrain._prompt_losses", _T + "test_prompt_losses_by_hand",
             "a point is ambiguous (eye or whole face?): only the best of the three multimask outputs "
             "is trained; a box trains the single-mask output"),
    Equation("L", r"\mathcal{L} = \tfrac{1}{n}\sum_{i=1}^{n} \Big[\mathcal{L}_{k^*}^{(i)} + "
             r"\big(\hat s_{k^*}^{(i)} - \mathrm{IoU}(z_{k^*}^{(i)} > 0,\ m^{(i)})\big)^2\Big]",
             "dfnb.models.dadf.pretrain._prompt_losses", _T + "test_prompt_losses_by_hand",
             "per prompt: the chosen output's mask loss plus the squared error of the IoU head's "
             "score s; pretrain_micro_sam averages over the step's n prompts"),
    Equation("L_distill", r"\mathcal{L}_{\mathrm{distill}} = \mathrm{mean}\big(W\,\mathrm{pool}_{h}(e) + b"
             r" - \tfrac{t - \mu}{\sigma}\big)^2,\quad \mathcal{L} + \lambda\,\mathcal{L}_{\mathrm{distill}}",
             "dfnb.models.dadf.distill.Distiller.forward", "tests/test_dadf_distill.py::test_distillation_loss_by_hand",
             "optional (teacher=None by default), after MobileSAM: encoder output e (after the neck) pooled to the "
             "grid of a frozen ImageNet EfficientNet-lite's stage map t, mu and sigma per channel over every map "
             "seen; the 1x1 projection W, b is trained and not saved"),
    Equation("IoU", r"\mathrm{IoU} = \frac{|P \cap M|}{|P \cup M|},\quad P = [z_{\hat k} > 0],\ "
             r"\hat k = \arg\max_k \hat s_k \ \text{(point)}",
             "dfnb.models.dadf.pretrain.segment_parts",
             _T + "test_segment_parts_hand_checked_iou_and_matches_promptable_miou",
             "held-out score of one prompt; a point uses the output the IoU head ranks first, a box "
             "the single-mask output"),
    Equation("mIoU", r"\mathrm{mIoU} = \tfrac{1}{n}\sum_{i} \mathrm{IoU}_i",
             "dfnb.models.dadf.pretrain.promptable_miou",
             _T + "test_segment_parts_hand_checked_iou_and_matches_promptable_miou",
             "over one prompt per non-empty part of every held-out face"),
    Equation("box as mask", r"\mathrm{IoU}(B, M),\ B = \{(x, y) : x_0 \le x \le x_1,\ y_0 \le y \le y_1\}",
             "dfnb.models.dadf.micro_sam_study.box_as_mask_iou", _T + "test_box_as_mask_iou_hand_case",
             "the trivial answer a box-prompted model must beat: every pixel inside the exact box"),
)
