"""The typed evidence record and its ``record.json`` document.

``record.json`` lists every evidence file with its size and HMAC-SHA256, names the key by id,
and carries ``record_hmac``: the HMAC of the document's canonical JSON without that field, so
a changed plate number or time in the metadata is detected as surely as a changed image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.evidence.facts import (
    CODE_TEXT,
    ImageFacts,
    Side,
    signal_fault,
    violation_time_ms,
)
from sharpeyes.pipeline.evidence.images import beijing_time_text
from sharpeyes.pipeline.evidence.tamper import ALGORITHM, canonical_json, hmac_bytes
from sharpeyes.pipeline.types import Box, Event, Frame, LampColor, Plate, SignalState
from sharpeyes.streams.remux import ClipInfo

SCHEMA = "sharpeyes.evidence/1"
RECORD_NAME = "record.json"
IMAGE_NAMES = ("1.jpg", "2.jpg", "3.jpg")


@dataclass(frozen=True, slots=True)
class EvidenceFileEntry:
    """One evidence file: name inside the record directory, size, keyed hash (hex)."""

    name: str
    size: int
    hmac_sha256: str


@dataclass(frozen=True, slots=True)
class EvidenceImage:
    """One evidence image: which frame (stream time, capture time) and the vehicle box."""

    index: int
    pts: float
    wall_time_ms: int
    beijing_time: str
    width: int
    height: int
    vehicle_box: Box | None
    signals: dict[str, SignalState] = field(default_factory=dict)
    signal_group: str | None = None
    box_source: str = "none"
    side: Side | None = None
    past_entry: bool | None = None
    steadied: tuple[int, int] = (0, 0)
    """The picture was moved back by this many pixels: the camera swayed (``Frame.steadied``)."""

    @classmethod
    def of(cls, index: int, frame: Frame, box: Box | None) -> EvidenceImage:
        return cls(
            index=index,
            pts=frame.pts,
            wall_time_ms=frame.wall_time_ms,
            beijing_time=beijing_time_text(frame.wall_time_ms),
            width=frame.width,
            height=frame.height,
            vehicle_box=box,
            steadied=frame.steadied,
        )

    @classmethod
    def of_facts(cls, im: ImageFacts) -> EvidenceImage:
        """The image with its own signal states, subject box and stop-line side."""
        f = im.frame
        return cls(
            index=im.index,
            pts=f.pts,
            wall_time_ms=f.wall_time_ms,
            beijing_time=beijing_time_text(f.wall_time_ms),
            width=f.width,
            height=f.height,
            vehicle_box=im.box,
            signals=dict(im.signals),
            signal_group=im.group,
            box_source=im.box_source,
            side=im.side,
            past_entry=im.past_entry,
            steadied=f.steadied,
        )

    @property
    def signal(self) -> SignalState | None:
        return None if self.signal_group is None else self.signals.get(self.signal_group)


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    """What :meth:`EvidenceBuilder.build_record` wrote."""

    event_id: str
    stream_id: str
    record_dir: Path
    files: tuple[EvidenceFileEntry, ...]
    images: tuple[EvidenceImage, ...]
    plate: Plate
    plate_frame: int | None  # 1-based evidence image the plate was read from
    clip: ClipInfo | None
    clip_error: str | None
    key_id: str
    violation_code: str
    incomplete: tuple[dict[str, str], ...] = ()
    overlay_language: str = "zh"
    overlay_reason: str = ""
    closeup_frame: int | None = None  # 1-based evidence image plate.jpg was cut from
    subject: Literal["vehicle", "person"] = "vehicle"  # a pedestrian carries no plate

    @property
    def closeup_shows(self) -> str:
        """What ``plate.jpg`` shows: ``plate`` (a located plate), ``lower_vehicle`` (no plate
        was found: the lower part of the subject's box, where a plate would be) or
        ``upper_body`` (a pedestrian's head and shoulders)."""
        if self.subject == "person":
            return "upper_body"
        return "plate" if self.plate_frame is not None else "lower_vehicle"

    @property
    def record_json(self) -> Path:
        return self.record_dir / RECORD_NAME

    @property
    def complete(self) -> bool:
        """Three images, a readable plate (of a vehicle) and a clip: what a reviewer needs to
        confirm."""
        return (
            len(self.images) == 3
            and (self.plate.text is not None or self.subject == "person")
            and self.clip is not None
            and not self.incomplete
        )

    def file(self, name: str) -> Path:
        return self.record_dir / name


def _box(b: Box | None) -> list[float] | None:
    return None if b is None else [round(b.x1, 1), round(b.y1, 1), round(b.x2, 1), round(b.y2, 1)]


# Keys of ``Event.extra`` holding what a suite rule judged its charge against (pixels); the
# per-type evidence checks (``type_facts``) read the same keys.
JUDGED_KEYS = frozenset(
    {
        "travel_px",
        "zone_px",
        "line_px",
        "line_margin_px",
        "stop_line_px",
        "turn_angle_deg",
        "still_radius_px",
        "dwell_s",
        "crosswalk_px",
        "pedestrian_track_id",
    }
)


def _violation(event: Event, code: str) -> dict[str, Any] | None:
    v = event.violation
    if v is None:
        return None
    code = v.code or code
    extra = dict(event.extra)
    return {
        "type": extra.get("violation_type", event.type.value),
        "code": code,
        "description": CODE_TEXT.get(code),
        # the geometry the rule judged the charge against (pixels), as the rule wrote it
        "judged": {k: extra[k] for k in sorted(JUDGED_KEYS & extra.keys())},
        "signal_group": v.signal_group,
        "signal_color": v.signal_color.value,
        "seconds_since_red": v.seconds_since_red,
        # False: the red was already on when first seen; seconds_since_red is a lower bound
        "red_onset_seen": extra.get("red_onset") != "not_seen",
        "lane_no": v.lane_no,
        "movement": v.movement,
        "approach": v.approach,
        "crossed_stop_line_pts": v.crossed_stop_line_pts,
        "evidence_pts": list(v.evidence_pts),
        "time_ms": violation_time_ms(event),
        "beijing_time": beijing_time_text(violation_time_ms(event) or 0),
    }


def _signal(st: SignalState) -> dict[str, Any]:
    known = st.color is not LampColor.UNKNOWN  # an unknown state has no onset to count from
    return {
        "color": st.color.value,
        "seconds_since_onset": round(st.duration, 3) if known else None,
        "onset_seen": st.onset_seen and known,  # False: seconds_since_onset is a lower bound
        "since_pts": round(st.since_pts, 4),
        "source": st.source,
        "fault": signal_fault(st),
    }


def _image(im: EvidenceImage) -> dict[str, Any]:
    st = im.signal
    return {
        "file": f"{im.index}.jpg",
        "pts": im.pts,
        "time_ms": im.wall_time_ms,
        "wall_time_ms": im.wall_time_ms,
        "beijing_time": im.beijing_time,
        "width": im.width,
        "height": im.height,
        "vehicle_box": _box(im.vehicle_box),
        "subject_box": _box(im.vehicle_box),
        "subject_box_source": im.box_source,
        "stop_line_side": im.side,
        "past_entry_line": im.past_entry,
        "signal_group": im.signal_group,
        "signal": None if st is None else _signal(st),
        "signals": {g: _signal(s) for g, s in sorted(im.signals.items())},
        # the camera swayed: the picture was moved back this far (px) to where the stop line and
        # signal heads were calibrated; the strip it uncovered at the edge is black
        "steadied_px": list(im.steadied),
    }


def _clip(c: ClipInfo | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "file": c.path.name,
        "codec": c.codec,
        "width": c.width,
        "height": c.height,
        "start_pts_s": round(c.start_pts_s, 6),
        "end_pts_s": round(c.end_pts_s, 6),
        "duration_s": round(c.duration_s, 6),
        "packets": c.packets,
        "keyframes": c.keyframes,
    }


def _event(event: Event) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "type": event.type.value,
        "stream_id": event.stream_id,
        "track_id": event.track_id,
        "kind": event.kind.label,
        "class_name": event.class_name,
        "confidence": event.confidence,
        "first_seen_ms": event.first_seen_ms,
        "last_seen_ms": event.last_seen_ms,
        "first_seen_beijing": beijing_time_text(event.first_seen_ms),
        "first_pts": event.first_pts,
        "last_pts": event.last_pts,
        "direction": event.direction,
        "detail": event.detail,
    }


def record_document(
    record: EvidenceRecord, event: Event, camera: CameraConfig, key: bytes
) -> dict[str, Any]:
    """The ``record.json`` content, including its ``record_hmac``."""
    p = record.plate
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "event": _event(event),
        "camera": {
            "id": camera.id,
            "name": camera.name,
            "device_id": camera.device_id,
            "tollgate_id": camera.tollgate_id,
            "location": camera.location,
        },
        "violation": _violation(event, record.violation_code),
        "plate": {
            "text": p.text,
            "readable": p.text is not None if record.subject == "vehicle" else None,
            "needed": record.subject == "vehicle",
            "color": p.color,
            "confidence": round(p.confidence, 4),
            "layers": p.layers,
            "image": record.plate_frame,
            "closeup": {
                "file": "plate.jpg",
                "shows": record.closeup_shows,
                "image": record.closeup_frame,
            },
        },
        "images": [_image(im) for im in record.images],
        "clip": _clip(record.clip),
        "clip_error": record.clip_error,
        "complete": record.complete,
        "incomplete": [dict(p) for p in record.incomplete],
        "overlay_language": record.overlay_language,
        "overlay_language_reason": record.overlay_reason,
        "files": [
            {"name": f.name, "size": f.size, "hmac_sha256": f.hmac_sha256} for f in record.files
        ],
        "integrity": {"algorithm": ALGORITHM, "key_id": record.key_id},
    }
    doc["record_hmac"] = hmac_bytes(canonical_json(doc), key)
    return doc
