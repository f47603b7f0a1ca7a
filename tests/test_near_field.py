"""Near field (``pipeline/near_field.py``): the detector is shown the picture shrunk to half
when the camera's own pictures show that it finds clearly more there (vehicle fronts filling a
checkpoint camera's picture), and as is otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.eval_plates import DEFAULT_LABELS, Report, evaluate, load_events, load_labels
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.near_field import (
    PAD_VALUE,
    PROBE_S,
    WARM_S,
    NearField,
    near_view,
    unmatched_gain,
)
from sharpeyes.pipeline.runner import RunSummary, StreamRunner
from sharpeyes.pipeline.types import Detections, ImageBGR, ObjectKind
from tests.conftest import need

CAR = int(ObjectKind.MOTOR_VEHICLE)


def _dets(*boxes: tuple[float, float, float, float], conf: float = 0.8) -> Detections:
    return Detections.create(
        np.array(boxes, np.float32).reshape(-1, 4),
        [conf] * len(boxes),
        [2] * len(boxes),
        [CAR] * len(boxes),
    )


def _shrunk(view: ImageBGR) -> bool:
    """Whether a view is the near one (its bottom-right quarter is the canvas's grey)."""
    h, w = view.shape[:2]
    return bool((view[h // 2 + 1 :, w // 2 + 1 :] == PAD_VALUE).all())


def test_near_view_maps_boxes_back_to_the_picture() -> None:
    image = np.zeros((360, 640, 3), np.uint8)
    image[100:300, 200:600] = 255  # a white "vehicle"
    canvas, factor = near_view(image)
    assert canvas.shape == image.shape and factor == pytest.approx(2.0)
    ys, xs = np.nonzero(canvas[..., 0] > 128)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) * factor
    assert box == pytest.approx([200, 100, 600, 300], abs=2)
    assert _shrunk(canvas) and not _shrunk(image)


def test_unmatched_gain_counts_what_the_other_view_missed() -> None:
    a = _dets((0, 0, 100, 100), (200, 0, 300, 100))
    b = _dets((5, 5, 100, 100))
    assert unmatched_gain(a, b) == pytest.approx(0.8)  # the second box
    assert unmatched_gain(b, a) == 0.0
    assert unmatched_gain(a, Detections.empty()) == pytest.approx(1.6)
    person = Detections.create(
        np.array([[0, 0, 100, 100]], np.float32), [0.9], [0], [int(ObjectKind.PERSON)]
    )
    assert unmatched_gain(person, a) == pytest.approx(0.9)  # another kind is not a match


class Scene:
    """A fake detector: ``big`` objects found on the near view, ``big_full`` of them (at lower
    confidence) on the picture as is too, and ``small`` ones only on the picture as is (all in
    the picture's pixels; the near view's boxes are given at half)."""

    def __init__(self, big: int, small: int, big_full: int = 0) -> None:
        self.big, self.small, self.big_full = big, small, big_full
        self.calls = 0

    def __call__(self, view: ImageBGR) -> Detections:
        self.calls += 1
        big = [(110.0 * i, 0.0, 110.0 * i + 150.0, 170.0) for i in range(self.big)]
        if _shrunk(view):
            return _dets(*big)
        full = _dets(
            *[(2 * a, 2 * b, 2 * c, 2 * d) for a, b, c, d in big[: self.big_full]], conf=0.4
        )
        small = _dets(*[(300.0 + 12 * i, 300.0, 310.0 + 12 * i, 310.0) for i in range(self.small)])
        return Detections(
            np.concatenate([full.xyxy, small.xyxy]),
            np.concatenate([full.confidence, small.confidence]),
            np.concatenate([full.class_id, small.class_id]),
            np.concatenate([full.kind, small.kind]),
        )


def _run(nf: NearField, scene: Scene, seconds: float, fps: float = 5.0) -> list[Detections]:
    image = np.full((360, 640, 3), 60, np.uint8)
    return [nf.detect(image, i / fps, scene) for i in range(int(seconds * fps))]


def _runner(scene: Scene, pictures: int, **kw: Any) -> StreamRunner:
    """A runner over ``pictures`` grey pictures at 5 fps whose detector is ``scene``, with the
    near field in auto; ``kw`` adds or overrides runner arguments."""
    from collections.abc import Sequence

    from sharpeyes.pipeline.config import EventsConfig, TrackerConfig
    from sharpeyes.pipeline.events import TrackEventBuilder
    from sharpeyes.pipeline.tracking.bytetrack import ByteTracker
    from tests.test_denoise import Pictures
    from tests.test_supervisor import ListSink, NoDetections

    class SceneDetector(NoDetections):
        def detect(self, images: Sequence[ImageBGR]) -> list[Detections]:
            return [scene(im) for im in images]

    args: dict[str, Any] = {
        "source": Pictures(pictures, lambda _: np.full((360, 640, 3), 60, np.uint8)),
        "detector": SceneDetector(),
        "tracker": ByteTracker(TrackerConfig()),
        "events": TrackEventBuilder(
            "cam", EventsConfig(), class_names=["", "", "car"], class_codes={}
        ),
        "sinks": [ListSink()],
        "prefetch_depth": 0,
        "near_field": NearField("auto", "cam"),
    }
    return StreamRunner(**(args | kw))


def test_a_checkpoint_view_switches_to_the_near_view_within_a_second() -> None:
    """The full view finds one of three frame-filling objects (weakly), the near view all
    three: two found only there, 1.6 a probe, MIN_GAIN after three probes."""
    nf, scene = NearField("auto"), Scene(big=3, small=0, big_full=1)
    out = _run(nf, scene, 60.0)
    assert nf.near and nf.switches == 1
    first_near = len(out) - nf.near_frames  # the pictures seen as is
    assert first_near == 3  # three probes: 4.8 of gain, 0 against
    # the probe pictures already give the tracker all three (the near view's joined in)
    assert all(len(d) == 3 for d in out)
    assert sorted(out[0].confidence.tolist()) == pytest.approx([0.4, 0.8, 0.8])  # 1 + 2 joined
    assert out[-1].xyxy[1] == pytest.approx([220, 0, 520, 340])  # boxes in the picture's pixels
    # once near, the picture as is is probed now and then and never wins
    assert scene.calls <= len(out) + first_near + 60 / PROBE_S + 2


def test_a_traffic_view_is_never_probed() -> None:
    """No object reaches a third of the picture's height: nothing to compare, no extra work."""
    nf, scene = NearField("auto"), Scene(big=0, small=6)
    out = _run(nf, scene, 120.0)
    assert not nf.near and nf.switches == 0 and nf.near_frames == 0
    assert all(len(d) == 6 for d in out)
    assert nf.probes == 0 and scene.calls == len(out)


def test_a_tie_keeps_the_view_in_use() -> None:
    """The near view finds a large object the full one misses, the full one a small object the
    near one misses: not 4 × — the full view stays; once clear (own gain over MIN_GAIN and 4 ×
    the other's), it is probed every PROBE_S only."""
    nf, scene = NearField("auto"), Scene(big=2, small=1, big_full=1)
    _run(nf, scene, 60.0)
    assert not nf.near and nf.switches == 0
    nf, scene = NearField("auto"), Scene(big=1, small=6, big_full=1)
    _run(nf, scene, 60.0)
    assert not nf.near and nf.probes <= 1 + 60 / PROBE_S + 1


def test_an_undecided_view_probes_every_picture_only_while_warm() -> None:
    """Both views find the same large object and nothing else: nothing decides; probed on every
    picture for WARM_S, then every PROBE_S."""
    nf, scene = NearField("auto"), Scene(big=1, small=0, big_full=1)
    out = _run(nf, scene, 60.0)
    assert not nf.near
    warm = int(WARM_S * 5)
    assert warm <= nf.probes <= warm + (60 - WARM_S) / PROBE_S + 1
    assert scene.calls == len(out) + nf.probes


def test_a_view_that_changes_switches_back() -> None:
    nf = NearField("auto")
    _run(nf, Scene(big=3, small=0, big_full=1), 20.0)
    assert nf.near
    image = np.full((360, 640, 3), 60, np.uint8)
    scene = Scene(big=0, small=8)
    for i in range(100, 100 + 5 * 120):  # two minutes of another view
        nf.detect(image, i / 5.0, scene)
    assert not nf.near and nf.switches == 2


def test_on_and_off_fix_the_view() -> None:
    scene = Scene(big=0, small=6)
    on, off = NearField("on"), NearField("off")
    assert all(len(d) == 0 for d in _run(on, scene, 30.0))  # shrunk always: the small are lost
    assert on.near and on.probes == 0 and on.switches == 0
    assert all(len(d) == 6 for d in _run(off, scene, 30.0)) and off.probes == 0
    with pytest.raises(ValueError, match="auto, on or off"):
        NearField("sometimes")


def test_the_camera_decides_unless_its_installer_set_the_scale() -> None:
    from sharpeyes.api.node.camera import near_field_of

    def cam(**kw: object) -> CameraConfig:
        return CameraConfig.model_validate({"id": "c", "url": "x.mp4", **kw})

    got = near_field_of(cam())
    assert got is not None and got.mode == "auto" and got.name == "c"
    assert near_field_of(cam(near_field="off")) is None
    assert near_field_of(cam(detector={"input_size": [192, 320]})) is None
    forced = near_field_of(cam(near_field="on", detector={"input_size": [192, 320]}))
    assert forced is not None and forced.mode == "on"


# -- real footage ---------------------------------------------------------------------------


def _analyze_segment(
    sample_videos: Path, tmp_path: Path, near: str, plate_first: str = "auto"
) -> tuple[RunSummary, Report]:
    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
    from tests.test_structuring_eval import CLIP, _segment

    src = sample_videos / CLIP
    need(src.is_file(), f"{src} not found")
    seg = tmp_path / "seg.mp4"
    _segment(src, seg, 300, 420)
    cam = CameraConfig.model_validate(
        {
            "id": "kakou",
            "url": str(seg),
            "structuring": {"enabled": True, "plate_first": plate_first},
            "near_field": near,
        }
    )
    out = tmp_path / f"{near}_{plate_first}"
    result = analyze_video(AnalyzeOptions(video=seg, out=out, progress=False, camera=cam))
    fps, vehicles = load_labels(DEFAULT_LABELS, (300, 419))
    return result.summary, evaluate(vehicles, load_events(out / "events.jsonl", fps, offset=300))


def test_a_checkpoint_camera_with_default_settings_reads_the_plate(
    sample_videos: Path, tmp_path: Path
) -> None:
    """plates_closeup_beijing frames 300–419 (the white Nissan 京M76967 filling the picture),
    the camera with nothing but structuring on: the detector's default 384×640 view misses the
    vehicle; the camera finds the near view better within its first pictures and reads the
    plate, as the shipped checkpoint config (192×320 input) does."""
    summary, report = _analyze_segment(sample_videos, tmp_path, "auto")
    assert summary.near_field_switches == 1 and summary.frames_near_field > 50
    assert report.plates_exact == report.readable_plates == 1, report.to_json()
    assert report.false_plates == []
    _, before = _analyze_segment(sample_videos, tmp_path, "off", plate_first="off")
    assert before.plates_exact == 0, before.to_json()
    # without the near view, the plate found on the whole picture (plate-first) reads it too
    _, plates_only = _analyze_segment(sample_videos, tmp_path, "off")
    assert plates_only.plates_exact == 1 and plates_only.false_plates == []


def test_health_the_console_api_and_camera_check_say_the_detector_sees_the_near_view() -> None:
    """An engineer looking at a checkpoint camera sees that the detector is shown its picture
    shrunk (health, ``GET /streams``, the ``camera-check`` picture line); the tracks stay in
    the camera's pixels."""
    from sharpeyes.api.commands.camera_check import PictureQuality
    from sharpeyes.api.commands.run import health_public
    from sharpeyes.api.node.health import CameraEntry, camera_health
    from sharpeyes.pipeline.supervisor import WorkerStatus

    tracked: list[float] = []
    runner = _runner(
        Scene(big=2, small=0, big_full=1),
        20,
        observer=lambda f, d, t, *_: tracked.extend(float(x) for x in t.xyxy[:, 2]),
    )
    summary = runner.run()
    assert summary.near_field_switches == 1 and summary.frames_near_field >= 15
    assert max(tracked) > 300  # boxes of the shrunk view mapped back to the picture
    entry = CameraEntry(CameraConfig.model_validate({"id": "cam", "url": "x.mp4"}), runner=runner)
    health = camera_health(entry, WorkerStatus("cam"), failed_after=3)
    assert health.near_field and health_public(health).near_field
    quality = PictureQuality.of(summary)
    assert quality.as_dict()["near_field"] is True
    assert "shrunk to half" in quality.line() and "缩小一半" in quality.line("zh")


def test_the_near_view_in_use_runs_on_a_detector_at_half_the_input() -> None:
    """Once the camera takes the near view, the picture goes whole to a detector at half the
    input (made once, when first needed), not shrunk into a canvas for the full-size one; a
    detector that cannot be made leaves the canvas in use."""
    from collections.abc import Sequence

    from sharpeyes.pipeline.errors import ModelError
    from tests.test_supervisor import NoDetections

    shown: list[ImageBGR] = []

    class Half(NoDetections):
        def detect(self, images: Sequence[ImageBGR]) -> list[Detections]:
            shown.extend(images)
            return [_dets((0, 0, 300, 340), (220, 0, 520, 340), (440, 0, 740, 340))]

    made: list[int] = []

    def make() -> Half:
        made.append(1)
        return Half()

    def failing() -> Half:
        raise ModelError("a static model")

    def run(factory: object) -> StreamRunner:
        runner = _runner(Scene(big=3, small=0, big_full=1), 30, near_detector=factory)
        runner.run()
        return runner

    runner = run(make)
    assert runner.summary.near_field_switches == 1 and made == [1]
    assert isinstance(runner.near_view, Half)
    assert len(shown) == runner.summary.frames_near_field
    assert all(not _shrunk(im) for im in shown)  # the whole picture, not a canvas
    fallback = run(failing)
    assert fallback.summary.near_field_switches == 1 and fallback.near_view is None


def test_the_near_detector_is_the_cameras_model_at_half_the_input(tmp_path: Path) -> None:
    from sharpeyes.api.node.camera import CameraEnv, near_detector
    from sharpeyes.pipeline.protocols import DetectorInfo
    from tests.test_supervisor import NoDetections

    class Dynamic(NoDetections):
        @property
        def info(self) -> DetectorInfo:
            return DetectorInfo("yolov5n", (640, 640), ("cpu",), 0, None)

    class Static(Dynamic):
        @property
        def info(self) -> DetectorInfo:
            return DetectorInfo("yolov5n_static", (640, 640), ("cpu",), 0, 1)

    asked: list[CameraConfig] = []

    def detector_for(c: CameraConfig) -> Dynamic:
        asked.append(c)
        return Dynamic()

    env = CameraEnv(files_root=tmp_path, detector_for=detector_for)
    cam = CameraConfig.model_validate({"id": "c", "url": "x.mp4"})
    make = near_detector(cam, Dynamic(), env)
    assert make is not None and not asked  # made only when asked for
    make()
    assert asked[0].detector.input_size == (320, 320) and asked[0].id == "c"
    assert near_detector(cam, Static(), env) is None
