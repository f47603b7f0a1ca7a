"""An RTSP intersection camera (real GStreamer RTSP server, the hanoi_b H.264 track served as
is) charges the same violations as ``analyze`` on the file: the intersection parts are built on
the first frame, when the RTSP session tells the frame size."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import tests._rtsp_fixtures as _rtsp_fixtures
from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.pipeline.config import load_camera_config
from tests._rtsp_fixtures import RtspServer
from tests.equivalence import match, outcome, stream_offset, via_analyze

pytestmark = [pytest.mark.integration, pytest.mark.rtsp]
rtsp_server_factory = _rtsp_fixtures.rtsp_server_factory

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARPEYES_SHARED", REPO.parent / "shared"))
HANOI = SHARED / "sample_videos" / "intersection_hanoi_b_640x480.mp4"
CLIP_S = 384 / 6.02


@pytest.mark.skipif(not HANOI.is_file(), reason="shared hanoi_b clip missing")
def test_rtsp_intersection_charges_the_same_violations_as_the_file(
    rtsp_server_factory: Callable[[dict[str, str]], RtspServer], tmp_path: Path
) -> None:
    cam = load_camera_config(REPO / "sample_videos" / "intersection_hanoi_b.yaml")
    cam = cam.model_copy(update={"url": str(HANOI)})
    offline = via_analyze(cam, tmp_path / "analyze")
    assert len(offline.violations) == 15

    server = rtsp_server_factory({"/hanoi": str(HANOI)})
    live = cam.model_copy(update={"url": f"rtsp://127.0.0.1:{server.port}/hanoi"})
    out = tmp_path / "rtsp"
    config = ServiceConfig.model_validate(
        {
            "cameras": [live.model_dump(mode="json")],
            "detector": cam.detector.model_dump(mode="json"),
            "store": {"url": str(out / "events.db"), "files_root": str(out)},
            "rtsp": {"queue_size": 32},  # absorbs the server's first-frame burst
        }
    )
    runtime = NodeRuntime(config).start()
    try:
        time.sleep(CLIP_S + 8.0)  # one pass of the clip at stream speed, plus the tail
        health = runtime.health()[cam.id]
        entry_wiring = runtime.wirings()[cam.id]
    finally:
        runtime.stop()
    assert entry_wiring.intersection and entry_wiring.packet_ring
    # (a few frames are dropped at the start: the server sends its first frames in a burst,
    # faster than real time, before any red-light crossing of the clip)
    got = outcome(out / "events.db", cam.id)
    offset = stream_offset(offline.violations, got.violations)
    problems = match(offline.violations, got.violations, 1.0 / 6.02 + 1e-3, offset)
    assert not problems, (problems, health)
