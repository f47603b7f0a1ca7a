"""The named scenarios of the suite, each with its ground truth."""

from __future__ import annotations

from sharpeyes.pipeline.types import EventType, LampColor, ObjectKind
from tests.scenarios.model import Actor, Phase, Scenario
from tests.scenarios.scene import LANE_CENTRES, drive, turn_right, wait_then_go

RLV = EventType.RED_LIGHT_VIOLATION
PED = EventType.PEDESTRIAN_RED_LIGHT
CAR, PERSON, MOTO = 2, 0, 3
L1, L2, L3 = LANE_CENTRES

# green 0–2 s, amber 2–5 s, red 5–20 s, green from 20 s.
CYCLE = (
    Phase(0.0, LampColor.GREEN),
    Phase(2.0, LampColor.AMBER),
    Phase(5.0, LampColor.RED),
    Phase(20.0, LampColor.GREEN),
)


def car(tid: int, waypoints: tuple[tuple[float, float, float], ...], **kw: object) -> Actor:
    return Actor(tid, ObjectKind.MOTOR_VEHICLE, CAR, waypoints, **kw)  # type: ignore[arg-type]


def _vehicle_cases() -> list[Scenario]:
    return [
        Scenario(
            "clean_violation",
            10.0,
            12.0,
            CYCLE,
            (car(1, drive(L2, 6.0, 0.2)), car(2, wait_then_go(L1, 4.0, 0.2, 0.74, 21.0))),
            ((1, RLV),),
            description="one car runs the red, one waits behind the line",
        ),
        Scenario(
            "amber_crossing",
            10.0,
            10.0,
            CYCLE,
            (car(1, drive(L2, 1.6, 0.2)), car(2, drive(L3, 3.4, 0.25))),
            (),
            description="both cross on amber (the second 0.3 s before red)",
        ),
        Scenario(
            "over_line_at_red_onset",
            10.0,
            12.0,
            CYCLE,
            (car(1, wait_then_go(L1, 2.5, 0.25, 0.66, 7.0)), car(2, drive(L2, 3.3, 0.2))),
            (),
            description="one stands on the crosswalk at red onset then clears; one crosses "
            "0.1 s before red",
        ),
        Scenario(
            "right_turn_exempt",
            10.0,
            14.0,
            CYCLE,
            (car(1, turn_right(L3, 6.0, 0.2)), car(2, drive(L3, 9.0, 0.2))),
            ((2, RLV),),
            description="right turn on red is exempt; straight on from lane 3 is not",
        ),
        Scenario(
            "stop_on_line",
            10.0,
            16.0,
            CYCLE,
            (
                car(1, wait_then_go(L2, 3.5, 0.2, 0.685, 21.0)),
                car(2, wait_then_go(L1, 3.5, 0.2, 0.70, 21.0)),
            ),
            (),
            description="one stops a little past the line, one exactly on it",
        ),
        Scenario(
            "side_by_side",
            10.0,
            12.0,
            CYCLE,
            (car(1, drive(L1, 7.0, 0.2)), car(2, drive(L2, 7.0, 0.2))),
            ((1, RLV), (2, RLV)),
            description="two cars side by side run the red",
        ),
        Scenario(
            "occlusion_gap",
            10.0,
            12.0,
            CYCLE,
            (car(1, drive(L2, 6.0, 0.2), gaps=((7.2, 7.9),)),),
            ((1, RLV),),
            description="the violator is not detected around the stop line",
        ),
    ]


def _rate_cases() -> list[Scenario]:
    actors = (car(1, drive(L2, 6.0, 0.45)), car(2, drive(L1, 3.0, 0.45)))
    return [
        Scenario(
            "fps_6",
            6.0,
            10.0,
            CYCLE,
            actors,
            ((1, RLV),),
            description="6 fps: a fast car jumps over the line between frames",
        ),
        Scenario(
            "fps_25", 25.0, 10.0, CYCLE, actors, ((1, RLV),), description="25 fps: the same cars"
        ),
    ]


def _condition_cases() -> list[Scenario]:
    pair = (car(1, drive(L2, 6.5, 0.2)), car(2, wait_then_go(L1, 4.0, 0.2, 0.695, 21.0)))
    return [
        Scenario(
            "jittery_boxes",
            10.0,
            12.0,
            CYCLE,
            pair,
            ((1, RLV),),
            jitter_px=3.0,
            description="boxes jitter by 3 px; the waiting car sits on the line",
        ),
        Scenario(
            "flickering_lamp",
            10.0,
            12.0,
            CYCLE,
            (car(1, drive(L2, 6.5, 0.2)), car(2, drive(L3, 1.2, 0.2))),
            ((1, RLV),),
            flicker_every=3,
            description="the lamp reads dark every third frame",
        ),
        Scenario(
            "night_low_contrast",
            10.0,
            12.0,
            CYCLE,
            pair,
            ((1, RLV),),
            night=True,
            jitter_px=1.5,
            description="dark scene, lamp bloom, noisy boxes",
        ),
    ]


def _pedestrian_cases() -> list[Scenario]:
    ped_phases = (Phase(0.0, LampColor.RED), Phase(10.0, LampColor.GREEN))
    walk = ((2.0, 0.18, 0.64), (9.0, 0.82, 0.64))
    late = ((10.5, 0.82, 0.635), (17.5, 0.18, 0.635))
    rider = ((3.0, 0.16, 0.66), (6.0, 0.84, 0.66))
    return [
        Scenario(
            "pedestrian_red",
            10.0,
            18.0,
            CYCLE,
            (
                Actor(31, ObjectKind.PERSON, PERSON, walk, size=(0.025, 0.09)),
                Actor(32, ObjectKind.PERSON, PERSON, late, size=(0.025, 0.09)),
                Actor(33, ObjectKind.PERSON, PERSON, rider, size=(0.03, 0.10)),
                Actor(34, ObjectKind.NON_MOTOR, MOTO, rider, size=(0.05, 0.07)),
            ),
            ((31, PED),),
            ped_phases=ped_phases,
            description="one walks on red, one on green, a rider crosses on a motorbike",
        ),
    ]


def _rider_cases() -> list[Scenario]:
    def person(tid: int, waypoints: tuple[tuple[float, float, float], ...]) -> Actor:
        return Actor(tid, ObjectKind.PERSON, PERSON, waypoints, size=(0.03, 0.10))

    bike = drive(L1, 7.0, 0.2)
    on_bike = tuple((t, x, y - 0.02) for t, x, y in bike)  # rider's feet above the wheels
    return [
        Scenario(
            "rider_fusion",
            6.0,
            18.0,
            CYCLE,
            (
                person(41, drive(L2, 6.0, 0.2)),
                Actor(42, ObjectKind.MOTOR_VEHICLE, MOTO, bike, size=(0.05, 0.07)),
                person(43, on_bike),
                person(44, drive(L3, 5.5, 0.02, y0=0.76)),
            ),
            ((41, RLV), (42, RLV)),
            description="a rider whose motorbike is not detected runs the red (charged as the "
            "two-wheeler); a motorbike and its rider run it together (charged once, on the "
            "bike); a pedestrian walks up lane 3 over the line (not a rider: too slow)",
        ),
    ]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in _vehicle_cases()
    + _rate_cases()
    + _condition_cases()
    + _pedestrian_cases()
    + _rider_cases()
}
