"""Audit of authentication events: logins, failures, token use for review/admin actions (行为留痕).

The log is append-only: the protocol has no update or delete.
"""

from __future__ import annotations

import enum
import itertools
import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Protocol


class AuthAction(enum.StrEnum):
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    AUTH_FAILED = "auth_failed"
    RATE_LIMITED = "rate_limited"
    FORBIDDEN = "forbidden"
    TOKEN_USE = "token_use"
    TOKEN_CREATED = "token_created"
    TOKEN_REVOKED = "token_revoked"
    LOGOUT = "logout"
    USER_CREATED = "user_created"
    USER_DISABLED = "user_disabled"
    USER_ENABLED = "user_enabled"
    PASSWORD_CHANGED = "password_changed"
    TOTP_ENROLLED = "totp_enrolled"
    TOTP_REMOVED = "totp_removed"


@dataclass(frozen=True, slots=True)
class AuthAuditRecord:
    """One audit line. ``token_id``/``name`` are empty for unauthenticated attempts."""

    at_ms: int
    action: AuthAction
    token_id: str
    name: str
    role: str
    client: str
    method: str
    path: str
    status: int
    detail: str = ""
    audit_id: int = 0


class AuthAuditLog(Protocol):
    def append(self, record: AuthAuditRecord) -> AuthAuditRecord: ...

    def recent(self, limit: int, before_id: int | None = None) -> list[AuthAuditRecord]: ...


class MemoryAuthAuditLog:
    """Bounded in-memory audit log (tests, or a service without a store)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._rows: deque[AuthAuditRecord] = deque(maxlen=capacity)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def append(self, record: AuthAuditRecord) -> AuthAuditRecord:
        with self._lock:
            stored = replace(record, audit_id=next(self._ids))
            self._rows.append(stored)
            return stored

    def recent(self, limit: int, before_id: int | None = None) -> list[AuthAuditRecord]:
        with self._lock:
            rows = [r for r in reversed(self._rows) if before_id is None or r.audit_id < before_id]
        return rows[:limit]
