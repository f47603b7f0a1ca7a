"""Model mirrors and the published default model: a node that only runs sharpeyes needs no torch.

``SHARPEYES_MODEL_MIRROR`` names base URLs (or directories) tried before the official URLs; the
derived default ``yolov5n`` is fetched there as its *published* artefact (pinned sha256) and
only exported locally when no mirror has it. ``sharpeyes models publish DIR`` fills a mirror.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharpeyes.models import resolve
from sharpeyes.models.registry import ModelSpec, get_model_spec
from sharpeyes.models.resolve import MIRROR_ENV, resolve_model
from sharpeyes.pipeline.errors import ModelIntegrityError, ModelNotFoundError

PUBLISHED = b"published onnx bytes\n" * 64
PUBLISHED_SHA = hashlib.sha256(PUBLISHED).hexdigest()


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    shared, cache = tmp_path / "shared", tmp_path / "cache"
    (shared / "models").mkdir(parents=True)
    monkeypatch.setenv("SHARPEYES_SHARED", str(shared))
    monkeypatch.setenv("SHARPEYES_CACHE", str(cache))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.delenv(resolve.OFFLINE_ENV, raising=False)
    return shared / "models", cache


@pytest.fixture
def www(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def _default_spec() -> ModelSpec:
    """The real default detector's spec with a small published artefact standing in for it."""
    return dataclasses.replace(get_model_spec("yolov5n"), published_sha256=PUBLISHED_SHA)


@pytest.fixture
def no_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a node installed with plain ``pip install sharpeyes``: no torch, no yolov5."""
    monkeypatch.setattr(resolve, "_exporter_for", lambda spec: None)


def test_registry_pins_the_published_default_model() -> None:
    spec = get_model_spec("yolov5n")
    assert spec.is_derived and spec.published_sha256 is not None
    assert len(spec.published_sha256) == 64 and int(spec.published_sha256, 16) >= 0
    assert spec.accepted_sha256 == ()  # an explicit user export is still taken as given


@pytest.mark.usefixtures("no_exporter")
def test_default_model_comes_from_a_mirror_without_the_exporter(
    dirs: tuple[Path, Path], www: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = www
    spec = _default_spec()
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(spec)
    assert MIRROR_ENV in str(err.value) and "\n" not in str(err.value)

    (root / spec.filename).write_bytes(PUBLISHED)
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:1/nowhere, {url}/")  # first one is down
    path = resolve_model(spec)
    _, cache = dirs
    assert path == cache / spec.filename and path.read_bytes() == PUBLISHED
    # Offline afterwards: the cached published artefact is used as is (no export record).
    monkeypatch.setenv(resolve.OFFLINE_ENV, "1")
    (root / spec.filename).unlink()
    assert resolve_model(spec) == path


@pytest.mark.usefixtures("no_exporter")
def test_a_tampered_mirror_copy_is_refused(
    dirs: tuple[Path, Path], www: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = www
    spec = _default_spec()
    (root / spec.filename).write_bytes(PUBLISHED[:-1] + b"!")
    monkeypatch.setenv(MIRROR_ENV, url)
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(spec)
    assert "sha256 mismatch" in str(err.value)
    _, cache = dirs
    assert not (cache / spec.filename).exists()


def test_mirror_miss_falls_back_to_the_export(
    dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users with their own torch still get the model when no mirror holds it."""
    shared, cache = dirs
    pt = get_model_spec("yolov5n.pt")
    (shared / pt.filename).write_bytes(b"pt")
    fake_pt = dataclasses.replace(pt, sha256=hashlib.sha256(b"pt").hexdigest())
    real_get = get_model_spec
    monkeypatch.setattr(
        "sharpeyes.models.resolve.get_model_spec",
        lambda n: fake_pt if n == pt.name else real_get(n),
    )

    def exporter(source: Path, target: Path, s: ModelSpec) -> str:
        target.write_bytes(b"local export")
        return "stub exporter"

    monkeypatch.setattr(resolve, "_exporter_for", lambda s: (exporter, "1"))
    monkeypatch.setattr("sharpeyes.models.export.yolov5_onnx.EXPORTER_VERSION", "1")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "empty-mirror"))
    out = resolve_model(_default_spec())
    assert out == cache / get_model_spec("yolov5n").filename
    assert out.read_bytes() == b"local export"


def test_pinned_models_use_a_directory_mirror_first(
    dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = b"face model" * 10
    spec = dataclasses.replace(
        get_model_spec("yolox_nano"),
        name="fake",
        filename="sub/fake.onnx",
        sha256=hashlib.sha256(payload).hexdigest(),
        also_accept_sha256=(),
        url="http://127.0.0.1:1/unreachable.onnx",
    )
    mirror = tmp_path / "mirror"
    (mirror / "sub").mkdir(parents=True)
    (mirror / "sub/fake.onnx").write_bytes(payload)
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    got = resolve_model(spec)
    assert got.read_bytes() == payload and got != mirror / "sub/fake.onnx"  # copied to cache

    (mirror / "sub/fake.onnx").write_bytes(b"evil")
    shutil.rmtree(dirs[1])
    with pytest.raises(ModelIntegrityError, match="discarded"):
        resolve_model(spec)


def test_publish_fills_a_mirror_that_resolves_offline_nodes(
    dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``models publish`` on a machine with the models → a fresh node resolves from it."""
    from sharpeyes.api.commands.models_cmd import publish_models

    shared, _ = dirs
    spec = get_model_spec("yolox_nano")
    real_shared = Path(__file__).resolve().parents[2] / "shared" / "models" / spec.filename
    if not real_shared.is_file():
        pytest.skip(f"{real_shared} not present")
    shutil.copyfile(real_shared, shared / spec.filename)
    mirror = tmp_path / "site-mirror"
    done, skipped = publish_models(mirror)
    assert spec.filename in done
    assert any(s.startswith("yolov5n:") for s in skipped)  # no export here: not published
    lines = (mirror / "SHA256SUMS").read_text().splitlines()
    sums = {name: digest for digest, name in (line.split("  ", 1) for line in lines)}
    assert sums == {spec.filename: spec.sha256}

    # A fresh node: nothing in shared or cache, downloads only from the mirror.
    monkeypatch.setenv("SHARPEYES_SHARED", str(tmp_path / "none"))
    monkeypatch.setenv("SHARPEYES_CACHE", str(tmp_path / "fresh-cache"))
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    got = resolve_model(dataclasses.replace(spec, url=None))
    assert got.parent == tmp_path / "fresh-cache"
    assert hashlib.sha256(got.read_bytes()).hexdigest() == spec.sha256
