"""Clothing colours of persons and of two-wheeler riders (GA/T 1400 CoatColor / TrousersColor).

:class:`ClothingColours` wraps a stream's track-event builder (it is one itself). Every frame it
reads the detected person tracks and the riders of non-motor tracks on **best-view
candidates** (box quality ≥ ``candidate_ratio`` of the track's best, at most every
``read_interval_s`` and ``max_reads`` times a track): the upper body (coat) and lower body
(trousers) of the person box are classified by :mod:`.lab_colour` against the backdrop around
the box. A non-motor track's rider is the person box sitting on it in that frame
(:func:`sharpeyes.pipeline.riders.carrier_ids`). Reads are voted per track
(:func:`.lab_colour.vote`) and put on the track's events as ``extra`` ``coat_color`` and
``trousers_color`` (ColorType names; a rider's trousers are not stated, see
:data:`RIDER_TROUSERS`) — ``person_seen`` and ``pedestrian_red_light`` for persons,
``non_motor_pass`` for the rider. State is per track, dropped with the track's pass event, on
staleness and at stream end. It runs inside the checkpoint structuring stage
(:class:`.vehicle.VehicleStructuring`), so every entry point gets it from the one composition root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sharpeyes.pipeline.events import box_quality
from sharpeyes.pipeline.picture import PictureColour
from sharpeyes.pipeline.riders import carrier_ids
from sharpeyes.pipeline.runner import TrackEvents
from sharpeyes.pipeline.structuring.lab_colour import (
    ColourRules,
    ColourVote,
    backdrop,
    classify_box,
    coat_region,
    trousers_region,
    vote,
)
from sharpeyes.pipeline.types import Box, Event, EventType, Frame, ObjectKind, Tracks

__all__ = ["CLOTHING_RULES", "RIDER_TROUSERS", "ClothingColours", "clothing_of"]

CLOTHING_RULES = ColourRules(
    paint_quantile=0.5, black_over_road=-10.0, pastel=0.35, ring_colours=True
)
"""Garment regions hold no windows or tyres: the median reads the cloth, and black is cloth
clearly darker than the road around the person. A red-family pixel whose CIE saturation
(C*/L*) is under 0.35 is pink: a light, weakly saturated red garment (the pink coats measured
0.23–0.26, red ones 0.7 and more; 0.3–0.45 all score the same)."""

RIDER_TROUSERS = False
"""Whether a rider's trousers colour is stated. It is not: the lower part of a rider's box is the
two-wheeler (its front shield, seat, tail light and plate), the legs at most a few pixels at its
sides. On the 79 labelled hanoi_b riders the first reader named no trousers colour for 67 (legs
hidden); against the second reader, who named 42, the garment region read 19 right (45 %) and
no side-strip region beside the seat did better than 21 (50 %) — below what a search by
trousers colour can use. A pedestrian's trousers are read; a person track seen on a two-wheeler
in any frame states none (a rider whose bike the detector missed in its other frames)."""

_EVENT_KINDS = {
    EventType.PERSON_SEEN,
    EventType.PEDESTRIAN_RED_LIGHT,
    EventType.NON_MOTOR_PASS,
}
_FINAL = {EventType.PERSON_SEEN, EventType.NON_MOTOR_PASS}


@dataclass(slots=True)
class _State:
    last_pts: float
    best_quality: float = 0.0
    last_read_pts: float | None = None
    reads: int = 0
    coat: list[ColourVote | None] = field(default_factory=list)
    trousers: list[ColourVote | None] = field(default_factory=list)
    carried: bool = False  # this person track was seen on a two-wheeler at least once
    monochrome_reads: int = 0  # reads on a picture without colour (no colour voted there)


def clothing_of(
    image: np.ndarray,
    person: Box,
    rules: ColourRules = CLOTHING_RULES,
    *,
    rider: bool = False,
    exposure: float = 1.0,
    balance: np.ndarray | None = None,
) -> tuple[ColourVote | None, ColourVote | None]:
    """Coat and trousers colour of one person box in one frame (``exposure`` and ``balance``:
    the picture's :func:`~sharpeyes.pipeline.picture.picture_balance`); a rider's trousers are
    None (:data:`RIDER_TROUSERS`)."""
    scene = backdrop(image, person, exposure=exposure, balance=balance)
    coat = classify_box(image, coat_region(person), scene, rules)
    if rider and not RIDER_TROUSERS:
        return coat, None
    return coat, classify_box(image, trousers_region(person), scene, rules)


class ClothingColours:
    """A :class:`~sharpeyes.pipeline.runner.TrackEvents` adding clothing colours to the person
    and non-motor events of the builder it wraps (see the module docstring)."""

    def __init__(
        self,
        inner: TrackEvents,
        *,
        candidate_ratio: float = 0.8,
        read_interval_s: float = 0.2,
        max_reads: int = 8,
        min_height_px: float = 32.0,
        stale_s: float = 300.0,
        has_colour: PictureColour | None = None,
    ) -> None:
        """``has_colour``: whether a frame shows colour and how much it is brightened (one
        :class:`PictureColour` shared with the stage around this one); a grey picture's
        garments are not read."""
        self._inner = inner
        self._has_colour = has_colour or PictureColour()
        self._ratio = candidate_ratio
        self._interval = read_interval_s
        self._max_reads = max_reads
        self._min_h = min_height_px
        self._stale_s = stale_s
        self._tracks: dict[int, _State] = {}

    def __len__(self) -> int:
        return len(self._tracks)

    def update(self, frame: Frame, tracks: Tracks) -> list[Event]:
        if not frame.corrupt and len(tracks):
            self._observe(frame, tracks)
        events = self._enrich(self._inner.update(frame, tracks))
        stale = [t for t, s in self._tracks.items() if frame.pts - s.last_pts > self._stale_s]
        for tid in stale:
            del self._tracks[tid]
        return events

    def finish(self, track_ids: Sequence[int]) -> list[Event]:
        events = self._enrich(self._inner.finish(track_ids))
        for tid in track_ids:
            self._tracks.pop(int(tid), None)
        return events

    def flush(self) -> list[Event]:
        events = self._enrich(self._inner.flush())
        self._tracks.clear()
        return events

    def _observe(self, frame: Frame, tracks: Tracks) -> None:
        live = tracks[tracks.detected]
        people = np.flatnonzero(live.kind == int(ObjectKind.PERSON))
        if not len(people):
            return
        quality = box_quality(live.xyxy, live.confidence, frame.width, frame.height)
        carriers = carrier_ids(live)
        for i in people:
            if carriers[i] >= 0:  # its own event (if the runner emits one) states no trousers
                own = self._tracks.setdefault(int(live.track_id[i]), _State(frame.pts))
                own.last_pts, own.carried = frame.pts, True
            # a rider's colours belong to the two-wheeler's track (its non_motor_pass event)
            owner = int(carriers[i]) if carriers[i] >= 0 else int(live.track_id[i])
            x1, y1, x2, y2 = (float(v) for v in live.xyxy[i])
            state = self._tracks.setdefault(owner, _State(frame.pts))
            state.last_pts = frame.pts
            q = float(quality[i])
            state.best_quality = max(state.best_quality, q)
            if y2 - y1 >= self._min_h and self._is_candidate(state, q, frame.pts):
                state.reads += 1
                state.last_read_pts = frame.pts
                if not self._has_colour(frame):
                    state.monochrome_reads += 1
                    continue
                picture = self._has_colour.balance(frame)
                coat, trousers = clothing_of(
                    frame.image,
                    Box(x1, y1, x2, y2, frame.width, frame.height),
                    rider=bool(carriers[i] >= 0),
                    exposure=picture.exposure,
                    balance=picture.gains,
                )
                state.coat.append(coat)
                state.trousers.append(trousers)

    def _is_candidate(self, state: _State, quality: float, pts: float) -> bool:
        if state.reads >= self._max_reads or quality < self._ratio * state.best_quality:
            return False
        return state.last_read_pts is None or pts - state.last_read_pts >= self._interval

    def _enrich(self, events: list[Event]) -> list[Event]:
        return [self._attributes(e) if e.type in _EVENT_KINDS else e for e in events]

    def _attributes(self, event: Event) -> Event:
        if event.track_id is None:
            return event
        tid = int(event.track_id)
        state = self._tracks.pop(tid, None) if event.type in _FINAL else self._tracks.get(tid)
        if state is None:
            return event
        extra: list[tuple[str, str]] = []
        # a person ever seen on a two-wheeler is a rider whose bike was missed in the other
        # frames: its lower box there is the bike too
        trousers = [] if state.carried and not RIDER_TROUSERS else state.trousers
        for key, reads in (("coat_color", state.coat), ("trousers_color", trousers)):
            fused = vote(reads)
            if fused is not None:
                extra.append((key, fused.color))
        if state.reads and state.monochrome_reads == state.reads:
            extra.append(("color_status", "monochrome"))  # a grey picture names no colour
        return event.with_(extra=(*event.extra, *extra)) if extra else event
