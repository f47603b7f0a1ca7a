"""A new track's plate is also read on its own pictures from before the track opened
(``pipeline/structuring/earlier.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.structuring.earlier import EarlierPictures
from sharpeyes.pipeline.types import Box, Detections, Frame, ObjectKind, Tracks
from tests.conftest import need

CAR = int(ObjectKind.MOTOR_VEHICLE)


def _frame(pts: float) -> Frame:
    return Frame("cam", round(pts * 25), pts, round(pts * 1000), np.zeros((360, 640, 3), np.uint8))


def _dets(*boxes: tuple[float, float, float, float], score: float = 0.4) -> Detections:
    n = len(boxes)
    return Detections(
        xyxy=np.array(boxes, np.float32).reshape(n, 4),
        confidence=np.full(n, score, np.float32),
        class_id=np.full(n, 2, np.int64),
        kind=np.full(n, CAR, np.int8),
    )


def _tracks(*boxes: tuple[float, float, float, float]) -> Tracks:
    n = len(boxes)
    return Tracks(
        xyxy=np.array(boxes, np.float32).reshape(n, 4),
        confidence=np.full(n, 0.8, np.float32),
        class_id=np.full(n, 2, np.int64),
        kind=np.full(n, CAR, np.int8),
        track_id=np.arange(1, n + 1, dtype=np.int64),
        detected=np.ones(n, np.bool_),
    )


def _box(x1: float, y1: float, x2: float, y2: float) -> Box:
    return Box(x1, y1, x2, y2, 640, 360)


def test_a_new_track_is_followed_back_through_its_untracked_pictures() -> None:
    """A car approaching the camera, detected but untracked for four pictures, then tracked: its
    first tracked box leads back to all four, oldest first; a second car, tracked all along, is
    not part of any chain and its pictures alone are not kept."""
    memory = EarlierPictures(window_s=2.0, spacing_s=0.2)
    other = (500.0, 10.0, 630.0, 120.0)
    for k in range(4):  # the car grows and comes down 10 px a picture
        car = (100.0 - 5 * k, 50.0 + 10 * k, 300.0 + 5 * k, 250.0 + 10 * k)
        memory.add(_frame(k * 0.2), _dets(car, other), _tracks(other))
    memory.add(_frame(0.8), _dets(other), _tracks(other))  # nothing untracked: not kept
    assert len(memory) == 4
    views = memory.before(_box(80.0, 90.0, 320.0, 290.0), 1.0)
    assert [round(v.frame.pts, 1) for v in views] == [0.0, 0.2, 0.4, 0.6]
    assert all(v.box.x2 < 500 for v in views)  # never the other car
    assert views[-1].box.y1 == pytest.approx(80.0)
    # a track born somewhere else has no earlier pictures
    assert memory.before(_box(400.0, 200.0, 600.0, 350.0), 1.0) == []


def test_the_chain_stops_at_a_picture_without_the_vehicle() -> None:
    memory = EarlierPictures(window_s=2.0, spacing_s=0.2)
    car = (100.0, 50.0, 300.0, 250.0)
    memory.add(_frame(0.0), _dets(car), _tracks())
    memory.add(_frame(0.2), _dets((400.0, 10.0, 500.0, 100.0)), _tracks())  # elsewhere
    memory.add(_frame(0.4), _dets(car), _tracks())
    views = memory.before(_box(*car), 0.6)
    assert [round(v.frame.pts, 1) for v in views] == [0.4]


def test_pictures_are_kept_one_per_interval_within_the_window() -> None:
    memory = EarlierPictures(window_s=1.0, spacing_s=0.2)
    car = (100.0, 50.0, 300.0, 250.0)
    for k in range(50):  # 25 pictures a second for 2 s
        memory.add(_frame(k * 0.04), _dets(car), _tracks())
    assert 5 <= len(memory) <= 6
    views = memory.before(_box(*car), 2.0)
    assert views and 2.0 - views[0].frame.pts <= 1.0 + 1e-6
    gaps = np.diff([v.frame.pts for v in views])
    assert (gaps >= 0.2 - 1e-6).all()


def test_a_stream_that_starts_over_forgets_its_pictures() -> None:
    memory = EarlierPictures(window_s=2.0, spacing_s=0.2)
    car = (100.0, 50.0, 300.0, 250.0)
    memory.add(_frame(10.0), _dets(car), _tracks())
    memory.add(_frame(10.2), _dets(car), _tracks())
    memory.add(_frame(0.0), _dets(car), _tracks())  # the file looped
    assert len(memory) == 1
    assert memory.before(_box(*car), 0.2)[0].frame.pts == 0.0


def test_small_and_tracked_boxes_are_not_kept() -> None:
    memory = EarlierPictures(window_s=2.0, spacing_s=0.2, min_side_px=48)
    memory.add(_frame(0.0), _dets((10.0, 10.0, 40.0, 40.0)), _tracks())  # 30 px
    car = (100.0, 50.0, 300.0, 250.0)
    memory.add(_frame(0.2), _dets(car), _tracks((102.0, 52.0, 298.0, 252.0)))  # its track's
    assert len(memory) == 0


def test_the_checkpoint_reads_a_plate_whose_track_opened_as_it_left(
    sample_videos: Path, tmp_path: Path
) -> None:
    """plates_closeup_beijing frames 690–790 at a live camera's 5 analysed pictures a second:
    the detector scores 京J27373's front under the new-track threshold while its plate is in view
    (frames 707–755) and its track opens at frame 750. With its earlier pictures it is read; with
    ``earlier_s: 0`` it is one read, and no plate is stated."""
    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
    from tests.test_structuring_eval import _segment

    src = sample_videos / "plates_closeup_beijing_640x360.mp4"
    need(src.is_file(), f"{src} not found")
    seg = tmp_path / "seg.mp4"
    _segment(src, seg, 690, 790)
    plates: dict[float, list[str | None]] = {}
    for earlier_s in (2.0, 0.0):
        cam = CameraConfig.model_validate(
            {
                "id": "kakou",
                "url": str(seg),
                "near_field": "on",
                "analysis_fps": 5,
                # plate-first (pipeline/structuring/plate_first.py) would read it too
                "structuring": {"enabled": True, "earlier_s": earlier_s, "plate_first": "off"},
            }
        )
        out = tmp_path / str(earlier_s)
        result = analyze_video(AnalyzeOptions(video=seg, out=out, progress=False, camera=cam))
        assert result.wiring is not None and result.wiring.earlier_s == earlier_s
        events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        plates[earlier_s] = [(e.get("plate") or {}).get("text") for e in events]
    assert plates[2.0] == ["京J27373"]
    assert "京J27373" not in plates[0.0]
