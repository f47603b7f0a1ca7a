"""User administration and the login check (password, disabled flag, TOTP with replay guard).

TOTP secrets are sealed at rest (AES-256-GCM, :class:`api.rest.cameras.CredentialBox`) with a
key derived from the installation key, when there is one. Changing a password or disabling a
user ends every session of that user.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

from sharpeyes.api.rest.auth import totp
from sharpeyes.api.rest.auth.accounts import (
    LoginError,
    LoginReason,
    SessionRepository,
    UserError,
    UserRecord,
    UserRepository,
    normalize_username,
)
from sharpeyes.api.rest.auth.passwords import Passwords, check_password_policy
from sharpeyes.api.rest.auth.tokens import Role
from sharpeyes.api.rest.cameras import CredentialBox
from sharpeyes.pipeline import clock

Clock = Callable[[], int]


class UserService:
    """Adds, lists, disables users; sets passwords and TOTP; checks a login."""

    def __init__(
        self,
        repo: UserRepository,
        sessions: SessionRepository,
        *,
        passwords: Passwords | None = None,
        secret_key: bytes | None = None,
        now_ms: Clock = clock.now_ms,
    ) -> None:
        self._repo = repo
        self._sessions = sessions
        self.passwords = passwords or Passwords()
        self._box: CredentialBox | None = None
        if secret_key:
            purpose = b"sharpeyes/totp-secrets"  # as api.rest.service.derive_key
            self._box = CredentialBox(hmac.new(secret_key, purpose, hashlib.sha256).digest())
        self.now_ms = now_ms

    # -- administration ------------------------------------------------------------------------

    def add(self, username: str, password: str, role: Role, display_name: str = "") -> UserRecord:
        name = normalize_username(username)
        check_password_policy(password)
        if self._repo.by_name(name) is not None:
            raise UserError(f"user {name!r} exists")
        now = self.now_ms()
        record = UserRecord(
            user_id=secrets.token_hex(6),
            username=name,
            role=role,
            password_hash=self.passwords.hash(password),
            created_ms=now,
            password_ms=now,
            display_name=display_name.strip()[:64],
        )
        self._repo.insert(record)
        return record

    def find(self, username: str) -> UserRecord | None:
        try:
            return self._repo.by_name(normalize_username(username))
        except UserError:
            return None

    def get(self, username: str) -> UserRecord:
        record = self.find(username)
        if record is None:
            raise UserError(f"no user {username[:80]!r}")
        return record

    def by_id(self, user_id: str) -> UserRecord | None:
        return self._repo.get(user_id)

    def list(self) -> list[UserRecord]:
        return self._repo.list()

    def set_password(self, username: str, password: str) -> int:
        """Set a new password; returns how many of the user's sessions were ended."""
        user = self.get(username)
        check_password_policy(password)
        now = self.now_ms()
        self._repo.set_password(user.user_id, self.passwords.hash(password), now)
        return self._sessions.end_for_user(user.user_id, now)

    def disable(self, username: str) -> int:
        """Disable a user; returns how many of the user's sessions were ended."""
        user = self.get(username)
        now = self.now_ms()
        if user.active:
            self._repo.set_disabled(user.user_id, now)
        return self._sessions.end_for_user(user.user_id, now)

    def enable(self, username: str) -> None:
        self._repo.set_disabled(self.get(username).user_id, None)

    def enrol_totp(self, username: str) -> str:
        """Give the user a new TOTP secret (replacing any old one); returns the otpauth URI."""
        user = self.get(username)
        secret = totp.new_secret()
        self._repo.set_totp(user.user_id, self._seal(secret, user.user_id))
        return totp.provisioning_uri(secret, user.username)

    def remove_totp(self, username: str) -> None:
        self._repo.set_totp(self.get(username).user_id, None)

    def totp_secret(self, user: UserRecord) -> str | None:
        """The plain TOTP secret of ``user`` (None when not enrolled)."""
        if user.totp_secret is None:
            return None
        return self._box.open(user.totp_secret, user.user_id) if self._box else user.totp_secret

    def _seal(self, secret: str, user_id: str) -> str:
        return self._box.seal(secret, user_id) if self._box else secret

    # -- login ---------------------------------------------------------------------------------

    def check_login(self, username: str, password: str, code: str | None) -> UserRecord:
        """The user for these credentials; raises :class:`LoginError` with the reason.

        The password is checked before anything else is revealed: an unknown name costs the
        same hashing work, and "TOTP required" is only said to a caller who knew the password.
        """
        try:
            user = self._repo.by_name(normalize_username(username))
        except UserError:
            user = None
        if user is None:
            self.passwords.burn(password)
            raise LoginError(LoginReason.UNKNOWN_USER, username[:64])
        if not self.passwords.verify(user.password_hash, password):
            raise LoginError(LoginReason.BAD_PASSWORD, user.username)
        if not user.active:
            raise LoginError(LoginReason.DISABLED, user.username)
        self._check_totp(user, code)
        if self.passwords.needs_rehash(user.password_hash):  # cost raised since it was set
            self._repo.set_password(user.user_id, self.passwords.hash(password), user.password_ms)
        return user

    def _check_totp(self, user: UserRecord, code: str | None) -> None:
        secret = self.totp_secret(user)
        if secret is None:
            return
        if not code:
            raise LoginError(LoginReason.TOTP_REQUIRED, user.username)
        step = totp.matching_step(secret, code, self.now_ms())
        if step is None:
            raise LoginError(LoginReason.TOTP_INVALID, user.username)
        if not self._repo.claim_totp_step(user.user_id, step):
            raise LoginError(LoginReason.TOTP_REPLAYED, user.username)
