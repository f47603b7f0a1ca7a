"""``sharpeyes camera-check VIDEO --config CAMERA.yaml``: is the drawn geometry right? (installers)

For a new camera whose geometry was typed by hand (relative 0–1 coordinates):

1. **Static checks** of the geometry alone (``pipeline/geometry_check.static_checks``): what the
   config loader does not already refuse — a travel arrow that does not cross its stop line, a
   stop line that does not span its lanes, lane numbers out of left-to-right order, a crosswalk
   axis across the zebra or outside it, degenerate or self-intersecting polygons, a signal head
   region too large or of the wrong shape for its layout, …
2. **Observed traffic** over the first ``--seconds`` (default 60; 0 = skip): the camera's own
   detector and tracker, built by the one composition root (``api/node/camera.build_camera``,
   as ``analyze`` builds it — the rules, signal reader and evidence are left out, they judge
   nothing here), and per lane / zone the share of vehicles moving along, against and across its
   travel arrow, per stop line the crossings in each direction and those outside every lane.
3. **A picture** (``--png``): everything the config defines drawn over the median of a few
   frames (a clean background), labelled (in Chinese where a CJK font is found, as the evidence
   overlays), with a legend, the pixel coordinates of the key points and a sample of the
   observed track paths — by :func:`pipeline.geometry_draw.render_picture`, the drawing the
   service's ``GET /api/v1/cameras/{id}/geometry.png`` (the console's 标定图) uses too.

Each problem is printed as ``warning: <config key>: <what and how to fix>`` on stderr; the report
goes to stdout (``--json``: one JSON object, every problem with ``message`` and ``message_zh``).
The text (problems, notes, traffic counts) is Chinese with ``--lang zh``, English with ``--lang
en``; by default Chinese when the locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``, the first one
set) is a ``zh`` one. Exit status: 0 ok, 1 the video cannot be read, 2 bad arguments or
configuration, 3 problems found with ``--strict``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sharpeyes.pipeline.errors import ConfigError, SharpeyesError
from sharpeyes.pipeline.structuring.face_stats import FaceStats, describe_faces, face_finding
from sharpeyes.pipeline.structuring.plate_tally import PlateSizes, finding
from sharpeyes.pipeline.structuring.plate_tally import describe as describe_plates
from sharpeyes.pipeline.types import Detections, Event, Frame, ImageBGR, SignalState, Tracks

if TYPE_CHECKING:
    from sharpeyes.pipeline.config import CameraConfig
    from sharpeyes.pipeline.geometry_check import (
        Finding,
        Lang,
        TrafficObserver,
        TrafficReport,
    )
    from sharpeyes.pipeline.runner import RunSummary

EXIT_OK, EXIT_READ, EXIT_USAGE, EXIT_PROBLEMS = 0, 1, 2, 3
BACKGROUND_FRAMES = 7  # frames whose median is the picture's background


def add_parser(subparsers: Any) -> None:
    """Register ``camera-check`` on a ``subparsers`` object of :mod:`argparse`."""
    p = subparsers.add_parser(
        "camera-check",
        help="draw a camera's geometry on its video and check it against the traffic",
    )
    p.add_argument("video", help="video file or rtsp:// URL of the camera")
    p.add_argument("--config", required=True, help="camera YAML")
    p.add_argument("--png", help="write the geometry drawn over the camera's picture here")
    p.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="seconds of video whose traffic is checked (default 60; 0 = geometry only)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--strict", action="store_true", help="exit 3 when there are problems")
    p.add_argument(
        "--lang",
        choices=("zh", "en"),
        default=None,
        help="language of the text report and problems (default: zh when the locale is a "
        "Chinese one — LC_ALL, LC_MESSAGES or LANG — else en)",
    )
    p.set_defaults(func=run)


def default_lang(environ: Mapping[str, str] | None = None) -> Lang:
    """``zh`` when the locale is Chinese: the first of ``LC_ALL``, ``LC_MESSAGES``, ``LANG``
    that is set and not empty starts with ``zh`` (``zh_CN.UTF-8``); else ``en``."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def _error(msg: str, code: int) -> int:
    sys.stderr.write(f"error: {msg}\n")
    return code


