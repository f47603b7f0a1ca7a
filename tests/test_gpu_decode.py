"""Decoder backend selection and fallback (CPU machine: only ``cpu`` is usable here)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from sharpeyes.pipeline.errors import DecodeError, StreamOpenError
from sharpeyes.pipeline.types import Frame
from sharpeyes.streams.gpu_decode import (
    DecoderConfig,
    DecoderUnavailableError,
    GpuDecodeSource,
    host_image,
    placeholder,
    probe_decoders,
)
from tests._models_fixtures import require_shared
from tests.test_streams_file import wholly_damaged_clip

CLIP = "sample_videos/highway_640x360.mp4"


def unusable() -> list[str]:
    return [k for k, v in probe_decoders().items() if v is not None]


def test_probe_reports_every_backend_and_cpu_is_usable() -> None:
    probes = probe_decoders()
    assert set(probes) == {"cpu", "pyav-cuda", "nvdec"}
    assert probes["cpu"] is None


def test_a_file_whose_every_frame_is_damaged_is_refused_as_by_the_file_source(
    tmp_path: Path,
) -> None:
    clip, broken = wholly_damaged_clip(tmp_path)
    src = GpuDecodeSource(str(broken), "c1")
    with pytest.raises(DecodeError, match="not one of its 30 decoded frame"):
        list(src.frames())
    assert src.frames_damaged == src.frames_decoded == 30
    whole = GpuDecodeSource(str(clip), "c1")
    assert len(list(whole.frames())) == 30 and whole.frames_damaged == 0


def test_cpu_decoder_yields_sampled_bgr_frames() -> None:
    src = GpuDecodeSource(require_shared(CLIP), "c1", analysis_fps=5.0)
    assert src.decoder_in_use == "h264 (pyav cpu)" and src.fallback_reason is None
    frames = list(src.frames())
    assert src.frames_decoded == 341
    assert 55 <= len(frames) <= 58  # 341 frames at 29.97 fps → 5 per second
    assert frames[0].image.shape == (360, 640, 3) and frames[0].device_image is None
    assert all(b.pts > a.pts for a, b in itertools.pairwise(frames))
    assert frames[0].keyframe


@pytest.mark.parametrize("backend", ["pyav-cuda", "nvdec"])
def test_unusable_gpu_decoder_falls_back_or_fails(backend: str) -> None:
    if backend not in unusable():
        pytest.skip(f"{backend} is usable on this machine")
    path = require_shared(CLIP)
    src = GpuDecodeSource(path, decoder=DecoderConfig(backend=backend, fallback="cpu"))
    assert src.decoder_in_use == "h264 (pyav cpu)"
    assert src.fallback_reason and backend in src.fallback_reason
    assert next(iter(src.frames())).image.shape == (360, 640, 3)
    with pytest.raises(DecoderUnavailableError, match=backend):
        GpuDecodeSource(path, decoder=DecoderConfig(backend=backend, fallback="fail"))


def test_bad_input_is_a_stream_error_whatever_the_backend(tmp_path: Path) -> None:
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"\x00" * 100)
    for backend in ("cpu", "pyav-cuda", "nvdec"):
        with pytest.raises(StreamOpenError) as info:
            GpuDecodeSource(bad, decoder=DecoderConfig(backend=backend, fallback="fail"))
        assert not isinstance(info.value, DecoderUnavailableError)


def test_config_rejects_unknown_values() -> None:
    with pytest.raises(ValueError):
        DecoderConfig.model_validate({"backend": "vaapi"})
    with pytest.raises(ValueError):
        DecoderConfig.model_validate({"backend": "cpu", "gpu": True})


def test_close_stops_iteration_and_frames_is_one_shot() -> None:
    src = GpuDecodeSource(require_shared(CLIP))
    it = src.frames()
    next(it)
    src.close()
    assert sum(1 for _ in it) <= 1
    with pytest.raises(RuntimeError):
        next(src.frames())


def test_placeholder_and_host_image_of_a_device_frame() -> None:
    ph = placeholder(1080, 1920)
    assert ph.shape == (1080, 1920, 3) and ph.strides[:2] == (0, 0)
    assert not ph.flags.writeable
    nv12 = np.full((96, 64), 128, np.uint8)
    nv12[:64] = 200
    frame = Frame("c", 0, 0.0, 0, image=placeholder(64, 64), device_image=nv12)
    assert frame.width == 64 and frame.height == 64
    bgr = host_image(frame)
    assert bgr.shape == (64, 64, 3) and abs(int(bgr[0, 0, 0]) - 214) <= 2


def test_the_decoder_backends_flag_damaged_pictures_as_the_file_source_does(tmp_path: Path) -> None:
    """One truth for damage: the same damaged recording through the GPU node's decoder (its CPU
    backend here) flags the same frames corrupt as the file source."""
    from sharpeyes.streams.file_source import FileSource
    from tests.test_streams_file import damaged_clip

    _clean, damaged, hit = damaged_clip(tmp_path)
    with FileSource(damaged) as src:
        expected = [f.seq for f in src.frames() if f.corrupt]
    frames = list(GpuDecodeSource(str(damaged), "c1").frames())
    flagged = [i for i, f in enumerate(frames) if f.corrupt]
    assert expected and flagged == expected and flagged[0] >= hit
