"""A live RTSP camera as a :class:`sharpeyes.pipeline.protocols.FrameSource`.

One decode thread per stream connects, decodes and fills a bounded latest-frame queue; the
consumer takes frames with :meth:`RtspSource.read` or :meth:`RtspSource.frames`. The thread
reconnects with exponential backoff and jitter, a stall watchdog reconnects when no frame came
for ``stall_timeout_s``, and a restart budget moves a stream that keeps failing to ``failed``,
where it is retried at a slow rate. Nothing raises into the consumer: problems show in
:meth:`RtspSource.health`. Credentials in the URL are masked in logs, health and errors.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sharpeyes.pipeline.errors import StreamError
from sharpeyes.pipeline.protocols import SourceInfo
from sharpeyes.pipeline.types import Frame
from sharpeyes.streams.decode import (
    PACKET_ERRORS,
    EncodedPacket,
    StreamParams,
    configure_threads,
    decode_packet,
    decoder_description,
    demux_video,
    encoded_packet,
    open_input,
    stream_fps,
    stream_params,
    to_bgr,
)
from sharpeyes.streams.health import (
    DropCounter,
    DropReason,
    RateMeter,
    StreamHealth,
    StreamState,
    mask_url,
    redact,
)
from sharpeyes.streams.latest import LatestQueue
from sharpeyes.streams.sampling import Sampler
from sharpeyes.streams.timing import PtsClock

logger = logging.getLogger(__name__)


class StreamStalledError(StreamError):
    """Connected, but no frame arrived within the stall timeout."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Reconnect timing: exponential backoff with jitter, and a restart budget per window."""

    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    jitter: float = 0.2  # ± fraction of the delay
    restart_budget: int = 10  # failures allowed per window before the stream is ``failed``
    restart_window_s: float = 60.0
    failed_retry_s: float = 60.0  # slow retry period once failed


