"""Geometry checks of a camera's calibration, for installers (``sharpeyes camera-check``).

Two kinds of check, each returning :class:`Finding` objects (a config key and a sentence that
says what is wrong and how to fix it; nothing is printed here):

- :func:`static_checks` — the drawn geometry alone (no video): what ``pipeline/config.py`` and
  ``pipeline/calibration.py`` do not already refuse. They refuse points outside 0–1 (a point
  given in pixels), a lane travel that runs along its stop line or points away from the entry
  line / intersection zone (a reversed travel, stop and entry lines swapped), and lane polygons
  that share any area. Checked here: a travel that does not actually cross its stop line, an
  entry line that crosses the stop line, an intersection zone behind a stop line, a stop line
  that does not span its lanes (or a lane that does not reach it), lane numbers out of
  left-to-right order (``Lane.number``: 1 = leftmost in the driving direction), a crosswalk axis
  outside its polygon or across it instead of kerb to kerb, degenerate or self-intersecting
  polygons, a wrong-way zone's travel outside its zone, a signal head region too large or of a
  shape that does not fit its layout.
- :class:`TrafficObserver` — what tracked vehicles actually do over a stretch of video: per
  lane / zone, the share moving along, against and across its travel arrow; per stop line, the
  crossings in each direction and those outside every lane of the approach. Shares, not counts,
  raise findings, and only above :data:`MIN_TRACKS` tracks ("not enough traffic" otherwise).

Geometry is judged in pixels of the camera's frame (angles and shapes depend on its aspect).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from sharpeyes.pipeline.calibration import (
    Approach,
    Crosswalk,
    IntersectionCalibration,
    Lane,
    SignalHead,
)
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.riders import RiderParams, carrier_ids, rides_along
from sharpeyes.pipeline.types import Anchor, ObjectKind, Tracks, box_anchors

Vec = tuple[float, float]
RelPoint = tuple[float, float]
Lang = Literal["zh", "en"]
"""Language of the texts: every finding and note is written in both (``message`` English,
``message_zh`` Chinese, from the same values)."""

NOMINAL_SIZE = (1600, 900)
"""Frame size assumed when the video's is not known (16:9; head shapes are then not judged)."""
HEAD_MAX_HEIGHT = 0.15
"""A signal head region's longer side above this fraction of the frame height is suspect."""
HEAD_ASPECT = (0.45, 2.2)
"""Accepted (long side / short side) ÷ lamps for a vertical or horizontal head."""
SPAN_MIN = 0.8
"""Share of a lane's width at the stop line the stop line must cover."""
CROSSWALK_ELONGATION = 1.4
"""A crosswalk polygon at least this elongated has a clear kerb-to-kerb (long) direction."""
CROSSWALK_MAX_ANGLE = 35.0
"""Degrees the axis may deviate from the crosswalk's long direction."""
CROSSWALK_MIN_LENGTH = 0.5
"""Share of the crosswalk's length its axis must cover."""
MIN_POLYGON_AREA = 2e-4
"""Polygons smaller than this fraction of the frame are degenerate."""
MIN_TRACKS = 5
"""Moving tracks (or crossings) below which a lane or line has "not enough traffic"."""
AGAINST_SHARE = 0.5
"""A lane where at least this share of moving tracks goes against its arrow is flagged."""
ACROSS_SHARE = 0.5
"""A lane where at least this share of moving tracks moves across its arrow is flagged."""
BACKWARD_SHARE = 2.0 / 3.0
"""A stop line that at least this share of crossing tracks crosses backwards is flagged (from
a third, a note: oncoming traffic crossing a stop line drawn over the centre line)."""
OUTSIDE_SHARE = 0.3
"""A stop line where at least this share of forward crossings is outside the lanes is flagged."""
MIN_RULES_FPS = 3.0
"""Analysed frames a second below which the intersection rules cannot time a crossing: hanoi_b
(``sharpeyes analyze … --fps F``) 15/15 runners at 3, 12/15 at 2, 9/15 and one crossing
mistimed by a second at 1.5 (``docs/RED_LIGHT_RESULTS.md``)."""
ALONG_COS = math.cos(math.radians(60.0))
"""A track moves along (against) a travel arrow within 60° of it (of its reverse)."""
MIN_MOVE = 0.02
"""Net motion inside a region (fraction of the frame diagonal) for a track to count as moving."""
VEHICLE_KINDS = (ObjectKind.MOTOR_VEHICLE, ObjectKind.NON_MOTOR)
RIDER_WINDOW_S = 1.0
"""A person counts as a two-wheeler seen only by its rider when, over some stretch of at least
this many seconds inside a lane (or of its whole path there, when shorter), it moves like a
vehicle (:func:`pipeline.riders.rides_along`, either way along the arrow): a rider who waited
at the red light still counts, a pedestrian never does."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: the config key it concerns and what to do about it, in English and in
    Chinese (both built from the same values: the same ids, numbers and pixel coordinates)."""

    key: str
    message: str
    message_zh: str

    def text(self, lang: Lang = "en") -> str:
        return self.message_zh if lang == "zh" else self.message

    def line(self, lang: Lang = "en") -> str:
        return f"{self.key}: {self.text(lang)}"


@dataclass(frozen=True, slots=True)
class Note:
    """An observation that is not a problem (e.g. a lane shared with oncoming traffic)."""

    text: str
    text_zh: str

    def in_lang(self, lang: Lang = "en") -> str:
        return self.text_zh if lang == "zh" else self.text


# -- vector helpers (pixels) -----------------------------------------------------------------


def to_px(p: RelPoint, size: tuple[int, int]) -> Vec:
    return (float(p[0]) * size[0], float(p[1]) * size[1])


def fmt_px(p: Vec) -> str:
    return f"({round(p[0])}, {round(p[1])}) px"


def _sub(a: Vec, b: Vec) -> Vec:
    return (a[0] - b[0], a[1] - b[1])


def _dot(a: Vec, b: Vec) -> float:
    return a[0] * b[0] + a[1] * b[1]


def _cross(a: Vec, b: Vec) -> float:
    return a[0] * b[1] - a[1] * b[0]


def _norm(a: Vec) -> float:
    return math.hypot(a[0], a[1])


def _unit(a: Vec) -> Vec:
    n = _norm(a) or 1.0
    return (a[0] / n, a[1] / n)


def right_of(direction: Vec) -> Vec:
    """The driver's right for travel in ``direction`` on the image (x right, y down): the
    road seen from above or from behind/in front keeps its handedness in a camera picture."""
    return (-direction[1], direction[0])


def _segments_cross(p: Vec, q: Vec, a: Vec, b: Vec) -> tuple[float, float] | None:
    """(t on p→q, u on a→b) where the two segments cross properly, else None."""
    r, s = _sub(q, p), _sub(b, a)
    den = _cross(r, s)
    if abs(den) < 1e-12:
        return None
    ap = _sub(a, p)
    t, u = _cross(ap, s) / den, _cross(ap, r) / den
    if 0.0 <= t <= 1.0 and 0.0 <= u <= 1.0:
        return t, u
    return None


def polygon_area(poly: Sequence[Vec]) -> float:
    n = len(poly)
    return abs(sum(_cross(poly[i], poly[(i + 1) % n]) for i in range(n))) / 2.0


