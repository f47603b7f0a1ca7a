"""The runner's frame history for evidence: only what rules still need, clean frames first, and
no violation charged on corrupt stage images."""

from __future__ import annotations

import numpy as np

from sharpeyes.pipeline.runner import FrameHistory
from sharpeyes.pipeline.types import AnalysedFrame, Frame, Tracks


def frame(seq: int, pts: float, corrupt: bool = False) -> AnalysedFrame:
    img = np.zeros((8, 8, 3), np.uint8)
    return AnalysedFrame(
        Frame("c", seq, pts, 1_000 + seq, img, corrupt=corrupt), Tracks.empty(), {}
    )


def test_nearest_prefers_a_clean_frame_close_by() -> None:
    h = FrameHistory(10.0)
    for i, corrupt in enumerate([False, True, False]):
        h.add(frame(i, i * 0.2, corrupt))
    got = h.nearest([0.2])[0]
    assert not got.frame.corrupt and got.frame.seq in (0, 2)


def test_nearest_keeps_a_corrupt_frame_when_nothing_clean_is_close() -> None:
    h = FrameHistory(10.0)
    h.add(frame(0, 0.0))
    h.add(frame(1, 2.0, corrupt=True))
    assert h.nearest([2.0])[0].frame.corrupt  # the clean one is 2 s away: not a substitute


def test_drop_before_forgets_old_frames() -> None:
    h = FrameHistory(10.0)
    for i in range(10):
        h.add(frame(i, i * 0.5))
    h.drop_before(3.0)
    assert len(h) == 4 and h.nearest([0.0])[0].frame.pts == 3.0


def test_an_image_on_the_first_frame_of_a_new_colour_is_stamped_with_it() -> None:
    """The phase model reports red on the first green frame (a colour needs two readings) and
    back-dates green to it once confirmed: the image of that frame says green, as it shows."""
    from sharpeyes.pipeline.runner import settled_signals
    from sharpeyes.pipeline.types import LampColor, SignalState

    red = SignalState("main", LampColor.RED, 0.9, 3.0, 42.49)
    af = frame(255, 42.49)
    af = AnalysedFrame(af.frame, af.tracks, {"main": red, "ped": red})
    green_since_then = SignalState("main", LampColor.GREEN, 0.9, 42.49, 42.82)
    got = settled_signals(af, {"main": green_since_then})
    assert got.signals["main"].color is LampColor.GREEN and got.signals["main"].pts == 42.49
    assert got.signals["ped"] is red  # no newer word on that group
    # a colour that began after the frame says nothing about it
    later = SignalState("main", LampColor.GREEN, 0.9, 42.66, 42.82)
    assert settled_signals(af, {"main": later}) is af
