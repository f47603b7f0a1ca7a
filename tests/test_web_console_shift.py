"""The review console against what a reviewer's first shift found, in headless Chromium.

* 标定图: the problems in Chinese (the API's ``message_zh``) in the Chinese console, the English
  ``message`` where a problem has none, English in the English console;
* the violation page at 1366x768 and 1920x1080: the facts to check against the pictures (the
  violation time, the review state, the lane, the signal and how long it had been red) in view
  beside the plate without scrolling, with confirm and reject;
* keyboard: C on an incomplete record asks for the acknowledgement and focuses it; Space ticks
  it (it played the clip) and C then confirms;
* the queue marks records whose evidence is incomplete; 今天 filters today's violations; after
  the last pending item of the list the first one still pending opens;
* a confirmed record can be exported (the de-identified ZIP) from its page; a failed export says
  why.

Screenshots go to ``tests/artifacts/shift_*.png``.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from sharpeyes.api.rest.app import create_app
from sharpeyes.api.rest.auth import Role
from sharpeyes.api.rest.routes.export import DeidProvider
from sharpeyes.pipeline import clock
from sharpeyes.pipeline.evidence.deid import DeidDetectors, Found
from sharpeyes.pipeline.evidence.facts import violation_time_ms
from sharpeyes.pipeline.evidence.images import beijing_time_text
from sharpeyes.pipeline.types import ImageBGR
from tests._api_fixtures import (
    Seeded,
    api_settings,
    live_server,
    make_app,
    make_event,
    seed_service,
)
from tests.test_web_console import ARGS, ARTIFACTS, CHROMIUM, _playwright

pytestmark = [pytest.mark.integration, pytest.mark.browser]

INCOMPLETE = [{"part": "plate", "reason": "plate unreadable in every evidence image"}]


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    yield s
    s.service.db.close()


def _browser(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)


def _page(browser: Any, base: str, size: tuple[int, int] = (1366, 768)) -> tuple[Any, list[str]]:
    context = browser.new_context(  # bypass_csp: wait_for_function(str) needs eval
        viewport={"width": size[0], "height": size[1]}, locale="zh-CN", bypass_csp=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/")
    return page, errors


def _login(page: Any, token: str) -> None:
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#queue-table[aria-busy=false] tbody tr.sel[data-id]")


def _open(page: Any, event_id: str) -> None:
    page.evaluate(f"location.hash = '#/violation/{event_id}'")
    page.wait_for_function(f"document.querySelector('#meta').textContent.includes('{event_id}')")


def _mark_incomplete(seeded: Seeded, index: int, parts: list[dict[str, str]] = INCOMPLETE) -> None:
    ev = seeded.violations[index]
    rec = seeded.files_root / "evidence" / ev.stream_id / ev.event_id / "record.json"
    doc = json.loads(rec.read_text(encoding="utf-8"))
    doc.update(complete=False, incomplete=parts)
    rec.write_text(json.dumps(doc), encoding="utf-8")


def _in_view(page: Any, sel: str) -> bool:
    box = page.locator(sel).bounding_box()
    vp = page.viewport_size
    return bool(
        box is not None
        and box["width"] > 0
        and box["y"] >= 0
        and box["y"] + box["height"] <= vp["height"]
        and box["x"] + box["width"] <= vp["width"]
    )


# --- 标定图: problems in the console's language ---------------------------------------------------

CAMERA = {
    "id": "cam1",
    "name": "人民路口",
    "location": "人民路与解放路交叉口",
    "intersection": {"approaches": [{"id": "south", "lanes": [{"id": "s1"}, {"id": "s2"}]}]},
}
PROBLEMS: list[dict[str, str]] = [
    {
        "key": "intersection.approaches.0.lanes.1.travel",
        "message": "the travel arrow runs backwards across the stop line",
        "message_zh": "行驶方向箭头反向穿过停止线",
    },
    {"key": "intersection.approaches.0.stop_line", "message": "the stop line is too short"},
    {
        "key": "intersection.approaches.0.lanes.0.number",
        "message": "lane numbers out of GA/T order",
        "message_zh": "",
    },
]
REPORT = {
    "camera_id": "cam1",
    "configured": True,
    "frame_source": "none",
    "frame_time_ms": None,
    "frame_size": [1280, 720],
    "problems": PROBLEMS,
    "key_points": [],
}


def _png() -> bytes:
    ok, buf = cv2.imencode(".png", np.full((72, 128, 3), 90, np.uint8))
    assert ok
    return bytes(buf.tobytes())


def _serve_geometry(page: Any) -> None:
    """The camera routes as a service with the geometry API answers (another module's)."""
    png = _png()

    def handle(route: Any) -> None:
        path = route.request.url.split("?")[0]
        if path.endswith("/geometry.png"):
            route.fulfill(status=200, content_type="image/png", body=png)
        elif path.endswith("/geometry"):
            route.fulfill(status=200, content_type="application/json", body=json.dumps(REPORT))
        elif path.endswith("/cameras"):
            route.fulfill(
                status=200, content_type="application/json", body=json.dumps({"items": [CAMERA]})
            )
        else:
            route.fulfill(status=200, content_type="application/json", body=json.dumps(CAMERA))

    page.route(re.compile(r".*/api/v1/cameras(/cam1(/geometry(\.png)?)?)?(\?.*)?$"), handle)


def _problems(page: Any) -> list[tuple[str, str, str]]:
    return [
        (str(r[0]), str(r[1]), str(r[2]))
        for r in page.evaluate(
            "[...document.querySelectorAll('#geo-problems li .gmsg')]"
            ".map((m) => [m.textContent, m.lang, m.title])"
        )
    ]


def test_geometry_problems_in_chinese_with_english_fallback(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    ARTIFACTS.mkdir(exist_ok=True)
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors = _page(browser, base)
            _serve_geometry(page)
            _login(page, seeded.tokens["viewer"])
            page.evaluate("location.hash = '#/geometry/cam1'")
            page.wait_for_function("document.querySelectorAll('#geo-problems li').length === 3")
            page.wait_for_selector("#geo-img:not([hidden])")
            rows = _problems(page)
            # the Chinese text where the API gives one; lang says which language it is
            assert rows[0] == ("行驶方向箭头反向穿过停止线", "zh-CN", ""), rows[0]
            # none (or empty): the English message, marked as English for the reader
            assert rows[1] == ("the stop line is too short", "en", "说明为英文（配置项见左侧）")
            assert rows[2][:2] == ("lane numbers out of GA/T order", "en")
            assert "进口道 south · 车道 s2 · 行驶方向箭头" in page.inner_text("#geo-problems")
            page.screenshot(path=str(ARTIFACTS / "shift_geometry_zh_1366.png"))

            page.click("#lang")
            page.wait_for_function(
                "document.querySelector('#geo-problems li .gmsg') && "
                "document.querySelector('#geo-problems li .gmsg').lang === 'en'"
            )
            rows = _problems(page)
            assert [r[0] for r in rows] == [p["message"] for p in PROBLEMS]
            assert all(r[1] == "en" and r[2] == "" for r in rows)
            page.click("#lang")  # back to Chinese: the Chinese text again
            page.wait_for_function(
                "document.querySelector('#geo-problems li .gmsg').lang === 'zh-CN'"
            )
            assert _problems(page)[0][0] == "行驶方向箭头反向穿过停止线"
            assert not errors, errors
        finally:
            browser.close()


# --- the violation page: the facts in view --------------------------------------------------------


def test_violation_facts_in_view_beside_the_plate(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    ARTIFACTS.mkdir(exist_ok=True)
    target = seeded.violations[1]
    lost = {
        "part": "image_3",
        "reason": "the track was not detected for 1.7 s after the crossing: image 3 is its last "
        "view before that (a later one may be another)",
    }
    _mark_incomplete(seeded, 2, [*INCOMPLETE, lost])  # the common case: two parts to check
    when = violation_time_ms(target)
    assert when is not None
    stamp = beijing_time_text(when)
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            for size in ((1366, 768), (1920, 1080)):
                page, errors = _page(browser, base, size)
                _login(page, seeded.tokens["reviewer"])
                _open(page, target.event_id)
                page.wait_for_function("document.querySelector('#composite').naturalWidth > 0")
                # the violation time (the stop-line crossing) as the queue and the overlays say it
                assert page.inner_text("#f-when") == stamp
                state = "待审核" if size[0] == 1366 else "已确认"  # confirmed at 1366 below
                assert page.inner_text("#f-state") == state
                more = page.inner_text("#f-more")
                assert more == "车道 2 · 红灯已亮(s) 3.2", more
                for sel in ("#f-when", "#f-state", "#f-more", "#plate-text", "#confirm", "#reject"):
                    assert _in_view(page, sel), (size, sel)
                assert page.evaluate("document.querySelector('.side').scrollTop") == 0
                assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
                page.screenshot(path=str(ARTIFACTS / f"shift_violation_{size[0]}.png"))
                _open(page, seeded.violations[2].event_id)
                page.wait_for_selector("#incomplete:not([hidden])")
                for sel in ("#f-when", "#incomplete", "#ack-label", "#confirm", "#reject"):
                    assert _in_view(page, sel), (size, "incomplete", sel)
                page.screenshot(path=str(ARTIFACTS / f"shift_violation_incomplete_{size[0]}.png"))
                _open(page, target.event_id)
                if size[0] == 1366:
                    page.locator("#confirm").click()  # on to the next; back: 已确认 in view
                    page.wait_for_function(f"location.hash !== '#/violation/{target.event_id}'")
                    _open(page, target.event_id)
                    page.wait_for_function(
                        "document.querySelector('#f-state').textContent === '已确认'"
                    )
                    assert "st-confirmed" in (page.get_attribute("#f-state", "class") or "")
                    assert _in_view(page, "#f-state")
                    page.click("#lang")
                    page.wait_for_function(
                        "document.querySelector('#f-state').textContent === 'Confirmed'"
                    )
                    assert page.inner_text("#f-more") == "Lane 2 · Red for (s) 3.2"
                assert not errors, errors
                page.context.close()
        finally:
            browser.close()


# --- keyboard: the acknowledgement of an incomplete record ----------------------------------------


def test_space_ticks_the_acknowledgement_then_c_confirms(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    _mark_incomplete(seeded, 2)
    target = seeded.violations[2]
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors = _page(browser, base)
            _login(page, seeded.tokens["reviewer"])
            _open(page, target.event_id)
            page.wait_for_selector("#incomplete:not([hidden])")
            page.keyboard.press("c")
            assert page.inner_text("#review-msg") == "证据不完整：确认前请勾选已核实"
            assert page.evaluate("document.activeElement.id") == "ack-incomplete"
            page.keyboard.press(" ")
            assert page.is_checked("#ack-incomplete"), "Space did not tick the acknowledgement"
            assert page.evaluate("document.querySelector('#clip').paused")
            page.keyboard.press("c")
            page.wait_for_function(f"location.hash !== '#/violation/{target.event_id}'")
            assert not errors, errors
        finally:
            browser.close()
    stored = seeded.service.get_event(target.event_id, violation=True)
    assert stored.review is not None and stored.review.state == "confirmed"


# --- the queue: incomplete records marked, today, wrap to the first pending ----------------------


def test_queue_marks_incomplete_today_and_wraps(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    ARTIFACTS.mkdir(exist_ok=True)
    _mark_incomplete(seeded, 3)
    marked = seeded.violations[3].event_id
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors = _page(browser, base)
            _login(page, seeded.tokens["reviewer"])
            page.wait_for_selector(f"#queue-table tr[data-id='{marked}'] .incbadge")
            page.wait_for_timeout(300)  # every visible row's detail is in
            badges = page.evaluate(
                "[...document.querySelectorAll('#queue-table tr[data-incomplete]')]"
                ".map((r) => r.dataset.id)"
            )
            assert badges == [marked]
            assert page.inner_text(f"#queue-table tr[data-id='{marked}'] .incbadge") == "证据不完整"
            page.screenshot(path=str(ARTIFACTS / "shift_queue_1366.png"))

            # 今天: both dates are today's (Beijing) and the list is asked for that day only
            today = beijing_time_text(clock.now_ms())[:10]
            with page.expect_request(re.compile(r".*/api/v1/violations\?.*since=")) as req:
                page.click("#f-today")
            assert page.input_value("#f-from") == today == page.input_value("#f-to")
            assert f"since={today}T00%3A00%3A00%2B08%3A00" in req.value.url
            page.wait_for_selector("#queue-table[aria-busy=false]")
            assert page.inner_text("#queue-table tbody") == "没有记录"  # seeded in the past
            page.fill("#f-from", "")
            page.fill("#f-to", "")
            page.click("#filters button[type=submit]")
            page.wait_for_selector("#queue-table[aria-busy=false] tbody tr.sel[data-id]")

            # the last pending row confirmed: the first row still pending opens (not a dead end)
            ids = page.evaluate(
                "[...document.querySelectorAll('#queue-table tbody tr[data-id]')]"
                ".map((r) => r.dataset.id)"
            )
            last = ids[-1]
            assert last != marked
            _open(page, last)
            page.keyboard.press("c")
            page.wait_for_function(f"location.hash === '#/violation/{ids[0]}'")
            assert not errors, errors
        finally:
            browser.close()


# --- export of a confirmed record -----------------------------------------------------------------


class _NoFaces:
    def detect_faces(self, image: ImageBGR) -> list[Found]:
        return []


class _NoPlates:
    def detect_plates(self, image: ImageBGR) -> list[Found]:
        return []


def _stub_detectors() -> DeidDetectors:
    return DeidDetectors(faces=_NoFaces(), plates=_NoPlates())


def test_export_a_confirmed_record(seeded: Seeded, tmp_path: Path) -> None:
    sync_playwright = _playwright()
    confirmed, pending = seeded.violations[0], seeded.violations[1]
    seeded.service.review(confirmed.event_id, "reviewer-user (t)", "confirm", None, None)
    app = create_app(api_settings(), seeded.service, export_provider=DeidProvider(_stub_detectors))
    with live_server(app) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors = _page(browser, base)
            _login(page, seeded.tokens["reviewer"])
            _open(page, pending.event_id)
            assert page.locator("#export").is_hidden()  # pending: not exported from here
            _open(page, confirmed.event_id)
            assert page.locator("#export").is_visible()
            assert _in_view(page, "#export")
            # every action's label on one line (the export button made them wrap)
            heights = page.evaluate(
                "['#confirm', '#reject', '#next', '#export']"
                ".map((s) => document.querySelector(s).getBoundingClientRect().height)"
            )
            assert max(heights) < 40 and len(set(heights)) == 1, heights
            assert page.get_attribute("#export", "title") == "人脸和无关号牌已模糊；视频片段不导出"
            with page.expect_download() as dl:
                page.click("#export")
            download = dl.value
            assert download.suggested_filename == f"{confirmed.event_id}_deid.zip"
            saved = tmp_path / "export.zip"
            download.save_as(str(saved))
            with zipfile.ZipFile(io.BytesIO(saved.read_bytes())) as z:
                names = set(z.namelist())
            assert {"deid.json", "record.json"} <= names and "clip.mp4" not in names
            page.wait_for_function(
                "document.querySelector('#export-msg').textContent.startsWith('已导出')"
            )
            # a failing export says why, in place
            page.route(
                re.compile(r".*/export$"),
                lambda route: route.fulfill(
                    status=503,
                    content_type="application/json",
                    body=json.dumps({"detail": "de-identification models unavailable"}),
                ),
            )
            page.click("#export")
            page.wait_for_function(
                "document.querySelector('#export-msg').classList.contains('error')"
            )
            assert page.inner_text("#export-msg") == (
                "导出失败 (503: de-identification models unavailable)"
            )
            assert not errors, errors
        finally:
            browser.close()


def test_date_filter_is_a_beijing_day_whatever_the_service_zone(seeded: Seeded) -> None:
    """07:00 Beijing on 30 Nov is 23:00 UTC on 29 Nov: the 30th (the date the console shows)
    finds it on a service whose zone is UTC; the 29th does not."""
    sync_playwright = _playwright()
    early = make_event(60, violation=True, plate="京A60000", t_ms=1764457200000)  # 11-30 07:00+8
    seeded.service.ingest([early])
    with live_server(make_app(seeded, time_zone="UTC")) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors = _page(browser, base)
            _login(page, seeded.tokens["reviewer"])
            shown = page.inner_text(f"#queue-table tr[data-id='{early.event_id}'] td.time")
            assert shown.startswith("2025-11-30 07:00")
            for day, found in (("2025-11-30", True), ("2025-11-29", False)):
                page.fill("#f-from", day)
                page.fill("#f-to", day)
                page.click("#filters button[type=submit]")
                page.wait_for_selector("#queue-table[aria-busy=false]")
                page.wait_for_timeout(200)
                rows = page.locator(f"#queue-table tr[data-id='{early.event_id}']").count()
                assert rows == (1 if found else 0), day
            assert not errors, errors
        finally:
            browser.close()


def test_signal_chips_follow_the_language(seeded: Seeded) -> None:
    """Each image's signal chip (图1 红 3.0s) is said again in English when the language
    switches on the open record (it stayed Chinese)."""
    sync_playwright = _playwright()
    ev = seeded.violations[0]
    rec = seeded.files_root / "evidence" / ev.stream_id / ev.event_id / "record.json"
    doc = json.loads(rec.read_text(encoding="utf-8"))
    colours = (("red", 2.9), ("red", 3.2), ("green", 0.4))
    doc["images"] = [
        {
            "file": f"{i}.jpg",
            "signal_group": "main",
            "signal": {"color": c, "seconds_since_onset": s},
        }
        for i, (c, s) in enumerate(colours, start=1)
    ]
    rec.write_text(json.dumps(doc), encoding="utf-8")
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors = _page(browser, base)
            _login(page, seeded.tokens["reviewer"])
            _open(page, ev.event_id)
            page.wait_for_selector("#sig3:not([hidden])")
            chips = "['#sig1', '#sig2', '#sig3'].map((s) => document.querySelector(s).textContent)"
            assert page.evaluate(chips) == ["图1 红 2.9s", "图2 红 3.2s", "图3 绿 0.4s"]
            page.click("#lang")
            page.wait_for_function("document.querySelector('#f-state').textContent === 'Pending'")
            page.wait_for_timeout(300)
            assert page.evaluate(chips) == [
                "Image 1 Red 2.9s",
                "Image 2 Red 3.2s",
                "Image 3 Green 0.4s",
            ]
            assert not errors, errors
        finally:
            browser.close()


def test_the_last_loaded_item_goes_on_to_the_next_page(tmp_path: Path) -> None:
    """The queue loads 50 at a time: confirming the 50th goes on to the 51st (the next page is
    loaded), not back to the top or nowhere."""
    sync_playwright = _playwright()
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, violations=53, passes=0)
    try:
        with live_server(make_app(s)) as base, sync_playwright() as pw:  # type: ignore[operator]
            browser = _browser(pw)
            try:
                page, errors = _page(browser, base)
                _login(page, s.tokens["reviewer"])
                loaded = page.evaluate(
                    "[...document.querySelectorAll('#queue-table tbody tr[data-id]')]"
                    ".map((r) => r.dataset.id)"
                )
                assert len(loaded) == 50 and page.locator("#more").is_visible()
                rest = {e.event_id for e in s.violations} - set(loaded)
                _open(page, loaded[-1])
                page.keyboard.press("c")
                page.wait_for_function(f"location.hash !== '#/violation/{loaded[-1]}'")
                now = page.evaluate("location.hash").split("/")[-1]
                assert now in rest, "not the next page's first item"
                expected = max(
                    (e for e in s.violations if e.event_id in rest),
                    key=lambda e: violation_time_ms(e) or 0,
                )
                assert now == expected.event_id
                assert not errors, errors
            finally:
                browser.close()
    finally:
        s.service.db.close()


def test_an_expired_session_says_so_and_returns_to_the_item(seeded: Seeded) -> None:
    """The session ends mid-shift (expired, or logged out elsewhere): the login page says why
    (it was a silent jump), and logging in again reopens the item being reviewed."""
    sync_playwright = _playwright()
    import httpx

    sessions = seeded.service.tokens.sessions
    assert sessions is not None
    sessions.users.add("lisi", "审核 password 2", Role.REVIEWER, "李四")
    target = seeded.violations[2]
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors = _page(browser, base)
            page.fill("#username", "lisi")
            page.fill("#password", "审核 password 2")
            page.click("#user-login-form button[type=submit]")
            page.wait_for_selector("#queue-table[aria-busy=false] tbody tr.sel[data-id]")
            _open(page, target.event_id)
            secret = page.evaluate("sessionStorage.getItem('se_token')")
            r = httpx.post(
                f"{base}/api/v1/auth/logout", headers={"Authorization": f"Bearer {secret}"}
            )
            assert r.status_code in (200, 204), r.text
            page.keyboard.press("c")
            page.wait_for_selector("#view-login:not([hidden])")
            assert page.inner_text("#user-login-error") == (
                "登录已过期或已在别处退出，请重新登录（登录后回到当前记录）"
            )
            page.screenshot(path=str(ARTIFACTS / "shift_session_expired_1366.png"))
            stored = seeded.service.get_event(target.event_id, violation=True).review
            assert stored is not None and stored.state == "pending"
            page.fill("#username", "lisi")
            page.fill("#password", "审核 password 2")
            page.click("#user-login-form button[type=submit]")
            page.wait_for_function(
                f"document.querySelector('#meta').textContent.includes('{target.event_id}')"
            )
            assert page.evaluate("location.hash") == f"#/violation/{target.event_id}"
            assert page.inner_text("#user-login-error") == ""
            assert not errors, errors
        finally:
            browser.close()
