"""Signalised-intersection calibration (relative 0–1 coordinates, validated).

Everything the red-light rules and the signal reader need to know about one intersection as one
camera sees it. Coordinates are fractions of the frame width/height, so one calibration serves
every resolution of the same view. The structure::

    intersection:
      signal_groups: [{id: main, source: video}]    # phases and where they come from
      signal_heads:  [{id: h1, group: main, region: [[x1, y1], [x2, y2]], layout: vertical}]
      approaches:
        - id: north
          direction: northbound
          stop_line: [[x, y], [x, y]]
          entry_line: [[x, y], [x, y]]                     # "entered the intersection"
          lanes:
            - {id: n1, number: 1, polygon: [[x, y], ...], travel: [[x, y], [x, y]],
               movements: {straight: main, left: main}}
      crosswalks: [{id: c1, polygon: [...], axis: [[x, y], [x, y]], signal_group: ped}]
      exemptions: [{movement: right, lanes: [n2]}]
      # optional, one block per violation rule (off when absent; docs/VIOLATIONS.md):
      wrong_way: {zones: [{id: exit, polygon: [...], travel: [[x, y], [x, y]]}]}
      lane_direction: {}                               # judged on the lanes' movements
      no_turn: {prohibited: [{movement: left, approach: north,
                              windows: [{start: "07:00", end: "09:00"}]}]}
      solid_lines: {lines: [{id: s1, points: [[x, y], [x, y], ...]}]}
      parking: {zones: [{id: curb, polygon: [...]}], dwell_s: 60}
      yield_to_pedestrians: {unsignalised: [c2]}

Validation errors name the path (``intersection.approaches.0.lanes.1.movements: …``).
"""

from __future__ import annotations

import enum
import itertools
import math
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from sharpeyes.pipeline.types import Anchor, ObjectKind


def _unit(v: float) -> float:
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"coordinate {v} is outside the frame (relative coordinates are 0–1)")
    return v


Unit = Annotated[float, AfterValidator(_unit)]
Point = tuple[Unit, Unit]
"""A point ``(x, y)`` as fractions of the frame width and height."""
Line = tuple[Point, Point]
"""A line segment between two points."""
Polygon = Annotated[list[Point], Field(min_length=3)]
"""A simple polygon, at least three points, in order."""


def _box_ok(v: tuple[Point, Point]) -> tuple[Point, Point]:
    (x1, y1), (x2, y2) = v
    if not (x2 > x1 and y2 > y1):
        raise ValueError(
            f"box {v} must be [[left, top], [right, bottom]] with right>left, bottom>top"
        )
    return v


RelBox = Annotated[tuple[Point, Point], AfterValidator(_box_ok)]


def _line_ok(v: Line) -> Line:
    if v[0] == v[1]:
        raise ValueError(f"line {v} has two equal end points")
    return v


NonDegenerateLine = Annotated[Line, AfterValidator(_line_ok)]


class Movement(enum.StrEnum):
    """What a vehicle does at the intersection (relative to its approach)."""

    STRAIGHT = "straight"
    LEFT = "left"
    RIGHT = "right"
    U_TURN = "u_turn"


LampName = Literal["red", "amber", "green"]
VehicleKindName = Literal["motor_vehicle", "non_motor"]


def _default_lamps() -> list[LampName]:
    return ["red", "amber", "green"]


