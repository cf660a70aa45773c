"""PRLE library: fusion (Eq. 6-8), exploitation (Eq. 9-12), Algorithm 1 / Eq. 13, cache, F3-Net, overlap."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from dfnb.models.prle import (
    LandmarkRegions, PRLEAugment, RandomRectangles, average_fusion, exploit, exploit_mask, fuse, neighbouring_fusion,
    sample_alpha, weighted_bce,
)
from dfnb.models.prle.overlap import overlap_scores, overlap_summary
from dfnb.models.prle.static import FusedMaps, MapStore, batch_keys, zoo_maps


# ----------------------------------------------------------------------------- Eq. 6
def test_average_fusion_hand_4x4():
    a1 = torch.tensor([[1.0, 0.5, 0.0, 0.25], [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.75, 1.0], [0.25, 0.0, 0.0, 0.0]])
    a2 = torch.tensor([[1.0, 0.0, 0.0, 0.25], [0.25, 0.5, 0.0, 0.0], [0.0, 0.5, 0.25, 1.0], [0.5, 0.0, 0.0, 0.0]])
    # means: 1, .25, 0, .25 / .375, .5, 0, 0 / 0, .25, .5, 1 / .375, 0, 0, 0 ; keep > 0.375 (strict)
    want = torch.tensor([[1.0, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 0.5, 1.0], [0, 0, 0, 0]])
    got = average_fusion(torch.stack([a1, a2]), tau1=0.375)
    assert torch.equal(got, want)
    # batched and NumPy in -> NumPy out
    got_np = average_fusion(torch.stack([a1, a2])[None].repeat(2, 1, 1, 1).numpy(), tau1=0.375)
    assert isinstance(got_np, np.ndarray) and got_np.shape == (2, 4, 4)
    np.testing.assert_array_equal(got_np[1], want.numpy())


def test_fusion_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        average_fusion(torch.full((2, 4, 4), 1.5))
    with pytest.raises(ValueError, match="shape"):
        neighbouring_fusion(torch.zeros(4, 4))


# ----------------------------------------------------------------------------- Eq. 7-8
def test_neighbouring_fusion_single_peak_by_hand():
    """One map, one peak at (1, 1).  Out-of-image neighbours are left out of |N|, so border pixels
    next to the peak average over 3 or 5 neighbours (1/3, 1/5 > 0.15) while inner ones average
    over 8 (1/8 < 0.15).  Eq. 8 gives flagged pixels the neighbourhood maximum (1); the peak
    itself is flagged but its neighbours are all 0."""
    a = torch.zeros(1, 4, 4)
    a[0, 1, 1] = 1.0
    literal = torch.zeros(4, 4)
    for y, x in [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0)]:
        literal[y, x] = 1.0
    assert torch.equal(neighbouring_fusion(a, lam=0.15, base=None), literal)
    with_base = literal.clone()
    with_base[1, 1] = 1.0  # kept by the average base (1 > tau1)
    assert torch.equal(neighbouring_fusion(a, lam=0.15, tau1=0.3), with_base)


def test_neighbouring_fusion_cross_map_gap():
    """Two constant maps: Eq. 7 compares map j's neighbours with map k's centre."""
    far = torch.stack([torch.full((4, 4), 0.5), torch.full((4, 4), 0.25)])  # gap 0.25 > 0.15
    assert torch.equal(neighbouring_fusion(far, base=None), torch.full((4, 4), 0.5))
    assert torch.equal(neighbouring_fusion(far), torch.full((4, 4), 0.5))  # max(0.5, mean 0.375)
    near = torch.stack([torch.full((4, 4), 0.5), torch.full((4, 4), 0.375)])  # gap 0.125
    assert torch.equal(neighbouring_fusion(near, base=None), torch.zeros(4, 4))
    assert torch.equal(neighbouring_fusion(near), torch.full((4, 4), 0.4375))  # the Eq. 6 base


def _naive_neighbouring(maps, lam, tau1, r=1):
    D, H, W = maps.shape
    out = torch.zeros(H, W)
    for y in range(H):
        for x in range(W):
            nb = [(yy, xx) for yy in range(y - r, y + r + 1) for xx in range(x - r, x + r + 1)
                  if (yy, xx) != (y, x) and 0 <= yy < H and 0 <= xx < W]
            g = any(sum(abs(maps[j, yy, xx] - maps[k, y, x]) for yy, xx in nb) / len(nb) > lam
                    for j in range(D) for k in range(D))
            v = max(maps[j, yy, xx] for j in range(D) for yy, xx in nb) if g else 0.0
            s = maps[:, y, x].mean()
            out[y, x] = max(float(v), float(s) if s > tau1 else 0.0)
    return out


@pytest.mark.parametrize("d, r", [(1, 1), (2, 1), (3, 1), (5, 1), (3, 2)])
def test_neighbouring_fusion_matches_loops(d, r):
    g = torch.Generator().manual_seed(d)
    maps = torch.rand(d, 5, 6, generator=g) * (torch.rand(d, 5, 6, generator=g) > 0.5)
    want = _naive_neighbouring(maps, 0.15, 0.3, r)
    torch.testing.assert_close(neighbouring_fusion(maps, lam=0.15, tau1=0.3, radius=r), want)


def test_named_fusions():
    maps = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fuse(maps, "released_code"), average_fusion(maps, 0.3))
    assert torch.equal(fuse(maps, "paper"), neighbouring_fusion(maps, lam=0.15, tau1=0.3))
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse(maps, "max")


# ----------------------------------------------------------------------------- Eq. 9-12
def test_exploit_hand_4x4():
    m = torch.tensor([[0.9, 0.5, 0.0, 0.0], [0.1, 0.2, 0.3, 0.0], [0.0, 0.0, 0.0, 0.7], [0.0, 0.4, 0.6, 0.8]])
    # 9 positive pixels; alpha = 1/3 -> the top 3: 0.9, 0.8, 0.7
    want = torch.zeros(4, 4, dtype=torch.bool)
    want[0, 0] = want[3, 3] = want[2, 3] = True
    assert torch.equal(exploit_mask(m, 1 / 3)[0], want)
    img = torch.rand(3, 4, 4)
    out = exploit(img, m, 1 / 3)
    assert torch.equal(out[:, want], torch.zeros(3, 3)) and torch.equal(out[:, ~want], img[:, ~want])
    assert torch.equal(exploit_mask(m, 1.0)[0], m > 0)  # alpha = 1: the whole Eq. 4 mask (Table VII)
    assert not exploit_mask(m, 0.0).any()


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.5, 0.77, 1.0])
def test_exploit_keeps_exactly_top_alpha_share(alpha):
    g = torch.Generator().manual_seed(2)
    maps = torch.rand(4, 32, 32, generator=g) * (torch.rand(4, 32, 32, generator=g) > 0.6)
    removed = exploit_mask(maps, alpha)
    for b in range(4):
        v = maps[b][maps[b] > 0]
        assert removed[b].sum() == math.ceil(alpha * v.numel() - 1e-6)
        assert (maps[b][removed[b]] > 0).all()
        kept_pos = maps[b][(~removed[b]) & (maps[b] > 0)]
        if kept_pos.numel():
            assert maps[b][removed[b]].min() >= kept_pos.max()


def test_exploit_random_rgb_fill_uses_generator():
    m = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(3))
    img = torch.zeros(2, 3, 8, 8)
    a = exploit(img, m, 0.5, fill="random_rgb", generator=torch.Generator().manual_seed(4))
    b = exploit(img, m, 0.5, fill="random_rgb", generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, exploit(img, m, 0.5, fill="random_rgb", generator=torch.Generator().manual_seed(5)))
    assert (a.sum(1) > 0).sum() == exploit_mask(m, 0.5).sum()


def test_sample_alpha_policies():
    g = torch.Generator().manual_seed(0)
    a = sample_alpha(10000, "paper", g)
    assert a.min() > 0 and a.max() <= 1 and abs(a.mean() - 0.5) < 0.02
    r = sample_alpha(10000, "released_code", g)
    assert r.min() >= 0.5 and r.max() <= 1
    assert torch.equal(sample_alpha(3, 1.0), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError):
        sample_alpha(1, (0.5, 1.5))


# ----------------------------------------------------------------------------- Algorithm 1, Eq. 13
def _fused_store(n=6, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    keys = [f"synth|blend|v{i}|0" for i in range(n)]
    maps = (torch.rand(n, size, size, generator=g) * (torch.rand(n, size, size, generator=g) > 0.5)).numpy().astype(np.float16)
    return FusedMaps(maps, keys)


def _batch(n=6, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(n, 3, size, size, generator=g) * 0.9 + 0.1, "label": torch.randint(0, 2, (n,), generator=g),
            "dataset": ["synth"] * n, "method": ["blend"] * n, "video_id": [f"v{i}" for i in range(n)], "frame": torch.zeros(n, dtype=torch.long)}


def test_p0_is_the_baseline_and_draws_nothing():
    batch = _batch()
    g = torch.Generator().manual_seed(123)
    before = g.get_state().clone()
    out = PRLEAugment(_fused_store(), p=0.0)(batch, g)
    assert out is batch and torch.equal(g.get_state(), before)


def test_p0_training_identical_to_baseline():
    """A plain SGD loop whose later steps draw from the transform's generator: p = 0 gives the very
    same weights as no transform (and p = 1 does not, so the check can fail)."""

    def run(transform):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(7)
        for step in range(3):
            batch = _batch(seed=step)
            if transform is not None:
                batch = transform(batch, g)
            noise = torch.rand(1, generator=g)  # a later consumer of the same stream
            loss = weighted_bce(model(batch["image"])[:, 0] + noise, batch["label"], batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    base = run(None)
    assert torch.equal(run(PRLEAugment(_fused_store(), p=0.0)), base)
    assert not torch.equal(run(PRLEAugment(_fused_store(), p=1.0)), base)


def test_p0_engine_fit_identical_to_baseline():
    """The same with the engine's ``fit`` (toy_cnn, two steps)."""
    engine = pytest.importorskip("dfnb.engine")
    import dfnb

    data = _Data(n=8, size=8)
    store = FusedMaps(_fused_store(n=8).maps, [f"synth|blend|v{i}|0" for i in range(8)])

    def run(transform):
        torch.manual_seed(0)
        model = dfnb.create_model("toy_cnn", width=4, img_size=8)
        with warnings.catch_warnings():  # "no validation set"
            warnings.simplefilter("ignore")
            engine.fit(model, data, None, epochs=1, batch_size=4, lr=0.05, seed=3, progress=False, train_transform=transform)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    base = run(None)
    assert torch.equal(run(PRLEAugment(store, p=0.0)), base)
    assert not torch.equal(run(PRLEAugment(store, p=1.0, alpha=1.0)), base)


