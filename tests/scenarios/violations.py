"""Scenario families of the violation suite (issue 17), with ground truth per rule.

Each family enables one rule on the synthetic intersection (:mod:`tests.scenarios.scene`) and
runs every rule the calibration wants — red-light and pedestrian included — on green
throughout, so *any* event that is not an expected charge of the family's rule is a false alarm.
Cases are positives, near misses and the traps a reviewer would reject (queue pushed over the
line, U-turn where allowed, box jitter, a jam in a no-parking zone, an exempt emergency class).

Every case also runs in a sweep (:data:`SWEEP`: 6, 15 and 25 fps — 4, 8 and 10 fps for the long
parking scenes — with 1.5–2.5 px box jitter and other seeds). ``python -m
tests.scenarios.violations`` prints precision and recall per rule over the cases and the sweep.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.rules import violation_type
from sharpeyes.pipeline.types import LampColor, ObjectKind
from tests.scenarios.feed import Score, run_pure
from tests.scenarios.model import Actor, Phase, Scenario
from tests.scenarios.scene import LANE_CENTRES, LANE_X, STOP_Y, drive, scene_calibration

CAR, AMBULANCE = 2, 90  # model class ids (90: an emergency class a custom model might have)
L1, L2, L3 = LANE_CENTRES
GREEN = (Phase(0.0, LampColor.GREEN),)
Waypoints = tuple[tuple[float, float, float], ...]
# The scenes start at WALL_T0_MS: 2023-11-15 06:13:20 Beijing time.


def car(tid: int, waypoints: Waypoints, cls: int = CAR, **kw: Any) -> Actor:
    return Actor(tid, ObjectKind.MOTOR_VEHICLE, cls, waypoints, **kw)


def path(*pts: tuple[float, float], t0: float, v: float) -> Waypoints:
    """Waypoints through ``pts`` at a constant speed ``v`` (frame heights per second)."""
    out = [(t0, pts[0][0], pts[0][1])]
    t = t0
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        t += max(abs(x1 - x0) * 16 / 9, abs(y1 - y0)) / v
        out.append((t, x1, y1))
    return tuple(out)


def hold(w: Waypoints, seconds: float) -> Waypoints:
    """Stand at the last waypoint for ``seconds``."""
    t, x, y = w[-1]
    return (*w, (t + seconds, x, y))


def then(w: Waypoints, *pts: tuple[float, float], v: float) -> Waypoints:
    """Continue ``w`` through ``pts``."""
    t, x, y = w[-1]
    return (*w, *path((x, y), *pts, t0=t, v=v)[1:])


def left_turn(x: float, t0: float, v: float = 0.25) -> Waypoints:
    return path((x, 1.02), (x, 0.64), (x - 0.12, 0.55), (0.02, 0.50), t0=t0, v=v)


def right_turn(x: float, t0: float, v: float = 0.25) -> Waypoints:
    return path((x, 1.02), (x, 0.64), (x + 0.12, 0.55), (0.98, 0.50), t0=t0, v=v)


def u_turn(x: float, t0: float, v: float = 0.25) -> Waypoints:
    """Up to the intersection, round, and back down the opposite carriageway (x = 0.17)."""
    return path((x, 1.02), (x, 0.56), (x - 0.06, 0.46), (0.20, 0.50), (0.17, 1.02), t0=t0, v=v)


def straight(x: float, t0: float, v: float = 0.25) -> Waypoints:
    return drive(x, t0, v)


@dataclass(frozen=True, slots=True)
class Case:
    """One scenario of a family: the rule it tests and the charges it must raise."""

    rule: str
    scenario: Scenario
    charges: tuple[int, ...]  # track ids, one entry per expected charge
    calib: IntersectionCalibration


def _sc(
    name: str, actors: tuple[Actor, ...], fps: float = 10.0, dur: float = 14.0, **kw: Any
) -> Scenario:
    return Scenario(name, fps, dur, GREEN, actors, (), **kw)


# -- calibrations -------------------------------------------------------------------------------

EXIT_ZONE = [[0.30, 0.08], [0.70, 0.08], [0.70, 0.50], [0.30, 0.50]]


def wrong_way_calib(**kw: Any) -> IntersectionCalibration:
    cfg = {"zones": [{"id": "exit", "polygon": EXIT_ZONE, "travel": [[0.5, 0.45], [0.5, 0.15]]}]}
    return scene_calibration(wrong_way={**cfg, "exempt_class_ids": [AMBULANCE], **kw})


def approaches_with(movements: list[dict[str, str]]) -> list[dict[str, object]]:
    """The scene's approach with these ``movements`` for lanes 1, 2, 3."""
    approach = scene_calibration().approaches[0].model_dump(mode="json")
    for lane, mv in zip(approach["lanes"], movements, strict=True):
        lane["movements"] = mv
    return [approach]


