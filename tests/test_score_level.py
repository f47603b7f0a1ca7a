"""A camera's own score level (pipeline/tracking/score_level.py): the tracker's thresholds come
down to what the detector scores the objects it is sure of — and only then."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sharpeyes.pipeline.config import CameraConfig, TrackerConfig
from sharpeyes.pipeline.tracking import ByteTracker
from sharpeyes.pipeline.tracking.score_level import (
    FLOOR_HIGH,
    FLOOR_NEW,
    MIN_TRACKS,
    PICTURES,
    ScoreLevel,
)
from sharpeyes.pipeline.types import Detections, ObjectKind, Tracks
from tests.conftest import need

MV, PERSON = ObjectKind.MOTOR_VEHICLE, ObjectKind.PERSON


def _see(level: ScoreLevel, tid: int, score: float, peak: float, kind: ObjectKind = MV) -> None:
    level.observe(
        np.array([tid], np.int64),
        np.array([int(kind)], np.int8),
        np.array([score], np.float32),
        np.array([peak], np.float32),
    )


def _feed(level: ScoreLevel, tid: int, scores: list[float], kind: ObjectKind = MV) -> None:
    """A track detected with ``scores`` (its peak so far: the highest up to each), ended."""
    for i, s in enumerate(scores):
        _see(level, tid, s, max(scores[: i + 1]), kind)
    level.finish([tid])


def test_a_detector_sure_of_the_cameras_objects_keeps_the_configured_thresholds() -> None:
    level = ScoreLevel(0.6, 0.5)
    for tid in range(10):
        _feed(level, tid, [0.7, 0.85, 0.9, 0.8])
    assert level.level(MV) == pytest.approx(0.825)
    assert level.thresholds(MV) == (0.5, 0.6)


def test_objects_scored_low_lower_their_kinds_thresholds_only() -> None:
    """Three sure cars whose pictures score 0.45 typically: cars open at 0.45 and continue at
    5/6 of it; persons, never seen, keep the configured ones."""
    level = ScoreLevel(0.6, 0.5)
    for tid in range(MIN_TRACKS - 1):
        _feed(level, tid, [0.4, 0.45, 0.62, 0.45, 0.5])
        assert level.thresholds(MV) == (0.5, 0.6)  # too few yet
    _feed(level, 99, [0.4, 0.45, 0.62, 0.45, 0.5])
    high, new = level.thresholds(MV)
    assert new == pytest.approx(0.45) and high == pytest.approx(0.375)
    assert level.thresholds(PERSON) == (0.5, 0.6)


def test_only_sure_tracks_long_enough_count() -> None:
    """A track never scored new_track_threshold (let in by a lowered one) and a track seen in
    fewer than PICTURES pictures say nothing: a lowered threshold does not feed on itself."""
    level = ScoreLevel(0.6, 0.5)
    for tid in range(20):
        _feed(level, tid, [0.36, 0.4, 0.38, 0.37])  # never sure
        _feed(level, 100 + tid, [0.3, 0.61][: PICTURES - 1])  # sure, too short
    assert level.level(MV) is None
    assert level.thresholds(MV) == (0.5, 0.6)


def test_the_floor_and_live_tracks() -> None:
    level = ScoreLevel(0.6, 0.5)
    for tid in range(MIN_TRACKS):  # live, not finished: they count once seen PICTURES times
        for s in [0.2, 0.25, 0.2]:
            _see(level, tid, s, 0.61)  # opened at 0.61, in a picture before its confirmation
    assert level.thresholds(MV) == (FLOOR_HIGH, FLOOR_NEW)


def test_the_level_follows_a_changed_view() -> None:
    level = ScoreLevel(0.6, 0.5)
    for tid in range(30):
        _feed(level, tid, [0.45, 0.62, 0.45])
    assert level.thresholds(MV)[1] == pytest.approx(0.45)
    for tid in range(100, 130):  # the view changed: the detector is sure of them now
        _feed(level, tid, [0.8, 0.9, 0.85])
    assert level.thresholds(MV) == (0.5, 0.6)


def _car(x: float, score: float) -> Detections:
    return Detections.create(
        np.array([[x, 100, x + 200, 300]], np.float32), [score], [2], [int(MV)]
    )


def _pass(tracker: ByteTracker, t0: float, scores: list[float]) -> Iterator[Tracks]:
    """One car crossing the picture at 5 pictures a second, then 2 s of nothing."""
    for i, s in enumerate(scores):
        yield tracker.update(_car(20.0 + 30 * i, s), t0 + i * 0.2)
    for j in range(10):
        yield tracker.update(Detections.empty(), t0 + (len(scores) + j) * 0.2)


def test_a_tracker_learns_its_cameras_level_and_then_tracks_the_car_it_missed() -> None:
    """Cars scored 0.45–0.55 with a rare 0.62: the first ones are tracked from their 0.62 on;
    once three are known the tracks open at their level (0.5), and a car never scored 0.6 —
    lost by the configured thresholds — is tracked. Fixed thresholds never track it."""
    sure = [0.45, 0.5, 0.62, 0.5, 0.55, 0.5, 0.45]
    never = [0.45, 0.52, 0.5, 0.55, 0.5, 0.45]
    for cfg, found in ((TrackerConfig(), True), (TrackerConfig(thresholds="fixed"), False)):
        tracker = ByteTracker(cfg)
        t = 0.0
        for _ in range(3):
            assert [o for o in _pass(tracker, t, sure) if len(o)]
            t += 10.0
        assert tracker.thresholds(MV)[1] == pytest.approx(0.5 if found else 0.6)
        seen = [o for o in _pass(tracker, t, never) if len(o)]
        assert bool(seen) is found
        assert tracker.lowered() == ({"motor_vehicle": pytest.approx(0.5)} if found else {})


def test_a_config_that_sets_its_thresholds_keeps_them() -> None:
    assert TrackerConfig().self_tuned()
    assert not TrackerConfig(thresholds="fixed").self_tuned()
    assert not TrackerConfig(new_track_threshold=0.35).self_tuned()
    assert not TrackerConfig(high_threshold=0.3).self_tuned()
    assert TrackerConfig(new_track_threshold=0.6).self_tuned()  # the default is no choice
    dumped = CameraConfig(id="c", url="x").model_dump()  # a config read back sets every field
    assert CameraConfig.model_validate(dumped).tracker.self_tuned()
    with pytest.raises(ValueError, match="thresholds"):
        TrackerConfig.model_validate({"thresholds": "sometimes"})


def test_a_checkpoint_camera_without_settings_reads_its_plates_at_five_pictures_a_second(
    sample_videos: Path, tmp_path: Path
) -> None:
    """plates_closeup_beijing at a live camera's 5 pictures a second, the camera with nothing
    but structuring on (no detector or tracker section): the near field (its probe pictures
    seen both ways) and the camera's own score level read 7 of the 8 plates (5 before), none
    false; the cars open at their level, below the configured 0.6."""
    from benchmarks.eval_plates import DEFAULT_LABELS, evaluate, load_events, load_labels
    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
    from sharpeyes.api.commands.camera_check import PictureQuality

    video = sample_videos / "plates_closeup_beijing_640x360.mp4"
    need(video.is_file(), f"{video} not found")
    cam = CameraConfig.model_validate(
        {"id": "kakou", "url": str(video), "analysis_fps": 5.0, "structuring": {"enabled": True}}
    )
    out = tmp_path / "out"
    result = analyze_video(AnalyzeOptions(video=video, out=out, progress=False, camera=cam))
    lowered = result.summary.track_open_scores
    assert set(lowered) == {"motor_vehicle"} and 0.4 <= lowered["motor_vehicle"] < 0.6
    quality = PictureQuality.of(result.summary)  # what camera-check tells the installer
    said = f"{lowered['motor_vehicle']:.2f}"
    assert f"the detector scores motor-vehicles low: their tracks open at {said}" in quality.line()
    assert f"机动车检测置信度偏低，跟踪起始阈值降至 {said}" in quality.line("zh")
    assert quality.as_dict()["track_open_scores"] == lowered
    fps, vehicles = load_labels(DEFAULT_LABELS)
    report = evaluate(vehicles, load_events(out / "events.jsonl", fps))
    assert report.plates_exact >= 7 and not report.false_plates, report