def test_augment_p1_alpha1_removes_whole_mask_and_weights():
    store, batch = _fused_store(), _batch()
    with pytest.warns(UserWarning, match="sample_weight"):
        aug = PRLEAugment(store, p=1.0, gamma=0.5, alpha=1.0)
    out = aug(batch, torch.Generator().manual_seed(0))
    m = store.maps_for(batch) > 0
    assert torch.equal(out["image"] == 0, m[:, None].expand(-1, 3, -1, -1))
    assert out["prle_augmented"].all() and torch.equal(out["sample_weight"], torch.full((6,), 0.5))
    assert torch.equal(batch["image"] > 0, torch.ones_like(batch["image"], dtype=torch.bool))  # input untouched


def test_augment_share_and_eq13_weights():
    store = _fused_store(n=200)
    batch = _batch(n=200)
    with pytest.warns(UserWarning):
        aug = PRLEAugment(store, p=0.5, gamma=2.0)
    out = aug(batch, torch.Generator().manual_seed(0))
    aug = out["prle_augmented"]
    assert 70 < aug.sum() < 130
    changed = (out["image"] != batch["image"]).flatten(1).any(1)
    assert torch.equal(changed, aug & (store.maps_for(batch) > 0).flatten(1).any(1))
    assert torch.equal(out["sample_weight"], torch.where(aug, 2.0, 1.0))
    logit = torch.randn(200)
    per = nn.functional.binary_cross_entropy_with_logits(logit, batch["label"].float(), reduction="none")
    torch.testing.assert_close(weighted_bce(logit, batch["label"], out), (per * out["sample_weight"]).mean())


def test_augment_errors():
    with pytest.raises(ValueError, match="alpha=1.0"):
        PRLEAugment(RandomRectangles((8, 8)), alpha="paper")
    with pytest.raises(KeyError, match="not|no fused"):
        bad = _batch()
        bad["video_id"] = ["zz"] * 6
        PRLEAugment(_fused_store(), p=1.0)(bad, torch.Generator())
    with pytest.raises(KeyError, match="key"):
        batch_keys({"image": torch.zeros(1, 3, 4, 4)})


def test_alternative_masks():
    g = torch.Generator().manual_seed(0)
    rr = RandomRectangles((32, 32), area=(0.1, 0.2)).maps_for({"image": torch.zeros(50, 3, 32, 32)}, g)
    share = rr.mean(dim=(1, 2))
    assert share.min() > 0.06 and share.max() < 0.26
    lm = torch.zeros(2, 68, 2)
    lm[:, :, 0] = torch.linspace(4, 28, 68)
    lm[:, :, 1] = 16 + 6 * torch.sin(torch.linspace(0, 6.28, 68))
    src = LandmarkRegions((32, 32), parts=("mouth",))
    mk = src.maps_for({"landmarks": lm}, g)
    assert mk.shape == (2, 32, 32) and (mk > 0).any() and set(mk.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(KeyError, match="landmarks"):
        src.maps_for({"image": torch.zeros(2, 3, 32, 32)}, g)
    out = PRLEAugment(src, p=1.0, alpha=1.0)({**_batch(2, 32), "landmarks": lm}, torch.Generator().manual_seed(0))
    assert torch.equal((out["image"] == 0).all(1), mk > 0)


# ----------------------------------------------------------------------------- static stage and cache
class _Tiny(nn.Module):
    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)  # has a 0-dim buffer (num_batches_tracked) to hash
        self.act = nn.ReLU()
        self.fc = nn.Linear(4, 1)
        self.cam_layer = "act"
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return {"logit": self.fc(self.act(self.bn(self.conv(x))).mean((2, 3)))[:, 0]}


class _Data:
    def __init__(self, n=5, size=16, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, size, size, generator=g)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "mask": torch.zeros(1, *self.images.shape[-2:]), "label": torch.tensor(i % 2),
                "dataset": "synth", "method": "blend", "video_id": f"v{i}", "frame": 0}


