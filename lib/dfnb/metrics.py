"""Detection and localization metrics: plain functions over arrays (scikit-learn style).

Every function takes numpy arrays, torch tensors or (nested) lists and returns
Python floats (fractions in [0, 1], never percentages; chapters format them) or
numpy arrays.  Bad input (wrong shape, values outside [0, 1], NaN, a single
class where two are needed) raises ``ValueError`` naming the argument.

Conventions
-----------
* Label 1 = fake (positive class), 0 = real.
* A score ``p`` is called fake at threshold ``t`` when ``p >= t`` (so a sigmoid
  output of exactly 0.5, i.e. logit 0, counts as fake at the default 0.5).
* Masks have shape (N, H, W) or (N, 1, H, W) with values in [0, 1].  Ground
  truth is binarised as ``gt >= 0.5``; a predicted mask as ``pred >= threshold``.

Detection (frame level; :func:`video_level` first for video level)
-------------------------------------------------------------------
* ``accuracy``          ACC = mean(1[p_i >= t] == y_i)
* ``auc``               area under the ROC curve = P(p_fake > p_real) + 0.5 P(p_fake = p_real)
                        (Mann-Whitney form; identical to the trapezoidal ROC area)
* ``eer``               FPR at the ROC point whose |FNR - FPR| is smallest
* ``average_precision`` AP = sum_k (R_k - R_{k-1}) P_k over the distinct thresholds
                        (no interpolation; scikit-learn's definition)

Localization (per image, then averaged, unless the name says ``pooled``)
-------------------------------------------------------------------------
* ``pbca``       (TP + TN) / (H W)
* ``iinc``       Dang et al. (DFFD, CVPR 2020), lower is better, in [0, 1]
* ``pixel_auc``  ROC AUC of the continuous predicted mask against the binarised ground truth
* ``pixel_f1``   2 TP / (2 TP + FP + FN)
* ``iou``        TP / (TP + FP + FN)
* ``pbca_pooled``, ``iinc_pooled``: the same formula over all pixels of all images at once.
"""
from __future__ import annotations

import warnings
from typing import Hashable, Sequence

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "accuracy",
    "auc",
    "eer",
    "eer_threshold",
    "average_precision",
    "video_level",
    "detection_report",
    "pbca",
    "pbca_pooled",
    "iinc",
    "iinc_pooled",
    "pixel_auc",
    "pixel_f1",
    "iou",
    "localization_report",
    "LOCALIZATION_AVERAGING",
]


# ----------------------------------------------------------------------------- input checks
def _to_numpy(x, name: str) -> np.ndarray:
    """Any array-like (numpy, torch, list) -> numpy array, without copying when possible."""
    if type(x).__module__.startswith("torch"):  # a torch.Tensor (torch is only imported by the caller)
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{name}: cannot be read as an array ({e})") from None


def _labels(y_true, name: str = "y_true") -> np.ndarray:
    y = _to_numpy(y_true, name)
    if y.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of 0/1 labels, got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name}: is empty")
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"{name}: expected numeric 0/1 labels, got dtype {y.dtype}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"{name}: labels must be 0 (real) or 1 (fake); found {np.unique(y[bad])[:5].tolist()}")
    return y.astype(np.int64)


def _probs(y_prob, n: int | None, name: str = "y_prob") -> np.ndarray:
    p = _to_numpy(y_prob, name)
    if p.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of probabilities, got shape {p.shape}")
    if not np.issubdtype(p.dtype, np.number) and p.dtype != bool:
        raise ValueError(f"{name}: expected numeric probabilities, got dtype {p.dtype}")
    p = p.astype(np.float64)
    if n is not None and p.shape[0] != n:
        raise ValueError(f"{name}: has {p.shape[0]} entries but y_true has {n}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name}: contains NaN or inf")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"{name}: probabilities must lie in [0, 1] (got min {p.min():.4g}, max {p.max():.4g}); apply a sigmoid to logits first")
    return p


def _detection_inputs(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    y = _labels(y_true)
    return y, _probs(y_prob, y.shape[0])


def _check_threshold(threshold: float, name: str = "threshold") -> float:
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"{name}: must lie in [0, 1], got {threshold}")
    return t


def _need_both_classes(y: np.ndarray, metric: str) -> None:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        only = "1 (fake)" if n_pos else "0 (real)"
        raise ValueError(f"{metric}: y_true has a single class (all {only}); {metric} needs both real and fake samples")


