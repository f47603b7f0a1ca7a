"""A video file as a :class:`pipeline.protocols.FrameSource` (also a stand-in for a live camera
with ``realtime=True``)."""

from __future__ import annotations

import dataclasses
import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from sharpeyes.pipeline.errors import DecodeError
from sharpeyes.pipeline.protocols import SourceInfo
from sharpeyes.pipeline.types import Frame
from sharpeyes.streams.decode import (
    PACKET_ERRORS,
    DamageTracker,
    EncodedPacket,
    StreamParams,
    all_damaged,
    configure_error_reporting,
    configure_threads,
    decode_packet,
    demux_video,
    display_rotation,
    encoded_packet,
    open_input,
    set_skip_nonref,
    square_size,
    stream_fps,
    stream_params,
    stream_timeline,
    to_bgr,
)
from sharpeyes.streams.decode import (
    pixel_aspect as stream_pixel_aspect,
)
from sharpeyes.streams.fields import DeinterlaceMode, needs_deinterlace, top_field_first
from sharpeyes.streams.sampling import Sampler

logger = logging.getLogger(__name__)

PacketSink = Callable[[EncodedPacket], None]


def creation_time_ms(metadata: dict[str, str]) -> int | None:
    """The container's ``creation_time`` tag as UTC epoch ms, or None when absent or invalid."""
    text = metadata.get("creation_time")
    if not text:
        return None
    try:
        return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


