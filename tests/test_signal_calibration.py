"""Self-calibrating signal reader, phase model, faults and calibration problems.

Accuracy per signal scenario (``tests/scenarios/signal_catalog.py``): the smoothed state of both
groups against the scenario's phase plan, over every frame except the first confirmation
interval after each ground-truth change and at the start (``EXCLUDE_S`` = 0.3 s: the
``confirm_frames`` = 2 readings of the new colour, plus the dark frame between them when the LED
flickers). Excluded frames are counted and bounded, not silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.config import load_camera_config
from sharpeyes.pipeline.rules import build_rules
from sharpeyes.pipeline.signal import (
    LampReading,
    SignalBoard,
    SignalParams,
    SignalSmoother,
    build_signal_board,
    picture_has_colour,
)
from sharpeyes.pipeline.types import Event, EventType, Frame, LampColor, SignalState
from tests.scenarios import SCENARIOS, scene_calibration
from tests.scenarios.feed import frame_at, tracks_at
from tests.scenarios.model import FRAME_SIZE, Scenario, color_at
from tests.scenarios.render import (
    render_signal_frame,
    signal_background,
    signal_noise_bank,
    signal_truth,
)
from tests.scenarios.signal_catalog import FAULT_SCENARIO, SIGNAL_SCENARIOS, SignalScenario

REPO = Path(__file__).resolve().parents[1]
EXCLUDE_S = 0.3
R, G, OFF = LampColor.RED, LampColor.GREEN, LampColor.OFF


def _run(s: SignalScenario, board: SignalBoard | None = None) -> list[dict[str, SignalState]]:
    board = board or build_signal_board(scene_calibration(), FRAME_SIZE)
    bg, bank = signal_background(), signal_noise_bank(s)
    out = []
    for i in range(s.n_frames):
        img = render_signal_frame(s, i, bg, bank)
        out.append(board.update(Frame(s.name, i, s.pts(i), 1_000_000 + i * 100, img)))
    return out


def _excluded(s: SignalScenario, i: int, group: str) -> bool:
    t = s.pts(i)
    phases = s.phases if group == "main" else s.ped_phases
    starts = [0.0] + [p.start_s for p in phases]
    return any(0.0 <= t - t0 < EXCLUDE_S - 1e-9 for t0 in starts)


def frame_accuracy(s: SignalScenario) -> tuple[int, int, int]:
    """(right, scored, excluded) frames over both groups."""
    right = scored = excluded = 0
    for i, states in enumerate(_run(s)):
        truth = dict(zip(("main", "ped"), signal_truth(s, i), strict=True))
        for g, want in truth.items():
            if _excluded(s, i, g):
                excluded += 1
                continue
            scored += 1
            right += states[g].color is want
    return right, scored, excluded


@pytest.mark.parametrize("name", list(SIGNAL_SCENARIOS))
def test_signal_scenario_frame_accuracy(name: str) -> None:
    s = SIGNAL_SCENARIOS[name]
    right, scored, excluded = frame_accuracy(s)
    changes = len(s.phases) + len(s.ped_phases)  # incl. the start of each group
    assert excluded <= changes * round(EXCLUDE_S * s.fps)
    assert scored + excluded == 2 * s.n_frames
    assert right / scored >= 0.99, f"{name}: {right}/{scored} frames right ({excluded} excluded)"


def test_brief_dark_frames_never_read_off_and_red_timer_is_continuous() -> None:
    s = SIGNAL_SCENARIOS["red_misreads"]
    states = _run(s)
    red = [st["main"] for i, st in enumerate(states) if 7.3 <= s.pts(i) < 19.0]
    assert all(st.color is R for st in red)
    assert {st.since_pts for st in red} == {7.0}  # one red phase, timer never restarted
    assert red[-1].duration == pytest.approx(11.9)


def test_phase_model_keeps_colour_and_timer_across_misreads() -> None:
    sm = SignalSmoother("g", confirm_frames=2, dark_hold_s=2.0)
    seq = [R] * 10 + [OFF] * 15 + [R] * 5 + [LampColor.UNKNOWN] * 3 + [G] + [R] * 5
    out = [
        sm.update(LampReading(c, 0.8 if c in (OFF, LampColor.UNKNOWN) else 1.0), i / 10)
        for i, c in enumerate(seq)
    ]
    assert all(st.color is R and st.since_pts == 0.0 and st.fault is None for st in out)


def test_sustained_dark_is_a_fault_and_colour_clears_it() -> None:
    sm = SignalSmoother("g", confirm_frames=2, dark_hold_s=2.0)
    out = [sm.update(LampReading(R, 1.0), i / 10) for i in range(30)]
    out += [sm.update(LampReading(OFF, 0.8), i / 10) for i in range(30, 60)]
    assert out[49].color is R and out[49].fault is None  # 1.9 s dark: still red
    assert out[50].color is OFF and out[50].since_pts == pytest.approx(3.0)
    assert out[50].fault is not None and "dark" in out[50].fault
    assert out[-1].unfaulted().color is LampColor.UNKNOWN
    back = [sm.update(LampReading(G, 1.0), i / 10) for i in range(60, 63)]
    assert back[-1].color is G and back[-1].fault is None


def test_rendered_fault_is_reported_by_the_board() -> None:
    s = FAULT_SCENARIO
    board = build_signal_board(scene_calibration(), FRAME_SIZE)
    states = _run(s, board)
    by_t = {round(s.pts(i), 1): st["main"] for i, st in enumerate(states)}
    assert by_t[13.8].color is R and by_t[13.8].since_pts == 7.0
    assert by_t[14.2].color is OFF and by_t[14.2].fault is not None
    assert by_t[14.2].since_pts == pytest.approx(12.0)
    assert "main" in board.problems()
    assert "ped" not in board.problems()


def _rule_events(s: Scenario, signals_at: Callable[[float], dict[str, SignalState]]) -> list[Event]:
    """Every event the rules raise on scenario ``s``'s tracks, fed ``signals_at(pts)``."""
    rules = build_rules(s.name, scene_calibration(), FRAME_SIZE)
    rng = s.rng()
    out: list[Event] = []
    for i in range(s.n_frames):
        signals = signals_at(s.pts(i))
        for r in rules:
            out.extend(r.update(frame_at(s, i), tracks_at(s, i, rng), signals))
    for r in rules:
        out.extend(r.end_of_stream())
    return out


