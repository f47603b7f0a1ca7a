"""``/api/v1/cameras`` on a node that runs a cluster places the camera on the cluster
(``api/cluster/cameras.py``): before, the camera was listed and stored but ran nowhere.

The registry and a real local cluster (SQLite leases, one worker): create → the camera is in
the desired set and runs its clip to the end; stop → out of the desired set; start → back;
update → placed with the new config; delete → out. Through ``sharpeyes serve`` with a
``cluster:`` section: a camera POSTed to ``/api/v1/cameras`` shows in ``/api/v1/cluster``, and
one added in an earlier run is placed at start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from sharpeyes.api.cluster.cameras import ClusterCameras
from sharpeyes.api.cluster.service import ClusterHandle, ClusterSettings, start_cluster
from sharpeyes.api.rest.cameras import CameraRegistry
from sharpeyes.pipeline.config import CameraConfig
from tests._viid_fixtures import free_port
from tests._wait import wait_for


def desired(handle: ClusterHandle) -> dict[str, CameraConfig]:
    """The cameras in the cluster's desired set, with the config each is placed with."""
    leases = handle.cluster.coordinator.leases  # type: ignore[attr-defined]
    return {
        r.spec.camera_id: CameraConfig.model_validate_json(r.spec.config)
        for r in leases.cameras()
        if r.desired
    }


@pytest.fixture
def idle_cluster(tmp_path: Path) -> Iterator[ClusterHandle]:
    settings = ClusterSettings.model_validate(
        {"db_url": str(tmp_path / "c.db"), "workers": 1, "capacity": 0.5}
    )
    handle = start_cluster(settings)  # capacity 0.5: cameras are desired, none is placed
    yield handle
    handle.stop()


def test_registry_changes_reach_the_cluster_desired_set(idle_cluster: ClusterHandle) -> None:
    registry = CameraRegistry()
    registry.set_controller(ClusterCameras(idle_cluster, registry))
    cam = CameraConfig(id="gate2", url="rtsp://192.0.2.1/ch1", analysis_fps=5)
    registry.create(cam)
    assert "gate2" in desired(idle_cluster)
    registry.set_enabled("gate2", False)
    assert "gate2" not in desired(idle_cluster)
    registry.update(cam.model_copy(update={"analysis_fps": 2.0}))  # stopped: config kept only
    assert "gate2" not in desired(idle_cluster)
    registry.set_enabled("gate2", True)
    assert desired(idle_cluster)["gate2"].analysis_fps == 2.0
    registry.update(cam.model_copy(update={"analysis_fps": 3.0}))  # running: placed afresh
    assert desired(idle_cluster)["gate2"].analysis_fps == 3.0
    registry.delete("gate2")
    assert "gate2" not in desired(idle_cluster)


def test_a_registry_camera_runs_its_clip_on_the_cluster(
    tmp_path: Path, sample_videos: Path
) -> None:
    settings = ClusterSettings.model_validate(
        {
            "db_url": str(tmp_path / "c.db"),
            "files_root": str(tmp_path),
            "workers": 1,
            "tick_s": 0.1,
            "commit_every_s": 0.2,
        }
    )
    handle = start_cluster(settings)
    try:
        registry = CameraRegistry(file_roots=(sample_videos,))
        registry.set_controller(ClusterCameras(handle, registry))
        registry.create(
            CameraConfig(
                id="hw",
                url=str(sample_videos / "highway_640x360.mp4"),
                analysis_fps=2,
                detector={"input_size": [384, 640]},
            )
        )
        assert "hw" in desired(handle)

        def state() -> str | None:
            cam = handle.health().camera("hw")
            return None if cam is None else str(cam.state)

        wait_for(lambda: state() == "finished", 180, "hw to finish its clip")
        cam = handle.health().camera("hw")
        assert cam is not None and cam.pos > 0
    finally:
        handle.stop()


@pytest.mark.integration
def test_serve_with_a_cluster_places_cameras_posted_to_the_cameras_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sharpeyes.api.commands.run import run_service

    token = "se_0123456789ab.cluster-cameras-test-secret"
    monkeypatch.setenv("SHARPEYES_DEMO_TOKEN", token)
    cfg = tmp_path / "svc.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "store": {"url": "events.db", "files_root": "."},
                "cluster": {
                    "backend": "local",
                    "db_url": "cluster.db",
                    "files_root": ".",
                    "workers": 1,
                    "capacity": 0.5,  # desired, not placed: nothing connects to the address
                    "tick_s": 0.1,
                },
            }
        )
    )

    def serve(check: Callable[[httpx.Client, dict[str, str]], None]) -> None:
        port = free_port()
        stop = threading.Event()
        result: list[int] = []
        node = threading.Thread(
            target=lambda: result.append(run_service(cfg, serve_api=True, port=port, stop=stop)),
            daemon=True,
        )
        node.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                auth = {"Authorization": f"Bearer {token}"}
                wait_for(
                    lambda: http.get("/api/v1/cluster", headers=auth).status_code == 200,
                    60,
                    "the cluster API",
                )
                check(http, auth)
        finally:
            stop.set()
            node.join(timeout=60)
        assert result == [0]

    def in_cluster(http: httpx.Client, auth: dict[str, str]) -> set[str]:
        """The cluster's desired set as its health shows it (refreshed every tick)."""
        time.sleep(0.5)
        cams = http.get("/api/v1/cluster", headers=auth).json()["cameras"]
        return {c["camera_id"] for c in cams}

    def first_run(http: httpx.Client, auth: dict[str, str]) -> None:
        body = {"id": "gate9", "url": "rtsp://192.0.2.9/ch1", "analysis_fps": 5}
        r = http.post("/api/v1/cameras", json=body, headers=auth)
        assert r.status_code == 201, r.text
        assert "gate9" in in_cluster(http, auth)
        assert http.post("/api/v1/cameras/gate9/stop", headers=auth).status_code == 200
        assert "gate9" not in in_cluster(http, auth)
        assert http.post("/api/v1/cameras/gate9/start", headers=auth).status_code == 200
        assert "gate9" in in_cluster(http, auth)

    serve(first_run)  # the API's cameras are stored in the cluster database: a restart keeps them

    def second_run(http: httpx.Client, auth: dict[str, str]) -> None:
        assert "gate9" in in_cluster(http, auth)
        assert http.delete("/api/v1/cameras/gate9", headers=auth).status_code == 204
        assert "gate9" not in in_cluster(http, auth)

    serve(second_run)
