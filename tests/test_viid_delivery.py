"""GA/T 1400 delivery wiring: config loading, evidence pictures, and the running delivery
against our receiver on 127.0.0.1 — outage, 401 mid-run, hanging receiver."""

from __future__ import annotations

import json
import logging
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sharpeyes.api.store import EventStore, open_store
from sharpeyes.api.viid.conformance import load_default_template
from sharpeyes.api.viid.delivery import (
    DeliveryConfig,
    EvidenceImages,
    load_delivery_config,
    start_delivery,
)
from sharpeyes.api.viid.mapping import EventMapper
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import FaultMode, FaultPlan, ReceiverConfig, ReceiverState
from sharpeyes.api.viid.resources import COLLECTIONS
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.pipeline.types import Event, EventType, ObjectKind, Plate
from tests._viid_fixtures import DEVICE, TOLLGATE, free_port, jpeg, make_event, mapping_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "sample_videos" / "viid_delivery.yaml"
PASSWORD = "s3cret-pw"
RCFG = ReceiverConfig(accounts={"admin": PASSWORD})
TYPES = [
    EventType.VEHICLE_PASS,
    EventType.NON_MOTOR_PASS,
    EventType.PERSON_SEEN,
    EventType.RED_LIGHT_VIOLATION,
    EventType.STREAM_HEALTH,
]


def delivery_config(url: str, **kw: Any) -> DeliveryConfig:
    base: dict[str, Any] = {
        "base_url": url,
        "device_id": DEVICE,
        "username": "admin",
        "password": PASSWORD,
        "device_ids": {"cam1": DEVICE},
        "tollgate_ids": {"cam1": TOLLGATE},
        "connect_timeout_s": 0.5,
        "request_timeout_s": 2.0,
        "register_backoff_initial_s": 0.05,
        "register_backoff_max_s": 0.3,
        "retry_backoff_initial_s": 0.05,
        "retry_backoff_max_s": 0.3,
        "idle_sleep_s": 0.05,
        "lease_s": 5.0,
    }
    base.update(kw)
    return DeliveryConfig.model_validate(base)


def events(start: int, n: int) -> list[Event]:
    """Mixed events with distinct tracks; every 5th is stream health (not a GA/T 1400 record)."""
    return [
        make_event(
            TYPES[i % len(TYPES)],
            track_id=i,
            t_ms=1_704_081_600_000 + i * 37,
            crop=jpeg(seed=i),
            plate=Plate("京A1234" + str(i % 10), "blue", 0.9),
        )
        for i in range(start, start + n)
    ]


def expected_ids(store: EventStore, cfg: DeliveryConfig, evs: list[Event]) -> set[str]:
    """The object id each stored event must arrive under (mapped exactly as the sender does)."""
    mapper = EventMapper(cfg.mapping_config(), cfg.platform)
    images = EvidenceImages(store, store.files_root, cfg.image_base_url)
    out: set[str] = set()
    for ev in evs:
        stored = store.get_event(ev.event_id)
        assert stored is not None
        # the SourceID (and so the object id) names a picture actually sent
        obj = mapper.map(stored.event, images(stored), stored.device_id)
        if obj is not None:
            out.add(obj.object_id)
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = open_store(f"sqlite:///{tmp_path / 'ev.db'}", tmp_path / "files")
    yield s
    s.close()


# -- config ------------------------------------------------------------------------------


def test_example_config_loads_and_builds_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_delivery_config(EXAMPLE)
    monkeypatch.setenv("SHARPEYES_VIID_PASSWORD", "from-env")
    assert cfg.resolve_password() == "from-env"
    client = cfg.client_config(cfg.resolve_password())
    assert client.password == "from-env" and client.device_id == cfg.device_id
    mapping = cfg.mapping_config()
    assert mapping.device_for("hanoi_b") == "34020000001190000062"
    assert mapping.device_for("other") == cfg.device_id  # unlisted streams use our id
    # … unless the camera has its own (stored with each event): the camera is the device
    assert mapping.device_for("other", "34020000001190000071") == "34020000001190000071"
    assert mapping.device_for("hanoi_b", "34020000001190000071") == "34020000001190000062"
    assert cfg.sender_options().destination == "viid"


