"""The geometry check in the service and the console (标定图): a camera's configured geometry drawn
over its latest frame by the one drawing that ``camera-check`` uses, and the static problems.

``GET /api/v1/cameras/{id}/geometry.png`` and ``GET /api/v1/cameras/{id}/geometry`` on a real
app whose frame provider holds a known frame; the console's geometry view in Chromium, with a
screenshot in ``tests/artifacts/``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from sharpeyes.api.rest.app import create_app
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.geometry_check import NOMINAL_SIZE
from sharpeyes.pipeline.geometry_draw import LEGEND_W, NEUTRAL_GREY, picture_size
from sharpeyes.pipeline.types import Frame, ImageBGR
from tests._api_fixtures import Seeded, api_settings, live_server, make_app, seed_service

ROOT = Path(__file__).resolve().parents[1]
W, H = 1280, 720
STOP_Y = 0.70
LANE_X = (0.30, 0.4333, 0.5667, 0.70)
GROUND = (70, 75, 80)  # BGR asphalt of the test frame
FAR = (400, 60)  # (y, x) left of every drawn element: the frame as it was
ON_STOP_LINE = (round(STOP_Y * H), 600)  # (y, x) on the stop line, clear of the lane arrows
URL = "rtsp://admin:s3cret@192.0.2.5:554/live"


def _lane(i: int) -> dict[str, Any]:
    x0, x1 = LANE_X[i], LANE_X[i + 1]
    xc = (x0 + x1) / 2
    return {
        "id": f"l{i + 1}",
        "number": i + 1,
        "polygon": [[x0, 1.0], [x1, 1.0], [x1, STOP_Y], [x0, STOP_Y]],
        "travel": [[xc, 0.95], [xc, 0.62]],
        "movements": {"straight": "main"},
    }


def geometry_config(camera_id: str = "cam1") -> dict[str, Any]:
    return {
        "id": camera_id,
        "name": "人民路",
        "location": "人民路与解放路口 南向",
        "url": URL,
        "intersection": {
            "signal_groups": [
                {"id": "main", "source": "video"},
                {"id": "ped", "kind": "pedestrian", "source": "external"},
            ],
            "signal_heads": [
                {"id": "h1", "group": "main", "region": [[0.86, 0.06], [0.89, 0.18]]},
            ],
            "approaches": [
                {
                    "id": "south",
                    "stop_line": [[LANE_X[0], STOP_Y], [LANE_X[3], STOP_Y]],
                    "entry_line": [[0.25, 0.56], [0.75, 0.56]],
                    "lanes": [_lane(0), _lane(1), _lane(2)],
                }
            ],
            "crosswalks": [
                {
                    "id": "cw",
                    "polygon": [[0.22, 0.58], [0.78, 0.58], [0.78, 0.68], [0.22, 0.68]],
                    "axis": [[0.25, 0.63], [0.75, 0.63]],
                    "signal_group": "ped",
                }
            ],
        },
    }


def swapped(data: dict[str, Any]) -> dict[str, Any]:
    """Lane numbers 1 and 3 swapped: the static checks say they are out of order."""
    out = copy.deepcopy(data)
    lanes = out["intersection"]["approaches"][0]["lanes"]
    lanes[0]["number"], lanes[2]["number"] = 3, 1
    return out


def road(size: tuple[int, int] = (W, H)) -> ImageBGR:
    """A plain road seen from above the approach: asphalt, lane markings, a painted stop line."""
    w, h = size
    img = np.full((h, w, 3), GROUND, np.uint8)
    img[: int(0.3 * h)] = (95, 120, 105)  # the far side: trees, buildings
    for x in LANE_X[1:3]:
        for y0 in range(int(0.72 * h), h, 40):
            cv2.line(img, (int(x * w), y0), (int(x * w), y0 + 22), (225, 225, 225), 3)
    for x in (LANE_X[0], LANE_X[3]):
        cv2.line(img, (int(x * w), int(0.72 * h)), (int(x * w), h), (225, 225, 225), 3)
    stop_y = int(0.715 * h)  # the painted line, just past the configured one
    cv2.line(img, (int(0.3 * w), stop_y), (int(0.7 * w), stop_y), (220, 220, 220), 6)
    for x in range(int(0.24 * w), int(0.77 * w), 28):  # zebra
        cv2.rectangle(img, (x, int(0.59 * h)), (x + 14, int(0.67 * h)), (210, 210, 210), -1)
    return img


def frame(size: tuple[int, int] = (W, H), seq: int = 7) -> Frame:
    return Frame("cam1", seq, seq / 25.0, 1_764_384_000_000 + seq * 40, road(size))


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, violations=2, passes=0)
    s.service.cameras.create(CameraConfig.model_validate(geometry_config()))
    s.service.cameras.create(CameraConfig(id="bare", name="未标定"))
    yield s
    s.service.db.close()


def decode(content: bytes) -> ImageBGR:
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return np.asarray(img, np.uint8)


def is_stop_red(px: Any) -> bool:
    b, g, r = (int(v) for v in px)
    return r > 200 and b < 110 and g < 110


# -- the picture ---------------------------------------------------------------------------------


def test_png_draws_the_geometry_over_the_live_frame(seeded: Seeded) -> None:
    live = {"cam1": frame()}
    seeded.service.set_frame_provider(live.get)
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        t0 = time.perf_counter()
        r = client.get("/api/v1/cameras/cam1/geometry.png", headers=seeded.auth("viewer"))
        first_s = time.perf_counter() - t0
        again = client.get("/api/v1/cameras/cam1/geometry.png", headers=seeded.auth("viewer"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-frame-source"] == "live"
    assert r.headers["x-frame-time-ms"] == str(live["cam1"].wall_time_ms)
    assert r.headers["x-geometry-problems"] == "0"
    assert r.headers["server-timing"].startswith("draw;dur=")
    img = decode(r.content)
    # the frame at its own size (≥ 1280 wide: not scaled), the legend beside it
    assert img.shape[:2] == (H, W + LEGEND_W)
    assert picture_size((W, H)) == (W + LEGEND_W, H)
    src = live["cam1"].image
    assert (img[FAR] == src[FAR]).all()  # the frame itself, lossless, where nothing is drawn
    y, x = ON_STOP_LINE
    assert is_stop_red(img[y, x]) and not is_stop_red(src[y, x])  # the stop line, over the frame
    assert (img[:, W:][5:, 5:20] != src[5:, -15:]).any()  # the legend is not the frame
    assert first_s < 5.0  # drawn on request (~0.1 s on one core; generous on a shared machine)
    # the same frame and config again: the same bytes, not drawn again
    assert again.content == r.content and again.headers["server-timing"] == "draw;dur=0.0"


def test_small_frames_are_scaled_up_to_the_canvas_width(seeded: Seeded) -> None:
    live = {"cam1": frame((640, 360))}
    seeded.service.set_frame_provider(live.get)
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        r = client.get("/api/v1/cameras/cam1/geometry.png", headers=seeded.auth("viewer"))
    img = decode(r.content)
    assert img.shape[:2] == (720, 1280 + LEGEND_W)  # 640x360 drawn at 2x
    y, x = ON_STOP_LINE
    assert is_stop_red(img[y, x])


def test_without_a_frame_a_grey_canvas_of_the_known_size(seeded: Seeded) -> None:
    live: dict[str, Frame] = {}
    seeded.service.set_frame_provider(live.get)
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        auth = seeded.auth("viewer")
        r = client.get("/api/v1/cameras/cam1/geometry.png", headers=auth)
        assert r.status_code == 200 and r.headers["x-frame-source"] == "none"
        assert "x-frame-time-ms" not in r.headers
        img = decode(r.content)
        w, h = NOMINAL_SIZE  # never seen: the nominal 1600x900
        assert img.shape[:2] == (h, w + LEGEND_W)
        assert (img[h // 2, 40] == NEUTRAL_GREY).all()
        assert is_stop_red(img[round(STOP_Y * h), w // 2 - 60])
        rep = client.get("/api/v1/cameras/cam1/geometry", headers=auth).json()
        assert rep["frame_source"] == "none" and rep["frame_size"] == [w, h]
        assert rep["frame_time_ms"] is None
        # a frame seen once: its size is kept for when there is none (camera stopped)
        live["cam1"] = frame((1920, 1080))
        assert client.get("/api/v1/cameras/cam1/geometry", headers=auth).json()["frame_size"] == [
            1920,
            1080,
        ]
        del live["cam1"]
        r = client.get("/api/v1/cameras/cam1/geometry.png", headers=auth)
        assert r.headers["x-frame-source"] == "none"
        assert decode(r.content).shape[:2] == (1080, 1920 + LEGEND_W)


def test_a_service_without_a_pipeline_draws_on_the_canvas(seeded: Seeded) -> None:
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        r = client.get("/api/v1/cameras/bare/geometry.png", headers=seeded.auth("viewer"))
        rep = client.get("/api/v1/cameras/bare/geometry", headers=seeded.auth("viewer")).json()
    assert r.status_code == 200 and r.headers["x-frame-source"] == "none"
    assert rep == {
        "camera_id": "bare",
        "configured": False,
        "frame_source": "none",
        "frame_time_ms": None,
        "frame_size": list(NOMINAL_SIZE),
        "problems": [],
        "key_points": [],
    }


def test_labels_in_english_on_request(seeded: Seeded) -> None:
    seeded.service.set_frame_provider({"cam1": frame()}.get)
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        auth = seeded.auth("viewer")
        zh = client.get("/api/v1/cameras/cam1/geometry.png", headers=auth)
        en = client.get("/api/v1/cameras/cam1/geometry.png?lang=en", headers=auth)
        bad = client.get("/api/v1/cameras/cam1/geometry.png?lang=fr", headers=auth)
    assert zh.status_code == en.status_code == 200
    assert decode(en.content).shape == decode(zh.content).shape
    assert bad.status_code == 422


# -- the problems --------------------------------------------------------------------------------


def test_findings_name_the_problem_of_a_changed_config(seeded: Seeded) -> None:
    seeded.service.set_frame_provider({"cam1": frame()}.get)
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        url = "/api/v1/cameras/cam1/geometry"
        r = client.get(url, headers=seeded.auth("viewer"))
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        rep = r.json()
        assert rep["problems"] == [] and rep["configured"] is True
        assert rep["frame_source"] == "live" and rep["frame_size"] == [W, H]
        assert "approach south: stop line (384, 504) px → (896, 504) px" in rep["key_points"]
        png = client.get(f"{url}.png", headers=seeded.auth("viewer"))
        assert png.headers["x-geometry-problems"] == "0"
        # the installer changes the lanes through the API, then checks again
        lanes = swapped(geometry_config())["intersection"]
        r = client.patch(
            "/api/v1/cameras/cam1", json={"intersection": lanes}, headers=seeded.auth("admin")
        )
        assert r.status_code == 200, r.text
        rep = client.get(url, headers=seeded.auth("viewer")).json()
        assert [p["key"] for p in rep["problems"]] == ["intersection.approaches.0.lanes"]
        assert "left-to-right" in rep["problems"][0]["message"]
        zh = rep["problems"][0]["message_zh"]  # the console's Chinese view shows this one
        assert "从左到右" in zh and "'south'" in zh and "l3（1 号）" in zh
        png2 = client.get(f"{url}.png", headers=seeded.auth("viewer"))
        assert png2.headers["x-geometry-problems"] == "1"  # redrawn for the new config
        assert png2.content != png.content


# -- access --------------------------------------------------------------------------------------


def test_unknown_camera_bad_id_and_roles(seeded: Seeded) -> None:
    seeded.service.set_frame_provider({"cam1": frame()}.get)
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        for suffix in ("geometry", "geometry.png"):
            url = f"/api/v1/cameras/cam1/{suffix}"
            assert client.get(url).status_code == 401
            bad = {"Authorization": "Bearer se_nope"}
            assert client.get(url, headers=bad).status_code == 401
            for role in ("viewer", "reviewer", "admin"):  # whoever may see the cameras
                assert client.get(url, headers=seeded.auth(role)).status_code == 200, role
            missing = client.get(f"/api/v1/cameras/nope/{suffix}", headers=seeded.auth("admin"))
            assert missing.status_code == 404
            assert "nope" in missing.json()["detail"]
            odd = client.get(f"/api/v1/cameras/bad%20id/{suffix}", headers=seeded.auth("admin"))
            assert odd.status_code == 422
        # a viewer learns nothing the camera list does not show: never the source's secret
        rep = client.get("/api/v1/cameras/cam1/geometry", headers=seeded.auth("viewer"))
        assert "s3cret" not in rep.text and "192.0.2.5" not in rep.text


def test_one_drawing_for_the_cli_and_the_service() -> None:
    """The drawing lives in pipeline/geometry_draw.py; camera-check only imports it."""
    cli = (ROOT / "api/commands/camera_check.py").read_text(encoding="utf-8")
    rest = (ROOT / "api/rest/geometry.py").read_text(encoding="utf-8")
    for src in (cli, rest):
        assert "from sharpeyes.pipeline.geometry_draw import" in src
    for name in ("def render_picture", "def _draw_lanes", "def _render_labels", "cv2."):
        assert name not in cli, name
    draw = (ROOT / "pipeline/geometry_draw.py").read_text(encoding="utf-8")
    assert "sharpeyes.api" not in draw  # pipeline never imports api


# -- the console ---------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.browser
def test_console_geometry_view(seeded: Seeded) -> None:
    from tests.test_web_console import ARGS, ARTIFACTS, CHROMIUM, _playwright

    sync_playwright = _playwright()
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    seeded.service.cameras.update(CameraConfig.model_validate(swapped(geometry_config())))
    seeded.service.set_frame_provider({"cam1": frame()}.get)
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            context = browser.new_context(  # bypass_csp: wait_for_function(str) needs eval
                viewport={"width": 1366, "height": 768}, locale="zh-CN", bypass_csp=True
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/")
            page.fill("#token", seeded.tokens["viewer"])
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#nav:not([hidden])")
            # from the camera list (设备状态): the camera's 标定图 link
            page.click("#nav a[href='#/health']")
            link = page.locator("#health-table tr[data-camera='cam1'] td.geo a")
            expect(link).to_have_text("标定图")
            link.click()
            page.wait_for_function("location.hash === '#/geometry/cam1'")
            page.wait_for_function(
                "(() => { const i = document.querySelector('#geo-img');"
                " return !i.hidden && i.complete && i.naturalWidth > 0; })()"
            )
            assert page.evaluate("document.querySelector('#geo-img').naturalWidth") == W + LEGEND_W
            expect(page.locator("#geo-count")).to_have_text("1")
            item = page.locator("#geo-problems li")
            expect(item).to_have_count(1)
            text = item.inner_text()
            assert "进口道 south · 车道" in text and "intersection.approaches.0.lanes" in text, text
            # the Chinese console shows the API's message_zh (api/rest/web/app.js)
            assert "车道号不是从左到右排列" in text and "l3（1 号）" in text, text
            assert page.inner_text("#geo-source").startswith("实时画面 2025-11-29")
            assert page.input_value("#geo-camera") == "cam1"
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=str(ARTIFACTS / "console_geometry.png"))

            # the camera without geometry, picked from the list: said so
            page.select_option("#geo-camera", "bare")
            page.wait_for_function("location.hash === '#/geometry/bare'")
            expect(page.locator("#geo-source")).to_contain_text("未配置路口或流量标定")
            expect(page.locator("#geo-source")).to_contain_text("尚无实时画面")
            expect(page.locator("#geo-ok")).to_be_visible()

            # in English
            page.select_option("#geo-camera", "cam1")
            page.wait_for_function("location.hash === '#/geometry/cam1'")
            expect(page.locator("#geo-count")).to_have_text("1")
            page.click("#lang")
            expect(page.locator("#geo-problems li")).to_contain_text("approach south · lane")
            page.wait_for_function(
                "(() => { const i = document.querySelector('#geo-img');"
                " return !i.hidden && i.complete && i.naturalWidth > 0; })()"
            )
            page.wait_for_timeout(200)
            page.screenshot(path=str(ARTIFACTS / "console_geometry_en.png"))
            # zoom: the picture opens in the lightbox
            page.click("#geo-img")
            expect(page.locator("#lightbox")).to_be_visible()
            assert not errors, errors
        finally:
            browser.close()
