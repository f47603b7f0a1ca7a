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
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any, Literal

from sharpeyes.pipeline.errors import StreamError
from sharpeyes.pipeline.protocols import SourceInfo
from sharpeyes.pipeline.restart import RestartBudget, RetryPolicy
from sharpeyes.pipeline.types import Frame
from sharpeyes.streams.decode import (
    PACKET_ERRORS,
    SQUARE,
    DamageTracker,
    EncodedPacket,
    StreamParams,
    UnsupportedCodecError,
    configure_error_reporting,
    configure_threads,
    decode_packet,
    decoder_description,
    demux_video,
    encoded_packet,
    is_read_timeout,
    open_input,
    pixel_aspect,
    read_error_text,
    square_size,
    stream_fps,
    stream_params,
    to_bgr,
)
from sharpeyes.streams.fields import DeinterlaceMode, needs_deinterlace, top_field_first
from sharpeyes.streams.health import (
    CorruptionMeter,
    DropCounter,
    DropReason,
    RateMeter,
    StreamHealth,
    StreamState,
    mask_url,
    redact,
)
from sharpeyes.streams.latest import LatestQueue
from sharpeyes.streams.rtsp_ps import describe_video, open_ps
from sharpeyes.streams.sampling import Sampler
from sharpeyes.streams.timing import PtsClock
from sharpeyes.streams.urls import RTSP_PROTOCOL_WHITELIST

logger = logging.getLogger(__name__)


class StreamStalledError(StreamError):
    """Connected, but no frame arrived within the stall timeout."""


class UnsupportedStreamError(StreamError):
    """The camera sends a codec that cannot be decoded (retried at the slow ``failed`` rate)."""


# A timeline gap of up to this many seconds is frames lost to packet loss (corruption); a
# longer one is the decoder resynchronising (waiting for a keyframe) or an outage.
SHORT_GAP_S = 0.25

