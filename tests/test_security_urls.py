"""Issue 14 items 7 and 8: camera URL allow-list, masking, no raw open errors for viewers,
credentials encrypted at rest, private data files."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sharpeyes.api.rest.cameras import mask_url as api_mask_url
from sharpeyes.api.rest.schemas import StreamHealthPublic
from sharpeyes.streams.health import mask_url as health_mask_url
from sharpeyes.streams.urls import (
    RTSP_PROTOCOL_WHITELIST,
    SourceUrlError,
    check_source_url,
    mask_text,
    mask_url,
)
from tests._api_fixtures import Seeded, make_app, seed_service


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(str(tmp_path / "events.db"), tmp_path)
    yield s
    s.service.db.close()


@pytest.fixture
def client(seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(make_app(seeded)) as c:
        yield c


@pytest.mark.parametrize(
    "url",
    [
        "concat:/etc/passwd|/etc/shadow",
        "subfile,,start,0,end,100,,:/etc/passwd",
        "file:///etc/passwd",
        "/etc/passwd",
        "tcp://10.0.0.1:6379",
        "http://169.254.169.254/latest/meta-data",
        "gopher://127.0.0.1:25/_HELO",
        "pipe:0",
        "rtsp:/single-slash",
        "rtsp://cam/\nx",
    ],
)
def test_camera_urls_outside_the_allow_list_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(SourceUrlError):
        check_source_url(url, file_roots=[tmp_path])


def test_allowed_camera_urls(tmp_path: Path) -> None:
    for url in ("rtsp://u:p@10.0.0.5:554/Streaming/Channels/101", "rtsps://cam.example/live"):
        assert check_source_url(url, file_roots=()) == url
    clip = tmp_path / "clips" / "a.mp4"
    assert check_source_url(str(clip), file_roots=[tmp_path / "clips"]) == str(clip)
    assert check_source_url(f"file://{clip}", file_roots=[tmp_path / "clips"])
    with pytest.raises(SourceUrlError):
        check_source_url(str(clip), file_roots=())  # no media roots: no files
    with pytest.raises(SourceUrlError):
        check_source_url(str(tmp_path / "clips" / ".." / "x.mp4"), file_roots=[tmp_path / "clips"])
    assert "file" not in RTSP_PROTOCOL_WHITELIST.split(",")


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("ftp://user:s3cr3t@host/x", "s3cr3t"),
        ("rtmps://user:s3cr3t@host/app", "s3cr3t"),
        ("rtsp:/user:s3cr3t@host/live", "s3cr3t"),
        ("rtsp://admin:pa#ss?wd@10.0.0.5/live", "pa#ss?wd"),
        ("rtsp://admin:p@ss@10.0.0.5/live", "p@ss"),
        ("rtsp://10.0.0.5/live?token=s3cr3t&ch=1", "s3cr3t"),
        ("http://h/x?sig=s3cr3t", "s3cr3t"),
        ("rtsp://h/x?Password=s3cr3t#frag", "s3cr3t"),
        ("/some/path?token=s3cr3t", "s3cr3t"),
    ],
)
def test_mask_url_everywhere(url: str, secret: str) -> None:
    for mask in (mask_url, api_mask_url, health_mask_url):
        masked = mask(url)
        assert masked is not None and secret not in masked and "***" in masked, (mask, masked)
    text = f"cannot open '{url}': 401"
    assert secret not in (mask_text(text) or "")


def test_api_refuses_bad_urls_and_viewers_get_no_open_errors(
    seeded: Seeded, client: TestClient
) -> None:
    admin = seeded.auth("admin")
    for url in ("concat:/etc/passwd|x", "file:///etc/passwd", "http://10.0.0.1/"):
        r = client.post("/api/v1/cameras", json={"id": "bad", "url": url}, headers=admin)
        assert r.status_code == 400, (url, r.text)
    r = client.post(
        "/api/v1/cameras", json={"id": "ok", "url": "rtsp://10.0.0.9/live"}, headers=admin
    )
    assert r.status_code == 201
    r = client.patch("/api/v1/cameras/ok", json={"url": "concat:/a|/b"}, headers=admin)
    assert r.status_code == 400

    leak = "rtsp://admin:hunter2@10.0.0.7/x: /etc/shadow: No such file or directory"
    seeded.service.set_health_provider(
        lambda: {"cam1": StreamHealthPublic(camera_id="cam1", state="error", url=None, detail=leak)}
    )
    viewer = client.get("/api/v1/streams/cam1", headers=seeded.auth("viewer")).json()
    assert viewer["state"] == "error" and "/etc/shadow" not in viewer["detail"]
    detail = client.get("/api/v1/streams/cam1", headers=admin).json()["detail"]
    assert "/etc/shadow" in detail and "hunter2" not in detail


def test_credentials_encrypted_at_rest_and_files_private(
    seeded: Seeded, client: TestClient
) -> None:
    url = "rtsp://admin:hunter2@192.0.2.10:554/live?token=tok3n"
    r = client.post(
        "/api/v1/cameras", json={"id": "cam9", "url": url}, headers=seeded.auth("admin")
    )
    assert r.status_code == 201 and "hunter2" not in r.text and "tok3n" not in r.text
    with seeded.service.db.transaction(readonly=True) as tx:
        rows = tx.fetchall("SELECT config FROM api_cameras")
    stored = " ".join(str(r[0]) for r in rows)
    assert "hunter2" not in stored and "tok3n" not in stored
    assert seeded.service.cameras.get("cam9").config.url == url  # still usable by the runner

    # a restarted service (same key) decrypts it
    from sharpeyes.api.rest.cameras import CameraRegistry
    from sharpeyes.api.rest.service import derive_key

    again = CameraRegistry(
        db=seeded.service.db, secret_key=derive_key(b"test-pepper", "camera-credentials")
    )
    assert again.get("cam9").config.url == url

    db_path = Path(seeded.service.db.url.removeprefix("sqlite:///"))
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(seeded.files_root.stat().st_mode) == 0o700
