"""What the face-capture stage did with the person tracks it saw (:class:`FaceStats`), and what
to tell the camera's operator about it. Apart from :mod:`.faces` so that the runner's summary,
the camera's health (``sharpeyes run`` / ``serve``, worker processes, the cluster), ``analyze``
and ``camera-check`` can carry it without importing the stage.

An installer aims a face camera (人像抓拍) so that faces are large enough to capture; whether
they are is a matter of pixels, as for a checkpoint's plates (:mod:`.plate_tally`). Once
:data:`MIN_FACES` faces were found, a camera most of whose faces are under the minimum size is
told so, with the size found and the size needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "FACE_COUNTERS",
    "MIN_FACES",
    "FaceStats",
    "describe_faces",
    "face_finding",
    "faces_too_small",
]

MIN_FACES = 5
"""Faces found before a camera's face size is judged (one small face does not tell it off)."""


@dataclass
class FaceStats:
    """Counts per person track whose event went out: a face captured, or why not.
    ``needed_px``: the camera's minimum face height (``faces.min_face_px``)."""

    reads: int = 0
    captured: int = 0
    too_small: int = 0
    low_quality: int = 0
    no_face: int = 0
    largest_small_px: float = 0.0  # the largest face found that was still under the minimum
    needed_px: float = 24.0

    @property
    def persons(self) -> int:
        return self.captured + self.too_small + self.low_quality + self.no_face

    @property
    def found(self) -> int:
        """Person tracks on which a face was found (captured or not)."""
        return self.captured + self.too_small + self.low_quality


FACE_COUNTERS: tuple[tuple[str, str, Callable[[FaceStats], int]], ...] = (
    ("persons", "Person tracks whose events went out (face capture on).", lambda f: f.persons),
    ("faces_captured", "Person tracks with a face captured.", lambda f: f.captured),
    (
        "faces_too_small",
        "Faces found under the minimum height: not captured.",
        lambda f: f.too_small,
    ),
)
"""A face camera's counters (Prometheus ``_total``), the same in the node's and the cluster's
export: name, help, value."""


def faces_too_small(stats: FaceStats, min_faces: int = MIN_FACES) -> bool:
    """Whether the camera's faces are too small to capture: of at least ``min_faces`` found,
    more than half under the minimum size."""
    return stats.found >= min_faces and 2 * stats.too_small > stats.found


def face_finding(stats: FaceStats, lang: str = "en", min_faces: int = MIN_FACES) -> str | None:
    """What to tell the operator when the camera's faces are too small (:func:`faces_too_small`),
    with the fix, in ``lang`` ("en" or "zh"); None otherwise."""
    if not faces_too_small(stats, min_faces):
        return None
    largest, needed = f"{stats.largest_small_px:.0f}", f"{stats.needed_px:.0f}"
    if lang == "zh":
        return (
            f"人脸过小无法抓拍：检出的 {stats.found} 张人脸中 {stats.too_small} 张小于 {needed} "
            f"像素（最大 {largest} 像素）——请拉近焦距或移近摄像机"
        )
    return (
        f"faces too small to capture: {stats.too_small} of {stats.found} found under {needed} px "
        f"high (the largest {largest} px) — zoom in or move the camera closer"
    )


def describe_faces(stats: FaceStats, lang: str = "en") -> str:
    """One line for ``analyze`` and ``camera-check``: faces captured of the persons whose events
    went out, and why the others have none."""
    zh = lang == "zh"
    parts = [
        f"人脸：{stats.persons} 人中抓拍 {stats.captured} 张"
        if zh
        else f"faces: {stats.captured} captured of {stats.persons} persons"
    ]
    largest, needed = f"{stats.largest_small_px:.0f}", f"{stats.needed_px:.0f}"
    if stats.too_small:
        parts.append(
            f"{stats.too_small} 张过小（最大 {largest} 像素，需 {needed} 像素："
            "请拉近焦距或移近摄像机）"
            if zh
            else f"{stats.too_small} faces too small: the largest {largest} px high, {needed} px "
            "needed (zoom in or move the camera closer)"
        )
    if stats.low_quality:
        parts.append(
            f"{stats.low_quality} 张模糊或侧脸"
            if zh
            else f"{stats.low_quality} faces too blurred or turned away"
        )
    if stats.no_face:
        parts.append(
            f"{stats.no_face} 人未检出人脸（背对或过小）"
            if zh
            else f"{stats.no_face} with no face found (seen from behind, or too small to find)"
        )
    return ("；" if zh else "; ").join(parts)