def test_maps_computed_once_and_cached(tmp_path):
    zoo = {"a": _Tiny(0), "b": _Tiny(1)}
    data = _Data()
    store = zoo_maps(zoo, data, batch_size=2, cache_dir=tmp_path, progress=False)
    assert store.maps.shape == (5, 2, 16, 16) and store.detectors == ["a", "b"]
    calls = zoo["a"].calls
    assert calls == 3  # ceil(5 / 2) batches
    assert all(p.requires_grad for m in zoo.values() for p in m.parameters())  # weights unfrozen again
    again = zoo_maps(zoo, data, batch_size=2, cache_dir=tmp_path, progress=False)
    assert zoo["a"].calls == calls and np.array_equal(again.maps, store.maps) and again.path == store.path
    from dfnb.cam import GradCAM
    want = GradCAM(zoo["b"], "act")(data.images)
    got = again.raw(again.keys)[:, 1]
    assert (got - want).abs().max() <= 1 / 255 + 1e-6 and torch.equal(got > 0, want > 0)
    with torch.no_grad():  # a changed model -> a new entry
        zoo["a"].fc.bias += 1.0
    changed = zoo_maps(zoo, data, batch_size=2, cache_dir=tmp_path, progress=False)
    assert zoo["a"].calls > calls and changed.path != store.path
    other = zoo_maps(zoo, _Data(seed=1), batch_size=2, cache_dir=tmp_path, progress=False)  # changed data
    assert other.path not in (store.path, changed.path)
    fused = again.fuse("paper", progress=False)
    assert isinstance(fused, FusedMaps) and len(list(store.path.glob("fused-*.npy"))) == 1
    torch.testing.assert_close(fused.lookup(store.keys[:2]), fuse(again.raw(store.keys[:2]), "paper"), atol=1e-3, rtol=0)
    single = again.select(["b"]).fuse("paper", progress=False)
    assert len(list(store.path.glob("fused-*.npy"))) == 2 and single.maps.shape == (5, 16, 16)
    assert isinstance(MapStore.load(store.path), MapStore)


# ----------------------------------------------------------------------------- F3-Net
def test_f3net_bands_partition_and_forward():
    import dfnb
    from dfnb.models.prle.f3net import FAD, LFS

    fad = FAD(16)
    with torch.no_grad():
        fad.learnable.zero_()  # 2 sigmoid(0) - 1 = 0: the fixed bands only
    x = torch.randn(2, 3, 16, 16)
    y = fad(x).view(2, 4, 3, 16, 16)
    torch.testing.assert_close(y[:, :3].sum(1), x, atol=1e-5, rtol=0)  # low + mid + high = image
    torch.testing.assert_close(y[:, 3], x, atol=1e-5, rtol=0)  # the all-pass band
    assert LFS()(torch.rand(2, 3, 16, 16)).shape == (2, 6, 8, 8)
    default = dfnb.create_model("f3net", img_size=64)  # the Xception trunks, 12 and 6 input channels
    assert default.fad_trunk.conv1.in_channels == 12 and default.lfs_trunk.conv1.in_channels == 6
    with torch.no_grad():
        assert default.eval()(torch.rand(1, 3, 64, 64))["logit"].shape == (1,)
    net = dfnb.create_model("f3net", img_size=64, trunk="resnet10t")  # a light trunk for the rest
    out = net(torch.rand(2, 3, 64, 64))
    assert out["logit"].shape == (2,)
    loss = net.losses(out, {"label": torch.tensor([0, 1])})["loss"]
    loss.backward()
    assert net.fad.learnable.grad is not None and net.lfs.learnable.grad is not None
    with pytest.raises(ValueError, match="64"):
        net(torch.rand(1, 3, 32, 32))
    from dfnb.cam import GradCAM

    cam = GradCAM(net, net.cam_layer)(torch.rand(2, 3, 64, 64))
    assert cam.shape == (2, 64, 64) and cam.min() >= 0 and cam.max() <= 1


# ----------------------------------------------------------------------------- overlap
def test_overlap_hand():
    a = np.zeros((2, 4, 4), np.float32)
    a[0, 0, :] = [1.0, 0.5, 0.5, 0.0]  # primary region: 3 pixels, mass 2
    gt = np.zeros((2, 4, 4), np.float32)
    gt[0, 0, :2] = 1
    gt[0, 1, :2] = 1  # true region: 4 pixels
    s = overlap_scores(a, gt)
    np.testing.assert_allclose([s["mass_inside"][0], s["precision"][0], s["recall"][0], s["iou"][0]], [0.75, 2 / 3, 0.5, 0.4])
    assert np.isnan(s["precision"][1])  # a real image is not scored
    summ = overlap_summary(a, gt)
    assert summ["n_fake"] == 1 and summ["n_real"] == 1 and summ["gt_share"] == 0.25
    assert summ["precision_lift"] == pytest.approx((2 / 3) / 0.25)


# ----------------------------------------------------------------------------- the chapter's experiment loop
class _Families(_Data):
    """_Data with methods real / fam_a / fam_b in turn, labels to match (real = 0)."""

    METHODS = ("real", "fam_a", "fam_b")

    @property
    def fingerprint(self):  # for the experiment cache: the constructor's arguments define the data
        import hashlib

        return "_Families-" + hashlib.sha256(self.images.numpy().tobytes()).hexdigest()[:16]

    def __getitem__(self, i):
        s = super().__getitem__(i)
        m = self.METHODS[i % 3]
        return {**s, "method": m, "label": torch.tensor(int(m != "real"))}


def test_by_method_subsets_in_order_and_rejects_unknown():
    from dfnb.models.prle.study import by_method

    data = _Families(n=9, size=8)
    sub = by_method(data, ["real", "fam_b"])
    assert list(sub.indices) == [0, 2, 3, 5, 6, 8]
    assert [sub[k]["method"] for k in range(len(sub))] == ["real", "fam_b"] * 3
    nested = by_method(sub, ["fam_b"])  # a Subset of a Subset reads the methods through it
    assert [nested[k]["method"] for k in range(len(nested))] == ["fam_b"] * 3
    with pytest.raises(ValueError, match="no samples of \\['deepfakes'\\]"):
        by_method(data, ["real", "deepfakes"])
    with pytest.raises(ValueError, match="empty"):
        by_method(data, [])


def test_nested_zoos_and_model_kwargs():
    from dfnb.models.prle.study import model_kwargs, nested_zoos

    assert nested_zoos(["x", "e", "v"]) == [["x"], ["x", "e"], ["x", "e", "v"]]
    with pytest.raises(ValueError, match="duplicate"):
        nested_zoos(["x", "x"])
    with pytest.raises(ValueError):
        nested_zoos([])
    assert model_kwargs("f3net", 96) == {"img_size": 96}  # DCT built for one size
    assert model_kwargs("resnet50", 96) == {}  # img_size=None: any size
    with pytest.raises(KeyError, match="unknown model"):
        model_kwargs("no_such_net", 96)


def test_train_seeded_keys_and_detections(tmp_path):
    """The chapter's trainings: train_seeded with model_kwargs is deterministic, cached, and a PRLE
    transform changes the model; detections reads the (cached) evaluations in the mapping's order."""
    from dfnb.experiments import train_seeded
    from dfnb.models.prle.study import detections, model_kwargs

    data, val = _Families(n=12, size=8), _Families(n=6, size=8, seed=1)
    keys = [f"synth|{data.METHODS[i % 3]}|v{i}|0" for i in range(12)]
    fused = FusedMaps(_fused_store(n=12).maps, keys)
    kw = dict(epochs=1, batch_size=4, lr=0.05, seed=3, model_kwargs=model_kwargs("toy_cnn", 8), cache=tmp_path)

    def weights(m):
        return torch.cat([p.detach().flatten() for p in m.parameters()])

    e1 = train_seeded("toy_cnn", data, val, **kw)
    e2 = train_seeded("toy_cnn", data, val, **kw)
    e3 = train_seeded("toy_cnn", data, val, transform=PRLEAugment(fused, p=1.0, alpha=1.0), **kw)
    assert not e1.model.training and e1.model.input_size == 8 and e1.history.best_epoch == 1
    assert not e1.cached and e2.cached and e2.key == e1.key and e3.key != e1.key
    assert len(list((tmp_path / "toy_cnn").iterdir())) == 2  # baseline (loaded the 2nd time) and + PRLE
    assert torch.equal(weights(e1.model), weights(e2.model)) and not torch.equal(weights(e1.model), weights(e3.model))
    reps = detections(e1, {"a": val, "b": data})
    assert list(reps) == ["a", "b"] and 0 <= reps["a"]["frame_auc"] <= 1
    assert reps == detections(e2, {"a": val, "b": data})
    with pytest.raises(ValueError, match="empty"):
        detections(e1, {})