def run(args: argparse.Namespace) -> int:
    """Run the check; returns the exit status."""
    from sharpeyes.pipeline.geometry_check import static_checks
    from sharpeyes.pipeline.geometry_draw import write_picture

    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    cam, seconds = loaded
    lang: Lang = args.lang if getattr(args, "lang", None) in ("zh", "en") else default_lang()
    try:
        size, background, fps = _probe(cam)
    except SharpeyesError as e:
        _warn(static_checks(cam), lang)  # what the geometry alone shows, on a nominal frame
        return _error(f"{_masked(str(args.video))}: {e}", EXIT_READ)
    findings = static_checks(cam, size, fps or None)
    traffic: TrafficReport | None = None
    picture: PictureQuality | None = None
    if seconds > 0:
        try:
            traffic, frames, picture = _observe(cam, seconds)
        except SharpeyesError as e:
            _warn(findings, lang)
            return _error(str(e), EXIT_READ)
        background = _median(frames)
        size = (background.shape[1], background.shape[0])
        findings += traffic.findings
        if picture is not None:
            findings += picture.findings()
    if args.json:
        report = _as_json(cam, size, findings, traffic)
        report["picture"] = picture.as_dict() if picture is not None else None
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
    else:
        lines = _report_lines(cam, size, findings, traffic, lang)
        if picture is not None:
            lines.insert(1, picture.line(lang))
        sys.stdout.write("".join(f"{ln}\n" for ln in lines))
    sys.stdout.flush()
    _warn(findings, lang)
    if args.png:
        try:
            paths = traffic.paths if traffic is not None else []
            write_picture(Path(args.png), background, cam, findings, paths, chinese=lang == "zh")
        except (OSError, ValueError) as e:
            return _error(f"{args.png}: {e}", EXIT_USAGE)
    return EXIT_PROBLEMS if findings and args.strict else EXIT_OK


def _load(args: argparse.Namespace) -> tuple[CameraConfig, float] | int:
    """The camera config (its url set to the video) and the seconds, or an exit status."""
    from sharpeyes.pipeline.config import load_camera_config
    from sharpeyes.streams.config import is_live_url

    video, config = str(args.video), Path(args.config)
    seconds = float(args.seconds)
    if not math.isfinite(seconds) or seconds < 0:
        return _error(f"--seconds {args.seconds}: give a number of seconds ≥ 0", EXIT_USAGE)
    if not is_live_url(video) and not Path(video).is_file():
        return _error(f"{video}: no such video file", EXIT_USAGE)
    if not config.is_file():
        return _error(f"{config}: no such config file", EXIT_USAGE)
    try:
        cam = load_camera_config(config)
    except ConfigError as e:
        return _error(str(e).replace("\n", "; "), EXIT_USAGE)
    structured = cam.structuring.enabled or cam.faces.enabled  # a checkpoint: its pictures
    if cam.intersection is None and cam.flow is None and not structured:
        return _error(
            f"{config}: no intersection or flow geometry to check, and no structuring or face "
            "capture whose pictures could be checked",
            EXIT_USAGE,
        )
    return cam.model_copy(update={"url": video, "live": False}), seconds


def _masked(url: str) -> str:
    from sharpeyes.streams.urls import mask_url

    return mask_url(url) or url


def _warn(findings: Sequence[Finding], lang: Lang = "en") -> None:
    for f in findings:
        sys.stderr.write(f"warning: {f.line(lang)}\n")


def _probe(cam: CameraConfig) -> tuple[tuple[int, int], ImageBGR, float]:
    """The frame size, a median of the first few frames and the stream's own frame rate (0
    when it does not say), through the one source factory."""
    from sharpeyes.streams.config import RtspConfig
    from sharpeyes.streams.factory import make_source

    source = make_source(cam, RtspConfig())
    frames: list[ImageBGR] = []
    try:
        for frame in source.frames():
            frames.append(frame.image)
            if len(frames) >= 3:
                break
        fps = float(source.info.fps or 0.0)
    finally:
        source.close()
    if not frames:
        raise SharpeyesError("no frame could be decoded")
    img = _median(frames)
    return (img.shape[1], img.shape[0]), img, fps


def _median(frames: Sequence[ImageBGR]) -> ImageBGR:
    shapes = {f.shape for f in frames}
    use = [f for f in frames if f.shape == frames[-1].shape] if len(shapes) > 1 else list(frames)
    return np.asarray(np.median(np.stack(use), axis=0), np.uint8)