GUIDED = [{"left": "main"}, {"straight": "main"}, {"right": "main"}]


def lane_direction_calib(**kw: Any) -> IntersectionCalibration:
    return scene_calibration(
        approaches=approaches_with(GUIDED), lane_direction={"exempt_class_ids": [AMBULANCE], **kw}
    )


NO_TURN = {
    "prohibited": [
        {"movement": "left", "approach": "south", "windows": [{"start": "06:00", "end": "09:00"}]},
        {"movement": "right", "approach": "south", "windows": [{"start": "10:00", "end": "12:00"}]},
    ],
    "exempt_class_ids": [AMBULANCE],
}


def no_turn_calib(**kw: Any) -> IntersectionCalibration:
    return scene_calibration(no_turn={**NO_TURN, **kw})


SOLID_X = LANE_X[1]  # the l1 | l2 divider is solid from the stop line down; l2 | l3 is dashed


def solid_line_calib(**kw: Any) -> IntersectionCalibration:
    lines = [{"id": "l1_l2", "points": [[SOLID_X, STOP_Y + 0.01], [SOLID_X, 1.0]]}]
    return scene_calibration(solid_lines={"lines": lines, "exempt_class_ids": [AMBULANCE], **kw})


CURB = [[0.72, 0.20], [0.95, 0.20], [0.95, 0.98], [0.72, 0.98]]
NIGHT_ONLY = [[0.05, 0.20], [0.24, 0.20], [0.24, 0.98], [0.05, 0.98]]
PARK_X, PARK_X2 = 0.84, 0.14


def parking_calib(**kw: Any) -> IntersectionCalibration:
    zones = [
        {"id": "curb", "polygon": CURB},
        {"id": "west", "polygon": NIGHT_ONLY, "windows": [{"start": "10:00", "end": "12:00"}]},
    ]
    return scene_calibration(
        parking={"zones": zones, "dwell_s": 20.0, "exempt_class_ids": [AMBULANCE], **kw}
    )


# -- families -----------------------------------------------------------------------------------


def _wrong_way() -> list[Case]:
    cal = wrong_way_calib()
    r = "wrong_way"
    return [
        Case(r, _sc("ww_lane", (car(1, path((L2, 0.72), (L2, 1.02), t0=1.0, v=0.1)),)), (1,), cal),
        Case(
            r,
            _sc(
                "ww_exit_zone",
                (
                    car(1, path((0.45, 0.10), (0.45, 0.48), t0=1.0, v=0.12)),
                    car(2, straight(L1, 0.5)),
                ),
            ),
            (1,),
            cal,
        ),
        Case(
            r,
            _sc("ww_fps_6", (car(1, path((L3, 0.72), (L3, 1.02), t0=1.0, v=0.15)),), fps=6.0),
            (1,),
            cal,
        ),
        Case(
            r,
            _sc(
                "ww_queue_rollback",
                (
                    car(
                        1,
                        then(
                            hold(path((L2, 1.02), (L2, 0.74), t0=0.0, v=0.2), 3.0),
                            (L2, 0.77),
                            v=0.03,
                        ),
                    ),
                    car(2, straight(L1, 1.0)),
                ),
                dur=12.0,
            ),
            (),
            cal,
        ),
        Case(
            r,
            _sc(
                "ww_jitter_standing",
                (
                    car(1, hold(path((L2, 1.02), (L2, 0.80), t0=0.0, v=0.3), 10.0)),
                    car(2, straight(L3, 2.0)),
                ),
                jitter_px=3.0,
            ),
            (),
            cal,
        ),
        Case(r, _sc("ww_u_turn_allowed", (car(1, u_turn(L1, 0.5)),)), (), cal),
        Case(
            r,
            _sc("ww_sideways", (car(1, path((0.31, 0.86), (0.69, 0.88), t0=1.0, v=0.1)),)),
            (),
            cal,
        ),
        Case(
            r,
            _sc(
                "ww_emergency_exempt",
                (car(1, path((L2, 0.72), (L2, 1.02), t0=1.0, v=0.1), cls=AMBULANCE),),
            ),
            (),
            cal,
        ),
        Case(
            r,
            _sc(
                "ww_jittery_positive",
                (car(1, path((L1, 0.10), (L1, 0.48), t0=1.0, v=0.1)), car(2, straight(L3, 1.0))),
                jitter_px=3.0,
            ),
            (1,),
            cal,
        ),
    ]


