"""DADF (Detect Any Deepfakes): SAM + Multiscale Adapter + Reconstruction Guided Attention.

- ``sam``        official SAM (vit_b/l/h checkpoints, validated) and the book's micro-SAM
- ``hybrid``     micro-SAM's optional ImageNet EfficientNet-lite0 patch embedding (a hybrid ViT)
- ``adapter``    Multiscale Adapter and variants B/C/D, run after each frozen ViT block (Eq. 1-3)
- ``rga``        Reconstruction Guided Attention and L_rec (Eq. 4-7)
- ``heads``      linear task head, mask-based classification head
- ``dadf``       the full model, ``create_model("dadf", ...)`` (Eq. 8)
- ``baselines``  ``sam_full_ft``, ``sam_lora``, ``sam_prompt`` in the same harness
- ``pretrain``   micro-SAM promptable-segmentation pretraining (point / box prompts)
- ``distill``    its optional feature distillation from a frozen ImageNet teacher (after MobileSAM)
- ``study``      the chapter's protocol: train one model, PBCA / IINC / per-manipulation ACC, ablation plan
"""
from .adapter import VARIANTS, AdaptedEncoder, MultiscaleAdapter, receptive_field  # noqa: F401
from .baselines import LoRALinear, add_lora, sam_full_ft, sam_lora, sam_prompt  # noqa: F401
from .dadf import DADF, dadf, make_sam  # noqa: F401
from .heads import MaskClassificationHead, TaskHead  # noqa: F401
from .hybrid import HybridPatchEmbed  # noqa: F401
from .pretrain import pretrain_micro_sam, promptable_miou, segment_parts  # noqa: F401
from .rga import ReconstructionGuidedAttention, reconstruction_loss  # noqa: F401
from .sam import (SAM_CONFIGS, build_sam, count_parameters, load_sam, save_micro_sam,  # noqa: F401
                  trainable_parameter_share)
from . import study  # noqa: F401,E402  (after the models it builds are registered)
