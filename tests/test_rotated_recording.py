"""A phone recording stored sideways with a display rotation (a display matrix, as players and
OpenCV apply it): frames are analysed upright, the source reports the upright size, and the
evidence clip — from the file or from the packet ring — carries the same rotation, so overlays
drawn on upright frames line up with what a player shows."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from sharpeyes.streams.decode import display_rotation
from sharpeyes.streams.file_source import FileSource
from sharpeyes.streams.gpu_decode import (
    DecoderConfig,
    GpuDecodeSource,
    nv12_host_to_bgr,
    rotate_nv12,
)
from sharpeyes.streams.remux import clip_from_file, remux_clip
from tests._rings import filled_ring

W, H, FPS, N = 160, 96, 12, 36


def upright(i: int) -> np.ndarray:
    """An asymmetric picture: a red bar moving right, a white square top-left."""
    img = np.full((H, W, 3), 40, np.uint8)
    img[:, (i * 4) % (W - 20) : (i * 4) % (W - 20) + 20] = (0, 0, 255)
    img[4:24, 4:24] = 255
    return img


@pytest.fixture(scope="module")
def sideways(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pixels stored turned 90° clockwise with a display rotation of 90° counter-clockwise:
    a player shows :func:`upright`."""
    path = tmp_path_factory.mktemp("rot") / "phone.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=FPS)
        assert isinstance(s, av.VideoStream)
        s.width, s.height, s.pix_fmt = H, W, "yuv420p"
        s.codec_context.options = {"preset": "ultrafast", "g": "12"}
        s.set_display_rotation(90)
        for i in range(N):
            f = av.VideoFrame.from_ndarray(np.rot90(upright(i), -1).copy(), format="bgr24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def test_frames_are_analysed_upright(sideways: Path) -> None:
    assert display_rotation(str(sideways)) == 90
    src = FileSource(sideways, "phone")
    try:
        assert (src.info.width, src.info.height) == (W, H)
        frames = list(src.frames())
    finally:
        src.close()
    assert len(frames) == N and frames[0].image.shape == (H, W, 3)
    cap = cv2.VideoCapture(str(sideways))  # OpenCV applies the display matrix too
    ok, first = cap.read()
    cap.release()
    assert ok and first.shape == frames[0].image.shape
    assert np.abs(first.astype(int) - frames[0].image.astype(int)).mean() < 3
    assert frames[0].image[14, 14].min() > 200  # the white square is top-left, as shown


def _rotation_and_count(path: Path) -> tuple[float, int]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return float(frames[0].rotation), len(frames)


def test_clips_keep_the_rotation(sideways: Path, tmp_path: Path) -> None:
    info = clip_from_file(sideways, 1.0, 2.0, tmp_path / "file.mp4")
    rot, n = _rotation_and_count(tmp_path / "file.mp4")
    assert rot == 90 and n == info.packets
    ring = filled_ring(sideways, "phone", max_seconds=10.0)
    params = ring.params
    assert params is not None and params.rotation == 90
    span = ring.span(1.0, 2.0)
    remux_clip(params, span, tmp_path / "ring.mp4")
    rot, n = _rotation_and_count(tmp_path / "ring.mp4")
    assert rot == 90 and n == len(span)


def test_the_decoder_backends_turn_frames_upright_too(sideways: Path) -> None:
    """``GpuDecodeSource`` (here its CPU backend, as on a node without NVDEC) gives the same
    upright frames and size as ``FileSource``: the camera is the same whichever decoder runs."""
    src = GpuDecodeSource(sideways, "phone", decoder=DecoderConfig(backend="cpu"))
    try:
        assert (src.info.width, src.info.height) == (W, H)
        frames = list(src.frames())
    finally:
        src.close()
    ref = FileSource(sideways, "phone")
    try:
        expected = list(ref.frames())
    finally:
        ref.close()
    assert len(frames) == len(expected) == N
    for got, want in zip(frames, expected, strict=True):
        assert got.pts == pytest.approx(want.pts)
        assert np.array_equal(got.image, want.image)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_device_nv12_frames_turn_like_host_frames(rotation: int) -> None:
    """A frame kept on the GPU (NV12) is turned plane by plane; converted to BGR it equals the
    host picture turned by ``to_bgr`` (checked with CPU tensors: the same torch operations)."""
    torch = pytest.importorskip("torch")
    bgr = upright(5)
    nv12 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)  # planar → interleave the chroma
    y, u, v = nv12[:H], nv12[H : H + H // 4].reshape(H // 2, W // 2), nv12[H + H // 4 :]
    uv = np.stack((u, v.reshape(H // 2, W // 2)), axis=-1).reshape(H // 2, W)
    turned = rotate_nv12(torch.from_numpy(np.vstack((y, uv))), rotation).numpy()
    got = nv12_host_to_bgr(turned)
    want = np.rot90(nv12_host_to_bgr(np.vstack((y, uv))), rotation // 90)
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 2
