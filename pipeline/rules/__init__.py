"""Rules: pure per-stream state machines that turn tracks + signal state into violation events.

``build_rules(stream_id, calib, frame_size)`` is the factory the runner uses; the registry maps
a rule name to a builder and a predicate saying whether a calibration needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.protocols import Rule
from sharpeyes.pipeline.rules.pedestrian import PedestrianRedLightRule
from sharpeyes.pipeline.rules.red_light import RedLightRule

RuleBuilder = Callable[[str, IntersectionCalibration, tuple[int, int]], Rule]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A registered rule: how to build it and whether a calibration asks for it."""

    build: RuleBuilder
    wanted: Callable[[IntersectionCalibration], bool]


RULES: dict[str, RuleSpec] = {
    "red_light": RuleSpec(RedLightRule, lambda c: bool(c.approaches)),
    "pedestrian_red_light": RuleSpec(PedestrianRedLightRule, lambda c: bool(c.crosswalks)),
}


def build_rules(
    stream_id: str, calib: IntersectionCalibration, frame_size: tuple[int, int]
) -> list[Rule]:
    """Every registered rule the calibration configures, for one stream and frame size."""
    return [
        spec.build(stream_id, calib, frame_size) for spec in RULES.values() if spec.wanted(calib)
    ]


__all__ = ["RULES", "PedestrianRedLightRule", "RedLightRule", "RuleSpec", "build_rules"]
