"""Render a scenario to an MP4 (drawn road, stop line, crosswalk, signal heads with real lamp
colours and a countdown beside the main head, vehicle-like boxes, noise) with its ground truth.

The COCO detector does not reliably see drawn rectangles as cars, so end-to-end tests drive
the rules from :class:`ScriptedDetector` (ground-truth boxes with jitter) while the signal
state is read from the rendered pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from sharpeyes.pipeline.protocols import DetectorInfo
from sharpeyes.pipeline.types import Detections, EventType, ImageBGR, LampColor, ObjectKind
from tests.scenarios.catalog import SCENARIOS
from tests.scenarios.model import FRAME_SIZE, Scenario, color_at
from tests.scenarios.scene import CROSSWALK, LANE_X, MAIN_HEAD, PED_HEAD, ROAD, STOP_Y
from tests.scenarios.signal_catalog import SignalScenario

LAMP_BGR = {
    LampColor.RED: (40, 40, 235),
    LampColor.AMBER: (10, 165, 250),
    LampColor.GREEN: (150, 225, 40),
}
_DARK_LAMP = (40, 40, 40)


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What a rendered video contains."""

    scenario: str
    path: Path
    fps: float
    n_frames: int
    frame_size: tuple[int, int]
    main_colors: tuple[LampColor, ...]
    ped_colors: tuple[LampColor, ...]
    expected: tuple[tuple[int, EventType], ...]


def _px(p: tuple[float, float]) -> tuple[int, int]:
    return round(p[0] * FRAME_SIZE[0]), round(p[1] * FRAME_SIZE[1])


def _background() -> ImageBGR:
    w, h = FRAME_SIZE
    img = np.full((h, w, 3), (120, 125, 125), np.uint8)
    cv2.rectangle(img, _px((ROAD[0], 0.0)), _px((ROAD[1], 1.0)), (85, 85, 88), -1)
    cv2.rectangle(img, _px((0.0, 0.3)), _px((1.0, 0.56)), (85, 85, 88), -1)
    for x in LANE_X[1:3]:
        for y in np.arange(STOP_Y + 0.03, 1.0, 0.08):
            cv2.line(img, _px((x, y)), _px((x, y + 0.04)), (230, 230, 230), 2)
    cv2.line(img, _px((LANE_X[0], STOP_Y)), _px((LANE_X[3], STOP_Y)), (240, 240, 240), 4)
    for x in np.arange(ROAD[0] + 0.01, ROAD[1], 0.04):
        cv2.rectangle(
            img, _px((x, CROSSWALK[0])), _px((x + 0.02, CROSSWALK[1])), (225, 225, 225), -1
        )
    return img


