"""A real RTSP server for tests, built on GStreamer's RTSP server (Debian packages).

Run it with Debian's Python, which has the ``gi`` bindings (not the project's virtualenv)::

    /usr/bin/python3 tests/rtsp_server.py PORT /cam1=clip.mp4 /live=pattern:320x240:15 ...

Mount specs (``/NAME=SPEC``):

- ``clip.mp4`` — the H.264 track of an MP4 (audio ignored), played once at stream speed from
  the start for every client (a client that reconnects at end of stream sees the file loop).
- ``h265:clip.mp4`` — the same for the H.265 (HEVC) track of an MP4.
- ``pattern:WxH:FPS`` — a live generated picture encoded with openh264, endless.
- ``pattern:WxH:FPS:W2xH2:SECONDS`` — the same, switching to W2xH2 after SECONDS (new SPS).
- ``audio`` — a live audio-only stream (L16), for "no video stream" errors.

Options: ``--stop-after SECONDS`` exits the whole server after that time (end of stream for every
client); ``--address`` (default 127.0.0.1). The server prints ``READY <port>`` once it listens.
Needs: gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
gstreamer1.0-libav python3-gi.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PAY = "rtph264pay name=pay0 pt=96 config-interval=1"
PAY_H265 = "rtph265pay name=pay0 pt=96 config-interval=1"


def file_launch(path: str) -> str:
    """Launch line playing the H.264 (or, with an ``h265:`` prefix, the H.265) track of the MP4
    at ``path`` once, at stream speed."""
    parse = f"h264parse ! {PAY}"
    if path.startswith("h265:"):
        path, parse = path.removeprefix("h265:"), f"h265parse ! {PAY_H265}"
    return f'( filesrc location="{path}" ! qtdemux name=d d.video_0 ! queue ! {parse} )'


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _caps(width: int, height: int, fps: int) -> str:
    return f"video/x-raw,format=I420,width={width},height={height},framerate={fps}/1"


class PatternFactory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc]
    """A live test pattern, optionally switching resolution after some seconds."""

    def __init__(self, spec: str) -> None:
        super().__init__()
        parts = spec.split(":")[1:]
        self.width, self.height = _size(parts[0])
        self.fps = int(parts[1])
        self.switch: tuple[int, int, float] | None = None
        if len(parts) >= 4:
            w2, h2 = _size(parts[2])
            self.switch = (w2, h2, float(parts[3]))
        self.connect("media-configure", self._on_configure)

    def do_create_element(self, url: Any) -> Any:
        line = (
            f"videotestsrc is-live=true pattern=ball ! videoscale ! "
            f"capsfilter name=size caps={_caps(self.width, self.height, self.fps)} ! "
            f"openh264enc gop-size={self.fps} ! h264parse ! {PAY}"
        )
        return Gst.parse_launch(f"( {line} )")

    def _on_configure(self, _factory: Any, media: Any) -> None:
        if self.switch is None:
            return
        w2, h2, after = self.switch
        bin_ = media.get_element()
        capsfilter = bin_.get_by_name("size")

        def _switch() -> bool:
            capsfilter.set_property("caps", Gst.Caps.from_string(_caps(w2, h2, self.fps)))
            return False

        GLib.timeout_add(int(after * 1000), _switch)


AUDIO_LAUNCH = (
    "( audiotestsrc is-live=true ! audioconvert ! audio/x-raw,format=S16BE,rate=8000,channels=1 "
    "! rtpL16pay name=pay0 pt=96 )"
)


def make_factory(spec: str) -> Any:
    if spec.startswith("pattern:"):
        factory = PatternFactory(spec)
    elif spec == "audio":
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(AUDIO_LAUNCH)
    else:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(file_launch(spec))
    factory.set_shared(False)
    return factory


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("port", type=int)
    parser.add_argument("mounts", nargs="+", help="/NAME=SPEC (see module docstring)")
    parser.add_argument("--stop-after", type=float, default=None, help="exit after N seconds")
    parser.add_argument("--address", default="127.0.0.1")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for mount in args.mounts:
        name, _, spec = mount.partition("=")
        if not name.startswith("/") or not spec:
            sys.stderr.write(f"bad mount {mount!r}: expected /NAME=SPEC\n")
            return 2
        mounts.add_factory(name, make_factory(spec))
    if server.attach(None) == 0:
        sys.stderr.write(f"cannot listen on {args.address}:{args.port}\n")
        return 1
    loop = GLib.MainLoop()
    if args.stop_after is not None:
        GLib.timeout_add(int(args.stop_after * 1000), lambda: loop.quit() or False)
    sys.stdout.write(f"READY {args.port}\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
