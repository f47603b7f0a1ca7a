"""``sharpeyes serve``: the REST service and review console over a running node.

Wires the service facade (:class:`api.rest.service.StoreService`) to the node runtime: the runtime's
events reach the live feed through a sink, camera changes made through the API reach the
running pipeline through a :class:`api.rest.cameras.CameraController`, and stream health and model
status come from the runtime. uvicorn runs on a thread; :meth:`ApiServer.stop` ends it.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.api.rest.app import create_app
from sharpeyes.api.rest.auth.tokens import Role
from sharpeyes.api.rest.cameras import CameraRegistry
from sharpeyes.api.rest.context import ApiSettings
from sharpeyes.api.rest.evidence import CACHE_DIR, EvidenceLocator, RemoteEvidence
from sharpeyes.api.rest.feed import FeedHub
from sharpeyes.api.rest.routes.console import ConsoleConfig
from sharpeyes.api.rest.service import ModelStatus, StoreService
from sharpeyes.api.store.db import open_database
from sharpeyes.api.store.events import EventStore
from sharpeyes.api.store.migrate import migrate
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import APIRouter

    from sharpeyes.api.cluster.service import ClusterHandle
    from sharpeyes.api.cluster.storage import EvidenceReader

logger = logging.getLogger(__name__)

KEY_ENV = "SHARPEYES_API_KEY"
DEMO_TOKEN_ENV = "SHARPEYES_DEMO_TOKEN"


def api_key(files_root: Path) -> bytes:
    """The key that hashes API tokens and signs evidence URLs.

    From env ``SHARPEYES_API_KEY``; otherwise a random key kept in ``files_root/.api_key``
    (mode 0600), so tokens stay valid across restarts of the same installation.
    """
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode()
    path = files_root / ".api_key"
    if path.is_file():
        return path.read_bytes()
    files_root.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class RuntimeCameras:
    """:class:`sharpeyes.api.rest.cameras.CameraController` over a :class:`NodeRuntime`."""

    def add(self, config: CameraConfig) -> None:
        self.runtime.add_camera(config)

    def update(self, config: CameraConfig) -> None:
        if config.id in self._stopped:
            self._stopped[config.id] = config
            return
        self.runtime.update_camera(config)

    def remove(self, camera_id: str) -> None:
        self._stopped.pop(camera_id, None)
        self.runtime.remove_camera(camera_id)

    def __init__(self, runtime: NodeRuntime, registry: CameraRegistry | None = None) -> None:
        self.runtime = runtime
        self.registry = registry
        self._stopped: dict[str, CameraConfig] = {}

    def start(self, camera_id: str) -> None:
        """Start a stopped camera, or one that is not running (e.g. after a failed update)."""
        config = self._stopped.pop(camera_id, None)
        running = {c.id for c in self.runtime.camera_configs()}
        if config is None and camera_id not in running and self.registry is not None:
            config = self.registry.get(camera_id).config
        if config is not None:
            self.runtime.add_camera(config)

    def stop(self, camera_id: str) -> None:
        for cam in self.runtime.camera_configs():
            if cam.id == camera_id:
                self._stopped[camera_id] = cam
                self.runtime.remove_camera(camera_id)
                return


def build_service(config: ServiceConfig, evidence: EvidenceReader | None = None) -> StoreService:
    """The service facade over the configured store (created and migrated if new); the
    configured cameras seed the camera registry (API changes persist over them). ``evidence``:
    the cluster's evidence storage, read for evidence files not under the files root (cached
    in ``files_root/.storage-cache``)."""
    root = config.store.files_root
    key = api_key(root)
    db = open_database(config.store.url)
    migrate(db)
    cameras = CameraRegistry(db=db, seed=config.cameras)
    service = StoreService(
        db,
        EventStore(db, root),
        files_root=root,
        token_key=key,
        url_key=key,
        cameras=cameras,
    )
    if evidence is not None:
        service.locator = EvidenceLocator([root], RemoteEvidence(evidence, root / CACHE_DIR))
    return service


def attach_runtime(service: StoreService, runtime: NodeRuntime) -> None:
    """Plug the runtime's health, model status and camera control into the facade."""
    from sharpeyes.api.commands.run import health_public

    service.set_health_provider(lambda: {k: health_public(h) for k, h in runtime.health().items()})

    def model_status() -> ModelStatus:
        try:
            info = runtime.detector.info
        except RuntimeError as e:
            return ModelStatus(loaded=False, detail=str(e))
        return ModelStatus(loaded=True, provider=",".join(info.providers), detail=info.model)

    service.set_model_status(model_status)
    running = {c.id for c in runtime.camera_configs()}
    for entry in service.cameras.all():  # cameras added through the API in an earlier run
        if entry.enabled and entry.config.id not in running:
            runtime.add_camera(entry.config)
    service.cameras.set_controller(RuntimeCameras(runtime, service.cameras))
    service.set_writer_health(lambda: (runtime.writer.healthy(), runtime.writer.last_error))
    service.set_phase_hub(runtime.phases)
    service.set_delivery_status(runtime.delivery_status)
    service.set_frame_provider(runtime.latest_frame)


