"""Fault injection for live-camera tests: an RTSP/TCP proxy in front of the real GStreamer server
that drops RTP packets, flips bytes in them, freezes RTP timestamps or goes silent, and a small
RTSP server that sends an MPEG program stream over RTP (``PS/90000``, as GB/T 28181 devices do).

The proxy forwards client requests untouched and parses what the server sends (interleaved
``$`` frames and RTSP responses); faults apply to RTP on interleaved channel 0 (video).
It records which frames (RTP timestamps) lost at least one packet, the ground truth for the
corruption rate a client should report.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests._rtsp_fixtures import (
    SYSTEM_PYTHON,
    RtspServer,
    free_port,
    require_gstreamer,
    wait_for_port,
)


@dataclass
class Faults:
    """What the proxy does to the video RTP stream (times from the first RTP packet)."""

    drop_rate: float = 0.0
    corrupt_rate: float = 0.0  # share of RTP packets with bytes of their payload flipped
    seed: int = 1
    freeze_after_s: float | None = None  # rewrite RTP timestamps to a constant from here ...
    freeze_for_s: float = 0.0  # ... for this long
    silent_after_s: float | None = None  # stop forwarding anything (connection stays open)
    relabel_sdp: dict[str, str] = field(default_factory=dict)


@dataclass
class FaultStats:
    frames: set[int] = field(default_factory=set)  # RTP timestamps seen
    damaged: set[int] = field(default_factory=set)  # RTP timestamps that lost a packet
    packets: int = 0
    dropped: int = 0
    corrupted: int = 0
    frozen_packets: int = 0
    silent_since: float | None = None  # time.monotonic() when the proxy went silent

    @property
    def damaged_rate(self) -> float:
        return len(self.damaged) / len(self.frames) if self.frames else 0.0


class FaultProxy:
    """A TCP proxy for RTSP-over-TCP (interleaved) sessions; see the module docstring."""

    def __init__(self, upstream_port: int, faults: Faults) -> None:
        self.upstream_port = upstream_port
        self.faults = faults
        self.stats = FaultStats()
        self.port = free_port()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._rng = random.Random(faults.seed)
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount.lstrip('/')}"

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.close()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._conns += [client, server]
            threading.Thread(target=self._upstream, args=(client, server), daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client), daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                server.sendall(data)
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_WR)

    def _downstream(self, server: socket.socket, client: socket.socket) -> None:
        buf = b""
        session = _Session()
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                buf += data
                while (item := _split(buf)) is not None:
                    message, buf = item
                    out = self._apply(message, session)
                    if out:
                        client.sendall(out)

    def _apply(self, message: bytes, session: _Session) -> bytes:
        f = self.faults
        if session.silent(f) and self.stats.silent_since is None:
            self.stats.silent_since = time.monotonic()
        if not message.startswith(b"$"):
            for old, new in f.relabel_sdp.items():
                message = _relabel(message, old, new)
            return b"" if session.silent(f) else message
        if message[1] != 0 or len(message) < 16:
            return b"" if session.silent(f) else message
        now = session.elapsed()
        if session.silent(f):
            return b""
        rtp = bytearray(message[4:])
        ts = struct.unpack_from("!I", rtp, 4)[0]
        stats = self.stats
        with self._lock:
            stats.packets += 1
            stats.frames.add(ts)
            if f.drop_rate and self._rng.random() < f.drop_rate:
                stats.dropped += 1
                stats.damaged.add(ts)
                return b""
            if f.corrupt_rate and len(rtp) > 64 and self._rng.random() < f.corrupt_rate:
                # slice data only: the RTP header and the NAL/FU headers stay intact
                for _ in range(8):
                    at = self._rng.randrange(32, len(rtp))
                    rtp[at] ^= 1 << self._rng.randrange(8)
                stats.corrupted += 1
                stats.damaged.add(ts)
        if f.freeze_after_s is not None and f.freeze_after_s <= now < f.freeze_after_s + (
            f.freeze_for_s
        ):
            if session.frozen_ts is None:
                session.frozen_ts = ts
            struct.pack_into("!I", rtp, 4, session.frozen_ts)
            stats.frozen_packets += 1
        return message[:4] + bytes(rtp)


class _Session:
    def __init__(self) -> None:
        self.first_rtp: float | None = None
        self.frozen_ts: int | None = None

    def elapsed(self) -> float:
        now = time.monotonic()
        if self.first_rtp is None:
            self.first_rtp = now
        return now - self.first_rtp

    def silent(self, f: Faults) -> bool:
        return (
            f.silent_after_s is not None
            and self.first_rtp is not None
            and time.monotonic() - self.first_rtp >= f.silent_after_s
        )


def _split(buf: bytes) -> tuple[bytes, bytes] | None:
    """One interleaved frame or RTSP message from the head of ``buf``, and the rest."""
    if not buf:
        return None
    if buf[0:1] == b"$":
        if len(buf) < 4:
            return None
        end = 4 + struct.unpack_from("!H", buf, 2)[0]
        return (buf[:end], buf[end:]) if len(buf) >= end else None
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    length = 0
    for line in buf[:head_end].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    end = head_end + 4 + length
    return (buf[:end], buf[end:]) if len(buf) >= end else None


def _relabel(message: bytes, old: str, new: str) -> bytes:
    head, sep, body = message.partition(b"\r\n\r\n")
    if old.encode() not in body:
        return message
    body = body.replace(old.encode(), new.encode())
    lines = [
        f"Content-Length: {len(body)}".encode() if ln.lower().startswith(b"content-length") else ln
        for ln in head.split(b"\r\n")
    ]
    return b"\r\n".join(lines) + sep + body


# -- an RTSP server for MPEG-PS over RTP ---------------------------------------------------


def make_ps_file(clip: Path, out: Path) -> Path:
    """The clip's H.264 track as a GB/T 28181-style MPEG program stream: per frame a pack
    header, a program stream map (stream type 0x1B) before keyframes, and the frame in PES
    packets (the first with its PTS)."""
    import av  # the project's PyAV: demux the MP4 and convert to Annex B

    chunks: list[bytes] = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        bsf = av.BitStreamFilterContext("h264_mp4toannexb", stream)
        tb = stream.time_base
        assert tb is not None
        for packet in container.demux(stream):
            for filtered in bsf.filter(packet):
                if filtered.pts is None:
                    continue
                pts = int(filtered.pts * tb * 90000) + 45000
                chunks.append(_ps_frame(bytes(filtered), pts, bool(filtered.is_keyframe)))
    out.write_bytes(b"".join(chunks) + b"\x00\x00\x01\xb9")
    return out


def _ps_frame(data: bytes, pts: int, key: bool) -> bytes:
    scr = max(pts - 9000, 0)
    rate = 50000  # in 50 bytes/s units
    pack = b"\x00\x00\x01\xba" + bytes(
        [
            0x44 | ((scr >> 27) & 0x38) | ((scr >> 28) & 0x03),
            (scr >> 20) & 0xFF,
            0x04 | ((scr >> 12) & 0xF8) | ((scr >> 13) & 0x03),
            (scr >> 5) & 0xFF,
            0x04 | ((scr & 0x1F) << 3),
            0x01,
            (rate >> 14) & 0xFF,
            (rate >> 6) & 0xFF,
            ((rate & 0x3F) << 2) | 0x03,
            0xF8,
        ]
    )
    out = [pack]
    if key:
        body = bytes([0xE0, 0xFF, 0, 0, 0, 4, 0x1B, 0xE0, 0, 0]) + b"\0\0\0\0"
        out.append(b"\x00\x00\x01\xbc" + struct.pack("!H", len(body)) + body)
    first = True
    for off in range(0, len(data), 60000):
        part = data[off : off + 60000]
        if first:
            head = bytes(
                [
                    0x80,
                    0x80,
                    5,
                    0x21 | ((pts >> 29) & 0x0E),
                    (pts >> 22) & 0xFF,
                    ((pts >> 14) & 0xFE) | 1,
                    (pts >> 7) & 0xFF,
                    ((pts << 1) & 0xFE) | 1,
                ]
            )
        else:
            head = bytes([0x80, 0x00, 0])
        out.append(b"\x00\x00\x01\xe0" + struct.pack("!H", len(head) + len(part)) + head + part)
        first = False
    return b"".join(out)


class PsRtspServer:
    """Serves a PS file as ``PS/90000`` over RTSP interleaved TCP, paced at the file's bitrate.

    Each PLAY streams the file once from the start in 1400-byte RTP payloads (GB/T 28181 style:
    the PS byte stream split at arbitrary points, RTP timestamp = 90 kHz send time, marker on a
    pack header boundary is not attempted).
    """

    def __init__(
        self,
        ps_file: Path,
        duration_s: float,
        payload_type: int = 96,
        encoding: str = "PS/90000",
    ) -> None:
        self.data = ps_file.read_bytes()
        self.encoding = encoding
        self.duration_s = duration_s
        self.pt = payload_type
        self.port = free_port()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, mount: str = "ps") -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"

    def close(self) -> None:
        self._stop.set()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _sdp(self) -> bytes:
        return (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=PS\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=video 0 RTP/AVP {self.pt}\r\na=rtpmap:{self.pt} {self.encoding}\r\n"
            "a=control:track0\r\na=recvonly\r\n"
        ).encode()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        lock = threading.Lock()
        with contextlib.suppress(OSError):
            while data := conn.recv(65536):
                buf += data
                while (item := _split(buf)) is not None:
                    request, buf = item
                    if request.startswith(b"$"):
                        continue  # RTCP from the client
                    self._answer(conn, request, lock)

    def _answer(self, conn: socket.socket, request: bytes, lock: threading.Lock) -> None:
        head = request.split(b"\r\n\r\n")[0].decode()
        lines = head.split("\r\n")
        method, url = lines[0].split(" ")[:2]
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        extra, body = "", b""
        if method == "OPTIONS":
            extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n"
        elif method == "DESCRIBE":
            body = self._sdp()
            extra = f"Content-Base: {url}/\r\nContent-Type: application/sdp\r\n"
        elif method == "SETUP":
            extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 12345678\r\n"
        elif method == "PLAY":
            extra = "Session: 12345678\r\n"
        cseq = headers.get("cseq", "0")
        reply = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
        with lock:
            conn.sendall(reply.encode() + body)
        if method == "PLAY":
            threading.Thread(target=self._stream, args=(conn, lock), daemon=True).start()

    def _stream(self, conn: socket.socket, lock: threading.Lock) -> None:
        rate = len(self.data) / self.duration_s  # bytes per second
        start = time.monotonic()
        seq, ssrc = 0, 0x5EE5
        with contextlib.suppress(OSError):
            for off in range(0, len(self.data), 1400):
                if self._stop.is_set():
                    return
                due = start + off / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                chunk = self.data[off : off + 1400]
                ts = int((time.monotonic() - start) * 90000) & 0xFFFFFFFF
                rtp = struct.pack("!BBHII", 0x80, self.pt, seq & 0xFFFF, ts, ssrc) + chunk
                with lock:
                    conn.sendall(b"$\x00" + struct.pack("!H", len(rtp)) + rtp)
                seq += 1


@pytest.fixture
def fault_proxies() -> Iterator[list[FaultProxy]]:
    made: list[FaultProxy] = []
    yield made
    for proxy in made:
        proxy.close()


FAULT_SERVER_SCRIPT = Path(__file__).resolve().parent / "rtsp_fault_server.py"


class FaultRtspServer(RtspServer):
    """:class:`RtspServer` running ``tests/rtsp_fault_server.py`` (adds ``gop:`` mounts)."""

    def start(self, extra_args: tuple[str, ...] = ()) -> FaultRtspServer:
        args = [f"/{name.lstrip('/')}={spec}" for name, spec in self.mounts.items()]
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(FAULT_SERVER_SCRIPT), str(self.port), *args, *extra_args],
            stdout=subprocess.DEVNULL,
            stderr=sys.stderr,
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.kill()
            raise
        return self


@pytest.fixture
def fault_server_factory() -> Iterator[Callable[[dict[str, str]], FaultRtspServer]]:
    """Returns ``make(mounts)`` (started); every server is killed at teardown."""
    require_gstreamer()
    servers: list[FaultRtspServer] = []

    def make(mounts: dict[str, str]) -> FaultRtspServer:
        server = FaultRtspServer(mounts).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.kill()
