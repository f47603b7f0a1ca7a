"""External phase input: set_phase (REST path), thread safety, and the UDP JSON message."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.pipeline.signal_input import ExternalPhaseInput, PhaseMessage, UdpPhaseListener
from sharpeyes.pipeline.types import LampColor


def test_state_at_uses_pts_and_wall_time() -> None:
    ext = ExternalPhaseInput(["main"])
    ext.set_phase("main", "red", at_pts=10.0)
    ext.set_phase("main", LampColor.GREEN, wall_ms=1_000_030_000)  # = pts 30 below
    assert ext.state_at("main", 5.0, 1_000_005_000) is None
    st = ext.state_at("main", 20.0, 1_000_020_000)
    assert st is not None and (st.color, st.since_pts) == (LampColor.RED, 10.0)
    st = ext.state_at("main", 31.0, 1_000_031_000)
    assert st is not None and st.color is LampColor.GREEN and st.since_pts == pytest.approx(30.0)


def test_repeated_status_keeps_the_start_time() -> None:
    ext = ExternalPhaseInput()
    for t in (1.0, 2.0, 3.0):
        ext.set_phase("g", "red", at_pts=t)
    st = ext.state_at("g", 3.5, 0)
    assert st is not None and (st.since_pts, st.heard_pts) == (1.0, 3.0)


def test_bad_input_is_a_config_error() -> None:
    ext = ExternalPhaseInput(["main"])
    with pytest.raises(ConfigError, match="unknown signal group 'x'"):
        ext.set_phase("x", "red", at_pts=0.0)
    with pytest.raises(ConfigError, match="color"):
        ext.set_phase("main", "purple", at_pts=0.0)
    with pytest.raises(ConfigError):
        ext.set_phase("main", "red", at_pts=0.0, wall_ms=5)


def test_set_phase_from_many_threads() -> None:
    ext = ExternalPhaseInput()

    def worker(k: int) -> None:
        for i in range(50):
            ext.set_phase(f"g{k}", "red" if i % 2 else "green", at_pts=float(i))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ext.groups() == {"g0", "g1", "g2", "g3"}
    st = ext.state_at("g2", 100.0, 0)
    assert st is not None and st.color is LampColor.RED and st.since_pts == 49.0


def test_message_schema() -> None:
    m = PhaseMessage.model_validate_json('{"group": "main", "color": "amber", "pts": 1.5}')
    assert m.color is LampColor.AMBER
    with pytest.raises(ValueError):
        PhaseMessage.model_validate_json(
            '{"group": "main", "color": "red", "pts": 1, "wall_ms": 2}'
        )


def test_udp_listener_applies_and_counts_bad_datagrams() -> None:
    ext = ExternalPhaseInput(["main"])
    listener = UdpPhaseListener(ext, "127.0.0.1", 0).start()
    try:
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.sendto(
            json.dumps({"group": "main", "color": "red", "pts": 4.0}).encode(), listener.address
        )
        tx.sendto(b"not json", listener.address)
        tx.sendto(b'{"group": "other", "color": "red"}', listener.address)
        tx.close()
        deadline = time.monotonic() + 5.0
        while listener.accepted + listener.rejected < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        listener.close()
    assert (listener.accepted, listener.rejected) == (1, 2)
    st = ext.state_at("main", 5.0, 0)
    assert st is not None and st.color is LampColor.RED and st.since_pts == 4.0


def test_a_long_running_input_keeps_a_bounded_history() -> None:
    """A live camera told a phase a second for days: the history and its bookkeeping stay
    bounded (only the last messages are kept)."""
    ext = ExternalPhaseInput(["main"])
    for i in range(2000):
        ext.set_phase("main", "red" if (i // 30) % 2 else "green", at_pts=float(i))
        ext.state_at("main", float(i) + 0.5, 0)
    assert len(ext._used) <= 256
    usage = ext.usage()
    assert (usage.applied, usage.ignored) == (2000, 0)
