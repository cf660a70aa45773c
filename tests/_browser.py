"""Debian's Chromium for the browser tests (never a browser downloaded by a test tool)."""
import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def launch(playwright):
    """A headless Chromium, or skip the test (fail it on CI) where none is installed."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is not installed (make browser)")
        pytest.skip("Debian chromium is not installed (make browser)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
