"""YOLO pre/post-processing: letterbox math, NMS, class mapping, batching, YOLOX, factory."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from sharpeyes.models.classes import (
    BUS,
    CAR,
    COCO80_NAMES,
    MOTORCYCLE,
    TRUCK,
    ClassMap,
    coco_kinds,
    vehicle_class_code,
)
from sharpeyes.models.nms import NmsParams, batched_nms, nms, select_boxes
from sharpeyes.models.yolo import LetterboxGeometry, plan_letterbox, rect_shape
from sharpeyes.pipeline.errors import ModelError, ModelNotFoundError
from sharpeyes.pipeline.protocols import Detector
from sharpeyes.pipeline.types import ObjectKind
from tests._models_fixtures import detector_or_skip, load_image, match_boxes, shared_dir

HIGHWAY = "sample_videos/highway_1280x720.mp4"

# --- letterbox -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ((720, 1280), (384, 640)),
        ((1080, 1920), (384, 640)),
        ((360, 640), (384, 640)),
        ((480, 640), (480, 640)),
        ((1080, 810), (640, 480)),
        ((333, 517), (416, 640)),
        ((640, 640), (640, 640)),
    ],
)
def test_rect_shape_matches_yolov5_auto_letterbox(
    src: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert rect_shape(src, (640, 640)) == expected
    assert expected[0] % 32 == 0 and expected[1] % 32 == 0


def upstream_style_letterbox(
    im: NDArray[np.uint8], new: tuple[int, int], auto: bool
) -> NDArray[np.uint8]:
    """Slow reference written from yolov5's letterbox description (resize + copyMakeBorder)."""
    h, w = im.shape[:2]
    r = min(new[0] / h, new[1] / w)
    nw, nh = round(w * r), round(h * r)
    dw, dh = new[1] - nw, new[0] - nh
    if auto:
        dw, dh = dw % 32, dh % 32
    resized = im if (w, h) == (nw, nh) else cv2.resize(im, (nw, nh))
    top, bottom = round(dh / 2 - 0.1), round(dh / 2 + 0.1)
    left, right = round(dw / 2 - 0.1), round(dw / 2 + 0.1)
    out = cv2.copyMakeBorder(
        resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114,) * 3
    )
    return np.asarray(out, dtype=np.uint8)


