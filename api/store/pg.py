"""PostgreSQL backend of :mod:`api.store.db` (psycopg 3): one connection per thread, re-opened
after a drop, statements translated from ``?`` placeholders."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.types.string import TextLoader

from sharpeyes.api.store.db import (
    PG_CONNECT_TIMEOUT_S,
    PG_IDLE_IN_TX_TIMEOUT_MS,
    PG_LOCK_TIMEOUT_MS,
    Backend,
    Connection,
    Database,
    OpenConnections,
    Params,
    Row,
    StoreIntegrityError,
    StoreUnavailableError,
    committed,
    qmark_to_pyformat,
)
from sharpeyes.pipeline.errors import StoreError

log = logging.getLogger(__name__)


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _one_line(e: psycopg.Error) -> str:
    text = (e.diag.message_primary if e.diag is not None else None) or str(e)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _wrap_pg_error(e: psycopg.Error, sql: str) -> StoreError:
    first = " ".join(sql.split())[:80]
    if isinstance(e, psycopg.OperationalError) and not isinstance(e, pg_errors.QueryCanceled):
        return StoreUnavailableError(f"store connection failed: {_one_line(e)}")
    if isinstance(e, pg_errors.LockNotAvailable | pg_errors.SerializationFailure):
        return StoreUnavailableError(f"store is busy: {_one_line(e)}")
    if isinstance(e, psycopg.IntegrityError | pg_errors.RaiseException):
        return StoreIntegrityError(f"store constraint failed: {_one_line(e)} (in: {first})")
    return StoreError(f"store query failed: {_one_line(e)} (in: {first})")


class _PgConnection:
    backend: Backend = "postgres"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def _run(self, sql: str, params: Params) -> psycopg.Cursor[Any]:
        try:
            if params:
                return self._conn.execute(qmark_to_pyformat(sql), tuple(params))
            return self._conn.execute(sql)
        except psycopg.Error as e:
            raise _wrap_pg_error(e, sql) from e

    def execute(self, sql: str, params: Params = ()) -> int:
        return self._run(sql, params).rowcount

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        row = self._run(sql, params).fetchone()
        return None if row is None else tuple(row)

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return [tuple(r) for r in self._run(sql, params).fetchall()]

    def executescript(self, script: str) -> None:
        self._run(script, ())


class PostgresDatabase(Database):
    """PostgreSQL through psycopg 3, one connection per thread."""

    backend: Backend = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._conns: OpenConnections[psycopg.Connection[Any]] = OpenConnections(psycopg.Error)
        self._closed = False
        self._conn()  # fail early with a clear message

    def _open(self) -> psycopg.Connection[Any]:
        options = (
            f"-c lock_timeout={PG_LOCK_TIMEOUT_MS} "
            f"-c idle_in_transaction_session_timeout={PG_IDLE_IN_TX_TIMEOUT_MS}"
        )
        try:
            conn = psycopg.connect(
                self.url,
                connect_timeout=PG_CONNECT_TIMEOUT_S,
                options=options,
                application_name="sharpeyes",
                autocommit=True,  # BEGIN/COMMIT are issued by transaction()
            )
        except psycopg.Error as e:
            msg = _one_line(e)
            raise StoreUnavailableError(f"cannot open store {redact_url(self.url)}: {msg}") from e
        # JSON columns come back as text on both backends.
        conn.adapters.register_loader("jsonb", TextLoader)
        conn.adapters.register_loader("json", TextLoader)
        return self._conns.add(conn)

    def _drop(self, conn: psycopg.Connection[Any]) -> None:
        self._conns.drop(conn)
        self._local.conn = None

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and (conn.closed or conn.broken):
            log.warning("store connection to %s was dropped; reconnecting", redact_url(self.url))
            self._drop(conn)
            conn = None
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _begin(self, readonly: bool) -> psycopg.Connection[Any]:
        """BEGIN on this thread's connection; a connection found dropped is replaced once."""
        begin = "BEGIN READ ONLY" if readonly else "BEGIN"
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.execute(begin)
                return conn
            except psycopg.OperationalError as e:
                self._drop(conn)
                if attempt == 2:
                    raise _wrap_pg_error(e, begin) from e
                log.warning("store connection lost (%s); reconnecting", _one_line(e))
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Connection]:
        if self._closed:
            raise StoreError(f"store {redact_url(self.url)} is closed")
        conn = self._begin(readonly)
        with committed(conn, psycopg.Error, _wrap_pg_error):
            yield _PgConnection(conn)

    def close(self) -> None:
        self._closed = True
        self._conns.close_all()
