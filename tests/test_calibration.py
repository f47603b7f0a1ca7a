"""IntersectionCalibration: the committed configs load; bad geometry names the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from sharpeyes.pipeline.calibration import IntersectionCalibration, Movement
from sharpeyes.pipeline.config import load_camera_config
from sharpeyes.pipeline.errors import ConfigError
from tests.scenarios import scene_calibration

REPO = Path(__file__).resolve().parents[1]
HANOI = REPO / "sample_videos" / "intersection_hanoi_b.yaml"


def _base() -> dict[str, Any]:
    return scene_calibration().model_dump(mode="json")


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as ei:
        IntersectionCalibration.model_validate(data)
    return str(ei.value)


def test_hanoi_config_loads_with_calibration() -> None:
    cfg = load_camera_config(HANOI)
    cal = cfg.intersection
    assert cal is not None
    assert [h.group for h in cal.signal_heads] == ["main"]
    (x1, y1), (x2, y2) = cal.signal_heads[0].region
    assert (round(x1 * 640), round(y1 * 480), round(x2 * 640), round(y2 * 480)) == (
        551,
        182,
        569,
        231,
    )
    lanes = cal.approaches[0].lanes
    assert [ln.number for ln in lanes] == [1, 2, 3]
    assert all(Movement.STRAIGHT in ln.movements for ln in lanes)
    assert cfg.detector.motorcycle_is_non_motor is False


def test_scene_calibration_round_trips() -> None:
    cal = scene_calibration()
    again = IntersectionCalibration.model_validate(cal.model_dump(mode="json"))
    assert again == cal
    assert cal.violation_code == "1625"


def test_point_outside_frame_names_the_field() -> None:
    d = _base()
    d["approaches"][0]["stop_line"] = [[0.3, 0.7], [1.2, 0.7]]
    msg = _error(d)
    assert "approaches.0.stop_line" in msg and "outside the frame" in msg


def test_lane_without_signal_group_is_rejected() -> None:
    d = _base()
    d["approaches"][0]["lanes"][1]["movements"] = {}
    msg = _error(d)
    assert "lane 'l2' has no movements" in msg


def test_movement_with_unknown_group_names_path() -> None:
    d = _base()
    d["approaches"][0]["lanes"][0]["movements"]["left"] = "left_arrow"
    msg = _error(d)
    assert "approaches.0.lanes.0.movements.left" in msg and "left_arrow" in msg


def test_overlapping_lanes_are_rejected() -> None:
    d = _base()
    d["approaches"][0]["lanes"][1]["polygon"] = [
        [0.40, 1.0],
        [0.5667, 1.0],
        [0.5667, 0.7],
        [0.40, 0.7],
    ]
    msg = _error(d)
    assert "approaches.0.lanes.1.polygon" in msg and "overlaps lane 'l1'" in msg


def test_adjacent_lanes_sharing_an_edge_are_fine() -> None:
    scene_calibration()  # the scene's lanes share edges exactly


def test_video_group_without_head_is_rejected() -> None:
    d = _base()
    d["signal_heads"] = [h for h in d["signal_heads"] if h["group"] != "ped"]
    msg = _error(d)
    assert "signal_groups.1" in msg and "no signal head" in msg


def test_external_group_needs_no_head() -> None:
    d = _base()
    d["signal_heads"] = [h for h in d["signal_heads"] if h["group"] != "ped"]
    d["signal_groups"][1]["source"] = "external"
    assert IntersectionCalibration.model_validate(d).group("ped").source == "external"


def test_head_with_unknown_group_and_bad_box() -> None:
    d = _base()
    d["signal_heads"][0]["group"] = "nope"
    assert "signal_heads.0.group" in _error(d)
    d = _base()
    d["signal_heads"][0]["region"] = [[0.9, 0.3], [0.8, 0.1]]
    assert "signal_heads.0.region" in _error(d)


def test_approach_needs_entry_line_or_zone() -> None:
    d = _base()
    d["approaches"][0]["entry_line"] = None
    assert "approaches.0.entry_line" in _error(d)
    d["intersection_zone"] = [[0.2, 0.2], [0.8, 0.2], [0.8, 0.56], [0.2, 0.56]]
    IntersectionCalibration.model_validate(d)


def test_reversed_travel_or_swapped_lines_are_rejected_not_silently_idle() -> None:
    """A lane whose travel runs backwards, or an approach with its stop and entry lines
    swapped, would make the red-light rule watch the wrong side and charge nobody."""
    d = _base()
    d["approaches"][0]["lanes"][0]["travel"] = d["approaches"][0]["lanes"][0]["travel"][::-1]
    assert "approaches.0.lanes.0.travel: points away from the entry line" in _error(d)
    d = _base()
    ap = d["approaches"][0]
    ap["stop_line"], ap["entry_line"] = ap["entry_line"], ap["stop_line"]
    assert "points away from the entry line" in _error(d)
    d = _base()  # no entry line: the intersection zone is what lies past the stop line
    d["approaches"][0]["entry_line"] = None
    d["intersection_zone"] = [[0.2, 0.2], [0.8, 0.2], [0.8, 0.56], [0.2, 0.56]]
    IntersectionCalibration.model_validate(d)
    d["intersection_zone"] = [[0.2, 0.8], [0.8, 0.8], [0.8, 0.99], [0.2, 0.99]]
    assert "points away from the entry line" in _error(d)
    d = _base()
    (_, y0), _ = d["approaches"][0]["stop_line"]
    d["approaches"][0]["lanes"][0]["travel"] = [[0.1, y0], [0.3, y0 + 0.001]]
    assert "runs along the stop line" in _error(d)


def test_duplicate_ids_and_unknown_exemption_lane() -> None:
    d = _base()
    d["approaches"][0]["lanes"][2]["id"] = "l1"
    assert "id 'l1' is used twice" in _error(d)
    d = _base()
    d["exemptions"][0]["lanes"] = ["l9"]
    assert "exemptions.0.lanes" in _error(d)


def test_unknown_keys_and_bad_time_window_rejected() -> None:
    d = _base()
    d["stopline"] = [[0, 0], [1, 1]]
    assert "stopline" in _error(d)
    d = _base()
    d["exemptions"][0]["windows"] = [{"start": "25:00", "end": "07:00"}]
    assert "exemptions.0.windows.0.start" in _error(d)


def test_camera_yaml_error_is_one_line_naming_the_field(tmp_path: Path) -> None:
    data = yaml.safe_load(HANOI.read_text())
    bad = copy.deepcopy(data)
    bad["intersection"]["approaches"][0]["lanes"][0]["movements"] = {}
    path = tmp_path / "cam.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as ei:
        load_camera_config(path)
    msg = str(ei.value)
    assert "\n" not in msg and "intersection" in msg and "no movements" in msg