def _default_kinds() -> list[VehicleKindName]:
    return ["motor_vehicle"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignalGroup(Strict):
    """A signal group (phase): one or more heads that always show the same colour."""

    id: str = Field(min_length=1, max_length=64, description="Group id referenced by lanes.")
    kind: Literal["vehicle", "pedestrian"] = Field(
        "vehicle", description="Vehicle signal or pedestrian signal."
    )
    source: Literal["video", "external", "external_then_video"] = Field(
        "video",
        description="Where the phase comes from: video heads, the external phase input "
        "(signal controller / detector), or external with video as fallback when the external "
        "input has not spoken yet or is stale.",
    )
    external_timeout_s: float = Field(
        300.0,
        ge=0.0,
        description="Seconds without a controller message after which the external phase is "
        "stale: the group is unknown (no red-light rule runs on it; external_then_video falls "
        "back to the video) and the stream's signal_problems says so. A controller that reports "
        "changes only sends one at least every cycle (a few minutes at most), hence 300 s. "
        "0 = never stale.",
    )


class SignalHead(Strict):
    """One physical signal head visible in the image."""

    id: str = Field(min_length=1, max_length=64, description="Head id (unique).")
    group: str = Field(description="The signal group this head shows.")
    region: RelBox = Field(
        description="Box [[left, top], [right, bottom]] around the lamps only (not the "
        "countdown digits beside the head)."
    )
    layout: Literal["vertical", "horizontal", "single"] = Field(
        "vertical",
        description="How lamps are arranged inside the region: vertical (top→bottom), "
        "horizontal (left→right), or single (one lamp that changes colour; read by hue only).",
    )
    lamps: list[LampName] = Field(
        default_factory=_default_lamps,
        description="Colours of the lamps in layout order (e.g. [red, green] for a two-lamp head).",
    )
    min_lit_fraction: float = Field(
        0.06,
        gt=0.0,
        le=1.0,
        description="Fraction of a lamp cell that must be lit in the lamp's hue to call it on.",
    )
    min_value: int = Field(
        140, ge=0, le=255, description="HSV value (brightness) at or above which a pixel is lit."
    )
    min_saturation: int = Field(
        90, ge=0, le=255, description="HSV saturation at or above which a lit pixel has a hue."
    )

    @model_validator(mode="after")
    def _lamps_unique(self) -> Self:
        if len(set(self.lamps)) != len(self.lamps) or not self.lamps:
            raise ValueError(f"lamps {self.lamps}: list each colour once, at least one")
        return self


class Lane(Strict):
    """One lane of an approach, as a polygon up to (and a little past) the stop line."""

    id: str = Field(min_length=1, max_length=64, description="Lane id (unique).")
    number: int = Field(ge=1, le=16, description="Lane number, 1 = leftmost in driving direction.")
    polygon: Polygon = Field(description="Lane area before the stop line (relative points).")
    travel: NonDegenerateLine = Field(
        description="Direction of travel: a segment from a point upstream to a point downstream."
    )
    movements: dict[Movement, str] = Field(
        description="Allowed movements and the signal group that governs each one "
        "(e.g. {straight: main, right: main})."
    )

    @model_validator(mode="after")
    def _has_group(self) -> Self:
        if not self.movements:
            raise ValueError(
                f"lane {self.id!r} has no movements: give each allowed movement its signal group"
            )
        return self


class Approach(Strict):
    """One approach (arm) of the intersection, with its stop line and lanes."""

    id: str = Field(min_length=1, max_length=64, description="Approach id (unique).")
    direction: str = Field(
        "", max_length=64, description="Direction of travel shown on evidence (e.g. 北向南)."
    )
    stop_line: NonDegenerateLine = Field(description="The stop line (停止线) of this approach.")
    entry_line: NonDegenerateLine | None = Field(
        None,
        description="'Entered the intersection' line past the stop line (e.g. the far edge of "
        "the crosswalk); either this or the intersection's zone must be set.",
    )
    lanes: list[Lane] = Field(min_length=1, description="Lanes of this approach.")


class Crosswalk(Strict):
    """A pedestrian crossing governed by a pedestrian signal group."""

    id: str = Field(min_length=1, max_length=64, description="Crosswalk id (unique).")
    polygon: Polygon = Field(description="The zebra area (relative points).")
    axis: NonDegenerateLine = Field(
        description="Crossing direction: a segment from one kerb to the other (either way counts)."
    )
    signal_group: str = Field(description="Pedestrian signal group governing this crosswalk.")
    min_progress: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="Fraction of the axis a person must advance inside the crosswalk on red.",
    )


ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
"""A time of day, ``HH:MM`` (24-hour)."""


