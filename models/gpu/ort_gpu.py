"""ONNX Runtime on the GPU: TensorRT / CUDA execution providers, FP16, engine cache, and I/O
binding so the input tensor is read from — and the output left in — device memory.

:class:`OrtGpuOptions` becomes a :class:`models.onnx_session.SessionConfig` (providers, TensorRT
FP16 and engine cache, CUDA options). :class:`IoBinder` binds whatever array the preprocessor
produced — a torch CUDA tensor, a CuPy array (``__cuda_array_interface__``) or a NumPy array — by
pointer, runs the session, and hands the output back on the same side: a CUDA output is wrapped
as a torch tensor (zero copy, via ``__cuda_array_interface__``), a CPU one as NumPy. With the CPU
provider the same code path runs on any machine, which is how the tests exercise it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sharpeyes.models.gpu.common import YoloGpuBase
from sharpeyes.models.gpu.preprocess import (
    ArrayPreprocessor,
    Preprocessor,
    TorchPreprocessor,
    cupy_module,
)
from sharpeyes.models.onnx_session import OnnxModel, SessionConfig
from sharpeyes.models.yolo import DetectorOptions

log = logging.getLogger(__name__)

_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass(frozen=True, slots=True)
class OrtGpuOptions:
    """GPU session settings; ``providers`` as in :func:`models.onnx_session.select_providers`."""

    providers: str = "auto"
    device_id: int = 0
    fp16: bool = True
    engine_cache_dir: Path | None = None
    intra_op_threads: int = 1
    cudnn_conv_algo_search: str = "HEURISTIC"
    extra_cuda_options: dict[str, str] = field(default_factory=dict)

    def session_config(self) -> SessionConfig:
        cuda = {"cudnn_conv_algo_search": self.cudnn_conv_algo_search}
        cuda.update(self.extra_cuda_options)
        return SessionConfig(
            providers=self.providers,
            intra_op_threads=self.intra_op_threads,
            trt_fp16=self.fp16,
            trt_engine_cache_dir=self.engine_cache_dir,
            cuda_device_id=self.device_id,
            cuda_options=cuda,
        )


@dataclass(frozen=True, slots=True)
class BoundBuffer:
    """Where an array lives, for ``IOBinding.bind_input``."""

    device_type: str  # "cuda" or "cpu"
    device_id: int
    pointer: int
    shape: tuple[int, ...]


def describe_buffer(array: Any) -> BoundBuffer:
    """Pointer, device and shape of a torch tensor, CuPy/CAI array or NumPy array."""
    shape = tuple(int(s) for s in array.shape)
    if hasattr(array, "data_ptr"):  # torch
        dev = array.device
        kind = "cuda" if dev.type == "cuda" else "cpu"
        return BoundBuffer(kind, int(dev.index or 0), int(array.data_ptr()), shape)
    cai = getattr(array, "__cuda_array_interface__", None)
    if cai is not None:
        device = getattr(getattr(array, "device", None), "id", 0)
        return BoundBuffer("cuda", int(device), int(cai["data"][0]), shape)
    if isinstance(array, np.ndarray):
        return BoundBuffer("cpu", 0, int(array.ctypes.data), shape)
    raise TypeError(f"cannot bind an array of type {type(array).__name__}")


class _CudaView:
    """A read-only ``__cuda_array_interface__`` over an ORT device output (kept alive by ref)."""

    def __init__(self, value: Any, dtype: np.dtype[Any]) -> None:
        self._value = value
        self.__cuda_array_interface__ = {
            "shape": tuple(value.shape()),
            "typestr": dtype.str,
            "data": (int(value.data_ptr()), True),
            "version": 3,
        }


class IoBinder:
    """Runs an :class:`OnnxModel` through ``IOBinding`` on the input's own device."""

    def __init__(self, model: OnnxModel) -> None:
        self.model = model
        inp = model.session.get_inputs()[0]
        self.input_dtype = np.dtype(_ONNX_TYPES.get(inp.type, np.float32))
        out = model.session.get_outputs()[0]
        self.output_dtype = np.dtype(_ONNX_TYPES.get(out.type, np.float32))
        self._last: Any = None  # keeps the previous output alive for zero-copy views

    def _contiguous(self, array: Any) -> Any:
        if isinstance(array, np.ndarray):
            return np.ascontiguousarray(array, dtype=self.input_dtype)
        if hasattr(array, "contiguous"):  # torch
            import torch

            want = torch.float16 if self.input_dtype == np.float16 else torch.float32
            return array.to(want).contiguous()
        return array.astype(self.input_dtype)  # cupy

    def run(self, array: Any) -> Any:
        """Output 0 of the model for input ``array`` (torch on CUDA, NumPy on the CPU)."""
        array = self._contiguous(array)
        buf = describe_buffer(array)
        io = self.model.session.io_binding()
        io.bind_input(
            self.model.input_name,
            buf.device_type,
            buf.device_id,
            self.input_dtype,
            list(buf.shape),
            buf.pointer,
        )
        io.bind_output(self.model.output_names[0], buf.device_type, buf.device_id)
        self.model.session.run_with_iobinding(io)
        value = io.get_outputs()[0]
        self._last = (array, value)
        if buf.device_type == "cpu":
            return np.asarray(value.numpy())
        import torch

        view = _CudaView(value, self.output_dtype)
        return torch.as_tensor(view, device=f"cuda:{buf.device_id}")