BOOTSTRAP_TOKEN_TTL_S = 7 * 24 * 3600.0
NO_NEW_TOKEN = "(none printed: an admin token already exists; issue more under /api/v1/tokens)"


def bootstrap_token(service: StoreService) -> str | None:
    """The admin token to show at start-up, or None when nothing new was minted.

    Env ``SHARPEYES_DEMO_TOKEN`` installs that token (idempotent). Otherwise an installation's
    first admin token is issued once (valid for 7 days) and shown; later starts mint nothing
    while an active admin token exists — so restarts no longer pile up admin tokens. When every
    admin token is revoked or expired, the next start issues a new one (recovery).
    """
    token = os.environ.get(DEMO_TOKEN_ENV)
    if token:
        service.tokens.ensure(token, "demo", Role.ADMIN)
        return token
    return service.tokens.bootstrap_admin(
        f"bootstrap-admin-{int(time.time())}", BOOTSTRAP_TOKEN_TTL_S
    )


def demo_token(service: StoreService) -> str:
    """What :func:`api.commands.run.announce` prints: :func:`bootstrap_token` or a note."""
    return bootstrap_token(service) or NO_NEW_TOKEN


@dataclass
class ApiServer:
    """uvicorn serving the app on a thread."""

    host: str
    port: int
    _server: object
    _thread: threading.Thread
    _feed: FeedHub | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._feed is not None:  # end the live feed's streams first: they never end alone
            self._feed.close()
        self._server.should_exit = True  # type: ignore[attr-defined]
        self._thread.join(timeout=10)


def start_server(
    service: StoreService,
    host: str,
    port: int,
    *,
    forwarded_allow_ips: str | None = None,
    cluster: Callable[[], ClusterHandle | None] | None = None,
    extra_routers: Sequence[APIRouter] = (),
    console: ConsoleConfig | None = None,
) -> ApiServer:
    """uvicorn on a thread; ``cluster`` mounts the cluster routes (a node running a cluster),
    ``extra_routers`` more routes (``/VIID/Subscribes``), ``console`` the unit's console
    settings (reject reasons, map tiles)."""
    import uvicorn

    app = create_app(
        ApiSettings(), service, cluster=cluster, extra_routers=extra_routers, console=console
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=2,
            # X-Forwarded-For only from configured proxies (uvicorn trusts 127.0.0.1 by default)
            proxy_headers=bool(forwarded_allow_ips),
            forwarded_allow_ips=forwarded_allow_ips or "",
        )
    )
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ConfigError(f"api: cannot listen on {host}:{port}")
        time.sleep(0.05)
    return ApiServer(host, port, server, thread, service.feed)
