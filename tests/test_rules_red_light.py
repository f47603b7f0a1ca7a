"""Targeted unit tests of the red-light and pedestrian rules with tiny builders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from sharpeyes.pipeline.protocols import Rule
from sharpeyes.pipeline.rules import PedestrianRedLightRule, RedLightRule, build_rules
from sharpeyes.pipeline.types import Event, Frame, LampColor, ObjectKind, SignalState, Tracks
from tests.scenarios import scene_calibration

W, H = 640, 360
BLANK = np.zeros((1, 1, 3), np.uint8)


def frame(i: int, fps: float = 10.0) -> Frame:
    return Frame("cam", i, i / fps, 1_700_000_000_000 + int(i * 1000 / fps), BLANK)


def tracks(*rows: tuple[int, float, float, ObjectKind]) -> Tracks:
    """Rows of (track id, anchor x rel, anchor y rel, kind); 40x40 px boxes."""
    xyxy = [[x * W - 20, y * H - 40, x * W + 20, y * H] for _, x, y, _ in rows]
    n = len(rows)
    return Tracks(
        xyxy=np.array(xyxy, np.float32).reshape(-1, 4),
        confidence=np.full(n, 0.9, np.float32),
        class_id=np.array([2 if k is ObjectKind.MOTOR_VEHICLE else 0 for *_, k in rows], np.int64),
        kind=np.array([int(k) for *_, k in rows], np.int8),
        track_id=np.array([r[0] for r in rows], np.int64),
        detected=np.ones(n, np.bool_),
    )


def signals(
    color: LampColor, since: float, pts: float, ped: LampColor = LampColor.GREEN
) -> dict[str, SignalState]:
    return {
        "main": SignalState("main", color, 1.0, since, pts),
        "ped": SignalState("ped", ped, 1.0, 0.0, pts),
    }


def run(
    rule: Rule,
    ys: Sequence[float | None],
    color: LampColor = LampColor.RED,
    x: float = 0.5,
    kind: ObjectKind = ObjectKind.MOTOR_VEHICLE,
    extra_frames: int = 0,
) -> list[Event]:
    events: list[Event] = []
    for i, y in enumerate([*ys, *([None] * extra_frames)]):
        f = frame(i)
        t = tracks((7, x, y, kind)) if y is not None else Tracks.empty()
        events += rule.update(f, t, signals(color, 0.0, f.pts))
    return events


THROUGH = [0.9, 0.85, 0.8, 0.75, 0.71, 0.68, 0.64, 0.6, 0.55, 0.5, 0.45, 0.4]


def test_rules_satisfy_protocol_and_factory() -> None:
    rules = build_rules("cam", scene_calibration(), (W, H))
    assert [type(r) for r in rules] == [RedLightRule, PedestrianRedLightRule]
    assert all(isinstance(r, Rule) for r in rules)
    assert build_rules("cam", scene_calibration(crosswalks=[]), (W, H))[0].__class__ is RedLightRule


def test_straight_through_on_red_is_one_violation() -> None:
    rule = RedLightRule("cam", scene_calibration(), (W, H))
    events = run(rule, THROUGH)
    assert len(events) == 1
    v = events[0].violation
    assert v is not None and v.lane_no == 2 and v.signal_color is LampColor.RED
    # stop line y = 0.70 between 0.71 (t=0.4) and 0.68 (t=0.5): t = 0.4 + 0.1/3
    assert abs(v.crossed_stop_line_pts - (0.4 + 0.1 / 3)) < 1e-3
    # image 1 before the line with visible movement to image 2 (not one frame apart), image 2
    # the first observation over the line
    assert v.evidence_pts[:2] == (0.2, 0.5)


def _tilted_crossing(class_id: int, tilt: float) -> float:
    """Crossing time of an 80 px wide box driven straight up lane 2 at 0.04 H per frame, over a
    stop line dropping ``tilt`` (relative) from its left end to its right end."""
    cal = scene_calibration()
    ap = cal.approaches[0]
    (x0, y0), (x1, y1) = ap.stop_line
    line = ((x0, y0 - tilt / 2), (x1, y1 + tilt / 2))
    cal = cal.model_copy(update={"approaches": [ap.model_copy(update={"stop_line": line})]})
    rule = RedLightRule("cam", cal, (W, H))
    events: list[Event] = []
    for i, y in enumerate([0.86 - 0.04 * k for k in range(12)]):
        f = frame(i)
        t = Tracks(
            xyxy=np.array([[0.5 * W - 40, y * H - 60, 0.5 * W + 40, y * H]], np.float32),
            confidence=np.full(1, 0.9, np.float32),
            class_id=np.array([class_id], np.int64),
            kind=np.array([int(ObjectKind.MOTOR_VEHICLE)], np.int8),
            track_id=np.array([7], np.int64),
            detected=np.ones(1, np.bool_),
        )
        events += rule.update(f, t, signals(LampColor.RED, 0.0, f.pts))
    events += rule.end_of_stream()
    assert len(events) == 1 and events[0].violation is not None
    return events[0].violation.crossed_stop_line_pts


def test_a_car_crosses_a_tilted_stop_line_with_the_middle_of_its_wheel_line() -> None:
    """On a rolled camera the stop line and a car's rear wheel line tilt alike: the box's bottom
    is the wheel line's lower end, half the box width times the slope below its middle. The car
    crosses when that middle does; a motorbike, which touches the road under its middle, when
    its box bottom does. Line at x = 0.5: y = 0.70 H either way; slope 0.1 H / 0.4 W."""
    slope = 0.1 * H / (0.4 * W)
    speed = 0.04 * H * 10.0  # px per second
    level_car, level_bike = _tilted_crossing(2, 0.0), _tilted_crossing(3, 0.0)
    assert level_car == pytest.approx(level_bike, abs=1e-6)
    car, bike = _tilted_crossing(2, 0.1), _tilted_crossing(3, 0.1)
    assert bike == pytest.approx(level_bike, abs=1e-3)
    assert level_car - car == pytest.approx(40.0 * slope / speed, abs=1e-3)


def test_green_amber_unknown_are_not_violations() -> None:
    for color in (LampColor.GREEN, LampColor.AMBER, LampColor.UNKNOWN, LampColor.OFF):
        assert run(RedLightRule("cam", scene_calibration(), (W, H)), THROUGH, color) == []


def test_other_kinds_are_ignored_unless_configured() -> None:
    cal = scene_calibration()
    assert run(RedLightRule("cam", cal, (W, H)), THROUGH, kind=ObjectKind.NON_MOTOR) == []
    cal2 = scene_calibration(vehicle_kinds=["motor_vehicle", "non_motor"])
    assert len(run(RedLightRule("cam", cal2, (W, H)), THROUGH, kind=ObjectKind.NON_MOTOR)) == 1


def test_jitter_back_over_the_line_does_not_count_and_stop_is_not_violation() -> None:
    ys = [0.75, 0.72, 0.695, 0.705, 0.69, 0.71, 0.695, 0.69, 0.69, 0.69, 0.69]
    rule = RedLightRule("cam", scene_calibration(), (W, H))
    assert run(rule, ys) == [] and rule.end_of_stream() == []


def test_track_vanishing_after_entry_is_decided_on_eviction() -> None:
    cal = scene_calibration(stale_track_s=1.0, min_displacement=0.3)  # never displaced enough
    rule = RedLightRule("cam", cal, (W, H))
    ys: list[float | None] = [0.9, 0.8, 0.72, 0.66, 0.58, 0.53]
    assert run(rule, ys) == []
    events: list[Event] = []
    for i in range(6, 20):
        events += rule.update(frame(i), Tracks.empty(), signals(LampColor.RED, 0.0, i / 10))
    assert len(events) == 1 and rule.live_tracks == 0


def test_end_of_stream_finalizes_and_clears() -> None:
    rule = RedLightRule("cam", scene_calibration(min_displacement=0.3), (W, H))
    assert run(rule, [0.9, 0.8, 0.72, 0.66, 0.58, 0.53]) == []
    assert len(rule.end_of_stream()) == 1
    assert rule.live_tracks == 0 and rule.end_of_stream() == []


def test_exemption_time_window_uses_frame_wall_time() -> None:
    # 1_700_000_000_000 ms = 06:13 Beijing time.
    cal = scene_calibration(
        exemptions=[
            {
                "movement": "straight",
                "lanes": ["l2"],
                "windows": [{"start": "06:00", "end": "07:00"}],
            }
        ]
    )
    assert run(RedLightRule("cam", cal, (W, H)), THROUGH) == []
    cal = scene_calibration(
        exemptions=[
            {
                "movement": "straight",
                "lanes": ["l2"],
                "windows": [{"start": "22:00", "end": "06:00"}],
            }
        ]
    )
    assert len(run(RedLightRule("cam", cal, (W, H)), THROUGH)) == 1


def test_first_seen_past_the_line_is_not_charged() -> None:
    assert run(RedLightRule("cam", scene_calibration(), (W, H)), THROUGH[5:]) == []


def test_pedestrian_first_seen_inside_or_on_green_not_charged() -> None:
    cal = scene_calibration()
    walk = [0.2, 0.28, 0.36, 0.44, 0.52, 0.6, 0.68]
    rule = PedestrianRedLightRule("cam", cal, (W, H))

    def go(xs: list[float], ped: LampColor) -> list[Event]:
        out: list[Event] = []
        for i, x in enumerate(xs):
            f = frame(i)
            out += rule.update(
                f,
                tracks((9, x, 0.64, ObjectKind.PERSON)),
                signals(LampColor.GREEN, 0.0, f.pts, ped),
            )
        rule.end_of_stream()
        return out

    assert go(walk[2:], LampColor.RED) == []
    assert go(walk, LampColor.GREEN) == []
    (ev,) = go(walk, LampColor.RED)
    assert ev.violation is not None and ev.violation.code == "8901"
    assert ev.violation.evidence_pts == (0.0, 0.1, 0.3)


def _lost_after(rule: RedLightRule, ys: Sequence[float]) -> list[Event]:
    """Run ``ys`` then 3 s of empty frames (the track is lost and evicted)."""
    events = run(rule, ys)
    for i in range(len(ys), len(ys) + 30):
        events += rule.update(frame(i), Tracks.empty(), signals(LampColor.RED, 0.0, i / 10))
    return events


# crosses the stop line (0.70) on red, still moving 0.03 per frame, lost at 0.59 — short of the
# entry line (0.56), as a motorbike lost behind a crossing vehicle in the crosswalk
LOST_IN_CROSSWALK = [0.9, 0.85, 0.8, 0.75, 0.71, 0.68, 0.65, 0.62, 0.59]


def test_track_lost_in_the_crosswalk_while_moving_on_is_charged_and_says_so() -> None:
    rule = RedLightRule("cam", scene_calibration(stale_track_s=1.0), (W, H))
    events = _lost_after(rule, LOST_IN_CROSSWALK)
    assert len(events) == 1, events
    notes = dict(events[0].extra)
    assert "lost before the entry line" in str(notes.get("evidence_note_3")), notes
    v = events[0].violation
    assert v is not None and v.evidence_pts[2] == 0.8  # image 3: its last sighting


def test_track_slowing_to_a_stop_in_the_crosswalk_then_lost_is_not_charged() -> None:
    ys = [0.9, 0.85, 0.8, 0.75, 0.71, 0.68, 0.655, 0.64, 0.632, 0.628, 0.627, 0.627]
    rule = RedLightRule("cam", scene_calibration(stale_track_s=1.0), (W, H))
    assert _lost_after(rule, ys) == []


def test_entry_extrapolation_can_be_turned_off() -> None:
    cal = scene_calibration(stale_track_s=1.0, entry_extrapolation_s=0.0)
    assert _lost_after(RedLightRule("cam", cal, (W, H)), LOST_IN_CROSSWALK) == []


def test_a_red_already_on_when_first_seen_is_a_lower_bound_and_says_so() -> None:
    """The camera's view of the signal began mid-red: the runner is charged, its red age is
    what was seen (a lower bound) and the record says so instead of stating it as the age."""
    rule = RedLightRule("cam", scene_calibration(), (W, H))
    events: list[Event] = []
    for i, y in enumerate(THROUGH):
        f = frame(i)
        st = SignalState("main", LampColor.RED, 1.0, 0.0, f.pts, onset_seen=False)
        ped = SignalState("ped", LampColor.GREEN, 1.0, 0.0, f.pts)
        events += rule.update(
            f, tracks((7, 0.5, y, ObjectKind.MOTOR_VEHICLE)), {"main": st, "ped": ped}
        )
    (ev,) = events
    assert ev.violation is not None and ev.violation.seconds_since_red == pytest.approx(
        0.433, abs=1e-3
    )
    assert ("red_onset", "not_seen") in ev.extra
    assert "at least 0.43s after red" in (ev.detail or "")
    seen = run(RedLightRule("cam", scene_calibration(), (W, H)), THROUGH)
    assert ("red_onset", "not_seen") not in seen[0].extra
    assert "at least" not in (seen[0].detail or "")


def _through_damage(after: LampColor, damaged: range) -> list[Event]:
    """A car crosses on frames 4–5 (t 0.43 s); the head reads red up to frame 2; ``damaged``
    frames are not read (corrupt pictures); from frame 8 the head reads ``after``."""
    from sharpeyes.pipeline.signal import LampReading, SignalSmoother

    rule = RedLightRule("cam", scene_calibration(), (W, H))
    smoother = SignalSmoother("main")
    events: list[Event] = []
    for i, y in enumerate([*THROUGH, *([None] * 5)]):
        f = frame(i)
        if i in damaged:
            st = smoother.blind(f.pts)
        else:
            st = smoother.update(LampReading(LampColor.RED if i < 8 else after, 1.0), f.pts)
        sig = {"main": st, "ped": SignalState("ped", LampColor.GREEN, 1.0, 0.0, f.pts)}
        t = tracks((7, 0.5, y, ObjectKind.MOTOR_VEHICLE)) if y is not None else Tracks.empty()
        events += rule.update(f, t, sig)
    return events + rule.end_of_stream()


def test_a_change_hidden_by_damaged_pictures_charges_no_one() -> None:
    """The pictures of frames 3–7 are damaged and the head reads green after them: the light
    may have turned green at any moment in them — before the car crossed (0.43 s) or after —
    so the crossing is not charged. Red before and after the damage is one red: charged, as
    it is when the pictures are whole and the green is seen to begin at frame 8."""
    assert _through_damage(LampColor.GREEN, range(3, 8)) == []
    (charged,) = _through_damage(LampColor.RED, range(3, 8))
    assert charged.violation is not None and charged.violation.signal_color is LampColor.RED
    assert len(_through_damage(LampColor.GREEN, range(0))) == 1
