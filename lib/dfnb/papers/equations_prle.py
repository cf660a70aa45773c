"""The equation -> function -> test rows of chapter ``prle`` (see :mod:`dfnb.papers.equations`)."""
from dfnb.papers.equations import Equation

_P = "tests/test_prle.py::"

ROWS: tuple[Equation, ...] = (
    Equation("1", r"\hat R_{\mathcal S}(\theta)=\frac{1}{n}\sum_{i=1}^{n}\ell(\theta,I_i,y_i)",
             "dfnb.models.backbones.BinaryDetector.losses",
             "tests/test_backbones.py::test_detector_loss_honours_sample_weight",
             "empirical risk: the batch mean of the per-image loss (all weights 1)"),
    Equation("2", r"\ell(\theta,I_i,y_i)=-\big(y_i\log\hat y_i+(1-y_i)\log(1-\hat y_i)\big)",
             "dfnb.models.backbones.BinaryDetector.losses",
             "tests/test_backbones.py::test_detector_loss_honours_sample_weight",
             "binary cross-entropy on the fake logit; F3-Net uses dfnb.models.prle.exploit.weighted_bce"),
    Equation("3", r"A_i=\mathrm{ReLU}\Big(\sum_k\Big[\frac{1}{UV}\sum_{u,v}\frac{\partial\hat y_i}"
             r"{\partial H^k_{u,v}}\Big]H^k\Big)",
             "dfnb.cam.GradCAM.__call__", "tests/test_cam.py::test_gradcam_peaks_at_the_decisive_pixel",
             "Grad-CAM of the fake score at the target layer, resized to the image and divided by its maximum"),
    Equation("4", r"M_i=[A_i>0]", "dfnb.cam.primary_region_mask", "tests/test_cam.py::test_primary_region_mask_eq4",
             "the primary region: the support of the attention map"),
    Equation("5", r"R_{\mathcal S}(\theta)=\hat R_{\mathcal S}(\theta)+\frac{1}{n}\sum_i"
             r"\ell(\theta,I_i\ast\overline{M}_i,y_i),\ \overline{M}_i=1-M_i",
             "dfnb.models.prle.exploit.exploit", _P + "test_exploit_hand_4x4",
             "the masked image is exploit(image, map, alpha=1); the book trains by Eq. 13 (Algorithm 1), "
             "not on a doubled data set"),
    Equation("6", r"\hat A(x)=s(x)\,[s(x)>\tau_1],\ s(x)=\frac{1}{T}\sum_{j=1}^{T}A_j(x)",
             "dfnb.models.prle.fusion.average_fusion", _P + "test_average_fusion_hand_4x4",
             "average fusion of the zoo's T maps; paper tau1 = 0.3"),
    Equation("7", r"g(x_i)=\mathbb 1\Big\{\exists A_j,A_k\in\mathcal A:\ \frac{1}{|\mathcal N|}"
             r"\sum_{x_a\in\mathcal N}|A_j(x_a)-A_k(x_i)|>\lambda\Big\}",
             "dfnb.models.prle.fusion.neighbouring_fusion", _P + "test_neighbouring_fusion_cross_map_gap",
             "N: the 8 neighbours inside the image; j = k allowed; paper lambda = 0.15"),
    Equation("8", r"\hat A(x_i)=g(x_i)\max_{A_j\in\mathcal A,\,x_n\in\mathcal N}A_j(x_n)",
             "dfnb.models.prle.fusion.neighbouring_fusion", _P + "test_neighbouring_fusion_single_peak_by_hand",
             "a flagged pixel takes the largest attention any detector gives a neighbour"),
    Equation("6–8", r"\hat A=\max\big(\hat A_{\text{Eq. 6}},\hat A_{\text{Eq. 8}}\big)",
             "dfnb.models.prle.fusion.fuse", _P + "test_named_fusions",
             "reconstructed from the prose (the neighbouring fusion expands the average-fused regions); "
             "fuse(maps, 'paper')"),
    Equation("9", r"\mathcal V=\mathrm{Desc}(\hat A)\big|_{\hat A(x_i)>0}",
             "dfnb.models.prle.exploit.exploit_mask", _P + "test_exploit_keeps_exactly_top_alpha_share",
             "positive pixels by decreasing attention, ties in raster order"),
    Equation("10", r"\mathcal V_\alpha=\{x_i\in\mathcal V:\ i<\lceil\alpha|\mathcal V|\rceil\}",
             "dfnb.models.prle.exploit.exploit_mask", _P + "test_exploit_keeps_exactly_top_alpha_share",
             "read as the top alpha share, exactly ceil(alpha·V) pixels (the printed 0 ≤ i ≤ alpha·V keeps one more)"),
    Equation("11", r"\hat I_i=I_i\ast\big(1-(\mathcal V_\alpha\odot M_b)\big)",
             "dfnb.models.prle.exploit.exploit", _P + "test_exploit_hand_4x4",
             "the top-alpha pixels of the fused map are set to zero; alpha = 1 removes all of M_b"),
    Equation("12", r"(\mathcal V_\alpha\odot M_b)(x_i)=M_b(x_i)\,[x_i\in\mathcal V_\alpha]",
             "dfnb.models.prle.exploit.exploit_mask", _P + "test_exploit_hand_4x4",
             "M_b = [fused map > 0] (Eq. 4), so this is the indicator of V_alpha"),
    Equation("Alg. 1", r"I^\ast=\begin{cases}\mathrm{Dynamic}(I_i,\hat A_i,\alpha),\ \alpha\sim U(0,1]"
             r"&u\le p\\ I_i&\text{otherwise}\end{cases},\ u\sim U[0,1)",
             "dfnb.models.prle.exploit.PRLEAugment.__call__", _P + "test_augment_share_and_eq13_weights",
             "one coin per sample and a fresh alpha per masked sample; paper p = 0.5"),
    Equation("Alg. 1 (α)", r"\alpha\sim U(0,1]", "dfnb.models.prle.exploit.sample_alpha",
             _P + "test_sample_alpha_policies", "the released code draws U(0.5, 1) instead"),
    Equation("13", r"R_{\mathcal S}(\theta)=\frac{1}{n}\sum_i\big(q\,\ell(\theta,I_i,y_i)+(1-q)\,\gamma\,"
             r"\ell(\theta,\hat I_i,y_i)\big)",
             "dfnb.models.prle.exploit.weighted_bce", _P + "test_augment_share_and_eq13_weights",
             "q = 1 for an untouched sample; masked samples weighted by gamma (paper 1), mean over the batch"),
    Equation("Table I", r"\mathrm{share}=\frac{100}{HW}\sum_x[A(x)>0]",
             "dfnb.models.prle.study.share_by_family", _P + "test_share_tables_by_hand",
             "reconstructed from the prose: the percentage of the image in the primary region"),
)
