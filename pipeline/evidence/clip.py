"""The evidence clip: the span [first image − pre-roll, last image + post-roll], remuxed.

The packets come from the stream's :class:`~streams.packet_ring.PacketRing` (live sources) or
from the video file itself (file sources); either way nothing is re-encoded. Evidence is built
as soon as a violation is decided, so the post-roll may not have been received yet: the ring
is polled until it reaches the end of the span, the stream stalls, or ``max_wait_s`` passes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from sharpeyes.pipeline.errors import EvidenceError, StreamError
from sharpeyes.streams.packet_ring import PacketRing
from sharpeyes.streams.remux import ClipInfo, clip_from_file, remux_clip

log = logging.getLogger(__name__)

ClipSource = PacketRing | Path


def wait_for_ring(
    ring: PacketRing,
    end_s: float,
    *,
    max_wait_s: float,
    stall_s: float = 1.0,
    poll_s: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait until the ring holds a packet at or after ``end_s``; False on stall or timeout."""
    start = clock()
    last_newest: float | None = None
    last_change = start
    while True:
        newest = ring.stats().newest_pts_s
        if newest is not None and newest >= end_s:
            return True
        now = clock()
        if newest != last_newest:
            last_newest, last_change = newest, now
        if now - start >= max_wait_s or now - last_change >= stall_s:
            return False
        sleep(poll_s)


def _from_ring(
    ring: PacketRing, start_s: float, end_s: float, out: Path, wait_s: float
) -> ClipInfo:
    if wait_s > 0 and not wait_for_ring(ring, end_s, max_wait_s=wait_s):
        log.info("packet ring did not reach %.3f s; the clip ends early", end_s)
    params = ring.params
    if params is None:
        raise StreamError("packet ring has no stream parameters")
    return remux_clip(params, ring.span(start_s, end_s), out)


def write_clip(
    sources: list[ClipSource],
    start_s: float,
    end_s: float,
    out: Path,
    *,
    wait_s: float = 0.0,
) -> ClipInfo:
    """Remux [start_s, end_s] from the first source that can provide it to ``out`` (MP4).

    A ring whose span does not cover ``start_s`` (too little history) gives way to the next
    source. Raises :class:`EvidenceError` when no source produced a clip.
    """
    errors: list[str] = []
    last: ClipInfo | None = None  # the clip now at ``out`` (a later source overwrites)
    for src in sources:
        try:
            if isinstance(src, PacketRing):
                info = _from_ring(src, start_s, end_s, out, wait_s)
            else:
                info = clip_from_file(src, start_s, end_s, out)
        except StreamError as e:
            errors.append(f"{type(src).__name__}: {e}")
            continue
        if info.covers(start_s, end_s, tolerance_s=0.1):
            return info
        last = info
        errors.append(
            f"{type(src).__name__}: clip covers only {info.start_pts_s:.3f}–{info.end_pts_s:.3f}"
        )
    if last is not None:
        return last
    raise EvidenceError(
        f"no clip for [{start_s:.3f}, {end_s:.3f}] s: " + "; ".join(errors or ["no source"])
    )
