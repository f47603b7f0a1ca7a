"""Public API schemas, one family per resource (Create / Update / Public / Page).

Every response model is a pydantic model with examples so the OpenAPI document is useful on its
own; request models reject unknown keys.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.config import (
    CameraConfig,
    DetectorSettings,
    EventsConfig,
    GeoLocation,
    TrackerConfig,
)
from sharpeyes.pipeline.structuring.face_stats import FaceStats, face_finding, faces_too_small
from sharpeyes.pipeline.structuring.plate_tally import PlateSizes, finding, too_small_to_read

ReviewState = Literal["pending", "confirmed", "rejected"]
ReviewAction = Literal["confirm", "reject"]
RoleName = Literal["viewer", "reviewer", "admin"]
EventTypeName = Literal[
    "vehicle_pass",
    "non_motor_pass",
    "person_seen",
    "red_light_violation",
    "pedestrian_red_light",
    "stream_health",
    "traffic_flow",
    "face_capture",
]
FeedTypeName = EventTypeName | Literal["review"]  # the feed also carries review decisions
EvidenceName = Literal[
    "1.jpg",
    "2.jpg",
    "3.jpg",
    "plate.jpg",
    "composite.jpg",
    "clip.mp4",
    "record.json",
    "crop.jpg",
    "scene.jpg",
]
EVIDENCE_NAMES: tuple[str, ...] = EvidenceName.__args__  # type: ignore[attr-defined]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- events and violations ------------------------------------------------------------------------


class BoxPublic(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float
    frame_w: int
    frame_h: int


class PlatePublic(BaseModel):
    text: str | None = Field(description="Recognised plate, None when unreadable.")
    color: str | None = None
    confidence: float = 0.0


class AttributesPublic(BaseModel):
    """What video structuring (视频结构化) states about the object; each field only when a stage
    measured it (colours: ``structuring`` / clothing colours, lane and speed: ``flow``)."""

    plate_status: str | None = Field(
        None, description="`read`, or why no plate text is stated (e.g. `unreadable`)."
    )
    vehicle_color: str | None = Field(None, description="Body colour (GA/T ColorType name).")
    coat_color: str | None = Field(None, description="Upper-garment colour of a person or rider.")
    trousers_color: str | None = Field(None, description="Lower-garment colour.")
    color_status: str | None = Field(
        None,
        description="`monochrome`: every read was on a picture without colour (a camera in "
        "infrared / night mode), so no body, garment or plate colour is stated.",
    )
    lane_no: int | None = Field(None, description="Lane the flow stage counted the track in.")
    speed_kmh: float | None = Field(
        None, description="Ground speed; only on a camera with a ground-plane calibration."
    )
    face_quality: float | None = Field(None, description="Of a face capture, 0–1.")


class ViolationPublic(BaseModel):
    code: str = Field(
        description="Violation behaviour code (GA 408.1, e.g. 1625: a motor vehicle running a "
        "red light; pedestrians: 8901, a local code for Road Traffic Safety Law art. 89)."
    )
    signal_group: str
    signal_color: str
    seconds_since_red: float = Field(
        description="How long the signal had been red at the crossing (s). A lower bound when "
        "red_onset_seen is false."
    )
    red_onset_seen: bool = Field(
        True,
        description="False when the red was already on when the camera first saw the signal "
        "(started mid-phase, after a gap or an unreadable stretch): the true onset is earlier "
        "and seconds_since_red is at least the value given.",
    )
    lane_no: int | None = None
    movement: str | None = None
    approach: str | None = None
    crossed_stop_line_pts: float
    evidence_pts: list[float] = Field(default_factory=list)
    time_ms: int | None = Field(
        None,
        description="The violation's time (the stop-line crossing) in UTC epoch milliseconds: "
        "crossed_stop_line_pts mapped to wall time. The record's time, not first_seen_ms.",
    )


class IncompletePartPublic(BaseModel):
    part: str = Field(
        description="What is missing or doubtful, e.g. plate, image_1.", examples=["plate"]
    )
    reason: str = Field(examples=["plate unreadable in every evidence image"])


class EvidenceFilePublic(BaseModel):
    name: str = Field(examples=["composite.jpg"])
    size: int = Field(description="Bytes.")
    media_type: str = Field(examples=["image/jpeg"])
    url: str = Field(description="Download URL, signed for a limited time (usable in <img>).")


class ReviewInfo(BaseModel):
    state: ReviewState
    recognised_plate: str | None = Field(None, description="The plate as first recognised.")
    corrected_plate: str | None = Field(None, description="The plate as a reviewer corrected it.")
    reviewed_by: str | None = None
    reviewed_ms: int | None = None


class TrajectoryPointPublic(BaseModel):
    """One point of the subject's track: its anchor (``intersection.anchor``, the box's bottom
    centre by default) at stream time ``pts``."""

    pts: float = Field(
        description="Stream time (s), the timeline of the evidence record's images and of "
        "`record.json` clip.start_pts_s (the clip's first frame)."
    )
    x: float = Field(description="Anchor x in pixels of the analysed frame (box.frame_w wide).")
    y: float = Field(description="Anchor y in pixels of the analysed frame (box.frame_h high).")


class EventPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "3f2a9c0d1e4b5a6978c0d1e2f3a4b5c6",
                    "type": "red_light_violation",
                    "camera_id": "cam1",
                    "kind": "motor_vehicle",
                    "first_seen_ms": 1764384000123,
                    "last_seen_ms": 1764384003456,
                    "confidence": 0.91,
                    "plate": {"text": "京A12345", "color": "blue", "confidence": 0.88},
                    "review": {"state": "pending"},
                }
            ]
        }
    )

    event_id: str
    type: EventTypeName
    camera_id: str
    kind: str
    class_name: str | None = None
    class_code: str | None = None
    track_id: int | None = None
    first_seen_ms: int = Field(description="UTC epoch milliseconds.")
    last_seen_ms: int
    first_pts: float
    last_pts: float
    confidence: float
    box: BoxPublic | None = None
    direction: str | None = None
    heading_deg: float | None = None
    plate: PlatePublic | None = None
    violation: ViolationPublic | None = None
    attributes: AttributesPublic | None = Field(
        None, description="Structured attributes, when any stage stated one."
    )
    detail: str | None = None
    review: ReviewInfo | None = Field(None, description="Present for violations only.")
    evidence: list[EvidenceFilePublic] | None = Field(
        None,
        description="The record's evidence files (signed URLs); null on list pages — get the "
        "event (GET /events/{id} or /violations/{id}) for them; [] when it has none.",
    )
    time_ms: int = Field(
        0,
        description="The record's time in UTC epoch milliseconds: the violation time (stop-line "
        "crossing) for violations, first_seen_ms otherwise.",
    )
    evidence_complete: bool | None = Field(
        None,
        description="From the evidence record (detail views only): whether it proves the "
        "violation by itself; None when no record was read.",
    )
    incomplete: list[IncompletePartPublic] = Field(
        default_factory=list,
        description="What the evidence record cannot show (detail views only); a reviewer must "
        "acknowledge these before confirming.",
    )
    violation_type: str | None = Field(
        None,
        description="Of a violation (lists, detail, feed): the type `violation_type=` filters on "
        "(wrong_way, lane_direction, no_turn, solid_line, illegal_parking, yield_pedestrian, "
        "red_light_violation, pedestrian_red_light).",
    )
    trajectory: list[TrajectoryPointPublic] = Field(
        default_factory=list,
        description="The subject's track (detail views of a violation only): the review console "
        "draws its box over the clip from it.",
    )


class FlowPublic(BaseModel):
    """Traffic flow (交通流) of one lane over one interval (``pipeline/flow.py``)."""

    camera_id: str
    lane_id: str
    lane_no: int
    start_ms: int = Field(description="Interval start, UTC epoch ms (aligned to the interval).")
    interval_s: float
    observed_s: float = Field(description="Analysed time covered (less for a partial interval).")
    complete: bool = Field(
        description="Whether the stream covered the whole interval (false for the last one, "
        "one the stream started in, and one with a gap of over 2 s between frames)."
    )
    count: int = Field(description="Vehicles that entered the lane's zone.")
    by_kind: dict[str, int]
    by_class: dict[str, int]
    mean_speed_kmh: float | None = Field(
        None, description="Time-mean speed; only on a camera with a ground-plane calibration."
    )
    speeds_measured: int
    mean_headway_s: float | None = None
    occupancy: float = Field(description="Share of the interval with a vehicle in the zone.")
    queue_max_vehicles: int | None = Field(
        None, description="Longest queue behind the lane's stop line (lanes with one)."
    )
    queue_max_length_m: float | None = None


class FlowPage(BaseModel):
    items: list[FlowPublic]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; None on the last page."
    )


class EventPage(BaseModel):
    items: list[EventPublic]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; None on the last page."
    )
    next_after: int | None = Field(
        None,
        description="Ingest cursor: pass as `after` to get what was stored after this page "
        "(never None from the list routes). With `after`, the last item's sequence on a full "
        "page, else the store's high-water mark; newest-first, the high-water mark read before "
        "the page (poll from there to miss nothing stored later).",
    )


class ReviewCreate(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "confirm", "reason": "signal red, stop line crossed"},
                {"action": "reject", "reason": "ambulance on duty", "corrected_plate": None},
            ]
        },
    )

    action: ReviewAction
    reason: str | None = Field(None, max_length=500, description="Why; required when rejecting.")
    corrected_plate: str | None = Field(
        None, min_length=1, max_length=16, description="The plate as the reviewer reads it."
    )


class AuditEntryPublic(BaseModel):
    id: int
    event_id: str
    actor: str
    action: str
    reason: str | None = None
    before: dict[str, str | None]
    after: dict[str, str | None]
    at_ms: int


class ReviewResult(BaseModel):
    event: EventPublic
    audit: AuditEntryPublic


# -- cameras and streams --------------------------------------------------------------------------

CameraId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", examples=["cam1"])]


class CameraCreate(CameraConfig):
    """A camera as in the config file (the same model: one place declares every field and its
    constraints); ``url`` may carry RTSP credentials (never echoed)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "cam2",
                    "device_id": "34020000001190000002",
                    "name": "人民路-解放路 东向",
                    "url": "rtsp://admin:secret@192.0.2.10:554/Streaming/Channels/101",
                }
            ]
        },
    )

    id: CameraId = Field(description="Short stream id (letters, digits, '_', '-', '.').")


