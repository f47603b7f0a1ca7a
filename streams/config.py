"""Stream-side configuration: which URLs are live streams, and the RTSP client's settings.

Here (not in the node's service config) so that ``streams`` depends on nothing above it; the
service config (``sharpeyes.api.node.settings``) re-exports :class:`RtspConfig`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sharpeyes.pipeline.config import StrictModel

LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "srt://")

__all__ = ["LIVE_SCHEMES", "RtspConfig", "is_live_url"]


def is_live_url(url: str) -> bool:
    """True for a network stream URL (RTSP and friends), False for a file path."""
    return url.lower().startswith(LIVE_SCHEMES)


class RtspConfig(StrictModel):
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport for every camera.")
    open_timeout_s: float = Field(5.0, gt=0.0, le=120.0, description="Connect/open timeout.")
    read_timeout_s: float = Field(5.0, gt=0.0, le=120.0, description="Socket read timeout.")
    stall_timeout_s: float = Field(
        5.0, gt=0.0, le=300.0, description="Reconnect when no frame arrived for this long."
    )
    queue_size: int = Field(
        2, ge=1, le=64, description="Latest-frame queue length; older frames are dropped."
    )
    backoff_initial_s: float = Field(0.5, gt=0.0, le=60.0, description="First reconnect delay.")
    backoff_max_s: float = Field(10.0, gt=0.0, le=600.0, description="Longest reconnect delay.")
    restart_budget: int = Field(
        20, ge=1, le=1000, description="Failed connects per window before 'failed' (slow retry)."
    )
    restart_window_s: float = Field(60.0, gt=0.0, description="Window of the restart budget.")
    failed_retry_s: float = Field(60.0, gt=0.0, description="Retry period of a failed camera.")
    first_frame_timeout_s: float = Field(
        60.0,
        gt=0.0,
        le=600.0,
        description="Longest wait for the first decodable frame of a session while packets "
        "arrive (a long GOP); mid-stream stalls still use stall_timeout_s.",
    )
    degraded_above: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Corruption rate (corrupt or lost frames) above which a camera is degraded.",
    )
    failed_after: int = Field(
        3,
        ge=1,
        le=1000,
        description="A camera that never delivered a frame is reported failed after this many "
        "failed attempts (it keeps retrying).",
    )
