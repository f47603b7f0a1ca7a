"""A bounded ring of encoded video packets, kept so that evidence clips can be remuxed later.

The stream source calls :meth:`PacketRing.push` for every video packet (decode order) and
:meth:`PacketRing.set_stream_params` once per connection. Evidence building (another thread)
asks for :meth:`PacketRing.span`, which always starts on a keyframe so the clip decodes.

Bounds: bytes are a hard limit; ``max_seconds`` is the history the ring guarantees to keep —
whole GOPs are evicted from the oldest end only while the rest still covers ``max_seconds``,
so the ring holds at most ``max_seconds`` plus one GOP. The ring always starts on a keyframe;
packets that arrive before the first keyframe (or after a forced byte eviction emptied the
ring) are dropped and counted.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from sharpeyes.pipeline.errors import StreamError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamParams:
    """Codec parameters needed to mux the packets of one video stream.

    ``extradata`` is the codec's out-of-band configuration (H.264: an ``avcC`` record when
    packets are length-prefixed as in MP4, or Annex-B SPS/PPS as from an RTSP SDP; None when
    parameter sets travel in-band). ``time_base`` is the unit of packet pts/dts/duration.
    ``rotation``: the display rotation of the source (degrees counter-clockwise, 0/90/180/270;
    phone recordings) that a clip must carry to show as the analysed frames did; ``source``:
    the file whose video stream a clip then copies its codec parameters (and display matrix)
    from — packets are then muxed as stored.
    """

    codec_name: str
    extradata: bytes | None
    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction | None = None
    rotation: int = 0
    source: str | None = None


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One encoded video packet as received (decode order).

    ``pts``/``dts``/``duration`` are in ``time_base`` units of the stream; ``pts_s`` is the
    packet's presentation time in seconds on the same relative timeline as ``Frame.pts``.
    """

    data: bytes
    pts: int | None
    dts: int | None
    duration: int | None
    time_base: Fraction
    is_keyframe: bool
    pts_s: float


@dataclass(frozen=True, slots=True)
class RingStats:
    """What the ring holds and what it has dropped."""

    packets: int
    bytes: int
    keyframes: int
    oldest_pts_s: float | None
    newest_pts_s: float | None
    pushed: int
    evicted: int
    dropped_before_keyframe: int
    max_seconds: float
    max_bytes: int

    @property
    def seconds(self) -> float:
        if self.oldest_pts_s is None or self.newest_pts_s is None:
            return 0.0
        return self.newest_pts_s - self.oldest_pts_s


