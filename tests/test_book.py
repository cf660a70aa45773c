"""Build the book on the smoke profile and use it in headless Chromium, offline.

The build executes every chapter on the smoke profile (so this is also the smoke test of all chapters), then
`jupyter-book build -W --keep-going`.  Chromium (Debian's, never a downloaded one) loads every page from a server on
127.0.0.1 (no console error, zero failed requests, no request leaving localhost) and drives a chapter's static mask
viewer: the frame counter reads "i / n", the threshold changes the displayed mask and the printed IoU (checked
against dfnb.metrics on the page's own embedded maps), the opacity changes the overlay.
"""
import base64
import functools
import http.server
import json
import re
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

import _browser
from dfnb import book, metrics, runner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def html_dir():
    t0 = time.time()
    out = book.build("smoke", progress=False)
    print(f"smoke book built in {time.time() - t0:.0f} s")
    assert (out / "index.html").exists()
    return out


def test_every_chapter_recorded_on_smoke(html_dir):
    for ch in runner.list_chapters():
        ok, why = book.is_current(ch, "smoke")
        assert ok, f"{ch}: {why}"
        assert (html_dir / "book" / "chapters" / f"{ch}.html").exists()


def test_no_cdn_in_built_pages(html_dir):
    for page in html_dir.rglob("*.html"):
        text = page.read_text(errors="replace")
        for cdn in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com"):
            assert f'src="https://{cdn}' not in text, f"{page} loads a script from {cdn}"


@pytest.fixture(scope="module")
def server(html_dir):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _pages(html_dir):
    return sorted(p for p in html_dir.rglob("*.html") if "_sources" not in p.parts and "_static" not in p.parts)


def test_scripts_once_and_widget_js_only_on_widget_pages(html_dir):
    for page in _pages(html_dir):
        text = page.read_text(errors="replace")
        name = page.relative_to(html_dir)
        assert text.count("const THEBE_JS_URL") <= 1, f"{name}: THEBE_JS_URL declared twice"
        assert len(re.findall(r'<script[^>]*src="[^"]*tex-chtml\.js', text)) <= 1, f"{name}: MathJax included twice"
        widgets = "application/vnd.jupyter.widget-state+json" in text
        for js in ("embed-amd.js", "require.min.js", "dfnb-widgets.js"):
            assert (js in text) == widgets, f"{name}: {js} {'missing on' if widgets else 'loaded on'} a page " \
                                            f"{'with' if widgets else 'without'} widgets"


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    log = {"errors": [], "failed": [], "external": []}
    with sync_playwright() as p:
        b = _browser.launch(p)
        page = b.new_page()
        page.on("console", lambda m: log["errors"].append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: log["errors"].append(f"{page.url}: {e}"))
        page.on("requestfailed", lambda r: log["failed"].append(f"{r.url} {r.failure}"))
        page.on("request", lambda r: None if r.url.startswith((server, "data:", "blob:")) else log["external"].append(r.url))
        yield page, log
        b.close()


def test_every_page_loads_offline_with_a_clean_console(server, html_dir, browser):
    page, log = browser
    for p in _pages(html_dir):
        page.goto(f"{server}/{p.relative_to(html_dir).as_posix()}", wait_until="networkidle")
        page.wait_for_timeout(300)  # widget rendering and MathJax finish after networkidle
    assert not log["errors"], "console errors:\n" + "\n".join(log["errors"])
    # The browser cancels a request still in flight when the next page is opened (net::ERR_ABORTED, seen
    # for the favicon); such a request only fails the test if the server cannot answer it either.
    failed = [f for f in log["failed"] if not (f.endswith("net::ERR_ABORTED") and _serves(f.split()[0]))]
    assert not failed, f"failed requests: {failed}"
    assert not log["external"], f"requests left localhost: {log['external']}"


def _serves(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status == 200
    except OSError:
        return False


def _levels(uri):
    return cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_UNCHANGED)


def _threshold_viewer(page, server, html_dir):
    """The first chapter page whose static mask viewer has a threshold and an IoU: (viewer, its data)."""
    for p in sorted((html_dir / "book" / "chapters").glob("*.html")):
        if "dfnb-mv-iou" not in p.read_text(errors="replace"):
            continue
        page.goto(f"{server}/book/chapters/{p.name}", wait_until="networkidle")
        v = page.locator(".dfnb-mask-viewer:has(.dfnb-mv-iou)").first
        v.locator("xpath=.").and_(page.locator(".dfnb-ready")).wait_for(timeout=30_000)
        return v, json.loads(v.locator("script[type='application/json']").text_content())
    pytest.fail("no chapter page has a static mask viewer with a threshold and a true mask (re-execute the "
                "chapters on the smoke profile after a viewer change)")


def test_chapter_mask_viewer_threshold_opacity_and_counter(server, html_dir, browser):
    page, log = browser
    v, d = _threshold_viewer(page, server, html_dir)
    n = len(d["images"])
    assert v.locator(".dfnb-mv-counter").text_content() == f"1 / {n}"
    side = v.locator(".dfnb-mv-side")
    if not side.is_checked():
        side.check()
    pred = v.locator(".dfnb-mv-panel canvas").nth(2)  # image | true mask | first prediction
    shown = lambda: pred.evaluate("c => c.toDataURL()")  # noqa: E731
    iou = lambda: float(v.locator(".dfnb-mv-iou-value").first.text_content())  # noqa: E731
    truth, prob = _levels(d["truth"][0]) / 255, _levels(d["probs"][0]["maps"][0]) / 255
    moved = False
    for t in ("0", "0.05", "0.95", "1"):
        before, before_iou = shown(), iou()
        v.locator(".dfnb-mv-threshold").fill(t)
        assert iou() == pytest.approx(metrics.iou(prob[None], truth[None], float(t)), abs=5e-4), t
        moved |= shown() != before and iou() != before_iou
    assert moved, "no threshold changed both the displayed mask and the printed IoU"
    v.locator(".dfnb-mv-opacity").fill("1")
    opaque = shown()
    v.locator(".dfnb-mv-opacity").fill("0.2")
    assert shown() != opaque, "the opacity did not change the overlay"
    v.locator(".dfnb-mv-frame").focus()
    page.keyboard.press("ArrowRight")
    assert v.locator(".dfnb-mv-counter").text_content() == f"{min(2, n)} / {n}"
    assert not log["errors"], log["errors"]
    assert not log["external"], log["external"]
