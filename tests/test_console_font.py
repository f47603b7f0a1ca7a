"""The console's CJK web font: it holds every character of the pages, stays small, carries its
own name and licence — and in Chromium on a client *without* CJK fonts (fontconfig limited to
DejaVu) the UI's Chinese is drawn from it, while without it the same text would be tofu.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._api_fixtures import Seeded, live_server, make_app, seed_service
from tests.conftest import need

WEB = Path(__file__).resolve().parents[1] / "api" / "rest" / "web"
FONT = WEB / "fonts" / "console-cjk.woff2"
FAMILY = "sharpeyes Console CJK"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


CONSOLE_PAGES = ("index.html", "app.js", "i18n.js", "media.js", "style.css")
# the 标定图 problems' Chinese texts (message_zh) come from this module through the API
API_TEXTS = (WEB.parents[2] / "pipeline" / "geometry_check.py",)


def _page_chars() -> set[str]:
    """Every non-ASCII character of the review console and of the Chinese texts the API gives
    it to show (the script also takes other pages)."""
    import ast

    chars: set[str] = set()
    for name in CONSOLE_PAGES:
        chars |= {c for c in (WEB / name).read_text(encoding="utf-8") if ord(c) > 127}
    for module in API_TEXTS:
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                chars |= {c for c in node.value if ord(c) > 127}
    return {c for c in chars if c.isprintable() and not c.isspace()}


def test_font_holds_every_character_of_the_pages() -> None:
    pytest.importorskip("brotli", reason="WOFF2 needs brotli")
    from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

    font = TTFont(FONT)
    cmap = font.getBestCmap()
    missing = sorted(c for c in _page_chars() if ord(c) not in cmap)
    assert not missing, f"run scripts/make_console_font.py: missing {''.join(missing)}"
    assert all(ord(c) in cmap for c in "京沪粤新藏学警港澳挂领")  # every plate province/suffix
    assert not any(cp < 128 for cp in cmap)  # Latin stays with the next fonts
    assert FONT.stat().st_size < 150 * 1024
    assert font["name"].getDebugName(1) == FAMILY  # a modified OFL font is renamed
    assert "SIL OPEN FONT LICENSE Version 1.1" in (FONT.parent / "OFL.txt").read_text()
    first = re.search(r'^body \{ font: [^"]*"([^"]+)"', (WEB / "style.css").read_text(), re.M)
    assert first is not None and first.group(1) == FAMILY  # first in the stack


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, violations=2, passes=0)
    yield s
    s.service.db.close()


def _fonts_of(cdp: Any, root: int, selector: str) -> dict[str, int]:
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    assert node, selector
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    return {f["familyName"]: int(f["glyphCount"]) for f in fonts}


@pytest.mark.integration
@pytest.mark.browser
def test_no_tofu_without_cjk_fonts(seeded: Seeded, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed")
    need(CHROMIUM.is_file() or shutil.which("chromium") is not None, "chromium not installed")
    need(DEJAVU.is_dir(), "fonts-dejavu-core not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    conf = tmp_path / "fonts.conf"  # a client whose only fonts are DejaVu (no CJK at all)
    conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        f"<dir>{DEJAVU}</dir><cachedir>{tmp_path / 'fc-cache'}</cachedir></fontconfig>"
    )
    env: dict[str, str | float | bool] = {"FONTCONFIG_FILE": str(conf), "HOME": str(tmp_path)}
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS, env=env
        )
        try:
            seen = {}
            for with_font in (True, False):
                context = browser.new_context(locale="zh-CN")
                page = context.new_page()
                if not with_font:  # the control: the same page without the web font
                    page.route("**/fonts/*.woff2", lambda route: route.abort())
                page.goto(f"{base}/")
                page.wait_for_selector("#username")
                page.evaluate("document.fonts.ready")
                page.wait_for_timeout(200)
                cdp = context.new_cdp_session(page)
                cdp.send("DOM.enable")
                cdp.send("CSS.enable")
                root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
                seen[with_font] = {
                    sel: _fonts_of(cdp, root, sel)
                    for sel in ("h1", "#user-login-form label span", "button.primary", ".or span")
                }
                if with_font:
                    page.screenshot(path=str(ARTIFACTS / "console_login_no_cjk_fonts.png"))
                    page.fill("#token", seeded.tokens["reviewer"])
                    page.click("#login-form button[type=submit]")
                    page.wait_for_selector("#queue-table tbody tr[data-id] td.plate")
                    plate = _fonts_of(cdp, root, "#queue-table tbody tr[data-id] td.plate")
                    assert plate.get(FAMILY) == 1, plate  # the province, e.g. 京
                context.close()
        finally:
            browser.close()
    for sel, fonts in seen[True].items():
        assert FAMILY in fonts, (sel, fonts)
        others = set(fonts) - {FAMILY}
        assert all(f.startswith("DejaVu") for f in others), (sel, fonts)  # spaces, Latin
    assert seen[True]["h1"] == {FAMILY: 5}  # 登录审核台: every glyph from the web font
    assert FAMILY not in seen[False]["h1"]  # the control had no CJK font to draw with
