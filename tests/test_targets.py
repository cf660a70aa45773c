"""WithMaskTarget: another map as the training mask, told apart by the experiment cache."""
import numpy as np
import pytest
import torch

from dfnb.data.targets import WithMaskTarget
from dfnb.experiments import fingerprint


class _Split:
    fingerprint = "split-1"
    methods = ["real", "deepfakes"]

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return {"image": torch.zeros(3, 4, 4), "mask": torch.full((1, 4, 4), float(i)), "label": torch.tensor(i)}


def test_the_map_is_the_mask_and_the_fingerprint_names_it():
    maps = np.zeros((2, 4, 4), np.float32)
    maps[1, :2, :2] = 0.5
    ds = WithMaskTarget(_Split(), maps, "focus")
    item = ds[1]
    assert torch.equal(item["mask"], torch.as_tensor(maps[1])[None]) and torch.equal(item["true_mask"], torch.ones(1, 4, 4))
    assert ds.methods == ["real", "deepfakes"] and len(ds) == 2
    fp = fingerprint(ds)
    assert fp.startswith("masktarget:focus:split-1:(2, 1, 4, 4):")
    assert fingerprint(WithMaskTarget(_Split(), maps, "prle")) != fp  # another name
    maps[1, 0, 0] = 0.25
    assert fingerprint(WithMaskTarget(_Split(), maps, "focus")) != fp  # other maps


def test_bad_maps_are_one_clear_line():
    with pytest.raises(ValueError, match="3 maps for 2 items"):
        WithMaskTarget(_Split(), np.zeros((3, 4, 4)), "x")
    with pytest.raises(ValueError, match=r"maps are \(8, 8\) px, the images \(4, 4\): resize the maps first"):
        WithMaskTarget(_Split(), np.zeros((2, 8, 8)), "x")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        WithMaskTarget(_Split(), np.full((2, 4, 4), 2.0), "x")
    with pytest.raises(ValueError, match=r"maps must be \(N, H, W\)"):
        WithMaskTarget(_Split(), np.zeros((2, 3, 4, 4)), "x")
