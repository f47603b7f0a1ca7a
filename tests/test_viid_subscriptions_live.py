"""GA/T 1400 subscriptions follow the cameras the service has *now* (GAT1400.md §7).

A ResourceURI may name a camera's own device id. The set of such ids is asked of the service's
camera registry at every subscription (config cameras, cameras added through the REST API while
the service runs, and those added in an earlier run), never copied at start-up: a camera added
over REST can be subscribed to at once, a removed one no longer. Events are routed to
subscriptions by the device id they are stored with, so a REST-added camera's events get their
``sub:<SubscribeID>`` rows like any other's — end to end: ``serve`` wiring on a clip, a camera
added over REST, an upper platform (the project's ``viid-server``) subscribing over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from sharpeyes.api.commands.run import subscription_routes
from sharpeyes.api.commands.serve import build_service
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.api.rest.app import create_app
from sharpeyes.api.rest.auth.tokens import Role
from sharpeyes.api.rest.context import ApiSettings
from sharpeyes.api.rest.service import StoreService
from sharpeyes.api.viid.codes import SubscribeStatus
from sharpeyes.api.viid.subscriptions import Subscription, SubscriptionRegistry
from tests._viid_fixtures import free_port, make_event
from tests._wait import wait_for as _wait

REPO = Path(__file__).resolve().parents[1]
VIID_JSON = "application/VIID+JSON;charset=UTF-8"
TOKEN = "se_0123456789ab.live-cameras-test-secret"
UPPER = "11010000005030000001"
SYSTEM = "34020000001190000001"
CONFIG_DEVICE = "34020000001190000011"
NEW_DEVICE = "34020000001190000077"
SID = "340200000000032024010112000000001"
SID2 = "340200000000032024010112000000002"
SID3 = "340200000000032024010112000000003"


def delivery(**more: Any) -> dict[str, Any]:
    d: dict[str, Any] = yaml.safe_load((REPO / "sample_videos" / "viid_delivery.yaml").read_text())
    d.update(password="pw", password_env=None, device_id=SYSTEM, **more)
    d["subscriptions"].update({"enabled": True, "allowed_subscribers": [UPPER]})
    return d


def config(tmp_path: Path, cameras: list[dict[str, Any]] | None = None) -> ServiceConfig:
    return ServiceConfig.model_validate(
        {
            "cameras": cameras or [],
            "store": {"url": str(tmp_path / "e.db"), "files_root": str(tmp_path)},
            "delivery": delivery(),
        }
    )


def sub_object(sid: str, resource: str, addr: str = "http://127.0.0.1:9/VIID/N") -> dict[str, Any]:
    return {
        "SubscribeID": sid,
        "Title": "vehicles",
        "SubscribeDetail": "13",
        "ResourceClass": 1,
        "ResourceURI": resource,
        "ReceiveAddr": addr,
        "BeginTime": "20240101000000",
        "EndTime": "20990101000000",
        "ReportInterval": 0,
        "OperateType": 0,
    }


def subscribe(http: TestClient | httpx.Client, obj: dict[str, Any]) -> dict[str, Any]:
    resp = http.post(
        "/VIID/Subscribes",
        content=json.dumps({"SubscribeListObject": {"SubscribeObject": [obj]}}),
        headers={"User-Identify": UPPER, "Content-Type": VIID_JSON},
    )
    assert resp.status_code == 200, resp.text
    status: dict[str, Any] = resp.json()["ResponseStatusListObject"]["ResponseStatusObject"][0]
    return status


def admin(service: StoreService) -> dict[str, str]:
    service.tokens.ensure(TOKEN, "test", Role.ADMIN)
    return {"Authorization": f"Bearer {TOKEN}"}


def app_for(cfg: ServiceConfig) -> tuple[TestClient, StoreService, SubscriptionRegistry]:
    service = build_service(cfg)
    registry, routers = subscription_routes(cfg, service)
    assert registry is not None
    return TestClient(create_app(ApiSettings(), service, extra_routers=routers)), service, registry


def rtsp_camera(cid: str, device_id: str) -> dict[str, Any]:
    return {"id": cid, "url": "rtsp://192.0.2.10:554/ch1", "device_id": device_id}


def test_a_camera_added_over_rest_may_be_named_at_once_and_not_after_removal(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path, [rtsp_camera("gate1", CONFIG_DEVICE)])
    client, service, _ = app_for(cfg)
    with client:
        auth = admin(service)
        assert subscribe(client, sub_object(SID, CONFIG_DEVICE))["StatusCode"] == 0
        refused = subscribe(client, sub_object(SID2, NEW_DEVICE))
        assert refused["StatusCode"] != 0 and NEW_DEVICE in refused["StatusString"], refused
        added = client.post("/api/v1/cameras", json=rtsp_camera("gate2", NEW_DEVICE), headers=auth)
        assert added.status_code == 201, added.text
        # the very next subscription naming it is accepted: no restart
        status = subscribe(client, sub_object(SID2, NEW_DEVICE))
        assert (status["Id"], status["StatusCode"]) == (SID2, 0), status
        assert client.delete("/api/v1/cameras/gate2", headers=auth).status_code == 204
        gone = subscribe(client, sub_object(SID3, NEW_DEVICE))
        assert gone["StatusCode"] != 0 and "not ours" in gone["StatusString"], gone


def test_a_camera_added_over_rest_in_an_earlier_run_may_be_named(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    client, service, _ = app_for(cfg)
    with client:
        added = client.post(
            "/api/v1/cameras", json=rtsp_camera("gate2", NEW_DEVICE), headers=admin(service)
        )
        assert added.status_code == 201, added.text
    service.db.close()
    again, _, _ = app_for(cfg)  # the next start of the same installation
    with again:
        status = subscribe(again, sub_object(SID, NEW_DEVICE))
        assert status["StatusCode"] == 0, status


def test_events_of_a_run_time_camera_get_their_subscription_rows(tmp_path: Path) -> None:
    """Routing is by the device id an event is stored with: it never needed the camera list
    (the reported "its events may not get sub: rows" does not hold once it is subscribed)."""
    cfg = config(tmp_path)
    client, service, registry = app_for(cfg)
    with client:
        added = client.post(
            "/api/v1/cameras", json=rtsp_camera("gate2", NEW_DEVICE), headers=admin(service)
        )
        assert added.status_code == 201, added.text
        assert subscribe(client, sub_object(SID, NEW_DEVICE))["StatusCode"] == 0
        # the store's one write path, as the runtime's writer calls it for camera gate2
        mine = make_event(stream="gate2", track_id=2)
        other = make_event(stream="gate9", track_id=9)
        service.events.add_events([mine], outbox_destinations=["viid"], device_id=NEW_DEVICE)
        service.events.add_events([other], outbox_destinations=["viid"], device_id=CONFIG_DEVICE)
        with service.db.transaction(readonly=True) as conn:
            rows = conn.fetchall(
                "SELECT object_id FROM outbox WHERE destination = ?", (f"sub:{SID}",)
            )
        assert [str(r[0]) for r in rows] == [mine.event_id]
        assert registry.destinations_for(mine, NEW_DEVICE) == [f"sub:{SID}"]


def test_routing_never_depended_on_the_camera_list(tmp_path: Path) -> None:
    """A subscription stored for an id no camera has (yet) still routes that id's events: the
    second half of the report is false; only acceptance at POST time used a stale copy."""
    cfg = config(tmp_path)
    service = build_service(cfg)
    d = cfg.delivery
    assert d is not None
    registry = SubscriptionRegistry(service.db, d.resolver())
    assert NEW_DEVICE not in registry.resolver.known_ids()
    registry.put(
        Subscription(
            subscribe_id=SID,
            details=frozenset({13}),
            resource_ids=frozenset({NEW_DEVICE}),
            receive_addr="http://127.0.0.1:9/VIID/N",
            status=SubscribeStatus.ACTIVE,
        )
    )
    event = make_event(stream="late-cam", track_id=3)
    service.events.add_events([event], device_id=NEW_DEVICE)
    with service.db.transaction(readonly=True) as conn:
        rows = conn.fetchall("SELECT object_id FROM outbox WHERE destination = ?", (f"sub:{SID}",))
    assert [str(r[0]) for r in rows] == [event.event_id]
    service.db.close()


# -- end to end: the serve wiring on a clip, a camera added over REST, a subscriber over HTTP --


@pytest.fixture
def serving(tmp_path: Path, sample_videos: Path) -> Iterator[Callable[..., Any]]:
    """``sharpeyes serve``'s wiring (run_node) with the clips folder as a media root, so a
    file camera may be added over REST (a real site adds RTSP cameras)."""
    from sharpeyes.api.commands.run import subscription_routes as routes
    from sharpeyes.api.commands.serve import attach_runtime, start_server
    from sharpeyes.api.node.runtime import NodeRuntime
    from sharpeyes.api.rest.feed import committed_publisher

    stops: list[Callable[[], None]] = []

    def start(cfg: ServiceConfig) -> tuple[str, StoreService]:
        service = build_service(cfg)
        service.cameras.file_roots = (sample_videos,)
        registry, routers = routes(cfg, service)
        runtime = NodeRuntime(
            cfg,
            store=service.events,
            on_committed=committed_publisher(service.feed),
            feed=True,
            subscriptions=registry,
        ).start()
        stops.append(runtime.stop)
        attach_runtime(service, runtime)
        server = start_server(service, "127.0.0.1", free_port(), extra_routers=routers)
        stops.append(server.stop)
        with httpx.Client(base_url=server.url, timeout=5) as http:
            _wait(lambda: http.get("/healthz").status_code == 200, 60, "healthz")
        return server.url, service

    yield start
    for stop in reversed(stops):
        stop()


@pytest.mark.integration
def test_a_subscriber_gets_the_vehicles_of_a_camera_added_over_rest(
    tmp_path: Path, sample_videos: Path, serving: Callable[..., Any]
) -> None:
    from sharpeyes.api.viid.receiver.server import ReceiverServer
    from sharpeyes.api.viid.receiver.state import ReceiverConfig

    rcfg = ReceiverConfig(accounts={"admin": "pw"})
    with ReceiverServer(config=rcfg) as upper, ReceiverServer(config=rcfg) as subscriber:
        d = delivery(base_url=upper.url, request_timeout_s=2.0, idle_sleep_s=0.05)
        d.update(retry_backoff_initial_s=0.05, retry_backoff_max_s=0.3)
        cfg = ServiceConfig.model_validate(
            {
                "detector": {"model": "yolov5n", "input_size": [384, 640], "providers": "cpu"},
                "store": {"url": str(tmp_path / "e.db"), "files_root": str(tmp_path)},
                "loop_files": False,
                "delivery": d,
            }
        )
        url, service = serving(cfg)
        with httpx.Client(base_url=url, timeout=10) as http:
            cam = {
                "id": "hw",
                "url": str(sample_videos / "highway_640x360.mp4"),
                "live": True,
                "analysis_fps": 5,
                "device_id": NEW_DEVICE,
            }
            added = http.post("/api/v1/cameras", json=cam, headers=admin(service))
            assert added.status_code == 201, added.text
            addr = f"{subscriber.url}/VIID/SubscribeNotifications"
            status = subscribe(http, sub_object(SID, NEW_DEVICE, addr))
            assert status["StatusCode"] == 0, status
            _wait(subscriber.state.ids, 120, "a SubscribeNotification")

        def outbox() -> tuple[list[Any], list[Any]]:
            with service.db.transaction(readonly=True) as conn:
                rows = conn.fetchall(
                    "SELECT object_id, state FROM outbox WHERE destination = ?", (f"sub:{SID}",)
                )
                mine = conn.fetchall(
                    "SELECT event_id FROM events WHERE device_id = ? AND type = 'vehicle_pass'",
                    (NEW_DEVICE,),
                )
            return rows, mine

        def settled() -> bool:
            # The subscriber holds a notification a moment before the notifier hears its answer
            # and marks the row delivered: the two agree once no notification is in flight.
            rows, _ = outbox()
            delivered = [r for r in rows if str(r[1]) == "delivered"]
            return len(subscriber.state.ids()) == len(delivered) > 0

        _wait(settled, 60, "every received notification marked delivered")
        rows, mine = outbox()
        assert rows and {str(r[0]) for r in rows} <= {str(r[0]) for r in mine}
        assert set(subscriber.state.notifications.values()) == {SID}
        assert subscriber.state.rejected == 0
