"""GA/T 1400 identifiers (GAT1400.md §4): validators and deterministic generators.

Layouts:
- device / tollgate code: 20 digits (8 region + 2 industry + 3 type + 7 serial);
- basic object (image) id: 41 = device(20) + basic type(2) + yyyyMMddHHmmss(14) + serial(5);
- semantic object id: 48 = source id(41) + object type(2) + serial(5);
- subscription / notification id: 33 = organisation(12) + subtype(2) + time(14) + serial(5).

Serials are *deterministic*: the same event always yields the same ids, so a retried delivery
carries the ids of the first attempt and the receiver can de-duplicate by id. Uniqueness per
(device, second):
- a frame's image (the ``SourceID``) uses serial ``ms + 1`` (1…1000): one frame per device per ms;
- an object inside that frame uses ``(track % 9999) * 10 + slot + 1`` where ``slot`` is the event
  type, so two events of one track (a pass and a violation) never collide;
- derived images (close-up, plate, composite, and a violation's annotated scene picture, which
  differs per event even when two events share a frame) use ``1001 + (track % 8200) * 12 +
  slot``, a range disjoint from frame serials, with ``slot`` = (event family, image type).
Two different pictures collide only if their track ids are congruent modulo 8 200 and they share
one device-second — impossible for a per-stream tracker whose ids are allocated sequentially unless
~10 000 tracks were opened within the life of one of them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from sharpeyes.api.viid.codes import BasicTypeCode, ImageType, ObjectTypeCode
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.pipeline.types import EventType

DEVICE_ID_LEN = 20
IMAGE_ID_LEN = 41
OBJECT_ID_LEN = 48
SUBSCRIBE_ID_LEN = 33
ORG_CODE_LEN = 12
MAX_SERIAL = 99_999
BEIJING = dt.timezone(dt.timedelta(hours=8))

_DIGITS = re.compile(r"[0-9]+")
_DERIVED_BASE = 1001
_TRACK_MOD_OBJECT = 9_999
_TRACK_MOD_IMAGE = 8_200
_IMAGE_SLOTS = 12


class IdError(ConfigError):
    """An identifier does not have the GA/T 1400 shape; the message names the bad value."""


def _is_digits(value: str, length: int) -> bool:
    return len(value) == length and _DIGITS.fullmatch(value) is not None


def is_device_id(value: str) -> bool:
    return _is_digits(value, DEVICE_ID_LEN)


def is_image_id(value: str) -> bool:
    return _is_digits(value, IMAGE_ID_LEN) and _valid_time(value[22:36])


def is_object_id(value: str) -> bool:
    return _is_digits(value, OBJECT_ID_LEN) and is_image_id(value[:IMAGE_ID_LEN])


def is_subscribe_id(value: str) -> bool:
    return _is_digits(value, SUBSCRIBE_ID_LEN) and _valid_time(value[14:28])


def _valid_time(stamp: str) -> bool:
    try:
        dt.datetime.strptime(stamp, "%Y%m%d%H%M%S")
    except ValueError:
        return False
    return True


def require_device_id(value: str, what: str = "DeviceID") -> str:
    """Return ``value`` if it is a 20-digit code, else raise :class:`IdError` naming it."""
    if not is_device_id(value):
        raise IdError(f"{what} must be 20 digits, got {value!r}")
    return value


def require_org_code(value: str) -> str:
    if not _is_digits(value, ORG_CODE_LEN):
        raise IdError(f"organisation code must be 12 digits, got {value!r}")
    return value


def make_device_id(
    region: str, type_code: str = "119", serial: int = 1, industry: str = "00"
) -> str:
    """Build a 20-digit code: region (≤8 digits, right-padded with 0), industry, type, serial."""
    region8 = region.ljust(8, "0")
    if not (_is_digits(region8, 8) and _is_digits(industry, 2) and _is_digits(type_code, 3)):
        raise IdError(f"bad device code parts: {region!r}/{industry!r}/{type_code!r}")
    if not 0 <= serial <= 9_999_999:
        raise IdError(f"device serial out of range: {serial}")
    return f"{region8}{industry}{type_code}{serial:07d}"


def local_time_str(epoch_ms: int, tz: dt.tzinfo = BEIJING) -> str:
    """UTC epoch ms → 14-digit platform local time ``yyyyMMddHHmmss`` (Beijing by default)."""
    return dt.datetime.fromtimestamp(epoch_ms / 1000.0, tz).strftime("%Y%m%d%H%M%S")


def parse_local_time(stamp: str, tz: dt.tzinfo = BEIJING) -> int:
    """14-digit local time or epoch-ms string → UTC epoch ms (both forms occur, §2.4)."""
    s = stamp.strip()
    if _is_digits(s, 14):
        naive = dt.datetime.strptime(s, "%Y%m%d%H%M%S")
        return int(naive.replace(tzinfo=tz).timestamp() * 1000)
    if _DIGITS.fullmatch(s) and 12 <= len(s) <= 13:
        return int(s)
    raise IdError(f"time must be yyyyMMddHHmmss or epoch ms, got {stamp!r}")


def _serial(value: int) -> str:
    if not 1 <= value <= MAX_SERIAL:
        raise IdError(f"serial out of range 1..{MAX_SERIAL}: {value}")
    return f"{value:05d}"


def image_id(device_id: str, epoch_ms: int, serial: int, tz: dt.tzinfo = BEIJING) -> str:
    """41-digit image id of an image shot at ``epoch_ms`` by ``device_id``."""
    require_device_id(device_id)
    return f"{device_id}{BasicTypeCode.IMAGE}{local_time_str(epoch_ms, tz)}{_serial(serial)}"


def frame_image_id(device_id: str, epoch_ms: int, tz: dt.tzinfo = BEIJING) -> str:
    """The id of the frame captured at ``epoch_ms``: serial = millisecond + 1 (1…1000)."""
    return image_id(device_id, epoch_ms, epoch_ms % 1000 + 1, tz)


def object_id(source_id: str, type_code: ObjectTypeCode, serial: int) -> str:
    if not is_image_id(source_id):
        raise IdError(f"SourceID must be a 41-digit image id, got {source_id!r}")
    return f"{source_id}{type_code}{_serial(serial)}"


_EVENT_SLOT: dict[EventType, int] = {
    EventType.VEHICLE_PASS: 0,
    EventType.NON_MOTOR_PASS: 1,
    EventType.PERSON_SEEN: 2,
    EventType.RED_LIGHT_VIOLATION: 3,
    EventType.PEDESTRIAN_RED_LIGHT: 4,
    EventType.STREAM_HEALTH: 5,
    EventType.TRAFFIC_FLOW: 6,
    EventType.FACE_CAPTURE: 7,
}

_IMAGE_SLOT: dict[tuple[bool, ImageType], int] = {
    (False, ImageType.VEHICLE_CLOSEUP): 0,
    (False, ImageType.PLATE): 1,
    (False, ImageType.PERSON): 2,
    (False, ImageType.NON_MOTOR): 3,
    (True, ImageType.VEHICLE_CLOSEUP): 4,
    (True, ImageType.PLATE): 5,
    (True, ImageType.VIOLATION_COMPOSITE): 6,
    (True, ImageType.PERSON): 7,
    (False, ImageType.VIOLATION_COMPOSITE): 8,
    (False, ImageType.FACE): 9,
    (True, ImageType.VEHICLE): 10,  # a violation's annotated scene picture (evidence 1.jpg)
    (True, ImageType.SCENE): 11,
}


def track_key(track_id: int | None, event_id: str) -> int:
    """The track id, or a stable number derived from the event id when there is no track."""
    if track_id is not None and track_id >= 0:
        return track_id
    return int(hashlib.sha256(event_id.encode()).hexdigest()[:12], 16)


def event_object_serial(event_type: EventType, track: int) -> int:
    """Serial of the object an event describes, unique within its frame (see module doc)."""
    return (track % _TRACK_MOD_OBJECT) * 10 + _EVENT_SLOT[event_type] + 1


def derived_image_serial(violation: bool, image_type: ImageType, track: int) -> int:
    """Serial of a crop/composite of one track, disjoint from the frame serials 1…1000."""
    slot = _IMAGE_SLOT.get((violation, image_type))
    if slot is None:
        raise IdError(f"no derived-image slot for image type {image_type.value}")
    return _DERIVED_BASE + (track % _TRACK_MOD_IMAGE) * _IMAGE_SLOTS + slot


def subscription_style_id(
    org_code: str, subtype: str, epoch_ms: int, serial: int, tz: dt.tzinfo = BEIJING
) -> str:
    """33-digit id: organisation(12) + subtype(2) + time(14) + serial(5).

    Subscriptions use subtype ``03`` (§4.4); sharpeyes uses ``04`` for notifications (the
    standard's value was not found, any unique 33-digit numeric string is accepted).
    """
    require_org_code(org_code)
    if not _is_digits(subtype, 2):
        raise IdError(f"subtype must be 2 digits, got {subtype!r}")
    return f"{org_code}{subtype}{local_time_str(epoch_ms, tz)}{_serial(serial)}"


def notification_id(org_code: str, epoch_ms: int, seq: int, tz: dt.tzinfo = BEIJING) -> str:
    """Deterministic NotificationID from a monotonically growing ``seq`` (e.g. an outbox id)."""
    return subscription_style_id(org_code, "04", epoch_ms, seq % MAX_SERIAL + 1, tz)
