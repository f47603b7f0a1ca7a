"""A live checkpoint camera says how wide its plates are: in its health (``sharpeyes run`` /
``serve`` in-process, worker processes, the cluster), ``GET /api/v1/streams``, the cluster API,
Prometheus and the console's 设备状态 page — a camera installed too wide is told its plates are
too small to read, with the fix (``pipeline/structuring/plate_tally.py``).

The live tests play the Beijing checkpoint clip's first 18 s twice as live cameras: shrunk to
3/8 (plates about 42 px wide: found, none read, too small) and at full size (plates about
110 px wide: read, no finding).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

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
from sharpeyes.api.commands.run import health_public
from sharpeyes.api.node.health import CameraHealth
from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.api.rest.deps import Admin, Viewer
from sharpeyes.api.rest.schemas import PlateSizesPublic, StreamHealthPublic
from sharpeyes.models.plate import MIN_TEXT_PX
from sharpeyes.pipeline.structuring.face_stats import FaceStats
from sharpeyes.pipeline.structuring.plate_tally import (
    MIN_PLATES,
    PlateSizes,
    PlateTally,
    finding,
    too_small_to_read,
)
from tests._api_fixtures import Seeded, live_server, make_app, seed_service
from tests.conftest import need
from tests.test_structuring_eval import _segment

SHARED_CLIP = "plates_closeup_beijing_640x360.mp4"
SMALL, FULL = "kakou_small", "kakou_full"  # the clip shrunk to 3/8, and as it is
SCALES = {SMALL: 0.375, FULL: 1.0}
FRAMES = 450  # 18 s: about 11 plates found at 3/8 (5 needed before their width is judged)
SCREENSHOT = Path("/tmp/sharpeyes_health_plates.png")


def tally(*widths: tuple[float, str | None]) -> PlateSizes:
    t = PlateTally(MIN_TEXT_PX)
    for w, text in widths:
        t.add(w, text)
    return t.sizes()


SMALL_PLATES = tally(*[(40.0 + i % 4, None) for i in range(6)])  # median 41 px, none read
WIDE_PLATES = tally(*[(110.0 + i, "京M76967") for i in range(6)])


# -- the judgement and every conversion, without video ---------------------------------------------


def test_plates_are_judged_too_small_only_with_enough_of_them() -> None:
    assert too_small_to_read(SMALL_PLATES) and not too_small_to_read(WIDE_PLATES)
    few = tally(*[(40.0, None)] * (MIN_PLATES - 1))
    assert not too_small_to_read(few) and finding(few) is None  # 4 plates say nothing yet
    assert not too_small_to_read(PlateTally(MIN_TEXT_PX).sizes())  # none found
    assert finding(SMALL_PLATES) == (
        "plates are 41 px wide in the picture (median of 6 found): too small to read, 50 px "
        "needed — zoom in or move the camera closer"
    )
    zh = finding(SMALL_PLATES, "zh")
    assert zh is not None and zh.startswith("车牌在画面中宽约 41 像素") and "拉近焦距" in zh
    assert finding(WIDE_PLATES) is None and finding(WIDE_PLATES, "zh") is None


def _health(
    camera_id: str, plates: PlateSizes | None = None, faces: FaceStats | None = None
) -> CameraHealth:
    return CameraHealth(
        camera_id=camera_id,
        url="x.mp4",
        state="live",
        input_fps=25.0,
        analysed_fps=10.0,
        drops={},
        reconnects=0,
        last_frame_age_s=0.1,
        decode_errors=0,
        skew_ms=None,
        plates=plates,
        faces=faces,
    )


def test_the_public_health_and_prometheus_carry_the_plates() -> None:
    small = health_public(_health("s", SMALL_PLATES)).plates
    assert small is not None
    assert (small.found, small.read, small.too_small) == (6, 0, 6)
    assert small.median_width_px == 41.0 and small.needed_px == MIN_TEXT_PX
    assert small.too_small_to_read and small.finding == finding(SMALL_PLATES)
    assert small.finding_zh == finding(SMALL_PLATES, "zh")
    wide = health_public(_health("w", WIDE_PLATES)).plates
    assert wide is not None and wide.read == 6 and wide.too_small == 0
    assert not wide.too_small_to_read and wide.finding is None and wide.finding_zh is None
    assert health_public(_health("n", None)).plates is None  # a camera reading no plates
    text = _prometheus({"s": _health("s", SMALL_PLATES), "n": _health("n", None)})
    assert 'sharpeyes_stream_plates_found_total{camera="s"} 6.0' in text
    assert 'sharpeyes_stream_plates_read_total{camera="s"} 0.0' in text
    assert 'sharpeyes_stream_plates_too_small_total{camera="s"} 6.0' in text
    assert 'sharpeyes_stream_plate_width_pixels{camera="s"} 41.0' in text
    assert 'camera="n"' in text and 'plates_found_total{camera="n"}' not in text


def test_the_openapi_schema_describes_the_plates_and_the_answers_conform(
    tmp_path: Path,
) -> None:
    """``plates`` is in the OpenAPI schema of ``GET /api/v1/streams`` and of the cluster's
    camera health; the streams answers with plates (too small, read, none) conform to it."""
    seeded = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, violations=1, passes=0)
    try:
        health = {
            cid: health_public(_health(cid, p))
            for cid, p in (("s", SMALL_PLATES), ("w", WIDE_PLATES), ("n", None))
        }
        seeded.service.set_health_provider(lambda: health)
        app = make_app(seeded)
        comps = app.openapi()["components"]["schemas"]
        plates = comps["StreamHealthPublic"]["properties"]["plates"]
        assert {"$ref": "#/components/schemas/PlateSizesPublic"} in plates["anyOf"]
        assert "too small" in plates["description"]
        fields = set(comps["PlateSizesPublic"]["properties"])
        assert {"found", "read", "too_small", "median_width_px", "finding", "finding_zh"} <= fields
        _conforms(app, seeded, "/api/v1/streams")
    finally:
        seeded.service.db.close()
    cluster = FastAPI()
    cluster.include_router(make_cluster_router(lambda: None))
    comps = cluster.openapi()["components"]["schemas"]
    assert "plates" in comps["CameraHealthPublic"]["properties"]


def _conforms(app: FastAPI, seeded: Seeded, prefix: str) -> None:
    """Schemathesis over the operations under ``prefix``: answers conform to the schema."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error, response_schema_conformance

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tested = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if not op.path.startswith(prefix):
            continue

        @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def run(case: Any) -> None:
            case.call_and_validate(
                headers=seeded.auth("admin"),
                checks=[not_a_server_error, response_schema_conformance],
            )

        run()
        tested += 1
    assert tested == 2  # the list and one camera


