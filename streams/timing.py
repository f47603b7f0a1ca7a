"""Mapping stream presentation time (pts) to a continuous relative timeline and to wall time.

One :class:`PtsClock` lives as long as a live source. Per connection it anchors wall time once
(first frame: wall = local clock at arrival) and then derives wall time from the pts offset;
a frame that arrives earlier than the anchor implies (the first frames were buffered by stream
probing) moves the anchor earlier, so derived wall times never lie in the future.
It re-anchors — and counts a reset — when pts jumps forward by more than ``max_jump_s``, steps
backwards, or when the derived wall time drifts more than ``max_skew_s`` from the local clock.
The relative pts it hands out stays monotonic across reconnects and resets (a reconnect
continues from the last pts plus the time elapsed), so trackers and rules never see time run
backwards. Frames without a pts (seen over RTSP before the first RTCP sync) get one from the
arrival clock. A pts that does not advance (a camera with a frozen timestamp) is a timing fault:
it is counted in :attr:`PtsClock.frozen` and the frame is stamped from the arrival clock, so the
timeline keeps running with wall time; when pts advances again the mapping re-anchors.
All times are seconds unless named ``_ms``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_MIN_STEP_S = 1e-3
_PACKET_LEAD_S = 1.0  # packets (decode order) run up to this far from the frames shown


@dataclass(frozen=True, slots=True)
class Stamp:
    """Relative presentation time (seconds) and capture wall time (UTC epoch ms) of a frame."""

    pts: float
    wall_time_ms: int


class PtsClock:
    """pts → (relative pts, wall time) for one live source; see the module docstring."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        max_jump_s: float = 10.0,
        max_skew_s: float = 5.0,
    ) -> None:
        self._clock = clock
        self._max_jump_s = max_jump_s
        self._max_skew_s = max_skew_s
        self._lock = threading.Lock()
        self._base: float | None = None  # raw pts (s) that maps to relative pts 0
        self._anchor_rel: float | None = None  # relative pts of the wall anchor
        self._anchor_wall = 0.0  # local clock (s) at the anchor
        self._last_rel: float | None = None
        self._last_arrival = 0.0
        self.resets = 0
        self.frozen = 0
        self._frozen_raw: float | None = None
        self._next_base: float | None = None  # base of a new segment the packets already show
        self._max_packet_rel: float | None = None  # latest packet time of the current segment
        self._step = 0.0  # the last step between frames (a frame period, usually)
        self.skew_ms: float | None = None

    def new_connection(self) -> None:
        """Forget the pts base and wall anchor: the next frame anchors afresh."""
        with self._lock:
            self._base = None
            self._anchor_rel = None
            self._frozen_raw = None
            self._next_base = None
            self._max_packet_rel = None

    def relative(self, raw_pts_s: float | None) -> float | None:
        """Relative pts of a packet (sets the base on the first pts of a connection).

        Packets are demuxed before their frames are decoded. When the timestamps jump, the
        packets show it first: the new segment's base is chosen here and :meth:`map` takes it
        when the first frame of that segment comes out, so a packet (kept for evidence clips)
        and its frame get the same relative pts.
        """
        if raw_pts_s is None:
            return None
        with self._lock:
            now = self._clock()
            if self._base is None:
                self._base = raw_pts_s - self._continuation(now)
            if self._next_base is not None:
                return raw_pts_s - self._next_base
            rel = raw_pts_s - self._base
            last = self._last_rel
            if last is not None and (
                rel < last - _PACKET_LEAD_S or rel - last > self._max_jump_s + _PACKET_LEAD_S
            ):
                # after every frame still in the decoder: one step past the latest packet
                start = self._continuation(now)
                if self._max_packet_rel is not None:
                    start = max(start, self._max_packet_rel + max(self._step, _MIN_STEP_S))
                self._next_base = raw_pts_s - start
                return start
            if self._max_packet_rel is None or rel > self._max_packet_rel:
                self._max_packet_rel = rel
            return rel

    def map(self, raw_pts_s: float | None) -> Stamp:
        """Stamp a decoded frame with raw pts ``raw_pts_s`` (seconds; None when unknown)."""
        with self._lock:
            now = self._clock()
            if raw_pts_s is not None and self._frozen_raw is not None:
                if raw_pts_s <= self._frozen_raw + _MIN_STEP_S:
                    raw_pts_s = None  # still frozen (or behind the frozen value)
                    self.frozen += 1
                else:  # pts moves again: start a new segment from here
                    self._frozen_raw = None
                    self._base = raw_pts_s - self._continuation(now)
                    self._anchor_rel = None
            if raw_pts_s is None:
                rel = self._arrival_pts(now)
            else:
                if self._base is None:
                    self._base = raw_pts_s - self._arrival_pts(now)
                rel = raw_pts_s - self._base
                if self._last_rel is not None and abs(rel - self._last_rel) < _MIN_STEP_S:
                    self.frozen += 1  # pts did not advance: arrival time from here on
                    self._frozen_raw = raw_pts_s
                    rel = self._arrival_pts(now)
                elif self._last_rel is not None and self._is_jump(rel):
                    self.resets += 1
                    nxt, self._next_base = self._next_base, None
                    rel = raw_pts_s - nxt if nxt is not None else self._continuation(now)
                    if nxt is None or rel <= self._last_rel:  # not the packets' segment
                        rel = self._continuation(now)
                    self._base = raw_pts_s - rel
                    self._max_packet_rel = None
                    self._anchor_rel = None
            if self._anchor_rel is None:
                self._anchor_rel, self._anchor_wall = rel, now
            wall = self._anchor_wall + (rel - self._anchor_rel)
            if wall > now:  # arrived earlier than the anchor implies: the anchor was late
                self._anchor_rel, self._anchor_wall, wall = rel, now, now
            elif now - wall > self._max_skew_s:  # drifted: re-anchor and count it
                self.resets += 1
                self._anchor_rel, self._anchor_wall, wall = rel, now, now
            self.skew_ms = (now - wall) * 1000.0
            if self._last_rel is not None and 0.0 < rel - self._last_rel <= _PACKET_LEAD_S:
                self._step = rel - self._last_rel
            self._last_rel, self._last_arrival = rel, now
            return Stamp(pts=rel, wall_time_ms=round(wall * 1000.0))

    def _is_jump(self, rel: float) -> bool:
        assert self._last_rel is not None
        return rel < self._last_rel - _MIN_STEP_S or rel - self._last_rel > self._max_jump_s

    def _continuation(self, now: float) -> float:
        """Relative pts for a frame that starts a new timeline segment at ``now``."""
        if self._last_rel is None:
            return 0.0
        return self._last_rel + max(now - self._last_arrival, _MIN_STEP_S)

    def _arrival_pts(self, now: float) -> float:
        """Relative pts from the arrival clock (no usable pts, or first frame of a segment)."""
        if self._anchor_rel is None:
            return self._continuation(now)
        rel = self._anchor_rel + (now - self._anchor_wall)
        if self._last_rel is not None:
            rel = max(rel, self._last_rel + _MIN_STEP_S)
        return rel


