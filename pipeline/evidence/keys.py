"""Per-installation evidence keys: generated on first start, rotatable, asymmetric.

An installation keeps a key ring in a private directory (``<files_root>/keys`` by default,
mode 0700; private keys 0600). Each key has an id (``ed25519-<16 hex>`` or ``sm2-<16 hex>``,
derived from its public key) and is one of:

* **Ed25519** (RFC 8032, the ``cryptography`` package) — the default;
* **SM2 with SM3** (GB/T 32918, GB/T 32905; the ``gmssl`` package) for 国产密码 deployments.

Evidence records are signed with the active key: :func:`sign_record_dir` writes ``record.sig``
beside ``record.json`` — the SHA-256 of every file in the record and a signature over them —
so anyone holding only the exported public key (``<key id>.pub``) can verify a record
(:func:`verify_record_signature`). The record's HMACs use a key derived from the same private
key (:meth:`InstallationKey.hmac_key`), so ``record.json``'s ``integrity.key_id`` names the
installation key that made it. :meth:`KeyRing.rotate` makes a new active key and keeps the old
ones (for verification only).

The public demo key (:data:`DEMO_KEY`) is refused unless the caller says it runs the demo.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sharpeyes.pipeline.data import sha256_file
from sharpeyes.pipeline.errors import ConfigError, EvidenceError

logger = logging.getLogger(__name__)

KEY_DIR_ENV = "SHARPEYES_KEY_DIR"
EVIDENCE_KEY_ENV = "SHARPEYES_EVIDENCE_KEY"
DEFAULT_KEY_DIR = (
    Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "sharpeyes" / "keys"
)  # this user's installation keys; a node uses <store.files_root>/keys
DEMO_KEY = b"sharpeyes-demo-key"
ED25519 = "ed25519"
SM2 = "sm2"
ALGORITHMS = (ED25519, SM2)
SIGNATURE_NAME = "record.sig"
SIGNATURE_FORMAT = "sharpeyes-evidence-signature/1"
HMAC_KEY_PREFIX = b"sek1:"  # derived HMAC keys carry their installation key id
_ACTIVE = "active"
_CHUNK = 1 << 20


class EvidenceKeyError(EvidenceError):
    """A key is missing, unreadable, or of an unknown algorithm."""


# -- algorithms --------------------------------------------------------------------------------


def _ed25519_generate() -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    sk = Ed25519PrivateKey.generate()
    private = sk.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, public


def _sm2_generate() -> tuple[bytes, bytes]:
    from gmssl import sm2  # type: ignore[import-untyped]

    table = sm2.default_ecc_table
    d = secrets.randbelow(int(table["n"], 16) - 2) + 1
    public_hex = sm2.CryptSM2(private_key=f"{d:064x}", public_key="")._kg(d, table["g"])
    return bytes.fromhex(f"{d:064x}"), bytes.fromhex(public_hex)


def _sm2(private_hex: str | None, public: bytes) -> Any:
    """A gmssl ``CryptSM2`` for the raw 64-byte public key x‖y. Its constructor strips an
    uncompressed point's "04" prefix with ``str.lstrip("04")`` — every leading "0" and "4"
    character — so a key whose x begins with the hex digits 04 (one key in 256) lost them: its
    signatures never verified (CI, round 26: ``sm2-4168fa4b4088789c``) or could not be made (an
    odd-length key). The key is set after construction, as it is."""
    from gmssl import sm2

    crypt = sm2.CryptSM2(private_key=private_hex, public_key="")
    crypt.public_key = public.hex()
    return crypt


def _sign(algorithm: str, private: bytes, public: bytes, data: bytes) -> bytes:
    if algorithm == ED25519:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(private).sign(data)
    if algorithm == SM2:
        crypt = _sm2(private.hex(), public)
        return bytes.fromhex(str(crypt.sign_with_sm3(data)))
    raise EvidenceKeyError(f"unknown signature algorithm {algorithm!r}")


def verify_signature(algorithm: str, public: bytes, data: bytes, signature: bytes) -> bool:
    """Check ``signature`` over ``data`` with a public key alone."""
    if algorithm == ED25519:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(public).verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True
    if algorithm == SM2:
        try:
            crypt = _sm2(None, public)
            return bool(crypt.verify_with_sm3(signature.hex(), data))
        except Exception:  # gmssl raises assorted errors on malformed input
            return False
    raise EvidenceKeyError(f"unknown signature algorithm {algorithm!r}")


def key_id_for(algorithm: str, public: bytes) -> str:
    return f"{algorithm}-{hashlib.sha256(public).hexdigest()[:16]}"


# -- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstallationKey:
    """One key of the ring; ``private`` is None for a public-key-only (verifier) copy."""

    key_id: str
    algorithm: str
    public: bytes
    created_ms: int
    private: bytes | None = None

    def sign(self, data: bytes) -> bytes:
        if self.private is None:
            raise EvidenceKeyError(f"key {self.key_id} has no private part here")
        return _sign(self.algorithm, self.private, self.public, data)

    def verify(self, data: bytes, signature: bytes) -> bool:
        return verify_signature(self.algorithm, self.public, data, signature)

    def derive(self, label: str) -> bytes:
        """A 32-byte secret for one purpose (HMAC of the private key with ``label``)."""
        if self.private is None:
            raise EvidenceKeyError(f"key {self.key_id} has no private part here")
        return hmac.new(self.private, f"sharpeyes/{label}".encode(), hashlib.sha256).digest()

    def hmac_key(self) -> bytes:
        """The evidence HMAC key; :func:`hmac_key_id` recovers this key's id from it."""
        secret = self.derive("evidence-hmac").hex().encode()
        return HMAC_KEY_PREFIX + self.key_id.encode() + b":" + secret

    def public_document(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "algorithm": self.algorithm,
            "public_key": base64.b64encode(self.public).decode(),
            "created_ms": self.created_ms,
        }


