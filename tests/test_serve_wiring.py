"""What ``sharpeyes serve`` mounts: ``/VIID/Subscribes`` when GA/T 1400 subscriptions are
enabled (shared registry with the notifier), the external phase route, the delivery routes."""

from __future__ import annotations

from pathlib import Path

import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from sharpeyes.api.commands.run import subscription_routes
from sharpeyes.api.commands.serve import build_service
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.api.rest.app import create_app
from sharpeyes.api.rest.context import ApiSettings
from sharpeyes.pipeline.protocols import DetectorInfo
from sharpeyes.pipeline.types import Detections

REPO = Path(__file__).resolve().parents[1]


def config(tmp_path: Path, enabled: bool) -> ServiceConfig:
    delivery = yaml.safe_load((REPO / "sample_videos" / "viid_delivery.yaml").read_text())
    delivery["subscriptions"]["enabled"] = enabled
    return ServiceConfig.model_validate(
        {
            "store": {"url": str(tmp_path / "e.db"), "files_root": str(tmp_path)},
            "delivery": delivery,
        }
    )


def routes(app: FastAPI) -> set[str]:
    return set(app.openapi()["paths"])


def test_subscribes_is_mounted_when_subscriptions_are_enabled(tmp_path: Path) -> None:
    cfg = config(tmp_path, enabled=True)
    service = build_service(cfg)
    registry, routers = subscription_routes(cfg, service)
    assert registry is not None and routers
    app = create_app(ApiSettings(), service, extra_routers=routers)
    paths = routes(app)
    assert "/VIID/Subscribes" in paths
    assert "/api/v1/cameras/{camera_id}/signal-phases" in paths
    with TestClient(app) as client:  # reachable: answers (auth/validation), not 404
        assert client.get("/VIID/Subscribes").status_code != 404


def test_subscribes_is_absent_without_subscriptions(tmp_path: Path) -> None:
    cfg = config(tmp_path, enabled=False)
    service = build_service(cfg)
    registry, routers = subscription_routes(cfg, service)
    assert registry is None and routers == []
    assert "/VIID/Subscribes" not in routes(create_app(ApiSettings(), service))


def test_delivery_status_shows_the_last_handshake_failure(tmp_path: Path) -> None:
    """``GET /api/v1/delivery/status`` (admin): the session state and the cause of the last
    failed Register are visible, not only in a debug log (nothing listens at the platform URL)."""
    import socket
    import time

    from sharpeyes.api.commands.serve import attach_runtime
    from sharpeyes.api.node.runtime import NodeRuntime
    from sharpeyes.api.rest.auth import Role

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    cfg = config(tmp_path, enabled=False)
    assert cfg.delivery is not None
    cfg = cfg.model_copy(
        update={
            "delivery": cfg.delivery.model_copy(
                update={
                    "base_url": f"http://127.0.0.1:{port}",
                    "password_env": None,
                    "password": SecretStr("secret"),
                }
            )
        }
    )
    service = build_service(cfg)
    _, admin = service.tokens.issue("admin", Role.ADMIN)
    runtime = NodeRuntime(cfg, store=service.events, detector=_NullDetector()).start()
    try:
        attach_runtime(service, runtime)
        with TestClient(create_app(ApiSettings(), service)) as client:
            deadline = time.monotonic() + 20
            body: dict[str, object] = {}
            while time.monotonic() < deadline:
                r = client.get(
                    "/api/v1/delivery/status", headers={"Authorization": f"Bearer {admin}"}
                )
                assert r.status_code == 200, r.text
                body = r.json()
                if body.get("last_error"):
                    break
                time.sleep(0.2)
            assert body.get("last_error"), body
            assert "running" in body and "backlog" in body
    finally:
        runtime.stop()


class _NullDetector:
    """No model needed: this node has no camera."""

    @property
    def info(self) -> DetectorInfo:
        return DetectorInfo("null", (32, 32), ("none",), 0, None)

    def detect(self, images: object) -> list[Detections]:
        return []
