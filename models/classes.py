"""COCO-80 class names and their mapping to sharpeyes' model-independent ``ObjectKind``.

Also carries a GA/T 16.4-style vehicle-type code (机动车车辆类型代码, the ``VehicleClass`` field
of GA/T 1400 ``MotorVehicleObject``) for each COCO motor-vehicle class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.types import ObjectKind

# Copied from shared/models/coco80.names (index = class id).
COCO80_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

PERSON, BICYCLE, CAR, MOTORCYCLE, BUS, TRUCK, TRAFFIC_LIGHT = 0, 1, 2, 3, 5, 7, 9

# GA/T 16.4 / GA 24.4 机动车车辆类型代码 (the vehicle-type table also used by GA/T 1400's
# VehicleClass, e.g. "K33" in shared/docs/GAT1400.md §5.2). The codes chosen per COCO class:
#   K33 小型轿车 (small saloon car) — the typical COCO "car";
#   K11 大型普通客车 (large ordinary bus) — COCO "bus" (city/coach buses);
#   H11 重型普通货车 (heavy ordinary goods vehicle) — COCO "truck" mostly labels lorries; a
#       detector cannot tell the weight class, so the heavy class is the conservative choice;
#   M21 普通二轮摩托车 (ordinary two-wheel motorcycle) — COCO "motorcycle";
#   X99 其他 (other) — anything else / unknown.
# A plate or a dedicated vehicle-type classifier should refine these; they are a coarse default.
UNKNOWN_VEHICLE_CODE = "X99"
VEHICLE_CLASS_CODES: Mapping[int, str] = MappingProxyType(
    {CAR: "K33", BUS: "K11", TRUCK: "H11", MOTORCYCLE: "M21"}
)


def vehicle_class_code(class_id: int) -> str:
    """GA/T 16.4-style vehicle-type code for a COCO class id (``"X99"`` when unknown)."""
    return VEHICLE_CLASS_CODES.get(int(class_id), UNKNOWN_VEHICLE_CODE)


def _kind_table(motorcycle_is_non_motor: bool) -> NDArray[np.int8]:
    table = np.full(len(COCO80_NAMES), int(ObjectKind.OTHER), dtype=np.int8)
    table[PERSON] = ObjectKind.PERSON
    table[BICYCLE] = ObjectKind.NON_MOTOR
    table[[CAR, BUS, TRUCK]] = ObjectKind.MOTOR_VEHICLE
    table[MOTORCYCLE] = (
        ObjectKind.NON_MOTOR if motorcycle_is_non_motor else ObjectKind.MOTOR_VEHICLE
    )
    table[TRAFFIC_LIGHT] = ObjectKind.TRAFFIC_LIGHT
    return table


@dataclass(frozen=True, slots=True)
class ClassMap:
    """How a COCO-80 detector's classes become kinds and NMS groups.

    ``kind_of`` maps class id → ``ObjectKind`` (int8). ``nms_group`` maps class id → NMS group:
    every class is its own group except the motor-vehicle classes, which share one group when
    ``merge_vehicle_nms`` is set, so a white van cannot be reported both as a bus and a truck.
    """

    motorcycle_is_non_motor: bool = True
    merge_vehicle_nms: bool = True
    names: tuple[str, ...] = COCO80_NAMES
    kind_of: NDArray[np.int8] = field(init=False, repr=False)
    nms_group: NDArray[np.int64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        kinds = _kind_table(self.motorcycle_is_non_motor)
        groups = np.arange(len(self.names), dtype=np.int64)
        if self.merge_vehicle_nms:
            vehicles = np.flatnonzero(kinds == ObjectKind.MOTOR_VEHICLE)
            groups[vehicles] = vehicles.min()
        object.__setattr__(self, "kind_of", kinds)
        object.__setattr__(self, "nms_group", groups)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def name(self, class_id: int) -> str:
        """Class name, or ``"class_<id>"`` for an id outside the table."""
        if 0 <= class_id < len(self.names):
            return self.names[class_id]
        return f"class_{class_id}"


def coco_kinds(motorcycle_is_non_motor: bool = True) -> tuple[ObjectKind, ...]:
    """``ObjectKind`` of every COCO-80 class id, in class-id order."""
    return tuple(ObjectKind(int(k)) for k in _kind_table(motorcycle_is_non_motor))
