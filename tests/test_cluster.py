"""Camera sharding without Ray: reconcile logic on a fake backend, fencing SQL, uploader lease,
the local backend end to end, and evidence storage (local; S3 through moto's server when
installed)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sharpeyes.api.cluster.backend import Liveness, Slot, WorkerHandle
from sharpeyes.api.cluster.coordinator import Coordinator, CoordinatorOptions
from sharpeyes.api.cluster.health import CameraState, CameraStatus, WorkerReport, render_metrics
from sharpeyes.api.cluster.leases import CameraSpec, LeaseStore, StaleLeaseError, UploaderLease
from sharpeyes.api.cluster.local import LocalBackend, LocalCluster
from sharpeyes.api.cluster.storage import LocalStorage, S3Storage, evidence_key
from sharpeyes.api.cluster.synthetic import (
    CountingReceiver,
    SyntheticConfig,
    synthetic_event,
    synthetic_spec,
)
from sharpeyes.api.cluster.uploader import LeasedUploader
from sharpeyes.api.store import Outbox
from sharpeyes.api.store.db import open_database
from sharpeyes.pipeline.errors import ConfigError, EvidenceError
from sharpeyes.pipeline.signal_input import PhaseMessage
from tests._pg_fixtures import db_url, pg_server  # noqa: F401

# --- a fake backend --------------------------------------------------------------------------


@dataclass
class FakeHandle:
    name: str
    node: str
    capacity: float
    state: Liveness = Liveness.READY
    cameras: dict[str, int] = field(default_factory=dict)
    killed: bool = False
    phases: list[tuple[str, PhaseMessage]] = field(default_factory=list)

    def assign(self, spec: CameraSpec, epoch: int) -> None:
        self.cameras[spec.camera_id] = epoch

    def unassign(self, camera_id: str) -> None:
        self.cameras.pop(camera_id, None)

    def tell_phase(self, camera_id: str, message: PhaseMessage) -> None:
        self.phases.append((camera_id, message))

    def poll(self) -> tuple[Liveness, WorkerReport | None]:
        if self.state != Liveness.READY:
            return self.state, None
        cams = tuple(
            CameraStatus(c, e, CameraState.RUNNING, 0) for c, e in sorted(self.cameras.items())
        )
        return self.state, WorkerReport(self.name, self.node, self.capacity, cams, 0)

    def kill(self) -> None:
        self.killed = True


@dataclass
class FakeBackend:
    nodes: dict[str, int]  # node -> worker slots
    capacity: float = 2.0
    resources: dict[str, frozenset[str]] = field(default_factory=dict)
    spawned: list[FakeHandle] = field(default_factory=list)
    existing: list[FakeHandle] = field(default_factory=list)
    new_state: Liveness = Liveness.READY

    def slots(self) -> list[Slot]:
        return [
            Slot(n, k, self.capacity, self.resources.get(n, frozenset()))
            for n, k in self.nodes.items()
        ]

    def spawn(self, name: str, slot: Slot) -> WorkerHandle:
        h = FakeHandle(name, slot.node, slot.capacity, self.new_state)
        self.spawned.append(h)
        return h

    def adopt(self) -> list[WorkerHandle]:
        return list(self.existing)

    def close(self) -> None:
        pass


@pytest.fixture
def leases(tmp_path: Path) -> Iterator[LeaseStore]:
    db = open_database(tmp_path / "c.db")
    yield LeaseStore(db)
    db.close()


def _owners(leases: LeaseStore) -> dict[str, str | None]:
    return {r.spec.camera_id: r.owner for r in leases.cameras() if r.desired}


def _coordinator(leases: LeaseStore, backend: FakeBackend, **kw: float) -> Coordinator:
    opts = CoordinatorOptions(resync_grace_s=0.0, **kw)  # type: ignore[arg-type]
    return Coordinator(leases, backend, opts)


def test_places_within_capacity_and_stays_sticky(leases: LeaseStore) -> None:
    backend = FakeBackend({"n1": 2, "n2": 1}, capacity=2.0)
    coord = _coordinator(leases, backend)
    for i in range(5):
        coord.add_camera(CameraSpec(f"c{i}", cost=1.0))
    coord.tick()
    coord.tick()
    assert len(backend.spawned) == 3
    load: dict[str, int] = {}
    for owner in _owners(leases).values():
        assert owner is not None
        load[owner] = load.get(owner, 0) + 1
    assert sorted(load.values()) == [1, 2, 2]  # 5 cameras, 3 workers of 2 units, least-loaded
    epochs = {r.spec.camera_id: r.epoch for r in leases.cameras()}
    coord.tick()
    assert {r.spec.camera_id: r.epoch for r in leases.cameras()} == epochs  # sticky


def test_dead_worker_cameras_move_with_new_epoch(leases: LeaseStore) -> None:
    backend = FakeBackend({"n1": 1, "n2": 1, "n3": 1}, capacity=2.0)
    coord = _coordinator(leases, backend)
    for i in range(4):
        coord.add_camera(CameraSpec(f"c{i}"))
    coord.tick()
    coord.tick()
    before = {r.spec.camera_id: (r.owner, r.epoch) for r in leases.cameras()}
    victim = backend.spawned[0]
    moved = [c for c, (o, _) in before.items() if o == victim.name]
    assert moved
    victim.state = Liveness.DEAD
    backend.nodes.pop(victim.node)
    coord.tick()
    after = {r.spec.camera_id: (r.owner, r.epoch) for r in leases.cameras()}
    assert victim.killed
    for cam in moved:
        owner, epoch = after[cam]
        assert owner not in (None, victim.name)
        assert epoch == before[cam][1] + 1
    for cam in set(before) - set(moved):
        assert after[cam] == before[cam]  # untouched
    assert len(backend.spawned) == 3  # no replacement on the gone node
    assert {w.name: w.state for w in leases.workers(include_dead=True)}[victim.name] == "dead"


def _external_spec(camera_id: str) -> CameraSpec:
    cam = {
        "id": camera_id,
        "url": "rtsp://192.0.2.1/live",
        "intersection": {"signal_groups": [{"id": "main", "source": "external"}]},
    }
    return CameraSpec(camera_id, kind="pipeline", config=json.dumps(cam))


def test_phases_reach_the_owner_and_follow_the_camera_on_failover(leases: LeaseStore) -> None:
    backend = FakeBackend({"n1": 1, "n2": 1}, capacity=1.0)
    coord = _coordinator(leases, backend)
    coord.add_camera(_external_spec("ext"))
    coord.add_camera(CameraSpec("plain"))
    red = PhaseMessage(group="main", color="red", pts=3.0)
    coord.tell_phase(red, "ext")  # before placement: kept for the first owner
    coord.tick()
    coord.tick()
    row = leases.camera("ext")
    assert row is not None and row.owner is not None
    owner = next(h for h in backend.spawned if h.name == row.owner)
    assert [(c, m.color, m.pts) for c, m in owner.phases] == [("ext", "red", 3.0)]
    green = PhaseMessage(camera="ext", group="main", color="green")  # no time: stamped on arrival
    coord.tell_phase(green)
    assert owner.phases[-1][1].color == "green" and owner.phases[-1][1].wall_ms is not None
    with pytest.raises(ConfigError, match="not an external signal group"):
        coord.tell_phase(PhaseMessage(group="side", color="red"), "ext")
    with pytest.raises(ConfigError, match="no camera 'plain'"):
        coord.tell_phase(red, "plain")
    with pytest.raises(ConfigError, match="no camera 'nope'"):
        coord.tell_phase(red, "nope")
    coord.tell_phase(PhaseMessage(group="main", color="red", pts=9.0))  # the one taker

    owner.state = Liveness.DEAD  # failover: the next owner gets the latest phase per group
    backend.nodes.pop(owner.node)
    backend.nodes["n3"] = 1
    for _ in range(3):
        coord.tick()
    row = leases.camera("ext")
    assert row is not None and row.owner not in (None, owner.name)
    heir = next(h for h in backend.spawned if h.name == row.owner)
    assert [(c, m.group, m.color, m.pts) for c, m in heir.phases] == [("ext", "main", "red", 9.0)]
    coord.remove_camera("ext")
    with pytest.raises(ConfigError):
        coord.tell_phase(red, "ext")


def test_no_room_shows_unassigned_then_recovers(leases: LeaseStore) -> None:
    backend = FakeBackend({"n1": 1, "n2": 1}, capacity=1.0)
    coord = _coordinator(leases, backend)
    coord.add_camera(CameraSpec("a"))
    coord.add_camera(CameraSpec("b"))
    coord.tick()
    coord.tick()
    dead = backend.spawned[0]
    dead.state = Liveness.DEAD
    backend.nodes.pop(dead.node)
    coord.tick()
    snap = coord.health()
    states = sorted(c.state for c in snap.cameras)
    assert states == [CameraState.RUNNING, CameraState.UNASSIGNED]
    assert not snap.n_plus_one()
    backend.nodes["n3"] = 1  # capacity returns
    coord.tick()
    coord.tick()
    assert None not in _owners(leases).values()


def test_pending_workers_adopted_and_names_unique(leases: LeaseStore) -> None:
    backend = FakeBackend({"n1": 2}, capacity=2.0)
    coord = _coordinator(leases, backend)
    coord.add_camera(CameraSpec("a"))
    coord.tick()
    coord.tick()
    # the coordinator restarts: workers survive (one of them still pending)
    row = leases.camera("a")
    assert row is not None
    owner = next(h for h in backend.spawned if h.name == row.owner)
    other = next(h for h in backend.spawned if h is not owner)
    backend.existing = [owner, other]
    other.state = Liveness.PENDING
    coord2 = _coordinator(leases, backend)
    assert coord2.adopt() == 2
    coord2.tick()
    assert len(backend.spawned) == 2  # adopted, pending included: nothing new spawned
    assert coord2.workers()[other.name] == Liveness.PENDING
    after = leases.camera("a")
    assert after is not None and (after.owner, after.epoch) == (owner.name, row.epoch)
    other.state = Liveness.DEAD
    coord2.tick()
    names = [w.name for w in leases.workers(include_dead=True)]
    assert len(names) == len(set(names)) == 3  # a replacement with a fresh name


def test_adopted_worker_missing_camera_is_regranted(leases: LeaseStore) -> None:
    backend = FakeBackend({"n1": 1}, capacity=2.0)
    coord = _coordinator(leases, backend)
    coord.add_camera(CameraSpec("a"))
    coord.tick()
    coord.tick()
    worker = backend.spawned[0]
    worker.cameras.clear()  # the assign was lost while the coordinator crashed
    backend.existing = [worker]
    coord2 = _coordinator(leases, backend)
    coord2.adopt()
    coord2.tick()
    coord2.tick()
    row = leases.camera("a")
    assert row is not None and row.epoch == 2
    assert worker.cameras == {"a": 2}


def test_pending_timeout_and_resources(leases: LeaseStore) -> None:
    backend = FakeBackend({"n1": 1, "n2": 1}, resources={"n2": frozenset({"zone_a"})})
    coord = _coordinator(leases, backend)
    coord.add_camera(CameraSpec("z", resource="zone_a"))
    coord.add_camera(CameraSpec("y", resource="zone_b"))
    coord.tick()
    coord.tick()
    owners = _owners(leases)
    assert owners["z"] is not None and "n2" in owners["z"]
    assert owners["y"] is None  # no node has zone_b
    backend.new_state = Liveness.PENDING
    backend.nodes["n3"] = 1
    coord3 = _coordinator(leases, backend, pending_timeout_s=0.0)
    coord3.tick()
    time.sleep(0.01)
    coord3.tick()
    assert any(h.killed for h in backend.spawned if h.node == "n3")


def test_drain_and_rebalance(leases: LeaseStore) -> None:
    backend = FakeBackend({"n1": 1}, capacity=4.0)
    coord = _coordinator(leases, backend, rebalance_per_tick=1)
    for i in range(4):
        coord.add_camera(CameraSpec(f"c{i}"))
    coord.tick()
    coord.tick()
    backend.nodes["n2"] = 1
    for _ in range(4):
        coord.tick()
    load = sorted(w.load for w in coord.health().workers)
    assert load == [2.0, 2.0]  # moved gradually, one per tick
    assert coord.drain("n1") == 1
    coord.tick()
    owners = set(_owners(leases).values())
    assert len(owners) == 1 and all("n2" in str(o) for o in owners)


def test_remove_camera_fences_and_unassigns(leases: LeaseStore) -> None:
    backend = FakeBackend({"n1": 1})
    coord = _coordinator(leases, backend)
    coord.add_camera(CameraSpec("a"))
    coord.tick()
    coord.tick()
    lease = leases.current("a")
    assert lease is not None
    coord.remove_camera("a")
    assert backend.spawned[0].cameras == {}
    with pytest.raises(StaleLeaseError):
        leases.commit(lease, lease.pos + 1)


# --- fencing SQL (SQLite and PostgreSQL) -----------------------------------------------------


def test_fenced_commit_sql(db_url: str) -> None:  # noqa: F811
    db = open_database(db_url)
    try:
        store = LeaseStore(db)
        cfg = SyntheticConfig(t0_ms=0)
        store.put_camera(CameraSpec("cam"))
        old = store.grant("cam", "w1")
        old = store.commit(old, 3, [synthetic_event("cam", p, cfg) for p in (1, 2, 3)])
        new = store.grant("cam", "w2")
        assert (new.epoch, new.pos) == (old.epoch + 1, 3)
        with pytest.raises(StaleLeaseError):
            store.commit(old, 5, [synthetic_event("cam", p, cfg) for p in (4, 5)])
        with pytest.raises(StaleLeaseError):  # right epoch, wrong previous position
            store.commit(new.__class__("cam", new.epoch, "w2", 1), 5)
        new = store.commit(new, 5, [synthetic_event("cam", p, cfg) for p in (4, 5)])
        commits = store.commits("cam")
        assert [(c.from_pos, c.to_pos, c.epoch) for c in commits] == [
            (1, 3, old.epoch),
            (4, 5, new.epoch),
        ]
        assert [r[1] for r in store.rejections()] == [old.epoch, new.epoch]
        with db.transaction(readonly=True) as conn:
            ids = [r[0] for r in conn.fetchall("SELECT event_id FROM events ORDER BY event_id")]
            pos = conn.fetchone("SELECT seq, epoch FROM stream_positions WHERE stream_id = 'cam'")
        assert ids == [f"cam:{p:09d}" for p in range(1, 6)]  # contiguous, no stale rows
        assert pos is not None and (int(pos[0]), int(pos[1])) == (5, new.epoch)
    finally:
        db.close()


def test_uploader_lease_bounds_duplicates(db_url: str) -> None:  # noqa: F811
    db = open_database(db_url)
    try:
        store = LeaseStore(db)
        store.put_camera(CameraSpec("cam"))
        lease = store.grant("cam", "w")
        cfg = SyntheticConfig(t0_ms=0)
        events = [synthetic_event("cam", p, cfg) for p in range(1, 21)]
        store.commit(lease, 20, events, outbox_destinations=("viid",))
        receiver = CountingReceiver()

        class Poster:
            def post(self, object_ids: list[str]) -> None:
                receiver.post(object_ids)

        zombie = LeasedUploader(db, Poster(), holder="old", batch=5, claim_lease_ms=0)
        zombie.lease.acquire()
        assert zombie.run_once() == 5
        fresh = LeasedUploader(db, Poster(), holder="new", batch=5, claim_lease_ms=0)
        fresh.lease.acquire()
        with pytest.raises(StaleLeaseError):
            zombie.run_once()  # fenced before its POST
        while fresh.run_once():
            pass
        unique, dups = receiver.stats()
        assert unique == 20 and dups <= 5
        assert Outbox(db).stats("viid").backlog == 0
        lost = UploaderLease(db, "viid-0", "never-acquired")
        with pytest.raises(StaleLeaseError):
            lost.check()
    finally:
        db.close()


# --- the local backend end to end ------------------------------------------------------------


def _contiguous(store: LeaseStore, cam: str) -> int:
    pos = 0
    for c in store.commits(cam):
        assert c.from_pos == pos + 1, f"{cam}: gap or overlap at {c}"
        pos = c.to_pos
    return pos


def test_local_cluster_failover(tmp_path: Path) -> None:
    db = open_database(tmp_path / "local.db")
    store = LeaseStore(db)
    storage = LocalStorage(tmp_path / "evidence", fsync=False)
    backend = LocalBackend(store, workers=2, capacity=2.0, storage=storage)
    options = CoordinatorOptions(tick_s=0.05)
    with LocalCluster(store, backend, options) as cluster:
        for i in range(3):
            cluster.coordinator.add_camera(
                synthetic_spec(f"cam{i}", rate=20, cadence_s=0.1, evidence=True)
            )
        _wait(lambda: all(r.pos > 0 for r in store.cameras()), 5.0)
        victim = next(h for h in backend.handles if h.core.health().cameras)
        moved = [c.camera_id for c in victim.core.health().cameras]
        stale = {c: store.current(c) for c in moved}
        victim.kill()
        t0 = time.monotonic()
        _wait(lambda: all(_moved(store, c, victim.name) for c in moved), 5.0)
        assert time.monotonic() - t0 < 5.0
        for _cam, lease in stale.items():
            assert lease is not None
            with pytest.raises(StaleLeaseError):
                store.commit(lease, lease.pos + 1)
        health = cluster.coordinator.health()
        assert {c.camera_id for c in health.cameras} == {"cam0", "cam1", "cam2"}
        assert 'sharpeyes_cluster_camera_state{camera="cam0",state="running"}' in render_metrics(
            health
        ) or "starting" in render_metrics(health)
    for i in range(3):
        top = _contiguous(store, f"cam{i}")
        assert storage.exists(evidence_key(f"cam{i}:{top:09d}", "event.json"))
    with db.transaction(readonly=True) as conn:
        n = conn.fetchone("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events")
    assert n is not None and n[0] == n[1] == sum(_contiguous(store, f"cam{i}") for i in range(3))
    db.close()


def _moved(store: LeaseStore, cam: str, old_owner: str) -> bool:
    row = store.camera(cam)
    return (
        row is not None
        and row.owner not in (None, old_owner)
        and bool([c for c in store.commits(cam) if c.epoch == row.epoch])
    )


def _wait(cond: object, timeout: float) -> None:
    assert callable(cond)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


# --- evidence storage ------------------------------------------------------------------------


def test_local_storage_and_keys(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    key = evidence_key("cam:000000001", "closeup.jpg")
    assert key.startswith("evidence/") and key.endswith("/cam:000000001/closeup.jpg")
    assert key == evidence_key("cam:000000001", "closeup.jpg")
    s.put(key, b"x")
    s.put(key, b"x")  # overwrite by the next owner: idempotent
    assert s.get(key) == b"x" and s.exists(key)
    with pytest.raises(EvidenceError):
        evidence_key("../etc", "passwd")
    with pytest.raises(EvidenceError):
        evidence_key("ok", "../x")
    with pytest.raises(EvidenceError):
        s.get("evidence/none")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.integration
def test_s3_storage_on_moto_server() -> None:
    pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        client.create_bucket(Bucket="evidence")
        s = S3Storage("evidence", client=client, prefix="site1")
        key = evidence_key("cam:000000007", "event.json")
        assert not s.exists(key)
        s.put(key, b"{}")
        assert s.get(key) == b"{}" and s.exists(key)
        assert s.url(key) == f"s3://evidence/site1/{key}"
        with pytest.raises(EvidenceError):
            s.get("evidence/missing")
    finally:
        server.stop()


def test_package_import_does_not_import_ray() -> None:
    code = (
        "import sys, api.cluster.local, api.cluster.coordinator, api.cluster.uploader; "
        "sys.exit(1 if 'ray' in sys.modules else 0)"
    )
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, check=False, timeout=60)
    assert proc.returncode == 0, "importing the cluster package imported ray"
