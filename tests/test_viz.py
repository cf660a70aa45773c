"""Mask viewers and overlays; the static viewer's JavaScript is driven in headless Debian Chromium."""
import base64
import functools
import http.server
import json
import re
import threading

import cv2
import numpy as np
import pytest
import torch

import _browser
from dfnb import metrics, viewer_html, viz


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


def _probs(m):
    """Probability maps: 0.9 on the mask's left half, 0.6 on its right half, 0.55 on a ring outside."""
    p = np.zeros_like(m)
    for i in range(len(m)):
        ys, xs = np.nonzero(m[i])
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        p[i, max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2] = 0.55
        p[i, y0:y1, x0:x1] = 0.6
        p[i, y0:y1, x0:(x0 + x1) // 2] = 0.9
    return p


def _payload(viewer):
    return json.loads(re.search(r"<script type='application/json'>(.*?)</script>", viewer.html).group(1))


def _levels(uri):
    return cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_UNCHANGED)


def test_static_viewer_embeds_each_map_once_as_8bit_levels():
    imgs, m = _data()
    p = _probs(m)
    v = viz.mask_viewer(imgs, m, p, captions=["a", "b", "c"])
    d = _payload(v)
    assert (d["w"], d["h"], len(d["images"]), len(d["truth"])) == (24, 24, 3, 3)
    assert [q["name"] for q in d["probs"]] == ["prediction"] and len(d["probs"][0]["maps"]) == 3
    assert np.array_equal(_levels(d["probs"][0]["maps"][1]), viewer_html.quantize(p[1]))  # lossless PNG
    assert np.array_equal(_levels(d["truth"][2]), (m[2] * 255).astype(np.uint8))
    assert d["captions"] == ["a", "b", "c"] and "</script>" not in json.dumps(d)
    assert "blue" in v.html and "orange" in v.html  # colours named in the legend
    assert v.nbytes < 30_000, v.nbytes
    # older keyword, model comparison, and size for a projector
    assert _payload(viz.mask_viewer(imgs, m, preds=p))["probs"][0]["name"] == "prediction"
    two = _payload(viz.mask_viewer(imgs, m, probs={"DADF": p, "SAM": p * 0.5}, size=1024))
    assert [q["name"] for q in two["probs"]] == ["DADF", "SAM"] and two["panel_px"] == (1024 - 3 * 8) // 4
    with pytest.raises(ValueError, match="not both"):
        viz.mask_viewer(imgs, m, p, preds=p)
    with pytest.raises(ValueError, match="max_frames"):
        viz.mask_viewer(np.repeat(imgs, 10, 0), np.repeat(m, 10, 0), max_frames=24)
    with pytest.raises(ValueError, match=r"N=3"):
        viz.mask_viewer(imgs, m[:2])
    with pytest.raises(ValueError, match=r"probs\['prediction'\] must lie in \[0, 1\]"):
        viz.mask_viewer(imgs, m, p * 2)


def test_outline_is_the_masks_border():
    m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
    o = viz.outline(m)
    assert o.sum() == 8 and not o[2, 2] and o[1, 1] and not o[0, 0]


def test_live_viewer_rerenders_on_callbacks():
    imgs, m = _data()
    box = viz.mask_viewer(imgs, m, m * 0.6, live=True)
    index, counter, op, th, view = box.children[0].children
    img, ious = box.children[3], box.children[4]
    first = img.value
    assert "1 / 3" in counter.value and "= 1.000" in ious.value
    index.value = 1
    assert img.value != first and "2 / 3" in counter.value
    second = img.value
    th.value = 0.7  # prediction 0.6 < 0.7: the orange region disappears, IoU drops to 0
    assert img.value != second and "= 0.000" in ious.value
    op.value = 0.0
    th.value = 0.5
    index.value = 0
    plain = viz.row([viz.to_uint8_images(imgs)[0]] * 3)
    assert bytes(img.value) == viz.encode_image(plain)
    view.value = "overlay"
    assert img.value != viz.encode_image(plain) and "blue outline" in box.children[2].value


# ------------------------------------------------------------------ the static viewer in Chromium
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("viewer")
    imgs, m = _data()
    (root / "mask.html").write_text(viz.mask_viewer(imgs, m, _probs(m), captions=["a", "b", "c"]).page())
    frames = [np.full((8, 8, 3), 40 * k, np.uint8) for k in range(4)]
    (root / "frames.html").write_text(viz.frame_viewer(frames, [f"f{k}" for k in range(4)]).page())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    errors, external = [], []
    with sync_playwright() as p:
        b = _browser.launch(p)
        page = b.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else external.append(r.url))
        yield page, url, errors, external
        b.close()
    httpd.shutdown()