def self_intersection(poly: Sequence[Vec]) -> tuple[int, int] | None:
    """Indexes of two non-adjacent edges that cross, or None (edge i runs from point i)."""
    n = len(poly)
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent through the closing edge
            hit = _segments_cross(poly[i], poly[(i + 1) % n], poly[j], poly[(j + 1) % n])
            if hit is not None and 0.0 < hit[0] < 1.0 and 0.0 < hit[1] < 1.0:
                return i, j
    return None


def inside_distance(poly: Sequence[Vec], p: Vec) -> float:
    """Signed pixels from the polygon's boundary: positive inside, negative outside."""
    contour = np.asarray(poly, np.float32).reshape(-1, 1, 2)
    return float(cv2.pointPolygonTest(contour, (float(p[0]), float(p[1])), True))


def centroid(poly: Sequence[Vec]) -> Vec:
    return (sum(p[0] for p in poly) / len(poly), sum(p[1] for p in poly) / len(poly))


@dataclass(frozen=True, slots=True)
class StopLinePx:
    """An approach's stop line in pixels with its forward (downstream) unit normal."""

    a: Vec
    b: Vec
    normal: Vec

    @classmethod
    def of(cls, ap: Approach, size: tuple[int, int]) -> StopLinePx:
        a, b = to_px(ap.stop_line[0], size), to_px(ap.stop_line[1], size)
        u = _unit(_sub(b, a))
        n = (-u[1], u[0])
        if _dot(n, approach_direction(ap, size)) < 0:
            n = (-n[0], -n[1])
        return cls(a, b, n)

    def signed(self, p: Vec) -> float:
        """Pixels past the line in the direction of travel (negative: behind it)."""
        return _dot(_sub(p, self.a), self.normal)

    def param(self, p: Vec) -> float:
        """Where the foot of ``p`` falls along a→b (0 at a, 1 at b)."""
        d = _sub(self.b, self.a)
        return _dot(_sub(p, self.a), d) / (_dot(d, d) or 1.0)

    def at(self, s: float) -> Vec:
        return (self.a[0] + s * (self.b[0] - self.a[0]), self.a[1] + s * (self.b[1] - self.a[1]))


def lane_direction(lane: Lane, size: tuple[int, int]) -> Vec:
    return _unit(_sub(to_px(lane.travel[1], size), to_px(lane.travel[0], size)))


def approach_direction(ap: Approach, size: tuple[int, int]) -> Vec:
    """Mean travel direction of the approach's lanes (unit, pixels)."""
    sx = sum(lane_direction(ln, size)[0] for ln in ap.lanes)
    sy = sum(lane_direction(ln, size)[1] for ln in ap.lanes)
    return _unit((sx, sy))


def lane_chord(lane: Lane, line: StopLinePx, size: tuple[int, int]) -> tuple[float, float] | None:
    """The lane's cross-section just behind the stop line, as (from, to) parameters along the
    stop line (0 at its first point, 1 at its second); None when the lane does not reach it."""
    poly = [to_px(p, size) for p in lane.polygon]
    dists = [line.signed(p) for p in poly]
    if min(dists) >= 0.0 or max(dists) < -0.02 * math.hypot(*size):
        return None
    offset = min(0.01 * math.hypot(*size), 0.5 * -min(dists))
    a = (line.a[0] - line.normal[0] * offset, line.a[1] - line.normal[1] * offset)
    d = _sub(line.b, line.a)
    hits: list[float] = []
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        e = _sub(q, p)
        den = _cross(d, e)
        if abs(den) < 1e-12:
            continue
        ap = _sub(p, a)
        s, t = _cross(ap, e) / den, _cross(ap, d) / den
        if 0.0 <= t <= 1.0:
            hits.append(s)
    if len(hits) < 2:
        return None
    return min(hits), max(hits)


# -- static checks ---------------------------------------------------------------------------


def static_checks(
    cam: CameraConfig, size: tuple[int, int] | None = None, stream_fps: float | None = None
) -> list[Finding]:
    """Everything the drawn geometry alone shows to be wrong (see the module docstring).
    ``size``: the camera's frame (width, height); None judges on a nominal 16:9 frame and
    leaves head shapes unjudged. ``stream_fps``: the frames a second the stream itself gives
    (a sub-stream or recording at 2 fps analyses no more, whatever ``analysis_fps`` says);
    None when unknown."""
    frame = size or NOMINAL_SIZE
    out: list[Finding] = []
    calib = cam.intersection
    if calib is not None:
        out += _polygon_findings(calib, cam, frame)
        for a_i, ap in enumerate(calib.approaches):
            out += _approach_findings(f"intersection.approaches.{a_i}", ap, calib, frame)
        for c_i, cw in enumerate(calib.crosswalks):
            out += _crosswalk_findings(f"intersection.crosswalks.{c_i}", cw, frame)
        for h_i, head in enumerate(calib.signal_heads):
            out += _head_findings(f"intersection.signal_heads.{h_i}", head, size)
        if calib.wrong_way is not None:
            for z_i, zone in enumerate(calib.wrong_way.zones):
                poly = [to_px(p, frame) for p in zone.polygon]
                mid = centroid([to_px(p, frame) for p in zone.travel])
                if inside_distance(poly, mid) < 0:
                    out.append(
                        Finding(
                            f"intersection.wrong_way.zones.{z_i}.travel",
                            f"zone {zone.id!r}: the travel arrow's middle {fmt_px(mid)} lies "
                            "outside the zone polygon; draw the arrow inside the zone, along "
                            "its carriageway",
                            f"逆行监测区 {zone.id!r}：行驶方向箭头的中点 {fmt_px(mid)} 在区域多边形"
                            "之外；请把箭头画在区域内，沿其车行道方向",
                        )
                    )
    rates = [r for r in (cam.analysis_fps, stream_fps) if r is not None and r > 0]
    if calib is not None and rates and min(rates) < MIN_RULES_FPS:
        fps = f"{min(rates):.3g}"
        out.append(
            Finding(
                "analysis_fps",
                f"{fps} analysed frames a second is too few for the intersection rules: a "
                f"vehicle moves too far between frames to time its stop-line crossing; analyse "
                f"at least {MIN_RULES_FPS:g} a second (hanoi_b: 15/15 runners at 3, 12/15 at 2, "
                "9/15 at 1.5)",
                f"每秒分析 {fps} 帧对路口违法规则太少：两帧之间车辆移动过远，"
                "无法确定其越过停止线的时刻；"
                f"请每秒至少分析 {MIN_RULES_FPS:g} 帧"
                "（hanoi_b：3 帧/秒 15/15，2 帧/秒 12/15，1.5 帧/秒 9/15）",
            )
        )
    if cam.flow is not None:
        out += _flow_findings(cam, frame)
    return out


Label = tuple[str, str]
"""A thing's name in English and in Chinese (``lane 'l1'``, ``车道 'l1'``)."""


def _polygons(calib: IntersectionCalibration, cam: CameraConfig) -> list[tuple[str, Label, Any]]:
    """(key, label, relative polygon) of every polygon the config draws."""
    polys: list[tuple[str, Label, Any]] = []
    for a_i, ap in enumerate(calib.approaches):
        for l_i, ln in enumerate(ap.lanes):
            key = f"intersection.approaches.{a_i}.lanes.{l_i}.polygon"
            polys.append((key, (f"lane {ln.id!r}", f"车道 {ln.id!r}"), ln.polygon))
    for c_i, cw in enumerate(calib.crosswalks):
        label = (f"crosswalk {cw.id!r}", f"人行横道 {cw.id!r}")
        polys.append((f"intersection.crosswalks.{c_i}.polygon", label, cw.polygon))
    if calib.intersection_zone is not None:
        label = ("intersection zone", "路口区域")
        polys.append(("intersection.intersection_zone", label, calib.intersection_zone))
    if calib.wrong_way is not None:
        for z_i, z in enumerate(calib.wrong_way.zones):
            label = (f"zone {z.id!r}", f"逆行监测区 {z.id!r}")
            polys.append((f"intersection.wrong_way.zones.{z_i}.polygon", label, z.polygon))
    if calib.parking is not None:
        for z_i, pz in enumerate(calib.parking.zones):
            label = (f"zone {pz.id!r}", f"禁停区 {pz.id!r}")
            polys.append((f"intersection.parking.zones.{z_i}.polygon", label, pz.polygon))
    return polys


