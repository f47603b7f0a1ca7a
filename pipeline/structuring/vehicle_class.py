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
goods (truck) — and, with no plate read, the project's default code for its class (K30, K11,
H11: the class COCO gives; a COCO car is a saloon, an SUV or an MPV alike, so its code is the
small passenger group K30, not K33 小型轿车). Near-field cars at a checkpoint are often called
bus or truck (the Beijing clip: each of its 7 plated cars on some of its detections), so with a
plate read its size comes from the plate, and its category only while the detector's class is
stable on the track: the class by frames (the event's) and the tracker's score-weighted class at
the end must be the same class, or its category is not known.

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

**The track's class votes** (``Tracks.class_votes``: the confidences of the track's detections
summed per class over its whole life), where the stage has them, replace the stable / unstable
test under a small plate. A small plate rules a class out (:data:`RULED_OUT`): COCO's ``bus``
is a vehicle of 10 or more seats — medium or large (GA 802), never on a blue plate — so its
votes are dropped and the best remaining class is taken when it is clear: it holds more than
half of the votes left (:data:`CLEAR_SHARE`) and those votes are not a trace next to the
dropped ones (:data:`MIN_REST_SHARE` of the track's votes). Then a car is ``K30`` and a truck
the light-goods group ``H30``; a track the detector called bus on (nearly) all of its
detections keeps the bus's category (``K30``); evidence split with no clear winner is ``X99``.
Truck is not ruled out: light goods vehicles (pickups, vans) are COCO trucks on blue plates.
Under a large plate the size is open whatever the votes say, so it stays ``X99``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "CLEAR_SHARE",
    "MIN_REST_SHARE",
    "RULED_OUT",
    "ClassDecision",
    "PlateSize",
    "decide_vehicle_class",
    "plate_size",
]

UNKNOWN = "X99"
SMALL_PASSENGER = "K30"  # 小型客车 (GA/T 16.4-2012 group code)
LIGHT_GOODS = "H30"  # 轻型货车
SMALL_CAR = SMALL_PASSENGER  # the project's code for COCO "car" (models.classes): saloons,
# SUVs and MPVs are all COCO cars, so the group, not K33 小型轿车 (round 28)
NEV_MARKS = frozenset("DF")  # 纯电动 / 非纯电动 (GA 36-2018 new-energy serials)
COACH_MARK = "学"  # 教练汽车号牌: any size

# The detector's class → GA/T 16.4 category letter (K passenger, H goods).
CATEGORY: dict[str, str] = {"car": "K", "bus": "K", "truck": "H"}


class PlateSize(enum.Enum):
    """The size group a plate allows (GA 36-2018)."""

    SMALL = "small"  # below medium: K3x/K4x passenger, H3x/H4x goods
    LARGE = "large"  # medium or larger: K1x/K2x passenger, H1x/H2x goods


RULED_OUT: Mapping[PlateSize, frozenset[str]] = {
    PlateSize.SMALL: frozenset({"bus"}),  # ≥ 10 seats: medium or large (GA 802)
    PlateSize.LARGE: frozenset({"car"}),  # ≤ 9 seats: small
}
"""The detector classes a plate's size group rules out."""
CLEAR_SHARE = 0.5
"""The best class left must hold more than this share of the votes left: a majority."""
MIN_REST_SHARE = 0.2
"""The votes left must be at least this share of all the track's votes; below it, what is left
is a few stray detections and the track is the ruled-out class's category, size from the plate."""


@dataclass(frozen=True, slots=True)
class ClassDecision:
    """The GA/T 16.4 code (None when the detector gave none) and what it rests on."""

    code: str | None
    basis: str
    class_name: str | None = None  # the detector class the evidence settled on (None: as said)


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
    votes: Mapping[str, float] | None = None,
) -> ClassDecision:
    """The code of a vehicle the detector called ``class_name`` (default code ``class_code``)
    whose plate allows ``size`` (see the module docstring's table). ``detector_stable``: the
    detector's class by frames and by score agree on the track. ``votes``: the track's class
    votes by class name (see the module docstring); when given, they decide the class under a
    small plate and ``detector_stable`` is not used."""
    name = (class_name or "").lower()
    category = CATEGORY.get(name)
    if category is None or size is None:
        return ClassDecision(class_code, "detector")
    if size is PlateSize.LARGE:
        if name == "car":
            return ClassDecision(UNKNOWN, "conflict: large plate on a car")
        return ClassDecision(UNKNOWN, "size open: large plate is medium or larger")
    weights = {k.lower(): w for k, w in (votes or {}).items() if w > 0}
    if any(k in CATEGORY for k in weights):
        return _small_from_votes(weights)
    if not detector_stable:
        return ClassDecision(UNKNOWN, "category open: detector's class unstable")
    if name == "car":
        return ClassDecision(class_code, "detector, small plate agrees")
    group = SMALL_PASSENGER if category == "K" else LIGHT_GOODS
    return ClassDecision(group, "small plate, detector's category")


def _small_code(name: str) -> str:
    """The code of a vehicle of detector class ``name`` under a small plate."""
    if name == "car":
        return SMALL_CAR
    return SMALL_PASSENGER if CATEGORY[name] == "K" else LIGHT_GOODS


def _shares(weights: Mapping[str, float], total: float) -> str:
    return ", ".join(
        f"{k} {w / total:.2f}" for k, w in sorted(weights.items(), key=lambda kv: -kv[1])
    )


def _small_from_votes(weights: Mapping[str, float]) -> ClassDecision:
    """The code under a small plate from the track's votes by class name (some on car, bus or
    truck): the ruled-out classes dropped, the best one left if clear."""
    total = sum(weights.values())
    out = RULED_OUT[PlateSize.SMALL]
    dropped = {k: w for k, w in weights.items() if k in out}
    rest = {k: w for k, w in weights.items() if k not in out}
    rest_total = sum(rest.values())
    said = f"votes {_shares(weights, total)}"
    if rest_total < MIN_REST_SHARE * total:  # (nearly) all on a ruled-out class
        best = max(dropped, key=dropped.__getitem__)
        return ClassDecision(
            _small_code(best),
            f"small plate rules out {best}, its category stands ({said})",
            best,
        )
    best = max(rest, key=rest.__getitem__)
    share = rest[best] / rest_total
    ruled = f"small plate rules out {', '.join(sorted(dropped))}; " if dropped else ""
    if share <= CLEAR_SHARE or best not in CATEGORY:
        return ClassDecision(
            UNKNOWN, f"category open: {ruled}no class holds most of the rest ({said})"
        )
    return ClassDecision(_small_code(best), f"{ruled}{best} {share:.2f} of the rest ({said})", best)
