"""Make the 1080p25 H.264 test clip for ``benchmarks/gpu_check.py`` with PyAV's libx264.

    python -m benchmarks.make_gpu_clip [--out benchmarks/out/gpu_1080p25.mp4] [--seconds 16]

Frames come from a shared traffic clip (``highway_1280x720.mp4``, looped and upscaled) so the
detector sees real vehicles; without the shared data a synthetic scene of moving boxes is used.
Encoded with libx264 (``veryfast``, CRF 21, GOP 50 = 2 s, yuv420p): a few MB, so it can be
carried to a GPU machine next to the working tree (64 MiB limit).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from benchmarks import _cli
from sharpeyes.pipeline.types import ImageBGR

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "out" / "gpu_1080p25.mp4"


def shared_dir() -> Path:
    env = os.environ.get("SHARPEYES_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def _source_frames(source: Path) -> Iterator[ImageBGR]:
    while True:
        with av.open(str(source)) as c:
            for f in c.decode(video=0):
                yield np.asarray(f.to_ndarray(format="bgr24"), dtype=np.uint8)


def _synthetic_frames(width: int, height: int) -> Iterator[ImageBGR]:
    rng = np.random.default_rng(7)
    boxes = rng.uniform(0.05, 0.8, size=(12, 4))
    i = 0
    while True:
        img = np.full((height, width, 3), 90, np.uint8)
        for k, (x, y, w, h) in enumerate(boxes):
            cx = int(((x + 0.003 * i * (1 + k % 3)) % 1.0) * width)
            cy, bw, bh = int(y * height), int(w * width / 6), int(h * height / 6)
            cv2.rectangle(img, (cx, cy), (cx + bw, cy + bh), (40 * k % 255, 200, 90), -1)
        i += 1
        yield img


def make_clip(
    out: Path,
    *,
    width: int = 1920,
    height: int = 1080,
    fps: int = 25,
    seconds: float = 16.0,
    source: Path | None = None,
    crf: int = 21,
) -> dict[str, object]:
    """Write the clip; returns its facts (path, size, frames, source)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    use_source = source is not None and source.is_file()
    frames = _source_frames(source) if use_source and source else _synthetic_frames(width, height)
    n = round(seconds * fps)
    with av.open(str(out), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": str(crf), "g": str(2 * fps)}
        for _, src in zip(range(n), frames, strict=False):
            img: Any = src
            if img.shape[:2] != (height, width):
                img = cv2.resize(src, (width, height), interpolation=cv2.INTER_LINEAR)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return {
        "path": str(out),
        "bytes": out.stat().st_size,
        "frames": n,
        "size": f"{width}x{height}",
        "fps": fps,
        "source": str(source) if use_source else "synthetic",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--seconds", type=_cli.positive_float, default=16.0)
    p.add_argument("--width", type=_cli.positive_int, default=1920)
    p.add_argument("--height", type=_cli.positive_int, default=1080)
    p.add_argument("--fps", type=_cli.positive_int, default=25)
    default_source = shared_dir() / "sample_videos" / "highway_1280x720.mp4"
    p.add_argument(
        "--source",
        type=_cli.existing_file,
        default=None,
        help=f"clip to scale up (default {default_source}; synthetic frames when it is missing)",
    )
    p.add_argument("--crf", type=_cli.non_negative_int, default=21)
    a = p.parse_args(argv)
    if a.source is None:
        a.source = default_source
        if not default_source.is_file():
            print(f"make_gpu_clip: {default_source} not found: synthetic frames", file=sys.stderr)
    if a.width % 2 or a.height % 2:
        p.error("--width and --height must be even (H.264 4:2:0)")
    facts = make_clip(
        a.out,
        width=a.width,
        height=a.height,
        fps=a.fps,
        seconds=a.seconds,
        source=a.source,
        crf=a.crf,
    )
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