def hmac_key_id(key: bytes) -> str | None:
    """The installation key id embedded in a derived HMAC key, else None."""
    if not key.startswith(HMAC_KEY_PREFIX):
        return None
    kid, sep, _ = key[len(HMAC_KEY_PREFIX) :].partition(b":")
    return kid.decode("ascii", "replace") if sep else None


def load_public_key(path: Path) -> InstallationKey:
    """Read an exported ``<key id>.pub`` (JSON) — all a verifier needs."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        public = base64.b64decode(doc["public_key"], validate=True)
        algorithm = str(doc["algorithm"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EvidenceKeyError(f"cannot read public key {path}: {e}") from e
    if algorithm not in ALGORITHMS:
        raise EvidenceKeyError(f"public key {path}: unknown algorithm {algorithm!r}")
    kid = key_id_for(algorithm, public)
    if doc.get("key_id") not in (None, kid):
        raise EvidenceKeyError(f"public key {path}: its key id does not match its key")
    return InstallationKey(kid, algorithm, public, int(doc.get("created_ms", 0)))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class KeyRing:
    """The installation's keys in ``directory``: ``<id>.key`` (0600), ``<id>.pub``, ``active``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @classmethod
    def open(cls, directory: Path, *, create: bool = True, algorithm: str = ED25519) -> KeyRing:
        """The ring in ``directory``; with ``create`` a first key is made if there is none."""
        ring = cls(directory)
        if create and ring.active_id() is None:
            ring.rotate(algorithm)
            logger.info("evidence keys: created key %s in %s", ring.active_id(), directory)
        return ring

    def _ensure_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)

    def active_id(self) -> str | None:
        try:
            text = (self.directory / _ACTIVE).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise EvidenceKeyError(f"cannot read the active key of {self.directory}: {e}") from e
        return text or None

    def active(self) -> InstallationKey:
        kid = self.active_id()
        if kid is None:
            raise EvidenceKeyError(f"no evidence key in {self.directory}")
        return self.get(kid)

    def get(self, key_id: str) -> InstallationKey:
        if not key_id or "/" in key_id or key_id.startswith("."):
            raise EvidenceKeyError(f"bad key id {key_id!r}")
        pub = load_public_key(self.directory / f"{key_id}.pub")
        try:
            private: bytes | None = (self.directory / f"{key_id}.key").read_bytes()
        except FileNotFoundError:
            private = None
        except OSError as e:
            raise EvidenceKeyError(f"cannot read key {key_id}: {e.strerror or e}") from e
        return InstallationKey(pub.key_id, pub.algorithm, pub.public, pub.created_ms, private)

    def keys(self) -> list[InstallationKey]:
        if not self.directory.is_dir():
            return []
        return sorted(
            (self.get(p.stem) for p in self.directory.glob("*.pub")),
            key=lambda k: (k.created_ms, k.key_id),
        )

    def rotate(self, algorithm: str = ED25519) -> InstallationKey:
        """Make a new key and make it active; older keys stay for verification."""
        if algorithm == ED25519:
            private, public = _ed25519_generate()
        elif algorithm == SM2:
            private, public = _sm2_generate()
        else:
            raise ConfigError(f"unknown evidence key algorithm {algorithm!r} ({ALGORITHMS})")
        self._ensure_dir()
        key = InstallationKey(
            key_id_for(algorithm, public), algorithm, public, int(time.time() * 1000), private
        )
        _write_private(self.directory / f"{key.key_id}.key", private)
        pub_path = self.directory / f"{key.key_id}.pub"
        pub_path.write_text(json.dumps(key.public_document(), indent=2) + "\n", encoding="utf-8")
        os.chmod(pub_path, 0o644)
        tmp = self.directory / f".{_ACTIVE}.tmp"
        tmp.write_text(key.key_id + "\n", encoding="ascii")
        os.chmod(tmp, 0o600)
        tmp.replace(self.directory / _ACTIVE)
        return key

    def for_hmac_key_id(self, key_id: str) -> InstallationKey | None:
        """The ring's key that a record's ``integrity.key_id`` names, if any."""
        for k in self.keys():
            if k.key_id == key_id:
                return k
        return None


