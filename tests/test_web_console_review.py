"""Issue 15, reviewer: the queue and the violation page as a reviewer uses them, in Chromium.

* queue: camera names (not ids), the violation time, the pending count, camera and date pickers,
  keyboard selection (J/K, arrows, Enter);
* violation page: click-to-zoom on every image (wheel, drag, Esc), frame stepping at the clip's
  frame rate and speed control, confirm → the next pending item opens, reject with a preset
  reason, a confirmed item offers no second confirm;
* batch confirm of ticked rows (one audit line each; incomplete evidence is left out);
* the console routes (reject-reason presets per unit, pending count).

Screenshots at 1366×768 and 1920×1080 go to ``tests/artifacts/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from sharpeyes.api.rest.app import create_app
from sharpeyes.api.rest.routes.console import ConsoleConfig, RejectReason
from sharpeyes.api.rest.service import ServiceFacade
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.evidence.facts import violation_time_ms
from sharpeyes.pipeline.evidence.images import beijing_time_text
from sharpeyes.pipeline.types import Event
from tests._api_fixtures import (
    Seeded,
    api_settings,
    live_server,
    make_event,
    seed_service,
    write_evidence,
)
from tests.test_web_console import ARGS, ARTIFACTS, CHROMIUM, _playwright

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CAM1 = ("人民路-解放路 东向", "杭州市上城区人民路与解放路交叉口")
CAM2 = ("延安路-庆春路 北向", "杭州市上城区延安路与庆春路交叉口")
SIZES = {"1366": (1366, 768), "1920": (1920, 1080)}


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    for cam, (name, place) in (("cam1", CAM1), ("cam2", CAM2)):
        cfg = CameraConfig(id=cam, name=name, location=place, url=f"rtsp://192.0.2.10/{cam}")
        s.service.cameras.create(cfg)
    other = make_event(40, camera="cam2", violation=True, plate="浙A00001")
    s.service.ingest([other])
    rel = write_evidence(s.files_root, other)
    s.service.events.set_evidence(other.event_id, rel, f"{rel}/record.json")
    s.violations.append(other)
    yield s
    s.service.db.close()


def console_app(seeded: Seeded, config: ConsoleConfig | None = None) -> FastAPI:
    """The API as ``create_app`` mounts it, with the console's reasons of ``config``."""
    return create_app(api_settings(), seeded.service, console=config)


def newest_first(seeded: Seeded) -> list[Event]:
    return sorted(seeded.violations, key=lambda e: (-e.first_seen_ms, e.event_id))


def _browser(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)


