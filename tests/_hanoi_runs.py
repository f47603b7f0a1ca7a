"""A span of hanoi_b through ``sharpeyes analyze``: the runners it charges and its events by type
(shared by the tests that run copies of the clip made the way real cameras differ)."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from sharpeyes.api.commands import cli
from tests.conftest import shared_dir

HANOI = shared_dir() / "sample_videos" / "intersection_hanoi_b_640x480.mp4"
CONFIG = Path(__file__).resolve().parents[1] / "sample_videos" / "intersection_hanoi_b.yaml"

Charges = list[tuple[float, float]]
"""(stop-line crossing pts, box centre x) of every red-light charge, in time order."""


def copy_span(src: Path, dst: Path, vf: str) -> None:
    """Frames 90–230 of ``src`` (runners hb01–hb07) through ``vf`` (H.264, a lossy encode as a
    recorder makes)."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf"]
    cmd += [f"trim=start_frame=90:end_frame=231,setpts=PTS-STARTPTS,{vf}"]
    cmd += ["-c:v", "libx264", "-crf", "18", "-preset", "ultrafast", "-an", str(dst)]
    subprocess.run(cmd, check=True)


def analyse(video: Path, out: Path, **camera: Any) -> tuple[Charges, Counter[str]]:
    """``sharpeyes analyze`` on ``video`` with the hanoi_b camera (``camera`` overriding its
    keys): the charges and the events by type."""
    cfg = yaml.safe_load(CONFIG.read_text("utf-8"))
    cfg["url"] = str(video)
    cfg.update(camera)
    config = out.with_suffix(".yaml")
    config.write_text(json.dumps(cfg), encoding="utf-8")  # JSON is YAML
    args = ["analyze", str(video), "--config", str(config), "--out", str(out), "--no-progress"]
    assert cli.main(args) == 0
    charges, kinds = [], Counter[str]()
    for line in (out / "events.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        kinds[r["type"]] += 1
        if r["type"] == "red_light_violation":
            b, crossed = r["box"], float(r["violation"]["crossed_stop_line_pts"])
            charges.append((crossed, (b["x1"] + b["x2"]) / 2))
    return sorted(charges), kinds


def same_runners(got: Charges, reference: Charges, frames: int = 2, px: float = 30.0) -> bool:
    """Every charge in ``got`` is one of ``reference``: within ``frames`` analysed frames (1/6 s
    each) and ``px`` pixels."""
    return all(
        any(abs(t - t0) <= frames / 6 + 1e-3 and abs(x - x0) <= px for t0, x0 in reference)
        for t, x in got
    )


@functools.cache
def clean_span() -> tuple[Charges, Counter[str]]:
    """Frames 90–230 as recorded (through the same lossy encode as the copies) with the
    camera's own config: the reference every copy is compared with, analysed once per test
    session."""
    work = Path(tempfile.mkdtemp(prefix="sharpeyes-hanoi-span-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    copy_span(HANOI, work / "clean.mp4", "null")
    return analyse(work / "clean.mp4", work / "clean")
