"""The typed objects that cross stage boundaries: Frame, Detections, Tracks, SignalState, Event.

Only these cross a stage boundary — never positional tuples or ``dict[str, Any]``. ``Detections``
and ``Tracks`` are structs of numpy arrays that filter by boolean mask or index array
(``dets[dets.confidence > 0.5]``), so every stage can take one and return one.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]
ImageBGR = NDArray[np.uint8]


class ObjectKind(enum.IntEnum):
    """What a detected object is, independent of the model's class list."""

    OTHER = 0
    PERSON = 1
    NON_MOTOR = 2
    MOTOR_VEHICLE = 3
    TRAFFIC_LIGHT = 4

    @property
    def label(self) -> str:
        return self.name.lower()


class Anchor(enum.StrEnum):
    """Which point of a box stands for the object's position (supervision's ``Position``)."""

    BOTTOM_CENTER = "bottom_center"
    CENTER = "center"
    TOP_CENTER = "top_center"


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One decoded picture of one stream.

    ``pts`` is the presentation time in seconds from the stream itself (never the wall clock);
    ``wall_time_ms`` is the capture time in UTC epoch milliseconds derived once per connection
    from the first frame (or RTCP) plus the pts offset. ``image`` is BGR ``uint8`` H×W×3 on the
    host; a GPU decoder may also attach a device buffer in ``device_image``.
    """

    stream_id: str
    seq: int
    pts: float
    wall_time_ms: int
    image: ImageBGR
    device_image: Any = None
    keyframe: bool = False
    corrupt: bool = False  # damaged in transit (flagged by FFmpeg or broken references)
    damage_carried: bool = False
    """Decoded after a frame FFmpeg flagged, before the next keyframe, where the source does not
    count that as ``corrupt`` (RTSP: on a lossy link every later frame would be): concealed
    damage may still show in regions the encoder copied on (a static signal head does), so the
    signal heads are not read on it; crops and evidence may use it."""
    steadied: tuple[int, int] = (0, 0)
    """The shift ``(dx, dy)`` in pixels this picture was moved back by: the camera swayed that
    far from where its intersection was calibrated (``pipeline.runner``, ``CameraSway``)."""

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


def _as_f32(a: object, cols: int | None = None) -> FloatArray:
    arr = np.asarray(a, dtype=np.float32)
    if cols is not None:
        arr = arr.reshape(-1, cols)
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """Detector output for one frame: ``xyxy`` in frame pixels, confidence, model class, kind."""

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    kind: NDArray[np.int8]

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4) or any(
            len(a) != n for a in (self.confidence, self.class_id, self.kind)
        ):
            raise ValueError(
                f"Detections arrays disagree: xyxy {self.xyxy.shape}, confidence "
                f"{self.confidence.shape}, class_id {self.class_id.shape}, kind {self.kind.shape}"
            )

    @classmethod
    def create(
        cls,
        xyxy: object,
        confidence: object,
        class_id: object,
        kind: object,
    ) -> Detections:
        return cls(
            xyxy=_as_f32(xyxy, 4),
            confidence=_as_f32(confidence),
            class_id=np.asarray(class_id, dtype=np.int64).reshape(-1),
            kind=np.asarray(kind, dtype=np.int8).reshape(-1),
        )

    @classmethod
    def empty(cls) -> Detections:
        return cls.create(np.zeros((0, 4)), [], [], [])

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: NDArray[np.bool_] | NDArray[np.intp] | slice) -> Detections:
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            kind=self.kind[index],
        )

    def of_kind(self, *kinds: ObjectKind) -> Detections:
        return self[np.isin(self.kind, [int(k) for k in kinds])]

    def anchors(self, anchor: Anchor = Anchor.BOTTOM_CENTER) -> FloatArray:
        return box_anchors(self.xyxy, anchor)

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            kind=np.concatenate([p.kind for p in parts]),
        )


@dataclass(frozen=True, slots=True, eq=False)
class Tracks:
    """Confirmed tracks of one frame: detections plus ``track_id``.

    A separate type from :class:`Detections` so that rules cannot be handed untracked input.
    ``xyxy`` is the tracker's (smoothed) box; ``detected`` is False where the track was predicted
    through a frame without a matching detection.

    ``class_votes`` (N, C) is the track's class evidence so far: per model class id, the sum of
    the confidences of the detections of that class the track was matched to over its whole
    life (``class_id`` is its argmax). C is the number of class ids the tracker has seen, and
    is 0 where the producer keeps no votes (a tracker that does not, a test's builder); read it
    through :meth:`class_shares` / :meth:`votes_of`, which say "no evidence" for such a track.
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    kind: NDArray[np.int8]
    track_id: IntArray
    detected: NDArray[np.bool_]
    class_votes: FloatArray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4) or any(
            len(a) != n
            for a in (self.confidence, self.class_id, self.kind, self.track_id, self.detected)
        ):
            raise ValueError("Tracks arrays disagree in length")
        votes = self.class_votes
        if votes.ndim == 2 and len(votes) == n:
            return
        if votes.size:
            raise ValueError(f"Tracks class_votes {votes.shape} is not ({n}, classes)")
        object.__setattr__(self, "class_votes", np.zeros((n, 0), np.float32))  # none kept

    def class_shares(self) -> FloatArray:
        """(N, C) each track's share of its vote weight per class (rows sum to 1; a row with no
        votes is all 0)."""
        votes = self.class_votes
        total = votes.sum(axis=1, keepdims=True)
        shares: FloatArray = np.divide(
            votes, total, out=np.zeros_like(votes), where=total > 0
        ).astype(np.float32)
        return shares

    def votes_of(self, i: int) -> dict[int, float]:
        """Row ``i``'s non-zero class votes, class id → score-weighted vote ({} with none)."""
        row = self.class_votes[i]
        return {int(c): float(row[c]) for c in np.flatnonzero(row > 0)}

    @classmethod
    def empty(cls) -> Tracks:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int64),
            kind=np.zeros(0, np.int8),
            track_id=np.zeros(0, np.int64),
            detected=np.zeros(0, np.bool_),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: NDArray[np.bool_] | NDArray[np.intp] | slice) -> Tracks:
        return Tracks(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            kind=self.kind[index],
            track_id=self.track_id[index],
            detected=self.detected[index],
            class_votes=self.class_votes[index],
        )

    def of_kind(self, *kinds: ObjectKind) -> Tracks:
        return self[np.isin(self.kind, [int(k) for k in kinds])]

    def anchors(self, anchor: Anchor = Anchor.BOTTOM_CENTER) -> FloatArray:
        return box_anchors(self.xyxy, anchor)

    def within(self, width: int, height: int) -> Tracks:
        """These tracks with their boxes clipped to a ``width`` × ``height`` picture.

        The detector's boxes are clipped to the picture; the tracker's smoothed and predicted
        boxes are not, and a vehicle leaving at the bottom edge would otherwise stand a pixel
        below it — outside a zone drawn to the picture's edge."""
        xyxy = self.xyxy
        if not len(xyxy) or (
            float(xyxy.min()) >= 0.0
            and float(xyxy[:, 0::2].max()) <= width
            and float(xyxy[:, 1::2].max()) <= height
        ):
            return self
        clipped = xyxy.copy()
        np.clip(clipped[:, 0::2], 0, width, out=clipped[:, 0::2])
        np.clip(clipped[:, 1::2], 0, height, out=clipped[:, 1::2])
        return Tracks(
            clipped,
            self.confidence,
            self.class_id,
            self.kind,
            self.track_id,
            self.detected,
            self.class_votes,
        )


