"""Cluster-wide per-camera health: worker reports merged with the desired set in the database.

Each worker reports its cameras (:class:`CameraStatus`); the coordinator merges those reports
with the cluster tables (desired set, epochs, owners, positions) into one
:class:`ClusterHealth` snapshot (``docs/SCALE_OUT.md`` §2.5). ``GET /cameras`` and ``/metrics``
read that snapshot, so one node and a cluster answer the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sharpeyes.api.cluster.leases import CameraRow
from sharpeyes.pipeline.structuring.face_stats import FACE_COUNTERS, FaceStats
from sharpeyes.pipeline.structuring.plate_tally import PlateSizes


class CameraState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STALLED = "stalled"
    FENCED = "fenced"
    FAILED = "failed"
    UNASSIGNED = "unassigned"
    FINISHED = "finished"  # a file camera reached its end and committed it


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """What a worker knows about one of its cameras."""

    camera_id: str
    epoch: int
    state: CameraState
    pos: int
    fps: float = 0.0
    lag_s: float = 0.0
    last_commit_ms: int | None = None
    commits: int = 0
    rejected: int = 0
    error: str | None = None
    plates: PlateSizes | None = None  # a checkpoint camera's plates found, read, how wide
    faces: FaceStats | None = None  # a face camera's captures, and why not


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """A worker's answer to ``health()``."""

    name: str
    node: str
    capacity: float
    cameras: tuple[CameraStatus, ...]
    at_ms: int


@dataclass(frozen=True, slots=True)
class CameraHealth:
    camera_id: str
    state: CameraState
    node: str | None
    worker: str | None
    epoch: int
    pos: int
    fps: float
    lag_s: float
    last_commit_age_s: float | None
    plates: PlateSizes | None = None  # a checkpoint camera's plates (None: reads none)
    faces: FaceStats | None = None  # a face camera's captures (None: no face capture)


@dataclass(frozen=True, slots=True)
class WorkerSummary:
    name: str
    node: str
    state: str
    capacity: float
    load: float


@dataclass(frozen=True, slots=True)
class ClusterHealth:
    cameras: tuple[CameraHealth, ...]
    workers: tuple[WorkerSummary, ...]
    at_ms: int

    def camera(self, camera_id: str) -> CameraHealth | None:
        return next((c for c in self.cameras if c.camera_id == camera_id), None)

    def n_plus_one(self) -> bool:
        """Whether the desired load still fits after losing the biggest live worker."""
        live = [w for w in self.workers if w.state == "ready"]
        if not live:
            return False
        spare = sum(w.capacity for w in live) - max(w.capacity for w in live)
        return sum(w.load for w in live) <= spare


STALL_AFTER_S = 5.0


def merge(
    rows: Sequence[CameraRow],
    reports: Mapping[str, WorkerReport],
    workers: Sequence[WorkerSummary],
    now_ms: int,
    *,
    stall_after_s: float = STALL_AFTER_S,
) -> ClusterHealth:
    """One snapshot from the desired set (``rows``) and the latest report of each worker."""
    out: list[CameraHealth] = []
    for row in rows:
        if not row.desired:
            continue
        owner = row.owner
        report = reports.get(owner) if owner else None
        status = None
        if report is not None:
            status = next((c for c in report.cameras if c.camera_id == row.spec.camera_id), None)
        age = None if row.last_commit_ms is None else max(0.0, (now_ms - row.last_commit_ms) / 1e3)
        state = _state(owner, status, row.epoch, age, stall_after_s)
        out.append(
            CameraHealth(
                camera_id=row.spec.camera_id,
                state=state,
                node=None if report is None else report.node,
                worker=owner,
                epoch=row.epoch,
                pos=row.pos,
                fps=0.0 if status is None else status.fps,
                lag_s=0.0 if status is None else status.lag_s,
                last_commit_age_s=age,
                plates=None if status is None else status.plates,
                faces=None if status is None else status.faces,
            )
        )
    return ClusterHealth(tuple(out), tuple(workers), now_ms)


def _state(
    owner: str | None,
    status: CameraStatus | None,
    epoch: int,
    age_s: float | None,
    stall_after_s: float,
) -> CameraState:
    if not owner:
        return CameraState.UNASSIGNED
    if status is None or status.epoch < epoch:
        return CameraState.STARTING  # granted, the worker has not reported it yet
    if status.state in (CameraState.FENCED, CameraState.FAILED, CameraState.FINISHED):
        return status.state
    if age_s is not None and age_s > stall_after_s:
        return CameraState.STALLED
    return status.state


