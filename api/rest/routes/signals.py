"""External signal phases from a signal controller: ``/api/v1/cameras/{id}/signal-phases``.

For signal groups whose calibration says ``source: external`` (or ``external_then_video``): the
controller (or a lamp-cable detector) tells each phase change with ``POST`` (admin); the camera's
signal board uses it from the frame time it names (``pts`` or ``wall_ms``; neither = now).
``GET`` (viewer) reads back which phase the camera believes per external group. The same
messages can come over UDP (``phase_input.udp_port`` in the service config); both take the one
path of :class:`~sharpeyes.pipeline.signal_input.PhaseIntake` (routing, time checks, counts on
``/metrics``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from sharpeyes.api.rest.deps import AUTH_RESPONSES, Admin, Service, Viewer
from sharpeyes.api.rest.errors import InvalidRequestError, NotFoundError
from sharpeyes.api.rest.routes.cameras import CameraIdPath
from sharpeyes.api.rest.schemas import ErrorBody
from sharpeyes.pipeline.signal_input import GroupPhase, PhaseMessage, PhaseRejectedError
from sharpeyes.pipeline.types import LampColor

router = APIRouter(prefix="/api/v1/cameras", tags=["signals"], responses=AUTH_RESPONSES)

NO_PHASES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such camera, or it takes no external phases."}
}
REFUSED: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "Refused: the group is not an external group of the camera, the camera "
        "in the body differs from the path, or wall_ms is impossible (the reason says why, e.g. "
        "seconds instead of milliseconds).",
    }
}


class LastPhaseMessage(BaseModel):
    """The last phase message of a group."""

    color: LampColor = Field(description="The colour it told.")
    wall_ms: int | None = Field(
        description="UTC epoch ms of the lamp change it named (arrival when it named none); "
        "null when it named a pts."
    )
    pts: float | None = Field(description="Stream time (s) it named, if any.")
    received_ms: int = Field(description="UTC epoch ms when it arrived here.")
    source: str = Field(
        description="How it came: rest | udp (api/relay: handed on inside the service)."
    )


class GroupPhasePublic(BaseModel):
    """Which phase the camera believes for one external signal group."""

    group: str = Field(description="Signal-group id.")
    color: LampColor = Field(description="The colour the camera uses now (unknown when stale).")
    since_ms: int | None = Field(description="UTC epoch ms since when (null when not known).")
    stale: bool = Field(
        description="No controller message for longer than the group's external_timeout_s: the "
        "group is unknown and its red-light rule does not run."
    )
    timeout_s: float = Field(description="The group's external_timeout_s (0 = never stale).")
    as_of_ms: int | None = Field(
        description="Frame time (UTC epoch ms) of the signal board's last decision; null before "
        "the camera's first frame (or in a cluster: what the coordinator last told the worker)."
    )
    messages: int = Field(description="Phase messages applied to this group.")
    last_message: LastPhaseMessage | None = Field(description="The last message, if any.")


class CameraPhases(BaseModel):
    camera: str
    groups: list[GroupPhasePublic]


def group_public(g: GroupPhase) -> GroupPhasePublic:
    last = g.last
    return GroupPhasePublic(
        group=g.group,
        color=g.color,
        since_ms=g.since_ms,
        stale=g.stale,
        timeout_s=g.timeout_s,
        as_of_ms=g.as_of_ms,
        messages=g.messages,
        last_message=None
        if last is None
        else LastPhaseMessage(
            color=last.color,
            wall_ms=last.wall_ms,
            pts=last.pts,
            received_ms=last.received_ms,
            source=last.transport,
        ),
    )


@router.post(
    "/{camera_id}/signal-phases",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Tell a signal group's phase change (external phase input)",
    responses={**NO_PHASES, **REFUSED},
)
def post_phase(camera_id: CameraIdPath, body: PhaseMessage, _: Admin, service: Service) -> None:
    hub = service.phase_hub()
    if hub is None or not hub.takes(camera_id):
        if hub is not None:
            hub.counts.received("rest")
            hub.counts.rejected("rest", "unknown_camera")
        raise NotFoundError(f"camera {camera_id!r} takes no external signal phases here")
    try:
        hub.receive(body, "rest", camera_id)
    except PhaseRejectedError as e:
        if e.reason == "unknown_camera":  # removed meanwhile
            raise NotFoundError(str(e)) from e
        raise InvalidRequestError(str(e)) from e


@router.get(
    "/{camera_id}/signal-phases",
    response_model=CameraPhases,
    summary="Which phase the camera believes per external signal group (read-back)",
    responses=NO_PHASES,
)
def get_phases(camera_id: CameraIdPath, _: Viewer, service: Service) -> CameraPhases:
    hub = service.phase_hub()
    groups = None if hub is None else hub.status(camera_id)
    if groups is None:
        raise NotFoundError(f"camera {camera_id!r} takes no external signal phases here")
    return CameraPhases(camera=camera_id, groups=[group_public(g) for g in groups])
