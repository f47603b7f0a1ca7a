"""Synthetic red-light scenario suite with ground truth.

* :data:`SCENARIOS` — the named cases (clean violation, amber, over the line at red onset,
  right-turn exemption, stop on the line, side by side, occlusion gap, 6 / 25 fps, jitter,
  flickering lamp, night, pedestrian);
* :func:`run_pure` / :func:`score` — drive the rules with ground-truth tracks and phases;
* :func:`render_scenario` — an MP4 of the scene plus :class:`GroundTruth`;
  :class:`ScriptedDetector` returns the ground-truth boxes for end-to-end runs.
"""

from tests.scenarios.catalog import SCENARIOS
from tests.scenarios.feed import Score, run_pure, score, signal_stream, tracks_at
from tests.scenarios.model import FRAME_SIZE, Actor, Phase, Scenario
from tests.scenarios.render import GroundTruth, ScriptedDetector, render_scenario
from tests.scenarios.scene import scene_calibration

__all__ = [
    "FRAME_SIZE",
    "SCENARIOS",
    "Actor",
    "GroundTruth",
    "Phase",
    "Scenario",
    "Score",
    "ScriptedDetector",
    "render_scenario",
    "run_pure",
    "scene_calibration",
    "score",
    "signal_stream",
    "tracks_at",
]
