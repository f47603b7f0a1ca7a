"""Pedestrian red-light running (行人闯红灯): a person enters a crosswalk while its pedestrian
signal is red and advances ``min_progress`` of the crossing axis inside it.

Persons riding a bicycle or motorbike (their box lies mostly inside a non-motor / motor
vehicle box in most frames) are riders, not pedestrians, and are skipped. A person first seen
already inside the crosswalk is not charged (we did not see where they entered). Pure: time is
frame time, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sharpeyes.pipeline.calibration import Crosswalk, IntersectionCalibration
from sharpeyes.pipeline.rules.common import (
    Observation,
    SignalTimeline,
    TrackHistory,
    ViolationFacts,
    red_age_text,
    red_onset,
    violation_event,
)
from sharpeyes.pipeline.rules.geometry import PixelPolygon, Vec, to_pixels
from sharpeyes.pipeline.types import (
    Event,
    EventType,
    Frame,
    LampColor,
    ObjectKind,
    SignalState,
    Tracks,
    Violation,
)

_RIDER_COVER = 0.4  # fraction of a person box inside a vehicle box that makes a rider
_RIDER_SHARE = 0.3  # share of a track's frames as a rider that makes the track a rider


@dataclass(frozen=True, slots=True)
class _CrosswalkGeo:
    cfg: Crosswalk
    polygon: PixelPolygon
    origin: Vec
    axis: Vec  # unit vector
    length: float

    def position(self, p: Vec) -> float:
        return (p[0] - self.origin[0]) * self.axis[0] + (p[1] - self.origin[1]) * self.axis[1]


@dataclass(slots=True)
class _Walker:
    hist: TrackHistory
    outside: Observation | None = None
    inside: Observation | None = None
    where: _CrosswalkGeo | None = None
    inside_count: int = 0
    rider_frames: int = 0
    done: bool = False


def _rider_mask(tracks: Tracks, persons: Tracks) -> np.ndarray:
    vehicles = tracks.of_kind(ObjectKind.NON_MOTOR, ObjectKind.MOTOR_VEHICLE).xyxy
    if len(vehicles) == 0 or len(persons) == 0:
        return np.zeros(len(persons), bool)
    p = persons.xyxy[:, None, :]
    v = vehicles[None, :, :]
    iw = np.clip(np.minimum(p[..., 2], v[..., 2]) - np.maximum(p[..., 0], v[..., 0]), 0, None)
    ih = np.clip(np.minimum(p[..., 3], v[..., 3]) - np.maximum(p[..., 1], v[..., 1]), 0, None)
    area = np.maximum((p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1]), 1e-6)
    return np.asarray(((iw * ih) / area).max(axis=1) >= _RIDER_COVER)


class PedestrianRedLightRule:
    """Pedestrians entering a crosswalk on red."""

    def __init__(
        self, stream_id: str, calib: IntersectionCalibration, frame_size: tuple[int, int]
    ) -> None:
        self.stream_id = stream_id
        self.calib = calib
        self.frame_size = frame_size
        self._confirm = calib.confirm_frames
        self._crosswalks = []
        for cw in calib.crosswalks:
            a, b = to_pixels(cw.axis, frame_size)
            length = math.hypot(b[0] - a[0], b[1] - a[1])
            axis = ((b[0] - a[0]) / length, (b[1] - a[1]) / length)
            poly = PixelPolygon(to_pixels(cw.polygon, frame_size))
            self._crosswalks.append(_CrosswalkGeo(cw, poly, a, axis, length))
        self._timeline = SignalTimeline()
        self._tracks: dict[int, _Walker] = {}

    def update(
        self, frame: Frame, tracks: Tracks, signals: Mapping[str, SignalState]
    ) -> list[Event]:
        self._timeline.update({g: s.unfaulted() for g, s in signals.items()})  # fault → UNKNOWN
        persons = tracks.of_kind(ObjectKind.PERSON)
        riders = _rider_mask(tracks, persons)
        anchors = persons.anchors(self.calib.anchor)
        events: list[Event] = []
        for i in range(len(persons)):
            tid = int(persons.track_id[i])
            st = self._tracks.setdefault(tid, _Walker(TrackHistory(tid, ObjectKind.PERSON)))
            o = Observation.of_row(frame, persons, anchors, i)
            st.hist.add(o)
            st.rider_frames += int(riders[i])
            ev = self._step(st, o)
            if ev is not None:
                events.append(ev)
        self._evict(frame.pts)
        return events

    def end_of_stream(self) -> list[Event]:
        self._tracks.clear()
        self._timeline = SignalTimeline()
        return []

    def oldest_needed_pts(self) -> float | None:
        """The earliest pts of a frame a pending walker may still need for evidence (None: none).

        Image 1 is the walker's last observation outside the crosswalk before it entered; a
        walker outside needs nothing older than its latest observation.
        """
        needed: float | None = None
        for st in self._tracks.values():
            if st.done or not st.hist.obs:
                continue
            t = st.outside.pts if st.outside is not None else st.hist.last.pts
            needed = t if needed is None else min(needed, t)
        return needed

    def _is_rider(self, st: _Walker) -> bool:
        return st.rider_frames > _RIDER_SHARE * len(st.hist.obs)

    def _step(self, st: _Walker, o: Observation) -> Event | None:
        if st.done:
            return None
        cw = next((c for c in self._crosswalks if c.polygon.contains(o.anchor)), None)
        if cw is None:
            st.outside, st.inside, st.where, st.inside_count = o, None, None, 0
            return None
        if st.outside is None:
            return None  # first seen inside: entry not observed
        if st.where is not cw:
            st.where, st.inside, st.inside_count = cw, o, 0
        st.inside_count += 1
        assert st.inside is not None
        if self._timeline.pending_at(cw.cfg.signal_group, st.inside.pts):
            return None  # the head went dark before the entry: wait until that is resolved
        color, since = self._timeline.color_at(cw.cfg.signal_group, st.inside.pts)
        if color is not LampColor.RED:
            st.done = st.inside_count >= self._confirm  # entered on a non-red: never charged
            return None
        progress = abs(cw.position(o.anchor) - cw.position(st.inside.anchor)) / cw.length
        if st.inside_count < self._confirm or progress < cw.cfg.min_progress or self._is_rider(st):
            return None
        st.done = True
        return self._event(st, cw, o, st.inside.pts - since)

    def _event(self, st: _Walker, cw: _CrosswalkGeo, o: Observation, since_red: float) -> Event:
        assert st.outside is not None and st.inside is not None
        v = Violation(
            code=self.calib.pedestrian_code,
            signal_group=cw.cfg.signal_group,
            signal_color=LampColor.RED,
            seconds_since_red=round(since_red, 3),
            lane_no=None,
            movement="crossing",
            approach=cw.cfg.id,
            crossed_stop_line_pts=st.inside.pts,
            evidence_pts=(st.outside.pts, st.inside.pts, o.pts),
        )
        onset = red_onset(self._timeline, cw.cfg.signal_group, st.inside.pts)
        detail = f"entered crosswalk {cw.cfg.id} {red_age_text(since_red, onset)}"
        facts = ViolationFacts(
            EventType.PEDESTRIAN_RED_LIGHT,
            self.stream_id,
            st.hist,
            self.frame_size,
            v,
            st.inside,
            o,
            None,
            detail,
            (("crosswalk_id", cw.cfg.id), *onset),
        )
        return violation_event(facts)

    def _evict(self, pts: float) -> None:
        stale = [
            t for t, s in self._tracks.items() if pts - s.hist.last.pts > self.calib.stale_track_s
        ]
        for tid in stale:
            del self._tracks[tid]
