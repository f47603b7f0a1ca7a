"""What a platform integrator found connecting sharpeyes to a view library (GA/T 1400).

1. Per-object answers matched by position although they name other objects: a platform that
   answers only for some objects of a batch (only the refused one, or every object but one it
   dropped) had another object's StatusCode applied to an object it never answered for — an
   object the platform never stored was marked delivered (lost), or a good one dead-lettered.
   An answer is now taken by position only when it names none of the objects sent.
2. A per-object answer "请先注册" (register first) in a ResponseStatusList did not re-register:
   only a single ResponseStatusObject was read for it, so every object was retried on the lost
   session as a transient refusal until it became a dead letter. Now any per-object
   "register first" drops the session, re-registers and replays the batch once.
3. While the view library was down the sender logged one warning per failed batch ("batch of 3
   MotorVehicle failed: register back-off in progress"): 320 lines in the 80 s of one
   ``analyze --deliver`` of hanoi_b, thousands an hour on a live node. A cause is now logged
   once, then at most once a minute with how many more there were; every failure still counts.
4. During an outage the sender kept claiming rows while the client was waiting out its register
   back-off; every round failed them again ("register back-off in progress"), so each row's own
   back-off grew towards 300 s. After a 3-minute outage of the view library, 6 of hanoi_b's 211
   records were still pending 7 minutes after it was back. Now nothing is claimed while the
   client waits to register again: rows keep their due time and go as soon as it registers.
   And data requests that get no answer count like failed keepalives: after
   ``keepalive_max_failures`` in a row the session is dropped and registered again (GAT1400.md
   §9), instead of posting into a dead link until the keepalive notices (90 s by default).
5. ``sharpeyes serve`` dropped the body of every ``POST /VIID/Subscribes`` from a caller
   without a bearer token (an upper platform has none): ``api/rest/app.py`` now lets ``/VIID/``
   bodies through the request guard (the routes check the caller themselves).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pytest

from sharpeyes.api.store import EventStore, open_store
from sharpeyes.api.viid.client import SessionState, ViidClient
from sharpeyes.api.viid.mapping import EventMapper
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import ReceiverConfig
from sharpeyes.api.viid.resources import COLLECTIONS, Collection
from sharpeyes.api.viid.schemas import ResponseStatus
from sharpeyes.api.viid.sender import OutboxSender, RepeatedWarning, SenderOptions
from sharpeyes.pipeline.errors import DeliveryError
from tests._viid_fixtures import T0_MS, client_config, free_port, jpeg, make_event, mapping_config

REPO = Path(__file__).resolve().parents[1]
VIID_JSON = "application/VIID+JSON;charset=UTF-8"
MV = COLLECTIONS[Collection.MOTOR_VEHICLE]
A, B, C = ("1" * 48, "2" * 48, "3" * 48)


def _status(code: int, id_: str | None, text: str = "") -> ResponseStatus:
    return ResponseStatus(StatusCode=code, StatusString=text or str(code), Id=id_)


def _client(transport: httpx.BaseTransport | None = None) -> ViidClient:
    return ViidClient(client_config("http://127.0.0.1:9"), transport=transport)


def test_a_refusal_naming_one_object_is_not_applied_to_the_others() -> None:
    r = _client()._classify([_status(8, B, "invalid content")], [A, B, C])
    assert set(r.rejected) == {B}
    assert A not in r.rejected and C not in r.rejected
    assert A in r.failed and C in r.failed  # no answer for them: retried, not given up on
    assert not r.delivered


def test_an_object_the_platform_did_not_answer_for_is_not_delivered() -> None:
    r = _client()._classify([_status(0, A, "OK"), _status(0, C, "OK")], [A, B, C])
    assert r.delivered == [A, C]
    assert B in r.failed and B not in r.delivered


def test_answers_without_ids_still_go_by_position() -> None:
    r = _client()._classify([_status(0, None, "OK"), _status(8, "", "bad")], [A, B])
    assert r.delivered == [A]
    assert set(r.rejected) == {B}


def test_answers_with_foreign_ids_still_go_by_position() -> None:
    # some platforms put their own record id (or the RequestURL) in Id
    r = _client()._classify([_status(0, "x1", "OK"), _status(0, "x2", "OK")], [A, B])
    assert r.delivered == [A, B]


def test_post_objects_against_a_platform_that_drops_one_object_silently() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/VIID/System/Register":
            return httpx.Response(200, json={"ResponseStatusObject": {"StatusCode": 0}})
        if request.url.path == "/VIID/System/Time":
            return httpx.Response(404)
        body = json.loads(request.content)
        objs = body["MotorVehicleListObject"]["MotorVehicleObject"]
        answered = [o["MotorVehicleID"] for o in objs if o["MotorVehicleID"] != B]
        statuses = [{"StatusCode": "0", "StatusString": "OK", "Id": i} for i in answered]
        return httpx.Response(
            201, json={"ResponseStatusListObject": {"ResponseStatusObject": statuses}}
        )

    with _client(httpx.MockTransport(handler)) as client:
        result = client.post_objects(MV, [{"MotorVehicleID": i} for i in (A, B, C)])
    assert result.delivered == [A, C]
    assert B in result.failed


def test_a_list_answer_saying_register_first_re_registers_and_replays() -> None:
    registers: list[int] = []
    posts: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/VIID/System/Register":
            registers.append(1)
            return httpx.Response(200, json={"ResponseStatusObject": {"StatusCode": 0}})
        if request.url.path == "/VIID/System/Time":
            return httpx.Response(404)
        posts.append(1)
        objs = json.loads(request.content)["MotorVehicleListObject"]["MotorVehicleObject"]
        ids = [o["MotorVehicleID"] for o in objs]
        if len(posts) == 1:  # the platform restarted and forgot our session
            answer = [{"StatusCode": -1, "StatusString": "未注册,请先注册", "Id": i} for i in ids]
        else:
            answer = [{"StatusCode": 0, "StatusString": "OK", "Id": i} for i in ids]
        return httpx.Response(
            200, json={"ResponseStatusListObject": {"ResponseStatusObject": answer}}
        )

    with _client(httpx.MockTransport(handler)) as client:
        result = client.post_objects(MV, [{"MotorVehicleID": i} for i in (A, B)])
    assert len(registers) == 2 and len(posts) == 2
    assert result.delivered == [A, B]
    assert not result.failed


def test_an_outage_logs_each_cause_once_not_once_per_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'ev.db'}", tmp_path / "files")
    events = [make_event(track_id=i, t_ms=T0_MS + i * 37, crop=jpeg(seed=i)) for i in range(30)]
    store.add_events(events, outbox_destinations=["viid"])
    fast = SenderOptions(claim_limit=50, lease_ms=1000, backoff_initial_s=0.01, backoff_max_s=0.02)
    client = ViidClient(client_config(f"http://127.0.0.1:{free_port()}"))  # nobody listens
    sender = OutboxSender(store, client, EventMapper(mapping_config()), options=fast)
    with caplog.at_level(logging.WARNING, logger="sharpeyes.api.viid.sender"):
        for _ in range(15):
            sender.run_once()
            time.sleep(0.03)
    client.close()
    lines = [r for r in caplog.records if r.name == "sharpeyes.api.viid.sender"]
    assert sender.totals.failed >= 30  # every batch that was tried failed, and is counted
    assert len({r.getMessage().split(": ", 1)[1] for r in lines}) == len(lines)  # no repeats
    assert 1 <= len(lines) <= 3, [r.getMessage() for r in lines]
    assert sender.backlog().backlog == 30 and sender.backlog().failed == 0  # nothing given up


def test_a_repeated_warning_comes_back_after_a_minute_with_its_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    rw = RepeatedWarning(every_s=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="sharpeyes.api.viid.sender"):
        assert rw.warn("k", "down")
        for _ in range(5):
            now[0] += 10.0
            assert not rw.warn("k", "down")
        assert rw.warn("other", "other cause")  # another cause is not held back
        now[0] += 10.0
        assert rw.warn("k", "down")
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == ["down", "other cause", "down (5 more like it in the last 60 s)"]


def _attempts(store: EventStore) -> list[int]:
    with store.db.transaction(readonly=True) as conn:
        return [int(r[0]) for r in conn.fetchall("SELECT attempts FROM outbox")]


def test_rows_do_not_back_off_while_the_client_waits_to_register(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'ev.db'}", tmp_path / "files")
    events = [make_event(track_id=i, t_ms=T0_MS + i * 37, crop=jpeg(seed=i)) for i in range(12)]
    store.add_events(events, outbox_destinations=["viid"])
    port = free_port()
    client = ViidClient(client_config(f"http://127.0.0.1:{port}"))  # register back-off ≤ 0.2 s
    opts = SenderOptions(claim_limit=50, lease_ms=5000, backoff_initial_s=0.05, backoff_max_s=300)
    sender = OutboxSender(store, client, EventMapper(mapping_config()), options=opts)
    end = time.monotonic() + 1.5
    while time.monotonic() < end:  # the platform is down
        client.tick()
        sender.run_once()
        time.sleep(0.02)
    assert sender.backlog().backlog == 12
    assert max(_attempts(store)) <= 1, _attempts(store)  # failed once, then left waiting
    with ReceiverServer(port=port, config=ReceiverConfig(accounts={"admin": "secret"})) as srv:
        up = time.monotonic()
        while sender.backlog().backlog and time.monotonic() - up < 10:
            client.tick()
            sender.run_once()
            time.sleep(0.02)
        took = time.monotonic() - up
        assert len(srv.state.ids()) == 12
    client.close()
    assert sender.backlog().backlog == 0 and took < 3.0, took


def _state(client: ViidClient) -> SessionState:
    return client.state  # read afresh (mypy keeps an attribute narrowed across calls)


def test_requests_without_an_answer_drop_the_session_like_keepalives() -> None:
    srv = ReceiverServer(config=ReceiverConfig(accounts={"admin": "secret"})).start()
    client = ViidClient(client_config(srv.url, keepalive_max_failures=3))
    client.register()
    assert client.state is SessionState.ONLINE
    srv.stop()  # the link dies; the keepalive has not noticed yet
    for _ in range(3):
        with pytest.raises(DeliveryError):
            client.post_objects(MV, [{"MotorVehicleID": A}])
    assert _state(client) is SessionState.OFFLINE
    with pytest.raises(DeliveryError):  # registering again fails: the back-off starts
        client.post_objects(MV, [{"MotorVehicleID": A}])
    assert client.register_wait_s() > 0
    client.close()


# -- 5. /VIID/Subscribes behind `sharpeyes serve` (fix outside api/viid: reported) -------------


def test_an_upper_platform_can_subscribe_through_serve(tmp_path: Path) -> None:
    import yaml
    from fastapi.testclient import TestClient

    from sharpeyes.api.commands.run import subscription_routes
    from sharpeyes.api.commands.serve import build_service
    from sharpeyes.api.node.settings import ServiceConfig
    from sharpeyes.api.rest.app import create_app
    from sharpeyes.api.rest.context import ApiSettings

    delivery = yaml.safe_load((REPO / "sample_videos" / "viid_delivery.yaml").read_text())
    delivery["subscriptions"]["enabled"] = True
    cfg = ServiceConfig.model_validate(
        {
            "store": {"url": str(tmp_path / "e.db"), "files_root": str(tmp_path)},
            "delivery": delivery,
        }
    )
    service = build_service(cfg)
    _, routers = subscription_routes(cfg, service)
    body = {"SubscribeListObject": {"SubscribeObject": [{"SubscribeID": "1" * 33}]}}
    with TestClient(create_app(ApiSettings(), service, extra_routers=routers)) as client:
        resp = client.post(
            "/VIID/Subscribes",
            content=json.dumps(body),
            headers={"User-Identify": "11010000005030000001", "Content-Type": VIID_JSON},
        )
    # the body arrived: the object gets its own answer (refused for its content, not unread)
    assert "ResponseStatusListObject" in resp.json(), resp.text
