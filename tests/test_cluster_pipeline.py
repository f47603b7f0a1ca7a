"""Real cameras under cluster leases (the ``pipeline`` program kind) on the local backend.

The shared highway clip at 5 fps with yolov5n: a camera commits its events and positions
through the fenced commit, a fenced owner stops, and a killed worker's camera moves to another
worker and resumes (replaying with emission suppressed) with exactly the event ids of an
uninterrupted run, contiguous positions and no duplicate rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sharpeyes.api.cluster.backend import ProgramContext, ProgramOptions, program_factory
from sharpeyes.api.cluster.coordinator import CoordinatorOptions
from sharpeyes.api.cluster.health import CameraState
from sharpeyes.api.cluster.leases import LeaseStore
from sharpeyes.api.cluster.local import LocalBackend, LocalCluster
from sharpeyes.api.cluster.pipeline_program import LeaseCommitter, parse_camera, pipeline_spec
from sharpeyes.api.cluster.storage import LocalStorage, evidence_key
from sharpeyes.api.store.db import open_database
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.errors import ConfigError

SHARED = Path(
    os.environ.get("SHARPEYES_SHARED", Path(__file__).resolve().parents[1].parent / "shared")
)
CLIP = SHARED / "sample_videos" / "highway_640x360.mp4"
MODEL = SHARED / "models" / "yolov5n.onnx"

pytestmark = pytest.mark.skipif(
    not (CLIP.is_file() and MODEL.is_file()), reason="shared clip or yolov5n missing"
)

CAM = "hw"
FAST = CoordinatorOptions(tick_s=0.05, resync_grace_s=1.0)


def camera() -> CameraConfig:
    return CameraConfig(id=CAM, url=str(CLIP), analysis_fps=5.0)


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def event_ids(store: LeaseStore) -> list[str]:
    with store.db.transaction(readonly=True) as conn:
        rows = conn.fetchall("SELECT event_id FROM events WHERE stream_id = ?", (CAM,))
    return [str(r[0]) for r in rows]


def outbox_ids(store: LeaseStore) -> list[str]:
    with store.db.transaction(readonly=True) as conn:
        rows = conn.fetchall("SELECT object_id FROM outbox WHERE destination = 'viid'")
    return [str(r[0]) for r in rows]


def assert_contiguous(store: LeaseStore) -> list[int]:
    """Commit ranges of the camera tile 1..pos without gap or overlap; returns their epochs."""
    commits = store.commits(CAM)
    assert commits, "no commit"
    expected = 1
    for c in commits:
        assert c.from_pos == expected, f"gap or overlap at {c}"
        assert c.to_pos >= c.from_pos
        expected = c.to_pos + 1
    row = store.camera(CAM)
    assert row is not None and row.pos == expected - 1
    return [c.epoch for c in commits]


def finished(cluster: LocalCluster) -> bool:
    h = cluster.coordinator.health().camera(CAM)
    return h is not None and h.state == CameraState.FINISHED


def run_cluster(tmp: Path, *, workers: int, kill_at_pos: int | None) -> tuple[LeaseStore, str]:
    store = LeaseStore(open_database(str(tmp / "cluster.db")))
    options = ProgramOptions(commit_every_s=0.0)
    backend = LocalBackend(
        store,
        workers=workers,
        capacity=2.0,
        outbox_destinations=("viid",),
        program_options=options,
    )
    killed = ""
    with LocalCluster(store, backend, FAST) as cluster:
        cluster.coordinator.add_camera(pipeline_spec(camera()))
        if kill_at_pos is not None:
            wait_for(lambda: pos_of(store) >= kill_at_pos, 60, "progress")
            row = store.camera(CAM)
            assert row is not None and row.owner
            killed = row.owner
            next(h for h in backend.handles if h.name == killed).kill()
        wait_for(lambda: finished(cluster), 90, "the camera to finish")
        h = cluster.coordinator.health().camera(CAM)
        assert h is not None and h.worker != killed
    return store, killed


def pos_of(store: LeaseStore) -> int:
    row = store.camera(CAM)
    assert row is not None, "camera vanished"
    return row.pos


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], int]:
    store, _ = run_cluster(tmp_path_factory.mktemp("base"), workers=1, kill_at_pos=None)
    ids = event_ids(store)
    epochs = assert_contiguous(store)
    assert set(epochs) == {1}
    assert store.rejections() == []
    row = store.camera(CAM)
    assert row is not None
    return set(ids), row.pos


def test_pipeline_camera_commits_events_and_positions(baseline: tuple[set[str], int]) -> None:
    ids, end = baseline
    assert len(ids) >= 8, "the highway clip yields vehicle events"
    assert end > 300  # 341 decoded frames: the end position is one past the last analysed one


def test_worker_kill_moves_camera_and_resumes_without_duplicates(
    tmp_path: Path, baseline: tuple[set[str], int]
) -> None:
    ids, end = baseline
    store, killed = run_cluster(tmp_path, workers=2, kill_at_pos=120)
    got = event_ids(store)
    assert len(got) == len(set(got))
    assert set(got) == ids, "the new owner reproduces an uninterrupted run's events exactly"
    assert sorted(outbox_ids(store)) == sorted(got), "one outbox row per event"
    epochs = assert_contiguous(store)
    assert len(set(epochs)) >= 2, "commits came from two owners"
    row = store.camera(CAM)
    assert row is not None and row.pos == end and row.owner != killed


def test_fenced_owner_stops_and_writes_nothing(tmp_path: Path) -> None:
    store = LeaseStore(open_database(str(tmp_path / "c.db")))
    store.put_camera(pipeline_spec(camera()))
    lease = store.grant(CAM, "w1")
    storage = LocalStorage(tmp_path / "evidence", fsync=False)
    ctx = ProgramContext("w1", store, storage, options=ProgramOptions(commit_every_s=0.0))
    program = program_factory("pipeline")(pipeline_spec(camera()), lease, ctx)
    program.start()
    try:
        wait_for(lambda: program.status().state == CameraState.RUNNING, 60, "first commit")
        store.grant(CAM, "w2")  # the coordinator moved it: w1 is fenced from now on
        wait_for(lambda: program.status().state == CameraState.FENCED, 30, "the fence")
        pos = store.camera(CAM).pos  # type: ignore[union-attr]
        time.sleep(0.5)
        assert store.camera(CAM).pos == pos  # type: ignore[union-attr]
        assert [r[0] for r in store.rejections()] == [CAM]
        for eid in event_ids(store):
            assert storage.exists(evidence_key(eid, "crop.jpg")), "evidence before the commit"
    finally:
        program.stop()


def test_committer_drops_replayed_frames_and_batches(tmp_path: Path) -> None:
    import numpy as np

    from sharpeyes.pipeline.types import Event, EventType, Frame

    store = LeaseStore(open_database(str(tmp_path / "c.db")))
    store.put_camera(pipeline_spec(camera()))
    lease = store.grant(CAM, "w1")
    lease = store.commit(lease, 10)  # an earlier owner got to position 10
    now = [0.0]
    committer = LeaseCommitter(store, lease, commit_every_s=1.0, clock=lambda: now[0])
    img = np.zeros((2, 2, 3), np.uint8)

    def frame(seq: int) -> None:
        ev = Event(f"e{seq}", EventType.VEHICLE_PASS, CAM, seq, seq, 0.0, 0.0)
        committer.emit(ev)
        committer.on_frame(Frame(CAM, seq, seq / 5, seq, img))

    for seq in range(0, 10, 3):  # replay: 0, 3, 6, 9 < 10 — dropped
        frame(seq)
    assert committer.commits == 0
    now[0] = 5.0
    frame(12)  # commits e12 at position 13
    frame(15)  # batched (less than 1 s later)
    assert [c.to_pos for c in store.commits(CAM)] == [10, 13]
    assert committer.flush(committer.end_position())
    assert [(c.from_pos, c.to_pos) for c in store.commits(CAM)] == [(1, 10), (11, 13), (14, 17)]
    assert sorted(event_ids(store)) == ["e12", "e15"]


def test_bad_config_is_a_config_error() -> None:
    spec = pipeline_spec(camera())
    bad = spec.__class__(spec.camera_id, kind="pipeline", config='{"colour": 1}')
    with pytest.raises(ConfigError):
        parse_camera(bad)
    assert parse_camera(spec).id == CAM
