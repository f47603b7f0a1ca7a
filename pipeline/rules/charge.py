"""Shared plumbing of the non-red-light violation rules: vehicle rows, per-track tables with
eviction, and the one way a violation becomes an :class:`Event`.

Every violation goes out as :attr:`EventType.RED_LIGHT_VIOLATION` — the type the evidence
builder, the store, the console and the GA/T 1400 mapping already handle — with its own code in
``Violation.code`` and its kind in ``extra["violation_type"]`` (:data:`VIOLATION_TYPE_KEY`). The
red-light specific evidence checks key on ``Violation.approach`` (stop-line side per image), so
these rules leave ``approach`` empty and record the approach in ``extra["approach_id"]``. The
event id hashes the violation type too, so one track charged for two violations gets two ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.rules.common import (
    Observation,
    TrackHistory,
    ViolationFacts,
    dominant_class,
    violation_event,
)
from sharpeyes.pipeline.rules.geometry import Vec
from sharpeyes.pipeline.types import (
    Anchor,
    Event,
    EventType,
    Frame,
    LampColor,
    ObjectKind,
    Tracks,
    Violation,
)

VIOLATION_TYPE_KEY = "violation_type"
"""``Event.extra`` key naming the violation (``wrong_way``, ``lane_direction`` …)."""

S = TypeVar("S")
C = TypeVar("C")


Region = tuple[float, float, float, float]
"""An axis-aligned pixel box ``(x0, y0, x1, y1)``: where a rule has anything to watch."""

Raw = tuple[float, int, Vec, tuple[float, float, float, float], float, int, bool]
"""One track in one frame in :class:`Observation`'s field order (pts, wall_ms, anchor, box,
confidence, class_id, detected). Rules keep these and build an Observation (:func:`observe`,
some twenty times dearer than the tuple) only for what they remember."""

Row = tuple[int, ObjectKind, Raw]


def observe(raw: Raw) -> Observation:
    """The :class:`Observation` of a raw row."""
    return Observation(*raw)


_KINDS = {int(k): k for k in ObjectKind}


def region_of(shapes: Iterable[Sequence[Vec]], pad: float) -> Region:
    """The bounding box of pixel ``shapes`` widened by ``pad`` pixels on every side."""
    points = [p for shape in shapes for p in shape]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if not xs:
        return (0.0, 0.0, -1.0, -1.0)  # empty: nothing is inside
    return (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)


def frame_rows(
    frame: Frame,
    tracks: Tracks,
    kinds: Sequence[int],
    anchor: Anchor,
    *,
    region: Region | None = None,
    keep: Container[int] = (),
) -> tuple[list[Row], list[int]]:
    """(rows, skipped ids): a :data:`Raw` row for every track of ``kinds`` whose anchor lies in
    ``region`` (all of them when None) or whose id is in ``keep``, and the ids of the other
    tracks of ``kinds``. The arrays are read once as plain lists: at tens of rows a numpy
    pass per column costs more than the Python loop."""
    if not len(tracks):
        return [], []
    kind: list[int] = tracks.kind.tolist()
    ids: list[int] = tracks.track_id.tolist()
    boxes: list[list[float]] = tracks.xyxy.tolist()
    conf: list[float] = tracks.confidence.tolist()
    cls: list[int] = tracks.class_id.tolist()
    det: list[bool] = tracks.detected.tolist()
    x0, y0, x1, y1 = region if region is not None else (-math.inf, -math.inf, math.inf, math.inf)
    bottom, top = anchor is Anchor.BOTTOM_CENTER, anchor is Anchor.TOP_CENTER
    pts, wall = frame.pts, frame.wall_time_ms
    rows: list[Row] = []
    skipped: list[int] = []
    wanted = frozenset(kinds)
    for j, k in enumerate(kind):
        if k not in wanted:
            continue
        b = boxes[j]
        ax = (b[0] + b[2]) / 2.0
        ay = b[3] if bottom else b[1] if top else (b[1] + b[3]) / 2.0
        tid = ids[j]
        if not (x0 <= ax <= x1 and y0 <= ay <= y1) and tid not in keep:
            skipped.append(tid)
            continue
        raw = (pts, wall, (ax, ay), (b[0], b[1], b[2], b[3]), conf[j], cls[j], det[j])
        rows.append((tid, _KINDS[k], raw))
    return rows, skipped


class TrackTable(Generic[S]):
    """Per-track state of one stream, evicted ``stale_s`` after a track was last seen."""

    __slots__ = ("_last", "_make", "_stale_s", "states")

    def __init__(self, make: Callable[[int, ObjectKind], S], stale_s: float) -> None:
        self._make = make
        self._stale_s = stale_s
        self.states: dict[int, S] = {}
        self._last: dict[int, float] = {}

    def get(self, tid: int, kind: ObjectKind, pts: float) -> S:
        st = self.states.get(tid)
        if st is None:
            st = self.states[tid] = self._make(tid, kind)
        self._last[tid] = pts
        return st

    def evict(self, pts: float) -> list[S]:
        """Remove and return the states of tracks unseen for longer than ``stale_s``."""
        stale = [tid for tid, last in self._last.items() if pts - last > self._stale_s]
        out = [self.states.pop(tid) for tid in stale]
        for tid in stale:
            del self._last[tid]
        return out

    def drain(self) -> list[S]:
        """Remove and return every state (end of stream)."""
        out = list(self.states.values())
        self.states.clear()
        self._last.clear()
        return out

    def __len__(self) -> int:
        return len(self.states)


def needed(block: C | None, owner: str, name: str) -> C:
    """The calibration block ``calib.<name>`` that ``owner`` cannot work without.

    Raises:
        ValueError: naming both, when the block is not set.
    """
    if block is None:
        raise ValueError(f"{owner} needs calib.{name}")
    return block


class TrackRule(Generic[S]):
    """What the suite rules keeping per-track state ``S`` share: the stream, calibration and
    frame size they judge, the object kinds they follow, their :class:`TrackTable`, and the
    end of a stream for a rule that charges nothing then (its states are dropped)."""

    def __init__(
        self,
        stream_id: str,
        calib: IntersectionCalibration,
        frame_size: tuple[int, int],
        make: Callable[[int, ObjectKind], S],
    ) -> None:
        self.stream_id = stream_id
        self.calib = calib
        self.frame_size = frame_size
        self._kinds = [int(k) for k in calib.object_kinds()]
        self._tracks: TrackTable[S] = TrackTable(make, calib.stale_track_s)

    def end_of_stream(self) -> list[Event]:
        self._tracks.drain()
        return []

    @property
    def live_tracks(self) -> int:
        return len(self._tracks)


def exempt_class(hist: TrackHistory, class_ids: list[int]) -> bool:
    """Whether the track is mostly one of the configured exempt classes (emergency vehicles)."""
    return bool(class_ids) and dominant_class(list(hist.obs)) in class_ids


@dataclass(frozen=True, slots=True)
class Charge:
    """What a rule decided about one violation."""

    name: str
    code: str
    stream_id: str
    frame_size: tuple[int, int]
    track: TrackHistory
    at_pts: float  # the moment of the violation (recorded as the violation time)
    best: Observation  # the observation whose box stands for the vehicle (evidence image 2)
    end: Observation
    stages: tuple[float, float, float]
    detail: str
    lane_no: int | None = None
    movement: str | None = None
    direction: str | None = None
    signal_group: str = ""
    signal_color: LampColor = LampColor.UNKNOWN
    extra: tuple[tuple[str, str], ...] = ()
    key: str = ""  # tells apart two charges of one track for the same violation (two stops)


def charge_event(c: Charge) -> Event:
    """The :class:`Event` for a charge (deterministic id per stream, track, start, type)."""
    v = Violation(
        code=c.code,
        signal_group=c.signal_group,
        signal_color=c.signal_color,
        seconds_since_red=0.0,
        lane_no=c.lane_no,
        movement=c.movement,
        approach=None,
        crossed_stop_line_pts=round(c.at_pts, 4),
        evidence_pts=c.stages,
    )
    kind = f"{EventType.RED_LIGHT_VIOLATION.value}/{c.name}{'/' + c.key if c.key else ''}"
    return violation_event(
        ViolationFacts(
            type=EventType.RED_LIGHT_VIOLATION,
            stream_id=c.stream_id,
            track=c.track,
            frame_size=c.frame_size,
            violation=v,
            best=c.best,
            end=c.end,
            direction=c.direction,
            detail=c.detail,
            extra=((VIOLATION_TYPE_KEY, c.name), *c.extra),
        ),
        id_kind=kind,
    )


def points_text(points: Iterable[Vec]) -> str:
    """Pixel points as ``"x,y;x,y;…"`` (one decimal): geometry an evidence check re-reads from
    ``Event.extra`` (:mod:`pipeline.evidence.type_facts`), so a record states what it was
    judged against."""
    return ";".join(f"{x:.1f},{y:.1f}" for x, y in points)


def vector_text(v: Vec) -> str:
    """A unit vector as ``"x,y"`` (four decimals)."""
    return f"{v[0]:.4f},{v[1]:.4f}"


def violation_type(event: Event) -> str:
    """The violation's type name: ``extra["violation_type"]``, else by event type."""
    for k, v in event.extra:
        if k == VIOLATION_TYPE_KEY:
            return v
    return event.type.value


def nearest_obs(hist: TrackHistory, pts: float) -> Observation:
    """The track's observation closest in time to ``pts``."""
    return min(hist.obs, key=lambda o: abs(o.pts - pts))


def anchor_rows(
    tracks: Tracks, kinds: Sequence[int], anchor: Anchor, region: Region
) -> list[tuple[int, Vec]]:
    """(track id, anchor) of the tracks of ``kinds`` whose anchor lies in ``region``."""
    x0, y0, x1, y1 = region
    bottom, top = anchor is Anchor.BOTTOM_CENTER, anchor is Anchor.TOP_CENTER
    out: list[tuple[int, Vec]] = []
    boxes: list[list[float]] = tracks.xyxy.tolist()
    ids: list[int] = tracks.track_id.tolist()
    for j, k in enumerate(tracks.kind.tolist()):
        if k not in kinds:
            continue
        b = boxes[j]
        ax = (b[0] + b[2]) / 2.0
        ay = b[3] if bottom else b[1] if top else (b[1] + b[3]) / 2.0
        if x0 <= ax <= x1 and y0 <= ay <= y1:
            out.append((ids[j], (ax, ay)))
    return out