def _polygon_findings(
    calib: IntersectionCalibration, cam: CameraConfig, size: tuple[int, int]
) -> list[Finding]:
    return [f for key, label, poly in _polygons(calib, cam) for f in _shape(key, label, poly, size)]


def _shape(key: str, label: Label, rel: Sequence[RelPoint], size: tuple[int, int]) -> list[Finding]:
    poly = [to_px(p, size) for p in rel]
    en, zh = label
    out: list[Finding] = []
    repeated = [i for i in range(len(poly)) if poly[i] == poly[(i + 1) % len(poly)]]
    if repeated:
        out.append(
            Finding(
                key,
                f"{en}: point {repeated[0]} is given twice in a row",
                f"{zh}：第 {repeated[0]} 个点连续重复给出",
            )
        )
    cut = self_intersection(poly)
    if cut is not None:
        i, j = cut
        out.append(
            Finding(
                key,
                f"{en}: the polygon crosses itself (edge {i}→{(i + 1) % len(poly)} crosses "
                f"edge {j}→{(j + 1) % len(poly)}); list its corners in order around it",
                f"{zh}：多边形自相交（边 {i}→{(i + 1) % len(poly)} 与边 "
                f"{j}→{(j + 1) % len(poly)} 相交）；请沿边界依次列出各顶点",
            )
        )
        return out
    area = polygon_area(poly) / float(size[0] * size[1])
    if area < MIN_POLYGON_AREA:
        out.append(
            Finding(
                key,
                f"{en}: the polygon is degenerate ({100 * area:.3f} % of the frame): its "
                "points lie (nearly) on one line or on top of each other",
                f"{zh}：多边形退化（仅占画面 {100 * area:.3f} %）：各点（几乎）在一条直线上"
                "或相互重叠",
            )
        )
    return out


def _approach_findings(
    key: str, ap: Approach, calib: IntersectionCalibration, size: tuple[int, int]
) -> list[Finding]:
    out: list[Finding] = []
    line = StopLinePx.of(ap, size)
    if ap.entry_line is not None:
        ends = [to_px(p, size) for p in ap.entry_line]
        behind = [p for p in ends if line.signed(p) <= 0.0]
        if behind:
            out.append(
                Finding(
                    f"{key}.entry_line",
                    f"approach {ap.id!r}: entry line end {fmt_px(behind[0])} is not past the "
                    "stop line; the entry line must lie wholly beyond the stop line along the "
                    "travel (it crosses or touches the stop line)",
                    f"进口道 {ap.id!r}：入口线端点 {fmt_px(behind[0])} 未越过停止线；入口线须沿"
                    "行驶方向完全位于停止线之后（现与停止线相交或相接）",
                )
            )
    if calib.intersection_zone is not None:
        mid = centroid([to_px(p, size) for p in calib.intersection_zone])
        if line.signed(mid) <= 0.0:
            out.append(
                Finding(
                    f"{key}.stop_line",
                    f"approach {ap.id!r}: the intersection zone's centre {fmt_px(mid)} lies "
                    "behind this stop line; the zone must be past every approach's stop line",
                    f"进口道 {ap.id!r}：路口区域的中心 {fmt_px(mid)} 位于本停止线之前；路口区域"
                    "须在每个进口道的停止线之后",
                )
            )
    chords: dict[str, tuple[float, float]] = {}
    for l_i, lane in enumerate(ap.lanes):
        lk = f"{key}.lanes.{l_i}"
        out += _travel_findings(lk, lane, line, size)
        found, chord = _reaches_stop_line(lk, lane, line=line, size=size)
        out += found
        if chord is not None:
            chords[lane.id] = chord
    out += _span_findings(f"{key}.stop_line", ap, chords, line)
    out += _lane_order(key, ap, chords, size)
    return out


def _travel_findings(lk: str, lane: Lane, line: StopLinePx, size: tuple[int, int]) -> list[Finding]:
    """The lane's travel arrow must cross its stop line, within the drawn line."""
    t0, t1 = (to_px(p, size) for p in lane.travel)
    d0, d1 = line.signed(t0), line.signed(t1)
    if d1 <= 0.0:
        return [
            Finding(
                f"{lk}.travel",
                f"lane {lane.id!r}: the travel arrow ends {fmt_px(t1)}, {-d1:.0f} px before "
                "the stop line; it must cross it: move its end past the stop line",
                f"车道 {lane.id!r}：行驶方向箭头终点 {fmt_px(t1)} 在停止线前 {-d1:.0f} px；"
                "箭头须穿过停止线：请把终点移到停止线之后",
            )
        ]
    if d0 >= 0.0:
        return [
            Finding(
                f"{lk}.travel",
                f"lane {lane.id!r}: the travel arrow starts {fmt_px(t0)}, {d0:.0f} px past "
                "the stop line; it must cross it: move its start back into the lane",
                f"车道 {lane.id!r}：行驶方向箭头起点 {fmt_px(t0)} 已越过停止线 {d0:.0f} px；"
                "箭头须穿过停止线：请把起点移回车道内",
            )
        ]
    k = -d0 / (d1 - d0)
    cross_pt = (t0[0] + (t1[0] - t0[0]) * k, t0[1] + (t1[1] - t0[1]) * k)
    if -0.05 <= line.param(cross_pt) <= 1.05:
        return []
    return [
        Finding(
            f"{lk}.travel",
            f"lane {lane.id!r}: the travel arrow crosses the stop line's extension at "
            f"{fmt_px(cross_pt)}, outside the drawn stop line {fmt_px(line.a)}–{fmt_px(line.b)}",
            f"车道 {lane.id!r}：行驶方向箭头在 {fmt_px(cross_pt)} 穿过停止线的延长线，不在所画"
            f"停止线 {fmt_px(line.a)}–{fmt_px(line.b)} 之内",
        )
    ]


def _reaches_stop_line(
    lk: str, lane: Lane, *, line: StopLinePx, size: tuple[int, int]
) -> tuple[list[Finding], tuple[float, float] | None]:
    """The lane polygon must reach the stop line from upstream; also returns the lane's chord
    along the stop line (None: not found)."""
    dists = [line.signed(to_px(p, size)) for p in lane.polygon]
    if min(dists) >= 0.0:
        text = (
            f"lane {lane.id!r}: the polygon lies wholly past the stop line; a lane is the area "
            "before (upstream of) its stop line"
        )
        zh = f"车道 {lane.id!r}：多边形完全位于停止线之后；车道是其停止线之前（上游）的区域"
        return [Finding(f"{lk}.polygon", text, zh)], None
    if max(dists) < -0.02 * math.hypot(*size):
        text = (
            f"lane {lane.id!r}: the polygon ends {-max(dists):.0f} px before the stop line; "
            "extend it up to the stop line"
        )
        zh = f"车道 {lane.id!r}：多边形止于停止线前 {-max(dists):.0f} px；请延伸到停止线"
        return [Finding(f"{lk}.polygon", text, zh)], None
    return [], lane_chord(lane, line, size)


