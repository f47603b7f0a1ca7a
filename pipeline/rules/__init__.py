"""Rules: pure per-stream state machines that turn tracks + signal state into violation events.

``build_rules(stream_id, calib, frame_size)`` is the factory the runner uses; the registry maps
a rule name to a builder and a predicate saying whether a calibration needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.protocols import Rule
from sharpeyes.pipeline.rules.charge import VIOLATION_TYPE_KEY, violation_type
from sharpeyes.pipeline.rules.lane_direction import LaneDirectionJudge, LaneDirectionRule
from sharpeyes.pipeline.rules.movement import MovementJudge, MovementRule
from sharpeyes.pipeline.rules.no_turn import NoTurnJudge, NoTurnRule
from sharpeyes.pipeline.rules.parking import IllegalParkingRule
from sharpeyes.pipeline.rules.pedestrian import PedestrianRedLightRule
from sharpeyes.pipeline.rules.red_light import RedLightRule
from sharpeyes.pipeline.rules.solid_line import SolidLineRule
from sharpeyes.pipeline.rules.wrong_way import WrongWayRule
from sharpeyes.pipeline.rules.yield_pedestrian import YieldToPedestriansRule

RuleBuilder = Callable[[str, IntersectionCalibration, tuple[int, int]], Rule]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A registered rule: how to build it and whether a calibration asks for it."""

    build: RuleBuilder
    wanted: Callable[[IntersectionCalibration], bool]


def _movement_rules(
    stream_id: str, calib: IntersectionCalibration, frame_size: tuple[int, int]
) -> MovementRule:
    judges: list[MovementJudge] = []
    if calib.lane_direction is not None:
        judges.append(LaneDirectionJudge(stream_id, calib, frame_size))
    if calib.no_turn is not None:
        judges.append(NoTurnJudge(stream_id, calib, frame_size))
    return MovementRule(calib, frame_size, judges)


RULES: dict[str, RuleSpec] = {
    "red_light": RuleSpec(RedLightRule, lambda c: bool(c.approaches)),
    "pedestrian_red_light": RuleSpec(PedestrianRedLightRule, lambda c: bool(c.crosswalks)),
    # The violation suite (issue 17): each is off unless its calibration block is set.
    "wrong_way": RuleSpec(
        WrongWayRule,
        lambda c: (
            c.wrong_way is not None
            and (bool(c.wrong_way.zones) or (c.wrong_way.use_lanes and bool(c.approaches)))
        ),
    ),
    # lane direction (不按导向车道) and no-turn (违反禁令标志) judge the movements of one shared
    # tracker: one entry builds both, as the calibration asks.
    "movement": RuleSpec(
        _movement_rules,
        lambda c: (c.lane_direction is not None or c.no_turn is not None) and bool(c.approaches),
    ),
    "solid_line": RuleSpec(SolidLineRule, lambda c: c.solid_lines is not None),
    "illegal_parking": RuleSpec(IllegalParkingRule, lambda c: c.parking is not None),
    "yield_pedestrian": RuleSpec(
        YieldToPedestriansRule,
        lambda c: c.yield_to_pedestrians is not None and bool(c.crosswalks),
    ),
}


def build_rules(
    stream_id: str, calib: IntersectionCalibration, frame_size: tuple[int, int]
) -> list[Rule]:
    """Every registered rule the calibration configures, for one stream and frame size."""
    return [
        spec.build(stream_id, calib, frame_size) for spec in RULES.values() if spec.wanted(calib)
    ]


__all__ = [
    "RULES",
    "VIOLATION_TYPE_KEY",
    "IllegalParkingRule",
    "LaneDirectionRule",
    "MovementRule",
    "NoTurnRule",
    "PedestrianRedLightRule",
    "RedLightRule",
    "RuleSpec",
    "SolidLineRule",
    "WrongWayRule",
    "YieldToPedestriansRule",
    "build_rules",
    "violation_type",
]
