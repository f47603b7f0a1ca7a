"""Vehicles found by their plates where no vehicle track holds them
(``pipeline/structuring/plate_first.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from sharpeyes.pipeline.config import CameraConfig, StructuringConfig
from sharpeyes.pipeline.structuring.plate_first import (
    ID_BASE,
    PlateFirst,
    join_tracks,
    vehicle_box,
)
from sharpeyes.pipeline.structuring.plate_fusion import PlateVote
from sharpeyes.pipeline.structuring.vehicle import VehicleStructuring
from sharpeyes.pipeline.types import Frame, ObjectKind, Tracks
from tests.conftest import need

CAR = int(ObjectKind.MOTOR_VEHICLE)
SHARED = Path(__file__).resolve().parents[2] / "shared"
BEIJING = SHARED / "sample_videos" / "plates_closeup_beijing_640x360.mp4"


@dataclass(frozen=True)
class _Raw:
    box: NDArray[np.float32]
    score: float
    layers: int = 1


class _Finder:
    """A plate detector that finds the plates scripted for each picture (by pts)."""

    def __init__(self, script: dict[float, list[tuple[float, float, float, float, float]]]):
        self.script = {round(k, 3): v for k, v in script.items()}
        self.calls: list[float] = []
        self.pts = 0.0
        self.min_text_px = 50.0  # as the plate reader's
        self.layers = 1

    def detect(self, image_bgr: NDArray[np.uint8]) -> Sequence[_Raw]:
        self.calls.append(self.pts)
        rows = self.script.get(round(self.pts, 3), [])
        return [_Raw(np.array(r[:4], np.float32), r[4], self.layers) for r in rows]


def _frame(pts: float) -> Frame:
    return Frame("cam", round(pts * 25), pts, round(pts * 1000), np.zeros((360, 640, 3), np.uint8))


def _tracks(*rows: tuple[int, tuple[float, float, float, float]]) -> Tracks:
    n = len(rows)
    return Tracks(
        xyxy=np.array([b for _, b in rows], np.float32).reshape(n, 4),
        confidence=np.full(n, 0.8, np.float32),
        class_id=np.full(n, 2, np.int64),
        kind=np.full(n, CAR, np.int8),
        track_id=np.array([t for t, _ in rows], np.int64),
        detected=np.ones(n, np.bool_),
    )


def _step(pf: PlateFirst, finder: _Finder, pts: float, tracks: Tracks | None = None) -> Tracks:
    finder.pts = pts
    return pf.update(_frame(pts), tracks if tracks is not None else _tracks())


def _plate(
    y: float, x: float = 240.0, w: float = 160.0, score: float = 0.9
) -> tuple[float, float, float, float, float]:
    return (x, y, x + w, y + w / 3, score)


def _handing(
    script: dict[float, list[tuple[float, float, float, float, float]]],
) -> tuple[PlateFirst, _Finder, list[tuple[int, int]]]:
    """A plate-first search of every picture over ``script``, and the handovers it makes."""
    finder = _Finder(script)
    moved: list[tuple[int, int]] = []
    pf = PlateFirst(
        finder, class_id=2, search_every_s=0.0, on_handover=lambda a, b: moved.append((a, b))
    )
    return pf, finder, moved


def test_a_plate_no_vehicle_holds_becomes_a_vehicle_track_and_ends() -> None:
    """A plate coming down the picture, 160 px wide, no vehicle track around it: a track from
    its second picture, its box the vehicle around the plate, ended and finished once lost."""
    script = {round(k * 0.04, 3): [_plate(20 + 12 * k)] for k in range(10)}
    finder = _Finder(script)
    pf = PlateFirst(finder, class_id=2, search_every_s=0.0)
    first = _step(pf, finder, 0.0)
    assert len(first) == 0  # one picture is not yet a track
    rows = _step(pf, finder, 0.04)
    assert len(rows) == 1 and int(rows.track_id[0]) == ID_BASE
    assert int(rows.kind[0]) == CAR and int(rows.class_id[0]) == 2 and bool(rows.detected[0])
    plate = np.array(_plate(32)[:4], np.float32)
    assert np.allclose(rows.xyxy[0], vehicle_box(plate, 640, 360))
    x1, y1, x2, y2 = rows.xyxy[0]
    assert x1 < plate[0] and x2 > plate[2] and y1 < plate[1] and y2 > plate[3]
    for k in range(2, 10):
        rows = _step(pf, finder, k * 0.04)
        assert [int(t) for t in rows.track_id] == [ID_BASE]  # one track all along
    assert pf.pop_finished() == []
    pts = 0.36
    while not (done := pf.pop_finished()) and pts < 3.0:
        pts += 0.04
        _step(pf, finder, pts)
    assert done == [ID_BASE]
    assert 0.36 + pf.lost_s < pts <= 0.36 + pf.lost_s + pf.handover_s + 0.05
    assert pf.stats.tracks == 1 and pf.stats.handed == 0


def test_plates_inside_tracked_vehicles_weak_or_small_ones_make_no_track() -> None:
    """A plate inside a vehicle track's box is that vehicle's; a plate scored under 0.6 or
    narrower than the reader can read makes nothing either."""
    script = {
        round(k * 0.04, 3): [
            _plate(100, x=50),  # inside the tracked car
            _plate(100, x=400, score=0.45),  # too weak
            (300.0, 250.0, 340.0, 262.0, 0.9),  # 40 px: too small to read
        ]
        for k in range(6)
    }
    finder = _Finder(script)
    pf = PlateFirst(finder, class_id=2, search_every_s=0.0, min_width_px=50.0)
    car = _tracks((7, (0.0, 0.0, 260.0, 180.0)))
    for k in range(6):
        assert len(_step(pf, finder, k * 0.04, car)) == 0
    assert pf.stats.orphans == 0 and pf.pop_finished() == []


def test_a_plate_over_the_roof_of_a_tracked_car_is_not_that_cars() -> None:
    """The next car's plate, seen in the upper part of the tracked car ahead's box (over its
    roof), is not held by it: a plate track of its own."""
    script = {round(k * 0.04, 3): [_plate(30, x=50)] for k in range(4)}
    finder = _Finder(script)
    pf = PlateFirst(finder, class_id=2, search_every_s=0.0)
    ahead = _tracks((7, (0.0, 20.0, 260.0, 360.0)))
    rows = [len(_step(pf, finder, k * 0.04, ahead)) for k in range(4)]
    assert rows == [0, 1, 1, 1]


def test_a_plate_track_is_handed_to_the_vehicle_track_that_opens_around_it() -> None:
    """The detector starts tracking the car whose plate made a track: the plate track ends
    without an event of its own (``handed``) and its reads go to the vehicle's track."""
    script = {round(k * 0.04, 3): [_plate(20 + 12 * k)] for k in range(8)}
    pf, finder, moved = _handing(script)
    for k in range(4):
        _step(pf, finder, k * 0.04)
    car = _tracks((3, (150.0, 0.0, 520.0, 150.0)))
    rows = _step(pf, finder, 0.16, car)
    assert len(rows) == 0
    assert moved == [(ID_BASE, 3)] and pf.handed(ID_BASE) and not pf.handed(3)
    assert pf.pop_finished() == [ID_BASE]
    _step(pf, finder, 0.20, car)
    assert pf.stats.handed == 1 and pf.pop_finished() == []


