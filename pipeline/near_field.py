"""What the detector is shown of a camera whose objects fill the picture: the picture as is, or
shrunk (*near field*) — chosen per camera by comparing the two on the camera's own pictures.

A checkpoint (卡口) camera looks down on vehicle fronts that fill its picture. The COCO detector
learnt objects of a few to a few hundred pixels at its 640 input; frame-filling fronts at that
scale are mostly missed. On ``plates_closeup_beijing_640x360`` (every 12th frame, 85 pictures,
boxes ≥ 0.3) yolov5n found 29 objects at 384×640 and 82 on the same pictures shrunk to half; on
the six other sample clips the shrunk picture loses objects instead (highway_1280x720: 421 →
157; hanoi_b 701 → 298). docs/STRUCTURING.md measured the same with a smaller network input
(192×320: a vehicle in 93 of 127 sampled checkpoint pictures, 39 at 384×640). A camera set up
for one of those views states its input size; a camera that does not (the defaults, a new
camera, a view an installer did not think about) decides here:

1. **Two views.** *Full*: the picture as the detector gets it. *Near*: the picture shrunk by
   :data:`SHRINK` into the top-left of a canvas of the same size, the rest grey (the letterbox
   padding's value), so the detector — shared or not, any input size, batched with the node's
   other cameras of that picture size — sees the objects at half the scale; boxes are mapped
   back by the factor (:func:`near_view`). The probes use that canvas. Once a camera takes
   the near view, its pictures go whole to the camera's model at half the input instead
   (made then, by the entry point: a node shares it between the cameras that take it), which
   costs a third of the canvas's detection; a model of fixed shape keeps the canvas.
2. **Probes.** Once the full view has shown an object at least :data:`LARGE` of the picture's
   height (a camera whose objects never get that large is never probed), the detector also
   sees the near view — on every picture for :data:`WARM_S` seconds until the choice is clear,
   then every :data:`PROBE_S`; in the near view it sees the full one likewise. The two views'
   detections of the tracked kinds, at the camera's own thresholds, are matched (IoU ≥
   :data:`MATCH_IOU`); each view's *gain* is the confidence sum of its detections the other
   view did not find (:func:`unmatched_gain`). On a probe picture the tracker gets both views'
   objects (the view in use's, and the other's it missed): a checkpoint camera's first
   vehicles are tracked while it is still choosing.
3. **Choice.** Over the probes of the last :data:`MEMORY_S` seconds, the view not in use takes
   over when its gain is at least :data:`MIN_GAIN` and :data:`RATIO` × the gain of the view in
   use (hysteresis: the same test brings the full view back). Per probe picture, on the sample
   clips (full / near gain, sums over the pictures above): the checkpoint clip 3.4 / 29.0;
   highway_1280x720 136.1 / 5.0, highway_640x360 34.7 / 1.8, hanoi_b 163.0 / 4.7,
   intersection_topview 148.8 / 35.2, urban_buses 85.4 / 23.7, pedestrians_crossing 1.2 / 2.5.
   Through ``analyze`` (boxes at the camera's thresholds, probes from the first large object)
   the checkpoint camera takes the near view at 0.6 s, after 9 probes (4.4 against 0.0), and
   reads 8 of its 8 plates with no detector setting (2 of 8 as is); pedestrians_crossing, whose
   walkers come within a few metres of the camera (300–360 px of a 720-row picture), at 0.6 s
   after 14 (4.1 against 0.8), with the same three persons and the same two face captures;
   highway ×2 and intersection_topview are never probed, urban_buses 13 times and hanoi_b once,
   and neither switches.

Only the detector's view changes, as in :mod:`sharpeyes.pipeline.denoise`: tracks, crops,
plates, colours and evidence keep the camera's pixels. Frames kept on the GPU are shown as they
are (limit). ``near_field: on`` / ``off`` in a camera's config fixes the view; a camera whose
config sets its own ``detector.input_size`` keeps it (``auto`` is then off: the installer
chose the scale).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from sharpeyes.pipeline.geometry import iou_matrix
from sharpeyes.pipeline.types import Detections, ImageBGR, ObjectKind

__all__ = [
    "LARGE",
    "MATCH_IOU",
    "MEMORY_S",
    "MIN_GAIN",
    "PROBE_S",
    "RATIO",
    "SHRINK",
    "WARM_S",
    "NearField",
    "near_view",
    "unmatched",
    "unmatched_gain",
]

SHRINK = 0.5
"""Scale of the near view: the checkpoint clip's fronts (about 300–600 px at 640×360) come out
at the size the 640-input network finds best; the sample clips' network input at 192×320, the
same scale, was measured in docs/STRUCTURING.md."""

PAD_VALUE = 114  # the letterbox's grey (models/yolo.py): the canvas around the shrunk picture
WARM_S = 10.0
"""Seconds of stream time from the start (or from a switch) during which every analysed
picture is a probe until the choice is clear: a checkpoint camera's first vehicles are not lost
while the camera learns its view."""
PROBE_S = 5.0
"""Seconds between probes afterwards: one extra detection in every 5 s of video (at 5 analysed
pictures a second, 4 % of the detector's work)."""
MEMORY_S = 60.0
"""Probes older than this are forgotten: a camera whose view changes (a PTZ camera moved from a
junction to a checkpoint lane) gets the other view within a minute."""
MIN_GAIN = 4.0
"""Confidence sum (about eight confident objects) the other view must have found that the view
in use missed before it takes over; and what makes a choice *clear* (ends the warm probing)."""
RATIO = 4.0
"""How many times the view in use's own unmatched gain the other view's must be."""
MATCH_IOU = 0.5
LARGE = 1.0 / 3.0
"""Height (share of the picture's) of an object that makes a camera worth probing: the
checkpoint clip's fronts are 0.5–1 of its height, pedestrians_crossing's near walkers 0.42; the
traffic clips' vehicles rarely reach a third, so an ordinary camera is seldom or never probed."""
logger = logging.getLogger(__name__)

TRACKED = (ObjectKind.MOTOR_VEHICLE, ObjectKind.NON_MOTOR, ObjectKind.PERSON)


def near_view(image: ImageBGR, shrink: float = SHRINK) -> tuple[ImageBGR, float]:
    """``image`` shrunk by ``shrink`` into the top-left of a grey canvas of its own size, and
    the factor from the canvas's pixels back to the image's (1 / ``shrink``)."""
    h, w = image.shape[:2]
    sw, sh = max(1, round(w * shrink)), max(1, round(h * shrink))
    canvas = np.full_like(image, PAD_VALUE)
    canvas[:sh, :sw] = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    return canvas, w / sw


def unmatched(mine: Detections, other: Detections) -> Detections:
    """``mine``'s detections of the tracked kinds that no detection of the same kind in
    ``other`` overlaps by :data:`MATCH_IOU` (both in the frame's pixels)."""
    a, b = mine.of_kind(*TRACKED), other.of_kind(*TRACKED)
    if not len(a) or not len(b):
        return a
    same_kind = a.kind[:, None] == b.kind[None, :]
    found = ((iou_matrix(a.xyxy, b.xyxy) >= MATCH_IOU) & same_kind).any(axis=1)
    return a[~found]


def unmatched_gain(mine: Detections, other: Detections) -> float:
    """Confidence sum of :func:`unmatched` ``mine``: what ``mine`` found that ``other`` did
    not."""
    return float(unmatched(mine, other).confidence.sum())


@dataclass(frozen=True, slots=True)
class Probe:
    pts: float
    in_use: float  # unmatched gain of the view in use
    other: float  # unmatched gain of the view probed


class NearField:
    """The camera's choice of view (see module doc). ``mode``: ``auto`` chooses, ``on`` always
    the near view, ``off`` never (then the runner need not build one at all)."""

    def __init__(self, mode: str = "auto", name: str = "") -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"near_field must be auto, on or off, not {mode!r}")
        self.mode = mode
        self.name = name  # the camera's, for the log
        self.near = mode == "on"
        self.switches = 0
        self.probes = 0
        self.near_frames = 0
        self._memory: deque[Probe] = deque()
        self._since: float | None = None  # stream time of the first large object / the switch
        self._last_probe: float | None = None

    def _probe_now(self, pts: float, dets: Detections, height: int) -> bool:
        """Whether to probe the other view on this picture, given the view in use's
        detections: in ``auto`` mode, from the first picture with an object of at least
        :data:`LARGE` of its height on — every picture for :data:`WARM_S` until the choice is
        clear (pictures without a large object too: those are where the full view misses the
        objects that fill them), then every :data:`PROBE_S`; after a switch alike."""
        if self.mode != "auto":
            return False
        last = self._last_probe
        if last is not None and pts < last:  # the stream's clock went back: start again
            self._since, last, self._last_probe = None, None, None
            self._memory.clear()
        if self._since is None:
            if not self.near and not _large(dets, height):
                return False
            self._since = pts  # the first large object: from now on, every picture counts
        if last is None:
            return True
        warm = pts - self._since < WARM_S and not self._clear()
        return warm or pts - last >= PROBE_S

    def learn(self, pts: float, in_use: Detections, probed: Detections) -> None:
        """Record one probe (both views' detections in the frame's pixels, after the camera's
        own class and threshold policy) and switch views when the probed one clearly wins."""
        self._last_probe = pts
        self.probes += 1
        self._memory.append(
            Probe(pts, unmatched_gain(in_use, probed), unmatched_gain(probed, in_use))
        )
        while self._memory and pts - self._memory[0].pts > MEMORY_S:
            self._memory.popleft()
        own, other = self._sums()
        if other >= MIN_GAIN and other >= RATIO * own:
            logger.info(
                "camera %s: the detector now sees the picture %s (at %.1f s, over %d probes "
                "the %s view found %.1f of confidence the other did not, this one %.1f)",
                self.name,
                "as is" if self.near else "shrunk to half (objects fill it: near field)",
                pts,
                len(self._memory),
                "full" if self.near else "near",
                other,
                own,
            )
            self.near = not self.near
            self.switches += 1
            self._memory.clear()
            self._since = pts

    def _sums(self) -> tuple[float, float]:
        return sum(p.in_use for p in self._memory), sum(p.other for p in self._memory)

    def _clear(self) -> bool:
        """Whether the probes so far decide: one view's gain over :data:`MIN_GAIN` and
        :data:`RATIO` × the other's (the view in use leading: keep it)."""
        own, other = self._sums()
        return own >= MIN_GAIN and own >= RATIO * other

    def detect(
        self,
        image: ImageBGR,
        pts: float,
        detect: Callable[[ImageBGR], Detections],
        policy: Callable[[Detections], Detections] | None = None,
        detect_near: Callable[[ImageBGR], Detections] | None = None,
    ) -> Detections:
        """Detections of the view in use, in ``image``'s pixels (``detect``: the detector on
        one picture; ``policy``: the camera's class and threshold policy, applied to both views
        before they are compared and to the result), the other view probed when it is time.
        ``detect_near``: a detector at half the input, for the near view in use — the picture
        at half the scale at a third of the cost of the canvas (probes of the near view use the
        canvas: no second detector is made for a camera that never takes it)."""
        if self.near and detect_near is not None:
            dets = _policed(detect_near(image), policy)
        else:
            dets = self._view(image, self.near, detect, policy)
        if self.near:
            self.near_frames += 1
        if self._probe_now(pts, dets, image.shape[0]):
            probed = self._view(image, not self.near, detect, policy)
            self.learn(pts, dets, probed)
            # A probe picture was seen both ways: the tracker gets what either view found (the
            # probed view's objects the view in use missed join its detections), so the
            # objects of the pictures on which the camera is still choosing are not lost.
            dets = Detections.concat([dets, unmatched(probed, dets)])
        return dets

    @staticmethod
    def _view(
        image: ImageBGR,
        near: bool,
        detect: Callable[[ImageBGR], Detections],
        policy: Callable[[Detections], Detections] | None,
    ) -> Detections:
        view, factor = near_view(image) if near else (image, 1.0)
        return _policed(_scaled(detect(view), factor), policy)


def _policed(dets: Detections, policy: Callable[[Detections], Detections] | None) -> Detections:
    return policy(dets) if policy is not None else dets


def _large(dets: Detections, height: int) -> bool:
    """Whether ``dets`` hold an object of the tracked kinds at least :data:`LARGE` of the
    picture's ``height`` tall."""
    tracked = dets.of_kind(*TRACKED)
    return bool(len(tracked)) and bool(
        ((tracked.xyxy[:, 3] - tracked.xyxy[:, 1]) >= LARGE * height).any()
    )


def _scaled(dets: Detections, factor: float) -> Detections:
    if factor == 1.0 or not len(dets):
        return dets
    return dataclasses.replace(dets, xyxy=np.asarray(dets.xyxy * np.float32(factor), np.float32))
