"""A small fuzz of the receiver's endpoints: arbitrary bodies and headers never cause a 5xx.

Random JSON, near-valid GA/T 1400 envelopes (real field names, random values) and random Digest
headers go to every endpoint, with and without a live session.
"""

from __future__ import annotations

import json
import string
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sharpeyes.api.viid.digest import authorization_header, parse_challenge
from sharpeyes.api.viid.receiver.server import create_receiver_app
from sharpeyes.api.viid.receiver.state import ReceiverConfig, ReceiverState
from sharpeyes.api.viid.resources import COLLECTIONS
from tests._viid_fixtures import DEVICE

STATE = ReceiverState()
APP = create_receiver_app(ReceiverConfig(accounts={"admin": "secret"}), STATE)
CLIENT = TestClient(APP, raise_server_exceptions=False)

PATHS = [
    "/VIID/System/Register",
    "/VIID/System/Keepalive",
    "/VIID/System/UnRegister",
    "/VIID/System/Unregister",
    "/VIID/SubscribeNotifications",
    *[spec.path for spec in COLLECTIONS.values()],
]
FIELDS = [
    "MotorVehicleID", "NonMotorVehicleID", "PersonID", "FaceID", "InfoKind", "SourceID",
    "DeviceID", "LeftTopX", "LeftTopY", "RightBtmX", "RightBtmY", "HasPlate", "PlateNo",
    "PlateClass", "SubImageList", "SubImageInfoObject", "ImageID", "Data", "Type", "ShotTime",
    "NotificationID", "SubscribeID", "RegisterObject", "KeepaliveObject", "UnRegisterObject",
]  # fmt: skip

scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats() | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    spec = draw(st.sampled_from(list(COLLECTIONS.values())))
    items = draw(
        st.lists(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8), max_size=3)
    )
    inner: Any = items if draw(st.booleans()) else (items[0] if items else {})
    return {spec.list_key: {spec.item_key: inner}}


def _register() -> None:
    body = json.dumps({"RegisterObject": {"DeviceID": DEVICE}})
    r = CLIENT.post("/VIID/System/Register", content=body)
    ch = parse_challenge(r.headers["www-authenticate"])
    auth = authorization_header(
        ch, username="admin", password="secret", method="POST", uri="/VIID/System/Register"
    )
    r = CLIENT.post("/VIID/System/Register", content=body, headers={"Authorization": auth})
    assert r.status_code == 200


digest_headers = st.one_of(
    st.none(),
    st.text(max_size=80),
    st.builds(
        lambda params: "Digest " + ", ".join(f'{k}="{v}"' for k, v in params.items()),
        st.dictionaries(
            st.sampled_from(
                [
                    "username",
                    "realm",
                    "nonce",
                    "uri",
                    "response",
                    "qop",
                    "nc",
                    "cnonce",
                    "algorithm",
                    "opaque",
                ]
            ),
            st.text(max_size=20),
            max_size=10,
        ),
    ),
)


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    path=st.sampled_from(PATHS),
    body=st.one_of(json_values, envelopes(), st.binary(max_size=64)),
    auth=digest_headers,
    session=st.booleans(),
    ident=st.one_of(st.none(), st.just(DEVICE), st.text(max_size=24)),
)
def test_no_server_errors(
    path: str, body: Any, auth: str | None, session: bool, ident: str | None
) -> None:
    if session and DEVICE not in STATE.sessions:
        _register()
    raw = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    headers = {}
    if auth is not None:
        headers["Authorization"] = auth.encode("utf-8", "replace").decode("latin-1", "replace")
    if ident is not None:
        headers["User-Identify"] = ident.encode("utf-8", "replace").decode("latin-1", "replace")
    try:
        r = CLIENT.post(path, content=raw, headers=headers)
    except UnicodeEncodeError:
        return  # the HTTP client cannot even send such a header
    assert r.status_code < 500, (path, r.status_code, r.text[:300])


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(
    path=st.text(alphabet=string.ascii_letters + string.digits + "/-_.~%", min_size=1, max_size=30)
)
def test_unknown_paths_and_time(path: str) -> None:
    assert CLIENT.get("/VIID/System/Time").status_code == 200
    r = CLIENT.post("/" + path.lstrip("/"), content=b"{}")
    assert r.status_code < 500


FAULTS = TestClient(
    create_receiver_app(ReceiverConfig(accounts={"admin": "secret"}, test_faults=True)),
    raise_server_exceptions=False,
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(body=st.one_of(json_values, st.binary(max_size=32)))
def test_fault_endpoint_refuses_garbage_without_5xx(body: Any) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    assert FAULTS.post("/_receiver/faults", content=raw).status_code < 500
