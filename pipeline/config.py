"""Camera and pipeline configuration: pydantic, ``extra="forbid"``, a description on every field.

Geometry is in relative 0–1 coordinates. ``load_camera_config`` turns any validation failure
into a one-line :class:`ConfigError` naming the bad field.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from types import UnionType
from typing import Annotated, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.pipeline.flow import FlowConfig

DEVICE_ID_RE = re.compile(r"^\d{20}$")
STREAM_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

EventKind = Literal["motor_vehicle", "non_motor", "person"]
ALL_EVENT_KINDS: tuple[EventKind, ...] = ("motor_vehicle", "non_motor", "person")


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


ProviderChoice = Literal["auto", "cpu", "cuda", "tensorrt"] | list[str]
KindName = Literal["person", "non_motor", "motor_vehicle", "traffic_light", "other"]


class DetectorBase(StrictModel):
    """What every detector backend shares: the model, its thresholds and class mapping."""

    model: str = Field(
        "yolov5n",
        description="Registered model name (see `sharpeyes models list`), e.g. yolov5n, "
        "yolov8n_int8, yolox_nano, or a model added with `sharpeyes models add`.",
    )
    model_path: Path | None = Field(
        None,
        description="Explicit model file; overrides the registry search. Without an explicit "
        "`model`, the family (YOLOv5 / YOLOv8-11 / YOLOv10-26 layout) is read from the file's "
        "metadata and output shape.",
    )
    input_size: tuple[int, int] | None = Field(
        None,
        description="Network input (height, width), multiples of 32; None = the model's "
        "default (rectangular letterbox for 16:9 with dynamic-shape models).",
    )
    confidence_threshold: float = Field(
        0.25, ge=0.0, le=1.0, description="Minimum score (objectness × class) to keep a box."
    )
    iou_threshold: float = Field(0.45, gt=0.0, le=1.0, description="NMS IoU threshold.")
    motorcycle_is_non_motor: bool = Field(
        True,
        description="Treat COCO 'motorcycle' as a non-motor vehicle (e-bikes and motorbikes are "
        "non-motor in many Chinese deployments); false makes it a motor vehicle.",
    )
    class_kinds: dict[str, KindName] = Field(
        default_factory=dict,
        description="Class name → object kind for a custom model's classes (overrides the "
        "built-in person/bicycle/car/motorcycle/bus/truck/traffic light mapping).",
    )
    other_class_kind: KindName = Field(
        "other", description="Kind of a class whose name is not known and not in class_kinds."
    )
    keep_other_classes: bool = Field(
        False,
        description="Also report COCO classes that are not traffic objects (dog, bench, …). "
        "A custom model's own classes are always reported.",
    )
    max_batch: int = Field(8, ge=1, le=512, description="Largest batch the detector is given.")
    device: str = Field(
        "cuda:0",
        description="GPU the backend runs on (cuda:N): the torch device, or the CUDA/TensorRT "
        "provider's device for ONNX Runtime; ignored on the CPU.",
    )
    warmup: int = Field(1, ge=0, le=100, description="Warm-up detections at build time.")
    download: bool = Field(True, description="Allow downloading a missing registered model.")
    fallback: Literal["cpu", "fail"] = Field(
        "fail",
        description="Backend unusable here: fall back to ONNX Runtime on the CPU, or fail.",
    )

    @field_validator("input_size")
    @classmethod
    def _multiple_of_32(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and (v[0] % 32 or v[1] % 32 or min(v) < 32):
            raise ValueError(f"input_size {v} must be two multiples of 32 (height, width)")
        return v


class OnnxRuntimeDetectorConfig(DetectorBase):
    """ONNX Runtime with host pre/post-processing (CPU, or CUDA/TensorRT providers)."""

    backend: Literal["onnxruntime"] = Field("onnxruntime", description="Detector runtime.")
    providers: ProviderChoice = Field(
        "auto",
        description="ONNX Runtime providers: auto = TensorRT → CUDA → CPU (those available), "
        "or one name, or an explicit list of ONNX Runtime provider names.",
    )
    intra_op_threads: int = Field(
        0, ge=0, le=256, description="Threads inside one operator; 0 = ONNX Runtime default."
    )
    inter_op_threads: int = Field(
        1, ge=0, le=64, description="Threads across operators; 0 = ONNX Runtime default."
    )
    allow_spinning: bool = Field(
        False,
        description="Let ONNX Runtime's CPU worker threads busy-wait between operators (a little "
        "lower latency on an idle machine; wasted CPU when decoding shares the cores).",
    )


class _GpuFields(DetectorBase):
    fp16: bool = Field(True, description="Half precision on the GPU (TensorRT / torch).")
    max_batch: int = Field(64, ge=1, le=512, description="Largest batch the detector is given.")


class OrtGpuDetectorConfig(_GpuFields):
    """ONNX Runtime with TensorRT/CUDA, on-device preprocessing and I/O binding (YOLOv5 layout)."""

    backend: Literal["onnxruntime-gpu"] = Field("onnxruntime-gpu", description="Detector runtime.")
    providers: Literal["auto", "cuda", "tensorrt"] = Field(
        "auto", description="GPU providers: auto = TensorRT → CUDA."
    )
    preprocess: Literal["auto", "torch", "cupy", "numpy"] = Field(
        "auto", description="Where letterbox/normalisation runs."
    )
    engine_cache_dir: Path | None = Field(None, description="TensorRT engine cache folder.")
    intra_op_threads: int = Field(
        0, ge=0, le=256, description="Host threads (0: one thread for the GPU backend)."
    )


class TorchDetectorConfig(_GpuFields):
    """The yolov5 checkpoint on PyTorch (fp16, CUDA graphs)."""

    backend: Literal["torch"] = Field("torch", description="Detector runtime.")
    cuda_graphs: bool = Field(True, description="Replay CUDA graphs for fixed shapes.")


def _backend_tag(value: object) -> str:
    if isinstance(value, dict):
        return str(value.get("backend", "onnxruntime"))
    return str(getattr(value, "backend", "onnxruntime"))


DetectorSettings = Annotated[
    Annotated[OnnxRuntimeDetectorConfig, Tag("onnxruntime")]
    | Annotated[OrtGpuDetectorConfig, Tag("onnxruntime-gpu")]
    | Annotated[TorchDetectorConfig, Tag("torch")],
    Discriminator(_backend_tag),
]
"""The one detector config: ``backend`` (default ``onnxruntime``) picks the variant."""

AnyDetectorConfig = OnnxRuntimeDetectorConfig | OrtGpuDetectorConfig | TorchDetectorConfig
DETECTOR_BACKEND_NAMES: tuple[str, ...] = ("onnxruntime", "onnxruntime-gpu", "torch")


class TrackerConfig(StrictModel):
    high_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Detections at or above this score start/extend tracks."
    )
    low_threshold: float = Field(
        0.1, ge=0.0, le=1.0, description="Second-stage (low-score) association threshold."
    )
    new_track_threshold: float = Field(
        0.6, ge=0.0, le=1.0, description="Score needed for an unmatched detection to open a track."
    )
    thresholds: Literal["auto", "fixed"] = Field(
        "auto",
        description="auto: each kind's tracks open (and continue) at a lower score than "
        "new_track_threshold (high_threshold) when the detector scores the camera's objects of "
        "that kind lower, measured on the tracks it is sure of (pipeline/tracking/"
        "score_level.py); never below 0.35 (0.3). fixed: the thresholds as set. A config that "
        "sets high_threshold or new_track_threshold to other than the default keeps them.",
    )
    match_iou: float = Field(
        0.2, gt=0.0, le=1.0, description="Minimum IoU for first-stage association."
    )
    min_hits: int = Field(
        2,
        ge=1,
        le=100,
        description="Matches in distinct pictures needed before a track is confirmed (a "
        "repeated picture is not analysed, so it does not count; 2 since repeats stopped "
        "counting: on highway_1280x720, whose every other frame repeats, 3 lost 3 of the 43 "
        "vehicles checked by eye — far ones detected in alternate pictures).",
    )
    lost_buffer_s: float = Field(
        1.5, gt=0.0, le=60.0, description="Seconds a lost track is kept for re-association."
    )
    parked_hold_s: float = Field(
        30.0,
        ge=0.0,
        le=600.0,
        description="A motor vehicle that stood still until the tracker lost it keeps its track "
        "id when it is found again at the same place within this many seconds (a parked or "
        "queued car hidden by passing traffic: one event, one count) and looking alike; a vehicle "
        "whose box two opposite sides of the picture cut is not known to stand "
        "(pipeline/tracking/parked.py). 0 = off.",
    )
    max_tracks: int = Field(
        512, ge=1, le=100_000, description="Upper bound on live track state per stream."
    )

    def self_tuned(self) -> bool:
        """Whether the camera sets its thresholds from its own objects' scores: ``auto``, and
        neither score threshold set to other than its default (a config dumped and read back
        sets every field; its defaults ask for nothing)."""
        fields = type(self).model_fields
        own = any(
            k in self.model_fields_set and getattr(self, k) != fields[k].default
            for k in ("high_threshold", "new_track_threshold")
        )
        return self.thresholds == "auto" and not own


class EventsConfig(StrictModel):
    max_age_s: float = Field(
        120.0, gt=0.0, description="Emit an event for a track still visible after this long."
    )
    min_track_s: float = Field(
        0.0, ge=0.0, description="Ignore confirmed tracks that lived shorter than this."
    )
    crop_margin: float = Field(
        0.1, ge=0.0, le=1.0, description="Extra margin around the best box for the crop."
    )
    crop_jpeg_quality: int = Field(90, ge=10, le=100, description="JPEG quality of crops.")
    scene_images: bool | None = Field(
        None,
        description="Keep the full frame of each event's best crop as its scene picture (GA/T "
        "SubImage 01 / 14 of checkpoint, face and person records). None: on for cameras with "
        "structuring or face capture, off otherwise (a frame per event costs disk).",
    )
    trajectory_points: int = Field(
        16, ge=2, le=256, description="Points kept in the event's trajectory summary."
    )
    suppress_riders: bool = Field(
        True,
        description="Persons riding a bicycle or motorbike produce no person event of their own "
        "(the two-wheeler's event stands for them).",
    )
    suppress_occupants: bool = Field(
        True,
        description="Persons seen inside a car, bus or truck (drivers and passengers behind a "
        "checkpoint camera's windscreen view) produce no person event: they are not "
        "pedestrians (pipeline/occupants.py). Their face captures stay.",
    )
    kinds: list[EventKind] = Field(
        default_factory=lambda: list(ALL_EVENT_KINDS),
        description="Which object kinds produce events.",
    )


ReadIntervalS = Annotated[float, Field(gt=0.0, le=10.0)]
"""Seconds between two reads (plate, face) of one track: the per-track read budget's pace."""
ReadsPerTrack = Annotated[int, Field(ge=1, le=200)]
"""Reads of one track at most: the per-track read budget's bound."""
CandidateRatio = Annotated[float, Field(ge=0.0, le=1.0)]
"""A box is a best-view candidate at this fraction of its track's best quality so far."""


