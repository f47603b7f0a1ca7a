"""The one wall clock of sharpeyes outside the analysis path.

Rules and evidence never read it — they use frame time (``Frame.pts`` / ``Frame.wall_time_ms``).
Everything else that stamps a record (stores, audit, delivery, tokens) calls :func:`now_ms`, so
tests can move time in one place and no module carries its own ``_now_ms``.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """UTC epoch milliseconds now."""
    return time.time_ns() // 1_000_000


def now_s() -> float:
    """UTC epoch seconds now."""
    return time.time()
