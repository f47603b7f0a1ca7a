"""The fused YOLO preprocessing (resize straight into the canvas, one multiply to NCHW float)
must give the tensor of the reference path it replaced: a letterboxed uint8 canvas filled by
``cv2.resize`` + copy, then ``cv2.dnn.blobFromImages`` — within 1e-6 (it is bit-identical)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from sharpeyes.models.yolo import PAD_VALUE, YoloV5Detector, letterbox_into, nchw_float

ImageList = list[NDArray[np.uint8]]


@dataclass
class _FakeModel:
    """Just what YoloV5Detector reads of its model to plan and preprocess."""

    fixed_hw: tuple[int, int] | None
    fixed_batch: int | None = None


def detector(static_hw: tuple[int, int] | None = None) -> YoloV5Detector:
    return YoloV5Detector(_FakeModel(static_hw), name="fake")  # type: ignore[arg-type]


def images(*shapes: tuple[int, int], seed: int = 0) -> ImageList:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]


def reference_tensor(det: YoloV5Detector, imgs: ImageList) -> NDArray[np.float32]:
    """The preprocessing as it was: canvas, resize + copy, blobFromImages."""
    geometry = det.plan(imgs)
    h, w = geometry[0].in_hw
    canvas = np.full((len(imgs), h, w, 3), PAD_VALUE, dtype=np.uint8)
    for img, geo, dst in zip(imgs, geometry, canvas, strict=True):
        rh, rw = geo.resized_hw
        src = img if img.shape[:2] == (rh, rw) else cv2.resize(img, (rw, rh))
        dst[geo.top : geo.top + rh, geo.left : geo.left + rw] = src
    blob = cv2.dnn.blobFromImages(list(canvas), scalefactor=1 / 255.0, swapRB=True)
    return np.asarray(blob, dtype=np.float32)


CASES = {
    "720p batch of 8": [(720, 1280)] * 8,
    "1080p": [(1080, 1920)],
    "already input size": [(384, 640), (384, 640)],
    "portrait (left/right padding)": [(1080, 810)],
    "mixed sizes share a canvas": [(720, 1280), (480, 640), (333, 517)],
    "small upscaled": [(96, 160)],
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("static_hw", [None, (640, 640)])
def test_fused_matches_reference(name: str, static_hw: tuple[int, int] | None) -> None:
    det = detector(static_hw)
    imgs = images(*CASES[name])
    ours = det.preprocess(imgs).tensor
    ref = reference_tensor(det, imgs)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    assert ours.flags.c_contiguous
    assert float(np.abs(ours - ref).max()) <= 1e-6


def test_every_grey_level_converts_exactly() -> None:
    levels = np.arange(256, dtype=np.uint8)
    canvas = np.stack([levels, levels[::-1], levels // 2], axis=-1).reshape(1, 16, 16, 3)
    ours = nchw_float(canvas, scale=1 / 255.0, swap_rb=True)
    ref = cv2.dnn.blobFromImages(list(canvas), scalefactor=1 / 255.0, swapRB=True)
    assert np.array_equal(ours, ref)
    assert canvas[0, 0, 9, 2] == 4 and canvas[0, 0, 9, 0] == 9
    assert ours[0, 0, 0, 9] == np.float32(4) * np.float32(1 / 255.0)  # R (last in BGR) first
    raw = nchw_float(canvas, scale=1.0, swap_rb=False)
    assert np.array_equal(raw[0, 0], canvas[0, ..., 0].astype(np.float32))


def test_letterbox_into_writes_only_its_place() -> None:
    det = detector()
    (img,) = images((720, 1280))
    (geo,) = det.plan([img])
    dst = np.full((*geo.in_hw, 3), PAD_VALUE, dtype=np.uint8)
    letterbox_into(img, geo, dst)
    rh, rw = geo.resized_hw
    assert (geo.top, rh, geo.in_hw) == (12, 360, (384, 640))
    assert np.array_equal(dst[geo.top : geo.top + rh], cv2.resize(img, (rw, rh)))
    assert (dst[: geo.top] == PAD_VALUE).all() and (dst[geo.top + rh :] == PAD_VALUE).all()
