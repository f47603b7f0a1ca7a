"""A bare elementary stream (a DVR's or NVR's ``.264`` / ``.h265`` export, a camera tool's
recording): no container, so no packet carries a timestamp, and FFmpeg's raw demuxer reports its
own default rate (25) as the stream's average rate. The camera's rate is in the H.264 VUI.

Measured: hanoi_b (6 fps) copied to a ``.264`` (``ffmpeg -c:v copy -bsf:v h264_mp4toannexb -f
h264``) was analysed as 25 fps — every time 4× too early, 0 of 15 runners matched, and no
evidence clip could be cut (every packet at time 0). Now the codec's rate times the frames and
the timeline places each packet a frame period after the one before: 15/15, 0 false, clips cut
(``docs/RED_LIGHT_RESULTS.md``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from sharpeyes.streams.decode import stream_rate
from sharpeyes.streams.file_source import FileSource
from sharpeyes.streams.gpu_decode import DecoderConfig, GpuDecodeSource
from sharpeyes.streams.remux import clip_from_file, remux_clip
from tests._hanoi_runs import HANOI, analyse, clean_span, copy_span, same_runners
from tests._rings import filled_ring
from tests.conftest import need

FPS, N, GOP = 6, 48, 12


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight seconds at 6 fps written as a bare H.264 stream (VUI timing, no container)."""
    path = tmp_path_factory.mktemp("raw") / "dvr.264"
    with av.open(str(path), "w", format="h264") as out:
        s = out.add_stream("libx264", rate=FPS)
        assert isinstance(s, av.VideoStream)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        s.codec_context.options = {"preset": "ultrafast", "g": str(GOP)}
        for i in range(N):
            img = np.full((96, 160, 3), 30, np.uint8)
            img[:, 3 * i : 3 * i + 10] = 255
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def test_the_camera_s_rate_times_the_frames(raw: Path) -> None:
    with av.open(str(raw)) as c:
        stream = c.streams.video[0]
        assert float(stream.average_rate or 0) == 25  # the demuxer's default, not the camera's
        assert stream_rate(stream) == FPS
    for source in (FileSource(raw, "dvr"), GpuDecodeSource(raw, "dvr", decoder=DecoderConfig())):
        try:
            assert source.info.fps == FPS
            frames = list(source.frames())
        finally:
            source.close()
        assert len(frames) == N
        steps = np.diff([f.pts for f in frames])
        assert np.allclose(steps, 1 / FPS), steps[:5]


def test_clips_are_cut_from_the_ring_and_from_the_file(raw: Path, tmp_path: Path) -> None:
    """Every packet of a bare stream used to be at time 0: no span could be cut."""
    ring = filled_ring(raw, "dvr")
    assert ring.params is not None
    from_ring = remux_clip(ring.params, ring.span(2.5, 5.0), tmp_path / "ring.mp4")
    from_file = clip_from_file(raw, 2.5, 5.0, tmp_path / "file.mp4")
    for info in (from_ring, from_file):
        assert info.start_pts_s == pytest.approx(2.0)  # the keyframe before 2.5 s (GOP 2 s)
        assert info.end_pts_s >= 5.0
        with av.open(str(info.path)) as c:
            stream = c.streams.video[0]
            assert stream.average_rate == FPS
            assert sum(1 for _ in c.decode(stream)) == info.packets


@pytest.mark.integration
def test_a_dvr_export_charges_the_runners_of_the_recording(tmp_path: Path) -> None:
    """Frames 90–230 of hanoi_b as a bare ``.264``: the runners the recording charges, at the
    same times."""
    need(HANOI.is_file(), f"{HANOI} not found")
    mp4 = tmp_path / "span.mp4"
    copy_span(HANOI, mp4, "null")
    bare = tmp_path / "span.264"
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(mp4), "-c:v", "copy"]
    subprocess.run([*cmd, "-bsf:v", "h264_mp4toannexb", "-f", "h264", str(bare)], check=True)
    reference, _ = clean_span()
    charges, kinds = analyse(bare, tmp_path / "out")
    assert len(charges) == len(reference) and same_runners(charges, reference), charges
    clips = list((tmp_path / "out" / "evidence").rglob("clip.mp4"))
    assert len(clips) == kinds["red_light_violation"] == len(reference)
