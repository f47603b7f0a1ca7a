"""``/docs`` (Swagger UI) and ``/redoc`` render with no internet (issue 15): Chromium loads them
from a live server with every non-local request aborted, under the service's real CSP, and the
operations must be on screen. Screenshots go to ``tests/artifacts/``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
]
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
# ReDoc's side-menu "API docs by Redocly" logo is a hard-coded CDN <img> that hides itself when it
# fails to load: the only outside request allowed to fail, and only on /redoc.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    root = tmp_path_factory.mktemp("docs")
    s = seed_service(f"sqlite:///{root / 'store.db'}", root, violations=1, passes=1)
    yield s
    s.service.db.close()


def _playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed (pip install playwright)")
    need(CHROMIUM.is_file() or shutil.which("chromium") is not None, "chromium not installed")
    return sync_playwright


def _open_offline(seeded: Seeded, path: str, ready: str, shot: str) -> tuple[Any, list[str]]:
    """Open ``path`` with non-local requests aborted; wait for selector ``ready``; return the
    text of the page body and the blocked URLs (and page errors)."""
    sync_playwright = _playwright()
    ARTIFACTS.mkdir(exist_ok=True)
    blocked: list[str] = []
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 900})

            def only_local(route: Any) -> None:
                host = urlsplit(route.request.url).hostname or ""
                if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            context.route("**/*", only_local)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            response = page.goto(f"{base}{path}")
            assert response is not None and response.status == 200
            page.wait_for_selector(ready, timeout=30_000)
            page.wait_for_timeout(300)
            page.screenshot(path=str(ARTIFACTS / shot))
            text = page.inner_text("body")
        finally:
            browser.close()
    return text, blocked + [f"pageerror: {e}" for e in errors]


def test_swagger_ui_renders_offline(seeded: Seeded) -> None:
    text, problems = _open_offline(seeded, "/docs", ".opblock-summary", "docs_swagger.png")
    assert "Query events (newest first, or in ingest order with after=N)" in text
    assert "/api/v1/violations/{event_id}/review" in text
    assert problems == [], problems  # nothing was fetched from outside, no script error


def test_redoc_renders_offline(seeded: Seeded) -> None:
    ready = "[role=menuitem], li[data-item-id]"
    text, problems = _open_offline(seeded, "/redoc", ready, "redoc.png")
    assert "Query events (newest first, or in ingest order with after=N)" in text
    assert "One violation" in text
    assert [p for p in problems if p != REDOC_LOGO] == [], problems