class FileTimeline:
    """A file's raw timestamps → one continuous relative timeline (seconds from its start).

    Within one segment, relative time is the raw pts minus the segment's base, in seconds. A
    recording put together from pieces (an NVR export of several files, MPEG-TS segments
    concatenated, an encoder that restarted) starts its timestamps again part-way through; read
    naively, time runs backwards there and trackers, red timers and evidence times go wrong. Here
    a *keyframe* whose pts lies more than ``restart_s`` before the largest pts seen so far (in
    decode order — no decodable picture may be shown before one decoded ahead of it) starts a new
    segment, which continues one frame period after the previous segment's last picture.
    Forward jumps are kept: a gap in a recording is time that passed.

    Packets (:meth:`packet`, decode order) find the segments; decoded frames (:meth:`frame`,
    presentation order, behind the packets by the decoder's delay) move on to the next segment
    found when their pts goes back. Packets and frames so get the same relative time.
    """

    def __init__(
        self,
        time_base: float,
        origin: int | None = None,
        *,
        frame_s: float = 0.04,
        restart_s: float = 0.5,
    ) -> None:
        self._tb = time_base
        self._origin = origin
        self._frame_s = frame_s
        self._restart = restart_s / time_base if time_base > 0 else 0.0
        self._segments: list[tuple[int, float]] = []  # (raw pts at its start, relative start)
        self._max_raw: int | None = None  # largest packet pts of the newest segment
        self._max_rel = 0.0
        self._frame_segment = 0
        self._last_frame_raw: int | None = None
        self._last_frame_rel: float | None = None
        self._last_packet_rel: float | None = None
        self.stalled = 0
        """Frames whose pts did not advance, re-timed one frame period apart."""
        self._stall_shift = 0.0  # added to every frame since the first that did not advance

    @property
    def restarts(self) -> int:
        """How many times the timestamps started again (segments found after the first)."""
        return max(0, len(self._segments) - 1)

    @property
    def started(self) -> bool:
        """Whether the timeline has its origin (the stream's start time, or a first pts)."""
        return self._origin is not None or bool(self._segments)

    def _first(self, raw: int) -> None:
        if not self._segments:
            base = self._origin if self._origin is not None else raw
            self._segments.append((base, 0.0))

    def _rel(self, segment: int, raw: int) -> float:
        base, start = self._segments[segment]
        return start + (raw - base) * self._tb

    def packet(self, raw_pts: int | None, keyframe: bool) -> float | None:
        """Relative pts of a demuxed packet (decode order). One without a pts — every packet
        of a bare elementary stream (a DVR's ``.264`` export), a frame that does not start an
        MPEG-PS packet — is placed a frame period after the packet before it (the first at 0),
        as :meth:`frame` places frames without one, so the packet ring can cut clips of it."""
        if raw_pts is None:
            prev = self._last_packet_rel
            self._last_packet_rel = 0.0 if prev is None else prev + self._frame_s
            return self._last_packet_rel
        self._first(raw_pts)
        if keyframe and self._max_raw is not None and raw_pts < self._max_raw - self._restart:
            start = self._max_rel + self._frame_s
            self._segments.append((raw_pts, start))
            self._max_raw = None
        rel = self._rel(len(self._segments) - 1, raw_pts)
        if self._max_raw is None or raw_pts > self._max_raw:
            self._max_raw, self._max_rel = raw_pts, rel
        self._last_packet_rel = rel
        return rel

    def frame(self, raw_pts: int | None) -> float:
        """Relative pts of a decoded frame (presentation order); one without a pts, or whose
        pts does not advance past the previous frame's (a broken muxer that stamps every frame
        alike; counted in :attr:`stalled`), is placed a frame period after the previous one."""
        if raw_pts is None:
            prev = self._last_frame_rel
            rel = 0.0 if prev is None else prev + self._frame_s
        else:
            self._first(raw_pts)
            last = self._last_frame_raw
            went_back = last is not None and raw_pts < last - self._restart
            prev = self._last_frame_rel
            if went_back and self._frame_segment + 1 < len(self._segments):
                self._frame_segment += 1
            elif last is not None and raw_pts <= last and prev is not None:
                # not after the frame before it: a broken muxer stamping frames alike
                here = self._rel(self._frame_segment, raw_pts) + self._stall_shift
                self._stall_shift += prev + self._frame_s - here
                self.stalled += 1
            rel = self._rel(self._frame_segment, raw_pts) + self._stall_shift
            self._last_frame_raw = raw_pts
        self._last_frame_rel = rel
        return rel
