"""Face capture (人脸抓拍): the best face of each person track, as a ``face_capture`` event.

:class:`FaceCapture` wraps the stream's track-event builder like
:class:`~sharpeyes.pipeline.structuring.vehicle.VehicleStructuring`: every frame it looks at the
detected person tracks and runs the face detector (YuNet) on the **upper part of the person box
only** (head and shoulders, plus a margin) — never on the whole frame — for tracks that are
best-view candidates (box quality at least ``candidate_ratio`` of the track's best so far), not
read in the last ``read_interval_s`` and read fewer than ``max_reads_per_track`` times.

Each face found gets a quality in 0–1, the product of

- the detector's score,
- size: ``min(1, face height / good_face_px)``,
- sharpness: ``min(1, variance of the Laplacian of the face / 100)`` (blur lowers it),
- frontality from the five landmarks: how centred the nose is between the eyes and how level
  the eyes are (a profile or a tilted head lowers it).

The best face per track is kept (close-up with ``margin`` around it, landmarks, quality, and
the times it was first and last seen). When the wrapped builder emits the track's event, a
``face_capture`` event follows it if the best face is at least ``min_face_px`` high and its
quality at least ``min_quality``; otherwise the track is counted in :attr:`FaceCapture.stats`
(``too_small`` / ``low_quality`` / ``no_face``) and nothing is emitted — never a face that is not
one a reviewer could use.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from sharpeyes.pipeline.config import FaceCaptureConfig
from sharpeyes.pipeline.events import SCENE_JPEG_QUALITY, box_quality
from sharpeyes.pipeline.evidence.images import encode_jpeg
from sharpeyes.pipeline.runner import TrackEvents
from sharpeyes.pipeline.structuring.face_stats import FaceStats
from sharpeyes.pipeline.types import (
    Box,
    Event,
    EventType,
    Frame,
    ImageBGR,
    ObjectKind,
    Tracks,
    make_event_id,
)

logger = logging.getLogger(__name__)

GOOD_FACE_PX = 64.0  # a face this high or more has full size score
SHARP_VAR = 100.0  # Laplacian variance of a sharp face crop (8-bit grey)


@dataclass(frozen=True, slots=True)
class FoundFace:
    """One face in image coordinates: box, score and five landmarks (eyes, nose, mouth)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...]


class FaceDetectorLike(Protocol):
    """Faces in an image (YuNet through ``cv2.FaceDetectorYN``)."""

    def faces(self, image: ImageBGR) -> list[FoundFace]: ...


class YuNetLandmarkFaces:
    """:class:`FaceDetectorLike` over YuNet with its landmarks (the shared ``yunet_face``)."""

    def __init__(self, model_path: str, score_threshold: float = 0.6) -> None:
        self._det = cv2.FaceDetectorYN.create(model_path, "", (320, 320), score_threshold, 0.3, 50)

    def faces(self, image: ImageBGR) -> list[FoundFace]:
        h, w = image.shape[:2]
        self._det.setInputSize((w, h))
        _, rows = self._det.detect(image)
        if rows is None:
            return []
        out = []
        for r in np.asarray(rows, np.float32):
            x, y, bw, bh = (float(v) for v in r[:4])
            marks = tuple((float(r[4 + 2 * i]), float(r[5 + 2 * i])) for i in range(5))
            out.append(FoundFace((x, y, x + bw, y + bh), float(r[14]), marks))
        return out


def frontality(landmarks: Sequence[tuple[float, float]]) -> float:
    """1 for a frontal, level face; towards 0 for a profile or a tilted head."""
    (rx, ry), (lx, ly), (nx, _) = landmarks[0], landmarks[1], landmarks[2]
    eye_dx = lx - rx
    eye_dist = math.hypot(eye_dx, ly - ry)
    if eye_dist < 1e-6:
        return 0.0
    centred = 1.0 - min(1.0, abs((nx - rx) / eye_dx - 0.5) * 2.0) if abs(eye_dx) > 1e-6 else 0.0
    level = max(0.0, 1.0 - abs(ly - ry) / eye_dist)
    return centred * level


def sharpness(face: ImageBGR) -> float:
    grey = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    return min(1.0, float(cv2.Laplacian(grey, cv2.CV_64F).var()) / SHARP_VAR)


def face_quality(found: FoundFace, image: ImageBGR) -> float:
    x1, y1, x2, y2 = (round(v) for v in found.box)
    h, w = image.shape[:2]
    crop = image[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)]
    if crop.size == 0:
        return 0.0
    size = min(1.0, (found.box[3] - found.box[1]) / GOOD_FACE_PX)
    return found.score * size * sharpness(crop) * frontality(found.landmarks)


@dataclass
class _Best:
    quality: float
    height_px: float
    jpeg: bytes
    box: Box
    landmarks: tuple[tuple[float, float], ...]
    pts: float
    frame: ImageBGR | None = None  # the frame it was taken from (a reference), for the scene


@dataclass
class _Track:
    best_box_quality: float = 0.0
    last_read_pts: float = -1e9
    reads: int = 0
    first_face_ms: int | None = None
    last_face_ms: int | None = None
    best: _Best | None = None


