"""Track events: one structured :class:`~sharpeyes.pipeline.types.Event` per confirmed track.

:class:`TrackEventBuilder` follows the tracker's output frame by frame and keeps a small summary
per live track (bounded: best crop only, a decimated trajectory, class votes). A track produces
exactly ONE event:

* when it ends — the caller passes the ids the tracker reports finished to :meth:`finish`, or
  :meth:`flush` at stream end; or
* when it has been visible for ``max_age_s`` (a parked car, a loitering person): the event is
  emitted at that frame with what is known so far, the track is marked emitted and produces no
  second event when it finally ends (its summary memory is released at that point).

Tracks shorter than ``min_track_s`` (first to last detection) and kinds not in ``config.kinds``
produce nothing. Times come from frames only (``pts`` and ``wall_time_ms``), never the clock.

Best crop quality = ``confidence × sqrt(box area)``, halved when the box touches the frame
border (a truncated object). The crop is cut with ``crop_margin`` (fraction of the box size on
each side), kept as pixels while the track lives and JPEG-encoded once, at emission.

Trajectory: ``trajectory_points`` points of the bottom-centre anchor at evenly spaced times from
the first to the last detection (positions linearly interpolated between the kept samples).

Direction: the heading of the bottom-centre anchor from the first to the last trajectory point,
in image degrees (0 = up, 90 = right; see :mod:`pipeline.geometry`) and as an image-relative
name in ``Event.direction`` ("up", "down-left", …). When the camera's ``image_up_bearing_deg``
is known the GA/T 1400 HDirectionType code '1'..'8' is added as ``extra`` key ``gat_direction``
(and the compass bearing as ``bearing_deg``). An object that moved less than 2 % of the frame
diagonal has no heading and no direction.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from sharpeyes.pipeline.config import EventsConfig
from sharpeyes.pipeline.geometry import (
    compass_bearing,
    gat_direction_code,
    heading_deg,
    image_direction,
)
from sharpeyes.pipeline.types import (
    EVENT_TYPE_FOR_KIND,
    Anchor,
    Box,
    Event,
    EventType,
    FloatArray,
    Frame,
    ImageBGR,
    ObjectKind,
    Tracks,
    TrajectoryPoint,
    make_event_id,
)

logger = logging.getLogger(__name__)

BORDER_PX = 2.0
"""A box within this many pixels of the frame edge counts as touching the border."""
BORDER_PENALTY = 0.5
MIN_MOVE_FRACTION = 0.02
"""Displacement below this fraction of the frame diagonal is 'no direction'."""
SCENE_JPEG_QUALITY = 85
"""JPEG quality of an event's scene picture (a full frame: about a tenth the bytes of q 95)."""


class _Trajectory:
    """Bottom-centre samples of one track, decimated by 2 whenever ``cap`` is exceeded.

    Memory stays O(cap) for arbitrarily long tracks while the kept samples stay evenly spread
    in time; the latest sample is always kept separately.
    """

    __slots__ = ("_cap", "_count", "_points", "_stride", "last")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._points: list[TrajectoryPoint] = []
        self._stride = 1
        self._count = 0
        self.last: TrajectoryPoint | None = None

    def add(self, point: TrajectoryPoint) -> None:
        if self._count % self._stride == 0:
            self._points.append(point)
            if len(self._points) > self._cap:
                self._points = self._points[::2]
                self._stride *= 2
        self._count += 1
        self.last = point

    def summary(self, n: int) -> tuple[TrajectoryPoint, ...]:
        """``n`` points at evenly spaced times from the first to the last sample.

        Positions between kept samples are linearly interpolated; the first and last points are
        real observations. Fewer points when fewer than ``n`` samples were seen.
        """
        pts = list(self._points)
        if self.last is not None and (not pts or pts[-1] is not self.last):
            pts.append(self.last)
        if len(pts) <= n:
            return tuple(pts)
        times = np.array([p.pts for p in pts])
        targets = np.linspace(times[0], times[-1], n)
        xs = np.interp(targets, times, [p.x for p in pts])
        ys = np.interp(targets, times, [p.y for p in pts])
        return tuple(
            TrajectoryPoint(float(t), float(x), float(y))
            for t, x, y in zip(targets, xs, ys, strict=True)
        )


