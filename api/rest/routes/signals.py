"""External signal phases from a signal controller: ``POST /api/v1/cameras/{id}/signal-phases``.

For signal groups whose calibration says ``source: external`` (or ``external_then_video``): the
controller (or a lamp-cable detector) tells each phase change; the camera's signal board uses it
from the frame time it names (``pts`` or ``wall_ms``; neither = now). The same messages can come
over UDP (``phase_input.udp_port`` in the service config; see ``pipeline/signal_input.py``).
"""

from __future__ import annotations

from fastapi import APIRouter, status

from sharpeyes.api.rest.deps import AUTH_RESPONSES, Admin, Service
from sharpeyes.api.rest.errors import InvalidRequestError, NotFoundError
from sharpeyes.api.rest.routes.cameras import NOT_FOUND, CameraIdPath
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.pipeline.signal_input import PhaseMessage

router = APIRouter(prefix="/api/v1/cameras", tags=["signals"], responses=AUTH_RESPONSES)


@router.post(
    "/{camera_id}/signal-phases",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Tell a signal group's phase change (external phase input)",
    responses=NOT_FOUND,
)
def post_phase(camera_id: CameraIdPath, body: PhaseMessage, _: Admin, service: Service) -> None:
    hub = service.phase_hub()
    if hub is None or not hub.takes(camera_id):
        raise NotFoundError(f"camera {camera_id!r} takes no external signal phases here")
    if body.camera is not None and body.camera != camera_id:
        raise InvalidRequestError("camera: differs from the camera in the path")
    try:
        hub.apply(body, camera_id)
    except ConfigError as e:
        raise InvalidRequestError(str(e)) from e
