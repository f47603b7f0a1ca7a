"""The one detector factory: a detector config (any backend) → :class:`DetectorChoice`.

:func:`create_detector` takes one of the :data:`sharpeyes.pipeline.config.DetectorSettings`
variants (``backend: onnxruntime | onnxruntime-gpu | torch``), builds that backend from
:data:`DETECTOR_BACKENDS` (a registry, not an if/elif chain) and, when the backend cannot run
here and ``fallback: cpu`` is set, the host ONNX Runtime backend on the CPU instead (the reason
is kept in :attr:`DetectorChoice.fallback_reason`).

The host backend resolves the model (registry name, or an explicit ``model_path``), opens it in
onnxruntime and wraps it in its family's head: the registered family for a registered model,
else the family read from the file (:func:`sharpeyes.models.ultralytics.inspect_detector`:
metadata + output layout), so any YOLOv5, YOLOv8/11 or YOLOv10/26 ONNX export just works.
The returned detector implements ``sharpeyes.pipeline.protocols.Detector`` and exposes
``preprocess`` / ``infer`` / ``postprocess`` so a benchmark can time each stage.

``create_detector("yolov5n", providers="cpu", …)`` (a model name and keyword arguments) is the
older call form; it still returns the detector itself.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, overload, runtime_checkable

from sharpeyes.models.onnx_session import OnnxModel, SessionConfig
from sharpeyes.models.registry import DEFAULT_DETECTOR, ModelSpec, get_model_spec
from sharpeyes.models.resolve import resolve_model
from sharpeyes.models.ultralytics import HEAD_CLASSES, HeadFamily, inspect_detector
from sharpeyes.models.yolo import Batch, DetectorOptions, FloatArray
from sharpeyes.models.yolox import YoloXDetector
from sharpeyes.pipeline.config import (
    AnyDetectorConfig,
    DetectorBase,
    OnnxRuntimeDetectorConfig,
    OrtGpuDetectorConfig,
    TorchDetectorConfig,
)
from sharpeyes.pipeline.errors import ModelError
from sharpeyes.pipeline.protocols import Detector, DetectorInfo
from sharpeyes.pipeline.types import Detections, ImageBGR, ObjectKind

log = logging.getLogger(__name__)


@runtime_checkable
class StagedDetector(Protocol):
    """A ``Detector`` whose three stages can be called (and timed) one by one."""

    @property
    def info(self) -> DetectorInfo: ...

    def detect(self, images: Sequence[ImageBGR]) -> list[Detections]: ...

    def preprocess(self, images: Sequence[ImageBGR]) -> Batch: ...

    def infer(self, batch: Batch) -> FloatArray: ...

    def postprocess(self, raw: FloatArray, batch: Batch) -> list[Detections]: ...

    def warmup(self, n: int = 1, image_hw: tuple[int, int] | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class DetectorChoice:
    """The detector built, a one-line description of the backend in use (for health), why it
    is not the requested backend (None when it is), and the backend names."""

    detector: Any
    backend_text: str
    fallback_reason: str | None = None
    backend: str = "onnxruntime"
    requested: str = "onnxruntime"


# --- host ONNX Runtime backend ---------------------------------------------------------------

# Registered families that are not read from the file (no metadata that tells them apart).
_REGISTRY_ONLY: Mapping[str, type[YoloXDetector]] = MappingProxyType({"yolox": YoloXDetector})
HEAD_OF_FAMILY: Mapping[str, HeadFamily] = MappingProxyType(
    {"yolov5": "yolov5", "yolov8": "yolov8", "yolo11": "yolov8", "yolov10": "yolov10"}
)
DETECTOR_FAMILIES: tuple[str, ...] = (*HEAD_OF_FAMILY, *_REGISTRY_ONLY)


def detector_models() -> tuple[str, ...]:
    """Registered model names (built-in and user) that :func:`create_detector` can build."""
    from sharpeyes.models.registry import all_model_specs

    return tuple(
        n
        for n, s in all_model_specs().items()
        if s.family in DETECTOR_FAMILIES and s.input.layout == "NCHW"
    )


def options_from_config(cfg: DetectorBase) -> DetectorOptions:
    """Thresholds and class handling of any detector config."""
    overrides = {name: ObjectKind[kind.upper()] for name, kind in cfg.class_kinds.items()}
    return DetectorOptions(
        confidence_threshold=cfg.confidence_threshold,
        iou_threshold=cfg.iou_threshold,
        motorcycle_is_non_motor=cfg.motorcycle_is_non_motor,
        keep_other_classes=cfg.keep_other_classes,
        input_size=cfg.input_size,
        kind_overrides=overrides,
        other_kind=ObjectKind[cfg.other_class_kind.upper()],
    )


def _model_label(spec: ModelSpec | None, path: Path) -> str:
    return spec.name if spec is not None else path.stem


def build_onnx_detector(
    *,
    model: str | None,
    model_path: Path | None,
    session: SessionConfig,
    options: DetectorOptions,
    warmup: int = 1,
    download: bool = True,
    prefer_file_family: bool = False,
) -> StagedDetector:
    """Resolve, open and wrap one ONNX detector on the host.

    ``model`` None with a ``model_path``: the family comes from the file. A registered model
    keeps its registered family (and its sha256 check) unless ``prefer_file_family`` lets the
    file's own layout win over it; YOLOX is registry-only.

    Raises:
        ModelNotFoundError, ModelIntegrityError: see :func:`sharpeyes.models.resolve.resolve_model`.
        ModelError: not a detector, an unknown layout, an unreadable file, a missing provider.
    """
    spec: ModelSpec | None = None
    if model is not None:
        spec = get_model_spec(model)
        if spec.family not in DETECTOR_FAMILIES or spec.input.layout != "NCHW":
            raise ModelError(
                f"model {model!r} (family {spec.family}) is not a detector; detectors: "
                f"{', '.join(detector_models())}"
            )
        path = resolve_model(spec, model_path, download=download)
    elif model_path is not None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ModelError(f"detector model_path {path} does not exist")
    else:
        raise ModelError("a detector needs a registered model name or a model_path")
    onnx = OnnxModel(path, session)
    default_size = spec.input.size if spec is not None else (640, 640)
    label = _model_label(spec, path)
    if spec is not None and spec.family in _REGISTRY_ONLY:
        det: StagedDetector = _REGISTRY_ONLY[spec.family](
            onnx, name=label, options=options, default_size=default_size
        )
    else:
        found = inspect_detector(onnx, default_size)
        if spec is not None and HEAD_OF_FAMILY[spec.family] != found.family:
            if not prefer_file_family:
                raise ModelError(
                    f"{path.name}: registered as {spec.name!r} (family {spec.family}) but the "
                    f"file has a {found.family} layout (output {list(found.output_shape)})"
                )
            log.info("%s: %s layout, not %s's", path.name, found.family, spec.name)
            label = path.stem
        head = HEAD_CLASSES[found.family]
        det = head(
            onnx,
            name=label,
            options=options,
            default_size=found.input_size,
            class_names=found.names,
            stride=found.stride,
        )
        log.info(
            "detector %s: family %s, %d classes, input %s%s",
            label,
            found.family,
            len(found.names or ()) or 80,
            found.input_size,
            " (dynamic)" if found.dynamic else "",
        )
    det.warmup(warmup)
    return det


def _explicit_model(cfg: DetectorBase) -> str | None:
    """The registered model to use: None when only a model_path was given (family from file)."""
    if cfg.model_path is not None and "model" not in cfg.model_fields_set:
        return None
    return cfg.model


def _device_index(device: str) -> int:
    """``cuda:1`` → 1; ``cuda`` / ``cpu`` → 0."""
    index = device.partition(":")[2]
    return int(index) if index.isdigit() else 0


def _build_onnxruntime(cfg: AnyDetectorConfig) -> Any:
    assert isinstance(cfg, OnnxRuntimeDetectorConfig)
    session = SessionConfig(
        providers=cfg.providers,
        intra_op_threads=cfg.intra_op_threads,
        inter_op_threads=cfg.inter_op_threads,
        allow_spinning=cfg.allow_spinning,
        cuda_device_id=_device_index(cfg.device),
    )
    return build_onnx_detector(
        model=_explicit_model(cfg),
        model_path=cfg.model_path,
        session=session,
        options=options_from_config(cfg),
        warmup=cfg.warmup,
        download=cfg.download,
    )


# --- GPU backends (YOLOv5 layout) ------------------------------------------------------------


def _gpu_onnx_path(cfg: OrtGpuDetectorConfig) -> Path:
    model = _explicit_model(cfg)
    if model is None:
        if cfg.model_path is None or not cfg.model_path.is_file():
            raise ModelError(f"detector model_path {cfg.model_path} does not exist")
        probe = OnnxModel(cfg.model_path, SessionConfig(providers="cpu", intra_op_threads=1))
        family = inspect_detector(probe).family
        if family != "yolov5":
            raise ModelError(
                f"onnxruntime-gpu backend runs the YOLOv5 layout; {cfg.model_path.name} is "
                f"{family} (use backend onnxruntime with providers cuda/tensorrt)"
            )
        return cfg.model_path
    spec = get_model_spec(model)
    if spec.family != "yolov5":
        raise ModelError(
            f"onnxruntime-gpu backend runs the YOLOv5 layout; {model!r} is {spec.family}"
        )
    return resolve_model(spec, cfg.model_path, download=cfg.download)


def _build_ort_gpu(cfg: AnyDetectorConfig) -> Any:
    assert isinstance(cfg, OrtGpuDetectorConfig)
    from sharpeyes.models.gpu.ort_gpu import OrtGpuOptions, create_ort_gpu_detector

    gpu = OrtGpuOptions(
        providers=cfg.providers,
        device_id=_device_index(cfg.device),
        fp16=cfg.fp16,
        engine_cache_dir=cfg.engine_cache_dir,
        intra_op_threads=cfg.intra_op_threads or 1,
    )
    return create_ort_gpu_detector(
        _gpu_onnx_path(cfg),
        name=cfg.model,
        options=options_from_config(cfg),
        gpu=gpu,
        preprocess=cfg.preprocess,
        warmup=cfg.warmup,
    )


def _checkpoint_path(cfg: TorchDetectorConfig) -> Path:
    if cfg.model_path is not None and cfg.model_path.suffix == ".pt":
        return cfg.model_path
    spec = get_model_spec(cfg.model)
    weights = spec if spec.filename.endswith(".pt") else None
    if weights is None and spec.derived_from:
        weights = get_model_spec(spec.derived_from)
    if weights is None or spec.family != "yolov5":
        raise ModelError(f"torch backend runs yolov5 checkpoints; {cfg.model!r} has none")
    return resolve_model(weights, None, download=cfg.download)


def _build_torch(cfg: AnyDetectorConfig) -> Any:
    assert isinstance(cfg, TorchDetectorConfig)
    if importlib.util.find_spec("torch") is None:
        raise ModelError("torch backend: PyTorch is not installed")
    from sharpeyes.models.gpu.torch_backend import create_torch_detector

    return create_torch_detector(
        _checkpoint_path(cfg),
        name=cfg.model,
        options=options_from_config(cfg),
        device=cfg.device,
        fp16=cfg.fp16,
        cuda_graphs=cfg.cuda_graphs,
        max_batch=cfg.max_batch,
        warmup=cfg.warmup,
    )


BackendBuilder = Callable[[AnyDetectorConfig], Any]
DETECTOR_BACKENDS: Mapping[str, BackendBuilder] = MappingProxyType(
    {
        "onnxruntime": _build_onnxruntime,
        "onnxruntime-gpu": _build_ort_gpu,
        "torch": _build_torch,
    }
)


def backend_text(detector: Detector, backend: str, note: str | None = None) -> str:
    """``onnxruntime (CPUExecutionProvider)`` plus an optional note (e.g. a fallback)."""
    text = f"{backend} ({','.join(detector.info.providers)})"
    return f"{text}; {note}" if note else text


def _cpu_fallback_config(cfg: AnyDetectorConfig) -> OnnxRuntimeDetectorConfig:
    shared = cfg.model_dump(include=set(DetectorBase.model_fields), exclude_unset=True)
    shared.pop("max_batch", None)
    if cfg.model_path is not None and cfg.model_path.suffix == ".pt":
        shared.pop("model_path", None)
    return OnnxRuntimeDetectorConfig.model_validate(
        {**shared, "backend": "onnxruntime", "providers": "cpu"}
    )


def _create_from_config(cfg: AnyDetectorConfig) -> DetectorChoice:
    try:
        detector = DETECTOR_BACKENDS[cfg.backend](cfg)
        return DetectorChoice(
            detector, backend_text(detector, cfg.backend), None, cfg.backend, cfg.backend
        )
    except ModelError as e:
        on_cpu = isinstance(cfg, OnnxRuntimeDetectorConfig) and cfg.providers == "cpu"
        if cfg.fallback == "fail" or on_cpu:
            raise
        reason = str(e)
    log.warning("detector backend %s unusable (%s); falling back to CPU", cfg.backend, reason)
    detector = _build_onnxruntime(_cpu_fallback_config(cfg))
    note = f"fallback from {cfg.backend}: {reason}"
    return DetectorChoice(
        detector, backend_text(detector, "onnxruntime", note), reason, "onnxruntime", cfg.backend
    )


@overload
def create_detector(config: AnyDetectorConfig) -> DetectorChoice: ...


@overload
def create_detector(
    config: str = ...,
    *,
    model_path: Path | None = ...,
    providers: str | Sequence[str] = ...,
    intra_op_threads: int = ...,
    inter_op_threads: int = ...,
    input_size: tuple[int, int] | None = ...,
    confidence_threshold: float = ...,
    iou_threshold: float = ...,
    motorcycle_is_non_motor: bool = ...,
    warmup: int = ...,
    merge_vehicle_nms: bool = ...,
    keep_other_classes: bool = ...,
    max_detections: int = ...,
    download: bool = ...,
    session: SessionConfig | None = ...,
    allow_spinning: bool = ...,
) -> StagedDetector: ...


def create_detector(
    config: AnyDetectorConfig | str = DEFAULT_DETECTOR,
    *,
    model_path: Path | None = None,
    providers: str | Sequence[str] = "auto",
    intra_op_threads: int = 0,
    inter_op_threads: int = 1,
    input_size: tuple[int, int] | None = None,
    confidence_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    motorcycle_is_non_motor: bool = True,
    warmup: int = 1,
    merge_vehicle_nms: bool = True,
    keep_other_classes: bool = False,
    max_detections: int = 300,
    download: bool = True,
    session: SessionConfig | None = None,
    allow_spinning: bool = False,
) -> DetectorChoice | StagedDetector:
    """Build the detector a config asks for → :class:`DetectorChoice`.

    The older form ``create_detector(model_name, **options)`` builds the host ONNX Runtime
    detector of a registered model and returns it directly (``session`` overrides
    ``providers`` and the thread counts with a full :class:`SessionConfig`).

    Raises:
        ModelNotFoundError, ModelIntegrityError: see :func:`sharpeyes.models.resolve.resolve_model`.
        ModelError: the model is not a detector, its layout is unknown, or the backend cannot
            run here and ``fallback`` is ``"fail"``.
    """
    if not isinstance(config, str):
        return _create_from_config(config)
    cfg = session or SessionConfig(
        providers=providers,
        intra_op_threads=intra_op_threads,
        inter_op_threads=inter_op_threads,
        allow_spinning=allow_spinning,
    )
    options = DetectorOptions(
        confidence_threshold=confidence_threshold,
        iou_threshold=iou_threshold,
        max_detections=max_detections,
        motorcycle_is_non_motor=motorcycle_is_non_motor,
        merge_vehicle_nms=merge_vehicle_nms,
        keep_other_classes=keep_other_classes,
        input_size=input_size,
    )
    return build_onnx_detector(
        model=config,
        model_path=model_path,
        session=cfg,
        options=options,
        warmup=warmup,
        download=download,
        # older callers always pass a model name: the default one with a model_path = "this file"
        prefer_file_family=config == DEFAULT_DETECTOR and model_path is not None,
    )