class StructuringConfig(StrictModel):
    """Checkpoint (卡口) structuring of motor-vehicle tracks (``pipeline/structuring``)."""

    enabled: bool = Field(
        False, description="Read plates and body colour of motor-vehicle tracks (卡口 mode)."
    )
    plate_detector: Literal["plate_det_320", "plate_det_640"] = Field(
        "plate_det_320", description="Plate detector run on a candidate's vehicle box."
    )
    read_interval_s: ReadIntervalS = Field(
        0.2, description="Seconds between two plate reads of one track."
    )
    max_reads_per_track: ReadsPerTrack = Field(
        12, description="Plate reads per track at most (cost bound)."
    )
    candidate_ratio: CandidateRatio = Field(
        0.8,
        description="Read only when the box quality is at least this fraction of the track's "
        "best so far (best-view candidates).",
    )
    min_box_px: int = Field(
        48, ge=8, le=4096, description="Vehicle boxes with a shorter side below this are not read."
    )
    read_backoff_max_s: float = Field(
        1.6,
        ge=0.0,
        le=60.0,
        description="After a read that found a plate it could not read, the next one waits "
        "twice as long, up to this many seconds (at most read_interval_s: no backoff).",
    )
    settle_reads: int = Field(
        4,
        ge=0,
        le=50,
        description="A track whose plate this many sure reads (recogniser confidence ≥ 0.9) "
        "named alike is not read again (0: read to max_reads_per_track).",
    )
    plate_first: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Vehicles found by their plates where no vehicle track holds them (a view "
        "whose vehicles are larger than the picture): the plate detector on the whole picture "
        "— auto (cameras without an intersection): every 0.2 s while such plates keep being "
        "found, otherwise a probe every 0.5–2 s; on: every 0.2 s always; off: never.",
    )
    earlier_s: float = Field(
        2.0,
        ge=0.0,
        le=10.0,
        description="Seconds of pictures with vehicles no track holds, kept so that a new "
        "track's plate is also read on its own pictures from before the track opened (0: off).",
    )
    roi_margin: float = Field(
        0.1, ge=0.0, le=1.0, description="Margin added around the vehicle box for plate reading."
    )
    min_plate_reads: int = Field(
        2,
        ge=1,
        le=50,
        description="Readable reads that must agree in length, and read the stated text whole, "
        "to state a plate.",
    )
    min_char_share: float = Field(
        0.6,
        gt=0.0,
        le=1.0,
        description="Each fused character needs this share of the confidence-weighted votes.",
    )


