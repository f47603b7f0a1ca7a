"""Decoder backends behind one :class:`sharpeyes.pipeline.protocols.FrameSource`, chosen by config.

=============  ====================================================================
``cpu``        PyAV software decoding (FFmpeg), frames converted to BGR on the host
``pyav-cuda``  PyAV's ``cuda`` hwaccel (NVDEC through FFmpeg); with ``keep_on_device``
               frames stay on the GPU as NV12 and are exported by DLPack
``nvdec``      NVIDIA PyNvVideoCodec (``pip install pynvvideocodec``), device NV12 frames
=============  ====================================================================

``fallback="cpu"`` makes a backend that cannot run here (library missing, no GPU, no NVDEC)
fall back to ``cpu`` — the reason is kept in :attr:`GpuDecodeSource.fallback_reason` and shown
with :attr:`GpuDecodeSource.decoder_in_use` in health; ``fallback="fail"`` raises
:class:`DecoderUnavailableError`. The input is always checked with a plain PyAV open first, so a
bad file or URL is a :class:`StreamOpenError` whatever the backend.

A frame kept on the GPU has ``device_image`` set to a torch ``uint8`` NV12 tensor
``(H·3/2)×W`` (what :mod:`sharpeyes.models.gpu.preprocess` takes) and ``image`` set to a zero-stride
read-only placeholder of the right shape (no host memory); :func:`host_image` downloads it.
Each source is one decode session; NVDEC engines are shared by all sessions of a GPU.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

import av
import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sharpeyes.pipeline import clock
from sharpeyes.pipeline.errors import DecodeError, StreamOpenError
from sharpeyes.pipeline.protocols import SourceInfo
from sharpeyes.pipeline.types import Frame, ImageBGR
from sharpeyes.streams.decode import (
    SQUARE,
    DamageTracker,
    all_damaged,
    configure_error_reporting,
    configure_threads,
    decode_packet,
    demux_video,
    display_rotation,
    open_input,
    pixel_aspect,
    square_size,
    stream_fps,
    stream_timeline,
    to_bgr,
)
from sharpeyes.streams.fields import DeinterlaceMode, needs_deinterlace, top_field_first
from sharpeyes.streams.sampling import Sampler

logger = logging.getLogger(__name__)

DecoderName = Literal["cpu", "pyav-cuda", "nvdec"]


class DecoderUnavailableError(StreamOpenError):
    """The requested decoder cannot run on this machine (and fallback is ``fail``)."""


class DecoderConfig(BaseModel):
    """Which decoder decodes a stream, and what to do when it cannot run here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: DecoderName = Field("cpu", description="cpu, pyav-cuda or nvdec")
    fallback: Literal["cpu", "fail"] = Field(
        "cpu", description="decoder unusable here: decode on the CPU instead, or fail"
    )
    device_id: int = Field(0, ge=0, description="GPU index for pyav-cuda and nvdec")
    keep_on_device: bool = Field(True, description="GPU decoders: leave frames on the GPU")
    threads: int = Field(0, ge=0, description="cpu decoder threads (0: FFmpeg chooses)")


@dataclass(frozen=True, slots=True)
class Picture:
    """One decoded picture: host BGR or a device NV12 tensor, pts in seconds."""

    pts: float
    keyframe: bool
    host: ImageBGR | None
    device: Any = None
    damaged: bool = False  # corrupt data or broken references (decode.DamageTracker)


class DecodeSession:
    """Base of the backends' sessions: ``pictures()`` once, then ``close()``."""

    description = "?"

    def pictures(self, want: Callable[[float], bool]) -> Iterator[Picture]:
        """Decoded pictures; ``want(pts)`` False lets a backend skip the colour conversion."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def placeholder(height: int, width: int) -> ImageBGR:
    """A read-only ``H×W×3`` array that owns one pixel (stands in for a device frame)."""
    pixel: ImageBGR = np.zeros((1, 1, 3), dtype=np.uint8)
    return cast(ImageBGR, np.broadcast_to(pixel, (height, width, 3)))


def nv12_host_to_bgr(nv12: Any) -> ImageBGR:
    array: Any = nv12.cpu().numpy() if hasattr(nv12, "cpu") else nv12
    nv12_host = np.ascontiguousarray(array, dtype=np.uint8)
    return cast(ImageBGR, cv2.cvtColor(nv12_host, cv2.COLOR_YUV2BGR_NV12))


def host_image(frame: Frame) -> ImageBGR:
    """The frame's BGR pixels on the host (downloads a device frame: crops/evidence only)."""
    if frame.device_image is None:
        return frame.image
    return nv12_host_to_bgr(frame.device_image)


