"""Evidence downloads: which files belong to a record, safe path resolution, signed URLs.

Only the fixed evidence names (``1.jpg 2.jpg 3.jpg plate.jpg composite.jpg clip.mp4
record.json``) and the pictures stored beside the event's crop (``crop.jpg``, ``scene.jpg`` and,
for a checkpoint read without a record, its plate picture as ``plate.jpg``) are ever served, and
only from the record's own directory under one of the configured evidence roots (the crops'
under the files root); symlinks that leave the directory are refused.
In a cluster whose workers put evidence into object storage (``cluster.storage_url``), a file
that is not under the local roots is read from there by event id and that same fixed name
(:class:`RemoteEvidence`, kept in a bounded cache folder so it is served like a local file);
a storage that cannot answer is :class:`EvidenceUnavailableError` (503), never a 404.
Signed URLs (HMAC over event id, file name, expiry and the id of the token that asked for
them) let ``<img>`` and ``<video>`` elements, which cannot send an ``Authorization`` header,
fetch evidence for a limited time — and only while that token is neither revoked nor expired.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from sharpeyes.api.cluster.storage import (
    CROP_NAME,
    PLATE_NAME,
    SCENE_NAME,
    EvidenceReader,
    StorageUnavailableError,
    evidence_key,
)
from sharpeyes.api.rest.errors import NotFoundError, UnavailableError
from sharpeyes.api.rest.schemas import EVIDENCE_NAMES
from sharpeyes.api.store.files import plate_path, scene_path, write_atomic
from sharpeyes.api.store.records import StoredEvent
from sharpeyes.pipeline.errors import EvidenceError

logger = logging.getLogger(__name__)

CACHE_DIR = ".storage-cache"
"""Where :class:`RemoteEvidence` keeps the files it read, under the files root."""
DEFAULT_CACHE_BYTES = 1 << 30
CURRENT_TOKEN: ContextVar[str] = ContextVar("sharpeyes_current_token", default="")
"""The token id of the request being served (set by the auth dependencies)."""
MEDIA_TYPES: dict[str, str] = {
    ".jpg": "image/jpeg",
    ".mp4": "video/mp4",
    ".json": "application/json",
}


@dataclass(frozen=True, slots=True)
class EvidenceFile:
    name: str
    path: Path
    size: int

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES.get(self.path.suffix.lower(), "application/octet-stream")


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class EvidenceUnavailableError(UnavailableError):
    """The evidence storage cannot answer now: the file may well exist (503, not 404)."""


class RemoteEvidence:
    """Evidence files read from the cluster's storage (``reader``), each fetched once into
    ``cache_dir`` and served from there like a local file (Range, export, ``record.json``).

    Stored evidence never changes (a new owner puts identical bytes), so a cached file stays
    valid; so does "no such file" for a committed event (evidence is put before the commit),
    kept for the last ``max_absent`` asks. Past ``max_bytes`` the least recently served files
    are removed down to half of it. Listing an event's files (one event's view) fetches them
    all: the console shows them next, and ``record.json`` says whether the record is complete.
    """

    def __init__(
        self,
        reader: EvidenceReader,
        cache_dir: Path,
        *,
        max_bytes: int = DEFAULT_CACHE_BYTES,
        max_absent: int = 4096,
    ) -> None:
        self._reader = reader
        self.cache_dir = cache_dir
        self.max_bytes = max_bytes
        self.max_absent = max_absent
        self._absent: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._bytes: int | None = None  # the cache's size, counted at the first write
        self._lock = threading.Lock()

    def path(self, event_id: str, name: str) -> Path | None:
        """The cached file ``name`` of the event, fetched if needed; None when it has none.

        Raises:
            EvidenceUnavailableError: the storage cannot answer now.
        """
        try:
            target = self.cache_dir / evidence_key(event_id, name)
        except EvidenceError:
            return None  # an id or name no worker can have put
        if target.is_file():
            with contextlib.suppress(OSError):
                os.utime(target)  # recently served: evicted last
            return target
        with self._lock:
            if (event_id, name) in self._absent:
                return None
        try:
            data = self._reader.read(event_id, name)
        except StorageUnavailableError as e:
            logger.warning("evidence %s of %s: %s", name, event_id, e)
            raise EvidenceUnavailableError(
                f"the evidence storage cannot be read now ({name} of {event_id})"
            ) from e
        if data is None:
            with self._lock:
                self._absent[(event_id, name)] = None
                while len(self._absent) > self.max_absent:
                    self._absent.popitem(last=False)
            return None
        write_atomic(target, data, overwrite=True)
        self._account(len(data))
        return target

    def _files(self) -> list[tuple[float, int, Path]]:
        found = []
        for f in self.cache_dir.rglob("*"):
            with contextlib.suppress(OSError):
                st = f.stat()
                if f.is_file():
                    found.append((st.st_mtime, st.st_size, f))
        return found

    def _account(self, added: int) -> None:
        with self._lock:
            if self._bytes is None:
                self._bytes = sum(size for _, size, _ in self._files())
            else:
                self._bytes += added
            if self._bytes <= self.max_bytes:
                return
            for _, size, f in sorted(self._files()):
                if self._bytes <= self.max_bytes // 2:
                    break
                with contextlib.suppress(OSError):
                    f.unlink()
                    self._bytes -= size


class EvidenceLocator:
    """Finds the evidence files of a stored event under ``roots`` (the first is files_root),
    then, for what is not there, in the cluster's storage (``remote``)."""

    def __init__(self, roots: Sequence[Path], remote: RemoteEvidence | None = None) -> None:
        if not roots:
            raise ValueError("at least one evidence root (the store's files_root) is needed")
        self._roots = tuple(r.resolve() for r in roots)
        self._remote = remote

    def _record_dir(self, stored: StoredEvent) -> Path | None:
        raw = stored.evidence_dir or stored.event.evidence_path
        if not raw:
            return None
        p = Path(raw)
        cand = p if p.is_absolute() else self._roots[0] / p
        try:
            resolved = cand.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not any(_within(resolved, r) for r in self._roots) or not resolved.is_dir():
            logger.warning("evidence dir of %s is outside the evidence roots", stored.event_id)
            return None
        return resolved

    def _beside_crop(self, stored: StoredEvent, name: str) -> bool:
        """Whether ``name`` is a picture stored beside the event's crop: the crop and scene of
        any event, and a checkpoint read's plate picture (an event without a record: a
        violation's plate.jpg is its record's close-up)."""
        if name in (CROP_NAME, SCENE_NAME):
            return True
        return name == PLATE_NAME and bool(stored.crop_path) and self._record_dir(stored) is None

    def _candidate(self, stored: StoredEvent, name: str) -> Path | None:
        """The local file ``name`` of the event, else the one read from storage."""
        local = self._local(stored, name)
        if local is not None or self._remote is None or not _may_have(stored, name):
            return local
        return self._remote.path(stored.event_id, name)

    def _local(self, stored: StoredEvent, name: str) -> Path | None:
        beside = self._beside_crop(stored, name)
        if beside:
            if not stored.crop_path:
                return None
            base_file = self._roots[0] / stored.crop_path
            if name == SCENE_NAME:
                base_file = scene_path(base_file)
            elif name == PLATE_NAME:
                base_file = plate_path(base_file)
            allowed_dir = self._roots[0]
        else:
            if name not in EVIDENCE_NAMES:
                return None
            rec = self._record_dir(stored)
            if rec is None:
                return None
            base_file = rec / name
            allowed_dir = rec
        try:
            resolved = base_file.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not _within(resolved, allowed_dir) or not resolved.is_file():
            return None
        if not beside and resolved.parent != allowed_dir:
            return None
        return resolved

    def resolve(self, stored: StoredEvent, name: str) -> EvidenceFile:
        """The file ``name`` of the record; raises :class:`NotFoundError` for anything else."""
        path = self._candidate(stored, name)
        if path is None:
            raise NotFoundError(f"event {stored.event_id} has no evidence file {name!r}")
        return EvidenceFile(name=name, path=path, size=path.stat().st_size)

    def files(self, stored: StoredEvent) -> list[EvidenceFile]:
        """The record's evidence files that exist, in the fixed name order."""
        found: list[EvidenceFile] = []
        for name in EVIDENCE_NAMES:
            path = self._candidate(stored, name)
            if path is not None:
                found.append(EvidenceFile(name=name, path=path, size=path.stat().st_size))
        return found

    def files_if_readable(self, stored: StoredEvent) -> list[EvidenceFile] | None:
        """:meth:`files`, or None while the cluster's evidence storage cannot be read — for
        answers that must not fail on it (a saved review, the live feed, broker messages):
        None is "unknown", never a list that leaves files out."""
        try:
            return self.files(stored)
        except EvidenceUnavailableError as e:
            logger.warning("evidence of %s left out: %s", stored.event_id, e)
            return None


