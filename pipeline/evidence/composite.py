"""The violation composite (违章合成图): the three evidence images and the plate close-up.

Layout is a 2×2 grid — image 1 | image 2 / image 3 | close-up — each cell the size of the
evidence images (scaled by ``cell_scale``), so the composite keeps their detail.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from sharpeyes.pipeline.types import ImageBGR

BACKGROUND = (32, 32, 32)


def _fit(image: ImageBGR, w: int, h: int) -> ImageBGR:
    """``image`` scaled to fit a ``w``×``h`` cell, centred on the background colour."""
    cell = np.empty((h, w, 3), np.uint8)
    cell[:] = BACKGROUND
    ih, iw = image.shape[:2]
    f = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * f)), max(1, round(ih * f))
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
    scaled = np.asarray(cv2.resize(image, (nw, nh), interpolation=interp), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    cell[y : y + nh, x : x + nw] = scaled
    return cell


def compose(
    images: Sequence[ImageBGR], closeup: ImageBGR | None, *, cell_scale: float = 1.0
) -> ImageBGR:
    """2×2 composite of up to three images and the close-up (missing cells stay blank)."""
    if not images:
        raise ValueError("a composite needs at least one evidence image")
    if not 0.05 <= cell_scale <= 1.0:
        raise ValueError(f"cell_scale must be in [0.05, 1], got {cell_scale}")
    h0, w0 = images[0].shape[:2]
    w, h = max(1, round(w0 * cell_scale)), max(1, round(h0 * cell_scale))
    cells: list[ImageBGR | None] = [*list(images[:3]), None, None, None][:3]
    cells.append(closeup)
    out = np.empty((2 * h, 2 * w, 3), np.uint8)
    out[:] = BACKGROUND
    for i, img in enumerate(cells):
        if img is None:
            continue
        r, c = divmod(i, 2)
        out[r * h : (r + 1) * h, c * w : (c + 1) * w] = _fit(img, w, h)
    return out


def cell_region(index: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """Row and column slices of cell ``index`` (0–3) in a composite of ``shape``."""
    h, w = shape[0] // 2, shape[1] // 2
    r, c = divmod(index, 2)
    return slice(r * h, (r + 1) * h), slice(c * w, (c + 1) * w)
