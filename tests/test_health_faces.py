"""A face camera says what its face capture did: in ``analyze``, ``camera-check``, its health
(``sharpeyes run`` / ``serve`` in-process, worker processes, the cluster), ``GET /api/v1/streams``,
the cluster API, Prometheus and the console's 设备状态 page — a camera aimed too wide for faces
is told its faces are too small to capture, with the size found and the fix
(``pipeline/structuring/face_stats.py``).

The live test plays PETS 2009's walkers (OpenCV's ``vtest.avi``, seen from an upper floor, faces
under 16 px; fetched by :mod:`benchmarks.fetch_clips`) through a node runtime with face capture
on.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from benchmarks import fetch_clips
from sharpeyes.api.cluster.health import (
    CameraState,
    CameraStatus,
    WorkerReport,
    WorkerSummary,
    merge,
    render_metrics,
)
from sharpeyes.api.cluster.leases import CameraRow, CameraSpec
from sharpeyes.api.cluster.routes import health_public as cluster_public
from sharpeyes.api.cluster.routes import make_cluster_router
from sharpeyes.api.commands.camera_check import PictureQuality
from sharpeyes.api.commands.run import health_public
from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.api.rest.schemas import FaceCountsPublic
from sharpeyes.pipeline.runner import RunSummary
from sharpeyes.pipeline.structuring.face_stats import (
    MIN_FACES,
    FaceStats,
    describe_faces,
    face_finding,
    faces_too_small,
)
from tests._api_fixtures import Seeded, live_server, make_app, seed_service
from tests.conftest import need
from tests.test_health_plates import _health, _prometheus, wait_for

WIDE = FaceStats(captured=0, too_small=7, no_face=25, largest_small_px=15.2, needed_px=24)
GOOD = FaceStats(captured=6, too_small=1, low_quality=1, no_face=2, largest_small_px=20.0)
CAM = "walkers"


def test_faces_are_judged_too_small_only_with_enough_of_them() -> None:
    assert faces_too_small(WIDE) and not faces_too_small(GOOD)
    few = FaceStats(too_small=MIN_FACES - 1, largest_small_px=12.0)
    assert not faces_too_small(few) and face_finding(few) is None  # 4 faces say nothing yet
    assert not faces_too_small(FaceStats(no_face=40))  # no face found at all: not judged
    half = FaceStats(captured=3, too_small=3, largest_small_px=20.0)
    assert not faces_too_small(half)  # more than half must be too small
    assert face_finding(WIDE) == (
        "faces too small to capture: 7 of 7 found under 24 px high (the largest 15 px) — zoom in "
        "or move the camera closer"
    )
    zh = face_finding(WIDE, "zh")
    assert zh is not None and zh.startswith("人脸过小无法抓拍：检出的 7 张人脸中 7 张小于 24 像素")
    assert face_finding(GOOD) is None and face_finding(GOOD, "zh") is None
    assert describe_faces(WIDE, "zh").startswith("人脸：32 人中抓拍 0 张；7 张过小（最大 15 像素")


def test_the_public_health_prometheus_and_the_cluster_carry_the_faces() -> None:
    wide = health_public(_health("w", faces=WIDE)).faces
    assert wide is not None
    assert (wide.persons, wide.captured, wide.too_small, wide.no_face) == (32, 0, 7, 25)
    assert wide.largest_small_px == 15.2 and wide.needed_px == 24
    assert wide.too_small_to_capture and wide.finding == face_finding(WIDE)
    assert wide.finding_zh == face_finding(WIDE, "zh")
    good = health_public(_health("g", faces=GOOD)).faces
    assert good is not None and good.captured == 6 and not good.too_small_to_capture
    assert good.finding is None and health_public(_health("n", faces=None)).faces is None
    assert pickle.loads(pickle.dumps(_health("w", faces=WIDE))).faces == WIDE  # a worker's report
    text = _prometheus({"w": _health("w", faces=WIDE), "n": _health("n", faces=None)})
    assert 'sharpeyes_stream_persons_total{camera="w"} 32.0' in text
    assert 'sharpeyes_stream_faces_captured_total{camera="w"} 0.0' in text
    assert 'sharpeyes_stream_faces_too_small_total{camera="w"} 7.0' in text
    assert 'faces_captured_total{camera="n"}' not in text
    rows = [CameraRow(CameraSpec(cid), True, 1, "w1", 10, 1) for cid in ("w", "n")]
    statuses = (
        CameraStatus("w", 1, CameraState.RUNNING, 10, faces=WIDE),
        CameraStatus("n", 1, CameraState.RUNNING, 10),
    )
    report = WorkerReport("w1", "node1", 2.0, statuses, 1)
    health = merge(rows, {"w1": report}, [WorkerSummary("w1", "node1", "ready", 2.0, 2.0)], 1)
    public = {c.camera_id: c for c in cluster_public("local", health).cameras}
    assert public["w"].faces == FaceCountsPublic.of(WIDE) and public["n"].faces is None
    text = render_metrics(health)
    assert 'sharpeyes_cluster_camera_faces_too_small_total{camera="w"} 7' in text
    assert 'sharpeyes_cluster_camera_persons_total{camera="w"} 32' in text
    assert 'faces_captured_total{camera="n"}' not in text


def test_the_openapi_schema_describes_the_faces(tmp_path: Path) -> None:
    seeded = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, violations=1, passes=0)
    try:
        health = {
            cid: health_public(_health(cid, faces=f)) for cid, f in (("w", WIDE), ("n", None))
        }
        seeded.service.set_health_provider(lambda: health)
        app = make_app(seeded)
        comps = app.openapi()["components"]["schemas"]
        faces = comps["StreamHealthPublic"]["properties"]["faces"]
        assert {"$ref": "#/components/schemas/FaceCountsPublic"} in faces["anyOf"]
        fields = set(comps["FaceCountsPublic"]["properties"])
        assert {"persons", "captured", "too_small", "needed_px", "finding", "finding_zh"} <= fields
        with TestClient(app) as client:
            body = client.get("/api/v1/streams", headers=seeded.auth("viewer")).json()
        got = {i["camera_id"]: i["faces"] for i in body["items"]}
        assert got["n"] is None and got["w"]["finding"] == face_finding(WIDE)
    finally:
        seeded.service.db.close()
    cluster = FastAPI()
    cluster.include_router(make_cluster_router(lambda: None))
    assert "faces" in cluster.openapi()["components"]["schemas"]["CameraHealthPublic"]["properties"]


def test_camera_check_tells_a_face_camera_aimed_too_wide() -> None:
    summary = RunSummary(stream_id="c", faces=WIDE)
    picture = PictureQuality.of(summary)
    assert "faces: 0 captured of 32 persons; 7 faces too small" in picture.line()
    (found,) = picture.findings()
    assert found.key == "faces" and found.message == face_finding(WIDE)
    assert found.message_zh == face_finding(WIDE, "zh")
    assert PictureQuality.of(RunSummary(stream_id="c", faces=GOOD)).findings() == []
    assert PictureQuality.of(RunSummary(stream_id="c")).faces is None  # no face capture
    assert picture.as_dict()["faces"] == {
        "reads": 0,
        "captured": 0,
        "too_small": 7,
        "low_quality": 0,
        "no_face": 25,
        "largest_small_px": 15.2,
        "needed_px": 24,
    }


# -- live: the PETS 2009 walkers through a node runtime ----------------------------------------


@pytest.fixture(scope="module")
def walkers() -> Path:
    try:
        return fetch_clips.fetch("vtest.avi")
    except fetch_clips.FetchError as exc:
        need(False, f"vtest.avi: {exc}")
        raise


@dataclass
class Served:
    runtime: NodeRuntime
    seeded: Seeded


@pytest.fixture(scope="module")
def served(walkers: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``sharpeyes serve`` in one process: a face camera over the walkers (played as fast as it
    is analysed), plugged into a REST service, until the clip has played."""
    from sharpeyes.api.commands.serve import attach_runtime

    out = tmp_path_factory.mktemp("served_faces")
    seeded = seed_service(f"sqlite:///{out / 'api.db'}", out, violations=1, passes=0)
    cfg = ServiceConfig.model_validate(
        {
            "cameras": [
                {
                    "id": CAM,
                    "url": str(walkers),
                    "events": {"kinds": ["person"]},
                    "faces": {"enabled": True},
                }
            ],
            "detector": {"model": "yolov5n", "providers": "cpu"},
            "store": {"url": str(out / "node" / "events.db"), "files_root": str(out / "node")},
            "loop_files": False,
        }
    )
    runtime = NodeRuntime(cfg).start()
    try:
        attach_runtime(seeded.service, runtime)
        wait_for(runtime.all_finished, 240, "the walkers' clip to finish")
        yield Served(runtime, seeded)
    finally:
        runtime.stop()
        seeded.service.db.close()


