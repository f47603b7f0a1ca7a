"""Interlaced video (an analogue camera behind a DVR, a D1 / 960H encoder, a 1080i camera): each
coded picture weaves two fields captured a field period apart, and whatever moved is drawn as
a comb. Every source deinterlaces the frames the decoder flags (``streams/fields.py``): the
later field is rebuilt from the earlier one where it combs, and kept where nothing moved.

Measured (``docs/STRUCTURING.md``, ``docs/RED_LIGHT_RESULTS.md``): the Beijing checkpoint clip
woven into interlaced H.264 (``ffmpeg -vf tinterlace=mode=interleave_top,setfield=tff -flags
+ildct+ilme -x264opts tff=1``): plates 3/8 exact and one false plate as woven → 8/8, 0 false.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import tests._rtsp_fixtures as _rtsp_fixtures
from benchmarks.eval_plates import DEFAULT_LABELS, Report, evaluate, load_events, load_labels
from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
from sharpeyes.api.commands.camera_check import PictureQuality
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.runner import RunSummary
from sharpeyes.pipeline.types import Frame
from sharpeyes.streams.config import RtspConfig
from sharpeyes.streams.factory import frames_deinterlaced, make_source
from sharpeyes.streams.fields import deinterlace, needs_deinterlace, top_field_first
from sharpeyes.streams.file_source import FileSource
from sharpeyes.streams.gpu_decode import DecoderConfig, GpuDecodeSource
from sharpeyes.streams.rtsp_source import RtspSource
from tests._rtsp_fixtures import RtspServer
from tests.conftest import need

rtsp_server_factory = _rtsp_fixtures.rtsp_server_factory

REPO = Path(__file__).resolve().parents[1]
W, H, FIELD_RATE, N = 160, 96, 24, 24  # N woven frames from 2N field pictures
RADIUS, STEP = 20, 2  # the disc moves STEP px per field


def field_picture(i: int) -> np.ndarray:
    """The scene at field time ``i``: a white disc moving right over a static background with
    texture in both directions (vertical bars and two-row stripes near the top)."""
    img = np.full((H, W, 3), 40, np.uint8)
    img[:, ::8] = 90  # vertical bars
    img[4:20:4] = 130  # thin horizontal stripes (detail a deinterlacer must keep)
    img[5:20:4] = 130
    cv2.circle(img, (30 + STEP * i, H // 2 + 10), RADIUS, (255, 255, 255), -1)
    return img


def woven(k: int, top_first: bool = True) -> np.ndarray:
    """Frame ``k`` as an interlaced camera codes it: the first field's rows from field time
    2k, the second field's from 2k + 1."""
    first, second = field_picture(2 * k), field_picture(2 * k + 1)
    out = first.copy()
    later = slice(1, None, 2) if top_first else slice(0, None, 2)
    out[later] = second[later]
    return out


def combs(image: np.ndarray, level: int = 40) -> int:
    """Pixels that stand out from both rows beside them by more than ``level`` (same sign): a
    comb's teeth. Every row is tested, so the test does not depend on the field order."""
    g = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.int32)
    own, above, below = g[1:-1], g[:-2], g[2:]
    return int(np.count_nonzero((own - above) * (own - below) > level * level))


