"""Evidence downloads: which files belong to a record, safe path resolution, signed URLs.

Only the fixed evidence names (``1.jpg 2.jpg 3.jpg plate.jpg composite.jpg clip.mp4
record.json``) and the pictures stored beside the event's crop (``crop.jpg``, ``scene.jpg`` and,
for a checkpoint read without a record, its plate picture as ``plate.jpg``) are ever served, and
only from the record's own directory under one of the configured evidence roots (the crops'
under the files root); symlinks that leave the directory are refused.
Signed URLs (HMAC over event id, file name, expiry and the id of the token that asked for
them) let ``<img>`` and ``<video>`` elements, which cannot send an ``Authorization`` header,
fetch evidence for a limited time — and only while that token is neither revoked nor expired.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from sharpeyes.api.rest.errors import NotFoundError
from sharpeyes.api.rest.schemas import EVIDENCE_NAMES
from sharpeyes.api.store.files import plate_path, scene_path
from sharpeyes.api.store.records import StoredEvent

logger = logging.getLogger(__name__)

CROP_NAME = "crop.jpg"
PLATE_NAME = "plate.jpg"
SCENE_NAME = "scene.jpg"
"""The full frame of a pass / face / person event's best crop, beside the crop (not a record's
file: a violation's scene is its image 1)."""
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


class EvidenceLocator:
    """Finds the evidence files of a stored event under ``roots`` (the first is files_root)."""

    def __init__(self, roots: Sequence[Path]) -> None:
        if not roots:
            raise ValueError("at least one evidence root (the store's files_root) is needed")
        self._roots = tuple(r.resolve() for r in roots)

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