# ----------------------------------------------------------------------------- detection
def accuracy(y_true, y_prob, threshold: float = 0.5) -> float:
    """Detection accuracy at a fixed threshold.

    ACC = (1/n) sum_i 1[ 1[p_i >= t] == y_i ]  with t = ``threshold`` (0.5 by default).

    Args:
        y_true: (n,) labels, 1 = fake.
        y_prob: (n,) P(fake) in [0, 1].
    """
    y, p = _detection_inputs(y_true, y_prob)
    t = _check_threshold(threshold)
    return float(np.mean((p >= t).astype(np.int64) == y))


def auc(y_true, y_prob) -> float:
    """Area under the ROC curve.

    AUC = [ sum_{i: y_i=1} r_i - n_1 (n_1 + 1) / 2 ] / (n_1 n_0)

    where r_i is the rank of p_i among all n scores (ties get their average rank),
    n_1 / n_0 the numbers of fakes / reals.  This is the probability that a random
    fake scores above a random real (ties count one half), which equals the
    trapezoidal area under the ROC curve (scikit-learn's ``roc_auc_score``).

    Raises ValueError when y_true holds a single class.
    """
    y, p = _detection_inputs(y_true, y_prob)
    _need_both_classes(y, "auc")
    r = rankdata(p)
    n1 = int(y.sum())
    n0 = y.size - n1
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def _cumulative_counts(y: np.ndarray, p: np.ndarray):
    """(TP_k, FP_k, s_k) for the distinct scores s_1 > s_2 > ..., calling fake every p >= s_k."""
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ps)), ps.size - 1]  # last index of each run of equal scores
    tps = np.cumsum(ys)[last]
    return tps, (last + 1) - tps, ps[last]


def _roc_points(y: np.ndarray, p: np.ndarray):
    """All ROC points, one per distinct score, from the highest threshold down.

    Returns (fpr, tpr, thresholds) of length k + 1 for k distinct scores; point j
    calls fake every score ``>= thresholds[j]``; point 0 (threshold +inf) calls
    nothing fake.  No collinear point is dropped.
    """
    tps, fps, thr = _cumulative_counts(y, p)
    n1 = int(y.sum())
    n0 = y.size - n1
    return np.r_[0.0, fps / n0], np.r_[0.0, tps / n1], np.r_[np.inf, thr]


def _eer_index(y, p):
    _need_both_classes(y, "eer")
    fpr, tpr, thr = _roc_points(y, p)
    i = int(np.argmin(np.abs((1.0 - tpr) - fpr)))  # first minimum = highest threshold
    return fpr, tpr, thr, i


def eer(y_true, y_prob) -> float:
    """Equal error rate, read off the empirical ROC curve (no interpolation).

    Over every ROC point j (one per distinct score, thresholds from high to low,
    fake iff p >= threshold_j), with FNR_j = 1 - TPR_j:

        j* = argmin_j |FNR_j - FPR_j|   (first, i.e. highest-threshold, minimum on ties)
        EER = (FPR_{j*} + FNR_{j*}) / 2

    All ROC points are used; scikit-learn's ``roc_curve`` drops collinear points
    by default (``drop_intermediate=True``), which can move the EER along a
    horizontal segment, so code built on it may differ slightly.  Where the ROC
    has a point with FNR = FPR this is the usual "FPR where |FNR - FPR| is
    smallest"; averaging the two rates keeps degenerate scorers honest: a
    constant scorer gets 0.5, not the 0 that FPR_{j*} alone would give.

    Raises ValueError when y_true holds a single class.
    """
    y, p = _detection_inputs(y_true, y_prob)
    fpr, tpr, _, i = _eer_index(y, p)
    return float((fpr[i] + 1.0 - tpr[i]) / 2)


def eer_threshold(y_true, y_prob) -> float:
    """The threshold of the EER point of :func:`eer` (fake iff p >= it; +inf if nothing is called fake)."""
    y, p = _detection_inputs(y_true, y_prob)
    _, _, thr, i = _eer_index(y, p)
    return float(thr[i])


