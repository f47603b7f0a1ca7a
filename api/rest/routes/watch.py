"""What the operator's live watch screen (``/console/watch.html``) needs beyond the resource routes.

* ``GET /api/v1/watch/cameras`` — every camera with its name, place, map position (``geo``)
  and live health in one list, so a wall screen polls one route for its tiles and its map.
* ``GET /api/v1/watch/cameras/{id}/frame.jpg`` — the camera's latest picture as a JPEG (at most
  :data:`TILE_WIDTH` pixels wide): the last frame the pipeline analysed when the node provides
  one (``X-Frame-Source: live``), else the newest stored evidence image of the camera
  (``X-Frame-Source: event``); ``X-Frame-Time-Ms`` is its capture time. 404 when there is none.

Mount with ``app.include_router(make_watch_router(frames))``; ``frames`` looks up the last
analysed frame of a camera (:meth:`api.rest.service.StoreService.latest_frame`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import cv2
from fastapi import APIRouter, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from sharpeyes.api.rest.cameras import CameraEntry
from sharpeyes.api.rest.deps import AUTH_RESPONSES, Service, Viewer
from sharpeyes.api.rest.errors import NotFoundError
from sharpeyes.api.rest.routes.cameras import NOT_FOUND, CameraIdPath
from sharpeyes.api.rest.schemas import StreamHealthPublic, StreamState
from sharpeyes.api.rest.service import ServiceFacade
from sharpeyes.api.store.records import EventFilter
from sharpeyes.pipeline.config import GeoLocation
from sharpeyes.pipeline.types import Frame, ImageBGR

__all__ = ["TILE_WIDTH", "FrameLookup", "WatchCamera", "WatchPage", "make_watch_router"]

FrameLookup = Callable[[str], Frame | None]
TILE_WIDTH = 640  # pixels: a tile on a wall screen, not the full-resolution frame
JPEG_QUALITY = 80
EVENT_IMAGES = ("composite.jpg", "crop.jpg", "1.jpg")  # a scene view first
_RECENT_EVENTS = 10


class WatchCamera(BaseModel):
    """One camera as the watch screen shows it: identity, place and live health."""

    id: str
    name: str = Field(description="Human-readable name (the tile's title).")
    location: str = Field(description="Place, as on the evidence overlays.")
    geo: GeoLocation | None = Field(None, description="Map position; None = not placed.")
    enabled: bool = Field(description="Whether the camera should be analysing.")
    state: StreamState | Literal["offline"] = Field(
        description="Stream state; offline = no live stream for this camera."
    )
    input_fps: float = Field(0.0, description="Frames per second received from the source.")
    analysed_fps: float = Field(0.0, description="Frames per second that reached the detector.")
    last_frame_age_s: float | None = Field(None, description="Seconds since the last frame.")
    reconnects: int = 0
    signal_problems: int = Field(0, description="Signal heads or groups with a problem.")


class WatchPage(BaseModel):
    items: list[WatchCamera]


def watch_camera(
    cid: str, entry: CameraEntry | None, health: StreamHealthPublic | None
) -> WatchCamera:
    """A camera's row from its registry entry and its health (either may be missing)."""
    cfg = entry.config if entry is not None else None
    fields: dict[str, object] = {
        "id": cid,
        "name": cfg.name if cfg is not None else cid,
        "location": cfg.location if cfg is not None else "",
        "geo": cfg.geo if cfg is not None else None,
        "enabled": entry.enabled if entry is not None else True,
        "state": "offline",
    }
    if health is not None:
        fields |= {
            "state": health.state,
            "input_fps": health.input_fps,
            "analysed_fps": health.analysed_fps,
            "last_frame_age_s": health.last_frame_age_s,
            "reconnects": health.reconnects,
            "signal_problems": len(health.signal_problems),
        }
    return WatchCamera.model_validate(fields)


def watch_page(entries: list[CameraEntry], health: Mapping[str, StreamHealthPublic]) -> WatchPage:
    """Registry cameras in id order, then cameras that only the runtime knows."""
    known = {e.config.id: e for e in entries}
    ids = sorted(known) + sorted(set(health) - set(known))
    return WatchPage(items=[watch_camera(c, known.get(c), health.get(c)) for c in ids])


def encode_tile(image: ImageBGR, width: int = TILE_WIDTH) -> bytes:
    """``image`` scaled down to at most ``width`` pixels wide, as JPEG."""
    h, w = image.shape[:2]
    size = (width, max(1, round(h * width / w)))
    src = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if w > width else image
    ok, buf = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"cannot encode a {w}x{h} frame as JPEG")
    return bytes(buf)


@dataclass(frozen=True, slots=True)
class _Tile:
    seq: int
    wall_ms: int
    jpeg: bytes


class TileCache:
    """The last encoded tile per camera: several screens polling one camera encode it once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tiles: dict[str, _Tile] = {}

    def get(self, frame: Frame) -> _Tile:
        key = frame.stream_id
        with self._lock:
            tile = self._tiles.get(key)
        if tile is not None and tile.seq == frame.seq and tile.wall_ms == frame.wall_time_ms:
            return tile
        tile = _Tile(frame.seq, frame.wall_time_ms, encode_tile(frame.image))
        with self._lock:
            self._tiles[key] = tile
        return tile

    def forget_except(self, camera_ids: set[str]) -> None:
        with self._lock:
            for gone in set(self._tiles) - camera_ids:
                del self._tiles[gone]


_NO_STORE = {"Cache-Control": "no-store"}


def _event_image(service: ServiceFacade, camera_id: str) -> FileResponse:
    """The newest stored evidence image of the camera (a scene view when there is one)."""
    page = service.list_events(EventFilter(stream_ids=(camera_id,)), None, _RECENT_EVENTS)
    for ev in page.items:
        for name in EVENT_IMAGES:
            try:
                f = service.evidence_file(ev.event_id, name)
            except NotFoundError:
                continue
            headers = {**_NO_STORE, "X-Frame-Source": "event"}
            headers["X-Frame-Time-Ms"] = str(ev.time_ms or ev.first_seen_ms)
            return FileResponse(f.path, media_type=f.media_type, headers=headers)
    raise NotFoundError(f"no picture of camera {camera_id!r} yet")


def make_watch_router(frames: FrameLookup | None = None) -> APIRouter:
    """The watch screen's routes; ``frames`` None = pictures come from stored evidence only."""
    router = APIRouter(prefix="/api/v1/watch", tags=["watch"], responses=AUTH_RESPONSES)
    cache = TileCache()

    @router.get("/cameras", response_model=WatchPage, summary="Cameras with place and health")
    def cameras(_: Viewer, service: Service) -> WatchPage:
        page = watch_page(service.cameras.all(), service.stream_health())
        cache.forget_except({c.id for c in page.items})
        return page

    @router.get(
        "/cameras/{camera_id}/frame.jpg",
        summary="The camera's latest picture (JPEG)",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, **NOT_FOUND},
    )
    def frame(camera_id: CameraIdPath, _: Viewer, service: Service) -> Response:
        live = frames(camera_id) if frames is not None else None
        if live is None:
            return _event_image(service, camera_id)
        tile = cache.get(live)
        headers = {**_NO_STORE, "X-Frame-Source": "live", "X-Frame-Time-Ms": str(tile.wall_ms)}
        return Response(tile.jpeg, media_type="image/jpeg", headers=headers)

    return router