def render_metrics(health: ClusterHealth) -> str:
    """Prometheus text exposition of a snapshot (same metric names on one node and a cluster)."""
    lines = [
        "# HELP sharpeyes_cluster_camera_state 1 for the camera's current state.",
        "# TYPE sharpeyes_cluster_camera_state gauge",
    ]
    for c in health.cameras:
        for s in CameraState:
            value = 1 if c.state == s else 0
            lines.append(
                f'sharpeyes_cluster_camera_state{{camera="{c.camera_id}",state="{s}"}} {value}'
            )
    gauges: tuple[tuple[str, str, Callable[[CameraHealth], float]], ...] = (
        ("camera_epoch", "Current lease epoch (fencing token).", lambda c: float(c.epoch)),
        ("camera_fps", "Frames (positions) per second committed.", lambda c: c.fps),
        ("camera_lag_seconds", "How far the camera is behind live.", lambda c: c.lag_s),
        (
            "camera_last_commit_age_seconds",
            "Seconds since the camera's last commit.",
            lambda c: -1.0 if c.last_commit_age_s is None else c.last_commit_age_s,
        ),
    )
    for name, help_text, get in gauges:
        lines += [
            f"# HELP sharpeyes_cluster_{name} {help_text}",
            f"# TYPE sharpeyes_cluster_{name} gauge",
        ]
        for c in health.cameras:
            lines.append(f'sharpeyes_cluster_{name}{{camera="{c.camera_id}"}} {get(c):.3f}')
    lines += _plate_metrics(health.cameras)
    lines += _face_metrics(health.cameras)
    lines += ["# TYPE sharpeyes_cluster_worker_load gauge"]
    for w in health.workers:
        lines.append(
            f'sharpeyes_cluster_worker_load{{worker="{w.name}",node="{w.node}"}} {w.load:.3f}'
        )
    lines.append(f"sharpeyes_cluster_n_plus_one {1 if health.n_plus_one() else 0}")
    return "\n".join(lines) + "\n"


def _face_metrics(cameras: Sequence[CameraHealth]) -> list[str]:
    """A face camera's persons, faces captured and faces too small (counters since its
    pipeline started), as the node's ``sharpeyes_stream_*``."""
    faces = [(c.camera_id, c.faces) for c in cameras if c.faces is not None]
    return _counter_lines(FACE_COUNTERS, faces)


_T = TypeVar("_T")


def _counter_lines(
    counters: Sequence[tuple[str, str, Callable[[_T], int]]], values: Sequence[tuple[str, _T]]
) -> list[str]:
    """``sharpeyes_cluster_camera_<name>_total`` counters, one line per camera's ``values``."""
    lines: list[str] = []
    for name, help_text, get in counters:
        metric = f"sharpeyes_cluster_camera_{name}_total"
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
        lines += [f'{metric}{{camera="{cid}"}} {get(v)}' for cid, v in values]
    return lines


def _plate_metrics(cameras: Sequence[CameraHealth]) -> list[str]:
    """A checkpoint camera's plates found, read and too small to read (counters since its
    pipeline started) and their median width, as the node's ``sharpeyes_stream_plate*``."""
    read = [c for c in cameras if c.plates is not None]
    counters: tuple[tuple[str, str, Callable[[PlateSizes], int]], ...] = (
        ("plates_found", "Plates found by the camera's plate reads.", lambda p: p.seen),
        ("plates_read", "Plates whose text was read.", lambda p: p.read),
        (
            "plates_too_small",
            "Plates not read: narrower than the 50 px a plate needs.",
            lambda p: p.too_small,
        ),
    )
    lines = _counter_lines(
        counters, [(c.camera_id, c.plates) for c in read if c.plates is not None]
    )
    metric = "sharpeyes_cluster_camera_plate_width_pixels"
    lines += [
        f"# HELP {metric} Median width of the camera's latest plates (under 50 too small to read).",
        f"# TYPE {metric} gauge",
    ]
    for c in read:
        if c.plates is not None and c.plates.median_px is not None:
            lines.append(f'{metric}{{camera="{c.camera_id}"}} {c.plates.median_px:.1f}')
    return lines
