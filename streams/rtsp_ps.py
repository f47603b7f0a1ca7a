"""MPEG program stream (``PS/90000``, GB/T 28181 devices) over RTSP, which FFmpeg's RTSP demuxer
cannot decode: a minimal RTSP client (DESCRIBE/SETUP/PLAY over TCP, interleaved RTP, Basic and
Digest auth) receives the RTP payload itself, strips the RTP headers and hands the reassembled
PS byte stream to PyAV's ``mpeg`` demuxer through a file-like object (custom IO), which finds
the H.264/H.265 inside. Also used to name the codec of an SDP that FFmpeg could not decode.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
import re
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import av

from sharpeyes.pipeline.errors import StreamOpenError

logger = logging.getLogger(__name__)

PS_ENCODINGS = frozenset({"PS", "MP2P"})
_KEEPALIVE_S = 20.0


@dataclass(frozen=True, slots=True)
class SdpVideo:
    payload_type: int
    encoding: str  # e.g. "PS/90000", "H264/90000"; "" when the SDP has no rtpmap for it
    control: str | None

    @property
    def is_ps(self) -> bool:
        return self.encoding.split("/", 1)[0].upper() in PS_ENCODINGS


def sdp_video(sdp: str) -> SdpVideo | None:
    """The first video media of an SDP (payload type, rtpmap encoding, control attribute)."""
    lines = [ln.strip() for ln in sdp.splitlines()]
    for i, line in enumerate(lines):
        if not line.startswith("m=video"):
            continue
        fields = line.split()
        pt = int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else -1
        encoding, control = "", None
        for attr in lines[i + 1 :]:
            if attr.startswith("m="):
                break
            if attr.startswith(f"a=rtpmap:{pt} "):
                encoding = attr.split(" ", 1)[1].strip()
            elif attr.startswith("a=control:"):
                control = attr[len("a=control:") :]
        return SdpVideo(pt, encoding, control)
    return None


class RtspTcpClient:
    """Just enough RTSP to receive one video stream over TCP (interleaved channels 0-1)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        self._user = parts.username or ""
        self._password = parts.password or ""
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        self.url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self._timeout_s = timeout_s
        self._sock = socket.create_connection((parts.hostname, parts.port or 554), timeout_s)
        self._buf = b""
        self._cseq = 0
        self._session: str | None = None
        self._auth: tuple[str, dict[str, str]] | None = None
        self._last_sent = time.monotonic()
        self.base = self.url

    def set_timeout(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._sock.settimeout(timeout_s)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    # -- requests --------------------------------------------------------------------------

    def describe(self) -> str:
        status, headers, body = self.request("DESCRIBE", self.url, {"Accept": "application/sdp"})
        if status != 200:
            raise StreamOpenError(f"DESCRIBE failed: {status}")
        base = headers.get("content-base") or headers.get("content-location") or self.url
        self.base = base if base.endswith("/") else base + "/"
        return body.decode("utf-8", "replace")

    def play(self, control: str | None) -> None:
        track = self.base if not control or control == "*" else control
        if not re.match(r"^\w+://", track):
            track = self.base + track
        transport = {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
        status, headers, _ = self.request("SETUP", track, transport)
        if status != 200:
            raise StreamOpenError(f"SETUP failed: {status}")
        self._session = headers.get("session", "").split(";")[0] or None
        status, _, _ = self.request("PLAY", self.base.rstrip("/"), {"Range": "npt=0.000-"})
        if status != 200:
            raise StreamOpenError(f"PLAY failed: {status}")

    def request(
        self, method: str, url: str, extra: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        for _ in range(2):
            self._send(method, url, extra or {})
            status, headers, body = self._response()
            if status == 401 and self._auth is None and (self._user or self._password):
                self._auth = _challenge(headers.get("www-authenticate", ""))
                continue
            return status, headers, body
        return status, headers, body

    def _send(self, method: str, url: str, extra: dict[str, str]) -> None:
        self._cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}", "User-Agent: sharpeyes"]
        if self._session:
            lines.append(f"Session: {self._session}")
        if self._auth is not None:
            lines.append(f"Authorization: {self._authorization(method, url)}")
        lines += [f"{k}: {v}" for k, v in extra.items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._last_sent = time.monotonic()

    def _authorization(self, method: str, url: str) -> str:
        assert self._auth is not None
        scheme, params = self._auth
        if scheme == "basic":
            token = base64.b64encode(f"{self._user}:{self._password}".encode()).decode()
            return f"Basic {token}"
        realm, nonce = params.get("realm", ""), params.get("nonce", "")
        ha1 = _md5(f"{self._user}:{realm}:{self._password}")
        ha2 = _md5(f"{method}:{url}")
        response = _md5(f"{ha1}:{nonce}:{ha2}")
        return (
            f'Digest username="{self._user}", realm="{realm}", nonce="{nonce}", '
            f'uri="{url}", response="{response}"'
        )

    def _response(self) -> tuple[int, dict[str, str], bytes]:
        while True:
            if self._buf.startswith(b"$"):
                self._interleaved()  # data before the reply: skip it
                continue
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            self._fill()
        head = self._buf[:end].decode("utf-8", "replace").split("\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        while len(self._buf) < end + 4 + length:
            self._fill()
        body = self._buf[end + 4 : end + 4 + length]
        self._buf = self._buf[end + 4 + length :]
        fields = head[0].split(" ", 2)
        status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        return status, headers, body

    # -- data ------------------------------------------------------------------------------

    def rtp(self) -> bytes:
        """The next RTP packet on channel 0 (RTSP messages and RTCP are skipped)."""
        while True:
            if time.monotonic() - self._last_sent > _KEEPALIVE_S:
                self._send("GET_PARAMETER", self.base.rstrip("/"), {})
            if self._buf.startswith(b"$"):
                channel, packet = self._interleaved()
                if channel == 0:
                    return packet
                continue
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0 and self._buf[:4] == b"RTSP":
                self._response()  # e.g. the keepalive's reply
                continue
            self._fill()

    def _interleaved(self) -> tuple[int, bytes]:
        while len(self._buf) < 4:
            self._fill()
        channel = self._buf[1]
        size = struct.unpack_from("!H", self._buf, 2)[0]
        while len(self._buf) < 4 + size:
            self._fill()
        packet = self._buf[4 : 4 + size]
        self._buf = self._buf[4 + size :]
        return channel, packet

    def _fill(self) -> None:
        try:
            data = self._sock.recv(65536)
        except TimeoutError as e:
            raise TimeoutError(f"no data from the camera for {self._timeout_s:g}s") from e
        if not data:
            raise ConnectionResetError("the camera closed the connection")
        self._buf += data


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', rest))
    return scheme.lower(), params


def rtp_payload(packet: bytes) -> tuple[int, bytes] | None:
    """(sequence number, payload) of an RTP packet; None when it is not RTP version 2."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return None
    csrc = packet[0] & 0x0F
    offset = 12 + 4 * csrc
    if packet[0] & 0x10 and len(packet) >= offset + 4:  # header extension
        offset += 4 + 4 * struct.unpack_from("!H", packet, offset + 2)[0]
    end = len(packet)
    if packet[0] & 0x20 and end > offset:  # padding
        end -= packet[-1]
    seq = struct.unpack_from("!H", packet, 2)[0]
    return seq, packet[offset:end]


class PsOverRtp(io.RawIOBase):
    """The PS byte stream carried by a session's RTP payloads, as a readable file.

    A socket error (the camera fell silent, closed the connection) ends the file: it is kept
    in :attr:`error` and the read answers end of file, now and on every later read. Raising
    through PyAV's custom IO instead makes FFmpeg retry the read, and PyAV prints each dropped
    exception with its traceback to stderr — a traceback on every session end.
    """

    def __init__(self, client: RtspTcpClient) -> None:
        super().__init__()
        self._client = client
        self._pending = b""
        self._seq: int | None = None
        self.lost_packets = 0
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._pending:
            if self.error is not None:
                return b""
            try:
                packet = self._client.rtp()
            except OSError as e:
                self.error = e
                return b""
            parsed = rtp_payload(packet)
            if parsed is None:
                continue
            seq, payload = parsed
            if self._seq is not None:
                self.lost_packets += (seq - self._seq - 1) & 0xFFFF
            self._seq = seq
            self._pending = payload
        n = len(self._pending) if size is None or size < 0 else size
        out, self._pending = self._pending[:n], self._pending[n:]
        return out


def describe_video(url: str, timeout_s: float) -> SdpVideo | None:
    """DESCRIBE ``url`` and return its video media (to name a codec FFmpeg cannot decode)."""
    client = RtspTcpClient(url, timeout_s)
    try:
        return sdp_video(client.describe())
    finally:
        client.close()


@dataclass
class PsSession:
    """An opened PS-over-RTP session: PyAV container and video stream, plus the RTSP client."""

    container: Any
    stream: Any
    client: RtspTcpClient
    reader: PsOverRtp

    def close(self) -> None:
        try:
            self.container.close()
        finally:
            self.client.close()


def open_ps(url: str, display: str, timeout: tuple[float, float]) -> PsSession:
    """Play ``url`` (an SDP announcing PS) and open its program stream with PyAV."""
    client = RtspTcpClient(url, timeout[0])
    reader = PsOverRtp(client)
    try:
        video = sdp_video(client.describe())
        if video is None or not video.is_ps:
            raise StreamOpenError(f"{display}: no PS video stream in the SDP")
        client.play(video.control)
        container = av.open(
            reader,
            mode="r",
            format="mpeg",
            options={"probesize": "2000000", "analyzeduration": "2000000"},
        )
    except (OSError, av.error.FFmpegError, ValueError) as e:
        client.close()
        reason = reader.error or e  # FFmpeg's "end of file" when the socket failed
        raise StreamOpenError(f"cannot open {display} (PS over RTP): {reason}") from e
    except BaseException:
        client.close()
        raise
    client.set_timeout(timeout[1])
    if not container.streams.video or container.streams.video[0].codec_context is None:
        container.close()
        client.close()
        raise StreamOpenError(f"{display}: no decodable video in the program stream")
    return PsSession(container, container.streams.video[0], client, reader)
