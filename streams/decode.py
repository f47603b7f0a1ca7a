"""PyAV decoding helpers shared by the file and RTSP sources: open an input with a clean error,
describe the video stream (:class:`StreamParams`), wrap packets for the packet ring, decode a
packet without letting one bad packet end the stream, convert to BGR."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any

import av
import av.error
import cv2
import numpy as np

from sharpeyes.pipeline.errors import DecodeError, StreamOpenError
from sharpeyes.pipeline.types import ImageBGR
from sharpeyes.streams.fields import DeinterlaceMode, deinterlace, needs_deinterlace
from sharpeyes.streams.packet_ring import EncodedPacket, StreamParams
from sharpeyes.streams.timing import FileTimeline

__all__ = [
    "SQUARE",
    "DamageTracker",
    "EncodedPacket",
    "StreamParams",
    "UnsupportedCodecError",
    "configure_error_reporting",
    "configure_threads",
    "decode_packet",
    "decoder_description",
    "demux_video",
    "display_rotation",
    "encoded_packet",
    "is_read_timeout",
    "open_input",
    "pixel_aspect",
    "read_error_text",
    "set_skip_nonref",
    "square_size",
    "stream_fps",
    "stream_params",
    "stream_rate",
    "stream_timeline",
    "to_bgr",
]

logger = logging.getLogger(__name__)

# Decode failures of one packet: corrupt data, or a decoder that refuses the input.
PACKET_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, ValueError)

# AVERROR_EXIT: FFmpeg's interrupt callback fired (PyAV's read/open timeout).
_AVERROR_EXIT = 1414092869

# Make FFmpeg check and report damage instead of hiding it; error concealment stays on.
ERROR_REPORTING_OPTIONS = {"err_detect": "crccheck+bitstream+buffer", "ec": "guess_mvs+deblock"}


OPEN_TIMEOUT_SHARE = 0.95
"""An open that failed after this share of its timeout failed by timing out, whatever FFmpeg
calls the error."""


class UnsupportedCodecError(StreamOpenError):
    """The input opened, but FFmpeg has no decoder for its video codec."""


def open_input(
    target: str,
    *,
    display: str,
    options: Mapping[str, str] | None = None,
    timeout: tuple[float, float] | None = None,
) -> tuple[Any, Any]:
    """Open ``target`` and return ``(container, video_stream)``.

    ``display`` names the input in errors and logs (a path, or a URL with credentials masked).

    Raises:
        StreamOpenError: the input cannot be opened or holds no video stream.
    """
    started = time.monotonic()
    try:
        container = av.open(target, mode="r", options=dict(options or {}), timeout=timeout)
    except (av.error.FFmpegError, OSError, ValueError) as e:
        reason = read_error_text(e, timeout[0]) if timeout else None
        if timeout and time.monotonic() - started >= OPEN_TIMEOUT_SHARE * timeout[0]:
            # the open timed out: FFmpeg's RTSP demuxer reports a server that accepted the
            # connection and never answered as "Invalid data found when processing input"
            reason = f"no answer within {timeout[0]:g} s (connected, but the server sent nothing)"
        reason = reason or getattr(e, "strerror", None) or type(e).__name__
        raise StreamOpenError(f"cannot open {display}: {reason}") from e
    if not container.streams.video:
        container.close()
        raise StreamOpenError(f"{display} has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        container.close()
        raise UnsupportedCodecError(f"{display}: unsupported codec (FFmpeg has no decoder)")
    return container, stream


def is_read_timeout(error: BaseException) -> bool:
    """PyAV's open/read timeout (FFmpeg's AVERROR_EXIT), or a socket timeout (custom IO)."""
    return getattr(error, "errno", None) == _AVERROR_EXIT or isinstance(error, TimeoutError)


def read_error_text(error: BaseException, timeout_s: float) -> str:
    """Words for a demux error (PyAV's timeout surfaces as "Immediate exit requested")."""
    if is_read_timeout(error):
        return f"no data from the camera for {timeout_s:g}s"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def configure_error_reporting(stream: Any) -> None:
    """Ask the decoder to check bitstreams and report damage (before the first decode)."""
    ctx = stream.codec_context
    if ctx is not None and not ctx.is_open:
        ctx.options = {**dict(ctx.options), **ERROR_REPORTING_OPTIONS}


class DamageTracker:
    """Which decoded frames are damaged, for sources that see no packet timing (files; the
    RTSP source also counts frames lost in transit). A frame is damaged when FFmpeg flagged it
    corrupt (it concealed errors in it), or when a packet failed to decode or a frame was
    damaged since the last keyframe: FFmpeg does not flag the frames decoded from a damaged
    or missing reference, but they carry its damage until the next keyframe."""

    def __init__(self) -> None:
        self._refs_broken = False
        self.damaged = 0

    def packet_failed(self) -> None:
        self._refs_broken = True

    def frame(self, av_frame: Any) -> bool:
        """Whether ``av_frame`` (in decode output order) is damaged (counted)."""
        if av_frame.key_frame:
            self._refs_broken = False
        damaged = bool(av_frame.is_corrupt) or self._refs_broken
        self._refs_broken = damaged
        self.damaged += int(damaged)
        return damaged


def all_damaged(name: str, decoded: int) -> DecodeError:
    """The error of a file whose every decoded frame came from damaged data: FFmpeg will take
    some random bytes for a stream and conceal its way to pictures, and a recording corrupt
    throughout gives nothing to analyse either."""
    return DecodeError(
        f"{name}: not one of its {decoded} decoded frame(s) is whole (every one came from "
        "damaged data): the file is not a readable video or is corrupt throughout"
    )


def configure_threads(stream: Any, threads: int) -> None:
    """``threads`` 0: FFmpeg picks (frame + slice threading); 1: single thread; n: n threads."""
    ctx = stream.codec_context
    if threads == 1:
        ctx.thread_count = 1
        return
    stream.thread_type = "AUTO"
    ctx.thread_count = max(threads, 0)


def decoder_description(stream: Any) -> str:
    ctx = stream.codec_context
    threading = f"thread_type={stream.thread_type.name}, threads={ctx.thread_count}"
    return f"{ctx.name} (pyav cpu, {threading})"


_PLAUSIBLE_FPS = (0.5, 300.0)


RAW_VIDEO_FORMATS = frozenset({"h264", "hevc", "mpegvideo", "m4v", "vvc", "cavsvideo"})
"""Demuxers of bare elementary streams (a DVR's or NVR's ``.264`` / ``.h265`` export): their
packets carry no timestamps, and the stream's *average rate* is the demuxer's default
``framerate`` option (25), not the camera's. The codec's own rate (the H.264 / H.265 VUI timing)
is the camera's: hanoi_b's 6 fps copied to a ``.264`` was analysed as 25 fps, every time 4×
too early and no evidence clip cut."""


def stream_rate(stream: Any) -> Fraction | None:
    """The stream's frame rate: the first plausible of its average rate, the codec's own
    (H.264 / H.265 VUI), the guessed and the base rate (a broken file can claim thousands of
    frames per second) — the codec's first for a bare elementary stream
    (:data:`RAW_VIDEO_FORMATS`); None when none is plausible."""
    codec_rate = getattr(stream.codec_context, "framerate", None)
    rates = [stream.average_rate, codec_rate, stream.guessed_rate, stream.base_rate]
    container = getattr(stream, "container", None)
    fmt = str(getattr(getattr(container, "format", None), "name", "") or "")
    if set(fmt.split(",")) & RAW_VIDEO_FORMATS:
        rates.insert(0, codec_rate)
    for rate in rates:
        if rate and _PLAUSIBLE_FPS[0] <= float(rate) <= _PLAUSIBLE_FPS[1]:
            return Fraction(rate)
    return None


def stream_fps(stream: Any) -> float:
    """:func:`stream_rate` as a float; 0.0 when none is plausible."""
    rate = stream_rate(stream)
    return float(rate) if rate is not None else 0.0


def stream_timeline(stream: Any) -> FileTimeline:
    """The continuous timeline of a demuxed file stream (see :class:`FileTimeline`)."""
    fps = stream_fps(stream)
    return FileTimeline(
        float(stream.time_base), stream.start_time, frame_s=1.0 / fps if fps > 0 else 0.04
    )


def stream_params(stream: Any) -> StreamParams:
    """The codec parameters a muxer needs to write this stream's packets."""
    ctx = stream.codec_context
    extradata = ctx.extradata
    return StreamParams(
        codec_name=str(ctx.name),
        extradata=bytes(extradata) if extradata else None,
        width=int(ctx.width),
        height=int(ctx.height),
        time_base=Fraction(stream.time_base),
        frame_rate=stream_rate(stream),
    )


def encoded_packet(packet: Any, pts_s: float) -> EncodedPacket:
    """Copy a demuxed packet (bytes and timing) for the packet ring."""
    return EncodedPacket(
        data=bytes(packet),
        pts=packet.pts,
        dts=packet.dts,
        duration=packet.duration,
        time_base=Fraction(packet.time_base),
        is_keyframe=bool(packet.is_keyframe),
        pts_s=pts_s,
    )


def demux_video(container: Any, stream: Any, max_skips: int = 1000) -> Iterator[Any]:
    """Demuxed packets of ``stream`` (FFmpeg ends with an empty flush packet).

    A corrupt stream can make FFmpeg announce a stream PyAV does not know (PyAV raises
    IndexError); such packets are skipped and demuxing resumes, up to ``max_skips`` times.
    Read errors (``PACKET_ERRORS``) propagate to the caller.
    """
    skips = 0
    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            return
        except IndexError:
            skips += 1
            if skips > max_skips:
                raise
            logger.debug("skipped a packet of an unknown stream (%d so far)", skips)
            demux = container.demux(stream)
            continue
        yield packet


def decode_packet(stream: Any, packet: Any) -> list[Any] | None:
    """Decode one packet; return its frames, or None when the packet failed to decode."""
    try:
        return list(stream.codec_context.decode(packet))
    except PACKET_ERRORS as e:
        logger.debug("packet at pts %s failed to decode: %s", packet.pts, e)
        return None


def set_skip_nonref(stream: Any, skip: bool) -> None:
    """Let the decoder discard non-reference frames of the next packets (``skip``) or decode
    everything. Safe between any two packets: no other frame is predicted from a
    non-reference frame, so the frames still decoded are bit-identical."""
    stream.codec_context.skip_frame = "NONREF" if skip else "DEFAULT"


SQUARE = Fraction(1)
"""The pixel aspect ratio of square pixels."""

PIXEL_ASPECT_RANGE = (Fraction(1, 4), Fraction(4))
"""Pixel aspect ratios outside this range are taken for broken metadata and ignored."""


def pixel_aspect(stream: Any, given: Fraction | None = None) -> Fraction:
    """The width : height of one coded pixel of a video stream (its *sample aspect ratio*, from
    the bitstream's VUI or the container). Square (1) when unknown, within 1 % of square, or
    implausible (:data:`PIXEL_ASPECT_RANGE`). Not square: the camera's anamorphic sub-stream or
    a D1 / 960H encoder (704×576 at 12:11 or 16:11, a 16:9 picture squeezed into 4:3 at 4:3) —
    players stretch such pictures to their display shape, and so do the sources here
    (:func:`square_size`). ``given`` (a camera's ``pixel_aspect``: a stream squeezed without
    saying so) replaces what the stream says."""
    if given is not None:
        return SQUARE if abs(given - 1) < Fraction(1, 100) else given
    sar = stream.codec_context.sample_aspect_ratio or stream.sample_aspect_ratio
    if not sar or sar.numerator <= 0 or sar.denominator <= 0:
        return SQUARE
    ratio = Fraction(int(sar.numerator), int(sar.denominator))
    low, high = PIXEL_ASPECT_RANGE
    if abs(ratio - 1) < Fraction(1, 100) or not low <= ratio <= high:
        return SQUARE
    return ratio


def square_size(width: int, height: int, sar: Fraction = SQUARE) -> tuple[int, int]:
    """The size of a ``width``×``height`` picture of pixels ``sar`` wide : 1 high once its pixels
    are made square: the squeezed side is stretched (no coded pixel is lost), to an even
    number of pixels (NV12 needs even sides)."""
    if sar == SQUARE:
        return width, height
    if sar > 1:
        return max(2, 2 * round(width * sar / 2)), height
    return width, max(2, 2 * round(height / sar / 2))


def to_bgr(
    frame: Any,
    rotation: int = 0,
    sar: Fraction = SQUARE,
    *,
    fields: DeinterlaceMode = "auto",
    top_first: bool = True,
) -> ImageBGR:
    """The expensive part: colour conversion to a BGR uint8 array (call for sampled frames),
    deinterlaced when ``fields`` says so (:func:`~sharpeyes.streams.fields.needs_deinterlace`:
    by default the frames the decoder flags interlaced; ``top_first``: the stream's field
    order, :func:`~sharpeyes.streams.fields.top_field_first`), stretched to square pixels when
    the stream's pixels are not (``sar``, see :func:`pixel_aspect`; the same swscale pass — after
    deinterlacing, which needs the coded rows) and turned upright by ``rotation`` (a file's
    display rotation, see :func:`display_rotation`)."""
    woven = needs_deinterlace(frame, fields)
    if sar == SQUARE:
        image: ImageBGR = frame.to_ndarray(format="bgr24")
        if woven:
            image = deinterlace(image, top_first)
    elif woven:
        w, h = square_size(int(frame.width), int(frame.height), sar)
        coded = deinterlace(frame.to_ndarray(format="bgr24"), top_first)
        image = np.asarray(cv2.resize(coded, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)
    else:
        w, h = square_size(int(frame.width), int(frame.height), sar)
        image = frame.to_ndarray(format="bgr24", width=w, height=h, interpolation="BILINEAR")
    if rotation:
        image = np.ascontiguousarray(np.rot90(image, rotation // 90))
    return image


def display_rotation(path: str) -> int:
    """The display rotation of a file's video (degrees counter-clockwise: 0, 90, 180 or 270)
    from its first frame's display matrix — what players (and OpenCV) apply and a phone
    recording relies on. 0 when there is none or the file cannot be read here."""
    try:
        with av.open(path) as c:
            for frame in c.decode(video=0):
                return round(float(getattr(frame, "rotation", 0) or 0) / 90.0) % 4 * 90
    except (av.FFmpegError, OSError, StopIteration, IndexError):
        return 0
    return 0
