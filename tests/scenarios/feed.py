"""Run a scenario through the rules as pure tracks + phases (no pixels), and score it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.rules import build_rules
from sharpeyes.pipeline.signal import LampReading, SignalSmoother
from sharpeyes.pipeline.types import Event, Frame, LampColor, SignalState, Tracks
from tests.scenarios.model import FRAME_SIZE, WALL_T0_MS, Phase, Scenario, color_at
from tests.scenarios.scene import scene_calibration

_BLANK = np.zeros((FRAME_SIZE[1], FRAME_SIZE[0], 3), np.uint8)


def frame_at(s: Scenario, i: int, image: np.ndarray | None = None) -> Frame:
    pts = s.pts(i)
    return Frame(s.name, i, pts, WALL_T0_MS + round(pts * 1000), _BLANK if image is None else image)


def tracks_at(s: Scenario, i: int, rng: np.random.Generator) -> Tracks:
    """Ground-truth tracks of frame ``i`` in pixels, with the scenario's jitter."""
    w, h = FRAME_SIZE
    rows = [(a, b) for a in s.actors if (b := a.box_at(s.pts(i))) is not None]
    xyxy = np.array([[b[0] * w, b[1] * h, b[2] * w, b[3] * h] for _, b in rows], np.float32)
    xyxy = xyxy.reshape(-1, 4)
    if s.jitter_px > 0 and rows:
        xyxy += rng.normal(0.0, s.jitter_px, xyxy.shape).astype(np.float32)
    n = len(rows)
    return Tracks(
        xyxy=xyxy,
        confidence=np.full(n, 0.8, np.float32),
        class_id=np.array([a.class_id for a, _ in rows], np.int64),
        kind=np.array([int(a.kind) for a, _ in rows], np.int8),
        track_id=np.array([a.track_id for a, _ in rows], np.int64),
        detected=np.ones(n, np.bool_),
    )


def raw_reading(
    s: Scenario, phases: tuple[Phase, ...], i: int, rng: np.random.Generator
) -> LampReading:
    """What a lamp reader would say on frame ``i``: flicker → OFF, night → lower confidence."""
    color, _ = color_at(phases, s.pts(i))
    if s.flicker_every and i % s.flicker_every == 0:
        return LampReading(LampColor.OFF, 0.8)
    if s.night and rng.random() < 0.1:
        return LampReading(LampColor.UNKNOWN, 0.0)
    return LampReading(color, 0.6 if s.night else 1.0)


def signal_stream(s: Scenario) -> Iterator[dict[str, SignalState]]:
    """Per-frame smoothed signal states of the scenario's groups."""
    rng = np.random.default_rng(s.seed + 1)
    smoothers = {
        "main": (SignalSmoother("main"), s.phases),
        "ped": (SignalSmoother("ped"), s.ped_phases),
    }
    for i in range(s.n_frames):
        yield {
            g: sm.update(raw_reading(s, ph, i, rng), s.pts(i)) for g, (sm, ph) in smoothers.items()
        }


def run_pure(s: Scenario, calib: IntersectionCalibration | None = None) -> list[Event]:
    """All events the rules raise on the scenario's tracks and phases."""
    rules = build_rules(s.name, calib or scene_calibration(), FRAME_SIZE)
    rng = s.rng()
    events: list[Event] = []
    for i, signals in enumerate(signal_stream(s)):
        frame, tracks = frame_at(s, i), tracks_at(s, i, rng)
        for r in rules:
            events.extend(r.update(frame, tracks, signals))
    for r in rules:
        events.extend(r.end_of_stream())
    return events


@dataclass(frozen=True, slots=True)
class Score:
    """Counts of one or more scenarios."""

    tp: int
    fp: int
    fn: int

    def __add__(self, other: Score) -> Score:
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score(s: Scenario, events: list[Event]) -> Score:
    """Match events to the expected (track id, event type) pairs."""
    got = [(e.track_id, e.type) for e in events]
    want = list(s.expected)
    tp = sum(1 for g in set(got) if g in want)
    return Score(tp=tp, fp=len(got) - tp, fn=len(want) - tp)
