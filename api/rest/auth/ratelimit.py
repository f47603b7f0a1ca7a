"""Rate limiting of authentication failures (per client address, sliding window)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class FailureLimiter:
    """Blocks a client after ``max_failures`` failed authentications within ``window_s``.

    While blocked, :meth:`retry_after` returns the seconds until the oldest failure in the window
    expires. Successful authentications do not reset the window (an attacker holding one valid
    token must not be able to keep guessing others). Keys are evicted once their window is empty,
    and at most ``max_keys`` clients are tracked (the oldest are dropped first).
    """

    def __init__(
        self,
        max_failures: int = 10,
        window_s: float = 60.0,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError(f"bad limiter settings: {max_failures} failures per {window_s} s")
        self._max = max_failures
        self._window = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float] | None:
        q = self._failures.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self._window:
            q.popleft()
        if not q:
            del self._failures[key]
            return None
        return q

    def retry_after(self, key: str) -> float:
        """Seconds the client must wait before trying again; 0 when not blocked."""
        now = self._clock()
        with self._lock:
            q = self._prune(key, now)
            if q is None or len(q) < self._max:
                return 0.0
            return max(0.0, q[-self._max] + self._window - now)

    def record_failure(self, key: str) -> None:
        now = self._clock()
        with self._lock:
            q = self._prune(key, now)
            if q is None:
                if len(self._failures) >= self._max_keys:
                    oldest = next(iter(self._failures))
                    del self._failures[oldest]
                q = self._failures[key] = deque()
            q.append(now)
            while len(q) > self._max:
                q.popleft()

    def tracked_keys(self) -> int:
        with self._lock:
            return len(self._failures)