def _span_findings(
    key: str, ap: Approach, chords: dict[str, tuple[float, float]], line: StopLinePx
) -> list[Finding]:
    """The stop line must span the width of every lane where it meets the stop line."""
    short: list[str] = []
    for lane_id, (lo, hi) in chords.items():
        covered = max(0.0, min(hi, 1.02) - max(lo, -0.02)) / max(hi - lo, 1e-9)
        if covered < SPAN_MIN:
            short.append(f"{lane_id!r} {100 * covered:.0f} %")
    if not short:
        return []
    lo = min(c[0] for c in chords.values())
    hi = max(c[1] for c in chords.values())
    moves: list[str] = []
    moves_zh: list[str] = []
    if lo < -0.02:
        moves.append(f"its first point to {fmt_px(line.at(lo))}")
        moves_zh.append(f"第一个点移到 {fmt_px(line.at(lo))}")
    if hi > 1.02:
        moves.append(f"its second point to {fmt_px(line.at(hi))}")
        moves_zh.append(f"第二个点移到 {fmt_px(line.at(hi))}")
    fix = f"; extend {' and '.join(moves)}" if moves else ""
    fix_zh = f"；请延长：{'，'.join(moves_zh)}" if moves_zh else ""
    text = (
        f"approach {ap.id!r}: the stop line does not span its lanes (share of each lane's width "
        f"covered: {', '.join(short)}){fix}"
    )
    zh = (
        f"进口道 {ap.id!r}：停止线未横跨其全部车道（各车道宽度被覆盖的比例："
        f"{'，'.join(short)}）{fix_zh}"
    )
    return [Finding(key, text, zh)]


def _lane_order(
    key: str, ap: Approach, chords: dict[str, tuple[float, float]], size: tuple[int, int]
) -> list[Finding]:
    """Lane numbers must grow from left to right as a driver of the approach sees the road
    (``Lane.number``: 1 = leftmost in the driving direction)."""
    numbers = [ln.number for ln in ap.lanes]
    out: list[Finding] = []
    if len(set(numbers)) != len(numbers):
        dup = sorted({n for n in numbers if numbers.count(n) > 1})
        out.append(
            Finding(
                f"{key}.lanes",
                f"approach {ap.id!r}: lane number {dup[0]} is used twice",
                f"进口道 {ap.id!r}：车道号 {dup[0]} 被重复使用",
            )
        )
        return out
    if len(ap.lanes) < 2:
        return out
    line = StopLinePx.of(ap, size)
    right = right_of(approach_direction(ap, size))
    pos: dict[str, float] = {}
    for ln in ap.lanes:
        if ln.id in chords:
            p = line.at(sum(chords[ln.id]) / 2)
        else:
            p = centroid([to_px(q, size) for q in ln.polygon])
        pos[ln.id] = _dot(p, right)
    order = sorted(ap.lanes, key=lambda ln: pos[ln.id])
    if [ln.number for ln in order] != sorted(numbers):
        seen = ", ".join(f"{ln.id} (number {ln.number})" for ln in order)
        seen_zh = "，".join(f"{ln.id}（{ln.number} 号）" for ln in order)
        fix = ", ".join(f"{ln.id}: {n}" for ln, n in zip(order, sorted(numbers), strict=True))
        out.append(
            Finding(
                f"{key}.lanes",
                f"approach {ap.id!r}: lane numbers are not in left-to-right order for a driver "
                f"travelling along the lanes' arrows (1 = leftmost in the driving direction); "
                f"left to right they are {seen}: number them {fix}",
                f"进口道 {ap.id!r}：按驾驶员沿车道箭头行驶所见，车道号不是从左到右排列（1 = "
                f"行驶方向最左侧车道）；从左到右依次为 {seen_zh}：请编号为 {fix}",
            )
        )
    return out


def _crosswalk_findings(key: str, cw: Crosswalk, size: tuple[int, int]) -> list[Finding]:
    out: list[Finding] = []
    poly = [to_px(p, size) for p in cw.polygon]
    a, b = (to_px(p, size) for p in cw.axis)
    tol = 0.03 * math.hypot(*size)
    mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    if inside_distance(poly, mid) < 0:
        out.append(
            Finding(
                f"{key}.axis",
                f"crosswalk {cw.id!r}: the axis's middle {fmt_px(mid)} lies outside the "
                "crosswalk polygon",
                f"人行横道 {cw.id!r}：轴线中点 {fmt_px(mid)} 在人行横道多边形之外",
            )
        )
    for name, name_zh, p in (("first", "第一个", a), ("second", "第二个", b)):
        d = -inside_distance(poly, p)
        if d > tol:
            out.append(
                Finding(
                    f"{key}.axis",
                    f"crosswalk {cw.id!r}: the axis's {name} point {fmt_px(p)} lies {d:.0f} px "
                    "outside the crosswalk polygon; the axis runs from kerb to kerb inside it",
                    f"人行横道 {cw.id!r}：轴线的{name_zh}点 {fmt_px(p)} 在人行横道多边形外 "
                    f"{d:.0f} px；轴线应在多边形内从路缘画到路缘",
                )
            )
    (cx, cy), (rw, rh), ang = cv2.minAreaRect(np.asarray(poly, np.float32))
    long_side, short_side = max(rw, rh), min(rw, rh)
    if short_side <= 0 or long_side / short_side < CROSSWALK_ELONGATION:
        return out
    theta = math.radians(ang if rw >= rh else ang + 90.0)
    long_dir = (math.cos(theta), math.sin(theta))
    axis = _sub(b, a)
    cosang = abs(_dot(_unit(axis), long_dir))
    deg = math.degrees(math.acos(min(1.0, cosang)))
    half = long_side / 2
    p1 = (cx - long_dir[0] * half, cy - long_dir[1] * half)
    p2 = (cx + long_dir[0] * half, cy + long_dir[1] * half)
    if deg > CROSSWALK_MAX_ANGLE:
        out.append(
            Finding(
                f"{key}.axis",
                f"crosswalk {cw.id!r}: the axis runs {deg:.0f}° off the crosswalk's length "
                "(across the zebra instead of from kerb to kerb); draw it along the crossing, "
                f"e.g. {fmt_px(p1)} → {fmt_px(p2)}",
                f"人行横道 {cw.id!r}：轴线偏离人行横道长度方向 {deg:.0f}°（横跨斑马线，而不是"
                f"从路缘到路缘）；请沿过街方向画，例如 {fmt_px(p1)} → {fmt_px(p2)}",
            )
        )
    elif _norm(axis) < CROSSWALK_MIN_LENGTH * long_side:
        out.append(
            Finding(
                f"{key}.axis",
                f"crosswalk {cw.id!r}: the axis covers only {100 * _norm(axis) / long_side:.0f} "
                f"% of the crosswalk's length; draw it from kerb to kerb, e.g. {fmt_px(p1)} → "
                f"{fmt_px(p2)}",
                f"人行横道 {cw.id!r}：轴线只覆盖人行横道长度的 "
                f"{100 * _norm(axis) / long_side:.0f} %；请从路缘画到路缘，例如 {fmt_px(p1)} → "
                f"{fmt_px(p2)}",
            )
        )
    return out


