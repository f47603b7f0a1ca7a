"""De-identification for release: blur every face and every plate but the subject's plate.

Issue 6 asks for an export in which bystanders cannot be identified. For one evidence image
:func:`deidentify` finds faces (YuNet through ``cv2.FaceDetectorYN``) and licence plates
(:class:`models.plate.PlateReader`), then blurs — strong Gaussian or pixelation — every face and
every plate except the one plate that belongs to the violating vehicle, which stays readable.

Which detected plate is the subject's (:func:`choose_subject_plate`), in order of preference:

1. a plate whose reading equals the recorded plate text (inside the subject box if any is);
2. the plate overlapping the subject's plate box the most (IoU ≥ 0.3);
3. among plates whose centre lies inside the subject vehicle's box, the one nearest the box's
   bottom centre (where a plate sits).

Without any subject information every plate is blurred. Faces are always blurred, the
subject's included: a release identifies a violating vehicle by its plate, never a person.

What the face and plate detectors miss
--------------------------------------
YuNet finds no face under a helmet or at a few pixels' size, and the plate detector misses the
small rear plates of motorbikes and scooters (both seen on the real clip intersection_hanoi_b).
So, when :class:`DeidDetectors` has an ``objects`` detector (:func:`default_detectors`: the
pipeline's COCO detector, yolov5n, at a low threshold), every image is also searched for
persons, two-wheelers (bicycle, motorcycle) and vehicles (car, bus, truck) and, beyond the
detected faces and plates, blurred are (``Region.kind``, with the object as evidence):

* ``head`` — the top :data:`HEAD_SHARE` of every person box (and :data:`HEAD_ABOVE` above
  it), full width, unless a detected face's blurred area already covers :data:`FACE_COVERS`
  of it;
* ``plate_region`` of a two-wheeler — the box below :data:`TWO_WHEELER_PLATE_TOP` of its
  height, full width, always (a found plate there may be a neighbour's);
* ``plate_region`` of a car, bus or truck — the lower-middle band :data:`VEHICLE_PLATE_BAND`
  of its box, when no detected plate's centre lies in that band;
* ``plate_region`` of a rider — a person box with no detected two-wheeler under it (the
  detector often finds the rider and not the motorbike it hides): the band
  :data:`RIDER_PLATE_BAND` of the person box's height, which reaches below the box.

The shares were measured on hanoi_b evidence images (640×480, camera behind and above the
traffic): helmets end at 0.22–0.25 of a seated rider's box and a standing person's head at
~0.13; motorbike rear plates sit at 0.40–0.60 of the motorbike box, 0.7–1.4 of the rider's
box from its top; car plates at 0.63–0.75 of the height, 0.26–0.53 of the width. Each share
leaves a margin over those, and :func:`blur_region` pads every region by 15 % more — the
policy is that a missed face is worse than a blurred wall.

The subject vehicle's plate stays readable: its area is the kept plate (or the record's plate
box) or, when neither is known but the vehicle box is, that box's plate region (its class taken
from the best-matching detected object; a two-wheeler's when none matches), reported as a kept
``plate_region``. The subject vehicle, and a rider sitting mostly inside its box, get no
``plate_region``. The subject rider's head is blurred like anyone's; when no person is detected
on a two-wheeler subject, a ``head`` region is estimated from its box
(:data:`SUBJECT_HEAD_ABOVE`). Any other ``plate_region`` (an estimate, not a detection) yields
to the subject's plate area, while faces, plates and heads blurred over it stay blurred.

The functions here are pure apart from model inference: they take the image and the subject's
boxes, return a new image and a :class:`DeidReport`, and never touch files.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import cv2
import numpy as np

from sharpeyes.pipeline.errors import ModelError
from sharpeyes.pipeline.types import Box, ImageBGR

if TYPE_CHECKING:
    from sharpeyes.models.plate import PlateReader
    from sharpeyes.pipeline.protocols import Detector

logger = logging.getLogger(__name__)

BlurMethod = Literal["gaussian", "pixelate"]
RegionKind = Literal["face", "plate", "head", "plate_region"]
BLUR_METHODS: tuple[BlurMethod, ...] = ("gaussian", "pixelate")
PAD_FRACTION = 0.15  # blurred area = the box grown by this fraction of its size on each side
PIXEL_BLOCKS = 8  # pixelation: blocks along the region's longer side
SUBJECT_IOU = 0.3
FACE_SCORE = 0.6  # below opencv_zoo's 0.9 on purpose: a missed face is worse than a blurred wall

# Objects (COCO class names) whose heads / plates are blurred beyond what the detectors find.
PERSON_CLASSES = frozenset({"person"})
TWO_WHEELER_CLASSES = frozenset({"bicycle", "motorcycle"})
VEHICLE_CLASSES = frozenset({"car", "bus", "truck"})
OBJECT_CLASSES = PERSON_CLASSES | TWO_WHEELER_CLASSES | VEHICLE_CLASSES
OBJECT_MODEL = "yolov5n"  # the pipeline's default COCO detector (models.registry)
# Below the pipeline's 0.25: yolov5n scores riders' motorbikes seen from behind 0.2–0.5, and a
# false person only blurs a patch of wall.
OBJECT_SCORE = 0.2
# Head = the top 35 % of a person box, full width, from 5 % of its height above it. A seated
# rider's box runs from the helmet to the seat, the helmet ending at 0.22–0.25 of it (hanoi_b);
# a standing person's head ends at ~0.13. 0.35 covers both with room for the box's slack and a
# pillion passenger's head just below the rider's (one box for both), and stays clear of a
# rider's plate band (from 0.6); yolov5n's box sometimes cuts the top of a helmet: hence 0.05.
HEAD_SHARE = 0.35
HEAD_ABOVE = 0.05
FACE_COVERS = 0.8  # a head this much covered by a detected face's blurred area is left to the face
# Two-wheeler plate region: below 35 % of the box height, full width (rear plates at 0.40–0.60
# of a motorbike box seen from behind and above, whose top is the rider's back).
TWO_WHEELER_PLATE_TOP = 0.35
# Car/bus/truck plate region: (x1, y1, x2, y2) as shares of the box — the lower-middle band.
VEHICLE_PLATE_BAND = (0.1, 0.5, 0.9, 1.0)
# Rider plate region (no two-wheeler detected under the person): from 0.6 to 1.5 of the person
# box height from its top (plates measured at 0.7–1.4: the bike hangs below the rider's box).
RIDER_PLATE_BAND = (0.6, 1.5)
RIDER_COVER = 0.5  # share of a rider's plate band inside a two-wheeler box: the bike is found
# The subject's rider when the detector finds no person on the subject two-wheeler (its drawn
# evidence box often hides the rider from it: 21 of 39 hanoi_b two-wheeler subjects): from 1.1
# of the box height above the box to HEAD_SHARE into it. The record's box is either the rider
# and bike together (helmet at its top) or the bike alone (the rider's helmet 0.7–1.05 of its
# height above it); both are covered.
SUBJECT_HEAD_ABOVE = 1.1
SUBJECT_RIDER_COVER = 0.5  # share of a person box inside the subject's box: the subject's rider


@dataclass(frozen=True, slots=True)
class Found:
    """A detected face or plate; ``text`` is the plate reading (None for faces/unreadable)."""

    box: Box
    score: float
    text: str | None = None


@dataclass(frozen=True, slots=True)
class SceneObject:
    """A person or vehicle found by the object detector; ``label`` is its COCO class name."""

    label: str
    box: Box
    score: float

    def to_json(self) -> dict[str, object]:
        return {"class": self.label, "box": _box_json(self.box), "score": round(self.score, 3)}


@dataclass(frozen=True, slots=True)
class Subject:
    """What is known of the violation's subject in one image (any part may be missing)."""

    vehicle_box: Box | None = None
    plate_box: Box | None = None
    plate_text: str | None = None


