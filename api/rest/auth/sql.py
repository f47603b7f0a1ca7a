"""SQL persistence of tokens and the auth audit (tables from migration ``0101_api_tokens``).

Token expiry lives in column ``api_tokens.expires_ms``; :class:`SqlTokenRepository` adds it to
an older table on first use (TODO: move into a store migration).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from sharpeyes.api.rest.auth.audit import AuthAction, AuthAuditRecord
from sharpeyes.api.rest.auth.tokens import Role, TokenError, TokenRecord
from sharpeyes.api.store.db import Database, Row, StoreIntegrityError
from sharpeyes.pipeline.errors import StoreError

if TYPE_CHECKING:
    from sharpeyes.api.rest.auth.sessions import SessionService

_TOKEN_COLS = "token_id, name, role, secret_hash, created_ms, revoked_ms, last_used_ms, expires_ms"
_AUDIT_COLS = "at_ms, action, token_id, name, role, client, method, path, status, detail"


def _token(row: Row) -> TokenRecord:
    return TokenRecord(
        token_id=str(row[0]),
        name=str(row[1]),
        role=Role.parse(str(row[2])),
        secret_hash=str(row[3]),
        created_ms=int(row[4]),
        revoked_ms=None if row[5] is None else int(row[5]),
        last_used_ms=None if row[6] is None else int(row[6]),
        expires_ms=None if row[7] is None else int(row[7]),
    )


class SqlTokenRepository:
    """:class:`sharpeyes.api.rest.auth.tokens.TokenRepository` over the store's database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._ensure_expiry_column()

    def _ensure_expiry_column(self) -> None:
        try:
            with self._db.transaction(readonly=True) as tx:
                tx.fetchall("SELECT expires_ms FROM api_tokens WHERE 1 = 0")
            return
        except StoreError:
            pass
        with self._db.transaction() as tx:
            tx.execute("ALTER TABLE api_tokens ADD COLUMN expires_ms BIGINT")

    def session_backend(self, hmac_key: bytes | None) -> SessionService:
        """Users and sessions in the same database (tables of migration 0430), sessions hashed
        with the token key and TOTP secrets sealed with a key derived from it."""
        from sharpeyes.api.rest.auth.sessions import SessionService
        from sharpeyes.api.rest.auth.sql_accounts import SqlSessionRepository, SqlUserRepository
        from sharpeyes.api.rest.auth.users import UserService

        sessions = SqlSessionRepository(self._db)
        users = UserService(SqlUserRepository(self._db), sessions, secret_key=hmac_key)
        return SessionService(users, sessions, hmac_key)

    def insert(self, record: TokenRecord) -> None:
        try:
            with self._db.transaction() as tx:
                tx.execute(
                    f"INSERT INTO api_tokens ({_TOKEN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.token_id,
                        record.name,
                        record.role.label,
                        record.secret_hash,
                        record.created_ms,
                        record.revoked_ms,
                        record.last_used_ms,
                        record.expires_ms,
                    ),
                )
        except StoreIntegrityError as e:
            raise TokenError(f"token id {record.token_id} exists") from e

    def get(self, token_id: str) -> TokenRecord | None:
        with self._db.transaction(readonly=True) as tx:
            row = tx.fetchone(
                f"SELECT {_TOKEN_COLS} FROM api_tokens WHERE token_id = ?", (token_id,)
            )
        return None if row is None else _token(row)

    def list(self) -> list[TokenRecord]:
        with self._db.transaction(readonly=True) as tx:
            rows = tx.fetchall(
                f"SELECT {_TOKEN_COLS} FROM api_tokens ORDER BY created_ms, token_id"
            )
        return [_token(r) for r in rows]

    def revoke(self, token_id: str, at_ms: int) -> bool:
        with self._db.transaction() as tx:
            n = tx.execute(
                "UPDATE api_tokens SET revoked_ms = ? WHERE token_id = ? AND revoked_ms IS NULL",
                (at_ms, token_id),
            )
        return n > 0

    def touch(self, token_id: str, at_ms: int) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE api_tokens SET last_used_ms = ? WHERE token_id = ?", (at_ms, token_id)
            )


class SqlAuthAuditLog:
    """Append-only :class:`sharpeyes.api.rest.auth.audit.AuthAuditLog` in table ``auth_audit``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def append(self, record: AuthAuditRecord) -> AuthAuditRecord:
        values = (
            record.at_ms,
            record.action.value,
            record.token_id,
            record.name,
            record.role,
            record.client,
            record.method,
            record.path[:512],
            record.status,
            record.detail[:512],
        )
        with self._db.transaction() as tx:
            row = tx.fetchone(
                f"INSERT INTO auth_audit ({_AUDIT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "RETURNING audit_id",
                values,
            )
        return replace(record, audit_id=int(row[0]) if row and row[0] is not None else 0)

    def recent(self, limit: int, before_id: int | None = None) -> list[AuthAuditRecord]:
        where, params = ("WHERE audit_id < ?", (before_id, limit)) if before_id else ("", (limit,))
        with self._db.transaction(readonly=True) as tx:
            rows = tx.fetchall(
                f"SELECT audit_id, {_AUDIT_COLS} FROM auth_audit {where} "
                "ORDER BY audit_id DESC LIMIT ?",
                params,
            )
        return [
            AuthAuditRecord(
                audit_id=int(r[0]),
                at_ms=int(r[1]),
                action=AuthAction(str(r[2])),
                token_id=str(r[3]),
                name=str(r[4]),
                role=str(r[5]),
                client=str(r[6]),
                method=str(r[7]),
                path=str(r[8]),
                status=int(r[9]),
                detail=str(r[10]),
            )
            for r in rows
        ]
