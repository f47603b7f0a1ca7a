"""Password hashing for console users: argon2id (argon2-cffi), never the password itself.

The hash string carries its own salt and cost parameters, so raising the cost later only needs
:meth:`Passwords.needs_rehash` at the next successful login. Unknown users are answered after
the same work as known ones (:meth:`Passwords.burn`), so timing does not tell which names exist.
"""

from __future__ import annotations

import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sharpeyes.pipeline.errors import SharpeyesError

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256  # argon2 accepts more, but a login body must stay small


class PasswordPolicyError(SharpeyesError, ValueError):
    """A new password is too short, too long or not text."""


def check_password_policy(password: str) -> None:
    """Raise :class:`PasswordPolicyError` for a password that may not be set."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordPolicyError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordPolicyError(f"a password may have at most {MAX_PASSWORD_CHARS} characters")
    if password != password.strip() or any(ord(c) < 32 for c in password):
        raise PasswordPolicyError("a password may not start or end with spaces or hold controls")


class Passwords:
    """argon2id hashing. The defaults are argon2-cffi's (RFC 9106 low-memory profile);
    tests may pass cheaper ``time_cost``/``memory_kib``."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4):
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        self._dummy: str | None = None
        self._lock = threading.Lock()

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        """True when ``password`` matches ``stored``; a malformed hash is a mismatch."""
        if len(password) > MAX_PASSWORD_CHARS:
            return False
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    def burn(self, password: str) -> None:
        """Spend the time of one verification (for a user name that does not exist)."""
        with self._lock:
            if self._dummy is None:
                self._dummy = self._hasher.hash("sharpeyes-no-such-user")
            dummy = self._dummy
        self.verify(dummy, password)
