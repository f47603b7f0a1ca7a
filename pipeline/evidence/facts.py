"""What each evidence image says: overlay lines and the vehicle box, from the event and frame.

With an :class:`AnalysedFrame` (what the runner hands the builder) every image states its own
facts: :func:`image_facts` takes the subject's box from that frame's tracks (by track id), the
signal state of the violation's group from that frame's signal states, and which side of the
calibrated stop line the subject is on; :func:`incomplete_parts` says what the three images
fail to show. Without one (plain frames), vehicle boxes come from ``event.extra`` entries
``evidence_box_1`` … ``evidence_box_3``
(``"x1,y1,x2,y2"`` in frame pixels, one per evidence time) when the rule provides them;
otherwise the event's best box is used in its own frame and, in the others, moved along the
trajectory (bottom-centre anchor interpolated at the frame's time), keeping its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.evidence.images import OverlayLine, beijing_time_text
from sharpeyes.pipeline.evidence.type_facts import CHECKS, type_problems
from sharpeyes.pipeline.rules.charge import violation_type
from sharpeyes.pipeline.rules.geometry import WHEEL_LINE_CLASSES, OrientedLine
from sharpeyes.pipeline.types import (
    AnalysedFrame,
    Anchor,
    Box,
    Event,
    EventType,
    Frame,
    LampColor,
    Plate,
    SignalState,
    Tracks,
)

DEFAULT_CODE = "1625"
CODE_TEXT = {
    "1625": "驾驶机动车违反道路交通信号灯通行",
    "8901": "行人违反道路交通信号灯通行",  # a local code (Road Traffic Safety Law art. 89)
    # the violation suite's default codes (docs/VIOLATIONS.md, "Codes")
    "1301": "机动车逆向行驶",
    "1208": "不按所需行进方向驶入导向车道",
    "1344": "机动车违反禁令标志指示",
    "1345": "机动车违反禁止标线指示",
    "1039": "机动车违反规定停放、临时停车",
    "1357": "行经人行横道未按规定避让行人",
}
TYPE_ZH = {
    "wrong_way": "逆行",
    "lane_direction": "不按导向车道行驶",
    "no_turn": "违反禁令标志",
    "solid_line": "压实线/违法变道",
    "illegal_parking": "违法停车",
    "yield_pedestrian": "不礼让行人",
}
COLOR_ZH = {
    LampColor.RED: "红灯",
    LampColor.AMBER: "黄灯",
    LampColor.GREEN: "绿灯",
    LampColor.OFF: "灭灯",
    LampColor.UNKNOWN: "未知",
}
MOVEMENT_ZH = {
    "straight": "直行",
    "left": "左转",
    "right": "右转",
    "u_turn": "掉头",
    "crossing": "过街",  # a pedestrian on a crosswalk
}
DIRECTION_ZH = {
    "north": "由南向北",
    "south": "由北向南",
    "east": "由西向东",
    "west": "由东向西",
    "northbound": "由南向北",
    "southbound": "由北向南",
    "eastbound": "由西向东",
    "westbound": "由东向西",
}
PLATE_COLOR_ZH = {"black": "黑", "blue": "蓝", "green": "绿", "white": "白", "yellow": "黄"}
BEST_PTS_TOLERANCE_S = 0.002


@dataclass(frozen=True, slots=True)
class CameraFacts:
    """The camera fields shown on every image."""

    device_id: str
    location: str
    violation_code: str


def seconds_since_red(event: Event, pts: float) -> float | None:
    """Seconds the signal had been red at ``pts`` (from the crossing time and its red age)."""
    v = event.violation
    if v is None:
        return None
    return round(pts - (v.crossed_stop_line_pts - v.seconds_since_red), 3)


def violation_time_ms(event: Event) -> int | None:
    """The violation's time (the stop-line crossing, or the crosswalk entry) in UTC epoch ms:
    ``crossed_stop_line_pts`` mapped to wall time with the stream's own pts → wall offset."""
    v = event.violation
    if v is None:
        return None
    return event.first_seen_ms + round((v.crossed_stop_line_pts - event.first_pts) * 1000)


def _parse_box(text: str, w: int, h: int) -> Box | None:
    try:
        x1, y1, x2, y2 = (float(t) for t in text.split(","))
    except ValueError:
        return None
    return Box(x1, y1, x2, y2, w, h) if x2 > x1 and y2 > y1 else None


