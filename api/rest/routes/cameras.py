"""Cameras: list, get, create, update (incl. calibration), delete, start/stop (admin writes),
and the geometry check of one camera (its geometry drawn over its latest frame, the static
problems; :mod:`api.rest.geometry`) for whoever may see cameras.

Changes go through the camera registry to the runner's controller, so they take effect on the
running pipeline. RTSP passwords are masked in every response. URLs are allow-listed (rtsp,
rtsps, or files under the media roots: 400 otherwise); cameras of the config file are
read-only here (409).
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import ValidationError

from sharpeyes.api.rest.cameras import CameraEntry, mask_url, restore_masked_url
from sharpeyes.api.rest.deps import AUTH_RESPONSES, Admin, Service, Viewer
from sharpeyes.api.rest.errors import InvalidRequestError
from sharpeyes.api.rest.geometry import GeometryDrawer, GeometryReport, Lang
from sharpeyes.api.rest.schemas import (
    CameraCreate,
    CameraPage,
    CameraPublic,
    CameraUpdate,
    ErrorBody,
)
from sharpeyes.api.rest.service import ServiceFacade, StoreService
from sharpeyes.pipeline.config import CameraConfig, format_validation_error

router = APIRouter(prefix="/api/v1/cameras", tags=["cameras"], responses=AUTH_RESPONSES)
CameraIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such camera."}
}
BAD_CONFIG: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The camera config is invalid (the reason says why)."}
}


def camera_public(entry: CameraEntry) -> CameraPublic:
    cfg = entry.config
    data = cfg.model_dump()
    data["url"] = mask_url(cfg.url)
    return CameraPublic(
        **data, enabled=entry.enabled, created_ms=entry.created_ms, updated_ms=entry.updated_ms
    )


def _validated(data: dict[str, Any]) -> CameraConfig:
    try:
        return CameraConfig.model_validate(data)
    except ValidationError as e:
        raise InvalidRequestError(format_validation_error(e, "camera", CameraConfig)) from e


@router.get("", response_model=CameraPage, summary="All cameras")
def list_cameras(_: Viewer, service: Service) -> CameraPage:
    return CameraPage(items=[camera_public(e) for e in service.cameras.all()])


@router.post(
    "",
    response_model=CameraPublic,
    status_code=201,
    summary="Add a camera (starts analysing)",
    responses={
        409: {"model": ErrorBody, "description": "A camera with this id exists."},
        **BAD_CONFIG,
    },
)
def create_camera(body: CameraCreate, _: Admin, service: Service) -> CameraPublic:
    cfg = _validated(body.model_dump(exclude_none=True))
    return camera_public(service.cameras.create(cfg))


@router.get("/{camera_id}", response_model=CameraPublic, summary="One camera", responses=NOT_FOUND)
def get_camera(camera_id: CameraIdPath, _: Viewer, service: Service) -> CameraPublic:
    return camera_public(service.cameras.get(camera_id))


@router.patch(
    "/{camera_id}",
    response_model=CameraPublic,
    summary="Change a camera (fields sent replace the stored ones)",
    responses={**NOT_FOUND, **BAD_CONFIG},
)
def update_camera(
    camera_id: CameraIdPath, body: CameraUpdate, _: Admin, service: Service
) -> CameraPublic:
    old = service.cameras.get(camera_id).config
    changes = body.model_dump(exclude_unset=True)
    if "url" in changes:
        if changes["url"] is None:
            raise InvalidRequestError("url cannot be null: a camera needs a source")
        changes["url"] = restore_masked_url(changes["url"], old.url)
    merged = {**old.model_dump(), **changes}
    return camera_public(service.cameras.update(_validated(merged)))


@router.delete(
    "/{camera_id}", status_code=204, summary="Remove a camera (stops it)", responses=NOT_FOUND
)
def delete_camera(camera_id: CameraIdPath, _: Admin, service: Service) -> Response:
    service.cameras.delete(camera_id)
    return Response(status_code=204)


@router.post(
    "/{camera_id}/start",
    response_model=CameraPublic,
    summary="Start analysing",
    responses=NOT_FOUND,
)
def start_camera(camera_id: CameraIdPath, _: Admin, service: Service) -> CameraPublic:
    return camera_public(service.cameras.set_enabled(camera_id, True))


@router.post(
    "/{camera_id}/stop", response_model=CameraPublic, summary="Stop analysing", responses=NOT_FOUND
)
def stop_camera(camera_id: CameraIdPath, _: Admin, service: Service) -> CameraPublic:
    return camera_public(service.cameras.set_enabled(camera_id, False))


# -- geometry check (标定图) -----------------------------------------------------------------------

_NO_STORE = "no-store"
_drawer_lock = threading.Lock()


def _drawer(request: Request, service: ServiceFacade) -> GeometryDrawer:
    """The app's drawer (one per app: its kept pictures and last frame sizes)."""
    state = request.app.state
    with _drawer_lock:
        drawer: GeometryDrawer | None = getattr(state, "geometry_drawer", None)
        if drawer is None:
            frames = service.latest_frame if isinstance(service, StoreService) else None
            drawer = GeometryDrawer(frames)
            state.geometry_drawer = drawer
    return drawer


@router.get(
    "/{camera_id}/geometry",
    response_model=GeometryReport,
    summary="The camera's geometry problems (static checks on its latest frame size)",
    responses=NOT_FOUND,
)
def camera_geometry(
    camera_id: CameraIdPath, _: Viewer, service: Service, request: Request, response: Response
) -> GeometryReport:
    entry = service.cameras.get(camera_id)
    response.headers["Cache-Control"] = _NO_STORE
    return _drawer(request, service).report(entry)


@router.get(
    "/{camera_id}/geometry.png",
    summary="The camera's geometry drawn over its latest frame (PNG)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **NOT_FOUND},
)
def camera_geometry_png(
    camera_id: CameraIdPath,
    _: Viewer,
    service: Service,
    request: Request,
    lang: Annotated[Lang, Query(description="Label language (zh needs a CJK font).")] = "zh",
) -> Response:
    entry = service.cameras.get(camera_id)
    drawer = _drawer(request, service)
    drawer.forget_except({e.config.id for e in service.cameras.all()})
    pic = drawer.picture(entry, lang)
    rep = pic.report
    headers = {
        "Cache-Control": _NO_STORE,
        "X-Frame-Source": rep.frame_source,
        "X-Geometry-Problems": str(len(rep.problems)),
        "Server-Timing": f"draw;dur={0.0 if pic.cached else pic.draw_ms:.1f}",
    }
    if rep.frame_time_ms is not None:
        headers["X-Frame-Time-Ms"] = str(rep.frame_time_ms)
    return Response(pic.png, media_type="image/png", headers=headers)
