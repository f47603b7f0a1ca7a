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

from collections.abc import Sequence
from dataclasses import dataclass

from sharpeyes.pipeline.signal_reader import HeadCalibrator, LampReading
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
    check_window_s: float = 900.0
    """The calibration checks of :class:`PhaseCheck` look at this much recent frame time (a
    running check, live); ``signal-check`` sets it to infinity (the whole clip)."""
    min_check_s: float = 20.0
    """The phase checks say nothing before this much frame time has been seen."""
    max_dark_share: float = 0.25
    """A head whose phase model shows no colour (dark or unreadable) for more than this share of
    the time seen — not counting a lamp outage after a normal phase — is a calibration problem:
    a head shows one lamp at all times."""
    min_phase_s: float = 5.0
    """A red or green seen to begin and end in less than this is not a real phase (minimum
    greens are longer; a red lasts at least a conflicting minimum green plus an amber)."""
    min_amber_s: float = 2.0
    """An amber seen to begin and end in less than this is not a real amber (GB 14886: 3 s)."""
    short_phases: int = 2
    """This many too-short phases in the window are a calibration problem (one can be a
    vehicle passing in front of the head at a phase change)."""
    max_amber_s: float = 10.0
    """A steady (not flashing) amber longer than this is not a real amber: the layout or lamp
    order is likely wrong (a red lamp read as amber)."""
    max_cycle_s: float = 300.0
    """Longer than any real signal cycle: a head read for this long (colours, not flashing
    amber) without a red, or without a green, is a calibration problem."""


FAULT = "signal fault: "
IN_DOUBT = (
    " — not put down to the lamp: the head's calibration is in doubt (its readings are "
    "implausible, see the head's calibration problem)"
)


def fault_in_doubt(fault: str) -> str:
    """A fault message of a head whose calibration is in doubt: the dark head is not blamed on
    the lamp (a region on the road is dark whenever nothing lit stands in it)."""
    if fault.endswith(IN_DOUBT):
        return fault
    return fault.removeprefix(FAULT) + IN_DOUBT


