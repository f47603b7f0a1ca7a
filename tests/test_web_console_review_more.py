"""Issues 15/17, reviewer: what the review console adds for the violation suite, in Chromium.

* queue: the violation-type picker (one or several types) narrows the rows to those types, each
  row shows its type with its code, the pending count follows the filter; sorting by violation
  time (newest / oldest first) and by camera;
* events view: the same type filter;
* violation page: the type with its code; the subject's box drawn over the clip from the track's
  trajectory at the presented frame (clip time base from ``record.json``), letterboxed, following
  frame stepping, toggled with B and its button; the stop line over the clip and images 1-3; each
  image's signal state as a chip saying what the record stamps for that image;
* the operator page (实时监看) in the nav.

Violations of three types go through the real store (``ingest``) and evidence records written
with :func:`pipeline.evidence.record.record_document`. Screenshots at 1366x768 and 1920x1080 go
to ``tests/artifacts/``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sharpeyes.api.rest.app import create_app
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.evidence.facts import violation_time_ms
from sharpeyes.pipeline.evidence.images import beijing_time_text
from sharpeyes.pipeline.evidence.record import EvidenceImage, EvidenceRecord, record_document
from sharpeyes.pipeline.types import (
    Box,
    Event,
    LampColor,
    Plate,
    SignalState,
    TrajectoryPoint,
    Violation,
)
from sharpeyes.streams.remux import ClipInfo
from tests._api_fixtures import (
    EVIDENCE_FILES,
    Seeded,
    _evidence_bytes,
    api_settings,
    live_server,
    make_event,
    seed_service,
    tiny_mp4,
)
from tests.scenarios import scene_calibration
from tests.test_web_console import ARGS, ARTIFACTS, CHROMIUM, _playwright

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SIZES = {"1366": (1366, 768), "1920": (1920, 1080)}
FRAME = (1280, 720)  # the analysed frame: trajectory and subject boxes in its pixels
CLIP = (320, 180)  # the clip's own size (12 fps, 24 frames): scaled and letterboxed
FPS = 12
PRE_ROLL = 0.25  # the clip starts this long before the track's first point
CAM1 = ("人民路-解放路 东向", "杭州市上城区人民路与解放路交叉口")
CAM2 = ("延安路-庆春路 北向", "杭州市上城区延安路与庆春路交叉口")


@dataclass(frozen=True)
class Spec:
    i: int
    camera: str
    vtype: str | None  # extra.violation_type (None: red light)
    code: str
    signal: LampColor
    crossing: float  # crossed_stop_line_pts - first_pts
    plate: str


SPECS = (
    Spec(10, "cam1", None, "1625", LampColor.RED, 0.5, "浙A10010"),
    Spec(11, "cam1", "wrong_way", "1301", LampColor.GREEN, 1.6, "浙A10011"),
    Spec(12, "cam2", "solid_line", "1345", LampColor.GREEN, 0.3, "浙A10012"),
    Spec(13, "cam2", "wrong_way", "1301", LampColor.AMBER, 0.9, "浙A10013"),
)


def _track(first_pts: float) -> tuple[TrajectoryPoint, ...]:
    """Anchor (bottom centre) from (400, 650) to (840, 430) over 1.75 s, every 0.25 s."""
    return tuple(
        TrajectoryPoint(round(first_pts + k * 0.25, 4), 400.0 + k * 55.0, 650.0 - k * 27.5)
        for k in range(8)
    )


def _anchor_at(track: tuple[TrajectoryPoint, ...], pts: float) -> tuple[float, float] | None:
    if pts < track[0].pts or pts > track[-1].pts:
        return None
    for a, b in itertools.pairwise(track):
        if a.pts <= pts <= b.pts:
            f = (pts - a.pts) / (b.pts - a.pts)
            return a.x + (b.x - a.x) * f, a.y + (b.y - a.y) * f
    return track[-1].x, track[-1].y


def _size_at(images: list[tuple[float, Box]], pts: float) -> tuple[float, float]:
    sizes = [(p, b.x2 - b.x1, b.y2 - b.y1) for p, b in images]
    if pts <= sizes[0][0]:
        return sizes[0][1], sizes[0][2]
    if pts >= sizes[-1][0]:
        return sizes[-1][1], sizes[-1][2]
    for (pa, wa, ha), (pb, wb, hb) in itertools.pairwise(sizes):
        if pa <= pts <= pb:
            f = (pts - pa) / (pb - pa)
            return wa + (wb - wa) * f, ha + (hb - ha) * f
    raise AssertionError(pts)


def _image_boxes(ev: Event) -> list[tuple[float, Box]]:
    """Each evidence image's subject box: the track's anchor there, shrinking from 200x150."""
    assert ev.violation is not None
    out = []
    for k, pts in enumerate(ev.violation.evidence_pts):
        anchor = _anchor_at(ev.trajectory, pts)
        assert anchor is not None
        w, h = 200.0 - 20 * k, 150.0 - 15 * k
        x, y = anchor
        out.append((pts, Box(x - w / 2, y - h, x + w / 2, y, *FRAME)))
    return out


def _event(s: Spec) -> Event:
    base = make_event(s.i, camera=s.camera, violation=True, plate=s.plate)
    first = float(s.i)
    v = Violation(
        code=s.code,
        signal_group="main",
        signal_color=s.signal,
        seconds_since_red=2.5 if s.signal is LampColor.RED else 0.0,
        lane_no=2,
        movement="straight",
        approach="south" if s.vtype is None else None,
        crossed_stop_line_pts=first + s.crossing,
        evidence_pts=(first + 0.2, first + 0.55, first + 1.3),
    )
    extra = () if s.vtype is None else (("violation_type", s.vtype), ("approach_id", "south"))
    return base.with_(
        violation=v,
        trajectory=_track(first),
        extra=extra,
        best_box=Box(500.0, 470.0, 680.0, 605.0, *FRAME),
    )


def _write_record(root: Path, ev: Event, s: Spec, camera: CameraConfig) -> str:
    rel = f"evidence/{ev.stream_id}/{ev.event_id}"
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    for name in EVIDENCE_FILES:
        if name != "clip.mp4":
            (d / name).write_bytes(_evidence_bytes(name))
    tiny_mp4(d / "clip.mp4", frames=24, size=CLIP)
    start = ev.first_pts - PRE_ROLL
    clip = ClipInfo(d / "clip.mp4", "h264", *CLIP, start, start + 24 / FPS, 24, 2, 0)
    images = []
    for k, (pts, box) in enumerate(_image_boxes(ev), start=1):
        wall = ev.first_seen_ms + round((pts - ev.first_pts) * 1000)
        colour = s.signal if k < 3 else LampColor.RED  # image 3: its own state, not image 1's
        st = SignalState("main", colour, 0.97, pts - 2.0 - k, pts)
        images.append(
            EvidenceImage(
                index=k,
                pts=pts,
                wall_time_ms=wall,
                beijing_time=beijing_time_text(wall),
                width=FRAME[0],
                height=FRAME[1],
                vehicle_box=box,
                signals={"main": st},
                signal_group="main",
                box_source="track",
            )
        )
    record = EvidenceRecord(
        event_id=ev.event_id,
        stream_id=ev.stream_id,
        record_dir=d,
        files=(),
        images=tuple(images),
        plate=Plate(s.plate, "blue", 0.9),
        plate_frame=2,
        clip=clip,
        clip_error=None,
        key_id="test",
        violation_code=s.code,
    )
    doc = record_document(record, ev, camera, b"record-key")
    (d / "record.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return rel


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, violations=0, passes=2)
    cams = {}
    for cam, (name, place) in (("cam1", CAM1), ("cam2", CAM2)):
        cfg = CameraConfig(
            id=cam,
            name=name,
            location=place,
            url=f"rtsp://192.0.2.10/{cam}",
            intersection=scene_calibration() if cam == "cam1" else None,
        )
        s.service.cameras.create(cfg)
        cams[cam] = cfg
    events = [_event(spec) for spec in SPECS]
    s.service.ingest(events)
    for ev, spec in zip(events, SPECS, strict=True):
        rel = _write_record(s.files_root, ev, spec, cams[ev.stream_id])
        s.service.events.set_evidence(ev.event_id, rel, f"{rel}/record.json")
    s.violations = events
    yield s
    s.service.db.close()


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


def _ids(page: Any) -> list[str]:
    return list(
        page.eval_on_selector_all(
            "#queue-table tbody tr[data-id]", "rs => rs.map(r => r.dataset.id)"
        )
    )


def _search(page: Any) -> None:
    page.click("#filters button[type=submit]")
    page.wait_for_selector("#queue-table[aria-busy=false]")


def _pick_types(page: Any, *names: str) -> None:
    page.click("#f-vtype summary")
    for box in page.locator("#vtype-list input").all():
        want = box.get_attribute("value") in names
        if box.is_checked() != want:
            box.click()
    page.click("#f-vtype summary")


def test_type_filter_sort_and_nav(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    from playwright.sync_api import expect

    evs = {e.event_id: (e, s) for e, s in zip(seeded.violations, SPECS, strict=True)}
    when = {i: violation_time_ms(e) or 0 for i, (e, _) in evs.items()}
    app = create_app(api_settings(), seeded.service)
    with live_server(app) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors = _login(browser, base, seeded.tokens["reviewer"])
            link = page.locator("#nav a#nav-watch")
            expect(link).to_have_text("实时监看")
            assert link.get_attribute("href") == "watch.html"
            rows = page.locator("#queue-table tbody tr[data-id]")
            expect(rows).to_have_count(4)
            # every row: its type with the code it carries
            for i, (_ev, s) in evs.items():
                cell = page.locator(f"#queue-table tr[data-id='{i}'] td.vtype")
                name = {"wrong_way": "逆行", "solid_line": "压实线", None: "机动车闯红灯"}[s.vtype]
                expect(cell).to_have_text(f"{name} ({s.code})")
            # the picker lists every type the API filters on, by its Chinese name and code
            labels = page.locator("#vtype-list label").all_text_contents()
            assert [" ".join(x.split()) for x in labels] == [
                "机动车闯红灯 1625",
                "行人闯红灯 8901",
                "逆行 1301",
                "不按导向车道行驶 1208",
                "违反禁令标志(禁止转弯) 1344",
                "压实线 1345",
                "违法停车 1039",
                "不礼让行人 1357",
            ]
            # one type
            _pick_types(page, "wrong_way")
            _search(page)
            wrong = {i for i, (_, s) in evs.items() if s.vtype == "wrong_way"}
            expect(rows).to_have_count(2)
            assert set(_ids(page)) == wrong
            expect(page.locator("#pending-count")).to_have_text("2")
            expect(page.locator("#vtype-summary")).to_have_text("逆行")
            # several types
            _pick_types(page, "wrong_way", "solid_line")
            _search(page)
            expect(rows).to_have_count(3)
            assert {evs[i][1].vtype for i in _ids(page)} == {"wrong_way", "solid_line"}
            expect(page.locator("#pending-count")).to_have_text("3")
            ARTIFACTS.mkdir(exist_ok=True)
            page.click("#f-vtype summary")  # the picker open over the filtered queue
            page.screenshot(path=str(ARTIFACTS / "review_types_1366.png"))
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            page.click("#f-vtype summary")
            # red light only (by event type; the suite's charges are red_light_violation events)
            _pick_types(page, "red_light_violation")
            _search(page)
            expect(rows).to_have_count(1)
            assert evs[_ids(page)[0]][1].vtype is None
            _pick_types(page)
            _search(page)
            expect(rows).to_have_count(4)

            # sort: violation time, not first seen (the API's order)
            by_time = sorted(when, key=lambda i: -when[i])
            assert by_time != [
                e.event_id for e in sorted(seeded.violations, key=lambda e: -e.first_seen_ms)
            ]
            assert _ids(page) == by_time
            page.select_option("#f-sort", "time_asc")
            assert _ids(page) == by_time[::-1]
            times = page.locator("#queue-table td.time").all_inner_texts()
            assert times == [beijing_time_text(when[i]) for i in by_time[::-1]]
            page.select_option("#f-sort", "camera")
            cams = [evs[i][0].stream_id for i in _ids(page)]
            assert cams == sorted(cams, key=lambda c: CAM1[0] if c == "cam1" else CAM2[0])
            assert len(set(cams[:2])) == 1 and cams[0] != cams[2]
            # the choice stays after a reload of the queue
            _search(page)
            assert [evs[i][0].stream_id for i in _ids(page)] == cams
            expect(page.locator("#sort-note")).to_be_hidden()  # everything is loaded
            page.select_option("#f-sort", "time_desc")

            # events view: the same filter
            page.click("#nav a[href='#/events']")
            page.wait_for_selector("#view-events:not([hidden])")
            page.select_option("#ev-vtype", "solid_line")
            ev_rows = page.locator("#events-table tbody tr[data-id]")
            expect(ev_rows).to_have_count(1)
            expect(ev_rows.first.locator("td.vtype")).to_have_text("压实线 (1345)")
            page.select_option("#ev-vtype", "")
            expect(ev_rows).to_have_count(6)  # 4 violations + 2 passes
            assert not errors, errors
        finally:
            browser.close()


def _num(page: Any, expr: str) -> float:
    return float(page.evaluate(expr))


def _canvas_box(page: Any) -> list[float] | None:
    raw = page.get_attribute("#ov-clip", "data-box")
    return [float(x) for x in raw.split(",")] if raw else None


def _expected_box(page: Any, ev: Event, media_time: float) -> list[float] | None:
    """The box the test derives itself: trajectory anchor + image box size, letterboxed."""
    pts = ev.first_pts - PRE_ROLL + media_time
    anchor = _anchor_at(ev.trajectory, pts)
    if anchor is None:
        return None
    w, h = _size_at(_image_boxes(ev), pts)
    cw = _num(page, "document.querySelector('#clip').clientWidth")
    ch = _num(page, "document.querySelector('#clip').clientHeight")
    s = min(cw / CLIP[0], ch / CLIP[1])
    ox, oy = (cw - CLIP[0] * s) / 2, (ch - CLIP[1] * s) / 2
    k = CLIP[0] * s / FRAME[0]
    x, y = anchor
    return [ox + (x - w / 2) * k, oy + (y - h) * k, ox + (x + w / 2) * k, oy + y * k]


def _pixel(page: Any, canvas: str, x: float, y: float) -> list[int]:
    return list(
        page.evaluate(
            "([sel, x, y]) => { const c = document.querySelector(sel);"
            " const d = window.devicePixelRatio || 1;"
            " const g = c.getContext('2d');"
            " const px = g.getImageData(Math.round(x * d), Math.round(y * d), 1, 1);"
            " return [...px.data]; }",
            [canvas, x, y],
        )
    )


def _near(px: list[int], rgb: tuple[int, int, int], tol: int = 60) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(px[:3], rgb, strict=True)) and px[3] > 150


def _stop_line_at(page: Any, canvas: str, el: str) -> None:
    """The stop line (scene calibration: (0.3, 0.7)-(0.7, 0.7)) is drawn on ``canvas``."""
    r = page.evaluate(
        "([c, el]) => { const e = document.querySelector(el);"
        " const w = e.videoWidth || e.naturalWidth, h = e.videoHeight || e.naturalHeight;"
        " const s = Math.min(e.clientWidth / w, e.clientHeight / h);"
        " return [(e.clientWidth - w * s) / 2, (e.clientHeight - h * s) / 2, w * s, h * s]; }",
        [canvas, el],
    )
    x, y = r[0] + 0.33 * r[2], r[1] + 0.7 * r[3]
    assert _near(_pixel(page, canvas, x, y), (255, 212, 0)), (canvas, _pixel(page, canvas, x, y))
    assert _pixel(page, canvas, x, y + 10)[3] == 0  # nothing drawn off the line


def _wait_media_time(page: Any, media_time: float) -> None:
    want = f"{media_time:.4f}"
    page.wait_for_function(
        "(m) => { const c = document.querySelector('#ov-clip');"
        " return c.dataset.pts && Math.abs(Number(c.dataset.pts) - m) < 1e-3; }",
        arg=float(want) + 0,
    )


def _assert_box(page: Any, ev: Event, media_time: float) -> None:
    _wait_media_time(page, ev.first_pts - PRE_ROLL + media_time)
    want = _expected_box(page, ev, media_time)
    got = _canvas_box(page)
    if want is None:
        assert got is None, (media_time, got)
        return
    assert got is not None, media_time
    assert got == pytest.approx(want, abs=1.5), (media_time, got, want)
    # the box's left edge is drawn in the box colour (the most opaque pixel within 1 px of it)
    mid = (got[1] + got[3]) / 2
    edge = max((_pixel(page, "#ov-clip", got[0] + d, mid) for d in (-1, 0, 1)), key=lambda p: p[3])
    assert _near(edge, (0, 229, 255)), edge


def test_violation_page_overlay_stop_line_signals(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    from playwright.sync_api import expect

    red, wrong = seeded.violations[0], seeded.violations[1]
    app = create_app(api_settings(), seeded.service)
    ARTIFACTS.mkdir(exist_ok=True)
    with live_server(app) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            page, errors = _login(browser, base, seeded.tokens["reviewer"])
            page.evaluate(f"location.hash = '#/violation/{wrong.event_id}'")
            expect(page.locator("#vtype")).to_have_text("逆行 (1301)")
            expect(page.locator("#meta")).to_contain_text("逆行 (1301)")
            # each image's own signal state, as its record says
            for k, colour in enumerate(("绿", "绿", "红"), start=1):
                chip = page.locator(f"#sig{k}")
                expect(chip).to_be_visible()
                expect(chip).to_contain_text(f"图{k} {colour}")
            assert page.get_attribute("#sig3", "data-color") == "red"
            assert page.get_attribute("#sig1", "class") == "sig sig-green"

            page.evaluate(f"location.hash = '#/violation/{red.event_id}'")
            expect(page.locator("#vtype")).to_have_text("机动车闯红灯 (1625)")
            for k in (1, 2, 3):
                expect(page.locator(f"#sig{k}")).to_contain_text(f"图{k} 红")
            page.wait_for_function("document.querySelector('#clip').readyState >= 2", timeout=10000)
            page.wait_for_function(
                "document.querySelector('#frame-pos').textContent.includes('12 fps')"
            )
            page.wait_for_function("document.querySelector('#img1').naturalWidth > 0")
            # the player: the side column's full width, at the clip's own shape (16:9 here)
            cw = _num(page, "document.querySelector('#clip').clientWidth")
            ch = _num(page, "document.querySelector('#clip').clientHeight")
            side = _num(page, "document.querySelector('#clipwrap').clientWidth")
            assert cw == side and cw >= 380 and ch == pytest.approx(cw * 9 / 16, abs=2)
            # letterboxed: a box of another shape than the clip (a tall clip capped by
            # max-height), forced here with a wider box: the overlay must follow the content
            page.add_style_tag(content="#clip { aspect-ratio: 2 / 1; }")
            page.wait_for_timeout(100)
            cw = _num(page, "document.querySelector('#clip').clientWidth")
            ch = _num(page, "document.querySelector('#clip').clientHeight")
            assert cw / ch > CLIP[0] / CLIP[1] + 0.1
            # frame 1 is before the track: no box; then frame by frame along the track
            _assert_box(page, red, 0.0)
            _stop_line_at(page, "#ov-clip", "#clip")
            for n in range(1, 9):
                page.keyboard.press(".")
                _assert_box(page, red, n / FPS)
            page.keyboard.press(",")
            _assert_box(page, red, 7 / FPS)
            # a time between trajectory points (interpolated), set directly
            page.evaluate("document.querySelector('#clip').currentTime = 13 / 12 + 1e-4")
            _assert_box(page, red, 13 / FPS)
            # past the track's end: no box
            page.evaluate("document.querySelector('#clip').currentTime = 23 / 12 + 1e-4")
            _assert_box(page, red, 23 / FPS)
            page.evaluate("document.querySelector('#clip').currentTime = 10 / 12 + 1e-4")
            _assert_box(page, red, 10 / FPS)
            # the stop line over images 1-3
            for k in (1, 2, 3):
                _stop_line_at(page, f"#ov{k}", f"#img{k}")
            # toggle with B and with the button
            page.keyboard.press("b")
            expect(page.locator("#ov-clip")).to_be_hidden()
            expect(page.locator("#ov1")).to_be_hidden()
            assert page.get_attribute("#ov-toggle", "aria-pressed") == "false"
            page.click("#ov-toggle")
            expect(page.locator("#ov-clip")).to_be_visible()
            _assert_box(page, red, 10 / FPS)
            for size in ("1920", "1366"):
                w, h = SIZES[size]
                page.set_viewport_size({"width": w, "height": h})
                page.wait_for_timeout(300)
                _assert_box(page, red, 10 / FPS)  # redrawn at the new size
                page.screenshot(path=str(ARTIFACTS / f"review_overlay_{size}.png"))
                assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            # playing: the overlay follows the presented frames (requestVideoFrameCallback)
            page.evaluate("document.querySelector('#clip').currentTime = 0")
            page.evaluate("document.querySelector('#clip').play()")
            page.wait_for_function(
                "Number(document.querySelector('#ov-clip').dataset.pts || 0) > 10.5", timeout=5000
            )
            page.evaluate("document.querySelector('#clip').pause()")
            # read the drawn frame's time and box together: the box is the one for that frame
            pts_box = page.evaluate(
                "(() => { const c = document.querySelector('#ov-clip');"
                " return [Number(c.dataset.pts), c.dataset.box]; })()"
            )
            m = pts_box[0] - (red.first_pts - PRE_ROLL)
            want = _expected_box(page, red, round(m * FPS) / FPS)
            assert want is not None and pts_box[1]
            got = [float(x) for x in pts_box[1].split(",")]
            assert got == pytest.approx(want, abs=1.5)
            assert not errors, errors
        finally:
            browser.close()


def test_violation_detail_carries_type_and_track(seeded: Seeded) -> None:
    """The API additions the overlay reads: violation_type on lists, trajectory on the detail."""
    from fastapi.testclient import TestClient

    client = TestClient(create_app(api_settings(), seeded.service))
    auth = seeded.auth("viewer")
    page = client.get("/api/v1/violations", headers=auth).json()
    got = {e["event_id"]: e["violation_type"] for e in page["items"]}
    assert got == {
        e.event_id: s.vtype or "red_light_violation"
        for e, s in zip(seeded.violations, SPECS, strict=True)
    }
    assert all(e["trajectory"] == [] for e in page["items"])  # lists stay light
    ev = seeded.violations[1]
    one = client.get(f"/api/v1/violations/{ev.event_id}", headers=auth).json()
    assert one["violation_type"] == "wrong_way"
    assert one["trajectory"] == [{"pts": p.pts, "x": p.x, "y": p.y} for p in ev.trajectory]
