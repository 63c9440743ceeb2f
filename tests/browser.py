"""Debian's Chromium driven by Playwright, for the tests that look at pages in a real browser.

Chromium comes from the system (``/usr/bin/chromium``, Debian's ``chromium``
package, installed by ``.ci/run``); Playwright only drives it and downloads
nothing. Screenshots go to ``$NEXTBEST_TEST_ARTIFACTS`` (CI keeps them) or
the test's temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("NEXTBEST_CHROMIUM", "/usr/bin/chromium")
# Offline and quiet: no first-run, sync, component or background network traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_browser(playwright):
    """A headless Chromium; fails (not skips) when the system browser is missing."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium package (.ci/run does)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def artifacts_dir(tmp_path: Path) -> Path:
    path = Path(os.environ.get("NEXTBEST_TEST_ARTIFACTS") or tmp_path)
    path.mkdir(parents=True, exist_ok=True)
    return path
