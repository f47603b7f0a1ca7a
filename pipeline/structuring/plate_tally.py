"""How large a camera's plates are in its picture: what the checkpoint stage found while reading.

An installer aims a checkpoint camera so that its plates can be read; whether they can is a
matter of pixels. :class:`PlateTally` counts the plates the stage's reads found, how many it
read, how many were too narrow to read (:data:`sharpeyes.models.plate.MIN_TEXT_PX`: their
province glyph comes out wrong) and keeps their widths, so that ``analyze``, ``camera-check``
and a live camera's health (:func:`finding`, past :data:`MIN_PLATES` plates) can say "plates
41 px wide: too small to read, 50 px needed — zoom in" instead of a camera that silently reads
nothing. Widths are the plate boxes' (axis-aligned, picture pixels).
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

__all__ = [
    "KEPT_WIDTHS",
    "MIN_PLATES",
    "PlateSizes",
    "PlateTally",
    "describe",
    "finding",
    "too_small_to_read",
]

KEPT_WIDTHS = 500
"""Latest plate widths kept (the median follows a camera whose zoom changed)."""

MIN_PLATES = 5
"""Plates found before their median width is judged (a camera is not told off for one plate)."""


@dataclass(frozen=True, slots=True)
class PlateSizes:
    """A summary of :class:`PlateTally`: plates found, read, too small, and their median width."""

    seen: int
    read: int
    too_small: int
    median_px: float | None
    needed_px: float


@dataclass(slots=True)
class PlateTally:
    """Plates found by one camera's checkpoint reads (see module docstring)."""

    needed_px: float
    seen: int = 0
    read: int = 0
    too_small: int = 0
    widths: deque[float] = field(default_factory=lambda: deque(maxlen=KEPT_WIDTHS))

    def add(self, width_px: float, text: str | None) -> None:
        """One read that found a plate ``width_px`` wide; ``text`` None when not read."""
        self.seen += 1
        self.widths.append(float(width_px))
        if text is not None:
            self.read += 1
        elif width_px < self.needed_px:
            self.too_small += 1

    def sizes(self) -> PlateSizes:
        median = statistics.median(self.widths) if self.widths else None
        return PlateSizes(self.seen, self.read, self.too_small, median, self.needed_px)


def describe(sizes: PlateSizes, lang: str = "en") -> str:
    """One line about the camera's plates for ``analyze`` and ``camera-check`` (``lang`` "en" or
    "zh"): found, read, too small, their median width — and, when the median plate is too small
    to read, what to do about it."""
    zh = lang == "zh"
    text = (
        f"检出 {sizes.seen} 次，识别 {sizes.read} 次"
        if zh
        else f"{sizes.seen} found, {sizes.read} read"
    )
    if sizes.too_small:
        text += (
            f"，{sizes.too_small} 次过小无法识别"
            if zh
            else f", {sizes.too_small} too small to read"
        )
    if sizes.median_px is not None:
        small = sizes.median_px < sizes.needed_px
        if zh:
            text += f"（中位宽度 {sizes.median_px:.0f} 像素"
            text += f"，需 {sizes.needed_px:.0f} 像素：请拉近焦距或移近摄像机）" if small else "）"
        else:
            text += f" (median {sizes.median_px:.0f} px wide"
            text += (
                f", {sizes.needed_px:.0f} px needed: zoom in or move the camera closer)"
                if small
                else ")"
            )
    return ("车牌：" if zh else "plates: ") + text


def too_small_to_read(sizes: PlateSizes, min_plates: int = MIN_PLATES) -> bool:
    """Whether the camera's plates are too small to read: their median width is under the
    width a plate needs, with at least ``min_plates`` of them found."""
    return (
        sizes.median_px is not None
        and sizes.seen >= min_plates
        and sizes.median_px < sizes.needed_px
    )


def finding(sizes: PlateSizes, lang: str = "en", min_plates: int = MIN_PLATES) -> str | None:
    """What to tell the camera's operator when its plates are too small to read
    (:func:`too_small_to_read`), with the fix, in ``lang`` ("en" or "zh"); None otherwise."""
    if not too_small_to_read(sizes, min_plates) or sizes.median_px is None:
        return None
    width, needed = f"{sizes.median_px:.0f}", f"{sizes.needed_px:.0f}"
    if lang == "zh":
        return (
            f"车牌在画面中宽约 {width} 像素（{sizes.seen} 次检出的中位数），过小无法识别，需 "
            f"{needed} 像素——请拉近焦距或移近摄像机"
        )
    return (
        f"plates are {width} px wide in the picture (median of {sizes.seen} found): too small "
        f"to read, {needed} px needed — zoom in or move the camera closer"
    )