def average_precision(y_true, y_prob) -> float:
    """Average precision (area under the precision-recall steps, no interpolation).

    AP = sum_k (R_k - R_{k-1}) P_k

    over the distinct scores s_1 > s_2 > ... taken as thresholds (fake iff p >= s_k),
    with P_k = TP_k / (TP_k + FP_k), R_k = TP_k / n_1 and R_0 = 0.  Same as
    scikit-learn's ``average_precision_score``.  Needs at least one fake.
    """
    y, p = _detection_inputs(y_true, y_prob)
    n1 = int(y.sum())
    if n1 == 0:
        raise ValueError("average_precision: y_true has no fake (label 1) sample; AP is undefined")
    tps, fps, _ = _cumulative_counts(y, p)
    precision = tps / (tps + fps)
    recall = tps / n1
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _key(k) -> Hashable:
    if isinstance(k, (list, np.ndarray)):
        k = tuple(np.asarray(k).tolist())
    try:
        hash(k)
    except TypeError:
        raise ValueError(f"keys: entry {k!r} is not hashable; use strings or tuples (dataset, method, video_id)") from None
    return k


def video_level(y_true, y_prob, keys: Sequence) -> tuple[np.ndarray, np.ndarray, list]:
    """Aggregate frame predictions to videos.

    A video is the set of frames sharing a key; its probability is the mean of
    its frames' probabilities and its label is the frames' (common) label:

        p_v = (1/|F_v|) sum_{i in F_v} p_i,     y_v = y_i for any i in F_v.

    Keys should identify a video globally, e.g. tuples ``(dataset, method,
    video_id)``: FF++'s fake videos of different methods share a video id
    ("000_003" exists for Deepfakes, FaceSwap, ...), so grouping by video id (or
    folder name) alone would merge different videos.  Build keys from a
    ``dfnb.data`` batch with ``list(zip(batch["dataset"], batch["method"],
    batch["video_id"]))``.

    Args:
        y_true: (n,) frame labels.
        y_prob: (n,) frame P(fake).
        keys: n hashable keys (strings, tuples; list / array rows become tuples).

    Returns:
        (y_video (m,) int64, p_video (m,) float64, keys_video list of m keys), videos in
        order of first appearance.

    Raises ValueError if the frames of one video carry different labels, or if ``keys`` is a
    single string (which would otherwise be split into one key per character).
    """
    y, p = _detection_inputs(y_true, y_prob)
    if isinstance(keys, (str, bytes)):
        raise ValueError(f"keys: one key per frame is needed, got the single string {keys!r} "
                         "(it would be split into characters)")
    if isinstance(keys, np.ndarray) and keys.ndim == 2:
        keys = [tuple(r) for r in keys.tolist()]
    keys = list(keys)
    if len(keys) != y.size:
        raise ValueError(f"keys: has {len(keys)} entries but y_true has {y.size}")
    index: dict[Hashable, int] = {}
    group = np.empty(y.size, dtype=np.int64)
    for i, k in enumerate(keys):
        group[i] = index.setdefault(_key(k), len(index))
    m = len(index)
    counts = np.bincount(group, minlength=m)
    p_video = np.bincount(group, weights=p, minlength=m) / counts
    y_sum = np.bincount(group, weights=y, minlength=m)
    mixed = np.flatnonzero((y_sum > 0) & (y_sum < counts))
    if mixed.size:
        bad = [k for k, j in index.items() if j == mixed[0]][0]
        raise ValueError(f"video_level: frames of video {bad!r} carry both labels 0 and 1 ({mixed.size} such videos); keys do not identify videos")
    return (y_sum > 0).astype(np.int64), p_video, list(index)


def detection_report(y_true, y_prob, video_keys=None, threshold: float = 0.5) -> dict:
    """Frame-level (and, with ``video_keys``, video-level) detection metrics.

    Returns a dict of floats / ints: ``frame_n``, ``frame_acc`` (at ``threshold``),
    ``frame_auc``, ``frame_eer``, ``frame_ap``; with ``video_keys`` also
    ``video_n``, ``video_acc``, ``video_auc``, ``video_eer``, ``video_ap``
    computed on :func:`video_level` aggregates (mean frame probability per video).
    AUC / EER raise ValueError if only one class is present.
    """
    y, p = _detection_inputs(y_true, y_prob)
    out: dict = {}
    levels = [("frame", y, p)]
    if video_keys is not None:
        yv, pv, _ = video_level(y, p, video_keys)
        levels.append(("video", yv, pv))
    for lvl, yy, pp in levels:
        out[f"{lvl}_n"] = int(yy.size)
        out[f"{lvl}_acc"] = accuracy(yy, pp, threshold)
        out[f"{lvl}_auc"] = auc(yy, pp)
        out[f"{lvl}_eer"] = eer(yy, pp)
        out[f"{lvl}_ap"] = average_precision(yy, pp)
    return out


