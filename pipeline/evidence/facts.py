"""What each evidence image says: overlay lines and the vehicle box, from the event and frame.

Vehicle boxes come from ``event.extra`` entries ``evidence_box_1`` … ``evidence_box_3``
(``"x1,y1,x2,y2"`` in frame pixels, one per evidence time) when the rule provides them;
otherwise the event's best box is used in its own frame and, in the others, moved along the
trajectory (bottom-centre anchor interpolated at the frame's time), keeping its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sharpeyes.pipeline.evidence.images import OverlayLine, beijing_time_text
from sharpeyes.pipeline.types import Box, Event, Frame, LampColor, Plate

DEFAULT_CODE = "1625"
CODE_TEXT = {"1625": "驾驶机动车违反道路交通信号灯通行"}
COLOR_ZH = {
    LampColor.RED: "红灯",
    LampColor.AMBER: "黄灯",
    LampColor.GREEN: "绿灯",
    LampColor.OFF: "灭灯",
    LampColor.UNKNOWN: "未知",
}
MOVEMENT_ZH = {"straight": "直行", "left": "左转", "right": "右转", "u_turn": "掉头"}
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


def _plate_text(plate: Plate | None) -> tuple[str, str]:
    if plate is None or plate.text is None:
        return "号牌: 未识别", "Plate: unreadable"
    color = plate.color or ""
    return f"号牌: {plate.text} {PLATE_COLOR_ZH.get(color, color)}", f"Plate: {plate.text} {color}"


def overlay_lines(
    event: Event, frame: Frame, cam: CameraFacts, plate: Plate | None, *, index: int, total: int
) -> list[OverlayLine]:
    """The four overlay lines of evidence image ``index`` (1-based) of ``total``."""
    when = beijing_time_text(frame.wall_time_ms)
    v = event.violation
    lane = str(v.lane_no) if v is not None and v.lane_no is not None else "-"
    color = v.signal_color if v is not None else LampColor.UNKNOWN
    since = seconds_since_red(event, frame.pts)
    since_zh = f" 已亮{since:.2f}秒" if since is not None and color is LampColor.RED else ""
    since_en = f" for {since:.2f}s" if since is not None and color is LampColor.RED else ""
    code = v.code if v is not None and v.code else cam.violation_code
    dir_zh, dir_en = _direction(event)
    loc = cam.location or "-"
    return [
        OverlayLine(((f"[{index}/{total}] 北京时间: {when}", f"[{index}/{total}] UTC+8: {when}"),)),
        OverlayLine(((f"地点: {loc}", f"Location: {loc}"), (f"方向: {dir_zh}", f"Dir: {dir_en}"))),
        OverlayLine(
            (
                (f"车道: {lane}", f"Lane: {lane}"),
                (f"设备编号: {cam.device_id}", f"Device: {cam.device_id}"),
                (f"信号: {COLOR_ZH[color]}{since_zh}", f"Signal: {color.value}{since_en}"),
            )
        ),
        OverlayLine(
            (
                _plate_text(plate),
                (f"违法代码: {code} {CODE_TEXT.get(code, '')}".rstrip(), f"Code: {code}"),
            )
        ),
    ]
