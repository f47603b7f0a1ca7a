"""Find a model file on disk, verify it, download or derive it when missing.

Order for a model with a pinned sha256: explicit path → the shared data folder
(``$SHARPEYES_SHARED/models`` or ``shared/models`` next to the repository) → the user cache
(``$SHARPEYES_CACHE``, ``$XDG_CACHE_HOME/sharpeyes/models`` or ``~/.cache/sharpeyes/models``) →
download from the official URL into the cache (temp file, sha256 check, atomic rename).

A *derived* model (``ModelSpec.is_derived``, e.g. the default dynamic ``yolov5n``) has no pinned
hash: a copy is accepted when the export record beside it (``<file>.export.json``) names the
registered source hash, the current exporter version and the file's own hash. When no copy is
found and the exporter's dependencies are importable, the source is resolved (and downloaded if
needed) and exported into the cache.

Hashes of big files are memoised in ``<cache>/.sha256/`` keyed on path, size and mtime, so a
start does not rehash unchanged files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sharpeyes.models.registry import ModelSpec, get_model_spec
from sharpeyes.pipeline.data import sha256_file as sha256_file  # noqa: PLC0414 (re-export)
from sharpeyes.pipeline.data import shared_dir
from sharpeyes.pipeline.errors import ModelError, ModelIntegrityError, ModelNotFoundError

log = logging.getLogger(__name__)

SHARED_ENV = "SHARPEYES_SHARED"
CACHE_ENV = "SHARPEYES_CACHE"
_CHUNK = 1 << 20
_EXPORT_HINT = (
    "point $SHARPEYES_MODEL_MIRROR at a mirror holding the published artefact, install the "
    "exporter with `pip install 'sharpeyes[export]'`, or pass --model yolov5n_static"
)


def repo_root() -> Path:
    """The repository (or installed package) root that holds ``models/``."""
    return Path(__file__).resolve().parents[1]


def shared_models_dir() -> Path:
    """``models/`` of the shared data folder (:func:`sharpeyes.pipeline.data.shared_dir`)."""
    return shared_dir() / "models"


def cache_dir() -> Path:
    """The per-user model cache (not created here)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "sharpeyes" / "models"


def _memo_path(path: Path) -> Path:
    key = hashlib.sha1(str(path.resolve()).encode(), usedforsecurity=False).hexdigest()
    return cache_dir() / ".sha256" / f"{key}.json"


