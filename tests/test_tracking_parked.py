"""A standing vehicle keeps its track id when ByteTrack loses it and finds it again
(``pipeline/tracking/parked.py``): one event for a parked car hidden by passing traffic, not
one per sighting; a car that drove is finished as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sharpeyes.api.node.camera import tracker_of
from sharpeyes.pipeline.config import CameraConfig, EventsConfig, TrackerConfig
from sharpeyes.pipeline.events import TrackEventBuilder
from sharpeyes.pipeline.tracking import ByteTracker
from sharpeyes.pipeline.tracking.parked import HOLD_S, ParkedContinuity
from sharpeyes.pipeline.types import Detections, EventType, Frame, Tracks
from tests.test_tracking import MV, PERSON, box, dets, ids_of

FPS = 10.0
PARKED = box(200.0, 300.0, 80.0, 50.0)
EMPTY = dets([])


def tracker(hold_s: float = HOLD_S) -> ParkedContinuity:
    return ParkedContinuity(ByteTracker(TrackerConfig()), hold_s=hold_s)


def play(
    trk: ParkedContinuity,
    scenes: list[tuple[float, Detections]],
    start: float = 0.0,
    picture: tuple[int, int] | None = None,
) -> tuple[list[Tracks], list[int], float]:
    """``(seconds, detections)`` scenes played at 10 fps: every frame's tracks, every id
    reported finished, and the time after the last frame."""
    out: list[Tracks] = []
    finished: list[int] = []
    t = start
    image = None if picture is None else np.zeros((picture[1], picture[0], 3), np.uint8)
    for seconds, d in scenes:
        for _ in range(round(seconds * FPS)):
            out.append(trk.update(d, t, 0, image))
            finished += trk.pop_finished()
            t += 1.0 / FPS
    return out, finished, t


def ids(frames: list[Tracks]) -> set[int]:
    return {i for f in frames for i in ids_of(f)}


def test_a_parked_car_hidden_for_a_while_keeps_its_id() -> None:
    trk = tracker()
    seen, finished, _ = play(trk, [(3.0, dets([PARKED])), (8.0, EMPTY), (3.0, dets([PARKED]))])
    assert len(ids(seen)) == 1 and finished == []  # 8 s hidden: ByteTrack's buffer is 1.5 s
    assert trk.taken_over == 1
    inner = ByteTracker(TrackerConfig())  # without: two tracks, the first finished
    ids_inner: set[int] = set()
    t = 0.0
    for seconds, d in [(3.0, dets([PARKED])), (8.0, EMPTY), (3.0, dets([PARKED]))]:
        for _ in range(round(seconds * FPS)):
            ids_inner |= set(ids_of(inner.update(d, t)))
            t += 0.1
    assert len(ids_inner) == 2


def test_a_parked_car_gone_for_good_is_finished_after_the_hold() -> None:
    trk = tracker(hold_s=5.0)
    seen, finished, t = play(trk, [(3.0, dets([PARKED])), (4.0, EMPTY)])
    assert finished == []  # still held
    _, later, _ = play(trk, [(3.0, EMPTY)], start=t)
    assert later == list(ids(seen))


def test_a_car_that_drove_is_finished_at_once_and_gives_its_id_to_nobody() -> None:
    trk = tracker()
    drive = [dets([box(100.0 + 30.0 * k, 300.0, 80.0, 50.0)]) for k in range(20)]
    seen: list[Tracks] = []
    finished: list[int] = []
    t = 0.0
    for d in drive:
        seen.append(trk.update(d, t))
        finished += trk.pop_finished()
        t += 0.1
    _, later, t = play(trk, [(3.0, EMPTY)], start=t)
    assert later == list(ids(seen))  # finished when ByteTrack ends it
    # a car first seen standing where the moving one was last seen is another car
    parked, _, _ = play(trk, [(2.0, dets([box(100.0 + 30.0 * 19, 300.0, 80.0, 50.0)]))], start=t)
    assert ids(parked).isdisjoint(ids(seen))


def test_only_the_same_place_and_kind_take_a_held_id() -> None:
    trk = tracker()
    first, _, t = play(trk, [(3.0, dets([PARKED])), (4.0, EMPTY)])
    # a car standing two lengths away, and a person on the spot: new tracks
    other, _, t = play(trk, [(2.0, dets([box(360.0, 300.0, 80.0, 50.0)]))], start=t)
    person, _, t = play(trk, [(2.0, dets([PARKED], cls=0, kind=PERSON))], start=t)
    assert ids(other).isdisjoint(ids(first)) and ids(person).isdisjoint(ids(first))
    again, _, _ = play(trk, [(2.0, dets([PARKED]))], start=t)
    assert ids(again) == ids(first)
    assert MV != PERSON


def test_a_vehicle_a_side_of_the_picture_cuts_is_not_known_to_stand() -> None:
    """A checkpoint's near field (the Beijing clip at 5 pictures a second): a car crawling in
    fills the picture from top to bottom for seconds — its box stays put while it drives — and
    the next car's frame-filling box lies where it was. Two cars, two ids."""
    picture = (640, 360)
    first, second = box(285.0, 180.0, 566.0, 360.0), box(392.0, 142.0, 470.0, 282.0)
    trk = tracker()
    a, _, t = play(trk, [(4.0, dets([first])), (2.5, EMPTY)], picture=picture)
    b, _, _ = play(trk, [(2.0, dets([second]))], start=t, picture=picture)
    assert ids(a).isdisjoint(ids(b)) and trk.taken_over == 0
    # a car standing at one side of the picture (parked at the kerb where the picture ends), or
    # inside it, is held and found again: the rule's controls
    for standing in (box(60.0, 300.0, 120.0, 60.0), box(285.0, 180.0, 400.0, 240.0)):
        trk = tracker()
        a, _, t = play(trk, [(4.0, dets([standing])), (2.5, EMPTY)], picture=picture)
        b, _, _ = play(trk, [(2.0, dets([standing]))], start=t, picture=picture)
        assert ids(a) == ids(b) and trk.taken_over == 1


