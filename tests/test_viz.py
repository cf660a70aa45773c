"""Mask viewers and overlays."""
import ipywidgets as w
from ipywidgets.widgets.widget_link import Link
import numpy as np
import pytest
import torch

from dfnb import viz


def _data(n=3, s=24):
    rng = np.random.default_rng(0)
    imgs = rng.random((n, s, s, 3)).astype(np.float32)
    m = np.zeros((n, s, s), np.float32)
    for i in range(n):
        m[i, 4 + i : 12 + i, 4:12] = 1
    return imgs, m


def test_image_layouts_agree():
    imgs, _ = _data()
    a = viz.to_uint8_images(imgs)
    b = viz.to_uint8_images(torch.from_numpy(imgs).permute(0, 3, 1, 2))
    assert a.dtype == np.uint8 and a.shape == (3, 24, 24, 3) and np.array_equal(a, b)
    assert np.array_equal(viz.to_uint8_images(a), a)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        viz.to_uint8_images(imgs * 255)


def test_overlay_blends_only_inside_the_mask():
    img = np.full((4, 4, 3), 100, np.uint8)
    m = np.zeros((4, 4)); m[1, 1] = 1
    assert np.array_equal(viz.overlay(img, m, opacity=0.0), img)
    out = viz.overlay(img, m, color=(200, 0, 0), opacity=0.5)
    assert tuple(out[1, 1]) == (150, 50, 50) and tuple(out[0, 0]) == (100, 100, 100)
    with pytest.raises(ValueError, match="opacity"):
        viz.overlay(img, m, opacity=2)


def test_static_viewer_prerenders_one_frame_per_image_and_links_in_browser():
    imgs, m = _data()
    box = viz.mask_viewer(imgs, m, m, captions=["a", "b", "c"])
    fv = box.children[1]
    slider, caps, stack = fv.children
    assert isinstance(stack, w.Stack) and len(stack.children) == 3 and slider.max == 2
    pngs = [c.value for c in stack.children]
    assert len(set(pngs)) == 3  # masks differ, so frames differ
    assert all(isinstance(l, Link) and l.source == (slider, "value") for l in fv.links)
    assert {(l.target[0], l.target[1]) for l in fv.links} == {(stack, "selected_index"), (caps, "selected_index")}
    with pytest.raises(ValueError, match="max_frames"):
        viz.mask_viewer(np.repeat(imgs, 10, 0), np.repeat(m, 10, 0), max_frames=24)
    with pytest.raises(ValueError, match=r"N=3"):
        viz.mask_viewer(imgs, m[:2])


def test_live_viewer_rerenders_on_callbacks():
    imgs, m = _data()
    box = viz.mask_viewer(imgs, m, m * 0.6, live=True)
    index, op, th = box.children[1].children
    img = box.children[3]
    first = img.value
    index.value = 1
    assert img.value != first
    second = img.value
    th.value = 0.7  # prediction 0.6 < 0.7: the red region disappears
    assert img.value != second
    op.value = 0.0
    th.value = 0.5
    index.value = 0
    plain = viz.panel(viz.to_uint8_images(imgs)[0], m[0] * 0, m[0] * 0)
    assert bytes(img.value) == viz.encode_image(plain)
