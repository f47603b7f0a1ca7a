"""The operator watch screen's backend: camera map positions, the console's tile server setting,
``/api/v1/watch/cameras`` and the latest picture per camera (live frame, else stored evidence)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from sharpeyes.api.node.health import CameraStats
from sharpeyes.api.rest.app import create_app
from sharpeyes.api.rest.errors import NotFoundError, UnavailableError
from sharpeyes.api.rest.routes.console import ConsoleConfig
from sharpeyes.api.rest.routes.streams import GENERIC_DETAIL
from sharpeyes.api.rest.routes.watch import (
    TILE_WIDTH,
    MapTile,
    TileCache,
    TileProxy,
    encode_tile,
    tile_proxy,
)
from sharpeyes.api.rest.schemas import StreamHealthPublic
from sharpeyes.pipeline.config import CameraConfig, GeoLocation
from sharpeyes.pipeline.types import Detections, Frame, Tracks
from tests._api_fixtures import Seeded, api_settings, seed_service

GEO = {"latitude": 30.2501, "longitude": 120.1702}


def frame(camera: str = "cam1", seq: int = 7, size: tuple[int, int] = (1280, 720)) -> Frame:
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (0, 0, 255)
    return Frame(camera, seq, seq / 25.0, 1_764_384_000_000 + seq * 40, img)


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    s.service.cameras.create(
        CameraConfig.model_validate({"id": "cam1", "name": "人民路 东向", "geo": GEO})
    )
    s.service.cameras.create(CameraConfig(id="cam9", name="未接入", location="测试路口"))
    yield s
    s.service.db.close()


# -- config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon"), [(90.5, 120.0), (-91.0, 0.0), (30.0, 180.5), (30.0, -181.0)]
)
def test_geo_out_of_range_is_rejected(lat: float, lon: float) -> None:
    with pytest.raises(ValidationError):
        GeoLocation(latitude=lat, longitude=lon)


def test_geo_is_optional_and_forbids_unknown_keys() -> None:
    assert CameraConfig().geo is None
    cam = CameraConfig.model_validate({"geo": GEO})
    assert cam.geo == GeoLocation(latitude=30.2501, longitude=120.1702)
    with pytest.raises(ValidationError):
        CameraConfig.model_validate({"geo": {**GEO, "altitude": 12}})
    with pytest.raises(ValidationError):
        CameraConfig.model_validate({"geo": {"latitude": 30.0}})


@pytest.mark.parametrize(
    "url",
    [
        "/tiles/{z}/{x}/{y}.png",
        "http://10.1.2.3/tiles/{z}/{x}/{y}.png",
        "https://map.gat.local:8443/wmts?z={z}&x={x}&y={y}",
    ],
)
def test_tile_url_templates_accepted(url: str) -> None:
    assert ConsoleConfig(map_tile_url=url).map_tile_url == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("/tiles/{z}/{x}.png", "lacks {y}"),
        ("//cdn.example.com/{z}/{x}/{y}.png", "must start with"),
        ("ftp://10.0.0.1/{z}/{x}/{y}.png", "must start with"),
        ("javascript:alert(1)//{z}{x}{y}", "must start with"),
    ],
)
def test_tile_url_templates_rejected(url: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        ConsoleConfig(map_tile_url=url)


def test_console_config_serves_the_tile_url(seeded: Seeded) -> None:
    app = create_app(api_settings(), seeded.service)
    with TestClient(app) as client:
        body = client.get("/api/v1/console/config", headers=seeded.auth("viewer")).json()
        assert body["map_tile_url"] is None  # offline networks: no default tile server
    cfg = ConsoleConfig(map_tile_url="/tiles/{z}/{x}/{y}.png")
    with TestClient(create_app(api_settings(), seeded.service, console=cfg)) as client:
        body = client.get("/api/v1/console/config", headers=seeded.auth("viewer")).json()
        assert body["map_tile_url"] == "/tiles/{z}/{x}/{y}.png"


# -- cameras with health ---------------------------------------------------------------------------


def test_watch_cameras_join_registry_and_health(seeded: Seeded) -> None:
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        assert client.get("/api/v1/watch/cameras").status_code == 401
        r = client.get("/api/v1/watch/cameras", headers=seeded.auth("viewer"))
        assert r.status_code == 200
        items = {c["id"]: c for c in r.json()["items"]}
    assert list(items) == ["cam1", "cam9"]
    cam1 = items["cam1"]
    assert cam1["name"] == "人民路 东向" and cam1["geo"] == GEO
    assert cam1["state"] == "running" and cam1["analysed_fps"] == 10.0
    assert cam1["last_frame_age_s"] == 0.04 and cam1["reconnects"] == 1
    assert "url" not in cam1  # the screen never needs the source URL
    cam9 = items["cam9"]
    assert cam9["state"] == "offline" and cam9["geo"] is None and cam9["location"] == "测试路口"


def test_watch_cameras_list_cameras_only_the_runtime_knows(seeded: Seeded) -> None:
    def health() -> dict[str, StreamHealthPublic]:
        return {"zz": StreamHealthPublic(camera_id="zz", state="degraded", analysed_fps=4.2)}

    seeded.service.set_health_provider(health)
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        items = client.get("/api/v1/watch/cameras", headers=seeded.auth("viewer")).json()["items"]
    assert [(c["id"], c["state"], c["name"]) for c in items] == [
        ("cam1", "offline", "人民路 东向"),
        ("cam9", "offline", "未接入"),
        ("zz", "degraded", "zz"),
    ]


def test_watch_cameras_say_why_a_camera_is_down_to_admins_only(seeded: Seeded) -> None:
    """The wall shows why a camera is not running: the source's own error text for admins
    (it can name hosts and paths), the generic line for everyone else, as on /streams; signal
    problems for all; nothing for a running camera's detail."""
    raw = "cannot open rtsp://user:pw@10.0.0.9/x: Connection refused"

    def health() -> dict[str, StreamHealthPublic]:
        return {
            "down": StreamHealthPublic(camera_id="down", state="error", detail=raw),
            "sig": StreamHealthPublic(
                camera_id="sig", state="running", detail="connected",
                signal_problems={"main": "no lamp lit in 64 s"},
            ),
        }  # fmt: skip

    seeded.service.set_health_provider(health)
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        seen = {}
        for role in ("viewer", "admin"):
            r = client.get("/api/v1/watch/cameras", headers=seeded.auth(role))
            seen[role] = {c["id"]: c["problems"] for c in r.json()["items"]}
    assert seen["viewer"]["down"] == [GENERIC_DETAIL]
    admin = seen["admin"]["down"]
    assert len(admin) == 1 and "Connection refused" in admin[0] and "pw@" not in admin[0]
    assert seen["viewer"]["sig"] == seen["admin"]["sig"] == ["main: no lamp lit in 64 s"]
    assert seen["viewer"]["cam1"] == []


