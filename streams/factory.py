"""The node's camera sources: RTSP, files played as live, and GPU-decoded streams.

:func:`make_source` picks one per camera from its URL and the node's
:class:`sharpeyes.streams.gpu_decode.DecoderConfig`:

============================  ===============================================================
RTSP URL, decoder ``cpu``     :class:`streams.rtsp_source.RtspSource` (reconnects by itself)
file, ``live``, ``cpu``       a paced :class:`FileSource` behind :class:`LiveFileSource`
file, not live, ``cpu``       a plain :class:`FileSource` (as fast as analysis goes)
any URL, GPU decoder          :class:`GpuDecodeSource` (paced for a live file) behind
                              :class:`LiveFileSource`; a plain one for a file not played live
============================  ===============================================================

A GPU-decoded camera does not reconnect by itself: when its stream breaks the runner ends with
the error and the supervisor restarts it within its restart budget. Red-light cameras keep the
CPU decoder, because their evidence clips are cut from the encoded packets that only the CPU
sources hand out. The node's runner feeds ``Frame.image`` (host BGR) to the detector and crops,
so GPU decoders are asked for host frames (``keep_on_device`` is turned off here).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.protocols import FrameSource, SourceInfo
from sharpeyes.pipeline.types import Frame
from sharpeyes.streams.config import RtspConfig, is_live_url
from sharpeyes.streams.decode import EncodedPacket
from sharpeyes.streams.file_source import FileSource
from sharpeyes.streams.gpu_decode import DecoderConfig, GpuDecodeSource
from sharpeyes.streams.health import DropCounter, DropReason, RateMeter
from sharpeyes.streams.latest import LatestQueue
from sharpeyes.streams.packet_ring import PacketRing
from sharpeyes.streams.rtsp_source import RtspSource

logger = logging.getLogger(__name__)

CPU_FILE_DECODER = "pyav-cpu"


class DecodingSource(Protocol):
    """What :class:`LiveFileSource` needs of the source it runs on its own thread."""

    @property
    def info(self) -> SourceInfo: ...

    @property
    def frames_decoded(self) -> int: ...

    @property
    def frames_yielded(self) -> int: ...

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


def _decode_errors(inner: DecodingSource) -> int:
    errors = getattr(inner, "decode_errors", 0)
    return errors if isinstance(errors, int) else 0


def _sampled_out(inner: DecodingSource) -> int:
    """Frames sampling dropped: decoded and not yielded, plus those never decoded for it."""
    skipped = getattr(inner, "frames_skipped", 0)
    skipped = skipped if isinstance(skipped, int) else 0
    return inner.frames_decoded + skipped - inner.frames_yielded


class LiveFileSource:
    """A source decoded on its own thread into a latest-frame queue, like a camera.

    The inner source is a file paced in real time, or a GPU-decoded stream. When analysis is
    slower than the stream the oldest frames are dropped (counted as ``backlog``) instead of
    building up latency. Ends when the inner source ends; an error of the inner source
    (nothing decodable, a broken stream) is raised to the consumer.
    """

    def __init__(
        self, inner: DecodingSource, queue_size: int = 2, drops: DropCounter | None = None
    ) -> None:
        self.inner = inner
        self.drops = drops if drops is not None else DropCounter()
        self.input = RateMeter()
        self.last_frame_mono: float | None = None
        self.skew_ms: float | None = None
        self._queue: LatestQueue[Frame] = LatestQueue(queue_size, self.drops)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._decode, name="file-live", daemon=True)
        self._started = False
        self._counted = False

    @property
    def info(self) -> SourceInfo:
        return self.inner.info

    @property
    def decoder(self) -> str | None:
        """The decoder in use (after any fallback)."""
        return source_decoder(self.inner)

    @property
    def frames_deinterlaced(self) -> int:
        """Interlaced pictures of the inner source whose combs were undone."""
        return frames_deinterlaced(self.inner)

    def _decode(self) -> None:
        try:
            for frame in self.inner.frames():
                now = time.monotonic()
                self.input.tick(now)
                self.last_frame_mono = now
                self.skew_ms = time.time() * 1000.0 - frame.wall_time_ms
                self._queue.put(frame)
        except BaseException as e:  # handed to the consumer
            self._error = e
        finally:
            self._queue.close()
            self._count_run()

    def _count_run(self) -> None:
        """Move this run's sampling and decode-error counts into the (shared) counter."""
        inner = self.inner
        self.drops.add(DropReason.SAMPLING, _sampled_out(inner))
        self.drops.add(DropReason.DECODE_ERROR, _decode_errors(inner))
        self._counted = True

    def frames(self) -> Iterator[Frame]:
        if not self._started:
            self._started = True
            self._thread.start()
        while True:
            frame = self._queue.get(timeout=0.5)
            if frame is not None:
                yield frame
            elif self._queue.closed and len(self._queue) == 0:
                break
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self.inner.close()
        self._queue.close()
        if self._started and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def drop_counts(self) -> dict[str, int]:
        counts = self.drops.snapshot()
        if not self._counted:  # add the running source's counts
            inner = self.inner
            counts[str(DropReason.SAMPLING)] += _sampled_out(inner)
            counts[str(DropReason.DECODE_ERROR)] += _decode_errors(inner)
        return counts


def source_decoder(source: object) -> str | None:
    """The decoder a source uses, as shown in health (None when it does not say)."""
    if isinstance(source, LiveFileSource):
        return source.decoder
    if isinstance(source, GpuDecodeSource):
        return source.decoder_in_use
    if isinstance(source, FileSource):
        return CPU_FILE_DECODER
    return None


