"""benchmarks.fetch_clips: a clip found, or fetched from a real HTTP server — the file itself or a
member of a Debian package — checked against its sha256, never left half-written."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks import fetch_clips
from benchmarks.colour_eval import splits_of
from benchmarks.fetch_clips import ClipSource, ClipSpec, FetchError

CLIP = b"not really a video, but bytes with a pinned hash" * 100
MEMBER = "./usr/share/doc/opencv-doc/examples/data/clip.avi"


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, data in members:
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n"
        assert len(header) == 60
        out.write(header.encode("ascii"))
        out.write(data)
        if len(data) % 2:
            out.write(b"\n")
    return out.getvalue()


def _tar_xz(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _deb(files: dict[str, bytes]) -> bytes:
    return _ar(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.xz", _tar_xz({"./control": b"Package: x\n"})),
            ("data.tar.xz", _tar_xz(files)),
        ]
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on localhost serving ``tmp_path/www``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An empty shared folder and cache for the test."""
    shared, cache = tmp_path / "shared", tmp_path / "cache" / "models"
    (shared / "sample_videos").mkdir(parents=True)
    monkeypatch.setenv("SHARPEYES_SHARED", str(shared))
    monkeypatch.setenv("SHARPEYES_CACHE", str(cache))
    return shared, cache.parent / "clips"


def _spec(*sources: ClipSource, data: bytes = CLIP) -> ClipSpec:
    return ClipSpec("clip.avi", hashlib.sha256(data).hexdigest(), len(data), sources, "test")


def test_a_clip_is_taken_out_of_a_debian_package_and_cached(
    server: tuple[str, Path], places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = server
    (root / "pkg.deb").write_bytes(_deb({MEMBER: CLIP, "./usr/other": b"x"}))
    monkeypatch.setitem(fetch_clips.CLIPS, "clip.avi", _spec(ClipSource(f"{url}/pkg.deb", MEMBER)))
    _, clips = places
    assert fetch_clips.locate("clip.avi") is None
    got = fetch_clips.fetch("clip.avi")
    assert got == clips / "clip.avi"
    assert got.read_bytes() == CLIP
    assert fetch_clips.locate("clip.avi") == got
    assert [p.name for p in clips.iterdir()] == ["clip.avi"]  # no temporary file left
    (root / "pkg.deb").unlink()  # found in the cache now: nothing downloaded
    assert fetch_clips.fetch("clip.avi") == got


def test_a_wrong_or_broken_source_falls_through_to_the_next(
    server: tuple[str, Path], places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = server
    (root / "other.deb").write_bytes(_deb({MEMBER: b"other bytes"}))  # wrong hash
    (root / "cut.deb").write_bytes(_deb({MEMBER: CLIP})[:200])  # cut short
    (root / "clip.avi").write_bytes(CLIP)
    spec = _spec(
        ClipSource(f"{url}/missing.deb", MEMBER),  # 404
        ClipSource(f"{url}/other.deb", MEMBER),
        ClipSource(f"{url}/cut.deb", MEMBER),
        ClipSource(f"{url}/clip.avi"),
    )
    monkeypatch.setitem(fetch_clips.CLIPS, "clip.avi", spec)
    assert fetch_clips.fetch("clip.avi").read_bytes() == CLIP


def test_no_good_source_is_a_clear_error_and_leaves_nothing(
    server: tuple[str, Path], places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = server
    (root / "other.deb").write_bytes(_deb({"./usr/elsewhere": CLIP}))
    (root / "bad.avi").write_bytes(b"garbage")
    spec = _spec(ClipSource(f"{url}/other.deb", MEMBER), ClipSource(f"{url}/bad.avi"))
    monkeypatch.setitem(fetch_clips.CLIPS, "clip.avi", spec)
    with pytest.raises(FetchError) as err:
        fetch_clips.fetch("clip.avi")
    text = str(err.value)
    assert "other.deb" in text and "is not a file" in text
    assert "bad.avi" in text and "sha256" in text
    _, clips = places
    assert list(clips.iterdir()) == []
    with pytest.raises(FetchError, match="unknown clip"):
        fetch_clips.fetch("nope.avi")


def test_a_copy_in_the_shared_folder_is_used_only_when_its_hash_is_right(
    server: tuple[str, Path], places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = server
    shared, _ = places
    (root / "clip.avi").write_bytes(CLIP)
    monkeypatch.setitem(fetch_clips.CLIPS, "clip.avi", _spec(ClipSource(f"{url}/clip.avi")))
    mine = shared / "sample_videos" / "clip.avi"
    mine.write_bytes(CLIP)
    assert fetch_clips.fetch("clip.avi") == mine
    mine.write_bytes(b"edited")
    got = fetch_clips.fetch("clip.avi")  # a changed copy is not trusted: fetched again
    assert got != mine and got.read_bytes() == CLIP


def test_label_files_name_their_splits(tmp_path: Path) -> None:
    def labels(splits: list[str]) -> Path:
        path = tmp_path / f"{'_'.join(splits)}.json"
        clips = {f"c{i}.mp4": {"config": None, "split": s} for i, s in enumerate(splits)}
        path.write_text(json.dumps({"clips": clips, "vehicles": [], "persons": []}))
        return path

    assert splits_of(labels(["held_out", "tune", "held_out"])) == ["tune", "held_out"]
    assert splits_of(labels(["unseen"])) == ["unseen"]
    root = Path(__file__).resolve().parents[1] / "tests" / "data"
    assert splits_of(root / "colour_labels_pets.json") == ["unseen"]
    assert splits_of(root / "colour_labels.json") == ["tune", "held_out"]
