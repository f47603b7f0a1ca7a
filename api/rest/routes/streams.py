"""Live stream health per camera (state, fps, drops by reason, reconnects, frame age, skew).

Open and read errors can reveal what the server sees (files, internal hosts): admins get them
with URLs masked, other roles only a generic line.
"""

from __future__ import annotations

from fastapi import APIRouter

from sharpeyes.api.rest.auth import Principal, Role
from sharpeyes.api.rest.deps import AUTH_RESPONSES, Service, Viewer
from sharpeyes.api.rest.errors import NotFoundError
from sharpeyes.api.rest.routes.cameras import NOT_FOUND, CameraIdPath
from sharpeyes.api.rest.schemas import StreamHealthPublic, StreamPage
from sharpeyes.streams.urls import mask_text, mask_url

GENERIC_DETAIL = "the source reported a problem (details for admins)"


def for_caller(h: StreamHealthPublic, principal: Principal) -> StreamHealthPublic:
    """Mask URLs everywhere; only admins see the source's error text."""
    if principal.allows(Role.ADMIN):
        detail = mask_text(h.detail)
    else:
        detail = GENERIC_DETAIL if h.detail else None
    return h.model_copy(update={"url": mask_url(h.url), "detail": detail})


router = APIRouter(prefix="/api/v1/streams", tags=["streams"], responses=AUTH_RESPONSES)


@router.get("", response_model=StreamPage, summary="Health of every stream")
def list_streams(principal: Viewer, service: Service) -> StreamPage:
    health = service.stream_health()
    return StreamPage(items=[for_caller(health[k], principal) for k in sorted(health)])


@router.get(
    "/{camera_id}",
    response_model=StreamHealthPublic,
    summary="Health of one stream",
    responses=NOT_FOUND,
)
def get_stream(camera_id: CameraIdPath, principal: Viewer, service: Service) -> StreamHealthPublic:
    health = service.stream_health()
    if camera_id not in health:
        raise NotFoundError(f"no stream for camera {camera_id!r}")
    return for_caller(health[camera_id], principal)
