"""An external phase goes stale by default: after ``external_timeout_s`` (default 300 s)
without a controller message the group is UNKNOWN (no red-light rule runs on it) and the
stream's ``signal_problems`` says so; 0 stays an explicit "never stale"."""

from __future__ import annotations

import time

import numpy as np

from sharpeyes.pipeline.calibration import IntersectionCalibration, SignalGroup
from sharpeyes.pipeline.signal import SignalBoard, build_signal_board
from sharpeyes.pipeline.signal_input import DEFAULT_EXTERNAL_TIMEOUT_S, PhaseHub
from sharpeyes.pipeline.types import Frame, LampColor

IMG = np.zeros((48, 64, 3), np.uint8)
T0 = 1_700_000_000_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def board_for(hub: PhaseHub, **group: object) -> SignalBoard:
    cal = IntersectionCalibration.model_validate(
        {
            "signal_groups": [{"id": "sw_through", "source": "external", **group}],
            "signal_heads": [{"id": "h", "group": "sw_through", "region": [[0.1, 0.1], [0.2, 0.5]]}]
            if group.get("source") == "external_then_video"
            else [],
        }
    )
    return build_signal_board(cal, (64, 48), hub.input_for("cam", ["sw_through"]))


def frame(pts: float) -> Frame:
    return Frame("cam", int(pts), pts, T0 + round(pts * 1000), IMG)


def test_the_default_is_300_s() -> None:
    assert SignalGroup(id="g").external_timeout_s == 300.0 == DEFAULT_EXTERNAL_TIMEOUT_S


def test_one_red_with_nothing_after_goes_stale_and_health_says_so() -> None:
    hub = PhaseHub()
    board = board_for(hub)
    ext = hub.get("cam")
    assert ext is not None
    ext.set_phase("sw_through", "red", at_pts=0.0)
    st = board.update(frame(157.44))["sw_through"]
    assert st.color is LampColor.RED and board.problems() == {}
    st = board.update(frame(300.0))["sw_through"]
    assert st.color is LampColor.RED  # not yet older than the timeout
    st = board.update(frame(312.0))["sw_through"]
    assert (st.color, st.source) == (LampColor.UNKNOWN, "external")
    assert board.problems() == {
        "sw_through": "no controller message for 312 s (stale after 300 s: the group is unknown)"
    }
    ext.set_phase("sw_through", "green", at_pts=313.0)  # the controller is back
    st = board.update(frame(314.0))["sw_through"]
    assert st.color is LampColor.GREEN and board.problems() == {}


def test_zero_is_an_explicit_never() -> None:
    hub = PhaseHub()
    board = board_for(hub, external_timeout_s=0)
    ext = hub.get("cam")
    assert ext is not None
    ext.set_phase("sw_through", "red", at_pts=0.0)
    st = board.update(frame(3600.0))["sw_through"]
    assert st.color is LampColor.RED and board.problems() == {}


def test_a_group_never_told_is_reported_once_the_timeout_has_passed() -> None:
    board = board_for(PhaseHub(), external_timeout_s=60)
    board.update(frame(0.0))
    board.update(frame(30.0))
    assert board.problems() == {}
    board.update(frame(61.0))
    assert board.problems() == {
        "sw_through": "no controller message for 61 s since the stream started (stale after "
        "60 s: the group is unknown)"
    }


def test_external_then_video_says_it_reads_the_video() -> None:
    board = board_for(PhaseHub(), source="external_then_video", external_timeout_s=10)
    board.update(frame(0.0))
    board.update(frame(11.0))
    assert board.problems()["sw_through"].endswith("the group is unknown, read from the video)")


def test_read_back_follows_the_signal_board_and_says_stale() -> None:
    """The board's decision on the last frame is what the camera believes; a group silent for
    longer than its timeout is stale (and the stream's signal_problems says so)."""
    hub = PhaseHub()
    ext = hub.input_for("north", ["main"])
    cal = IntersectionCalibration.model_validate(
        {"signal_groups": [{"id": "main", "source": "external"}]}
    )
    board = build_signal_board(cal, (64, 48), ext)
    img = np.zeros((48, 64, 3), np.uint8)
    t0 = now_ms()
    ext.set_phase("main", "red", wall_ms=t0)
    board.update(Frame("north", 0, 0.0, t0, img))
    status = hub.status("north")
    assert status is not None
    (g,) = status
    assert (g.color, g.since_ms, g.stale, g.as_of_ms) == (LampColor.RED, t0, False, t0)
    st = board.update(Frame("north", 1, 301.0, t0 + 301_000, img))["main"]
    assert st.color is LampColor.UNKNOWN
    assert board.problems() == {
        "main": "no controller message for 301 s (stale after 300 s: the group is unknown)"
    }
    status = hub.status("north")
    assert status is not None
    (g,) = status
    assert (g.color, g.stale, g.as_of_ms) == (LampColor.UNKNOWN, True, t0 + 301_000)