def test_no_violation_is_charged_on_a_faulted_group() -> None:
    """The same red-light runner: charged on RED, not when the RED state carries a fault."""
    s = SCENARIOS["clean_violation"]

    def events(fault: str | None) -> list[EventType]:
        def signals(t: float) -> dict[str, SignalState]:
            color, since = color_at(s.phases, t)
            return {
                "main": SignalState("main", color, 1.0, since, t, fault=fault),
                "ped": SignalState("ped", R, 1.0, 0.0, t, fault=fault),
            }

        return [e.type for e in _rule_events(s, signals)]

    assert EventType.RED_LIGHT_VIOLATION in events(None)
    faulted = events("signal fault: head dark")
    assert EventType.RED_LIGHT_VIOLATION not in faulted
    assert EventType.PEDESTRIAN_RED_LIGHT not in faulted


def _board_on(
    region: list[list[float]],
    params: SignalParams,
    lamps: tuple[str, ...] = ("red", "amber", "green"),
) -> SignalBoard:
    cal = IntersectionCalibration.model_validate(
        {
            "signal_groups": [{"id": "main"}, {"id": "ped"}, {"id": "x"}],
            "signal_heads": [
                {"id": "main_head", "group": "main", "region": [[0.86, 0.06], [0.89, 0.26]]},
                {
                    "id": "ped_head",
                    "group": "ped",
                    "region": [[0.06, 0.08], [0.09, 0.20]],
                    "lamps": ["red", "green"],
                },
                {"id": "x_head", "group": "x", "region": region, "lamps": list(lamps)},
            ],
        }
    )
    return build_signal_board(cal, FRAME_SIZE, None, params)


def test_region_that_never_lights_is_a_calibration_problem() -> None:
    s = SignalScenario("short", duration_s=12.0)
    board = _board_on([[0.45, 0.8], [0.48, 0.95]], SignalParams(never_lit_s=10.0))  # road
    _run(s, board)
    problems = board.problems()
    assert set(problems) == {"x_head"}
    assert "no lamp lit" in problems["x_head"]


