"""GA/T 1400 subscriptions (an upper platform subscribing to us, GAT1400.md §7) through the
service app of ``sharpeyes serve``: an upper platform carries no bearer token, so its bodies must
reach ``/VIID/Subscribes`` (the routes check it themselves), and on a node without an allow-list
nobody may read the subscriptions (their ReceiveAddr) or take over another caller's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from sharpeyes.api.commands.run import subscription_routes
from sharpeyes.api.commands.serve import build_service
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.api.rest.app import create_app
from sharpeyes.api.rest.context import ApiSettings
from tests._wait import wait_for as _wait

REPO = Path(__file__).resolve().parents[1]
VIID_JSON = "application/VIID+JSON;charset=UTF-8"
UPPER = "11010000005030000001"
OTHER = "11010000005030000002"
SID = "340200000000032024010112000000001"
TOLLGATE = "34020000001210000062"


def config(tmp_path: Path, **subs: Any) -> ServiceConfig:
    delivery = yaml.safe_load((REPO / "sample_videos" / "viid_delivery.yaml").read_text())
    delivery["subscriptions"].update({"enabled": True, **subs})
    return ServiceConfig.model_validate(
        {
            "store": {"url": str(tmp_path / "e.db"), "files_root": str(tmp_path)},
            "delivery": delivery,
        }
    )


def sub_object(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "SubscribeID": SID,
        "Title": "vehicles at gate 1",
        "SubscribeDetail": "13",
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


def post(client: TestClient, who: str, obj: dict[str, Any]) -> dict[str, Any]:
    body = {"SubscribeListObject": {"SubscribeObject": [obj]}}
    resp = client.post(
        "/VIID/Subscribes",
        content=json.dumps(body),
        headers={"User-Identify": who, "Content-Type": VIID_JSON},
    )
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()["ResponseStatusListObject"]["ResponseStatusObject"][0]
    return out


def app_for(cfg: ServiceConfig) -> TestClient:
    service = build_service(cfg)
    _, routers = subscription_routes(cfg, service)
    return TestClient(create_app(ApiSettings(), service, extra_routers=routers))


def test_an_upper_platform_without_bearer_token_subscribes(tmp_path: Path) -> None:
    with app_for(config(tmp_path)) as client:
        status = post(client, UPPER, sub_object())
        assert (status["Id"], status["StatusCode"]) == (SID, 0), status
        # the body limit still applies to /VIID (the guard only skips the bearer check)
        big = client.post(
            "/VIID/Subscribes",
            content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
            headers={"User-Identify": UPPER, "Content-Type": VIID_JSON},
        )
        assert big.status_code == 413
        # other routes still drop the body of a caller without a token
        assert client.post("/api/v1/cameras", json={"id": "x"}).status_code == 401


def test_an_open_node_lets_nobody_read_or_take_over_subscriptions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING"), app_for(config(tmp_path)) as client:
        assert any("accepts subscriptions from anyone" in r.message for r in caplog.records)
        assert post(client, UPPER, sub_object())["StatusCode"] == 0
        listed = client.get("/VIID/Subscribes", headers={"User-Identify": UPPER})
        assert listed.status_code == 403 and "ReceiveAddr" not in listed.text
        assert client.get(f"/VIID/Subscribes/{SID}").status_code == 403
        # another caller can neither redirect nor cancel it
        stolen = post(client, OTHER, sub_object(ReceiveAddr="http://10.6.6.6:1/VIID/x"))
        assert stolen["StatusCode"] != 0
        gone = client.delete(f"/VIID/Subscribes/{SID}", headers={"User-Identify": OTHER})
        assert gone.json()["ResponseStatusObject"]["StatusCode"] != 0
        # its owner can
        mine = client.delete(f"/VIID/Subscribes/{SID}", headers={"User-Identify": UPPER})
        assert mine.json()["ResponseStatusObject"]["StatusCode"] == 0


def test_an_allowed_subscriber_lists(tmp_path: Path) -> None:
    with app_for(config(tmp_path, allowed_subscribers=[UPPER])) as client:
        assert post(client, UPPER, sub_object())["StatusCode"] == 0
        listed = client.get("/VIID/Subscribes", headers={"User-Identify": UPPER}).json()
        subs = listed["SubscribeListObject"]["SubscribeObject"]
        assert [s["SubscribeID"] for s in subs] == [SID]
        assert client.get("/VIID/Subscribes", headers={"User-Identify": OTHER}).status_code == 403


# -- end to end: sharpeyes serve on a clip, an upper platform subscribing over HTTP -----------

PASSWORD = "sub-e2e-pw"
SYSTEM = "34020000001190000001"
CAMERA_DEVICE = "34020000001190000077"


@pytest.mark.integration
def test_serve_notifies_a_subscriber_of_the_events_it_stores(
    tmp_path: Path, sample_videos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3
    import threading
    import time

    import httpx

    from sharpeyes.api.commands.run import run_service
    from sharpeyes.api.viid.receiver.server import ReceiverServer
    from sharpeyes.api.viid.receiver.state import ReceiverConfig
    from tests._viid_fixtures import free_port

    monkeypatch.setenv("SHARPEYES_DEMO_TOKEN", "se_0123456789ab.demo-secret-for-the-sub-test")
    rcfg = ReceiverConfig(accounts={"admin": PASSWORD})
    with ReceiverServer(config=rcfg) as upper, ReceiverServer(config=rcfg) as subscriber:
        cfg = tmp_path / "svc.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "cameras": [
                        {
                            "id": "hw",
                            "url": str(sample_videos / "highway_640x360.mp4"),
                            "live": True,
                            "analysis_fps": 5,
                            "device_id": CAMERA_DEVICE,
                        }
                    ],
                    "detector": {
                        "model": "yolov5n",
                        "input_size": [384, 640],
                        "providers": "cpu",
                    },
                    "store": {"url": "events.db", "files_root": "."},
                    "loop_files": False,
                    "delivery": {
                        "base_url": upper.url,
                        "device_id": SYSTEM,
                        "username": "admin",
                        "password": PASSWORD,
                        "request_timeout_s": 2.0,
                        "retry_backoff_initial_s": 0.05,
                        "retry_backoff_max_s": 0.3,
                        "idle_sleep_s": 0.05,
                        "subscriptions": {"enabled": True, "allowed_subscribers": [UPPER]},
                    },
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
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=5) as http:
                _wait(lambda: http.get("/healthz").status_code == 200, 60, "healthz")
                # as an upper platform sends it: User-Identify, no bearer token
                obj = sub_object(
                    ResourceURI=CAMERA_DEVICE,
                    ReceiveAddr=f"{subscriber.url}/VIID/SubscribeNotifications",
                )
                resp = http.post(
                    "/VIID/Subscribes",
                    content=json.dumps({"SubscribeListObject": {"SubscribeObject": [obj]}}),
                    headers={"User-Identify": UPPER, "Content-Type": VIID_JSON},
                )
                status = resp.json()["ResponseStatusListObject"]["ResponseStatusObject"][0]
                assert status["StatusCode"] == 0, status
                subscribed_ms = int(time.time() * 1000)
                _wait(subscriber.state.ids, 120, "a first SubscribeNotification")
        finally:
            stop.set()
            node.join(timeout=60)
        assert result == [0]
        with sqlite3.connect(tmp_path / "events.db") as db:
            stored = db.execute(
                "SELECT event_id FROM events WHERE type = 'vehicle_pass' AND created_ms > ?",
                (subscribed_ms + 1000,),
            ).fetchall()
            rows = db.execute(
                "SELECT object_id, state FROM outbox WHERE destination = ?", (f"sub:{SID}",)
            ).fetchall()
        # every vehicle stored after the subscription got its notification row, all delivered
        assert {str(r[0]) for r in stored} <= {str(r[0]) for r in rows}
        assert rows and {str(r[1]) for r in rows} == {"delivered"}, rows
        assert len(subscriber.state.ids()) == len(rows)
        assert set(subscriber.state.ids()) <= set(upper.state.ids())  # the same records
        assert set(subscriber.state.notifications.values()) == {SID}
        assert subscriber.state.rejected == 0
