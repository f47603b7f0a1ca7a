"""What ``sharpeyes serve`` mounts: ``/VIID/Subscribes`` when GA/T 1400 subscriptions are
enabled (shared registry with the notifier), the external phase route, the delivery routes."""

from __future__ import annotations

from pathlib import Path

import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sharpeyes.api.commands.run import subscription_routes
from sharpeyes.api.commands.serve import build_service
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.api.rest.app import create_app
from sharpeyes.api.rest.context import ApiSettings

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
