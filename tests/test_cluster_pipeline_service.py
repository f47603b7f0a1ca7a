"""Backend selection (``ClusterSettings`` → ``start_cluster``) and the cluster API router.

Fast: synthetic cameras on the local backend. One real camera (the shared highway clip) runs
through ``start_cluster`` from a ``CameraConfig``; the Ray backend is exercised once with a
one-machine head (marked ``cluster``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import get_args

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from sharpeyes.api.cluster.health import CameraState
from sharpeyes.api.cluster.routes import make_cluster_router
from sharpeyes.api.cluster.service import ClusterHandle, ClusterSettings, start_cluster
from sharpeyes.api.cluster.simulate import ensure_auth_token
from sharpeyes.api.cluster.synthetic import synthetic_spec
from sharpeyes.api.rest.deps import Admin, Viewer
from sharpeyes.pipeline.config import CameraConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARPEYES_SHARED", REPO.parent / "shared"))
CLIP = SHARED / "sample_videos" / "highway_640x360.mp4"


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def state_of(handle: ClusterHandle, cam: str) -> CameraState | None:
    h = handle.health().camera(cam)
    return None if h is None else h.state


def settings(tmp: Path, **kw: object) -> ClusterSettings:
    base: dict[str, object] = {"db_url": str(tmp / "c" / "cluster.db"), "workers": 2}
    base.update(kw)
    base.setdefault("tick_s", 0.05)
    return ClusterSettings.model_validate(base)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[ClusterHandle]:
    handle = start_cluster(settings(tmp_path, capacity=2.0), [synthetic_spec("s1", rate=20)])
    try:
        yield handle
    finally:
        handle.stop()


def test_settings_forbid_unknown_keys_and_bad_backend() -> None:
    with pytest.raises(ValidationError):
        ClusterSettings.model_validate({"backend": "local", "wrokers": 2})
    with pytest.raises(ValidationError):
        ClusterSettings.model_validate({"backend": "spark"})
    s = ClusterSettings.model_validate({"health_check": {"period_ms": 500, "timeout_ms": 500}})
    assert s.health_check.system_config() == {
        "health_check_period_ms": 500,
        "health_check_timeout_ms": 500,
        "health_check_failure_threshold": 3,
    }
    assert s.program_options().commit_every_s == 0.5


def test_local_start_add_remove_and_health(local: ClusterHandle) -> None:
    assert local.backend == "local"
    wait_for(lambda: state_of(local, "s1") == CameraState.RUNNING, 10, "s1 running")
    local.add_camera(synthetic_spec("s2", rate=20))
    wait_for(lambda: state_of(local, "s2") == CameraState.RUNNING, 10, "s2 running")
    h = local.health()
    assert len(h.workers) == 2 and {c.worker for c in h.cameras} <= {w.name for w in h.workers}
    epoch = local.remove_camera("s1")
    wait_for(lambda: local.health().camera("s1") is None, 5, "s1 gone")
    assert epoch >= 2


def test_importing_the_service_does_not_import_ray() -> None:
    code = (
        "import sys, api.cluster.service, api.cluster.routes, api.cluster.pipeline_program;"
        "sys.exit(1 if 'ray' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False).returncode == 0


def _client(handle: ClusterHandle | None) -> TestClient:
    app = FastAPI()
    app.include_router(make_cluster_router(lambda: handle))
    for dep in (Viewer, Admin):  # no token store here: every caller is allowed
        app.dependency_overrides[get_args(dep)[1].dependency] = lambda: None
    return TestClient(app)


def test_router_health_metrics_add_remove(local: ClusterHandle) -> None:
    client = _client(local)
    wait_for(lambda: state_of(local, "s1") == CameraState.RUNNING, 10, "s1 running")
    body = client.get("/api/v1/cluster").json()
    assert body["backend"] == "local"
    assert [c["camera_id"] for c in body["cameras"]] == ["s1"]
    assert body["cameras"][0]["state"] == "running" and len(body["workers"]) == 2
    text = client.get("/api/v1/cluster/metrics").text
    assert 'sharpeyes_cluster_camera_state{camera="s1",state="running"} 1' in text
    cam = {"camera": {"id": "hw", "url": "/nonexistent.mp4"}, "cost": 0.5}
    assert client.post("/api/v1/cluster/cameras", json=cam).status_code == 202
    wait_for(lambda: state_of(local, "hw") == CameraState.FAILED, 15, "hw failed (no file)")
    assert client.post("/api/v1/cluster/cameras", json={"camera": {"bogus": 1}}).status_code == 422
    r = client.delete("/api/v1/cluster/cameras/hw")
    assert r.status_code == 200 and r.json()["epoch"] >= 2
    assert client.delete("/api/v1/cluster/cameras/nope").status_code == 404
    assert client.post("/api/v1/cluster/nodes/local/drain").json()["workers"] == 2


def test_router_without_cluster_is_503() -> None:
    assert _client(None).get("/api/v1/cluster").status_code == 503


def test_router_routes_require_a_bearer_token(local: ClusterHandle) -> None:
    app = FastAPI()
    app.include_router(make_cluster_router(lambda: local))
    paths = app.openapi()["paths"]
    for path, method in [
        ("/api/v1/cluster", "get"),
        ("/api/v1/cluster/cameras", "post"),
        ("/api/v1/cluster/cameras/{camera_id}", "delete"),
    ]:
        assert paths[path][method].get("security"), f"{method} {path} is not authenticated"


@pytest.mark.skipif(not CLIP.is_file(), reason="shared clip missing")
def test_real_camera_from_camera_config(tmp_path: Path) -> None:
    cam = CameraConfig(id="hw", url=str(CLIP), analysis_fps=5.0)
    s = settings(tmp_path, workers=1, commit_every_s=0.2, outbox_destinations=["viid"])
    handle = start_cluster(s, [cam])
    try:
        wait_for(lambda: state_of(handle, "hw") == CameraState.FINISHED, 90, "hw finished")
        h = handle.health().camera("hw")
        assert h is not None and h.pos > 300 and h.epoch == 1
    finally:
        handle.stop()


@pytest.mark.cluster
@pytest.mark.integration
def test_ray_backend_local_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ensure_auth_token(tmp_path)  # one token per process: Ray caches it once read
    monkeypatch.setenv("PYTHONPATH", str(REPO))

    s = settings(tmp_path, backend="ray", ray_address="local", slot_resource="gpu_slot")
    handle = start_cluster(s, [synthetic_spec("r1", rate=20)])
    try:
        assert handle.backend == "ray"
        wait_for(lambda: state_of(handle, "r1") == CameraState.RUNNING, 60, "r1 running on Ray")
        assert len(handle.health().workers) == 2
        assert handle.remove_camera("r1") >= 2
    finally:
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor("sharpeyes-coordinator", namespace="sharpeyes"))
        handle.stop()
