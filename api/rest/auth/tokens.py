"""API tokens: ``se_<id>.<secret>``, stored only as an HMAC-SHA256 (or SHA-256) of the secret.

Roles are ordered: viewer (read) < reviewer (review actions) < admin (cameras, tokens).
Tokens may expire (``expires_ms``); :meth:`TokenService.bootstrap_admin` creates the first
admin token of an installation once, instead of a new one at every start.

:class:`TokenService` is also where every bearer credential is checked: a console user's session
(``ss_<id>.<secret>``, :mod:`api.rest.auth.sessions`) goes to its session service, so a session
is accepted wherever a token is (routes, the pre-body guard, signed evidence URLs).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sharpeyes.pipeline import clock
from sharpeyes.pipeline.errors import SharpeyesError

if TYPE_CHECKING:
    from sharpeyes.api.rest.auth.sessions import SessionService

TOKEN_PREFIX = "se_"
SESSION_CREDENTIAL_PREFIX = "ss_"  # as api.rest.auth.accounts.SESSION_PREFIX
_ID_HEX = 12
TOUCH_INTERVAL_MS = 60_000


class Role(enum.IntEnum):
    """Token roles; a higher role may do everything a lower one may."""

    VIEWER = 1
    REVIEWER = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls[value.upper()]
        except KeyError as e:
            raise ValueError(f"unknown role {value!r} (viewer, reviewer, admin)") from e


class TokenError(SharpeyesError, ValueError):
    """A token is malformed, unknown, revoked or its secret does not match."""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What the store keeps about a token; never the secret itself."""

    token_id: str
    name: str
    role: Role
    secret_hash: str
    created_ms: int
    revoked_ms: int | None = None
    last_used_ms: int | None = None
    expires_ms: int | None = None

    def active(self, now_ms: int | None = None) -> bool:
        now = clock.now_ms() if now_ms is None else now_ms
        return self.revoked_ms is None and (self.expires_ms is None or now < self.expires_ms)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    token_id: str
    name: str
    role: Role

    def allows(self, needed: Role) -> bool:
        return self.role >= needed


class TokenRepository(Protocol):
    """Persistence of token records (SQL in production, memory in small tests)."""

    def insert(self, record: TokenRecord) -> None: ...

    def get(self, token_id: str) -> TokenRecord | None: ...

    def list(self) -> list[TokenRecord]: ...

    def revoke(self, token_id: str, at_ms: int) -> bool: ...

    def touch(self, token_id: str, at_ms: int) -> None: ...


@runtime_checkable
class SessionSource(Protocol):
    """A token repository that can also keep users and sessions (the SQL one)."""

    def session_backend(self, hmac_key: bytes | None) -> SessionService: ...


class MemoryTokenRepository:
    """Thread-safe in-memory :class:`TokenRepository`."""

    def __init__(self) -> None:
        self._rows: dict[str, TokenRecord] = {}
        self._lock = threading.Lock()

    def insert(self, record: TokenRecord) -> None:
        with self._lock:
            if record.token_id in self._rows:
                raise TokenError(f"token id {record.token_id} exists")
            self._rows[record.token_id] = record

    def get(self, token_id: str) -> TokenRecord | None:
        with self._lock:
            return self._rows.get(token_id)

    def list(self) -> list[TokenRecord]:
        with self._lock:
            return sorted(self._rows.values(), key=lambda r: (r.created_ms, r.token_id))

    def revoke(self, token_id: str, at_ms: int) -> bool:
        with self._lock:
            rec = self._rows.get(token_id)
            if rec is None or rec.revoked_ms is not None:
                return False
            self._rows[token_id] = replace(rec, revoked_ms=at_ms)
            return True

    def touch(self, token_id: str, at_ms: int) -> None:
        with self._lock:
            rec = self._rows.get(token_id)
            if rec is not None:
                self._rows[token_id] = replace(rec, last_used_ms=at_ms)


def split_token(token: str) -> tuple[str, str]:
    """Split ``se_<id>.<secret>`` into (id, secret); raises :class:`TokenError` if malformed."""
    if not token.startswith(TOKEN_PREFIX) or "." not in token:
        raise TokenError("malformed token")
    token_id, _, secret = token[len(TOKEN_PREFIX) :].partition(".")
    if len(token_id) != _ID_HEX or not secret or len(secret) > 256:
        raise TokenError("malformed token")
    return token_id, secret


