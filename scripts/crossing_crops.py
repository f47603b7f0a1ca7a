"""Zoomed crops for reading a stop-line crossing by eye (how hanoi_b's crossings were labelled).

    python scripts/crossing_crops.py CX CY FIRST LAST OUT.png [--video V] [--config CAMERA.yaml]
                                     [--approach ID] [--w 80] [--h 60] [--zoom 5] [--cols 4]

Frames FIRST..LAST (0-based decode order) of the video, each cropped around (CX, CY) in image
pixels, zoomed, with the approach's calibrated stop line in red and a y ruler at the left (a
tick every 2 px, labelled every 10 px), so the image y of a vehicle's rear ground contact can be
read off frame by frame and compared with the line's y at that x (printed for the crop's left
and right edge). No detector output is drawn: the reading stays independent of the product.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = ROOT.parent / "shared" / "sample_videos" / "intersection_hanoi_b_640x480.mp4"
DEFAULT_CONFIG = ROOT / "sample_videos" / "intersection_hanoi_b.yaml"


def stop_line(config: Path, approach: str | None, size: tuple[int, int]) -> np.ndarray:
    """The approach's stop line in pixels, (2, 2)."""
    from sharpeyes.pipeline.config import load_camera_config

    cam = load_camera_config(config)
    if cam.intersection is None or not cam.intersection.approaches:
        raise SystemExit(f"{config}: no intersection approaches")
    aps = {a.id: a for a in cam.intersection.approaches}
    ap = aps[approach] if approach else next(iter(aps.values()))
    return np.array(ap.stop_line, np.float64) * np.array(size, np.float64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("cx", type=int)
    ap.add_argument("cy", type=int)
    ap.add_argument("first", type=int)
    ap.add_argument("last", type=int)
    ap.add_argument("out", type=Path)
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--approach")
    ap.add_argument("--w", type=int, default=80)
    ap.add_argument("--h", type=int, default=60)
    ap.add_argument("--zoom", type=int, default=5)
    ap.add_argument("--cols", type=int, default=4)
    a = ap.parse_args(argv)
    frames: dict[int, np.ndarray] = {}
    with av.open(str(a.video)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i > a.last:
                break
            if i >= a.first:
                frames[i] = f.to_ndarray(format="bgr24")
    if not frames:
        raise SystemExit(f"{a.video}: no frames {a.first}..{a.last}")
    height, width = next(iter(frames.values())).shape[:2]
    (x1, y1), (x2, y2) = stop_line(a.config, a.approach, (width, height))

    def line_y(x: float) -> float:
        return float(y1 + (x - x1) * (y2 - y1) / (x2 - x1))

    z, w, h = a.zoom, a.w, a.h
    x0 = max(0, min(width - w, a.cx - w // 2))
    y0 = max(0, min(height - h, a.cy - h // 2))
    tiles = []
    for i in sorted(frames):
        crop = cv2.resize(
            frames[i][y0 : y0 + h, x0 : x0 + w], None, fx=z, fy=z, interpolation=cv2.INTER_CUBIC
        )
        ruler = np.full((h * z, 44, 3), 255, np.uint8)
        for y in range(y0, y0 + h):
            if y % 2 == 0:
                yy = (y - y0) * z
                cv2.line(ruler, (30 if y % 10 else 20, yy), (43, yy), (0, 0, 0), 1)
                if y % 10 == 0:
                    cv2.putText(
                        ruler, str(y), (0, yy + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1
                    )
        left, right = round((line_y(x0) - y0) * z), round((line_y(x0 + w) - y0) * z)
        cv2.line(crop, (0, left), (w * z, right), (0, 0, 255), 1)
        cv2.putText(crop, f"f{i}", (5, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 2)
        tiles.append(np.hstack([ruler, crop]))
    while len(tiles) % a.cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[k : k + a.cols]) for k in range(0, len(tiles), a.cols)]
    cv2.imwrite(str(a.out), np.vstack(rows))
    sys.stdout.write(
        f"crop x {x0}-{x0 + w}, y {y0}-{y0 + h}; stop line y at the crop's left "
        f"{line_y(x0):.1f}, right {line_y(x0 + w):.1f}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
