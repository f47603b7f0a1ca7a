from __future__ import annotations

import pytest

from sharpeyes.api.viid.digest import (
    DigestError,
    DigestVerifier,
    authorization_header,
    compute_response,
    parse_challenge,
)


def test_rfc2617_example() -> None:
    # RFC 2617 §3.5 worked example
    resp = compute_response(
        username="Mufasa",
        password="Circle Of Life",
        realm="testrealm@host.com",
        method="GET",
        uri="/dir/index.html",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        nc="00000001",
        cnonce="0a4f113b",
        qop="auth",
    )
    assert resp == "6629fae49393a05397450978507c4ef1"


def test_parse_challenge_variants() -> None:
    c = parse_challenge('Digest realm="VIID API", qop="auth,auth-int", nonce="a,b", opaque="x"')
    assert (c.realm, c.nonce, c.qop, c.opaque) == ("VIID API", "a,b", "auth", "x")
    c2 = parse_challenge("Digest realm=viid, nonce=12345")
    assert c2.qop is None and c2.nonce == "12345"
    with pytest.raises(DigestError):
        parse_challenge('Basic realm="x"')
    with pytest.raises(DigestError):
        parse_challenge('Digest realm="x", nonce="n", algorithm=SHA-512-256')


def test_verifier_round_trip_and_replay() -> None:
    v = DigestVerifier("r", {"u": "p"})
    ch = parse_challenge(v.challenge())
    auth = authorization_header(ch, username="u", password="p", method="POST", uri="/VIID/x", nc=1)
    assert v.verify("POST", auth) == "u"
    assert v.verify("POST", auth) is None  # same nc again: replay
    bad = authorization_header(
        ch, username="u", password="nope", method="POST", uri="/VIID/x", nc=2
    )
    assert v.verify("POST", bad) is None
    assert v.verify("POST", None) is None


def test_expired_nonce_refused() -> None:
    now = [1000.0]
    v = DigestVerifier("r", {"u": "p"}, nonce_ttl_s=10, clock=lambda: now[0])
    ch = parse_challenge(v.challenge())
    now[0] += 11
    auth = authorization_header(ch, username="u", password="p", method="POST", uri="/a")
    assert v.verify("POST", auth) is None