def test_secret_from_env_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = delivery_config("http://127.0.0.1:1", password=None, password_env="VIID_PW_TEST")
    monkeypatch.delenv("VIID_PW_TEST", raising=False)
    with pytest.raises(ConfigError, match="VIID_PW_TEST is not set"):
        cfg.resolve_password()
    literal = delivery_config("http://127.0.0.1:1")
    assert PASSWORD not in repr(literal) and PASSWORD not in str(literal.model_dump())


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ("base_ur: http://x\n", "base_ur"),
        ("request_timeout_s: -1\n", "request_timeout_s"),
        ('device_ids: {cam1: "123"}\n', "device_ids"),
        ("images: url\n", "image_base_url"),
        ("platform: {bool_style: yes}\n", "platform.bool_style"),
    ],
)
def test_bad_field_is_named_in_one_line(tmp_path: Path, patch: str, field: str) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8") + patch, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_delivery_config(path)
    message = str(info.value)
    assert field in message and "\n" not in message and str(path) in message


def test_subscriber_auth_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    subs = {"allowed_subscribers": ["34010000005030000001"], "subscriber_username": "up"}
    cfg = delivery_config("http://127.0.0.1:1", subscriptions=subs)
    with pytest.raises(ConfigError, match="subscriber account"):
        cfg.subscriber_auth(env={})
    subs["subscriber_password_env"] = "UP_PW"
    cfg = delivery_config("http://127.0.0.1:1", subscriptions=subs)
    auth = cfg.subscriber_auth(env={"UP_PW": "x"})
    assert auth.accounts == {"up": "x"}
    assert auth.allowed_ids == {"34010000005030000001"}


def test_password_and_env_are_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8") + "password: x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="exactly one of password_env or password"):
        load_delivery_config(path)
    path.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="top level"):
        load_delivery_config(path)


# -- pictures ----------------------------------------------------------------------------


def _with_evidence(
    store: EventStore, root: Path, plate_image: int | None = 2, track_id: int = 3
) -> Event:
    """A violation with an evidence folder; ``plate_image``: the image a plate was located in
    (None: plate.jpg shows the lower vehicle, no plate was found)."""
    ev = make_event(EventType.RED_LIGHT_VIOLATION, track_id=track_id, crop=jpeg(seed=3))
    store.add_events([ev], outbox_destinations=["viid"])
    folder = root / "evidence" / "cam1" / ev.event_id
    folder.mkdir(parents=True)
    for name, (w, h) in {
        "1.jpg": (320, 180),
        "plate.jpg": (60, 20),
        "composite.jpg": (640, 360),
    }.items():
        (folder / name).write_bytes(jpeg(w, h, seed=w))
    record = {"images": [], "plate": {"text": None, "image": plate_image}}
    (folder / "record.json").write_text(json.dumps(record), encoding="utf-8")
    store.set_evidence(ev.event_id, str(folder.relative_to(root)), None)
    return ev


def test_violation_pictures_come_from_the_evidence_directory(
    store: EventStore, tmp_path: Path
) -> None:
    root = tmp_path / "files"
    ev = _with_evidence(store, root)
    stored = store.get_event(ev.event_id)
    assert stored is not None
    cfg = delivery_config("http://127.0.0.1:1", images="both", image_base_url="http://img/f")
    imgs = EvidenceImages(store, root, cfg.image_base_url)(stored)
    assert imgs.composite is not None and imgs.composite.url is not None
    assert imgs.composite.url.endswith(f"evidence/cam1/{ev.event_id}/composite.jpg")
    obj = EventMapper(cfg.mapping_config(), cfg.platform).map(stored.event, imgs, DEVICE)
    assert obj is not None
    subs = obj.payload["SubImageList"]["SubImageInfoObject"]
    assert [s["Type"] for s in subs] == ["01", "02", "07"]
    assert [(s["Width"], s["Height"]) for s in subs] == [(320, 180), (60, 20), (640, 360)]
    assert obj.payload["StorageUrl4"] == imgs.composite.url
    spec = COLLECTIONS[obj.collection]
    report = load_default_template().validate(spec.interface, spec.envelope([obj.payload]))
    assert report.ok, report.summary()


