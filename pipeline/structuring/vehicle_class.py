"""The GA/T 16.4 vehicle-type code (GA/T 1400 ``VehicleClass``) of a checkpoint track.

Decided from evidence that holds on any camera, never from a threshold fitted to one:

* **The plate's colour is a legal constraint.** GA 36-2018 (《中华人民共和国机动车号牌》) gives
  the blue 小型汽车号牌 (white characters) to motor vehicles below medium size — small and mini
  passenger vehicles, light and mini goods vehicles — and the yellow 大型汽车号牌 (black
  characters; the front plate) to medium and larger passenger, goods and special-purpose
  vehicles. New-energy vehicles carry 8-character green plates: the small ones' gradient green
  小型新能源汽车号牌 has D (battery-electric) or F (other new energy) as the *first* character of
  its serial (``京AD12345``), the large ones' yellow-green 大型新能源汽车号牌 as the *last*
  (``京A12345D``). The recogniser says "green" for both; the position of D/F tells them apart.
  Yellow is also the colour of the coach-car plate (教练汽车号牌, serial ending 学) fitted to
  learner cars of any size, so a yellow 学 plate bounds nothing.
* **Size classes** (GA 802, 机动车类型 术语和定义): a large passenger vehicle is ≥ 6 m long or
  seats ≥ 20, a medium one < 6 m with 10–19 seats, a small one < 6 m with ≤ 9 seats; goods
  vehicles are heavy (≥ 12 t), medium (4.5–12 t), light (< 6 m, < 4.5 t), mini. A front view
  shows neither length nor seats, so a yellow plate ("medium or larger") leaves the size open.
* **Codes** (GA/T 16.4-2012, 机动车车辆类型代码): three characters, the first the category
  (K passenger, H goods, …, X other), the next two the type; ``K30`` 小型客车 and ``H30`` 轻型
  货车 are the group codes of the small passenger and light goods types (``K31`` 小型普通客车,
  ``K33`` 小型轿车, ``H31`` 轻型普通货车 … are narrower). No code spans two size groups.

The detector (COCO ``car`` / ``bus`` / ``truck``) gives the category — passenger (car, bus) or
goods (truck) — and, with no plate read, the project's default code for its class (K33, K11,
H11: the class COCO gives). Near-field cars at a checkpoint are often called bus or truck (the
Beijing clip: each of its 7 plated cars on some of its detections), so with a plate read its size
comes from the plate, and its category only while the detector's class is stable on the track:
the class by frames (the event's) and the tracker's score-weighted class at the end must be
the same class, or its category is not known.

====================  ===========  ===========  ===========  =======================
plate                 car          bus          truck        detector classes differ
====================  ===========  ===========  ===========  =======================
none read / no bound  detector's   detector's   detector's   detector's
small (blue, NEV-D…)  detector's   K30          H30          X99
large (yellow, …D)    X99          X99          X99          X99
====================  ===========  ===========  ===========  =======================

``X99`` (其他) is the project's "not known" (:data:`sharpeyes.models.classes.UNKNOWN_VEHICLE_CODE`):
stated where the evidence conflicts (a "car" with a yellow plate) or cannot pick one GA/T code
(a yellow-plated bus is medium *or* large). Other detector classes (motorcycle …) keep theirs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["ClassDecision", "PlateSize", "decide_vehicle_class", "plate_size"]

UNKNOWN = "X99"
SMALL_PASSENGER = "K30"  # 小型客车 (GA/T 16.4-2012 group code)
LIGHT_GOODS = "H30"  # 轻型货车
NEV_MARKS = frozenset("DF")  # 纯电动 / 非纯电动 (GA 36-2018 new-energy serials)
COACH_MARK = "学"  # 教练汽车号牌: any size

# The detector's class → GA/T 16.4 category letter (K passenger, H goods).
CATEGORY: dict[str, str] = {"car": "K", "bus": "K", "truck": "H"}


class PlateSize(enum.Enum):
    """The size group a plate allows (GA 36-2018)."""

    SMALL = "small"  # below medium: K3x/K4x passenger, H3x/H4x goods
    LARGE = "large"  # medium or larger: K1x/K2x passenger, H1x/H2x goods


@dataclass(frozen=True, slots=True)
class ClassDecision:
    """The GA/T 16.4 code (None when the detector gave none) and what it rests on."""

    code: str | None
    basis: str


def plate_size(color: str | None, text: str | None) -> PlateSize | None:
    """The size group a fully read plate allows, or None when its colour bounds nothing
    (white police, black embassy / Hong Kong / Macau plates, a yellow coach plate, a green
    plate whose serial does not say small or large)."""
    if not text or color is None:
        return None
    if color == "blue":
        return PlateSize.SMALL
    if color == "yellow":
        return None if text.endswith(COACH_MARK) else PlateSize.LARGE
    if color == "green" and len(text) == 8:
        first, last = text[2] in NEV_MARKS, text[-1] in NEV_MARKS
        if first != last:
            return PlateSize.SMALL if first else PlateSize.LARGE
    return None


def decide_vehicle_class(
    class_name: str | None,
    class_code: str | None,
    size: PlateSize | None,
    *,
    detector_stable: bool = True,
) -> ClassDecision:
    """The code of a vehicle the detector called ``class_name`` (default code ``class_code``)
    whose plate allows ``size`` (see the module docstring's table). ``detector_stable``: the
    detector's class by frames and by score agree on the track."""
    name = (class_name or "").lower()
    category = CATEGORY.get(name)
    if category is None or size is None:
        return ClassDecision(class_code, "detector")
    if size is PlateSize.LARGE:
        if name == "car":
            return ClassDecision(UNKNOWN, "conflict: large plate on a car")
        return ClassDecision(UNKNOWN, "size open: large plate is medium or larger")
    if not detector_stable:
        return ClassDecision(UNKNOWN, "category open: detector's class unstable")
    if name == "car":
        return ClassDecision(class_code, "detector, small plate agrees")
    group = SMALL_PASSENGER if category == "K" else LIGHT_GOODS
    return ClassDecision(group, "small plate, detector's category")
