"""Browser test of the review console: Playwright drives Debian's headless Chromium.

Logs in with a reviewer token, opens a pending violation, plays the clip, confirms it with the
keyboard shortcut (the next pending item then opens), and checks that the API and both audit
trails reflect the action. This app has no console routes mounted: the page falls back to its
built-in reject reasons and counts the loaded rows.
Screenshots of the queue and the violation page go to ``tests/artifacts/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._api_fixtures import Seeded, live_server, make_app, seed_service
from tests.conftest import need

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    yield s
    s.service.db.close()


def _playwright() -> object:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed (pip install playwright)")
    need(CHROMIUM.is_file() or shutil.which("chromium") is not None, "chromium not installed")
    return sync_playwright


def test_review_console_confirms_a_violation(seeded: Seeded, tmp_path: Path) -> None:
    sync_playwright = _playwright()
    ARTIFACTS.mkdir(exist_ok=True)
    app = make_app(seeded)
    with live_server(app) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            context = browser.new_context(  # bypass_csp: wait_for_function(str) needs eval
                viewport={"width": 1366, "height": 768}, locale="zh-CN", bypass_csp=True
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/")
            page.fill("#token", seeded.tokens["reviewer"])
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#queue-table tbody tr[data-id]")
            rows = page.locator("#queue-table tbody tr[data-id]")
            assert rows.count() == len(seeded.violations)
            assert "待审核" in page.inner_text("#queue-table")
            page.wait_for_timeout(300)
            page.screenshot(path=str(ARTIFACTS / "console_queue.png"))
            no_hscroll = "document.documentElement.scrollWidth <= window.innerWidth"
            assert page.evaluate(no_hscroll)

            target = seeded.violations[1].event_id  # plate 沪B67890
            page.click(f"#queue-table tr[data-id='{target}']")
            page.wait_for_function(
                "document.querySelector('#composite').complete && "
                "document.querySelector('#composite').naturalWidth > 0"
            )
            for sel in ("#img1", "#img2", "#img3", "#plate-img"):
                page.wait_for_function(f"document.querySelector('{sel}').naturalWidth > 0")
            plate = page.inner_text("#plate-text")
            ev = next(e for e in seeded.violations if e.event_id == target)
            assert ev.plate is not None and plate == ev.plate.text
            # play the clip: Range requests through the signed URL, decoded by Chromium
            page.evaluate("document.querySelector('#clip').play()")
            page.wait_for_function(
                "document.querySelector('#clip').currentTime > 0.2", timeout=10000
            )
            page.evaluate("document.querySelector('#clip').pause()")
            assert page.evaluate("document.querySelector('#clip').videoWidth") == 160
            page.screenshot(path=str(ARTIFACTS / "console_violation.png"))
            assert page.evaluate(no_hscroll)

            # reject without a reason is refused in the page itself
            page.keyboard.press("r")
            assert "驳回必须选择或填写理由" in page.inner_text("#review-msg")
            page.locator("#reason-preset").blur()
            page.keyboard.press("c")
            # confirmed: the next pending item (the older one below it in the queue) opens; the
            # outcome names the previous item, apart from this (still pending) item's messages
            following = seeded.violations[0].event_id
            page.wait_for_function(f"location.hash === '#/violation/{following}'")
            page.wait_for_function(
                "document.querySelector('#prev-msg').textContent === "
                "'✓ 上一条（沪B67890）已确认 · 当前为下一条待审核'"
            )
            assert page.inner_text("#review-msg") == ""
            page.screenshot(path=str(ARTIFACTS / "console_violation_confirmed.png"))
            page.click("#lang")
            assert page.inner_text("#nav").startswith("Queue")
            assert not errors, errors
        finally:
            browser.close()

    stored = seeded.service.get_event(target, violation=True)
    assert stored.review is not None and stored.review.state == "confirmed"
    trail = seeded.service.audit_trail(target)
    assert len(trail) == 1 and trail[0].actor.startswith("reviewer-user")
    assert trail[0].before["review_state"] == "pending"
    auth = [(a.action.value, a.name, a.path) for a in seeded.service.auth_audit.recent(100)]
    assert ("login", "reviewer-user", "/api/v1/auth/login") in auth
    assert ("token_use", "reviewer-user", f"/api/v1/violations/{target}/review") in auth
