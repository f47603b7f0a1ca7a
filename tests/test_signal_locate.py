"""Signal head finder (pipeline/signal_locate.py) and ``signal-check --find-heads`` / region
suggestions: on the rendered signal scenarios (which know where their heads are), on synthetic
traps (a moving tail light, a stopped car's brake lights that leave, a red sign that never
changes, a clip entirely in red), and on the real hanoi_b clip."""

from __future__ import annotations

import argparse
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
import yaml

from sharpeyes.api.commands.signal_check import add_parser, run
from sharpeyes.pipeline.signal_locate import (
    SEARCH_SCALE,
    HeadFinder,
    HeadProposal,
    expand_box,
    suggest_region,
)
from sharpeyes.pipeline.types import LampColor
from tests.scenarios.model import FRAME_SIZE, Phase
from tests.scenarios.render import render_signal_frame, signal_background, signal_noise_bank
from tests.scenarios.scene import MAIN_HEAD, PED_HEAD
from tests.scenarios.signal_catalog import SIGNAL_SCENARIOS, SignalScenario

REPO = Path(__file__).resolve().parents[1]
Box = tuple[int, int, int, int]
W, H = FRAME_SIZE
HANOI_HEAD: Box = (551, 182, 569, 231)
HANOI_SIGN: Box = (586, 212, 620, 252)  # the red no-turn sign (never changes)


def _px(region: tuple[tuple[float, float], tuple[float, float]]) -> Box:
    (a, b), (c, d) = region
    return round(a * W), round(b * H), round(c * W), round(d * H)


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _find(s: SignalScenario, roi: Box | None = None) -> list[HeadProposal]:
    bg, bank = signal_background(), signal_noise_bank(s)
    finder = HeadFinder(FRAME_SIZE, roi)
    for i in range(s.n_frames):
        if finder.due(s.pts(i)):  # render only the frames it samples
            finder.offer(render_signal_frame(s, i, bg, bank), s.pts(i))
    return finder.proposals()


def _at(props: list[HeadProposal], truth: Box, kind: str = "head") -> HeadProposal:
    best = max(props, key=lambda p: _iou(p.box, truth))
    assert best.kind == kind and _iou(best.box, truth) >= 0.6, (best, truth)
    return best


# -- rendered scenarios ---------------------------------------------------------------------


@pytest.mark.parametrize("look", ["nominal", "exposure_x0.4", "wb_cool", "flicker_pwm", "dim_led"])
def test_finds_both_rendered_heads_and_notes_the_countdown(look: str) -> None:
    s = SIGNAL_SCENARIOS[look]
    props = _find(SignalScenario(look, s.look, duration_s=14.0))
    main = _at(props, _px(MAIN_HEAD))
    assert main.layout == "vertical" and main.lamps == ("red", "amber", "green")
    assert {"red", "green"} <= set(main.seen_s) and main.score >= 0.8
    # the LED at 35 %: its lamps are under LIT_CHROMA of the scene's white level, found as a
    # whole head of dim lamps (and said so)
    assert ("dim lamps" in main.note) == (look == "dim_led"), main.note
    ped = _at(props, _px(PED_HEAD))
    assert ped.lamps == ("red", "green") and ped.layout == "vertical"
    others = [p for p in props if p not in (main, ped)]
    # the countdown left of the main head: a display, not a head (lost to blur / JPEG at times)
    assert all(p.kind == "countdown" for p in others), others
    yaml_entry = yaml.safe_load(main.yaml_entry("main_head", "main"))
    assert yaml_entry[0]["region"] == [list(p) for p in main.region]


def test_a_clip_entirely_in_red_is_proposed_with_low_confidence() -> None:
    red = (Phase(0.0, LampColor.RED),)
    props = _find(SignalScenario("red", duration_s=12.0, phases=red, ped_phases=red))
    main = _at(props, _px(MAIN_HEAD), kind="one-colour")
    assert main.score < 0.5 and main.unseen == ("amber", "green")
    assert main.lamps == ("red", "amber", "green") and "only red seen" in main.note
    assert not any(p.kind == "head" for p in props)