class FaceCaptureConfig(StrictModel):
    """Face capture (人脸抓拍) on person tracks (``pipeline/structuring/faces.py``)."""

    enabled: bool = Field(
        False, description="Capture the best face of each person track (on for face cameras)."
    )
    min_face_px: int = Field(
        24, ge=8, le=1024, description="Faces shorter than this (pixels) are not emitted."
    )
    min_quality: float = Field(
        0.15, ge=0.0, le=1.0, description="Faces below this quality (0–1) are not emitted."
    )
    read_interval_s: ReadIntervalS = Field(
        0.2, description="Seconds between two face reads of one track."
    )
    max_reads_per_track: ReadsPerTrack = Field(
        15, description="Face reads per track at most (cost bound)."
    )
    candidate_ratio: CandidateRatio = Field(
        0.7,
        description="Read only when the person box quality is at least this fraction of the "
        "track's best so far.",
    )
    margin: float = Field(
        0.3, ge=0.0, le=1.0, description="Margin around the face for the close-up (fraction)."
    )


class GeoLocation(StrictModel):
    """Where a camera stands, for the camera map (GIS 一张图) of the operator screen."""

    latitude: float = Field(
        ge=-90.0,
        le=90.0,
        description="Latitude in decimal degrees, north positive, in the datum of the map's "
        "tile server (WGS-84, or GCJ-02 for most Chinese map tiles): no conversion is made.",
    )
    longitude: float = Field(
        ge=-180.0,
        le=180.0,
        description="Longitude in decimal degrees, east positive, in the same datum.",
    )