class FileSource:
    """Decodes a video file's first video stream into :class:`Frame` objects.

    ``seq`` is the index of the decoded frame in the file (frames skipped by ``analysis_fps``
    leave gaps); ``pts`` is seconds from the first frame; wall time is ``start_wall_ms`` (default:
    the file's ``creation_time`` tag, else the time of opening) plus the pts offset. Only sampled
    frames are converted to BGR; with ``skip_unsampled`` (default) the decoder also discards
    the non-reference frames that sampling is certain to drop (``frames_skipped``; the frames
    still decoded are bit-identical and ``seq`` still counts every frame of the file).
    ``packet_sink`` receives every video packet before decoding. Frames have square pixels
    (stretched when the stream's are not, or ``pixel_aspect`` says they are not) and no combs
    (interlaced frames are deinterlaced as ``deinterlace`` says, :mod:`sharpeyes.streams.fields`).

    Raises (from the constructor): StreamOpenError when the file cannot be opened or holds no
    video; from ``frames()``: DecodeError when the file broke before any frame decoded.
    """

    def __init__(
        self,
        path: Path | str,
        stream_id: str = "cam1",
        *,
        realtime: bool = False,
        analysis_fps: float | None = None,
        start_wall_ms: int | None = None,
        packet_sink: PacketSink | None = None,
        decode_threads: int = 0,
        skip_unsampled: bool = True,
        pixel_aspect: Fraction | None = None,
        deinterlace: DeinterlaceMode = "auto",
    ) -> None:
        self._path = Path(path)
        self._stream_id = stream_id
        self._realtime = realtime
        self._analysis_fps = analysis_fps
        self._packet_sink = packet_sink
        self._skip_unsampled = skip_unsampled and bool(analysis_fps and analysis_fps > 0)
        self._closed = threading.Event()
        self._container, self._stream = open_input(str(self._path), display=str(self._path))
        configure_threads(self._stream, decode_threads)
        configure_error_reporting(self._stream)  # FFmpeg reports damage, as on RTSP
        meta_ms = creation_time_ms(dict(self._container.metadata))
        default_ms = meta_ms if meta_ms is not None else round(time.time() * 1000)
        self._start_wall_ms = start_wall_ms if start_wall_ms is not None else default_ms
        # a file paced as a live camera with no given origin is filmed "now": its clock starts
        # when its first frame comes out, not when it was opened (a camera built a minute
        # before its first frame would stamp everything a minute in the past)
        self._anchor_at_first = realtime and start_wall_ms is None
        self.clock_origin = (
            "given"
            if start_wall_ms is not None
            else "first_frame"
            if self._anchor_at_first
            else "creation_time"
            if meta_ms is not None
            else "opened"
        )
        """Where wall times come from: ``given`` (the caller's start time), ``first_frame`` (a
        file paced in real time: the moment its first frame came out), ``creation_time`` (the
        file's tag: the recording's time) or ``opened`` (the time the file was opened)."""
        self._timeline = stream_timeline(self._stream)
        # a phone recording's display rotation: frames are turned upright (as players and
        # OpenCV show them), the size is the upright one, clips carry the rotation on
        self._rotation = display_rotation(str(self._path))
        # an anamorphic recording (pixels not square): frames are stretched to the shape
        # players show, the size is that shape; clips keep the coded pictures and their SAR
        self._sar = stream_pixel_aspect(self._stream, pixel_aspect)
        # interlaced video: the later field is rebuilt where it combs (streams/fields.py)
        self._fields: DeinterlaceMode = deinterlace
        self._top_first = top_field_first(self._stream)
        self._params = dataclasses.replace(
            stream_params(self._stream),
            rotation=self._rotation,
            source=str(self._path) if self._rotation else None,
        )
        self._info = self._make_info()
        self._broken: str | None = None
        self._ended = False
        self._iterating = False
        self._lock = threading.Lock()
        self.decode_errors = 0
        self._damage = DamageTracker()
        self.frames_decoded = 0
        self.frames_skipped = 0  # non-reference frames not decoded (never sampled)
        self.frames_yielded = 0
        self.frames_deinterlaced = 0  # interlaced frames whose combs were undone

    def _make_info(self) -> SourceInfo:
        stream = self._stream
        duration = None
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            duration = self._container.duration / 1_000_000
        w, h = square_size(
            int(stream.codec_context.width), int(stream.codec_context.height), self._sar
        )
        if self._rotation in (90, 270):
            w, h = h, w
        return SourceInfo(
            stream_id=self._stream_id,
            url=str(self._path),
            width=w,
            height=h,
            fps=stream_fps(stream),
            codec=str(stream.codec_context.name),
            frame_count=int(stream.frames) or None,
            duration_s=duration,
        )

    @property
    def info(self) -> SourceInfo:
        return self._info

    @property
    def start_wall_ms(self) -> int:
        return self._start_wall_ms

    def video_stream_params(self) -> StreamParams:
        return self._params

    def frames(self) -> Iterator[Frame]:
        with self._lock:
            if self._iterating:
                raise RuntimeError("FileSource.frames() is already being iterated")
            self._iterating = True
        try:
            yield from self._frames()
        finally:
            with self._lock:
                self._iterating = False
                if self._closed.is_set():
                    self._container.close()

    def _frames(self) -> Iterator[Frame]:
        sampler = Sampler(self._analysis_fps)
        pacer = _Pacer(self._closed) if self._realtime else None
        skips = _SkipLedger()
        timeline = self._timeline
        for packet in self._packets():
            restarts = timeline.restarts
            rel = timeline.packet(packet.pts, bool(packet.is_keyframe)) if packet.size else None
            if timeline.restarts > restarts:
                logger.warning(
                    "%s: timestamps start again at a keyframe (pts %s); the timeline continues "
                    "at %.3f s",
                    self._path,
                    packet.pts,
                    rel,
                )
            if packet.size and self._packet_sink is not None:
                self._packet_sink(encoded_packet(packet, rel if rel is not None else 0.0))
            self._plan_skip(rel, sampler, skips)
            decoded = decode_packet(self._stream, packet)
            if decoded is None:
                self.decode_errors += 1
                self._damage.packet_failed()  # the frames after it until a keyframe lack it
                continue
            for av_frame in decoded:
                damaged = self._damage.frame(av_frame)
                stalled = timeline.stalled
                pts = timeline.frame(av_frame.pts)
                if stalled == 0 and timeline.stalled == 1:
                    logger.warning(
                        "%s: frame timestamps do not advance (pts %s again): the file's timing "
                        "is broken; frames are timed one frame period apart from here on where "
                        "they do not advance (re-mux the file with correct timestamps for true "
                        "times)",
                        self._path,
                        av_frame.pts,
                    )
                if av_frame.pts is not None:
                    self.frames_skipped += skips.discarded_before(pts)
                seq = self.frames_decoded + self.frames_skipped
                self.frames_decoded += 1
                if not sampler.accept(pts):
                    continue
                if pacer is not None and not pacer.wait_until(pts):
                    return
                yield self._frame(av_frame, seq, pts, damaged)
        self.frames_skipped += skips.discarded_at_end()
        self._finish()

    def _plan_skip(self, rel: float | None, sampler: Sampler, skips: _SkipLedger) -> None:
        """Let the decoder discard the frame of the packet at ``rel`` (its place on the
        timeline) when it is non-reference and sampling will reject it (no pts: decode it)."""
        if not self._skip_unsampled:
            return
        skip = rel is not None and sampler.will_reject(rel)
        if skip and rel is not None:
            skips.requested(rel)
        if skip != skips.decoder_skipping:
            set_skip_nonref(self._stream, skip)
            skips.decoder_skipping = skip

    @property
    def frames_damaged(self) -> int:
        """Frames decoded from damaged data so far (:class:`DamageTracker`)."""
        return self._damage.damaged

    def _frame(self, av_frame: Any, seq: int, pts: float, damaged: bool = False) -> Frame:
        if self._anchor_at_first:
            self._anchor_at_first = False
            self._start_wall_ms = round(time.time() * 1000 - pts * 1000)
        self.frames_yielded += 1
        if needs_deinterlace(av_frame, self._fields):
            self.frames_deinterlaced += 1
        return Frame(
            stream_id=self._stream_id,
            seq=seq,
            pts=pts,
            wall_time_ms=self._start_wall_ms + round(pts * 1000),
            image=to_bgr(
                av_frame, self._rotation, self._sar, fields=self._fields, top_first=self._top_first
            ),
            keyframe=bool(av_frame.key_frame),
            corrupt=damaged,
        )

    def _packets(self) -> Iterator[Any]:
        """Demuxed video packets (ending with the flush packet) until EOF, error or close."""
        demux = demux_video(self._container, self._stream)
        while not self._closed.is_set():
            try:
                packet = next(demux)
            except StopIteration:
                return
            except PACKET_ERRORS as e:
                self._broken = f"{self._path}: read failed after {self.frames_decoded} frames: {e}"
                return
            yield packet

    def ending_notes(self) -> list[str]:
        """What a user must know about how decoding went, after iteration: the file ended
        before the frames its header declares (truncated or corrupt), packets that could not be
        decoded. Empty for a file read whole."""
        notes = []
        seen = self.frames_decoded + self.frames_skipped
        declared = self._info.frame_count
        if declared and self._ended and seen < declared - max(2, 0.02 * declared):
            fps = self._info.fps or 0.0
            span = f" ({seen / fps:.1f} s of {declared / fps:.1f} s)" if fps > 0 else ""
            notes.append(
                f"{self._path.name}: decoding ended after {seen} of the {declared} frames the "
                f"file declares{span}: the file is truncated or corrupt"
            )
        elif self._broken is not None:
            notes.append(f"{self._broken}; the stream ended there")
        if self.decode_errors:
            notes.append(
                f"{self._path.name}: {self.decode_errors} packet(s) could not be decoded "
                "(corrupt data); their frames are missing from the analysis"
            )
        if self.frames_damaged:
            notes.append(
                f"{self._path.name}: {self.frames_damaged} frame(s) decoded from damaged data "
                "(corrupt, or referring to a lost frame until the next keyframe): no evidence "
                "picture, crop or plate is taken from them and the signal heads are not read "
                "on them"
            )
        return notes

    def _finish(self) -> None:
        self._ended = not self._closed.is_set()  # the file ran out (not stopped by a caller)
        if self.frames_decoded == 0 and not self._closed.is_set():
            raise DecodeError(self._broken or f"{self._path}: no video frame could be decoded")
        if self._ended and self.frames_damaged == self.frames_decoded:
            raise all_damaged(str(self._path), self.frames_decoded)
        if self._broken is not None:
            logger.warning("%s; ending the stream early", self._broken)

    def close(self) -> None:
        """Stop iteration (from any thread) and release the file."""
        with self._lock:
            self._closed.set()
            if not self._iterating:
                self._container.close()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SkipLedger:
    """The (relative) pts of packets the decoder was allowed to discard. Frames come out in pts
    order, so a requested pts below the next decoded frame's pts (or left at the end) was
    discarded. Relative, not raw: a file whose timestamps start again repeats raw values."""

    def __init__(self) -> None:
        self._pending: list[float] = []
        self.decoder_skipping = False

    def requested(self, pts: float) -> None:
        heapq.heappush(self._pending, pts)

    def discarded_before(self, pts: float) -> int:
        """Forget the requests up to the decoded frame at ``pts`` and return how many of them
        were discarded (every one below ``pts``)."""
        discarded = 0
        pending = self._pending
        while pending and pending[0] <= pts:
            if heapq.heappop(pending) != pts:
                discarded += 1
        return discarded

    def discarded_at_end(self) -> int:
        """After the decoder was flushed every request still open was discarded."""
        discarded, self._pending = len(self._pending), []
        return discarded


class _Pacer:
    """Sleeps so frames come out at stream speed (pts 0 at the first frame)."""

    def __init__(self, closed: threading.Event) -> None:
        self._closed = closed
        self._t0: float | None = None
        self._pts0 = 0.0

    def wait_until(self, pts: float) -> bool:
        """Wait until ``pts`` is due; return False when the source was closed meanwhile."""
        now = time.monotonic()
        if self._t0 is None:
            self._t0, self._pts0 = now, pts
        delay = self._t0 + (pts - self._pts0) - now
        if delay > 0:
            return not self._closed.wait(delay)
        return not self._closed.is_set()
