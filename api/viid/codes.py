"""GA/T 1400 code tables as enums (GAT1400.md §3, §5.5, §5.6, §5.8, §7).

Values are the exact strings / integers that go on the wire; the MEGVII template types most
codes as strings (``"01"``) and a few as JSON numbers (InfoKind, EventSort).
"""

from __future__ import annotations

import enum


class ImageType(enum.StrEnum):
    """SubImageInfoObject.Type (GAT1400.md §5.5)."""

    VEHICLE = "01"  # 车辆大图 (vehicle large / scene image)
    PLATE = "02"  # 车牌彩色小图
    PLATE_BINARY = "03"
    DRIVER_FACE = "04"
    CODRIVER_FACE = "05"
    VEHICLE_LOGO = "06"
    VIOLATION_COMPOSITE = "07"  # 违章合成图
    PASS_COMPOSITE = "08"
    VEHICLE_CLOSEUP = "09"  # 车辆特写图
    PERSON = "10"
    FACE = "11"
    NON_MOTOR = "12"
    THING = "13"
    SCENE = "14"
    GENERAL = "100"


class ColorType(enum.StrEnum):
    """ColorType (GAT1400.md §5.8) — vehicle body and plate background colours."""

    BLACK = "1"
    WHITE = "2"
    GREY = "3"
    RED = "4"
    BLUE = "5"
    YELLOW = "6"
    ORANGE = "7"
    BROWN = "8"
    GREEN = "9"
    PURPLE = "10"
    CYAN = "11"
    PINK = "12"
    TRANSPARENT = "13"
    OTHER = "99"


class PlateClass(enum.StrEnum):
    """号牌种类 (GA 24.7 style; MEGVII accepts 01…32 and 99). Only the common ones are named."""

    LARGE_VEHICLE = "01"
    SMALL_VEHICLE = "02"
    EMBASSY = "03"
    CONSULATE = "04"
    FOREIGN = "05"
    FOREIGN_SMALL = "06"
    MOTORCYCLE_2W = "07"
    MOTORCYCLE_LIGHT = "08"
    TRAILER = "15"
    COACH = "16"
    POLICE = "23"
    HONG_KONG = "26"
    MACAU = "27"
    OTHER = "99"


class VehicleClass(enum.StrEnum):
    """GA/T 16.4 vehicle-type codes (a subset; the field takes any ≤3-character code)."""

    LARGE_BUS = "K11"
    MEDIUM_BUS = "K21"
    SMALL_PASSENGER = "K30"  # 小型客车: the group (saloons, SUVs, MPVs …)
    SMALL_BUS = "K31"
    SMALL_CAR = "K33"
    MINI_BUS = "K41"
    HEAVY_TRUCK = "H11"
    MEDIUM_TRUCK = "H21"
    LIGHT_TRUCK = "H31"
    MINI_TRUCK = "H41"
    TRACTOR = "Q11"
    SPECIAL = "Z11"
    MOTORCYCLE = "M21"  # 普通二轮摩托车 ordinary two-wheel motorcycle (GA 24.4)
    LIGHT_MOTORCYCLE = "M22"  # 轻便二轮摩托车
    THREE_WHEELER = "M11"  # 普通正三轮摩托车 (not an ordinary motorcycle)
    OTHER = "X99"


class HDirection(enum.StrEnum):
    """HDirectionType (GAT1400.md §5.2)."""

    WEST_TO_EAST = "1"
    EAST_TO_WEST = "2"
    NORTH_TO_SOUTH = "3"
    SOUTH_TO_NORTH = "4"
    SW_TO_NE = "5"
    NE_TO_SW = "6"
    NW_TO_SE = "7"
    SE_TO_NW = "8"
    OTHER = "9"


class InfoKind(enum.IntEnum):
    OTHER = 0
    AUTOMATIC = 1
    MANUAL = 2


class EventSort(enum.IntEnum):
    """EventSort 0–36 (GAT1400.md §5.6); there is no red-light code in this range."""

    OTHER = 0
    CHECKPOINT_VEHICLE = 1
    CHECKPOINT_PERSON = 2
    PEDESTRIAN_DETECTION = 8
    FACE_DETECTION = 10
    VEHICLE_DETECTION = 12
    PLATE_RECOGNITION = 16


