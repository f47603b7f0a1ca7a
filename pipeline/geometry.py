"""Small shared geometry helpers: box intersection and IoU matrices, heading and direction
names, GA/T direction codes.

Angle conventions (used everywhere in sharpeyes):

* **Image heading** is measured clockwise from image "up" in degrees ``[0, 360)``:
  0 = up (towards the top edge), 90 = right, 180 = down, 270 = left. Image ``y`` grows
  downwards, so a displacement ``(dx, dy)`` has heading ``atan2(dx, -dy)``.
* **Compass bearing** is clockwise from north: 0 = N, 90 = E, 180 = S, 270 = W. When a camera's
  ``image_up_bearing_deg`` is known, ``bearing = image_up_bearing_deg + heading`` (a planar
  approximation: exact for a top-down view, approximate for an oblique one where image "up"
  means "away from the camera").
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

IMAGE_DIRECTIONS: tuple[str, ...] = (
    "up",
    "up-right",
    "right",
    "down-right",
    "down",
    "down-left",
    "left",
    "up-left",
)
"""Image-relative direction names, one per 45° sector centred on heading 0, 45, … 315."""

# GA/T 1400 HDirectionType (see docs/GAT1400.md §5.2, field "Direction"): the code names where the
# object comes FROM and goes TO. Indexed by the 45° sector of the travel bearing, starting at north:
# travelling N (bearing 0) is S→N = '4', NE is SW→NE = '5', E is W→E = '1', SE is NW→SE = '7',
# S is N→S = '3', SW is NE→SW = '6', W is E→W = '2', NW is SE→NW = '8'.
_GAT_CODE_BY_SECTOR: tuple[str, ...] = ("4", "5", "1", "7", "3", "6", "2", "8")
GAT_DIRECTION_OTHER = "9"


def intersection_matrix(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float32]:
    """Pairwise intersection areas of ``a`` (N, 4) and ``b`` (M, 4) xyxy boxes, (N, M)."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter: NDArray[np.float32] = (np.maximum(ix2 - ix1, 0.0) * np.maximum(iy2 - iy1, 0.0)).astype(
        np.float32, copy=False
    )
    return inter


def iou_matrix(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float32]:
    """Pairwise IoU of ``a`` (N, 4) and ``b`` (M, 4) xyxy boxes, as an (N, M) float32 matrix.

    Degenerate boxes (zero or negative area) have IoU 0 with everything.
    """
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    inter = intersection_matrix(a, b)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0.0) * np.maximum(a[:, 3] - a[:, 1], 0.0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0.0) * np.maximum(b[:, 3] - b[:, 1], 0.0)
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.where(union > 0.0, inter / np.maximum(union, 1e-9), 0.0)
    return out.astype(np.float32, copy=False)


def heading_deg(dx: float, dy: float) -> float | None:
    """Image heading of a displacement (image pixels, ``y`` down); None for a zero displacement."""
    if dx == 0.0 and dy == 0.0:
        return None
    return math.degrees(math.atan2(dx, -dy)) % 360.0


def _sector(angle_deg: float) -> int:
    """Index 0..7 of the 45° sector centred on 0, 45, … 315 that contains ``angle_deg``."""
    return int(((angle_deg % 360.0) + 22.5) // 45.0) % 8


def image_direction(heading: float) -> str:
    """Image-relative direction name ("up", "down-left", …) of an image heading."""
    return IMAGE_DIRECTIONS[_sector(heading)]


def compass_bearing(heading: float, image_up_bearing_deg: float) -> float:
    """Compass bearing of an image heading, given the bearing of the image's "up" direction."""
    return (image_up_bearing_deg + heading) % 360.0


def gat_direction_code(bearing: float) -> str:
    """GA/T 1400 HDirectionType code '1'..'8' of a travel bearing (0 = N, 90 = E).

    1 W→E, 2 E→W, 3 N→S, 4 S→N, 5 SW→NE, 6 NE→SW, 7 NW→SE, 8 SE→NW (GA/T 1400 §5.2);
    '9' (other) is left to callers for objects without a usable direction.
    """
    if not math.isfinite(bearing):
        return GAT_DIRECTION_OTHER
    return _GAT_CODE_BY_SECTOR[_sector(bearing)]
