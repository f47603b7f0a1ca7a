"""Registry and resolver: search order, env overrides, sha256 checks, downloads, derived models."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharpeyes.models import resolve
from sharpeyes.models.registry import MODEL_SPECS, ModelSpec, get_model_spec, known_models
from sharpeyes.models.resolve import ExportRecord, export_record_path, resolve_model
from sharpeyes.pipeline.errors import ModelError, ModelIntegrityError, ModelNotFoundError

PAYLOAD = b"not really an onnx model\n" * 100
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Empty shared and cache folders wired through the environment overrides."""
    shared, cache = tmp_path / "shared", tmp_path / "cache"
    (shared / "models").mkdir(parents=True)
    monkeypatch.setenv("SHARPEYES_SHARED", str(shared))
    monkeypatch.setenv("SHARPEYES_CACHE", str(cache))
    return shared / "models", cache


def fake_spec(**changes: object) -> ModelSpec:
    base = dataclasses.replace(
        get_model_spec("yolox_nano"),
        name="fake",
        filename="sub/fake.onnx",
        sha256=PAYLOAD_SHA,
        also_accept_sha256=(),
        url=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# --- registry --------------------------------------------------------------------------------


def test_registry_has_the_required_models() -> None:
    for name in ("yolov5n", "yolov5n_static", "yolov5n.pt", "yolox_nano", "yolov8n_int8"):
        assert name in known_models()
    for name in ("plate_det_320", "plate_det_640", "plate_rec_color", "yunet_face"):
        assert name in known_models()
    default = get_model_spec("yolov5n")
    assert default.is_derived and default.derived_from == "yolov5n.pt" and default.input.dynamic
    assert get_model_spec("yolov5n.pt").url == (
        "https://github.com/ultralytics/yolov5/releases/download/v7.0/yolov5n.pt"
    )
    assert "plate_rec_chars" in get_model_spec("plate_rec_color").companions
    assert len(get_model_spec("yolox_nano").accepted_sha256) == 2


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ModelNotFoundError) as err:
        get_model_spec("yolov99")
    assert "yolov99" in str(err.value) and "yolox_nano" in str(err.value)


@pytest.mark.parametrize("name", [n for n, s in MODEL_SPECS.items() if s.sha256])
def test_shared_files_match_registered_hashes(name: str) -> None:
    from tests._models_fixtures import shared_dir

    spec = MODEL_SPECS[name]
    path = shared_dir() / "models" / spec.filename
    if not path.exists():
        pytest.skip(f"{path} not present")
    assert path.stat().st_size == spec.size_bytes
    assert resolve.sha256_file(path) == spec.sha256


# --- pinned models -----------------------------------------------------------------------


