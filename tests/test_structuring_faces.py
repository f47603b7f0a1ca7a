"""Face capture (人脸抓拍): the best face of each person track as a ``face_capture`` event,
nothing for tracks without a usable face (counted), the GA/T 1400 FaceObject it maps to
(MEGVII template, 0 violations), and the real pedestrian clip through ``analyze``.

Labels for ``pedestrians_crossing_1280x720.mp4`` (90 frames, by eye from frames 0, 30, 60, 89
at full size): two pedestrians walk across near the camera with their faces visible (a woman
in a black jacket, a young man in grey; faces about 25–35 px high); a third man stands far
back on the kerb, his face under 15 px — below the default ``min_face_px`` (24), so it is
correctly not emitted.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sharpeyes.api.viid.conformance import load_default_template
from sharpeyes.api.viid.mapping import EventImages, EventMapper
from sharpeyes.api.viid.resources import COLLECTIONS
from sharpeyes.pipeline.config import EventsConfig, FaceCaptureConfig
from sharpeyes.pipeline.events import TrackEventBuilder
from sharpeyes.pipeline.structuring.face_stats import FaceStats, describe_faces
from sharpeyes.pipeline.structuring.faces import (
    FaceCapture,
    FoundFace,
    face_quality,
    frontality,
)
from sharpeyes.pipeline.types import Event, EventType, Frame, ImageBGR, ObjectKind, Tracks
from tests._viid_fixtures import mapping_config

W, H = 640, 360
FRONTAL = ((20.0, 20.0), (40.0, 20.0), (30.0, 30.0), (22.0, 40.0), (38.0, 40.0))


def test_frontality_prefers_frontal_level_faces() -> None:
    assert frontality(FRONTAL) == pytest.approx(1.0)
    profile = ((20.0, 20.0), (40.0, 20.0), (39.0, 30.0), (22.0, 40.0), (38.0, 40.0))
    tilted = ((20.0, 20.0), (40.0, 32.0), (30.0, 30.0), (22.0, 40.0), (38.0, 40.0))
    assert frontality(profile) < 0.2 and frontality(tilted) < 0.5


def test_blur_lowers_quality() -> None:
    rng = np.random.default_rng(3)
    sharp = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)
    blurred = np.asarray(cv2.GaussianBlur(sharp, (15, 15), 5), np.uint8)
    face = FoundFace((10.0, 10.0, 70.0, 74.0), 0.9, tuple((x + 10, y + 10) for x, y in FRONTAL))
    assert face_quality(face, sharp) > 0.8 > 0.2 > face_quality(face, blurred)


class FakeFaces:
    """A face of ``height`` px at the top of every region, or none."""

    def __init__(self, height: float | None) -> None:
        self.height = height
        self.calls = 0

    def faces(self, image: ImageBGR) -> list[FoundFace]:
        self.calls += 1
        if self.height is None:
            return []
        h = self.height
        x0, y0 = image.shape[1] / 2 - h / 2, 2.0
        marks = tuple((x0 + h * fx, y0 + h * fy) for fx, fy in ((0.3, 0.4), (0.7, 0.4),
                      (0.5, 0.6), (0.35, 0.8), (0.65, 0.8)))  # fmt: skip
        return [FoundFace((x0, y0, x0 + h, y0 + h), 0.9, marks)]


def textured_frame(i: int) -> Frame:
    rng = np.random.default_rng(i)
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    return Frame("cam1", i, i / 10, 1_700_000_000_000 + i * 100, img)


def person(tid: int = 1, kind: ObjectKind = ObjectKind.PERSON) -> Tracks:
    return Tracks(
        np.array([[200, 40, 300, 340]], np.float32),
        np.array([0.9], np.float32),
        np.array([0]),
        np.array([int(kind)], np.int8),
        np.array([tid]),
        np.array([True]),
    )


def stage_of(faces: FakeFaces, kind: ObjectKind = ObjectKind.PERSON, **cfg: object) -> FaceCapture:
    inner = TrackEventBuilder(
        "cam1",
        EventsConfig.model_validate({"kinds": ["person", "motor_vehicle"]}),
        class_names=("person", "bicycle", "car"),
        class_codes={2: "K33"},
    )
    return FaceCapture(inner, faces, FaceCaptureConfig.model_validate({"enabled": True, **cfg}))


def run_stage(stage: FaceCapture, kind: ObjectKind = ObjectKind.PERSON) -> list[Event]:
    out: list[Event] = []
    for i in range(20):
        out += stage.update(textured_frame(i), person(kind=kind))
    out += stage.finish([1])
    return out


def run(faces: FakeFaces, kind: ObjectKind = ObjectKind.PERSON, **cfg: object) -> list[Event]:
    return run_stage(stage_of(faces, kind, **cfg), kind)


def test_one_face_per_person_track_after_its_event() -> None:
    faces = FakeFaces(40.0)
    events = run(faces, read_interval_s=0.5)
    assert [e.type for e in events] == [EventType.PERSON_SEEN, EventType.FACE_CAPTURE]
    face = events[1]
    assert face.track_id == 1 and face.crop_jpeg and face.best_box is not None
    assert face.best_box.y2 - face.best_box.y1 == pytest.approx(40.0, abs=1.0)
    assert dict(face.extra)["person_event_id"] == events[0].event_id
    assert 0.15 <= face.confidence <= 1.0
    assert faces.calls == 4  # 2 s of track, a read every 0.5 s: not every frame


def test_the_face_scene_is_the_frame_the_face_was_taken_from() -> None:
    import cv2

    (_, face) = run(FakeFaces(40.0), read_interval_s=0.5)
    assert face.scene_jpeg is not None and face.best_pts is not None
    scene = cv2.imdecode(np.frombuffer(face.scene_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert scene is not None
    errors = [
        float(np.abs(scene.astype(int) - textured_frame(i).image.astype(int)).mean())
        for i in range(20)
    ]
    assert int(np.argmin(errors)) == round(face.best_pts * 10), errors  # that frame (10 fps)


def test_no_usable_face_no_event() -> None:
    assert [e.type for e in run(FakeFaces(None))] == [EventType.PERSON_SEEN]
    assert [e.type for e in run(FakeFaces(12.0))] == [EventType.PERSON_SEEN]  # too small
    none = run(FakeFaces(40.0), min_quality=0.99)
    assert [e.type for e in none] == [EventType.PERSON_SEEN]
    assert [e.type for e in run(FakeFaces(40.0), kind=ObjectKind.MOTOR_VEHICLE)] == [
        EventType.VEHICLE_PASS
    ]


def test_analyze_says_how_many_faces_were_captured_and_why_not() -> None:
    """A face camera aimed too wide is told its faces' size (PETS 2009's walkers from an upper
    floor: 0 of 32 captured, the largest face 15 px)."""
    stats = FaceStats(captured=0, too_small=7, no_face=25, largest_small_px=15.2)
    assert stats.persons == 32
    line = describe_faces(stats)
    assert line.startswith("faces: 0 captured of 32 persons; 7 faces too small: the largest 15 px")
    assert "24 px needed" in line and "25 with no face found" in line
    assert describe_faces(FaceStats(captured=3)) == "faces: 3 captured of 3 persons"
    small = stage_of(FakeFaces(12.0))
    assert [e.type for e in run_stage(small)] == [EventType.PERSON_SEEN]  # not emitted: counted
    assert (small.stats.too_small, small.stats.largest_small_px) == (1, 12.0)
    assert "the largest 12 px high, 24 px needed" in describe_faces(small.stats)


def test_face_object_passes_megvii_template() -> None:
    events = run(FakeFaces(40.0))
    obj = EventMapper(mapping_config()).map(events[1], EventImages.from_event(events[1]))
    assert obj is not None
    p = obj.payload
    assert len(p["FaceID"]) == 48 and p["FaceID"][41:43] == "06"
    subs = p["SubImageList"]["SubImageInfoObject"]
    assert sorted(s["Type"] for s in subs) == ["11", "14"]  # the face and the frame it is from
    (scene,) = (s for s in subs if s["Type"] == "14")
    assert (scene["Width"], scene["Height"]) == (W, H)
    spec = COLLECTIONS[obj.collection]
    report = load_default_template().validate(spec.interface, spec.envelope([p]))
    assert report.ok, report.summary()
    assert report.unknown_fields == ()


@pytest.mark.integration
def test_pedestrian_clip_one_face_per_visible_face(sample_videos: Path, tmp_path: Path) -> None:
    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
    from sharpeyes.pipeline.config import CameraConfig

    clip = sample_videos / "pedestrians_crossing_1280x720.mp4"
    cam = CameraConfig.model_validate(
        {
            "id": "faces",
            "url": str(clip),
            "events": {"kinds": ["person"]},
            "faces": {"enabled": True},
        }
    )
    result = analyze_video(AnalyzeOptions(clip, out=tmp_path, progress=False, camera=cam))
    import json

    # what analyze says: the far man's face was not captured, and why
    assert "faces: 2 captured of 3 persons; 1 with no face found" in "\n".join(
        result.summary_lines()
    )

    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    faces = [e for e in events if e["type"] == "face_capture"]
    people = [e for e in events if e["type"] == "person_seen"]
    # the two near pedestrians, each once (duplicates per person: 1.0); not the far man
    assert len(faces) == 2, faces
    assert len({f["track_id"] for f in faces}) == 2
    near = {p["track_id"] for p in people if p["box"]["y2"] - p["box"]["y1"] > 250}
    assert {f["track_id"] for f in faces} == near
    for f in faces:
        h = f["box"]["y2"] - f["box"]["y1"]
        assert 20 <= h <= 45, f["box"]
