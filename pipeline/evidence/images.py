"""Evidence image overlays: a text band with the legal facts and the vehicle box highlighted.

Every evidence image keeps the camera's full resolution and 24-bit colour. The time shown is
Beijing time (UTC+8) to the millisecond, computed from the frame's ``wall_time_ms`` — never
from the clock when the code runs. Chinese text is drawn with a CJK TrueType font through
Pillow. The font is looked up in this order: a configured path (the builder's ``font_path``,
then the file named by ``SHARPEYES_FONT``), the known system paths (Debian's
``fonts-wqy-zenhei`` / ``fonts-noto-cjk``, installed by the Dockerfile and CI), then a
pip-installed font package (``FONT_PACKAGES``); with none, the labels fall back to ASCII drawn
with OpenCV and :func:`font_status` says why (the record then says ``overlay_language: en``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from sharpeyes.pipeline.types import Box, ImageBGR

log = logging.getLogger(__name__)

BEIJING = timezone(timedelta(hours=8), "CST")
FONT_ENV = "SHARPEYES_FONT"
FONT_CANDIDATES: tuple[str, ...] = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
# Importable pip packages that ship CJK font files, searched last. None is vetted yet (the
# Debian fonts are what the Dockerfile and CI install); name one here once its licence and
# contents are checked.
FONT_PACKAGES: tuple[str, ...] = ()
FONT_SUFFIXES = (".ttc", ".otf", ".ttf")
BOX_COLOR = (0, 0, 255)  # BGR red
STOP_LINE_COLOR = (0, 255, 255)  # BGR yellow
TEXT_COLOR = (255, 255, 255)


def beijing_time_text(wall_time_ms: int) -> str:
    """``YYYY-MM-DD HH:MM:SS.mmm`` in Beijing time for a UTC epoch-milliseconds instant."""
    t = datetime.fromtimestamp(wall_time_ms // 1000, tz=UTC).astimezone(BEIJING)
    return f"{t:%Y-%m-%d %H:%M:%S}.{wall_time_ms % 1000:03d}"


def beijing_date(wall_time_ms: int) -> str:
    """``YYYYMMDD`` (Beijing date) of a UTC epoch-milliseconds instant."""
    return f"{datetime.fromtimestamp(wall_time_ms // 1000, tz=UTC).astimezone(BEIJING):%Y%m%d}"


@dataclass(frozen=True, slots=True)
class OverlayLine:
    """One overlay line: segments as (Chinese text, ASCII fallback text)."""

    segments: tuple[tuple[str, str], ...]

    def text(self, chinese: bool) -> str:
        return "    ".join(zh if chinese else en for zh, en in self.segments)


def _package_font() -> Path | None:
    """A CJK font file shipped by an installed pip package of ``FONT_PACKAGES``, or None."""
    import importlib.util

    for name in FONT_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for root in (spec.submodule_search_locations or []) if spec is not None else []:
            found = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in FONT_SUFFIXES)
            if found:
                return found[0]
    return None


@cache
def find_cjk_font(configured: str | None = None) -> Path | None:
    """The first CJK-capable font file found, or None: ``configured``, ``$SHARPEYES_FONT``, the
    known system paths, then a pip font package."""
    env = os.environ.get(FONT_ENV)
    for cand in (configured, env, *FONT_CANDIDATES):
        if cand and Path(cand).is_file():
            return Path(cand)
    return _package_font()


def font_status(configured: str | None = None) -> tuple[Path | None, str]:
    """(font used for Chinese overlays or None, a sentence saying which and why)."""
    if not _pillow_available():
        return None, "Pillow is not installed: overlay in English"
    font = find_cjk_font(configured) if configured else find_cjk_font()
    if font is None:
        looked = ", ".join([*(c for c in (configured,) if c), f"${FONT_ENV}", *FONT_CANDIDATES])
        return None, f"no CJK font found (looked in {looked} and pip packages {FONT_PACKAGES})"
    return font, f"CJK font {font}"


@cache
def _pil_font(path: Path, size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(str(path), size)


def _pillow_available() -> bool:
    try:
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True


def can_render_chinese(configured: str | None = None) -> bool:
    return font_status(configured)[0] is not None


def draw_box(image: ImageBGR, box: Box, color: tuple[int, int, int] = BOX_COLOR) -> None:
    """Outline ``box`` in place, thickness relative to the image height, with a marker above
    it (a filled triangle pointing down at the subject)."""
    t = max(2, image.shape[0] // 300)
    p1 = (int(box.x1), int(box.y1))
    p2 = (int(box.x2), int(box.y2))
    cv2.rectangle(image, p1, p2, color, t, cv2.LINE_AA)
    s = max(6, image.shape[0] // 60)
    cx, top = (p1[0] + p2[0]) // 2, p1[1] - t
    tri = np.array([[cx - s, top - 2 * s], [cx + s, top - 2 * s], [cx, top]], np.int32)
    cv2.fillPoly(image, [tri], color, cv2.LINE_AA)


def draw_line(
    image: ImageBGR,
    line: tuple[tuple[float, float], tuple[float, float]],
    color: tuple[int, int, int] = STOP_LINE_COLOR,
) -> None:
    """Draw a calibrated line (stop line) in place, in frame pixels."""
    t = max(2, image.shape[0] // 400)
    (ax, ay), (bx, by) = line
    cv2.line(image, (round(ax), round(ay)), (round(bx), round(by)), color, t, cv2.LINE_AA)


def _ascii(text: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)


def _darken(region: ImageBGR) -> None:
    """Darken a band so white text reads on any background while the scene stays visible."""
    region[:] = (region.astype(np.uint16) * 2 // 5).astype(np.uint8)


SEPARATOR = "    "
MIN_FONT_PX = 10
Measure = Callable[[str, int], float]


def wrap_lines(
    lines: list[OverlayLine], chinese: bool, width: float, size: int, measure: Measure
) -> list[str]:
    """Rows of text: each line's segments packed greedily into rows no wider than ``width``."""
    rows: list[str] = []
    for ln in lines:
        cur = ""
        for zh, en in ln.segments:
            seg = zh if chinese else en
            cand = f"{cur}{SEPARATOR}{seg}" if cur else seg
            if cur and measure(cand, size) > width:
                rows.append(cur)
                cur = seg
            else:
                cur = cand
        if cur:
            rows.append(cur)
    return rows


