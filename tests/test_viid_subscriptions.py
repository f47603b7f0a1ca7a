"""Subscriptions (we are the lower platform): parsing, registry, notifications, and the full
create → notify → cancel / DELETE / EndTime cycle over real HTTP on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from sharpeyes.api.store import EventStore, OutboxItem, open_store
from sharpeyes.api.viid import ids
from sharpeyes.api.viid.client import ViidClient
from sharpeyes.api.viid.codes import SubscribeStatus
from sharpeyes.api.viid.conformance import RuleTemplate, load_default_template
from sharpeyes.api.viid.delivery import DeliveryConfig, start_delivery
from sharpeyes.api.viid.mapping import EventImages, EventMapper
from sharpeyes.api.viid.notifier import NotifierOptions, SubscriptionNotifier, filter_images
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import ReceiverConfig
from sharpeyes.api.viid.resources import Collection
from sharpeyes.api.viid.schemas import Subscribe
from sharpeyes.api.viid.subscription_routes import (
    SubscriberAuth,
    SubscriptionRefusedError,
    create_subscription_router,
    parse_subscription,
)
from sharpeyes.api.viid.subscriptions import ResourceResolver, Subscription, SubscriptionRegistry
from sharpeyes.pipeline.types import Event, EventType, Plate
from tests._pg_fixtures import db_url, pg_server  # noqa: F401
from tests._viid_fixtures import DEVICE, TOLLGATE, jpeg, make_event, mapping_config

OTHER_DEVICE = "34020000001190000099"
UPPER_ID = "34010000005030000001"
SID = "340200000000032024010112000000001"
SID2 = "340200000000032024010112000000002"
NOW = 1_704_081_600_000
PASSWORD = "pw-admin"
RCFG = ReceiverConfig(accounts={"admin": PASSWORD})


@pytest.fixture(scope="module")
def tpl() -> RuleTemplate:
    return load_default_template()


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[EventStore]:  # noqa: F811
    """A migrated store on SQLite, then on a real PostgreSQL (``postgres`` marker)."""
    s = open_store(db_url, tmp_path / "files")
    yield s
    s.close()


def resolver() -> ResourceResolver:
    return ResourceResolver(platform_id=DEVICE, mapping=mapping_config())


def sub_object(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "SubscribeID": SID,
        "Title": "vehicles at gate 1",
        "SubscribeDetail": "13,14",
        "ResourceClass": 0,
        "ResourceURI": TOLLGATE,
        "ReceiveAddr": "http://127.0.0.1:9/VIID/SubscribeNotifications",
        "BeginTime": "20240101000000",
        "EndTime": "20990101000000",
        "ReportInterval": 0,
        "OperateType": 0,
    }
    base.update(kw)
    return base


def parse(obj: dict[str, Any], now_ms: int = NOW) -> Subscription:
    return parse_subscription(
        Subscribe.model_validate(obj), resolver=resolver(), subscriber=UPPER_ID, now_ms=now_ms
    )


# -- parsing and matching ------------------------------------------------------------------


def test_parse_accepts_a_tollgate_subscription() -> None:
    sub = parse(sub_object(SubscribeDetail="13,14,"))  # trailing comma (XZH quirk)
    assert sub.details == {13, 14}
    assert sub.collections == {Collection.MOTOR_VEHICLE, Collection.NON_MOTOR_VEHICLE}
    assert sub.resource_ids == {TOLLGATE} and sub.destination == f"sub:{SID}"
    assert sub.begin_ms == ids.parse_local_time("20240101000000")
    assert sub.is_active(NOW) and sub.subscriber == UPPER_ID


@pytest.mark.parametrize(
    ("patch", "why"),
    [
        ({"SubscribeID": "123"}, "33 digits"),
        ({"SubscribeDetail": "3,7"}, "none of 11, 12, 13, 14"),
        ({"SubscribeDetail": "13,x"}, "comma-separated codes"),
        ({"ResourceURI": OTHER_DEVICE}, "not ours"),
        ({"ResourceURI": ""}, "ResourceURI is empty"),
        ({"ReceiveAddr": "ftp://x/y"}, "ReceiveAddr"),
        ({"EndTime": "20200101000000"}, "in the past"),
        ({"BeginTime": "2024-01-01"}, "BeginTime"),
    ],
)
def test_parse_refuses_with_a_reason(patch: dict[str, Any], why: str) -> None:
    with pytest.raises(SubscriptionRefusedError, match=why):
        parse(sub_object(**patch))


def test_matching_by_kind_resource_and_begin_time() -> None:
    sub = parse(sub_object())
    r = resolver()
    mine = r.ids_of("cam1", None)
    assert {DEVICE, TOLLGATE} <= mine
    assert sub.wants(Collection.MOTOR_VEHICLE, mine, NOW)
    assert not sub.wants(Collection.PERSON, mine, NOW)  # 11 not subscribed
    assert not sub.wants(Collection.MOTOR_VEHICLE, r.ids_of("cam9", OTHER_DEVICE), NOW)
    assert not sub.wants(Collection.MOTOR_VEHICLE, mine, sub.begin_ms - 1)  # type: ignore[operator]
    faces = parse(sub_object(SubscribeDetail="12"))
    assert faces.event_types == {EventType.FACE_CAPTURE}  # face captures are notified too
    whole = parse(sub_object(ResourceURI=DEVICE, SubscribeDetail="11"))  # our platform id
    assert whole.wants(Collection.PERSON, r.ids_of("cam9", OTHER_DEVICE), NOW)


def test_registry_lifecycle(store: EventStore) -> None:
    reg = SubscriptionRegistry(store.db, resolver(), cache_s=0)
    assert reg.put(parse(sub_object()), actor=UPPER_ID) is True
    assert reg.put(parse(sub_object(Title="renamed")), actor=UPPER_ID) is False
    got = reg.get(SID)
    assert got is not None and got.title == "renamed" and got.status is SubscribeStatus.ACTIVE
    vehicle = make_event(EventType.VEHICLE_PASS, t_ms=NOW)
    person = make_event(EventType.PERSON_SEEN, t_ms=NOW)
    assert reg.destinations_for(vehicle, now_ms=NOW) == [f"sub:{SID}"]
    assert reg.destinations_for(person, now_ms=NOW) == []
    assert reg.cancel(SID, actor=UPPER_ID, reason="done", now_ms=NOW) is True
    assert reg.cancel("9" * 33) is False
    got = reg.get(SID)
    assert got is not None and got.status is SubscribeStatus.CANCELLED
    assert got.public()["SubscribeStatus"] == 1
    assert reg.destinations_for(vehicle, now_ms=NOW) == []
    # re-subscribing with the same id re-activates it
    reg.put(parse(sub_object()))
    assert reg.destinations_for(vehicle, now_ms=NOW) == [f"sub:{SID}"]
    end = NOW + 60_000
    reg.put(parse(sub_object(SubscribeID=SID2, EndTime=ids.local_time_str(end))))
    assert reg.expire(end + 1000) == [SID2]
    expired = reg.get(SID2)
    assert expired is not None and expired.status is SubscribeStatus.EXPIRED
    with store.db.transaction(readonly=True) as conn:
        actions = [r[0] for r in conn.fetchall("SELECT action FROM viid_subscription_log")]
    assert actions == ["create", "update", "cancel", "update", "create", "expire"]


def _notifier(store: EventStore, reg: SubscriptionRegistry) -> SubscriptionNotifier:
    def no_client(origin: str) -> Any:
        raise AssertionError(f"no HTTP expected ({origin})")

    return SubscriptionNotifier(
        store,
        reg,
        EventMapper(mapping_config()),
        images_for=lambda s: EventImages(),
        client_for=no_client,
        options=NotifierOptions(org_code=DEVICE[:12]),
    )


@pytest.mark.parametrize(
    ("etype", "declare"),
    [
        (EventType.VEHICLE_PASS, None),
        (EventType.RED_LIGHT_VIOLATION, "-1"),
        (EventType.NON_MOTOR_PASS, "12"),
        (EventType.PERSON_SEEN, None),
        (EventType.FACE_CAPTURE, None),  # SubscribeDetail 12 (faces)
    ],
)
def test_notification_passes_megvii_template(
    tpl: RuleTemplate, store: EventStore, etype: EventType, declare: str | None
) -> None:
    reg = SubscriptionRegistry(store.db, resolver())
    sub = parse(sub_object(SubscribeDetail="11,12,13,14", ResultImageDeclare=declare))
    assert etype in sub.event_types
    mapper = EventMapper(mapping_config())
    pairs = []
    coll = Collection.FACE
    for i in range(20):  # the most one notification carries
        ev = make_event(etype, track_id=i, crop=jpeg(seed=i), plate=Plate("京A1", "blue", 0.9))
        obj = mapper.map(ev)
        assert obj is not None
        coll = obj.collection
        item = OutboxItem(100 + i, sub.destination, ev.event_id, str(etype), NOW, 0, NOW, None)
        pairs.append((item, filter_images(obj.payload, sub.image_types())))
    nid, body = _notifier(store, reg).notification(sub, coll, pairs)
    report = tpl.validate("SubscribeNotifications", body)
    assert report.ok, report.summary()
    note = body["SubscribeNotificationListObject"]["SubscribeNotificationObject"][0]
    assert note["NotificationID"] == nid and len(nid) == 33 and note["SubscribeID"] == SID
    assert len(note["InfoIDs"]) <= 1024 and len(note["InfoIDs"].split(",")) == 20
    subs = [s for p in pairs for s in p[1]["SubImageList"]["SubImageInfoObject"]]
    if declare == "-1":
        assert subs == []
    elif declare == "12":
        assert subs and {s["Type"] for s in subs} == {"12"}
    # the same rows give the same id (retries are idempotent), other rows another one
    assert _notifier(store, reg).notification(sub, coll, pairs)[0] == nid
    assert _notifier(store, reg).notification(sub, coll, pairs[1:])[0] != nid


# -- over HTTP ---------------------------------------------------------------------------


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def service_app(reg: SubscriptionRegistry, tpl: RuleTemplate) -> FastAPI:
    app = FastAPI()
    auth = SubscriberAuth(allowed_ids=frozenset({UPPER_ID}), accounts={"upper": "upper-pw"})
    app.include_router(create_subscription_router(reg, auth=auth, template=tpl))
    return app


def delivery_config(url: str) -> DeliveryConfig:
    return DeliveryConfig.model_validate(
        {
            "base_url": url,
            "device_id": DEVICE,
            "username": "admin",
            "password": PASSWORD,
            "device_ids": {"cam1": DEVICE},
            "tollgate_ids": {"cam1": TOLLGATE},
            "request_timeout_s": 2.0,
            "retry_backoff_initial_s": 0.05,
            "retry_backoff_max_s": 0.3,
            "idle_sleep_s": 0.05,
            "subscriptions": {"enabled": True},
        }
    )


def add(store: EventStore, reg: SubscriptionRegistry, evs: list[Event]) -> None:
    """What the pipeline's sink does: enqueue each event for the subscriptions it matches."""
    for ev in evs:
        store.add_events([ev], outbox_destinations=reg.destinations_for(ev))