class TimeWindow(Strict):
    """A daily window in local (Beijing) time, ``HH:MM``; end before start wraps midnight."""

    start: ClockTime = Field(description="Start, HH:MM.")
    end: ClockTime = Field(description="End, HH:MM.")


class Exemption(Strict):
    """A movement that may proceed on red (e.g. right turn), on some lanes, in some windows."""

    movement: Movement = Field(description="The exempt movement.")
    lanes: list[str] = Field(
        default_factory=list, description="Lane ids it applies to; empty = every lane."
    )
    windows: list[TimeWindow] = Field(
        default_factory=list, description="Daily windows it applies in; empty = always."
    )


Code = Annotated[str, Field(pattern=r"^\d{4,5}$")]
"""A traffic-violation code (4-digit, or the 5-digit form with a trailing digit)."""


class ViolationRuleConfig(Strict):
    """What every non-red-light violation rule shares: its code and the exempt classes."""

    exempt_class_ids: list[int] = Field(
        default_factory=list,
        description="Detector class ids never charged by this rule (e.g. a model's ambulance, "
        "fire-engine or police-car classes when emergency vehicles are exempt).",
    )


class TravelZone(Strict):
    """A stretch of road (beyond the approach lanes) with one legal direction of travel."""

    id: str = Field(min_length=1, max_length=64, description="Zone id (unique).")
    polygon: Polygon = Field(description="The carriageway area (relative points).")
    travel: NonDegenerateLine = Field(
        description="Legal direction of travel: upstream point → downstream point."
    )


class WrongWayConfig(ViolationRuleConfig):
    """Wrong-way driving (逆行): sustained motion against a lane's or zone's travel direction."""

    code: Code = Field("1301", description="Violation code (机动车逆向行驶的: 1301).")
    use_lanes: bool = Field(
        True, description="Watch the approach lanes (their travel) as well as the zones."
    )
    zones: list[TravelZone] = Field(
        default_factory=list, description="Extra one-way stretches watched for wrong-way driving."
    )
    min_distance: float = Field(
        0.06,
        gt=0.0,
        le=1.0,
        description="Distance (fraction of frame diagonal) a vehicle must travel against the "
        "direction, net, inside the lane/zone before it is charged.",
    )
    max_angle_deg: float = Field(
        45.0,
        gt=0.0,
        lt=90.0,
        description="The net motion must lie within this angle of the reverse travel direction.",
    )


class LaneDirectionConfig(ViolationRuleConfig):
    """Not following the lane's direction (不按导向车道行驶): the movement made after the stop
    line is not among the lane's allowed ``movements``."""

    code: Code = Field("1208", description="Violation code (不按所需行进方向驶入导向车道的: 1208).")
    lanes: list[str] = Field(
        default_factory=list, description="Lane ids watched; empty = every lane."
    )
    u_turn_with_left: bool = Field(
        True,
        description="A U-turn from a lane that allows a left turn is allowed (where no sign "
        "forbids it, 实施条例 art. 49).",
    )
    margin_deg: float = Field(
        10.0,
        ge=0.0,
        lt=40.0,
        description="The heading must clear the turn threshold by this many degrees (either "
        "way) before a movement is charged; in between it is uncertain and never charged.",
    )


class ProhibitedMovement(Strict):
    """A movement a sign prohibits on an approach (or some of its lanes), in time windows."""

    movement: Movement = Field(description="The prohibited movement (e.g. left).")
    approach: str = Field(description="Approach id the sign governs.")
    lanes: list[str] = Field(
        default_factory=list, description="Lane ids it applies to; empty = every lane."
    )
    windows: list[TimeWindow] = Field(
        default_factory=list, description="Daily windows (Beijing time); empty = always."
    )