def pick_preprocessor(kind: str, *, device_id: int, on_gpu: bool, fp16: bool) -> Preprocessor:
    """``torch`` / ``cupy`` / ``numpy``, or ``auto``: torch on the GPU if importable, else CuPy,
    else NumPy (on the host)."""
    if kind == "auto":
        if not on_gpu:
            kind = "numpy"
        else:
            try:
                import torch

                kind = "torch" if torch.cuda.is_available() else "cupy"
            except ImportError:
                kind = "cupy"
    dtype = "float16" if fp16 else "float32"
    if kind == "torch":
        return TorchPreprocessor(f"cuda:{device_id}" if on_gpu else "cpu", fp16=fp16)
    if kind == "cupy":
        return ArrayPreprocessor(cupy_module(), dtype)
    if kind == "numpy":
        return ArrayPreprocessor(np, dtype)
    raise ValueError(f"unknown preprocessor {kind!r}: auto, torch, cupy or numpy")


class OrtGpuDetector(YoloGpuBase):
    """yolov5 ONNX model on ORT with on-device preprocessing and I/O binding."""

    def __init__(
        self,
        model: OnnxModel,
        *,
        name: str,
        options: DetectorOptions | None = None,
        preprocess: str = "auto",
        default_size: tuple[int, int] = (640, 640),
    ) -> None:
        self.model = model
        self.binder = IoBinder(model)
        on_gpu = model.providers[0] != "CPUExecutionProvider"
        fp16_input = self.binder.input_dtype == np.float16
        super().__init__(
            name=name,
            options=options or DetectorOptions(),
            preprocessor=pick_preprocessor(
                preprocess, device_id=model.config.cuda_device_id, on_gpu=on_gpu, fp16=fp16_input
            ),
            default_size=default_size,
            fixed_hw=model.fixed_hw,
            providers=model.providers,
            threads=model.config.intra_op_threads,
            fixed_batch=model.fixed_batch,
        )

    def _forward(self, tensor: Any) -> Any:
        if self.model.fixed_batch != 1 or int(tensor.shape[0]) == 1:
            return self.binder.run(tensor)
        parts = [self.binder.run(tensor[i : i + 1]) for i in range(int(tensor.shape[0]))]
        if isinstance(parts[0], np.ndarray):
            return np.concatenate(parts)
        import torch

        return torch.cat([p.clone() for p in parts])


def create_ort_gpu_detector(
    path: Path,
    *,
    name: str,
    options: DetectorOptions | None = None,
    gpu: OrtGpuOptions | None = None,
    preprocess: str = "auto",
    warmup: int = 1,
) -> OrtGpuDetector:
    """Open ``path`` with the GPU session settings and wrap it (raises ModelError)."""
    model = OnnxModel(path, (gpu or OrtGpuOptions()).session_config())
    detector = OrtGpuDetector(model, name=name, options=options, preprocess=preprocess)
    log.info("ORT GPU detector %s on %s", name, ", ".join(model.providers))
    detector.warmup(warmup)
    return detector
