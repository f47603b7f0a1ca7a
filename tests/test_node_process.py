"""The node's worker processes on CPU: two spawned workers, one live sample clip each, events in
the shared store from both, health and metrics aggregated in the parent, a SIGKILLed worker
restarted, SIGTERM stops all; and ``run_node`` returning when non-looping files end."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sharpeyes.api.node.plan import plan_workers
from sharpeyes.api.node.process_metrics import node_registry
from sharpeyes.api.node.processes import NodeFacade, run_node
from sharpeyes.api.node.prom import render
from sharpeyes.api.node.settings import ServiceConfig

pytestmark = pytest.mark.integration

DETECTOR = {"model": "yolov5n", "input_size": [384, 640], "providers": "cpu", "intra_op_threads": 1}


def node_config(tmp_path: Path, clip: Path, **kw: object) -> ServiceConfig:
    cams = [{"id": cid, "url": str(clip), "live": True, "analysis_fps": 5} for cid in ("a", "b")]
    data = {
        "cameras": cams,
        "detector": DETECTOR,
        "store": {"url": str(tmp_path / "events.db"), "files_root": str(tmp_path)},
        "node": {"report_every_s": 0.3, "restart_backoff_s": 0.2, "stop_timeout_s": 20},
        **kw,
    }
    return ServiceConfig.model_validate(data)


def wait_for(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


def stored(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT stream_id, event_id FROM events").fetchall()
    return [(str(a), str(b)) for a, b in rows]


def test_two_workers_events_health_and_restart(tmp_path: Path, sample_videos: Path) -> None:
    cfg = node_config(tmp_path, sample_videos / "highway_640x360.mp4")
    plans = plan_workers(cfg, 2, gpus=0)
    assert [p.camera_ids for p in plans] == [("a",), ("b",)]
    facade = NodeFacade(cfg, plans).start()
    try:
        assert wait_for(lambda: all(h.events >= 1 for h in facade.health().values()), 30), (
            facade.health()
        )
        health = facade.health()
        assert set(health) == {"a", "b"} and all(h.state == "live" for h in health.values())
        assert all(
            h.detector_backend == "onnxruntime (CPUExecutionProvider)" for h in health.values()
        )
        pids = [h.pid for h in facade.workers()]
        assert len(set(pids)) == 2 and os.getpid() not in pids
        text = render(node_registry(facade)).decode()
        assert 'sharpeyes_node_worker_up{gpu="",worker="1"} 1.0' in text
        assert 'sharpeyes_stream_state{camera="a",state="live"} 1.0' in text
        assert facade.batcher_stats().by_stream.keys() == {"a", "b"}

        victim = facade.workers()[0]
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        assert wait_for(lambda: facade.health()["a"].restarts == 1, 5)
        assert facade.health()["a"].state in ("backoff", "connecting")  # model still loading
        assert facade.health()["b"].state == "live"  # the other worker is unaffected
        restarted = lambda: victim.state == "running" and facade.health()["a"].frames_analysed > 3  # noqa: E731
        assert wait_for(restarted, 20), facade.health()["a"]
        a = facade.health()["a"]
        assert victim.pid not in pids and victim.generation == 2
        assert a.restarts == 1 and a.state == "live"
    finally:
        facade.stop()
    assert {h.state for h in facade.health().values()} == {"stopped"}
    events = stored(tmp_path / "events.db")
    assert {s for s, _ in events} == {"a", "b"}
    ids = [e for _, e in events]
    assert len(ids) == len(set(ids))  # two processes, one store, no duplicate ids


def test_run_node_returns_when_files_end(tmp_path: Path, sample_videos: Path) -> None:
    cfg = node_config(tmp_path, sample_videos / "highway_640x360.mp4", loop_files=False)
    short = [c.model_copy(update={"live": False, "analysis_fps": 2.0}) for c in cfg.cameras]
    cfg = cfg.model_copy(update={"cameras": short})
    t0 = time.monotonic()
    assert run_node(cfg, workers=2, gpus=0) == 0
    assert time.monotonic() - t0 < 45
    assert {s for s, _ in stored(tmp_path / "events.db")} == {"a", "b"}
    lines = (tmp_path / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(stored(tmp_path / "events.db"))  # both workers appended whole lines


def test_worker_that_cannot_start_is_reported_failed(tmp_path: Path, sample_videos: Path) -> None:
    cfg = node_config(tmp_path, sample_videos / "highway_640x360.mp4")
    missing = {**DETECTOR, "model_path": str(tmp_path / "missing.onnx")}
    cfg = ServiceConfig.model_validate(
        {
            **cfg.model_dump(mode="json"),
            "cameras": [cfg.cameras[0].model_dump(mode="json")],
            "detector": missing,
            "node": {"restart_budget": 0, "report_every_s": 0.3},
        }
    )
    facade = NodeFacade(cfg, plan_workers(cfg, 1, gpus=0)).start()
    try:
        assert wait_for(lambda: facade.health()["a"].state == "failed", 20), facade.health()
        h = facade.health()["a"]
    finally:
        facade.stop()
    assert h.last_error is not None and "exited with code 1" in h.last_error
    assert "missing.onnx" in h.last_error and h.restarts == 1


SCRIPT = """
import logging, sys
from pathlib import Path
from sharpeyes.api.node.processes import run_node
from sharpeyes.api.node.settings import load_service_config

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    sys.exit(run_node(load_service_config(Path(sys.argv[1])), workers=2, gpus=0))
"""


def test_sigterm_stops_every_worker_and_flushes(tmp_path: Path, sample_videos: Path) -> None:
    import subprocess
    import sys

    import yaml

    cfg = node_config(tmp_path, sample_videos / "highway_640x360.mp4")
    (tmp_path / "svc.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")), "utf-8")
    (tmp_path / "node_main.py").write_text(SCRIPT, encoding="utf-8")
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "node_main.py"), str(tmp_path / "svc.yaml")],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for((tmp_path / "events.jsonl").exists, 30)
        assert wait_for(lambda: len(stored(tmp_path / "events.db")) >= 2, 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert out.count("worker: signal SIGTERM, stopping") == 2 and "\nstopped: " in out
    assert "sharpeyes run: 2 cameras (a, b) in 2 worker processes" in out, out
    workers = [line for line in out.splitlines() if "(gen 1, pid" in line]
    pids = [int(line.split("pid ")[1].split(",")[0]) for line in workers]
    assert len(pids) == 2
    for pid in pids:  # no orphan left behind
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    assert {s for s, _ in stored(tmp_path / "events.db")} == {"a", "b"}


def test_the_parent_delivers_what_the_workers_queue_for_kafka(
    tmp_path: Path, sample_videos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run --workers 2`` with ``kafka:``: the workers queue ``kafka`` outbox rows and the
    parent's sender delivers them (before, the parent started only the MQTT sender and the rows
    waited forever). No Kafka broker runs here: the broker double of tests/kafka_double.py
    stands in through the sender's producer factory."""
    import json

    from sharpeyes.api.sinks import kafka as kafka_mod
    from sharpeyes.api.sinks import started
    from tests.kafka_double import FakeBroker

    broker = FakeBroker()

    def start_with_double(store: object, config: object, **kw: object) -> object:
        return kafka_mod.start_kafka_sender(
            store,  # type: ignore[arg-type]
            config,  # type: ignore[arg-type]
            producer_factory=broker.factory,
            **kw,  # type: ignore[arg-type]
        )

    monkeypatch.setattr(started, "start_kafka_sender", start_with_double)
    kafka = {"bootstrap_servers": "127.0.0.1:9092", "topic": "se.{stream_id}"}
    cfg = node_config(
        tmp_path, sample_videos / "highway_640x360.mp4", loop_files=False, kafka=kafka
    )
    short = [c.model_copy(update={"live": False, "analysis_fps": 2.0}) for c in cfg.cameras]
    assert run_node(cfg.model_copy(update={"cameras": short}), workers=2, gpus=0) == 0
    events = stored(tmp_path / "events.db")
    assert {s for s, _ in events} == {"a", "b"}
    got = {json.loads(r.value or b"{}")["event_id"] for r in broker.records()}
    assert got == {e for _, e in events}
