"""A GB/T 28181-style camera (MPEG-PS over RTP, ``PS/90000``) charges the same red-light
violations as the same clip analysed from the file (issue 18, item 4): the hanoi_b intersection
clip served as a program stream over RTP, analysed by the node runtime, against ``analyze`` on
the file; violations match one for one (kind, crossing time within one frame).

``tests/test_equivalence_rtsp.py`` holds plain RTSP/H.264 from the real GStreamer server to the
same reference, so PS and H.264 charge the same violations. The two are not run side by side:
on a 2-core machine two live cameras with the detector drop a quarter of their frames to
backlog, differently each run, and the violations differ for that reason alone.

Slow (the clip plays once at stream speed, 64 s, then the file is analysed): ``pytest -m slow``.
The default run has the shorter check on the highway clip (``tests/test_rtsp_faults.py``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.pipeline.config import load_camera_config
from tests.equivalence import match, outcome, stream_offset, via_analyze
from tests.rtsp_faults import PsRtspServer, make_ps_file

pytestmark = [pytest.mark.integration, pytest.mark.rtsp, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARPEYES_SHARED", REPO.parent / "shared"))
HANOI = SHARED / "sample_videos" / "intersection_hanoi_b_640x480.mp4"
CLIP_S = 384 / 6.02


def test_ps_over_rtp_charges_the_violations_of_the_file(tmp_path: Path) -> None:
    if not HANOI.is_file():
        pytest.fail(f"shared clip missing: {HANOI}")
    cam = load_camera_config(REPO / "sample_videos" / "intersection_hanoi_b.yaml")
    ps = PsRtspServer(make_ps_file(HANOI, tmp_path / "hanoi.ps"), duration_s=CLIP_S)
    out = tmp_path / "ps"
    config = ServiceConfig.model_validate(
        {
            "cameras": [cam.model_copy(update={"url": ps.url()}).model_dump(mode="json")],
            "detector": cam.detector.model_dump(mode="json"),
            "store": {"url": str(out / "events.db"), "files_root": str(out)},
            # absorbs the first-frame burst; one pass of the clip (no reconnect to a replay)
            "rtsp": {"queue_size": 32, "backoff_initial_s": 60.0, "backoff_max_s": 60.0},
        }
    )
    runtime = NodeRuntime(config).start()
    try:
        time.sleep(CLIP_S + 8.0)
        health = runtime.health()[cam.id]
    finally:
        runtime.stop()
        ps.close()
    assert "PS over RTP" in (health.decoder or ""), health
    live = outcome(out / "events.db", cam.id).violations
    offline = via_analyze(cam.model_copy(update={"url": str(HANOI)}), tmp_path / "file")
    print(f"violations: file {len(offline.violations)}, PS over RTP {len(live)}; {health}")
    assert len(offline.violations) == 15
    offset = stream_offset(offline.violations, live)
    problems = match(offline.violations, live, 1.0 / 6.02 + 1e-3, offset)
    assert not problems, (problems, health)
