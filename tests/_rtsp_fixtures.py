"""Pytest fixtures for a real GStreamer RTSP server (``tests/rtsp_server.py``) and a TCP listener
that accepts and never answers. Import the fixtures into a test module to use them.

Without the GStreamer packages the fixtures skip, or fail when ``SHARPEYES_REQUIRE_ALL=1``
(CI sets it) — see ``docs`` in TESTING.md for the apt packages.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SERVER_SCRIPT = Path(__file__).resolve().parent / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
APT_PACKAGES = (
    "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad "
    "gstreamer1.0-libav gstreamer1.0-tools python3-gi"
)


@functools.cache
def gstreamer_missing() -> str | None:
    """None when the RTSP server can run, else why not."""
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        "from gi.repository import Gst; Gst.init(None);"
        "assert Gst.ElementFactory.find('openh264enc') and Gst.ElementFactory.find('qtdemux')"
    )
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        return f"GStreamer RTSP server unavailable: {done.stderr.strip().splitlines()[-1:]}"
    return None


def require_gstreamer() -> None:
    missing = gstreamer_missing()
    if missing is None:
        return
    message = f"{missing} (apt-get install -y {APT_PACKAGES})"
    if os.environ.get("SHARPEYES_REQUIRE_ALL") == "1":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"RTSP server on port {port} did not accept within {timeout_s}s")


class RtspServer:
    """One ``tests/rtsp_server.py`` process; can be killed, restarted on the same port, paused."""

    def __init__(self, mounts: dict[str, str], port: int | None = None) -> None:
        self.mounts = dict(mounts)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, mount: str, userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"rtsp://{at}127.0.0.1:{self.port}/{mount.lstrip('/')}"

    def start(self, extra_args: tuple[str, ...] = ()) -> RtspServer:
        args = [f"/{name.lstrip('/')}={spec}" for name, spec in self.mounts.items()]
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER_SCRIPT), str(self.port), *args, *extra_args],
            stdout=subprocess.DEVNULL,
            stderr=sys.stderr,
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open but no data flows (a stalled camera)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def rtsp_server_factory() -> Iterator[Callable[[dict[str, str]], RtspServer]]:
    """Returns ``make(mounts) -> RtspServer`` (started); every server is killed at teardown."""
    require_gstreamer()
    servers: list[RtspServer] = []

    def make(mounts: dict[str, str]) -> RtspServer:
        server = RtspServer(mounts).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.kill()


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never answers (a hung camera)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(sock.getsockname()[1])
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    sock.close()
