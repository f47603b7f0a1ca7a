"""FileSource on real sample clips and on generated clips (corrupt, truncated, audio-only,
missing); the packet sink; real-time pacing."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import av
import numpy as np
import pytest

from sharpeyes.pipeline.errors import DecodeError, StreamError, StreamOpenError
from sharpeyes.pipeline.protocols import FrameSource
from sharpeyes.streams.decode import EncodedPacket
from sharpeyes.streams.file_source import FileSource

pytestmark = pytest.mark.integration


def write_clip(
    path: Path, *, frames: int = 60, fps: int = 30, size: tuple[int, int] = (160, 96)
) -> Path:
    """A small H.264 clip with a moving bar (container chosen by the suffix)."""
    w, h = size
    options = {"movflags": "faststart"} if path.suffix == ".mp4" else {}
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps)}
        for i in range(frames):
            img = np.full((h, w, 3), 40, np.uint8)
            img[:, (i * 3) % w : (i * 3) % w + 8] = 255
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
        out.mux(stream.encode(None))
    return path


def test_sample_clip_frames_pts_and_info(sample_videos: Path) -> None:
    clip = sample_videos / "highway_640x360.mp4"
    with FileSource(clip, "hw", start_wall_ms=1_000) as src:
        assert isinstance(src, FrameSource)
        assert (src.info.width, src.info.height, src.info.codec) == (640, 360, "h264")
        assert src.info.fps == pytest.approx(29.97, abs=0.01)
        frames = list(src.frames())
    assert len(frames) == 341 == src.frames_decoded
    assert [f.seq for f in frames] == list(range(341))
    pts = [f.pts for f in frames]
    assert pts[0] == 0.0 and all(b > a for a, b in itertools.pairwise(pts))
    assert pts[-1] == pytest.approx(340 * 1001 / 30000, abs=1e-3)
    assert frames[30].wall_time_ms == 1_000 + round(frames[30].pts * 1000)
    assert frames[0].image.shape == (360, 640, 3) and frames[0].image.dtype == np.uint8
    assert frames[0].keyframe


def test_default_wall_time_comes_from_creation_time(sample_videos: Path) -> None:
    with FileSource(sample_videos / "highway_640x360.mp4") as src:
        # creation_time 2020-06-09T10:46:46Z in the file's metadata
        assert src.start_wall_ms == 1_591_699_606_000


def test_sampling_5fps_from_30fps_gives_seq_gaps(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", frames=90, fps=30)
    with FileSource(clip, analysis_fps=5.0) as src:
        frames = list(src.frames())
        assert src.frames_decoded == 90
    assert [f.seq for f in frames] == list(range(0, 90, 6))
    span = frames[-1].pts - frames[0].pts
    assert len(frames) / (span + 0.2) == pytest.approx(5.0, abs=0.2)


def test_packet_sink_gets_every_video_packet(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", frames=45, fps=15)
    packets: list[EncodedPacket] = []
    with FileSource(clip, packet_sink=packets.append) as src:
        frames = list(src.frames())
        params = src.video_stream_params()
    assert len(packets) == 45 and packets[0].is_keyframe
    assert sum(p.is_keyframe for p in packets) == 3
    assert sorted(p.pts_s for p in packets) == pytest.approx([f.pts for f in frames])
    assert params.codec_name == "h264" and (params.width, params.height) == (160, 96)
    assert params.extradata


def test_realtime_pacing_roughly_honours_stream_time(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", frames=30, fps=30)  # 1 s of video
    with FileSource(clip, realtime=True) as src:
        t0 = time.monotonic()
        n = sum(1 for _ in src.frames())
        elapsed = time.monotonic() - t0
    assert n == 30
    assert 0.85 <= elapsed <= 2.5


def test_missing_and_non_video_files_raise_open_error(tmp_path: Path) -> None:
    with pytest.raises(StreamOpenError, match=r"missing\.mp4"):
        FileSource(tmp_path / "missing.mp4")
    audio = tmp_path / "tone.m4a"
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
        frame.rate = 8000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(StreamOpenError, match="no video stream") as err:
        FileSource(audio)
    assert isinstance(err.value, StreamError) and isinstance(err.value, OSError)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(StreamOpenError, match=r"garbage\.mp4"):
        FileSource(garbage)


def test_truncated_file_yields_what_it_can(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.ts", frames=90)
    data = clip.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with FileSource(cut) as src:
        frames = list(src.frames())
    assert 20 <= len(frames) < 90


def test_truncated_mp4_without_index_cannot_open(tmp_path: Path) -> None:
    clip = tmp_path / "plain.mp4"
    with av.open(str(clip), "w") as out:  # moov at the end: a cut file has no index
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(30):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8))))
        out.mux(stream.encode(None))
    data = clip.read_bytes()
    clip.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(StreamOpenError, match=r"plain\.mp4"):
        FileSource(clip)


def test_flipped_bytes_are_skipped_not_fatal(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.ts", frames=90)
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(7)
    for pos in rng.integers(len(data) // 4, len(data), 300):
        data[pos] ^= 0xFF
    bad = tmp_path / "flipped.ts"
    bad.write_bytes(bytes(data))
    with FileSource(bad) as src:
        frames = list(src.frames())
    assert len(frames) >= 20
    assert all(f.image.shape == (96, 160, 3) for f in frames)


def test_file_broken_before_first_frame_raises_decode_error(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", frames=30)  # faststart: the index comes first
    data = clip.read_bytes()
    cut = tmp_path / "headonly.mp4"
    cut.write_bytes(data[: data.find(b"mdat") + 200])  # index intact, samples gone
    with FileSource(cut) as src:
        assert src.info.frame_count == 30
        with pytest.raises(DecodeError, match=r"headonly\.mp4"):
            list(src.frames())


def test_a_file_cut_short_says_so_after_decoding(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", frames=90)  # faststart: the index declares 90 frames
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.5)])
    with FileSource(cut) as src:
        frames = list(src.frames())
        notes = src.ending_notes()
    assert 10 <= len(frames) < 80
    assert any(f"after {src.frames_decoded} of the 90 frames" in n for n in notes), notes
    assert "truncated or corrupt" in notes[0]
    with FileSource(clip) as whole:
        assert len(list(whole.frames())) == 90
        assert whole.ending_notes() == []
        assert whole.clock_origin == "opened"  # PyAV writes no creation_time tag
    with FileSource(clip, start_wall_ms=5) as given:
        assert given.clock_origin == "given"


def damaged_clip(tmp_path: Path) -> tuple[Path, Path, int]:
    """(clean clip, the same with bytes overwritten inside one P-frame of its second GOP, that
    frame's index): 90 frames at 30 fps, a keyframe every 30."""
    clip = write_clip(tmp_path / "c.mp4", frames=90, fps=30)
    with av.open(str(clip)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
        keys = [i for i, p in enumerate(packets) if p.is_keyframe]
        hit = next(i for i, p in enumerate(packets) if i > keys[1] and p.size > 60)
        pos, size = packets[hit].pos, int(packets[hit].size)
    assert pos is not None
    assert keys[:3] == [0, 30, 60] and hit < 60
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, size - 4 - size // 3, np.uint8).tobytes()
    data[pos + size // 3 : pos + size - 4] = noise
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    return clip, damaged, hit


def test_damaged_pictures_are_flagged_until_the_next_keyframe(tmp_path: Path) -> None:
    """Bytes overwritten inside one P-frame (a disk or transfer error in a recording): FFmpeg
    conceals the damage and flags that frame at most, but every frame after it up to the next
    keyframe is decoded from the damaged picture. The file source flags all of them ``corrupt``
    (as the RTSP source does after a loss) — and only them — and says so when it ends."""
    clip, damaged, hit = damaged_clip(tmp_path)
    with FileSource(damaged) as src:
        frames = list(src.frames())
        notes = src.ending_notes()
    flagged = [f.seq for f in frames if f.corrupt]
    assert flagged and flagged[0] >= hit and max(flagged) < 60, flagged  # within that GOP
    assert flagged == list(range(flagged[0], 60)), flagged  # to the keyframe, every one
    assert src.frames_damaged == len(flagged)
    assert any(f"{len(flagged)} frame(s) decoded from damaged data" in n for n in notes), notes
    with FileSource(clip) as whole:
        assert not any(f.corrupt for f in whole.frames()) and whole.frames_damaged == 0


def test_a_source_stopped_early_by_its_caller_is_not_called_truncated(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", frames=90)
    src = FileSource(clip)
    it = src.frames()
    next(it)
    src.close()
    list(it)
    assert src.ending_notes() == []


def test_a_file_paced_as_a_live_camera_starts_its_clock_at_its_first_frame(
    tmp_path: Path,
) -> None:
    """A camera built well before its first frame must not stamp its frames in the past: the
    wall clock of a real-time file with no given origin starts when the first frame comes out."""
    import time

    clip = write_clip(tmp_path / "c.mp4", frames=6)
    src = FileSource(clip, realtime=True)
    assert src.clock_origin == "first_frame"
    time.sleep(1.0)  # the camera waits (models loading, a busy node) before it is read
    before = time.time() * 1000
    first = next(iter(src.frames()))
    src.close()
    assert first.wall_time_ms >= before - 50  # not the opening time, a second earlier


def wholly_damaged_clip(tmp_path: Path) -> tuple[Path, Path]:
    """(clean clip, the same with noise written into the slice data of its one keyframe):
    30 frames at 30 fps, one GOP, so that every frame decodes from damaged data."""
    clip = tmp_path / "c.mp4"
    texture = np.random.default_rng(0).integers(0, 255, (96, 160, 3), dtype=np.uint8)
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "30"}
        for i in range(30):  # mostly slice data: the damage lands in the picture
            img = np.roll(texture, i * 2, axis=1)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
        out.mux(stream.encode(None))
    with av.open(str(clip)) as c:
        key = next(p for p in c.demux(c.streams.video[0]) if p.size)
        pos, size = key.pos, int(key.size)
    assert pos is not None and key.is_keyframe and size > 5_000
    data = bytearray(clip.read_bytes())
    data[pos + size // 2 : pos + size * 6 // 10] = (
        np.random.default_rng(3).integers(0, 256, size * 6 // 10 - size // 2, np.uint8).tobytes()
    )
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    return clip, broken


def test_a_file_whose_every_frame_is_damaged_is_refused(tmp_path: Path) -> None:
    """FFmpeg conceals its way to pictures from a keyframe with noise in it, every one of them
    from damaged data. That is no video to analyse (random bytes now and then probe as a stream
    the same way): the source fails with a clear error at the end instead of reporting an
    analysis of nothing."""
    clip, broken = wholly_damaged_clip(tmp_path)
    src = FileSource(broken)
    with src, pytest.raises(DecodeError, match="not one of its 30 decoded frame"):
        list(src.frames())
    assert src.frames_damaged == src.frames_decoded == 30
    with FileSource(clip) as whole:
        assert len(list(whole.frames())) == 30 and whole.frames_damaged == 0