def layout(
    image: ImageBGR, lines: list[OverlayLine], chinese: bool, measure: Measure
) -> tuple[list[str], int]:
    """(rows, font px): start at 1/36 of the image height (at least 16 px) and shrink until
    every row fits the width and the band takes at most 40 % of the height."""
    h, w = int(image.shape[0]), int(image.shape[1])
    size = max(16, h // 36)
    while True:
        rows = wrap_lines(lines, chinese, w - size, size, measure)
        fits = all(measure(r, size) <= w - size for r in rows)
        band = len(rows) * (size + size // 3) + size
        if size <= MIN_FONT_PX or (fits and band <= h * 2 // 5):
            return rows, size
        size -= 1


def _pil_measure(font_path: Path) -> Measure:
    return lambda text, size: float(_pil_font(font_path, size).getlength(text))


def _cv2_scale(size: int) -> tuple[float, int]:
    return size / 30.0, max(1, size // 15)


def _cv2_measure(text: str, size: int) -> float:
    scale, thick = _cv2_scale(size)
    (tw, _), _ = cv2.getTextSize(_ascii(text), cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    return float(tw)


def _band_height(image: ImageBGR, rows: int, size: int) -> int:
    pad = size // 3
    return min(int(image.shape[0]), pad * 2 + rows * (size + pad))


def _draw_rows_pil(band: ImageBGR, rows: list[str], font_path: Path, size: int) -> None:
    from PIL import Image, ImageDraw

    pad = size // 3
    rgb = Image.fromarray(np.ascontiguousarray(band[:, :, ::-1]))
    draw = ImageDraw.Draw(rgb)
    font = _pil_font(font_path, size)
    for i, row in enumerate(rows):
        draw.text((size // 2, pad + i * (size + pad)), row, font=font, fill=TEXT_COLOR)
    band[:] = np.asarray(rgb)[:, :, ::-1]


def _draw_rows_cv2(band: ImageBGR, rows: list[str], size: int) -> None:
    scale, thick = _cv2_scale(size)
    pad = size // 3
    for i, row in enumerate(rows):
        y = pad + i * (size + pad) + size - pad // 2
        org = (size // 2, y)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(band, _ascii(row), org, font, scale, TEXT_COLOR, thick, cv2.LINE_AA)


def render_overlay(
    image: ImageBGR,
    lines: list[OverlayLine],
    boxes: list[Box] | None = None,
    *,
    position: Literal["top", "bottom"] = "top",
    lines_px: list[tuple[tuple[float, float], tuple[float, float]]] | None = None,
    font_path: str | None = None,
) -> ImageBGR:
    """A copy of ``image`` (same size, 3 channels) with ``lines_px`` (the stop line) drawn,
    ``boxes`` outlined and marked, and a text band at the top or bottom (choose the side that
    does not hide the signal head)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"evidence image must be H×W×3 uint8 BGR, got {image.shape} {image.dtype}")
    out = image.copy()
    for ln in lines_px or ():
        draw_line(out, ln)
    for box in boxes or ():
        draw_box(out, box)
    font = find_cjk_font(font_path) if font_path else find_cjk_font()
    chinese = font is not None and _pillow_available()
    measure = _pil_measure(font) if font is not None and chinese else _cv2_measure
    rows, size = layout(out, lines, chinese, measure)
    band_h = _band_height(out, len(rows), size)
    band = out[:band_h] if position == "top" else out[out.shape[0] - band_h :]
    _darken(band)
    if font is not None and chinese:
        _draw_rows_pil(band, rows, font, size)
    else:
        _draw_rows_cv2(band, rows, size)
    return out


def encode_jpeg(image: ImageBGR, quality: int = 92) -> bytes:
    """Baseline 24-bit colour JPEG bytes of a BGR image."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())
