"""Shared pieces of the rules: per-track history, the signal timeline, event building."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sharpeyes.pipeline.calibration import Exemption, Movement, TimeWindow
from sharpeyes.pipeline.rules.geometry import WHEEL_LINE_CLASSES, OrientedLine, Vec
from sharpeyes.pipeline.types import (
    Box,
    Event,
    EventType,
    FloatArray,
    Frame,
    LampColor,
    ObjectKind,
    SignalState,
    Tracks,
    TrajectoryPoint,
    Violation,
    make_event_id,
)

_MAX_SEGMENTS = 64
_TRAJECTORY_POINTS = 16


@dataclass(frozen=True, slots=True)
class Observation:
    """One analysed frame of one track."""

    pts: float
    wall_ms: int
    anchor: Vec
    box: tuple[float, float, float, float]
    confidence: float
    class_id: int
    detected: bool
    own_y2: float | None = None
    """A rider's person-box bottom, when ``box`` was extended down to the road."""
    alt_anchor: tuple[float, float] | None = None
    """A rider's road point by the fixed share of its person height, where ``anchor`` comes
    from the camera's learned rider height: entry-line decisions accept either."""

    @classmethod
    def of_row(cls, frame: Frame, tracks: Tracks, anchors: FloatArray, i: int) -> Observation:
        """Row ``i`` of ``tracks`` (with its precomputed anchor) at ``frame``."""
        x1, y1, x2, y2 = (float(v) for v in tracks.xyxy[i])
        return cls(
            frame.pts,
            frame.wall_time_ms,
            (float(anchors[i, 0]), float(anchors[i, 1])),
            (x1, y1, x2, y2),
            float(tracks.confidence[i]),
            int(tracks.class_id[i]),
            bool(tracks.detected[i]),
        )


@dataclass(slots=True)
class TrackHistory:
    """What a rule remembers about one track: a bounded list of observations."""

    track_id: int
    kind: ObjectKind
    obs: deque[Observation] = field(default_factory=lambda: deque(maxlen=400))
    first_pts: float = 0.0
    first_wall_ms: int = 0
    dropped: int = 0  # observations that fell off the front of ``obs``

    def add(self, o: Observation) -> None:
        if not self.obs:
            self.first_pts, self.first_wall_ms = o.pts, o.wall_ms
        if len(self.obs) == self.obs.maxlen:
            self.dropped += 1
        self.obs.append(o)

    @property
    def last(self) -> Observation:
        return self.obs[-1]


class SignalTimeline:
    """Colour segments per signal group, rebuilt from the states the board reports.

    The board back-dates ``since_pts`` when it confirms a change, so asking for the colour at
    an earlier (interpolated) time after the fact gives the colour that was really shown. Each
    segment also keeps whether its onset was seen (see :attr:`SignalState.onset_seen`). A
    colour first read after damaged pictures is preceded by an UNKNOWN segment from
    :attr:`SignalState.unknown_from`: the change may have happened anywhere in them.
    """

    def __init__(self) -> None:
        self._segs: dict[str, list[tuple[float, LampColor, bool]]] = {}
        self._dark: dict[str, float | None] = {}

    def update(self, signals: Mapping[str, SignalState]) -> None:
        for group, st in signals.items():
            self._dark[group] = st.dark_since
            segs = self._segs.setdefault(group, [])
            if segs and segs[-1][1] is st.color and segs[-1][0] <= st.since_pts:
                continue
            unknown = st.unknown_from if st.unknown_from is not None else st.since_pts
            start = min(unknown, st.since_pts)
            while segs and segs[-1][0] >= start:
                segs.pop()
            if start < st.since_pts:  # damaged pictures before this colour was first read
                segs.append((start, LampColor.UNKNOWN, False))
            segs.append((st.since_pts, st.color, st.onset_seen))
            del segs[:-_MAX_SEGMENTS]

    def _segment(self, group: str, pts: float) -> tuple[float, LampColor, bool] | None:
        for seg in reversed(self._segs.get(group, [])):
            if seg[0] <= pts:
                return seg
        return None

    def color_at(self, group: str, pts: float) -> tuple[LampColor, float]:
        """(colour, since) at ``pts``; UNKNOWN when nothing is known that early."""
        seg = self._segment(group, pts)
        return (LampColor.UNKNOWN, pts) if seg is None else (seg[1], seg[0])

    def pending_at(self, group: str, pts: float) -> bool:
        """Whether the colour at ``pts`` is not decided yet: the group's head has read dark
        since then or before (:attr:`SignalState.dark_since`) and it is still held — the same
        colour coming back, or a fault, will say what was shown."""
        since = self._dark.get(group)
        return since is not None and since <= pts

    def onset_seen_at(self, group: str, pts: float) -> bool:
        """Whether the colour shown at ``pts`` was seen to begin (False: since when it was first
        seen, a lower bound of how long it had been on)."""
        seg = self._segment(group, pts)
        return seg is not None and seg[2]


