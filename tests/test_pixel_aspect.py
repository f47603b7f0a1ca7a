"""A camera whose pixels are not square (an anamorphic sub-stream, a D1 / 960H encoder: the
picture is squeezed into fewer columns and the stream's sample aspect ratio says how wide one
pixel is shown). Players stretch it back; so does every source here, before anything is
measured: the detector sees vehicles in their true shape, a camera's lines and regions are drawn
on the picture as an installer sees it, and evidence pictures are not squeezed. The coded
pictures are kept in clips (their SAR with them, so players show them right).

Measured on copies of the sample clips squeezed to 3/4 of their width with SAR 4:3 (``ffmpeg
-vf "scale=iw*3/4:ih,setsar=4/3"``): Beijing checkpoint plates 6/8 → 8/8 exact, 0 false;
hanoi_b red-light 14/15 → 15/15, 0 false (``docs/RED_LIGHT_RESULTS.md``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest
from pydantic import ValidationError

import tests._rtsp_fixtures as _rtsp_fixtures
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.types import Frame
from sharpeyes.streams.config import RtspConfig
from sharpeyes.streams.decode import SQUARE, pixel_aspect, square_size
from sharpeyes.streams.factory import make_source
from sharpeyes.streams.file_source import FileSource
from sharpeyes.streams.gpu_decode import (
    DecoderConfig,
    GpuDecodeSource,
    nv12_host_to_bgr,
    stretch_nv12,
)
from sharpeyes.streams.remux import clip_from_file, remux_clip
from sharpeyes.streams.rtsp_source import RtspSource
from tests._rings import filled_ring
from tests._rtsp_fixtures import RtspServer

rtsp_server_factory = _rtsp_fixtures.rtsp_server_factory

W, H, FPS, N = 192, 96, 12, 24  # the picture as shown
CODED_W = 144  # as stored: 3/4 of the width, each pixel shown 4/3 wide
SAR = Fraction(4, 3)
RADIUS = 30


def shown(i: int) -> np.ndarray:
    """The picture a player shows: a white disc (round only when stretched right) moving right,
    and a red bar at the left edge."""
    img = np.full((H, W, 3), 30, np.uint8)
    cv2.circle(img, (60 + 2 * i, H // 2), RADIUS, (255, 255, 255), -1)
    img[:, :8] = (0, 0, 255)
    return img


def _squeezed(path: Path, sar: Fraction | None) -> Path:
    """``shown`` squeezed to ``CODED_W`` columns, H.264 with ``sar`` in its VUI (None: no
    aspect stated — a sub-stream squeezed without saying so)."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=FPS)
        assert isinstance(s, av.VideoStream)
        s.width, s.height, s.pix_fmt = CODED_W, H, "yuv420p"
        if sar is not None:
            s.codec_context.sample_aspect_ratio = sar
        s.codec_context.options = {"preset": "ultrafast", "g": str(FPS), "crf": "12"}
        for i in range(N):
            coded = cv2.resize(shown(i), (CODED_W, H), interpolation=cv2.INTER_AREA)
            f = av.VideoFrame.from_ndarray(np.asarray(coded, np.uint8), format="bgr24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


@pytest.fixture(scope="module")
def anamorphic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A squeezed recording that says so (SAR 4:3)."""
    return _squeezed(tmp_path_factory.mktemp("sar") / "d1.mp4", SAR)


@pytest.fixture(scope="module")
def unflagged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same pictures with no aspect stated."""
    return _squeezed(tmp_path_factory.mktemp("sar") / "sub.mp4", None)


def disc_size(image: np.ndarray) -> tuple[int, int]:
    """Width and height of the white disc (pixels brighter than mid-grey in every channel)."""
    ys, xs = np.nonzero((image > 128).all(axis=2))
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


@pytest.mark.parametrize(
    ("size", "sar", "want"),
    [
        ((144, 96), Fraction(4, 3), (192, 96)),
        ((704, 576), Fraction(12, 11), (768, 576)),  # PAL D1, 4:3
        ((1440, 1080), Fraction(4, 3), (1920, 1080)),
        ((640, 240), Fraction(1, 2), (640, 480)),  # half-height fields: the height stretched
        ((640, 480), SQUARE, (640, 480)),
        ((101, 51), Fraction(3, 2), (152, 51)),  # even
    ],
)
def test_square_size_stretches_the_squeezed_side(
    size: tuple[int, int], sar: Fraction, want: tuple[int, int]
) -> None:
    assert square_size(*size, sar) == want


@pytest.mark.parametrize(
    ("sar", "want"),
    [
        (None, SQUARE),
        (Fraction(0, 1), SQUARE),  # "unknown" in FFmpeg
        (Fraction(201, 200), SQUARE),  # within 1 %: rounding in an encoder, not anamorphic
        (Fraction(16, 11), Fraction(16, 11)),
        (Fraction(1, 2), Fraction(1, 2)),
        (Fraction(10, 1), SQUARE),  # implausible: broken metadata, not a 10× squeeze
    ],
)
def test_pixel_aspect_trusts_only_plausible_ratios(sar: Fraction | None, want: Fraction) -> None:
    stream = SimpleNamespace(
        codec_context=SimpleNamespace(sample_aspect_ratio=sar), sample_aspect_ratio=None
    )
    assert pixel_aspect(stream) == want


def test_an_anamorphic_recording_is_analysed_with_square_pixels(anamorphic: Path) -> None:
    with av.open(str(anamorphic)) as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.width, pixel_aspect(stream)) == (CODED_W, SAR)
    src = FileSource(anamorphic, "d1")
    try:
        assert (src.info.width, src.info.height) == (W, H)
        frames = list(src.frames())
    finally:
        src.close()
    assert len(frames) == N
    for i, f in enumerate(frames):
        assert f.image.shape == (H, W, 3)
        w, h = disc_size(f.image)
        assert abs(w - h) <= 2, (i, w, h)  # round, as shown — squeezed it is 3/4 as wide
        assert np.abs(f.image.astype(int) - shown(i).astype(int)).mean() < 6


