"""``analyze``'s summary says what became of the external phases: received / applied / ignored
(dated outside the recording), and each external group that got none (its rule did not run)."""

from __future__ import annotations

import numpy as np
import pytest

from sharpeyes.api.commands.analyze import phase_report
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.signal import build_signal_board
from sharpeyes.pipeline.signal_input import PhaseHub, PhaseMessage, PhaseRejectedError
from sharpeyes.pipeline.types import Frame

RECORDED_MS = 1_600_000_000_000  # the recording's clock: 2020 (a file's creation_time)


def camera() -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "cam",
            "url": "clip.mp4",
            "intersection": {
                "signal_groups": [
                    {"id": "sw_through", "source": "external"},
                    {"id": "left", "source": "external"},
                ]
            },
        }
    )


def analyse(hub: PhaseHub, cam: CameraConfig, seconds: int) -> None:
    assert cam.intersection is not None
    ext = hub.input_for(cam.id, ["sw_through", "left"])
    board = build_signal_board(cam.intersection, (32, 24), ext)
    img = np.zeros((24, 32, 3), np.uint8)
    for i in range(seconds):
        board.update(Frame(cam.id, i, float(i), RECORDED_MS + i * 1000, img))


def test_a_phase_without_time_on_an_old_recording_is_reported_ignored() -> None:
    cam = camera()
    hub = PhaseHub(live=False)
    hub.input_for(cam.id, ["sw_through", "left"])
    # sent without a time while the file plays: dated on arrival, years after the recording
    hub.receive(PhaseMessage(group="sw_through", color="red"), "udp")
    with pytest.raises(PhaseRejectedError):
        hub.receive(PhaseMessage(group="nope", color="red"), "udp")
    analyse(hub, cam, 5)
    lines = phase_report(hub, cam, udp=True)
    assert lines[0] == (
        "phase messages: 2 received, 1 applied, 1 ignored (dated outside the recording), "
        "1 rejected (unknown_group 1)"
    )
    assert "send pts" in lines[1]
    assert "group left (external): no phase received — its red-light rule did not run" in lines
    assert (
        "group sw_through (external): no phase received was in force on any analysed frame "
        "— its red-light rule did not run" in lines
    )


def test_phases_in_the_recording_are_applied_and_not_ignored() -> None:
    cam = camera()
    hub = PhaseHub(live=False)
    hub.input_for(cam.id, ["sw_through", "left"])
    for group in ("sw_through", "left"):
        hub.receive(PhaseMessage(group=group, color="red", pts=1.0), "udp")
        hub.receive(PhaseMessage(group=group, color="green", wall_ms=RECORDED_MS + 3000), "udp")
    analyse(hub, cam, 5)
    assert phase_report(hub, cam, udp=True) == [
        "phase messages: 4 received, 4 applied, 0 ignored (dated outside the recording)"
    ]


def test_without_phase_input_each_external_group_is_named() -> None:
    cam = camera()
    hub = PhaseHub(live=False)
    analyse(hub, cam, 2)
    assert phase_report(hub, cam, udp=False) == [
        "group left (external): no phase received — its red-light rule did not run "
        "(send phases with --phase-udp)",
        "group sw_through (external): no phase received — its red-light rule did not run "
        "(send phases with --phase-udp)",
    ]
