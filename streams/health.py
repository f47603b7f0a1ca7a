"""Per-stream health: the state enum, drop reasons, the snapshot dataclass, rate meters, and
credential masking for URLs and error text (credentials never reach logs, health or errors)."""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class StreamState(enum.StrEnum):
    """Where a live source stands.

    ``connecting``: opening the stream; ``live``: frames arrive; ``degraded``: frames arrive but
    more than the configured share of them is corrupt or missing (packet loss); ``stalled``:
    connected but no frame for the stall timeout (a reconnect follows); ``backoff``: waiting
    before the next
    attempt; ``failed``: the restart budget is spent, retried at a slow rate; ``closed``: closed
    by its owner.
    """

    CONNECTING = "connecting"
    LIVE = "live"
    DEGRADED = "degraded"
    STALLED = "stalled"
    BACKOFF = "backoff"
    FAILED = "failed"
    CLOSED = "closed"


class DropReason(enum.StrEnum):
    """Why a decoded (or undecodable) frame did not reach the consumer."""

    BACKLOG = "backlog"  # the consumer was slower than the stream: the oldest frame was dropped
    SAMPLING = "sampling"  # not picked by the analysis-rate sampler
    DECODE_ERROR = "decode_error"  # a packet failed to decode


class DropCounter:
    """Thread-safe counts of dropped frames by :class:`DropReason`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[DropReason, int] = dict.fromkeys(DropReason, 0)

    def add(self, reason: DropReason, n: int = 1) -> None:
        with self._lock:
            self._counts[reason] += n

    def get(self, reason: DropReason) -> int:
        with self._lock:
            return self._counts[reason]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {str(reason): count for reason, count in self._counts.items()}


class RateMeter:
    """Events per second over a sliding window of ``window_s`` seconds (thread-safe)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self._started: float | None = None

    def tick(self, now: float | None = None) -> None:
        t = time.monotonic() if now is None else now
        with self._lock:
            if self._started is None:
                self._started = t
            self._times.append(t)
            self._trim(t)

    def rate(self, now: float | None = None) -> float:
        t = time.monotonic() if now is None else now
        with self._lock:
            self._trim(t)
            if self._started is None:
                return 0.0
            span = min(self._window_s, max(t - self._started, 0.5))
            return len(self._times) / span

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self._window_s:
            self._times.popleft()


class CorruptionMeter:
    """Share of damaged frame slots over the last ``window`` slots (thread-safe).

    A slot is a decoded frame (damaged when FFmpeg flagged it corrupt) or a frame missing from
    a short gap in the timeline (damaged: lost to packet loss).
    """

    def __init__(self, window: int = 300) -> None:
        self._slots: deque[bool] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.total_damaged = 0

    def add(self, damaged: bool, n: int = 1) -> None:
        with self._lock:
            for _ in range(min(n, self._slots.maxlen or n)):
                self._slots.append(damaged)
            if damaged:
                self.total_damaged += n

    def rate(self) -> float:
        with self._lock:
            return sum(self._slots) / len(self._slots) if self._slots else 0.0

    def samples(self) -> int:
        with self._lock:
            return len(self._slots)

    def reset(self) -> None:
        with self._lock:
            self._slots.clear()


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """A snapshot of one stream's health (safe to log or serve: the URL is masked).

    ``last_frame_age_s`` is None before the first frame; ``pts_skew_ms`` is how far the local
    clock is ahead of the wall time derived from the stream's pts for the latest frame (decode
    and network latency plus clock drift); ``pts_resets`` counts re-anchorings of the
    pts→wall mapping (pts jumps, backwards steps, drift).

    Corruption: ``corrupt_frames`` counts frames FFmpeg flagged corrupt plus frames missing from
    short timeline gaps (lost to packet loss); ``corruption_rate`` is their share over the
    recent window (:class:`CorruptionMeter`); ``resync_frames`` counts frames missing in longer
    gaps (the decoder waiting for a keyframe after damage). ``timing_faults`` counts frames
    whose pts did not advance (stamped from the arrival clock instead); ``forced_samples``
    frames the sampler took because pts-based sampling would have starved the stream.
    ``last_error`` is cleared when the stream delivers frames again.
    """

    stream_id: str
    url: str
    state: StreamState
    input_fps: float
    analysed_fps: float
    drops: Mapping[str, int]
    reconnects: int
    failures_in_window: int
    last_frame_age_s: float | None
    decode_errors: int
    pts_skew_ms: float | None
    pts_resets: int
    last_error: str | None
    decoder: str | None
    width: int = 0
    height: int = 0
    frames_decoded: int = 0
    frames_delivered: int = 0
    corrupt_frames: int = 0
    corruption_rate: float = 0.0
    resync_frames: int = 0
    timing_faults: int = 0
    forced_samples: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (``rtsp://user:***@host/path``)."""
    from sharpeyes.streams.urls import mask_url as _mask_url

    return _mask_url(url) or url


def redact(text: str, url: str) -> str:
    """Remove the credentials of ``url`` from ``text`` (an error message that may quote it)."""
    out = text.replace(url, mask_url(url))
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    if parts.password:
        out = out.replace(parts.password, "***")
    return out
