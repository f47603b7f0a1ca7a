"""Typed records of the store and their mapping to and from ``events`` rows."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from sharpeyes.api.store.db import Param, Row
from sharpeyes.api.store.serialize import (
    JsonObject,
    dumps,
    event_to_json,
    trajectory_from_json,
    trajectory_to_json,
)
from sharpeyes.pipeline.types import (
    Box,
    Event,
    EventType,
    LampColor,
    ObjectKind,
    Plate,
    Violation,
)

T = TypeVar("T")
ReviewState = Literal["pending", "confirmed", "rejected"]
ReviewVerb = Literal["confirm", "reject"]


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Last committed position of a stream, fenced by the owner's ``epoch``."""

    stream_id: str
    seq: int
    pts: float
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: the pipeline's :class:`Event` (without crop bytes) plus store fields.

    ``crop_path`` and ``metadata_path`` are relative to the store's ``files_root``.
    """

    event: Event
    crop_path: str | None
    device_id: str | None
    review_state: ReviewState | None
    evidence_dir: str | None
    metadata_path: str | None
    created_ms: int

    @property
    def event_id(self) -> str:
        return self.event.event_id

    def to_json(self) -> JsonObject:
        """The ``events.jsonl`` shape plus the store's own fields."""
        out = event_to_json(self.event, self.crop_path)
        out.update(
            device_id=self.device_id,
            review_state=self.review_state,
            evidence_dir=self.evidence_dir,
            metadata_path=self.metadata_path,
            created_ms=self.created_ms,
        )
        return out


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Query filter; empty fields do not filter. Time range on ``first_seen_ms``: [since, until)."""

    stream_ids: tuple[str, ...] = ()
    device_id: str | None = None
    types: tuple[EventType, ...] = ()
    kind: ObjectKind | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    plate: str | None = None
    plate_contains: str | None = None
    plate_pattern: str | None = None  # ``?`` one unreadable character, ``*`` any run
    plate_color: str | None = None
    vehicle_color: str | None = None
    coat_color: str | None = None
    trousers_color: str | None = None
    class_name: str | None = None
    review_state: ReviewState | None = None
    violations_only: bool = False
    violation_types: tuple[str, ...] = ()  # any of these ``pipeline.rules.violation_type``s


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results; pass ``next_cursor`` back to get the next one (None: last page)."""

    items: tuple[T, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ReviewAction:
    """One row of the append-only review audit trail."""

    id: int
    event_id: str
    actor: str
    action: str
    reason: str | None
    before: dict[str, str | None]
    after: dict[str, str | None]
    at_ms: int


EVENT_COLUMNS: tuple[str, ...] = (
    "event_id", "type", "stream_id", "device_id", "kind", "class_id", "class_name",
    "class_code", "track_id", "first_seen_ms", "last_seen_ms", "first_pts", "last_pts",
    "best_pts", "confidence", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "frame_w", "frame_h",
    "direction", "heading_deg", "trajectory", "crop_path", "plate_text", "plate_color",
    "plate_confidence", "plate_layers", "violation_code", "signal_group", "signal_color",
    "seconds_since_red", "lane_no", "movement", "approach", "crossed_stop_line_pts",
    "evidence_pts", "evidence_dir", "metadata_path", "detail", "extra", "review_state",
    "created_ms", "vehicle_color", "coat_color", "trousers_color",
)  # fmt: skip
SELECT_EVENT = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"
INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)}) ON CONFLICT (event_id) DO NOTHING"
)