def _dark_scene(n: int, draw: Any) -> list[HeadProposal]:
    finder = HeadFinder((320, 240))
    rng = np.random.default_rng(1)
    for i in range(n):
        img = np.full((240, 320, 3), 70, np.uint8)
        cv2.rectangle(img, (0, 0), (320, 60), (200, 200, 200), -1)  # a bright sky: white level
        draw(img, i)
        noisy = img.astype(np.int16) + rng.integers(-3, 4, img.shape)
        finder.offer(np.clip(noisy, 0, 255).astype(np.uint8), i / 10)
    return finder.proposals()


def test_moving_tail_lights_and_a_car_that_stops_and_leaves_are_not_heads() -> None:
    def draw(img: np.ndarray, i: int) -> None:
        x = 10 + 3 * i % 300  # a car driving across, tail lights on
        cv2.rectangle(img, (x, 150), (x + 30, 170), (90, 90, 160), -1)
        cv2.circle(img, (x + 4, 160), 3, (30, 30, 250), -1)
        # a car that waits 8 s with its brake lights on, then drives off
        cx = 200 if i < 80 else 200 + 6 * (i - 80)
        cv2.rectangle(img, (cx, 190), (cx + 40, 225), (150, 140, 130), -1)
        cv2.circle(img, (cx + 5, 200), 3, (30, 30, 250), -1)
        cv2.circle(img, (cx + 35, 200), 3, (30, 30, 250), -1)

    assert _dark_scene(200, draw) == []


def test_a_red_sign_that_never_changes_is_not_a_head() -> None:
    def draw(img: np.ndarray, i: int) -> None:
        cv2.rectangle(img, (100, 80), (112, 122), (20, 20, 20), -1)  # a head: red, then green
        red = i < 120
        cv2.circle(img, (106, 87), 5, (30, 30, 250) if red else (40, 40, 40), -1)
        cv2.circle(img, (106, 115), 5, (40, 40, 40) if red else (150, 230, 40), -1)
        cv2.circle(img, (220, 100), 7, (30, 30, 240), -1)  # a red sign (lit all along)

    props = _dark_scene(200, draw)
    assert [p.kind for p in props] == ["head"]
    assert _iou(props[0].box, (99, 79, 113, 123)) >= 0.6


def test_a_dim_head_is_found_but_a_dim_lamp_alone_or_a_dim_sign_is_not() -> None:
    """Lamps at about a third of the sky's brightness (chroma 80–90 against a white level of
    200: under LIT_CHROMA, over DIM_SHARE of it) count only as a whole head: two colours in
    order and spacing, each seen going dark. A dim red lamp alone that goes dark, and a dim red
    sign lit all along, are not proposed."""

    def draw(img: np.ndarray, i: int) -> None:
        cv2.rectangle(img, (100, 80), (112, 122), (20, 20, 20), -1)  # a head: red, then green
        red = i < 120
        cv2.circle(img, (106, 87), 5, (30, 30, 110) if red else (40, 40, 40), -1)
        cv2.circle(img, (106, 115), 5, (40, 40, 40) if red else (60, 110, 20), -1)
        cv2.rectangle(img, (214, 90), (226, 110), (20, 20, 20), -1)  # a lone lamp, then dark
        cv2.circle(img, (220, 100), 5, (30, 30, 110) if i < 80 else (40, 40, 40), -1)
        cv2.circle(img, (280, 100), 6, (30, 30, 115), -1)  # a dim red sign (lit all along)

    props = _dark_scene(200, draw)
    assert [p.kind for p in props] == ["head"], props
    assert _iou(props[0].box, (99, 79, 113, 123)) >= 0.6
    assert props[0].lamps in (("red", "green"), ("red", "amber", "green"))
    assert "dim lamps" in props[0].note


# -- region suggestion ----------------------------------------------------------------------


