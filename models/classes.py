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
#   K30 小型客车 (small passenger vehicle, the group of K31 小型普通客车 — SUVs, MPVs —, K32
#       越野, K33 小型轿车 saloons …) — COCO "car": saloons, SUVs and MPVs alike (round 28: K33
#       "saloon" was false for the 12 SUVs and minivans of the 36 labelled highway cars);
#   K11 大型普通客车 (large ordinary bus) — COCO "bus" (city/coach buses);
#   H11 重型普通货车 (heavy ordinary goods vehicle) — COCO "truck" mostly labels lorries; a
#       detector cannot tell the weight class, so the heavy class is the conservative choice;
#   M21 普通二轮摩托车 (ordinary two-wheel motorcycle) — COCO "motorcycle";
#   X99 其他 (other) — anything else / unknown.
# A coarse default: the structuring stage refines it with the read plate
# (pipeline/structuring/vehicle_class.py).
UNKNOWN_VEHICLE_CODE = "X99"
VEHICLE_CLASS_CODES: Mapping[int, str] = MappingProxyType(
    {CAR: "K30", BUS: "K11", TRUCK: "H11", MOTORCYCLE: "M21"}
)


def vehicle_class_code(class_id: int) -> str:
    """GA/T 16.4-style vehicle-type code for a COCO class id (``"X99"`` when unknown)."""
    return VEHICLE_CLASS_CODES.get(int(class_id), UNKNOWN_VEHICLE_CODE)


# Class names (lower case) that map to our object kinds, whatever the model's class list.
# "motorcycle" (and its synonyms) follow ``motorcycle_is_non_motor``.
NAME_KINDS: Mapping[str, ObjectKind] = MappingProxyType(
    {
        "person": ObjectKind.PERSON,
        "pedestrian": ObjectKind.PERSON,
        "bicycle": ObjectKind.NON_MOTOR,
        "tricycle": ObjectKind.NON_MOTOR,
        "car": ObjectKind.MOTOR_VEHICLE,
        "van": ObjectKind.MOTOR_VEHICLE,
        "bus": ObjectKind.MOTOR_VEHICLE,
        "truck": ObjectKind.MOTOR_VEHICLE,
        "traffic light": ObjectKind.TRAFFIC_LIGHT,
    }
)
MOTORCYCLE_NAMES = frozenset({"motorcycle", "motorbike", "motor"})


def kind_for_name(
    name: str,
    *,
    motorcycle_is_non_motor: bool = True,
    overrides: Mapping[str, ObjectKind] | None = None,
    default: ObjectKind = ObjectKind.OTHER,
) -> ObjectKind:
    """The ``ObjectKind`` of a class name (case-insensitive; ``overrides`` win)."""
    key = name.strip().lower().replace("_", " ")
    if overrides:
        for k, v in overrides.items():
            if k.strip().lower().replace("_", " ") == key:
                return v
    if key in MOTORCYCLE_NAMES:
        return ObjectKind.NON_MOTOR if motorcycle_is_non_motor else ObjectKind.MOTOR_VEHICLE
    return NAME_KINDS.get(key, default)


def kind_table(
    motorcycle_is_non_motor: bool,
    names: tuple[str, ...] = COCO80_NAMES,
    overrides: Mapping[str, ObjectKind] | None = None,
    default: ObjectKind = ObjectKind.OTHER,
) -> NDArray[np.int8]:
    return np.array(
        [
            int(
                kind_for_name(
                    n,
                    motorcycle_is_non_motor=motorcycle_is_non_motor,
                    overrides=overrides,
                    default=default,
                )
            )
            for n in names
        ],
        dtype=np.int8,
    )


@dataclass(frozen=True, slots=True)
class ClassMap:
    """How a detector's classes become kinds and NMS groups.

    ``names`` is the model's class list by class id (COCO-80 by default; read from the model's
    metadata otherwise). Each class maps to an ``ObjectKind`` by name (:data:`NAME_KINDS`,
    ``kind_overrides`` first); a name we do not know gets ``other_kind`` (default OTHER) and
    stays its own class. ``kind_of`` maps class id → kind (int8). ``nms_group`` maps class id →
    NMS group: every class is its own group except the motor-vehicle classes, which share one
    group when ``merge_vehicle_nms`` is set, so a white van cannot be reported both as a bus and
    a truck. ``allowed`` is the classes reported when other classes are not kept: every class
    with a traffic kind, plus every class of a custom (non-COCO) list.
    """

    motorcycle_is_non_motor: bool = True
    merge_vehicle_nms: bool = True
    names: tuple[str, ...] = COCO80_NAMES
    kind_overrides: Mapping[str, ObjectKind] = field(default_factory=dict)
    other_kind: ObjectKind = ObjectKind.OTHER
    kind_of: NDArray[np.int8] = field(init=False, repr=False)
    nms_group: NDArray[np.int64] = field(init=False, repr=False)
    allowed: NDArray[np.bool_] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        kinds = kind_table(
            self.motorcycle_is_non_motor, self.names, self.kind_overrides, self.other_kind
        )
        groups = np.arange(len(self.names), dtype=np.int64)
        vehicles = np.flatnonzero(kinds == ObjectKind.MOTOR_VEHICLE)
        if self.merge_vehicle_nms and vehicles.size:
            groups[vehicles] = vehicles.min()
        coco = set(COCO80_NAMES)
        custom = np.array([n not in coco for n in self.names], dtype=np.bool_)
        object.__setattr__(self, "kind_of", kinds)
        object.__setattr__(self, "nms_group", groups)
        object.__setattr__(self, "allowed", (kinds != int(ObjectKind.OTHER)) | custom)

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
    return tuple(ObjectKind(int(k)) for k in kind_table(motorcycle_is_non_motor))