def box_anchors(xyxy: FloatArray, anchor: Anchor) -> FloatArray:
    """Return the (N, 2) anchor points of boxes."""
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2
    if anchor is Anchor.BOTTOM_CENTER:
        y = xyxy[:, 3]
    elif anchor is Anchor.TOP_CENTER:
        y = xyxy[:, 1]
    else:
        y = (xyxy[:, 1] + xyxy[:, 3]) / 2.0
    return np.stack([cx, y], axis=1).astype(np.float32)


class LampColor(enum.StrEnum):
    """State of a signal group as rules see it."""

    RED = "red"
    AMBER = "amber"
    GREEN = "green"
    OFF = "off"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SignalState:
    """The state of one signal group at frame time ``pts``.

    ``since_pts`` is the presentation time at which the current colour began (as far as the
    reader knows); ``onset_seen`` is False when that is only when it was first seen — the colour
    was already on when reading began (a camera started mid-phase, a gap in the video, a state
    unreadable before), so the true onset is earlier and :attr:`duration` a lower bound.
    ``source`` says whether it was read from video or set by an external input. ``fault`` is
    set (human-readable) while the group is in a signal fault (e.g. a head that was lit stayed
    dark): rules must treat such a state like UNKNOWN (see :meth:`unfaulted`). ``dark_since``
    is set while a lit colour is only *held*: the head has read dark since then, not yet long
    enough to be a fault, or its pictures were damaged since then (not read) — what it showed
    meanwhile is decided later (the same colour again: it was that colour; a fault, or another
    colour after damaged pictures: unknown), so a rule must not decide on it yet.
    ``unknown_from`` is set on a colour first read after damaged pictures: from that time (the
    last reading before them) to ``since_pts`` the colour is not known — the change may have
    happened at any moment in between.
    """

    group: str
    color: LampColor
    confidence: float
    since_pts: float
    pts: float
    source: str = "video"
    fault: str | None = None
    onset_seen: bool = True
    dark_since: float | None = None
    unknown_from: float | None = None

    def unfaulted(self) -> SignalState:
        """This state, or UNKNOWN (same times) while the group is in a fault."""
        if self.fault is None:
            return self
        return SignalState(
            self.group,
            LampColor.UNKNOWN,
            0.0,
            self.since_pts,
            self.pts,
            self.source,
            onset_seen=self.onset_seen,
        )

    @property
    def duration(self) -> float:
        """Seconds the current colour has lasted."""
        return max(0.0, self.pts - self.since_pts)


