"""``sharpeyes run`` / ``sharpeyes serve``: run the node until SIGTERM/SIGINT, then stop cleanly.

Start-up reads like a table of contents: load the config → start the runtime (store, detector,
batcher, cameras, delivery) → metrics endpoint → (REST API) → wait → stop: every camera flushes
its open tracks as events, the store and the outbox are closed.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from sharpeyes.api.commands.serve import (
    ApiServer,
    attach_runtime,
    build_service,
    demo_token,
    start_server,
)
from sharpeyes.api.node.plan import WorkersArg
from sharpeyes.api.node.prom import MetricsServer, build_registry, serve_metrics
from sharpeyes.api.node.runtime import CameraHealth, NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig, load_service_config
from sharpeyes.api.rest.feed import committed_publisher
from sharpeyes.api.rest.schemas import FaceCountsPublic, PlateSizesPublic, StreamHealthPublic
from sharpeyes.pipeline.data import samples_dir
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.pipeline.signal_input import UdpPhaseListener

if TYPE_CHECKING:
    from fastapi import APIRouter

    from sharpeyes.api.rest.service import StoreService
    from sharpeyes.api.viid.subscriptions import SubscriptionRegistry

logger = logging.getLogger(__name__)

DEMO_CONFIG = samples_dir() / "service_demo.yaml"


PUBLIC_STATES: dict[str, str] = {
    "connecting": "connecting",
    "live": "running",
    "degraded": "degraded",
    "stalled": "stalled",
    "backoff": "reconnecting",
    "failed": "error",
    "stopped": "stopped",
    "finished": "ended",
}


def health_public(h: CameraHealth) -> StreamHealthPublic:
    """A camera's health in the REST schema (``GET /streams``); the URL is already masked."""
    return StreamHealthPublic(
        camera_id=h.camera_id,
        state=PUBLIC_STATES.get(h.state, "error"),
        input_fps=h.input_fps,
        analysed_fps=h.analysed_fps,
        drops_by_reason=dict(h.drops),
        reconnects=h.reconnects,
        last_frame_age_s=h.last_frame_age_s,
        skew_ms=None if h.skew_ms is None else -h.skew_ms,  # schema: stream clock − server
        decoder=h.decoder,
        detector=h.detector_backend,
        url=h.url,
        detail=h.last_error,
        signal_problems=dict(h.signal_problems),
        corruption_rate=h.corruption_rate,
        timing_faults=h.timing_faults,
        noise_sigma=h.noise_sigma,
        noise_filtered=h.noise_filtered,
        tonal_range=h.tonal_range,
        contrast_stretched=h.contrast_stretched,
        near_field=h.near_field,
        frames_deinterlaced=h.frames_deinterlaced,
        plates=None if h.plates is None else PlateSizesPublic.of(h.plates),
        faces=None if h.faces is None else FaceCountsPublic.of(h.faces),
    )


def announce(server: ApiServer, token: str) -> None:
    """Tell the person at the terminal where the console is and how to log in."""
    say(
        f"sharpeyes is serving: review console {server.url}/console/  API {server.url}/docs\n"
        f"admin token (paste it into the console login): {token}\n"
        "stop with Ctrl-C"
    )


