"""Our :class:`pipeline.types.Event` → GA/T 1400 objects with SubImageList (GAT1400.md §5, §8).

- vehicle pass → MotorVehicleObject with 01 scene / 09 close-up / 02 plate;
- red-light violation → MotorVehicleObject with 01, 02 and 07 composite, ``StorageUrl4`` = the
  composite URL, the violation code in a configurable extension field (off by default);
- non-motor pass → NonMotorVehicleObject with 12; person / pedestrian red light → PersonObject
  with 10 (and 07 for the violation).
Ids come from :mod:`api.viid.ids` and are deterministic, so mapping the same event twice gives
byte-identical objects (retries are idempotent).

Semantics (issue 14 item 4): every picture carries its own ImageID and ShotTime — the time of the
frame it shows (``ImageRef.time_ms``/``pts`` from the evidence record when known, else the
event's matching time); ``SourceID`` is the ImageID of a picture actually sent (the scene frame
when attached); ``HasPlate`` is "true" whenever a plate was read, seen or its picture
attached, "false" only when a plate read ran and found none, else unknown (omitted; MEGVII's ""
where it is required); ``PlateClass`` uses the vehicle class as well as the plate colour;
``VehicleClass`` is the structuring stage's decision (plate colour × detector class) when there
is one; ``PlateReliability`` says how far the track's reads agree, not one read's confidence.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sharpeyes.api.viid import ids
from sharpeyes.api.viid.codes import (
    EventSort,
    ImageType,
    InfoKind,
    ObjectTypeCode,
    PlateClass,
    VehicleClass,
    color_code,
    direction_code,
)
from sharpeyes.api.viid.config import ViidMappingConfig, ViidPlatform
from sharpeyes.api.viid.resources import Collection
from sharpeyes.api.viid.schemas import (
    Face,
    MotorVehicle,
    NonMotorVehicle,
    Person,
    SubImageInfo,
    SubImages,
    ViidModel,
    dump,
)
from sharpeyes.pipeline.errors import DeliveryError
from sharpeyes.pipeline.structuring.plate_fusion import (
    REASON_DISAGREE,
    REASON_TOO_FEW,
    REASON_UNREADABLE,
    single_read_reliability,
)
from sharpeyes.pipeline.types import Event, EventType

log = logging.getLogger(__name__)

_BOOL_FLAGS = ("HasPlate", "IsDecked", "IsAltered", "IsCovered", "IsModified", "IsSuspicious")
_VEHICLE_CLASS_BY_NAME: dict[str, VehicleClass] = {
    "car": VehicleClass.SMALL_PASSENGER,
    "bus": VehicleClass.LARGE_BUS,
    "truck": VehicleClass.HEAVY_TRUCK,
    "van": VehicleClass.MINI_BUS,
    "motorcycle": VehicleClass.MOTORCYCLE,
    "motorbike": VehicleClass.MOTORCYCLE,
}
_BLUE, _YELLOW = "5", "6"
# 号牌种类 (GA 24.7) from (two-wheel motorcycle?, plate colour): a yellow plate on a motorcycle is
# 07 普通摩托车号牌, a blue one 08 轻便摩托车号牌; on other vehicles yellow = 01 大型汽车,
# blue = 02 小型汽车. Other colours: unknown (left out rather than guessed).
_PLATE_CLASS: dict[tuple[bool, str], PlateClass] = {
    (False, _BLUE): PlateClass.SMALL_VEHICLE,
    (False, _YELLOW): PlateClass.LARGE_VEHICLE,
    (True, _YELLOW): PlateClass.MOTORCYCLE_2W,
    (True, _BLUE): PlateClass.MOTORCYCLE_LIGHT,
}


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One picture: bytes in memory, a file on disk and/or a URL the platform can fetch."""

    data: bytes | None = None
    path: Path | None = None
    url: str | None = None
    time_ms: int | None = None  # UTC ms of the frame the picture shows (evidence record)
    pts: float | None = None  # stream time of that frame, when time_ms is unknown

    def load(self) -> bytes | None:
        if self.data is not None:
            return self.data
        if self.path is not None:
            try:
                return self.path.read_bytes()
            except OSError as e:
                raise DeliveryError(f"cannot read evidence image {self.path}: {e}") from e
        return None


