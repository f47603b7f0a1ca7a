"""A centre polling reviewed violations with the ingest cursor (real uvicorn server).

``after`` walks events in the order they were *stored*; ``review_state`` is what a reviewer has
decided *since*. A poller asking for ``review_state=confirmed&after=N`` therefore never saw a
violation confirmed after its cursor had passed it — and the docs promised that every filter
combines with ``after`` and that every stored event comes once. Before 2026-12-05 that poll
answered 200 and silently missed them; now the states a record reaches after it is stored
(confirmed, rejected) are refused with ``after`` (400, saying what to do instead), and the
documented way — poll every violation with ``after``, then look up the ones still pending — gets
every decision."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._api_fixtures import Seeded, live_server, make_app, seed_service

pytestmark = pytest.mark.integration


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, violations=4, passes=2)
    yield s
    s.service.db.close()


def _poll(api: httpx.Client, after: int, **params: str) -> tuple[list[str], int]:
    page = api.get("/api/v1/violations", params={"after": after, "limit": 500, **params}).json()
    return [str(i["event_id"]) for i in page["items"]], int(page["next_after"])


def test_a_review_state_poll_on_the_cursor_is_refused_not_silently_lossy(seeded: Seeded) -> None:
    with (
        live_server(make_app(seeded)) as base,
        httpx.Client(base_url=base, headers=seeded.auth("reviewer"), timeout=10) as api,
    ):
        for state in ("confirmed", "rejected"):
            r = api.get("/api/v1/violations", params={"after": 0, "review_state": state})
            assert r.status_code == 400, (state, r.status_code, r.text)
            assert "review_state" in r.text and "after" in r.text
        # pending is a state a record is stored in: a new-pending poll loses nothing
        assert api.get(
            "/api/v1/violations", params={"after": 0, "review_state": "pending"}
        ).is_success

        # the documented way: every violation with the cursor, pending ones looked up again
        ids, after = _poll(api, 0)
        assert ids == [e.event_id for e in seeded.violations]
        pending = {i for i in ids if api.get(f"/api/v1/violations/{i}").json()["review"]}
        target = seeded.violations[1].event_id
        assert api.post(
            f"/api/v1/violations/{target}/review", json={"action": "confirm"}
        ).is_success
        more, _ = _poll(api, after)
        assert more == []  # nothing new was stored: the decision is not a new event
        decided = {
            i
            for i in pending
            if api.get(f"/api/v1/violations/{i}").json()["review"]["state"] == "confirmed"
        }
    assert decided == {target}
