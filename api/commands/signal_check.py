"""``sharpeyes signal-check VIDEO --config CAMERA.yaml``: what the signal reader sees (installers).

Reads every frame of a video with the camera's intersection calibration and prints the state of
every signal group per frame (``--json``: one JSON object per frame and line, then one summary
object), the share of each colour per group, the phase changes (time, from → to), signal faults
and calibration problems (printed as warnings; ``--strict`` exits 3 when there are any), and with
``--png STRIP.png`` a strip image: each head's lamp crop over time with the state below it.

Exit status: 0 ok, 1 the video cannot be read, 2 bad arguments or configuration, 3 problems
found with ``--strict``. Errors are one line ``error: …`` on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import cv2
import numpy as np

from sharpeyes.pipeline.errors import ConfigError, SharpeyesError
from sharpeyes.pipeline.types import Frame, ImageBGR, LampColor, SignalState

if TYPE_CHECKING:
    from sharpeyes.pipeline.calibration import IntersectionCalibration
    from sharpeyes.pipeline.signal import SignalBoard

EXIT_OK, EXIT_READ, EXIT_USAGE, EXIT_PROBLEMS = 0, 1, 2, 3
_STRIP_H = 48  # px height of one head crop in the strip
_STRIP_WIDTH = 1200  # px width of one row of the strip (columns wrap)
_MAX_COLUMNS = 600  # strip columns kept per head (older ones are thinned out)
_BAR_BGR = {
    LampColor.RED: (40, 40, 235),
    LampColor.AMBER: (10, 165, 250),
    LampColor.GREEN: (60, 200, 40),
    LampColor.OFF: (0, 0, 0),
    LampColor.UNKNOWN: (160, 160, 160),
}


def add_parser(subparsers: Any) -> None:
    """Register ``signal-check`` on a ``subparsers`` object of :mod:`argparse`."""
    p = subparsers.add_parser(
        "signal-check", help="show what the signal reader sees on a video (for installers)"
    )
    p.add_argument("video", help="video file")
    p.add_argument("--config", required=True, help="camera YAML with an intersection calibration")
    p.add_argument("--json", action="store_true", help="one JSON object per frame, then a summary")
    p.add_argument("--png", help="write a strip image of each head's crop over time")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames")
    p.add_argument("--strict", action="store_true", help="exit 3 when there are problems")
    p.set_defaults(func=run)


@dataclass
class _Strip:
    """Sampled crops (and states) of one head for the strip image."""

    step: int = 1
    crops: list[tuple[ImageBGR, LampColor]] = field(default_factory=list)

    def add(self, i: int, crop: ImageBGR, color: LampColor) -> None:
        if i % self.step:
            return
        self.crops.append((crop.copy(), color))
        if len(self.crops) > _MAX_COLUMNS:
            self.crops = self.crops[::2]
            self.step *= 2


@dataclass
class _Summary:
    frames: int = 0
    first_pts: float | None = None
    last_pts: float = 0.0
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    changes: list[tuple[float, str, str, str]] = field(default_factory=list)
    last: dict[str, SignalState] = field(default_factory=dict)

    def add(self, states: dict[str, SignalState], pts: float) -> None:
        self.frames += 1
        self.first_pts = pts if self.first_pts is None else self.first_pts
        self.last_pts = pts
        for g, st in states.items():
            self.counts.setdefault(g, Counter())[st.color.value] += 1
            prev = self.last.get(g)
            if prev is not None and prev.color is not st.color:
                self.changes.append((st.since_pts, g, prev.color.value, st.color.value))
        self.last = dict(states)

    def shares(self) -> dict[str, dict[str, float]]:
        return {
            g: {c: round(n / self.frames, 4) for c, n in sorted(cnt.items())}
            for g, cnt in self.counts.items()
        }


def _error(msg: str, code: int) -> int:
    sys.stderr.write(f"error: {msg}\n")
    return code


def run(args: argparse.Namespace) -> int:
    """Run the check; returns the exit status."""
    from sharpeyes.pipeline.config import load_camera_config
    from sharpeyes.streams.file_source import FileSource

    video, config = Path(args.video), Path(args.config)
    if not video.is_file():
        return _error(f"{video}: no such video file", EXIT_USAGE)
    if not config.is_file():
        return _error(f"{config}: no such config file", EXIT_USAGE)
    try:
        cam = load_camera_config(config)
    except ConfigError as e:
        return _error(str(e).replace("\n", "; "), EXIT_USAGE)
    calib = cam.intersection
    if calib is None or not calib.signal_heads:
        return _error(f"{config}: no intersection.signal_heads to read", EXIT_USAGE)
    try:
        source = FileSource(video, cam.id)
    except SharpeyesError as e:
        return _error(str(e), EXIT_READ)
    summary = _Summary()
    strips: dict[str, _Strip] = {}
    try:
        board = _scan(source.frames(), calib, args, summary, strips)
    except SharpeyesError as e:
        return _error(str(e), EXIT_READ)
    finally:
        source.close()
    if board is None:
        return _error(f"{video}: no frames decoded", EXIT_READ)
    problems = board.problems()
    _report(sys.stdout, summary, problems, bool(args.json))
    if args.png:
        try:
            _write_strip(Path(args.png), strips)
        except (OSError, ValueError) as e:
            return _error(f"{args.png}: {e}", EXIT_USAGE)
    if problems and getattr(args, "strict", False):
        return EXIT_PROBLEMS
    return EXIT_OK


def _scan(
    frames: Iterator[Frame],
    calib: IntersectionCalibration,
    args: argparse.Namespace,
    summary: _Summary,
    strips: dict[str, _Strip],
) -> SignalBoard | None:
    """Feed every frame to a signal board, printing per-frame lines; the board (None: no
    frame)."""
    from sharpeyes.pipeline.signal import build_signal_board

    out: TextIO = sys.stdout
    board: SignalBoard | None = None
    max_frames = int(getattr(args, "max_frames", 0) or 0)
    for n, frame in enumerate(frames):
        if max_frames and n >= max_frames:
            break
        if board is None:
            h, w = frame.image.shape[:2]
            board = build_signal_board(calib, (w, h), None)
        states = board.update(frame)
        summary.add(states, frame.pts)
        out.write(_frame_line(frame, states, board, bool(args.json)) + "\n")
        if args.png:
            for vh in board.heads:
                st = vh.last_state
                color = st.color if st is not None else LampColor.UNKNOWN
                strips.setdefault(vh.head.id, _Strip()).add(n, vh.crop(frame.image), color)
    return board


def _frame_line(
    frame: Frame, states: dict[str, SignalState], board: SignalBoard, as_json: bool
) -> str:
    heads = {h.head.id: h.last_reading.color.value for h in board.heads}
    groups = {g: st.color.value for g, st in states.items()}
    if as_json:
        row: dict[str, Any] = {
            "frame": frame.seq,
            "pts": round(frame.pts, 3),
            "groups": groups,
            "heads": heads,
        }
        faults = {g: st.fault for g, st in states.items() if st.fault}
        if faults:
            row["faults"] = faults
        return json.dumps(row, ensure_ascii=False)
    cols = "  ".join(f"{g}={c}" for g, c in groups.items())
    raw = " ".join(f"{k}:{v}" for k, v in heads.items())
    return f"{frame.seq:6d} {frame.pts:8.2f}s  {cols}   [{raw}]"


def _report(out: TextIO, s: _Summary, problems: dict[str, str], as_json: bool) -> None:
    span = s.last_pts - (s.first_pts or 0.0)
    if as_json:
        summary = {
            "summary": {
                "frames": s.frames,
                "duration_s": round(span, 3),
                "shares": s.shares(),
                "changes": [
                    {"pts": round(t, 3), "group": g, "from": a, "to": b} for t, g, a, b in s.changes
                ],
                "problems": problems,
            }
        }
        out.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        out.write(f"\n{s.frames} frames, {span:.1f} s\n")
        for g, shares in s.shares().items():
            parts = ", ".join(f"{c} {100 * v:.1f} %" for c, v in shares.items())
            out.write(f"group {g}: {parts}\n")
        out.write("phase changes:\n" if s.changes else "phase changes: none\n")
        for t, g, a, b in s.changes:
            out.write(f"  {t:8.2f}s  {g}: {a} -> {b}\n")
    for key, msg in problems.items():
        sys.stderr.write(f"warning: {key}: {msg}\n")


def _write_strip(path: Path, strips: dict[str, _Strip]) -> None:
    rows: list[ImageBGR] = []
    for _, strip in sorted(strips.items()):
        cols: list[ImageBGR] = []
        for crop, color in strip.crops:
            if crop.size == 0:
                continue
            w = max(1, math.ceil(crop.shape[1] * _STRIP_H / crop.shape[0]))
            img = cv2.resize(crop, (w, _STRIP_H), interpolation=cv2.INTER_NEAREST)
            bar = np.zeros((6, w, 3), np.uint8)
            bar[:] = _BAR_BGR[color]
            cols.append(np.vstack([img, bar, np.zeros((2, w, 3), np.uint8)]))
        if not cols:
            continue
        per_row = max(1, _STRIP_WIDTH // cols[0].shape[1])
        for k in range(0, len(cols), per_row):
            chunk = cols[k : k + per_row]
            rows.append(np.hstack(chunk))
        rows.append(np.full((6, 1, 3), 255, np.uint8))  # white rule between heads
    if not rows:
        raise ValueError("no head crops to draw")
    width = max(r.shape[1] for r in rows)
    padded = [
        np.repeat(r, width, axis=1)
        if r.shape[1] == 1
        else np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)))
        for r in rows
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.vstack(padded)):
        raise ValueError("could not write the image (use a .png name)")
