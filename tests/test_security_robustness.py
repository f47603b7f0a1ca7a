"""Issue 14 item 11: no 500s from hostile input, no silently stopped cameras, config cameras
read-only, no blocking under the camera lock, honest readiness and evidence flags."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sharpeyes.api.rest.cameras import CameraRegistry, NullCameraController
from sharpeyes.pipeline.config import CameraConfig
from tests._api_fixtures import Seeded, make_app, make_event, seed_service


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(str(tmp_path / "events.db"), tmp_path)
    yield s
    s.service.db.close()


@pytest.fixture
def client(seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(make_app(seeded), raise_server_exceptions=False) as c:
        yield c


class Recorder(NullCameraController):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = threading.Event()
        self.gate.set()

    def add(self, config: CameraConfig) -> None:
        self.calls.append(f"add {config.id}")
        self.gate.wait(10)  # a source hanging in open

    def update(self, config: CameraConfig) -> None:
        if config.url is None:
            raise ValueError("camera has no url")
        self.calls.append(f"update {config.id}")


def test_cameras_refuse_null_urls_and_config_cameras_and_do_not_block(
    seeded: Seeded, client: TestClient
) -> None:
    admin, viewer = seeded.auth("admin"), seeded.auth("viewer")
    ctl = Recorder()
    reg = CameraRegistry(
        ctl, db=seeded.service.db, seed=[CameraConfig(id="yaml1", url="rtsp://10.0.0.1/a")]
    )
    seeded.service.cameras = reg
    client.post("/api/v1/cameras", json={"id": "api1", "url": "rtsp://10.0.0.2/b"}, headers=admin)

    r = client.patch("/api/v1/cameras/api1", json={"url": None}, headers=admin)
    # 400 with the reason, like any invalid camera config (not a malformed request)
    assert r.status_code == 400 and not any(c.startswith("update") for c in ctl.calls)
    assert "url cannot be null" in r.json()["detail"]
    assert reg.get("api1").config.url == "rtsp://10.0.0.2/b"

    for method, path, body in (
        ("PATCH", "/api/v1/cameras/yaml1", {"name": "x"}),
        ("DELETE", "/api/v1/cameras/yaml1", None),
        ("POST", "/api/v1/cameras/yaml1/stop", None),
    ):
        r = client.request(method, path, json=body, headers=admin)
        assert r.status_code == 409 and "config file" in r.text, (method, path, r.text)

    # a create stuck in the controller must not block readers or other cameras
    ctl.gate.clear()
    stuck = threading.Thread(
        target=client.post,
        args=("/api/v1/cameras",),
        kwargs={"json": {"id": "slow", "url": "rtsp://10.0.0.3/c"}, "headers": admin},
    )
    stuck.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    assert client.get("/api/v1/cameras", headers=viewer).status_code == 200
    assert client.delete("/api/v1/cameras/api1", headers=admin).status_code == 204
    assert time.monotonic() - t0 < 2.0
    ctl.gate.set()
    stuck.join(10)


def test_hostile_input_gets_4xx_not_500(seeded: Seeded, client: TestClient) -> None:
    viewer, admin = seeded.auth("viewer"), seeded.auth("admin")
    vid = seeded.violations[0].event_id
    r = client.get(f"/api/v1/events/{vid}/evidence/1.jpg", params={"exp": 2**39, "sig": "é" * 8})
    assert r.status_code == 403
    cursor = base64.urlsafe_b64encode(json.dumps([10**30, "x"]).encode()).decode()
    assert (
        client.get("/api/v1/events", params={"cursor": cursor}, headers=viewer).status_code == 400
    )
    with client.stream(
        "GET",
        "/api/v1/feed",
        headers={**viewer, "Last-Event-ID": b"\xb2"},  # "²" in latin-1
    ) as r:
        assert r.status_code == 200
    body = b'{"id": "cam7", "url": "rtsp://10.0.0.9/x", "name": "\\ud800"}'
    r = client.post(
        "/api/v1/cameras", content=body, headers={**admin, "content-type": "application/json"}
    )
    assert r.status_code < 500, r.text
    r = client.post(
        f"/api/v1/violations/{vid}/review",
        content=b'{"action": "reject", "reason": "\\udc00"}',
        headers={**admin, "content-type": "application/json"},
    )
    assert r.status_code < 500, r.text


def test_readiness_checks_free_disk_and_missing_evidence_is_flagged(
    seeded: Seeded, client: TestClient
) -> None:
    from sharpeyes.api.rest.service import ModelStatus

    seeded.service.set_model_status(lambda: ModelStatus(True, "CPUExecutionProvider"))
    assert client.get("/readyz").status_code == 200
    seeded.service.min_free_bytes = 1 << 62  # a full disk
    r = client.get("/readyz")
    assert r.status_code == 503 and "disk" in r.json()["detail"]

    bare = make_event(900, violation=True, plate="京C00001")
    seeded.service.ingest([bare])  # stored without any evidence
    ev = client.get(f"/api/v1/violations/{bare.event_id}", headers=seeded.auth("viewer")).json()
    assert ev["evidence_complete"] is False
    assert any(p["part"] == "evidence" for p in ev["incomplete"])
