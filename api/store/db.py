"""A tiny database layer over stdlib ``sqlite3`` and ``psycopg`` 3 — one SQL dialect, no ORM.

SQL is written once with ``?`` placeholders (qmark style) and translated for psycopg. A
:class:`Database` hands out :class:`Connection` wrappers inside :meth:`Database.transaction`;
the transaction commits when the block ends and rolls back when it raises.

SQLite (embedded default): WAL journal, ``synchronous=FULL`` by default, busy timeout, one writer
connection guarded by a lock and ``BEGIN IMMEDIATE``; read-only transactions use one connection
per thread so readers never wait for the writer (WAL). Why FULL and not NORMAL: in WAL mode both
survive a *process* kill without losing a commit, but NORMAL may roll back the last commits on a
power cut or OS crash. Roadside cabinets do lose power, every commit already follows the fsync of
its crop files, and the extra WAL fsync per batch is cheap next to that, so FULL is the default;
``?synchronous=normal`` in the URL trades that for throughput (see the report's numbers).

PostgreSQL (production): one connection per thread, opened lazily, re-opened when it was dropped
(the next transaction after a drop succeeds; the one that saw the drop fails with
:class:`StoreUnavailableError`). Sessions set ``lock_timeout`` and
``idle_in_transaction_session_timeout`` so a frozen writer cannot block its successor.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

from sharpeyes.pipeline.errors import StoreError

log = logging.getLogger(__name__)

Backend = Literal["sqlite", "postgres"]
Param = str | int | float | bytes | bool | None
Params = Sequence[Param]
Row = tuple[Any, ...]

SQLITE_BUSY_TIMEOUT_S = 10.0
PG_CONNECT_TIMEOUT_S = 5
PG_LOCK_TIMEOUT_MS = 5_000
PG_IDLE_IN_TX_TIMEOUT_MS = 60_000


class StoreUnavailableError(StoreError, ConnectionError):
    """The database could not be reached or the connection dropped; retrying may succeed."""


class StoreIntegrityError(StoreError, ValueError):
    """A statement broke a constraint or a trigger (duplicate key, append-only table)."""


class Connection(Protocol):
    """What a transaction block gets: execute SQL written with ``?`` placeholders."""

    @property
    def backend(self) -> Backend: ...

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed (-1 when unknown)."""
        ...

    def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    def executescript(self, script: str) -> None:
        """Run several statements (no parameters), inside the current transaction."""
        ...


def qmark_to_pyformat(sql: str) -> str:
    """Translate ``?`` placeholders to psycopg's ``%s``, doubling literal ``%``.

    ``?`` inside single-quoted literals, double-quoted identifiers or ``--`` comments is left
    alone. Only used when parameters are passed (psycopg does not parse a query without them).
    """
    out: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(sql):
        ch = sql[i]
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = len(sql) if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
            continue
        elif ch == "?":
            out.append("%s")
            i += 1
            continue
        out.append("%%" if ch == "%" else ch)
        i += 1
    return "".join(out)


def _wrap_sqlite_error(e: sqlite3.Error, sql: str) -> StoreError:
    first = " ".join(sql.split())[:80]
    if isinstance(e, sqlite3.IntegrityError):
        return StoreIntegrityError(f"store constraint failed: {e} (in: {first})")
    if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
        return StoreUnavailableError(f"store is busy: {e}")
    return StoreError(f"store query failed: {e} (in: {first})")


class _SqliteConnection:
    backend: Backend = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> int:
        try:
            return self._conn.execute(sql, tuple(params)).rowcount
        except sqlite3.Error as e:
            raise _wrap_sqlite_error(e, sql) from e

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        try:
            row: Row | None = self._conn.execute(sql, tuple(params)).fetchone()
        except sqlite3.Error as e:
            raise _wrap_sqlite_error(e, sql) from e
        return row

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            return list(self._conn.execute(sql, tuple(params)).fetchall())
        except sqlite3.Error as e:
            raise _wrap_sqlite_error(e, sql) from e

    def executescript(self, script: str) -> None:
        # sqlite3.executescript() would COMMIT first; split into complete statements instead.
        for stmt in split_sqlite_script(script):
            self.execute(stmt)


def split_sqlite_script(script: str) -> list[str]:
    """Split a script into complete statements (trigger bodies with inner ``;`` stay whole)."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    tail = "\n".join(ln for ln in buf.splitlines() if not ln.strip().startswith("--")).strip()
    if tail:
        raise StoreError(f"incomplete SQL statement at end of script: {tail[:60]!r}")
    return statements


@dataclass(frozen=True, slots=True)
class SqliteOptions:
    path: Path
    synchronous: str = "FULL"
    busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S


class _DriverConnection(Protocol):
    """What both drivers' connections (``sqlite3``, ``psycopg``) offer the helpers below."""

    def execute(self, sql: str, /) -> object: ...

    def close(self) -> None: ...


K = TypeVar("K", bound=_DriverConnection)
E = TypeVar("E", bound=Exception)