def _moved_box(best: Box, event: Event, pts: float) -> Box:
    ts = np.array([p.pts for p in event.trajectory])
    ax = float(np.interp(pts, ts, [p.x for p in event.trajectory]))
    ay = float(np.interp(pts, ts, [p.y for p in event.trajectory]))
    half_w, height = (best.x2 - best.x1) / 2, best.y2 - best.y1
    return Box(ax - half_w, ay - height, ax + half_w, ay, best.frame_w, best.frame_h)


def vehicle_boxes(event: Event, frames: Sequence[Frame]) -> list[Box | None]:
    """One box (or None) per evidence frame, in that frame's pixels."""
    extra = dict(event.extra)
    out: list[Box | None] = []
    for i, f in enumerate(frames, start=1):
        given = extra.get(f"evidence_box_{i}")
        if given is not None:
            out.append(_parse_box(given, f.width, f.height))
            continue
        best = event.best_box
        if best is None:
            out.append(None)
        elif event.best_pts is not None and abs(f.pts - event.best_pts) <= BEST_PTS_TOLERANCE_S:
            out.append(best)
        elif event.trajectory:
            out.append(_moved_box(best, event, f.pts))
        else:
            out.append(None)
    return out


def _direction(event: Event) -> tuple[str, str]:
    v = event.violation
    raw = event.direction or (v.approach if v is not None else None) or "-"
    zh = DIRECTION_ZH.get(raw.lower(), raw)
    if v is not None and v.movement:
        return f"{zh} {MOVEMENT_ZH.get(v.movement, v.movement)}", f"{raw} {v.movement}"
    return zh, raw


def subject_has_plate(event: Event) -> bool:
    """Whether the charged subject carries a plate: every vehicle (motorbikes included, and a
    rider charged for the two-wheeler it rode) — not a pedestrian."""
    return event.type is not EventType.PEDESTRIAN_RED_LIGHT


def _plate_text(event: Event, plate: Plate | None) -> tuple[str, str]:
    if not subject_has_plate(event):
        return "对象: 行人", "Subject: pedestrian"
    if plate is None or plate.text is None:
        return "号牌: 未识别", "Plate: unreadable"
    color = plate.color or ""
    return f"号牌: {plate.text} {PLATE_COLOR_ZH.get(color, color)}", f"Plate: {plate.text} {color}"


def _signal_segments(
    event: Event, frame: Frame, signal: SignalState | None
) -> tuple[tuple[str, str], tuple[str, str]]:
    """(信号灯状态, 红灯已亮) segments: of ``signal`` (this frame's state) when given; otherwise
    the violation's colour with the red age derived from the crossing (legacy, plain frames)."""
    if signal is not None:
        color, since = signal.color, round(signal.duration, 3)
        fault, seen = signal_fault(signal), signal.onset_seen
    else:
        v = event.violation
        color = v.signal_color if v is not None else LampColor.UNKNOWN
        red_age = seconds_since_red(event, frame.pts)
        since, fault = (red_age if red_age is not None else 0.0), None
        seen = dict(event.extra).get("red_onset") != "not_seen"
    fault_zh, fault_en = (f" 故障:{fault}", f" fault: {fault}") if fault else ("", "")
    state = (
        f"信号灯状态: {COLOR_ZH[color]}{fault_zh}",
        f"Signal: {color.value}{fault_en}",
    )
    if color is LampColor.RED and (signal is not None or event.violation is not None):
        at_least = "" if seen else "≥"  # the red was already on when first seen: a lower bound
        return state, (f"红灯已亮: {at_least}{since:.2f}秒", f"red for {at_least}{since:.2f}s")
    return state, ("红灯已亮: -", "red for: -")