class SignalSmoother:
    """Hysteresis and phase model over one head's raw readings (see module docstring)."""

    def __init__(
        self,
        group: str,
        confirm_frames: int = 2,
        dark_hold_s: float = 2.0,
        max_gap_s: float = 3.0,
        bridge_s: float = 6.0,
        *,
        check: SignalParams | None = None,
    ) -> None:
        self.group = group
        self.check = PhaseCheck(check)
        """Running calibration check over this model's output (see :class:`PhaseCheck`)."""
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
        # frames not read (damaged pictures) since the last reading of the current colour, and
        # whether the candidate colour began after such frames: its onset was not seen
        self._blind = False
        self._cand_blind = False
        # the last reading before damaged pictures while they last (what was shown since is
        # not known yet), and, for a colour first read after them, from when its state was
        # unknown (it may have begun at any time in the damaged stretch)
        self._blind_since: float | None = None
        self._unknown_from: float | None = None
        self.changes: list[tuple[float, LampColor, LampColor]] = []
        """Confirmed changes ``(since_pts, from, to)`` in order."""

    @property
    def fault(self) -> str | None:
        return self._fault

    def blind(self, pts: float) -> SignalState:
        """A frame whose picture is damaged (corrupt data, broken references): no reading. The
        state carries on unchanged; a colour first read after such frames did not begin then,
        so its onset is not seen (its time on is a lower bound). Not seen by the calibration
        check either: damage is the stream's problem, not the calibration's."""
        if self._since is None:
            self._since = pts
        self._blind = True
        if self._blind_since is None:
            self._blind_since = pts if self._last_pts is None else self._last_pts
        return self._state(pts)

    def update(self, reading: LampReading, pts: float) -> SignalState:
        if self._since is None:
            self._since = pts
        last, self._last_pts = self._last_pts, pts
        if last is not None and self._is_gap(pts - last) and self._color is not LampColor.UNKNOWN:
            self._adopt(LampColor.UNKNOWN, last, 0.0)  # not seen between: nothing is known
            self._seen_color, self._fault = False, None
            self._dark_since = None
        if reading.color is self._color:
            self._cand, self._dark_since, self._blind = None, None, False
            self._blind_since = None  # the same colour before and after: shown throughout
            self._conf = 0.8 * self._conf + 0.2 * reading.confidence
        elif reading.color in _DARK:
            self._consider_dark(reading, pts)
        else:
            self._consider_color(reading, pts)
        state = self._state(pts)
        self.check.observe(reading, state, pts)
        return state

    def _state(self, pts: float) -> SignalState:
        """The model's current state, stamped at ``pts``."""
        assert self._since is not None
        return SignalState(
            self.group,
            self._color,
            round(self._conf, 3),
            self._since,
            pts,
            fault=self._fault,
            onset_seen=self._onset_seen,
            dark_since=self._held_since() if self._color not in _DARK else None,
            unknown_from=self._unknown_from,
        )

    def _held_since(self) -> float | None:
        """Since when the current colour is only held: the head read dark, or its pictures
        were damaged (the earlier of the two)."""
        held = [t for t in (self._dark_since, self._blind_since) if t is not None]
        return min(held) if held else None

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
            # a colour first read after damaged pictures may have begun at any time in them:
            # from the last reading before them to ``since`` nothing is known
            blind = self._blind_since
            self._unknown_from = blind if blind is not None and since > blind else None
            self._blind_since = None
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
            if self.check.doubt() is not None:
                self._fault = fault_in_doubt(self._fault)
        self._adopt(color, start, reading.confidence)

    def _consider_color(self, reading: LampReading, pts: float) -> None:
        self._dark_since = None
        if reading.color is self._cand:
            self._cand_count += 1
            self._cand_blind = self._cand_blind or self._blind
        else:
            self._cand, self._cand_since, self._cand_count = reading.color, pts, 1
            self._cand_blind = self._blind
        startup = not self._seen_color and reading.confidence >= 0.8
        if startup or self._cand_count >= self._confirm:
            self._seen_color = True
            self._fault = None
            unseen = self._cand_blind
            self._adopt(reading.color, self._cand_since, reading.confidence)
            if unseen:  # it may have begun while the pictures were damaged
                self._onset_seen = False
            self._blind = self._cand_blind = False


@dataclass(slots=True)
class _Span:
    """One stretch of the phase model's output: a colour (or dark / unknown) from ``start``."""

    color: LampColor
    start: float  # since_pts of the state (back-dated to its first reading)
    end: float  # pts of its last frame
    prev: LampColor | None  # the state before it (None: the first)
    onset_seen: bool
    seen: float = 0.0  # frame time seen in it: up to the next span's start, less any gaps
    gaps: float = 0.0  # steps between frames longer than max_gap_s inside it (not seen)
    readings: int = 0
    dark_readings: int = 0  # raw OFF / UNKNOWN readings in it (a flashing amber, a PWM beat)

    @property
    def flashing(self) -> bool:
        return self.readings > 0 and self.dark_readings >= 0.25 * self.readings


def _min_phase(color: LampColor, p: SignalParams) -> float:
    return p.min_amber_s if color is LampColor.AMBER else p.min_phase_s