def test_a_lost_plate_track_is_handed_to_a_vehicle_track_born_in_its_place() -> None:
    """The plate leaves at the bottom edge; a moment later the detector opens a track on the
    vehicle's rear half where the plate's vehicle was: one vehicle, handed over. A vehicle
    track that was there all along, elsewhere, gets nothing."""
    script = {round(k * 0.04, 3): [_plate(150 + 20 * k)] for k in range(6)}
    pf, finder, moved = _handing(script)
    other = (9, (560.0, 0.0, 640.0, 80.0))
    for k in range(6):
        _step(pf, finder, k * 0.04, _tracks(other))
    pts = 0.2
    for _ in range(20):  # lost; not yet handed over or finished
        pts += 0.04
        _step(pf, finder, pts, _tracks(other))
        if pts > 0.2 + pf.lost_s + 0.05:
            break
    assert moved == [] and pf.pop_finished() == []
    _step(pf, finder, pts + 0.04, _tracks(other, (4, (170.0, 20.0, 560.0, 360.0))))
    assert moved == [(ID_BASE, 4)] and pf.pop_finished() == [ID_BASE]


def test_a_plate_that_left_the_picture_is_handed_over_without_waiting_to_be_lost() -> None:
    """The plate's motion takes it out at the bottom edge and the tracker holds the rest of the
    vehicle for only 0.12 s right after (the 2× zoom: 15.04–15.2 s, a second event of 京M76967):
    handed over while that track lives, not ``lost_s`` later when its event is out. While the
    plate is still over half in the picture, a track opening elsewhere is not given it."""
    script = {round(k * 0.04, 3): [_plate(150 + 20 * k)] for k in range(6)}
    pf, finder, moved = _handing(script)
    for k in range(6):
        _step(pf, finder, k * 0.04)
    _step(pf, finder, 0.24, _tracks((4, (170.0, 20.0, 560.0, 360.0))))  # plate 270–323: in
    assert moved == []
    _step(pf, finder, 0.4, _tracks((4, (170.0, 20.0, 560.0, 360.0))))  # 350–403: gone
    assert moved == [(ID_BASE, 4)] and pf.handed(ID_BASE) and pf.pop_finished() == [ID_BASE]


