"""Decoding only what sampling keeps: ``FileSource(skip_unsampled=True)`` lets the decoder
discard non-reference frames that sampling is certain to drop. The frames it still yields must
be the very frames full decoding yields (seq, pts, pixels), and the skipped frames are counted
as sampling drops."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from sharpeyes.pipeline.types import Frame
from sharpeyes.streams.factory import LiveFileSource
from sharpeyes.streams.file_source import FileSource
from sharpeyes.streams.health import DropReason
from sharpeyes.streams.sampling import Sampler

# clips with non-reference B-frames (the others have none: nothing to skip, still identical)
B_FRAME_CLIPS = (
    "highway_1280x720.mp4",
    "urban_buses_596x336.mp4",
    "plates_closeup_beijing_640x360.mp4",
)


def write_b_frame_clip(path: Path, frames: int = 96, fps: int = 24) -> Path:
    """A small H.264 clip whose B-frames are all non-reference (no B-pyramid)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 192, 112, "yuv420p"
        stream.options = {"preset": "fast", "g": "48", "x264-params": "bframes=3:b-pyramid=none"}
        rng = np.random.default_rng(7)
        noise = rng.integers(0, 40, (112, 192, 3), dtype=np.uint8)
        for i in range(frames):
            img = noise.copy()
            img[:, (i * 5) % 180 : (i * 5) % 180 + 12] = 250
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
        out.mux(stream.encode(None))
    return path


def decode(clip: Path, fps: float | None, skip: bool) -> tuple[list[Frame], FileSource]:
    with FileSource(clip, analysis_fps=fps, decode_threads=1, skip_unsampled=skip) as src:
        return list(src.frames()), src


def assert_same_frames(full: list[Frame], skipped: list[Frame]) -> None:
    assert [f.seq for f in skipped] == [f.seq for f in full]
    assert [f.pts for f in skipped] == [f.pts for f in full]
    assert [f.keyframe for f in skipped] == [f.keyframe for f in full]
    for a, b in zip(full, skipped, strict=True):
        assert np.array_equal(a.image, b.image), f"frame seq {a.seq} differs"


# --- Sampler.will_reject ----------------------------------------------------------------------


def test_will_reject_nothing_before_the_first_frame_or_without_a_rate() -> None:
    assert not Sampler(5.0).will_reject(0.1)
    every = Sampler(None)
    assert every.accept(0.0)
    assert not every.will_reject(0.04)


def test_will_reject_only_between_the_last_frame_and_the_next_instant() -> None:
    s = Sampler(5.0)  # period 0.2 s
    assert s.accept(0.0)
    assert s.will_reject(0.1)
    assert s.will_reject(0.19)
    assert not s.will_reject(0.2)  # the next instant: would be taken
    assert not s.will_reject(0.0)  # not after the last frame seen
    assert not s.accept(0.1)
    assert not s.will_reject(0.05)  # before the last frame seen: would restart the schedule
    assert s.will_reject(0.15)


def test_what_will_reject_promises_accept_keeps() -> None:
    """Every pts it rejects in advance is rejected when frames then arrive in pts order."""
    s = Sampler(5.0)
    pts = [i / 30 for i in range(300)]
    promised: set[float] = set()
    for i, p in enumerate(pts):
        promised |= {q for q in pts[i + 1 : i + 4] if s.will_reject(q)}
        taken = s.accept(p)
        assert not (taken and p in promised), p
    assert len(promised) > 150


# --- FileSource -------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("fps", [2.0, 5.0, 10.0])
def test_generated_b_frames_skipped_and_frames_identical(tmp_path: Path, fps: float) -> None:
    clip = write_b_frame_clip(tmp_path / "b.mp4")
    full, full_src = decode(clip, fps, skip=False)
    part, part_src = decode(clip, fps, skip=True)
    assert_same_frames(full, part)
    assert full_src.frames_skipped == 0 and full_src.frames_decoded == 96
    assert part_src.frames_skipped > 0
    assert part_src.frames_decoded + part_src.frames_skipped == 96
    assert part_src.frames_yielded == len(full)


@pytest.mark.integration
def test_no_skipping_without_an_analysis_rate(tmp_path: Path) -> None:
    clip = write_b_frame_clip(tmp_path / "b.mp4", frames=48)
    frames, src = decode(clip, None, skip=True)
    assert src.frames_skipped == 0 and src.frames_decoded == 48
    assert [f.seq for f in frames] == list(range(48))


@pytest.mark.integration
@pytest.mark.parametrize("name", B_FRAME_CLIPS)
def test_sample_clips_sampled_frames_bit_identical(sample_videos: Path, name: str) -> None:
    clip = sample_videos / name
    full, full_src = decode(clip, 5.0, skip=False)
    part, part_src = decode(clip, 5.0, skip=True)
    assert_same_frames(full, part)
    assert part_src.frames_skipped > 0.15 * full_src.frames_decoded
    assert part_src.frames_decoded + part_src.frames_skipped == full_src.frames_decoded


@pytest.mark.integration
def test_live_source_counts_skipped_frames_as_sampling_drops(tmp_path: Path) -> None:
    clip = write_b_frame_clip(tmp_path / "b.mp4", frames=48)
    inner = FileSource(clip, analysis_fps=4.0, decode_threads=1)
    live = LiveFileSource(inner, queue_size=64)
    frames = list(live.frames())
    live.close()
    assert inner.frames_skipped > 0
    counts = live.drop_counts()
    assert counts[str(DropReason.SAMPLING)] == 48 - len(frames)
    assert counts[str(DropReason.BACKLOG)] == 0
