"""Client ↔ receiver over real HTTP on 127.0.0.1: Digest interop, session recovery, faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from sharpeyes.api.viid.client import SessionState, ViidClient
from sharpeyes.api.viid.mapping import EventMapper
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import FaultMode, FaultPlan, ReceiverConfig
from sharpeyes.api.viid.resources import COLLECTIONS, Collection
from sharpeyes.pipeline.errors import DeliveryError
from sharpeyes.pipeline.types import EventType
from tests._viid_fixtures import (
    DEVICE,
    client_config,
    dropping_server,
    jpeg,
    make_event,
    mapping_config,
)

pytestmark = pytest.mark.integration
MV = COLLECTIONS[Collection.MOTOR_VEHICLE]


@pytest.fixture
def receiver() -> Iterator[ReceiverServer]:
    cfg = ReceiverConfig(accounts={"admin": "secret"})
    with ReceiverServer(config=cfg) as srv:
        yield srv


def _state(c: ViidClient) -> SessionState:
    return c.state


def _objects(n: int, start: int = 0) -> list[dict[str, object]]:
    m = EventMapper(mapping_config())
    out = []
    for i in range(start, start + n):
        obj = m.map(make_event(EventType.VEHICLE_PASS, track_id=i, crop=jpeg(seed=i)))
        assert obj is not None
        out.append(obj.payload)
    return out


def test_register_post_and_duplicates(receiver: ReceiverServer) -> None:
    with ViidClient(client_config(receiver.url)) as c:
        c.register()
        assert c.state is SessionState.ONLINE
        objs = _objects(3)
        r1 = c.post_objects(MV, objs)
        assert len(r1.delivered) == 3 and not r1.failed
        r2 = c.post_objects(MV, objs)  # replay: duplicates count as delivered
        assert len(r2.ok_ids) == 3 and not r2.failed
        assert receiver.state.stats()["objects"] == 3
        assert c.keepalive()
        assert c.sync_time() is not None and abs(c.clock_offset_ms or 0) < 5000


def test_receiver_rejects_broken_object_keeps_siblings(receiver: ReceiverServer) -> None:
    objs = _objects(2)
    objs[1]["HasPlate"] = True
    with ViidClient(client_config(receiver.url)) as c:
        r = c.post_objects(MV, objs)
    assert len(r.delivered) == 1 and len(r.rejected) == 1 and not r.failed  # 8: permanent
    assert "HasPlate" in next(iter(r.rejected.values()))


def test_independent_client_registers_and_wrong_password_refused(receiver: ReceiverServer) -> None:
    body = {"RegisterObject": {"DeviceID": DEVICE}}
    ok = httpx.post(
        f"{receiver.url}/VIID/System/Register",
        json=body,
        auth=httpx.DigestAuth("admin", "secret"),
        headers={"User-Identify": DEVICE},
    )
    assert ok.status_code == 200 and ok.json()["ResponseStatusObject"]["StatusCode"] == 0
    bad = httpx.post(
        f"{receiver.url}/VIID/System/Register", json=body, auth=httpx.DigestAuth("admin", "wrong")
    )
    assert bad.status_code == 401
    with (
        ViidClient(client_config(receiver.url, password="wrong")) as c,
        pytest.raises(DeliveryError),
    ):
        c.register()


def test_requests_digest_client_registers(receiver: ReceiverServer) -> None:
    requests = pytest.importorskip("requests")
    from requests.auth import HTTPDigestAuth

    r = requests.post(
        f"{receiver.url}/VIID/System/Register",
        json={"RegisterObject": {"DeviceID": DEVICE}},
        auth=HTTPDigestAuth("admin", "secret"),
        timeout=5,
    )
    assert r.status_code == 200


def test_our_client_against_flask_httpauth_receiver() -> None:
    flask = pytest.importorskip("flask")
    fha = pytest.importorskip("flask_httpauth")
    from werkzeug.serving import make_server

    app = flask.Flask("indep")
    app.secret_key = "k"
    auth = fha.HTTPDigestAuth(qop="auth")
    nonces: set[str] = set()

    def get_pw(user: str) -> str | None:
        return {"admin": "secret"}.get(user)

    def gen_nonce() -> str:
        import secrets

        n = secrets.token_hex(8)
        nonces.add(n)
        return n

    def ver_nonce(n: str) -> bool:
        return n in nonces

    def gen_opaque() -> str:
        return "op"

    def ver_opaque(o: str) -> bool:
        return o == "op"

    def register() -> object:
        return {"ResponseStatusObject": {"StatusCode": 0, "Id": DEVICE, "StatusString": "OK"}}

    auth.get_password(get_pw)
    auth.generate_nonce(gen_nonce)
    auth.verify_nonce(ver_nonce)
    auth.generate_opaque(gen_opaque)
    auth.verify_opaque(ver_opaque)
    app.add_url_rule(
        "/VIID/System/Register", view_func=auth.login_required(register), methods=["POST"]
    )
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        with ViidClient(client_config(f"http://127.0.0.1:{srv.server_port}")) as c:
            c.register()
            assert c.state is SessionState.ONLINE
        bad = client_config(f"http://127.0.0.1:{srv.server_port}", password="x")
        with ViidClient(bad) as c, pytest.raises(DeliveryError):
            c.register()
    finally:
        srv.shutdown()
        t.join(timeout=5)


def test_401_mid_session_reregisters_and_replays(receiver: ReceiverServer) -> None:
    with ViidClient(client_config(receiver.url)) as c:
        c.register()
        receiver.state.expire_sessions()
        r = c.post_objects(MV, _objects(2))
        assert len(r.delivered) == 2
        assert c.stats.registers == 2 and c.stats.session_losses == 1
        receiver.state.set_faults(FaultPlan(FaultMode.UNAUTHORIZED, count=1))
        r = c.post_objects(MV, _objects(1, start=10))
        assert len(r.delivered) == 1 and c.stats.registers == 3


def test_keepalive_failures_force_reregister(receiver: ReceiverServer) -> None:
    with ViidClient(client_config(receiver.url, keepalive_max_failures=3)) as c:
        c.register()
        receiver.state.set_faults(FaultPlan(FaultMode.ERROR_500, count=3))
        assert [c.keepalive() for _ in range(3)] == [False, False, False]
        assert c.state is SessionState.OFFLINE
        c.tick()
        assert _state(c) is SessionState.ONLINE and c.stats.registers == 2


@pytest.mark.parametrize("mode", [FaultMode.ERROR_500, FaultMode.GARBAGE, FaultMode.HANG])
def test_faults_bounded_and_no_thread_growth(receiver: ReceiverServer, mode: FaultMode) -> None:
    with ViidClient(client_config(receiver.url, request_timeout_s=0.5)) as c:
        c.register()
        receiver.state.set_faults(FaultPlan(mode, count=-1, delay_s=30))
        threads = threading.active_count()
        for _ in range(4):
            t0 = time.monotonic()
            with pytest.raises(DeliveryError):
                c.post_objects(MV, _objects(1))
            assert time.monotonic() - t0 < 3.0
        assert threading.active_count() <= threads + 1
        receiver.state.set_faults(FaultPlan())
        assert len(c.post_objects(MV, _objects(1)).delivered) == 1


def test_connection_drop_and_down_receiver() -> None:
    with (
        dropping_server() as url,
        ViidClient(client_config(url)) as c,
        pytest.raises(DeliveryError),
    ):
        c.register()
    with ViidClient(client_config("http://127.0.0.1:9")) as c:
        t0 = time.monotonic()
        with pytest.raises(DeliveryError):
            c.ensure_session()
        with pytest.raises(DeliveryError, match="back-off"):
            c.ensure_session()
        assert time.monotonic() - t0 < 3


def test_epoch_ms_time_answer() -> None:
    cfg = ReceiverConfig(accounts={"admin": "secret"}, time_format="epoch_ms")
    with ReceiverServer(config=cfg) as srv, ViidClient(client_config(srv.url)) as c:
        c.register()
        assert abs(c.sync_time()) < 5000
