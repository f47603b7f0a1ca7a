"""The synthetic intersection every scenario uses: geometry, calibration and path builders.

Vehicles drive up the image on a three-lane approach: lane 1 (left, straight/left), lane 2
(straight), lane 3 (straight/right, right turn exempt on red). Stop line at y = 0.70, crosswalk
0.58–0.68, "entered" line at y = 0.56. The main head is top right, the pedestrian head top left.
"""

from __future__ import annotations

from sharpeyes.pipeline.calibration import IntersectionCalibration

STOP_Y = 0.70
ENTRY_Y = 0.56
CROSSWALK = (0.58, 0.68)
ROAD = (0.25, 0.75)
LANE_X = (0.30, 0.4333, 0.5667, 0.70)
LANE_CENTRES = (0.3667, 0.50, 0.6333)
MAIN_HEAD = ((0.86, 0.06), (0.89, 0.26))
PED_HEAD = ((0.06, 0.08), (0.09, 0.20))


def _lane(i: int, movements: dict[str, str]) -> dict[str, object]:
    x0, x1 = LANE_X[i], LANE_X[i + 1]
    xc = LANE_CENTRES[i]
    return {
        "id": f"l{i + 1}",
        "number": i + 1,
        "polygon": [[x0, 1.0], [x1, 1.0], [x1, STOP_Y], [x0, STOP_Y]],
        "travel": [[xc, 0.95], [xc, 0.75]],
        "movements": movements,
    }


def scene_calibration(**overrides: object) -> IntersectionCalibration:
    """The calibration of the synthetic scene (overrides replace top-level fields)."""
    data: dict[str, object] = {
        "signal_groups": [
            {"id": "main", "kind": "vehicle", "source": "video"},
            {"id": "ped", "kind": "pedestrian", "source": "video"},
        ],
        "signal_heads": [
            {"id": "main_head", "group": "main", "region": [list(p) for p in MAIN_HEAD]},
            {
                "id": "ped_head",
                "group": "ped",
                "region": [list(p) for p in PED_HEAD],
                "lamps": ["red", "green"],
            },
        ],
        "approaches": [
            {
                "id": "south",
                "direction": "northbound",
                "stop_line": [[LANE_X[0], STOP_Y], [LANE_X[3], STOP_Y]],
                "entry_line": [[ROAD[0], ENTRY_Y], [ROAD[1], ENTRY_Y]],
                "lanes": [
                    _lane(0, {"straight": "main", "left": "main"}),
                    _lane(1, {"straight": "main"}),
                    _lane(2, {"straight": "main", "right": "main"}),
                ],
            }
        ],
        "crosswalks": [
            {
                "id": "cw",
                "polygon": [
                    [ROAD[0] - 0.03, CROSSWALK[0]],
                    [ROAD[1] + 0.03, CROSSWALK[0]],
                    [ROAD[1] + 0.03, CROSSWALK[1]],
                    [ROAD[0] - 0.03, CROSSWALK[1]],
                ],
                "axis": [[ROAD[0], 0.63], [ROAD[1], 0.63]],
                "signal_group": "ped",
            }
        ],
        "exemptions": [{"movement": "right", "lanes": ["l3"]}],
    }
    data.update(overrides)
    return IntersectionCalibration.model_validate(data)


Waypoints = tuple[tuple[float, float, float], ...]


def drive(x: float, t0: float, v: float, y0: float = 1.02, y_end: float = 0.12) -> Waypoints:
    """Straight up the image from ``y0`` at ``t0`` with speed ``v`` (frame heights / s)."""
    return ((t0, x, y0), (t0 + (y0 - y_end) / v, x, y_end))


def wait_then_go(
    x: float, t0: float, v: float, y_wait: float, t_go: float, y0: float = 1.02
) -> Waypoints:
    """Drive to ``y_wait``, stand there until ``t_go``, then drive on up."""
    t_arrive = t0 + (y0 - y_wait) / v
    t_go = max(t_go, t_arrive)
    return (
        (t0, x, y0),
        (t_arrive, x, y_wait),
        (t_go, x, y_wait),
        (t_go + (y_wait - 0.12) / v, x, 0.12),
    )


def turn_right(x: float, t0: float, v: float, y0: float = 1.02) -> Waypoints:
    """Drive up to the crosswalk, then sweep right out of the frame."""
    t1 = t0 + (y0 - 0.64) / v
    return ((t0, x, y0), (t1, x, 0.64), (t1 + 0.9, x + 0.14, 0.56), (t1 + 2.4, 0.98, 0.50))