def _lane_direction() -> list[Case]:
    cal = lane_direction_calib()
    r = "lane_direction"
    return [
        Case(
            r,
            _sc(
                "ld_allowed_each_lane",
                (
                    car(1, left_turn(L1, 0.0)),
                    car(2, straight(L2, 0.5)),
                    car(3, right_turn(L3, 1.0)),
                ),
            ),
            (),
            cal,
        ),
        Case(r, _sc("ld_left_from_straight", (car(1, left_turn(L2, 0.5)),)), (1,), cal),
        Case(r, _sc("ld_straight_from_right", (car(1, straight(L3, 0.5)),)), (1,), cal),
        Case(r, _sc("ld_right_from_straight", (car(1, right_turn(L2, 0.5)),)), (1,), cal),
        Case(r, _sc("ld_u_turn_from_left_lane", (car(1, u_turn(L1, 0.5)),)), (), cal),
        Case(r, _sc("ld_u_turn_from_straight", (car(1, u_turn(L2, 0.5)),)), (1,), cal),
        Case(
            r,
            _sc(
                "ld_queue_pushed_over",
                (
                    car(1, hold(path((L2, 1.02), (L2, 0.66), t0=0.0, v=0.2), 10.0)),
                    car(2, hold(path((L3, 1.02), (L3, 0.69), t0=0.5, v=0.2), 9.0)),
                ),
            ),
            (),
            cal,
        ),
        Case(r, _sc("ld_straddling_boundary", (car(1, right_turn(LANE_X[2], 0.5)),)), (), cal),
        Case(
            r,
            _sc(
                "ld_changed_lane_before_line",
                (
                    car(
                        1,
                        path(
                            (L2, 1.02),
                            (L2, 0.92),
                            (L1, 0.80),
                            (L1, 0.64),
                            (L1 - 0.12, 0.55),
                            (0.02, 0.50),
                            t0=0.5,
                            v=0.25,
                        ),
                    ),
                ),
            ),
            (),
            cal,
        ),
        Case(
            r,
            _sc(
                "ld_jittery", (car(1, straight(L2, 0.5)), car(2, left_turn(L2, 3.0))), jitter_px=3.0
            ),
            (2,),
            cal,
        ),
        Case(
            r,
            _sc("ld_fps_6", (car(1, left_turn(L2, 0.5)), car(2, left_turn(L1, 1.0))), fps=6.0),
            (1,),
            cal,
        ),
        Case(
            r,
            _sc(
                "ld_slight_drift",
                (car(1, path((L2, 1.02), (L2, 0.66), (L2 - 0.15, 0.12), t0=0.5, v=0.25)),),
            ),
            (),
            cal,
        ),
        Case(r, _sc("ld_emergency_exempt", (car(1, left_turn(L2, 0.5), cls=AMBULANCE),)), (), cal),
    ]


