"""Build a detector from a registered model name: resolve → ONNX session → family detector.

Families are looked up in :data:`DETECTOR_FAMILIES` (a registry, not an if/elif chain); adding
one is one entry. The returned object implements ``sharpeyes.pipeline.protocols.Detector`` and also
exposes ``preprocess`` / ``infer`` / ``postprocess`` so a benchmark can time each stage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from sharpeyes.models.onnx_session import OnnxModel, SessionConfig
from sharpeyes.models.registry import DEFAULT_DETECTOR, ModelSpec, get_model_spec
from sharpeyes.models.resolve import resolve_model
from sharpeyes.models.yolo import Batch, DetectorOptions, FloatArray, YoloV5Detector
from sharpeyes.models.yolox import YoloXDetector
from sharpeyes.pipeline.errors import ModelError
from sharpeyes.pipeline.protocols import DetectorInfo
from sharpeyes.pipeline.types import Detections, ImageBGR


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


DetectorBuilder = Callable[[OnnxModel, ModelSpec, DetectorOptions], StagedDetector]


def _yolov5(model: OnnxModel, spec: ModelSpec, options: DetectorOptions) -> StagedDetector:
    return YoloV5Detector(model, name=spec.name, options=options, default_size=spec.input.size)


def _yolox(model: OnnxModel, spec: ModelSpec, options: DetectorOptions) -> StagedDetector:
    return YoloXDetector(model, name=spec.name, options=options, default_size=spec.input.size)


DETECTOR_FAMILIES: Mapping[str, DetectorBuilder] = MappingProxyType(
    {"yolov5": _yolov5, "yolox": _yolox}
)


def detector_models() -> tuple[str, ...]:
    """Registered model names that :func:`create_detector` can build."""
    from sharpeyes.models.registry import MODEL_SPECS

    return tuple(
        n
        for n, s in MODEL_SPECS.items()
        if s.family in DETECTOR_FAMILIES and s.input.layout == "NCHW"
    )


def create_detector(
    model: str = DEFAULT_DETECTOR,
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
) -> StagedDetector:
    """Resolve ``model``, open it with the requested providers and wrap it in its family.

    ``session`` (if given) overrides ``providers`` and the thread counts with a full
    :class:`SessionConfig` (TensorRT/CUDA options, graph optimisation).

    Raises:
        ModelNotFoundError, ModelIntegrityError: see :func:`sharpeyes.models.resolve.resolve_model`.
        ModelError: the model is not a detector, or a requested provider is unavailable.
    """
    spec = get_model_spec(model)
    builder = DETECTOR_FAMILIES.get(spec.family)
    if builder is None or spec.input.layout != "NCHW":
        raise ModelError(
            f"model {model!r} (family {spec.family}) is not a detector; detectors: "
            f"{', '.join(detector_models())}"
        )
    path = resolve_model(spec, model_path, download=download)
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
    detector = builder(OnnxModel(path, cfg), spec, options)
    detector.warmup(warmup)
    return detector
