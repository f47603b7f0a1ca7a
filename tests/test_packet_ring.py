"""PacketRing: bounds in bytes and seconds, keyframe start, span selection, thread safety."""

from __future__ import annotations

import threading
from fractions import Fraction

import pytest

from sharpeyes.pipeline.errors import StreamError
from sharpeyes.streams.packet_ring import EncodedPacket, PacketRing, StreamParams, require_params

TB = Fraction(1, 90_000)
FPS = 25
GOP = 10


def packet(i: int, size: int = 100, gop: int = GOP) -> EncodedPacket:
    pts = i * 90_000 // FPS
    return EncodedPacket(
        data=bytes(size),
        pts=pts,
        dts=pts,
        duration=90_000 // FPS,
        time_base=TB,
        is_keyframe=i % gop == 0,
        pts_s=i / FPS,
    )


def params(width: int = 320) -> StreamParams:
    return StreamParams("h264", None, width, 240, TB, Fraction(FPS))


def test_ring_starts_on_keyframe_and_drops_leading_non_keyframes() -> None:
    ring = PacketRing(max_seconds=10, max_bytes=10**6)
    for i in range(3, 25):  # starts mid-GOP: packets 3..9 cannot be decoded
        ring.push(packet(i))
    st = ring.stats()
    assert st.dropped_before_keyframe == 7
    assert st.packets == 15
    assert ring.span(0.0, 100.0)[0].is_keyframe
    assert ring.span(0.0, 100.0)[0].pts_s == pytest.approx(10 / FPS)


def test_seconds_bound_keeps_window_and_whole_gops() -> None:
    ring = PacketRing(max_seconds=2.0, max_bytes=10**9)
    for i in range(500):
        ring.push(packet(i))
        st = ring.stats()
        assert st.oldest_pts_s is not None and st.newest_pts_s is not None
        # at least the window once enough was pushed, at most window + one GOP
        if st.newest_pts_s >= 2.0:
            assert st.seconds >= 2.0 - 1e-9
        assert st.seconds <= 2.0 + GOP / FPS + 1e-9
    pkts = ring.span(0.0, 1e9)
    assert pkts[0].is_keyframe
    assert ring.stats().evicted == 500 - ring.stats().packets


def test_bytes_bound_is_hard() -> None:
    ring = PacketRing(max_seconds=1000.0, max_bytes=5_000)
    for i in range(300):
        ring.push(packet(i, size=100 if i % GOP else 1000))
        st = ring.stats()
        assert st.bytes <= 5_000
        if st.packets:
            assert ring.span(0.0, 1e9)[0].is_keyframe
    assert ring.stats().packets > 0


def test_gop_larger_than_byte_budget_empties_then_restarts_on_keyframe() -> None:
    ring = PacketRing(max_seconds=1000.0, max_bytes=1_500)
    for i in range(25):  # GOP 10 x 200 bytes = 2000 > budget
        ring.push(packet(i, size=200))
        assert ring.stats().bytes <= 1_500
    pkts = ring.span(0.0, 1e9)
    assert not pkts or pkts[0].is_keyframe


def test_span_starts_at_last_keyframe_before_start() -> None:
    ring = PacketRing(max_seconds=100, max_bytes=10**9)
    for i in range(100):
        ring.push(packet(i))
    span = ring.span(start_s=1.0, end_s=2.0)  # frame 25 → keyframe 20 (0.8 s); ends at 50
    assert span[0].is_keyframe
    assert span[0].pts_s == pytest.approx(0.8)
    assert span[-1].pts_s == pytest.approx(2.0)
    assert [p.pts_s for p in span] == sorted(p.pts_s for p in span)
    exact = ring.span(start_s=1.2, end_s=1.3)  # keyframe exactly at 1.2 (frame 30)
    assert exact[0].pts_s == pytest.approx(1.2)
    assert ring.span(start_s=50.0, end_s=60.0)[0].pts_s == pytest.approx(3.6)  # newest GOP
    with pytest.raises(ValueError):
        ring.span(2.0, 1.0)


def test_span_before_ring_starts_at_oldest_keyframe() -> None:
    ring = PacketRing(max_seconds=1.0, max_bytes=10**9)
    for i in range(200):
        ring.push(packet(i))
    span = ring.span(0.0, 100.0)
    oldest = ring.stats().oldest_pts_s
    assert span and span[0].pts_s == oldest and span[0].is_keyframe


def test_params_change_clears_ring() -> None:
    ring = PacketRing(max_seconds=10, max_bytes=10**6)
    with pytest.raises(StreamError):
        require_params(ring)
    ring.set_stream_params(params())
    for i in range(20):
        ring.push(packet(i))
    ring.set_stream_params(params())  # same parameters: kept
    assert len(ring) == 20
    ring.set_stream_params(params(width=640))  # new connection, new size: cleared
    assert len(ring) == 0
    assert require_params(ring).width == 640


def test_concurrent_push_and_span() -> None:
    ring = PacketRing(max_seconds=1.0, max_bytes=50_000)
    errors: list[str] = []

    def reader() -> None:
        for _ in range(300):
            span = ring.span(0.0, 1e9)
            if span and not span[0].is_keyframe:
                errors.append("span not on keyframe")

    t = threading.Thread(target=reader)
    t.start()
    for i in range(3000):
        ring.push(packet(i))
    t.join()
    assert not errors
    st = ring.stats()
    assert st.pushed == 3000
    assert st.packets + st.evicted == 3000


def test_bad_bounds_rejected() -> None:
    with pytest.raises(ValueError):
        PacketRing(0, 10)
    with pytest.raises(ValueError):
        PacketRing(1, 0)
