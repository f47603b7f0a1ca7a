"""Detector backends by name, chosen by config — the composition root calls
:func:`create_backend_detector` and never branches on CUDA itself.

=================  ===================================================================
``onnxruntime``    the host path: :func:`sharpeyes.models.factory.create_detector` (any provider)
``onnxruntime-gpu``  ORT with TensorRT/CUDA, on-device preprocessing, I/O binding
``torch``          the yolov5 checkpoint on PyTorch (fp16, CUDA graphs)
=================  ===================================================================

``fallback="cpu"`` turns "this backend cannot run here" into the host ``onnxruntime`` backend
on the CPU provider (the reason is kept in :attr:`BackendChoice.fallback_reason` and logged);
``fallback="fail"`` raises :class:`pipeline.errors.ModelError`. :func:`probe_backends` reports
which backends are usable without building a model.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sharpeyes.models.registry import DEFAULT_DETECTOR, get_model_spec
from sharpeyes.models.resolve import resolve_model
from sharpeyes.models.yolo import DetectorOptions
from sharpeyes.pipeline.errors import ModelError

log = logging.getLogger(__name__)

BackendName = Literal["onnxruntime", "onnxruntime-gpu", "torch"]


class DetectorBackendConfig(BaseModel):
    """Which runtime runs the detector, on which device, and what to do if it cannot."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: BackendName = Field("onnxruntime", description="detector runtime")
    model: str = Field(DEFAULT_DETECTOR, description="registered model name (models.registry)")
    model_path: Path | None = Field(None, description="explicit ONNX file or .pt checkpoint")
    device: str = Field("cuda:0", description="torch device for the GPU backends")
    providers: str = Field("auto", description="onnxruntime providers: auto/tensorrt/cuda/cpu")
    fp16: bool = Field(True, description="half precision on the GPU (TensorRT / torch)")
    cuda_graphs: bool = Field(True, description="torch: replay CUDA graphs for fixed shapes")
    max_batch: int = Field(64, ge=1, le=512, description="largest batch the backend sees")
    preprocess: Literal["auto", "torch", "cupy", "numpy"] = Field(
        "auto", description="where letterbox/normalisation runs for onnxruntime-gpu"
    )
    engine_cache_dir: Path | None = Field(None, description="TensorRT engine cache folder")
    input_size: tuple[int, int] | None = Field(None, description="model input (h, w)")
    confidence_threshold: float = Field(0.25, gt=0, lt=1, description="score threshold")
    iou_threshold: float = Field(0.45, gt=0, lt=1, description="NMS IoU threshold")
    intra_op_threads: int = Field(0, ge=0, description="host threads (0: library default)")
    warmup: int = Field(1, ge=0, description="warm-up detections at build time")
    download: bool = Field(False, description="allow downloading a missing model file")
    fallback: Literal["cpu", "fail"] = Field(
        "fail", description="backend unusable here: fall back to CPU onnxruntime, or fail"
    )

    def options(self) -> DetectorOptions:
        return DetectorOptions(
            confidence_threshold=self.confidence_threshold,
            iou_threshold=self.iou_threshold,
            input_size=self.input_size,
        )


@dataclass(frozen=True, slots=True)
class BackendChoice:
    """The detector built, the backend that built it, and why it is not the requested one."""

    detector: Any
    backend: str
    requested: str
    fallback_reason: str | None = None


def _onnx_path(cfg: DetectorBackendConfig) -> Path:
    return resolve_model(cfg.model, cfg.model_path, download=cfg.download)


def _checkpoint_path(cfg: DetectorBackendConfig) -> Path:
    if cfg.model_path is not None and cfg.model_path.suffix == ".pt":
        return cfg.model_path
    spec = get_model_spec(cfg.model)
    weights = spec if spec.filename.endswith(".pt") else None
    if weights is None and spec.derived_from:
        weights = get_model_spec(spec.derived_from)
    if weights is None or spec.family != "yolov5":
        raise ModelError(f"torch backend runs yolov5 checkpoints; {cfg.model!r} has none")
    return resolve_model(weights, None, download=cfg.download)


def _build_onnxruntime(cfg: DetectorBackendConfig) -> Any:
    from sharpeyes.models.factory import create_detector

    return create_detector(
        cfg.model,
        model_path=cfg.model_path,
        providers=cfg.providers,
        intra_op_threads=cfg.intra_op_threads,
        input_size=cfg.input_size,
        confidence_threshold=cfg.confidence_threshold,
        iou_threshold=cfg.iou_threshold,
        warmup=cfg.warmup,
        download=cfg.download,
    )