def test_head_that_never_changes_is_a_calibration_problem() -> None:
    s = SignalScenario("short", duration_s=6.5)
    board = _board_on([[0.06, 0.08], [0.09, 0.20]], SignalParams(stuck_s=6.0), ("red", "green"))
    _run(s, board)  # ped head (and its copy x_head) is red throughout 0–6.5 s
    problems = board.problems()
    assert "x_head" in problems and "ped_head" in problems
    assert "only red" in problems["x_head"]
    assert "main_head" not in problems  # green → amber at 4 s


def test_levels_are_learned_per_cell() -> None:
    s = SIGNAL_SCENARIOS["exposure_x0.4"]
    board = build_signal_board(scene_calibration(), FRAME_SIZE)
    _run(SignalScenario("x", s.look, duration_s=10.0), board)
    reader = board.heads[0].reader
    unlit, lit = reader.levels(2)  # the green cell: lit 0–4 s, unlit after
    assert unlit is not None and lit is not None and lit > 3 * unlit
    assert abs(reader.lit_hue(2) - 82) < 20 and np.isfinite(reader.lit_hue(0))


LOOKS: dict[str, tuple[float, tuple[float, float, float], float, int]] = {
    "x0.4": (0.4, (1.0, 1.0, 1.0), 0.0, 0),
    "x1.6": (1.6, (1.0, 1.0, 1.0), 0.0, 0),
    "warm": (1.0, (0.75, 1.0, 1.3), 0.0, 0),
    "cool": (1.0, (1.3, 1.0, 0.75), 0.0, 0),
    "blur_jpeg": (1.0, (1.0, 1.0, 1.0), 2.0, 8),
}


WINDOW = np.s_[150:264, 520:600]  # hanoi_b head (551,182)-(569,231) px with a margin


@pytest.mark.integration
def test_hanoi_b_under_camera_perturbations(sample_videos: Path) -> None:
    """The real clip re-exposed / re-balanced / degraded: still >= 99 % of frames right (the
    thresholds of the old reader gave 0 % at x0.4 and 69 % with the warm cast)."""
    cfg = load_camera_config(REPO / "sample_videos" / "intersection_hanoi_b.yaml")
    assert cfg.intersection is not None
    with av.open(str(sample_videos / "intersection_hanoi_b_640x480.mp4")) as c:
        frames = [
            (float(vf.time or 0.0), vf.to_ndarray(format="bgr24")) for vf in c.decode(video=0)
        ]
    for name, (exposure, wb, blur, quality) in LOOKS.items():
        board = build_signal_board(cfg.intersection, (640, 480))
        ok = total = 0
        for i, (pts, img) in enumerate(frames):
            win = img[WINDOW]  # only the head and its surroundings matter to the reader
            f: np.ndarray = win.astype(np.float32) * np.array(wb, np.float32) * exposure
            if blur:
                f = cv2.GaussianBlur(f, (0, 0), blur)
            patch = np.clip(f, 0, 255).astype(np.uint8)
            if quality:
                _, buf = cv2.imencode(".jpg", patch, [cv2.IMWRITE_JPEG_QUALITY, quality])
                patch = np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)
            out = np.asarray(img, np.uint8).copy()
            out[WINDOW] = patch
            st = board.update(Frame("hanoi_b", i, pts, int(pts * 1000), out))["main"]
            want = R if 3 <= i <= 254 else G if i >= 255 else None
            if want is not None:
                total += 1
                ok += st.color is want
        assert total == 381
        assert ok / total >= 0.99, f"{name}: {ok}/{total}"


def _labelled(name: str) -> tuple[dict[str, Any], IntersectionCalibration, dict[int, LampColor]]:
    """A phase labels file of ``sample_videos``, its camera's calibration and the labelled
    colour of group ``main`` per frame."""
    spec = json.loads((REPO / "sample_videos" / f"{name}.json").read_text())
    cfg = load_camera_config(REPO / "sample_videos" / spec["config"])
    assert cfg.intersection is not None
    truth = {
        i: LampColor(r["color"])
        for r in spec["groups"]["main"]
        for i in range(r["from"], r["to"] + 1)
    }
    return spec, cfg.intersection, truth


CASTS: dict[str, tuple[float, float, float]] = {  # BGR gains on the whole picture
    "neutral": (1.0, 1.0, 1.0),
    "warm R1.15 B0.8": (0.8, 1.0, 1.15),
    "warm R1.3 B0.7": (0.7, 1.0, 1.3),
    "cool R0.85 B1.2": (1.2, 1.0, 0.85),
    "greenish G1.15": (0.9, 1.15, 0.9),
}


