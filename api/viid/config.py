"""Configuration of GA/T 1400 delivery: platform variants (GAT1400.md §11), client, mapping.

Every platform disagreement in §11 is a switch here with the recommended default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sharpeyes.api.viid.ids import require_device_id


def require_http_url(v: str) -> str:
    """A platform root URL: http(s), without a trailing slash."""
    if not v.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {v!r}")
    return v.rstrip("/")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ViidPlatform(_Strict):
    """How the upper platform deviates; defaults are the recommended variant A of §11."""

    content_type: str = Field(
        "application/VIID+JSON;charset=UTF-8",
        description="Request Content-Type; some platforms want application/json;charset=UTF-8.",
    )
    fallback_content_type: str = Field(
        "application/json;charset=UTF-8",
        description="Content-Type used after the platform answered 415 to the first one.",
    )
    unregister_key: Literal["UnRegisterObject", "UnregisterObject"] = Field(
        "UnRegisterObject", description="UnRegister wrapper key (MEGVII: UnregisterObject)."
    )
    unregister_path: str = Field(
        "/VIID/System/UnRegister", description="UnRegister path (MEGVII: /VIID/System/Unregister)."
    )
    bool_style: Literal["string", "json", "digit"] = Field(
        "string",
        description='Has*/Is* flags as "true"/"false" strings, JSON booleans, or "1"/"0".',
    )
    user_identify_on_register: bool = Field(
        True, description="Send User-Identify on Register too (HAO and NAN do)."
    )
    duplicate_markers: tuple[str, ...] = Field(
        ("duplicate", "already exist", "重复", "已存在"),
        description="StatusString fragments meaning 'object id already stored' (= delivered); "
        "see api/viid/outcomes.py for the whole classification table.",
    )
    not_duplicate_markers: tuple[str, ...] = Field(
        ("not exist", "no such", "unknown", "不存在", "未找到"),
        description="Fragments that veto a duplicate reading ('TollgateID not exists').",
    )
    duplicate_status_codes: tuple[int, ...] = Field(
        (1, 4, -1), description="StatusCodes whose duplicate-marked answers mean 'already stored'."
    )
    transient_status_codes: tuple[int, ...] = Field(
        (1, 2, 3, 9), description="StatusCodes retried with back-off (other/busy/error/reboot)."
    )
    permanent_status_codes: tuple[int, ...] = Field(
        (4, 5, 6, 7, 8),
        description="StatusCodes that will never succeed for this object: dead letter.",
    )
    unknown_status_outcome: Literal["transient", "permanent"] = Field(
        "transient", description="What a non-standard StatusCode (-1, 500, 1403…) means."
    )
    relogin_markers: tuple[str, ...] = Field(
        ("请先注册", "not registered", "unregistered", "register first", "未注册"),
        description="StatusString fragments of a 200 reply meaning 'session lost, register again'.",
    )


class ViidClientConfig(_Strict):
    """Connection to one upper view library."""

    base_url: str = Field(description="Platform root, e.g. http://10.0.0.5:8080 (no /VIID).")
    device_id: str = Field(description="Our 20-digit system/device id (User-Identify, Register).")
    username: str = Field(description="Digest account name issued by the platform.")
    password: str = Field(description="Digest password.")
    keepalive_interval_s: float = Field(30.0, gt=0, le=300, description="Keepalive period.")
    keepalive_max_failures: int = Field(
        3, ge=1, description="Consecutive keepalive failures that force a re-register."
    )
    connect_timeout_s: float = Field(3.0, gt=0, description="TCP connect timeout per request.")
    request_timeout_s: float = Field(10.0, gt=0, description="Read/write timeout per request.")
    register_backoff_initial_s: float = Field(1.0, gt=0, description="First register retry delay.")
    register_backoff_max_s: float = Field(300.0, gt=0, description="Cap of the register back-off.")
    time_sync_interval_s: float = Field(
        3600.0, gt=0, description="How often GET /VIID/System/Time is repeated."
    )
    batch_max_objects: int = Field(10, ge=1, le=1000, description="Objects per POST at most.")
    batch_max_bytes: int = Field(
        4_000_000, ge=10_000, description="JSON bytes per POST at most (images dominate)."
    )
    platform: ViidPlatform = Field(default_factory=ViidPlatform, description="Platform variants.")

    @field_validator("device_id")
    @classmethod
    def _device(cls, v: str) -> str:
        return require_device_id(v, "device_id")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return require_http_url(v)


class ViidMappingConfig(_Strict):
    """How our events become GA/T 1400 objects."""

    device_ids: dict[str, str] = Field(
        default_factory=dict, description="stream id → 20-digit capture device id."
    )
    default_device_id: str | None = Field(
        None, description="Device id for streams not listed in device_ids."
    )
    tollgate_ids: dict[str, str] = Field(
        default_factory=dict, description="stream id → 20-digit tollgate (卡口) id."
    )
    images: Literal["inline", "url", "both"] = Field(
        "inline", description="Send pictures as base64 Data, as StoragePath URLs, or both."
    )
    image_base_url: str | None = Field(
        None,
        description="Prefix that turns an evidence file's path under files_root — in a cluster, "
        "its storage key evidence/<2 hex>/<event id>/<name>: the bucket's address — into a URL "
        "the platform fetches.",
    )
    violation_code_field: str | None = Field(
        None,
        description="Extension field carrying the violation code (1625/16250); off by default.",
    )
    scene_images: bool = Field(True, description="Attach the full frame (01/14) when available.")
    utc_offset_hours: float = Field(8.0, description="Platform local time zone (Beijing = 8).")
    class_id_codes: dict[int, str] = Field(
        default_factory=lambda: {2: "K30", 3: "M21", 5: "K11", 7: "H11"},
        description="Detector class id → VehicleClass when an event has no class name/code "
        "(default: COCO car, motorcycle, bus, truck).",
    )

    @field_validator("device_ids", "tollgate_ids")
    @classmethod
    def _ids(cls, v: dict[str, str]) -> dict[str, str]:
        for stream, code in v.items():
            require_device_id(code, f"id of stream {stream!r}")
        return v

    def device_for(self, stream_id: str, camera_device_id: str | None = None) -> str | None:
        """The capture device id a stream's objects are sent under: the one ``device_ids``
        lists for it, else the camera's own (``device_id`` of its config, stored with each
        event), else ``default_device_id``."""
        return self.device_ids.get(stream_id) or camera_device_id or self.default_device_id