def test_table2_claims_pair_seeds_and_use_the_papers_gain():
    import pandas as pd

    from dfnb.models.prle.study import paper_gain, table2_claims

    rows = []
    for s, (b, g) in enumerate([(60.0, 2.0), (70.0, 3.0), (65.0, 4.0)]):  # + PRLE gains 2, 3, 4 points
        for t in ("ffpp-syn", "dfdc-syn", "celebdf-syn"):
            rows += [{"variant": "baseline", "train seed": s, "test set": t, "AUC": b},
                     {"variant": "+ PRLE", "train seed": s, "test set": t, "AUC": b + g}]
    claims = table2_claims(pd.DataFrame(rows), "efficientnet_lite0", "ffpp-syn")
    assert [r["our_effect"] for r in claims] == pytest.approx([3.0, 3.0, 3.0])
    assert all(r["verdict"] == "reproduced" and r["n_seeds"] == 3 for r in claims)
    assert claims[0]["paper_effect"] == pytest.approx(paper_gain("EfficientNet", "Average")) and len(claims) == 3
    one = table2_claims(pd.DataFrame([r for r in rows if r["train seed"] == 0]), "efficientnet_lite0", "ffpp-syn")
    assert all(r["verdict"] == "inconclusive" and r["n_seeds"] == 1 for r in one)


def test_ablation_claims_pair_prle_with_each_ablation_over_seeds():
    import pandas as pd

    from dfnb.models.prle.study import ablation_claims

    # per seed: baseline 60, + PRLE 64; alpha = 1 at 62 (PRLE +2), average fusion at 65 (PRLE -1),
    # random rectangles only on seed 0 (one seed: inconclusive)
    rows = []
    for s in range(3):
        for v, auc in [("baseline", 60.0), ("+ PRLE", 64.0 + s), ("+ PRLE, alpha = 1 (no exploitation)", 62.0 + s),
                       ("+ PRLE, average fusion", 65.0 + s), ("+ random rectangles (Table IV)", 50.0)][: 5 if s == 0 else 4]:
            for t, shift in (("ffpp-syn", 30.0), ("dfdc-syn", 0.0), ("celebdf-syn", 2.0)):
                rows.append({"variant": v, "train seed": s, "test set": t, "AUC": auc + shift})
    claims = {r["paper_table"] + " " + r["claim"].split(" (paper:")[0]: r for r in ablation_claims(pd.DataFrame(rows),
                                                                                          "efficientnet_lite0", "ffpp-syn")}
    vii = claims["VII dynamic exploitation (alpha ~ U(0, 1]) beats removing the whole primary region (alpha = 1)"]
    # the paper (EfficientNet, Table VII): mean of (69.64, 74.72, 70.67) - mean of (68.86, 70.42, 65.45) = 3.4333
    assert vii["our_effect"] == pytest.approx(2.0) and vii["verdict"] == "reproduced" and vii["n_seeds"] == 3
    assert vii["paper_effect"] == pytest.approx((69.64 + 74.72 + 70.67 - 68.86 - 70.42 - 65.45) / 3)
    v = claims["V neighbouring fusion beats average fusion"]
    assert v["our_effect"] == pytest.approx(-1.0) and v["verdict"] == "not reproduced" and v["paper_effect"] > 0
    iv = claims["IV primary-region masks beat random rectangles"]
    assert iv["n_seeds"] == 1 and iv["verdict"] == "inconclusive" and iv["our_effect"] == pytest.approx(14.0)
    assert [r["claim"] for r in claims.values() if r is iv][0].endswith("(paper: EfficientNet; here efficientnet_lite0)")
    assert iv["paper_effect"] == pytest.approx((69.64 + 74.72 + 70.67 - 67.85 - 59.08 - 65.98) / 3)
    # a detector without a Table IV architecture is judged beside the first one the table has
    vgg = {r["paper_table"]: r for r in ablation_claims(pd.DataFrame(rows), "vgg16", "ffpp-syn")}
    assert vgg["IV"]["claim"].endswith("(paper: VGG; here vgg16)") and vgg["VII"]["claim"].endswith(
        "(paper: EfficientNet; here vgg16)")
    assert "IV primary-region masks beat landmark-part masks" not in claims  # that variant was not trained


def test_fig8_claim_judges_the_direction_over_seeds():
    import pandas as pd

    from dfnb.models.prle.study import fig8_claim

    sweep = pd.DataFrame([{"variant": "baseline", "train seed": s, "alpha": a, "AUC": 90.0 - (10 + s) * a}
                          for s in range(3) for a in (0.0, 0.5, 1.0)])
    row = fig8_claim(sweep, "ffpp-syn")
    assert row["our_effect"] == pytest.approx(-11.0) and row["verdict"] == "reproduced" and math.isnan(row["paper_effect"])
    up = fig8_claim(sweep.assign(AUC=lambda d: 200 - d["AUC"]), "ffpp-syn")
    assert up["verdict"] == "not reproduced"


def test_single_seed_claims_are_inconclusive_beside_the_papers_effect():
    import pandas as pd

    from dfnb.models.prle.study import single_seed_claims

    g3 = pd.DataFrame({"gain, this run": [2.0, -1.0], "paper's train subset": ["DF", "—"],
                       "gain, paper (EfficientNet)": [1.5, float("nan")]}, index=["deepfakes", "other"])
    t6 = pd.DataFrame({"cross-domain mean": [60.0, 61.0, 63.0, 64.0]},
                      index=["none (baseline)", "a only", "b only", "all 2 fused (a+b: PRLE)"])
    f6 = pd.DataFrame({"cross-domain mean AUC, this run": [61.0, 64.0, float("nan")],
                       "average AUC, paper (EfficientNet)": [70.0, 71.0, 72.5]}, index=[1, 2, 3])
    rows = single_seed_claims(g3, t6, f6, ["a", "b"])
    assert [r["paper_table"] for r in rows] == ["III", "VI", "Fig6"]  # the family without an analogue: no row
    assert [r["our_effect"] for r in rows] == pytest.approx([2.0, 1.0, 3.0])
    assert rows[2]["paper_effect"] == pytest.approx(2.5) and all(r["verdict"] == "inconclusive" for r in rows)
    assert rows[1]["paper_effect"] == pytest.approx((69.64 + 74.72 + 70.67) / 3 - (68.22 + 70.83 + 67.07) / 3)


def test_table5_reports_each_fusions_area_beside_its_auc():
    import pandas as pd

    from dfnb.models.prle.study import table5_table

    keys = [f"synth|blend|v{i}|0" for i in range(2)]
    big = np.zeros((2, 4, 4), np.float16)
    big[:, :2] = 0.5  # half of every image
    small = np.zeros((2, 4, 4), np.float16)
    small[0, 0, 0] = 1.0  # 1 pixel of 32
    ci = pd.DataFrame({"mean": [70.0, 68.0], "low": [69.0, 66.0], "high": [71.0, 70.0]},
                      index=["+ PRLE", "+ PRLE, average fusion"])
    t = table5_table({"neighbouring (paper)": FusedMaps(big, keys), "average": FusedMaps(small, keys)}, ci)
    assert t["fused area % (training images)"].tolist() == pytest.approx([50.0, 100 / 32])
    assert t.loc["average", "cross-domain mean AUC"] == 68.0 and t.loc["average", "low"] == 66.0
    only = table5_table({"average": FusedMaps(small, keys)}, ci.iloc[:1])
    assert math.isnan(only.loc["average", "cross-domain mean AUC"])


