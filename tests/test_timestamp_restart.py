"""Recordings whose timestamps start again part-way through: an NVR export of several files,
MPEG-TS segments concatenated, an encoder that restarted. Read naively, time runs backwards at
the join: the tracker drops every track, red timers and "seconds since red" restart, capture
times on the evidence are wrong and a clip across the join is garbled. Every file source
(``FileSource``, ``GpuDecodeSource``) keeps one continuous timeline instead (:class:`FileTimeline`),
and clips place rebased packets by that timeline.

The same hanoi_b span also checks a signal head hidden for a while mid-red (the last test).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from sharpeyes.api.commands import cli
from sharpeyes.streams.file_source import FileSource
from sharpeyes.streams.gpu_decode import DecoderConfig, GpuDecodeSource
from sharpeyes.streams.remux import clip_from_file, remux_clip
from sharpeyes.streams.timing import FileTimeline
from tests._rings import filled_ring
from tests.conftest import REPO, need, shared_dir

FPS = 12
W, H = 64, 48


def _segment(path: Path, images: Sequence[np.ndarray], fps: float, size: tuple[int, int]) -> None:
    """One MPEG-TS file with H.264 (B-frames, a keyframe every 12 frames), pts from 0."""
    with av.open(str(path), "w", format="mpegts") as out:
        s = out.add_stream("libx264", rate=round(fps))
        assert isinstance(s, av.VideoStream)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.codec_context.options = {"preset": "ultrafast", "g": "12", "bf": "2"}
        for i, img in enumerate(images):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def restarted_ts(
    dst: Path, images: Sequence[np.ndarray], cut: int, fps: float, size: tuple[int, int]
) -> Path:
    """``images`` as two MPEG-TS segments (split at ``cut``) whose timestamps both start at
    the same value, joined byte for byte — what concatenating an NVR's segment files gives."""
    a, b = dst.with_suffix(".a.ts"), dst.with_suffix(".b.ts")
    _segment(a, images[:cut], fps, size)
    _segment(b, images[cut:], fps, size)
    dst.write_bytes(a.read_bytes() + b.read_bytes())
    return dst


def _picture(i: int) -> np.ndarray:
    img = np.full((H, W, 3), 30, np.uint8)
    img[:, (i * 3) % (W - 8) : (i * 3) % (W - 8) + 8] = (0, 0, 255)
    return img


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("restart") / "joined.ts"
    return restarted_ts(path, [_picture(i) for i in range(48)], 24, FPS, (W, H))


def _raw_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [p.pts for p in c.demux(video=0) if p.size and p.pts is not None]


def test_the_sample_really_starts_its_timestamps_again(joined: Path) -> None:
    pts = _raw_pts(joined)
    assert min(pts[24:]) < min(pts[:24]) + 0.1 * 90_000  # the second half starts over


def test_file_source_keeps_one_timeline_across_the_join(joined: Path) -> None:
    src = FileSource(joined, "nvr")
    try:
        frames = list(src.frames())
    finally:
        src.close()
    assert len(frames) == 48
    steps = np.diff([f.pts for f in frames])
    assert np.allclose(steps, 1 / FPS, atol=1e-6), steps  # no step back, no gap at the join
    assert [f.seq for f in frames] == list(range(48))
    walls = [f.wall_time_ms for f in frames]
    assert all(b > a for a, b in itertools.pairwise(walls))


def test_the_decoder_backends_keep_the_same_timeline(joined: Path) -> None:
    src = GpuDecodeSource(joined, "nvr", decoder=DecoderConfig(backend="cpu"))
    try:
        got = [f.pts for f in src.frames()]
    finally:
        src.close()
    ref = FileSource(joined, "nvr")
    try:
        want = [f.pts for f in ref.frames()]
    finally:
        ref.close()
    assert got == pytest.approx(want)


