"""Issue 14 item 3: Digest SHA-256 (RFC 7616) both sides, stale nonces, visible handshake errors.

Old code: SHA-256 challenges were refused ("only MD5"), a stale nonce forced a full re-register
(or failed), ``nc`` kept counting across nonces, and a failed Register was logged at debug only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from sharpeyes.api.viid.client import SessionState, ViidClient
from sharpeyes.api.viid.digest import (
    DigestVerifier,
    authorization_header,
    best_challenge,
    compute_response,
    parse_challenge,
)
from sharpeyes.api.viid.mapping import EventMapper
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import FaultMode, FaultPlan, ReceiverConfig
from sharpeyes.api.viid.resources import COLLECTIONS, Collection
from sharpeyes.pipeline.errors import DeliveryError
from sharpeyes.pipeline.types import EventType
from tests._viid_fixtures import client_config, jpeg, make_event, mapping_config

MV = COLLECTIONS[Collection.MOTOR_VEHICLE]


def test_rfc7616_sha256_and_md5_examples() -> None:
    # RFC 7616 §3.9.1: the same request answered with SHA-256 and with MD5
    common = {
        "username": "Mufasa",
        "password": "Circle of Life",
        "realm": "http-auth@example.org",
        "method": "GET",
        "uri": "/dir/index.html",
        "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        "nc": "00000001",
        "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        "qop": "auth",
    }
    assert compute_response(**common, algorithm="SHA-256") == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )
    assert compute_response(**common, algorithm="MD5") == "8ca523f5e9506fed4657c9700eebdbec"


def test_client_prefers_sha256_when_offered_both() -> None:
    md5 = 'Digest realm="r", qop="auth", nonce="n1", algorithm=MD5'
    sha = 'Digest realm="r", qop="auth", nonce="n2", algorithm=SHA-256'
    assert best_challenge([md5, sha]).algorithm == "SHA-256"
    assert best_challenge([f"{md5}, {sha}"]).nonce == "n2"  # folded into one header value
    assert best_challenge([md5]).algorithm == "MD5"


def test_verifier_accepts_sha256_answers() -> None:
    v = DigestVerifier("r", {"u": "p"}, algorithm="SHA-256")
    ch = parse_challenge(v.challenge())
    assert ch.algorithm == "SHA-256"
    auth = authorization_header(ch, username="u", password="p", method="POST", uri="/VIID/x")
    assert "algorithm=SHA-256" in auth
    assert v.verify("POST", auth, "/VIID/x") == "u"
    md5_only = DigestVerifier("r", {"u": "p"}, accept_algorithms=("MD5",))
    ch2 = parse_challenge(md5_only.challenge()).__class__(
        realm="r", nonce=md5_only.new_nonce(), algorithm="SHA-256"
    )
    sha_auth = authorization_header(ch2, username="u", password="p", method="POST", uri="/a")
    assert md5_only.verify("POST", sha_auth, "/a") is None


@pytest.fixture
def sha_receiver() -> Iterator[ReceiverServer]:
    cfg = ReceiverConfig(accounts={"admin": "secret"}, digest_algorithm="SHA-256")
    with ReceiverServer(config=cfg) as srv:
        yield srv


@pytest.mark.integration
def test_client_registers_and_posts_with_sha256(sha_receiver: ReceiverServer) -> None:
    obj = EventMapper(mapping_config()).map(make_event(EventType.VEHICLE_PASS, crop=jpeg()))
    assert obj is not None
    with ViidClient(client_config(sha_receiver.url)) as c:
        c.ensure_session()
        assert c.state is SessionState.ONLINE
        assert c.health().digest_algorithm == "SHA-256"
        assert c.post_objects(MV, [obj.payload]).delivered == [obj.object_id]


@pytest.mark.integration
def test_stale_nonce_on_data_call_is_answered_without_reregister(
    sha_receiver: ReceiverServer,
) -> None:
    m = EventMapper(mapping_config())
    objs = [
        m.map(make_event(EventType.VEHICLE_PASS, track_id=i, crop=jpeg(seed=i))) for i in (1, 2)
    ]
    with ViidClient(client_config(sha_receiver.url)) as c:
        c.ensure_session()
        registers = sha_receiver.state.registers
        sha_receiver.state.set_faults(FaultPlan(FaultMode.STALE, count=1))
        r = c.post_objects(MV, [objs[0].payload])  # type: ignore[union-attr]
        assert r.delivered == [objs[0].object_id]  # type: ignore[union-attr]
        assert sha_receiver.state.registers == registers  # no full re-register
        assert c.stats.stale_nonces == 1 and c.stats.session_losses == 0


def test_stale_on_register_retries_new_nonce_only_and_resets_nc() -> None:
    """Register: 401 challenge → answer → 401 stale=true → answer the new nonce with nc=1."""
    seen: list[str] = []
    answers = iter(["challenge", "stale", "ok"])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        step = next(answers)
        if step == "ok":
            return httpx.Response(200, json={"ResponseStatusObject": {"StatusCode": 0}})
        nonce = "n1" if step == "challenge" else "n2"
        stale = ", stale=true" if step == "stale" else ""
        hdr = f'Digest realm="r", qop="auth", nonce="{nonce}", algorithm=SHA-256{stale}'
        return httpx.Response(401, headers={"WWW-Authenticate": hdr})

    c = ViidClient(client_config("http://viid.test"), transport=httpx.MockTransport(handler))
    c.register()
    assert c.state is SessionState.ONLINE
    assert seen[0] == ""
    assert 'nonce="n1"' in seen[1] and "nc=00000001" in seen[1]
    assert 'nonce="n2"' in seen[2] and "nc=00000001" in seen[2]  # nc restarts per nonce
    assert c.stats.stale_nonces == 1


def test_failed_register_warns_once_per_cause_and_shows_in_health(
    caplog: pytest.LogCaptureFixture,
) -> None:
    status = [403]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status[0])

    now = [0.0]
    c = ViidClient(
        client_config("http://viid.test"),
        transport=httpx.MockTransport(handler),
        clock=lambda: now[0],
    )
    caplog.set_level(logging.WARNING, logger="sharpeyes.api.viid.client")
    for _ in range(3):
        now[0] += 1000
        with pytest.raises(DeliveryError):
            c.ensure_session()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "HTTP 403" in warnings[0].getMessage()
    h = c.health()
    assert h.state == "offline" and h.last_error is not None and "HTTP 403" in h.last_error
    assert h.consecutive_register_failures == 3
    status[0] = 500  # the cause changes → one more warning
    now[0] += 1000
    with pytest.raises(DeliveryError):
        c.ensure_session()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and re.search("HTTP 500", warnings[1].getMessage())


@pytest.mark.integration
def test_stale_nonce_on_keepalive_keeps_the_session(sha_receiver: ReceiverServer) -> None:
    with ViidClient(client_config(sha_receiver.url)) as c:
        c.ensure_session()
        sha_receiver.state.set_faults(FaultPlan(FaultMode.STALE, count=1))
        assert c.keepalive() is True
        assert c.state is SessionState.ONLINE and c.stats.session_losses == 0
        assert sha_receiver.state.registers == 1
