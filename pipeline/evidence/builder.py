"""Builds the evidence record of one violation.

Layout: ``<out_root>/evidence/<stream>/<yyyymmdd Beijing>/<event_id>/`` holding ``1.jpg 2.jpg
3.jpg`` (full resolution, overlay, stop line and subject box), ``plate.jpg`` (close-up from
the sharpest frame), ``composite.jpg`` (违章合成图), ``clip.mp4`` (remuxed, no re-encode) and
``record.json`` (metadata, size and HMAC-SHA256 of every file, key id, and an HMAC over the
metadata itself). Every file is written atomically; ``record.json`` is written last, so a
record directory with a ``record.json`` is complete.

Every image states its own facts: the runner hands analysed frames (frame + tracks + signal
states of that instant), so each image's time, signal state, subject box (by track id) and side
of the stop line come from its own frame (:mod:`pipeline.evidence.facts`); what the images fail
to show is listed in the record's ``incomplete``.

The builder holds no global state and does no work at import; the runner calls
:meth:`EvidenceBuilder.build` on a worker thread, off the hot path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.errors import EvidenceError
from sharpeyes.pipeline.evidence.clip import ClipSource, write_clip
from sharpeyes.pipeline.evidence.composite import compose
from sharpeyes.pipeline.evidence.facts import (
    DEFAULT_CODE,
    CameraFacts,
    ImageFacts,
    StopLine,
    image_facts,
    incomplete_parts,
    overlay_lines,
    subject_has_plate,
)
from sharpeyes.pipeline.evidence.images import (
    OverlayLine,
    beijing_date,
    encode_jpeg,
    font_status,
    render_overlay,
)
from sharpeyes.pipeline.evidence.keys import sign_record_for_hmac_key
from sharpeyes.pipeline.evidence.plate_closeup import person_closeup, plate_closeup
from sharpeyes.pipeline.evidence.record import (
    EvidenceFileEntry,
    EvidenceImage,
    EvidenceRecord,
    record_document,
)
from sharpeyes.pipeline.evidence.tamper import atomic_write_bytes, canonical_json, hmac_file, key_id
from sharpeyes.pipeline.picture import picture_has_colour
from sharpeyes.pipeline.types import (
    AnalysedFrame,
    Box,
    Event,
    Frame,
    ImageBGR,
    LampColor,
    Plate,
    SignalState,
    Tracks,
)
from sharpeyes.streams.packet_ring import PacketRing
from sharpeyes.streams.remux import ClipInfo

if TYPE_CHECKING:
    from sharpeyes.models.plate import PlateReader, PlateReading

log = logging.getLogger(__name__)

SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
JPEG_QUALITY = 92


@dataclass(slots=True)
class _Work:
    """What one build accumulates before record.json is written."""

    record_dir: Path
    files: list[EvidenceFileEntry] = field(default_factory=list)
    clip: ClipInfo | None = None
    clip_error: str | None = None


@dataclass(frozen=True, slots=True)
class _PlateResult:
    plate: Plate
    frame_index: int | None  # the evidence image the plate was found in (0-based)
    closeup: ImageBGR
    closeup_frame: int = 0  # the evidence image the close-up was cut from (0-based)
    person: bool = False  # a pedestrian: no plate; the close-up is its upper body

    @property
    def located(self) -> bool:
        return self.frame_index is not None

    def caption(self) -> OverlayLine:
        """What the close-up shows, stamped on it: a plate, where a plate would be, or the
        pedestrian's upper body."""
        n = self.closeup_frame + 1
        if self.person:
            return OverlayLine(((f"行人特写 (图{n})", f"Pedestrian close-up (image {n})"),))
        if self.located:
            return OverlayLine(((f"号牌特写 (图{n})", f"Plate close-up (image {n})"),))
        return OverlayLine(
            ((f"未找到号牌: 车辆下部 (图{n})", f"No plate found: lower vehicle (image {n})"),)
        )


