"""Per-type evidence checks of the violation suite (issue 17): do the three images show what the
violation means?

Red-light records are checked against the stop line and the red signal in
:mod:`pipeline.evidence.facts`. The suite's charges carry the geometry they were judged against
in ``Event.extra`` (pixels, written by the rule: ``travel_px``, ``zone_px``, ``line_px``,
``stop_line_px``, ``crosswalk_px`` …), and every image's subject box comes from that image's own
analysed frame (by track id), so each check below reads facts of the track in the images, never
the rule's conclusion:

============== ==============================================================================
wrong_way      the anchor (box bottom centre) in the zone in every image, and its position along
               the zone's travel decreasing image to image (the vehicle moves against it)
solid_line     images 1 and 3 on opposite sides of the line, each ``line_margin_px`` clear of
               it; image 2's wheel line touching the line
lane_direction image 1 behind the stop line, image 2 past it, image 3 turned from image 2 as
/ no_turn      ``violation.movement`` says (against the lane's travel)
illegal_parking the anchor in the zone in every image, within two ``still_radius_px`` of image
               1's, and image 3 at least ``dwell_s`` after image 1
yield          image 1 before the crosswalk, image 2 on it with the pedestrian
               (``pedestrian_track_id``) on it in the same frame, image 3 past it
============== ==============================================================================

A record whose geometry is missing (an older rule) gets one problem saying so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from sharpeyes.pipeline.rules.geometry import (
    BoxedPolygon,
    OrientedLine,
    Polyline,
    Vec,
    distance,
    heading_change_deg,
    unit,
)
from sharpeyes.pipeline.types import Box, Event, Frame, Tracks

Problem = tuple[int, str]
"""(image index 1–3, or 0 for the record as a whole; reason)."""

_U_TURN_DEG = 90.0  # image 2 → 3 turned at least this far reads as turning back


class TypeImage(Protocol):
    """What a check needs of one evidence image (:class:`pipeline.evidence.facts.ImageFacts`)."""

    @property
    def index(self) -> int: ...

    @property
    def box(self) -> Box | None: ...

    @property
    def tracks(self) -> Tracks | None: ...

    @property
    def frame(self) -> Frame: ...


class MissingFactError(KeyError):
    """The record lacks a geometry entry the check needs."""


def _anchor(box: Box) -> Vec:
    return ((box.x1 + box.x2) / 2.0, box.y2)


def _points(text: str) -> list[Vec]:
    out: list[Vec] = []
    for pair in text.split(";"):
        x, y = pair.split(",")
        out.append((float(x), float(y)))
    return out


def _vector(text: str) -> Vec:
    x, y = text.split(",")
    return (float(x), float(y))


def _get(extra: dict[str, str], key: str) -> str:
    try:
        return extra[key]
    except KeyError as e:
        raise MissingFactError(key) from e


def _wrong_way(
    extra: dict[str, str], anchors: list[Vec], _: Event, __: Sequence[TypeImage]
) -> list[Problem]:
    travel = _vector(_get(extra, "travel_px"))
    zone = BoxedPolygon(_points(_get(extra, "zone_px")))
    out = [
        (i, "subject outside the travel zone")
        for i, a in enumerate(anchors, 1)
        if not zone.contains(a)
    ]
    pos = [a[0] * travel[0] + a[1] * travel[1] for a in anchors]
    for i in (2, 3):
        if pos[i - 1] >= pos[i - 2]:
            out.append((i, f"subject not further against the travel than in image {i - 1}"))
    return out


def _solid_line(
    extra: dict[str, str], anchors: list[Vec], _: Event, images: Sequence[TypeImage]
) -> list[Problem]:
    line = Polyline(_points(_get(extra, "line_px")))
    margin = float(_get(extra, "line_margin_px"))
    hits = [line.side_distance_across(a) for a in anchors]
    out: list[Problem] = []
    for i in (1, 3):
        hit = hits[i - 1]
        if hit is None or abs(hit[0]) <= margin:
            out.append((i, "subject not clear of the line on one side"))
    h1, h3 = hits[0], hits[2]
    if h1 is not None and h3 is not None and (h1[0] > 0) == (h3[0] > 0):
        out.append((3, "subject on the same side of the line as in image 1"))
    box2, h2 = images[1].box, hits[1]
    if box2 is not None and (h2 is None or abs(h2[0]) > margin + (box2.x2 - box2.x1) / 2 * h2[1]):
        out.append((2, "the wheel line does not touch the line"))
    return out


def _movement(
    extra: dict[str, str], anchors: list[Vec], event: Event, _: Sequence[TypeImage]
) -> list[Problem]:
    travel = _vector(_get(extra, "travel_px"))
    a, b = _points(_get(extra, "stop_line_px"))
    stop = OrientedLine.create(a, b, travel)
    turn = float(_get(extra, "turn_angle_deg"))
    out: list[Problem] = []
    if stop.signed_distance(anchors[0]) > 0:
        out.append((1, "subject past the stop line, not behind it"))
    if stop.signed_distance(anchors[1]) < 0:
        out.append((2, "subject still behind the stop line"))
    moved = (anchors[2][0] - anchors[1][0], anchors[2][1] - anchors[1][1])
    movement = event.violation.movement if event.violation is not None else None
    if math.hypot(*moved) < 1.0:
        return [*out, (3, "subject not displaced from image 2")]
    angle = heading_change_deg(travel, unit(moved))
    if not _turned_as(angle, turn, movement):
        out.append((3, f"image 2 → 3 heading {angle:+.0f} deg is not a {movement}"))
    return out


def _turned_as(angle: float, turn: float, movement: str | None) -> bool:
    """Whether a heading change (positive = right) shows ``movement``; images 2 and 3 are a
    chord of the path, so a turn counts from half the threshold."""
    if movement == "u_turn":
        return abs(angle) >= _U_TURN_DEG
    if movement == "left":
        return angle <= -turn / 2.0
    if movement == "right":
        return angle >= turn / 2.0
    return movement == "straight" and abs(angle) <= turn


def _parking(
    extra: dict[str, str], anchors: list[Vec], _: Event, images: Sequence[TypeImage]
) -> list[Problem]:
    zone = BoxedPolygon(_points(_get(extra, "zone_px")))
    radius = float(_get(extra, "still_radius_px"))
    dwell = float(_get(extra, "dwell_s"))
    gap = images[2].frame.pts - images[0].frame.pts
    out = [
        (i, "subject outside the no-parking zone")
        for i, a in enumerate(anchors, 1)
        if not zone.contains(a)
    ]
    out += [
        (i, "subject moved from where it stood in image 1")
        for i, a in enumerate(anchors[1:], 2)
        if distance(a, anchors[0]) > 2.0 * radius
    ]
    if gap < dwell - 1e-3:
        out.append((1, f"image 1 only {gap:.1f}s before image 3, under the {dwell:g}s dwell"))
    return out


def _yield(
    extra: dict[str, str], anchors: list[Vec], _: Event, images: Sequence[TypeImage]
) -> list[Problem]:
    zebra = BoxedPolygon(_points(_get(extra, "crosswalk_px")))
    walker = int(_get(extra, "pedestrian_track_id"))
    out: list[Problem] = []
    if zebra.contains(anchors[0]):
        out.append((1, "subject already on the crosswalk"))
    if not zebra.contains(anchors[1]):
        out.append((2, "subject not on the crosswalk"))
    if zebra.contains(anchors[2]):
        out.append((3, "subject still on the crosswalk"))
    ped = _track_anchor(images[1].tracks, walker)
    if ped is None:
        out.append((2, f"pedestrian track {walker} not in this frame"))
    elif not zebra.contains(ped):
        out.append((2, f"pedestrian track {walker} not on the crosswalk"))
    return out


def _track_anchor(tracks: Tracks | None, track_id: int) -> Vec | None:
    if tracks is None or len(tracks) == 0:
        return None
    idx = np.flatnonzero(tracks.track_id == track_id)
    if len(idx) == 0:
        return None
    x1, _, x2, y2 = (float(v) for v in tracks.xyxy[int(idx[0])])
    return ((x1 + x2) / 2.0, y2)


Check = Callable[[dict[str, str], list[Vec], Event, Sequence[TypeImage]], list[Problem]]

CHECKS: dict[str, Check] = {
    "wrong_way": _wrong_way,
    "solid_line": _solid_line,
    "lane_direction": _movement,
    "no_turn": _movement,
    "illegal_parking": _parking,
    "yield_pedestrian": _yield,
}


def type_problems(vtype: str, event: Event, images: Sequence[TypeImage]) -> list[Problem]:
    """What the images fail to show of a ``vtype`` violation (empty: they show it). Checked
    only on three images whose subject boxes are all known (the generic checks report the
    others); a type without checks (red light: :mod:`facts`) gets none here."""
    check = CHECKS.get(vtype)
    if check is None or len(images) != 3:
        return []
    boxes = [im.box for im in images]
    if any(b is None for b in boxes):
        return []
    anchors = [_anchor(b) for b in boxes if b is not None]
    extra = dict(event.extra)
    try:
        return check(extra, anchors, event, images)
    except MissingFactError as e:
        return [(0, f"record lacks the geometry entry {e.args[0]!r} to check the images")]
    except ValueError as e:
        return [(0, f"record geometry unreadable: {e}")]
