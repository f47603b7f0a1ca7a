"""GPU preprocessing math on the CPU: NumPy reference vs OpenCV, torch (CPU) vs NumPy, NV12."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sharpeyes.models.gpu.preprocess import (
    ArrayPreprocessor,
    TorchPreprocessor,
    image_hw,
    nv12_to_bgr,
    plan_batch,
    resize_bilinear,
)
from sharpeyes.models.yolo import YoloV5Detector

RNG = np.random.default_rng(3)


def bgr(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def to_nv12(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    i420 = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
    u = i420[h : h + h // 4].reshape(h // 2, w // 2)
    v = i420[h + h // 4 :].reshape(h // 2, w // 2)
    return np.concatenate([i420[:h], np.stack([u, v], -1).reshape(h // 2, w)])


@pytest.mark.parametrize("out_hw", [(200, 300), (720, 1280), (360, 640), (97, 131)])
def test_resize_matches_opencv_inter_linear(out_hw: tuple[int, int]) -> None:
    img = bgr(360, 640)
    ours = resize_bilinear(img, out_hw)
    ref = cv2.resize(img, out_hw[::-1], interpolation=cv2.INTER_LINEAR).astype(np.float32)
    assert ours.shape == (*out_hw, 3)
    assert np.abs(ours - ref).max() <= 1.0  # OpenCV rounds with fixed-point weights


def test_nv12_conversion_matches_opencv() -> None:
    img = bgr(64, 96)
    nv12 = to_nv12(img)
    assert image_hw(nv12) == (64, 96)
    ref = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12).astype(np.float32)
    assert np.abs(nv12_to_bgr(nv12) - ref).max() <= 1.0


def test_image_hw_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        image_hw(np.zeros((10, 10, 4), np.uint8))


def test_plan_batch_shares_one_rectangular_input() -> None:
    geo = plan_batch([(1080, 1920), (720, 1280)], (640, 640), dynamic=True)
    assert {g.in_hw for g in geo} == {(384, 640)}
    assert geo[0].resized_hw == (360, 640) and geo[0].top == 12
    static = plan_batch([(1080, 1920)], (640, 640), dynamic=False)
    assert static[0].in_hw == (640, 640)
    with pytest.raises(ValueError):
        plan_batch([], (640, 640), dynamic=True)


def test_numpy_reference_matches_cpu_detector_tensor() -> None:
    """The reference path equals YoloV5Detector.preprocess (cv2) within one grey level."""
    images = [bgr(360, 640), bgr(720, 1280)]
    geo = plan_batch([im.shape[:2] for im in images], (640, 640), dynamic=True)
    ours = ArrayPreprocessor()(images, geo)
    canvas = np.full((2, *geo[0].in_hw, 3), 114, np.uint8)
    for im, g, dst in zip(images, geo, canvas, strict=True):
        rh, rw = g.resized_hw
        dst[g.top : g.top + rh, g.left : g.left + rw] = cv2.resize(im, (rw, rh))
    ref = YoloV5Detector.to_tensor(None, canvas)  # type: ignore[arg-type]
    assert ours.shape == ref.shape == (2, 3, 384, 640)
    assert np.abs(ours - ref).max() <= 1.01 / 255


def test_torch_cpu_matches_numpy_reference_bgr_and_nv12() -> None:
    images = [bgr(360, 640), bgr(360, 640), to_nv12(bgr(720, 1280))]
    geo = plan_batch([image_hw(im) for im in images], (640, 640), dynamic=True)
    ref = ArrayPreprocessor()(images, geo)
    out = TorchPreprocessor("cpu")(images, geo).numpy()
    assert out.shape == ref.shape
    diff = np.abs(out - ref)
    assert diff.max() <= 1.0 / 255 + 1e-6  # a .5 rounding tie may go either way
    assert float((diff > 1e-4).mean()) < 1e-3
    half = TorchPreprocessor("cpu", fp16=True)(images, geo)
    assert str(half.dtype) == "torch.float16"
    assert ArrayPreprocessor(np, "float16")(images, geo).dtype == np.float16
