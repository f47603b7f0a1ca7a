"""Detector backends by name — kept for older callers; the one factory is
:func:`sharpeyes.models.factory.create_detector` and the one config is
:data:`sharpeyes.pipeline.config.DetectorSettings` (``backend: onnxruntime | onnxruntime-gpu |
torch``).

:class:`DetectorBackendConfig` is the former flat config of every backend's fields; it converts
to the matching config variant (:meth:`DetectorBackendConfig.to_settings`) and
:func:`create_backend_detector` hands that to the factory. :func:`probe_backends` reports
which backends are usable without building a model.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from sharpeyes.models.factory import DETECTOR_BACKENDS, DetectorChoice, create_detector
from sharpeyes.models.registry import DEFAULT_DETECTOR
from sharpeyes.models.yolo import DetectorOptions
from sharpeyes.pipeline.config import AnyDetectorConfig, DetectorSettings

log = logging.getLogger(__name__)

BackendName = Literal["onnxruntime", "onnxruntime-gpu", "torch"]
BackendChoice = DetectorChoice  # the former name of the factory's result
__all__ = [
    "DETECTOR_BACKENDS",
    "BackendChoice",
    "BackendProbe",
    "DetectorBackendConfig",
    "create_backend_detector",
    "probe_backends",
]

_SETTINGS: TypeAdapter[AnyDetectorConfig] = TypeAdapter(DetectorSettings)
_PER_BACKEND: dict[str, frozenset[str]] = {
    "onnxruntime": frozenset({"providers", "intra_op_threads"}),
    "onnxruntime-gpu": frozenset(
        {"providers", "device", "fp16", "preprocess", "engine_cache_dir", "intra_op_threads"}
    ),
    "torch": frozenset({"device", "fp16", "cuda_graphs"}),
}
_SHARED = frozenset(
    {
        "model",
        "model_path",
        "max_batch",
        "input_size",
        "confidence_threshold",
        "iou_threshold",
        "warmup",
        "download",
        "fallback",
    }
)


class DetectorBackendConfig(BaseModel):
    """Deprecated flat config (every backend's fields); use ``DetectorSettings`` instead."""

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

    def to_settings(self) -> AnyDetectorConfig:
        """The equivalent variant of the one detector config."""
        keys = _SHARED | _PER_BACKEND[self.backend]
        data = self.model_dump(include=set(keys))
        if "model" not in self.model_fields_set:
            data.pop("model")  # let a model_path alone pick its family from the file
        if self.backend == "onnxruntime" and self.providers not in (
            "auto",
            "cpu",
            "cuda",
            "tensorrt",
        ):
            data["providers"] = [self.providers]
        return _SETTINGS.validate_python({**data, "backend": self.backend})


def create_backend_detector(cfg: DetectorBackendConfig | AnyDetectorConfig) -> DetectorChoice:
    """Build the configured backend (or its CPU fallback): see
    :func:`sharpeyes.models.factory.create_detector`."""
    settings = cfg.to_settings() if isinstance(cfg, DetectorBackendConfig) else cfg
    return create_detector(settings)


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