def _login(browser: Any, base: str, token: str, size: str = "1366") -> tuple[Any, list[str]]:
    w, h = SIZES[size]
    context = browser.new_context(  # bypass_csp: wait_for_function(str) needs eval
        viewport={"width": w, "height": h}, locale="zh-CN", bypass_csp=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#queue-table[aria-busy=false] tbody tr.sel[data-id]")
    return page, errors


def _selected(page: Any) -> str:
    return str(page.get_attribute("#queue-table tbody tr.sel", "data-id"))


def _hash_is(page: Any, event_id: str) -> None:
    page.wait_for_function(f"location.hash === '#/violation/{event_id}'")
    page.wait_for_function(
        f"document.querySelector('#meta') && "
        f"document.querySelector('#meta').textContent.includes('{event_id}')"
    )


def _no_hscroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_queue_names_times_count_pickers_and_keys(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    order = newest_first(seeded)
    with live_server(console_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors = _login(browser, base, seeded.tokens["reviewer"])
            rows = page.locator("#queue-table tbody tr[data-id]")
            expect(rows).to_have_count(len(order))
            expect(page.locator("#pending-count")).to_have_text(str(len(order)))
            # the place a reviewer knows, and the stop-line crossing time, on every row
            for i, ev in enumerate(order):
                row = rows.nth(i)
                assert row.get_attribute("data-id") == ev.event_id
                name, place = CAM1 if ev.stream_id == "cam1" else CAM2
                cam_cell = row.locator("td.cam").inner_text()
                assert cam_cell == f"{name} · {place}" and ev.stream_id not in cam_cell
                when = violation_time_ms(ev)
                assert when is not None and when != ev.first_seen_ms
                assert row.locator("td.time").inner_text() == beijing_time_text(when)
                assert row.locator("td").nth(6).inner_text() == "2"  # lane
            page.wait_for_function(
                "[...document.querySelectorAll('td.thumb img')].every((i) => i.naturalWidth > 0)"
            )
            # camera picker lists the cameras by name
            options = page.locator("#f-camera option").all_inner_texts()
            assert options == ["全部摄像机", f"{CAM1[0]} · {CAM1[1]}", f"{CAM2[0]} · {CAM2[1]}"]
            assert page.locator("#filters input[name=camera]").count() == 0  # no id text box
            # keyboard: first row selected; j/↓ down, k/↑ up, Enter opens
            assert _selected(page) == order[0].event_id
            page.keyboard.press("j")
            page.keyboard.press("ArrowDown")
            assert _selected(page) == order[2].event_id
            page.keyboard.press("k")
            assert _selected(page) == order[1].event_id
            for size, (w, h) in SIZES.items():
                page.set_viewport_size({"width": w, "height": h})
                page.wait_for_timeout(200)
                page.screenshot(path=str(ARTIFACTS / f"review_queue_{size}.png"))
                assert _no_hscroll(page), size
            page.keyboard.press("Enter")
            _hash_is(page, order[1].event_id)
            page.keyboard.press("Escape")  # back to the queue, same row still selected
            page.wait_for_selector("#view-queue:not([hidden])")
            page.wait_for_selector("#queue-table[aria-busy=false]")
            assert _selected(page) == order[1].event_id

            # camera picker: cam2 only
            page.select_option("#f-camera", "cam2")
            page.click("#filters button[type=submit]")
            expect(rows).to_have_count(1)
            assert rows.first.get_attribute("data-id") == seeded.violations[-1].event_id
            expect(page.locator("#pending-count")).to_have_text("1")
            # date range: the events are on 2025-11-29 (Beijing time)
            page.select_option("#f-camera", "")
            page.fill("#f-from", "2025-11-30")
            page.click("#filters button[type=submit]")
            expect(page.locator("#queue-table tbody")).to_contain_text("没有记录")
            expect(page.locator("#pending-count")).to_have_text("0")
            page.fill("#f-from", "2025-11-29")
            page.fill("#f-to", "2025-11-29")
            page.click("#filters button[type=submit]")
            expect(rows).to_have_count(len(order))
            page.fill("#f-to", "2025-11-28")
            page.click("#filters button[type=submit]")
            expect(page.locator("#pending-count")).to_have_text("0")
            page.click("#lang")
            expect(page.locator("#view-queue th").nth(2)).to_have_text("Violation time")
            assert not errors, errors
        finally:
            browser.close()


def _wait_images(page: Any) -> None:
    for sel in ("#composite", "#img1", "#img2", "#img3", "#plate-img"):
        page.wait_for_function(
            f"document.querySelector('{sel}').complete && "
            f"document.querySelector('{sel}').naturalWidth > 0"
        )


def _lightbox(page: Any) -> None:
    """Every evidence image zooms; wheel zooms in at the cursor, drag pans, Esc closes."""
    from playwright.sync_api import expect

    url = page.evaluate("location.hash")
    for sel in ("#composite", "#img1", "#img2", "#img3", "#plate-img"):
        page.click(sel)
        expect(page.locator("#lightbox")).to_be_visible()
        src = page.evaluate(f"document.querySelector('{sel}').src")
        assert page.evaluate("document.querySelector('#lb-img').src") == src
        page.keyboard.press("Escape")
        expect(page.locator("#lightbox")).to_be_hidden()
    assert page.evaluate("location.hash") == url  # Esc closed the zoom, not the page

    page.click("#plate-img")
    page.wait_for_function("document.querySelector('#lb-img').naturalWidth > 0")
    box0 = page.locator("#lb-img").bounding_box()
    stage = page.locator("#lb-stage").bounding_box()
    cx, cy = stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2
    page.mouse.move(cx, cy)
    for _ in range(3):
        page.mouse.wheel(0, -120)
    grown = (
        f"document.querySelector('#lb-img').getBoundingClientRect().width > {box0['width'] * 1.9}"
    )
    page.wait_for_function(grown)
    box1 = page.locator("#lb-img").bounding_box()
    assert box1["width"] == pytest.approx(box0["width"] * 1.25**3, rel=0.02)
    # zoomed about the cursor: the image point under it stays under it
    fx0 = (cx - box0["x"]) / box0["width"]
    fx1 = (cx - box1["x"]) / box1["width"]
    assert fx1 == pytest.approx(fx0, abs=0.01)
    scale = page.inner_text("#lb-scale")
    assert re.fullmatch(r"\d+%", scale) and int(scale[:-1]) > 100
    page.mouse.down()
    page.mouse.move(cx + 150, cy + 60, steps=5)
    page.mouse.up()
    box2 = page.locator("#lb-img").bounding_box()
    assert box2["x"] - box1["x"] == pytest.approx(150, abs=2)
    assert box2["y"] - box1["y"] == pytest.approx(60, abs=2)
    page.keyboard.press("0")  # fit again
    assert page.locator("#lb-img").bounding_box()["width"] == pytest.approx(box0["width"], rel=0.01)
    page.keyboard.press("+")
    w = page.locator("#lb-img").bounding_box()["width"]
    assert w == pytest.approx(box0["width"] * 1.25, rel=0.02)


def _player(page: Any) -> None:
    """Frame stepping at the clip's 12 fps (read from the MP4), speed 0.25×–2×."""
    page.wait_for_function("document.querySelector('#clip').readyState >= 2", timeout=10000)
    page.wait_for_function("document.querySelector('#frame-pos').textContent.includes('12 fps')")
    t = "document.querySelector('#clip').currentTime"
    page.keyboard.press(".")
    page.wait_for_function("document.querySelector('#frame-pos').textContent.includes('帧 2/24')")
    page.keyboard.press(".")
    page.click("#frame-fwd")
    page.wait_for_function("document.querySelector('#frame-pos').textContent.includes('帧 4/24')")
    assert page.evaluate(t) == pytest.approx(3 / 12, abs=0.002)
    page.keyboard.press(",")
    page.wait_for_function("document.querySelector('#frame-pos').textContent.includes('帧 3/24')")
    page.click("#frame-back")
    page.wait_for_function("document.querySelector('#frame-pos').textContent.includes('帧 2/24')")
    assert page.evaluate(t) == pytest.approx(1 / 12, abs=0.002)
    assert page.evaluate("document.querySelector('#clip').paused")
    rate = "document.querySelector('#clip').playbackRate"
    page.select_option("#speed", "0.25")
    assert page.evaluate(rate) == 0.25
    page.keyboard.press("]")
    assert page.evaluate(rate) == 0.5 and page.input_value("#speed") == "0.5"
    page.select_option("#speed", "2")
    page.keyboard.press("]")
    assert page.evaluate(rate) == 2  # the top speed
    page.select_option("#speed", "1")


def test_violation_page_zoom_player_confirm_advance_reject(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    from playwright.sync_api import expect

    order = newest_first(seeded)
    first, second, third = order[0], order[1], order[2]
    with live_server(console_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors = _login(browser, base, seeded.tokens["reviewer"])
            page.keyboard.press("Enter")
            _hash_is(page, first.event_id)
            _wait_images(page)
            _lightbox(page)
            page.screenshot(path=str(ARTIFACTS / "review_lightbox_1366.png"))
            page.keyboard.press("Escape")
            _player(page)
            for size in ("1920", "1366"):
                w, h = SIZES[size]
                page.set_viewport_size({"width": w, "height": h})
                page.wait_for_timeout(200)
                page.screenshot(path=str(ARTIFACTS / f"review_violation_{size}.png"))
                assert _no_hscroll(page), size
            # the preset reasons, Chinese first
            presets = page.locator("#reason-preset option").all_inner_texts()
            assert presets == [
                "— 选择理由 —",
                "1. 号牌不清",
                "2. 非违法",
                "3. 重复",
                "4. 设备故障",
                "5. 其他",
            ]
            # a corrected plate must follow the plate grammar
            page.fill("#corrected", "沪AB12")
            page.keyboard.press("Enter")
            expect(page.locator("#review-msg")).to_have_text(
                "号牌格式不正确（如 京A12345、粤B12345D）"
            )
            assert first.plate is not None and first.plate.text == "浙A00001"
            page.fill("#corrected", "浙a00002")
            page.locator("#corrected").blur()
            # confirm → the next pending item opens by itself
            page.keyboard.press("c")
            _hash_is(page, second.event_id)
            expect(page.locator("#prev-msg")).to_have_text(
                "✓ 上一条（浙A00002）已确认 · 当前为下一条待审核"
            )
            expect(page.locator("#review-msg")).to_have_text("")
            # reject with a preset reason, chosen by its number
            page.keyboard.press("1")
            assert page.input_value("#reason-preset") == "plate_unreadable"
            page.keyboard.press("r")
            _hash_is(page, third.event_id)
            expect(page.locator("#prev-msg")).to_contain_text("上一条")
            expect(page.locator("#prev-msg")).to_contain_text("已驳回")
            expect(page.locator("#review-msg")).to_have_text("")
            # 其他 needs text
            page.keyboard.press("5")
            expect(page.locator("#reason")).to_be_focused()
            page.locator("#reason").blur()
            page.keyboard.press("r")
            expect(page.locator("#review-msg")).to_have_text("请填写补充说明")
            page.fill("#reason", "车辆为执行任务的救护车")
            page.keyboard.press("Enter")
            _hash_is(page, order[3].event_id)  # rejected: the next pending item opens
            expect(page.locator("#prev-msg")).to_contain_text("已驳回")

            # a confirmed item offers no second confirm, by button or key
            page.goto(f"{base}/console/#/violation/{first.event_id}")
            page.wait_for_function("document.querySelector('#meta').textContent.includes('已确认')")
            expect(page.locator("#confirm")).to_be_disabled()
            page.keyboard.press("c")
            expect(page.locator("#review-msg")).to_have_text("已确认，不能重复确认")
            expect(page.locator("#audit li")).to_have_count(1)
            assert not errors, errors
        finally:
            browser.close()

    svc = seeded.service
    trail = svc.audit_trail(first.event_id)
    assert [a.action for a in trail] == ["confirm"]
    assert (trail[0].before["plate_text"], trail[0].after["plate_text"]) == ("浙A00001", "浙A00002")
    trail = svc.audit_trail(second.event_id)
    assert [(a.action, a.reason) for a in trail] == [("reject", "号牌不清")]
    trail = svc.audit_trail(third.event_id)
    assert [(a.action, a.reason) for a in trail] == [("reject", "其他：车辆为执行任务的救护车")]
    for ev, state in ((first, "confirmed"), (second, "rejected"), (third, "rejected")):
        review = svc.get_event(ev.event_id, violation=True).review
        assert review is not None and review.state == state


def test_batch_confirm_with_custom_reasons(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    from playwright.sync_api import expect

    order = newest_first(seeded)
    incomplete = order[1]
    rec = seeded.files_root / "evidence" / incomplete.stream_id / incomplete.event_id
    doc = json.loads((rec / "record.json").read_text(encoding="utf-8"))
    doc.update(complete=False, incomplete=[{"part": "plate", "reason": "unreadable"}])
    (rec / "record.json").write_text(json.dumps(doc), encoding="utf-8")
    reasons = (
        RejectReason(code="blocked", zh="号牌遮挡", en="Plate covered"),
        RejectReason(code="other", zh="其他", en="Other", needs_text=True),
    )
    app = console_app(seeded, ConsoleConfig(reject_reasons=reasons))
    with live_server(app) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors = _login(browser, base, seeded.tokens["reviewer"])
            expect(page.locator("#batch-confirm")).to_be_disabled()
            page.keyboard.press("x")  # tick the selected (first) row
            page.keyboard.press("j")
            page.keyboard.press("x")
            page.locator("#queue-table tbody tr[data-id] .pick").nth(2).check()
            expect(page.locator("#sel-count")).to_have_text("3")
            page.click("#batch-confirm")
            expect(page.locator("#batch-bar")).to_contain_text("确认选中的 3 条违法？")
            page.screenshot(path=str(ARTIFACTS / "review_batch_1366.png"))
            page.click("#batch-yes")
            expect(page.locator("#batch-msg")).to_have_text(
                "已确认 2 条 · 1 条证据不完整或已审核，需逐条审核"
            )
            # pending queue: the two confirmed are gone, the incomplete one stays
            rows = page.locator("#queue-table tbody tr[data-id]")
            expect(rows).to_have_count(len(order) - 2)
            expect(page.locator("#pending-count")).to_have_text(str(len(order) - 2))
            assert rows.first.get_attribute("data-id") == incomplete.event_id
            page.keyboard.press("Enter")
            _hash_is(page, incomplete.event_id)
            presets = page.locator("#reason-preset option").all_inner_texts()
            assert presets == ["— 选择理由 —", "1. 号牌遮挡", "2. 其他"]
            assert not errors, errors
        finally:
            browser.close()
    svc = seeded.service
    for ev in (order[0], order[2]):
        trail = svc.audit_trail(ev.event_id)
        assert len(trail) == 1 and trail[0].action == "confirm"
        assert trail[0].actor.startswith("reviewer-user")
    assert svc.audit_trail(incomplete.event_id) == []


def test_console_routes(seeded: Seeded) -> None:
    viewer = seeded.auth("viewer")
    with TestClient(console_app(seeded)) as c:
        assert c.get("/api/v1/console/config").status_code == 401
        body = c.get("/api/v1/console/config", headers=viewer).json()
        assert [r["zh"] for r in body["reject_reasons"]] == [
            "号牌不清",
            "非违法",
            "重复",
            "设备故障",
            "其他",
        ]
        assert [r["needs_text"] for r in body["reject_reasons"]] == [False] * 4 + [True]
        assert re.fullmatch(body["plate_pattern"], "粤B12345D")
        assert not re.fullmatch(body["plate_pattern"], "沪AB12")
        summary = c.get("/api/v1/console/queue-summary", headers=viewer).json()
        assert summary == {"pending": len(seeded.violations), "capped": False}
        r = c.get(
            "/api/v1/console/queue-summary?camera=cam2&review_state=confirmed", headers=viewer
        )
        assert r.json()["pending"] == 1  # review_state is ignored: this counts pending

    # a facade that is not the store's (no COUNT(*)): the route pages through it, same answer
    class Proxy:
        def __getattr__(self, name: str) -> Any:
            return getattr(seeded.service, name)

    app = create_app(api_settings(), cast("ServiceFacade", Proxy()))
    with TestClient(app) as c:
        summary = c.get("/api/v1/console/queue-summary?camera=cam1", headers=viewer).json()
        assert summary["pending"] == len(seeded.violations) - 1
    with pytest.raises(ValidationError, match="used twice: other"):
        ConsoleConfig(
            reject_reasons=[
                RejectReason(code="other", zh="其他", en="Other"),
                RejectReason(code="other", zh="别的", en="Else"),
            ]
        )


def test_stale_page_shows_the_services_refusal(seeded: Seeded) -> None:
    """Another reviewer confirmed the item while this page was open: the service's 409 (what
    it answers once a second confirm is refused; emulated here by intercepting the POST) is
    shown in words, the page reloads the item and no longer offers confirm."""
    sync_playwright = _playwright()
    from playwright.sync_api import expect

    first = newest_first(seeded)[0]
    with live_server(console_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors = _login(browser, base, seeded.tokens["reviewer"])
            page.keyboard.press("Enter")
            _hash_is(page, first.event_id)
            expect(page.locator("#confirm")).to_be_enabled()
            seeded.service.review(first.event_id, "other-reviewer", "confirm", None, None)
            refused = {"detail": f"violation {first.event_id} is already confirmed"}
            page.route(
                "**/review",
                lambda route: route.fulfill(status=409, json=refused),
            )
            page.keyboard.press("c")
            expect(page.locator("#review-msg")).to_have_text("已确认，不能重复确认")
            expect(page.locator("#confirm")).to_be_disabled()
            expect(page.locator("#audit li")).to_have_count(1)
            expect(page.locator("#audit")).to_contain_text("other-reviewer")
            assert page.evaluate("location.hash") == f"#/violation/{first.event_id}"
            assert not errors, errors
        finally:
            browser.close()


def test_api_refuses_a_second_confirm(seeded: Seeded) -> None:
    target = seeded.violations[0].event_id
    with TestClient(console_app(seeded)) as c:
        url = f"/api/v1/violations/{target}/review"
        body = {"action": "confirm"}
        assert c.post(url, json=body, headers=seeded.auth("reviewer")).status_code == 200
        again = c.post(url, json=body, headers=seeded.auth("reviewer"))
        trail = seeded.service.audit_trail(target)
        assert [a.action for a in trail] == ["confirm"]
        assert again.status_code == 409
