"""Issue 14 item 10: token expiry, a one-time admin bootstrap, proxy trust, lockout that spares
valid tokens, signed URLs that die with their token, separate keys."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from sharpeyes.api.commands import serve
from sharpeyes.api.rest.auth import Role
from sharpeyes.api.rest.auth.tokens import TokenError
from tests._api_fixtures import Seeded, free_port, make_app, seed_service


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(str(tmp_path / "events.db"), tmp_path)
    yield s
    s.service.db.close()


def test_tokens_expire_and_the_admin_is_bootstrapped_once(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = seeded.service.tokens
    rec, tok = tokens.issue("short", Role.VIEWER, ttl_s=0.05)
    assert rec.expires_ms is not None and tokens.get(rec.token_id) == rec  # persisted
    time.sleep(0.1)
    with pytest.raises(TokenError, match="expired"):
        tokens.authenticate(tok)
    assert not tokens.is_active(rec.token_id)

    monkeypatch.delenv(serve.DEMO_TOKEN_ENV, raising=False)
    for r in tokens.list():  # a fresh installation: no admin yet
        tokens.revoke(r.token_id)
    first = serve.bootstrap_token(seeded.service)
    assert first is not None and tokens.authenticate(first).role == Role.ADMIN
    boot = next(r for r in tokens.list() if r.revoked_ms is None and r.role == Role.ADMIN)
    assert boot.expires_ms is not None  # the bootstrap token expires too
    for _ in range(5):  # restarts mint nothing more
        assert serve.bootstrap_token(seeded.service) is None
        assert serve.demo_token(seeded.service) == serve.NO_NEW_TOKEN
    admins = [r for r in tokens.list() if r.role == Role.ADMIN and r.revoked_ms is None]
    assert len(admins) == 1


def test_lockout_spares_valid_tokens_and_signed_urls_die_with_their_token(
    seeded: Seeded,
) -> None:
    with TestClient(make_app(seeded, auth_failure_limit=3)) as client:
        bad = {"Authorization": "Bearer se_0123456789ab.nope"}
        codes = [client.get("/api/v1/events", headers=bad).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        # same (shared) address: a valid token still works, a bad one stays blocked
        assert client.get("/api/v1/events", headers=seeded.auth("viewer")).status_code == 200
        assert client.get("/api/v1/events", headers=bad).status_code == 429

        rec, tok = seeded.service.tokens.issue("viewer-2", Role.VIEWER)
        auth = {"Authorization": f"Bearer {tok}"}
        vid = client.get("/api/v1/violations", headers=auth).json()["items"][0]["event_id"]
        files = client.get(f"/api/v1/violations/{vid}", headers=auth).json()["evidence"]
        url = files[0]["url"]
        assert client.get(url).status_code == 200
        sig = parse_qs(urlsplit(url).query)["sig"][0]
        assert sig.endswith(rec.token_id)  # bound to the token that asked
        seeded.service.tokens.revoke(rec.token_id)
        assert client.get(url).status_code == 403


def test_separate_keys_and_no_forwarded_for_by_default(seeded: Seeded) -> None:
    svc = seeded.service
    key = b"one-installation-key"
    svc2 = type(svc)(svc.db, svc.events, files_root=seeded.files_root, token_key=key, url_key=key)
    assert svc2.signer._key != key  # URL signing never uses the token-hashing key

    server = serve.start_server(svc, "127.0.0.1", free_port())
    try:
        config = server._server.config  # type: ignore[attr-defined]
        assert config.proxy_headers is False
        import httpx

        r = httpx.get(
            f"{server.url}/api/v1/events",
            headers={"X-Forwarded-For": "203.0.113.9", **seeded.auth("admin")},
            timeout=5,
        )
        assert r.status_code == 200
    finally:
        server.stop()
    server = serve.start_server(svc, "127.0.0.1", free_port(), forwarded_allow_ips="10.0.0.1")
    try:
        assert server._server.config.proxy_headers is True  # type: ignore[attr-defined]
    finally:
        server.stop()
