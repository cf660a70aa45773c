"""The non-learned floor of chapter 00: sharpness detector, whole-face localizer, worked metric cases."""
import numpy as np
import pytest

from dfnb import baselines, worked


def test_sharpness_score_blurrier_is_more_fake_and_ref_is_half():
    import cv2

    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    assert baselines.sharpness_score(blurred) > 0.99 > 0.01 > baselines.sharpness_score(sharp)
    flat = np.full((64, 64, 3), 128, np.uint8)  # variance 0 -> P(fake) ~ 1
    assert baselines.sharpness_score(flat) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="uint8"):
        baselines.sharpness_score(sharp.astype(np.float32))


def test_per_family_auc_compares_reals_with_each_family():
    labels = np.array([0, 0, 1, 1, 1, 1])
    probs = np.array([0.1, 0.4, 0.9, 0.8, 0.2, 0.3])
    methods = np.array(["real", "real", "a", "a", "b", "b"])
    assert baselines.per_family_auc(labels, probs, methods) == {"a": 1.0, "b": 0.5}  # b: 0.2, 0.3 beat 0.1, not 0.4


def test_floor_baselines_on_a_tiny_split():
    from dfnb.data import load_benchmark

    ds = load_benchmark("ffpp-syn", "test", size=32, n_videos=2, frames_per_video=1, progress=False)
    fb = baselines.floor_baselines(ds)
    assert fb.probs.shape == fb.labels.shape == (len(ds),) and fb.hulls.shape == fb.gts.shape == (len(ds), 32, 32)
    assert set(fb.methods) >= {"real"} and 0 < fb.hulls.mean() < 1
    assert fb.detection["frame_auc"] == pytest.approx(__import__("dfnb").metrics.auc(fb.labels, fb.probs))


def test_localization_worked_cases_match_the_hand_values():
    t = worked.localization_cases()
    assert list(t.index) == ["both empty", "prediction empty", "exact", "shifted by one"]
    assert t.loc["shifted by one", "IINC"] == pytest.approx(16 / 42) and t.loc["exact", "PBCA"] == 1.0
