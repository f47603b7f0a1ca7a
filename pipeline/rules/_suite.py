"""What the violation-suite rules judged on one calibration block share (wrong way, solid line,
illegal parking, yielding to pedestrians): the block and its exempt classes, the rule's part of
every :class:`Charge` (name, code, stream, frame size), and the frame loop over the tracks not
yet charged."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Generic, NotRequired, Protocol, TypedDict, TypeVar, Unpack

from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.rules.charge import (
    Charge,
    Raw,
    Row,
    TrackRule,
    TrackTable,
    charge_event,
    exempt_class,
)
from sharpeyes.pipeline.rules.common import Observation, TrackHistory
from sharpeyes.pipeline.types import Event, LampColor, ObjectKind


class RuleBlock(Protocol):
    """A rule's calibration block: a :class:`ViolationRuleConfig` with its violation code."""

    @property
    def code(self) -> str: ...

    @property
    def exempt_class_ids(self) -> list[int]: ...


class Settles(Protocol):
    """Per-track state that is ``done`` once its track was charged (or exempted)."""

    done: bool


S = TypeVar("S")
B = TypeVar("B", bound=RuleBlock)
D = TypeVar("D", bound=Settles)


class ChargeFacts(TypedDict):
    """What a suite rule decided about one violation: the fields of its :class:`Charge` that
    are not the rule's own (name, code, stream, frame size) nor the track."""

    at_pts: float
    best: Observation
    end: Observation
    stages: tuple[float, float, float]
    detail: str
    lane_no: NotRequired[int | None]
    direction: NotRequired[str | None]
    signal_group: NotRequired[str]
    signal_color: NotRequired[LampColor]
    extra: NotRequired[tuple[tuple[str, str], ...]]
    key: NotRequired[str]


class BlockRule(TrackRule[S], Generic[S, B]):
    """A :class:`TrackRule` judged on one calibration block ``cfg``; events named ``name``."""

    name: ClassVar[str]

    def __init__(
        self,
        stream_id: str,
        calib: IntersectionCalibration,
        frame_size: tuple[int, int],
        cfg: B,
        make: Callable[[int, ObjectKind], S],
    ) -> None:
        self.cfg = cfg
        super().__init__(stream_id, calib, frame_size, make)

    def exempt(self, hist: TrackHistory) -> bool:
        """Whether the track is mostly one of the block's exempt classes (never charged)."""
        return exempt_class(hist, self.cfg.exempt_class_ids)

    def charge(self, track: TrackHistory, **facts: Unpack[ChargeFacts]) -> Event:
        """The event of a violation of this rule by ``track`` (see :class:`Charge`)."""
        return charge_event(
            Charge(
                name=self.name,
                code=self.cfg.code,
                stream_id=self.stream_id,
                frame_size=self.frame_size,
                track=track,
                **facts,
            )
        )


def step_open(
    table: TrackTable[D],
    rows: list[Row],
    pts: float,
    step: Callable[[int, ObjectKind, D, Raw], Event | None],
    events: list[Event] | None = None,
) -> list[Event]:
    """Run ``step`` on each row whose track is not ``done`` yet, then evict the stale tracks.

    Returns:
        ``events`` (a new list when None) with the events ``step`` returned appended.
    """
    out: list[Event] = [] if events is None else events
    for tid, kind, raw in rows:
        st = table.get(tid, kind, raw[0])
        if st.done:
            continue
        ev = step(tid, kind, st, raw)
        if ev is not None:
            out.append(ev)
    table.evict(pts)
    return out