def _may_have(stored: StoredEvent, name: str) -> bool:
    """Whether a worker can have put ``name`` of the event into storage: the pictures beside
    its crop (the plate picture only without a record), the files of its record."""
    record = bool(stored.evidence_dir or stored.event.evidence_path)
    if name in (CROP_NAME, SCENE_NAME) or (name == PLATE_NAME and not record):
        return bool(stored.crop_path)
    return record and name in EVIDENCE_NAMES


class UrlSigner:
    """HMAC-signed, expiring evidence URLs bound to the token that asked for them.

    ``sig`` is ``<mac>.<token id>``; :meth:`verify` refuses it once ``token_active`` says the
    token is revoked or expired. The key comes from config/env (or is per process) and must not
    be the token-hashing key.
    """

    def __init__(
        self,
        key: bytes | None = None,
        ttl_s: int = 3600,
        *,
        token_active: Callable[[str], bool] | None = None,
    ) -> None:
        self._key = key or secrets.token_bytes(32)
        self.ttl_s = ttl_s
        self._token_active = token_active

    def _mac(self, event_id: str, name: str, exp: int, token_id: str) -> str:
        msg = f"{event_id}\n{name}\n{exp}\n{token_id}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:32]

    def sign(
        self,
        event_id: str,
        name: str,
        now: float | None = None,
        *,
        token_id: str | None = None,
    ) -> tuple[int, str]:
        tid = CURRENT_TOKEN.get() if token_id is None else token_id
        exp = int((time.time() if now is None else now) + self.ttl_s)
        mac = self._mac(event_id, name, exp, tid)
        return exp, f"{mac}.{tid}" if tid else mac

    def verify(
        self, event_id: str, name: str, exp: int, sig: str, now: float | None = None
    ) -> bool:
        if exp < (time.time() if now is None else now) or not sig.isascii():
            return False
        mac, _, tid = sig.partition(".")
        if not hmac.compare_digest(self._mac(event_id, name, exp, tid), mac):
            return False
        if self._token_active is None:
            return True
        return bool(tid) and self._token_active(tid)
