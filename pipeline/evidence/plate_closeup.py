"""The close-up of an evidence record: the plate region of the sharpest vehicle frame, enlarged.

When no plate was found the close-up is the lower part of the vehicle box (where a plate
would be), so a reviewer still sees why the plate is marked unreadable. A pedestrian carries
no plate: its close-up is the upper body (head and shoulders, where a face is), as the
deployed pedestrian systems' four-in-one image shows (RED_LIGHT.md).
"""

from __future__ import annotations

import cv2
import numpy as np

from sharpeyes.pipeline.types import Box, ImageBGR

MIN_WIDTH = 440  # px: a single-layer Chinese plate is 440 mm wide, so about 1 px per mm


def _crop(image: ImageBGR, x1: float, y1: float, x2: float, y2: float) -> ImageBGR | None:
    h, w = image.shape[:2]
    a, b = max(0, int(x1)), max(0, int(y1))
    c, d = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
    if c - a < 2 or d - b < 2:
        return None
    return image[b:d, a:c]


def _enlarge(crop: ImageBGR, min_width: int) -> ImageBGR:
    if crop.shape[1] >= min_width:
        return crop.copy()
    f = min_width / crop.shape[1]
    size = (min_width, max(1, round(crop.shape[0] * f)))
    return np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC), np.uint8)


def plate_closeup(
    image: ImageBGR,
    plate_box: Box | None,
    vehicle_box: Box | None,
    *,
    margin: float = 0.25,
    min_width: int = MIN_WIDTH,
) -> ImageBGR:
    """Close-up of ``plate_box`` (with ``margin`` of its size around it), at least
    ``min_width`` wide. Without a plate box: the lower 40 % of the vehicle box; without
    either: the whole image."""
    crop: ImageBGR | None = None
    if plate_box is not None:
        mx = (plate_box.x2 - plate_box.x1) * margin
        my = (plate_box.y2 - plate_box.y1) * margin
        crop = _crop(
            image, plate_box.x1 - mx, plate_box.y1 - my, plate_box.x2 + mx, plate_box.y2 + my
        )
    if crop is None and vehicle_box is not None:
        top = vehicle_box.y2 - (vehicle_box.y2 - vehicle_box.y1) * 0.4
        crop = _crop(image, vehicle_box.x1, top, vehicle_box.x2, vehicle_box.y2)
    if crop is None:
        crop = image
    return _enlarge(crop, min_width)


def person_closeup(
    image: ImageBGR, person_box: Box | None, *, min_width: int = MIN_WIDTH
) -> ImageBGR:
    """The upper 45 % of ``person_box`` (head and shoulders), widened by 15 % of its width on
    each side, at least ``min_width`` wide; without a box, the whole image."""
    crop: ImageBGR | None = None
    if person_box is not None:
        w = person_box.x2 - person_box.x1
        h = person_box.y2 - person_box.y1
        crop = _crop(
            image,
            person_box.x1 - 0.15 * w,
            person_box.y1 - 0.05 * h,
            person_box.x2 + 0.15 * w,
            person_box.y1 + 0.45 * h,
        )
    return _enlarge(image if crop is None else crop, min_width)