@pytest.mark.integration
def test_a_live_face_camera_aimed_too_wide_is_told_by_its_health_the_api_and_prometheus(
    served: Served,
) -> None:
    from sharpeyes.api.node.prom import build_registry, render

    faces = served.runtime.health()[CAM].faces
    assert faces is not None
    # 32 walkers' events (about; tracks split and merge), no face large enough, most found
    # under 24 px: told (measured: 0 captured of 32, 7 too small, the largest 15 px)
    assert faces.persons >= 20 and faces.captured == 0, faces
    assert faces.too_small >= MIN_FACES and faces.largest_small_px < 24, faces
    assert faces_too_small(faces)
    with TestClient(make_app(served.seeded)) as client:
        body = client.get("/api/v1/streams", headers=served.seeded.auth("viewer")).json()
    got: dict[str, Any] = {i["camera_id"]: i for i in body["items"]}[CAM]["faces"]
    assert got == FaceCountsPublic.of(faces).model_dump()
    assert got["too_small_to_capture"] and "zoom in" in got["finding"]
    text = render(build_registry(served.runtime)).decode()
    assert f'sharpeyes_stream_faces_too_small_total{{camera="{CAM}"}} {faces.too_small}.0' in text


@pytest.mark.integration
@pytest.mark.browser
def test_the_console_shows_the_face_line_and_the_warning(served: Served) -> None:
    """The 设备状态 page in headless Chromium: the face camera's line and the warning with the
    fix — in Chinese, then in English."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        need(False, "playwright is not installed")
    from tests.test_web_console import ARGS, CHROMIUM

    need(CHROMIUM.is_file() or shutil.which("chromium") is not None, "chromium not installed")
    faces = served.runtime.health()[CAM].faces
    assert faces is not None
    largest = f"{faces.largest_small_px:.0f}"
    shot = Path("/tmp/sharpeyes_health_faces.png")
    with live_server(make_app(served.seeded)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/")
            page.fill("#token", served.seeded.tokens["viewer"])
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#queue-table[aria-busy=false]")
            page.click("#nav a[href='#/health']")
            cell = page.locator(f"#health-table tr[data-camera='{CAM}'] td.state")
            expect(cell.locator(".faces")).to_be_visible()
            line = cell.locator(".faces").inner_text()
            assert line.startswith(
                f"人脸：{faces.persons} 人中抓拍 0 张，{faces.too_small} 张过小"
            ), line
            warnings = [w for w in cell.locator(".why").all_inner_texts() if "人脸" in w]
            assert warnings == [
                f"人脸过小无法抓拍：检出的 {faces.found} 张人脸中 {faces.too_small} 张小于 24 像素"
                f"（最大 {largest} 像素）——请拉近焦距或移近摄像机"
            ]
            page.screenshot(path=str(shot), full_page=True)
            page.click("#lang")
            expect(cell.locator(".faces")).to_contain_text("faces:")
            warnings = [w for w in cell.locator(".why").all_inner_texts() if "faces" in w]
            assert warnings == [
                f"faces too small to capture: {faces.too_small} of {faces.found} found under 24 px "
                f"high (the largest {largest} px) — zoom in or move the camera closer"
            ]
            page.screenshot(path=str(shot.with_name(shot.stem + "_en.png")))
            assert errors == []
        finally:
            browser.close()
