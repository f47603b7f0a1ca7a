"""End to end over real HTTP on 127.0.0.1: events stored with their outbox rows → one running
:class:`Delivery` → (a) the upper platform we push to and (b) a second platform that subscribed
to us through ``/VIID/Subscribes``. Both are our conformant receiver, which checks every object
against the MEGVII template; each must hold exactly one record per matching stored event."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sharpeyes.api.store import EventStore, open_store
from sharpeyes.api.viid.conformance import load_default_template
from sharpeyes.api.viid.delivery import DeliveryConfig, start_delivery
from sharpeyes.api.viid.mapping import EventMapper
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import ReceiverConfig
from sharpeyes.api.viid.resources import Collection
from sharpeyes.api.viid.subscription_routes import SubscriberAuth, create_subscription_router
from sharpeyes.api.viid.subscriptions import SubscriptionRegistry
from sharpeyes.pipeline.types import Event, EventType, Plate
from tests._viid_fixtures import DEVICE, TOLLGATE, jpeg, make_event
from tests.test_viid_subscriptions import UPPER_ID, serve, sub_object

pytestmark = pytest.mark.integration
PASSWORD = "e2e-pw"
RCFG = ReceiverConfig(accounts={"admin": PASSWORD})
KINDS = [
    EventType.VEHICLE_PASS,
    EventType.RED_LIGHT_VIOLATION,
    EventType.NON_MOTOR_PASS,
    EventType.PERSON_SEEN,
    EventType.PEDESTRIAN_RED_LIGHT,
    EventType.STREAM_HEALTH,
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = open_store(f"sqlite:///{tmp_path / 'ev.db'}", tmp_path / "files")
    yield s
    s.close()


def config(url: str) -> DeliveryConfig:
    raw: dict[str, Any] = {
        "base_url": url,
        "device_id": DEVICE,
        "username": "admin",
        "password": PASSWORD,
        "device_ids": {"cam1": DEVICE},
        "tollgate_ids": {"cam1": TOLLGATE},
        "batch_max_objects": 8,
        "retry_backoff_initial_s": 0.05,
        "retry_backoff_max_s": 0.3,
        "idle_sleep_s": 0.05,
        "subscriptions": {"enabled": True, "allowed_subscribers": [UPPER_ID]},
    }
    return DeliveryConfig.model_validate(raw)


def make(i: int) -> Event:
    now = int(time.time() * 1000)
    return make_event(
        KINDS[i % len(KINDS)],
        track_id=i,
        t_ms=now + i,
        crop=jpeg(seed=i),
        plate=Plate(f"京A{i:05d}", "blue", 0.9) if i % 2 else None,
    )


def test_push_and_subscription_each_get_every_record_exactly_once(
    store: EventStore, tmp_path: Path
) -> None:
    root = tmp_path / "files"
    cfg = config("http://unused")
    reg = SubscriptionRegistry(store.db, cfg.resolver(), cache_s=0)
    router = create_subscription_router(
        reg,
        auth=SubscriberAuth(allowed_ids=frozenset({UPPER_ID})),
        template=load_default_template(),
    )
    app = FastAPI()
    app.include_router(router)
    with (
        ReceiverServer(config=RCFG) as upper,
        ReceiverServer(config=RCFG) as subscriber,
        serve(app) as ours,
    ):
        sub = sub_object(
            SubscribeDetail="11,13",
            ResourceURI=DEVICE,
            ReceiveAddr=f"{subscriber.url}/VIID/SubscribeNotifications",
        )
        resp = httpx.post(
            f"{ours}/VIID/Subscribes",
            json={"SubscribeListObject": {"SubscribeObject": [sub]}},
            headers={"User-Identify": UPPER_ID},
        )
        assert resp.json()["ResponseStatusListObject"]["ResponseStatusObject"][0]["StatusCode"] == 0
        delivery = start_delivery(store, config(upper.url), files_root=root, registry=reg)
        evs = [make(i) for i in range(60)]

        def produce() -> None:  # what the pipeline's sink does, while delivery runs
            for ev in evs:
                dests = ["viid", *reg.destinations_for(ev)]
                store.add_events([ev], outbox_destinations=dests)
                time.sleep(0.005)

        producer = threading.Thread(target=produce)
        producer.start()
        producer.join(timeout=30)
        try:
            assert delivery.drain(30), (delivery.backlog(), delivery.subscription_backlog())
        finally:
            delivery.stop()
    mapper = EventMapper(cfg.mapping_config())
    objects = {ev.event_id: mapper.map(ev) for ev in evs}
    pushed = {o.object_id for o in objects.values() if o is not None}
    assert len(pushed) == 50  # 10 stream-health events are not GA/T 1400 records
    assert set(upper.state.ids()) == pushed and len(upper.state.ids()) == 50
    persons_and_vehicles = {
        o.object_id
        for o in objects.values()
        if o is not None and o.collection is not Collection.NON_MOTOR_VEHICLE
    }
    assert set(subscriber.state.ids()) == persons_and_vehicles
    for receiver in (upper, subscriber):
        assert receiver.state.rejected == 0 and receiver.state.duplicates == 0
    assert subscriber.state.notifications and set(subscriber.state.notifications.values()) == {
        sub["SubscribeID"]
    }