# ----------------------------------------------------------------------------- localization
def _masks(x, name: str) -> np.ndarray:
    m = _to_numpy(x, name)
    if m.ndim == 4:
        if m.shape[1] != 1:
            raise ValueError(f"{name}: expected (N, H, W) or (N, 1, H, W), got shape {m.shape} (more than one channel)")
        m = m[:, 0]
    elif m.ndim != 3:
        raise ValueError(f"{name}: expected (N, H, W) or (N, 1, H, W), got shape {m.shape}")
    if m.shape[0] == 0 or m.shape[1] * m.shape[2] == 0:
        raise ValueError(f"{name}: is empty (shape {m.shape})")
    if m.dtype == bool:
        return m
    if not np.issubdtype(m.dtype, np.number):
        raise ValueError(f"{name}: expected numeric masks, got dtype {m.dtype}")
    if not np.isfinite(m).all():
        raise ValueError(f"{name}: contains NaN or inf")
    lo, hi = m.min(), m.max()
    if lo < 0 or hi > 1:
        raise ValueError(f"{name}: mask values must lie in [0, 1] (got min {lo:.4g}, max {hi:.4g}); apply a sigmoid to mask logits first")
    return m


def _mask_pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    p, g = _masks(pred, "pred"), _masks(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {p.shape} vs {g.shape} (after dropping the channel axis)")
    return p, g


def _binary(pred, gt, threshold):
    p, g = _mask_pair(pred, gt)
    t = _check_threshold(threshold)
    return (p >= t), (g >= 0.5)


def _counts(pb: np.ndarray, gb: np.ndarray, axis):
    tp = np.logical_and(pb, gb).sum(axis=axis, dtype=np.int64)
    fp = np.logical_and(pb, ~gb).sum(axis=axis, dtype=np.int64)
    fn = np.logical_and(~pb, gb).sum(axis=axis, dtype=np.int64)
    n = np.prod([pb.shape[a] for a in np.atleast_1d(axis)]) if axis is not None else pb.size
    return tp, fp, fn, n


def _reduce(values: np.ndarray, reduction: str):
    if reduction == "mean":
        return float(values.mean())
    if reduction == "none":
        return values
    raise ValueError(f"reduction: expected 'mean' or 'none', got {reduction!r}")


def pbca(pred, gt, threshold: float = 0.5, reduction: str = "mean"):
    """Pixel-wise binary classification accuracy, per image then averaged.

    PBCA_i = (TP_i + TN_i) / (H W),   PBCA = (1/N) sum_i PBCA_i

    with prediction ``pred >= threshold`` and ground truth ``gt >= 0.5``.
    As all images have H W pixels, this equals :func:`pbca_pooled`.

    Args:
        pred, gt: (N, H, W) or (N, 1, H, W) in [0, 1].
        reduction: "mean" (a float) or "none" (the (N,) per-image values).
    """
    pb, gb = _binary(pred, gt, threshold)
    tp, fp, fn, n = _counts(pb, gb, axis=(1, 2))
    tn = n - tp - fp - fn
    return _reduce((tp + tn) / n, reduction)


def pbca_pooled(pred, gt, threshold: float = 0.5) -> float:
    """PBCA over all pixels of all images at once: sum_i (TP_i + TN_i) / (N H W).

    This is DFFD's "mask accuracy" pooling; with equal image sizes it equals :func:`pbca`.
    """
    pb, gb = _binary(pred, gt, threshold)
    return float(np.mean(pb == gb))


def _iinc_formula(tp, fp, fn, n):
    """IINC from counts (arrays or scalars); see :func:`iinc`."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    n_pred, n_gt, union = tp + fp, tp + fn, tp + fp + fn
    denom = 3.0 - union / n
    with np.errstate(divide="ignore", invalid="ignore"):
        both = (2.0 - tp / n_pred - tp / n_gt) / denom
    one = 1.0 / denom
    return np.where((n_pred == 0) & (n_gt == 0), 0.0, np.where((n_pred == 0) | (n_gt == 0), one, both))


def iinc(pred, gt, threshold: float = 0.5, reduction: str = "mean"):
    """Inverse Intersection Non-Containment (Dang et al., DFFD, CVPR 2020), per image then averaged.

    With P = pred >= threshold, G = gt >= 0.5 (per image), I = |P & G|, U = |P | G|
    and N = H W pixels:

        IINC_i = 0                                          if |P| = |G| = 0
               = 1 / (3 - U/N)                              if exactly one of |P|, |G| is 0
               = (2 - I/|P| - I/|G|) / (3 - U/N)            otherwise

        IINC = (1/N_img) sum_i IINC_i   (lower is better; each term in [0, 1])

    Real images (all-zero ground truth) score 0 when nothing is predicted and
    1 / (3 - |P|/N) otherwise.  See :func:`iinc_pooled` for the pooled variant.

    Args:
        pred, gt: (N, H, W) or (N, 1, H, W) in [0, 1].
        reduction: "mean" (a float) or "none" (the (N,) per-image values).
    """
    pb, gb = _binary(pred, gt, threshold)
    tp, fp, fn, n = _counts(pb, gb, axis=(1, 2))
    return _reduce(_iinc_formula(tp, fp, fn, n), reduction)


def iinc_pooled(pred, gt, threshold: float = 0.5) -> float:
    """IINC with all pixels of all images treated as one image.

    The formula of :func:`iinc` with I, U, |P|, |G| summed over images and N = N_img H W.
    """
    pb, gb = _binary(pred, gt, threshold)
    tp, fp, fn, n = _counts(pb, gb, axis=None)
    return float(_iinc_formula(tp, fp, fn, n))


def pixel_f1(pred, gt, threshold: float = 0.5, reduction: str = "mean"):
    """Pixel F1, per image then averaged.

    F1_i = 2 TP_i / (2 TP_i + FP_i + FN_i), and F1_i = 1 when P and G are both empty.
    """
    pb, gb = _binary(pred, gt, threshold)
    tp, fp, fn, _ = _counts(pb, gb, axis=(1, 2))
    den = 2 * tp + fp + fn
    return _reduce(np.where(den == 0, 1.0, 2 * tp / np.maximum(den, 1)), reduction)


def iou(pred, gt, threshold: float = 0.5, reduction: str = "mean"):
    """Intersection over union, per image then averaged.

    IoU_i = TP_i / (TP_i + FP_i + FN_i) = |P & G| / |P | G|, and IoU_i = 1 when P and G are both empty.
    """
    pb, gb = _binary(pred, gt, threshold)
    tp, fp, fn, _ = _counts(pb, gb, axis=(1, 2))
    den = tp + fp + fn
    return _reduce(np.where(den == 0, 1.0, tp / np.maximum(den, 1)), reduction)


def pixel_auc(pred, gt, reduction: str = "mean", chunk: int = 64):
    """Pixel-level ROC AUC, per image then averaged.

    For image i, the (unthresholded) predicted mask values are scores and
    ``gt >= 0.5`` the labels; AUC_i is the rank (Mann-Whitney) form of :func:`auc`.
    AUC_i is undefined (NaN) when the image's binarised ground truth is all 0 or all 1;
    the mean is over the images where it is defined, with a warning saying how
    many were left out.  Raises ValueError if it is defined for no image.
    """
    p, g = _mask_pair(pred, gt)
    n_img = p.shape[0]
    p = p.reshape(n_img, -1)
    g = g.reshape(n_img, -1) >= 0.5
    n1 = g.sum(axis=1).astype(np.float64)
    n0 = g.shape[1] - n1
    out = np.full(n_img, np.nan)
    for s in range(0, n_img, chunk):
        r = rankdata(p[s : s + chunk].astype(np.float64), axis=1)
        rs = (r * g[s : s + chunk]).sum(axis=1)
        a, b = n1[s : s + chunk], n0[s : s + chunk]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[s : s + chunk] = (rs - a * (a + 1) / 2.0) / (a * b)
    defined = (n1 > 0) & (n0 > 0)
    out[~defined] = np.nan
    if reduction == "none":
        return out
    if reduction != "mean":
        raise ValueError(f"reduction: expected 'mean' or 'none', got {reduction!r}")
    if not defined.any():
        raise ValueError("pixel_auc: every image's binarised ground truth is a single class (all 0 or all 1); pixel AUC is undefined")
    if not defined.all():
        warnings.warn(f"pixel_auc: {int((~defined).sum())} of {n_img} images have a single-class ground truth and are left out of the mean", stacklevel=2)
    return float(out[defined].mean())


LOCALIZATION_AVERAGING = {
    "pbca_all": "per image, then mean over all images (real included); equals the pooled-pixel accuracy",
    "pbca_fake": "per image, then mean over fake images",
    "iinc_all": "per image, then mean over all images (real included)",
    "iinc_fake": "per image, then mean over fake images",
    "iinc_pooled": "all pixels of all images (real included) pooled into one",
    "pixel_auc_fake": "per image, then mean over fake images whose binarised ground truth has both classes",
    "pixel_f1_fake": "per image, then mean over fake images",
    "iou_fake": "per image, then mean over fake images",
}


def localization_report(pred_masks, gt_masks, labels, threshold: float = 0.5, has_mask=None) -> dict:
    """Localization metrics with the averaging named in each key.

    Entries (floats in [0, 1]; see ``LOCALIZATION_AVERAGING`` for the wording):

    ================  ==========================================================
    pbca_all          per image, mean over all images (= pooled pixel accuracy)
    pbca_fake         per image, mean over fakes
    iinc_all          per image, mean over all images (DFFD's protocol)
    iinc_fake         per image, mean over fakes
    iinc_pooled       all pixels of all images as one
    pixel_auc_fake    per image, mean over fakes with a two-class ground truth
    pixel_f1_fake     per image, mean over fakes
    iou_fake          per image, mean over fakes
    n_images, n_fake, n_pixel_auc   counts behind the means
    n_no_mask         fakes left out for want of a true mask (only with ``has_mask``)
    ================  ==========================================================

    Args:
        pred_masks: (N, H, W) or (N, 1, H, W) predicted manipulation probabilities in [0, 1].
        gt_masks: same shape, ground truth in [0, 1]; real images must be empty (no pixel >= 0.5).
        labels: (N,) 1 = fake.
        threshold: binarisation threshold of the prediction.
        has_mask: optional (N,) bool, False for a fake whose true mask is unknown (a real data set without
            mask videos); its all-zero stand-in is no ground truth, so the image is left out of every entry.

    Raises ValueError if there is no fake image (with a known mask) or a real image has a non-empty ground truth.
    """
    p, g = _mask_pair(pred_masks, gt_masks)
    y = _labels(labels, "labels")
    if y.size != p.shape[0]:
        raise ValueError(f"labels: has {y.size} entries but there are {p.shape[0]} masks")
    known = np.ones(y.size, bool) if has_mask is None else _to_numpy(has_mask, "has_mask").reshape(-1).astype(bool)
    if known.size != y.size:
        raise ValueError(f"has_mask: has {known.size} entries but there are {y.size} masks")
    if not known.all():
        if not (y[known] == 1).any():
            raise ValueError(f"has_mask: none of the {int((y == 1).sum())} fakes has a known mask; the fake-image "
                             "localization metrics are undefined")
        p, g, y = p[known], g[known], y[known]
    real_bad = np.flatnonzero((y == 0) & (g >= 0.5).any(axis=(1, 2)))
    if real_bad.size:
        raise ValueError(f"gt_masks: {real_bad.size} real images (label 0) have manipulated pixels, e.g. index {real_bad[0]}; masks and labels disagree")
    fake = y == 1
    if not fake.any():
        raise ValueError("labels: no fake image; the fake-image localization metrics are undefined")
    pbca_i = pbca(p, g, threshold, reduction="none")
    iinc_i = iinc(p, g, threshold, reduction="none")
    auc_i = pixel_auc(p[fake], g[fake], reduction="none")
    n_auc = int(np.isfinite(auc_i).sum())
    return {
        "n_images": int(y.size),
        "n_fake": int(fake.sum()),
        "pbca_all": float(pbca_i.mean()),
        "pbca_fake": float(pbca_i[fake].mean()),
        "iinc_all": float(iinc_i.mean()),
        "iinc_fake": float(iinc_i[fake].mean()),
        "iinc_pooled": iinc_pooled(p, g, threshold),
        "pixel_auc_fake": float(np.nanmean(auc_i)) if n_auc else float("nan"),
        "n_pixel_auc": n_auc,
        "pixel_f1_fake": pixel_f1(p[fake], g[fake], threshold),
        "iou_fake": iou(p[fake], g[fake], threshold),
        **({} if has_mask is None else {"n_no_mask": int((~known).sum())}),
    }