@dataclass(frozen=True, slots=True)
class Region:
    """One area and what was done with it (``kept`` only for the subject's plate or plate region).

    ``face`` / ``plate``: a detection (``score`` is its detector's). ``head`` / ``plate_region``:
    an area estimated from ``source``, the detected person or vehicle (``score`` is the object's),
    and ``why`` says the rule that made it.
    """

    kind: RegionKind
    box: Box
    score: float
    action: Literal["blurred", "kept"]
    source: SceneObject | None = None
    why: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "kind": self.kind,
            "action": self.action,
            "box": _box_json(self.box),
            "score": round(self.score, 3),
        }
        if self.why is not None:
            out["why"] = self.why
        if self.source is not None:
            out["object"] = self.source.to_json()
        return out


@dataclass(frozen=True, slots=True)
class DeidReport:
    """What :func:`deidentify` did to one image. Plate texts are never reported."""

    width: int
    height: int
    method: BlurMethod
    regions: tuple[Region, ...]
    object_detector: str | None = None  # None: no object detector, faces and plates only

    def count(self, kind: RegionKind, action: Literal["blurred", "kept"] = "blurred") -> int:
        return sum(1 for r in self.regions if r.kind == kind and r.action == action)

    @property
    def faces_blurred(self) -> int:
        return self.count("face")

    @property
    def plates_blurred(self) -> int:
        return self.count("plate")

    @property
    def heads_blurred(self) -> int:
        return self.count("head")

    @property
    def plate_regions_blurred(self) -> int:
        return self.count("plate_region")

    @property
    def subject_plate_kept(self) -> bool:
        return self.count("plate", "kept") > 0

    def to_json(self) -> dict[str, object]:
        return {
            "width": self.width,
            "height": self.height,
            "method": self.method,
            "faces_blurred": self.faces_blurred,
            "plates_blurred": self.plates_blurred,
            "heads_blurred": self.heads_blurred,
            "plate_regions_blurred": self.plate_regions_blurred,
            "subject_plate_kept": self.subject_plate_kept,
            "subject_plate_region_kept": self.count("plate_region", "kept") > 0,
            "object_detector": self.object_detector,
            "regions": [r.to_json() for r in self.regions],
        }


