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

logger = logging.getLogger(__name__)

BlurMethod = Literal["gaussian", "pixelate"]
RegionKind = Literal["face", "plate"]
BLUR_METHODS: tuple[BlurMethod, ...] = ("gaussian", "pixelate")
PAD_FRACTION = 0.15  # blurred area = the box grown by this fraction of its size on each side
PIXEL_BLOCKS = 8  # pixelation: blocks along the region's longer side
SUBJECT_IOU = 0.3
FACE_SCORE = 0.6  # below opencv_zoo's 0.9 on purpose: a missed face is worse than a blurred wall


@dataclass(frozen=True, slots=True)
class Found:
    """A detected face or plate; ``text`` is the plate reading (None for faces/unreadable)."""

    box: Box
    score: float
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Subject:
    """What is known of the violation's subject in one image (any part may be missing)."""

    vehicle_box: Box | None = None
    plate_box: Box | None = None
    plate_text: str | None = None


@dataclass(frozen=True, slots=True)
class Region:
    """One face or plate and what was done with it (``kept`` only for the subject's plate)."""

    kind: RegionKind
    box: Box
    score: float
    action: Literal["blurred", "kept"]

    def to_json(self) -> dict[str, object]:
        b = self.box
        return {
            "kind": self.kind,
            "action": self.action,
            "box": [round(b.x1, 1), round(b.y1, 1), round(b.x2, 1), round(b.y2, 1)],
            "score": round(self.score, 3),
        }


@dataclass(frozen=True, slots=True)
class DeidReport:
    """What :func:`deidentify` did to one image. Plate texts are never reported."""

    width: int
    height: int
    method: BlurMethod
    regions: tuple[Region, ...]

    def count(self, kind: RegionKind, action: Literal["blurred", "kept"] = "blurred") -> int:
        return sum(1 for r in self.regions if r.kind == kind and r.action == action)

    @property
    def faces_blurred(self) -> int:
        return self.count("face")

    @property
    def plates_blurred(self) -> int:
        return self.count("plate")

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
            "subject_plate_kept": self.subject_plate_kept,
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


@dataclass(frozen=True, slots=True)
class DeidDetectors:
    """The two detectors :func:`deidentify` needs."""

    faces: FaceDetector
    plates: PlateDetector


# -- geometry ---------------------------------------------------------------------------------


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

    ``subject`` boxes are scaled to the image when their frame size differs.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 BGR image, got {image.shape} {image.dtype}")
    if method not in BLUR_METHODS:
        raise ValueError(f"unknown blur method {method!r}; use one of {BLUR_METHODS}")
    h, w = image.shape[:2]
    subj = _scaled_subject(subject or Subject(), w, h)
    faces = detectors.faces.detect_faces(image)
    plates = detectors.plates.detect_plates(image)
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
    if keep is not None:
        _restore(out, image, plates[keep].box, [r.box for r in regions if r.action == "blurred"])
    report = DeidReport(width=w, height=h, method=method, regions=tuple(regions))
    logger.debug("deidentify %dx%d: %d faces, %d plates blurred", w, h, len(faces), len(plates))
    return DeidResult(out, report)


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
    providers: str = "cpu", threads: int = 1, plate_model: str = "plate_det_640"
) -> DeidDetectors:
    """YuNet faces and the 640-input plate detector (better recall on small plates).

    Raises :class:`pipeline.errors.ModelNotFoundError` / :class:`ModelError` when a model is
    missing or broken.
    """
    from sharpeyes.models.plate import PlateReader

    reader = PlateReader(det_model=plate_model, providers=providers, threads=threads)
    return DeidDetectors(faces=YuNetFaces(), plates=ReaderPlates(reader))
