"""Reviewer task (issue 15): time per decision for N queued violations, by keyboard, in Chromium.

Seeds a store with ``--violations`` pending violations (generated evidence, as the API tests),
serves the API with the review console, logs in as a reviewer in headless Chromium and works the
queue with the keyboard only: Enter opens the first item, then for each item one decision —
every ``--reject-every``-th is rejected with preset reason 1 (``1``, ``R``), the others confirmed
(``C``). A decision is timed from its first key press until the next item is fully shown (its
composite and plate images decoded), or, for the last, until its result is on the page.

``--console before`` serves the console as committed at ``--before-rev`` (default ``HEAD``,
read with ``git show``): there a decision is C (or a typed reason and R), then N for the next
item, since it neither advanced nor had presets. ``--console after`` serves the working tree.

    python -m benchmarks.review_task --console before --out /tmp/before.json
    python -m benchmarks.review_task --console after --out /tmp/after.json

Wall-clock numbers include Playwright's round trips (a few ms per key); compare before and
after on the same machine. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi.staticfiles import StaticFiles

from sharpeyes.api.rest.app import WEB_DIR, create_app
from sharpeyes.api.rest.routes.console import make_console_router
from tests._api_fixtures import api_settings, live_server, seed_service

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip
WEB_FILES = ("index.html", "app.js", "i18n.js", "style.css")
SHOWN = (
    "(id) => location.hash === '#/violation/' + id && "
    "document.querySelector('#meta').textContent.includes(id) && "
    "['#composite', '#plate-img'].every((s) => { const i = document.querySelector(s); "
    "return i.complete && i.naturalWidth > 0; })"
)


@dataclass
class Report:
    console: str
    violations: int
    rejects: int
    decisions_s: list[float] = field(default_factory=list)
    mean_s: float = 0.0
    median_s: float = 0.0
    p95_s: float = 0.0
    total_s: float = 0.0
    keys_per_decision: float = 0.0
    reviewed_ok: int = 0
    machine: dict[str, str] = field(default_factory=dict)


def _web_dir(which: str, rev: str, tmp: Path) -> Path:
    if which == "after":
        return WEB_DIR
    out = tmp / "web_before"
    out.mkdir()
    for name in WEB_FILES:
        text = subprocess.run(
            ["git", "show", f"{rev}:api/rest/web/{name}"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        (out / name).write_text(text, encoding="utf-8")
    return out


def _decide(page: Any, which: str, reject: bool) -> int:
    """Press the keys of one decision; returns how many keys were pressed."""
    if which == "after":
        keys = ["1", "r"] if reject else ["c"]
        for k in keys:
            page.keyboard.press(k)
        return len(keys)
    if reject:  # before: no presets; R focuses the empty reason, type it, Enter rejects
        page.keyboard.press("r")
        page.keyboard.type("号牌不清")
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('#review-msg').textContent === '已驳回'")
        page.keyboard.press("Escape")  # leave the field
        page.keyboard.press("n")
        return 4 + len("号牌不清")  # R, the text, Enter, Esc, N
    page.keyboard.press("c")
    page.wait_for_function("document.querySelector('#review-msg').textContent === '已确认'")
    page.keyboard.press("n")
    return 2


def run(args: argparse.Namespace) -> Report:
    from playwright.sync_api import sync_playwright

    report = Report(console=args.console, violations=args.violations, rejects=0)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        seeded = seed_service(
            f"sqlite:///{tmp / 'store.db'}", tmp, violations=args.violations, passes=0
        )
        app = create_app(api_settings(console=False), seeded.service)
        app.include_router(make_console_router())
        app.mount("/console", StaticFiles(directory=_web_dir(args.console, args.before_rev, tmp),
                                          html=True), name="console")  # fmt: skip
        order = sorted(seeded.violations, key=lambda e: (-e.first_seen_ms, e.event_id))
        keys = 0
        with live_server(app) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            try:
                ctx = browser.new_context(
                    viewport={"width": 1366, "height": 768}, locale="zh-CN", bypass_csp=True
                )
                page = ctx.new_page()
                page.goto(f"{base}/console/")
                page.fill("#token", seeded.tokens["reviewer"])
                page.click("#login-form button[type=submit]")
                page.wait_for_selector("#queue-table tbody tr[data-id]")
                page.locator("#queue-table tbody tr[data-id]").first.focus()
                page.keyboard.press("Enter")
                page.wait_for_function(SHOWN, arg=order[0].event_id)
                for i in range(len(order)):
                    reject = args.reject_every > 0 and (i + 1) % args.reject_every == 0
                    report.rejects += reject
                    start = time.perf_counter()
                    keys += _decide(page, args.console, reject)
                    if i + 1 < len(order):
                        page.wait_for_function(SHOWN, arg=order[i + 1].event_id)
                    else:
                        page.wait_for_function(
                            "document.querySelector('#review-msg').textContent.startsWith("
                            f"'{'已驳回' if reject else '已确认'}')"
                        )
                    report.decisions_s.append(time.perf_counter() - start)
            finally:
                browser.close()
        for ev in order:
            got = seeded.service.get_event(ev.event_id, violation=True).review
            report.reviewed_ok += got is not None and got.state != "pending"
        seeded.service.db.close()
    d = report.decisions_s
    report.mean_s = statistics.fmean(d)
    report.median_s = statistics.median(d)
    report.p95_s = sorted(d)[max(0, round(0.95 * len(d)) - 1)]
    report.total_s = sum(d)
    report.keys_per_decision = keys / len(d)
    report.machine = {"python": platform.python_version(), "cpu": platform.machine()}
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--console", choices=("before", "after"), default="after")
    ap.add_argument("--before-rev", default="HEAD", help="git revision of the 'before' console")
    ap.add_argument("--violations", type=int, default=20)
    ap.add_argument("--reject-every", type=int, default=5, help="reject every Nth (0: none)")
    ap.add_argument("--out", help="write the JSON report here")
    args = ap.parse_args(argv)
    report = run(args)
    data = asdict(report)
    for key in ("console", "violations", "rejects", "reviewed_ok", "keys_per_decision"):
        sys.stdout.write(f"{key:18s} {data[key]}\n")
    for key in ("mean_s", "median_s", "p95_s", "total_s"):
        sys.stdout.write(f"{key:18s} {data[key]:.3f}\n")
    if args.out:
        Path(args.out).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0 if report.reviewed_ok == report.violations else 1


if __name__ == "__main__":
    raise SystemExit(main())
