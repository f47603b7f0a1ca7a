"""Render the demo clip when the real sample footage is not available.

A 1280×720 H.264 clip in which real photographs scroll across the view like traffic past a
camera: the two sample images that the ``yolov5`` package ships (``data/images/bus.jpg`` with a
bus and four people, ``zidane.jpg`` with two people) are laid out on a strip of road and panned
right to left, so every object enters, is tracked and leaves the view — which produces one event
per object. Without those images (no ``yolov5`` package) drawn cars are used; the COCO detector
rarely recognises drawings, so that clip exercises the pipeline but yields few events.

    python -m sample_videos.synthetic OUT.mp4 [--seconds 12]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from sharpeyes.streams.video_writer import Mp4Writer

logger = logging.getLogger(__name__)

W, H = 1280, 720
Image = NDArray[np.uint8]


def packaged_images() -> list[Path]:
    """The sample photographs shipped inside the ``yolov5`` package, if it is installed."""
    spec = importlib.util.find_spec("yolov5")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations))) / "data" / "images"
    return [p for p in (root / "bus.jpg", root / "zidane.jpg") if p.is_file()]


def _road(width: int, rng: np.random.Generator) -> Image:
    strip = np.empty((H, width, 3), np.uint8)
    strip[:] = (96, 96, 96)
    strip[: H // 5] = (205, 175, 130)
    noise = rng.integers(0, 14, strip.shape, dtype=np.uint8)
    strip = np.asarray(cv2.add(strip, noise), dtype=np.uint8)
    for x in range(0, width, 160):
        cv2.rectangle(strip, (x, H - 60), (x + 80, H - 50), (230, 230, 230), -1)
    return strip


def _drawn_car(w: int, colour: tuple[int, int, int]) -> Image:
    h = int(w * 0.5)
    img = np.full((h + 20, w, 3), 96, np.uint8)
    cv2.rectangle(img, (0, h // 2), (w, h), colour, -1)
    cabin = np.array([[w // 5, h // 2], [w // 3, 4], [3 * w // 4, 4], [6 * w // 7, h // 2]])
    cv2.fillPoly(img, [cabin], colour)
    for cx in (w // 4, 3 * w // 4):
        cv2.circle(img, (cx, h), h // 5, (20, 20, 20), -1)
    return img


def build_strip(rng: np.random.Generator) -> Image:
    """The panorama that scrolls past the camera: road + photos (or drawn cars)."""
    pieces: list[Image] = []
    for path in packaged_images():
        img = cv2.imread(str(path))
        if img is None:
            continue
        scale = H / img.shape[0]
        resized = cv2.resize(img, (round(img.shape[1] * scale), H))
        pieces.append(np.asarray(resized, dtype=np.uint8))
    if not pieces:
        pieces = [_drawn_car(360, c) for c in ((40, 40, 200), (200, 200, 200), (150, 40, 30))]
    gap = 420
    width = W + sum(p.shape[1] + gap for p in pieces) + W
    strip = _road(width, rng)
    x = W
    for p in pieces:
        y = H - p.shape[0]
        strip[y : y + p.shape[0], x : x + p.shape[1]] = p
        x += p.shape[1] + gap
    return strip


def render(out: Path, seconds: float = 12.0, fps: float = 25.0, seed: int = 7) -> Path:
    """Write the clip to ``out`` and return it; the same seed gives the same pixels."""
    rng = np.random.default_rng(seed)
    strip = build_strip(rng)
    n = round(seconds * fps)
    travel = strip.shape[1] - W
    with Mp4Writer(out, fps, gop=round(fps)) as writer:
        for i in range(n):
            x = round(travel * i / max(1, n - 1))
            frame = strip[:, x : x + W].copy()
            noise = rng.integers(0, 6, frame.shape, dtype=np.uint8)
            frame = np.asarray(cv2.add(frame, noise), dtype=np.uint8)
            writer.write(frame)
    logger.info("rendered %s (%d frames)", out, n)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="render the synthetic demo clip")
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=float, default=12.0)
    args = ap.parse_args(argv)
    render(args.out, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
