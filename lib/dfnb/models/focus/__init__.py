"""FoCus (Forgery Cue Discovery) and the manipulation-map sources it is compared with.

- ``modalities``  Sobel magnitude, block DCT, SRM inputs for the second branch
- ``carp``        CARP: CAM stack, max-then-mean logits, CAR maps (Eq. 4, 6, 9)
- ``cl``          Complementary Learning block: hard Gumbel token substitution (Eq. 7)
- ``focus``       the full model, ``create_model("focus", ...)`` (Eq. 1-3, 5, 8)
- ``maps``        manipulation-map sources (SSIM, pixel difference, @0.1, Grad-CAM, Score-CAM, FoCus)
- ``protocol``    the evaluation protocol as functions (maps over a split, one evaluator per map source,
                  FoCus variants, fused features), used by chapter 20
- ``summary``     chapter 20's tables beside the paper, figures and sentence templates
"""
from .carp import CARP, car_map, carp_logits, normalize_map  # noqa: F401
from .cl import ComplementaryLearning, hard_gumbel_select  # noqa: F401
from .focus import FoCus, focus  # noqa: F401
from .modalities import dct_image, rgb_to_gray, sobel_magnitude, srm_image  # noqa: F401
