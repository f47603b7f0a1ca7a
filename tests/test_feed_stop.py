"""Stopping the service while a live-feed client is connected ends the stream cleanly: the
feed's streams are closed before the server shuts down, so uvicorn's graceful shutdown finds
no response to cancel (before: "Exception in ASGI application" with a traceback on every stop
with a client connected, after the 2 s grace) and the client sees its stream end."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import httpx
import pytest

from sharpeyes.api.commands.serve import start_server
from sharpeyes.api.rest.auth.tokens import Role
from sharpeyes.api.rest.service import build_store_service
from tests._api_fixtures import free_port, make_event


@pytest.mark.integration
def test_stopping_with_a_feed_client_connected_ends_its_stream_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = build_store_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "files")
    _, token = service.tokens.issue("viewer", Role.VIEWER)
    server = start_server(service, "127.0.0.1", free_port())
    got: list[str] = []
    ended = threading.Event()

    def client() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.stream("GET", f"{server.url}/api/v1/feed", headers=headers, timeout=30) as r:
            for line in r.iter_lines():
                got.append(line)
        ended.set()

    reader = threading.Thread(target=client, daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while not any(x.startswith("id:") for x in got):  # connected: the stream's opening id
        assert time.monotonic() < deadline, got
        time.sleep(0.05)
    service.ingest([make_event(1)])
    while not any(x.startswith("data:") for x in got):
        assert time.monotonic() < deadline, got
        time.sleep(0.05)
    caplog.set_level(logging.ERROR)
    t0 = time.monotonic()
    server.stop()
    took = time.monotonic() - t0
    assert ended.wait(5), "the client's stream did not end"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert took < 2.0, f"stop took {took:.2f} s (the graceful shutdown had to cancel the stream)"
    service.db.close()
