"""The node runtime on real sample clips played as live cameras: service config, events in the
store, health, Prometheus export, cameras added/removed while running, and ``sharpeyes run``
stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from sharpeyes.api.node.prom import build_registry, render
from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig, load_service_config
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.pipeline.protocols import Detector

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "sample_videos" / "service_demo.yaml"


@pytest.fixture(scope="module")
def detector() -> Detector:
    from sharpeyes.models.factory import create_detector

    try:
        return create_detector("yolov5n", providers="cpu", input_size=(384, 640), download=False)
    except Exception:  # the dynamic export may be missing: the static one is in shared/
        return create_detector("yolov5n_static", providers="cpu", download=False)


def write(tmp_path: Path, data: object, name: str = "svc.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data, encoding="utf-8")
    return p


def live_cam(cid: str, clip: Path, **kw: object) -> dict[str, object]:
    return {"id": cid, "url": str(clip), "live": True, "analysis_fps": 5, **kw}


def wait_for(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


# -- config --------------------------------------------------------------------------------


def test_demo_config_loads_with_paths_resolved() -> None:
    cfg = load_service_config(DEMO)
    assert len(cfg.cameras) == 4 and cfg.loop_files
    for cam in cfg.cameras:
        assert cam.url is not None and Path(cam.url).is_absolute() and cam.live
        assert cam.url.endswith(".mp4") and "/shared/sample_videos/" in cam.url
    assert Path(cfg.store.url).is_absolute() and cfg.store.files_root.is_absolute()
    assert cfg.detector.input_size == (384, 640)
    assert all(f.description for f in ServiceConfig.model_fields.values())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cameras": [], "colour": 1}, "colour: Extra inputs are not permitted"),
        ({"batch": {"max_batch": 0}}, "batch.max_batch"),
        ({"cameras": [{"id": "a", "url": "x.mp4"}, {"id": "a", "url": "y.mp4"}]}, "used twice"),
        ({"cameras": [{"id": "a"}]}, "a camera needs a url"),
        ({"cameras": [{"id": "bad id", "url": "x.mp4"}]}, "cameras.0.id"),
        ({"delivery": {"base_url": "http://x"}}, "delivery."),
        ("cameras: [unclosed", "is not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(
    tmp_path: Path, data: object, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_service_config(write(tmp_path, data))
    text = str(info.value)
    assert message in text and "\n" not in text and str(tmp_path) in text


def test_relative_and_env_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPS", "/clips")
    cfg = load_service_config(
        write(
            tmp_path,
            {
                "cameras": [
                    {"id": "a", "url": "v/a.mp4"},
                    {"id": "b", "url": "$CLIPS/b.mp4"},
                    {"id": "c", "url": "rtsp://u:p@10.0.0.1/x"},
                ],
                "store": {"url": "db/ev.db", "files_root": "files"},
            },
        )
    )
    assert [c.url for c in cfg.cameras] == [
        str(tmp_path / "v/a.mp4"),
        "/clips/b.mp4",
        "rtsp://u:p@10.0.0.1/x",
    ]
    assert cfg.store.url == str(tmp_path / "db/ev.db")
    assert cfg.store.files_root == tmp_path / "files"


# -- runtime -------------------------------------------------------------------------------


def make_config(tmp_path: Path, cams: list[dict[str, object]], **kw: object) -> ServiceConfig:
    data = {
        "cameras": cams,
        "store": {"url": "events.db", "files_root": "."},
        "batch": {"max_batch": 4, "max_wait_ms": 20},
        **kw,
    }
    return load_service_config(write(tmp_path, data))


def test_runtime_runs_live_files_and_reports_health(
    tmp_path: Path, sample_videos: Path, detector: Detector
) -> None:
    clip = sample_videos / "highway_640x360.mp4"
    cfg = make_config(tmp_path, [live_cam("hw1", clip), live_cam("hw2", clip)])
    rt = NodeRuntime(cfg, detector=detector).start()
    try:
        assert wait_for(lambda: all(h.frames_analysed >= 15 for h in rt.health().values()), 30)
        health = rt.health()
        for cid in ("hw1", "hw2"):
            h = health[cid]
            assert h.state == "live" and h.width == 640 and h.height == 360
            assert 2.0 < h.input_fps < 7.0 and h.analysed_fps > 1.0
            assert h.drops["sampling"] > 2 * h.frames_analysed  # 29.97 fps clip, 5 fps analysed
            assert h.skew_ms is not None and -100 < h.skew_ms < 2000
            assert h.last_frame_age_s is not None and h.last_frame_age_s < 2.0
        text = render(build_registry(rt)).decode()
        assert 'sharpeyes_stream_state{camera="hw1",state="live"} 1.0' in text
        assert 'sharpeyes_stream_dropped_frames_total{camera="hw2",reason="sampling"}' in text
        assert "sharpeyes_batcher_images_total" in text
        assert rt.batcher_stats().images >= 30
    finally:
        rt.stop()
    store_events = _stored(tmp_path / "events.db")
    assert {"hw1", "hw2"} <= {s for s, _ in store_events}  # open tracks flushed at stop
    ids = [e for _, e in store_events]
    assert len(ids) == len(set(ids))
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == len(ids)


def test_cameras_added_and_removed_while_running(
    tmp_path: Path, sample_videos: Path, detector: Detector
) -> None:
    clip = sample_videos / "highway_640x360.mp4"
    cfg = make_config(tmp_path, [live_cam("first", clip)])
    rt = NodeRuntime(cfg, detector=detector).start()
    try:
        second = CameraConfig.model_validate(live_cam("second", clip))
        rt.add_camera(second)
        with pytest.raises(KeyError):
            rt.add_camera(second)
        assert wait_for(lambda: rt.health()["second"].frames_analysed >= 5, 20)
        rt.update_camera(second.model_copy(update={"analysis_fps": 2.0}))
        assert wait_for(lambda: rt.health()["second"].frames_analysed >= 3, 20)
        assert rt.remove_camera("second") and not rt.remove_camera("second")
        assert set(rt.health()) == {"first"}
        missing = CameraConfig.model_validate(live_cam("missing", tmp_path / "nope.mp4"))
        rt.add_camera(missing)
        assert wait_for(lambda: rt.health()["missing"].state in ("backoff", "failed"), 10)
        h = rt.health()["missing"]
        assert h.last_error is not None and "nope.mp4" in h.last_error
        assert rt.health()["first"].state == "live"  # unaffected
        assert rt.batcher_stats().by_stream.get("second", 0) >= 8
    finally:
        rt.stop()
    assert "second" in {s for s, _ in _stored(tmp_path / "events.db")}


def test_a_camera_asking_for_another_detector_input_gets_one(
    tmp_path: Path, sample_videos: Path
) -> None:
    """One truth: a checkpoint camera's small detector input (frame-filling vehicles) is what it
    runs on a node too, not the node's shared size; cameras asking for the same share it."""
    clip = sample_videos / "highway_640x360.mp4"
    small = {"detector": {"input_size": [192, 320]}}
    cams = [live_cam("plain", clip), live_cam("gate1", clip, **small)]
    cams.append(live_cam("gate2", clip, **small))
    rt = NodeRuntime(make_config(tmp_path, cams)).start()
    try:
        assert wait_for(lambda: all(h.frames_analysed >= 5 for h in rt.health().values()), 60)
        runners = rt.runners()
        node_size = rt.detector.info.input_size
        assert node_size != (192, 320)
        assert runners["plain"].detector.info.input_size == node_size
        assert runners["gate1"].detector.info.input_size == (192, 320)
        assert runners["gate2"].detector.info.input_size == (192, 320)
        assert len(rt._own) == 1  # the two checkpoint cameras share one detector
        by_stream = rt.batcher_stats().by_stream  # the own detector's batches counted too
        assert min(by_stream.get(c, 0) for c in ("plain", "gate1", "gate2")) >= 5
    finally:
        rt.stop()
    assert not rt._own