def _build_ort_gpu(cfg: DetectorBackendConfig) -> Any:
    from sharpeyes.models.gpu.ort_gpu import OrtGpuOptions, create_ort_gpu_detector

    device_id = int(cfg.device.partition(":")[2] or 0)
    gpu = OrtGpuOptions(
        providers=cfg.providers,
        device_id=device_id,
        fp16=cfg.fp16,
        engine_cache_dir=cfg.engine_cache_dir,
        intra_op_threads=cfg.intra_op_threads or 1,
    )
    return create_ort_gpu_detector(
        _onnx_path(cfg),
        name=cfg.model,
        options=cfg.options(),
        gpu=gpu,
        preprocess=cfg.preprocess,
        warmup=cfg.warmup,
    )


def _build_torch(cfg: DetectorBackendConfig) -> Any:
    if importlib.util.find_spec("torch") is None:
        raise ModelError("torch backend: PyTorch is not installed")
    from sharpeyes.models.gpu.torch_backend import create_torch_detector

    return create_torch_detector(
        _checkpoint_path(cfg),
        name=cfg.model,
        options=cfg.options(),
        device=cfg.device,
        fp16=cfg.fp16,
        cuda_graphs=cfg.cuda_graphs,
        max_batch=cfg.max_batch,
        warmup=cfg.warmup,
    )


BackendBuilder = Callable[[DetectorBackendConfig], Any]
DETECTOR_BACKENDS: Mapping[str, BackendBuilder] = MappingProxyType(
    {
        "onnxruntime": _build_onnxruntime,
        "onnxruntime-gpu": _build_ort_gpu,
        "torch": _build_torch,
    }
)


def create_backend_detector(cfg: DetectorBackendConfig) -> BackendChoice:
    """Build the configured backend, or the CPU fallback when allowed.

    Raises:
        ModelError: the backend cannot run here and ``fallback`` is ``"fail"`` (or the CPU
            fallback itself failed, e.g. the model file is missing).
    """
    try:
        detector = DETECTOR_BACKENDS[cfg.backend](cfg)
        return BackendChoice(detector, cfg.backend, cfg.backend)
    except ModelError as e:
        if cfg.fallback == "fail" or (cfg.backend == "onnxruntime" and cfg.providers == "cpu"):
            raise
        reason = str(e)
    log.warning("detector backend %s unusable (%s); falling back to CPU", cfg.backend, reason)
    cpu = cfg.model_copy(update={"backend": "onnxruntime", "providers": "cpu"})
    if cfg.model_path is not None and cfg.model_path.suffix == ".pt":
        cpu = cpu.model_copy(update={"model_path": None})
    return BackendChoice(_build_onnxruntime(cpu), "onnxruntime", cfg.backend, reason)


@dataclass(frozen=True, slots=True)
class BackendProbe:
    """Whether one backend can run here, and a one-line reason/detail."""

    name: str
    usable: bool
    detail: str


def _probe_torch() -> BackendProbe:
    if importlib.util.find_spec("torch") is None:
        return BackendProbe("torch", False, "PyTorch not installed")
    import torch

    if not torch.cuda.is_available():
        return BackendProbe("torch", False, f"torch {torch.__version__} sees no CUDA device")
    name = torch.cuda.get_device_name(0)
    return BackendProbe("torch", True, f"torch {torch.__version__} on {name}")


def _probe_ort_gpu() -> BackendProbe:
    import onnxruntime as ort

    gpu = [p for p in ort.get_available_providers() if p != "CPUExecutionProvider"]
    wanted = {"TensorrtExecutionProvider", "CUDAExecutionProvider"} & set(gpu)
    detail = f"onnxruntime {ort.__version__}: {', '.join(ort.get_available_providers())}"
    return BackendProbe("onnxruntime-gpu", bool(wanted), detail)


def probe_backends() -> tuple[BackendProbe, ...]:
    """Usability of every backend (cheap: imports libraries, builds no model)."""
    import onnxruntime as ort

    host = BackendProbe("onnxruntime", True, f"onnxruntime {ort.__version__} (host)")
    return host, _probe_ort_gpu(), _probe_torch()