def _head(
    img: ImageBGR,
    region: tuple[tuple[float, float], tuple[float, float]],
    lamps: list[LampColor],
    lit: LampColor | None,
    lamp_layer: ImageBGR,
) -> None:
    (x1, y1), (x2, y2) = _px(region[0]), _px(region[1])
    cv2.rectangle(img, (x1 - 2, y1 - 2), (x2 + 2, y2 + 2), (20, 20, 20), -1)
    cell = (y2 - y1) / len(lamps)
    r = max(2, int(min(x2 - x1, cell) * 0.42))
    for k, c in enumerate(lamps):
        centre = ((x1 + x2) // 2, int(y1 + cell * (k + 0.5)))
        on = c is lit
        cv2.circle(img, centre, r, LAMP_BGR[c] if on else _DARK_LAMP, -1)
        if on:
            cv2.circle(lamp_layer, centre, r + 2, LAMP_BGR[c], -1)


def _actor(
    img: ImageBGR,
    box: tuple[float, float, float, float],
    kind: ObjectKind,
    color: tuple[int, int, int],
) -> None:
    w, h = FRAME_SIZE
    x1, y1, x2, y2 = int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)
    if kind is ObjectKind.PERSON:
        cv2.rectangle(img, (x1, y1 + (y2 - y1) // 4), (x2, y2), (60, 90, 160), -1)
        cv2.circle(
            img, ((x1 + x2) // 2, y1 + (y2 - y1) // 8), max(2, (x2 - x1) // 2), (150, 180, 210), -1
        )
        return
    cv2.rectangle(img, (x1, y1), (x2, y2), color, -1)
    cv2.rectangle(
        img, (x1 + 3, y1 + (y2 - y1) // 5), (x2 - 3, y1 + (y2 - y1) // 2), (60, 50, 45), -1
    )
    cv2.rectangle(img, (x1, y1), (x2, y2), (30, 30, 30), 1)


def noise_bank(s: Scenario, rng: np.random.Generator, n: int = 7) -> list[np.ndarray]:
    """A few precomputed sensor-noise images (cheaper than fresh noise per frame)."""
    shape = (FRAME_SIZE[1], FRAME_SIZE[0], 3)
    sigma = 5.0 if s.night else 3.0
    return [np.round(rng.normal(0.0, sigma, shape)).astype(np.int16) for _ in range(n)]


def render_frame(s: Scenario, i: int, bg: ImageBGR, noise_bank: list[np.ndarray]) -> ImageBGR:
    t = s.pts(i)
    img = bg.copy()
    lamp_layer = np.zeros_like(img)
    dark = bool(s.flicker_every and i % s.flicker_every == 0)
    main, since = color_at(s.phases, t)
    ped, _ = color_at(s.ped_phases, t)
    _head(
        img,
        MAIN_HEAD,
        [LampColor.RED, LampColor.AMBER, LampColor.GREEN],
        None if dark else main,
        lamp_layer,
    )
    _head(img, PED_HEAD, [LampColor.RED, LampColor.GREEN], ped, lamp_layer)
    digits_at = _px((MAIN_HEAD[0][0] - 0.06, MAIN_HEAD[0][1] + 0.06))
    cv2.putText(
        img,
        f"{max(0, 20 - int(t - since)):02d}",
        digits_at,
        cv2.FONT_HERSHEY_SIMPLEX,
        0.6,
        LAMP_BGR.get(main, (200, 200, 200)),
        2,
    )
    for a in sorted(s.actors, key=lambda a: (a.anchor_at(t) or (0, 0))[1]):
        box = a.box_at(t)
        if box is not None and not any(g0 <= t < g1 for g0, g1 in a.gaps):
            _actor(img, box, a.kind, a.color_bgr)
    if s.night:
        dim = (img.astype(np.float32) * 0.3).astype(np.uint8)
        bloom = cv2.GaussianBlur(lamp_layer, (0, 0), 3.0)
        img = np.asarray(cv2.add(dim, cv2.add(lamp_layer, bloom)), np.uint8)
    noise = noise_bank[i % len(noise_bank)]
    out: ImageBGR = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return out


def render_scenario(name: str, path: Path) -> GroundTruth:
    """Write scenario ``name`` as an H.264 MP4 at ``path`` and return its ground truth."""
    s = SCENARIOS[name]
    rng = np.random.default_rng(s.seed + 2)
    bg = _background()
    bank = noise_bank(s, rng)
    fps = Fraction(s.fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        stream: Any = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = FRAME_SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "ultrafast", "g": str(int(2 * s.fps))}
        for i in range(s.n_frames):
            vf = av.VideoFrame.from_ndarray(render_frame(s, i, bg, bank), format="bgr24")
            for pkt in stream.encode(vf):
                out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)
    return GroundTruth(
        s.name,
        path,
        s.fps,
        s.n_frames,
        FRAME_SIZE,
        tuple(color_at(s.phases, s.pts(i))[0] for i in range(s.n_frames)),
        tuple(color_at(s.ped_phases, s.pts(i))[0] for i in range(s.n_frames)),
        s.expected,
    )


class ScriptedDetector:
    """A :class:`pipeline.protocols.Detector` that returns a scenario's ground-truth boxes.

    Frames are counted in call order (one per image), so feed it every frame of the rendered
    video exactly once, in order. Boxes get Gaussian jitter of ``jitter_px``.
    """

    def __init__(self, name: str, jitter_px: float | None = None, seed: int = 0) -> None:
        self._s = SCENARIOS[name]
        self._jitter = self._s.jitter_px if jitter_px is None else jitter_px
        self._rng = np.random.default_rng(seed)
        self._i = 0

    @property
    def info(self) -> DetectorInfo:
        return DetectorInfo("scripted", (FRAME_SIZE[1], FRAME_SIZE[0]), ("scripted",), 0, None)

    def detect(self, images: list[ImageBGR]) -> list[Detections]:
        out = []
        for _ in images:
            out.append(self._boxes(self._s.pts(self._i)))
            self._i += 1
        return out

    def _boxes(self, t: float) -> Detections:
        w, h = FRAME_SIZE
        rows = [(a, b) for a in self._s.actors if (b := a.box_at(t)) is not None]
        xyxy = np.array([[b[0] * w, b[1] * h, b[2] * w, b[3] * h] for _, b in rows], np.float32)
        xyxy = xyxy.reshape(-1, 4) + self._rng.normal(0.0, self._jitter, (len(rows), 4)).astype(
            np.float32
        )
        return Detections.create(
            xyxy, [0.85] * len(rows), [a.class_id for a, _ in rows], [int(a.kind) for a, _ in rows]
        )


# -- signal-only scenarios ---------------------------------------------------------------------


def _lit_bgr(c: LampColor, dim: float) -> tuple[int, int, int]:
    lit, dark = LAMP_BGR[c], _DARK_LAMP
    b, g, r = (round(d + dim * (v - d)) for v, d in zip(lit, dark, strict=True))
    return b, g, r


def _signal_head(
    img: ImageBGR,
    region: tuple[tuple[float, float], tuple[float, float]],
    lamps: list[LampColor],
    lit: LampColor | None,
    dim: float,
) -> None:
    (x1, y1), (x2, y2) = _px(region[0]), _px(region[1])
    cv2.rectangle(img, (x1 - 2, y1 - 2), (x2 + 2, y2 + 2), (20, 20, 20), -1)
    cell = (y2 - y1) / len(lamps)
    r = max(2, int(min(x2 - x1, cell) * 0.42))
    for k, c in enumerate(lamps):
        centre = ((x1 + x2) // 2, int(y1 + cell * (k + 0.5)))
        cv2.circle(img, centre, r, _lit_bgr(c, dim) if c is lit else _DARK_LAMP, -1)


def signal_truth(s: SignalScenario, i: int) -> tuple[LampColor, LampColor]:
    """Ground truth (main, ped) colours of frame ``i`` of a signal scenario."""
    t = s.pts(i)
    main = color_at(s.phases, t)[0]
    if s.look.dark_from_s is not None and t >= s.look.dark_from_s:
        main = LampColor.OFF
    return main, color_at(s.ped_phases, t)[0]


def render_signal_frame(
    s: SignalScenario, i: int, bg: ImageBGR | None = None, bank: list[np.ndarray] | None = None
) -> ImageBGR:
    """Frame ``i`` of a signal-only scenario: background, both heads, camera perturbations."""
    look = s.look
    if bg is None:
        bg = _background()
    if bank is None:
        bank = signal_noise_bank(s)
    img = bg.copy()
    t = s.pts(i)
    main, ped = signal_truth(s, i)
    drawn: LampColor | None = None if main is LampColor.OFF else main
    if look.flicker_every and i % look.flicker_every == 0:
        drawn = None
    if i in look.dark_frames:
        drawn = None
    for frame_i, c in look.wrong_frames:
        if frame_i == i:
            drawn = c
    _signal_head(img, MAIN_HEAD, [LampColor.RED, LampColor.AMBER, LampColor.GREEN], drawn, look.dim)
    _signal_head(img, PED_HEAD, [LampColor.RED, LampColor.GREEN], ped, 1.0)
    digits_at = _px((MAIN_HEAD[0][0] - 0.06, MAIN_HEAD[0][1] + 0.06))
    since = color_at(s.phases, t)[1]
    cv2.putText(
        img,
        f"{max(0, 20 - int(t - since)):02d}",
        digits_at,
        cv2.FONT_HERSHEY_SIMPLEX,
        0.6,
        LAMP_BGR.get(main, (200, 200, 200)),
        2,
    )
    gains = np.array(look.wb_bgr, np.float32) * look.exposure
    f = img.astype(np.float32) * gains
    if look.blur_sigma > 0:
        f = cv2.GaussianBlur(f, (0, 0), look.blur_sigma)
    f += bank[i % len(bank)]
    out: ImageBGR = np.clip(f, 0, 255).astype(np.uint8)
    if look.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, look.jpeg_quality])
        assert ok
        out = np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)
    return out


def signal_noise_bank(s: SignalScenario, n: int = 7) -> list[np.ndarray]:
    """Sensor noise for a signal scenario (float32, sigma 3 grey levels)."""
    rng = np.random.default_rng(s.seed)
    shape = (FRAME_SIZE[1], FRAME_SIZE[0], 3)
    return [rng.normal(0.0, 3.0, shape).astype(np.float32) for _ in range(n)]


def signal_background() -> ImageBGR:
    """The drawn scene without actors or heads (shared by every signal scenario)."""
    return _background()
