"""Clip remuxing: generated H.264 (keyframe every N frames, B-frames) → MP4 span, no re-encode."""

from __future__ import annotations

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
    clip_from_file,
    length_prefixed_to_annexb,
    parse_avcc,
    remux_clip,
    stream_params,
)

FPS = 25
GOP = 12
FRAMES = 150  # 6 s


def encode(path: Path, fmt: str) -> None:
    """Moving bar, libx264, a keyframe exactly every GOP frames, 2 B-frames."""
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.codec_context.gop_size = GOP
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


def test_ring_annexb_remux_like_rtsp(annexb_ts: Path, tmp_path: Path) -> None:
    """Annex-B packets (as from RTSP) through the ring, then remuxed."""
    ring = PacketRing(max_seconds=3.0, max_bytes=10**7)
    with av.open(str(annexb_ts)) as c:
        s = c.streams.video[0]
        ring.set_stream_params(stream_params(s))
        assert s.time_base is not None
        tb = Fraction(s.time_base)
        origin = int(s.start_time or 0)
        for p in c.demux(s):
            if p.size == 0 or p.pts is None:
                continue
            ring.push(
                EncodedPacket(
                    bytes(p),
                    p.pts,
                    p.dts,
                    p.duration,
                    tb,
                    bool(p.is_keyframe),
                    float((p.pts - origin) * tb),
                )
            )
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