def mixed(start: int, n: int) -> list[Event]:
    kinds = [EventType.VEHICLE_PASS, EventType.NON_MOTOR_PASS, EventType.PERSON_SEEN]
    now = int(time.time() * 1000)
    return [
        make_event(kinds[i % 3], track_id=i, t_ms=now + i, crop=jpeg(seed=i))
        for i in range(start, start + n)
    ]


def upper() -> httpx.Client:
    return httpx.Client(
        auth=httpx.DigestAuth("upper", "upper-pw"),
        headers={"User-Identify": UPPER_ID, "Content-Type": "application/VIID+JSON"},
        timeout=5,
    )


def _statuses(resp: httpx.Response) -> list[dict[str, Any]]:
    assert resp.status_code == 200, resp.text
    out: list[dict[str, Any]] = resp.json()["ResponseStatusListObject"]["ResponseStatusObject"]
    return out


@pytest.mark.integration
def test_subscribe_notify_cancel_over_http(
    store: EventStore, tmp_path: Path, tpl: RuleTemplate
) -> None:
    reg = SubscriptionRegistry(store.db, resolver(), cache_s=0)
    with ReceiverServer(config=RCFG) as platform, serve(service_app(reg, tpl)) as ours:
        addr = f"{platform.url}/VIID/SubscribeNotifications"
        body = {
            "SubscribeListObject": {
                "SubscribeObject": [
                    sub_object(ReceiveAddr=addr),
                    sub_object(SubscribeID=SID2, ReceiveAddr=addr, ResourceURI=OTHER_DEVICE),
                    sub_object(SubscribeID="12345", ReceiveAddr=addr),
                ]
            }
        }
        with upper() as http:
            codes = [
                (s["Id"], s["StatusCode"])
                for s in _statuses(http.post(f"{ours}/VIID/Subscribes", json=body))
            ]
        assert codes == [(SID, 0), (SID2, 4), ("12345", 8)]
        delivery = start_delivery(
            store, delivery_config(platform.url), files_root=tmp_path / "files", registry=reg
        )
        try:
            first = mixed(0, 30)
            add(store, reg, first)
            assert delivery.drain(20), delivery.subscription_backlog()
            wanted = {e.event_id for e in first if e.type is not EventType.PERSON_SEEN}
            mapper = EventMapper(mapping_config())
            expected = {mapper.map(e).object_id for e in first if e.event_id in wanted}  # type: ignore[union-attr]
            assert set(platform.state.ids()) == expected
            assert platform.state.rejected == 0 and platform.state.duplicates == 0
            assert set(platform.state.notifications.values()) == {SID}
            # the upper platform cancels: PUT with OperateType=1
            cancel = {
                "SubscribeObject": {"SubscribeID": SID, "OperateType": 1, "CancelReason": "done"}
            }
            with upper() as http:
                resp = http.put(f"{ours}/VIID/Subscribes/{SID}", json=cancel)
                listed = http.get(f"{ours}/VIID/Subscribes").json()
            assert resp.json()["ResponseStatusObject"]["StatusCode"] == 0
            status = {
                s["SubscribeID"]: s["SubscribeStatus"]
                for s in listed["SubscribeListObject"]["SubscribeObject"]
            }
            assert status == {SID: 1}
            later = mixed(100, 9)
            add(store, reg, later)  # no destination any more
            # rows enqueued before the cancel are given up, not sent
            store.add_events(mixed(200, 6), outbox_destinations=[f"sub:{SID}"])
            assert delivery.drain(10)
            assert set(platform.state.ids()) == expected
            assert delivery.notifier is not None and delivery.notifier.totals.dropped == 6
        finally:
            delivery.stop()


