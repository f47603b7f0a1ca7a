"""Analysis-rate sampling: pick the frames whose pts crosses the next sampling instant."""

from __future__ import annotations

_EPS = 1e-6


class Sampler:
    """Chooses frames for analysis at ``analysis_fps`` (None or <= 0: every frame).

    A frame is taken when its pts reaches the next sampling instant; instants advance by
    ``1 / analysis_fps``, so a 30 fps stream sampled at 5 fps yields every 6th frame and a
    29.97 fps one mostly every 6th, sometimes the 5th (5 per second on average). After a gap
    (or a backwards pts step) the schedule restarts at the current frame instead of bursting.

    Never starves: when ``now`` (arrival clock, seconds) is given and no frame was taken for
    ``starve_periods`` periods of arrival time (pts stuck or running slow), the frame is taken
    anyway, the schedule restarts at it, and :attr:`forced` counts it.
    """

    def __init__(self, analysis_fps: float | None = None, starve_periods: float = 2.0) -> None:
        self._period = 1.0 / analysis_fps if analysis_fps and analysis_fps > 0 else 0.0
        self._starve_periods = starve_periods
        self._next: float | None = None
        self._last: float | None = None
        self._taken_at: float | None = None
        self.forced = 0

    @property
    def period(self) -> float:
        return self._period

    def accept(self, pts: float, now: float | None = None) -> bool:
        """Return True when the frame at ``pts`` (seconds; arriving at ``now``) is analysed."""
        if self._period == 0.0:
            return True
        taken = self._accept(pts)
        if now is None:
            return taken
        starving = (
            self._taken_at is not None
            and now - self._taken_at > self._starve_periods * self._period
        )
        if not taken and starving:
            self.forced += 1
            self._next = pts + self._period
            taken = True
        if taken or self._taken_at is None:
            self._taken_at = now
        return taken

    def will_reject(self, pts: float) -> bool:
        """True when a frame at ``pts`` that arrives later (in pts order, after the frames seen so
        far) is certain to be rejected by :meth:`accept` without ``now``: it lies after the
        last frame seen and before the next sampling instant, which never moves back while pts
        increase. A decoder may then skip decoding it (see ``FileSource``)."""
        if self._period == 0.0 or self._next is None or self._last is None:
            return False
        return self._last < pts and pts + _EPS < self._next

    def _accept(self, pts: float) -> bool:
        last, self._last = self._last, pts
        if self._next is None or (last is not None and pts < last):
            self._next = pts + self._period
            return True
        if pts + _EPS < self._next:
            return False
        self._next += self._period
        if self._next <= pts:  # a gap longer than one period: restart the schedule here
            self._next = pts + self._period
        return True

    def reset(self) -> None:
        self._next = None
        self._last = None
        self._taken_at = None
