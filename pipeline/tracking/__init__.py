"""Multi-object tracking: ByteTrack with a dt-aware Kalman filter (one instance per stream)."""

from pipeline.tracking.bytetrack import ByteTracker, TrackerStats

__all__ = ["ByteTracker", "TrackerStats"]