def _partial(model: type[BaseModel], name: str, skip: frozenset[str]) -> type[BaseModel]:
    """``model`` with every field optional (default None) and its constraints kept."""
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        if field_name in skip:
            continue
        constrained: Any = info.rebuild_annotation()  # the type with its constraints
        fields[field_name] = (constrained | None, Field(None, description=info.description))
    return create_model(name, __base__=Strict, **fields)


class CameraUpdate(_partial(CameraConfig, "CameraFields", frozenset({"id"}))):  # type: ignore[misc]
    """Partial update of :class:`CameraConfig` (derived from it, so the same constraints); send
    the masked URL back unchanged to keep the stored password."""


class CameraPublic(BaseModel):
    id: str
    device_id: str
    tollgate_id: str | None = None
    name: str
    location: str
    url: str | None = Field(None, description="Source URL with the password masked as ***.")
    live: bool
    analysis_fps: float | None = None
    image_up_bearing_deg: float | None = None
    geo: GeoLocation | None = Field(None, description="Latitude/longitude (WGS-84) for the map.")
    detector: DetectorSettings = Field(
        description="The camera's detector section as configured. On a node the shared "
        "detector's model, runtime, providers and device come from the service config; this "
        "camera's confidence threshold, motorcycle kind and class kinds apply (and a different "
        "model or input size gets a detector of its own). What actually runs: "
        "`GET /api/v1/streams/{id}` → `detector`."
    )
    tracker: TrackerConfig
    events: EventsConfig
    intersection: IntersectionCalibration | None = None
    enabled: bool = Field(description="Whether the camera should be analysing (start/stop).")
    created_ms: int
    updated_ms: int