@pytest.mark.parametrize("grow", [(2.5, 0.0), (1.0, -0.45)])
def test_a_bad_region_gets_the_real_head_suggested(grow: tuple[float, float]) -> None:
    factor, up = grow  # grown about its centre / extended upwards by that share of the frame
    x0, y0, x1, y1 = _px(MAIN_HEAD)
    bad = expand_box((x0, y0, x1, y1), factor, FRAME_SIZE)
    bad = (bad[0], max(0, bad[1] + round(up * (y1 - y0))), bad[2], bad[3])
    roi = expand_box(bad, SEARCH_SCALE, FRAME_SIZE)
    s = SignalScenario("suggest", duration_s=14.0)
    best = suggest_region(_find(s, roi), bad)
    assert best is not None and best.kind == "head"
    assert _iou(best.box, _px(MAIN_HEAD)) >= 0.6 and best.lamps == ("red", "amber", "green")


# -- the command ----------------------------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    return p.parse_args(["signal-check", *argv])


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    s = SignalScenario("find", duration_s=12.0)
    bg, bank = signal_background(), signal_noise_bank(s)
    path = tmp_path_factory.mktemp("signal_locate") / "heads.mp4"
    with av.open(str(path), "w") as out:
        stream: Any = out.add_stream("libx264", rate=Fraction(10))
        stream.width, stream.height = FRAME_SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "ultrafast"}
        for i in range(s.n_frames):
            vf = av.VideoFrame.from_ndarray(render_signal_frame(s, i, bg, bank), format="bgr24")
            for pkt in stream.encode(vf):
                out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)
    return path


