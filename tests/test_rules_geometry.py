"""Pixel geometry used by the rules."""

from __future__ import annotations

import pytest

from sharpeyes.pipeline.rules.geometry import (
    MAX_WHEEL_SLOPE,
    OrientedLine,
    PixelPolygon,
    heading_change_deg,
    polygon_overlap_area,
    to_pixels,
)


def test_oriented_line_sign_follows_travel() -> None:
    stop = OrientedLine.create((100.0, 200.0), (300.0, 200.0), forward=(0.0, -1.0))
    assert stop.signed_distance((150.0, 190.0)) == pytest.approx(10.0)  # past (above)
    assert stop.signed_distance((150.0, 230.0)) == pytest.approx(-30.0)


def test_a_cars_wheel_line_middle_lies_above_its_lowest_corner_on_a_tilted_line() -> None:
    box = (100.0, 50.0, 180.0, 120.0)  # 80 px wide, bottom at 120
    level = OrientedLine.create((0.0, 200.0), (400.0, 200.0), forward=(0.0, -1.0))
    assert level.wheel_point(box) == pytest.approx((140.0, 120.0))
    for a, b in (((0.0, 200.0), (400.0, 240.0)), ((0.0, 240.0), (400.0, 200.0))):
        tilted = OrientedLine.create(a, b, forward=(0.0, -1.0))  # slope 0.1 either way
        assert tilted.wheel_point(box) == pytest.approx((140.0, 120.0 - 40.0 * 0.1))
    steep = OrientedLine.create((0.0, 0.0), (10.0, 400.0), forward=(1.0, 0.0))
    assert steep.wheel_point(box)[1] == pytest.approx(120.0 - 40.0 * MAX_WHEEL_SLOPE)
    upright = OrientedLine.create((0.0, 0.0), (0.0, 400.0), forward=(1.0, 0.0))
    assert upright.wheel_point(box)[1] == pytest.approx(120.0 - 40.0 * MAX_WHEEL_SLOPE)


def test_crossing_fraction_and_extent() -> None:
    stop = OrientedLine.create((100.0, 200.0), (300.0, 200.0), forward=(0.0, -1.0))
    assert stop.crossing((200.0, 260.0), (200.0, 180.0)) == pytest.approx(0.75)
    assert stop.crossing((200.0, 180.0), (200.0, 260.0)) is None  # backwards
    assert stop.crossing((200.0, 260.0), (200.0, 230.0)) is None  # not reached
    assert stop.crossing((20.0, 260.0), (20.0, 180.0)) is None  # beside the line
    assert stop.crossing((90.0, 260.0), (90.0, 180.0)) is not None  # within the 10 % margin


def test_polygon_contains_with_margin() -> None:
    poly = PixelPolygon([(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)])
    assert poly.contains((5.0, 5.0))
    assert not poly.contains((12.0, 5.0))
    assert poly.contains((12.0, 5.0), margin=3.0)


def test_heading_sign_is_right_positive() -> None:
    up = (0.0, -1.0)
    assert heading_change_deg(up, (1.0, 0.0)) == pytest.approx(90.0)
    assert heading_change_deg(up, (-1.0, 0.0)) == pytest.approx(-90.0)
    assert abs(heading_change_deg(up, (0.0, 1.0))) == pytest.approx(180.0)


def test_overlap_area_and_pixels() -> None:
    a = [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]
    b = [(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)]
    c = [(0.4, 0.0), (1.0, 0.0), (1.0, 1.0), (0.4, 1.0)]
    assert polygon_overlap_area(a, b) == 0.0
    assert polygon_overlap_area(a, c) == pytest.approx(0.1, abs=0.005)
    assert to_pixels([(0.5, 0.25)], (640, 480)) == [(320.0, 120.0)]