def test_deviations_state_this_runs_settings():
    from dfnb.models.prle.study import deviations

    d = deviations(size=96, n_train=2000, zoo=["a", "b"], detector="a", epochs=6, n_seeds=3, cam_stride=16,
                   table2_detectors=["a", "c"], n_test=1000)
    assert list(d.columns) == ["paper", "this run", "reason"] and d["reason"].str.len().min() > 20
    assert d.loc["training data", "this run"] == "2000 ffpp-syn HQ faces at 96 px"
    assert "6x6" in d.loc["neighbouring fusion (Eq. 7-8)", "this run"] and d.loc["zoo", "this run"] == "a, b"
    assert d.loc["detector", "this run"].startswith("a; c for")


# ----------------------------------------------------------------------------- the chapter's tables and sentences
def _run_recorder():
    calls = []

    class Run:
        def metric(self, name, value, **labels):
            calls.append((name, value, labels))

    return Run(), calls


def _no_bad_words(text):
    low = text.lower()
    assert "nan" not in low.replace("nance", "").replace("finan", "") and "(s)" not in low


def test_cam_layer_zoo_order_variants_and_seeds():
    from types import SimpleNamespace

    from dfnb.models.prle import study

    m = SimpleNamespace(cam_layer="backbone.last")
    assert study.cam_layer("resnet50", m, 16) == "backbone.layer3"
    assert study.cam_layer("resnet50", m, 32) == "backbone.last" and study.cam_layer("toy_cnn", m, 16) == "backbone.last"
    with pytest.raises(ValueError, match="16 or 32"):
        study.cam_layer("toy_cnn", m, 8)
    assert study.zoo_order(["a", "b"], ["c"]) == ["a", "b", "c"]
    for bad in (["a"], ["c", "c"]):
        with pytest.raises(ValueError, match="fig6_extra_zoo"):
            study.zoo_order(["a", "b"], bad)
    store = _fused_store()
    v = study.table2_variants(store, store, 8, p=0.5, gamma=1.0, ablations=False)
    assert list(v) == ["baseline", "+ PRLE"] and v["baseline"] is None and v["+ PRLE"].alpha == "paper"
    v = study.table2_variants(store, store, 8, p=0.3, gamma=1.0, ablations=True)
    assert len(v) == 6 and v["+ PRLE, alpha = 1 (no exploitation)"].alpha == 1.0
    no4 = study.table2_variants(store, store, 8, p=0.3, gamma=1.0, ablations=True, table4=False)
    assert list(no4) == list(v)[:4]
    assert all(t.p == 0.3 for t in list(v.values())[1:])
    assert isinstance(v["+ random rectangles (Table IV)"].maps, RandomRectangles)
    assert study.variant_seeds("+ PRLE", 5, 3) == [5, 6, 7] and study.variant_seeds("+ PRLE, average fusion", 5, 3) == [5, 6, 7]
    assert study.variant_seeds("+ random rectangles (Table IV)", 5, 3) == [5]
    with pytest.raises(ValueError):
        study.variant_seeds("baseline", 0, 0)


def test_subset_augment_table6_masks_and_labels():
    from dfnb.models.prle import study

    g = torch.Generator().manual_seed(0)
    maps = (torch.rand(4, 2, 8, 8, generator=g) * 255).to(torch.uint8).numpy()
    store = MapStore(maps, [f"synth|blend|v{i}|0" for i in range(4)], ["a", "b"])
    assert study.subset_augment(store, (), lam=0.15, tau1=0.3, p=0.5, gamma=1.0) is None
    aug = study.subset_augment(store, ("b",), lam=0.15, tau1=0.3, p=0.5, gamma=1.0)
    want = neighbouring_fusion(torch.from_numpy(maps[:, 1:].astype(np.float32) / 255), lam=0.15, tau1=0.3)
    torch.testing.assert_close(aug.maps.lookup(store.keys), want, atol=1e-3, rtol=0)
    assert aug.p == 0.5 and aug.alpha == "paper"
    assert study.table6_masks(["a", "b"], ["a", "b", "c"]) == [(), ("a",), ("b",), ("a", "b"), ("a", "b", "c")]
    assert study.table6_masks(["a"], ["a"]) == [(), ("a",)]
    assert study.mask_label(()) == "baseline" and study.mask_label(("a", "b")) == "+ PRLE, maps from a+b"


def test_record_relabels_detector_and_seed():
    from dfnb.models.prle.study import record

    run, calls = _run_recorder()
    record(run, {"frame_auc": 0.7, "frame_acc": 0.6, "eer": 0.3}, dataset="x", detector="d", train_seed=2)
    assert [c[0] for c in calls] == ["frame_auc", "frame_acc"]
    assert calls[0] == ("frame_auc", 0.7, {"dataset": "x", "model": "d", "seed": 2})


def test_zoo_table_rows():
    from types import SimpleNamespace

    from dfnb.models.prle.study import zoo_table

    arch = lambda pre: SimpleNamespace(dfnb_arch={"name": "m", "kwargs": {"pretrained": pre}})  # noqa: E731
    exps = {"a": SimpleNamespace(train_seconds=2, model=arch(True), cached=False, path=None),
            "x": SimpleNamespace(train_seconds=3.5, model=arch(False), cached=False, path=None)}
    val = {"a": {"frame_auc": 0.9, "frame_acc": 0.8}, "x": {"frame_auc": 0.6, "frame_acc": 0.5}}
    t = zoo_table(exps, val, {"a": "l1", "x": "l2"}, ["a"])
    assert list(t.index) == ["a", "x"] and list(t["used for"]) == ["zoo", "Fig. 6 only"]
    assert t.loc["x", "val AUC"] == 0.6 and t.loc["x", "train s (when trained)"] == 3.5 and t.loc["a", "Grad-CAM layer"] == "l1"
    assert list(t["ImageNet init"]) == [True, False]


def test_imagenet_init_of_a_cache_loaded_model_reads_its_key(tmp_path):
    """A cached experiment is rebuilt with pretrained=False; its key says how it was trained."""
    import json
    from types import SimpleNamespace

    from dfnb.models.backbones import lite_weights_available
    from dfnb.models.prle.study import imagenet_init

    rebuilt = SimpleNamespace(dfnb_arch={"name": "efficientnet_lite1", "kwargs": {"pretrained": False}})
    for name, pre, want in [("efficientnet_lite1", None, lite_weights_available(1)), ("resnet50", False, False),
                            ("efficientnet_lite0", False, False), ("resnet50", True, True)]:
        (tmp_path / "key.json").write_text(json.dumps({"model": {"name": name, "kwargs": {"pretrained": pre}}}))
        assert imagenet_init(SimpleNamespace(cached=True, path=tmp_path, model=rebuilt)) is want, (name, pre)


def _reports(values):
    """{(variant, seed): {test set: report}} from {(variant, seed, test): auc fraction}."""
    out = {}
    for (v, s, t), a in values.items():
        out.setdefault((v, s), {})[t] = {"frame_auc": a, "frame_acc": a - 0.1}
    return out


_SETS = ["ffpp-syn", "dfdc-syn", "celebdf-syn"]


def _table2_reports():
    vals = {}
    for s, (b, g) in enumerate([(0.6, 0.02), (0.7, 0.04)]):
        for k, t in enumerate(_SETS):
            vals["baseline", s, t] = b + 0.1 * (k == 0)
            vals["+ PRLE", s, t] = b + 0.1 * (k == 0) + g
    vals["+ PRLE, average fusion", 0, "ffpp-syn"] = 0.5
    vals["+ PRLE, average fusion", 0, "dfdc-syn"] = 0.5
    vals["+ PRLE, average fusion", 0, "celebdf-syn"] = 0.6
    return _reports(vals)


