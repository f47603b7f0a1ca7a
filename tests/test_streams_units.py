"""Pure-logic parts of the stream sources: sampling, latest-frame queue, pts→wall time,
credential masking, reconnect backoff and restart budget."""

from __future__ import annotations

import itertools
import threading

import pytest

from sharpeyes.pipeline.restart import RestartBudget, RetryPolicy
from sharpeyes.streams.health import DropReason, RateMeter, mask_url, redact
from sharpeyes.streams.latest import LatestQueue
from sharpeyes.streams.sampling import Sampler
from sharpeyes.streams.timing import PtsClock


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_sampler_5_of_30_fps_takes_every_6th_frame() -> None:
    s = Sampler(5.0)
    taken = [i for i in range(90) if s.accept(i / 30)]
    assert taken == list(range(0, 90, 6))


def test_sampler_ntsc_rate_averages_target() -> None:
    s = Sampler(5.0)
    taken = [i for i in range(3000) if s.accept(i * 1001 / 30000)]
    seconds = 3000 * 1001 / 30000
    assert abs(len(taken) / seconds - 5.0) < 0.05
    gaps = {b - a for a, b in itertools.pairwise(taken)}
    assert gaps <= {5, 6}


def test_sampler_gap_and_backwards_restart_schedule() -> None:
    s = Sampler(2.0)
    assert s.accept(0.0)
    assert not s.accept(0.25)
    assert s.accept(10.0)  # long gap: taken, no burst afterwards
    assert not s.accept(10.1)
    assert s.accept(3.0)  # backwards: restart
    assert Sampler(None).accept(0.0) and Sampler(None).accept(0.0)


def test_latest_queue_drops_oldest_and_counts_backlog() -> None:
    q: LatestQueue[int] = LatestQueue(2)
    assert q.put(1) and q.put(2)
    assert not q.put(3)
    assert q.drops.get(DropReason.BACKLOG) == 1
    assert [q.get(0), q.get(0), q.get(0)] == [2, 3, None]


def test_latest_queue_close_wakes_waiting_consumer() -> None:
    q: LatestQueue[int] = LatestQueue(1)
    got: list[int | None] = []
    t = threading.Thread(target=lambda: got.append(q.get(10)))
    t.start()
    q.close()
    t.join(2)
    assert not t.is_alive() and got == [None]
    with pytest.raises(ValueError):
        LatestQueue(0)


def test_pts_clock_maps_offsets_and_stays_monotonic_across_reconnect() -> None:
    clock = FakeClock()
    pc = PtsClock(clock)
    first = pc.map(100.0)
    assert first.pts == 0.0 and first.wall_time_ms == round(clock.t * 1000)
    clock.t += 0.5
    s = pc.map(100.5)
    assert s.pts == pytest.approx(0.5) and s.wall_time_ms == round(clock.t * 1000)
    pc.new_connection()
    clock.t += 2.0
    again = pc.map(3.0)  # the new connection restarts its pts near zero
    assert again.pts == pytest.approx(2.5)
    assert pc.resets == 0


def test_pts_clock_reanchors_on_jumps_and_counts_resets() -> None:
    clock = FakeClock()
    pc = PtsClock(clock, max_jump_s=5.0)
    pc.map(10.0)
    clock.t += 0.1
    back = pc.map(2.0)  # backwards step
    assert back.pts > 0.0 and pc.resets == 1
    clock.t += 0.1
    jump = pc.map(500.0)  # far forward
    assert jump.pts == pytest.approx(back.pts + 0.1) and pc.resets == 2


def test_pts_clock_none_pts_uses_arrival_and_skew_is_reported() -> None:
    clock = FakeClock()
    pc = PtsClock(clock)
    a = pc.map(None)
    clock.t += 0.2
    b = pc.map(None)
    assert b.pts == pytest.approx(a.pts + 0.2)
    clock.t += 0.2
    c = pc.map(7.0)  # first real pts continues the arrival timeline
    assert c.pts == pytest.approx(0.4)
    clock.t += 1.0  # the next frame arrives 0.9 s late
    d = pc.map(7.1)
    assert pc.skew_ms == pytest.approx(900.0)
    assert d.wall_time_ms == round((clock.t - 0.9) * 1000)


def test_pts_clock_burst_moves_anchor_so_wall_is_never_in_future() -> None:
    clock = FakeClock()
    pc = PtsClock(clock)
    stamps = [pc.map(i / 10) for i in range(10)]  # ten buffered frames in one instant
    assert all(s.wall_time_ms <= round(clock.t * 1000) for s in stamps)


def test_mask_url_and_redact() -> None:
    url = "rtsp://admin:s3cr3t@10.0.0.5:554/Streaming/Channels/101"
    assert mask_url(url) == "rtsp://admin:***@10.0.0.5:554/Streaming/Channels/101"
    assert mask_url("rtsp://10.0.0.5/x") == "rtsp://10.0.0.5/x"
    text = redact(f"cannot open '{url}': refused (pw s3cr3t)", url)
    assert "s3cr3t" not in text and "admin:***@" in text


def test_backoff_grows_caps_and_budget_fails() -> None:
    b = RestartBudget(RetryPolicy(0.5, 2.0, jitter=0.0, restart_budget=3, restart_window_s=60))
    delays = [b.failure(float(t)) for t in range(3)]
    assert delays == [(0.5, False), (1.0, False), (2.0, False)]
    assert b.failure(3.0) == (60.0, True)
    assert b.in_window(3.0) == 4
    assert b.failure(200.0) == (2.0, False)  # old failures left the window
    b.success()
    assert b.failure(201.0)[0] == 0.5


def test_rate_meter() -> None:
    m = RateMeter(window_s=1.0)
    for i in range(20):
        m.tick(1000.0 + i * 0.1)
    assert m.rate(1001.95) == pytest.approx(10.0, abs=1.0)


def test_pts_clock_gives_a_packet_and_its_frame_the_same_time_across_a_jump() -> None:
    """Over RTSP packets go to the clip ring before their frames are decoded. When the camera's
    timestamps jump (backwards here: its encoder restarted), the packets of the new segment
    must be stamped as their frames will be, or a clip across the jump is out of order."""
    clock = FakeClock()
    pc = PtsClock(clock)
    period = 0.04
    # two segments of 12 frames, coded I P B B P B B …: decode order per segment
    order = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 11, 10]
    raw = [100.0 + i * period for i in order] + [5.0 + i * period for i in order]
    stamped: dict[float, float] = {}
    shown: list[tuple[float, float]] = []
    pending: list[float] = []
    for k, r in enumerate(raw):
        clock.t += period
        rel = pc.relative(r)
        assert rel is not None
        stamped[r] = rel
        pending.append(r)
        if k >= 2:  # the decoder's delay: a frame comes out two packets later, in pts order
            seg = [p for p in pending if (p >= 100.0) == (pending[0] >= 100.0)]
            out = min(seg)
            pending.remove(out)
            shown.append((out, pc.map(out).pts))
    for out in sorted(pending, key=lambda p: (p < 100.0, p)):
        clock.t += period
        shown.append((out, pc.map(out).pts))
    assert len(shown) == 24 and pc.resets == 1
    assert all(b[1] > a[1] for a, b in itertools.pairwise(shown))  # never back in time
    for r, pts in shown:
        assert pts == pytest.approx(stamped[r]), r  # the frame's time is its packet's
