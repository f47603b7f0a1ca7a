"""``sharpeyes demo``: analyse the sample videos with the embedded defaults.

Uses the real sample footage from the shared data folder when it is there (checked by sha256),
otherwise renders the synthetic demo clip (``sample_videos/synthetic.py``). The red-light demo
runs on the Hanoi intersection clip with its committed calibration when both are available.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.pipeline.config import load_camera_config
from sharpeyes.pipeline.data import samples_dir, shared_dir

logger = logging.getLogger(__name__)

SAMPLES = {
    "highway_1280x720.mp4": "fd1b40aeff5524b25440ce9dde9d71b3219a71a8fcd42d7d47d57252743f52e0",
    "intersection_hanoi_b_640x480.mp4": (
        "e5200b0ca94cd9a4dfcf2079ea135c81b85c38ff202d97043c4567dd8fb1392b"
    ),
}


def find_sample(name: str) -> Path | None:
    """The shared sample clip ``name`` if present and its sha256 matches the catalogue."""
    path = shared_dir() / "sample_videos" / name
    if not path.is_file():
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SAMPLES[name]:
        logger.warning("%s has sha256 %s, expected %s: not used", path, digest, SAMPLES[name])
        return None
    return path


def demo_service_config(out: Path, clips: list[tuple[Path, Path | None]]) -> ServiceConfig:
    """File-as-live cameras on the demo clips (looped, 5 analysed fps), store under ``out``."""
    cameras = []
    for i, (clip, calib) in enumerate(clips):
        cam = load_camera_config(calib)
        cam = cam.model_copy(
            update={
                "id": clip.stem[:40],
                "device_id": f"340200000011900{i + 1:05d}",
                "name": clip.stem,
                "url": str(clip.resolve()),
                "live": True,
                "analysis_fps": cam.analysis_fps or 5.0,
            }
        )
        cameras.append(cam)
    return ServiceConfig.model_validate(
        {
            "cameras": [c.model_dump() for c in cameras],
            "store": {"url": str(out / "events.db"), "files_root": str(out)},
            "loop_files": True,
        }
    )


def serve_demo(out: Path, clips: list[tuple[Path, Path | None]], port: int) -> int:
    """Start the cameras, REST API and review console on the demo clips until Ctrl-C."""
    from sharpeyes.api.commands.run import run_node

    return run_node(demo_service_config(out, clips), serve_api=True, port=port)


def run_demo(out: Path, progress: bool = True) -> list[str]:
    lines: list[str] = []
    clip = find_sample("highway_1280x720.mp4")
    if clip is None:
        from sharpeyes.sample_videos.synthetic import render

        clip = render(out / "synthetic_traffic.mp4")
        lines.append(f"shared sample videos not found: rendered {clip}")
    res = analyze_video(
        AnalyzeOptions(
            video=clip, out=out / clip.stem, annotate=True, progress=progress, overwrite=True
        )
    )
    lines += res.summary_lines()
    hanoi = find_sample("intersection_hanoi_b_640x480.mp4")
    calib = samples_dir() / "intersection_hanoi_b.yaml"
    if hanoi is not None and calib.is_file():
        res = analyze_video(
            AnalyzeOptions(
                video=hanoi,
                config=calib,
                out=out / hanoi.stem,
                annotate=True,
                progress=progress,
                overwrite=True,  # the demo's own folder: each run replaces the last
            )
        )
        lines += ["", "red-light demo:", *res.summary_lines()]
    lines += ["", f"all results are under {out.resolve()}"]
    return lines


def demo_clips(out: Path) -> list[tuple[Path, Path | None]]:
    """The clips the live demo plays: shared footage when present, else the rendered clip."""
    clips: list[tuple[Path, Path | None]] = []
    highway = find_sample("highway_1280x720.mp4")
    if highway is not None:
        clips.append((highway, None))
    hanoi = find_sample("intersection_hanoi_b_640x480.mp4")
    calib = samples_dir() / "intersection_hanoi_b.yaml"
    if hanoi is not None and calib.is_file():
        clips.append((hanoi, calib))
    if not clips:
        synthetic = out / "synthetic_traffic.mp4"
        if not synthetic.is_file():
            from sharpeyes.sample_videos.synthetic import render

            render(synthetic)
        clips.append((synthetic, None))
    return clips
