"""``sharpeyes run`` / ``sharpeyes serve``: run the node until SIGTERM/SIGINT, then stop cleanly.

Start-up reads like a table of contents: load the config → start the runtime (store, detector,
batcher, cameras, delivery) → metrics endpoint → (REST API) → wait → stop: every camera flushes
its open tracks as events, the store and the outbox are closed.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from api.prom import MetricsServer, build_registry, serve_metrics
from api.runtime import CameraHealth, NodeRuntime
from api.schemas import StreamHealthPublic
from api.settings import ServiceConfig, load_service_config
from pipeline.errors import ConfigError

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "sample_videos" / "service_demo.yaml"


PUBLIC_STATES: dict[str, str] = {
    "connecting": "connecting",
    "live": "running",
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
        url=h.url,
        detail=h.last_error,
    )


def start_api(config: ServiceConfig, runtime: NodeRuntime) -> Callable[[], None]:
    """INTEGRATION HOOK: start the REST app over ``runtime``; return a function that stops it.

    The REST app (``api.app.create_app`` with the service facade) is wired by the integrator:
    it should pass ``lambda: {k: health_public(h) for k, h in runtime.health().items()}`` as
    the facade's health provider, serve ``api.prom.render(build_registry(runtime))`` at
    ``/metrics`` and start uvicorn on ``config.api.host``/``config.api.port`` in a thread.
    """
    raise NotImplementedError("the REST API is not wired into `sharpeyes serve` yet")


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
        return serve_metrics(build_registry(runtime), m.host, m.port)
    except OSError as e:
        raise ConfigError(f"metrics: cannot listen on {m.host}:{m.port}: {e.strerror or e}") from e


def _wait(runtime: NodeRuntime, stop: threading.Event, log_every_s: float) -> None:
    """Until ``stop`` is set or every camera ended by itself (files without looping)."""
    waited = 0.0
    while not stop.wait(0.5):
        waited += 0.5
        if runtime.all_finished():
            logger.info("every camera finished")
            return
        if log_every_s > 0 and waited >= log_every_s:
            waited = 0.0
            logger.info("health: %s", summary_line(runtime.health()))


def run_service(
    config_path: Path | None,
    *,
    serve_api: bool,
    host: str = "127.0.0.1",
    port: int = 8080,
    stop: threading.Event | None = None,
) -> int:
    """Run the node from ``config_path`` (the demo config when None) until stopped; exit code.

    ``host``/``port`` override the config's API address when ``serve_api``. ``stop`` lets an
    embedding program (or a test) stop the node instead of a signal.

    Raises:
        ConfigError: the config file is invalid.  SharpeyesError: the store or model failed.
    """
    config = load_service_config(config_path or DEMO_CONFIG)
    if serve_api:
        config = config.model_copy(
            update={"api": config.api.model_copy(update={"host": host, "port": port})}
        )
    stop = stop or threading.Event()
    runtime = NodeRuntime(config)
    metrics: MetricsServer | None = None
    stop_api: Callable[[], None] | None = None
    with stop_on_signals(stop):
        runtime.start()
        try:
            if config.metrics.port is not None:
                metrics = _serve(runtime, config)
            if serve_api:
                stop_api = start_api(config, runtime)
            _wait(runtime, stop, config.metrics.log_every_s)
        finally:
            logger.info("stopping: flushing events of %d cameras", len(runtime.camera_configs()))
            if stop_api is not None:
                stop_api()
            runtime.stop()
            if metrics is not None:
                metrics.close()
    logger.info("stopped")
    return 0
