"""De-identified export of one violation: ``GET /api/v1/violations/{id}/export`` → a ZIP.

The ZIP holds, when the record has them:

- ``1.jpg 2.jpg 3.jpg`` — the evidence images with every face and every plate but the subject
  vehicle's blurred (:func:`pipeline.evidence.deid.deidentify`; subject boxes and plate text from
  ``record.json``), and what those detectors miss: the head of every person and the plate
  region of every two-wheeler, rider and plate-less vehicle the object detector finds, the
  subject vehicle's plate region excepted;
- ``plate.jpg`` — the subject's plate close-up (faces and any other plate in it blurred);
- ``composite.jpg`` — rebuilt from the de-identified images and close-up in the pipeline's
  2×2 layout at the original composite's scale (de-identified directly when no image exists);
- ``record.json`` — unchanged: its hashes and HMAC stay verifiable for the metadata, while the
  file hashes it lists refer to the original, not the blurred, images;
- ``deid.json`` — the export manifest: method, per file what was blurred and why (boxes, never
  plate texts; a ``head`` / ``plate_region`` names the rule and the detected object it came
  from) and what was kept, the sha256 of the exported and of the source file, and what was
  left out.

``clip.mp4`` is **omitted**: a clip cannot be de-identified without decoding and re-encoding
every frame, and shipping it unchanged would defeat the export. An image that cannot be
decoded is omitted too (and named in the manifest) — nothing leaves un-blurred.

Role: reviewer or admin. Each export is written to the auth audit (``token_use`` with
``detail="deid_export …"``). The detectors are loaded on the first export, not at start-up.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from sharpeyes.api.rest.auth.audit import AuthAction
from sharpeyes.api.rest.deps import AUTH_RESPONSES, Ctx, Reviewer, audit
from sharpeyes.api.rest.errors import NotFoundError, UnavailableError
from sharpeyes.api.rest.routes.events import EventId
from sharpeyes.api.rest.schemas import ErrorBody
from sharpeyes.pipeline import clock
from sharpeyes.pipeline.errors import ModelError
from sharpeyes.pipeline.evidence.composite import compose
from sharpeyes.pipeline.evidence.deid import (
    BlurMethod,
    DeidDetectors,
    DeidReport,
    Subject,
    default_detectors,
    deidentify,
)
from sharpeyes.pipeline.types import Box, ImageBGR

logger = logging.getLogger(__name__)

IMAGE_NAMES = ("1.jpg", "2.jpg", "3.jpg")
PLATE_NAME, COMPOSITE_NAME, RECORD_NAME, CLIP_NAME = (
    "plate.jpg",
    "composite.jpg",
    "record.json",
    "clip.mp4",
)
MANIFEST_NAME = "deid.json"
SCHEMA = "sharpeyes.deid/1"
JPEG_QUALITY = 92
CLIP_NOTE = "omitted: a clip cannot be de-identified without re-encoding every frame"


class DeidProvider:
    """Builds the detectors once, on first use (thread-safe); model errors become 503."""

    def __init__(self, factory: Callable[[], DeidDetectors] = default_detectors) -> None:
        self._factory = factory
        self._detectors: DeidDetectors | None = None
        self._lock = threading.Lock()

    def get(self) -> DeidDetectors:
        with self._lock:
            if self._detectors is None:
                try:
                    self._detectors = self._factory()
                except ModelError as e:  # ModelNotFoundError is a ModelError
                    logger.error("de-identification models unavailable: %s", e)
                    raise UnavailableError("de-identification models unavailable") from e
            return self._detectors


@dataclass(slots=True)
class ExportBundle:
    """The ZIP bytes and what went into it."""

    data: bytes = b""
    reports: dict[str, DeidReport] = field(default_factory=dict)
    omitted: dict[str, str] = field(default_factory=dict)

    @property
    def faces_blurred(self) -> int:
        return sum(r.faces_blurred for r in self.reports.values())

    @property
    def plates_blurred(self) -> int:
        return sum(r.plates_blurred for r in self.reports.values())

    @property
    def heads_blurred(self) -> int:
        return sum(r.heads_blurred for r in self.reports.values())

    @property
    def plate_regions_blurred(self) -> int:
        return sum(r.plate_regions_blurred for r in self.reports.values())


# -- record.json → subjects -------------------------------------------------------------------


def _box(raw: object, width: int, height: int) -> Box | None:
    if not isinstance(raw, list) or len(raw) != 4:
        return None
    if not all(isinstance(v, int | float) for v in raw):
        return None
    x1, y1, x2, y2 = (float(v) for v in raw)
    return Box(x1, y1, x2, y2, width, height) if x2 > x1 and y2 > y1 else None


def record_subjects(doc: object) -> tuple[str | None, dict[str, Subject]]:
    """(subject plate text, subject per image name) from a ``record.json`` document.

    Anything missing or malformed yields no subject — every plate is then blurred.
    """
    if not isinstance(doc, dict):
        return None, {}
    plate = doc.get("plate")
    text = plate.get("text") if isinstance(plate, dict) else None
    text = text if isinstance(text, str) and text else None
    # A plate box is used when the record has one ("plate": {"box": [...], "image": n}).
    plate_file = f"{plate.get('image')}.jpg" if isinstance(plate, dict) else None
    plate_raw = plate.get("box") if isinstance(plate, dict) else None
    subjects: dict[str, Subject] = {}
    images = doc.get("images")
    for im in images if isinstance(images, list) else []:
        if not isinstance(im, dict) or im.get("file") not in IMAGE_NAMES:
            continue
        w, h = im.get("width"), im.get("height")
        size = (w, h) if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0 else (0, 0)
        pbox = _box(plate_raw, *size) if im["file"] == plate_file else None
        subjects[str(im["file"])] = Subject(_box(im.get("vehicle_box"), *size), pbox, text)
    return text, subjects


def closeup_subject(image: ImageBGR, text: str | None) -> Subject:
    """The close-up shows the subject's plate in its middle (plate box + 25 % margin)."""
    h, w = image.shape[:2]
    return Subject(Box(0, 0, w, h, w, h), Box(w / 6, h / 6, 5 * w / 6, 5 * h / 6, w, h), text)


