"""Issue 14 item 12: security headers on the console and the API; the console needs no inline
script or style, so a strict CSP does not break it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sharpeyes.api.rest.app import WEB_DIR
from tests._api_fixtures import Seeded, make_app, seed_service


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[Seeded, TestClient]]:
    s = seed_service(str(tmp_path / "events.db"), tmp_path)
    with TestClient(make_app(s, console=True)) as c:
        yield s, c
    s.service.db.close()


def test_security_headers_everywhere(client: tuple[Seeded, TestClient]) -> None:
    seeded, c = client
    for path, headers in (
        ("/console/", {}),
        ("/console/app.js", {}),
        ("/api/v1/events", seeded.auth("viewer")),
        ("/api/v1/events", {}),  # 401 too
        ("/healthz", {}),
    ):
        r = c.get(path, headers=headers)
        csp = r.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp, path
        assert r.headers.get("x-content-type-options") == "nosniff", path
        assert r.headers.get("x-frame-options") == "DENY", path
        assert r.headers.get("referrer-policy") == "no-referrer", path


def test_console_has_no_inline_script_or_style() -> None:
    html = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    for m in re.finditer(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I):
        assert "src=" in m.group(1) and not m.group(2).strip(), m.group(0)[:80]
    assert "<style" not in html.lower() and " style=" not in html.lower()
    assert not re.search(r"\son[a-z]+\s*=", html, re.I)  # no inline event handlers
    for js in WEB_DIR.glob("*.js"):
        text = js.read_text(encoding="utf-8")
        assert "eval(" not in text and "new Function(" not in text, js.name
