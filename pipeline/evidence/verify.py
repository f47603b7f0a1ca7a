"""Verify an evidence record: every file's size and HMAC-SHA256, and the metadata's own HMAC.

``sharpeyes evidence verify RECORD`` calls :func:`main_verify`, which prints one line per
problem and returns 0 only when nothing changed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sharpeyes.pipeline.errors import ConfigError, EvidenceError
from sharpeyes.pipeline.evidence.record import RECORD_NAME
from sharpeyes.pipeline.evidence.tamper import (
    canonical_json,
    digests_equal,
    hmac_bytes,
    hmac_file,
    key_id,
)
from sharpeyes.pipeline.evidence.tamper import load_key as _load_key

EXIT_OK = 0
EXIT_CHANGED = 1
EXIT_ERROR = 2


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of verifying one record directory."""

    record: Path
    checked: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # HMAC or size differs
    missing: tuple[str, ...] = ()
    metadata_changed: bool = False
    key_mismatch: bool = False  # the record names another key id
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.metadata_changed or self.key_mismatch)


def _record_path(path: Path) -> Path:
    return path / RECORD_NAME if path.is_dir() else path


def load_record(path: Path) -> dict[str, Any]:
    """Read ``record.json`` (or the record directory's); :class:`EvidenceError` if unusable."""
    rec = _record_path(path)
    try:
        doc = json.loads(rec.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise EvidenceError(f"no evidence record at {rec}") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EvidenceError(f"evidence record {rec} is unreadable: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise EvidenceError(f"evidence record {rec} has no 'files' list")
    return doc


def _check_file(base: Path, entry: object, key: bytes) -> tuple[str, str | None]:
    """(name, problem or None) for one ``files`` entry."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        return "?", "malformed file entry"
    name = entry["name"]
    path = base / name
    if Path(name).name != name or name in {"", ".", ".."}:
        return name, "unsafe file name"
    if not path.is_file():
        return name, "missing"
    if path.stat().st_size != entry.get("size"):
        return name, f"size {path.stat().st_size} != recorded {entry.get('size')}"
    if not digests_equal(hmac_file(path, key), str(entry.get("hmac_sha256", ""))):
        return name, "HMAC differs"
    return name, None


def verify_record(record_dir_or_json: Path, key: bytes) -> VerifyResult:
    """Check every listed file and the record's own HMAC with ``key``."""
    rec = _record_path(record_dir_or_json)
    doc = load_record(rec)
    base = rec.parent
    checked, changed, missing, problems = [], [], [], []
    for entry in doc["files"]:
        name, problem = _check_file(base, entry, key)
        checked.append(name)
        if problem == "missing":
            missing.append(name)
            problems.append(f"MISSING {name}")
        elif problem is not None:
            changed.append(name)
            problems.append(f"CHANGED {name}: {problem}")
    claimed = str(doc.pop("record_hmac", ""))
    meta_changed = not digests_equal(hmac_bytes(canonical_json(doc), key), claimed)
    if meta_changed:
        problems.append(f"CHANGED {RECORD_NAME}: metadata HMAC differs")
    rec_key = str((doc.get("integrity") or {}).get("key_id", ""))
    mismatch = bool(rec_key) and rec_key != key_id(key)
    if mismatch:
        problems.append(f"KEY record signed with key id {rec_key}, not {key_id(key)}")
    return VerifyResult(
        record=rec,
        checked=tuple(checked),
        changed=tuple(changed),
        missing=tuple(missing),
        metadata_changed=meta_changed,
        key_mismatch=mismatch,
        problems=tuple(problems),
    )


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")


def main_verify(path: Path, key: bytes | None, *, out: Callable[[str], None] = _stdout) -> int:
    """CLI body of ``sharpeyes evidence verify``: 0 intact, 1 changed/missing, 2 error.

    ``key`` None means ``$SHARPEYES_EVIDENCE_KEY``.
    """
    try:
        k = key if key else _load_key(None)
        result = verify_record(path, k)
    except (ConfigError, EvidenceError) as e:
        out(f"error: {e}")
        return EXIT_ERROR
    for p in result.problems:
        out(p)
    if result.ok:
        out(f"OK {result.record}: {len(result.checked)} files verified")
        return EXIT_OK
    out(f"FAILED {result.record}: {len(result.problems)} problem(s)")
    return EXIT_CHANGED
