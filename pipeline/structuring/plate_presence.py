"""Whether a camera can tell that a vehicle has no plate (无牌, GA/T 1400 HasPlate "false").

A view library takes HasPlate "false" for an unlicensed vehicle — a lead for a patrol. The
checkpoint reads used to say it of every vehicle whose lower edge three reads saw whole and on
which the plate detector found nothing; on the highway overpass (`highway_1280x720`, plates
about 15 px wide, found on 16 reads and read on none) that made 8 of 44 cars plateless, every
one of them with its plate in the picture. The detector not finding a plate says nothing of a
plate too small or too oblique for it to find — nor of a vehicle seen from the side or from
above, whose plate faces away.

:class:`PlatePresence` keeps what this camera showed: on the reads that found a plate at least
``readable_px`` wide (one that could be read), the plate's width as a share of its vehicle box's
width and the box's shape (width / height). A read that found no plate counts towards "no
plate" only when, by those, a plate on that vehicle would have been at least ``readable_px``
wide (its box at least the width the camera's plates need) and the box has the shape of the
vehicles whose plates it found (not :data:`ASPECT_SLACK` times wider or narrower for its
height: a flank, a motorcycle). Until plates were found so on :data:`MIN_TRACKS` vehicles the
camera says nothing either way: a foreign plate it never finds, a view from above, a far
camera — whether such a vehicle has a plate is not known, and it is not said.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

__all__ = ["ASPECT_SLACK", "KEPT", "MIN_TRACKS", "PlatePresence"]

MIN_TRACKS = 3
"""Vehicles on which the camera found a plate of a readable width before it says of another
that it has none."""
KEPT = 200
"""Latest such plates kept (a camera whose zoom changed follows within a few minutes)."""
ASPECT_SLACK = 1.5
"""A box this many times wider for its height than the median of the boxes whose plates were
found, or narrower, is a vehicle seen from another side or another kind of vehicle (a car
crossing the view shows its flank: about twice as wide for its height as its front; a
motorcycle's front is about half as wide for its height as a car's, and carries no plate)."""


@dataclass(slots=True)
class PlatePresence:
    """What one camera's reads showed of its plates' size and its vehicles' shape."""

    readable_px: float
    _seen: deque[tuple[int, float, float]] = field(default_factory=lambda: deque(maxlen=KEPT))

    def add(self, track_id: int, plate_w: float, box_w: float, box_h: float) -> None:
        """A read of track ``track_id`` found a plate ``plate_w`` px wide in a vehicle box
        ``box_w`` × ``box_h`` (only plates at least ``readable_px`` wide are kept)."""
        if plate_w >= self.readable_px and box_w > 0 and box_h > 0:
            self._seen.append((track_id, plate_w / box_w, box_w / box_h))

    @property
    def tracks(self) -> int:
        """Vehicles among the kept plates."""
        return len({t for t, _, _ in self._seen})

    def would_show(self, box_w: float, box_h: float) -> bool:
        """Whether a plate on a vehicle in a ``box_w`` × ``box_h`` box would have been found
        by this camera's reads (see the module docstring)."""
        if self.tracks < MIN_TRACKS or box_w <= 0 or box_h <= 0:
            return False
        share = statistics.median(r for _, r, _ in self._seen)
        aspect = statistics.median(a for _, _, a in self._seen)
        shape = (box_w / box_h) / aspect
        return box_w * share >= self.readable_px and 1.0 / ASPECT_SLACK <= shape <= ASPECT_SLACK
