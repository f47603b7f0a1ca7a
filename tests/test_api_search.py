"""Search (issue 13) on SQLite and PostgreSQL: events by exact, partial and wildcard plate
(``?`` for an unreadable character, ``*`` for a run), plate colour, vehicle body colour, class,
camera and time; face captures per camera with their thumbnails."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharpeyes.pipeline.types import Event, EventType, ObjectKind, Plate
from tests._api_fixtures import Seeded, make_app, make_event, seed_service
from tests._pg_fixtures import db_url, pg_server  # noqa: F401

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

VEHICLES = [  # plate, plate colour, body colour, class
    ("京A12345", "blue", "white", "car"),
    ("京A17345", "blue", "red", "car"),
    ("京B06498", "yellow", "white", "bus"),
    ("沪C12345", "green", "black", "car"),
    (None, None, "grey", "truck"),
]


def checkpoint_event(i: int, plate: str | None, pcolor: str | None, body: str, cls: str) -> Event:
    e = make_event(100 + i, camera="gate1")
    return e.with_(
        plate=None if plate is None else Plate(plate, pcolor, 0.9),
        class_name=cls,
        extra=(
            ("vehicle_color", body),
            ("lane_no", str(1 + i % 2)),
            ("speed_kmh", f"{30 + i}.5"),
            ("plate_status", "read" if plate else "no_plate"),
        ),
    )


@pytest.fixture
def seeded(db_url: str, tmp_path: Path) -> Iterator[Seeded]:  # noqa: F811
    s = seed_service(db_url, tmp_path, violations=1, passes=1)
    events = [checkpoint_event(i, *v) for i, v in enumerate(VEHICLES)]
    face = make_event(200, camera="face1").with_(
        type=EventType.FACE_CAPTURE, kind=ObjectKind.PERSON, crop_jpeg=_jpeg()
    )
    people = [  # coat, trousers (riders' trousers are not stated)
        make_event(300 + i, camera="cross1").with_(
            type=EventType.PERSON_SEEN,
            kind=ObjectKind.PERSON,
            extra=(("coat_color", coat), *((("trousers_color", legs),) if legs else ())),
        )
        for i, (coat, legs) in enumerate([("red", "black"), ("blue", "black"), ("red", None)])
    ]
    s.service.ingest([*events, face, *people])
    yield s
    s.service.db.close()


def _jpeg() -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".jpg", np.full((48, 40, 3), 128, np.uint8))
    assert ok
    return bytes(buf)


def plates(client: TestClient, seeded: Seeded, **params: str) -> list[str | None]:
    r = client.get(
        "/api/v1/events", params={"camera": "gate1", **params}, headers=seeded.auth("viewer")
    )
    assert r.status_code == 200, r.text
    return sorted((i["plate"] or {}).get("text") or "-" for i in r.json()["items"])


def test_search_by_plate_colour_and_class(seeded: Seeded) -> None:
    client = TestClient(make_app(seeded))
    assert plates(client, seeded, plate="京A12345") == ["京A12345"]
    assert plates(client, seeded, plate_contains="12345") == ["京A12345", "沪C12345"]
    assert plates(client, seeded, plate_pattern="京A1?345") == ["京A12345", "京A17345"]
    assert plates(client, seeded, plate_pattern="*12345") == ["京A12345", "沪C12345"]
    assert plates(client, seeded, plate_pattern="京a1?345") == ["京A12345", "京A17345"]
    assert plates(client, seeded, plate_pattern="京A1%345") == []  # % is literal, not a wildcard
    assert plates(client, seeded, plate_color="yellow") == ["京B06498"]
    assert plates(client, seeded, vehicle_color="white") == ["京A12345", "京B06498"]
    assert plates(client, seeded, vehicle_color="grey") == ["-"]  # no plate, still found
    assert plates(client, seeded, class_name="car", vehicle_color="red") == ["京A17345"]
    viewer = seeded.auth("viewer")
    bad = client.get("/api/v1/events", params={"plate_color": "pink"}, headers=viewer)
    assert bad.status_code == 422


def test_search_persons_by_coat_and_trousers_colour(seeded: Seeded) -> None:
    """Issue 13: persons (and riders) searchable by clothing colour, and the record found says
    the colour it was found by; an unknown colour name is a 422, like a bad plate colour."""
    client = TestClient(make_app(seeded))
    auth = seeded.auth("viewer")

    def found(**params: str) -> list[tuple[str, str]]:
        r = client.get("/api/v1/events", params={"camera": "cross1", **params}, headers=auth)
        assert r.status_code == 200, r.text
        return sorted(
            (i["attributes"]["coat_color"], i["attributes"]["trousers_color"] or "-")
            for i in r.json()["items"]
        )

    assert found(coat_color="red") == [("red", "-"), ("red", "black")]
    assert found(trousers_color="black") == [("blue", "black"), ("red", "black")]
    assert found(coat_color="red", trousers_color="black") == [("red", "black")]
    assert found(coat_color="green") == []
    for bad in ({"vehicle_color": "bogus"}, {"coat_color": "RED"}, {"trousers_color": "gray"}):
        assert client.get("/api/v1/events", params=bad, headers=auth).status_code == 422, bad
    # plate letters are capitals: an exact search in lower case finds the plate too
    assert plates(client, seeded, plate="京a12345") == ["京A12345"]


def test_a_found_event_states_what_it_was_found_by(seeded: Seeded) -> None:
    """The colour searched for, the lane and the speed are on the record that comes back (list
    and detail), not only usable as filters."""
    client = TestClient(make_app(seeded))
    auth = seeded.auth("viewer")
    r = client.get(
        "/api/v1/events", params={"camera": "gate1", "vehicle_color": "red"}, headers=auth
    )
    (item,) = r.json()["items"]
    assert item["attributes"] == {
        "plate_status": "read",
        "vehicle_color": "red",
        "coat_color": None,
        "trousers_color": None,
        "color_status": None,
        "lane_no": 2,
        "speed_kmh": 31.5,
        "face_quality": None,
    }
    detail = client.get(f"/api/v1/events/{item['event_id']}", headers=auth).json()
    assert detail["attributes"]["vehicle_color"] == "red" and detail["plate"]["text"] == "京A17345"
    r = client.get(
        "/api/v1/events", params={"camera": "gate1", "vehicle_color": "grey"}, headers=auth
    )
    assert r.json()["items"][0]["attributes"]["plate_status"] == "no_plate"
    faces = client.get("/api/v1/events", params={"camera": "face1"}, headers=auth).json()["items"]
    assert faces and all(f["attributes"] is None for f in faces)  # nothing structured stated


def test_face_captures_per_camera_with_thumbnails(seeded: Seeded) -> None:
    client = TestClient(make_app(seeded))
    viewer = seeded.auth("viewer")
    r = client.get(
        "/api/v1/events", params={"camera": "face1", "type": "face_capture"}, headers=viewer
    )
    items = r.json()["items"]
    assert len(items) == 1
    thumb = client.get(f"/api/v1/events/{items[0]['event_id']}/evidence/crop.jpg", headers=viewer)
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"


def test_the_colour_filters_take_every_name_the_structuring_stage_states() -> None:
    from typing import get_args

    from sharpeyes.api.rest.routes.query import ColourName
    from sharpeyes.pipeline.structuring.lab_colour import COLOUR_NAMES

    assert set(get_args(ColourName)) == set(COLOUR_NAMES)
