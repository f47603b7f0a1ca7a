"""A pedestrian's red-light record says what a pedestrian record can say: no plate.

Before, the evidence builder treated every subject as a vehicle: a pedestrian's record listed
"plate unreadable in every evidence image" as missing (so it could never be complete, and the
console asked the reviewer for a plate), its overlay said "号牌: 未识别", and its close-up was
"No plate found: lower vehicle" — the pedestrian's legs. Now the close-up is the pedestrian's
upper body (head and shoulders, the deployed systems' four-in-one picture, RED_LIGHT.md), the
overlay names the subject, and no plate is asked for; a vehicle's record is unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from sharpeyes.pipeline.evidence.builder import EvidenceBuilder
from sharpeyes.pipeline.types import (
    AnalysedFrame,
    Event,
    EventType,
    LampColor,
    ObjectKind,
    Tracks,
    Violation,
)
from tests.test_evidence_facts import (
    KEY,
    TID,
    WALL0,
    camera,
    event,
    frame,
    green_between_2_and_3,
    overlay_texts,
    signal,
)

HEAD = (200, 40, 255)  # a magenta head, so the close-up can be checked to show it


def walker(x: float) -> Tracks:
    box = [x - 12.0, 300.0, x + 12.0, 380.0]  # an upright person, 24 x 80 px
    return Tracks(
        xyxy=np.array([box], np.float32),
        confidence=np.array([0.8], np.float32),
        class_id=np.array([0]),
        kind=np.array([int(ObjectKind.PERSON)], np.int8),
        track_id=np.array([TID]),
        detected=np.array([True]),
    )


def walking_frames() -> list[AnalysedFrame]:
    out = []
    for i, (x, pts) in enumerate(((100.0, 20.0), (140.0, 21.0), (180.0, 22.0))):
        f = frame(600 + 30 * i, pts)
        f.image[300:320, int(x) - 6 : int(x) + 6] = HEAD  # the head: top quarter of the box
        f.image[340:380, int(x) - 12 : int(x) + 12] = (30, 160, 30)  # green trousers
        out.append(AnalysedFrame(f, walker(x), signal(LampColor.RED, 5.0, pts)))
    return out


def pedestrian_event() -> Event:
    v = Violation(
        code="8901",
        signal_group="main",
        signal_color=LampColor.RED,
        seconds_since_red=16.0,
        lane_no=None,
        movement="crossing",
        approach="cw_north",
        crossed_stop_line_pts=21.0,
        evidence_pts=(20.0, 21.0, 22.0),
    )
    return Event(
        event_id="e" * 32,
        type=EventType.PEDESTRIAN_RED_LIGHT,
        stream_id="hanoi_b",
        first_seen_ms=WALL0 + 19_000,
        last_seen_ms=WALL0 + 23_000,
        first_pts=19.0,
        last_pts=23.0,
        kind=ObjectKind.PERSON,
        track_id=TID,
        class_name="person",
        violation=v,
    )


def build(tmp_path: Path, ev: Event, frames: list[AnalysedFrame]) -> tuple[dict[str, Any], Path]:
    b = EvidenceBuilder(tmp_path, camera=camera(), plate_reader=None, hmac_key=KEY)
    rec = b.build_record(ev, frames)
    return json.loads(rec.record_json.read_text(encoding="utf-8")), rec.record_dir


def test_a_pedestrian_record_asks_for_no_plate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = overlay_texts(monkeypatch)
    doc, folder = build(tmp_path, pedestrian_event(), walking_frames())
    parts = [p["part"] for p in doc["incomplete"]]
    assert "plate" not in parts
    assert parts == ["clip"]  # no clip source in this test: the one thing missing
    plate = doc["plate"]
    assert isinstance(plate, dict)
    assert plate["needed"] is False and plate["readable"] is None
    assert plate["closeup"]["shows"] == "upper_body"
    for text in seen:
        assert "对象: 行人" in text and "号牌" not in text
        assert "违法代码: 8901 行人违反道路交通信号灯通行" in text
        assert "过街" in text and "crossing" not in text  # the movement in Chinese too
    closeup = cv2.imread(str(folder / "plate.jpg"))
    assert closeup is not None
    # the head fills the top of the close-up; the trousers (lower half of the box) are out
    h = closeup.shape[0]
    head = np.all(np.abs(closeup.astype(int) - HEAD) < 40, axis=2)
    trousers = np.all(np.abs(closeup.astype(int) - (30, 160, 30)) < 40, axis=2)
    assert head[: h // 2].mean() > 0.1
    assert trousers.mean() < 0.01


def test_a_vehicle_record_still_asks_for_its_plate(tmp_path: Path) -> None:
    doc, _ = build(tmp_path, event((10.0, 10.5, 11.7), 10.45), green_between_2_and_3())
    assert [p["part"] for p in doc["incomplete"]] == ["plate", "clip"]
    plate = doc["plate"]
    assert isinstance(plate, dict)
    assert plate["needed"] is True and plate["readable"] is False
    assert plate["closeup"]["shows"] == "lower_vehicle"
