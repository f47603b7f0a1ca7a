"""The message the MQTT and Kafka sinks send for one stored event.

It is the stored event as JSON (the ``events.jsonl`` fields plus the store's own) with what a
consumer that never calls the REST list routes needs to act on it, computed by the same code
as the REST API so that both say the same:

- ``time_ms`` — the event's time in UTC epoch ms: a violation's stop-line crossing (also as
  ``violation.time_ms``), otherwise ``first_seen_ms`` (the REST ``time_ms``);
- ``attributes`` — the structured attributes (plate status, colours, lane, speed, face
  quality) as the REST ``attributes`` object, or null;
- ``evidence`` — the evidence files the REST API serves for the event when it is sent
  (``name``, ``size``, ``media_type``, ``url``): ``url`` is the API path, relative to the
  service's base URL, downloaded with ``Authorization: Bearer <viewer token>``. In a cluster
  whose workers put evidence into object storage, the files not under the files root are
  listed from there (``remote``); while that storage cannot be read the list is null
  (unknown: the REST event view says it later), never a list that leaves files out.

A reviewer's decision on a violation is a message of its own (:func:`review_message`), told
apart by ``"type": "review"`` (no event type is named so).
"""

from __future__ import annotations

from pathlib import Path

from sharpeyes.api.rest.convert import event_public, evidence_list, evidence_path
from sharpeyes.api.rest.evidence import EvidenceLocator, RemoteEvidence, UrlSigner
from sharpeyes.api.store import StoredEvent
from sharpeyes.api.store.events import LoggedReview
from sharpeyes.api.store.routing import REVIEW_KIND
from sharpeyes.api.store.serialize import JsonObject
from sharpeyes.pipeline.rules import violation_type

_UNSIGNED = UrlSigner(b"broker-messages-carry-no-signed-urls")
__all__ = ["event_message", "evidence_path", "review_message"]


def event_message(
    stored: StoredEvent,
    destination: str,
    files_root: Path,
    remote: RemoteEvidence | None = None,
) -> JsonObject:
    """The JSON object sent to ``destination`` for ``stored`` (see the module docstring)."""
    out = stored.to_json()
    public = event_public(stored, _UNSIGNED, None)
    violation = out.get("violation")
    if isinstance(violation, dict) and public.violation is not None:
        out["violation"] = {**violation, "time_ms": public.violation.time_ms}
    files = EvidenceLocator([files_root], remote).files_if_readable(stored)
    evidence = None if files is None else evidence_list(stored.event_id, files)
    out.update(
        destination=destination,
        time_ms=public.time_ms,
        attributes=None
        if public.attributes is None
        else public.attributes.model_dump(exclude_none=True),
        evidence=evidence,
    )
    return out


def review_message(
    stored: StoredEvent, review: LoggedReview, feed_seq: int | None, destination: str
) -> JsonObject:
    """The JSON object sent to ``destination`` for a review decision on ``stored``.

    The decision as its audit entry recorded it (a re-send says what was decided then, not the
    state now): ``review_id`` (the audit entry's id, as ``GET /violations/{id}/audit`` gives
    it: the same on every re-send), ``review_seq`` (1, 2, … among the decisions on this event:
    the highest is the latest), ``feed_seq`` (the SSE id of the live feed's ``review`` item),
    ``action``, ``review_state`` (after it) and ``previous_review_state``, ``actor``, ``reason``,
    ``plate_before`` / ``plate_after`` (``plate_after`` is the corrected plate when one was
    entered), ``time_ms`` (when it was taken), and the event's ``event_id``, ``event_type``,
    ``violation_type``, ``stream_id`` and ``device_id``.
    """
    a = review.action
    ev = stored.event
    return {
        "type": REVIEW_KIND,
        "review_id": a.id,
        "review_seq": review.number,
        "feed_seq": feed_seq,
        "event_id": a.event_id,
        "event_type": str(ev.type),
        "violation_type": None if ev.violation is None else violation_type(ev),
        "stream_id": ev.stream_id,
        "device_id": stored.device_id,
        "action": a.action,
        "review_state": a.after.get("review_state"),
        "previous_review_state": a.before.get("review_state"),
        "actor": a.actor,
        "reason": a.reason,
        "plate_before": a.before.get("plate_text"),
        "plate_after": a.after.get("plate_text"),
        "time_ms": a.at_ms,
        "destination": destination,
    }
