"""A public-security centre consuming the MQTT feed (real ``mosquitto``, real REST server): each
message must carry what an integrator acts on without the list routes — the violation's time
(the stop-line crossing, not the track's first sighting), the structured attributes as the
REST API states them, and evidence URLs that download with the documented bearer token.

Before 2026-12-05 the message had only ``first_seen_ms`` / pts (the crossing time had to be
recomputed from rounded pts), colours only inside ``extra`` and, for evidence, the server's
folder path (``evidence_dir``) — nothing a consumer could download."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sharpeyes.api.sinks import start_mqtt_sender
from tests._api_fixtures import (
    Seeded,
    jpeg,
    live_server,
    make_app,
    make_event,
    seed_service,
    write_evidence,
)
from tests.test_mqtt_sink import Broker, _config, broker  # noqa: F401

pytestmark = pytest.mark.integration


class Collector:
    """A durable QoS 1 subscriber keeping every message body."""

    def __init__(self, port: int) -> None:
        self.bodies: list[dict[str, object]] = []
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="psb-centre", clean_session=False
        )
        self.client.on_connect = lambda c, *_: c.subscribe("sharpeyes/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.bodies.append(json.loads(msg.payload))

    def by_id(self) -> dict[str, dict[str, object]]:
        with self._lock:
            return {str(b["event_id"]): b for b in self.bodies}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, violations=0, passes=0)
    yield s
    s.service.db.close()


def test_message_carries_violation_time_attributes_and_downloadable_evidence(
    broker: Broker,  # noqa: F811
    seeded: Seeded,
) -> None:
    store = seeded.service.events
    violation = dataclasses.replace(make_event(7, violation=True, plate="京A12345"))
    checkpoint = dataclasses.replace(
        make_event(8, camera="gate", plate="京GPL768"),
        crop_jpeg=jpeg(200, 120, "crop"),
        extra=(("reason", "ended"), ("plate_status", "read"), ("vehicle_color", "grey")),
    )
    store.add_events([violation, checkpoint], outbox_destinations=["mqtt"])
    rel = write_evidence(seeded.files_root, violation)
    store.set_evidence(violation.event_id, rel, f"{rel}/record.json")

    sub = Collector(broker.port)
    assert sub.subscribed.wait(10)
    delivery = start_mqtt_sender(store, _config(broker.port))
    try:
        assert delivery.drain(30), delivery.health()
        deadline = time.monotonic() + 10
        while len(sub.by_id()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        delivery.stop()
        sub.close()
    got = sub.by_id()
    v, p = got[violation.event_id], got[checkpoint.event_id]

    viewer = seeded.auth("viewer")
    with live_server(make_app(seeded)) as base, httpx.Client(base_url=base, timeout=10) as api:
        rest_v = api.get(f"/api/v1/violations/{violation.event_id}", headers=viewer).json()
        rest_p = api.get(f"/api/v1/events/{checkpoint.event_id}", headers=viewer).json()
        downloads = {}
        for msg in (v, p):
            for f in msg["evidence"]:  # type: ignore[attr-defined]
                r = api.get(f["url"], headers=viewer)
                downloads[f["url"]] = (r.status_code, len(r.content), f["size"])
                assert api.get(f["url"]).status_code == 401  # the token is what opens it

    # the violation's time is the stop-line crossing (0.5 s after first_seen here), as in REST
    crossing = violation.first_seen_ms + 500
    assert v["time_ms"] == crossing != v["first_seen_ms"]
    assert v["violation"]["time_ms"] == crossing  # type: ignore[index]
    assert rest_v["time_ms"] == crossing and rest_v["violation"]["time_ms"] == crossing
    assert p["time_ms"] == p["first_seen_ms"] == rest_p["time_ms"]
    # structured attributes as the REST API states them (and its search filters take)
    assert p["attributes"] == {"plate_status": "read", "vehicle_color": "grey"}
    assert p["attributes"] == {k: x for k, x in rest_p["attributes"].items() if x is not None}
    assert v["attributes"] is None
    # evidence: what REST lists, each URL downloading with the bearer token
    names = [f["name"] for f in v["evidence"]]  # type: ignore[attr-defined]
    assert names == [f["name"] for f in rest_v["evidence"]]
    assert {"1.jpg", "2.jpg", "3.jpg", "composite.jpg", "clip.mp4", "record.json"} <= set(names)
    assert [f["name"] for f in p["evidence"]] == ["crop.jpg"]  # type: ignore[attr-defined]
    assert downloads and all(s == 200 and n == size for s, n, size in downloads.values())
    assert v["plate"]["text"] == "京A12345" and p["plate"]["text"] == "京GPL768"  # type: ignore[index]
