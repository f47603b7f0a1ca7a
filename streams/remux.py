"""Remux a span of encoded packets into an MP4 clip — stream copy, no re-encode.

The clip starts on a keyframe, its timestamps are rebased so the first picture is at 0, the
``moov`` atom is moved to the front (``+faststart``) so a browser can start playing before the
whole file arrives, and the file appears atomically (written to a temporary name, then renamed).

H.264 and H.265 (HEVC — what most Chinese e-police and Xueliang cameras stream) packets come in
two framings: length-prefixed with an ``avcC`` / ``hvcC`` record as extradata (MP4, MKV files) or
Annex-B start codes with the parameter sets in-band or from the SDP (RTSP, GB/T 28181 PS). Both
are muxed as Annex-B: length-prefixed packets are converted and the parameter sets (SPS/PPS;
VPS/SPS/PPS for H.265) put in front of the first keyframe, from which FFmpeg's MP4 muxer builds
the ``avcC`` / ``hvcC`` record itself. Other codecs are copied as they are when they carry no
out-of-band configuration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from sharpeyes.pipeline.errors import StreamError, StreamOpenError
from sharpeyes.streams.decode import (
    display_rotation,
    encoded_packet,
    stream_rate,
    stream_timeline,
)
from sharpeyes.streams.packet_ring import EncodedPacket, StreamParams, select_span

log = logging.getLogger(__name__)

START_CODE = b"\x00\x00\x00\x01"
H264_SPS = 7
HEVC_SPS = 33


@dataclass(frozen=True, slots=True)
class ClipInfo:
    """What was written: where, which span of the stream, how big."""

    path: Path
    codec: str
    width: int
    height: int
    start_pts_s: float  # stream time of the first (key)frame, on the Frame.pts timeline
    end_pts_s: float  # stream time just after the last frame shown
    packets: int
    keyframes: int
    size_bytes: int

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_pts_s - self.start_pts_s)

    def covers(self, start_s: float, end_s: float, tolerance_s: float = 1e-3) -> bool:
        """True when the clip shows every instant of [start_s, end_s]."""
        return self.start_pts_s <= start_s + tolerance_s and self.end_pts_s >= end_s - tolerance_s


# -- H.264 / H.265 framing -----------------------------------------------------------------------


def is_annexb(data: bytes) -> bool:
    return data.startswith((b"\x00\x00\x01", START_CODE))


def _parameter_sets(record: bytes, pos: int, count: int, nals: list[bytes]) -> int:
    """Append ``count`` (16-bit length, NAL unit) entries of a configuration record starting
    at ``pos`` to ``nals``; return the position after them."""
    for _ in range(count):
        n = int.from_bytes(record[pos : pos + 2], "big")
        nal = record[pos + 2 : pos + 2 + n]
        if len(nal) != n or n == 0:
            raise ValueError("truncated parameter set")
        nals.append(nal)
        pos += 2 + n
    return pos


def parse_avcc(extradata: bytes) -> tuple[int, list[bytes]]:
    """Split an ``avcC`` record into (NAL length size, [SPS…, PPS…]) (ISO/IEC 14496-15 5.3.3)."""
    try:
        if extradata[0] != 1:
            raise ValueError("not version 1")
        length_size = (extradata[4] & 0x03) + 1
        nals: list[bytes] = []
        pos = 5
        for count_mask in (0x1F, 0xFF):  # SPS count (5 bits), then PPS count (8 bits)
            pos = _parameter_sets(extradata, pos + 1, extradata[pos] & count_mask, nals)
        return length_size, nals
    except (IndexError, ValueError) as e:
        raise StreamError(f"malformed H.264 avcC extradata ({len(extradata)} bytes): {e}") from e


def parse_hvcc(extradata: bytes) -> tuple[int, list[bytes]]:
    """Split an ``hvcC`` record into (NAL length size, [VPS…, SPS…, PPS…, SEI…]) in record order
    (ISO/IEC 14496-15 8.3.3: 22 header bytes, the length size in the low 2 bits of byte 21,
    then ``numOfArrays`` arrays of ``numNalus`` × (16-bit length, NAL unit))."""
    try:
        if extradata[0] != 1:
            raise ValueError("not version 1")
        length_size = (extradata[21] & 0x03) + 1
        arrays = extradata[22]
        nals: list[bytes] = []
        pos = 23
        for _ in range(arrays):
            if pos + 3 > len(extradata):
                raise ValueError("truncated array header")
            count = int.from_bytes(extradata[pos + 1 : pos + 3], "big")
            pos = _parameter_sets(extradata, pos + 3, count, nals)
        return length_size, nals
    except (IndexError, ValueError) as e:
        raise StreamError(f"malformed H.265 hvcC extradata ({len(extradata)} bytes): {e}") from e


def length_prefixed_to_annexb(data: bytes, length_size: int) -> bytes:
    """Rewrite length-prefixed NAL units as Annex-B (4-byte start codes)."""
    out = bytearray()
    pos = 0
    while pos + length_size <= len(data):
        n = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if n == 0 or pos + n > len(data):
            raise StreamError(
                f"corrupt length-prefixed H.264/H.265 packet (NAL of {n} bytes at {pos})"
            )
        out += START_CODE + data[pos : pos + n]
        pos += n
    return bytes(out)


def _nal_type(codec: str, header: int) -> int:
    """The NAL unit type from the first header byte (H.265: 6 bits after the forbidden bit)."""
    return (header >> 1) & 0x3F if codec == "hevc" else header & 0x1F


def annexb_has_sps(data: bytes, codec: str = "h264") -> bool:
    """Whether an Annex-B payload carries its own sequence parameter set."""
    sps = HEVC_SPS if codec == "hevc" else H264_SPS
    i = data.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(data):
        if _nal_type(codec, data[i + 3]) == sps:
            return True
        i = data.find(b"\x00\x00\x01", i + 3)
    return False


_RECORDS = {"h264": parse_avcc, "hevc": parse_hvcc}
"""Out-of-band configuration records that can be turned into Annex-B parameter sets."""


class _Framer:
    """Turns packets of one stream into Annex-B payloads, parameter sets before the first."""

    def __init__(self, params: StreamParams) -> None:
        self.length_size = 0
        self.header = b""
        self.codec = params.codec_name
        extra = params.extradata or b""
        record = _RECORDS.get(self.codec)
        if record is not None and extra and not is_annexb(extra):
            self.length_size, nals = record(extra)
            self.header = b"".join(START_CODE + n for n in nals)
        elif extra and is_annexb(extra):
            self.header = extra
        elif extra:
            raise StreamError(
                f"cannot remux {params.codec_name!r} with out-of-band config; only H.264 avcC, "
                "H.265 hvcC or Annex-B extradata is supported"
            )
        self._first = True

    def payload(self, data: bytes) -> bytes:
        # With avcC extradata the packets are length-prefixed: never sniff for start codes, a
        # 4-byte length of 256–511 begins with 00 00 01 and would look like one.
        if self.length_size:
            data = length_prefixed_to_annexb(data, self.length_size)
        if self._first:
            self._first = False
            if self.header and not annexb_has_sps(data, self.codec):
                data = self.header + data
        return data


# -- muxing ------------------------------------------------------------------------------------


REBASE_S = 0.5
"""Seconds between a packet's own timestamps and its place on the source's timeline beyond
which the source rebased it (its timestamps started again)."""


def _scale(pkt: EncodedPacket, tb: Fraction) -> Fraction:
    return pkt.time_base / tb if pkt.time_base and pkt.time_base != tb else Fraction(1)


def _ticks(
    pkt: EncodedPacket, tb: Fraction, anchor: tuple[int, float], offset: int | None
) -> tuple[int, int | None]:
    """(pts, dts or None when the packet has none) of a packet in ``tb`` ticks.

    A packet in another time base is rescaled; one without pts is placed by its ``pts_s``
    relative to ``anchor`` = (ticks, seconds) of the first packet. ``offset`` is raw ticks −
    ``pts_s`` in ticks that the clip's packets agree on (:func:`_offset`): a packet whose own
    timestamps are further than ``REBASE_S`` from that is one the source rebased (its
    timestamps started again: a camera restart, concatenated recordings; the source's timeline
    never runs backwards) — it is placed by its ``pts_s``, pts and dts moved by one amount.
    """
    if pkt.pts is None:
        return anchor[0] + round((pkt.pts_s - anchor[1]) / tb), None
    scale = _scale(pkt, tb)
    pts = round(pkt.pts * scale)
    dts = round(pkt.dts * scale) if pkt.dts is not None else None
    if offset is not None:
        placed = round(pkt.pts_s / tb) + offset
        if abs(placed - pts) * tb > REBASE_S:
            shift = placed - pts
            return placed, None if dts is None else dts + shift
    return pts, dts


def _offset(packets: Sequence[EncodedPacket], tb: Fraction) -> int | None:
    """Raw ticks − ``pts_s`` in ticks that most packets of the clip agree on (the median over
    those with a pts; None when none has one): a stray packet stamped before the source's
    timeline settled (over RTSP, before the first pts arrives) cannot set it."""
    offsets = sorted(
        round(p.pts * _scale(p, tb)) - round(p.pts_s / tb) for p in packets if p.pts is not None
    )
    return offsets[len(offsets) // 2] if offsets else None


def decode_timestamps(pts: Sequence[int], dts: Sequence[int | None]) -> list[int]:
    """Decode timestamps for packets in decode order: the given ones when every packet has one
    and they increase, each at or before its pts; otherwise made up.

    RTP carries presentation times only, so packets of a stream with B-frames (reordered) come
    from RTSP with their dts missing or guessed. Made-up dts: the i-th smallest pts for the
    i-th packet, all shifted back by the largest reorder delay so that no dts is after its pts
    — strictly increasing whenever the pts are distinct, as the MP4 muxer requires.
    """
    given = [d for d in dts if d is not None]
    if (
        len(given) == len(pts)
        and all(b > a for a, b in itertools.pairwise(given))
        and all(d <= p for d, p in zip(given, pts, strict=True))
    ):
        return given
    ordered = sorted(pts)
    shift = max(0, *(o - p for o, p in zip(ordered, pts, strict=True)))
    out = [o - shift for o in ordered]
    for i in range(1, len(out)):  # equal pts (a broken stream): keep the muxer's order strict
        out[i] = max(out[i], out[i - 1] + 1)
    return out


def _tmp_path(out_path: Path) -> Path:
    return out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")


def _check_packets(params: StreamParams, packets: Sequence[EncodedPacket]) -> None:
    if not packets:
        raise StreamError("no packets to remux (the requested span is not in the buffer)")
    if not packets[0].is_keyframe:
        raise StreamError("a clip must start on a keyframe; the first packet is not one")
    if params.time_base <= 0:
        raise StreamError(f"invalid time base {params.time_base}")


def remux_clip(params: StreamParams, packets: Sequence[EncodedPacket], out_path: Path) -> ClipInfo:
    """Write ``packets`` (decode order, first a keyframe) as an MP4 at ``out_path``.

    Raises :class:`StreamError` when the packets cannot form a clip (none, no keyframe first,
    unsupported framing) or FFmpeg refuses them.
    """
    _check_packets(params, packets)
    tb = params.time_base
    origin_s = packets[0].pts_s
    first_pts, _ = _ticks(packets[0], tb, (0, origin_s), _offset(packets, tb))
    tmp = _tmp_path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _mux(params, packets, tmp, first_pts, origin_s)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.replace(out_path)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise StreamError(f"cannot write clip {out_path}: {e}") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    end_s = max(p.pts_s + float((p.duration or 0) * (p.time_base or tb)) for p in packets)
    return ClipInfo(
        path=out_path,
        codec=params.codec_name,
        width=params.width,
        height=params.height,
        start_pts_s=origin_s,
        end_pts_s=end_s,
        packets=len(packets),
        keyframes=sum(p.is_keyframe for p in packets),
        size_bytes=out_path.stat().st_size,
    )


def _mux(
    params: StreamParams,
    packets: Sequence[EncodedPacket],
    tmp: Path,
    first_pts: int,
    origin_s: float,
) -> None:
    tb = params.time_base
    offset = _offset(packets, tb)
    ticks = [_ticks(p, tb, (first_pts, origin_s), offset) for p in packets]
    all_pts = [pts for pts, _ in ticks]
    all_dts = decode_timestamps(all_pts, [dts for _, dts in ticks])
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(
            av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
        )
        stream: Any
        payload: Any
        if params.rotation and params.source is not None:
            # a rotated recording: the source's own codec parameters, display matrix included
            # (PyAV cannot set one on a bare mux stream); packets then go as stored
            src = stack.enter_context(av.open(params.source))
            stream = out.add_stream_from_template(src.streams.video[0])
            payload = bytes
        else:
            stream = out.add_mux_stream(
                params.codec_name,
                rate=params.frame_rate,
                width=params.width,
                height=params.height,
            )
            payload = _Framer(params).payload
        stream.time_base = tb
        for p, pts, dts in zip(packets, all_pts, all_dts, strict=True):
            pkt = av.Packet(payload(p.data))
            pkt.stream = stream
            pkt.time_base = tb
            pkt.pts = pts - first_pts
            pkt.dts = dts - first_pts
            if p.duration:
                pkt.duration = round(p.duration * (p.time_base or tb) / tb)
            pkt.is_keyframe = p.is_keyframe
            out.mux(pkt)


# -- file sources ------------------------------------------------------------------------------


def stream_params(stream: Any) -> StreamParams:
    """:class:`StreamParams` of a demuxed PyAV video stream."""
    ctx = stream.codec_context
    return StreamParams(
        codec_name=str(stream.codec_context.name),
        extradata=bytes(ctx.extradata) if ctx.extradata else None,
        width=int(ctx.width),
        height=int(ctx.height),
        time_base=Fraction(stream.time_base),
        frame_rate=stream_rate(stream),
    )


def demux_packets(
    container: Any, stream: Any, start_s: float, end_s: float
) -> Iterator[EncodedPacket]:
    """Packets of ``stream`` from the keyframe before ``start_s`` until all later ones are past
    ``end_s``. ``pts_s`` is relative to the stream's start time (as a file source's Frame.pts).
    """
    tb = Fraction(stream.time_base)
    origin = int(stream.start_time or 0)
    if start_s > 0:
        container.seek(origin + int(start_s / tb), stream=stream, backward=True, any_frame=False)
    for pkt in container.demux(stream):
        if pkt.size == 0 or (pkt.pts is None and pkt.dts is None):
            continue
        ts = pkt.pts if pkt.pts is not None else pkt.dts
        if pkt.dts is not None and float((pkt.dts - origin) * tb) > end_s:
            break  # pts ≥ dts, so nothing later in decode order is shown before end_s
        yield encoded_packet(pkt, float((ts - origin) * tb))


# Containers whose index gives one monotonic timeline, so that a seek by time lands where it
# should. Anything else (MPEG-TS above all, raw elementary streams) may be joined segments whose
# timestamps start again, and is read from its start on the file's continuous timeline.
_INDEXED_FORMATS = frozenset({"mov", "mp4", "matroska", "webm", "avi"})
_REORDER_S = 1.0  # a packet shown this long after end_s: nothing later in decode order is needed


def timeline_packets(
    container: Any, stream: Any, start_s: float, end_s: float
) -> Iterator[EncodedPacket]:
    """Packets of ``stream`` from the keyframe at or before ``start_s`` until well past
    ``end_s``, read from the file's start with ``pts_s`` on its continuous timeline
    (:class:`~sharpeyes.streams.timing.FileTimeline`, as :class:`FileSource` reads frames): a
    stream whose timestamps start again cannot be sought by time. Only the packets from the
    latest such keyframe are held, so memory stays one clip's worth."""
    timeline = stream_timeline(stream)
    held: list[EncodedPacket] = []
    rel = 0.0
    for pkt in container.demux(stream):
        if pkt.size == 0:
            continue
        # a packet without timestamps (a bare elementary stream) is placed by the timeline
        got = timeline.packet(pkt.pts, bool(pkt.is_keyframe))
        rel = rel if got is None else got
        if rel > end_s + _REORDER_S:
            break
        ep = encoded_packet(pkt, rel)
        if ep.is_keyframe and (rel <= start_s or not held):
            held = [ep]
        elif held:
            held.append(ep)
    yield from held


def clip_from_file(video_path: Path, start_s: float, end_s: float, out: Path) -> ClipInfo:
    """Remux [start_s, end_s] of a video file (from the keyframe before ``start_s``) to MP4."""
    try:
        container = av.open(str(video_path))
    except (av.FFmpegError, OSError) as e:
        raise StreamOpenError(f"cannot open {video_path}: {e}") from e
    with container:
        if not container.streams.video:
            raise StreamOpenError(f"{video_path} has no video stream")
        stream = container.streams.video[0]
        rotation = display_rotation(str(video_path))
        params = dataclasses.replace(
            stream_params(stream),
            rotation=rotation,
            source=str(video_path) if rotation else None,
        )
        indexed = bool(set(str(container.format.name).split(",")) & _INDEXED_FORMATS)
        read = demux_packets if indexed else timeline_packets
        try:
            pkts = list(read(container, stream, max(0.0, start_s), end_s))
        except av.FFmpegError as e:
            raise StreamError(f"cannot read {video_path}: {e}") from e
    span = select_span(pkts, start_s, end_s)
    log.debug("clip_from_file %s [%.3f, %.3f]: %d packets", video_path, start_s, end_s, len(span))
    return remux_clip(params, span, out)