def test_find_heads_prints_yaml_to_paste_and_draws_them(
    video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "heads.png"
    assert run(_args(str(video), "--find-heads", "--png", str(png))) == 0
    out = capsys.readouterr().out
    heads = yaml.safe_load(out)["signal_heads"]  # the printed block is valid YAML
    assert [h["lamps"] for h in heads] == [["red", "amber", "green"], ["red", "green"]]
    boxes = [_px(tuple(map(tuple, h["region"]))) for h in heads]  # type: ignore[arg-type]
    assert _iou(boxes[0], _px(MAIN_HEAD)) >= 0.6 and _iou(boxes[1], _px(PED_HEAD)) >= 0.6
    assert ") px" in out and "# not a head:" in out  # px in comments; the countdown noted
    img = cv2.imread(str(png))
    assert img is not None and img.shape[:2] == (H, W)
    assert run(_args(str(video), "--find-heads", "--json")) == 0
    row = json.loads(capsys.readouterr().out)["find_heads"]
    assert [p["kind"] for p in row["proposals"]][:2] == ["head", "head"]
    # no config and no --find-heads: usage error
    assert run(_args(str(video))) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_signal_check_suggests_a_region_for_a_head_off_its_lamps(
    video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = {
        "id": "synthetic",
        "intersection": {
            "signal_groups": [{"id": "main"}, {"id": "bogus"}],
            "signal_heads": [
                # typed one head-height too low: below the lamps, nothing lights there
                {"id": "main_head", "group": "main", "region": [[0.86, 0.27], [0.89, 0.40]]},
                # on the road, far from any head: nothing to suggest, --find-heads is named
                {"id": "road", "group": "bogus", "region": [[0.45, 0.8], [0.48, 0.95]]},
            ],
        },
    }
    path = tmp_path / "cam.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert run(_args(str(video), "--config", str(path), "--json", "--strict")) == 3
    captured = capsys.readouterr()
    summary = json.loads(captured.out.splitlines()[-1])["summary"]
    assert "no lamp lit" in summary["problems"]["main_head"]
    sug = summary["suggestions"]["main_head"]
    assert sug["region_line"].startswith("region: [[") and sug["layout"] == "vertical"
    assert _iou(tuple(sug["box_px"]), _px(MAIN_HEAD)) >= 0.6
    assert "suggested: region: [[" in captured.err
    assert summary["suggestions"]["road"] is None
    assert (
        "warning: road: no lamp was seen lighting" in captured.err
        and "--find-heads" in captured.err
    )


# -- the real clip ------------------------------------------------------------------------------


@pytest.mark.integration
def test_hanoi_b_main_head_is_found_and_the_no_turn_sign_is_not(
    sample_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = sample_videos / "intersection_hanoi_b_640x480.mp4"
    assert run(_args(str(clip), "--find-heads", "--json")) == 0
    props = json.loads(capsys.readouterr().out)["find_heads"]["proposals"]
    heads = [p for p in props if p["kind"] == "head"]
    assert heads and _iou(tuple(heads[0]["box_px"]), HANOI_HEAD) >= 0.9
    assert not any("dim lamps" in p["note"] for p in props)  # nothing more from dim lamps
    assert heads[0]["lamps"] == ["red", "amber", "green"] and heads[0]["layout"] == "vertical"
    assert not any(_iou(tuple(p["box_px"]), HANOI_SIGN) > 0 for p in props)
    # the countdown above the head is a display, not a head
    assert any(p["kind"] == "countdown" and p["box_px"][3] <= HANOI_HEAD[1] for p in props)
    # the installer's region extended up over the countdown: the suggestion is the head
    cfg = yaml.safe_load((REPO / "sample_videos" / "intersection_hanoi_b.yaml").read_text())
    cfg["intersection"]["signal_heads"][0]["region"] = [[0.8609, 0.34], [0.8891, 0.4813]]
    path = tmp_path / "hanoi_b_countdown.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert run(_args(str(clip), "--config", str(path), "--json")) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]
    assert "amber" in summary["shares"]["main"] and "main_head" in summary["problems"]
    sug = summary["suggestions"]["main_head"]
    assert _iou(tuple(sug["box_px"]), HANOI_HEAD) >= 0.8


@pytest.mark.integration
def test_hanoi_b_far_head_is_proposed_as_a_head_its_green_dim(
    sample_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The far-side head (lamps about 6 px): its red lamp is lit, its green's colour only a thin
    rim (the dim tier). It was proposed as a one-colour red lamp with an assumed layout; now as
    a head, and the region proposed reads its labelled phases (hanoi_b_far_head_phases.json)."""
    clip = sample_videos / "intersection_hanoi_b_640x480.mp4"
    assert run(_args(str(clip), "--find-heads", "--json")) == 0
    props = json.loads(capsys.readouterr().out)["find_heads"]["proposals"]
    far = [
        p
        for p in props
        if p["kind"] == "head"
        and p["box_px"][0] <= 503 < p["box_px"][2]
        and p["box_px"][1] <= 116
        and p["box_px"][3] > 129
    ]
    assert len(far) == 1, props
    head = far[0]
    assert head["lamps"] == ["red", "amber", "green"] and head["layout"] == "vertical"
    assert "green lamp dim" in head["note"] and head["score"] < 0.9
    cfg = yaml.safe_load((REPO / "sample_videos" / "hanoi_b_far_head.yaml").read_text())
    cfg["intersection"]["signal_heads"][0]["region"] = head["region"]
    cfg["url"] = str(clip)
    path = tmp_path / "far_proposed.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert run(_args(str(clip), "--config", str(path), "--json")) == 0
    lines = capsys.readouterr().out.splitlines()
    frames = [json.loads(line) for line in lines[:-1]]
    spec = json.loads((REPO / "sample_videos" / "hanoi_b_far_head_phases.json").read_text())
    truth = {i: r["color"] for r in spec["groups"]["main"] for i in range(r["from"], r["to"] + 1)}
    ok = sum(f["groups"]["main"] == truth[f["frame"]] for f in frames)
    assert len(frames) == 384 and ok / 384 >= 0.98, ok


@pytest.mark.integration
@pytest.mark.parametrize(
    "clip",
    [
        "highway_1280x720.mp4",
        "highway_640x360.mp4",
        "urban_buses_596x336.mp4",
        "pedestrians_crossing_1280x720.mp4",
        "plates_closeup_beijing_640x360.mp4",
        "intersection_topview_640x480.mp4",
    ],
)
def test_clips_without_a_face_on_head_get_no_proposal(
    sample_videos: Path, capsys: pytest.CaptureFixture[str], clip: str
) -> None:
    """docs/SIGNAL.md: no signal head faces these cameras; nothing is proposed (the dim-lamp
    heads included)."""
    assert run(_args(str(sample_videos / clip), "--find-heads", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["find_heads"]["proposals"] == []