def _int_or_none(value: str | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _extra_value(event: Event, key: str) -> str | None:
    return next((v for k, v in event.extra if k == key), None)


def _evidence_location(event: Event, files_root: Path | None) -> tuple[str | None, str | None]:
    """(evidence_dir, metadata_path) from ``Event.evidence_path`` (relative to ``files_root``
    when it lies below it) or from the legacy ``extra`` keys."""
    if event.evidence_path is None:
        return _extra_value(event, "evidence_dir"), _extra_value(event, "metadata_path")
    path = Path(event.evidence_path)
    if files_root is not None:
        with contextlib.suppress(ValueError):
            path = path.resolve().relative_to(files_root.resolve())
    return path.as_posix(), (path / "record.json").as_posix()


def event_row(
    event: Event,
    crop_path: str | None,
    device_id: str | None,
    now_ms: int,
    files_root: Path | None = None,
) -> tuple[Param, ...]:
    """Parameters for :data:`INSERT_EVENT`, in :data:`EVENT_COLUMNS` order."""
    evidence_dir, metadata_path = _evidence_location(event, files_root)
    b, p, v = event.best_box, event.plate, event.violation
    values: dict[str, Param] = {
        "event_id": event.event_id,
        "type": str(event.type),
        "stream_id": event.stream_id,
        "device_id": device_id,
        "kind": event.kind.label,
        "class_id": event.class_id,
        "class_name": event.class_name,
        "class_code": event.class_code,
        "track_id": event.track_id,
        "first_seen_ms": event.first_seen_ms,
        "last_seen_ms": event.last_seen_ms,
        "first_pts": event.first_pts,
        "last_pts": event.last_pts,
        "best_pts": event.best_pts,
        "confidence": float(event.confidence),
        "bbox_x1": None if b is None else float(b.x1),
        "bbox_y1": None if b is None else float(b.y1),
        "bbox_x2": None if b is None else float(b.x2),
        "bbox_y2": None if b is None else float(b.y2),
        "frame_w": None if b is None else int(b.frame_w),
        "frame_h": None if b is None else int(b.frame_h),
        "direction": event.direction,
        "heading_deg": event.heading_deg,
        "trajectory": dumps(trajectory_to_json(event.trajectory)),
        "crop_path": crop_path,
        "plate_text": None if p is None else p.text,
        "plate_color": None if p is None else p.color,
        "plate_confidence": None if p is None else float(p.confidence),
        "plate_layers": None if p is None else p.layers,
        "violation_code": None if v is None else v.code,
        "signal_group": None if v is None else v.signal_group,
        "signal_color": None if v is None else str(v.signal_color),
        "seconds_since_red": None if v is None else float(v.seconds_since_red),
        "lane_no": v.lane_no if v is not None else _int_or_none(_extra_value(event, "lane_no")),
        "movement": None if v is None else v.movement,
        "approach": None if v is None else v.approach,
        "crossed_stop_line_pts": None if v is None else float(v.crossed_stop_line_pts),
        "evidence_pts": None if v is None else dumps([float(x) for x in v.evidence_pts]),
        "evidence_dir": evidence_dir,
        "metadata_path": metadata_path,
        "detail": event.detail,
        "extra": dumps({k: val for k, val in event.extra}),
        "review_state": None if v is None else "pending",
        "vehicle_color": _extra_value(event, "vehicle_color"),
        "coat_color": _extra_value(event, "coat_color"),
        "trousers_color": _extra_value(event, "trousers_color"),
        "created_ms": now_ms,
    }
    return tuple(values[c] for c in EVENT_COLUMNS)


def _box(r: dict[str, Any]) -> Box | None:
    if r["bbox_x1"] is None:
        return None
    return Box(
        float(r["bbox_x1"]),
        float(r["bbox_y1"]),
        float(r["bbox_x2"]),
        float(r["bbox_y2"]),
        int(r["frame_w"] or 0),
        int(r["frame_h"] or 0),
    )


def _plate(r: dict[str, Any]) -> Plate | None:
    if r["plate_confidence"] is None and r["plate_text"] is None:
        return None
    return Plate(
        text=r["plate_text"],
        color=r["plate_color"],
        confidence=float(r["plate_confidence"] or 0.0),
        layers=int(r["plate_layers"] or 1),
    )


def _violation(r: dict[str, Any]) -> Violation | None:
    if r["violation_code"] is None:
        return None
    pts_text = r["evidence_pts"]
    return Violation(
        code=str(r["violation_code"]),
        signal_group=str(r["signal_group"]),
        signal_color=LampColor(str(r["signal_color"])),
        seconds_since_red=float(r["seconds_since_red"] or 0.0),
        lane_no=r["lane_no"],
        movement=r["movement"],
        approach=r["approach"],
        crossed_stop_line_pts=float(r["crossed_stop_line_pts"] or 0.0),
        evidence_pts=tuple(float(x) for x in json.loads(str(pts_text))) if pts_text else (),
    )


def row_to_stored(row: Row) -> StoredEvent:
    """Rebuild a :class:`StoredEvent` from a row selected with :data:`SELECT_EVENT`."""
    r: dict[str, Any] = dict(zip(EVENT_COLUMNS, row, strict=True))
    extra_text = r["extra"]
    extra = json.loads(str(extra_text)) if extra_text else {}
    event = Event(
        event_id=str(r["event_id"]),
        type=EventType(str(r["type"])),
        stream_id=str(r["stream_id"]),
        first_seen_ms=int(r["first_seen_ms"]),
        last_seen_ms=int(r["last_seen_ms"]),
        first_pts=float(r["first_pts"]),
        last_pts=float(r["last_pts"]),
        kind=ObjectKind[str(r["kind"]).upper()],
        class_id=r["class_id"],
        class_name=r["class_name"],
        class_code=r["class_code"],
        track_id=r["track_id"],
        confidence=float(r["confidence"]),
        best_box=_box(r),
        best_pts=r["best_pts"],
        trajectory=trajectory_from_json(r["trajectory"]),
        heading_deg=r["heading_deg"],
        direction=r["direction"],
        plate=_plate(r),
        violation=_violation(r),
        detail=r["detail"],
        extra=tuple((str(k), str(v)) for k, v in extra.items()),
    )
    return StoredEvent(
        event=event,
        crop_path=r["crop_path"],
        device_id=r["device_id"],
        review_state=r["review_state"],
        evidence_dir=r["evidence_dir"],
        metadata_path=r["metadata_path"],
        created_ms=int(r["created_ms"]),
    )