class NoTurnConfig(ViolationRuleConfig):
    """Prohibited movements by sign (违反禁令标志), e.g. no left turn 07:00–09:00."""

    code: Code = Field("1344", description="Violation code (违反禁令标志指示的: 1344).")
    prohibited: list[ProhibitedMovement] = Field(
        min_length=1, description="The prohibited movements."
    )
    left_includes_u_turn: bool = Field(
        True,
        description="A no-left-turn sign also forbids U-turns (实施条例 art. 49: no U-turn where "
        "a no-U-turn or no-left-turn sign or marking is set).",
    )
    margin_deg: float = Field(
        10.0,
        ge=0.0,
        lt=40.0,
        description="The heading must clear the turn threshold by this many degrees.",
    )


class SolidLine(Strict):
    """A solid lane line (实线) as a polyline in relative points."""

    id: str = Field(min_length=1, max_length=64, description="Line id (unique).")
    points: list[Point] = Field(min_length=2, description="The polyline, in order.")


class SolidLineConfig(ViolationRuleConfig):
    """Crossing a solid line (压实线 / 违法变道) while changing lanes."""

    code: Code = Field("1345", description="Violation code (违反禁止标线指示的: 1345).")
    lines: list[SolidLine] = Field(min_length=1, description="The solid lines watched.")
    margin: float = Field(
        0.008,
        gt=0.0,
        le=0.1,
        description="A side counts once the wheel-line centre is this far (fraction of frame "
        "diagonal) from the line, so jitter along a line never flips it.",
    )
    confirm_frames: int = Field(
        3, ge=1, le=30, description="Analysed frames on each side that confirm a crossing."
    )


class NoParkingZone(Strict):
    """An area where stopping is prohibited (禁停区), optionally only in time windows."""

    id: str = Field(min_length=1, max_length=64, description="Zone id (unique).")
    polygon: Polygon = Field(description="The no-parking area (relative points).")
    windows: list[TimeWindow] = Field(
        default_factory=list, description="Daily windows (Beijing time); empty = always."
    )
    dwell_s: float | None = Field(
        None, gt=0.0, le=3600.0, description="Dwell for this zone; None = the rule's dwell."
    )


class ParkingConfig(ViolationRuleConfig):
    """Illegal parking (违法停车): stationary in a no-parking zone longer than a dwell."""

    code: Code = Field("1039", description="Violation code (违反规定停放、临时停车: 1039).")
    zones: list[NoParkingZone] = Field(min_length=1, description="No-parking zones.")
    dwell_s: float = Field(
        60.0, gt=0.0, le=3600.0, description="Seconds stationary before a stop is charged."
    )
    still_radius: float = Field(
        0.01,
        gt=0.0,
        le=0.2,
        description="A vehicle whose anchor stays within this distance (fraction of frame "
        "diagonal) of where it stopped is stationary; moving further starts a new stop.",
    )
    jam_min_stopped: int = Field(
        3,
        ge=2,
        le=100,
        description="When at least this many vehicles stand in the zone and none moves, it is "
        "a jam: the dwell clock pauses.",
    )


class YieldConfig(ViolationRuleConfig):
    """Not yielding to pedestrians at a crosswalk (不礼让斑马线行人)."""

    code: Code = Field("1357", description="Violation code (行经人行横道未避让行人: 1357).")
    crosswalks: list[str] = Field(
        default_factory=list, description="Crosswalk ids watched; empty = every crosswalk."
    )
    unsignalised: list[str] = Field(
        default_factory=list,
        description="Crosswalk ids without a pedestrian signal: watched whatever their group "
        "shows. The others are watched while their pedestrian group is green.",
    )
    min_speed: float = Field(
        0.03,
        gt=0.0,
        le=1.0,
        description="A vehicle moving slower than this (fraction of the frame diagonal per "
        "second) is yielding, not passing.",
    )
    conflict_distance: float = Field(
        0.08,
        gt=0.0,
        le=1.0,
        description="A pedestrian on the crosswalk within this distance (fraction of frame "
        "diagonal, along the crossing axis) of the vehicle's path is in conflict.",
    )


