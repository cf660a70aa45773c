"""PRLE (Primary Region Localization and Exploitation): the library part.

- :mod:`.fusion`   static fusion of a zoo's Grad-CAM maps (Eq. 6-8); Eq. 4 is ``dfnb.cam.primary_region_mask``
- :mod:`.exploit`  dynamic exploitation (Eq. 9-12), Algorithm 1 / Eq. 13 as ``PRLEAugment``,
                   Table IV alternative masks (random rectangles, landmark parts)
- :mod:`.static`   Grad-CAM maps of a detector zoo over a data set, cached on disk (``MapStore``)
- :mod:`.overlap`  how much of a primary-region map lies inside the true manipulated region
- :mod:`.f3net`    F3-Net (FAD + LFS on Xception trunks), registered as ``f3net``
- :mod:`.study`    the chapter's experiment loop: train a detector with / without PRLE, test it, subsets

Each module's docstring states our reading of the paper's equations and what the authors'
released code does differently.
"""
from dfnb.models.prle.exploit import (  # noqa: F401
    PRESETS, LandmarkRegions, PRLEAugment, RandomRectangles, exploit, exploit_mask, sample_alpha, weighted_bce,
)
from dfnb.models.prle.fusion import FUSIONS, average_fusion, fuse, neighbouring_fusion  # noqa: F401
from dfnb.models.prle.overlap import overlap_scores, overlap_summary  # noqa: F401
from dfnb.models.prle.static import FusedMaps, MapStore, zoo_maps  # noqa: F401
from dfnb.models.prle import f3net  # noqa: F401,E402  (registers "f3net")
from dfnb.models.prle import study  # noqa: F401,E402
