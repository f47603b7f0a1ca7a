"""Phase model over raw lamp readings: hysteresis, continuous timers and signal faults.

* A new colour needs ``confirm_frames`` readings of it (dark readings in between do not reset
  the count, so a flickering LED still confirms); ``since_pts`` is back-dated to its first
  reading, so rules see when the colour really began.
* A lit lamp does not go dark mid-phase: OFF / UNKNOWN readings keep the current colour and its
  ``since_pts`` (the red timer is continuous across misreads and flicker) until the dark run has
  lasted ``dark_hold_s`` seconds (and ``confirm_frames`` readings) without a reading of the
  colour in between.
* A sustained dark period of a head that was lit is a **signal fault**: the state becomes OFF
  with ``fault`` set (back-dated to the start of the dark run); rules treat it like UNKNOWN.
  The fault clears when a colour is confirmed again. A sustained run of unreadable frames
  becomes UNKNOWN (a reading problem, not a fault).
* The onset of a colour is *seen* only when the colour followed another colour (or a head that
  was dark from the start). The first colour after the start, after an UNKNOWN stretch, after a
  lit head went dark (a fault, or something in front of it) or after a gap in
  the frames longer than ``max_gap_s`` and 2.5 usual steps (a reconnect, a stall: anything may
  have happened meanwhile, so the state becomes UNKNOWN back-dated to the last frame before the
  gap) has
  ``onset_seen`` False: its ``since_pts`` is when it was first seen, and the time it has been on
  is a lower bound — stated as such, never as the red age. The same colour again within
  ``bridge_s`` of the start of such an unreadable or dark stretch is the same phase: it keeps
  its first ``since_pts`` and whether that onset was seen (the red timer runs on).
"""

from __future__ import annotations

from dataclasses import dataclass

from sharpeyes.pipeline.signal_reader import LampReading
from sharpeyes.pipeline.types import LampColor, SignalState

_DARK = (LampColor.OFF, LampColor.UNKNOWN)


@dataclass(frozen=True, slots=True)
class SignalParams:
    """Tunables of the phase model and of the calibration checks (seconds are frame time)."""

    confirm_frames: int = 2
    dark_hold_s: float = 2.0
    window: int = 600
    """Samples each running per-cell statistic keeps."""
    never_lit_s: float = 10.0
    """A head seen this long without one lit reading is a calibration problem."""
    stuck_s: float = 300.0
    """A head showing one colour this long without any change is a calibration problem."""
    unreadable_s: float = 10.0
    """A head read as lit but of no colour for this long at a stretch (frames no further apart
    than ``max_gap_s``) is a calibration problem: the region cuts a lamp, or the layout is
    wrong. Kept once seen, so that ``signal-check`` reports it after the stretch ended."""
    max_gap_s: float = 3.0
    """Frames further apart than this (a reconnect, a stall) leave the state unknown between."""
    bridge_s: float = 6.0
    """An unknown stretch (unreadable head, gap) this short between readings of one colour is
    one phase: the shortest cycle back to the same colour (a minimum green or red plus a 3 s
    amber, GB 14886) is longer."""