@dataclass(frozen=True, slots=True)
class EventImages:
    """The pictures of one event: full frame, object close-up, plate crop, composite."""

    scene: ImageRef | None = None
    closeup: ImageRef | None = None
    plate: ImageRef | None = None
    composite: ImageRef | None = None

    @classmethod
    def from_event(cls, event: Event) -> EventImages:
        return cls(
            scene=ImageRef(data=event.scene_jpeg) if event.scene_jpeg else None,
            closeup=ImageRef(data=event.crop_jpeg) if event.crop_jpeg else None,
            plate=ImageRef(data=event.plate_jpeg) if event.plate_jpeg else None,
        )


ImageLoader = Callable[[Event], EventImages]


@dataclass(frozen=True, slots=True)
class MappedObject:
    """One GA/T 1400 object ready to post, with its id, collection and JSON size."""

    event_id: str
    collection: Collection
    object_id: str
    payload: dict[str, Any]
    size_bytes: int


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's SOF marker, without decoding the picture."""
    i = 2
    n = len(data)
    if data[:2] != b"\xff\xd8":
        return None
    while i + 9 < n:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        seg = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h = int.from_bytes(data[i + 5 : i + 7], "big")
            w = int.from_bytes(data[i + 7 : i + 9], "big")
            return w, h
        i += 2 + seg
    return None


