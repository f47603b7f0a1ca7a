"""Clip remuxing: generated H.264 and H.265 (keyframe every N frames, B-frames) → MP4 span, no
re-encode."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sharpeyes.pipeline.errors import StreamError
from sharpeyes.streams.packet_ring import EncodedPacket, PacketRing, StreamParams
from sharpeyes.streams.remux import (
    annexb_has_sps,
    clip_from_file,
    decode_timestamps,
    length_prefixed_to_annexb,
    parse_avcc,
    parse_hvcc,
    remux_clip,
    stream_params,
)

FPS = 25
GOP = 12
FRAMES = 150  # 6 s


def encode(path: Path, fmt: str, codec: str = "libx264") -> None:
    """Moving bar, libx264 or libx265, a keyframe exactly every GOP frames, 2 B-frames."""
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=FPS)
        assert isinstance(s, av.VideoStream)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.codec_context.gop_size = GOP
        if codec == "libx265":
            s.codec_context.options = {
                "preset": "ultrafast",
                "x265-params": (
                    f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=2:log-level=error"
                ),
            }
        else:
            s.codec_context.options = {
                "bf": "2",
                "keyint_min": str(GOP),
                "sc_threshold": "0",
                "preset": "ultrafast",
            }
        for i in range(FRAMES):
            a = np.zeros((240, 320, 3), np.uint8)
            a[:, (i * 2) % 300 : (i * 2) % 300 + 20] = (255, 200, 0)
            f = av.VideoFrame.from_ndarray(a, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("remux") / "src.mp4"
    encode(path, "mp4")
    return path


@pytest.fixture(scope="module")
def annexb_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("remux") / "src.ts"
    encode(path, "mpegts")
    return path


@pytest.fixture(scope="module")
def hevc_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """H.265 in MP4: length-prefixed packets with an ``hvcC`` record (as Hikvision/Dahua
    exports and most Chinese cameras' recordings)."""
    if "libx265" not in av.codecs_available:
        pytest.skip("this PyAV build has no libx265 encoder")
    path = tmp_path_factory.mktemp("remux") / "src_hevc.mp4"
    encode(path, "mp4", "libx265")
    return path


@pytest.fixture(scope="module")
def hevc_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """H.265 Annex-B in MPEG-TS: the framing of an RTSP or GB/T 28181 camera."""
    if "libx265" not in av.codecs_available:
        pytest.skip("this PyAV build has no libx265 encoder")
    path = tmp_path_factory.mktemp("remux") / "src_hevc.ts"
    encode(path, "mpegts", "libx265")
    return path


def probe(path: Path) -> tuple[list[av.Packet[av.VideoStream]], float, int]:
    """(packets in decode order, first pts in seconds, decoded frame count)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        pkts = [p for p in c.demux(s) if p.size]
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    first = min(float(f.time or 0.0) for f in frames)
    return pkts, first, len(frames)


def ffprobe_ok(path: Path) -> None:
    """When FFmpeg's CLI is installed, it must decode the whole clip without one error."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return
    res = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr


def assert_faststart(path: Path) -> None:
    head = path.read_bytes()
    assert head.find(b"moov") < head.find(b"mdat"), "moov must precede mdat (+faststart)"


def test_clip_from_file_starts_on_keyframe_and_covers_span(mp4: Path, tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    start, end = 2.1, 3.3  # keyframes every 0.48 s: 1.92 is the one before 2.1
    info = clip_from_file(mp4, start, end, out)
    assert info.start_pts_s == pytest.approx(1.92)
    assert info.covers(start, end)
    assert info.keyframes >= 2
    pkts, first_s, nframes = probe(out)
    assert pkts[0].is_keyframe
    assert first_s == pytest.approx(0.0, abs=1e-3)  # rebased to 0
    # frames 48 (1.92 s) … 82 (3.28 s), plus at most the reference frames B-frames need
    assert nframes == info.packets
    assert 35 <= info.packets <= 35 + 2
    assert_faststart(out)
    ffprobe_ok(out)
    assert not list(tmp_path.glob(".*tmp"))  # temp file renamed away


def test_clip_from_file_span_at_start_and_end(mp4: Path, tmp_path: Path) -> None:
    a = clip_from_file(mp4, 0.0, 0.5, tmp_path / "a.mp4")
    assert a.start_pts_s == 0.0 and a.covers(0.0, 0.5)
    assert probe(tmp_path / "a.mp4")[2] == a.packets  # every packet decodes
    ffprobe_ok(tmp_path / "a.mp4")
    b = clip_from_file(mp4, 5.5, 99.0, tmp_path / "b.mp4")
    assert b.start_pts_s == pytest.approx(5.28)
    assert b.end_pts_s == pytest.approx(FRAMES / FPS)
    ffprobe_ok(tmp_path / "b.mp4")


def demuxed(path: Path) -> tuple[StreamParams, list[EncodedPacket]]:
    """The stream parameters and packets (with pts) of a file's video, as a source sees them."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tb = Fraction(s.time_base or Fraction(1, 90_000))
        origin = int(s.start_time or 0)
        pkts = [
            EncodedPacket(
                bytes(p),
                p.pts,
                p.dts,
                p.duration,
                tb,
                bool(p.is_keyframe),
                float((p.pts - origin) * tb),
            )
            for p in c.demux(s)
            if p.size and p.pts is not None
        ]
        return stream_params(s), pkts


def ring_of(path: Path) -> PacketRing:
    """A 3 s packet ring fed with the file's packets (as from RTSP)."""
    params, pkts = demuxed(path)
    ring = PacketRing(max_seconds=3.0, max_bytes=10**7)
    ring.set_stream_params(params)
    for pkt in pkts:
        ring.push(pkt)
    return ring


def test_ring_annexb_remux_like_rtsp(annexb_ts: Path, tmp_path: Path) -> None:
    """Annex-B packets (as from RTSP) through the ring, then remuxed."""
    ring = ring_of(annexb_ts)
    st = ring.stats()
    assert st.seconds >= 3.0
    params = ring.params
    assert params is not None
    span = ring.span(4.0, 5.0)
    info = remux_clip(params, span, tmp_path / "ring.mp4")
    assert span[0].is_keyframe and info.covers(4.0, 5.0)
    pkts, first_s, nframes = probe(tmp_path / "ring.mp4")
    assert pkts[0].is_keyframe and first_s == pytest.approx(0.0, abs=1e-3)
    assert nframes == len(span)
    ffprobe_ok(tmp_path / "ring.mp4")


def test_remux_rejects_bad_input(tmp_path: Path) -> None:
    params = StreamParams("h264", None, 320, 240, Fraction(1, 90_000))
    with pytest.raises(StreamError):
        remux_clip(params, [], tmp_path / "x.mp4")
    p = EncodedPacket(b"\x00\x00\x00\x01\x41", 0, 0, 1, Fraction(1, 90_000), False, 0.0)
    with pytest.raises(StreamError):
        remux_clip(params, [p], tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()
    with pytest.raises(StreamError):
        parse_avcc(b"\x01\x64")
    with pytest.raises(StreamError):
        length_prefixed_to_annexb(b"\x00\x00\x00\x09ab", 4)


def test_avcc_conversion() -> None:
    sps, pps = b"\x67\x64\x00\x1f", b"\x68\xee"
    avcc = (
        b"\x01\x64\x00\x1f\xff\xe1"
        + len(sps).to_bytes(2, "big")
        + sps
        + b"\x01"
        + len(pps).to_bytes(2, "big")
        + pps
    )
    size, nals = parse_avcc(avcc)
    assert size == 4 and nals == [sps, pps]
    data = (3).to_bytes(4, "big") + b"\x65\x01\x02" + (1).to_bytes(4, "big") + b"\x06"
    assert length_prefixed_to_annexb(data, 4) == b"\x00\x00\x00\x01\x65\x01\x02\x00\x00\x00\x01\x06"


def test_missing_file_is_stream_open_error(tmp_path: Path) -> None:
    from sharpeyes.pipeline.errors import StreamOpenError

    with pytest.raises(StreamOpenError):
        clip_from_file(tmp_path / "nope.mp4", 0, 1, tmp_path / "o.mp4")


def test_packets_without_pts_are_placed_by_pts_s(mp4: Path, tmp_path: Path) -> None:
    with av.open(str(mp4)) as c:
        s = c.streams.video[0]
        params = stream_params(s)
        tb = params.time_base
        pkts = [
            EncodedPacket(
                bytes(p),
                None if i % 3 else p.pts,
                p.dts,
                p.duration,
                tb,
                bool(p.is_keyframe),
                float(p.pts * tb),
            )
            for i, p in enumerate(c.demux(s))
            if p.size and p.pts is not None
        ]
    info = remux_clip(params, pkts[:48], tmp_path / "nopts.mp4")
    _, first_s, nframes = probe(tmp_path / "nopts.mp4")
    assert nframes == 48 and first_s == pytest.approx(0.0, abs=1e-3)
    assert info.covers(0.0, 47 / FPS)
    ffprobe_ok(tmp_path / "nopts.mp4")


# -- H.265 (HEVC) ------------------------------------------------------------------------------


def _codec(path: Path) -> str:
    with av.open(str(path)) as c:
        return str(c.streams.video[0].codec_context.name)


def test_hevc_clip_from_mp4_with_hvcc(hevc_mp4: Path, tmp_path: Path) -> None:
    """An H.265 camera's recording (``hvcC`` extradata) gives a playable H.265 clip of the span,
    starting on the keyframe before it, every packet decoding."""
    with av.open(str(hevc_mp4)) as c:
        params = stream_params(c.streams.video[0])
    assert params.codec_name == "hevc" and params.extradata and params.extradata[0] == 1
    out = tmp_path / "clip.mp4"
    info = clip_from_file(hevc_mp4, 2.1, 3.3, out)
    assert info.codec == "hevc" and _codec(out) == "hevc"
    assert info.start_pts_s == pytest.approx(1.92) and info.covers(2.1, 3.3)
    pkts, first_s, nframes = probe(out)
    assert pkts[0].is_keyframe and first_s == pytest.approx(0.0, abs=1e-3)
    # x265 makes open GOPs: the 2 leading B-frames of the first (CRA) keyframe reference the GOP
    # before the clip and are dropped by the decoder; they are shown before the span anyway
    assert info.packets - 2 <= nframes <= info.packets and 35 <= nframes <= 39
    assert_faststart(out)
    ffprobe_ok(out)


def test_hevc_ring_annexb_remux_like_rtsp(hevc_ts: Path, tmp_path: Path) -> None:
    """H.265 Annex-B packets (RTSP / PS framing) through the ring: the clip decodes from its
    first packet, the VPS/SPS/PPS it needs being in-band or put in front."""
    _, given = demuxed(hevc_ts)
    assert all(p.data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")) for p in given)
    ring = ring_of(hevc_ts)
    params = ring.params
    assert params is not None and params.codec_name == "hevc"
    span = ring.span(4.0, 5.0)
    info = remux_clip(params, span, tmp_path / "ring.mp4")
    assert span[0].is_keyframe and info.covers(4.0, 5.0)
    pkts, first_s, nframes = probe(tmp_path / "ring.mp4")
    assert pkts[0].is_keyframe and first_s == pytest.approx(0.0, abs=1e-3)
    assert len(span) - 2 <= nframes <= len(span)  # open GOP: see test_hevc_clip_from_mp4_with_hvcc
    ffprobe_ok(tmp_path / "ring.mp4")


def test_hvcc_parsing_and_hevc_parameter_sets() -> None:
    vps, sps, pps = b"\x40\x01\x0c", b"\x42\x01\x01\x60", b"\x44\x01\xc1"
    arrays = b"".join(
        bytes([0x80 | t]) + (1).to_bytes(2, "big") + len(n).to_bytes(2, "big") + n
        for t, n in ((32, vps), (33, sps), (34, pps))
    )
    hvcc = b"\x01" + bytes(20) + b"\x0f" + b"\x03" + arrays  # byte 21: length size 4
    size, nals = parse_hvcc(hvcc)
    assert size == 4 and nals == [vps, sps, pps]
    annexb = b"".join(b"\x00\x00\x00\x01" + n for n in nals)
    assert annexb_has_sps(annexb, "hevc")
    assert not annexb_has_sps(b"\x00\x00\x00\x01" + vps + b"\x00\x00\x00\x01" + pps, "hevc")
    # an H.265 IDR slice (type 19, header byte 0x26) is not an H.264 SPS either way
    assert not annexb_has_sps(b"\x00\x00\x00\x01\x26\x01", "hevc")
    with pytest.raises(StreamError, match="hvcC"):
        parse_hvcc(hvcc[:30])
    with pytest.raises(StreamError, match="hvcC"):
        parse_hvcc(b"\x02" + hvcc[1:])


# -- timestamps as RTSP gives them ---------------------------------------------------------------


def test_decode_timestamps_kept_when_sound_made_up_when_missing() -> None:
    # decode order I P B B (pts 0, 3, 1, 2): given dts that increase and precede pts are kept
    assert decode_timestamps([0, 3, 1, 2], [-1, 0, 1, 2]) == [-1, 0, 1, 2]
    # RTP has no dts: each made-up dts is at or before its pts, strictly increasing
    made = decode_timestamps([0, 3, 1, 2], [None, None, None, None])
    assert all(b > a for a, b in itertools.pairwise(made))
    assert all(d <= p for d, p in zip(made, [0, 3, 1, 2], strict=True))
    # a guessed dts equal to pts on a reordered frame (what FFmpeg's RTSP demuxer can give)
    made = decode_timestamps([0, 3, 1, 2], [None, 3, 1, 2])
    assert all(b > a for a, b in itertools.pairwise(made)) and made[1] <= 3
    # broken stream with equal pts: still strictly increasing for the muxer
    made = decode_timestamps([0, 1, 1, 2], [None] * 4)
    assert all(b > a for a, b in itertools.pairwise(made))


@pytest.mark.parametrize("source", ["annexb_ts", "hevc_ts"])
def test_b_frames_without_dts_remux_like_rtsp(
    source: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """B-frame streams over RTSP come without decode timestamps (RTP carries pts only); the
    clip must still mux (the MP4 muxer refuses dts that do not increase) and decode fully."""
    path: Path = request.getfixturevalue(source)
    params, given = demuxed(path)
    pkts = [dataclasses.replace(p, dts=None) for p in given]  # RTP: no decode timestamps
    reordered = [b.pts < a.pts for a, b in itertools.pairwise(pkts) if a.pts and b.pts]
    assert any(reordered)  # B-frames: pts not in decode order
    start = next(i for i, p in enumerate(pkts) if p.is_keyframe and p.pts_s >= 2.0)
    span = pkts[start : start + 40]
    info = remux_clip(params, span, tmp_path / "clip.mp4")
    _, _, nframes = probe(tmp_path / "clip.mp4")
    assert len(span) - 2 <= nframes <= len(span) and info.packets == len(span)
    ffprobe_ok(tmp_path / "clip.mp4")