def test_sampling_skips_the_same_frames_on_both_sides_of_the_join(joined: Path) -> None:
    """Non-reference frames the sampler will reject are not decoded; the ledger of skipped
    frames works on the continuous timeline (raw pts repeat after the join)."""
    src = FileSource(joined, "nvr", analysis_fps=4)
    try:
        frames = list(src.frames())
    finally:
        src.close()
    assert src.frames_decoded + src.frames_skipped == 48
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert len(frames) == pytest.approx(48 / FPS * 4, abs=1)
    assert [f.seq for f in frames] == [round(p * FPS) for p in pts]


def test_a_clip_across_the_join_plays_in_order(joined: Path, tmp_path: Path) -> None:
    ring = filled_ring(joined, "nvr", max_seconds=30.0)
    params = ring.params
    assert params is not None
    span = ring.span(0.5, 3.5)  # 0–2 s is the first segment, 2–4 s the second
    info = remux_clip(params, span, tmp_path / "clip.mp4")
    assert info.start_pts_s <= 0.5 and info.end_pts_s >= 3.5
    with av.open(str(tmp_path / "clip.mp4")) as c:
        dts = [p.dts for p in c.demux(video=0) if p.size and p.dts is not None]
        c.seek(0)
        frames = list(c.decode(video=0))
    assert all(b > a for a, b in itertools.pairwise(dts))
    assert len(frames) == len(span)
    times = [float(f.time) for f in frames if f.time is not None]
    assert np.allclose(np.diff(times), 1 / FPS, atol=1e-3)
    # the pictures are in the order they were recorded: the bar moves 3 px a frame
    first = round(info.start_pts_s * FPS)
    for k, f in enumerate(frames):
        red = f.to_ndarray(format="bgr24")[H // 2, :, 2].astype(float)
        centre = float(np.average(np.arange(W), weights=np.clip(red - 60, 0, None)))
        assert abs(centre - ((first + k) * 3 % (W - 8) + 3.5)) <= 1.0, (k, centre)


def test_a_clip_cut_from_the_file_itself_follows_the_timeline(joined: Path, tmp_path: Path) -> None:
    """The file is the clip's fallback source (a ring that stalled or holds too little): read
    on the same timeline as the frames, a clip across the join starts where asked and shows the
    pictures in recorded order (before: a seek by raw timestamp landed in the wrong segment and
    the clip began after the join)."""
    info = clip_from_file(joined, 0.5, 3.5, tmp_path / "clip.mp4")
    assert info.covers(0.5, 3.5, tolerance_s=0.1), info
    with av.open(str(tmp_path / "clip.mp4")) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == info.packets
    first = round(info.start_pts_s * FPS)
    for k, f in enumerate(frames):
        red = f.to_ndarray(format="bgr24")[H // 2, :, 2].astype(float)
        centre = float(np.average(np.arange(W), weights=np.clip(red - 60, 0, None)))
        assert abs(centre - ((first + k) * 3 % (W - 8) + 3.5)) <= 1.0, (k, centre)
    late = clip_from_file(joined, 2.6, 3.5, tmp_path / "late.mp4")  # inside the second segment
    assert 2.0 - 1e-6 <= late.start_pts_s <= 2.6 and late.end_pts_s >= 3.5


# -- the timeline itself -------------------------------------------------------------------------

TB = 1 / 90_000
STEP = 7500  # ticks per frame at 12 fps


def _stream(starts: Sequence[int], n: int) -> list[tuple[int, bool]]:
    """(pts, keyframe) in decode order for segments of ``n`` frames starting at ``starts``,
    coded IPBB… (each P sent before the two B-frames shown ahead of it)."""
    out = []
    for start in starts:
        order = [0]
        for i in range(3, n, 3):
            order += [i, i - 2, i - 1]
        out += [(start + i * STEP, i == 0) for i in order]
    return out


def test_timeline_continues_after_a_restart_and_frames_follow_their_packets() -> None:
    tl = FileTimeline(TB, None, frame_s=1 / 12)
    packets = _stream([126_000, 126_000], 13)
    rel = [tl.packet(p, k) for p, k in packets]
    assert tl.restarts == 1
    # frames come out later (decoder delay) and in presentation order
    shown = sorted(p for p, _ in packets[:13]) + sorted(p for p, _ in packets[13:])
    frames = [tl.frame(p) for p in shown]
    assert frames == pytest.approx([i / 12 for i in range(26)])
    assert sorted(r for r in rel if r is not None) == pytest.approx(frames)


def test_timeline_keeps_forward_gaps_and_b_frame_reordering() -> None:
    tl = FileTimeline(TB, 0, frame_s=1 / 12)
    packets = _stream([0, 13 * STEP + 20 * 90_000], 13)  # a 20 s gap in the recording
    rel = [tl.packet(p, k) for p, k in packets]
    assert tl.restarts == 0
    assert max(r for r in rel if r is not None) == pytest.approx((25 * STEP + 20 * 90_000) * TB)


def test_timeline_without_pts_continues_a_frame_later() -> None:
    """Packets and frames without a pts (a bare elementary stream, a frame that does not start
    an MPEG-PS packet) are placed a frame period after the one before, the first at 0."""
    tl = FileTimeline(TB, None, frame_s=0.1)
    assert tl.packet(None, True) == 0.0
    assert tl.packet(None, False) == pytest.approx(0.1)
    assert tl.frame(None) == 0.0
    assert tl.frame(9000) == pytest.approx(0.0)  # the first pts is the origin
    assert tl.frame(None) == pytest.approx(0.1)


def test_frames_whose_pts_do_not_advance_are_timed_a_frame_apart() -> None:
    """A broken muxer stamps every frame alike (seen: an x265 encode fed frames without pts,
    every frame at pts 0 — before, 384 frames all at 0 s, the tracker and the red timer
    frozen, no violation and no warning): such frames go one frame period after the one
    before, later frames keep their own spacing, and they are counted."""
    tl = FileTimeline(TB, 0, frame_s=0.1)
    assert [tl.frame(0) for _ in range(4)] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert tl.stalled == 3
    # stamped correctly again: on from the last re-timed frame, with its own spacing
    assert [tl.frame(p) for p in (STEP, 2 * STEP)] == pytest.approx(
        [0.3 + STEP * TB] * 1 + [0.3 + 2 * STEP * TB]
    )
    assert tl.stalled == 3
    good = FileTimeline(TB, 0, frame_s=0.1)
    assert [good.frame(i * STEP) for i in range(5)] == pytest.approx(
        [i * STEP * TB for i in range(5)]
    )
    assert good.stalled == 0


def test_an_implausible_frame_rate_gives_way_to_the_codecs() -> None:
    """The broken file above claimed 2,310 fps (its duration is garbage); its H.265 stream
    says 6.017 fps, which is what the frames are timed by."""
    from fractions import Fraction
    from types import SimpleNamespace

    from sharpeyes.streams.decode import stream_fps

    broken = SimpleNamespace(
        average_rate=Fraction(2146360085, 928916),
        codec_context=SimpleNamespace(framerate=Fraction(34560000, 5743529)),
        guessed_rate=None,
        base_rate=None,
    )
    assert stream_fps(broken) == pytest.approx(6.017, abs=1e-3)
    fine = SimpleNamespace(
        average_rate=Fraction(30000, 1001),
        codec_context=SimpleNamespace(framerate=None),
        guessed_rate=None,
        base_rate=None,
    )
    assert stream_fps(fine) == pytest.approx(29.97, abs=1e-2)
    nothing = SimpleNamespace(
        average_rate=None,
        codec_context=SimpleNamespace(framerate=Fraction(90000, 1)),
        guessed_rate=None,
        base_rate=None,
    )
    assert stream_fps(nothing) == 0.0


# -- a real intersection recording, joined from two files ----------------------------------------

VIDEO = shared_dir() / "sample_videos" / "intersection_hanoi_b_640x480.mp4"
CONFIG = REPO / "sample_videos" / "intersection_hanoi_b.yaml"
SPAN = (150, 255)  # hb04–hb15 cross in this span (red until frame 254)
CUT = 190  # the join: hb07 crosses just after it (labelled frames 193–196)
KEY = "restart-test-key-0123456789"


def key(rec: dict[str, Any]) -> float:
    return float(rec["violation"]["crossed_stop_line_pts"])


def _analyze(video: Path, out: Path) -> list[dict[str, Any]]:
    rc = cli.main(
        ["analyze", str(video), "--config", str(CONFIG), "--out", str(out), "--no-progress"]
    )
    assert rc == 0
    lines = (out / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "red_light_violation"]


@dataclass(frozen=True)
class Span:
    """Frames SPAN of hanoi_b and what ``analyze`` charges on them as one continuous file."""

    images: list[np.ndarray]
    fps: float
    want: list[dict[str, Any]]

    @property
    def size(self) -> tuple[int, int]:
        return self.images[0].shape[1], self.images[0].shape[0]


@pytest.fixture(scope="module")
def span(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Span]:
    need(VIDEO.is_file(), f"sample video {VIDEO} not found")
    tmp = tmp_path_factory.mktemp("hanoi_span")
    with av.open(str(VIDEO)) as c:
        images = [
            f.to_ndarray(format="bgr24") for i, f in enumerate(c.decode(video=0)) if i <= SPAN[1]
        ][SPAN[0] :]
    fps = 6.02
    one = tmp / "one.ts"
    _segment(one, images, fps, (images[0].shape[1], images[0].shape[0]))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHARPEYES_EVIDENCE_KEY", KEY)
        yield Span(images, fps, _analyze(one, tmp / "one"))


def _same_charges(want: list[dict[str, Any]], got: list[dict[str, Any]], fps: float) -> None:
    """The same runners: each crossing and red age within one analysed frame."""
    frame_s = 1 / round(fps)
    assert len(want) >= 8 and len(got) == len(want)
    for a, b in zip(sorted(want, key=key), sorted(got, key=key), strict=True):
        assert abs(key(a) - key(b)) <= frame_s + 1e-6, (a["violation"], b["violation"])
        since_a, since_b = a["violation"]["seconds_since_red"], b["violation"]["seconds_since_red"]
        assert abs(since_a - since_b) <= frame_s + 1e-6
    join_s = (CUT - SPAN[0]) * frame_s
    assert any(0 < key(r) - join_s < 2.0 for r in got), "no runner crosses just after the join"


@pytest.mark.integration
def test_a_joined_recording_charges_what_one_continuous_recording_charges(
    span: Span, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same frames of hanoi_b, once as one file and once as two files joined whose
    timestamps start again at the join: the same runners are charged, each at the same
    crossing (±1 analysed frame) with the same red age, and every clip decodes in order."""
    monkeypatch.setenv("SHARPEYES_EVIDENCE_KEY", KEY)
    cut = CUT - SPAN[0]
    joined = restarted_ts(tmp_path / "joined.ts", span.images, cut, span.fps, span.size)
    got = _analyze(joined, tmp_path / "joined")
    _same_charges(span.want, got, span.fps)
    for rec in got:
        (rdir,) = (tmp_path / "joined" / "evidence").glob(f"*/*/{rec['event_id']}")
        doc = json.loads((rdir / "record.json").read_text(encoding="utf-8"))
        assert doc["clip"] is not None, doc.get("clip_error")
        with av.open(str(rdir / "clip.mp4")) as c:
            dts = [p.dts for p in c.demux(video=0) if p.size and p.dts is not None]
        assert all(b > a for a, b in itertools.pairwise(dts))
        assert len(dts) == doc["clip"]["packets"]


@pytest.mark.integration
def test_a_recording_whose_picture_size_changes_charges_the_same(
    span: Span, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second file at 1.5× the size (an NVR switching between a camera's streams): the
    pictures are scaled back to the size the intersection was built for, so the runners that
    were between the stop line and the entry line at the join are still charged and the red
    ages run on (before: the intersection was rebuilt, two runners were lost and every later
    red age restarted at the join)."""
    monkeypatch.setenv("SHARPEYES_EVIDENCE_KEY", KEY)
    cut = CUT - SPAN[0]
    w, h = span.size
    big = [cv2.resize(img, (w * 3 // 2, h * 3 // 2)) for img in span.images[cut:]]
    a, b = tmp_path / "a.ts", tmp_path / "b.ts"
    _segment(a, span.images[:cut], span.fps, span.size)
    _segment(b, big, span.fps, (w * 3 // 2, h * 3 // 2))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    got = _analyze(joined, tmp_path / "joined")
    _same_charges(span.want, got, span.fps)
    spanning = 0
    for rec in got:
        (rdir,) = (tmp_path / "joined" / "evidence").glob(f"*/*/{rec['event_id']}")
        image = cv2.imread(str(rdir / "3.jpg"))
        assert image is not None and image.shape[:2] == (h, w)  # boxes and picture agree
        doc = json.loads((rdir / "record.json").read_text(encoding="utf-8"))
        assert doc["clip"] is not None, doc.get("clip_error")
        with av.open(str(rdir / "clip.mp4")) as c:  # a clip across the join decodes whole
            decoded = [(f.width, f.height) for f in c.decode(video=0)]
        assert len(decoded) == doc["clip"]["packets"]
        assert set(decoded) <= {(w, h), (w * 3 // 2, h * 3 // 2)}
        spanning += len(set(decoded)) == 2
    assert spanning >= 1  # at least one clip holds pictures of both sizes


# -- a signal head hidden for a while (the same span) -------------------------------------------


@pytest.mark.integration
def test_a_head_hidden_mid_red_keeps_the_red_age_and_charges_nothing_unseen(
    span: Span, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Something dark stands in front of the signal head for 2.7 s mid-red (frames 185–200: a
    truck, a bus). The reader sees a dark head: a signal fault once it has lasted the dark hold,
    back-dated to when it went dark, and no crossing in that time is charged (hb06 and hb07
    cross at frames ~188 and ~198: a crossing while the head is dark waits for what it showed,
    and the fault says it is not known). When the same red comes back the phase runs on, so
    every later runner gets the red age it gets without the truck (before: the red was taken to
    begin when the head reappeared, and the ages of hb08–hb15 came out 8.5 s short, stated as
    seen)."""
    monkeypatch.setenv("SHARPEYES_EVIDENCE_KEY", KEY)
    first, last = 185 - SPAN[0], 200 - SPAN[0]
    images = [img.copy() for img in span.images]
    for img in images[first : last + 1]:
        img[150:260, 520:610] = (70, 75, 80)  # the head is at (551,182)-(569,231)
    hidden = tmp_path / "hidden.ts"
    _segment(hidden, images, span.fps, span.size)
    got = _analyze(hidden, tmp_path / "hidden")
    frame_s = 1 / round(span.fps)
    dark_from, dark_to = first * frame_s, (last + 1) * frame_s
    unseen = [r for r in span.want if dark_from <= key(r) <= dark_to]
    assert len(unseen) == 2
    want = [r for r in span.want if r not in unseen]
    assert len(got) == len(want)
    for a, b in zip(sorted(want, key=key), sorted(got, key=key), strict=True):
        assert abs(key(a) - key(b)) <= frame_s + 1e-6
        va, vb = a["violation"], b["violation"]
        assert abs(va["seconds_since_red"] - vb["seconds_since_red"]) <= frame_s + 1e-6
        assert a["extra"].get("red_onset") == b["extra"].get("red_onset")


def test_a_packet_without_pts_follows_the_packet_before_it() -> None:
    tl = FileTimeline(TB, 0, frame_s=0.1)
    assert tl.packet(0, True) == 0.0
    assert tl.packet(STEP, False) == pytest.approx(STEP * TB)
    assert tl.packet(None, False) == pytest.approx(STEP * TB + 0.1)
