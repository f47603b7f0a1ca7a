"""The camera's rider height (head to road) learned from riders over detected two-wheelers."""

from __future__ import annotations

import numpy as np

from sharpeyes.pipeline.riders import RiderParams
from sharpeyes.pipeline.rules.rider_fusion import RiderFeed
from sharpeyes.pipeline.rules.rider_height import RiderHeightModel
from sharpeyes.pipeline.types import Anchor, Frame, ObjectKind
from tests.test_riders import tracks

P, M = ObjectKind.PERSON, ObjectKind.MOTOR_VEHICLE
BLANK = np.zeros((480, 640, 3), np.uint8)


def test_learns_the_height_against_the_row_and_ignores_wrong_pairs() -> None:
    """Height 20 + 0.2·top (perspective: nearer riders are taller), 1 px noise, 10 % of the
    pairs wrong (a rider over somebody else's bike): the line is recovered within 1 px."""
    rng = np.random.default_rng(7)
    model = RiderHeightModel(min_pairs=30)
    for k in range(200):
        top = float(rng.uniform(150, 400))
        height = 20 + 0.2 * top + float(rng.normal(0, 1.0))
        if k % 10 == 0:
            height += float(rng.uniform(25, 60))
        model.add(top, top + height)
        if k < 29:
            assert model.height_at(300.0) is None, "no answer before min_pairs"
    for top in (160.0, 300.0, 390.0):
        got = model.height_at(top)
        assert got is not None and abs(got - (20 + 0.2 * top)) < 1.0, (top, got)


def test_tops_that_barely_vary_give_the_median_height() -> None:
    model = RiderHeightModel(min_pairs=5, refit_every=1)
    for k in range(11):
        model.add(300.0 + (k % 3), 300.0 + 80.0 + (k % 2))
    got = model.height_at(301.0)
    assert got is not None and abs(got - 80.5) <= 0.5


def test_a_rider_without_its_bike_is_placed_by_its_head_once_learned() -> None:
    """After riders over detected bikes taught the height, a rider whose bike is not detected
    and whose feet are down (the box reaches the road) gets its road point from its head; the
    person box bottom and the fixed-share point are kept beside it."""
    feed = RiderFeed(RiderParams(), [int(M)], Anchor.BOTTOM_CENTER, 480)
    frame = Frame("cam", 0, 0.0, 1_700_000_000_000, BLANK)
    for k in range(40):  # a rider (top 300, feet 370) over a bike whose wheels are at 385
        dy = float(k % 5)
        feed.rows(
            frame,
            tracks((1, P, (100, 300 + dy, 130, 370 + dy)), (2, M, (95, 330 + dy, 135, 385 + dy))),
        )
    assert feed.heights.pairs == 40
    (row,) = feed.rows(frame, tracks((3, P, (300, 302, 330, 385))))  # feet down, no bike
    assert abs(row.obs.box[3] - 387.0) < 1.5, row.obs.box  # head 302 + 85, not 385 + 0.25 h
    assert row.obs.own_y2 == 385.0
    assert row.obs.alt_anchor is not None and abs(row.obs.alt_anchor[1] - (385 + 0.25 * 83)) < 0.01
