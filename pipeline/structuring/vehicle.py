"""Checkpoint (卡口) structuring of motor-vehicle tracks: fused plate, plate image, body colour.

:class:`VehicleStructuring` wraps the stream's track-event builder (it is one itself, so the
runner does not change): every frame it looks at the detected motor-vehicle tracks and reads
the plate only on **best-view candidates** — a track whose box quality (``confidence ×
sqrt(area)``, as for the event crop) is at least ``candidate_ratio`` of its best so far, not
read in the last ``read_interval_s`` and with fewer than ``max_reads_per_track`` reads. Each
read runs the plate detector on the vehicle box (+ margin) only, never on the whole frame.
A track whose plate ``settle_reads`` sure reads (recogniser confidence ≥ 0.9, on pictures with
colour) named alike is not read again; after each read that found a plate it could not read,
the next waits twice as long (up to ``read_backoff_max_s``) — a plate in a script the
recogniser does not know, or too small, is not read twelve times — unless it is near the
readable size and growing (:data:`NEAR_LIMIT`, :data:`GROWN`: a car coming nearer); a plate seen
too small is read again once its vehicle's box has grown enough (:data:`READABLE_SHARE`; by
its height where the picture's side cuts the box). A new track's plate is also
read on its own pictures from before the track opened (:mod:`.earlier`: the detector saw the
vehicle, under the tracker's threshold), so a car whose track opens as its plate leaves the
picture is still read. Body-colour votes go on at every read interval on candidates.

Per read it keeps a :class:`PlateVote`, a body-colour vote (:mod:`.lab_colour`: the body
region of the box against the backdrop around it) and the plate picture of the most confident
readable read (a colour vote counts its share × its region's pixels, so a body seen whole
outweighs one clipped by the frame edge). When the wrapped builder emits the track's
``vehicle_pass`` event, the votes are fused (:func:`fuse_plate_reads`) and put on the event:
``plate`` (text None when unreadable, the event ``plate`` None when no plate was ever seen),
``plate_jpeg``, and ``extra`` keys
``plate_status`` (``read`` or the reason), ``plate_reads``, ``plate_support``,
``plate_reliability`` (how far the reads agree with the fused text, 0–100:
:func:`.plate_fusion.plate_agreement`), ``vehicle_color``, ``vehicle_color_share``, and
``vehicle_class`` / ``vehicle_class_basis`` — the GA/T 16.4 code decided from the plate's colour
and the track's class votes (``Tracks.class_votes``, kept from the track's last detection; the
detector's class where the tracker keeps none) (:mod:`.vehicle_class`), also set as the event's
``class_code``.
Runs on the tracking thread; state is per track, dropped with its event, on staleness and at
stream end. The wrapped builder is first wrapped in :class:`.person.ClothingColours` (coat /
trousers colours of persons and riders).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from sharpeyes.models.classes import COCO80_NAMES
from sharpeyes.models.plate import MIN_TEXT_PX
from sharpeyes.pipeline.config import StructuringConfig
from sharpeyes.pipeline.events import box_quality
from sharpeyes.pipeline.picture import PictureColour
from sharpeyes.pipeline.runner import TrackEvents
from sharpeyes.pipeline.structuring.earlier import EarlierPictures
from sharpeyes.pipeline.structuring.lab_colour import (
    ColourClassifier,
    backdrop,
    classify_box,
    vehicle_classifier,
    vehicle_region,
)
from sharpeyes.pipeline.structuring.person import ClothingColours
from sharpeyes.pipeline.structuring.plate_fusion import (
    REASON_NONE_VISIBLE,
    FusedPlate,
    PlateVote,
    fuse_plate_reads,
    plate_agreement,
)
from sharpeyes.pipeline.structuring.plate_presence import PlatePresence
from sharpeyes.pipeline.structuring.plate_tally import PlateTally
from sharpeyes.pipeline.structuring.vehicle_class import decide_vehicle_class, plate_size
from sharpeyes.pipeline.types import (
    Box,
    Event,
    EventType,
    FloatArray,
    Frame,
    ImageBGR,
    ObjectKind,
    Plate,
    Tracks,
)

logger = logging.getLogger(__name__)

STATUS_NOT_READ = "not_read"
STATUS_OUT_OF_VIEW = "plate_out_of_view"
NO_FRONT_PLATE = frozenset({"motorcycle", "motorbike", "tricycle"})
"""Detector classes of motor vehicles with a plate at the rear only (GA 36-2018: motorcycles and
tricycles): finding none says nothing of whether they have one."""
STATUS_NOT_FOUND = "plate_not_found"
"""No plate found on reads that saw the vehicle's plate end whole, but this camera has not shown
that it finds plates on vehicles of that size and shape (:mod:`.plate_presence`: plates too
small or oblique for the detector, a flank, a view from above): whether it has one is not
known (GA/T HasPlate not stated)."""
COLOR_MONOCHROME = "monochrome"
"""``extra.color_status`` of a track read only on pictures without colour (a camera in
monochrome / infrared night mode): no body or plate colour is stated, none can be seen."""
"""No plate found, but fewer than :data:`MIN_WHOLE_READS` reads saw the vehicle's lower edge
(where plates sit) clear — inside the frame and not under another vehicle's box: whether it has
a plate is not known (``no_plate_visible``, GA/T HasPlate "false", only when that many did)."""
MIN_WHOLE_READS = 3
"""Reads with the plate end clear before "no plate" is said. One or two can be a moment when a
car ahead that is not (yet) tracked hides the plate — the Beijing clip's green taxi (label 6),
read twice behind the van in front before that van's track started, went out as 无牌 (HasPlate
"false"); the plated vehicles there were read 4 to 12 times."""
EDGE_SHARE = 0.02
"""A box ending within this share of the frame's height from its bottom edge counts as cut by
it (a detector's box of a truncated object ends a few pixels inside the edge)."""
PLATE_BAND = 0.3
"""The lower share of a vehicle's box where its (front or rear) plate sits."""
COVERED_SHARE = 0.25
"""More of the plate band than this under another vehicle's box: the plate may be hidden."""
READABLE_SHARE = 0.8
"""A track whose last read saw its plate too small to read (under ``MIN_TEXT_PX``) is read
again once its box has grown so that the plate, at the width it had in the box then, would be
this share of ``MIN_TEXT_PX`` (a detector's plate box is a few pixels off either way) — or
:data:`SMALL_RECHECK_S` after that read (the plate was turned away, or half hidden). A far
intersection camera (hanoi_b: 56 plates seen, median 18 px, none readable) read every vehicle's
plate again and again at the backoff's pace for nothing."""
SMALL_RECHECK_S = 3.2
"""… or after this many seconds (twice the default backoff's longest interval)."""
NEAR_LIMIT = 1.5
"""A plate seen but not read under this many times ``MIN_TEXT_PX`` wide is near the size a
plate can be read at, and …"""
GROWN = 1.15
"""… when it is this much wider than at the track's last read that could not read it, the
vehicle is coming nearer: the read does not back the next one off further. A checkpoint camera
sees a car's plate readable for a second or less before it passes under (CCPD's ccpd_10 driven
through a checkpoint-sized picture in 2.4 s, ``benchmarks/stills_driveby.py``: its plate found at
31 and 44 px and not read, the backoff doubled to 0.8 s and the one read after it was the last
before the track ended — too few to state). A plate that stays unreadable at a size that should
read (a script the recogniser does not know) backs off as before."""


class PlateReadingLike(Protocol):
    """What the structuring stage needs of one plate reading (``models.plate.PlateReading``)."""

    @property
    def text(self) -> str | None: ...

    @property
    def color(self) -> str | None: ...

    @property
    def confidence(self) -> float: ...

    @property
    def det_confidence(self) -> float: ...

    @property
    def layers(self) -> int: ...

    @property
    def box(self) -> Box: ...


class PlateReaderLike(Protocol):
    """A plate reader (``models.plate.PlateReader``): plates in ``roi`` of an image, best first."""

    def read(
        self,
        image_bgr: ImageBGR,
        roi: Box | None = None,
        *,
        max_plates: int | None = None,
        retry_padded: bool = True,
        balance: NDArray[np.float32] | None = None,
        noise: float | None = None,
    ) -> Sequence[PlateReadingLike]: ...


@dataclass(slots=True)
class _TrackState:
    last_pts: float
    best_quality: float = 0.0
    last_read_pts: float | None = None
    reads: int = 0
    votes: list[PlateVote] = field(default_factory=list)
    colors: dict[str, float] = field(default_factory=dict)
    best_plate_conf: float = -1.0
    plate_jpeg: bytes | None = None
    whole_reads: int = 0  # reads with the box's lower edge inside the frame (its plate in view)
    last_class: int | None = None  # the tracker's (score-weighted) class at the last detection
    class_votes: dict[int, float] = field(default_factory=dict)  # the tracker's, whole track
    monochrome_reads: int = 0  # reads on a picture without colour (no colour voted there)
    fruitless: int = 0  # reads in a row that found a plate and could not read it (backoff)
    settled: bool = False  # enough sure reads agree: no more plate reads (colour votes go on)
    last_colour_pts: float | None = None  # the last body-colour vote
    colour_votes: int = 0
    small_plate: tuple[float, Box] | None = None  # plate px and vehicle box: last seen small
    fruitless_w: float | None = None  # px: the plate's width at the last read that found, not read
    empty_views: list[tuple[float, float]] = field(default_factory=list)  # box w, h: whole, none


def _grow(box: Box, margin: float) -> Box:
    mx, my = (box.x2 - box.x1) * margin, (box.y2 - box.y1) * margin
    return Box(
        max(0.0, box.x1 - mx),
        max(0.0, box.y1 - my),
        min(float(box.frame_w), box.x2 + mx),
        min(float(box.frame_h), box.y2 + my),
        box.frame_w,
        box.frame_h,
    )


class VehicleStructuring:
    """A :class:`~sharpeyes.pipeline.runner.TrackEvents` that adds checkpoint attributes to the
    ``vehicle_pass`` events of the builder it wraps (see the module docstring)."""

    def __init__(
        self,
        inner: TrackEvents,
        reader: PlateReaderLike,
        config: StructuringConfig,
        *,
        colors: ColourClassifier | None = None,
        stale_s: float = 300.0,
        class_names: Sequence[str] | None = None,
        earlier: EarlierPictures | None = None,
    ) -> None:
        """``class_names``: the detector's class list, to name the tracker's class votes; None
        = COCO's, used only for events whose class id and name agree with it. ``earlier``: the
        camera's untracked pictures (:mod:`.earlier`, fed by the runner); a new track's plate is
        also read on its own pictures from before it was born."""
        # persons and riders get their clothing colours in the same stage (one wrapper here,
        # so every entry point that enables structuring gets both)
        self._has_colour = PictureColour()
        self._inner: TrackEvents = ClothingColours(
            inner, stale_s=stale_s, has_colour=self._has_colour
        )
        self._reader = reader
        self._cfg = config
        self._colors = colors or vehicle_classifier()
        self._stale_s = stale_s
        self._names: tuple[str, ...] = tuple(class_names or COCO80_NAMES)
        self._names_given = class_names is not None
        self._tracks: dict[int, _TrackState] = {}
        self._earlier = earlier
        self._min_text_px = float(getattr(reader, "min_text_px", MIN_TEXT_PX))
        self.plates = PlateTally(MIN_TEXT_PX)  # how large the camera's plates are (camera-check)
        # where this camera finds plates: only there does finding none say "no plate" (无牌)
        self.presence = PlatePresence(READABLE_SHARE * self._min_text_px)
        self.reads_total = 0
        self.earlier_reads = 0  # reads on a track's pictures from before it was born

    def __len__(self) -> int:
        return len(self._tracks)

    def update(self, frame: Frame, tracks: Tracks) -> list[Event]:
        self._observe(frame, tracks)
        events = self._enrich(self._inner.update(frame, tracks))
        stale = [t for t, s in self._tracks.items() if frame.pts - s.last_pts > self._stale_s]
        for tid in stale:
            del self._tracks[tid]
        return events

    def finish(self, track_ids: Sequence[int]) -> list[Event]:
        events = self._enrich(self._inner.finish(track_ids))
        for tid in track_ids:  # ended without an event now (e.g. already emitted at max age)
            self._tracks.pop(int(tid), None)
        return events

    def flush(self) -> list[Event]:
        events = self._enrich(self._inner.flush())
        self._tracks.clear()
        return events

    def adopt(self, from_id: int, into_id: int) -> None:
        """Move track ``from_id``'s plate reads to track ``into_id`` (one vehicle: a plate-first
        track whose plate a tracker's track now holds, :mod:`.plate_first`). Its body-colour
        votes are left behind: they were cast on a box estimated around the plate, and the
        tracker's box is the vehicle's own (carried over, four of them settled the colour of
        two Beijing cars wrong)."""
        old = self._tracks.pop(int(from_id), None)
        if old is None:
            return
        new = self._tracks.get(int(into_id))
        if new is None:
            new = self._tracks[int(into_id)] = _TrackState(old.last_pts)
        # a picture both tracks read (the new track's earlier pictures, :mod:`.earlier`, are
        # the plate track's) is one piece of evidence, not two
        read = {v.pts for v in new.votes if v.pts is not None}
        kept = [v for v in old.votes if v.pts is None or v.pts not in read]
        new.votes = kept + new.votes
        new.reads += old.reads - (len(old.votes) - len(kept))
        new.whole_reads += old.whole_reads
        new.empty_views = old.empty_views + new.empty_views
        new.monochrome_reads += old.monochrome_reads
        if old.last_read_pts is not None and (
            new.last_read_pts is None or old.last_read_pts > new.last_read_pts
        ):
            new.last_read_pts = old.last_read_pts
        if old.best_plate_conf > new.best_plate_conf:
            new.best_plate_conf, new.plate_jpeg = old.best_plate_conf, old.plate_jpeg
        new.settled = settled(new.votes, self._cfg.settle_reads)

    # -- reading ----------------------------------------------------------------------------

    def _observe(self, frame: Frame, tracks: Tracks) -> None:
        cars = tracks.of_kind(ObjectKind.MOTOR_VEHICLE)
        cars = cars[cars.detected]
        if not len(cars) or frame.corrupt:
            return
        quality = box_quality(cars.xyxy, cars.confidence, frame.width, frame.height)
        for i in range(len(cars)):
            tid = int(cars.track_id[i])
            state = self._tracks.get(tid)
            if state is None:
                state = self._tracks[tid] = _TrackState(frame.pts)
                self._read_earlier(tid, state, cars.xyxy[i], frame)
            state.last_pts = frame.pts
            state.last_class = int(cars.class_id[i])
            state.class_votes = cars.votes_of(i)  # cumulative: the latest holds the whole track
            q = float(quality[i])
            state.best_quality = max(state.best_quality, q)
            if not self._is_candidate(state, q, cars.xyxy[i]):
                continue
            x1, y1, x2, y2 = (float(v) for v in cars.xyxy[i])
            box = Box(x1, y1, x2, y2, frame.width, frame.height)
            c = self._cfg
            if (
                not state.settled
                and state.reads < c.max_reads_per_track
                and _due(frame.pts, state.last_read_pts, self._interval(state))
                and self._may_be_readable(state, box, frame.pts)
            ):
                others = np.delete(cars.xyxy, i, axis=0)
                plate_end_seen = plate_end_in_view(cars.xyxy[i], others, frame.height)
                self._read(frame, tid, state, box, plate_end_seen)
            # body colours are voted on to the end: a silver car's first, far pictures vote
            # white and its near ones grey (stopping at four agreeing votes named it white)
            if state.colour_votes < c.max_reads_per_track and _due(
                frame.pts, state.last_colour_pts, c.read_interval_s
            ):
                self._vote_colour(frame, state, box)

    def _is_candidate(self, state: _TrackState, quality: float, box: FloatArray) -> bool:
        """A best-view candidate: large enough and near its track's best quality so far."""
        if min(float(box[2] - box[0]), float(box[3] - box[1])) < self._cfg.min_box_px:
            return False
        return quality >= self._cfg.candidate_ratio * state.best_quality

    def _may_be_readable(self, state: _TrackState, box: Box, pts: float) -> bool:
        """Whether the track's plate may be large enough to read now: none was seen too small
        yet, its box has grown to hold one :data:`READABLE_SHARE` of the readable width, or
        :data:`SMALL_RECHECK_S` passed since it was read. The box's growth is its width's, or
        its height's where the picture's left or right edge cuts the box now or then (a car
        whose plate is at one end of the bumper, entering from the side, a front wider than
        the picture: HyperLPR's street photo driven past a checkpoint camera, its box cut by the
        picture's left edge, stayed about 400 px wide while its plate grew from 31 to 110 px,
        and was not read again)."""
        small = state.small_plate
        if small is None or state.last_read_pts is None:
            return True
        plate_w, then = small
        growth = _growth(then, box)
        if growth is None or plate_w * growth >= READABLE_SHARE * self._min_text_px:
            return True
        return pts - state.last_read_pts >= SMALL_RECHECK_S - 1e-6

    def _interval(self, state: _TrackState) -> float:
        """Seconds until the track's next plate read: the read interval, doubled for each read
        in a row that found a plate it could not read, up to ``read_backoff_max_s`` (a read that
        finds no plate does not back off: an approaching vehicle shows its plate later)."""
        c = self._cfg
        longest = max(c.read_interval_s, c.read_backoff_max_s)
        return min(longest, c.read_interval_s * 2.0 ** min(state.fruitless, 16))

    def _read_earlier(self, tid: int, state: _TrackState, xyxy: FloatArray, frame: Frame) -> None:
        """Read a new track's plate on its pictures from before it was born (:mod:`.earlier`),
        oldest first, as candidates of their own: large enough, one per read interval."""
        if self._earlier is None:
            return
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        box = Box(x1, y1, x2, y2, frame.width, frame.height)
        for view in self._earlier.before(box, frame.pts):
            b = view.box
            if min(b.x2 - b.x1, b.y2 - b.y1) < self._cfg.min_box_px:
                continue
            if state.settled or state.reads >= self._cfg.max_reads_per_track:
                break
            if not _due(view.frame.pts, state.last_read_pts, self._cfg.read_interval_s):
                continue
            self.earlier_reads += 1
            edge = plate_end_in_view(np.array([b.x1, b.y1, b.x2, b.y2]), _NO_BOXES, b.frame_h)
            self._read(view.frame, tid, state, b, edge)
            self._vote_colour(view.frame, state, b)

    def _read(
        self, frame: Frame, tid: int, state: _TrackState, vehicle: Box, plate_end_seen: bool
    ) -> None:
        state.reads += 1
        state.last_read_pts = frame.pts
        state.whole_reads += int(plate_end_seen)
        self.reads_total += 1
        roi = _grow(vehicle, self._cfg.roi_margin)
        picture = self._has_colour.balance(frame)
        readings = self._reader.read(
            frame.image,
            roi,
            max_plates=1,
            retry_padded=False,
            balance=picture.gains,
            noise=self._has_colour.noise(frame),
        )
        best = readings[0] if readings else None
        coloured = self._has_colour(frame)
        state.monochrome_reads += int(not coloured)
        size = (vehicle.x2 - vehicle.x1, vehicle.y2 - vehicle.y1)
        if best is None and plate_end_seen:
            state.empty_views.append(size)
        if best is not None:
            plate_w = best.box.x2 - best.box.x1
            self.plates.add(plate_w, best.text)
            self.presence.add(tid, plate_w, *size)
            too_small = best.text is None and plate_w < self._min_text_px
            state.small_plate = (plate_w, vehicle) if too_small else None
            # a plate seen but not read backs off the next read; none seen yet does not, nor
            # one near the readable size that has grown since the last (the car comes nearer)
            if best.text is not None:
                state.fruitless, state.fruitless_w = 0, None
            else:
                last_w, state.fruitless_w = state.fruitless_w, plate_w
                nearing = (
                    last_w is not None
                    and plate_w >= GROWN * last_w
                    and plate_w < NEAR_LIMIT * self._min_text_px
                )
                state.fruitless += int(not nearing)
            # a grey picture shows no plate colour, and a plate too small to read shows none
            # the recogniser can be trusted with: either would be a guess (the highway's white
            # Texas plates, 15 px wide, came out "blue" on 14 cars, and 4 of them two-layer)
            unsure = best.text is None and plate_w < READABLE_SHARE * self._min_text_px
            color = best.color if coloured and not unsure else None
            layers = None if unsure else int(best.layers)
            vote = PlateVote(best.text, color, best.confidence, frame.pts, layers)
            state.votes.append(vote)
            if best.text is not None and best.confidence > state.best_plate_conf:
                jpeg = _plate_jpeg(frame.image, best.box)
                if jpeg is not None:
                    state.best_plate_conf, state.plate_jpeg = best.confidence, jpeg
            state.settled = settled(state.votes, self._cfg.settle_reads)

    def _vote_colour(self, frame: Frame, state: _TrackState, vehicle: Box) -> None:
        """The body colour of ``vehicle`` in ``frame``, added to the track's votes (none on a
        picture without colour)."""
        state.colour_votes += 1
        state.last_colour_pts = frame.pts
        if not self._has_colour(frame):
            return
        picture = self._has_colour.balance(frame)
        scene = backdrop(frame.image, vehicle, exposure=picture.exposure, balance=picture.gains)
        vote = classify_box(frame.image, vehicle_region(vehicle), scene, self._colors)
        if vote is not None:
            weight = vote.share * vote.pixels  # unclipped, larger regions count more
            state.colors[vote.color] = state.colors.get(vote.color, 0.0) + weight

    # -- events -----------------------------------------------------------------------------

    def _vote_names(self, event: Event, state: _TrackState) -> dict[str, float] | None:
        """The track's class votes by class name; None where there are none or the class list
        is not known to be the detector's (not given, and the event's class is not COCO's)."""
        names, cid = self._names, event.class_id
        if not state.class_votes or (
            not self._names_given
            and (cid is None or cid >= len(names) or names[cid] != event.class_name)
        ):
            return None
        votes = {c: w for c, w in state.class_votes.items() if c < len(names)}
        return {names[c]: w for c, w in votes.items()} or None

    def _enrich(self, events: list[Event]) -> list[Event]:
        return [self._attributes(e) if e.type is EventType.VEHICLE_PASS else e for e in events]

    def _attributes(self, event: Event) -> Event:
        state = self._tracks.pop(event.track_id, None) if event.track_id is not None else None
        if state is None or state.reads == 0:
            return event.with_(extra=(*event.extra, ("plate_status", STATUS_NOT_READ)))
        fused = fuse_plate_reads(
            state.votes, min_reads=self._cfg.min_plate_reads, min_share=self._cfg.min_char_share
        )
        status = "read" if fused.text else (fused.reason or "unreadable")
        if status == REASON_NONE_VISIBLE and state.whole_reads < MIN_WHOLE_READS:
            status = STATUS_OUT_OF_VIEW  # cut by the frame's edge or covered where a plate sits
        elif status == REASON_NONE_VISIBLE:
            shown = sum(self.presence.would_show(w, h) for w, h in state.empty_views)
            # a plate there might have been too small, or turned away; a motorcycle has no
            # front plate, and a rear one half a car's width
            if shown < MIN_WHOLE_READS or event.class_name in NO_FRONT_PLATE:
                status = STATUS_NOT_FOUND
        extra: list[tuple[str, str]] = [
            ("plate_status", status),
            ("plate_reads", str(state.reads)),
            ("plate_support", str(fused.support)),
        ]
        if state.colors:
            color, weight = max(state.colors.items(), key=lambda kv: kv[1])
            share = weight / sum(state.colors.values())
            extra += [("vehicle_color", color), ("vehicle_color_share", f"{share:.2f}")]
        elif state.monochrome_reads == state.reads:
            extra.append(("color_status", COLOR_MONOCHROME))
        plate = (
            Plate(
                text=fused.text,
                color=fused.color,
                confidence=fused.confidence,
                layers=fused.layers,
            )
            if fused.visible
            else None
        )
        if fused.text:
            agreement = plate_agreement(state.votes, fused.text)
            extra.append(("plate_reliability", str(agreement.reliability)))
        code, class_extra, settled = _vehicle_class(
            event, fused, state, self._vote_names(event, state)
        )
        name, class_id = event.class_name, event.class_id
        if settled and settled != name and settled in self._names:
            # the event names the class its plate and votes settled on, not a ruled-out one;
            # what the detector said by frames stays in extra
            class_extra.append(("detector_class", name or ""))
            name, class_id = settled, self._names.index(settled)
        return event.with_(
            plate=plate,
            plate_jpeg=state.plate_jpeg if fused.text else None,
            class_name=name,
            class_id=class_id,
            class_code=code,
            extra=(*event.extra, *extra, *class_extra),
        )


def _vehicle_class(
    event: Event, fused: FusedPlate, state: _TrackState, votes: dict[str, float] | None
) -> tuple[str | None, list[tuple[str, str]], str | None]:
    """The event's GA/T 16.4 code from its plate and the detector's class votes (or, without
    them, its class) (:mod:`.vehicle_class`), the ``extra`` keys that say so, and the detector
    class the evidence settled on (None: the event's own)."""
    stable = state.last_class is None or event.class_id is None
    stable = stable or state.last_class == event.class_id
    decision = decide_vehicle_class(
        event.class_name,
        event.class_code,
        plate_size(fused.color, fused.text),
        detector_stable=stable,
        votes=votes,
    )
    if decision.code is None:
        return event.class_code, [], None
    out = [("vehicle_class", decision.code), ("vehicle_class_basis", decision.basis)]
    return decision.code, out, decision.class_name


_NO_BOXES: FloatArray = np.zeros((0, 4), np.float32)

SETTLE_CONFIDENCE = 0.9
"""A read counts towards settling a track's plate at this recogniser confidence or more."""


def _cut(box: Box, vertical: bool) -> bool:
    """Whether the picture's left or right (``vertical``: top or bottom) edge cuts ``box``."""
    if vertical:
        lo, hi, size = box.y1, box.y2, box.frame_h
    else:
        lo, hi, size = box.x1, box.x2, box.frame_w
    return lo <= EDGE_SHARE * size or hi >= (1.0 - EDGE_SHARE) * size


def _growth(then: Box, now: Box) -> float | None:
    """How much larger ``now`` is than ``then`` (a vehicle's box): by width, or by height where
    a side edge of the picture cuts either; None where edges cut both ways (unknown)."""
    if not (_cut(then, False) or _cut(now, False)):
        return (now.x2 - now.x1) / max(then.x2 - then.x1, 1.0)
    if not (_cut(then, True) or _cut(now, True)):
        return (now.y2 - now.y1) / max(then.y2 - then.y1, 1.0)
    return None


def _due(pts: float, last: float | None, interval: float) -> bool:
    return last is None or pts - last >= interval - 1e-6


def settled(votes: Sequence[PlateVote], reads: int) -> bool:
    """Whether ``reads`` sure reads (:data:`SETTLE_CONFIDENCE`) on pictures with colour name
    the same text: the plate is known, and more reads would cost without changing it, so it is
    not read again (``reads`` 0: never). Reads on a grey picture do not count: they state no
    plate colour, and a later picture in colour (night mode ending) may."""
    if reads <= 0:
        return False
    sure = (v for v in votes if v.text and v.color and v.confidence >= SETTLE_CONFIDENCE)
    texts = Counter(v.text for v in sure)
    return bool(texts) and texts.most_common(1)[0][1] >= reads


def plate_end_in_view(box: FloatArray, others: FloatArray, frame_h: int) -> bool:
    """Whether a vehicle's plate end — the lower :data:`PLATE_BAND` of its box, where front and
    rear plates sit — is in view: not cut by the frame's bottom edge (within
    :data:`EDGE_SHARE` of it) and not covered by another vehicle's box for more than
    :data:`COVERED_SHARE` of the band (the car ahead hiding it)."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    if y2 >= frame_h * (1.0 - EDGE_SHARE):
        return False
    top = y2 - PLATE_BAND * (y2 - y1)
    area = max(1e-6, (x2 - x1) * (y2 - top))
    for o in others:
        w = min(x2, float(o[2])) - max(x1, float(o[0]))
        h = min(y2, float(o[3])) - max(top, float(o[1]))
        if w > 0 and h > 0 and w * h > COVERED_SHARE * area:
            return False
    return True


def _plate_jpeg(image: ImageBGR, box: Box, margin: float = 0.1) -> bytes | None:
    mx, my = (box.x2 - box.x1) * margin, (box.y2 - box.y1) * margin
    h, w = image.shape[:2]
    x1, y1 = max(0, int(box.x1 - mx)), max(0, int(box.y1 - my))
    x2, y2 = min(w, int(box.x2 + mx) + 1), min(h, int(box.y2 + my) + 1)
    if x2 - x1 < 4 or y2 - y1 < 2:
        return None
    ok, buf = cv2.imencode(".jpg", image[y1:y2, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, 95])
    return bytes(buf.tobytes()) if ok else None