RED_ONSET_NOT_SEEN = ("red_onset", "not_seen")
"""``Event.extra`` item of a violation whose red began before it was seen: its
``seconds_since_red`` is a lower bound (the red was already on when reading began)."""


def red_onset(timeline: SignalTimeline, group: str, pts: float) -> tuple[tuple[str, str], ...]:
    """The ``extra`` items stating how the red age at ``pts`` is known (none when seen)."""
    return () if timeline.onset_seen_at(group, pts) else (RED_ONSET_NOT_SEEN,)


def red_age_text(seconds: float, onset: tuple[tuple[str, str], ...]) -> str:
    """ "12.30s after red", or "at least 12.30s after red (…)" when the onset was not seen."""
    if onset:
        return f"at least {seconds:.2f}s after red (red already on when first seen)"
    return f"{seconds:.2f}s after red"


def line_contact(line: OrientedLine, o: Observation, wheel_lines: bool) -> Vec:
    """The point whose side of a stop line ``line`` says where the vehicle is: with
    ``wheel_lines`` (the bottom-centre anchor), a car's, bus's or truck's wheel line middle
    (:meth:`OrientedLine.wheel_point`), else the track's anchor. The red-light rule and the
    movement rules time a crossing by it, and the evidence's per-image side
    (:meth:`sharpeyes.pipeline.evidence.facts.StopLine.side`) judges by the same point."""
    if wheel_lines and o.own_y2 is None and o.class_id in WHEEL_LINE_CLASSES:
        return line.wheel_point(o.box)
    return o.anchor


def dominant_class(obs: Sequence[Observation]) -> int:
    return Counter(o.class_id for o in obs).most_common(1)[0][0]


def trajectory(obs: Sequence[Observation]) -> tuple[TrajectoryPoint, ...]:
    n = len(obs)
    step = max(1, -(-n // _TRAJECTORY_POINTS))
    picked = list(obs)[::step]
    if picked[-1] is not obs[-1]:
        picked.append(obs[-1])
    return tuple(
        TrajectoryPoint(o.pts, round(o.anchor[0], 1), round(o.anchor[1], 1)) for o in picked
    )


@dataclass(frozen=True, slots=True)
class ViolationFacts:
    """Everything a rule decided about one violation, to turn into an :class:`Event`."""

    type: EventType
    stream_id: str
    track: TrackHistory
    frame_size: tuple[int, int]
    violation: Violation
    best: Observation
    end: Observation
    direction: str | None
    detail: str
    extra: tuple[tuple[str, str], ...] = ()


def violation_event(f: ViolationFacts, id_kind: str | None = None) -> Event:
    """The :class:`Event` for a violation, with a deterministic id: it hashes the stream, the
    track, its first sighting and ``id_kind`` (the event type's value unless given — the suite
    rules name their violation there, see :func:`pipeline.rules.charge.charge_event`)."""
    obs = list(f.track.obs)
    w, h = f.frame_size
    x1, y1, x2, y2 = f.best.box
    kind = f.type.value if id_kind is None else id_kind
    return Event(
        event_id=make_event_id(f.stream_id, f.track.track_id, f.track.first_wall_ms, kind),
        type=f.type,
        stream_id=f.stream_id,
        first_seen_ms=f.track.first_wall_ms,
        last_seen_ms=f.end.wall_ms,
        first_pts=f.track.first_pts,
        last_pts=f.end.pts,
        kind=f.track.kind,
        class_id=dominant_class(obs),
        track_id=f.track.track_id,
        confidence=round(sum(o.confidence for o in obs) / len(obs), 4),
        best_box=Box(x1, y1, x2, y2, w, h),
        best_pts=f.best.pts,
        trajectory=trajectory(obs),
        direction=f.direction,
        violation=f.violation,
        detail=f.detail,
        extra=f.extra,
    )


def _beijing_minutes(wall_ms: int) -> int:
    return int(((wall_ms // 1000 + 8 * 3600) % 86400) // 60)


def _in_window(minute: int, start: str, end: str) -> bool:
    s = int(start[:2]) * 60 + int(start[3:])
    e = int(end[:2]) * 60 + int(end[3:])
    return s <= minute < e if s <= e else minute >= s or minute < e


def exempt(exemptions: Sequence[Exemption], lane_id: str, mv: Movement, wall_ms: int) -> bool:
    """Whether ``mv`` from lane ``lane_id`` is allowed on red at ``wall_ms`` (Beijing time)."""
    minute = _beijing_minutes(wall_ms)
    for ex in exemptions:
        if ex.movement is not mv or (ex.lanes and lane_id not in ex.lanes):
            continue
        if not ex.windows or any(_in_window(minute, w.start, w.end) for w in ex.windows):
            return True
    return False


def in_windows(windows: Sequence[TimeWindow], wall_ms: int) -> bool:
    """Whether ``wall_ms`` falls in any of the daily windows (Beijing time); empty = always."""
    if not windows:
        return True
    minute = _beijing_minutes(wall_ms)
    return any(_in_window(minute, w.start, w.end) for w in windows)
