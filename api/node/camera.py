"""The one composition root of a camera: :func:`build_camera` turns a ``CameraConfig`` into a
runnable camera — the table of contents of sharpeyes.

source → shared detector → the camera's detection policy → ByteTrack → riders → track events
(+ on the first frame, when the size is known: signal board with the external phase input,
rules, evidence) → sinks.

Every entry point calls it: ``sharpeyes analyze`` (one file, its own detector), ``sharpeyes
run``/``serve`` and their worker processes (:class:`~sharpeyes.api.node.runtime.NodeRuntime`, one
detector behind the cross-camera batcher), the cluster's pipeline program and the benchmarks.
What differs between them is only what they hand in — a :class:`CameraEnv` (where files go,
RTSP and decoder settings, the external phase hub, a clock origin) plus the detector and the
sinks — never how a camera is wired. :class:`CameraWiring` says what got wired, so a test can
build the same camera through every entry point and compare.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sharpeyes.pipeline.config import AnyDetectorConfig, CameraConfig, DetectorBase
from sharpeyes.pipeline.contrast import DetectorContrast
from sharpeyes.pipeline.denoise import DetectorDenoise
from sharpeyes.pipeline.detection_filter import CameraDetectionFilter, DetectionPolicy
from sharpeyes.pipeline.near_field import NearField
from sharpeyes.pipeline.protocols import Detector, FrameSource, Sink
from sharpeyes.pipeline.repeats import RepeatedFrames
from sharpeyes.pipeline.runner import (
    FinishingTracker,
    FrameObserver,
    IntersectionParts,
    StreamRunner,
    TrackEvents,
)
from sharpeyes.pipeline.signal_input import ExternalPhaseInput, PhaseHub
from sharpeyes.pipeline.structuring.face_stats import FaceStats
from sharpeyes.pipeline.structuring.plate_first import PlateFirst
from sharpeyes.pipeline.types import ObjectKind
from sharpeyes.streams.config import RtspConfig, is_live_url

if TYPE_CHECKING:
    from sharpeyes.models.plate import PlateReader
    from sharpeyes.pipeline.structuring.vehicle import VehicleStructuring
    from sharpeyes.streams.gpu_decode import DecoderConfig
    from sharpeyes.streams.health import DropCounter
    from sharpeyes.streams.packet_ring import PacketRing

logger = logging.getLogger(__name__)

D = TypeVar("D", bound=DetectorBase)
RING_SECONDS = 60.0
RING_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class CameraEnv:
    """What an entry point provides to the cameras it builds (nothing camera-specific).

    ``files_root``: evidence and crops go below it. ``start_wall_ms``: the clock origin of a
    file source (the cluster gives every owner the same one); None = the file's creation time,
    or now for a file played live. ``wrap_source`` lets the cluster skip frames a replay does
    not need. ``prefetch``: decode ahead on a thread (None = unless the source is live).
    """

    files_root: Path
    rtsp: RtspConfig = field(default_factory=RtspConfig)
    decoder: DecoderConfig | None = None
    phases: PhaseHub | None = None
    start_wall_ms: int | None = None
    drops: DropCounter | None = None
    wrap_source: Callable[[FrameSource], FrameSource] | None = None
    prefetch: bool | None = None
    stage_samples: int = 100_000
    key_dir: Path | None = None  # evidence key ring (None: this user's installation ring)
    demo_key: bool = False  # sign with the public demo key (only `sharpeyes demo`)
    # how this entry point makes a detector for a camera config (the near field's, at half the
    # input: a node shares it between cameras); None = one of the camera's own (build_detector)
    detector_for: Callable[[CameraConfig], Detector] | None = None


@dataclass(frozen=True)
class CameraWiring:
    """What :func:`build_camera` wired for one camera — compared across entry points in tests."""

    camera_id: str
    source: str
    detector: str
    policy: DetectionPolicy
    tracker: str
    riders: bool
    event_kinds: tuple[str, ...]
    intersection: bool
    external_groups: tuple[str, ...]
    packet_ring: bool
    sinks: tuple[str, ...]
    structuring: bool = False  # checkpoint structuring (plates, colours) on vehicle_pass
    flow_lanes: tuple[str, ...] = ()  # lanes whose traffic flow is measured
    faces: bool = False  # face capture on person tracks
    skip_repeats: bool = False  # repeated pictures are not analysed (pipeline.repeats)
    denoise: bool = False  # a noisy picture is filtered for the detector (pipeline.denoise)
    stretch_contrast: bool = False  # a washed-out picture is stretched for it (pipeline.contrast)
    near_field: str = "off"  # objects filling the picture: auto / on / off (pipeline.near_field)
    occupants: bool = False  # persons inside vehicles make no person event (pipeline.occupants)
    earlier_s: float = 0.0  # a new track's plate read on its untracked pictures (structuring)
    plate_first: str = "off"  # vehicles found by their plates: auto / on / off (structuring)

    def semantic(self) -> dict[str, object]:
        """The parts that decide what the camera reports (not where it writes)."""
        return {
            "camera": self.camera_id,
            "detector": self.detector,
            "policy": self.policy,
            "tracker": self.tracker,
            "riders": self.riders,
            "event_kinds": self.event_kinds,
            "intersection": self.intersection,
            "external_groups": self.external_groups,
            "packet_ring": self.packet_ring,
            "structuring": self.structuring,
            "flow_lanes": self.flow_lanes,
            "faces": self.faces,
            "skip_repeats": self.skip_repeats,
            "denoise": self.denoise,
            "stretch_contrast": self.stretch_contrast,
            "near_field": self.near_field,
            "occupants": self.occupants,
            "earlier_s": self.earlier_s,
        }


@dataclass
class Camera:
    """A built camera: run ``runner.run()``; ``close()`` after it."""

    config: CameraConfig
    source: FrameSource
    runner: StreamRunner
    wiring: CameraWiring
    ring: PacketRing | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for c in self.closers:
            c()


def detection_policy(cam: CameraConfig) -> DetectionPolicy:
    """The per-camera part of detection, from the camera's ``detector`` section."""
    d = cam.detector
    return DetectionPolicy(
        confidence_threshold=d.confidence_threshold,
        motorcycle_is_non_motor=d.motorcycle_is_non_motor,
        keep_other_classes=d.keep_other_classes,
        class_kinds=tuple(sorted(d.class_kinds.items())),
        other_class_kind=d.other_class_kind,
    )