class CameraConfig(StrictModel):
    """One camera: identity, where its video comes from and how it is analysed."""

    id: str = Field("cam1", description="Short stream id (letters, digits, '_', '-', '.').")
    device_id: str = Field(
        "34020000001190000001",
        description="20-digit GA/T 1400 / GB/T 28181 device code of the camera.",
    )
    tollgate_id: str | None = Field(
        None, description="20-digit tollgate (卡口) code the camera belongs to, if any."
    )
    name: str = Field("camera", max_length=128, description="Human-readable camera name.")
    location: str = Field("", max_length=256, description="Place shown on evidence overlays.")
    geo: GeoLocation | None = Field(
        None,
        description="Map position (latitude, longitude) on the operator's camera map; "
        "None = the camera is not placed on the map.",
    )
    url: str | None = Field(
        None, description="rtsp://… URL or a video file path; the CLI VIDEO argument overrides."
    )
    live: bool = Field(
        False, description="Pace a file source in real time so it stands in for a live camera."
    )
    analysis_fps: float | None = Field(
        None, gt=0.0, le=120.0, description="Frames analysed per second; None = every frame."
    )
    skip_repeated_frames: bool = Field(
        True,
        description="Do not analyse a decoded picture that repeats the last analysed one "
        "(an encoder's or recorder's repeated frame: it would tell the tracker everything "
        "stopped); the signal heads are still read on it. See pipeline/repeats.py.",
    )
    denoise: bool = Field(
        True,
        description="Show the detector a filtered picture when the camera's sensor noise is "
        "high (dusk, night, high gain); tracks, crops and evidence keep the camera's own "
        "pixels. See pipeline/denoise.py.",
    )
    stretch_contrast: bool = Field(
        True,
        description="Show the detector the picture stretched to the full tonal range when "
        "haze, fog, a dirty dome or a flare has squeezed it; tracks, crops and evidence keep "
        "the camera's own pixels. See pipeline/contrast.py.",
    )
    near_field: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Objects filling the picture (a checkpoint camera over vehicle fronts): "
        "'auto' compares now and then what the detector finds on the picture and on it shrunk "
        "to half, and shows it the view that finds clearly more; 'on' always shrunk; 'off' "
        "never. A camera whose detector section sets its own input_size keeps that scale "
        "(auto is off). Tracks, crops and evidence keep the camera's own pixels. See "
        "pipeline/near_field.py.",
    )
    pixel_aspect: str | None = Field(
        None,
        description="Width : height of one coded pixel ('4:3', '12:11', '1.5'), for a stream "
        "whose picture is squeezed without saying so (an anamorphic sub-stream of a 16:9 "
        "camera); '1' = square whatever the stream says. None = as the stream says (its "
        "sample aspect ratio). Frames are stretched to square pixels before analysis.",
    )
    deinterlace: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Interlaced video (an analogue camera behind a DVR, a D1 / 960H encoder, "
        "a 1080i camera): 'auto' rebuilds the later field where it combs on the frames the "
        "decoder flags interlaced; 'on' on every frame (an interlaced signal encoded as "
        "progressive: nothing in the stream says so); 'off' never. See streams/fields.py.",
    )
    image_up_bearing_deg: float | None = Field(
        None,
        ge=0.0,
        lt=360.0,
        description="Compass bearing (0 = north, 90 = east) of the image's 'up' direction; "
        "enables GA/T direction codes. None = image-relative directions only.",
    )
    detector: DetectorSettings = Field(
        default_factory=OnnxRuntimeDetectorConfig,
        description="Detector backend, model and thresholds.",
    )
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="ByteTrack settings.")
    events: EventsConfig = Field(default_factory=EventsConfig, description="Event emission.")
    intersection: IntersectionCalibration | None = Field(
        None, description="Signalised-intersection calibration (red-light rules)."
    )
    structuring: StructuringConfig = Field(
        default_factory=StructuringConfig,
        description="Checkpoint structuring: fused plate, plate and body colour (default off).",
    )
    faces: FaceCaptureConfig = Field(
        default_factory=FaceCaptureConfig,
        description="Face capture on person tracks (default off; on for face cameras).",
    )
    flow: FlowConfig | None = Field(
        None, description="Traffic flow per lane (counts, speed, headway, occupancy, queue)."
    )

    @field_validator("id")
    @classmethod
    def _stream_id(cls, v: str) -> str:
        if not STREAM_ID_RE.match(v):
            raise ValueError(f"camera id {v!r} must be 1–64 letters, digits, '_', '-' or '.'")
        return v

    @field_validator("device_id", "tollgate_id")
    @classmethod
    def _gat_code(cls, v: str | None) -> str | None:
        if v is not None and not DEVICE_ID_RE.match(v):
            raise ValueError(f"{v!r} is not a 20-digit GA/T 1400 code")
        return v

    @field_validator("deinterlace", mode="before")
    @classmethod
    def _deinterlace(cls, v: object) -> object:
        # YAML 1.1 reads a bare on / off as true / false: take them as meant
        if isinstance(v, bool):
            return "on" if v else "off"
        return v

    @field_validator("pixel_aspect", mode="before")
    @classmethod
    def _pixel_aspect(cls, v: object) -> object:
        if v is None or isinstance(v, bool) or not isinstance(v, str | int | float):
            return v  # the str type check says what is wrong
        ratio = parse_pixel_aspect(str(v))
        return f"{ratio.numerator}:{ratio.denominator}"

    @property
    def pixel_aspect_ratio(self) -> Fraction | None:
        """:attr:`pixel_aspect` as a fraction; None = as the stream says."""
        return None if self.pixel_aspect is None else parse_pixel_aspect(self.pixel_aspect)


