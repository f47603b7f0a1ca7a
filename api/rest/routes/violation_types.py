"""The ``violation_type`` query parameter of the events and violations lists (issue 17)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import Query

ViolationTypeName = Literal[
    "red_light_violation",
    "pedestrian_red_light",
    "wrong_way",
    "lane_direction",
    "no_turn",
    "solid_line",
    "illegal_parking",
    "yield_pedestrian",
]
"""What ``pipeline.rules.violation_type`` names: the suite's ``extra.violation_type``, else the
event type of a red-light violation (vehicle or pedestrian)."""

ViolationTypes = Annotated[
    list[ViolationTypeName] | None,
    Query(
        description="Violation type(s), repeat for several (any of them): `wrong_way` (逆行, "
        "1301), `lane_direction` (不按导向车道, 1208), `no_turn` (违反禁令标志, 1344), "
        "`solid_line` (压实线, 1345), `illegal_parking` (违法停车, 1039), `yield_pedestrian` "
        "(不礼让行人, 1357), `red_light_violation` (vehicle red light), `pedestrian_red_light`. "
        "Only violations are returned when set.",
    ),
]


def violation_types(value: Sequence[str] | None) -> tuple[str, ...]:
    """The filter's tuple (empty: no filter), duplicates dropped, order kept."""
    return tuple(dict.fromkeys(value or ()))
