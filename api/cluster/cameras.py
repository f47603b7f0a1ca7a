"""The REST camera registry's controller in cluster mode: ``POST /api/v1/cameras`` places the
camera on the cluster, as ``serve`` without a cluster starts it on the node.

Without it, a camera added over ``/api/v1/cameras`` on a node running a cluster was listed and
stored but never ran anywhere (only ``/api/v1/cluster/cameras`` placed cameras). Update is a
remove and an add (the lease is fenced, the new config placed with the next epoch); stop
removes the camera from the cluster's desired set and keeps its config for start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from sharpeyes.api.cluster.leases import UnknownCameraError
from sharpeyes.api.cluster.service import ClusterHandle
from sharpeyes.api.rest.cameras import CameraEntry, CameraRegistry
from sharpeyes.pipeline.config import CameraConfig

log = logging.getLogger(__name__)


class ClusterCameras:
    """:class:`sharpeyes.api.rest.cameras.CameraController` over a :class:`ClusterHandle`."""

    def __init__(self, handle: ClusterHandle, registry: CameraRegistry) -> None:
        self.handle = handle
        self.registry = registry
        self._lock = threading.Lock()
        self._stopped: dict[str, CameraConfig] = {}

    def add(self, config: CameraConfig) -> None:
        self.handle.add_camera(config)

    def update(self, config: CameraConfig) -> None:
        with self._lock:
            if config.id in self._stopped:
                self._stopped[config.id] = config
                return
        self._remove_placed(config.id)
        self.handle.add_camera(config)

    def remove(self, camera_id: str) -> None:
        with self._lock:
            self._stopped.pop(camera_id, None)
        self._remove_placed(camera_id)

    def start(self, camera_id: str) -> None:
        """Place a stopped camera again (its config as last updated)."""
        with self._lock:
            config = self._stopped.pop(camera_id, None)
        if config is None:
            config = self.registry.get(camera_id).config
            self._remove_placed(camera_id)  # e.g. after a failed update: place it afresh
        self.handle.add_camera(config)

    def stop(self, camera_id: str) -> None:
        config = self.registry.get(camera_id).config
        with self._lock:
            self._stopped[camera_id] = config
        self._remove_placed(camera_id)

    def _remove_placed(self, camera_id: str) -> None:
        try:
            self.handle.remove_camera(camera_id)
        except UnknownCameraError:
            log.info("camera %s was not placed on the cluster", camera_id)


def place_saved_cameras(
    handle: ClusterHandle, entries: Iterable[CameraEntry], placed: Iterable[str]
) -> list[str]:
    """Place the enabled cameras added through the API in an earlier run (the config file's
    ``placed`` ones are on the cluster already); returns the ids placed."""
    running = set(placed)
    added: list[str] = []
    for entry in entries:
        if entry.enabled and entry.config.id not in running:
            handle.add_camera(entry.config)
            added.append(entry.config.id)
    return added