def painted(*cars: tuple[list[float], tuple[int, int, int]]) -> np.ndarray:
    """A 640 × 480 grey road with each box painted its BGR colour."""
    image = np.full((480, 640, 3), 110, np.uint8)
    for b, colour in cars:
        image[int(b[1]) : int(b[3]), int(b[0]) : int(b[2])] = colour
    return image


def film(
    trk: ParkedContinuity, scenes: list[tuple[float, Detections, np.ndarray]], start: float = 0.0
) -> tuple[list[Tracks], float]:
    """``(seconds, detections, image)`` scenes at 10 fps: every frame's tracks, the time after."""
    out: list[Tracks] = []
    t = start
    for seconds, d, image in scenes:
        for _ in range(round(seconds * FPS)):
            out.append(trk.update(d, t, 0, image))
            trk.pop_finished()
            t += 1.0 / FPS
    return out, t


RED, WHITE = (40, 40, 200), (235, 235, 235)


def test_a_car_that_drove_up_and_waited_keeps_its_id_when_seen_again() -> None:
    """A car that drove up to a queue and stood there 1.5 s before a bus hid it: what it did in
    its last seconds decides, not that it moved once."""
    trk = tracker()
    road = painted()
    drive = [(0.1, dets([box(100.0 + 10.0 * k, 300.0, 80.0, 50.0)]), road) for k in range(20)]
    stop = box(290.0, 300.0, 80.0, 50.0)
    here = painted((stop, RED))
    a, t = film(trk, [*drive, (1.5, dets([stop]), here), (6.0, EMPTY, road)])
    b, _ = film(trk, [(2.0, dets([stop]), here)], start=t)
    assert ids(a) == ids(b) and trk.taken_over == 1