@dataclass(frozen=True, slots=True)
class DeidResult:
    image: ImageBGR
    report: DeidReport


class FaceDetector(Protocol):
    def detect_faces(self, image: ImageBGR) -> list[Found]: ...


class PlateDetector(Protocol):
    def detect_plates(self, image: ImageBGR) -> list[Found]: ...


class ObjectDetector(Protocol):
    """Persons, two-wheelers and vehicles (COCO class names) in one image."""

    @property
    def name(self) -> str: ...

    def detect_objects(self, image: ImageBGR) -> list[SceneObject]: ...


@dataclass(frozen=True, slots=True)
class DeidDetectors:
    """The detectors :func:`deidentify` uses; without ``objects`` only detected faces and plates
    are blurred (no head or plate-region estimates)."""

    faces: FaceDetector
    plates: PlateDetector
    objects: ObjectDetector | None = None


# -- geometry ---------------------------------------------------------------------------------


def _box_json(b: Box) -> list[float]:
    return [round(b.x1, 1), round(b.y1, 1), round(b.x2, 1), round(b.y2, 1)]


def iou(a: Box, b: Box) -> float:
    iw = min(a.x2, b.x2) - max(a.x1, b.x1)
    ih = min(a.y2, b.y2) - max(a.y1, b.y1)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def _centre_inside(b: Box, outer: Box) -> bool:
    cx, cy = (b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2
    return outer.x1 <= cx <= outer.x2 and outer.y1 <= cy <= outer.y2


def _bottom_distance(b: Box, outer: Box) -> float:
    """Distance of ``b``'s centre from ``outer``'s bottom centre, in units of ``outer``'s size."""
    w, h = max(outer.x2 - outer.x1, 1.0), max(outer.y2 - outer.y1, 1.0)
    dx = ((b.x1 + b.x2) / 2 - (outer.x1 + outer.x2) / 2) / w
    dy = ((b.y1 + b.y2) / 2 - outer.y2) / h
    return float(np.hypot(dx, dy))


def _area(b: Box) -> float:
    return max(0.0, b.x2 - b.x1) * max(0.0, b.y2 - b.y1)


def cover(a: Box, b: Box) -> float:
    """Share of ``a``'s area inside ``b`` (0 for an empty ``a``)."""
    iw = min(a.x2, b.x2) - max(a.x1, b.x1)
    ih = min(a.y2, b.y2) - max(a.y1, b.y1)
    area = _area(a)
    return iw * ih / area if iw > 0 and ih > 0 and area > 0 else 0.0


def _clip(b: Box, width: int, height: int) -> Box | None:
    x1, y1 = min(max(b.x1, 0.0), float(width)), min(max(b.y1, 0.0), float(height))
    x2, y2 = min(max(b.x2, 0.0), float(width)), min(max(b.y2, 0.0), float(height))
    return Box(x1, y1, x2, y2, width, height) if x2 - x1 >= 1 and y2 - y1 >= 1 else None


def _part(b: Box, fx1: float, fy1: float, fx2: float, fy2: float) -> Box:
    """The part of ``b`` between the given shares of its width and height (may reach out)."""
    w, h = b.x2 - b.x1, b.y2 - b.y1
    return Box(b.x1 + fx1 * w, b.y1 + fy1 * h, b.x1 + fx2 * w, b.y1 + fy2 * h, b.frame_w, b.frame_h)


def head_box(person: Box) -> Box:
    """The head region of a person box: its top :data:`HEAD_SHARE` and :data:`HEAD_ABOVE` above
    it, full width (not clipped to the frame)."""
    return _part(person, 0.0, -HEAD_ABOVE, 1.0, HEAD_SHARE)


def plate_region(box: Box, label: str) -> Box:
    """Where the plate of an object of COCO class ``label`` sits in (or under) its ``box``:
    a two-wheeler's lower part, a car's/bus's/truck's lower-middle band, a rider's band below
    the seat (``person``). Not clipped to the frame."""
    if label in VEHICLE_CLASSES:
        return _part(box, *VEHICLE_PLATE_BAND)
    if label in PERSON_CLASSES:
        return _part(box, 0.0, RIDER_PLATE_BAND[0], 1.0, RIDER_PLATE_BAND[1])
    return _part(box, 0.0, TWO_WHEELER_PLATE_TOP, 1.0, 1.0)


def scale_box(box: Box, width: int, height: int) -> Box:
    """``box`` mapped to an image of ``width`` × ``height`` (from its own frame size)."""
    if (box.frame_w, box.frame_h) == (width, height) or box.frame_w <= 0 or box.frame_h <= 0:
        return Box(box.x1, box.y1, box.x2, box.y2, width, height)
    fx, fy = width / box.frame_w, height / box.frame_h
    return Box(box.x1 * fx, box.y1 * fy, box.x2 * fx, box.y2 * fy, width, height)


def choose_subject_plate(plates: Sequence[Found], subject: Subject) -> int | None:
    """Index in ``plates`` of the subject vehicle's plate, or None (see the module docstring)."""
    vbox = subject.vehicle_box
    if subject.plate_text:
        same = [i for i, p in enumerate(plates) if p.text == subject.plate_text]
        inside = [i for i in same if vbox is not None and _centre_inside(plates[i].box, vbox)]
        pick = inside or same
        if pick:
            return max(pick, key=lambda i: plates[i].score)
    if subject.plate_box is not None:
        pbox = subject.plate_box
        best = max(range(len(plates)), key=lambda i: iou(plates[i].box, pbox), default=None)
        if best is not None and iou(plates[best].box, pbox) >= SUBJECT_IOU:
            return best
    if vbox is not None:
        inside = [i for i, p in enumerate(plates) if _centre_inside(p.box, vbox)]
        if inside:
            return min(inside, key=lambda i: _bottom_distance(plates[i].box, vbox))
    return None


# -- blurring ---------------------------------------------------------------------------------


def _padded(box: Box, width: int, height: int, pad: float) -> tuple[int, int, int, int]:
    px, py = (box.x2 - box.x1) * pad, (box.y2 - box.y1) * pad
    x1, y1 = max(0, int(np.floor(box.x1 - px))), max(0, int(np.floor(box.y1 - py)))
    x2 = min(width, int(np.ceil(box.x2 + px)))
    y2 = min(height, int(np.ceil(box.y2 + py)))
    return x1, y1, x2, y2


def blur_region(
    image: ImageBGR, box: Box, method: BlurMethod = "gaussian", pad: float = PAD_FRACTION
) -> None:
    """Blur ``box`` (grown by ``pad``) of ``image`` in place, beyond recognition.

    ``gaussian``: σ = a quarter of the region's longer side, applied twice, so no stroke of a
    character or facial feature survives. ``pixelate``: :data:`PIXEL_BLOCKS` blocks along the
    longer side, each the mean of its pixels.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = _padded(box, w, h, pad)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return
    roi = image[y1:y2, x1:x2]
    side = max(x2 - x1, y2 - y1)
    if method == "pixelate":
        f = PIXEL_BLOCKS / side
        small_size = (max(1, round((x2 - x1) * f)), max(1, round((y2 - y1) * f)))
        small = cv2.resize(roi, small_size, interpolation=cv2.INTER_AREA)
        roi[:] = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
        return
    if method != "gaussian":
        raise ValueError(f"unknown blur method {method!r}; use one of {BLUR_METHODS}")
    sigma = max(side / 4.0, 3.0)
    blurred = cv2.GaussianBlur(roi, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    roi[:] = cv2.GaussianBlur(blurred, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)


def deidentify(
    image: ImageBGR,
    detectors: DeidDetectors,
    subject: Subject | None = None,
    method: BlurMethod = "gaussian",
) -> DeidResult:
    """A copy of ``image`` with every face and every non-subject plate blurred, and a report.

    With an ``objects`` detector also every person's head and every non-subject vehicle's plate
    region that the face and plate detectors left (module docstring). ``subject`` boxes are
    scaled to the image when their frame size differs.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 BGR image, got {image.shape} {image.dtype}")
    if method not in BLUR_METHODS:
        raise ValueError(f"unknown blur method {method!r}; use one of {BLUR_METHODS}")
    h, w = image.shape[:2]
    subj = _scaled_subject(subject or Subject(), w, h)
    faces = detectors.faces.detect_faces(image)
    plates = detectors.plates.detect_plates(image)
    objects = None if detectors.objects is None else detectors.objects.detect_objects(image)
    keep = choose_subject_plate(plates, subj)
    out = image.copy()
    regions: list[Region] = []
    for i, p in enumerate(plates):
        if i == keep:
            regions.append(Region("plate", p.box, p.score, "kept"))
            continue
        blur_region(out, p.box, method)
        regions.append(Region("plate", p.box, p.score, "blurred"))
    for f in faces:
        blur_region(out, f.box, method)
        regions.append(Region("face", f.box, f.score, "blurred"))
    estimated = estimate_regions(objects, faces, plates, subj, keep, width=w, height=h)
    for r in estimated:
        if r.action == "blurred":
            blur_region(out, r.box, method)
    regions += estimated
    kept = [r.box for r in regions if r.action == "kept"]
    if kept:
        # Faces, plates and heads blurred over the subject's plate stay blurred; an estimated
        # plate region (and any padding) yields to it.
        hard = [r.box for r in regions if r.action == "blurred" and r.kind != "plate_region"]
        _restore(out, image, kept[0], hard)
    name = None if detectors.objects is None else detectors.objects.name
    report = DeidReport(w, h, method, tuple(regions), name)
    logger.debug(
        "deidentify %dx%d: %d faces, %d plates, %d heads, %d plate regions blurred",
        w,
        h,
        report.faces_blurred,
        report.plates_blurred,
        report.heads_blurred,
        report.plate_regions_blurred,
    )
    return DeidResult(out, report)


def estimate_regions(
    objects: Sequence[SceneObject] | None,
    faces: Sequence[Found],
    plates: Sequence[Found],
    subject: Subject,
    keep: int | None,
    *,
    width: int,
    height: int,
) -> list[Region]:
    """Heads and plate regions to blur beyond the detected faces and plates (module docstring),
    plus the subject's kept plate region when the subject's plate was not detected.

    ``objects`` None: no object detector ran (only the kept region can come back). ``subject``
    is in the image's pixels; ``keep`` is the index of the subject's plate in ``plates``
    (:func:`choose_subject_plate`).
    """
    if objects is None:
        return [] if keep is not None else _subject_region([], subject, width, height)
    kept_plate = plates[keep].box if keep is not None else subject.plate_box
    out = _heads(objects, faces, width, height)
    out += _subject_head(objects, subject, width, height)
    for o in objects:
        region = plate_region(o.box, o.label)
        if o.label not in OBJECT_CLASSES or _is_subject(o, region, subject, kept_plate):
            continue
        why = _plate_region_reason(o, region, objects, plates)
        clipped = _clip(region, width, height)
        if why is not None and clipped is not None:
            out.append(Region("plate_region", clipped, o.score, "blurred", o, why))
    if keep is None:
        out += _subject_region(objects, subject, width, height)
    return out


def _heads(
    objects: Sequence[SceneObject], faces: Sequence[Found], width: int, height: int
) -> list[Region]:
    """A ``head`` region per person whose head no detected face (as blurred) covers."""
    areas = [Box(*_padded(f.box, width, height, PAD_FRACTION), width, height) for f in faces]
    out: list[Region] = []
    for p in objects:
        head = _clip(head_box(p.box), width, height) if p.label in PERSON_CLASSES else None
        if head is None or any(cover(head, a) >= FACE_COVERS for a in areas):
            continue
        out.append(Region("head", head, p.score, "blurred", p, "person; no face detected on it"))
    return out


def _subject_head(
    objects: Sequence[SceneObject], subject: Subject, width: int, height: int
) -> list[Region]:
    """The subject rider's head when no detected person sits on a two-wheeler subject."""
    vbox = subject.vehicle_box
    if vbox is None:
        return []
    match = _best_match(objects, vbox)
    if match is not None and match.label in VEHICLE_CLASSES:
        return []  # a car's driver: their face is the face detector's, as for anyone
    reach = _part(vbox, 0.0, -SUBJECT_HEAD_ABOVE, 1.0, 1.0)
    persons = (o for o in objects if o.label in PERSON_CLASSES)
    if any(cover(p.box, reach) >= SUBJECT_RIDER_COVER for p in persons):
        return []  # its rider was found: its head is blurred with the others
    top = _part(vbox, 0.0, -SUBJECT_HEAD_ABOVE, 1.0, min(HEAD_SHARE, TWO_WHEELER_PLATE_TOP))
    # ends on the pixel row where the subject's kept plate region starts, never inside it
    top = Box(top.x1, top.y1, top.x2, float(np.floor(top.y2)), top.frame_w, top.frame_h)
    head = _clip(top, width, height)
    if head is None:
        return []
    why = "subject's rider; no person detected on the subject two-wheeler"
    score = match.score if match is not None else 0.0
    return [Region("head", head, score, "blurred", match, why)]


def _best_match(objects: Sequence[SceneObject], vbox: Box) -> SceneObject | None:
    """The detected object overlapping ``vbox`` the most (IoU ≥ :data:`SUBJECT_IOU`), if any."""
    match = max(objects, key=lambda o: iou(o.box, vbox), default=None)
    return match if match is not None and iou(match.box, vbox) >= SUBJECT_IOU else None


def _is_subject(o: SceneObject, region: Box, subject: Subject, kept_plate: Box | None) -> bool:
    """Whether ``o`` is the subject vehicle (or its rider): its plate stays readable."""
    if kept_plate is not None and _centre_inside(kept_plate, region):
        return True
    vbox = subject.vehicle_box
    if vbox is None:
        return False
    if o.label in PERSON_CLASSES:
        return cover(o.box, vbox) >= SUBJECT_RIDER_COVER
    return iou(o.box, vbox) >= SUBJECT_IOU


def _plate_region_reason(
    o: SceneObject, region: Box, objects: Sequence[SceneObject], plates: Sequence[Found]
) -> str | None:
    """Why ``o``'s plate region is blurred, or None when it need not be."""
    if o.label in VEHICLE_CLASSES:
        if any(_centre_inside(p.box, region) for p in plates):
            return None  # its plate was found (and blurred, or kept)
        return f"{o.label}; no plate detected in its lower-middle band"
    if o.label in PERSON_CLASSES:
        bikes = [b.box for b in objects if b.label in TWO_WHEELER_CLASSES]
        if any(cover(region, b) >= RIDER_COVER for b in bikes):
            return None  # the two-wheeler it rides was found: that region covers the plate
        return "rider; no two-wheeler detected under the person"
    return f"{o.label}; a two-wheeler's plate is too small for the plate detector"


def _subject_region(
    objects: Sequence[SceneObject], subject: Subject, width: int, height: int
) -> list[Region]:
    """The kept area of a subject whose plate was not detected: the record's plate box, else
    the plate region of its vehicle box (a car's band when the best-matching object is a car,
    bus or truck; a two-wheeler's lower part otherwise)."""
    if subject.plate_box is not None:
        box = _clip(subject.plate_box, width, height)
        why = "subject's plate box from the record; no plate detected there"
        return [] if box is None else [Region("plate_region", box, 0.0, "kept", None, why)]
    vbox = subject.vehicle_box
    if vbox is None:
        return []
    match = _best_match(objects, vbox)
    label = match.label if match is not None and match.label in VEHICLE_CLASSES else "motorcycle"
    box = _clip(plate_region(vbox, label), width, height)
    if box is None:
        return []
    why = "subject vehicle; no plate detected, the plate region of its box stays readable"
    score = match.score if match is not None else 0.0
    return [Region("plate_region", box, score, "kept", match, why)]


def _scaled_subject(subject: Subject, width: int, height: int) -> Subject:
    v, p = subject.vehicle_box, subject.plate_box
    return Subject(
        vehicle_box=None if v is None else scale_box(v, width, height),
        plate_box=None if p is None else scale_box(p, width, height),
        plate_text=subject.plate_text,
    )


def _restore(out: ImageBGR, original: ImageBGR, keep: Box, blurred: Sequence[Box]) -> None:
    """Undo blur spill (a neighbour's padding) over the kept subject plate; pixels inside any
    blurred region's own box stay blurred."""
    h, w = out.shape[:2]
    mask = np.zeros((h, w), bool)
    x1, y1, x2, y2 = _padded(keep, w, h, 0.0)
    mask[y1:y2, x1:x2] = True
    for b in blurred:
        bx1, by1, bx2, by2 = _padded(b, w, h, 0.0)
        mask[by1:by2, bx1:bx2] = False
    out[mask] = original[mask]


# -- detectors on the shared models -----------------------------------------------------------


class YuNetFaces:
    """:class:`FaceDetector` over YuNet (``cv2.FaceDetectorYN``) on the whole image.

    One detector instance is reused under a lock (its input size is mutable state). Images
    whose longer side exceeds ``max_side`` are downscaled for detection only.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        score_threshold: float = FACE_SCORE,
        nms_threshold: float = 0.3,
        max_side: int = 2560,
    ) -> None:
        path = model_path or _resolve("yunet_face")
        try:
            self._det = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), score_threshold, nms_threshold, 5000
            )
        except cv2.error as e:
            raise ModelError(f"cannot load the YuNet face model {path}: {e}") from e
        self._lock = threading.Lock()
        self.max_side = max_side

    def detect_faces(self, image: ImageBGR) -> list[Found]:
        h, w = image.shape[:2]
        f = min(1.0, self.max_side / max(h, w))
        src = image if f == 1.0 else cv2.resize(image, (round(w * f), round(h * f)))
        with self._lock:
            self._det.setInputSize((src.shape[1], src.shape[0]))
            _, faces = self._det.detect(src)
        if faces is None:
            return []
        out = []
        for row in np.asarray(faces, np.float32):
            x, y, bw, bh = (float(v) / f for v in row[:4])
            box = Box(max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh), w, h)
            out.append(Found(box, float(row[14])))
        return out


class ReaderPlates:
    """:class:`PlateDetector` over :class:`sharpeyes.models.plate.PlateReader`.

    Besides the whole image, images wider than ``tile_above`` px are also read in 2×2
    overlapping tiles, so plates too small for the detector's 320/640 input are still found;
    duplicates are merged by IoU. Unreadable plates are returned too (``text=None``).
    """

    def __init__(self, reader: PlateReader, *, tile_above: int = 1280) -> None:
        self.reader = reader
        self.tile_above = tile_above

    def detect_plates(self, image: ImageBGR) -> list[Found]:
        h, w = image.shape[:2]
        found = [Found(r.box, r.det_confidence, r.text) for r in self.reader.read(image)]
        if max(h, w) > self.tile_above:
            for roi in _tiles(w, h):
                found += [
                    Found(r.box, r.det_confidence, r.text) for r in self.reader.read(image, roi)
                ]
        return _merge(found)


class CocoObjects:
    """:class:`ObjectDetector` over a pipeline detector (``sharpeyes.pipeline.protocols.Detector``)
    with COCO class names: keeps persons, two-wheelers and vehicles (:data:`OBJECT_CLASSES`).

    Like :class:`ReaderPlates`, images wider than ``tile_above`` px are also searched in 2×2
    overlapping tiles (small people far away); duplicates of one class are merged by IoU.
    """

    def __init__(self, detector: Detector, *, tile_above: int = 1280) -> None:
        from sharpeyes.models.classes import COCO80_NAMES

        self.detector = detector
        self.tile_above = tile_above
        self._labels = detector.info.class_names or COCO80_NAMES

    @property
    def name(self) -> str:
        return self.detector.info.model

    def detect_objects(self, image: ImageBGR) -> list[SceneObject]:
        h, w = image.shape[:2]
        views = [Box(0.0, 0.0, float(w), float(h), w, h)]
        if max(h, w) > self.tile_above:
            views += _tiles(w, h)
        crops = [
            np.ascontiguousarray(image[int(v.y1) : int(v.y2), int(v.x1) : int(v.x2)]) for v in views
        ]
        found: list[SceneObject] = []
        for v, det in zip(views, self.detector.detect(crops), strict=True):
            for xyxy, score, cls in zip(det.xyxy, det.confidence, det.class_id, strict=True):
                k = int(cls)
                label = self._labels[k] if 0 <= k < len(self._labels) else ""
                if label not in OBJECT_CLASSES:
                    continue
                x1, y1, x2, y2 = (float(c) for c in xyxy)
                box = _clip(Box(x1 + v.x1, y1 + v.y1, x2 + v.x1, y2 + v.y1, w, h), w, h)
                if box is not None:
                    found.append(SceneObject(label, box, float(score)))
        return _merge_objects(found) if len(views) > 1 else found


def _merge_objects(found: Sequence[SceneObject], thr: float = 0.5) -> list[SceneObject]:
    """Greedy de-duplication per class: the higher score wins."""
    kept: list[SceneObject] = []
    for o in sorted(found, key=lambda o: o.score, reverse=True):
        if not any(q.label == o.label and iou(o.box, q.box) >= thr for q in kept):
            kept.append(o)
    return kept


def _tiles(w: int, h: int, overlap: float = 0.2) -> list[Box]:
    tw, th = w * (0.5 + overlap / 2), h * (0.5 + overlap / 2)
    return [
        Box(x, y, min(float(w), x + tw), min(float(h), y + th), w, h)
        for y in (0.0, h - th)
        for x in (0.0, w - tw)
    ]


def _merge(found: Sequence[Found], thr: float = 0.3) -> list[Found]:
    """Greedy de-duplication: readable first, then by score; a duplicate keeps the larger box."""
    order = sorted(found, key=lambda p: (p.text is not None, p.score), reverse=True)
    kept: list[Found] = []
    for p in order:
        j = next((k for k, q in enumerate(kept) if iou(p.box, q.box) >= thr), None)
        if j is None:
            kept.append(p)
            continue
        q = kept[j]
        union = Box(
            min(p.box.x1, q.box.x1),
            min(p.box.y1, q.box.y1),
            max(p.box.x2, q.box.x2),
            max(p.box.y2, q.box.y2),
            q.box.frame_w,
            q.box.frame_h,
        )
        kept[j] = Found(union, q.score, q.text)
    return kept


def _resolve(name: str) -> Path:
    from sharpeyes.models.resolve import resolve_model

    return Path(resolve_model(name))


def default_detectors(
    providers: str = "cpu",
    threads: int = 1,
    plate_model: str = "plate_det_640",
    object_model: str | None = OBJECT_MODEL,
) -> DeidDetectors:
    """YuNet faces, the 640-input plate detector (better recall on small plates) and the
    pipeline's COCO detector (``object_model``, the registry's default ``yolov5n``; None: no
    head / plate-region estimates) at :data:`OBJECT_SCORE`, every class its own NMS group
    (a motorbike beside a car is not suppressed by it).

    Raises :class:`pipeline.errors.ModelNotFoundError` / :class:`ModelError` when a model is
    missing or broken.
    """
    from sharpeyes.models.plate import PlateReader

    reader = PlateReader(det_model=plate_model, providers=providers, threads=threads)
    objects: ObjectDetector | None = None
    if object_model is not None:
        from sharpeyes.models.factory import create_detector

        detector = create_detector(
            object_model,
            providers=providers,
            intra_op_threads=threads,
            confidence_threshold=OBJECT_SCORE,
            merge_vehicle_nms=False,
        )
        objects = CocoObjects(detector)
    return DeidDetectors(faces=YuNetFaces(), plates=ReaderPlates(reader), objects=objects)