class SignalSmoother:
    """Hysteresis and phase model over one head's raw readings (see module docstring)."""

    def __init__(
        self,
        group: str,
        confirm_frames: int = 2,
        dark_hold_s: float = 2.0,
        max_gap_s: float = 3.0,
        bridge_s: float = 6.0,
    ) -> None:
        self.group = group
        self._confirm = confirm_frames
        self._dark_hold = dark_hold_s
        self._max_gap = max_gap_s
        self._bridge = bridge_s
        # (colour, since, onset seen, UNKNOWN from) of the colour an unreadable stretch followed
        self._before_unknown: tuple[LampColor, float | None, bool, float] | None = None
        self._color = LampColor.UNKNOWN
        self._since: float | None = None
        self._onset_seen = False
        self._last_pts: float | None = None
        self._step: float | None = None  # usual step between frames (smoothed)
        self._conf = 0.0
        self._fault: str | None = None
        self._seen_color = False
        self._cand: LampColor | None = None
        self._cand_since = 0.0
        self._cand_count = 0
        self._dark_since: float | None = None
        self._dark_count = 0
        self._dark_off = 0
        self.changes: list[tuple[float, LampColor, LampColor]] = []
        """Confirmed changes ``(since_pts, from, to)`` in order."""

    @property
    def fault(self) -> str | None:
        return self._fault

    def update(self, reading: LampReading, pts: float) -> SignalState:
        if self._since is None:
            self._since = pts
        last, self._last_pts = self._last_pts, pts
        if last is not None and self._is_gap(pts - last) and self._color is not LampColor.UNKNOWN:
            self._adopt(LampColor.UNKNOWN, last, 0.0)  # not seen between: nothing is known
            self._seen_color, self._fault = False, None
            self._dark_since = None
        if reading.color is self._color:
            self._cand, self._dark_since = None, None
            self._conf = 0.8 * self._conf + 0.2 * reading.confidence
        elif reading.color in _DARK:
            self._consider_dark(reading, pts)
        else:
            self._consider_color(reading, pts)
        return SignalState(
            self.group,
            self._color,
            round(self._conf, 3),
            self._since,
            pts,
            fault=self._fault,
            onset_seen=self._onset_seen,
            dark_since=self._dark_since if self._color not in _DARK else None,
        )

    def _is_gap(self, step: float) -> bool:
        """A step between frames longer than ``max_gap_s`` and than 2.5 of the usual step (a
        camera analysed at a low rate on purpose is not having a gap at every frame)."""
        usual = self._step
        gap = usual is not None and step > self._max_gap and step > 2.5 * usual
        if not gap:
            self._step = step if usual is None else 0.9 * usual + 0.1 * step
        return gap

    def _adopt(self, color: LampColor, since: float, confidence: float) -> None:
        if color is not self._color:
            self.changes.append((since, self._color, color))
            # A colour after an unreadable stretch, or after a lit head went dark (a fault or
            # something in front of it), did not begin then: its onset was not seen.
            onset_seen = self._color is not LampColor.UNKNOWN and not (
                self._color is LampColor.OFF and self._before_unknown is not None
            )
            if color in _DARK and self._color not in _DARK:
                self._before_unknown = (self._color, self._since, self._onset_seen, since)
            elif self._color in _DARK and (kept := self._bridged(color, since)):
                since, onset_seen = kept
            if color not in _DARK:
                self._before_unknown = None
            self._onset_seen = onset_seen
        self._color, self._since, self._conf = color, since, confidence
        self._cand, self._dark_since = None, None

    def _bridged(self, color: LampColor, since: float) -> tuple[float, bool] | None:
        """(since, onset seen) of the colour before a short unreadable or dark stretch when
        ``color`` is that colour again (a truck hid the head, a brief stall or lamp fault): one
        phase, not a new one — no signal goes red → green → amber → red within ``bridge_s``.
        None otherwise."""
        before = self._before_unknown
        if before is None or before[0] is not color or before[1] is None:
            return None
        if since - before[3] > self._bridge:
            return None
        return before[1], before[2]

    def _consider_dark(self, reading: LampReading, pts: float) -> None:
        if self._dark_since is None:
            self._dark_since, self._dark_count, self._dark_off = pts, 0, 0
        self._dark_count += 1
        self._dark_off += reading.color is LampColor.OFF
        if self._dark_count < self._confirm or pts - self._dark_since < self._dark_hold:
            return
        color = LampColor.OFF if 2 * self._dark_off >= self._dark_count else LampColor.UNKNOWN
        if color is self._color:
            return
        was = self._color
        start = self._dark_since
        if color is LampColor.OFF and was not in _DARK:
            self._fault = (
                f"signal fault: head dark for {pts - start:.1f} s since {start:.1f} s "
                f"(was {was.value})"
            )
        self._adopt(color, start, reading.confidence)

    def _consider_color(self, reading: LampReading, pts: float) -> None:
        self._dark_since = None
        if reading.color is self._cand:
            self._cand_count += 1
        else:
            self._cand, self._cand_since, self._cand_count = reading.color, pts, 1
        startup = not self._seen_color and reading.confidence >= 0.8
        if startup or self._cand_count >= self._confirm:
            self._seen_color = True
            self._fault = None
            self._adopt(reading.color, self._cand_since, reading.confidence)
