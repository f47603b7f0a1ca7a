"""Outbox → sender → receiver over real HTTP and a real SQLite store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sharpeyes.api.store import EventStore, open_store
from sharpeyes.api.viid.client import ViidClient
from sharpeyes.api.viid.mapping import EventMapper
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import FaultMode, FaultPlan, ReceiverConfig, ReceiverState
from sharpeyes.api.viid.sender import OutboxSender, SenderOptions
from sharpeyes.pipeline.types import Event, EventType, Plate
from tests._viid_fixtures import client_config, free_port, jpeg, make_event, mapping_config

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
RCFG = ReceiverConfig(accounts={"admin": "secret"})
FAST = SenderOptions(claim_limit=50, lease_ms=1000, backoff_initial_s=0.01, backoff_max_s=0.05)


def _events(n: int) -> list[Event]:
    types = [
        EventType.VEHICLE_PASS,
        EventType.NON_MOTOR_PASS,
        EventType.PERSON_SEEN,
        EventType.RED_LIGHT_VIOLATION,
        EventType.STREAM_HEALTH,
    ]
    return [
        make_event(
            types[i % len(types)],
            track_id=i,
            t_ms=1_704_081_600_000 + i * 37,
            crop=jpeg(seed=i),
            plate=Plate("京A1234" + str(i % 10), "blue", 0.9),
        )
        for i in range(n)
    ]


def _store(tmp: Path, n: int) -> tuple[EventStore, str]:
    url = f"sqlite:///{tmp / 'ev.db'}"
    store = open_store(url, tmp / "files")
    store.add_events(_events(n), outbox_destinations=["viid"])
    return store, url


def _drain(sender: OutboxSender, deadline_s: float = 20) -> None:
    end = time.monotonic() + deadline_s
    while sender.backlog().backlog and time.monotonic() < end:
        sender.client.tick()
        sender.run_once()
        time.sleep(0.02)


def test_delivers_every_record_once(tmp_path: Path) -> None:
    store, _ = _store(tmp_path, 40)
    with ReceiverServer(config=RCFG) as srv, ViidClient(client_config(srv.url)) as client:
        sender = OutboxSender(store, client, EventMapper(mapping_config()), options=FAST)
        _drain(sender)
        stats = sender.backlog()
        assert stats.backlog == 0 and stats.delivered == 40
        # 8 stream-health events are not GA/T 1400 records
        assert len(srv.state.ids()) == 32 and srv.state.duplicates == 0
        assert sender.totals.skipped == 8


def test_receiver_down_then_up_loses_nothing(tmp_path: Path) -> None:
    store, _ = _store(tmp_path, 25)
    port = free_port()
    state = ReceiverState()
    client = ViidClient(client_config(f"http://127.0.0.1:{port}"))
    sender = OutboxSender(store, client, EventMapper(mapping_config()), options=FAST)
    for _ in range(5):  # platform down: every round fails, rows stay pending
        client.tick()
        sender.run_once()
    # nothing is claimed while the client waits out its Register back-off, so the 5
    # stream-health rows (no GA/T 1400 record: skipped at their claim) wait with the 20 others
    assert sender.backlog().backlog == 25
    with ReceiverServer(port=port, config=RCFG, state=state):
        time.sleep(0.3)
        _drain(sender)
    assert sender.backlog().backlog == 0 and len(state.ids()) == 20 and state.duplicates == 0
    client.close()


def test_only_failed_objects_are_retried(tmp_path: Path) -> None:
    store, _ = _store(tmp_path, 10)
    with ReceiverServer(config=RCFG) as srv, ViidClient(client_config(srv.url)) as client:
        srv.state.set_faults(FaultPlan(FaultMode.ERROR_500, count=2))
        sender = OutboxSender(store, client, EventMapper(mapping_config()), options=FAST)
        _drain(sender)
        assert sender.backlog().backlog == 0 and len(srv.state.ids()) == 8


def test_sigkill_mid_batch_then_restart_loses_nothing(tmp_path: Path) -> None:
    n = 60
    store, url = _store(tmp_path, n)
    state = ReceiverState()
    with ReceiverServer(config=RCFG, state=state) as srv:
        state.set_faults(FaultPlan(FaultMode.SLOW, count=-1, delay_s=0.15))
        env = {
            **os.environ,
            "DB": url,
            "FILES": str(tmp_path / "files"),
            "URL": srv.url,
            "PYTHONPATH": str(REPO),
        }
        child = subprocess.Popen(
            [sys.executable, "-c", "from tests._viid_fixtures import sender_main; sender_main()"],
            cwd=REPO,
            env=env,
        )
        deadline = time.monotonic() + 30
        while len(state.ids()) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)  # mid-run, with requests in flight
        child.wait(timeout=10)
        got_before = len(state.ids())
        assert 0 < got_before < n
        state.set_faults(FaultPlan())
        time.sleep(1.6)  # the dead sender's lease runs out
        with ViidClient(client_config(srv.url)) as client:
            sender = OutboxSender(store, client, EventMapper(mapping_config()), options=FAST)
            _drain(sender, 30)
        assert sender.backlog().backlog == 0
        assert len(state.ids()) == n - n // 5  # every GA/T 1400 record exactly once by id
