"""The test RTSP server (``tests/rtsp_server.py``) with extra mounts for fault tests.

Run it with Debian's Python (``/usr/bin/python3``), like ``rtsp_server.py``; extra mount specs:

- ``gop:WxH:FPS:SECONDS`` — a live pattern with one keyframe every SECONDS, *shared* between
  clients: a client joining later starts mid-GOP and waits up to SECONDS for a keyframe.

(PS over RTP is served by :class:`tests.rtsp_faults.PsRtspServer`: GStreamer 1.22 has no PS
payloader and its ``mpegpsmux`` crashes the RTSP server here — "data flow before segment
event", then an assertion in ``gst_rtsp_media_get_rates``.)

Every other spec is handled by ``rtsp_server.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rtsp_server
from rtsp_server import PAY, GstRtspServer, _caps, _size

_make_factory = rtsp_server.make_factory


def gop_launch(spec: str) -> str:
    _, size, fps_text, gop_text = spec.split(":")
    width, height = _size(size)
    fps = int(fps_text)
    gop = int(float(gop_text) * fps)
    return (
        f"( videotestsrc is-live=true pattern=ball ! videoscale ! "
        f"capsfilter caps={_caps(width, height, fps)} ! "
        f"openh264enc gop-size={gop} ! h264parse ! {PAY} )"
    )


def make_factory(spec: str) -> Any:
    if spec.startswith("gop:"):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(gop_launch(spec))
        factory.set_shared(True)
        return factory
    return _make_factory(spec)


if __name__ == "__main__":
    rtsp_server.make_factory = make_factory
    sys.exit(rtsp_server.main(sys.argv[1:]))
