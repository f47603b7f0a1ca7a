"""Signal state per signal group from video heads (self-calibrating) and/or external input.

* :mod:`pipeline.signal_reader` — :class:`HeadCalibrator` reads one head per frame with
  per-cell lit/unlit levels and lit hues learned from the video itself (no absolute
  thresholds); :func:`read_lamp` is its stateless form.
* :mod:`pipeline.signal_phase` — :class:`SignalSmoother`, the phase model: confirmation,
  continuous ``since_pts`` across misreads and flicker, signal faults after a sustained dark
  period (``dark_hold_s``, default 2 s).
* here — :class:`VideoHead` (region → reader → phase model) and :class:`SignalBoard`, the one
  object the runner calls: ``board.update(frame)`` returns ``{group: SignalState}``;
  ``board.problems()`` lists signal faults and calibration problems (a head region that never
  lit, a head that never changes colour, a picture without colour — a camera in monochrome /
  infrared night mode, where no lamp colour can be read).

Every head is read on its crop white-balanced by the picture's own grey pixels
(:func:`pipeline.picture.picture_balance`, measured with the colour check every
:data:`COLOUR_CHECK_S`): a camera whose white balance is off tints the lamps too, and a small
far head whose lit core is clipped white shows its colour only in a thin rim — under a warm cast
of R ×1.15, B ×0.8 the green rim of hanoi_b's far-side head read hue 41–49, nearer amber than
green, and the head was unreadable for the whole green phase.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.calibration import IntersectionCalibration, SignalGroup, SignalHead
from sharpeyes.pipeline.picture import COLOUR_SPREAD, picture_balance, picture_has_colour
from sharpeyes.pipeline.signal_input import ExternalPhaseInput
from sharpeyes.pipeline.signal_phase import SignalParams, SignalSmoother, head_calibration_problem
from sharpeyes.pipeline.signal_reader import HeadCalibrator, LampReading, read_lamp
from sharpeyes.pipeline.signal_track import CameraSway, PixelBox
from sharpeyes.pipeline.types import Frame, ImageBGR, LampColor, SignalState

__all__ = [
    "COLOUR_SPREAD",
    "HeadCalibrator",
    "LampReading",
    "SignalBoard",
    "SignalParams",
    "SignalSmoother",
    "VideoHead",
    "build_signal_board",
    "picture_has_colour",
    "read_lamp",
    "states_by_group",
]

log = logging.getLogger(__name__)

COLOUR_CHECK_S = 0.5
"""How often (pts seconds) the board checks whether the picture has colour."""
MODE_HOLD_S = 1.0
"""How long the picture must stay colourless (or coloured) before the board changes mode: a
camera turning to infrared night mode at dusk, and back at dawn; a few colourless frames (a
grey truck filling the picture) do not."""


class VideoHead:
    """One signal head read from the video: pixel region + self-calibrating reader + phase
    model, with what the calibration checks need (first/last time, lit readings, colours)."""

    def __init__(
        self, head: SignalHead, frame_size: tuple[int, int], params: SignalParams | None = None
    ) -> None:
        w, h = frame_size
        (x1, y1), (x2, y2) = head.region
        self.head = head
        self.params = params or SignalParams()
        self._box = (
            max(0, round(x1 * w)),
            max(0, round(y1 * h)),
            min(w, max(round(x2 * w), round(x1 * w) + 1)),
            min(h, max(round(y2 * h), round(y1 * h) + 1)),
        )
        self.offset = (0, 0)
        """Where the head is now relative to :attr:`box`: the camera's sway
        (:class:`~sharpeyes.pipeline.signal_track.CameraSway`, set by the board)."""
        self.reader = HeadCalibrator(head, self.params.window)
        self.smoother = SignalSmoother(
            head.group,
            self.params.confirm_frames,
            self.params.dark_hold_s,
            self.params.max_gap_s,
            self.params.bridge_s,
            check=self.params,
        )
        self.last_reading = LampReading(LampColor.UNKNOWN, 0.0)
        self.last_state: SignalState | None = None
        self.first_pts: float | None = None
        self.last_pts: float | None = None
        self.lit_readings = 0
        self.colors_seen: set[LampColor] = set()
        self._unreadable: tuple[float, float] | None = None  # (start, last) of the current run
        self.longest_unreadable: tuple[float, float] | None = None
        """(start pts, seconds) of the longest run of lit-but-unreadable readings."""

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Pixel box ``(x1, y1, x2, y2)`` of the lamp region as calibrated."""
        return self._box

    def crop(self, image: ImageBGR) -> ImageBGR:
        """The lamp region of ``image``, where the head is now (:attr:`offset`)."""
        x1, y1, x2, y2 = self._box
        dx, dy = self.offset
        h, w = image.shape[:2]
        dx, dy = min(max(dx, -x1), w - x2), min(max(dy, -y1), h - y2)
        out: ImageBGR = image[y1 + dy : y2 + dy, x1 + dx : x2 + dx]
        return out

    def update(
        self,
        image: ImageBGR,
        pts: float,
        *,
        damaged: bool = False,
        grey: bool = False,
        gains: NDArray[np.float32] | None = None,
    ) -> SignalState:
        """Read the head on ``image``; a ``damaged`` picture (corrupt data, broken references)
        is not read — its pixels may show any colour — and the phase model carries on blind
        (:meth:`SignalSmoother.blind`). ``grey``: the picture has no colour now (the reader
        uses the brightness levels of that mode, :meth:`HeadCalibrator.read`). ``gains``: the
        picture's white balance (BGR), applied to the crop before it is read."""
        if damaged:
            self.last_state = self.smoother.blind(pts)
            return self.last_state
        if self.first_pts is None:
            self.first_pts = pts
        self.last_pts = pts
        crop = self.crop(image)
        if gains is not None and crop.size:
            crop = np.clip(crop.astype(np.float32) * gains, 0.0, 255.0).astype(np.uint8)
        self.last_reading = self.reader.read(crop, grey=grey)
        if self.last_reading.color not in (LampColor.OFF, LampColor.UNKNOWN):
            self.lit_readings += 1
        self._track_unreadable(pts)
        st = self.smoother.update(self.last_reading, pts)
        if st.color not in (LampColor.OFF, LampColor.UNKNOWN):
            self.colors_seen.add(st.color)
        self.last_state = st
        return st

    def _track_unreadable(self, pts: float) -> None:
        if self.last_reading.color is not LampColor.UNKNOWN:
            self._unreadable = None
            return
        run = self._unreadable
        if run is None or pts - run[1] > self.params.max_gap_s:
            run = (pts, pts)  # a gap in the frames is not time seen unreadable
        run = (run[0], pts)
        self._unreadable = run
        longest = self.longest_unreadable
        if longest is None or run[1] - run[0] > longest[1]:
            self.longest_unreadable = (run[0], run[1] - run[0])

    def problem(self) -> str | None:
        """A calibration problem of this head, if any (None while too early to tell)."""
        found = [p for p in (self._problem(), self._calibration()) if p is not None]
        return "; ".join(found) if found else None

    def _calibration(self) -> str | None:
        return head_calibration_problem(self.head.id, self.reader, self.smoother)

    def _problem(self) -> str | None:
        if self.first_pts is None or self.last_pts is None:
            return None
        span = self.last_pts - self.first_pts
        if self.lit_readings == 0 and span >= self.params.never_lit_s:
            return (
                f"head {self.head.id!r}: no lamp lit in {span:.0f} s — the region may not be on "
                "the lamps (check region / layout / lamps)"
            )
        if len(self.colors_seen) == 1 and span >= self.params.stuck_s:
            colour = next(iter(self.colors_seen)).value
            return (
                f"head {self.head.id!r}: shows only {colour} for {span:.0f} s without a change "
                "— the region may be on the wrong head or not on a signal"
            )
        worst = self.longest_unreadable
        if worst is not None and worst[1] >= self.params.unreadable_s:
            return (
                f"head {self.head.id!r}: lit but read as no colour for {worst[1]:.0f} s from "
                f"{worst[0]:.1f} s — the region may cut a lamp off, or the layout / lamps may be "
                "wrong (check region / layout / lamps)"
            )
        return None