def shared_detector_config(base: D, cameras: Sequence[CameraConfig]) -> D:
    """The detector config of a detector shared by ``cameras`` (or used by one camera alone).

    It keeps every class a camera may want and boxes down to the lowest camera threshold; the
    motorcycle setting only decides kinds, which each camera applies itself, so NMS groups are
    the same for every camera (cars/buses/trucks merged, motorcycles apart).
    """
    floor = min([base.confidence_threshold, *(c.detector.confidence_threshold for c in cameras)])
    return base.model_copy(update={"confidence_threshold": floor, "motorcycle_is_non_motor": True})


OWN_DETECTOR_FIELDS = ("model", "model_path", "input_size")
"""A camera's detector fields a shared detector decides (the rest — thresholds, motorcycle kind,
class kinds — each camera applies after it)."""


def near_field_of(cam: CameraConfig) -> NearField | None:
    """The camera's choice of detector view (:mod:`sharpeyes.pipeline.near_field`): None when
    ``near_field`` is off, or ``auto`` on a camera whose detector section sets its own input
    size (its installer chose the scale)."""
    own_scale = "input_size" in asked_detector(cam)
    if cam.near_field == "off" or (cam.near_field == "auto" and own_scale):
        return None
    return NearField(cam.near_field, cam.id)