@pytest.mark.integration
def test_the_far_head_under_a_colour_cast_on_the_whole_picture(sample_videos: Path) -> None:
    """hanoi_b's far-side head (lamps about 6 px, labelled by eye, never used for tuning) with
    the whole picture tinted as a camera with its white balance off films it: >= 98 % of the
    labelled frames right under each cast. Its lit cores clip white and its colour is a thin
    rim; the reader reads the crop balanced by the picture's grey pixels. Before that, measured
    on re-encoded copies: warm 71.1 %, strong warm 66.1 %, cool 93.5 %, greenish 97.1 %."""
    spec, calib, truth = _labelled("hanoi_b_far_head_phases")
    with av.open(str(sample_videos / spec["clip"])) as c:
        frames = [
            (float(vf.time or 0.0), vf.to_ndarray(format="bgr24")) for vf in c.decode(video=0)
        ]
    scores = {}
    for name, gains in CASTS.items():
        board = build_signal_board(calib, (640, 480))
        ok = 0
        for i, (pts, img) in enumerate(frames):
            tinted = np.clip(img.astype(np.float32) * np.array(gains, np.float32), 0, 255)
            frame = Frame("far", i, pts, int(pts * 1000), tinted.astype(np.uint8))
            ok += board.update(frame)["main"].color is truth[i]
        scores[name] = ok / len(truth)
    assert all(v >= 0.98 for v in scores.values()), scores


@pytest.mark.integration
@pytest.mark.parametrize("phases", ["intersection_hanoi_b_phases", "hanoi_b_far_head_phases"])
def test_a_night_picture_reads_the_green_lamp(sample_videos: Path, phases: str) -> None:
    """hanoi_b as a night stand-in — luma ×0.2 and temporal sensor noise (σ 8), chroma kept —
    on both heads: the red lamp's chroma is then about 3× the green's (204 against 70 over an
    unlit 17 on the near head), and the green lamp, clearly lit by eye, read dark for the whole
    green phase when a lamp not yet seen lit had to reach 35 % of the red one's level (66.15 %
    of frames, a signal fault). Now >= 98 %."""
    spec, calib, truth = _labelled(phases)
    board = build_signal_board(calib, (640, 480))
    rng = np.random.default_rng(7)
    ok = 0
    with av.open(str(sample_videos / spec["clip"])) as c:
        for i, vf in enumerate(c.decode(video=0)):
            ycc = cv2.cvtColor(vf.to_ndarray(format="bgr24"), cv2.COLOR_BGR2YCrCb).astype(
                np.float32
            )
            ycc[..., 0] = ycc[..., 0] * 0.2 + rng.normal(0.0, 8.0, ycc.shape[:2])
            night = np.asarray(
                cv2.cvtColor(np.clip(ycc, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2BGR), np.uint8
            )
            pts = float(vf.time or 0.0)
            ok += (
                board.update(Frame("night", i, pts, int(pts * 1000), night))["main"].color
                is truth[i]
            )
    assert ok / len(truth) >= 0.98, f"{ok}/{len(truth)}"


LABELLED = sorted((REPO / "sample_videos").glob("*_phases.json"))


@pytest.mark.integration
@pytest.mark.parametrize("labels", LABELLED, ids=[p.stem for p in LABELLED])
def test_labelled_real_clip_phases(labels: Path, sample_videos: Path) -> None:
    """Every real clip with a phase labels file: >= 98 % of labelled frames right per group."""
    spec = json.loads(labels.read_text())
    cfg = load_camera_config(REPO / "sample_videos" / spec["config"])
    assert cfg.intersection is not None
    truth: dict[str, dict[int, LampColor]] = {
        g: {i: LampColor(r["color"]) for r in rows for i in range(r["from"], r["to"] + 1)}
        for g, rows in spec["groups"].items()
    }
    ok = dict.fromkeys(truth, 0)
    board: SignalBoard | None = None
    with av.open(str(sample_videos / spec["clip"])) as c:
        for i, vf in enumerate(c.decode(video=0)):
            img = np.asarray(vf.to_ndarray(format="bgr24"), np.uint8)
            if board is None:
                board = build_signal_board(cfg.intersection, (img.shape[1], img.shape[0]))
            pts = float(vf.time or 0.0)
            states = board.update(Frame(labels.stem, i, pts, int(pts * 1000), img))
            for g, want in truth.items():
                ok[g] += i in want and states[g].color is want[i]
    assert i + 1 == spec["frames"]
    for g, want in truth.items():
        assert ok[g] / len(want) >= 0.98, f"{g}: {ok[g]}/{len(want)}"


@pytest.mark.integration
def test_a_monochrome_camera_is_named_as_the_problem(sample_videos: Path) -> None:
    """hanoi_b as a camera in monochrome (infrared night) mode would film it: its head cannot
    be read at all, and the board says the picture has no colour — not that the (correct)
    region is off the lamps. The colour clip, also darkened to a night-time ×0.25, has colour."""
    cfg = load_camera_config(REPO / "sample_videos" / "intersection_hanoi_b.yaml")
    assert cfg.intersection is not None
    grey_board = build_signal_board(cfg.intersection, (640, 480))
    board = build_signal_board(cfg.intersection, (640, 480))
    with av.open(str(sample_videos / "intersection_hanoi_b_640x480.mp4")) as c:
        for i, vf in enumerate(c.decode(video=0)):
            img = np.asarray(vf.to_ndarray(format="bgr24"), np.uint8)
            pts = float(vf.time or 0.0)
            grey = np.asarray(
                cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR), np.uint8
            )
            grey_board.update(Frame("hanoi_b", i, pts, int(pts * 1000), grey))
            board.update(Frame("hanoi_b", i, pts, int(pts * 1000), img))
            if i % 20 == 0:
                dark = np.asarray(img * 0.25, np.uint8)
                assert picture_has_colour(img) and picture_has_colour(dark)
                assert not picture_has_colour(grey)
    problems = grey_board.problems()
    assert set(problems) == {"picture"}, problems
    assert "no lamp could be read" in problems["picture"]
    assert board.problems() == {}


