"""``run``/``serve`` stopping: the cameras' last events (their open tracks, flushed at stop)
are committed before delivery drains, so they are delivered too; rows still pending at exit
are announced (how many, kept in the outbox for the next start or ``sharpeyes deliver``)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import ReceiverConfig

pytestmark = pytest.mark.integration

PASSWORD = "stop-test-pw"
DEVICE = "34020000001190000001"
CAMERA_DEVICE = "34020000001190000062"


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def node_config(tmp_path: Path, clip: Path, base_url: str, **delivery: Any) -> ServiceConfig:
    return ServiceConfig.model_validate(
        {
            "cameras": [
                {
                    "id": "hw",
                    "url": str(clip),
                    "live": True,
                    "analysis_fps": 5,
                    "device_id": CAMERA_DEVICE,
                }
            ],
            "detector": {"model": "yolov5n", "input_size": [384, 640], "providers": "cpu"},
            "store": {"url": str(tmp_path / "events.db"), "files_root": str(tmp_path)},
            "loop_files": False,
            "delivery": {
                "base_url": base_url,
                "device_id": DEVICE,
                "username": "admin",
                "password": PASSWORD,
                "request_timeout_s": 2.0,
                "retry_backoff_initial_s": 0.05,
                "retry_backoff_max_s": 0.3,
                "idle_sleep_s": 0.05,
                **delivery,
            },
        }
    )


def outbox(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT state, COUNT(*) FROM outbox WHERE destination = 'viid' GROUP BY state"
        ).fetchall()
    return {str(s): int(n) for s, n in rows}


def test_the_events_flushed_at_stop_are_delivered(tmp_path: Path, sample_videos: Path) -> None:
    clip = sample_videos / "highway_640x360.mp4"
    with ReceiverServer(config=ReceiverConfig(accounts={"admin": PASSWORD})) as platform:
        runtime = NodeRuntime(node_config(tmp_path, clip, platform.url)).start()
        try:
            # stopped while vehicles are in view: stop flushes their open tracks as events
            wait_for(lambda: len(platform.state.ids()) >= 1, 120, "a first record delivered")
            assert not runtime.all_finished()
        finally:
            runtime.stop()
        states = outbox(tmp_path / "events.db")
        assert states.get("pending", 0) == 0, states  # nothing left behind at stop
        assert states.get("delivered", 0) > 1, states
        assert len(platform.state.ids()) == states["delivered"]


def test_rows_left_pending_at_stop_are_announced(
    tmp_path: Path, sample_videos: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = sample_videos / "highway_640x360.mp4"
    # nobody listens there: nothing can be delivered
    cfg = node_config(tmp_path, clip, "http://127.0.0.1:9", connect_timeout_s=0.2)
    runtime = NodeRuntime(cfg).start()
    try:
        wait_for(runtime.all_finished, 120, "the file to end")
    finally:
        with caplog.at_level(logging.WARNING):
            runtime.stop(timeout_s=5)
    pending = outbox(tmp_path / "events.db").get("pending", 0)
    assert pending > 0
    lines = [r.getMessage() for r in caplog.records if "kept in the outbox" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert f"{pending} records" in lines[0] and "sharpeyes deliver" in lines[0]