def say(line: str) -> None:
    """One line for the person at the terminal (or the service's journal): the node says it
    started, how its cameras are doing every ``metrics.log_every_s`` and that it stopped,
    without ``-v``."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def started_line(cameras: Sequence[str], log_every_s: float, where: str = "") -> str:
    """``sharpeyes run: 2 cameras (cam1, cam2) in this process; health every 30 s; …``."""
    ids = ", ".join(cameras[:8]) + (f", … (+{len(cameras) - 8})" if len(cameras) > 8 else "")
    every = f"health every {log_every_s:g} s" if log_every_s > 0 else "no health lines"
    return f"sharpeyes run: {len(cameras)} cameras ({ids}){where}; {every}; stop with Ctrl-C"


def summary_line(health: dict[str, CameraHealth]) -> str:
    """One log line: ``cam1 live 5.0fps r0 | cam2 backoff 0.0fps r3 (error…)``."""
    parts = []
    for cid, h in sorted(health.items()):
        text = f"{cid} {h.state} {h.analysed_fps:.1f}fps r{h.reconnects} ev{h.events}"
        if h.state in ("backoff", "failed") and h.last_error:
            text += f" ({h.last_error[:80]})"
        parts.append(text)
    return " | ".join(parts) or "no cameras"


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM/SIGINT while inside (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _serve(runtime: NodeRuntime, config: ServiceConfig) -> MetricsServer:
    m = config.metrics
    assert m.port is not None
    try:
        registry = build_registry(runtime, runtime.phases.counts.snapshot)
        return serve_metrics(registry, m.host, m.port)
    except OSError as e:
        raise ConfigError(f"metrics: cannot listen on {m.host}:{m.port}: {e.strerror or e}") from e


def _wait(
    runtime: NodeRuntime, stop: threading.Event, log_every_s: float, *, until_stopped: bool
) -> None:
    """Until ``stop`` is set or (unless ``until_stopped``) every camera ended by itself."""
    waited = 0.0
    while not stop.wait(0.5):
        waited += 0.5
        if not until_stopped and runtime.all_finished():
            say("every camera finished")
            return
        if log_every_s > 0 and waited >= log_every_s:
            waited = 0.0
            say(f"health: {summary_line(runtime.health())}")


def run_service(
    config_path: Path | None,
    *,
    serve_api: bool,
    host: str | None = None,
    port: int | None = None,
    stop: threading.Event | None = None,
    workers: WorkersArg | None = None,
) -> int:
    """Run the node from ``config_path`` (the demo config when None) until stopped; exit code.

    ``host``/``port`` (when given) override the config's ``api:`` address when ``serve_api``.
    ``stop`` lets an embedding program (or a test) stop the node instead of a signal.

    Raises:
        ConfigError: the config file is invalid.  SharpeyesError: the store or model failed.
    """
    config = load_service_config(config_path or DEMO_CONFIG)
    if config.cluster is not None:
        api = (host or config.api.host, port or config.api.port) if serve_api else None
        return run_cluster(config, stop or threading.Event(), api=api)
    n = workers if workers is not None else config.node.workers
    if n != 1:
        if serve_api:
            raise ConfigError("--workers needs `sharpeyes run`; serve runs one in-process runtime")
        from sharpeyes.api.node.processes import run_node as run_worker_processes

        return run_worker_processes(config, workers=n, stop=stop)
    return run_node(config, serve_api=serve_api, host=host, port=port, stop=stop)


def run_cluster(
    config: ServiceConfig, stop: threading.Event, *, api: tuple[str, int] | None = None
) -> int:
    """Shard the configured cameras over the cluster backend (local threads or Ray); with
    ``api`` (``sharpeyes serve``) also serve the REST API and console over the cluster's store,
    with the cluster routes mounted (and ``/VIID/Subscribes`` when subscriptions are enabled);
    evidence files not under the files root come from the cluster's ``storage_url``.
    With ``delivery`` this process delivers the cluster's outbox: the upper platform's records
    and the SubscribeNotifications (:mod:`sharpeyes.api.cluster.delivery`)."""
    from sharpeyes.api.cluster.cameras import ClusterCameras, place_saved_cameras
    from sharpeyes.api.cluster.service import start_cluster
    from sharpeyes.api.cluster.storage import open_evidence

    assert config.cluster is not None
    handle = start_cluster(
        config.cluster,
        config.cameras,
        delivery=config.delivery,
        mqtt=config.mqtt,
        kafka=config.kafka,
    )
    server: ApiServer | None = None
    listener: UdpPhaseListener | None = None
    every = config.metrics.log_every_s or 30.0
    with stop_on_signals(stop):
        try:
            udp = config.phase_input
            if udp.udp_port is not None:  # each message goes to the worker holding the camera
                listener = UdpPhaseListener(handle, udp.udp_host, udp.udp_port).start()
            if api is not None:
                store = config.store.model_copy(update={"url": config.cluster.db_url})
                # evidence the workers put only into object storage is read back from there
                evidence = open_evidence(config.cluster.storage_url)
                service = build_service(config.model_copy(update={"store": store}), evidence)
                service.set_phase_hub(handle)
                # cameras added over /api/v1/cameras run on the cluster (and those of earlier runs)
                place_saved_cameras(handle, service.cameras.all(), (c.id for c in config.cameras))
                service.cameras.set_controller(ClusterCameras(handle, service.cameras))
                service.set_delivery_status(handle.delivery_status)
                _, routers = subscription_routes(config, service, handle.device_ids)
                server = start_server(
                    service,
                    api[0],
                    api[1],
                    cluster=lambda: handle,
                    extra_routers=routers,
                    console=config.console,
                )
                announce(server, demo_token(service))
            if api is None:
                ids = [c.id for c in config.cameras]
                say(started_line(ids, every, f" on the {config.cluster.backend} cluster"))
            while not stop.wait(every):
                states = ", ".join(f"{c.camera_id} {c.state}" for c in handle.health().cameras)
                say(f"cluster: {states or 'no cameras placed yet'}")
        finally:
            if listener is not None:
                listener.close()
            if server is not None:
                server.stop()
            handle.stop()
    return 0


def subscription_routes(
    config: ServiceConfig,
    service: StoreService | None,
    cameras: Callable[[], Iterable[str]] | None = None,
) -> tuple[SubscriptionRegistry | None, list[APIRouter]]:
    """``/VIID/Subscribes`` for upper platforms when the service runs with GA/T 1400 delivery
    and subscriptions enabled: one registry shared by the routes and the notifier. A
    ResourceURI may name the device id of any camera the service has at that moment:
    ``cameras`` (the cluster's desired set), else the service's camera registry."""
    d = config.delivery
    if service is None or d is None or not d.subscriptions.enabled:
        return None, []
    from sharpeyes.api.viid.subscription_routes import create_subscription_router
    from sharpeyes.api.viid.subscriptions import SubscriptionRegistry

    registry = SubscriptionRegistry(service.db, d.resolver(cameras or service.cameras.device_ids))
    return registry, [create_subscription_router(registry, auth=d.subscriber_auth())]


def run_node(
    config: ServiceConfig,
    *,
    serve_api: bool,
    host: str | None = None,
    port: int | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run a node from a loaded config (see :func:`run_service`)."""
    if serve_api:
        address = {"host": host or config.api.host, "port": port or config.api.port}
        config = config.model_copy(update={"api": config.api.model_copy(update=address)})
    stop = stop or threading.Event()
    service = build_service(config) if serve_api else None
    registry, routers = subscription_routes(config, service)
    runtime = NodeRuntime(
        config,
        store=service.events if service is not None else None,
        on_committed=committed_publisher(service.feed, service.feed_payload)
        if service is not None
        else None,
        feed=service is not None,
        subscriptions=registry,
    )
    metrics: MetricsServer | None = None
    server: ApiServer | None = None
    with stop_on_signals(stop):
        runtime.start()
        try:
            if config.metrics.port is not None:
                metrics = _serve(runtime, config)
            if service is not None:
                attach_runtime(service, runtime)
                server = start_server(
                    service,
                    config.api.host,
                    config.api.port,
                    extra_routers=routers,
                    console=config.console,
                )
                announce(server, demo_token(service))
            else:
                ids = [c.id for c in runtime.camera_configs()]
                say(started_line(ids, config.metrics.log_every_s, " in this process"))
            _wait(runtime, stop, config.metrics.log_every_s, until_stopped=server is not None)
        finally:
            logger.info("stopping: flushing events of %d cameras", len(runtime.camera_configs()))
            last = runtime.health()  # the runtime forgets its cameras once stopped
            if server is not None:
                server.stop()
            runtime.stop()
            if metrics is not None:
                metrics.close()
    say(f"stopped: {summary_line(last)}")
    return 0