def test_a_board_rebuilt_for_another_picture_shape_keeps_the_phases() -> None:
    """A camera whose picture changes shape mid-stream gets its intersection rebuilt; the
    lamps did not change phase, so the red that began before keeps its onset and its age."""
    s = SignalScenario("rebuild", duration_s=11.0)
    bg, bank = signal_background(), signal_noise_bank(s)
    first = build_signal_board(scene_calibration(), FRAME_SIZE)
    for i in range(90):  # main turns red at 7.0 s
        first.update(Frame(s.name, i, s.pts(i), i * 100, render_signal_frame(s, i, bg, bank)))
    w, h = FRAME_SIZE
    wide = (w * 2, h)
    second = build_signal_board(scene_calibration(), wide)
    second.continue_from(first)
    img = np.asarray(cv2.resize(render_signal_frame(s, 95, bg, bank), wide), np.uint8)
    st = second.update(Frame(s.name, 95, s.pts(95), 9500, img))["main"]
    assert st.color is R and st.onset_seen and st.since_pts == pytest.approx(7.0)
    fresh = build_signal_board(scene_calibration(), wide)
    st = fresh.update(Frame(s.name, 95, s.pts(95), 9500, img))["main"]
    assert not st.onset_seen  # without the earlier board: a red first seen now


class _Always:
    """A lamp reader stub: every read gives the same reading."""

    def __init__(self, reading: LampReading) -> None:
        self.reading = reading

    def read(self, crop: object, *, grey: bool = False) -> LampReading:
        return self.reading

    colors = (LampColor.RED, LampColor.AMBER, LampColor.GREEN)

    def colour_problem(self) -> None:
        return None


