"""Multi-object tracking: ByteTrack with a dt-aware Kalman filter (one instance per stream)."""

from sharpeyes.pipeline.tracking.bytetrack import ByteTracker, TrackerStats

__all__ = ["ByteTracker", "TrackerStats"]
