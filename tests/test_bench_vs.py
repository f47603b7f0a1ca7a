"""Pure parts of the vs-baselines benchmark: IoU matching, steady-state numbers, bookkeeping."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks._baseline_workers import rect_hw
from benchmarks.vs_baselines import (
    Case,
    agreement,
    format_table,
    iou,
    match_frame,
    median_summary,
    parse_loadavg,
    parse_model,
    ratios,
    round_order,
    steady,
)


def frame(*boxes: tuple[float, float, float, float, int]) -> dict[str, list[object]]:
    return {"xyxy": [list(b[:4]) for b in boxes], "cls": [b[4] for b in boxes]}


def test_iou_basic_cases() -> None:
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0  # empty union


def test_match_is_one_to_one_same_class_best_first() -> None:
    a = frame((0, 0, 10, 10, 2), (100, 100, 110, 110, 2))
    b = frame((0, 0, 10, 10, 2), (1, 0, 11, 10, 2), (100, 100, 110, 110, 7))
    ious = match_frame(a, b)
    assert ious == [1.0]  # the second b box may not reuse a[0]; the class-7 box never matches


def test_match_respects_threshold() -> None:
    a = frame((0, 0, 10, 10, 0))
    b = frame((6, 0, 16, 10, 0))  # IoU 0.25
    assert match_frame(a, b) == []
    assert match_frame(a, b, min_iou=0.2) == [pytest.approx(40 / 160)]


def test_agreement_counts_f1_and_tight_share() -> None:
    ours = [frame((0, 0, 10, 10, 2), (20, 20, 30, 30, 2)), frame()]
    other = [frame((0, 0, 10, 10, 2), (20, 20, 30, 31, 2), (50, 50, 60, 60, 0)), frame()]
    a = agreement(ours, other)
    assert (a["ours_boxes"], a["their_boxes"], a["matched"]) == (2, 3, 2)
    assert a["f1_iou50"] == pytest.approx(0.8)
    assert a["share_matched_iou99"] == 0.5  # 100/110 < 0.99
    assert agreement([], [])["f1_iou50"] == 1.0


def test_agreement_uses_the_common_frames_only() -> None:
    ours = [frame((0, 0, 10, 10, 1))] * 3
    assert agreement(ours, ours[:2])["frames"] == 2


def test_steady_leaves_out_warm_frames() -> None:
    stamps = [[5.0, 2.0], [5.5, 2.2], [6.0, 2.4], [6.5, 2.6], [7.0, 2.8]]
    s = steady(stamps, warm=1)
    assert s["fps"] == pytest.approx(4 / 2.0)
    assert s["cpu_ms_per_frame"] == pytest.approx(200.0)
    assert s["first_result_s"] == 5.0
    assert steady(stamps, warm=0)["fps"] == pytest.approx(5 / 7.0, abs=1e-3)
    with pytest.raises(ValueError, match="warm=5"):
        steady(stamps, warm=5)


def test_loadavg_and_round_order() -> None:
    assert parse_loadavg("1.50 0.75 0.25 2/300 12345\n") == [1.5, 0.75, 0.25]
    with pytest.raises(ValueError):
        parse_loadavg("garbage")
    tools = ["a", "b", "c"]
    orders = [round_order(tools, r) for r in range(3)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert {o[0] for o in orders} == set(tools)  # each tool runs first once


def run(fps: float, cpu: float, rss: float, load: float) -> dict[str, object]:
    return {
        "fps": fps,
        "cpu_ms_per_frame": cpu,
        "peak_rss_mib": rss,
        "first_result_s": 1.0,
        "loadavg_before": [load, 0.0, 0.0],
    }


def test_median_summary_and_ratios() -> None:
    ours = median_summary([run(10, 100, 200, 1), run(30, 80, 200, 3), run(20, 90, 210, 2)])
    assert (ours["fps"], ours["cpu_ms_per_frame"], ours["peak_rss_mib"]) == (20, 90, 200)
    assert ours["fps_range"] == [10, 30]
    assert ours["load1_median"] == 2
    theirs = median_summary([run(10, 180, 800, 2)])
    r = ratios({"sharpeyes": ours, "ultralytics": theirs})
    assert r == {"vs_ultralytics": {"fps_x": 2.0, "cpu_per_frame_x": 2.0, "peak_rss_share": 0.25}}


def test_parse_model_cases() -> None:
    assert parse_model("m=a.onnx") == [Case("m", Path("a.onnx"), "square", False)]
    cases = parse_model("x=b.onnx:rect,square:agree")
    assert [(c.mode, c.agree) for c in cases] == [("rect", True), ("square", True)]
    with pytest.raises(ValueError, match="LABEL=PATH"):
        parse_model("b.onnx")
    with pytest.raises(ValueError, match="unknown input mode"):
        parse_model("x=b.onnx:wide")


def test_rect_input_matches_the_letterbox_rule() -> None:
    assert rect_hw((720, 1280), 640) == (384, 640)
    assert rect_hw((1080, 1920), 640) == (384, 640)
    assert rect_hw((480, 640), 640) == (480, 640)
    assert rect_hw((360, 640), 320) == (192, 320)


def test_format_table_marks_ours_and_agreement() -> None:
    s = {"fps": 5, "cpu_ms_per_frame": 100, "peak_rss_mib": 200, "input_hw": [640, 640]}
    theirs = {"fps": 4, "cpu_ms_per_frame": 150, "peak_rss_mib": 800, "input_hw": [640, 640]}
    summary = {"sharpeyes": s, "ultralytics": theirs}
    result = {
        "clip": "/x/highway.mp4",
        "frames": 50,
        "warm_frames_excluded": 5,
        "rounds": 3,
        "providers": ["CPUExecutionProvider"],
        "machine": {"cores": 2, "cpu": "Xeon", "gpus": [], "load_avg": [1.0, 2.0, 3.0]},
        "tools_skipped": {"supervision": "no interpreter with supervision and trackers"},
        "cases": [
            {
                "model": "m",
                "mode": "square",
                "tools": summary,
                "ratios": ratios(summary),
                "agreement_with_sharpeyes": {"ultralytics": {"f1_iou50": 0.99}},
            }
        ],
    }
    text = format_table(result)
    lines = text.splitlines()
    # what was measured, on what, and what was left out, above the numbers
    assert "highway.mp4 · 50 frames (5 warm-up left out) · 3 rounds" in lines[0]
    assert "2 cores (Xeon) · no GPU · load 1/2/3" in lines[1]
    assert "skipped supervision: no interpreter" in text
    ours = next(x for x in lines if "| sharpeyes |" in x)
    theirs_row = next(x for x in lines if "| ultralytics |" in x)
    assert ours.startswith("| m | 640×640 (square) | sharpeyes | 5 | 100 | 200 | — |")
    # the ratios side by side with the medians they come from
    assert theirs_row.endswith("| 0.99 | 1.25 | 1.5 | 0.25 |")
