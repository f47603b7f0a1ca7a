"""An H.265 intersection camera over RTSP (real GStreamer RTSP server, ``rtph265pay``): the node
decodes it, charges the same violations as ``analyze`` on the recording, and every violation's
evidence has its clip — stream-copied H.265 from the packet ring, playable from its first
keyframe. Most Chinese e-police and Xueliang cameras stream H.265."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import av
import pytest

import tests._rtsp_fixtures as _rtsp_fixtures
from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.pipeline.config import load_camera_config
from tests._hevc import reencode_h265
from tests._rtsp_fixtures import RtspServer
from tests.equivalence import match, outcome, stream_offset, via_analyze, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.rtsp]
rtsp_server_factory = _rtsp_fixtures.rtsp_server_factory

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARPEYES_SHARED", REPO.parent / "shared"))
HANOI = SHARED / "sample_videos" / "intersection_hanoi_b_640x480.mp4"
FRAMES = (90, 215)  # hb01–hb06 cross in this span (21 s)
FPS = 6.0


@pytest.mark.skipif(not HANOI.is_file(), reason="shared hanoi_b clip missing")
def test_h265_rtsp_intersection_charges_with_h265_clips(
    rtsp_server_factory: Callable[[dict[str, str]], RtspServer], tmp_path: Path
) -> None:
    clip = reencode_h265(HANOI, tmp_path / "hanoi_b_hevc.mp4", FRAMES, FPS)
    cam = load_camera_config(REPO / "sample_videos" / "intersection_hanoi_b.yaml")
    cam = cam.model_copy(update={"url": str(clip)})
    offline = via_analyze(cam, tmp_path / "analyze")
    assert len(offline.violations) >= 4

    server = rtsp_server_factory({"/hanoi265": f"h265:{clip}"})
    live = cam.model_copy(update={"url": f"rtsp://127.0.0.1:{server.port}/hanoi265"})
    out = tmp_path / "rtsp"
    config = ServiceConfig.model_validate(
        {
            "cameras": [live.model_dump(mode="json")],
            "detector": cam.detector.model_dump(mode="json"),
            "store": {"url": str(out / "events.db"), "files_root": str(out)},
            "rtsp": {"queue_size": 32},
        }
    )
    runtime = NodeRuntime(config).start()
    try:
        # one pass of the recording: at its end the server closes the session, the camera
        # reconnects, and the file would play again — stop there
        wait_for(
            lambda: runtime.health()[cam.id].reconnects > 0,
            (FRAMES[1] - FRAMES[0] + 1) / FPS + 30.0,
            "the end of the first pass",
        )
        health = runtime.health()[cam.id]
    finally:
        runtime.stop()
    got = outcome(out / "events.db", cam.id)
    offset = stream_offset(offline.violations, got.violations)
    problems = match(offline.violations, got.violations, 1.0 / FPS + 1e-3, offset)
    assert not problems, (problems, health)
    records = list((out / "evidence").glob("*/*/*/record.json"))
    assert len(records) == len(got.violations)
    for rec in records:
        doc = json.loads(rec.read_text(encoding="utf-8"))
        assert doc["clip"] is not None and doc["clip"]["codec"] == "hevc", doc
        e1, _, e3 = doc["violation"]["evidence_pts"]
        assert doc["clip"]["start_pts_s"] <= e1 and doc["clip"]["end_pts_s"] >= e3
        with av.open(str(rec.parent / "clip.mp4")) as c:
            assert c.streams.video[0].codec_context.name == "hevc"
            first = next(c.demux(c.streams.video[0]))
            assert first.is_keyframe
            c.seek(0)
            assert sum(1 for _ in c.decode(video=0)) > 0