class TokenService:
    """Issues, verifies and revokes tokens. ``hmac_key`` (from config/env) peppers the hash.

    ``default_ttl_s`` is the lifetime of issued tokens (None: they do not expire).
    ``sessions`` checks console users' session credentials; by default the repository's own
    (:class:`SessionSource`), else sessions are refused like unknown tokens.
    """

    def __init__(
        self,
        repo: TokenRepository,
        hmac_key: bytes | None = None,
        *,
        default_ttl_s: float | None = None,
        sessions: SessionService | None = None,
    ) -> None:
        self._repo = repo
        self._key = hmac_key
        self.default_ttl_s = default_ttl_s
        if sessions is None and isinstance(repo, SessionSource):
            sessions = repo.session_backend(hmac_key)
        self.sessions = sessions

    def hash_secret(self, secret: str) -> str:
        if self._key:
            return hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()
        return hashlib.sha256(secret.encode()).hexdigest()

    def issue(
        self,
        name: str,
        role: Role,
        *,
        token: str | None = None,
        ttl_s: float | None = None,
    ) -> tuple[TokenRecord, str]:
        """Create a token; returns the record and the plaintext (shown to the caller once).

        ``token`` lets the composition root install a configured token (e.g. from an env var).
        ``ttl_s`` (default: the service's ``default_ttl_s``) sets its expiry.
        """
        if token is None:
            token = f"{TOKEN_PREFIX}{secrets.token_hex(_ID_HEX // 2)}.{secrets.token_urlsafe(32)}"
        token_id, secret = split_token(token)
        now = clock.now_ms()
        ttl = self.default_ttl_s if ttl_s is None else ttl_s
        record = TokenRecord(
            token_id=token_id,
            name=name,
            role=role,
            secret_hash=self.hash_secret(secret),
            created_ms=now,
            expires_ms=None if ttl is None else now + int(ttl * 1000),
        )
        self._repo.insert(record)
        return record, token

    def ensure(self, token: str, name: str, role: Role) -> TokenRecord:
        """Install ``token`` unless a token with its id already exists (idempotent start-up)."""
        token_id, _ = split_token(token)
        existing = self._repo.get(token_id)
        if existing is not None:
            return existing
        return self.issue(name, role, token=token)[0]

    def authenticate(self, token: str) -> Principal:
        """Return the caller for ``token`` (or a session credential); raises :class:`TokenError`
        on any mismatch."""
        if token.startswith(SESSION_CREDENTIAL_PREFIX):
            if self.sessions is None:
                raise TokenError("sessions are not enabled")
            return self.sessions.authenticate(token)
        token_id, secret = split_token(token)
        record = self._repo.get(token_id)
        expected = record.secret_hash if record is not None else self.hash_secret("x")
        ok = hmac.compare_digest(expected, self.hash_secret(secret))
        if record is None or not ok:
            raise TokenError("unknown token")
        if record.revoked_ms is not None:
            raise TokenError("revoked token")
        now = clock.now_ms()
        if record.expires_ms is not None and now >= record.expires_ms:
            raise TokenError("expired token")
        if record.last_used_ms is None or now - record.last_used_ms >= TOUCH_INTERVAL_MS:
            self._repo.touch(token_id, now)  # throttled: not one write per request
        return Principal(token_id=record.token_id, name=record.name, role=record.role)

    def list(self) -> list[TokenRecord]:
        return self._repo.list()

    def get(self, token_id: str) -> TokenRecord | None:
        return self._repo.get(token_id)

    def revoke(self, token_id: str) -> bool:
        return self._repo.revoke(token_id, clock.now_ms())

    def is_active(self, token_id: str) -> bool:
        """The token (or session) exists, is not revoked or ended and has not expired."""
        if token_id.startswith(SESSION_CREDENTIAL_PREFIX):
            return self.sessions is not None and self.sessions.is_active(token_id)
        record = self._repo.get(token_id)
        return record is not None and record.active()

    def bootstrap_admin(self, name: str, ttl_s: float | None) -> str | None:
        """Issue the installation's first admin token, or None while an active admin exists.

        Restarts therefore do not mint more admin tokens; a new one is made only when no admin
        token is usable any more (all revoked or expired) — the recovery path.
        """
        now = clock.now_ms()
        if any(r.role == Role.ADMIN and r.active(now) for r in self._repo.list()):
            return None
        return self.issue(name, Role.ADMIN, ttl_s=ttl_s)[1]
