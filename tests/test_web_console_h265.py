"""Browser test: an H.265 evidence clip in the review console (Playwright, Debian's Chromium).

Most Chinese e-police cameras record H.265 and the clip is stream-copied, never re-encoded. A
browser without an H.265 decoder must not show a silent black player: the console says the
browser cannot play it and offers the file for download; where the browser can play it, it
plays. An H.264 clip opened next plays and clears the notice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from tests._api_fixtures import Seeded, live_server, make_app, seed_service
from tests.test_web_console import ARGS, ARTIFACTS, CHROMIUM, _playwright

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    yield s
    s.service.db.close()


def write_h265(path: Path, frames: int = 24) -> None:
    if "libx265" not in av.codecs_available:
        pytest.skip("this PyAV build has no libx265 encoder")
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        s = out.add_stream("libx265", rate=12)
        assert isinstance(s, av.VideoStream)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        s.codec_context.options = {"preset": "ultrafast", "x265-params": "log-level=error"}
        for i in range(frames):
            img = np.zeros((96, 160, 3), np.uint8)
            img[:, (i * 6) % 140 : (i * 6) % 140 + 20] = (0, 0, 255)
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


CAN_PLAY_H265 = (
    "document.createElement('video').canPlayType('video/mp4; codecs=\"hev1.1.6.L93.B0\"')"
)
OUTCOME = """() => {
  const v = document.querySelector('#clip');
  const note = document.querySelector('#clip-unplayable');
  if (!note.hidden) return 'notice';
  if (v.readyState >= 2 && v.videoWidth > 0) return 'plays';
  return null;
}"""


def test_h265_clip_plays_or_says_why_not(seeded: Seeded) -> None:
    sync_playwright = _playwright()
    ARTIFACTS.mkdir(exist_ok=True)
    h265, h264 = seeded.violations[0], seeded.violations[1]
    clip = seeded.files_root / "evidence" / h265.stream_id / h265.event_id / "clip.mp4"
    assert clip.is_file()  # written by seed_service (H.264)
    write_h265(clip)
    app = make_app(seeded)
    with live_server(app) as base, sync_playwright() as pw:  # type: ignore[operator]
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1366, "height": 768}, locale="zh-CN", bypass_csp=True
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/")
            page.fill("#token", seeded.tokens["reviewer"])
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#queue-table tbody tr[data-id]")

            page.click(f"#queue-table tr[data-id='{h265.event_id}']")
            page.wait_for_function(OUTCOME, timeout=15000)
            outcome = page.evaluate(f"({OUTCOME})()")
            decodes = page.evaluate(CAN_PLAY_H265)
            page.screenshot(path=str(ARTIFACTS / "console_h265_clip.png"))
            print(f"H.265 clip in this Chromium: {outcome} (canPlayType: {decodes!r})")
            if outcome == "notice":
                text = page.inner_text("#clip-unplayable")
                assert "无法播放" in text and "H.265" in text, text
                href = page.get_attribute("#clip-download", "href")
                assert href is not None and href == page.evaluate(
                    "document.querySelector('#clip').getAttribute('src')"
                )
                got = page.request.get(href if href.startswith("http") else f"{base}{href}")
                assert got.ok and got.body()[4:8] == b"ftyp"
                assert page.is_hidden("#player")  # no frame stepping on a clip that cannot play
            else:
                assert decodes != "", "the clip played though the browser says it cannot"
                assert page.is_hidden("#clip-unplayable")

            page.keyboard.press("Escape")  # back to the queue
            first_src = page.evaluate("document.querySelector('#clip').dataset.src")
            page.click(f"#queue-table tr[data-id='{h264.event_id}']")
            page.wait_for_function(
                f"document.querySelector('#clip').dataset.src !== {first_src!r}", timeout=15000
            )
            page.wait_for_function(OUTCOME, timeout=15000)
            assert page.evaluate(f"({OUTCOME})()") == "plays"
            assert page.is_hidden("#clip-unplayable") and page.is_visible("#player")
            assert not errors, errors
        finally:
            browser.close()