def test_a_camera_whose_vehicles_are_all_tracked_probes_every_2_s() -> None:
    """Probes that find no plate outside the tracked vehicles — none at all, or one inside a
    tracked car — come 1 s, then 2 s apart; a plate no vehicle holds brings the search to every
    picture, and after it has gone, probes 0.5 s apart again."""
    finder = _Finder({})
    pf = PlateFirst(finder, class_id=2, search_every_s=0.0)
    for k in range(25 * 20):  # 20 s at 25 pictures a second, nothing
        _step(pf, finder, k * 0.04)
    gaps = list(np.round(np.diff(finder.calls), 2))
    assert gaps[:2] == [1.0, 2.0] and set(gaps[2:]) == {2.0}
    car = _tracks((7, (0.0, 0.0, 260.0, 180.0)))
    finder.script = {round(20.0 + k * 0.04, 3): [_plate(100, x=50)] for k in range(250)}
    start = len(finder.calls)
    for k in range(250):  # 10 s with a tracked car's plate in view: still every 2 s
        _step(pf, finder, 20.0 + k * 0.04, car)
    assert set(np.round(np.diff(finder.calls[start - 1 :]), 2)) == {2.0}
    last = finder.calls[-1]
    finder.script = {round(last + 2.0 + k * 0.04, 3): [_plate(100, x=300)] for k in range(10)}
    start = len(finder.calls)
    for k in range(100):  # a plate no track holds, for 10 pictures, then nothing
        _step(pf, finder, last + 2.0 + k * 0.04)
    searched = np.round(finder.calls[start:], 2)
    assert searched[0] == pytest.approx(last + 2.0)
    # every picture while the plate track lives and waits for a handover, then 0.5, 1, 2 s
    busy = list(np.round(np.diff(searched), 2))
    tail = [g for g in busy if g > 0.04]
    assert busy[: len(busy) - len(tail)] == [0.04] * (len(busy) - len(tail))
    assert tail[:2] == [0.52, 1.0]
    assert not pf.active


