"""The review console against the defects a reviewer walkthrough found, in headless Chromium.

* 事件: newest first by event time, the stored history loaded even when live-feed rows came in
  while the reviewer was on another page, one row per event id;
* review messages: the previous item's outcome is not shown as the next item's; 识别号牌 is
  what was recognised, a correction is shown apart as 更正号牌; the audit line in Chinese, with
  the reviewer's display name and no raw ``null`` / state names / session id;
* 设备状态: Chinese state words for every state the API can report, real drops apart from the
  analysis-rate sampling (抽帧), the clock skew rounded, the URL cut with an ellipsis;
* the top bar at 1366x768: the live ticker ends (with "…") before the user label;
* queue thumbnails: only files the record lists (no 404), image 2 framed on the subject;
* 交通流量: a small per-camera chart of /api/v1/flow.

Screenshots at 1366x768 go to ``tests/artifacts/walkthrough_*.png``.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sharpeyes.api.rest.auth import Role
from sharpeyes.api.rest.schemas import StreamHealthPublic, StreamState
from sharpeyes.pipeline.flow import FlowRecord, flow_event
from tests._api_fixtures import T0, Seeded, live_server, make_app, make_event, seed_service
from tests.test_web_console import ARGS, ARTIFACTS, CHROMIUM, _playwright

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PASSWORD = "审核 password 1"


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    yield s
    s.service.db.close()


def _page(browser: Any, base: str) -> tuple[Any, list[str], list[str]]:
    context = browser.new_context(  # bypass_csp: wait_for_function(str) needs eval
        viewport={"width": 1366, "height": 768}, locale="zh-CN", bypass_csp=True
    )
    page = context.new_page()
    errors: list[str] = []
    missing: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
    page.goto(f"{base}/")
    return page, errors, missing


def _token_login(page: Any, token: str) -> None:
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#queue-table[aria-busy=false] tbody tr.sel[data-id]")


def _browser(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)


def _no_hscroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def _event_rows(page: Any) -> list[tuple[str, int]]:
    return [
        (str(r[0]), int(r[1]))
        for r in page.evaluate(
            "[...document.querySelectorAll('#events-table tbody tr[data-id]')]"
            ".map((r) => [r.dataset.id, Number(r.dataset.t)])"
        )
    ]


def test_events_newest_first_with_history_after_live_rows(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    stored = [*seeded.violations, *seeded.passes]
    # live events, out of time order (a camera's clock, a late upload): 50 s, 20 s, 90 s
    live = [
        make_event(300 + i, camera="cam2", plate=f"京L{i:05d}", t_ms=T0 + s * 1000)
        for i, s in enumerate((50, 20, 90))
    ]
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors, _ = _page(browser, base)
            _token_login(page, seeded.tokens["viewer"])
            page.wait_for_timeout(300)  # the feed is connected
            for ev in live:  # while the reviewer is on the queue
                seeded.service.ingest([ev])
                page.wait_for_timeout(150)
            page.wait_for_function("document.querySelectorAll('#ticker span').length >= 3")
            page.click("#nav a[href='#/events']")
            page.wait_for_function(
                f"document.querySelectorAll('#events-table tbody tr[data-id]').length === "
                f"{len(stored) + len(live)}"
            )
            rows = _event_rows(page)
            ids = [i for i, _ in rows]
            assert len(ids) == len(set(ids)), "an event shown twice"
            assert set(ids) == {e.event_id for e in [*stored, *live]}  # the history is there
            times = [t for _, t in rows]
            assert times == sorted(times, reverse=True), "not newest first"
            shown = page.locator("#events-table tbody tr[data-id] td.time").all_inner_texts()
            assert shown == sorted(shown, reverse=True)

            # a live event arriving on the page goes to its place by time, not to the top
            late = make_event(310, camera="cam1", plate="京L99999", t_ms=T0 + 30_000)
            seeded.service.ingest([late])
            page.wait_for_function(
                f"document.querySelector(\"#events-table tr[data-id='{late.event_id}']\")"
            )
            rows = _event_rows(page)
            assert len(rows) == len(stored) + len(live) + 1
            times = [t for _, t in rows]
            assert times == sorted(times, reverse=True)
            assert rows[0][0] != late.event_id
            # back to the queue and to the events again: nothing doubles
            page.click("#nav a[href='#/queue']")
            page.click("#nav a[href='#/events']")
            page.wait_for_timeout(300)
            assert len(_event_rows(page)) == len(rows)
            page.screenshot(path=str(ARTIFACTS / "walkthrough_events_1366.png"))
            assert not errors, errors
        finally:
            browser.close()


def test_review_messages_plates_and_audit_in_chinese(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    from playwright.sync_api import expect

    sessions = seeded.service.tokens.sessions
    assert sessions is not None
    sessions.users.add("zhangsan", PASSWORD, Role.REVIEWER, "张三")
    unread = seeded.violations[4]  # no plate read
    following = seeded.violations[3]  # the next (older) pending item
    assert unread.plate is None and following.plate is not None
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors, _ = _page(browser, base)
            page.fill("#username", "zhangsan")
            page.fill("#password", PASSWORD)
            page.click("#user-login-form button[type=submit]")
            page.wait_for_selector("#queue-table[aria-busy=false] tbody tr.sel[data-id]")
            page.click(f"#queue-table tr[data-id='{unread.event_id}']")
            page.wait_for_function(
                f"document.querySelector('#meta').textContent.includes('{unread.event_id}')"
            )
            expect(page.locator("#plate-text")).to_have_text("未识别")
            expect(page.locator("#plate-corrected")).to_be_hidden()
            # the signal group: its id, labelled as such (groups have no name)
            expect(page.locator("#meta")).to_contain_text("红（信号灯组 north_straight）")
            page.fill("#corrected", "京A12345")
            page.locator("#corrected").blur()
            page.keyboard.press("c")
            page.wait_for_function(f"location.hash === '#/violation/{following.event_id}'")
            page.wait_for_function(
                f"document.querySelector('#meta').textContent.includes('{following.event_id}')"
            )
            # the outcome names the previous item; nothing says this one is confirmed
            expect(page.locator("#prev-msg")).to_have_text(
                "✓ 上一条（京A12345）已确认 · 当前为下一条待审核"
            )
            expect(page.locator("#review-msg")).to_have_text("")
            expect(page.locator("#plate-text")).to_have_text(following.plate.text)
            meta = page.inner_text("#meta")
            assert "状态\t待审核" in meta and "已确认" not in meta
            page.screenshot(path=str(ARTIFACTS / "walkthrough_confirmed_next_1366.png"))

            # back to the confirmed item: recognised and corrected plates apart, audit in Chinese
            page.evaluate(f"location.hash = '#/violation/{unread.event_id}'")
            page.wait_for_function("document.querySelectorAll('#audit li').length === 1")
            expect(page.locator("#plate-text")).to_have_text("未识别")
            expect(page.locator("#plate-corrected")).to_be_visible()
            expect(page.locator("#plate-corrected")).to_have_text("更正号牌 京A12345")
            expect(page.locator("#prev-msg")).to_be_hidden()
            line = page.inner_text("#audit li")
            assert "张三 (zhangsan) 确认 待审核→已确认 · 号牌 未识别→京A12345" in line, line
            for raw in ("null", "pending", "confirmed", "ss_"):
                assert raw not in line, line
            assert "审核人\t张三 (zhangsan)" in page.inner_text("#meta")
            page.screenshot(path=str(ARTIFACTS / "walkthrough_violation_1366.png"))
            assert _no_hscroll(page)
            assert not errors, errors
        finally:
            browser.close()


LONG_URL = (
    "rtsp://admin:***@192.0.2.77:554/Streaming/Channels/101?transportmode=unicast&profile=main"
)


def _health(states: list[str]) -> dict[str, StreamHealthPublic]:
    out = {
        "cam1": StreamHealthPublic(
            camera_id="cam1",
            state="running",
            input_fps=25.0,
            analysed_fps=5.0,
            drops_by_reason={"backlog": 26, "sampling": 6606, "decode_error": 0},
            reconnects=0,
            last_frame_age_s=0.04,
            skew_ms=-59218.26171875,
            decoder="pyav-cpu",
            url=LONG_URL,
        )
    }
    for i, st in enumerate(states):
        cam = f"cam_s{i}"
        out[cam] = StreamHealthPublic(
            camera_id=cam, state=st, drops_by_reason={"sampling": 10}, skew_ms=12.4
        )
    out["cam_err"] = StreamHealthPublic(
        camera_id="cam_err",
        state="error",
        detail="cannot open rtsp://10.0.0.9/x: Connection refused",
    )
    out["cam_sig"] = StreamHealthPublic(
        camera_id="cam_sig",
        state="running",
        detail="connected",
        signal_problems={"main": "no controller message for 320 s"},
    )
    out["cam_night"] = StreamHealthPublic(
        camera_id="cam_night", state="running", noise_sigma=11.43, noise_filtered=True
    )
    out["cam_dusk"] = StreamHealthPublic(
        camera_id="cam_dusk",
        state="running",
        noise_sigma=2.1,
        noise_filtered=False,
        tonal_range=221.0,
        contrast_stretched=False,
    )
    out["cam_fog"] = StreamHealthPublic(
        camera_id="cam_fog", state="running", tonal_range=126.4, contrast_stretched=True
    )
    out["cam_dvr"] = StreamHealthPublic(
        camera_id="cam_dvr", state="running", frames_deinterlaced=1250
    )
    out["cam_kakou"] = StreamHealthPublic(camera_id="cam_kakou", state="running", near_field=True)
    return out


def _flow(camera: str, lane: int, minute: int, count: int, complete: bool = True) -> FlowRecord:
    return FlowRecord(
        stream_id=camera,
        lane_id=f"L{lane}",
        lane_no=lane,
        start_ms=T0 + minute * 60_000,
        interval_s=60.0,
        observed_s=60.0 if complete else 20.0,
        complete=complete,
        count=count,
        by_kind={"motor_vehicle": count},
        by_class={"car": count},
        mean_speed_kmh=None,
        speeds_measured=0,
        mean_headway_s=None,
        occupancy=0.2,
        queue_max_vehicles=None,
        queue_max_length_m=None,
    )


def test_health_words_drops_skew_url_and_flow_chart(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    from playwright.sync_api import expect

    states = list(typing.get_args(StreamState))
    seeded.service.set_health_provider(lambda: _health(states))
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors, _ = _page(browser, base)
            _token_login(page, seeded.tokens["viewer"])
            page.click("#nav a[href='#/health']")
            row = page.locator("#health-table tr[data-camera='cam1']")
            expect(row).to_be_visible()
            # no flow measured yet: said so
            expect(page.locator("#flow-none")).to_be_visible()
            expect(page.locator("#flow-charts figure")).to_have_count(0)
            cells = row.locator("td").all_inner_texts()
            assert cells[1] == "运行中"
            assert cells[4] == "积压丢弃 26"  # real drops only; decode errors 0 left out
            assert cells[5] == "6606"  # sampling: its own column
            assert "sampling" not in row.inner_text() and "backlog" not in row.inner_text()
            assert cells[8] == "-59.2 s"
            assert page.inner_text("#health-table thead").count("抽帧") == 1
            # every state the API can report, in Chinese
            for i, st in enumerate(states):
                word = page.inner_text(f"#health-table tr[data-camera='cam_s{i}'] td.state")
                assert word != st and word.isascii() is False, (st, word)
            assert page.inner_text("#health-table tr[data-camera='cam_s0'] td.skew") == "12 ms"
            # why a camera is down, and a signal problem, are in the table, not only in a title
            err = page.inner_text("#health-table tr[data-camera='cam_err'] td.state")
            assert err.startswith("故障") and "信号源报告了故障（详情仅管理员可见）" in err, err
            assert "Connection refused" not in err  # the source's own text is for admins
            sig = page.inner_text("#health-table tr[data-camera='cam_sig'] td.state")
            assert sig.startswith("运行中") and "信号灯异常 main: no controller message" in sig, sig
            assert "connected" not in sig  # a running stream's detail is not a problem
            # a noisy camera (night, high gain): said, with its noise; a clean one says nothing
            night = page.inner_text("#health-table tr[data-camera='cam_night'] td.state")
            assert night.startswith("运行中") and "画面噪声大（σ 11.4）：检测前已降噪" in night
            dusk = page.inner_text("#health-table tr[data-camera='cam_dusk'] td.state")
            assert dusk == "运行中", dusk
            fog = page.inner_text("#health-table tr[data-camera='cam_fog'] td.state")
            assert "画面发灰（灰度范围 126）：检测前已拉伸对比度" in fog, fog
            dvr = page.inner_text("#health-table tr[data-camera='cam_dvr'] td.state")
            assert "隔行扫描视频：已去隔行（1250 帧）" in dvr, dvr
            kakou = page.inner_text("#health-table tr[data-camera='cam_kakou'] td.state")
            assert "目标充满画面：检测时画面缩小至 1/2" in kakou, kakou
            # the long URL: cut with an ellipsis inside its cell, whole in the title
            url = row.locator("td.url")
            assert url.get_attribute("title") == LONG_URL
            assert page.evaluate(
                "(() => { const td = document.querySelector(\"tr[data-camera='cam1'] td.url\");"
                " return getComputedStyle(td).textOverflow === 'ellipsis' &&"
                " td.scrollWidth > td.clientWidth; })()"
            )
            assert _no_hscroll(page)

            # flow: two lanes on cam1 over 5 minutes (the last partial), one lane on cam2
            records = [
                _flow("cam1", lane, m, 2 * m + lane, m < 4) for m in range(5) for lane in (1, 2)
            ]
            records.append(_flow("cam2", 1, 2, 7))
            seeded.service.ingest([flow_event(r) for r in records])
            page.evaluate("location.hash = '#/queue'")
            page.wait_for_selector("#view-queue:not([hidden])")
            page.click("#nav a[href='#/health']")
            figs = page.locator("#flow-charts figure.flow")
            expect(figs).to_have_count(2)
            expect(page.locator("#flow-none")).to_be_hidden()
            cam1 = page.locator("#flow-charts figure[data-camera='cam1']")
            bars = cam1.locator("svg rect.bar")
            expect(bars).to_have_count(5)
            counts = [int(str(b.get_attribute("data-count"))) for b in bars.all()]
            assert counts == [(2 * m + 1) + (2 * m + 2) for m in range(5)]  # oldest → newest
            starts = [int(str(b.get_attribute("data-start"))) for b in bars.all()]
            assert starts == sorted(starts)
            assert "partial" in str(bars.nth(4).get_attribute("class"))
            heights = [float(str(b.get_attribute("height"))) for b in bars.all()]
            assert heights == sorted(heights) and heights[0] > 0
            cap = cam1.locator("figcaption").inner_text()
            assert "最近 10:44：19 辆" in cap and "2 车道" in cap, cap
            tip = str(bars.nth(0).locator("title").text_content())
            assert "车道 1: 1" in tip and "车道 2: 2" in tip, tip
            expect(page.locator("#flow-charts figure[data-camera='cam2'] rect.bar")).to_have_count(
                1
            )
            assert _no_hscroll(page)
            page.screenshot(
                path=str(ARTIFACTS / "walkthrough_health_flow_1366.png"), full_page=True
            )
            # flow records are events too: their type in Chinese on the events page
            page.click("#nav a[href='#/events']")
            page.wait_for_selector("#events-table tbody tr[data-id]")
            types = set(page.locator("#events-table td.vtype").all_inner_texts())
            assert "交通流量" in types and not any(t.isascii() for t in types), types
            assert not errors, errors
        finally:
            browser.close()


def test_top_bar_ticker_ends_before_the_user_label(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors, _ = _page(browser, base)
            _token_login(page, seeded.tokens["reviewer"])
            page.wait_for_timeout(300)
            for i in range(8):
                seeded.service.ingest(
                    [
                        make_event(
                            400 + i, camera=f"intersection_hanoi_b_640x480_{i}", plate="京A12345"
                        )
                    ]
                )
            page.wait_for_function("document.querySelectorAll('#ticker span').length >= 8")
            box = page.evaluate(
                "(() => { const t = document.querySelector('#ticker').getBoundingClientRect();"
                " const w = document.querySelector('#who').getBoundingClientRect();"
                " const s = getComputedStyle(document.querySelector('#ticker'));"
                " return { tr: t.right, wl: w.left, ov: s.textOverflow,"
                " full: document.querySelector('#ticker').scrollWidth >"
                " document.querySelector('#ticker').clientWidth }; })()"
            )
            assert box["tr"] <= box["wl"], box
            assert box["ov"] == "ellipsis" and box["full"], box
            who = page.locator("#who")
            assert who.get_attribute("title") == who.inner_text()
            assert _no_hscroll(page)
            page.screenshot(
                path=str(ARTIFACTS / "walkthrough_topbar_1366.png"),
                clip={"x": 0, "y": 0, "width": 1366, "height": 60},
            )
            assert not errors, errors
        finally:
            browser.close()


def test_queue_thumbnails_only_listed_files_subject_framed(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    # one record states where the subject is in image 2 (as the evidence builder writes it)
    framed = seeded.violations[2]
    d = seeded.files_root / f"evidence/{framed.stream_id}/{framed.event_id}"
    rec = json.loads((d / "record.json").read_text(encoding="utf-8"))
    rec["images"] = [
        {
            "file": f"{k}.jpg",
            "width": 480,
            "height": 270,
            "subject_box": [300.0, 150.0, 330.0, 200.0],
        }
        for k in (1, 2, 3)
    ]
    (d / "record.json").write_text(json.dumps(rec), encoding="utf-8")
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors, missing = _page(browser, base)
            _token_login(page, seeded.tokens["reviewer"])
            page.wait_for_function(
                "[...document.querySelectorAll('td.thumb img')].every((i) => i.naturalWidth > 0)"
            )
            assert not missing, missing  # no crop.jpg (violations have none): no 404
            files = page.evaluate(
                "[...document.querySelectorAll('td.thumb img')].map((i) => i.dataset.file)"
            )
            assert files == ["2.jpg"] * len(seeded.violations)
            img = page.locator(f"#queue-table tr[data-id='{framed.event_id}'] td.thumb img")
            assert "framed" in str(img.get_attribute("class"))
            # zoomed on the subject: the image is larger than the thumbnail, the box centred
            geo = page.evaluate(
                f"(() => {{ const i = document.querySelector(\"tr[data-id='{framed.event_id}']"
                ' td.thumb img"); const f = i.parentElement.getBoundingClientRect();'
                " const r = i.getBoundingClientRect(); return [f.left - r.left, f.top - r.top,"
                " r.width / i.naturalWidth, f.width]; })()"
            )
            dx, _dy, scale, fw = geo
            assert scale * 480 > 1.5 * fw  # the whole image would be 1× the frame
            assert abs((dx + fw / 2) / scale - 315) < 2  # the box's centre x
            page.screenshot(path=str(ARTIFACTS / "walkthrough_queue_1366.png"))
            assert not errors, errors
        finally:
            browser.close()
