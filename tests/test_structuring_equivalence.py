"""One camera, one truth for video structuring: plates, vehicle colours and face captures come
out the same through ``analyze``, ``run`` (the file played once as a live camera) and the
cluster's local backend.

The violation equivalence (``tests/test_equivalence.py``) does not look at what structuring
adds to an event; a checkpoint camera that reads plates offline and not live would pass it.
Here the shipped checkpoint config reads the Beijing segment with the white Nissan 京M76967
(frames 300–419, the labelled plate, see ``tests/test_structuring_eval.py``), and the pedestrian
clip captures the two visible faces (``tests/test_structuring_faces.py``) — through every entry
point. The live node runs the default detector, so the checkpoint camera runs on a detector of its
own asking (192×320; that it gets one is `tests/test_runtime.py`'s, this segment reads at both).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sharpeyes.api.store.db import open_database
from sharpeyes.pipeline.config import CameraConfig, load_camera_config
from tests.equivalence import via_analyze, via_cluster, via_run
from tests.test_structuring_eval import _segment

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARPEYES_SHARED", REPO.parent / "shared"))
BEIJING = SHARED / "sample_videos" / "plates_closeup_beijing_640x360.mp4"
PEDESTRIANS = SHARED / "sample_videos" / "pedestrians_crossing_1280x720.mp4"
NISSAN = "京M76967"  # labelled by eye in sample_videos/plates_closeup_beijing_labels.json

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Stored:
    type: str
    track_id: int
    plate: str | None
    plate_color: str | None
    extra: dict[str, Any]


def stored(db_path: Path, stream_id: str) -> list[Stored]:
    db = open_database(str(db_path))
    try:
        with db.transaction(readonly=True) as conn:
            rows = conn.fetchall(
                "SELECT type, track_id, plate_text, plate_color, extra FROM events "
                "WHERE stream_id = ? ORDER BY first_pts, track_id",
                (stream_id,),
            )
    finally:
        db.close()
    out = []
    for kind, track, plate, colour, extra in rows:
        ex = json.loads(extra) if isinstance(extra, str) else dict(extra or {})
        out.append(Stored(str(kind), int(track), plate, colour, ex))
    return out


def scenes_missing(db_path: Path, stream_id: str, event_type: str) -> list[str]:
    """Events of ``event_type`` whose scene picture (beside the crop) is not on disk."""
    from sharpeyes.api.store.files import scene_path

    db = open_database(str(db_path))
    try:
        with db.transaction(readonly=True) as conn:
            rows = conn.fetchall(
                "SELECT event_id, crop_path FROM events WHERE stream_id = ? AND type = ?",
                (stream_id, event_type),
            )
    finally:
        db.close()
    assert rows, f"no {event_type} in {db_path}"
    return [
        str(eid)
        for eid, crop in rows
        if not crop or not scene_path(db_path.parent / str(crop)).is_file()
    ]


def plates(events: list[Stored]) -> list[tuple[str, str | None]]:
    return sorted((e.plate, e.plate_color) for e in events if e.plate)


def colour_of(events: list[Stored], plate: str) -> set[str]:
    return {str(e.extra.get("vehicle_color")) for e in events if e.plate == plate}


def assert_plates_everywhere(cam: CameraConfig, tmp_path: Path, expected: list[str]) -> None:
    """``cam`` through ``analyze``, ``run`` and the cluster: each states exactly ``expected``."""
    via_analyze(cam, tmp_path / "a")
    via_run(cam, tmp_path / "r", timeout_s=120)
    via_cluster(cam, tmp_path / "c", timeout_s=180)
    for name, db in (
        ("analyze", tmp_path / "a" / "events.db"),
        ("run", tmp_path / "r" / "events.db"),
        ("cluster", tmp_path / "c" / "cluster.db"),
    ):
        got = stored(db, cam.id)
        assert [p for p, _ in plates(got)] == expected, (name, plates(got))


@pytest.mark.skipif(not BEIJING.is_file(), reason="shared Beijing clip missing")
def test_checkpoint_reads_the_same_plate_offline_live_and_in_the_cluster(tmp_path: Path) -> None:
    seg = tmp_path / "seg.mp4"
    _segment(BEIJING, seg, 300, 420)
    cam = load_camera_config(REPO / "sample_videos" / "plates_closeup_beijing.yaml")
    # 10 analysed fps: a live camera on a 2-core box keeps real time; the same for every entry
    cam = cam.model_copy(update={"url": str(seg), "analysis_fps": 10.0})
    assert cam.detector.input_size == (192, 320)  # the checkpoint's near-field detector input

    via_analyze(cam, tmp_path / "a")
    offline = stored(tmp_path / "a" / "events.db", cam.id)
    # the node's detector is the default one, as in `sharpeyes demo`; the camera asks for its own
    via_run(cam, tmp_path / "r", timeout_s=120, node_detector={"model": "yolov5n"})
    live = stored(tmp_path / "r" / "events.db", cam.id)
    via_cluster(cam, tmp_path / "c", timeout_s=180)
    cluster = stored(tmp_path / "c" / "cluster.db", cam.id)

    assert [p for p, _ in plates(offline)] == [NISSAN], plates(offline)
    for name, got in (("run", live), ("cluster", cluster)):
        assert plates(got) == plates(offline), f"{name}: {plates(got)} vs {plates(offline)}"
        assert colour_of(got, NISSAN) == colour_of(offline, NISSAN), name
        assert {e.type for e in got} == {e.type for e in offline}, name
    assert colour_of(offline, NISSAN) - {"None"}, "the Nissan's body colour was not stated"
    for db in (tmp_path / "a" / "events.db", tmp_path / "r" / "events.db"):
        assert scenes_missing(db, cam.id, "vehicle_pass") == [], db  # the 卡口 scene picture
    assert scenes_missing(tmp_path / "c" / "cluster.db", cam.id, "vehicle_pass") == []


@pytest.mark.skipif(not BEIJING.is_file(), reason="shared Beijing clip missing")
def test_a_checkpoint_camera_without_a_detector_setting_finds_its_near_field_everywhere(
    tmp_path: Path,
) -> None:
    """The same segment, the camera with nothing but structuring on: the detector's default
    view misses the Nissan (``tests/test_near_field.py``); the camera takes the picture shrunk
    to half (pipeline/near_field.py) and reads the plate — offline, live and in the cluster."""
    seg = tmp_path / "seg.mp4"
    _segment(BEIJING, seg, 300, 420)
    cam = CameraConfig.model_validate(
        {
            "id": "kakou_auto",
            "url": str(seg),
            "analysis_fps": 10.0,
            "structuring": {"enabled": True},
            "events": {"kinds": ["motor_vehicle"]},
        }
    )
    assert cam.near_field == "auto" and cam.detector.input_size is None
    assert_plates_everywhere(cam, tmp_path, [NISSAN])


@pytest.mark.skipif(not BEIJING.is_file(), reason="shared Beijing clip missing")
def test_a_track_opened_late_is_read_on_its_earlier_pictures_everywhere(tmp_path: Path) -> None:
    """Frames 690–790 at a live camera's 5 analysed pictures a second: 京J27373's track opens as
    its plate leaves the picture, and the plate is read on the car's untracked pictures from
    before (pipeline/structuring/earlier.py) — offline, live and in the cluster alike."""
    seg = tmp_path / "seg.mp4"
    _segment(BEIJING, seg, 690, 790)
    cam = CameraConfig.model_validate(
        {
            "id": "kakou_late",
            "url": str(seg),
            "analysis_fps": 5.0,
            "near_field": "on",
            "structuring": {"enabled": True},
            "events": {"kinds": ["motor_vehicle"]},
        }
    )
    assert_plates_everywhere(cam, tmp_path, ["京J27373"])


@pytest.mark.skipif(not PEDESTRIANS.is_file(), reason="shared pedestrian clip missing")
def test_faces_are_captured_offline_live_and_in_the_cluster(tmp_path: Path) -> None:
    cam = CameraConfig.model_validate(
        {
            "id": "faces",
            "url": str(PEDESTRIANS),
            "analysis_fps": 10.0,
            "events": {"kinds": ["person"]},
            "faces": {"enabled": True},
        }
    )
    via_analyze(cam, tmp_path / "a")
    via_run(cam, tmp_path / "r", timeout_s=120)
    via_cluster(cam, tmp_path / "c", timeout_s=180)
    counts = {}
    for name, db in (
        ("analyze", tmp_path / "a" / "events.db"),
        ("run", tmp_path / "r" / "events.db"),
        ("cluster", tmp_path / "c" / "cluster.db"),
    ):
        faces = [e for e in stored(db, cam.id) if e.type == "face_capture"]
        assert scenes_missing(db, cam.id, "face_capture") == [], name  # GA/T 14 with the face
        counts[name] = len(faces)
        # one capture per person track, never two for the same pedestrian
        assert len({f.track_id for f in faces}) == len(faces), (name, faces)
    # the two near pedestrians' faces (tests/test_structuring_faces.py), in every entry point
    assert counts == {"analyze": 2, "run": 2, "cluster": 2}, counts
