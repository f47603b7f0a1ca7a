"""Lamp reading, smoothing/hysteresis and the signal board (video + external input)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sharpeyes.pipeline.calibration import IntersectionCalibration, SignalHead
from sharpeyes.pipeline.signal import LampReading, SignalSmoother, build_signal_board, read_lamp
from sharpeyes.pipeline.signal_input import ExternalPhaseInput
from sharpeyes.pipeline.types import Frame, LampColor, SignalState

HEAD = SignalHead(id="h", group="g", region=((0.0, 0.0), (1.0, 1.0)))
BGR = {"red": (40, 40, 235), "amber": (10, 165, 250), "green": (150, 225, 40)}
ORDER = ["red", "amber", "green"]


def head_image(lit: str | None, w: int = 18, h: int = 48, bloom: bool = False) -> np.ndarray:
    img = np.full((h, w, 3), 25, np.uint8)
    cell = h // 3
    for k, c in enumerate(ORDER):
        centre = (w // 2, cell * k + cell // 2)
        if c == lit:
            color = (250, 250, 250) if bloom else BGR[c]
            cv2.circle(img, centre, 7, color, -1)
        else:
            cv2.circle(img, centre, 7, (45, 45, 45), -1)
    return img


@pytest.mark.parametrize("lit", ORDER)
def test_read_each_lamp(lit: str) -> None:
    r = read_lamp(head_image(lit), HEAD)
    assert r.color == LampColor(lit)
    assert r.confidence > 0.5


def test_dark_head_reads_off_and_empty_crop_unknown() -> None:
    assert read_lamp(head_image(None), HEAD).color is LampColor.OFF
    assert read_lamp(np.zeros((0, 0, 3), np.uint8), HEAD).color is LampColor.UNKNOWN


def test_night_bloom_white_lamp_read_by_position() -> None:
    r = read_lamp(head_image("green", bloom=True), HEAD)
    assert r.color is LampColor.GREEN and r.confidence <= 0.5


def test_glare_everywhere_is_unknown() -> None:
    img = np.full((48, 18, 3), 245, np.uint8)
    assert read_lamp(img, HEAD).color is LampColor.UNKNOWN


def test_red_light_in_the_green_cell_is_not_green() -> None:
    """Red countdown digits overlapping the bottom cell do not make it read green."""
    img = head_image("green")
    cv2.putText(img, "8", (2, 46), cv2.FONT_HERSHEY_SIMPLEX, 0.5, BGR["red"], 1)
    assert read_lamp(img, HEAD).color is LampColor.GREEN
    img = head_image(None)
    cv2.putText(img, "8", (2, 46), cv2.FONT_HERSHEY_SIMPLEX, 0.5, BGR["red"], 1)
    assert read_lamp(img, HEAD).color is not LampColor.GREEN


def _feed(
    sm: SignalSmoother, colors: list[LampColor], fps: float = 10.0
) -> list[tuple[LampColor, float]]:
    out = []
    for i, c in enumerate(colors):
        st = sm.update(
            LampReading(c, 1.0 if c not in (LampColor.OFF, LampColor.UNKNOWN) else 0.8), i / fps
        )
        out.append((st.color, st.since_pts))
    return out


def test_one_noisy_frame_never_flips() -> None:
    R, G = LampColor.RED, LampColor.GREEN
    out = _feed(SignalSmoother("g"), [R] * 5 + [G] + [R] * 5)
    assert all(c is R for c, _ in out)
    assert all(s == 0.0 for _, s in out)


def test_change_is_confirmed_and_back_dated() -> None:
    R, G = LampColor.RED, LampColor.GREEN
    out = _feed(SignalSmoother("g", confirm_frames=2), [R] * 5 + [G] * 5)
    assert out[5][0] is R  # first green frame: not yet confirmed
    assert out[6] == (G, 0.5)  # confirmed, since the first green frame


def test_flicker_does_not_read_off_and_dark_needs_hold() -> None:
    R, OFF = LampColor.RED, LampColor.OFF
    flicker = [R, R, OFF] * 6
    assert all(c is R for c, _ in _feed(SignalSmoother("g"), flicker))
    out = _feed(SignalSmoother("g", dark_hold_s=0.6), [R] * 3 + [OFF] * 10)
    assert out[8][0] is R  # 0.5 s dark: still red
    assert out[9] == (OFF, 0.3)  # 0.6 s dark: OFF, since the first dark frame


def test_duration_grows_with_frame_time() -> None:
    sm = SignalSmoother("g")
    st = None
    for i in range(30):
        st = sm.update(LampReading(LampColor.RED, 1.0), i * 0.1)
    assert st is not None and st.duration == pytest.approx(2.9)


def _cal(source: str) -> IntersectionCalibration:
    return IntersectionCalibration.model_validate(
        {
            "signal_groups": [{"id": "g", "source": source, "external_timeout_s": 2.0}],
            "signal_heads": [{"id": "h", "group": "g", "region": [[0.1, 0.1], [0.2, 0.5]]}],
        }
    )


def _frames(lit: str, n: int, start: int = 0) -> list[Frame]:
    img = np.zeros((100, 100, 3), np.uint8)
    img[10:50, 10:20] = cv2.resize(head_image(lit), (10, 40))
    return [Frame("s", i, i * 0.1, 1_000_000 + i * 100, img) for i in range(start, start + n)]


def test_board_reads_video_heads() -> None:
    board = build_signal_board(_cal("video"), (100, 100))
    states = [board.update(f)["g"] for f in _frames("red", 5)]
    assert states[-1].color is LampColor.RED and states[-1].source == "video"


def test_external_overrides_video_and_stale_falls_back() -> None:
    ext = ExternalPhaseInput(["g"])
    board = build_signal_board(_cal("external_then_video"), (100, 100), ext)
    ext.set_phase("g", "green", at_pts=0.0)
    frames = _frames("red", 40)
    first = board.update(frames[0])["g"]
    assert (first.color, first.source) == (LampColor.GREEN, "external")
    states = [board.update(f)["g"] for f in frames[1:]]
    assert states[15].source == "external"  # 1.6 s after the message: still fresh
    assert states[-1].source == "video" and states[-1].color is LampColor.RED  # 3.9 s: stale


def test_external_only_group_unknown_until_told() -> None:
    cal = IntersectionCalibration.model_validate(
        {"signal_groups": [{"id": "p", "kind": "pedestrian", "source": "external"}]}
    )
    ext = ExternalPhaseInput()
    board = build_signal_board(cal, (100, 100), ext)
    f0, f1 = _frames("red", 2)
    assert board.update(f0)["p"].color is LampColor.UNKNOWN
    ext.set_phase("p", LampColor.RED, wall_ms=f1.wall_time_ms - 500)
    st = board.update(f1)["p"]
    assert st.color is LampColor.RED and st.since_pts == pytest.approx(f1.pts - 0.5)


def test_a_colour_on_at_the_start_has_no_seen_onset_and_the_next_one_has() -> None:
    """A camera started mid-red cannot know how long it had been red: the state says so."""
    R, G = LampColor.RED, LampColor.GREEN
    sm = SignalSmoother("g")
    states = [sm.update(LampReading(c, 1.0), i / 10) for i, c in enumerate([R] * 5 + [G] * 5)]
    assert states[4].color is R and not states[4].onset_seen
    assert states[9].color is G and states[9].onset_seen


def test_a_gap_in_the_frames_forgets_the_colour_and_its_onset() -> None:
    """Frames 10 s apart (a reconnect): the lamp may have cycled meanwhile. The red after the
    gap is timed from its first reading and its onset is not claimed; a short gap keeps both."""
    R, G = LampColor.RED, LampColor.GREEN
    sm = SignalSmoother("g", max_gap_s=3.0)
    for i in range(5):
        sm.update(LampReading(G, 1.0), i / 10)
    for i in range(5, 10):
        st = sm.update(LampReading(R, 1.0), i / 10)
    assert st.onset_seen and st.since_pts == pytest.approx(0.5)
    st = sm.update(LampReading(R, 1.0), 2.9)  # 2 s gap: continuous
    assert st.color is R and st.onset_seen and st.since_pts == pytest.approx(0.5)
    st = sm.update(LampReading(R, 1.0), 12.9)  # 10 s gap: unknown in between
    assert st.color is R and not st.onset_seen and st.since_pts == pytest.approx(12.9)
    assert (2.9, R, LampColor.UNKNOWN) in sm.changes
    assert st.duration == 0.0


def test_a_camera_analysed_at_a_low_rate_on_purpose_has_no_gap_at_every_frame() -> None:
    sm = SignalSmoother("g", max_gap_s=3.0)
    states = [sm.update(LampReading(LampColor.RED, 1.0), i * 4.0) for i in range(6)]
    assert all(st.color is LampColor.RED for st in states[2:])
    assert states[-1].since_pts == 0.0


def _red_after_hidden(hidden_s: float, reading: LampReading) -> tuple[SignalState, SignalState]:
    """Green, 1 s of red, ``hidden_s`` of ``reading``, 0.3 s of red: the states at the end of
    the hidden stretch and at the end."""
    R, G = LampColor.RED, LampColor.GREEN
    sm = SignalSmoother("g", dark_hold_s=2.0, bridge_s=6.0)
    t = 0.0
    for c in [G] * 5 + [R] * 10:
        sm.update(LampReading(c, 1.0), t)
        t += 0.1
    for _ in range(round(hidden_s / 0.1)):
        hidden = sm.update(reading, t)
        t += 0.1
    for _ in range(3):
        end = sm.update(LampReading(R, 1.0), t)
        t += 0.1
    return hidden, end


def test_a_short_unreadable_stretch_between_two_reds_is_one_red() -> None:
    """A truck hides the head for 3 s mid-red: the red after it is the same phase (no signal
    cycles back to red that fast), so its onset and age carry on; after 8 s unreadable they
    do not (a new red, first seen then)."""
    for hidden, bridged in ((3.0, True), (8.0, False)):
        mid, st = _red_after_hidden(hidden, LampReading(LampColor.UNKNOWN, 0.0))
        assert mid.color is LampColor.UNKNOWN  # unreadable for longer than the dark hold
        assert st.color is LampColor.RED
        if bridged:
            assert st.onset_seen and st.since_pts == pytest.approx(0.5)
        else:
            assert not st.onset_seen and st.since_pts > 0.5 + hidden


def test_a_red_after_a_dark_head_is_not_a_seen_onset_unless_it_is_the_same_phase() -> None:
    """Something dark in front of the head (or a lamp fault) for 3 s mid-red reads OFF: a
    signal fault while it lasts, and then the same red phase — onset and age carry on. After
    8 s dark the red that comes back did not begin then: its onset was not seen (before: it
    was stamped as a red seen to begin at the end of the dark stretch, and every later red
    age restarted there)."""
    for hidden, bridged in ((3.0, True), (8.0, False)):
        mid, st = _red_after_hidden(hidden, LampReading(LampColor.OFF, 0.9))
        assert mid.color is LampColor.OFF and mid.fault is not None
        assert st.color is LampColor.RED and st.fault is None
        if bridged:
            assert st.onset_seen and st.since_pts == pytest.approx(0.5)
        else:
            assert not st.onset_seen and st.since_pts > 0.5 + hidden


def test_a_held_colour_says_since_when_the_head_reads_dark() -> None:
    """While a lit colour is only held through dark readings, the state says since when
    (``dark_since``): rules wait before deciding on it. Lit again, or faulted: no longer."""
    R, DARK = LampColor.RED, LampColor.OFF
    sm = SignalSmoother("g", dark_hold_s=2.0)
    t = 0.0
    for _ in range(10):
        st = sm.update(LampReading(R, 1.0), t)
        t += 0.1
    assert st.dark_since is None
    dark_from = t
    for _ in range(10):  # 1 s dark: held
        st = sm.update(LampReading(DARK, 0.9), t)
        t += 0.1
    assert st.color is R and st.dark_since == pytest.approx(dark_from)
    st = sm.update(LampReading(R, 1.0), t)
    assert st.color is R and st.dark_since is None
    for _ in range(25):  # 2.5 s dark: a fault
        st = sm.update(LampReading(DARK, 0.9), t)
        t += 0.1
    assert st.color is DARK and st.fault is not None and st.dark_since is None


def test_a_colour_first_read_after_damaged_pictures_has_no_seen_onset() -> None:
    """Damaged pictures (corrupt data, broken references until a keyframe) are not read: the
    state carries on through them, and a red first read after them may have begun while they
    lasted — its onset is not claimed (seconds since red is then a lower bound). A red read
    before and after them is the same red, its onset still seen."""
    R, G = LampColor.RED, LampColor.GREEN
    sm = SignalSmoother("g")
    for i in range(5):
        sm.update(LampReading(G, 1.0), i / 10)
    for i in range(5, 10):
        st = sm.blind(i / 10)
        assert st.color is G and st.pts == pytest.approx(i / 10)
    for i in range(10, 13):
        st = sm.update(LampReading(R, 1.0), i / 10)
    assert st.color is R and not st.onset_seen and st.since_pts == pytest.approx(1.0)
    # the next change, all of it seen: its onset is claimed again
    for i in range(13, 16):
        st = sm.update(LampReading(G, 1.0), i / 10)
    assert st.color is G and st.onset_seen
    # damage inside a phase whose colour is read again after it changes nothing
    sm2 = SignalSmoother("g")
    for i in range(5):
        sm2.update(LampReading(G, 1.0), i / 10)
    for i in range(5, 8):
        sm2.update(LampReading(R, 1.0), i / 10)
    sm2.blind(0.8)
    st = sm2.update(LampReading(R, 1.0), 0.9)
    assert st.color is R and st.onset_seen and st.since_pts == pytest.approx(0.5)


def test_the_board_does_not_read_a_head_on_a_damaged_picture() -> None:
    """A damaged picture's head region may show any colour (here a red smear over a green
    phase): the board carries the green on and the calibration check never sees the smear."""
    board = build_signal_board(_cal("video"), (100, 100))
    for f in _frames("green", 12):
        st = board.update(f)["g"]
    assert st.color is LampColor.GREEN
    for f in _frames("red", 18, start=12):
        st = board.update(Frame(f.stream_id, f.seq, f.pts, f.wall_time_ms, f.image, corrupt=True))[
            "g"
        ]
        assert st.color is LampColor.GREEN
    for f in _frames("red", 6, start=30):  # an RTSP frame carrying a flagged frame's damage
        carried = Frame(f.stream_id, f.seq, f.pts, f.wall_time_ms, f.image, damage_carried=True)
        assert board.update(carried)["g"].color is LampColor.GREEN
    assert board.heads[0].colors_seen == {LampColor.GREEN}
    # read again once the pictures are whole: the red is taken, its onset not claimed
    for f in _frames("red", 4, start=30):
        st = board.update(f)["g"]
    assert st.color is LampColor.RED and not st.onset_seen
