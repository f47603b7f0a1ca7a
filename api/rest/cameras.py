"""Cameras managed at run time: a registry (memory + optional SQL) and the controller protocol.

The runner implements :class:`CameraController`; the registry calls it after each accepted
change, so a camera added through the API starts analysing without a restart. RTSP credentials
are kept only here and in the store, where the URL is encrypted (AES-256-GCM with a key derived
from the installation key) — :func:`mask_url` hides them in every response and log.

Source URLs are allow-listed (:func:`sharpeyes.streams.urls.check_source_url`): rtsp/rtsps, or
video files under the configured media roots. Cameras defined in the config file are read-only
through the API (409): the file is their source of truth, and API changes to them would be lost
on restart. Controller calls (which may block while a source opens) run outside the registry
lock, so listing cameras never waits for them.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from sharpeyes.api.rest.errors import ConflictError, InvalidRequestError, NotFoundError
from sharpeyes.api.store.db import Database
from sharpeyes.pipeline import clock
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.streams.urls import MASK, SourceUrlError, check_source_url
from sharpeyes.streams.urls import mask_url as _mask_url

logger = logging.getLogger(__name__)

__all__ = ["MASK", "CameraRegistry", "CredentialBox", "mask_url", "restore_masked_url"]
_ENC_PREFIX = "enc:v1:"
OP_WAIT_S = 2.0


def mask_url(url: str | None) -> str | None:
    """Hide the password of ``rtsp://user:pass@host/…`` and secret query parameters."""
    return _mask_url(url)


def restore_masked_url(new: str | None, old: str | None) -> str | None:
    """Keep the stored secret when a client sends back the masked URL unchanged."""
    if new is not None and old is not None and MASK in new and mask_url(old) == new:
        return old
    return new


class ConfigDefinedError(ConflictError):
    """The camera comes from the config file; change it there."""


