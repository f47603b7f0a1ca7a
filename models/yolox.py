"""YOLOX (anchor-free) detector: top-left letterbox, BGR 0..255 input, grid/stride decode.

Facts from shared/models/MODELS.md: input ``images`` 1×3×416×416, BGR, no normalisation,
top-left letterbox padded with 114; output ``[1, 3549, 85]`` raw: per stride 8/16/32 (grids 52²,
26², 13² in that order, row-major) ``xy = (p + grid) · stride``, ``wh = exp(p) · stride``;
objectness and class scores already have the sigmoid applied. The decoded rows then go through
the same NMS as YOLOv5.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
from numpy.typing import NDArray

from sharpeyes.models.yolo import Batch, FloatArray, LetterboxGeometry, YoloV5Detector
from sharpeyes.pipeline.types import ImageBGR

STRIDES = (8, 16, 32)


@lru_cache(maxsize=8)
def grids(in_hw: tuple[int, int]) -> tuple[FloatArray, FloatArray]:
    """(N, 2) cell offsets (x, y) and (N, 1) strides for an input of size ``in_hw``."""
    cells: list[FloatArray] = []
    strides: list[FloatArray] = []
    for s in STRIDES:
        h, w = in_hw[0] // s, in_hw[1] // s
        xv, yv = np.meshgrid(np.arange(w), np.arange(h))
        cells.append(np.stack((xv, yv), axis=2).reshape(-1, 2).astype(np.float32))
        strides.append(np.full((h * w, 1), s, dtype=np.float32))
    return np.concatenate(cells), np.concatenate(strides)


def plan_top_left(src_hw: tuple[int, int], in_hw: tuple[int, int]) -> LetterboxGeometry:
    """YOLOX's ``preproc``: scale by r, truncate the size with int(), image at the top-left."""
    r = min(in_hw[0] / src_hw[0], in_hw[1] / src_hw[1])
    resized = (int(src_hw[0] * r), int(src_hw[1] * r))
    return LetterboxGeometry(src_hw, in_hw, resized, 0, 0, centred=False)


class YoloXDetector(YoloV5Detector):
    """YOLOX-Nano and friends (same output rows after decoding as YOLOv5)."""

    centre_letterbox = False

    def plan(self, images: Sequence[ImageBGR]) -> tuple[LetterboxGeometry, ...]:
        super().plan(images)  # validates the images
        return tuple(plan_top_left(im.shape[:2], self.input_hw) for im in images)

    def input_shape_for(self, src_hw: tuple[int, int]) -> tuple[int, int]:
        return self.input_hw

    def to_tensor(self, canvas: NDArray[np.uint8]) -> FloatArray:
        """NHWC BGR uint8 → NCHW BGR float32 in 0..255 (no normalisation)."""
        blob = cv2.dnn.blobFromImages(list(canvas), scalefactor=1.0, swapRB=False)
        return np.asarray(blob, dtype=np.float32)

    def decode(self, raw: FloatArray, batch: Batch) -> FloatArray:
        in_hw = (int(batch.tensor.shape[2]), int(batch.tensor.shape[3]))
        cells, strides = grids(in_hw)
        out = raw.astype(np.float32, copy=True)
        out[..., :2] = (out[..., :2] + cells) * strides
        out[..., 2:4] = np.exp(out[..., 2:4]) * strides
        return out
