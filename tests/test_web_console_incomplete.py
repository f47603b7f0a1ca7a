"""Browser test: an incomplete evidence record is listed, and confirming needs an explicit
acknowledgement; the queue and the page show the violation time (the stop-line crossing)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharpeyes.pipeline.evidence.facts import violation_time_ms
from sharpeyes.pipeline.evidence.images import beijing_time_text
from tests._api_fixtures import (
    Seeded,
    live_server,
    make_app,
    make_event,
    seed_service,
    write_evidence,
)
from tests.test_web_console import ARGS, CHROMIUM, _playwright

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PARTS = [
    {"part": "plate", "reason": "plate unreadable in every evidence image"},
    {"part": "image_1", "reason": "no observation before the stop line while red"},
    {
        "part": "image_3",
        "reason": "the track was lost before the entry line; the two-wheeler it rode (track 165) "
        "was seen past it at 41.83 s; image 3 is this track's last sighting — check the clip",
    },
    {"part": "image_2", "reason": "a reason the console has no words for"},
]
# what a Chinese-speaking reviewer reads for each part (the last one as written)
ZH = [
    "号牌：所有证据图片中号牌均无法识别",
    "图1：红灯期间未观测到主体位于停止线前",
    "图3：目标在入口线前丢失；其所骑两轮车（轨迹 165）于 41.83 秒越过入口线；"
    "图3为该目标最后出现位置，请核对视频",
    "图2：a reason the console has no words for",
]


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    yield s
    s.service.db.close()


def test_incomplete_record_needs_acknowledgement(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    from playwright.sync_api import expect

    target = seeded.violations[0]
    rec = seeded.files_root / "evidence" / target.stream_id / target.event_id / "record.json"
    doc = json.loads(rec.read_text(encoding="utf-8"))
    doc.update(complete=False, incomplete=PARTS)
    rec.write_text(json.dumps(doc), encoding="utf-8")
    when = violation_time_ms(target)
    assert when is not None
    app = make_app(seeded)
    with live_server(app) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(locale="zh-CN")
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/")
            page.fill("#token", seeded.tokens["reviewer"])
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#queue-table tbody tr[data-id]")
            assert beijing_time_text(when) in page.inner_text("#queue-table")
            page.click(f"#queue-table tr[data-id='{target.event_id}']")
            expect(page.locator("#incomplete")).to_be_visible()
            box = page.inner_text("#incomplete")
            assert "证据不完整" in box
            for line in ZH:
                assert line in box, box
            page.click("#lang")  # English: the reasons as the record states them
            expect(page.locator("#incomplete")).to_contain_text(PARTS[2]["reason"])
            for p in PARTS:
                assert f"{p['part']}: {p['reason']}" in page.inner_text("#incomplete")
            page.click("#lang")
            expect(page.locator("#incomplete")).to_contain_text(ZH[0])
            page.click("#confirm")
            expect(page.locator("#review-msg")).to_contain_text("勾选")
            state = seeded.service.get_event(target.event_id, violation=True).review
            assert state is not None and state.state == "pending"
            page.check("#ack-incomplete")
            page.click("#confirm")
            # the oldest item confirmed: the first one still pending opens (the list wraps),
            # the outcome named apart
            expect(page.locator("#prev-msg")).to_have_text(
                "✓ 上一条（京A12345）已确认 · 当前为下一条待审核"
            )
            assert not errors, errors
        finally:
            browser.close()
    stored = seeded.service.get_event(target.event_id, violation=True)
    assert stored.review is not None and stored.review.state == "confirmed"


def test_a_red_age_that_is_a_lower_bound_shows_as_one(seeded: Seeded) -> None:
    """A violation whose red was already on when the camera first saw it: the console shows
    its red age as "≥ …" (at least), the others as plain values."""
    sync_playwright = _playwright()
    from playwright.sync_api import expect

    ev = dataclasses.replace(
        make_event(50, violation=True, plate="京A55555"), extra=(("red_onset", "not_seen"),)
    )
    seeded.service.ingest([ev])
    rel = write_evidence(seeded.files_root, ev)
    seeded.service.events.set_evidence(ev.event_id, rel, f"{rel}/record.json")
    plain = seeded.violations[0]
    app = make_app(seeded)
    with live_server(app) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(locale="zh-CN")
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/")
            page.fill("#token", seeded.tokens["reviewer"])
            page.click("#login-form button[type=submit]")
            page.wait_for_selector(f"#queue-table tr[data-id='{ev.event_id}']")
            page.click(f"#queue-table tr[data-id='{ev.event_id}']")
            expect(page.locator("#meta")).to_contain_text("≥3.2")
            page.evaluate(f"location.hash = '#/violation/{plain.event_id}'")
            expect(page.locator("#meta")).to_contain_text(plain.event_id)
            expect(page.locator("#meta")).to_contain_text("3.2")
            assert "≥" not in page.inner_text("#meta")
            assert not errors, errors
        finally:
            browser.close()