def test_a_wide_vehicle_no_track_holds_makes_probes_come_every_half_second() -> None:
    """A detection 300 px wide that no track holds (a cut-off front the tracker left out):
    probes every 0.5 s; the same detection inside a tracked box, or a narrow one, does not."""
    finder = _Finder({})
    pf = PlateFirst(finder, class_id=2, search_every_s=0.0, min_width_px=50.0)
    wide = np.array([[100.0, 50.0, 400.0, 350.0]], np.float32)
    narrow = np.array([[100.0, 50.0, 250.0, 350.0]], np.float32)
    car = _tracks((7, (90.0, 40.0, 410.0, 360.0)))
    for k in range(100):  # 4 s, the wide one untracked
        finder.pts = k * 0.04
        pf.update(_frame(k * 0.04), _tracks(), (), wide)
    assert set(np.round(np.diff(finder.calls), 2)) == {0.52}
    for dets, tracks in ((wide, car), (narrow, _tracks())):
        start = len(finder.calls)
        base = 100.0 * (2 if dets is narrow else 1)
        for k in range(250):  # 10 s
            finder.pts = base + k * 0.04
            pf.update(_frame(base + k * 0.04), tracks, (), dets)
        gaps = np.round(np.diff(finder.calls[start:]), 2)
        assert len(finder.calls) - start <= 7 and set(gaps[1:]) == {2.0}, gaps


def test_a_live_plate_track_is_searched_for_every_0_2_s_not_every_picture() -> None:
    """At 25 pictures a second a plate track is followed with a search every 0.2 s (the plate
    reads' interval); between searches its row is there, not detected."""
    script = {round(k * 0.04, 3): [_plate(20 + 4 * k)] for k in range(30)}
    finder = _Finder(script)
    pf = PlateFirst(finder, class_id=2)
    detected = []
    for k in range(30):
        rows = _step(pf, finder, k * 0.04)
        detected.append(bool(rows.detected[0]) if len(rows) else None)
    assert set(np.round(np.diff(finder.calls), 2)) == {0.2}
    assert detected[5] is True and detected[6:10] == [False] * 4 and detected[10] is True


def test_join_tracks_pads_class_votes() -> None:
    a = _tracks((1, (0.0, 0.0, 10.0, 10.0)))
    a = Tracks(
        a.xyxy,
        a.confidence,
        a.class_id,
        a.kind,
        a.track_id,
        a.detected,
        np.ones((1, 3), np.float32),
    )
    b = _tracks((ID_BASE, (5.0, 5.0, 20.0, 20.0)))
    joined = join_tracks(a, b)
    assert [int(t) for t in joined.track_id] == [1, ID_BASE]
    assert joined.class_votes.shape == (2, 3) and joined.votes_of(1) == {}
    assert join_tracks(a, _tracks()) is a


class _NoReader:
    def read(self, *a: object, **k: object) -> list[object]:
        return []


class _Inner:
    def update(self, frame: Frame, tracks: Tracks) -> list[object]:
        return []

    def finish(self, track_ids: Sequence[int]) -> list[object]:
        return []

    def flush(self) -> list[object]:
        return []


def test_adopt_moves_a_plate_tracks_reads_to_the_vehicle_track() -> None:
    stage = VehicleStructuring(_Inner(), _NoReader(), StructuringConfig(enabled=True))  # type: ignore[arg-type]
    stage._observe(_frame(0.0), _tracks((ID_BASE, (0.0, 0.0, 300.0, 300.0))))
    stage._observe(_frame(0.0), _tracks((5, (0.0, 0.0, 300.0, 300.0))))
    plate_state = stage._tracks[ID_BASE]
    plate_state.votes += [PlateVote("京J27373", "blue", 0.99)] * 3
    plate_state.colors["white"] = 2.0
    stage._tracks[5].votes.append(PlateVote("京J27373", "blue", 0.95))
    stage.adopt(ID_BASE, 5)
    assert ID_BASE not in stage._tracks
    merged = stage._tracks[5]
    assert len(merged.votes) == 4 and merged.reads == 2  # one read each
    assert merged.colors == {}  # colours voted on the box estimated around the plate stay behind
    stage.adopt(123, 5)  # a track the stage never saw: nothing happens
    assert len(stage._tracks[5].votes) == 4


