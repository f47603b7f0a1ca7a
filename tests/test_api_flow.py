"""``GET /api/v1/flow`` on SQLite and PostgreSQL: the records the cameras' flow stage stored,
with their fields as measured, filtered by camera, lane and interval time, viewers allowed."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharpeyes.pipeline.flow import FlowRecord, flow_event
from tests._api_fixtures import Seeded, make_app, seed_service
from tests._pg_fixtures import db_url, pg_server  # noqa: F401

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z, a minute boundary


def record(camera: str, lane: int, start_ms: int, count: int, speed: float | None) -> FlowRecord:
    return FlowRecord(
        stream_id=camera,
        lane_id=f"L{lane}",
        lane_no=lane,
        start_ms=start_ms,
        interval_s=60.0,
        observed_s=60.0,
        complete=True,
        count=count,
        by_kind={"motor_vehicle": count},
        by_class={"car": count},
        mean_speed_kmh=speed,
        speeds_measured=count if speed is not None else 0,
        mean_headway_s=60.0 / count if count else None,
        occupancy=0.25,
        queue_max_vehicles=None,
        queue_max_length_m=None,
    )


@pytest.fixture
def seeded(db_url: str, tmp_path: Path) -> Iterator[Seeded]:  # noqa: F811
    s = seed_service(db_url, tmp_path, violations=1, passes=1)
    records = [
        record("cam1", lane, T0 + minute * 60_000, 3 * lane + minute, 40.0 + lane)
        for minute in range(3)
        for lane in (1, 2)
    ]
    records.append(record("cam2", 1, T0, 7, None))
    s.service.ingest([flow_event(r) for r in records])
    yield s
    s.service.db.close()


def test_flow_records_come_back_as_measured(seeded: Seeded) -> None:
    client = TestClient(make_app(seeded))
    viewer = seeded.auth("viewer")
    r = client.get("/api/v1/flow", params={"camera": "cam1"}, headers=viewer)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 6
    assert [i["start_ms"] for i in items[:2]] == [T0 + 120_000] * 2  # newest interval first
    one = next(i for i in items if i["lane_no"] == 2 and i["start_ms"] == T0 + 60_000)
    assert one["count"] == 7 and one["mean_speed_kmh"] == 42.0 and one["camera_id"] == "cam1"
    assert one["by_class"] == {"car": 7} and one["complete"] is True
    lane1 = client.get("/api/v1/flow", params={"camera": "cam1", "lane": 1}, headers=viewer)
    assert [i["count"] for i in lane1.json()["items"]] == [5, 4, 3]
    # local time without an offset: Beijing, so T0 is 08:00 on 2025-12-01
    since = {"camera": "cam1", "since": "2025-12-01T08:01:00"}
    assert len(client.get("/api/v1/flow", params=since, headers=viewer).json()["items"]) == 4
    cam2 = client.get("/api/v1/flow", params={"camera": "cam2"}, headers=viewer).json()["items"]
    assert len(cam2) == 1 and cam2[0]["mean_speed_kmh"] is None  # no ground plane: no speed
    assert client.get("/api/v1/flow").status_code == 401
    # flow records are events too (the feed and the ingest cursor see them), typed as such
    ev = client.get("/api/v1/events", params={"type": "traffic_flow"}, headers=viewer).json()
    assert len(ev["items"]) == 7
