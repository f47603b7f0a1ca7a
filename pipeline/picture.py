"""Whether a picture shows colour at all, how far it is under-exposed, and its white balance.

A camera in monochrome / infrared night mode sends pictures whose three channels are equal up to
compression noise. Nothing read from such a picture can name a colour: not a lamp's
(:mod:`sharpeyes.pipeline.signal`), not a body's, a garment's or a plate's
(:mod:`sharpeyes.pipeline.structuring`). Every stage that names colours asks here first, so a
night picture yields "unknown", never a colour guessed from grey levels.

Exposure (:func:`exposure_gain`): a camera that exposes a stage darker than another (auto
exposure against a bright sky, dusk, a dirty lens) turns a white car grey and a grey one black
— the colour stages compare lightness with limits. The brightest things of a traffic picture
(white paint on the road, white or silver cars, the sky) are near white in a well-exposed one;
a picture whose near-brightest pixels are well below white is brightened until they are
("white patch"), never darkened.

White balance (:func:`grey_balance`, :func:`picture_balance`): a camera whose white balance is
off tints everything, the grey road too; gains that make the picture's grey pixels neutral undo
it. The colour stages balance each object against the road around it and fall back to the whole
picture's balance where there is none (a vehicle filling a checkpoint camera's frame); the plate
reader reads the balanced region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.denoise import MEASURE_EVERY_S, noise_sigma
from sharpeyes.pipeline.types import Frame, ImageBGR

__all__ = [
    "BALANCE_SAMPLE_W",
    "COLOUR_SPREAD",
    "EXPOSURE_TARGET",
    "MAX_EXPOSURE_GAIN",
    "PictureBalance",
    "PictureColour",
    "balance_stride",
    "exposure_gain",
    "grey_balance",
    "picture_balance",
    "picture_has_colour",
]

COLOUR_SPREAD = 12
"""A pixel whose BGR channels differ by more than this is coloured (a monochrome picture's
channels differ by a few levels of compression noise at most)."""


EXPOSURE_TARGET = 235.0
"""The level (0–255) the near-brightest pixels of a picture are brought up to. On every sampled
frame of the seven sample clips the :data:`EXPOSURE_QUANTILE` percentile of the middle half's
brightest channel is 222–255 (per clip median 234–255): those pictures are left (almost) as
they are. Chosen among 235, 245 and 255 (and blends that leave 220–255 alone) on the labelled
views darkened ×0.8 … ×0.5 (``benchmarks/colour_eval.py --exposure``): see docs/STRUCTURING.md."""
EXPOSURE_QUANTILE = 99.5
MAX_EXPOSURE_GAIN = 2.5


BALANCE_SAMPLE_W = 160
"""A picture's balance and exposure are measured on a sample about this many pixels wide: stride
4 up to 640 px wide, 8 at 1280, 24 at 3840. On frames every 0.6 s of the seven sample clips the
gains at stride 8 on the 1280 × 720 clips are within 0.002 of stride 4's and the exposure within
0.016, for a quarter of the time (2.8 → 0.7 ms a picture); a few ms at any size (96 ms at
3840 × 2160 with stride 4)."""


def balance_stride(image: ImageBGR) -> int:
    """The sampling stride for :data:`BALANCE_SAMPLE_W`: 4, more for pictures over 640 px wide."""
    return max(4, int(image.shape[1]) // BALANCE_SAMPLE_W)


def _middle(image: ImageBGR, stride: int, middle_only: bool) -> ImageBGR:
    top, bottom = (
        (image.shape[0] // 4, image.shape[0] - image.shape[0] // 4) if middle_only else (0, None)
    )
    return image[top:bottom:stride, ::stride]


GREY_SPREADS: tuple[float, ...] = (0.5, 0.35, 0.25)
"""The grey-pixel tests of :func:`grey_balance`, one per pass: a pixel is grey when its channels,
balanced by the previous pass's gains, differ by less than this share of the largest. A camera
whose white balance is off tints the whole road: under a warm cast of R ×1.15, B ×0.8 a grey
road's channels differ by 30 % of the largest, so one strict test (0.25) on the raw pixels found
no road and left the cast in (held-out vehicles 86 → 37 %, ``benchmarks/colour_eval.py
--cast``). A loose first pass takes the tinted road (and leaves out saturated paint), its gains
remove most of the cast, and the stricter passes settle on the neutral pixels."""
GREY_MIN_PIXELS = 32
BALANCE_LIMITS = (0.6, 1.6)


def channel_max(px: NDArray[np.float32]) -> NDArray[np.float32]:
    """The largest channel of each pixel of ``px`` (N × 3): ``px.max(axis=1)``, computed over
    the three columns (numpy reduces a short last axis some thirty times slower)."""
    out: NDArray[np.float32] = np.maximum(np.maximum(px[:, 0], px[:, 1]), px[:, 2])
    return out


def channel_min(px: NDArray[np.float32]) -> NDArray[np.float32]:
    """The smallest channel of each pixel of ``px`` (N × 3), as :func:`channel_max`."""
    out: NDArray[np.float32] = np.minimum(np.minimum(px[:, 0], px[:, 1]), px[:, 2])
    return out


def grey_balance(
    px: NDArray[np.float32], min_pixels: int = GREY_MIN_PIXELS
) -> tuple[NDArray[np.float32], NDArray[np.bool_]] | None:
    """White balance from the grey pixels among ``px`` (N × 3, BGR): per-channel gains (mean
    preserving, each within :data:`BALANCE_LIMITS`) that make their mean neutral, and which
    pixels were taken as grey (:data:`GREY_SPREADS`; neither dark nor near clipping). None when
    fewer than ``min_pixels`` pass the first test."""
    # planar and contiguous: three column reductions over an N × 3 array cost four times as much
    b, g, r = np.ascontiguousarray(px.T, dtype=np.float32)
    mx = np.maximum(np.maximum(b, g), r)
    usable = (mx > 30) & (mx < 235)
    balance = np.ones(3, np.float32)
    bmx, bmn = mx, np.minimum(np.minimum(b, g), r)
    grey = usable
    for n, spread in enumerate(GREY_SPREADS):
        if n:  # balanced by the previous pass's gains
            bb, bg, br = b * balance[0], g * balance[1], r * balance[2]
            bmx, bmn = np.maximum(np.maximum(bb, bg), br), np.minimum(np.minimum(bb, bg), br)
        test = usable & ((bmx - bmn) < spread * np.maximum(bmx, 1.0))
        if int(np.count_nonzero(test)) < min_pixels:
            if n == 0:
                return None
            break
        grey = test
        mean = np.array([b[grey].mean(), g[grey].mean(), r[grey].mean()], np.float32)
        balance = np.clip(mean.mean() / np.maximum(mean, 1.0), *BALANCE_LIMITS).astype(np.float32)
    return balance, grey


@dataclass(frozen=True, slots=True)
class PictureBalance:
    """A picture's own white balance (BGR gains, :func:`grey_balance` over its middle half; ones
    when it shows too little grey) and exposure gain (:func:`exposure_gain`)."""

    gains: NDArray[np.float32]
    exposure: float


def picture_balance(image: ImageBGR, stride: int | None = None) -> PictureBalance:
    """The white balance of the picture's middle half (captions left out, as in
    :func:`picture_has_colour`) and the gain (1 … :data:`MAX_EXPOSURE_GAIN`) that brings the
    :data:`EXPOSURE_QUANTILE` percentile of the brightest *balanced* channel there up to
    :data:`EXPOSURE_TARGET` (1 for a picture already that bright, or a black one). Balanced
    first: under a colour cast the brightest channel is the cast's, brighter than the picture is
    exposed (a warm cast left white cars grey). ``stride``: every how many rows and columns are
    sampled (default :func:`balance_stride`)."""
    ones = np.ones(3, np.float32)
    sample = _middle(image, stride or balance_stride(image), True)
    if sample.size == 0:
        return PictureBalance(ones, 1.0)
    px = sample.reshape(-1, 3).astype(np.float32)
    found = grey_balance(px)
    gains = found[0] if found is not None else ones
    level = float(np.percentile(channel_max(np.minimum(px * gains, 255.0)), EXPOSURE_QUANTILE))
    if level <= 0.0:
        return PictureBalance(gains, 1.0)
    return PictureBalance(gains, float(min(max(EXPOSURE_TARGET / level, 1.0), MAX_EXPOSURE_GAIN)))


def exposure_gain(image: ImageBGR, stride: int | None = None) -> float:
    """:attr:`PictureBalance.exposure` of :func:`picture_balance`."""
    return picture_balance(image, stride).exposure


def picture_has_colour(image: ImageBGR, stride: int = 8, *, middle_only: bool = False) -> bool:
    """Whether ``image`` shows any colour: at least 0.1 % (and 5) of the pixels of a strided
    sample are coloured — lamps, tail lights and signs are enough, a night scene too.

    ``middle_only``: sample the middle half (rows ¼–¾) only. A camera's on-screen text (time,
    place, camera name) sits in the top and bottom quarters and is drawn in colour even in
    monochrome mode — a yellow caption on a grey picture is not a colour picture. The stages
    that name the colours of objects ask this way (on every sampled frame of the seven sample
    clips the middle half shows colour); the signal board asks about the whole picture, whose
    lamps — often in the top quarter — are what it reads.
    """
    sample = _middle(image, stride, middle_only)
    if sample.size == 0:
        return False
    spread = sample.max(axis=2).astype(np.int16) - sample.min(axis=2).astype(np.int16)
    coloured = int(np.count_nonzero(spread > COLOUR_SPREAD))
    return bool(coloured >= max(5, spread.size // 1000))


class PictureColour:
    """:func:`picture_has_colour` (``middle_only``: on-screen text does not count) and
    :func:`picture_balance` of the latest frame asked about, each computed once per frame
    however many stages or tracks ask; the sensor noise at most once every
    :data:`~sharpeyes.pipeline.denoise.MEASURE_EVERY_S` of a stream's time, as the detector's
    noise gate measures it (noise follows the light: it changes over minutes, not frames;
    measuring a 720p picture's takes 3 ms, as much as reading a plate's region)."""

    def __init__(self) -> None:
        self._key: tuple[str, int, float] | None = None
        self._value: bool | None = None
        self._balance: PictureBalance | None = None
        self._noise: tuple[str, float, float] | None = None  # stream, pts measured, σ
        self.monochrome_frames = 0

    def _frame(self, frame: Frame) -> None:
        key = (frame.stream_id, frame.seq, frame.pts)
        if key != self._key:
            self._key, self._value, self._balance = key, None, None

    def noise(self, frame: Frame) -> float:
        """The sensor noise of ``frame``'s stream (:func:`~sharpeyes.pipeline.denoise.
        noise_sigma` of a picture at most :data:`~sharpeyes.pipeline.denoise.MEASURE_EVERY_S`
        of stream time from it, grey levels)."""
        last = self._noise
        if (
            last is None
            or last[0] != frame.stream_id
            or abs(frame.pts - last[1]) >= MEASURE_EVERY_S
        ):
            last = self._noise = (frame.stream_id, frame.pts, noise_sigma(frame.image))
        return last[2]

    def __call__(self, frame: Frame) -> bool:
        self._frame(frame)
        if self._value is None:
            self._value = picture_has_colour(frame.image, middle_only=True)
            self.monochrome_frames += int(not self._value)
        return self._value

    def balance(self, frame: Frame) -> PictureBalance:
        """:func:`picture_balance` of ``frame``."""
        self._frame(frame)
        if self._balance is None:
            self._balance = picture_balance(frame.image)
        return self._balance

    def exposure(self, frame: Frame) -> float:
        """:func:`exposure_gain` of ``frame``."""
        return self.balance(frame).exposure
