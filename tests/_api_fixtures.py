"""API test fixtures: a seeded store service, tokens per role, evidence files, a live server.

Evidence is generated (small JPEGs, a tiny H.264 MP4 made with PyAV/libx264, record.json) so
the API tests do not depend on the pipeline.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import uvicorn
from fastapi import FastAPI

from sharpeyes.api.rest.app import create_app
from sharpeyes.api.rest.auth import Role
from sharpeyes.api.rest.context import ApiSettings
from sharpeyes.api.rest.schemas import StreamHealthPublic
from sharpeyes.api.rest.service import ModelStatus, StoreService, build_store_service
from sharpeyes.pipeline.types import (
    Box,
    Event,
    EventType,
    LampColor,
    ObjectKind,
    Plate,
    Violation,
    make_event_id,
)

T0 = 1_764_384_000_000  # 2025-11-29 02:40:00 UTC
EVIDENCE_FILES = ("1.jpg", "2.jpg", "3.jpg", "plate.jpg", "composite.jpg", "clip.mp4")


def jpeg(width: int, height: int, text: str, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 60, np.uint8)
    img[:, :, 1] = rng.integers(40, 120, (height, width), dtype=np.uint8)
    cv2.putText(img, text, (8, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return bytes(buf)


def tiny_mp4(path: Path, frames: int = 24, size: tuple[int, int] = (160, 96)) -> None:
    """A short H.264 MP4 (yuv420p, faststart) that browsers can play."""
    import av

    w, h = size
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 12)
        stream.options = {"preset": "ultrafast", "g": "12"}
        for i in range(frames):
            img = np.zeros((h, w, 3), np.uint8)
            img[:, (i * 6) % w : (i * 6) % w + 20] = (0, 0, 255)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            for pkt in stream.encode(frame):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)


@functools.cache
def _evidence_bytes(name: str) -> bytes:
    if name == "clip.mp4":
        with tempfile.TemporaryDirectory() as tmp:
            tiny_mp4(Path(tmp) / name)
            return (Path(tmp) / name).read_bytes()
    size = (480, 270) if name != "composite.jpg" else (960, 540)
    return jpeg(*size, name, seed=len(name))


def write_evidence(files_root: Path, event: Event) -> str:
    """Write a fake evidence record for ``event``; return its directory relative to the root."""
    rel = f"evidence/{event.stream_id}/{event.event_id}"
    d = files_root / rel
    d.mkdir(parents=True, exist_ok=True)
    for name in EVIDENCE_FILES:
        (d / name).write_bytes(_evidence_bytes(name))
    record = {"event_id": event.event_id, "files": list(EVIDENCE_FILES)}
    (d / "record.json").write_text(json.dumps(record), encoding="utf-8")
    return rel


def make_event(
    i: int,
    *,
    camera: str = "cam1",
    violation: bool = False,
    plate: str | None = None,
    t_ms: int | None = None,
    pedestrian: bool = False,
) -> Event:
    first = T0 + i * 1000 if t_ms is None else t_ms
    if violation:
        type_ = EventType.PEDESTRIAN_RED_LIGHT if pedestrian else EventType.RED_LIGHT_VIOLATION
    else:
        type_ = EventType.VEHICLE_PASS
    kind = ObjectKind.PERSON if pedestrian else ObjectKind.MOTOR_VEHICLE
    return Event(
        event_id=make_event_id(camera, i, first, str(type_)),
        type=type_,
        stream_id=camera,
        first_seen_ms=first,
        last_seen_ms=first + 1500,
        first_pts=float(i),
        last_pts=i + 1.5,
        kind=kind,
        class_name="person" if pedestrian else "car",
        track_id=i,
        confidence=0.9,
        best_box=Box(100.0, 120.0, 300.0, 260.0, 1280, 720),
        plate=None if plate is None else Plate(plate, "blue", 0.88),
        violation=None
        if not violation
        else Violation(
            code="1625",
            signal_group="north_straight",
            signal_color=LampColor.RED,
            seconds_since_red=3.2,
            lane_no=2,
            movement="straight",
            approach="N",
            crossed_stop_line_pts=i + 0.5,
            evidence_pts=(i + 0.2, i + 0.5, i + 1.2),
        ),
        direction="north",
    )


@dataclass
class Seeded:
    """A service with tokens for each role and known events."""

    service: StoreService
    files_root: Path
    tokens: dict[str, str] = field(default_factory=dict)
    violations: list[Event] = field(default_factory=list)
    passes: list[Event] = field(default_factory=list)

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


PLATES = ("京A12345", "沪B67890", "粤C13579", "京A88888", None)


def health_provider() -> dict[str, StreamHealthPublic]:
    return {
        "cam1": StreamHealthPublic(
            camera_id="cam1",
            state="running",
            input_fps=25.0,
            analysed_fps=10.0,
            drops_by_reason={"queue_full": 3},
            reconnects=1,
            last_frame_age_s=0.04,
            skew_ms=12.0,
            decoder="pyav-cpu",
            url="rtsp://admin:hunter2@192.0.2.7:554/live",
        )
    }


def seed_service(db_url: str, root: Path, *, violations: int = 6, passes: int = 8) -> Seeded:
    files_root = root / "files"
    service = build_store_service(
        db_url,
        files_root,
        token_key=b"test-pepper",
        url_key=b"test-url-key",
        health=health_provider,
        model_status=lambda: ModelStatus(True, "CPUExecutionProvider"),
    )
    seeded = Seeded(service=service, files_root=files_root)
    for role in Role:
        _, token = service.tokens.issue(f"{role.label}-user", role)
        seeded.tokens[role.label] = token
    seeded.violations = [
        make_event(i, violation=True, plate=PLATES[i % len(PLATES)], pedestrian=i == 5)
        for i in range(violations)
    ]
    seeded.passes = [
        make_event(100 + i, camera="cam2" if i % 2 else "cam1", plate=f"京B{i:05d}")
        for i in range(passes)
    ]
    service.ingest([*seeded.violations, *seeded.passes])
    for ev in seeded.violations:
        rel = write_evidence(files_root, ev)
        service.events.set_evidence(ev.event_id, rel, f"{rel}/record.json")
    return seeded


def api_settings(**overrides: object) -> ApiSettings:
    base: dict[str, object] = {
        "feed_heartbeat_s": 0.5,
        "auth_failure_limit": 5,
        "auth_failure_window_s": 60.0,
    }
    base.update(overrides)
    return ApiSettings(**base)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def make_app(seeded: Seeded, **settings: object) -> FastAPI:
    return create_app(api_settings(**settings), seeded.service)