class StatusCode(enum.IntEnum):
    """ResponseStatusObject.StatusCode (GAT1400.md §3)."""

    OK = 0
    OTHER_ERROR = 1
    DEVICE_BUSY = 2
    DEVICE_ERROR = 3
    INVALID_OPERATION = 4
    INVALID_XML_FORMAT = 5
    INVALID_XML_CONTENT = 6
    INVALID_JSON_FORMAT = 7
    INVALID_JSON_CONTENT = 8
    SYSTEM_REBOOTING = 9


class SubscribeDetail(enum.IntEnum):
    """SubscribeDetail codes (GAT1400.md §7); 11–14 are the ones sharpeyes serves."""

    CASE_DIRECTORY = 1
    CASE_CONTENT = 2
    APE_DIRECTORY = 3
    APE_STATUS = 4
    APS_DIRECTORY = 5
    APS_STATUS = 6
    TOLLGATE_DIRECTORY = 7
    TOLLGATE_RECORD = 8
    LANE_DIRECTORY = 9
    LANE_RECORD = 10
    PERSONS = 11
    FACES = 12
    MOTOR_VEHICLES = 13
    NON_MOTOR_VEHICLES = 14
    THINGS = 15
    FILES = 16


class OperateType(enum.IntEnum):
    SUBSCRIBE = 0
    CANCEL = 1


class SubscribeStatus(enum.IntEnum):
    ACTIVE = 0
    CANCELLED = 1
    EXPIRED = 2
    NONE = 9


class ResourceClass(enum.IntEnum):
    TOLLGATE = 0
    DEVICE = 1
    COLLECTED_CONTENT = 2
    CASE = 3
    VIEW_LIBRARY = 4
    ADMIN_DIVISION = 5


class ExecuteOperation(enum.IntEnum):
    ADD = 1
    UPDATE = 2
    DELETE = 3


class ObjectTypeCode(enum.StrEnum):
    """Two-digit semantic object type inside a 48-digit object id (GAT1400.md §4.3)."""

    PERSON = "01"
    MOTOR_VEHICLE = "02"
    NON_MOTOR_VEHICLE = "03"
    THING = "04"
    SCENE = "05"
    FACE = "06"


class BasicTypeCode(enum.StrEnum):
    """Two-digit basic object type inside a 41-digit image/video/file id (GAT1400.md §4.2)."""

    VIDEO_SLICE = "01"
    IMAGE = "02"
    FILE = "03"
    OTHER = "99"


COLOR_NAMES: dict[str, ColorType] = {
    "black": ColorType.BLACK,
    "white": ColorType.WHITE,
    "grey": ColorType.GREY,
    "gray": ColorType.GREY,
    "silver": ColorType.GREY,
    "red": ColorType.RED,
    "blue": ColorType.BLUE,
    "yellow": ColorType.YELLOW,
    "orange": ColorType.ORANGE,
    "brown": ColorType.BROWN,
    "green": ColorType.GREEN,
    "purple": ColorType.PURPLE,
    "cyan": ColorType.CYAN,
    "pink": ColorType.PINK,
    "黑": ColorType.BLACK,
    "白": ColorType.WHITE,
    "蓝": ColorType.BLUE,
    "黄": ColorType.YELLOW,
    "绿": ColorType.GREEN,
}


def color_code(name: str | None) -> ColorType | None:
    """Map a colour name (English or the Chinese plate-colour character) to its ColorType."""
    if not name:
        return None
    key = name.strip().lower()
    if key in {c.value for c in ColorType}:
        return ColorType(key)
    return COLOR_NAMES.get(key)


DIRECTION_NAMES: dict[str, HDirection] = {
    "w2e": HDirection.WEST_TO_EAST,
    "e2w": HDirection.EAST_TO_WEST,
    "n2s": HDirection.NORTH_TO_SOUTH,
    "s2n": HDirection.SOUTH_TO_NORTH,
    "sw2ne": HDirection.SW_TO_NE,
    "ne2sw": HDirection.NE_TO_SW,
    "nw2se": HDirection.NW_TO_SE,
    "se2nw": HDirection.SE_TO_NW,
    "eastbound": HDirection.WEST_TO_EAST,
    "westbound": HDirection.EAST_TO_WEST,
    "southbound": HDirection.NORTH_TO_SOUTH,
    "northbound": HDirection.SOUTH_TO_NORTH,
}


def direction_code(name: str | None) -> HDirection | None:
    """Map a direction label ("1".."9", "n2s", "southbound", …) to HDirectionType."""
    if not name:
        return None
    key = name.strip().lower().replace("_", "").replace("-", "")
    if key in {d.value for d in HDirection}:
        return HDirection(key)
    return DIRECTION_NAMES.get(key)