def _stored(db: Path) -> list[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return [(str(a), str(b)) for a, b in conn.execute("SELECT stream_id, event_id FROM events")]


@pytest.mark.integration
def test_sharpeyes_run_stops_cleanly_on_sigterm(tmp_path: Path, sample_videos: Path) -> None:
    clip = sample_videos / "highway_640x360.mp4"
    cfg = write(
        tmp_path,
        {
            "cameras": [
                live_cam("c1", clip),
                live_cam("c2", clip, url="rtsp://u:secret@127.0.0.1:9/x"),
            ],
            "detector": {"model": "yolov5n", "input_size": [384, 640], "providers": "cpu"},
            "store": {"url": "events.db", "files_root": "."},
            "metrics": {"port": 0, "log_every_s": 1},
            "rtsp": {"open_timeout_s": 1, "backoff_initial_s": 0.2},
        },
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharpeyes.api.commands.cli", "-v", "run", "--config", str(cfg)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for((tmp_path / "events.db").exists, 30)
        time.sleep(12)  # load the model, analyse a few seconds of the clip
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "signal SIGTERM: stopping" in out and "stopped" in out
    assert "secret" not in out and "u:***@127.0.0.1" in out
    assert "c1 live" in out  # the periodic health line
    # said on stdout, not only in the -v log: started, health, stopped
    assert "sharpeyes run: 2 cameras (c1, c2) in this process; health every 1 s" in out
    assert "\nhealth: c1 live" in out and "\nstopped: c1 " in out
    events = _stored(tmp_path / "events.db")
    assert events and {s for s, _ in events} == {"c1"}


def test_intersection_camera_runs_red_light_rules(
    tmp_path: Path, sample_videos: Path, detector: Detector
) -> None:
    from sharpeyes.pipeline.config import load_camera_config

    cam = load_camera_config(REPO / "sample_videos" / "intersection_hanoi_b.yaml")
    cam = cam.model_copy(
        update={"url": str(sample_videos / "intersection_hanoi_b_640x480.mp4"), "live": True}
    )
    cfg = make_config(tmp_path, [])
    rt = NodeRuntime(cfg, detector=detector).start()
    try:
        rt.add_camera(cam)
        assert wait_for(lambda: rt.health()[cam.id].frames_analysed >= 3, 20), rt.health()
        runner = rt.runners()[cam.id]
        assert runner.rules and runner.signal_board is not None and runner.evidence is not None
        assert rt.health()[cam.id].state == "live"
    finally:
        rt.stop()


def test_run_service_returns_when_files_end_and_rejects_busy_metrics_port(
    tmp_path: Path, sample_videos: Path
) -> None:
    import socket

    from sharpeyes.api.commands.run import run_service

    clip = sample_videos / "highway_640x360.mp4"
    base = {
        "cameras": [{"id": "f", "url": str(clip), "analysis_fps": 5}],
        "detector": {"model": "yolov5n", "input_size": [384, 640], "providers": "cpu"},
        "store": {"url": "events.db", "files_root": "."},
        "loop_files": False,
    }
    assert run_service(write(tmp_path, base), serve_api=False) == 0
    assert {s for s, _ in _stored(tmp_path / "events.db")} == {"f"}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cfg = write(tmp_path, {**base, "metrics": {"port": port}}, "busy.yaml")
        with pytest.raises(ConfigError, match=f"metrics: cannot listen on 127.0.0.1:{port}"):
            run_service(cfg, serve_api=False)


@pytest.mark.parametrize("state", ["connecting", "live", "stalled", "backoff", "failed", "stopped"])
def test_health_maps_to_the_rest_schema(state: str) -> None:
    from sharpeyes.api.commands.run import health_public
    from sharpeyes.api.node.runtime import CameraHealth

    h = CameraHealth(
        camera_id="c",
        url="rtsp://u:***@h/x",
        state=state,
        input_fps=25.0,
        analysed_fps=5.0,
        drops={"backlog": 2},
        reconnects=3,
        last_frame_age_s=0.1,
        decode_errors=0,
        skew_ms=120.0,
        last_error="boom",
    )
    pub = health_public(h)
    assert pub.state in ("connecting", "running", "stalled", "reconnecting", "error", "stopped")
    assert pub.reconnects == 3 and pub.drops_by_reason == {"backlog": 2} and pub.skew_ms == -120.0
    assert pub.detail == "boom" and h.to_dict()["drops"] == {"backlog": 2}
