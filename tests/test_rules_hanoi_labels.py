"""The hand-labelled hanoi_b list is consistent, and the benchmark matcher scores it right."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from benchmarks.redlight_eval import match_labels

REPO = Path(__file__).resolve().parents[1]
LABELS = json.loads((REPO / "sample_videos" / "hanoi_b_labels.json").read_text(encoding="utf-8"))


def test_labels_are_consistent() -> None:
    v = LABELS["violations"]
    assert LABELS["count"] == len(v) == LABELS["vehicle_count"] + LABELS["pedestrian_count"]
    assert len({x["id"] for x in v}) == len(v)
    red_lo, red_hi = LABELS["signal_phases"]["red"]
    for x in v:
        lo, hi = x["cross_frames"]
        assert red_lo <= lo <= hi <= red_hi, x["id"]
        assert x["frames"][0] <= lo and hi <= x["frames"][1] + 6, x["id"]
        assert 0 <= x["x_px"] < 640 and x["lane_id"] in {"s0", "s1", "s2"}


def _record(frame: float, x: float) -> dict[str, object]:
    return {
        "type": "red_light_violation",
        "violation": {"crossed_stop_line_pts": frame * LABELS["frame_duration_s"]},
        "best_box": {"x1": x - 10, "x2": x + 10},
    }


def test_matcher_perfect_and_one_off() -> None:
    perfect = [_record(sum(x["cross_frames"]) / 2, x["x_px"]) for x in LABELS["violations"]]
    m = match_labels(perfect, LABELS)
    assert (m.precision, m.recall) == (1.0, 1.0)
    m = match_labels([*perfect[1:], _record(300, 320), {"type": "vehicle_pass"}], LABELS)
    assert len(m.misses) == 1 and len(m.false_alarms) == 1
    assert m.recall == (len(perfect) - 1) / len(perfect)


def test_suite_charges_are_not_red_light_runners() -> None:
    """A wrong-way charge (a red_light_violation event of another violation type) is neither a
    match nor a red-light false alarm."""
    perfect = [_record(sum(x["cross_frames"]) / 2, x["x_px"]) for x in LABELS["violations"]]
    wrong_way = {**_record(300, 320), "extra": {"violation_type": "wrong_way"}}
    m = match_labels([*perfect, wrong_way], LABELS)
    assert (m.precision, m.recall) == (1.0, 1.0) and not m.false_alarms


def test_crossing_readings_agree_and_give_the_labels() -> None:
    """The fractional crossing of every runner is the mean of two independent readings that
    agree within half a frame, lies in its ``cross_frames`` span, and is what the per-frame
    readings (``hanoi_b_crossing_readings.json``) interpolate to."""
    readings = json.loads(
        (REPO / "sample_videos" / "hanoi_b_crossing_readings.json").read_text(encoding="utf-8")
    )["readers"]
    for x in LABELS["violations"]:
        a, b = x["cross_frame_readers"]
        assert abs(a - b) <= 0.5, x["id"]
        assert x["cross_frame"] == round((a + b) / 2, 2)
        lo, hi = x["cross_frames"]
        assert lo <= x["cross_frame"] <= hi, x["id"]
        for name, got in zip(("A", "B"), (a, b), strict=True):
            (r,) = [r for r in readings[name] if r["id"] == x["id"]]
            frames = sorted((int(f), v) for f, v in r["frames"].items())
            past = [
                (f0, v0, f1, v1)
                for (f0, v0), (f1, v1) in itertools.pairwise(frames)
                if v0["contact_y"] > v0["line_y"] and v1["contact_y"] <= v1["line_y"]
            ]
            assert past, (name, x["id"])
            f0, v0, f1, v1 = past[-1]
            d0, d1 = v0["contact_y"] - v0["line_y"], v1["contact_y"] - v1["line_y"]
            assert f0 + (f1 - f0) * d0 / (d0 - d1) == pytest.approx(got, abs=0.02), (name, x["id"])


def test_crossing_crops_draw_the_calibrated_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The labelling sheet: one tile per frame with the ruler, and the stop line's y as the
    camera config puts it (hanoi_b's line at x 428 and 508 of 640×480)."""
    from scripts.crossing_crops import main

    video = tmp_path / "v.mp4"
    with av.open(str(video), "w") as out:
        s = out.add_stream("mpeg4", rate=6)
        assert isinstance(s, av.VideoStream)
        s.width, s.height, s.pix_fmt = 640, 480, "yuv420p"
        for i in range(5):
            f = av.VideoFrame.from_ndarray(np.full((480, 640, 3), 40 * i, np.uint8), "bgr24")
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    png = tmp_path / "sheet.png"
    assert main(["468", "395", "1", "3", str(png), "--video", str(video)]) == 0
    assert "left 392.3, right 394.4" in capsys.readouterr().out
    sheet = cv2.imread(str(png))
    assert sheet is not None and sheet.shape == (60 * 5, 4 * (44 + 80 * 5), 3)  # 3 tiles + 1 pad


def test_matcher_scales_records_of_a_resized_copy() -> None:
    """A run on the clip at 320×240 reports boxes in its own pixels (``frame_w``): the matcher
    compares them in the labels' 640-wide pixels."""

    def half(scaled: bool) -> list[dict[str, object]]:
        out = []
        for x in LABELS["violations"]:
            r = _record(sum(x["cross_frames"]) / 2, x["x_px"] / 2)
            box = {"x1": x["x_px"] / 2 - 5, "x2": x["x_px"] / 2 + 5}
            r["best_box"] = box | ({"frame_w": 320} if scaled else {})
            out.append(r)
        return out

    assert match_labels(half(True), LABELS).recall == 1.0
    assert match_labels(half(False), LABELS).recall < 1.0