def _no_turn() -> list[Case]:
    cal = no_turn_calib()
    r = "no_turn"
    return [
        Case(
            r,
            _sc("nt_left_in_window", (car(1, left_turn(L1, 0.5)), car(2, straight(L2, 0.5)))),
            (1,),
            cal,
        ),
        Case(r, _sc("nt_right_out_of_window", (car(1, right_turn(L3, 0.5)),)), (), cal),
        Case(r, _sc("nt_u_turn_under_no_left", (car(1, u_turn(L1, 0.5)),)), (1,), cal),
        Case(
            r,
            _sc(
                "nt_straight", (car(1, straight(L1, 0.5)), car(2, straight(L3, 1.0))), jitter_px=3.0
            ),
            (),
            cal,
        ),
        Case(
            r,
            _sc(
                "nt_queue_pushed_over",
                (car(1, hold(path((L1, 1.02), (L1, 0.66), t0=0.0, v=0.2), 10.0)),),
            ),
            (),
            cal,
        ),
        Case(r, _sc("nt_fps_6", (car(1, left_turn(L1, 0.5)),), fps=6.0), (1,), cal),
        Case(r, _sc("nt_emergency_exempt", (car(1, left_turn(L1, 0.5), cls=AMBULANCE),)), (), cal),
    ]


def _solid_line() -> list[Case]:
    cal = solid_line_calib()
    r = "solid_line"
    change = path((L2, 1.02), (L2, 0.96), (L1, 0.84), (L1, 0.12), t0=0.5, v=0.2)
    return [
        Case(
            r, _sc("sl_change_over_solid", (car(1, change), car(2, straight(L3, 0.5)))), (1,), cal
        ),
        Case(r, _sc("sl_fps_6", (car(1, change),), fps=6.0), (1,), cal),
        Case(r, _sc("sl_jittery_change", (car(1, change),), jitter_px=2.0), (1,), cal),
        Case(
            r,
            _sc(
                "sl_change_over_dashed",
                (car(1, path((L2, 1.02), (L2, 0.96), (L3, 0.84), (L3, 0.12), t0=0.5, v=0.2)),),
            ),
            (),
            cal,
        ),
        Case(
            r,
            _sc("sl_along_the_line", (car(1, straight(SOLID_X, 0.5, 0.2)),), jitter_px=2.0),
            (),
            cal,
        ),
        Case(
            r,
            _sc("sl_close_beside", (car(1, straight(SOLID_X + 0.015, 0.5, 0.2)),), jitter_px=2.0),
            (),
            cal,
        ),
        Case(r, _sc("sl_left_turn_past_line_end", (car(1, left_turn(L2, 0.5)),)), (), cal),
        Case(r, _sc("sl_emergency_exempt", (car(1, change, cls=AMBULANCE),)), (), cal),
    ]


def _parking() -> list[Case]:
    cal = parking_calib()
    r = "illegal_parking"
    arrive = path((PARK_X, 1.02), (PARK_X, 0.60), t0=1.0, v=0.2)
    flow = tuple(
        car(10 + k, path((0.78, 1.02), (0.78, 0.15), t0=2.0 + 6 * k, v=0.25)) for k in range(5)
    )
    queue = tuple(
        car(
            1 + k,
            then(
                hold(path((0.80, 1.02), (0.80, 0.35 + 0.15 * k), t0=1.0 + k, v=0.2), 30.0 - k),
                (0.80, 0.10),
                v=0.2,
            ),
        )
        for k in range(4)
    )
    two_stops = then(
        hold(then(hold(arrive, 25.0), (PARK_X, 0.40), v=0.2), 25.0), (PARK_X, 0.10), v=0.2
    )
    return [
        Case(
            r,
            _sc(
                "pk_parked",
                (car(1, then(hold(arrive, 30.0), (PARK_X, 0.1), v=0.2)),),
                fps=5.0,
                dur=45.0,
            ),
            (1,),
            cal,
        ),
        Case(
            r,
            _sc(
                "pk_parked_traffic_passing", (car(1, hold(arrive, 35.0)), *flow), fps=5.0, dur=40.0
            ),
            (1,),
            cal,
        ),
        Case(
            r,
            _sc(
                "pk_short_stop",
                (car(1, then(hold(arrive, 15.0), (PARK_X, 0.1), v=0.2)),),
                fps=5.0,
                dur=30.0,
            ),
            (),
            cal,
        ),
        Case(r, _sc("pk_jam", queue, fps=5.0, dur=45.0), (), cal),
        Case(
            r,
            _sc(
                "pk_outside_window",
                (car(1, hold(path((PARK_X2, 1.02), (PARK_X2, 0.60), t0=1.0, v=0.2), 35.0)),),
                fps=5.0,
                dur=40.0,
            ),
            (),
            cal,
        ),
        Case(
            r,
            _sc(
                "pk_jittery_parked", (car(1, hold(arrive, 35.0)),), fps=5.0, dur=40.0, jitter_px=2.0
            ),
            (1,),
            cal,
        ),
        Case(r, _sc("pk_two_stops", (car(1, two_stops),), fps=5.0, dur=60.0), (1, 1), cal),
        Case(
            r,
            _sc(
                "pk_emergency_exempt",
                (car(1, hold(arrive, 35.0), cls=AMBULANCE),),
                fps=5.0,
                dur=40.0,
            ),
            (),
            cal,
        ),
    ]


