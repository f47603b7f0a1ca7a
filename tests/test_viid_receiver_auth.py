"""Issue 14 item 5: our receiver's Digest checks, per-object answers, authenticated system calls.

Old code: a Digest answer computed for another URI passed, a no-qop answer could be replayed for
any number of devices, one InfoKind-dependency break made the whole batch HTTP 400, and
``/_receiver/*``, UnRegister and Keepalive needed no credentials.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sharpeyes.api.viid.digest import DigestChallenge, authorization_header, parse_challenge
from sharpeyes.api.viid.mapping import EventMapper
from sharpeyes.api.viid.receiver.server import create_receiver_app
from sharpeyes.api.viid.receiver.state import ReceiverConfig, ReceiverState
from sharpeyes.pipeline.types import EventType
from tests._viid_fixtures import DEVICE, jpeg, make_event, mapping_config

REG = "/VIID/System/Register"
OTHER = ["34020000001190000002", "34020000001190000003", "34020000001190000004"]


def _app(**kw: Any) -> tuple[TestClient, ReceiverState]:
    state = ReceiverState()
    cfg = ReceiverConfig(accounts={"admin": "secret"}, **kw)
    return TestClient(create_receiver_app(cfg, state)), state


def _body(key: str, device: str) -> bytes:
    return json.dumps({key: {"DeviceID": device}}).encode()


def _challenge(c: TestClient, device: str = DEVICE) -> DigestChallenge:
    r = c.post(REG, content=_body("RegisterObject", device), headers={"User-Identify": device})
    assert r.status_code == 401
    return parse_challenge(r.headers["www-authenticate"])


def _register(c: TestClient, device: str = DEVICE) -> None:
    ch = _challenge(c, device)
    auth = authorization_header(ch, username="admin", password="secret", method="POST", uri=REG)
    r = c.post(
        REG,
        content=_body("RegisterObject", device),
        headers={"User-Identify": device, "Authorization": auth},
    )
    assert r.status_code == 200, r.text


def test_answer_for_another_uri_is_refused() -> None:
    c, state = _app()
    ch = _challenge(c)
    auth = authorization_header(
        ch, username="admin", password="secret", method="POST", uri="/VIID/System/Keepalive"
    )
    r = c.post(REG, content=_body("RegisterObject", DEVICE), headers={"Authorization": auth})
    assert r.status_code == 401 and state.registers == 0


def test_no_qop_answer_is_refused_and_cannot_be_replayed_for_other_devices() -> None:
    c, state = _app()
    ch = _challenge(c)
    no_qop = DigestChallenge(realm=ch.realm, nonce=ch.nonce, qop=None, opaque=ch.opaque)
    auth = authorization_header(no_qop, username="admin", password="secret", method="POST", uri=REG)
    for device in [DEVICE, *OTHER]:
        r = c.post(REG, content=_body("RegisterObject", device), headers={"Authorization": auth})
        assert r.status_code == 401
    assert state.registers == 0
    # a qop=auth answer works once; the same nonce count replayed for other devices does not
    good = authorization_header(ch, username="admin", password="secret", method="POST", uri=REG)
    assert (
        c.post(
            REG, content=_body("RegisterObject", DEVICE), headers={"Authorization": good}
        ).status_code
        == 200
    )
    for device in OTHER:
        r = c.post(REG, content=_body("RegisterObject", device), headers={"Authorization": good})
        assert r.status_code == 401
    assert state.registers == 1


def test_infokind_dependency_break_is_answered_per_object() -> None:
    c, state = _app()
    _register(c)
    m = EventMapper(mapping_config())
    objs = []
    for i in (1, 2, 3):
        obj = m.map(make_event(EventType.VEHICLE_PASS, track_id=i, crop=jpeg(seed=i)))
        assert obj is not None
        objs.append(dict(obj.payload))
    del objs[1]["LeftTopX"]  # InfoKind 1 requires the box (MEGVII funcType 23)
    body = {"MotorVehicleListObject": {"MotorVehicleObject": objs}}
    r = c.post("/VIID/MotorVehicles", content=json.dumps(body), headers={"User-Identify": DEVICE})
    assert r.status_code == 200, r.text  # old code: 400 for the whole batch
    codes = [s["StatusCode"] for s in r.json()["ResponseStatusListObject"]["ResponseStatusObject"]]
    assert codes == [0, 8, 0]
    assert set(state.ids()) == {objs[0]["MotorVehicleID"], objs[2]["MotorVehicleID"]}


@pytest.mark.parametrize("path", ["/_receiver/faults", "/_receiver/expire-sessions"])
def test_fault_injection_only_with_test_faults(path: str) -> None:
    c, _ = _app()
    assert c.post(path, json={"mode": "error500"}).status_code == 404
    assert c.get("/_receiver/stats").status_code == 404
    c2, _ = _app(test_faults=True)
    assert c2.post(path, json={"mode": "error500", "count": 1}).status_code == 200
    assert c2.get("/_receiver/stats").status_code == 200


def test_keepalive_and_unregister_need_a_session_or_digest() -> None:
    c, state = _app()
    ka = "/VIID/System/Keepalive"
    # nobody registered: refused
    r = c.post(ka, content=_body("KeepaliveObject", DEVICE), headers={"User-Identify": DEVICE})
    assert r.status_code == 401
    _register(c)
    # someone else cannot keep our session alive or unregister us by naming our DeviceID
    stranger = {"User-Identify": OTHER[0]}
    assert c.post(ka, content=_body("KeepaliveObject", DEVICE), headers=stranger).status_code == 401
    un = "/VIID/System/UnRegister"
    assert (
        c.post(un, content=_body("UnRegisterObject", DEVICE), headers=stranger).status_code == 401
    )
    assert c.post(un, content=_body("UnRegisterObject", DEVICE)).status_code == 401
    assert DEVICE in state.sessions
    me = {"User-Identify": DEVICE}
    assert c.post(ka, content=_body("KeepaliveObject", DEVICE), headers=me).status_code == 200
    assert c.post(un, content=_body("UnRegisterObject", DEVICE), headers=me).status_code == 200
    assert DEVICE not in state.sessions
    # UnRegister with a Digest answer for its own URI (NOR style) works too
    _register(c)
    ch = _challenge(c, OTHER[1])
    auth = authorization_header(ch, username="admin", password="secret", method="POST", uri=un)
    r = c.post(un, content=_body("UnRegisterObject", DEVICE), headers={"Authorization": auth})
    assert r.status_code == 200 and DEVICE not in state.sessions
