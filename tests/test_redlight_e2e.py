"""End-to-end red-light acceptance on the real hanoi_b clip, through the real CLI.

``sharpeyes analyze`` runs once (module fixture, ~25 s on 2 cores) into a temporary folder; the
tests then check the violation records (three full-resolution colour images, plate close-up,
composite, a clip that starts on a keyframe and covers the three image times, a signed
``record.json``), that ``sharpeyes evidence verify`` passes on a record and fails after one
flipped byte, precision/recall against the hand labels, and the signal state per frame.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from benchmarks.redlight_eval import frame_times, hanoi_report, match_labels, since_red_check
from sharpeyes.api.commands import cli
from sharpeyes.pipeline.config import load_camera_config
from sharpeyes.pipeline.signal import build_signal_board
from sharpeyes.pipeline.types import LampColor
from sharpeyes.streams.file_source import FileSource
from tests._hevc import reencode_h265
from tests.conftest import REPO, need, shared_dir

pytestmark = pytest.mark.integration

VIDEO = shared_dir() / "sample_videos" / "intersection_hanoi_b_640x480.mp4"
CONFIG = REPO / "sample_videos" / "intersection_hanoi_b.yaml"
LABELS = json.loads((REPO / "sample_videos" / "hanoi_b_labels.json").read_text(encoding="utf-8"))
KEY = "hanoi-e2e-test-key-0123456789"
IMAGES = ("1.jpg", "2.jpg", "3.jpg")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need(VIDEO.is_file(), f"sample video {VIDEO} not found")
    out = tmp_path_factory.mktemp("hanoi")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHARPEYES_EVIDENCE_KEY", KEY)
        args = ["analyze", str(VIDEO), "--config", str(CONFIG), "--out", str(out)]
        rc = cli.main([*args, "--no-progress"])
    assert rc == 0
    return out


def _records(out: Path) -> list[dict[str, Any]]:
    lines = (out / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _violations(out: Path) -> list[tuple[dict[str, Any], Path]]:
    found = []
    for rec in _records(out):
        if rec["type"] == "red_light_violation":
            (rdir,) = (out / "evidence").glob(f"*/*/{rec['event_id']}")
            found.append((rec, rdir))
    return found


def test_every_violation_has_a_full_evidence_record(run: Path) -> None:
    violations = _violations(run)
    assert len(violations) >= 10
    for rec, rdir in violations:
        doc = json.loads((rdir / "record.json").read_text(encoding="utf-8"))
        assert doc["event"]["event_id"] == rec["event_id"]
        for name in IMAGES:
            img = cv2.imread(str(rdir / name), cv2.IMREAD_UNCHANGED)
            assert img is not None and img.shape == (480, 640, 3) and img.dtype == np.uint8, name
        for name in ("plate.jpg", "composite.jpg"):
            img = cv2.imread(str(rdir / name), cv2.IMREAD_UNCHANGED)
            assert img is not None and img.ndim == 3 and img.shape[2] == 3, name
        names = {f["name"] for f in doc["files"]}
        assert names >= {*IMAGES, "plate.jpg", "composite.jpg", "clip.mp4"}
        _check_clip(rdir / "clip.mp4", doc)


def _check_clip(path: Path, doc: dict[str, Any]) -> None:
    e1, _, e3 = doc["violation"]["evidence_pts"]
    clip = doc["clip"]
    assert clip["start_pts_s"] <= e1 and clip["end_pts_s"] >= e3
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        first = next(c.demux(stream))
        assert first.is_keyframe
        c.seek(0)
        frames = list(c.decode(video=0))
    assert frames[0].key_frame and (frames[0].width, frames[0].height) == (640, 480)
    assert frames[-1].time is not None and frames[0].time is not None
    assert frames[-1].time - frames[0].time >= e3 - e1


def test_evidence_verify_passes_then_fails_after_one_flipped_byte(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHARPEYES_EVIDENCE_KEY", KEY)
    _, rdir = _violations(run)[0]
    copy = tmp_path / rdir.name
    shutil.copytree(rdir, copy)
    assert cli.main(["evidence", "verify", str(copy)]) == 0
    data = bytearray((copy / "2.jpg").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "2.jpg").write_bytes(bytes(data))
    assert cli.main(["evidence", "verify", str(copy)]) != 0


def test_precision_and_recall_against_the_labels(run: Path) -> None:
    report = hanoi_report(_records(run), LABELS)
    assert report["precision"] >= 0.9 and report["recall"] >= 0.8, report


def test_every_image_states_its_own_stage_and_signal(run: Path) -> None:
    """Image 1 before the line on red, 2 at or over it, 3 past the entry line — or, where the
    track was lost after its crossing (it may come back on another vehicle), the last view
    before that and the record says so; every image stamped with the signal state of its own
    frame (the light may have turned green by 3)."""
    red_lo, red_hi = LABELS["signal_phases"]["red"]
    times = frame_times(VIDEO, LABELS)
    red_from, red_to = times[red_lo], times[red_hi]
    violations = _violations(run)
    assert len(violations) >= 15
    gaps = 0
    for rec, rdir in violations:
        doc = json.loads((rdir / "record.json").read_text(encoding="utf-8"))
        im = doc["images"]
        assert im[0]["stop_line_side"] == "before", rdir.name
        assert im[1]["stop_line_side"] in ("on", "after"), rdir.name
        lost = [p for p in doc["incomplete"] if p["part"] == "image_3"]
        if lost:  # the track was lost after the crossing: image 3 is not taken past the gap
            assert "was not detected for" in lost[0]["reason"], lost
            gaps += 1
        else:
            assert im[2]["past_entry_line"], rdir.name
        assert im[2]["stop_line_side"] == "after", rdir.name
        assert im[0]["signal"]["color"] == "red" and im[1]["signal"]["color"] == "red"
        for i in im:
            assert i["subject_box_source"] == "track"
            want = "red" if red_from - 0.01 <= i["pts"] <= red_to + 0.01 else "green"
            assert i["signal"]["color"] == want, (rdir.name, i["file"], i["pts"])
        assert im[0]["pts"] < doc["violation"]["crossed_stop_line_pts"] <= im[1]["pts"]
        assert doc["overlay_language"] in ("zh", "en")
        assert {p["part"] for p in doc["incomplete"]} <= {"plate", "image_3"}
        crossed_ms = rec["first_seen_ms"] + round(
            (rec["violation"]["crossed_stop_line_pts"] - rec["first_pts"]) * 1000
        )
        assert abs(doc["violation"]["time_ms"] - crossed_ms) <= 1
    assert gaps <= 3  # measured: 3 of 15 tracks lost for 1.2-1.7 s after their crossing


def test_seconds_since_red_is_the_red_age_at_the_crossing(run: Path) -> None:
    sr = since_red_check(_records(run), LABELS, frame_times(VIDEO, LABELS))
    assert len(sr["rows"]) == 15
    assert sr["ok"], sr["rows"]


def test_seconds_since_red_against_the_labelled_rear_wheel_crossing(run: Path) -> None:
    """Against the crossing read by eye (two blind labellers, rear ground contact): every one of
    the 15 within 0.2 s, the issue's bound (measured 2026-12-06: 0.166 s at most, hb14, a white
    car timed by its wheel line's middle; 0.216 s when timed by its box's lowest corner). Riders
    are placed from the person (head + the camera's rider height), and included."""
    records = _records(run)
    sr = since_red_check(records, LABELS, frame_times(VIDEO, LABELS))
    deltas = {r["label"]: abs(r["delta_s"]) for r in sr["rows"]}
    assert len(deltas) == 15, deltas
    assert max(deltas.values()) <= 0.2, deltas
    riders = {
        lid
        for lid, i in match_labels(records, LABELS).tp
        if (records[i].get("extra") or {}).get("detected_as") == "person"
    }
    assert riders, "no rider among the matches"


def test_signal_state_matches_the_known_phases() -> None:
    need(VIDEO.is_file(), f"sample video {VIDEO} not found")
    cam = load_camera_config(CONFIG)
    assert cam.intersection is not None
    source = FileSource(str(VIDEO), cam.id)
    board = build_signal_board(cam.intersection, (source.info.width, source.info.height), None)
    red_lo, red_hi = LABELS["signal_phases"]["red"]
    green_lo, green_hi = LABELS["signal_phases"]["green"]
    agree = n = 0
    try:
        for frame in source.frames():
            color = board.update(frame)["main"].color
            if red_lo <= frame.seq <= red_hi:
                agree += color is LampColor.RED
            elif green_lo <= frame.seq <= green_hi:
                agree += color is LampColor.GREEN
            else:
                continue
            n += 1
    finally:
        source.close()
    assert n == red_hi - red_lo + 1 + green_hi - green_lo + 1
    assert agree / n >= 0.99


# -- H.265 cameras ------------------------------------------------------------------------------

HEVC_FRAMES = (90, 215)  # hb01–hb06 cross in this span


@pytest.fixture(scope="module")
def hevc_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same intersection recorded as H.265 in MP4 (``hvcC``, as most Chinese cameras and
    NVRs export it): frames 90–215 of hanoi_b re-encoded with libx265."""
    need(VIDEO.is_file(), f"sample video {VIDEO} not found")
    out = tmp_path_factory.mktemp("hanoi_hevc")
    clip = reencode_h265(VIDEO, out / "hanoi_b_hevc.mp4", HEVC_FRAMES, 6.02)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHARPEYES_EVIDENCE_KEY", KEY)
        args = ["analyze", str(clip), "--config", str(CONFIG), "--out", str(out / "run")]
        rc = cli.main([*args, "--no-progress"])
    assert rc == 0
    return out / "run"


def test_h265_camera_gets_full_evidence_with_an_h265_clip(hevc_run: Path) -> None:
    """Every violation of an H.265 recording has its clip (stream copy, still H.265) covering
    its three images, and the record lists no part as missing but a plate (and image 3 of a
    track lost in the crosswalk)."""
    violations = _violations(hevc_run)
    assert len(violations) >= 4
    for _, rdir in violations:
        doc = json.loads((rdir / "record.json").read_text(encoding="utf-8"))
        assert doc["clip"] is not None and doc["clip"]["codec"] == "hevc", doc.get("clip_error")
        for part in doc["incomplete"]:  # a track lost in the crosswalk says so on image 3
            lost = ("lost before the entry line", "was not detected for")
            assert part["part"] == "plate" or (
                part["part"] == "image_3" and any(w in part["reason"] for w in lost)
            ), doc["incomplete"]
        _check_clip(rdir / "clip.mp4", doc)
        with av.open(str(rdir / "clip.mp4")) as c:
            assert c.streams.video[0].codec_context.name == "hevc"


def test_every_violation_names_the_class_of_what_ran_the_light(run: Path) -> None:
    """The labelled kind (car / motorcycle) is the violation's class (its GA/T code too);
    riders charged from their person box are motorcycle riders on this camera."""
    records = _records(run)
    kinds = {lab["id"]: lab["kind"] for lab in LABELS["violations"]}
    matched = match_labels(records, LABELS).tp
    assert len(matched) == 15
    codes = {"car": "K30", "motorcycle": "M21"}
    for lid, i in matched:
        assert records[i]["class_name"] == kinds[lid], (lid, records[i]["class_name"])
        assert records[i]["class_code"] == codes[kinds[lid]], lid
