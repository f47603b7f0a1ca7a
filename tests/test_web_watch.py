"""Issue 15, operator: the live watch screen (``/console/watch.html``) in Chromium.

* a red-light violation produced by the running pipeline (the rendered ``clean_violation`` scene
  played live through the node runtime, as ``sharpeyes serve`` wires it) is raised as an alert;
  it stays over a reload until acknowledged, and stays acknowledged over a reload that replays
  the whole feed; the tile shows the runtime's live frame;
* tiles: camera names (not ids), health in Chinese words, fps with one decimal;
* the camera map: markers placed by latitude/longitude at distinct positions, coloured by
  health, a popup on click; with no tile server nothing leaves localhost; with one, z/x/y tiles;
* the events page pages past 200 rows with the cursor, newest first, and offers what was stored
  since through the ingest cursor.

Screenshots at 1366×768 and 1920×1080 go to ``tests/artifacts/``.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from fastapi import APIRouter, FastAPI, Response

from sharpeyes.api.rest.app import create_app
from sharpeyes.api.rest.routes.console import ConsoleConfig
from sharpeyes.api.rest.schemas import StreamHealthPublic
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.types import Event
from tests._api_fixtures import (
    T0,
    Seeded,
    api_settings,
    jpeg,
    live_server,
    make_event,
    seed_service,
    write_evidence,
)
from tests.test_web_console import ARGS, ARTIFACTS, CHROMIUM, _playwright

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CAMS = {
    "cam1": ("人民路-解放路 东向", "杭州市上城区人民路与解放路交叉口", (30.2501, 120.1702)),
    "cam2": ("延安路-庆春路 北向", "杭州市上城区延安路与庆春路交叉口", (30.2610, 120.1655)),
    "cam3": ("中河路卡口", "杭州市上城区中河中路", None),
}
SIZES = {"1366": (1366, 768), "1920": (1920, 1080)}
GREEN, AMBER, RED = "#1e9e4a", "#e0a000", "#c62828"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def health() -> dict[str, StreamHealthPublic]:
    return {
        "cam1": StreamHealthPublic(
            camera_id="cam1", state="running", input_fps=25.0, analysed_fps=9.96,
            last_frame_age_s=0.04,
        ),
        "cam2": StreamHealthPublic(
            camera_id="cam2", state="reconnecting", input_fps=0.0, analysed_fps=0.0,
            last_frame_age_s=12.345, reconnects=3,
        ),
        "cam3": StreamHealthPublic(
            camera_id="cam3", state="error", last_frame_age_s=None,
            detail="cannot open rtsp://192.0.2.10/cam3: Connection refused",
        ),
    }  # fmt: skip


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    for cam, (name, place, geo) in CAMS.items():
        data: dict[str, Any] = {"id": cam, "name": name, "location": place}
        data["url"] = f"rtsp://192.0.2.10/{cam}"
        if geo is not None:
            data["geo"] = {"latitude": geo[0], "longitude": geo[1]}
        s.service.cameras.create(CameraConfig.model_validate(data))
    s.service.set_health_provider(health)
    yield s
    s.service.db.close()


def _browser(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)


class Page:
    """A watch page in a fresh context that logs every request leaving localhost (aborted)."""

    def __init__(self, browser: Any, size: str = "1366", token: str | None = None) -> None:
        w, h = SIZES[size]
        self.context = browser.new_context(  # bypass_csp: wait_for_function(str) needs eval
            viewport={"width": w, "height": h}, locale="zh-CN", bypass_csp=True
        )
        self.outside: list[str] = []
        self.requests: list[str] = []
        self.context.route("**/*", self._route)
        if token is not None:
            self.context.add_init_script(f"sessionStorage.setItem('se_token', '{token}')")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route: Any) -> None:
        self.requests.append(route.request.url)
        if urlparse(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.wait_for_timeout(300)
        self.page.screenshot(path=str(ARTIFACTS / name))

    def no_hscroll(self) -> bool:
        return bool(self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def watch_app(seeded: Seeded, **console: Any) -> FastAPI:
    return create_app(api_settings(), seeded.service, console=ConsoleConfig(**console))


# -- tiles ---------------------------------------------------------------------------------------


def test_tiles_show_names_health_in_chinese_and_one_decimal_fps(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    with live_server(watch_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            for size in SIZES:
                w = Page(browser, size)
                page = w.page
                page.goto(f"{base}/console/watch.html")
                # no token: the page's own login form (and a link to the console's)
                assert page.get_attribute("#v-login a", "href") == "./"
                page.fill("#w-token", seeded.tokens["viewer"])
                page.click("#w-login button[type=submit]")
                page.wait_for_selector("#tiles .tile[data-camera=cam3]")
                tile = {c: page.locator(f".tile[data-camera={c}]") for c in CAMS}
                for cam, (name, place, _) in CAMS.items():
                    assert tile[cam].locator(".name").inner_text() == name
                    assert tile[cam].locator(".loc").inner_text() == place
                    assert cam not in tile[cam].locator(".name").inner_text()
                assert tile["cam1"].locator(".state").inner_text() == "运行中"
                assert tile["cam2"].locator(".state").inner_text() == "重连中"
                assert tile["cam3"].locator(".state").inner_text() == "故障"
                assert tile["cam1"].locator(".fps").inner_text() == "10.0 fps"
                assert tile["cam2"].locator(".fps").inner_text() == "0.0 fps"
                assert tile["cam1"].locator(".age").inner_text() == "帧龄 0.0 秒"
                assert tile["cam2"].locator(".age").inner_text() == "帧龄 12.3 秒"
                assert tile["cam3"].locator(".age").inner_text() == "帧龄 —"
                # why a camera is down is on its tile and above the (empty) alert list
                why = tile["cam3"].locator(".why").inner_text()
                assert (
                    why == "信号源报告了故障（详情仅管理员可见）"
                )  # the source's text: admins only
                assert tile["cam2"].locator(".why").inner_text() == "原因未报告"
                assert tile["cam1"].locator(".why").is_hidden()
                assert page.inner_text("#faults-head") == "摄像机异常 2 台"
                faults = page.locator("#faults li")
                assert [faults.nth(i).get_attribute("data-camera") for i in range(2)] == [
                    "cam2",
                    "cam3",
                ]
                assert "详情仅管理员可见" in faults.nth(1).inner_text()
                assert "故障" in faults.nth(1).inner_text()
                for cam in CAMS:
                    fps_text = tile[cam].locator(".fps").inner_text()
                    assert re.fullmatch(r"\d+\.\d fps", fps_text), fps_text
                # cam1 has stored violations: its tile shows the newest evidence picture
                page.wait_for_function(
                    "document.querySelector('.tile[data-camera=cam1] img').naturalWidth > 0"
                )
                assert tile["cam1"].get_attribute("data-pic") == "event"
                assert tile["cam2"].locator(".nopic").is_visible()  # nothing stored yet
                assert page.inner_text("#w-feed") == "● 实时"
                assert page.locator("#w-stale").is_hidden()
                # states no longer refreshed (service unreachable): said so, in words
                page.evaluate("S.camerasAt = Date.now() - 20000; tick()")
                assert page.inner_text("#w-stale") == "设备状态已 20 秒未更新"
                page.evaluate("S.camerasAt = Date.now(); tick()")
                w.shot(f"watch_live_{size}.png")
                assert w.no_hscroll()
                assert not w.outside, w.outside
                assert not w.errors, w.errors
                w.context.close()
        finally:
            browser.close()


def _alert_detail(page: Any, seeded: Seeded, event: Event, shows: str) -> str:
    """Ingest a non-violation ``event``, open its alert's detail once it shows ``shows`` and
    return the detail's text."""
    seeded.service.ingest([event])
    page.wait_for_selector(f"#alerts li[data-id='{event.event_id}']:not(.viol)")
    page.click(f"#alerts li[data-id='{event.event_id}'] a.alert-body")
    page.wait_for_function(
        f"document.querySelector('#detail-meta').innerText.includes({json.dumps(shows)})"
    )
    return str(page.inner_text("#detail-meta"))


