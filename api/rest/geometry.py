"""A camera's configured geometry over its latest frame, and what is wrong with it (标定图).

What an installer checks in the console after adding or changing a camera through the API: the
camera's latest analysed frame (the one the watch screen shows) with the geometry drawn over it
by the one drawing, :func:`pipeline.geometry_draw.render_picture` (as ``sharpeyes camera-check
--png``), and the static findings of :func:`pipeline.geometry_check.static_checks` — what the
config loader does not refuse but the drawn geometry shows to be wrong.

Before the camera's first frame (or on a service without a pipeline) the geometry is drawn on a
grey canvas of the frame size last seen for the camera, else of the nominal 1600×900, and the
picture and the report say so; head-region shapes are then not judged (their aspect depends on
the frame's). The PNG is drawn on request — for a 1280×720 frame about 35 ms to draw and 55 ms
to encode (1.1 MB), 1920×1080 about 160 ms in all (2.1 MB), on the shared 2-core development
machine — and kept per camera until the frame, the config or the language changes, so a console
that asks again for the same frame gets the same bytes. Renders run one at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cv2
from pydantic import BaseModel, Field

from sharpeyes.api.rest.cameras import CameraEntry
from sharpeyes.pipeline.geometry_check import NOMINAL_SIZE, Finding, static_checks
from sharpeyes.pipeline.geometry_draw import key_points, neutral_canvas, render_picture
from sharpeyes.pipeline.types import Frame

__all__ = [
    "FrameSource",
    "GeometryDrawer",
    "GeometryPicture",
    "GeometryProblem",
    "GeometryReport",
    "Lang",
]

FrameLookup = Callable[[str], Frame | None]
FrameSource = Literal["live", "none"]
Lang = Literal["zh", "en"]
PNG_COMPRESSION = 1  # zlib level: 1280x720 + legend in ~55 ms, ~165 ms at 6 (10 % smaller)
NOTES: dict[tuple[str, Lang], str] = {
    ("no_frame", "zh"): "尚无实时画面：几何画在 {w}×{h} 灰底上",
    ("no_frame", "en"): "no live picture yet: geometry drawn on a {w}x{h} grey canvas",
    ("no_geometry", "zh"): "该摄像机未配置路口或流量标定",
    ("no_geometry", "en"): "this camera has no intersection or flow geometry",
}


class GeometryProblem(BaseModel):
    key: str = Field(
        description="The config key concerned.",
        examples=["intersection.approaches.0.lanes.1.travel"],
    )
    message: str = Field(description="What is wrong and how to fix it (English).")
    message_zh: str = Field(
        description="The same in Chinese, from the same values (ids, numbers, pixels)."
    )


class GeometryReport(BaseModel):
    """The static findings on a camera's geometry, judged on the frame the picture uses."""

    camera_id: str
    configured: bool = Field(description="The camera has intersection or flow geometry.")
    frame_source: FrameSource = Field(
        description="live: the camera's latest analysed frame; none: no frame yet (a grey "
        "canvas of the last seen or the nominal frame size; head shapes not judged)."
    )
    frame_time_ms: int | None = Field(None, description="Capture time of the frame used.")
    frame_size: tuple[int, int] = Field(description="(width, height) judged on, in pixels.")
    problems: list[GeometryProblem]
    key_points: list[str] = Field(description="The geometry's key points in pixels.")


@dataclass(frozen=True, slots=True)
class GeometryPicture:
    png: bytes
    report: GeometryReport
    draw_ms: float  # drawing and encoding when it was made (0 work when served from the cache)
    cached: bool = False


@dataclass(frozen=True, slots=True)
class _Basis:
    """The frame (or the lack of one) a camera's geometry is judged and drawn on."""

    frame: Frame | None
    size: tuple[int, int]

    @property
    def key(self) -> tuple[object, ...]:
        f = self.frame
        return ("none", self.size) if f is None else ("live", f.seq, f.wall_time_ms, self.size)


class GeometryDrawer:
    """Draws and judges cameras' geometry on their latest frames (``frames`` looks one up;
    None = no pipeline here: always the grey canvas)."""

    def __init__(self, frames: FrameLookup | None) -> None:
        self._frames = frames
        self._lock = threading.Lock()  # guards the dicts
        self._render = threading.Lock()  # one render at a time
        self._sizes: dict[str, tuple[int, int]] = {}
        self._pictures: dict[str, tuple[tuple[object, ...], GeometryPicture]] = {}

    def _basis(self, camera_id: str) -> _Basis:
        frame = self._frames(camera_id) if self._frames is not None else None
        with self._lock:
            if frame is not None:
                size = (frame.width, frame.height)
                self._sizes[camera_id] = size
                return _Basis(frame, size)
            return _Basis(None, self._sizes.get(camera_id, NOMINAL_SIZE))

    def _report(self, entry: CameraEntry, basis: _Basis) -> tuple[GeometryReport, list[Finding]]:
        cam = entry.config
        # without a frame the head shapes are not judged: their aspect is the frame's
        findings = static_checks(cam, basis.size if basis.frame is not None else None)
        report = GeometryReport(
            camera_id=cam.id,
            configured=cam.intersection is not None or cam.flow is not None,
            frame_source="live" if basis.frame is not None else "none",
            frame_time_ms=basis.frame.wall_time_ms if basis.frame is not None else None,
            frame_size=basis.size,
            problems=[
                GeometryProblem(key=f.key, message=f.message, message_zh=f.message_zh)
                for f in findings
            ],
            key_points=key_points(cam, basis.size),
        )
        return report, findings

    def report(self, entry: CameraEntry) -> GeometryReport:
        """The static findings, on the camera's latest frame size when it has sent one."""
        return self._report(entry, self._basis(entry.config.id))[0]

    def picture(self, entry: CameraEntry, lang: Lang = "zh") -> GeometryPicture:
        """The geometry drawn over the camera's latest frame (or the grey canvas), as PNG."""
        cam = entry.config
        basis = self._basis(cam.id)
        key = (cam.model_dump_json(), basis.key, lang)
        with self._lock:
            kept = self._pictures.get(cam.id)
        if kept is not None and kept[0] == key:
            return GeometryPicture(kept[1].png, kept[1].report, kept[1].draw_ms, cached=True)
        with self._render:
            with self._lock:
                kept = self._pictures.get(cam.id)
            if kept is not None and kept[0] == key:  # drawn while this one waited
                return GeometryPicture(kept[1].png, kept[1].report, kept[1].draw_ms, cached=True)
            start = time.perf_counter()
            report, findings = self._report(entry, basis)
            notes = []
            if basis.frame is None:
                w, h = basis.size
                notes.append(NOTES["no_frame", lang].format(w=w, h=h))
            if not report.configured:
                notes.append(NOTES["no_geometry", lang])
            image = basis.frame.image if basis.frame is not None else neutral_canvas(basis.size)
            img = render_picture(
                image, cam, findings, note="; ".join(notes) or None, chinese=lang == "zh"
            )
            ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
            if not ok:
                raise ValueError(f"cannot encode the {img.shape[1]}x{img.shape[0]} picture")
            pic = GeometryPicture(bytes(buf), report, (time.perf_counter() - start) * 1000)
        with self._lock:
            self._pictures[cam.id] = (key, pic)
        return pic

    def forget_except(self, camera_ids: set[str]) -> None:
        """Drop what is kept for cameras that no longer exist."""
        with self._lock:
            for gone in set(self._pictures) - camera_ids:
                del self._pictures[gone]
            for gone in set(self._sizes) - camera_ids:
                del self._sizes[gone]
