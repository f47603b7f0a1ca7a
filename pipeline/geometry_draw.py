"""The one drawing of a camera's configured geometry over a picture of the camera.

Stop lines, entry lines, lanes (polygon, number, travel arrow, movements and their signal
groups), crosswalks (hatched, with their axis), the intersection zone, wrong-way and no-parking
zones, solid lines, signal-head regions and flow zones, each labelled — in Chinese where a CJK
font is found (the evidence overlays' finder, :func:`pipeline.evidence.images.find_cjk_font`),
else in English — with a legend panel on the right: what each colour is, the problems found
(config keys) and the pixel coordinates of the key points.

Used by ``sharpeyes camera-check --png`` (over the median of a few frames, with observed track
paths) and by the service's ``GET /api/v1/cameras/{id}/geometry.png`` (over the camera's latest
frame, or :func:`neutral_canvas` before the first one). Frames narrower than :data:`CANVAS_W`
are scaled up to it so that labels stay readable; the legend adds :data:`LEGEND_W` pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from sharpeyes.pipeline.evidence.images import find_cjk_font, font_status
from sharpeyes.pipeline.geometry_check import NOMINAL_SIZE, Finding, TrackPath, fmt_px, to_px
from sharpeyes.pipeline.types import ImageBGR

if TYPE_CHECKING:
    from sharpeyes.pipeline.calibration import IntersectionCalibration
    from sharpeyes.pipeline.config import CameraConfig
    from sharpeyes.pipeline.flow import FlowConfig

__all__ = [
    "CANVAS_W",
    "LEGEND_W",
    "NEUTRAL_GREY",
    "key_points",
    "neutral_canvas",
    "picture_size",
    "render_picture",
    "write_picture",
]

MAX_PATHS = 80  # track paths drawn on the picture
CANVAS_W = 1280  # small frames are scaled up to this width so labels stay readable
LEGEND_W = 470
NEUTRAL_GREY = 96  # the canvas drawn on when there is no picture of the camera
PANEL_GREY = 32

Color = tuple[int, int, int]
STOP = (40, 40, 255)
ENTRY = (0, 160, 255)
CROSSWALK = (255, 255, 255)
AXIS = (255, 200, 0)
ZONE = (0, 230, 255)
HEAD = (60, 255, 60)
WRONG_WAY = (255, 80, 200)
PARKING = (180, 110, 255)
SOLID = (0, 215, 255)
FLOW = (220, 220, 40)
TRACK = (225, 225, 225)
LANE_COLORS: tuple[Color, ...] = (  # no red, orange or yellow: those are lines and zones
    (255, 140, 60),
    (150, 240, 130),
    (255, 150, 200),
    (140, 180, 210),
)
MOVEMENT_ZH = {"straight": "直行", "left": "左转", "right": "右转", "u_turn": "掉头"}


# -- key points ------------------------------------------------------------------------------


def key_points(cam: CameraConfig, size: tuple[int, int], *, chinese: bool = False) -> list[str]:
    """The key points of the geometry in pixels, one line each (so a fix can be typed); the
    words in Chinese with ``chinese`` (ids, numbers and pixels the same)."""
    t = _zh if chinese else _en
    out = []
    if cam.intersection is not None:
        out = _intersection_points(cam.intersection, size, t)
    if cam.flow is not None:
        for fl in cam.flow.lanes:
            tr = f", {t('travel')} {_seg(fl.travel, size)}" if fl.travel is not None else ""
            out.append(
                f"{t('flow lane')} {fl.id} ({t('number')} {fl.number}): "
                f"{t('zone')} {_seg(fl.zone, size)}{tr}"
            )
    return out


KEY_WORDS_ZH = {
    "approach": "进口道",
    "stop line": "停止线",
    "entry line": "入口线",
    "lane": "车道",
    "number": "编号",
    "travel": "行驶方向",
    "crosswalk": "人行横道",
    "axis": "轴线",
    "intersection zone": "路口区域",
    "head": "信号灯",
    "region": "区域",
    "wrong-way zone": "逆行监测区",
    "flow lane": "流量车道",
    "zone": "区域",
}


def _zh(word: str) -> str:
    return KEY_WORDS_ZH[word]


def _en(word: str) -> str:
    return word


def _seg(points: Sequence[tuple[float, float]], size: tuple[int, int]) -> str:
    return " → ".join(fmt_px(to_px(p, size)) for p in points)


def _intersection_points(
    calib: IntersectionCalibration, size: tuple[int, int], t: Callable[[str], str] = _en
) -> list[str]:
    out: list[str] = []
    for ap in calib.approaches:
        out.append(f"{t('approach')} {ap.id}: {t('stop line')} {_seg(ap.stop_line, size)}")
        if ap.entry_line is not None:
            out.append(f"{t('approach')} {ap.id}: {t('entry line')} {_seg(ap.entry_line, size)}")
        for ln in ap.lanes:
            out.append(
                f"{t('lane')} {ln.id} ({t('number')} {ln.number}): "
                f"{t('travel')} {_seg(ln.travel, size)}"
            )
    for cw in calib.crosswalks:
        out.append(f"{t('crosswalk')} {cw.id}: {t('axis')} {_seg(cw.axis, size)}")
    if calib.intersection_zone is not None:
        out.append(f"{t('intersection zone')}: {_seg(calib.intersection_zone, size)}")
    for h in calib.signal_heads:
        out.append(
            f"{t('head')} {h.id} ({h.group}, {h.layout}): {t('region')} {_seg(h.region, size)}"
        )
    if calib.wrong_way is not None:
        for z in calib.wrong_way.zones:
            out.append(f"{t('wrong-way zone')} {z.id}: {t('travel')} {_seg(z.travel, size)}")
    return out


# -- picture ---------------------------------------------------------------------------------


@dataclass
class _Label:
    text: str
    at: tuple[int, int]
    color: Color
    size: int


@dataclass
class _Canvas:
    img: ImageBGR
    scale: float
    chinese: bool
    labels: list[_Label] = field(default_factory=list)

    def p(self, rel: tuple[float, float]) -> tuple[int, int]:
        h, w = self.img.shape[:2]
        return round(rel[0] * w), round(rel[1] * h)

    def t(self, zh: str, en: str) -> str:
        return zh if self.chinese else en

    def label(self, text: str, at: tuple[int, int], color: Color, size: int = 18) -> None:
        self.labels.append(_Label(text, at, color, size))

    def poly(self, rel: Sequence[tuple[float, float]], color: Color, fill: float = 0.0) -> None:
        pts = np.asarray([self.p(q) for q in rel], np.int32)
        if fill > 0:
            layer = self.img.copy()
            cv2.fillPoly(layer, [pts], color)
            cv2.addWeighted(layer, fill, self.img, 1 - fill, 0, dst=self.img)
        cv2.polylines(self.img, [pts], True, color, 2, cv2.LINE_AA)

    def dashed(self, a: tuple[int, int], b: tuple[int, int], color: Color, width: int = 2) -> None:
        length = math.hypot(b[0] - a[0], b[1] - a[1])
        n = max(1, int(length // 12))
        for i in range(0, n, 2):
            p = (round(a[0] + (b[0] - a[0]) * i / n), round(a[1] + (b[1] - a[1]) * i / n))
            j = min(n, i + 1)
            q = (round(a[0] + (b[0] - a[0]) * j / n), round(a[1] + (b[1] - a[1]) * j / n))
            cv2.line(self.img, p, q, color, width, cv2.LINE_AA)

    def arrow(
        self, a: tuple[int, int], b: tuple[int, int], color: Color, both: bool = False
    ) -> None:
        length = max(math.hypot(b[0] - a[0], b[1] - a[1]), 1.0)
        tip = min(0.25, 22.0 / length)
        cv2.arrowedLine(self.img, a, b, (0, 0, 0), 6, cv2.LINE_AA, tipLength=tip)
        cv2.arrowedLine(self.img, a, b, color, 3, cv2.LINE_AA, tipLength=tip)
        if both:
            cv2.arrowedLine(self.img, b, a, color, 3, cv2.LINE_AA, tipLength=tip)


def _hatch(canvas: _Canvas, rel: Sequence[tuple[float, float]], color: Color) -> None:
    """Diagonal stripes inside a polygon (crosswalks, no-parking zones); only the polygon's
    bounding box is touched (a whole-frame mask cost ~9 ms a polygon at 1280x720)."""
    h, w = canvas.img.shape[:2]
    pts = np.asarray([canvas.p(q) for q in rel], np.int32)
    bx, by, bw, bh = cv2.boundingRect(pts)
    x0, y0, x1, y1 = max(bx, 0), max(by, 0), min(bx + bw, w), min(by + bh, h)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [pts - np.asarray([x0, y0], np.int32)], 255)
    ys, xs = np.ogrid[y0:y1, x0:x1]
    sel = (mask > 0) & ((xs + ys) % 14 < 3)  # 45° stripes every 14 px, fixed to the frame
    sub = canvas.img[y0:y1, x0:x1]
    sub[sel] = (0.55 * sub[sel] + 0.45 * np.asarray(color)).astype(np.uint8)


def _mid(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (a[0] + b[0]) // 2, (a[1] + b[1]) // 2


Legend = list[tuple[Color, str]]


def _px_text(rel: tuple[float, float], size: tuple[int, int]) -> str:
    return f"({round(rel[0] * size[0])},{round(rel[1] * size[1])})"


def _draw_geometry(c: _Canvas, cam: CameraConfig, size: tuple[int, int]) -> Legend:
    """Draw every element; the legend entries (colour, name) of those present."""
    legend: Legend = []
    calib = cam.intersection
    if calib is not None:
        _draw_parking(c, calib, legend)
        _draw_crosswalks(c, calib, size, legend)
        _draw_zone(c, calib, legend)  # over a no-parking zone drawn on the same polygon
        _draw_wrong_way(c, calib, legend)
        _draw_lanes(c, calib, size, legend)
        _draw_solid_lines(c, calib, legend)
        _draw_heads(c, calib, size, legend)
    if cam.flow is not None:
        _draw_flow(c, cam.flow, legend)
    return legend


def _draw_zone(c: _Canvas, calib: IntersectionCalibration, legend: Legend) -> None:
    if calib.intersection_zone is None:
        return
    corners = [c.p(q) for q in calib.intersection_zone]
    for i, a in enumerate(corners):
        c.dashed(a, corners[(i + 1) % len(corners)], ZONE)
    c.label(c.t("路口区域", "intersection zone"), corners[0], ZONE)
    legend.append((ZONE, c.t("路口区域 (虚线)", "intersection zone (dashed)")))


def _draw_parking(c: _Canvas, calib: IntersectionCalibration, legend: Legend) -> None:
    if calib.parking is None:
        return
    for pz in calib.parking.zones:
        _hatch(c, pz.polygon, PARKING)
        c.poly(pz.polygon, PARKING)
        c.label(c.t(f"禁停区 {pz.id}", f"no parking {pz.id}"), c.p(pz.polygon[0]), PARKING)
    legend.append((PARKING, c.t("禁停区", "no-parking zone")))


def _draw_crosswalks(
    c: _Canvas, calib: IntersectionCalibration, size: tuple[int, int], legend: Legend
) -> None:
    for cw in calib.crosswalks:
        _hatch(c, cw.polygon, CROSSWALK)
        c.poly(cw.polygon, CROSSWALK)
        a, b = c.p(cw.axis[0]), c.p(cw.axis[1])
        c.arrow(a, b, AXIS, both=True)
        c.label(c.t(f"人行横道 {cw.id} ({cw.signal_group})", f"crosswalk {cw.id}"), a, AXIS)
        c.label(_px_text(cw.axis[1], size), b, AXIS, 14)
    if calib.crosswalks:
        legend.append((CROSSWALK, c.t("人行横道 (斜纹)", "crosswalk (hatched)")))
        legend.append((AXIS, c.t("人行横道轴线 (双向箭头)", "crosswalk axis (double arrow)")))


def _draw_wrong_way(c: _Canvas, calib: IntersectionCalibration, legend: Legend) -> None:
    if calib.wrong_way is None:
        return
    for z in calib.wrong_way.zones:
        c.poly(z.polygon, WRONG_WAY, 0.12)
        c.arrow(c.p(z.travel[0]), c.p(z.travel[1]), WRONG_WAY)
        c.label(c.t(f"逆行监测区 {z.id}", f"wrong-way zone {z.id}"), c.p(z.travel[0]), WRONG_WAY)
    legend.append((WRONG_WAY, c.t("逆行监测区 (箭头: 合法方向)", "wrong-way zone (legal way)")))


def _draw_solid_lines(c: _Canvas, calib: IntersectionCalibration, legend: Legend) -> None:
    if calib.solid_lines is None:
        return
    for sl in calib.solid_lines.lines:
        pts = np.asarray([c.p(q) for q in sl.points], np.int32)
        cv2.polylines(c.img, [pts], False, (0, 0, 0), 7, cv2.LINE_AA)
        cv2.polylines(c.img, [pts], False, SOLID, 4, cv2.LINE_AA)
        c.label(c.t(f"实线 {sl.id}", f"solid line {sl.id}"), c.p(sl.points[-1]), SOLID)
    legend.append((SOLID, c.t("实线", "solid line")))


def _draw_heads(
    c: _Canvas, calib: IntersectionCalibration, size: tuple[int, int], legend: Legend
) -> None:
    for h in calib.signal_heads:
        a, b = c.p(h.region[0]), c.p(h.region[1])
        cv2.rectangle(c.img, a, b, (0, 0, 0), 4)
        cv2.rectangle(c.img, a, b, HEAD, 2)
        name = c.t(f"信号灯 {h.id}/{h.group}", f"head {h.id}/{h.group}")
        c.label(name, (a[0], a[1] - 40), HEAD)
        corners = f"{_px_text(h.region[0], size)}-{_px_text(h.region[1], size)}"
        c.label(corners, (a[0], a[1] - 20), HEAD, 14)
    if calib.signal_heads:
        legend.append((HEAD, c.t("信号灯区域 (灯组/相位)", "signal head region (id/group)")))


def _draw_flow(c: _Canvas, flow: FlowConfig, legend: Legend) -> None:
    for fl in flow.lanes:
        c.poly(fl.zone, FLOW, 0.12)
        cen = np.mean([c.p(q) for q in fl.zone], axis=0)
        name = c.t(f"流量车道 {fl.id} #{fl.number}", f"flow lane {fl.id} #{fl.number}")
        c.label(name, (int(cen[0]) - 40, int(cen[1])), FLOW)
        if fl.travel is not None:
            c.arrow(c.p(fl.travel[0]), c.p(fl.travel[1]), FLOW)
    legend.append((FLOW, c.t("流量检测区 (车道号)", "flow zone (lane number)")))


def _draw_lanes(
    c: _Canvas, calib: IntersectionCalibration, size: tuple[int, int], legend: Legend
) -> None:
    def px_text(rel: tuple[float, float]) -> str:
        return _px_text(rel, size)

    k = 0
    for ap in calib.approaches:
        for ln in ap.lanes:
            color = LANE_COLORS[k % len(LANE_COLORS)]
            k += 1
            c.poly(ln.polygon, color, 0.18)
            a, b = c.p(ln.travel[0]), c.p(ln.travel[1])
            c.arrow(a, b, color)
            moves = "/".join(
                c.t(MOVEMENT_ZH[m.value], m.value) + f"({g})" for m, g in ln.movements.items()
            )
            cen = np.mean([c.p(q) for q in ln.polygon], axis=0)
            at = (int(cen[0]) - 30, int(cen[1]) - 10)
            c.label(c.t(f"车道 {ln.id} #{ln.number}", f"lane {ln.id} #{ln.number}"), at, color)
            c.label(moves, (at[0], at[1] + 22), color, 15)
            c.label(px_text(ln.travel[1]), (b[0] + 6, b[1]), color, 14)
        a, b = c.p(ap.stop_line[0]), c.p(ap.stop_line[1])
        cv2.line(c.img, a, b, (0, 0, 0), 7, cv2.LINE_AA)
        cv2.line(c.img, a, b, STOP, 4, cv2.LINE_AA)
        c.label(c.t(f"停止线 {ap.id}", f"stop line {ap.id}"), (a[0], a[1] + 6), STOP)
        c.label(px_text(ap.stop_line[0]), (a[0], a[1] + 28), STOP, 14)
        c.label(px_text(ap.stop_line[1]), (b[0] - 60, b[1] + 8), STOP, 14)
        if ap.entry_line is not None:
            e1, e2 = c.p(ap.entry_line[0]), c.p(ap.entry_line[1])
            c.dashed(e1, e2, ENTRY, 3)
            c.label(c.t(f"入口线 {ap.id}", f"entry line {ap.id}"), (e1[0], e1[1] - 24), ENTRY)
            c.label(px_text(ap.entry_line[1]), (e2[0] - 70, e2[1] - 22), ENTRY, 14)
    if calib.approaches:
        legend.append((STOP, c.t("停止线", "stop line")))
        if any(ap.entry_line is not None for ap in calib.approaches):
            legend.append((ENTRY, c.t("入口线 (虚线)", "entry line (dashed)")))
        legend.append(
            (
                LANE_COLORS[0],
                c.t("车道: 编号, 行驶方向箭头, 导向/相位", "lane: number, travel, movements"),
            )
        )


def _draw_paths(c: _Canvas, paths: Sequence[TrackPath]) -> int:
    """A sample of the longest track paths, faint, with a dot where each ends."""
    moving = sorted(
        (p for p in paths if len(p.points) >= 3),
        key=lambda p: (
            -math.hypot(p.points[-1][0] - p.points[0][0], p.points[-1][1] - p.points[0][1])
        ),
    )[:MAX_PATHS]
    if not moving:
        return 0
    layer = c.img.copy()
    for p in moving:
        pts = np.asarray([[x * c.scale, y * c.scale] for x, y in p.points], np.int32)
        cv2.polylines(layer, [pts], False, TRACK, 2, cv2.LINE_AA)
        cv2.circle(layer, (int(pts[-1][0]), int(pts[-1][1])), 4, TRACK, -1, cv2.LINE_AA)
    cv2.addWeighted(layer, 0.45, c.img, 0.55, 0, dst=c.img)
    return len(moving)


def _legend_panel(
    c: _Canvas,
    height: int,
    *,
    legend: list[tuple[Color, str]],
    cam: CameraConfig,
    size: tuple[int, int],
    findings: Sequence[Finding],
    n_paths: int,
    note: str | None,
) -> tuple[ImageBGR, list[_Label]]:
    panel = np.full((height, LEGEND_W, 3), PANEL_GREY, np.uint8)
    labels: list[_Label] = []
    y = 10
    # wrapped to the panel's width: a long camera id no longer runs off its left edge
    title = c.t(f"标定检查 相机 {cam.id}", f"geometry of camera {cam.id}")
    width = 30 if c.chinese else 36
    for wrapped in _wrap(title, width):
        line = wrapped.strip()
        for k in range(0, len(line), width):  # an id without spaces, cut to the width
            labels.append(_Label(line[k : k + width], (12, y), (255, 255, 255), 22))
            y += 28
    y += 6
    if note:
        for part in _wrap(note, 40 if c.chinese else 58):
            labels.append(_Label(part, (12, y), (0, 200, 255), 16))
            y += 22
        y += 6
    for color, name in legend:
        cv2.rectangle(panel, (12, y + 3), (38, y + 17), color, -1)
        labels.append(_Label(name, (46, y), (235, 235, 235), 17))
        y += 24
    if n_paths:
        cv2.line(panel, (12, y + 10), (38, y + 10), TRACK, 2)
        labels.append(
            _Label(
                c.t(f"车辆轨迹 (抽样 {n_paths} 条)", f"vehicle tracks ({n_paths} shown)"),
                (46, y),
                (235, 235, 235),
                17,
            )
        )
        y += 24
    y += 8
    n = len(findings)
    title = c.t(f"问题: {n} 条 (详见控制台)", f"problems: {n} (see console)")
    labels.append(_Label(title, (12, y), (80, 80, 255) if n else (120, 230, 120), 18))
    y += 24
    for f in findings[:8]:
        labels.append(_Label(f.key, (20, y), (160, 160, 255), 13))
        y += 17
    y += 10
    labels.append(_Label(c.t("关键点 (像素)", "key points (px)"), (12, y), (255, 255, 255), 18))
    y += 24
    for line in key_points(cam, size, chinese=c.chinese):
        for part in _wrap(line, 58):
            labels.append(_Label(part, (16, y), (210, 210, 210), 13))
            y += 16
    if y + 10 > height:
        grow = np.full((y + 10 - height, LEGEND_W, 3), PANEL_GREY, np.uint8)
        panel = np.vstack([panel, grow])
    return panel, labels


def _wrap(text: str, width: int) -> list[str]:
    out, cur = [], ""
    for word in text.split(" "):
        if cur and len(cur) + 1 + len(word) > width:
            out.append(cur)
            cur = "   " + word
        else:
            cur = f"{cur} {word}" if cur else word
    return [*out, cur] if cur else out


def _place(
    box: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]], height: int
) -> int:
    """Vertical shift that moves a label box clear of the labels already placed."""
    x0, y0, x1, y1 = box
    step = y1 - y0 + 3
    for k in range(12):
        dy = step * ((k + 1) // 2) * (1 if k % 2 else -1) if k else 0
        if y0 + dy < 0 or y1 + dy > height:
            continue
        if not any(x0 < b[2] and b[0] < x1 and y0 + dy < b[3] and b[1] < y1 + dy for b in taken):
            return dy
    return 0


def _render_labels(img: ImageBGR, labels: Sequence[_Label], font: Path | None) -> None:
    """Draw every label on a dark box (through Pillow with the evidence font when there is
    one, else ASCII in OpenCV's Hershey font), inside the picture and moved clear of the labels
    drawn before it."""
    h, w = img.shape[:2]
    taken: list[tuple[int, int, int, int]] = []
    if font is not None:
        from PIL import Image, ImageDraw

        rgb = Image.fromarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        draw = ImageDraw.Draw(rgb)
        for lb in labels:
            f = _pil_font(font, lb.size)
            x0, y0, x1, y1 = (int(v) for v in draw.textbbox((0, 0), lb.text, font=f))
            x = min(max(lb.at[0], 2), w - (x1 - x0) - 4)
            y = min(max(lb.at[1], 2), h - (y1 - y0) - 4)
            box = (x + x0 - 2, y + y0 - 2, x + x1 + 2, y + y1 + 2)
            dy = _place(box, taken, h)
            box = (box[0], box[1] + dy, box[2], box[3] + dy)
            taken.append(box)
            draw.rectangle(box, fill=(0, 0, 0))
            draw.text((x, y + dy), lb.text, font=f, fill=lb.color[::-1])
        img[:] = cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR)
        return
    for lb in labels:
        text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in lb.text)
        scale = lb.size / 30.0
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        x = max(2, min(lb.at[0], w - tw - 4))
        y = min(max(lb.at[1], 2), h - th - 8)
        dy = _place((x - 2, y - 1, x + tw + 2, y + th + 3), taken, h)
        taken.append((x - 2, y + dy - 1, x + tw + 2, y + dy + th + 3))
        cv2.rectangle(img, (x - 2, y + dy - 1), (x + tw + 2, y + dy + th + 3), (0, 0, 0), -1)
        org = (x, y + dy + th)
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, lb.color, 1, cv2.LINE_AA)


@cache
def _pil_font(path: Path, size: int) -> Any:
    """A Pillow font, loaded once per file and size (loading a CJK collection takes ms)."""
    from PIL import ImageFont

    return ImageFont.truetype(str(path), size)


def neutral_canvas(size: tuple[int, int] = NOMINAL_SIZE) -> ImageBGR:
    """A plain grey picture of ``size`` (width, height) to draw on when there is no frame."""
    w, h = size
    return np.full((h, w, 3), NEUTRAL_GREY, np.uint8)


def picture_size(frame_size: tuple[int, int], panel_height: int = 0) -> tuple[int, int]:
    """(width, height) of :func:`render_picture`'s result for a frame of ``frame_size``: the
    frame scaled up to at least :data:`CANVAS_W` wide, plus the :data:`LEGEND_W` legend; taller
    only when the legend needs ``panel_height`` pixels."""
    w, h = frame_size
    scale = max(1.0, CANVAS_W / w)
    return round(w * scale) + LEGEND_W, max(round(h * scale), panel_height)


def render_picture(
    background: ImageBGR,
    cam: CameraConfig,
    findings: Sequence[Finding],
    paths: Sequence[TrackPath] = (),
    *,
    note: str | None = None,
    chinese: bool | None = None,
) -> ImageBGR:
    """The geometry drawn over ``background`` (one frame of the camera) with a legend.

    ``paths``: observed track paths, in ``background``'s pixels; ``note``: a line under the
    legend's title (e.g. that there is no picture yet); ``chinese``: labels in Chinese (None:
    when a CJK font is found; without one they are in English anyway)."""
    h, w = background.shape[:2]
    scale = max(1.0, CANVAS_W / w)
    size = (round(w * scale), round(h * scale))
    img = (
        background if scale == 1.0 else cv2.resize(background, size, interpolation=cv2.INTER_CUBIC)
    )
    font, _ = font_status()
    use_chinese = font is not None and chinese is not False
    c = _Canvas(np.array(img, np.uint8, copy=True, order="C"), scale, use_chinese)
    n_paths = _draw_paths(c, paths)
    legend = _draw_geometry(c, cam, (w, h))
    panel, panel_labels = _legend_panel(
        c,
        c.img.shape[0],
        legend=legend,
        cam=cam,
        size=(w, h),
        findings=findings,
        n_paths=n_paths,
        note=note,
    )
    # the CJK font draws English labels too (with its → and ×); Hershey only without one
    font_file = find_cjk_font() if font is not None else None
    _render_labels(c.img, c.labels, font_file)
    _render_labels(panel, panel_labels, font_file)
    body = c.img
    if panel.shape[0] > body.shape[0]:
        pad = np.full((panel.shape[0] - body.shape[0], body.shape[1], 3), PANEL_GREY, np.uint8)
        body = np.vstack([body, pad])
    return np.hstack([body, panel])


def write_picture(
    path: Path,
    background: ImageBGR,
    cam: CameraConfig,
    findings: Sequence[Finding],
    paths: Sequence[TrackPath] = (),
    *,
    chinese: bool | None = None,
) -> None:
    """:func:`render_picture` written to ``path`` (a .png); ValueError when it cannot be."""
    img = render_picture(background, cam, findings, paths, chinese=chinese)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise ValueError("could not write the image (use a .png name)")
