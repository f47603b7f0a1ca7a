"""A noisy camera (dusk, night, high gain): the noise is measured from the picture itself and,
when it is high enough to blind the detector, the detector is shown a filtered picture
(pipeline/denoise.py); everything else keeps the camera's own pixels."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from sharpeyes.api.node.health import CameraHealth
from sharpeyes.api.rest.schemas import StreamHealthPublic
from sharpeyes.pipeline.config import EventsConfig, TrackerConfig
from sharpeyes.pipeline.denoise import MEASURE_EVERY_S, NOISE_ON, DetectorDenoise, noise_sigma
from sharpeyes.pipeline.events import TrackEventBuilder
from sharpeyes.pipeline.protocols import SourceInfo
from sharpeyes.pipeline.runner import RunSummary, StreamRunner
from sharpeyes.pipeline.tracking.bytetrack import ByteTracker
from sharpeyes.pipeline.types import Detections, Frame, ImageBGR, ObjectKind
from tests._hanoi_runs import HANOI, analyse, clean_span, copy_span, same_runners
from tests.conftest import need
from tests.test_supervisor import ListSink, NoDetections


def street(h: int = 360, w: int = 640) -> ImageBGR:
    """A clean picture with edges and ramps: a sky gradient, a road, cars, lane marks."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 3] = np.linspace(200, 140, h // 3, dtype=np.uint8)[:, None, None]
    img[h // 3 :] = (90, 95, 100)
    for x in range(40, w - 80, 130):
        cv2.rectangle(img, (x, h // 2), (x + 70, h // 2 + 40), (30, 40, 160), -1)
        cv2.rectangle(img, (x + 10, h // 2 + 5), (x + 60, h // 2 + 18), (200, 200, 200), -1)
    for y in range(h // 3 + 10, h, 40):
        cv2.line(img, (w // 2, y), (w // 2, y + 20), (230, 230, 230), 3)
    return img


def noisy(img: ImageBGR, sigma: float, seed: int = 0) -> ImageBGR:
    """``img`` with Gaussian luma noise of ``sigma`` grey levels (the same in B, G and R: what
    the measurement reads; independent noise per channel reads ~0.67 of it in grey)."""
    rng = np.random.default_rng(seed)
    out = img.astype(np.float32) + rng.normal(0.0, sigma, img.shape[:2])[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def test_the_noise_level_is_measured_from_the_picture_not_from_its_content() -> None:
    clean = street()
    assert noise_sigma(clean) < 1.0  # edges and ramps are not noise
    for sigma in (4.0, 8.0, 16.0):
        got = noise_sigma(noisy(clean, sigma))
        assert got == pytest.approx(sigma, rel=0.15), (sigma, got)
    assert noise_sigma(np.zeros((2, 2, 3), np.uint8)) == 0.0


def test_a_clean_picture_goes_to_the_detector_as_it_is() -> None:
    d = DetectorDenoise(640)
    clean = street()
    assert d(clean, 0.0) is clean
    assert d.filtered == 0 and d.level is not None and d.level < NOISE_ON


def test_a_noisy_picture_is_filtered_for_the_detector_and_its_noise_followed() -> None:
    d = DetectorDenoise(640)
    clean = street()
    picture = noisy(clean, 12.0)
    seen = d(picture, 0.0)
    assert seen is not picture and seen.shape == picture.shape and d.filtered == 1
    assert noise_sigma(seen) < 0.5 * noise_sigma(picture)
    # closer to what the camera filmed (the clean picture) than the noisy one is
    err = np.abs(seen.astype(int) - clean.astype(int)).mean()
    assert err < 0.6 * np.abs(picture.astype(int) - clean.astype(int)).mean()
    # measured once per MEASURE_EVERY_S of stream time: a clean picture within the second is
    # still filtered at the running level; after it the level follows the light down
    assert d(clean, 0.5 * MEASURE_EVERY_S) is not clean
    level = d.level
    for i in range(1, 12):
        d(clean, i * MEASURE_EVERY_S)
    assert d.level is not None and level is not None and d.level < min(NOISE_ON, level)
    assert d(clean, 12 * MEASURE_EVERY_S) is clean


def test_a_large_picture_is_measured_as_the_detector_sees_it() -> None:
    """A 1280-px picture the detector shrinks to 640 px (bilinear, 2 × 2 pixels averaged):
    half its noise reaches the detector."""
    picture = noisy(street(720, 1280), 6.0)
    d = DetectorDenoise(640)
    d(picture, 0.0)
    assert d.level == pytest.approx(3.0, rel=0.2)
    full = DetectorDenoise(0)
    full(picture, 0.0)
    assert full.level == pytest.approx(6.0, rel=0.15)


@pytest.mark.integration
def test_a_noisy_camera_still_charges_the_runners(tmp_path: Path) -> None:
    """Frames 90–230 of hanoi_b (runners hb01–hb07) with strong temporal sensor noise (σ ≈ 17
    levels): with the detector shown the filtered picture most runners are charged, each where
    and when it was on the clean copy, and nobody else; without it the detector is blind."""
    need(HANOI.is_file(), f"sample video {HANOI} not found")
    need(shutil.which("ffmpeg") is not None, "ffmpeg not found")
    copy_span(HANOI, tmp_path / "noisy.mp4", "noise=alls=30:allf=t:all_seed=1")
    clean, _ = clean_span()
    filtered, kinds = analyse(tmp_path / "noisy.mp4", tmp_path / "filtered")
    raw, raw_kinds = analyse(tmp_path / "noisy.mp4", tmp_path / "raw", denoise=False)
    assert len(clean) >= 6
    # every charge is a clean-copy runner: same place, same moment
    assert same_runners(filtered, clean), (filtered, clean)
    assert len(filtered) >= len(clean) - 2, (filtered, clean)
    assert len(raw) <= len(filtered) - 2, (raw, filtered)
    assert raw_kinds["vehicle_pass"] < kinds["vehicle_pass"]


class Pictures:
    """``n`` pictures ``make(i)`` at 5 fps, as a frame source."""

    def __init__(self, n: int, make: Callable[[int], ImageBGR]) -> None:
        self.n, self.make = n, make
        h, w = make(0).shape[:2]
        self.info = SourceInfo("cam", "test://", w, h, 5.0, "raw")

    def frames(self) -> Iterator[Frame]:
        for i in range(self.n):
            yield Frame("cam", i, i / 5, 1_700_000_000_000 + i * 200, self.make(i))

    def close(self) -> None:
        pass


class _Seen(NoDetections):
    """No detections; keeps the pictures the detector was shown."""

    def __init__(self) -> None:
        self.shown: list[ImageBGR] = []

    def detect(self, images: Sequence[ImageBGR]) -> list[Detections]:
        self.shown.extend(images)
        return super().detect(images)


@dataclass
class Reported:
    """A camera run through the runner and what an operator is told of it."""

    runner: StreamRunner
    summary: RunSummary
    changed: list[bool]  # per analysed picture: the detector was shown other pixels than kept
    health: CameraHealth
    public: StreamHealthPublic
    prometheus: str


def run_reported(source: Pictures, **views: Any) -> Reported:
    """``source`` through a runner with the detector views ``views`` (``denoise=``,
    ``contrast=``); its health, its ``GET /streams`` item and the Prometheus text."""
    from sharpeyes.api.commands.run import health_public
    from sharpeyes.api.node.health import CameraEntry, camera_health
    from sharpeyes.api.node.prom import build_registry, render
    from sharpeyes.pipeline.config import CameraConfig
    from sharpeyes.pipeline.supervisor import WorkerStatus
    from tests.test_prom_events import FakeRuntime

    detector = _Seen()
    kept: list[ImageBGR] = []
    runner = StreamRunner(
        source=source,
        detector=detector,
        tracker=ByteTracker(TrackerConfig()),
        events=TrackEventBuilder("cam", EventsConfig(), class_names=["car"], class_codes={}),
        sinks=[ListSink()],
        observer=lambda f, *_: kept.append(f.image),
        prefetch_depth=0,
        **views,
    )
    summary = runner.run()
    assert len(detector.shown) == len(kept) == source.n
    changed = [not np.array_equal(a, b) for a, b in zip(detector.shown, kept, strict=True)]
    entry = CameraEntry(CameraConfig.model_validate({"id": "cam", "url": "x.mp4"}), runner=runner)
    health = camera_health(entry, WorkerStatus("cam"), failed_after=3)

    class Runtime(FakeRuntime):
        def health(self) -> dict[str, object]:
            return {"cam": health}

    text = render(build_registry(Runtime({}))).decode()  # type: ignore[arg-type]
    return Reported(runner, summary, changed, health, health_public(health), text)


@pytest.mark.parametrize(("sigma", "filtered"), [(0.0, False), (10.0, True)])
def test_health_prometheus_and_the_console_api_say_how_noisy_a_camera_is(
    sigma: float, filtered: bool
) -> None:
    """An engineer looking at a camera that misses objects at night sees why: its noise, and
    that the detector is shown a filtered picture. The detector sees the filtered picture; the
    observer (crops, evidence) the camera's own."""
    r = run_reported(
        Pictures(12, lambda i: noisy(street(), sigma, seed=i) if sigma else street()),
        denoise=DetectorDenoise(640),
    )
    assert (r.summary.frames_denoised == 12) is filtered
    assert (r.summary.frames_denoised == 0) is not filtered
    assert all(r.changed) is filtered and any(r.changed) is filtered
    health = r.health
    assert health.noise_sigma is not None and health.noise_filtered is filtered
    assert health.noise_sigma == pytest.approx(max(sigma, 0.5), abs=1.5)
    assert r.public.noise_filtered is filtered and r.public.noise_sigma == health.noise_sigma
    assert f'sharpeyes_stream_noise_sigma{{camera="cam"}} {health.noise_sigma}' in r.prometheus


def test_a_large_noisy_picture_is_shrunk_to_the_detector_then_filtered() -> None:
    """1280 × 720 with noise σ 12 and a detector of 640 px: the picture is averaged down to
    640 × 360 (2 × 2 pixels: half the noise left), filtered, and the factor back is 2."""
    picture = noisy(street(720, 1280), 12.0)
    d = DetectorDenoise(640)
    view, factor = d.view(picture, 0.0)
    assert view.shape == (360, 640, 3) and factor == pytest.approx(2.0)
    assert noise_sigma(view) < 0.3 * 12.0
    same, one = d.view(picture, 0.1, shrink=False)  # the picture's size kept
    assert same.shape == picture.shape and one == 1.0
    clean = street(720, 1280)
    c = DetectorDenoise(640)
    assert c.view(clean, 0.0) == (clean, 1.0)  # a clean picture: as it is, no shrink


class _BoxAtQuarter(NoDetections):
    """One car whose box is the second quarter of whatever picture it is shown."""

    def detect(self, images: Sequence[ImageBGR]) -> list[Detections]:
        out = []
        for im in images:
            h, w = im.shape[:2]
            box = [[w / 4, h / 4, w / 2, h / 2]]
            out.append(Detections.create(box, [0.9], [2], [int(ObjectKind.MOTOR_VEHICLE)]))
        return out


def test_boxes_found_on_a_shrunk_picture_are_in_the_frame_s_pixels() -> None:
    frames_seen: list[Detections] = []

    runner = StreamRunner(
        source=Pictures(4, lambda i: noisy(street(720, 1280), 12.0, seed=i)),
        detector=_BoxAtQuarter(),
        tracker=ByteTracker(TrackerConfig()),
        events=TrackEventBuilder("cam", EventsConfig(), class_names=["car"], class_codes={}),
        sinks=[ListSink()],
        observer=lambda f, dets, *_: frames_seen.append(dets),
        prefetch_depth=0,
        denoise=DetectorDenoise(640),
    )
    runner.run()
    assert len(frames_seen) == 4
    for dets in frames_seen:
        assert np.allclose(dets.xyxy, [[320, 180, 640, 360]], atol=1.0), dets.xyxy
