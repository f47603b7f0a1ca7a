"""Browser test of the console login as a person: Playwright drives Debian's headless Chromium.

A reviewer logs in with user name and password, sees the queue with her name and role, logs
out, and the old session secret is then refused by the API; a user with TOTP is asked for the
code, refused a wrong one and let in with the right one. Screenshots of the login page and the
logged-in queue at 1366x768 and 1920x1080 go to ``tests/artifacts/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sharpeyes.api.rest.auth import Role, totp
from sharpeyes.api.rest.auth.sessions import SessionService
from sharpeyes.pipeline import clock
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
]
SIZES = ((1366, 768), (1920, 1080))
PASSWORD = "审核 password 1"  # not ASCII: Basic credentials go as UTF-8


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    yield s
    s.service.db.close()


def _sessions(seeded: Seeded) -> SessionService:
    sessions = seeded.service.tokens.sessions
    assert sessions is not None
    return sessions


def _playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed (pip install playwright)")
    need(CHROMIUM.is_file() or shutil.which("chromium") is not None, "chromium not installed")
    return sync_playwright


def _page(browser: Any, base: str) -> tuple[Any, list[str]]:
    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="zh-CN", bypass_csp=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/")
    page.wait_for_selector("#username")
    return page, errors


def _shots(page: Any, name: str) -> None:
    for w, h in SIZES:
        page.set_viewport_size({"width": w, "height": h})
        page.wait_for_timeout(200)
        page.screenshot(path=str(ARTIFACTS / f"{name}_{w}x{h}.png"))
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.set_viewport_size({"width": 1366, "height": 768})


def _submit(page: Any, username: str, password: str) -> None:
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#user-login-form button[type=submit]")


def test_password_login_then_logout_ends_the_session(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    ARTIFACTS.mkdir(exist_ok=True)
    _sessions(seeded).users.add("zhangsan", PASSWORD, Role.REVIEWER, "张三")
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page, errors = _page(browser, base)
            assert page.is_visible("#token")  # the API token stays a way in
            _shots(page, "console_login")
            _submit(page, "zhangsan", "wrong password")
            page.wait_for_function("document.querySelector('#user-login-error').textContent")
            assert page.inner_text("#user-login-error") == "用户名或密码错误"
            assert page.is_visible("#view-login") and not page.is_visible("#totp")

            _submit(page, "zhangsan", PASSWORD)
            page.wait_for_selector("#queue-table tbody tr[data-id]")
            assert page.inner_text("#who") == "张三 (zhangsan) · 审核员"
            assert page.locator("#queue-table tbody tr[data-id]").count() == len(seeded.violations)
            secret = page.evaluate("sessionStorage.getItem('se_token')")
            assert secret.startswith("ss_")
            assert page.input_value("#password") == ""
            page.wait_for_timeout(300)  # thumbnails
            _shots(page, "console_queue_user")
            me = httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})
            assert me.status_code == 200 and me.json()["name"] == "zhangsan"

            with page.expect_response("**/api/v1/auth/logout") as done:
                page.click("#logout")
            assert done.value.status == 204
            page.wait_for_selector("#view-login", state="visible")
            assert page.evaluate("sessionStorage.getItem('se_token')") is None
            assert page.inner_text("#who") == ""
            old = httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})
            assert old.status_code == 401
            assert not errors, errors
        finally:
            browser.close()
    audit = [(a.action.value, a.name, a.detail) for a in seeded.service.auth_audit.recent(50)]
    assert ("login_failed", "", "wrong password: zhangsan") in audit
    assert ("login", "zhangsan", "session, password") in audit
    assert ("logout", "zhangsan", "session ended") in audit


def test_totp_login_asks_for_the_code(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    ARTIFACTS.mkdir(exist_ok=True)
    users = _sessions(seeded).users
    users.add("lisi", PASSWORD, Role.ADMIN, "李四")
    key = parse_qs(urlsplit(users.enrol_totp("lisi")).query)["secret"][0]
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page, errors = _page(browser, base)
            _submit(page, "lisi", PASSWORD)
            page.wait_for_selector("#totp", state="visible")
            assert page.inner_text("#user-login-error") == "请输入身份验证器中的 6 位动态验证码"
            page.screenshot(path=str(ARTIFACTS / "console_login_totp_1366x768.png"))
            right = totp.code_at(key, totp.step_at(clock.now_ms()))
            wrong = str((int(right) + 500_000) % 1_000_000).zfill(6)
            page.fill("#totp", wrong)
            page.click("#user-login-form button[type=submit]")
            bad_code = "动态验证码错误或已使用"
            page.wait_for_function(
                f"document.querySelector('#user-login-error').textContent === '{bad_code}'"
            )
            page.fill("#totp", totp.code_at(key, totp.step_at(clock.now_ms())))
            page.click("#user-login-form button[type=submit]")
            page.wait_for_selector("#queue-table tbody tr[data-id]")
            assert page.inner_text("#who") == "李四 (lisi) · 管理员"
            assert not page.is_visible("#totp")
            page.click("#lang")
            assert page.inner_text("#who") == "李四 (lisi) · admin"
            assert not errors, errors
        finally:
            browser.close()
    audit = [(a.action.value, a.name, a.detail) for a in seeded.service.auth_audit.recent(50)]
    assert ("login", "lisi", "session, password + TOTP") in audit
    assert ("login_failed", "", "wrong one-time code: lisi") in audit