def test_adopt_counts_a_picture_both_tracks_read_once() -> None:
    """The tracker's new track read its earlier pictures, one of which the plate track had read
    too: that picture is one piece of evidence (CRF 38 Beijing: 24.44 s read by both)."""
    stage = VehicleStructuring(_Inner(), _NoReader(), StructuringConfig(enabled=True))  # type: ignore[arg-type]
    stage._observe(_frame(0.0), _tracks((ID_BASE, (0.0, 0.0, 300.0, 300.0))))
    stage._observe(_frame(0.0), _tracks((5, (0.0, 0.0, 300.0, 300.0))))
    stage._tracks[ID_BASE].votes += [
        PlateVote("湘L87BD2", "blue", 0.99, 24.2),
        PlateVote("湘L87BD2", "blue", 0.99, 24.44),
    ]
    stage._tracks[ID_BASE].reads = 2
    stage._tracks[5].votes += [
        PlateVote("湘L87BD2", "blue", 0.99, 24.44),
        PlateVote("京L87802", "blue", 0.9, 24.64),
    ]
    stage._tracks[5].reads = 2
    stage.adopt(ID_BASE, 5)
    merged = stage._tracks[5]
    assert [v.pts for v in merged.votes] == [24.2, 24.44, 24.64] and merged.reads == 3


def _zoomed_camera(seg: Path, mode: str) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": f"kakou_zoom_{mode}",
            "url": str(seg),
            "analysis_fps": 10.0,
            "structuring": {"enabled": True, "plate_first": mode},
            "events": {"kinds": ["motor_vehicle"]},
        }
    )


@pytest.mark.skipif(not BEIJING.is_file(), reason="shared Beijing clip missing")
def test_a_zoomed_checkpoint_reads_the_plate_of_a_car_it_cannot_track(tmp_path: Path) -> None:
    """The Beijing clip zoomed 1.5× (fronts larger than the picture), frames 690–790: the
    vehicle detector gives 京J27373's cut-off front no track, so without plate-first no plate
    is stated; with it (``on``: searched every 0.2 s, so that the 4 s segment does not hang
    on when the first probe comes) the plate is read — by ``analyze``, ``run`` and the cluster
    alike."""
    from tests.equivalence import via_analyze
    from tests.test_structuring_equivalence import assert_plates_everywhere, stored
    from tests.test_structuring_eval import _segment

    need(BEIJING.is_file(), "Beijing clip")
    seg = tmp_path / "zoom.mp4"
    _segment(BEIJING, seg, 690, 790, zoom=1.5)
    off = _zoomed_camera(seg, "off")
    via_analyze(off, tmp_path / "off")
    assert [e.plate for e in stored(tmp_path / "off" / "events.db", off.id) if e.plate] == []
    assert_plates_everywhere(_zoomed_camera(seg, "on"), tmp_path, ["京J27373"])


def test_a_plate_missed_for_a_while_is_the_same_track_when_found_again() -> None:
    """Missed for 0.7 s (longer than ``lost_s``) and found again where its motion puts it:
    one track, one id; corrupt pictures in between age nothing."""
    script = {round(k * 0.04, 3): [_plate(20 + 4 * k)] for k in range(40) if not 12 <= k < 30}
    finder = _Finder(script)
    pf = PlateFirst(finder, class_id=2, search_every_s=0.0)
    for k in range(40):
        finder.pts = k * 0.04
        frame = _frame(k * 0.04)
        if 30 <= k < 35:  # five corrupt pictures: no search, nothing ends
            frame = Frame(
                "cam", frame.seq, frame.pts, frame.wall_time_ms, frame.image, corrupt=True
            )
        pf.update(frame, _tracks())
    ids: set[int] = set()
    pts = 1.56
    while pts < 4.0:
        pts += 0.04
        ids.update(int(t) for t in _step(pf, finder, pts).track_id)
        ids.update(pf.pop_finished())
    assert ids == {ID_BASE} and pf.stats.tracks == 1