def test_camera_api_accepts_a_map_position(seeded: Seeded) -> None:
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        body = {"id": "cam5", "name": "新增", "url": "rtsp://192.0.2.5/x", "geo": GEO}
        r = client.post("/api/v1/cameras", json=body, headers=seeded.auth("admin"))
        assert r.status_code == 201, r.text
        bad = {**body, "id": "cam6", "geo": {"latitude": 95.0, "longitude": 0.0}}
        r = client.post("/api/v1/cameras", json=bad, headers=seeded.auth("admin"))
        assert r.status_code == 422  # the request body is checked against the same model
        assert r.json()["detail"][0]["loc"][-2:] == ["geo", "latitude"]
        items = client.get("/api/v1/watch/cameras", headers=seeded.auth("viewer")).json()["items"]
    assert next(c for c in items if c["id"] == "cam5")["geo"] == GEO


# -- latest picture -------------------------------------------------------------------------------


def test_live_frame_is_served_scaled_down(seeded: Seeded) -> None:
    live = {"cam1": frame()}
    seeded.service.set_frame_provider(live.get)
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        url = "/api/v1/watch/cameras/cam1/frame.jpg"
        assert client.get(url).status_code == 401
        r = client.get(url, headers=seeded.auth("viewer"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-frame-source"] == "live"
    assert r.headers["x-frame-time-ms"] == str(live["cam1"].wall_time_ms)
    assert r.headers["cache-control"] == "no-store"
    img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    assert img.shape == (360, TILE_WIDTH, 3)
    assert img[180, 100, 2] > 200 and img[180, 540, 2] < 50  # left half red, right half black


def test_without_a_live_frame_the_newest_evidence_is_served(seeded: Seeded) -> None:
    newest = max(seeded.violations, key=lambda e: e.first_seen_ms)
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        r = client.get("/api/v1/watch/cameras/cam1/frame.jpg", headers=seeded.auth("viewer"))
        assert r.status_code == 200
        assert r.headers["x-frame-source"] == "event"
        # seeded passes of cam1 are newer but have no evidence: the newest with a picture
        assert int(r.headers["x-frame-time-ms"]) >= newest.first_seen_ms
        assert r.content[:2] == b"\xff\xd8"
        r = client.get("/api/v1/watch/cameras/cam9/frame.jpg", headers=seeded.auth("viewer"))
        assert r.status_code == 404
        r = client.get("/api/v1/watch/cameras/bad%20id/frame.jpg", headers=seeded.auth("viewer"))
        assert r.status_code == 422


def test_tile_cache_encodes_a_frame_once() -> None:
    cache = TileCache()
    f = frame(seq=1)
    first = cache.get(f)
    assert cache.get(f) is first
    newer = cache.get(frame(seq=2))
    assert newer is not first and newer.seq == 2
    cache.forget_except(set())
    assert cache.get(frame(seq=2)) is not newer


def test_encode_tile_keeps_small_frames_as_they_are() -> None:
    small = np.full((120, 160, 3), 90, np.uint8)
    img = cv2.imdecode(np.frombuffer(encode_tile(small), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (120, 160, 3)


def test_camera_stats_keep_the_last_frame_without_its_gpu_buffer() -> None:
    stats = CameraStats()
    assert stats.latest is None
    f = Frame("cam1", 3, 0.12, 1_000, np.zeros((4, 4, 3), np.uint8), device_image=object())
    stats.on_frame(f, Detections.empty(), Tracks.empty(), {}, [])
    assert stats.latest is not None and stats.latest.seq == 3
    assert stats.latest.device_image is None and stats.latest.image is f.image
    plain = frame(seq=4)
    stats.on_frame(plain, Detections.empty(), Tracks.empty(), {}, [])
    assert stats.latest is plain


# -- map tiles of a tile server on another host -------------------------------------------------


def _transport(calls: list[str], status: int = 200, media: str = "image/png") -> Any:
    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        if "fail" in str(request.url):
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(status, content=b"\x89PNG tile", headers={"content-type": media})

    return httpx.MockTransport(handle)


def test_tile_proxy_fetches_once_and_keeps_the_newest() -> None:
    calls: list[str] = []
    proxy = TileProxy("http://10.1.2.3/t/{z}/{x}/{y}.png", capacity=2, transport=_transport(calls))
    tile = proxy.get(12, 3421, 1678)
    assert tile == MapTile(b"\x89PNG tile", "image/png")
    assert proxy.get(12, 3421, 1678) is tile
    assert calls == ["http://10.1.2.3/t/12/3421/1678.png"]
    proxy.get(12, 3422, 1678)
    proxy.get(12, 3423, 1678)  # capacity 2: the oldest is dropped
    proxy.get(12, 3421, 1678)
    assert len(calls) == 4
    proxy.close()


@pytest.mark.parametrize(
    ("template", "status", "media", "error"),
    [
        ("http://10.1.2.3/{z}/{x}/{y}", 404, "text/html", NotFoundError),
        ("http://10.1.2.3/{z}/{x}/{y}", 500, "image/png", UnavailableError),
        ("http://10.1.2.3/{z}/{x}/{y}", 200, "text/html", UnavailableError),
        ("http://fail.invalid/{z}/{x}/{y}", 200, "image/png", UnavailableError),
    ],
)
def test_tile_proxy_errors(template: str, status: int, media: str, error: type) -> None:
    proxy = TileProxy(template, transport=_transport([], status, media))
    with pytest.raises(error):
        proxy.get(3, 1, 2)


def test_tile_proxy_refuses_tiles_outside_the_world() -> None:
    calls: list[str] = []
    proxy = TileProxy("http://10.1.2.3/{z}/{x}/{y}", transport=_transport(calls))
    with pytest.raises(NotFoundError):
        proxy.get(2, 4, 0)  # 2^2 = 4 columns: 0..3
    assert calls == []


def test_tile_proxy_only_for_another_host() -> None:
    assert tile_proxy(None) is None
    assert tile_proxy("/tiles/{z}/{x}/{y}.png") is None  # the page loads these itself
    proxy = tile_proxy("http://10.1.2.3/{z}/{x}/{y}.png")
    assert proxy is not None
    proxy.close()


def test_tile_route(seeded: Seeded) -> None:
    with TestClient(create_app(api_settings(), seeded.service)) as client:
        r = client.get("/api/v1/watch/tiles/3/1/2", headers=seeded.auth("viewer"))
        assert r.status_code == 404  # no tile server on another host configured
    cfg = ConsoleConfig(map_tile_url="http://127.0.0.1:9/{z}/{x}/{y}.png")  # nothing listens
    with TestClient(create_app(api_settings(), seeded.service, console=cfg)) as client:
        assert client.get("/api/v1/watch/tiles/3/1/2").status_code == 401
        r = client.get("/api/v1/watch/tiles/3/1/2", headers=seeded.auth("viewer"))
        assert r.status_code == 503
        r = client.get("/api/v1/watch/tiles/23/1/2", headers=seeded.auth("viewer"))
        assert r.status_code == 422
