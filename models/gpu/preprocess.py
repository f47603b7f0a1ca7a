"""Letterbox resize, colour conversion, normalisation and batching — on the GPU or the host.

One math, three array libraries:

* :class:`ArrayPreprocessor` with ``xp=numpy`` is the CPU *reference*; with ``xp=cupy`` the very
  same code runs on the GPU (CuPy mirrors the NumPy calls used here);
* :class:`TorchPreprocessor` runs on any torch device (``cuda:0`` or ``cpu``) with
  ``F.interpolate``.

Bilinear resize uses half-pixel centres, source coordinates clamped at 0 and the last index
repeated at the far edge — the definition of OpenCV's ``INTER_LINEAR`` and of torch's
``bilinear`` with ``align_corners=False`` (no antialiasing), so all paths agree with the CPU
detector's ``cv2.resize`` up to OpenCV's fixed-point rounding (< 1 grey level). Resized pixels
are rounded to whole grey levels, as the host path's ``uint8`` canvas is.

Inputs are arrays on the library's device: ``H×W×3 uint8`` is BGR (host frames, or frames a
decoder converted); a 2-D ``(H·3/2)×W uint8`` array is NV12 (what NVDEC produces), converted with
BT.601 limited-range coefficients (FFmpeg's default for ``bgr24``). The output is one NCHW RGB
tensor in 0..1 with the yolov5 pad value 114 around each letterboxed image, the layout of
:meth:`sharpeyes.models.yolo.YoloV5Detector.to_tensor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from sharpeyes.models.yolo import PAD_VALUE, LetterboxGeometry, plan_letterbox, rect_shape

# BT.601 limited range → RGB (ITU-R BT.601; the matrix FFmpeg's swscale uses by default).
Y_GAIN = 255.0 / 219.0
RV, GU, GV, BU = 1.596027, -0.391762, -0.812968, 2.017232


def image_hw(image: Any) -> tuple[int, int]:
    """(height, width) of a BGR ``H×W×3`` or NV12 ``(H·3/2)×W`` array of any library."""
    shape = tuple(int(s) for s in image.shape)
    if len(shape) == 3 and shape[2] == 3:
        return shape[0], shape[1]
    if len(shape) == 2 and shape[0] % 3 == 0:
        return shape[0] * 2 // 3, shape[1]
    raise ValueError(f"expected a BGR HxWx3 or an NV12 (H*3/2)xW image, got shape {shape}")


def plan_batch(
    src_hws: Sequence[tuple[int, int]],
    input_hw: tuple[int, int],
    *,
    dynamic: bool,
    centre: bool = True,
) -> tuple[LetterboxGeometry, ...]:
    """Letterbox geometry of each image in one shared input shape (``YoloV5Detector.plan``)."""
    if not src_hws:
        raise ValueError("a batch needs at least one image")
    shapes = [rect_shape(hw, input_hw) if dynamic else input_hw for hw in src_hws]
    in_hw = (max(s[0] for s in shapes), max(s[1] for s in shapes))
    return tuple(plan_letterbox(hw, in_hw, centre=centre) for hw in src_hws)


class Preprocessor(Protocol):
    """Turns device images and their geometry into one NCHW float batch on the device."""

    @property
    def name(self) -> str: ...

    def __call__(self, images: Sequence[Any], geometry: Sequence[LetterboxGeometry]) -> Any: ...


# --- the NumPy / CuPy implementation (xp is the array module) ---------------------------------


def _axis_weights(src: int, dst: int, xp: Any) -> tuple[Any, Any, Any]:
    """Source indices (i0, i1) and the weight of i1 for each of ``dst`` output samples."""
    scale = src / dst
    pos = (xp.arange(dst, dtype=xp.float64) + 0.5) * scale - 0.5
    pos = xp.maximum(pos, 0.0)
    i0 = xp.minimum(xp.floor(pos).astype(xp.int64), src - 1)
    i1 = xp.minimum(i0 + 1, src - 1)
    w1 = (pos - i0).astype(xp.float32)
    return i0, i1, w1


def resize_bilinear(image: Any, out_hw: tuple[int, int], xp: Any = np) -> Any:
    """Bilinear ``H×W×C`` resize (float32 out) with OpenCV ``INTER_LINEAR`` sampling."""
    h, w = int(image.shape[0]), int(image.shape[1])
    src = image.astype(xp.float32)
    if (h, w) == out_hw:
        return src
    y0, y1, wy = _axis_weights(h, out_hw[0], xp)
    x0, x1, wx = _axis_weights(w, out_hw[1], xp)
    top = src[y0] * (1.0 - wy)[:, None, None] + src[y1] * wy[:, None, None]
    return top[:, x0] * (1.0 - wx)[None, :, None] + top[:, x1] * wx[None, :, None]


def nv12_to_bgr(nv12: Any, xp: Any = np) -> Any:
    """NV12 ``(H·3/2)×W uint8`` → BGR ``H×W×3`` float32 (0..255, not rounded)."""
    h, w = image_hw(nv12)
    y = (nv12[:h].astype(xp.float32) - 16.0) * Y_GAIN
    uv = nv12[h:].reshape(h // 2, w // 2, 2).astype(xp.float32) - 128.0
    uv = xp.repeat(xp.repeat(uv, 2, axis=0), 2, axis=1)
    u, v = uv[..., 0], uv[..., 1]
    bgr = xp.stack((y + BU * u, y + GU * u + GV * v, y + RV * v), axis=-1)
    return xp.clip(bgr, 0.0, 255.0)


@dataclass(frozen=True, slots=True)
class ArrayPreprocessor:
    """The reference math on NumPy (CPU) or CuPy (GPU); output dtype float32 or float16."""

    xp: Any = np
    dtype: str = "float32"

    @property
    def name(self) -> str:
        return f"{self.xp.__name__}-{self.dtype}"

    def __call__(self, images: Sequence[Any], geometry: Sequence[LetterboxGeometry]) -> Any:
        xp = self.xp
        h, w = geometry[0].in_hw
        out = xp.full((len(images), 3, h, w), PAD_VALUE / 255.0, dtype=xp.float32)
        for i, (img, geo) in enumerate(zip(images, geometry, strict=True)):
            bgr = nv12_to_bgr(img, xp) if img.ndim == 2 else img
            rh, rw = geo.resized_hw
            rgb = xp.rint(resize_bilinear(bgr, (rh, rw), xp))[:, :, ::-1] / 255.0
            out[i, :, geo.top : geo.top + rh, geo.left : geo.left + rw] = rgb.transpose(2, 0, 1)
        return out.astype(self.dtype)


# --- the torch implementation -----------------------------------------------------------------


class TorchPreprocessor:
    """Same math with torch kernels on ``device``; images of equal size are resized together."""

    def __init__(self, device: str = "cuda:0", *, fp16: bool = False) -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float16 if fp16 else torch.float32
        self._bt601 = torch.tensor(
            [[Y_GAIN, BU, 0.0], [Y_GAIN, GU, GV], [Y_GAIN, 0.0, RV]], device=self.device
        )

    @property
    def name(self) -> str:
        return f"torch-{self.device}-{str(self.dtype).removeprefix('torch.')}"

    def as_tensor(self, image: Any) -> Any:
        """Any array (NumPy, CuPy, torch, DLPack or ``__cuda_array_interface__``) → tensor."""
        torch = self._torch
        if isinstance(image, torch.Tensor):
            return image.to(self.device, non_blocking=True)
        if isinstance(image, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(image)).to(self.device, non_blocking=True)
        if hasattr(image, "__dlpack__"):
            return torch.from_dlpack(image).to(self.device)
        return torch.as_tensor(image, device=self.device)

    def planar_rgb(self, image: Any) -> Any:
        """One image → ``3×H×W`` float32 RGB on the device (0..255)."""
        t = self.as_tensor(image)
        if t.ndim == 3:
            return t.permute(2, 0, 1).flip(0).float()
        h, w = image_hw(t)
        y = t[:h].float() - 16.0
        uv = t[h:].reshape(h // 2, w // 2, 2).permute(2, 0, 1).float() - 128.0
        uv = uv.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
        yuv = self._torch.stack((y, uv[0], uv[1]))
        bgr = self._torch.einsum("ck,khw->chw", self._bt601, yuv).clamp_(0.0, 255.0)
        return bgr.flip(0)

    def __call__(self, images: Sequence[Any], geometry: Sequence[LetterboxGeometry]) -> Any:
        torch = self._torch
        f = torch.nn.functional
        h, w = geometry[0].in_hw
        out = torch.full((len(images), 3, h, w), PAD_VALUE / 255.0, device=self.device)
        groups: dict[tuple[tuple[int, int], tuple[int, int]], list[int]] = {}
        for i, geo in enumerate(geometry):
            groups.setdefault((geo.src_hw, geo.resized_hw), []).append(i)
        for (src_hw, (rh, rw)), idx in groups.items():
            stack = torch.stack([self.planar_rgb(images[i]) for i in idx])
            if src_hw != (rh, rw):
                stack = f.interpolate(stack, size=(rh, rw), mode="bilinear", align_corners=False)
            stack = stack.round()  # uint8 pixels, as the host path's cv2.resize produces
            for j, i in enumerate(idx):
                geo = geometry[i]
                out[i, :, geo.top : geo.top + rh, geo.left : geo.left + rw] = stack[j] / 255.0
        return out.to(self.dtype)


def cupy_module() -> Any:
    """CuPy, imported on demand (raises ImportError with the install hint when missing)."""
    try:
        import cupy
    except ImportError as e:
        raise ImportError("CuPy is not installed: pip install 'sharpeyes[gpu]'") from e
    return cupy