def test_a_plate_close_up_without_a_located_plate_is_not_sent_as_a_plate(
    store: EventStore, tmp_path: Path
) -> None:
    """A motorbike's evidence found no plate: plate.jpg shows the lower vehicle. It is not a
    plate picture (Type 02) and says nothing of whether there is a plate: HasPlate is not
    "true"."""
    root = tmp_path / "files"
    ev = _with_evidence(store, root, plate_image=None, track_id=4)
    stored = store.get_event(ev.event_id)
    assert stored is not None
    cfg = delivery_config("http://127.0.0.1:1")
    imgs = EvidenceImages(store, root, None)(stored)
    assert imgs.plate is None
    obj = EventMapper(cfg.mapping_config(), cfg.platform).map(stored.event, imgs, DEVICE)
    assert obj is not None
    types = [s["Type"] for s in obj.payload["SubImageList"]["SubImageInfoObject"]]
    assert "02" not in types and obj.payload.get("HasPlate") != "true"


def test_pass_event_uses_the_stored_crop(store: EventStore, tmp_path: Path) -> None:
    ev = make_event(EventType.VEHICLE_PASS, crop=jpeg(96, 64, seed=1))
    store.add_events([ev])
    stored = store.get_event(ev.event_id)
    assert stored is not None and stored.event.crop_jpeg is None  # bytes live on disk
    imgs = EvidenceImages(store, tmp_path / "files", None)(stored)
    assert imgs.closeup is not None and imgs.closeup.load() == ev.crop_jpeg
    assert imgs.composite is None and imgs.scene is None


# -- running delivery over HTTP ----------------------------------------------------------


@pytest.mark.integration
def test_end_to_end_one_record_per_stored_event(store: EventStore, tmp_path: Path) -> None:
    evs = events(0, 45)
    store.add_events(evs, outbox_destinations=["viid"])
    evidence_event = _with_evidence(store, tmp_path / "files")
    with ReceiverServer(config=RCFG) as srv:
        cfg = delivery_config(srv.url, batch_max_objects=7)
        delivery = start_delivery(store, cfg, files_root=tmp_path / "files")
        assert delivery.drain(30), delivery.backlog()
        assert delivery.stop() is False  # no drain asked at stop
        expected = expected_ids(store, cfg, [*evs, evidence_event])
        assert len(expected) == 37  # 36 records + the violation; 9 stream-health events skipped
        assert set(srv.state.ids()) == expected
        assert len(srv.state.ids()) == len(expected)
        assert srv.state.duplicates == 0 and srv.state.rejected == 0
        stats = delivery.backlog()
        assert stats.backlog == 0 and stats.failed == 0 and stats.delivered == 46
        assert not delivery.running


def _producer(store: EventStore, batches: list[list[Event]], gap_s: float) -> threading.Thread:
    def run() -> None:
        for batch in batches:
            store.add_events(batch, outbox_destinations=["viid"])
            time.sleep(gap_s)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def run_outage(store: EventStore, tmp_path: Path, outage_s: float, n_batches: int) -> None:
    """Receiver up, down for ``outage_s`` while events keep coming, up again: 0 lost, 0 dup."""
    port = free_port()
    state = ReceiverState()
    cfg = delivery_config(f"http://127.0.0.1:{port}", retry_backoff_max_s=2.0)
    batches = [events(i * 10, 10) for i in range(n_batches)]
    srv = ReceiverServer(port=port, config=RCFG, state=state).start()
    delivery = start_delivery(store, cfg, files_root=tmp_path / "files")
    producer = _producer(store, batches, gap_s=(outage_s + 4) / n_batches)
    try:
        _wait(lambda: len(state.ids()) > 0, 10)
        srv.stop()
        down_at = len(state.ids())
        time.sleep(outage_s)
        assert delivery.backlog().backlog > 0  # records piled up while the platform was down
        state.expire_sessions()  # a restarted platform has forgotten every session
        srv = ReceiverServer(port=port, config=RCFG, state=state).start()
        producer.join(timeout=outage_s + 30)
        assert delivery.drain(60), delivery.backlog()
    finally:
        delivery.stop()
        srv.stop()
    expected = expected_ids(store, cfg, [e for b in batches for e in b])
    assert 0 < down_at < len(expected)
    assert set(state.ids()) == expected  # 0 lost
    assert state.duplicates == 0  # 0 re-sent after a confirmed delivery
    assert state.registers >= 2  # registered again with the restarted platform


