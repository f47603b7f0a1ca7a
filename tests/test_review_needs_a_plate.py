"""Confirming a vehicle's violation needs a plate (RED_LIGHT.md: "A record is invalid when …
the plate is incomplete or unreadable"): where nothing read one, the reviewer enters the plate
read from the pictures or the clip (``corrected_plate``) or rejects the record. The service
refuses the confirm itself, not only the console; a pedestrian's record asks for no plate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests._api_fixtures import Seeded, make_app, make_event, seed_service, write_evidence

PLATE_MISSING = {"part": "plate", "reason": "plate unreadable in every evidence image"}


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    yield s
    s.service.db.close()


def mark_plate_missing(seeded: Seeded, i: int) -> str:
    ev = seeded.violations[i]
    rec = seeded.files_root / "evidence" / ev.stream_id / ev.event_id / "record.json"
    doc = json.loads(rec.read_text(encoding="utf-8"))
    doc["incomplete"] = [PLATE_MISSING]
    rec.write_text(json.dumps(doc), encoding="utf-8")
    return ev.event_id


def review(client: TestClient, seeded: Seeded, eid: str, **body: object) -> tuple[int, str]:
    payload = {"action": "confirm", "reason": None, "corrected_plate": None, **body}
    r = client.post(
        f"/api/v1/violations/{eid}/review", json=payload, headers=seeded.auth("reviewer")
    )
    return r.status_code, r.text


def test_a_plateless_record_is_confirmed_only_with_the_plate_read_by_the_reviewer(
    seeded: Seeded,
) -> None:
    eid = mark_plate_missing(seeded, 4)  # seeded violation 4 has no plate read
    assert seeded.violations[4].plate is None or seeded.violations[4].plate.text is None
    with TestClient(make_app(seeded)) as client:
        status, text = review(client, seeded, eid)
        assert status == 400 and "plate is unreadable" in text, text
        assert seeded.service.get_event(eid, violation=True).review.state == "pending"  # type: ignore[union-attr]
        status, text = review(client, seeded, eid, corrected_plate="京A54321")
        assert status == 200, text
        got = seeded.service.get_event(eid, violation=True).review
        assert got is not None and got.state == "confirmed" and got.corrected_plate == "京A54321"


def test_a_plateless_record_can_be_rejected_without_a_plate(seeded: Seeded) -> None:
    eid = mark_plate_missing(seeded, 4)
    with TestClient(make_app(seeded)) as client:
        status, text = review(client, seeded, eid, action="reject", reason="plate unreadable")
        assert status == 200, text


def test_a_plate_read_on_the_track_is_enough_to_confirm(seeded: Seeded) -> None:
    """The evidence images did not show the plate readably, but the track's fused read did:
    the reviewer checks it against the close-up and the clip and may confirm."""
    eid = mark_plate_missing(seeded, 0)  # violation 0 carries 京A12345
    with TestClient(make_app(seeded)) as client:
        status, text = review(client, seeded, eid)
        assert status == 200, text


def test_a_pedestrian_record_is_confirmed_without_a_plate(seeded: Seeded) -> None:
    """No plate read and none entered: a pedestrian's record (whose evidence lists no plate
    part, tests/test_evidence_pedestrian.py) is confirmed as it is."""
    ped = make_event(60, violation=True, plate=None, pedestrian=True)
    seeded.service.ingest([ped])
    rel = write_evidence(seeded.files_root, ped)
    seeded.service.events.set_evidence(ped.event_id, rel, f"{rel}/record.json")
    with TestClient(make_app(seeded)) as client:
        status, text = review(client, seeded, ped.event_id)
        assert status == 200, text


@pytest.mark.integration
@pytest.mark.browser
def test_the_console_asks_for_the_plate_before_confirming(seeded: Seeded) -> None:
    from tests.test_web_console import ARGS, CHROMIUM, _playwright

    sync_playwright = _playwright()
    from playwright.sync_api import expect

    from tests._api_fixtures import live_server

    eid = mark_plate_missing(seeded, 4)
    with live_server(make_app(seeded)) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(locale="zh-CN")
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            missing: list[str] = []  # a file the console asks for that is not there
            page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
            page.goto(f"{base}/")
            page.fill("#token", seeded.tokens["reviewer"])
            page.click("#login-form button[type=submit]")
            page.wait_for_selector(f"#queue-table tr[data-id='{eid}']")
            page.click(f"#queue-table tr[data-id='{eid}']")
            expect(page.locator("#incomplete")).to_be_visible()
            page.check("#ack-incomplete")
            page.click("#confirm")
            expect(page.locator("#review-msg")).to_contain_text("号牌无法识别")
            assert page.evaluate("document.activeElement.id") == "corrected"
            review_state = seeded.service.get_event(eid, violation=True).review
            assert review_state is not None and review_state.state == "pending"
            page.fill("#corrected", "京A54321")
            page.click("#confirm")
            expect(page.locator("#prev-msg")).to_contain_text("京A54321")
            # back on the confirmed record: what is missing is still said, nothing to tick
            page.evaluate(f"location.hash = '#/violation/{eid}'")
            expect(page.locator("#plate-corrected-text")).to_have_text("京A54321")
            expect(page.locator("#incomplete")).to_be_visible()
            expect(page.locator("#ack-label")).to_be_hidden()
            assert not errors, errors
            assert not missing, missing
        finally:
            browser.close()
    got = seeded.service.get_event(eid, violation=True).review
    assert got is not None and got.state == "confirmed" and got.corrected_plate == "京A54321"
