"""Crossing a solid lane line (压实线 / 违法变道): a vehicle changes lanes over a solid line.

The wheel line is the bottom edge of the tracker's box; its side of each calibrated polyline is
followed per track. A side counts only when the middle half of the wheel line is on it,
``margin`` (fraction of the frame diagonal) clear of the line, and after ``confirm_frames``
consecutive analysed frames. So a vehicle driving along (or standing on) the line never flips
sides — even when its box grows and shrinks by a neighbour's width, as the boxes of queued
motorbikes on real footage do (hanoi_b) — and a vehicle first seen on the line only gets a side
once it leaves it. A confirmed change of side is a crossing; a point whose foot falls beyond the
polyline's ends has no side and forgets the side it had: turning round the end of a line is not
crossing it (nor is a tracker's identity switching, past the end, to a vehicle on the other
side — hanoi_b, track 119). Charged once per track; an exempt class never is.

Evidence stages: 1 the last frame confirmed on the old side, 2 the frame with the wheel line
closest to the line (on it), 3 the frame that confirmed the new side.

Default code ``1345`` — 机动车违反禁止标线指示的 (Road Traffic Safety Law art. 38, art. 90), as
listed in the Ministry's 交通违法行为代码 table (the code many provinces print for 压实线; the
older table had 1230); read from public copies of the table, not verified against an official
text offline. Set ``solid_lines.code`` from the deploying province's table.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from sharpeyes.pipeline.calibration import IntersectionCalibration, SolidLineConfig
from sharpeyes.pipeline.rules._suite import BlockRule, step_open
from sharpeyes.pipeline.rules.charge import Raw, frame_rows, needed, observe, points_text, region_of
from sharpeyes.pipeline.rules.common import Observation, TrackHistory
from sharpeyes.pipeline.rules.geometry import Polyline, to_pixels
from sharpeyes.pipeline.types import Anchor, Event, Frame, ObjectKind, SignalState, Tracks

NAME = "solid_line"
_HISTORY = 400  # rows kept per track (as many as a TrackHistory keeps)
_BAND = 0.10  # wheel lines this far (fraction of the diagonal) outside the lines' box: skipped


@dataclass(slots=True)
class _Side:
    stable: int = 0  # -1 / +1 once confirmed, 0 before
    last_stable: Raw | None = None
    pending: int = 0
    count: int = 0
    closest: Raw | None = None
    closest_d: float = math.inf


@dataclass(slots=True, eq=False)
class _Car:
    rows: deque[Raw]  # recent rows near the lines: the charge's history, built only then
    sides: dict[str, _Side] = field(default_factory=dict)
    done: bool = False


class SolidLineRule(BlockRule[_Car, SolidLineConfig]):
    """Lane changes over the calibrated solid lines of one stream."""

    name = NAME

    def __init__(
        self, stream_id: str, calib: IntersectionCalibration, frame_size: tuple[int, int]
    ) -> None:
        cfg = needed(calib.solid_lines, "SolidLineRule", "solid_lines")
        super().__init__(
            stream_id, calib, frame_size, cfg, lambda tid, kind: _Car(deque(maxlen=_HISTORY))
        )
        pixels = [to_pixels(ln.points, frame_size) for ln in self.cfg.lines]
        self._lines = [(ln.id, Polyline(p)) for ln, p in zip(self.cfg.lines, pixels, strict=True)]
        self._points = {ln.id: points_text(p) for ln, p in zip(self.cfg.lines, pixels, strict=True)}
        diag = math.hypot(*frame_size)
        self._margin = self.cfg.margin * diag
        self._region = region_of(pixels, max(_BAND * diag, 3.0 * self._margin))

    def update(
        self, frame: Frame, tracks: Tracks, signals: Mapping[str, SignalState]
    ) -> list[Event]:
        rows, _ = frame_rows(frame, tracks, self._kinds, Anchor.BOTTOM_CENTER, region=self._region)
        return step_open(self._tracks, rows, frame.pts, self._step)

    def _step(self, tid: int, kind: ObjectKind, st: _Car, raw: Raw) -> Event | None:
        st.rows.append(raw)
        p = raw[2]  # the wheel line's centre: bottom centre of the box
        quarter = (raw[3][2] - raw[3][0]) / 4.0
        for line_id, line in self._lines:
            hit = line.side_distance_across(p)
            if hit is None:  # beyond the line's ends: going round them is no crossing
                st.sides.pop(line_id, None)
                continue
            d, across = hit
            clear = self._margin + quarter * across  # the wheel line's middle half off the line
            side = st.sides.get(line_id)
            if side is None:
                side = st.sides[line_id] = _Side()
            if self._follow(side, d, clear, raw):
                st.done = True
                hist = TrackHistory(tid, kind)
                for r in st.rows:
                    hist.add(observe(r))
                if self.exempt(hist):
                    return None
                return self._charge(hist, line_id, side, hist.last)
        return None

    def _follow(self, s: _Side, d: float, clear: float, o: Raw) -> bool:
        """Update one line's side state (``clear``: the distance from the line that counts as
        a side); True when a change of side is confirmed."""
        if s.stable and abs(d) < s.closest_d:
            s.closest, s.closest_d = o, abs(d)
        if abs(d) < clear:
            s.pending, s.count = 0, 0
            return False
        sign = 1 if d > 0 else -1
        s.count = s.count + 1 if sign == s.pending else 1
        s.pending = sign
        if s.count < self.cfg.confirm_frames:
            return False
        if sign == s.stable or not s.stable:
            s.stable, s.last_stable = sign, o
            s.closest, s.closest_d = None, math.inf
            return False
        return True

    def _charge(self, hist: TrackHistory, line_id: str, s: _Side, o: Observation) -> Event:
        start = observe(s.last_stable) if s.last_stable is not None else o
        on = observe(s.closest) if s.closest is not None else o
        return self.charge(
            hist,
            at_pts=on.pts,
            best=on,
            end=o,
            stages=(start.pts, on.pts, o.pts),
            detail=f"crossed solid line {line_id} at {on.pts:.2f}s "
            f"(left its side at {start.pts:.2f}s, confirmed over at {o.pts:.2f}s)",
            extra=(
                ("line_id", line_id),
                ("line_px", self._points[line_id]),
                ("line_margin_px", f"{self._margin:.1f}"),
            ),
        )
