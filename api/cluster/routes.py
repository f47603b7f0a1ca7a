"""Cluster endpoints: health, Prometheus text, runtime add/remove of cameras, node drain.

``make_cluster_router(provider)`` returns an ``APIRouter`` the app mounts with one line;
``provider()`` gives the running :class:`~api.cluster.service.ClusterHandle` or None (the node
runs without cluster mode: 503). Reads need the viewer role, changes the admin role.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field

from sharpeyes.api.cluster.health import ClusterHealth, render_metrics
from sharpeyes.api.cluster.leases import UnknownCameraError
from sharpeyes.api.cluster.service import ClusterHandle
from sharpeyes.api.rest.deps import AUTH_RESPONSES, Admin, Viewer
from sharpeyes.api.rest.schemas import FaceCountsPublic, PlateSizesPublic
from sharpeyes.pipeline.config import CameraConfig


class CameraHealthPublic(BaseModel):
    camera_id: str
    state: str = Field(
        description="starting, running, stalled, fenced, failed, unassigned, finished"
    )
    node: str | None
    worker: str | None
    epoch: int = Field(description="Current lease epoch (fencing token).")
    pos: int = Field(description="Committed position.")
    fps: float
    lag_s: float
    last_commit_age_s: float | None
    plates: PlateSizesPublic | None = Field(
        None,
        description="A checkpoint camera's plates: found, read, too small to read, their median "
        "width and, when they are too small, the finding. None for a camera that reads no "
        "plates (or not reported yet).",
    )
    faces: FaceCountsPublic | None = Field(
        None,
        description="A face camera's captures: persons seen, faces captured, too small, blurred "
        "or not found and, when most are too small, the finding. None for a camera without "
        "face capture (or not reported yet).",
    )


class WorkerPublic(BaseModel):
    name: str
    node: str
    state: str
    capacity: float
    load: float


class ClusterHealthPublic(BaseModel):
    backend: str
    at_ms: int
    n_plus_one: bool = Field(description="The load still fits after losing the biggest worker.")
    cameras: list[CameraHealthPublic]
    workers: list[WorkerPublic]


class ClusterCameraIn(BaseModel):
    camera: CameraConfig
    cost: float = Field(1.0, gt=0.0, description="Placement cost (1080p25 = 1.0).")
    resource: str | None = Field(None, description="Custom resource the camera needs.")


class ChangeOut(BaseModel):
    camera_id: str | None = None
    epoch: int | None = None
    workers: int | None = None


def health_public(backend: str, h: ClusterHealth) -> ClusterHealthPublic:
    return ClusterHealthPublic(
        backend=backend,
        at_ms=h.at_ms,
        n_plus_one=h.n_plus_one(),
        cameras=[
            CameraHealthPublic(
                camera_id=c.camera_id,
                state=str(c.state),
                node=c.node,
                worker=c.worker,
                epoch=c.epoch,
                pos=c.pos,
                fps=c.fps,
                lag_s=c.lag_s,
                last_commit_age_s=c.last_commit_age_s,
                plates=None if c.plates is None else PlateSizesPublic.of(c.plates),
                faces=None if c.faces is None else FaceCountsPublic.of(c.faces),
            )
            for c in h.cameras
        ],
        workers=[
            WorkerPublic(name=w.name, node=w.node, state=w.state, capacity=w.capacity, load=w.load)
            for w in h.workers
        ],
    )


def make_cluster_router(provider: Callable[[], ClusterHandle | None]) -> APIRouter:
    """``/api/v1/cluster`` routes reading the handle ``provider`` returns at request time."""
    router = APIRouter(prefix="/api/v1/cluster", tags=["cluster"], responses=AUTH_RESPONSES)

    def handle() -> ClusterHandle:
        h = provider()
        if h is None:
            raise HTTPException(503, "this node does not run in cluster mode")
        return h

    @router.get("", response_model=ClusterHealthPublic, summary="Cluster-wide camera health")
    def get_cluster(_: Viewer) -> ClusterHealthPublic:
        h = handle()
        return health_public(h.backend, h.health())

    @router.get("/metrics", summary="Cluster health as Prometheus text")
    def get_metrics(_: Viewer) -> Response:
        return Response(render_metrics(handle().health()), media_type="text/plain; version=0.0.4")

    @router.post(
        "/cameras",
        response_model=ChangeOut,
        status_code=202,
        summary="Add or update a camera (placed on the next reconcile)",
    )
    def add_camera(body: ClusterCameraIn, _: Admin) -> ChangeOut:
        from sharpeyes.api.cluster.pipeline_program import pipeline_spec

        handle().add_camera(pipeline_spec(body.camera, cost=body.cost, resource=body.resource))
        return ChangeOut(camera_id=body.camera.id)

    @router.delete(
        "/cameras/{camera_id}", response_model=ChangeOut, summary="Fence and remove a camera"
    )
    def remove_camera(camera_id: str, _: Admin) -> ChangeOut:
        try:
            epoch = handle().remove_camera(camera_id)
        except UnknownCameraError as e:
            raise HTTPException(404, str(e)) from e
        return ChangeOut(camera_id=camera_id, epoch=epoch)

    @router.post(
        "/nodes/{node}/drain", response_model=ChangeOut, summary="Move every camera off a node"
    )
    def drain(node: str, _: Admin) -> ChangeOut:
        return ChangeOut(workers=handle().drain(node))

    return router
