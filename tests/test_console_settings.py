"""A unit's console settings come from its service YAML, through the real server start-up.

``console:`` (preset reject reasons, the camera map's tile server) is part of the service config
and reaches ``/api/v1/console/config`` of the server ``sharpeyes run``/``serve`` starts; a
camera's ``geo`` position is returned by the cameras API (the map places it from there).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from sharpeyes.api.commands.serve import start_server
from sharpeyes.api.node.settings import load_service_config
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.errors import ConfigError
from tests._api_fixtures import free_port, seed_service

UNIT_YAML = {
    "cameras": [],
    "console": {
        "reject_reasons": [
            {"code": "plate_unreadable", "zh": "号牌不清", "en": "Plate unreadable"},
            {"code": "emergency", "zh": "执行任务的特种车辆", "en": "Emergency vehicle"},
            {"code": "other", "zh": "其他", "en": "Other", "needs_text": True},
        ],
        "map_tile_url": "/tiles/{z}/{x}/{y}.png",
    },
}


def test_console_section_of_the_service_yaml_reaches_the_served_console(tmp_path: Path) -> None:
    path = tmp_path / "unit.yaml"
    path.write_text(yaml.safe_dump(UNIT_YAML, allow_unicode=True), encoding="utf-8")
    config = load_service_config(path)
    seeded = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    seeded.service.cameras.create(
        CameraConfig.model_validate(
            {"id": "cam1", "name": "人民路 东向", "geo": {"latitude": 30.25, "longitude": 120.17}}
        )
    )
    server = start_server(seeded.service, "127.0.0.1", free_port(), console=config.console)
    try:
        with httpx.Client(base_url=server.url, headers=seeded.auth("viewer")) as http:
            got = http.get("/api/v1/console/config").json()
            cams = http.get("/api/v1/cameras").json()["items"]
    finally:
        server.stop()
        seeded.service.db.close()
    assert [r["zh"] for r in got["reject_reasons"]] == ["号牌不清", "执行任务的特种车辆", "其他"]
    assert got["map_tile_url"] == "/tiles/{z}/{x}/{y}.png"
    assert cams[0]["geo"] == {"latitude": 30.25, "longitude": 120.17}


def test_a_bad_console_section_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    bad = {"cameras": [], "console": {"map_tile_url": "http://tiles.example/{z}/{x}.png"}}
    path = tmp_path / "unit.yaml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(ConfigError, match="console"):
        load_service_config(path)