def test_a_car_being_hidden_is_still_standing() -> None:
    """Its box shrinks as a bus slides in front of it before the detector loses it."""
    trk = tracker()
    covered = [box(200.0 - 4.0 * k, 300.0, 80.0 - 8.0 * k, 50.0) for k in range(5)]
    here = painted((PARKED, RED))
    a, t = film(
        trk,
        [(3.0, dets([PARKED]), here)]
        + [(0.1, dets([c]), here) for c in covered]
        + [(6.0, EMPTY, painted())],
    )
    b, _ = film(trk, [(2.0, dets([PARKED]), here)], start=t)
    assert ids(a) == ids(b) and trk.taken_over == 1


def test_another_car_standing_where_a_held_one_stood_is_another_car() -> None:
    """A white car found where a red one stood and was lost: the place alone does not make it
    the same vehicle; the same red car there does."""
    for colour, same in ((WHITE, False), ((45, 38, 205), True)):
        trk = tracker()
        a, t = film(trk, [(3.0, dets([PARKED]), painted((PARKED, RED))), (4.0, EMPTY, painted())])
        b, _ = film(trk, [(2.0, dets([PARKED]), painted((PARKED, colour)))], start=t)
        assert (ids(a) == ids(b)) is same and trk.taken_over == int(same)


def test_a_car_driving_through_where_a_held_one_stood_is_another_car() -> None:
    """The red car parked at the kerb is hidden; a car of a near red drives past the spot just
    as it is uncovered, its track opening right over the held box. It moved in the pictures
    before (the tracker opens a track after a few), so it needs a closer look than one found
    standing there: another car. The parked car itself driving off when uncovered (the queue
    moved while it was hidden) is the same car, and so is the near red found standing there
    (within the looks' ordinary limits: the light may have changed)."""
    near_red = (40, 46, 200)  # Δ chroma 2.0 in 8-bit Lab: under 3, over 3 × MOVING_LOOK
    for speed, colour, same in ((30.0, near_red, False), (30.0, RED, True), (0.0, near_red, True)):
        trk = tracker()
        a, t = film(trk, [(3.0, dets([PARKED]), painted((PARKED, RED))), (4.0, EMPTY, painted())])
        passing = [
            (0.1, dets([b]), painted((b, colour)))
            for k in range(-1, 6)  # first seen a step before the spot, opened on it
            if (b := box(200.0 + speed * k, 300.0, 80.0, 50.0))  # px a picture, 10 a second
        ]
        b_frames, _ = film(trk, passing, start=t)
        assert (ids(a) == ids(b_frames)) is same, (speed, colour)
        assert trk.taken_over == int(same)


def test_a_reset_reports_every_id_finished_held_ones_too() -> None:
    trk = tracker()
    _, _, t = play(trk, [(3.0, dets([PARKED])), (3.0, EMPTY)])  # held
    driving, _, _ = play(trk, [(0.5, dets([box(500.0, 100.0)]))], start=t)
    trk.reset()
    assert sorted(trk.pop_finished()) == [1, *sorted(ids(driving))]
    assert trk.pop_finished() == []


def test_one_event_for_a_parked_car_seen_three_times() -> None:
    """Through the camera's composition root (``tracker_of``) and the event builder."""
    off = tracker_of(CameraConfig.model_validate({"id": "c", "tracker": {"parked_hold_s": 0}}))
    assert isinstance(off, ByteTracker)
    trk = tracker_of(CameraConfig.model_validate({"id": "c", "url": "x.mp4"}))
    assert isinstance(trk, ParkedContinuity)  # on by default
    builder = TrackEventBuilder(
        "c",
        EventsConfig.model_validate({"kinds": ["motor_vehicle"]}),
        class_names=("person", "bicycle", "car"),
        class_codes={2: "K30"},
    )
    image = np.zeros((480, 640, 3), np.uint8)
    events = []
    t = 0.0
    for seconds, d in [
        (3.0, dets([PARKED])),
        (5.0, EMPTY),
        (3.0, dets([PARKED])),
        (10.0, EMPTY),
        (3.0, dets([PARKED])),
    ]:
        for _ in range(round(seconds * FPS)):
            frame = Frame("c", round(t * FPS), t, 1_700_000_000_000 + round(t * 1000), image)
            events += builder.update(frame, trk.update(d, t))
            finished = trk.pop_finished()
            if finished:
                events += builder.finish(finished)
            t += 0.1
    events += builder.flush()
    passes = [e for e in events if e.type is EventType.VEHICLE_PASS]
    assert len(passes) == 1, passes
    assert passes[0].first_pts < 0.5 and passes[0].last_pts > 20.0