def rotate_nv12(nv12: Any, rotation: int) -> Any:
    """An NV12 tensor ``(H·3/2)×W`` turned by ``rotation`` degrees counter-clockwise (0, 90,
    180, 270; as :func:`~sharpeyes.streams.decode.to_bgr` turns host pictures): the luma plane
    turns as it is, the interleaved chroma plane as ``(H/2)×(W/2)`` pairs."""
    k = (rotation // 90) % 4
    if k == 0:
        return nv12
    import torch

    h = nv12.shape[0] * 2 // 3
    w = nv12.shape[1]
    y = torch.rot90(nv12[:h], k, dims=(0, 1))
    uv = torch.rot90(nv12[h:].reshape(h // 2, w // 2, 2), k, dims=(0, 1))
    return torch.cat((y, uv.reshape(uv.shape[0], uv.shape[1] * 2))).contiguous()


def stretch_nv12(nv12: Any, sar: Fraction) -> Any:
    """An NV12 tensor ``(H·3/2)×W`` of pixels ``sar`` wide stretched to square pixels (the size
    :func:`~sharpeyes.streams.decode.square_size` gives; bilinear, as
    :func:`~sharpeyes.streams.decode.to_bgr` stretches host pictures): the luma plane and the
    two chroma planes of the interleaved ``(H/2)×(W/2)`` pairs each resized."""
    if sar == SQUARE:
        return nv12
    import torch
    from torch.nn import functional

    h = nv12.shape[0] * 2 // 3
    w = nv12.shape[1]
    sw, sh = square_size(w, h, sar)
    y = functional.interpolate(nv12[:h][None, None].float(), size=(sh, sw), mode="bilinear")
    uv = nv12[h:].reshape(h // 2, w // 2, 2).permute(2, 0, 1)[None].float()
    uv = functional.interpolate(uv, size=(sh // 2, sw // 2), mode="bilinear")
    uv = uv[0].permute(1, 2, 0).reshape(sh // 2, sw)
    out = torch.cat((y[0, 0], uv)).round().clamp(0, 255)
    return out.to(nv12.dtype).contiguous()


def _device_nv12(planes: Any) -> Any:
    """Two DLPack planes (Y, interleaved UV) of a CUDA frame → one contiguous NV12 tensor."""
    import torch
    from torch.utils.dlpack import from_dlpack

    y = from_dlpack(planes[0])
    uv = from_dlpack(planes[1]).reshape(y.shape[0] // 2, y.shape[1])
    return torch.cat((y, uv)).contiguous()


class PyAvSession(DecodeSession):
    """PyAV decoding, in software or through the ``cuda`` hwaccel."""

    def __init__(
        self,
        url: str,
        cfg: DecoderConfig,
        *,
        hw: bool,
        rotation: int = 0,
        given_aspect: Fraction | None = None,
        deinterlace: DeinterlaceMode = "auto",
    ) -> None:
        options: dict[str, Any] = {}
        self.on_device = hw and cfg.keep_on_device
        if hw:
            from av.codec.hwaccel import HWAccel

            options["hwaccel"] = HWAccel(
                "cuda", device=cfg.device_id, allow_software_fallback=False, is_hw_owned=True
            )
        try:
            self.container = av.open(url, mode="r", **options)
        except (av.error.FFmpegError, OSError, ValueError) as e:
            kind = DecoderUnavailableError if hw else StreamOpenError
            raise kind(f"cannot open {url} with the {'cuda hwaccel' if hw else 'cpu'}: {e}") from e
        self.stream = self.container.streams.video[0]
        if not hw:
            configure_threads(self.stream, cfg.threads)
        configure_error_reporting(self.stream)
        self.damage = DamageTracker()
        name = self.stream.codec_context.name
        self.description = f"{name} (pyav cuda hwaccel)" if hw else f"{name} (pyav cpu)"
        self._timeline = stream_timeline(self.stream)
        self.rotation = rotation
        self.given_aspect = given_aspect  # a camera's own pixel aspect; None: the stream's
        self.fields: DeinterlaceMode = deinterlace  # host pictures only (streams/fields.py)
        self.frames_deinterlaced = 0

    def pictures(self, want: Callable[[float], bool]) -> Iterator[Picture]:
        timeline, rotation, stream = self._timeline, self.rotation, self.stream
        for packet in demux_video(self.container, self.stream):
            if packet.size:
                timeline.packet(packet.pts, bool(packet.is_keyframe))
            decoded = decode_packet(self.stream, packet)
            if decoded is None:
                self.damage.packet_failed()
            for f in decoded or ():
                pts = timeline.frame(f.pts)
                bad = self.damage.frame(f)
                if not want(pts):
                    yield Picture(pts, bool(f.key_frame), None, damaged=bad)
                elif self.on_device and f.format.name == "cuda":
                    sar = pixel_aspect(stream, self.given_aspect)
                    nv12 = stretch_nv12(_device_nv12(f.planes), sar)
                    nv12 = rotate_nv12(nv12, rotation)
                    yield Picture(pts, bool(f.key_frame), None, nv12, damaged=bad)
                else:
                    if needs_deinterlace(f, self.fields):
                        self.frames_deinterlaced += 1
                    image = to_bgr(
                        f,
                        rotation,
                        pixel_aspect(stream, self.given_aspect),
                        fields=self.fields,
                        top_first=top_field_first(stream),
                    )
                    yield Picture(pts, bool(f.key_frame), image, damaged=bad)

    def close(self) -> None:
        self.container.close()


class NvdecSession(DecodeSession):
    """PyNvVideoCodec demuxer + NVDEC decoder; frames are device NV12 (pts from frame index)."""

    def __init__(
        self, url: str, cfg: DecoderConfig, fps: float, rotation: int = 0, sar: Fraction = SQUARE
    ) -> None:
        try:
            import PyNvVideoCodec

            self.demuxer = PyNvVideoCodec.CreateDemuxer(filename=url)
            self.decoder = PyNvVideoCodec.CreateDecoder(
                gpuid=cfg.device_id,
                codec=self.demuxer.GetNvCodecId(),
                cudacontext=0,
                cudastream=0,
                usedevicememory=True,
            )
        except Exception as e:  # PyNvVideoCodec raises plain RuntimeError/ValueError
            raise DecoderUnavailableError(f"NVDEC cannot open {url}: {e}") from e
        self.keep = cfg.keep_on_device
        self.period = 1.0 / fps if fps > 0 else 0.04
        self.rotation = rotation
        self.sar = sar  # from the PyAV probe: PyNvVideoCodec does not report it
        self.description = f"nvdec (PyNvVideoCodec, gpu {cfg.device_id})"

    @staticmethod
    def _tensor(frame: Any) -> Any:
        import torch
        from torch.utils.dlpack import from_dlpack

        if hasattr(frame, "__dlpack__"):
            return from_dlpack(frame)
        return torch.as_tensor(frame.cuda()[0], device="cuda")

    def pictures(self, want: Callable[[float], bool]) -> Iterator[Picture]:
        index = 0
        try:
            for packet in self.demuxer:
                for f in self.decoder.Decode(packet):
                    pts = index * self.period
                    index += 1
                    if not want(pts):
                        yield Picture(pts, False, None)
                        continue
                    nv12 = stretch_nv12(self._tensor(f).clone(), self.sar)
                    nv12 = rotate_nv12(nv12, self.rotation)
                    host = None if self.keep else nv12_host_to_bgr(nv12)
                    yield Picture(pts, False, host, nv12 if self.keep else None)
        except DecoderUnavailableError:
            raise
        except Exception as e:
            raise DecodeError(f"NVDEC decode failed after {index} frames: {e}") from e

    def close(self) -> None:
        self.decoder = None
        self.demuxer = None


def _probe_cpu() -> str | None:
    return None


def _probe_pyav_cuda() -> str | None:
    from av.codec.hwaccel import HWAccel, hwdevices_available

    if "cuda" not in hwdevices_available():
        return "this PyAV build has no cuda hwaccel"
    try:
        HWAccel("cuda", allow_software_fallback=False).create(av.Codec("h264", "r"))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        return f"no CUDA device for PyAV ({type(e).__name__}: {e})"
    return None


def _probe_nvdec() -> str | None:
    for module in ("PyNvVideoCodec", "torch"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    import torch

    return None if torch.cuda.is_available() else "torch sees no CUDA device"


PROBES: Mapping[str, Callable[[], str | None]] = MappingProxyType(
    {"cpu": _probe_cpu, "pyav-cuda": _probe_pyav_cuda, "nvdec": _probe_nvdec}
)


def probe_decoders() -> dict[str, str | None]:
    """Every backend → None when usable here, else the reason it is not."""
    return {name: probe() for name, probe in PROBES.items()}


def open_session(
    url: str,
    cfg: DecoderConfig,
    fps: float,
    rotation: int = 0,
    *,
    sar: Fraction = SQUARE,
    given_aspect: Fraction | None = None,
    deinterlace: DeinterlaceMode = "auto",
) -> DecodeSession:
    """A decode session of ``cfg.backend``; ``sar`` is the pixel aspect for NVDEC (which cannot
    read it), ``given_aspect`` a camera's own (PyAV sessions read the stream's otherwise)."""
    reason = PROBES[cfg.backend]()
    if reason is not None:
        raise DecoderUnavailableError(f"decoder {cfg.backend} unavailable: {reason}")
    if cfg.backend == "nvdec":
        return NvdecSession(url, cfg, fps, rotation, sar)
    hw = cfg.backend == "pyav-cuda"
    return PyAvSession(
        url, cfg, hw=hw, rotation=rotation, given_aspect=given_aspect, deinterlace=deinterlace
    )


def file_rotation(url: str) -> int:
    """The display rotation of a local file (a phone recording); 0 for a URL."""
    return display_rotation(url) if "://" not in url and Path(url).is_file() else 0


def probe_pixel_aspect(url: str, given: Fraction | None = None) -> Fraction:
    """The pixel aspect of ``url``'s video (:func:`~sharpeyes.streams.decode.pixel_aspect`);
    ``given`` (a camera's own) without opening it."""
    if given is not None:
        return pixel_aspect(None, given)
    container, stream = open_input(url, display=url)
    try:
        return pixel_aspect(stream)
    finally:
        container.close()


def probe_source(
    url: str, stream_id: str, rotation: int = 0, given_aspect: Fraction | None = None
) -> SourceInfo:
    """Open ``url`` with PyAV (CPU) to check it and read its :class:`SourceInfo` (the size
    with square pixels and upright after ``rotation``, as frames come out)."""
    container, stream = open_input(url, display=url)
    try:
        ctx = stream.codec_context
        sar = pixel_aspect(stream, given_aspect)
        w, h = square_size(int(ctx.width), int(ctx.height), sar)
        if rotation in (90, 270):
            w, h = h, w
        return SourceInfo(
            stream_id=stream_id,
            url=url,
            width=w,
            height=h,
            fps=stream_fps(stream),
            codec=str(ctx.name),
            frame_count=int(stream.frames) or None,
        )
    finally:
        container.close()


class GpuDecodeSource:
    """A file or URL decoded by the configured backend, as a ``FrameSource``.

    ``realtime=True`` paces frames at stream speed (a file standing in for a live camera);
    ``analysis_fps`` keeps only sampled frames (the others are decoded but not converted).

    Raises (constructor): StreamOpenError for a bad input; DecoderUnavailableError when the
    backend cannot run and ``fallback`` is ``fail``.
    """

    def __init__(
        self,
        url: str | Path,
        stream_id: str = "cam1",
        *,
        decoder: DecoderConfig | None = None,
        realtime: bool = False,
        analysis_fps: float | None = None,
        start_wall_ms: int | None = None,
        pixel_aspect: Fraction | None = None,
        deinterlace: DeinterlaceMode = "auto",
    ) -> None:
        self.config = decoder or DecoderConfig()
        self._url = str(url)
        self.rotation = file_rotation(self._url)
        self._info = probe_source(self._url, stream_id, self.rotation, pixel_aspect)
        self._realtime = realtime
        self._analysis_fps = analysis_fps
        self._start_wall_ms = start_wall_ms if start_wall_ms is not None else clock.now_ms()
        self._closed = threading.Event()
        self.fallback_reason: str | None = None
        try:
            # PyNvVideoCodec does not say whether the pixels are square; PyAV sessions read it
            nvdec = self.config.backend == "nvdec"
            sar = probe_pixel_aspect(self._url, pixel_aspect) if nvdec else SQUARE
            self._session = open_session(
                self._url,
                self.config,
                self._info.fps,
                self.rotation,
                sar=sar,
                given_aspect=pixel_aspect,
                deinterlace=deinterlace,
            )
        except DecoderUnavailableError as e:
            if self.config.fallback == "fail":
                raise
            logger.warning("%s: %s; decoding on the CPU", stream_id, e)
            self.fallback_reason = str(e)
            self._session = PyAvSession(
                self._url,
                self.config,
                hw=False,
                rotation=self.rotation,
                given_aspect=pixel_aspect,
                deinterlace=deinterlace,
            )
        self._lock = threading.Lock()
        self._iterating = False
        self.frames_decoded = 0
        self.frames_damaged = 0
        self.frames_yielded = 0

    @property
    def info(self) -> SourceInfo:
        return self._info

    @property
    def decoder_in_use(self) -> str:
        return self._session.description

    @property
    def frames_deinterlaced(self) -> int:
        """Interlaced host pictures whose combs were undone (:mod:`sharpeyes.streams.fields`;
        NVDEC and device pictures are not deinterlaced here)."""
        return int(getattr(self._session, "frames_deinterlaced", 0))

    def frames(self) -> Iterator[Frame]:
        with self._lock:
            if self._iterating or self._closed.is_set():
                raise RuntimeError("GpuDecodeSource.frames() can be iterated once, before close()")
            self._iterating = True
        sampler = Sampler(self._analysis_fps)
        t0: float | None = None
        try:
            for pic in self._session.pictures(sampler.accept):
                self.frames_decoded += 1
                self.frames_damaged += int(pic.damaged)
                if pic.host is None and pic.device is None:
                    continue
                if self._realtime:
                    t0 = t0 if t0 is not None else time.monotonic() - pic.pts
                    if self._closed.wait(max(0.0, t0 + pic.pts - time.monotonic())):
                        return
                elif self._closed.is_set():
                    return
                yield self._frame(pic)
        finally:
            self._session.close()
        if self.frames_decoded == 0:
            raise DecodeError(f"{self._url}: no video frame could be decoded")
        if self.frames_damaged == self.frames_decoded:
            raise all_damaged(self._url, self.frames_decoded)

    def _frame(self, pic: Picture) -> Frame:
        self.frames_yielded += 1
        image = pic.host if pic.host is not None else placeholder(self.info.height, self.info.width)
        return Frame(
            stream_id=self._info.stream_id,
            seq=self.frames_decoded - 1,
            pts=pic.pts,
            wall_time_ms=self._start_wall_ms + round(pic.pts * 1000),
            image=image,
            device_image=pic.device,
            keyframe=pic.keyframe,
            corrupt=pic.damaged,
        )

    def close(self) -> None:
        """Stop iteration at the next frame (from any thread) and release the decoder."""
        with self._lock:
            self._closed.set()
            if not self._iterating:
                self._session.close()
