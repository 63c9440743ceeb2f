"""The API page in a real browser: Debian's Chromium opens /docs, authorizes, runs /predict."""

from __future__ import annotations

import pytest

from tests.browser import artifacts_dir, chromium_browser
from tests.serving.live import live_server

pytestmark = pytest.mark.slow

KEY = "browser-key"
OP = "#operations-Decisions-nextbest__predict"  # Swagger UI's id of POST /predict


def test_swagger_page_authorizes_and_runs_predict(trained_home, tmp_path):
    from playwright.sync_api import sync_playwright

    customer = sorted(set(trained_home.dataset.customers["customer_id"]))[0]
    with live_server(trained_home.home, tmp_path, KEY) as (base, _), sync_playwright() as pw:
        browser = chromium_browser(pw)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        console_errors, foreign = [], []
        page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
        page.on("request", lambda r: r.url.startswith(base) or foreign.append(r.url))
        page.goto(f"{base}/docs")
        page.wait_for_selector("text=nextbest", timeout=60_000)
        # Authorize with the key.
        page.click("button.authorize")
        page.fill(".auth-container input", KEY)
        page.click(".auth-btn-wrapper button.authorize")
        page.click("button.btn-done")
        # POST /predict: try it out with a customer of the snapshot.
        page.click(f"{OP} .opblock-summary")
        page.click(f"{OP} button.try-out__btn")
        page.fill(
            f"{OP} textarea.body-param__text",
            f'{{"customer_id": "{customer}"}}',
        )
        page.click(f"{OP} button.execute")
        status = page.wait_for_selector(
            f"{OP} .live-responses-table tbody .response-col_status",
            timeout=60_000,
        )
        code = status.inner_text().strip()
        shot = artifacts_dir(tmp_path) / "docs-predict.png"
        page.screenshot(path=str(shot), full_page=True)
        body = page.inner_text(f"{OP} .live-responses-table")
        browser.close()
    assert code.startswith("200"), body[:2000]
    assert f'"customer_id": "{customer}"' in body and '"action"' in body
    assert console_errors == [], console_errors
    assert foreign == [], foreign
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
