"""One JSON shape for an :class:`~pipeline.types.Event`, shared by ``events.jsonl`` and the store.

Floats are rounded (pixels and seconds to 3 decimals, confidences to 4) so files diff cleanly and
replays give byte-identical lines; the crop is referenced by path, never inlined.
"""

from __future__ import annotations

import json
from typing import TypeAlias

from sharpeyes.pipeline.types import Box, Event, Plate, TrajectoryPoint, Violation

JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None
JsonObject: TypeAlias = dict[str, JsonValue]

COORD_DECIMALS = 3
CONF_DECIMALS = 4


def _r(value: float | None, nd: int = COORD_DECIMALS) -> float | None:
    return None if value is None else round(float(value), nd)


def box_to_json(box: Box | None) -> JsonValue:
    if box is None:
        return None
    return {
        "x1": _r(box.x1),
        "y1": _r(box.y1),
        "x2": _r(box.x2),
        "y2": _r(box.y2),
        "frame_w": int(box.frame_w),
        "frame_h": int(box.frame_h),
    }


def trajectory_to_json(points: tuple[TrajectoryPoint, ...]) -> list[JsonValue]:
    """``[[pts, x, y], …]`` — compact, one triple per point."""
    return [[_r(p.pts), _r(p.x), _r(p.y)] for p in points]


def trajectory_from_json(text: str | None) -> tuple[TrajectoryPoint, ...]:
    if not text:
        return ()
    return tuple(TrajectoryPoint(float(t), float(x), float(y)) for t, x, y in json.loads(text))


def plate_to_json(plate: Plate | None) -> JsonValue:
    if plate is None:
        return None
    return {
        "text": plate.text,
        "color": plate.color,
        "confidence": _r(plate.confidence, CONF_DECIMALS),
        "layers": plate.layers,
    }


def violation_to_json(v: Violation | None) -> JsonValue:
    if v is None:
        return None
    return {
        "code": v.code,
        "signal_group": v.signal_group,
        "signal_color": str(v.signal_color),
        "seconds_since_red": _r(v.seconds_since_red),
        "lane_no": v.lane_no,
        "movement": v.movement,
        "approach": v.approach,
        "crossed_stop_line_pts": _r(v.crossed_stop_line_pts),
        "evidence_pts": [_r(p) for p in v.evidence_pts],
    }


def event_to_json(event: Event, crop_path: str | None) -> JsonObject:
    """The JSON object for one event (``crop_path`` relative to the output root, or None)."""
    return {
        "event_id": event.event_id,
        "type": str(event.type),
        "stream_id": event.stream_id,
        "kind": event.kind.label,
        "class_id": event.class_id,
        "class_name": event.class_name,
        "class_code": event.class_code,
        "track_id": event.track_id,
        "first_seen_ms": event.first_seen_ms,
        "last_seen_ms": event.last_seen_ms,
        "first_pts": _r(event.first_pts),
        "last_pts": _r(event.last_pts),
        "best_pts": _r(event.best_pts),
        "confidence": _r(event.confidence, CONF_DECIMALS),
        "box": box_to_json(event.best_box),
        "direction": event.direction,
        "heading_deg": _r(event.heading_deg, 1),
        "trajectory": trajectory_to_json(event.trajectory),
        "crop": crop_path,
        "plate": plate_to_json(event.plate),
        "violation": violation_to_json(event.violation),
        "detail": event.detail,
        "extra": {k: v for k, v in event.extra},
    }


def event_to_json_line(event: Event, crop_path: str | None) -> str:
    """One compact JSON line (UTF-8 text, Chinese plates unescaped), without the newline."""
    return json.dumps(
        event_to_json(event, crop_path), ensure_ascii=False, separators=(",", ":"), sort_keys=False
    )


def dumps(value: JsonValue) -> str:
    """Compact JSON text for a JSON column."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
