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
  service's base URL, downloaded with ``Authorization: Bearer <viewer token>``.
"""

from __future__ import annotations

from pathlib import Path

from sharpeyes.api.rest.convert import event_public, evidence_list, evidence_path
from sharpeyes.api.rest.evidence import EvidenceLocator, UrlSigner
from sharpeyes.api.store import StoredEvent
from sharpeyes.api.store.serialize import JsonObject

_UNSIGNED = UrlSigner(b"broker-messages-carry-no-signed-urls")
__all__ = ["event_message", "evidence_path"]


def event_message(stored: StoredEvent, destination: str, files_root: Path) -> JsonObject:
    """The JSON object sent to ``destination`` for ``stored`` (see the module docstring)."""
    out = stored.to_json()
    public = event_public(stored, _UNSIGNED, None)
    violation = out.get("violation")
    if isinstance(violation, dict) and public.violation is not None:
        out["violation"] = {**violation, "time_ms": public.violation.time_ms}
    files = EvidenceLocator([files_root]).files(stored)
    out.update(
        destination=destination,
        time_ms=public.time_ms,
        attributes=None
        if public.attributes is None
        else public.attributes.model_dump(exclude_none=True),
        evidence=evidence_list(stored.event_id, files),
    )
    return out