@contextlib.contextmanager
def committed(
    conn: _DriverConnection, errors: type[E], wrap: Callable[[E, str], StoreError]
) -> Iterator[None]:
    """COMMIT ``conn``'s open transaction when the block ends; ROLLBACK when it raises (and
    re-raise) or when the COMMIT fails (raising ``wrap`` of the driver's ``errors``). A failed
    ROLLBACK is ignored: the error that led to it is the one to report."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(errors):
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except errors as e:
        with contextlib.suppress(errors):
            conn.execute("ROLLBACK")
        raise wrap(e, "COMMIT") from e


class OpenConnections(Generic[K]):
    """Every connection a database has open (from any thread), to close them all at once."""

    def __init__(self, errors: type[Exception]) -> None:
        self._errors = errors
        self._all: list[K] = []
        self._lock = threading.Lock()

    def add(self, conn: K) -> K:
        with self._lock:
            self._all.append(conn)
        return conn

    def drop(self, conn: K) -> None:
        """Forget ``conn`` (when still known) and close it, ignoring the driver's errors."""
        with self._lock, contextlib.suppress(ValueError):
            self._all.remove(conn)
        with contextlib.suppress(self._errors):
            conn.close()

    def close_all(self) -> None:
        """Close every connection, ignoring the driver's errors."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(self._errors):
                conn.close()


class Database:
    """Base of the two backends: ``transaction()`` yields a :class:`Connection`."""

    backend: Backend
    url: str

    @contextlib.contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Connection]:
        raise NotImplementedError
        yield  # pragma: no cover

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteDatabase(Database):
    """SQLite in WAL mode: one writer connection behind a lock, one reader per thread."""

    backend: Backend = "sqlite"

    def __init__(self, options: SqliteOptions) -> None:
        self.options = options
        self.url = f"sqlite:///{options.path}"
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._conns: OpenConnections[sqlite3.Connection] = OpenConnections(sqlite3.Error)
        self._closed = False
        self._writer_owner: int | None = None
        try:
            options.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot open store {options.path}: {e.strerror or e}") from e
        self._writer = self._connect()
        self._enable_wal()

    def _enable_wal(self) -> None:
        """Switch to WAL. Several processes opening a new file at once race for it, and SQLite
        answers the loser's journal-mode change with "database is locked" without waiting on
        its busy handler: retry within the busy timeout."""
        deadline = time.monotonic() + self.options.busy_timeout_s
        delay = 0.01
        while True:
            try:
                self._writer.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                locked = "locked" in str(e) or "busy" in str(e)
                if not locked or time.monotonic() > deadline:
                    raise StoreError(f"cannot open store {self.options.path}: {e}") from e
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.options.path,
                timeout=self.options.busy_timeout_s,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout={int(self.options.busy_timeout_s * 1000)}")
            conn.execute(f"PRAGMA synchronous={self.options.synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as e:
            raise StoreError(f"cannot open store {self.options.path}: {e}") from e
        return self._conns.add(conn)

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Connection]:
        if self._closed:
            raise StoreError(f"store {self.options.path} is closed")
        if readonly:
            conn = self._reader()
            with self._begin(conn, "BEGIN"):
                yield _SqliteConnection(conn)
            return
        me = threading.get_ident()
        if self._writer_owner == me:
            raise StoreError("nested write transaction on the same thread (would deadlock)")
        with self._write_lock:
            self._writer_owner = me
            try:
                with self._begin(self._writer, "BEGIN IMMEDIATE"):
                    yield _SqliteConnection(self._writer)
            finally:
                self._writer_owner = None

    @contextlib.contextmanager
    def _begin(self, conn: sqlite3.Connection, begin: str) -> Iterator[None]:
        try:
            conn.execute(begin)
        except sqlite3.Error as e:
            raise _wrap_sqlite_error(e, begin) from e
        with committed(conn, sqlite3.Error, _wrap_sqlite_error):
            yield

    def close(self) -> None:
        self._closed = True
        self._conns.close_all()


def open_database(url: str | Path) -> Database:
    """Open ``sqlite:///path/to.db``, a plain path, or ``postgresql://…``.

    Raises:
        StoreError: the URL is not understood or the database cannot be opened.
    """
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        from sharpeyes.api.store.pg import PostgresDatabase

        return PostgresDatabase(text)
    if text.startswith("sqlite:"):
        # SQLAlchemy's convention: sqlite:///relative/path.db, sqlite:////absolute/path.db
        parts = urlsplit(text)
        path_text = text.removeprefix("sqlite:").removeprefix("//").split("?", 1)[0]
        path_text = path_text.removeprefix("/")
        query = parse_qs(parts.query)
        sync = query.get("synchronous", ["FULL"])[0].upper()
        if sync not in ("FULL", "NORMAL", "EXTRA", "OFF"):
            raise StoreError(f"cannot open store {text}: synchronous={sync} is not valid")
        if not path_text:
            raise StoreError(f"cannot open store {text}: no file path")
        return SqliteDatabase(SqliteOptions(path=Path(path_text), synchronous=sync))
    if "://" in text:
        raise StoreError(f"cannot open store {text}: use sqlite:///path or postgresql://…")
    return SqliteDatabase(SqliteOptions(path=Path(text)))