def test_per_seed_means_and_table2_wide_by_hand():
    from dfnb.models.prle import study

    per_seed = study.per_seed_table(_table2_reports())
    assert len(per_seed) == 2 * 2 * 3 + 3 and per_seed.iloc[0].to_dict() == {
        "variant": "baseline", "train seed": 0, "test set": "ffpp-syn", "AUC": pytest.approx(70.0),
        "ACC": pytest.approx(60.0)}
    res = study.variant_means(per_seed)
    wide = study.table2_wide(res, ["baseline", "+ PRLE", "+ PRLE, average fusion"], _SETS, "ffpp-syn")
    assert wide.loc["baseline", ("ffpp-syn", "AUC")] == pytest.approx(75.0)
    assert wide.loc["+ PRLE", ("cross-domain mean", "AUC")] == pytest.approx(68.0)  # (62 + 74) / 2
    assert wide.loc["+ PRLE, average fusion", ("cross-domain mean", "ACC")] == pytest.approx(45.0)
    assert list(wide.columns[-2:]) == [("cross-domain mean", "AUC"), ("cross-domain mean", "ACC")]
    cd = study.cross_domain_per_seed(per_seed, "ffpp-syn")
    assert cd[(cd.variant == "+ PRLE") & (cd["train seed"] == 1)]["AUC"].item() == pytest.approx(74.0)
    assert cd[cd.variant == "+ PRLE, average fusion"]["AUC"].item() == pytest.approx(55.0)


def test_roc_curves_pool_the_cross_domain_sets():
    from types import SimpleNamespace

    from dfnb.models.prle.study import roc_curves

    evals = {"in": {"labels": np.array([0, 1]), "probs": np.array([0.2, 0.9])},
             "x1": {"labels": np.array([1]), "probs": np.array([0.4])},
             "x2": {"labels": np.array([0, 0]), "probs": np.array([0.1, 0.3])}}
    exp = SimpleNamespace(evaluate=lambda ds, device="cpu": evals[ds])
    curves = roc_curves({"baseline": exp}, {"in": "in", "x1": "x1", "x2": "x2"}, "in")
    assert list(curves) == ["baseline, in", "baseline, cross-domain pooled"]
    y, p = curves["baseline, cross-domain pooled"]
    assert y.tolist() == [1, 0, 0] and p.tolist() == [0.4, 0.1, 0.3]


def _sample_set(n=4, size=4):
    """Dict samples with masks: fakes (odd) have the left column as their true region."""
    out = []
    for i in range(n):
        mask = torch.zeros(1, size, size)
        if i % 2:
            mask[0, :, 0] = 1
        out.append({"image": torch.full((3, size, size), 0.5), "mask": mask, "label": torch.tensor(i % 2),
                    "dataset": "synth", "method": ("real", "fam_a", "real", "fam_b")[i % 4], "video_id": f"v{i}",
                    "frame": 0})
    return out


def test_share_tables_by_hand():
    from dfnb.models.prle import study

    m = np.zeros((3, 2, 2), np.float32)
    m[0, 0, 0] = 0.2  # 1 of 4 pixels
    m[1, :, 0] = [0.6, 0.05]  # 2 of 4
    m[2] = 0.4  # 4 of 4
    share = study.share_by_family({"d": m}, np.array(["real", "fam", "fam"]))
    assert share.loc["d", "real"] == pytest.approx(25.0) and share.loc["d", "fam"] == pytest.approx(75.0)
    thr = study.share_by_threshold({"d": m}, (0, 0.3))
    assert thr.loc["d", "A > 0"] == pytest.approx(100 * 7 / 12) and thr.loc["d", "A > 0.3"] == pytest.approx(100 * 5 / 12)
    store = MapStore((np.stack([m, m], 1) * 255).astype(np.uint8), ["k0", "k1", "k2"], ["a", "b"])
    arrays = study.map_arrays(store, {"avg": FusedMaps(m.astype(np.float16), store.keys)})
    assert list(arrays) == ["a", "b", "fused: avg"] and arrays["a"].dtype == np.float32
    np.testing.assert_allclose(arrays["b"], m, atol=1 / 255)


def test_training_masks_overlap_and_table1_beside_paper():
    from dfnb import metrics
    from dfnb.models.prle import study
    from dfnb.models.prle.static import sample_key

    data = _sample_set()
    keys = [sample_key(s) for s in data]
    store = MapStore(np.zeros((4, 1, 4, 4), np.uint8), keys, ["efficientnet_lite0"])
    gt, methods, labels = study.training_masks(store, data)
    assert gt.shape == (4, 4, 4) and labels.tolist() == [0, 1, 0, 1] and methods[1] == "fam_a"
    with pytest.raises(ValueError, match="order"):
        study.training_masks(MapStore(store.maps, keys[::-1], store.detectors), data)
    pm = np.zeros((4, 4, 4), np.float32)
    pm[:, :2, 0] = 1.0  # half of the true column
    t = study.overlap_table({"m": pm}, gt, labels)
    assert list(t.columns)[:3] == ["map_share", "gt_share", "mass_inside"] and t.loc["m", "precision"] == 1.0
    assert t.loc["m", "PBCA"] == pytest.approx(metrics.pbca((pm > 0)[[1, 3]].astype(np.float32), gt[[1, 3]]))
    share = pd_frame({"deepfakes": [18.0], "fam_x": [5.0]}, ["efficientnet_lite0"])
    beside = study.table1_beside_paper(share, "ffpp-syn")
    assert list(beside.index) == [("efficientnet_lite0", "deepfakes")]
    row = beside.iloc[0]
    assert row["paper, FF++ (%)"] == 18.40 and row["this run, ffpp-syn train (%)"] == 18.0
    assert study.table1_beside_paper(pd_frame({"deepfakes": [1.0]}, ["toy_cnn"]), "x").empty


def pd_frame(cols, index):
    import pandas as pd

    return pd.DataFrame(cols, index=index)


def test_ablation_paper_and_cost_table():
    from dfnb.models.prle import study

    ab = study.ablation_paper("EfficientNet", ["+ PRLE", "+ PRLE, average fusion", "+ landmark parts (Table IV)"])
    assert ab["+ PRLE"] == pytest.approx((69.64 + 74.72 + 70.67) / 3)
    assert ab["+ landmark parts (Table IV)"] == pytest.approx((68.22 + 67.97 + 66.76) / 3)
    assert math.isnan(ab["+ PRLE, average fusion"])
    assert math.isnan(study.ablation_paper("VGG", ["+ PRLE, alpha = 1 (no exploitation)"])[
        "+ PRLE, alpha = 1 (no exploitation)"])  # Table VII has no VGG row
    assert all(math.isnan(v) for v in study.ablation_paper(None, ["baseline"]).values())
    cost = study.cost_table({"images_per_s": 3.0, "maps_per_s": 6.0}, 1.5)
    assert cost.loc["static stage: detector maps/s", "this run"] == 6.0
    assert cost.loc["fusion + lookup + masking: training overhead (%)", "paper"] == pytest.approx(
        100 * (1 - 262.42 / 269.72))


def test_gain_table_and_table2_sentence():
    from dfnb.models.prle import study

    res = study.variant_means(study.per_seed_table(_table2_reports()))
    gain = study.gain_table(res, _SETS)
    assert gain.loc["dfdc-syn", "AUC gain, this run"] == pytest.approx(3.0)
    assert gain.loc["ffpp-syn", "paper's test set"] == "—" and math.isnan(gain.loc["ffpp-syn", "paper gain, Xception"])
    assert gain.loc["celebdf-syn", "paper gain, EfficientNet"] == pytest.approx(study.paper_gain("EfficientNet", "Celeb-DF"))
    text = study.table2_sentence(gain, "ffpp-syn", arch="EfficientNet", n_seeds=1, n_cross_faces=20)
    want = np.mean([study.paper_gain("EfficientNet", t) for t in ("DFDC", "Celeb-DF")])
    assert "PRLE improves" in text and "+3.00 points" in text and f"{want:+.2f} for EfficientNet" in text
    assert "1 training seed," in text
    _no_bad_words(text)
    other = study.table2_sentence(gain, "ffpp-syn", arch=None, n_seeds=3, n_cross_faces=20)
    assert "is missing" in other and "3 training seeds" in other
    _no_bad_words(other)