def test_every_decoder_backend_stretches_the_same(anamorphic: Path) -> None:
    """``GpuDecodeSource`` (its CPU backend here, as on a node without NVDEC) gives the frames
    and size ``FileSource`` gives: one camera, one picture, whichever decoder runs it."""
    src = GpuDecodeSource(anamorphic, "d1", decoder=DecoderConfig(backend="cpu"))
    try:
        assert (src.info.width, src.info.height) == (W, H)
        frames = list(src.frames())
    finally:
        src.close()
    ref = FileSource(anamorphic, "d1")
    try:
        expected = list(ref.frames())
    finally:
        ref.close()
    assert len(frames) == len(expected) == N
    for got, want in zip(frames, expected, strict=True):
        assert np.array_equal(got.image, want.image)


def test_device_nv12_frames_are_stretched_like_host_frames() -> None:
    """A frame kept on the GPU (NV12) is stretched plane by plane; converted to BGR it is the
    host picture stretched (checked with CPU tensors: the same torch operations)."""
    torch = pytest.importorskip("torch")
    coded = cv2.resize(shown(3), (CODED_W, H), interpolation=cv2.INTER_AREA)
    i420 = cv2.cvtColor(coded, cv2.COLOR_BGR2YUV_I420)
    y = i420[:H]
    u = i420[H : H + H // 4].reshape(H // 2, CODED_W // 2)
    v = i420[H + H // 4 :].reshape(H // 2, CODED_W // 2)
    nv12 = np.vstack((y, np.stack((u, v), axis=-1).reshape(H // 2, CODED_W)))
    got = nv12_host_to_bgr(stretch_nv12(torch.from_numpy(nv12), SAR).numpy())
    assert got.shape == (H, W, 3)
    want = cv2.resize(nv12_host_to_bgr(nv12), (W, H), interpolation=cv2.INTER_LINEAR)
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 3
    w, h = disc_size(got)
    assert abs(w - h) <= 2
    assert stretch_nv12(torch.from_numpy(nv12), SQUARE) is not None


def test_clips_keep_the_coded_pictures_and_their_aspect(anamorphic: Path, tmp_path: Path) -> None:
    """Evidence clips are the camera's own packets: the coded size, and the SAR with them, so a
    player (and the console's video element) shows the picture the frames were analysed on."""
    clip_from_file(anamorphic, 0.5, 1.5, tmp_path / "file.mp4")
    ring = filled_ring(anamorphic, "d1", max_seconds=10.0)
    assert ring.params is not None
    remux_clip(ring.params, ring.span(0.5, 1.5), tmp_path / "ring.mp4")
    for name in ("file.mp4", "ring.mp4"):
        with av.open(str(tmp_path / name)) as c:
            stream = c.streams.video[0]
            first = next(c.decode(video=0))
            assert (first.width, first.height) == (CODED_W, H)
            assert pixel_aspect(stream) == SAR, name


@pytest.mark.integration
@pytest.mark.rtsp
def test_an_anamorphic_rtsp_camera_is_analysed_with_square_pixels(
    anamorphic: Path, rtsp_server_factory: Callable[[dict[str, str]], RtspServer]
) -> None:
    """The SAR travels in the SPS over RTP: the live source stretches as the file source does."""
    server = rtsp_server_factory({"/d1": str(anamorphic)})
    src = RtspSource(server.url("/d1"), "d1")
    got: list[Frame] = []
    deadline = time.monotonic() + 30
    try:
        for f in src.frames():
            got.append(f)
            if len(got) >= 6 or time.monotonic() > deadline:
                break
    finally:
        src.close()
    assert len(got) >= 6
    assert (src.info.width, src.info.height) == (W, H)
    for f in got:
        assert f.image.shape == (H, W, 3)
        w, h = disc_size(f.image)
        assert abs(w - h) <= 2, (w, h)


def _frames(cam: CameraConfig) -> list[Frame]:
    source = make_source(cam, RtspConfig())
    try:
        return list(source.frames())
    finally:
        source.close()


def test_a_camera_says_how_wide_its_pixels_are_when_the_stream_does_not(
    unflagged: Path, anamorphic: Path
) -> None:
    """``pixel_aspect`` in the camera config: a sub-stream squeezed without saying so is
    stretched like one that says so (through the one factory every entry point uses); ``1``
    keeps the coded pictures whatever the stream says."""
    as_stored = _frames(CameraConfig(id="sub", url=str(unflagged)))
    assert as_stored[0].image.shape == (H, CODED_W, 3)  # nothing says it is squeezed
    told = _frames(CameraConfig(id="sub", url=str(unflagged), pixel_aspect="4:3"))
    assert len(told) == N and told[0].image.shape == (H, W, 3)
    w, h = disc_size(told[0].image)
    assert abs(w - h) <= 2
    gpu = GpuDecodeSource(unflagged, "sub", decoder=DecoderConfig(backend="cpu"), pixel_aspect=SAR)
    try:
        assert (gpu.info.width, gpu.info.height) == (W, H)
        assert next(iter(gpu.frames())).image.shape == (H, W, 3)
    finally:
        gpu.close()
    square = _frames(CameraConfig(id="d1", url=str(anamorphic), pixel_aspect=1))
    assert square[0].image.shape == (H, CODED_W, 3)


@pytest.mark.parametrize(
    ("given", "stored"), [("4:3", "4:3"), ("4/3", "4:3"), (1.5, "3:2"), ("12:11", "12:11")]
)
def test_the_pixel_aspect_setting_is_read_as_a_ratio(given: object, stored: str) -> None:
    assert CameraConfig.model_validate({"pixel_aspect": given}).pixel_aspect == stored


@pytest.mark.parametrize("given", ["wide", "0", "9:1", "1/0", [4, 3]])
def test_a_bad_pixel_aspect_setting_is_refused_with_its_name(given: object) -> None:
    with pytest.raises(ValidationError, match="pixel_aspect"):
        CameraConfig.model_validate({"pixel_aspect": given})
