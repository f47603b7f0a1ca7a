"""The one restart budget: exponential backoff with jitter, and a failure budget per window.

Used wherever something that failed is tried again — an RTSP session reconnecting, a camera
pipeline restarted by the supervisor, a worker process restarted by the node: after
``budget`` failures inside ``window_s`` the thing is *failed* and retried only every
``failed_retry_s``, so a broken camera never spins and never blocks the others.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff and budget of one restartable thing."""

    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    jitter: float = 0.2  # ± fraction of each delay (0: none)
    restart_budget: int = 10  # failures allowed per window before it is ``failed``
    restart_window_s: float = 60.0
    failed_retry_s: float = 60.0  # slow retry period once failed


class RestartBudget:
    """Failure bookkeeping for one restartable thing (touched by one thread)."""

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._delay = policy.backoff_initial_s
        self._failures: deque[float] = deque()
        self._rng = rng or random.Random()

    def failure(self, now: float) -> tuple[float, bool]:
        """Record a failure at ``now`` (monotonic s); return (seconds to wait, budget spent)."""
        p = self.policy
        self._failures.append(now)
        while self._failures and self._failures[0] < now - p.restart_window_s:
            self._failures.popleft()
        if len(self._failures) > p.restart_budget:
            return p.failed_retry_s, True
        delay = self._delay
        if p.jitter > 0:
            delay *= 1.0 + self._rng.uniform(-p.jitter, p.jitter)
        self._delay = min(self._delay * 2.0, p.backoff_max_s)
        return delay, False

    def success(self) -> None:
        """It ran well: the next failure starts the backoff from the beginning again."""
        self._delay = self.policy.backoff_initial_s

    def in_window(self, now: float) -> int:
        """Failures inside the window ending at ``now``."""
        return sum(1 for t in self._failures if t >= now - self.policy.restart_window_s)