class CameraPage(BaseModel):
    items: list[CameraPublic]


StreamState = Literal[
    "starting",
    "connecting",
    "running",
    "degraded",
    "stalled",
    "reconnecting",
    "stopped",
    "ended",
    "error",
]


class PlateSizesPublic(BaseModel):
    """How large a checkpoint camera's plates are in its picture: what its plate reads found
    since its pipeline started (``pipeline/structuring/plate_tally.py``)."""

    found: int = Field(ge=0, description="Plates found by the camera's plate reads.")
    read: int = Field(ge=0, description="Of them, plates whose text was read.")
    too_small: int = Field(
        ge=0,
        description="Plates not read because they were narrower than `needed_px` (their "
        "province character comes out wrong that small).",
    )
    median_width_px: float | None = Field(
        None,
        description="Median width of the latest 500 plates found, picture pixels; None before "
        "the first.",
    )
    needed_px: float = Field(description="The width a plate needs to be read (50 px).")
    too_small_to_read: bool = Field(
        False,
        description="The median plate is narrower than `needed_px`, of at least 5 found: the "
        "camera cannot read its plates (zoom in or move it closer).",
    )
    finding: str | None = Field(
        None,
        description="What to do about plates too small to read (set with `too_small_to_read`).",
        examples=[
            "plates are 41 px wide in the picture (median of 26 found): too small to read, 50 px "
            "needed — zoom in or move the camera closer"
        ],
    )
    finding_zh: str | None = Field(None, description="`finding` in Chinese.")

    @classmethod
    def of(cls, sizes: PlateSizes) -> PlateSizesPublic:
        """The public view of a camera's plate tally (the judgement is plate_tally's)."""
        return cls(
            found=sizes.seen,
            read=sizes.read,
            too_small=sizes.too_small,
            median_width_px=None if sizes.median_px is None else round(sizes.median_px, 1),
            needed_px=sizes.needed_px,
            too_small_to_read=too_small_to_read(sizes),
            finding=finding(sizes, "en"),
            finding_zh=finding(sizes, "zh"),
        )


