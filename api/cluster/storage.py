"""Evidence storage every node can reach: local filesystem (embedded) or S3-compatible (cluster).

Evidence is written *before* the fenced commit under a key derived from the event id
(:func:`evidence_key`), so a crash in between leaves an orphan object that the next owner
overwrites with identical content (``docs/SCALE_OUT.md`` §2.3). Evidence must not sit on a
worker's local disk in a cluster: the uploader runs elsewhere. ``boto3`` is imported only when
an :class:`S3Storage` is created (``pip install boto3``; MinIO, Ceph RGW and OSS speak the
same API).

Readers (the REST API's evidence downloads, GA/T 1400 delivery) that do not find a file under
their local files root read it back through :class:`StorageEvidence`, by event id and file name;
:meth:`EvidenceStorage.read` tells "no such object" (None) from "the storage cannot answer now"
(:class:`StorageUnavailableError`), so a reader can answer 404 for the one and retry the other.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sharpeyes.pipeline.errors import EvidenceError

_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})

CROP_NAME = "crop.jpg"
"""The best crop of an event (stored beside it as ``crops/…/<id>.jpg`` under a files root)."""
PLATE_NAME = "plate.jpg"
"""A checkpoint read's plate picture, or a record's plate close-up (its evidence folder's)."""
SCENE_NAME = "scene.jpg"
"""The full frame of a pass / face / person event's best crop."""


class StorageUnavailableError(EvidenceError):
    """The evidence storage cannot answer now (down, unreachable, refusing): try again later."""


def evidence_key(event_id: str, name: str) -> str:
    """``evidence/<2 hex of sha1(id)>/<id>/<name>``: spread over prefixes, stable per event.

    Raises:
        EvidenceError: ``name`` or ``event_id`` would escape the key space.
    """
    if not _NAME_RE.match(name) or name in (".", ".."):
        raise EvidenceError(f"evidence name {name!r} is not a plain file name")
    if not event_id or "/" in event_id or event_id in (".", ".."):
        raise EvidenceError(f"event id {event_id!r} cannot be used in an evidence key")
    shard = hashlib.sha1(event_id.encode(), usedforsecurity=False).hexdigest()[:2]
    return f"evidence/{shard}/{event_id}/{name}"


class EvidenceStorage(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` durably under ``key`` (overwrite is allowed and idempotent)."""
        ...

    def get(self, key: str) -> bytes:
        """Raises EvidenceError when the key does not exist."""
        ...

    def read(self, key: str) -> bytes | None:
        """The object under ``key``, or None when there is none.

        Raises:
            StorageUnavailableError: the storage cannot answer now.
        """
        ...

    def exists(self, key: str) -> bool: ...

    def url(self, key: str) -> str: ...


class LocalStorage:
    """Files under ``root``; writes go to a temp file, fsync, then an atomic rename."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise EvidenceError(f"evidence key {key!r} escapes {self.root}")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            raise EvidenceError(f"cannot write evidence {key}: {e.strerror or e}") from e

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as e:
            raise EvidenceError(f"cannot read evidence {key}: {e.strerror or e}") from e

    def read(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as e:
            raise StorageUnavailableError(
                f"cannot read evidence {key} under {self.root}: {e.strerror or e}"
            ) from e

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def url(self, key: str) -> str:
        return self._path(key).as_uri()


S3_CONNECT_TIMEOUT_S = 3.0
S3_READ_TIMEOUT_S = 30.0
S3_ATTEMPTS = 3


def _missing(e: Exception) -> bool:
    """Whether a botocore error says the object (not the bucket) does not exist."""
    response = getattr(e, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return isinstance(error, dict) and str(error.get("Code")) in _MISSING_CODES


class S3Storage:
    """An S3-compatible bucket (MinIO, AWS, Ceph RGW); ``endpoint_url`` for on-site stores."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        client: Any = None,
        prefix: str = "",
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as e:
                raise EvidenceError("S3 evidence storage needs boto3 (pip install boto3)") from e
            # a storage that is down answers within seconds (a reader retries later), not
            # after botocore's default 60 s connect timeout and five tries
            config = Config(
                connect_timeout=S3_CONNECT_TIMEOUT_S,
                read_timeout=S3_READ_TIMEOUT_S,
                retries={"max_attempts": S3_ATTEMPTS, "mode": "standard"},
            )
            client = boto3.client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=config
            )
        self._s3 = client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as e:  # botocore raises many unrelated classes; name the key
            raise EvidenceError(f"cannot write evidence s3://{self.bucket}/{key}: {e}") from e

    def get(self, key: str) -> bytes:
        try:
            obj = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))
            body: bytes = obj["Body"].read()
        except Exception as e:
            raise EvidenceError(f"cannot read evidence s3://{self.bucket}/{key}: {e}") from e
        return body

    def read(self, key: str) -> bytes | None:
        try:
            obj = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))
            body: bytes = obj["Body"].read()
        except Exception as e:  # botocore: ClientError, EndpointConnectionError, timeouts …
            if _missing(e):
                return None
            raise StorageUnavailableError(
                f"cannot read evidence s3://{self.bucket}/{self._key(key)}: {e}"
            ) from e
        return body

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception:
            return False
        return True

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


def open_storage(url: str) -> EvidenceStorage:
    """``s3://bucket/prefix`` (endpoint: ``SHARPEYES_S3_ENDPOINT``), ``file:///dir`` or a path."""
    if url.startswith("s3://"):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return S3Storage(
            bucket, prefix=prefix, endpoint_url=os.environ.get("SHARPEYES_S3_ENDPOINT")
        )
    return LocalStorage(Path(url.removeprefix("file://")))


class EvidenceReader(Protocol):
    """An event's evidence file by name, from wherever the cluster keeps it."""

    def read(self, event_id: str, name: str) -> bytes | None:
        """The file's bytes, or None when the event has no such file.

        Raises:
            StorageUnavailableError: the storage cannot answer now (try again later).
        """
        ...


@dataclass(frozen=True, slots=True)
class StorageEvidence:
    """:class:`EvidenceReader` over the cluster's evidence storage, by :func:`evidence_key`:
    what the workers' :meth:`~sharpeyes.api.cluster.pipeline_program.LeaseCommitter` put."""

    storage: EvidenceStorage

    def read(self, event_id: str, name: str) -> bytes | None:
        return self.storage.read(evidence_key(event_id, name))


def open_evidence(url: str | None) -> StorageEvidence | None:
    """The reader of the storage at ``url`` (``cluster.storage_url``); None without one."""
    return StorageEvidence(open_storage(url)) if url else None
