"""Which worker process of a node runs which cameras, on which GPU — pure planning.

``workers="per-gpu"`` makes one worker per visible GPU (one worker on a machine without GPU);
an integer makes that many workers, spread over the GPUs round-robin when there are any.
Cameras go to workers round-robin in config order, or by cost: costliest first to the least
loaded worker (ties: the lower index), where a camera's cost is its declared
``node.costs[id]``, else its analysis rate. Each worker's config is the node's with only its
cameras, its GPU set as the decoder's and the detector backend's device, and no metrics port
(the parent serves the aggregated metrics).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.errors import ConfigError

logger = logging.getLogger(__name__)

WorkersArg = int | Literal["per-gpu"]
DEFAULT_CAMERA_COST = 5.0


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """One worker process: its index, its GPU (None: CPU only) and its config."""

    index: int
    gpu: int | None
    config: ServiceConfig

    @property
    def camera_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.config.cameras)


def count_gpus() -> int:
    """Visible NVIDIA GPUs: ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi -L``; 0 if none.

    Uses no CUDA library, so the parent process never creates a CUDA context.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        logger.warning("nvidia-smi -L failed: %s", e)
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def camera_cost(cam: CameraConfig, costs: Mapping[str, float]) -> float:
    """Declared cost, else the analysis rate (frames the detector sees per second)."""
    if cam.id in costs:
        return costs[cam.id]
    return cam.analysis_fps if cam.analysis_fps else DEFAULT_CAMERA_COST


def partition(
    cameras: Sequence[CameraConfig],
    n: int,
    *,
    by: Literal["round-robin", "cost"] = "round-robin",
    costs: Mapping[str, float] | None = None,
) -> list[list[CameraConfig]]:
    """Split cameras into ``n`` groups (see module docstring); each keeps config order."""
    if n < 1:
        raise ValueError(f"workers must be ≥ 1, got {n}")
    groups: list[list[CameraConfig]] = [[] for _ in range(n)]
    if by == "round-robin":
        for i, cam in enumerate(cameras):
            groups[i % n].append(cam)
        return groups
    order = {cam.id: i for i, cam in enumerate(cameras)}
    loads = [0.0] * n
    ranked = sorted(cameras, key=lambda c: (-camera_cost(c, costs or {}), order[c.id]))
    for cam in ranked:
        target = min(range(n), key=lambda w: (loads[w], w))
        groups[target].append(cam)
        loads[target] += camera_cost(cam, costs or {})
    return [sorted(g, key=lambda c: order[c.id]) for g in groups]


def resolve_workers(workers: WorkersArg, gpus: int) -> int:
    """How many worker processes ``workers`` means on a machine with ``gpus`` GPUs."""
    if workers == "per-gpu":
        if gpus == 0:
            logger.warning("workers per-gpu: no GPU visible; running one CPU worker")
        return max(1, gpus)
    if workers < 1:
        raise ConfigError(f"workers must be ≥ 1 or 'per-gpu', got {workers}")
    return workers


def worker_config(
    config: ServiceConfig,
    cameras: Sequence[CameraConfig],
    gpu: int | None,
    phase_port: int | None = None,
) -> ServiceConfig:
    """The node config narrowed to one worker: its cameras, its GPU, no metrics port, and (when
    the node takes external phases) a loopback port the parent relays its cameras' phases to."""
    update: dict[str, object] = {
        "cameras": list(cameras),
        "metrics": config.metrics.model_copy(update={"port": None}),
    }
    if config.phase_input.udp_port is not None:
        update["phase_input"] = config.phase_input.model_copy(
            update={"udp_host": "127.0.0.1", "udp_port": phase_port or 0}
        )
    if gpu is not None:
        update["decoder"] = config.decoder.model_copy(update={"device_id": gpu})
        for key in ("detector", "detector_backend"):  # the detector's CUDA device = this GPU
            det = getattr(config, key)
            if det is not None and det.device.startswith("cuda"):
                update[key] = det.model_copy(update={"device": f"cuda:{gpu}"})
    return config.model_copy(update=update)


def plan_workers(config: ServiceConfig, workers: WorkersArg, gpus: int) -> list[WorkerPlan]:
    """The node's worker processes and their cameras (fewer when there are fewer cameras)."""
    n = resolve_workers(workers, gpus)
    node = config.node
    groups = partition(config.cameras, n, by=node.partition, costs=node.costs)
    if n > len(config.cameras) > 0:
        logger.warning("%d workers for %d cameras: some workers idle", n, len(config.cameras))
    plans = []
    for i, cams in enumerate(g for g in groups if g):  # no process for a worker without cameras
        gpu = i % gpus if gpus > 0 else None
        port = free_udp_port() if config.phase_input.udp_port is not None else None
        plans.append(WorkerPlan(i, gpu, worker_config(config, cams, gpu, port)))
    return plans


def free_udp_port() -> int:
    """A loopback UDP port free right now (a worker's phase port; the parent relays to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def phase_routes(plans: Sequence[WorkerPlan]) -> dict[str, int]:
    """Camera id → its worker's phase port, for the cameras with external signal groups."""
    routes: dict[str, int] = {}
    for plan in plans:
        port = plan.config.phase_input.udp_port
        for cam in plan.config.cameras:
            if (
                port
                and cam.intersection is not None
                and any(g.source != "video" for g in cam.intersection.signal_groups)
            ):
                routes[cam.id] = port
    return routes
