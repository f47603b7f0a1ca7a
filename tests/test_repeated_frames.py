"""Repeated pictures (pipeline/repeats.py): an encoder's or recorder's repeated frame is not
analysed — it would tell the tracker everything stopped — while the signal heads are still read
on it; a clip whose frames are each repeated is charged as the clip itself."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest

from sharpeyes.pipeline.config import EventsConfig, TrackerConfig
from sharpeyes.pipeline.events import TrackEventBuilder
from sharpeyes.pipeline.protocols import SourceInfo
from sharpeyes.pipeline.repeats import RepeatedFrames
from sharpeyes.pipeline.runner import StreamRunner
from sharpeyes.pipeline.tracking.bytetrack import ByteTracker
from sharpeyes.pipeline.types import Frame, ImageBGR, LampColor, SignalState
from tests._hanoi_runs import HANOI, analyse, clean_span, copy_span
from tests.conftest import need
from tests.test_supervisor import ListSink, NoDetections


def frame(image: ImageBGR, seq: int, pts: float) -> Frame:
    return Frame("cam", seq, pts, 1_700_000_000_000 + round(pts * 1000), image)


def scene(x: int) -> ImageBGR:
    """A grey road with a dark car whose left edge is at ``x``."""
    img = np.full((240, 320, 3), 110, np.uint8)
    img[100:140, x : x + 40] = (30, 30, 160)
    return img


def test_a_repeat_is_told_from_motion_and_from_compression_noise() -> None:
    rep = RepeatedFrames()
    first = frame(scene(50), 0, 0.0)
    assert not rep.repeats_last(first)  # nothing analysed yet
    rep.analysed(first)
    assert rep.repeats_last(frame(scene(50), 1, 0.04))
    noisy = scene(50)
    noisy[5, 5:30] = 200  # 25 pixels of compression noise: 0.03 % of 320×240
    assert rep.repeats_last(frame(noisy, 2, 0.08))
    assert not rep.repeats_last(frame(scene(52), 3, 0.12))  # the car moved 2 px
    assert rep.repeats == 2
    # slow motion adds up: compared with the last analysed frame, not the previous one
    rep.analysed(frame(scene(52), 3, 0.12))
    assert rep.repeats_last(frame(scene(52), 4, 0.16))
    assert not rep.repeats_last(frame(scene(53), 5, 0.20))


def test_a_static_picture_is_still_analysed_once_a_second_and_after_a_clock_jump() -> None:
    rep = RepeatedFrames(max_repeat_s=1.0)
    rep.analysed(frame(scene(50), 0, 10.0))
    assert rep.repeats_last(frame(scene(50), 1, 10.96))
    assert not rep.repeats_last(frame(scene(50), 2, 11.0))  # due
    assert not rep.repeats_last(frame(scene(50), 3, 3.0))  # pts went back (a new recording)
    other = np.full((120, 160, 3), 110, np.uint8)
    assert not rep.repeats_last(frame(other, 4, 10.5))  # another picture size


def test_frames_decoded_on_the_gpu_are_not_compared() -> None:
    rep = RepeatedFrames()
    rep.analysed(frame(scene(50), 0, 0.0))
    gpu = Frame("cam", 1, 0.04, 0, scene(50), device_image=object())
    assert not rep.repeats_last(gpu)


class _Source:
    """Frames of a car moving 4 px per picture, each picture repeated ``times`` times."""

    def __init__(self, pictures: int, times: int) -> None:
        self.pictures, self.times = pictures, times
        self.info = SourceInfo("cam", "test://", 320, 240, 25.0, "raw")

    def frames(self) -> Iterator[Frame]:
        seq = 0
        for i in range(self.pictures):
            for _ in range(self.times):
                yield frame(scene(20 + 4 * i), seq, seq / 25)
                seq += 1

    def close(self) -> None:
        pass


class _Board:
    """Counts the pictures the signal heads were read on; red from the 10th on."""

    def __init__(self) -> None:
        self.read: list[int] = []

    def update(self, frame: Frame) -> Mapping[str, SignalState]:
        self.read.append(frame.seq)
        color = LampColor.RED if frame.seq >= 10 else LampColor.GREEN
        return {"g": SignalState("g", color, 1.0, 0.0, frame.pts)}

    def problems(self) -> Mapping[str, str]:
        return {}

    def continue_from(self, earlier: object) -> None:
        pass


@pytest.mark.parametrize("skip", [True, False])
def test_the_runner_does_not_analyse_repeats_but_reads_the_signals_on_them(skip: bool) -> None:
    source, board = _Source(pictures=10, times=3), _Board()
    analysed: list[int] = []
    runner = StreamRunner(
        source=source,
        detector=NoDetections(),
        tracker=ByteTracker(TrackerConfig()),
        events=TrackEventBuilder("cam", EventsConfig(), class_names=["car"], class_codes={}),
        sinks=[ListSink()],
        signal_board=board,
        observer=lambda f, *_: analysed.append(f.seq),
        prefetch_depth=0,
        repeats=RepeatedFrames() if skip else None,
    )
    summary = runner.run()
    assert board.read == list(range(30))  # every picture's lamps are read
    if skip:
        assert analysed == list(range(0, 30, 3))  # the first of each picture only
        assert (summary.frames_analysed, summary.frames_repeated) == (10, 20)
        assert summary.frames_skipped == 0  # repeats are not counted as dropped frames
        assert summary.frames_decoded_span == 30  # the trailing repeats too
    else:
        assert analysed == list(range(30)) and summary.frames_repeated == 0


@pytest.mark.integration
def test_a_clip_with_every_frame_repeated_is_charged_as_the_clip(tmp_path: Path) -> None:
    """Frames 90–230 of hanoi_b (6 fps, runners hb01–hb07) as recorded, and converted to 24 fps
    by repeating each frame four times (as an NVR re-encoding a slower source does): the same
    runners, each crossing within one analysed frame (1/6 s) at the same place, and vehicle
    passes within 10 %. Analysed, the repeats broke tracks (the whole clip so converted gave
    276 vehicle passes instead of 156, one runner missed and one charged falsely)."""
    need(HANOI.is_file(), f"sample video {HANOI} not found")
    need(shutil.which("ffmpeg") is not None, "ffmpeg not found")
    copy_span(HANOI, tmp_path / "x4.mp4", "fps=24.08")
    runs = {"orig": clean_span(), "x4": analyse(tmp_path / "x4.mp4", tmp_path / "x4")}
    (orig, kinds), (x4, kinds4) = runs["orig"], runs["x4"]
    assert len(orig) >= 6 and len(x4) == len(orig), (orig, x4)
    for (t0, x0), (t1, x1) in zip(orig, x4, strict=True):
        assert abs(t1 - t0) <= 1 / 6 + 1e-3 and abs(x1 - x0) <= 25, (orig, x4)
    passes, passes4 = kinds["vehicle_pass"], kinds4["vehicle_pass"]
    assert abs(passes4 - passes) <= 0.1 * passes, (kinds, kinds4)


def test_health_and_prometheus_count_the_repeats() -> None:
    """An engineer reading a camera's analysed fps sees why it is below the stream's rate."""
    from sharpeyes.api.node.health import CameraEntry, camera_health
    from sharpeyes.api.node.prom import build_registry, render
    from sharpeyes.pipeline.config import CameraConfig
    from sharpeyes.pipeline.supervisor import WorkerStatus
    from tests.test_prom_events import FakeRuntime

    runner = StreamRunner(
        source=_Source(pictures=4, times=3),
        detector=NoDetections(),
        tracker=ByteTracker(TrackerConfig()),
        events=TrackEventBuilder("cam", EventsConfig(), class_names=["car"], class_codes={}),
        sinks=[ListSink()],
        prefetch_depth=0,
        repeats=RepeatedFrames(),
    )
    runner.run()
    entry = CameraEntry(CameraConfig.model_validate({"id": "cam", "url": "x.mp4"}), runner=runner)
    health = camera_health(entry, WorkerStatus("cam"), failed_after=3)
    assert health.frames_repeated == 8 and health.to_dict()["frames_repeated"] == 8

    class Runtime(FakeRuntime):
        def health(self) -> dict[str, object]:
            return {"cam": health}

    text = render(build_registry(Runtime({}))).decode()  # type: ignore[arg-type]
    assert 'sharpeyes_stream_frames_repeated_total{camera="cam"} 8.0' in text


def test_the_annotated_video_keeps_real_time_when_repeats_are_not_written(tmp_path: Path) -> None:
    """``analyze``'s annotated video gets the analysed frames only: placed by their time, a
    picture whose repeats were not analysed stays on screen for them — the video lasts as long
    as the clip instead of running twice as fast."""
    import av

    from sharpeyes.streams.video_writer import Mp4Writer

    path = tmp_path / "a.mp4"
    with Mp4Writer(path, 30.0) as w:
        for i in range(0, 60, 2):  # every other frame of 2 s at 30 fps
            w.write(scene(20 + i), at_s=10.0 + i / 30)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert s.time_base is not None
        times = [float(f.pts * s.time_base) for f in c.decode(s) if f.pts is not None]
    assert len(times) == 30
    assert times[0] == pytest.approx(0.0) and times[-1] == pytest.approx(58 / 30, abs=0.01)
