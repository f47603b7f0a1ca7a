"""Live cameras as they really fail (issue 18), against the real GStreamer RTSP server through a
fault proxy (``tests/rtsp_faults.py``): packet loss and byte errors → corrupt frames counted and
never a best crop; frozen RTP timestamps → analysis continues on the arrival clock; long GOPs →
no false stalls while a silent stream (mid-stream or before its first keyframe) is still caught;
MPEG-PS over RTP (GB/T 28181) decoded like H.264, without tracebacks; an undecodable codec → a
clear status and slow retry; status texts in words. The node-level view of the same faults
(``GET /streams``, Prometheus) is in ``tests/test_live_faults_status.py``."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tests._rtsp_fixtures as _rtsp_fixtures
import tests.rtsp_faults as _faults
import tests.test_run_rtsp as _run_rtsp
from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.pipeline.config import EventsConfig
from sharpeyes.pipeline.events import TrackEventBuilder
from sharpeyes.pipeline.protocols import Detector
from sharpeyes.pipeline.types import Event, Frame, ObjectKind, Tracks
from sharpeyes.streams.health import StreamState
from sharpeyes.streams.rtsp_source import RtspSource
from tests._rtsp_fixtures import RtspServer
from tests.rtsp_faults import FaultProxy, FaultRtspServer, Faults, PsRtspServer, make_ps_file

pytestmark = [pytest.mark.integration, pytest.mark.rtsp]

rtsp_server_factory = _rtsp_fixtures.rtsp_server_factory
fault_server_factory = _faults.fault_server_factory
fault_proxies = _faults.fault_proxies
detector = _run_rtsp.detector
runtimes = _run_rtsp.runtimes
start_runtime = _run_rtsp.start_runtime

CLIP = "highway_640x360.mp4"  # 341 frames at 29.97 fps, 11.4 s


def wait_for(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def source(url: str, name: str, **kw: Any) -> RtspSource:
    kw.setdefault("backoff_initial_s", 0.2)
    kw.setdefault("backoff_max_s", 1.0)
    kw.setdefault("queue_size", 64)
    return RtspSource(url, name, **kw)


@dataclass
class Consumer:
    """Reads a source on a thread; keeps (pts, wall_ms, arrival, corrupt, digest) per frame."""

    src: RtspSource
    on_frame: Callable[[Frame], None] | None = None
    digests: bool = False
    got: list[tuple[float, int, float, bool, str]] = field(default_factory=list)
    flags: list[tuple[bool, bool]] = field(default_factory=list)  # (keyframe, damage_carried)
    thread: threading.Thread | None = None
    started: float = 0.0

    def start(self) -> Consumer:
        self.started = time.time()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        for f in self.src.frames():
            digest = hashlib.md5(f.image.tobytes()).hexdigest() if self.digests else ""
            self.flags.append((f.keyframe, f.damage_carried))
            self.got.append((f.pts, f.wall_time_ms, time.time(), f.corrupt, digest))
            if self.on_frame is not None:
                self.on_frame(f)

    def stop(self) -> None:
        self.src.close()
        if self.thread is not None:
            self.thread.join(10)


@pytest.fixture
def consumers() -> Iterator[list[Consumer]]:
    made: list[Consumer] = []
    yield made
    for c in made:
        c.stop()


def consume(made: list[Consumer], src: RtspSource, **kw: Any) -> Consumer:
    c = Consumer(src, **kw).start()
    made.append(c)
    return c


# -- 1. packet loss ----------------------------------------------------------------------------


def _crop_builder(
    box: tuple[int, int, int, int] = (100, 100, 300, 250),
) -> tuple[TrackEventBuilder, Callable[[Frame], None]]:
    """One car track over every frame, its box most confident on corrupt frames."""
    b = TrackEventBuilder("cam", EventsConfig(), class_names=["car"], class_codes={})

    def feed(f: Frame) -> None:
        conf = 0.95 if f.corrupt else 0.5
        tracks = Tracks(
            xyxy=np.array([box], np.float32),
            confidence=np.array([conf], np.float32),
            class_id=np.array([0], np.int64),
            kind=np.array([int(ObjectKind.MOTOR_VEHICLE)], np.int8),
            track_id=np.array([1], np.int64),
            detected=np.array([True]),
        )
        b.update(f, tracks)

    return b, feed


@pytest.mark.parametrize("loss", [0.05, 0.30])
def test_packet_loss_is_counted_and_never_a_best_crop(
    loss: float,
    rtsp_server_factory: Callable[[dict[str, str]], RtspServer],
    fault_proxies: list[FaultProxy],
    consumers: list[Consumer],
    sample_videos: Path,
) -> None:
    server = rtsp_server_factory({"hw": str(sample_videos / CLIP)})
    proxy = FaultProxy(server.port, Faults(drop_rate=loss, seed=7))
    fault_proxies.append(proxy)
    builder, feed = _crop_builder()
    src = source(proxy.url("hw"), "hw", degraded_above=0.15)
    c = consume(consumers, src, on_frame=feed)
    assert wait_for(lambda: len(c.got) > 0, 15.0), src.health()
    time.sleep(6.0)  # the clip lasts 11.4 s: measure while it plays
    h = src.health()
    injected = proxy.stats.damaged_rate
    print(f"loss {loss}: injected corrupt-frame rate {injected:.3f}, reported {h}")
    assert h.corruption_rate == pytest.approx(injected, rel=0.2), (injected, h)
    assert h.state is (StreamState.DEGRADED if loss > 0.15 else StreamState.LIVE), h
    corrupt = {pts for pts, _, _, bad, _ in c.got if bad}
    assert corrupt, "some frames must be flagged corrupt"
    events: list[Event] = builder.finish([1])
    assert len(events) == 1 and events[0].best_pts is not None
    assert events[0].best_pts not in corrupt


def test_byte_errors_are_counted_and_never_a_best_crop(
    rtsp_server_factory: Callable[[dict[str, str]], RtspServer],
    fault_proxies: list[FaultProxy],
    consumers: list[Consumer],
    sample_videos: Path,
) -> None:
    """Flipped bytes lose no frame: only FFmpeg's own flags tell (the field: 15 % of frames
    flagged corrupt, 2 counted)."""
    server = rtsp_server_factory({"hw": str(sample_videos / CLIP)})
    proxy = FaultProxy(server.port, Faults(corrupt_rate=0.05, seed=5))
    fault_proxies.append(proxy)
    builder, feed = _crop_builder()
    src = source(proxy.url("hw"), "hw")
    c = consume(consumers, src, on_frame=feed)
    assert wait_for(lambda: len(c.got) > 0, 15.0), src.health()
    time.sleep(6.0)
    h = src.health()
    injected = proxy.stats.damaged_rate
    print(f"byte errors: injected corrupt-frame rate {injected:.3f}, reported {h}")
    assert proxy.stats.corrupted >= 5 and proxy.stats.dropped == 0
    assert h.corruption_rate == pytest.approx(injected, rel=0.2), (injected, h)
    assert h.state is StreamState.DEGRADED, h  # above the default 5 %
    corrupt = {pts for pts, _, _, bad, _ in c.got if bad}
    assert corrupt, "some frames must be flagged corrupt"
    # the frames after a flagged one carry its damage (the heads are not read) up to a keyframe
    got, flags = list(c.got), list(c.flags)
    after = [i for i in range(1, len(got)) if got[i - 1][3] and not got[i][3] and not flags[i][0]]
    assert after and all(flags[i][1] for i in after)
    events: list[Event] = builder.finish([1])
    assert len(events) == 1 and events[0].best_pts not in corrupt


# -- 2. frozen timestamps ----------------------------------------------------------------------

FREEZE_S = 10.0  # the field saw 40 s; 10 s shows the same (a constant pts for many seconds)


def test_frozen_pts_keeps_analysing_on_the_arrival_clock(
    rtsp_server_factory: Callable[[dict[str, str]], RtspServer],
    fault_proxies: list[FaultProxy],
    consumers: list[Consumer],
) -> None:
    server = rtsp_server_factory({"cam": "pattern:160x120:30"})
    proxy = FaultProxy(server.port, Faults(freeze_after_s=2.0, freeze_for_s=FREEZE_S))
    fault_proxies.append(proxy)
    src = source(proxy.url("cam"), "cam", analysis_fps=5.0)
    builder, feed = _crop_builder((20, 20, 100, 100))  # one event over the whole run
    c = consume(consumers, src, on_frame=feed)
    assert wait_for(lambda: len(c.got) > 0, 10.0)
    t0 = c.got[0][2]
    time.sleep(2.0 + FREEZE_S + 2.0)
    frozen = [g for g in c.got if t0 + 3.0 <= g[2] <= t0 + 1.5 + FREEZE_S]
    window = FREEZE_S - 1.5
    h = src.health()
    print(f"analysed in the frozen window: {len(frozen) / window:.2f} fps; {h}")
    assert proxy.stats.frozen_packets > 100
    assert len(frozen) / window >= 0.9 * 5.0, h
    assert h.timing_faults > 0
    stream_s = c.got[-1][0] - c.got[0][0]
    wall_s = c.got[-1][2] - c.got[0][2]
    assert abs(stream_s - wall_s) < 1.0, (stream_s, wall_s)
    assert all(b[0] > a[0] for a, b in itertools.pairwise(c.got))
    # an event across the freeze lasts as long by stream time, by its wall stamps and by
    # the arrival clock (the field saw 9 s by stream time for 49 s by wall clock)
    c.stop()
    (event,) = builder.finish([1])
    arrival = {pts: at for pts, _, at, _, _ in c.got}
    by_pts = event.last_pts - event.first_pts
    by_stamps = (event.last_seen_ms - event.first_seen_ms) / 1000.0
    by_arrival = arrival[event.last_pts] - arrival[event.first_pts]
    print(f"event: {by_pts:.2f}s by pts, {by_stamps:.2f}s by stamps, {by_arrival:.2f}s arrived")
    assert by_arrival > FREEZE_S
    assert abs(by_pts - by_arrival) < 1.0 and abs(by_stamps - by_arrival) < 1.0, event


# -- 3. long GOPs and silence ------------------------------------------------------------------

JOINS = 20  # concurrent joins per GOP length, spread over one GOP


@contextlib.contextmanager
def media_kept(url: str) -> Iterator[None]:
    """A GStreamer client holds the shared media from now: its keyframes come every GOP from
    this moment, and later clients join mid-GOP."""
    keeper = subprocess.Popen(
        [*("gst-launch-1.0", "-q", "rtspsrc", f"location={url}", "protocols=tcp", "!", "fakesink")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        keeper.kill()
        keeper.wait(5)


@pytest.mark.parametrize("gop_s", [10, 20])
def test_long_gop_joins_do_not_stall(
    gop_s: int,
    fault_server_factory: Callable[[dict[str, str]], FaultRtspServer],
    consumers: list[Consumer],
) -> None:
    server = fault_server_factory({"g": f"gop:160x120:15:{gop_s}"})
    with media_kept(server.url("g")):
        time.sleep(1.0)
        srcs = []
        for i in range(JOINS):
            srcs.append(source(server.url("g"), f"j{i}", stall_timeout_s=2.0))
            consume(consumers, srcs[-1])
            time.sleep(gop_s / JOINS)
        ok = wait_for(lambda: all(s.health().frames_decoded > 0 for s in srcs), gop_s + 5.0)
        hs = [s.health() for s in srcs]
        assert ok, hs
        assert [h.reconnects for h in hs] == [0] * JOINS, hs
        waits = [c.got[0][2] - c.started for c in consumers if c.got]
        print(f"GOP {gop_s}s: first frame after {sorted(round(w, 1) for w in waits)} s")
        assert max(waits) > 2.0  # some joins did wait longer than the stall timeout


def test_silence_while_waiting_for_the_first_keyframe_is_a_stall(
    fault_server_factory: Callable[[dict[str, str]], FaultRtspServer],
    fault_proxies: list[FaultProxy],
    consumers: list[Consumer],
) -> None:
    """The patience of a long-GOP join is for packets that arrive: a session that goes silent
    before its first decodable frame is still caught within the stall time."""
    server = fault_server_factory({"g": "gop:160x120:15:20"})
    with media_kept(server.url("g")):
        time.sleep(1.0)  # the next keyframe is ~19 s away
        proxy = FaultProxy(server.port, Faults(silent_after_s=2.5))
        fault_proxies.append(proxy)
        src = source(proxy.url("g"), "g", stall_timeout_s=2.0, backoff_initial_s=5.0)
        consume(consumers, src)
        assert wait_for(lambda: src.health().last_error is not None, 15.0), src.health()
        detected = time.monotonic()
        h = src.health()
        assert proxy.stats.silent_since is not None
        waited = detected - proxy.stats.silent_since
        print(f"silence before the first frame detected after {waited:.2f}s")
        assert h.decoder is not None and h.frames_decoded == 0, h  # opened, waiting for a key
        assert waited <= 2.0 + 0.5, h
        assert h.last_error is not None and "no data from the camera" in h.last_error, h


def test_silent_stream_is_caught_within_the_stall_time(
    rtsp_server_factory: Callable[[dict[str, str]], RtspServer],
    fault_proxies: list[FaultProxy],
    consumers: list[Consumer],
) -> None:
    server = rtsp_server_factory({"cam": "pattern:160x120:15"})
    proxy = FaultProxy(server.port, Faults(silent_after_s=3.0))
    fault_proxies.append(proxy)
    src = source(proxy.url("cam"), "cam", stall_timeout_s=2.0, read_timeout_s=5.0)
    c = consume(consumers, src)
    assert wait_for(lambda: len(c.got) > 0, 10.0)
    assert wait_for(lambda: src.health().state is not StreamState.LIVE, 10.0)
    detected = time.monotonic()
    assert proxy.stats.silent_since is not None
    print(f"silence detected after {detected - proxy.stats.silent_since:.2f}s")
    assert detected - proxy.stats.silent_since <= 2.0 + 0.5, src.health()
    assert wait_for(lambda: src.health().reconnects >= 1, 5.0)
    error = src.health().last_error or ""
    assert "no data from the camera" in error or "no frame" in error, error
    assert "Immediate exit" not in error and "1414092869" not in error


# -- 4. PS over RTP and undecodable codecs ------------------------------------------------------


@pytest.fixture
def ps_file(sample_videos: Path, tmp_path: Path) -> Path:
    return make_ps_file(sample_videos / CLIP, tmp_path / "clip.ps")


def test_ps_over_rtp_decodes_like_plain_h264(
    ps_file: Path,
    rtsp_server_factory: Callable[[dict[str, str]], RtspServer],
    consumers: list[Consumer],
    sample_videos: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    ps = PsRtspServer(ps_file, duration_s=341 / 29.97)
    server = rtsp_server_factory({"hw": str(sample_videos / CLIP)})
    try:
        ps_src = source(ps.url(), "ps", queue_size=512, stall_timeout_s=1.5)
        a = consume(consumers, ps_src, digests=True)
        b = consume(consumers, source(server.url("hw"), "h264", queue_size=512), digests=True)
        assert wait_for(lambda: len(a.got) >= 330 and len(b.got) >= 330, 25.0), (
            a.src.health(),
            b.src.health(),
        )
        ha = a.src.health()
        assert ha.state is StreamState.LIVE and "PS over RTP" in (ha.decoder or "")
        assert (ha.width, ha.height) == (640, 360) and ha.corruption_rate == 0.0
        same = [g[4] for g in a.got[:330]] == [g[4] for g in b.got[:330]]
        assert same, "PS and plain RTSP must decode to the same pictures"
        # same timeline (from frame 10: RTSP/H.264 stamps its first frames, before RTCP,
        # from the arrival clock)
        pts_a = [g[0] - a.got[10][0] for g in a.got[10:330]]
        pts_b = [g[0] - b.got[10][0] for g in b.got[10:330]]
        assert max(abs(x - y) for x, y in zip(pts_a, pts_b, strict=True)) < 0.002
        # the clip ends and the PS server falls silent: a stall said in words, and no
        # traceback on stderr (PyAV prints every exception raised through its custom IO)
        assert wait_for(lambda: ps_src.health().last_error is not None, 10.0), ps_src.health()
        error = ps_src.health().last_error or ""
        assert "no data from the camera for 1.5s" in error, error
        assert "Traceback" not in capfd.readouterr().err
    finally:
        ps.close()


def test_undecodable_codec_says_so_and_backs_off(
    ps_file: Path,
    consumers: list[Consumer],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    odd = PsRtspServer(ps_file, duration_s=10.0, encoding="X-VND-CODEC/90000")
    try:
        src = source(odd.url(), "odd", failed_retry_s=30.0)
        consume(consumers, src)
        assert wait_for(lambda: src.health().last_error is not None, 10.0)
        time.sleep(1.0)
        h = src.health()
        assert h.last_error is not None and "unsupported codec X-VND-CODEC/90000" in h.last_error
        assert h.state is StreamState.FAILED and h.failures_in_window == 1, h
        assert "Traceback" not in caplog.text and "thread_count" not in caplog.text
        assert "Traceback" not in capfd.readouterr().err
    finally:
        odd.close()


# -- 5. status texts ---------------------------------------------------------------------------


def test_recovered_camera_clears_its_error(
    rtsp_server_factory: Callable[[dict[str, str]], RtspServer], consumers: list[Consumer]
) -> None:
    server = rtsp_server_factory({"cam": "pattern:160x120:15"})
    server.kill()
    src = source(server.url("cam"), "cam")
    c = consume(consumers, src)
    assert wait_for(lambda: "refused" in (src.health().last_error or "").lower(), 10.0)
    server.start()
    assert wait_for(lambda: len(c.got) > 0, 10.0)
    h = src.health()
    assert h.state is StreamState.LIVE and h.last_error is None, h


def test_ps_over_rtp_gives_the_events_of_plain_h264(
    ps_file: Path,
    rtsp_server_factory: Callable[[dict[str, str]], RtspServer],
    runtimes: list[NodeRuntime],
    detector: Detector,
    sample_videos: Path,
    tmp_path: Path,
) -> None:
    ps = PsRtspServer(ps_file, duration_s=341 / 29.97)
    server = rtsp_server_factory({"hw": str(sample_videos / CLIP)})
    try:
        urls = {"ps": ps.url(), "h264": server.url("hw")}
        once = {"backoff_initial_s": 60.0, "backoff_max_s": 60.0}  # play the clip once
        rt = start_runtime(runtimes, tmp_path, detector, urls, **once)
        assert wait_for(lambda: all(h.frames_analysed > 0 for h in rt.health().values()), 20)
        assert wait_for(lambda: all(h.state != "live" for h in rt.health().values()), 30)
        time.sleep(1.0)
        rt.stop()
    finally:
        ps.close()
    with sqlite3.connect(tmp_path / "events.db") as conn:
        rows = list(conn.execute("SELECT stream_id, type, class_name, track_id FROM events"))
    by_stream = {s: sorted((t, c, k) for sid, t, c, k in rows if sid == s) for s in urls}
    n_ps, n_h264 = len(by_stream["ps"]), len(by_stream["h264"])
    print(f"events: ps {n_ps}, h264 {n_h264}")
    assert n_h264 > 0, "the clip must produce events"
    # Not exact: the runtime's events for the same H.264 stream vary by one or two between
    # runs (batching and arrival timing); the decoded pictures are identical (test above).
    assert abs(n_ps - n_h264) <= max(2, 0.15 * n_h264), by_stream
    classes = {c for _, c, _ in by_stream["h264"]}
    assert {c for _, c, _ in by_stream["ps"]} & classes
