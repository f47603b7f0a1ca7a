"""What the operator's live watch screen (``/console/watch.html``) needs beyond the resource routes.

* ``GET /api/v1/watch/cameras`` — every camera with its name, place, map position (``geo``)
  and live health in one list, so a wall screen polls one route for its tiles and its map.
* ``GET /api/v1/watch/cameras/{id}/frame.jpg`` — the camera's latest picture as a JPEG (at most
  :data:`TILE_WIDTH` pixels wide): the last frame the pipeline analysed when the node provides
  one (``X-Frame-Source: live``), else the newest stored evidence image of the camera
  (``X-Frame-Source: event``); ``X-Frame-Time-Ms`` is its capture time. 404 when there is none.
* ``GET /api/v1/watch/tiles/{z}/{x}/{y}`` — a map tile of the configured tile server on another
  host (``ConsoleConfig.map_tile_url``), fetched by the service and cached: the page loads only
  from its own origin (CSP ``img-src 'self'``), and browsers need no route to the map server.

Mount with ``app.include_router(make_watch_router(frames, tile_url))``; ``frames`` looks up the
last analysed frame of a camera (:meth:`api.rest.service.StoreService.latest_frame`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

import cv2
import httpx
from fastapi import APIRouter, Path, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from sharpeyes.api.rest.cameras import CameraEntry
from sharpeyes.api.rest.deps import AUTH_RESPONSES, Service, Viewer
from sharpeyes.api.rest.errors import NotFoundError, UnavailableError
from sharpeyes.api.rest.routes.cameras import NOT_FOUND, CameraIdPath
from sharpeyes.api.rest.routes.streams import for_caller
from sharpeyes.api.rest.schemas import ErrorBody, StreamHealthPublic, StreamState
from sharpeyes.api.rest.service import ServiceFacade
from sharpeyes.api.store.records import EventFilter
from sharpeyes.pipeline.config import GeoLocation
from sharpeyes.pipeline.types import Frame, ImageBGR

__all__ = [
    "TILE_WIDTH",
    "FrameLookup",
    "MapTile",
    "TileProxy",
    "WatchCamera",
    "WatchPage",
    "make_watch_router",
    "tile_proxy",
]

logger = logging.getLogger(__name__)

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
    problems: list[str] = Field(
        default_factory=list,
        description="Why the camera is not running normally, in the stream layer's words: the "
        "last connection or decode error, then each signal problem as ``head: reason``.",
    )


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
            "problems": problems_of(health),
        }
    return WatchCamera.model_validate(fields)


def problems_of(health: StreamHealthPublic) -> list[str]:
    """The reasons a wall tile shows under its state: the stream's own detail (the last
    connection or decode error — for admins only, others get ``GENERIC_DETAIL``, as on
    ``/streams``) unless it is running, then every signal problem."""
    out = [health.detail] if health.detail and health.state != "running" else []
    return out + [f"{k}: {v}" for k, v in sorted(health.signal_problems.items())]


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


@dataclass(frozen=True, slots=True)
class MapTile:
    content: bytes
    media_type: str


class TileProxy:
    """Map tiles of a z/x/y tile server on another host, fetched here and kept (LRU).

    Raises (from :meth:`get`): NotFoundError for a tile outside the world or one the server does
    not have; UnavailableError when the server cannot be reached or answers something else than
    an image.
    """

    MAX_BYTES = 1 << 20

    def __init__(
        self,
        template: str,
        *,
        capacity: int = 1024,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.template = template
        self.capacity = capacity
        self._client = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False)
        self._lock = threading.Lock()
        self._tiles: OrderedDict[tuple[int, int, int], MapTile] = OrderedDict()

    def get(self, z: int, x: int, y: int) -> MapTile:
        if not (0 <= x < 2**z and 0 <= y < 2**z):
            raise NotFoundError(f"tile {z}/{x}/{y} is outside the map")
        key = (z, x, y)
        with self._lock:
            if key in self._tiles:
                self._tiles.move_to_end(key)
                return self._tiles[key]
        tile = self._fetch(z, x, y)
        with self._lock:
            self._tiles[key] = tile
            while len(self._tiles) > self.capacity:
                self._tiles.popitem(last=False)
        return tile

    def _fetch(self, z: int, x: int, y: int) -> MapTile:
        url = self.template.replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y))
        try:
            r = self._client.get(url)
        except httpx.HTTPError as e:
            logger.warning("map tile server unreachable: %s", type(e).__name__)
            raise UnavailableError("the map tile server cannot be reached") from e
        if r.status_code == 404:
            raise NotFoundError(f"the map tile server has no tile {z}/{x}/{y}")
        media_type = r.headers.get("content-type", "").split(";")[0].strip()
        if r.status_code != 200 or not media_type.startswith("image/"):
            logger.warning("map tile server answered %s (%s)", r.status_code, media_type)
            raise UnavailableError(f"the map tile server answered {r.status_code}")
        if len(r.content) > self.MAX_BYTES:
            raise UnavailableError("the map tile is too large")
        return MapTile(r.content, media_type)

    def close(self) -> None:
        self._client.close()


def tile_proxy(template: str | None) -> TileProxy | None:
    """A proxy for a tile server on another host; None when the page loads the tiles itself
    (a same-origin path) or there is no tile server."""
    if template is None or template.startswith("/"):
        return None
    return TileProxy(template)


_NO_STORE = {"Cache-Control": "no-store"}
TileZ = Annotated[int, Path(ge=0, le=22)]
TileXY = Annotated[int, Path(ge=0, le=2**22)]


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


def make_watch_router(frames: FrameLookup | None = None, tile_url: str | None = None) -> APIRouter:
    """The watch screen's routes; ``frames`` None = pictures come from stored evidence only;
    ``tile_url`` the console's map tile template (proxied when it names another host)."""
    router = APIRouter(prefix="/api/v1/watch", tags=["watch"], responses=AUTH_RESPONSES)
    cache = TileCache()
    proxy = tile_proxy(tile_url)

    @router.get("/cameras", response_model=WatchPage, summary="Cameras with place and health")
    def cameras(principal: Viewer, service: Service) -> WatchPage:
        health = {k: for_caller(h, principal) for k, h in service.stream_health().items()}
        page = watch_page(service.cameras.all(), health)
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

    @router.get(
        "/tiles/{z}/{x}/{y}",
        summary="A map tile of the configured tile server (fetched by the service)",
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}, "image/jpeg": {}}},
            404: {"model": ErrorBody, "description": "No tile server, or no such tile."},
            503: {"model": ErrorBody, "description": "The tile server cannot be reached."},
        },
    )
    def map_tile(z: TileZ, x: TileXY, y: TileXY, _: Viewer) -> Response:
        if proxy is None:
            raise NotFoundError("no tile server on another host is configured")
        tile = proxy.get(z, x, y)
        headers = {"Cache-Control": "private, max-age=86400"}
        return Response(tile.content, media_type=tile.media_type, headers=headers)

    return router
