"""Build the book on the smoke profile and use it in headless Chromium, offline.

The build executes every chapter on the smoke profile (so this is also the smoke test of all chapters), then
`jupyter-book build -W --keep-going`.  Chromium (Debian's, never a downloaded one) loads the tour chapter from a
server on 127.0.0.1, moves the static mask viewer's slider with the keyboard, and must see another image, with
zero failed requests and no request leaving localhost.
"""
import functools
import http.server
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from dfnb import book, runner

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
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


def test_static_mask_viewer_slider_changes_image_offline(server):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is not installed (make browser)")
        pytest.skip("Debian chromium is not installed (make browser)")
    from playwright.sync_api import sync_playwright

    failed, external = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page()
        page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
        page.on("request", lambda r: None if r.url.startswith((server, "data:", "blob:")) else external.append(r.url))
        page.goto(f"{server}/book/chapters/00_tour.html", wait_until="networkidle")
        viewer = page.locator(".dfnb-frame-viewer").first
        viewer.wait_for(state="visible", timeout=30_000)

        def shown_src():
            return page.evaluate(
                """() => { const v = document.querySelector('.dfnb-frame-viewer');
                   const imgs = [...v.querySelectorAll('img')].filter(i => i.offsetParent !== null);
                   return imgs.map(i => i.src).join('|'); }"""
            )

        before = shown_src()
        assert before, "no visible image in the viewer"
        handle = viewer.locator(".noUi-handle").first
        handle.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(500)
        after = shown_src()
        browser.close()
    assert after and after != before, "moving the slider did not change the shown image"
    assert not failed, f"failed requests: {failed}"
    assert not external, f"requests left localhost: {external}"