def test_real_set_names_meet_the_same_paper_columns_as_the_synthetic_ones():
    """On real data (load_split's "<name> (real)") the gain table, the Table II claims and the sentence read the
    paper's value of the column the synthetic stand-in plays; FF++ (in-domain) has none either way."""
    import pandas as pd

    from dfnb.models.prle import study

    real = {"ffpp-syn": "ffpp (real)", "dfdc-syn": "dfdc (real)", "celebdf-syn": "celebdf (real)",
            "dfo-syn": "dfo (real)"}
    for syn, rn in real.items():
        assert study.PAPER_TEST_SET.get(rn) == study.PAPER_TEST_SET.get(syn), rn
    per_seed = study.per_seed_table(_table2_reports())
    per_real = per_seed.assign(**{"test set": per_seed["test set"].map(real)})
    g_syn = study.gain_table(study.variant_means(per_seed), _SETS)
    g_real = study.gain_table(study.variant_means(per_real), [real[t] for t in _SETS])
    assert g_real["paper's test set"].tolist() == g_syn["paper's test set"].tolist() == ["—", "DFDC", "Celeb-DF"]
    assert g_real.loc["celebdf (real)", "paper gain, EfficientNet"] == pytest.approx(
        g_syn.loc["celebdf-syn", "paper gain, EfficientNet"]) == pytest.approx(study.paper_gain("EfficientNet", "Celeb-DF"))
    pd.testing.assert_frame_equal(g_real.reset_index(drop=True), g_syn.reset_index(drop=True))
    c_syn = study.table2_claims(per_seed, "efficientnet_lite0", "ffpp-syn")
    c_real = study.table2_claims(per_real, "efficientnet_lite0", "ffpp (real)")
    assert len(c_real) == len(c_syn) == 3
    assert [c["paper_effect"] for c in c_real] == pytest.approx([c["paper_effect"] for c in c_syn])
    want = np.mean([study.paper_gain("EfficientNet", t) for t in ("DFDC", "Celeb-DF")])
    text = study.table2_sentence(g_real, "ffpp (real)", arch="EfficientNet", n_seeds=2, n_cross_faces=20)
    assert f"{want:+.2f} for EfficientNet" in text and "dfdc (real)" in text


def test_backbone_rows_wide_vs_paper_and_sentence():
    from dfnb.models.prle import study

    res = study.variant_means(study.per_seed_table(_table2_reports()))
    other = _reports({(v, 0, t): 0.5 + 0.05 * (v == "+ PRLE") for v in study.MAIN for t in _SETS})
    bb_reports = {("resnet50", v): other[v, 0] for v in study.MAIN}
    bb = study.backbone_rows(res, bb_reports, ["efficientnet_lite0", "resnet50"], "efficientnet_lite0", _SETS,
                             epochs=4, n_seeds=2, other_epochs=1)
    assert len(bb) == 2 * 2 * 3 and set(bb[bb.detector == "resnet50"]["seeds"]) == {1}
    w = study.backbones_wide(bb, _SETS, "ffpp-syn")
    assert w.loc[("efficientnet_lite0", "+ PRLE"), "cross-domain mean"] == pytest.approx(68.0)
    assert w.loc[("resnet50", "baseline"), "epochs"] == 1
    cmp = study.backbones_vs_paper(w, ["efficientnet_lite0", "resnet50"])
    assert cmp.loc["resnet50", "gain, this run"] == pytest.approx(5.0)
    assert cmp.loc["resnet50", "gain, paper"] == pytest.approx(np.mean(
        [study.paper_gain("ResNet-50", t) for t in ("DFDC", "DF-1.0", "Celeb-DF")]))
    text = study.backbones_sentence(cmp, "efficientnet_lite0", 2)
    assert "for 2 of 2 backbones" in text and "lowered it for 0" in text and "has 2 seeds" in text
    _no_bad_words(text)
    one = study.backbones_sentence(cmp.loc[["efficientnet_lite0"]], "efficientnet_lite0", 3)
    assert "1 of 1 backbone" in one and "the others" not in one and "has 3 seeds here" in one


def test_table3_tables_and_sentence():
    from dfnb.models.prle import study

    fams = ["deepfakes", "faceswap", "fam_x"]
    runs = {(tr, v): ({te: {"frame_auc": 0.6 + 0.1 * (te == tr) + 0.02 * (v == "+ PRLE")} for te in fams}, 1)
            for tr in fams for v in study.MAIN}
    w = study.table3_wide(study.table3_long(runs), fams)
    assert w.loc[("deepfakes", "baseline"), "deepfakes"] == pytest.approx(70.0)
    assert w.loc[("deepfakes", "+ PRLE"), "cross-manipulation mean"] == pytest.approx(62.0)
    g3 = study.table3_gains(w, fams)
    assert g3["gain, this run"].tolist() == pytest.approx([2.0, 2.0, 2.0])
    assert g3.loc["fam_x", "paper's train subset"] == "—" and math.isnan(g3.loc["fam_x", "gain, paper (EfficientNet)"])
    text = study.table3_sentence(g3, epochs=1, n_faces=6)
    assert "for 3 of 3 training families" in text and "1 epoch," in text
    _no_bad_words(text)
    none = study.table3_sentence(g3.iloc[2:], epochs=2, n_faces=6)
    assert "1 training family" in none and "is missing" in none and "2 epochs" in none
    _no_bad_words(none)


def test_table6_fig6_tables_figure_and_sentence():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dfnb.models.prle import study

    def rep(a):
        return {t: {"frame_auc": a + 0.1 * (t == "ffpp-syn")} for t in _SETS}

    runs = {(): rep(0.6), ("a",): rep(0.62), ("b",): rep(0.64), ("a", "b"): rep(0.7), ("a", "b", "c"): rep(0.72)}
    t6 = study.table6_table(runs, ["a", "b"], _SETS, "ffpp-syn")
    assert list(t6.index) == ["none (baseline)", "a only", "b only", "all 2 fused (a+b: PRLE)"]
    assert t6.loc["b only", "cross-domain mean"] == pytest.approx(64.0)
    f6 = study.fig6_table(runs, ["a", "b", "c"], _SETS, "ffpp-syn")
    assert list(f6.index) == [1, 2, 3, 4, 5] and f6.loc[3, "zoo (this run)"] == "a+b+c"
    assert f6.loc[2, "ffpp-syn AUC, this run"] == pytest.approx(80.0) and f6.loc[5, "average AUC, paper (EfficientNet)"] == 72.25
    fig = study.fig6_figure(f6, detector="d", train_name="ffpp-syn", in_domain="ffpp-syn")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1\na", "2\n+b", "3\n+c"]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()][:2] == ["1\nX.", "2\n+E."]
    plt.close(fig)
    text = study.table6_sentence(t6, f6, ["a", "b"], epochs=1)
    assert "fused maps of all 2 zoo detectors beat" in text and "1 to 3 detectors" in text and "1 epoch)" in text
    _no_bad_words(text)


