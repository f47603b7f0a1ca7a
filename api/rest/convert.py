"""Store records → public schemas (the one place that knows both shapes)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from sharpeyes.api.rest.evidence import EvidenceFile, UrlSigner
from sharpeyes.api.rest.schemas import (
    AttributesPublic,
    AuditEntryPublic,
    BoxPublic,
    EventPublic,
    EvidenceFilePublic,
    IncompletePartPublic,
    PlatePublic,
    ReviewInfo,
    ReviewResult,
    TrajectoryPointPublic,
    ViolationPublic,
)
from sharpeyes.api.store.records import ReviewAction as StoreReviewAction
from sharpeyes.api.store.records import StoredEvent
from sharpeyes.api.store.serialize import JsonValue
from sharpeyes.pipeline.evidence.facts import violation_time_ms
from sharpeyes.pipeline.rules import violation_type

log = logging.getLogger(__name__)

ReviewOutcome = ReviewResult
API_PREFIX = "/api/v1"


def evidence_url(signer: UrlSigner, event_id: str, name: str) -> str:
    exp, sig = signer.sign(event_id, name)
    return f"{API_PREFIX}/events/{quote(event_id)}/evidence/{quote(name)}?exp={exp}&sig={sig}"


def _review(stored: StoredEvent, trail: Sequence[StoreReviewAction]) -> ReviewInfo | None:
    if stored.review_state is None:
        return None
    last = trail[-1] if trail else None
    original = trail[0].before.get("plate_text") if trail else None
    current = stored.event.plate.text if stored.event.plate is not None else None
    corrected = current if trail and current != original else None
    return ReviewInfo(
        state=stored.review_state,
        recognised_plate=original if trail else current,
        corrected_plate=corrected,
        reviewed_by=last.actor if last else None,
        reviewed_ms=last.at_ms if last else None,
    )


def _record_facts(
    files: Sequence[EvidenceFile] | None,
) -> tuple[bool | None, list[IncompletePartPublic]]:
    """(complete, incomplete parts) from the event's ``record.json`` among ``files``."""
    rec = next((f for f in files or () if f.name == "record.json"), None)
    if rec is None:
        return None, []
    try:
        doc: Any = json.loads(rec.path.read_text(encoding="utf-8"))
        parts = [
            IncompletePartPublic(part=str(p["part"]), reason=str(p["reason"]))
            for p in doc.get("incomplete") or ()
        ]
        said = doc.get("complete")
        complete = None if said is None else bool(said) and not parts
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("cannot read %s: %s", rec.path, e)
        reason = "the evidence record cannot be read"
        return False, [IncompletePartPublic(part="record", reason=reason)]
    return complete, parts


_TEXT_ATTRIBUTES = ("plate_status", "vehicle_color", "coat_color", "trousers_color", "color_status")


def _number(raw: str | None) -> float | None:
    try:
        return None if raw is None else float(raw)
    except ValueError:
        return None


def _attributes(extra: Sequence[tuple[str, str]]) -> AttributesPublic | None:
    """The structuring keys of an event's ``extra`` as a typed object (None when it has none)."""
    x = dict(extra)
    lane = _number(x.get("lane_no"))
    found = AttributesPublic(
        **{k: x[k] for k in _TEXT_ATTRIBUTES if x.get(k)},
        lane_no=None if lane is None else int(lane),
        speed_kmh=_number(x.get("speed_kmh")),
        face_quality=_number(x.get("face_quality")),
    )
    return found if found.model_dump(exclude_none=True) else None


