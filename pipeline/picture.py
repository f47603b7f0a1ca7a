"""Whether a picture shows colour at all.

A camera in monochrome / infrared night mode sends pictures whose three channels are equal up to
compression noise. Nothing read from such a picture can name a colour: not a lamp's
(:mod:`sharpeyes.pipeline.signal`), not a body's, a garment's or a plate's
(:mod:`sharpeyes.pipeline.structuring`). Every stage that names colours asks here first, so a
night picture yields "unknown", never a colour guessed from grey levels.
"""

from __future__ import annotations

import numpy as np

from sharpeyes.pipeline.types import Frame, ImageBGR

__all__ = ["COLOUR_SPREAD", "PictureColour", "picture_has_colour"]

COLOUR_SPREAD = 12
"""A pixel whose BGR channels differ by more than this is coloured (a monochrome picture's
channels differ by a few levels of compression noise at most)."""


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
    top, bottom = (
        (image.shape[0] // 4, image.shape[0] - image.shape[0] // 4) if middle_only else (0, None)
    )
    sample = image[top:bottom:stride, ::stride]
    if sample.size == 0:
        return False
    spread = sample.max(axis=2).astype(np.int16) - sample.min(axis=2).astype(np.int16)
    coloured = int(np.count_nonzero(spread > COLOUR_SPREAD))
    return bool(coloured >= max(5, spread.size // 1000))


class PictureColour:
    """:func:`picture_has_colour` (``middle_only``: on-screen text does not count) of the
    latest frame asked about, computed once per frame however many stages or tracks ask."""

    def __init__(self) -> None:
        self._key: tuple[str, int, float] | None = None
        self._value = True
        self.monochrome_frames = 0

    def __call__(self, frame: Frame) -> bool:
        key = (frame.stream_id, frame.seq, frame.pts)
        if key != self._key:
            self._key, self._value = key, picture_has_colour(frame.image, middle_only=True)
            self.monochrome_frames += int(not self._value)
        return self._value