def make_source(
    cam: CameraConfig,
    rtsp: RtspConfig,
    drops: DropCounter | None = None,
    ring: PacketRing | None = None,
    *,
    decoder: DecoderConfig | None = None,
    start_wall_ms: int | None = None,
) -> RtspSource | LiveFileSource | FileSource | GpuDecodeSource:
    """The camera's source: RTSP (and other stream URLs), a file as live, or a plain file.

    ``ring`` (red-light cameras) receives the encoded packets for evidence clips.
    ``decoder`` other than ``cpu`` decodes with :class:`GpuDecodeSource` (see module docstring).

    Raises:
        StreamOpenError: a GPU-decoded input cannot be opened; DecoderUnavailableError when
            the GPU decoder cannot run here and its ``fallback`` is ``fail``.
    """
    assert cam.url is not None
    if decoder is not None and decoder.backend != "cpu":
        if ring is None:
            return _gpu_source(cam, rtsp, drops, decoder)
        logger.info("camera %s: red-light evidence needs packets; decoding on the CPU", cam.id)
    packet_sink = None if ring is None else ring.push
    if is_live_url(cam.url):
        return _rtsp_source(cam, rtsp, ring)
    source = _file_source(cam, rtsp, drops, packet_sink, start_wall_ms)
    if ring is not None:
        inner = source.inner if isinstance(source, LiveFileSource) else source
        assert isinstance(inner, FileSource)
        ring.set_stream_params(inner.video_stream_params())
    return source


def _rtsp_source(cam: CameraConfig, rtsp: RtspConfig, ring: PacketRing | None) -> RtspSource:
    assert cam.url is not None
    return RtspSource(
        cam.url,
        cam.id,
        transport=rtsp.transport,
        open_timeout_s=rtsp.open_timeout_s,
        read_timeout_s=rtsp.read_timeout_s,
        stall_timeout_s=rtsp.stall_timeout_s,
        analysis_fps=cam.analysis_fps,
        queue_size=rtsp.queue_size,
        backoff_initial_s=rtsp.backoff_initial_s,
        backoff_max_s=rtsp.backoff_max_s,
        restart_budget=rtsp.restart_budget,
        restart_window_s=rtsp.restart_window_s,
        failed_retry_s=rtsp.failed_retry_s,
        first_frame_timeout_s=rtsp.first_frame_timeout_s,
        degraded_above=rtsp.degraded_above,
        packet_sink=None if ring is None else ring.push,
        params_sink=None if ring is None else ring.set_stream_params,
        pixel_aspect=cam.pixel_aspect_ratio,
        deinterlace=cam.deinterlace,
    )


def _gpu_source(
    cam: CameraConfig, rtsp: RtspConfig, drops: DropCounter | None, decoder: DecoderConfig
) -> LiveFileSource | GpuDecodeSource:
    """A GPU-decoded camera; host frames, because the runner detects on ``Frame.image``."""
    assert cam.url is not None
    live_url = is_live_url(cam.url)
    source = GpuDecodeSource(
        cam.url,
        cam.id,
        decoder=decoder.model_copy(update={"keep_on_device": False}),
        realtime=cam.live and not live_url,  # a network stream is paced by its sender
        analysis_fps=cam.analysis_fps,
        start_wall_ms=round(time.time() * 1000),
        pixel_aspect=cam.pixel_aspect_ratio,
        deinterlace=cam.deinterlace,
    )
    if source.fallback_reason is not None:
        logger.warning("camera %s: %s", cam.id, source.fallback_reason)
    if cam.live or live_url:
        return LiveFileSource(source, rtsp.queue_size, drops)
    return source


def _file_source(
    cam: CameraConfig,
    rtsp: RtspConfig,
    drops: DropCounter | None,
    packet_sink: Callable[[EncodedPacket], None] | None,
    start_wall_ms: int | None = None,
) -> LiveFileSource | FileSource:
    """A file: paced like a camera behind a latest-frame queue when ``cam.live``, else read as
    fast as analysis goes. ``start_wall_ms`` is the clock origin (None: now for a live file, the
    file's creation time otherwise)."""
    assert cam.url is not None
    if cam.live:  # capture time = now: the clip stands in for a camera filming right now
        inner = FileSource(
            cam.url,
            cam.id,
            realtime=True,
            analysis_fps=cam.analysis_fps,
            start_wall_ms=start_wall_ms,  # None: the clock starts at the first frame
            packet_sink=packet_sink,
            decode_threads=1,  # one decode thread per camera, like RTSP: no frame-thread lag
            pixel_aspect=cam.pixel_aspect_ratio,
            deinterlace=cam.deinterlace,
        )
        return LiveFileSource(inner, rtsp.queue_size, drops)
    return FileSource(
        cam.url,
        cam.id,
        analysis_fps=cam.analysis_fps,
        packet_sink=packet_sink,
        start_wall_ms=start_wall_ms,
        decode_threads=1,  # decoding runs ahead on its own thread; FFmpeg threads would contend
        pixel_aspect=cam.pixel_aspect_ratio,
        deinterlace=cam.deinterlace,
    )


def frames_deinterlaced(source: object) -> int:
    """How many interlaced pictures ``source`` has deinterlaced (:mod:`sharpeyes.streams.fields`);
    0 for a source that does not deinterlace."""
    return int(getattr(source, "frames_deinterlaced", 0) or 0)


def is_live_source(source: FrameSource) -> bool:
    """True for a source that drops frames instead of queueing them (no prefetch wanted)."""
    return isinstance(source, RtspSource | LiveFileSource)