class _NoModel:
    """Enough of an OnnxModel for preprocessing tests."""

    def __init__(self, fixed_hw: tuple[int, int] | None) -> None:
        self.fixed_hw = fixed_hw
        self.fixed_batch = 1 if fixed_hw else None


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("src", [(720, 1280), (1080, 810), (333, 517), (481, 641)])
def test_preprocess_equals_reference_letterbox(static: bool, src: tuple[int, int]) -> None:
    from sharpeyes.models.yolo import YoloV5Detector

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (*src, 3), dtype=np.uint8)
    det = YoloV5Detector(_NoModel((640, 640) if static else None), name="t")  # type: ignore[arg-type]
    ref = upstream_style_letterbox(img, (640, 640), auto=not static)
    tensor = det.preprocess([img]).tensor
    expected = ref[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255
    assert tensor.shape == expected.shape
    np.testing.assert_allclose(tensor, expected, atol=1e-6)


def test_letterbox_round_trip_and_clip() -> None:
    geo = plan_letterbox((720, 1280), (384, 640))
    assert (geo.top, geo.left, geo.resized_hw) == (12, 0, (360, 640))
    assert geo.gain == 0.5 and geo.pad == (0.0, 12.0)
    boxes = np.array([[100, 50, 400, 700], [0, 0, 1280, 720]], np.float32)
    np.testing.assert_allclose(geo.to_source(geo.to_input(boxes)), boxes, atol=1e-3)
    np.testing.assert_allclose(geo.to_input(boxes)[0], [50, 37, 200, 362])
    outside = np.array([[-20, -10, 700, 400]], np.float32)  # input px, beyond the image
    np.testing.assert_allclose(geo.to_source(outside), [[0, 0, 1280, 720]])
    top_left = LetterboxGeometry((720, 1280), (416, 416), (234, 416), 0, 0, centred=False)
    assert top_left.pad == (0.0, 0.0)


# --- NMS -------------------------------------------------------------------------------------


def slow_nms(boxes: NDArray[np.float32], scores: NDArray[np.float32], thr: float) -> list[int]:
    def iou(a: Any, b: Any) -> float:
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    order = sorted(range(len(boxes)), key=lambda i: -float(scores[i]))
    keep: list[int] = []
    for i in order:
        if all(iou(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(8))
def test_nms_matches_slow_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    xy = rng.uniform(0, 500, (n, 2))
    wh = rng.uniform(5, 120, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = (rng.permutation(n) / n).astype(np.float32)  # distinct scores: no tie ambiguity
    for thr in (0.3, 0.45, 0.7):
        assert nms(boxes, scores, thr).tolist() == slow_nms(boxes, scores, thr)


def test_batched_nms_keeps_groups_apart() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert batched_nms(boxes, scores, np.array([0, 1, 0]), 0.45).tolist() == [0, 1]
    assert batched_nms(boxes, scores, np.array([0, 0, 0]), 0.45).tolist() == [0]
    assert batched_nms(boxes[:0], scores[:0], np.zeros(0, np.int64), 0.45).size == 0


def _row(xywh: list[float], obj: float, cls: int, p: float = 1.0) -> NDArray[np.float32]:
    row = np.zeros(85, np.float32)
    row[:4], row[4], row[5 + cls] = xywh, obj, p
    return row


def test_select_boxes_upstream_semantics_and_vehicle_merge() -> None:
    pred = np.stack(
        [
            _row([100, 100, 50, 40], 0.9, BUS),  # a white van seen as a bus ...
            _row([101, 100, 50, 40], 0.8, TRUCK),  # ... and as a truck
            _row([300, 300, 20, 60], 0.2, 0),  # objectness below conf: never a candidate
            _row([300, 300, 20, 60], 0.5, 0, 0.4),  # obj × cls = 0.2 < 0.25
            _row([400, 300, 20, 60], 0.6, 6),  # train: "other"
        ]
    )
    params = NmsParams()
    aware, merged = ClassMap(merge_vehicle_nms=False), ClassMap(merge_vehicle_nms=True)
    sel = select_boxes(pred, params, aware.nms_group)
    assert sel.class_id.tolist() == [BUS, TRUCK, 6]
    np.testing.assert_allclose(sel.score, [0.9, 0.8, 0.6], rtol=1e-6)
    np.testing.assert_allclose(sel.xyxy[0], [75, 80, 125, 120])
    sel = select_boxes(pred, params, merged.nms_group, merged.kind_of != 0)
    assert sel.class_id.tolist() == [BUS]
    assert select_boxes(pred[2:4], params, aware.nms_group).class_id.size == 0


def test_class_map_kinds_groups_and_codes() -> None:
    from tests._models_fixtures import shared_dir

    names = shared_dir() / "models" / "coco80.names"
    if names.exists():
        assert tuple(names.read_text().split("\n")[:80]) == COCO80_NAMES
    cm = ClassMap()
    assert cm.kind_of[0] == ObjectKind.PERSON and cm.kind_of[1] == ObjectKind.NON_MOTOR
    assert cm.kind_of[MOTORCYCLE] == ObjectKind.NON_MOTOR
    assert cm.kind_of[9] == ObjectKind.TRAFFIC_LIGHT and cm.kind_of[6] == ObjectKind.OTHER
    assert cm.nms_group[CAR] == cm.nms_group[BUS] == cm.nms_group[TRUCK] != cm.nms_group[MOTORCYCLE]
    motor = ClassMap(motorcycle_is_non_motor=False)
    assert motor.kind_of[MOTORCYCLE] == ObjectKind.MOTOR_VEHICLE
    assert motor.nms_group[MOTORCYCLE] == motor.nms_group[CAR]
    assert [vehicle_class_code(c) for c in (CAR, BUS, TRUCK, MOTORCYCLE, 0)] == [
        "K30", "K11", "H11", "M21", "X99",
    ]  # fmt: skip
    assert cm.name(5) == "bus" and cm.name(99) == "class_99"
    kinds = coco_kinds(motorcycle_is_non_motor=False)
    assert len(kinds) == 80 and kinds[MOTORCYCLE] is ObjectKind.MOTOR_VEHICLE
    assert list(kinds) == [ObjectKind(int(k)) for k in motor.kind_of]


# --- detectors on real images ------------------------------------------------------------


@pytest.fixture(scope="module")
def yolov5_static() -> Any:
    return detector_or_skip("yolov5n_static", intra_op_threads=1, warmup=0)


@pytest.fixture(scope="module")
def yolov5_dynamic() -> Any:
    return detector_or_skip("yolov5n", intra_op_threads=1, warmup=0)


def _assert_same(a: Any, b: Any) -> None:
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-4)
    assert a.class_id.tolist() == b.class_id.tolist()


@pytest.mark.parametrize("which", ["yolov5_static", "yolov5_dynamic"])
def test_batch_of_two_equals_two_single_calls(which: str, request: pytest.FixtureRequest) -> None:
    det = request.getfixturevalue(which)
    f0, f200 = load_image(HIGHWAY, 0), load_image(HIGHWAY, 200)
    both = det.detect([f0, f200])
    assert len(both) == 2 and len(both[0]) > 5
    _assert_same(both[0], det.detect([f0])[0])
    _assert_same(both[1], det.detect([f200])[0])


def test_dynamic_batch_runs_as_one_tensor_and_mixed_sizes_work(yolov5_dynamic: Any) -> None:
    f0 = load_image(HIGHWAY, 0)
    bus = load_image("images/bus.jpg")
    batch = yolov5_dynamic.preprocess([f0, f0])
    assert batch.tensor.shape == (2, 3, 384, 640)
    raw = yolov5_dynamic.infer(batch)
    assert raw.shape == (2, 15120, 85)
    mixed = yolov5_dynamic.detect([f0, bus])  # shared 640x640 canvas, each centred
    single = yolov5_dynamic.detect([bus])[0]
    pairs, missing, _ = match_boxes(mixed[1].xyxy, mixed[1].class_id, single.xyxy, single.class_id)
    assert not [m for m in missing if single.confidence[m] > 0.6]
    assert all(iou > 0.9 for *_, iou in pairs)


def test_static_detector_on_bus_finds_bus_and_people(yolov5_static: Any) -> None:
    dets = yolov5_static.detect([load_image("images/bus.jpg")])[0]
    assert isinstance(yolov5_static, Detector)
    people = dets.of_kind(ObjectKind.PERSON)
    vehicles = dets.of_kind(ObjectKind.MOTOR_VEHICLE)
    assert len(people) >= 3 and len(vehicles) == 1 and vehicles.class_id[0] == BUS
    assert vehicles.xyxy[0, 2] - vehicles.xyxy[0, 0] > 600  # the bus spans the picture
    assert (dets.xyxy[:, 2] <= 810).all() and (dets.xyxy[:, 3] <= 1080).all()
    assert not np.isin(dets.kind, [ObjectKind.OTHER]).any()


def test_empty_input_blank_image_and_bad_input(yolov5_static: Any) -> None:
    assert yolov5_static.detect([]) == []
    with pytest.raises(ValueError, match="HxWx3"):
        yolov5_static.detect([np.zeros((720, 1280), np.uint8)])
    with pytest.raises(ValueError, match="HxWx3"):
        yolov5_static.detect([np.zeros((720, 1280, 3), np.float32)])
    blank = np.full((720, 1280, 3), 114, np.uint8)
    assert len(yolov5_static.detect([blank])[0]) == 0


def test_yolox_on_bus_finds_bus_and_persons() -> None:
    det = detector_or_skip("yolox_nano", intra_op_threads=1, warmup=1)
    assert det.info.input_size == (416, 416) and det.info.batch == 1
    img = load_image("images/bus.jpg")
    assert det.preprocess([img]).tensor.max() > 1.5  # BGR 0..255, not normalised
    dets = det.detect([img])[0]
    buses = dets[dets.class_id == BUS]
    assert len(buses) == 1 and buses.confidence[0] > 0.8
    assert buses.xyxy[0, 2] - buses.xyxy[0, 0] > 600 and buses.xyxy[0, 1] > 150
    people = dets.of_kind(ObjectKind.PERSON)
    assert len(people) >= 3 and (people.confidence > 0.5).sum() >= 3
    # the person at the left edge: box in source pixels (YOLOX letterbox is top-left)
    assert people.xyxy[:, 0].min() < 80 and people.xyxy[:, 3].max() > 800


# --- factory -----------------------------------------------------------------------------


def test_factory_rejects_non_detectors_and_bad_sizes() -> None:
    from sharpeyes.models.factory import create_detector, detector_models

    assert {"yolov5n", "yolov5n_static", "yolox_nano"} <= set(detector_models())
    with pytest.raises(ModelError, match="not a detector"):
        create_detector("plate_rec_color")
    with pytest.raises(ModelNotFoundError, match="known models"):
        create_detector("nope")
    if (shared_dir() / "models" / "yolov5n.onnx").exists():
        with pytest.raises(ModelError, match="static"):
            create_detector("yolov5n_static", input_size=(384, 640), warmup=0)


def test_info_reports_providers_threads_and_dynamic_batch(
    yolov5_static: Any, yolov5_dynamic: Any
) -> None:
    info = yolov5_static.info
    assert info.providers == ("CPUExecutionProvider",) and info.intra_op_threads == 1
    assert info.batch == 1 and info.model == "yolov5n_static"
    assert yolov5_dynamic.info.batch is None and yolov5_dynamic.info.input_size == (640, 640)