class EventMapper:
    """Maps events to objects under one :class:`ViidMappingConfig` and platform variant."""

    def __init__(self, config: ViidMappingConfig, platform: ViidPlatform | None = None) -> None:
        self.config = config
        self.platform = platform or ViidPlatform()
        self.tz = dt.timezone(dt.timedelta(hours=config.utc_offset_hours))

    # -- public ----------------------------------------------------------------------------

    def map(
        self, event: Event, images: EventImages | None = None, device_id: str | None = None
    ) -> MappedObject | None:
        """The object for ``event``, or None for events GA/T 1400 does not carry.

        The device id comes from the config (stream → device), else ``device_id`` (the
        camera's own, stored with the event), else the config's default.
        """
        device = self.config.device_for(event.stream_id, device_id)
        if device is None:
            raise DeliveryError(f"no GA/T 1400 device id configured for stream {event.stream_id!r}")
        imgs = images or EventImages.from_event(event)
        builder = _BUILDERS.get(event.type)
        if builder is None:
            return None
        collection, model = builder(self, event, imgs, device)
        payload = self._finish(dump(model), event)
        size = len(_json_bytes(payload))
        oid = str(payload[_ID_FIELD[collection]])
        return MappedObject(event.event_id, collection, oid, payload, size)

    # -- shared parts ----------------------------------------------------------------------

    def best_ms(self, event: Event) -> int:
        if event.best_pts is None:
            return event.first_seen_ms
        return event.first_seen_ms + round((event.best_pts - event.first_pts) * 1000)

    def pts_ms(self, event: Event, pts: float) -> int:
        return event.first_seen_ms + round((pts - event.first_pts) * 1000)

    def picture_ms(self, event: Event, ref: ImageRef, default_ms: int) -> int:
        if ref.time_ms is not None:
            return ref.time_ms
        if ref.pts is not None:
            return self.pts_ms(event, ref.pts)
        return default_ms

    def scene_default_ms(self, event: Event) -> int:
        """Scene picture time when the record does not say: evidence image 1 of a violation
        (``evidence_pts[0]``), else the best frame."""
        v = event.violation
        if v is not None and v.evidence_pts:
            return self.pts_ms(event, v.evidence_pts[0])
        return self.best_ms(event)

    def t14(self, epoch_ms: int) -> str:
        return ids.local_time_str(epoch_ms, self.tz)

    def source_id(
        self, event: Event, device: str, sent: list[SubImageInfo | None] | None = None
    ) -> str:
        """The ImageID of the first picture actually sent (callers list the scene first), or,
        with no picture at all, the id of the best frame."""
        for info in sent or []:
            if info is not None and info.ImageID:
                return info.ImageID
        return ids.frame_image_id(device, self.best_ms(event), self.tz)

    def object_id(self, source_id: str, event: Event, type_code: ObjectTypeCode) -> str:
        track = ids.track_key(event.track_id, event.event_id)
        serial = ids.event_object_serial(event.type, track)
        return ids.object_id(source_id, type_code, serial)

    def box(self, event: Event) -> dict[str, int]:
        b = event.best_box
        if b is None:
            return {"LeftTopX": 0, "LeftTopY": 0, "RightBtmX": 0, "RightBtmY": 0}

        def clip(v: float) -> int:
            return max(0, min(100_000, round(v)))

        return {
            "LeftTopX": clip(b.x1),
            "LeftTopY": clip(b.y1),
            "RightBtmX": clip(b.x2),
            "RightBtmY": clip(b.y2),
        }

    def scene_image(
        self,
        event: Event,
        device: str,
        ref: ImageRef | None,
        image_type: ImageType,
        *,
        sort: EventSort,
        default_ms: int | None = None,
    ) -> SubImageInfo | None:
        """The full-frame scene picture of a record (a :meth:`sub_image` of the frame), or None
        when scene images are off in the delivery config. Its time defaults to
        :meth:`scene_default_ms` (image 1 of a violation, else the best frame)."""
        if not self.config.scene_images:
            return None
        ms = self.scene_default_ms(event) if default_ms is None else default_ms
        return self.sub_image(event, device, ref, image_type, sort=sort, frame=True, default_ms=ms)

    def sub_image(
        self,
        event: Event,
        device: str,
        ref: ImageRef | None,
        image_type: ImageType,
        *,
        sort: EventSort,
        frame: bool = False,
        default_ms: int | None = None,
    ) -> SubImageInfo | None:
        """One SubImageInfoObject, or None when the picture has neither bytes nor a URL.

        Its ShotTime (and the time part of its ImageID) is the time of the frame the picture
        shows: ``ref.time_ms``, else ``ref.pts`` on the event's clock, else ``default_ms``
        (default: the best frame). A full frame gets the frame id of that millisecond; a derived
        picture (crop, plate, composite) a serial of its own type and track.
        """
        if ref is None:
            return None
        ms = self.picture_ms(event, ref, self.best_ms(event) if default_ms is None else default_ms)
        violation = event.violation is not None
        if frame and not violation:  # the camera's raw frame: one id per device-millisecond
            image_id = ids.frame_image_id(device, ms, self.tz)
        else:
            track = ids.track_key(event.track_id, event.event_id)
            serial = ids.derived_image_serial(violation, image_type, track)
            image_id = ids.image_id(device, ms, serial, self.tz)
        url = self._url(ref)
        data = ref.load() if self.config.images != "url" or url is None else None
        if data is None and url is None:
            return None
        size = jpeg_size(data) if data else None
        return SubImageInfo(
            ImageID=image_id,
            EventSort=int(sort),
            DeviceID=device,
            StoragePath=url if self.config.images != "inline" or data is None else None,
            Type=image_type.value,
            FileFormat="Jpeg",
            ShotTime=self.t14(ms),
            Width=size[0] if size else None,
            Height=size[1] if size else None,
            Data=base64.b64encode(data).decode("ascii") if data else None,
            FileSize=len(data) if data else None,
        )

    def _url(self, ref: ImageRef) -> str | None:
        if ref.url:
            return ref.url
        if ref.path is not None and self.config.image_base_url:
            return f"{self.config.image_base_url.rstrip('/')}/{ref.path.name}"
        return None

    def _finish(self, payload: dict[str, Any], event: Event) -> dict[str, Any]:
        style = self.platform.bool_style
        for key in _BOOL_FLAGS:
            if style != "string" and payload.get(key) == "":
                del payload[key]  # MEGVII's "unknown"; a boolean or digit has none: omitted
            elif key in payload and isinstance(payload[key], str) and payload[key]:
                truth = payload[key] == "true"
                if style == "json":
                    payload[key] = truth
                elif style == "digit":
                    payload[key] = "1" if truth else "0"
        field = self.config.violation_code_field
        if field and event.violation is not None:
            payload[field] = event.violation.code
        return payload


def _json_bytes(payload: dict[str, Any]) -> bytes:
    import json

    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _extra(event: Event, key: str) -> str | None:
    for k, v in event.extra:
        if k == key:
            return v
    return None


def _vehicle_class(event: Event, config: ViidMappingConfig) -> str | None:
    """GA/T 16.4 vehicle type: the code the structuring stage decided from the plate's colour
    and the detector's class (``extra.vehicle_class``,
    :mod:`sharpeyes.pipeline.structuring.vehicle_class`), else the event's code, its class
    name, its detector class id, or a rider seen without a detected two-wheeler (a motorcycle)."""
    code = _extra(event, "vehicle_class") or event.class_code
    if code and len(code) <= 3:
        return code
    if event.class_name:
        vc = _VEHICLE_CLASS_BY_NAME.get(event.class_name.lower())
        if vc is not None:
            return vc.value
    if event.class_id is not None and event.class_id in config.class_id_codes:
        return config.class_id_codes[event.class_id]
    if _extra(event, "detected_as") == "person":
        return VehicleClass.MOTORCYCLE.value
    return None


