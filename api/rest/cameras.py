"""Cameras managed at run time: a registry (memory + optional SQL) and the controller protocol.

The runner implements :class:`CameraController`; the registry calls it after each accepted
change, so a camera added through the API starts analysing without a restart. RTSP credentials
are kept only here and in the store — :func:`mask_url` hides them in every response and log.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sharpeyes.api.rest.errors import ConflictError, NotFoundError
from sharpeyes.api.store.db import Database
from sharpeyes.pipeline.config import CameraConfig

logger = logging.getLogger(__name__)

MASK = "***"
_SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "pass", "token", "secret", "key"})


def mask_url(url: str | None) -> str | None:
    """Hide the password of ``rtsp://user:pass@host/…`` and secret query parameters."""
    if not url or "://" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}" if ":" in userinfo else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        masked = [(k, MASK if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs]
        query = urlencode(masked, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def restore_masked_url(new: str | None, old: str | None) -> str | None:
    """Keep the stored secret when a client sends back the masked URL unchanged."""
    if new is not None and old is not None and MASK in new and mask_url(old) == new:
        return old
    return new


class CameraController(Protocol):
    """What the runner implements so that API changes reach the running pipeline."""

    def add(self, config: CameraConfig) -> None: ...

    def update(self, config: CameraConfig) -> None: ...

    def remove(self, camera_id: str) -> None: ...

    def start(self, camera_id: str) -> None: ...

    def stop(self, camera_id: str) -> None: ...


class NullCameraController:
    """Controller for a service without a pipeline (tests, API-only deployments)."""

    def add(self, config: CameraConfig) -> None:
        logger.debug("camera %s added (no pipeline)", config.id)

    def update(self, config: CameraConfig) -> None:
        logger.debug("camera %s updated (no pipeline)", config.id)

    def remove(self, camera_id: str) -> None:
        logger.debug("camera %s removed (no pipeline)", camera_id)

    def start(self, camera_id: str) -> None:
        logger.debug("camera %s start (no pipeline)", camera_id)

    def stop(self, camera_id: str) -> None:
        logger.debug("camera %s stop (no pipeline)", camera_id)


@dataclass(frozen=True, slots=True)
class CameraEntry:
    config: CameraConfig
    enabled: bool
    created_ms: int
    updated_ms: int


class CameraRegistry:
    """The set of cameras; persisted in ``api_cameras`` when a database is given.

    Every change is validated, persisted, then handed to the controller; a controller failure
    rolls the registry back and re-raises.
    """

    def __init__(
        self,
        controller: CameraController | None = None,
        db: Database | None = None,
        seed: Iterable[CameraConfig] = (),
    ) -> None:
        self._controller: CameraController = controller or NullCameraController()
        self._db = db
        self._lock = threading.RLock()
        self._cams: dict[str, CameraEntry] = {}
        now = _now_ms()
        for cfg in seed:
            self._cams[cfg.id] = CameraEntry(cfg, True, now, now)
        for entry in self._load():
            self._cams[entry.config.id] = entry

    def set_controller(self, controller: CameraController) -> None:
        self._controller = controller

    def all(self) -> list[CameraEntry]:
        with self._lock:
            return [self._cams[k] for k in sorted(self._cams)]

    def get(self, camera_id: str) -> CameraEntry:
        with self._lock:
            entry = self._cams.get(camera_id)
        if entry is None:
            raise NotFoundError(f"camera {camera_id!r} not found")
        return entry

    def create(self, config: CameraConfig) -> CameraEntry:
        with self._lock:
            if config.id in self._cams:
                raise ConflictError(f"camera {config.id!r} already exists")
            now = _now_ms()
            entry = CameraEntry(config, True, now, now)
            self._save(entry)
            try:
                self._controller.add(config)
            except Exception:
                self._delete_row(config.id)
                raise
            self._cams[config.id] = entry
            return entry

    def update(self, config: CameraConfig) -> CameraEntry:
        with self._lock:
            old = self.get(config.id)
            entry = replace(old, config=config, updated_ms=_now_ms())
            self._save(entry)
            try:
                self._controller.update(config)
            except Exception:
                self._save(old)
                raise
            self._cams[config.id] = entry
            return entry

    def delete(self, camera_id: str) -> None:
        with self._lock:
            self.get(camera_id)
            self._controller.remove(camera_id)
            self._delete_row(camera_id)
            del self._cams[camera_id]

    def set_enabled(self, camera_id: str, enabled: bool) -> CameraEntry:
        with self._lock:
            entry = replace(self.get(camera_id), enabled=enabled, updated_ms=_now_ms())
            if enabled:
                self._controller.start(camera_id)
            else:
                self._controller.stop(camera_id)
            self._save(entry)
            self._cams[camera_id] = entry
            return entry

    # -- persistence -------------------------------------------------------------------------

    def _load(self) -> list[CameraEntry]:
        if self._db is None:
            return []
        with self._db.transaction(readonly=True) as tx:
            rows = tx.fetchall(
                "SELECT config, enabled, created_ms, updated_ms FROM api_cameras ORDER BY camera_id"
            )
        out = []
        for cfg_json, enabled, created, updated in rows:
            cfg = CameraConfig.model_validate(json.loads(cfg_json))
            out.append(CameraEntry(cfg, bool(enabled), int(created), int(updated)))
        return out

    def _save(self, entry: CameraEntry) -> None:
        if self._db is None:
            return
        cfg_json = entry.config.model_dump_json()
        with self._db.transaction() as tx:
            n = tx.execute(
                "UPDATE api_cameras SET config = ?, enabled = ?, updated_ms = ? "
                "WHERE camera_id = ?",
                (cfg_json, int(entry.enabled), entry.updated_ms, entry.config.id),
            )
            if n == 0:
                tx.execute(
                    "INSERT INTO api_cameras (camera_id, config, enabled, created_ms, updated_ms) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        entry.config.id,
                        cfg_json,
                        int(entry.enabled),
                        entry.created_ms,
                        entry.updated_ms,
                    ),
                )

    def _delete_row(self, camera_id: str) -> None:
        if self._db is None:
            return
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM api_cameras WHERE camera_id = ?", (camera_id,))


def _now_ms() -> int:
    return int(time.time() * 1000)
