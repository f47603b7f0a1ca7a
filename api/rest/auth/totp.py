"""Time-based one-time codes (RFC 6238, pyotp): 6 digits, 30 s steps, SHA-1 (what authenticator
apps support). A code is accepted one step early or late (clock drift); each accepted step is
remembered per user so a code cannot be used twice (:meth:`UserService.claim_totp_step`).
"""

from __future__ import annotations

import hmac

import pyotp

STEP_S = 30
DIGITS = 6
DRIFT_STEPS = 1
ISSUER = "sharpeyes"


def new_secret() -> str:
    """A random base32 secret (160 bits, as RFC 4226 recommends)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://totp/…`` URI an authenticator app scans as a QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(
        name=username, issuer_name=issuer
    )


def step_at(now_ms: int) -> int:
    return now_ms // 1000 // STEP_S


def code_at(secret: str, step: int) -> str:
    """The code of time step ``step`` (tests and enrolment checks)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).generate_otp(step)


def matching_step(secret: str, code: str, now_ms: int) -> int | None:
    """The time step whose code is ``code`` (within the allowed drift), else None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    now = step_at(now_ms)
    found: int | None = None
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):  # no early exit: same timing
        if hmac.compare_digest(code_at(secret, step), code) and found is None:
            found = step
    return found
