"""``sharpeyes demo``: analyse the sample videos with the embedded defaults.

Uses the real sample footage from the shared data folder when it is there (checked by sha256),
otherwise renders the synthetic demo clip (``sample_videos/synthetic.py``). The red-light demo
runs on the Hanoi intersection clip with its committed calibration when both are available, the
checkpoint (卡口) demo — plates, plate and body colours — on the Beijing plates clip with its
config (``sample_videos/plates_closeup_beijing.yaml``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections import Counter
from pathlib import Path

import yaml

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
    "plates_closeup_beijing_640x360.mp4": (
        "8ad16cac0edb5e9aaf2f3ad5e6af09b82cf163da38b720677f3a2c60f4cd9ec9"
    ),
}
# the demo's cameras: (sample clip, its committed camera config or None for the defaults)
HANOI = ("intersection_hanoi_b_640x480.mp4", "intersection_hanoi_b.yaml")
CHECKPOINT = ("plates_closeup_beijing_640x360.mp4", "plates_closeup_beijing.yaml")


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

    config = demo_service_config(out, clips)
    path = write_service_config(config, out / "service.yaml")
    sys.stdout.write(
        f"the demo service's config: {path}\n"
        f"add a console user for it: sharpeyes users --config {path} add zhangsan --role reviewer\n"
    )
    return run_node(config, serve_api=True, port=port)


def write_service_config(config: ServiceConfig, path: Path) -> Path:
    """``config`` as a YAML file ``sharpeyes serve`` / ``users --config`` read back the same."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = config.model_dump(mode="json", exclude_defaults=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    return path


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
    for title, sample in (("red-light demo:", HANOI), ("checkpoint (卡口) demo:", CHECKPOINT)):
        found = _with_config(*sample)
        if found is None:
            continue
        video, calib = found
        res = analyze_video(
            AnalyzeOptions(
                video=video,
                config=calib,
                out=out / video.stem,
                annotate=True,
                progress=progress,
                overwrite=True,  # the demo's own folder: each run replaces the last
            )
        )
        lines += ["", title, *res.summary_lines()]
        if sample is CHECKPOINT:
            lines += checkpoint_lines(res.files["events"])
    lines += ["", f"all results are under {out.resolve()}"]
    return lines


def _with_config(name: str, config: str) -> tuple[Path, Path] | None:
    clip, calib = find_sample(name), samples_dir() / config
    return (clip, calib) if clip is not None and calib.is_file() else None


def checkpoint_lines(events: Path) -> list[str]:
    """What a checkpoint camera stated, from its ``events.jsonl``: plates read (a plate is never
    invented: the others say why) and body colours."""
    passes = [
        e
        for e in (json.loads(line) for line in events.read_text("utf-8").splitlines() if line)
        if e.get("type") == "vehicle_pass"
    ]
    plates = [e["plate"]["text"] for e in passes if (e.get("plate") or {}).get("text")]
    status = Counter(str(e["extra"].get("plate_status", "not_read")) for e in passes)
    colours = Counter(
        str(e["extra"]["vehicle_color"]) for e in passes if "vehicle_color" in e["extra"]
    )
    unread = ", ".join(f"{k} {v}" for k, v in sorted(status.items()) if k != "read")
    return [
        f"plates read: {len(plates)} of {len(passes)} vehicles"
        + (f" ({', '.join(plates)})" if plates else "")
        + (f"; not read: {unread}" if unread else ""),
        "body colours: " + (", ".join(f"{k} {v}" for k, v in colours.most_common()) or "none"),
    ]


def demo_clips(out: Path) -> list[tuple[Path, Path | None]]:
    """The clips the live demo plays: shared footage when present, else the rendered clip."""
    clips: list[tuple[Path, Path | None]] = []
    highway = find_sample("highway_1280x720.mp4")
    if highway is not None:
        clips.append((highway, None))
    for sample in (HANOI, CHECKPOINT):  # the checkpoint camera runs its own 192×320 detector
        found = _with_config(*sample)
        if found is not None:
            clips.append(found)
    if not clips:
        synthetic = out / "synthetic_traffic.mp4"
        if not synthetic.is_file():
            from sharpeyes.sample_videos.synthetic import render

            render(synthetic)
        clips.append((synthetic, None))
    return clips