def test_a_stream_that_starts_over_ends_its_plate_tracks_and_forgets_the_trackers() -> None:
    """pts goes back (a file looped): the live plate track ends, and a tracked car's old box
    (10 s later in the old timeline) no longer hides a plate at the same place."""
    finder = _Finder({round(10.0 + k * 0.04, 3): [_plate(100, x=50)] for k in range(5)})
    pf = PlateFirst(finder, class_id=2, search_every_s=0.0)
    car = _tracks((7, (0.0, 0.0, 260.0, 180.0)))
    for k in range(5):
        _step(pf, finder, 10.0 + k * 0.04, car)
    finder.script = {round(1.0 + k * 0.04, 3): [_plate(100, x=50)] for k in range(5)}
    rows = [len(_step(pf, finder, 1.0 + k * 0.04)) for k in range(5)]
    assert rows[1:] == [1, 1, 1, 1]  # a track of its own from its second picture


def test_adopting_into_a_new_track_keeps_the_reads_not_the_estimated_boxs_quality() -> None:
    stage = VehicleStructuring(_Inner(), _NoReader(), StructuringConfig(enabled=True))  # type: ignore[arg-type]
    stage._observe(_frame(0.0), _tracks((ID_BASE, (0.0, 0.0, 640.0, 360.0))))
    assert stage._tracks[ID_BASE].best_quality > 0.0
    stage._tracks[ID_BASE].votes.append(PlateVote("京J27373", "blue", 0.99))
    stage._tracks[ID_BASE].colors["red"] = 3.0
    stage._tracks[ID_BASE].colour_votes = 4
    stage.adopt(ID_BASE, 8)
    state = stage._tracks[8]
    assert len(state.votes) == 1 and state.best_quality == 0.0 and state.class_votes == {}
    assert state.colors == {} and state.colour_votes == 0  # the track votes its own colour


def test_the_flow_meter_counts_a_handed_over_vehicle_once() -> None:
    """A plate track counted in its lane, then handed to the tracker's track of the same car:
    the lane counts one vehicle and the tracker's track carries the lane."""
    from sharpeyes.pipeline.flow import FlowMeter
    from tests.test_flow import config as flow_config
    from tests.test_flow import tracks as flow_tracks

    car = ObjectKind.MOTOR_VEHICLE
    meter = FlowMeter("cam", flow_config(), (1000, 800))
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % 10_000
    out = []
    for i in range(60):
        t = i / 10
        tid = ID_BASE if t < 2.0 else 4
        if i == 20:
            meter.adopt(ID_BASE, 4)
        out += meter.update(t, t0 + round(t * 1000), flow_tracks([(tid, 2.0, 59.0 - 5 * t, car)]))
    out += meter.end_of_stream()
    assert sum(r.count for r in out if r.lane_no == 1) == 1
    assert meter.lane_of(4) == 1


def test_auto_is_for_checkpoints_not_intersection_cameras() -> None:
    """``plate_first: auto`` searches on a checkpoint camera, not on an e-police intersection
    camera (its rules charge no plate-first track; its vehicles are far); ``on`` does."""
    from sharpeyes.api.node.camera import detection_policy, plate_first_search
    from sharpeyes.models.classes import COCO80_NAMES
    from sharpeyes.pipeline.config import load_camera_config
    from sharpeyes.pipeline.detection_filter import CameraDetectionFilter

    repo = Path(__file__).resolve().parents[1] / "sample_videos"
    stage = VehicleStructuring(_Inner(), _NoReader(), StructuringConfig(enabled=True))  # type: ignore[arg-type]
    finder = _Finder({})
    for name, mode, made in (
        ("plates_closeup_beijing.yaml", "auto", True),
        ("intersection_hanoi_b.yaml", "auto", False),
        ("intersection_hanoi_b.yaml", "on", True),
        ("plates_closeup_beijing.yaml", "off", False),
    ):
        cam = load_camera_config(repo / name)
        cam = cam.model_copy(
            update={"structuring": cam.structuring.model_copy(update={"plate_first": mode})}
        )
        post = CameraDetectionFilter.for_names(detection_policy(cam), COCO80_NAMES)
        pf = plate_first_search(cam, finder, post, stage)  # type: ignore[arg-type]
        assert (pf is not None) is made, (name, mode)
        if pf is not None:
            assert pf.class_id == COCO80_NAMES.index("car") and pf.always is (mode == "on")


