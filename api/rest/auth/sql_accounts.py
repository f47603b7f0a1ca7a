"""SQL persistence of users and sessions (tables ``users`` and ``user_sessions`` from migration
``0430_users_sessions``), the same statements on SQLite and PostgreSQL."""

from __future__ import annotations

from sharpeyes.api.rest.auth.accounts import SessionRecord, UserError, UserRecord
from sharpeyes.api.rest.auth.tokens import Role
from sharpeyes.api.store.db import Database, Params, Row, StoreIntegrityError

_USER_COLS = (
    "user_id, username, role, password_hash, created_ms, password_ms, display_name, "
    "totp_secret, totp_last_step, disabled_ms"
)
_SESSION_COLS = (
    "session_id, user_id, secret_hash, created_ms, last_seen_ms, expires_ms, ended_ms, client"
)


def _opt(value: object) -> int | None:
    return None if value is None else int(str(value))


def _user(row: Row) -> UserRecord:
    return UserRecord(
        user_id=str(row[0]),
        username=str(row[1]),
        role=Role.parse(str(row[2])),
        password_hash=str(row[3]),
        created_ms=int(row[4]),
        password_ms=int(row[5]),
        display_name=str(row[6]),
        totp_secret=None if row[7] is None else str(row[7]),
        totp_last_step=_opt(row[8]),
        disabled_ms=_opt(row[9]),
    )


def _session(row: Row) -> SessionRecord:
    return SessionRecord(
        session_id=str(row[0]),
        user_id=str(row[1]),
        secret_hash=str(row[2]),
        created_ms=int(row[3]),
        last_seen_ms=int(row[4]),
        expires_ms=int(row[5]),
        ended_ms=_opt(row[6]),
        client=str(row[7]),
    )


class SqlUserRepository:
    """:class:`sharpeyes.api.rest.auth.accounts.UserRepository` over the store's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def insert(self, record: UserRecord) -> None:
        values = (
            record.user_id,
            record.username,
            record.role.label,
            record.password_hash,
            record.created_ms,
            record.password_ms,
            record.display_name,
            record.totp_secret,
            record.totp_last_step,
            record.disabled_ms,
        )
        try:
            with self._db.transaction() as tx:
                tx.execute(f"INSERT INTO users ({_USER_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)", values)
        except StoreIntegrityError as e:
            raise UserError(f"user {record.username!r} exists") from e

    def _one(self, where: str, value: str) -> UserRecord | None:
        with self._db.transaction(readonly=True) as tx:
            row = tx.fetchone(f"SELECT {_USER_COLS} FROM users WHERE {where} = ?", (value,))
        return None if row is None else _user(row)

    def get(self, user_id: str) -> UserRecord | None:
        return self._one("user_id", user_id)

    def by_name(self, username: str) -> UserRecord | None:
        return self._one("username", username)

    def list(self) -> list[UserRecord]:
        with self._db.transaction(readonly=True) as tx:
            rows = tx.fetchall(f"SELECT {_USER_COLS} FROM users ORDER BY username")
        return [_user(r) for r in rows]

    def _update(self, sql: str, params: Params) -> int:
        with self._db.transaction() as tx:
            return tx.execute(sql, params)

    def set_password(self, user_id: str, password_hash: str, at_ms: int) -> None:
        self._update(
            "UPDATE users SET password_hash = ?, password_ms = ? WHERE user_id = ?",
            (password_hash, at_ms, user_id),
        )

    def set_disabled(self, user_id: str, at_ms: int | None) -> None:
        self._update("UPDATE users SET disabled_ms = ? WHERE user_id = ?", (at_ms, user_id))

    def set_totp(self, user_id: str, sealed_secret: str | None) -> None:
        self._update(
            "UPDATE users SET totp_secret = ?, totp_last_step = NULL WHERE user_id = ?",
            (sealed_secret, user_id),
        )

    def claim_totp_step(self, user_id: str, step: int) -> bool:
        n = self._update(
            "UPDATE users SET totp_last_step = ? "
            "WHERE user_id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)",
            (step, user_id, step),
        )
        return n > 0


class SqlSessionRepository:
    """:class:`sharpeyes.api.rest.auth.accounts.SessionRepository` over the store's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _write(self, sql: str, params: Params) -> int:
        with self._db.transaction() as tx:
            return tx.execute(sql, params)

    def insert(self, record: SessionRecord) -> None:
        self._write(
            f"INSERT INTO user_sessions ({_SESSION_COLS}) VALUES (?,?,?,?,?,?,?,?)",
            (
                record.session_id,
                record.user_id,
                record.secret_hash,
                record.created_ms,
                record.last_seen_ms,
                record.expires_ms,
                record.ended_ms,
                record.client,
            ),
        )

    def get(self, session_id: str) -> SessionRecord | None:
        with self._db.transaction(readonly=True) as tx:
            row = tx.fetchone(
                f"SELECT {_SESSION_COLS} FROM user_sessions WHERE session_id = ?", (session_id,)
            )
        return None if row is None else _session(row)

    def touch(self, session_id: str, at_ms: int) -> None:
        self._write(
            "UPDATE user_sessions SET last_seen_ms = ? WHERE session_id = ? AND last_seen_ms < ?",
            (at_ms, session_id, at_ms),
        )

    def end(self, session_id: str, at_ms: int) -> bool:
        n = self._write(
            "UPDATE user_sessions SET ended_ms = ? WHERE session_id = ? AND ended_ms IS NULL",
            (at_ms, session_id),
        )
        return n > 0

    def end_for_user(self, user_id: str, at_ms: int) -> int:
        return self._write(
            "UPDATE user_sessions SET ended_ms = ? WHERE user_id = ? AND ended_ms IS NULL",
            (at_ms, user_id),
        )

    def prune(self, before_ms: int) -> int:
        return self._write(
            "DELETE FROM user_sessions WHERE expires_ms < ? OR ended_ms < ?",
            (before_ms, before_ms),
        )
