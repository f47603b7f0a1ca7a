"""The HSV body-colour model on synthetic patches, and the body region."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sharpeyes.pipeline.structuring.color import ColorModel, body_region, grey_world_gains
from sharpeyes.pipeline.types import Box


def patch(hsv: tuple[int, int, int], size: tuple[int, int] = (40, 80)) -> np.ndarray:
    img = np.zeros((*size, 3), np.uint8)
    img[:] = hsv
    return np.asarray(cv2.cvtColor(img, cv2.COLOR_HSV2BGR), np.uint8)


@pytest.mark.parametrize(
    ("hsv", "name"),
    [
        ((0, 0, 20), "black"),
        ((0, 0, 240), "white"),
        ((15, 35, 235), "white"),  # warm-tinted white paint
        ((0, 0, 120), "grey"),
        ((0, 200, 200), "red"),
        ((176, 200, 200), "red"),
        ((12, 220, 220), "orange"),
        ((12, 200, 90), "brown"),
        ((27, 200, 220), "yellow"),
        ((60, 200, 150), "green"),
        ((92, 200, 150), "cyan"),
        ((115, 200, 150), "blue"),
        ((140, 200, 150), "purple"),
        ((152, 120, 230), "pink"),
        ((165, 200, 200), "red"),  # crimson
    ],
)
def test_uniform_patches(hsv: tuple[int, int, int], name: str) -> None:
    vote = ColorModel().classify(patch(hsv))
    assert vote is not None and vote.color == name and vote.share == pytest.approx(1.0)


def test_chromatic_pixels_outweigh_highlights() -> None:
    img = patch((0, 200, 200))
    img[:22] = patch((0, 0, 240), (22, 80))  # 55 % highlight, 45 % red paint
    vote = ColorModel().classify(img)
    assert vote is not None and vote.color == "red"


def test_large_regions_are_subsampled_not_averaged() -> None:
    img = patch((0, 0, 240), (400, 600))
    img[::2, ::2] = 20  # a fine dark pattern must not average into grey
    vote = ColorModel().classify(img)
    assert vote is not None and vote.color in ("white", "black") and vote.pixels == 400 * 600


def test_body_region_from_plate_and_from_box() -> None:
    img = np.zeros((360, 640, 3), np.uint8)
    plate = Box(300, 300, 400, 330, 640, 360)
    x1, y1, x2, y2 = body_region(img, None, plate) or (0, 0, 0, 0)
    assert (x1, x2) == (200, 500) and y1 == 130 and y2 == 220
    car = Box(100, 0, 500, 300, 640, 360)
    assert body_region(img, car, None) == (180, 165, 420, 240)
    assert body_region(img, None, None) is None
    assert body_region(img, None, Box(0, 0, 4, 2, 640, 360)) is None  # off the top


def test_grey_world_removes_a_colour_cast() -> None:
    road = patch((110, 55, 120), (200, 400))  # asphalt under a cool (blue) cast
    car = patch((110, 55, 125), (40, 80))  # grey paint under the same cast
    frame = road.copy()
    frame[100:140, 100:180] = car
    raw = ColorModel().classify(car)
    assert raw is not None and raw.color == "blue"  # the cast fools the raw pixels
    balanced = ColorModel().classify(car, grey_world_gains(frame))
    assert balanced is not None and balanced.color == "grey"
    assert grey_world_gains(np.zeros((8, 8, 3), np.uint8)).tolist() == [1.0, 1.0, 1.0]