def test_head_read_as_no_colour_for_long_is_a_calibration_problem() -> None:
    """Seen on hanoi_b with the head region 10 px off (half a lamp width): red was read, the
    whole green phase (21 s) was lit but no colour, and nothing told the installer. A stretch
    of lit-but-unreadable readings of ``unreadable_s`` is a problem now, kept after it ends; a
    gap in the frames (a reconnect) is not time seen unreadable, and a short stretch is fine."""
    # (this head is unreadable 76 % of the time: the "no colour" share check of PhaseCheck,
    # which would say so too, is turned off to look at the stretch check alone)
    params = SignalParams(unreadable_s=10.0, max_dark_share=1.0)
    board = _board_on([[0.45, 0.8], [0.48, 0.95]], params)
    head = next(h for h in board.heads if h.head.id == "x_head")
    image = np.zeros((FRAME_SIZE[1], FRAME_SIZE[0], 3), np.uint8)
    unknown, red = LampReading(LampColor.UNKNOWN, 0.3), LampReading(LampColor.RED, 0.9)

    def feed(reading: LampReading, start: float, stop: float, step: float = 0.2) -> None:
        head.reader = _Always(reading)  # type: ignore[assignment]
        for t in np.arange(start, stop, step):
            head.update(image, float(t))

    feed(red, 0.0, 5.0)
    feed(unknown, 5.0, 12.0)  # 7 s
    feed(red, 12.0, 13.0)
    assert head.problem() is None
    feed(unknown, 13.0, 20.0)
    feed(unknown, 25.0, 30.0, step=0.2)  # after a 5 s gap: 7 s and 5 s, not 17 s
    assert head.problem() is None
    feed(unknown, 30.0, 36.0)  # the run from 25 s reaches 11 s
    feed(red, 36.0, 40.0)
    problem = head.problem()
    assert problem is not None and "no colour for 11 s from 25.0 s" in problem


def test_a_crossing_while_the_head_reads_dark_waits_for_what_it_showed() -> None:
    """The head goes dark half a second before a runner crosses (seen at night: the green
    lamp too dim to read). The phase model holds the red for ``dark_hold_s`` and marks the
    state ``dark_since``; the rule does not decide on a held colour. If the dark run becomes a
    fault (back-dated to its start) the crossing is not charged — before, it was charged as a
    red that was in truth a green; if the red comes back, it was red all along: charged."""
    s = SCENARIOS["clean_violation"]

    def run(dark_from: float | None, fault_after: float | None) -> list[Event]:
        def signals(t: float) -> dict[str, SignalState]:
            color, since = color_at(s.phases, t)
            main = SignalState("main", color, 1.0, since, t)
            if dark_from is not None and t >= dark_from and color is R:
                if fault_after is not None and t >= dark_from + fault_after:
                    main = SignalState("main", OFF, 0.5, dark_from, t, fault="signal fault: dark")
                elif fault_after is not None or t < dark_from + 1.5:
                    main = SignalState("main", R, 1.0, since, t, dark_since=dark_from)
            return {"main": main, "ped": SignalState("ped", R, 1.0, 0.0, t)}

        events = _rule_events(s, signals)
        return [e for e in events if e.type is EventType.RED_LIGHT_VIOLATION]

    (clear,) = run(None, None)
    assert clear.violation is not None
    crossed = clear.violation.crossed_stop_line_pts
    assert run(crossed - 0.5, 2.0) == []  # dark → fault: what it showed is not known
    (back,) = run(crossed - 0.5, None)  # dark for 1.5 s, then the red again
    assert back.violation is not None
    assert back.violation.crossed_stop_line_pts == pytest.approx(crossed)
    assert back.violation.seconds_since_red == pytest.approx(clear.violation.seconds_since_red)


def test_a_pedestrian_entering_while_the_head_reads_dark_waits_too() -> None:
    """The pedestrian rule decides on the colour when the walker entered the crosswalk: not
    while the pedestrian head is only held through dark readings."""
    s = SCENARIOS["pedestrian_red"]

    def run(dark_from: float | None) -> list[Event]:
        def signals(t: float) -> dict[str, SignalState]:
            ped_color, ped_since = color_at(s.ped_phases, t)
            ped = SignalState("ped", ped_color, 1.0, ped_since, t)
            if dark_from is not None and t >= dark_from and ped_color is R:
                if t >= dark_from + 2.0:
                    ped = SignalState("ped", OFF, 0.5, dark_from, t, fault="signal fault: dark")
                else:
                    ped = SignalState("ped", R, 1.0, ped_since, t, dark_since=dark_from)
            color, since = color_at(s.phases, t)
            return {"main": SignalState("main", color, 1.0, since, t), "ped": ped}

        events = _rule_events(s, signals)
        return [e for e in events if e.type is EventType.PEDESTRIAN_RED_LIGHT]

    (clear,) = run(None)
    assert clear.violation is not None
    entered = clear.violation.crossed_stop_line_pts
    assert run(entered - 0.5) == []