def _images(parts: list[SubImageInfo | None]) -> SubImages:
    return SubImages(SubImageInfoObject=[p for p in parts if p is not None])


# 号牌种类 a plate's last character names, on a car (GA 24.7): a coach's yellow 学 plate is
# 16, not 01; a trailer's 挂 15; police 警 23; Hong Kong / Macau vehicles entering the mainland
# 港 / 澳 26 / 27; a consulate's 领 04.
_PLATE_CLASS_BY_SUFFIX: dict[str, PlateClass] = {
    "学": PlateClass.COACH,
    "挂": PlateClass.TRAILER,
    "警": PlateClass.POLICE,
    "港": PlateClass.HONG_KONG,
    "澳": PlateClass.MACAU,
    "领": PlateClass.CONSULATE,
}


def plate_class(
    color: str | None, vehicle_class: str | None, text: str | None = None
) -> str | None:
    """号牌种类 from the plate colour code *and* the vehicle type (yellow motorcycle → 07), or
    from the plate's last character where it names the kind (学 coach 16, 挂 trailer 15, …).
    A new-energy plate (eight characters: a yellow-green large one read as yellow, too) has
    codes of its own (51 / 52) that MEGVII's list does not hold: left out, not called 01."""
    if color is None or (text is not None and len(text) == 8):
        return None
    two_wheeler = bool(vehicle_class) and str(vehicle_class).upper().startswith("M2")
    suffix = _PLATE_CLASS_BY_SUFFIX.get(text[-1]) if text else None
    if suffix is not None:
        return None if two_wheeler else suffix.value  # a two-wheeler's have codes of their own
    pc = _PLATE_CLASS.get((two_wheeler, color))
    return pc.value if pc else None


PLATE_NONE_VISIBLE = "no_plate_visible"
PLATE_SEEN = frozenset({REASON_UNREADABLE, REASON_TOO_FEW, REASON_DISAGREE})
"""The ``plate_status`` values that say the checkpoint reads found a plate (and could not state
its text): HasPlate "true" even where its colour was not stated either (a plate too small for
its colour to be told)."""
"""The one ``plate_status`` that states a vehicle has no plate: the checkpoint reads saw its
plate end whole in the frame and found none, where this camera would have found one
(:mod:`sharpeyes.pipeline.structuring.plate_presence`). A read that found nothing where the
plate may be cut off (``plate_out_of_view``), too small or turned away (``plate_not_found``), a
violation's evidence read, or no read at all says nothing either way."""


def _plate_fields(
    event: Event,
    vehicle_class: str | None,
    plate_image: SubImageInfo | None,
    unknown: str | None = None,
) -> dict[str, Any]:
    """HasPlate is "true" when a plate was read, seen (a colour, or a read that found one:
    :data:`PLATE_SEEN`) or its picture is attached;
    "false" only when the checkpoint reads saw the vehicle's plate end whole and found no plate
    (:data:`PLATE_NONE_VISIBLE`) — a platform takes "false" for an unlicensed vehicle. Where
    nobody looked or nothing could be seen — no structuring, a track never read, a plate end cut
    by the frame, a violation whose evidence located no plate, a two-wheeler — whether it has a
    plate is not known: ``unknown`` (None omits the field; MEGVII's "" where required)."""
    plate = event.plate
    color = color_code(plate.color) if plate else None
    text = plate.text if plate else None
    status = _extra(event, "plate_status")
    visible = bool(text) or color is not None or plate_image is not None or status in PLATE_SEEN
    if not visible:
        none_seen = status == PLATE_NONE_VISIBLE
        return {"HasPlate": "false" if none_seen else unknown}
    out: dict[str, Any] = {
        "HasPlate": "true",
        "PlateColor": color.value if color else None,
        "PlateClass": plate_class(color.value if color else None, vehicle_class, text),
    }
    if text:
        assert plate is not None
        out["PlateNo"] = text[:32]
        out["PlateReliability"] = _plate_reliability(event, plate.confidence)
    return out