def _head_findings(key: str, head: SignalHead, size: tuple[int, int] | None) -> list[Finding]:
    out: list[Finding] = []
    (x1, y1), (x2, y2) = head.region
    frame = size or NOMINAL_SIZE
    w, h = (x2 - x1) * frame[0], (y2 - y1) * frame[1]
    if max(w, h) > HEAD_MAX_HEIGHT * frame[1]:
        out.append(
            Finding(
                f"{key}.region",
                f"head {head.id!r}: the region is {100 * max(w, h) / frame[1]:.0f} % of the frame "
                f"height (more than {100 * HEAD_MAX_HEIGHT:.0f} %); draw the box tightly around "
                "the lamps only",
                f"信号灯 {head.id!r}：区域为画面高度的 {100 * max(w, h) / frame[1]:.0f} %（超过 "
                f"{100 * HEAD_MAX_HEIGHT:.0f} %）；请只框住灯盘，框紧",
            )
        )
    if size is None:
        return out
    n = len(head.lamps)
    if head.layout == "single":
        ratio, want, want_zh = max(w, h) / max(min(w, h), 1e-9), "about square", "应近似正方形"
        bad = ratio > 2.0
    else:
        along, across = (h, w) if head.layout == "vertical" else (w, h)
        ratio = along / max(across, 1e-9)
        lo, hi = HEAD_ASPECT[0] * n, HEAD_ASPECT[1] * n
        bad = not lo <= ratio <= hi
        vertical = head.layout == "vertical"
        want = (
            f"{'height' if vertical else 'width'} about {n}× the "
            f"{'width' if vertical else 'height'} for {n} lamps"
        )
        want_zh = f"{n} 个灯时{'高' if vertical else '宽'}约为{'宽' if vertical else '高'}的 {n} 倍"
    if bad:
        out.append(
            Finding(
                f"{key}.region",
                f"head {head.id!r}: the region is {w:.0f}×{h:.0f} px, which does not fit layout "
                f"{head.layout} with {n} lamp(s) ({want}); check the layout or the box",
                f"信号灯 {head.id!r}：区域为 {w:.0f}×{h:.0f} px，与布局 {head.layout}、{n} 个灯"
                f"不符（{want_zh}）；请检查 layout 或区域框",
            )
        )
    return out


def _flow_findings(cam: CameraConfig, size: tuple[int, int]) -> list[Finding]:
    assert cam.flow is not None
    out: list[Finding] = []
    lanes = cam.flow.lanes
    for l_i, ln in enumerate(lanes):
        label = (f"flow lane {ln.id!r}", f"流量车道 {ln.id!r}")
        out += _shape(f"flow.lanes.{l_i}.zone", label, ln.zone, size)
    numbers = [ln.number for ln in lanes]
    if len(set(numbers)) != len(numbers):
        dup = sorted({n for n in numbers if numbers.count(n) > 1})
        out.append(
            Finding(
                "flow.lanes",
                f"two flow lanes have the same number {dup[0]}",
                f"两条流量车道使用了相同的车道号 {dup[0]}",
            )
        )
        return out
    travels = [ln.travel for ln in lanes if ln.travel is not None]
    if len(lanes) >= 2 and len(travels) == len(lanes):
        sx = sum(_unit(_sub(to_px(t[1], size), to_px(t[0], size)))[0] for t in travels)
        sy = sum(_unit(_sub(to_px(t[1], size), to_px(t[0], size)))[1] for t in travels)
        why = ("the lanes' travel arrows", "车道的行驶方向箭头")
        f = flow_order_finding(cam, _unit((sx, sy)), size, why)
        if f is not None:
            out.append(f)
    return out


def flow_order_finding(
    cam: CameraConfig, direction: Vec, size: tuple[int, int], why: Label
) -> Finding | None:
    """Flow lane numbers against their left-to-right order for travel in ``direction``
    (``why``: what shows that direction, in English and Chinese)."""
    assert cam.flow is not None
    right = right_of(direction)
    order = sorted(
        cam.flow.lanes, key=lambda ln: _dot(centroid([to_px(p, size) for p in ln.zone]), right)
    )
    if [ln.number for ln in order] == sorted(ln.number for ln in order):
        return None
    seen = ", ".join(f"{ln.id} (number {ln.number})" for ln in order)
    seen_zh = "，".join(f"{ln.id}（{ln.number} 号）" for ln in order)
    return Finding(
        "flow.lanes",
        f"lane numbers are not in left-to-right order in the driving direction shown by {why[0]} "
        f"(1 = leftmost in the driving direction, as for intersection lanes); left to right "
        f"they are {seen}",
        f"按{why[1]}所示的行驶方向，车道号不是从左到右排列（1 = 行驶方向最左侧车道，与路口"
        f"车道相同）；从左到右依次为 {seen_zh}",
    )


# -- observed traffic ------------------------------------------------------------------------


@dataclass
class TrackPath:
    """One track's anchor positions (pixels) in time order, with their times (seconds); for a
    ``person`` track, the two-wheeler tracks it was seen sitting on
    (:func:`pipeline.riders.carrier_ids`)."""

    kind: int
    points: list[Vec] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    track_id: int = -1
    carriers: set[int] = field(default_factory=set)

    @property
    def is_person(self) -> bool:
        return self.kind == int(ObjectKind.PERSON)


class TrafficObserver:
    """Collects the anchor paths of tracked vehicles (motor vehicles and two-wheelers) frame by
    frame, and of ``person`` tracks (``persons``: riders whose two-wheeler the detector missed);
    :func:`analyse_traffic` judges the calibration against them. A person's anchor is taken on
    its box extended down to the road by ``RiderParams.ground_offset`` of its height (a rider's
    feet are above the road, as the red-light rule's rider fusion does)."""

    def __init__(
        self,
        anchor: Anchor = Anchor.BOTTOM_CENTER,
        kinds: Sequence[ObjectKind] = VEHICLE_KINDS,
        *,
        persons: bool = True,
        rider_params: RiderParams | None = None,
    ) -> None:
        self.anchor = anchor
        self.kinds = tuple(kinds)
        self.persons = persons
        self.rider_params = rider_params or RiderParams()
        self.paths: dict[int, TrackPath] = {}
        self.frames = 0
        self.first_pts: float | None = None
        self.last_pts = 0.0

    def add(self, pts: float, tracks: Tracks) -> None:
        self.frames += 1
        self.first_pts = pts if self.first_pts is None else self.first_pts
        self.last_pts = pts
        kinds = (*self.kinds, ObjectKind.PERSON) if self.persons else self.kinds
        sel = tracks.of_kind(*kinds)
        if len(sel) == 0:
            return
        person = sel.kind == int(ObjectKind.PERSON)
        carriers = carrier_ids(sel, self.rider_params)
        xyxy = sel.xyxy.copy()
        xyxy[person, 3] += self.rider_params.ground_offset * (xyxy[person, 3] - xyxy[person, 1])
        anchors = box_anchors(xyxy, self.anchor)
        for i, (tid, kind) in enumerate(zip(sel.track_id, sel.kind, strict=True)):
            path = self.paths.setdefault(int(tid), TrackPath(int(kind), track_id=int(tid)))
            path.points.append((float(anchors[i, 0]), float(anchors[i, 1])))
            path.times.append(pts)
            if carriers[i] >= 0:
                path.carriers.add(int(carriers[i]))

    @property
    def seconds(self) -> float:
        return self.last_pts - (self.first_pts if self.first_pts is not None else 0.0)


