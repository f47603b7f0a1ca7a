"""GA/T 1400 subscriptions in cluster mode (GAT1400.md §7, ``api/cluster/delivery.py``).

The cluster's commits write ``sub:<SubscribeID>`` outbox rows in the cluster database; the
process that runs the cluster delivers them with the same sender as a single node (durable
outbox, retries with back-off). Checked against real HTTP peers (the project's ``viid-server``):
a subscriber that is down at first gets every notification once it is up, and — end to end —
``sharpeyes serve`` with a ``cluster:`` section takes a subscription over HTTP naming a camera
added at run time through ``/api/v1/cluster/cameras`` and notifies its vehicles.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sharpeyes.api.cluster.service import ClusterSettings, start_cluster
from sharpeyes.api.cluster.synthetic import synthetic_spec
from sharpeyes.api.store import EventStore, open_store
from sharpeyes.api.viid.codes import SubscribeStatus
from sharpeyes.api.viid.delivery import DeliveryConfig
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import ReceiverConfig
from sharpeyes.api.viid.subscriptions import Subscription, SubscriptionRegistry
from tests._viid_fixtures import free_port
from tests._wait import wait_for

REPO = Path(__file__).resolve().parents[1]
VIID_JSON = "application/VIID+JSON;charset=UTF-8"
PASSWORD = "pw"
RCFG = ReceiverConfig(accounts={"admin": PASSWORD})
UPPER = "11010000005030000001"
SYSTEM = "34020000001190000001"
NEW_DEVICE = "34020000001190000077"
SID = "340200000000032024010112000000001"


def delivery(upper_url: str) -> dict[str, Any]:
    d: dict[str, Any] = yaml.safe_load((REPO / "sample_videos" / "viid_delivery.yaml").read_text())
    d.update(
        base_url=upper_url,
        device_id=SYSTEM,
        password=PASSWORD,
        password_env=None,
        request_timeout_s=2.0,
        connect_timeout_s=0.5,
        retry_backoff_initial_s=0.05,
        retry_backoff_max_s=0.3,
        idle_sleep_s=0.05,
    )
    d["subscriptions"].update({"enabled": True, "allowed_subscribers": [UPPER]})
    return d


def sub_rows(db: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT object_id, state, attempts FROM outbox WHERE destination = ? ORDER BY id",
            (f"sub:{SID}",),
        ).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


@pytest.fixture
def cluster_store(tmp_path: Path) -> Iterator[EventStore]:
    store = open_store(str(tmp_path / "c" / "cluster.db"), tmp_path)
    yield store
    store.close()


def test_the_cluster_delivers_subscription_rows_with_retries(
    tmp_path: Path, cluster_store: EventStore
) -> None:
    db = tmp_path / "c" / "cluster.db"
    cfg = DeliveryConfig.model_validate(delivery("http://127.0.0.1:9"))
    port = free_port()  # the subscriber: nothing listens there yet
    SubscriptionRegistry(cluster_store.db, cfg.resolver()).put(
        Subscription(
            subscribe_id=SID,
            details=frozenset({13}),
            resource_ids=frozenset({SYSTEM}),  # the platform id: every record
            receive_addr=f"http://127.0.0.1:{port}/VIID/SubscribeNotifications",
            status=SubscribeStatus.ACTIVE,
        )
    )
    with ReceiverServer(config=RCFG) as upper:
        cfg = DeliveryConfig.model_validate(delivery(upper.url))
        settings = ClusterSettings.model_validate(
            {"db_url": str(db), "workers": 1, "tick_s": 0.05, "files_root": str(tmp_path)}
        )
        handle = start_cluster(settings, [synthetic_spec("s1", rate=20)], delivery=cfg)
        try:
            # the subscriber is down: the rows stay in the outbox and are retried
            wait_for(
                lambda: any(attempts > 0 for _, _, attempts in sub_rows(db)), 30, "a failed try"
            )
            assert {state for _, state, _ in sub_rows(db)} <= {"pending", "sending"}
            with ReceiverServer(config=RCFG, port=port) as subscriber:
                wait_for(subscriber.state.ids, 30, "a SubscribeNotification")
                handle.remove_camera("s1")
                wait_for(
                    lambda: {s for _, s, _ in sub_rows(db)} == {"delivered"}, 30, "all delivered"
                )
                notified = subscriber.state.ids()
                assert set(subscriber.state.notifications.values()) == {SID}
                assert subscriber.state.rejected == 0
            assert handle.delivery_status() is not None
        finally:
            handle.stop()
        # every committed event got its row and each one reached the subscriber once
        with sqlite3.connect(db) as conn:
            events = {str(r[0]) for r in conn.execute("SELECT event_id FROM events")}
        rows = sub_rows(db)
        assert events and {obj for obj, _, _ in rows} == events
        assert len(notified) == len(rows)
        # the upper platform got the same records (the cluster's viid rows, same sender)
        assert set(notified) <= set(upper.state.ids())


@pytest.mark.cluster
@pytest.mark.integration
def test_the_ray_driver_delivers_what_ray_workers_commit(
    tmp_path: Path, cluster_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    import contextlib

    import ray

    from sharpeyes.api.cluster.simulate import ensure_auth_token

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ensure_auth_token(tmp_path)  # one token per process: Ray caches it once read
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    db = tmp_path / "c" / "cluster.db"
    with ReceiverServer(config=RCFG) as upper, ReceiverServer(config=RCFG) as subscriber:
        cfg = DeliveryConfig.model_validate(delivery(upper.url))
        SubscriptionRegistry(cluster_store.db, cfg.resolver()).put(
            Subscription(
                subscribe_id=SID,
                details=frozenset({13}),
                resource_ids=frozenset({SYSTEM}),
                receive_addr=f"{subscriber.url}/VIID/SubscribeNotifications",
                status=SubscribeStatus.ACTIVE,
            )
        )
        settings = ClusterSettings.model_validate(
            {
                "backend": "ray",
                "ray_address": "local",
                "slot_resource": "gpu_slot",
                "db_url": str(db),
                "workers": 1,
                "tick_s": 0.05,
            }
        )
        handle = start_cluster(settings, [synthetic_spec("r1", rate=20)], delivery=cfg)
        try:
            wait_for(lambda: len(subscriber.state.ids()) >= 20, 90, "notifications from Ray")
            assert set(subscriber.state.notifications.values()) == {SID}
            assert subscriber.state.rejected == 0
        finally:
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor("sharpeyes-coordinator", namespace="sharpeyes"))
            handle.stop()
        delivered = [obj for obj, state, _ in sub_rows(db) if state == "delivered"]
        assert len(delivered) == len(subscriber.state.ids()) >= 20


def test_device_ids_follow_the_desired_set(tmp_path: Path) -> None:
    from sharpeyes.api.cluster.pipeline_program import pipeline_spec
    from sharpeyes.pipeline.config import CameraConfig

    settings = ClusterSettings.model_validate(
        {"db_url": str(tmp_path / "c.db"), "workers": 1, "capacity": 0.5}
    )
    handle = start_cluster(settings)  # capacity 0.5: nothing is placed, nothing runs
    try:
        assert handle.device_ids() == frozenset()
        cam = CameraConfig(id="gate2", url="rtsp://192.0.2.1/ch1", device_id=NEW_DEVICE)
        handle.add_camera(pipeline_spec(cam))
        handle.add_camera(synthetic_spec("s1"))
        assert handle.device_ids() == {NEW_DEVICE}
        handle.remove_camera("gate2")
        assert handle.device_ids() == frozenset()
    finally:
        handle.stop()


# -- end to end: sharpeyes serve with cluster:, a camera added at run time, HTTP subscriber ----


@pytest.mark.integration
def test_cluster_serve_notifies_a_subscriber_of_a_run_time_camera(
    tmp_path: Path, sample_videos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sharpeyes.api.commands.run import run_service

    token = "se_0123456789ab.cluster-sub-test-secret"
    monkeypatch.setenv("SHARPEYES_DEMO_TOKEN", token)
    with ReceiverServer(config=RCFG) as upper, ReceiverServer(config=RCFG) as subscriber:
        cfg = tmp_path / "svc.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "store": {"url": "events.db", "files_root": "."},
                    "cluster": {
                        "backend": "local",
                        "db_url": "cluster.db",
                        "files_root": ".",
                        "workers": 1,
                        "tick_s": 0.1,
                        "commit_every_s": 0.2,
                    },
                    "delivery": delivery(upper.url),
                }
            )
        )
        port = free_port()
        stop = threading.Event()
        result: list[int] = []
        node = threading.Thread(
            target=lambda: result.append(run_service(cfg, serve_api=True, port=port, stop=stop)),
            daemon=True,
        )
        node.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                auth = {"Authorization": f"Bearer {token}"}
                # the demo token is installed just after the server answers /healthz
                wait_for(
                    lambda: http.get("/api/v1/cluster", headers=auth).status_code == 200,
                    60,
                    "the cluster API",
                )
                camera = {
                    "id": "hw",
                    "url": str(sample_videos / "highway_640x360.mp4"),
                    "live": True,
                    "analysis_fps": 5,
                    "device_id": NEW_DEVICE,
                    "detector": {"input_size": [384, 640]},
                }
                added = http.post(
                    "/api/v1/cluster/cameras",
                    json={"camera": camera},
                    headers=auth,
                )
                assert added.status_code == 202, added.text
                obj = {
                    "SubscribeID": SID,
                    "Title": "vehicles of hw",
                    "SubscribeDetail": "13",
                    "ResourceClass": 1,
                    "ResourceURI": NEW_DEVICE,
                    "ReceiveAddr": f"{subscriber.url}/VIID/SubscribeNotifications",
                    # a clip in a cluster keeps its own capture times (its creation_time, 2020)
                    "BeginTime": "20200101000000",
                    "EndTime": "20990101000000",
                    "OperateType": 0,
                }
                resp = http.post(
                    "/VIID/Subscribes",
                    content=json.dumps({"SubscribeListObject": {"SubscribeObject": [obj]}}),
                    headers={"User-Identify": UPPER, "Content-Type": VIID_JSON},
                )
                assert resp.status_code == 200, resp.text
                status = resp.json()["ResponseStatusListObject"]["ResponseStatusObject"][0]
                assert status["StatusCode"] == 0, status
                subscribed_ms = int(time.time() * 1000)
                wait_for(subscriber.state.ids, 120, "a SubscribeNotification")

                def finished() -> bool:
                    cams = http.get("/api/v1/cluster", headers=auth).json()["cameras"]
                    return [c["state"] for c in cams] == ["finished"]

                wait_for(finished, 120, "hw to finish its clip")
                db = tmp_path / "cluster.db"
                wait_for(lambda: {s for _, s, _ in sub_rows(db)} == {"delivered"}, 30, "delivery")
        finally:
            stop.set()
            node.join(timeout=60)
        assert result == [0]
        rows = sub_rows(tmp_path / "cluster.db")
        assert rows and {state for _, state, _ in rows} == {"delivered"}, rows
        with sqlite3.connect(tmp_path / "cluster.db") as conn:
            later = conn.execute(
                "SELECT event_id FROM events WHERE type = 'vehicle_pass' AND created_ms > ?",
                (subscribed_ms + 1000,),
            ).fetchall()
        # every vehicle the cluster stored after the subscription got its row, all delivered
        assert {str(r[0]) for r in later} <= {obj for obj, _, _ in rows}
        assert len(subscriber.state.ids()) == len(rows)
        assert set(subscriber.state.ids()) <= set(upper.state.ids())
        assert set(subscriber.state.notifications.values()) == {SID}