def near_detector(
    cam: CameraConfig, detector: Detector, env: CameraEnv
) -> Callable[[], Detector] | None:
    """What makes the near field's detector: the camera's model at half ``detector``'s input
    (a multiple of 32), through the entry point's ``env.detector_for`` — made only when the
    camera takes the near view. None for a model of fixed batch (a static engine: the near view
    is then the picture shrunk into a canvas for ``detector``)."""
    info = detector.info
    if info.batch is not None:
        return None
    h, w = info.input_size
    half = (max(32, h // 64 * 32), max(32, w // 64 * 32))
    own = cam.detector.model_copy(update={"input_size": half})
    near_cam = cam.model_copy(update={"detector": own})
    make = env.detector_for or build_detector
    return lambda: make(near_cam)


def asked_detector(cam: CameraConfig) -> dict[str, object]:
    """The :data:`OWN_DETECTOR_FIELDS` a camera's config sets to something other than the
    default (a config dumped and read back sets every field; its defaults ask for nothing)."""
    own = cam.detector
    fields = type(own).model_fields
    return {
        k: getattr(own, k)
        for k in OWN_DETECTOR_FIELDS
        if k in own.model_fields_set and getattr(own, k) != fields[k].default
    }


def detector_mismatch(cam: CameraConfig, shared: DetectorBase) -> str | None:
    """What a camera's own ``detector`` section asks for (:func:`asked_detector`) that a
    detector shared by a node (``shared``) does not give it: the model, its file and the input
    size are the shared detector's (thresholds, motorcycle kind and class kinds stay each
    camera's). None when nothing differs."""
    diffs = [
        f"{name} {_shown(value)} (the node runs {_shown(getattr(shared, name))})"
        for name, value in asked_detector(cam).items()
        if value != getattr(shared, name)
    ]
    if not diffs:
        return None
    return f"camera {cam.id!r} asks for detector {', '.join(diffs)}"


def _shown(value: object) -> str:
    return "the model's default" if value is None else str(value)


DetectorBuilder = Callable[[AnyDetectorConfig], Detector]
_DETECTOR_PLUGINS: dict[str, DetectorBuilder] = {}


def register_detector(prefix: str, builder: DetectorBuilder) -> None:
    """Build detectors whose ``model`` starts with ``prefix + ":"`` with ``builder``.

    The plug-in point for detectors that are not ONNX files (a test double that replays a
    scenario's ground truth, a remote inference server): every entry point builds detectors
    through :func:`build_shared_detector`, so a plug-in reaches all of them.
    """
    _DETECTOR_PLUGINS[prefix] = builder


def build_shared_detector(
    base: AnyDetectorConfig, cameras: Sequence[CameraConfig]
) -> tuple[Detector, str]:
    """The detector ``cameras`` share (one camera alone in ``analyze`` and the cluster) and the
    backend actually in use (for health): a plug-in, or the one model factory.

    Raises:
        ModelError: the model cannot be built (or the backend cannot run and may not fall back).
    """
    d = shared_detector_config(base, cameras)
    plugin = _DETECTOR_PLUGINS.get(d.model.split(":", 1)[0]) if ":" in d.model else None
    if plugin is not None:
        det = plugin(d)
        return det, f"plugin ({','.join(det.info.providers)})"
    from sharpeyes.models.factory import create_detector

    choice = create_detector(d)
    detector: Detector = choice.detector
    return detector, choice.backend_text


def build_detector(cam: CameraConfig) -> Detector:
    """The detector of a camera that runs alone (``analyze``, the cluster's pipeline program)."""
    return build_shared_detector(cam.detector, [cam])[0]


def describe_detector(det: Detector) -> str:
    i = det.info
    shape = "dynamic ≤" if i.batch is None else ""
    threads = i.intra_op_threads or "default"
    return (
        f"{i.model} {shape}{i.input_size[0]}x{i.input_size[1]} on {','.join(i.providers)} "
        f"({threads} threads)"
    )


def _event_kinds(cam: CameraConfig) -> tuple[str, ...]:
    return tuple(sorted(cam.events.kinds))


def evidence_key(key_dir: Path | None = None, *, demo: bool = False) -> bytes:
    """The HMAC key for evidence: env ``SHARPEYES_EVIDENCE_KEY``, else the installation key of
    ``key_dir`` (default: this user's key ring); the public demo key only when ``demo``."""
    from sharpeyes.pipeline.evidence.keys import evidence_hmac_key

    return evidence_hmac_key(key_dir, demo=demo)


_PLATE_LOCK = threading.Lock()
_PLATE_READERS: dict[str, PlateReader] = {}
PLATE_DETECTOR = "plate_det_640"


def shared_plate_reader(det_model: str = PLATE_DETECTOR) -> PlateReader:
    """The process's plate reader (ONNX Runtime sessions may run from several threads at once).

    One thread per call: plate reading runs in each camera's low-priority evidence thread."""
    from sharpeyes.models.plate import PlateReader

    with _PLATE_LOCK:
        reader = _PLATE_READERS.get(det_model)
        if reader is None:
            reader = PlateReader(det_model, threads=1)
            _PLATE_READERS[det_model] = reader
        return reader


def plate_first_search(
    cam: CameraConfig,
    reader: PlateReader,
    post: CameraDetectionFilter,
    vehicles: VehicleStructuring,
    *handovers: Callable[[int, int], None],
) -> PlateFirst | None:
    """The camera's plate-first search (``structuring.plate_first``), its tracks given the
    detector's "car" class (else its first motor-vehicle class); None when off, on ``auto`` for
    an intersection camera (e-police: its vehicles are far, its rules charge no plate-first
    track, and the probes cost hanoi_b 2 % of its detector for no track), or when the detector
    has no motor-vehicle class to give them."""
    mode = cam.structuring.plate_first
    names = [n.lower() for n in post.class_names]
    motor = [i for i, k in enumerate(post.kind_table) if int(k) == int(ObjectKind.MOTOR_VEHICLE)]
    if mode == "off" or (mode == "auto" and cam.intersection is not None) or not motor:
        return None
    class_id = names.index("car") if "car" in names else motor[0]
    search = PlateFirst(
        reader,
        class_id=class_id,
        min_width_px=reader.min_text_px,
        always=mode == "on",
        on_handover=vehicles.adopt,
    )
    for callback in handovers:  # also told of each handover (the event builder's first sight)
        search.add_handover(callback)
    return search


class IntersectionBuilder:
    """Signal board, rules and evidence of an intersection camera, built for a frame size.

    The calibration is relative, so the parts need the frame size: the runner calls
    :meth:`build` on its first frame — for files, RTSP and GPU sources alike.
    """

    def __init__(
        self,
        cam: CameraConfig,
        files_root: Path,
        ring: PacketRing | None,
        external: ExternalPhaseInput | None,
        *,
        key_dir: Path | None = None,
        demo_key: bool = False,
    ) -> None:
        if cam.intersection is None:
            raise ValueError(f"camera {cam.id!r} has no intersection calibration")
        self.cam = cam
        self.files_root = files_root
        self.ring = ring
        self.external = external
        self.key_dir = key_dir
        self.demo_key = demo_key
        # size-independent and slow to load (two ONNX sessions): loaded now, before the source
        # runs, so that the first frames of a live camera are not dropped while it loads; one
        # reader per process, shared by every intersection camera
        self.plate_reader = shared_plate_reader()
        self.built: list[tuple[int, int]] = []

    def build(self, size: tuple[int, int]) -> IntersectionParts:
        from sharpeyes.pipeline.evidence.builder import EvidenceBuilder
        from sharpeyes.pipeline.rules import build_rules
        from sharpeyes.pipeline.signal import build_signal_board

        cam = self.cam
        assert cam.intersection is not None
        rules = build_rules(cam.id, cam.intersection, size)
        board = build_signal_board(cam.intersection, size, self.external)
        url = cam.url or ""
        evidence = EvidenceBuilder(
            self.files_root,
            camera=cam,
            plate_reader=self.plate_reader,
            hmac_key=evidence_key(self.key_dir, demo=self.demo_key),
            key_dir=self.key_dir,
            clip_pre_roll_s=2.0,
            clip_post_roll_s=2.0,
            ring=self.ring,
            video_path=None if is_live_url(url) or not url else Path(url),
        )
        self.built.append(size)
        logger.info("camera %s: intersection built for %dx%d", cam.id, *size)
        return IntersectionParts(rules=rules, board=board, evidence=evidence)


def external_groups(cam: CameraConfig) -> list[str]:
    """Signal groups whose phase comes (also) from the external input."""
    if cam.intersection is None:
        return []
    return [g.id for g in cam.intersection.signal_groups if g.source != "video"]


def tracker_of(cam: CameraConfig) -> FinishingTracker:
    """The camera's tracker: ByteTrack, and a standing vehicle found again keeps its id
    (``tracker.parked_hold_s``, :mod:`sharpeyes.pipeline.tracking.parked`)."""
    from sharpeyes.pipeline.tracking.bytetrack import ByteTracker
    from sharpeyes.pipeline.tracking.parked import ParkedContinuity

    tracker = ByteTracker(cam.tracker)
    if cam.tracker.parked_hold_s <= 0:
        return tracker
    return ParkedContinuity(tracker, hold_s=cam.tracker.parked_hold_s)


def build_camera(
    cam: CameraConfig,
    env: CameraEnv,
    *,
    detector: Detector,
    sinks: Sequence[Sink],
    observer: FrameObserver | None = None,
    source: FrameSource | None = None,
) -> Camera:
    """Wire one camera (see module docstring). ``detector`` may be shared with other cameras
    (a batcher view) — the camera's own detection policy is applied after it. ``source``
    overrides the source the config asks for (tests, benchmarks on pre-decoded frames).

    Raises:
        ValueError: the camera has no url.  StreamOpenError: a file cannot be opened.
    """
    from sharpeyes.models.classes import COCO80_NAMES, VEHICLE_CLASS_CODES
    from sharpeyes.pipeline.events import ClassLabels, TrackEventBuilder
    from sharpeyes.pipeline.occupants import OccupantMemory
    from sharpeyes.pipeline.riders import RiderMemory
    from sharpeyes.pipeline.structuring.earlier import EarlierPictures
    from sharpeyes.pipeline.structuring.plate_tally import PlateTally
    from sharpeyes.streams.factory import is_live_source, make_source

    if cam.url is None and source is None:
        raise ValueError(f"camera {cam.id!r} has no url")
    ring: PacketRing | None = None
    if cam.intersection is not None:
        from sharpeyes.streams.packet_ring import PacketRing as _Ring

        ring = _Ring(max_seconds=RING_SECONDS, max_bytes=RING_BYTES)
    if source is None:
        source = make_source(
            cam,
            env.rtsp,
            env.drops,
            ring,
            decoder=env.decoder,
            start_wall_ms=env.start_wall_ms,
        )
    if env.wrap_source is not None:
        source = env.wrap_source(source)
    groups = external_groups(cam)
    external: ExternalPhaseInput | None = None
    if groups:
        hub = env.phases if env.phases is not None else PhaseHub()
        external = hub.input_for(cam.id, groups)
    intersection = (
        IntersectionBuilder(
            cam, env.files_root, ring, external, key_dir=env.key_dir, demo_key=env.demo_key
        )
        if cam.intersection is not None
        else None
    )
    names = detector.info.class_names or COCO80_NAMES
    post = CameraDetectionFilter.for_names(detection_policy(cam), names)
    live = is_live_source(source)
    prefetch = env.prefetch if env.prefetch is not None else not live
    riders = RiderMemory() if cam.events.suppress_riders else None
    occupants = OccupantMemory() if cam.events.suppress_occupants else None
    events_cfg = cam.events
    if events_cfg.scene_images is None:  # on where records are structured: 卡口, faces
        structured = cam.structuring.enabled or cam.faces.enabled
        events_cfg = events_cfg.model_copy(update={"scene_images": structured})
    builder = TrackEventBuilder(
        cam.id,
        events_cfg,
        class_names=tuple(names),
        class_codes=VEHICLE_CLASS_CODES,
        image_up_bearing_deg=cam.image_up_bearing_deg,
    )
    events: TrackEvents = builder
    # -- checkpoint structuring (issue 13): plates + colours on vehicle_pass events ----------
    earlier: EarlierPictures | None = None
    plates: PlateTally | None = None
    plate_first: PlateFirst | None = None
    if cam.structuring.enabled:
        from sharpeyes.pipeline.structuring.vehicle import VehicleStructuring

        reader = shared_plate_reader(cam.structuring.plate_detector)
        if cam.structuring.earlier_s > 0:  # a new track's pictures from before it was born
            earlier = EarlierPictures(
                cam.structuring.earlier_s,
                cam.structuring.read_interval_s,
                cam.structuring.min_box_px,
            )
        vehicles = VehicleStructuring(
            events, reader, cam.structuring, class_names=tuple(names), earlier=earlier
        )
        plates, events = vehicles.plates, vehicles
        # a handed-over track's event starts where its plate was first seen (builder.adopt)
        plate_first = plate_first_search(cam, reader, post, vehicles, builder.adopt)
    # -- end checkpoint structuring ------------------------------------------------------------
    face_stats: FaceStats | None = None
    if cam.faces.enabled:  # face capture: the best face of each person track (one YuNet each)
        from sharpeyes.models.resolve import resolve_model
        from sharpeyes.pipeline.structuring.faces import FaceCapture, YuNetLandmarkFaces

        faces = YuNetLandmarkFaces(str(resolve_model("yunet_face")))
        capture = FaceCapture(events, faces, cam.faces, scene_images=bool(events_cfg.scene_images))
        face_stats, events = capture.stats, capture
    if cam.flow is not None:  # traffic flow per lane; the counted lane goes on pass events
        from sharpeyes.pipeline.flow import FlowEvents

        events = FlowEvents(events, cam.id, cam.flow, class_names=tuple(names))
        if plate_first is not None:  # a plate track handed over is counted once
            plate_first.add_handover(events.adopt)
    near = near_field_of(cam)
    runner = StreamRunner(
        source=source,
        detector=detector,
        tracker=tracker_of(cam),
        events=events,
        sinks=sinks,
        observer=observer,
        prefetch_depth=4 if prefetch else 0,
        stage_samples=env.stage_samples,
        riders=riders,
        occupants=occupants,
        earlier=earlier,
        plates=plates,
        plate_first=plate_first,
        faces=face_stats,
        post=post,
        intersection=intersection,
        label=ClassLabels(tuple(names), VEHICLE_CLASS_CODES),
        repeats=RepeatedFrames() if cam.skip_repeated_frames else None,
        denoise=DetectorDenoise(max(detector.info.input_size)) if cam.denoise else None,
        contrast=DetectorContrast() if cam.stretch_contrast else None,
        near_field=near,
        near_detector=near_detector(cam, detector, env) if near is not None else None,
    )
    wiring = CameraWiring(
        camera_id=cam.id,
        source=type(source).__name__,
        detector=describe_detector(detector),
        policy=post.policy,
        tracker=cam.tracker.model_dump_json(),
        riders=riders is not None,
        occupants=occupants is not None,
        earlier_s=earlier.window_s if earlier is not None else 0.0,
        plate_first=("off" if plate_first is None else "on" if plate_first.always else "auto"),
        event_kinds=_event_kinds(cam),
        intersection=intersection is not None,
        external_groups=tuple(groups),
        packet_ring=ring is not None,
        sinks=tuple(type(s).__name__ for s in sinks),
        structuring=cam.structuring.enabled,
        flow_lanes=tuple(lane.id for lane in cam.flow.lanes) if cam.flow is not None else (),
        faces=cam.faces.enabled,
        skip_repeats=runner.repeats is not None,
        denoise=runner.denoise is not None,
        stretch_contrast=runner.contrast is not None,
        near_field=runner.near_field.mode if runner.near_field is not None else "off",
    )
    return Camera(cam, source, runner, wiring, ring)
