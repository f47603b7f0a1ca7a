"""One composition root: the same camera built through every entry point wires the same parts.

``analyze`` (its own detector), the node runtime of ``run``/``serve`` (and of each worker
process, which runs a NodeRuntime) behind the shared batcher, and the cluster's pipeline
program all call :func:`sharpeyes.api.node.camera.build_camera`; what they wire — detection
policy, tracker, riders, intersection, external signal groups, packet ring — must be equal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sharpeyes.api.cluster.backend import ProgramContext
from sharpeyes.api.cluster.leases import LeaseStore
from sharpeyes.api.cluster.pipeline_program import LeaseCommitter, build_runner, pipeline_spec
from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
from sharpeyes.api.node.camera import CameraWiring
from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.api.store.db import open_database
from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.detection_filter import DetectionPolicy
from tests.equivalence import stamp_clip, wait_for
from tests.scenarios import SCENARIOS, render_scenario, scene_calibration

pytestmark = pytest.mark.integration
NAME = "clean_violation"


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> CameraConfig:
    tmp = tmp_path_factory.mktemp("composition")
    gt = render_scenario(NAME, tmp / "raw.mp4")
    clip = tmp / "clip.mp4"
    stamp_clip(gt.path, clip, SCENARIOS[NAME].fps)
    cal = scene_calibration().model_dump(mode="json")
    cal["signal_groups"][0]["source"] = "external_then_video"
    return CameraConfig.model_validate(
        {
            "id": "cmp",
            "url": str(clip),
            "detector": {
                "model": f"scenario:{NAME}",
                "confidence_threshold": 0.4,
                "motorcycle_is_non_motor": False,
            },
            "tracker": {"min_hits": 2},
            "intersection": cal,
        }
    )


def via_analyze(cam: CameraConfig, out: Path) -> CameraWiring:
    assert cam.url is not None
    res = analyze_video(AnalyzeOptions(Path(cam.url), out=out, progress=False, camera=cam))
    assert res.wiring is not None
    return res.wiring


def via_runtime(cam: CameraConfig, out: Path) -> CameraWiring:
    config = ServiceConfig.model_validate(
        {
            "cameras": [cam.model_dump(mode="json")],
            # the node's own detector settings differ: the camera's policy must still win
            "detector": {"model": cam.detector.model, "confidence_threshold": 0.1},
            "store": {"url": str(out / "events.db"), "files_root": str(out)},
            "loop_files": False,
        }
    )
    runtime = NodeRuntime(config).start()
    try:
        wait_for(lambda: cam.id in runtime.wirings(), 30, "the camera to be built")
        return runtime.wirings()[cam.id]
    finally:
        runtime.stop()


def via_cluster(cam: CameraConfig, out: Path) -> CameraWiring:
    store = LeaseStore(open_database(str(out / "cluster.db")))
    try:
        store.put_camera(pipeline_spec(cam))
        lease = store.grant(cam.id, "w1")
        committer = LeaseCommitter(store, lease)
        ctx = ProgramContext("w1", store)
        built = build_runner(cam, committer, out, replay_s=None, origin_ms=0, phases=ctx.phases)
        built.source.close()
        return built.wiring
    finally:
        store.db.close()


def test_every_entry_point_wires_the_same_camera(camera: CameraConfig, tmp_path: Path) -> None:
    a = via_analyze(camera, tmp_path / "a")
    r = via_runtime(camera, tmp_path / "r")
    c = via_cluster(camera, tmp_path / "c")
    assert a.semantic() == r.semantic() == c.semantic()
    assert a.policy == DetectionPolicy(confidence_threshold=0.4, motorcycle_is_non_motor=False)
    assert a.intersection and a.packet_ring and a.riders
    assert a.external_groups == ("main",)
    assert a.source == c.source == "FileSource"


def test_dark_signal_head_is_a_calibration_problem_in_camera_health(
    camera: CameraConfig, tmp_path: Path
) -> None:
    """A head region on a part of the picture with no lamp (all dark) is reported in the
    camera's health, not silently used."""
    cal = scene_calibration().model_dump(mode="json")
    for head in cal["signal_heads"]:
        if head["group"] == "main":
            head["region"] = [[0.02, 0.90], [0.05, 0.98]]  # tarmac at the bottom-left
    cam = camera.model_copy(update={"intersection": IntersectionCalibration.model_validate(cal)})
    config = ServiceConfig.model_validate(
        {
            "cameras": [cam.model_dump(mode="json")],
            "detector": {"model": cam.detector.model},
            "store": {"url": str(tmp_path / "events.db"), "files_root": str(tmp_path)},
            "loop_files": False,
        }
    )
    runtime = NodeRuntime(config).start()
    try:
        wait_for(runtime.all_finished, 60, "the clip to finish")
        health = runtime.health()[cam.id]
    finally:
        runtime.stop()
    assert health.signal_problems, health
    assert any("main" in k or "main" in v for k, v in health.signal_problems.items())


def test_batcher_workers_from_the_node_config_reach_the_runtime(tmp_path: Path) -> None:
    """``batch.workers`` in the service YAML is the number of threads feeding the detector."""
    config = ServiceConfig.model_validate(
        {
            "cameras": [],
            "batch": {"max_batch": 4, "workers": 3},
            "store": {"url": str(tmp_path / "events.db"), "files_root": str(tmp_path)},
        }
    )
    runtime = NodeRuntime(config).start()
    try:
        batcher = runtime._batcher
        assert batcher is not None and len(batcher._threads) == 3
        assert all(t.is_alive() for t in batcher._threads)
    finally:
        runtime.stop()