@pytest.mark.integration
def test_auth_delete_and_get(store: EventStore, tpl: RuleTemplate) -> None:
    reg = SubscriptionRegistry(store.db, resolver(), cache_s=0)
    body = {"SubscribeListObject": {"SubscribeObject": [sub_object()]}}
    with serve(service_app(reg, tpl)) as ours:
        url = f"{ours}/VIID/Subscribes"
        wrong = httpx.DigestAuth("upper", "nope")
        resp = httpx.post(url, json=body, headers={"User-Identify": UPPER_ID}, auth=wrong)
        assert resp.status_code == 401 and "Digest" in resp.headers["www-authenticate"]
        stranger = {"User-Identify": OTHER_DEVICE}
        resp = httpx.post(
            url, json=body, headers=stranger, auth=httpx.DigestAuth("upper", "upper-pw")
        )
        assert resp.status_code == 403 and reg.list_all() == []
        with upper() as http:
            assert _statuses(http.post(url, json=body))[0]["StatusCode"] == 0
            one = http.get(f"{url}/{SID}").json()["SubscribeObject"]
            assert one["SubscribeStatus"] == 0 and one["ResourceURI"] == TOLLGATE
            gone = _statuses(http.delete(url, params={"IDList": f"{SID},{'9' * 33}"}))
            assert [s["StatusCode"] for s in gone] == [0, 4]
            assert http.get(f"{url}/{'9' * 33}").status_code == 404
            bad = http.post(url, content=b"{not json")
            assert bad.status_code == 400
            assert bad.json()["ResponseStatusObject"]["StatusCode"] == 7
    got = reg.get(SID)
    assert got is not None and got.status is SubscribeStatus.CANCELLED


