"""dfnb.probe: pooling by hand, hooks on named layers, probes that find planted information and none in noise."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dfnb import probe

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import one_thread  # noqa: E402,F401  (autouse fixture)


def test_pool_is_mean_and_std_over_space_in_either_layout():
    h = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]], [[2.0, 2.0], [2.0, 2.0]]]])  # (1, 2, 2, 2)
    # channel 0: mean 4, population std sqrt(5); channel 1: mean 2, std 0
    assert torch.allclose(probe.pool(h), torch.tensor([[4.0, 2.0, 5 ** 0.5, 0.0]]))
    assert torch.allclose(probe.pool(h.permute(0, 2, 3, 1), channels_last=True), probe.pool(h))
    assert probe.pool(torch.ones(3, 5)).shape == (3, 5)
    with pytest.raises(ValueError, match="feature maps"):
        probe.pool(torch.ones(2, 3, 4))


class _Toy(nn.Module):
    """Layer ``a`` copies the image's mean brightness (which the label sets); layer ``b`` is pure noise."""

    def __init__(self):
        super().__init__()
        self.a = nn.Identity()
        self.b = nn.Identity()

    def forward(self, x):
        g = torch.Generator().manual_seed(int(x.sum() * 1000) % 10_000)
        return self.a(x), self.b(torch.randn(x.shape, generator=g))


class _Faces(torch.utils.data.Dataset):
    """``size`` px images whose brightness the label sets (fakes ``shift`` brighter)."""

    def __init__(self, n, seed, size=4, shift=0.2):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 2
        self.x = torch.rand(n, 3, size, size, generator=g) * 0.5 + shift * self.y.view(-1, 1, 1, 1)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"image": self.x[i], "label": self.y[i]}


def test_layer_features_hook_named_layers_and_the_probe_finds_only_planted_information():
    model = _Toy()
    tr, yt = probe.layer_features(model, {"signal": "a", "noise": "b"}, _Faces(200, 0), batch_size=32)
    te, ye = probe.layer_features(model, {"signal": "a", "noise": "b"}, _Faces(200, 1), batch_size=32)
    assert tr["signal"].shape == (200, 6) and yt.tolist() == [i % 2 for i in range(200)]
    assert not model.a._forward_hooks  # hooks removed
    t = probe.probe_table({"toy": (tr, yt, te, ye)})
    auc = t.set_index("layer")["probe test AUC"]
    assert auc["signal"] > 0.95 and abs(auc["noise"] - 0.5) < 0.15
    with pytest.raises(KeyError, match="no sub-module"):
        probe.layer_features(model, {"x": "nope"}, _Faces(4, 0))


def test_probe_auc_matches_a_hand_separable_case_and_checks_shapes():
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    assert probe.probe_auc(x, y, x, y) == 1.0
    assert probe.probe_auc(x, y, -x, y) == 0.0  # the same rule on mirrored test features ranks them backwards
    with pytest.raises(ValueError, match="one F"):
        probe.probe_auc(x, y, np.ones((4, 2)), y)


def test_probe_encoders_probes_every_layer_of_a_sam_and_an_efficientnet_with_its_stride():
    import timm

    from dfnb.models.dadf.sam import build_sam

    torch.manual_seed(0)
    sam, lite = build_sam("micro", 32), timm.create_model("efficientnet_lite0", num_classes=0)
    t = probe.probe_encoders({"sam": sam, "lite": lite}, _Faces(40, 0, 32, 0.3), _Faces(40, 1, 32, 0.3),
                             batch_size=16)
    rows = {(r.encoder, r.layer): r.features for r in t.itertuples()}
    assert [layer for enc, layer in rows if enc == "sam"] == [
        "patch embedding (stride 8)", *[f"block {i} (stride 8)" for i in range(1, 5)], "neck (stride 8)"]
    assert rows["sam", "block 1 (stride 8)"] == 2 * 192 and rows["sam", "neck (stride 8)"] == 2 * 128
    strides = [2, 4, 8, 16, 16, 32, 32]  # EfficientNet-lite0's seven stages
    assert [layer for enc, layer in rows if enc == "lite"] == [
        "stem (stride 2)", *[f"stage {i} (stride {s})" for i, s in enumerate(strides)], "head (stride 32)"]
    assert rows["lite", "stage 5 (stride 32)"] == 2 * 192 and rows["lite", "head (stride 32)"] == 2 * 1280
    auc = t.set_index(["encoder", "layer"])["probe test AUC"]
    assert auc["lite", "stem (stride 2)"] > 0.9  # brightness: even a random stem's channel means carry it
    with pytest.raises(TypeError, match="neither a SAM nor a timm EfficientNet"):
        probe.encoder_layers(nn.Linear(2, 2))
