"""``sharpeyes camera-check``: static geometry checks, observed-traffic checks and the picture.

Synthetic three-lane approach (vehicles drive up the image; lane 1 left): every mutation an
installer can make by hand must be reported (or refused by the config loader, exit 2), and the
clean config must be reported clean. The traffic check runs through the composition root on a
short generated clip whose vehicles come from a registered detector plug-in.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import yaml

from sharpeyes.api.commands import cli
from sharpeyes.api.commands.camera_check import default_lang
from sharpeyes.api.node.camera import register_detector
from sharpeyes.pipeline import geometry_check
from sharpeyes.pipeline.config import AnyDetectorConfig, CameraConfig
from sharpeyes.pipeline.contrast import RANGE_ON
from sharpeyes.pipeline.denoise import NOISE_ON
from sharpeyes.pipeline.geometry_check import (
    MIN_TRACKS,
    Finding,
    TrafficObserver,
    TrafficReport,
)
from sharpeyes.pipeline.protocols import DetectorInfo
from sharpeyes.pipeline.types import Detections, ImageBGR, ObjectKind, Tracks

SIZE = (640, 480)
STOP_Y, ENTRY_Y = 0.70, 0.56
LANE_X = (0.30, 0.4333, 0.5667, 0.70)
CENTRES = (0.3667, 0.50, 0.6333)


def _lane(i: int) -> dict[str, Any]:
    x0, x1, xc = LANE_X[i], LANE_X[i + 1], CENTRES[i]
    return {
        "id": f"l{i + 1}",
        "number": i + 1,
        "polygon": [[x0, 1.0], [x1, 1.0], [x1, STOP_Y], [x0, STOP_Y]],
        "travel": [[xc, 0.95], [xc, 0.62]],
        "movements": {"straight": "main"},
    }


def base_config() -> dict[str, Any]:
    return {
        "id": "cc",
        "intersection": {
            "signal_groups": [
                {"id": "main", "source": "video"},
                {"id": "ped", "kind": "pedestrian", "source": "external"},
            ],
            "signal_heads": [
                {"id": "h1", "group": "main", "region": [[0.86, 0.06], [0.89, 0.18]]},
            ],
            "approaches": [
                {
                    "id": "south",
                    "stop_line": [[LANE_X[0], STOP_Y], [LANE_X[3], STOP_Y]],
                    "entry_line": [[0.25, ENTRY_Y], [0.75, ENTRY_Y]],
                    "lanes": [_lane(0), _lane(1), _lane(2)],
                }
            ],
            "crosswalks": [
                {
                    "id": "cw",
                    "polygon": [[0.22, 0.58], [0.78, 0.58], [0.78, 0.68], [0.22, 0.68]],
                    "axis": [[0.25, 0.63], [0.75, 0.63]],
                    "signal_group": "ped",
                }
            ],
        },
    }


def cam_of(data: dict[str, Any]) -> CameraConfig:
    return CameraConfig.model_validate(data)


def keys(findings: list[Finding]) -> list[str]:
    return [f.key for f in findings]


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_QUOTED = re.compile(r"'([^'\s]+)'")


def same_values(en: str, zh: str) -> list[str]:
    """What of ``en`` (numbers, quoted ids) is missing from ``zh`` (empty: nothing)."""
    missing = list((Counter(_NUMBER.findall(en)) - Counter(_NUMBER.findall(zh))).elements())
    missing += [f"'{q}'" for q in _QUOTED.findall(en) if f"'{q}'" not in zh]
    return missing if zh.strip() else ["(empty)"]


def bilingual(findings: Sequence[Finding]) -> None:
    """Every finding has a Chinese text with the numbers and ids of the English one."""
    for f in findings:
        assert f.message_zh.strip() and re.search("[\u4e00-\u9fff]", f.message_zh), f
        assert same_values(f.message, f.message_zh) == [], (f.message, f.message_zh)


def static_checks(cam: CameraConfig, size: tuple[int, int] | None = None) -> list[Finding]:
    """``geometry_check.static_checks``, every finding checked for its Chinese text."""
    found = geometry_check.static_checks(cam, size)
    bilingual(found)
    return found


def analyse_traffic(
    cam: CameraConfig, size: tuple[int, int], observer: TrafficObserver
) -> TrafficReport:
    """``geometry_check.analyse_traffic``, every finding and note checked in Chinese too."""
    report = geometry_check.analyse_traffic(cam, size, observer)
    bilingual(report.findings)
    for n in report.notes:
        assert same_values(n.text, n.text_zh) == [], n
    return report


def test_the_chinese_check_catches_a_lost_number_or_id() -> None:
    en = "approach 'south': 4 of 10 forward crossings (x 120–130 px)"
    assert same_values(en, "进口道 'south'：10 次正向越线中有 4 次（x 120–130 px）") == []
    assert same_values(en, "进口道 'south'：10 次正向越线中有 4 次") == ["120", "130"]
    assert same_values(en, "进口道：10 次中有 4 次（x 120–130 px）") == ["'south'"]
    assert same_values(en, " ") == ["(empty)"]


# -- static checks ---------------------------------------------------------------------------


def test_clean_config_has_no_findings() -> None:
    assert static_checks(cam_of(base_config()), SIZE) == []
    assert static_checks(cam_of(base_config())) == []  # nominal frame: still clean


def test_too_few_analysed_frames_for_the_intersection_rules_are_reported() -> None:
    """At 2 analysed frames a second hanoi_b's red-light charges fall to 12/15 (1.5: 9/15):
    the installer is told before the camera goes live; a counting camera is not bothered."""
    data = base_config()
    data["analysis_fps"] = 2
    found = static_checks(cam_of(data), SIZE)
    assert keys(found) == ["analysis_fps"], found
    assert "2 analysed frames a second" in found[0].message and "3" in found[0].message
    data["analysis_fps"] = geometry_check.MIN_RULES_FPS
    assert static_checks(cam_of(data), SIZE) == []
    plain = {k: v for k, v in base_config().items() if k != "intersection"}
    assert static_checks(cam_of({**plain, "analysis_fps": 1}), SIZE) == []


def test_a_stream_of_too_few_frames_for_the_intersection_rules_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 2 fps sub-stream or recording analyses no more than 2 frames a second, whatever
    ``analysis_fps`` says: ``camera-check`` reads the stream's own rate."""
    slow = _clip(tmp_path / "slow.mp4", frames=10, rate=2)
    config = str(_write(tmp_path, base_config()))
    rc = cli.main(["camera-check", str(slow), "--config", config, "--seconds", "0", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    problems = json.loads(out)["problems"]
    assert [p["key"] for p in problems] == ["analysis_fps"], problems
    assert problems[0]["message"].startswith("2 analysed frames a second")
    fast = _clip(tmp_path / "fast.mp4", frames=10, rate=10)
    rc = cli.main(["camera-check", str(fast), "--config", config, "--seconds", "0", "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["problems"] == []


def test_swapped_lane_numbers_are_reported() -> None:
    data = base_config()
    lanes = data["intersection"]["approaches"][0]["lanes"]
    lanes[0]["number"], lanes[2]["number"] = 3, 1
    found = static_checks(cam_of(data), SIZE)
    assert keys(found) == ["intersection.approaches.0.lanes"]
    assert "left-to-right" in found[0].message and "l3 (number 1)" in found[0].message


def test_lane_numbers_follow_the_drivers_left_for_traffic_towards_the_camera() -> None:
    """Traffic coming down the image: the driver's left is the image's right, so lane 1 is the
    rightmost in the image. The same numbering as for traffic going up is then wrong."""
    data = base_config()
    ap = data["intersection"]["approaches"][0]
    ap["stop_line"] = [[LANE_X[0], 0.30], [LANE_X[3], 0.30]]
    ap["entry_line"] = [[0.25, 0.44], [0.75, 0.44]]
    for lane in ap["lanes"]:
        (x, _), _ = lane["travel"]
        lane["travel"] = [[x, 0.05], [x, 0.38]]
        lane["polygon"] = [[p[0], 1.0 - p[1]] for p in lane["polygon"]]
    found = static_checks(cam_of(data), SIZE)
    assert keys(found) == ["intersection.approaches.0.lanes"], found
    for lane, n in zip(ap["lanes"], (3, 2, 1), strict=True):
        lane["number"] = n
    assert static_checks(cam_of(data), SIZE) == []


def test_crosswalk_axis_rotated_90_degrees_is_reported() -> None:
    data = base_config()
    data["intersection"]["crosswalks"][0]["axis"] = [[0.5, 0.30], [0.5, 0.96]]
    found = static_checks(cam_of(data), SIZE)
    assert found and set(keys(found)) == {"intersection.crosswalks.0.axis"}
    assert any("off the crosswalk's length" in f.message for f in found)


def test_crosswalk_axis_across_the_zebra_inside_it_is_reported() -> None:
    data = base_config()
    data["intersection"]["crosswalks"][0]["axis"] = [[0.5, 0.59], [0.5, 0.67]]
    found = static_checks(cam_of(data), SIZE)
    assert keys(found) == ["intersection.crosswalks.0.axis"]
    assert "off the crosswalk's length" in found[0].message


def test_short_crosswalk_axis_is_reported() -> None:
    data = base_config()
    data["intersection"]["crosswalks"][0]["axis"] = [[0.45, 0.63], [0.55, 0.63]]
    found = static_checks(cam_of(data), SIZE)
    assert keys(found) == ["intersection.crosswalks.0.axis"]
    assert "kerb to kerb" in found[0].message


def test_head_region_of_40_percent_of_the_frame_is_reported() -> None:
    data = base_config()
    data["intersection"]["signal_heads"][0]["region"] = [[0.80, 0.10], [0.93, 0.50]]
    found = static_checks(cam_of(data), SIZE)
    assert "intersection.signal_heads.0.region" in keys(found)
    assert any("40 % of the frame height" in f.message for f in found)


def test_head_shape_that_does_not_fit_its_layout_is_reported() -> None:
    data = base_config()
    head = data["intersection"]["signal_heads"][0]
    head["region"] = [[0.80, 0.06], [0.86, 0.10]]  # 38 x 19 px: a horizontal head
    found = static_checks(cam_of(data), SIZE)
    assert keys(found) == ["intersection.signal_heads.0.region"]
    assert "layout vertical" in found[0].message
    head["layout"] = "horizontal"
    assert static_checks(cam_of(data), SIZE) == []
    assert static_checks(cam_of(data)) == []  # unknown frame size: the shape is not judged


def test_travel_that_stops_short_of_the_stop_line_is_reported() -> None:
    data = base_config()
    data["intersection"]["approaches"][0]["lanes"][1]["travel"] = [[0.5, 0.95], [0.5, 0.80]]
    found = static_checks(cam_of(data), SIZE)
    assert keys(found) == ["intersection.approaches.0.lanes.1.travel"]
    assert "before the stop line" in found[0].message


def test_stop_line_that_does_not_span_the_lanes_is_reported() -> None:
    data = base_config()
    data["intersection"]["approaches"][0]["stop_line"] = [[0.30, STOP_Y], [0.50, STOP_Y]]
    found = static_checks(cam_of(data), SIZE)
    assert "intersection.approaches.0.stop_line" in keys(found)
    msg = next(f.message for f in found if f.key.endswith("stop_line"))
    assert "does not span" in msg and "extend its second point to (448, 336) px" in msg
    assert "'l2' 53 %" in msg and "'l3' 0 %" in msg


def test_lane_polygon_that_stops_short_of_the_stop_line_is_reported() -> None:
    data = base_config()
    lane = data["intersection"]["approaches"][0]["lanes"][0]
    lane["polygon"] = [[LANE_X[0], 1.0], [LANE_X[1], 1.0], [LANE_X[1], 0.85], [LANE_X[0], 0.85]]
    found = static_checks(cam_of(data), SIZE)
    assert "intersection.approaches.0.lanes.0.polygon" in keys(found)


def test_self_intersecting_and_degenerate_polygons_are_reported() -> None:
    data = base_config()
    cw = data["intersection"]["crosswalks"][0]
    cw["polygon"] = [[0.22, 0.58], [0.78, 0.68], [0.78, 0.58], [0.22, 0.68]]  # a bow tie
    found = static_checks(cam_of(data), SIZE)
    assert any(
        f.key == "intersection.crosswalks.0.polygon" and "crosses itself" in f.message
        for f in found
    )
    data = base_config()
    data["intersection"]["intersection_zone"] = [[0.1, 0.1], [0.5, 0.1], [0.9, 0.1]]
    found = static_checks(cam_of(data), SIZE)
    assert any(
        f.key == "intersection.intersection_zone" and "degenerate" in f.message for f in found
    )


def test_entry_line_crossing_the_stop_line_is_reported() -> None:
    data = base_config()
    data["intersection"]["approaches"][0]["entry_line"] = [[0.25, 0.50], [0.75, 0.75]]
    found = static_checks(cam_of(data), SIZE)
    assert "intersection.approaches.0.entry_line" in keys(found)


def _write(tmp_path: Path, data: dict[str, Any], name: str = "cam.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("mutation", "needle"),
    [
        ("reversed_travel", "approaches.0.lanes.0.travel"),
        ("stop_line_beyond_entry_line", "approaches.0.lanes.0.travel"),
        ("pixels", "outside the frame"),
    ],
)
def test_mutations_the_config_refuses_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutation: str, needle: str
) -> None:
    """Already refused by ``pipeline/calibration.py``: the check does not repeat them, the
    command exits 2 naming the key."""
    data = base_config()
    ap = data["intersection"]["approaches"][0]
    if mutation == "reversed_travel":
        a, b = ap["lanes"][0]["travel"]
        ap["lanes"][0]["travel"] = [b, a]
    elif mutation == "stop_line_beyond_entry_line":
        ap["stop_line"] = [[LANE_X[0], 0.50], [LANE_X[3], 0.50]]
    else:
        ap["stop_line"] = [[192, 336], [448, 336]]
    video = tmp_path / "any.mp4"
    video.write_bytes(b"not read: the config fails first")
    rc = cli.main(["camera-check", str(video), "--config", str(_write(tmp_path, data))])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert needle in err


def test_missing_and_unreadable_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(_write(tmp_path, base_config()))
    rc = cli.main(["camera-check", str(tmp_path / "nope.mp4"), "--config", config])
    assert rc == 2 and "no such video file" in capsys.readouterr().err
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    rc = cli.main(["camera-check", str(bad), "--config", config])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("error:") == 1, err


# -- observed traffic (synthetic tracks) -----------------------------------------------------


def _drive(observer: TrafficObserver, lanes_x: list[float], *, down: bool = False) -> None:
    """One vehicle per entry of ``lanes_x`` (relative x), driving up (or down) the image one
    after the other, 10 frames each, as tracks."""
    w, h = SIZE
    for k, x in enumerate(lanes_x):
        for i in range(12):
            y = 0.98 - i * 0.06 if not down else 0.32 + i * 0.06
            box = np.array([[x * w - 25, y * h - 30, x * w + 25, y * h]], np.float32)
            tracks = Tracks(
                xyxy=box,
                confidence=np.array([0.9], np.float32),
                class_id=np.array([2]),
                kind=np.array([int(ObjectKind.MOTOR_VEHICLE)], np.int8),
                track_id=np.array([k + 1]),
                detected=np.array([True]),
            )
            observer.add((k * 12 + i) / 10.0, tracks)


def test_traffic_along_the_arrows_is_clean() -> None:
    obs = TrafficObserver()
    _drive(obs, [CENTRES[i % 3] for i in range(18)])
    report = analyse_traffic(cam_of(base_config()), SIZE, obs)
    assert report.findings == []
    assert [r.tracks for r in report.regions] == [6, 6, 6]
    assert all(r.along == r.tracks for r in report.regions)
    assert (report.lines[0].forward, report.lines[0].backward) == (18, 0)


def test_traffic_against_every_lane_flags_the_approach() -> None:
    """The whole approach drawn for the other direction (lines and arrows reversed together
    pass the config loader): every lane's traffic goes against its arrow."""
    obs = TrafficObserver()
    _drive(obs, [CENTRES[i % 3] for i in range(18)], down=True)
    report = analyse_traffic(cam_of(base_config()), SIZE, obs)
    assert set(keys(report.findings)) == {
        "intersection.approaches.0.lanes",
        "intersection.approaches.0.stop_line",
    }
    assert report.lines[0].backward == 18


def test_one_oncoming_lane_is_a_note_unless_wrong_way_watches_lanes() -> None:
    obs = TrafficObserver()
    _drive(obs, [CENTRES[1]] * 6 + [CENTRES[2]] * 6)
    down = TrafficObserver()
    _drive(down, [CENTRES[0]] * 6, down=True)
    for tid, path in down.paths.items():
        obs.paths[100 + tid] = path
    report = analyse_traffic(cam_of(base_config()), SIZE, obs)
    assert report.findings == []
    assert any("lane l1" in n.text and "oncoming" in n.text for n in report.notes)
    assert any("车道 l1" in n.text_zh and "对向" in n.text_zh for n in report.notes)
    data = base_config()
    data["intersection"]["wrong_way"] = {"use_lanes": True}
    report = analyse_traffic(cam_of(data), SIZE, obs)
    assert keys(report.findings) == ["intersection.approaches.0.lanes.0.travel"]
    assert "use_lanes" in report.findings[0].message


def test_stop_line_crossings_outside_the_lanes_are_reported() -> None:
    data = base_config()
    data["intersection"]["approaches"][0]["stop_line"] = [[0.10, STOP_Y], [0.70, STOP_Y]]
    obs = TrafficObserver()
    _drive(obs, [0.20] * 4 + [CENTRES[1]] * 6)
    report = analyse_traffic(cam_of(data), SIZE, obs)
    assert keys(report.findings) == ["intersection.approaches.0.lanes"]
    assert (
        "4 of 10 forward stop-line crossings are outside every lane" in report.findings[0].message
    )


def test_a_travel_zone_arrow_against_its_traffic_is_reported() -> None:
    data = base_config()
    data["intersection"]["wrong_way"] = {
        "use_lanes": False,
        "zones": [
            {
                "id": "z",
                "polygon": [[0.3, 0.1], [0.7, 0.1], [0.7, 0.68], [0.3, 0.68]],
                "travel": [[0.5, 0.2], [0.5, 0.6]],  # reversed: traffic drives up
            }
        ],
    }
    obs = TrafficObserver()
    _drive(obs, [CENTRES[i % 3] for i in range(9)])
    report = analyse_traffic(cam_of(data), SIZE, obs)
    assert keys(report.findings) == ["intersection.wrong_way.zones.0.travel"]


# -- persons: riders whose two-wheeler the detector missed, and pedestrians ------------------

Actor = tuple[int, ObjectKind, int, tuple[float, float], tuple[float, float], float, float]
"""(track id, kind, class id, start (rel x, y of the box bottom), end, first s, last s)."""


def _actors(observer: TrafficObserver, actors: Sequence[Actor]) -> None:
    """Feed ``actors`` (moving in a straight line at constant speed) as tracks at 10 frames a
    second; a person box is 40×90 px with its feet a quarter of its height above the road
    (as a rider's), a vehicle box 40×60 px on the road (a motorbike: its rider's box covers
    its upper part)."""
    w, h = SIZE
    end = max(a[6] for a in actors)
    for f in range(round(end * 10) + 1):
        t = f / 10.0
        rows = []
        for tid, kind, cls, (x0, y0), (x1, y1), t0, t1 in actors:
            if not t0 <= t <= t1:
                continue
            k = (t - t0) / max(t1 - t0, 1e-9)
            x, y = (x0 + k * (x1 - x0)) * w, (y0 + k * (y1 - y0)) * h
            if kind == ObjectKind.PERSON:
                box = [x - 20, y - 22.5 - 90, x + 20, y - 22.5]
            else:
                box = [x - 20, y - 60, x + 20, y]
            rows.append((box, cls, int(kind), tid))
        if not rows:
            observer.add(t, Tracks.empty())
            continue
        observer.add(
            t,
            Tracks(
                xyxy=np.array([r[0] for r in rows], np.float32),
                confidence=np.full(len(rows), 0.9, np.float32),
                class_id=np.array([r[1] for r in rows]),
                kind=np.array([r[2] for r in rows], np.int8),
                track_id=np.array([r[3] for r in rows]),
                detected=np.ones(len(rows), bool),
            ),
        )


def _riders(lanes_x: Sequence[float], *, down: bool = False, first_id: int = 1) -> list[Actor]:
    """Riders only (no two-wheeler detected), one after the other up (down) the lanes at
    vehicle speed: 0.6 of the frame height in 1.2 s."""
    y0, y1 = (0.98, 0.38) if not down else (0.38, 0.98)
    return [
        (first_id + k, ObjectKind.PERSON, 0, (x, y0), (x, y1), 1.5 * k, 1.5 * k + 1.2)
        for k, x in enumerate(lanes_x)
    ]


def test_riders_seen_without_their_two_wheeler_count_as_two_wheelers() -> None:
    """hanoi_b's motorbikes seen from behind are often only their rider: a person moving like
    a vehicle in a lane (pipeline.riders.rides_along, either way) is a two-wheeler there."""
    obs = TrafficObserver()
    _actors(obs, _riders([CENTRES[i % 3] for i in range(18)]))
    report = analyse_traffic(cam_of(base_config()), SIZE, obs)
    assert report.findings == []
    assert [(r.tracks, r.riders, r.along) for r in report.regions] == [(6, 6, 6)] * 3
    line = report.lines[0]
    assert (line.forward, line.backward, line.riders) == (18, 0, 18)
    assert report.tracks == 0 and report.riders == 18 and len(report.paths) == 18
    assert "0 vehicle tracks and 18 riders" in report.text_lines()[0]
    # the same riders driving down every lane: the approach is drawn the other way round
    obs = TrafficObserver()
    _actors(obs, _riders([CENTRES[i % 3] for i in range(18)], down=True))
    report = analyse_traffic(cam_of(base_config()), SIZE, obs)
    assert set(keys(report.findings)) == {
        "intersection.approaches.0.lanes",
        "intersection.approaches.0.stop_line",
    }
    # persons left out: nothing changes
    obs = TrafficObserver(persons=False)
    _actors(obs, _riders([CENTRES[i % 3] for i in range(18)], down=True))
    report = analyse_traffic(cam_of(base_config()), SIZE, obs)
    assert report.findings == [] and report.riders == 0


def test_pedestrians_and_riders_on_a_tracked_two_wheeler_are_not_counted_as_riders() -> None:
    walk = 14.0 / SIZE[1]  # 1.4 m/s where the picture has ~10 px a metre: 0.018 diag/s
    actors: list[Actor] = []
    for k in range(6):
        t0 = 8.0 * k
        # across the lanes behind the stop line, across the crosswalk, and up a lane on foot
        actors.append((100 + k, ObjectKind.PERSON, 0, (0.25, 0.85), (0.75, 0.85), t0, t0 + 22))
        actors.append((200 + k, ObjectKind.PERSON, 0, (0.75, 0.66), (0.25, 0.66), t0, t0 + 22))
        actors.append(
            (
                300 + k,
                ObjectKind.PERSON,
                0,
                (CENTRES[1], 0.95),
                (CENTRES[1], 0.95 - 8 * walk),
                t0,
                t0 + 8.0,
            )
        )
    # six motorbikes with their riders, both tracked: counted once, as the motorbike
    for k in range(6):
        t0, x = 1.5 * k, CENTRES[k % 3]
        actors.append((400 + k, ObjectKind.MOTOR_VEHICLE, 3, (x, 0.98), (x, 0.38), t0, t0 + 1.2))
        actors.append((500 + k, ObjectKind.PERSON, 0, (x, 0.98), (x, 0.38), t0, t0 + 1.2))
    obs = TrafficObserver()
    _actors(obs, actors)
    report = analyse_traffic(cam_of(base_config()), SIZE, obs)
    assert report.findings == []
    assert [(r.tracks, r.riders) for r in report.regions] == [(2, 0)] * 3
    assert (report.lines[0].forward, report.lines[0].riders) == (6, 0)
    assert report.tracks == 6 and report.riders == 0


def test_too_little_traffic_judges_nothing() -> None:
    obs = TrafficObserver()
    _drive(obs, [CENTRES[0]] * (MIN_TRACKS - 1), down=True)
    report = analyse_traffic(cam_of(base_config()), SIZE, obs)
    assert report.findings == []
    assert "not enough traffic" in "\n".join(report.text_lines())


# -- end to end: the composition root on a clip ----------------------------------------------


class _LaneTraffic:
    """A detector plug-in: six cars, two per lane, driving up (or down) the synthetic scene
    one after the other; frames counted in call order."""

    def __init__(self, down: bool) -> None:
        self.down = down
        self.i = 0

    @property
    def info(self) -> DetectorInfo:
        return DetectorInfo("cctest", (SIZE[1], SIZE[0]), ("test",), 0, None)

    def detect(self, images: Sequence[ImageBGR]) -> list[Detections]:
        out = []
        for _ in images:
            t = self.i / 10.0
            self.i += 1
            boxes = []
            for k in range(6):
                age = t - 0.6 * k
                if not 0.0 <= age <= 1.5:
                    continue
                y = 0.98 - age * 0.45 if not self.down else 0.30 + age * 0.45
                x = CENTRES[k % 3] * SIZE[0]
                boxes.append([x - 28, y * SIZE[1] - 36, x + 28, y * SIZE[1]])
            xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
            n = len(boxes)
            out.append(Detections.create(xyxy, [0.9] * n, [2] * n, [3] * n))
        return out


def _plugin(config: AnyDetectorConfig) -> _LaneTraffic:
    return _LaneTraffic(down=config.model.endswith(":down"))


register_detector("cctest", _plugin)


def _clip(path: Path, frames: int = 50, rate: int = 10) -> Path:
    with av.open(str(path), "w", format="mp4") as c:
        s: Any = c.add_stream("libx264", rate=rate)
        s.width, s.height = SIZE
        s.pix_fmt = "yuv420p"
        s.options = {"preset": "ultrafast"}
        for i in range(frames):
            # a clock block that changes every frame: a still picture's repeats are not analysed
            img = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
            img[: SIZE[1] // 8, : SIZE[0] // 8] = (i * 37) % 256
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def test_camera_check_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = _clip(tmp_path / "clip.mp4")
    data = base_config()
    data["detector"] = {"model": "cctest:up"}
    png = tmp_path / "check.png"
    args = ["camera-check", str(video), "--config", str(_write(tmp_path, data)), "--json"]
    rc = cli.main([*args, "--png", str(png), "--strict"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    report = json.loads(out)
    regions = report["traffic"]["regions"]
    assert [r["moving_tracks"] for r in regions] == [2, 2, 2]  # under MIN_TRACKS per lane
    assert report["traffic"]["stop_lines"][0]["forward"] == 6
    assert report["problems"] == []
    picture = report["picture"]  # what the runner measured of the picture while observing
    assert picture["noise_sigma"] is not None and picture["tonal_range"] is not None
    assert picture["noise_filtered"] is (picture["noise_sigma"] >= NOISE_ON)
    assert picture["contrast_stretched"] is (picture["tonal_range"] < RANGE_ON)
    import cv2

    img = cv2.imread(str(png))
    assert img is not None and img.shape[1] > 1280  # the frame scaled up, plus the legend

    reversed_data = copy.deepcopy(data)
    reversed_data["detector"] = {"model": "cctest:down"}
    config = _write(tmp_path, reversed_data, "down.yaml")
    rc = cli.main(["camera-check", str(video), "--config", str(config), "--strict"])
    out, err = capsys.readouterr()
    assert rc == 3, out + err
    assert "warning: intersection.approaches.0.stop_line" in err
    assert "6 tracks crossed it — 0 forwards, 6 backwards" in out

    # in Chinese: --lang zh, or a Chinese locale by default; --json carries both texts
    rc = cli.main(["camera-check", str(video), "--config", str(config), "--lang", "zh"])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "warning: intersection.approaches.0.stop_line: 进口道 'south'：越过停止线的 6 条" in err
    assert "停止线 south：6 条轨迹越过 — 正向 0，反向 6" in out and "发现 1 个问题" in out
    rc = cli.main(["camera-check", str(video), "--config", str(config), "--json"])
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [p["key"] for p in problems] == ["intersection.approaches.0.stop_line"]
    for p in problems:
        assert "进口道 'south'" in p["message_zh"]
        assert same_values(p["message"], p["message_zh"]) == []


@pytest.mark.parametrize(
    ("env", "lang"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({}, "en"),
        ({"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),  # LC_ALL wins
        ({"LC_ALL": "", "LC_MESSAGES": "zh_TW.UTF-8", "LANG": "C"}, "zh"),
    ],
)
def test_the_default_language_follows_the_locale(env: dict[str, str], lang: str) -> None:
    assert default_lang(env) == lang


def test_key_points_in_chinese_keep_every_id_and_pixel() -> None:
    """The key points in the Chinese report and picture say the same points as the English
    ones (ids, numbers and pixels), with the words in Chinese."""
    import re

    from sharpeyes.pipeline.config import load_camera_config
    from sharpeyes.pipeline.geometry_draw import key_points
    from tests.conftest import REPO

    cam = load_camera_config(REPO / "sample_videos" / "intersection_hanoi_b.yaml")
    en = key_points(cam, (640, 480))
    zh = key_points(cam, (640, 480), chinese=True)
    assert len(en) == len(zh) >= 8
    for e, z in zip(en, zh, strict=True):
        assert re.findall(r"\d+", e) == re.findall(r"\d+", z)
        assert not re.search(r"[a-z]{4,} (line|zone|lane)", z), z
    assert zh[0].startswith("进口道 south: 停止线 (50, 382) px")


def test_the_picture_line_says_what_the_detector_is_shown() -> None:
    from sharpeyes.api.commands.camera_check import PictureQuality

    clear = PictureQuality(0.7, False, 231, False)
    assert clear.line("en") == "picture: noise σ 0.7; grey range 231"
    assert clear.line("zh") == "画面：噪声 σ 0.7；灰度范围 231"
    night_fog = PictureQuality(11.4, True, 126, True)
    assert night_fog.line("en") == (
        "picture: noise σ 11.4, filtered for the detector; "
        "grey range 126, washed out: stretched for the detector"
    )
    assert night_fog.line("zh") == (
        "画面：噪声 σ 11.4，检测前已降噪；灰度范围 126，画面发灰，检测前已拉伸对比度"
    )
    assert PictureQuality(None, False, None, False).line("en") == "picture: not measured"
