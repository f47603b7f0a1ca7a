"""End to end: `sharpeyes analyze --deliver` → the receiver holds one record per event."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sharpeyes.api.commands.cli import main
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import ReceiverConfig

pytestmark = pytest.mark.integration


def test_analyze_delivers_every_event_once(
    sample_videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = sample_videos / "highway_640x360.mp4"
    monkeypatch.setenv("SHARPEYES_VIID_PASSWORD", "s3cret-pass")
    cfg = ReceiverConfig(accounts={"admin": "s3cret-pass"})
    with ReceiverServer(config=cfg) as receiver:
        delivery = tmp_path / "delivery.yaml"
        delivery.write_text(
            f"base_url: {receiver.url}\n"
            'device_id: "34020000001190000001"\n'
            "username: admin\n"
            "password_env: SHARPEYES_VIID_PASSWORD\n"
        )
        out = tmp_path / "out"
        args = ["analyze", str(clip), "--out", str(out), "--fps", "10", "--no-progress"]
        rc = main([*args, "--deliver", str(delivery)])
        assert rc == 0
        events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        assert len(events) >= 5
        with sqlite3.connect(out / "events.db") as db:
            stored = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            pending = db.execute(
                "SELECT COUNT(*) FROM outbox WHERE state != 'delivered'"
            ).fetchone()[0]
        assert stored == len(events)
        assert pending == 0
        held = receiver.state.ids()
        stats = receiver.state.stats()
    assert len(held) == stored, stats
    assert len(set(held)) == len(held)
    assert stats["rejected"] == 0, stats