class PhaseCheck:
    """Running calibration check over one head's phase model: what no working, well-calibrated
    head does. Only times (phase lengths, shares of time) are judged — no image levels, so the
    check does not depend on the camera's exposure. Over the last ``check_window_s`` of frame
    time, once ``min_check_s`` has been seen:

    * **no colour** for more than ``max_dark_share`` of the time (dark or unreadable), not
      counting a dark stretch after a phase of normal length (a lamp outage: a signal fault);
    * ``short_phases`` or more phases seen to begin and end in less than a real phase lasts
      (``min_phase_s``, ``min_amber_s``): something else that lights — a vehicle, a screen;
    * a **steady amber** longer than ``max_amber_s`` (not flashing): a red or green lamp read
      as amber — the layout or the lamp order is wrong;
    * **no red, or no green**, for longer than any real cycle (``max_cycle_s``) while colours
      were read (and not a flashing amber).
    """

    def __init__(self, params: SignalParams | None = None) -> None:
        self.params = params or SignalParams()
        self._spans: list[_Span] = []
        self._last_pts: float | None = None

    def observe(self, reading: LampReading, state: SignalState, pts: float) -> None:
        """Take one frame: the raw reading and the state the phase model made of it."""
        p = self.params
        last, self._last_pts = self._last_pts, pts
        step = 0.0 if last is None else pts - last
        cur = self._spans[-1] if self._spans else None
        if cur is None or state.color is not cur.color:
            start = min(state.since_pts, pts)
            prev = None if cur is None else cur.color
            if cur is not None:  # the state is back-dated: the earlier span ends at its start
                cur.end = max(cur.start, start)
                cur.seen = max(0.0, cur.end - cur.start - cur.gaps)
                if cur.seen <= 0.0:  # replaced from its own start (the start-up frames)
                    self._spans.pop()
                    prev = cur.prev
            cur = _Span(state.color, start, pts, prev, state.onset_seen)
            self._spans.append(cur)
        cur.end = pts
        cur.gaps += step if step > p.max_gap_s else 0.0
        cur.seen = max(0.0, cur.end - cur.start - cur.gaps)
        cur.readings += 1
        cur.dark_readings += reading.color in _DARK
        horizon = pts - p.check_window_s
        while len(self._spans) > 1 and self._spans[0].end < horizon:
            self._spans.pop(0)

    # -- the checks --------------------------------------------------------------------
    def _seen(self) -> float:
        return sum(s.seen for s in self._spans)

    def _continued(self, i: int) -> bool:
        """Span ``i`` is a fragment of a phase that carried on after a short dark / unknown
        stretch (the phase model kept its start)."""
        s = self._spans[i]
        return any(t.color is s.color and t.start == s.start for t in self._spans[i + 1 :])

    def _normal(self, i: int) -> bool:
        """Span ``i`` is a colour phase of normal length (up to the next span)."""
        if not 0 <= i < len(self._spans) - 1 or self._spans[i].color in _DARK:
            return False
        s = self._spans[i]
        return self._spans[i + 1].start - s.start >= _min_phase(s.color, self.params)

    def _normal_before(self, i: int) -> bool:
        """A working head went dark at span ``i``: the colour before it was a phase of normal
        length, or followed one (a lamp may fail early in a phase)."""
        b = i - 1
        if b < 0 or self._spans[b].color in _DARK:
            return False
        return self._normal(b) or (self._spans[b].onset_seen and self._normal(b - 1))

    def dark_share(self) -> str | None:
        """A reason when the head shows no colour for too much of the time."""
        seen = self._seen()
        if seen < self.params.min_check_s:
            return None
        off = unknown = 0.0
        stretches: list[_Span] = []
        for i, s in enumerate(self._spans):
            if s.color not in _DARK:
                continue
            if s.color is LampColor.OFF and self._normal_before(i):
                continue  # a lamp outage after a normal phase: a signal fault, not calibration
            if s.color is LampColor.OFF:
                off += s.seen
            else:
                unknown += s.seen
            stretches.append(s)
        if not stretches or off + unknown <= self.params.max_dark_share * seen:
            return None
        stretches = [s for s in stretches if s.seen >= 0.5] or stretches
        longest = sorted(sorted(stretches, key=lambda s: -s.seen)[:4], key=lambda s: s.start)
        when = ", ".join(
            f"{'dark' if s.color is LampColor.OFF else 'unreadable'} {s.start:.1f}–{s.end:.1f} s"
            for s in longest
        )
        parts = [f"{n} {t:.0f} s" for n, t in (("dark", off), ("unreadable", unknown)) if t >= 0.5]
        return (
            f"read as no colour for {100 * (off + unknown) / seen:.0f} % of {seen:.0f} s "
            f"({', '.join(parts)}: {when}"
            f"{', …' if len(stretches) > 4 else ''}) — a working head always shows one lamp: "
            "the region may not be on the lamps, or something hides them"
        )

    def short_phases(self) -> str | None:
        """A reason when phases too short for a real signal were seen (begun and ended)."""
        short: list[str] = []
        for i, s in enumerate(self._spans[:-1]):
            nxt = self._spans[i + 1]
            if s.color in _DARK or not s.onset_seen or s.prev in (None, LampColor.UNKNOWN):
                continue
            if nxt.color is LampColor.UNKNOWN or self._continued(i):
                continue
            length = nxt.start - s.start
            if length < _min_phase(s.color, self.params):
                short.append(f"{s.color.value} {length:.1f} s at {s.start:.1f} s")
        if len(short) < self.params.short_phases:
            return None
        return (
            f"{len(short)} phases too short for a real signal ({', '.join(short[:4])}"
            f"{', …' if len(short) > 4 else ''}; a red or green lasts ≥ "
            f"{self.params.min_phase_s:.0f} s, an amber ≥ {self.params.min_amber_s:.0f} s) — the "
            "region may be on something else that lights (a vehicle, a screen)"
        )

    def long_amber(self) -> str | None:
        """A reason when a steady amber lasted longer than any real amber."""
        for s in self._spans:
            if s.color is not LampColor.AMBER or s.flashing:
                continue
            if s.end - s.start > self.params.max_amber_s:
                return (
                    f"steady amber for {s.end - s.start:.0f} s from {s.start:.1f} s — a real "
                    f"amber lasts a few seconds (≤ {self.params.max_amber_s:.0f} s): a red or "
                    "green lamp is read as amber, the layout or lamp order may be wrong"
                )
        return None

    def missing_colour(self, lamps: Sequence[LampColor]) -> str | None:
        """A reason when the head had no red (or no green) for longer than a cycle."""
        if not self._spans or self._last_pts is None:
            return None
        now, p = self._last_pts, self.params
        first = self._spans[0].start
        missing: list[str] = []
        for c in (LampColor.RED, LampColor.GREEN):
            if c not in lamps:
                continue
            last = max((s.end for s in self._spans if s.color is c), default=first)
            if now - last < p.max_cycle_s:
                continue
            after = [s for s in self._spans if s.end > last]
            coloured = sum(s.seen for s in after if s.color not in _DARK)
            flashing = sum(s.seen for s in after if s.color is LampColor.AMBER and s.flashing)
            if coloured >= 0.5 * (now - last) and flashing < 0.5 * coloured:
                missing.append(f"no {c.value} for {now - last:.0f} s")
        if not missing:
            return None
        return (
            f"{' and '.join(missing)} while lamps were read — longer than any real signal "
            "cycle: the region may be on the wrong head or not on a signal, or the layout / "
            "lamps are wrong"
        )

    def reasons(self, lamps: Sequence[LampColor]) -> list[str]:
        """Every calibration reason found now (empty: none)."""
        if self._seen() < self.params.min_check_s:
            return []
        found = [
            self.dark_share(),
            self.short_phases(),
            self.long_amber(),
            self.missing_colour(lamps),
        ]
        return [r for r in found if r is not None]

    def doubt(self) -> str | None:
        """The first reason that does not need to know the lamps (for the fault message)."""
        if self._seen() < self.params.min_check_s:
            return None
        return self.dark_share() or self.short_phases() or self.long_amber()


def head_calibration_problem(
    head_id: str, reader: HeadCalibrator, smoother: SignalSmoother
) -> str | None:
    """The calibration problem of one head read from video, from its reader (a lamp's light
    not where the layout puts that colour) and its phase model (:class:`PhaseCheck`); None
    when it reads like a working signal. The one implementation behind ``signal-check`` and
    camera health (``SignalBoard.problems``)."""
    reasons = [r for r in [reader.colour_problem()] if r is not None]
    reasons += smoother.check.reasons(reader.colors)
    if not reasons:
        return None
    return f"head {head_id!r}: calibration problem — " + "; ".join(reasons)