class IntersectionCalibration(Strict):
    """Calibration of one signalised intersection as seen by one camera."""

    signal_groups: list[SignalGroup] = Field(min_length=1, description="Signal groups (phases).")
    signal_heads: list[SignalHead] = Field(
        default_factory=list, description="Signal heads read from the video."
    )
    approaches: list[Approach] = Field(
        default_factory=list, description="Approaches watched for red-light running."
    )
    intersection_zone: Polygon | None = Field(
        None, description="The intersection box; entering it counts as 'entered the intersection'."
    )
    crosswalks: list[Crosswalk] = Field(
        default_factory=list, description="Crosswalks watched for pedestrian red-light running."
    )
    exemptions: list[Exemption] = Field(
        default_factory=list, description="Movements allowed on red (right turn etc.)."
    )
    anchor: Anchor = Field(
        Anchor.BOTTOM_CENTER, description="Box point that stands for a vehicle's position."
    )
    vehicle_kinds: list[VehicleKindName] = Field(
        default_factory=_default_kinds,
        description="Object kinds the vehicle red-light rule applies to.",
    )
    violation_code: Code = Field(
        "1625",
        description="Violation behaviour code for vehicles (GA 408.1: 1625 / 16250).",
    )
    pedestrian_code: Code = Field(
        "8901",
        description="Code recorded for pedestrian violations: GA 408.1 lists motor-vehicle "
        "behaviours only; pedestrians are dealt with under Road Traffic Safety Law art. 89 "
        "(warning or 5–50 RMB), so 8901 is a local code — set the one your platform uses.",
    )
    line_margin: float = Field(
        0.004,
        ge=0.0,
        le=0.1,
        description="Hysteresis band around lines (fraction of frame diagonal): a crossing counts "
        "once the anchor is this far past, so box jitter on the line does not flip it.",
    )
    confirm_frames: int = Field(
        2,
        ge=1,
        le=10,
        description="Analysed frames past the stop line needed to confirm a crossing.",
    )
    min_displacement: float = Field(
        0.04,
        ge=0.0,
        le=1.0,
        description="Distance past the stop line (fraction of frame diagonal) for evidence "
        "image 3.",
    )
    turn_angle_deg: float = Field(
        35.0, gt=5.0, lt=90.0, description="Heading change that counts as a turn (left/right)."
    )
    stale_track_s: float = Field(
        3.0, gt=0.0, le=120.0, description="Per-track state is dropped after this long unseen."
    )
    entry_extrapolation_s: float = Field(
        0.5,
        ge=0.0,
        le=2.0,
        description=(
            "A track lost after crossing the stop line on red, still moving forward, counts as "
            "having reached the entry line when its last second of motion carries it over the "
            "line within this time (the evidence says so: image 3 is its last sighting). "
            "0 = only a track seen past the entry line."
        ),
    )

    wrong_way: WrongWayConfig | None = Field(
        None, description="Wrong-way driving (逆行); None = not watched."
    )
    lane_direction: LaneDirectionConfig | None = Field(
        None, description="Not following the lane's direction (不按导向车道); None = off."
    )
    no_turn: NoTurnConfig | None = Field(
        None, description="Movements prohibited by sign (违反禁令标志); None = off."
    )
    solid_lines: SolidLineConfig | None = Field(
        None, description="Solid lane lines (压实线); None = off."
    )
    parking: ParkingConfig | None = Field(
        None, description="No-parking zones (违法停车); None = off."
    )
    yield_to_pedestrians: YieldConfig | None = Field(
        None, description="Yielding to pedestrians on crosswalks (礼让行人); None = off."
    )

    @model_validator(mode="after")
    def _check_references(self) -> Self:
        _unique("signal_groups", [g.id for g in self.signal_groups])
        _unique("signal_heads", [h.id for h in self.signal_heads])
        _unique("approaches", [a.id for a in self.approaches])
        _unique("lanes", [ln.id for a in self.approaches for ln in a.lanes])
        _unique("crosswalks", [c.id for c in self.crosswalks])
        groups = {g.id: g for g in self.signal_groups}
        headed = {h.group for h in self.signal_heads}
        for i, head in enumerate(self.signal_heads):
            if head.group not in groups:
                raise ValueError(f"signal_heads.{i}.group: unknown signal group {head.group!r}")
        for g_i, g in enumerate(self.signal_groups):
            if g.source != "external" and g.id not in headed:
                raise ValueError(
                    f"signal_groups.{g_i}: group {g.id!r} reads its phase from video "
                    "but has no signal head (add a head or set source: external)"
                )
        self._check_lanes(groups)
        for c_i, cw in enumerate(self.crosswalks):
            if cw.signal_group not in groups:
                raise ValueError(
                    f"crosswalks.{c_i}.signal_group: unknown signal group {cw.signal_group!r}"
                )
        lane_ids = {ln.id for a in self.approaches for ln in a.lanes}
        for e_i, ex in enumerate(self.exemptions):
            for lane_id in ex.lanes:
                if lane_id not in lane_ids:
                    raise ValueError(f"exemptions.{e_i}.lanes: unknown lane {lane_id!r}")
        return self

    @model_validator(mode="after")
    def _check_violation_rules(self) -> Self:
        lanes_of = {a.id: {ln.id for ln in a.lanes} for a in self.approaches}
        if self.lane_direction is not None:
            _known("lane_direction.lanes", "lane", self.lane_direction.lanes, _flat(lanes_of))
        if self.no_turn is not None:
            _check_no_turn(self.no_turn, lanes_of)
        if self.wrong_way is not None:
            _unique("wrong_way.zones", [z.id for z in self.wrong_way.zones])
        if self.solid_lines is not None:
            _unique("solid_lines.lines", [ln.id for ln in self.solid_lines.lines])
        if self.parking is not None:
            _unique("parking.zones", [z.id for z in self.parking.zones])
        if self.yield_to_pedestrians is not None:
            cw_ids = {c.id for c in self.crosswalks}
            _known(
                "yield_to_pedestrians.crosswalks",
                "crosswalk",
                self.yield_to_pedestrians.crosswalks,
                cw_ids,
            )
            _known(
                "yield_to_pedestrians.unsignalised",
                "crosswalk",
                self.yield_to_pedestrians.unsignalised,
                cw_ids,
            )
        return self

    def _check_lanes(self, groups: dict[str, SignalGroup]) -> None:
        for a_i, ap in enumerate(self.approaches):
            if ap.entry_line is None and self.intersection_zone is None:
                raise ValueError(
                    f"approaches.{a_i}.entry_line: set an entry line or intersection_zone"
                )
            beyond = _beyond(ap, self.intersection_zone)
            for l_i, lane in enumerate(ap.lanes):
                _check_travel(f"approaches.{a_i}.lanes.{l_i}.travel", ap, lane, beyond)
                for mv, gid in lane.movements.items():
                    if gid not in groups:
                        raise ValueError(
                            f"approaches.{a_i}.lanes.{l_i}.movements.{mv.value}: "
                            f"unknown signal group {gid!r}"
                        )
        all_lanes = [
            (f"approaches.{a_i}.lanes.{l_i}", lane)
            for a_i, ap in enumerate(self.approaches)
            for l_i, lane in enumerate(ap.lanes)
        ]
        for (path_a, la), (path_b, lb) in itertools.combinations(all_lanes, 2):
            if _polygons_overlap(la.polygon, lb.polygon):
                raise ValueError(
                    f"{path_b}.polygon: lane {lb.id!r} overlaps lane {la.id!r} ({path_a})"
                )

    def group(self, group_id: str) -> SignalGroup:
        """The signal group with this id (KeyError when unknown)."""
        for g in self.signal_groups:
            if g.id == group_id:
                return g
        raise KeyError(group_id)

    def object_kinds(self) -> tuple[ObjectKind, ...]:
        """The :class:`ObjectKind` values the vehicle rule applies to."""
        return tuple(ObjectKind[k.upper()] for k in self.vehicle_kinds)