def _plate_reliability(event: Event, confidence: float) -> str:
    """号牌可信度 0–100: how far the track's plate reads agree with the stated plate
    (``extra.plate_reliability``, ``structuring.plate_fusion.plate_agreement``); a plate read once
    (no fused value, e.g. a violation's evidence frame) is one read's worth."""
    raw = _extra(event, "plate_reliability")
    if raw is not None and raw.isdigit() and 0 <= int(raw) <= 100:
        return raw
    return str(single_read_reliability(confidence))


def _lane(event: Event) -> int | None:
    if event.violation is not None and event.violation.lane_no is not None:
        return event.violation.lane_no
    lane = _extra(event, "lane_no")
    return int(lane) if lane and lane.isdigit() else None


def _build_motor(
    m: EventMapper, event: Event, imgs: EventImages, device: str
) -> tuple[Collection, ViidModel]:
    violation = event.violation
    ms = m.best_ms(event)
    pass_ms = ms
    if violation is not None:
        pass_ms = m.pts_ms(event, violation.crossed_stop_line_pts)
    scene = m.scene_image(
        event, device, imgs.scene, ImageType.VEHICLE, sort=EventSort.CHECKPOINT_VEHICLE
    )
    plate = m.sub_image(
        event, device, imgs.plate, ImageType.PLATE, sort=EventSort.PLATE_RECOGNITION
    )
    if violation is not None:
        third = m.sub_image(
            event,
            device,
            imgs.composite,
            ImageType.VIOLATION_COMPOSITE,
            sort=EventSort.CHECKPOINT_VEHICLE,
            default_ms=pass_ms,
        )
    else:
        third = m.sub_image(
            event,
            device,
            imgs.closeup,
            ImageType.VEHICLE_CLOSEUP,
            sort=EventSort.CHECKPOINT_VEHICLE,
        )
    color = color_code(_extra(event, "vehicle_color"))
    vclass = _vehicle_class(event, m.config)
    source = m.source_id(event, device, [scene, third, plate])
    obj = MotorVehicle(
        MotorVehicleID=m.object_id(source, event, ObjectTypeCode.MOTOR_VEHICLE),
        InfoKind=int(InfoKind.AUTOMATIC),
        SourceID=source,
        DeviceID=device,
        TollgateID=m.config.tollgate_ids.get(event.stream_id),
        **m.box(event),
        MarkTime=m.t14(ms),
        AppearTime=m.t14(event.first_seen_ms),
        DisappearTime=m.t14(event.last_seen_ms),
        PassTime=m.t14(pass_ms),
        LaneNo=_lane(event),
        Speed=_speed(event),
        Direction=_direction(event),
        VehicleClass=vclass,
        VehicleColor=color.value if color else None,
        StorageUrl1=third.StoragePath if third and violation is None else None,
        StorageUrl2=plate.StoragePath if plate else None,
        StorageUrl3=scene.StoragePath if scene else None,
        StorageUrl4=third.StoragePath if third and violation is not None else None,
        SubImageList=_images([scene, plate, third]),
        **_plate_fields(event, vclass, plate),
    )
    return Collection.MOTOR_VEHICLE, obj


def _speed(event: Event) -> float | None:
    """km/h measured on a ground-plane calibration (``pipeline.flow``); None: not calibrated."""
    raw = _extra(event, "speed_kmh")
    try:
        v = float(raw) if raw else None
    except ValueError:
        return None
    return round(v, 1) if v is not None and 0.0 <= v <= 300.0 else None


def _direction(event: Event) -> str | None:
    d = direction_code(event.direction)
    return d.value if d else None


def _build_non_motor(
    m: EventMapper, event: Event, imgs: EventImages, device: str
) -> tuple[Collection, ViidModel]:
    ms = m.best_ms(event)
    scene = m.scene_image(
        event, device, imgs.scene, ImageType.SCENE, sort=EventSort.VEHICLE_DETECTION
    )
    crop = m.sub_image(
        event, device, imgs.closeup, ImageType.NON_MOTOR, sort=EventSort.VEHICLE_DETECTION
    )
    plate = _plate_fields(event, _vehicle_class(event, m.config), None, unknown="")
    color = color_code(_extra(event, "vehicle_color"))
    source = m.source_id(event, device, [scene, crop])
    obj = NonMotorVehicle(
        NonMotorVehicleID=m.object_id(source, event, ObjectTypeCode.NON_MOTOR_VEHICLE),
        InfoKind=int(InfoKind.AUTOMATIC),
        SourceID=source,
        DeviceID=device,
        **m.box(event),
        MarkTime=m.t14(ms),
        AppearTime=m.t14(event.first_seen_ms),
        DisappearTime=m.t14(event.last_seen_ms),
        # MEGVII requires these four on non-motor vehicles; "" is its "unknown"
        HasPlate=plate["HasPlate"],
        PlateClass=plate.get("PlateClass") or "",
        PlateColor=plate.get("PlateColor") or "",
        PlateNo=plate.get("PlateNo") or "",
        Speed=_speed(event),
        VehicleType=event.class_name,
        VehicleColor=color.value if color else "",
        SubImageList=_images([scene, crop]),
    )
    return Collection.NON_MOTOR_VEHICLE, obj


