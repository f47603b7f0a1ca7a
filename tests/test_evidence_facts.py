"""Evidence states facts of its own frames: stages, signal per image, stop line, Chinese overlay.

Synthetic analysed frames on the hanoi_b calibration (640x480): the subject's box and the signal
state of every image come from that image's own :class:`AnalysedFrame`, so a light that turns
green between images 2 and 3 is shown green on image 3.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sharpeyes.pipeline.config import CameraConfig, load_camera_config
from sharpeyes.pipeline.evidence import images
from sharpeyes.pipeline.evidence.builder import EvidenceBuilder
from sharpeyes.pipeline.evidence.facts import StopLine, violation_time_ms
from sharpeyes.pipeline.rules.red_light import RedLightRule
from sharpeyes.pipeline.types import (
    AnalysedFrame,
    Box,
    Event,
    EventType,
    Frame,
    LampColor,
    ObjectKind,
    SignalState,
    Tracks,
    Violation,
)
from tests.conftest import REPO

CONFIG = REPO / "sample_videos" / "intersection_hanoi_b.yaml"
KEY = b"evidence-facts-test-key-0123456789"
WALL0 = 1_764_384_000_000  # 2025-11-29 02:40:00.000 UTC
TID = 42


def camera() -> CameraConfig:
    return load_camera_config(CONFIG)


def tracks_at(bottom_y: float, x: float = 260.0, tid: int = TID) -> Tracks:
    box = [x - 15.0, bottom_y - 50.0, x + 15.0, bottom_y]
    return Tracks(
        xyxy=np.array([box], np.float32),
        confidence=np.array([0.8], np.float32),
        class_id=np.array([3]),
        kind=np.array([int(ObjectKind.MOTOR_VEHICLE)], np.int8),
        track_id=np.array([tid]),
        detected=np.array([True]),
    )


def signal(color: LampColor, since: float, pts: float) -> dict[str, SignalState]:
    return {"main": SignalState("main", color, 0.95, since, pts)}


def frame(seq: int, pts: float) -> Frame:
    img = np.full((480, 640, 3), 110, np.uint8)
    img[::16] = 60
    return Frame("hanoi_b", seq, pts, WALL0 + round(pts * 1000), img)


def event(
    pts: tuple[float, float, float], crossed: float, extra: tuple[tuple[str, str], ...] = ()
) -> Event:
    v = Violation(
        code="1625",
        signal_group="main",
        signal_color=LampColor.RED,
        seconds_since_red=round(crossed - 0.5, 3),
        lane_no=2,
        movement="straight",
        approach="south",
        crossed_stop_line_pts=crossed,
        evidence_pts=pts,
    )
    return Event(
        event_id="f" * 32,
        type=EventType.RED_LIGHT_VIOLATION,
        stream_id="hanoi_b",
        first_seen_ms=WALL0 + 1000,
        last_seen_ms=WALL0 + 12_000,
        first_pts=1.0,
        last_pts=12.0,
        kind=ObjectKind.MOTOR_VEHICLE,
        track_id=TID,
        violation=v,
        extra=extra,
    )


def builder(tmp_path: Path) -> EvidenceBuilder:
    return EvidenceBuilder(tmp_path, camera=camera(), plate_reader=None, hmac_key=KEY)


def green_between_2_and_3() -> list[AnalysedFrame]:
    """Image 1 before the line on red, 2 on the line on red, 3 past the entry line on green."""
    return [
        AnalysedFrame(frame(60, 10.0), tracks_at(440.0), signal(LampColor.RED, 0.5, 10.0)),
        AnalysedFrame(frame(63, 10.5), tracks_at(388.0), signal(LampColor.RED, 0.5, 10.5)),
        AnalysedFrame(frame(70, 11.7), tracks_at(280.0), signal(LampColor.GREEN, 11.2, 11.7)),
    ]


def test_each_image_states_its_own_signal_time_box_and_side(tmp_path: Path) -> None:
    ev = event((10.0, 10.5, 11.7), crossed=10.45)
    rec = builder(tmp_path).build_record(ev, green_between_2_and_3())
    doc = json.loads(rec.record_json.read_text(encoding="utf-8"))
    im = doc["images"]
    assert [i["file"] for i in im] == ["1.jpg", "2.jpg", "3.jpg"]
    assert [i["stop_line_side"] for i in im] == ["before", "on", "after"]
    assert [i["past_entry_line"] for i in im] == [False, False, True]
    assert [i["signal"]["color"] for i in im] == ["red", "red", "green"]
    assert im[0]["signal"]["seconds_since_onset"] == pytest.approx(9.5)
    assert im[2]["signal"]["seconds_since_onset"] == pytest.approx(0.5)
    assert [i["time_ms"] for i in im] == [WALL0 + 10_000, WALL0 + 10_500, WALL0 + 11_700]
    assert im[2]["beijing_time"] == "2025-11-29 10:40:11.700"
    assert im[1]["subject_box"] == [245.0, 338.0, 275.0, 388.0]
    assert im[1]["subject_box_source"] == "track"
    # the violation time is the crossing, not first_seen
    assert doc["violation"]["time_ms"] == WALL0 + 10_450 == violation_time_ms(ev)
    # only the plate (no reader) and the clip (no source) are missing: the stages are right
    assert doc["incomplete"][0] == {
        "part": "plate",
        "reason": "plate unreadable in every evidence image",
    }
    assert [p["part"] for p in doc["incomplete"]] == ["plate", "clip"]
    assert doc["complete"] is False


def overlay_texts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The Chinese overlay text of every evidence image the builder draws from now on."""
    from sharpeyes.pipeline.evidence import builder as builder_mod
    from sharpeyes.pipeline.evidence import facts as facts_mod

    seen: list[str] = []
    real = facts_mod.overlay_lines

    def spy(*a: object, **kw: object) -> list[images.OverlayLine]:
        lines = real(*a, **kw)  # type: ignore[arg-type]
        seen.append(" ".join(ln.text(chinese=True) for ln in lines))
        return lines

    monkeypatch.setattr(builder_mod, "overlay_lines", spy)
    return seen


