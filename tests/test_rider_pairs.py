"""Riders and two-wheelers that are both unsure: a person detection and a two-wheeler detection
that sit on each other, both scored at the floor (0.35) or above, in consecutive pictures at
consistent, moving positions open tracks at the floor (``Pairs``,
pipeline/tracking/score_level.py; ``ByteTracker._paired``) — clutter does not."""

from __future__ import annotations

import numpy as np
import pytest

from sharpeyes.pipeline.config import TrackerConfig
from sharpeyes.pipeline.tracking import ByteTracker
from sharpeyes.pipeline.tracking.score_level import FLOOR_NEW, PAIR_PICTURES, Pairs
from sharpeyes.pipeline.types import Detections, ObjectKind, Tracks

MV, PERSON, BIKE = ObjectKind.MOTOR_VEHICLE, ObjectKind.PERSON, 3  # COCO motorcycle
Row = tuple[list[float], float, int, ObjectKind]
STEP = 1 / 6  # hanoi_b's 6 pictures a second


def _picture(*rows: Row | None) -> Detections:
    kept = [r for r in rows if r is not None]
    if not kept:
        return Detections.empty()
    boxes, scores, classes, kinds = zip(*kept, strict=True)
    return Detections.create(np.array(boxes, np.float32), scores, classes, [int(k) for k in kinds])


def _bike(x: float, score: float, y: float = 200) -> Row:
    return ([x, y, x + 60, y + 100], score, BIKE, MV)


def _rider(x: float, score: float, y: float = 200) -> Row:
    """A person sitting on :func:`_bike` at the same ``x``: over it, centred, its top higher."""
    return ([x, y - 70, x + 60, y + 60], score, 0, PERSON)


def _person(box: list[float], score: float) -> Row:
    return (box, score, 0, PERSON)


def _kinds(out: list[Tracks]) -> tuple[int, int]:
    """Distinct person and motorbike track ids over a run."""
    persons = {int(i) for t in out for i in t.track_id[t.kind == int(PERSON)]}
    bikes = {int(i) for t in out for i in t.track_id[t.class_id == BIKE]}
    return len(persons), len(bikes)


def _run(pictures: list[Detections], cfg: TrackerConfig | None = None) -> list[Tracks]:
    tracker = ByteTracker(cfg or TrackerConfig())
    return [tracker.update(d, i * STEP) for i, d in enumerate(pictures)]


def _boxes(x: float) -> tuple[np.ndarray, np.ndarray]:
    return np.array([_rider(x, 0.4)[0]], np.float32), np.array([_bike(x, 0.4)[0]], np.float32)


def test_a_pair_counts_its_consecutive_pictures_and_whether_it_moved() -> None:
    """Moving 4 px a picture the pair goes on (1, 2, 3, 4 pictures); it has moved once it left
    the box it was first seen in (8 px on, its 60 px wide box overlaps it 0.76 < 0.8); a picture
    without it, or a jump far off, starts it again."""
    pairs = Pairs(0.2)
    seen = [pairs.update(*_boxes(100 + 4 * i), i * STEP) for i in range(4)]
    assert [int(r[0]) for r, _ in seen] == [1, 2, 3, 4]
    assert [bool(m[0]) for _, m in seen] == [False, False, True, True]
    empty = np.zeros((0, 4), np.float32)
    assert len(pairs.update(empty, empty, 4 * STEP)[0]) == 0  # not seen: the pair ends
    assert pairs.update(*_boxes(140), 5 * STEP)[0].tolist() == [1]
    assert pairs.update(*_boxes(400), 6 * STEP)[0].tolist() == [1]  # far off: another pair
    pairs.reset()
    assert pairs.update(*_boxes(400), 7 * STEP)[0].tolist() == [1]