def moves_like_a_vehicle(
    points: Sequence[Vec],
    times: Sequence[float],
    travel: Vec | None,
    diag: float,
    params: RiderParams | None = None,
) -> bool:
    """Whether a stretch of at least :data:`RIDER_WINDOW_S` of this path (the whole of it when
    shorter) is a vehicle's movement: :func:`pipeline.riders.rides_along` ``travel`` or its
    reverse (fast enough along it, not mostly sideways); without a travel, fast enough. A
    pedestrian walks slower (a crosswalk walker also moves across the lanes)."""
    p = params or RiderParams()
    n = len(points)
    if n < 2:
        return False
    j = 0
    for i in range(n - 1):
        j = max(j, i + 1)
        while j < n - 1 and times[j] - times[i] < RIDER_WINDOW_S:
            j += 1
        a, b, ta, tb = points[i], points[j], times[i], times[j]
        if i > 0 and tb - ta < RIDER_WINDOW_S:
            break  # the whole path was looked at in windows of at least RIDER_WINDOW_S
        if travel is None:
            if tb > ta and _norm(_sub(b, a)) / (tb - ta) >= p.min_speed * diag:
                return True
            continue
        back = (-travel[0], -travel[1])
        for t in (travel, back):
            if rides_along(a, ta, b, tb, travel=t, diag=diag, params=p):
                return True
    return False


@dataclass
class RegionCount:
    """Tracks moving through one lane / zone, judged against its travel arrow (if any)."""

    key: str
    label: str
    label_zh: str
    has_travel: bool
    ident: str = ""
    tracks: int = 0
    riders: int = 0
    """Of ``tracks``: persons moving like a vehicle (two-wheelers seen only by their rider)."""
    along: int = 0
    against: int = 0
    across: int = 0
    motion: list[Vec] = field(default_factory=list)

    def shares(self) -> dict[str, float]:
        n = max(self.tracks, 1)
        return {
            "along": round(self.along / n, 3),
            "against": round(self.against / n, 3),
            "across": round(self.across / n, 3),
        }


@dataclass
class LineCount:
    """Tracks crossing one stop line, forwards (along travel) and backwards."""

    key: str
    label: str
    label_zh: str
    forward: int = 0
    backward: int = 0
    outside: int = 0
    riders: int = 0
    """Of the crossings: persons moving like a vehicle (two-wheelers seen only by their rider)."""
    outside_points: list[Vec] = field(default_factory=list)


@dataclass
class TrafficReport:
    """What :func:`analyse_traffic` found (counts, shares, findings)."""

    seconds: float
    frames: int
    tracks: int
    regions: list[RegionCount]
    lines: list[LineCount]
    findings: list[Finding]
    notes: list[Note]
    paths: list[TrackPath] = field(default_factory=list)
    """Every vehicle track's path and every counted rider's (for drawing)."""
    riders: int = 0
    """Person tracks counted as two-wheelers seen only by their rider (not in ``tracks``)."""

    def text_lines(self, lang: Lang = "en") -> list[str]:
        return self._lines_zh() if lang == "zh" else self._lines_en()

    def _lines_en(self) -> list[str]:
        out = [
            f"observed traffic: {self.tracks} vehicle tracks and {self.riders} riders seen "
            f"without their two-wheeler (counted as two-wheelers) over {self.seconds:.1f} s "
            f"({self.frames} analysed frames)"
        ]
        for r in self.regions:
            moving = f"{r.tracks} moving tracks" + (f" ({r.riders} riders)" if r.riders else "")
            if r.tracks < MIN_TRACKS:
                out.append(f"  {r.label}: {moving} — not enough traffic to judge")
            elif r.has_travel:
                s = r.shares()
                out.append(
                    f"  {r.label}: {moving} — along the arrow "
                    f"{100 * s['along']:.0f} %, against {100 * s['against']:.0f} %, across "
                    f"{100 * s['across']:.0f} %"
                )
            else:
                out.append(f"  {r.label}: {moving} (no travel arrow drawn)")
        for ln in self.lines:
            n = ln.forward + ln.backward
            tail = " — not enough traffic to judge" if n < MIN_TRACKS else ""
            of = f" ({ln.riders} riders)" if ln.riders else ""
            out.append(
                f"  {ln.label}: {n} tracks crossed it{of} — {ln.forward} forwards, {ln.backward} "
                f"backwards; {ln.outside} of the forward crossings outside every lane{tail}"
            )
        out += [f"  {n.text}" for n in self.notes]
        return out

    def _lines_zh(self) -> list[str]:
        out = [
            f"观测交通：{self.seconds:.1f} 秒内 {self.tracks} 条车辆轨迹，另有 {self.riders} 个"
            f"未检出其两轮车的骑车人（按两轮车计）（分析 {self.frames} 帧）"
        ]
        for r in self.regions:
            moving = f"{r.tracks} 条移动轨迹" + (f"（其中骑车人 {r.riders}）" if r.riders else "")
            if r.tracks < MIN_TRACKS:
                out.append(f"  {r.label_zh}：{moving} — 交通量不足，不作判断")
            elif r.has_travel:
                s = r.shares()
                out.append(
                    f"  {r.label_zh}：{moving} — 顺箭头 {100 * s['along']:.0f} %，"
                    f"逆箭头 {100 * s['against']:.0f} %，横穿 {100 * s['across']:.0f} %"
                )
            else:
                out.append(f"  {r.label_zh}：{moving}（未画行驶方向箭头）")
        for ln in self.lines:
            n = ln.forward + ln.backward
            tail = " — 交通量不足，不作判断" if n < MIN_TRACKS else ""
            of = f"（其中骑车人 {ln.riders}）" if ln.riders else ""
            out.append(
                f"  {ln.label_zh}：{n} 条轨迹越过{of} — 正向 {ln.forward}，反向 {ln.backward}；"
                f"正向越线中 {ln.outside} 条在所有车道之外{tail}"
            )
        out += [f"  {n.text_zh}" for n in self.notes]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "frames": self.frames,
            "tracks": self.tracks,
            "rider_tracks": self.riders,
            "regions": [
                {
                    "key": r.key,
                    "label": r.label,
                    "label_zh": r.label_zh,
                    "moving_tracks": r.tracks,
                    "riders": r.riders,
                    "enough": r.tracks >= MIN_TRACKS,
                    **({"shares": r.shares()} if r.has_travel else {}),
                }
                for r in self.regions
            ],
            "stop_lines": [
                {
                    "key": ln.key,
                    "label": ln.label,
                    "label_zh": ln.label_zh,
                    "forward": ln.forward,
                    "backward": ln.backward,
                    "forward_outside_lanes": ln.outside,
                    "riders": ln.riders,
                    "enough": ln.forward + ln.backward >= MIN_TRACKS,
                }
                for ln in self.lines
            ],
            "notes": [n.text for n in self.notes],
            "notes_zh": [n.text_zh for n in self.notes],
        }