def _encode(path: Path, *, flag: bool) -> Path:
    """The field pictures woven into interlaced H.264 by FFmpeg (``flag``: coded as interlaced,
    field order top first, as a DVR writes; otherwise the woven pictures coded as progressive —
    an interlaced signal encoded without saying so)."""
    raw = path.with_suffix(".fields.mp4")
    with av.open(str(raw), "w") as out:
        s = out.add_stream("libx264", rate=FIELD_RATE)
        assert isinstance(s, av.VideoStream)
        s.width, s.height, s.pix_fmt = W, H, "yuv444p"
        s.codec_context.options = {"preset": "ultrafast", "qp": "0"}
        for i in range(2 * N):
            f = av.VideoFrame.from_ndarray(field_picture(i), format="bgr24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    vf = "tinterlace=mode=interleave_top" + (",setfield=tff" if flag else "")
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(raw), "-vf", vf, "-c:v", "libx264"]
    cmd += ["-pix_fmt", "yuv420p", "-crf", "10", "-preset", "ultrafast"]
    if flag:
        cmd += ["-flags", "+ildct+ilme", "-x264opts", "tff=1"]
    subprocess.run([*cmd, str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def interlaced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _encode(tmp_path_factory.mktemp("fields") / "dvr.mp4", flag=True)


@pytest.fixture(scope="module")
def unflagged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _encode(tmp_path_factory.mktemp("fields") / "woven.mp4", flag=False)


def _frames(source: FileSource | GpuDecodeSource | RtspSource, limit: int = N) -> list[Frame]:
    got: list[Frame] = []
    try:
        for f in source.frames():
            got.append(f)
            if len(got) >= limit:
                break
    finally:
        source.close()
    return got


# -- the operation ---------------------------------------------------------------------------


@pytest.mark.parametrize("top_first", [True, False])
def test_the_later_field_is_rebuilt_where_it_combs_and_kept_where_nothing_moved(
    top_first: bool,
) -> None:
    k = 3
    frame = woven(k, top_first)
    assert combs(frame) > 60  # the disc, drawn twice
    out = deinterlace(frame, top_first)
    assert combs(out) < 10  # a tip of the disc one row high may stand out, as in any picture
    assert out is not frame and combs(frame) > 60  # the input is not changed
    first = slice(0, None, 2) if top_first else slice(1, None, 2)
    assert np.array_equal(out[first], frame[first])  # the earlier field is the picture
    # where nothing moved the later field keeps its own rows: the stripes and the bars
    still = np.ones((H, W), bool)
    for i in (2 * k, 2 * k + 1):
        disc = np.zeros((H, W), np.uint8)
        cv2.circle(disc, (30 + STEP * i, H // 2 + 10), RADIUS + 4, 1, -1)
        still &= disc == 0
    assert np.array_equal(out[still], frame[still])
    # the disc is where the earlier field put it, whole (not two half-discs)
    _, xs = np.nonzero((out > 200).all(axis=2))
    want = 30 + STEP * 2 * k
    assert abs((xs.min() + xs.max()) / 2 - want) <= 1


def test_a_still_picture_keeps_its_detail() -> None:
    """Nothing moved: the stripes two rows high and the bars are kept row for row. A detail one
    row high in the later field cannot be told from a comb (the disc's top or bottom tip, a
    few pixels) and is rebuilt from the rows beside it."""
    picture = field_picture(0)
    for top_first in (True, False):
        out = deinterlace(picture, top_first)
        assert np.array_equal(out[:24], picture[:24])  # the stripes
        changed = np.count_nonzero((out != picture).any(axis=2))
        assert changed <= 12, (top_first, changed)


def test_which_frames_are_deinterlaced() -> None:
    class F:
        interlaced_frame = True

    class P:
        interlaced_frame = False

    assert needs_deinterlace(F(), "auto") and not needs_deinterlace(P(), "auto")
    assert needs_deinterlace(P(), "on") and not needs_deinterlace(F(), "off")


# -- every source ----------------------------------------------------------------------------


def test_an_interlaced_file_is_analysed_without_combs(interlaced: Path) -> None:
    with av.open(str(interlaced)) as c:
        stream = c.streams.video[0]
        first = next(c.decode(video=0))
        assert first.interlaced_frame and top_field_first(stream)
    src = FileSource(interlaced, "dvr")
    frames = _frames(src)
    assert len(frames) == N and src.frames_deinterlaced == N
    assert frames_deinterlaced(src) == N
    assert max(combs(f.image) for f in frames) < 20
    woven_frames = _frames(FileSource(interlaced, "dvr", deinterlace="off"))
    assert min(combs(f.image) for f in woven_frames[1:]) > 60  # what they were


def test_every_decoder_backend_deinterlaces_the_same(interlaced: Path) -> None:
    gpu = GpuDecodeSource(interlaced, "dvr", decoder=DecoderConfig(backend="cpu"))
    got = _frames(gpu)
    assert frames_deinterlaced(gpu) == N
    want = _frames(FileSource(interlaced, "dvr"))
    assert len(got) == len(want) == N
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a.image, b.image)


def test_a_camera_says_its_signal_is_interlaced_when_the_stream_does_not(unflagged: Path) -> None:
    """Woven pictures coded as progressive: nothing in the stream tells, so ``auto`` leaves
    them; ``deinterlace: on`` in the camera config (through the one factory every entry point
    uses) removes the combs, ``off`` never touches a flagged stream."""

    def run(cam: CameraConfig) -> tuple[list[Frame], int]:
        source = make_source(cam, RtspConfig())
        frames = list(source.frames())
        n = frames_deinterlaced(source)
        source.close()
        return frames, n

    as_coded, n = run(CameraConfig(id="woven", url=str(unflagged)))
    assert n == 0 and min(combs(f.image) for f in as_coded[1:]) > 60
    told, n = run(CameraConfig(id="woven", url=str(unflagged), deinterlace="on"))
    assert n == N and max(combs(f.image) for f in told) < 20


@pytest.mark.integration
@pytest.mark.rtsp
def test_an_interlaced_rtsp_camera_is_analysed_without_combs(
    interlaced: Path, rtsp_server_factory: Callable[[dict[str, str]], RtspServer]
) -> None:
    """The field coding travels in the H.264 stream over RTP: the live source deinterlaces as
    the file source does."""
    server = rtsp_server_factory({"/dvr": str(interlaced)})
    src = RtspSource(server.url("/dvr"), "dvr")
    deadline = time.monotonic() + 30
    got: list[Frame] = []
    try:
        for f in src.frames():
            got.append(f)
            if len(got) >= 8 or time.monotonic() > deadline:
                break
    finally:
        src.close()
    assert len(got) >= 8 and src.frames_deinterlaced >= 8
    assert max(combs(f.image) for f in got) < 20


# -- the operator is told -----------------------------------------------------------------


def test_health_prometheus_and_the_api_say_a_camera_is_interlaced(interlaced: Path) -> None:
    """An engineer sees that a camera's video is interlaced and its combs undone: camera
    health, ``GET /streams``, Prometheus; and an installer in ``camera-check``'s picture line.
    The detector is shown the deinterlaced pictures."""
    from sharpeyes.api.commands.run import health_public
    from sharpeyes.api.node.health import CameraEntry, camera_health
    from sharpeyes.api.node.prom import build_registry, render
    from sharpeyes.pipeline.config import EventsConfig, TrackerConfig
    from sharpeyes.pipeline.events import TrackEventBuilder
    from sharpeyes.pipeline.runner import StreamRunner
    from sharpeyes.pipeline.supervisor import WorkerStatus
    from sharpeyes.pipeline.tracking.bytetrack import ByteTracker
    from tests.test_denoise import _Seen
    from tests.test_prom_events import FakeRuntime
    from tests.test_supervisor import ListSink

    detector = _Seen()
    runner = StreamRunner(
        source=FileSource(interlaced, "cam"),
        detector=detector,
        tracker=ByteTracker(TrackerConfig()),
        events=TrackEventBuilder("cam", EventsConfig(), class_names=["car"], class_codes={}),
        sinks=[ListSink()],
        prefetch_depth=0,
    )
    runner.run()
    assert len(detector.shown) == N and max(combs(img) for img in detector.shown) < 20
    cam = CameraConfig.model_validate({"id": "cam", "url": str(interlaced)})
    health = camera_health(CameraEntry(cam, runner=runner), WorkerStatus("cam"), failed_after=3)
    assert health.frames_deinterlaced == N
    assert health_public(health).frames_deinterlaced == N

    class Runtime(FakeRuntime):
        def health(self) -> dict[str, object]:
            return {"cam": health}

    text = render(build_registry(Runtime({}))).decode()  # type: ignore[arg-type]
    assert f'sharpeyes_stream_deinterlaced_frames_total{{camera="cam"}} {float(N)}' in text
    told = PictureQuality.of(RunSummary("cam"), deinterlaced=N)
    assert "interlaced: deinterlaced" in told.line() and "隔行" in told.line("zh")
    assert told.as_dict()["deinterlaced"] is True
    assert "interlaced" not in PictureQuality.of(RunSummary("cam")).line()


# -- what it is for: a checkpoint camera's plates -----------------------------------------------


def _plates(video: Path, out: Path, mode: str) -> Report:
    config = out.with_suffix(".yaml")
    text = (REPO / "sample_videos" / "plates_closeup_beijing.yaml").read_text("utf-8")
    config.write_text(text + f"\ndeinterlace: {mode}\n", encoding="utf-8")
    result = analyze_video(
        AnalyzeOptions(video=video, config=config, out=out, progress=False),
    )
    line = result.summary_lines()[0]
    assert ("pictures deinterlaced" in line) == (mode == "auto"), line
    fps, vehicles = load_labels(DEFAULT_LABELS)
    return evaluate(vehicles, load_events(out / "events.jsonl", fps))


def test_an_interlaced_checkpoint_camera_reads_its_plates(
    sample_videos: Path, tmp_path: Path
) -> None:
    src = sample_videos / "plates_closeup_beijing_640x360.mp4"
    need(src.is_file(), f"{src} not found")
    video = tmp_path / "dvr.mp4"
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf"]
    cmd += ["tinterlace=mode=interleave_top,setfield=tff", "-c:v", "libx264", "-crf", "20"]
    cmd += ["-preset", "veryfast", "-flags", "+ildct+ilme", "-x264opts", "tff=1", str(video)]
    subprocess.run(cmd, check=True)
    fixed = _plates(video, tmp_path / "auto", "auto")
    assert fixed.plates_exact >= fixed.readable_plates - 1, fixed.to_json()  # measured 8/8
    assert fixed.false_plates == []
    combed = _plates(video, tmp_path / "off", "off")
    assert combed.plates_exact < fixed.plates_exact, combed.to_json()  # measured 3/8, 1 false


def test_the_setting_reads_yaml_on_and_off_as_meant() -> None:
    """YAML 1.1 reads a bare ``on`` / ``off`` as true / false; the camera takes them as meant,
    and a value it does not know is refused with the field's name."""
    import yaml
    from pydantic import ValidationError

    for text, want in (("on", "on"), ("off", "off"), ("auto", "auto"), ("'off'", "off")):
        doc = yaml.safe_load(f"id: c\ndeinterlace: {text}\n")
        assert CameraConfig.model_validate(doc).deinterlace == want
    with pytest.raises(ValidationError, match="deinterlace"):
        CameraConfig.model_validate({"id": "c", "deinterlace": "sometimes"})
