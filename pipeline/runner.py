"""The per-stream runner: Frame → Detections → Tracks → (signal, rules, track events) → sinks.

One runner owns one stream's tracker, event builder, rules and signal board, on one thread, so
none of them needs locks. Decoding runs ahead on a prefetch thread; evidence for violations is
built on a worker thread off the hot path and the event is emitted when its evidence is done.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from sharpeyes.pipeline.contrast import DetectorContrast
from sharpeyes.pipeline.denoise import DetectorDenoise
from sharpeyes.pipeline.errors import ModelError
from sharpeyes.pipeline.near_field import NearField
from sharpeyes.pipeline.occupants import OccupantMemory
from sharpeyes.pipeline.protocols import Detector, FrameSource, Rule, Sink, Tracker
from sharpeyes.pipeline.repeats import RepeatedFrames
from sharpeyes.pipeline.riders import RiderMemory
from sharpeyes.pipeline.stages import Prefetcher, StageTimes, Stopwatch
from sharpeyes.pipeline.structuring.earlier import EarlierPictures
from sharpeyes.pipeline.structuring.face_stats import FaceStats
from sharpeyes.pipeline.structuring.plate_first import PlateFirst, PlateFirstStats, join_tracks
from sharpeyes.pipeline.structuring.plate_tally import PlateSizes, PlateTally
from sharpeyes.pipeline.types import (
    AnalysedFrame,
    Detections,
    Event,
    EventType,
    Frame,
    ImageBGR,
    ObjectKind,
    SignalState,
    Tracks,
)

logger = logging.getLogger(__name__)

TRACKED_KINDS = (ObjectKind.MOTOR_VEHICLE, ObjectKind.NON_MOTOR, ObjectKind.PERSON)


@runtime_checkable
class StagedDetector(Protocol):
    """A detector whose three stages can be timed separately (the YOLO detectors are)."""

    def preprocess(self, images: Sequence[ImageBGR]) -> Any: ...

    def infer(self, batch: Any) -> Any: ...

    def postprocess(self, raw: Any, batch: Any) -> list[Detections]: ...


class FinishingTracker(Tracker, Protocol):
    """A tracker that also reports which track ids ended since the last call."""

    def pop_finished(self) -> list[int]: ...


class TrackEvents(Protocol):
    """Turns confirmed tracks into one event per track (``pipeline.events.TrackEventBuilder``)."""

    def update(self, frame: Frame, tracks: Tracks) -> list[Event]: ...

    def finish(self, track_ids: Sequence[int]) -> list[Event]: ...

    def flush(self) -> list[Event]: ...


class SignalBoardLike(Protocol):
    def update(self, frame: Frame) -> Mapping[str, SignalState]: ...

    def problems(self) -> Mapping[str, str]:
        """Signal faults and calibration problems, by group / head (see ``SignalBoard``)."""
        ...

    def continue_from(self, earlier: object) -> None:
        """Take over the phases of the board this one replaces (a new picture size)."""
        ...


class EvidenceHook(Protocol):
    """Builds evidence for a violation from the analysed frames nearest its evidence times.

    Each :class:`AnalysedFrame` carries the frame with the tracks and signal states of that
    instant, so every evidence image can state its own facts.
    """

    def build(self, event: Event, frames: Sequence[AnalysedFrame]) -> Event: ...


@dataclass
class IntersectionParts:
    """What an intersection camera adds to its runner, for one frame size."""

    rules: Sequence[Rule] = ()
    board: SignalBoardLike | None = None
    evidence: EvidenceHook | None = None


class IntersectionFactory(Protocol):
    """Builds :class:`IntersectionParts` for a frame size ``(width, height)``."""

    def build(self, size: tuple[int, int]) -> IntersectionParts: ...


FrameObserver = Callable[
    [Frame, Detections, Tracks, Mapping[str, SignalState], Sequence[Event]], None
]


@dataclass
class RunSummary:
    stream_id: str
    frames_analysed: int = 0
    frames_decoded_span: int = 0
    wall_s: float = 0.0
    events_by_type: dict[str, int] = field(default_factory=dict)
    times: StageTimes = field(default_factory=StageTimes)
    frames_skipped: int = 0  # decoded frames not analysed (sampling, live drops), from seq gaps
    frames_repeated: int = 0  # decoded, not analysed: a repeat of the last analysed picture
    frames_denoised: int = 0  # analysed on a picture filtered for the detector (sensor noise)
    noise_sigma: float | None = None  # the camera's last measured noise (pipeline.denoise)
    frames_stretched: int = 0  # analysed on a picture stretched for the detector (a veil)
    frames_near_field: int = 0  # analysed on the picture shrunk for the detector (near field)
    near_field_switches: int = 0  # times the camera changed its detector view (near_field)
    occupants: int = 0  # person tracks inside a vehicle: no person_seen event (occupants)
    parked_seen_again: int = 0  # standing vehicles found again under their track id (parked)
    track_open_scores: dict[str, float] = field(default_factory=dict)  # kinds whose tracks
    # open below the configured score: the detector scores them lower (tracking.score_level)
    plates: PlateSizes | None = None  # plates the checkpoint reads found (structuring)
    plate_statuses: dict[str, int] = field(default_factory=dict)  # vehicle_pass events by
    # their extra["plate_status"] (read, unreadable, reads_disagree, …; structuring)
    plate_first: PlateFirstStats | None = None  # vehicles found by their plates (structuring)
    faces: FaceStats | None = None  # face capture: captured, or why not (faces enabled)
    tonal_range: float | None = None  # the camera's running grey range (pipeline.contrast)
    violations_withheld_corrupt: int = 0  # not charged: a stage image would be corrupt

    @property
    def analysed_fps(self) -> float:
        return self.frames_analysed / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def events_total(self) -> int:
        return sum(self.events_by_type.values())


def detect_timed(detector: Detector, images: Sequence[ImageBGR], sw: Stopwatch) -> list[Detections]:
    """Run a detector, timing preprocess / inference / postprocess when it exposes them."""
    if isinstance(detector, StagedDetector):
        with sw("preprocess"):
            batch = detector.preprocess(images)
        with sw("inference"):
            raw = detector.infer(batch)
        with sw("postprocess"):
            return detector.postprocess(raw, batch)
    with sw("inference"):
        return detector.detect(images)


EVIDENCE_NICE = 10


def _background_priority() -> None:
    """Run the calling thread below the analysis threads (Linux: per-thread nice value).

    Evidence (plate reading, JPEG encoding, the clip) is background work: on a small CPU it
    must not take the cores from a live camera's analysis, which would drop frames."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, EVIDENCE_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        logger.debug("evidence thread keeps normal priority")


