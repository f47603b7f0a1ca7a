"""What the face-capture stage did with the person tracks it saw (:class:`FaceStats`), apart from
:mod:`.faces` so that the runner's summary can carry it without importing the stage."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FaceStats", "describe_faces"]


@dataclass
class FaceStats:
    """Counts per person track whose event went out: a face captured, or why not."""

    reads: int = 0
    captured: int = 0
    too_small: int = 0
    low_quality: int = 0
    no_face: int = 0
    largest_small_px: float = 0.0  # the largest face found that was still under the minimum

    @property
    def persons(self) -> int:
        return self.captured + self.too_small + self.low_quality + self.no_face


def describe_faces(stats: FaceStats, min_face_px: float) -> str:
    """One line for ``analyze``: faces captured of the persons whose events went out, and why
    the others have none — a face camera aimed too wide is told its faces' size."""
    parts = [f"faces: {stats.captured} captured of {stats.persons} persons"]
    if stats.too_small:
        parts.append(
            f"{stats.too_small} faces too small: the largest {stats.largest_small_px:.0f} px "
            f"high, {min_face_px:.0f} px needed (zoom in or move the camera closer)"
        )
    if stats.low_quality:
        parts.append(f"{stats.low_quality} faces too blurred or turned away")
    if stats.no_face:
        parts.append(f"{stats.no_face} with no face found (seen from behind, or too small to find)")
    return "; ".join(parts)
