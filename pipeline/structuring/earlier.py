"""A vehicle's pictures from before its track was born, for plate reads it would otherwise miss.

A track opens on a detection the detector is sure enough of (ByteTrack's new-track threshold,
or the camera's own level: :mod:`sharpeyes.pipeline.tracking.score_level`). On a checkpoint
camera analysed at a live camera's 5 pictures a second, a car's front can fill the picture for
a second and more while the detector scores it under that threshold, and its track opens one
picture before its plate leaves the frame: one read, and one read never states a plate
(``min_plate_reads``). The detector did see it in those pictures, only not surely.

:class:`EarlierPictures` keeps, for a short window, the analysed pictures in which a
motor-vehicle detection was left out of every track (no tracked box covers it), with those
detections. When a new track appears, :meth:`EarlierPictures.before` follows its first box
back through them — in each earlier picture, the untracked detection that overlaps the later
box most (IoU at least :data:`CHAIN_IOU`), until a picture has none — and the structuring stage
reads the plate on those pictures too. No track or event is made from them: only a track the
tracker opened anyway gains its own earlier pictures, so clutter the thresholds keep out stays
out. Pictures are kept at most one per ``spacing_s`` (the stage's read interval) and for
``window_s``: at 5 pictures a second, 2 s is 10 pictures held by reference (the frames are
not copied).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from sharpeyes.pipeline.geometry import iou_matrix
from sharpeyes.pipeline.types import Box, Detections, FloatArray, Frame, ObjectKind, Tracks

__all__ = ["CHAIN_IOU", "TRACKED_IOU", "EarlierPictures", "EarlierView"]

CHAIN_IOU = 0.3
"""Overlap of an earlier untracked box with the later box it continues (one vehicle, one
picture apart: at 5 pictures a second a car approaching a checkpoint camera moves a fifth of
its box or less)."""
TRACKED_IOU = 0.5
"""A detection overlapping a tracked box this much is that track's, not an untracked one."""


@dataclass(frozen=True, slots=True)
class EarlierView:
    """One earlier picture of a vehicle: the frame, its box there and the detector's score."""

    frame: Frame
    box: Box
    score: float


@dataclass(frozen=True, slots=True)
class _Picture:
    frame: Frame
    xyxy: FloatArray
    score: FloatArray


class EarlierPictures:
    """Recent pictures with untracked motor-vehicle detections (see the module docstring)."""

    def __init__(self, window_s: float = 2.0, spacing_s: float = 0.2, min_side_px: int = 0):
        if window_s < 0 or spacing_s < 0:
            raise ValueError("window_s and spacing_s must be ≥ 0")
        self.window_s = window_s
        self.spacing_s = spacing_s
        self.min_side_px = min_side_px
        self._pictures: deque[_Picture] = deque()

    def __len__(self) -> int:
        return len(self._pictures)

    def add(self, frame: Frame, detections: Detections, tracks: Tracks) -> None:
        """Keep ``frame`` when a motor-vehicle detection of it is in no track (``tracks`` are
        the tracker's output for the same picture), and drop pictures out of the window."""
        if self._pictures and frame.pts < self._pictures[-1].frame.pts:
            self._pictures.clear()  # the stream started over (a file looped, a camera restarted)
        while self._pictures and frame.pts - self._pictures[0].frame.pts > self.window_s:
            self._pictures.popleft()
        if self.window_s <= 0 or frame.corrupt:
            return
        if self._pictures and frame.pts - self._pictures[-1].frame.pts < self.spacing_s - 1e-6:
            return
        cars = detections.of_kind(ObjectKind.MOTOR_VEHICLE)
        if not len(cars):
            return
        xyxy = cars.xyxy.astype(np.float32)
        wh = xyxy[:, 2:] - xyxy[:, :2]
        keep = wh.min(axis=1) >= self.min_side_px
        tracked = tracks.xyxy[tracks.detected] if len(tracks) else np.zeros((0, 4), np.float32)
        if len(tracked) and keep.any():
            keep &= iou_matrix(xyxy, tracked.astype(np.float32)).max(axis=1) < TRACKED_IOU
        if keep.any():
            self._pictures.append(_Picture(frame, xyxy[keep], cars.confidence[keep]))

    def before(self, box: Box, pts: float) -> list[EarlierView]:
        """The vehicle whose box at ``pts`` is ``box``, followed back through the kept
        pictures (latest first) while each has an untracked box overlapping the later one;
        returned oldest first."""
        out: list[EarlierView] = []
        later = np.array([[box.x1, box.y1, box.x2, box.y2]], np.float32)
        for picture in reversed(self._pictures):
            if picture.frame.pts >= pts - 1e-6:
                continue
            if pts - picture.frame.pts > self.window_s:
                break
            overlap = iou_matrix(later, picture.xyxy)[0]
            best = int(np.argmax(overlap))
            if overlap[best] < CHAIN_IOU:
                break
            later = picture.xyxy[best : best + 1]
            x1, y1, x2, y2 = (float(v) for v in later[0])
            h, w = picture.frame.image.shape[:2]
            found = Box(x1, y1, x2, y2, w, h)
            out.append(EarlierView(picture.frame, found, float(picture.score[best])))
        out.reverse()
        return out

    def reset(self) -> None:
        self._pictures.clear()