SETTLE_FRAMES = 3
"""Analysed frames a violation's evidence waits for after its last image: the signal phase
model confirms a new colour within its ``confirm_frames`` (2) readings and back-dates it to the
first, so a few frames later the state that held at each image's instant is known."""


def settled_signals(af: AnalysedFrame, latest: Mapping[str, SignalState]) -> AnalysedFrame:
    """``af`` with each group's state as known now: where the latest state of a group began at
    or before this frame (a colour first read here and confirmed since) and differs from what
    was reported on the frame, the frame shows that state. Other groups are left as they were
    (a later change says nothing of this frame)."""
    signals = dict(af.signals)
    changed = False
    for group, now in latest.items():
        then = signals.get(group)
        if then is None or now.color is then.color or now.since_pts > af.frame.pts + 1e-6:
            continue
        signals[group] = dataclasses.replace(now, pts=then.pts)
        changed = True
    return AnalysedFrame(af.frame, af.tracks, signals) if changed else af


class FrameHistory:
    """The last ``seconds`` of analysed frames (bounded by count too), for evidence images, plus
    frames *pinned* beyond that window while a rule still needs them (``pin``): illegal parking's
    images 1 and 2 lie up to its dwell time back."""

    def __init__(self, seconds: float, max_frames: int = 600, max_pinned: int = 64) -> None:
        self._frames: deque[AnalysedFrame] = deque(maxlen=max_frames)
        self._seconds = seconds
        self._pinned: dict[float, AnalysedFrame] = {}
        self._max_pinned = max_pinned

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def pinned(self) -> int:
        return len(self._pinned)

    def add(self, item: AnalysedFrame) -> None:
        self._frames.append(item)
        pts = item.frame.pts
        while self._frames and pts - self._frames[0].frame.pts > self._seconds:
            self._frames.popleft()

    def drop_before(self, pts: float) -> None:
        """Forget frames older than ``pts`` (no rule can still need them for evidence)."""
        while self._frames and self._frames[0].frame.pts < pts:
            self._frames.popleft()

    def pin(self, wanted: Iterable[float], max_shift_s: float = 0.5) -> None:
        """Keep the frame nearest each ``wanted`` time (within ``max_shift_s``) until it is no
        longer wanted; times whose frame is already gone are skipped."""
        want = set(wanted)
        for p in [p for p in self._pinned if p not in want]:
            del self._pinned[p]
        for p in sorted(want - self._pinned.keys()):
            if len(self._pinned) >= self._max_pinned:
                logger.warning("frame history: %d frames pinned, no more", len(self._pinned))
                break
            got = self._nearest_of(list(self._frames), [p], max_shift_s)
            if got and abs(got[0].frame.pts - p) <= max_shift_s:
                self._pinned[p] = got[0]

    def nearest(self, pts_list: Sequence[float], max_shift_s: float = 0.5) -> list[AnalysedFrame]:
        """The frame nearest each pts, preferring a clean frame (not flagged corrupt) within
        ``max_shift_s``; a corrupt frame only when no clean one is that close. Pinned frames
        count as well as the window's."""
        frames = list(self._frames)
        if self._pinned:
            inside = {id(f) for f in frames}
            frames += [f for f in self._pinned.values() if id(f) not in inside]
        return self._nearest_of(frames, pts_list, max_shift_s)

    @staticmethod
    def _nearest_of(
        frames: Sequence[AnalysedFrame], pts_list: Sequence[float], max_shift_s: float
    ) -> list[AnalysedFrame]:
        if not frames:
            return []
        times = np.array([f.frame.pts for f in frames])
        clean = np.array([not f.frame.corrupt for f in frames])
        out = []
        for p in pts_list:
            dist = np.abs(times - p)
            best = int(np.argmin(dist))
            if not clean[best] and clean.any():
                alt = int(np.argmin(np.where(clean, dist, np.inf)))
                if dist[alt] <= max_shift_s:
                    best = alt
            out.append(frames[best])
        return out


