"""One camera, one truth: the same camera through ``analyze``, ``run`` (file played once as a
live camera) and the cluster's local backend charges the same violations (same kind, stop-line
crossing within one analysed frame) and stores event counts per type within 5 %.

Real footage (hanoi_b with the real detector) and a rendered scenario clip (ground-truth boxes
via :class:`tests.equivalence.FrameCodeDetector`) — see ``tests/equivalence.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sharpeyes.pipeline.config import CameraConfig, load_camera_config
from tests.equivalence import (
    Outcome,
    match,
    stamp_clip,
    via_analyze,
    via_cluster,
    via_run,
)
from tests.scenarios import SCENARIOS, render_scenario, scene_calibration

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARPEYES_SHARED", REPO.parent / "shared"))
HANOI = SHARED / "sample_videos" / "intersection_hanoi_b_640x480.mp4"

pytestmark = pytest.mark.integration


def assert_equivalent(name: str, ref: Outcome, other: Outcome, frame_s: float) -> None:
    problems = match(ref.violations, other.violations, frame_s + 1e-3)
    assert not problems, f"{name}: violations differ from analyze: {problems}"
    for kind in set(ref.counts) | set(other.counts):
        a, b = ref.counts.get(kind, 0), other.counts.get(kind, 0)
        assert abs(a - b) <= max(1, 0.05 * max(a, b)), f"{name}: {kind} {a} vs {b}"


@pytest.mark.skipif(not HANOI.is_file(), reason="shared hanoi_b clip missing")
def test_hanoi_b_same_violations_offline_live_and_cluster(tmp_path: Path) -> None:
    cam = load_camera_config(REPO / "sample_videos" / "intersection_hanoi_b.yaml")
    cam = cam.model_copy(update={"url": str(HANOI)})
    offline = via_analyze(cam, tmp_path / "analyze")
    assert len(offline.violations) == 15, offline.violations  # the labelled runners
    frame_s = 1.0 / 6.02
    live = via_run(cam, tmp_path / "run", timeout_s=240)
    assert_equivalent("run", offline, live, frame_s)
    cluster = via_cluster(cam, tmp_path / "cluster", timeout_s=240)
    assert_equivalent("cluster", offline, cluster, frame_s)
    # the cluster analyses the same frames as analyze: the very same tracks are charged
    assert [v.track_id for v in cluster.violations] == [v.track_id for v in offline.violations]


@pytest.mark.parametrize("name", ["clean_violation", "side_by_side"])
def test_rendered_scenario_same_violations_everywhere(name: str, tmp_path: Path) -> None:
    s = SCENARIOS[name]
    gt = render_scenario(name, tmp_path / f"{name}_raw.mp4")
    clip = tmp_path / f"{name}.mp4"
    assert stamp_clip(gt.path, clip, s.fps) == s.n_frames
    cam = CameraConfig.model_validate(
        {
            "id": name,
            "url": str(clip),
            "detector": {"model": f"scenario:{name}"},
            "tracker": {"min_hits": 2},
            "intersection": scene_calibration().model_dump(mode="json"),
        }
    )
    offline = via_analyze(cam, tmp_path / "analyze")
    expected = sum(1 for _, t in s.expected if t.value == "red_light_violation")
    assert len(offline.violations) == expected, offline
    live = via_run(cam, tmp_path / "run", timeout_s=120)
    assert_equivalent("run", offline, live, 1.0 / s.fps)
    cluster = via_cluster(cam, tmp_path / "cluster", timeout_s=120)
    assert_equivalent("cluster", offline, cluster, 1.0 / s.fps)