def _cross(o: Point, a: Point, b: Point) -> float:
    """z of (a − o) × (b − o): its sign says on which side of o→a the point b lies. Relative
    coordinates scale x and y by the (positive) frame size, which keeps this sign."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _beyond(ap: Approach, zone: list[Point] | None) -> Point | None:
    """A point past the approach's stop line: its entry line's middle, else the zone's."""
    if ap.entry_line is not None:
        (x1, y1), (x2, y2) = ap.entry_line
        return ((x1 + x2) / 2, (y1 + y2) / 2)
    if zone:
        return (sum(x for x, _ in zone) / len(zone), sum(y for _, y in zone) / len(zone))
    return None


def _check_travel(path: str, ap: Approach, lane: Lane, beyond: Point | None) -> None:
    """A lane's travel must run across its stop line towards the entry line (or zone): a
    reversed travel, or stop and entry lines swapped, would make the rules watch the wrong
    side of the line and charge nobody — silently."""
    a, b = ap.stop_line
    (t0x, t0y), (t1x, t1y) = lane.travel
    ahead = _cross(a, b, (a[0] + t1x - t0x, a[1] + t1y - t0y))
    length = math.hypot(b[0] - a[0], b[1] - a[1]) * math.hypot(t1x - t0x, t1y - t0y)
    if abs(ahead) < 0.1 * length:
        raise ValueError(f"{path}: runs along the stop line, not across it")
    if beyond is not None and (_cross(a, b, beyond) > 0) != (ahead > 0):
        raise ValueError(
            f"{path}: points away from the entry line — traffic must reach the stop line "
            "first and the entry line (or intersection zone) past it, and travel must run "
            "from upstream to downstream (are the lines swapped, or the travel reversed?)"
        )