def test_chosen_kinds_alert_and_open_their_detail(seeded: Seeded) -> None:
    """Violations always alert; other kinds only once the operator picks them (kept in
    localStorage); a non-violation alert opens the event's detail; sound is off by default."""
    sync_playwright = _playwright()
    with live_server(watch_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            w = Page(browser, "1366", token=seeded.tokens["viewer"])
            page = w.page
            page.goto(f"{base}/console/watch.html")
            page.wait_for_selector("#w-feed.on")
            assert not page.is_checked("#sound")
            quiet = make_event(7000, camera="cam2", plate="浙A7000B", t_ms=T0 + 2_000_000)
            seeded.service.ingest([quiet])  # a vehicle pass: no alert by default
            viol = make_event(7001, camera="cam2", violation=True, plate="浙A70011")
            seeded.service.ingest([viol])
            page.wait_for_selector(f"#alerts li.viol[data-id='{viol.event_id}']")
            assert _alerts(page) == [viol.event_id]
            page.click(".alert-opts summary")
            page.check(".alert-opts input[value=vehicle_pass]")
            assert page.evaluate("localStorage.getItem('se_watch_kinds')") == '["vehicle_pass"]'
            picked = make_event(7002, camera="cam2", plate="浙A70022", t_ms=T0 + 2_001_000)
            picked = picked.with_(
                direction="up",
                extra=(
                    ("vehicle_color", "white"),
                    ("lane_no", "2"),
                    ("speed_kmh", "43.2"),
                    ("plate_status", "read"),
                ),
            )
            rel = write_evidence(seeded.files_root, picked)
            seeded.service.ingest([picked])
            seeded.service.events.set_evidence(picked.event_id, rel, f"{rel}/record.json")
            page.wait_for_selector(f"#alerts li[data-id='{picked.event_id}']:not(.viol)")
            # the feed resumed after the last message seen (the violation): the earlier pass
            # is not raised after the fact
            assert set(_alerts(page)) == {viol.event_id, picked.event_id}
            page.click(f"#alerts li[data-id='{picked.event_id}'] a.alert-body")
            page.wait_for_selector("#detail:not([hidden])")
            assert "浙A70022" in page.inner_text("#detail-meta")
            assert CAMS["cam2"][0] in page.inner_text("#detail-meta")
            meta = page.inner_text("#detail-meta")  # what structuring stated, in Chinese
            assert "车身颜色\t白" in meta and "车道\t2" in meta and "车速\t43.2 km/h" in meta
            assert "号牌识别\t已识别" in meta  # in the operator's words
            assert "方向\t画面向上" in meta
            assert "上衣颜色" not in meta  # nothing stated, no empty row
            page.wait_for_function("document.querySelector('#detail-img').naturalWidth > 0")
            w.shot("watch_detail_1366.png")
            page.click("#detail-close")
            # a pass read on a night-mode (monochrome) picture: why no colour is given
            mono = make_event(7003, camera="cam2", plate="浙A70033", t_ms=T0 + 2_002_000)
            mono = mono.with_(extra=(("plate_status", "read"), ("color_status", "monochrome")))
            meta = _alert_detail(page, seeded, mono, "浙A70033")
            assert "颜色\t不判断（黑白画面，摄像机处于红外夜视模式）" in meta, meta
            assert "车身颜色" not in meta
            w.shot("watch_detail_monochrome_1366.png")
            page.click("#detail-close")
            # no plate found where the camera could not have told: not "no plate" (无牌)
            unknown = make_event(7004, camera="cam2", t_ms=T0 + 2_003_000)
            unknown = unknown.with_(
                extra=(("plate_status", "plate_not_found"), ("vehicle_color", "grey"))
            )
            meta = _alert_detail(page, seeded, unknown, "未检出号牌")
            assert "号牌识别\t未检出号牌（无法判定有无）" in meta, meta
            assert "未见号牌" not in meta
            w.shot("watch_detail_plate_not_found_1366.png")
            page.click("#detail-close")
            page.check("#sound")
            assert page.evaluate("localStorage.getItem('se_watch_sound')") == "true"
            page.click("#ack-all")
            assert _alerts(page) == []
            assert not w.errors, w.errors
        finally:
            browser.close()


# -- map -----------------------------------------------------------------------------------------


def _marker_centres(page: Any, selector: str) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for m in page.locator(selector).all():
        box = m.bounding_box()
        assert box is not None
        out[str(m.get_attribute("data-camera"))] = (
            box["x"] + box["width"] / 2,
            box["y"] + box["height"] / 2,
        )
    return out


def test_map_without_tile_server_stays_local(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    with live_server(watch_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            for size in SIZES:
                w = Page(browser, size, token=seeded.tokens["viewer"])
                page = w.page
                page.goto(f"{base}/console/watch.html#map")
                page.wait_for_selector("#map svg g.marker")
                assert "未配置地图瓦片服务" in page.inner_text("#map-note")
                centres = _marker_centres(page, "#map g.marker")
                assert set(centres) == {"cam1", "cam2"}  # cam3 has no geo
                (x1, y1), (x2, y2) = centres["cam1"], centres["cam2"]
                assert abs(x1 - x2) > 50 and abs(y1 - y2) > 50
                # cam2 is north-west of cam1: higher on the screen and to the left
                assert y2 < y1 and x2 < x1
                fill = "#map g.marker[data-camera={}] circle"
                assert page.get_attribute(fill.format("cam1"), "fill") == GREEN
                assert page.get_attribute(fill.format("cam2"), "fill") == AMBER
                page.click("#map g.marker[data-camera=cam2] circle")
                pop = page.locator("#map .popup[data-camera=cam2]")
                assert pop.is_visible()
                text = pop.inner_text()
                assert CAMS["cam2"][0] in text and "重连中" in text and "0.0 fps" in text
                assert pop.locator("a").nth(1).get_attribute("href") == "#events/cam2"
                w.shot(f"watch_map_{size}.png")
                pop.locator("a").nth(1).click()
                page.wait_for_selector("#v-events:not([hidden]) #ev-table tbody tr[data-id]")
                assert page.input_value("#ev-camera") == "cam2"
                assert w.no_hscroll()
                assert not w.outside, f"requests left localhost: {w.outside}"
                assert not w.errors, w.errors
                w.context.close()
        finally:
            browser.close()


def tile_server(asked: list[tuple[int, int, int]]) -> APIRouter:
    """A local z/x/y tile server standing in for the unit's offline map server."""
    router = APIRouter()
    png = jpeg(256, 256, "tile")

    @router.get("/testtiles/{z}/{x}/{y}.png")
    def tile(z: int, x: int, y: int) -> Response:
        asked.append((z, x, y))
        return Response(png, media_type="image/jpeg")

    return router


def mercator_tile(lat: float, lon: float, z: int) -> tuple[int, int]:
    n = 2**z
    s = math.sin(math.radians(lat))
    y = (0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)) * n
    return int((lon + 180) / 360 * n), int(y)


@pytest.mark.parametrize("where", ["same_origin", "other_host"])
def test_map_with_tile_server_draws_tiles_and_pins(seeded: Seeded, where: str) -> None:
    """A same-origin template is loaded by the page; a tile server on another host (another
    origin) is reached only through the service's tile route, never by the browser."""
    sync_playwright = _playwright()
    asked: list[tuple[int, int, int]] = []
    with contextlib.ExitStack() as stack:
        if where == "same_origin":
            url, extra = "/testtiles/{z}/{x}/{y}.png", [tile_server(asked)]
        else:
            tiles_app = FastAPI()
            tiles_app.include_router(tile_server(asked))
            other = stack.enter_context(live_server(tiles_app))
            url, extra = other + "/testtiles/{z}/{x}/{y}.png", []
        console = ConsoleConfig(map_tile_url=url)
        app = create_app(api_settings(), seeded.service, console=console, extra_routers=extra)
        base = stack.enter_context(live_server(app))
        pw = stack.enter_context(sync_playwright())  # type: ignore[operator]
        browser = _browser(pw)
        stack.callback(browser.close)
        w = Page(browser, "1366", token=seeded.tokens["viewer"])
        page = w.page
        page.goto(f"{base}/console/watch.html#map")
        page.wait_for_selector("#map .marker.pin")
        page.wait_for_function(
            "[...document.querySelectorAll('#map img.maptile')].some(i => i.naturalWidth)"
        )
        centres = _marker_centres(page, "#map .marker.pin")
        assert set(centres) == {"cam1", "cam2"}
        assert centres["cam1"] != centres["cam2"]
        zooms = {z for z, _, _ in asked}
        assert len(zooms) == 1 and 3 <= min(zooms) <= 18, asked
        (z,) = zooms
        for cam in ("cam1", "cam2"):  # the tiles under both cameras were asked for
            geo = CAMS[cam][2]
            assert geo is not None
            assert (z, *mercator_tile(*geo, z)) in asked, (cam, asked)
        before = len(asked)
        page.click("#zoom-in")
        page.wait_for_function(
            f"document.querySelector('img.maptile').dataset.key.startsWith('{z + 1}/')"
        )
        page.wait_for_function(
            "[...document.querySelectorAll('#map img.maptile')].every(i => i.naturalWidth)"
        )
        assert len(asked) > before
        page.click("#map .marker.pin[data-camera=cam1]")
        assert "运行中" in page.inner_text("#map .popup[data-camera=cam1]")
        w.shot(f"watch_map_tiles_{where}_1366.png")
        if where == "other_host":
            port = urlparse(url.replace("{", "").replace("}", "")).port
            direct = [r for r in w.requests if urlparse(r).port == port]
            assert not direct, f"the browser reached the tile server itself: {direct}"
            assert any("/api/v1/watch/tiles/" in r for r in w.requests)
        assert not w.outside, w.outside
        assert not w.errors, w.errors


# -- events --------------------------------------------------------------------------------------


def test_events_page_pages_past_200_newest_first(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    many = [
        make_event(1000 + i, camera="cam2", plate=f"浙A{i:05d}", t_ms=T0 + 60_000 + i * 1000)
        for i in range(250)
    ]
    seeded.service.ingest(many)
    for ev in many[-12:]:  # the newest have pictures (the thumbnails)
        rel = write_evidence(seeded.files_root, ev)
        seeded.service.events.set_evidence(ev.event_id, rel, f"{rel}/record.json")
    with live_server(watch_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = _browser(pw)
        try:
            for size in SIZES:
                w = Page(browser, size, token=seeded.tokens["viewer"])
                page = w.page
                page.goto(f"{base}/console/watch.html#events")
                rows = page.locator("#ev-table tbody tr[data-id]")
                total = len(many) + len(seeded.violations) + len(seeded.passes)
                for shown in (100, 200, 300):
                    page.wait_for_function(
                        f"document.querySelectorAll('#ev-table tbody tr[data-id]').length === "
                        f"{min(shown, total)}"
                    )
                    if shown < total:
                        page.click("#ev-more")
                assert page.locator("#ev-more").is_hidden()
                assert page.inner_text("#ev-count") == f"共 {total} 条（最新在前，已到底）"
                ids = rows.evaluate_all("rs => rs.map(r => r.dataset.id)")
                times = rows.evaluate_all("rs => rs.map(r => Number(r.dataset.time))")
                assert len(set(ids)) == total
                assert times == sorted(times, reverse=True)
                assert ids[0] == many[-1].event_id
                first = rows.first
                assert first.locator("td.plate").inner_text() == "浙A00249"
                assert CAMS["cam2"][0] in first.inner_text()
                # filters: camera and a plate with a wildcard
                page.select_option("#ev-camera", "cam2")
                page.fill("#ev-filters input[name=plate]", "浙A0012?")
                page.click("#ev-filters button[type=submit]")
                page.wait_for_function(
                    "document.querySelectorAll('#ev-table tbody tr[data-id]').length === 10"
                )
                plates = page.locator("#ev-table tbody td.plate").all_inner_texts()
                assert plates == [f"浙A0012{d}" for d in range(9, -1, -1)]
                page.wait_for_function(
                    "[...document.querySelectorAll('#ev-table td.thumb img')].length === 10"
                )
                page.select_option("#ev-camera", "")
                page.fill("#ev-filters input[name=plate]", "")
                page.click("#ev-filters button[type=submit]")
                page.wait_for_function(
                    "document.querySelectorAll('#ev-table tbody tr[data-id]').length === 100"
                )
                page.wait_for_function(
                    "document.querySelector('#ev-table td.thumb img:not([hidden])')"
                )
                w.shot(f"watch_events_{size}.png")
                assert w.no_hscroll()
                assert not w.errors, w.errors
                w.context.close()
            # stored since the page loaded: offered through the ingest cursor
            w = Page(browser, "1366", token=seeded.tokens["viewer"])
            w.page.goto(f"{base}/console/watch.html#events")
            w.page.wait_for_selector("#ev-table tbody tr[data-id]")
            late = [make_event(5000 + i, camera="cam1", t_ms=T0 + 900_000 + i) for i in range(3)]
            seeded.service.ingest(late)
            w.page.evaluate("checkNewEvents()")
            w.page.wait_for_selector("#ev-new:not([hidden])")
            assert w.page.inner_text("#ev-new") == "有 3 条新事件，点击刷新"
            w.page.click("#ev-new")
            w.page.wait_for_function(
                f"document.querySelector('#ev-table tbody tr').dataset.id === '{late[-1].event_id}'"
            )
            assert w.page.locator("#ev-new").is_hidden()
        finally:
            browser.close()


# -- alerts from the running pipeline ------------------------------------------------------------


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    from tests.equivalence import wait_for

    wait_for(cond, timeout_s, what)


@pytest.fixture
def scene_clip(tmp_path: Path) -> Path:
    from tests.equivalence import stamp_clip
    from tests.scenarios import SCENARIOS, render_scenario

    s = SCENARIOS["clean_violation"]
    gt = render_scenario("clean_violation", tmp_path / "raw.mp4")
    out = tmp_path / "scene.mp4"
    stamp_clip(gt.path, out, s.fps)
    return out


def _alerts(page: Any) -> list[str]:
    return list(page.locator("#alerts li.alert").evaluate_all("ls => ls.map(l => l.dataset.id)"))


def test_violation_from_the_running_pipeline_alerts_until_acknowledged(
    scene_clip: Path, tmp_path: Path
) -> None:
    """``sharpeyes serve`` wiring: the node runtime stores events and publishes them to the feed;
    the operator's page, opened before the car runs the red, raises the alert."""
    sync_playwright = _playwright()
    import tests.equivalence  # noqa: F401  (registers the scenario detector)
    from sharpeyes.api.commands.serve import attach_runtime, build_service
    from sharpeyes.api.node.runtime import NodeRuntime
    from sharpeyes.api.node.settings import ServiceConfig
    from sharpeyes.api.rest.auth import Role
    from sharpeyes.api.rest.feed import committed_publisher
    from tests.scenarios import scene_calibration

    name, place, geo = CAMS["cam1"]
    assert geo is not None
    cam = {
        "id": "jk1",
        "name": name,
        "location": place,
        "geo": {"latitude": geo[0], "longitude": geo[1]},
        "url": str(scene_clip),
        "live": True,
        "detector": {"model": "scenario:clean_violation"},
        "tracker": {"min_hits": 2},
        "intersection": scene_calibration().model_dump(mode="json"),
    }
    config = ServiceConfig.model_validate(
        {
            "cameras": [cam],
            "detector": cam["detector"],
            "store": {"url": str(tmp_path / "events.db"), "files_root": str(tmp_path / "files")},
            "loop_files": False,
            "rtsp": {"queue_size": 32},
        }
    )
    service = build_service(config)
    _, token = service.tokens.issue("operator", Role.VIEWER)
    runtime = NodeRuntime(
        config,
        store=service.events,
        on_committed=committed_publisher(service.feed),
        feed=True,
    )
    app = create_app(api_settings(), service)
    try:
        with live_server(app) as base, sync_playwright() as pw:  # type: ignore[operator]
            browser = _browser(pw)
            try:
                w = Page(browser, "1366", token=token)
                page = w.page
                page.goto(f"{base}/console/watch.html")
                page.wait_for_selector("#w-feed.on")  # subscribed before anything happens
                assert _alerts(page) == []
                runtime.start()
                attach_runtime(service, runtime)
                # the tile shows the runtime's last analysed frame
                page.wait_for_selector(".tile[data-camera=jk1][data-pic=live]", timeout=60_000)
                page.wait_for_selector("#alerts li.alert.viol", timeout=90_000)
                (alert_id,) = _alerts(page)
                stored = service.get_event(alert_id, violation=True)
                assert stored.type == "red_light_violation" and stored.camera_id == "jk1"
                item = page.locator(f"#alerts li[data-id='{alert_id}']")
                text = item.inner_text()
                assert "机动车闯红灯" in text and name in text and "jk1" not in text
                href = item.locator("a.alert-body").get_attribute("href")
                assert href == f"./#/violation/{alert_id}"
                assert page.inner_text("#alert-count") == "1"
                assert page.get_attribute(".tile[data-camera=jk1]", "data-state") == "running"
                w.shot("watch_alert_1366.png")
                # not acknowledged: still there after a reload
                page.reload()
                page.wait_for_selector(f"#alerts li[data-id='{alert_id}']")
                seq = page.evaluate("JSON.parse(localStorage.getItem('se_watch_alerts'))[0].seq")
                assert seq > 0
                # acknowledged: gone, and stays gone even when the feed replays everything
                item = page.locator(f"#alerts li[data-id='{alert_id}']")
                item.locator("button.ack").click()
                assert _alerts(page) == []
                acked = page.evaluate("JSON.parse(localStorage.getItem('se_watch_acked'))")
                assert alert_id in acked
                wait_until(runtime.all_finished, 90, "the camera to finish")
                page.evaluate("localStorage.setItem('se_watch_seq', '0')")  # replay all
                page.reload()
                page.wait_for_selector("#w-feed.on")
                page.wait_for_function(  # the violation's message was replayed
                    f"Number(JSON.parse(localStorage.getItem('se_watch_seq'))) >= {seq}"
                )
                assert _alerts(page) == []
                assert page.inner_text("#alert-count") == "0"
                w.shot("watch_acknowledged_1366.png")
                assert not w.outside, w.outside
                assert not w.errors, w.errors
            finally:
                browser.close()
    finally:
        runtime.stop()
        service.db.close()