def cached_sha256(path: Path) -> str:
    """sha256 of ``path``, memoised on (path, size, mtime) in the cache directory."""
    st = path.stat()
    memo = _memo_path(path)
    try:
        data = json.loads(memo.read_text())
        if (data["path"], data["size"], data["mtime_ns"]) == (
            str(path.resolve()),
            st.st_size,
            st.st_mtime_ns,
        ):
            return str(data["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = sha256_file(path)
    record = {
        "path": str(path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": digest,
    }
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic_text(memo, json.dumps(record))
    except OSError as e:  # a read-only cache only costs a rehash next time
        log.debug("cannot memoise sha256 of %s: %s", path, e)
    return digest


def _write_atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def integrity_message(spec: ModelSpec, path: Path, actual: str) -> str:
    expected = " or ".join(spec.accepted_sha256)
    return f"model {spec.name!r}: sha256 mismatch for {path}: expected {expected}, got {actual}"


@dataclass
class _Search:
    """What was looked at, for a one-line error."""

    spec: ModelSpec
    places: list[str] = field(default_factory=list)
    mismatch: str | None = None

    def note(self, what: str) -> None:
        self.places.append(what)

    def summary(self) -> str:
        return f"model {self.spec.name!r} ({self.spec.filename}) not found; searched: " + "; ".join(
            self.places
        )


def _check_pinned(spec: ModelSpec, path: Path, search: _Search) -> bool:
    actual = cached_sha256(path)
    if actual in spec.accepted_sha256:
        return True
    search.mismatch = integrity_message(spec, path, actual)
    search.note(f"{path} (sha256 mismatch: {actual})")
    log.warning("%s", search.mismatch)
    return False


def download_model(
    spec: ModelSpec,
    dest: Path,
    *,
    url: str | None = None,
    accepted: tuple[str, ...] | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Download ``url`` (default ``spec.url``) to ``dest`` through a temp file; verify its
    sha256 against ``accepted`` (default: the spec's pinned hashes); rename atomically.

    Raises:
        ModelError: no URL, or the transfer failed.
        ModelIntegrityError: the downloaded bytes do not have a registered hash (discarded).
    """
    url = url or spec.url
    accepted = spec.accepted_sha256 if accepted is None else accepted
    if not url:
        raise ModelError(f"model {spec.name!r} has no download URL")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    log.info("downloading model %s from %s", spec.name, url)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as r:
            while chunk := r.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if actual not in accepted:
            expected = " or ".join(accepted)
            raise ModelIntegrityError(
                f"model {spec.name!r}: sha256 mismatch for {dest}: expected {expected}, got "
                f"{actual} (downloaded from {url}; discarded)"
            )
        tmp.chmod(0o644)
        os.replace(tmp, dest)
    except OSError as e:
        raise ModelError(f"model {spec.name!r}: download from {url} failed: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)
    cached_sha256(dest)  # memoise the fresh file
    return dest


# Base URL(s) of a model mirror tried before the official URLs, comma-separated: a site's
# intranet artefact server (public-security networks are offline) or a release of ours. A
# plain directory path works too. ``sharpeyes models publish DIR`` fills one.
MIRROR_ENV = "SHARPEYES_MODEL_MIRROR"


def mirror_urls(spec: ModelSpec) -> list[str]:
    """Where the mirrors in ``$SHARPEYES_MODEL_MIRROR`` would hold ``spec``'s file."""
    urls = []
    for entry in os.environ.get(MIRROR_ENV, "").split(","):
        base = entry.strip()
        if not base:
            continue
        if "://" not in base:
            base = Path(base).expanduser().resolve().as_uri()
        urls.append(f"{base.rstrip('/')}/{spec.filename}")
    return urls


def _try_downloads(
    spec: ModelSpec, urls: list[str], accepted: tuple[str, ...], search: _Search
) -> Path | None:
    """First verified download among ``urls`` into the cache; misses are noted in ``search``."""
    if not urls:
        return None
    if os.environ.get(OFFLINE_ENV) == "1":
        search.note(f"download disabled ({', '.join(urls)})")
        return None
    for url in urls:
        try:
            return download_model(spec, cache_dir() / spec.filename, url=url, accepted=accepted)
        except ModelIntegrityError as e:
            search.mismatch = str(e)
            search.note(f"{url} (sha256 mismatch; discarded)")
        except ModelError as e:
            search.note(str(e))
    return None


OFFLINE_ENV = "SHARPEYES_OFFLINE"  # "1": never download (air-gapped sites, tests)


def _resolve_pinned(spec: ModelSpec, search: _Search, download: bool) -> Path:
    for label, folder in (("shared", shared_models_dir()), ("cache", cache_dir())):
        candidate = folder / spec.filename
        if not candidate.is_file():
            search.note(f"{label} {candidate} (missing)")
        elif _check_pinned(spec, candidate, search):
            return candidate
    urls = mirror_urls(spec) + ([spec.url] if spec.url else [])
    if not spec.url:
        search.note("no download URL registered")
    if not download:
        search.note(f"download disabled ({', '.join(urls) or 'no URL'})")
    elif got := _try_downloads(spec, urls, spec.accepted_sha256, search):
        return got
    if search.mismatch:
        raise ModelIntegrityError(search.mismatch + "; " + search.summary())
    raise ModelNotFoundError(search.summary())


def resolve_model(
    model: str | ModelSpec,
    explicit: Path | None = None,
    *,
    download: bool = True,
    export: bool = True,
) -> Path:
    """Return a verified local path of ``model`` (a registry name or a spec).

    An explicit path must exist; it is verified when the model has a pinned hash (a derived
    model's explicit file is taken as given). Search order: shared folder, user cache, the
    mirrors in ``$SHARPEYES_MODEL_MIRROR``, the official URL (``download``); a derived model
    missing everywhere is exported from its source when ``export`` and the tools are there.

    Raises:
        ModelNotFoundError: no copy anywhere (the message names every place searched).
        ModelIntegrityError: a copy exists but its sha256 is wrong (file, expected, actual).
        ModelError: a download or an export failed.
    """
    spec = get_model_spec(model) if isinstance(model, str) else model
    search = _Search(spec)
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"model {spec.name!r}: explicit path {path} does not exist")
        if spec.accepted_sha256 and (actual := cached_sha256(path)) not in spec.accepted_sha256:
            raise ModelIntegrityError(integrity_message(spec, path, actual))
        return path
    if spec.is_derived:
        return _resolve_derived(spec, search, download, export)
    return _resolve_pinned(spec, search, download)


# --- derived models --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportRecord:
    """Sidecar of a derived model: which source, which exporter, which output bytes."""

    source_name: str
    source_sha256: str
    exporter_version: str
    output_sha256: str
    tool: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "source_name": self.source_name,
                "source_sha256": self.source_sha256,
                "exporter_version": self.exporter_version,
                "output_sha256": self.output_sha256,
                "tool": self.tool,
            },
            indent=2,
        )

    @classmethod
    def read(cls, path: Path) -> ExportRecord | None:
        try:
            d = json.loads(path.read_text())
            return cls(
                source_name=str(d["source_name"]),
                source_sha256=str(d["source_sha256"]),
                exporter_version=str(d["exporter_version"]),
                output_sha256=str(d["output_sha256"]),
                tool=str(d.get("tool", "")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def export_record_path(model_file: Path) -> Path:
    return model_file.with_name(model_file.name + ".export.json")


# An exporter turns (source file, output file, spec) into the output; returns a tool description.
Exporter = Callable[[Path, Path, ModelSpec], str]


def _yolov5_exporter(source: Path, out: Path, spec: ModelSpec) -> str:
    from sharpeyes.models.export.yolov5_onnx import export_yolov5_onnx

    result = export_yolov5_onnx(source, out, dynamic=spec.input.dynamic)
    return result.describe()


def _exporter_for(spec: ModelSpec) -> tuple[Exporter, str] | None:
    """The exporter for a derived spec and its version, or None when not importable."""
    from sharpeyes.models.export import yolov5_onnx

    exporters: dict[str, tuple[Exporter, Callable[[], bool], str]] = {
        "yolov5": (_yolov5_exporter, yolov5_onnx.exporter_available, yolov5_onnx.EXPORTER_VERSION),
    }
    entry = exporters.get(spec.family)
    if entry is None or not entry[1]():
        return None
    return entry[0], entry[2]


def _record_ok(spec: ModelSpec, candidate: Path, search: _Search, label: str) -> bool:
    from sharpeyes.models.export.yolov5_onnx import EXPORTER_VERSION

    if not candidate.is_file():
        search.note(f"{label} {candidate} (missing)")
        return False
    if spec.published_sha256 and cached_sha256(candidate) == spec.published_sha256:
        return True  # the published artefact itself: no export record needed
    record = ExportRecord.read(export_record_path(candidate))
    source = get_model_spec(spec.derived_from or "")
    if record is None:
        search.note(f"{label} {candidate} (no export record)")
    elif record.source_sha256 not in source.accepted_sha256:
        search.note(f"{label} {candidate} (exported from another source {record.source_sha256})")
    elif record.exporter_version != EXPORTER_VERSION:
        search.note(f"{label} {candidate} (exporter version {record.exporter_version})")
    elif cached_sha256(candidate) != record.output_sha256:
        search.note(f"{label} {candidate} (sha256 differs from its export record)")
    else:
        return True
    return False


def _resolve_derived(spec: ModelSpec, search: _Search, download: bool, export: bool) -> Path:
    for label, folder in (("shared", shared_models_dir()), ("cache", cache_dir())):
        candidate = folder / spec.filename
        if _record_ok(spec, candidate, search, label):
            return candidate
    if spec.published_sha256:
        urls = mirror_urls(spec) + ([spec.url] if spec.url else [])
        if not urls:
            search.note(f"no published artefact URL (set {MIRROR_ENV})")
        elif not download:
            search.note(f"download disabled ({', '.join(urls)})")
        elif got := _try_downloads(spec, urls, (spec.published_sha256,), search):
            return got
    if not export:
        raise ModelNotFoundError(f"{search.summary()}; export disabled")
    found = _exporter_for(spec)
    if found is None:
        raise ModelNotFoundError(
            f"{search.summary()}; it is derived from {spec.derived_from} by an export script "
            f"whose dependencies are missing: {_EXPORT_HINT}"
        )
    exporter, version = found
    source_spec = get_model_spec(spec.derived_from or "")
    source = resolve_model(source_spec, download=download)
    out = cache_dir() / spec.filename
    out.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting %s from %s into %s", spec.name, source, out)
    tool = exporter(source, out, spec)
    record = ExportRecord(
        source_name=source_spec.name,
        source_sha256=cached_sha256(source),
        exporter_version=version,
        output_sha256=cached_sha256(out),
        tool=tool,
    )
    _write_atomic_text(export_record_path(out), record.to_json())
    return out
