"""``sharpeyes signal-check VIDEO --config CAMERA.yaml``: what the signal reader sees (installers).

Reads every frame of a video with the camera's intersection calibration and prints the state of
every signal group per frame (``--json``: one JSON object per frame and line, then one summary
object), the share of each colour per group, the phase changes (time, from → to), signal faults
over the whole clip and calibration problems (printed as warnings; ``--strict`` exits 3 when there
are any), and with ``--png STRIP.png`` a strip image: each head's lamp crop over time with the
raw reading and the state below it, labelled (head / group, time axis, legend of colours).
Groups fed by the controller (``source: external``) are listed as such; a config whose groups
are all external is checked without reading the video.

A head with a calibration problem is looked for inside and around its region (up to 3× its
size, :mod:`pipeline.signal_locate`): where lamps were seen to light there, the warning ends
with a corrected ``region:`` line to paste (relative, px in a comment), and the ``--json``
summary carries it under ``suggestions``. How the lamps are read does not change.

``sharpeyes signal-check VIDEO --find-heads [--config CAMERA.yaml] [--json] [--png FRAME.png]``
finds the signal heads of a new camera (no config needed): it prints them as ``signal_heads:``
entries to paste (px in comments; one-colour candidates commented out; countdown displays noted
as not heads), ``--json`` one object ``{"find_heads": …}``, and ``--png`` draws them on a frame.

Exit status: 0 ok, 1 the video cannot be read, 2 bad arguments or configuration, 3 problems
found with ``--strict`` (with ``--find-heads``: no lamp head found). Errors are one line
``error: …`` on stderr.
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
from sharpeyes.pipeline.signal_locate import (
    SEARCH_SCALE,
    HeadFinder,
    HeadProposal,
    expand_box,
    suggest_region,
)
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
NO_LAMP_NEAR = (
    "no lamp was seen lighting in or around the region (up to 3× its size) — find the "
    "signal heads with: sharpeyes signal-check VIDEO --find-heads"
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
    p.add_argument("--config", help="camera YAML with an intersection calibration")
    p.add_argument(
        "--find-heads",
        action="store_true",
        help="propose signal heads (region, layout, lamps) found in the video; config optional",
    )
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
    sway: tuple[int, int] = (0, 0)
    """The largest shift across and up/down the camera's picture was measured at (px): the
    camera sways; the heads were read where it put them (``CameraSway``)."""
    swayed_frames: int = 0

    def add_sway(self, offset: tuple[int, int]) -> None:
        dx, dy = offset
        self.sway = (max(self.sway[0], abs(dx)), max(self.sway[1], abs(dy)))
        self.swayed_frames += int(dx != 0 or dy != 0)

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

    video = Path(args.video)
    if not video.is_file():
        return _error(f"{video}: no such video file", EXIT_USAGE)
    if getattr(args, "find_heads", False) or not args.config:
        return _find_heads(video, args)
    config = Path(args.config)
    try:
        if not config.is_file():
            raise ConfigError(f"{config}: no such config file")
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
        source = FileSource(
            video, cam.id, pixel_aspect=cam.pixel_aspect_ratio, deinterlace=cam.deinterlace
        )
    except SharpeyesError as e:
        return _error(str(e), EXIT_READ)
    summary = _Summary()
    strips: dict[str, _Strip] = {}
    finders: dict[str, HeadFinder] = {}
    try:
        board = _scan(source.frames(), calib, args, summary, strips, finders=finders)
    except SharpeyesError as e:
        return _error(str(e), EXIT_READ)
    finally:
        source.close()
    if board is None:
        return _error(f"{video}: no frames decoded", EXIT_READ)
    problems = check_problems(board, summary.fault_problems())
    suggestions = suggest_regions(board, finders, problems)
    notes = source.ending_notes()  # a truncated file, damaged frames: what was not read
    _report(
        sys.stdout,
        summary,
        problems,
        external,
        bool(args.json),
        suggestions=suggestions,
        notes=notes,
    )
    return _finish(args, strips, problems)


def _finish(args: argparse.Namespace, strips: dict[str, _Strip], problems: dict[str, str]) -> int:
    """Write the strip (``--png``); the exit status."""
    if args.png:
        try:
            _write_strip(Path(args.png), strips)
        except (OSError, ValueError) as e:
            return _error(f"{args.png}: {e}", EXIT_USAGE)
    if problems and getattr(args, "strict", False):
        return EXIT_PROBLEMS
    return EXIT_OK


def _find_heads(video: Path, args: argparse.Namespace) -> int:
    """``--find-heads``: propose the video's signal heads (YAML to paste, or JSON; ``--png``)."""
    if not getattr(args, "find_heads", False):
        return _error("--config CAMERA.yaml is needed (or --find-heads)", EXIT_USAGE)
    configured = _configured_heads(args.config)
    if isinstance(configured, int):
        return configured
    try:
        finder, last, frames = _sample_for_heads(video, args)
    except SharpeyesError as e:
        return _error(str(e), EXIT_READ)
    if finder is None:
        return _error(f"{video}: no frames decoded", EXIT_READ)
    props = finder.proposals()
    matches = _match_configured(configured, props, finder.frame_size)
    out: TextIO = sys.stdout
    span = (finder.last_pts or 0.0) - (finder.first_pts or 0.0)
    if args.json:
        row = {
            "find_heads": {
                "video": str(video),
                "frame_size": list(finder.frame_size),
                "frames": frames,
                "samples": finder.samples,
                "duration_s": round(span, 3),
                "proposals": [p.as_dict() for p in props],
                "configured": matches,
            }
        }
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        out.write(_heads_yaml(video, props, finder, (frames, span), matches))
    if args.png and last is not None:
        try:
            _write_heads_png(Path(args.png), last, props)
        except (OSError, ValueError) as e:
            return _error(f"{args.png}: {e}", EXIT_USAGE)
    if getattr(args, "strict", False) and not any(p.kind == "head" for p in props):
        return EXIT_PROBLEMS
    return EXIT_OK