@dataclass(frozen=True, slots=True, eq=False)
class AnalysedFrame:
    """One analysed frame with what the pipeline knew at that instant.

    Kept (briefly) by the runner for evidence: every evidence image is drawn from one of these,
    so its overlay can state the signal state and the subject's box *of that frame*.
    """

    frame: Frame
    tracks: Tracks
    signals: Mapping[str, SignalState]


class EventType(enum.StrEnum):
    VEHICLE_PASS = "vehicle_pass"
    NON_MOTOR_PASS = "non_motor_pass"
    PERSON_SEEN = "person_seen"
    RED_LIGHT_VIOLATION = "red_light_violation"
    PEDESTRIAN_RED_LIGHT = "pedestrian_red_light"
    STREAM_HEALTH = "stream_health"
    TRAFFIC_FLOW = "traffic_flow"  # one lane over one interval (pipeline.flow)
    FACE_CAPTURE = "face_capture"  # the best face of a person track (pipeline.structuring)


EVENT_TYPE_FOR_KIND: dict[ObjectKind, EventType] = {
    ObjectKind.MOTOR_VEHICLE: EventType.VEHICLE_PASS,
    ObjectKind.NON_MOTOR: EventType.NON_MOTOR_PASS,
    ObjectKind.PERSON: EventType.PERSON_SEEN,
}


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels of a frame of size ``frame_w`` × ``frame_h``."""

    x1: float
    y1: float
    x2: float
    y2: float
    frame_w: int
    frame_h: int


@dataclass(frozen=True, slots=True)
class TrajectoryPoint:
    pts: float
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Plate:
    """A plate reading. ``text`` is None when unreadable — never invented."""

    text: str | None
    color: str | None
    confidence: float
    layers: int = 1


@dataclass(frozen=True, slots=True)
class Violation:
    """Structured facts of a rule violation (red light, pedestrian red light)."""

    code: str
    signal_group: str
    signal_color: LampColor
    seconds_since_red: float
    lane_no: int | None
    movement: str | None
    approach: str | None
    crossed_stop_line_pts: float
    evidence_pts: tuple[float, ...] = ()


def make_event_id(stream_id: str, track_id: int | None, first_seen_ms: int, type_: str) -> str:
    """Deterministic event id: the same (stream, track, first-seen, type) gives the same id."""
    key = f"{stream_id}|{track_id}|{first_seen_ms}|{type_}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Event:
    """One structured record produced by the pipeline.

    Times: ``first_seen_ms``/``last_seen_ms`` are UTC epoch milliseconds derived from frame time;
    ``first_pts``/``last_pts`` are stream presentation times. ``crop_jpeg`` is the best-quality
    crop of the object (JPEG bytes) and ``best_box`` its box in that frame. ``evidence_path`` is
    the evidence record directory of a violation once the evidence builder has written it.
    """

    event_id: str
    type: EventType
    stream_id: str
    first_seen_ms: int
    last_seen_ms: int
    first_pts: float
    last_pts: float
    kind: ObjectKind = ObjectKind.OTHER
    class_id: int | None = None
    class_name: str | None = None
    class_code: str | None = None
    track_id: int | None = None
    confidence: float = 0.0
    best_box: Box | None = None
    best_pts: float | None = None
    crop_jpeg: bytes | None = None
    trajectory: tuple[TrajectoryPoint, ...] = ()
    heading_deg: float | None = None
    direction: str | None = None
    plate: Plate | None = None
    violation: Violation | None = None
    detail: str | None = None
    evidence_path: str | None = None
    plate_jpeg: bytes | None = None  # plate picture of a checkpoint read (pipeline.structuring)
    scene_jpeg: bytes | None = None  # the full frame of the best crop (``events.scene_images``)
    extra: tuple[tuple[str, str], ...] = field(default=())

    def with_(self, **changes: object) -> Self:
        """Return a copy with fields replaced (``dataclasses.replace`` with a typed name)."""
        import dataclasses

        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
