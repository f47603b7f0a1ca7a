"""Tamper evidence: a keyed hash (HMAC-SHA256) of every evidence file, and atomic writes.

The key is derived from the installation's evidence key (:mod:`pipeline.evidence.keys`), or
comes from configuration / ``SHARPEYES_EVIDENCE_KEY``; only a key id (not the key) is stored
with a record so a verifier can tell which key to use. The public demo key is refused outside
``sharpeyes demo``. Records are also signed asymmetrically (``record.sig``, see ``keys``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
from pathlib import Path

from sharpeyes.pipeline.errors import ConfigError, EvidenceError
from sharpeyes.pipeline.evidence.keys import check_not_demo, hmac_key_id

KEY_ENV = "SHARPEYES_EVIDENCE_KEY"
ALGORITHM = "HMAC-SHA256"
_CHUNK = 1 << 20


def load_key(configured: str | bytes | None = None, *, demo: bool = False) -> bytes:
    """The evidence key: ``configured`` if given, else ``$SHARPEYES_EVIDENCE_KEY``.

    Raises :class:`ConfigError` when neither is set, the key is shorter than 16 bytes, or it is
    the public demo key and ``demo`` is False.
    """
    raw: str | bytes | None = configured if configured else os.environ.get(KEY_ENV)
    if not raw:
        raise ConfigError(f"no evidence key: set {KEY_ENV} or the evidence key in the config")
    key = raw.encode() if isinstance(raw, str) else bytes(raw)
    if len(key) < 16:
        raise ConfigError(f"evidence key is {len(key)} bytes; at least 16 are required")
    return check_not_demo(key, demo=demo)


def key_id(key: bytes) -> str:
    """A public identifier of ``key``: the installation key id for a derived key, else 16 hex
    digits (which reveal nothing usable about the key)."""
    kid = hmac_key_id(key)
    if kid is not None:
        return kid
    return hmac.new(key, b"sharpeyes evidence key id", hashlib.sha256).hexdigest()[:16]


def hmac_bytes(data: bytes, key: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def hmac_file(path: Path, key: bytes) -> str:
    """HMAC-SHA256 (hex) of a file's bytes, read in chunks."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                mac.update(chunk)
    except OSError as e:
        raise EvidenceError(f"cannot read evidence file {path}: {e.strerror or e}") from e
    return mac.hexdigest()


def canonical_json(obj: object, *, indent: bool = False) -> bytes:
    """Deterministic UTF-8 JSON (sorted keys). Compact form for hashing; ``indent`` for files."""
    if indent:
        text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
        return (text + "\n").encode()
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as e:
        raise EvidenceError(f"cannot write evidence file {path}: {e.strerror or e}") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
