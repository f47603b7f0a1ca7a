"""Traffic flow through the composition root, on a rendered scene with known counts and speeds:
``analyze`` and the local cluster backend give the same per-lane counts (exact), the same lane
on every ``vehicle_pass`` event, and speeds within 5 % of the scripted ones.

The scene: two lanes seen from above (the renderer's flat road), a ground plane of 20 m × 40 m
over the whole frame; lane 1 carries four cars at 0.1 frame-heights/s (4 m/s = 14.4 km/h), lane
2 two cars at 0.2 frame-heights/s (28.8 km/h); a pedestrian walks on the kerb (never counted).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sharpeyes.api.store.db import open_database
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.types import EventType, LampColor, ObjectKind
from tests.equivalence import stamp_clip, via_analyze, via_cluster, via_run
from tests.scenarios import SCENARIOS, Actor, Phase, Scenario, render_scenario

pytestmark = pytest.mark.integration
NAME = "flow_two_lanes"
SPEED_KMH = {1: 14.4, 2: 28.8}
HEADWAY_S = {1: 2.5, 2: 4.0}


def _car(tid: int, x: float, t0: float, duration: float) -> Actor:
    return Actor(tid, ObjectKind.MOTOR_VEHICLE, 2, ((t0, x, 0.15), (t0 + duration, x, 0.95)))


SCENARIOS.setdefault(
    NAME,
    Scenario(
        name=NAME,
        fps=10.0,
        duration_s=17.0,
        phases=(Phase(0.0, LampColor.GREEN),),
        actors=(
            *(_car(1 + k, 0.3, 0.5 + 2.5 * k, 8.0) for k in range(4)),
            _car(11, 0.7, 1.0, 4.0),
            _car(12, 0.7, 5.0, 4.0),
            Actor(21, ObjectKind.PERSON, 0, ((0.0, 0.05, 0.2), (16.0, 0.05, 0.9)), (0.03, 0.1)),
        ),
        expected=(),
        description="traffic flow: two lanes, known counts and speeds",
    ),
)


def flow_camera(clip: Path) -> CameraConfig:
    def zone(x0: float, x1: float) -> list[list[float]]:
        return [[x0, 0.3], [x1, 0.3], [x1, 0.9], [x0, 0.9]]

    return CameraConfig.model_validate(
        {
            "id": "flow",
            "url": str(clip),
            "detector": {"model": f"scenario:{NAME}"},
            "tracker": {"min_hits": 2},
            "events": {"kinds": ["motor_vehicle", "person"]},
            "flow": {
                "interval_s": 60,
                "lanes": [
                    {"id": "L1", "number": 1, "zone": zone(0.15, 0.45)},
                    {"id": "L2", "number": 2, "zone": zone(0.55, 0.85)},
                ],
                "ground_plane": {
                    "image": [[0, 0], [1, 0], [1, 1], [0, 1]],
                    "world_m": [[0, 0], [20, 0], [20, 40], [0, 40]],
                },
            },
        }
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("flow")
    gt = render_scenario(NAME, d / "raw.mp4")
    out = d / "flow.mp4"
    stamp_clip(gt.path, out, SCENARIOS[NAME].fps)
    return out


Passes = dict[int, tuple[str | None, str | None]]


def stored(db_path: Path) -> tuple[list[dict[str, object]], Passes]:
    """(every traffic_flow record, (lane, speed) of each vehicle_pass track) from a store."""
    db = open_database(str(db_path))
    try:
        with db.transaction(readonly=True) as conn:
            rows = conn.fetchall(
                "SELECT type, track_id, extra FROM events WHERE stream_id = 'flow'"
            )
    finally:
        db.close()
    flows: list[dict[str, object]] = []
    lanes: Passes = {}
    for type_, tid, raw in rows:
        extra = raw if isinstance(raw, dict) else json.loads(raw or "{}")
        if type_ == EventType.TRAFFIC_FLOW.value:
            flows.append({k: json.loads(v) for k, v in extra.items()})
        elif type_ == EventType.VEHICLE_PASS.value:
            lanes[int(tid)] = (extra.get("lane_no"), extra.get("speed_kmh"))
    return flows, lanes


def check(flows: list[dict[str, object]], lanes: Passes) -> None:
    """The clip may straddle an interval boundary of the wall clock: sum over records."""
    counts: dict[int, int] = {}
    speeds: dict[int, list[tuple[float, int]]] = {}
    for f in flows:
        n, c, m = f["lane_no"], f["count"], f["speeds_measured"]
        assert isinstance(n, int) and isinstance(c, int) and isinstance(m, int)
        counts[n] = counts.get(n, 0) + c
        assert f["by_kind"] == ({"motor_vehicle": c} if c else {})
        if m:
            speed = f["mean_speed_kmh"]
            assert isinstance(speed, float)
            speeds.setdefault(n, []).append((speed, m))
        headway = f["mean_headway_s"]
        assert headway is None or (isinstance(headway, float) and abs(headway - HEADWAY_S[n]) < 0.2)
    assert counts == {1: 4, 2: 2}
    for n, parts in speeds.items():
        assert sum(m for _, m in parts) == counts[n]  # every counted vehicle got a speed
        mean = sum(s * m for s, m in parts) / counts[n]
        assert abs(mean - SPEED_KMH[n]) / SPEED_KMH[n] < 0.05, (n, parts)
    assert set(speeds) == {1, 2}
    # the last interval is partial, and the first too where the clip started in the middle of it
    for f in flows:
        observed, interval = f["observed_s"], f["interval_s"]
        assert isinstance(observed, float) and isinstance(interval, float)
        assert f["complete"] is (observed == interval), f
    last = {f["lane_no"]: f["complete"] for f in flows}
    assert last == {1: False, 2: False}
    # every vehicle_pass event carries the lane its track was counted in, and its own speed
    assert sorted(str(lane) for lane, _ in lanes.values()) == ["1", "1", "1", "1", "2", "2"]
    for lane, speed in lanes.values():
        assert lane is not None and speed is not None
        assert abs(float(speed) - SPEED_KMH[int(lane)]) / SPEED_KMH[int(lane)] < 0.05, (lane, speed)


def test_flow_through_analyze(clip: Path, tmp_path: Path) -> None:
    via_analyze(flow_camera(clip), tmp_path / "a")
    check(*stored(tmp_path / "a" / "events.db"))


def test_flow_through_the_cluster(clip: Path, tmp_path: Path) -> None:
    via_cluster(flow_camera(clip), tmp_path / "c", 120)
    check(*stored(tmp_path / "c" / "cluster.db"))


def test_flow_through_the_live_node(clip: Path, tmp_path: Path) -> None:
    """``sharpeyes run``: the file played once in real time through the node runtime."""
    via_run(flow_camera(clip), tmp_path / "r", 120)
    check(*stored(tmp_path / "r" / "events.db"))


def test_flow_on_real_highway_footage_matches_the_pass_events_per_lane(
    sample_videos: Path, tmp_path: Path
) -> None:
    """``sample_videos/highway_flow.yaml`` on the real highway clip (analysed at 10 fps): each
    lane's flow count equals the ``vehicle_pass`` events stamped with that lane."""
    import yaml

    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
    from sharpeyes.pipeline.data import samples_dir

    raw = yaml.safe_load((samples_dir() / "highway_flow.yaml").read_text())
    raw["url"] = str(sample_videos / "highway_1280x720.mp4")
    raw["id"] = "flow"
    raw["analysis_fps"] = 10.0
    cam = CameraConfig.model_validate(raw)
    analyze_video(AnalyzeOptions(Path(cam.url or ""), out=tmp_path, progress=False, camera=cam))
    flows, lanes = stored(tmp_path / "events.db")
    counts: dict[int, int] = {}
    for f in flows:
        n, c = f["lane_no"], f["count"]
        assert isinstance(n, int) and isinstance(c, int)
        counts[n] = counts.get(n, 0) + c
    per_lane: dict[int, int] = {}
    for lane, speed in lanes.values():
        assert speed is None  # no ground plane: no speed is stated
        if lane is not None:
            per_lane[int(lane)] = per_lane.get(int(lane), 0) + 1
    assert counts == per_lane
    assert set(counts) == {1, 2, 3} and all(n >= 3 for n in counts.values()), counts


