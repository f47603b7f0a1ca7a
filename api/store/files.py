"""Evidence files under the store's ``files_root``: crop paths and crash-safe writes."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import StoreError
from pipeline.types import Event

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_component(name: str) -> str:
    """A path component made from ``name`` (stream ids may hold ``/`` or ``:``)."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "_"
    return cleaned[:120]


def crop_relpath(event: Event) -> str | None:
    """``crops/<stream>/<yyyymmdd>/<event_id>.jpg`` (UTC date of first sight), or None.

    None when the event has no crop. Relative to ``files_root`` so a store can be moved.
    """
    if not event.crop_jpeg:
        return None
    day = datetime.fromtimestamp(event.first_seen_ms / 1000, tz=UTC).strftime("%Y%m%d")
    return f"crops/{safe_component(event.stream_id)}/{day}/{safe_component(event.event_id)}.jpg"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, overwrite: bool = False) -> bool:
    """Write ``data`` to ``path`` via temp file + fsync + rename + directory fsync.

    A reader (or a process restarted after a kill) sees either no file or the whole file.
    Returns False without writing when the file exists and ``overwrite`` is False — a file a
    committed row points at is never replaced.

    Raises:
        StoreError: the file could not be written (disk full, permissions).
    """
    if not overwrite and path.exists():
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)
    except OSError as e:
        raise StoreError(f"cannot write evidence file {path}: {e.strerror or e}") from e
    return True


def write_crop(files_root: Path, event: Event) -> str | None:
    """Write the event's crop (if any) under ``files_root``; return its relative path."""
    rel = crop_relpath(event)
    if rel is None or event.crop_jpeg is None:
        return None
    write_atomic(files_root / rel, event.crop_jpeg)
    return rel
