"""Checkpoint mode end to end: ``analyze`` with the shipped checkpoint config, scored by
``benchmarks.eval_plates`` against the hand labels of plates_closeup_beijing.

The default test analyses a 4.8 s segment (frames 300–419: the white Nissan 京M76967 from
entering to leaving, plus the tail of the taxi ahead of it); the whole clip is ``slow``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from benchmarks.eval_plates import DEFAULT_LABELS, evaluate, load_events, load_labels
from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
from tests.conftest import need

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "sample_videos" / "plates_closeup_beijing.yaml"
CLIP = "plates_closeup_beijing_640x360.mp4"


def _segment(
    src: Path, dst: Path, start: int, end: int, scale: float = 1.0, zoom: float = 1.0
) -> None:
    """Frames ``start`` to ``end`` of ``src`` into ``dst`` (mp4v), each resized by ``scale``;
    ``zoom`` > 1 keeps the middle 1/``zoom`` of each, scaled back to the full size (a camera
    zoomed in)."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    writer: cv2.VideoWriter | None = None
    try:
        for _ in range(start, end):
            ok, img = cap.read()
            if not ok:
                break
            if zoom != 1.0:
                h, w = img.shape[:2]
                ch, cw = round(h / zoom), round(w / zoom)
                y0, x0 = (h - ch) // 2, (w - cw) // 2
                crop = img[y0 : y0 + ch, x0 : x0 + cw]
                img = cv2.resize(crop, (w, h), interpolation=cv2.INTER_CUBIC)
            if scale != 1.0:
                img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            if writer is None:
                h, w = img.shape[:2]
                writer = cv2.VideoWriter(str(dst), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
            writer.write(img)
    finally:
        cap.release()
        if writer is not None:
            writer.release()


def _analyze(video: Path, out: Path) -> Path:
    analyze_video(AnalyzeOptions(video=video, config=CONFIG, out=out, progress=False))
    return out / "events.jsonl"


def test_segment_reads_the_plate_exactly(sample_videos: Path, tmp_path: Path) -> None:
    src = sample_videos / CLIP
    need(src.is_file(), f"{src} not found")
    seg = tmp_path / "seg.mp4"
    _segment(src, seg, 300, 420)
    fps, vehicles = load_labels(DEFAULT_LABELS, (300, 419))
    assert [v.plate for v in vehicles] == ["京M76967"]
    report = evaluate(vehicles, load_events(_analyze(seg, tmp_path / "out"), fps, offset=300))
    assert report.plates_exact == report.readable_plates == 1
    assert report.false_plates == []
    assert report.missed == []


@pytest.mark.slow
def test_whole_clip_meets_plate_goals(sample_videos: Path, tmp_path: Path) -> None:
    src = sample_videos / CLIP
    need(src.is_file(), f"{src} not found")
    fps, vehicles = load_labels(DEFAULT_LABELS)
    report = evaluate(vehicles, load_events(_analyze(src, tmp_path / "out"), fps))
    assert report.plate_accuracy >= 0.95, report.to_json()
    assert report.false_plates == []
