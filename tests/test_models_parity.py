"""Parity of our YOLOv5 detector with the upstream yolov5 reference (tests/golden/).

The golden file was made by tests/tools/make_golden.py with the upstream yolov5 code on the
PyTorch yolov5n.pt; we must reproduce every golden box (same class, IoU >= 0.95, |Δconf| <=
0.02) and add none, with our NMS in upstream-compatible mode (class-aware, all 80 classes).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from sharpeyes.models.classes import ClassMap
from sharpeyes.models.nms import iou_one_to_many
from sharpeyes.pipeline.types import Detections
from tests._models_fixtures import detector_or_skip, golden, load_image, match_boxes

MODES = {"rect": "yolov5n", "square": "yolov5n_static"}
CASES = [(img["id"], mode) for img in golden()["images"] for mode in MODES]


def _image(image_id: str) -> tuple[dict[str, Any], np.ndarray]:
    entry = next(i for i in golden()["images"] if i["id"] == image_id)
    return entry, load_image(entry["source"], entry["frame"])


@pytest.fixture(scope="module")
def detectors() -> dict[str, Any]:
    return {}


def _detector(cache: dict[str, Any], mode: str, merge: bool) -> Any:
    key = f"{mode}-{merge}"
    if key not in cache:
        cache[key] = detector_or_skip(
            MODES[mode],
            intra_op_threads=1,
            keep_other_classes=True,
            merge_vehicle_nms=merge,
            warmup=0,
        )
    return cache[key]


def _ref(entry: dict[str, Any], mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.asarray(entry["modes"][mode]["boxes"], dtype=np.float64).reshape(-1, 6)
    return (
        rows[:, :4].astype(np.float32),
        rows[:, 4].astype(np.float32),
        rows[:, 5].astype(np.int64),
    )


def test_golden_file_is_upstream_and_complete() -> None:
    g = golden()
    assert "make_golden.py" in g["command"]
    assert g["params"]["conf_thres"] == 0.25 and g["params"]["iou_thres"] == 0.45
    assert g["params"]["classes"] is None
    assert {i["id"] for i in g["images"]} >= {"bus", "zidane", "highway_f0", "hanoi_b_f127"}
    assert sum(len(i["modes"]["rect"]["boxes"]) for i in g["images"]) > 40


def test_merged_vehicle_nms_drops_double_labelled_vehicles(detectors: dict[str, Any]) -> None:
    """On the chosen frames a vehicle is both car and truck (or bus and truck) upstream."""
    dropped = 0
    for image_id in ("highway_f360", "urban_buses_f340"):
        _, img = _image(image_id)
        aware = _detector(detectors, "rect", merge=False).detect([img])[0]
        merged = _detector(detectors, "rect", merge=True).detect([img])[0]
        dropped += len(aware) - len(merged)
    assert dropped >= 3


@pytest.mark.parametrize(("image_id", "mode"), CASES)
def test_reproduces_upstream_boxes(detectors: dict[str, Any], image_id: str, mode: str) -> None:
    entry, img = _image(image_id)
    det = _detector(detectors, mode, merge=False)
    assert list(det.preprocess([img]).tensor.shape[2:]) == entry["modes"][mode]["input_hw"]
    ours: Detections = det.detect([img])[0]
    same_pixels = hashlib.sha256(img.tobytes()).hexdigest() == entry["pixels_sha256"]
    note = "" if same_pixels else " (NOTE: decoded pixels differ from the golden's input)"
    ref_xyxy, ref_conf, ref_cls = _ref(entry, mode)
    pairs, missing, extra = match_boxes(ours.xyxy, ours.class_id, ref_xyxy, ref_cls)
    missed = [entry["modes"][mode]["boxes"][m] for m in missing]
    assert not missing, f"golden boxes not reproduced: {missed}{note}"
    assert not extra, f"extra boxes: {ours.xyxy[extra]} {ours.class_id[extra]}{note}"
    for r, o, iou in pairs:
        assert iou >= 0.95, (r, o, iou, note)
        assert abs(float(ours.confidence[o]) - float(ref_conf[r])) <= 0.02, note
    assert len(ours) == len(ref_cls)


@pytest.mark.parametrize("image_id", [i["id"] for i in golden()["images"]])
def test_merged_vehicle_nms_only_drops_overlapping_vehicle_duplicates(
    detectors: dict[str, Any], image_id: str
) -> None:
    _, img = _image(image_id)
    aware = _detector(detectors, "rect", merge=False).detect([img])[0]
    merged = _detector(detectors, "rect", merge=True).detect([img])[0]
    vehicle = set(np.flatnonzero(ClassMap(merge_vehicle_nms=True).kind_of == 3).tolist())
    pairs, missing, extra = match_boxes(merged.xyxy, merged.class_id, aware.xyxy, aware.class_id)
    assert not extra, "merged NMS must not create boxes"
    assert all(iou > 0.999 for *_, iou in pairs)
    for r in missing:
        assert int(aware.class_id[r]) in vehicle
        others = merged[np.isin(merged.class_id, sorted(vehicle))]
        ious = iou_one_to_many(aware.xyxy[r], others.xyxy)
        # suppressed by a higher-scoring box of another vehicle class
        assert np.any((ious > 0.45) & (others.confidence >= aware.confidence[r]))