def overlay_lines(
    event: Event,
    frame: Frame,
    cam: CameraFacts,
    plate: Plate | None,
    *,
    index: int,
    total: int,
    signal: SignalState | None = None,
) -> list[OverlayLine]:
    """The four overlay lines of evidence image ``index`` (1-based) of ``total``.

    ``signal`` is the violation group's state *in this frame*; without it the violation's
    colour is shown (plain frames only: the builder always passes the frame's own state).
    """
    when = beijing_time_text(frame.wall_time_ms)
    v = event.violation
    lane = str(v.lane_no) if v is not None and v.lane_no is not None else "-"
    state, red_age = _signal_segments(event, frame, signal)
    vtype = violation_type(event)
    if vtype in TYPE_ZH:  # the suite: its name where red-light records show the red age
        red_age = (f"违法行为: {TYPE_ZH[vtype]}", f"Violation: {vtype}")
        if v is not None and not v.signal_group:  # no signal group governs it
            state = ("信号灯状态: -", "Signal: -")
    code = v.code if v is not None and v.code else cam.violation_code
    dir_zh, dir_en = _direction(event)
    loc = cam.location or "-"
    return [
        OverlayLine(
            (
                (f"[{index}/{total}] 时间(北京时间): {when}", f"[{index}/{total}] UTC+8: {when}"),
                state,
                red_age,
            )
        ),
        OverlayLine(((f"地点: {loc}", f"Location: {loc}"), (f"方向: {dir_zh}", f"Dir: {dir_en}"))),
        OverlayLine(
            (
                (f"车道: {lane}", f"Lane: {lane}"),
                (f"设备编号: {cam.device_id}", f"Device: {cam.device_id}"),
            )
        ),
        OverlayLine(
            (
                _plate_text(event, plate),
                (f"违法代码: {code} {CODE_TEXT.get(code, '')}".rstrip(), f"Code: {code}"),
            )
        ),
    ]


Side = Literal["before", "on", "after"]
PIXEL_LINE = tuple[tuple[float, float], tuple[float, float]]


def signal_fault(state: SignalState) -> str | None:
    """Why ``state`` cannot be relied on (a reader fault, an unreadable or dark lamp), or None."""
    if state.fault:
        return state.fault
    if state.color in (LampColor.OFF, LampColor.UNKNOWN):
        return f"lamp {state.color.value}"
    return None


@dataclass(frozen=True, slots=True)
class StopLine:
    """The violation approach's stop and entry lines in frame pixels, oriented so that positive
    signed distance is past the line in the direction of travel."""

    stop: PIXEL_LINE
    entry: PIXEL_LINE | None
    forward: tuple[float, float]
    margin: float
    wheel_lines: bool = True
    """A car's side of the line is its wheel line's (the camera's anchor is the box bottom)."""

    @classmethod
    def of(
        cls, calib: IntersectionCalibration | None, approach: str | None, size: tuple[int, int]
    ) -> StopLine | None:
        if calib is None or approach is None:
            return None
        ap = next((a for a in calib.approaches if a.id == approach), None)
        if ap is None:
            return None
        w, h = size

        def px(rel: tuple[tuple[float, float], tuple[float, float]]) -> PIXEL_LINE:
            return (rel[0][0] * w, rel[0][1] * h), (rel[1][0] * w, rel[1][1] * h)

        fx = fy = 0.0
        for ln in ap.lanes:
            (ax, ay), (bx, by) = px(ln.travel)
            n = max(1e-9, float(np.hypot(bx - ax, by - ay)))
            fx, fy = fx + (bx - ax) / n, fy + (by - ay) / n
        entry = px(ap.entry_line) if ap.entry_line else None
        margin = calib.line_margin * float(np.hypot(w, h))
        wheels = calib.anchor is Anchor.BOTTOM_CENTER
        return cls(px(ap.stop_line), entry, (fx, fy), margin, wheels)

    def distance(self, line: PIXEL_LINE, p: tuple[float, float]) -> float:
        (ax, ay), (bx, by) = line
        nx, ny = -(by - ay), bx - ax
        n = max(1e-9, float(np.hypot(nx, ny)))
        nx, ny = nx / n, ny / n
        if nx * self.forward[0] + ny * self.forward[1] < 0:
            nx, ny = -nx, -ny
        return (p[0] - ax) * nx + (p[1] - ay) * ny

    def side(self, box: Box, class_id: int | None = None) -> Side:
        """Side of the box's bottom centre (a car's wheel line middle, as the red-light rule
        judges it: :meth:`OrientedLine.wheel_point`): ``on`` within the line margin."""
        point = ((box.x1 + box.x2) / 2, box.y2)
        if self.wheel_lines and class_id in WHEEL_LINE_CLASSES:
            line = OrientedLine.create(self.stop[0], self.stop[1], self.forward)
            point = line.wheel_point((box.x1, box.y1, box.x2, box.y2))
        d = self.distance(self.stop, point)
        return "before" if d < -self.margin else "after" if d > self.margin else "on"

    def past_entry(self, box: Box) -> bool | None:
        if self.entry is None:
            return None
        return self.distance(self.entry, ((box.x1 + box.x2) / 2, box.y2)) > 0.0


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What one evidence image shows, all of it from its own analysed frame."""

    index: int
    frame: Frame
    box: Box | None
    box_source: Literal["track", "event", "none"]
    signals: dict[str, SignalState]
    group: str | None
    side: Side | None
    past_entry: bool | None
    tracks: Tracks | None = None  # every track of this frame (the yield check's pedestrian)

    @property
    def signal(self) -> SignalState | None:
        """The violation group's state in this frame (None: the frame has no state for it)."""
        return None if self.group is None else self.signals.get(self.group)


