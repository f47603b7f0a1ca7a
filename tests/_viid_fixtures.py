"""Builders shared by the GA/T 1400 tests: events, JPEGs, configs, servers on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from sharpeyes.api.viid.config import ViidClientConfig, ViidMappingConfig
from sharpeyes.pipeline.types import Box, Event, EventType, LampColor, ObjectKind, Plate, Violation

DEVICE = "34020000001190000001"
TOLLGATE = "34020000001210000001"
T0_MS = 1_704_081_600_000  # 2024-01-01 12:00:00 Beijing


def shared_dir() -> Path:
    env = os.environ.get("SHARPEYES_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def jpeg(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return bytes(buf)


def make_event(
    type_: EventType = EventType.VEHICLE_PASS,
    *,
    track_id: int = 7,
    t_ms: int = T0_MS,
    stream: str = "cam1",
    plate: Plate | None = None,
    crop: bytes | None = None,
    violation: bool = False,
) -> Event:
    kind = {
        EventType.VEHICLE_PASS: ObjectKind.MOTOR_VEHICLE,
        EventType.RED_LIGHT_VIOLATION: ObjectKind.MOTOR_VEHICLE,
        EventType.NON_MOTOR_PASS: ObjectKind.NON_MOTOR,
        EventType.PERSON_SEEN: ObjectKind.PERSON,
        EventType.PEDESTRIAN_RED_LIGHT: ObjectKind.PERSON,
        EventType.FACE_CAPTURE: ObjectKind.PERSON,
    }.get(type_, ObjectKind.OTHER)
    vio = None
    if violation or type_ in (EventType.RED_LIGHT_VIOLATION, EventType.PEDESTRIAN_RED_LIGHT):
        vio = Violation(
            code="1625",
            signal_group="main",
            signal_color=LampColor.RED,
            seconds_since_red=3.2,
            lane_no=2,
            movement="straight",
            approach="north",
            crossed_stop_line_pts=1.5,
        )
    return Event(
        event_id=f"ev-{type_.value}-{track_id}-{t_ms}",
        type=type_,
        stream_id=stream,
        first_seen_ms=t_ms,
        last_seen_ms=t_ms + 2000,
        first_pts=1.0,
        last_pts=3.0,
        kind=kind,
        class_name="car" if kind is ObjectKind.MOTOR_VEHICLE else "bicycle",
        track_id=track_id,
        confidence=0.9,
        best_box=Box(100.4, 200.0, 900.0, 800.7, 1920, 1080),
        best_pts=1.25,
        crop_jpeg=crop,
        direction="n2s",
        plate=plate,
        violation=vio,
        extra=(("vehicle_color", "white"),),
    )


def mapping_config(**kw: object) -> ViidMappingConfig:
    base: dict[str, object] = {
        "device_ids": {"cam1": DEVICE},
        "tollgate_ids": {"cam1": TOLLGATE},
    }
    base.update(kw)
    return ViidMappingConfig.model_validate(base)


def client_config(url: str, **kw: object) -> ViidClientConfig:
    base: dict[str, object] = {
        "base_url": url,
        "device_id": DEVICE,
        "username": "admin",
        "password": "secret",
        "request_timeout_s": 2.0,
        "connect_timeout_s": 1.0,
        "register_backoff_initial_s": 0.05,
        "register_backoff_max_s": 0.2,
    }
    base.update(kw)
    return ViidClientConfig.model_validate(base)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def dropping_server() -> Iterator[str]:
    """A TCP server that accepts and immediately closes every connection."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.recv(1024)
            conn.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        t.join(timeout=2)
        srv.close()


def sender_main() -> None:
    """Entry point of the SIGKILL test's child: drain ``$DB`` to ``$URL`` forever."""
    from sharpeyes.api.store import open_store
    from sharpeyes.api.viid.client import ViidClient
    from sharpeyes.api.viid.mapping import EventMapper
    from sharpeyes.api.viid.sender import OutboxSender, SenderOptions

    store = open_store(os.environ["DB"], Path(os.environ["FILES"]))
    client = ViidClient(client_config(os.environ["URL"], batch_max_objects=5))
    opts = SenderOptions(claim_limit=20, lease_ms=1500, backoff_initial_s=0.05, idle_sleep_s=0.05)
    sender = OutboxSender(store, client, EventMapper(mapping_config()), options=opts)
    sender.run(threading.Event())