@dataclass(slots=True)
class _TrackLog:
    """What is remembered about one live track."""

    track_id: int
    kind: ObjectKind
    first_pts: float
    first_ms: int
    last_pts: float
    last_ms: int
    trajectory: _Trajectory
    votes: dict[int, int] = field(default_factory=dict)
    conf_sum: float = 0.0
    detections: int = 0
    best_quality: float = -1.0
    best_crop: ImageBGR | None = None
    best_frame: ImageBGR | None = None  # the frame of ``best_crop`` (a reference, not a copy)
    best_box: Box | None = None
    best_pts: float | None = None
    emitted: bool = False


def box_quality(xyxy: FloatArray, confidence: FloatArray, width: int, height: int) -> FloatArray:
    """Crop quality per box: ``confidence × sqrt(area)``, × 0.5 when touching the frame border."""
    wh = np.maximum(xyxy[:, 2:] - xyxy[:, :2], 0.0)
    quality = confidence * np.sqrt(wh[:, 0] * wh[:, 1])
    touches = (
        (xyxy[:, 0] <= BORDER_PX)
        | (xyxy[:, 1] <= BORDER_PX)
        | (xyxy[:, 2] >= width - BORDER_PX)
        | (xyxy[:, 3] >= height - BORDER_PX)
    )
    out: FloatArray = np.where(touches, quality * BORDER_PENALTY, quality).astype(np.float32)
    return out


def crop_with_margin(image: ImageBGR, box: Box, margin: float) -> ImageBGR | None:
    """Copy of ``box`` grown by ``margin`` × its size on each side, clipped to the image."""
    mx = (box.x2 - box.x1) * margin
    my = (box.y2 - box.y1) * margin
    h, w = image.shape[:2]
    x1 = max(0, math.floor(box.x1 - mx))
    y1 = max(0, math.floor(box.y1 - my))
    x2 = min(w, math.ceil(box.x2 + mx))
    y2 = min(h, math.ceil(box.y2 + my))
    if x2 <= x1 or y2 <= y1:
        return None
    return image[y1:y2, x1:x2].copy()