@pytest.mark.integration
def test_end_time_stops_notifications(store: EventStore, tmp_path: Path) -> None:
    reg = SubscriptionRegistry(store.db, resolver(), cache_s=0)
    with ReceiverServer(config=RCFG) as platform:
        addr = f"{platform.url}/VIID/SubscribeNotifications"
        now = int(time.time() * 1000)
        end = now + 60_000
        reg.put(parse(sub_object(ReceiveAddr=addr, EndTime=ids.local_time_str(end)), now))
        cfg = delivery_config(platform.url)
        # driven by hand, with a clock past EndTime
        notifier = SubscriptionNotifier(
            store,
            reg,
            EventMapper(cfg.mapping_config()),
            images_for=lambda s: EventImages(),
            client_for=lambda origin: ViidClient(cfg.client_config(PASSWORD, origin)),
            options=cfg.notifier_options(),
        )
        try:
            before = [e for e in mixed(0, 6) if e.type is not EventType.PERSON_SEEN]
            add(store, reg, before)
            assert notifier.run_once().delivered == len(before)
            after = mixed(10, 6)
            store.add_events(after, outbox_destinations=[f"sub:{SID}"])
            report = notifier.run_once(end + 1000)
            assert report.dropped == 6 and report.delivered == 0
            got = reg.get(SID)
            assert got is not None and got.status is SubscribeStatus.EXPIRED
            assert len(platform.state.ids()) == len(before)
            assert reg.destinations_for(after[0], now_ms=end + 1000) == []
        finally:
            notifier.close()