class PacketRing:
    """Thread-safe, bounded ring of :class:`EncodedPacket` that always starts on a keyframe."""

    def __init__(self, max_seconds: float, max_bytes: int) -> None:
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        self.max_seconds = float(max_seconds)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._packets: deque[EncodedPacket] = deque()
        self._key_seq: deque[int] = deque()  # push counters of the keyframes held
        self._front_seq = 0  # push counter of self._packets[0]
        self._next_seq = 0
        self._bytes = 0
        self._keyframes = 0
        self._newest_pts_s: float | None = None
        self._params: StreamParams | None = None
        self._pushed = 0
        self._evicted = 0
        self._dropped = 0

    # -- writer side -------------------------------------------------------------------------

    def set_stream_params(self, params: StreamParams) -> None:
        """Set the codec parameters; different parameters (a new connection) clear the ring."""
        with self._lock:
            if self._params is not None and params != self._params:
                log.info("packet ring: stream parameters changed, clearing %d packets", len(self))
                self._clear_locked()
            self._params = params

    def push(self, pkt: EncodedPacket) -> None:
        """Add one packet (decode order) and evict from the oldest end to respect the bounds."""
        with self._lock:
            self._pushed += 1
            if not self._packets and not pkt.is_keyframe:
                self._dropped += 1
                return
            if not self._packets:
                self._front_seq = self._next_seq
            if pkt.is_keyframe:
                self._key_seq.append(self._next_seq)
            self._next_seq += 1
            self._packets.append(pkt)
            self._bytes += len(pkt.data)
            self._keyframes += int(pkt.is_keyframe)
            newest = self._newest_pts_s
            self._newest_pts_s = pkt.pts_s if newest is None else max(newest, pkt.pts_s)
            self._evict_locked()

    def clear(self) -> None:
        """Forget every packet (stream discontinuity, reconnect)."""
        with self._lock:
            self._clear_locked()

    # -- reader side -------------------------------------------------------------------------

    @property
    def params(self) -> StreamParams | None:
        with self._lock:
            return self._params

    def span(self, start_s: float, end_s: float) -> list[EncodedPacket]:
        """Packets covering [start_s, end_s], from the last keyframe at or before ``start_s``.

        When ``start_s`` is older than the ring, the span starts at the oldest keyframe held.
        It ends with the last packet (decode order) whose ``pts_s`` ≤ ``end_s``, so every
        reference a B-frame inside the span needs is included. Empty when nothing overlaps.
        """
        if end_s < start_s:
            raise ValueError(f"span end {end_s} is before start {start_s}")
        with self._lock:
            pkts = list(self._packets)
        return select_span(pkts, start_s, end_s)

    def stats(self) -> RingStats:
        with self._lock:
            return RingStats(
                packets=len(self._packets),
                bytes=self._bytes,
                keyframes=self._keyframes,
                oldest_pts_s=self._packets[0].pts_s if self._packets else None,
                newest_pts_s=self._newest_pts_s if self._packets else None,
                pushed=self._pushed,
                evicted=self._evicted,
                dropped_before_keyframe=self._dropped,
                max_seconds=self.max_seconds,
                max_bytes=self.max_bytes,
            )

    def __len__(self) -> int:
        return len(self._packets)

    # -- internals (lock held) ---------------------------------------------------------------

    def _clear_locked(self) -> None:
        self._evicted += len(self._packets)
        self._packets.clear()
        self._key_seq.clear()
        self._bytes = 0
        self._keyframes = 0
        self._newest_pts_s = None

    def _second_keyframe_index(self) -> int | None:
        """Index of the first keyframe after the front packet (the front is a keyframe)."""
        if len(self._key_seq) < 2:
            return None
        return self._key_seq[1] - self._front_seq

    def _evict_locked(self) -> None:
        """Drop whole GOPs while over the byte bound or while the rest still covers the window."""
        while True:
            nxt = self._second_keyframe_index()
            over_bytes = self._bytes > self.max_bytes
            if nxt is None:
                if over_bytes:  # one GOP larger than the byte budget: drop it all
                    self._drop_front(len(self._packets))
                return
            newest = self._newest_pts_s if self._newest_pts_s is not None else 0.0
            rest_covers = newest - self._packets[nxt].pts_s >= self.max_seconds
            if not (over_bytes or rest_covers):
                return
            self._drop_front(nxt)

    def _drop_front(self, n: int) -> None:
        for _ in range(n):
            p = self._packets.popleft()
            self._bytes -= len(p.data)
            if p.is_keyframe:
                self._keyframes -= 1
                self._key_seq.popleft()
            self._front_seq += 1
            self._evicted += 1
        if not self._packets:
            self._newest_pts_s = None


def select_span(pkts: Sequence[EncodedPacket], start_s: float, end_s: float) -> list[EncodedPacket]:
    """From packets in decode order, the run covering [start_s, end_s] (see :meth:`span`)."""
    first = None
    for i, p in enumerate(pkts):
        if not p.is_keyframe:
            continue
        if first is not None and p.pts_s > start_s:
            break
        first = i
    if first is None:
        return []
    last = max((i for i in range(first, len(pkts)) if pkts[i].pts_s <= end_s), default=None)
    return [] if last is None else list(pkts[first : last + 1])


def require_params(ring: PacketRing) -> StreamParams:
    """The ring's stream parameters, or :class:`StreamError` when the source never set them."""
    params = ring.params
    if params is None:
        raise StreamError("packet ring has no stream parameters (set_stream_params never called)")
    return params