class StreamRunner:
    """Runs one stream end to end; ``run()`` returns at end of stream or after ``stop()``."""

    def __init__(
        self,
        *,
        source: FrameSource,
        detector: Detector,
        tracker: FinishingTracker,
        events: TrackEvents,
        sinks: Sequence[Sink],
        rules: Sequence[Rule] = (),
        signal_board: SignalBoardLike | None = None,
        evidence: EvidenceHook | None = None,
        observer: FrameObserver | None = None,
        frame_history_s: float = 12.0,
        prefetch_depth: int = 4,
        stage_samples: int = 100_000,
        riders: RiderMemory | None = None,
        occupants: OccupantMemory | None = None,
        earlier: EarlierPictures | None = None,
        plates: PlateTally | None = None,
        plate_first: PlateFirst | None = None,
        faces: FaceStats | None = None,
        post: Callable[[Detections], Detections] | None = None,
        intersection: IntersectionFactory | None = None,
        label: Callable[[Event], Event] | None = None,
        repeats: RepeatedFrames | None = None,
        denoise: DetectorDenoise | None = None,
        contrast: DetectorContrast | None = None,
        near_field: NearField | None = None,
        near_detector: Callable[[], Detector] | None = None,
    ) -> None:
        """``prefetch_depth=0`` iterates the source directly: a live source (RTSP) decodes on its
        own thread into a latest-frame queue, so a second, blocking queue in front of it would
        only add latency. ``stage_samples`` bounds the stage timings kept per stage."""
        self.source = source
        self.detector = detector
        self.tracker = tracker
        self.events = events
        self.sinks = list(sinks)
        self.rules = list(rules)
        self.signal_board = signal_board
        self.evidence = evidence
        self.observer = observer
        self.frame_history_s = frame_history_s
        self.history = FrameHistory(frame_history_s) if rules and evidence else None
        self.post = post  # the camera's detection policy over a (shared) detector's output
        self.label = label  # names the class of the rules' events (e.g. events.ClassLabels)
        self.repeats = repeats  # repeated pictures are not analysed (pipeline.repeats)
        self.denoise = denoise  # a noisy picture is filtered for the detector (pipeline.denoise)
        self.contrast = contrast  # a washed-out picture is stretched for it (pipeline.contrast)
        self.near_field = near_field  # objects filling the picture: shown shrunk (near_field)
        # makes a detector at half the input for the near view, once it is taken (None: the
        # picture shrunk into a canvas for self.detector)
        self.near_detector = near_detector
        self._near: Detector | None = None
        self.intersection = intersection  # built on the first frame, when the size is known
        self.intersection_size: tuple[int, int] | None = None
        self._rescaled_from: tuple[int, int] | None = None  # a new picture size being scaled
        self._moving: list[tuple[int, int, int, int]] = []  # the last analysed picture's tracks
        self.prefetch_depth = prefetch_depth
        self.riders = riders  # persons riding a two-wheeler: no person_seen event of their own
        self.occupants = occupants  # persons inside a vehicle: no person_seen event either
        # pictures with untracked vehicles: a new track's plate is read on them too (structuring)
        self.earlier = earlier
        self.plates = plates  # the checkpoint stage's plate sizes, summarised at the end
        # vehicles found by their plates where no track holds them (structuring.plate_first)
        self.plate_first = plate_first
        self.faces = faces  # the face-capture stage's counts, summarised at the end
        self.stage_samples = stage_samples
        self.summary = RunSummary(stream_id=source.info.stream_id)  # live; replaced by run()
        self._stopping = False
        self._pending: list[tuple[Event, Future[Event]]] = []
        # violations waiting for SETTLE_FRAMES analysed frames after their last evidence image
        self._settling: list[tuple[Event, list[AnalysedFrame]]] = []
        self._recent_pts: deque[float] = deque(maxlen=SETTLE_FRAMES + 1)
        self._latest_signals: Mapping[str, SignalState] = {}
        self._pool: ThreadPoolExecutor | None = None

    def stop(self) -> None:
        self._stopping = True

    def run(self, progress: Callable[[Frame], None] | None = None) -> RunSummary:
        summary = RunSummary(
            stream_id=self.source.info.stream_id, times=StageTimes(self.stage_samples)
        )
        self.summary = summary
        sw = Stopwatch(summary.times)
        t0 = time.perf_counter()
        prefetch: Prefetcher[Frame] | None = None
        if self.prefetch_depth > 0:
            prefetch = Prefetcher(self.source.frames, self.prefetch_depth, summary.times, "decode")
        frames = prefetch if prefetch is not None else self.source.frames()
        last_seq: int | None = None  # of the last analysed frame
        first_seq: int | None = None
        seen_seq: int | None = None  # of the last frame decoded (a repeat too)
        try:
            repeated = 0  # repeats since the last analysed frame
            for decoded in frames:
                first_seq = decoded.seq if first_seq is None else first_seq
                seen_seq = decoded.seq
                frame = self._steady_frame(self._fit_frame(decoded))
                if self.repeats is not None and self.repeats.repeats_last(frame):
                    self._read_signals(frame, sw)  # a lamp may change where little else does
                    summary.frames_repeated += 1
                    repeated += 1
                    if progress is not None:
                        progress(frame)
                    if self._stopping:
                        break
                    continue
                skipped = 0 if last_seq is None else max(0, decoded.seq - last_seq - 1)
                summary.frames_skipped += max(0, skipped - repeated)
                last_seq, repeated = decoded.seq, 0
                if self.repeats is not None:
                    self.repeats.analysed(frame)
                events = self._analyse(frame, skipped, sw)
                self._emit(events, summary)
                if self.history is not None:
                    self._trim_history()
                summary.frames_analysed += 1
                if progress is not None:
                    progress(frame)
                if self._stopping:
                    break
        finally:
            if prefetch is not None:
                prefetch.close()
            self._emit(self._end_of_stream(), summary, final=True)
            self._drain_evidence(summary, wait=True)
            self.source.close()
        summary.wall_s = time.perf_counter() - t0
        if first_seq is not None and seen_seq is not None:
            summary.frames_decoded_span = seen_seq - first_seq + 1
        return summary

    def _fit_frame(self, frame: Frame) -> Frame:
        """An intersection picture whose size changed mid-stream but not its shape (an NVR
        switching between a camera's main and sub stream, a camera set to another resolution)
        is scaled to the size the intersection was built for: tracks, the phase model and
        decisions pending at the stop line carry on. Another aspect ratio is another view: the
        intersection is rebuilt for it (:meth:`_build_intersection`)."""
        size = self.intersection_size
        if size is None or frame.device_image is not None:
            return frame
        h, w = frame.image.shape[:2]
        if (w, h) == size or abs(w * size[1] - h * size[0]) > 0.01 * h * size[0]:
            return frame
        if self._rescaled_from != (w, h):
            logger.warning(
                "stream %s: frame size changed %s → %s (same shape); scaled back to %s",
                frame.stream_id,
                size,
                (w, h),
                size,
            )
            self._rescaled_from = (w, h)
        shrink = w > size[0]
        image = cv2.resize(
            frame.image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        )
        return dataclasses.replace(frame, image=np.asarray(image, np.uint8))

    def _steady_frame(self, frame: Frame) -> Frame:
        """An intersection picture moved back to where the camera was calibrated when the camera
        sways (the signal board's ``steady``, :class:`~sharpeyes.pipeline.signal_track.
        CameraSway`): the stop lines, lanes and signal heads are drawn on a still picture, and a
        sway of ±12 px moved the scene across them — runners missed, others charged. The picture
        is translated by the measured shift (what it shows is kept; the strip uncovered at the
        edge is black) and the shift is kept on the frame (``Frame.steadied``) for the board and
        the evidence record. Damaged pictures are not measured (their pixels may show anything)
        and are moved by the last shift. Before the intersection is built (the first picture)
        nothing is moved: that picture is the reference. The last analysed picture's tracks are
        left out of the measurement (a bus passing close moves a large part of the picture)."""
        steady = getattr(self.signal_board, "steady", None)
        if steady is None or frame.device_image is not None:
            return frame
        dx, dy = steady(frame, self._moving)
        if dx == 0 and dy == 0:
            return frame
        h, w = frame.image.shape[:2]
        shift = np.array([[1, 0, -dx], [0, 1, -dy]], np.float32)
        image = cv2.warpAffine(
            frame.image, shift, (w, h), flags=cv2.INTER_NEAREST, borderValue=(0, 0, 0)
        )
        return dataclasses.replace(frame, image=np.asarray(image, np.uint8), steadied=(dx, dy))

    def _detector_view(self, frame: Frame, sw: Stopwatch) -> tuple[ImageBGR, float]:
        """The picture the detector is shown and the factor from its pixels to the frame's: a
        washed-out one stretched to the full range (:mod:`~sharpeyes.pipeline.contrast`), then
        a noisy one filtered (:mod:`~sharpeyes.pipeline.denoise`, measured after the stretch,
        which amplifies the noise too; a large noisy picture shrunk to the detector's input
        first); otherwise the frame's own. Everything else keeps the frame's pixels."""
        image = frame.image
        factor = 1.0
        if frame.device_image is not None:
            return image, factor
        if self.contrast is not None:
            with sw("contrast"):
                image = self.contrast(image, frame.pts)
            self.summary.frames_stretched = self.contrast.stretched
            self.summary.tonal_range = self.contrast.span
        if self.denoise is not None:
            with sw("denoise"):
                image, factor = self.denoise.view(image, frame.pts)
            self.summary.noise_sigma = self.denoise.level
            self.summary.frames_denoised = self.denoise.filtered
        return image, factor

    def _build_intersection(self, frame: Frame) -> None:
        """Signal board, rules and evidence of an intersection camera, for this frame size.

        Raises:
            ConfigError: the calibration does not fit the frame (the camera fails with it).
        """
        assert self.intersection is not None
        h, w = frame.image.shape[:2]
        if self.intersection_size == (w, h):
            return
        if self.intersection_size is not None:
            logger.warning(
                "stream %s: frame size changed %s → %s; intersection rebuilt",
                frame.stream_id,
                self.intersection_size,
                (w, h),
            )
            for rule in self.rules:
                rule.end_of_stream()
        parts = self.intersection.build((w, h))
        self.rules = list(parts.rules)
        if self.signal_board is not None and parts.board is not None:
            parts.board.continue_from(self.signal_board)  # same lamps, same phase
        self.signal_board = parts.board
        self.evidence = parts.evidence
        self.history = FrameHistory(self.frame_history_s) if self.rules and self.evidence else None
        self.intersection_size = (w, h)

    def _detect(self, frame: Frame, sw: Stopwatch) -> Detections:
        """The camera's detections on ``frame``, in its pixels, after its own class and
        threshold policy: on the detector's view of the picture (:meth:`_detector_view`), as is
        or shrunk when the objects fill it (:mod:`~sharpeyes.pipeline.near_field`)."""
        image, factor = self._detector_view(frame, sw)

        def on(detector: Detector) -> Callable[[ImageBGR], Detections]:
            def detect(view: ImageBGR) -> Detections:
                dets = detect_timed(detector, [view], sw)[0]
                if factor != 1.0:  # the view was shrunk (denoise): boxes back to frame pixels
                    xyxy = np.asarray(dets.xyxy * factor, np.float32)
                    dets = dataclasses.replace(dets, xyxy=xyxy)
                return dets

            return detect

        def policy(dets: Detections) -> Detections:
            if self.post is None:
                return dets
            with sw("postprocess"):
                return self.post(dets)

        if self.near_field is None or frame.device_image is not None:
            return policy(on(self.detector)(image))
        near = self._near_view_detector() if self.near_field.near else None
        dets = self.near_field.detect(
            image, frame.pts, on(self.detector), policy, on(near) if near is not None else None
        )
        self.summary.frames_near_field = self.near_field.near_frames
        self.summary.near_field_switches = self.near_field.switches
        return dets

    @property
    def near_view(self) -> Detector | None:
        """The near field's detector at half the input, once made (None before, or never)."""
        return self._near

    def _near_view_detector(self) -> Detector | None:
        """The detector at half the input for the near view, made once when first needed; None
        (the canvas is used) when none can be made (a fixed-shape model, for one)."""
        if self._near is None and self.near_detector is not None:
            make, self.near_detector = self.near_detector, None  # one try
            try:
                self._near = make()
            except (ModelError, OSError, ValueError) as exc:
                logger.warning(
                    "stream %s: no detector at half the input for the near field (%s); the "
                    "picture is shrunk into a canvas for the camera's detector instead",
                    self.source.info.stream_id,
                    exc,
                )
        return self._near

    def _analyse(self, frame: Frame, skipped: int, sw: Stopwatch) -> list[Event]:
        if self.intersection is not None:
            self._build_intersection(frame)
        dets = self._detect(frame, sw)
        with sw("track"):
            tracks = self.tracker.update(
                dets.of_kind(*TRACKED_KINDS), frame.pts, skipped, frame.image
            )
            tracks = tracks.within(frame.image.shape[1], frame.image.shape[0])
            finished = self.tracker.pop_finished()
            self._moving = [
                (int(b[0]), int(b[1]), int(np.ceil(b[2])), int(np.ceil(b[3]))) for b in tracks.xyxy
            ]
            if self.riders is not None:
                self.riders.update(tracks, frame.pts)
            if self.occupants is not None:
                self.occupants.update(tracks, dets, frame.pts, frame.image.shape[0])
        own = tracks  # the tracker's: the rules and the earlier pictures see only these
        if self.plate_first is not None:  # plates no vehicle track holds: tracks of their own
            with sw("plate_first"):
                cars = dets.of_kind(ObjectKind.MOTOR_VEHICLE)
                found = self.plate_first.update(
                    frame,
                    tracks,
                    finished,
                    cars.xyxy,
                    classes=cars.class_id,
                    scores=cars.confidence,
                )
                tracks = join_tracks(tracks, found)
                finished = [*finished, *self.plate_first.pop_finished()]
                self.summary.plate_first = self.plate_first.stats
        signals = self._read_signals(frame, sw)
        self._recent_pts.append(frame.pts)
        events: list[Event] = []
        with sw("events"):
            events.extend(self.events.update(frame, tracks))
            if finished:
                events.extend(self.events.finish(finished))
            events = self._without_riders(events)
            if self.earlier is not None:  # after the stage looked back from this picture
                self.earlier.add(frame, dets, own)
        if self.rules:
            if self.history is not None:
                self.history.add(AnalysedFrame(frame, own, signals))
                # before the rules move on: a charge made now still finds its pinned frames
                self.history.pin(self._pinned_pts())
            with sw("rules"):
                # a plate track's box is estimated: no violation is charged on it
                for rule in self.rules:
                    events.extend(self._labelled(rule.update(frame, own, signals)))
        if self.observer is not None:
            self.observer(frame, dets, tracks, signals, events)
        return events

    def _read_signals(self, frame: Frame, sw: Stopwatch) -> Mapping[str, SignalState]:
        """The signal board's states on ``frame`` (none without a board), kept as the latest."""
        signals: Mapping[str, SignalState] = {}
        if self.signal_board is not None:
            with sw("signal"):
                signals = self.signal_board.update(frame)
        self._latest_signals = signals
        return signals

    def _pinned_pts(self) -> list[float]:
        """Evidence times rules still need beyond the history window (``pinned_pts``)."""
        out: list[float] = []
        for rule in self.rules:
            pinned = getattr(rule, "pinned_pts", None)
            if pinned is not None:
                out.extend(pinned())
        return out

    def _trim_history(self) -> None:
        """Keep only the frames a rule may still need for evidence (when rules say so)."""
        assert self.history is not None
        oldest: float | None = None
        for rule in self.rules:
            needed = getattr(rule, "oldest_needed_pts", None)
            if needed is None:
                return  # a rule that does not say keeps the whole window
            pts = needed()
            if pts is not None:
                oldest = pts if oldest is None else min(oldest, pts)
        if oldest is None:
            self.history.drop_before(float("inf"))
        else:
            self.history.drop_before(oldest - 1e-6)

    def _without_riders(self, events: list[Event]) -> list[Event]:
        """``events`` less the person_seen events of riders (the two-wheeler's event stands
        for them) and of occupants (inside a vehicle: not pedestrians), which are counted, and
        the events of plate tracks handed to a tracker's track (:mod:`.structuring.plate_first`:
        the vehicle's own event stands for it)."""
        riders, occupants, plate_first = self.riders, self.occupants, self.plate_first
        if riders is None and occupants is None and plate_first is None:
            return events
        kept = []
        for e in events:
            if (
                plate_first is not None
                and e.track_id is not None
                and plate_first.handed(e.track_id)
            ):
                continue  # a plate track handed to the tracker's track: that one's event stands
            if e.type is EventType.PERSON_SEEN and e.track_id is not None:
                if riders is not None and riders.is_rider(e.track_id):
                    continue
                if occupants is not None and occupants.is_occupant(e.track_id):
                    self.summary.occupants += 1
                    continue
            kept.append(e)
        return kept

    def _end_of_stream(self) -> list[Event]:
        lowered = getattr(self.tracker, "lowered", None)  # ByteTracker or a wrapper around it
        if callable(lowered):  # kinds whose tracks open lower by now
            self.summary.track_open_scores = dict(lowered())
        self.summary.parked_seen_again = int(getattr(self.tracker, "taken_over", 0))
        if self.plates is not None:
            self.summary.plates = self.plates.sizes()
        events = self._without_riders(self.events.flush())
        if self.faces is not None:  # after the flush: the last persons' faces are counted
            self.summary.faces = dataclasses.replace(self.faces)
        for rule in self.rules:
            events.extend(self._labelled(rule.end_of_stream()))
        return events

    def _labelled(self, events: Sequence[Event]) -> list[Event]:
        return [self.label(e) for e in events] if self.label is not None else list(events)

    def _emit(self, events: Sequence[Event], summary: RunSummary, *, final: bool = False) -> None:
        for ev in events:
            if ev.violation is not None and self.evidence is not None and self.history is not None:
                # its frames now: a frame pinned for this charge is let go once it is made
                self._settling.append((ev, self.history.nearest(ev.violation.evidence_pts)))
                continue
            self._deliver(ev, summary)
        self._release_settled(summary, final=final)
        self._drain_evidence(summary, wait=False)

    def _release_settled(self, summary: RunSummary, *, final: bool) -> None:
        """Build evidence for the violations whose last evidence image has ``SETTLE_FRAMES``
        analysed frames after it (all of them at the end of the stream): by then a signal
        change first read on an image's own frame is confirmed and back-dated, and the image is
        stamped with the state that held at that instant (:func:`settled_signals`)."""
        waiting: list[tuple[Event, list[AnalysedFrame]]] = []
        for ev, frames in self._settling:
            last = max(f.frame.pts for f in frames) if frames else -math.inf
            if not final and sum(p > last for p in self._recent_pts) < SETTLE_FRAMES:
                waiting.append((ev, frames))
                continue
            if any(f.frame.corrupt for f in frames):
                # a stage image would show a damaged picture: not charged (counted)
                summary.violations_withheld_corrupt += 1
                logger.warning(
                    "violation %s not charged: its evidence frames are corrupt", ev.event_id
                )
                continue
            stamped = [settled_signals(f, self._latest_signals) for f in frames]
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    1, thread_name_prefix="evidence", initializer=_background_priority
                )
            assert self.evidence is not None
            self._pending.append((ev, self._pool.submit(self.evidence.build, ev, stamped)))
        self._settling = waiting

    def _drain_evidence(self, summary: RunSummary, *, wait: bool) -> None:
        still: list[tuple[Event, Future[Event]]] = []
        for ev, fut in self._pending:
            if wait or fut.done():
                done = ev
                try:
                    done = fut.result()
                except Exception:
                    logger.exception(
                        "evidence for %s failed; violation kept without it", ev.event_id
                    )
                self._deliver(done, summary)
            else:
                still.append((ev, fut))
        self._pending = still
        if wait and self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _deliver(self, ev: Event, summary: RunSummary) -> None:
        for sink in self.sinks:
            sink.emit(ev)
        key = ev.type.value if isinstance(ev.type, EventType) else str(ev.type)
        summary.events_by_type[key] = summary.events_by_type.get(key, 0) + 1
        status = dict(ev.extra).get("plate_status") if ev.type is EventType.VEHICLE_PASS else None
        if status is not None:
            summary.plate_statuses[status] = summary.plate_statuses.get(status, 0) + 1
