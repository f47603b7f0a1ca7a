"""`sharpeyes serve`: the REST API over a running node — health, streams, live events, cameras."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sharpeyes.api.commands.run import run_service

pytestmark = pytest.mark.integration

TOKEN = "se_0123456789ab.demo-secret-for-the-serve-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(fn: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def test_serve_exposes_the_running_node(
    tmp_path: Path, sample_videos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHARPEYES_DEMO_TOKEN", TOKEN)
    monkeypatch.setenv("SHARPEYES_API_KEY", "serve-test-key")
    clip = sample_videos / "highway_640x360.mp4"
    cfg = tmp_path / "svc.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "cameras": [{"id": "hw", "url": str(clip), "live": True, "analysis_fps": 5}],
                "detector": {"model": "yolov5n", "input_size": [384, 640], "providers": "cpu"},
                "store": {"url": "events.db", "files_root": "."},
                "loop_files": False,
            }
        )
    )
    port = free_port()
    stop = threading.Event()
    result: list[int] = []
    runner = threading.Thread(
        target=lambda: result.append(run_service(cfg, serve_api=True, port=port, stop=stop)),
        daemon=True,
    )
    runner.start()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=base, timeout=5) as c:
            wait_for(lambda: c.get("/healthz").status_code == 200, 60, "healthz")
            ready = wait_for(lambda: c.get("/readyz").json().get("ready"), 30, "readyz")
            assert ready is True
            assert c.get("/api/v1/streams").status_code == 401
            streams = wait_for(
                lambda: c.get("/api/v1/streams", headers=auth).json()["items"], 30, "streams"
            )
            assert [s["camera_id"] for s in streams] == ["hw"]
            # what actually runs, not the camera section's (unset) providers
            detector = wait_for(
                lambda: c.get("/api/v1/streams/hw", headers=auth).json()["detector"], 30, "det"
            )
            assert detector == "onnxruntime (CPUExecutionProvider)", detector
            events = wait_for(
                lambda: c.get("/api/v1/events", headers=auth).json()["items"], 60, "an event"
            )
            assert events[0]["camera_id"] == "hw"
            cams = c.get("/api/v1/cameras", headers=auth).json()
            assert any(cam["id"] == "hw" for cam in cams["items"]), cams
            assert c.get("/metrics").status_code == 200
    finally:
        stop.set()
        runner.join(timeout=60)
    assert result == [0]
    # the file camera ended, but the service kept serving until stopped
    assert not runner.is_alive()


def test_serve_listens_where_the_config_says_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sharpeyes serve --config X`` without ``--port`` serves on the config's ``api.port``."""
    monkeypatch.setenv("SHARPEYES_DEMO_TOKEN", TOKEN)
    port = free_port()
    cfg = tmp_path / "svc.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "cameras": [],
                "store": {"url": str(tmp_path / "events.db"), "files_root": str(tmp_path)},
                "api": {"host": "127.0.0.1", "port": port},
            }
        )
    )
    stop = threading.Event()
    runner = threading.Thread(
        target=lambda: run_service(cfg, serve_api=True, stop=stop), daemon=True
    )
    runner.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            assert wait_for(lambda: c.get("/healthz").status_code == 200, 60, "healthz")
    finally:
        stop.set()
        runner.join(timeout=30)