class CredentialBox:
    """AES-256-GCM for camera URLs at rest; ``key`` is 32 bytes derived from the install key."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise ValueError("the credential key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, text: str, context: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, text.encode(), context.encode())
        return _ENC_PREFIX + base64.urlsafe_b64encode(nonce + ct).decode()

    def open(self, value: str, context: str) -> str:
        if not value.startswith(_ENC_PREFIX):
            return value  # a row written before encryption (re-sealed on its next save)
        raw = base64.urlsafe_b64decode(value[len(_ENC_PREFIX) :])
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()


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
    rolls the registry back and re-raises. ``seed`` cameras (the config file) are read-only
    here. ``file_roots`` are the folders API-added file cameras may read from (none: only
    rtsp/rtsps). ``secret_key`` (32 bytes) encrypts the stored URLs.
    """

    def __init__(
        self,
        controller: CameraController | None = None,
        db: Database | None = None,
        seed: Iterable[CameraConfig] = (),
        *,
        file_roots: Sequence[Path] = (),
        secret_key: bytes | None = None,
    ) -> None:
        self._controller: CameraController = controller or NullCameraController()
        self._db = db
        self._lock = threading.RLock()  # guards the dicts only; never held over controller calls
        self._ops: dict[str, threading.Lock] = {}
        self._cams: dict[str, CameraEntry] = {}
        self._config_ids: frozenset[str] = frozenset()
        self.file_roots = tuple(file_roots)
        self._box = CredentialBox(secret_key) if secret_key else None
        now = clock.now_ms()
        seeded = []
        for cfg in seed:
            if cfg.url is not None:
                try:
                    # config cameras: the protocol allow-list always, the folder only if set
                    check_source_url(cfg.url, file_roots=self.file_roots or (Path("/"),))
                except SourceUrlError as e:
                    raise ConfigError(f"camera {cfg.id}: {e}") from e
            self._cams[cfg.id] = CameraEntry(cfg, True, now, now)
            seeded.append(cfg.id)
        self._config_ids = frozenset(seeded)
        self._reload()

    def set_controller(self, controller: CameraController) -> None:
        self._controller = controller

    def set_secret_key(self, key: bytes) -> None:
        """Encrypt stored URLs with ``key`` from now on (rows are re-read and re-sealed)."""
        self._box = CredentialBox(key)
        self._reload(reseal=True)

    def is_config_defined(self, camera_id: str) -> bool:
        return camera_id in self._config_ids

    def all(self) -> list[CameraEntry]:
        with self._lock:
            return [self._cams[k] for k in sorted(self._cams)]

    def device_ids(self) -> frozenset[str]:
        """The GA/T 1400 device ids of the cameras it has now (config and API, running or
        stopped): what a subscription's ResourceURI may name (asked at every subscription)."""
        with self._lock:
            return frozenset(e.config.device_id for e in self._cams.values())

    def get(self, camera_id: str) -> CameraEntry:
        with self._lock:
            entry = self._cams.get(camera_id)
        if entry is None:
            raise NotFoundError(f"camera {camera_id!r} not found")
        return entry

    # -- changes ---------------------------------------------------------------------------------

    @contextmanager
    def _op(self, camera_id: str) -> Iterator[None]:
        """Serialise changes of one camera; a change stuck in the controller makes others 409."""
        with self._lock:
            lock = self._ops.setdefault(camera_id, threading.Lock())
        if not lock.acquire(timeout=OP_WAIT_S):
            raise ConflictError(f"camera {camera_id!r} is busy with another change; retry")
        try:
            yield
        finally:
            lock.release()

    def _writable(self, camera_id: str) -> CameraEntry:
        entry = self.get(camera_id)
        if camera_id in self._config_ids:
            raise ConfigDefinedError(
                f"camera {camera_id!r} is defined in the config file: change it there "
                "(API changes to it would be lost on restart)"
            )
        return entry

    def validate_url(self, url: str | None) -> None:
        """Raise :class:`InvalidRequestError` unless ``url`` is an allowed camera source."""
        if url is None:
            return
        try:
            check_source_url(url, file_roots=self.file_roots)
        except SourceUrlError as e:
            raise InvalidRequestError(str(e)) from e

    def create(self, config: CameraConfig) -> CameraEntry:
        self.validate_url(config.url)
        with self._op(config.id):
            with self._lock:
                if config.id in self._cams:
                    raise ConflictError(f"camera {config.id!r} already exists")
            now = clock.now_ms()
            entry = CameraEntry(config, True, now, now)
            self._save(entry)
            try:
                self._controller.add(config)
            except Exception:
                self._delete_row(config.id)
                raise
            with self._lock:
                self._cams[config.id] = entry
            return entry

    def update(self, config: CameraConfig) -> CameraEntry:
        with self._op(config.id):
            old = self._writable(config.id)
            if config.url is None and old.config.url is not None:
                raise InvalidRequestError("a camera's url cannot be removed")
            self.validate_url(config.url)
            entry = replace(old, config=config, updated_ms=clock.now_ms())
            self._save(entry)
            try:
                self._controller.update(config)
            except Exception:
                self._save(old)
                self._restore(old.config)
                raise
            with self._lock:
                self._cams[config.id] = entry
            return entry

    def _restore(self, config: CameraConfig) -> None:
        """After a failed update, put the old pipeline back rather than leave it stopped."""
        try:
            self._controller.update(config)
        except Exception:
            logger.exception("camera %s: could not restore the previous config", config.id)

    def delete(self, camera_id: str) -> None:
        with self._op(camera_id):
            self._writable(camera_id)
            self._controller.remove(camera_id)
            self._delete_row(camera_id)
            with self._lock:
                self._cams.pop(camera_id, None)

    def set_enabled(self, camera_id: str, enabled: bool) -> CameraEntry:
        with self._op(camera_id):
            entry = replace(self._writable(camera_id), enabled=enabled, updated_ms=clock.now_ms())
            if enabled:
                self._controller.start(camera_id)
            else:
                self._controller.stop(camera_id)
            self._save(entry)
            with self._lock:
                self._cams[camera_id] = entry
            return entry

    # -- persistence -------------------------------------------------------------------------

    def _reload(self, *, reseal: bool = False) -> None:
        for entry in self._load():
            cid = entry.config.id
            if cid in self._config_ids:
                logger.warning(
                    "camera %s: the config file defines it; its stored API copy is ignored", cid
                )
                continue
            with self._lock:
                self._cams[cid] = entry
            if reseal:
                self._save(entry)

    def _load(self) -> list[CameraEntry]:
        if self._db is None:
            return []
        with self._db.transaction(readonly=True) as tx:
            rows = tx.fetchall(
                "SELECT config, enabled, created_ms, updated_ms FROM api_cameras ORDER BY camera_id"
            )
        out = []
        for cfg_json, enabled, created, updated in rows:
            data: dict[str, Any] = json.loads(cfg_json)
            url = data.get("url")
            if isinstance(url, str) and url.startswith(_ENC_PREFIX):
                if self._box is None:
                    logger.warning("camera %s: its url is encrypted; no key yet", data.get("id"))
                    continue
                try:
                    data["url"] = self._box.open(url, str(data.get("id")))
                except Exception:
                    logger.error("camera %s: cannot decrypt its url (key changed?)", data.get("id"))
                    continue
            cfg = CameraConfig.model_validate(data)
            out.append(CameraEntry(cfg, bool(enabled), int(created), int(updated)))
        return out

    def _config_json(self, config: CameraConfig) -> str:
        data = config.model_dump(mode="json")
        if self._box is not None and isinstance(data.get("url"), str):
            data["url"] = self._box.seal(data["url"], config.id)
        return json.dumps(data, ensure_ascii=False)

    def _save(self, entry: CameraEntry) -> None:
        if self._db is None:
            return
        cfg_json = self._config_json(entry.config)
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
