"""The dead-letter REST route (``api/rest/routes/delivery.py``) and ``Delivery.health()``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sharpeyes.api.rest import deps
from sharpeyes.api.rest.routes import delivery as route
from sharpeyes.api.store import EventStore, Outbox, open_store
from sharpeyes.api.viid.delivery import DeliveryConfig, start_delivery
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import ReceiverConfig
from sharpeyes.pipeline.types import EventType
from tests._viid_fixtures import DEVICE, jpeg, make_event


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = open_store(f"sqlite:///{tmp_path / 'ev.db'}", tmp_path / "files")
    try:
        yield s
    finally:
        s.close()


def test_list_retry_and_metrics_routes(store: EventStore) -> None:
    evs = [make_event(EventType.VEHICLE_PASS, track_id=i, crop=jpeg(seed=i)) for i in range(3)]
    store.add_events(evs, outbox_destinations=["viid"])
    outbox = Outbox(store.db)
    items = outbox.claim_batch("viid", 10, now_ms=2**62)
    outbox.mark_dead([i.id for i in items], "permanent: StatusCode 4: TollgateID not exists", 2)
    app = FastAPI()
    app.include_router(route.router)
    app.dependency_overrides[deps._admin] = lambda: SimpleNamespace(token_id="t")
    app.dependency_overrides[deps._ctx] = lambda: SimpleNamespace(
        service=SimpleNamespace(db=store.db)
    )
    c = TestClient(app)
    page = c.get("/api/v1/delivery/dead-letters", params={"limit": 2}).json()
    assert [i["event_id"] for i in page["items"]] == [evs[0].event_id, evs[1].event_id]
    assert page["items"][0]["reason"].endswith("TollgateID not exists")
    assert page["next_after_id"] == page["items"][1]["row_id"]
    metrics = c.get("/api/v1/delivery/metrics").text
    assert 'sharpeyes_viid_outbox_rows{destination="viid",state="dead"} 3' in metrics
    row = page["items"][0]["row_id"]
    assert c.post(f"/api/v1/delivery/dead-letters/{row}/retry").json() == {"requeued": 1}
    assert c.post(f"/api/v1/delivery/dead-letters/{row}/retry").status_code == 404
    assert c.post("/api/v1/delivery/dead-letters/retry").json() == {"requeued": 2}
    assert outbox.stats("viid").backlog == 3


@pytest.mark.integration
def test_delivery_health_shows_why_register_fails(store: EventStore, tmp_path: Path) -> None:
    with ReceiverServer(config=ReceiverConfig(accounts={"admin": "right"})) as srv:
        cfg = DeliveryConfig.model_validate(
            {
                "base_url": srv.url,
                "device_id": DEVICE,
                "username": "admin",
                "password": "wrong",
                "register_backoff_initial_s": 0.05,
                "register_backoff_max_s": 0.1,
                "idle_sleep_s": 0.05,
            }
        )
        delivery = start_delivery(store, cfg, files_root=tmp_path / "files")
        try:
            deadline = time.monotonic() + 10
            health = delivery.health()
            while health["last_error"] is None and time.monotonic() < deadline:
                time.sleep(0.05)
                health = delivery.health()
        finally:
            delivery.stop()
    assert health["state"] == "offline"
    assert "HTTP 401" in str(health["last_error"])
    assert "wrong username or password" in str(health["last_error"])
    assert isinstance(health["consecutive_register_failures"], int)
    assert health["dead_letters"] == 0