# Errors of one demux read (the PS path's socket raises OSError through PyAV's custom IO).
READ_ERRORS: tuple[type[BaseException], ...] = (*PACKET_ERRORS, OSError)


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
        first_frame_timeout_s: float = 60.0,
        degraded_above: float = 0.05,
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
        pixel_aspect: Fraction | None = None,
        deinterlace: DeinterlaceMode = "auto",
    ) -> None:
        self._url = url
        self._given_aspect = pixel_aspect  # None: as the stream says
        self._fields: DeinterlaceMode = deinterlace  # streams/fields.py
        self.frames_deinterlaced = 0
        self._masked = mask_url(url)
        self._stream_id = stream_id
        self._options = {
            "rtsp_transport": transport,
            "analyzeduration": "1000000",
            # nested protocols stay those of a camera stream (no file:, http:, concat:, …)
            "protocol_whitelist": RTSP_PROTOCOL_WHITELIST,
        }
        # A silent camera must be noticed within the stall time. FFmpeg answers the first read
        # timeout with the parser's last buffered packet and only the second with an error,
        # so a read may block at most half the stall time.
        self._timeouts = (open_timeout_s, min(read_timeout_s, stall_timeout_s / 2))
        self._stall_timeout_s = stall_timeout_s
        self._ps_read_timeout_s = min(read_timeout_s, stall_timeout_s)
        self._first_frame_timeout_s = max(first_frame_timeout_s, stall_timeout_s)
        self._degraded_above = degraded_above
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
        self._backoff = RestartBudget(self._policy)
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
        self._corruption = CorruptionMeter()
        self._resync_frames = 0
        self._last_raw_pts: float | None = None
        self._last_arrival = 0.0
        self._frame_period: float | None = None
        self._refs_broken = False
        self._carried = DamageTracker()  # flagged frames' damage (Frame.damage_carried)
        self._session_frames = 0
        self._last_packet_mono: float | None = None
        self._keyframe_gap_s: float | None = None  # observed GOP (keyframe packet interval)
        self._last_key_packet: float | None = None

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
            rate = self._corruption.rate()
            if (
                state is StreamState.LIVE
                and self._corruption.samples() >= 30
                and rate > self._degraded_above
            ):
                state = StreamState.DEGRADED
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
                corrupt_frames=self._corruption.total_damaged,
                corruption_rate=rate,
                resync_frames=self._resync_frames,
                timing_faults=self._pts.frozen,
                forced_samples=self._sampler.forced,
            )

    # -- decode thread -------------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            slow = stalled = False
            try:
                self._session()
                error = "end of stream"
            except StreamStalledError as e:
                error, stalled = redact(str(e), self._url), True
            except UnsupportedStreamError as e:
                error, slow = redact(str(e), self._url), True
            except StreamError as e:
                error = redact(str(e), self._url)
            except Exception as e:  # never let one stream's thread die silently
                logger.exception("stream %s: unexpected error", self._stream_id)
                error = redact(f"{type(e).__name__}: {e}", self._url)
            if self._stop.is_set():
                break
            delay = self._on_failure(error, slow, stalled)

    def _on_failure(self, error: str, slow: bool = False, stalled: bool = False) -> float:
        with self._lock:
            delay, spent = self._backoff.failure(time.monotonic())
            if slow:  # will not fix itself: retry at the slow rate
                delay, spent = self._policy.failed_retry_s, True
            state = StreamState.FAILED if spent else StreamState.BACKOFF
            if stalled and not spent:
                state = StreamState.STALLED  # stays until frames flow again
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
            if self._state not in (StreamState.FAILED, StreamState.STALLED):
                self._state = StreamState.CONNECTING  # a stall shows until frames flow again
            if self._connections > 0:
                self._reconnects += 1
            self._connections += 1
        try:
            container, stream = open_input(
                self._url, display=self._masked, options=self._options, timeout=self._timeouts
            )
        except UnsupportedCodecError:
            container = stream = None
        if container is None:  # outside the handler: its error is no context of the next
            self._session_ps()
            return
        try:
            self._on_open(stream)
            self._decode_loop(container, stream)
        finally:
            container.close()

    def _session_ps(self) -> None:
        """FFmpeg could not decode the SDP's codec: MPEG-PS is received here, others refused."""
        try:
            video = describe_video(self._url, self._timeouts[0])
        except (OSError, StreamError) as e:
            raise StreamError(f"cannot describe {self._masked}: {e}") from e
        if video is None or not video.is_ps:
            codec = video.encoding if video is not None and video.encoding else "unknown"
            raise UnsupportedStreamError(f"unsupported codec {codec} from {self._masked}")
        # no FFmpeg read-timeout quirk here (see __init__): a read may wait the whole stall time
        session = open_ps(self._url, self._masked, (self._timeouts[0], self._ps_read_timeout_s))
        try:
            self._on_open(session.stream, transport="PS over RTP")
            self._decode_loop(session.container, session.stream)
        finally:
            session.close()
        error = session.reader.error  # the program stream ended because the socket failed
        if isinstance(error, TimeoutError):
            with self._lock:
                self._state = StreamState.STALLED
            raise StreamStalledError(
                f"no data from the camera for {self._ps_read_timeout_s:g}s ({self._masked})"
            )
        if error is not None:
            reason = error.strerror or str(error) or type(error).__name__
            raise StreamError(f"read from {self._masked} failed: {reason}")

    def _on_open(self, stream: Any, transport: str | None = None) -> None:
        configure_threads(stream, self._decode_threads)
        configure_error_reporting(stream)
        params = stream_params(stream)
        sar = pixel_aspect(stream, self._given_aspect)
        width, height = square_size(params.width, params.height, sar)
        info = SourceInfo(
            self._stream_id,
            self._masked,
            width,
            height,
            stream_fps(stream),
            params.codec_name,
        )
        with self._lock:
            self._params, self._info = params, info
            self._decoder = decoder_description(stream)
            if transport:
                self._decoder += f", {transport}"
            self._session_frames = 0
            self._last_packet_mono = None
            self._last_raw_pts = None
            self._refs_broken = False
            self._carried = DamageTracker()
            rate = stream_fps(stream)
            self._frame_period = 1.0 / rate if rate > 0 else None
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
            except READ_ERRORS as e:
                reason = read_error_text(e, 2 * self._timeouts[1])  # see __init__
                if is_read_timeout(e):  # a silent camera: a stall, said in words
                    with self._lock:
                        self._state = StreamState.STALLED
                    raise StreamStalledError(f"{reason} ({self._masked})") from e
                raise StreamError(f"read from {self._masked} failed: {reason}") from e
            self._on_packet(packet)
            raw = None if packet.pts is None else packet.pts * time_base
            if packet.size and self._packet_sink is not None:
                rel = self._pts.relative(raw)
                self._packet_sink(encoded_packet(packet, rel if rel is not None else 0.0))
            decoded = decode_packet(stream, packet)
            if decoded is None:
                self._count_decode_error()
                self._carried.packet_failed()
            else:
                for av_frame in decoded:  # the pixel aspect is known once an SPS was read
                    sar = pixel_aspect(stream, self._given_aspect)
                    self._on_frame(av_frame, time_base, sar, top_field_first(stream))
            self._check_stall(started)

    def _on_packet(self, packet: Any) -> None:
        now = time.monotonic()
        if not packet.size:
            return
        with self._lock:
            self._last_packet_mono = now
            if packet.is_keyframe:
                if self._last_key_packet is not None:
                    self._keyframe_gap_s = now - self._last_key_packet
                self._last_key_packet = now

    def _check_stall(self, started: float) -> None:
        """Tight once frames flow; before the first frame of a connection, packets that keep
        arriving buy time up to the first-frame timeout (or 1.5 observed GOPs): a long GOP is
        not a stall."""
        now = time.monotonic()
        with self._lock:
            last = self._last_frame_mono
            packets = self._last_packet_mono
            first = self._session_frames == 0
            gop = self._keyframe_gap_s
        if first:
            limit = self._first_frame_timeout_s
            if gop is not None:
                limit = max(limit, 1.5 * gop)
            if packets is None or now - packets > self._stall_timeout_s:
                since = started if packets is None else packets
                if now - since <= self._stall_timeout_s:
                    return
                what = f"no packets from {self._masked} for {self._stall_timeout_s:g}s"
            elif now - started > limit:
                what = (
                    f"packets arrive from {self._masked} but no decodable frame in "
                    f"{limit:g}s (no keyframe)"
                )
            else:
                return
        else:
            since = max(started, last) if last is not None else started
            if now - since <= self._stall_timeout_s:
                return
            what = f"no frame from {self._masked} for {self._stall_timeout_s:g}s"
        with self._lock:
            self._state = StreamState.STALLED
        raise StreamStalledError(what)

    def _count_decode_error(self) -> None:
        self._drops.add(DropReason.DECODE_ERROR)
        with self._lock:
            self._decode_errors += 1

    def _damage(self, av_frame: Any, raw: float | None) -> tuple[bool, bool]:
        """Account the frame (and frames missing before it) for corruption; return whether
        this frame is corrupt: flagged by FFmpeg, or decoded from broken references (a frame
        was lost since the last keyframe).

        Unlike a file's :class:`~sharpeyes.streams.decode.DamageTracker`, a flagged frame's
        damage is not carried to the frames after it: on a lossy link FFmpeg flags a frame for
        every lost slice, and with a long GOP every later frame would be damaged — under 30 %
        RTP loss no vehicle kept a clean picture for its crop (tried 2026-12-06,
        ``tests/test_rtsp_faults.py::test_packet_loss_is_counted_and_never_a_best_crop``).
        Those frames are marked :attr:`Frame.damage_carried` instead (second value): the signal
        heads are not read on them."""
        key = bool(av_frame.key_frame)
        if key:
            self._refs_broken = False
        period = self._frame_period
        last, self._last_raw_pts = self._last_raw_pts, raw
        now = time.monotonic()
        waited, self._last_arrival = now - self._last_arrival, now
        if (
            raw is not None
            and last is not None
            and period
            and 1.5 * period < raw - last < waited + 1.0  # a pts jump is no missing frames
        ):
            missing = round((raw - last) / period) - 1
            if missing > 0:
                if raw - last <= SHORT_GAP_S:
                    self._corruption.add(True, missing)
                else:  # one damaged frame, then the decoder waited for a clean reference
                    self._corruption.add(True)
                    self._resync_frames += missing - 1
                if not key:
                    self._refs_broken = True
        flagged = bool(av_frame.is_corrupt)
        self._corruption.add(flagged)
        corrupt = flagged or self._refs_broken
        carried = self._carried.frame(av_frame)  # a flagged frame's damage, to the keyframe
        return corrupt, carried and not corrupt

    def _on_frame(
        self, av_frame: Any, time_base: float, sar: Fraction = SQUARE, top_first: bool = True
    ) -> None:
        """One decoded frame: timed, counted, sampled and queued, stretched to square pixels
        when the camera's are not (``sar``: :func:`~sharpeyes.streams.decode.pixel_aspect`),
        deinterlaced when it is interlaced (``top_first``: the stream's field order)."""
        now = time.monotonic()
        self._in_rate.tick(now)
        raw = None if av_frame.pts is None else av_frame.pts * time_base
        if raw is None and self._last_raw_pts is not None and self._frame_period:
            # e.g. MPEG-PS: a frame that does not start a PES packet carries no pts
            raw = self._last_raw_pts + self._frame_period
        corrupt, carried = self._damage(av_frame, raw)
        stamp = self._pts.map(raw)
        with self._lock:
            seq = self._seq
            self._seq += 1
            self._session_frames += 1
            self._last_frame_mono = now
            if self._state is not StreamState.LIVE:
                if self._last_error is not None:
                    logger.info("stream %s: recovered (%s)", self._stream_id, self._last_error)
                self._state = StreamState.LIVE
                self._last_error = None  # recovered: the old error no longer describes it
                self._backoff.success()
            width, height = square_size(int(av_frame.width), int(av_frame.height), sar)
            if width != self._info.width or height != self._info.height:
                self._info = _resized(self._info, width, height)
        if not self._sampler.accept(stamp.pts, now):
            self._drops.add(DropReason.SAMPLING)
            return
        if needs_deinterlace(av_frame, self._fields):
            self.frames_deinterlaced += 1
        frame = Frame(
            stream_id=self._stream_id,
            seq=seq,
            pts=stamp.pts,
            wall_time_ms=stamp.wall_time_ms,
            image=to_bgr(av_frame, sar=sar, fields=self._fields, top_first=top_first),
            keyframe=bool(av_frame.key_frame),
            corrupt=corrupt,
            damage_carried=carried,
        )
        self._queue.put(frame)


def _resized(info: SourceInfo, width: int, height: int) -> SourceInfo:
    return SourceInfo(
        info.stream_id, info.url, width, height, info.fps, info.codec, info.frame_count
    )