def _unique(field: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"{field}: id {i!r} is used twice")
        seen.add(i)


def _flat(lanes_of: dict[str, set[str]]) -> set[str]:
    return {lane for lanes in lanes_of.values() for lane in lanes}


def _known(path: str, what: str, ids: list[str], known: set[str]) -> None:
    for i in ids:
        if i not in known:
            raise ValueError(f"{path}: unknown {what} {i!r}")


def _check_no_turn(cfg: NoTurnConfig, lanes_of: dict[str, set[str]]) -> None:
    for p_i, pm in enumerate(cfg.prohibited):
        path = f"no_turn.prohibited.{p_i}"
        if pm.approach not in lanes_of:
            raise ValueError(f"{path}.approach: unknown approach {pm.approach!r}")
        _known(
            f"{path}.lanes", f"lane of approach {pm.approach!r}", pm.lanes, lanes_of[pm.approach]
        )


def _polygons_overlap(a: list[Point], b: list[Point]) -> bool:
    """True when two polygons share area (touching edges is allowed)."""
    from sharpeyes.pipeline.rules.geometry import polygon_overlap_area

    return polygon_overlap_area(a, b) > 1e-5


__all__ = [
    "Approach",
    "Crosswalk",
    "Exemption",
    "IntersectionCalibration",
    "Lane",
    "LaneDirectionConfig",
    "Line",
    "Movement",
    "NoParkingZone",
    "NoTurnConfig",
    "ParkingConfig",
    "Point",
    "Polygon",
    "ProhibitedMovement",
    "SignalGroup",
    "SignalHead",
    "SolidLine",
    "SolidLineConfig",
    "TimeWindow",
    "TravelZone",
    "ViolationRuleConfig",
    "WrongWayConfig",
    "YieldConfig",
]