def _moving_frames(
    rng: np.random.Generator, n: int, noise: float, block: bool
) -> list[NDArray[np.uint8]]:
    """``n`` 360 × 640 pictures of a grey road with Gaussian noise of σ ``noise``; with
    ``block``, a textured 400 × 300 px front drives down through them (a cut-off vehicle
    larger than a readable plate's 200 × 165)."""
    texture = rng.integers(20, 235, (300, 400, 3), dtype=np.uint8)
    out = []
    for k in range(n):
        img = np.full((360, 640, 3), 110.0) + rng.normal(0.0, noise, (360, 640, 3))
        if block:
            y = -250 + 20 * k
            top, bottom = max(0, y), min(360, y + 300)
            if bottom > top:
                img[top:bottom, 100:500] = texture[top - y : bottom - y]
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def test_the_motion_cue_fires_on_a_vehicle_sized_motion_no_track_holds() -> None:
    """A front larger than the picture's half drives through and no track holds it: the cue
    holds; the same front inside a tracked box, or camera noise of σ 3, 12 and 30 levels alone
    (the level follows the camera's noise), never."""
    from sharpeyes.pipeline.structuring.plate_first import MotionCue

    rng = np.random.default_rng(1)
    none = np.zeros((0, 4), np.float32)
    moving = _moving_frames(rng, 30, 3.0, True)
    cue = MotionCue(200.0, 165.0)
    held = [cue.observe(img, k * 0.04, none) for k, img in enumerate(moving)]
    assert sum(held[8:25]) >= 10, held
    tracked = np.array([[90.0, 0.0, 510.0, 360.0]], np.float32)
    cue = MotionCue(200.0, 165.0)
    assert not any(cue.observe(img, k * 0.04, tracked) for k, img in enumerate(moving))
    for sigma in (3.0, 12.0, 30.0):
        cue = MotionCue(200.0, 165.0)
        frames = _moving_frames(rng, 75, sigma, False)
        assert not any(cue.observe(img, k * 0.04, none) for k, img in enumerate(frames)), sigma
    small = MotionCue(200.0, 165.0)  # a 150 px wide thing moving: too small for a plate
    frames = _moving_frames(rng, 30, 3.0, True)
    for img in frames:
        img[:, 250:] = 110
    assert not any(small.observe(img, k * 0.04, none) for k, img in enumerate(frames))


