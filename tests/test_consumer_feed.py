"""A centre's EventSource client on the live feed (real uvicorn server): it reconnects the way
the WHATWG EventSource does — with ``Last-Event-ID`` only when the server has given it an id,
the ``id:`` of any block (with or without data) becoming its last event id.

Before 2026-12-05 a client whose connection dropped before its first event (a quiet feed, a
filter, a resume id the feed never gave) held no usable id: it reconnected from the head again
and every event stored while it was away was lost."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from sharpeyes.api.rest.service import build_store_service
from tests._api_fixtures import Seeded, live_server, make_app, make_event, seed_service

pytestmark = pytest.mark.integration


@dataclass
class EventSourceClient:
    """The reconnection state of an EventSource: its last event id and what it received."""

    base: str
    headers: dict[str, str]
    params: str = ""
    last_id: str = ""
    received: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def connect(self, *, events: int, seconds: float) -> None:
        """One connection: read until ``events`` more events or ``seconds`` passed (drop)."""
        headers = dict(self.headers)
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        want = len(self.received) + events
        with (
            httpx.Client(timeout=5) as c,
            c.stream("GET", f"{self.base}/api/v1/feed{self.params}", headers=headers) as r,
        ):
            assert r.status_code == 200
            deadline = time.monotonic() + seconds  # from the answer's headers
            id_buffer, data = self.last_id, ""
            for line in r.iter_lines():
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("id:"):
                    id_buffer = line[3:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "":  # dispatch: the id is taken even when there is no data
                    self.last_id = id_buffer
                    if data:
                        self.received.append(data)
                    data = ""
                if len(self.received) >= want or time.monotonic() > deadline:
                    return


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, violations=2, passes=2)
    yield s
    s.service.db.close()


def _event_ids(client: EventSourceClient) -> list[str]:
    return [str(json.loads(d)["event_id"]) for d in client.received]


def test_a_connection_dropped_before_its_first_event_resumes_without_loss(seeded: Seeded) -> None:
    with live_server(make_app(seeded)) as base:
        client = EventSourceClient(base, seeded.auth("viewer"), params="?camera=gate")
        client.connect(events=1, seconds=1.5)  # quiet: only the preamble and a heartbeat
        assert client.received == [] and client.last_id, client.comments
        away = [make_event(600 + i, camera="gate") for i in range(3)]
        seeded.service.ingest(away)  # stored while the client was disconnected
        client.connect(events=3, seconds=5.0)
    assert _event_ids(client) == [e.event_id for e in away]


def test_a_resume_id_beyond_the_head_is_replaced_so_the_next_reconnect_loses_nothing(
    seeded: Seeded,
) -> None:
    """The store was replaced (restored from a backup): the client's id is beyond the head. The
    feed says so and gives the head as the id, so a second drop does not skip what came."""
    with live_server(make_app(seeded)) as base:
        client = EventSourceClient(base, seeded.auth("viewer"), last_id="99999")
        client.connect(events=1, seconds=1.5)
        assert any("beyond this feed's head" in c for c in client.comments), client.comments
        assert client.last_id == str(seeded.service.feed.last_seq)
        away = [make_event(700 + i, camera="cam7") for i in range(2)]
        seeded.service.ingest(away)
        client.connect(events=2, seconds=5.0)
    assert _event_ids(client) == [e.event_id for e in away]


def test_resume_across_a_service_restart_replays_exactly_what_was_missed(
    seeded: Seeded,
) -> None:
    """Same store, new process: ids continue, the durable feed log replays the gap once."""
    viewer = seeded.auth("viewer")
    with live_server(make_app(seeded)) as base:
        client = EventSourceClient(base, viewer, last_id="0")
        client.connect(events=4, seconds=5.0)
    before = list(client.received)
    assert len(before) == 4
    away = [make_event(800 + i, camera="cam8") for i in range(3)]
    seeded.service.ingest(away)  # the last events of the stopping service
    restarted = build_store_service(
        seeded.service.db.url, seeded.files_root, token_key=b"test-pepper"
    )
    try:
        again = Seeded(restarted, seeded.files_root, seeded.tokens)
        with live_server(make_app(again)) as base:
            client.base = base
            client.connect(events=3, seconds=5.0)
            more = [make_event(900, camera="cam9")]
            restarted.ingest(more)
            client.connect(events=1, seconds=5.0)
    finally:
        restarted.db.close()
    ids = _event_ids(client)
    assert ids[4:] == [e.event_id for e in [*away, *more]]
    assert len(ids) == len(set(ids))


def test_feed_events_list_their_evidence_files_that_download_with_the_token(
    seeded: Seeded,
) -> None:
    """Live and on replay, a feed event lists its evidence files (name, size, type, API path),
    as the MQTT / Kafka messages do; each path downloads with the consumer's bearer token.
    Before, the feed carried no evidence at all."""
    import dataclasses

    from tests._api_fixtures import write_evidence

    viewer = seeded.auth("viewer")
    with live_server(make_app(seeded)) as base:
        replay = EventSourceClient(base, viewer, params="?type=red_light_violation", last_id="0")
        replay.connect(events=1, seconds=5.0)
        live = EventSourceClient(base, viewer, params="?camera=gate9")
        live.connect(events=1, seconds=1.0)  # connected: only the opening id
        ev = make_event(800, camera="gate9", violation=True, plate="京A80000")
        rel = write_evidence(seeded.files_root, ev)
        seeded.service.ingest([dataclasses.replace(ev, evidence_path=rel)])
        live.connect(events=1, seconds=5.0)
        for client in (replay, live):
            (data,) = client.received
            doc = json.loads(data)
            files = {f["name"]: f for f in doc["evidence"]}
            assert {"1.jpg", "composite.jpg", "record.json"} <= files.keys(), files
            for f in files.values():
                got = httpx.get(f"{base}{f['url']}", headers=viewer, timeout=5)
                assert got.status_code == 200 and len(got.content) == f["size"], f
                assert httpx.get(f"{base}{f['url']}", timeout=5).status_code == 401


def test_review_decisions_reach_the_feed_live_and_on_replay(seeded: Seeded) -> None:
    """A consumer of the feed learns that a violation was confirmed (with the plate the
    reviewer entered) or rejected: an ``event: review`` item with the audit entry, live and,
    after a reconnect, on replay — each saying the decision as it was taken, so a confirm
    later overturned still replays as a confirm. Before, decisions reached no feed."""
    first, second = seeded.violations[0], seeded.violations[1]
    viewer = seeded.auth("viewer")
    with live_server(make_app(seeded)) as base:
        live = EventSourceClient(base, viewer, params="?type=review")
        live.connect(events=1, seconds=1.0)  # the opening id only
        seeded.service.review(first.event_id, "zhangsan (t1)", "confirm", None, "京A12399")
        seeded.service.review(first.event_id, "lisi (t2)", "reject", "wrong lane", None)
        seeded.service.review(second.event_id, "zhangsan (t1)", "confirm", None, None)
        live.connect(events=3, seconds=5.0)
        replay = EventSourceClient(base, viewer, params="?type=review", last_id="0")
        replay.connect(events=3, seconds=5.0)
    for client in (live, replay):
        docs = [json.loads(d) for d in client.received]
        said = [(d["event_id"], d["review_state"], d["plate"], d["audit"]["actor"]) for d in docs]
        assert said == [
            (first.event_id, "confirmed", "京A12399", "zhangsan (t1)"),
            (first.event_id, "rejected", "京A12399", "lisi (t2)"),
            (second.event_id, "confirmed", second.plate and second.plate.text, "zhangsan (t1)"),
        ], said
        assert docs[1]["audit"]["reason"] == "wrong lane"
        assert {d["violation_type"] for d in docs} == {"red_light_violation"}
