"""A washed-out camera (haze, fog, a dirty dome, a flare): the picture's tonal range is measured
from the picture itself and, when a veil has squeezed it, the detector is shown the picture
stretched back to the full range (pipeline/contrast.py); everything else keeps the camera's
own pixels."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sharpeyes.pipeline.contrast import (
    LIFT_ON,
    MAX_GAIN,
    MEASURE_EVERY_S,
    RANGE_ON,
    DetectorContrast,
    tonal_range,
)
from sharpeyes.pipeline.denoise import DetectorDenoise
from sharpeyes.pipeline.types import ImageBGR
from tests._hanoi_runs import HANOI, analyse, clean_span, copy_span, same_runners
from tests.conftest import need
from tests.test_denoise import Pictures, run_reported, street


def scene() -> ImageBGR:
    """A clear picture: :func:`street` with dark tyres and shadows under the cars and white
    zebra stripes (a clear day's picture spans 200 levels or more)."""
    img = street()
    for x in range(40, 640 - 80, 130):
        img[220:232, x : x + 70] = 12  # shadow and tyres
    img[300:330, 40:600:40] = 245  # zebra stripes
    img[300:330, 41:600:40] = 245
    return img


def veiled(img: ImageBGR, contrast: float, lift: float) -> ImageBGR:
    """``img`` under a veil of light: its range squeezed by ``contrast`` and lifted by ``lift``
    levels (haze adds light, it does not take it away)."""
    out: ImageBGR = np.clip(img.astype(np.float32) * contrast + lift, 0, 255).astype(np.uint8)
    return out


def test_the_tonal_range_ignores_a_few_highlights() -> None:
    img = np.full((200, 300, 3), 100, np.uint8)
    img[:, :150] = 60
    assert tonal_range(img) == (60.0, 100.0)
    img[:2, :30] = 255  # a lamp, burnt-in text: 60 of 60 000 pixels
    assert tonal_range(img) == (60.0, 100.0)
    big = np.zeros((2160, 3840, 3), np.uint8)
    big[:, 1920:] = 200
    assert tonal_range(big) == (0.0, 200.0)  # sampled, same answer


def test_a_clear_picture_goes_to_the_detector_as_it_is() -> None:
    c = DetectorContrast()
    clear = scene()
    assert c(clear, 0.0) is clear
    assert c.stretched == 0 and c.span is not None and c.span >= RANGE_ON


def test_a_veiled_picture_is_stretched_back_for_the_detector() -> None:
    c = DetectorContrast()
    clear = scene()
    fog = veiled(clear, 0.45, 110.0)
    low, high = tonal_range(fog)
    assert high - low < RANGE_ON
    seen = c(fog, 0.0)
    assert c.stretched == 1 and seen.shape == fog.shape
    got_low, got_high = tonal_range(seen)
    assert got_low <= 2 and got_high >= 253
    # the stretch undoes the veil: the picture is close to the clear one again
    assert (
        np.abs(seen.astype(int) - clear.astype(int)).mean()
        < 0.25 * np.abs(fog.astype(int) - clear.astype(int)).mean()
    )


def test_a_nearly_flat_picture_is_not_blown_up_into_noise() -> None:
    c = DetectorContrast()
    flat = veiled(scene(), 0.1, 100.0)  # ~20 levels
    seen = c(flat, 0.0)
    low, high = tonal_range(flat)
    got_low, got_high = tonal_range(seen)
    assert got_high - got_low <= MAX_GAIN * (high - low) + 2


def test_the_range_follows_the_weather() -> None:
    """Measured once per MEASURE_EVERY_S and smoothed: fog lifting is followed within seconds,
    one bright picture does not switch the stretch off."""
    c = DetectorContrast()
    fog, clear = veiled(scene(), 0.45, 110.0), scene()
    assert c(fog, 0.0) is not fog
    assert c(clear, 0.5 * MEASURE_EVERY_S) is not clear  # not measured again within the second
    assert c(clear, 1.0 * MEASURE_EVERY_S) is not clear  # one clear measurement: still foggy
    for i in range(2, 12):
        c(clear, i * MEASURE_EVERY_S)
    assert c(clear, 12 * MEASURE_EVERY_S) is clear


@pytest.mark.integration
def test_a_washed_out_camera_still_charges_the_runners(tmp_path: Path) -> None:
    """Frames 90–230 of hanoi_b (runners hb01–hb07) under a strong veil: with the detector
    shown the stretched picture the runners are charged where and when they were on the clear
    copy, and nobody else; without it fewer, and fewer vehicles are seen."""
    need(HANOI.is_file(), f"sample video {HANOI} not found")
    need(shutil.which("ffmpeg") is not None, "ffmpeg not found")
    copy_span(HANOI, tmp_path / "fog.mp4", VEIL)
    clear, _ = clean_span()
    stretched, kinds = analyse(tmp_path / "fog.mp4", tmp_path / "stretched")
    raw, raw_kinds = analyse(tmp_path / "fog.mp4", tmp_path / "raw", stretch_contrast=False)
    assert len(clear) >= 6
    assert same_runners(stretched, clear), (stretched, clear)
    assert len(stretched) >= len(clear) - 1, (stretched, clear)
    assert len(raw) < len(stretched), (raw, stretched)
    assert raw_kinds["vehicle_pass"] < kinds["vehicle_pass"]


VEIL = "eq=contrast=0.4:brightness=0.2:saturation=0.5"


@pytest.mark.parametrize("veil", [False, True])
def test_health_prometheus_and_the_console_api_say_when_a_picture_is_washed_out(
    veil: bool,
) -> None:
    r = run_reported(
        Pictures(8, lambda _: veiled(scene(), 0.45, 110.0) if veil else scene()),
        contrast=DetectorContrast(),
        denoise=DetectorDenoise(640),
    )
    stretched = r.summary.frames_stretched
    assert (stretched == 8) is veil and (stretched == 0) is not veil
    assert len(r.changed) == 8 and all(r.changed) is veil and any(r.changed) is veil
    health = r.health
    assert health.tonal_range is not None and health.contrast_stretched is veil
    assert (health.tonal_range < RANGE_ON) is veil
    assert r.runner.contrast is not None and r.runner.contrast.active is veil
    assert r.public.contrast_stretched is veil and r.public.tonal_range == health.tonal_range
    assert not r.public.noise_filtered  # the stretch does not make a clean picture "noisy"
    assert f'sharpeyes_stream_tonal_range{{camera="cam"}} {health.tonal_range}' in r.prometheus


def test_a_picture_that_is_only_dark_is_left_as_it_is() -> None:
    """An under-exposed picture keeps its blacks at 0; a veil adds light and lifts them. Only
    the veil is stretched (the dark one stretched lost its few levels to compression
    artefacts: a runner charged on a neighbour's box)."""
    c = DetectorContrast()
    dark = veiled(scene(), 0.5, -10.0)  # blacks at 0, range ~110
    low, high = tonal_range(dark)
    assert low < LIFT_ON and high - low < RANGE_ON
    assert c(dark, 0.0) is dark and not c.active
