"""API security: hashed tokens with roles, auth-failure rate limiting, audit of auth events."""

from sharpeyes.api.rest.auth.audit import AuthAuditLog, AuthAuditRecord, MemoryAuthAuditLog
from sharpeyes.api.rest.auth.ratelimit import FailureLimiter
from sharpeyes.api.rest.auth.tokens import (
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
