"""Store test fixtures: ``db_url`` runs a test on SQLite and on a real PostgreSQL.

``pg_server`` (session) uses ``SHARPEYES_PG_URL`` when set (CI: ``scripts/start-postgres.sh``),
else starts a throwaway cluster with ``initdb``/``pg_ctl`` on a free 127.0.0.1 port in a temp
dir — as the ``postgres`` OS user when run as root — and stops it at the end. Each test gets a
fresh database on it. Without PostgreSQL binaries the postgres cases skip, or fail when
``SHARPEYES_REQUIRE_ALL=1``.

Use from a test module: ``from _pg_fixtures import db_url, pg_server  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest


def _missing(reason: str) -> None:
    if os.environ.get("SHARPEYES_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason} (SHARPEYES_REQUIRE_ALL=1)")
    pytest.skip(reason)


def find_pg_bindir() -> Path | None:
    """Directory with ``initdb`` and ``pg_ctl`` (Debian: /usr/lib/postgresql/NN/bin)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    """A throwaway PostgreSQL cluster owned by the test session."""

    bindir: Path
    datadir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def _as_owner(cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def _run(self, cmd: list[str]) -> None:
        proc = subprocess.run(
            self._as_owner(cmd), capture_output=True, text=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    @classmethod
    def start(cls, bindir: Path) -> PgCluster:
        root = Path(tempfile.mkdtemp(prefix="sharpeyes-pg-"))
        datadir = root / "data"
        datadir.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
            shutil.chown(datadir, "postgres")
        cluster = cls(bindir, datadir, _free_port())
        cluster._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(datadir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
        opts = (
            f"-k {datadir} -p {cluster.port} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off -c max_connections=100"
        )
        cluster._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(datadir),
                "-l",
                str(datadir / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                opts,
                "start",
            ]
        )
        return cluster

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            pg_ctl = str(self.bindir / "pg_ctl")
            self._run([pg_ctl, "-D", str(self.datadir), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a PostgreSQL server where the tests may create databases."""
    env_url = os.environ.get("SHARPEYES_PG_URL")
    if env_url:
        yield env_url
        return
    bindir = find_pg_bindir()
    if bindir is None:
        _missing("PostgreSQL server binaries not found (apt-get install -y postgresql)")
    assert bindir is not None
    cluster = PgCluster.start(bindir)
    try:
        yield cluster.url
    finally:
        cluster.stop()


def _with_db(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


@contextlib.contextmanager
def fresh_pg_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the server; drop it afterwards (closing its sessions)."""
    import psycopg

    name = f"sharpeyes_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store database: SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    server: str = request.getfixturevalue("pg_server")
    with fresh_pg_database(server) as url:
        yield url
