"""Evidence files under the store's ``files_root``: crop paths and crash-safe writes."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from sharpeyes.pipeline.errors import StoreError
from sharpeyes.pipeline.types import Event

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


def _write_temp(path: Path, data: bytes, *, sync: bool = True) -> str:
    """Write ``data`` to a temp file next to ``path`` (fsynced unless ``sync`` is False, when the
    caller fsyncs it before the rename); return the temp file's name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _fsync_file(name: str) -> None:
    fd = os.open(name, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


FSYNC_THREADS = 8
_POOL_LOCK = threading.Lock()
_POOL: list[ThreadPoolExecutor] = []  # created on first use, shared by all writers


def _fsync_pool() -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(FSYNC_THREADS, thread_name_prefix="fsync"))
        return _POOL[0]


def write_files_atomic(items: Sequence[tuple[Path, bytes]], *, overwrite: bool = False) -> int:
    """Write each ``(path, data)`` via temp file + fsync + rename, then fsync each directory once.

    A reader (or a process restarted after a kill) sees either no file or the whole file, and
    once this returns the files survive a power cut. Existing files are kept unless
    ``overwrite`` — a file a committed row points at is never replaced. Returns how many files
    were written. Several files are fsynced in parallel (the file system groups the flushes:
    several times faster than one after the other), each before its rename.

    Raises:
        StoreError: a file could not be written (disk full, permissions).
    """
    todo = [(path, data) for path, data in items if overwrite or not path.exists()]
    dirs: set[Path] = set()
    temps: list[tuple[str, Path]] = []
    renamed = 0
    current = Path()
    try:
        try:
            for path, data in todo:
                current = path
                temps.append((_write_temp(path, data, sync=len(todo) == 1), path))
            if len(temps) > 1:
                current = temps[0][1].parent
                list(_fsync_pool().map(_fsync_file, [tmp for tmp, _ in temps]))
            renamed = 0
            for tmp, path in temps:
                current = path
                os.replace(tmp, path)
                renamed += 1
                dirs.add(path.parent)
        finally:
            for tmp, _ in temps[renamed:]:  # not renamed: an error above
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        for directory in sorted(dirs):
            current = directory
            _fsync_dir(directory)
    except OSError as e:
        raise StoreError(f"cannot write evidence file {current}: {e.strerror or e}") from e
    return renamed


def write_atomic(path: Path, data: bytes, *, overwrite: bool = False) -> bool:
    """One-file :func:`write_files_atomic`; False when the file existed and was kept."""
    return write_files_atomic([(path, data)], overwrite=overwrite) == 1


PLATE_SUFFIX = ".plate.jpg"
SCENE_SUFFIX = ".scene.jpg"


def plate_path(crop: Path) -> Path:
    """Where the plate picture of a checkpoint read lies: beside the event's crop."""
    return crop.with_name(crop.name.removesuffix(".jpg") + PLATE_SUFFIX)


def scene_path(crop: Path) -> Path:
    """Where an event's scene picture (the full frame of its best crop) lies: beside the crop."""
    return crop.with_name(crop.name.removesuffix(".jpg") + SCENE_SUFFIX)


def write_crops(files_root: Path, events: Sequence[Event]) -> list[str | None]:
    """Write the crops of ``events``, their plate pictures (``<crop>.plate.jpg``, see
    :func:`plate_path`) and scene pictures (``<crop>.scene.jpg``, :func:`scene_path`), one
    directory fsync per directory; returns the crops' relative paths."""
    rels = [crop_relpath(e) for e in events]
    items: list[tuple[Path, bytes]] = []
    for rel, e in zip(rels, events, strict=True):
        if rel is None or e.crop_jpeg is None:
            continue
        items.append((files_root / rel, e.crop_jpeg))
        if e.plate_jpeg:
            items.append((plate_path(files_root / rel), e.plate_jpeg))
        if e.scene_jpeg:
            items.append((scene_path(files_root / rel), e.scene_jpeg))
    write_files_atomic(items)
    return rels


def write_crop(files_root: Path, event: Event) -> str | None:
    """Write the event's crop (if any) under ``files_root``; return its relative path."""
    return write_crops(files_root, [event])[0]


def sweep_temp_files(files_root: Path, older_than_s: float = 60.0) -> int:
    """Delete temp files left by writers killed mid-write (older than ``older_than_s``).

    Safe while writers run: a live write renames its temp file within milliseconds.
    Returns how many files were removed.
    """
    cutoff = time.time() - older_than_s
    removed = 0
    for tmp in files_root.rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            if tmp.is_file() and tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed += 1
    return removed