def _travel_regions(
    cam: CameraConfig, size: tuple[int, int]
) -> list[tuple[RegionCount, list[Vec], Vec | None]]:
    """(count, polygon px, unit travel px or None) of every lane and zone with a direction."""
    out: list[tuple[RegionCount, list[Vec], Vec | None]] = []
    calib = cam.intersection
    if calib is not None:
        for a_i, ap in enumerate(calib.approaches):
            for l_i, ln in enumerate(ap.lanes):
                key = f"intersection.approaches.{a_i}.lanes.{l_i}.travel"
                label = f"lane {ln.id} (number {ln.number}, approach {ap.id})"
                zh = f"车道 {ln.id}（{ln.number} 号，进口道 {ap.id}）"
                poly = [to_px(p, size) for p in ln.polygon]
                count = RegionCount(key, label, zh, True, ln.id)
                out.append((count, poly, lane_direction(ln, size)))
        if calib.wrong_way is not None:
            for z_i, z in enumerate(calib.wrong_way.zones):
                key = f"intersection.wrong_way.zones.{z_i}.travel"
                poly = [to_px(p, size) for p in z.polygon]
                zt = _unit(_sub(to_px(z.travel[1], size), to_px(z.travel[0], size)))
                count = RegionCount(key, f"wrong-way zone {z.id}", f"逆行监测区 {z.id}", True)
                out.append((count, poly, zt))
    if cam.flow is not None:
        for f_i, fl in enumerate(cam.flow.lanes):
            key = f"flow.lanes.{f_i}.travel"
            poly = [to_px(p, size) for p in fl.zone]
            t: Vec | None = None
            if fl.travel is not None:
                t = _unit(_sub(to_px(fl.travel[1], size), to_px(fl.travel[0], size)))
            label = f"flow lane {fl.id} (number {fl.number})"
            zh = f"流量车道 {fl.id}（{fl.number} 号）"
            out.append((RegionCount(key, label, zh, t is not None), poly, t))
    return out


def _inside_mask(poly: Sequence[Vec], pts: Sequence[Vec], tol: float = 0.0) -> list[bool]:
    contour = np.asarray(poly, np.float32).reshape(-1, 1, 2)
    measure = tol > 0.0
    return [cv2.pointPolygonTest(contour, (float(x), float(y)), measure) >= -tol for x, y in pts]


def analyse_traffic(
    cam: CameraConfig, size: tuple[int, int], observer: TrafficObserver
) -> TrafficReport:
    """Judge the calibration against the observed tracks (see the module docstring)."""
    regions = _travel_regions(cam, size)
    paths = [p for p in observer.paths.values() if len(p.points) >= 2]
    vehicles = [p for p in paths if not p.is_person]
    # persons: riders whose two-wheeler the detector missed, or pedestrians; each counts only
    # where it moves like a vehicle and no two-wheeler it sat on was counted there
    persons = [p for p in paths if p.is_person]
    diag = math.hypot(*size)
    rider = _RiderTest(diag, observer.rider_params)
    for count, poly, travel in regions:
        counted: set[int] = set()
        for path in vehicles:
            if _count_path(count, poly, travel, path, MIN_MOVE * diag):
                counted.add(path.track_id)
        for path in persons:
            if path.carriers & counted:
                continue  # its two-wheeler is counted here
            if _count_path(count, poly, travel, path, MIN_MOVE * diag, rider=rider):
                rider.counted.add(id(path))
    counts = [r for r, _, _ in regions]
    findings: list[Finding] = []
    notes: list[Note] = []
    _judge_lanes(cam, counts, findings, notes)
    for count in counts:
        if count.has_travel and not count.key.startswith("intersection.approaches."):
            _judge_region(count, findings, zone=True)
    lines = _line_counts(cam, size, (vehicles, persons, rider), findings, notes)
    if cam.flow is not None:
        notes += _flow_order_observed(cam, size, counts, findings)
    riders = [p for p in persons if id(p) in rider.counted]
    return TrafficReport(
        seconds=observer.seconds,
        frames=observer.frames,
        tracks=len(vehicles),
        regions=counts,
        lines=lines,
        findings=findings,
        notes=notes,
        paths=vehicles + riders,
        riders=len(riders),
    )


@dataclass
class _RiderTest:
    """Whether a person track moves like a vehicle (:func:`moves_like_a_vehicle`), and which
    person tracks were counted somewhere."""

    diag: float
    params: RiderParams
    counted: set[int] = field(default_factory=set)

    def __call__(self, path: TrackPath, lo: int, hi: int, travel: Vec | None) -> bool:
        pts, times = path.points[lo : hi + 1], path.times[lo : hi + 1]
        return moves_like_a_vehicle(pts, times, travel, self.diag, self.params)


def _count_path(
    count: RegionCount,
    poly: list[Vec],
    travel: Vec | None,
    path: TrackPath,
    min_move: float,
    *,
    rider: _RiderTest | None = None,
) -> bool:
    """Add one track to a region's counts: its net motion while inside the region (a person
    track, with ``rider``, only when it moves like a vehicle there). True when counted."""
    inside = _inside_mask(poly, path.points)
    idx = [i for i, v in enumerate(inside) if v]
    if len(idx) < 2:
        return False
    net = _sub(path.points[idx[-1]], path.points[idx[0]])
    if _norm(net) < min_move:
        return False
    if rider is not None:
        if not rider(path, idx[0], idx[-1], travel):
            return False
        count.riders += 1
    count.tracks += 1
    count.motion.append(_unit(net))
    if travel is None:
        return True
    c = _dot(_unit(net), travel)
    if c >= ALONG_COS:
        count.along += 1
    elif c <= -ALONG_COS:
        count.against += 1
    else:
        count.across += 1
    return True


def _judge_region(count: RegionCount, findings: list[Finding], *, zone: bool) -> None:
    """A zone (or lane) where most traffic moves against or across its arrow."""
    if count.tracks < MIN_TRACKS:
        return
    s = count.shares()
    if s["against"] >= AGAINST_SHARE:
        findings.append(
            Finding(
                count.key,
                f"{count.label}: {100 * s['against']:.0f} % of {count.tracks} moving tracks go "
                "against the travel arrow — the arrow is reversed (swap its two points)"
                + (", or the zone lies on the other carriageway" if zone else ""),
                f"{count.label_zh}：{count.tracks} 条移动轨迹中 {100 * s['against']:.0f} % 逆着"
                "行驶方向箭头 — 箭头画反了（交换其两个点）"
                + ("，或该区域位于对向车行道" if zone else ""),
            )
        )
    elif s["across"] >= ACROSS_SHARE:
        findings.append(
            Finding(
                count.key,
                f"{count.label}: {100 * s['across']:.0f} % of {count.tracks} moving tracks move "
                "across the travel arrow — draw the arrow along the lane",
                f"{count.label_zh}：{count.tracks} 条移动轨迹中 {100 * s['across']:.0f} % 横穿"
                "行驶方向箭头 — 请沿车道方向画箭头",
            )
        )


