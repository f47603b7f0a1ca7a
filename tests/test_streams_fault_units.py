"""Pure-logic parts of the live-camera fault handling (issue 18): frozen pts, a sampler that
never starves, the corruption meter, SDP/RTP parsing for PS over RTP, error texts."""

from __future__ import annotations

import itertools
import socket
import struct
import threading
from typing import cast

import pytest

from sharpeyes.pipeline.errors import StreamOpenError
from sharpeyes.streams.decode import DamageTracker, open_input, read_error_text
from sharpeyes.streams.health import CorruptionMeter
from sharpeyes.streams.rtsp_ps import PsOverRtp, RtspTcpClient, rtp_payload, sdp_video
from sharpeyes.streams.sampling import Sampler
from sharpeyes.streams.timing import PtsClock


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_frozen_pts_falls_back_to_arrival_and_is_counted() -> None:
    clock = FakeClock()
    pc = PtsClock(clock)
    stamps = []
    for i in range(30):  # 1 s of normal frames
        stamps.append(pc.map(100.0 + i / 30))
        clock.t += 1 / 30
    frozen = 100.0 + 29 / 30
    for _ in range(300):  # 10 s of a frozen pts
        stamps.append(pc.map(frozen))
        clock.t += 1 / 30
    for i in range(30):  # pts moves again
        stamps.append(pc.map(frozen + (i + 1) / 30))
        clock.t += 1 / 30
    pts = [s.pts for s in stamps]
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert pts[-1] - pts[0] == pytest.approx(359 / 30, abs=0.05)  # stream time = wall time
    assert pc.frozen == 300
    walls = [s.wall_time_ms for s in stamps]
    assert walls[-1] - walls[0] == pytest.approx(359 / 30 * 1000, abs=50)


def test_sampler_never_starves_on_a_stuck_pts() -> None:
    s = Sampler(5.0)
    taken = [s.accept(7.0, now=i / 30) for i in range(300)]  # 10 s, pts never moves
    assert sum(taken) >= 0.9 * 5 * 10 / 2  # at least one per two periods
    assert s.forced > 0
    s2 = Sampler(5.0)
    normal = [s2.accept(i / 30, now=i / 30) for i in range(300)]
    assert sum(normal) == 50 and s2.forced == 0


def test_corruption_meter_window_and_totals() -> None:
    m = CorruptionMeter(window=10)
    m.add(False, 8)
    m.add(True, 2)
    assert m.rate() == pytest.approx(0.2) and m.total_damaged == 2
    m.add(False, 10)
    assert m.rate() == 0.0 and m.total_damaged == 2 and m.samples() == 10


class _AvFrame:
    def __init__(self, pts: int, key: bool = False, corrupt: bool = False) -> None:
        self.pts, self.key_frame, self.is_corrupt = pts, key, corrupt


def test_damage_lasts_until_the_next_keyframe() -> None:
    t = DamageTracker()
    flags = [(True, False), (False, True), (False, False), (False, False), (True, False)]
    assert [t.frame(_AvFrame(0, k, c)) for k, c in flags] == [False, True, True, True, False]
    t.packet_failed()  # a packet that did not decode: the frames after it lack it
    assert [t.frame(_AvFrame(0, k)) for k in (False, False, True)] == [True, True, False]
    assert t.damaged == 5


def test_rtsp_marks_a_flagged_frames_damage_as_carried_not_corrupt() -> None:
    """A frame FFmpeg flags is corrupt; the frames decoded after it up to the next keyframe are
    not (on a lossy link every frame would be) but carry its damage: the signal heads are not
    read on them. A frame lost in transit breaks the references: corrupt to the keyframe."""
    from sharpeyes.streams.rtsp_source import RtspSource

    src = RtspSource("rtsp://127.0.0.1:9/x", "cam")
    src._frame_period = 1 / 30
    src._last_arrival -= 100.0
    key, flagged = {0, 6, 10}, {2}
    pts = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10]  # frame 8 lost in transit
    got = [src._damage(_AvFrame(p, p in key, p in flagged), p / 30) for p in pts]
    corrupt = [c for c, _ in got]
    carried = [d for _, d in got]
    assert corrupt == [False, False, True, False, False, False, False, False, True, False]
    assert carried == [False, False, False, True, True, True, False, False, False, False]


def test_sdp_video_names_the_codec() -> None:
    sdp = (
        "v=0\r\nm=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
        "m=video 0 RTP/AVP 96\r\na=rtpmap:96 PS/90000\r\na=control:track1\r\n"
    )
    video = sdp_video(sdp)
    assert video is not None and video.encoding == "PS/90000" and video.is_ps
    assert video.control == "track1" and video.payload_type == 96
    h264 = sdp_video("m=video 0 RTP/AVP 97\na=rtpmap:97 H264/90000\n")
    assert h264 is not None and not h264.is_ps
    assert sdp_video("m=audio 0 RTP/AVP 0\n") is None


def test_rtp_payload_strips_csrc_extension_and_padding() -> None:
    head = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 1, 96, 42, 0, 1)
    csrc = b"\0" * 4
    ext = struct.pack("!HH", 0xBEDE, 1) + b"\0" * 4
    packet = head + csrc + ext + b"PSDATA" + b"\0\0\x03"
    assert rtp_payload(packet) == (42, b"PSDATA")
    assert rtp_payload(b"\x00" * 12) is None


def test_read_timeout_is_said_in_words() -> None:
    class Exit(Exception):
        errno = 1414092869
        strerror = "Immediate exit requested"

    assert read_error_text(Exit(), 2.0) == "no data from the camera for 2s"
    assert read_error_text(OSError(111, "Connection refused"), 2.0) == "Connection refused"


def test_a_server_that_accepts_and_never_answers_is_said_to_be_silent() -> None:
    """FFmpeg's RTSP demuxer calls an open that timed out on a silent server "Invalid data
    found when processing input"; the error says what happened instead. A refused connection
    keeps its own words."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    try:
        with pytest.raises(StreamOpenError) as err:
            open_input(
                f"rtsp://127.0.0.1:{port}/cam1",
                display="cam1",
                options={"rtsp_transport": "tcp"},
                timeout=(1.0, 1.0),
            )
        assert "no answer within 1 s" in str(err.value), str(err.value)
        assert "Invalid data" not in str(err.value)
    finally:
        for c in held:
            c.close()
        listener.close()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    free = closed.getsockname()[1]
    closed.close()
    with pytest.raises(StreamOpenError) as err:
        open_input(f"rtsp://127.0.0.1:{free}/cam1", display="cam1", timeout=(1.0, 1.0))
    assert "refused" in str(err.value).lower(), str(err.value)


def test_ps_reader_ends_the_file_on_a_socket_error_and_keeps_it() -> None:
    """A silent camera ends the program stream (end of file, the error kept for the status):
    an exception raised through PyAV's custom IO would be retried by FFmpeg and printed, with
    its traceback, on stderr at every session end."""

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        def rtp(self) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise TimeoutError("no data from the camera for 2s")
            return struct.pack("!BBHII", 0x80, 96, self.calls, 0, 1) + b"PS%d" % self.calls

    client = Client()
    reader = PsOverRtp(cast(RtspTcpClient, client))
    assert reader.read(2) == b"PS" and reader.read() == b"1" and reader.read() == b"PS2"
    assert reader.read() == b"" and reader.read() == b""
    assert isinstance(reader.error, TimeoutError) and client.calls == 3
