"""Console users: argon2id passwords, server-side sessions, TOTP, roles, the CLI — on SQLite and
on a real PostgreSQL.

Sessions are driven through the REST app (``POST /api/v1/auth/session`` with Basic credentials);
time is an injected clock, never a sleep. API tokens must keep working next to sessions.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from sharpeyes.api.commands.cli import main as cli_main
from sharpeyes.api.commands.serve import api_key
from sharpeyes.api.rest.auth import Role, totp
from sharpeyes.api.rest.auth.passwords import Passwords
from sharpeyes.api.rest.auth.sessions import SessionPolicy, SessionService
from sharpeyes.api.rest.auth.sql_accounts import SqlSessionRepository, SqlUserRepository
from sharpeyes.api.rest.auth.users import UserService
from sharpeyes.api.rest.service import build_store_service
from tests._api_fixtures import T0, Seeded, make_app, seed_service
from tests._pg_fixtures import db_url, pg_server  # noqa: F401

PEPPER = b"test-pepper"  # the token key of seed_service
PASSWORD = "correct horse 1"
IDLE_S, MAX_S = 600.0, 3600.0
CHEAP = Passwords(time_cost=1, memory_kib=8192, parallelism=1)  # argon2id, test cost


class FakeClock:
    def __init__(self, start_ms: int) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@dataclass
class Env:
    seeded: Seeded
    client: TestClient
    users: UserService
    sessions: SessionService
    clock: FakeClock

    def raw(self, sql: str) -> list[tuple[object, ...]]:
        with self.seeded.service.db.transaction(readonly=True) as tx:
            return tx.fetchall(sql)

    def audit(self) -> list[tuple[str, str, str]]:
        rows = self.seeded.service.auth_audit.recent(200)
        return [(r.action.value, r.name, r.detail) for r in rows]


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:  # noqa: F811
    seeded = seed_service(db_url, tmp_path, violations=2, passes=0)
    db = seeded.service.db
    clock = FakeClock(T0)
    repo = SqlSessionRepository(db)
    users = UserService(
        SqlUserRepository(db), repo, passwords=CHEAP, secret_key=PEPPER, now_ms=clock
    )
    sessions = SessionService(users, repo, PEPPER, policy=SessionPolicy(IDLE_S, MAX_S))
    seeded.service.tokens.sessions = sessions
    users.add("alice", PASSWORD, Role.REVIEWER, "张三")
    users.add("victor", PASSWORD, Role.VIEWER)
    app = make_app(seeded, trust_forwarded_for=True)
    with TestClient(app) as client:
        yield Env(seeded, client, users, sessions, clock)
    db.close()


def basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def login(
    env: Env, username: str, password: str = PASSWORD, code: str | None = None, ip: str = "10.0.0.1"
) -> Response:
    headers = {**basic(username, password), "X-Forwarded-For": ip}
    if code is not None:
        headers["X-TOTP-Code"] = code
    r: Response = env.client.post("/api/v1/auth/session", headers=headers)
    return r


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def session_of(env: Env, username: str = "alice", code: str | None = None) -> str:
    r = login(env, username, code=code)
    assert r.status_code == 201, r.text
    secret: str = r.json()["session"]
    return secret


def me(env: Env, secret: str) -> Response:
    r: Response = env.client.get("/api/v1/auth/me", headers=bearer(secret))
    return r


def totp_secret(uri: str) -> str:
    return parse_qs(urlsplit(uri).query)["secret"][0]


# --- storage --------------------------------------------------------------------------------


def test_only_hashes_are_stored(env: Env) -> None:
    uri = env.users.enrol_totp("alice")
    secret = session_of(env, code=totp.code_at(totp_secret(uri), totp.step_at(env.clock())))
    users = repr(env.raw("SELECT * FROM users"))
    assert PASSWORD not in users
    assert totp_secret(uri) not in users  # sealed with a key derived from the install key
    (hash_,) = env.raw("SELECT password_hash FROM users WHERE username = 'alice'")[0]
    assert str(hash_).startswith("$argon2id$v=19$")
    sessions = repr(env.raw("SELECT * FROM user_sessions"))
    assert secret.split(".", 1)[1] not in sessions
    assert secret.split(".", 1)[0] in sessions  # the id is not secret


def test_default_service_hashes_with_argon2id_defaults(tmp_path: Path) -> None:
    service = build_store_service(f"sqlite:///{tmp_path / 's.db'}", tmp_path, token_key=PEPPER)
    try:
        sessions = service.tokens.sessions
        assert sessions is not None
        record = sessions.users.add("bob", PASSWORD, Role.VIEWER)
        assert record.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        issued = sessions.login("BOB", PASSWORD)  # names are case-insensitive
        assert service.tokens.authenticate(issued.credential).name == "bob"
    finally:
        service.db.close()


# --- login ------------------------------------------------------------------------------------


def test_password_login_gives_a_session_that_works_as_bearer(env: Env) -> None:
    r = login(env, "Alice")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["username"] == "alice" and body["role"] == "reviewer"
    assert body["display_name"] == "张三" and body["idle_timeout_s"] == IDLE_S
    assert body["expires_ms"] == T0 + int(MAX_S * 1000)
    assert re.fullmatch(r"ss_[0-9a-f]{16}\.[\w-]+", body["session"])
    who = me(env, body["session"])
    assert who.status_code == 200
    assert who.json() == {"token_id": body["session_id"], "name": "alice", "role": "reviewer"}
    assert ("login", "alice", "session, password") in env.audit()


def test_wrong_password_unknown_and_disabled_user_get_one_answer(env: Env) -> None:
    env.users.add("dora", PASSWORD, Role.REVIEWER)
    env.users.disable("dora")
    answers = [
        login(env, "alice", "wrong password!"),
        login(env, "nobody", PASSWORD),
        login(env, "dora", PASSWORD),
    ]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert len({a.text for a in answers}) == 1
    assert answers[0].json() == {"detail": "invalid user name or password"}
    audit = env.audit()
    assert ("login_failed", "", "wrong password: alice") in audit
    assert ("login_failed", "", "unknown user: nobody") in audit
    assert ("login_failed", "", "disabled user: dora") in audit


def test_missing_or_malformed_credentials_are_401(env: Env) -> None:
    r = env.client.post("/api/v1/auth/session")
    assert r.status_code == 401
    r = env.client.post("/api/v1/auth/session", headers={"Authorization": "Basic !!!"})
    assert r.status_code == 401
    assert me(env, "ss_0123456789abcdef.forged").status_code == 401
    assert me(env, "ss_short.x").status_code == 401


def test_failed_logins_are_rate_limited_per_client_and_per_user(env: Env) -> None:
    for _ in range(5):
        assert login(env, "alice", "wrong password!", ip="10.0.0.9").status_code == 401
    blocked = login(env, "alice", ip="10.0.0.9")  # the right password, from a blocked client
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    # the name is blocked from every address as well (a spread-out guess at one user) ...
    assert login(env, "alice", ip="10.0.0.10").status_code == 429
    # ... while other users from other addresses log in
    assert login(env, "victor", ip="10.0.0.11").status_code == 201
    assert ("rate_limited", "", "login") in env.audit()


# --- sessions ---------------------------------------------------------------------------------


def test_session_expires_when_idle(env: Env) -> None:
    secret = session_of(env)
    env.clock.advance(IDLE_S - 1)
    assert me(env, secret).status_code == 200  # a request: the idle timer starts again
    env.clock.advance(IDLE_S - 1)
    assert me(env, secret).status_code == 200
    env.clock.advance(IDLE_S)
    assert me(env, secret).status_code == 401
    assert ("auth_failed", "", "idle session expired") in env.audit()


def test_session_ends_at_its_absolute_expiry_even_when_used(env: Env) -> None:
    secret = session_of(env)
    used = 0.0
    while used + 500 < MAX_S:
        env.clock.advance(500)
        used += 500
        assert me(env, secret).status_code == 200
    env.clock.advance(MAX_S - used)
    assert me(env, secret).status_code == 401
    assert ("auth_failed", "", "expired session") in env.audit()


def test_logout_ends_the_session_on_the_server(env: Env) -> None:
    secret = session_of(env)
    session_id = secret.split(".", 1)[0]
    assert env.client.post("/api/v1/auth/logout", headers=bearer(secret)).status_code == 204
    assert me(env, secret).status_code == 401
    assert env.client.post("/api/v1/auth/logout", headers=bearer(secret)).status_code == 401
    assert not env.seeded.service.tokens.is_active(session_id)
    assert ("logout", "alice", "session ended") in env.audit()


def test_logout_with_a_token_keeps_the_token(env: Env) -> None:
    token = env.seeded.tokens["viewer"]
    assert env.client.post("/api/v1/auth/logout", headers=bearer(token)).status_code == 204
    assert me(env, token).status_code == 200


def test_disabling_a_user_ends_sessions_and_refuses_logins(env: Env) -> None:
    secret = session_of(env)
    admin = env.seeded.auth("admin")
    r = env.client.post("/api/v1/auth/users/alice/disable", headers=admin)
    assert r.status_code == 204
    assert me(env, secret).status_code == 401
    assert login(env, "alice").status_code == 401
    assert env.client.post("/api/v1/auth/users/alice/enable", headers=admin).status_code == 204
    assert login(env, "alice").status_code == 201
    assert env.client.post("/api/v1/auth/users/zed/disable", headers=admin).status_code == 404


def test_password_change_ends_sessions(env: Env) -> None:
    secret = session_of(env)
    assert env.users.set_password("alice", "another pass 2") == 1
    assert me(env, secret).status_code == 401
    assert login(env, "alice").status_code == 401
    assert login(env, "alice", "another pass 2").status_code == 201


def test_evidence_urls_signed_for_a_session_die_with_it(env: Env) -> None:
    secret = session_of(env)
    event_id = env.seeded.violations[0].event_id
    ev = env.client.get(f"/api/v1/violations/{event_id}", headers=bearer(secret)).json()
    url = next(f["url"] for f in ev["evidence"] if f["name"] == "composite.jpg")
    assert env.client.get(url).status_code == 200  # no header: the signature carries ss_<id>
    env.client.post("/api/v1/auth/logout", headers=bearer(secret))
    assert env.client.get(url).status_code in (401, 403)


# --- TOTP -------------------------------------------------------------------------------------


def test_totp_required_valid_invalid_and_replayed(env: Env) -> None:
    uri = env.users.enrol_totp("alice")
    assert uri.startswith("otpauth://totp/sharpeyes:alice?") and "issuer=sharpeyes" in uri
    key = totp_secret(uri)
    step = totp.step_at(env.clock())
    for _ in range(6):  # the password was right: asking for the code is not a failure
        r = login(env, "alice")
        assert r.status_code == 401 and r.headers["X-TOTP-Required"] == "1"
    assert r.json() == {"detail": "a one-time code (TOTP) is required"}
    wrong = str((int(totp.code_at(key, step)) + 1) % 1_000_000).zfill(6)
    r = login(env, "alice", code=wrong)
    assert r.status_code == 401 and "X-TOTP-Required" not in r.headers
    bad_pw = login(env, "alice", "wrong password!", code=totp.code_at(key, step))
    assert bad_pw.json() == {"detail": "invalid user name or password"}  # no code hint
    assert login(env, "alice", code=totp.code_at(key, step)).status_code == 201
    replay = login(env, "alice", code=totp.code_at(key, step))
    assert replay.status_code == 401  # the same code twice
    assert login(env, "alice", code=totp.code_at(key, step - 1)).status_code == 401  # older
    env.clock.advance(totp.STEP_S)
    assert login(env, "alice", code=totp.code_at(key, step + 1)).status_code == 201
    details = [d for a, _, d in env.audit() if a == "login_failed"]
    assert "one-time code required: alice" in details
    assert "wrong one-time code: alice" in details
    assert "one-time code already used: alice" in details
    assert ("login", "alice", "session, password + TOTP") in env.audit()


def test_totp_accepts_one_step_of_drift_and_no_more(env: Env) -> None:
    key = totp_secret(env.users.enrol_totp("alice"))
    step = totp.step_at(env.clock())
    assert login(env, "alice", code=totp.code_at(key, step + 2)).status_code == 401
    assert login(env, "alice", code=totp.code_at(key, step + 1)).status_code == 201
    env.users.remove_totp("alice")
    assert login(env, "alice").status_code == 201


# --- roles and tokens -------------------------------------------------------------------------


def test_roles_are_enforced_for_sessions(env: Env) -> None:
    event_id = env.seeded.violations[0].event_id
    path = f"/api/v1/violations/{event_id}/review"
    body = {"action": "confirm", "reason": None, "corrected_plate": None}
    viewer = session_of(env, "victor")
    r = env.client.post(path, json=body, headers=bearer(viewer))
    assert r.status_code == 403
    reviewer = session_of(env, "alice")
    r = env.client.post(path, json=body, headers=bearer(reviewer))  # a body through the guard
    assert r.status_code == 200, r.text
    trail = env.seeded.service.audit_trail(event_id)
    assert trail[0].actor == f"alice ({reviewer.split('.', 1)[0]})"
    assert env.client.get("/api/v1/auth/users", headers=bearer(reviewer)).status_code == 403


def test_api_tokens_still_work(env: Env) -> None:
    token = env.seeded.tokens["reviewer"]
    r = env.client.post("/api/v1/auth/login", headers=bearer(token))
    assert r.status_code == 200 and re.fullmatch(r"[0-9a-f]{12}", r.json()["token_id"])
    assert me(env, token).json()["name"] == "reviewer-user"
    assert env.client.get("/api/v1/violations", headers=bearer(token)).status_code == 200


def test_admin_creates_and_lists_users(env: Env) -> None:
    admin = env.seeded.auth("admin")
    new = {
        "username": "Li.Si",
        "password": "long enough 3",
        "role": "viewer",
        "display_name": "李四",
    }
    r = env.client.post("/api/v1/auth/users", json=new, headers=admin)
    assert r.status_code == 201 and r.json()["username"] == "li.si"
    assert env.client.post("/api/v1/auth/users", json=new, headers=admin).status_code == 409
    bad = {**new, "username": "no spaces"}
    assert env.client.post("/api/v1/auth/users", json=bad, headers=admin).status_code == 400
    listed = env.client.get("/api/v1/auth/users", headers=admin).json()["items"]
    assert [u["username"] for u in listed] == ["alice", "li.si", "victor"]
    assert "long enough 3" not in repr(listed) and "argon2" not in repr(listed)
    assert login(env, "li.si", "long enough 3").status_code == 201


# --- CLI --------------------------------------------------------------------------------------


def test_cli_manages_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "service.yaml"
    files = tmp_path / "files"
    cfg.write_text(f"store:\n  url: {tmp_path / 's.db'}\n  files_root: {files}\n")

    def cli(*args: str, stdin: str = "") -> tuple[int, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        rc = cli_main(["users", "--config", str(cfg), *args])
        out = capsys.readouterr()
        return rc, out.out + out.err

    rc, out = cli("add", "wang", "--role", "reviewer", "--password-stdin", stdin=PASSWORD + "\n")
    assert rc == 0 and "added wang (reviewer)" in out
    rc, out = cli("add", "wang", "--role", "viewer", "--password-stdin", stdin=PASSWORD + "\n")
    assert rc == 1 and "exists" in out
    rc, out = cli("add", "short", "--role", "viewer", "--password-stdin", stdin="abc\n")
    assert rc == 1 and "at least 8" in out
    rc, out = cli("totp", "wang")
    assert rc == 0 and out.startswith("otpauth://totp/sharpeyes:wang?")
    key = totp_secret(out.splitlines()[0])
    rc, out = cli("list")
    assert rc == 0 and re.search(r"wang\s+reviewer\s+yes\s+enabled", out)

    # the service on the same store and key accepts the user (with a code), as the CLI set it
    service = build_store_service(tmp_path / "s.db", files, token_key=api_key(files), url_key=b"u")
    try:
        sessions = service.tokens.sessions
        assert sessions is not None
        now = sessions.users.now_ms()
        issued = sessions.login("wang", PASSWORD, totp.code_at(key, totp.step_at(now)))
        assert service.tokens.authenticate(issued.credential).role == Role.REVIEWER
        rc, out = cli("passwd", "wang", "--password-stdin", stdin="new password 9\n")
        assert rc == 0 and "1 session(s) ended" in out
        assert not service.tokens.is_active(issued.record.session_id)
        rc, out = cli("disable", "wang")
        assert rc == 0 and "wang disabled" in out
        assert re.search(r"wang\s+reviewer\s+yes\s+disabled", cli("list")[1])
        actions = [r.action.value for r in service.auth_audit.recent(20) if r.client == "cli"]
        assert actions == ["user_disabled", "password_changed", "totp_enrolled", "user_created"]
    finally:
        service.db.close()


def test_cli_without_a_terminal_says_how_to_give_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "service.yaml"
    cfg.write_text(f"store:\n  url: {tmp_path / 's.db'}\n  files_root: {tmp_path / 'f'}\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a script, ssh without a tty: no terminal
    rc = cli_main(["users", "--config", str(cfg), "add", "wang", "--role", "reviewer"])
    out = capsys.readouterr()
    assert rc != 0
    assert "no terminal to read the password from: pass --password-stdin" in out.err
    assert "Traceback" not in out.out + out.err