def _build_person(
    m: EventMapper, event: Event, imgs: EventImages, device: str
) -> tuple[Collection, ViidModel]:
    ms = m.best_ms(event)
    scene = m.scene_image(
        event, device, imgs.scene, ImageType.SCENE, sort=EventSort.PEDESTRIAN_DETECTION
    )
    crop = m.sub_image(
        event, device, imgs.closeup, ImageType.PERSON, sort=EventSort.PEDESTRIAN_DETECTION
    )
    comp = None
    if event.violation is not None:
        comp = m.sub_image(
            event,
            device,
            imgs.composite,
            ImageType.VIOLATION_COMPOSITE,
            sort=EventSort.PEDESTRIAN_DETECTION,
            default_ms=m.pts_ms(event, event.violation.crossed_stop_line_pts),
        )
    source = m.source_id(event, device, [scene, crop, comp])
    coat, trousers = (
        color_code(_extra(event, "coat_color")),
        color_code(_extra(event, "trousers_color")),
    )
    obj = Person(
        PersonID=m.object_id(source, event, ObjectTypeCode.PERSON),
        InfoKind=int(InfoKind.AUTOMATIC),
        SourceID=source,
        DeviceID=device,
        **m.box(event),
        LocationMarkTime=m.t14(ms),
        PersonAppearTime=m.t14(event.first_seen_ms),
        PersonDisAppearTime=m.t14(event.last_seen_ms),
        CoatColor=coat.value if coat else None,
        TrousersColor=trousers.value if trousers else None,
        SubImageList=_images([scene, crop, comp]),
    )
    return Collection.PERSON, obj


def _build_face(
    m: EventMapper, event: Event, imgs: EventImages, device: str
) -> tuple[Collection, ViidModel]:
    """A face capture: FaceObject (48-digit FaceID, object type 06) with the face close-up
    (SubImage type 11) and, when scene images are on, the frame it was taken from (14)."""
    ms = m.best_ms(event)
    scene = m.scene_image(
        event, device, imgs.scene, ImageType.SCENE, sort=EventSort.FACE_DETECTION, default_ms=ms
    )
    face = m.sub_image(event, device, imgs.closeup, ImageType.FACE, sort=EventSort.FACE_DETECTION)
    source = m.source_id(event, device, [scene, face])
    obj = Face(
        FaceID=m.object_id(source, event, ObjectTypeCode.FACE),
        InfoKind=int(InfoKind.AUTOMATIC),
        SourceID=source,
        DeviceID=device,
        **m.box(event),
        LocationMarkTime=m.t14(ms),
        FaceAppearTime=m.t14(event.first_seen_ms),
        FaceDisAppearTime=m.t14(event.last_seen_ms),
        ShotTime=m.t14(ms),
        SubImageList=_images([scene, face]),
    )
    return Collection.FACE, obj


_Builder = Callable[[EventMapper, Event, EventImages, str], tuple[Collection, ViidModel]]
_BUILDERS: dict[EventType, _Builder] = {
    EventType.FACE_CAPTURE: _build_face,
    EventType.VEHICLE_PASS: _build_motor,
    EventType.RED_LIGHT_VIOLATION: _build_motor,
    EventType.NON_MOTOR_PASS: _build_non_motor,
    EventType.PERSON_SEEN: _build_person,
    EventType.PEDESTRIAN_RED_LIGHT: _build_person,
}
_ID_FIELD: dict[Collection, str] = {
    Collection.MOTOR_VEHICLE: "MotorVehicleID",
    Collection.NON_MOTOR_VEHICLE: "NonMotorVehicleID",
    Collection.PERSON: "PersonID",
    Collection.FACE: "FaceID",
}