def test_viewer_iou_in_javascript_matches_python_on_a_hand_case(browser):
    page, url, errors, _ = browser
    page.goto(f"{url}/mask.html")
    prob = [0, 64, 127, 128, 200, 255]
    truth = [0, 255, 255, 0, 255, 0]
    # t = 0.5: predicted 128, 200, 255 (levels >= 127.5), true 1, 2, 4: TP 1, FP 2, FN 2 -> 1/5
    assert page.evaluate("([p, g]) => window.dfnbViewers.iou(p, g, 0.5)", [prob, truth]) == 0.2
    for t in (0.0, 0.25, 0.5, 0.78, 1.0):
        js = page.evaluate("([p, g, t]) => window.dfnbViewers.iou(p, g, t)", [prob, truth, t])
        py = metrics.iou(np.array([prob]).reshape(1, 1, 6) / 255, np.array([truth]).reshape(1, 1, 6) / 255, t)
        assert js == pytest.approx(py, abs=1e-12), t
    assert page.evaluate("() => window.dfnbViewers.iou([0, 0], [0, 0], 0.5)") == 1.0  # both empty
    assert not errors


def _iou_shown(page):
    return float(page.locator(".dfnb-mv-iou-value").first.text_content())


def _canvas(page, k):
    return page.evaluate(f"() => document.querySelectorAll('.dfnb-mv-panel canvas')[{k}].toDataURL()")


def _pixel(page, k, x, y):
    return page.evaluate(f"""() => Array.from(document.querySelectorAll('.dfnb-mv-panel canvas')[{k}]
        .getContext('2d').getImageData({x}, {y}, 1, 1).data.slice(0, 3))""")


def test_static_viewer_sliders_threshold_opacity_and_counter_in_chromium(browser):
    page, url, errors, external = browser
    imgs, m = _data()
    q = viewer_html.quantize(_probs(m)) / 255
    page.goto(f"{url}/mask.html")
    page.locator(".dfnb-mask-viewer.dfnb-ready").wait_for(timeout=10_000)
    assert page.locator(".dfnb-mv-counter").text_content() == "1 / 3"
    assert page.locator(".dfnb-mv-caption").text_content() == "a"
    labels = page.locator(".dfnb-mv-label").all_text_contents()
    assert labels == ["image", "true mask (blue)", "prediction \u2265 0.50 (orange)"]
    assert _iou_shown(page) == pytest.approx(metrics.iou(q[:1], m[:1], 0.5), abs=5e-4)
    before = _canvas(page, 2)
    page.locator(".dfnb-mv-threshold").fill("0.8")
    assert _canvas(page, 2) != before, "the threshold did not change the displayed mask"
    assert _iou_shown(page) == pytest.approx(metrics.iou(q[:1], m[:1], 0.8), abs=5e-4)
    assert metrics.iou(q[:1], m[:1], 0.5) == pytest.approx(64 / 144)  # the ring counts: 8x8 / 12x12
    assert metrics.iou(q[:1], m[:1], 0.8) == pytest.approx(32 / 64)  # the left half only
    assert "\u2265 0.80" in page.locator(".dfnb-mv-label").nth(2).text_content()
    page.locator(".dfnb-mv-opacity").fill("1")
    assert _pixel(page, 2, 5, 5) == [230, 159, 0]  # orange where P >= 0.8 (left half of the mask)
    assert _pixel(page, 1, 5, 5) == [0, 114, 178]  # blue inside the true mask
    shown = _canvas(page, 2)
    page.locator(".dfnb-mv-opacity").fill("0")
    assert _canvas(page, 2) != shown, "the opacity did not change the overlay"
    assert _canvas(page, 2) == _canvas(page, 0)  # opacity 0: the bare image
    page.locator(".dfnb-mv-frame").focus()
    page.keyboard.press("ArrowRight")
    assert page.locator(".dfnb-mv-counter").text_content() == "2 / 3"
    assert page.locator(".dfnb-mv-caption").text_content() == "b"
    assert _iou_shown(page) == pytest.approx(metrics.iou(q[1:2], m[1:2], 0.8), abs=5e-4)
    page.locator(".dfnb-mv-side").uncheck()  # overlay: one panel, prediction over the true mask's outline
    assert page.locator(".dfnb-mv-panel").count() == 1
    assert "blue outline" in page.locator(".dfnb-mv-label").first.text_content()
    page.goto(f"{url}/frames.html")
    page.locator(".dfnb-frame-viewer.dfnb-ready").wait_for(timeout=10_000)
    src = page.locator(".dfnb-mv-frame-image").get_attribute("src")
    page.locator(".dfnb-mv-frame").focus()
    page.keyboard.press("End")
    assert page.locator(".dfnb-mv-counter").text_content() == "4 / 4"
    assert page.locator(".dfnb-mv-caption").text_content() == "f3"
    assert page.locator(".dfnb-mv-frame-image").get_attribute("src") != src
    assert not errors, errors
    assert not external, external