def _fuse(group: str, states: list[SignalState], pts: float) -> SignalState:
    """Several heads of one group: the most confident known, unfaulted state wins; a fault only
    when every head with a known state is faulted; none known → UNKNOWN."""
    known = [s for s in states if s.color is not LampColor.UNKNOWN]
    if not known:
        return SignalState(group, LampColor.UNKNOWN, 0.0, min(s.since_pts for s in states), pts)
    return max(known, key=lambda s: (s.fault is None, s.confidence))


class SignalBoard:
    """Per-frame signal state of every signal group of one camera."""

    def __init__(
        self,
        groups: list[SignalGroup],
        heads: list[VideoHead],
        external: ExternalPhaseInput | None = None,
        params: SignalParams | None = None,
    ) -> None:
        self._groups = groups
        self._heads = heads
        self._external = external
        self._params = params or SignalParams()
        self._first_pts: float | None = None
        self._last_pts: float | None = None
        self._last: dict[str, SignalState] = {}
        # the picture's mode (colour, or none: monochrome / infrared night mode), followed for
        # as long as the camera runs — it changes at dusk and dawn
        self._grey: bool | None = None  # None until first checked
        self._run: tuple[bool, float] | None = None  # (colourless?, since) of the latest checks
        self._grey_since: float | None = None  # when the current grey mode began
        self._next_colour_check: float | None = None
        self._gains: NDArray[np.float32] | None = None  # the picture's white balance (colour)
        self._silent: dict[str, str] = {}  # external groups without a fresh controller message
        self.sway = CameraSway()
        """The picture's shift from where the heads were calibrated (a camera moving in the
        wind); measured on undamaged pictures when there are video heads."""
        self._swayed_seq: int | None = None  # the picture :meth:`steady` last measured
        if external is not None:
            external.set_timeouts(
                {g.id: g.external_timeout_s for g in groups if g.source != "video"}
            )

    @property
    def heads(self) -> list[VideoHead]:
        return list(self._heads)

    def continue_from(self, earlier: object) -> None:
        """Carry the phase model of each head (colour, since when, onset seen, fault) over from
        the board this one replaces — the same calibration rebuilt for a new picture size: the
        lamps did not change phase because the stream's resolution did. The readers learn their
        levels afresh (they are per pixel)."""
        if not isinstance(earlier, SignalBoard):
            return
        old = {h.head.id: h for h in earlier._heads}
        for h in self._heads:
            if (prev := old.get(h.head.id)) is not None and prev.head.group == h.head.group:
                h.smoother = prev.smoother
                h.colors_seen, h.lit_readings = set(prev.colors_seen), prev.lit_readings
                h.first_pts = prev.first_pts
        self._first_pts = earlier._first_pts
        self._grey, self._run, self._grey_since = earlier._grey, earlier._run, earlier._grey_since
        self._gains = earlier._gains

    def steady(self, frame: Frame, moving: Sequence[PixelBox] = ()) -> tuple[int, int]:
        """The sway of this (not yet moved) picture from where the heads were calibrated, for
        the runner to move it back by before anything is detected on it (:meth:`update` then
        reads the heads on the moved picture) — with or without video heads: the stop lines
        sway too when the phase comes from the controller. ``moving``: boxes of what moves by
        itself (the last analysed picture's tracks), left out of the measurement with the heads.
        A damaged picture is not measured and keeps the last shift."""
        if not (frame.corrupt or frame.damage_carried):
            self.sway.update(frame.image, [*(h.box for h in self._heads), *moving])
            self._swayed_seq = frame.seq
        return self.sway.offset

    def update(self, frame: Frame) -> dict[str, SignalState]:
        """Read every head on this frame and return the state of every group."""
        if self._first_pts is None:
            self._first_pts = frame.pts
        self._last_pts = frame.pts
        damaged = frame.corrupt or frame.damage_carried
        if self._heads and not damaged:
            due = self._next_colour_check
            if due is None or frame.pts >= due or frame.pts < due - COLOUR_CHECK_S:
                self._check_colour(frame)
                self._next_colour_check = frame.pts + COLOUR_CHECK_S
        video: dict[str, list[SignalState]] = {}
        if self._heads:
            if not damaged and self._swayed_seq != frame.seq:
                self.sway.update(frame.image, [h.box for h in self._heads])
            # a picture the runner already moved back (``steady``) is read where it was moved to
            dx, dy = self.sway.offset
            for head in self._heads:
                head.offset = (dx - frame.steadied[0], dy - frame.steadied[1])
        grey = bool(self._grey)
        gains = None if grey else self._gains
        for head in self._heads:
            state = head.update(frame.image, frame.pts, damaged=damaged, grey=grey, gains=gains)
            video.setdefault(head.head.group, []).append(state)
        out: dict[str, SignalState] = {}
        for g in self._groups:
            out[g.id] = self._group_state(g, video.get(g.id, []), frame)
        self._last = out
        return out

    def problems(self) -> dict[str, str]:
        """Current problems: ``{group: fault}`` for groups in a signal fault, and
        ``{head id: problem}`` for calibration problems (never lit, never changes colour);
        ``{"picture": problem}`` when the picture has shown no colour at all. Then heads of a
        standard layout may still be read by which cell is lit, but evidence images cannot
        show the lamp's colour; heads that cannot be read at all are put down to it."""
        out = {g: st.fault for g, st in self._last.items() if st.fault is not None}
        out |= self._silent
        heads = {h.head.id: p for h in self._heads if (p := h.problem()) is not None}
        if not self.monochrome:
            return out | heads
        mono = (
            f"the picture has had no colour for {self._grey_span():.0f} s (a camera in monochrome"
            " / infrared night mode?): "
        )
        if heads:
            out["picture"] = mono + (
                "no lamp could be read — set the camera to colour, or feed the signal phases "
                "from the controller (external)"
            )
        else:
            out["picture"] = mono + (
                "lamps are read only by which cell is lit, and evidence images cannot show the "
                "lamp's colour — set the camera to colour"
            )
        return out

    def _check_colour(self, frame: Frame) -> None:
        """Follow the picture's mode (:func:`picture_has_colour` of the whole picture, whose
        lamps are what the board reads): colourless for :data:`MODE_HOLD_S` makes it grey,
        colour for as long makes it colour again; the first check decides at once."""
        colourless = not picture_has_colour(frame.image)
        gains = None if colourless else picture_balance(frame.image).gains
        self._gains = None if gains is None or np.allclose(gains, 1.0) else gains
        if self._run is None or self._run[0] != colourless:
            self._run = (colourless, frame.pts)
        since = self._run[1]
        if self._grey is None or (
            self._grey != colourless and frame.pts - since >= MODE_HOLD_S - 1e-9
        ):
            if colourless and not self._grey:
                self._grey_since = since
                if self._grey is not None:
                    log.info("picture turned grey at %.1f s (monochrome / infrared?)", since)
            elif not colourless and self._grey:
                log.info("picture in colour again at %.1f s", since)
            self._grey = colourless

    @property
    def monochrome(self) -> bool:
        """Signal heads are read from video and the picture has shown no colour for as long as
        a head may go without a lit lamp (``never_lit_s``)."""
        return (
            bool(self._heads) and bool(self._grey) and self._grey_span() >= self._params.never_lit_s
        )

    def _grey_span(self) -> float:
        if self._grey_since is None or self._last_pts is None:
            return 0.0
        return self._last_pts - self._grey_since

    def _group_state(self, g: SignalGroup, video: list[SignalState], frame: Frame) -> SignalState:
        if g.source == "video" or self._external is None:
            return self._video_state(g, video, frame)
        ext = self._external.state_at(g.id, frame.pts, frame.wall_time_ms)
        timeout = g.external_timeout_s
        quiet = frame.pts - (ext.heard_pts if ext is not None else self._started(frame))
        stale = timeout > 0 and quiet > timeout
        if stale:
            self._silent[g.id] = (
                f"no controller message for {quiet:.0f} s"
                + (" since the stream started" if ext is None else "")
                + f" (stale after {timeout:.0f} s: the group is unknown"
                + (", read from the video)" if g.source == "external_then_video" else ")")
            )
        else:
            self._silent.pop(g.id, None)
        if ext is not None and not stale:
            state = SignalState(g.id, ext.color, 1.0, ext.since_pts, frame.pts, "external")
        else:
            state = self._video_state(g, video, frame)
        self._external.note(
            g.id,
            state.color,
            since_pts=state.since_pts,
            stale=stale,
            frame_pts=frame.pts,
            frame_wall_ms=frame.wall_time_ms,
        )
        return state

    def _started(self, frame: Frame) -> float:
        return self._first_pts if self._first_pts is not None else frame.pts

    def _video_state(self, g: SignalGroup, video: list[SignalState], frame: Frame) -> SignalState:
        if g.source != "external" and video:
            return _fuse(g.id, video, frame.pts)
        source = "external" if g.source != "video" else "video"
        return SignalState(g.id, LampColor.UNKNOWN, 0.0, self._started(frame), frame.pts, source)


def build_signal_board(
    calib: IntersectionCalibration,
    frame_size: tuple[int, int],
    external: ExternalPhaseInput | None = None,
    params: SignalParams | None = None,
) -> SignalBoard:
    """The signal board for one camera: video heads from the calibration plus external input."""
    heads = [VideoHead(h, frame_size, params) for h in calib.signal_heads]
    return SignalBoard(list(calib.signal_groups), heads, external, params)


def states_by_group(states: Mapping[str, SignalState]) -> dict[str, LampColor]:
    """Colours only (for logs and overlays)."""
    return {k: v.color for k, v in states.items()}
