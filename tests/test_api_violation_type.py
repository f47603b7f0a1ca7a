"""``violation_type=`` on the events and violations lists (issue 17), SQLite and PostgreSQL:
one type or several, the suite's types (``extra.violation_type``) and the red-light ones (by
event type), in OpenAPI with its values."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sharpeyes.api.store import EventFilter
from sharpeyes.pipeline.types import Event, TrajectoryPoint
from tests._api_fixtures import Seeded, make_app, make_event, seed_service
from tests._pg_fixtures import db_url, pg_server  # noqa: F401

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SUITE = {"wrong_way": "1301", "solid_line": "1345", "yield_pedestrian": "1357"}
TYPES: dict[str, str] = {}  # event id → its violation type (or event type), as seeded


def suite_event(i: int, vtype: str) -> Event:
    ev = make_event(i, violation=True, camera="cam3")
    assert ev.violation is not None
    v = replace(ev.violation, code=SUITE[vtype], approach=None)
    path = tuple(TrajectoryPoint(1.0 + k / 5, 400.0, 500.0 - 20 * k) for k in range(4))
    return replace(
        ev, violation=v, extra=(("violation_type", vtype), ("zone_id", "z")), trajectory=path
    )


@pytest.fixture
def seeded(db_url: str, tmp_path: Path) -> Iterator[Seeded]:  # noqa: F811
    s = seed_service(db_url, tmp_path, violations=6, passes=3)  # 5 vehicle + 1 pedestrian
    suite = [suite_event(50 + i, t) for i, t in enumerate([*SUITE, "wrong_way"])]
    s.service.ingest(suite)
    TYPES.clear()
    TYPES.update({e.event_id: e.type.value for e in [*s.violations, *s.passes]})
    TYPES.update({e.event_id: dict(e.extra)["violation_type"] for e in suite})
    yield s
    s.service.db.close()


@pytest.fixture
def client(seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(make_app(seeded)) as c:
        yield c


def types_of(client: TestClient, seeded: Seeded, url: str) -> list[str]:
    """The violation types (by the seeded events' ids) of what ``url`` lists."""
    r = client.get(url, headers=seeded.auth("viewer"))
    assert r.status_code == 200, r.text
    return sorted(TYPES[e["event_id"]] for e in r.json()["items"])


def test_one_type(client: TestClient, seeded: Seeded) -> None:
    url = "/api/v1/violations?violation_type=wrong_way&limit=100"
    assert types_of(client, seeded, url) == ["wrong_way", "wrong_way"]


def test_several_types(client: TestClient, seeded: Seeded) -> None:
    url = "/api/v1/violations?violation_type=solid_line&violation_type=yield_pedestrian"
    assert types_of(client, seeded, url) == ["solid_line", "yield_pedestrian"]


def test_red_light_by_its_event_type(client: TestClient, seeded: Seeded) -> None:
    url = "/api/v1/violations?violation_type=red_light_violation&limit=100"
    assert types_of(client, seeded, url) == ["red_light_violation"] * 5
    url = "/api/v1/events?violation_type=pedestrian_red_light&violation_type=wrong_way"
    assert types_of(client, seeded, url) == ["pedestrian_red_light", "wrong_way", "wrong_way"]


def test_no_filter_lists_every_violation(client: TestClient, seeded: Seeded) -> None:
    assert len(types_of(client, seeded, "/api/v1/violations?limit=100")) == 10
    assert len(types_of(client, seeded, "/api/v1/events?limit=100")) == 13


def test_unknown_type_is_a_422(client: TestClient, seeded: Seeded) -> None:
    r = client.get("/api/v1/violations?violation_type=speeding", headers=seeded.auth("viewer"))
    assert r.status_code == 422
    assert "speeding" in r.text


def test_store_filter_counts(seeded: Seeded) -> None:
    store = seeded.service.events
    assert store.count_events(EventFilter(violation_types=("wrong_way",))) == 2
    assert store.count_events(EventFilter(violation_types=("no_turn",))) == 0


def test_openapi_documents_the_parameter(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/violations", "/api/v1/events"):
        (param,) = [p for p in paths[path]["get"]["parameters"] if p["name"] == "violation_type"]
        schema = str(param["schema"])
        assert "illegal_parking" in schema and "red_light_violation" in schema
        assert "逆行" in param["description"]


def test_every_list_and_detail_says_the_type(client: TestClient, seeded: Seeded) -> None:
    """Lists of events and violations and a violation's detail all state each violation's own
    type (passes none); only the detail carries the subject's trajectory."""
    for url in ("/api/v1/events?limit=100", "/api/v1/violations?limit=100"):
        items = client.get(url, headers=seeded.auth("viewer")).json()["items"]
        for e in items:
            want = TYPES[e["event_id"]] if e["violation"] else None
            assert e["violation_type"] == want, (url, e["event_id"])
            assert e["trajectory"] == []
    ww = next(i for i, t in TYPES.items() if t == "wrong_way")
    one = client.get(f"/api/v1/violations/{ww}", headers=seeded.auth("viewer")).json()
    assert one["violation_type"] == "wrong_way"
    assert [(p["x"], p["y"]) for p in one["trajectory"]] == [
        (400.0, 500.0 - 20 * k) for k in range(4)
    ]


def test_queue_summary_counts_pending_of_the_picked_types(
    client: TestClient, seeded: Seeded
) -> None:
    def pending(query: str) -> int:
        r = client.get(f"/api/v1/console/queue-summary?{query}", headers=seeded.auth("viewer"))
        assert r.status_code == 200, r.text
        return int(r.json()["pending"])

    assert pending("violation_type=wrong_way") == 2
    assert pending("violation_type=wrong_way&violation_type=solid_line") == 3
    assert pending("") == 10
