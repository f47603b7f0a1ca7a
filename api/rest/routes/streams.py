"""Live stream health per camera (state, fps, drops by reason, reconnects, frame age, skew)."""

from __future__ import annotations

from fastapi import APIRouter

from sharpeyes.api.rest.deps import AUTH_RESPONSES, Service, Viewer
from sharpeyes.api.rest.errors import NotFoundError
from sharpeyes.api.rest.routes.cameras import NOT_FOUND, CameraIdPath
from sharpeyes.api.rest.schemas import StreamHealthPublic, StreamPage

router = APIRouter(prefix="/api/v1/streams", tags=["streams"], responses=AUTH_RESPONSES)


@router.get("", response_model=StreamPage, summary="Health of every stream")
def list_streams(_: Viewer, service: Service) -> StreamPage:
    health = service.stream_health()
    return StreamPage(items=[health[k] for k in sorted(health)])


@router.get(
    "/{camera_id}",
    response_model=StreamHealthPublic,
    summary="Health of one stream",
    responses=NOT_FOUND,
)
def get_stream(camera_id: CameraIdPath, _: Viewer, service: Service) -> StreamHealthPublic:
    health = service.stream_health()
    if camera_id not in health:
        raise NotFoundError(f"no stream for camera {camera_id!r}")
    return health[camera_id]