def test_the_cluster_merges_and_shows_the_plates() -> None:
    rows = [CameraRow(CameraSpec(cid), True, 1, "w1", 10, 1) for cid in ("s", "n")]
    statuses = (
        CameraStatus("s", 1, CameraState.RUNNING, 10, plates=SMALL_PLATES),
        CameraStatus("n", 1, CameraState.RUNNING, 10),
    )
    report = WorkerReport("w1", "node1", 2.0, statuses, 1)
    health = merge(rows, {"w1": report}, [WorkerSummary("w1", "node1", "ready", 2.0, 2.0)], 1)
    snap = health.camera("s")
    assert snap is not None and snap.plates == SMALL_PLATES
    public = {c.camera_id: c for c in cluster_public("local", health).cameras}
    assert public["n"].plates is None
    assert public["s"].plates == PlateSizesPublic.of(SMALL_PLATES)
    text = render_metrics(health)
    assert 'sharpeyes_cluster_camera_plates_found_total{camera="s"} 6' in text
    assert 'sharpeyes_cluster_camera_plates_too_small_total{camera="s"} 6' in text
    assert 'sharpeyes_cluster_camera_plate_width_pixels{camera="s"} 41.0' in text
    assert 'plates_found_total{camera="n"}' not in text


def _prometheus(health: dict[str, Any]) -> str:
    from sharpeyes.api.node.prom import build_registry, render
    from tests.test_prom_events import FakeRuntime

    class Runtime(FakeRuntime):
        def health(self) -> dict[str, object]:
            return dict(health)

    return render(build_registry(Runtime({}))).decode()  # type: ignore[arg-type]


# -- live cameras over the shrunk and the full-size clip ---------------------------------------