PIXEL_ASPECT_LIMITS = (Fraction(1, 4), Fraction(4))


def parse_pixel_aspect(text: str) -> Fraction:
    """``'4:3'``, ``'4/3'``, ``'1.333'`` or ``'1'`` → a pixel aspect ratio within
    :data:`PIXEL_ASPECT_LIMITS` (ValueError otherwise)."""
    raw = text.strip().replace(":", "/")
    try:
        ratio = Fraction(raw).limit_denominator(1000)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"pixel aspect {text!r} is not a ratio like '4:3' or '1.5'") from None
    low, high = PIXEL_ASPECT_LIMITS
    if not low <= ratio <= high:
        raise ValueError(f"pixel aspect {text!r} is outside {low}–{high}")
    return ratio


def format_validation_error(
    err: ValidationError, source: str, model: type[BaseModel] | None = None
) -> str:
    """One line naming the bad fields: ``camera.yaml: detector.iou_threshold: …``.

    A misspelt key comes first (the "field required" its typo causes is a consequence), with
    the key it most resembles among those ``model`` takes at that place (or, without
    ``model``, among the missing siblings): ``approaches.0.stopline: Extra inputs are not
    permitted (did you mean 'stop_line'?)``. Up to :data:`SHOWN_ERRORS` errors are named,
    the rest counted."""
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    shown = [_one_error(e, errors, model) for e in errors[:SHOWN_ERRORS]]
    more = f" (+{len(errors) - SHOWN_ERRORS} more)" if len(errors) > SHOWN_ERRORS else ""
    return f"{source}: {'; '.join(shown)}{more}"