_Configured = list[tuple[str, tuple[tuple[float, float], tuple[float, float]]]]


def _configured_heads(config: str | None) -> _Configured | int:
    """The heads of an optional config (id, region), or an exit status after an error."""
    from sharpeyes.pipeline.config import load_camera_config

    if not config:
        return []
    if not Path(config).is_file():
        return _error(f"{config}: no such config file", EXIT_USAGE)
    try:
        cam = load_camera_config(Path(config))
    except ConfigError as e:
        return _error(str(e).replace("\n", "; "), EXIT_USAGE)
    if cam.intersection is None:
        return []
    return [(h.id, h.region) for h in cam.intersection.signal_heads]


def _sample_for_heads(
    video: Path, args: argparse.Namespace
) -> tuple[HeadFinder | None, ImageBGR | None, int]:
    """Feed the video to a :class:`HeadFinder`: (finder, the last sampled frame when a
    ``--png`` is wanted, frames decoded). Raises :class:`SharpeyesError` on unreadable video."""
    from sharpeyes.streams.file_source import FileSource

    source = FileSource(video, "find-heads")
    finder: HeadFinder | None = None
    last: ImageBGR | None = None
    frames = 0
    max_frames = int(getattr(args, "max_frames", 0) or 0)
    try:
        for frame in source.frames():
            if max_frames and frames >= max_frames:
                break
            frames += 1
            if finder is None:
                h, w = frame.image.shape[:2]
                finder = HeadFinder((w, h))
            if finder.offer(frame.image, frame.pts) and args.png:
                last = frame.image.copy()
    finally:
        source.close()
    return finder, last, frames


def _box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _match_configured(
    configured: _Configured,
    props: list[HeadProposal],
    frame_size: tuple[int, int],
) -> dict[str, dict[str, Any]]:
    """Each configured head: the proposal overlapping it most (index, IoU)."""
    w, h = frame_size
    out: dict[str, dict[str, Any]] = {}
    for head_id, ((x0, y0), (x1, y1)) in configured:
        box = (round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h))
        best = max(
            ((i, _box_iou(box, p.box)) for i, p in enumerate(props) if p.kind != "countdown"),
            key=lambda t: t[1],
            default=None,
        )
        if best is None or best[1] <= 0:
            out[head_id] = {"proposal": None, "iou": 0.0}
        else:
            out[head_id] = {"proposal": best[0], "iou": round(best[1], 3)}
    return out


def _heads_yaml(
    video: Path,
    props: list[HeadProposal],
    finder: HeadFinder,
    seen: tuple[int, float],
    matches: dict[str, dict[str, Any]],
) -> str:
    w, h = finder.frame_size
    frames, span = seen
    lines = [
        f"# signal heads found in {video.name} ({w}x{h}; {frames} frames, {span:.1f} s, "
        f"{finder.samples} sampled) by sharpeyes signal-check --find-heads",
        "# Paste into the camera config (signal_heads: goes under intersection:) and set each",
        "# head's group (the signal group it shows).",
        "# Commented-out entries are weak candidates: check them before use.",
    ]
    heads = [p for p in props if p.kind == "head"]
    weak = [p for p in props if p.kind == "one-colour"]
    shows = [p for p in props if p.kind == "countdown"]
    if not heads and not weak:
        lines.append("# no signal head found (no static lamp lit in red / amber / green)")
    lines.append("  signal_heads:" if heads else "  # signal_heads:")
    for n, p in enumerate(heads + weak, start=1):
        entry = p.yaml_entry(f"head_{n}", "main").replace(
            "      group: main", "      group: main   # set: the signal group this head shows"
        )
        lines.append(
            f"    # head_{n}: {p.kind}, score {p.score:.2f}: {p.note}; seen {p.evidence()}"
        )
        if p.kind != "head":
            entry = "\n".join("    # " + ln[4:] for ln in entry.splitlines())
        lines.append(entry)
    for p in shows:
        x0, y0, x1, y1 = p.box
        lines.append(f"# not a head: ({x0},{y0})-({x1},{y1}) px, {p.note}; seen {p.evidence()}")
    for head_id, m in matches.items():
        k = m["proposal"]
        where = "no proposal overlaps it" if k is None else f"proposal {k + 1} (IoU {m['iou']:.2f})"
        lines.append(f"# configured head {head_id}: {where}")
    return "\n".join(lines) + "\n"


