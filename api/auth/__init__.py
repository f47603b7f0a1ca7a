"""API security: hashed tokens with roles, auth-failure rate limiting, audit of auth events."""

from api.auth.audit import AuthAuditLog, AuthAuditRecord, MemoryAuthAuditLog
from api.auth.ratelimit import FailureLimiter
from api.auth.tokens import (
    MemoryTokenRepository,
    Principal,
    Role,
    TokenRecord,
    TokenRepository,
    TokenService,
)

__all__ = [
    "AuthAuditLog",
    "AuthAuditRecord",
    "FailureLimiter",
    "MemoryAuthAuditLog",
    "MemoryTokenRepository",
    "Principal",
    "Role",
    "TokenRecord",
    "TokenRepository",
    "TokenService",
]
