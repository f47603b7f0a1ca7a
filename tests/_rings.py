"""A file read through :class:`FileSource` into a :class:`PacketRing`, as a camera's source fills
its ring (shared by the tests that cut clips from the ring)."""

from __future__ import annotations

from pathlib import Path

from sharpeyes.streams.file_source import FileSource
from sharpeyes.streams.packet_ring import PacketRing


def filled_ring(video: Path, stream_id: str, max_seconds: float = 60.0) -> PacketRing:
    """Every packet of ``video`` in a ring of ``max_seconds``, its stream parameters set."""
    ring = PacketRing(max_seconds=max_seconds, max_bytes=10**8)
    src = FileSource(video, stream_id, packet_sink=ring.push)
    try:
        ring.set_stream_params(src.video_stream_params())
        for _ in src.frames():
            pass
    finally:
        src.close()
    return ring
