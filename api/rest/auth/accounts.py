"""Console users and their sessions: the records, the repositories' protocols and the errors.

People log in with a user name and password (+ a TOTP code when enrolled) and get a server-side
session; machines keep using API tokens. Tables from migration ``0430_users_sessions``.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol

from sharpeyes.api.rest.auth.tokens import Role, TokenError
from sharpeyes.pipeline.errors import SharpeyesError

SESSION_PREFIX = "ss_"  # a session credential is ss_<id>.<secret>; its principal id is ss_<id>
SESSION_ID_HEX = 16
_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


class UserError(SharpeyesError, ValueError):
    """An unknown user, a name that exists already, or a name that is not allowed."""


class LoginReason(enum.StrEnum):
    """Why a login failed (audit detail; the caller only learns the public message)."""

    UNKNOWN_USER = "unknown user"
    BAD_PASSWORD = "wrong password"
    DISABLED = "disabled user"
    TOTP_REQUIRED = "one-time code required"
    TOTP_INVALID = "wrong one-time code"
    TOTP_REPLAYED = "one-time code already used"


class LoginError(TokenError):
    """A refused login. ``str()`` is the public message; ``reason`` is for the audit."""

    PUBLIC = "invalid user name or password"

    def __init__(self, reason: LoginReason, username: str) -> None:
        public = {
            LoginReason.TOTP_REQUIRED: "a one-time code (TOTP) is required",
            LoginReason.TOTP_INVALID: "invalid one-time code",
            LoginReason.TOTP_REPLAYED: "invalid one-time code",
        }.get(reason, self.PUBLIC)
        super().__init__(public)
        self.reason = reason
        self.username = username


class SessionError(TokenError):
    """A session credential that is malformed, unknown, ended or expired."""


def normalize_username(name: str) -> str:
    """Lower-case NFKC form of a user name; raises :class:`UserError` when it is not allowed."""
    norm = unicodedata.normalize("NFKC", name).strip().lower()
    if not _USERNAME_RE.match(norm):
        raise UserError(
            f"user name {name[:80]!r} not allowed: 1-64 of a-z 0-9 . _ @ -, starting with a "
            "letter or digit"
        )
    return norm


@dataclass(frozen=True, slots=True)
class UserRecord:
    """What the store keeps about a user: never the password, the TOTP secret only sealed."""

    user_id: str
    username: str
    role: Role
    password_hash: str
    created_ms: int
    password_ms: int
    display_name: str = ""
    totp_secret: str | None = None
    totp_last_step: int | None = None
    disabled_ms: int | None = None

    @property
    def totp_enabled(self) -> bool:
        return self.totp_secret is not None

    @property
    def active(self) -> bool:
        return self.disabled_ms is None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A server-side session; only the hash of its secret is stored."""

    session_id: str
    user_id: str
    secret_hash: str
    created_ms: int
    last_seen_ms: int
    expires_ms: int
    ended_ms: int | None = None
    client: str = ""


class UserRepository(Protocol):
    def insert(self, record: UserRecord) -> None: ...

    def get(self, user_id: str) -> UserRecord | None: ...

    def by_name(self, username: str) -> UserRecord | None: ...

    def list(self) -> list[UserRecord]: ...

    def set_password(self, user_id: str, password_hash: str, at_ms: int) -> None: ...

    def set_disabled(self, user_id: str, at_ms: int | None) -> None: ...

    def set_totp(self, user_id: str, sealed_secret: str | None) -> None: ...

    def claim_totp_step(self, user_id: str, step: int) -> bool:
        """Record ``step`` as used unless it (or a later one) was used already; atomic."""
        ...


class SessionRepository(Protocol):
    def insert(self, record: SessionRecord) -> None: ...

    def get(self, session_id: str) -> SessionRecord | None: ...

    def touch(self, session_id: str, at_ms: int) -> None: ...

    def end(self, session_id: str, at_ms: int) -> bool: ...

    def end_for_user(self, user_id: str, at_ms: int) -> int: ...

    def prune(self, before_ms: int) -> int:
        """Delete sessions that ended or expired before ``before_ms``; returns how many."""
        ...