@pytest.fixture(scope="module")
def clips(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    src = shared / "sample_videos" / SHARED_CLIP
    need(src.is_file(), f"{src} not found")
    out = tmp_path_factory.mktemp("plate_clips")
    made = {}
    for cid, scale in SCALES.items():
        made[cid] = out / f"{cid}.mp4"
        _segment(src, made[cid], 0, FRAMES, scale)
    return made


def cameras(clips: dict[str, Path], **extra: object) -> list[dict[str, object]]:
    """The two checkpoint cameras (plate reading on, the default detector)."""
    return [
        {"id": cid, "url": str(path), "structuring": {"enabled": True}, **extra}
        for cid, path in clips.items()
    ]


def node_config(clips: dict[str, Path], out: Path, **kw: object) -> ServiceConfig:
    return ServiceConfig.model_validate(
        {
            "cameras": cameras(clips, live=True),
            "detector": {"model": "yolov5n", "providers": "cpu"},
            "store": {"url": str(out / "events.db"), "files_root": str(out)},
            "loop_files": False,
            **kw,
        }
    )


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def assert_told(small: Any, full: Any) -> None:
    """The shrunk camera's plates are found, too small to read, with the finding; the full-size
    camera's are read, with none. ``small``/``full``: PlateSizes, or the public dicts."""
    if isinstance(small, PlateSizes) and isinstance(full, PlateSizes):
        small, full = PlateSizesPublic.of(small), PlateSizesPublic.of(full)
        small, full = small.model_dump(), full.model_dump()
    assert small["found"] >= MIN_PLATES and small["read"] == 0, small
    assert small["too_small"] > 0 and small["median_width_px"] < MIN_TEXT_PX, small
    assert small["too_small_to_read"] and "zoom in" in small["finding"], small
    assert small["finding_zh"].startswith("车牌在画面中宽约"), small
    assert full["found"] >= MIN_PLATES and full["read"] >= MIN_PLATES, full
    assert full["too_small"] == 0 and full["median_width_px"] > 2 * MIN_TEXT_PX, full
    assert not full["too_small_to_read"] and full["finding"] is None, full


@dataclass
class Served:
    runtime: NodeRuntime
    seeded: Seeded


@pytest.fixture(scope="module")
def served(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``sharpeyes serve`` in one process: the node runtime with both cameras live, plugged
    into a REST service (``attach_runtime``), until both clips have played."""
    from sharpeyes.api.commands.serve import attach_runtime

    out = tmp_path_factory.mktemp("served")
    seeded = seed_service(f"sqlite:///{out / 'api.db'}", out, violations=2, passes=0)
    runtime = NodeRuntime(node_config(clips, out / "node")).start()
    try:
        attach_runtime(seeded.service, runtime)
        wait_for(runtime.all_finished, 120, "both live cameras to finish")
        yield Served(runtime, seeded)
    finally:
        runtime.stop()
        seeded.service.db.close()


@pytest.mark.integration
def test_a_live_camera_too_wide_is_told_by_its_health_the_api_and_prometheus(
    served: Served,
) -> None:
    from sharpeyes.api.node.prom import build_registry, render

    health = served.runtime.health()
    small, full = health[SMALL].plates, health[FULL].plates
    assert small is not None and full is not None
    assert_told(small, full)
    with TestClient(make_app(served.seeded)) as client:
        body = client.get("/api/v1/streams", headers=served.seeded.auth("viewer")).json()
        items = {i["camera_id"]: i for i in body["items"]}
        assert_told(items[SMALL]["plates"], items[FULL]["plates"])
        one = client.get(f"/api/v1/streams/{SMALL}", headers=served.seeded.auth("viewer"))
        assert one.json()["plates"] == items[SMALL]["plates"]
    text = render(build_registry(served.runtime)).decode()
    assert f'sharpeyes_stream_plates_found_total{{camera="{SMALL}"}} {small.seen}.0' in text
    assert f'sharpeyes_stream_plates_too_small_total{{camera="{SMALL}"}} {small.too_small}.0' in (
        text
    )
    assert f'sharpeyes_stream_plates_read_total{{camera="{FULL}"}} {full.read}.0' in text
    assert f'sharpeyes_stream_plate_width_pixels{{camera="{SMALL}"}}' in text


@pytest.mark.integration
@pytest.mark.browser
def test_the_console_shows_the_plate_line_and_the_warning(served: Served) -> None:
    """The 设备状态 page in headless Chromium: each checkpoint camera's plate line, and the
    warning with the fix on the shrunk one only — in Chinese, then in English."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        need(False, "playwright is not installed")
    from tests.test_web_console import ARGS, CHROMIUM

    need(CHROMIUM.is_file() or shutil.which("chromium") is not None, "chromium not installed")
    small = served.runtime.health()[SMALL].plates
    assert small is not None and small.median_px is not None
    width = f"{small.median_px:.0f}"
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
            page.wait_for_selector("#queue-table[aria-busy=false] tbody tr.sel[data-id]")
            page.click("#nav a[href='#/health']")
            cell = page.locator(f"#health-table tr[data-camera='{SMALL}'] td.state")
            expect(cell.locator(".plates")).to_be_visible()
            line = cell.locator(".plates").inner_text()
            assert line.startswith(f"车牌：检出 {small.seen} 次，识别 0 次"), line
            assert f"{small.too_small} 次过小无法识别（中位宽度 {width} 像素）" in line, line
            warnings = [w for w in cell.locator(".why").all_inner_texts() if "车牌" in w]
            assert warnings == [
                f"车牌过小无法识别：中位宽度 {width} 像素，需 50 像素——请拉近焦距或移近摄像机"
            ]
            assert page.evaluate(  # the warning in the problems' colour, the line not
                "(() => { const c = document.querySelector(\"tr[data-camera='"
                + SMALL
                + "'] td.state\"); return getComputedStyle(c.querySelector('.why')).color !== "
                "getComputedStyle(c.querySelector('.plates')).color; })()"
            )
            wide = page.locator(f"#health-table tr[data-camera='{FULL}'] td.state")
            assert "过小" not in wide.inner_text()
            assert not [w for w in wide.locator(".why").all_inner_texts() if "车牌" in w]
            assert wide.locator(".plates").inner_text().startswith("车牌：检出")
            page.locator(f"#health-table tr[data-camera='{SMALL}']").scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            page.click("#lang")
            expect(cell.locator(".plates")).to_contain_text("plates:")
            warnings = [w for w in cell.locator(".why").all_inner_texts() if "plates" in w]
            assert warnings == [
                f"plates too small to read: median {width} px wide, 50 px needed — zoom in or "
                "move the camera closer"
            ]
            page.screenshot(path=str(SCREENSHOT.with_name(SCREENSHOT.stem + "_en.png")))
            assert errors == []
        finally:
            browser.close()


@pytest.mark.integration
def test_worker_processes_carry_the_plates_to_the_parent(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """Two worker processes (one camera each): their reports carry the plates to the parent's
    health and its Prometheus export."""
    from sharpeyes.api.node.plan import plan_workers
    from sharpeyes.api.node.process_metrics import node_registry
    from sharpeyes.api.node.processes import NodeFacade
    from sharpeyes.api.node.prom import render

    cfg = node_config(clips, tmp_path, node={"report_every_s": 0.5, "stop_timeout_s": 20})
    plans = plan_workers(cfg, 2, gpus=0)
    assert len(plans) == 2
    facade = NodeFacade(cfg, plans).start()
    try:
        wait_for(facade.all_finished, 150, "both workers' cameras to finish")
        health = facade.health()
        text = render(node_registry(facade)).decode()
    finally:
        facade.stop()
    small, full = health[SMALL].plates, health[FULL].plates
    assert small is not None and full is not None
    assert_told(small, full)
    assert_told(
        health_public(health[SMALL]).model_dump()["plates"],
        health_public(health[FULL]).model_dump()["plates"],
    )
    assert f'sharpeyes_stream_plates_too_small_total{{camera="{SMALL}"}} {small.too_small}.0' in (
        text
    )
    assert facade.health()[SMALL].plates == small  # a stopped worker's last health kept


@pytest.mark.integration
def test_the_cluster_carries_the_plates_to_its_api_and_metrics(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """Both cameras on the cluster's local backend (files, not paced): each worker's camera
    status carries its plates to the cluster health, ``GET /api/v1/cluster`` and its metrics."""
    from sharpeyes.api.cluster.service import ClusterSettings, start_cluster
    from sharpeyes.pipeline.config import CameraConfig

    settings = ClusterSettings.model_validate(
        {
            "db_url": str(tmp_path / "cluster.db"),
            "workers": 2,
            "tick_s": 0.05,
            "files_root": str(tmp_path),
            "commit_every_s": 0.2,
        }
    )
    cams = [CameraConfig.model_validate(c) for c in cameras(clips)]
    handle = start_cluster(settings, cams)
    try:

        def finished() -> bool:
            states = {cid: handle.health().camera(cid) for cid in SCALES}
            failed = [h for h in states.values() if h is not None and h.state == "failed"]
            assert not failed, failed
            return all(h is not None and h.state == CameraState.FINISHED for h in states.values())

        wait_for(finished, 180, "both cluster cameras to finish")
        app = FastAPI()
        app.include_router(make_cluster_router(lambda: handle))
        for dep in (Viewer, Admin):  # no token store here: every caller is allowed
            app.dependency_overrides[get_args(dep)[1].dependency] = lambda: None
        with TestClient(app) as client:
            body = client.get("/api/v1/cluster").json()
            text = client.get("/api/v1/cluster/metrics").text
    finally:
        handle.stop()
    got = {c["camera_id"]: c["plates"] for c in body["cameras"]}
    assert_told(got[SMALL], got[FULL])
    found = got[SMALL]["found"]
    assert f'sharpeyes_cluster_camera_plates_found_total{{camera="{SMALL}"}} {found}' in text
    assert f'sharpeyes_cluster_camera_plate_width_pixels{{camera="{FULL}"}}' in text


def test_stream_health_without_plates_stays_valid() -> None:
    """A camera without plate reading: no plates entry (older clients see nothing new)."""
    h = StreamHealthPublic(camera_id="c", state="running")
    assert h.plates is None and "plates" in h.model_dump()
