"""Camera leases with an epoch fencing token, fenced commits and the uploader lease (SQL only).

Correctness comes from the database, not from the engine (``docs/SCALE_OUT.md`` §2.3):

* :meth:`LeaseStore.grant` is the reassignment — ``epoch = epoch + 1, owner = :w`` plus a lease
  row, in one transaction, *before* the worker is told. Any older owner is fenced from then on.
* :meth:`LeaseStore.commit` writes a batch of events, their outbox rows, the commit-log row and
  the new camera position in one transaction (the store's one write path), and only while the
  caller's epoch is the current one and its previous position is the stored one; otherwise it
  raises :class:`StaleLeaseError` and nothing is written (the rejection itself is logged in a
  transaction of its own).
* :class:`UploaderLease` fences the GA/T 1400 uploader: ``acquire`` bumps the shard's epoch and
  :meth:`UploaderLease.check` runs before every POST, so a zombie uploader sends at most the one
  batch that was in flight when it froze.

On PostgreSQL the camera row is locked ``FOR UPDATE``; sessions carry ``lock_timeout`` and
``idle_in_transaction_session_timeout`` (see ``api.store.db``) so a frozen owner holding the row
cannot block its successor for long.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sharpeyes.api.store.db import Connection, Database, Row
from sharpeyes.api.store.events import FencedError, WriteGroup, write_groups
from sharpeyes.api.store.migrate import migrate
from sharpeyes.pipeline.clock import now_ms
from sharpeyes.pipeline.errors import StoreError
from sharpeyes.pipeline.types import Event

log = logging.getLogger(__name__)


class StaleLeaseError(FencedError):
    """A commit or POST came from an owner whose epoch is no longer the current one."""


class UnknownCameraError(StoreError, LookupError):
    """No camera with that id is in the desired set."""


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """A camera of the desired set: its placement cost (GPU-benchmark units, 1080p25 = 1.0),
    an optional Ray custom resource it needs (``zone_a``), the program kind and its config."""

    camera_id: str
    cost: float = 1.0
    resource: str | None = None
    kind: str = "synthetic"
    config: str = "{}"


@dataclass(frozen=True, slots=True)
class CameraRow:
    spec: CameraSpec
    desired: bool
    epoch: int
    owner: str | None
    pos: int
    last_commit_ms: int | None


@dataclass(frozen=True, slots=True)
class Lease:
    """What a worker holds for one camera: the epoch it was granted and where to resume."""

    camera_id: str
    epoch: int
    owner: str
    pos: int


@dataclass(frozen=True, slots=True)
class WorkerRow:
    name: str
    node: str
    capacity: float
    state: str


@dataclass(frozen=True, slots=True)
class CommitRow:
    camera_id: str
    from_pos: int
    to_pos: int
    epoch: int
    committed_ms: int


_CAMERA_COLS = "camera_id, cost, resource, kind, config, desired, epoch, owner, pos, last_commit_ms"


def _camera(row: Row) -> CameraRow:
    spec = CameraSpec(str(row[0]), float(row[1]), row[2], str(row[3]), str(row[4]))
    return CameraRow(
        spec=spec,
        desired=bool(row[5]),
        epoch=int(row[6]),
        owner=row[7],
        pos=int(row[8]),
        last_commit_ms=None if row[9] is None else int(row[9]),
    )


class LeaseStore:
    """The cluster tables of one :class:`~sharpeyes.api.store.db.Database` (migrated on open)."""

    def __init__(self, db: Database, *, ensure_schema: bool = True) -> None:
        self.db = db
        if ensure_schema:
            migrate(db)

    def _lock(self) -> str:
        return " FOR UPDATE" if self.db.backend == "postgres" else ""

    # --- desired set ---------------------------------------------------------------------

    def put_camera(self, spec: CameraSpec) -> None:
        """Add a camera to the desired set, or update its spec (keeps epoch, owner, position)."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO cluster_cameras (camera_id, cost, resource, kind, config, desired, "
                "updated_ms) VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT (camera_id) DO UPDATE SET "
                "cost = excluded.cost, resource = excluded.resource, kind = excluded.kind, "
                "config = excluded.config, desired = 1, updated_ms = excluded.updated_ms",
                (spec.camera_id, spec.cost, spec.resource, spec.kind, spec.config, now_ms()),
            )

    def remove_camera(self, camera_id: str) -> int:
        """Take a camera out of the desired set and fence its owner; returns the new epoch.

        Raises:
            UnknownCameraError: no such camera.
        """
        with self.db.transaction() as conn:
            n = conn.execute(
                "UPDATE cluster_cameras SET desired = 0, owner = NULL, epoch = epoch + 1, "
                "updated_ms = ? WHERE camera_id = ?",
                (now_ms(), camera_id),
            )
            if n == 0:
                raise UnknownCameraError(f"no camera {camera_id!r} in the cluster")
            row = conn.fetchone(
                "SELECT epoch FROM cluster_cameras WHERE camera_id = ?", (camera_id,)
            )
        assert row is not None
        return int(row[0])

    def cameras(self) -> list[CameraRow]:
        with self.db.transaction(readonly=True) as conn:
            rows = conn.fetchall(f"SELECT {_CAMERA_COLS} FROM cluster_cameras ORDER BY camera_id")
        return [_camera(r) for r in rows]

    def camera(self, camera_id: str) -> CameraRow | None:
        with self.db.transaction(readonly=True) as conn:
            row = conn.fetchone(
                f"SELECT {_CAMERA_COLS} FROM cluster_cameras WHERE camera_id = ?", (camera_id,)
            )
        return None if row is None else _camera(row)

    # --- leases --------------------------------------------------------------------------

    def grant(self, camera_id: str, owner: str | None, *, expect_epoch: int | None = None) -> Lease:
        """Bump the camera's epoch and give it to ``owner`` (None: unassigned, still fenced).

        ``expect_epoch`` makes the grant conditional (a coordinator acting on a stale view).

        Raises:
            UnknownCameraError: no such camera.
            StaleLeaseError: ``expect_epoch`` is not the current epoch.
        """
        now = now_ms()
        with self.db.transaction() as conn:
            row = conn.fetchone(
                f"SELECT epoch, pos FROM cluster_cameras WHERE camera_id = ?{self._lock()}",
                (camera_id,),
            )
            if row is None:
                raise UnknownCameraError(f"no camera {camera_id!r} in the cluster")
            if expect_epoch is not None and int(row[0]) != expect_epoch:
                raise StaleLeaseError(f"camera {camera_id}: epoch moved past {expect_epoch}")
            epoch, pos = int(row[0]) + 1, int(row[1])
            conn.execute(
                "UPDATE cluster_cameras SET epoch = ?, owner = ?, updated_ms = ? "
                "WHERE camera_id = ?",
                (epoch, owner, now, camera_id),
            )
            conn.execute(
                "INSERT INTO cluster_leases (camera_id, epoch, owner, granted_ms, start_pos) "
                "VALUES (?, ?, ?, ?, ?)",
                (camera_id, epoch, owner, now, pos),
            )
        return Lease(camera_id, epoch, owner or "", pos)

    def first_grant_ms(self, camera_id: str) -> int | None:
        """When the camera was first granted (epoch 1): a clock origin every owner agrees on."""
        with self.db.transaction(readonly=True) as conn:
            row = conn.fetchone(
                "SELECT granted_ms FROM cluster_leases WHERE camera_id = ? ORDER BY epoch LIMIT 1",
                (camera_id,),
            )
        return None if row is None else int(row[0])

    def current(self, camera_id: str) -> Lease | None:
        """The camera's current lease (owner '' when unassigned), or None for no camera."""
        row = self.camera(camera_id)
        return None if row is None else Lease(camera_id, row.epoch, row.owner or "", row.pos)

    def commit(
        self,
        lease: Lease,
        new_pos: int,
        events: Sequence[Event] = (),
        *,
        files_root: Path | None = None,
        outbox_destinations: Sequence[str] = (),
        device_id: str | None = None,
        feed: bool = False,
    ) -> Lease:
        """Commit ``events`` for positions ``lease.pos+1 .. new_pos`` while ``lease`` is current.

        Goes through the store's one write path
        (:func:`~sharpeyes.api.store.events.write_groups`): crops (if ``files_root`` is a
        :class:`~pathlib.Path`) are written durably first; then one transaction checks the lease,
        advances the position, inserts the events (duplicates ignored, and given no outbox or
        feed rows) with evidence paths relative to ``files_root``. Returns the lease moved to
        ``new_pos``.

        Raises:
            StaleLeaseError: the epoch is no longer current or the position moved; nothing is
                written.
            StoreError: the database failed; nothing is committed.
        """
        if new_pos <= lease.pos:
            raise StoreError(f"camera {lease.camera_id}: new position {new_pos} <= {lease.pos}")
        now = now_ms()

        def check_and_advance(conn: Connection) -> None:
            self._check_current(conn, lease)
            self._advance(conn, lease, new_pos, now)

        group = WriteGroup(tuple(events), tuple(outbox_destinations), device_id, feed)
        try:
            write_groups(self.db, files_root, [group], extra=check_and_advance, now_ms=now)
        except StaleLeaseError:
            self._log_rejection(lease)
            raise
        return Lease(lease.camera_id, lease.epoch, lease.owner, new_pos)

    def _check_current(self, conn: Connection, lease: Lease) -> None:
        row = conn.fetchone(
            f"SELECT epoch, pos, owner FROM cluster_cameras WHERE camera_id = ?{self._lock()}",
            (lease.camera_id,),
        )
        if row is None:
            raise StaleLeaseError(f"camera {lease.camera_id} is no longer in the cluster")
        epoch, pos = int(row[0]), int(row[1])
        if epoch != lease.epoch:
            raise StaleLeaseError(
                f"camera {lease.camera_id}: epoch {lease.epoch} fenced by epoch {epoch}"
            )
        if pos != lease.pos:
            raise StaleLeaseError(
                f"camera {lease.camera_id}: position {pos} is not the expected {lease.pos}"
            )

    @staticmethod
    def _advance(conn: Connection, lease: Lease, new_pos: int, now: int) -> None:
        conn.execute(
            "INSERT INTO cluster_commits (camera_id, from_pos, to_pos, epoch, committed_ms) "
            "VALUES (?, ?, ?, ?, ?)",
            (lease.camera_id, lease.pos + 1, new_pos, lease.epoch, now),
        )
        conn.execute(
            "UPDATE cluster_cameras SET pos = ?, last_commit_ms = ? WHERE camera_id = ?",
            (new_pos, now, lease.camera_id),
        )
        conn.execute(
            "UPDATE cluster_leases SET first_commit_ms = COALESCE(first_commit_ms, ?), "
            "last_commit_ms = ? WHERE camera_id = ? AND epoch = ?",
            (now, now, lease.camera_id, lease.epoch),
        )
        conn.execute(
            "INSERT INTO stream_positions (stream_id, seq, pts, epoch, updated_ms) "
            "VALUES (?, ?, 0, ?, ?) ON CONFLICT (stream_id) DO UPDATE SET seq = excluded.seq, "
            "epoch = excluded.epoch, updated_ms = excluded.updated_ms",
            (lease.camera_id, new_pos, lease.epoch, now),
        )

    def _log_rejection(self, lease: Lease) -> None:
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO cluster_rejections (camera_id, stale_epoch, owner, at_ms) "
                    "VALUES (?, ?, ?, ?)",
                    (lease.camera_id, lease.epoch, lease.owner, now_ms()),
                )
        except StoreError as e:  # the rejection stands; only its audit row is lost
            log.warning("could not log rejection of %s@%s: %s", lease.camera_id, lease.epoch, e)

    # --- evidence for tests, health and benchmarks ---------------------------------------

    def commits(self, camera_id: str | None = None) -> list[CommitRow]:
        sql = "SELECT camera_id, from_pos, to_pos, epoch, committed_ms FROM cluster_commits"
        params: tuple[str, ...] = ()
        if camera_id is not None:
            sql, params = sql + " WHERE camera_id = ?", (camera_id,)
        with self.db.transaction(readonly=True) as conn:
            rows = conn.fetchall(sql + " ORDER BY camera_id, from_pos", params)
        return [CommitRow(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]

    def rejections(self) -> list[tuple[str, int, str | None, int]]:
        with self.db.transaction(readonly=True) as conn:
            rows = conn.fetchall(
                "SELECT camera_id, stale_epoch, owner, at_ms FROM cluster_rejections ORDER BY id"
            )
        return [(str(r[0]), int(r[1]), r[2], int(r[3])) for r in rows]

    # --- workers -------------------------------------------------------------------------

    def register_worker(
        self, name: str, node: str, capacity: float, state: str = "pending"
    ) -> None:
        """Record a new worker name. Raises StoreIntegrityError if the name was ever used."""
        now = now_ms()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO cluster_workers (name, node, capacity, state, created_ms, updated_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, node, capacity, state, now, now),
            )

    def set_worker_state(self, name: str, state: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE cluster_workers SET state = ?, updated_ms = ? WHERE name = ?",
                (state, now_ms(), name),
            )

    def workers(self, *, include_dead: bool = False) -> list[WorkerRow]:
        cond = "" if include_dead else " WHERE state <> 'dead'"
        with self.db.transaction(readonly=True) as conn:
            rows = conn.fetchall(
                f"SELECT name, node, capacity, state FROM cluster_workers{cond} ORDER BY name"
            )
        return [WorkerRow(str(r[0]), str(r[1]), float(r[2]), str(r[3])) for r in rows]

    def worker_name_used(self, name: str) -> bool:
        with self.db.transaction(readonly=True) as conn:
            return (
                conn.fetchone("SELECT 1 FROM cluster_workers WHERE name = ?", (name,)) is not None
            )