def test_motion_no_track_holds_brings_searches_every_0_2_s_and_is_muted_in_vain() -> None:
    """While the motion cue holds, the picture is searched every 0.2 s (a zoomed checkpoint's
    plate is in view for 0.6 s); when those searches add up to 20 s of searching without a
    plate (100 searches: a swaying tree) the cue is muted and probes go back to doubling up to
    2 s. A short burst of motion in vain, then a quiet minute, does not mute it: the next
    vehicle's motion is searched every 0.2 s again."""
    rng = np.random.default_rng(2)
    cycle = _moving_frames(rng, 31, 3.0, True)  # a front through the picture every 1.24 s
    finder = _Finder({})
    pf = PlateFirst(finder, class_id=2)
    for k in range(25 * 40):  # 40 s of fronts that carry no plate
        pts = k * 0.04
        finder.pts = pts
        pf.update(Frame("cam", k, pts, round(pts * 1000), cycle[k % 31]), _tracks())
    calls = np.array(finder.calls)
    early = calls[calls < 25.0]
    gaps = np.round(np.diff(early), 2)
    assert len(early) >= 60 and float(np.median(gaps)) == 0.2, gaps  # probes alone: ≤ 14
    late = calls[calls > 30.0]
    assert pf.muted and len(late) <= 6 and set(np.round(np.diff(late), 2)) <= {1.0, 2.0}, late

    quiet = _moving_frames(rng, 31, 3.0, False)
    finder = _Finder({})
    pf = PlateFirst(finder, class_id=2)
    for k in range(25 * 70):  # 4 s of fronts, 60 s of road, 6 s of fronts
        pts = k * 0.04
        finder.pts = pts
        picture = cycle[k % 31] if pts < 4.0 or pts >= 64.0 else quiet[k % 31]
        pf.update(Frame("cam", k, pts, round(pts * 1000), picture), _tracks())
    calls = np.array(finder.calls)
    last = calls[calls >= 64.0]
    assert not pf.muted and len(last) >= 12, last
    assert float(np.median(np.round(np.diff(last), 2))) == 0.2, last


def test_a_plate_tracks_class_is_car_unless_its_plate_is_yellow() -> None:
    """A blue plate: "car" whatever the detections holding it say (the detector called cut-off
    fronts "bus"); a yellow single-layer plate (a large vehicle's front, GA 36): the class the
    detections holding it voted for other than car; with no such vote, car."""
    blue, yellow = (200, 60, 0), (0, 200, 230)  # BGR
    plate = _plate(100)
    x1, y1, x2, y2 = (int(v) for v in plate[:4])
    det = np.array([[150.0, 0.0, 500.0, 170.0]], np.float32)

    def run(colour: tuple[int, int, int], classes: list[int], layers: int = 1) -> int:
        finder = _Finder({round(k * 0.04, 3): [plate] for k in range(4)})
        pf = PlateFirst(finder, class_id=2, search_every_s=0.0)
        img = np.zeros((360, 640, 3), np.uint8)
        img[y1:y2, x1:x2] = colour
        out = 0
        for k in range(4):
            finder.pts, finder.layers = k * 0.04, layers
            rows = pf.update(
                Frame("cam", k, k * 0.04, k * 40, img),
                _tracks(),
                (),
                np.repeat(det, len(classes), 0),
                classes=np.array(classes, np.int64),
                scores=np.full(len(classes), 0.3, np.float32),
            )
            out = int(rows.class_id[0]) if len(rows) else -1
        return out

    assert run(blue, [5]) == 2  # the detector says bus; the blue plate says a small car
    assert run(yellow, [5]) == 5  # a large vehicle's plate and a bus detection: bus
    assert run(yellow, [2, 7, 7]) == 7  # truck, the large class the detections voted for
    assert run(yellow, []) == 2  # a yellow plate, no detection: nothing better than car
    assert run(yellow, [5], layers=2) == 2  # double-layer: a rear, a trailer, a motorcycle
    assert run((128, 128, 128), [5]) == 2  # no colour seen


def test_plate_colour_reads_the_background() -> None:
    from sharpeyes.pipeline.structuring.plate_first import plate_colour

    img = np.zeros((100, 200, 3), np.uint8)
    img[20:60, 20:180] = (200, 60, 0)
    img[30:50, 40:60] = 255  # a character
    box = np.array([20, 20, 180, 60], np.float32)
    assert plate_colour(img, box) == "blue"
    img[20:60, 20:180] = (0, 200, 230)
    assert plate_colour(img, box) == "yellow"
    img[20:60, 20:180] = (240, 240, 240)
    assert plate_colour(img, box) is None
    assert plate_colour(img, np.array([50, 50, 50, 50], np.float32)) is None