@dataclass
class _Watch:
    """The observer the runner calls after every analysed frame."""

    seconds: float
    traffic: TrafficObserver
    frames: list[ImageBGR] = field(default_factory=list)
    stop: Any = None
    next_sample: float | None = None

    def __call__(
        self,
        frame: Frame,
        dets: Detections,
        tracks: Tracks,
        signals: Mapping[str, SignalState],
        events: Sequence[Event],
    ) -> None:
        self.traffic.add(frame.pts, tracks)
        first = self.traffic.first_pts if self.traffic.first_pts is not None else frame.pts
        if self.next_sample is None or frame.pts >= self.next_sample:
            if len(self.frames) < BACKGROUND_FRAMES:
                self.frames.append(frame.image.copy())
            self.next_sample = frame.pts + self.seconds / BACKGROUND_FRAMES
        if frame.pts - first >= self.seconds and self.stop is not None:
            self.stop()


KIND_ZH = {
    "motor_vehicle": "机动车",
    "non_motor": "非机动车",
    "person": "行人",
    "motorcycle": "摩托车",
    "bicycle": "自行车",
}


@dataclass(frozen=True)
class PictureQuality:
    """What the runner measured of the camera's pictures while its traffic was observed: the
    sensor noise (pipeline/denoise.py) and the grey range (pipeline/contrast.py), and whether
    the detector was shown the picture filtered or stretched for them; whether the video is
    interlaced (its pictures deinterlaced, streams/fields.py); whether objects fill it and the
    detector was shown it shrunk (pipeline/near_field.py)."""

    noise_sigma: float | None
    noise_filtered: bool
    tonal_range: float | None
    stretched: bool
    deinterlaced: bool = False
    near_field: bool = False  # objects fill the picture: shown to the detector shrunk
    track_open_scores: tuple[tuple[str, float], ...] = ()  # kinds the detector scores low:
    # their tracks open below the configured score (pipeline/tracking/score_level.py)
    plates: PlateSizes | None = None  # plates the checkpoint reads found, how wide
    faces: FaceStats | None = None  # a face camera's captures, and why not (faces on)

    @staticmethod
    def of(summary: RunSummary, deinterlaced: int = 0) -> PictureQuality:
        return PictureQuality(
            noise_sigma=None if summary.noise_sigma is None else round(summary.noise_sigma, 1),
            noise_filtered=summary.frames_denoised > 0,
            tonal_range=None if summary.tonal_range is None else round(summary.tonal_range),
            stretched=summary.frames_stretched > 0,
            deinterlaced=deinterlaced > 0,
            near_field=summary.frames_near_field > 0,
            track_open_scores=tuple(sorted(summary.track_open_scores.items())),
            plates=summary.plates if summary.plates is not None and summary.plates.seen else None,
            faces=summary.faces if summary.faces is not None and summary.faces.persons else None,
        )

    def line(self, lang: Lang = "en") -> str:
        """One report line: ``picture: noise σ 11.4, filtered for the detector; grey range
        126, washed out: stretched for the detector``."""
        zh = lang == "zh"
        parts = []
        if self.noise_sigma is not None:
            parts.append(f"{'噪声' if zh else 'noise'} σ {self.noise_sigma:.1f}")
            if self.noise_filtered:
                parts[-1] += "，检测前已降噪" if zh else ", filtered for the detector"
        if self.tonal_range is not None:
            parts.append(f"{'灰度范围' if zh else 'grey range'} {self.tonal_range:.0f}")
            if self.stretched:
                parts[-1] += (
                    "，画面发灰，检测前已拉伸对比度"
                    if zh
                    else ", washed out: stretched for the detector"
                )
        if self.deinterlaced:
            parts.append("隔行扫描，已去隔行" if zh else "interlaced: deinterlaced")
        if self.near_field:
            parts.append(
                "目标充满画面，检测时缩小一半"
                if zh
                else "objects fill the picture: shown to the detector shrunk to half"
            )
        for kind, score in self.track_open_scores:
            parts.append(
                f"{KIND_ZH.get(kind, kind)}检测置信度偏低，跟踪起始阈值降至 {score:.2f}"
                if zh
                else f"the detector scores {kind.replace('_', '-')}s low: their tracks open at "
                f"{score:.2f}"
            )
        if self.plates is not None:
            parts.append(describe_plates(self.plates, lang))
        if self.faces is not None:
            parts.append(describe_faces(self.faces, lang))
        if zh:
            return "画面：" + ("；".join(parts) or "未测量")
        return "picture: " + ("; ".join(parts) or "not measured")

    def findings(self) -> list[Finding]:
        """Problems the pictures show: plates too small to read, most of them (at least
        :data:`~sharpeyes.pipeline.structuring.plate_tally.MIN_PLATES` found); faces too small
        to capture, most of them (at least :data:`~sharpeyes.pipeline.structuring.face_stats.
        MIN_FACES` found) — the same findings a live camera's health carries."""
        from sharpeyes.pipeline import geometry_check

        out: list[Finding] = []
        p, f = self.plates, self.faces
        en = finding(p, "en") if p is not None else None
        zh = finding(p, "zh") if p is not None else None
        if en is not None and zh is not None:
            out.append(geometry_check.Finding("structuring", en, zh))
        en = face_finding(f, "en") if f is not None else None
        zh = face_finding(f, "zh") if f is not None else None
        if en is not None and zh is not None:
            out.append(geometry_check.Finding("faces", en, zh))
        return out

    def as_dict(self) -> dict[str, object]:
        return {
            "noise_sigma": self.noise_sigma,
            "noise_filtered": self.noise_filtered,
            "tonal_range": self.tonal_range,
            "contrast_stretched": self.stretched,
            "deinterlaced": self.deinterlaced,
            "near_field": self.near_field,
            "track_open_scores": dict(self.track_open_scores),
            "plates": None if self.plates is None else dataclasses.asdict(self.plates),
            "faces": None if self.faces is None else dataclasses.asdict(self.faces),
        }