def default_key_dir() -> Path:
    env = os.environ.get(KEY_DIR_ENV)
    return Path(env) if env else DEFAULT_KEY_DIR


def check_not_demo(key: bytes, *, demo: bool = False) -> bytes:
    """Refuse the public demo key unless ``demo`` (only ``sharpeyes demo`` passes True)."""
    if hmac.compare_digest(key, DEMO_KEY) and not demo:
        raise ConfigError(
            "the public demo evidence key is only allowed in `sharpeyes demo`: "
            f"unset {EVIDENCE_KEY_ENV} to use this installation's own key"
        )
    return key


def evidence_hmac_key(key_dir: Path | None = None, *, demo: bool = False) -> bytes:
    """The key evidence records are HMAC'd with.

    ``$SHARPEYES_EVIDENCE_KEY`` if set (a shared key across nodes; the demo key is refused
    unless ``demo``), else the active installation key's derived HMAC key (the ring is created
    in ``key_dir``, default ``$SHARPEYES_KEY_DIR`` or ``out/service/keys``, on first use).
    """
    env = os.environ.get(EVIDENCE_KEY_ENV)
    if env:
        key = check_not_demo(env.encode(), demo=demo)
        if len(key) < 16:
            raise ConfigError(f"{EVIDENCE_KEY_ENV} is {len(key)} bytes; at least 16 are required")
        return key
    if demo:
        return DEMO_KEY
    return KeyRing.open(key_dir or default_key_dir()).active().hmac_key()


# -- record signatures --------------------------------------------------------------------------


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _record_files(record_dir: Path) -> dict[str, str]:
    out = {}
    for p in sorted(record_dir.iterdir()):
        if p.is_file() and p.name != SIGNATURE_NAME and not p.name.startswith("."):
            out[p.name] = sha256_file(p)
    return out


def sign_record_dir(record_dir: Path, key: InstallationKey) -> Path:
    """Write ``record.sig``: SHA-256 of every file in the record, signed by ``key``."""
    body: dict[str, Any] = {
        "format": SIGNATURE_FORMAT,
        "key_id": key.key_id,
        "algorithm": key.algorithm,
        "signed_at_ms": int(time.time() * 1000),
        "files": _record_files(record_dir),
    }
    doc = {**body, "signature": base64.b64encode(key.sign(_canonical(body))).decode()}
    path = record_dir / SIGNATURE_NAME
    tmp = record_dir / f".{SIGNATURE_NAME}.tmp"
    tmp.write_bytes(json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n")
    tmp.replace(path)
    return path


def sign_record_for_hmac_key(
    record_dir: Path, hmac_key: bytes, key_dir: Path | None = None
) -> Path | None:
    """Sign ``record_dir`` with the installation key that ``hmac_key`` was derived from.

    The evidence builder calls this after writing ``record.json``. Returns None (no signature)
    for a shared ``$SHARPEYES_EVIDENCE_KEY``, which has no private key behind it.
    """
    kid = hmac_key_id(hmac_key)
    if kid is None:
        return None
    key = KeyRing(key_dir or default_key_dir()).get(kid)
    if not hmac.compare_digest(key.hmac_key(), hmac_key):
        raise EvidenceKeyError(f"key {kid} in the ring does not match the evidence HMAC key")
    return sign_record_dir(record_dir, key)


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    key_id: str
    algorithm: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_record_signature(record_dir: Path, trusted: Iterable[InstallationKey]) -> SignatureCheck:
    """Check ``record.sig`` against the trusted public keys and every file's SHA-256."""
    path = record_dir / SIGNATURE_NAME
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        signature = base64.b64decode(doc.pop("signature"), validate=True)
        kid, algorithm, files = str(doc["key_id"]), str(doc["algorithm"]), doc["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a mapping")
    except FileNotFoundError as e:
        raise EvidenceError(f"no {SIGNATURE_NAME} in {record_dir}") from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EvidenceError(f"{path} is unreadable: {e}") from e
    key = next((k for k in trusted if k.key_id == kid), None)
    if key is None:
        return SignatureCheck(kid, algorithm, (f"KEY signed by {kid}, which is not trusted here",))
    problems = []
    if key.algorithm != algorithm or not key.verify(_canonical(doc), signature):
        problems.append(f"SIGNATURE {SIGNATURE_NAME} does not verify with key {kid}")
    actual = _record_files(record_dir)
    for name, digest in sorted(files.items()):
        if name not in actual:
            problems.append(f"MISSING {name}")
        elif not hmac.compare_digest(actual[name], str(digest)):
            problems.append(f"CHANGED {name}: SHA-256 differs from the signed one")
    for name in sorted(set(actual) - set(files)):
        problems.append(f"ADDED {name}: not covered by the signature")
    return SignatureCheck(kid, algorithm, tuple(problems))