class _Backoff:
    """Failure bookkeeping for one stream (only touched by its decode thread)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._delay = policy.backoff_initial_s
        self._failures: deque[float] = deque()

    def failure(self, now: float) -> tuple[float, bool]:
        """Record a failure; return (seconds to wait, whether the budget is spent)."""
        p = self.policy
        self._failures.append(now)
        while self._failures and self._failures[0] < now - p.restart_window_s:
            self._failures.popleft()
        if len(self._failures) > p.restart_budget:
            return p.failed_retry_s, True
        delay = self._delay * (1.0 + random.uniform(-p.jitter, p.jitter))
        self._delay = min(self._delay * 2.0, p.backoff_max_s)
        return delay, False

    def success(self) -> None:
        self._delay = self.policy.backoff_initial_s

    def in_window(self, now: float) -> int:
        return sum(1 for t in self._failures if t >= now - self.policy.restart_window_s)


class RtspSource:
    """Live RTSP (or any FFmpeg-readable live URL) source; see the module docstring.

    ``info`` reflects the current (or last) connection; width/height are 0 before the first.
    ``packet_sink`` receives every video packet before decoding; ``params_sink`` receives the
    :class:`StreamParams` of each new connection (e.g. ``PacketRing.set_stream_params``).
    """

    def __init__(
        self,
        url: str,
        stream_id: str,
        *,
        transport: Literal["tcp", "udp"] = "tcp",
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        stall_timeout_s: float = 5.0,
        analysis_fps: float | None = None,
        queue_size: int = 2,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        restart_budget: int = 10,
        restart_window_s: float = 60.0,
        failed_retry_s: float = 60.0,
        decode_threads: int = 1,
        packet_sink: Callable[[EncodedPacket], None] | None = None,
        params_sink: Callable[[StreamParams], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._masked = mask_url(url)
        self._stream_id = stream_id
        self._options = {"rtsp_transport": transport, "analyzeduration": "1000000"}
        self._timeouts = (open_timeout_s, read_timeout_s)
        self._stall_timeout_s = stall_timeout_s
        self._decode_threads = decode_threads
        self._packet_sink = packet_sink
        self._params_sink = params_sink
        self._policy = RetryPolicy(
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            restart_budget=restart_budget,
            restart_window_s=restart_window_s,
            failed_retry_s=failed_retry_s,
        )
        self._backoff = _Backoff(self._policy)
        self._sampler = Sampler(analysis_fps)
        self._pts = PtsClock(clock)
        self._drops = DropCounter()
        self._queue: LatestQueue[Frame] = LatestQueue(queue_size, self._drops)
        self._in_rate = RateMeter()
        self._out_rate = RateMeter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state = StreamState.CONNECTING
        self._info = SourceInfo(stream_id, self._masked, 0, 0, 0.0, "")
        self._params: StreamParams | None = None
        self._decoder: str | None = None
        self._last_error: str | None = None
        self._last_frame_mono: float | None = None
        self._reconnects = 0
        self._connections = 0
        self._decode_errors = 0
        self._seq = 0
        self._delivered = 0

    # -- consumer side -------------------------------------------------------------------

    @property
    def info(self) -> SourceInfo:
        with self._lock:
            return self._info

    @property
    def stream_id(self) -> str:
        return self._stream_id

    def video_stream_params(self) -> StreamParams | None:
        """Codec parameters of the current connection (None before the first)."""
        with self._lock:
            return self._params

    def start(self) -> None:
        """Start the decode thread (idempotent)."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name=f"rtsp-{self._stream_id}", daemon=True
            )
            self._thread.start()

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or None after ``timeout`` seconds or once closed."""
        self.start()
        frame = self._queue.get(timeout)
        if frame is not None:
            self._out_rate.tick()
            with self._lock:
                self._delivered += 1
        return frame

    def frames(self) -> Iterator[Frame]:
        """Yield frames until :meth:`close`; never raises on stream trouble."""
        while not self._stop.is_set():
            frame = self.read(timeout=0.5)
            if frame is not None:
                yield frame

    def close(self, join_timeout_s: float | None = None) -> None:
        """Stop the decode thread and wake consumers; returns within about the read timeout."""
        self._stop.set()
        self._queue.close()
        with self._lock:
            self._state = StreamState.CLOSED
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(join_timeout_s if join_timeout_s is not None else self._timeouts[1] + 1)

    def __enter__(self) -> RtspSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> StreamHealth:
        now = time.monotonic()
        with self._lock:
            age = None if self._last_frame_mono is None else now - self._last_frame_mono
            state = self._state
            if state is StreamState.LIVE and age is not None and age > self._stall_timeout_s:
                state = StreamState.STALLED
            return StreamHealth(
                stream_id=self._stream_id,
                url=self._masked,
                state=state,
                input_fps=self._in_rate.rate(now),
                analysed_fps=self._out_rate.rate(now),
                drops=self._drops.snapshot(),
                reconnects=self._reconnects,
                failures_in_window=self._backoff.in_window(now),
                last_frame_age_s=age,
                decode_errors=self._decode_errors,
                pts_skew_ms=self._pts.skew_ms,
                pts_resets=self._pts.resets,
                last_error=self._last_error,
                decoder=self._decoder,
                width=self._info.width,
                height=self._info.height,
                frames_decoded=self._seq,
                frames_delivered=self._delivered,
            )

    # -- decode thread -------------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            try:
                self._session()
                error = "end of stream"
            except StreamError as e:
                error = redact(str(e), self._url)
            except Exception as e:  # never let one stream's thread die silently
                logger.exception("stream %s: unexpected error", self._stream_id)
                error = redact(f"{type(e).__name__}: {e}", self._url)
            if self._stop.is_set():
                break
            delay = self._on_failure(error)

    def _on_failure(self, error: str) -> float:
        with self._lock:
            delay, spent = self._backoff.failure(time.monotonic())
            state = StreamState.FAILED if spent else StreamState.BACKOFF
            self._last_error = error
            self._state = state
        logger.warning(
            "stream %s (%s): %s; %s, retry in %.1fs",
            self._stream_id,
            self._masked,
            error,
            state.value,
            delay,
        )
        return delay

    def _session(self) -> None:
        """One connection: open, decode until error, end of stream, stall or close."""
        with self._lock:
            if self._state is not StreamState.FAILED:
                self._state = StreamState.CONNECTING
            if self._connections > 0:
                self._reconnects += 1
            self._connections += 1
        container, stream = open_input(
            self._url, display=self._masked, options=self._options, timeout=self._timeouts
        )
        try:
            self._on_open(stream)
            self._decode_loop(container, stream)
        finally:
            container.close()

    def _on_open(self, stream: Any) -> None:
        configure_threads(stream, self._decode_threads)
        params = stream_params(stream)
        info = SourceInfo(
            self._stream_id,
            self._masked,
            params.width,
            params.height,
            stream_fps(stream),
            params.codec_name,
        )
        with self._lock:
            self._params, self._info = params, info
            self._decoder = decoder_description(stream)
        self._pts.new_connection()
        self._sampler.reset()
        if self._params_sink is not None:
            self._params_sink(params)
        logger.info("stream %s: opened %s (%s)", self._stream_id, self._masked, self._decoder)

    def _decode_loop(self, container: Any, stream: Any) -> None:
        time_base = float(stream.time_base)
        started = time.monotonic()
        demux = demux_video(container, stream)
        while not self._stop.is_set():
            try:
                packet = next(demux)
            except StopIteration:
                return
            except PACKET_ERRORS as e:
                raise StreamError(f"read from {self._masked} failed: {e}") from e
            raw = None if packet.pts is None else packet.pts * time_base
            if packet.size and self._packet_sink is not None:
                rel = self._pts.relative(raw)
                self._packet_sink(encoded_packet(packet, rel if rel is not None else 0.0))
            decoded = decode_packet(stream, packet)
            if decoded is None:
                self._count_decode_error()
            else:
                for av_frame in decoded:
                    self._on_frame(av_frame, time_base)
            self._check_stall(started)

    def _check_stall(self, started: float) -> None:
        with self._lock:
            last = self._last_frame_mono
        since = max(started, last) if last is not None else started
        if time.monotonic() - since > self._stall_timeout_s:
            with self._lock:
                self._state = StreamState.STALLED
            raise StreamStalledError(f"no frame from {self._masked} for {self._stall_timeout_s}s")

    def _count_decode_error(self) -> None:
        self._drops.add(DropReason.DECODE_ERROR)
        with self._lock:
            self._decode_errors += 1

    def _on_frame(self, av_frame: Any, time_base: float) -> None:
        now = time.monotonic()
        self._in_rate.tick(now)
        raw = None if av_frame.pts is None else av_frame.pts * time_base
        stamp = self._pts.map(raw)
        with self._lock:
            seq = self._seq
            self._seq += 1
            self._last_frame_mono = now
            if self._state is not StreamState.LIVE:
                self._state = StreamState.LIVE
                self._backoff.success()
            if self._size_changed(av_frame):
                self._info = _resized(self._info, av_frame.width, av_frame.height)
        if not self._sampler.accept(stamp.pts):
            self._drops.add(DropReason.SAMPLING)
            return
        frame = Frame(
            stream_id=self._stream_id,
            seq=seq,
            pts=stamp.pts,
            wall_time_ms=stamp.wall_time_ms,
            image=to_bgr(av_frame),
            keyframe=bool(av_frame.key_frame),
        )
        self._queue.put(frame)

    def _size_changed(self, av_frame: Any) -> bool:
        return bool(av_frame.width != self._info.width or av_frame.height != self._info.height)


def _resized(info: SourceInfo, width: int, height: int) -> SourceInfo:
    return SourceInfo(
        info.stream_id, info.url, width, height, info.fps, info.codec, info.frame_count
    )