def person(tid: int, waypoints: Waypoints, **kw: Any) -> Actor:
    return Actor(tid, ObjectKind.PERSON, 0, waypoints, size=(0.03, 0.10), **kw)


def bicycle(tid: int, waypoints: Waypoints) -> Actor:
    return Actor(tid, ObjectKind.NON_MOTOR, 1, waypoints, size=(0.05, 0.08))


WALK = 0.11  # ~0.06 of the width per second: 8 s to cross
ZEBRA_Y = 0.63
STAND_S = 7.6  # pushed onto the zebra at 1.4 s, stands until the walker is in the far half


def yield_calib(**kw: Any) -> IntersectionCalibration:
    return scene_calibration(yield_to_pedestrians={"exempt_class_ids": [AMBULANCE], **kw})


def _yield() -> list[Case]:
    cal = yield_calib()
    unsig = yield_calib(unsignalised=["cw"])
    r = "yield_pedestrian"
    from_left = path((0.23, ZEBRA_Y), (0.77, ZEBRA_Y), t0=0.0, v=WALK)
    from_right = path((0.77, ZEBRA_Y), (0.23, ZEBRA_Y), t0=0.0, v=WALK)
    red_walk = (Phase(0.0, LampColor.RED),)
    return [
        Case(
            r,
            _sc("yp_passes_in_front", (person(1, from_left), car(2, straight(L1, 0.8)))),
            (2,),
            cal,
        ),
        Case(
            r,
            _sc("yp_same_half_right", (person(1, from_right), car(2, straight(L3, 0.9)))),
            (2,),
            cal,
        ),
        Case(
            r,
            _sc("yp_fps_6", (person(1, from_left), car(2, straight(L1, 0.8))), fps=6.0),
            (2,),
            cal,
        ),
        Case(
            r,
            _sc("yp_jittery", (person(1, from_left), car(2, straight(L1, 0.8))), jitter_px=2.0),
            (2,),
            cal,
        ),
        Case(
            r,
            _sc(
                "yp_unsignalised_on_red",
                (person(1, from_left), car(2, straight(L1, 0.8))),
                ped_phases=red_walk,
            ),
            (2,),
            unsig,
        ),
        Case(
            r,
            _sc(
                "yp_waits_then_goes",
                (
                    person(1, from_left),
                    car(
                        2,
                        then(
                            hold(path((L1, 1.02), (L1, 0.70), t0=0.0, v=0.25), 4.5),
                            (L1, 0.12),
                            v=0.25,
                        ),
                    ),
                ),
                jitter_px=2.0,
            ),
            (),
            cal,
        ),
        Case(
            r,
            _sc("yp_pedestrian_in_far_half", (person(1, from_left), car(2, straight(L1, 4.0)))),
            (),
            cal,
        ),
        Case(
            r,
            _sc(
                "yp_pedestrian_on_red_signal",
                (person(1, from_left), car(2, straight(L1, 0.8))),
                ped_phases=red_walk,
            ),
            (),
            cal,
        ),
        Case(
            r,
            _sc(
                "yp_standing_on_zebra",
                (
                    person(1, path((0.23, ZEBRA_Y), (0.77, ZEBRA_Y), t0=3.0, v=WALK)),
                    car(
                        2,
                        then(
                            hold(path((L1, 1.02), (L1, 0.66), t0=0.0, v=0.25), STAND_S),
                            (L1, 0.12),
                            v=0.25,
                        ),
                    ),
                ),
            ),
            (),
            cal,
        ),
        Case(
            r,
            _sc(
                "yp_pedestrian_on_kerb",
                (person(1, hold(((0.0, 0.20, ZEBRA_Y),), 12.0)), car(2, straight(L1, 0.8))),
            ),
            (),
            cal,
        ),
        Case(
            r,
            _sc(
                "yp_cyclist_not_pedestrian",
                (person(1, from_left), bicycle(3, from_left), car(2, straight(L1, 0.8))),
            ),
            (),
            cal,
        ),
        Case(
            r,
            _sc(
                "yp_emergency_exempt",
                (person(1, from_left), car(2, straight(L1, 0.8), cls=AMBULANCE)),
            ),
            (),
            cal,
        ),
    ]


