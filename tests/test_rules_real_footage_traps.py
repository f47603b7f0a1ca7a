"""Traps found on real footage (hanoi_b, issue 17), each as a rendered-free pure scene:

* a rider whose two-wheeler the detector missed is a ``person`` on the zebra that travels with
  the traffic — no pedestrian to yield to (a standing pedestrian still is one);
* a vehicle standing on a solid line whose box shifts by more than the line margin (queued
  motorbikes merge with their neighbours' boxes) does not change sides;
* a track that goes round the end of a solid line (there: a tracker identity switching past the
  line's end onto a vehicle on the other side) has not crossed it;
* an oncoming vehicle hugging the edge of a travel zone (straddling the centre line) is not
  driving against that zone.
"""

from __future__ import annotations

from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.rules import violation_type
from tests.scenarios import run_pure
from tests.scenarios.model import Scenario
from tests.scenarios.scene import STOP_Y
from tests.scenarios.violations import (
    GREEN,
    L1,
    SOLID_X,
    ZEBRA_Y,
    car,
    hold,
    path,
    person,
    solid_line_calib,
    straight,
    wrong_way_calib,
    yield_calib,
)


def _charged(scenario: Scenario, calib: IntersectionCalibration, rule: str) -> list[int | None]:
    return [e.track_id for e in run_pure(scenario, calib) if violation_type(e) == rule]


def test_a_rider_without_its_bike_is_not_a_pedestrian() -> None:
    # the "person" rides up beside the car (the same half of the zebra), at traffic speed
    rider = person(1, straight(L1 + 0.06, 0.8))
    sc = Scenario("yp_rider_only", 10.0, 12.0, GREEN, (rider, car(2, straight(L1, 0.8))), ())
    assert _charged(sc, yield_calib(), "yield_pedestrian") == []


def test_a_pedestrian_standing_on_the_zebra_is_still_one() -> None:
    # stands in the car's half of the zebra (no motion at all): the car passing it is charged
    walker = person(1, hold(path((0.30, ZEBRA_Y), (0.31, ZEBRA_Y), t0=0.0, v=0.1), 12.0))
    sc = Scenario("yp_standing", 10.0, 12.0, GREEN, (walker, car(2, straight(L1, 0.8))), ())
    assert _charged(sc, yield_calib(), "yield_pedestrian") == [2]


def test_a_vehicle_swaying_on_a_solid_line_does_not_cross_it() -> None:
    # creeps up on the line, its box centre 0.02 of the width (more than the margin) to either
    # side for a second at a time — the whole wheel line never leaves the line
    w: list[tuple[float, float, float]] = []
    for i in range(6):
        x = SOLID_X + (0.02 if i % 2 else -0.02)
        w += [(i * 1.2, x, 0.92 - 0.01 * i), (i * 1.2 + 1.0, x, 0.915 - 0.01 * i)]
    sc = Scenario("sl_sway_on_line", 10.0, 8.0, GREEN, (car(1, tuple(w)),), ())
    assert _charged(sc, solid_line_calib(), "solid_line") == []


def test_a_lane_change_over_the_line_is_still_charged() -> None:
    change = path((L1 + 0.13, 1.02), (L1 + 0.13, 0.96), (L1, 0.84), (L1, 0.12), t0=0.5, v=0.2)
    sc = Scenario("sl_change", 10.0, 8.0, GREEN, (car(1, change),), ())
    assert _charged(sc, solid_line_calib(), "solid_line") == [1]


def test_round_the_end_of_a_solid_line_is_no_crossing() -> None:
    left, right, top = SOLID_X - 0.07, SOLID_X + 0.07, STOP_Y - 0.04
    w = path((left, 0.95), (left, top), (right, top), (right, 0.80), t0=0.5, v=0.15)
    sc = Scenario("sl_round_the_end", 10.0, 10.0, GREEN, (car(1, w),), ())
    assert _charged(sc, solid_line_calib(), "solid_line") == []


def test_a_vehicle_straddling_a_zone_edge_is_not_in_it() -> None:
    # oncoming down the zone's left edge (x = 0.30): half of the car is outside the zone
    edge = car(1, path((0.31, 0.10), (0.31, 0.48), t0=1.0, v=0.12))
    inside = car(2, path((0.45, 0.10), (0.45, 0.48), t0=1.0, v=0.12))
    sc = Scenario("ww_edge", 10.0, 6.0, GREEN, (edge, inside), ())
    assert _charged(sc, wrong_way_calib(), "wrong_way") == [2]
