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


def test_deliver_refuses_a_file_whose_recording_time_is_unknown(
    sample_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a creation_time tag or --start-time every record would carry the analysis time
    (a view library files it at the wrong moment): refused before anything is written."""
    clip = sample_videos / "urban_buses_596x336.mp4"  # no creation_time tag
    delivery = tmp_path / "delivery.yaml"
    delivery.write_text(
        'base_url: http://127.0.0.1:9\ndevice_id: "34020000001190000001"\n'
        "username: admin\npassword: x\n"
    )
    out = tmp_path / "out"
    rc = main(["analyze", str(clip), "--out", str(out), "--deliver", str(delivery)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "no creation_time tag" in err and "--start-time" in err
    assert not out.exists()