def test_search_order_explicit_then_shared_then_cache(
    dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    shared, cache = dirs
    spec = fake_spec()
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(spec)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(shared / "sub/fake.onnx") in msg and str(cache / "sub/fake.onnx") in msg
    assert "no download URL" in msg

    (cache / "sub").mkdir(parents=True)
    (cache / "sub/fake.onnx").write_bytes(PAYLOAD)
    assert resolve_model(spec) == cache / "sub/fake.onnx"
    (shared / "sub").mkdir()
    (shared / "sub/fake.onnx").write_bytes(PAYLOAD)
    assert resolve_model(spec) == shared / "sub/fake.onnx"
    explicit = tmp_path / "mine.onnx"
    explicit.write_bytes(PAYLOAD)
    assert resolve_model(spec, explicit) == explicit


def test_explicit_path_missing_or_wrong_hash(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    spec = fake_spec()
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(spec, tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"tampered")
    with pytest.raises(ModelIntegrityError) as err:
        resolve_model(spec, bad)
    msg = str(err.value)
    assert str(bad) in msg and PAYLOAD_SHA in msg and hashlib.sha256(b"tampered").hexdigest() in msg


def test_corrupt_shared_copy_falls_back_to_cache_else_integrity_error(
    dirs: tuple[Path, Path],
) -> None:
    shared, cache = dirs
    spec = fake_spec()
    (shared / "sub").mkdir()
    (shared / "sub/fake.onnx").write_bytes(b"corrupt")
    with pytest.raises(ModelIntegrityError) as err:
        resolve_model(spec)
    assert "expected " + PAYLOAD_SHA in str(err.value)
    assert hashlib.sha256(b"corrupt").hexdigest() in str(err.value)
    (cache / "sub").mkdir(parents=True)
    (cache / "sub/fake.onnx").write_bytes(PAYLOAD)
    assert resolve_model(spec) == cache / "sub/fake.onnx"


def test_hash_is_memoised_on_size_and_mtime(
    dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real = resolve.sha256_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(resolve, "sha256_file", counting)
    f = tmp_path / "m.onnx"
    f.write_bytes(PAYLOAD)
    assert resolve.cached_sha256(f) == PAYLOAD_SHA
    assert resolve.cached_sha256(f) == PAYLOAD_SHA
    assert len(calls) == 1
    f.write_bytes(b"changed!")  # new size and mtime → rehash
    assert resolve.cached_sha256(f) == hashlib.sha256(b"changed!").hexdigest()
    assert len(calls) == 2


def test_cache_env_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SHARPEYES_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve.cache_dir() == tmp_path / "xdg" / "sharpeyes" / "models"
    monkeypatch.setenv("SHARPEYES_CACHE", str(tmp_path / "c"))
    assert resolve.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SHARPEYES_SHARED", raising=False)
    assert resolve.shared_models_dir() == resolve.repo_root().parent / "shared" / "models"


# --- downloads against a local HTTP server ----------------------------------------------


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_download_verifies_and_renames_into_cache(
    dirs: tuple[Path, Path], http_root: tuple[str, Path]
) -> None:
    url, root = http_root
    (root / "fake.onnx").write_bytes(PAYLOAD)
    spec = fake_spec(url=f"{url}/fake.onnx")
    with pytest.raises(ModelNotFoundError, match="download disabled"):
        resolve_model(spec, download=False)
    path = resolve_model(spec)
    _, cache = dirs
    assert path == cache / "sub/fake.onnx" and path.read_bytes() == PAYLOAD
    assert [p.name for p in (cache / "sub").iterdir()] == ["fake.onnx"]  # no temp left


def test_download_with_bad_hash_is_discarded(
    dirs: tuple[Path, Path], http_root: tuple[str, Path]
) -> None:
    url, root = http_root
    (root / "fake.onnx").write_bytes(b"evil bytes")
    spec = fake_spec(url=f"{url}/fake.onnx")
    with pytest.raises(ModelIntegrityError) as err:
        resolve_model(spec)
    msg = str(err.value)
    assert PAYLOAD_SHA in msg and hashlib.sha256(b"evil bytes").hexdigest() in msg and url in msg
    _, cache = dirs
    assert not any((cache / "sub").iterdir())


def test_download_http_error_is_model_error(
    dirs: tuple[Path, Path], http_root: tuple[str, Path]
) -> None:
    url, _ = http_root
    with pytest.raises(ModelError, match="404"):
        resolve_model(fake_spec(url=f"{url}/missing.onnx"))


# --- derived models ---------------------------------------------------------------------


def _derived(dirs: tuple[Path, Path]) -> tuple[ModelSpec, Path]:
    _, cache = dirs
    spec = get_model_spec("yolov5n")
    return spec, cache / spec.filename


def _write_record(out: Path, **changes: str) -> None:
    from sharpeyes.models.export.yolov5_onnx import EXPORTER_VERSION

    record = ExportRecord(
        source_name="yolov5n.pt",
        source_sha256=get_model_spec("yolov5n.pt").sha256 or "",
        exporter_version=EXPORTER_VERSION,
        output_sha256=hashlib.sha256(out.read_bytes()).hexdigest(),
    )
    export_record_path(out).write_text(dataclasses.replace(record, **changes).to_json())


def test_derived_cache_copy_accepted_only_with_matching_record(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, out = _derived(dirs)
    out.parent.mkdir(parents=True)
    out.write_bytes(PAYLOAD)
    _write_record(out)
    assert resolve_model("yolov5n") == out

    monkeypatch.setattr("sharpeyes.models.export.yolov5_onnx.exporter_available", lambda: False)
    for bad in (
        {"exporter_version": "0"},
        {"source_sha256": "f" * 64},
        {"output_sha256": "0" * 64},
    ):
        _write_record(out, **bad)
        with pytest.raises(ModelNotFoundError) as err:
            resolve_model("yolov5n")
        msg = str(err.value)
        assert "sharpeyes[export]" in msg and "yolov5n_static" in msg and str(out) in msg


def test_derived_without_exporter_names_the_fix(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sharpeyes.models.export.yolov5_onnx.exporter_available", lambda: False)
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("yolov5n")
    msg = str(err.value)
    assert "\n" not in msg and "pip install 'sharpeyes[export]'" in msg
    assert "--model yolov5n_static" in msg and "yolov5n.pt" in msg


def test_derived_export_runs_exporter_and_writes_record(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export step itself is stubbed here (the real one is in test_models_export.py)."""
    _, out = _derived(dirs)
    pt = get_model_spec("yolov5n.pt")
    shared, _ = dirs
    (shared / pt.filename).write_bytes(b"pt")
    fake_pt = dataclasses.replace(pt, sha256=hashlib.sha256(b"pt").hexdigest())
    real_get = get_model_spec
    monkeypatch.setattr(
        "sharpeyes.models.resolve.get_model_spec",
        lambda n: fake_pt if n == pt.name else real_get(n),
    )
    seen: list[tuple[Path, Path]] = []

    def exporter(source: Path, target: Path, s: ModelSpec) -> str:
        seen.append((source, target))
        target.write_bytes(PAYLOAD)
        return "stub exporter"

    monkeypatch.setattr(resolve, "_exporter_for", lambda s: (exporter, "1"))
    monkeypatch.setattr("models.export.yolov5_onnx.EXPORTER_VERSION", "1")
    assert resolve_model("yolov5n") == out
    assert seen == [(shared / pt.filename, out)]
    record = ExportRecord.read(export_record_path(out))
    assert record is not None and record.output_sha256 == PAYLOAD_SHA
    assert record.source_sha256 == fake_pt.sha256 and record.tool == "stub exporter"
    seen.clear()
    assert resolve_model("yolov5n") == out and not seen  # second call: from the cache
