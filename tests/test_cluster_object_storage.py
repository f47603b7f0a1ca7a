"""Evidence that lives only in the cluster's object storage (``cluster.storage_url``) is read back.

Nodes that share an S3 bucket but no mount: the workers put every event's crop, scene, plate
picture and evidence folder into the bucket before the commit, and the process serving the REST
API and delivering GA/T 1400 has none of those files under its files root. Checked against
moto's real S3 HTTP server and the project's view-library receiver:

* a cluster camera (a rendered scenario clip: two passes with crops, one red-light violation
  with its evidence folder) puts its evidence; the workers' files are then deleted;
* ``sharpeyes serve`` over the cluster database, started while the bucket is down, answers the
  evidence endpoints 503 (with ``Retry-After``; never a 404) and keeps every GA/T 1400 record
  pending in the outbox instead of sending it without its pictures;
* once the bucket is back, every record reaches the view library with the bucket's very bytes
  as its SubImage data, and the REST API serves the event's files (list, download, Range,
  signed URL) with those bytes — and from its cache while the bucket is down again;
* unit level: a checkpoint read's plate picture goes to storage as ``plate.jpg`` (a record's own
  ``plate.jpg`` wins), and only the fixed evidence names are ever asked of the storage.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sharpeyes.api.cluster.health import CameraState
from sharpeyes.api.cluster.leases import LeaseStore
from sharpeyes.api.cluster.pipeline_program import LeaseCommitter, pipeline_spec
from sharpeyes.api.cluster.service import ClusterSettings, start_cluster
from sharpeyes.api.cluster.storage import (
    LocalStorage,
    S3Storage,
    StorageEvidence,
    StorageUnavailableError,
    evidence_key,
)
from sharpeyes.api.rest.evidence import (
    EvidenceLocator,
    EvidenceUnavailableError,
    RemoteEvidence,
)
from sharpeyes.api.store import open_store
from sharpeyes.api.store.db import open_database
from sharpeyes.api.viid.delivery import EvidenceImages
from sharpeyes.api.viid.mapping import EventMapper
from sharpeyes.api.viid.receiver.server import create_receiver_app
from sharpeyes.api.viid.receiver.state import ReceiverConfig, ReceiverState
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.types import Event, EventType, Frame
from tests._viid_fixtures import DEVICE, free_port, jpeg, mapping_config
from tests._wait import wait_for
from tests.equivalence import stamp_clip  # also registers the "scenario" detector
from tests.scenarios import SCENARIOS, render_scenario, scene_calibration
from tests.test_cluster_subscriptions import delivery as upper_delivery

pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

REPO = Path(__file__).resolve().parents[1]
BUCKET = "evidence"
PREFIX = "site1"
SCENARIO = "clean_violation"
PASSWORD = "pw"
SYSTEM = "34020000001190000001"
TOKEN = "se_0123456789ab.object-storage-test-secret"
PICTURE_NAMES = ("crop.jpg", "scene.jpg", "plate.jpg", "1.jpg", "composite.jpg")


# -- peers: S3 (moto's HTTP server) and a view library that keeps what it was sent ------------


@dataclass
class S3Peer:
    """moto's S3 server on a fixed port: stopped and started again, it keeps its objects."""

    port: int
    server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def objects(self) -> dict[str, bytes]:
        """Every object under the prefix, by key (without the prefix)."""
        c = self.client()
        out: dict[str, bytes] = {}
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
            for obj in page.get("Contents", []):
                body = c.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
                out[obj["Key"].removeprefix(f"{PREFIX}/")] = body
        return out


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Peer]:
    peer = S3Peer(free_port())
    peer.start()
    monkeypatch.setenv("SHARPEYES_S3_ENDPOINT", peer.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    peer.client().create_bucket(Bucket=BUCKET)
    try:
        yield peer
    finally:
        peer.stop()


@dataclass
class Capture:
    """An ASGI wrapper keeping the JSON bodies POSTed to the view library's object routes."""

    app: Any
    bodies: list[Any] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        body = b"".join(chunks)
        if "/System/" not in scope["path"]:
            self.bodies.append(json.loads(body))
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return dict(await receive())
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


@contextmanager
def view_library() -> Iterator[tuple[str, ReceiverState, Capture]]:
    import uvicorn

    state = ReceiverState()
    capture = Capture(create_receiver_app(ReceiverConfig(accounts={"admin": PASSWORD}), state))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(capture, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10, "the view library")
    try:
        yield f"http://127.0.0.1:{port}", state, capture
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def sub_images(bodies: list[Any]) -> list[list[dict[str, Any]]]:
    """The SubImageInfoObject list of every object posted (whatever its collection)."""
    found: list[list[dict[str, Any]]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "SubImageList" in node:
                found.append(list(node["SubImageList"]["SubImageInfoObject"]))
                return
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(bodies)
    return found


# -- the cluster camera --------------------------------------------------------------------------


def scenario_camera(tmp: Path) -> CameraConfig:
    s = SCENARIOS[SCENARIO]
    raw = render_scenario(SCENARIO, tmp / "raw.mp4")
    clip = tmp / f"{SCENARIO}.mp4"
    assert stamp_clip(raw.path, clip, s.fps) == s.n_frames
    return CameraConfig.model_validate(
        {
            "id": SCENARIO,
            "url": str(clip),
            "detector": {"model": f"scenario:{SCENARIO}"},
            "tracker": {"min_hits": 2},
            "intersection": scene_calibration().model_dump(mode="json"),
        }
    )


def cluster_settings(tmp: Path) -> dict[str, Any]:
    return {
        "backend": "local",
        "db_url": str(tmp / "cluster.db"),
        "files_root": str(tmp / "workers"),
        "storage_url": f"s3://{BUCKET}/{PREFIX}",
        "workers": 1,
        "tick_s": 0.05,
        "commit_every_s": 0.0,
        "outbox_destinations": ["viid"],
    }


def run_camera(tmp: Path) -> None:
    """The camera through the local cluster until its clip ends; then out of the desired set."""
    cam = scenario_camera(tmp)
    handle = start_cluster(ClusterSettings.model_validate(cluster_settings(tmp)), [cam])
    try:

        def finished() -> bool:
            h = handle.health().camera(cam.id)
            assert h is None or h.state != CameraState.FAILED, h
            return h is not None and h.state == CameraState.FINISHED

        wait_for(finished, 60, "the cluster camera to finish")
        handle.remove_camera(cam.id)
    finally:
        handle.stop()


def events(db: Path) -> dict[str, tuple[str, str | None, str | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT event_id, type, crop_path, evidence_dir FROM events")
        return {str(r[0]): (str(r[1]), r[2], r[3]) for r in rows}


def viid_rows(db: Path) -> list[tuple[str, str, int, str | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT object_id, state, attempts, last_error FROM outbox "
            "WHERE destination = 'viid' ORDER BY id"
        ).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2]), r[3]) for r in rows]


def service_config(tmp: Path, upper: str) -> Path:
    delivery = upper_delivery(upper)
    path = tmp / "svc.yaml"
    config = {
        # the API node: an empty files root of its own, nothing of the workers' files
        "store": {"url": "events.db", "files_root": str(tmp / "api")},
        "cluster": cluster_settings(tmp),
        "delivery": delivery,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def serving(config: Path, port: int) -> Iterator[httpx.Client]:
    from sharpeyes.api.commands.run import run_service

    stop = threading.Event()
    result: list[int] = []
    node = threading.Thread(
        target=lambda: result.append(run_service(config, serve_api=True, port=port, stop=stop)),
        daemon=True,
    )
    node.start()
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=20,
        ) as http:
            wait_for(lambda: http.get("/api/v1/cluster").status_code == 200, 30, "the API")
            yield http
    finally:
        stop.set()
        node.join(timeout=30)
    assert result == [0]


# -- end to end ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_evidence_only_in_object_storage_reaches_the_console_and_the_view_library(
    tmp_path: Path, s3: S3Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.setenv("SHARPEYES_DEMO_TOKEN", TOKEN)
    run_camera(tmp_path)
    db = tmp_path / "cluster.db"
    stored = events(db)
    passes = sorted(e for e, (t, _, _) in stored.items() if t == "vehicle_pass")
    [violation] = [e for e, (t, _, _) in stored.items() if t == "red_light_violation"]
    assert len(passes) == 2 and all(stored[e][1] for e in passes)  # crops
    assert stored[violation][2]  # an evidence folder
    bucket = s3.objects()
    for eid in passes:  # what the workers wrote locally is what they put
        crop = tmp_path / "workers" / str(stored[eid][1])
        assert bucket[evidence_key(eid, "crop.jpg")] == crop.read_bytes()
    folder = tmp_path / "workers" / str(stored[violation][2])
    names = {f.name for f in folder.iterdir()}
    assert {"1.jpg", "composite.jpg", "record.json", "clip.mp4"} <= names
    for name in names:
        assert bucket[evidence_key(violation, name)] == (folder / name).read_bytes()
    shutil.rmtree(tmp_path / "workers")  # the API node has none of it

    s3.stop()  # the storage is down when the API node starts
    with (
        view_library() as (upper, library, capture),
        serving(service_config(tmp_path, upper), free_port()) as http,
    ):
        # REST: 503 that says what is wrong (not a 404: the files exist)
        r = http.get(f"/api/v1/events/{passes[0]}/evidence/crop.jpg")
        assert r.status_code == 503, r.text
        assert "evidence storage" in r.json()["detail"] and r.headers["Retry-After"]
        assert http.get(f"/api/v1/events/{violation}").status_code == 503
        # GA/T 1400: the records wait in the outbox (failed tries, never dead, never sent)
        wait_for(
            lambda: (rows := viid_rows(db)) and all(a >= 1 for _, _, a, _ in rows),
            30,
            "a failed try of every record",
        )
        rows = viid_rows(db)
        assert {o for o, _, _, _ in rows} == set(stored)
        assert {s for _, s, _, _ in rows} <= {"pending", "sending"}
        assert all("evidence storage unavailable" in str(err) for _, _, _, err in rows), rows
        assert library.ids() == [] and sub_images(capture.bodies) == []

        s3.start()  # back: every record goes, with its pictures
        wait_for(lambda: {s for _, s, _, _ in viid_rows(db)} == {"delivered"}, 30, "the delivery")
        assert len(library.ids()) == len(stored) and library.duplicates == 0
        pictures = {
            bucket[evidence_key(eid, name)]: (eid, name)
            for eid in stored
            for name in PICTURE_NAMES
            if evidence_key(eid, name) in bucket
        }
        sent = [
            [base64.b64decode(im["Data"]) for im in images] for images in sub_images(capture.bodies)
        ]
        assert len(sent) == len(stored)
        assert all(sent_images and all(d in pictures for d in sent_images) for sent_images in sent)
        delivered = {pictures[d] for images in sent for d in images}
        assert {(e, "crop.jpg") for e in passes} <= delivered
        assert {(violation, "1.jpg"), (violation, "composite.jpg")} <= delivered

        # REST: the list, each download, a Range and a signed URL, all the bucket's bytes
        listed = {}
        for eid in stored:
            r = http.get(f"/api/v1/events/{eid}")
            assert r.status_code == 200, r.text
            listed[eid] = {f["name"]: f for f in r.json()["evidence"]}
        assert all(set(listed[e]) == {"crop.jpg"} for e in passes)
        assert set(listed[violation]) == names & {
            "1.jpg",
            "2.jpg",
            "3.jpg",
            "plate.jpg",
            "composite.jpg",
            "clip.mp4",
            "record.json",
        }
        for eid, files in listed.items():
            for name, f in files.items():
                r = http.get(f"/api/v1/events/{eid}/evidence/{name}")
                assert r.status_code == 200 and r.content == bucket[evidence_key(eid, name)]
                assert f["size"] == len(r.content)
        clip = bucket[evidence_key(violation, "clip.mp4")]
        r = http.get(
            f"/api/v1/events/{violation}/evidence/clip.mp4", headers={"Range": "bytes=0-99"}
        )
        assert r.status_code == 206 and r.content == clip[:100]
        signed = http.base_url.join(listed[violation]["1.jpg"]["url"])
        r = httpx.get(signed, timeout=10)  # no Authorization header: an <img> element
        assert r.status_code == 200 and r.content == bucket[evidence_key(violation, "1.jpg")]
        assert http.get(f"/api/v1/events/{passes[0]}/evidence/1.jpg").status_code == 404

        s3.stop()  # down again: what was read once is served from the API node's cache
        r = http.get(f"/api/v1/events/{passes[1]}/evidence/crop.jpg")
        assert r.status_code == 200 and r.content == bucket[evidence_key(passes[1], "crop.jpg")]
    assert {s for _, s, _, _ in viid_rows(db)} == {"delivered"}


# -- unit level: what is put, and what is asked -------------------------------------------------


@dataclass
class CountingReader:
    """An :class:`EvidenceReader` over a storage that records every name asked."""

    inner: StorageEvidence
    asked: list[tuple[str, str]] = field(default_factory=list)

    def read(self, event_id: str, name: str) -> bytes | None:
        self.asked.append((event_id, name))
        return self.inner.read(event_id, name)


def test_plate_pictures_are_put_and_only_evidence_names_are_asked(tmp_path: Path) -> None:
    cam = CameraConfig(id="gate", url="rtsp://192.0.2.1/ch1")
    leases = LeaseStore(open_database(str(tmp_path / "c.db")))
    leases.put_camera(pipeline_spec(cam))
    storage = LocalStorage(tmp_path / "bucket", fsync=False)
    committer = LeaseCommitter(
        leases,
        leases.grant("gate", "w1"),
        commit_every_s=0.0,
        storage=storage,
        files_root=tmp_path / "workers",
        destinations=("viid",),
    )
    crop, plate, scene, record_plate = (jpeg(32, 24, seed=i) for i in range(4))
    folder = tmp_path / "workers" / "evidence" / "v1"
    folder.mkdir(parents=True)
    (folder / "plate.jpg").write_bytes(record_plate)
    (folder / "record.json").write_text("{}")
    (folder / "record.sig").write_text("sig")

    def event(eid: str, kind: EventType, evidence: Path | None) -> Event:
        return Event(
            eid, kind, "gate", 0, 0, 0.0, 0.0,
            crop_jpeg=crop, plate_jpeg=plate, scene_jpeg=scene,
            evidence_path=str(evidence) if evidence else None,
        )  # fmt: skip

    import numpy as np

    committer.emit(event("read1", EventType.VEHICLE_PASS, None))
    committer.emit(event("v1", EventType.RED_LIGHT_VIOLATION, folder))
    committer.on_frame(Frame("gate", 0, 0.0, 0, np.zeros((2, 2, 3), np.uint8)))
    assert committer.commits == 1
    # a checkpoint read's plate picture is its plate.jpg; a record's plate.jpg is the record's
    assert storage.get(evidence_key("read1", "plate.jpg")) == plate
    assert storage.get(evidence_key("read1", "scene.jpg")) == scene
    assert storage.get(evidence_key("v1", "plate.jpg")) == record_plate
    leases.db.close()

    # read back on a node without the workers' files
    store = open_store(str(tmp_path / "c.db"), tmp_path / "api")
    reader = CountingReader(StorageEvidence(storage))
    locator = EvidenceLocator([tmp_path / "api"], RemoteEvidence(reader, tmp_path / "cache"))
    try:
        read1, v1 = store.get_event("read1"), store.get_event("v1")
        assert read1 is not None and v1 is not None
        got = {f.name: f.path.read_bytes() for f in locator.files(read1)}
        assert got == {"plate.jpg": plate, "crop.jpg": crop, "scene.jpg": scene}
        assert {n for _, n in reader.asked} == {"plate.jpg", "crop.jpg", "scene.jpg"}
        assert {f.name for f in locator.files(v1)} == {
            "plate.jpg",
            "record.json",
            "crop.jpg",
            "scene.jpg",
        }
        assert locator.resolve(v1, "plate.jpg").path.read_bytes() == record_plate
        asked = len(reader.asked)
        for name in ("record.sig", "../c.db", "1.jpg"):  # not served: nothing asked
            with pytest.raises(LookupError):
                locator.resolve(read1 if name == "1.jpg" else v1, name)
        locator.files(read1)  # cached: nothing asked again, "absent" names included
        assert len(reader.asked) == asked
        # GA/T 1400 pictures of the checkpoint read, from storage
        images = EvidenceImages(store, tmp_path / "workers", None, StorageEvidence(storage))(read1)
        assert images.closeup is not None and images.closeup.load() == crop
        assert images.plate is not None and images.plate.load() == plate
        assert images.scene is not None and images.scene.load() == scene
        # sent as URLs (images: url): each names its own object in the bucket, no bytes inline
        base = "http://minio.local:9000/evidence"
        by_url = EvidenceImages(store, tmp_path / "workers", base, StorageEvidence(storage))(read1)
        for ref, data in ((by_url.closeup, crop), (by_url.plate, plate), (by_url.scene, scene)):
            assert ref is not None and ref.url is not None and ref.url.startswith(base + "/")
            assert storage.get(ref.url.removeprefix(base + "/")) == data
        mapper = EventMapper(mapping_config(images="url", image_base_url=base))
        obj = mapper.map(read1.event, by_url, device_id=DEVICE)
        assert obj is not None
        subs = obj.payload["SubImageList"]["SubImageInfoObject"]
        paths = {s["StoragePath"] for s in subs}
        assert paths == {r.url for r in (by_url.closeup, by_url.plate, by_url.scene) if r}
        assert all("Data" not in s for s in subs)
    finally:
        store.close()


def test_s3_read_tells_missing_from_down(s3: S3Peer, tmp_path: Path) -> None:
    storage = S3Storage(BUCKET, client=s3.client(), prefix=PREFIX)
    key = evidence_key("ev1", "crop.jpg")
    storage.put(key, b"jpeg")
    assert storage.read(key) == b"jpeg"
    assert storage.read(evidence_key("ev1", "scene.jpg")) is None  # missing: not an error
    remote = RemoteEvidence(StorageEvidence(storage), tmp_path / "cache")
    cached = remote.path("ev1", "crop.jpg")
    assert cached is not None and cached.read_bytes() == b"jpeg"
    s3.stop()
    with pytest.raises(StorageUnavailableError, match="cannot read evidence"):
        storage.read(key)
    with pytest.raises(EvidenceUnavailableError):  # the REST API's 503, never "no such file"
        remote.path("ev1", "scene.jpg")
    assert remote.path("ev1", "crop.jpg") == cached  # read once: served while it is down


class DownReader:
    """An :class:`EvidenceReader` whose storage cannot answer."""

    def read(self, event_id: str, name: str) -> bytes | None:
        raise StorageUnavailableError(f"storage down ({name} of {event_id})")


def test_a_review_is_answered_and_the_feed_runs_while_the_storage_is_down(
    tmp_path: Path,
) -> None:
    """The review is saved before its answer lists the files: a storage that cannot be read
    then leaves the files out of the answer (evidence unknown, not "missing") instead of a 503
    for a decision that was recorded; the live feed's payload leaves them out too; the event's
    own view still answers 503 (its evidence facts cannot be told)."""
    import shutil

    from fastapi.testclient import TestClient

    from tests._api_fixtures import make_app, seed_service

    seeded = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "files")
    service = seeded.service
    try:
        ev = seeded.violations[0]
        shutil.rmtree(seeded.files_root / "evidence")  # the record lives only in the bucket
        service.locator = EvidenceLocator(
            [seeded.files_root], RemoteEvidence(DownReader(), tmp_path / "cache")
        )
        with TestClient(make_app(seeded)) as client:
            r = client.get(f"/api/v1/events/{ev.event_id}", headers=seeded.auth("viewer"))
            assert r.status_code == 503 and r.headers["retry-after"], r.text
            r = client.post(
                f"/api/v1/violations/{ev.event_id}/review",
                json={"action": "confirm", "reason": None, "corrected_plate": "京A12345"},
                headers=seeded.auth("reviewer"),
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["event"]["review"]["state"] == "confirmed"
            assert body["event"]["evidence"] is None
            assert body["event"]["evidence_complete"] is None  # unknown, not "incomplete"
        stored = service.events.get_event(ev.event_id)
        assert stored is not None and stored.review_state == "confirmed"
        doc = json.loads(service.feed_payload(stored))
        assert doc["event_id"] == ev.event_id and "evidence" not in doc
    finally:
        service.db.close()


def test_broker_messages_list_the_evidence_in_object_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MQTT/Kafka messages list the evidence a cluster's workers put only into object storage
    (the same names and sizes as a node that has the files), and null — unknown, not "none" —
    while the storage cannot be read; the cluster's sinks process is wired to the storage."""
    import shutil

    from sharpeyes.api.cluster.delivery import start_cluster_sinks
    from sharpeyes.api.sinks import kafka as kafka_mod
    from sharpeyes.api.sinks import started
    from sharpeyes.api.sinks.payload import event_message
    from tests._api_fixtures import make_event, write_evidence
    from tests.kafka_double import FakeBroker
    from tests.test_sink_review_messages import kafka_config

    bucket = tmp_path / "bucket"
    settings = ClusterSettings.model_validate(
        {
            "db_url": str(tmp_path / "cluster.db"),
            "files_root": str(tmp_path / "files"),
            "storage_url": str(bucket),
        }
    )
    root = tmp_path / "files"
    store = open_store(settings.db_url, root)
    ev = make_event(0, violation=True, plate="京A12340")
    store.add_events([ev], outbox_destinations=("kafka",))
    rel = write_evidence(root, ev)
    store.set_evidence(ev.event_id, rel, f"{rel}/record.json")
    stored = store.get_event(ev.event_id)
    assert stored is not None
    with_files = event_message(stored, "kafka", root)["evidence"]
    assert isinstance(with_files, list)
    assert {"1.jpg", "record.json"} <= {f["name"] for f in with_files if isinstance(f, dict)}
    storage = LocalStorage(bucket, fsync=False)
    for f in (root / rel).iterdir():  # what the worker put before its commit
        storage.put(evidence_key(ev.event_id, f.name), f.read_bytes())
    shutil.rmtree(root / rel)  # this node has none of the worker's files
    assert event_message(stored, "kafka", root)["evidence"] == []  # what it said before
    remote = RemoteEvidence(StorageEvidence(storage), tmp_path / "cache")
    assert event_message(stored, "kafka", root, remote)["evidence"] == with_files
    down = RemoteEvidence(DownReader(), tmp_path / "cache-down")
    assert event_message(stored, "kafka", root, down)["evidence"] is None

    double = FakeBroker()

    def start_with_double(store: Any, config: Any, **kw: Any) -> Any:
        return kafka_mod.start_kafka_sender(store, config, producer_factory=double.factory, **kw)

    monkeypatch.setattr(started, "start_kafka_sender", start_with_double)
    sinks, sinks_store = start_cluster_sinks(settings, None, kafka_config())
    try:
        got = wait_for(double.records, 15, "the event from the cluster's sinks")
    finally:
        sinks.stop(5.0, {})
        sinks_store.close()
        store.close()
    assert json.loads(got[0].value or b"{}")["evidence"] == with_files
