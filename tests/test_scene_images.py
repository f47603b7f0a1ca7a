"""Scene pictures (issue 13): a checkpoint / face / person record carries the full frame its
best crop was taken from — the frame itself, not any frame — stored beside the crop, served as
``scene.jpg`` and sent as GA/T SubImage 01 (vehicle) / 14 (face)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sharpeyes.pipeline.config import EventsConfig
from sharpeyes.pipeline.events import TrackEventBuilder
from sharpeyes.pipeline.types import Event, Frame, ObjectKind, Tracks

H, W = 360, 640


def frame(seq: int) -> Frame:
    """A frame whose every picture differs (its number drawn large, a colour of its own)."""
    img = np.full((H, W, 3), (40 + 9 * seq) % 256, np.uint8)
    cv2.putText(img, f"{seq:02d}", (20, 300), cv2.FONT_HERSHEY_SIMPLEX, 8, (255, 255, 255), 12)
    return Frame("cam1", seq, seq / 25, 1_700_000_000_000 + seq * 40, img)


def car(y1: float, size: float) -> Tracks:
    return Tracks(
        xyxy=np.array([[300, y1, 300 + size, y1 + size * 0.6]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.array([2], np.int64),
        kind=np.array([int(ObjectKind.MOTOR_VEHICLE)], np.int8),
        track_id=np.array([5], np.int64),
        detected=np.array([True]),
    )


def run(scene_images: bool | None) -> tuple[Event, list[Frame]]:
    b = TrackEventBuilder(
        "cam1",
        EventsConfig(scene_images=scene_images),
        class_names=("person", "bicycle", "car"),
        class_codes={2: "K33"},
    )
    frames = [frame(i) for i in range(12)]
    # the car grows until frame 7 (its best view), then shrinks as it turns away
    sizes = [60 + 20 * min(i, 7) - 25 * max(0, i - 7) for i in range(12)]
    for f, s in zip(frames, sizes, strict=True):
        b.update(f, car(40 + 5 * f.seq, s))
    (event,) = b.finish([5])
    return event, frames


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_the_scene_is_the_frame_of_the_best_crop() -> None:
    event, frames = run(True)
    assert event.scene_jpeg is not None and event.crop_jpeg is not None
    scene = decode(event.scene_jpeg)
    assert scene.shape == (H, W, 3)
    assert event.best_pts == pytest.approx(frames[7].pts)
    errors = [float(np.abs(scene.astype(int) - f.image.astype(int)).mean()) for f in frames]
    assert int(np.argmin(errors)) == 7 and errors[7] < 3.0, errors  # that frame, not another
    # and the close-up is the scene's own picture at the event's box (JPEG apart)
    b = event.best_box
    assert b is not None
    crop = decode(event.crop_jpeg)
    inner = scene[int(b.y1) : int(b.y1) + 20, int(b.x1) : int(b.x1) + 20].astype(int)
    mx, my = round((b.x2 - b.x1) * 0.1), round((b.y2 - b.y1) * 0.1)  # the crop's margin
    assert np.abs(crop[my : my + 20, mx : mx + 20].astype(int) - inner).mean() < 6.0


def test_no_scene_unless_asked() -> None:
    for setting in (False, None):  # None is resolved by the camera; unresolved it is off
        event, _ = run(setting)
        assert event.scene_jpeg is None and event.crop_jpeg is not None


@pytest.mark.integration
def test_checkpoint_camera_stores_and_sends_the_scene(sample_videos: Path, tmp_path: Path) -> None:
    """The Beijing checkpoint config (structuring on, scene_images unset): every pass has its
    scene beside the crop — the full 640×360 frame that contains the close-up — served as
    ``scene.jpg``; the GA/T MotorVehicle record built by the delivery's own picture finder
    carries it as SubImage 01 of that size and passes the MEGVII template. The highway config
    (no structuring) keeps none."""
    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
    from sharpeyes.api.rest.evidence import EvidenceLocator
    from sharpeyes.api.store import open_store
    from sharpeyes.api.store.files import plate_path, scene_path
    from sharpeyes.api.viid.config import ViidMappingConfig
    from sharpeyes.api.viid.conformance import load_default_template
    from sharpeyes.api.viid.delivery import EvidenceImages
    from sharpeyes.api.viid.mapping import EventMapper
    from sharpeyes.api.viid.resources import COLLECTIONS
    from sharpeyes.pipeline.config import load_camera_config
    from sharpeyes.pipeline.data import samples_dir

    cam = load_camera_config(samples_dir() / "plates_closeup_beijing.yaml")
    assert cam.events.scene_images is None and cam.structuring.enabled
    clip = sample_videos / "plates_closeup_beijing_640x360.mp4"
    analyze_video(AnalyzeOptions(clip, out=tmp_path, progress=False, camera=cam))
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    passes = [p for p in lines if p["type"] == "vehicle_pass"]
    assert len(passes) >= 8
    for p in passes:
        crop_file = tmp_path / p["crop"]
        scene = cv2.imread(str(scene_path(crop_file)))
        crop = cv2.imread(str(crop_file))
        assert scene is not None and crop is not None, p["event_id"]
        assert scene.shape == (H, W, 3)
        found = cv2.matchTemplate(scene, crop, cv2.TM_SQDIFF_NORMED)
        assert float(found.min()) < 0.01, p["event_id"]  # the close-up is in that very frame
    store = open_store(tmp_path / "events.db", tmp_path)
    try:
        stored = store.get_event(passes[0]["event_id"])
        assert stored is not None
        locator = EvidenceLocator([tmp_path])
        served = locator.resolve(stored, "scene.jpg")
        assert served.path == scene_path(tmp_path / passes[0]["crop"]).resolve()
        # a read plate's picture is served as plate.jpg too (it was a 404: only records had one)
        plated = [p for p in passes if plate_path(tmp_path / p["crop"]).is_file()]
        assert len(plated) >= 6
        for p in plated:
            got = store.get_event(p["event_id"])
            assert got is not None
            assert (
                locator.resolve(got, "plate.jpg").path == plate_path(tmp_path / p["crop"]).resolve()
            )
            assert "plate.jpg" in [f.name for f in locator.files(got)]
        images = EvidenceImages(store, tmp_path, None)(stored)
        mapper = EventMapper(ViidMappingConfig(default_device_id="34020000001190000081"))
        obj = mapper.map(stored.event, images)
    finally:
        store.close()
    assert obj is not None
    subs = obj.payload["SubImageList"]["SubImageInfoObject"]
    full = [s for s in subs if s["Type"] == "01"]
    assert len(full) == 1 and (full[0]["Width"], full[0]["Height"]) == (W, H)
    spec = COLLECTIONS[obj.collection]
    report = load_default_template().validate(spec.interface, spec.envelope([obj.payload]))
    assert report.ok, report.summary()

    other = load_camera_config(samples_dir() / "highway_flow.yaml")
    out2 = tmp_path / "highway"
    analyze_video(
        AnalyzeOptions(
            sample_videos / "highway_640x360.mp4", out=out2, progress=False, camera=other
        )
    )
    assert list(out2.rglob("*.jpg")) and not list(out2.rglob("*.scene.jpg"))