class FaceCountsPublic(BaseModel):
    """What a face camera's face capture did with the persons it saw since its pipeline
    started (``pipeline/structuring/face_stats.py``): one count per person track."""

    persons: int = Field(ge=0, description="Person tracks whose events went out.")
    captured: int = Field(ge=0, description="Of them, with a face captured (a face_capture event).")
    too_small: int = Field(
        ge=0, description="With a face found, but under `needed_px` high: not captured."
    )
    low_quality: int = Field(
        ge=0, description="With a face found, too blurred or turned away: not captured."
    )
    no_face: int = Field(ge=0, description="With no face found (seen from behind, too small).")
    largest_small_px: float = Field(
        ge=0.0, description="Height of the largest face found that was under `needed_px`."
    )
    needed_px: float = Field(description="The height a face needs to be captured (min_face_px).")
    too_small_to_capture: bool = Field(
        False,
        description="More than half of the faces found were under `needed_px`, of at least 5 "
        "found: the camera is aimed too wide for faces (zoom in or move it closer).",
    )
    finding: str | None = Field(
        None,
        description="What to do about faces too small to capture (with `too_small_to_capture`).",
        examples=[
            "faces too small to capture: 7 of 7 found under 24 px high (the largest 15 px) — "
            "zoom in or move the camera closer"
        ],
    )
    finding_zh: str | None = Field(None, description="`finding` in Chinese.")

    @classmethod
    def of(cls, stats: FaceStats) -> FaceCountsPublic:
        """The public view of a camera's face counts (the judgement is face_stats')."""
        return cls(
            persons=stats.persons,
            captured=stats.captured,
            too_small=stats.too_small,
            low_quality=stats.low_quality,
            no_face=stats.no_face,
            largest_small_px=round(stats.largest_small_px, 1),
            needed_px=stats.needed_px,
            too_small_to_capture=faces_too_small(stats),
            finding=face_finding(stats, "en"),
            finding_zh=face_finding(stats, "zh"),
        )