# -- every writer adds the subscriptions' rows (the one write path) ----------------------------


def _routing_events() -> list[tuple[Event, str | None]]:
    early = NOW - 30 * 86_400_000  # before BeginTime 2024-01-01
    return [
        (make_event(EventType.VEHICLE_PASS, track_id=1), None),  # cam1: DEVICE + TOLLGATE
        (make_event(EventType.NON_MOTOR_PASS, track_id=2), None),
        (make_event(EventType.PERSON_SEEN, track_id=3), None),
        (make_event(EventType.RED_LIGHT_VIOLATION, track_id=4), None),
        (make_event(EventType.VEHICLE_PASS, track_id=5, stream="cam9"), OTHER_DEVICE),
        (make_event(EventType.VEHICLE_PASS, track_id=6, t_ms=early), None),
        (make_event(EventType.VEHICLE_PASS, track_id=7, stream="cam8"), "34020000001190000088"),
    ]


def _routed(store: EventStore) -> set[tuple[str, str]]:
    with store.db.transaction(readonly=True) as conn:
        rows = conn.fetchall("SELECT destination, object_id FROM outbox")
    return {(str(r[0]), str(r[1])) for r in rows}


@pytest.mark.parametrize("writer", ["store_writer", "store_sink", "cluster_lease"])
def test_every_writer_enqueues_the_subscriptions_an_event_matches(
    store: EventStore, writer: str
) -> None:
    from sharpeyes.api.cluster.leases import CameraSpec, LeaseStore
    from sharpeyes.api.store.sink import StoreSink
    from sharpeyes.api.store.writer import StoreWriter

    # cam9 and cam8 are cameras that device_ids does not list: known by their own device id
    known = ResourceResolver(DEVICE, mapping_config(), extra_ids=frozenset({OTHER_DEVICE}))
    reg = SubscriptionRegistry(store.db, known, cache_s=0)
    subs = [
        sub_object(),  # 13,14 from TOLLGATE (cam1)
        sub_object(SubscribeID=SID2, ResourceURI=DEVICE, SubscribeDetail="11"),  # platform
        sub_object(SubscribeID=SID[:-1] + "3", ResourceURI=OTHER_DEVICE),  # cam9's device
        sub_object(SubscribeID=SID[:-1] + "4", ResourceURI=OTHER_DEVICE),  # cancelled below
    ]
    for obj in subs:
        reg.put(
            parse_subscription(
                Subscribe.model_validate(obj), resolver=known, subscriber=UPPER_ID, now_ms=NOW
            )
        )
    reg.cancel(SID[:-1] + "4")
    items = _routing_events()
    expected = {
        (dest, ev.event_id) for ev, dev in items for dest in reg.destinations_for(ev, dev)
    } | {("viid", ev.event_id) for ev, _ in items}
    assert {d for d, _ in expected} == {"viid", f"sub:{SID}", f"sub:{SID2}", f"sub:{SID[:-1]}3"}
    if writer == "store_writer":  # run / serve / worker processes
        w = StoreWriter(store)
        for ev, dev in items:
            w.sink(device_id=dev, destinations=("viid",)).emit(ev)
        assert w.close(10)
    elif writer == "store_sink":  # analyze
        for ev, dev in items:
            StoreSink(store, ("viid",), device_id=dev).emit(ev)
    else:  # the cluster's fenced commits
        leases = LeaseStore(store.db)
        for i, (ev, dev) in enumerate(items):
            leases.put_camera(CameraSpec(f"c{i}"))
            lease = leases.grant(f"c{i}", "w1")
            leases.commit(lease, lease.pos + 1, [ev], outbox_destinations=("viid",), device_id=dev)
    assert _routed(store) == expected
    # the same event again (a re-send after a crash) adds no row
    StoreSink(store, ("viid",)).emit(items[0][0])
    assert _routed(store) == expected


def test_routing_is_re_resolved_against_the_nodes_config(store: EventStore) -> None:
    reg = SubscriptionRegistry(store.db, resolver(), cache_s=0)
    reg.put(parse(sub_object()))  # TOLLGATE: cam1
    moved = ResourceResolver(
        platform_id=DEVICE, mapping=mapping_config(tollgate_ids={"cam7": TOLLGATE})
    )
    assert SubscriptionRegistry(store.db, moved).refresh_routing() == 1
    ev = make_event(EventType.VEHICLE_PASS, stream="cam7")
    store.add_events([ev])
    assert _routed(store) == {(f"sub:{SID}", ev.event_id)}