def _observe(
    cam: CameraConfig, seconds: float
) -> tuple[TrafficReport, list[ImageBGR], PictureQuality]:
    """Run the camera's detector and tracker (the one composition root) over ``seconds``."""
    from sharpeyes.api.node.camera import CameraEnv, build_camera, build_detector
    from sharpeyes.pipeline.geometry_check import TrafficObserver, analyse_traffic
    from sharpeyes.streams.factory import frames_deinterlaced

    assert cam.url is not None
    # detection and tracking as the camera runs them, its plate reading (how wide its plates
    # are: PictureQuality.plates) and its face capture (how large its faces are:
    # PictureQuality.faces); the rules, signal reader and evidence judge nothing here
    run_cam = cam.model_copy(
        update={
            "intersection": None,
        }
    )
    anchor = cam.intersection.anchor if cam.intersection is not None else None
    observer = TrafficObserver() if anchor is None else TrafficObserver(anchor)
    watch = _Watch(seconds, observer)
    detector = build_detector(run_cam)
    with tempfile.TemporaryDirectory(prefix="sharpeyes-camera-check-") as tmp:
        camera = build_camera(
            run_cam, CameraEnv(files_root=Path(tmp)), detector=detector, sinks=[], observer=watch
        )
        watch.stop = camera.runner.stop
        try:
            summary = camera.runner.run()
            deinterlaced = frames_deinterlaced(camera.source)
        finally:
            camera.close()
    if not watch.frames:
        raise SharpeyesError(f"{_masked(cam.url)}: no frame could be decoded")
    h, w = watch.frames[0].shape[:2]
    picture = PictureQuality.of(summary, deinterlaced)
    return analyse_traffic(cam, (w, h), observer), watch.frames, picture


# -- report ----------------------------------------------------------------------------------


def _report_lines(
    cam: CameraConfig,
    size: tuple[int, int],
    findings: Sequence[Finding],
    traffic: TrafficReport | None,
    lang: Lang = "en",
) -> list[str]:
    from sharpeyes.pipeline.geometry_draw import key_points

    zh = lang == "zh"
    out = [
        f"摄像机 {cam.id}：{size[0]}x{size[1]} px"
        if zh
        else f"camera {cam.id}: {size[0]}x{size[1]} px"
    ]
    points = key_points(cam, size, chinese=zh)
    if points:  # a checkpoint camera without geometry has none
        out.append("关键点（像素）：" if zh else "key points:")
        out += [f"  {k}" for k in points]
    if traffic is not None:
        out += traffic.text_lines(lang)
    else:
        out.append(
            "观测交通：未检查（--seconds 0）"
            if zh
            else "observed traffic: not checked (--seconds 0)"
        )
    n = len(findings)
    if zh:
        out.append(f"发现 {n} 个问题" if n else "未发现问题")
    else:
        out.append(f"{n} problem{'s' if n != 1 else ''} found" if n else "no problem found")
    return out


def _as_json(
    cam: CameraConfig,
    size: tuple[int, int],
    findings: Sequence[Finding],
    traffic: TrafficReport | None,
) -> dict[str, Any]:
    from sharpeyes.pipeline.geometry_draw import key_points

    return {
        "camera": cam.id,
        "frame_size": list(size),
        "key_points": key_points(cam, size),
        "traffic": traffic.as_dict() if traffic is not None else None,
        "problems": [
            {"key": f.key, "message": f.message, "message_zh": f.message_zh} for f in findings
        ],
    }