class TrackEventBuilder:
    """Turns one stream's tracks into pass / seen events (one per track). Not thread-safe:
    use it from the stream's tracking thread, like the tracker."""

    def __init__(
        self,
        stream_id: str,
        config: EventsConfig,
        *,
        class_names: Sequence[str],
        class_codes: Mapping[int, str],
        image_up_bearing_deg: float | None = None,
        max_tracks: int = 4096,
        stale_s: float = 300.0,
    ) -> None:
        """``stale_s``: a track not seen for this long is finished even if nobody called
        :meth:`finish` for it; ``max_tracks`` bounds the live summaries (the least recently
        seen is finished first)."""
        self._stream_id = stream_id
        self._cfg = config
        self._class_names = tuple(class_names)
        self._class_codes = dict(class_codes)
        self._up_bearing = image_up_bearing_deg
        self._max_tracks = max_tracks
        self._stale_s = stale_s
        self._kinds = frozenset(ObjectKind[k.upper()] for k in config.kinds)
        self._scenes = bool(config.scene_images)  # None (not resolved by the camera): off
        self._logs: dict[int, _TrackLog] = {}
        self._first_of: dict[int, tuple[float, int]] = {}  # adopted first sightings (adopt)
        self._frame_diag = 0.0

    def __len__(self) -> int:
        """Live track summaries held."""
        return len(self._logs)

    def update(self, frame: Frame, tracks: Tracks) -> list[Event]:
        """Record this frame's detected tracks; return max-age and stale-track events."""
        self._frame_diag = math.hypot(frame.width, frame.height)
        detected = tracks[tracks.detected]
        if len(detected):
            quality = box_quality(detected.xyxy, detected.confidence, frame.width, frame.height)
            anchors = detected.anchors(Anchor.BOTTOM_CENTER)
            for i in range(len(detected)):
                self._observe(frame, detected, i, float(quality[i]), anchors[i])
        events = self._emit_aged(frame.pts)
        events.extend(self._evict(frame.pts))
        return events

    def finish(self, track_ids: Iterable[int]) -> list[Event]:
        """Events for tracks that ended (ids from ``ByteTracker.pop_finished``)."""
        events: list[Event] = []
        for tid in track_ids:
            log = self._logs.pop(int(tid), None)
            if log is not None and not log.emitted:
                event = self._event(log, reason="ended")
                if event is not None:
                    events.append(event)
        return events

    def flush(self) -> list[Event]:
        """Stream end: finish every live track."""
        return self.finish(list(self._logs))

    def adopt(self, from_id: int, into_id: int) -> None:
        """Track ``into_id`` is the vehicle that track ``from_id`` followed first (a plate-first
        track handed to the tracker's, :mod:`~sharpeyes.pipeline.structuring.plate_first`):
        its event says the vehicle was first seen when ``from_id`` first saw it — the zoomed
        checkpoint's 京M76967 from 13.48 s, its plate's time, not from 15.04 s, when the
        tracker first held the rest of the car. ``from_id``'s own event is not kept (the runner
        drops it)."""
        old = self._logs.get(int(from_id))
        if old is None:
            return
        new = self._logs.get(int(into_id))
        if new is None:  # its first picture is still to come (opened in this one)
            if len(self._first_of) >= 256:
                del self._first_of[next(iter(self._first_of))]
            self._first_of[int(into_id)] = (old.first_pts, old.first_ms)
        elif not new.emitted and old.first_pts < new.first_pts:
            new.first_pts, new.first_ms = old.first_pts, old.first_ms

    # -- internals --------------------------------------------------------------------------

    def _observe(
        self, frame: Frame, tracks: Tracks, i: int, quality: float, anchor: FloatArray
    ) -> None:
        kind = ObjectKind(int(tracks.kind[i]))
        if kind not in self._kinds or kind not in EVENT_TYPE_FOR_KIND:
            return
        tid = int(tracks.track_id[i])
        log = self._logs.get(tid)
        if log is None:
            log = self._new_log(tid, kind, frame)
        log.last_pts, log.last_ms = frame.pts, frame.wall_time_ms
        if log.emitted:
            return
        cls = int(tracks.class_id[i])
        log.votes[cls] = log.votes.get(cls, 0) + 1
        conf = float(tracks.confidence[i])
        log.conf_sum += conf
        log.detections += 1
        log.trajectory.add(TrajectoryPoint(frame.pts, float(anchor[0]), float(anchor[1])))
        if quality > log.best_quality and not frame.corrupt:  # never a damaged picture
            x1, y1, x2, y2 = (float(v) for v in tracks.xyxy[i])
            box = Box(x1, y1, x2, y2, frame.width, frame.height)
            crop = crop_with_margin(frame.image, box, self._cfg.crop_margin)
            if crop is not None:
                log.best_quality, log.best_crop = quality, crop
                log.best_box, log.best_pts = box, frame.pts
                if self._scenes:
                    log.best_frame = frame.image

    def _new_log(self, tid: int, kind: ObjectKind, frame: Frame) -> _TrackLog:
        if len(self._logs) >= self._max_tracks:
            oldest = min(self._logs.values(), key=lambda g: g.last_pts)
            logger.warning(
                "%s: %d live tracks, dropping track %d without an event",
                self._stream_id,
                len(self._logs),
                oldest.track_id,
            )
            del self._logs[oldest.track_id]
        cap = max(32, 4 * self._cfg.trajectory_points)
        first_pts, first_ms = self._first_of.pop(tid, (frame.pts, frame.wall_time_ms))
        if first_pts > frame.pts:  # the stream started over since
            first_pts, first_ms = frame.pts, frame.wall_time_ms
        log = _TrackLog(
            tid,
            kind,
            first_pts,
            first_ms,
            frame.pts,
            frame.wall_time_ms,
            _Trajectory(cap),
        )
        self._logs[tid] = log
        return log

    def _emit_aged(self, pts: float) -> list[Event]:
        events: list[Event] = []
        for log in self._logs.values():
            if not log.emitted and pts - log.first_pts >= self._cfg.max_age_s:
                event = self._event(log, reason="max_age")
                if event is not None:
                    events.append(event)
                log.emitted = True
                log.best_crop = log.best_frame = None
                log.trajectory = _Trajectory(1)
        return events

    def _evict(self, pts: float) -> list[Event]:
        stale = [tid for tid, g in self._logs.items() if pts - g.last_pts > self._stale_s]
        if stale:
            logger.info("%s: finishing %d stale tracks", self._stream_id, len(stale))
        return self.finish(stale)

    def _event(self, log: _TrackLog, *, reason: str) -> Event | None:
        if log.detections == 0 or log.last_pts - log.first_pts < self._cfg.min_track_s:
            return None
        type_: EventType = EVENT_TYPE_FOR_KIND[log.kind]
        class_id = max(log.votes.items(), key=lambda kv: (kv[1], -kv[0]))[0]
        trajectory = log.trajectory.summary(self._cfg.trajectory_points)
        heading, direction, extra = self._direction(trajectory)
        return Event(
            event_id=make_event_id(self._stream_id, log.track_id, log.first_ms, type_.value),
            type=type_,
            stream_id=self._stream_id,
            first_seen_ms=log.first_ms,
            last_seen_ms=log.last_ms,
            first_pts=log.first_pts,
            last_pts=log.last_pts,
            kind=log.kind,
            class_id=class_id,
            class_name=self._class_names[class_id] if class_id < len(self._class_names) else None,
            class_code=self._class_codes.get(class_id),
            track_id=log.track_id,
            confidence=log.conf_sum / log.detections,
            best_box=log.best_box,
            best_pts=log.best_pts,
            crop_jpeg=self._encode(log.best_crop),
            scene_jpeg=self._encode(log.best_frame, SCENE_JPEG_QUALITY),
            trajectory=trajectory,
            heading_deg=heading,
            direction=direction,
            extra=(("reason", reason), *extra),
        )

    def _direction(
        self, trajectory: Sequence[TrajectoryPoint]
    ) -> tuple[float | None, str | None, tuple[tuple[str, str], ...]]:
        if len(trajectory) < 2:
            return None, None, ()
        dx = trajectory[-1].x - trajectory[0].x
        dy = trajectory[-1].y - trajectory[0].y
        if math.hypot(dx, dy) < MIN_MOVE_FRACTION * self._frame_diag:
            return None, None, ()
        heading = heading_deg(dx, dy)
        if heading is None:
            return None, None, ()
        extra: tuple[tuple[str, str], ...] = ()
        if self._up_bearing is not None:
            bearing = compass_bearing(heading, self._up_bearing)
            extra = (
                ("gat_direction", gat_direction_code(bearing)),
                ("bearing_deg", f"{bearing:.1f}"),
            )
        return round(heading, 1), image_direction(heading), extra

    def _encode(self, crop: ImageBGR | None, quality: int | None = None) -> bytes | None:
        if crop is None:
            return None
        q = self._cfg.crop_jpeg_quality if quality is None else quality
        ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:
            logger.warning("%s: JPEG encoding of a %s crop failed", self._stream_id, crop.shape)
            return None
        return bytes(buf.tobytes())


@dataclass(frozen=True)
class ClassLabels:
    """Names the class of events made outside the track-event builder (violations from the
    rules carry the track's dominant class id only): ``class_name`` from the detector's class
    list and the GA/T ``class_code``, where the event has none. A rider charged as its person
    box (``detected_as: person``) is named by what it was charged as: a motor vehicle rider
    rode a ``motorcycle``; otherwise its two-wheeler's class is not known and none is named."""

    class_names: tuple[str, ...]
    class_codes: Mapping[int, str]

    def __call__(self, event: Event) -> Event:
        cid = event.class_id
        if event.class_name is not None or cid is None or cid >= len(self.class_names):
            return event
        if dict(event.extra).get("detected_as") == "person":
            if event.kind is not ObjectKind.MOTOR_VEHICLE or "motorcycle" not in self.class_names:
                return event
            cid = self.class_names.index("motorcycle")
        return event.with_(class_name=self.class_names[cid], class_code=self.class_codes.get(cid))