# -- building the ZIP -------------------------------------------------------------------------


def _decode(path: Path) -> ImageBGR | None:
    data = np.frombuffer(path.read_bytes(), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return None if image is None else np.asarray(image, np.uint8)


def _jpeg(image: ImageBGR) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Builder:
    """Collects the de-identified files of one export."""

    def __init__(self, files: Mapping[str, Path], detectors: DeidDetectors, method: BlurMethod):
        self.files = files
        self.detectors = detectors
        self.method = method
        self.out: dict[str, bytes] = {}
        self.entries: list[dict[str, Any]] = []
        self.bundle = ExportBundle()
        self.images: list[ImageBGR] = []

    def add_image(
        self, name: str, subject: Subject | Callable[[ImageBGR], Subject]
    ) -> ImageBGR | None:
        """De-identify image ``name``; ``subject`` may depend on the decoded image."""
        path = self.files.get(name)
        if path is None:
            return None
        image = _decode(path)
        if image is None:
            self.bundle.omitted[name] = "omitted: the image cannot be decoded"
            return None
        subj = subject if isinstance(subject, Subject) else subject(image)
        result = deidentify(image, self.detectors, subj, self.method)
        self._put(name, _jpeg(result.image), path.read_bytes(), result.report)
        return result.image

    def add_composite(self, closeup: ImageBGR | None, text: str | None) -> None:
        path = self.files.get(COMPOSITE_NAME)
        if path is None:
            return
        if not self.images:
            self.add_image(COMPOSITE_NAME, Subject(plate_text=text))
            return
        original = _decode(path)
        w0 = self.images[0].shape[1]
        scale = (original.shape[1] / 2 / w0) if original is not None else 1.0
        image = compose(self.images, closeup, cell_scale=min(1.0, max(0.05, scale)))
        self._put(COMPOSITE_NAME, _jpeg(image), path.read_bytes(), None)

    def _put(self, name: str, data: bytes, source: bytes, report: DeidReport | None) -> None:
        self.out[name] = data
        entry: dict[str, Any] = {
            "name": name,
            "sha256": _sha256(data),
            "source_sha256": _sha256(source),
        }
        if report is not None:
            self.bundle.reports[name] = report
            entry["deid"] = report.to_json()
        else:
            entry["deid"] = "rebuilt from the de-identified images and close-up"
        self.entries.append(entry)


def build_export(
    event_id: str,
    files: Mapping[str, Path],
    detectors: DeidDetectors,
    method: BlurMethod = "gaussian",
) -> ExportBundle:
    """De-identify a record's files (name → path) and pack the ZIP (see the module docstring)."""
    doc: object = None
    if RECORD_NAME in files:
        try:
            doc = json.loads(files[RECORD_NAME].read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            logger.warning("record.json of %s unreadable (%s): blurring every plate", event_id, e)
    text, subjects = record_subjects(doc)
    b = _Builder(files, detectors, method)
    for name in IMAGE_NAMES:
        image = b.add_image(name, subjects.get(name, Subject(plate_text=text)))
        if image is not None:
            b.images.append(image)
    closeup = b.add_image(PLATE_NAME, lambda im: closeup_subject(im, text))
    b.add_composite(closeup, text)
    if RECORD_NAME in files:
        raw = files[RECORD_NAME].read_bytes()
        b.out[RECORD_NAME] = raw
        b.entries.append({"name": RECORD_NAME, "sha256": _sha256(raw), "deid": "unchanged"})
    if CLIP_NAME in files:
        b.bundle.omitted[CLIP_NAME] = CLIP_NOTE
    manifest = {
        "schema": SCHEMA,
        "event_id": event_id,
        "method": method,
        "created_ms": clock.now_ms(),
        "files": b.entries,
        "omitted": b.bundle.omitted,
        "note": "record.json is the original; the file hashes it lists are of the originals",
    }
    b.out[MANIFEST_NAME] = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
    b.bundle.data = _zip(b.out)
    return b.bundle


def _zip(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            kind = zipfile.ZIP_STORED if name.endswith(".jpg") else zipfile.ZIP_DEFLATED
            zf.writestr(name, data, compress_type=kind)
    return buf.getvalue()


# -- the route --------------------------------------------------------------------------------

EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The de-identified record (see the module docstring for its files).",
    },
    404: {"model": ErrorBody, "description": "No such violation."},
}


def make_export_router(provider: DeidProvider | None = None) -> APIRouter:
    """The export router; ``provider`` defaults to the shared YuNet, plate and COCO object
    models, lazily."""
    deid = provider or DeidProvider()
    router = APIRouter(prefix="/api/v1/violations", tags=["violations"], responses=AUTH_RESPONSES)

    @router.get(
        "/{event_id}/export",
        summary="De-identified export (faces and other plates blurred) as a ZIP",
        response_class=Response,
        responses=EXPORT_RESPONSES,
    )
    def export_violation(
        event_id: EventId,
        request: Request,
        reviewer: Reviewer,
        ctx: Ctx,
        method: Annotated[BlurMethod, Query(description="Blur style")] = "gaussian",
    ) -> Response:
        service = ctx.service
        service.get_event(event_id, violation=True)
        files: dict[str, Path] = {}
        for name in (*IMAGE_NAMES, PLATE_NAME, COMPOSITE_NAME, RECORD_NAME, CLIP_NAME):
            try:
                files[name] = service.evidence_file(event_id, name).path
            except NotFoundError:
                continue
        if not files:
            raise NotFoundError(f"violation {event_id} has no evidence to export")
        bundle = build_export(event_id, files, deid.get(), method)
        detail = (
            f"deid_export method={method} faces={bundle.faces_blurred} "
            f"plates={bundle.plates_blurred} heads={bundle.heads_blurred} "
            f"plate_regions={bundle.plate_regions_blurred} files={len(bundle.reports)}"
        )
        audit(ctx, request, AuthAction.TOKEN_USE, 200, principal=reviewer, detail=detail)
        return Response(
            bundle.data,
            media_type="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="{event_id}_deid.zip"',
                "Cache-Control": "no-store",
            },
        )

    return router