def test_overlay_of_image_3_says_green(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = overlay_texts(monkeypatch)
    builder(tmp_path).build_record(event((10.0, 10.5, 11.7), 10.45), green_between_2_and_3())
    assert "信号灯状态: 红灯" in seen[0] and "红灯已亮: 9.50秒" in seen[0]
    assert "信号灯状态: 红灯" in seen[1] and "红灯已亮: 10.00秒" in seen[1]
    assert "信号灯状态: 绿灯" in seen[2] and "红灯已亮: -" in seen[2]
    for text in seen:
        for label in ("时间", "地点", "方向", "车道", "设备编号", "违法代码", "号牌"):
            assert label in text


def test_a_red_not_seen_to_begin_is_stated_as_a_lower_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The camera first saw the signal already red: every image says "red for at least …"
    (≥), ``record.json`` says the onset was not seen, and the red age is not presented as
    the true one anywhere."""
    seen = overlay_texts(monkeypatch)

    def unseen(pts: float) -> dict[str, SignalState]:
        return {"main": SignalState("main", LampColor.RED, 0.95, 0.5, pts, onset_seen=False)}

    frames = [
        AnalysedFrame(frame(60, 10.0), tracks_at(440.0), unseen(10.0)),
        AnalysedFrame(frame(63, 10.5), tracks_at(388.0), unseen(10.5)),
        AnalysedFrame(frame(70, 11.7), tracks_at(280.0), unseen(11.7)),
    ]
    ev = event((10.0, 10.5, 11.7), 10.45, (("red_onset", "not_seen"),))
    doc = json.loads(builder(tmp_path).build_record(ev, frames).record_json.read_text("utf-8"))
    assert "红灯已亮: ≥9.50秒" in seen[0] and "红灯已亮: ≥11.20秒" in seen[2]
    assert [i["signal"]["onset_seen"] for i in doc["images"]] == [False, False, False]
    assert doc["violation"]["red_onset_seen"] is False
    ev_seen = event((10.0, 10.5, 11.7), 10.45)
    doc = json.loads(
        builder(tmp_path / "b")
        .build_record(ev_seen, green_between_2_and_3())
        .record_json.read_text("utf-8")
    )
    assert doc["violation"]["red_onset_seen"] is True
    assert doc["images"][0]["signal"]["onset_seen"] is True


def test_image_1_past_the_line_or_not_red_is_listed_incomplete(tmp_path: Path) -> None:
    frames = green_between_2_and_3()
    frames[0] = AnalysedFrame(frames[0].frame, tracks_at(386.0), signal(LampColor.AMBER, 9.0, 10.0))
    doc = json.loads(
        builder(tmp_path)
        .build_record(event((10.0, 10.5, 11.7), 10.45), frames)
        .record_json.read_text(encoding="utf-8")
    )
    reasons = {(p["part"], p["reason"]) for p in doc["incomplete"]}
    assert ("image_1", "subject on the stop line, not before") in reasons
    assert doc["images"][0]["signal"]["color"] == "amber"


def test_image_2_not_on_red_is_listed_incomplete(tmp_path: Path) -> None:
    """The crossing was judged on red, but the picture at (just after) the line shows another
    colour: the record cannot show the red at the crossing, and says so for image 2."""
    frames = green_between_2_and_3()
    frames[1] = AnalysedFrame(
        frames[1].frame, tracks_at(388.0), signal(LampColor.GREEN, 10.5, 10.5)
    )
    doc = json.loads(
        builder(tmp_path)
        .build_record(event((10.0, 10.5, 11.7), 10.45), frames)
        .record_json.read_text(encoding="utf-8")
    )
    reasons = {(p["part"], p["reason"]) for p in doc["incomplete"]}
    assert ("image_2", "signal green, not red") in reasons
    ok = json.loads(
        builder(tmp_path / "ok")
        .build_record(event((10.0, 10.5, 11.7), 10.45), green_between_2_and_3())
        .record_json.read_text(encoding="utf-8")
    )
    assert not [p for p in ok["incomplete"] if p["part"] == "image_2"]


def test_signal_fault_and_missing_track_are_incomplete(tmp_path: Path) -> None:
    frames = green_between_2_and_3()
    frames[1] = AnalysedFrame(
        frames[1].frame, Tracks.empty(), signal(LampColor.UNKNOWN, 10.4, 10.5)
    )
    doc = json.loads(
        builder(tmp_path)
        .build_record(event((10.0, 10.5, 11.7), 10.45), frames)
        .record_json.read_text(encoding="utf-8")
    )
    parts = [p for p in doc["incomplete"] if p["part"] == "image_2"]
    assert any("signal fault" in p["reason"] for p in parts)
    assert any("subject is not in this frame" in p["reason"] for p in parts)
    assert doc["images"][1]["signal"]["fault"] == "lamp unknown"
    # an unknown state has no onset: no age is stated for it
    assert doc["images"][1]["signal"]["seconds_since_onset"] is None
    assert doc["images"][1]["signal"]["onset_seen"] is False


def test_rule_note_for_image_1_is_recorded(tmp_path: Path) -> None:
    note = (("evidence_note_1", "no observation before the stop line while red"),)
    doc = json.loads(
        builder(tmp_path)
        .build_record(event((10.0, 10.5, 11.7), 10.45, note), green_between_2_and_3())
        .record_json.read_text(encoding="utf-8")
    )
    assert {"part": "image_1", "reason": note[0][1]} in doc["incomplete"]


def test_chinese_glyphs_are_drawn_when_a_cjk_font_is_present(tmp_path: Path) -> None:
    font, why = images.font_status()
    if font is None:
        pytest.skip(f"no CJK font here: {why}")
    band_a = np.zeros((40, 200, 3), np.uint8)
    band_b = np.zeros((40, 200, 3), np.uint8)
    images._draw_rows_pil(band_a, ["红灯已亮"], font, 24)
    images._draw_rows_pil(band_b, ["绿灯"], font, 24)
    assert (band_a > 128).sum() > 100  # glyph area is not empty
    assert not np.array_equal(band_a, band_b)  # real glyphs, not one missing-glyph box
    doc = json.loads(
        builder(tmp_path)
        .build_record(event((10.0, 10.5, 11.7), 10.45), green_between_2_and_3())
        .record_json.read_text(encoding="utf-8")
    )
    assert doc["overlay_language"] == "zh"


def test_english_fallback_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "find_cjk_font", lambda *a: None)
    doc = json.loads(
        builder(tmp_path)
        .build_record(event((10.0, 10.5, 11.7), 10.45), green_between_2_and_3())
        .record_json.read_text(encoding="utf-8")
    )
    assert doc["overlay_language"] == "en"
    assert "no CJK font found" in doc["overlay_language_reason"]


# -- stage selection in the rule ----------------------------------------------------------------


def test_rule_picks_stages_from_observations_and_reports_frames_it_needs() -> None:
    cam = camera()
    assert cam.intersection is not None
    rule = RedLightRule("hanoi_b", cam.intersection, (640, 480), riders=None)
    events: list[Event] = []
    fps = 6.0
    bottoms = [470.0 - 12.0 * i for i in range(25)]  # up lane s1, 72 px/s, crossing y≈390
    needed: list[float | None] = []
    for i, y in enumerate(bottoms):
        pts = 5.0 + i / fps
        f = frame(i, pts)
        events += rule.update(f, tracks_at(y, x=300.0), signal(LampColor.RED, 0.5, pts))
        needed.append(rule.oldest_needed_pts())
    assert len(events) == 1
    v = events[0].violation
    assert v is not None
    e1, e2, e3 = v.evidence_pts
    y_at = {5.0 + i / fps: y for i, y in enumerate(bottoms)}
    assert e1 < v.crossed_stop_line_pts <= e2 < e3
    assert y_at[e1] > 400.0  # before the stop line (y≈390 at x=300), by the margin
    assert 360.0 < y_at[e2] <= 392.0  # first observation over the line
    assert y_at[e3] < 326.0  # past the entry line (y≈320 at x=300)
    assert y_at[e1] - y_at[e2] >= 0.04 * 800 - 1e-6  # clearly displaced from image 2
    assert v.seconds_since_red == pytest.approx(v.crossed_stop_line_pts - 0.5, abs=1e-3)
    # while approaching, frames from 3 s back are kept; once decided, nothing is needed
    decided = next(i for i, n in enumerate(needed) if n is None)
    for i in range(decided):
        n = needed[i]
        assert n is not None and n <= e1
        if bottoms[i] > 400.0:  # still behind the line: the last 3 s (since its first frame)
            assert n == pytest.approx(max(5.0, 5.0 + i / fps - 3.0))
    assert all(n is None for n in needed[decided:])


# -- API: the record's time and its incomplete parts ----------------------------------------------


def test_api_shows_violation_time_and_incomplete_parts(tmp_path: Path) -> None:
    from sharpeyes.api.rest.convert import event_public
    from sharpeyes.api.rest.evidence import EvidenceFile, UrlSigner
    from sharpeyes.api.store.records import StoredEvent

    rec = builder(tmp_path).build_record(event((10.0, 10.5, 11.7), 10.45), green_between_2_and_3())
    ev = event((10.0, 10.5, 11.7), 10.45)
    stored = StoredEvent(ev, None, None, "pending", str(rec.record_dir), None, 0)
    files = [EvidenceFile(f.name, rec.record_dir / f.name, f.size) for f in rec.files]
    files.append(EvidenceFile("record.json", rec.record_json, rec.record_json.stat().st_size))
    pub = event_public(stored, UrlSigner(b"k" * 32), files)
    assert pub.time_ms == WALL0 + 10_450 != pub.first_seen_ms
    assert pub.violation is not None and pub.violation.time_ms == WALL0 + 10_450
    assert pub.evidence_complete is False
    assert {p.part for p in pub.incomplete} == {"plate", "clip"}
    listed = event_public(stored, UrlSigner(b"k" * 32), None)
    assert listed.time_ms == WALL0 + 10_450 and listed.incomplete == []
    assert listed.violation is not None and listed.violation.red_onset_seen is True
    unseen = event((10.0, 10.5, 11.7), 10.45, (("red_onset", "not_seen"),))
    stored = StoredEvent(unseen, None, None, "pending", None, None, 0)
    pub = event_public(stored, UrlSigner(b"k" * 32), None)
    assert pub.violation is not None and pub.violation.red_onset_seen is False


def test_pedestrian_rule_reports_frames_it_needs() -> None:
    from sharpeyes.pipeline.rules.pedestrian import PedestrianRedLightRule

    cam = camera()
    assert cam.intersection is not None
    rule = PedestrianRedLightRule("hanoi_b", cam.intersection, (640, 480))
    assert rule.oldest_needed_pts() is None
    person = Tracks(
        xyxy=np.array([[20.0, 380.0, 40.0, 420.0]], np.float32),  # feet at y=420, outside
        confidence=np.array([0.9], np.float32),
        class_id=np.array([0]),
        kind=np.array([int(ObjectKind.PERSON)], np.int8),
        track_id=np.array([5]),
        detected=np.array([True]),
    )
    red = {"ped_near": SignalState("ped_near", LampColor.RED, 1.0, 0.0, 2.0)}
    rule.update(frame(1, 2.0), person, red)
    assert rule.oldest_needed_pts() == pytest.approx(2.0)
    rule.update(frame(2, 2.5), person, red)
    assert rule.oldest_needed_pts() == pytest.approx(2.5)  # image 1 is its last outside frame


def test_a_car_is_on_the_side_of_a_tilted_stop_line_its_wheel_line_middle_is() -> None:
    """The side stated per image is the one the red-light rule judges by: on a tilted stop line a
    car's box bottom is one end of its wheel line, half its width times the slope below the
    middle (:meth:`OrientedLine.wheel_point`); a motorbike's is its wheel."""
    line = StopLine(((0.0, 300.0), (400.0, 340.0)), None, (0.0, -1.0), margin=2.0)  # slope 0.1
    box = Box(160.0, 250.0, 240.0, 324.0, 640, 480)  # centre x 200: line at y 320; bottom 4 below
    assert line.side(box, 3) == "before"  # a motorbike's wheel is 4 px before the line
    assert line.side(box, 2) == "on"  # a car's wheel line middle is at 320: on the line
    assert line.side(box, None) == "before"
    assert StopLine(line.stop, None, line.forward, 2.0, wheel_lines=False).side(box, 2) == "before"