def _write_heads_png(path: Path, image: ImageBGR, props: list[HeadProposal]) -> None:
    img = image.copy()
    colours = {"head": (60, 220, 60), "one-colour": (0, 215, 255), "countdown": (200, 200, 200)}
    n = 0
    for p in props:
        x0, y0, x1, y1 = p.box
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), colours[p.kind], 1)
        if p.kind == "countdown":
            label = "countdown"
        else:
            n += 1
            label = f"head_{n} {p.score:.2f}"
        cv2.putText(img, label, (x0, max(10, y0 - 3)), _FONT, 0.35, colours[p.kind], 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise ValueError("could not write the image (use a .png name)")


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


def suggest_regions(
    board: SignalBoard, finders: dict[str, HeadFinder], problems: dict[str, str]
) -> dict[str, HeadProposal | None]:
    """For each video head with a problem of its own, where its lamps were seen to light
    inside and around its region (a proposal from :func:`pipeline.signal_locate.suggest_region`),
    or None when nothing lamp-like lit there; heads whose lamps already light in the region as
    configured are left out."""
    out: dict[str, HeadProposal | None] = {}
    for vh in board.heads:
        finder = finders.get(vh.head.id)
        if vh.head.id not in problems or finder is None:
            continue
        best = suggest_region(finder.proposals(), vh.box)
        same = best is not None and (
            best.box == vh.box
            and best.layout == vh.head.layout
            and list(best.lamps) == list(vh.head.lamps)
        )
        if not same:
            out[vh.head.id] = best
    return out


def suggestion_text(p: HeadProposal) -> str:
    """One warning line: the corrected region to paste, layout, lamps and the evidence."""
    lamps = ", ".join(p.lamps)
    return (
        f"lamps were seen lighting at ({p.box[0]},{p.box[1]})-({p.box[2]},{p.box[3]}) px "
        f"({p.note}; seen {p.evidence()}; score {p.score:.2f}) — suggested: "
        f"region: {p.region_yaml()}  layout: {p.layout}  lamps: [{lamps}]"
    )


def _scan(
    frames: Iterator[Frame],
    calib: IntersectionCalibration,
    args: argparse.Namespace,
    summary: _Summary,
    strips: dict[str, _Strip],
    *,
    finders: dict[str, HeadFinder] | None = None,
) -> SignalBoard | None:
    """Feed every frame to a signal board, printing per-frame lines; the board (None: no
    frame). ``finders`` gets a :class:`HeadFinder` per video head, looking inside and around
    its region (for :func:`suggest_regions`)."""
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
                if finders is not None:
                    roi = expand_box(vh.box, SEARCH_SCALE, (w, h))
                    finders[vh.head.id] = HeadFinder((w, h), roi)
        for finder in (finders or {}).values():
            finder.offer(frame.image, frame.pts)
        states = {g: st for g, st in board.update(frame).items() if g in video_groups}
        summary.add(states, frame.pts)
        if board.heads:
            summary.add_sway(board.heads[0].offset)
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
        if board.heads and board.heads[0].offset != (0, 0):
            row["sway"] = list(board.heads[0].offset)  # the heads were read this far away
        if frame.corrupt:
            row["damaged"] = True  # not read: the states carry on from the last whole picture
        return json.dumps(row, ensure_ascii=False)
    cols = "  ".join(f"{g}={c}" for g, c in groups.items())
    raw = " ".join(f"{k}:{v}" for k, v in heads.items())
    damaged = "   damaged picture: not read" if frame.corrupt else ""
    return f"{frame.seq:6d} {frame.pts:8.2f}s  {cols}   [{raw}]{damaged}"


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
    *,
    suggestions: dict[str, HeadProposal | None] | None = None,
    notes: list[str] | None = None,
) -> None:
    span = s.last_pts - (s.first_pts or 0.0)
    for note in notes or []:
        sys.stderr.write(f"warning: {note}\n")
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
                "source_notes": list(notes or []),
                "sway_px": {"across": s.sway[0], "up_down": s.sway[1], "frames": s.swayed_frames},
            }
        }
        if suggestions:
            summary["summary"]["suggestions"] = {
                k: None
                if p is None
                else p.as_dict() | {"region_line": f"region: {p.region_yaml()}"}
                for k, p in suggestions.items()
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
        if s.swayed_frames:
            out.write(
                f"camera sway: up to {s.sway[0]} px across and {s.sway[1]} px up and down on "
                f"{s.swayed_frames} of {s.frames} frames — the heads were followed (and live, "
                "the picture is moved back); a mount that sways this much is worth fixing\n"
            )
    for key, msg in problems.items():
        sys.stderr.write(f"warning: {key}: {msg}\n")
        if suggestions and key in suggestions:
            p = suggestions[key]
            hint = NO_LAMP_NEAR if p is None else suggestion_text(p)
            sys.stderr.write(f"warning: {key}: {hint}\n")


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
