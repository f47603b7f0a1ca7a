"""Verify an evidence record: every file's size and HMAC-SHA256, the metadata's own HMAC, and
the asymmetric signature (``record.sig``) when there is one.

``sharpeyes evidence verify RECORD`` calls :func:`main_verify`, which says which key signed the
record, prints one line per problem and returns 0 only when nothing changed. With only a public
key (``--public-key <id>.pub``, e.g. a court) the signature and the files' SHA-256 are checked;
the HMACs need the installation's private key ring. The public demo key is refused unless
``demo`` is set.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sharpeyes.pipeline.errors import ConfigError, EvidenceError
from sharpeyes.pipeline.evidence.keys import (
    DEMO_KEY,
    SIGNATURE_NAME,
    InstallationKey,
    KeyRing,
    check_not_demo,
    default_key_dir,
    hmac_key_id,
    load_public_key,
    verify_record_signature,
)
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


def _record_key_id(path: Path) -> str:
    doc = load_record(path)
    return str((doc.get("integrity") or {}).get("key_id", ""))


def _hmac_key_for(
    path: Path, key: bytes | None, ring: KeyRing | None, demo: bool
) -> tuple[bytes | None, str]:
    """(HMAC key, description of the signer) for the record at ``path``."""
    rec_kid = _record_key_id(path)
    if key is not None:
        check_not_demo(key, demo=demo)
        if ring is not None and rec_kid and rec_kid != key_id(key):
            k = ring.for_hmac_key_id(rec_kid)  # an older (rotated) installation key
            if k is not None and k.private is not None:
                return k.hmac_key(), f"installation key {k.key_id} ({k.algorithm}, rotated)"
        if key == DEMO_KEY:
            return key, "the PUBLIC DEMO KEY (proves nothing)"
        kid = hmac_key_id(key)
        return key, (f"installation key {kid}" if kid else f"shared HMAC key {key_id(key)}")
    if ring is not None and rec_kid:
        k = ring.for_hmac_key_id(rec_kid)
        if k is not None and k.private is not None:
            return k.hmac_key(), f"installation key {k.key_id} ({k.algorithm})"
    return None, f"key {rec_kid or '?'} (not available here: HMACs not checked)"


def main_verify(
    path: Path,
    key: bytes | None,
    *,
    out: Callable[[str], None] = _stdout,
    key_dir: Path | None = None,
    public_keys: tuple[Path, ...] = (),
    demo: bool = False,
) -> int:
    """CLI body of ``sharpeyes evidence verify``: 0 intact, 1 changed/missing, 2 error.

    ``key`` None means ``$SHARPEYES_EVIDENCE_KEY`` or, without it, the installation key ring
    (``key_dir``, default ``$SHARPEYES_KEY_DIR``), which holds rotated keys too.
    ``public_keys`` are exported ``<id>.pub`` files: enough to check ``record.sig``.
    """
    try:
        if key is None:
            try:
                key = _load_key(None, demo=demo)
            except ConfigError as e:
                if "demo" in str(e):
                    raise
                key = None
        d = key_dir or default_key_dir()
        ring = KeyRing(d) if d.is_dir() else None
        hkey, signer = _hmac_key_for(path, key, ring, demo)
        trusted: list[InstallationKey] = [load_public_key(p) for p in public_keys]
        if ring is not None:
            trusted.extend(ring.keys())
        rec = _record_path(path)
        problems: list[str] = []
        checked = 0
        if hkey is not None:
            result = verify_record(path, hkey)
            problems.extend(result.problems)
            checked = len(result.checked)
        has_sig = (rec.parent / SIGNATURE_NAME).is_file()
        if has_sig:
            sig = verify_record_signature(rec.parent, trusted)
            problems.extend(sig.problems)
            out(f"signature: {sig.algorithm} by key {sig.key_id}")
        elif hkey is None:
            raise EvidenceError(
                f"no key to check {rec}: no {SIGNATURE_NAME}, and HMAC key {signer} is unknown"
            )
    except (ConfigError, EvidenceError) as e:
        out(f"error: {e}")
        return EXIT_ERROR
    out(f"signed with {signer}")
    for p in problems:
        out(p)
    if not problems:
        out(f"OK {rec}: {checked} files verified" + (" + signature" if has_sig else ""))
        return EXIT_OK
    out(f"FAILED {rec}: {len(problems)} problem(s)")
    return EXIT_CHANGED