class StreamHealthPublic(BaseModel):
    """Live health of one camera's stream, as the stream layer reports it."""

    camera_id: str
    state: StreamState
    input_fps: float = Field(0.0, description="Frames per second received from the source.")
    analysed_fps: float = Field(0.0, description="Frames per second that reached the detector.")
    drops_by_reason: dict[str, int] = Field(
        default_factory=dict, examples=[{"queue_full": 12, "decode_error": 0}]
    )
    reconnects: int = 0
    last_frame_age_s: float | None = Field(None, description="Seconds since the last frame.")
    skew_ms: float | None = Field(None, description="Stream wall clock minus server clock.")
    decoder: str | None = Field(None, examples=["pyav-cpu", "nvdec"])
    detector: str | None = Field(
        None,
        description="The detector runtime this camera's frames actually go through (backend "
        "and execution providers), which the node's `detector:` config decides — not the "
        "camera's own `detector` section, of which only thresholds and class kinds apply on a "
        "node.",
        examples=["onnxruntime (CPUExecutionProvider)"],
    )
    url: str | None = Field(None, description="Masked source URL.")
    detail: str | None = None
    corruption_rate: float = Field(
        0.0, description="Share of recent frames corrupt or lost (above the threshold: degraded)."
    )
    timing_faults: int = Field(0, description="Frames whose timestamp did not advance.")
    noise_sigma: float | None = Field(
        None,
        description="Sensor noise of the camera's pictures (σ, 8-bit grey levels; a clean "
        "daytime picture is about 1). None before it is measured.",
    )
    noise_filtered: bool = Field(
        False,
        description="The noise is high enough (σ ≥ 3.5) that the detector is shown a filtered "
        "picture (dusk, night, high gain); evidence keeps the camera's own pixels.",
    )
    tonal_range: float | None = Field(
        None,
        description="Grey levels the camera's picture spans (0.5th–99.5th percentile; a clear "
        "daytime picture spans 200 or more). None before it is measured.",
    )
    contrast_stretched: bool = Field(
        False,
        description="The picture is washed out (range under 180: haze, fog, a dirty dome, a "
        "flare) and the detector is shown it stretched; evidence keeps the camera's pixels.",
    )
    near_field: bool = Field(
        False,
        description="Objects fill the picture (a checkpoint camera over vehicle fronts) and the "
        "detector is shown it shrunk to half, the view the camera found to detect clearly more "
        "(pipeline/near_field.py); evidence keeps the camera's pixels.",
    )
    frames_deinterlaced: int = Field(
        0,
        ge=0,
        description="Interlaced pictures (an analogue camera behind a DVR, a D1 / 960H encoder, "
        "1080i) whose combs were undone before analysis; 0 for a progressive camera.",
    )
    signal_problems: dict[str, str] = Field(
        default_factory=dict,
        description="Signal heads or groups with a calibration problem (region all dark, "
        "colour never changes) or a signal fault; no violation is charged on a faulted group.",
    )
    plates: PlateSizesPublic | None = Field(
        None,
        description="A checkpoint camera's plates (structuring on): found, read, too small to "
        "read, their median width and, when they are too small, the finding. None for a "
        "camera that reads no plates.",
    )
    faces: FaceCountsPublic | None = Field(
        None,
        description="A face camera's captures (faces on): persons seen, faces captured, too "
        "small, blurred or not found and, when most are too small, the finding. None for a "
        "camera without face capture.",
    )


class StreamPage(BaseModel):
    items: list[StreamHealthPublic]


# -- tokens and auth ------------------------------------------------------------------------------


class TokenCreate(Strict):
    name: str = Field(min_length=1, max_length=64, examples=["reviewer-zhang"])
    role: RoleName


class TokenPublic(BaseModel):
    token_id: str
    name: str
    role: RoleName
    created_ms: int
    revoked_ms: int | None = None
    last_used_ms: int | None = None


class TokenIssued(TokenPublic):
    token: str = Field(description="The secret token; shown once, store it now.")


class TokenPage(BaseModel):
    items: list[TokenPublic]


class WhoAmI(BaseModel):
    token_id: str
    name: str
    role: RoleName


class AuthAuditPublic(BaseModel):
    id: int
    at_ms: int
    action: str
    token_id: str
    name: str
    role: str
    client: str
    method: str
    path: str
    status: int
    detail: str


class AuthAuditPage(BaseModel):
    items: list[AuthAuditPublic]
    next_cursor: str | None = None


# -- console users and sessions -----------------------------------------------------------------


class SessionIssued(BaseModel):
    session: str = Field(
        description="The session secret, sent as `Authorization: Bearer …`; shown once."
    )
    session_id: str = Field(examples=["ss_0123456789abcdef"])
    username: str
    display_name: str
    role: RoleName
    expires_ms: int = Field(description="The session ends then at the latest (epoch ms).")
    idle_timeout_s: float = Field(description="It also ends after this long without requests.")


class UserCreate(Strict):
    username: str = Field(min_length=1, max_length=64, examples=["zhangsan"])
    password: str = Field(min_length=8, max_length=256)
    role: RoleName
    display_name: str = Field("", max_length=64, examples=["张三"])


class UserPublic(BaseModel):
    username: str
    display_name: str
    role: RoleName
    created_ms: int
    password_ms: int = Field(description="When the password was last set.")
    disabled_ms: int | None = None
    totp_enabled: bool


class UserPage(BaseModel):
    items: list[UserPublic]


# -- health -------------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    store: bool = Field(description="The store answered a query.")
    model_loaded: bool
    provider: str | None = Field(None, examples=["CPUExecutionProvider"])
    detail: str | None = None


class ErrorBody(BaseModel):
    detail: str