SHOWN_ERRORS = 3


def _one_error(e: ErrorDetails, errors: list[ErrorDetails], model: type[BaseModel] | None) -> str:
    # a detector config variant's tag ("torch") is not a key the user wrote: leave it out
    parts = [str(p) for p in e["loc"] if str(p) not in DETECTOR_BACKEND_NAMES]
    msg = e["msg"]
    if e["type"] == "union_tag_invalid":  # the detector's `backend` names no variant
        ctx = e.get("ctx") or {}
        parts.append("backend")
        msg = f"unknown backend {ctx.get('tag')!r}; expected {ctx.get('expected_tags')}"
    if e["type"] == "extra_forbidden":
        known = _keys_at(model, e["loc"][:-1]) if model is not None else None
        if not known:
            known = [
                str(o["loc"][-1])
                for o in errors
                if o["type"] == "missing" and o["loc"][:-1] == e["loc"][:-1]
            ]
        close = difflib.get_close_matches(str(e["loc"][-1]), known, n=1, cutoff=0.6)
        if close:
            msg = f"{msg} (did you mean {close[0]!r}?)"
    return f"{'.'.join(parts) or '(root)'}: {msg}"


def _keys_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model takes at ``loc`` (list indexes and dict keys stepped over; a union
    of models offers the keys of all), empty when ``loc`` does not lead to a model."""
    current: list[object] = [model]
    for step in loc:
        if step in DETECTOR_BACKEND_NAMES:  # a tagged union's tag: the union offers every model
            continue
        current = [t for tp in current for t in _step(tp, step)]
    return [
        f.alias or name
        for tp in current
        for m in _step(tp, None)
        if isinstance(m, type) and issubclass(m, BaseModel)
        for name, f in m.model_fields.items()
    ]


def _step(tp: object, step: int | str | None) -> list[object]:
    """The types found one ``step`` into ``tp`` (a field name, list index or dict key); with
    ``step`` None, the models ``tp`` is or unions over."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return _step(args[0], step)
    if origin is Union or origin is UnionType:
        return [t for a in args for t in _step(a, step)]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if step is None:
            return [tp]
        fields = tp.model_fields
        f = fields.get(str(step)) or next((v for v in fields.values() if v.alias == step), None)
        return [f.annotation] if f is not None else []
    if step is None:
        return []
    if origin in (list, tuple, set, frozenset, Sequence) and isinstance(step, int):
        return [a for a in args if a is not Ellipsis]
    if origin in (dict, Mapping) and args:
        return [args[-1]]
    return []


def read_yaml(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: {getattr(e, 'problem', e)}") from e


def load_camera_config(path: Path | None) -> CameraConfig:
    """Load a camera YAML file (or the embedded defaults when ``path`` is None)."""
    if path is None:
        return CameraConfig()
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of camera fields")
    try:
        return CameraConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(path), CameraConfig)) from e


CameraList = Annotated[list[CameraConfig], Field(min_length=0)]