class FaceCapture:
    """Wraps a :class:`TrackEvents`; adds a ``face_capture`` event after a person's event."""

    def __init__(
        self,
        inner: TrackEvents,
        detector: FaceDetectorLike,
        config: FaceCaptureConfig,
        *,
        scene_images: bool = True,
    ) -> None:
        """``scene_images``: keep each capture's frame as its scene picture (GA/T 14)."""
        self.inner = inner
        self.detector = detector
        self.config = config
        self.scene_images = scene_images
        self.stats = FaceStats(needed_px=float(config.min_face_px))
        self._tracks: dict[int, _Track] = {}
        self._stream = ""

    def update(self, frame: Frame, tracks: Tracks) -> list[Event]:
        self._stream = frame.stream_id
        people = tracks[(tracks.kind == int(ObjectKind.PERSON)) & tracks.detected]
        if len(people):
            quality = box_quality(people.xyxy, people.confidence, frame.width, frame.height)
            for i in range(len(people)):
                self._consider(frame, int(people.track_id[i]), people.xyxy[i], float(quality[i]))
        return self._after(self.inner.update(frame, tracks))

    def finish(self, track_ids: Sequence[int]) -> list[Event]:
        return self._after(self.inner.finish(track_ids))

    def flush(self) -> list[Event]:
        out = self._after(self.inner.flush())
        self._tracks.clear()
        return out

    # -- internals ---------------------------------------------------------------------------

    def _consider(self, frame: Frame, tid: int, xyxy: np.ndarray, quality: float) -> None:
        cfg = self.config
        st = self._tracks.setdefault(tid, _Track())
        st.best_box_quality = max(st.best_box_quality, quality)
        if (
            quality < cfg.candidate_ratio * st.best_box_quality
            or frame.pts - st.last_read_pts < cfg.read_interval_s
            or st.reads >= cfg.max_reads_per_track
            or frame.corrupt
        ):
            return
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        bw, bh = x2 - x1, y2 - y1
        if bw < 8 or bh < 16:
            return
        # head and shoulders: the upper 40 % of the person box, widened by the margin
        m = cfg.margin * bw
        rx1, ry1 = max(0, round(x1 - m)), max(0, round(y1 - m))
        rx2, ry2 = min(frame.width, round(x2 + m)), min(frame.height, round(y1 + 0.4 * bh))
        region = frame.image[ry1:ry2, rx1:rx2]
        if region.shape[0] < 8 or region.shape[1] < 8:
            return
        st.last_read_pts = frame.pts
        st.reads += 1
        self.stats.reads += 1
        found = self.detector.faces(np.ascontiguousarray(region))
        if not found:
            return
        face = max(found, key=lambda f: f.score)
        shifted = FoundFace(
            (face.box[0] + rx1, face.box[1] + ry1, face.box[2] + rx1, face.box[3] + ry1),
            face.score,
            tuple((x + rx1, y + ry1) for x, y in face.landmarks),
        )
        q = face_quality(shifted, frame.image)
        st.first_face_ms = st.first_face_ms or frame.wall_time_ms
        st.last_face_ms = frame.wall_time_ms
        if st.best is None or q > st.best.quality:
            st.best = self._keep(frame, shifted, q)

    def _keep(self, frame: Frame, face: FoundFace, quality: float) -> _Best:
        x1, y1, x2, y2 = face.box
        fw, fh = x2 - x1, y2 - y1
        m = self.config.margin
        cx1, cy1 = max(0, round(x1 - m * fw)), max(0, round(y1 - m * fh))
        cx2 = min(frame.width, round(x2 + m * fw))
        cy2 = min(frame.height, round(y2 + m * fh))
        ok, buf = cv2.imencode(
            ".jpg", frame.image[cy1:cy2, cx1:cx2], [cv2.IMWRITE_JPEG_QUALITY, 92]
        )
        box = Box(
            max(0.0, x1), max(0.0, y1), min(x2, frame.width), min(y2, frame.height),
            frame.width, frame.height,
        )  # fmt: skip
        scene = frame.image if self.scene_images else None
        return _Best(quality, fh, bytes(buf) if ok else b"", box, face.landmarks, frame.pts, scene)

    def _after(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for e in events:
            out.append(e)
            if e.kind is not ObjectKind.PERSON or e.track_id is None:
                continue
            st = self._tracks.pop(e.track_id, None)
            face = None if st is None else self._capture(e, st)
            if face is not None:
                out.append(face)
        return out

    def _capture(self, person: Event, st: _Track) -> Event | None:
        best, cfg = st.best, self.config
        if best is None or not best.jpeg:
            self._count("no_face")
            return None
        if best.height_px < cfg.min_face_px:
            self._count("too_small")
            self.stats.largest_small_px = max(self.stats.largest_small_px, best.height_px)
            return None
        if best.quality < cfg.min_quality:
            self._count("low_quality")
            return None
        self.stats.captured += 1
        first = st.first_face_ms or person.first_seen_ms
        extra = (
            ("face_quality", f"{best.quality:.3f}"),
            ("face_landmarks", json.dumps([[round(x, 1), round(y, 1)] for x, y in best.landmarks])),
            ("person_event_id", person.event_id),
        )
        return Event(
            event_id=make_event_id(
                person.stream_id, person.track_id, person.first_seen_ms, "face_capture"
            ),
            type=EventType.FACE_CAPTURE,
            stream_id=person.stream_id,
            first_seen_ms=first,
            last_seen_ms=st.last_face_ms or person.last_seen_ms,
            first_pts=person.first_pts,
            last_pts=person.last_pts,
            kind=ObjectKind.PERSON,
            track_id=person.track_id,
            confidence=round(best.quality, 4),
            best_box=best.box,
            best_pts=best.pts,
            crop_jpeg=best.jpeg,
            scene_jpeg=_scene_jpeg(best.frame),
            detail=f"face of person track {person.track_id}, quality {best.quality:.2f}",
            extra=extra,
        )

    def _count(self, reason: str) -> None:
        if reason == "too_small":
            self.stats.too_small += 1
        elif reason == "low_quality":
            self.stats.low_quality += 1
        else:
            self.stats.no_face += 1
        logger.debug("person track without a usable face: %s", reason)


def _scene_jpeg(frame: ImageBGR | None) -> bytes | None:
    return None if frame is None else encode_jpeg(frame, SCENE_JPEG_QUALITY)