def _judge_lanes(
    cam: CameraConfig, counts: list[RegionCount], findings: list[Finding], notes: list[Note]
) -> None:
    """Approach lanes: traffic against the arrows of every judged lane of an approach means the
    approach is drawn for the other direction (its lines and arrows reversed together, which
    the config cannot tell). One lane against while its neighbours agree is a lane shared with
    oncoming traffic (drawn over the centre line on purpose, as on hanoi_b): harmless for the
    red-light and movement rules, a problem only where the wrong-way rule watches the lanes."""
    calib = cam.intersection
    if calib is None:
        return
    watched = calib.wrong_way is not None and calib.wrong_way.use_lanes
    for a_i, ap in enumerate(calib.approaches):
        key = f"intersection.approaches.{a_i}."
        lanes = [r for r in counts if r.key.startswith(key)]
        judged = [r for r in lanes if r.tracks >= MIN_TRACKS]
        against = [r for r in judged if r.against / r.tracks >= AGAINST_SHARE]
        for r in judged:
            if r not in against:
                _judge_region(r, findings, zone=False)
        if not against:
            continue
        if len(against) == len(judged):
            shares = ", ".join(f"{r.ident} {100 * r.shares()['against']:.0f} %" for r in against)
            shares_zh = "，".join(f"{r.ident} {100 * r.shares()['against']:.0f} %" for r in against)
            findings.append(
                Finding(
                    f"{key}lanes",
                    f"approach {ap.id!r}: most traffic moves against the travel arrow of every "
                    f"lane with enough traffic ({shares}) — the approach is drawn for the "
                    "opposite direction: swap stop_line and entry_line and reverse every travel",
                    f"进口道 {ap.id!r}：每条交通量足够的车道上，多数车辆都逆着行驶方向箭头"
                    f"（{shares_zh}）— 该进口道画成了相反方向：请交换 stop_line 与 entry_line，"
                    "并反转每条车道的 travel",
                )
            )
            continue
        for r in against:
            pct = f"{100 * r.shares()['against']:.0f} %"
            text = (
                f"{r.label}: {pct} of {r.tracks} moving tracks go against its arrow while the "
                "approach's other lanes agree — a lane shared with oncoming traffic (or drawn "
                "on the opposite carriageway)"
            )
            zh = (
                f"{r.label_zh}：{r.tracks} 条移动轨迹中 {pct} 逆着箭头，而该进口道其他车道方向"
                "一致 — 这是与对向来车共用的车道（或画在了对向车行道上）"
            )
            if watched:
                findings.append(
                    Finding(
                        r.key,
                        f"{text}; the wrong-way rule watches the lanes (wrong_way.use_lanes) and "
                        "would charge that traffic: set use_lanes: false and draw a wrong-way "
                        "zone, or redraw the lane",
                        f"{zh}；逆行规则按车道监测（wrong_way.use_lanes），会把这些车辆判为逆行："
                        "请设 use_lanes: false 并画逆行监测区，或重画该车道",
                    )
                )
            else:
                notes.append(
                    Note(
                        f"note: {text}; harmless unless the wrong-way rule watches lanes",
                        f"提示：{zh}；只要逆行规则不按车道监测，就无影响",
                    )
                )


def _line_counts(
    cam: CameraConfig,
    size: tuple[int, int],
    tracks: tuple[list[TrackPath], list[TrackPath], _RiderTest],
    findings: list[Finding],
    notes: list[Note],
) -> list[LineCount]:
    calib = cam.intersection
    if calib is None:
        return []
    vehicles, persons, rider = tracks
    out: list[LineCount] = []
    for a_i, ap in enumerate(calib.approaches):
        count = LineCount(
            f"intersection.approaches.{a_i}.stop_line", f"stop line of {ap.id}", f"停止线 {ap.id}"
        )
        _count_crossings(count, ap, size, vehicles + persons, rider)
        out.append(count)
        n = count.forward + count.backward
        if n < MIN_TRACKS:
            continue
        if count.backward / n >= BACKWARD_SHARE:
            findings.append(
                Finding(
                    count.key,
                    f"approach {ap.id!r}: {count.backward} of {n} tracks cross the stop line "
                    "backwards (against the lanes' travel) — the stop line belongs to the other "
                    "direction of traffic, or the approach's lines and arrows are reversed",
                    f"进口道 {ap.id!r}：越过停止线的 {n} 条轨迹中有 {count.backward} 条反向越线"
                    "（逆着车道行驶方向）— 该停止线属于对向交通，或该进口道的线与箭头画反了",
                )
            )
        elif count.backward / n >= 1.0 - BACKWARD_SHARE:
            notes.append(
                Note(
                    f"note: {count.backward} of {n} tracks cross the stop line of {ap.id} "
                    "backwards: it reaches over road used by oncoming traffic (harmless for the "
                    "red-light rule, which charges forward crossings only)",
                    f"提示：越过 {ap.id} 停止线的 {n} 条轨迹中有 {count.backward} 条反向越线："
                    "停止线伸到了对向车辆行驶的路面上（对闯红灯规则无影响，该规则只判正向越线）",
                )
            )
        if count.forward >= MIN_TRACKS and count.outside / count.forward >= OUTSIDE_SHARE:
            xs = sorted(p[0] for p in count.outside_points)
            findings.append(
                Finding(
                    f"intersection.approaches.{a_i}.lanes",
                    f"approach {ap.id!r}: {count.outside} of {count.forward} forward stop-line "
                    f"crossings are outside every lane polygon (x {xs[0]:.0f}–{xs[-1]:.0f} px "
                    "on the line) — the lanes do not cover the road: widen them or add a lane",
                    f"进口道 {ap.id!r}：{count.forward} 次正向越过停止线中有 {count.outside} 次在"
                    f"所有车道多边形之外（停止线上 x {xs[0]:.0f}–{xs[-1]:.0f} px）— 车道未覆盖"
                    "整个路面：请加宽车道或增加车道",
                )
            )
    return out


def _count_crossings(
    count: LineCount,
    ap: Approach,
    size: tuple[int, int],
    paths: list[TrackPath],
    rider: _RiderTest,
) -> None:
    """Count the tracks crossing the approach's stop line (a person only when it moves like a
    vehicle along the approach, either way)."""
    line = StopLinePx.of(ap, size)
    lanes = [[to_px(p, size) for p in ln.polygon] for ln in ap.lanes]
    tol = 0.02 * math.hypot(*size)
    towards = approach_direction(ap, size)
    crossed: set[int] = set()
    for path in sorted(paths, key=lambda p: p.is_person):  # two-wheelers before their riders
        net, first_fwd = _net_crossing(path, line)
        if net == 0:
            continue
        if path.is_person:
            if path.carriers & crossed or not rider(path, 0, len(path.points) - 1, towards):
                continue
            count.riders += 1
            rider.counted.add(id(path))
        crossed.add(path.track_id)
        if net > 0 and first_fwd is not None:
            count.forward += 1
            if not any(_inside_mask(poly, [first_fwd], tol)[0] for poly in lanes):
                count.outside += 1
                count.outside_points.append(first_fwd)
        elif net < 0:
            count.backward += 1


def _net_crossing(path: TrackPath, line: StopLinePx) -> tuple[int, Vec | None]:
    """(forward minus backward crossings of the stop-line segment, where it first crossed
    forwards): jitter back and forth over the line nets out."""
    net = 0
    first_fwd: Vec | None = None
    for p, q in itertools.pairwise(path.points):
        hit = _segments_cross(p, q, line.a, line.b)
        if hit is None:
            continue
        step = 1 if line.signed(q) > line.signed(p) else -1
        net += step
        if step > 0 and first_fwd is None:
            t = hit[0]
            first_fwd = (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))
    return net, first_fwd


def _flow_order_observed(
    cam: CameraConfig, size: tuple[int, int], regions: list[RegionCount], findings: list[Finding]
) -> list[Note]:
    """Flow lane numbering against the observed direction of traffic in the flow zones."""
    motion = [m for r in regions if r.key.startswith("flow.") for m in r.motion]
    if len(motion) < MIN_TRACKS:
        return [
            Note(
                "flow lanes: not enough traffic to judge their numbering",
                "流量车道：交通量不足，无法判断车道编号",
            )
        ]
    mean = (sum(m[0] for m in motion) / len(motion), sum(m[1] for m in motion) / len(motion))
    if _norm(mean) < 0.5:
        return [
            Note(
                "flow lanes: traffic runs both ways; numbering not judged from it",
                "流量车道：交通双向行驶，不据此判断车道编号",
            )
        ]
    f = flow_order_finding(cam, _unit(mean), size, ("the observed traffic", "观测到的交通"))
    if f is not None:
        findings.append(f)
    return []