def test_a_pair_follows_its_own_velocity() -> None:
    """A rider crossing 40 px a picture (its box 60 wide) overlaps its last box only 0.2: the
    pair is followed on its own velocity, not lost."""
    pairs = Pairs(0.2)
    runs = [int(pairs.update(*_boxes(100 + 40 * i), i * STEP)[0][0]) for i in range(5)]
    assert runs == [1, 2, 3, 4, 5]


def test_a_rider_and_motorbike_both_unsure_open_tracks_once_they_persist_and_move() -> None:
    """A person scored 0.4 on a motorbike scored 0.4, nothing sure anywhere (no level learnt,
    no sure rider, no sure motorbike): riding 10 px a picture, both are tracked, first in the
    pair's PAIR_PICTURES-th picture. With fixed thresholds, neither."""
    pictures = [_picture(_bike(x, 0.4), _rider(x, 0.4)) for x in range(100, 220, 10)]
    out = _run(pictures)
    assert _kinds(out) == (1, 1)
    first = next(i for i, t in enumerate(out) if len(t))
    assert first == PAIR_PICTURES - 1
    assert _kinds(_run(pictures, TrackerConfig(thresholds="fixed"))) == (0, 0)


def test_a_pair_seen_in_alternate_pictures_or_jumping_about_is_not_tracked() -> None:
    """The pair must persist: one seen every other picture, or at a new place each picture
    (clutter flickering across the view), opens nothing."""
    alternate = [
        _picture(_bike(100 + 5 * i, 0.4), _rider(100 + 5 * i, 0.4)) if i % 2 else Detections.empty()
        for i in range(12)
    ]
    jumping = [
        _picture(_bike(x, 0.4), _rider(x, 0.4)) for x in [100, 300, 120, 320, 140, 340, 160, 360]
    ]
    assert _kinds(_run(alternate)) == (0, 0)
    assert _kinds(_run(jumping)) == (0, 0)


@pytest.mark.parametrize(("person", "bike"), [(FLOOR_NEW - 0.02, 0.4), (0.4, FLOOR_NEW - 0.02)])
def test_a_pair_under_the_floor_is_not_tracked(person: float, bike: float) -> None:
    pictures = [_picture(_bike(x, bike), _rider(x, person)) for x in range(100, 160, 5)]
    assert _kinds(_run(pictures)) == (0, 0)


def test_clutter_stays_out() -> None:
    """Scored 0.4 each, in every picture: a litter bin (a short "person", no bike), a parked
    motorbike with no rider, a sign pole beside a parked motorbike, a person standing beside
    one, a walker passing in front of one (its top low), and a pole or a bin standing behind a
    parked motorbike (they sit on it by the geometry, but never move) — no track."""
    parked_a, parked_b, parked_c = 100.0, 300.0, 500.0
    pictures = []
    for i in range(12):
        walker = 200 + 6 * i
        pictures.append(
            _picture(
                _person([20, 240, 50, 300], 0.4),  # litter bin, nothing under it
                _bike(parked_a, 0.4),  # parked, no rider
                _person([parked_a + 68, 60, parked_a + 78, 300], 0.4),  # pole beside it
                _bike(parked_b, 0.4),
                _person([parked_b + 65, 130, parked_b + 125, 300], 0.4),  # standing beside
                _person([walker, 240, walker + 40, 330], 0.4),  # walking in front of parked_b
                _bike(parked_c, 0.4),
                _person([parked_c + 25, 60, parked_c + 35, 290], 0.4),  # pole behind it
                _person([parked_c + 10, 180, parked_c + 50, 270], 0.4),  # bin behind it
            )
        )
    assert _kinds(_run(pictures)) == (0, 0)


def test_a_rider_who_stops_after_moving_stays_tracked() -> None:
    """A rider that rode up and then waits (at a red light) keeps its pair's standing."""
    xs = [100, 110, 120, 130] + [130] * 8
    out = _run([_picture(_bike(x, 0.4), _rider(x, 0.4)) for x in xs])
    assert _kinds(out) == (1, 1)
    assert len(out[-1]) == 2