FAMILIES: dict[str, list[Case]] = {
    "wrong_way": _wrong_way(),
    "lane_direction": _lane_direction(),
    "no_turn": _no_turn(),
    "solid_line": _solid_line(),
    "illegal_parking": _parking(),
    "yield_pedestrian": _yield(),
}


# (fps, jitter px, seed) of the sweep: every case again at other frame rates, with box jitter.
SWEEP = ((6.0, 2.0, 11), (15.0, 1.5, 12), (25.0, 2.5, 13))
SLOW_SWEEP = ((4.0, 2.0, 11), (8.0, 1.5, 12), (10.0, 2.5, 13))  # long (parking) scenes


def sweep(cases: list[Case]) -> list[Case]:
    """Each case at the :data:`SWEEP` frame rates with jittery boxes (its own jitter if more)."""
    out = []
    for c in cases:
        grid = SLOW_SWEEP if c.scenario.duration_s > 20 else SWEEP
        for fps, jitter, seed in grid:
            sc = replace(
                c.scenario,
                name=f"{c.scenario.name}@{fps:g}fps",
                fps=fps,
                jitter_px=max(jitter, c.scenario.jitter_px),
                seed=seed,
            )
            out.append(replace(c, scenario=sc))
    return out


SWEPT: dict[str, list[Case]] = {rule: sweep(cases) for rule, cases in FAMILIES.items()}


def score_case(case: Case) -> tuple[Score, list[str]]:
    """Score one case: every event that is not an expected charge is a false alarm."""
    events = run_pure(case.scenario, case.calib)
    want: Counter[tuple[int | None, str]] = Counter((tid, case.rule) for tid in case.charges)
    got: Counter[tuple[int | None, str]] = Counter((e.track_id, violation_type(e)) for e in events)
    tp = sum((want & got).values())
    details = [f"{violation_type(e)} track {e.track_id}: {e.detail}" for e in events]
    return Score(tp, sum(got.values()) - tp, sum(want.values()) - tp), details


def family_score(rule: str, *, swept: bool = False) -> Score:
    """The family's score (with ``swept``: over its cases and their sweep)."""
    total = Score(0, 0, 0)
    for case in [*FAMILIES[rule], *(SWEPT[rule] if swept else [])]:
        total += score_case(case)[0]
    return total


def main() -> None:
    print(
        f"{'rule':<16} {'cases':>5} {'charges':>7} {'tp':>4} {'fp':>4} {'fn':>4} "
        f"{'precision':>9} {'recall':>6}"
    )
    for rule, base in FAMILIES.items():
        cases = [*base, *SWEPT[rule]]
        sc = family_score(rule, swept=True)
        n = sum(len(c.charges) for c in cases)
        print(
            f"{rule:<16} {len(cases):>5} {n:>7} {sc.tp:>4} {sc.fp:>4} {sc.fn:>4} "
            f"{sc.precision:>9.3f} {sc.recall:>6.3f}"
        )


if __name__ == "__main__":
    main()