def event_public(
    stored: StoredEvent,
    signer: UrlSigner,
    files: Sequence[EvidenceFile] | None,
    trail: Sequence[StoreReviewAction] = (),
) -> EventPublic:
    """The public view of a stored event; ``files`` None leaves evidence out (list pages)."""
    e = stored.event
    b, p, v = e.best_box, e.plate, e.violation
    when = violation_time_ms(e)
    complete, incomplete = _record_facts(files)
    return EventPublic(
        event_id=e.event_id,
        type=e.type.value,
        camera_id=e.stream_id,
        kind=e.kind.label,
        class_name=e.class_name,
        class_code=e.class_code,
        track_id=e.track_id,
        first_seen_ms=e.first_seen_ms,
        last_seen_ms=e.last_seen_ms,
        first_pts=e.first_pts,
        last_pts=e.last_pts,
        confidence=e.confidence,
        box=None if b is None else BoxPublic(**_box_dict(b)),
        direction=e.direction,
        heading_deg=e.heading_deg,
        plate=None
        if p is None
        else PlatePublic(text=p.text, color=p.color, confidence=p.confidence),
        violation=None
        if v is None
        else ViolationPublic(
            code=v.code,
            signal_group=v.signal_group,
            signal_color=str(v.signal_color),
            seconds_since_red=v.seconds_since_red,
            red_onset_seen=dict(e.extra).get("red_onset") != "not_seen",
            lane_no=v.lane_no,
            movement=v.movement,
            approach=v.approach,
            crossed_stop_line_pts=v.crossed_stop_line_pts,
            evidence_pts=list(v.evidence_pts),
            time_ms=when,
        ),
        attributes=_attributes(e.extra),
        detail=e.detail,
        review=_review(stored, trail),
        evidence=None
        if files is None
        else [
            EvidenceFilePublic(
                name=f.name,
                size=f.size,
                media_type=f.media_type,
                url=evidence_url(signer, e.event_id, f.name),
            )
            for f in files
        ],
        time_ms=e.first_seen_ms if when is None else when,
        evidence_complete=complete,
        incomplete=incomplete,
        violation_type=None if v is None else violation_type(e),
        trajectory=[]
        if files is None or v is None
        else [TrajectoryPointPublic(pts=t.pts, x=t.x, y=t.y) for t in e.trajectory],
    )


def _box_dict(b: object) -> dict[str, float]:
    return {k: getattr(b, k) for k in ("x1", "y1", "x2", "y2", "frame_w", "frame_h")}


def audit_public(a: StoreReviewAction) -> AuditEntryPublic:
    return AuditEntryPublic(
        id=a.id,
        event_id=a.event_id,
        actor=a.actor,
        action=a.action,
        reason=a.reason,
        before=dict(a.before),
        after=dict(a.after),
        at_ms=a.at_ms,
    )


def evidence_path(event_id: str, name: str) -> str:
    """The API path of one evidence file (bearer-token download, no signature): what the live
    feed and the MQTT / Kafka messages list, the same for every consumer."""
    return f"{API_PREFIX}/events/{quote(event_id, safe='')}/evidence/{quote(name, safe='')}"


def evidence_list(event_id: str, files: Sequence[EvidenceFile]) -> list[JsonValue]:
    """``[{name, size, media_type, url}]`` of an event's files, with :func:`evidence_path`."""
    return [
        {
            "name": f.name,
            "size": f.size,
            "media_type": f.media_type,
            "url": evidence_path(event_id, f.name),
        }
        for f in files
    ]


def feed_payload(stored: StoredEvent, files: Sequence[EvidenceFile] | None = None) -> str:
    """The JSON sent on the live feed: the public event; with ``files``, its evidence files
    as API paths to download with the consumer's bearer token (no signed URLs: one message
    serves every subscriber)."""
    body = event_public(stored, _NO_SIGNER, None).model_dump_json(exclude={"evidence"})
    if files is None:
        return body
    doc = json.loads(body)
    doc["evidence"] = evidence_list(stored.event_id, files)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


_NO_SIGNER = UrlSigner(b"feed-has-no-urls")


def review_payload(stored: StoredEvent, entry: StoreReviewAction) -> str:
    """The live feed's ``review`` item: a reviewer's decision on a violation, as its audit
    entry records it (so a replay says what was decided then, not the state now)."""
    doc = {
        "event_id": stored.event_id,
        "camera_id": stored.event.stream_id,
        "violation_type": violation_type(stored.event),
        "review_state": entry.after.get("review_state"),
        "plate": entry.after.get("plate_text"),
        "audit": audit_public(entry).model_dump(),
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