class UploaderLease:
    """The uploader's own fence: one epoch per outbox shard, checked before every POST."""

    def __init__(self, db: Database, shard: str, holder: str) -> None:
        self.db = db
        self.shard = shard
        self.holder = holder
        self.epoch: int | None = None

    def acquire(self) -> int:
        """Take the shard over (fencing any previous holder); returns the new epoch."""
        now = now_ms()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO uploader_leases (shard, epoch, holder, granted_ms) "
                "VALUES (?, 1, ?, ?) "
                "ON CONFLICT (shard) DO UPDATE SET epoch = uploader_leases.epoch + 1, "
                "holder = excluded.holder, granted_ms = excluded.granted_ms",
                (self.shard, self.holder, now),
            )
            row = conn.fetchone("SELECT epoch FROM uploader_leases WHERE shard = ?", (self.shard,))
        assert row is not None
        self.epoch = int(row[0])
        log.info("uploader %s holds shard %s at epoch %d", self.holder, self.shard, self.epoch)
        return self.epoch

    def check(self) -> None:
        """Raise :class:`StaleLeaseError` unless this holder's epoch is still the current one."""
        with self.db.transaction(readonly=True) as conn:
            row = conn.fetchone("SELECT epoch FROM uploader_leases WHERE shard = ?", (self.shard,))
        current = None if row is None else int(row[0])
        if self.epoch is None or current != self.epoch:
            raise StaleLeaseError(
                f"uploader {self.holder}: shard {self.shard} epoch {self.epoch} "
                f"fenced by epoch {current}"
            )
