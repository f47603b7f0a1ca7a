"""Server-side sessions for console users: ``ss_<id>.<secret>``, only the secret's HMAC stored.

A session ends at logout, when its user is disabled or changes password, after ``idle_s``
without a request, or ``max_s`` after login, whichever comes first. Each request reads the
user again, so a role change or a disabled user takes effect at once. The last-seen time is
written at most once a minute (not one write per request), so idle expiry is exact to a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sharpeyes.api.rest.auth.accounts import (
    SESSION_ID_HEX,
    SESSION_PREFIX,
    SessionError,
    SessionRecord,
    SessionRepository,
    UserRecord,
)
from sharpeyes.api.rest.auth.tokens import TOUCH_INTERVAL_MS, Principal
from sharpeyes.api.rest.auth.users import UserService

PRUNE_AFTER_MS = 24 * 3600 * 1000  # ended/expired sessions are deleted a day later


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How long a session lives: ``idle_s`` without requests, ``max_s`` after login at most."""

    idle_s: float = 12 * 3600.0
    max_s: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if self.idle_s <= 0 or self.max_s <= 0:
            raise ValueError(f"session lifetimes must be > 0: idle {self.idle_s}, max {self.max_s}")


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A new session: its credential (shown once), record and caller."""

    credential: str
    record: SessionRecord
    user: UserRecord
    principal: Principal


def is_session_id(principal_id: str) -> bool:
    return principal_id.startswith(SESSION_PREFIX)


def split_session(credential: str) -> tuple[str, str]:
    """(``ss_<id>``, secret) of a session credential; raises :class:`SessionError`."""
    if not credential.startswith(SESSION_PREFIX) or "." not in credential:
        raise SessionError("malformed session")
    session_id, _, secret = credential.partition(".")
    if len(session_id) != len(SESSION_PREFIX) + SESSION_ID_HEX or not 0 < len(secret) <= 256:
        raise SessionError("malformed session")
    return session_id, secret


class SessionService:
    """Logs users in and out and authenticates session credentials."""

    def __init__(
        self,
        users: UserService,
        repo: SessionRepository,
        hmac_key: bytes | None = None,
        *,
        policy: SessionPolicy | None = None,
    ) -> None:
        self.users = users
        self._repo = repo
        self._key = hmac_key
        self.policy = policy or SessionPolicy()

    def _hash(self, secret: str) -> str:
        if self._key:
            return hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()
        return hashlib.sha256(secret.encode()).hexdigest()

    def login(
        self, username: str, password: str, code: str | None = None, *, client: str = ""
    ) -> IssuedSession:
        """Check the credentials and start a session; raises :class:`LoginError`."""
        user = self.users.check_login(username, password, code)
        now = self.users.now_ms()
        self._repo.prune(now - PRUNE_AFTER_MS)
        session_id = SESSION_PREFIX + secrets.token_hex(SESSION_ID_HEX // 2)
        secret = secrets.token_urlsafe(32)
        record = SessionRecord(
            session_id=session_id,
            user_id=user.user_id,
            secret_hash=self._hash(secret),
            created_ms=now,
            last_seen_ms=now,
            expires_ms=now + int(self.policy.max_s * 1000),
            client=client[:64],
        )
        self._repo.insert(record)
        return IssuedSession(f"{session_id}.{secret}", record, user, _principal(record, user))

    def authenticate(self, credential: str) -> Principal:
        """The caller of a live session; raises :class:`SessionError` otherwise."""
        session_id, secret = split_session(credential)
        record = self._repo.get(session_id)
        expected = record.secret_hash if record is not None else self._hash("x")
        if not hmac.compare_digest(expected, self._hash(secret)) or record is None:
            raise SessionError("unknown session")
        now = self.users.now_ms()
        user = self._live_user(record, now)
        if now - record.last_seen_ms >= TOUCH_INTERVAL_MS:
            self._repo.touch(session_id, now)
        return _principal(record, user)

    def _live_user(self, record: SessionRecord, now: int) -> UserRecord:
        if record.ended_ms is not None:
            raise SessionError("ended session")
        if now >= record.expires_ms:
            raise SessionError("expired session")
        if now - record.last_seen_ms >= int(self.policy.idle_s * 1000):
            raise SessionError("idle session expired")
        user = self.users.by_id(record.user_id)
        if user is None or not user.active:
            raise SessionError("user disabled")
        return user

    def is_active(self, session_id: str) -> bool:
        """The session exists, has not ended and has not expired (signed evidence URLs)."""
        record = self._repo.get(session_id)
        if record is None:
            return False
        try:
            self._live_user(record, self.users.now_ms())
        except SessionError:
            return False
        return True

    def logout(self, session_id: str) -> bool:
        """End a session; False when it had ended already."""
        return self._repo.end(session_id, self.users.now_ms())

    def get(self, session_id: str) -> SessionRecord | None:
        return self._repo.get(session_id)


def _principal(record: SessionRecord, user: UserRecord) -> Principal:
    return Principal(token_id=record.session_id, name=user.username, role=user.role)
