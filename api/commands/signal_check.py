"""``sharpeyes signal-check VIDEO --config CAMERA.yaml``: what the signal reader sees (installers).

Reads every frame of a video with the camera's intersection calibration and prints the state of
every signal group per frame (``--json``: one JSON object per frame and line, then one summary
object), the share of each colour per group, the phase changes (time, from → to), signal faults
over the whole clip and calibration problems (printed as warnings; ``--strict`` exits 3 when there
are any), and with ``--png STRIP.png`` a strip image: each head's lamp crop over time with the
raw reading and the state below it, labelled (head / group, time axis, legend of colours).
Groups fed by the controller (``source: external``) are listed as such; a config whose groups
are all external is checked without reading the video.

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
_LABEL_W = 150  # px of the label column left of each strip row
_AXIS_H = 16  # px of the time axis under each strip row
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TICKS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)
EXTERNAL = "external — fed live by the controller, not read from the video"
EXTERNAL_THEN_VIDEO = (
    "external, then video — fed live by the controller; read from the video below only while "
    "the controller is silent or stale"
)
_BAR_BGR = {
    LampColor.RED: (40, 40, 235),
    LampColor.AMBER: (10, 165, 250),
    LampColor.GREEN: (60, 200, 40),
    LampColor.OFF: (80, 60, 60),  # dark slate: visible on the black background
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

    label: str = ""
    step: int = 1
    crops: list[tuple[ImageBGR, LampColor, LampColor, float]] = field(default_factory=list)
    """(crop, raw reading, state, pts) per kept frame."""

    def add(self, i: int, crop: ImageBGR, raw: LampColor, color: LampColor, pts: float) -> None:
        if i % self.step:
            return
        self.crops.append((crop.copy(), raw, color, pts))
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
    faults: dict[str, list[tuple[str, float | None]]] = field(default_factory=dict)
    """Every signal fault of each group over the clip: (message, pts it ended or None)."""

    def add(self, states: dict[str, SignalState], pts: float) -> None:
        self.frames += 1
        self.first_pts = pts if self.first_pts is None else self.first_pts
        self.last_pts = pts
        for g, st in states.items():
            self.counts.setdefault(g, Counter())[st.color.value] += 1
            prev = self.last.get(g)
            if prev is not None and prev.color is not st.color:
                self.changes.append((st.since_pts, g, prev.color.value, st.color.value))
            seen = self.faults.setdefault(g, [])
            open_fault = seen[-1][0] if seen and seen[-1][1] is None else None
            if open_fault is not None and st.fault != open_fault:
                seen[-1] = (open_fault, st.since_pts if st.fault is None else pts)
            if st.fault is not None and st.fault != open_fault:
                seen.append((st.fault, None))
        self.last = dict(states)

    def fault_problems(self) -> dict[str, list[tuple[str, float | None]]]:
        """Every fault of each group over the clip (message, pts it ended or None)."""
        return {g: list(seen) for g, seen in self.faults.items() if seen}

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
    if calib is None or not calib.signal_groups:
        return _error(f"{config}: no intersection.signal_groups to check", EXIT_USAGE)
    external = _external_groups(calib)
    if not calib.signal_heads:  # every group is fed by the controller: nothing to read
        _report_external_only(sys.stdout, external, bool(args.json))
        return EXIT_OK
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
    problems = check_problems(board, summary.fault_problems())
    _report(sys.stdout, summary, problems, external, bool(args.json))
    if args.png:
        try:
            _write_strip(Path(args.png), strips)
        except (OSError, ValueError) as e:
            return _error(f"{args.png}: {e}", EXIT_USAGE)
    if problems and getattr(args, "strict", False):
        return EXIT_PROBLEMS
    return EXIT_OK


def _external_groups(calib: IntersectionCalibration) -> dict[str, str]:
    """``{group: how it is fed}`` for the groups whose phase comes from the controller."""
    out = {}
    for g in calib.signal_groups:
        if g.source == "external":
            out[g.id] = EXTERNAL
        elif g.source == "external_then_video":
            out[g.id] = EXTERNAL_THEN_VIDEO
    return out


def check_problems(
    board: SignalBoard, faults: dict[str, list[tuple[str, float | None]]] | None = None
) -> dict[str, str]:
    """What the board reports (``SignalBoard.problems``: faults now, calibration problems,
    a picture without colour), each video head's calibration problem
    (``signal_phase.head_calibration_problem``: reader and phase model; added to what the board
    says of that head), and every fault seen over the clip (``faults``: message, pts it ended),
    not blamed on the lamps where every head of the group has a calibration problem."""
    from sharpeyes.pipeline.signal_phase import fault_in_doubt, head_calibration_problem

    problems = dict(board.problems())
    doubted: dict[str, bool] = {}
    for vh in board.heads:
        found = head_calibration_problem(vh.head.id, vh.reader, vh.smoother)
        now = problems.get(vh.head.id)
        if found is not None and (now is None or found not in now):
            problems[vh.head.id] = found if now is None else f"{now}; {found}"
        bad = vh.head.id in problems
        doubted[vh.head.group] = doubted.get(vh.head.group, True) and bad
    seen = dict(faults or {})
    for g in set(seen) | {g for g in doubted if g in problems}:
        msgs = list(seen.get(g, []))
        if (now := problems.get(g)) is not None and now not in [m for m, _ in msgs]:
            msgs.append((now, None))
        if not msgs:
            continue
        if doubted.get(g, False):
            msgs = [(fault_in_doubt(m), end) for m, end in msgs]
        problems[g] = "; ".join(m if end is None else f"{m} (until {end:.1f} s)" for m, end in msgs)
    return problems


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
    from sharpeyes.pipeline.signal_phase import PhaseCheck, SignalParams

    out: TextIO = sys.stdout
    board: SignalBoard | None = None
    video_groups = {g.id for g in calib.signal_groups if g.source != "external"}
    max_frames = int(getattr(args, "max_frames", 0) or 0)
    for n, frame in enumerate(frames):
        if max_frames and n >= max_frames:
            break
        if board is None:
            h, w = frame.image.shape[:2]
            params = SignalParams(check_window_s=math.inf)  # the calibration checks: whole clip
            board = build_signal_board(calib, (w, h), None, params)
            for vh in board.heads:
                vh.smoother.check = PhaseCheck(params)
        states = {g: st for g, st in board.update(frame).items() if g in video_groups}
        summary.add(states, frame.pts)
        out.write(_frame_line(frame, states, board, bool(args.json)) + "\n")
        if args.png:
            for vh in board.heads:
                st = vh.last_state
                color = st.color if st is not None else LampColor.UNKNOWN
                label = f"{vh.head.id} ({vh.head.group})"
                strip = strips.setdefault(vh.head.id, _Strip(label))
                strip.add(n, vh.crop(frame.image), vh.last_reading.color, color, frame.pts)
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


def _report_external_only(out: TextIO, external: dict[str, str], as_json: bool) -> None:
    """A config whose groups are all fed by the controller: say so (the video is not read)."""
    if as_json:
        summary = {"frames": 0, "shares": {}, "external": external, "changes": [], "problems": {}}
        out.write(json.dumps({"summary": summary}, ensure_ascii=False) + "\n")
        return
    out.write("no signal head is read from the video (every group is external)\n")
    for g, how in external.items():
        out.write(f"group {g}: {how}\n")


def _report(
    out: TextIO,
    s: _Summary,
    problems: dict[str, str],
    external: dict[str, str],
    as_json: bool,
) -> None:
    span = s.last_pts - (s.first_pts or 0.0)
    if as_json:
        summary = {
            "summary": {
                "frames": s.frames,
                "duration_s": round(span, 3),
                "shares": s.shares(),
                "external": external,
                "changes": [
                    {"pts": round(t, 3), "group": g, "from": a, "to": b} for t, g, a, b in s.changes
                ],
                "problems": problems,
            }
        }
        out.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        out.write(f"\n{s.frames} frames, {span:.1f} s\n")
        shares = s.shares()
        for g, how in external.items():
            if g not in shares:
                out.write(f"group {g}: {how}\n")
        for g, share in shares.items():
            parts = ", ".join(f"{c} {100 * v:.1f} %" for c, v in share.items())
            how = f" ({external[g]})" if g in external else ""
            out.write(f"group {g}: {parts}{how}\n")
        out.write("phase changes:\n" if s.changes else "phase changes: none\n")
        for t, g, a, b in s.changes:
            out.write(f"  {t:8.2f}s  {g}: {a} -> {b}\n")
    for key, msg in problems.items():
        sys.stderr.write(f"warning: {key}: {msg}\n")


def _text(img: ImageBGR, text: str, x: int, y: int, scale: float = 0.4) -> None:
    cv2.putText(img, text, (x, y), _FONT, scale, (235, 235, 235), 1, cv2.LINE_AA)


def _tick_step(seconds_per_px: float) -> int:
    """Seconds between time-axis ticks: the first of ``_TICKS_S`` at least 60 px apart."""
    for t in _TICKS_S:
        if t / max(seconds_per_px, 1e-9) >= 60:
            return t
    return _TICKS_S[-1]


def _legend(width: int) -> ImageBGR:
    img = np.zeros((40, width, 3), np.uint8)
    _text(img, "upper bar: raw reading per frame   lower bar: state (phase model)", 6, 14)
    x = 6
    for color, bgr in _BAR_BGR.items():
        cv2.rectangle(img, (x, 22), (x + 14, 34), bgr, -1)
        cv2.rectangle(img, (x, 22), (x + 14, 34), (235, 235, 235), 1)
        _text(img, color.value, x + 19, 33)
        x += 30 + 8 * len(color.value)
    return img


def _strip_rows(strip: _Strip) -> list[ImageBGR]:
    """The rows of one head: label column, crops with raw / state bars, time axis below."""
    cols: list[tuple[ImageBGR, float]] = []
    for crop, raw, color, pts in strip.crops:
        if crop.size == 0:
            continue
        w = max(1, math.ceil(crop.shape[1] * _STRIP_H / crop.shape[0]))
        img = cv2.resize(crop, (w, _STRIP_H), interpolation=cv2.INTER_NEAREST)
        raw_bar = np.zeros((3, w, 3), np.uint8)
        raw_bar[:] = _BAR_BGR[raw]
        bar = np.zeros((6, w, 3), np.uint8)
        bar[:] = _BAR_BGR[color]
        gap = np.zeros((1, w, 3), np.uint8)
        cols.append((np.vstack([img, gap, raw_bar, gap, bar]), pts))
    if not cols:
        return []
    col_w = cols[0][0].shape[1]
    per_row = max(1, (_STRIP_WIDTH - _LABEL_W) // col_w)
    spp = (cols[-1][1] - cols[0][1]) / ((len(cols) - 1) * col_w) if len(cols) > 1 else 1.0
    tick = _tick_step(spp)
    rows: list[ImageBGR] = []
    prev_pts: float | None = None
    for k in range(0, len(cols), per_row):
        chunk = cols[k : k + per_row]
        body = np.hstack([c for c, _ in chunk])
        label = np.zeros((body.shape[0], _LABEL_W, 3), np.uint8)
        _text(label, strip.label if k == 0 else f"{strip.label} cont.", 4, 16)
        _text(label, f"{chunk[0][1]:.1f}-{chunk[-1][1]:.1f} s", 4, 34, 0.35)
        axis = np.zeros((_AXIS_H, _LABEL_W + body.shape[1], 3), np.uint8)
        for j, (_, pts) in enumerate(chunk):
            last = prev_pts if prev_pts is not None else pts - 1e-9
            mark = math.floor(pts / tick) * tick
            if last < mark <= pts or (prev_pts is None and mark == pts):
                x = _LABEL_W + j * col_w
                cv2.line(axis, (x, 0), (x, 4), (235, 235, 235), 1)
                _text(axis, f"{mark}s", x + 2, 13, 0.33)
            prev_pts = pts
        rows.append(np.vstack([np.hstack([label, body]), axis]))
    return rows


def _write_strip(path: Path, strips: dict[str, _Strip]) -> None:
    rows: list[ImageBGR] = []
    for _, strip in sorted(strips.items()):
        head_rows = _strip_rows(strip)
        if not head_rows:
            continue
        rows += head_rows
        rows.append(np.full((4, 1, 3), 255, np.uint8))  # white rule between heads
    if not rows:
        raise ValueError("no head crops to draw")
    width = max(r.shape[1] for r in rows)
    rows.insert(0, _legend(width))
    padded = [
        np.repeat(r, width, axis=1)
        if r.shape[1] == 1
        else np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)))
        for r in rows
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.vstack(padded)):
        raise ValueError("could not write the image (use a .png name)")