def track_box(tracks: Tracks, track_id: int | None, w: int, h: int) -> Box | None:
    """The box of ``track_id`` in ``tracks`` (None when that track is not in the frame)."""
    if track_id is None or len(tracks) == 0:
        return None
    idx = np.flatnonzero(tracks.track_id == track_id)
    if len(idx) == 0:
        return None
    x1, y1, x2, y2 = (float(v) for v in tracks.xyxy[int(idx[0])])
    return Box(x1, y1, x2, y2, w, h)


def image_facts(
    event: Event,
    frames: Sequence[AnalysedFrame],
    line: StopLine | None,
) -> list[ImageFacts]:
    """The facts of every evidence image (box by track id; the event's boxes as a fallback)."""
    fallback = vehicle_boxes(event, [af.frame for af in frames])
    group = event.violation.signal_group if event.violation is not None else None
    out = []
    for i, (af, fb) in enumerate(zip(frames, fallback, strict=True), start=1):
        f = af.frame
        box = track_box(af.tracks, event.track_id, f.width, f.height)
        source: Literal["track", "event", "none"] = "track"
        if box is None:
            box, source = fb, ("event" if fb is not None else "none")
        side = line.side(box, event.class_id) if line is not None and box is not None else None
        past = line.past_entry(box) if line is not None and box is not None else None
        facts = ImageFacts(i, f, box, source, dict(af.signals), group, side, past, af.tracks)
        out.append(facts)
    return out


def incomplete_parts(
    event: Event, images: Sequence[ImageFacts], plate: Plate
) -> list[dict[str, str]]:
    """What keeps the record from proving the violation by itself: ``[{part, reason}]``."""
    parts: list[dict[str, str]] = []
    if plate.text is None and subject_has_plate(event):
        parts.append({"part": "plate", "reason": "plate unreadable in every evidence image"})
    notes = dict(event.extra)
    red_light = event.violation is not None and event.violation.approach is not None
    vtype = violation_type(event)
    suite = vtype in CHECKS  # signal-independent: no signal state needed in its images
    for im in images:
        parts.extend(
            {"part": f"image_{im.index}", "reason": r}
            for r in _image_problems(im, notes, red_light, signal_needed=not suite)
        )
    parts.extend(
        {"part": f"image_{i}" if i else "images", "reason": r}
        for i, r in type_problems(vtype, event, images)
    )
    if len(images) < 3:
        parts.append({"part": f"image_{len(images) + 1}", "reason": "no analysed frame kept"})
    return parts


def _image_problems(
    im: ImageFacts, notes: dict[str, str], red_light: bool, *, signal_needed: bool = True
) -> list[str]:
    """Why image ``im`` does not show what its stage should (empty: it does). The violation
    suite's types (``signal_needed`` False) do not depend on a signal state."""
    out: list[str] = []
    st = im.signal
    if signal_needed and st is None:
        out.append("no signal state for the group in this frame")
    elif signal_needed and st is not None and (fault := signal_fault(st)) is not None:
        out.append(f"signal fault in the window: {fault}")
    if im.box is None:
        out.append("the subject is not in this frame")
    elif im.box_source != "track":
        out.append("subject box estimated (track not in frame)")
    if not red_light or im.side is None:
        return out
    if note := notes.get(f"evidence_note_{im.index}"):
        out.append(note)
    elif (problem := _stage_problem(im)) is not None:
        out.append(problem)
    return out


def _stage_problem(im: ImageFacts) -> str | None:
    """Why red-light image ``im`` does not show its stage: 1 before the line on red, 2 over it
    on red (an unknown or faulted state is listed as such already), 3 past the entry line."""
    st = im.signal
    not_red = st is not None and st.color is not LampColor.RED
    if im.index == 1 and im.side != "before":
        return f"subject {im.side} the stop line, not before"
    if im.index == 1 and st is not None and not_red:
        return f"signal {st.color.value}, not red"
    if im.index == 2 and im.side == "before":
        return "subject still before the stop line"
    if im.index == 2 and st is not None and not_red and signal_fault(st) is None:
        return f"signal {st.color.value}, not red"  # e.g. the light changed at the crossing
    if im.index == 3 and im.past_entry is False:
        return "subject not past the entry line"
    return None
