"""Evidence records: overlay time from frame time, full resolution, composite, HMAC verify, clip."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from sharpeyes.models.plate import PlateReader
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.errors import ConfigError, EvidenceError
from sharpeyes.pipeline.evidence.builder import EvidenceBuilder
from sharpeyes.pipeline.evidence.composite import _fit, cell_region, compose
from sharpeyes.pipeline.evidence.facts import (
    CameraFacts,
    overlay_lines,
    seconds_since_red,
    vehicle_boxes,
)
from sharpeyes.pipeline.evidence.images import (
    beijing_date,
    beijing_time_text,
    can_render_chinese,
    render_overlay,
)
from sharpeyes.pipeline.evidence.tamper import hmac_file, key_id, load_key
from sharpeyes.pipeline.evidence.verify import main_verify, verify_record
from sharpeyes.pipeline.types import (
    AnalysedFrame,
    Box,
    Event,
    EventType,
    Frame,
    ImageBGR,
    LampColor,
    ObjectKind,
    Plate,
    SignalState,
    Tracks,
    TrajectoryPoint,
    Violation,
)
from sharpeyes.streams.packet_ring import EncodedPacket, PacketRing
from sharpeyes.streams.remux import stream_params

KEY = b"0123456789abcdef-test-key"
WALL_MS = 1_700_000_000_123  # 2023-11-14 22:13:20.123 UTC = 2023-11-15 06:13:20.123 Beijing
PTS = (2.0, 2.4, 2.8)
VEHICLE = Box(1300.0, 420.0, 1919.0, 1000.0, 1920, 1080)


def shared_dir() -> Path:
    env = os.environ.get("SHARPEYES_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


STREET = shared_dir() / "images" / "plates" / "hyperlpr_test_img.jpg"
needs_data = pytest.mark.skipif(not STREET.is_file(), reason="shared plate image missing")


@cache
def street() -> ImageBGR:
    img = cv2.imread(str(STREET))
    assert img is not None
    return np.asarray(img, np.uint8)


@cache
def reader() -> PlateReader:
    return PlateReader(threads=1)


def frames_of(images: list[ImageBGR]) -> list[Frame]:
    return [
        Frame("cam1", i, pts, WALL_MS + round((pts - PTS[0]) * 1000), img)
        for i, (pts, img) in enumerate(zip(PTS, images, strict=True))
    ]


def analysed_of(frames: list[Frame]) -> list[AnalysedFrame]:
    """The frames as the runner hands them: track 7 at VEHICLE, group north_straight red."""
    tracks = Tracks(
        xyxy=np.array([[VEHICLE.x1, VEHICLE.y1, VEHICLE.x2, VEHICLE.y2]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.array([2]),
        kind=np.array([int(ObjectKind.MOTOR_VEHICLE)], np.int8),
        track_id=np.array([7]),
        detected=np.array([True]),
    )
    return [
        AnalysedFrame(
            f,
            tracks,
            {"north_straight": SignalState("north_straight", LampColor.RED, 1.0, -1.1, f.pts)},
        )
        for f in frames
    ]


def violation_event(extra: tuple[tuple[str, str], ...] = ()) -> Event:
    v = Violation(
        code="1625",
        signal_group="north_straight",
        signal_color=LampColor.RED,
        seconds_since_red=3.5,
        lane_no=2,
        movement="straight",
        approach="north",
        crossed_stop_line_pts=2.4,
        evidence_pts=PTS,
    )
    return Event(
        event_id="0123456789abcdef0123456789abcdef",
        type=EventType.RED_LIGHT_VIOLATION,
        stream_id="cam1",
        first_seen_ms=WALL_MS - 1000,
        last_seen_ms=WALL_MS + 800,
        first_pts=1.0,
        last_pts=2.8,
        kind=ObjectKind.MOTOR_VEHICLE,
        track_id=7,
        best_box=VEHICLE,
        best_pts=2.4,
        trajectory=(
            TrajectoryPoint(2.0, 1610.0, 1040.0),
            TrajectoryPoint(2.4, 1609.5, 1000.0),
            TrajectoryPoint(2.8, 1609.0, 960.0),
        ),
        direction="north",
        violation=v,
        extra=extra,
    )


def camera() -> CameraConfig:
    return CameraConfig(id="cam1", location="人民路与解放路交叉口", name="demo")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of 320x240 H.264 at 25 fps, a keyframe every 12 frames."""
    path = tmp_path_factory.mktemp("ev") / "src.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.codec_context.gop_size = 12
        s.codec_context.options = {"keyint_min": "12", "sc_threshold": "0", "preset": "ultrafast"}
        for i in range(150):
            a = np.full((240, 320, 3), 40, np.uint8)
            a[100:140, i * 2 % 300 : i * 2 % 300 + 20] = 250
            f = av.VideoFrame.from_ndarray(a, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


Builder = Callable[..., EvidenceBuilder]


@pytest.fixture
def make_builder(tmp_path: Path, video: Path) -> Builder:
    def make(**kw: object) -> EvidenceBuilder:
        args: dict[str, object] = {
            "camera": camera(),
            "plate_reader": reader(),
            "hmac_key": KEY,
            "clip_pre_roll_s": 1.0,
            "clip_post_roll_s": 1.0,
            "video_path": video,
        }
        args.update(kw)
        return EvidenceBuilder(tmp_path, **args)  # type: ignore[arg-type]

    return make


def load(path: Path) -> ImageBGR:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return np.asarray(img, np.uint8)


def test_beijing_time_from_frame_time() -> None:
    assert beijing_time_text(WALL_MS) == "2023-11-15 06:13:20.123"
    assert beijing_time_text(1_699_977_599_999) == "2023-11-14 23:59:59.999"
    assert beijing_date(1_699_977_599_999) == "20231114"
    assert beijing_date(1_699_977_600_000) == "20231115"  # midnight Beijing = 16:00 UTC


def test_overlay_shows_the_frame_time() -> None:
    img = np.full((720, 1280, 3), 90, np.uint8)
    ev = violation_event()
    frame = Frame("cam1", 0, 2.4, WALL_MS, img)
    facts = CameraFacts("34020000001190000001", "路口", "1625")
    lines = overlay_lines(ev, frame, facts, None, index=2, total=3)
    first = lines[0].text(chinese=True)
    assert "2023-11-15 06:13:20.123" in first and "北京时间" in first
    assert "2023-11-15 06:13:20.123" in lines[0].text(chinese=False)
    everything = " ".join(ln.text(chinese=True) for ln in lines)
    for part in ("路口", "车道: 2", "34020000001190000001", "红灯", "3.50秒", "1625", "未识别"):
        assert part in everything
    rendered = render_overlay(img, lines)
    other = Frame("cam1", 0, 2.4, WALL_MS + 1, img)  # one millisecond later
    rendered_other = render_overlay(img, overlay_lines(ev, other, facts, None, index=2, total=3))
    assert rendered.shape == img.shape
    assert not np.array_equal(rendered, rendered_other)  # the time text is drawn
    assert np.array_equal(rendered[-50:], img[-50:])  # below the band, untouched
    assert seconds_since_red(ev, 2.0) == pytest.approx(3.1)


def test_vehicle_boxes_from_extra_and_trajectory() -> None:
    frames = frames_of([np.zeros((1080, 1920, 3), np.uint8)] * 3)
    boxes = vehicle_boxes(violation_event(), frames)
    assert boxes[1] == VEHICLE
    assert boxes[0] is not None and boxes[0].y2 == pytest.approx(1040.0)
    given = violation_event(extra=(("evidence_box_1", "10,20,110,220"),))
    assert vehicle_boxes(given, frames)[0] == Box(10, 20, 110, 220, 1920, 1080)


def test_composite_contains_all_four_parts() -> None:
    rng = np.random.default_rng(1)
    parts = [rng.integers(0, 255, (90, 160, 3), dtype=np.uint8) for _ in range(3)]
    close = rng.integers(0, 255, (40, 120, 3), dtype=np.uint8)
    comp = compose(parts, close)
    assert comp.shape == (180, 320, 3)
    for i, part in enumerate([*parts, close]):
        rows, cols = cell_region(i, comp.shape)
        assert np.array_equal(comp[rows, cols], _fit(part, 160, 90))


@needs_data
def test_build_record_writes_everything(make_builder: Builder, tmp_path: Path) -> None:
    shifted = np.roll(street(), 4, axis=0)
    blurred = np.asarray(cv2.GaussianBlur(street(), (9, 9), 3), np.uint8)
    frames = frames_of([blurred, street(), shifted])
    rec = make_builder().build_record(violation_event(), analysed_of(frames))
    d = rec.record_dir
    assert d == tmp_path / "evidence" / "cam1" / "20231115" / violation_event().event_id
    names = {f.name for f in rec.files}
    assert names == {"1.jpg", "2.jpg", "3.jpg", "plate.jpg", "composite.jpg", "clip.mp4"}
    for n in ("1.jpg", "2.jpg", "3.jpg"):
        img = load(d / n)
        assert img.shape == (1080, 1920, 3)  # full resolution, 3 × 8-bit colour
        assert float(np.std(img[..., 0].astype(int) - img[..., 2].astype(int))) > 1.0
    # the plate is read from the sharpest frame (2 = unblurred original; 3 is as sharp)
    assert rec.plate.text == "苏ED51712" and rec.plate.color == "green"
    assert rec.plate_frame in (2, 3)
    assert rec.complete
    doc = json.loads((d / "record.json").read_text(encoding="utf-8"))
    assert doc["plate"]["text"] == "苏ED51712" and doc["plate"]["readable"] is True
    # plate.jpg says what it shows (and is captioned so on the picture)
    closeup = {"file": "plate.jpg", "shows": "plate", "image": rec.plate_frame}
    assert doc["plate"]["closeup"] == closeup
    assert doc["images"][0]["beijing_time"] == "2023-11-15 06:13:20.123"
    assert doc["violation"]["code"] == "1625"
    assert doc["integrity"] == {"algorithm": "HMAC-SHA256", "key_id": key_id(KEY)}
    for f in doc["files"]:
        assert f["hmac_sha256"] == hmac_file(d / f["name"], KEY)
        assert f["size"] == (d / f["name"]).stat().st_size
    comp = load(d / "composite.jpg")
    assert comp.shape == (2160, 3840, 3)
    for i, name in enumerate(("1.jpg", "2.jpg", "3.jpg", "plate.jpg")):
        rows, cols = cell_region(i, comp.shape)
        expected = _fit(load(d / name), 1920, 1080).astype(int)
        assert float(np.mean(np.abs(comp[rows, cols].astype(int) - expected))) < 4.0, name
    plate = load(d / "plate.jpg")
    assert plate.shape[1] >= 440
    assert not list(d.glob(".*tmp"))
    assert verify_record(d, KEY).ok


@needs_data
def test_a_grey_picture_states_the_plate_text_but_not_its_colour(make_builder: Builder) -> None:
    """A camera in infrared night mode: the plate's characters are read, its colour (green on
    the colour picture above) is not guessed from grey levels."""
    grey = np.asarray(
        cv2.cvtColor(cv2.cvtColor(street(), cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR), np.uint8
    )
    rec = make_builder().build_record(violation_event(), analysed_of(frames_of([grey] * 3)))
    assert rec.plate.text == "苏ED51712" and rec.plate.color is None
    doc = json.loads((rec.record_dir / "record.json").read_text(encoding="utf-8"))
    assert doc["plate"]["text"] == "苏ED51712" and doc["plate"].get("color") is None


@needs_data
def test_clip_covers_images_with_rolls(make_builder: Builder, video: Path) -> None:
    frames = frames_of([street()] * 3)
    rec = make_builder().build_record(violation_event(), frames)
    assert rec.clip is not None and rec.clip_error is None
    assert rec.clip.covers(PTS[0] - 1.0, PTS[-1] + 1.0)
    assert rec.clip.start_pts_s <= PTS[0] - 1.0
    with av.open(str(rec.record_dir / "clip.mp4")) as c:
        first = next(p for p in c.demux(c.streams.video[0]) if p.size)
        assert first.is_keyframe


@needs_data
def test_clip_from_packet_ring(make_builder: Builder, video: Path) -> None:
    ring = PacketRing(max_seconds=10.0, max_bytes=10**7)
    with av.open(str(video)) as c:
        s = c.streams.video[0]
        ring.set_stream_params(stream_params(s))
        tb = Fraction(s.time_base or Fraction(1, 1))
        for p in c.demux(s):
            if p.size and p.pts is not None:
                ring.push(
                    EncodedPacket(
                        bytes(p), p.pts, p.dts, p.duration, tb, p.is_keyframe, float(p.pts * tb)
                    )
                )
    frames = frames_of([street()] * 3)
    rec = make_builder(ring=ring, video_path=None).build_record(violation_event(), frames)
    assert rec.clip is not None and rec.clip.covers(1.0, 3.8)
    with av.open(str(rec.record_dir / "clip.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == rec.clip.packets


def test_unreadable_plate_is_never_invented(make_builder: Builder) -> None:
    rng = np.random.default_rng(3)
    frames = frames_of([rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(3)])
    ev = violation_event().with_(best_box=Box(100, 100, 400, 400, 640, 480))
    out = make_builder().build(ev, frames)
    assert out.plate is not None and out.plate.text is None
    assert out.evidence_path is not None
    doc = json.loads((Path(out.evidence_path) / "record.json").read_text(encoding="utf-8"))
    assert doc["plate"]["readable"] is False and doc["plate"]["text"] is None
    assert doc["complete"] is False
    # no plate located: the close-up is of where a plate would be, and says so
    assert doc["plate"]["image"] is None
    assert doc["plate"]["closeup"]["shows"] == "lower_vehicle"
    assert doc["plate"]["closeup"]["image"] in (1, 2, 3)


def test_the_closeup_caption_says_what_it_shows() -> None:
    from sharpeyes.pipeline.evidence.builder import _PlateResult

    img = np.zeros((40, 440, 3), np.uint8)
    none = Plate(text=None, color=None, confidence=0.0)
    found = _PlateResult(none, 1, img, 1).caption().text(chinese=True)
    missing = _PlateResult(none, None, img, 2).caption().text(chinese=True)
    assert found == "号牌特写 (图2)"
    assert missing == "未找到号牌: 车辆下部 (图3)"


def test_hmac_verify_detects_changed_byte_missing_file_and_metadata(
    make_builder: Builder, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = frames_of([np.full((360, 640, 3), 120, np.uint8)] * 3)
    rec = make_builder(plate_reader=None).build_record(violation_event(), frames)
    d = rec.record_dir
    assert main_verify(d, KEY) == 0
    data = bytearray((d / "2.jpg").read_bytes())
    data[len(data) // 2] ^= 0x01  # one changed bit
    (d / "2.jpg").write_bytes(bytes(data))
    res = verify_record(d / "record.json", KEY)
    assert not res.ok and res.changed == ("2.jpg",) and not res.missing
    (d / "plate.jpg").unlink()
    res = verify_record(d, KEY)
    assert res.missing == ("plate.jpg",)
    assert main_verify(d, KEY) == 1
    assert "MISSING plate.jpg" in capsys.readouterr().out
    assert not verify_record(d, b"another-key-0123456789").ok


def test_metadata_tamper_and_wrong_key(make_builder: Builder) -> None:
    frames = frames_of([np.full((360, 640, 3), 120, np.uint8)] * 3)
    rec = make_builder(plate_reader=None).build_record(violation_event(), frames)
    doc = json.loads(rec.record_json.read_text(encoding="utf-8"))
    doc["violation"]["seconds_since_red"] = 0.5
    rec.record_json.write_text(json.dumps(doc), encoding="utf-8")
    res = verify_record(rec.record_dir, KEY)
    assert res.metadata_changed and not res.changed and not res.ok
    wrong = verify_record(rec.record_dir, b"zzzzzzzzzzzzzzzzzzzz")
    assert wrong.key_mismatch


def test_verify_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    assert main_verify(tmp_path / "nothing", KEY, out=lines.append) == 2
    assert lines[0].startswith("error:")
    monkeypatch.delenv("SHARPEYES_EVIDENCE_KEY", raising=False)
    with pytest.raises(ConfigError):
        load_key(None)
    monkeypatch.setenv("SHARPEYES_EVIDENCE_KEY", "short")
    with pytest.raises(ConfigError):
        load_key(None)
    monkeypatch.setenv("SHARPEYES_EVIDENCE_KEY", KEY.decode())
    assert load_key(None) == KEY


def test_builder_rejects_bad_input(make_builder: Builder) -> None:
    with pytest.raises(EvidenceError):
        make_builder(hmac_key=b"")
    with pytest.raises(EvidenceError):
        make_builder().build_record(violation_event(), [])
    bad = violation_event().with_(event_id="../../etc")
    frames = frames_of([np.zeros((100, 100, 3), np.uint8)] * 3)
    with pytest.raises(EvidenceError):
        make_builder().build_record(bad, frames)


def test_no_clip_source_is_recorded_not_fatal(make_builder: Builder) -> None:
    frames = frames_of([np.full((240, 320, 3), 60, np.uint8)] * 3)
    rec = make_builder(video_path=None, plate_reader=None).build_record(violation_event(), frames)
    assert rec.clip is None and rec.clip_error
    assert verify_record(rec.record_dir, KEY).ok


def test_ascii_fallback_and_bottom_band(monkeypatch: pytest.MonkeyPatch) -> None:
    from sharpeyes.pipeline.evidence import images

    img = np.full((480, 640, 3), 200, np.uint8)
    ev = violation_event()
    lines = overlay_lines(
        ev,
        Frame("cam1", 0, 2.4, WALL_MS, img),
        CameraFacts("1" * 20, "x", "1625"),
        None,
        index=1,
        total=3,
    )
    monkeypatch.setattr(images, "find_cjk_font", lambda: None)
    top = images.render_overlay(img, lines)
    bottom = images.render_overlay(img, lines, position="bottom")
    assert top.shape == bottom.shape == img.shape
    assert np.array_equal(top[-100:], img[-100:]) and not np.array_equal(top[:40], img[:40])
    assert np.array_equal(bottom[:100], img[:100]) and not np.array_equal(bottom[-40:], img[-40:])
    rows, size = images.layout(img, lines, False, images._cv2_measure)
    assert all(images._cv2_measure(r, size) <= 640 for r in rows)  # wrapped to the width


def test_chinese_font_available() -> None:
    # fonts-wqy-zenhei (apt) + Pillow: overlays in Chinese; otherwise the ASCII fallback is used
    if not can_render_chinese():
        pytest.skip("no CJK font / Pillow: ASCII overlay fallback in use")
    assert can_render_chinese()