def test_masked_sweep_sweep_figure_and_step_cost(tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import dfnb
    from dfnb import engine
    from dfnb.models.prle import study

    data = _Data(n=6, size=8)
    keys = [f"synth|blend|v{i}|0" for i in range(6)]
    fmaps = FusedMaps(np.ones((6, 8, 8), np.float16), keys)
    masked = study.Masked(data, fmaps, 1.0)
    assert len(masked) == 6 and masked[2]["image"].abs().sum() == 0 and study.Masked(data, fmaps, 0.0)[2]["image"].sum() > 0
    torch.manual_seed(0)
    model = dfnb.create_model("toy_cnn", width=4, img_size=8).eval()
    sweep = study.masked_sweep({"m": model}, data, fmaps, [0.0, 1.0])
    plain = engine.evaluate(model, data, batch_size=64, progress=False)["detection"]
    assert sweep["alpha"].tolist() == [0.0, 1.0] and sweep.loc[0, "frame_auc"] == plain["frame_auc"]
    assert sweep.loc[0, "AUC"] == pytest.approx(100 * plain["frame_auc"])
    plt.close(study.sweep_figure(sweep.assign(variant="m"), "synth"))
    seeded = study.masked_sweep({("m", 0): model, ("m", 1): model}, data, fmaps, [0.0, 1.0])
    assert seeded["train seed"].tolist() == [0, 0, 1, 1] and seeded["variant"].eq("m").all()
    plt.close(study.sweep_figure(seeded, "synth"))
    kw = dict(n_steps=2, seed=0, lr=1e-3, batch_size=2, size=8)
    assert study.step_cost("toy_cnn", data, None, **kw) > 0
    data.fingerprint = "six-tiny-faces"
    tf = {"baseline": None, "+ PRLE": PRLEAugment(fmaps, p=1.0)}
    over = study.training_overhead("toy_cnn", data, tf, rounds=1, cache=cache_dir, **kw)
    assert math.isfinite(over) and over > -100
    # measured once per setting: the second call reads the stored number and times nothing
    monkeypatch.setattr(study, "step_cost", lambda *a, **k: pytest.fail("re-timed a cached setting"))
    assert study.training_overhead("toy_cnn", data, tf, rounds=1, cache=cache_dir, **kw) == over
    assert len(list((cache_dir / "_results" / "prle_training_overhead").glob("*.json"))) == 1
    # masked evaluations of an Experiment are cached per alpha
    assert study.Masked(data, fmaps, 0.5).fingerprint != study.Masked(data, fmaps, 0.7).fingerprint
    from dfnb.experiments import train_seeded

    exp = train_seeded("toy_cnn", data, data, seed=0, cache=cache_dir, model_kwargs={"width": 4, "img_size": 8},
                       epochs=1, batch_size=2, lr=1e-3)
    first = study.masked_sweep({"m": exp}, data, fmaps, [0.0, 1.0])
    assert len(list((exp.path / "eval").glob("masked*.json"))) == 2
    assert study.masked_sweep({"m": exp}, data, fmaps, [0.0, 1.0]).equals(first)


def test_maps_figure_exploit_frames_and_jpeg():
    import matplotlib

    matplotlib.use("Agg")

    from dfnb.models.prle import study
    from dfnb.models.prle.static import sample_key

    data = _sample_set(size=8)
    keys = [sample_key(s) for s in data]
    store = MapStore(np.full((4, 2, 8, 8), 128, np.uint8), keys, ["a", "b"])
    picks = study.family_examples(data)
    assert picks == [1, 3]
    toy = [{"method": m, "label": int(m != "real")} for m in ["real", "a", "b", "a", "a", "b", "c"]]
    assert study.family_examples(toy, n=2, per_family=2) == [1, 3, 2, 5]
    fig = study.maps_figure(data, picks, store, {"fused": FusedMaps(np.ones((4, 8, 8), np.float16), keys)})
    assert [ax.get_title() for ax in fig.axes[:5]] == ["image", "a", "b", "fused", "true mask"]
    assert all(ax.title.get_fontsize() >= 9 for ax in fig.axes[:5])
    assert study.jpeg(fig)[:2] == b"\xff\xd8"
    fmap = torch.zeros(8, 8)
    fmap[:2] = torch.linspace(0.1, 1, 16).view(2, 8)
    frames, captions = study.exploit_frames(data[0]["image"], fmap, [1.0, 0.5])
    assert frames[0].shape == (8, 3 * 8 + 8, 3) and frames[0].dtype == np.uint8
    assert captions == ["alpha = 1.0: 16 pixels removed (25.0% of the image)",
                        "alpha = 0.5: 8 pixels removed (12.5% of the image)"]
    # the mask viewer's inputs: Grad-CAM of one detector (its uint8 map / 255) and each fused map, per pick
    maps = np.zeros((4, 2, 8, 8), np.uint8)
    maps[3, 1] = 255
    fused = np.zeros((4, 8, 8), np.float16)
    fused[1, :4] = 0.5
    images, masks, probs, caps = study.viewer_inputs(data, picks, MapStore(maps, keys, ["a", "b"]),
                                                     {"avg": FusedMaps(fused, keys)}, detectors=["b"])
    assert images.shape == (2, 3, 8, 8) and masks.shape == (2, 8, 8) and list(probs) == ["Grad-CAM b", "fused: avg"]
    assert probs["Grad-CAM b"][1].min() == 1.0 and probs["Grad-CAM b"][0].max() == 0.0
    assert probs["fused: avg"][0].sum() == 16.0 and probs["fused: avg"][1].sum() == 0.0
    assert caps == [f"{data[i]['method']} (fake)" for i in picks]
    import dfnb.viz as viz

    html = viz.mask_viewer(images, masks, probs, captions=caps)._repr_html_()
    assert "Grad-CAM b" in html and "fused: avg" in html


def test_diagnostics_markdown_says_missing():
    from dfnb.models.prle.study import diagnostics_markdown

    text = diagnostics_markdown(fused_share=40.0, drop=3.0, lift=1.5, weakest="r", weakest_auc=0.55, p=0.5)
    assert "**40 %**" in text and "≈ 20 %" in text and "**-3.0 points**" in text and "1.50×" in text
    assert "below the 0.9 bar" in text and "has not learnt" in text
    good = diagnostics_markdown(fused_share=40.0, drop=3.0, lift=1.5, weakest="r", weakest_auc=0.96, p=0.5)
    assert "every zoo member has learnt the task" in good and "has not learnt" not in good
    gone = diagnostics_markdown(fused_share=40.0, drop=float("nan"), lift=float("nan"), weakest="r",
                                weakest_auc=0.5, p=0.5)
    assert gone.count("missing") == 2
    _no_bad_words(gone)


def test_neighbouring_fusion_on_the_native_grid_grows_a_peak_by_its_cell_neighbourhood():
    """One sharp peak on a 4 x 4 CAM grid, shown at 16 x 16 (each cell 4 x 4 pixels).  At pixel level
    the neighbouring rule only adds a one-pixel ring (6 x 6 = 36 px); on the native grid it adds the
    peak's 8 neighbouring cells (3 x 3 cells = 144 px); average fusion keeps the peak (16 px)."""
    native = torch.zeros(1, 4, 4)
    native[0, 1, 1] = 1.0
    maps = native.repeat_interleave(4, 1).repeat_interleave(4, 2)  # (1, 16, 16)
    kw = dict(lam=0.1, tau1=0.3)
    assert int((average_fusion(maps, tau1=0.3) > 0).sum()) == 16
    assert int((neighbouring_fusion(maps, **kw) > 0).sum()) == 36
    on_grid = neighbouring_fusion(maps, grid=4, **kw)
    want = torch.zeros(16, 16)
    want[0:12, 0:12] = 1.0
    assert torch.equal(on_grid, want)
    with pytest.raises(ValueError, match="dividing the maps' size 16x16"):
        neighbouring_fusion(maps, grid=5, **kw)
