"""RtspSource against a real GStreamer RTSP server on 127.0.0.1: concurrent streams, server
restart, stall, bad URLs, resolution change, latest-frame policy, credential masking."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import tests._rtsp_fixtures as _rtsp_fixtures
from sharpeyes.streams.health import StreamState
from sharpeyes.streams.rtsp_source import RtspSource
from tests._rtsp_fixtures import RtspServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.rtsp]

# fixtures used by this module (pytest finds them as module attributes)
rtsp_server_factory = _rtsp_fixtures.rtsp_server_factory
silent_listener = _rtsp_fixtures.silent_listener

MakeServer = Callable[[dict[str, str]], RtspServer]


def make_source(url: str, name: str, **kw: Any) -> RtspSource:
    """An RtspSource with short backoff (tests wait for recoveries)."""
    kw.setdefault("backoff_initial_s", 0.2)
    kw.setdefault("backoff_max_s", 1.0)
    return RtspSource(url, name, **kw)


@dataclass
class Received:
    seq: int
    pts: float
    wall_ms: int
    at: float  # time.time() when the consumer got it
    shape: tuple[int, ...]


@dataclass
class Collector:
    """Consumes one source on a thread, as a pipeline would; records frames and exceptions."""

    source: RtspSource
    delay_s: float = 0.0
    frames: list[Received] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> Collector:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            for f in self.source.frames():
                got = Received(f.seq, f.pts, f.wall_time_ms, time.time(), f.image.shape)
                self.frames.append(got)
                if self.delay_s:
                    time.sleep(self.delay_s)
        except BaseException as e:
            self.errors.append(e)

    def count_after(self, t: float) -> int:
        return sum(1 for r in self.frames if r.at >= t)

    def stop(self) -> None:
        self.source.close()
        if self.thread is not None:
            self.thread.join(10)


@pytest.fixture
def collectors() -> Iterator[list[Collector]]:
    made: list[Collector] = []
    yield made
    for c in made:
        c.stop()


def consume(made: list[Collector], source: RtspSource, delay_s: float = 0.0) -> Collector:
    c = Collector(source, delay_s).start()
    made.append(c)
    return c


def wait_for(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_four_streams_at_once_with_masked_credentials(
    rtsp_server_factory: MakeServer,
    collectors: list[Collector],
    sample_videos: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = rtsp_server_factory(
        {
            "hw": str(sample_videos / "highway_640x360.mp4"),
            "p1": "pattern:320x240:15",
            "p2": "pattern:160x120:10",
            "p3": "pattern:320x240:15",
        }
    )
    sources = [make_source(server.url(m, "admin:hunter2"), m) for m in ("hw", "p1", "p2", "p3")]
    cs = [consume(collectors, s) for s in sources]
    assert wait_for(lambda: all(len(c.frames) >= 20 for c in cs), 15.0), [
        (s.stream_id, s.health()) for s in sources
    ]
    for c in cs:
        assert not c.errors
        pts = [r.pts for r in c.frames]
        assert all(b > a for a, b in itertools.pairwise(pts))
        assert [r.seq for r in c.frames] == sorted({r.seq for r in c.frames})
        assert all(abs(r.at * 1000 - r.wall_ms) < 2000 for r in c.frames[5:])
        h = c.source.health()
        assert h.state is StreamState.LIVE and h.input_fps > 5 and h.decoder
        assert h.pts_skew_ms is not None and 0 <= h.pts_skew_ms < 2000
        assert "hunter2" not in repr(h) and "admin:***@" in h.url
    assert cs[0].frames[0].shape == (360, 640, 3) and cs[2].frames[0].shape == (120, 160, 3)
    assert sources[0].info.width == 640 and sources[0].info.fps == pytest.approx(29.97, 0.01)
    assert "hunter2" not in caplog.text and "admin:***@" in caplog.text


def test_server_killed_and_restarted_every_stream_recovers(
    rtsp_server_factory: MakeServer, collectors: list[Collector]
) -> None:
    mounts = {f"c{i}": "pattern:320x240:15" for i in range(4)}
    server = rtsp_server_factory(mounts)
    sources = [make_source(server.url(m), m, read_timeout_s=2.0) for m in mounts]
    cs = [consume(collectors, s) for s in sources]
    assert wait_for(lambda: all(len(c.frames) >= 5 for c in cs), 15.0)
    server.kill()
    assert wait_for(lambda: all(s.health().state is not StreamState.LIVE for s in sources), 6.0)
    time.sleep(1.0)
    server.start()
    back = time.time()
    assert wait_for(lambda: all(c.count_after(back) > 0 for c in cs), 5.0), [
        s.health() for s in sources
    ]
    recovered = [min(r.at for r in c.frames if r.at >= back) - back for c in cs]
    for c in cs:
        assert not c.errors
        h = c.source.health()
        assert h.reconnects >= 1 and h.state is StreamState.LIVE
        pts = [r.pts for r in c.frames]
        assert all(b > a for a, b in itertools.pairwise(pts))  # monotonic across reconnect
    assert max(recovered) <= 5.0


def test_stalled_server_triggers_watchdog_reconnect(
    rtsp_server_factory: MakeServer, collectors: list[Collector]
) -> None:
    server = rtsp_server_factory({"cam": "pattern:320x240:15"})
    timeouts = {"read_timeout_s": 1.5, "stall_timeout_s": 1.0, "open_timeout_s": 1.5}
    src = make_source(server.url("cam"), "cam", **timeouts)
    c = consume(collectors, src)
    assert wait_for(lambda: len(c.frames) >= 5, 10.0)
    server.pause()
    try:
        assert wait_for(lambda: src.health().state is StreamState.STALLED, 3.0)
        assert wait_for(lambda: src.health().reconnects >= 1, 6.0), src.health()
    finally:
        server.resume()
    resumed = time.time()
    assert wait_for(lambda: c.count_after(resumed) > 0, 8.0), src.health()
    assert src.health().state is StreamState.LIVE and not c.errors


def test_bad_sources_fail_clearly_without_affecting_others(
    rtsp_server_factory: MakeServer, collectors: list[Collector], silent_listener: int
) -> None:
    server = rtsp_server_factory({"good": "pattern:320x240:15", "sound": "audio"})
    good = consume(collectors, make_source(server.url("good"), "good"))
    bad = {
        "404": make_source(server.url("nope"), "404"),
        "refused": make_source(
            f"rtsp://u:pw@127.0.0.1:{free_port()}/x",
            "refused",
            restart_budget=2,
        ),
        "novideo": make_source(server.url("sound"), "novideo"),
        "silent": make_source(
            f"rtsp://127.0.0.1:{silent_listener}/x",
            "silent",
            open_timeout_s=1.0,
        ),
    }
    bad_cs = [consume(collectors, s) for s in bad.values()]
    assert wait_for(lambda: len(good.frames) >= 30, 15.0)
    assert wait_for(lambda: bad["refused"].health().state is StreamState.FAILED, 8.0)
    expect = {
        "404": "404",
        "refused": "refused",
        "novideo": "no video",
        "silent": "no answer within",
    }
    for name, src in bad.items():
        h = src.health()
        assert h.state in (StreamState.BACKOFF, StreamState.FAILED, StreamState.CONNECTING), name
        assert h.last_error is not None and expect[name] in h.last_error.lower(), h
        assert h.frames_decoded == 0
    assert "pw" not in (bad["refused"].health().last_error or "").replace("pwd", "")
    assert all(not c.errors and not c.frames for c in bad_cs)
    assert good.source.health().state is StreamState.LIVE and not good.errors


def test_resolution_change_keeps_decoding(
    rtsp_server_factory: MakeServer, collectors: list[Collector]
) -> None:
    server = rtsp_server_factory({"sw": "pattern:320x240:15:480x272:2"})
    c = consume(collectors, make_source(server.url("sw"), "sw"))
    assert wait_for(lambda: len({r.shape for r in c.frames}) == 2 and len(c.frames) > 45, 12.0)
    shapes = [r.shape for r in c.frames]
    first_new = shapes.index((272, 480, 3))
    assert set(shapes[:first_new]) == {(240, 320, 3)}
    assert set(shapes[first_new:]) == {(272, 480, 3)}
    assert c.source.info.width == 480 and c.source.health().reconnects == 0


def test_slow_consumer_sees_bounded_latency_and_backlog_drops(
    rtsp_server_factory: MakeServer, collectors: list[Collector]
) -> None:
    server = rtsp_server_factory({"fast": "pattern:320x240:30"})
    src = make_source(server.url("fast"), "fast", queue_size=2)
    c = consume(collectors, src, delay_s=0.25)  # ~4 fps consumer of a 30 fps stream
    assert wait_for(lambda: len(c.frames) >= 16, 15.0)
    ages = [r.at * 1000 - r.wall_ms for r in c.frames[4:]]
    assert max(ages) < 1000, ages
    assert ages[-1] < ages[0] + 500  # not growing
    h = src.health()
    assert h.drops["backlog"] > 20 and h.drops["sampling"] == 0
    assert h.input_fps > 2 * h.analysed_fps


def test_analysis_fps_sampling_over_rtsp(
    rtsp_server_factory: MakeServer, collectors: list[Collector]
) -> None:
    server = rtsp_server_factory({"cam": "pattern:160x120:30"})
    src = make_source(server.url("cam"), "cam", analysis_fps=5.0, queue_size=4)
    c = consume(collectors, src)
    assert wait_for(lambda: len(c.frames) >= 15, 12.0)
    span = c.frames[-1].pts - c.frames[0].pts
    assert (len(c.frames) - 1) / span == pytest.approx(5.0, rel=0.2)
    seq_gaps = {b.seq - a.seq for a, b in itertools.pairwise(c.frames)}
    assert min(seq_gaps) >= 5
    assert src.health().drops["sampling"] > 40