class EvidenceBuilder:
    """Writes evidence records for violation events (see the module docstring)."""

    def __init__(
        self,
        out_root: Path,
        *,
        camera: CameraConfig,
        plate_reader: PlateReader | None,
        hmac_key: bytes,
        clip_pre_roll_s: float = 2.0,
        clip_post_roll_s: float = 2.0,
        ring: PacketRing | None = None,
        video_path: Path | None = None,
        violation_code: str | None = None,
        clip_wait_s: float | None = None,
        composite_scale: float = 1.0,
        overlay_position: Literal["top", "bottom"] = "top",
        font_path: str | None = None,
        key_dir: Path | None = None,
    ) -> None:
        """``font_path``: a CJK font file to use before the system paths and pip packages.
        ``key_dir``: the installation key ring whose key ``hmac_key`` is (then each record is
        also signed with that key's private half, ``record.sig``)."""
        if not hmac_key:
            raise EvidenceError("an evidence HMAC key is required")
        if clip_pre_roll_s < 0 or clip_post_roll_s < 0:
            raise EvidenceError("clip pre/post roll must be ≥ 0 seconds")
        self.out_root = Path(out_root)
        self.camera = camera
        self.plate_reader = plate_reader
        self._key = bytes(hmac_key)
        self.key_id = key_id(self._key)
        self.key_dir = key_dir
        self.pre_roll_s = clip_pre_roll_s
        self.post_roll_s = clip_post_roll_s
        self.clip_sources: list[ClipSource] = [s for s in (ring, video_path) if s is not None]
        self.clip_wait_s = clip_post_roll_s + 3.0 if clip_wait_s is None else clip_wait_s
        self.facts = CameraFacts(
            device_id=camera.device_id,
            location=camera.location or camera.name,
            violation_code=violation_code or DEFAULT_CODE,
        )
        self.composite_scale = composite_scale
        self.overlay_position: Literal["top", "bottom"] = overlay_position
        self.font_path = font_path

    # -- public ------------------------------------------------------------------------------

    def build(
        self,
        event: Event,
        frames: Sequence[AnalysedFrame | Frame],
        clip_source: ClipSource | None = None,
    ) -> Event:
        """Build the record and return the event with ``evidence_path`` and the plate set.

        This is the runner's evidence hook; :meth:`build_record` returns the typed record.
        """
        record = self.build_record(event, frames, clip_source)
        plate = record.plate if record.plate.text is not None else (event.plate or record.plate)
        return event.with_(evidence_path=str(record.record_dir), plate=plate)

    def build_record(
        self,
        event: Event,
        frames: Sequence[AnalysedFrame | Frame],
        clip_source: ClipSource | None = None,
    ) -> EvidenceRecord:
        """Write every evidence file for ``event`` from its (up to three) evidence frames.

        Plain frames carry no tracks or signal states: their images say the signal state is
        unknown and the record lists that as incomplete. ``clip_source`` overrides the ring /
        video file given to the constructor. A clip that cannot be made is recorded as
        ``clip_error`` (the images still count as evidence). Raises :class:`EvidenceError` when
        there is no frame or a file cannot be written.
        """
        if not frames:
            raise EvidenceError(f"event {event.event_id}: no evidence frames")
        analysed = [_analysed(f) for f in list(frames)[:3]]
        plain = [af.frame for af in analysed]
        work = _Work(self.record_dir(event, plain[0]))
        work.record_dir.mkdir(parents=True, exist_ok=True)
        line = self._stop_line(event, plain[0])
        facts = image_facts(event, analysed, line)
        boxes = [im.box for im in facts]
        plate = self._read_plate(event, plain, boxes)
        rendered = self._write_images(event, facts, line, plate.plate, work)
        closeup = self._captioned(plate)
        self._write_jpeg(work, "plate.jpg", closeup)
        self._write_jpeg(
            work, "composite.jpg", compose(rendered, closeup, cell_scale=self.composite_scale)
        )
        self._write_clip(plain, clip_source, work)
        return self._write_record(event, facts, plate, work)

    def _stop_line(self, event: Event, frame: Frame) -> StopLine | None:
        v = event.violation
        approach = v.approach if v is not None else None
        return StopLine.of(self.camera.intersection, approach, (frame.width, frame.height))

    def record_dir(self, event: Event, first: Frame) -> Path:
        for name in (event.stream_id, event.event_id):
            if not SAFE_NAME.match(name) or name in {".", ".."}:
                raise EvidenceError(f"unsafe name for an evidence path: {name!r}")
        day = beijing_date(first.wall_time_ms)
        return self.out_root / "evidence" / event.stream_id / day / event.event_id

    # -- steps -------------------------------------------------------------------------------

    def _read_plate(
        self, event: Event, frames: Sequence[Frame], boxes: Sequence[Box | None]
    ) -> _PlateResult:
        pairs = [(f.image, b) for f, b in zip(frames, boxes, strict=True)]
        if not subject_has_plate(event):  # a pedestrian: its upper body, no plate read
            idx = _sharpest(pairs)
            closeup = person_closeup(frames[idx].image, boxes[idx])
            none = Plate(text=None, color=None, confidence=0.0)
            return _PlateResult(none, None, closeup, idx, person=True)
        found: tuple[int, PlateReading] | None = None
        if self.plate_reader is not None:
            found = self.plate_reader.read_best_reading(pairs)
        if found is None:
            idx = _sharpest(pairs)
            closeup = plate_closeup(frames[idx].image, None, boxes[idx])
            plate = event.plate or Plate(text=None, color=None, confidence=0.0)
            return _PlateResult(plate, None, closeup, idx)
        idx, reading = found
        closeup = plate_closeup(frames[idx].image, reading.box, boxes[idx])
        plate = reading.to_plate()
        if not picture_has_colour(frames[idx].image, middle_only=True):  # grey: no plate colour
            plate = replace(plate, color=None)
        return _PlateResult(plate, idx, closeup, idx)

    def _captioned(self, plate: _PlateResult) -> ImageBGR:
        """The close-up with what it shows written on it (a plate or where one would be)."""
        return render_overlay(plate.closeup, [plate.caption()], font_path=self.font_path)

    def _write_images(
        self,
        event: Event,
        facts: Sequence[ImageFacts],
        line: StopLine | None,
        plate: Plate,
        work: _Work,
    ) -> list[ImageBGR]:
        rendered = []
        stop = [line.stop] if line is not None else None
        for im in facts:
            lines = overlay_lines(
                event,
                im.frame,
                self.facts,
                plate,
                index=im.index,
                total=len(facts),
                signal=_signal_or_unknown(im),
            )
            img = render_overlay(
                im.frame.image,
                lines,
                [im.box] if im.box is not None else None,
                position=self.overlay_position,
                lines_px=stop,
                font_path=self.font_path,
            )
            self._write_jpeg(work, f"{im.index}.jpg", img)
            rendered.append(img)
        return rendered

    def _write_jpeg(self, work: _Work, name: str, image: ImageBGR) -> None:
        try:
            data = encode_jpeg(image, JPEG_QUALITY)
        except ValueError as e:
            raise EvidenceError(f"cannot encode {name}: {e}") from e
        self._add_file(work, name, data)

    def _add_file(self, work: _Work, name: str, data: bytes | None) -> None:
        path = work.record_dir / name
        if data is not None:
            atomic_write_bytes(path, data)
        work.files.append(EvidenceFileEntry(name, path.stat().st_size, hmac_file(path, self._key)))

    def _write_clip(
        self, frames: Sequence[Frame], override: ClipSource | None, work: _Work
    ) -> None:
        sources = [override] if override is not None else self.clip_sources
        if not sources:
            work.clip_error = "no clip source (no packet ring or video file configured)"
            return
        start = min(f.pts for f in frames) - self.pre_roll_s
        end = max(f.pts for f in frames) + self.post_roll_s
        try:
            work.clip = write_clip(
                sources, max(0.0, start), end, work.record_dir / "clip.mp4", wait_s=self.clip_wait_s
            )
        except EvidenceError as e:
            log.warning("evidence clip failed for %s: %s", work.record_dir.name, e)
            work.clip_error = str(e)
            return
        self._add_file(work, "clip.mp4", None)

    def _incomplete(
        self, event: Event, facts: Sequence[ImageFacts], plate: _PlateResult, work: _Work
    ) -> list[dict[str, str]]:
        parts = incomplete_parts(event, facts, plate.plate)
        if work.clip is None:
            parts.append({"part": "clip", "reason": work.clip_error or "no clip"})
        return parts

    def _write_record(
        self,
        event: Event,
        facts: Sequence[ImageFacts],
        plate: _PlateResult,
        work: _Work,
    ) -> EvidenceRecord:
        font, why = font_status(self.font_path)
        record = EvidenceRecord(
            event_id=event.event_id,
            stream_id=event.stream_id,
            record_dir=work.record_dir,
            files=tuple(work.files),
            images=tuple(EvidenceImage.of_facts(im) for im in facts),
            plate=plate.plate,
            plate_frame=None if plate.frame_index is None else plate.frame_index + 1,
            closeup_frame=plate.closeup_frame + 1,
            subject="person" if plate.person else "vehicle",
            clip=work.clip,
            clip_error=work.clip_error,
            key_id=self.key_id,
            violation_code=self.facts.violation_code,
            incomplete=tuple(self._incomplete(event, facts, plate, work)),
            overlay_language="zh" if font is not None else "en",
            overlay_reason=why,
        )
        doc = record_document(record, event, self.camera, self._key)
        atomic_write_bytes(work.record_dir / "record.json", canonical_json(doc, indent=True))
        sign_record_for_hmac_key(work.record_dir, self._key, self.key_dir)
        return record


def _analysed(f: AnalysedFrame | Frame) -> AnalysedFrame:
    return f if isinstance(f, AnalysedFrame) else AnalysedFrame(f, Tracks.empty(), {})


def _signal_or_unknown(im: ImageFacts) -> SignalState:
    """The group's state in this frame; UNKNOWN (never the violation's colour) when absent."""
    st = im.signal
    if st is not None:
        return st
    pts = im.frame.pts
    return SignalState(im.group or "-", LampColor.UNKNOWN, 0.0, pts, pts, "none")


def _sharpest(pairs: Sequence[tuple[ImageBGR, Box | None]]) -> int:
    from sharpeyes.models.plate import rank_by_sharpness

    return rank_by_sharpness(pairs)[0]
