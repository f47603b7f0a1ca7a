"""A camera that sways in the wind (pipeline/signal_track.py, pipeline/runner.py): its pictures are
moved back to where the stop lines and signal heads were calibrated, so the signal heads read the
same lamps and the same runners are charged; a still camera's pictures are left as they are."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from sharpeyes.pipeline.signal_track import REFERENCE_AFTER, CameraSway
from sharpeyes.pipeline.types import ImageBGR
from tests._hanoi_runs import HANOI, analyse, copy_span
from tests.conftest import need


def textured(seed: int = 3, size: tuple[int, int] = (480, 640)) -> ImageBGR:
    """A street-like picture: blocks of grey levels and edges, larger than what is shown."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 220, (size[0] // 16 + 4, size[1] // 16 + 4), np.uint8)
    big = cv2.resize(small, None, fx=16, fy=16, interpolation=cv2.INTER_NEAREST)
    big = cv2.GaussianBlur(big, (5, 5), 0)
    return np.asarray(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR), np.uint8)


def view(scene: ImageBGR, dx: int, dy: int, noise: np.random.Generator | None = None) -> ImageBGR:
    """The 640 × 480 picture of a camera moved by (dx, dy): the scene shifts by (−dx, −dy)."""
    out = scene[32 + dy : 32 + dy + 480, 32 + dx : 32 + dx + 640].copy()
    if noise is not None:
        out = np.clip(out.astype(np.int16) + noise.integers(-3, 4, out.shape), 0, 255)
    return np.asarray(out, np.uint8)


def test_the_sway_is_measured_from_where_the_camera_sways_about() -> None:
    """The camera swings ±10 px across and ±6 px up and down, starting away from its rest
    position; after a swing the offset given is the shift from where it sways about (the mean),
    within two pixels (shifts under 1.5 px are taken as none)."""
    scene = textured()
    sway = CameraSway()
    moves = [
        (
            round(10 * math.sin(2 * math.pi * i / 17 + 0.6)),
            round(6 * math.sin(2 * math.pi * i / 23 + 1)),
        )
        for i in range(80)
    ]
    seen: list[tuple[int, int]] = []
    for i, (dx, dy) in enumerate(moves):
        seen.append(sway.update(view(scene, dx, dy)))
        if i < 30:
            continue
        mx = sum(m[0] for m in moves[: i + 1]) / (i + 1)
        my = sum(m[1] for m in moves[: i + 1]) / (i + 1)
        # the picture moves opposite to the camera
        assert abs(seen[-1][0] + (dx - mx)) <= 2.0 and abs(seen[-1][1] + (dy - my)) <= 2.0, (
            i,
            seen[-1],
            (mx - dx, my - dy),
        )
    assert max(abs(s[0]) for s in seen) >= 8  # it did follow the swing


def test_a_still_camera_is_not_moved() -> None:
    scene = textured(5)
    noise = np.random.default_rng(0)
    sway = CameraSway()
    assert {sway.update(view(scene, 0, 0, noise)) for _ in range(40)} == {(0, 0)}


def test_a_picture_with_nothing_to_match_keeps_the_last_shift_then_becomes_the_reference() -> None:
    scene = textured(7)
    sway = CameraSway()
    for dx in (0, 0, 0, 0, 8, 8, 8, 8):
        sway.update(view(scene, dx, 0))
    held = sway.offset
    assert abs(held[0]) >= 4
    blank = np.full((480, 640, 3), 128, np.uint8)  # the lens covered: no peak
    for _ in range(REFERENCE_AFTER - 1):
        assert sway.update(blank) == held
    sway.update(blank)  # the scene changed for good: measured from here on, carrying on
    other = textured(11)  # from where the camera last was
    for _ in range(3):
        assert abs(sway.update(view(other, 0, 0))[0] - held[0]) <= 1


@pytest.mark.integration
def test_a_swaying_camera_charges_the_runners_of_the_still_one(tmp_path: Path) -> None:
    """Frames 90–230 of hanoi_b (runners hb01–hb07) as recorded and as a camera swaying ±12 px
    across and ±9 px up and down would record them (``ffmpeg crop`` with a sinusoidal offset).
    Before the pictures were moved back, the whole clip so swayed read 62 red frames amber and
    charged 12 of 15 runners and one car that was not running. Now: the same runners, each
    within one analysed frame and 25 px, and the records say how far each image was moved."""
    need(HANOI.is_file(), f"sample video {HANOI} not found")
    need(shutil.which("ffmpeg") is not None, "ffmpeg not found")
    sway = "pad=iw+40:ih+40:20:20,crop=640:480:x='20+12*sin(2*PI*t/1.7)':y='20+9*sin(2*PI*t/2.3+1)'"
    runs = {}
    for name, vf in (("still", "null"), ("sway", sway)):
        video = tmp_path / f"{name}.mp4"
        copy_span(HANOI, video, vf)
        runs[name] = analyse(video, tmp_path / name)
    (still, _), (swayed, _) = runs["still"], runs["sway"]
    assert len(still) >= 6 and len(swayed) == len(still), (still, swayed)
    for (t0, x0), (t1, x1) in zip(still, swayed, strict=True):
        assert abs(t1 - t0) <= 1 / 6 + 1e-3 and abs(x1 - x0) <= 25, (still, swayed)
    moved = [
        img["steadied_px"]
        for rec in (tmp_path / "sway").rglob("record.json")
        for img in json.loads(rec.read_text("utf-8"))["images"]
    ]
    assert moved and any(abs(dx) >= 4 for dx, _ in moved), moved
    kept = [
        img["steadied_px"]
        for rec in (tmp_path / "still").rglob("record.json")
        for img in json.loads(rec.read_text("utf-8"))["images"]
    ]
    assert kept and all(m == [0, 0] for m in kept), kept


def test_a_large_vehicle_passing_moves_nothing_when_it_is_left_out() -> None:
    """A bus covering a third of a still camera's picture drives across: measured with it, the
    picture seems to move with the bus; with its box left out (what the runner passes: the last
    analysed picture's tracks) nothing moves."""
    scene = textured(13)
    scene = np.asarray((scene.astype(np.float32) - 128) * 0.25 + 128, np.uint8)  # a dull street
    bus = textured(17, (200, 300))  # a bus with bold livery
    plain, careful = CameraSway(), CameraSway()
    seen_plain, seen_careful = set(), set()
    for i in range(12):
        img = view(scene, 0, 0)
        x = 40 + 20 * i
        img[200:400, x : x + 300] = bus[:200, :300]
        box = (x, 200, x + 300, 400)
        seen_plain.add(plain.update(img))
        seen_careful.add(careful.update(img, [box]))
    assert seen_plain != {(0, 0)}  # the bus dragged the measurement along
    assert seen_careful == {(0, 0)}


def test_a_pan_is_not_taken_for_a_sway() -> None:
    scene = textured(19, (480 + 200, 640 + 200))
    sway = CameraSway()
    sway.update(scene[100:580, 100:740])
    for dx in (2, 4, 6):
        sway.update(scene[100:580, 100 + dx : 740 + dx])
    swayed = sway.offset
    assert swayed != (0, 0)
    assert sway.update(scene[100:580, 160:800]) == swayed  # 60 px at 640 wide: a pan