def test_flow_and_event_counts_in_prometheus(clip: Path, tmp_path: Path) -> None:
    """The node's /metrics: events per type, and each lane's last complete flow interval."""
    from sharpeyes.api.node.prom import build_registry, render
    from sharpeyes.api.node.runtime import NodeRuntime
    from sharpeyes.api.node.settings import ServiceConfig
    from tests.equivalence import wait_for

    cam = flow_camera(clip)
    assert cam.flow is not None
    cam = cam.model_copy(update={"flow": cam.flow.model_copy(update={"interval_s": 5.0})})
    config = ServiceConfig.model_validate(
        {
            "cameras": [cam.model_dump(mode="json")],
            "detector": cam.detector.model_dump(mode="json"),
            "store": {"url": str(tmp_path / "events.db"), "files_root": str(tmp_path)},
            "loop_files": False,
        }
    )
    rt = NodeRuntime(config).start()
    try:
        wait_for(rt.all_finished, 120, "the camera to finish")
        text = render(build_registry(rt)).decode()
    finally:
        rt.stop()
    assert 'sharpeyes_events_total{camera="flow",type="vehicle_pass"} 6.0' in text
    assert 'sharpeyes_flow_interval_seconds{camera="flow",lane="1"} 5.0' in text
    assert 'sharpeyes_flow_vehicles{camera="flow",lane="2"}' in text