@pytest.mark.integration
def test_the_parked_car_of_the_topview_clip_is_one_event(
    sample_videos: Path, tmp_path: Path
) -> None:
    """intersection_topview: a car parked at the left edge, hidden twice by passing traffic,
    then driving off up — three tracks and three vehicle_pass events before; one now, from its
    first sighting to its leaving, and ``analyze`` says so."""
    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video

    clip = sample_videos / "intersection_topview_640x480.mp4"
    cam = CameraConfig.model_validate(
        {"id": "topview", "url": str(clip), "tracker": {"parked_hold_s": HOLD_S}}
    )
    result = analyze_video(AnalyzeOptions(clip, out=tmp_path, progress=False, camera=cam))
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]

    def at_the_spot(e: dict[str, Any]) -> bool:  # first seen where the car stood, before it left
        t, x, y = e["trajectory"][0]
        return bool(e["type"] == "vehicle_pass" and x < 70 and y > 360 and t < 22.0)

    parked = [e for e in events if at_the_spot(e)]
    assert len(parked) == 1, [(e["track_id"], e["first_pts"], e["last_pts"]) for e in parked]
    assert parked[0]["first_pts"] < 1.0 and parked[0]["last_pts"] > 29.0
    assert parked[0]["direction"] == "up"  # it drove off at 21.5 s
    assert result.summary.parked_seen_again >= 2
    assert "standing vehicles hidden by traffic and seen again kept their track" in "\n".join(
        result.summary_lines()
    )


@pytest.mark.integration
def test_the_cars_waiting_across_the_hanoi_crossing_are_one_event_each(
    sample_videos: Path, tmp_path: Path
) -> None:
    """intersection_hanoi_b (its sample camera): a red car waiting on the far side for 30 s
    and a white taxi standing there all minute are hidden again and again by the motorcycles
    crossing in front. With the tracker alone the car gave events 0.2–30.3 s and 39.8–54.8 s
    and the taxi 0.2–48.5 s and 52.7–59.8 s; round 29's rule (the whole life standing, the
    last box) merged the car but not the taxi, whose box had shifted a little in 48 s and
    shrank as it was being hidden. One each now, from the first picture on."""
    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
    from sharpeyes.pipeline.config import load_camera_config
    from tests.conftest import REPO

    clip = sample_videos / "intersection_hanoi_b_640x480.mp4"
    cam = load_camera_config(REPO / "sample_videos" / "intersection_hanoi_b.yaml")
    cam = cam.model_copy(update={"url": str(clip)})
    result = analyze_video(AnalyzeOptions(clip, out=tmp_path, progress=False, camera=cam))
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]

    def starting_at(x: float, y: float) -> list[dict[str, Any]]:
        return [
            e
            for e in events
            if e["type"] == "vehicle_pass"
            and e["class_name"] == "car"
            and abs(e["trajectory"][0][1] - x) < 15
            and abs(e["trajectory"][0][2] - y) < 15
        ]

    red, taxi = starting_at(335.0, 162.0), starting_at(253.0, 172.5)
    first = [e for e in red if e["first_pts"] < 1.0]
    assert len(first) == 1 and first[0]["last_pts"] > 50.0, first
    assert first[0]["direction"] == "down-left"  # it drove off towards the camera at last
    # before: seen again at 39.8 s as a new track (and event) at the same spot, driving off
    assert [e["first_pts"] for e in red if 35.0 < e["first_pts"] < 44.0] == []
    assert [e["last_pts"] > 59.0 for e in taxi if e["first_pts"] < 60.0] == [True], taxi
    assert result.summary.parked_seen_again >= 4
