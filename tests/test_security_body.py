"""Issue 14 item 9: body limits and authentication before any body byte is read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from starlette.types import ASGIApp, Message

from sharpeyes.api.rest.guard import BodyLimit
from tests._api_fixtures import Seeded, make_app, seed_service


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(str(tmp_path / "events.db"), tmp_path)
    yield s
    s.service.db.close()


def call(
    app: ASGIApp, method: str, path: str, headers: dict[str, str], chunks: list[bytes]
) -> tuple[int, int]:
    """(status, body chunks the app pulled) for one request driven at the ASGI level."""
    pulled = 0

    async def receive() -> Message:
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {
                "type": "http.request",
                "body": chunks[pulled - 1],
                "more_body": pulled < len(chunks),
            }
        await anyio.sleep(3600)  # a client that has nothing more to say
        return {"type": "http.disconnect"}

    status = 0

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("192.0.2.50", 40000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }

    async def main() -> None:
        with anyio.fail_after(10):
            await app(scope, receive, send)

    anyio.run(main)
    return status, pulled


def test_body_limits_and_auth_before_the_body(seeded: Seeded) -> None:
    app = make_app(seeded, body_limits=(BodyLimit("/api/v1/tokens", 2048),))
    big = {"content-type": "application/json", "content-length": str(300 * 1024 * 1024)}
    # a 300 MB declaration is refused at once, without a token and with one
    assert call(app, "POST", "/api/v1/cameras", big, [b"{"]) == (413, 0)
    assert call(app, "POST", "/api/v1/cameras", {**big, **seeded.auth("admin")}, [b"{"]) == (
        413,
        0,
    )
    # no (or a bad) token: 401 and not one body byte read
    body = b'{"id": "camz", "url": "rtsp://10.0.0.1/x"}'
    small = {"content-type": "application/json", "content-length": str(len(body))}
    assert call(app, "POST", "/api/v1/cameras", small, [body]) == (401, 0)
    bad = {**small, "authorization": "Bearer se_0123456789ab.nope"}
    assert call(app, "POST", "/api/v1/cameras", bad, [body]) == (401, 0)
    # a per-route limit, and a chunked body that grows past it is cut off
    chunked = {"content-type": "application/json", "transfer-encoding": "chunked"}
    status, pulled = call(
        app, "POST", "/api/v1/tokens", {**chunked, **seeded.auth("admin")}, [b" " * 1024] * 50
    )
    assert status == 413 and pulled <= 3
    # a valid, small request still works
    ok = {**small, **seeded.auth("admin")}
    assert call(app, "POST", "/api/v1/cameras", ok, [body])[0] == 201


def test_receiver_refuses_an_oversized_body_before_reading_it() -> None:
    """The GA/T 1400 receiver answers 413 from the declared length alone."""
    from fastapi.testclient import TestClient

    from sharpeyes.api.viid.receiver.server import create_receiver_app
    from sharpeyes.api.viid.receiver.state import ReceiverConfig

    app = create_receiver_app(ReceiverConfig(max_body_bytes=4096))
    with TestClient(app) as client:
        r = client.post("/VIID/MotorVehicles", content=b"x" * 10_000)
        assert r.status_code == 413