def _quietest_heap(window_s: float) -> int:
    """The smallest traced heap size (bytes) sampled every 20 ms over ``window_s``."""
    end = time.monotonic() + window_s
    low = tracemalloc.get_traced_memory()[0]
    while time.monotonic() < end:
        time.sleep(0.02)
        low = min(low, tracemalloc.get_traced_memory()[0])
    return low


def _one_off_blocks(after: tracemalloc.Snapshot, before: tracemalloc.Snapshot) -> int:
    """Bytes of single blocks of 1 MB or more that appeared between the snapshots: a table the
    interpreter resized once (the interned-strings dict grows by MBs when enough modules have
    run in the same process, whichever test that falls in), not a leak, which adds many small
    blocks from one place (an attempt's buffers: ~10 kB each)."""
    return sum(
        s.size_diff
        for s in after.compare_to(before, "traceback")
        if s.count_diff == 1 and s.size_diff >= 1_000_000
    )


def _wait(cond: Callable[[], bool], timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.integration
def test_receiver_down_10s_then_up_loses_nothing(store: EventStore, tmp_path: Path) -> None:
    run_outage(store, tmp_path, outage_s=10.0, n_batches=8)


@pytest.mark.integration
def test_401_mid_run_reregisters_and_continues(store: EventStore, tmp_path: Path) -> None:
    with ReceiverServer(config=RCFG) as srv:
        cfg = delivery_config(srv.url, batch_max_objects=4)
        delivery = start_delivery(store, cfg, files_root=tmp_path / "files")
        store.add_events(events(0, 20), outbox_destinations=["viid"])
        assert delivery.drain(20)
        assert srv.state.registers == 1
        srv.state.set_faults(FaultPlan(FaultMode.UNAUTHORIZED, count=2))
        store.add_events(events(20, 20), outbox_destinations=["viid"])
        assert delivery.drain(20), delivery.backlog()
        client = delivery.sender.client
        delivery.stop()
        assert srv.state.registers >= 2 and client.stats.session_losses >= 1
        assert set(srv.state.ids()) == expected_ids(store, cfg, events(0, 40))
        assert srv.state.duplicates == 0


@pytest.mark.integration
def test_hanging_receiver_times_out_without_thread_or_memory_growth(
    store: EventStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with ReceiverServer(config=RCFG) as srv:
        cfg = delivery_config(srv.url, request_timeout_s=0.25, retry_backoff_max_s=0.1)
        store.add_events(events(0, 20), outbox_destinations=["viid"])
        srv.state.set_faults(FaultPlan(FaultMode.HANG, count=-1, delay_s=1.0))
        caplog.set_level(logging.ERROR, logger="sharpeyes.api.viid")  # one warning per timeout
        delivery = start_delivery(store, cfg, files_root=tmp_path / "files")
        client = delivery.sender.client
        tracemalloc.start()
        time.sleep(2.0)  # warm-up: connection pool, buffers of the in-flight attempts
        threads_before = threading.active_count()
        requests_before = client.stats.requests
        # The heap at its quietest moment of a 1 s window, before and 6 s later: the buffers of
        # the attempt in flight come and go with each attempt (up to ~200 kB at one instant),
        # a leak stays and adds up over the ~20 attempts in between.
        base = _quietest_heap(1.0)
        before = tracemalloc.take_snapshot()
        time.sleep(5.0)
        grown = _quietest_heap(1.0) - base
        grown -= _one_off_blocks(tracemalloc.take_snapshot(), before)
        tracemalloc.stop()
        cycles = client.stats.requests - requests_before
        print(f"hang: {cycles} timed-out requests in 7 s, heap grew {grown} B")
        threads_after = threading.active_count()
        assert cycles >= 14, cycles  # it kept trying, each attempt cut by the timeout
        assert threads_after <= threads_before
        assert grown < 100_000, grown  # steady state: ~0 (a leak would be ~10 kB per attempt)
        assert delivery.sender.totals.delivered == 0 and delivery.backlog().retrying > 0
        srv.state.set_faults(FaultPlan())
        assert delivery.drain(20), delivery.backlog()
        started = time.monotonic()
        delivery.stop()
        assert time.monotonic() - started < 5
    assert set(srv.state.ids()) == expected_ids(store, cfg, events(0, 20))


def test_checkpoint_plate_picture_and_face_survive_the_store(
    store: EventStore, tmp_path: Path
) -> None:
    """A structured vehicle_pass keeps its plate picture (SubImage 02) through the store, and a
    face capture maps to a FaceObject with its face close-up (11): both pass the template."""
    plate = jpeg(60, 20, seed=5)
    ev = make_event(
        EventType.VEHICLE_PASS, crop=jpeg(96, 64, seed=1), plate=Plate("京A12345", "blue", 0.9)
    )
    ev = ev.with_(plate_jpeg=plate)
    face = make_event(EventType.FACE_CAPTURE, track_id=9, crop=jpeg(40, 48, seed=2))
    face = face.with_(kind=ObjectKind.PERSON)
    store.add_events([ev, face])
    mapper = EventMapper(mapping_config())
    for event, types in ((ev, ["02", "09"]), (face, ["11"])):
        stored = store.get_event(event.event_id)
        assert stored is not None
        imgs = EvidenceImages(store, tmp_path / "files", None)(stored)
        if event is ev:
            assert imgs.plate is not None and imgs.plate.load() == plate
        obj = mapper.map(stored.event, imgs, device_id=DEVICE)
        assert obj is not None
        got = sorted(s["Type"] for s in obj.payload["SubImageList"]["SubImageInfoObject"])
        assert got == types
        spec = COLLECTIONS[obj.collection]
        report = load_default_template().validate(spec.interface, spec.envelope([obj.payload]))
        assert report.ok, report.summary()


@pytest.mark.integration
def test_deliver_command_sends_what_analyze_left_in_the_outbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The view library was down when ``analyze`` ran: its records wait in the outbox with a
    retry back-off. ``sharpeyes deliver OUT`` sends them now, once each, and says so."""
    import yaml

    from sharpeyes.api.commands.cli import main as cli_main

    out = tmp_path / "out"
    s = open_store(f"sqlite:///{out / 'events.db'}", out)
    evs = events(0, 10)
    s.add_events(evs, outbox_destinations=["viid"])
    with s.db.transaction() as conn:  # as after failed attempts: due only in an hour
        conn.execute("UPDATE outbox SET attempts = 3, next_attempt_ms = next_attempt_ms + 3600000")
    s.close()
    with ReceiverServer(config=RCFG) as srv:
        cfg_path = tmp_path / "deliver.yaml"
        cfg = delivery_config(srv.url).model_dump(mode="json", exclude_defaults=True)
        cfg["password"] = PASSWORD  # a dump masks it
        cfg_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        rc = cli_main(["deliver", str(out), "--deliver", str(cfg_path), "--timeout", "30"])
        said = capsys.readouterr().out
        assert rc == 0, said
        # 10 rows done: 8 records, 2 stream-health events (no GA/T 1400 record) settled
        assert "10 delivered now (10 in all), 0 pending, 0 dead letters" in said
        assert len(srv.state.ids()) == 8 and srv.state.duplicates == 0
        # again: nothing left to send
        assert cli_main(["deliver", str(out), "--deliver", str(cfg_path)]) == 0
        assert "0 delivered now (10 in all)" in capsys.readouterr().out
    missing = cli_main(["deliver", str(tmp_path / "nowhere"), "--deliver", str(cfg_path)])
    assert missing == 2 and "not found" in capsys.readouterr().err
